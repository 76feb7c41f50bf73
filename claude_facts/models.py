"""Published facts of each Claude model: family (its rate-limit pool), limits, capabilities, price.

One record per model id. What varies by model and matters to a caller is here: the pool
whose limits it draws on, the shortest prefix the API will cache (shorter ones are
processed uncached, silently), whether ``tool_choice`` may force a tool (Sonnet 5.5
answers 400 to forced tool use), and the list price where Anthropic published one.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from claude_facts.limits import PoolName

FAMILIES: tuple[PoolName, ...] = ("haiku", "sonnet", "opus")
"""Model families; each is one rate-limit pool shared by all of its models."""


class Price(BaseModel):
    """Dollars per million tokens."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: float = Field(ge=0, description="Uncached input tokens.")
    output: float = Field(ge=0, description="Output tokens.")
    cache_write_5m: float = Field(ge=0, description="Cache writes with the 5-minute TTL.")
    cache_write_1h: float = Field(ge=0, description="Cache writes with the 1-hour TTL.")
    cache_read: float = Field(ge=0, description="Cache reads.")


def _standard_price(input: float, output: float) -> Price:
    """The usual multiples: cache writes 1.25x (5m) or 2x (1h) input, reads 0.1x."""
    return Price(
        input=input,
        output=output,
        cache_write_5m=round(input * 1.25, 6),
        cache_write_1h=round(input * 2, 6),
        cache_read=round(input * 0.1, 6),
    )


class ModelFacts(BaseModel):
    """What the API documents about one model id."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(description="Model id as sent in requests, e.g. 'claude-sonnet-5-5'.")
    display_name: str = Field(description="Human name, as GET /v1/models returns it.")
    pool: PoolName = Field(description="Rate-limit pool shared by the models of one family.")
    created_at: str = Field(description="RFC 3339 release date, as GET /v1/models returns it.")
    lifecycle: Literal["active", "deprecated", "retired"] = Field(
        default="active", description="Retired models answer 404 like unknown ones."
    )
    max_output_tokens: int = Field(default=64_000, gt=0, description="Largest max_tokens.")
    context_window: int = Field(default=200_000, gt=0, description="Largest prompt accepted.")
    min_cacheable_tokens: int = Field(
        default=1024, ge=0, description="Shorter cache prefixes are processed uncached, silently."
    )
    forced_tool_choice: bool = Field(
        default=True, description="False: tool_choice 'any'/'tool' is rejected with 400."
    )
    price: Price | None = Field(default=None, description="List price, where published.")


def _facts(id: str, name: str, pool: str, created: str, **kw: object) -> ModelFacts:
    return ModelFacts.model_validate(
        {"id": id, "display_name": name, "pool": pool, "created_at": created, **kw}
    )


_HAIKU_4_5 = {"min_cacheable_tokens": 4096, "price": _standard_price(1.0, 5.0)}
_SONNET_4_5 = {"lifecycle": "deprecated", "price": _standard_price(3.0, 15.0)}
_OPUS_4_5 = {"min_cacheable_tokens": 4096, "price": _standard_price(5.0, 25.0)}

MODELS: tuple[ModelFacts, ...] = (
    _facts(
        "claude-haiku-5-5",
        "Claude Haiku 5.5",
        "haiku",
        "2026-10-07T00:00:00Z",
        min_cacheable_tokens=4096,
        max_output_tokens=128_000,
        price=_standard_price(0.10, 0.50),
    ),
    _facts("claude-haiku-4-5", "Claude Haiku 4.5", "haiku", "2025-10-01T00:00:00Z", **_HAIKU_4_5),
    _facts(
        "claude-haiku-4-5-20251001",
        "Claude Haiku 4.5",
        "haiku",
        "2025-10-01T00:00:00Z",
        **_HAIKU_4_5,
    ),
    _facts(
        "claude-sonnet-5-5",
        "Claude Sonnet 5.5",
        "sonnet",
        "2026-09-28T00:00:00Z",
        min_cacheable_tokens=512,
        forced_tool_choice=False,
        max_output_tokens=128_000,
        # Cache reads went from $0.20 to $0.10 per million on 2026-10-07.
        price=Price(
            input=2.0, output=10.0, cache_write_5m=2.5, cache_write_1h=4.0, cache_read=0.10
        ),
    ),
    _facts(
        "claude-sonnet-5",
        "Claude Sonnet 5",
        "sonnet",
        "2026-05-01T00:00:00Z",
        max_output_tokens=128_000,
    ),
    _facts("claude-sonnet-4-6", "Claude Sonnet 4.6", "sonnet", "2026-02-01T00:00:00Z"),
    _facts(
        "claude-sonnet-4-5", "Claude Sonnet 4.5", "sonnet", "2025-09-29T00:00:00Z", **_SONNET_4_5
    ),
    _facts(
        "claude-sonnet-4-5-20250929",
        "Claude Sonnet 4.5",
        "sonnet",
        "2025-09-29T00:00:00Z",
        **_SONNET_4_5,
    ),
    _facts(
        "claude-opus-5-5",
        "Claude Opus 5.5",
        "opus",
        "2026-10-01T00:00:00Z",
        min_cacheable_tokens=4096,
        max_output_tokens=128_000,
    ),
    _facts(
        "claude-opus-5",
        "Claude Opus 5",
        "opus",
        "2026-05-01T00:00:00Z",
        min_cacheable_tokens=4096,
        max_output_tokens=128_000,
    ),
    _facts("claude-opus-4-5", "Claude Opus 4.5", "opus", "2025-11-01T00:00:00Z", **_OPUS_4_5),
    _facts(
        "claude-opus-4-5-20251101", "Claude Opus 4.5", "opus", "2025-11-01T00:00:00Z", **_OPUS_4_5
    ),
)

MODEL_BY_ID: dict[str, ModelFacts] = {m.id: m for m in MODELS}


def model_facts(model_id: str) -> ModelFacts:
    """The published facts of ``model_id``; ``KeyError`` naming the known ids otherwise."""
    try:
        return MODEL_BY_ID[model_id]
    except KeyError:
        known = sorted(MODEL_BY_ID)
        raise KeyError(f"no published facts for model {model_id!r}; known: {known}") from None


def family_of(model_id: str) -> PoolName | None:
    """The family (and so the rate-limit pool) a model id names, or None."""
    if model_id in MODEL_BY_ID:
        return MODEL_BY_ID[model_id].pool
    return next((family for family in FAMILIES if family in model_id), None)
