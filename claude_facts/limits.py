"""Published rate limits: per-minute RPM, ITPM and OTPM per model pool, by usage tier.

Models of one family share a pool (every Sonnet model draws on one budget), so limits are
stated per pool. ITPM counts uncached input plus cache writes, never cache reads.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

PoolName = str
TierName = Literal["tier1", "tier2", "tier3", "tier4"]
TIER_NAMES: tuple[TierName, ...] = ("tier1", "tier2", "tier3", "tier4")
TierChoice = TierName | Literal["custom"]
"""A published tier, or 'custom': limits of one's own, stated pool by pool."""


class PoolLimits(BaseModel):
    """Per-minute limits of one model pool for one API key (buckets refill continuously)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rpm: int = Field(gt=0, description="Requests per minute.")
    itpm: int = Field(gt=0, description="Input tokens per minute (uncached input + cache writes).")
    otpm: int = Field(gt=0, description="Output tokens per minute.")


_SONNET_TIERS = (
    (50, 30_000, 8_000),
    (1_000, 450_000, 90_000),
    (2_000, 800_000, 160_000),
    (4_000, 2_000_000, 400_000),
)
_HAIKU_TIERS = (
    (50, 50_000, 10_000),
    (1_000, 450_000, 90_000),
    (2_000, 1_000_000, 200_000),
    (4_000, 4_000_000, 800_000),
)


def _tier(pools: dict[str, tuple[int, int, int]]) -> dict[PoolName, PoolLimits]:
    return {p: PoolLimits(rpm=r, itpm=i, otpm=o) for p, (r, i, o) in pools.items()}


TIER_LIMITS: dict[TierName, dict[PoolName, PoolLimits]] = {
    name: _tier({"sonnet": _SONNET_TIERS[n], "opus": _SONNET_TIERS[n], "haiku": _HAIKU_TIERS[n]})
    for n, name in enumerate(TIER_NAMES)
}
"""The limits of each usage tier (Opus shares Sonnet's numbers, in a pool of its own)."""


def tier_limits(tier: str) -> dict[PoolName, PoolLimits]:
    """The published limits of ``tier``; empty for a tier of one's own ('custom')."""
    for name in TIER_NAMES:
        if name == tier:
            return dict(TIER_LIMITS[name])
    return {}
