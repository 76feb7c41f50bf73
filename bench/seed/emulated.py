"""The seed's Celery workers emulated with asyncio in one process: the fast variant.

No Redis, Celery or worker processes; ``celery_workers`` runs the real thing, and the
fixed-work benchmark shows both side by side (this variant is kept only where it agrees).
What it emulates, and from which source:

- **Broker**: one FIFO ``asyncio.Queue`` shared by all workers (Redis ``LPUSH``/``BRPOP``
  is FIFO and serves blocked consumers in order; a worker fetches one message per round
  trip, so a burst is spread over the workers waiting for one).
- **Worker** (one per replica), as ``celery.worker.consumer.Consumer`` and
  ``celery.worker.strategy.default`` do it:
  - *Prefetch*: a worker reserves messages while fewer than ``concurrency *
    prefetch_multiplier`` (Celery's default multiplier is 4) are reserved and not yet
    started; messages are acknowledged when a pool process starts them (Celery's default
    early ack), which frees room. Reserved tasks wait *in that worker* even when other
    workers are idle.
  - *Rate limit*: ``rate_limit='10/m'`` is enforced per worker process (the consumer holds
    one bucket per task type, ``TokenBucket(rate, capacity=1)``), so M workers allow
    M x 10 calls a minute in total, whatever the API's limit. ``_KombuTokenBucket`` is
    ``kombu.utils.limits.TokenBucket`` line for line (including its refill quirk: the
    timestamp only advances while the bucket is below capacity, so after an idle spell
    the first two tasks pass back to back), and ``_Worker._schedule_bucket`` is
    ``Consumer._schedule_bucket_request``: requests leave the bucket in FIFO order while
    tokens allow; the first refused goes back to the head and a timer fires after
    ``expected_time``. A rate of 0 means no limit (Celery creates no bucket then).
  - *Pool*: ``concurrency`` slots (prefork processes under ``-Ofair``, the default since
    Celery 4): a task admitted by the bucket waits for a free slot.
- **Retries**: ``Task.retry`` publishes a *new message* with an ETA (``countdown``) to the
  broker; whichever worker receives it holds it on a timer without counting it against
  prefetch (``qos.increment_eventually``), then passes it through its own bucket
  (``_limit_post_eta``). ``retries > max_retries`` raises ``MaxRetriesExceededError`` (the
  seed passes no ``exc=``), which fails the task and so the generation. Other API errors
  are not caught by the seed's task: the task fails at once.
- **Results**: callers await an ``asyncio.Future`` instead of polling the Redis result
  backend. Nobody revokes tasks: when a generation fails, its other tasks that are already
  queued still run (and still spend tokens), as Celery would run them; ``stats.orphaned``
  counts their results.

Why it should agree with the real workers on what is measured (latency, throughput, 429s,
tokens spent, failed generations under one simulated Claude budget): those are decided by the API
limits, the per-worker token buckets, prefetch, the 2 x M concurrency cap and the retry
schedule, all reproduced with Celery's semantics, while the parts left out (Redis round
trips and result polling, a few milliseconds; pickling; process start-up) are small
against agent calls that take seconds and a 6 s token refill. The web tier (gunicorn with
uvicorn workers) is async and never the limit in the seed's design, so it is one event
loop here; the Phase 1 per-IP limit (slowapi ``5/minute``) is left to the load generator.
Every upstream call, repair calls included, is a separate task through the workers; the
SDK client has ``max_retries=0`` because Celery does the retrying.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import anthropic
import httpx2

from agents.errors import ClaudeAPIError
from agents.prompting import Params
from agents.runner import MessageJSON
from bench.seed.base import TASK_NAME, SeedSettings, SeedTasks


class _KombuTokenBucket:
    """``kombu.utils.limits.TokenBucket`` with an injectable clock (same arithmetic)."""

    def __init__(self, fill_rate: float, clock: Callable[[], float], capacity: float = 1) -> None:
        self.capacity = float(capacity)
        self._tokens = float(capacity)
        self.fill_rate = float(fill_rate)
        self._clock = clock
        self.timestamp = clock()
        self.contents: deque[_Job] = deque()

    def can_consume(self, tokens: float = 1) -> bool:
        if tokens <= self._get_tokens():
            self._tokens -= tokens
            return True
        return False

    def expected_time(self, tokens: float = 1) -> float:
        available = self._get_tokens()
        tokens = max(tokens, available)
        return (tokens - available) / self.fill_rate

    def _get_tokens(self) -> float:
        # As kombu: the timestamp only moves while the bucket is below capacity.
        if self._tokens < self.capacity:
            now = self._clock()
            delta = self.fill_rate * (now - self.timestamp)
            self._tokens = min(self.capacity, self._tokens + delta)
            self.timestamp = now
        return self._tokens


@dataclass(eq=False)
class _Job:
    """One task message: the Messages request, its retry count and ETA, the caller's future."""

    params: Params
    future: asyncio.Future[MessageJSON]
    retries: int = 0
    eta: float | None = None
    task_id: str = field(default_factory=lambda: uuid.uuid4().hex)


