"""Job ownership end to end, outside Serve: JobRunners on one store, real agent replicas.

Each runner is what one ingress replica runs; its agent "handles" call real
``AgentReplica``s in this process (Serve's handle API over a local object), which call
claude_sim through the real SDK under a real keeper actor. The store is the memory store,
shared, as replicas share Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from agents.planner import ALL_AGENTS, Plan
from agents.samples import landing_page
from claude_sim import SimConfig, create_app
from serve_app.agent_pool import AgentReplica
from serve_app.config import GatewayArgs
from serve_app.jobs import STALE_AFTER_S, JobRunner
from serve_app.keeper_client import KeeperClient
from serve_app.store import Fence, JobFencedError, JobRecord, Store
from serve_app.store.memory import MemoryStore
from tests.claude_sim.conftest import sdk
from tests.serve_app.conftest import own_keeper

pytestmark = pytest.mark.ray

ARGS = GatewayArgs.model_validate({"ingress": {"job_attempts": 2}})
PLAN = Plan(needs=("styles",), confidence=1.0)


class _LocalStream:
    """A streaming call's results, as Serve's handle gives them (iterate, cancel)."""

    def __init__(self, results: AsyncIterator[Any]) -> None:
        self._results = results
        self._closing: set[asyncio.Future[None]] = set()

    def __aiter__(self) -> _LocalStream:
        return self

    async def __anext__(self) -> Any:
        return await anext(self._results)

    def cancel(self) -> None:
        with contextlib.suppress(RuntimeError):  # still running: its task is cancelled
            closing = asyncio.ensure_future(self._results.aclose())  # type: ignore[attr-defined]
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)


class LocalHandle:
    """Serve's ``handle.options(stream=True).run_beating.remote(...)`` over a local replica."""

    def __init__(self, replica: AgentReplica) -> None:
        self._replica = replica
        self.run_beating = self

    def options(self, **_: Any) -> LocalHandle:
        return self

    def remote(self, task: Any, meta: Any) -> _LocalStream:
        return _LocalStream(self._replica.run_beating(task, meta))


@pytest.fixture
async def keeper(ray_serve: tuple[int, int]) -> AsyncIterator[KeeperClient]:
    async with own_keeper(ARGS) as keeper:
        yield keeper


MakeRunner = Callable[..., JobRunner]


@pytest.fixture
def runners(keeper: KeeperClient) -> tuple[Store, MakeRunner]:
    """The shared store, and a maker of runners (ingress replicas) on it."""
    store = MemoryStore()

    def make(speed: float = 200.0) -> JobRunner:
        client = sdk(create_app(SimConfig.model_validate({"speed": speed})))
        args = ARGS.model_dump_json()
        handles = {
            name: LocalHandle(AgentReplica(name, args, client=client, store=store, keeper=keeper))
            for name in ALL_AGENTS
        }
        return JobRunner(ARGS, store, keeper, handles, None)

    return store, make


def job_record(**fields: Any) -> JobRecord:
    page_id = f"page-{uuid.uuid4().hex[:6]}"
    now = time.time()
    body = {
        "page_id": page_id,
        "instruction": f"Make the buttons rounder ({uuid.uuid4().hex[:6]})",
        "page": landing_page(page_id).model_dump(mode="json"),
        "agents": ["styles"],
    }
    return JobRecord.model_validate(
        {
            "job_id": uuid.uuid4().hex,
            "tenant": "acme",
            "user_id": "u1",
            "page_id": page_id,
            "request": body,
            "plan": list(PLAN.agents),
            "created_at": now,
            "updated_at": now,
            **fields,
        }
    )


async def ended(store: Store, job_id: str, within_s: float = 60) -> JobRecord:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        job = await store.get_job(job_id)
        if job is not None and job.status in ("succeeded", "failed", "cancelled"):
            return job
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} did not end within {within_s} s")


async def terminal_events(store: Store, job_id: str) -> list[str]:
    return [e.event for e in await store.read_events(job_id) if e.event in ("result", "error")]


async def orphan(store: Store, **fields: Any) -> JobRecord:
    """A job its owner ('ghost') took and then went silent on, as a dead replica leaves it."""
    job = job_record(**fields)
    await store.create_job(job)
    await store.append_event(job.job_id, "accepted", {})
    await store.claim_job(job.job_id, "ghost", stale_after_s=None)
    old = time.time() - STALE_AFTER_S - 1
    return await store.update_job(job.job_id, heartbeat_at=old)


async def test_a_job_launched_here_ends_once_with_its_result(
    runners: tuple[Store, MakeRunner],
) -> None:
    store, make = runners
    job = job_record()
    runner = make()
    await runner.launch(job, PLAN, estimate_s=5.0)
    done = await ended(store, job.job_id)
    assert (done.status, done.owner, done.epoch, done.attempts) == (
        "succeeded",
        runner.replica_id,
        1,
        1,
    )
    assert await terminal_events(store, job.job_id) == ["result"]


async def test_an_orphaned_job_is_adopted_once_and_its_old_owner_is_fenced_off(
    runners: tuple[Store, MakeRunner],
) -> None:
    store, make = runners
    job = await orphan(store)
    first, second = make(), make()
    taken = await asyncio.gather(first.adopt_stale(), second.adopt_stale())
    assert sorted(taken) == [0, 1], "exactly one sweeper took it"
    done = await ended(store, job.job_id)
    assert (done.status, done.epoch, done.attempts) == ("succeeded", 2, 2)
    assert done.owner in (first.replica_id, second.replica_id)
    assert await terminal_events(store, job.job_id) == ["result"]
    # The ghost comes back to life: everything it tries is refused.
    ghost = Fence("ghost", 1)
    assert await store.renew_job(job.job_id, ghost) is False
    with pytest.raises(JobFencedError):
        await store.end_job(job.job_id, ghost, "succeeded", "result", {}, 60)
    assert await terminal_events(store, job.job_id) == ["result"]


async def test_a_job_out_of_attempts_ends_with_a_clear_error_instead_of_running_again(
    runners: tuple[Store, MakeRunner],
) -> None:
    store, make = runners
    job = await orphan(store, attempts=ARGS.ingress.job_attempts)
    assert await make().adopt_stale() == 0, "not run again"
    done = await ended(store, job.job_id)
    assert done.status == "failed"
    assert done.error is not None
    assert "lost" in done.error["message"]
    assert await terminal_events(store, job.job_id) == ["error"]


async def test_an_owner_that_lost_its_job_stops_and_writes_nothing_more(
    runners: tuple[Store, MakeRunner],
) -> None:
    store, make = runners
    slow, other = make(speed=2.0), make()
    job = job_record()
    await slow.launch(job, PLAN, estimate_s=5.0)
    owner_task = slow.tasks[job.job_id]
    await asyncio.sleep(0.5)
    # The slow owner's heartbeat is taken for silence (a long GC pause, a partition):
    await store.update_job(job.job_id, heartbeat_at=time.time() - STALE_AFTER_S - 1)
    assert await other.adopt_stale() == 1
    done = await ended(store, job.job_id)
    assert done.owner == other.replica_id
    # The slow owner finds out at its next heartbeat (or write) and stops without a word.
    await asyncio.wait_for(owner_task, 30)
    assert job.job_id not in slow.tasks
    assert await terminal_events(store, job.job_id) == ["result"]
    events = await store.read_events(job.job_id)
    assert any(e.data.get("error") == "replica lost" for e in events), "the adopter said so"
