"""The gateway's shared state: jobs, their event logs, dedup, rate limits, caches, single-flight.

Every ingress replica talks to one `Store`. `MemoryStore` keeps it all in this process (no
`REDIS_URL`: one replica, lost on restart); `RedisStore` in `serve_app.redis_store` keeps it
in Redis, so that replicas share it and it survives their restarts. Both behave the same (the
tests run once against each), down to values coming back as fresh JSON copies.

Tenant isolation is the caller's job: the store never knows who asks, so every dedup, rate
and cache key it is handed must already include the tenant, and a job read by id must be
checked against its `tenant` before it is shown. Values are plain JSON and hold no secrets.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
TERMINAL: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})

V = TypeVar("V")


class StoreUnavailableError(Exception):
    """The backing store cannot be reached or refused the command: the ingress answers 503."""


class JobRecord(BaseModel):
    """One generation job, as every replica sees it."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    job_id: str
    """Unique opaque id; also names the job's event log."""
    tenant: str
    """Tenant owning the job: any other tenant must get 404 for it."""
    user_id: str
    """End user inside the tenant (the API key when the request named none)."""
    page_id: str
    """Page being generated."""
    status: JobStatus = "queued"
    """Where the job stands; the statuses in `TERMINAL` mean it has ended."""
    request: dict[str, Any]
    """The generate body as accepted, so that another replica can run the job again."""
    plan: list[str] = []
    """Agents that will run."""
    skipped: list[str] = []
    """Agents the planner left out."""
    dedup_key: str | None = None
    """Key the job holds through `Store.claim_dedup`, to release when it ends."""
    created_at: float
    """Unix time the job was accepted."""
    updated_at: float
    """Unix time of the last `Store.update_job`."""
    result: dict[str, Any] | None = None
    """Data of the job's `result` event, once it succeeded."""
    error: dict[str, Any] | None = None
    """Data of the job's `error` event, once it failed or was cancelled."""
    owner: str | None = None
    """Id of the replica running the job."""
    heartbeat_at: float | None = None
    """Unix time the owner last said it is alive; `Store.stale_jobs` reads it."""


@dataclass(frozen=True)
class StoredEvent:
    """One SSE event of a job: `id` counts 1, 2, 3... within the job."""

    id: int
    event: str
    data: dict[str, Any]


@dataclass(frozen=True)
class RateDecision:
    """The answer to one rate-limit hit; the times are seconds from now.

    `retry_after_s` is when the next hit would pass (0 when this one did), `reset_s` when the
    whole burst of `limit` is available again, `remaining` how many hits would pass right now.
    """

    allowed: bool
    limit: int
    remaining: int
    reset_s: float
    retry_after_s: float


def updated_job(job: JobRecord, fields: dict[str, Any]) -> JobRecord:
    """`job` with `fields` changed and `updated_at` now, validated as strictly as a new record."""
    return JobRecord.model_validate({**job.model_dump(), **fields, "updated_at": time.time()})


def is_stale(job: JobRecord, cutoff: float) -> bool:
    """Whether `job` should be running but nobody has vouched for it since `cutoff`."""
    seen = job.updated_at if job.heartbeat_at is None else job.heartbeat_at
    return job.status not in TERMINAL and seen < cutoff


def cache_key(namespace: str, key: str) -> str:
    """The one name both backends give a cached value (and its single-flight)."""
    return f"{namespace}:{key}"


class Store(ABC):
    """The gateway's shared state; every method is safe under concurrent callers."""

    @abstractmethod
    async def create_job(self, job: JobRecord) -> None:
        """Store a new job; `ValueError` if its id is taken."""

    @abstractmethod
    async def get_job(self, job_id: str) -> JobRecord | None:
        """The job, or None if it never existed or has expired."""

    @abstractmethod
    async def update_job(self, job_id: str, **fields: Any) -> JobRecord:
        """Change some fields and `updated_at`; `KeyError` if the job is missing."""

    @abstractmethod
    async def append_event(self, job_id: str, event: str, data: dict[str, Any]) -> int:
        """Add an event to the job's log and return its id (1, 2, 3...); `KeyError` if missing."""

    @abstractmethod
    async def read_events(
        self, job_id: str, after: int = 0, *, block_s: float = 0.0
    ) -> list[StoredEvent]:
        """The events with id > `after`, in order; if none yet, wait up to `block_s` for some."""

    @abstractmethod
    async def claim_dedup(self, key: str, job_id: str, ttl_s: float) -> str | None:
        """Bind a free `key` to `job_id` for `ttl_s` and return None, else the job bound to it."""

    @abstractmethod
    async def release_dedup(self, key: str, job_id: str) -> None:
        """Free `key` if it is still bound to `job_id` (a later job's claim stays)."""

    @abstractmethod
    async def hit_rate_limit(self, key: str, limit: int, window_s: float) -> RateDecision:
        """Count one hit on `key` if allowed: a burst of `limit`, then one per window/limit."""

    @abstractmethod
    async def cache_get(self, namespace: str, key: str) -> dict[str, Any] | None:
        """The cached value, or None if missing or expired."""

    @abstractmethod
    async def cache_set(
        self, namespace: str, key: str, value: dict[str, Any], ttl_s: float
    ) -> None:
        """Cache `value` for `ttl_s` seconds."""

    @abstractmethod
    async def single_flight(
        self,
        namespace: str,
        key: str,
        compute: Callable[[], Awaitable[dict[str, Any]]],
        ttl_s: float,
        wait_s: float,
    ) -> tuple[dict[str, Any], bool]:
        """The cached value, else one caller computes and caches it while the others wait.

        Returns (value, computed_here). When the computing caller fails (an exception, or on
        Redis its replica dying), one waiter takes over; a waiter that has seen no value after
        `wait_s` raises `TimeoutError` rather than calling upstream a second time.
        """

    @abstractmethod
    async def stale_jobs(self, older_than_s: float) -> list[JobRecord]:
        """Queued or running jobs nobody has vouched for in `older_than_s`: their replica died."""

    @abstractmethod
    async def expire_job(self, job_id: str, ttl_s: float) -> None:
        """Drop the job and its events `ttl_s` from now (a missing job is ignored)."""

    @abstractmethod
    async def ping(self) -> bool:
        """Whether the backing store answers."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections; the store is not used afterwards."""


