"""Admission from the whole remaining work of admitted jobs, per tenant, kept by the keeper.

A new generation's time to result is the budget that its tenant's admitted, unfinished
work still needs (each job's planned agents, at what each agent has used in recent
generations, less what its calls have already been charged) plus its own, at the tenant's
fair share of the binding limit, plus how long a generation takes on an idle budget. Above
the bound it is refused with the time after which it would fit; that time is booked as a
ticket for the user, counted ahead of later arrivals and honoured when the user comes back
(sooner, if the work ahead drained faster), so refused users are served in the order they
were refused. Work is re-estimated from what agents are learned to use at every decision,
so an early overestimate does not linger; and the Retry-After told is at most
``RECHECK_S``: a user coming back before its ticket is due is served as soon as it fits.

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
RECHECK_S = 15.0
"""Longest ``Retry-After`` told: a user checks back at least this often, so that budget
freed sooner than estimated (an early estimate that was too high) does not sit idle."""


@dataclass(frozen=True)
class Verdict:
    """Admission's answer: whether to run the job, its estimated time to result, or when."""

    admitted: bool
    estimate_s: float
    retry_after_s: float = 0.0


@dataclass
class _Entry:
    """An admitted job (``at``: when) or a ticket (``at``: when its user is due back)."""

    tenant: str
    agents: dict[str, str]
    priors: dict[str, dict[str, float]]
    at: float
    estimate_s: float = 0.0
    spent: Work = field(default_factory=dict)
    since: float = 0.0
    """For a ticket: when its user was first refused, its place in line."""


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

    def decide(
        self,
        job_id: str,
        tenant: str,
        user: str,
        agents: Mapping[str, str],
        priors: Mapping[str, Mapping[str, float]],
        bound_s: float,
    ) -> Verdict:
        """Admit ``job_id`` (its agents -> pools) if it would end within ``bound_s``."""
        now = self._clock()
        self._expire(now)
        entry = _Entry(tenant, dict(agents), {a: dict(p) for a, p in priors.items()}, now)
        ticket = self._tickets.pop((tenant, user), None)
        # A ticket keeps its place: only the jobs and the tickets refused before it are ahead.
        since = now if ticket is None else ticket.since
        estimate = self._estimate(tenant, self._work(entry), since if ticket else None)
        if estimate <= bound_s or (ticket is not None and now >= ticket.at - EARLY_S):
            entry.estimate_s = estimate
            self._jobs[job_id] = entry
            return Verdict(True, estimate)
        # Due when the work ahead should have drained; sooner if it drains faster than
        # thought (estimates improve as agents are learned), never later than promised.
        due = now + max(1.0, estimate - bound_s)
        if ticket is not None:
            due = min(due, ticket.at)
        self._tickets[(tenant, user)] = _Entry(
            tenant, entry.agents, entry.priors, due, estimate, since=since
        )
        return Verdict(False, estimate, min(due - now, RECHECK_S))

    def estimate(self, tenant: str, work: Work) -> float:
        """Seconds until ``work``, queued behind everything of the tenant's, is done."""
        self._expire(self._clock())
        return self._estimate(tenant, work, None)

    def _estimate(self, tenant: str, work: Work, ahead_of: float | None) -> float:
        """``work``'s time to result behind the tenant's jobs and the tickets due before
        ``ahead_of`` (every ticket, when None), at the tenant's share of the limits."""
        tickets = [t for t in self._tickets.values() if ahead_of is None or t.since < ahead_of]
        mine = [self._work(e) for e in [*self._jobs.values(), *tickets] if e.tenant == tenant]
        share = self._share(tenant)
        wait = 0.0
        for pool, limits in self._limits.items():
            for kind in KINDS:
                need = work.get(pool, {}).get(kind, 0.0)
                need += sum(w.get(pool, {}).get(kind, 0.0) for w in mine)
                wait = max(wait, need * 60 / (limits.of(kind) * share))
        return wait + self.idle_duration_s()

    def _work(self, entry: _Entry) -> Work:
        """What an entry still needs: its agents at today's estimate, less what it spent."""
        work = self.work_of(entry.agents, entry.priors)
        for pool, kinds in work.items():
            for kind in kinds:
                kinds[kind] = max(0.0, kinds[kind] - entry.spent.get(pool, {}).get(kind, 0.0))
        return work

    def spend(self, job_id: str | None, pool: str, spent: Mapping[str, float]) -> None:
        """A call of ``job_id`` was charged ``spent``: that much less is outstanding."""
        entry = self._jobs.get(job_id or "")
        if entry is None:
            return
        kinds = entry.spent.setdefault(pool, dict.fromkeys(KINDS, 0.0))
        for kind, amount in spent.items():
            kinds[kind] = kinds.get(kind, 0.0) + amount

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
        duration = self._clock() - entry.at
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
        late = [k for k, t in self._tickets.items() if now > t.at + TICKET_GRACE_S]
        for key in late:
            del self._tickets[key]
        stale = [j for j, e in self._jobs.items() if now - e.at > self._max_age_s]
        for job_id in stale:
            del self._jobs[job_id]
