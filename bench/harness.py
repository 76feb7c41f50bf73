"""Load harness: claude_sim with chosen limits, the gateway on Ray Serve, virtual users.

Virtual users think (exponential pauses), then ask for a generation drawn from the shared
dataset's mix of new pages and edits (some repeat an earlier request), and read its SSE
stream to the end. Every request is accounted for: completed, failed with a typed error,
refused up front (429 with Retry-After), or lost (accepted but never finished). The
simulator's own counters give what was admitted against each limit and the 429s.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
from tqdm import tqdm

from agents.samples import landing_page
from bench.simproc import free_port

DATASET = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "instructions.jsonl"
NEW_PAGE_WORDS = ("create a", "build a", "generate a", "design a", "make a", "page for")
SERVE_FLAGS = {
    "RAY_SERVE_ENABLE_HA_PROXY": "1",
    "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
    "RAY_SERVE_HAPROXY_MAXCONN": "7500",
}
"""Serve's HAProxy ingress and throughput-optimised internals, read by every Ray process
when it starts: set before the cluster is. HAProxy holds 4,096 connections by default,
fewer than the streams one node is asked to hold; it asks for 2.5 file descriptors per
connection and refuses to start past the limit (20,000 here)."""
KINDS = ("requests", "input_tokens", "output_tokens")
ADMITTED = {
    "requests": "admitted_requests",
    "input_tokens": "admitted_input_tokens",
    "output_tokens": "output_tokens",
}


@dataclass(frozen=True)
class Scenario:
    """One load test: the simulated upstream, the users, how long."""

    limits: dict[str, dict[str, int]]
    otpm_mode: str = "produced"
    speed: float = 1.0
    users: int = 30
    heavy_users: int = 0
    """Users who think ten times less than the others (fairness)."""
    think_s: float = 30.0
    warmup_s: float = 60.0
    measure_s: float = 180.0
    drain_s: float = 120.0
    repeat_share: float = 0.1
    seed: int = 7


@dataclass
class Outcome:
    user: str
    heavy: bool
    submitted: float
    first_event: float | None = None
    finished: float | None = None
    status: str = "unfinished"
    """completed, failed:<type>, refused:<type>, lost:<why> (accepted, then no result or
    error), or unfinished (still running when the run ended)."""
    cached: bool = False
    cost_usd: float = 0.0
    tokens: int = 0


@dataclass
class Run:
    scenario: Scenario
    outcomes: list[Outcome] = field(default_factory=list)
    window: tuple[float, float] = (0.0, 0.0)
    sim_before: dict[str, Any] = field(default_factory=dict)
    sim_after: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def instructions() -> list[tuple[str, bool]]:
    rows = []
    for line in DATASET.read_text().splitlines():
        text = json.loads(line)["instruction"]
        rows.append((text, any(w in text.lower() for w in NEW_PAGE_WORDS)))
    return rows


GenerateFn = Callable[[str, str, str, dict[str, Any] | None, Outcome], Awaitable[None]]


async def drive(scenario: Scenario, generate: GenerateFn, run: Run, stop: asyncio.Event) -> None:
    """Run the virtual users until ``stop``, then wait for what is in flight."""
    rng = random.Random(scenario.seed)
    rows = instructions()
    history: list[tuple[str, str, bool]] = []
    in_flight: set[asyncio.Task[None]] = set()

    async def user(index: int) -> None:
        heavy = index < scenario.heavy_users
        name = f"{'heavy' if heavy else 'light'}-{index}"
        think = scenario.think_s / (10 if heavy else 1)
        await asyncio.sleep(rng.uniform(0, think))
        while not stop.is_set():
            if history and rng.random() < scenario.repeat_share:
                page_id, text, new = rng.choice(history)
            else:
                text, new = rng.choice(rows)
                page_id = f"{name}-{uuid.uuid4().hex[:6]}"
                history.append((page_id, text, new))
            outcome = Outcome(name, heavy, time.monotonic())
            run.outcomes.append(outcome)
            # Each page is its own (its id is in the prompt), so only true repeats, the same
            # instruction on the same page, can be answered from a cache.
            page = None if new else landing_page(page_id).model_dump(mode="json")
            task = asyncio.create_task(generate(name, page_id, text, page, outcome))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            await task
            await asyncio.sleep(rng.expovariate(1 / think))

    with tqdm(unit="s", desc=f"load ({scenario.otpm_mode})", disable=not os.isatty(2)) as bar:
        users = [asyncio.create_task(user(i)) for i in range(scenario.users)]
        while not stop.is_set():
            await asyncio.sleep(1)
            bar.update(1)
        if in_flight:
            await asyncio.wait(set(in_flight), timeout=scenario.drain_s)
        for task in users:
            task.cancel()
        await asyncio.gather(*users, return_exceptions=True)


async def measure(
    scenario: Scenario, generate: GenerateFn, run: Run, http: httpx2.AsyncClient, stats_path: str
) -> None:
    """Drive the users through warm-up and the measured window, then let them finish.

    The simulator's counters are read at both ends of the window, so limit usage and 429s
    are the window's alone.
    """
    stop = asyncio.Event()
    task = asyncio.create_task(drive(scenario, generate, run, stop))
    await asyncio.sleep(scenario.warmup_s)
    run.sim_before = (await http.get(stats_path)).json()
    started = time.monotonic()
    run.window = (started, started + scenario.measure_s)
    await asyncio.sleep(scenario.measure_s)
    run.sim_after = (await http.get(stats_path)).json()
    run.extra["measured_s"] = time.monotonic() - started
    stop.set()
    await task


async def gateway_generate(
    http: httpx2.AsyncClient,
    user: str,
    page_id: str,
    text: str,
    page: dict[str, Any] | None,
    outcome: Outcome,
) -> None:
    """One generation through the gateway's SSE API."""
    body: dict[str, Any] = {"instruction": text, "user_id": user}
    if page is not None:
        body["page"] = page
    try:
        async with http.stream("POST", f"/v1/pages/{page_id}/generate", json=body) as reply:
            if reply.status_code != 200:
                data = json.loads(await reply.aread())
                outcome.status = f"refused:{data['error']['type']}"
                outcome.finished = time.monotonic()
                retry = float(reply.headers.get("retry-after", "5"))
                await asyncio.sleep(min(retry, 30))
                return
            event = ""
            async for line in reply.aiter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                    if outcome.first_event is None:
                        outcome.first_event = time.monotonic()
                elif line.startswith("data: ") and event in ("result", "error"):
                    data = json.loads(line[6:])
                    outcome.finished = time.monotonic()
                    if event == "result":
                        outcome.status = "completed"
                        outcome.cached = bool(data.get("cached"))
                        total = data["usage"]["total"]
                        outcome.cost_usd = 0.0 if outcome.cached else total["cost_usd"]
                        outcome.tokens = (
                            0
                            if outcome.cached
                            else sum(
                                total[k]
                                for k in (
                                    "input_tokens",
                                    "output_tokens",
                                    "cache_creation_input_tokens",
                                    "cache_read_input_tokens",
                                )
                            )
                        )
                    else:
                        outcome.status = f"failed:{data.get('type')}"
                    return
            outcome.status = "lost:stream ended without result or error"
    except httpx2.HTTPError as exc:
        outcome.status = f"lost:{type(exc).__name__}"


