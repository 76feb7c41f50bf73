"""Hold N concurrent streaming requests against claude_sim and measure what clients see.

Every stream is an HTTP request to the simulator in its own process over a bare socket
(an HTTP library's pool would make the client the bottleneck on two cores). Reported:
errors, streams open at once (from the simulator), time to first event, gaps between
deltas, the simulator's memory and CPU.

    python -m bench.sim_streams --streams 1000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import psutil

from bench import report
from bench.simproc import simulator, stats
from claude_sim import PoolLimits, SimConfig
from claude_sim.config import DEFAULT_MODELS

HEADERS = {"x-api-key": "sk-bench", "anthropic-version": "2023-06-01"}
HUGE = PoolLimits(rpm=1_000_000, itpm=1_000_000_000, otpm=1_000_000_000)


async def one_stream(
    host: str,
    port: int,
    i: int,
    max_tokens: int,
    gaps: list[float],
    firsts: list[float],
    errors: list[str],
    delay: float,
) -> None:
    """One streaming request over a bare asyncio socket: the cheapest client there is, so
    the numbers are the simulator's and not an HTTP library's connection-pool overhead."""
    await asyncio.sleep(delay)
    body = json.dumps(
        {
            "model": "claude-sonnet-5",
            "max_tokens": max_tokens,
            "stream": True,
            "messages": [{"role": "user", "content": f"Describe landing page variant {i}"}],
        }
    ).encode()
    head = (
        f"POST /v1/messages HTTP/1.1\r\nhost: {host}\r\nx-api-key: sk-bench\r\n"
        f"anthropic-version: 2023-06-01\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode()
    started = time.monotonic()
    last = None
    tail = b""
    try:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(head + body)
        status = await reader.readline()
        if b" 200 " not in status:
            errors.append(status.decode().strip())
            return
        while chunk := await reader.read(65536):
            deltas = chunk.count(b"event: content_block_delta")
            now = time.monotonic()
            if last is None:
                firsts.append(now - started)
            elif deltas:
                gaps.append(now - last)
                gaps.extend([0.0] * (deltas - 1))
            last = now
            tail = (tail + chunk)[-600:]
        writer.close()
        if b"event: message_stop" not in tail:
            errors.append("stream ended before message_stop")
    except OSError as exc:
        errors.append(type(exc).__name__)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def long_answers(max_tokens: int, chunk_s: float) -> SimConfig:
    """Answers of about ``max_tokens``, so every stream is still open when the last opens."""
    models = tuple(
        m.model_copy(update={"output_median_tokens": max_tokens, "output_sigma": 0.0})
        for m in DEFAULT_MODELS
    )
    return SimConfig(
        profile="custom",
        limits={p: HUGE for p in ("haiku", "sonnet", "opus")},
        speed=1.0,
        stream_chunk_s=chunk_s,
        models=models,
    )


async def run_streams(
    url: str, sim_proc: psutil.Process, streams: int, max_tokens: int, ramp_s: float
) -> dict[str, Any]:
    """Open the streams evenly over ``ramp_s`` and read them out; timings, errors, memory."""
    host, port = url.removeprefix("http://").split(":")
    gaps: list[float] = []
    firsts: list[float] = []
    errors: list[str] = []
    peak_rss = 0
    done = asyncio.Event()

    async def watch() -> None:
        nonlocal peak_rss
        while not done.is_set():
            peak_rss = max(peak_rss, sim_proc.memory_info().rss)
            await asyncio.sleep(0.25)

    watcher = asyncio.create_task(watch())
    idle_rss = sim_proc.memory_info().rss
    t0 = time.monotonic()
    await asyncio.gather(
        *(
            one_stream(host, int(port), i, max_tokens, gaps, firsts, errors, ramp_s * i / streams)
            for i in range(streams)
        )
    )
    elapsed = time.monotonic() - t0
    done.set()
    await watcher
    return {
        "streams": streams,
        "errors": len(errors),
        "error_kinds": sorted(set(errors)),
        "elapsed_s": round(elapsed, 1),
        "events": len(gaps) + len(firsts),
        "ttfe_p50_s": round(pct(firsts, 0.5), 3),
        "ttfe_p99_s": round(pct(firsts, 0.99), 3),
        "gap_p50_s": round(pct(gaps, 0.5), 3),
        "gap_p99_s": round(pct(gaps, 0.99), 3),
        "gap_max_s": round(max(gaps, default=float("nan")), 3),
        "sim_rss_idle_mb": round(idle_rss / 2**20),
        "sim_rss_peak_mb": round(peak_rss / 2**20),
        "sim_cpu_s": round(sum(sim_proc.cpu_times()[:2]), 1),
        "client_cpu_s": round(sum(psutil.Process().cpu_times()[:2]), 1),
    }


async def main(streams: int, max_tokens: int, chunk_s: float, ramp_s: float) -> None:
    async with simulator(long_answers(max_tokens, chunk_s)) as (url, proc):
        result = await run_streams(url, psutil.Process(proc.pid), streams, max_tokens, ramp_s)
        result["peak_concurrent"] = (await stats(url))["peak_streams"]
    report.save_json("sim_streams", result)
    write_report(result, max_tokens, chunk_s, ramp_s)
    print(result)


def write_report(result: dict[str, Any], max_tokens: int, chunk_s: float, ramp_s: float) -> None:
    body = (
        f"{result['streams']} streams (`claude-sonnet-5`, max_tokens {max_tokens}, speed 1, deltas "
        f"at least {chunk_s * 1000:.0f} ms apart) against the simulator in its "
        f"own process, opened evenly over {ramp_s:.0f} s; client and simulator share the "
        "2 cores.\n\n"
        + report.table(
            [
                "streams",
                "errors",
                "peak open at once",
                "events",
                "time to first event p50 / p99",
                "gap between deltas p50 / p99 / max",
                "simulator RSS idle / peak",
                "CPU simulator / client",
                "wall time",
            ],
            [
                [
                    result["streams"],
                    result["errors"],
                    result["peak_concurrent"],
                    result["events"],
                    f"{result['ttfe_p50_s']} s / {result['ttfe_p99_s']} s",
                    f"{result['gap_p50_s']} / {result['gap_p99_s']} / {result['gap_max_s']} s",
                    f"{result['sim_rss_idle_mb']} / {result['sim_rss_peak_mb']} MB",
                    f"{result['sim_cpu_s']} s / {result['client_cpu_s']} s",
                    f"{result['elapsed_s']} s",
                ]
            ],
        )
    )
    report.write_section("sim_streams", "claude_sim: concurrent streams", body)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--max-tokens", type=int, default=1200)
    parser.add_argument("--chunk-s", type=float, default=0.1)
    parser.add_argument("--ramp-s", type=float, default=5.0, help="spread the opening over this")
    args = parser.parse_args()
    asyncio.run(main(args.streams, args.max_tokens, args.chunk_s, args.ramp_s))
