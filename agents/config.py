"""Typed settings of the pipeline: which model each tier uses, prices, caching, retrieval.

Model ids and prices are configuration; the defaults are the current models the installed
``anthropic`` SDK knows, with Anthropic's list prices in dollars per million tokens.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from agents.retrieval import RetrievalConfig


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Price(_Settings):
    """Dollars per million tokens."""

    input: float = Field(ge=0, description="Uncached input tokens.")
    output: float = Field(ge=0, description="Output tokens.")
    cache_write_5m: float = Field(ge=0, description="Cache writes with the 5-minute TTL.")
    cache_write_1h: float = Field(ge=0, description="Cache writes with the 1-hour TTL.")
    cache_read: float = Field(ge=0, description="Cache reads.")


class ModelProfile(_Settings):
    """A model as the pipeline uses it."""

    id: str = Field(description="Model id sent to the API.")
    price: Price = Field(description="List price of the model.")
    forced_tool_choice: bool = Field(
        default=True,
        description="Whether tool_choice may force a tool; when not, the prompt names the "
        "tool and tool_choice is 'auto' (Sonnet 5.5 rejects forced tool use).",
    )
    min_cacheable_tokens: int = Field(
        default=1024, ge=0, description="Shortest prefix the API caches for this model."
    )


HAIKU_5_5 = ModelProfile(
    id="claude-haiku-5-5",
    price=Price(
        input=0.10, output=0.50, cache_write_5m=0.125, cache_write_1h=0.20, cache_read=0.01
    ),
    min_cacheable_tokens=4096,
)
SONNET_5_5 = ModelProfile(
    id="claude-sonnet-5-5",
    # Cache reads went from $0.20 to $0.10 per million on 2026-10-07.
    price=Price(input=2.0, output=10.0, cache_write_5m=2.5, cache_write_1h=4.0, cache_read=0.10),
    forced_tool_choice=False,
    min_cacheable_tokens=512,
)
SEED_MODELS = {
    # The seed plan's estimate used Haiku 3.5 and Sonnet 4 at their 2025 prices.
    "fast": ModelProfile(
        id="claude-haiku-4-5",
        price=Price(
            input=1.0, output=5.0, cache_write_5m=1.25, cache_write_1h=2.0, cache_read=0.10
        ),
        min_cacheable_tokens=4096,
    ),
    "smart": ModelProfile(
        id="claude-sonnet-4-5",
        price=Price(
            input=3.0, output=15.0, cache_write_5m=3.75, cache_write_1h=6.0, cache_read=0.30
        ),
    ),
}


class PipelineConfig(_Settings):
    """Everything that shapes how a generation is built and priced."""

    fast: ModelProfile = Field(
        default=HAIKU_5_5, description="Model of the analyzers, styles and animation agents."
    )
    smart: ModelProfile = Field(
        default=SONNET_5_5, description="Model of the generators and the reviewer."
    )
    prompt_caching: bool = Field(
        default=True, description="Mark cache breakpoints (off only to measure what they save)."
    )
    prompt_layout: Literal["shared", "per_agent"] = Field(
        default="shared",
        description="'shared': all agents of a model tier send the same tools and system "
        "prompt (one cached prefix per model); 'per_agent': each agent only its own tool and "
        "prompt (smaller uncached prompts, a cache prefix per agent).",
    )
    static_ttl: Literal["5m", "1h"] = Field(
        default="1h", description="TTL of the cached tools and system prompt, which rarely change."
    )
    repair_attempts: int = Field(
        default=1, ge=0, le=3, description="Extra calls that carry validation errors back."
    )
    catalog_entries: int = Field(
        default=6, ge=1, le=32, description="Catalog entries retrieved into each request."
    )
    retrieval: RetrievalConfig = Field(
        default_factory=RetrievalConfig, description="Where the catalog index lives."
    )

    def model(self, tier: Literal["fast", "smart"]) -> ModelProfile:
        return self.fast if tier == "fast" else self.smart

    def price_of(self, model_id: str) -> Price | None:
        """The price of a model this config uses, by id."""
        for profile in (self.fast, self.smart):
            if profile.id == model_id:
                return profile.price
        return None
