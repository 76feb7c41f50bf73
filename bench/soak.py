"""Soak: an hour of steady load, and the memory of every gateway process sampled throughout.

Everything the gateway keeps per job or per call must have a TTL or be pruned, so under
steady load the resident memory of the ingress, the budget keeper and the agent replicas
levels off after a warm-up. Virtual users generate pages against claude_sim (its own
process) through a gateway on Redis; every ``--every`` seconds the RSS of each live
gateway actor is read from its process. The report gives, per role, the RSS at the end of
the warm-up and at the end, and the growth per hour fitted over the samples after warm-up.

    python -m bench.soak --minutes 60
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx2
import psutil

from bench.harness import (
    Outcome,
    Run,
    Scenario,
    deploy,
    drive,
    gateway_generate,
    local_serve,
    uniform_gateway_args,
    wait_ready,
)
from bench.redisproc import redis_server
from bench.report import save_json, table, write_section
from bench.simproc import free_port, simulator
from claude_sim import SimConfig

LIMITS = {"rpm": 1_000, "itpm": 450_000, "otpm": 90_000}
"""Tier 2's sonnet limits for every pool: enough for the users below without queueing."""
ROLES = ("ingress", "agent", "BudgetKeeper", "ServeController", "ProxyActor")


def role_of(class_name: str) -> str | None:
    if class_name.startswith("ServeReplica:gateway:ingress"):
        return "ingress"
    if class_name.startswith("ServeReplica:gateway:agent_"):
        return "agent"
    return class_name if class_name in ROLES else None


def sample(dashboard: str) -> dict[str, list[float]]:
    """RSS in MB of every live gateway actor, by role (one value per process)."""
    from ray.util.state import list_actors

    out: dict[str, list[float]] = defaultdict(list)
    for actor in list_actors(address=dashboard, filters=[("state", "=", "ALIVE")], limit=10_000):
        role = role_of(actor.class_name)
        if role is None or not actor.pid:
            continue
        try:
            out[role].append(psutil.Process(actor.pid).memory_info().rss / 2**20)
        except psutil.NoSuchProcess:
            continue
    return dict(out)


def slope_per_hour(points: list[tuple[float, float]]) -> float | None:
    """Least-squares growth of ``(seconds, MB)`` points, in MB per hour."""
    if len(points) < 3:
        return None
    return statistics.linear_regression([t for t, _ in points], [m for _, m in points])[0] * 3600


async def sampler(
    dashboard: str, every_s: float, started: float, stop: asyncio.Event, into: list[Any]
) -> None:
    while not stop.is_set():
        rss = await asyncio.to_thread(sample, dashboard)
        into.append({"t": round(time.monotonic() - started, 1), "rss_mb": rss})
        await asyncio.wait([asyncio.create_task(stop.wait())], timeout=every_s)


async def run(minutes: float, users: int, every_s: float, seed: int) -> dict[str, Any]:
    scenario = Scenario(
        limits={}, speed=2.0, users=users, think_s=20.0, measure_s=minutes * 60, seed=seed
    )
    sim_config = SimConfig.model_validate(
        {"profile": "custom", "limits": {p: LIMITS for p in ("haiku", "sonnet", "opus")}}
        | {"speed": scenario.speed, "seed": seed}
    )
    samples: list[dict[str, Any]] = []
    soak = Run(scenario)
    with tempfile.TemporaryDirectory() as tmp, redis_server() as redis:
        async with simulator(sim_config) as (sim_url, _):
            port = free_port()
            env = {"REDIS_URL": redis.url}
            with local_serve(Path(tmp), env, dashboard_port=port) as base:
                deploy(
                    None,
                    uniform_gateway_args(sim_url, str(Path(tmp) / "catalog.lance"), LIMITS, 30),
                )
                limits = httpx2.Limits(max_connections=users * 2 + 20)
                async with httpx2.AsyncClient(base_url=base, timeout=600, limits=limits) as http:
                    await wait_ready(http)

                    async def generate(
                        user: str, page_id: str, text: str, page: Any, outcome: Outcome
                    ) -> None:
                        await gateway_generate(http, user, page_id, text, page, outcome)

                    stop = asyncio.Event()
                    started = time.monotonic()
                    dashboard = f"http://127.0.0.1:{port}"
                    watch = asyncio.create_task(sampler(dashboard, every_s, started, stop, samples))
                    load = asyncio.create_task(drive(scenario, generate, soak, stop))
                    await asyncio.sleep(minutes * 60)
                    stop.set()
                    await asyncio.gather(load, watch)
    return summarise(soak, samples, minutes)


def summarise(soak: Run, samples: list[dict[str, Any]], minutes: float) -> dict[str, Any]:
    warm_s = max(120.0, minutes * 60 * 0.2)
    roles: dict[str, Any] = {}
    for role in ROLES:
        series = [(s["t"], max(s["rss_mb"][role])) for s in samples if s["rss_mb"].get(role)]
        after = [p for p in series if p[0] >= warm_s]
        if not after:
            continue
        roles[role] = {
            "processes": max(len(s["rss_mb"].get(role, [])) for s in samples),
            "rss_mb_after_warmup": round(after[0][1], 1),
            "rss_mb_end": round(after[-1][1], 1),
            "rss_mb_peak": round(max(m for _, m in after), 1),
            "growth_mb_per_hour": _round(slope_per_hour(after)),
        }
    statuses: dict[str, int] = defaultdict(int)
    for outcome in soak.outcomes:
        statuses[outcome.status] += 1
    return {
        "minutes": minutes,
        "warmup_s": warm_s,
        "generations": len(soak.outcomes),
        "statuses": dict(statuses),
        "roles": roles,
        "samples": samples,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def write_report(result: dict[str, Any]) -> None:
    rows = [
        [
            role,
            r["processes"],
            r["rss_mb_after_warmup"],
            r["rss_mb_end"],
            r["rss_mb_peak"],
            r["growth_mb_per_hour"],
        ]
        for role, r in result["roles"].items()
    ]
    headers = ["process", "count", "RSS after warm-up MB", "RSS at end MB", "peak MB", "MB/hour"]
    body = (
        f"{result['minutes']:g} minutes of steady load, {result['generations']} generations "
        f"({json.dumps(result['statuses'])}); RSS of the largest process of each role, "
        f"growth fitted after a {result['warmup_s']:.0f} s warm-up.\n\n" + table(headers, rows)
    )
    minutes = result["minutes"]
    name = "soak" if minutes >= 60 else f"soak_{minutes:g}m"
    write_section(name, f"Soak: memory under {minutes:g} minutes of steady load", body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--users", type=int, default=30)
    parser.add_argument("--every", type=float, default=30.0, help="seconds between samples")
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    result = asyncio.run(run(args.minutes, args.users, args.every, args.seed))
    save_json("soak" if args.minutes >= 60 else f"soak_{args.minutes:g}m", result)
    write_report(result)
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=2))


if __name__ == "__main__":
    main()
