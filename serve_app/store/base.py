"""The store's interface and its records: jobs, their event logs, dedup, rates, caches,
counters, leases.

Every ingress and agent replica talks to one `Store`. The backends (`memory`, `redis_backend`,
`actor`) implement only atomic primitives; the rate limit and single-flight built on them
are here, once (`primitives`). All backends behave the same, down to values coming back as
fresh JSON copies; the store tests run every one of them.

Tenant isolation is the caller's job: the store never knows who asks, so every dedup, rate
and cache key it is handed must already include the tenant, and a job read by id must be
checked against its `tenant` before it is shown. Values are plain JSON and hold no secrets.
A backend that cannot reach its server raises `StoreUnavailableError` (503 to clients).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from serve_app.store.primitives import (
    Background,
    RateDecision,
    check_rate,
    rate_decision,
    single_flight,
)

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
TERMINAL: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})


class JobRecord(BaseModel):
    """One generation job, as every replica sees it."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    job_id: str
    """Unique opaque id; also names the job's event log."""
    tenant: str
    """Tenant owning the job: any other tenant must get 404 for it."""
    user_id: str
    """End user inside the tenant (the API key when the request named none)."""
    key_id: str | None = None
    """Fingerprint of the tenant key that submitted the job (never the key), for logs."""
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
    confidence: float | None = None
    """How sure the planner was of the plan's exact set (None: the caller forced it)."""
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
    epoch: int = 0
    """Raised each time an owner takes the job; the owner's writes carry it (`Fence`)."""
    attempts: int = 0
    """How many times an owner has started the job: its first run, then adoptions."""
    held_usd: float = 0.0
    """Dollars held on the tenant's day for this job (its spend limit), given back at its end."""


@dataclass(frozen=True)
class StoredEvent:
    """One SSE event of a job: `id` counts 1, 2, 3... within the job."""

    id: int
    event: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Fence:
    """The right to write to a running job: its owner, at the epoch it took the job with.

    Taking a job raises its epoch, so a replica that lost its job (it stalled, another took
    it, or the job ended) holds a stale fence and every write it tries is refused.
    """

    owner: str
    epoch: int


@dataclass(frozen=True)
class CounterBound:
    """A ceiling on the sum of some of a counter's fields (a spend limit, say)."""

    fields: tuple[str, ...]
    ceiling: float

    def passed_by(self, counters: Mapping[str, float]) -> bool:
        """Whether ``counters`` are over the ceiling (by more than float rounding)."""
        return sum(counters.get(f, 0.0) for f in self.fields) > self.ceiling + 1e-9


class JobFencedError(Exception):
    """A write to a job by a fence that does not hold it (lost, or the job has ended)."""

    def __init__(self, job_id: str, holder: str) -> None:
        super().__init__(job_id, holder)
        self.job_id = job_id
        self.holder = holder

    def __str__(self) -> str:
        return f"job {self.job_id} is not held by this writer (held: {self.holder})"


ENDED = "ended"


def holder_of(job: JobRecord) -> str:
    """Who may write to ``job``: ``ended`` once it has, else ``<owner>|<epoch>`` (an empty
    owner before anyone took it). Backends compare it with `token` atomically."""
    return ENDED if job.status in TERMINAL else f"{job.owner or ''}|{job.epoch}"


def token(fence: Fence | None) -> str:
    """What `holder_of` must equal for a write under ``fence`` (None: nobody took the job)."""
    return "|0" if fence is None else f"{fence.owner}|{fence.epoch}"


def claimable(job: JobRecord, stale_after_s: float | None, now: float) -> bool:
    """Whether ``job`` may be taken: new and untaken, or its owner silent ``stale_after_s``."""
    if job.status in TERMINAL:
        return False
    if stale_after_s is None:
        return job.owner is None
    return is_stale(job, now - stale_after_s)


def claimed(job: JobRecord, owner: str, now: float) -> JobRecord:
    """``job`` as ``owner`` takes it: running, a new epoch, one more attempt."""
    fields = {
        "status": "running",
        "owner": owner,
        "epoch": job.epoch + 1,
        "attempts": job.attempts + 1,
        "heartbeat_at": now,
    }
    return updated_job(job, fields)


def ended(job: JobRecord, status: JobStatus, event: str, data: dict[str, Any]) -> JobRecord:
    """``job`` with its terminal status and the data of its terminal event."""
    if status not in TERMINAL:
        raise ValueError(f"{status!r} is not a terminal status")
    return updated_job(job, {"status": status, "result" if event == "result" else "error": data})


def updated_job(job: JobRecord, fields: dict[str, Any]) -> JobRecord:
    """`job` with `fields` changed and `updated_at` now, validated as strictly as a new record."""
    return JobRecord.model_validate({**job.model_dump(), **fields, "updated_at": time.time()})


