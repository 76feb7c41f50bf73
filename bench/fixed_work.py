"""Fixed work: the same generations offered to the seed and to the gateway, each run to its end.

One list of generations (a mix of new pages and edits of each user's own page, from
``--users`` users, arriving at seeded times within ``--arrivals`` seconds) is offered to
each system on a fresh claude_sim with the same budget (tier 2 by default, buckets starting
empty), and every system runs until every generation has ended. Reported per system:
makespan (first arrival to last end), completions per minute over it, time to result,
upstream 429s and failures by type (the simulator's counters), tokens and dollars per
generation, and the generations per minute the budget allows at the usage measured in that
run (the minimum over each pool's RPM, ITPM and OTPM of limit / use per completed
generation) with the share of it achieved. The seed runs on real Celery workers
(``--seeds celery``) and, as the fast variant, emulated (``emulated``); their agreement on
completions and 429s is shown.

    python -m bench.fixed_work --generations 120 --users 40 --arrivals 120
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2

from agents.page import Page
from agents.retrieval import CatalogIndex, RetrievalConfig
from agents.samples import landing_page
from bench import report
from bench.harness import (
    Outcome,
    deploy,
    gateway_generate,
    instructions,
    local_serve,
    pct,
    pool_sum,
    upstream_429s,
    wait_ready,
)
from bench.seed import BACKENDS, Backend, seed_tasks
from bench.seed.base import SeedSettings
from bench.seed.baseline import SeedBaseline
from bench.side_by_side import BUDGETS
from bench.simproc import simulator
from claude_sim import SimConfig

NEW_SHARE = 0.3
PER_MINUTE = {"admitted_requests": "rpm", "admitted_input_tokens": "itpm", "output_tokens": "otpm"}


@dataclass(frozen=True)
class Work:
    """One generation of the fixed list: who asks, when, for what."""

    user: str
    at_s: float
    page_id: str
    instruction: str
    page: dict[str, Any] | None


def plan_work(generations: int, users: int, arrivals_s: float, seed: int) -> list[Work]:
    """The fixed list: seeded arrival times, users in turn, 30% new pages, 70% edits."""
    rng = random.Random(seed)
    rows = instructions()
    new_rows = [text for text, new in rows if new]
    edit_rows = [text for text, new in rows if not new]
    times = sorted(rng.uniform(0, arrivals_s) for _ in range(generations))
    work = []
    for index, at_s in enumerate(times):
        user = f"user-{index % users}"
        page_id = f"{user}-page"
        new = rng.random() < NEW_SHARE
        text = rng.choice(new_rows if new else edit_rows)
        page = None if new else landing_page(page_id).model_dump(mode="json")
        work.append(Work(user, at_s, page_id, text, page))
    return work


RunOne = Callable[[Work, Outcome], Awaitable[None]]


async def offer(work: list[Work], run_one: RunOne) -> tuple[list[Outcome], float]:
    """Start each generation at its arrival time; wait for all; outcomes and start time."""
    started = time.monotonic()
    outcomes: list[Outcome] = []

    async def at_time(item: Work) -> None:
        await asyncio.sleep(max(0.0, started + item.at_s - time.monotonic()))
        outcome = Outcome(item.user, False, time.monotonic())
        outcomes.append(outcome)
        await run_one(item, outcome)

    await asyncio.gather(*(at_time(item) for item in work))
    return outcomes, started


def sim_config(limits: dict[str, dict[str, int]], seed: int) -> dict[str, Any]:
    return {
        "profile": "custom",
        "limits": limits,
        "otpm_mode": "produced",
        "speed": 1.0,
        "seed": seed,
        "start_full": False,
    }


async def run_seed(
    backend: Backend, work: list[Work], limits: dict[str, dict[str, int]], seed: int, tmp: Path
) -> dict[str, Any]:
    """The seed plan (on ``backend``) against its own fresh simulator."""
    config = SimConfig.model_validate(sim_config(limits, seed))
    index = CatalogIndex.open(RetrievalConfig(uri=str(tmp / f"catalog-{backend}.lance")))
    async with simulator(config) as (url, _), httpx2.AsyncClient(base_url=url) as http:
        before = (await http.get("/sim/stats")).json()
        async with SeedBaseline(seed_tasks(backend, url, SeedSettings()), catalog_index=index) as s:

            async def run_one(item: Work, outcome: Outcome) -> None:
                page = Page.model_validate(item.page) if item.page else None
                result = await s.generate(item.page_id, item.instruction, page)
                outcome.finished = time.monotonic()
                outcome.cached = result.cached
                if result.ok:
                    outcome.status = "completed"
                elif "429" in (result.error or ""):
                    outcome.status = "failed:rate_limited_after_retries"
                else:
                    outcome.status = "failed:other"
                if result.usage is not None:
                    outcome.cost_usd = result.usage.cost_usd
                    outcome.tokens = result.usage.total_input_tokens + result.usage.output_tokens

            outcomes, started = await offer(work, run_one)
        after = (await http.get("/sim/stats")).json()
    return summarise(outcomes, started, before, after, limits) | {"seed_stats": s.stats.as_dict()}


async def run_gateway(
    work: list[Work], limits: dict[str, dict[str, int]], seed: int, tmp: Path
) -> dict[str, Any]:
    """The gateway on Ray Serve against a fresh simulator; a refused request comes back
    after its ``Retry-After``, as a client following the contract would."""
    with local_serve(tmp) as base:
        gateway = {
            "budget": {"tier": "custom", "limits": limits, "start_full": False},
            "upstream": {"simulator_url": base + "/claude-sim"},
            "pipeline": {"retrieval": {"uri": str(tmp / "catalog-gateway.lance")}},
            "ingress": {"user_generations_per_minute": 30},
        }
        deploy(sim_config(limits, seed), gateway)
        pool = httpx2.Limits(max_connections=len(work) + 20)
        async with httpx2.AsyncClient(base_url=base, timeout=1800, limits=pool) as http:
            await wait_ready(http)
            before = (await http.get("/claude-sim/sim/stats")).json()
            refusals = 0

            async def run_one(item: Work, outcome: Outcome) -> None:
                nonlocal refusals
                while True:
                    await gateway_generate(
                        http, item.user, item.page_id, item.instruction, item.page, outcome
                    )
                    if not outcome.status.startswith("refused"):
                        return
                    refusals += 1  # gateway_generate waited out the Retry-After

            outcomes, started = await offer(work, run_one)
            after = (await http.get("/claude-sim/sim/stats")).json()
    return summarise(outcomes, started, before, after, limits) | {"refusals": refusals}


def summarise(
    outcomes: list[Outcome],
    started: float,
    before: dict[str, Any],
    after: dict[str, Any],
    limits: dict[str, dict[str, int]],
) -> dict[str, Any]:
    """The run's figures; limit arithmetic from what the simulator admitted."""
    ended = max((o.finished for o in outcomes if o.finished is not None), default=started)
    makespan = ended - started
    done = [o for o in outcomes if o.status == "completed"]
    fresh = [o for o in done if not o.cached]
    latency = [o.finished - o.submitted for o in done if o.finished is not None]
    statuses: dict[str, int] = {}
    for o in outcomes:
        statuses[o.status] = statuses.get(o.status, 0) + 1
    per_min = len(done) / (makespan / 60) if makespan > 0 else 0.0
    allowed = budget_allows(before, after, limits, len(fresh))
    return {
        "generations": len(outcomes),
        "completed": len(done),
        "makespan_s": round(makespan, 1),
        "completions_per_min": round(per_min, 2),
        "latency_p50_s": pct(latency, 0.5),
        "latency_p95_s": pct(latency, 0.95),
        "upstream_429s": upstream_429s(after) - upstream_429s(before),
        "statuses": statuses,
        "tokens_per_generation": round(sum(o.tokens for o in fresh) / len(fresh))
        if fresh
        else None,
        "cost_per_generation_usd": round(sum(o.cost_usd for o in fresh) / len(fresh), 5)
        if fresh
        else None,
        "budget_allows_per_min": allowed,
        "share_of_budget_limit": round(per_min / allowed[0], 3) if allowed else None,
    }


