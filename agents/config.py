"""Typed settings of the pipeline: which model each tier uses, prices, caching, retrieval.

Model ids and prices are configuration; the defaults are the current models the installed
``anthropic`` SDK knows, with Anthropic's list prices in dollars per million tokens.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from agents.retrieval import RetrievalConfig
from claude_facts.models import Price, model_facts

__all__ = ["HAIKU_5_5", "SEED_MODELS", "SONNET_5_5", "ModelProfile", "PipelineConfig", "Price"]


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelProfile(_Settings):
    """A model as the pipeline uses it: its id, price and the capabilities prompts depend on."""

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

    @classmethod
    def published(cls, model_id: str) -> ModelProfile:
        """The profile of a model from its published facts (``claude_facts.models``)."""
        facts = model_facts(model_id)
        if facts.price is None:
            raise ValueError(f"no published price for {model_id}: give its profile in config")
        return cls(
            id=facts.id,
            price=facts.price,
            forced_tool_choice=facts.forced_tool_choice,
            min_cacheable_tokens=facts.min_cacheable_tokens,
        )


HAIKU_5_5 = ModelProfile.published("claude-haiku-5-5")
SONNET_5_5 = ModelProfile.published("claude-sonnet-5-5")
SEED_MODELS = {
    # The seed plan's estimate used Haiku 3.5 and Sonnet 4; their successors at list price.
    "fast": ModelProfile.published("claude-haiku-4-5"),
    "smart": ModelProfile.published("claude-sonnet-4-5"),
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