def gateway_args(scenario: Scenario, sim_url: str, index_uri: str) -> dict[str, Any]:
    return {
        "budget": {"tier": "custom", "limits": scenario.limits, "start_full": False},
        "upstream": {"simulator_url": sim_url},
        "pipeline": {"retrieval": {"uri": index_uri}},
        "ingress": {"user_generations_per_minute": 30},
    }


POOLS = ("haiku", "sonnet", "opus")


def uniform_gateway_args(
    sim_url: str, index_uri: str, limits: dict[str, int], per_user_per_min: int
) -> dict[str, Any]:
    """Gateway args with the same limits (rpm, itpm, otpm) for every model pool."""
    return {
        "budget": {"tier": "custom", "limits": dict.fromkeys(POOLS, limits)},
        "upstream": {"simulator_url": sim_url},
        "pipeline": {"retrieval": {"uri": index_uri}},
        "ingress": {"user_generations_per_minute": per_user_per_min},
    }


@contextlib.contextmanager
def local_serve(
    tmp: Path, env: dict[str, str] | None = None, *, dashboard_port: int | None = None
) -> Iterator[str]:
    """A fresh local Ray with Serve on a free loopback port; yields its base URL.

    ``env`` is what every replica finds in its environment (tenant keys, say); with
    ``dashboard_port`` the Ray dashboard (and the state API through it) runs there.
    """
    import ray
    from ray import serve

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_worker_niceness", "0")
    port = free_port()
    ray.init(
        num_cpus=2,
        include_dashboard=dashboard_port is not None,
        dashboard_host="127.0.0.1",
        dashboard_port=dashboard_port,
        log_to_driver=False,
        namespace="nocode",
        _temp_dir=str(tmp / "ray"),
        runtime_env={"env_vars": dict(env or {})},
    )
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        yield f"http://127.0.0.1:{port}"
    finally:
        serve.shutdown()
        ray.shutdown()


