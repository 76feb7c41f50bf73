"""The DAG against claude_sim: a new page, an edit with its patch, ordering, fan-out, plans."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import jsonpatch
import pytest

from agents.errors import ClaudeAPIError
from agents.page import Page
from agents.pipeline import GenerationRequest, StageEvent, make_plan
from agents.prompting import AgentTask
from agents.runner import AgentOutcome
from agents.specs import SPECS
from tests.agents.test_page import sample_page

NEW_PAGE = (
    "Create a landing page for a coffee shop with a hero banner, a menu grid and a "
    "contact form that emails the owner"
)


class Recorder:
    """Wraps the real runner to note when each call starts and ends."""

    def __init__(self, runner: Any) -> None:
        self.runner = runner
        self.spans: list[tuple[str, str | None, float, float]] = []

    async def __call__(self, task: AgentTask) -> AgentOutcome:
        started = time.monotonic()
        outcome: AgentOutcome = await self.runner.run(task)
        self.spans.append((task.agent, task.scope, started, time.monotonic()))
        return outcome

    def window(self, agent: str) -> tuple[float, float]:
        mine = [(s, e) for a, _, s, e in self.spans if a == agent]
        return min(s for s, _ in mine), max(e for _, e in mine)


async def test_new_page_runs_every_stage_in_order_and_yields_a_valid_page(
    make_pipeline: Any,
) -> None:
    wiring = make_pipeline(sim={"speed": 20})
    recorder = Recorder(wiring.runner)
    pipeline = wiring.pipeline_with(recorder)
    events: list[StageEvent] = []
    result = await pipeline.run(GenerationRequest("cafe", NEW_PAGE), on_event=events.append)
    page = Page.model_validate(result.page.model_dump(mode="json"))
    assert page.sections, "the new page has sections"
    assert any(section.components for section in page.sections)
    assert result.patch is None
    ran = result.plan.agents
    assert {
        "layout_analyzer",
        "layout_generator",
        "component_generator",
        "styles",
        "review",
    } <= set(ran)
    order = [s.name for s in SPECS]
    completed = [e.agent for e in events if e.status == "completed"]
    assert sorted(completed, key=order.index) == sorted(ran, key=order.index)
    assert recorder.window("layout_analyzer")[1] <= recorder.window("layout_generator")[0]
    assert recorder.window("layout_generator")[1] <= recorder.window("component_analyzer")[0]
    assert recorder.window("component_generator")[1] <= recorder.window("styles")[0]
    assert max(recorder.window(a)[1] for a in ran if a != "review") <= recorder.window("review")[0]
    # one component_generator call per section, run side by side
    fanned = [(scope, s, e) for a, scope, s, e in recorder.spans if a == "component_generator"]
    assert sorted(scope for scope, _, _ in fanned) == sorted(s.id for s in page.sections)
    if len(fanned) > 1:
        assert max(s for _, s, _ in fanned) < min(e for _, _, e in fanned), "not parallel"
    assert result.total.calls >= len(ran)
    assert result.total.cost_usd > 0
    assert set(result.usage) == set(ran)


async def test_parallel_branch_runs_side_by_side(make_pipeline: Any) -> None:
    wiring = make_pipeline(sim={"speed": 10})
    recorder = Recorder(wiring.runner)
    pipeline = wiring.pipeline_with(recorder)
    request = GenerationRequest(
        "home", "Restyle and animate", sample_page(), groups=("styles", "animation")
    )
    await pipeline.run(request)
    styles, animation = recorder.window("styles"), recorder.window("animation")
    assert styles[0] < animation[1]
    assert animation[0] < styles[1]


async def test_edit_returns_a_patch_that_turns_the_old_page_into_the_new(
    make_pipeline: Any,
) -> None:
    pipeline = make_pipeline().pipeline
    original = sample_page()
    result = await pipeline.run(
        GenerationRequest("home", "Add a pricing section with a monthly/yearly toggle", original)
    )
    assert result.patch is not None
    assert result.patch, "the edit changed something"
    patched = jsonpatch.apply_patch(original.model_dump(mode="json"), result.patch)
    assert patched == result.page.model_dump(mode="json")
    assert result.review is not None
    assert "approved" in result.review


async def test_same_request_gives_the_same_page(make_pipeline: Any) -> None:
    async def once() -> dict[str, Any]:
        pipeline = make_pipeline().pipeline
        result = await pipeline.run(GenerationRequest("home", "Add a FAQ section", sample_page()))
        return result.page.model_dump(mode="json")

    first, second = await asyncio.gather(once(), once())
    assert first == second


def test_plans_force_groups_and_new_pages_get_their_basics() -> None:
    forced = make_plan(GenerationRequest("p", "anything", sample_page(), groups=("styles",)))
    assert forced.agents == ("styles", "review")
    new = make_plan(GenerationRequest("p", "make it pop", None, groups=("animation",)))
    assert set(new.needs) == {"layout", "components", "styles", "animation"}
    planned = make_plan(GenerationRequest("p", "Change the primary colour to green", sample_page()))
    assert "styles" in planned.needs
    assert "layout_generator" in planned.skipped


async def test_a_failed_section_call_cancels_its_siblings(make_pipeline: Any) -> None:
    wiring = make_pipeline()
    page = sample_page()
    sections = [section.id for section in page.sections]
    cancelled: list[str | None] = []
    started: list[str | None] = []

    async def call(task: AgentTask) -> AgentOutcome:
        if task.agent == "component_analyzer":  # names every section, so all are called
            targets = [
                {"section_id": s, "component_types": ["text"], "brief": "b"} for s in sections
            ]
            return AgentOutcome(task.agent, {"targets": targets}, (), 1, 0.0)
        if task.agent != "component_generator":
            outcome: AgentOutcome = await wiring.runner.run(task)
            return outcome
        started.append(task.scope)
        if len(started) == 1:
            await asyncio.sleep(0.05)  # the others are under way by now
            raise ClaudeAPIError("the first section's call failed", upstream_status=500)
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.append(task.scope)
            raise
        raise AssertionError("a sibling ran to its end after the stage had failed")

    events: list[StageEvent] = []
    request = GenerationRequest("fan", "Add a caption to every section", page, ("components",))
    with pytest.raises(ClaudeAPIError, match="first section"):
        await wiring.pipeline_with(call).run(request, on_event=events.append)
    assert sorted(map(str, started)) == sorted(sections), "one call per section, side by side"
    assert sorted(map(str, cancelled)) == sorted(map(str, started[1:]))
    failed = [e for e in events if e.status == "failed"]
    assert [e.agent for e in failed] == ["component_generator"]
