"""The Redis backend: state every replica shares and that outlives them.

Keys, all under the prefix: `job:<id>` (the record as JSON), `events:<id>` (a stream),
`fence:<id>` (who may write to the job, `holder_of` its record, written with it),
`jobs:live` (ids of unfinished jobs, so `stale_jobs` never scans the keyspace), `dedup:<key>`,
`rate:<key>` (GCRA's next-turn time), `cache:<ns>:<key>`, and leases under their own names
(`flight:<ns>:<key>`: the caller computing that value). Needs a standalone Redis 7.0 or
later (`SET NX GET`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import RedisError, WatchError
from redis.typing import XReadResponse

from serve_app.errors import StoreUnavailableError
from serve_app.store.base import (
    TERMINAL,
    CounterBound,
    Fence,
    JobFencedError,
    JobRecord,
    JobStatus,
    Store,
    StoredEvent,
    cache_key,
    claimable,
    claimed,
    ended,
    holder_of,
    is_stale,
    token,
    updated_job,
)

T = TypeVar("T")
_LEASE_POLL_S = 0.05
# Below the socket timeout, so that a long blocking read is never taken for a dead server.
_MAX_BLOCK_MS = 5_000
_SOCKET_TIMEOUT_S = 10.0
_MAX_CONNECTIONS = 2_000

_CREATE_JOB = """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX') then return 0 end
redis.call('SET', KEYS[3], ARGV[4])
if ARGV[2] == '1' then redis.call('SADD', KEYS[2], ARGV[3]) end
return 1
"""

# Event logs are streams: XREAD BLOCK waits for entries after an id in one atomic command, so a
# reader cannot miss an event between reading and subscribing (as it could with a list and
# pub/sub), and the log survives a restart. Ids are set here as `<n>-0` so that they are the
# SSE ids 1, 2, 3...; the script makes counting and adding one atomic step across replicas,
# and adds only while the writer's fence token matches the job's holder.
# Returns {id, ''}, {0, ''} for a missing job, or {-1, holder} for a fenced-off writer.
# Both writers of events start the same way: check the fence, then add the next entry.
_FENCED_XADD = """
local holder = redis.call('GET', KEYS[3])
if not holder then return {0, ''} end
if holder ~= ARGV[3] then return {-1, holder} end
local id = redis.call('XLEN', KEYS[2]) + 1
redis.call('XADD', KEYS[2], id .. '-0', 'event', ARGV[1], 'data', ARGV[2])
"""
_APPEND_EVENT = (
    _FENCED_XADD
    + """local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
return {id, ''}
"""
)

# The terminal event, the ended record and the fence in one step, then the job's expiry.
_END_JOB = (
    _FENCED_XADD
    + """redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[5])