def deploy(sim: dict[str, Any] | None, gateway: dict[str, Any] | None) -> None:
    """Deploy (or redeploy) the simulator at /claude-sim and the gateway at /."""
    from ray import serve

    from claude_sim.deployment import build_sim_app
    from serve_app.app import build_app

    if sim is not None:
        serve.run(build_sim_app(sim), name="claude-sim", route_prefix="/claude-sim", blocking=False)
    if gateway is not None:
        serve.run(build_app(gateway), name="gateway", route_prefix="/", blocking=False)


async def run_gateway(scenario: Scenario, tmp: Path) -> Run:
    """Deploy the simulator and the gateway in a fresh local Ray, then drive the users."""
    run = Run(scenario)
    with local_serve(tmp) as base:
        # Both start with empty buckets: the measured window sees the steady rate, not the
        # minute of budget an organisation starts with.
        sim = {
            "profile": "custom",
            "limits": scenario.limits,
            "otpm_mode": scenario.otpm_mode,
            "speed": scenario.speed,
            "seed": scenario.seed,
            "start_full": False,
        }
        deploy(sim, gateway_args(scenario, base + "/claude-sim", str(tmp / "catalog.lance")))
        limits = httpx2.Limits(max_connections=scenario.users * 2 + 20)
        async with httpx2.AsyncClient(base_url=base, timeout=600, limits=limits) as http:
            await wait_ready(http)

            async def generate(
                user: str, page_id: str, text: str, page: dict[str, Any] | None, outcome: Outcome
            ) -> None:
                await gateway_generate(http, user, page_id, text, page, outcome)

            await measure(scenario, generate, run, http, "/claude-sim/sim/stats")
            run.extra["capacity"] = (await http.get("/v1/capacity")).json()
    return run


async def wait_ready(http: httpx2.AsyncClient) -> None:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        try:
            if (await http.get("/readyz")).status_code == 200:
                return
        except httpx2.HTTPError:
            pass
        await asyncio.sleep(1)
    raise RuntimeError("the gateway did not become ready")


def pool_usage(run: Run) -> dict[str, dict[str, float]]:
    """Share of each limit's refill used in the measured window, per pool and kind.

    What the simulator admitted in the window, less what came out of its bucket's stock
    (a bucket that filled up while another limit was binding can lend a burst): the share
    of the window's new budget that was used, which a steady rate cannot push past 100%.
    Stock that built up during the window counts as unused.
    """
    minutes = run.extra.get("measured_s", run.scenario.measure_s) / 60
    out: dict[str, dict[str, float]] = {}
    for pool, limits in run.scenario.limits.items():
        limit_of = {
            "requests": limits["rpm"],
            "input_tokens": limits["itpm"],
            "output_tokens": limits["otpm"],
        }
        used = {}
        for kind in KINDS:
            admitted = pool_sum(run.sim_after, pool, ADMITTED[kind]) - pool_sum(
                run.sim_before, pool, ADMITTED[kind]
            )
            stock = max(0.0, _level(run.sim_before, pool, kind) - _level(run.sim_after, pool, kind))
            used[kind] = round((admitted - stock) / (limit_of[kind] * minutes), 4)
        out[pool] = used
    return out


