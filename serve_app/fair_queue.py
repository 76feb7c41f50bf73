"""The order in which one pool's waiting calls are granted: fair between tenants, then by job.

Interactive calls go before batch ones. Within a class, tenants share the pool by weight:
start-time fair queueing, each grant charging its tenant the call's dominant share of the
pool (its largest fraction of one limit, over the weight), and a tenant coming back from
idle starts at the current virtual time, so it neither banks credit nor pays for its
absence. Within a tenant the oldest admitted job goes first, and within a job the call
with the longest path of agents still behind it: an admitted job runs to its end at the
pace of its own DAG instead of advancing in step with every later one.

Why not round-robin between users, as before: with every job's calls interleaved, all
admitted jobs advanced together and all finished late. Fairness between a tenant's users
belongs to admission, which decides whose job enters the line.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from serve_app.call_demand import CallDemand, Priority

PRIORITIES: tuple[Priority, ...] = ("interactive", "batch")


@dataclass(eq=False)
class QueuedCall:
    """A call waiting for budget; its future is resolved when it is granted."""

    demand: CallDemand
    future: asyncio.Future[None]
    since: float
    seq: int = 0
    removed: bool = False

    def order(self) -> tuple[float, int, int]:
        """Within a tenant: oldest job, then the longest path behind the call, then arrival."""
        return (self.demand.job_admitted_at, -self.demand.path_after, self.seq)


@dataclass
class _Lane:
    """One tenant's waiting calls of one priority, in job order."""

    heap: list[tuple[tuple[float, int, int], QueuedCall]] = field(default_factory=list)
    live: int = 0

    def head(self) -> QueuedCall | None:
        while self.heap and self.heap[0][1].removed:
            heapq.heappop(self.heap)
        return self.heap[0][1] if self.heap else None


class FairQueue:
    """One pool's waiting calls; ``cost`` is a call's share of the pool, ``weights`` per tenant."""

    def __init__(
        self,
        cost: Callable[[CallDemand], float],
        weights: Mapping[str, float] | None = None,
    ) -> None:
        self._cost = cost
        self._weights = dict(weights or {})
        self._lanes: dict[Priority, dict[str, _Lane]] = {p: {} for p in PRIORITIES}
        self._vtime: dict[str, float] = {}
        self._clock = 0.0
        self._seq = itertools.count()

    def __len__(self) -> int:
        return sum(lane.live for lanes in self._lanes.values() for lane in lanes.values())

    def push(self, call: QueuedCall) -> None:
        """Queue ``call``; a tenant that had nothing waiting starts at the virtual time."""
        tenant = call.demand.tenant
        if not self._active(tenant):
            self._vtime[tenant] = max(self._vtime.get(tenant, 0.0), self._clock)
        call.seq = next(self._seq)
        lane = self._lanes[call.demand.priority].setdefault(tenant, _Lane())
        heapq.heappush(lane.heap, (call.order(), call))
        lane.live += 1

    def head(self) -> QueuedCall | None:
        """The call to grant next."""
        for lanes in self._lanes.values():
            tenants = [t for t, lane in lanes.items() if lane.live]
            if tenants:
                tenant = min(tenants, key=lambda t: (self._vtime[t], t))
                return lanes[tenant].head()
        return None

    def pop_head(self) -> QueuedCall:
        """Take the head out as granted, charging its tenant for it."""
        call = self.head()
        if call is None:
            raise IndexError("no call is waiting")
        tenant = call.demand.tenant
        self._clock = self._vtime[tenant]
        self._vtime[tenant] += self._cost(call.demand) / self._weights.get(tenant, 1.0)
        self.remove(call)
        return call

    def remove(self, call: QueuedCall) -> None:
        """Take ``call`` out without a grant (timed out, cancelled); idempotent."""
        if call.removed:
            return
        call.removed = True
        lanes = self._lanes[call.demand.priority]
        lane = lanes[call.demand.tenant]
        lane.live -= 1
        lane.head()
        if not lane.live:
            del lanes[call.demand.tenant]

    def calls(self) -> Iterator[QueuedCall]:
        """Every waiting call, in an order close to the grant order (for positions)."""
        for lanes in self._lanes.values():
            tenants = sorted(lanes, key=lambda t: (self._vtime[t], t))
            for tenant in tenants:
                ordered = sorted(c for c in lanes[tenant].heap if not c[1].removed)
                yield from (call for _, call in ordered)

    def _active(self, tenant: str) -> bool:
        return any(tenant in lanes for lanes in self._lanes.values())
