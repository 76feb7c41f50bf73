"""What the gateway itself costs: per agent hop against a direct SDK call, and 1,000 streams.

1. Overhead per agent hop: the same agent call, on a near-instant claude_sim, made
   directly through the SDK in this process and through the gateway's agent deployment
   (Serve handle, budget acquire/settle/observe, single-flight cache); medians side by side.
2. Concurrent SSE streams: 1,000 clients follow the event streams of running generations
   through Serve's proxy and the ingress, over bare sockets; reported are errors, the gap
   between frames (events and keep-alive pings), and the memory of the proxy and ingress.

    python -m bench.gateway_streams --streams 1000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import psutil

from agents.config import PipelineConfig
from agents.prompting import AgentTask, GenerationContext
from agents.retrieval import RetrievalConfig
from agents.runner import AgentRunner, sdk_send
from agents.samples import landing_page
from bench import report
from bench.harness import deploy, local_serve, pct, wait_ready
from serve_app.agent_pool import CallMeta

HUGE = {"rpm": 1_000_000, "itpm": 1_000_000_000, "otpm": 1_000_000_000}


def task(n: int) -> AgentTask:
    page = landing_page("hop")
    context = GenerationContext("hop", f"Make the hero headline bigger, take {n}", page)
    return AgentTask("styles", context, page)


async def hop_overhead(base: str, samples: int) -> dict[str, Any]:
    """Median time of one styles-agent call, direct and through the gateway."""
    from ray import serve

    client = anthropic.AsyncAnthropic(
        api_key="sk-bench", base_url=base + "/claude-sim", max_retries=0
    )
    runner = AgentRunner(PipelineConfig(), sdk_send(client))
    handle = serve.get_deployment_handle("agent_styles", app_name="gateway")
    direct, through = [], []
    for n in range(samples):
        started = time.perf_counter()
        await runner.run(task(n))
        direct.append(time.perf_counter() - started)
        started = time.perf_counter()
        # The call as the ingress makes it: streamed, with the replica's heartbeat.
        stream = handle.options(stream=True).run_beating.remote(
            task(10_000 + n), CallMeta(f"job-{n}", "bench", "hop")
        )
        async for _ in stream:
            pass
        through.append(time.perf_counter() - started)
    await client.close()
    d, t = statistics.median(direct[2:]), statistics.median(through[2:])
    return {
        "direct_ms": round(d * 1000, 1),
        "gateway_ms": round(t * 1000, 1),
        "overhead_ms": round((t - d) * 1000, 1),
        "samples": samples,
    }


async def follow(
    host: str, port: int, path: str, gaps: list[float], errors: list[str], stop_at: float
) -> None:
    """Read one SSE stream over a bare socket until it ends or time is up."""
    try:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(f"GET {path} HTTP/1.1\r\nhost: {host}\r\n\r\n".encode())
        status = await reader.readline()
        if b" 200 " not in status:
            errors.append(status.decode().strip())
            return
        last = time.monotonic()
        while time.monotonic() < stop_at:
            try:
                chunk = await asyncio.wait_for(reader.read(65536), stop_at - time.monotonic())
            except TimeoutError:
                break
            if not chunk:
                break
            now = time.monotonic()
            gaps.append(now - last)
            last = now
        writer.close()
    except OSError as exc:
        errors.append(type(exc).__name__)


def rss_of(names: tuple[str, ...]) -> dict[str, int]:
    """Resident memory (MB) of Ray worker processes whose title names a deployment."""
    out: dict[str, int] = {}
    for proc in psutil.process_iter(["cmdline", "memory_info"]):
        title = " ".join(proc.info["cmdline"] or [])
        for name in names:
            if name in title:
                out[name] = out.get(name, 0) + round(proc.info["memory_info"].rss / 2**20)
    return out


async def start_generations(http: httpx2.AsyncClient, count: int) -> list[str]:
    """Start ``count`` new-page generations; their events URLs."""
    urls = []
    for n in range(count):
        reply = await http.post(
            f"/v1/pages/s{n}/generate",
            json={
                "instruction": f"Create a landing page for shop {uuid.uuid4().hex[:4]}",
                "stream": False,
                "user_id": f"u{n}",
            },
        )
        urls.append(reply.json()["events_url"])
    return urls


async def hold_streams(port: int, jobs: list[str], streams: int, hold_s: float) -> dict[str, Any]:
    """``streams`` clients follow the jobs' events for ``hold_s``; gaps, errors and memory."""
    watched = ("ProxyActor", "ServeReplica:gateway:ingress")
    idle = rss_of(watched)
    gaps: list[float] = []
    errors: list[str] = []
    stop_at = time.monotonic() + hold_s
    followers = [
        follow("127.0.0.1", port, jobs[i % len(jobs)], gaps, errors, stop_at)
        for i in range(streams)
    ]
    peak: dict[str, int] = {}

    async def watch() -> None:
        while time.monotonic() < stop_at:
            for name, mb in rss_of(watched).items():
                peak[name] = max(peak.get(name, 0), mb)
            await asyncio.sleep(2)

    await asyncio.gather(watch(), *followers)
    return {
        "streams": streams,
        "hold_s": hold_s,
        "errors": len(errors),
        "error_kinds": sorted(set(errors)),
        "frames": len(gaps),
        "gap_p50_s": pct(gaps, 0.5),
        "gap_p99_s": pct(gaps, 0.99),
        "gap_max_s": round(max(gaps), 2) if gaps else None,
        "rss_idle_mb": idle,
        "rss_peak_mb": peak,
    }


