"""One agent call against claude_sim: validation, repair, usage and cost."""

from __future__ import annotations

from typing import Any

import pytest

from agents.config import SONNET_5_5, PipelineConfig, Price
from agents.errors import AgentOutputError, PipelineError
from agents.prompting import AgentTask, GenerationContext
from agents.specs import SPEC_BY_NAME, SPECS
from agents.usage import CallUsage
from tests.agents.test_page import sample_page

CONTEXT = GenerationContext("home", "Make the pricing cards stand out", sample_page())


def task(agent: str) -> AgentTask:
    return AgentTask(agent, CONTEXT, sample_page())


async def test_a_valid_answer_comes_back_parsed_with_its_usage(make_pipeline: Any) -> None:
    runner = make_pipeline().runner
    outcome = await runner.run(task("styles"))
    assert outcome.agent == "styles"
    assert "ops" in outcome.output
    assert outcome.attempts >= 1
    assert len(outcome.calls) == outcome.attempts
    assert outcome.calls[0].model == "claude-haiku-5-5"
    assert outcome.calls[0].output_tokens > 0


async def test_schema_violations_get_a_repair_call_then_a_typed_error(make_pipeline: Any) -> None:
    runner = make_pipeline(sim={"faults": {"invalid_tool_input": 1.0}}).runner
    with pytest.raises(AgentOutputError) as err:
        await runner.run(task("review"))
    assert err.value.fields["agent"] == "review"
    assert len(err.value.fields["usage"]) == 2, "one call and one repair, both accounted"
    assert err.value.type == "agent_output_invalid"


async def test_a_repair_can_succeed(make_pipeline: Any) -> None:
    runner = make_pipeline(sim={"faults": {"invalid_tool_input": 0.5}, "seed": 5}).runner
    repaired = []
    for _ in range(12):
        try:
            outcome = await runner.run(task("review"))
        except AgentOutputError:
            continue
        if outcome.attempts == 2:
            repaired.append(outcome)
    assert repaired, "no answer was repaired in 12 tries"
    assert all(len(o.calls) == 2 for o in repaired)


def test_agent_errors_survive_pickling() -> None:
    import pickle

    error = AgentOutputError("bad", agent="review", problems=["x: required"])
    again = pickle.loads(pickle.dumps(error))
    assert isinstance(again, PipelineError)
    assert again.fields == {"agent": "review", "problems": ["x: required"]}
    assert again.to_json()["type"] == "agent_output_invalid"


def test_cost_uses_each_token_kind_price() -> None:
    usage = CallUsage(
        model="m",
        input_tokens=1_000_000,
        output_tokens=100_000,
        cache_creation_input_tokens=300_000,
        cache_read_input_tokens=2_000_000,
        cache_write_1h_tokens=100_000,
    )
    price = Price(input=2, output=10, cache_write_5m=2.5, cache_write_1h=4, cache_read=0.1)
    assert usage.cost(price) == pytest.approx(2 + 1 + 0.5 + 0.4 + 0.2)
    assert SONNET_5_5.price.cache_read < SONNET_5_5.price.input


@pytest.mark.parametrize("agent", [s.name for s in SPECS])
async def test_every_agent_builds_a_request_and_validates_its_answer(
    make_pipeline: Any, agent: str
) -> None:
    runner = make_pipeline().runner
    scope = "sec-2" if SPEC_BY_NAME[agent].fan_out else None
    outcome = await runner.run(AgentTask(agent, CONTEXT, sample_page(), scope=scope))
    parsed = SPEC_BY_NAME[agent].output.model_validate(outcome.output)
    assert parsed is not None
    assert outcome.calls[0].model == PipelineConfig().model(SPEC_BY_NAME[agent].tier).id


def scripted(*answers: list[dict[str, Any]]) -> tuple[Any, list[dict[str, Any]]]:
    """A ``Send`` that answers the layout generator with these op lists, in turn, and the
    requests it got."""
    sent: list[dict[str, Any]] = []

    async def send(params: dict[str, Any]) -> dict[str, Any]:
        sent.append(params)
        ops = answers[min(len(sent), len(answers)) - 1]
        block = {"type": "tool_use", "id": "t", "name": "submit_layout_generator", "input": {}}
        block["input"] = {"ops": ops, "summary": "Sections for the page."}
        return {"model": params["model"], "content": [block], "stop_reason": "tool_use"}

    return send, sent


REMOVE_MISSING = [{"op": "remove_section", "section_id": "sec-99"}]
ADD_HERO = [{"op": "add_section", "name": "Hero", "role": "hero"}]


async def test_a_new_page_of_which_nothing_fits_is_repaired_then_refused_not_kept_empty() -> None:
    from agents.page import empty_page
    from agents.runner import AgentRunner

    new_page = AgentTask(
        "layout_generator", GenerationContext("p", "A bakery", None), empty_page("p")
    )
    send, sent = scripted(REMOVE_MISSING)
    with pytest.raises(AgentOutputError):
        await AgentRunner(PipelineConfig(), send).run(new_page)
    assert len(sent) == 2, "the first answer and its repair"
    send, sent = scripted(REMOVE_MISSING, REMOVE_MISSING + ADD_HERO)
    outcome = await AgentRunner(PipelineConfig(), send).run(new_page)
    assert [op["op"] for op in outcome.output["ops"]] == ["add_section"], "what fits is kept"
    assert outcome.warnings, "and what did not is reported"


async def test_an_edit_of_a_page_of_which_nothing_fits_leaves_it_unchanged_with_warnings() -> None:
    from agents.runner import AgentRunner

    send, sent = scripted(REMOVE_MISSING)
    outcome = await AgentRunner(PipelineConfig(), send).run(task("layout_generator"))
    assert outcome.output["ops"] == []
    assert outcome.warnings
    assert len(sent) == 2
