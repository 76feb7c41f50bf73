"""The HTTP ingress: the API of ``shared/notes/http-api.md`` as a FastAPI app on Ray Serve.

It authenticates tenants, refuses what would only queue forever (per-user rate limit,
admission control), attaches duplicates to the running job, answers repeats from the
result cache, starts jobs and streams their events. Every error is JSON with the right
status; once a stream has started, failures travel inside it as an ``error`` event.

No ``from __future__ import annotations`` here: Serve's class-based FastAPI ingress
re-signs the route methods, and FastAPI can then no longer resolve string annotations
(``request: Request`` would become a required query parameter).
"""

import asyncio
import json
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from ray import serve
from starlette.exceptions import HTTPException as StarletteHTTPException

from agents.errors import (
    AuthenticationError,
    InvalidRequestError,
    NocodeError,
    NotFoundError,
    PayloadTooLargeError,
    QueueFullError,
    RateLimitedError,
)
from agents.page import Page
from agents.pipeline import make_plan
from agents.planner import Group
from agents.retrieval import CatalogIndex
from serve_app.config import GatewayArgs, read_env
from serve_app.event_feed import EventFeeds
from serve_app.jobs import CANCELS, RESULT_CACHE, JobRunner, dedup_key, result_key, to_request
from serve_app.keeper import keeper_handle, shared_store
from serve_app.metrics import metrics
from serve_app.playground import PLAYGROUND_HTML
from serve_app.store import TERMINAL, JobRecord, StoredEvent, StoreUnavailableError

log = logging.getLogger("nocode.ingress")
app = FastAPI(
    title="nocode-ai gateway",
    version="1.0",
    description="Page generation by a pipeline of Claude agents, streamed as SSE.",
)


@app.exception_handler(StarletteHTTPException)
async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return JSONResponse(
        {"error": {"type": kind, "message": str(exc.detail)}}, status_code=exc.status_code
    )


@app.exception_handler(RequestValidationError)
async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    detail = jsonable_encoder(exc.errors())
    return JSONResponse(
        {
            "error": {
                "type": "invalid_request",
                "message": "the request is not valid",
                "detail": detail,
            }
        },
        status_code=422,
    )


class GenerateBody(BaseModel):
    """What a generation asks for."""

    model_config = ConfigDict(extra="forbid")

    instruction: str = Field(min_length=1, max_length=4000, description="What to change.")
    page: Page | None = Field(default=None, description="The current page; none: a new page.")
    user_id: str | None = Field(
        default=None, max_length=200, description="End user within the tenant (limits, fairness)."
    )
    priority: Literal["interactive", "batch"] = Field(
        default="interactive", description="Batch waits behind users."
    )
    agents: list[Group] | None = Field(default=None, description="Forces the agent groups.")
    stream: bool = Field(default=True, description="SSE stream, or 202 and a job to poll.")


class SeedBody(GenerateBody):
    """The seed API's body: the page id inside."""

    page_id: str = Field(min_length=1, max_length=200)


def error_response(error: NocodeError) -> JSONResponse:
    extra = dict(error.headers)
    if error.retry_after_s is not None:
        extra.setdefault("Retry-After", str(max(1, math.ceil(error.retry_after_s))))
    return JSONResponse({"error": error.to_json()}, status_code=error.status, headers=extra)


def frame(event: StoredEvent | tuple[int, str, dict[str, Any]]) -> bytes:
    ident, name, data = event if isinstance(event, tuple) else (event.id, event.event, event.data)
    return f"id: {ident}\nevent: {name}\ndata: {json.dumps(data)}\n\n".encode()


SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@serve.deployment
@serve.ingress(app)
class Ingress:
    """One ingress replica; ``agent_handles`` maps agent names to their deployments."""

    def __init__(self, args_json: str, agent_handles: dict[str, Any]) -> None:
        self.args = GatewayArgs.model_validate_json(args_json)
        env = read_env()
        self.tenants = env.tenant_keys
        if not self.tenants:
            if self.args.require_auth:
                raise RuntimeError("require_auth is set but NOCODE_API_KEYS is empty")
            log.warning(
                "auth is OFF: no tenant keys in NOCODE_API_KEYS; every caller is "
                "tenant 'public'. Set keys before exposing this service."
            )
        redis_url = env.redis_url.get_secret_value() if env.redis_url else None
        self.keeper = keeper_handle(self.args, redis_url)
        self.store = shared_store(self.keeper, redis_url)
        self.redis = redis_url is not None
        self.handles = agent_handles
        index = CatalogIndex.open(self.args.pipeline.retrieval)
        self.feeds = EventFeeds(self.store, block_s=self.args.ingress.ping_interval_s)
        self.jobs = JobRunner(self.args, self.store, self.keeper, agent_handles, index)
        self.cache_lookups = 0
        self.cache_hits = 0
        self._sweeper = asyncio.get_event_loop().create_task(self._sweep())

    async def _sweep(self) -> None:
        await self.keeper.ready.remote()
        while True:
            try:
                await self.jobs.adopt_stale()
            except (StoreUnavailableError, OSError):
                log.warning("store unreachable while looking for orphaned jobs")
            await asyncio.sleep(10)

    def tenant(self, request: Request) -> str:
        if not self.tenants:
            return "public"
        auth = request.headers.get("authorization", "")
        key = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        tenant = self.tenants.get(key) if key else None
        if tenant is None:
            raise AuthenticationError("a valid 'Authorization: Bearer <api key>' is required")
        return tenant

    async def body(self, request: Request, model: type[GenerateBody]) -> GenerateBody:
        declared = request.headers.get("content-length", "")
        limit = self.args.ingress.max_body_bytes
        if declared.isdigit() and int(declared) > limit:
            raise PayloadTooLargeError(f"the body exceeds {limit} bytes")
        raw = await request.body()
        if len(raw) > limit:
            raise PayloadTooLargeError(f"the body exceeds {limit} bytes")
        try:
            return model.model_validate_json(raw or b"{}")
        except ValidationError as exc:
            detail = json.loads(exc.json(include_url=False, include_input=False))
            first = detail[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            raise InvalidRequestError(f"{where}: {first['msg']}", detail=detail) from None

    @app.post(
        "/v1/pages/{page_id}/generate",
        status_code=200,
        openapi_extra={
            "requestBody": {
                "content": {"application/json": {"schema": GenerateBody.model_json_schema()}}
            }
        },
    )
    async def generate(self, page_id: str, request: Request) -> Response:
        """Start (or attach to) a generation; SSE stream or 202 with a job."""
        try:
            tenant = self.tenant(request)
            body = await self.body(request, GenerateBody)
            return await self.start(tenant, page_id, body)
        except NocodeError as exc:
            return error_response(exc)
        except StoreUnavailableError:
            return error_response(NocodeError("state store unreachable", retry_after_s=5))

    @app.post(
        "/agent/page",
        include_in_schema=True,
        openapi_extra={
            "requestBody": {
                "content": {"application/json": {"schema": SeedBody.model_json_schema()}}
            }
        },
    )
    async def seed_generate(self, request: Request) -> Response:
        """The seed API: ``POST /agent/page`` with the page id in the body."""
        try:
            tenant = self.tenant(request)
            body = await self.body(request, SeedBody)
            assert isinstance(body, SeedBody)
            return await self.start(tenant, body.page_id, body)
        except NocodeError as exc:
            return error_response(exc)

    async def start(self, tenant: str, page_id: str, body: GenerateBody) -> Response:
        user = body.user_id or "default"
        request_json = {"page_id": page_id, **body.model_dump(mode="json", exclude={"stream"})}
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
            dedup_key=dedup_key(tenant, user, page_id, body.instruction, body.page),
        )
        running = await self.store.claim_dedup(
            job.dedup_key or "", job.job_id, self.args.ingress.job_deadline_s
        )
        if running is not None and (existing := await self.store.get_job(running)):
            return self.respond(existing, body.stream, deduplicated=True)
        self.cache_lookups += 1
        cached = await self.store.cache_get(RESULT_CACHE, result_key(tenant, request))
        if cached is not None:
            self.cache_hits += 1
            metrics().cache_hits.inc(tags={"cache": "generation"})
            await self.store.release_dedup(job.dedup_key or "", job.job_id)
            return await self.replay(job, cached, body.stream)
        limited = await self.store.hit_rate_limit(
            f"user:{tenant}:{user}", self.args.ingress.user_generations_per_minute, 60.0
        )
        headers = {
            "RateLimit-Policy": f"{limited.limit};w=60",
            "RateLimit": f"limit={limited.limit}, remaining={limited.remaining}, "
            f"reset={math.ceil(limited.reset_s)}",
        }
        if not limited.allowed:
            await self.store.release_dedup(job.dedup_key or "", job.job_id)
            raise RateLimitedError(
                f"at most {limited.limit} generations per minute per user",
                retry_after_s=max(1.0, limited.retry_after_s),
            ).with_headers(headers)
        wait = await self.admission_wait(plan.agents)
        if wait > self.args.budget.admission_max_wait_s:
            await self.store.release_dedup(job.dedup_key or "", job.job_id)
            raise QueueFullError(
                f"the Claude budget is booked for {wait:.0f} s; try again later",
                retry_after_s=wait - self.args.budget.admission_max_wait_s + 1,
            )
        await self.store.create_job(job)
        await self.jobs.emit(
            job.job_id,
            "accepted",
            {
                "job_id": job.job_id,
                "plan": job.plan,
                "skipped": job.skipped,
                "deduplicated": False,
                "cached": False,
            },
        )
        self.jobs.start(job, plan)
        return self.respond(job, body.stream, headers=headers)

    async def admission_wait(self, agents: tuple[str, ...]) -> float:
        from agents.specs import SPEC_BY_NAME

        pools = {
            self.args.pool_of(self.args.pipeline.model(SPEC_BY_NAME[a].tier).id) for a in agents
        }
        waits: list[float] = await asyncio.gather(
            *(self.keeper.estimated_wait.remote(p) for p in pools)
        )
        backlog = self.jobs.cost.backlog_s(len(self.jobs.tasks))
        return max([backlog, *waits])

    async def replay(self, job: JobRecord, cached: dict[str, Any], stream: bool) -> Response:
        """A repeat answered from the result cache, recorded as a job of its own."""
        result = {**cached, "cached": True}
        job = job.model_copy(update={"status": "succeeded", "result": result})
        await self.store.create_job(job)
        await self.jobs.emit(
            job.job_id,
            "accepted",
            {
                "job_id": job.job_id,
                "plan": job.plan,
                "skipped": job.skipped,
                "deduplicated": False,
                "cached": True,
            },
        )
        await self.jobs.emit(job.job_id, "result", result)
        await self.store.expire_job(job.job_id, self.args.ingress.job_ttl_s)
        return self.respond(job, stream)

    def respond(
        self,
        job: JobRecord,
        stream: bool,
        *,
        deduplicated: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        if not stream:
            return JSONResponse(
                {
                    "job_id": job.job_id,
                    "status_url": f"/v1/jobs/{job.job_id}",
                    "events_url": f"/v1/jobs/{job.job_id}/events",
                    "deduplicated": deduplicated,
                },
                status_code=202,
                headers=dict(headers or {}),
            )
        first = None
        if deduplicated:
            first = (
                1,
                "accepted",
                {
                    "job_id": job.job_id,
                    "plan": job.plan,
                    "skipped": job.skipped,
                    "deduplicated": True,
                    "cached": False,
                },
            )
        return StreamingResponse(
            self.events(job.job_id, 1 if first else 0, first),
            media_type="text/event-stream",
            headers={**SSE_HEADERS, **dict(headers or {})},
        )

    async def events(
        self, job_id: str, after: int, first: tuple[int, str, dict[str, Any]] | None = None
    ) -> AsyncIterator[bytes]:
        """A job's events after ``after``, with pings while idle; ends at result or error."""
        if first is not None:
            yield frame(first)
        idle = 0
        try:
            async for batch in self.feeds.follow(job_id, after, self.args.ingress.ping_interval_s):
                if batch:
                    for event in batch:
                        yield frame(event)
                        after = event.id
                    continue
                idle += 1
                # Now and then, make sure the job still exists (it may have expired).
                if idle % 10 == 0 and await self.store.get_job(job_id) is None:
                    return
                yield b": ping\n\n"
        except StoreUnavailableError:
            yield frame(
                (
                    after,
                    "error",
                    {
                        "type": "store_unavailable",
                        "message": "state store unreachable",
                        "retry_after_s": 5,
                    },
                )
            )

    async def owned_job(self, request: Request, job_id: str) -> JobRecord:
        tenant = self.tenant(request)
        job = await self.store.get_job(job_id)
        if job is None or job.tenant != tenant:
            raise NotFoundError(f"no job {job_id}")
        return job

    @app.get("/v1/jobs/{job_id}")
    async def get_job(self, job_id: str, request: Request) -> Response:
        """A job's status, and its result or error once finished."""
        try:
            job = await self.owned_job(request, job_id)
        except NocodeError as exc:
            return error_response(exc)
        body: dict[str, Any] = {
            "job_id": job.job_id,
            "status": job.status,
            "plan": job.plan,
            "created_at": job.created_at,
            "updated_at": job.updated_at,
        }
        if job.result is not None:
            body["result"] = job.result
        if job.error is not None:
            body["error"] = job.error
        return JSONResponse(body)

    @app.get("/v1/jobs/{job_id}/events")
    async def job_events(self, job_id: str, request: Request) -> Response:
        """The job's SSE stream from the start, or after ``Last-Event-ID``."""
        try:
            await self.owned_job(request, job_id)
        except NocodeError as exc:
            return error_response(exc)
        last = request.headers.get("last-event-id", "0").strip()
        after = int(last) if last.isdigit() else 0
        return StreamingResponse(
            self.events(job_id, after), media_type="text/event-stream", headers=SSE_HEADERS
        )

    @app.delete("/v1/jobs/{job_id}")
    async def cancel_job(self, job_id: str, request: Request) -> Response:
        """Cancel a job; its stream ends with an ``error`` of type ``cancelled``."""
        try:
            job = await self.owned_job(request, job_id)
        except NocodeError as exc:
            return error_response(exc)
        if job.status not in TERMINAL and not await self.jobs.cancel(job_id):
            # Another replica runs it: its heartbeat sees the request within a second.
            await self.store.cache_set(CANCELS, job_id, {"at": time.time()}, 3600)
        return JSONResponse(
            {
                "job_id": job_id,
                "status": "cancelling" if job.status not in TERMINAL else job.status,
            },
            status_code=202,
        )

    @app.get("/v1/capacity")
    async def capacity(self, request: Request) -> Response:
        """Budget per model pool, measured cost per generation, cache hit ratio."""
        try:
            self.tenant(request)
        except NocodeError as exc:
            return error_response(exc)
        budget = await self.keeper.snapshot.remote()
        finished = [f for f in self.jobs.finished.values() if f["status"] == "succeeded"]
        costs = [f["cost_usd"] for f in finished]
        return JSONResponse(
            {
                "pools": budget["pools"],
                "generations": {
                    "finished_here": len(finished),
                    "mean_cost_usd": round(sum(costs) / len(costs), 6) if costs else None,
                },
                "result_cache": {
                    "lookups": self.cache_lookups,
                    "hits": self.cache_hits,
                    "hit_ratio": round(self.cache_hits / self.cache_lookups, 4)
                    if self.cache_lookups
                    else None,
                },
            }
        )

    @app.get("/healthz")
    async def healthz(self) -> Response:
        """The process is up."""
        return JSONResponse({"status": "ok"})

    @app.get("/readyz")
    async def readyz(self) -> Response:
        """The budget keeper, every agent pool and the store answer."""
        checks: dict[str, bool] = {}
        try:
            await asyncio.wait_for(self.keeper.ready.remote(), 5)
            checks["budget_keeper"] = True
        except Exception:
            checks["budget_keeper"] = False
        try:
            checks["store"] = await asyncio.wait_for(self.store.ping(), 5)
        except Exception:
            checks["store"] = False
        for name, handle in self.handles.items():
            try:
                await asyncio.wait_for(handle.ping.remote(), 5)
                checks[f"agent:{name}"] = True
            except Exception:
                checks[f"agent:{name}"] = False
        ready = all(checks.values())
        return JSONResponse(
            {"ready": ready, "checks": checks, "redis": self.redis},
            status_code=200 if ready else 503,
        )

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def playground(self) -> HTMLResponse:
        return HTMLResponse(PLAYGROUND_HTML)
