"""The gateway under a load at least twice what the simulated Claude budget allows.

claude_sim runs with small custom limits; sixty virtual users ask for generations from
the shared dataset's mix. Measured over the window after a warm-up that drains the
initially full buckets, once with OTPM counted up front and once as produced: upstream
429s, the share of every limit used, and every request's fate.

    python -m bench.gateway_load --measure 180
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path
from typing import Any

from bench import report
from bench.harness import Scenario, run_gateway, summarise

LIMITS = {
    "sonnet": {"rpm": 40, "itpm": 40_000, "otpm": 6_000},
    "haiku": {"rpm": 60, "itpm": 80_000, "otpm": 12_000},
    "opus": {"rpm": 40, "itpm": 40_000, "otpm": 6_000},
}


def mode_row(mode: str, r: dict[str, Any]) -> list[Any]:
    """One OTPM mode's line of the report: throughput, the binding limit, fates."""
    usage = r["usage_of_limits"]
    binding_pool, binding_kind = max(
        ((p, k) for p in ("sonnet", "haiku") for k in usage[p]),
        key=lambda pk: usage[pk[0]][pk[1]],
    )
    kinds = ("requests", "input_tokens", "output_tokens")
    return [
        mode,
        r["offered_per_min"],
        r["generations_per_min"],
        f"{binding_pool} {binding_kind}: {usage[binding_pool][binding_kind]:.1%}",
        " / ".join(f"{usage['sonnet'][k]:.0%}" for k in kinds),
        " / ".join(f"{usage['haiku'][k]:.0%}" for k in kinds),
        r["upstream_429s"],
        r["lost"],
        ", ".join(f"{k} {v}" for k, v in sorted(r["statuses"].items())),
    ]


async def main(measure: float, warmup: float, users: int) -> None:
    results: dict[str, Any] = {}
    for mode in ("produced", "estimate"):
        scenario = Scenario(
            limits=LIMITS, otpm_mode=mode, users=users, warmup_s=warmup, measure_s=measure
        )
        with tempfile.TemporaryDirectory() as tmp:
            run = await run_gateway(scenario, Path(tmp))
        results[mode] = summarise(run)
        print(mode, results[mode], flush=True)
    report.save_json("gateway_load", {"limits": LIMITS, "results": results})
    rows = [mode_row(mode, r) for mode, r in results.items()]
    body = (
        f"claude_sim limits (per minute): sonnet {LIMITS['sonnet']}, haiku "
        f"{LIMITS['haiku']}; {users} virtual users, {warmup:.0f} s warm-up (the buckets "
        f"start full), {measure:.0f} s measured. Offered and completed generations per "
        "minute, the share of each limit admitted by the simulator in the measured window, "
        "upstream 429s (simulator's count), requests lost (accepted, never finished), and "
        "every request's fate (refused = 429 from the gateway with Retry-After, by design "
        "when the queue would be too long).\n\n"
        + report.table(
            [
                "OTPM mode",
                "offered / min",
                "completed / min",
                "binding limit used",
                "sonnet RPM / ITPM / OTPM",
                "haiku RPM / ITPM / OTPM",
                "upstream 429s",
                "lost",
                "outcomes",
            ],
            rows,
        )
    )
    report.write_section("gateway_load", "Gateway: overload against the global budget", body)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--measure", type=float, default=180)
    parser.add_argument("--warmup", type=float, default=120)
    parser.add_argument("--users", type=int, default=60)
    args = parser.parse_args()
    asyncio.run(main(args.measure, args.warmup, args.users))