def _level(stats: dict[str, Any], pool: str, kind: str) -> float:
    return float(
        sum(
            max(0.0, k["pools"].get(pool, {}).get("bucket_levels", {}).get(kind, 0.0))
            for k in stats.get("keys", {}).values()
        )
    )


def pool_sum(stats: dict[str, Any], pool: str, field_name: str) -> float:
    return float(
        sum(k["pools"].get(pool, {}).get(field_name, 0) for k in stats.get("keys", {}).values())
    )


def upstream_429s(stats: dict[str, Any]) -> int:
    return sum(
        m["rate_limited_total"]
        for k in stats.get("keys", {}).values()
        for m in k["models"].values()
    )


def upstream_429s_by_limit(stats: dict[str, Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for key in stats.get("keys", {}).values():
        for model, m in key["models"].items():
            for limit, n in m["rate_limited"].items():
                out[f"{model}:{limit}"] = out.get(f"{model}:{limit}", 0) + n
    return out


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def jain(values: list[float]) -> float | None:
    """Jain's fairness index: 1 when everyone gets the same, 1/n when one gets all."""
    if not values or not any(values):
        return None
    return round(sum(values) ** 2 / (len(values) * sum(v * v for v in values)), 3)


def summarise(run: Run) -> dict[str, Any]:
    """The figures of a run, measured-window generations only where it matters."""
    start, end = run.window
    minutes = (end - start) / 60
    inside = [o for o in run.outcomes if start <= o.submitted < end]
    done = [
        o
        for o in run.outcomes
        if o.status == "completed" and o.finished is not None and start <= o.finished < end
    ]
    fresh = [o for o in done if not o.cached]
    latency = [o.finished - o.submitted for o in fresh if o.finished]
    first = [
        o.first_event - o.submitted
        for o in run.outcomes
        if o.first_event is not None and start <= o.submitted < end
    ]
    per_user: dict[str, int] = {}
    for o in done:
        per_user[o.user] = per_user.get(o.user, 0) + 1
    statuses: dict[str, int] = {}
    for o in run.outcomes:
        statuses[o.status] = statuses.get(o.status, 0) + 1
    heavy_wait = [o.finished - o.submitted for o in fresh if o.heavy and o.finished]
    light_wait = [o.finished - o.submitted for o in fresh if not o.heavy and o.finished]
    users = [
        f"{'heavy' if i < run.scenario.heavy_users else 'light'}-{i}"
        for i in range(run.scenario.users)
    ]
    return {
        "generations_per_min": round(len(done) / minutes, 2),
        "fresh_generations_per_min": round(len(fresh) / minutes, 2),
        "offered_per_min": round(len(inside) / minutes, 2),
        "statuses": statuses,
        "lost": sum(n for s, n in statuses.items() if s.startswith("lost")),
        "upstream_429s": upstream_429s(run.sim_after) - upstream_429s(run.sim_before),
        "upstream_429s_by_limit_whole_run": upstream_429s_by_limit(run.sim_after),
        "usage_of_limits": pool_usage(run),
        "latency_p50_s": pct(latency, 0.5),
        "latency_p95_s": pct(latency, 0.95),
        "first_event_p50_s": pct(first, 0.5),
        "first_event_p95_s": pct(first, 0.95),
        "cost_per_generation_usd": round(statistics.mean([o.cost_usd for o in fresh]), 5)
        if fresh
        else None,
        "tokens_per_generation": round(statistics.mean([o.tokens for o in fresh]))
        if fresh
        else None,
        # Among users who ask equally often, a fair service gives equal throughput.
        "jain_index_light_users": jain(
            [per_user.get(u, 0) for u in users if u.startswith("light")]
        ),
        "heavy_wait_p50_s": pct(heavy_wait, 0.5),
        "light_wait_p50_s": pct(light_wait, 0.5),
    }
