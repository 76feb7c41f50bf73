"""What each tenant spent, by day and by agent, and the daily spend limit built on it.

Each stage's calls are added as it completes to the tenant's counter for the day (UTC,
``usage:<tenant>:<date>``): calls, tokens by kind and dollars, in total and per agent, and
each job's outcome when it ends. ``GET /v1/usage`` reads those counters back, so a tenant
sees what it was billed for, whichever replica ran its jobs.

A tenant with ``usd_per_day`` has ``usd_held_per_generation`` held on the counter of the
day its job was admitted, as tokens are reserved before a call: admission refuses the job
(``429 quota_exceeded``) when the day's spent and held dollars would pass the limit, and
the hold is given back when the job ends. The limit can be passed only by what the running
jobs cost beyond their holds. A job whose replica dies just after it ended keeps its hold
until the day is over (it errs on the side of refusing).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from agents.config import PipelineConfig
from agents.usage import TOKEN_FIELDS, CallUsage
from serve_app.config import TenantQuota
from serve_app.errors import QuotaExceededError
from serve_app.store import CounterBound, JobRecord, Store

DAY_S = 86_400.0
SPEND = ("cost_usd", "held_usd")
"""The fields a spend limit bounds: what was spent and what running jobs hold."""
TOTALS = ("calls", *TOKEN_FIELDS, "cost_usd")
OUTCOMES = ("succeeded", "failed", "cancelled", "replayed")


def day_of(unix_s: float) -> str:
    """The UTC date of a moment, as the counters name it."""
    return datetime.fromtimestamp(unix_s, UTC).date().isoformat()


class UsageLedger:
    """Adds tenants' spending to their daily counters and reads them back."""

    def __init__(
        self,
        pipeline: PipelineConfig,
        store: Store,
        retention_days: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._pipeline = pipeline
        self._store = store
        self._ttl_s = retention_days * DAY_S
        self._retention_days = retention_days
        self._clock = clock

    def _key(self, tenant: str, day: str) -> str:
        return f"usage:{tenant}:{day}"

    async def record_calls(self, tenant: str, agent: str, calls: Iterable[CallUsage]) -> None:
        """Bill ``tenant`` for one stage's upstream calls (none when it was a cache hit)."""
        deltas: dict[str, float] = {}
        for call in calls:
            price = self._pipeline.price_of(call.model)
            amounts = {name: float(getattr(call, name)) for name in TOKEN_FIELDS}
            amounts |= {
                "calls": float(call.requests),
                "cost_usd": call.cost(price) if price else 0.0,
            }
            for name, amount in amounts.items():
                for field in (name, f"agent.{agent}.{name}"):
                    deltas[field] = deltas.get(field, 0.0) + amount
        if deltas:
            await self._store.add_counters(
                self._key(tenant, day_of(self._clock())), deltas, self._ttl_s
            )

    async def hold(self, job: JobRecord, quota: TenantQuota) -> JobRecord:
        """Hold the job's dollars on its tenant's day, or refuse it when the day's limit
        would be passed; the job returned carries what it holds."""
        if quota.usd_per_day is None:
            return job
        held = quota.usd_held_per_generation
        bound = CounterBound(SPEND, quota.usd_per_day)
        key = self._key(job.tenant, day_of(job.created_at))
        if not await self._store.add_counters(key, {"held_usd": held}, self._ttl_s, bound):
            raise self._over_limit(job.tenant, quota.usd_per_day, job.created_at)
        return job.model_copy(update={"held_usd": held})

    async def release(self, job: JobRecord) -> None:
        """Give back what ``job`` held (nothing when it held nothing)."""
        if job.held_usd:
            key = self._key(job.tenant, day_of(job.created_at))
            await self._store.add_counters(key, {"held_usd": -job.held_usd}, self._ttl_s)

    async def record_outcome(self, tenant: str, outcome: str) -> None:
        """Count one generation of ``tenant`` by how it ended (``OUTCOMES``)."""
        key = self._key(tenant, day_of(self._clock()))
        await self._store.add_counters(key, {f"generations.{outcome}": 1.0}, self._ttl_s)

    async def report(self, tenant: str, days: int, quota: TenantQuota) -> dict[str, Any]:
        """``GET /v1/usage``: the tenant's last ``days`` days with any activity, newest
        first, and where it stands against its daily spend limit."""
        now = self._clock()
        dates = [day_of(now - i * DAY_S) for i in range(min(days, self._retention_days))]
        report: list[dict[str, Any]] = []
        for date in dates:
            counters = await self._store.read_counters(self._key(tenant, date))
            if any(v for k, v in counters.items() if k != "held_usd"):
                report.append({"date": date, **_day_view(counters)})
        today = await self._store.read_counters(self._key(tenant, dates[0]))
        return {"tenant": tenant, "days": report, "limit": _limit_view(today, quota, now)}

    def _over_limit(self, tenant: str, limit: float, now: float) -> QuotaExceededError:
        reset = _seconds_to_midnight(now)
        return QuotaExceededError(
            f"tenant {tenant} has reached its ${limit:g} spend limit for today (UTC)",
            retry_after_s=max(1.0, reset),
        ).with_headers(
            {
                "RateLimit-Policy": f"{limit:g};w=86400",
                "RateLimit": f"limit={limit:g}, remaining=0, reset={math.ceil(reset)}",
            }
        )


def _seconds_to_midnight(now: float) -> float:
    day = datetime.fromtimestamp(now, UTC).date()
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
    return midnight.timestamp() - now


def _totals(counters: dict[str, float], prefix: str = "") -> dict[str, Any]:
    view: dict[str, Any] = {name: int(counters.get(prefix + name, 0.0)) for name in TOTALS}
    view["cost_usd"] = round(counters.get(prefix + "cost_usd", 0.0), 6)
    return view


def _day_view(counters: dict[str, float]) -> dict[str, Any]:
    agents = sorted({k.split(".")[1] for k in counters if k.startswith("agent.")})
    return {
        "generations": {o: int(counters.get(f"generations.{o}", 0.0)) for o in OUTCOMES},
        **_totals(counters),
        "agents": {agent: _totals(counters, f"agent.{agent}.") for agent in agents},
    }


def _limit_view(today: dict[str, float], quota: TenantQuota, now: float) -> dict[str, Any]:
    spent, held = today.get("cost_usd", 0.0), max(0.0, today.get("held_usd", 0.0))
    limit = quota.usd_per_day
    return {
        "usd_per_day": limit,
        "spent_today_usd": round(spent, 6),
        "held_usd": round(held, 6),
        "remaining_usd": None if limit is None else round(max(0.0, limit - spent - held), 6),
        "resets_in_s": round(_seconds_to_midnight(now)),
    }
