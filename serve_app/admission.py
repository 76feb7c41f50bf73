"""Admission: what happens to a generate request before any Claude budget is spent on it.

In order: an identical request in flight is attached to the running job (dedup); a repeat
is answered from the tenant's result cache; the user's rate limit (GCRA) may refuse it;
and it is refused with ``429 queue_full`` when the estimated wait for budget exceeds
``admission_max_wait_s``, instead of queueing forever. Only then is it admitted.

The budget keeper only sees calls that are already waiting; a running generation still
has most of its calls ahead. So the wait a new generation faces is the work of every
generation in flight, at what a generation has recently cost in each pool, divided by
the pool's rates; the keeper's own queue estimate is the floor.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from agents.pipeline import make_plan
from agents.planner import Plan
from agents.specs import SPEC_BY_NAME
from serve_app.config import GatewayArgs
from serve_app.errors import QueueFullError, RateLimitedError
from serve_app.job_keys import RESULT_CACHE, dedup_key, result_key, to_request
from serve_app.keeper import KeeperClient
from serve_app.metrics import metrics
from serve_app.store import JobRecord, Store

KINDS = ("requests", "input_tokens", "output_tokens")


class GenerationCost:
    """Moving average of what one generation consumes per pool and limit kind."""

    def __init__(self, args: GatewayArgs, weight: float = 0.2) -> None:
        self._args = args
        self._weight = weight
        self.per_pool: dict[str, dict[str, float]] = {}

    def learn(self, usage_by_agent: dict[str, dict[str, Any]]) -> None:
        """Fold in a finished generation's usage (the result's ``usage.agents``)."""
        spent: dict[str, dict[str, float]] = {}
        for agent, usage in usage_by_agent.items():
            model = self._args.pipeline.model(SPEC_BY_NAME[agent].tier).id
            pool = spent.setdefault(self._args.pool_of(model), dict.fromkeys(KINDS, 0.0))
            pool["requests"] += usage.get("calls", 0)
            pool["input_tokens"] += usage.get("input_tokens", 0) + usage.get(
                "cache_creation_input_tokens", 0
            )
            pool["output_tokens"] += usage.get("output_tokens", 0)
        for name, kinds in spent.items():
            mean = self.per_pool.setdefault(name, dict(kinds))
            for kind, value in kinds.items():
                mean[kind] += self._weight * (value - mean[kind])

    def backlog_s(self, generations: int) -> float:
        """Seconds of budget that ``generations`` generations need, in the tightest pool."""
        limits = self._args.budget.pool_limits()
        share = self._args.budget.headroom
        wait = 0.0
        for pool, kinds in self.per_pool.items():
            lim = limits.get(pool)
            if lim is None:
                continue
            per_minute = {"requests": lim.rpm, "input_tokens": lim.itpm, "output_tokens": lim.otpm}
            for kind, per_generation in kinds.items():
                wait = max(wait, generations * per_generation * 60 / (per_minute[kind] * share))
        return wait


@dataclass(frozen=True)
class Admitted:
    """A new job to run; ``headers`` are the user's rate-limit state for the reply."""

    job: JobRecord
    plan: Plan
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Attached:
    """The same request is already running: follow that job."""

    job: JobRecord


@dataclass(frozen=True)
class Replayed:
    """A repeat: ``job`` is a new record of it, ``result`` the cached one."""

    job: JobRecord
    result: dict[str, Any]


Decision = Admitted | Attached | Replayed


class Admission:
    """Decides each generate request; ``running`` counts the generations in flight here."""

    def __init__(
        self, args: GatewayArgs, store: Store, keeper: KeeperClient, cost: GenerationCost
    ) -> None:
        self._args = args
        self._store = store
        self._keeper = keeper
        self._cost = cost
        self.cache_lookups = 0
        self.cache_hits = 0

    async def decide(
        self, tenant: str, page_id: str, body: dict[str, Any], running: int
    ) -> Decision:
        """Attach, replay or admit ``body`` (the generate body as JSON), or raise a 429."""
        job, plan = self._new_job(tenant, page_id, body)
        key = job.dedup_key or ""
        bound = await self._store.claim_dedup(key, job.job_id, self._args.ingress.job_deadline_s)
        if bound is not None and (existing := await self._store.get_job(bound)):
            return Attached(existing)
        try:
            decision = await self._decide_new(job, plan, running)
        except BaseException:
            await self._store.release_dedup(key, job.job_id)
            raise
        if not isinstance(decision, Admitted):
            await self._store.release_dedup(key, job.job_id)
        return decision

    def _new_job(self, tenant: str, page_id: str, body: dict[str, Any]) -> tuple[JobRecord, Plan]:
        user = body.get("user_id") or "default"
        request_json = {"page_id": page_id, **body}
        request = to_request(request_json)
        plan = make_plan(request)
        now = time.time()
        job = JobRecord(
            job_id=f"job_{uuid.uuid4().hex}",
            tenant=tenant,
            user_id=user,
            page_id=page_id,
            request=request_json,
            plan=list(plan.agents),
            skipped=list(plan.skipped),
            created_at=now,
            updated_at=now,
            dedup_key=dedup_key(tenant, user, page_id, request.instruction, request.page),
        )
        return job, plan

    async def _decide_new(self, job: JobRecord, plan: Plan, running: int) -> Decision:
        self.cache_lookups += 1
        key = result_key(job.tenant, to_request(job.request))
        cached = await self._store.cache_get(RESULT_CACHE, key)
        if cached is not None:
            self.cache_hits += 1
            metrics().cache_hits.inc(tags={"cache": "generation"})
            return Replayed(job, cached)
        headers = await self._check_rate(job)
        wait = await self._budget_wait(plan.agents, running)
        bound = self._args.budget.admission_max_wait_s
        if wait > bound:
            raise QueueFullError(
                f"the Claude budget is booked for {wait:.0f} s; try again later",
                retry_after_s=wait - bound + 1,
            )
        return Admitted(job, plan, headers)

    async def _check_rate(self, job: JobRecord) -> dict[str, str]:
        """The user's rate limit: its headers when the hit passes, ``RateLimitedError`` if not."""
        limit = self._args.ingress.user_generations_per_minute
        hit = await self._store.hit_rate_limit(f"user:{job.tenant}:{job.user_id}", limit, 60.0)
        headers = {
            "RateLimit-Policy": f"{hit.limit};w=60",
            "RateLimit": f"limit={hit.limit}, remaining={hit.remaining}, "
            f"reset={math.ceil(hit.reset_s)}",
        }
        if not hit.allowed:
            raise RateLimitedError(
                f"at most {hit.limit} generations per minute per user",
                retry_after_s=max(1.0, hit.retry_after_s),
            ).with_headers(headers)
        return headers

    async def _budget_wait(self, agents: tuple[str, ...], running: int) -> float:
        pipeline = self._args.pipeline
        pools = {self._args.pool_of(pipeline.model(SPEC_BY_NAME[a].tier).id) for a in agents}
        waits = await asyncio.gather(*(self._keeper.estimated_wait(p) for p in pools))
        return max([self._cost.backlog_s(running), *waits])
