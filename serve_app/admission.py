"""Admission control: how long a new generation would wait for Claude budget.

The budget keeper only sees calls that are already waiting; a running generation still
has most of its calls ahead. So the wait a new generation faces is the work of every
generation in flight, at what a generation has recently cost in each pool, divided by
the pool's rates; the keeper's own queue estimate is the floor. Over the configured
maximum, the request is refused with 429 and ``Retry-After`` instead of queueing forever.
"""

from __future__ import annotations

from typing import Any

from agents.specs import SPEC_BY_NAME
from serve_app.config import GatewayArgs

KINDS = ("requests", "input_tokens", "output_tokens")


class GenerationCost:
    """Moving average of what one generation consumes per pool and limit kind."""

    def __init__(self, args: GatewayArgs, weight: float = 0.2) -> None:
        self._args = args
        self._weight = weight
        self.per_pool: dict[str, dict[str, float]] = {}

    def learn(self, usage_by_agent: dict[str, dict[str, Any]]) -> None:
        """Fold in a finished generation's usage (the result's ``usage.agents``)."""
        spent: dict[str, dict[str, float]] = {}
        for agent, usage in usage_by_agent.items():
            model = self._args.pipeline.model(SPEC_BY_NAME[agent].tier).id
            pool = spent.setdefault(self._args.pool_of(model), dict.fromkeys(KINDS, 0.0))
            pool["requests"] += usage.get("calls", 0)
            pool["input_tokens"] += usage.get("input_tokens", 0) + usage.get(
                "cache_creation_input_tokens", 0
            )
            pool["output_tokens"] += usage.get("output_tokens", 0)
        for name, kinds in spent.items():
            mean = self.per_pool.setdefault(name, dict(kinds))
            for kind, value in kinds.items():
                mean[kind] += self._weight * (value - mean[kind])

    def backlog_s(self, generations: int) -> float:
        """Seconds of budget that ``generations`` generations need, in the tightest pool."""
        limits = self._args.budget.pool_limits()
        share = self._args.budget.headroom
        wait = 0.0
        for pool, kinds in self.per_pool.items():
            lim = limits.get(pool)
            if lim is None:
                continue
            per_minute = {"requests": lim.rpm, "input_tokens": lim.itpm, "output_tokens": lim.otpm}
            for kind, per_generation in kinds.items():
                wait = max(wait, generations * per_generation * 60 / (per_minute[kind] * share))
        return wait
