"""Token-bucket rate limits per API key and model pool: RPM, ITPM and OTPM.

Buckets hold up to one minute's limit and refill continuously at limit/60 per second.
ITPM is charged uncached input plus cache writes (cache reads are free). OTPM follows
``otpm_mode``: 'estimate' reserves ``max_tokens`` at admission and refunds the unused
part at the end; 'produced' admits while the bucket is positive and charges tokens as
they are generated (the bucket may go into debt, which delays later requests).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from claude_facts.limits import PoolLimits
from claude_sim.config import SimConfig
from claude_sim.errors import RateLimitError

LIMIT_NAMES = ("requests", "input_tokens", "output_tokens")


@dataclass(slots=True)
class TokenBucket:
    """A continuously refilled bucket; ``level`` may go negative (debt)."""

    capacity: float
    level: float
    updated: float

    @property
    def rate(self) -> float:
        return self.capacity / 60.0

    def refill(self, now: float) -> float:
        if now > self.updated:
            self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
            self.updated = now
        return self.level

    def wait_for(self, amount: float, now: float) -> float:
        """Seconds until the bucket holds ``amount`` (capped at its capacity)."""
        missing = min(amount, self.capacity) - self.refill(now)
        return max(0.0, missing / self.rate)


@dataclass(slots=True)
class PoolBuckets:
    limits: PoolLimits
    requests: TokenBucket
    input_tokens: TokenBucket
    output_tokens: TokenBucket

    def bucket(self, name: str) -> TokenBucket:
        bucket: TokenBucket = getattr(self, name)
        return bucket


class RateLimiter:
    """All buckets of the simulator, created on first use (full, unless configured empty)."""

    def __init__(self, config: SimConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self._config = config
        self._clock = clock
        self._pools: dict[tuple[str, str], PoolBuckets] = {}
        self._epoch = clock()

    def pool(self, key_id: str, pool: str) -> PoolBuckets:
        found = self._pools.get((key_id, pool))
        if found is None:
            limits = self._config.pool_limits(pool)
            now = self._clock()
            # Empty buckets start empty when the simulator starts, not when a key first
            # calls: by then they have been refilling like everyone else's.
            age = now - self._epoch

            def bucket(limit: int) -> TokenBucket:
                level = limit if self._config.start_full else min(limit, age * limit / 60)
                return TokenBucket(limit, level, now)

            found = PoolBuckets(
                limits, bucket(limits.rpm), bucket(limits.itpm), bucket(limits.otpm)
            )
            self._pools[(key_id, pool)] = found
        return found

    def admit(self, key_id: str, pool: str, input_cost: int, max_tokens: int) -> int:
        """Charge an admitted request and return the output tokens reserved for it.

        Raises ``RateLimitError`` (with the limit that failed and ``retry-after``) and charges
        nothing when any bucket is short.
        """
        buckets = self.pool(key_id, pool)
        now = self._clock()
        estimate = self._config.otpm_mode == "estimate"
        needs = {
            "requests": 1.0,
            "input_tokens": float(input_cost),
            "output_tokens": float(max_tokens) if estimate else 1.0,
        }
        waits = {name: buckets.bucket(name).wait_for(need, now) for name, need in needs.items()}
        short = [name for name in LIMIT_NAMES if waits[name] > 0]
        if short:
            limit = short[0]
            retry_after = max(1, math.ceil(max(waits.values())))
            raise RateLimitError(
                _limit_message(limit, buckets.limits),
                limit=limit,
                retry_after_s=retry_after,
                headers=self.headers(key_id, pool),
            )
        buckets.requests.level -= 1
        buckets.input_tokens.level -= input_cost
        reserved = max_tokens if estimate else 0
        buckets.output_tokens.level -= reserved
        return reserved

    def produce(self, key_id: str, pool: str, tokens: int) -> None:
        """Charge output tokens as they are generated ('produced' mode)."""
        if self._config.otpm_mode == "produced" and tokens:
            bucket = self.pool(key_id, pool).output_tokens
            bucket.refill(self._clock())
            bucket.level -= tokens

    def settle(self, key_id: str, pool: str, reserved: int, produced: int) -> None:
        """Refund the unused part of an 'estimate' reservation once the output is known."""
        if self._config.otpm_mode == "estimate" and reserved:
            bucket = self.pool(key_id, pool).output_tokens
            bucket.refill(self._clock())
            bucket.level = min(bucket.capacity, bucket.level + reserved - produced)

    def headers(self, key_id: str, pool: str) -> dict[str, str]:
        """The ``anthropic-ratelimit-*`` headers for a reply to this key and pool."""
        buckets = self.pool(key_id, pool)
        now = self._clock()
        wall = datetime.now(UTC)
        out: dict[str, str] = {}
        fractions: dict[str, float] = {}
        for name in LIMIT_NAMES:
            bucket = buckets.bucket(name)
            level = max(0.0, bucket.refill(now))
            remaining = int(level) if name == "requests" else int(level // 1000) * 1000
            reset = wall + timedelta(seconds=(bucket.capacity - level) / bucket.rate)
            out[f"anthropic-ratelimit-{name.replace('_', '-')}-limit"] = str(int(bucket.capacity))
            out[f"anthropic-ratelimit-{name.replace('_', '-')}-remaining"] = str(remaining)
            out[f"anthropic-ratelimit-{name.replace('_', '-')}-reset"] = _rfc3339(reset)
            fractions[name] = level / bucket.capacity
        tightest = min(("input_tokens", "output_tokens"), key=lambda n: fractions[n])
        prefix = f"anthropic-ratelimit-{tightest.replace('_', '-')}"
        for part in ("limit", "remaining", "reset"):
            out[f"anthropic-ratelimit-tokens-{part}"] = out[f"{prefix}-{part}"]
        return out

    def levels(self) -> dict[tuple[str, str], dict[str, float]]:
        """Current bucket levels, for ``/sim/stats``."""
        now = self._clock()
        return {
            key: {name: round(p.bucket(name).refill(now), 1) for name in LIMIT_NAMES}
            for key, p in self._pools.items()
        }

    def clear(self) -> None:
        self._pools.clear()
        self._epoch = self._clock()


def _rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _limit_message(limit: str, limits: PoolLimits) -> str:
    value, unit = {
        "requests": (limits.rpm, "requests per minute"),
        "input_tokens": (limits.itpm, "input tokens per minute"),
        "output_tokens": (limits.otpm, "output tokens per minute"),
    }[limit]
    return (
        f"This request would exceed the rate limit for your organization of {value:,} {unit}. "
        "For details, refer to: https://docs.claude.com/en/api/rate-limits. You can see the "
        "response headers for current usage. Please reduce the prompt length or the maximum "
        "tokens requested, or try again later."
    )
