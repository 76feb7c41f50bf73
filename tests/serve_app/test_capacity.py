"""Capacity planning: the arithmetic, the meter, and the command from a fresh checkout."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from claude_facts.limits import PoolLimits, tier_limits
from serve_app.capacity import plan, render
from serve_app.usage_meter import UsageMeter, usage_by_pool

ROOT = Path(__file__).resolve().parents[2]
PER_GENERATION = {
    "new_page": {"sonnet": {"requests": 8, "input_tokens": 20_000, "output_tokens": 3_000}},
    "edit": {
        "sonnet": {"requests": 4, "input_tokens": 10_000, "output_tokens": 1_000},
        "haiku": {"requests": 1, "input_tokens": 2_000, "output_tokens": 100},
    },
}


def test_the_smallest_allowance_binds_and_the_mix_weighs_new_pages_and_edits() -> None:
    limits = {
        "sonnet": PoolLimits(rpm=100, itpm=30_000, otpm=8_000),
        "haiku": PoolLimits(rpm=50, itpm=50_000, otpm=10_000),
    }
    rows = plan(limits, 1.0, PER_GENERATION, new_share=0.5)
    binding = rows[0]
    # sonnet input: 0.5 * 20,000 + 0.5 * 10,000 = 15,000 a generation; 30,000 a minute.
    assert (binding.pool, binding.kind) == ("sonnet", "input_tokens")
    assert binding.per_generation["mixed"] == 15_000
    assert binding.generations_per_minute == pytest.approx(2.0)
    assert [r.generations_per_minute for r in rows] == sorted(
        r.generations_per_minute for r in rows
    )
    # haiku is used by edits alone: half a request a generation at this mix.
    haiku = next(r for r in rows if (r.pool, r.kind) == ("haiku", "requests"))
    assert haiku.generations_per_minute == pytest.approx(100.0)
    # Headroom scales every allowance.
    assert plan(limits, 0.5, PER_GENERATION, 0.5)[0].generations_per_minute == pytest.approx(1.0)
    text = render("t", rows, "test", 0.5, activity=0.1)
    assert "Binding: sonnet input_tokens, 2.00 generations a minute" in text
    assert "carries 20 concurrent users" in text


def test_the_meter_sums_by_kind_pool_and_limit_and_counts_cache_writes_as_input() -> None:
    pools = {"layout_generator": "sonnet", "styles": "haiku"}
    used = {
        "layout_generator": {
            "calls": 2,
            "input_tokens": 100,
            "output_tokens": 50,
            "cache_creation_input_tokens": 1_000,
            "cache_read_input_tokens": 9,
        },
        "styles": {"calls": 1, "input_tokens": 10, "output_tokens": 5},
    }
    meter = UsageMeter()
    meter.add("new_page", usage_by_pool(used, pools))
    meter.add("new_page", usage_by_pool(used, pools))
    meter.add("edit", {})  # a failed generation reports nothing and is not counted
    snap = meter.snapshot()
    assert snap["edit"]["generations"] == 0
    assert snap["new_page"]["generations"] == 2
    assert snap["new_page"]["totals"]["sonnet"] == {
        "requests": 4.0,
        "input_tokens": 2_200.0,
        "output_tokens": 100.0,
    }
    assert snap["new_page"]["per_generation"]["haiku"]["requests"] == 1.0


def capacity(*flags: str) -> subprocess.CompletedProcess[str]:
    """``python -m serve_app.capacity`` run from the checkout, as an operator runs it."""
    command = [sys.executable, "-m", "serve_app.capacity", *flags]
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT)


def test_the_command_prints_a_tier_table_from_config_alone() -> None:
    done = capacity("--tier", "tier2")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith("## tier2, headroom")
    assert "Binding: " in out
    sonnet_rpm = tier_limits("tier2")["sonnet"].rpm
    assert f"| sonnet | requests | {sonnet_rpm * 0.98:,.0f} |" in out


def test_the_command_reads_a_serve_configs_budget_and_refuses_bad_flags() -> None:
    done = capacity("--config", "serve_config.yaml")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("## serve_config.yaml: budget tier1")
    bad = capacity("--new-share", "2")
    assert bad.returncode == 2
    assert "--new-share is a share" in bad.stderr
