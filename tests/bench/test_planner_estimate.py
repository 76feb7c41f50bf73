"""The estimate scores plans exactly as the service makes them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agents import planner, planner_model
from agents.planner import evaluate
from bench.planner_estimate import score

DATASET = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "instructions.jsonl"


def test_scores_agree_with_the_planner_on_the_shared_dataset() -> None:
    lines = [json.loads(line) for line in DATASET.read_text().splitlines() if line.strip()]
    rows = [(r["instruction"], r["needs"]) for r in lines]
    model = planner_model.shipped(
        planner._features, planner._verdict, planner._embed, planner._known
    )
    recall, exact, saved = score(model, rows)
    report = evaluate(rows)
    assert recall == pytest.approx(report.recall)
    assert exact == pytest.approx(report.exact_accuracy)
    assert saved == pytest.approx(report.agent_calls_saved)


def test_the_calibration_rows_are_grouped_by_the_split_each_came_from() -> None:
    splits = planner_model.calibration_splits()
    assert len(splits) >= 7
    assert all(len(rows) >= 100 for rows in splits.values())
    assert sum(map(len, splits.values())) == len(planner_model.calibration_rows())
