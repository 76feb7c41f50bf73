"""Typed settings of the simulator: models, rate-limit profiles, latency, faults.

Everything a user of ``claude_sim`` can change lives here, so a benchmark or test states
its upstream in one object: ``create_app(SimConfig(profile="tier1", speed=20))``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

PoolName = str
ProfileName = Literal["tier1", "tier2", "tier3", "tier4", "custom"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PoolLimits(_Strict):
    """Per-minute limits of one model pool for one API key (token buckets refill continuously)."""

    rpm: int = Field(gt=0, description="Requests per minute.")
    itpm: int = Field(gt=0, description="Input tokens per minute (uncached input + cache writes).")
    otpm: int = Field(gt=0, description="Output tokens per minute.")


class ModelSpec(_Strict):
    """How one model id behaves: its rate-limit pool, caching threshold, speed and verbosity."""

    id: str = Field(description="Model id as sent in requests, e.g. 'claude-sonnet-5'.")
    display_name: str = Field(description="Human name returned by GET /v1/models.")
    pool: PoolName = Field(description="Rate-limit pool shared by models of one class.")
    created_at: str = Field(description="RFC 3339 release date returned by GET /v1/models.")
    lifecycle: Literal["active", "deprecated", "retired"] = Field(
        default="active", description="Retired models answer 404 like unknown ones."
    )
    max_output_tokens: int = Field(default=64_000, gt=0, description="Largest max_tokens accepted.")
    context_window: int = Field(default=200_000, gt=0, description="Largest prompt accepted.")
    min_cacheable_tokens: int = Field(
        default=1024, ge=0, description="Shorter cache prefixes are processed uncached, silently."
    )
    forced_tool_choice: bool = Field(
        default=True, description="False: tool_choice 'any'/'tool' is rejected with 400."
    )
    ttft_s: float = Field(default=0.8, ge=0, description="Time to first token at speed 1.")
    tokens_per_s: float = Field(default=70.0, gt=0, description="Output pace at speed 1.")
    output_median_tokens: int = Field(
        default=350, gt=0, description="Median natural output length (log-normal)."
    )
    output_sigma: float = Field(
        default=0.5, ge=0, description="Log-normal spread of output length."
    )


def _model(id: str, name: str, pool: str, created: str, **kw: object) -> ModelSpec:
    return ModelSpec.model_validate(
        {"id": id, "display_name": name, "pool": pool, "created_at": created, **kw}
    )


_HAIKU = {"ttft_s": 0.35, "tokens_per_s": 160.0, "output_median_tokens": 250}
_SONNET = {"ttft_s": 0.8, "tokens_per_s": 75.0, "output_median_tokens": 400}
_OPUS = {"ttft_s": 1.4, "tokens_per_s": 45.0, "output_median_tokens": 450}

DEFAULT_MODELS: tuple[ModelSpec, ...] = (
    _model(
        "claude-haiku-5-5",
        "Claude Haiku 5.5",
        "haiku",
        "2026-10-07T00:00:00Z",
        min_cacheable_tokens=4096,
        max_output_tokens=128_000,
        **_HAIKU,
    ),
    _model(
        "claude-haiku-4-5",
        "Claude Haiku 4.5",
        "haiku",
        "2025-10-01T00:00:00Z",
        min_cacheable_tokens=4096,
        **_HAIKU,
    ),
    _model(
        "claude-haiku-4-5-20251001",
        "Claude Haiku 4.5",
        "haiku",
        "2025-10-01T00:00:00Z",
        min_cacheable_tokens=4096,
        **_HAIKU,
    ),
    _model(
        "claude-sonnet-5-5",
        "Claude Sonnet 5.5",
        "sonnet",
        "2026-09-28T00:00:00Z",
        min_cacheable_tokens=512,
        forced_tool_choice=False,
        max_output_tokens=128_000,
        **_SONNET,
    ),
    _model(
        "claude-sonnet-5",
        "Claude Sonnet 5",
        "sonnet",
        "2026-05-01T00:00:00Z",
        max_output_tokens=128_000,
        **_SONNET,
    ),
    _model("claude-sonnet-4-6", "Claude Sonnet 4.6", "sonnet", "2026-02-01T00:00:00Z", **_SONNET),
    _model(
        "claude-sonnet-4-5",
        "Claude Sonnet 4.5",
        "sonnet",
        "2025-09-29T00:00:00Z",
        lifecycle="deprecated",
        **_SONNET,
    ),
    _model(
        "claude-sonnet-4-5-20250929",
        "Claude Sonnet 4.5",
        "sonnet",
        "2025-09-29T00:00:00Z",
        lifecycle="deprecated",
        **_SONNET,
    ),
    _model(
        "claude-opus-5-5",
        "Claude Opus 5.5",
        "opus",
        "2026-10-01T00:00:00Z",
        min_cacheable_tokens=4096,
        max_output_tokens=128_000,
        **_OPUS,
    ),
    _model(
        "claude-opus-5",
        "Claude Opus 5",
        "opus",
        "2026-05-01T00:00:00Z",
        min_cacheable_tokens=4096,
        max_output_tokens=128_000,
        **_OPUS,
    ),
    _model(
        "claude-opus-4-5",
        "Claude Opus 4.5",
        "opus",
        "2025-11-01T00:00:00Z",
        min_cacheable_tokens=4096,
        **_OPUS,
    ),
    _model(
        "claude-opus-4-5-20251101",
        "Claude Opus 4.5",
        "opus",
        "2025-11-01T00:00:00Z",
        min_cacheable_tokens=4096,
        **_OPUS,
    ),
)

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


PROFILES: dict[str, dict[PoolName, PoolLimits]] = {
    f"tier{n + 1}": _tier(
        {"sonnet": _SONNET_TIERS[n], "opus": _SONNET_TIERS[n], "haiku": _HAIKU_TIERS[n]}
    )
    for n in range(4)
}


class FaultRates(_Strict):
    """Share of requests (0..1) that get each injected fault; drawn from a seeded generator."""

    overloaded: float = Field(default=0.0, ge=0, le=1, description="529 overloaded_error.")
    api_error: float = Field(default=0.0, ge=0, le=1, description="500 api_error.")
    stream_error: float = Field(
        default=0.0, ge=0, le=1, description="An `error` event in the middle of a stream."
    )
    dropped_connection: float = Field(
        default=0.0, ge=0, le=1, description="The connection closes mid-response."
    )
    slow_response: float = Field(
        default=0.0, ge=0, le=1, description="Latency multiplied by `slow_factor`."
    )
    slow_factor: float = Field(default=5.0, ge=1, description="Latency multiplier of slow replies.")
    invalid_tool_input: float = Field(
        default=0.0, ge=0, le=1, description="A tool_use input that violates its input_schema."
    )


class SimConfig(_Strict):
    """Everything that shapes the emulated API."""

    profile: ProfileName = Field(default="tier2", description="Rate-limit tier of every API key.")
    limits: dict[PoolName, PoolLimits] = Field(
        default_factory=dict,
        description="Per-pool limits that replace the profile's (required for 'custom').",
    )
    otpm_mode: Literal["estimate", "produced"] = Field(
        default="produced",
        description="'estimate': max_tokens reserved at start, adjusted at the end; "
        "'produced': output tokens counted as they are generated.",
    )
    api_keys: list[str] | None = Field(
        default=None, description="Accepted keys; None accepts any non-empty key."
    )
    models: tuple[ModelSpec, ...] = Field(
        default=DEFAULT_MODELS, description="Models the API serves."
    )
    speed: float = Field(
        default=1.0, gt=0, description="Latency divisor: 10 makes every reply ten times faster."
    )
    stream_chunk_s: float = Field(
        default=0.05,
        gt=0,
        description="Least time between two content deltas of a stream (at speed 1), so "
        "thousands of streams stay cheap; tokens produced meanwhile go out together.",
    )
    seed: int = Field(default=0, description="Seed of outputs and fault draws.")
    faults: FaultRates = Field(default_factory=FaultRates, description="Injected faults.")
    max_request_bytes: int = Field(
        default=32 * 1024 * 1024, gt=0, description="Bodies above this get 413."
    )
    start_full: bool = Field(
        default=True,
        description="Buckets start holding a minute of budget, as a fresh organisation's do; "
        "False starts them empty, so a benchmark measures the steady rate from the start.",
    )
    auto_tool_use: float = Field(
        default=1.0,
        ge=0,
        le=1,
        description="Share of tool_choice 'auto' replies that call a tool when tools are given.",
    )

    @model_validator(mode="after")
    def _limits_cover_pools(self) -> SimConfig:
        known = set(self.limits) | set(PROFILES.get(self.profile, {}))
        missing = {m.pool for m in self.models} - known
        if missing:
            raise ValueError(f"profile {self.profile!r} needs limits for pools {sorted(missing)}")
        return self

    def pool_limits(self, pool: PoolName) -> PoolLimits:
        """The limits that apply to ``pool`` under this config."""
        if pool in self.limits:
            return self.limits[pool]
        return PROFILES[self.profile][pool]

    def model(self, model_id: str) -> ModelSpec | None:
        """The served model called ``model_id``, or None."""
        for spec in self.models:
            if spec.id == model_id:
                return spec
        return None
