"""Drive claude_sim over its limits and check it admits each limit's worth per minute.

Three API keys run at once, each with a workload that makes one limit bind: many tiny
requests (RPM), long prompts (ITPM), long answers (OTPM). Workers retry a 429 after a
short pause, so the offered load stays above every limit. After a warm-up that drains
the initially full buckets, the admitted requests and tokens of a measured window are
compared with the limits; both OTPM modes are run.

    python -m bench.sim_limits --seconds 60
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass
from typing import Any

import anthropic
import httpx2

from bench import report
from bench.simproc import simulator, stats
from claude_sim import PoolLimits, SimConfig
from claude_sim.stats import key_fingerprint

POOL = "haiku"
MODEL = "claude-haiku-4-5"
LIMITS = PoolLimits(rpm=600, itpm=60_000, otpm=30_000)
LOOSE = PoolLimits(rpm=100_000, itpm=100_000_000, otpm=100_000_000)


@dataclass(frozen=True)
class Workload:
    """One key's traffic: which limit it saturates and the request that does it."""

    limit: str
    key: str
    prompt_words: int
    max_tokens: int
    workers: int


WORKLOADS = (
    Workload("requests", "sk-bench-rpm", 5, 5, 12),
    Workload("input_tokens", "sk-bench-itpm", 1_000, 5, 6),
    Workload("output_tokens", "sk-bench-otpm", 5, 100, 6),
)


def config(mode: str) -> SimConfig:
    # Each key saturates a different limit; the others are out of reach for it.
    return SimConfig(
        profile="custom",
        limits={"haiku": LIMITS, "sonnet": LOOSE, "opus": LOOSE},
        otpm_mode=mode,
        speed=20.0,
    )  # type: ignore[arg-type]


async def worker(
    client: anthropic.AsyncAnthropic, load: Workload, stop: float, counts: dict[str, int]
) -> None:
    prompt = " ".join(["section"] * load.prompt_words)
    while time.monotonic() < stop:
        try:
            await client.messages.create(
                model=MODEL,
                max_tokens=load.max_tokens,
                messages=[{"role": "user", "content": prompt}],
            )
            counts["ok"] += 1
        except anthropic.RateLimitError:
            counts["429"] += 1
            await asyncio.sleep(0.05)


def pool_of(snapshot: dict[str, Any], key: str) -> dict[str, Any]:
    pools: dict[str, Any] = snapshot["keys"].get(key_fingerprint(key), {}).get("pools", {})
    return pools.get(POOL, {"admitted_requests": 0, "admitted_input_tokens": 0, "output_tokens": 0})


async def run_mode(mode: str, warmup: float, seconds: float) -> list[dict[str, Any]]:
    async with simulator(config(mode)) as (url, _):
        http = httpx2.AsyncClient(limits=httpx2.Limits(max_connections=200), timeout=60)
        clients = {
            w.key: anthropic.AsyncAnthropic(
                api_key=w.key, base_url=url, max_retries=0, http_client=http
            )
            for w in WORKLOADS
        }
        counts = {w.key: {"ok": 0, "429": 0} for w in WORKLOADS}
        stop = time.monotonic() + warmup + seconds + 5
        tasks = [
            asyncio.create_task(worker(clients[w.key], w, stop, counts[w.key]))
            for w in WORKLOADS
            for _ in range(w.workers)
        ]
        await asyncio.sleep(warmup)
        before, t0 = await stats(url), time.monotonic()
        await asyncio.sleep(seconds)
        after, t1 = await stats(url), time.monotonic()
        await asyncio.gather(*tasks)
        await http.aclose()
    window = t1 - t0
    field = {
        "requests": "admitted_requests",
        "input_tokens": "admitted_input_tokens",
        "output_tokens": "output_tokens",
    }
    limit_of = {"requests": LIMITS.rpm, "input_tokens": LIMITS.itpm, "output_tokens": LIMITS.otpm}
    rows = []
    for load in WORKLOADS:
        admitted = (
            pool_of(after, load.key)[field[load.limit]]
            - pool_of(before, load.key)[field[load.limit]]
        )
        per_minute = admitted * 60 / window
        rows.append(
            {
                "mode": mode,
                "limit": load.limit,
                "configured": limit_of[load.limit],
                "admitted_per_min": round(per_minute, 1),
                "ratio": round(per_minute / limit_of[load.limit], 4),
                "window_s": round(window, 2),
                "ok": counts[load.key]["ok"],
                "rate_limited": counts[load.key]["429"],
            }
        )
    return rows


async def main(seconds: float, warmup: float) -> None:
    rows = []
    for mode in ("produced", "estimate"):
        print(f"otpm_mode={mode}: {warmup:.0f}s warm-up, {seconds:.0f}s measured ...", flush=True)
        rows += await run_mode(mode, warmup, seconds)
    report.save_json("sim_limits", {"rows": rows, "limits": LIMITS.model_dump()})
    body = (
        f"Three keys hammer one model pool at once (limits {LIMITS.rpm} RPM, {LIMITS.itpm:,} "
        f"ITPM, {LIMITS.otpm:,} OTPM); each workload makes one limit bind and retries 429s "
        f"after 50 ms. After {warmup:.0f} s of warm-up (the buckets start full), admitted "
        f"amounts over {seconds:.0f} s, from the simulator's own counters:\n\n"
        + report.table(
            [
                "OTPM mode",
                "binding limit",
                "limit / min",
                "admitted / min",
                "ratio",
                "200s",
                "429s",
            ],
            [
                [
                    r["mode"],
                    r["limit"],
                    f"{r['configured']:,}",
                    f"{r['admitted_per_min']:,}",
                    f"{r['ratio']:.3f}",
                    r["ok"],
                    r["rate_limited"],
                ]
                for r in rows
            ],
        )
    )
    report.write_section("sim_limits", "claude_sim: admitted load against its limits", body)
    for r in rows:
        print(r)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--warmup", type=float, default=15)
    args = parser.parse_args()
    asyncio.run(main(args.seconds, args.warmup))
