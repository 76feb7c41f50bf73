"""Background loops that outlive their own failures: each one caught, logged, counted, retried.

A replica's heartbeats, its orphan sweeper and its event feeds run for as long as it lives;
one Redis blip or keeper restart must not end them silently. `supervise` runs one step of a
loop at its interval; a failing step is logged (the first, then every tenth in a row),
counted in ``nocode_loop_failures_total{loop=...}``, and tried again after a backoff.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from serve_app.metrics import metrics

log = logging.getLogger("nocode.loops")
BACKOFF_MAX_S = 30.0


class StopLoop(Exception):  # noqa: N818 - a signal, not a failure
    """Raised by a step to end its loop normally."""


async def supervise(
    name: str,
    step: Callable[[], Awaitable[None]],
    every_s: float,
    *,
    backoff_max_s: float = BACKOFF_MAX_S,
) -> None:
    """Run ``step`` every ``every_s`` until it raises `StopLoop` or the task is cancelled."""
    failures = 0
    while True:
        try:
            await step()
            failures = 0
        except StopLoop:
            return
        except Exception:
            failures += 1
            metrics().loop_failures.inc(tags={"loop": name})
            if failures == 1 or failures % 10 == 0:
                log.exception("background loop %s failed (%d in a row); it goes on", name, failures)
        await asyncio.sleep(backoff(every_s, failures, backoff_max_s))


def backoff(every_s: float, failures: int, cap_s: float) -> float:
    """The pause before the next step: the interval, doubled per failure in a row, capped."""
    if failures == 0:
        return every_s
    pause: float = min(cap_s, max(every_s, 0.5) * 2.0 ** min(failures - 1, 6))
    return pause
