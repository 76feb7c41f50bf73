"""EventFeeds: many streams of one job share one store reader."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import pytest

from serve_app.errors import StoreUnavailableError
from serve_app.event_feed import EventFeeds
from serve_app.store import JobRecord, StoredEvent
from serve_app.store.memory import MemoryStore


class CountingStore(MemoryStore):
    """The memory store, counting reads so a test can see how many readers there are."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0
        self.lookups: Counter[str] = Counter()

    async def get_job(self, job_id: str) -> JobRecord | None:
        self.lookups[job_id] += 1
        return await super().get_job(job_id)

    async def read_events(
        self, job_id: str, after: int = 0, *, block_s: float = 0.0
    ) -> list[StoredEvent]:
        self.reads += 1
        return await super().read_events(job_id, after, block_s=block_s)


async def collect(feeds: EventFeeds, job_id: str, after: int = 0) -> list[tuple[int, str]]:
    seen: list[tuple[int, str]] = []
    async for batch in feeds.follow(job_id, after, idle_s=0.05):
        seen += [(e.id, e.event) for e in batch]
    return seen


async def job(store: MemoryStore, job_id: str) -> None:
    now = time.time()
    record = JobRecord(
        job_id=job_id,
        tenant="t",
        user_id="u",
        page_id="p",
        request={},
        created_at=now,
        updated_at=now,
    )
    await store.create_job(record)


async def test_many_streams_one_reader_each_sees_every_event_in_order() -> None:
    store = CountingStore()
    await job(store, "j1")
    feeds = EventFeeds(store, block_s=0.2)
    streams = [asyncio.create_task(collect(feeds, "j1")) for _ in range(200)]
    late = asyncio.create_task(collect(feeds, "j1", after=2))
    for kind in ("accepted", "stage", "stage", "stage"):
        await store.append_event("j1", kind, {})
        await asyncio.sleep(0.03)
    await store.append_event("j1", "result", {})
    results = await asyncio.gather(*streams)
    expected = [(1, "accepted"), (2, "stage"), (3, "stage"), (4, "stage"), (5, "result")]
    assert all(seen == expected for seen in results)
    assert await late == expected[2:]
    # One reader for 201 streams: a handful of long-polls, not one per stream.
    assert store.reads < 20


async def test_idle_streams_get_empty_batches_for_pings() -> None:
    store = MemoryStore()
    await job(store, "j2")
    feeds = EventFeeds(store, block_s=0.5)
    batches: list[Any] = []

    async def follow() -> None:
        async for batch in feeds.follow("j2", 0, idle_s=0.05):
            batches.append(batch)
            if len(batches) == 3:
                return

    await asyncio.wait_for(follow(), 2)
    assert batches == [[], [], []]


async def test_a_stream_that_joins_after_the_end_replays_and_stops() -> None:
    store = MemoryStore()
    await job(store, "j3")
    await store.append_event("j3", "accepted", {})
    await store.append_event("j3", "error", {"type": "cancelled"})
    feeds = EventFeeds(store, block_s=0.1)
    assert await asyncio.wait_for(collect(feeds, "j3"), 2) == [(1, "accepted"), (2, "error")]


async def test_an_unreachable_store_is_waited_out_with_pings_meanwhile() -> None:
    class FlakyStore(MemoryStore):
        """Unreachable for its first three reads, then itself again."""

        def __init__(self) -> None:
            super().__init__()
            self.failures = 0

        async def read_events(
            self, job_id: str, after: int = 0, *, block_s: float = 0.0
        ) -> list[StoredEvent]:
            if self.failures < 3:
                self.failures += 1
                raise StoreUnavailableError("store down")
            return await super().read_events(job_id, after, block_s=block_s)

    store = FlakyStore()
    await job(store, "j4")
    await store.append_event("j4", "accepted", {})
    await store.append_event("j4", "result", {})
    feeds = EventFeeds(store, block_s=0.1)
    batches = [batch async for batch in feeds.follow("j4", 0, idle_s=0.05)]
    assert store.failures == 3
    assert [] in batches, "the stream kept its pings while the store was down"
    assert [e.event for batch in batches for e in batch] == ["accepted", "result"]


async def test_any_other_store_failure_reaches_every_stream() -> None:
    class BrokenStore(MemoryStore):
        async def read_events(
            self, job_id: str, after: int = 0, *, block_s: float = 0.0
        ) -> list[StoredEvent]:
            raise RuntimeError("a bug in the store")

    feeds = EventFeeds(BrokenStore(), block_s=0.1)
    outcomes = await asyncio.gather(
        *(collect(feeds, "j5") for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(o, RuntimeError) for o in outcomes)
    with pytest.raises(RuntimeError, match="a bug"):
        await collect(feeds, "j5")


async def test_one_ticker_pings_every_idle_stream_of_every_job() -> None:
    store = MemoryStore()
    for n in range(20):
        await job(store, f"idle{n}")
    feeds = EventFeeds(store, block_s=0.5)
    pings: dict[int, int] = {}

    async def follow(n: int) -> None:
        async for batch in feeds.follow(f"idle{n % 20}", 0, idle_s=0.05):
            assert batch == []
            pings[n] = pings.get(n, 0) + 1
            if pings[n] == 3:
                return

    before = asyncio.all_tasks()  # an earlier test's ticker may still be ending
    streams = [asyncio.create_task(follow(n)) for n in range(300)]
    await asyncio.sleep(0.01)
    # 300 streams, 20 readers, one ticker: no timer task per stream.
    assert len(asyncio.all_tasks() - before) == 300 + 20 + 1
    await asyncio.wait_for(asyncio.gather(*streams), 5)
    assert pings == dict.fromkeys(range(300), 3)


async def test_every_stream_of_a_job_gets_the_same_encoded_frame() -> None:
    store = MemoryStore()
    await job(store, "shared")
    feeds = EventFeeds(store, block_s=0.2)
    frames: list[list[bytes]] = [[], []]

    async def follow(n: int) -> None:
        async for batch in feeds.follow("shared", 0, idle_s=1.0):
            frames[n] += [feeds.encoded("shared", event) for event in batch]

    streams = [asyncio.create_task(follow(n)) for n in range(2)]
    await asyncio.sleep(0.01)
    await store.append_event("shared", "stage", {"agent": "layout", "text": "é"})
    await store.append_event("shared", "result", {"page": {}})
    await asyncio.wait_for(asyncio.gather(*streams), 2)
    assert frames[0][0] == b'id: 1\nevent: stage\ndata: {"agent": "layout", "text": "\\u00e9"}\n\n'
    # Encoded once: both streams write the very same bytes object.
    assert all(a is b for a, b in zip(frames[0], frames[1], strict=True))


async def test_streams_of_a_job_gone_from_the_store_end_after_one_check_per_job() -> None:
    store = CountingStore()
    await job(store, "kept")
    feeds = EventFeeds(store, block_s=0.01)
    pings = {"kept": 0}

    async def kept() -> None:
        async for _ in feeds.follow("kept", 0, idle_s=0.01):
            pings["kept"] += 1

    still = asyncio.create_task(kept())
    # "lost" is not in the store (it expired, or the store came back empty without it).
    gone = [asyncio.create_task(collect(feeds, "lost")) for _ in range(100)]
    assert await asyncio.wait_for(asyncio.gather(*gone), 5) == [[]] * 100
    # Missing at two checks in a row, asked by the job's one reader, not by each stream.
    assert store.lookups["lost"] == 2
    # A job still in the store keeps its streams.
    await asyncio.sleep(0.1)
    assert not still.done()
    assert pings["kept"] > 0
    still.cancel()
