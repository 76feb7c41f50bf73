"""Generation jobs: run the agent DAG through the agent pools and record every event.

A job's events go to the shared store as they happen, numbered from 1, so any ingress
replica can stream them and a client can resume after ``Last-Event-ID``. A job runs to the
end even when its client leaves (what was spent is not wasted: the result is cached),
unless it is cancelled. A stage whose replica dies or stalls is retried on another
replica; a job whose ingress replica dies is picked up by another one (its heartbeat
stops) and re-run, its event ids continuing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, cast

from ray.exceptions import RayError, RayTaskError

from agents.errors import PipelineError
from agents.pipeline import Pipeline, StageEvent
from agents.planner import Group, Plan
from agents.prompting import AgentTask
from agents.retrieval import CatalogIndex
from agents.runner import AgentOutcome
from agents.specs import SPEC_BY_NAME
from serve_app.agent_pool import CallMeta
from serve_app.config import GatewayArgs
from serve_app.errors import (
    CancelledError,
    DependencyUnavailableError,
    GatewayError,
    InternalError,
    KeeperUnavailableError,
    StageFailedError,
)
from serve_app.job_keys import CANCELS, RESULT_CACHE, result_key, to_request
from serve_app.job_log import JobLog, JobLostError
from serve_app.keeper_client import KeeperClient
from serve_app.logs import generation_line
from serve_app.metrics import metrics
from serve_app.store import Fence, JobRecord, JobStatus, Store
from serve_app.streams import accepted_event
from serve_app.supervised import StopLoop, supervise
from serve_app.tenant_quota import TenantQuotas

log = logging.getLogger("nocode.jobs")
HEARTBEAT_S = 5.0
RECENT_COSTS = 1_000
STALE_AFTER_S = 30.0


class JobRunner:
    """Runs this replica's jobs; ``handles`` maps agent names to their deployments."""

    def __init__(
        self,
        args: GatewayArgs,
        store: Store,
        keeper: KeeperClient,
        handles: Mapping[str, Any],
        index: CatalogIndex | None,
        quotas: TenantQuotas | None = None,
    ) -> None:
        self.args = args
        self.store = store
        self.keeper = keeper
        self.quotas = quotas or TenantQuotas(args, store)
        self.handles = handles
        self.index = index
        self.replica_id = uuid.uuid4().hex[:12]
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.lost: set[str] = set()
        """Jobs another replica took over from this one: their tasks stop without a word."""
        self.succeeded = 0
        """Jobs that succeeded on this replica since it started."""
        self.recent_costs: deque[float] = deque(maxlen=RECENT_COSTS)
        """What this replica's last successful jobs cost (bounded, for /v1/capacity)."""

    def pipeline(self, job: JobRecord, emit: Callable[[StageEvent], None]) -> Pipeline:
        """The job's pipeline, its every agent call sent to that agent's pool."""
        meta = CallMeta(
            job.job_id,
            job.tenant,
            job.user_id,
            job.request.get("priority", "interactive"),
            deadline=job.created_at + self.args.ingress.job_deadline_s,
            admitted_at=job.created_at,
        )
        return Pipeline(
            self.args.pipeline, lambda task: self._stage(task, meta, emit), catalog_index=self.index
        )

    def start(self, job: JobRecord, plan: Plan) -> None:
        """Run ``job``, as this replica took it (`Store.claim_job`), in the background."""
        fence = Fence(self.replica_id, job.epoch)
        self.tasks[job.job_id] = asyncio.create_task(self._run(job, fence, plan))

    async def launch(self, job: JobRecord, plan: Plan, estimate_s: float) -> None:
        """Record an admitted job and its ``accepted`` event, take it, and run it.

        If that fails part way, the job is ended with the error (best effort), so that no
        sweeper adopts a job admission has forgotten; the keeper stops counting it.
        """
        try:
            await self.store.create_job(job)
            accepted = accepted_event(job, deduplicated=False, cached=False)
            accepted["estimated_s"] = estimate_s
            await self.store.append_event(job.job_id, "accepted", accepted)
            taken = await self.store.claim_job(job.job_id, self.replica_id, stale_after_s=None)
            if taken is None:
                raise InternalError("a new job was taken by another replica", id=job.job_id)
        except BaseException as exc:
            await self._undo_launch(job, exc)
            raise
        self.start(taken, plan)

    async def _undo_launch(self, job: JobRecord, exc: BaseException) -> None:
        error = exc if isinstance(exc, GatewayError) else InternalError("launch failed")
        with contextlib.suppress(Exception):  # the first error is the one that matters
            await self.store.end_job(
                job.job_id, None, "failed", "error", error.to_json(), self.args.ingress.job_ttl_s
            )
        with contextlib.suppress(KeeperUnavailableError):
            await self.keeper.finish_job(job.job_id, {}, _kind(job))
        with contextlib.suppress(DependencyUnavailableError):
            await self.quotas.give_back(job)

    async def cancel(self, job_id: str) -> bool:
        """Cancel a job running here; False when it does not run on this replica."""
        task = self.tasks.get(job_id)
        if task is None or task.done():
            return False
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return True

    async def record_replay(self, job: JobRecord, cached: dict[str, Any]) -> JobRecord:
        """A repeat answered from the result cache, recorded as a finished job of its own."""
        result = {**cached, "cached": True}
        await self.store.create_job(job)
        accepted = accepted_event(job, deduplicated=False, cached=True)
        await self.store.append_event(job.job_id, "accepted", accepted)
        ttl = self.args.ingress.job_ttl_s
        await self.store.end_job(job.job_id, None, "succeeded", "result", result, ttl)
        with contextlib.suppress(DependencyUnavailableError):
            await self.quotas.usage.record_outcome(job.tenant, "replayed")
        return job.model_copy(update={"status": "succeeded", "result": result})

    async def _run(self, job: JobRecord, fence: Fence, plan: Plan) -> None:
        job_id = job.job_id
        joblog = await JobLog.open(self.store, job, fence, on_lost=lambda: self.lose(job_id))
        beat = asyncio.create_task(
            supervise("heartbeat", _Heartbeat(self, job_id, fence, joblog).step, 1.0)
        )
        try:
            ending = await self._outcome(job, joblog, plan)
            await self._finish(job, joblog, *ending)
        except JobLostError:
            log.warning("job %s was taken over by another replica; this one stops", job_id)
            metrics().job_ownership.inc(tags={"event": "lost"})
        except Exception:  # a bug in ending it: logged; its heartbeat stops, so it is adopted
            log.exception("job %s could not be ended", job_id)
        finally:
            beat.cancel()
            joblog.close()
            self.tasks.pop(job_id, None)
            self.lost.discard(job_id)

    def lose(self, job_id: str) -> None:
        """Another replica holds the job now: stop its task here, which then writes nothing."""
        self.lost.add(job_id)
        task = self.tasks.get(job_id)
        if task is not None:
            task.cancel()

    async def _outcome(
        self, job: JobRecord, joblog: JobLog, plan: Plan
    ) -> tuple[JobStatus, str, dict[str, Any]]:
        """How the job ends: (status, terminal event, its data); `JobLostError` if it moved."""
        try:
            return "succeeded", "result", await self._generate(job, joblog, plan)
        except asyncio.CancelledError:
            if job.job_id in self.lost:
                raise JobLostError(job.job_id) from None
            await self._cancel_calls(job.job_id)
            return "cancelled", "error", CancelledError("the job was cancelled").to_json()
        except TimeoutError:
            await self._cancel_calls(job.job_id)
            deadline = self.args.ingress.job_deadline_s
            late = StageFailedError(
                f"the generation did not finish within {deadline:g} s", retry_after_s=30
            )
            return "failed", "error", late.to_json()
        except (GatewayError, PipelineError) as exc:
            return "failed", "error", exc.to_json()
        except Exception:
            error_id = f"err_{uuid.uuid4().hex[:16]}"
            context = {"job_id": job.job_id, "tenant": job.tenant, "key_id": job.key_id}
            log.exception(
                "job %s failed unexpectedly (error id %s)",
                job.job_id,
                error_id,
                extra=context | {"error_id": error_id},
            )
            bug = InternalError("the generation failed unexpectedly; it was logged", id=error_id)
            return "failed", "error", bug.to_json()

    async def _cancel_calls(self, job_id: str) -> None:
        """Fail the job's calls still waiting for budget (unreachable keeper: its deadline)."""
        with contextlib.suppress(KeeperUnavailableError):
            await self.keeper.cancel_job(job_id)

    async def _generate(self, job: JobRecord, joblog: JobLog, plan: Plan) -> dict[str, Any]:
        """Run the pipeline, its stage events logged as they come; cache and return the result."""

        first = True

        def on_stage(event: StageEvent) -> None:
            nonlocal first
            if first:
                first = False
                metrics().first_event.observe(max(0.0, time.time() - job.created_at))
            joblog.append("stage", event.to_data())

        request = to_request(job.request)
        async with asyncio.timeout(self.args.ingress.job_deadline_s):
            result = await self.pipeline(job, on_stage).run(request, plan=plan, on_event=on_stage)
        payload = result.to_json()
        payload["cached"] = False
        # Best effort: a store outage must not fail a generation that has its result.
        with contextlib.suppress(DependencyUnavailableError):
            await self.store.cache_set(
                RESULT_CACHE,
                result_key(job.tenant, request),
                payload,
                self.args.ingress.result_ttl_s,
            )
        return payload

    async def _finish(
        self, job: JobRecord, joblog: JobLog, status: JobStatus, event: str, data: dict[str, Any]
    ) -> None:
        """End the job once (its terminal event and status together), then let go of it."""
        await joblog.end(status, event, data, self.args.ingress.job_ttl_s)
        await self._ended(job, status, event, data)

    async def _ended(
        self, job: JobRecord, status: JobStatus, event: str, data: dict[str, Any]
    ) -> None:
        """What follows a job's end: its dedup key and quota freed, its outcome counted in
        the tenant's usage, metrics, the keeper told."""
        # Key and slot run out on their own at the job's deadline if the store is unreachable.
        with contextlib.suppress(DependencyUnavailableError):
            if job.dedup_key:
                await self.store.release_dedup(job.dedup_key, job.job_id)
            await self.quotas.give_back(job)
            await self.quotas.usage.record_outcome(job.tenant, status)
        if status == "succeeded":
            self.succeeded += 1
            self.recent_costs.append(_cost(data))
        log.info("generation %s %s", job.job_id, status, extra=generation_line(job, status, data))
        metrics().generations.inc(tags={"status": status})
        metrics().generation_seconds.observe(time.time() - job.created_at, tags={"status": status})
        used = data.get("usage", {}).get("agents", {}) if event == "result" else {}
        error_s = None
        # The job has ended either way; an unreachable keeper forgets it at its deadline.
        with contextlib.suppress(KeeperUnavailableError):
            error_s = await self.keeper.finish_job(job.job_id, used, _kind(job))
        if error_s is not None and event == "result":
            late = "late" if error_s > 0 else "early"
            metrics().estimate_error.observe(abs(error_s), tags={"direction": late})

    async def _stage(
        self, task: AgentTask, meta: CallMeta, emit: Callable[[StageEvent], None]
    ) -> AgentOutcome:
        """One agent call on its pool, retried on another replica if this one fails."""
        handle = self.handles[task.agent]
        attempts = self.args.ingress.stage_attempts
        for attempt in range(1, attempts + 1):
            try:
                started = time.monotonic()
                async with asyncio.timeout(self.args.ingress.stage_timeout_s):
                    outcome = await self._beating(handle, task, meta)
                self._count(outcome, meta.tenant, time.monotonic() - started)
                await self._bill(meta.tenant, outcome)
                return outcome
            except RayTaskError as exc:
                if isinstance(exc.cause, GatewayError | PipelineError):
                    raise exc.cause from None
                reason = f"{type(exc.cause).__name__} in the replica"
            except (RayError, TimeoutError, ReplicaSilentError) as exc:
                reason = type(exc).__name__
            if attempt < attempts:
                metrics().attempts.inc(tags={"agent": task.agent, "reason": "replica"})
                emit(StageEvent(task.agent, "retrying", attempt=attempt + 1, error=reason))
                await asyncio.sleep(self.args.ingress.stage_retry_pause_s * 3 ** (attempt - 1))
        raise StageFailedError(
            f"{task.agent} failed {attempts} times", agent=task.agent, retry_after_s=10
        )

    def _count(self, outcome: AgentOutcome, tenant: str, seconds: float) -> None:
        """A stage's latency, its repairs and what its calls cost (by tenant: what each
        integrator's users spend), in the metrics."""
        recorder = metrics()
        recorder.stage_seconds.observe(seconds, tags={"agent": outcome.agent})
        recorder.attempts.inc(tags={"agent": outcome.agent, "reason": "first"})
        if outcome.attempts > 1 and outcome.calls:  # a cached answer was repaired before
            tags = {"agent": outcome.agent, "reason": "repair"}
            recorder.attempts.inc(outcome.attempts - 1, tags=tags)
        for call in outcome.calls:
            price = self.args.pipeline.price_of(call.model)
            if price is not None:
                recorder.cost.inc(call.cost(price), tags={"model": call.model, "tenant": tenant})

    async def _bill(self, tenant: str, outcome: AgentOutcome) -> None:
        """Add a stage's calls to its tenant's usage (best effort: a store outage loses
        the line, not the generation)."""
        with contextlib.suppress(DependencyUnavailableError):
            await self.quotas.usage.record_calls(tenant, outcome.agent, outcome.calls)

    async def _beating(self, handle: Any, task: AgentTask, meta: CallMeta) -> AgentOutcome:
        """The stage's outcome, or ``ReplicaSilentError`` when its replica stops beating."""
        stream = handle.options(stream=True).run_beating.remote(task, meta)
        silence = self.args.ingress.replica_silence_s
        try:
            while True:
                # Not wait_for: it waits for the cancelled call to finish, and a call routed
                # to a dead replica never does.
                beat = asyncio.ensure_future(anext(stream))
                done, _ = await asyncio.wait({beat}, timeout=silence)
                if not done:
                    beat.cancel()
                    raise ReplicaSilentError(f"{task.agent} replica silent for {silence} s")
                with contextlib.suppress(StopAsyncIteration):
                    if (outcome := beat.result()) is not None:
                        return cast(AgentOutcome, outcome)
                    continue
                raise ReplicaSilentError(f"{task.agent} replica ended without an answer")
        finally:
            stream.cancel()

    async def adopt_stale(self) -> int:
        """Take over jobs whose replica went silent; returns how many this one took.

        The claim is atomic, so of several sweepers one wins; a job out of attempts or past
        its deadline is ended with a clear error instead of being run again.
        """
        taken = 0
        for stale in await self.store.stale_jobs(STALE_AFTER_S):
            if stale.job_id in self.tasks:
                continue
            job = await self.store.claim_job(
                stale.job_id, self.replica_id, stale_after_s=STALE_AFTER_S
            )
            if job is None:
                continue  # another replica took it first, or it ended meanwhile
            fence = Fence(self.replica_id, job.epoch)
            exhausted = self._exhausted(job)
            if exhausted is not None:
                metrics().job_ownership.inc(tags={"event": "exhausted"})
                data = exhausted.to_json()
                ttl = self.args.ingress.job_ttl_s
                await self.store.end_job(job.job_id, fence, "failed", "error", data, ttl)
                await self._ended(job, "failed", "error", data)
                continue
            metrics().job_ownership.inc(tags={"event": "adopted"})
            lost = {"agent": "gateway", "status": "retrying", "attempt": job.attempts}
            await self.store.append_event(
                job.job_id, "stage", lost | {"error": "replica lost"}, fence
            )
            self.start(job, Plan(needs=tuple(_groups(job.plan)), confidence=1.0))
            taken += 1
        return taken

    def _exhausted(self, job: JobRecord) -> StageFailedError | None:
        """Why ``job`` must not run again, if it must not."""
        ingress = self.args.ingress
        if job.attempts > ingress.job_attempts:
            return StageFailedError(
                f"the job's gateway replica was lost {job.attempts - 1} times",
                agent="gateway",
                retry_after_s=30,
            )
        if time.time() > job.created_at + ingress.job_deadline_s:
            return StageFailedError(
                f"the generation did not finish within {ingress.job_deadline_s:g} s",
                agent="gateway",
                retry_after_s=30,
            )
        return None


