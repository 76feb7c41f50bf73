"""One agent replica outside Serve: a real keeper actor, the memory store, claude_sim."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from agents.errors import AgentOutputError
from agents.prompting import AgentTask, GenerationContext
from claude_sim import SimConfig, create_app
from serve_app import agent_pool
from serve_app.agent_pool import AgentReplica, CallMeta, _billed
from serve_app.config import GatewayArgs
from serve_app.keeper_client import KeeperClient
from serve_app.store.memory import MemoryStore
from tests.agents.test_page import sample_page
from tests.agents.test_runner import task
from tests.claude_sim.conftest import raw, sdk
from tests.serve_app.conftest import own_keeper

pytestmark = pytest.mark.ray

ARGS = GatewayArgs.model_validate({"upstream": {"agent_cache_ttl_s": 600}})


@pytest.fixture
async def keeper(ray_serve: tuple[int, int]) -> AsyncIterator[KeeperClient]:
    """A keeper of this test's own (not the cluster's singleton), over a real actor."""
    async with own_keeper(ARGS) as keeper:
        yield keeper


async def requests_seen(app: Any) -> int:
    async with raw(app) as http:
        stats = (await http.get("/sim/stats")).json()
    return sum(m["requests"] for k in stats["keys"].values() for m in k["models"].values())


Replica = Callable[[dict[str, Any]], tuple[AgentReplica, Any]]


@pytest.fixture
def replica(keeper: KeeperClient) -> Replica:
    """A ``review`` replica against a simulator with ``faults``, sharing one store."""
    store = MemoryStore()

    def build(faults: dict[str, Any]) -> tuple[AgentReplica, Any]:
        app = create_app(SimConfig.model_validate({"speed": 200.0, "faults": faults}))
        client = sdk(app)
        args = ARGS.model_dump_json()
        agent = AgentReplica("review", args, client=client, store=store, keeper=keeper)
        return agent, app

    return build


META = CallMeta("job-1", "acme", "u1")


async def test_a_validated_answer_is_cached_for_its_tenant(replica: Replica) -> None:
    agent, app = replica({})
    first = await agent.run(task("review"), META)
    spent = await requests_seen(app)
    again = await agent.run(task("review"), META)
    assert spent == len(first.calls) >= 1
    assert await requests_seen(app) == spent, "answered from the cache"
    assert again.output == first.output
    assert again.calls == (), "a cached answer cost nothing"
    other = await agent.run(task("review"), CallMeta("job-2", "globex", "v1"))
    assert await requests_seen(app) > spent, "another tenant never sees acme's answer"
    assert other.output


async def test_a_hit_gives_back_the_budget_asked_for_while_looking(
    replica: Replica, keeper: KeeperClient
) -> None:
    agent, app = replica({})
    first = await agent.run(task("review"), META)
    await settled(keeper)
    before = await keeper.snapshot()
    assert before["grants_total"] == len(first.calls), "the early grant served the first call"
    await agent.run(task("review"), META)
    await asyncio.sleep(0.5)  # an early ask left behind would have reached the keeper
    after = await settled(keeper)  # the early grant was cancelled or given back, not kept
    assert await requests_seen(app) == len(first.calls), "a hit sent nothing upstream"
    spent = [
        {name: pool["utilisation"]["1m"] for name, pool in snap["pools"].items()}
        for snap in (before, after)
    ]
    assert spent[0] == spent[1], "and the grant was refunded, not charged"


async def settled(keeper: KeeperClient) -> dict[str, Any]:
    """The keeper's snapshot once every grant has been settled or given back (both are
    sent in the background)."""
    for _ in range(100):
        snapshot = await keeper.snapshot()
        if snapshot["grants_open"] == 0:
            return snapshot
        await asyncio.sleep(0.02)
    raise AssertionError(f"grants still open: {snapshot['grants_open']}")


async def test_a_streamed_call_settles_and_keeps_its_answer_once_the_answer_is_out(
    replica: Replica, keeper: KeeperClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(agent_pool, "ANSWER_GRACE_S", 5.0)
    agent, app = replica({})
    stream = agent.run_beating(task("review"), META)
    outcome = await anext(stream)
    assert outcome is not None
    assert outcome.output
    await asyncio.sleep(0.3)  # a settle sent with the answer would have reached the keeper
    assert (await keeper.snapshot())["grants_open"] == 1, "held until the answer is out"
    assert [item async for item in stream] == []
    await settled(keeper)  # told once the answer was out
    again = await agent.run(task("review"), META)
    assert again.calls == ()
    assert await requests_seen(app) == len(outcome.calls), "kept"


async def test_a_streamed_answer_nobody_takes_is_still_settled_and_kept(
    replica: Replica, keeper: KeeperClient
) -> None:
    agent, app = replica({})
    stream = agent.run_beating(task("review"), META)
    outcome = None
    while outcome is None:
        outcome = await anext(stream)
    # The caller has the answer but never asks for the end of the stream nor closes it.
    await settled(keeper)
    again = await agent.run(task("review"), META)
    assert again.calls == ()
    assert await requests_seen(app) == 1, "kept"
    await stream.aclose()


async def test_a_streamed_call_closed_mid_call_is_still_charged(keeper: KeeperClient) -> None:
    app = create_app(SimConfig.model_validate({"speed": 0.5}))
    args = ARGS.model_copy(
        update={"ingress": ARGS.ingress.model_copy(update={"replica_beat_s": 0.05})}
    )
    agent = AgentReplica(
        "review", args.model_dump_json(), client=sdk(app), store=MemoryStore(), keeper=keeper
    )
    stream = agent.run_beating(task("review"), META)
    assert await anext(stream) is None, "a beat while the call is upstream"
    await stream.aclose()  # the caller went away
    after = await settled(keeper)
    assert after["grants_total"] == 1
    (used,) = [
        p["utilisation"]["1m"]
        for p in after["pools"].values()
        if p["utilisation"]["1m"]["requests"]
    ]
    assert used["requests"] > 0, "the call sent stays charged"


async def test_an_answer_that_failed_validation_is_not_cached(replica: Replica) -> None:
    agent, app = replica({"invalid_tool_input": 1.0})
    for expected in (2, 4):  # a call and its repair each time, none answered from a cache
        with pytest.raises(AgentOutputError):
            await agent.run(task("review"), META)
        assert await requests_seen(app) == expected


async def test_without_its_store_the_replica_answers_uncached(keeper: KeeperClient) -> None:
    from serve_app.store.redis_backend import RedisStore
    from tests.conftest import free_port

    app = create_app(SimConfig.model_validate({"speed": 200.0}))
    gone = RedisStore(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    agent = AgentReplica(
        "review", ARGS.model_dump_json(), client=sdk(app), store=gone, keeper=keeper
    )
    outcome = await agent.run(task("review"), META)
    assert outcome.output
    assert await requests_seen(app) == len(outcome.calls) == outcome.attempts, "asked once"


def test_an_answer_cut_short_by_the_bound_is_billed_with_its_answer() -> None:
    # The simulator's answers stay under the bound's floor, so this is the arithmetic alone.
    answer = {"content": [], "usage": {"input_tokens": 100, "output_tokens": 900}}
    cut = [{"input_tokens": 100, "output_tokens": 256, "cache_read_input_tokens": 40}]
    billed = _billed(answer, cut)
    assert billed["usage"] == {
        "input_tokens": 200,
        "output_tokens": 1156,
        "cache_read_input_tokens": 40,
        "requests": 2,
    }
    assert answer["usage"]["output_tokens"] == 900, "the answer itself is left as it was"
    assert _billed(answer, []) is answer


ROOMY = {"rpm": 1000, "itpm": 400_000, "otpm": 100_000}
"""Room for a lease of several review calls (about 16,000 input tokens each, uncached)."""
LEASING = GatewayArgs.model_validate(
    {
        "upstream": {"agent_cache_ttl_s": 600},
        "budget": {
            "tier": "custom",
            "limits": dict.fromkeys(("haiku", "sonnet", "opus"), ROOMY),
            "lease_share": 0.25,
            "lease_s": 0.5,
        },
    }
)


async def test_an_uncontended_replica_grants_from_its_lease_and_is_charged_what_was_reported(
    ray_serve: tuple[int, int],
) -> None:
    async with own_keeper(LEASING) as keeper:
        app = create_app(SimConfig.model_validate({"speed": 200.0}))
        agent = AgentReplica(
            "review", LEASING.model_dump_json(), client=sdk(app), store=MemoryStore(), keeper=keeper
        )
        outcomes = []
        for n in range(3):  # three different tasks: no cache hits
            context = GenerationContext("home", f"Make the pricing cards stand out ({n})", None)
            outcomes.append(await agent.run(AgentTask("review", context, sample_page()), META))
        calls = [call for outcome in outcomes for call in outcome.calls]
        assert await requests_seen(app) == len(calls) >= 3
        assert (await keeper.snapshot())["grants_total"] == 1, "the keeper granted one call"
        await asyncio.sleep(0.8)  # the lease runs out and its replica gives the rest back
        after = await settled(keeper)
    assert after["leases_out"] == 0
    (used,) = [
        p["utilisation"]["1m"]
        for p in after["pools"].values()
        if p["queue_depth"] == 0 and p["utilisation"]["1m"]["requests"] > 0
    ]
    share = LEASING.budget.headroom  # utilisation is of the limits less the headroom
    reported_in = sum(c.input_tokens + c.cache_creation_input_tokens for c in calls)
    # Utilisation is rounded to 4 places: 40 tokens of 400,000, 10 of 100,000.
    assert abs(used["input_tokens"] * 400_000 * share - reported_in) <= 40, "what was reported"
    assert abs(used["output_tokens"] * 100_000 * share - sum(c.output_tokens for c in calls)) <= 10
    assert round(used["requests"] * 1000 * LEASING.budget.headroom) == len(calls)
