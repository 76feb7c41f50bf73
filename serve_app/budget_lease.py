"""Budget leases: a batch of budget a replica grants from itself while its pool is uncontended.

A grant from the keeper costs a round trip on every call's critical path (about 5 ms on
this machine, most of an agent hop's overhead). When a pool has nobody waiting and its
buckets stay at least ``HIGH_WATER`` full, the keeper hands the asking replica, with its
grant, a lease: room for a few more calls like it, debited at once, valid for
``lease_s``. The replica grants from it without asking, reserving conservatively (the
request's whole input, no cache discount); each such call still settles with the keeper,
which adopts it as a grant first, so what the API reported is charged exactly as for any
other grant. The replica returns what its lease has left when it expires or is replaced.
While it holds one it also waits on the keeper for its revocation: a pause (the API said
429) revokes every lease of the pool, so no replica keeps sending from one after a 429.

Fairness is kept because leases exist only while nobody waits: once a pool queues, the
keeper leases nothing and every call meets the fair queue again, the leases out already
bounded by ``share`` of each limit and ``lease_s``. A replica that dies with a lease leaves
it charged (the sweep forgets it), and a keeper that restarts forgets its leases: the
calls settled under one it does not know are not refunded. Both err on the safe side.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field

from serve_app.call_demand import KINDS, CallDemand, Limits

HIGH_WATER = 0.5
"""Share of each bucket that must stay after a lease is debited."""
MIN_CALLS = 2
"""A lease that would hold fewer calls than this is not worth its debit."""
MAX_CALLS = 32
ADOPTED_REMEMBERED = 20_000
"""Leased calls remembered once adopted, so that a repeated report is not adopted twice."""


@dataclass(frozen=True)
class LeasePolicy:
    """How much a lease may hold (``share`` of each limit; 0 leases nothing) and for how
    long it is valid."""

    share: float = 0.0
    lease_s: float = 2.0


@dataclass(frozen=True)
class Lease:
    """Budget handed to one replica: what it may grant itself until ``expires_in_s``."""

    lease_id: str
    pool: str
    tag: str
    requests: int
    input_tokens: int
    output_tokens: int
    expires_in_s: float
    output_cap: int | None
    """The learned bound on the tag's answers (None while none is learned)."""
    token_scale: float
    """How the API's token counts compare with the local estimates, for this pool's model."""

    def amounts(self) -> dict[str, float]:
        return {
            "requests": float(self.requests),
            "input_tokens": float(self.input_tokens),
            "output_tokens": float(self.output_tokens),
        }


@dataclass(frozen=True)
class LeasedCall:
    """A call a replica granted from a lease, as reported when it ends: the keeper adopts
    ``demand`` (what it reserved) as a grant before settling, releasing or charging it."""

    lease_id: str
    demand: CallDemand


def conservative_input(demand: CallDemand, token_scale: float) -> int:
    """What a leased call reserves of input: all of it, in the API's counts as learned."""
    if demand.shape is None:
        return demand.input_tokens
    return math.ceil(demand.shape.total * token_scale)


@dataclass
class _Open:
    pool: str
    granted_at: float
    returned: bool = False
    revoked: asyncio.Event = field(default_factory=asyncio.Event)


class LeaseBook:
    """The keeper's side: which leases are out, and which of their calls were adopted."""

    def __init__(self, policy: LeasePolicy) -> None:
        self.policy = policy
        self._open: dict[str, _Open] = {}
        self._adopted: OrderedDict[str, None] = OrderedDict()

    def size(
        self, limits: Limits, levels: Mapping[str, float], per_call: Mapping[str, float]
    ) -> int:
        """How many calls of ``per_call`` a lease may hold at these bucket levels; 0: none."""
        if self.policy.share <= 0:
            return 0
        room = [
            min(self.policy.share * limits.of(k), levels[k] - HIGH_WATER * limits.of(k))
            / max(per_call[k], 1.0)
            for k in KINDS
        ]
        calls = min(MAX_CALLS, math.floor(min(room)))
        return calls if calls >= MIN_CALLS else 0

    def open(self, pool: str, now: float) -> str:
        lease_id = uuid.uuid4().hex
        self._open[lease_id] = _Open(pool, now)
        return lease_id

    def adopt(self, lease_id: str, call_id: str) -> bool:
        """Whether a call reported under ``lease_id`` is to become a grant now: its lease is
        known (returned or not) and the call was not adopted before."""
        if lease_id not in self._open or call_id in self._adopted:
            return False
        self._adopted[call_id] = None
        while len(self._adopted) > ADOPTED_REMEMBERED:
            self._adopted.popitem(last=False)
        return True

    def give_back(self, lease_id: str) -> str | None:
        """The pool whose buckets a returned lease's remainder goes back to, once only."""
        held = self._open.get(lease_id)
        if held is None or held.returned:
            return None
        held.returned = True
        return held.pool

    def revoke(self, pool: str) -> None:
        """Revoke every lease of ``pool`` still out: their replicas stop granting from them."""
        for held in self._open.values():
            if held.pool == pool and not held.returned:
                held.revoked.set()

    async def revoked(self, lease_id: str, timeout_s: float) -> bool:
        """Whether ``lease_id`` is revoked within ``timeout_s``; a lease this keeper does not
        know (it restarted, or swept it) counts as revoked."""
        held = self._open.get(lease_id)
        if held is None:
            return True
        try:
            await asyncio.wait_for(held.revoked.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    def sweep(self, cutoff: float) -> int:
        """Forget leases granted before ``cutoff``: what one not returned held stays spent."""
        stale = [i for i, held in self._open.items() if held.granted_at < cutoff]
        for lease_id in stale:
            del self._open[lease_id]
        return len(stale)

    @property
    def out(self) -> int:
        """Leases granted and not yet returned."""
        return sum(1 for held in self._open.values() if not held.returned)