class _Heartbeat:
    """One job's heartbeat: renew its ownership, report its place in the queue, obey cancels.

    When the renewal finds the job held by someone else, it cancels the job's task, which
    then writes nothing more.
    """

    def __init__(self, runner: JobRunner, job_id: str, fence: Fence, joblog: JobLog) -> None:
        self.runner = runner
        self.job_id = job_id
        self.fence = fence
        self.joblog = joblog
        self.last_queue: dict[str, float] | None = None
        self.last_beat = time.monotonic()

    async def step(self) -> None:
        runner, job_id = self.runner, self.job_id
        if time.monotonic() - self.last_beat >= HEARTBEAT_S:
            try:
                held = await runner.store.renew_job(job_id, self.fence)
            except KeyError:  # the store lost it (restarted empty): the owner writes it again
                await self.joblog.restore()
                held = True
            if not held:
                runner.lose(job_id)
                raise StopLoop
            self.last_beat = time.monotonic()
        queue = await runner.keeper.job_queue(job_id)
        before, self.last_queue = self.last_queue, queue
        if queue and (before is None or queue["position"] != before["position"]):
            self.joblog.append("queued", queue)
        if await runner.store.cache_get(CANCELS, job_id) is not None:
            task = runner.tasks.get(job_id)
            if task is not None:
                task.cancel()
            raise StopLoop


class ReplicaSilentError(Exception):
    """An agent replica stopped beating: dead or wedged. Internal: the stage is retried."""


def _groups(agents: list[str]) -> list[Group]:
    seen: list[Group] = []
    for name in agents:
        group = SPEC_BY_NAME[name].group
        if group is not None and group not in seen:
            seen.append(group)
    return seen


def _kind(job: JobRecord) -> str:
    """What capacity planning counts the job as: an edit of a page given, or a new page."""
    return "edit" if job.request.get("page") else "new_page"


def _cost(data: dict[str, Any]) -> float:
    total = data.get("usage", {}).get("total", {})
    return float(total.get("cost_usd", 0.0))
