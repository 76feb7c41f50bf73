"""Job ownership in the store: claims, fenced writes, one terminal event; on every backend."""

from __future__ import annotations

import asyncio
import pickle
import time

import pytest

from serve_app.store import Fence, JobFencedError, Store
from tests.serve_app.conftest import new_job


async def test_a_new_job_is_taken_once_and_then_only_its_owner_writes(store: Store) -> None:
    await store.create_job(new_job())
    assert await store.append_event("job-1", "accepted", {"n": 1}) == 1  # nobody owns it yet
    taken = await store.claim_job("job-1", "replica-a", stale_after_s=None)
    assert taken is not None
    assert (taken.owner, taken.epoch, taken.attempts, taken.status) == (
        "replica-a",
        1,
        1,
        "running",
    )
    assert await store.claim_job("job-1", "replica-b", stale_after_s=None) is None
    a = Fence("replica-a", 1)
    assert await store.append_event("job-1", "stage", {"n": 2}, a) == 2
    with pytest.raises(JobFencedError):
        await store.append_event("job-1", "stage", {"n": "unfenced"})
    with pytest.raises(JobFencedError):
        await store.append_event("job-1", "stage", {"n": "forged"}, Fence("replica-b", 1))
    assert [e.data["n"] for e in await store.read_events("job-1")] == [1, 2]


async def test_adoption_takes_only_a_silent_job_and_fences_the_old_owner_off(
    store: Store,
) -> None:
    await store.create_job(new_job())
    await store.claim_job("job-1", "replica-a", stale_after_s=None)
    a = Fence("replica-a", 1)
    # Its owner beat just now: not stale after 60 s.
    assert await store.renew_job("job-1", a) is True
    assert await store.claim_job("job-1", "replica-b", stale_after_s=60) is None
    await asyncio.sleep(0.02)
    adopted = await store.claim_job("job-1", "replica-b", stale_after_s=0.01)
    assert adopted is not None
    assert (adopted.owner, adopted.epoch, adopted.attempts) == ("replica-b", 2, 2)
    b = Fence("replica-b", 2)
    # The old owner finds out at its next write or heartbeat, and changes nothing.
    assert await store.renew_job("job-1", a) is False
    with pytest.raises(JobFencedError):
        await store.append_event("job-1", "stage", {"by": "a"}, a)
    with pytest.raises(JobFencedError):
        await store.end_job("job-1", a, "succeeded", "result", {"by": "a"}, 60)
    await store.append_event("job-1", "stage", {"by": "b"}, b)
    assert [e.data["by"] for e in await store.read_events("job-1")] == ["b"]


async def test_a_job_ends_exactly_once_with_its_status_and_event_together(store: Store) -> None:
    await store.create_job(new_job(dedup_key="d"))
    await store.claim_job("job-1", "replica-a", stale_after_s=None)
    a = Fence("replica-a", 1)
    event_id = await store.end_job("job-1", a, "succeeded", "result", {"page": "p"}, 60)
    assert event_id == 1
    job = await store.get_job("job-1")
    assert job is not None
    assert (job.status, job.result, job.error) == ("succeeded", {"page": "p"}, None)
    # A cancel (or a second finish) arriving after the result is refused, not appended.
    for fence in (a, None):
        with pytest.raises(JobFencedError):
            await store.end_job("job-1", fence, "cancelled", "error", {"type": "cancelled"}, 60)
        with pytest.raises(JobFencedError):
            await store.append_event("job-1", "stage", {}, fence)
    assert await store.claim_job("job-1", "replica-b", stale_after_s=0) is None
    assert [e.event for e in await store.read_events("job-1")] == ["result"]
    assert await store.stale_jobs(0) == []


async def test_of_many_concurrent_adopters_exactly_one_wins(store: Store) -> None:
    # Silent for 100 s; the first claim makes it beat, so the others find it taken.
    await store.create_job(new_job(updated_at=time.time() - 100))
    claims = await asyncio.gather(
        *(store.claim_job("job-1", f"replica-{n}", stale_after_s=50) for n in range(20))
    )
    winners = [c for c in claims if c is not None]
    assert len(winners) == 1
    assert winners[0].epoch == 1
    job = await store.get_job("job-1")
    assert job is not None
    assert job.owner == winners[0].owner


async def test_an_ended_job_expires_with_its_events(store: Store) -> None:
    await store.create_job(new_job())
    await store.append_event("job-1", "accepted", {})
    await store.end_job("job-1", None, "failed", "error", {"type": "internal_error"}, 0.2)
    assert [e.event for e in await store.read_events("job-1")] == ["accepted", "error"]
    await asyncio.sleep(0.4)
    assert await store.get_job("job-1") is None
    assert await store.read_events("job-1") == []
    with pytest.raises(KeyError):
        await store.end_job("job-1", None, "failed", "error", {}, 1)


async def test_end_job_refuses_a_status_that_does_not_end(store: Store) -> None:
    await store.create_job(new_job())
    with pytest.raises(ValueError, match="not a terminal status"):
        await store.end_job("job-1", None, "running", "result", {}, 60)


def test_the_fencing_error_crosses_a_process_boundary_whole() -> None:
    error = pickle.loads(pickle.dumps(JobFencedError("job-1", "replica-b|2")))
    assert (error.job_id, error.holder) == ("job-1", "replica-b|2")
    assert "replica-b|2" in str(error)
