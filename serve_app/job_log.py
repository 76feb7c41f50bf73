"""A running job's writes, kept by its owner until the store has them: outages are ridden out.

The owner of a job appends its events through one `JobLog`: they are written in order by
one writer task, under the owner's fence. While the store is unreachable, events wait in
memory (the job goes on; its streams, which read the store, catch up when it returns).
When the store comes back without the job (Redis restarted empty), the owner writes the
record and every event it knows again, with the same ids, and carries on. When the fence is
refused (another replica took the job, or it ended), the log stops and says so: the owner
must stop too.

The terminal event is one more write, `end`, awaited by the owner: the job has ended once
the store says so, and not before.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from serve_app.errors import DependencyUnavailableError
from serve_app.metrics import metrics
from serve_app.store import Fence, JobFencedError, JobRecord, JobStatus, Store
from serve_app.supervised import backoff

log = logging.getLogger("nocode.jobs")
RETRY_MAX_S = 5.0


def stamped(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with ``emitted_at``, the Unix time the event was made: a client can tell how
    late it arrived (the streams benchmark measures exactly that)."""
    return {**data, "emitted_at": round(time.time(), 3)}


class JobLostError(Exception):
    """The job's fence was refused: another replica holds it, or it has ended."""


class JobLog:
    """The owner's writes to one job, in order, through store outages."""

    def __init__(
        self,
        store: Store,
        job: JobRecord,
        fence: Fence,
        known: list[tuple[str, dict[str, Any]]],
        *,
        on_lost: Callable[[], None],
    ) -> None:
        self._store = store
        self._job = job
        self._fence = fence
        self._written = list(known)
        """Every event of the job the store has taken, in order (id = index + 1)."""
        self._queue: asyncio.Queue[tuple[str, dict[str, Any]] | None] = asyncio.Queue()
        self._on_lost = on_lost
        self._writer = asyncio.create_task(self._write_all(), name=f"job-log-{job.job_id}")
        self._ended: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._end: tuple[JobStatus, str, dict[str, Any], float] | None = None
        self._lock = asyncio.Lock()
        """One write at a time, so that a rewrite after a loss keeps the events' order."""
        self.lost = False

    @classmethod
    async def open(
        cls, store: Store, job: JobRecord, fence: Fence, on_lost: Callable[[], None]
    ) -> JobLog:
        """The log of a job this replica has just taken, knowing the events already written."""
        known = [(e.event, e.data) for e in await store.read_events(job.job_id)]
        return cls(store, job, fence, known, on_lost=on_lost)

    def append(self, event: str, data: dict[str, Any]) -> None:
        """Queue an event; it reaches the store as soon as the store takes it."""
        if self._end is None and not self.lost:
            self._queue.put_nowait((event, stamped(data)))

    async def end(self, status: JobStatus, event: str, data: dict[str, Any], ttl_s: float) -> int:
        """Write the terminal event after everything queued; its id once the store has it.

        Raises `JobLostError` if the job was lost meanwhile (nothing was written).
        """
        if self._end is None:
            self._end = (status, event, stamped(data), ttl_s)
            self._queue.put_nowait(None)
        return await asyncio.shield(self._ended)

    def close(self) -> None:
        """Stop writing (the owner is done with the job, or lost it)."""
        self._writer.cancel()
        self._give_up()

    def _give_up(self) -> None:
        if not self._ended.done():
            self._ended.set_exception(JobLostError(self._job.job_id))
            self._ended.exception()  # marked as retrieved: nobody may be waiting for it

    async def _write_all(self) -> None:
        try:
            while True:
                item = await self._queue.get()
                if item is None:
                    assert self._end is not None
                    self._ended.set_result(await self._retrying(self._write_end))
                    return
                await self._retrying(functools.partial(self._write_event, *item))
        except JobFencedError:
            self.lost = True
            self._give_up()
            self._on_lost()
        except Exception as exc:  # a bug: the owner's end() must not wait for ever
            log.exception("the event writer of job %s failed", self._job.job_id)
            if not self._ended.done():
                self._ended.set_exception(exc)

    async def _retrying(self, write: Callable[[], Awaitable[int]]) -> int:
        """``write()`` until the store takes it: an outage is waited out, a store that lost
        the job gets it back whole first."""
        failures = 0
        while True:
            try:
                return await write()
            except DependencyUnavailableError:
                failures += 1
                metrics().loop_failures.inc(tags={"loop": "job_log"})
                if failures == 1:
                    log.warning("store unreachable: job %s keeps its events", self._job.job_id)
                await asyncio.sleep(backoff(0.5, failures, RETRY_MAX_S))
            except KeyError:
                await self.restore()

    async def _write_event(self, event: str, data: dict[str, Any]) -> int:
        async with self._lock:
            event_id = await self._store.append_event(self._job.job_id, event, data, self._fence)
            self._written.append((event, data))
            return event_id

    async def _write_end(self) -> int:
        assert self._end is not None
        status, event, data, ttl_s = self._end
        job_id = self._job.job_id
        async with self._lock:
            event_id = await self._store.end_job(job_id, self._fence, status, event, data, ttl_s)
            self._written.append((event, data))
            return event_id

    async def restore(self) -> None:
        """The store forgot the job (restarted empty): write it again as this owner holds
        it, then every event it had, so that ids and streams carry on."""
        async with self._lock:
            await self._restore()

    async def _restore(self) -> None:
        job_id = self._job.job_id
        log.warning("job %s was lost by the store; writing it again", job_id)
        metrics().job_ownership.inc(tags={"event": "restored"})
        held = {"status": "running", "owner": self._fence.owner, "epoch": self._fence.epoch}
        try:
            await self._store.create_job(self._job.model_copy(update=held))
        except ValueError:
            return  # written again meanwhile (by another owner?): the fence decides next
        for event, data in self._written:
            await self._store.append_event(job_id, event, data, self._fence)
