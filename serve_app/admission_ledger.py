"""Admission from the whole remaining work of admitted jobs, per tenant, kept by the keeper.

A new generation's time to result is the budget that its tenant's admitted, unfinished
work still needs (each job's planned agents, at what each agent has used in recent
generations, less what its calls have already been charged) plus its own, at the tenant's
fair share of the binding limit, plus how long a generation takes on an idle budget. Above
the bound it is refused with the time after which it would fit; that time is booked as a
ticket for the user, counted ahead of later arrivals and honoured when the user comes back,
so refused users are served in the order they were refused.

The estimate is an upper bound under steady overload: other tenants' idle share only makes
jobs finish sooner. It lives in the keeper, the one process that sees every replica's jobs.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from serve_app.call_demand import KINDS, Limits

Work = dict[str, dict[str, float]]
"""Budget by pool and limit kind (requests, input_tokens, output_tokens)."""

TICKET_GRACE_S = 30.0
"""How long after its time a ticket waits for its user to come back."""
EARLY_S = 1.0
"""A user coming back this much before its ticket's time is still served (clock skew)."""


@dataclass(frozen=True)
class Verdict:
    """Admission's answer: whether to run the job, its estimated time to result, or when."""

    admitted: bool
    estimate_s: float
    retry_after_s: float = 0.0


@dataclass
class _Entry:
    tenant: str
    work: Work
    admitted_at: float
    estimate_s: float = 0.0


@dataclass
class _AgentUsage:
    """Moving average of one agent's budget per generation, by pool and kind."""

    pool: str
    mean: dict[str, float] = field(default_factory=lambda: dict.fromkeys(KINDS, 0.0))
    seen: int = 0


