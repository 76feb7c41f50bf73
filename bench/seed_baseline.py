"""The seed plan's Phase 2 architecture, reproduced in-process as a benchmark baseline.

The seed (``scaling-plan.md``) scales the service with Celery: every Claude agent call is a
task ``call_claude_agent`` (``max_retries=3, rate_limit='10/m'``) on a Redis broker,
consumed by ``replicas: 5`` worker pods started with ``--concurrency=2``; a 429 is retried
with ``self.retry(countdown=2 ** self.request.retries * 10)``; identical prompts on the
same page are answered from an md5 response cache; there is no prompt caching, no planner
(all nine agents run every time), no global budget and no fairness between users.

This module runs that design with asyncio in one process, with no real Redis, Celery or
gunicorn. What it emulates, and from which source:

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

Why this is faithful for what is measured (latency, throughput, 429s, tokens spent,
failed generations under one simulated Claude budget): those are decided by the API
limits, the per-worker token buckets, prefetch, the 2 x M concurrency cap and the retry
schedule, all reproduced with Celery's semantics, while the parts left out (Redis round
trips and result polling, a few milliseconds; pickling; process start-up) are small
against agent calls that take seconds and a 6 s token refill. The web tier (gunicorn with
uvicorn workers) is async and never the limit in the seed's design, so it is one event
loop here; the Phase 1 per-IP limit (slowapi ``5/minute``) is left to the load generator.
Every upstream call, repair calls included, is a separate task through the workers; the
SDK client has ``max_retries=0`` because Celery does the retrying.

The response cache is the seed's ``get_cache_key``: ``md5(f"{page_id}:{prompt}")``, kept
in memory. As in the seed it is not scoped by tenant (two tenants with the same page id
and prompt share an answer) and it ignores the page content (an edited page with the same
id and prompt gets the old answer). It is consulted before a generation and filled after
a successful one; concurrent identical requests are not merged.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

import anthropic
import httpx2

from agents.config import PipelineConfig
from agents.errors import ClaudeAPIError, PipelineError
from agents.page import Page
from agents.pipeline import GenerationRequest, Pipeline, StageEvent, make_plan
from agents.planner import GROUPS
from agents.prompting import Params
from agents.retrieval import CatalogIndex
from agents.runner import AgentRunner, MessageJSON
from agents.usage import CallUsage, UsageTotals

TASK_NAME = "call_claude_agent"
OnEvent = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True)
class SeedSettings:
    """The seed's knobs: ``replicas``, ``--concurrency``, ``rate_limit``, ``max_retries``."""

    workers: int = 5
    """Celery worker pods (``k8s/celery-worker.yaml``: ``replicas: 5``)."""
    concurrency: int = 2
    """Pool processes per worker (``--concurrency=2``)."""
    rate_per_minute: float = 10
    """Per-worker ``rate_limit`` of the task (``'10/m'``); 0 disables it."""
    max_retries: int = 3
    backoff_base_s: float = 10
    """``countdown = 2 ** retries * backoff_base_s``: 10, 20, 40 s."""
    prefetch_multiplier: int = 4
    """Celery's ``worker_prefetch_multiplier`` (default 4; the seed does not set it)."""

    def __post_init__(self) -> None:
        if self.workers < 1 or self.concurrency < 1 or self.prefetch_multiplier < 1:
            raise ValueError("workers, concurrency and prefetch_multiplier must be >= 1")
        if self.rate_per_minute < 0 or self.max_retries < 0 or self.backoff_base_s < 0:
            raise ValueError("rate_per_minute, max_retries and backoff_base_s must be >= 0")


@dataclass(frozen=True)
class SeedOutcome:
    """One generation as the seed answers it.

    ``usage`` sums the upstream calls this generation waited for and got answers to
    (priced): the whole bill on success, what was spent before the failure on failure,
    zero calls on a cache hit.
    """

    ok: bool
    cached: bool
    error: str | None
    usage: UsageTotals | None
    page: Page | None


