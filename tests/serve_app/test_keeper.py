"""The keeper across its Ray hop: a caller that goes away leaves nothing behind in it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from serve_app.call_demand import CallDemand
from serve_app.config import GatewayArgs
from serve_app.keeper_client import KeeperClient
from tests.serve_app.conftest import own_keeper

pytestmark = pytest.mark.ray

TIGHT = {"rpm": 1, "itpm": 100_000, "otpm": 100_000}
ARGS = GatewayArgs.model_validate(
    {"budget": {"tier": "custom", "limits": {"sonnet": TIGHT, "haiku": TIGHT}, "start_full": False}}
)


@pytest.fixture
async def keeper(ray_serve: tuple[int, int]) -> AsyncIterator[KeeperClient]:
    """A keeper of this test's own (one request a minute), over a real actor."""
    async with own_keeper(ARGS) as keeper:
        yield keeper


def demand(call_id: str) -> CallDemand:
    return CallDemand(call_id, "sonnet", 100, 100, user="acme/u", job_id="j", tenant="acme")


async def queue_depth(keeper: KeeperClient) -> int:
    depth: int = (await keeper.snapshot())["pools"]["sonnet"]["queue_depth"]
    return depth


async def test_a_caller_cancelled_while_waiting_leaves_the_keepers_queue(
    keeper: KeeperClient,
) -> None:
    waiting = asyncio.create_task(keeper.acquire(demand("gone"), 60))
    for _ in range(100):
        if await queue_depth(keeper) == 1:
            break
        await asyncio.sleep(0.05)
    assert await queue_depth(keeper) == 1, "the call waits in the keeper"
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    for _ in range(100):
        if await queue_depth(keeper) == 0:
            break
        await asyncio.sleep(0.05)
    assert await queue_depth(keeper) == 0, "the keeper no longer holds a waiter for nobody"


async def test_an_acquire_rides_out_a_keeper_restart_and_reports_to_a_dead_one_are_dropped(
    ray_serve: tuple[int, int],
) -> None:
    import ray

    from serve_app.keeper import BudgetKeeper

    wide = GatewayArgs.model_validate({"budget": {"tier": "tier4"}})
    actor = (
        ray.remote(BudgetKeeper)
        .options(num_cpus=0, max_restarts=-1, max_task_retries=0)
        .remote(wide.model_dump_json(), None)
    )
    keeper = KeeperClient(actor)
    await keeper.ready()
    ray.kill(actor, no_restart=False)  # dies now, restarts on its own, as after a crash
    try:
        assert await keeper.acquire(demand("after-restart"), 30) > 0
        await keeper.settle("after-restart", {"input_tokens": 1, "output_tokens": 1}, False)
    finally:
        ray.kill(actor)
    # For good this time: a call's end reported to it is dropped, not raised into the call.
    await keeper.settle("gone", {"input_tokens": 1, "output_tokens": 1}, False)
    await keeper.charge("gone")


async def test_one_settle_charges_the_call_and_reads_the_apis_headers(
    ray_serve: tuple[int, int],
) -> None:
    wide = GatewayArgs.model_validate({"budget": {"tier": "tier4"}})
    async with own_keeper(wide) as keeper:
        await keeper.acquire(demand("answered"), 30)
        before = (await keeper.snapshot())["pools"]["sonnet"]["remaining"]
        # Another client of the same key spent most of the minute: the API says so.
        headers = {"anthropic-ratelimit-input-tokens-remaining": "5000"}
        await keeper.settle(
            "answered", {"input_tokens": 90, "output_tokens": 10}, False, "sonnet", headers
        )
        after = (await keeper.snapshot())["pools"]["sonnet"]["remaining"]
    # (It refills meanwhile, at this tier's tens of thousands of tokens a second.)
    assert after["input_tokens"] < before["input_tokens"] / 4, "the headers lowered it"
