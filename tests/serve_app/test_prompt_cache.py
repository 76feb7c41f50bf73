"""ITPM reservations follow the API's prompt cache: checked against what claude_sim charges."""

from __future__ import annotations

from typing import Any

from agents.config import PipelineConfig
from agents.prompting import AgentTask, GenerationContext, build_request
from agents.samples import landing_page
from agents.specs import SPEC_BY_NAME
from claude_sim import SimConfig, create_app
from serve_app.budget import Budget
from serve_app.call_demand import CallDemand, Limits
from serve_app.prompt_cache import prompt_shape
from tests.claude_sim.conftest import sdk

LIMITS = {
    "sonnet": Limits(rpm=1000, itpm=10**7, otpm=10**7),
    "haiku": Limits(rpm=1000, itpm=10**7, otpm=10**7),
}


def request(agent: str, instruction: str) -> dict[str, Any]:
    context = GenerationContext("home", instruction, landing_page("home"))
    task = AgentTask(agent, context, landing_page("home"))
    return build_request(SPEC_BY_NAME[agent], task, PipelineConfig())


async def test_reservation_equals_what_the_simulator_charges_once_warm() -> None:
    client = sdk(create_app(SimConfig(speed=500, profile="tier4")))
    budget = Budget(LIMITS)
    charged, reserved = [], []
    for n, agent in enumerate(["styles", "animation", "styles", "layout_analyzer"]):
        params = request(agent, "Make the hero bolder" if n < 3 else "Add a FAQ section")
        shape = prompt_shape(params)
        demand = CallDemand(f"c{n}", "haiku", shape.total, params["max_tokens"], shape=shape)
        await budget.acquire(demand, timeout_s=1)
        reserved.append(budget._granted[f"c{n}"].input_tokens)
        reply = await client.messages.create(**params)
        usage = reply.usage
        charged.append(usage.input_tokens + (usage.cache_creation_input_tokens or 0))
        budget.settle(
            f"c{n}",
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_write_tokens=usage.cache_creation_input_tokens or 0,
            cache_read_tokens=usage.cache_read_input_tokens or 0,
        )
    assert reserved[0] >= charged[0], "cold: the whole prompt is reserved"
    # warm static prefix and shared generation block: reservation tracks the charge closely
    for got, want in zip(reserved[1:], charged[1:], strict=True):
        assert want <= got <= want * 1.1 + 50, (reserved, charged)
    assert charged[1] < charged[0] / 3, "the cache really was read"


def test_a_429_makes_the_budget_forget_the_cache() -> None:
    budget = Budget(LIMITS)
    shape = prompt_shape(request("styles", "Make the hero bolder"))
    budget.mirror.learn(shape, shape.total, now=0.0)
    assert budget.mirror.uncached(shape, now=1.0) < shape.total
    budget.mirror.forget()
    assert budget.mirror.uncached(shape, now=1.0) == shape.total


def test_the_mirror_stays_bounded_and_keeps_what_stays_warm_longest() -> None:
    from serve_app.prompt_cache import MAX_WARM, PromptCacheMirror, PromptShape

    mirror = PromptCacheMirror()
    shapes = [
        PromptShape("m", ((f"p{i}", 2000, 3600.0),), 3000, f"r{i}") for i in range(MAX_WARM + 10)
    ]
    for i, shape in enumerate(shapes):
        mirror.learn(shape, 2000, now=float(i) / 100)
    newest, oldest = shapes[-1], shapes[0]
    now = MAX_WARM / 100
    assert mirror.uncached(newest, now) == 1000, "the last prefix learned is still warm"
    assert mirror.uncached(oldest, now) == 3000, "the oldest was pruned"
    warm = sum(1 for s in shapes if mirror.uncached(s, now) < 3000)
    assert warm <= MAX_WARM


def test_the_identity_tells_apart_every_request_the_api_would_answer_differently() -> None:
    """The agent-call cache's key: equal for the same request built twice, different when
    any block, a block's place, a role or any other parameter differs."""
    base = request("styles", "Make the hero bolder")
    same = request("styles", "Make the hero bolder")
    assert prompt_shape(base).identity == prompt_shape(same).identity
    first = base["messages"][0]
    variants = [
        request("styles", "Make the hero bolder!"),
        {**base, "max_tokens": base["max_tokens"] + 1},
        {**base, "temperature": 0.5},
        {**base, "messages": [{**first, "role": "assistant"}, *base["messages"][1:]]},
        # The same blocks, the last tool moved into the system prompt.
        {
            **base,
            "tools": base["tools"][:-1],
            "system": [base["tools"][-1], *base["system"]],
        },
    ]
    identities = {prompt_shape(v).identity for v in variants} | {prompt_shape(base).identity}
    assert len(identities) == len(variants) + 1