@dataclass
class SeedStats:
    """Counters of the emulated Celery deployment."""

    tasks_published: int = 0
    """Messages sent to the broker, retries included."""
    tasks_run: int = 0
    """Task executions (each one upstream request)."""
    rate_limited: int = 0
    """429 answers seen."""
    retries: int = 0
    """Retries published after a 429."""
    failed_after_retries: int = 0
    """Tasks failed with MaxRetriesExceededError."""
    failed_other: int = 0
    """Tasks failed on another API error (not retried)."""
    orphaned: int = 0
    """Task results nobody waited for any more (their generation had failed)."""
    cache_hits: int = 0
    generations: int = 0
    generations_failed: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


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

    def __init__(self, index: int, owner: SeedBaseline) -> None:
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


class SeedBaseline:
    """The seed's Celery deployment in-process, running the nine-agent pipeline."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str = "sk-seed",
        settings: SeedSettings = SeedSettings(),
        catalog_index: CatalogIndex | None = None,
        config: PipelineConfig | None = None,
    ) -> None:
        self.settings = settings
        # The seed has no prompt caching, whatever models are configured.
        # The seed's agents each send their own prompt, with no prompt caching.
        self.config = (config or PipelineConfig()).model_copy(
            update={"prompt_caching": False, "prompt_layout": "per_agent"}
        )
        self.stats = SeedStats()
        self._base_url = base_url
        self._api_key = api_key
        self._client: anthropic.AsyncAnthropic | None = None
        self._cache: dict[str, dict[str, Any]] = {}
        self._workers: list[_Worker] = []
        self._pending: set[asyncio.Future[MessageJSON]] = set()
        self._index = catalog_index
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

    async def __aenter__(self) -> SeedBaseline:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @staticmethod
    def cache_key(page_id: str, prompt: str) -> str:
        """The seed's ``get_cache_key``: no tenant, no page content."""
        return hashlib.md5(f"{page_id}:{prompt}".encode()).hexdigest()

    async def send(self, params: Params) -> MessageJSON:
        """One agent call as a Celery task: ``call_claude_agent.delay(...)`` and its result."""
        if not self._workers:
            raise RuntimeError("SeedBaseline is not started")
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

    async def generate(
        self,
        page_id: str,
        instruction: str,
        page: Page | None,
        *,
        on_event: OnEvent | None = None,
    ) -> SeedOutcome:
        """One generation: the md5 cache, else all nine agents through the workers."""
        emit: OnEvent = on_event or (lambda event, data: None)
        self.stats.generations += 1
        request = GenerationRequest(page_id, instruction, page, groups=GROUPS)
        job_id = uuid.uuid4().hex
        key = self.cache_key(page_id, instruction)
        cached = self._cache.get(key)
        accepted = {"job_id": job_id, "deduplicated": False, "cached": cached is not None}
        if cached is not None:
            self.stats.cache_hits += 1
            emit("accepted", {**accepted, "plan": cached["plan"], "skipped": cached["skipped"]})
            emit("result", {**cached, "cached": True})
            page_out = Page.model_validate(cached["page"])
            return SeedOutcome(True, True, None, UsageTotals(), page_out)

        plan = make_plan(request)
        emit("accepted", {**accepted, "plan": list(plan.agents), "skipped": list(plan.skipped)})
        spent = UsageTotals()

        async def send(params: Params) -> MessageJSON:
            reply = await self.send(params)
            call = CallUsage.from_api(
                str(reply.get("model") or params["model"]), reply.get("usage", {})
            )
            spent.add(call, self.config.price_of(call.model))
            return reply

        def on_stage(event: StageEvent) -> None:
            emit("stage", event.to_data())

        runner = AgentRunner(self.config, send)
        pipeline = Pipeline(self.config, runner.run, catalog_index=self._index)
        try:
            result = await pipeline.run(request, plan=plan, on_event=on_stage)
        except PipelineError as exc:
            self.stats.generations_failed += 1
            emit("error", exc.to_json())
            return SeedOutcome(False, False, exc.message, spent, None)
        payload = result.to_json()
        self._cache[key] = payload
        emit("result", {**payload, "cached": False})
        return SeedOutcome(True, False, None, result.total, result.page)
