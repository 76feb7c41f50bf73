"""The memory store hosted in one named Ray actor, and the typed client every replica uses.

Without Redis, replicas still need one shared store (a job started on one ingress replica
is streamed by another, agent replicas share the call cache). The actor hosts a
`MemoryStore`; `ActorStore` is the `Store` interface over its handle, each method one
actor call. What the host cannot answer (it is restarting, its node died) reaches callers
as `StoreUnavailableError`. Like any memory store, its contents die with it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar, cast

from ray.exceptions import RayError

from serve_app.errors import StoreUnavailableError
from serve_app.singleton import cluster_singleton
from serve_app.store.base import (
    CounterBound,
    Fence,
    JobFencedError,
    JobRecord,
    JobStatus,
    Store,
    StoredEvent,
)
from serve_app.store.memory import MemoryStore

STORE_ACTOR_NAME = "nocode-store"

P = ParamSpec("P")
R = TypeVar("R")


def store_actor() -> Any:
    """The cluster's store actor, created on first use."""
    return cluster_singleton(MemoryStore, STORE_ACTOR_NAME)


def _reached(
    method: Callable[P, Coroutine[Any, Any, R]],
) -> Callable[P, Coroutine[Any, Any, R]]:
    """Turn a failed actor call into `StoreUnavailableError`; the store's own errors pass."""

    @functools.wraps(method)
    async def call(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except (KeyError, ValueError, JobFencedError):
            raise
        except RayError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, KeyError | ValueError | JobFencedError):
                raise cause from None
            raise StoreUnavailableError(
                f"the store actor is unavailable: {type(exc).__name__}"
            ) from exc

    return call


class ActorStore(Store):
    """The `Store` interface served by the store actor, from any process of the cluster."""

    def __init__(self, actor: Any) -> None:
        self._actor = actor

    @_reached
    async def create_job(self, job: JobRecord) -> None:
        await self._actor.create_job.remote(job)

    @_reached
    async def get_job(self, job_id: str) -> JobRecord | None:
        return cast(JobRecord | None, await self._actor.get_job.remote(job_id))

    @_reached
    async def update_job(self, job_id: str, **fields: Any) -> JobRecord:
        return cast(JobRecord, await self._actor.update_job.remote(job_id, **fields))

    @_reached
    async def claim_job(
        self, job_id: str, owner: str, *, stale_after_s: float | None
    ) -> JobRecord | None:
        claim = self._actor.claim_job.remote(job_id, owner, stale_after_s=stale_after_s)
        return cast(JobRecord | None, await claim)

    @_reached
    async def renew_job(self, job_id: str, fence: Fence) -> bool:
        return cast(bool, await self._actor.renew_job.remote(job_id, fence))

    @_reached
    async def append_event(
        self, job_id: str, event: str, data: dict[str, Any], fence: Fence | None = None
    ) -> int:
        return cast(int, await self._actor.append_event.remote(job_id, event, data, fence))

    @_reached
    async def end_job(
        self,
        job_id: str,
        fence: Fence | None,
        status: JobStatus,
        event: str,
        data: dict[str, Any],
        ttl_s: float,
    ) -> int:
        end = self._actor.end_job.remote(job_id, fence, status, event, data, ttl_s)
        return cast(int, await end)

    @_reached
    async def read_events(
        self, job_id: str, after: int = 0, *, block_s: float = 0.0
    ) -> list[StoredEvent]:
        events = await self._actor.read_events.remote(job_id, after, block_s=block_s)
        return cast(list[StoredEvent], events)

    @_reached
    async def claim_dedup(self, key: str, job_id: str, ttl_s: float) -> str | None:
        return cast(str | None, await self._actor.claim_dedup.remote(key, job_id, ttl_s))

    @_reached
    async def release_dedup(self, key: str, job_id: str) -> None:
        await self._actor.release_dedup.remote(key, job_id)

    @_reached
    async def take_turn(self, key: str, limit: int, window_s: float) -> tuple[bool, float]:
        return cast(tuple[bool, float], await self._actor.take_turn.remote(key, limit, window_s))

    @_reached
    async def cache_get(self, namespace: str, key: str) -> dict[str, Any] | None:
        return cast(dict[str, Any] | None, await self._actor.cache_get.remote(namespace, key))

    @_reached
    async def cache_set(
        self, namespace: str, key: str, value: dict[str, Any], ttl_s: float
    ) -> None:
        await self._actor.cache_set.remote(namespace, key, value, ttl_s)

    @_reached
    async def acquire_lease(self, name: str, token: str, ttl_s: float) -> bool:
        return cast(bool, await self._actor.acquire_lease.remote(name, token, ttl_s))

    @_reached
    async def renew_lease(self, name: str, token: str, ttl_s: float) -> bool:
        return cast(bool, await self._actor.renew_lease.remote(name, token, ttl_s))

    @_reached
    async def release_lease(self, name: str, token: str) -> None:
        await self._actor.release_lease.remote(name, token)

    @_reached
    async def cache_get_or_lease(
        self, namespace: str, key: str, name: str, token: str, ttl_s: float
    ) -> tuple[dict[str, Any] | None, bool]:
        got = self._actor.cache_get_or_lease.remote(namespace, key, name, token, ttl_s)
        return cast(tuple[dict[str, Any] | None, bool], await got)

    @_reached
    async def cache_set_release(
        self, namespace: str, key: str, value: dict[str, Any], ttl_s: float, name: str, token: str
    ) -> None:
        await self._actor.cache_set_release.remote(namespace, key, value, ttl_s, name, token)

    @_reached
    async def wait_lease(self, name: str, timeout_s: float) -> None:
        await self._actor.wait_lease.remote(name, timeout_s)

    @_reached
    async def stale_jobs(self, older_than_s: float) -> list[JobRecord]:
        return cast(list[JobRecord], await self._actor.stale_jobs.remote(older_than_s))

    @_reached
    async def add_counters(
        self,
        key: str,
        deltas: dict[str, float],
        ttl_s: float,
        bound: CounterBound | None = None,
    ) -> bool:
        return cast(bool, await self._actor.add_counters.remote(key, deltas, ttl_s, bound))

    @_reached
    async def read_counters(self, key: str) -> dict[str, float]:
        return cast(dict[str, float], await self._actor.read_counters.remote(key))

    @_reached
    async def expire_job(self, job_id: str, ttl_s: float) -> None:
        await self._actor.expire_job.remote(job_id, ttl_s)

    async def ping(self) -> bool:
        try:
            return cast(bool, await self._actor.ping.remote())
        except RayError:
            return False

    async def close(self) -> None:
        """Nothing to release: the actor outlives its clients."""
