"""The planner: targets on the shared and held-out sets, and the cases the service needs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agents.planner import ALL_AGENTS, GROUPS, Plan, PlannerReport, evaluate, plan_instruction

DATASET = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "instructions.jsonl"
HOLDOUT = Path(__file__).with_name("planner_holdout.jsonl")


def load(path: Path) -> list[tuple[str, list[str]]]:
    rows = (json.loads(line) for line in path.read_text().splitlines() if line.strip())
    return [(row["instruction"], row["needs"]) for row in rows]


def summary(report: PlannerReport) -> str:
    misses = "".join(f"\n  {text!r}: want {want}, got {got}" for text, want, got in report.mistakes)
    return (
        f"n={report.n} accuracy={report.exact_accuracy:.3f} recall={report.recall:.3f} "
        f"precision={report.precision:.3f} calls saved={report.agent_calls_saved:.3f}{misses}"
    )


def test_shared_dataset_meets_the_targets() -> None:
    report = evaluate(load(DATASET))
    assert report.n >= 50, summary(report)
    assert report.exact_accuracy >= 0.90, summary(report)
    assert report.recall >= 0.98, summary(report)


def test_held_out_set_meets_its_targets() -> None:
    report = evaluate(load(HOLDOUT))
    print(f"held-out: {summary(report)}")
    assert report.n >= 40
    assert report.recall >= 0.95, summary(report)
    assert report.exact_accuracy >= 0.80, summary(report)


def test_held_out_set_is_new_and_well_formed() -> None:
    seen = {text.lower() for text, _ in load(DATASET)}
    rows = load(HOLDOUT)
    assert len({text.lower() for text, _ in rows}) == len(rows), "duplicate instructions"
    for text, needs in rows:
        assert text.lower() not in seen, f"copied from the dataset: {text!r}"
        assert needs, text
        assert needs == [g for g in GROUPS if g in needs], f"not in pipeline order: {text!r}"


@pytest.mark.parametrize(
    ("instruction", "needs"),
    [
        ("Make the footer background navy", ("styles",)),
        ("Use Georgia for all headings", ("styles",)),
        ("Remove all animations", ("animation",)),
        ("no more animations please", ("animation",)),
        ("remove the anmations from the cards", ("animation",)),
        ("Add a pricing toggle without any animation", ("components", "events")),
        ("Move the testimonials above the pricing section", ("layout",)),
        ("Change the hero headline to 'Build it today'", ("components",)),
        ("Fade the hero in when the page loads", ("animation",)),
    ],
)
def test_plans_for_clear_instructions(instruction: str, needs: tuple[str, ...]) -> None:
    assert plan_instruction(instruction).needs == needs


@pytest.mark.parametrize(
    "instruction",
    [
        "Create a landing page for a bakery",
        "new page: our team, with photos and short bios",
        "Creat a landng page for my gym",
        "I need a website for my band with tour dates",
    ],
)
def test_a_new_page_needs_layout_components_and_styles(instruction: str) -> None:
    assert {"layout", "components", "styles"} <= set(plan_instruction(instruction).needs)


def test_a_new_page_adds_events_and_animation_only_when_named() -> None:
    assert "events" in plan_instruction("Build a signup page with a form that emails us").needs
    assert "animation" in plan_instruction("Build a portfolio site where photos fade in").needs
    quiet = plan_instruction("Build a portfolio site with a gallery, no animations").needs
    assert quiet == ("layout", "components", "styles")


def test_without_a_page_layout_components_and_styles_are_forced() -> None:
    assert plan_instruction("Make the buttons red").needs == ("styles",)
    forced = plan_instruction("Make the buttons red", has_page=False).needs
    assert forced == ("layout", "components", "styles")
    assert "events" in plan_instruction("A contact form that submits to us", has_page=False).needs
    assert plan_instruction("Make the buttons red", has_page=True).needs == ("styles",)


def test_vague_instructions_run_everything_with_low_confidence() -> None:
    clear = plan_instruction("Make the buttons red")
    for vague in ("make it better", "Improve the hero", ""):
        plan = plan_instruction(vague)
        assert plan.needs == GROUPS
        assert plan.confidence < 0.5 < clear.confidence


def test_confidence_is_a_probability_everywhere() -> None:
    for text, _ in load(DATASET) + load(HOLDOUT):
        assert 0.0 <= plan_instruction(text).confidence <= 1.0


def test_plan_agents_follow_the_pipeline() -> None:
    assert ALL_AGENTS == (
        "layout_analyzer",
        "layout_generator",
        "component_analyzer",
        "component_generator",
        "events_analyzer",
        "events_generator",
        "styles",
        "animation",
        "review",
    )
    plan = Plan(("layout", "styles"), 0.8)
    assert plan.agents == ("layout_analyzer", "layout_generator", "styles", "review")
    assert plan.skipped == tuple(a for a in ALL_AGENTS if a not in plan.agents)
    assert Plan((), 0.5).agents == ("review",)
    assert Plan(GROUPS, 0.5).agents == ALL_AGENTS


def test_plan_rejects_unordered_groups_and_bad_confidence() -> None:
    with pytest.raises(ValueError, match="pipeline order"):
        Plan(("styles", "layout"), 0.5)
    with pytest.raises(ValueError, match="pipeline order"):
        Plan(("styles", "styles"), 0.5)
    with pytest.raises(ValueError, match="confidence"):
        Plan(("styles",), 1.5)


def test_to_json_shape() -> None:
    data = plan_instruction("Add a phone field to the contact form and make it blue").to_json()
    assert set(data) == {"needs", "agents", "confidence"}
    assert data["needs"] == ["components", "styles"]
    assert data["agents"] == ["component_analyzer", "component_generator", "styles", "review"]
    assert isinstance(data["confidence"], float)
    assert json.loads(json.dumps(data)) == data


def test_evaluate_counts_recall_precision_and_saved_calls() -> None:
    report = evaluate(
        [
            ("Make the buttons red", ["styles"]),  # exact: 2 of 9 agents
            ("Make the buttons red", ["styles", "animation"]),  # misses animation
        ]
    )
    assert report.n == 2
    assert report.exact_accuracy == 0.5
    assert report.recall == pytest.approx(2 / 3)
    assert report.precision == 1.0
    assert report.agent_calls_saved == pytest.approx(1 - 4 / 18)
    assert report.group_recall == {"styles": 1.0, "animation": 0.0}
    assert report.mistakes == (("Make the buttons red", ("styles", "animation"), ("styles",)),)
    assert evaluate([]).n == 0
    with pytest.raises(ValueError, match="unknown groups"):
        evaluate([("Make the buttons red", ["colours"])])
