"""Capacity planning against ground truth: the gateway's metered tokens per generation,
times the generations, against what claude_sim's rate limiter counted over the same run.

Generations run through the gateway (new pages and edits of a sample page, instructions
from the shared dataset, a few at a time) on an ample budget; afterwards the keeper's
meter (``/v1/capacity``) and the simulator's ``/sim/stats`` are compared per model pool
and limit kind. ``python -m serve_app.capacity`` divides the budget by those means, so an
error here is an error in its table. With ``--save-profile`` the run's means become the
profile the planner uses from config alone.

    python -m bench.capacity_check --generations 40 --save-profile
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx2

from agents.samples import landing_page
from bench import report
from bench.harness import (
    POOLS,
    Outcome,
    deploy,
    gateway_generate,
    instructions,
    local_serve,
    pool_sum,
    wait_ready,
)
from serve_app.call_demand import KINDS
from serve_app.capacity import PROFILE
from serve_app.usage_meter import GENERATION_KINDS

SIM_FIELD = {
    "requests": "admitted_requests",
    "input_tokens": "admitted_input_tokens",
    "output_tokens": "output_tokens",
}


async def run(generations: int, new_share: float, seed: int, tmp: Path) -> dict[str, Any]:
    """Run the generations; the meter's totals, the simulator's, and every outcome."""
    rng = random.Random(seed)
    rows = instructions()
    new = [text for text, is_new in rows if is_new]
    edits = [text for text, is_new in rows if not is_new]
    with local_serve(tmp) as base:
        sim = {"profile": "tier4", "speed": 20.0, "seed": seed}
        args = {
            "budget": {"tier": "tier4"},
            "upstream": {"simulator_url": base + "/claude-sim"},
            "pipeline": {"retrieval": {"uri": str(tmp / "catalog.lance")}},
            "ingress": {"user_generations_per_minute": 1000},
        }
        deploy(sim, args)
        async with httpx2.AsyncClient(base_url=base, timeout=600) as http:
            await wait_ready(http)
            before = (await http.get("/claude-sim/sim/stats")).json()
            outcomes: list[Outcome] = []
            gate = asyncio.Semaphore(4)

            async def one(n: int) -> None:
                is_new = rng.random() < new_share
                text = rng.choice(new if is_new else edits)
                page = None if is_new else landing_page(f"shop {n}").model_dump(mode="json")
                outcome = Outcome(f"u{n % 8}", False, time.monotonic())
                outcomes.append(outcome)
                async with gate:
                    await gateway_generate(http, outcome.user, f"cap{n}", text, page, outcome)

            await asyncio.gather(*(one(n) for n in range(generations)))
            after = (await http.get("/claude-sim/sim/stats")).json()
            metered = (await http.get("/v1/capacity")).json()["usage_per_generation"]
    sim_totals = {
        pool: {
            k: pool_sum(after, pool, f) - pool_sum(before, pool, f) for k, f in SIM_FIELD.items()
        }
        for pool in POOLS
    }
    return {"metered": metered, "sim": sim_totals, "statuses": _statuses(outcomes)}


def _statuses(outcomes: list[Outcome]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    return counts


def agreement(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Per pool and limit kind used: metered total, the simulator's, relative error."""
    rows = []
    for pool in POOLS:
        for kind in KINDS:
            metered = sum(
                result["metered"][g]["totals"].get(pool, {}).get(kind, 0.0)
                for g in GENERATION_KINDS
            )
            truth = result["sim"][pool][kind]
            if truth or metered:
                error = (metered - truth) / truth if truth else float("inf")
                rows.append(
                    {"pool": pool, "kind": kind, "metered": metered, "sim": truth, "error": error}
                )
    return rows


def save_profile(result: dict[str, Any], command: str) -> None:
    """The run's means per generation, as the planner's profile for config alone."""
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    profile = {
        "measured_by": f"`{command}` on claude_sim, {stamp}",
        "usage": {
            g: {
                "generations": result["metered"][g]["generations"],
                "per_generation": result["metered"][g]["per_generation"],
            }
            for g in GENERATION_KINDS
        },
    }
    PROFILE.write_text(json.dumps(profile, indent=2) + "\n")


def write_report(result: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    counts = {g: result["metered"][g]["generations"] for g in GENERATION_KINDS}
    worst = max(abs(r["error"]) for r in rows)
    body = (
        f"Generations through the gateway on claude_sim (tier-4 budget, speed 20, four at a "
        f"time): {counts['new_page']} new pages and {counts['edit']} edits; outcomes "
        f"{json.dumps(result['statuses'])}. The keeper's meter (tokens per generation, what "
        "`python -m serve_app.capacity` divides the budget by) against what the simulator's "
        "rate limiter counted, per model pool and limit kind.\n\n"
        + report.table(
            ["pool", "limit kind", "metered by the gateway", "counted by claude_sim", "error"],
            [
                [
                    r["pool"],
                    r["kind"],
                    f"{r['metered']:,.0f}",
                    f"{r['sim']:,.0f}",
                    f"{r['error']:+.2%}",
                ]
                for r in rows
            ],
        )
        + f"\n\nLargest error: **{worst:.2%}**."
    )
    report.write_section("capacity_check", "Capacity planning against ground truth", body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--generations", type=int, default=40)
    parser.add_argument("--new-share", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save-profile", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = asyncio.run(run(args.generations, args.new_share, args.seed, Path(tmp)))
    rows = agreement(result)
    report.save_json("capacity_check", {**result, "agreement": rows})
    write_report(result, rows)
    if args.save_profile:
        save_profile(result, f"python -m bench.capacity_check --generations {args.generations}")
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
