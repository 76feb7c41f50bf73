"""The gateway's shared state: every test runs on the memory store and on a real Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any

import pytest
import ray
import redis.asyncio as redis
from pydantic import ValidationError

from serve_app.errors import StoreUnavailableError
from serve_app.store import CounterBound, Store, open_store
from serve_app.store.actor import ActorStore
from serve_app.store.memory import MemoryStore
from serve_app.store.redis_backend import RedisStore
from tests.conftest import RedisServer, free_port
from tests.serve_app.conftest import new_job


async def test_open_store_picks_the_backend(redis_url: str) -> None:
    assert isinstance(open_store(None), MemoryStore)
    assert isinstance(open_store(""), MemoryStore)
    remote = open_store(redis_url)
    assert isinstance(remote, RedisStore)
    assert await remote.ping() is True
    await remote.close()


@pytest.mark.ray
async def test_the_cluster_scope_without_redis_is_the_shared_store_actor(
    ray_serve: tuple[int, int],
) -> None:
    one, other = open_store(None, scope="cluster"), open_store("", scope="cluster")
    assert isinstance(one, ActorStore)
    assert isinstance(other, ActorStore)
    await one.cache_set("test-scope", "k", {"seen": "by both"}, 5)
    assert await other.cache_get("test-scope", "k") == {"seen": "by both"}
    assert isinstance(open_store("redis://127.0.0.1:1/0", scope="cluster"), RedisStore)


@pytest.mark.ray
async def test_a_dead_store_actor_is_unavailable_not_a_crash(ray_serve: tuple[int, int]) -> None:
    actor = ray.remote(MemoryStore).options(num_cpus=0).remote()
    store = ActorStore(actor)
    await store.create_job(new_job())
    ray.kill(actor)
    # ray.kill returns before the actor is gone: a call may still be answered meanwhile.
    error: StoreUnavailableError | None = None
    for _ in range(100):
        try:
            await store.get_job("job-1")
        except StoreUnavailableError as exc:
            error = exc
            break
        await asyncio.sleep(0.05)
    assert error is not None, "a killed store actor kept answering"
    assert "store actor is unavailable" in str(error)
    assert await store.ping() is False


async def test_job_create_get_update(store: Store) -> None:
    job = new_job(plan=["layout", "copy"])
    await store.create_job(job)
    assert await store.get_job("job-1") == job
    updated = await store.update_job("job-1", status="running", owner="replica-a")
    assert (updated.status, updated.owner, updated.plan) == ("running", "replica-a", job.plan)
    assert updated.updated_at >= job.updated_at
    assert updated.created_at == job.created_at
    assert await store.get_job("job-1") == updated


async def test_missing_duplicate_and_invalid_jobs(store: Store) -> None:
    assert await store.get_job("nope") is None
    with pytest.raises(KeyError):
        await store.update_job("nope", status="running")
    await store.create_job(new_job())
    with pytest.raises(ValueError, match="already exists"):
        await store.create_job(new_job(status="running"))
    with pytest.raises(ValidationError):
        await store.update_job("job-1", status="exploded")
    with pytest.raises(ValidationError):
        await store.update_job("job-1", colour="red")
    stored = await store.get_job("job-1")
    assert stored is not None
    assert stored.status == "queued"


async def test_returned_values_are_copies(store: Store) -> None:
    await store.create_job(new_job())
    job = await store.get_job("job-1")
    assert job is not None
    job.request["instruction"] = "changed"
    again = await store.get_job("job-1")
    assert again is not None
    assert again.request["instruction"] == "add a pricing section"
    await store.cache_set("ns", "k", {"items": [1]}, 5)
    value = await store.cache_get("ns", "k")
    assert value is not None
    value["items"].append(2)
    assert await store.cache_get("ns", "k") == {"items": [1]}


async def test_concurrent_appends_number_events_one_to_fifty(store: Store) -> None:
    await store.create_job(new_job())
    ids = await asyncio.gather(*(store.append_event("job-1", "stage", {"n": n}) for n in range(50)))
    assert sorted(ids) == list(range(1, 51))
    events = await store.read_events("job-1")
    assert [e.id for e in events] == list(range(1, 51))
    # Each event keeps the data of the append that got its id.
    by_n = {n: event_id for n, event_id in enumerate(ids)}
    assert all(e.data == {"n": n} for n, event_id in by_n.items() for e in [events[event_id - 1]])


async def test_append_to_a_missing_job_fails(store: Store) -> None:
    with pytest.raises(KeyError):
        await store.append_event("nope", "stage", {})
    assert await store.read_events("nope") == []


async def test_read_events_after_an_id(store: Store) -> None:
    await store.create_job(new_job())
    await store.append_event("job-1", "accepted", {"job_id": "job-1"})
    await store.append_event("job-1", "stage", {"agent": "layout", "status": "started"})
    await store.append_event("job-1", "result", {"page": {"sections": []}})
    events = await store.read_events("job-1", after=1)
    assert [(e.id, e.event) for e in events] == [(2, "stage"), (3, "result")]
    assert events[0].data == {"agent": "layout", "status": "started"}
    started = time.monotonic()
    assert await store.read_events("job-1", after=3) == []
    assert time.monotonic() - started < 0.2


async def test_blocking_read_is_woken_by_an_append(store: Store) -> None:
    await store.create_job(new_job())
    await store.append_event("job-1", "accepted", {})
    reader = asyncio.create_task(store.read_events("job-1", after=1, block_s=3))
    await asyncio.sleep(0.1)
    assert not reader.done()
    started = time.monotonic()
    await store.append_event("job-1", "stage", {"agent": "copy"})
    events = await asyncio.wait_for(reader, 2)
    assert time.monotonic() - started < 1
    assert [(e.id, e.data) for e in events] == [(2, {"agent": "copy"})]


async def test_blocking_read_times_out_empty(store: Store) -> None:
    await store.create_job(new_job())
    started = time.monotonic()
    assert await store.read_events("job-1", block_s=0.3) == []
    assert 0.25 <= time.monotonic() - started < 1.5


async def test_cancelled_blocking_read_leaves_the_store_usable(store: Store) -> None:
    await store.create_job(new_job())
    reader = asyncio.create_task(store.read_events("job-1", block_s=3))
    await asyncio.sleep(0.1)
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    assert await store.append_event("job-1", "accepted", {}) == 1
    assert [e.id for e in await store.read_events("job-1", block_s=1)] == [1]


async def test_dedup_claim_attach_release(store: Store) -> None:
    assert await store.claim_dedup("acme:u1:home:abc", "job-1", 30) is None
    assert await store.claim_dedup("acme:u1:home:abc", "job-2", 30) == "job-1"
    assert await store.claim_dedup("acme:u2:home:abc", "job-3", 30) is None
    await store.release_dedup("acme:u1:home:abc", "job-2")
    assert await store.claim_dedup("acme:u1:home:abc", "job-2", 30) == "job-1"
    await store.release_dedup("acme:u1:home:abc", "job-1")
    assert await store.claim_dedup("acme:u1:home:abc", "job-2", 30) is None


async def test_dedup_claim_expires(store: Store) -> None:
    assert await store.claim_dedup("k", "job-1", 0.2) is None
    assert await store.claim_dedup("k", "job-2", 0.2) == "job-1"
    await asyncio.sleep(0.3)
    assert await store.claim_dedup("k", "job-2", 0.2) is None


async def test_rate_limit_burst_then_one_per_interval(store: Store) -> None:
    decisions = [await store.hit_rate_limit("acme:u1", 3, 0.6) for _ in range(3)]
    assert [d.allowed for d in decisions] == [True, True, True]
    assert [d.remaining for d in decisions] == [2, 1, 0]
    assert all(d.retry_after_s == 0 and d.limit == 3 for d in decisions)
    # Slack for float arithmetic on the clock: reset_s can land a hair above the interval.
    assert 0.1 < decisions[0].reset_s <= 0.2 + 1e-6
    assert 0.4 < decisions[2].reset_s <= 0.6 + 1e-6

    denied = await store.hit_rate_limit("acme:u1", 3, 0.6)
    assert (denied.allowed, denied.remaining) == (False, 0)
    assert 0 < denied.retry_after_s <= 0.2 + 1e-6
    # Once the next slot frees up, the rest of the window (2 slots) is still to recover.
    assert denied.reset_s - denied.retry_after_s == pytest.approx(0.4, abs=0.001)
    # A refused hit is not counted: waiting retry_after_s is enough.
    assert not (await store.hit_rate_limit("acme:u1", 3, 0.6)).allowed
    assert (await store.hit_rate_limit("acme:u2", 3, 0.6)).allowed

    await asyncio.sleep(denied.retry_after_s + 0.03)
    assert (await store.hit_rate_limit("acme:u1", 3, 0.6)).allowed
    assert not (await store.hit_rate_limit("acme:u1", 3, 0.6)).allowed


async def test_rate_limit_recovers_fully_after_the_window(store: Store) -> None:
    for _ in range(2):
        assert (await store.hit_rate_limit("k", 2, 0.5)).allowed
    denied = await store.hit_rate_limit("k", 2, 0.5)
    assert not denied.allowed
    await asyncio.sleep(denied.reset_s + 0.03)
    decisions = [await store.hit_rate_limit("k", 2, 0.5) for _ in range(3)]
    assert [d.allowed for d in decisions] == [True, True, False]


async def test_rate_limit_rejects_nonsense(store: Store) -> None:
    with pytest.raises(ValueError, match="limit"):
        await store.hit_rate_limit("k", 0, 60)
    with pytest.raises(ValueError, match="window_s"):
        await store.hit_rate_limit("k", 5, 0)


async def test_cache_get_set_and_expiry(store: Store) -> None:
    assert await store.cache_get("results", "a") is None
    await store.cache_set("results", "a", {"page": {"title": "Home"}}, 0.3)
    await store.cache_set("calls", "a", {}, 5)
    assert await store.cache_get("results", "a") == {"page": {"title": "Home"}}
    assert await store.cache_get("calls", "a") == {}
    await asyncio.sleep(0.4)
    assert await store.cache_get("results", "a") is None
    assert await store.cache_get("calls", "a") == {}


async def test_cache_get_or_lease_then_set_and_release(store: Store) -> None:
    # A miss takes the lease; a second caller finds it held and nothing cached.
    assert await store.cache_get_or_lease("calls", "k", "flight:k", "t1", 5) == (None, True)
    assert await store.cache_get_or_lease("calls", "k", "flight:k", "t2", 5) == (None, False)
    # Someone else's token lets go of nothing, but the value is cached.
    await store.cache_set_release("calls", "k", {"v": 0}, 5, "flight:k", "t2")
    assert not await store.acquire_lease("flight:k", "t3", 5)
    await store.cache_set_release("calls", "k", {"v": 1}, 5, "flight:k", "t1")
    # A hit answers the value and leaves the lease alone.
    assert await store.cache_get_or_lease("calls", "k", "flight:k", "t4", 5) == ({"v": 1}, False)
    assert await store.acquire_lease("flight:k", "t5", 5)
    assert await store.cache_get("calls", "k") == {"v": 1}


async def test_counters_add_read_and_expire(store: Store) -> None:
    assert await store.read_counters("usage:a") == {}
    assert await store.add_counters("usage:a", {"calls": 2, "cost_usd": 0.25}, 0.3)
    assert await store.add_counters("usage:a", {"calls": 1, "cost_usd": -0.05}, 0.3)
    await store.add_counters("usage:b", {"calls": 7}, 5)
    got = await store.read_counters("usage:a")
    assert got == {"calls": 3.0, "cost_usd": pytest.approx(0.2)}
    await asyncio.sleep(0.4)
    assert await store.read_counters("usage:a") == {}
    assert await store.read_counters("usage:b") == {"calls": 7.0}


async def test_a_bounded_add_is_all_or_nothing(store: Store) -> None:
    bound = CounterBound(("held", "spent"), 1.0)
    assert await store.add_counters("spend", {"spent": 0.5, "other": 9}, 5, bound)
    assert await store.add_counters("spend", {"held": 0.5}, 5, bound)  # exactly at the ceiling
    assert not await store.add_counters("spend", {"held": 0.01, "other": 1}, 5, bound)
    assert await store.read_counters("spend") == {"spent": 0.5, "held": 0.5, "other": 9.0}
    assert await store.add_counters("spend", {"held": -0.5}, 5)  # settling needs no bound
    assert await store.add_counters("spend", {"held": 0.3}, 5, bound)


async def test_concurrent_bounded_adds_never_pass_the_ceiling(store: Store) -> None:
    bound = CounterBound(("held",), 10.0)
    added = await asyncio.gather(
        *(store.add_counters("spend", {"held": 1.0}, 5, bound) for _ in range(40))
    )
    assert sum(added) == 10
    assert await store.read_counters("spend") == {"held": 10.0}


async def test_single_flight_computes_once(store: Store) -> None:
    calls = 0

    async def compute() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.2)
        return {"reply": "ok"}

    results = await asyncio.gather(
        *(store.single_flight("agent", "digest", compute, ttl_s=5, wait_s=3) for _ in range(10))
    )
    assert calls == 1
    assert all(value == {"reply": "ok"} for value, _ in results)
    assert sorted(here for _, here in results) == [False] * 9 + [True]
    assert await store.single_flight("agent", "digest", compute, 5, 3) == ({"reply": "ok"}, False)
    assert await store.cache_get("agent", "digest") == {"reply": "ok"}
    assert calls == 1


async def test_single_flight_can_keep_its_value_in_the_background(store: Store) -> None:
    kept: list[Coroutine[Any, Any, None]] = []

    async def compute() -> dict[str, Any]:
        await asyncio.sleep(0.1)
        return {"reply": "ok"}

    leader = await store.single_flight("agent", "bg", compute, 5, 3, background=kept.append)
    assert leader == ({"reply": "ok"}, True)
    waiter = asyncio.create_task(store.single_flight("agent", "bg", compute, 5, 3))
    await asyncio.sleep(0.2)
    assert not waiter.done(), "the lease is held until the value is kept"
    assert await store.cache_get("agent", "bg") is None
    await kept.pop()
    assert await waiter == ({"reply": "ok"}, False)


async def test_single_flight_failed_leader_hands_over(store: Store) -> None:
    calls = 0

    async def compute() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.15)
        if calls == 1:
            raise RuntimeError("upstream exploded")
        return {"reply": calls}

    leader = asyncio.create_task(store.single_flight("agent", "d", compute, 5, 3))
    await asyncio.sleep(0.05)
    waiters = [store.single_flight("agent", "d", compute, 5, 3) for _ in range(5)]
    results = await asyncio.gather(leader, *waiters, return_exceptions=True)
    assert isinstance(results[0], RuntimeError)
    assert calls == 2
    values = [r for r in results[1:] if isinstance(r, tuple)]
    assert len(values) == 5
    assert all(value == {"reply": 2} for value, _ in values)
    assert sorted(here for _, here in values) == [False] * 4 + [True]


async def test_single_flight_waiter_gives_up_after_wait_s(store: Store) -> None:
    calls = 0

    async def slow() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.8)
        return {"reply": "late"}

    leader = asyncio.create_task(store.single_flight("agent", "d", slow, 5, 3))
    await asyncio.sleep(0.05)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await store.single_flight("agent", "d", slow, 5, wait_s=0.2)
    assert 0.15 < time.monotonic() - started < 0.7
    assert await leader == ({"reply": "late"}, True)
    assert calls == 1


async def test_stale_jobs(store: Store) -> None:
    old = time.time() - 100
    await store.create_job(new_job("dead", status="running", updated_at=old, heartbeat_at=old))
    await store.create_job(new_job("fresh", status="queued"))
    await store.create_job(new_job("done", status="succeeded", updated_at=old))
    await store.create_job(new_job("beating", status="running", updated_at=old))
    await store.update_job("beating", heartbeat_at=time.time())
    await store.create_job(new_job("waiting", created_at=old, updated_at=old))
    assert [j.job_id for j in await store.stale_jobs(30)] == ["waiting", "dead"]
    await store.update_job("dead", status="failed", heartbeat_at=old)
    assert [j.job_id for j in await store.stale_jobs(30)] == ["waiting"]
    assert [j.job_id for j in await store.stale_jobs(1000)] == []


async def test_expire_job_drops_it_and_its_events(store: Store) -> None:
    await store.create_job(new_job())
    await store.append_event("job-1", "accepted", {})
    await store.expire_job("job-1", 0.3)
    # Later writes keep the expiry: they do not make the job live forever.
    await store.append_event("job-1", "late", {})
    await store.update_job("job-1", owner="replica-b")
    assert len(await store.read_events("job-1")) == 2
    await store.expire_job("nope", 0.3)
    await asyncio.sleep(0.4)
    assert await store.get_job("job-1") is None
    assert await store.read_events("job-1") == []
    with pytest.raises(KeyError):
        await store.append_event("job-1", "later", {})


async def test_memory_store_never_fails_ping() -> None:
    store = MemoryStore()
    assert await store.ping() is True
    await store.close()


@pytest.mark.redis
async def test_two_replicas_share_state(redis_url: str) -> None:
    a, b = RedisStore(redis_url), RedisStore(redis_url)
    try:
        await a.create_job(new_job())
        assert await b.get_job("job-1") == await a.get_job("job-1")
        reader = asyncio.create_task(b.read_events("job-1", after=0, block_s=3))
        await asyncio.sleep(0.05)
        ids = await asyncio.gather(*(s.append_event("job-1", "stage", {}) for s in [a, b] * 25))
        assert sorted(ids) == list(range(1, 51))
        assert (await reader)[0].id == 1
        assert [e.id for e in await b.read_events("job-1")] == list(range(1, 51))
        assert await a.claim_dedup("k", "job-1", 30) is None
        assert await b.claim_dedup("k", "job-2", 30) == "job-1"
        assert [(await s.hit_rate_limit("u", 2, 60)).allowed for s in [a, b, a]] == [
            True,
            True,
            False,
        ]
        updates = await asyncio.gather(
            a.update_job("job-1", owner="a"), b.update_job("job-1", heartbeat_at=5.0)
        )
        assert len(updates) == 2
        merged = await a.get_job("job-1")
        assert merged is not None
        assert (merged.owner, merged.heartbeat_at) == ("a", 5.0)
    finally:
        await a.close()
        await b.close()


@pytest.mark.redis
async def test_many_blocked_readers_at_once(redis_url: str) -> None:
    store = RedisStore(redis_url)
    try:
        await store.create_job(new_job())
        readers = [asyncio.create_task(store.read_events("job-1", block_s=2)) for _ in range(150)]
        await asyncio.sleep(0.2)
        assert await store.append_event("job-1", "accepted", {}) == 1
        results = await asyncio.gather(*readers)
        assert all([e.id for e in events] == [1] for events in results)
    finally:
        await store.close()


@pytest.mark.redis
async def test_keys_live_under_the_prefix_and_the_index_is_pruned(redis_url: str) -> None:
    store = RedisStore(redis_url, prefix="test:")
    raw = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        await store.create_job(new_job(status="running"))
        await store.append_event("job-1", "accepted", {})
        await store.claim_dedup("d", "job-1", 30)
        await store.hit_rate_limit("r", 5, 60)
        await store.cache_set("ns", "c", {}, 30)
        keys = await raw.keys("*")
        # job, fence, events, jobs:live, dedup, rate, cache
        assert len(keys) == 7
        assert all(str(key).startswith("test:") for key in keys)
        assert await raw.smembers("test:jobs:live") == {"job-1"}
        await store.expire_job("job-1", 0.1)
        await asyncio.sleep(0.2)
        assert await store.stale_jobs(0) == []
        assert await raw.smembers("test:jobs:live") == set()
    finally:
        await raw.aclose()
        await store.close()


@pytest.mark.redis
async def test_a_dead_leaders_lock_is_taken_over(redis_url: str) -> None:
    store = RedisStore(redis_url, prefix="test:")
    raw = redis.Redis.from_url(redis_url, decode_responses=True)

    async def compute() -> dict[str, Any]:
        return {"reply": "mine"}

    try:
        # What a replica that died mid-call leaves behind: its lock, and no value.
        await raw.set("test:flight:agent:d", "dead-replica", px=300)
        started = time.monotonic()
        assert await store.single_flight("agent", "d", compute, 5, 2) == ({"reply": "mine"}, True)
        assert 0.25 < time.monotonic() - started < 1
    finally:
        await raw.aclose()
        await store.close()


@pytest.mark.redis
async def test_redis_down_then_back(redis_server: RedisServer, redis_url: str) -> None:
    store = RedisStore(redis_url)
    try:
        await store.create_job(new_job())
        redis_server.stop()
        started = time.monotonic()
        with pytest.raises(StoreUnavailableError, match=r"Redis at redis://127\.0\.0\.1"):
            await store.get_job("job-1")
        assert time.monotonic() - started < 3
        with pytest.raises(StoreUnavailableError):
            await store.append_event("job-1", "stage", {})
        with pytest.raises(StoreUnavailableError):
            await store.read_events("job-1", block_s=1)
        with pytest.raises(StoreUnavailableError):
            await store.hit_rate_limit("u", 5, 60)
        assert await store.ping() is False
        redis_server.start()
        assert await store.ping() is True
        # Nothing was persisted: the restarted server is empty, and fully usable.
        assert await store.get_job("job-1") is None
        await store.create_job(new_job())
        assert await store.append_event("job-1", "accepted", {}) == 1
    finally:
        await store.close()


@pytest.mark.redis
async def test_unavailable_message_keeps_the_password_out() -> None:
    port = free_port()
    store = RedisStore(f"redis://admin:s3cret-pw@127.0.0.1:{port}/2")
    try:
        with pytest.raises(StoreUnavailableError) as caught:
            await store.cache_get("ns", "k")
        message = str(caught.value)
        assert "s3cret-pw" not in message
        assert "admin" not in message
        assert f"redis://127.0.0.1:{port}/2 is unavailable" in message
    finally:
        await store.close()
