"""One generic agent deployment, bound once per agent: calls Claude under the global budget.

Each replica holds an ``AsyncAnthropic`` with ``max_retries=0``: the gateway decides
retries. Every upstream call acquires budget first (from the replica's lease while its pool
is uncontended, else from the keeper): the input after the prompt prefixes
known to be cached, ``max_tokens`` right-sized from this agent's answers (an answer cut
short is asked again in full). It then settles, in the same round trip to the keeper, with
the usage the API reported and the API's rate-limit headers, and on a 429 pauses the pool
for every replica. 429, 529, 5xx, timeouts and dropped connections are retried
with jittered backoff, each attempt through the budget again. A validated answer is
cached for its tenant (an answer that failed validation never is), and identical tasks in
flight share one run.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextvars import ContextVar
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, NoReturn

import anthropic
import httpx2

from agents.errors import ClaudeAPIError
from agents.prompting import Params, build_request
from agents.runner import AgentOutcome, AgentRunner, MessageJSON
from agents.specs import SPEC_BY_NAME, path_after
from serve_app.call_demand import CallDemand
from serve_app.config import Env, GatewayArgs, read_env
from serve_app.error_tracking import configure_error_tracking
from serve_app.errors import StoreUnavailableError
from serve_app.keeper_client import KeeperClient, keeper_client
from serve_app.logs import configure_logs
from serve_app.metrics import metrics
from serve_app.prompt_cache import PromptShape, prompt_shape
from serve_app.replica_budget import ReplicaBudget
from serve_app.store import Store, open_store

log = logging.getLogger("nocode.agents")

RETRYABLE = {408, 409, 429, 500, 502, 503, 504, 529}
AGENT_CACHE = "agent-call"
ANSWER_GRACE_S = 0.05
"""How long a streamed call's bookkeeping waits for its answer to be taken, at most."""


@dataclass(frozen=True)
class CallMeta:
    """Who a call is for: the budget's fairness and the caches' tenant scope need it."""

    job_id: str
    tenant: str
    user: str
    priority: Literal["interactive", "batch"] = "interactive"
    deadline: float = 0.0
    """Unix time after which waiting for budget is pointless."""
    admitted_at: float = 0.0
    """Unix time the job was admitted: the budget serves older jobs of a tenant first."""


def upstream_client(args: GatewayArgs, env: Env) -> anthropic.AsyncAnthropic:
    """The SDK client: the configured URL, the real API with a key, else the simulator."""
    key = env.anthropic_api_key.get_secret_value() if env.anthropic_api_key else None
    base_url = args.upstream.base_url or env.anthropic_base_url
    if key is None and base_url is None:
        base_url = args.upstream.simulator_url
    http = httpx2.AsyncClient(
        limits=httpx2.Limits(max_connections=2000, max_keepalive_connections=200),
        timeout=args.upstream.timeout_s,
    )
    return anthropic.AsyncAnthropic(
        api_key=key or "sk-local-simulator", base_url=base_url, max_retries=0, http_client=http
    )


