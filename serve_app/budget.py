"""The global Claude budget: token buckets per model pool, a fair queue, settle and refund.

Every upstream call first acquires a grant: one request, its input tokens as estimated
locally, and ``max_tokens`` of output (what the API reserves when it counts output up
front; when it counts output as produced, the reservation is merely conservative). After
the call, ``settle`` replaces the estimates with the usage the API reported (cache reads
cost no ITPM) and refunds the rest; ``release`` refunds a call never sent. Both are
idempotent per call id, so a retried settle cannot double-count.

Waiting calls are granted in the order of ``fair_queue``: interactive before batch,
tenants by weighted fair share, then the oldest admitted job first. The head of the queue
waits for the bucket that is short instead of letting smaller calls overtake it forever.
Every wait has a deadline, after which the caller gets ``BudgetTimeoutError``. Remaining
counts the API reports (other clients may share the key) only ever lower the buckets, and
a 429 pauses the whole pool for ``retry-after``. While a pool is uncontended a grant may
come with a lease for the asking replica to grant more calls from itself (``budget_lease``).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from functools import partial
from typing import Any

from serve_app.budget_lease import Lease, LeaseBook, LeasePolicy, conservative_input
from serve_app.budget_pool import HISTORY_S, Bucket, PoolState, forget_before, remember
from serve_app.call_demand import KINDS, CallDemand, Limits
from serve_app.errors import BudgetTimeoutError, CancelledError
from serve_app.fair_queue import FairQueue, QueuedCall
from serve_app.output_bound import OutputBound
from serve_app.prompt_cache import PromptCacheMirror, TokenScale

HEADER_OF = {
    "requests": "requests",
    "input_tokens": "input-tokens",
    "output_tokens": "output-tokens",
}
TOKEN_HEADER_ROUNDING = 1000


class Budget:
    """All pools of one organisation's Claude budget, in one event loop."""

    def __init__(
        self,
        limits: dict[str, Limits],
        *,
        start_full: bool = True,
        weights: Mapping[str, float] | None = None,
        lease_policy: LeasePolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        now = clock()
        self._pools = {
            name: PoolState(
                lim,
                {k: Bucket(lim.of(k), lim.of(k) if start_full else 0.0, now) for k in KINDS},
                FairQueue(partial(CallDemand.share_of, limits=lim), weights),
            )
            for name, lim in limits.items()
        }
        self._granted: dict[str, CallDemand] = {}
        self._granted_at: dict[str, float] = {}
        """When each grant was made, so that grants nobody settles can be swept."""
        self.output_bound = OutputBound()
        self.mirror = PromptCacheMirror()
        self.tokens = TokenScale()
        self.leases = LeaseBook(lease_policy or LeasePolicy())
        self.grants_total = 0

    @property
    def grants_open(self) -> int:
        """Grants whose calls have not been settled, released or charged yet."""
        return len(self._granted)

    def pool(self, name: str) -> PoolState:
        if name not in self._pools:
            raise KeyError(f"no budget for model pool {name!r}; pools: {sorted(self._pools)}")
        return self._pools[name]

    async def acquire(self, demand: CallDemand, *, timeout_s: float) -> int:
        """Wait until ``demand`` fits its pool, then charge it; idempotent per call id.

        With ``demand.shape``, the input reserved is what follows the longest prefix known to
        be cached, in the API's token counts as learned; without, ``demand.input_tokens``.
        ``demand.output_tokens`` is the caller's ``max_tokens``; the returned number is the
        ``max_tokens`` to send, right-sized from the tag's answers unless ``full_output``.
        """
        if demand.call_id in self._granted:
            return int(self._granted[demand.call_id].output_tokens)
        pool = self.pool(demand.pool)
        output = (
            demand.output_tokens
            if demand.full_output
            else self.output_bound.bound(demand.tag, demand.output_tokens)
        )
        demand = replace(demand, input_tokens=self._input_reservation(demand), output_tokens=output)
        waiter = QueuedCall(demand, asyncio.get_running_loop().create_future(), self._clock())
        pool.queue.push(waiter)
        self._pump(demand.pool)
        try:
            await asyncio.wait_for(asyncio.shield(waiter.future), timeout=timeout_s)
        except TimeoutError:
            if waiter.future.done() and not waiter.future.cancelled():
                return output
            pool.queue.remove(waiter)
            raise BudgetTimeoutError(
                f"no {demand.pool} budget within {timeout_s:g} s; "
                f"{len(pool.queue)} other calls are waiting",
                retry_after_s=round(self.estimated_wait(demand.pool, demand), 1),
            ) from None
        except asyncio.CancelledError:
            pool.queue.remove(waiter)
            # Granted just as its caller went away: nothing was sent on it.
            self.release(demand.call_id)
            raise
        return output

    def lease(self, demand: CallDemand) -> Lease | None:
        """Room for more calls like ``demand`` (just granted) for its replica to grant
        itself, debited now; None unless its pool is uncontended (see ``budget_lease``)."""
        pool = self.pool(demand.pool)
        now = self._clock()
        if len(pool.queue) or pool.paused_until > now:
            return None
        scale = self.tokens.scale(demand.shape.model) if demand.shape else 1.0
        bound = self.output_bound.bound(demand.tag, demand.output_tokens)
        output = demand.output_tokens if demand.full_output else bound
        per_call = {
            "requests": 1.0,
            "input_tokens": float(conservative_input(demand, scale)),
            "output_tokens": float(output),
        }
        levels = {k: pool.buckets[k].refill(now) for k in KINDS}
        calls = self.leases.size(pool.limits, levels, per_call)
        if not calls:
            return None
        for kind in KINDS:
            pool.buckets[kind].level -= calls * per_call[kind]
        return Lease(
            self.leases.open(demand.pool, now),
            demand.pool,
            demand.tag,
            requests=calls,
            input_tokens=calls * int(per_call["input_tokens"]),
            output_tokens=calls * output,
            expires_in_s=self.leases.policy.lease_s,
            output_cap=bound if bound < demand.output_tokens else None,
            token_scale=scale,
        )

    def adopt(self, lease_id: str, demand: CallDemand) -> None:
        """Make a call its replica granted from lease ``lease_id`` a grant, so that it
        settles, is released or charged like any other; once per call, and only under a
        lease this keeper knows (what it reserved was debited with the lease)."""
        if self.leases.adopt(lease_id, demand.call_id):
            self._granted[demand.call_id] = demand
            self._granted_at[demand.call_id] = self._clock()

    def return_lease(self, lease_id: str, left: Mapping[str, float]) -> None:
        """Refund what a lease's replica did not grant (once; nothing for a lease unknown)."""
        name = self.leases.give_back(lease_id)
        if name is None:
            return
        self._refund(name, left)

    def _refund(self, name: str, amounts: Mapping[str, float]) -> None:
        pool = self.pool(name)
        now = self._clock()
        for kind in KINDS:
            bucket = pool.buckets[kind]
            bucket.refill(now)
            bucket.level = min(bucket.capacity, bucket.level + amounts.get(kind, 0.0))
        self._pump(name)

    def _input_reservation(self, demand: CallDemand) -> int:
        if demand.shape is None:
            return demand.input_tokens
        uncached = self.mirror.uncached(demand.shape, self._clock())
        return math.ceil(uncached * self.tokens.scale(demand.shape.model))

    def settle(
        self,
        call_id: str,
        *,
        input_tokens: int,
        output_tokens: int,
        cache_write_tokens: int = 0,
        cache_read_tokens: int = 0,
        truncated: bool = False,
    ) -> CallDemand | None:
        """Replace a grant's estimates by what the API charged; refunds the difference.

        ``input_tokens`` is uncached input; ITPM is charged that plus the cache writes.
        ``truncated``: the answer stopped at the granted ``max_tokens`` (the bound was too low).
        """
        demand = self._take_grant(call_id)
        if demand is None:
            return None
        if not demand.full_output:
            self.output_bound.learn(demand.tag, output_tokens, truncated=truncated)
        if demand.shape is not None:
            shape = demand.shape
            reported = input_tokens + cache_write_tokens + cache_read_tokens
            self.tokens.learn(shape.model, shape.total, reported)
            ratio = reported / shape.total if shape.total else 1.0
            cached = (cache_write_tokens + cache_read_tokens) / max(ratio, 1e-6)
            self.mirror.learn(shape, round(cached), self._clock())
        input_tokens += cache_write_tokens
        pool = self.pool(demand.pool)
        now = self._clock()
        for kind, actual in (("input_tokens", input_tokens), ("output_tokens", output_tokens)):
            bucket = pool.buckets[kind]
            bucket.refill(now)
            bucket.level = min(bucket.capacity, bucket.level + demand.amount(kind) - actual)
        remember(pool, (now, 1.0, float(input_tokens), float(output_tokens)))
        self._pump(demand.pool)
        return demand

    def _take_grant(self, call_id: str) -> CallDemand | None:
        self._granted_at.pop(call_id, None)
        return self._granted.pop(call_id, None)

    def charge(self, call_id: str) -> None:
        """End a grant whose call may have reached the API (it timed out, its caller was
        cancelled mid-call, its answer could not be read): what was reserved stays spent,
        since the API may have counted it; refunding it could overdraw the limit."""
        demand = self._take_grant(call_id)
        if demand is None:
            return
        requests, input_tokens, output_tokens = (demand.amount(kind) for kind in KINDS)
        remember(self.pool(demand.pool), (self._clock(), requests, input_tokens, output_tokens))

    def sweep_grants(self, older_than_s: float) -> int:
        """Charge the grants nobody settled or released within ``older_than_s`` (their
        replica died mid-call); returns how many."""
        cutoff = self._clock() - older_than_s
        self.leases.sweep(cutoff)
        stale = [call_id for call_id, at in self._granted_at.items() if at < cutoff]
        for call_id in stale:
            self.charge(call_id)
        return len(stale)

    def release(self, call_id: str) -> None:
        """Refund everything of a grant whose call was never sent."""
        demand = self._take_grant(call_id)
        if demand is not None:
            self._refund(demand.pool, {kind: demand.amount(kind) for kind in KINDS})

    def cancel_job(self, job_id: str) -> int:
        """Fail the waiting calls of a cancelled job; returns how many there were."""
        count = 0
        for name, pool in self._pools.items():
            for waiter in [w for w in pool.queue.calls() if w.demand.job_id == job_id]:
                pool.queue.remove(waiter)
                waiter.future.set_exception(CancelledError("the job was cancelled"))
                count += 1
            self._pump(name)
        return count

    def observe(self, pool_name: str, headers: dict[str, str]) -> None:
        """Lower the buckets to what the API says remains (other clients share the key)."""
        pool = self.pool(pool_name)
        now = self._clock()
        for kind in KINDS:
            raw = headers.get(f"anthropic-ratelimit-{HEADER_OF[kind]}-remaining")
            if raw is None or not raw.isdigit():
                continue
            reported = float(raw) + (0 if kind == "requests" else TOKEN_HEADER_ROUNDING - 1)
            bucket = pool.buckets[kind]
            if reported < bucket.refill(now):
                bucket.level = reported

    def pause(self, pool_name: str, seconds: float) -> None:
        """Stop granting in a pool (the API said 429) for ``seconds``.

        A 429 means our picture was too rosy, maybe of the cache: forget what was warm. The
        pool's leases are revoked too, so that no replica grants itself a call meanwhile.
        """
        self.mirror.forget()
        pool = self.pool(pool_name)
        pool.paused_until = max(pool.paused_until, self._clock() + seconds)
        self.leases.revoke(pool_name)
        self._pump(pool_name)

    def estimated_wait(self, pool_name: str, extra: CallDemand | None = None) -> float:
        """Seconds until everything queued (and ``extra``) would be granted."""
        pool = self.pool(pool_name)
        now = self._clock()
        waiting = [w.demand for w in pool.queue.calls()]
        if extra is not None:
            waiting.append(extra)
        wait = max(0.0, pool.paused_until - now)
        for kind in KINDS:
            bucket = pool.buckets[kind]
            demanded = sum(n.amount(kind) for n in waiting) - bucket.refill(now)
            wait = max(wait, demanded / bucket.rate)
        return wait

    def job_queue(self, job_id: str) -> dict[str, float] | None:
        """Where a job's first waiting call stands: position and estimated wait."""
        for name, pool in self._pools.items():
            for position, waiter in enumerate(pool.queue.calls(), start=1):
                if waiter.demand.job_id == job_id:
                    return {
                        "position": position,
                        "estimated_wait_s": round(self.estimated_wait(name), 1),
                    }
        return None

    def snapshot(self) -> dict[str, Any]:
        """Limits, remaining, utilisation and queue of every pool, for /v1/capacity."""
        now = self._clock()
        out: dict[str, Any] = {}
        for name, pool in self._pools.items():
            forget_before(pool, now - HISTORY_S)
            used = {}
            for window in (60, 300):
                rows = [h for h in pool.history if h[0] >= now - window]
                used[f"{window // 60}m"] = {
                    kind: round(
                        sum(r[i + 1] for r in rows) / (pool.limits.of(kind) * window / 60), 4
                    )
                    for i, kind in enumerate(KINDS)
                }
            out[name] = {
                "limits": {k: pool.limits.of(k) for k in KINDS},
                "remaining": {k: round(pool.buckets[k].refill(now), 1) for k in KINDS},
                "utilisation": used,
                "queue_depth": len(pool.queue),
                "estimated_wait_s": round(self.estimated_wait(name), 2),
                "paused_for_s": round(max(0.0, pool.paused_until - now), 2),
            }
        return out

    def _pump(self, name: str) -> None:
        """Grant what fits, in fair order; otherwise wake up when the head will fit."""
        pool = self._pools[name]
        if pool.timer is not None:
            pool.timer.cancel()
            pool.timer = None
        while (waiter := pool.queue.head()) is not None:
            if waiter.future.done():
                pool.queue.remove(waiter)
                continue
            now = self._clock()
            wait = max(
                [pool.paused_until - now]
                + [pool.buckets[k].wait_for(waiter.demand.amount(k), now) for k in KINDS]
            )
            if wait > 0:
                loop = asyncio.get_running_loop()
                pool.timer = loop.call_later(wait + 0.001, self._pump, name)
                return
            for kind in KINDS:
                pool.buckets[kind].level -= waiter.demand.amount(kind)
            pool.queue.pop_head()
            self._granted[waiter.demand.call_id] = waiter.demand
            self._granted_at[waiter.demand.call_id] = now
            self.grants_total += 1
            waiter.future.set_result(None)

    def export_levels(self) -> dict[str, dict[str, float]]:
        """Bucket levels, to carry them over a restart (see ``import_levels``)."""
        now = self._clock()
        return {
            name: {k: p.buckets[k].refill(now) for k in KINDS} for name, p in self._pools.items()
        }

    def import_levels(self, levels: dict[str, dict[str, float]], age_s: float) -> None:
        """Restore levels saved ``age_s`` seconds ago, with what refilled since."""
        now = self._clock()
        for name, kinds in levels.items():
            if name not in self._pools:
                continue
            for kind, level in kinds.items():
                bucket = self._pools[name].buckets[kind]
                bucket.level = min(bucket.capacity, level + age_s * bucket.rate)
                bucket.updated = now
