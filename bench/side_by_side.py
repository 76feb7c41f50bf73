"""The gateway against the seed's Phase 2 design, on the same simulated budget and workload.

Both systems get a fresh claude_sim with the same limits, OTPM mode, speed and seed, and
the same virtual users (a few heavy ones who think ten times less), drawing the same
instructions. The seed is ``bench.seed`` (Celery workers with per-worker rate limits,
backoff on 429, all nine agents, no prompt caching), on real Celery unless
``--seed-backend emulated``; the gateway is the Ray Serve deployment of ``serve_app``.

    python -m bench.side_by_side --measure 150
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx2

from agents.page import Page
from agents.retrieval import CatalogIndex, RetrievalConfig
from bench import report
from bench.harness import Outcome, Run, Scenario, measure, run_gateway, summarise
from bench.plots import plot_runs
from bench.seed import BACKENDS, Backend, seed_tasks
from bench.seed.base import SeedSettings
from bench.seed.baseline import SeedBaseline
from bench.simproc import simulator
from claude_sim import SimConfig

SEED_BACKEND_NAMES = {
    "celery": "real Celery 5.7 (worker processes, Redis broker and result backend)",
    "emulated": "its asyncio emulation",
}
BUDGETS = {
    # Anthropic's tier 1, where the seed plan starts.
    "tier1": {
        "sonnet": {"rpm": 50, "itpm": 30_000, "otpm": 8_000},
        "haiku": {"rpm": 50, "itpm": 50_000, "otpm": 10_000},
        "opus": {"rpm": 50, "itpm": 30_000, "otpm": 8_000},
    },
    # Anthropic's tier 2: ITPM is ample for uncached prompts, so each plan's own pacing shows.
    "tier2": {
        "sonnet": {"rpm": 1_000, "itpm": 450_000, "otpm": 90_000},
        "haiku": {"rpm": 1_000, "itpm": 450_000, "otpm": 90_000},
        "opus": {"rpm": 1_000, "itpm": 450_000, "otpm": 90_000},
    },
    # Tier 1 with room for uncached prompts, so the seed completes generations at all.
    "wide-itpm": {
        "sonnet": {"rpm": 50, "itpm": 200_000, "otpm": 8_000},
        "haiku": {"rpm": 50, "itpm": 200_000, "otpm": 10_000},
        "opus": {"rpm": 50, "itpm": 200_000, "otpm": 8_000},
    },
}


async def run_seed(scenario: Scenario, tmp: Path, backend: Backend) -> Run:
    """The seed baseline against its own simulator, driven like the gateway."""
    config = SimConfig.model_validate(
        {
            "profile": "custom",
            "limits": scenario.limits,
            "otpm_mode": scenario.otpm_mode,
            "speed": scenario.speed,
            "seed": scenario.seed,
            "start_full": False,
        }
    )
    run = Run(scenario)
    index = CatalogIndex.open(RetrievalConfig(uri=str(tmp / "catalog.lance")))
    async with simulator(config) as (url, _), httpx2.AsyncClient(base_url=url) as http:
        baseline = SeedBaseline(seed_tasks(backend, url, SeedSettings()), catalog_index=index)
        await baseline.tasks.start()

        async def generate(
            user: str, page_id: str, text: str, page: dict[str, Any] | None, outcome: Outcome
        ) -> None:
            def on_event(name: str, data: dict[str, Any]) -> None:
                if outcome.first_event is None:
                    outcome.first_event = time.monotonic()

            result = await baseline.generate(
                page_id, text, Page.model_validate(page) if page else None, on_event=on_event
            )
            outcome.finished = time.monotonic()
            outcome.cached = result.cached
            if result.ok:
                outcome.status = "completed"
                if result.usage is not None and not result.cached:
                    outcome.cost_usd = result.usage.cost_usd
                    outcome.tokens = result.usage.total_input_tokens + result.usage.output_tokens
            else:
                error = (result.error or "").lower()
                kind = (
                    "rate_limited_after_retries" if "429" in error or "rate" in error else ("other")
                )
                outcome.status = f"failed:{kind}"

        await measure(scenario, generate, run, http, "/sim/stats")
        run.extra["seed_stats"] = baseline.stats.as_dict()
        await baseline.tasks.stop()
    return run


def _seed_stall(seed: dict[str, Any]) -> str:
    """Why the seed finished nothing, from what it used of the budget."""
    pool, limit, used = max(
        (
            (pool, limit, share)
            for pool, shares in seed["usage_of_limits"].items()
            for limit, share in shares.items()
        ),
        key=lambda item: item[2],
    )
    if used >= 0.95:
        return (
            f"nine uncached agents per generation exhaust {pool} {limit}, so the generations it "
            "accepted were still queued or had run out of retries."
        )
    return (
        f"the budget was not the limit (at most {used:.0%} of {pool} {limit} used); its ten "
        "worker slots, each paced to 10 calls a minute and held for the whole of every call, "
        "work through one FIFO queue that advances all accepted generations together, so "
        "none had finished."
    )


def _fmt(value: Any, unit: str = "") -> str:
    return "n/a" if value is None else f"{value}{unit}"


def comparison_rows(seed: dict[str, Any], ours: dict[str, Any]) -> list[list[Any]]:
    """The report's table: each measure for the seed plan and the gateway."""
    rows = []
    for label, key, unit in (
        ("generations completed / min", "generations_per_min", ""),
        ("offered / min", "offered_per_min", ""),
        ("upstream 429s", "upstream_429s", ""),
        ("generations lost", "lost", ""),
        ("latency p50", "latency_p50_s", " s"),
        ("latency p95", "latency_p95_s", " s"),
        ("time to first event p50", "first_event_p50_s", " s"),
        ("time to first event p95", "first_event_p95_s", " s"),
        ("tokens / generation", "tokens_per_generation", ""),
        ("cost / generation", "cost_per_generation_usd", " $"),
        ("Jain's index, light users", "jain_index_light_users", ""),
        ("heavy users' wait p50", "heavy_wait_p50_s", " s"),
        ("light users' wait p50", "light_wait_p50_s", " s"),
    ):
        rows.append([label, _fmt(seed.get(key), unit), _fmt(ours.get(key), unit)])
    for pool in ("sonnet", "haiku"):
        for kind in ("requests", "input_tokens", "output_tokens"):
            rows.append(
                [
                    f"{pool} {kind} limit used",
                    f"{seed['usage_of_limits'][pool][kind]:.0%}",
                    f"{ours['usage_of_limits'][pool][kind]:.0%}",
                ]
            )
    rows.append(
        [
            "outcomes",
            ", ".join(f"{k} {v}" for k, v in sorted(seed["statuses"].items())),
            ", ".join(f"{k} {v}" for k, v in sorted(ours["statuses"].items())),
        ]
    )
    return rows