class AgentReplica:
    """A replica of one agent's pool."""

    def __init__(
        self,
        agent: str,
        args_json: str,
        *,
        client: anthropic.AsyncAnthropic | None = None,
        store: Store | None = None,
        keeper: KeeperClient | None = None,
    ) -> None:
        if agent not in SPEC_BY_NAME:
            raise ValueError(f"unknown agent {agent!r}")
        self.agent = agent
        self.args = GatewayArgs.model_validate_json(args_json)
        configure_logs(self.args.log_format)
        env = read_env()
        configure_error_tracking(env.sentry_dsn, env.sentry_environment)
        redis_url = env.redis_url.get_secret_value() if env.redis_url else None
        self._client = client or upstream_client(self.args, env)
        self._keeper = keeper or keeper_client(self.args, redis_url)
        self._store = store or open_store(redis_url, scope="cluster")
        self._background: set[asyncio.Future[None]] = set()
        self._budget = ReplicaBudget(self._keeper, self._in_background)

    async def ping(self) -> str:
        """Readiness: this replica answers."""
        return self.agent

    async def run(self, task: Any, meta: CallMeta) -> AgentOutcome:
        """The agent's validated answer to ``task`` (an ``AgentTask``), from the tenant's
        cache when the same task was answered before.

        Only what the runner accepted is cached, so a retry after a failed validation
        calls Claude again instead of meeting the same failure. The first request's budget
        is asked for while the cache is looked up, so that a miss waits for one round trip
        rather than two; a hit gives the grant back.
        """
        ttl = self.args.upstream.agent_cache_ttl_s
        if ttl <= 0:
            runner = AgentRunner(self.args.pipeline, partial(self._upstream, meta, None))
            return await runner.run(task)

        params = build_request(SPEC_BY_NAME[self.agent], task, self.args.pipeline)
        shape = prompt_shape(params)
        early = self._ask_early(meta, params, shape)
        runner = AgentRunner(self.args.pipeline, partial(self._upstream, meta, early))

        async def compute() -> dict[str, Any]:
            return (await runner.run(task, params)).to_json()

        try:
            value, fresh = await self._store.single_flight(
                AGENT_CACHE,
                f"{meta.tenant}:{shape.identity}",
                compute,
                ttl_s=ttl,
                wait_s=self.args.ingress.stage_timeout_s,
                background=self._in_background,
            )
        except StoreUnavailableError as exc:
            # The cache only saves calls: without the store the call is made uncached.
            context = {"job_id": meta.job_id, "tenant": meta.tenant, "agent": self.agent}
            log.warning("agent-call cache unavailable, answering uncached: %s", exc, extra=context)
            value, fresh = await compute(), True
        finally:
            self._give_back(early)
        outcome = AgentOutcome.from_json(value)
        metrics().cache_lookups.inc(tags={"cache": "agent_call"})
        if fresh:
            return outcome
        # Answered without an upstream call: nothing was spent on this one.
        metrics().cache_hits.inc(tags={"cache": "agent_call"})
        return dataclasses.replace(outcome, calls=(), duration_s=0.0)

    def _ask_early(self, meta: CallMeta, params: Params, shape: PromptShape) -> _EarlyGrant:
        demand = self._demand(meta, params, full_output=False, shape=shape)
        asked = self._budget.acquire(demand, self._wait_s(meta.deadline))
        return _EarlyGrant(params, demand, asyncio.ensure_future(asked))

    def _give_back(self, early: _EarlyGrant) -> None:
        """Return a grant asked for early that no request used (a hit, a shared flight)."""
        if early.used:
            return
        if not early.granted.done():
            early.granted.cancel()  # the keeper's client refunds a grant made meanwhile
        elif not early.granted.cancelled() and early.granted.exception() is None:
            self._in_background(self._budget.release(early.demand.call_id, early.demand.pool))

    async def run_beating(self, task: Any, meta: CallMeta) -> AsyncIterator[AgentOutcome | None]:
        """``run``, streamed: ``None`` every ``beat_s`` while it works, then the outcome.

        Serve does not fail a call whose replica was killed: it hangs. The beats let the
        caller tell a dead replica from a slow call within seconds and retry elsewhere.
        What the answer leaves to do (settling, keeping it in the cache) starts once it
        has been handed to Serve (or ``ANSWER_GRACE_S`` after it was ready), so that it
        does not delay the answer on this loop.
        """
        after = _AfterAnswer(self._start)
        token = _AFTER_ANSWER.set(after)
        try:
            work = asyncio.ensure_future(self.run(task, meta))  # runs with ``after`` set
        finally:
            _AFTER_ANSWER.reset(token)
        # Should nobody take the answer nor close the stream, what it left still runs.
        loop = asyncio.get_running_loop()
        work.add_done_callback(lambda _: loop.call_later(ANSWER_GRACE_S, after.close))
        try:
            while True:
                done, _ = await asyncio.wait({work}, timeout=self.args.ingress.replica_beat_s)
                if done:
                    yield work.result()
                    return
                yield None
        finally:
            work.cancel()
            after.close()

    async def _upstream(
        self, meta: CallMeta, early: _EarlyGrant | None, params: Params
    ) -> MessageJSON:
        """One logical call: budget, send, settle; retried on what retrying can fix."""
        attempts = self.args.upstream.max_attempts
        last_error = "no attempt made"
        full_output = False
        cut: list[dict[str, int]] = []  # what answers cut short by the bound were billed
        for attempt in range(1, attempts + 1):
            granted: Awaitable[int] | None = None
            if early is not None and not early.used and early.params is params:
                early.used = True
                demand, granted = early.demand, early.granted
            else:
                demand = self._demand(meta, params, full_output)
            try:
                answer, spent = await self._attempt(demand, params, meta.deadline, granted)
            except _RetryableError as exc:
                last_error = str(exc)
                await asyncio.sleep(_backoff(attempt))
                continue
            if answer is not None:
                return _billed(answer, cut)
            # The learned bound was too short for this answer: ask again in full, at once.
            cut.append(spent)
            full_output = True
        raise ClaudeAPIError(
            f"{self.agent}: gave up after {attempts} attempts: {last_error}", upstream_status=None
        )

    def _demand(
        self, meta: CallMeta, params: Params, full_output: bool, shape: PromptShape | None = None
    ) -> CallDemand:
        shape = shape or prompt_shape(params)
        return CallDemand(
            f"{meta.job_id}:{self.agent}:{uuid.uuid4().hex[:12]}",
            self.args.pool_of(params["model"]),
            shape.total,
            params["max_tokens"],
            user=f"{meta.tenant}/{meta.user}",
            job_id=meta.job_id,
            priority=meta.priority,
            tag=self.agent,
            full_output=full_output,
            shape=shape,
            tenant=meta.tenant,
            job_admitted_at=meta.admitted_at,
            path_after=path_after(self.agent),
        )

    def _wait_s(self, deadline: float) -> float:
        """How long a call may wait for budget: the configured bound, or less near the
        job's deadline."""
        wait = self.args.budget.max_wait_s
        if deadline:
            wait = max(1.0, min(wait, deadline - time.time()))
        return wait

    async def _attempt(
        self,
        demand: CallDemand,
        params: Params,
        deadline: float,
        asked: Awaitable[int] | None = None,
    ) -> tuple[MessageJSON | None, dict[str, int]]:
        """One upstream attempt under budget (``asked``: its grant, already asked for):
        the answer (None when the bound cut it) and the usage the API reported."""
        after = _AFTER_ANSWER.get()
        if after is not None:
            after.flush()  # what earlier attempts left goes before this one is sent
        waited = time.monotonic()
        granted = await (asked or self._budget.acquire(demand, self._wait_s(deadline)))
        metrics().budget_wait.observe(time.monotonic() - waited, tags={"pool": demand.pool})
        try:
            raw = await self._client.messages.with_raw_response.create(
                **{**params, "max_tokens": granted}
            )
            message = await raw.parse()
        except anthropic.APIStatusError as exc:
            # An error reply is not billed; its rate-limit headers still tell the truth.
            await self._budget.release(
                demand.call_id, demand.pool, _rate_headers(exc.response.headers)
            )
            await self._refused(demand, params["model"], exc)
        except (anthropic.APIConnectionError, httpx2.TransportError) as exc:
            # Timed out or dropped: the API may have counted it, so it stays charged.
            await self._budget.charge(demand.call_id)
            raise _RetryableError(f"Claude API unreachable: {type(exc).__name__}") from None
        except BaseException:
            # Cancelled mid-call, or an answer that could not be read: charged, in the
            # background if this task is being cancelled.
            self._in_background(self._budget.charge(demand.call_id))
            raise
        usage = message.usage
        truncated = message.stop_reason == "max_tokens" and granted < params["max_tokens"]
        spent = {
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "cache_creation_input_tokens": usage.cache_creation_input_tokens or 0,
            "cache_read_input_tokens": usage.cache_read_input_tokens or 0,
        }
        # Not awaited: the answer need not wait for the keeper to note it. Until the keeper
        # has, the call's whole reservation stays charged, which errs on the safe side.
        self._in_background(
            self._budget.settle(
                demand.call_id, spent, truncated, demand.pool, _rate_headers(raw.headers)
            )
        )
        self._count(params["model"], spent)
        if truncated:
            return None, spent
        answer: MessageJSON = json.loads(message.model_dump_json())
        return answer, spent

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` to its end even if the caller is cancelled meanwhile; inside a
        streamed call, once its answer is out (or the next attempt goes)."""
        after = _AFTER_ANSWER.get()
        if after is None:
            self._start(work)
        else:
            after.add(work)

    def _start(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _refused(
        self, demand: CallDemand, model: str, exc: anthropic.APIStatusError
    ) -> NoReturn:
        """The API answered an error: pause the pool on 429, then retry or give up."""
        metrics().upstream_errors.inc(tags={"model": model, "status": str(exc.status_code)})
        error = f"Claude API answered {exc.status_code}: {exc.message}"
        context = {
            "job_id": demand.job_id,
            "call_id": demand.call_id,
            "tenant": demand.tenant,
            "agent": self.agent,
        }
        log.warning("Claude API answered %s to %s", exc.status_code, model, extra=context)
        if exc.status_code == 429:
            await self._budget.pause(demand.pool, _retry_after(exc.response.headers))
        if exc.status_code not in RETRYABLE:
            raise ClaudeAPIError(error, upstream_status=exc.status_code) from None
        raise _RetryableError(error) from None

    def _count(self, model: str, spent: dict[str, int]) -> None:
        recorder = metrics()
        recorder.agent_calls.inc(tags={"agent": self.agent, "outcome": "answered"})
        for kind, key in (
            ("input", "input_tokens"),
            ("output", "output_tokens"),
            ("cache_write", "cache_creation_input_tokens"),
            ("cache_read", "cache_read_input_tokens"),
        ):
            if spent[key]:
                recorder.tokens.inc(spent[key], tags={"model": model, "kind": kind})


@dataclass
class _EarlyGrant:
    """Budget for a call's first request, asked for before the cache said it is needed."""

    params: Params
    demand: CallDemand
    granted: asyncio.Future[int]
    used: bool = False


class _AfterAnswer:
    """Background work a streamed call leaves, held until its answer is out."""

    def __init__(self, start: Callable[[Coroutine[Any, Any, None]], None]) -> None:
        self._start = start
        self._held: list[Coroutine[Any, Any, None]] = []
        self._open = True

    def add(self, work: Coroutine[Any, Any, None]) -> None:
        if self._open:
            self._held.append(work)
        else:
            self._start(work)

    def flush(self) -> None:
        held, self._held = self._held, []
        for work in held:
            self._start(work)

    def close(self) -> None:
        """Start what is held, and from now on whatever comes (a cancelled call's charge)."""
        self._open = False
        self.flush()


_AFTER_ANSWER: ContextVar[_AfterAnswer | None] = ContextVar("after_answer", default=None)
"""The streamed call this task works for, if any."""


class _RetryableError(Exception):
    """An attempt failed in a way another attempt may fix (429, 529, 5xx, a lost connection)."""


def _billed(answer: MessageJSON, cut: list[dict[str, int]]) -> MessageJSON:
    """``answer`` with the usage of the attempts cut short before it added in, and the
    requests it took: they were billed, so the stage's and the result's tokens, cost and
    calls include them."""
    if not cut:
        return answer
    usage = dict(answer.get("usage") or {})
    for spent in cut:
        for field, tokens in spent.items():
            usage[field] = (usage.get(field) or 0) + tokens
    usage["requests"] = 1 + len(cut)
    return {**answer, "usage": usage}


def _rate_headers(headers: Any) -> dict[str, str]:
    """The API's rate-limit headers, which the keeper reads to correct its buckets."""
    return {
        k.lower(): v for k, v in headers.items() if k.lower().startswith("anthropic-ratelimit-")
    }


def _retry_after(headers: Any) -> float:
    try:
        return max(1.0, float(headers.get("retry-after", "5")))
    except ValueError:
        return 5.0


def _backoff(attempt: int) -> float:
    """Full jitter: spreads retries so replicas do not come back in step."""
    return float(random.uniform(0, min(8.0, 0.5 * 2**attempt)))
