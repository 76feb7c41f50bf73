"""Simulator fixtures: in-process SDK clients, and a real HTTP server when sockets matter."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anthropic
import httpx2
import pytest
import uvicorn
from starlette.applications import Starlette

from claude_sim import SimConfig, create_app
from tests.conftest import free_port

FAST = {"speed": 200.0}
"""Settings that make replies near-instant."""


def sdk(app: Starlette, *, key: str = "sk-test", **kw: Any) -> anthropic.AsyncAnthropic:
    """The real SDK talking to ``app`` in-process."""
    transport = httpx2.ASGITransport(app=app)
    return anthropic.AsyncAnthropic(
        api_key=key,
        base_url="http://sim",
        http_client=httpx2.AsyncClient(transport=transport),
        **{"max_retries": 0, **kw},
    )


def raw(app: Starlette) -> httpx2.AsyncClient:
    """A plain HTTP client into ``app``, for what the SDK would not send."""
    return httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://sim")


@pytest.fixture
def make_sim() -> Callable[..., tuple[Starlette, anthropic.AsyncAnthropic]]:
    """Build a simulator with settings (fast by default) and an SDK client for it."""

    def build(**settings: Any) -> tuple[Starlette, anthropic.AsyncAnthropic]:
        app = create_app(SimConfig.model_validate({**FAST, **settings}))
        return app, sdk(app)

    return build


@asynccontextmanager
async def served(config: SimConfig) -> AsyncIterator[str]:
    """The simulator behind a real uvicorn socket; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(config), host="127.0.0.1", port=port, log_level="critical", access_log=False
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("simulator did not start")
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.to_thread(thread.join, 10)


USER = [{"role": "user", "content": "Add a pricing section with a monthly/yearly toggle"}]


_VOCAB = (
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
    "november",
    "oscar",
    "papa",
    "quebec",
    "romeo",
)


def long_text(tokens: int) -> str:
    """Filler of exactly ``tokens`` tokens by the simulator's counter (one per word)."""
    return " ".join(_VOCAB[(i * 7) % len(_VOCAB)] for i in range(tokens))
