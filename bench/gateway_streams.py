"""What the gateway itself costs: per agent hop against a direct SDK call, and open streams.

1. Overhead per agent hop: the same agent call, on a near-instant claude_sim, made
   directly through the SDK in this process and through the gateway's agent deployment
   (Serve handle, budget acquire and settle, single-flight cache); medians side by side.
2. Concurrent SSE streams: 1,000, 3,000, 5,000 clients in turn follow the event streams of
   running generations through Serve's proxy and the ingress, over bare sockets; reported
   are errors, each event's delay from its making to its arrival, the gap between writes,
   and the CPU and memory of the proxy and the ingress.

Both are measured twice, side by side: Serve as it ships, and with its HAProxy ingress and
throughput-optimised flags (each in a fresh Ray, in a child process with that environment),
with the gateway's state in a Redis server as in production. During the largest stream
count py-spy samples the ingress and Serve's Python proxy: where their CPU goes.

    python -m bench.gateway_streams --streams 1000,3000,5000 --hold 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import anthropic
import httpx2
import psutil

from agents.config import PipelineConfig
from agents.prompting import AgentTask, GenerationContext
from agents.retrieval import RetrievalConfig
from agents.runner import AgentRunner, sdk_send
from agents.samples import landing_page
from bench import report
from bench.harness import SERVE_FLAGS, deploy, local_serve, pct, wait_ready
from bench.profile import RATE_HZ, Sampler
from bench.redisproc import redis_server
from serve_app.agent_pool import CallMeta

WARMUP = 5
"""Hop pairs dropped first: connections and caches warming."""
HOP_PAUSE_S = 0.05
"""Quiet before each timed call, for what the one before left running."""
HUGE = {"rpm": 1_000_000, "itpm": 1_000_000_000, "otpm": 1_000_000_000}


def task(n: int) -> AgentTask:
    page = landing_page("hop")
    context = GenerationContext("hop", f"Make the hero headline bigger, take {n}", page)
    return AgentTask("styles", context, page)


async def hop_overhead(base: str, samples: int) -> dict[str, Any]:
    """One styles-agent call, direct and through the gateway, ``samples`` pairs.

    Each pair runs in alternating order with a pause before each call, so that neither
    side of a pair runs beside the other's leftovers (the gateway settles after its
    answer); the overhead is the median of the pairs' differences, which a slow drift
    of this noisy machine shifts on both sides alike.
    """
    from ray import serve

    client = anthropic.AsyncAnthropic(
        api_key="sk-bench", base_url=base + "/claude-sim", max_retries=0
    )
    runner = AgentRunner(PipelineConfig(), sdk_send(client))
    handle = serve.get_deployment_handle("agent_styles", app_name="gateway")

    async def direct(n: int) -> float:
        await asyncio.sleep(HOP_PAUSE_S)
        started = time.perf_counter()
        await runner.run(task(n))
        return time.perf_counter() - started

    async def through(n: int) -> float:
        await asyncio.sleep(HOP_PAUSE_S)
        started = time.perf_counter()
        # The call as the ingress makes it: streamed, with the replica's heartbeat.
        stream = handle.options(stream=True).run_beating.remote(
            task(10_000 + n), CallMeta(f"job-{n}", "bench", "hop")
        )
        async for _ in stream:
            pass
        return time.perf_counter() - started

    pairs = []
    for n in range(samples + WARMUP):
        if n % 2:
            pairs.append((await direct(n), await through(n)))
        else:
            gateway = await through(n)
            pairs.append((await direct(n), gateway))
    await client.close()
    kept = pairs[WARMUP:]
    sides = zip(*kept, strict=True)
    ms = [[round(1000 * q, 1) for q in statistics.quantiles(side, n=4)] for side in sides]
    extra = [1000 * (t - d) for d, t in kept]
    return {
        "direct_ms": ms[0][1],
        "gateway_ms": ms[1][1],
        "direct_quartiles_ms": ms[0],
        "gateway_quartiles_ms": ms[1],
        "overhead_ms": round(statistics.median(extra), 1),
        "overhead_of_medians_ms": round(ms[1][1] - ms[0][1], 1),
        "samples": samples,
    }


EMITTED = re.compile(rb'"emitted_at": ([0-9.]+)')


@dataclass
class StreamStats:
    """What the clients saw: gaps between frames, event delays, errors."""

    gaps: list[float] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


async def follow(host: str, port: int, path: str, seen: StreamStats, stop_at: float) -> None:
    """Read one SSE stream over a bare socket until it ends or time is up; every event's
    delay is its arrival less the ``emitted_at`` the gateway stamped it with (events made
    before the stream opened are a replay, not a delay, and are left out)."""
    try:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(f"GET {path} HTTP/1.1\r\nhost: {host}\r\n\r\n".encode())
        status = await reader.readline()
        if b" 200 " not in status:
            seen.errors.append(status.decode().strip())
            return
        last, opened = time.monotonic(), time.time()
        while time.monotonic() < stop_at:
            try:
                chunk = await asyncio.wait_for(reader.read(65536), stop_at - time.monotonic())
            except TimeoutError:
                break
            if not chunk:
                break
            now, arrived = time.monotonic(), time.time()
            seen.gaps.append(now - last)
            made = [float(at) for at in EMITTED.findall(chunk)]
            seen.delays += [arrived - at for at in made if at >= opened]
            last = now
        writer.close()
    except OSError as exc:
        seen.errors.append(type(exc).__name__)


WATCHED = {"proxy": ("ProxyActor", "haproxy"), "ingress": ("ServeReplica:gateway:ingress",)}
MODES = {"default": {}, "flags": SERVE_FLAGS}
"""Serve as it ships, and with its HAProxy ingress and throughput-optimised flags."""


def serve_processes() -> dict[str, list[psutil.Process]]:
    """The proxy's and the ingress's processes, by role."""
    out: dict[str, list[psutil.Process]] = {role: [] for role in WATCHED}
    for proc in psutil.process_iter(["cmdline", "name"]):
        title = " ".join(proc.info["cmdline"] or []) or (proc.info["name"] or "")
        for role, names in WATCHED.items():
            if any(name in title for name in names):
                out[role].append(proc)
    return out


def usage(procs: dict[str, list[psutil.Process]]) -> dict[str, tuple[float, int]]:
    """CPU seconds so far and resident MB, by role."""
    out = {}
    for role, members in procs.items():
        cpu, rss = 0.0, 0
        for proc in members:
            try:
                times = proc.cpu_times()
                cpu += times.user + times.system
                rss += round(proc.memory_info().rss / 2**20)
            except psutil.NoSuchProcess:
                continue
        out[role] = (cpu, rss)
    return out


async def start_generations(http: httpx2.AsyncClient, count: int, tag: str) -> list[str]:
    """Start ``count`` new-page generations; their events URLs."""
    urls = []
    for n in range(count):
        reply = await http.post(
            f"/v1/pages/{tag}{n}/generate",
            json={
                "instruction": f"Create a landing page for shop {uuid.uuid4().hex[:4]}",
                "stream": False,
                "user_id": f"{tag}u{n}",
            },
        )
        urls.append(reply.json()["events_url"])
    return urls


def samplers(procs: dict[str, list[psutil.Process]], seconds: float) -> dict[str, Sampler]:
    """py-spy on the ingress and on Serve's Python proxy (HAProxy is not Python)."""
    out = {}
    for role, members in procs.items():
        python = [p for p in members if "haproxy" not in (p.info["name"] or "")]
        if python:
            out[role] = Sampler(python[0].pid, seconds)
    return out


