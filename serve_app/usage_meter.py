"""Tokens per generation as generations end, by kind (new page, edit), model pool and limit
kind: what capacity planning divides the budget by. The keeper holds one meter for the
cluster, in memory (a restarted keeper counts afresh); ``/v1/capacity`` shows it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from serve_app.call_demand import KINDS

GENERATION_KINDS = ("new_page", "edit")
Usage = dict[str, dict[str, float]]
"""Per model pool, per limit kind (``KINDS``): an amount."""


def usage_by_pool(
    usage_by_agent: Mapping[str, Mapping[str, float]], pools: Mapping[str, str]
) -> Usage:
    """A generation's usage by agent (as its result reports it) by pool and limit kind."""
    out: Usage = {}
    for agent, used in usage_by_agent.items():
        if agent not in pools:
            continue
        row = out.setdefault(pools[agent], dict.fromkeys(KINDS, 0.0))
        row["requests"] += float(used.get("calls", 0))
        row["input_tokens"] += float(used.get("input_tokens", 0)) + float(
            used.get("cache_creation_input_tokens", 0)
        )
        row["output_tokens"] += float(used.get("output_tokens", 0))
    return out


class UsageMeter:
    """What the generations that ended used, by kind (new page, edit): the keeper's."""

    def __init__(self) -> None:
        self._count = dict.fromkeys(GENERATION_KINDS, 0)
        self._totals: dict[str, Usage] = {kind: {} for kind in GENERATION_KINDS}

    def add(self, kind: str, used: Usage) -> None:
        if kind not in self._count or not used:
            return
        self._count[kind] += 1
        for pool, amounts in used.items():
            row = self._totals[kind].setdefault(pool, dict.fromkeys(KINDS, 0.0))
            for limit_kind, amount in amounts.items():
                row[limit_kind] += amount

    def snapshot(self) -> dict[str, Any]:
        """Per kind: generations seen, their totals, and the mean per generation."""
        return {
            kind: {
                "generations": n,
                "totals": self._totals[kind],
                "per_generation": {
                    pool: {k: round(v / n, 2) for k, v in row.items()}
                    for pool, row in self._totals[kind].items()
                }
                if n
                else {},
            }
            for kind, n in self._count.items()
        }
