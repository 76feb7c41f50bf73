"""Token usage of API calls, summed per agent and per generation, and what it costs."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from agents.config import Price

PER_MILLION = 1_000_000


@dataclass(frozen=True)
class CallUsage:
    """What one API call consumed, as the API reported it."""

    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_write_1h_tokens: int = 0
    """The part of the cache writes with the 1-hour TTL (priced higher)."""
    requests: int = 1
    """API requests the call took: an answer cut short (by a ``max_tokens`` the gateway
    right-sized) and asked again in full is two, its usage the sum of both."""

    @classmethod
    def from_api(cls, model: str, usage: Any) -> CallUsage:
        """From the SDK's ``Usage`` object (or its dict form)."""
        get = usage.get if isinstance(usage, dict) else lambda k, d=None: getattr(usage, k, d)
        creation = get("cache_creation") or {}
        one_hour = (
            creation.get("ephemeral_1h_input_tokens")
            if isinstance(creation, dict)
            else getattr(creation, "ephemeral_1h_input_tokens", 0)
        )
        return cls(
            model=model,
            input_tokens=get("input_tokens") or 0,
            output_tokens=get("output_tokens") or 0,
            cache_creation_input_tokens=get("cache_creation_input_tokens") or 0,
            cache_read_input_tokens=get("cache_read_input_tokens") or 0,
            cache_write_1h_tokens=one_hour or 0,
            requests=get("requests") or 1,
        )

    def cost(self, price: Price) -> float:
        """Dollars, at ``price``."""
        write_5m = self.cache_creation_input_tokens - self.cache_write_1h_tokens
        return (
            self.input_tokens * price.input
            + self.output_tokens * price.output
            + write_5m * price.cache_write_5m
            + self.cache_write_1h_tokens * price.cache_write_1h
            + self.cache_read_input_tokens * price.cache_read
        ) / PER_MILLION


TOKEN_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
)


@dataclass
class UsageTotals:
    """Tokens and dollars summed over calls."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cost_usd: float = 0.0
    by_model: dict[str, int] = field(default_factory=dict)

    def add(self, call: CallUsage, price: Price | None) -> None:
        self.calls += call.requests
        for name in TOKEN_FIELDS:
            setattr(self, name, getattr(self, name) + getattr(call, name))
        self.cost_usd += call.cost(price) if price else 0.0
        self.by_model[call.model] = self.by_model.get(call.model, 0) + 1

    def merge(self, other: UsageTotals) -> None:
        for f in fields(self):
            if f.name == "by_model":
                for model, n in other.by_model.items():
                    self.by_model[model] = self.by_model.get(model, 0) + n
            else:
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    @property
    def total_input_tokens(self) -> int:
        return self.input_tokens + self.cache_creation_input_tokens + self.cache_read_input_tokens

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            **{name: getattr(self, name) for name in TOKEN_FIELDS},
            "cost_usd": round(self.cost_usd, 6),
        }
