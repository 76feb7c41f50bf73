"""Token buckets per key and pool: refill, 429s with retry-after, headers, both OTPM modes."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import anthropic
import pytest

from claude_sim import PoolLimits, SimConfig, create_app
from claude_sim.errors import RateLimitError
from claude_sim.ratelimit import RateLimiter, TokenBucket
from tests.claude_sim.conftest import USER, long_text, raw, sdk

POOLS = ("haiku", "sonnet", "opus")


def custom(rpm: int = 1000, itpm: int = 1_000_000, otpm: int = 1_000_000, **kw: Any) -> SimConfig:
    limits = {p: PoolLimits(rpm=rpm, itpm=itpm, otpm=otpm) for p in POOLS}
    return SimConfig.model_validate({"profile": "custom", "limits": limits, "speed": 200, **kw})


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_bucket_refills_continuously_up_to_capacity() -> None:
    bucket = TokenBucket(capacity=60, level=0, updated=0.0)
    assert bucket.refill(0.5) == pytest.approx(0.5)
    assert bucket.refill(30.0) == pytest.approx(30.0)
    assert bucket.refill(1000.0) == 60
    assert bucket.wait_for(10, 1000.0) == 0
    bucket.level = -6
    assert bucket.wait_for(4, 1000.0) == pytest.approx(10.0)


def test_limiter_refuses_without_charging_and_names_the_short_limit() -> None:
    clock = FakeClock()
    limiter = RateLimiter(custom(rpm=2, itpm=1000), clock)
    limiter.admit("k", "sonnet", 400, 10)
    limiter.admit("k", "sonnet", 400, 10)
    with pytest.raises(RateLimitError) as err:
        limiter.admit("k", "sonnet", 10, 10)
    assert err.value.limit == "requests"
    assert err.value.retry_after_s == 30
    clock.now += 30
    with pytest.raises(RateLimitError) as err:
        limiter.admit("k", "sonnet", 900, 10)
    assert err.value.limit == "input_tokens"
    limiter.admit("k", "sonnet", 400, 10)
    assert limiter.admit("other-key", "sonnet", 900, 10) == 0


def test_estimate_mode_reserves_max_tokens_and_refunds_the_rest() -> None:
    clock = FakeClock()
    limiter = RateLimiter(custom(otpm=1000, otpm_mode="estimate"), clock)
    assert limiter.admit("k", "haiku", 10, 800) == 800
    with pytest.raises(RateLimitError) as err:
        limiter.admit("k", "haiku", 10, 800)
    assert err.value.limit == "output_tokens"
    limiter.settle("k", "haiku", 800, 100)
    assert limiter.admit("k", "haiku", 10, 800) == 800


def test_produced_mode_admits_while_positive_and_charges_as_generated() -> None:
    clock = FakeClock()
    limiter = RateLimiter(custom(otpm=1000, otpm_mode="produced"), clock)
    assert limiter.admit("k", "haiku", 10, 800) == 0
    assert limiter.admit("k", "haiku", 10, 800) == 0
    limiter.produce("k", "haiku", 1500)
    with pytest.raises(RateLimitError) as err:
        limiter.admit("k", "haiku", 10, 800)
    assert err.value.limit == "output_tokens"
    assert err.value.retry_after_s == 31
    clock.now += 31
    limiter.admit("k", "haiku", 10, 800)


def test_headers_report_limits_remaining_rounded_and_reset() -> None:
    limiter = RateLimiter(custom(rpm=50, itpm=30_000, otpm=8_000), FakeClock())
    limiter.admit("k", "sonnet", 1_234, 100)
    headers = limiter.headers("k", "sonnet")
    assert headers["anthropic-ratelimit-requests-limit"] == "50"
    assert headers["anthropic-ratelimit-requests-remaining"] == "49"
    assert headers["anthropic-ratelimit-input-tokens-remaining"] == "28000"
    assert headers["anthropic-ratelimit-output-tokens-remaining"] == "8000"
    assert headers["anthropic-ratelimit-tokens-limit"] == "30000"
    assert headers["anthropic-ratelimit-input-tokens-reset"].endswith("Z")


async def test_burst_over_rpm_gets_429_with_retry_after_and_headers() -> None:
    app = create_app(custom(rpm=5))
    client = sdk(app)
    results = await asyncio.gather(
        *(
            client.messages.with_raw_response.create(
                model="claude-haiku-4-5", max_tokens=20, messages=USER
            )
            for _ in range(5)
        )
    )
    assert [r.headers["anthropic-ratelimit-requests-remaining"] for r in results][-1] == "0"
    with pytest.raises(anthropic.RateLimitError) as err:
        await client.messages.create(model="claude-haiku-4-5", max_tokens=20, messages=USER)
    response = err.value.response
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) == 12
    assert response.headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert err.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    # another pool of the same key is not affected
    await client.messages.create(model="claude-sonnet-5", max_tokens=20, messages=USER)


async def test_sdk_retry_honours_retry_after() -> None:
    app = create_app(custom(rpm=60))
    client = sdk(app, max_retries=2)
    for _ in range(60):
        await client.messages.create(model="claude-haiku-4-5", max_tokens=5, messages=USER)
    started = time.monotonic()
    message = await client.messages.create(model="claude-haiku-4-5", max_tokens=5, messages=USER)
    waited = time.monotonic() - started
    async with raw(app) as http:
        stats = (await http.get("/sim/stats")).json()
    model_stats = next(iter(stats["keys"].values()))["models"]["claude-haiku-4-5"]
    assert message.stop_reason in ("end_turn", "max_tokens")
    assert model_stats["rate_limited"] == {"requests": 1}
    assert waited >= 0.9, "the SDK retried before retry-after"


async def test_cache_reads_do_not_count_against_itpm() -> None:
    app = create_app(custom(itpm=5_000))
    client = sdk(app)
    system = [{"type": "text", "text": long_text(4_500), "cache_control": {"type": "ephemeral"}}]
    first = await client.messages.create(
        model="claude-sonnet-5", max_tokens=5, system=system, messages=USER
    )
    assert first.usage.cache_creation_input_tokens > 4_400
    second = await client.messages.create(
        model="claude-sonnet-5", max_tokens=5, system=system, messages=USER
    )
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
    with pytest.raises(anthropic.RateLimitError) as err:
        await client.messages.create(
            model="claude-sonnet-5", max_tokens=5, system=long_text(4_500), messages=USER
        )
    assert "input tokens per minute" in err.value.message


@pytest.mark.parametrize(("mode", "second_admitted"), [("estimate", False), ("produced", True)])
async def test_otpm_modes_differ_for_concurrent_calls(mode: str, second_admitted: bool) -> None:
    app = create_app(custom(otpm=1_000, otpm_mode=mode, speed=20))
    client = sdk(app)
    first = asyncio.create_task(
        client.messages.create(model="claude-haiku-4-5", max_tokens=800, messages=USER)
    )
    await asyncio.sleep(0.005)
    second = client.messages.create(model="claude-haiku-4-5", max_tokens=800, messages=USER)
    if second_admitted:
        await second
    else:
        with pytest.raises(anthropic.RateLimitError, match="output tokens per minute"):
            await second
    await first
