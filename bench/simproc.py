"""Start ``python -m claude_sim`` as its own process for a benchmark, and read its stats."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2

from claude_sim import SimConfig


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@asynccontextmanager
async def simulator(config: SimConfig) -> AsyncIterator[tuple[str, subprocess.Popen[bytes]]]:
    """The simulator on a free port; yields its base URL and process."""
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sim.json"
        path.write_text(config.model_dump_json())
        proc = subprocess.Popen(  # noqa: ASYNC220 - starting it does not block; waiting is async
            [sys.executable, "-m", "claude_sim", "--config", str(path), "--port", str(port)],
            stdout=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            await wait_ready(url, proc)
            yield url, proc
        finally:
            proc.terminate()
            proc.wait(10)


async def wait_ready(url: str, proc: subprocess.Popen[bytes], within_s: float = 30) -> None:
    deadline = time.monotonic() + within_s
    async with httpx2.AsyncClient() as http:
        while True:
            try:
                await http.get(url + "/sim/stats")
                return
            except httpx2.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"simulator at {url} did not start") from None
                await asyncio.sleep(0.2)


async def stats(url: str) -> dict[str, Any]:
    async with httpx2.AsyncClient() as http:
        reply = await http.get(url + "/sim/stats")
        data: dict[str, Any] = json.loads(reply.content)
        return data