class _Worker:
    """One ``celery worker --concurrency=N`` process: consumer, rate bucket and pool."""

    def __init__(self, index: int, owner: EmulatedCelery) -> None:
        self.index = index
        self.owner = owner
        settings = owner.settings
        self.loop = asyncio.get_running_loop()
        self.prefetch_limit = settings.concurrency * settings.prefetch_multiplier
        self.bucket = (
            _KombuTokenBucket(settings.rate_per_minute / 60.0, self.loop.time)
            if settings.rate_per_minute > 0
            else None
        )
        self.reserved = 0
        """Messages received and not yet started (in the bucket or waiting for a slot)."""
        self.room = asyncio.Event()
        self.room.set()
        self.ready: asyncio.Queue[_Job] = asyncio.Queue()
        self.timers: dict[_Job, asyncio.TimerHandle] = {}
        self.bucket_timer: asyncio.TimerHandle | None = None
        self.tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        name = f"seed-worker-{self.index}"
        self.tasks.append(asyncio.create_task(self._consume(), name=f"{name}-consumer"))
        for slot in range(self.owner.settings.concurrency):
            self.tasks.append(asyncio.create_task(self._slot(), name=f"{name}-pool-{slot}"))

    async def stop(self) -> None:
        for handle in self.timers.values():
            handle.cancel()
        if self.bucket_timer is not None:
            self.bucket_timer.cancel()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _consume(self) -> None:
        broker = self.owner.broker
        while True:
            while self.reserved >= self.prefetch_limit:
                self.room.clear()
                await self.room.wait()
            job = await broker.get()
            delay = 0.0 if job.eta is None else job.eta - self.loop.time()
            if delay > 0:
                # An ETA message is held on a timer and does not count against prefetch.
                self.timers[job] = self.loop.call_later(delay, self._eta_reached, job)
            else:
                self._reserve(job)
            # The next BRPOP is another round trip: workers blocked meanwhile are served
            # first, so a burst of messages is spread over the idle workers.
            await asyncio.sleep(0)

    def _eta_reached(self, job: _Job) -> None:
        self.timers.pop(job, None)
        self._reserve(job)

    def _reserve(self, job: _Job) -> None:
        self.reserved += 1
        if self.bucket is None:
            self.ready.put_nowait(job)
            return
        self.bucket.contents.append(job)
        self._schedule_bucket()

    def _schedule_bucket(self) -> None:
        """``Consumer._schedule_bucket_request``: drain in order while tokens allow."""
        bucket = self.bucket
        assert bucket is not None
        while bucket.contents:
            job = bucket.contents.popleft()
            if bucket.can_consume(1):
                self.ready.put_nowait(job)
                continue
            bucket.contents.appendleft(job)
            if self.bucket_timer is None:
                hold = bucket.expected_time(1)
                self.bucket_timer = self.loop.call_later(hold, self._bucket_timer_fired)
            break

    def _bucket_timer_fired(self) -> None:
        self.bucket_timer = None
        self._schedule_bucket()

    async def _slot(self) -> None:
        while True:
            job = await self.ready.get()
            # Early acknowledgement: the message leaves the worker's reserved set.
            self.reserved -= 1
            self.room.set()
            await self.owner._execute(job)


