"""The in-process backend: for one replica without Redis, for tests, and inside the store actor.

Values are kept as JSON text, so callers never share objects with the store (as with Redis).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from serve_app.store.base import (
    CounterBound,
    Fence,
    JobFencedError,
    JobRecord,
    JobStatus,
    Store,
    StoredEvent,
    cache_key,
    claimable,
    claimed,
    ended,
    holder_of,
    is_stale,
    token,
    updated_job,
)

V = TypeVar("V")


class _Expiring(Generic[V]):
    """A dict whose entries may expire; dead entries are swept lazily, in amortised O(1)."""

    def __init__(self) -> None:
        self._items: dict[str, tuple[V, float | None]] = {}
        self._sweep_at = 1024

    def get(self, key: str) -> V | None:
        item = self._items.get(key)
        if item is None:
            return None
        if item[1] is not None and item[1] <= time.monotonic():
            del self._items[key]
            return None
        return item[0]

    def expires_in(self, key: str) -> float | None:
        """Seconds until `key` runs out (None: it never does, or is missing)."""
        item = self._items.get(key)
        return None if item is None or item[1] is None else item[1] - time.monotonic()

    def set(self, key: str, value: V, ttl_s: float | None = None) -> None:
        self._items[key] = (value, None if ttl_s is None else time.monotonic() + ttl_s)
        if len(self._items) >= self._sweep_at:
            now = time.monotonic()
            self._items = {k: v for k, v in self._items.items() if v[1] is None or v[1] > now}
            self._sweep_at = max(1024, 2 * len(self._items))

    def expire(self, key: str, ttl_s: float) -> None:
        value = self.get(key)
        if value is not None:
            self.set(key, value, ttl_s)

    def pop(self, key: str) -> None:
        self._items.pop(key, None)

    def values(self) -> list[V]:
        return [value for key in list(self._items) if (value := self.get(key)) is not None]


@dataclass
class _MemoryJob:
    record: str
    events: list[tuple[str, str]] = field(default_factory=list)  # (event, data); id = index + 1


class MemoryStore(Store):
    """Everything in this process's memory."""

    def __init__(self) -> None:
        self._jobs: _Expiring[_MemoryJob] = _Expiring()
        self._dedup: _Expiring[str] = _Expiring()
        self._next_turn: _Expiring[float] = _Expiring()
        self._cache: _Expiring[str] = _Expiring()
        self._leases: _Expiring[str] = _Expiring()
        self._counters: _Expiring[dict[str, float]] = _Expiring()
        self._let_go: dict[str, asyncio.Event] = {}
        self._appended = asyncio.Condition()

    async def create_job(self, job: JobRecord) -> None:
        if self._jobs.get(job.job_id) is not None:
            raise ValueError(f"job {job.job_id} already exists")
        self._jobs.set(job.job_id, _MemoryJob(job.model_dump_json()))

    async def get_job(self, job_id: str) -> JobRecord | None:
        state = self._jobs.get(job_id)
        return None if state is None else JobRecord.model_validate_json(state.record)

    async def update_job(self, job_id: str, **fields: Any) -> JobRecord:
        state = self._jobs.get(job_id)
        if state is None:
            raise KeyError(job_id)
        job = updated_job(JobRecord.model_validate_json(state.record), fields)
        state.record = job.model_dump_json()
        return job

    async def claim_job(
        self, job_id: str, owner: str, *, stale_after_s: float | None
    ) -> JobRecord | None:
        state = self._jobs.get(job_id)
        if state is None:
            return None
        now = time.time()
        job = JobRecord.model_validate_json(state.record)
        if not claimable(job, stale_after_s, now):
            return None
        job = claimed(job, owner, now)
        state.record = job.model_dump_json()
        return job

    async def renew_job(self, job_id: str, fence: Fence) -> bool:
        state = self._jobs.get(job_id)
        if state is None:
            raise KeyError(job_id)
        job = JobRecord.model_validate_json(state.record)
        if holder_of(job) != token(fence):
            return False
        state.record = updated_job(job, {"heartbeat_at": time.time()}).model_dump_json()
        return True

    def _held(self, job_id: str, fence: Fence | None) -> tuple[_MemoryJob, JobRecord]:
        state = self._jobs.get(job_id)
        if state is None:
            raise KeyError(job_id)
        job = JobRecord.model_validate_json(state.record)
        if holder_of(job) != token(fence):
            raise JobFencedError(job_id, holder_of(job))
        return state, job

    async def append_event(
        self, job_id: str, event: str, data: dict[str, Any], fence: Fence | None = None
    ) -> int:
        state, _ = self._held(job_id, fence)
        return await self._append(state, event, data)

    async def _append(self, state: _MemoryJob, event: str, data: dict[str, Any]) -> int:
        state.events.append((event, json.dumps(data)))
        async with self._appended:
            self._appended.notify_all()
        return len(state.events)

    async def end_job(
        self,
        job_id: str,
        fence: Fence | None,
        status: JobStatus,
        event: str,
        data: dict[str, Any],
        ttl_s: float,
    ) -> int:
        state, job = self._held(job_id, fence)
        # Status first: nothing can slip in between, there is no await before it.
        state.record = ended(job, status, event, data).model_dump_json()
        event_id = await self._append(state, event, data)
        self._jobs.expire(job_id, ttl_s)
        return event_id

    def _events_after(self, job_id: str, after: int) -> list[StoredEvent]:
        state = self._jobs.get(job_id)
        if state is None:
            return []
        start = max(after, 0)
        return [
            StoredEvent(event_id, event, json.loads(data))
            for event_id, (event, data) in enumerate(state.events[start:], start=start + 1)
        ]

    async def read_events(
        self, job_id: str, after: int = 0, *, block_s: float = 0.0
    ) -> list[StoredEvent]:
        events = self._events_after(job_id, after)
        if events or block_s <= 0:
            return events
        async with self._appended:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(block_s):
                    return await self._appended.wait_for(lambda: self._events_after(job_id, after))
        return self._events_after(job_id, after)

    async def claim_dedup(self, key: str, job_id: str, ttl_s: float) -> str | None:
        bound = self._dedup.get(key)
        if bound is None:
            self._dedup.set(key, job_id, ttl_s)
        return bound

    async def release_dedup(self, key: str, job_id: str) -> None:
        if self._dedup.get(key) == job_id:
            self._dedup.pop(key)

    async def take_turn(self, key: str, limit: int, window_s: float) -> tuple[bool, float]:
        now = time.monotonic()
        stored = self._next_turn.get(key)
        turn = now if stored is None else max(stored, now)
        after = turn + window_s / limit
        if after - window_s > now:
            return False, turn - now
        self._next_turn.set(key, after, after - now)
        return True, after - now

    async def cache_get(self, namespace: str, key: str) -> dict[str, Any] | None:
        raw = self._cache.get(cache_key(namespace, key))
        if raw is None:
            return None
        value: dict[str, Any] = json.loads(raw)
        return value

    async def cache_set(
        self, namespace: str, key: str, value: dict[str, Any], ttl_s: float
    ) -> None:
        self._cache.set(cache_key(namespace, key), json.dumps(value), ttl_s)

    async def add_counters(
        self,
        key: str,
        deltas: dict[str, float],
        ttl_s: float,
        bound: CounterBound | None = None,
    ) -> bool:
        fields = dict(self._counters.get(key) or {})
        for name, delta in deltas.items():
            fields[name] = fields.get(name, 0.0) + float(delta)
        if (
            bound is not None
            and sum(fields.get(f, 0.0) for f in bound.fields) > bound.ceiling + 1e-9
        ):
            return False
        self._counters.set(key, fields, ttl_s)
        return True

    async def read_counters(self, key: str) -> dict[str, float]:
        return dict(self._counters.get(key) or {})

    async def acquire_lease(self, name: str, token: str, ttl_s: float) -> bool:
        if self._leases.get(name) is not None:
            return False
        self._leases.set(name, token, ttl_s)
        return True

    async def renew_lease(self, name: str, token: str, ttl_s: float) -> bool:
        if self._leases.get(name) != token:
            return False
        self._leases.set(name, token, ttl_s)
        return True

    async def release_lease(self, name: str, token: str) -> None:
        if self._leases.get(name) == token:
            self._leases.pop(name)
            let_go = self._let_go.pop(name, None)
            if let_go is not None:
                let_go.set()

    async def cache_get_or_lease(
        self, namespace: str, key: str, name: str, token: str, ttl_s: float
    ) -> tuple[dict[str, Any] | None, bool]:
        value = await self.cache_get(namespace, key)
        if value is not None:
            return value, False
        return None, await self.acquire_lease(name, token, ttl_s)

    async def cache_set_release(
        self, namespace: str, key: str, value: dict[str, Any], ttl_s: float, name: str, token: str
    ) -> None:
        # No await between the two: nothing else runs in between.
        self._cache.set(cache_key(namespace, key), json.dumps(value), ttl_s)
        await self.release_lease(name, token)

    async def wait_lease(self, name: str, timeout_s: float) -> None:
        if self._leases.get(name) is None:
            return
        # A lease that runs out wakes nobody: wait no longer than it has left.
        left = self._leases.expires_in(name) or timeout_s
        let_go = self._let_go.setdefault(name, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(let_go.wait(), timeout=max(0.0, min(timeout_s, left)))

    async def stale_jobs(self, older_than_s: float) -> list[JobRecord]:
        cutoff = time.time() - older_than_s
        jobs = [JobRecord.model_validate_json(state.record) for state in self._jobs.values()]
        return sorted((job for job in jobs if is_stale(job, cutoff)), key=lambda j: j.created_at)

    async def expire_job(self, job_id: str, ttl_s: float) -> None:
        self._jobs.expire(job_id, ttl_s)

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        """Nothing to release: everything lives in this process."""
