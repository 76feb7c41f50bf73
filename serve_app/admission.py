"""Admission: what happens to a generate request before any Claude budget is spent on it.

In order: an identical request in flight is attached to the running job (dedup); a repeat
is answered from the tenant's result cache; the user's rate limit (GCRA) may refuse it;
and the keeper's ledger (``admission_ledger``) refuses it with ``429 queue_full`` when its
estimated time to result, behind the whole remaining work of its tenant's admitted jobs,
exceeds ``admission_max_wait_s``, with a ``Retry-After`` that it then honours. Only then
is it admitted, and its estimate travels in its ``accepted`` event.
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
from serve_app.config import GatewayArgs
from serve_app.errors import QueueFullError, RateLimitedError
from serve_app.job_keys import RESULT_CACHE, dedup_key, result_key, to_request
from serve_app.keeper_client import KeeperClient
from serve_app.metrics import metrics
from serve_app.store import JobRecord, Store
from serve_app.tenant_quota import TenantQuotas


@dataclass(frozen=True)
class Admitted:
    """A new job to run; ``headers`` are the user's rate-limit state for the reply."""

    job: JobRecord
    plan: Plan
    headers: dict[str, str] = field(default_factory=dict)
    estimate_s: float = 0.0
    """Estimated time to result when admitted."""


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
        self,
        args: GatewayArgs,
        store: Store,
        keeper: KeeperClient,
        quotas: TenantQuotas | None = None,
    ) -> None:
        self._args = args
        self._store = store
        self._keeper = keeper
        self._quotas = quotas or TenantQuotas(args, store)
        self.cache_lookups = 0
        self.cache_hits = 0

    async def decide(
        self, tenant: str, page_id: str, body: dict[str, Any], key_id: str | None = None
    ) -> Decision:
        """Attach, replay or admit ``body`` (the generate body as JSON), or raise a 429."""
        # Planning runs a sentence encoder (about 10 ms for new wording): off the event loop,
        # so that streams and refusals do not wait behind it.
        job, plan = await asyncio.to_thread(self._new_job, tenant, page_id, body, key_id)
        key = job.dedup_key or ""
        bound = await self._store.claim_dedup(key, job.job_id, self._args.ingress.job_deadline_s)
        if bound is not None and (existing := await self._store.get_job(bound)):
            return Attached(existing)
        try:
            decision = await self._decide_new(job, plan)
        except BaseException:
            await self._store.release_dedup(key, job.job_id)
            raise
        if not isinstance(decision, Admitted):
            await self._store.release_dedup(key, job.job_id)
        return decision

    def _new_job(
        self, tenant: str, page_id: str, body: dict[str, Any], key_id: str | None
    ) -> tuple[JobRecord, Plan]:
        user = body.get("user_id") or "default"
        request_json = {"page_id": page_id, **body}
        request = to_request(request_json)
        plan = make_plan(request)
        now = time.time()
        job = JobRecord(
            job_id=f"job_{uuid.uuid4().hex}",
            tenant=tenant,
            user_id=user,
            key_id=key_id,
            page_id=page_id,
            request=request_json,
            plan=list(plan.agents),
            skipped=list(plan.skipped),
            confidence=None if request.groups is not None else round(plan.confidence, 3),
            created_at=now,
            updated_at=now,
            dedup_key=dedup_key(tenant, user, page_id, request.instruction, request.page),
        )
        return job, plan

    async def _decide_new(self, job: JobRecord, plan: Plan) -> Decision:
        self.cache_lookups += 1
        metrics().cache_lookups.inc(tags={"cache": "generation"})
        key = result_key(job.tenant, to_request(job.request))
        cached = await self._store.cache_get(RESULT_CACHE, key)
        if cached is not None:
            self.cache_hits += 1
            metrics().cache_hits.inc(tags={"cache": "generation"})
            return Replayed(job, cached)
        bound = self._args.budget.admission_max_wait_s
        headers = await self._check_rate(job)
        job = await self._quotas.take(job)  # its headers travel on its own refusal
        try:
            verdict = await self._keeper.admit(
                job.job_id, job.tenant, job.user_id, list(plan.agents), bound
            )
        except BaseException:
            await self._quotas.give_back(job)
            raise
        if not verdict.admitted:
            await self._quotas.give_back(job)
            raise QueueFullError(
                f"a generation would take about {verdict.estimate_s:.0f} s, over the "
                f"{bound:g} s bound; come back after Retry-After to be served in turn",
                retry_after_s=verdict.retry_after_s,
                estimated_s=round(verdict.estimate_s, 1),
            ).with_headers(headers)
        return Admitted(job, plan, headers, verdict.estimate_s)

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
