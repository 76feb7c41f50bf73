"""Admission control's estimate of the budget a backlog of generations needs."""

from __future__ import annotations

import pytest

from serve_app.admission import GenerationCost
from serve_app.config import GatewayArgs

ARGS = GatewayArgs.model_validate(
    {
        "budget": {
            "tier": "custom",
            "headroom": 1.0,
            "limits": {
                "sonnet": {"rpm": 60, "itpm": 60_000, "otpm": 6_000},
                "haiku": {"rpm": 60, "itpm": 60_000, "otpm": 60_000},
                "opus": {"rpm": 60, "itpm": 60_000, "otpm": 6_000},
            },
        }
    }
)


def test_backlog_is_the_tightest_pool_and_kind() -> None:
    cost = GenerationCost(ARGS, weight=1.0)
    assert cost.backlog_s(10) == 0.0, "no generation seen yet: no estimate"
    cost.learn(
        {
            "review": {
                "calls": 1,
                "input_tokens": 500,
                "cache_creation_input_tokens": 100,
                "output_tokens": 300,
            },
            "layout_generator": {"calls": 1, "input_tokens": 400, "output_tokens": 300},
            "styles": {"calls": 2, "input_tokens": 900, "output_tokens": 100},
        }
    )
    # sonnet: 600 output tokens a generation at 6,000 a minute: 6 s each
    assert cost.backlog_s(10) == pytest.approx(60.0)
    assert cost.per_pool["haiku"]["requests"] == 2