redis.call('SET', KEYS[3], 'ended', 'PX', ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
redis.call('SREM', KEYS[4], ARGV[6])
return {id, ''}
"""
)

# GCRA on the server's clock, in microseconds, so that replicas' clocks never disagree.
# Returns {allowed, microseconds until the key's budget is whole again}.
_TAKE_TURN = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local window = tonumber(ARGV[1])
local turn = math.max(tonumber(redis.call('GET', KEYS[1]) or 0), now)
local after = turn + window / tonumber(ARGV[2])
if after - window > now then return {0, math.floor(turn - now)} end
redis.call('SET', KEYS[1], string.format('%.0f', after), 'PX', math.ceil((after - now) / 1000))
return {1, math.floor(after - now)}
"""

_DELETE_IF_EQUALS = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

_EXTEND_IF_EQUALS = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

# Single-flight's two steps. KEYS: the cache entry, the lease. Returns {1, value} when
# cached, else {0, taken}; the second caches the value before letting go of the lease.
_CACHE_GET_OR_LEASE = """
local value = redis.call('GET', KEYS[1])
if value then return {1, value} end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {0, '1'} end
return {0, ''}
"""

_CACHE_SET_RELEASE = """
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if redis.call('GET', KEYS[2]) == ARGV[3] then redis.call('DEL', KEYS[2]) end
return 1
"""

# ARGV: ttl in ms, ceiling ('' for none), the number of bounded fields, their names, then
# (field, delta) pairs. The bound is checked on the fields as they would be after adding.
_ADD_COUNTERS = """
local ttl, ceiling, bounded = ARGV[1], ARGV[2], tonumber(ARGV[3])
local first = 4 + bounded
if ceiling ~= '' then
  local total = 0
  for i = 4, first - 1 do
    total = total + tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '0')
    for j = first, #ARGV, 2 do
      if ARGV[j] == ARGV[i] then total = total + tonumber(ARGV[j + 1]) end
    end
  end
  if total > tonumber(ceiling) + 1e-9 then return 0 end
end
for j = first, #ARGV, 2 do redis.call('HINCRBYFLOAT', KEYS[1], ARGV[j], ARGV[j + 1]) end
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
"""


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


def _redacted(url: str) -> str:
    """The server's address without credentials or options, fit for messages."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path}"


def _event_id(job_id: str, reply: Any) -> int:
    """The id an append script answered, or the store's error for the job."""
    event_id, holder = int(reply[0]), str(reply[1])
    if event_id == 0:
        raise KeyError(job_id)
    if event_id < 0:
        raise JobFencedError(job_id, holder)
    return event_id


def _stored_events(reply: XReadResponse) -> list[StoredEvent]:
    # With legacy_responses (the default) XREAD answers RESP2's list shape whatever the protocol.
    return [
        StoredEvent(int(str(entry_id).split("-")[0]), fields["event"], json.loads(fields["data"]))
        for _stream, entries in cast(list[list[Any]], reply)
        for entry_id, fields in entries
    ]


class RedisStore(Store):
    """The store in Redis: shared by every replica, kept across their restarts."""

    def __init__(self, url: str, *, prefix: str = "nocode:") -> None:
        self._redis: Redis = Redis.from_url(
            url,
            decode_responses=True,
            socket_connect_timeout=2.0,
            socket_timeout=_SOCKET_TIMEOUT_S,
            # Every open SSE stream holds a connection while its read blocks; redis-py's default
            # of 100 would refuse the 101st. A `max_connections` in the URL overrides this.
            max_connections=_MAX_CONNECTIONS,
            # A few quick retries ride out a blip or a restart; past them the ingress says 503.
            retry=Retry(ExponentialWithJitterBackoff(cap=0.5, base=0.05), retries=3),
        )
        self._where = _redacted(url)
        self._prefix = prefix
        self._live = f"{prefix}jobs:live"
        self._create_job = self._redis.register_script(_CREATE_JOB)
        self._append_event = self._redis.register_script(_APPEND_EVENT)
        self._end_job = self._redis.register_script(_END_JOB)
        self._take_turn_script = self._redis.register_script(_TAKE_TURN)
        self._delete_if_equals = self._redis.register_script(_DELETE_IF_EQUALS)
        self._extend_if_equals = self._redis.register_script(_EXTEND_IF_EQUALS)
        self._add_counters = self._redis.register_script(_ADD_COUNTERS)
        self._cache_get_or_lease = self._redis.register_script(_CACHE_GET_OR_LEASE)
        self._cache_set_release = self._redis.register_script(_CACHE_SET_RELEASE)

    def _key(self, kind: str, name: str) -> str:
        return f"{self._prefix}{kind}:{name}"

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """Turn any Redis failure into `StoreUnavailableError`, naming no credentials."""
        try:
            yield
        except RedisError as exc:
            raise StoreUnavailableError(
                f"Redis at {self._where} is unavailable: {type(exc).__name__}: {exc}"
            ) from exc

    def _job_keys(self, job_id: str) -> list[str]:
        return [self._key("job", job_id), self._key("events", job_id), self._key("fence", job_id)]

    async def create_job(self, job: JobRecord) -> None:
        keys = [self._key("job", job.job_id), self._live, self._key("fence", job.job_id)]
        unfinished = "0" if job.status in TERMINAL else "1"
        args = [job.model_dump_json(), unfinished, job.job_id, holder_of(job)]
        with self._guard():
            created = await self._create_job(keys=keys, args=args)
        if not created:
            raise ValueError(f"job {job.job_id} already exists")

    async def get_job(self, job_id: str) -> JobRecord | None:
        with self._guard():
            raw = await self._redis.get(self._key("job", job_id))
        return None if raw is None else JobRecord.model_validate_json(raw)

    async def _transact(
        self, job_id: str, step: Callable[[Pipeline, JobRecord | None], Awaitable[T]]
    ) -> T:
        """``step(pipe, record)`` inside WATCH on the job's record, again if another replica
        wrote the record meanwhile: every read-check-write of a job is atomic."""
        key = self._key("job", job_id)
        with self._guard():
            async with self._redis.pipeline(transaction=True) as pipe:
                while True:
                    try:
                        await pipe.watch(key)
                        raw = await pipe.get(key)
                        job = None if raw is None else JobRecord.model_validate_json(raw)
                        return await step(pipe, job)
                    except WatchError:
                        continue

    async def _write(self, pipe: Pipeline, job: JobRecord) -> None:
        """Write the record, its fence and its place in the live index, in one MULTI."""
        pipe.multi()  # type: ignore[no-untyped-call]  # unannotated in redis-py
        pipe.set(self._key("job", job.job_id), job.model_dump_json(), keepttl=True)
        pipe.set(self._key("fence", job.job_id), holder_of(job), keepttl=True)
        if job.status in TERMINAL:
            pipe.srem(self._live, job.job_id)
        else:
            pipe.sadd(self._live, job.job_id)
        await pipe.execute()

    async def update_job(self, job_id: str, **fields: Any) -> JobRecord:
        async def step(pipe: Pipeline, job: JobRecord | None) -> JobRecord:
            if job is None:
                raise KeyError(job_id)
            job = updated_job(job, fields)
            await self._write(pipe, job)
            return job

        return await self._transact(job_id, step)

    async def claim_job(
        self, job_id: str, owner: str, *, stale_after_s: float | None
    ) -> JobRecord | None:
        async def step(pipe: Pipeline, job: JobRecord | None) -> JobRecord | None:
            now = time.time()
            if job is None or not claimable(job, stale_after_s, now):
                return None
            job = claimed(job, owner, now)
            await self._write(pipe, job)
            return job

        return await self._transact(job_id, step)

    async def renew_job(self, job_id: str, fence: Fence) -> bool:
        async def step(pipe: Pipeline, job: JobRecord | None) -> bool:
            if job is None:
                raise KeyError(job_id)
            if holder_of(job) != token(fence):
                return False
            await self._write(pipe, updated_job(job, {"heartbeat_at": time.time()}))
            return True

        return await self._transact(job_id, step)

    async def append_event(
        self, job_id: str, event: str, data: dict[str, Any], fence: Fence | None = None
    ) -> int:
        args = [event, json.dumps(data), token(fence)]
        with self._guard():
            reply = await self._append_event(keys=self._job_keys(job_id), args=args)
        return _event_id(job_id, reply)

    async def end_job(
        self,
        job_id: str,
        fence: Fence | None,
        status: JobStatus,
        event: str,
        data: dict[str, Any],
        ttl_s: float,
    ) -> int:
        keys = [*self._job_keys(job_id), self._live]

        async def step(pipe: Pipeline, job: JobRecord | None) -> int:
            if job is None:
                raise KeyError(job_id)
            record = ended(job, status, event, data)
            args = [event, json.dumps(data), token(fence)]
            args += [record.model_dump_json(), str(_ms(ttl_s)), job_id]
            pipe.multi()  # type: ignore[no-untyped-call]  # unannotated in redis-py
            await self._end_job(keys=keys, args=args, client=pipe)
            (reply,) = await pipe.execute()
            return _event_id(job_id, reply)

        return await self._transact(job_id, step)

    async def read_events(
        self, job_id: str, after: int = 0, *, block_s: float = 0.0
    ) -> list[StoredEvent]:
        streams: dict[Any, Any] = {self._key("events", job_id): f"{max(after, 0)}-0"}
        deadline = time.monotonic() + block_s
        with self._guard():
            while True:
                block_ms = min(int((deadline - time.monotonic()) * 1000), _MAX_BLOCK_MS)
                reply = await self._redis.xread(streams, block=block_ms if block_ms > 0 else None)
                events = _stored_events(reply)
                if events or block_ms <= 0:
                    return events

    async def claim_dedup(self, key: str, job_id: str, ttl_s: float) -> str | None:
        with self._guard():
            bound = await self._redis.set(
                self._key("dedup", key), job_id, nx=True, get=True, px=_ms(ttl_s)
            )
        return None if bound is None else str(bound)

    async def release_dedup(self, key: str, job_id: str) -> None:
        with self._guard():
            await self._delete_if_equals(keys=[self._key("dedup", key)], args=[job_id])

    async def take_turn(self, key: str, limit: int, window_s: float) -> tuple[bool, float]:
        window_us = round(window_s * 1_000_000)
        with self._guard():
            allowed, backlog_us = await self._take_turn_script(
                keys=[self._key("rate", key)], args=[window_us, limit]
            )
        return bool(allowed), int(backlog_us) / 1_000_000

    async def cache_get(self, namespace: str, key: str) -> dict[str, Any] | None:
        with self._guard():
            raw = await self._redis.get(self._key("cache", cache_key(namespace, key)))
        if raw is None:
            return None
        value: dict[str, Any] = json.loads(raw)
        return value

    async def cache_set(
        self, namespace: str, key: str, value: dict[str, Any], ttl_s: float
    ) -> None:
        payload = json.dumps(value)
        with self._guard():
            await self._redis.set(
                self._key("cache", cache_key(namespace, key)), payload, px=_ms(ttl_s)
            )

    async def add_counters(
        self,
        key: str,
        deltas: dict[str, float],
        ttl_s: float,
        bound: CounterBound | None = None,
    ) -> bool:
        fields = list(bound.fields) if bound else []
        ceiling = repr(bound.ceiling) if bound else ""
        pairs = [item for name, delta in deltas.items() for item in (name, repr(float(delta)))]
        with self._guard():
            added = await self._add_counters(
                keys=[self._key("counter", key)],
                args=[_ms(ttl_s), ceiling, len(fields), *fields, *pairs],
            )
        return bool(added)

    async def read_counters(self, key: str) -> dict[str, float]:
        with self._guard():
            raw = await self._redis.hgetall(self._key("counter", key))
        return {str(name): float(value) for name, value in raw.items()}

    async def acquire_lease(self, name: str, token: str, ttl_s: float) -> bool:
        with self._guard():
            return bool(await self._redis.set(self._prefix + name, token, nx=True, px=_ms(ttl_s)))

    async def renew_lease(self, name: str, token: str, ttl_s: float) -> bool:
        with self._guard():
            return bool(
                await self._extend_if_equals(keys=[self._prefix + name], args=[token, _ms(ttl_s)])
            )

    async def release_lease(self, name: str, token: str) -> None:
        with self._guard():
            await self._delete_if_equals(keys=[self._prefix + name], args=[token])

    async def cache_get_or_lease(
        self, namespace: str, key: str, name: str, token: str, ttl_s: float
    ) -> tuple[dict[str, Any] | None, bool]:
        keys = [self._key("cache", cache_key(namespace, key)), self._prefix + name]
        with self._guard():
            cached, payload = await self._cache_get_or_lease(keys=keys, args=[token, _ms(ttl_s)])
        if int(cached):
            value: dict[str, Any] = json.loads(payload)
            return value, False
        return None, bool(payload)

    async def cache_set_release(
        self, namespace: str, key: str, value: dict[str, Any], ttl_s: float, name: str, token: str
    ) -> None:
        keys = [self._key("cache", cache_key(namespace, key)), self._prefix + name]
        with self._guard():
            await self._cache_set_release(keys=keys, args=[json.dumps(value), _ms(ttl_s), token])

    async def wait_lease(self, name: str, timeout_s: float) -> None:
        # Polling rather than pub/sub: it also notices a dead holder's lease running out.
        await asyncio.sleep(min(_LEASE_POLL_S, timeout_s))

    async def stale_jobs(self, older_than_s: float) -> list[JobRecord]:
        cutoff = time.time() - older_than_s
        with self._guard():
            ids = sorted(str(job_id) for job_id in await self._redis.smembers(self._live))
            if not ids:
                return []
            raws = await self._redis.mget([self._key("job", job_id) for job_id in ids])
            gone = [job_id for job_id, raw in zip(ids, raws, strict=True) if raw is None]
            if gone:
                await self._redis.srem(self._live, *gone)
        jobs = [JobRecord.model_validate_json(raw) for raw in raws if raw is not None]
        return sorted((job for job in jobs if is_stale(job, cutoff)), key=lambda j: j.created_at)

    async def expire_job(self, job_id: str, ttl_s: float) -> None:
        with self._guard():
            async with self._redis.pipeline(transaction=True) as pipe:
                for key in self._job_keys(job_id):
                    pipe.pexpire(key, _ms(ttl_s))
                await pipe.execute()

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except RedisError:
            return False

    async def close(self) -> None:
        await self._redis.aclose()
