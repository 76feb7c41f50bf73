"""Chaos: every accepted generation ends exactly once while parts of the gateway die.

The gateway runs on a three-node Ray cluster (``bench.faults``) over a real Redis with
append-only persistence; claude_sim runs as its own process and injects 529s, 500s,
mid-stream errors and schema-violating tool input. Generations arrive at a steady pace,
and on a fixed schedule an agent replica, the budget keeper and the ingress replica are
SIGKILLed, Redis is killed and restarted, and a worker node is removed.

Clients behave as the HTTP contract lets them: submit with ``stream: false``, retry a
refusal after its ``Retry-After``, follow ``/v1/jobs/{id}/events`` and reconnect with
``Last-Event-ID`` when a stream breaks. Ground truth comes from outside the gateway: the
event log in Redis (terminal events per job) and claude_sim's counters (429s, answers
delivered twice for the same request).

    python -m bench.chaos --generations 200
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2

from agents.samples import landing_page
from bench.faults import ChaosCluster, chaos_cluster
from bench.harness import (
    SERVE_FLAGS,
    deploy,
    instructions,
    uniform_gateway_args,
    upstream_429s,
    wait_ready,
)
from bench.redisproc import redis_server
from bench.report import ROOT, save_json, table, write_section
from bench.simproc import simulator
from bench.simproc import stats as sim_stats
from claude_sim import FaultRates, SimConfig

RELIABILITY = ROOT / "RELIABILITY.md"
HEADER = (
    "# Reliability\n\nWhat the gateway promises under faults, measured. Every section below "
    "was written by the command it names; rerun it to refresh.\n"
)
FAULT_RATES = FaultRates(
    overloaded=0.05, api_error=0.02, stream_error=0.02, invalid_tool_input=0.02
)
LIMITS = {"rpm": 4_000, "itpm": 2_000_000, "otpm": 400_000}
"""Tier 4's sonnet limits for every pool: the run is about faults, not about queueing."""
TERMINAL = ("result", "error")
SEED = 11


@dataclass
class Generation:
    """One generation as its client saw it."""

    index: int
    instruction: str
    page: dict[str, Any] | None
    page_id: str
    user: str
    job_id: str | None = None
    status: str = "not accepted"
    refusals: Counter[str] = field(default_factory=Counter)
    reconnects: int = 0
    events_seen: int = 0
    submitted: float = 0.0
    finished: float | None = None
    details: list[str] = field(default_factory=list)
    """Messages of the errors and 5xx refusals it met, for the record."""


def workload(n: int, seed: int) -> list[Generation]:
    """``n`` generations drawn from the shared dataset, each made unique by a suffix."""
    rng = random.Random(seed)
    rows = instructions()
    out = []
    for i in range(n):
        text, new_page = rng.choice(rows)
        page_id = f"chaos-{i}"
        page = None if new_page else landing_page(page_id).model_dump(mode="json")
        out.append(Generation(i, f"{text} (request {i})", page, page_id, f"user-{i % 25}"))
    return out


async def submit(http: httpx2.AsyncClient, gen: Generation, give_up_at: float) -> None:
    """POST until accepted; refusals (429, 503, a dead connection) are retried later."""
    body: dict[str, Any] = {"instruction": gen.instruction, "user_id": gen.user, "stream": False}
    if gen.page is not None:
        body["page"] = gen.page
    gen.submitted = time.monotonic()
    while time.monotonic() < give_up_at:
        try:
            reply = await http.post(f"/v1/pages/{gen.page_id}/generate", json=body)
        except httpx2.HTTPError as exc:
            gen.refusals[type(exc).__name__] += 1
            await asyncio.sleep(2)
            continue
        if reply.status_code == 202:
            gen.job_id = reply.json()["job_id"]
            gen.status = "accepted"
            return
        gen.refusals[str(reply.status_code)] += 1
        if reply.status_code >= 500:
            gen.details.append(f"{reply.status_code}: {reply.text[:300]}")
        await asyncio.sleep(min(float(reply.headers.get("retry-after", "2")), 10))


