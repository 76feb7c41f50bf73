"""The seed's Celery workers emulated in-process, against claude_sim over a real socket."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest

from agents.planner import ALL_AGENTS
from bench.seed.base import SeedSettings
from bench.seed.baseline import SeedBaseline
from bench.seed.emulated import EmulatedCelery
from claude_sim import PoolLimits, SimConfig
from tests.claude_sim.conftest import USER, served

FAST = SimConfig(speed=200)
UNLIMITED = SeedSettings(rate_per_minute=0)
"""Workers without a Celery rate limit, for tests that are not about it."""


def rpm_limited(rpm: int) -> SimConfig:
    limits = {p: PoolLimits(rpm=rpm, itpm=10**7, otpm=10**7) for p in ("haiku", "sonnet", "opus")}
    return SimConfig(profile="custom", limits=limits, speed=200)


async def sim_totals(url: str) -> dict[str, int]:
    """Requests and 429s the simulator saw, summed over keys and models."""
    async with httpx2.AsyncClient() as http:
        stats = (await http.get(url + "/sim/stats")).json()
    models = [m for key in stats["keys"].values() for m in key["models"].values()]
    return {
        "requests": sum(m["requests"] for m in models),
        "rate_limited": sum(m["rate_limited_total"] for m in models),
        "cache_read": sum(m["cache_read_input_tokens"] for m in models),
    }


@pytest.fixture
async def fast_sim() -> AsyncIterator[str]:
    async with served(FAST) as url:
        yield url


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, event: str, data: dict[str, Any]) -> None:
        self.seen.append((event, data))

    def names(self) -> list[str]:
        return [event for event, _ in self.seen]


async def test_a_generation_runs_all_nine_agents_without_prompt_caching(fast_sim: str) -> None:
    events = Events()
    async with SeedBaseline(EmulatedCelery(fast_sim, SeedSettings(rate_per_minute=6000))) as seed:
        outcome = await seed.generate("p1", "add a pricing section", None, on_event=events)
    assert outcome.ok, outcome.error
    assert not outcome.cached
    assert outcome.page is not None
    assert outcome.page.sections
    names = events.names()
    assert names[0] == "accepted"
    assert names[-1] == "result"
    started = {d["agent"] for e, d in events.seen if e == "stage" and d["status"] == "started"}
    assert started == set(ALL_AGENTS)
    assert len(ALL_AGENTS) == 9
    assert outcome.usage is not None
    assert outcome.usage.calls >= 9
    assert outcome.usage.cache_read_input_tokens == 0
    assert outcome.usage.cache_creation_input_tokens == 0
    totals = await sim_totals(fast_sim)
    assert totals["requests"] == seed.stats.tasks_run == outcome.usage.calls
    assert totals["cache_read"] == 0


async def test_each_worker_runs_at_most_its_rate_limit(fast_sim: str) -> None:
    tasks = 4
    settings = SeedSettings(workers=1, rate_per_minute=60)
    params = {"model": "claude-haiku-5-5", "max_tokens": 16, "messages": USER}
    async with SeedBaseline(EmulatedCelery(fast_sim, settings)) as seed:
        started = time.monotonic()
        replies = await asyncio.gather(*(seed.send(dict(params)) for _ in range(tasks)))
        elapsed = time.monotonic() - started
    assert len(replies) == tasks
    assert seed.stats.tasks_run == tasks
    # One token a second, bucket capacity 1: the first call goes at once, each next one a
    # second later. The slack covers the moments between start() and the first call,
    # which kombu's bucket already counts as refill.
    assert elapsed >= (tasks - 1) - 0.05


async def test_a_429_is_retried_with_backoff_then_fails_the_generation() -> None:
    events = Events()
    settings = SeedSettings(workers=2, rate_per_minute=0, backoff_base_s=0.05)
    async with served(rpm_limited(1)) as url:
        async with SeedBaseline(EmulatedCelery(url, settings)) as seed:
            started = time.monotonic()
            outcome = await seed.generate("p1", "add a pricing section", None, on_event=events)
            elapsed = time.monotonic() - started
        totals = await sim_totals(url)
    assert not outcome.ok
    assert outcome.error is not None
    assert "RateLimitError" in outcome.error
    assert "rate limit" in outcome.error
    assert events.names()[-1] == "error"
    stats = seed.stats
    assert stats.failed_after_retries >= 1
    assert stats.retries >= 3
    assert stats.rate_limited >= 4
    assert stats.rate_limited == stats.retries + stats.failed_after_retries
    assert totals["rate_limited"] >= 4
    # countdowns of 0.05, 0.1 and 0.2 s before the fourth 429 gives up
    assert elapsed >= 0.35


async def test_the_md5_cache_answers_a_repeat_without_calling_upstream(fast_sim: str) -> None:
    async with SeedBaseline(EmulatedCelery(fast_sim, UNLIMITED)) as seed:
        first = await seed.generate("p1", "add a pricing section", None)
        before = await sim_totals(fast_sim)
        events = Events()
        repeat = await seed.generate("p1", "add a pricing section", None, on_event=events)
        after = await sim_totals(fast_sim)
    assert first.ok, first.error
    assert repeat.ok
    assert repeat.cached
    assert repeat.page == first.page
    assert repeat.usage is not None
    assert repeat.usage.calls == 0
    assert after["requests"] == before["requests"] > 0
    assert seed.stats.cache_hits == 1
    assert events.names() == ["accepted", "result"]
    assert events.seen[0][1]["cached"] is True