async def hold_streams(
    port: int, jobs: list[str], streams: int, hold_s: float, *, profile: bool = False
) -> dict[str, Any]:
    """``streams`` clients follow the jobs' events for ``hold_s``: what they saw, and what
    the proxy and the ingress spent on it (sampled by py-spy with ``profile``)."""
    procs = serve_processes()
    before = usage(procs)
    sampling = samplers(procs, hold_s) if profile else {}
    seen = StreamStats()
    stop_at = time.monotonic() + hold_s
    followers = [
        follow("127.0.0.1", port, jobs[i % len(jobs)], seen, stop_at) for i in range(streams)
    ]
    peak = {role: mb for role, (_, mb) in before.items()}

    async def watch() -> None:
        while time.monotonic() < stop_at:
            for role, (_, mb) in usage(procs).items():
                peak[role] = max(peak[role], mb)
            await asyncio.sleep(2)

    await asyncio.gather(watch(), *followers)
    after = usage(procs)
    frames = len(seen.gaps)
    cpu_ms = {
        role: round((after[role][0] - before[role][0]) * 1000 / max(1, frames), 3)
        for role in WATCHED
    }
    return {
        "streams": streams,
        "hold_s": hold_s,
        "errors": len(seen.errors),
        "error_kinds": sorted(set(seen.errors)),
        "writes": frames,
        "events": len(seen.delays),
        "gap_p50_s": pct(seen.gaps, 0.5),
        "gap_p99_s": pct(seen.gaps, 0.99),
        "delay_p50_s": pct(seen.delays, 0.5),
        "delay_p99_s": pct(seen.delays, 0.99),
        "delay_max_s": round(max(seen.delays), 2) if seen.delays else None,
        "cpu_ms_per_write": cpu_ms,
        "rss_idle_mb": {role: mb for role, (_, mb) in before.items()},
        "rss_peak_mb": peak,
        "profile": {role: sampler.result() for role, sampler in sampling.items()},
    }