async def follow(http: httpx2.AsyncClient, gen: Generation, give_up_at: float) -> None:
    """Read the job's events to its terminal one, reconnecting with ``Last-Event-ID``."""
    last_id: str | None = None
    while time.monotonic() < give_up_at:
        headers = {"last-event-id": last_id} if last_id else {}
        event = ""
        try:
            async with http.stream(
                "GET", f"/v1/jobs/{gen.job_id}/events", headers=headers
            ) as reply:
                if reply.status_code == 200:
                    async for line in reply.aiter_lines():
                        if line.startswith("id: "):
                            last_id = line[4:]
                        elif line.startswith("event: "):
                            event = line[7:]
                            gen.events_seen += 1
                        elif line.startswith("data: ") and event in TERMINAL:
                            data = json.loads(line[6:])
                            gen.status = (
                                "succeeded" if event == "result" else (f"error:{data.get('type')}")
                            )
                            if event == "error":
                                gen.details.append(str(data.get("message"))[:300])
                            gen.finished = time.monotonic()
                            return
        except httpx2.HTTPError:
            pass
        gen.reconnects += 1
        await asyncio.sleep(1)
    gen.status = "lost"


async def generation(http: httpx2.AsyncClient, gen: Generation, give_up_at: float) -> None:
    await submit(http, gen, give_up_at)
    if gen.job_id is not None:
        await follow(http, gen, give_up_at)


def schedule(chaos: ChaosCluster) -> dict[str, tuple[float, Any]]:
    """Each fault by name, and when it strikes as a share of the arrival window."""
    agent = "ServeReplica:gateway:agent_"
    return {
        "agent": (0.13, lambda: chaos.kill_actor("agent replica SIGKILL", agent + "component_gen")),
        "keeper": (0.27, lambda: chaos.kill_actor("budget keeper SIGKILL", "BudgetKeeper")),
        "ingress": (
            0.40,
            lambda: chaos.kill_actor("ingress replica SIGKILL", "ServeReplica:gateway:ingress"),
        ),
        "redis": (0.53, lambda: chaos.restart_redis("Redis killed and restarted", down_s=5)),
        "node": (0.70, lambda: chaos.remove_worker("worker node removed")),
        "agent2": (0.83, lambda: chaos.kill_actor("agent replica SIGKILL", agent + "layout_gen")),
    }


FAULTS = ("agent", "keeper", "ingress", "redis", "node", "agent2")


async def inject(chaos: ChaosCluster, started: float, load_s: float, names: list[str]) -> None:
    for name, (share, fault) in schedule(chaos).items():
        if name not in names:
            continue
        await asyncio.sleep(max(0.0, started + share * load_s - time.monotonic()))
        await asyncio.to_thread(fault)


async def terminal_events(redis_url: str, job_ids: list[str]) -> Counter[int]:
    """How many jobs have each count of terminal events in their log (ground truth)."""
    from serve_app.store.redis_backend import RedisStore

    store = RedisStore(redis_url)
    counts: Counter[int] = Counter()
    for job_id in job_ids:
        events = await store.read_events(job_id)
        counts[sum(1 for e in events if e.event in TERMINAL)] += 1
    return counts


