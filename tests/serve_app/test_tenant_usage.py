"""The usage ledger on each store backend: what a tenant was billed, and its spend limit."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agents.config import PipelineConfig
from agents.usage import CallUsage, UsageTotals
from serve_app.config import TenantQuota
from serve_app.errors import QuotaExceededError
from serve_app.store import Store
from serve_app.tenant_usage import UsageLedger
from tests.serve_app.conftest import new_job

PIPELINE = PipelineConfig()
NOON = datetime(2026, 12, 2, 12, 0, tzinfo=UTC).timestamp()
LIMITED = TenantQuota(usd_per_day=0.5, usd_held_per_generation=0.2)


class Clock:
    """A clock a test moves by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def calls(model: str, n: int) -> list[CallUsage]:
    return [
        CallUsage(model, input_tokens=1000 + i, output_tokens=200, cache_read_input_tokens=50)
        for i in range(n)
    ]


def ledger(store: Store, clock: Clock) -> UsageLedger:
    return UsageLedger(PIPELINE, store, retention_days=35, clock=clock)


async def test_usage_is_reported_by_day_and_agent_as_priced(store: Store) -> None:
    clock = Clock(NOON)
    usage = ledger(store, clock)
    fast, smart = calls(PIPELINE.fast.id, 2), calls(PIPELINE.smart.id, 1)
    await usage.record_calls("acme", "styles", fast)
    await usage.record_calls("acme", "review", smart)
    await usage.record_outcome("acme", "succeeded")
    clock.now += 86_400
    await usage.record_calls("acme", "styles", fast[:1])
    await usage.record_outcome("acme", "failed")
    await usage.record_calls("globex", "styles", fast)

    report = await usage.report("acme", 7, TenantQuota())
    today, yesterday = report["days"]
    assert (today["date"], yesterday["date"]) == ("2026-12-03", "2026-12-02")
    expected = UsageTotals()
    for call in fast + smart:
        expected.add(call, PIPELINE.price_of(call.model))
    assert {k: yesterday[k] for k in expected.as_dict()} == expected.as_dict()
    assert yesterday["agents"]["styles"]["calls"] == 2
    assert yesterday["agents"]["review"]["input_tokens"] == smart[0].input_tokens
    assert yesterday["generations"]["succeeded"] == 1
    assert today["generations"] == {"succeeded": 0, "failed": 1, "cancelled": 0, "replayed": 0}
    assert today["calls"] == 1
    assert report["limit"]["usd_per_day"] is None


async def test_a_tenant_sees_only_its_own_usage(store: Store) -> None:
    usage = ledger(store, Clock(NOON))
    await usage.record_calls("globex", "styles", calls(PIPELINE.fast.id, 3))
    report = await usage.report("acme", 31, TenantQuota())
    assert report["days"] == []
    assert report["tenant"] == "acme"


async def test_a_spend_limit_refuses_once_spent_and_held_dollars_would_pass_it(
    store: Store,
) -> None:
    clock = Clock(NOON)
    usage = ledger(store, clock)
    job = new_job("j1", created_at=NOON)
    held = [await usage.hold(new_job(f"j{i}", created_at=NOON), LIMITED) for i in range(2)]
    assert [j.held_usd for j in held] == [0.2, 0.2]
    with pytest.raises(QuotaExceededError, match="spend limit") as refused:
        await usage.hold(job, LIMITED)  # 0.4 held + 0.2 > 0.5
    assert refused.value.retry_after_s == pytest.approx(12 * 3600)
    assert refused.value.headers["RateLimit-Policy"] == "0.5;w=86400"
    await usage.release(held[0])
    again = await usage.hold(job, LIMITED)
    assert again.held_usd == 0.2
    limit = (await usage.report("acme", 1, LIMITED))["limit"]
    assert limit["held_usd"] == pytest.approx(0.4)
    assert limit["remaining_usd"] == pytest.approx(0.1)


async def test_what_was_spent_counts_against_the_limit_until_the_day_ends(store: Store) -> None:
    clock = Clock(NOON)
    usage = ledger(store, clock)
    big = [CallUsage(PIPELINE.smart.id, input_tokens=50_000, output_tokens=25_000)]
    cost = sum(c.cost(PIPELINE.smart.price) for c in big)
    assert 0.3 < cost < 0.5  # so that one more hold would pass 0.5
    await usage.record_calls("acme", "review", big)
    with pytest.raises(QuotaExceededError):
        await usage.hold(new_job("j1", created_at=clock.now), LIMITED)
    other = TenantQuota(usd_per_day=1.0, usd_held_per_generation=0.2)
    assert (await usage.hold(new_job("j2", tenant="globex", created_at=NOON), other)).held_usd
    clock.now += 12 * 3600  # midnight UTC: a new day
    assert (await usage.hold(new_job("j3", created_at=clock.now), LIMITED)).held_usd == 0.2


async def test_a_tenant_without_a_spend_limit_holds_nothing(store: Store) -> None:
    usage = ledger(store, Clock(NOON))
    job = await usage.hold(new_job("j1", created_at=NOON), TenantQuota(concurrent_jobs=3))
    assert job.held_usd == 0.0
    await usage.release(job)
    assert (await usage.report("acme", 1, TenantQuota()))["days"] == []