async def measure(counts: list[int], hold_s: float, samples: int) -> dict[str, Any]:
    """In a fresh local Ray: the hop overhead, then each stream count in turn."""
    limits = {p: HUGE for p in ("haiku", "sonnet", "opus")}
    with (
        redis_server() as redis,
        tempfile.TemporaryDirectory() as tmp,
        local_serve(Path(tmp), {"REDIS_URL": redis.url}) as base,
    ):
        args = {
            "budget": {"tier": "custom", "limits": limits},
            "upstream": {"simulator_url": base + "/claude-sim"},
            "pipeline": {
                "retrieval": RetrievalConfig(uri=str(Path(tmp) / "catalog.lance")).model_dump()
            },
            "ingress": {
                "ping_interval_s": 1.0,
                "user_generations_per_minute": 1000,
                # One replica on two cores holds every stream, so that what is measured is
                # its cost per stream, not Serve queueing the streams past its limit.
                "max_ongoing_requests": max(counts) + 100,
            },
        }
        deploy({"profile": "custom", "limits": limits, "speed": 1000}, args)
        runs = []
        async with httpx2.AsyncClient(base_url=base, timeout=120) as http:
            await wait_ready(http)
            hop = await hop_overhead(base, samples)
            # Slow the simulator down so generations run while the streams follow them.
            deploy({"profile": "custom", "limits": limits, "speed": 0.2}, None)
            for n, count in enumerate(counts):
                jobs = await start_generations(http, 10, f"s{n}-")
                port, last = httpx2.URL(base).port or 80, n == len(counts) - 1
                runs.append(await hold_streams(port, jobs, count, hold_s, profile=last))
                await asyncio.sleep(5)  # the streams' sockets close before the next count
        return {"hop": hop, "runs": runs}