def is_stale(job: JobRecord, cutoff: float) -> bool:
    """Whether `job` should be running but nobody has vouched for it since `cutoff`."""
    seen = job.updated_at if job.heartbeat_at is None else job.heartbeat_at
    return job.status not in TERMINAL and seen < cutoff


def cache_key(namespace: str, key: str) -> str:
    """The one name every backend gives a cached value."""
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
    async def claim_job(
        self, job_id: str, owner: str, *, stale_after_s: float | None
    ) -> JobRecord | None:
        """Take the job for ``owner`` in one atomic step, if `claimable`; the job as taken.

        ``stale_after_s`` None takes a new job nobody took yet; a number adopts one whose
        owner has been silent that long. None when it is missing, ended, or not free.
        """

    @abstractmethod
    async def renew_job(self, job_id: str, fence: Fence) -> bool:
        """The owner's heartbeat: whether ``fence`` still holds the job (then it is renewed);
        `KeyError` if the job is missing (the store lost it: its owner may write it again)."""

    @abstractmethod
    async def append_event(
        self, job_id: str, event: str, data: dict[str, Any], fence: Fence | None = None
    ) -> int:
        """Add an event to the job's log and return its id (1, 2, 3...).

        ``fence`` must hold the job (None: nobody has taken it yet), else `JobFencedError`;
        `KeyError` if the job is missing.
        """

    @abstractmethod
    async def end_job(
        self,
        job_id: str,
        fence: Fence | None,
        status: JobStatus,
        event: str,
        data: dict[str, Any],
        ttl_s: float,
    ) -> int:
        """Append the terminal event and set the terminal status in one atomic step, then
        let the job expire after ``ttl_s``; the event's id.

        `JobFencedError` unless ``fence`` holds the job, so a job ends once, by its owner.
        """

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
    async def take_turn(self, key: str, limit: int, window_s: float) -> tuple[bool, float]:
        """One atomic GCRA step: (allowed, seconds until the key's budget is whole again)."""

    @abstractmethod
    async def cache_get(self, namespace: str, key: str) -> dict[str, Any] | None:
        """The cached value, or None if missing or expired."""

    @abstractmethod
    async def cache_set(
        self, namespace: str, key: str, value: dict[str, Any], ttl_s: float
    ) -> None:
        """Cache `value` for `ttl_s` seconds."""

    @abstractmethod
    async def add_counters(
        self,
        key: str,
        deltas: dict[str, float],
        ttl_s: float,
        bound: CounterBound | None = None,
    ) -> bool:
        """Add `deltas` to the fields of counter `key` at once and keep it `ttl_s` from now;
        with `bound`, add nothing (False) when its fields would then sum over its ceiling."""

    @abstractmethod
    async def read_counters(self, key: str) -> dict[str, float]:
        """The fields of counter `key` ({} when it is missing or ran out)."""

    @abstractmethod
    async def acquire_lease(self, name: str, token: str, ttl_s: float) -> bool:
        """Hold `name` for `ttl_s` under `token` if nobody holds it; whether it was taken."""

    @abstractmethod
    async def renew_lease(self, name: str, token: str, ttl_s: float) -> bool:
        """Extend the lease if `token` still holds it; whether it did."""

    @abstractmethod
    async def release_lease(self, name: str, token: str) -> None:
        """Let go of `name` if `token` holds it."""

    @abstractmethod
    async def wait_lease(self, name: str, timeout_s: float) -> None:
        """Return once `name` may have been let go (or run out), or after `timeout_s`."""

    @abstractmethod
    async def cache_get_or_lease(
        self, namespace: str, key: str, name: str, token: str, ttl_s: float
    ) -> tuple[dict[str, Any] | None, bool]:
        """In one atomic step: (the cached value, False) if there is one; else (None,
        whether `name` was taken for `ttl_s` under `token`)."""

    @abstractmethod
    async def cache_set_release(
        self, namespace: str, key: str, value: dict[str, Any], ttl_s: float, name: str, token: str
    ) -> None:
        """In one atomic step: cache `value` for `ttl_s` and let go of `name` if `token`
        holds it, so that nobody finds the lease free and the value not yet there."""

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

    async def hit_rate_limit(self, key: str, limit: int, window_s: float) -> RateDecision:
        """Count one hit on `key` if allowed: a burst of `limit`, then one per window/limit."""
        check_rate(limit, window_s)
        allowed, backlog_s = await self.take_turn(key, limit, window_s)
        return rate_decision(allowed, backlog_s, limit, window_s)

    async def single_flight(
        self,
        namespace: str,
        key: str,
        compute: Callable[[], Awaitable[dict[str, Any]]],
        ttl_s: float,
        wait_s: float,
        background: Background | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """See `primitives.single_flight`: computed once across every replica."""
        return await single_flight(self, namespace, key, compute, ttl_s, wait_s, background)
