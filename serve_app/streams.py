"""A job's events as a Server-Sent Events stream, and the reply that starts one.

Events come from the replica's shared feed of the job (``event_feed``), with ``: ping``
comments while idle; the stream ends after ``result`` or ``error``. Once it has started,
a failure (the store unreachable) travels inside it as a typed ``error`` event. A client
that goes away simply stops the generator: the job runs on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from fastapi.responses import JSONResponse, Response, StreamingResponse

from serve_app.errors import StoreUnavailableError
from serve_app.event_feed import EventFeeds, frame
from serve_app.job_log import stamped
from serve_app.store import JobRecord, StoredEvent

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def accepted_event(job: JobRecord, *, deduplicated: bool, cached: bool) -> dict[str, Any]:
    """The data of a job's ``accepted`` event."""
    return stamped(
        {
            "job_id": job.job_id,
            "plan": job.plan,
            "skipped": job.skipped,
            "confidence": job.confidence,
            "deduplicated": deduplicated,
            "cached": cached,
        }
    )


class JobStreams:
    """This replica's SSE streams of jobs."""

    def __init__(self, feeds: EventFeeds, ping_interval_s: float) -> None:
        self._feeds = feeds
        self._ping_interval_s = ping_interval_s

    def reply(
        self,
        job: JobRecord,
        stream: bool,
        *,
        deduplicated: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """A stream of ``job`` from its start, or ``202`` with where to find it."""
        if not stream:
            return JSONResponse(
                {
                    "job_id": job.job_id,
                    "status_url": f"/v1/jobs/{job.job_id}",
                    "events_url": f"/v1/jobs/{job.job_id}/events",
                    "deduplicated": deduplicated,
                },
                status_code=202,
                headers=dict(headers or {}),
            )
        # An attached client gets its own `accepted`, saying so, in place of the job's first.
        first = None
        if deduplicated:
            first = StoredEvent(1, "accepted", accepted_event(job, deduplicated=True, cached=False))
        return self.response(job.job_id, 1 if first else 0, first, headers)

    def response(
        self,
        job_id: str,
        after: int,
        first: StoredEvent | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> StreamingResponse:
        """The SSE reply of ``job_id``'s events after ``after``."""
        return StreamingResponse(
            self.events(job_id, after, first),
            media_type="text/event-stream",
            headers={**SSE_HEADERS, **dict(headers or {})},
        )

    async def events(
        self, job_id: str, after: int, first: StoredEvent | None = None
    ) -> AsyncIterator[bytes]:
        """A job's events after ``after``, with pings while idle; ends at result or error,
        or when the job has expired from the store."""
        if first is not None:
            yield frame(first)
        try:
            async for batch in self._feeds.follow(job_id, after, self._ping_interval_s):
                if batch:  # one write per batch, of frames encoded once for all streams
                    yield b"".join(self._feeds.encoded(job_id, event) for event in batch)
                    after = batch[-1].id
                    continue
                yield b": ping\n\n"
        except StoreUnavailableError as exc:
            yield frame(StoredEvent(after, "error", exc.to_json()))