async def run(
    n: int, load_s: float, drain_s: float, speed: float, seed: int, faults: list[str]
) -> dict[str, Any]:
    gens = workload(n, seed)
    sim_config = SimConfig.model_validate(
        {
            "profile": "custom",
            "limits": {p: LIMITS for p in ("haiku", "sonnet", "opus")},
            "speed": speed,
            "seed": seed,
            "faults": FAULT_RATES.model_dump(),
        }
    )
    with tempfile.TemporaryDirectory() as tmp, redis_server(appendonly=True) as redis:
        async with simulator(sim_config) as (sim_url, _):
            with chaos_cluster(redis, {}) as chaos:
                deploy(
                    None,
                    uniform_gateway_args(sim_url, str(Path(tmp) / "catalog.lance"), LIMITS, 60),
                )
                limits = httpx2.Limits(max_connections=n * 2 + 20)
                async with httpx2.AsyncClient(
                    base_url=chaos.url, timeout=httpx2.Timeout(30, read=60), limits=limits
                ) as http:
                    await wait_ready(http)
                    placement = chaos.placement()
                    before = await sim_stats(sim_url)
                    started = time.monotonic()
                    give_up_at = started + load_s + drain_s
                    faults = asyncio.create_task(inject(chaos, started, load_s, faults))
                    tasks = []
                    for gen in gens:
                        await asyncio.sleep(
                            max(0.0, started + gen.index * load_s / n - time.monotonic())
                        )
                        tasks.append(asyncio.create_task(generation(http, gen, give_up_at)))
                    await asyncio.gather(*tasks)
                    await faults
                    after = await sim_stats(sim_url)
                    placement_after = chaos.placement()
                job_ids = [g.job_id for g in gens if g.job_id]
                terminals = await terminal_events(redis.url, job_ids)
                injected = [{**f, "at": round(f["at"] - started, 1)} for f in chaos.injected]
    result = summarise(
        gens, before, after, terminals, injected, placement, placement_after, started
    )
    return result | {"seed": seed}


def faults_by_kind(stats: dict[str, Any]) -> Counter[str]:
    out: Counter[str] = Counter()
    for key in stats.get("keys", {}).values():
        for model in key["models"].values():
            out.update(model["faults"])
    return out


def sample(gen: Generation) -> dict[str, Any]:
    """A generation that did not succeed, for the JSON record (without its page)."""
    fields = ("index", "instruction", "job_id", "status", "reconnects", "events_seen", "details")
    return {name: getattr(gen, name) for name in fields} | {"refusals": dict(gen.refusals)}


def summarise(
    gens: list[Generation],
    before: dict[str, Any],
    after: dict[str, Any],
    terminals: Counter[int],
    injected: list[dict[str, Any]],
    placement: dict[str, Any],
    placement_after: dict[str, Any],
    started: float,
) -> dict[str, Any]:
    accepted = [g for g in gens if g.job_id]
    statuses = Counter(g.status for g in accepted)
    upstream = faults_by_kind(after) - faults_by_kind(before)
    times = [g.finished - g.submitted for g in accepted if g.finished is not None]
    return {
        "generations": len(gens),
        "accepted": len(accepted),
        "not_accepted": len(gens) - len(accepted),
        "succeeded": statuses.get("succeeded", 0),
        "errors": {s: n for s, n in statuses.items() if s.startswith("error:")},
        "lost": statuses.get("lost", 0) + statuses.get("accepted", 0),
        "jobs_by_terminal_events": {str(k): v for k, v in sorted(terminals.items())},
        "run_twice": sum(v for k, v in terminals.items() if k > 1),
        "answers_repeated": after["replies"]["repeated"] - before["replies"]["repeated"],
        "answers_distinct": after["replies"]["distinct"] - before["replies"]["distinct"],
        "upstream_429s": upstream_429s(after) - upstream_429s(before),
        "upstream_faults_injected": dict(upstream),
        "refusals": dict(sum((g.refusals for g in gens), Counter())),
        "reconnects": sum(g.reconnects for g in accepted),
        "time_to_end_s": {
            "p50": statistics.median(times) if times else None,
            "max": max(times) if times else None,
        },
        "gateway_faults": injected,
        "placement_before": placement,
        "placement_after": placement_after,
        "makespan_s": max((g.finished for g in accepted if g.finished), default=started) - started,
        "samples": [sample(g) for g in gens if g.status != "succeeded" or g.details][:40],
    }