class AdmissionLedger:
    """Admitted jobs' outstanding work and refused users' tickets, per tenant."""

    def __init__(
        self,
        limits: Mapping[str, Limits],
        weights: Mapping[str, float] | None = None,
        *,
        weight: float = 0.2,
        max_age_s: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limits = dict(limits)
        self._weights = dict(weights or {})
        self._alpha = weight
        self._max_age_s = max_age_s
        self._clock = clock
        self._jobs: dict[str, _Entry] = {}
        self._tickets: dict[tuple[str, str], _Entry] = {}
        self._agents: dict[str, _AgentUsage] = {}
        self._durations: deque[float] = deque(maxlen=20)

    def work_of(
        self, agents: Mapping[str, str], priors: Mapping[str, Mapping[str, float]] | None = None
    ) -> Work:
        """The budget a job running ``agents`` (name -> pool) is expected to need.

        An agent not seen yet counts at its prior (by kind), so that a cold start does not
        admit a burst on an estimate of nothing.
        """
        work: Work = {}
        for agent, pool in agents.items():
            usage = self._agents.get(agent)
            mean = usage.mean if usage is not None else (priors or {}).get(agent)
            if mean is None:
                continue
            need = work.setdefault(pool, dict.fromkeys(KINDS, 0.0))
            for kind in KINDS:
                need[kind] += mean.get(kind, 0.0)
        return work

    def decide(self, job_id: str, tenant: str, user: str, work: Work, bound_s: float) -> Verdict:
        """Admit ``job_id`` if its estimated time to result is within ``bound_s``."""
        now = self._clock()
        self._expire(now)
        ticket = self._tickets.get((tenant, user))
        if ticket is not None and now >= ticket.admitted_at - EARLY_S:
            del self._tickets[(tenant, user)]
            return self._admit(job_id, tenant, work, now, self.estimate(tenant, work))
        if ticket is not None:
            # Back too early: its place is kept, its time unchanged.
            return Verdict(False, ticket.estimate_s, ticket.admitted_at - now)
        estimate = self.estimate(tenant, work)
        if estimate <= bound_s:
            return self._admit(job_id, tenant, work, now, estimate)
        retry_after = max(1.0, estimate - bound_s)
        self._tickets[(tenant, user)] = _Entry(tenant, work, now + retry_after, estimate)
        return Verdict(False, estimate, retry_after)

    def estimate(self, tenant: str, work: Work) -> float:
        """Seconds until ``work``, queued behind the tenant's outstanding work, is done."""
        self._expire(self._clock())
        mine = [e for e in self._entries() if e.tenant == tenant]
        share = self._share(tenant)
        wait = 0.0
        for pool, limits in self._limits.items():
            for kind in KINDS:
                need = work.get(pool, {}).get(kind, 0.0)
                need += sum(e.work.get(pool, {}).get(kind, 0.0) for e in mine)
                wait = max(wait, need * 60 / (limits.of(kind) * share))
        return wait + self.idle_duration_s()

    def spend(self, job_id: str | None, pool: str, spent: Mapping[str, float]) -> None:
        """A call of ``job_id`` was charged ``spent``: that much less is outstanding."""
        entry = self._jobs.get(job_id or "")
        if entry is None or pool not in entry.work:
            return
        for kind, amount in spent.items():
            left = entry.work[pool].get(kind, 0.0) - amount
            entry.work[pool][kind] = max(0.0, left)

    def finish(
        self, job_id: str, used: Mapping[str, Mapping[str, float]], pools: Mapping[str, str]
    ) -> float | None:
        """The job ended; learn from what each agent used. Returns (actual - estimated) s."""
        entry = self._jobs.pop(job_id, None)
        for agent, usage in used.items():
            if agent in pools:
                self._learn(agent, pools[agent], usage)
        if entry is None:
            return None
        duration = self._clock() - entry.admitted_at
        if used:
            self._durations.append(duration)
        return duration - entry.estimate_s

    def idle_duration_s(self) -> float:
        """How long a generation takes when nothing is ahead of it: the quickest recent one."""
        return min(self._durations, default=0.0)

    def snapshot(self) -> dict[str, dict[str, float]]:
        """Per tenant: admitted jobs, tickets, and the wait a new job would face."""
        tenants = {e.tenant for e in self._entries()}
        return {
            t: {
                "admitted_jobs": sum(e.tenant == t for e in self._jobs.values()),
                "tickets": sum(e.tenant == t for e in self._tickets.values()),
                "estimated_wait_s": round(self.estimate(t, {}), 1),
            }
            for t in sorted(tenants)
        }

    def _admit(self, job_id: str, tenant: str, work: Work, now: float, estimate: float) -> Verdict:
        copied = {pool: dict(kinds) for pool, kinds in work.items()}
        self._jobs[job_id] = _Entry(tenant, copied, now, estimate)
        return Verdict(True, estimate)

    def _learn(self, agent: str, pool: str, usage: Mapping[str, float]) -> None:
        spent = {
            "requests": float(usage.get("calls", 0)),
            "input_tokens": float(usage.get("input_tokens", 0))
            + float(usage.get("cache_creation_input_tokens", 0)),
            "output_tokens": float(usage.get("output_tokens", 0)),
        }
        known = self._agents.get(agent)
        if known is None:
            self._agents[agent] = _AgentUsage(pool, dict(spent), 1)
            return
        for kind, value in spent.items():
            known.mean[kind] += self._alpha * (value - known.mean[kind])
        known.seen += 1

    def _share(self, tenant: str) -> float:
        active = {e.tenant for e in self._entries()} | {tenant}
        total = sum(self._weights.get(t, 1.0) for t in active)
        return self._weights.get(tenant, 1.0) / total

    def _entries(self) -> list[_Entry]:
        return [*self._jobs.values(), *self._tickets.values()]

    def _expire(self, now: float) -> None:
        """Forget tickets nobody came back for, and jobs past their deadline nobody ended."""
        late = [k for k, t in self._tickets.items() if now > t.admitted_at + TICKET_GRACE_S]
        for key in late:
            del self._tickets[key]
        stale = [j for j, e in self._jobs.items() if now - e.admitted_at > self._max_age_s]
        for job_id in stale:
            del self._jobs[job_id]