def budget_allows(
    before: dict[str, Any], after: dict[str, Any], limits: dict[str, dict[str, int]], fresh: int
) -> tuple[float, str] | None:
    """Generations a minute the limits allow at this run's admitted use per fresh generation,
    and the limit that binds (failed generations' spend counts against the completed)."""
    if not fresh:
        return None
    best: tuple[float, str] | None = None
    for pool, pool_limits in limits.items():
        for counter, limit in PER_MINUTE.items():
            used = (pool_sum(after, pool, counter) - pool_sum(before, pool, counter)) / fresh
            if used > 0:
                allowed = (round(pool_limits[limit] / used, 2), f"{pool} {limit}")
                best = allowed if best is None or allowed < best else best
    return best


def compare(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The ratios the goals name: the gateway against the real-Celery seed, and how close
    the emulated seed comes to the real one."""
    out: dict[str, Any] = {}
    gateway, real = results.get("gateway"), results.get("seed-celery")
    if gateway and real and gateway["makespan_s"] and real["completions_per_min"]:
        out["makespan_gateway_over_seed"] = round(gateway["makespan_s"] / real["makespan_s"], 3)
        out["completions_per_min_gateway_over_seed"] = round(
            gateway["completions_per_min"] / real["completions_per_min"], 2
        )
    emulated = results.get("seed-emulated")
    if emulated and real:
        out["emulated_vs_celery"] = {
            key: _relative(emulated[key], real[key])
            for key in ("completed", "completions_per_min", "upstream_429s", "makespan_s")
        }
    return out


def _relative(value: float, reference: float) -> float | None:
    """(value - reference) / reference; None where the reference is 0 and value is not."""
    if reference == 0:
        return 0.0 if value == 0 else None
    return round((value - reference) / reference, 3)


async def main(args: argparse.Namespace) -> None:
    limits = BUDGETS[args.budget]
    work = plan_work(args.generations, args.users, args.arrivals, args.seed)
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.seeds:
            print(f"seed on {backend} ...", flush=True)
            results[f"seed-{backend}"] = await run_seed(backend, work, limits, args.seed, Path(tmp))
            print(results[f"seed-{backend}"], flush=True)
        print("gateway ...", flush=True)
        results["gateway"] = await run_gateway(work, limits, args.seed, Path(tmp))
        print(results["gateway"], flush=True)
    data = {"results": results, "comparison": compare(results), "options": vars(args)}
    name = section_name(args)
    report.save_json(name, data)
    write_report(name, data, args)


def section_name(args: argparse.Namespace) -> str:
    """The issue's run (120 generations, 40 users, 2 minutes, tier 2) has its own section,
    so that a shorter run (``make bench``) does not overwrite it."""
    if (args.generations, args.users, args.arrivals, args.budget) == (120, 40, 120, "tier2"):
        return "fixed_work"
    return f"fixed_work_{args.budget}_{args.generations}"


ROWS = [
    ("generations offered / completed", lambda r: f"{r['generations']} / {r['completed']}"),
    ("makespan", lambda r: f"{r['makespan_s']} s"),
    ("completions / min over the makespan", lambda r: r["completions_per_min"]),
    ("time to result p50 / p95", lambda r: f"{r['latency_p50_s']} / {r['latency_p95_s']} s"),
    ("upstream 429s", lambda r: r["upstream_429s"]),
    ("every generation's fate", lambda r: ", ".join(f"{k} {v}" for k, v in r["statuses"].items())),
    ("tokens / fresh generation", lambda r: r["tokens_per_generation"]),
    ("cost / fresh generation", lambda r: f"{r['cost_per_generation_usd']} $"),
    (
        "what the budget allows at this usage / min",
        lambda r: (
            "n/a"
            if r["budget_allows_per_min"] is None
            else f"{r['budget_allows_per_min'][0]} ({r['budget_allows_per_min'][1]})"
        ),
    ),
    ("completions / what the budget allows", lambda r: r["share_of_budget_limit"]),
]


def write_report(name: str, data: dict[str, Any], args: argparse.Namespace) -> None:
    results, comparison = data["results"], data["comparison"]
    names = list(results)
    rows = [[label, *(cell(results[n]) for n in names)] for label, cell in ROWS]
    body = (
        f"The same {args.generations} generations from {args.users} users (30% new pages, "
        f"70% edits of the user's own page, the shared dataset's instructions), arriving at "
        f"the same seeded times within {args.arrivals:g} s (seed {args.seed}), offered to each "
        f"system on a fresh claude_sim with the {args.budget} budget "
        f"({json.dumps(BUDGETS[args.budget]['sonnet'])} per pool, OTPM counted as produced, "
        "buckets starting empty), each run until every generation had ended. `seed-celery` "
        "is the seed plan on real Celery 5.7 (5 worker processes, `--concurrency=2`, "
        "`rate_limit='10/m'`, retry countdown 10/20/40 s, Redis broker and result backend); "
        "`seed-emulated` is its asyncio emulation; the gateway's refused requests come back "
        "after `Retry-After`.\n\n"
        + report.table(["", *names], rows)
        + "\n\n"
        + comparison_text(comparison)
    )
    title = f"Fixed work ({args.budget}, {args.generations} generations)"
    report.write_section(name, f"{title}: the gateway against the seed", body)


def comparison_text(comparison: dict[str, Any]) -> str:
    lines = []
    if "makespan_gateway_over_seed" in comparison:
        lines.append(
            f"Gateway against the real-Celery seed: makespan "
            f"{comparison['makespan_gateway_over_seed']:.1%} of the seed's, completions per "
            f"minute {comparison['completions_per_min_gateway_over_seed']}x."
        )
    if "emulated_vs_celery" in comparison:
        gaps = ", ".join(
            f"{key} {'n/a' if gap is None else f'{gap:+.1%}'}"
            for key, gap in comparison["emulated_vs_celery"].items()
        )
        lines.append(f"Emulated seed against real Celery (relative difference): {gaps}.")
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--generations", type=int, default=120)
    parser.add_argument("--users", type=int, default=40)
    parser.add_argument(
        "--arrivals", type=float, default=120, help="seconds over which they arrive"
    )
    parser.add_argument("--budget", choices=sorted(BUDGETS), default="tier2")
    parser.add_argument("--seed", type=int, default=0, help="seed of arrivals and instructions")
    parser.add_argument(
        "--seeds",
        type=lambda text: [b for b in text.split(",") if b],
        default=list(BACKENDS),
        help=f"seed backends to run, comma-separated, from {','.join(BACKENDS)}",
    )
    asyncio.run(main(parser.parse_args()))
