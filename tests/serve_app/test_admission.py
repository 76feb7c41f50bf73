"""Admission across ingress replicas without Redis: the store actor makes its counts global.

Each ``Admission`` is what one ingress replica runs; both use the cluster's store actor (a
real Ray actor hosting the memory store, as ``open_store(None, scope="cluster")`` gives
every replica) and one real keeper, so dedup and the user's rate limit hold across them.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import ray

from serve_app.admission import Admission, Admitted, Attached
from serve_app.config import GatewayArgs
from serve_app.errors import QuotaExceededError, RateLimitedError
from serve_app.keeper_client import KeeperClient
from serve_app.store.actor import ActorStore
from serve_app.store.memory import MemoryStore
from serve_app.tenant_quota import TenantQuotas
from tests.serve_app.conftest import own_keeper

pytestmark = pytest.mark.ray

ARGS = GatewayArgs.model_validate(
    {
        "budget": {"tier": "tier4", "admission_max_wait_s": 600},
        "ingress": {"user_generations_per_minute": 2},
        "tenant_quotas": {
            "initech": {"generations_per_minute": 3},
            "umbrella": {"concurrent_jobs": 2},
        },
    }
)
Replicas = tuple[ActorStore, Admission, Admission]


@pytest.fixture
async def replicas(ray_serve: tuple[int, int]) -> AsyncIterator[Replicas]:
    """The store actor, and two replicas' admissions on it (each its own client) and one
    keeper."""
    actor = ray.remote(MemoryStore).options(max_concurrency=1000, num_cpus=0).remote()
    try:
        async with own_keeper(ARGS) as keeper:
            assert isinstance(keeper, KeeperClient)
            store = ActorStore(actor)
            yield store, Admission(ARGS, store, keeper), Admission(ARGS, ActorStore(actor), keeper)
    finally:
        ray.kill(actor)


def body(user: str, instruction: str) -> dict[str, object]:
    return {"instruction": instruction, "user_id": user, "agents": ["styles"]}


async def test_a_request_running_on_one_replica_is_attached_on_the_other(
    replicas: Replicas,
) -> None:
    store, first, second = replicas
    user = f"u-{uuid.uuid4().hex[:6]}"
    admitted = await first.decide("acme", "home", body(user, "Make the buttons rounder"))
    assert isinstance(admitted, Admitted)
    await store.create_job(admitted.job)  # what the runner does when it launches
    again = await second.decide("acme", "home", body(user, "Make the buttons rounder"))
    assert isinstance(again, Attached)
    assert again.job.job_id == admitted.job.job_id


async def test_a_users_rate_limit_counts_both_replicas(
    replicas: Replicas,
) -> None:
    _, first, second = replicas
    user = f"u-{uuid.uuid4().hex[:6]}"
    assert isinstance(await first.decide("acme", "home", body(user, "Rounder buttons")), Admitted)
    assert isinstance(await second.decide("acme", "home", body(user, "Bolder hero")), Admitted)
    with pytest.raises(RateLimitedError):
        await first.decide("acme", "home", body(user, "Darker footer"))
    with pytest.raises(RateLimitedError):
        await second.decide("acme", "home", body(user, "Wider pricing table"))


async def test_a_tenants_rate_quota_counts_every_user_on_both_replicas(
    replicas: Replicas,
) -> None:
    _, first, second = replicas
    users = [f"u-{uuid.uuid4().hex[:6]}" for _ in range(4)]
    for i, who in enumerate(users[:3]):
        replica = first if i % 2 else second
        assert isinstance(await replica.decide("initech", "home", body(who, f"R{i}")), Admitted)
    with pytest.raises(QuotaExceededError, match="per minute") as refused:
        await first.decide("initech", "home", body(users[3], "Darker footer"))
    assert (refused.value.retry_after_s or 0) >= 1
    assert isinstance(await first.decide("acme", "home", body(users[3], "Darker")), Admitted)


async def test_a_tenants_running_jobs_hold_its_slots_until_they_end(replicas: Replicas) -> None:
    store, first, second = replicas
    users = [f"u-{uuid.uuid4().hex[:6]}" for _ in range(3)]
    running = [
        await first.decide("umbrella", "home", body(u, f"R{i}")) for i, u in enumerate(users[:2])
    ]
    with pytest.raises(QuotaExceededError, match="at once"):
        await second.decide("umbrella", "home", body(users[2], "Bolder hero"))
    ended = running[0]
    assert isinstance(ended, Admitted)
    await TenantQuotas(ARGS, store).give_back(ended.job)  # what the runner does at its end
    assert isinstance(await second.decide("umbrella", "home", body(users[2], "Bolder")), Admitted)
