"""The budget as one agent replica sees it: its own lease first, else the keeper.

Same verbs as ``KeeperClient`` (acquire, settle, release, charge, pause). A call that fits
the replica's lease (see ``budget_lease``) is granted here without a round trip; any other
asks the keeper, and the first of them while the replica holds no lease asks for one too.
A held lease is dropped as soon as the keeper revokes it (a 429 paused its pool).
Every call that was sent still reports its end to the keeper, leased ones with what they
reserved, so the keeper charges exactly what the API reported either way.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from typing import Any

from serve_app.budget_lease import Lease, LeasedCall, conservative_input
from serve_app.call_demand import KINDS, CallDemand
from serve_app.keeper_client import KeeperClient

Background = Callable[[Coroutine[Any, Any, None]], None]


@dataclass
class _Held:
    lease: Lease
    left: dict[str, float]
    expires_at: float
    timer: asyncio.TimerHandle | None = None
    watch: asyncio.Task[None] | None = None


class ReplicaBudget:
    """A replica's grants: from its lease per pool while one fits, else from the keeper."""

    def __init__(
        self,
        keeper: KeeperClient,
        background: Background,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._keeper = keeper
        self._background = background
        self._clock = clock
        self._held: dict[str, _Held] = {}
        self._leased: dict[str, LeasedCall] = {}
        self._asking: set[str] = set()
        """Pools with a lease asked for: one at a time, so a burst takes one lease."""

    async def acquire(self, demand: CallDemand, timeout_s: float) -> int:
        """The ``max_tokens`` to send once ``demand`` is granted (see ``KeeperClient``)."""
        local = self._from_lease(demand)
        if local is not None:
            return local
        if demand.pool in self._asking:
            return await self._keeper.acquire(demand, timeout_s)
        self._asking.add(demand.pool)
        try:
            granted, lease = await self._keeper.acquire_leasing(demand, timeout_s)
        finally:
            self._asking.discard(demand.pool)
        if lease is not None:
            self._hold(lease)
        return granted

    def _from_lease(self, demand: CallDemand) -> int | None:
        if demand.call_id in self._leased:
            return self._leased[demand.call_id].demand.output_tokens
        held = self._held.get(demand.pool)
        if held is None or held.lease.tag != demand.tag or held.expires_at <= self._clock():
            return None
        cap = held.lease.output_cap
        output = demand.output_tokens
        if cap is not None and not demand.full_output:
            output = min(output, cap)
        reserved = replace(
            demand,
            input_tokens=conservative_input(demand, held.lease.token_scale),
            output_tokens=output,
        )
        if any(reserved.amount(kind) > held.left[kind] for kind in KINDS):
            return None
        for kind in KINDS:
            held.left[kind] -= reserved.amount(kind)
        self._leased[demand.call_id] = LeasedCall(held.lease.lease_id, reserved)
        return output

    def _hold(self, lease: Lease) -> None:
        """Hold ``lease`` for its pool, giving back the one it replaces."""
        self._give_back(lease.pool)
        held = _Held(lease, lease.amounts(), self._clock() + lease.expires_in_s)
        loop = asyncio.get_running_loop()
        held.timer = loop.call_later(lease.expires_in_s, self._expire, lease.pool, lease)
        held.watch = loop.create_task(self._watch(lease))
        self._held[lease.pool] = held

    async def _watch(self, lease: Lease) -> None:
        """Drop ``lease`` once the keeper revokes it."""
        if await self._keeper.lease_revoked(lease.lease_id, lease.expires_in_s):
            self._expire(lease.pool, lease)

    def _expire(self, pool: str, lease: Lease) -> None:
        held = self._held.get(pool)
        if held is not None and held.lease is lease:
            self._give_back(pool)

    def _give_back(self, pool: str) -> None:
        held = self._held.pop(pool, None)
        if held is None:
            return
        if held.timer is not None:
            held.timer.cancel()
        if held.watch is not None and held.watch is not asyncio.current_task():
            held.watch.cancel()
        self._background(self._keeper.return_lease(held.lease.lease_id, held.left))

    async def settle(
        self,
        call_id: str,
        usage: dict[str, int],
        truncated: bool,
        pool: str = "",
        headers: dict[str, str] | None = None,
    ) -> None:
        leased = self._leased.pop(call_id, None)
        await self._keeper.settle(call_id, usage, truncated, pool, headers, leased)

    async def release(
        self, call_id: str, pool: str = "", headers: dict[str, str] | None = None
    ) -> None:
        """Refund a call never answered: into the lease it came from while that is still
        held and nothing needs telling (no headers), else through the keeper."""
        leased = self._leased.pop(call_id, None)
        if leased is not None and not headers:
            held = self._held.get(leased.demand.pool)
            if held is not None and held.lease.lease_id == leased.lease_id:
                for kind in KINDS:
                    held.left[kind] += leased.demand.amount(kind)
                return
        await self._keeper.release(call_id, pool, headers, leased)

    async def charge(self, call_id: str) -> None:
        await self._keeper.charge(call_id, self._leased.pop(call_id, None))

    async def pause(self, pool: str, seconds: float) -> None:
        """The API said 429: stop granting from this replica's lease too."""
        self._give_back(pool)
        await self._keeper.pause(pool, seconds)
