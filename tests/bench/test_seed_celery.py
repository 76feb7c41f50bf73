"""The seed on real Celery: worker processes, a Redis broker and result backend, claude_sim."""

from __future__ import annotations

import pytest

from agents.planner import ALL_AGENTS
from bench.seed.base import SeedSettings
from bench.seed.baseline import SeedBaseline
from bench.seed.celery_workers import CeleryWorkers
from tests.bench.test_seed_emulated import FAST, Events, rpm_limited, sim_totals
from tests.claude_sim.conftest import served

pytestmark = [pytest.mark.redis, pytest.mark.slow]


async def test_a_generation_runs_every_agent_as_a_task_on_the_workers() -> None:
    events = Events()
    settings = SeedSettings(workers=2, rate_per_minute=0)
    async with served(FAST) as url:
        async with SeedBaseline(CeleryWorkers(url, settings)) as seed:
            outcome = await seed.generate("p1", "add a pricing section", None, on_event=events)
        totals = await sim_totals(url)
    assert outcome.ok, outcome.error
    assert outcome.page is not None
    started = {d["agent"] for e, d in events.seen if e == "stage" and d["status"] == "started"}
    assert started == set(ALL_AGENTS)
    assert outcome.usage is not None
    # What the workers ran is what reached the simulator, one request per agent call.
    assert totals["requests"] == seed.stats.tasks_run == outcome.usage.calls >= 9
    assert seed.stats.tasks_published == seed.stats.tasks_run
    assert totals["cache_read"] == 0


async def test_429s_are_retried_by_celery_until_max_retries_then_fail_the_generation() -> None:
    events = Events()
    settings = SeedSettings(workers=1, rate_per_minute=0, backoff_base_s=0.2)
    async with served(rpm_limited(1)) as url:
        async with SeedBaseline(CeleryWorkers(url, settings)) as seed:
            outcome = await seed.generate("p1", "add a pricing section", None, on_event=events)
        totals = await sim_totals(url)
    assert not outcome.ok
    assert outcome.error is not None
    assert "MaxRetriesExceededError" in outcome.error
    assert events.names()[-1] == "error"
    stats = seed.stats
    assert stats.failed_after_retries >= 1
    assert stats.retries >= 3
    assert stats.rate_limited == stats.retries + stats.failed_after_retries
    # Every 429 the workers counted was one the simulator answered.
    assert totals["rate_limited"] == stats.rate_limited
    assert totals["requests"] == stats.tasks_run