def run_mode(mode: str, counts: list[int], hold_s: float, samples: int) -> dict[str, Any]:
    """``measure`` in a child process whose Ray starts with ``mode``'s environment."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        command = [sys.executable, "-m", "bench.gateway_streams", "--child", out.name]
        command += ["--streams", ",".join(map(str, counts)), "--hold", str(hold_s)]
        command += ["--samples", str(samples)]
        subprocess.run(command, env={**os.environ, **MODES[mode]}, check=True)
        return cast(dict[str, Any], json.loads(Path(out.name).read_text()))


def _quartiles(q: list[float]) -> str:
    return f"{q[1]} ms ({q[0]}-{q[2]})"


def write_report(result: dict[str, Any], samples: int) -> None:
    hops = result["modes"]
    last = next(iter(hops.values()))["runs"][-1]["streams"]
    body = (
        "**Overhead per agent hop.** One `styles` agent call on a near-instant claude_sim "
        f"(speed 1000), {samples} pairs of calls (after {WARMUP} dropped), each pair in "
        f"alternating order with {HOP_PAUSE_S * 1000:.0f} ms of quiet before each call: "
        "directly through the SDK, and through the gateway's agent deployment (Serve "
        "handle, the budget grant from the replica's lease or the keeper, one settle, the "
        "agent-call cache in Redis). Overhead: the median of the pairs' differences "
        "(the difference of the medians in brackets); times are median (quartiles).\n\n"
        + report.table(
            ["Serve", "direct SDK call", "through the gateway", "overhead per hop"],
            [
                [
                    mode,
                    _quartiles(h["hop"]["direct_quartiles_ms"]),
                    _quartiles(h["hop"]["gateway_quartiles_ms"]),
                    f"**{h['hop']['overhead_ms']} ms** ({h['hop']['overhead_of_medians_ms']} ms)",
                ]
                for mode, h in hops.items()
            ],
        )
        + f"\n\n**Concurrent SSE streams** following 10 running generations through "
        f"Serve's proxy and the ingress for {result['hold_s']:.0f} s each (pings every "
        "1 s). Delay: an event's arrival at the client less the `emitted_at` the gateway "
        "stamped it with when it was made. CPU per write: the process's CPU time over "
        "the hold divided by the writes the clients read (events and pings).\n\n"
        + report.table(
            [
                "Serve",
                "streams",
                "errors",
                "writes read",
                "events read",
                "event delay p50 / p99 / max",
                "gap p50 / p99",
                "CPU ms per write (proxy, ingress)",
                "RSS peak MB (proxy, ingress)",
            ],
            [
                [
                    mode,
                    r["streams"],
                    r["errors"],
                    r["writes"],
                    r["events"],
                    f"{r['delay_p50_s']} / {r['delay_p99_s']} / {r['delay_max_s']} s",
                    f"{r['gap_p50_s']} / {r['gap_p99_s']} s",
                    f"{r['cpu_ms_per_write']['proxy']}, {r['cpu_ms_per_write']['ingress']}",
                    f"{r['rss_peak_mb']['proxy']}, {r['rss_peak_mb']['ingress']}",
                ]
                for mode, h in hops.items()
                for r in h["runs"]
            ],
        )
        + f"\n\n**Where the time goes** during the {last} streams: py-spy sampling the "
        f"process at {RATE_HZ} Hz; busy is the share of samples due in which it ran, then "
        "what share of its samples each package's code was running (the innermost frame), "
        "and its busiest frame.\n\n"
        + report.table(
            ["Serve", "process", "busy", "share of samples by package", "busiest frame"],
            [
                [
                    mode,
                    role,
                    f"{spent['busy']:.0%}",
                    ", ".join(f"{k} {v:.0%}" for k, v in spent["by_package"].items() if v >= 0.02),
                    f"`{spent['top_frames'][0][0]}` {spent['top_frames'][0][1]:.0%}"
                    if spent["top_frames"]
                    else "",
                ]
                for mode, h in hops.items()
                for role, spent in h["runs"][-1]["profile"].items()
            ],
        )
        + "\n\n`flags` is `"
        + " ".join(f"{k}={v}" for k, v in SERVE_FLAGS.items())
        + "`."
    )
    report.write_section("gateway_streams", "Gateway: hop overhead and concurrent streams", body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--streams", default="1000,3000,5000", help="stream counts, in turn")
    parser.add_argument("--hold", type=float, default=20)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--modes", default=",".join(MODES), help="Serve configurations")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    counts = [int(n) for n in args.streams.split(",")]
    if args.child:
        result = asyncio.run(measure(counts, args.hold, args.samples))
        Path(args.child).write_text(json.dumps(result))
        return
    modes = {
        mode: run_mode(mode, counts, args.hold, args.samples) for mode in args.modes.split(",")
    }
    result = {"hold_s": args.hold, "modes": modes}
    report.save_json("gateway_streams", result)
    write_report(result, args.samples)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
