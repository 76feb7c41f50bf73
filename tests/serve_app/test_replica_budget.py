"""A replica's budget against a real keeper actor: what it grants from its lease, and when
it stops and asks the keeper instead."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import pytest

from serve_app.call_demand import CallDemand
from serve_app.config import GatewayArgs
from serve_app.errors import BudgetTimeoutError
from serve_app.keeper_client import KeeperClient
from serve_app.replica_budget import ReplicaBudget
from tests.serve_app.conftest import own_keeper

pytestmark = pytest.mark.ray

ROOMY = {"rpm": 1000, "itpm": 400_000, "otpm": 100_000}
ARGS = GatewayArgs.model_validate(
    {
        "budget": {
            "tier": "custom",
            "limits": dict.fromkeys(("haiku", "sonnet", "opus"), ROOMY),
            "lease_share": 0.25,
            "lease_s": 5.0,
        }
    }
)


class Background:
    """Runs what the replica hands off, and lets a test wait for all of it."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[None]] = set()

    def __call__(self, work: Coroutine[Any, Any, None]) -> None:
        self.tasks.add(asyncio.ensure_future(work))

    async def drain(self) -> None:
        await asyncio.gather(*self.tasks)


@pytest.fixture
async def keeper(ray_serve: tuple[int, int]) -> AsyncIterator[KeeperClient]:
    async with own_keeper(ARGS) as keeper:
        yield keeper


def need(call_id: str, tag: str = "styles", tokens: int = 1_000) -> CallDemand:
    return CallDemand(call_id, "sonnet", tokens, 500, tag=tag)


async def grants(keeper: KeeperClient) -> int:
    return int((await keeper.snapshot())["grants_total"])


async def test_calls_like_the_first_are_granted_locally_others_by_the_keeper(
    keeper: KeeperClient,
) -> None:
    budget = ReplicaBudget(keeper, Background())
    assert await budget.acquire(need("first"), 1.0) == 500
    await budget.acquire(need("same-kind"), 1.0)
    assert await grants(keeper) == 1, "the second call came from the lease"
    await budget.acquire(need("other-kind", tag="review"), 1.0)
    await budget.acquire(need("too-big", tokens=90_000), 1.0)
    assert await grants(keeper) == 3, "a call of another agent, or one that does not fit"


async def test_after_a_429_the_replica_grants_nothing_from_its_lease(
    keeper: KeeperClient,
) -> None:
    background = Background()
    budget = ReplicaBudget(keeper, background)
    await budget.acquire(need("first"), 1.0)
    await budget.pause("sonnet", 2.0)
    with pytest.raises(BudgetTimeoutError):
        await budget.acquire(need("after-429"), 0.3)
    await background.drain()
    assert (await keeper.snapshot())["leases_out"] == 0, "the lease was given back"


async def test_a_429_on_one_replica_revokes_the_leases_of_the_others(
    keeper: KeeperClient,
) -> None:
    background = Background()
    holder, hit = ReplicaBudget(keeper, background), ReplicaBudget(keeper, background)
    await holder.acquire(need("first"), 1.0)
    assert (await keeper.snapshot())["leases_out"] == 1
    await hit.pause("sonnet", 3.0)
    # Well inside the lease's 5 s: the holder hears of the revocation and gives it back.
    for _ in range(100):
        if not (await keeper.snapshot())["leases_out"]:
            break
        await asyncio.sleep(0.02)
    assert (await keeper.snapshot())["leases_out"] == 0
    with pytest.raises(BudgetTimeoutError):
        await holder.acquire(need("after-429"), 0.3)
    await background.drain()


async def test_a_cache_hit_refunds_into_the_lease_and_the_keeper_charges_only_what_was_sent(
    keeper: KeeperClient,
) -> None:
    background = Background()
    budget = ReplicaBudget(keeper, background)
    await budget.acquire(need("first"), 1.0)
    await budget.settle("first", {"input_tokens": 800, "output_tokens": 100}, False, "sonnet")
    for n in range(40):  # more than the lease holds, had refunds not come back to it
        await budget.acquire(need(f"hit-{n}"), 1.0)
        await budget.release(f"hit-{n}", "sonnet")
    assert await grants(keeper) == 1
    await budget.pause("sonnet", 0.01)  # gives the lease back
    await background.drain()
    pools = (await keeper.snapshot())["pools"]
    used = pools["sonnet"]["utilisation"]["1m"]
    share = ARGS.budget.headroom
    assert round(used["requests"] * 1000 * share) == 1
    assert abs(used["input_tokens"] * 400_000 * share - 800) <= 40