async def main(streams: int, hold_s: float, samples: int) -> None:
    limits = {p: HUGE for p in ("haiku", "sonnet", "opus")}
    with tempfile.TemporaryDirectory() as tmp, local_serve(Path(tmp)) as base:
        args = {
            "budget": {"tier": "custom", "limits": limits},
            "upstream": {"simulator_url": base + "/claude-sim"},
            "pipeline": {
                "retrieval": RetrievalConfig(uri=str(Path(tmp) / "catalog.lance")).model_dump()
            },
            "ingress": {"ping_interval_s": 1.0, "user_generations_per_minute": 1000},
        }
        deploy({"profile": "custom", "limits": limits, "speed": 1000}, args)
        async with httpx2.AsyncClient(base_url=base, timeout=120) as http:
            await wait_ready(http)
            hop = await hop_overhead(base, samples)
            # Slow the simulator down so generations run while the streams follow them.
            deploy({"profile": "custom", "limits": limits, "speed": 0.2}, None)
            jobs = await start_generations(http, 10)
        result = {
            "hop": hop,
            **await hold_streams(httpx2.URL(base).port or 80, jobs, streams, hold_s),
        }
    report.save_json("gateway_streams", result)
    write_report(result, samples)
    print(result)


def write_report(result: dict[str, Any], samples: int) -> None:
    hop, streams, hold_s = result["hop"], result["streams"], result["hold_s"]
    body = (
        "**Overhead per agent hop.** One `styles` agent call on a near-instant claude_sim "
        f"(speed 1000), median of {samples} calls each way (first two dropped): "
        f"directly through the SDK {hop['direct_ms']} ms; through the gateway's agent "
        f"deployment (Serve handle, budget acquire/settle/observe, agent-call cache) "
        f"{hop['gateway_ms']} ms; overhead **{hop['overhead_ms']} ms** per hop.\n\n"
        f"**{streams} concurrent SSE streams** following 10 running generations through "
        f"Serve's proxy and the ingress for {hold_s:.0f} s (pings every 1 s):\n\n"
        + report.table(
            [
                "streams",
                "errors",
                "frames read",
                "gap between frames p50 / p99 / max",
                "RSS idle (proxy, ingress)",
                "RSS peak (proxy, ingress)",
            ],
            [
                [
                    streams,
                    result["errors"],
                    result["frames"],
                    f"{result['gap_p50_s']} / {result['gap_p99_s']} / {result['gap_max_s']} s",
                    json.dumps(result["rss_idle_mb"]),
                    json.dumps(result["rss_peak_mb"]),
                ]
            ],
        )
    )
    report.write_section("gateway_streams", "Gateway: hop overhead and concurrent streams", body)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--hold", type=float, default=45)
    parser.add_argument("--samples", type=int, default=22)
    args = parser.parse_args()
    asyncio.run(main(args.streams, args.hold, args.samples))
