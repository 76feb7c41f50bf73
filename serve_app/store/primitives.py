"""The logic both store backends share, built on their atomic steps: GCRA and single-flight.

Each backend supplies only atomic primitives (one GCRA turn, a lease on a name); the rate
limit and the single-flight protocol live here once, so every backend, the actor-hosted
one included, behaves the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from serve_app.errors import StoreUnavailableError

log = logging.getLogger("nocode.store")
Background = Callable[[Coroutine[Any, Any, None]], None]
"""Runs a coroutine to its end without the caller waiting for it."""

FLIGHT_LEASE_S = 10.0
"""How long a single-flight leader is trusted without renewing: a dead one's call is then
taken over by a waiter. Live leaders renew every third of it."""


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


def check_rate(limit: int, window_s: float) -> None:
    """Refuse a limit GCRA cannot express."""
    if limit < 1 or window_s <= 0:
        raise ValueError("a rate limit needs limit >= 1 and window_s > 0")


def rate_decision(allowed: bool, backlog_s: float, limit: int, window_s: float) -> RateDecision:
    """Read one GCRA turn: `backlog_s` is how long until the key's budget is whole again.

    GCRA keeps one number per key (when its budget is next spent) rather than a log of hits,
    so that a check is one atomic step and the state is a few bytes.
    """
    interval_s = window_s / limit
    if allowed:
        # The epsilon absorbs float error so that a whole number of free slots stays whole.
        remaining = math.floor((window_s - backlog_s) / interval_s + 1e-9)
        return RateDecision(True, limit, remaining, backlog_s, 0.0)
    retry_after_s = max(0.0, backlog_s + interval_s - window_s)
    return RateDecision(False, limit, 0, backlog_s, retry_after_s)


class LeaseStore(Protocol):
    """What single-flight needs of a store: its cache and leases on names."""

    async def cache_get(self, namespace: str, key: str) -> dict[str, Any] | None: ...

    async def cache_set(
        self, namespace: str, key: str, value: dict[str, Any], ttl_s: float
    ) -> None: ...

    async def acquire_lease(self, name: str, token: str, ttl_s: float) -> bool: ...

    async def renew_lease(self, name: str, token: str, ttl_s: float) -> bool: ...

    async def release_lease(self, name: str, token: str) -> None: ...

    async def wait_lease(self, name: str, timeout_s: float) -> None: ...

    async def cache_get_or_lease(
        self, namespace: str, key: str, name: str, token: str, ttl_s: float
    ) -> tuple[dict[str, Any] | None, bool]: ...

    async def cache_set_release(
        self, namespace: str, key: str, value: dict[str, Any], ttl_s: float, name: str, token: str
    ) -> None: ...


async def single_flight(
    store: LeaseStore,
    namespace: str,
    key: str,
    compute: Callable[[], Awaitable[dict[str, Any]]],
    ttl_s: float,
    wait_s: float,
    background: Background | None = None,
) -> tuple[dict[str, Any], bool]:
    """The cached value, else one caller computes and caches it while the others wait.

    Returns (value, computed_here). The leader holds a lease that it renews while it
    computes; when it fails (an exception, or its process dying and the lease running out)
    one waiter takes over. A waiter that has seen no value after `wait_s` raises
    `TimeoutError` rather than computing a second time. A hit is one round trip to the
    store, a miss two (look-or-lead, then keep-and-let-go). With `background`, the leader
    returns its value without waiting for the second: the waiters, woken only once the
    value is kept, lose nothing by it.
    """
    deadline = time.monotonic() + wait_s
    lease = f"flight:{namespace}:{key}"
    while True:
        token = uuid.uuid4().hex
        value, leading = await store.cache_get_or_lease(
            namespace, key, lease, token, FLIGHT_LEASE_S
        )
        if value is not None:
            return value, False
        if leading:
            value = await _lead(store, lease, token, compute)
            keep = _keep(store, namespace, key, value, ttl_s, lease, token)
            if background is None:
                await keep
            else:
                background(keep)
            return value, True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no value for {namespace!r} from another caller in {wait_s} s")
        await store.wait_lease(lease, min(remaining, FLIGHT_LEASE_S))


async def _lead(
    store: LeaseStore,
    lease: str,
    token: str,
    compute: Callable[[], Awaitable[dict[str, Any]]],
) -> dict[str, Any]:
    renewer = asyncio.create_task(_renew(store, lease, token))
    try:
        return await compute()
    except BaseException:
        # If the store is away the lease simply runs out; the caller's outcome matters more.
        with contextlib.suppress(StoreUnavailableError):
            await store.release_lease(lease, token)
        raise
    finally:
        renewer.cancel()


async def _keep(
    store: LeaseStore,
    namespace: str,
    key: str,
    value: dict[str, Any],
    ttl_s: float,
    lease: str,
    token: str,
) -> None:
    """Keep the leader's value and let its waiters go; a store that is away loses only
    the saving (the lease runs out and a waiter computes again)."""
    try:
        await store.cache_set_release(namespace, key, value, ttl_s, lease, token)
    except StoreUnavailableError as exc:
        log.warning("could not keep %s:%s in the store: %s", namespace, key, exc)


async def _renew(store: LeaseStore, lease: str, token: str) -> None:
    """Keep a live leader's lease from running out, so only a dead one's is taken over."""
    while True:
        await asyncio.sleep(FLIGHT_LEASE_S / 3)
        # A failed renewal is retried on the next round, well before the lease runs out.
        with contextlib.suppress(StoreUnavailableError):
            await store.renew_lease(lease, token, FLIGHT_LEASE_S)