class EmulatedCelery(SeedTasks):
    """The seed's worker deployment in-process: broker queue, M workers, one SDK client."""

    def __init__(self, base_url: str, settings: SeedSettings, *, api_key: str = "sk-seed") -> None:
        super().__init__(settings)
        self._base_url = base_url
        self._api_key = api_key
        self._client: anthropic.AsyncAnthropic | None = None
        self._workers: list[_Worker] = []
        self._pending: set[asyncio.Future[MessageJSON]] = set()
        self.broker: asyncio.Queue[_Job] = asyncio.Queue()

    async def start(self) -> None:
        """Open the HTTP client and start the workers."""
        if self._workers:
            return
        self._client = anthropic.AsyncAnthropic(
            api_key=self._api_key,
            base_url=self._base_url,
            max_retries=0,
            http_client=httpx2.AsyncClient(limits=httpx2.Limits(max_connections=200)),
        )
        self.broker = asyncio.Queue()
        self._workers = [_Worker(i, self) for i in range(self.settings.workers)]
        for worker in self._workers:
            worker.start()

    async def stop(self) -> None:
        """Stop the workers; calls still waiting are cancelled."""
        workers, self._workers = self._workers, []
        await asyncio.gather(*(w.stop() for w in workers))
        for future in self._pending:
            future.cancel()
        self._pending.clear()
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def send(self, params: Params) -> MessageJSON:
        """One agent call as a Celery task: ``call_claude_agent.delay(...)`` and its result."""
        if not self._workers:
            raise RuntimeError("EmulatedCelery is not started")
        future: asyncio.Future[MessageJSON] = asyncio.get_running_loop().create_future()
        self._pending.add(future)
        future.add_done_callback(self._pending.discard)
        self._publish(_Job(params, future))
        return await future

    def _publish(self, job: _Job) -> None:
        self.stats.tasks_published += 1
        self.broker.put_nowait(job)

    async def _execute(self, job: _Job) -> None:
        """The task body: the seed's try/except around the API call."""
        assert self._client is not None
        self.stats.tasks_run += 1
        try:
            message = await self._client.messages.create(**job.params)
        except anthropic.RateLimitError as exc:
            self._on_rate_limited(job, exc)
            return
        except anthropic.APIStatusError as exc:
            self.stats.failed_other += 1
            self._fail(
                job,
                ClaudeAPIError(
                    f"{TASK_NAME}[{job.task_id}]: Claude API answered {exc.status_code}: "
                    f"{exc.message}",
                    upstream_status=exc.status_code,
                ),
            )
            return
        except anthropic.APIConnectionError as exc:
            self.stats.failed_other += 1
            self._fail(
                job,
                ClaudeAPIError(
                    f"{TASK_NAME}[{job.task_id}]: Claude API unreachable: {type(exc).__name__}",
                    upstream_status=None,
                ),
            )
            return
        except Exception as exc:  # a task that raises fails; the worker lives on
            self.stats.failed_other += 1
            self._fail(job, ClaudeAPIError(f"{TASK_NAME}[{job.task_id}]: {exc!r}"))
            return
        if job.future.done():
            self.stats.orphaned += 1
        else:
            job.future.set_result(message.model_dump(mode="json"))

    def _on_rate_limited(self, job: _Job, exc: anthropic.RateLimitError) -> None:
        """The seed's ``self.retry(countdown=2**retries * base)``, until max_retries."""
        self.stats.rate_limited += 1
        if job.retries + 1 > self.settings.max_retries:
            self.stats.failed_after_retries += 1
            self._fail(
                job,
                ClaudeAPIError(
                    f"{TASK_NAME}[{job.task_id}]: MaxRetriesExceededError after "
                    f"{job.retries} retries on anthropic.RateLimitError (429 rate limit): "
                    f"{exc.message}",
                    upstream_status=429,
                ),
            )
            return
        countdown = 2**job.retries * self.settings.backoff_base_s
        self.stats.retries += 1
        self._publish(
            _Job(
                job.params,
                job.future,
                job.retries + 1,
                asyncio.get_running_loop().time() + countdown,
                job.task_id,
            )
        )

    def _fail(self, job: _Job, error: Exception) -> None:
        if job.future.done():
            self.stats.orphaned += 1
        else:
            job.future.set_exception(error)
