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
    GatewayError,
    InternalError,
    KeeperUnavailableError,
    StageFailedError,
)
from serve_app.job_keys import CANCELS, RESULT_CACHE, result_key, to_request
from serve_app.keeper import KeeperClient
from serve_app.metrics import metrics
from serve_app.store import TERMINAL, JobRecord, Store
from serve_app.streams import accepted_event

log = logging.getLogger("nocode.jobs")
HEARTBEAT_S = 5.0
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
    ) -> None:
        self.args = args
        self.store = store
        self.keeper = keeper
        self.handles = handles
        self.index = index
        self.replica_id = uuid.uuid4().hex[:12]
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.finished: dict[str, dict[str, Any]] = {}

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
        """Run ``job`` in the background of this replica."""
        self.tasks[job.job_id] = asyncio.create_task(self._run(job, plan))

    async def launch(self, job: JobRecord, plan: Plan, estimate_s: float) -> None:
        """Record an admitted job, its ``accepted`` event, and run it.

        If it cannot be recorded, the keeper stops counting it before the error goes on.
        """
        try:
            await self.store.create_job(job)
            accepted = accepted_event(job, deduplicated=False, cached=False)
            await self.emit(job.job_id, "accepted", {**accepted, "estimated_s": estimate_s})
        except BaseException:
            with contextlib.suppress(KeeperUnavailableError):  # the first error matters
                await self.keeper.finish_job(job.job_id, {})
            raise
        self.start(job, plan)

    async def cancel(self, job_id: str) -> bool:
        """Cancel a job running here; False when it does not run on this replica."""
        task = self.tasks.get(job_id)
        if task is None or task.done():
            return False
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return True

    async def emit(self, job_id: str, event: str, data: dict[str, Any]) -> None:
        await self.store.append_event(job_id, event, data)

    async def record_replay(self, job: JobRecord, cached: dict[str, Any]) -> JobRecord:
        """A repeat answered from the result cache, recorded as a finished job of its own."""
        result = {**cached, "cached": True}
        job = job.model_copy(update={"status": "succeeded", "result": result})
        await self.store.create_job(job)
        await self.emit(
            job.job_id, "accepted", accepted_event(job, deduplicated=False, cached=True)
        )
        await self.emit(job.job_id, "result", result)
        await self.store.expire_job(job.job_id, self.args.ingress.job_ttl_s)
        return job

    async def _run(self, job: JobRecord, plan: Plan) -> None:
        job = await self.store.update_job(
            job.job_id, status="running", owner=self.replica_id, heartbeat_at=time.time()
        )
        beat = asyncio.create_task(self._heartbeat(job.job_id))
        try:
            payload = await self._generate(job, plan)
            await self._finish(job, "succeeded", "result", payload)
        except asyncio.CancelledError:
            await self.keeper.cancel_job(job.job_id)
            await self._fail(job, "cancelled", CancelledError("the job was cancelled"))
        except TimeoutError:
            await self.keeper.cancel_job(job.job_id)
            deadline = self.args.ingress.job_deadline_s
            late = StageFailedError(
                f"the generation did not finish within {deadline:g} s", retry_after_s=30
            )
            await self._fail(job, "failed", late)
        except (GatewayError, PipelineError) as exc:
            await self._fail(job, "failed", exc)
        except Exception:
            error_id = f"err_{uuid.uuid4().hex[:16]}"
            log.exception("job %s failed unexpectedly (error id %s)", job.job_id, error_id)
            bug = InternalError("the generation failed unexpectedly; it was logged", id=error_id)
            await self._fail(job, "failed", bug)
        finally:
            beat.cancel()
            self.tasks.pop(job.job_id, None)

    async def _generate(self, job: JobRecord, plan: Plan) -> dict[str, Any]:
        """Run the pipeline, its stage events stored as they come; cache and return the result."""
        pending: list[asyncio.Task[None]] = []

        def on_stage(event: StageEvent) -> None:
            pending.append(asyncio.create_task(self.emit(job.job_id, "stage", event.to_data())))

        request = to_request(job.request)
        async with asyncio.timeout(self.args.ingress.job_deadline_s):
            result = await self.pipeline(job, on_stage).run(request, plan=plan, on_event=on_stage)
        await asyncio.gather(*pending)
        payload = result.to_json()
        payload["cached"] = False
        await self.store.cache_set(
            RESULT_CACHE,
            result_key(job.tenant, request),
            payload,
            self.args.ingress.result_ttl_s,
        )
        return payload

    async def _fail(self, job: JobRecord, status: str, error: GatewayError | PipelineError) -> None:
        await self._finish(job, status, "error", error.to_json())

    async def _finish(self, job: JobRecord, status: str, event: str, data: dict[str, Any]) -> None:
        await self.emit(job.job_id, event, data)
        fields: dict[str, Any] = {"status": status}
        fields["result" if event == "result" else "error"] = data
        await self.store.update_job(job.job_id, **fields)
        if job.dedup_key:
            await self.store.release_dedup(job.dedup_key, job.job_id)
        await self.store.expire_job(job.job_id, self.args.ingress.job_ttl_s)
        self.finished[job.job_id] = {"status": status, "at": time.time(), "cost_usd": _cost(data)}
        metrics().generations.inc(tags={"status": status})
        metrics().generation_seconds.observe(time.time() - job.created_at, tags={"status": status})
        used = data.get("usage", {}).get("agents", {}) if event == "result" else {}
        error_s = None
        # The job has ended either way; an unreachable keeper forgets it at its deadline.
        with contextlib.suppress(KeeperUnavailableError):
            error_s = await self.keeper.finish_job(job.job_id, used)
        if error_s is not None and event == "result":
            late = "late" if error_s > 0 else "early"
            metrics().estimate_error.observe(abs(error_s), tags={"direction": late})

    async def _heartbeat(self, job_id: str) -> None:
        """Keep the job marked alive, report its place in the budget queue, obey cancels."""
        last_queue: dict[str, float] | None = None
        last_beat = time.monotonic()
        while True:
            await asyncio.sleep(1.0)
            queue = await self.keeper.job_queue(job_id)
            if queue and (last_queue is None or queue["position"] != last_queue["position"]):
                await self.emit(job_id, "queued", queue)
            last_queue = queue
            if time.monotonic() - last_beat >= HEARTBEAT_S:
                last_beat = time.monotonic()
                await self.store.update_job(job_id, heartbeat_at=time.time())
            if await self.store.cache_get(CANCELS, job_id) is not None:
                self.tasks[job_id].cancel()
                return

    async def _stage(
        self, task: AgentTask, meta: CallMeta, emit: Callable[[StageEvent], None]
    ) -> AgentOutcome:
        """One agent call on its pool, retried on another replica if this one fails."""
        handle = self.handles[task.agent]
        attempts = self.args.ingress.stage_attempts
        for attempt in range(1, attempts + 1):
            try:
                async with asyncio.timeout(self.args.ingress.stage_timeout_s):
                    return await self._beating(handle, task, meta)
            except RayTaskError as exc:
                if isinstance(exc.cause, GatewayError | PipelineError):
                    raise exc.cause from None
                reason = f"{type(exc.cause).__name__} in the replica"
            except (RayError, TimeoutError, ReplicaSilentError) as exc:
                reason = type(exc).__name__
            if attempt < attempts:
                emit(StageEvent(task.agent, "retrying", attempt=attempt + 1, error=reason))
        raise StageFailedError(
            f"{task.agent} failed {attempts} times", agent=task.agent, retry_after_s=10
        )

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
        """Re-run jobs whose replica stopped beating; returns how many this one took."""
        taken = 0
        for job in await self.store.stale_jobs(STALE_AFTER_S):
            if job.status in TERMINAL or job.job_id in self.tasks:
                continue
            claimed = await self.store.update_job(
                job.job_id, owner=self.replica_id, heartbeat_at=time.time()
            )
            await self.emit(
                job.job_id,
                "stage",
                {"agent": "gateway", "status": "retrying", "attempt": 2, "error": "replica lost"},
            )
            plan = Plan(needs=tuple(_groups(claimed.plan)), confidence=1.0)
            self.start(claimed, plan)
            taken += 1
        return taken


class ReplicaSilentError(Exception):
    """An agent replica stopped beating: dead or wedged. Internal: the stage is retried."""


def _groups(agents: list[str]) -> list[Group]:
    seen: list[Group] = []
    for name in agents:
        group = SPEC_BY_NAME[name].group
        if group is not None and group not in seen:
            seen.append(group)
    return seen


def _cost(data: dict[str, Any]) -> float:
    total = data.get("usage", {}).get("total", {})
    return float(total.get("cost_usd", 0.0))
