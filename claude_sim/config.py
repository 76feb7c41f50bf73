"""Typed settings of the simulator: models, rate-limit profiles, latency, faults.

Everything a user of ``claude_sim`` can change lives here, so a benchmark or test states
its upstream in one object: ``create_app(SimConfig(profile="tier1", speed=20))``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from claude_facts.limits import PoolLimits, PoolName, TierChoice, tier_limits
from claude_facts.models import MODELS, ModelFacts


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSpec(ModelFacts):
    """One served model: its published facts plus how fast and how verbosely it answers."""

    ttft_s: float = Field(default=0.8, ge=0, description="Time to first token at speed 1.")
    tokens_per_s: float = Field(default=70.0, gt=0, description="Output pace at speed 1.")
    output_median_tokens: int = Field(
        default=350, gt=0, description="Median natural output length (log-normal)."
    )
    output_sigma: float = Field(
        default=0.5, ge=0, description="Log-normal spread of output length."
    )


_PACE: dict[PoolName, dict[str, float]] = {
    "haiku": {"ttft_s": 0.35, "tokens_per_s": 160.0, "output_median_tokens": 250},
    "sonnet": {"ttft_s": 0.8, "tokens_per_s": 75.0, "output_median_tokens": 400},
    "opus": {"ttft_s": 1.4, "tokens_per_s": 45.0, "output_median_tokens": 450},
}
"""Measured-looking pace per family: time to first token, tokens per second, answer length."""

DEFAULT_MODELS: tuple[ModelSpec, ...] = tuple(
    ModelSpec.model_validate({**facts.model_dump(), **_PACE[facts.pool]}) for facts in MODELS
)


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
    injected_output: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="A tool_use input written as by a prompt-injected model: about half of "
        "its free strings (and a tenth of its patterned ones) are `injection_payloads`.",
    )


class SimConfig(_Strict):
    """Everything that shapes the emulated API."""

    profile: TierChoice = Field(default="tier2", description="Rate-limit tier of every API key.")
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
    injection_payloads: tuple[str, ...] = Field(
        default=(
            "<script>alert(1)</script>",
            "javascript:alert(1)",
            '<img src=x onerror="alert(1)">',
            "data:text/html,<script>alert(1)</script>",
        ),
        min_length=1,
        description="What an `injected_output` reply writes into the strings of its tool input.",
    )
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
        known = set(self.limits) | set(tier_limits(self.profile))
        missing = {m.pool for m in self.models} - known
        if missing:
            raise ValueError(f"profile {self.profile!r} needs limits for pools {sorted(missing)}")
        return self

    def pool_limits(self, pool: PoolName) -> PoolLimits:
        """The limits that apply to ``pool`` under this config."""
        if pool in self.limits:
            return self.limits[pool]
        return tier_limits(self.profile)[pool]

    def model(self, model_id: str) -> ModelSpec | None:
        """The served model called ``model_id``, or None."""
        for spec in self.models:
            if spec.id == model_id:
                return spec
        return None