FLIGHT_LEASE_S = 10.0
"""How long a single-flight leader is trusted without renewing: a dead one's call is then
taken over by a waiter. Live leaders renew every third of it."""


class StoreBackend(Store):
    """A `Store` whose rate limit and single-flight are built on a few atomic primitives.

    Both backends inherit it, so that the logic, and hence the behaviour, is the same.
    """

    async def hit_rate_limit(self, key: str, limit: int, window_s: float) -> RateDecision:
        """Count the hit if allowed, by GCRA.

        GCRA keeps one number per key (when its budget is next spent) rather than a log of
        hits, so that a check is one atomic step and the state is a few bytes.
        """
        if limit < 1 or window_s <= 0:
            raise ValueError("a rate limit needs limit >= 1 and window_s > 0")
        interval_s = window_s / limit
        allowed, backlog_s = await self._take_turn(key, limit, window_s)
        if allowed:
            # The epsilon absorbs float error so that a whole number of free slots stays whole.
            remaining = math.floor((window_s - backlog_s) / interval_s + 1e-9)
            return RateDecision(True, limit, remaining, backlog_s, 0.0)
        retry_after_s = max(0.0, backlog_s + interval_s - window_s)
        return RateDecision(False, limit, 0, backlog_s, retry_after_s)

    @abstractmethod
    async def _take_turn(self, key: str, limit: int, window_s: float) -> tuple[bool, float]:
        """One atomic GCRA step: (allowed, seconds until the key's budget is whole again)."""

    async def single_flight(
        self,
        namespace: str,
        key: str,
        compute: Callable[[], Awaitable[dict[str, Any]]],
        ttl_s: float,
        wait_s: float,
    ) -> tuple[dict[str, Any], bool]:
        deadline = time.monotonic() + wait_s
        while True:
            value = await self.cache_get(namespace, key)
            if value is not None:
                return value, False
            lead = await self._lead_flight(namespace, key)
            if lead is not None:
                async with lead:
                    # The previous leader may have cached the value just before letting go.
                    value = await self.cache_get(namespace, key)
                    if value is not None:
                        return value, False
                    value = await compute()
                    await self.cache_set(namespace, key, value, ttl_s)
                    return value, True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no value for {namespace!r} from another caller in {wait_s} s")
            await self._wait_flight(namespace, key, remaining)

    @abstractmethod
    async def _lead_flight(
        self, namespace: str, key: str
    ) -> AbstractAsyncContextManager[None] | None:
        """Become the one computing this value (held until the context exits), or None."""

    @abstractmethod
    async def _wait_flight(self, namespace: str, key: str, timeout_s: float) -> None:
        """Return when the current leader may have finished, or after `timeout_s`."""


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
    # JSON text, so that callers never share objects with the store, as with Redis.
    record: str
    events: list[tuple[str, str]] = field(default_factory=list)  # (event, data); id = index + 1


class MemoryStore(StoreBackend):
    """Everything in this process: for a single replica without Redis, and for tests."""

    def __init__(self) -> None:
        self._jobs: _Expiring[_MemoryJob] = _Expiring()
        self._dedup: _Expiring[str] = _Expiring()
        self._next_turn: _Expiring[float] = _Expiring()
        self._cache: _Expiring[str] = _Expiring()
        self._flights: dict[str, asyncio.Future[None]] = {}
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

    async def append_event(self, job_id: str, event: str, data: dict[str, Any]) -> int:
        state = self._jobs.get(job_id)
        if state is None:
            raise KeyError(job_id)
        state.events.append((event, json.dumps(data)))
        async with self._appended:
            self._appended.notify_all()
        return len(state.events)

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

    async def _take_turn(self, key: str, limit: int, window_s: float) -> tuple[bool, float]:
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

    async def _lead_flight(
        self, namespace: str, key: str
    ) -> AbstractAsyncContextManager[None] | None:
        name = cache_key(namespace, key)
        if name in self._flights:
            return None
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._flights[name] = done
        return self._flight(name, done)

    @contextlib.asynccontextmanager
    async def _flight(self, name: str, done: asyncio.Future[None]) -> AsyncIterator[None]:
        try:
            yield
        finally:
            del self._flights[name]
            done.set_result(None)

    async def _wait_flight(self, namespace: str, key: str, timeout_s: float) -> None:
        done = self._flights.get(cache_key(namespace, key))
        if done is not None:
            await asyncio.wait({done}, timeout=timeout_s)

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


def open_store(redis_url: str | None) -> Store:
    """The Redis store when a URL is configured, else the in-process one."""
    if not redis_url:
        return MemoryStore()
    # Imported here: redis_store builds on this module, and the memory store needs no redis.
    from serve_app.redis_store import RedisStore

    return RedisStore(redis_url)