def write_report(result: dict[str, Any]) -> None:
    faults = [[f["at"], f["fault"], f["what"]] for f in result["gateway_faults"]]
    upstream = result["upstream_faults_injected"]
    accepted = result["accepted"]
    share = result["succeeded"] / accepted if accepted else 0.0
    outcome = [
        ["generations submitted", result["generations"]],
        ["accepted", accepted],
        ["succeeded", f"{result['succeeded']} ({share:.1%} of accepted)"],
        ["failed with a clear error", sum(result["errors"].values()) or 0],
        *[[f"· {kind}", n] for kind, n in sorted(result["errors"].items())],
        ["lost (accepted, no result or error)", result["lost"]],
        ["run twice (jobs with more than one terminal event in the log)", result["run_twice"]],
        ["upstream answers delivered twice for the same request", result["answers_repeated"]],
        ["upstream 429s (none injected)", result["upstream_429s"]],
        ["stream reconnects by clients", result["reconnects"]],
        ["refused submissions, retried", json.dumps(result["refusals"])],
    ]
    body = "\n\n".join(
        [
            "Faults injected into the gateway (seconds after the first submission):",
            table(["at s", "fault", "what it hit"], faults),
            "Faults injected by claude_sim: "
            + ", ".join(f"{n} {kind}" for kind, n in sorted(upstream.items()))
            + f" (of {result['answers_distinct']} distinct requests answered).",
            table(["generations", "count"], outcome),
            "An answer delivered twice is a call whose answer reached an agent replica that "
            "died, or a stage retried, before it was passed on: paid twice, used once. A "
            "`500` refusal is the Serve proxy's plain-text answer for a request in flight on "
            "the ingress replica that was killed; `503`s are the gateway's JSON while Redis "
            "or the keeper was down.",
            f"Makespan {result['makespan_s']:.0f} s; time to the terminal event p50 "
            f"{result['time_to_end_s']['p50']:.1f} s, max {result['time_to_end_s']['max']:.1f} s. "
            f"Gateway actors per node before: `{json.dumps(result['placement_before'])}`; "
            f"after: `{json.dumps(result['placement_after'])}`.",
        ]
    )
    name, title = section(result)
    write_section(name, title, body, path=RELIABILITY, header=HEADER)


def section(result: dict[str, Any]) -> tuple[str, str]:
    """The run's report section: the default seed's run is the one the fixes were found on;
    any other seed is blind, and Serve's flags are an evaluation, each beside it."""
    name, title = "chaos", "Chaos"
    if result["seed"] != SEED:
        name, title = f"{name}_seed{result['seed']}", f"{title}, seed {result['seed']}"
    if result.get("serve_flags"):
        name, title = f"{name}_serve_flags", f"{title}, Serve's HAProxy and throughput flags"
    return name, title


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generations", type=int, default=200)
    parser.add_argument("--load", type=float, default=150.0, help="seconds of arrivals")
    parser.add_argument("--drain", type=float, default=300.0, help="seconds to finish after")
    parser.add_argument("--speed", type=float, default=4.0, help="claude_sim latency divisor")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument(
        "--faults", default=",".join(FAULTS), help=f"which to inject, of {','.join(FAULTS)}"
    )
    parser.add_argument(
        "--serve-flags",
        action="store_true",
        help="run Serve with " + " ".join(f"{k}={v}" for k, v in SERVE_FLAGS.items()),
    )
    parser.add_argument("--out", type=Path, help="write the JSON here and no report (tests)")
    args = parser.parse_args()
    if args.serve_flags:
        os.environ.update(SERVE_FLAGS)  # every node of the cluster inherits it
    faults = [f for f in args.faults.split(",") if f]
    if unknown := set(faults) - set(FAULTS):
        parser.error(f"unknown faults: {', '.join(sorted(unknown))}")
    result = asyncio.run(
        run(args.generations, args.load, args.drain, args.speed, args.seed, faults)
    ) | {"serve_flags": args.serve_flags}
    if args.out:
        args.out.write_text(json.dumps(result, indent=2, sort_keys=True))
    else:
        name, _ = section(result)
        save_json(name, result)
        write_report(result)
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=2))


if __name__ == "__main__":
    main()
