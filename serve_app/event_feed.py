"""One store reader per job for all of an ingress replica's streams of that job.

Without it every open SSE stream polls the store once per ping interval: 1,000 clients
watching 10 generations made 1,000 keeper calls a second, and the ingress fell behind its
own pings (median gap 2.5 s at a 1 s interval). A feed reads a job's events once, keeps
them while anyone watches (a job has tens of events), encodes each as an SSE frame once
for all its streams, and wakes its subscribers. Pings come from one ticker per interval
for every stream of the replica, not a timer per stream: a subscriber waits on its feed
alone, and a tick wakes every feed. Whether a quiet job still exists (it may have
expired) is asked by its reader too, once per job rather than once per stream.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator

from serve_app.errors import DependencyUnavailableError
from serve_app.metrics import metrics
from serve_app.store import Store, StoredEvent
from serve_app.supervised import backoff

log = logging.getLogger("nocode.feeds")
TERMINAL_EVENTS = ("result", "error")
FEED_RETRY_MAX_S = 5.0
EXPIRY_CHECK_EVERY = 10
"""Quiet long-polls between two checks that the job still exists. A job missing at two
checks in a row has gone: once may be a store restarted empty, which the job's owner is
writing again."""


def frame(event: StoredEvent) -> bytes:
    """One event in SSE wire form."""
    return f"id: {event.id}\nevent: {event.event}\ndata: {json.dumps(event.data)}\n\n".encode()


class _Feed:
    """A job's events as read so far (and their frames), and the task reading more."""

    def __init__(self) -> None:
        self.events: list[StoredEvent] = []
        self.frames: dict[int, bytes] = {}
        self.changed = asyncio.Event()
        self.error: Exception | None = None
        self.gone = False
        """The job is no longer in the store: its streams end."""
        self.subscribers = 0
        self.reader: asyncio.Task[None] | None = None

    def publish(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()


class EventFeeds:
    """This replica's feeds, one per watched job; ``block_s`` is the store's long-poll."""

    def __init__(self, store: Store, block_s: float) -> None:
        self._store = store
        self._block_s = block_s
        self._feeds: dict[str, _Feed] = {}
        self._ticks: dict[float, int] = {}
        """Ticks so far of each ping interval in use; its ticker wakes every feed."""
        self._tickers: dict[float, asyncio.Task[None]] = {}

    def encoded(self, job_id: str, event: StoredEvent) -> bytes:
        """``event``'s SSE frame, encoded once for every stream of the job."""
        feed = self._feeds.get(job_id)
        cached = feed.frames.get(event.id) if feed is not None else None
        return cached if cached is not None else frame(event)

    def _ticker(self, idle_s: float) -> None:
        if idle_s not in self._tickers or self._tickers[idle_s].done():
            self._ticks.setdefault(idle_s, 0)
            self._tickers[idle_s] = asyncio.create_task(self._tick(idle_s))

    async def _tick(self, idle_s: float) -> None:
        """Every ``idle_s``, count a tick and wake every feed; stop when none is left."""
        while self._feeds:
            await asyncio.sleep(idle_s)
            self._ticks[idle_s] += 1
            for feed in list(self._feeds.values()):
                feed.publish()

    async def follow(
        self, job_id: str, after: int, idle_s: float
    ) -> AsyncIterator[list[StoredEvent]]:
        """Batches of the job's events after ``after``; an empty batch after ``idle_s`` quiet.

        Ends after a terminal event or once the job has gone from the store; a store
        failure is raised to the caller.
        """
        feed = self._feeds.get(job_id)
        if feed is None:
            feed = self._feeds[job_id] = _Feed()
            feed.reader = asyncio.create_task(self._read(job_id, feed))
        feed.subscribers += 1
        self._ticker(idle_s)
        try:
            sent_at = self._ticks[idle_s]  # the tick of the last batch sent
            while True:
                changed = feed.changed
                new = [event for event in feed.events if event.id > after]
                if new:
                    yield new
                    sent_at = self._ticks[idle_s]
                    after = new[-1].id
                    if new[-1].event in TERMINAL_EVENTS:
                        return
                    continue
                if feed.error is not None:
                    raise feed.error
                if feed.gone:
                    return
                if self._ticks[idle_s] > sent_at:  # a whole tick went by with nothing sent
                    yield []
                    sent_at = self._ticks[idle_s]
                    continue
                await changed.wait()
        finally:
            feed.subscribers -= 1
            if feed.subscribers == 0 and self._feeds.get(job_id) is feed:
                del self._feeds[job_id]
                if feed.reader is not None:
                    feed.reader.cancel()

    async def _read(self, job_id: str, feed: _Feed) -> None:
        """Read on until the terminal event; an unreachable store is waited out (the
        subscribers keep their pings), any other failure is handed to them."""
        after = 0
        failures = quiet = missing = 0
        while True:
            try:
                batch = await self._store.read_events(job_id, after, block_s=self._block_s)
            except DependencyUnavailableError:
                failures += 1
                metrics().loop_failures.inc(tags={"loop": "feed"})
                if failures == 1:
                    log.warning("store unreachable while following job %s; retrying", job_id)
                await asyncio.sleep(backoff(0.5, failures, FEED_RETRY_MAX_S))
                continue
            except Exception as exc:  # handed to every subscriber, which decides
                feed.error = exc
                feed.publish()
                return
            failures = 0
            if not batch:
                quiet += 1
                if quiet % EXPIRY_CHECK_EVERY == 0:
                    missing = missing + 1 if await self._exists(job_id) is False else 0
                    if missing >= 2:
                        feed.gone = True
                        feed.publish()
                        return
                continue
            quiet = missing = 0
            feed.frames.update((event.id, frame(event)) for event in batch)
            feed.events.extend(batch)
            after = batch[-1].id
            feed.publish()
            if batch[-1].event in TERMINAL_EVENTS:
                return

    async def _exists(self, job_id: str) -> bool | None:
        """Whether the job is in the store; None while the store is unreachable."""
        try:
            return await self._store.get_job(job_id) is not None
        except DependencyUnavailableError:
            return None