async def run_both(
    scenario: Scenario, backend: Backend
) -> tuple[dict[str, Run], dict[str, dict[str, Any]]]:
    """The seed plan, then the gateway, on the same scenario: their runs and summaries."""
    results: dict[str, dict[str, Any]] = {}
    runs: dict[str, Run] = {}
    seed_run = functools.partial(run_seed, backend=backend)
    for name, runner in (("seed plan", seed_run), ("gateway", run_gateway)):
        print(f"{name}: {scenario.warmup_s:.0f} s warm-up, {scenario.measure_s:.0f} s ...")
        with tempfile.TemporaryDirectory() as tmp:
            run = await runner(scenario, Path(tmp))
        runs[name] = run
        results[name] = summarise(run)
        results[name]["extra"] = {k: v for k, v in run.extra.items() if k != "capacity"}
        print(name, results[name], flush=True)
    return runs, results


async def main(
    measure: float,
    warmup: float,
    users: int,
    heavy: int,
    mode: str,
    drain: float,
    budget: str,
    backend: Backend,
) -> None:
    limits = BUDGETS[budget]
    scenario = Scenario(
        limits=limits,
        otpm_mode=mode,
        users=users,
        heavy_users=heavy,
        warmup_s=warmup,
        measure_s=measure,
        think_s=40.0,
        drain_s=drain,
    )
    runs, results = await run_both(scenario, backend)
    report.save_json(
        f"side_by_side_{budget}",
        {"limits": limits, "scenario": scenario.__dict__, "results": results},
    )
    seed, ours = results["seed plan"], results["gateway"]
    rows = comparison_rows(seed, ours)
    ratio = (
        ours["generations_per_min"] / seed["generations_per_min"]
        if seed["generations_per_min"]
        else float("inf")
    )
    body = (
        f"Same claude_sim budget for both ({budget}: sonnet {limits['sonnet']}, haiku "
        f"{limits['haiku']}, OTPM {mode}, buckets starting empty), same {users} virtual users "
        f"({heavy} heavy ones thinking ten times less), same instructions (the shared "
        f"dataset's mix, 10% repeats), {warmup:.0f} s warm-up then {measure:.0f} s measured. "
        f"The seed plan is `bench/seed/` on {SEED_BACKEND_NAMES[backend]}: 5 workers x 2, 10 "
        "calls a minute each, backoff 10/20/40 s on 429, nine agents always, no prompt "
        "caching, an md5(page_id:prompt) cache. 'Limit used' is the share of each limit's "
        "budget the simulator admitted in the window.\n\n"
        + report.table(["", "seed plan", "gateway"], rows)
        + (
            f"\n\nThe gateway completed {ratio:.1f}x the seed's generations per minute."
            if seed["generations_per_min"]
            else f"\n\nThe seed completed no generation inside the window: {_seed_stall(seed)}"
        )
    )
    section = "side_by_side" if budget == "tier1" else f"side_by_side_{budget}"
    png = plot_runs(section, runs)
    body += f"\n\n![completions and latency, both systems](bench/results/{png.name})"
    report.write_section(
        section, f"Side by side ({budget}): the gateway against the seed plan", body
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--measure", type=float, default=150)
    parser.add_argument("--warmup", type=float, default=90)
    parser.add_argument("--users", type=int, default=40)
    parser.add_argument("--heavy", type=int, default=3)
    parser.add_argument("--otpm-mode", default="produced", choices=["produced", "estimate"])
    parser.add_argument(
        "--drain",
        type=float,
        default=90,
        help="how long to wait for generations still running at the end",
    )
    parser.add_argument("--budget", default="tier1", choices=sorted(BUDGETS))
    parser.add_argument("--seed-backend", default="celery", choices=BACKENDS)
    args = parser.parse_args()
    asyncio.run(
        main(
            args.measure,
            args.warmup,
            args.users,
            args.heavy,
            args.otpm_mode,
            args.drain,
            args.budget,
            args.seed_backend,
        )
    )
