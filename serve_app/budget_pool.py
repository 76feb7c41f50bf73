"""One model pool's state in the budget: its token buckets, fair queue and settled history."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

from serve_app.call_demand import Limits
from serve_app.fair_queue import FairQueue


@dataclass
class Bucket:
    """A token bucket that refills its capacity over a minute."""

    capacity: float
    level: float
    updated: float

    @property
    def rate(self) -> float:
        return self.capacity / 60.0

    def refill(self, now: float) -> float:
        if now > self.updated:
            self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
            self.updated = now
        return self.level

    def wait_for(self, amount: float, now: float) -> float:
        missing = min(amount, self.capacity) - self.refill(now)
        return max(0.0, missing / self.rate)


@dataclass
class PoolState:
    """A pool's limits, buckets, waiting calls, pause and what it settled lately."""

    limits: Limits
    buckets: dict[str, Bucket]
    queue: FairQueue
    paused_until: float = 0.0
    timer: asyncio.TimerHandle | None = None
    history: deque[tuple[float, float, float, float]] = field(default_factory=deque)
    """(time, requests, input tokens, output tokens) settled in the last ``HISTORY_S``:
    what utilisation is measured on."""


HISTORY_S = 300.0
"""The longest utilisation window reported; older history is dropped as calls settle."""


def remember(pool: PoolState, row: tuple[float, float, float, float]) -> None:
    pool.history.append(row)
    forget_before(pool, row[0] - HISTORY_S)


def forget_before(pool: PoolState, cutoff: float) -> None:
    while pool.history and pool.history[0][0] < cutoff:
        pool.history.popleft()
