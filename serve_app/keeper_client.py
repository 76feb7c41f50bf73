"""The keeper's client: its protocol, typed, over the actor's handle.

Unreachable means ``KeeperUnavailableError`` (a 503); an acquire that finds the keeper
restarting tries again until its timeout, and one cancelled while it waits leaves the
keeper's queue. See ``serve_app.keeper`` for the protocol and the actor.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, cast

import ray
from ray.exceptions import RayError, RayTaskError

from serve_app.admission_ledger import Verdict
from serve_app.budget_lease import Lease, LeasedCall
from serve_app.call_demand import CallDemand
from serve_app.config import GatewayArgs
from serve_app.errors import GatewayError, KeeperUnavailableError
from serve_app.keeper import KEEPER_NAME, BudgetKeeper
from serve_app.metrics import metrics
from serve_app.singleton import cluster_singleton

log = logging.getLogger("nocode.keeper")
RESTART_POLL_S = 2.0
"""Longest pause between tries of an acquire while the keeper restarts."""


class KeeperClient:
    """The keeper's protocol, typed, over its actor handle; unreachable means 503."""

    def __init__(self, actor: Any) -> None:
        self.actor = actor

    async def _call(self, method: str, *args: Any) -> Any:
        return await self._result(getattr(self.actor, method).remote(*args))

    async def _result(self, ref: Any) -> Any:
        try:
            return await ref
        except RayTaskError as exc:
            if isinstance(exc.cause, GatewayError):
                raise exc.cause from None
            raise
        except RayError as exc:
            raise KeeperUnavailableError(
                f"the budget keeper is unavailable: {type(exc).__name__}"
            ) from exc

    async def ready(self) -> dict[str, Any]:
        return cast(dict[str, Any], await self._call("ready"))

    async def admit(
        self, job_id: str, tenant: str, user: str, agents: list[str], bound_s: float
    ) -> Verdict:
        """Whether the job fits within ``bound_s``, its estimate, or when to come back."""
        return cast(Verdict, await self._call("admit", job_id, tenant, user, agents, bound_s))

    async def finish_job(
        self, job_id: str, usage_by_agent: dict[str, dict[str, float]], kind: str
    ) -> float | None:
        """The job ended (its usage by agent, empty if it failed; ``kind``: new_page or
        edit); the estimate's error, s."""
        return cast(float | None, await self._call("finish_job", job_id, usage_by_agent, kind))

    async def acquire(self, demand: CallDemand, timeout_s: float) -> int:
        """The ``max_tokens`` to send once budget is granted; ``BudgetTimeoutError`` if not.

        A keeper that died restarts on its own (its levels come back from Redis), so an
        acquire that finds it down tries again until ``timeout_s``: a keeper restart slows
        a call, it does not fail its generation. A caller cancelled while it waits leaves
        the keeper's queue (Ray cancels the keeper's coroutine), and a grant made
        meanwhile is refunded: nothing was sent.
        """
        return cast(int, await self._acquire("acquire", demand, timeout_s))

    async def acquire_leasing(
        self, demand: CallDemand, timeout_s: float
    ) -> tuple[int, Lease | None]:
        """``acquire``, and a lease for more calls like ``demand`` if the pool is
        uncontended. A lease granted as its caller is cancelled is left to the sweep:
        leases are granted only when nothing waits, so that window is a round trip."""
        granted = await self._acquire("acquire_leasing", demand, timeout_s)
        return cast(tuple[int, Lease | None], tuple(granted))

    async def _acquire(self, method: str, demand: CallDemand, timeout_s: float) -> Any:
        give_up = time.monotonic() + timeout_s
        delay = 0.25
        while True:
            try:
                wait = max(1.0, give_up - time.monotonic())
                return await self._acquire_once(method, demand, wait)
            except KeeperUnavailableError:
                metrics().keeper_unreachable.inc(tags={"call": "acquire"})
                if time.monotonic() + delay > give_up:
                    raise
                await asyncio.sleep(delay)
                delay = min(2 * delay, RESTART_POLL_S)

    async def _acquire_once(self, method: str, demand: CallDemand, timeout_s: float) -> Any:
        ref = getattr(self.actor, method).remote(demand, timeout_s)
        try:
            return await self._result(ref)
        except asyncio.CancelledError:
            ray.cancel(ref)
            self.actor.release.remote(demand.call_id)  # not awaited: we are being cancelled
            raise

    async def _report(self, method: str, *args: Any) -> None:
        """Tell the keeper how a granted call ended. A keeper that died meanwhile lost the
        grant with it (and restarts from saved levels), so there is nothing to retry."""
        try:
            await self._call(method, *args)
        except KeeperUnavailableError as exc:
            metrics().keeper_unreachable.inc(tags={"call": method})
            log.warning("budget keeper unreachable for %s: %s", method, exc)

    async def settle(
        self,
        call_id: str,
        usage: dict[str, int],
        truncated: bool,
        pool: str = "",
        headers: dict[str, str] | None = None,
        leased: LeasedCall | None = None,
    ) -> None:
        """Charge an answered call what it used, and correct ``pool``'s buckets from its
        rate-limit headers."""
        await self._report("settle", call_id, usage, truncated, pool, headers, leased)

    async def release(
        self,
        call_id: str,
        pool: str = "",
        headers: dict[str, str] | None = None,
        leased: LeasedCall | None = None,
    ) -> None:
        """Refund a grant whose call was never answered (with its error's headers, if any)."""
        await self._report("release", call_id, pool, headers, leased)

    async def charge(self, call_id: str, leased: LeasedCall | None = None) -> None:
        """End a grant whose call may have reached the API: its reservation stays spent."""
        await self._report("charge", call_id, leased)

    async def return_lease(self, lease_id: str, left: dict[str, float]) -> None:
        """Give back what a lease did not grant."""
        await self._report("return_lease", lease_id, left)

    async def lease_revoked(self, lease_id: str, timeout_s: float) -> bool:
        """Whether the keeper revokes ``lease_id`` within ``timeout_s``; an unreachable
        keeper counts as revoking it (a restarted one does not know it)."""
        try:
            return cast(bool, await self._call("lease_revoked", lease_id, timeout_s))
        except KeeperUnavailableError:
            return True

    async def pause(self, pool: str, seconds: float) -> None:
        await self._call("pause", pool, seconds)

    async def cancel_job(self, job_id: str) -> int:
        return cast(int, await self._call("cancel_job", job_id))

    async def job_queue(self, job_id: str) -> dict[str, float] | None:
        return cast(dict[str, float] | None, await self._call("job_queue", job_id))

    async def snapshot(self) -> dict[str, Any]:
        return cast(dict[str, Any], await self._call("snapshot"))


def keeper_client(args: GatewayArgs, redis_url: str | None) -> KeeperClient:
    """The cluster's keeper, created on first use."""
    return KeeperClient(
        cluster_singleton(BudgetKeeper, KEEPER_NAME, args.model_dump_json(), redis_url)
    )
