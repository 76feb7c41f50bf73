"""Per-tenant quotas at admission: generations per minute, jobs running at once, dollars
per day (the last in `serve_app.tenant_usage`).

Both are built on the store's atomic steps, so they hold across ingress replicas: the rate
is a GCRA limit on the tenant (as the per-user one is), and each running job holds one of
the tenant's ``concurrent_jobs`` slots, a lease named for the slot whose token is the job
id. A slot is given back when the job ends; a job whose replica died keeps its slot until
the lease runs out at the job's deadline, so a crash cannot let a tenant exceed its quota.
A refusal is ``429 quota_exceeded`` with ``Retry-After`` and RateLimit headers.
"""

from __future__ import annotations

import contextlib
import math
import random
from typing import Any

from serve_app.config import GatewayArgs, TenantQuota
from serve_app.errors import DependencyUnavailableError, QuotaExceededError
from serve_app.store import JobRecord, Store
from serve_app.tenant_usage import UsageLedger


class TenantQuotas:
    """Checks and holds each tenant's quota for the jobs admitted; ``usage`` is the ledger
    its spend limit is kept on."""

    def __init__(self, args: GatewayArgs, store: Store) -> None:
        self._args = args
        self._store = store
        self.usage = UsageLedger(args.pipeline, store, args.ingress.usage_retention_days)

    def quota_of(self, tenant: str) -> TenantQuota:
        return self._args.tenant_quotas.get(tenant, self._args.default_quota)

    async def view(self, tenant: str) -> dict[str, Any]:
        """The tenant's quota and where it stands against its spend limit (``spend`` is
        None while the store is unreachable: the capacity view stays up)."""
        quota = self.quota_of(tenant)
        spend = None
        with contextlib.suppress(DependencyUnavailableError):
            spend = (await self.usage.report(tenant, 1, quota))["limit"]
        return quota.model_dump() | {"spend": spend}

    async def take(self, job: JobRecord) -> JobRecord:
        """Count ``job`` against its tenant's quota, or refuse it with a 429 (the rate's and
        the spend limit's carry RateLimit headers). A refusal uses up nothing; the job
        returned carries the dollars it holds."""
        quota = self.quota_of(job.tenant)
        if quota.concurrent_jobs is not None and not await self._hold_slot(job, quota):
            raise QuotaExceededError(
                f"tenant {job.tenant} may run {quota.concurrent_jobs} generations at once",
                retry_after_s=5.0,
            )
        try:
            job = await self.usage.hold(job, quota)
        except BaseException:
            await self.give_back(job)
            raise
        if quota.generations_per_minute is None:
            return job
        hit = await self._store.hit_rate_limit(
            f"tenant:{job.tenant}", quota.generations_per_minute, 60.0
        )
        if not hit.allowed:
            await self.give_back(job)
            raise QuotaExceededError(
                f"tenant {job.tenant} may start {hit.limit} generations per minute",
                retry_after_s=max(1.0, hit.retry_after_s),
            ).with_headers(
                {
                    "RateLimit-Policy": f"{hit.limit};w=60",
                    "RateLimit": f"limit={hit.limit}, remaining=0, reset={math.ceil(hit.reset_s)}",
                }
            )
        return job

    async def give_back(self, job: JobRecord) -> None:
        """``job`` ended (or was never started): its slot and its dollars are free again."""
        quota = self.quota_of(job.tenant)
        for slot in range(quota.concurrent_jobs or 0):
            await self._store.release_lease(self._slot(job.tenant, slot), job.job_id)
        await self.usage.release(job)

    async def _hold_slot(self, job: JobRecord, quota: TenantQuota) -> bool:
        slots = quota.concurrent_jobs or 0
        ttl = self._args.ingress.job_deadline_s
        start = random.randrange(slots)  # spread concurrent admissions over the slots
        for step in range(slots):
            name = self._slot(job.tenant, (start + step) % slots)
            if await self._store.acquire_lease(name, job.job_id, ttl):
                return True
        return False

    @staticmethod
    def _slot(tenant: str, slot: int) -> str:
        return f"quota-slot:{tenant}:{slot}"
