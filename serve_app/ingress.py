"""The HTTP ingress: the API of ``shared/notes/http-api.md`` as a FastAPI app on Ray Serve.

Routes are thin: they authenticate, read the body, and hand over to admission
(``admission``), the job runner (``jobs``) and the streams (``streams``). Every error is
raised, never caught here: the handlers of ``error_handlers`` answer the contract's JSON.

No ``from __future__ import annotations`` here: Serve's class-based FastAPI ingress
re-signs the route methods, and FastAPI can then no longer resolve string annotations
(``request: Request`` would become a required query parameter).
"""

import asyncio
import logging
import time
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from ray import serve

from agents.planner import plan_instruction
from agents.retrieval import CatalogIndex
from serve_app.admission import Admission, Admitted, Attached, Decision
from serve_app.api_schema import (
    CancelAccepted,
    Health,
    JobAccepted,
    JobView,
    Readiness,
    UsageReport,
    body_schema,
    finished,
    refuse_unknown_query,
    replies,
)
from serve_app.bodies import PAGE_ID_PATTERN, GenerateBody, SeedBody, read_body
from serve_app.config import GatewayArgs, read_env
from serve_app.error_handlers import install_error_handlers
from serve_app.error_tracking import configure_error_tracking
from serve_app.errors import AuthenticationError, NotFoundError
from serve_app.event_feed import EventFeeds
from serve_app.job_keys import CANCELS
from serve_app.jobs import JobRunner
from serve_app.keeper_client import keeper_client
from serve_app.logs import configure_logs
from serve_app.playground import CSP, asset
from serve_app.store import TERMINAL, JobRecord, open_store
from serve_app.streams import JobStreams
from serve_app.supervised import supervise
from serve_app.tenant_quota import TenantQuotas

log = logging.getLogger("nocode.ingress")
app = FastAPI(
    title="nocode-ai gateway",
    version="1.0",
    description="Page generation by a pipeline of Claude agents, streamed as SSE.",
    # Served by the ingress itself, so that config can switch them off (``api_docs``).
    docs_url=None,
    redoc_url=None,
    openapi_url=None,
    dependencies=[Depends(refuse_unknown_query)],
)
install_error_handlers(app)
ORPHAN_SWEEP_S = 10.0
GENERATE_ERRORS = (401, 413, 422, 429, 503)
JOB_ERRORS = (401, 404, 422, 503)


# Defined above the class: a module function defined below it was not found when a route
# of the Serve ingress ran (NameError, seen here with Ray Serve 2.60).
async def _answers(call: Any, *, want: Any = None, timeout_s: float = 5.0) -> bool:
    """Whether a readiness probe answers in time (and, with ``want``, answers that)."""
    try:
        answer = await asyncio.wait_for(call, timeout_s)
    except Exception:  # whatever stops a probe from answering means not ready
        return False
    return want is None or answer == want


@serve.deployment
@serve.ingress(app)
class Ingress:
    """One ingress replica; ``agent_handles`` maps agent names to their deployments."""

    def __init__(self, args_json: str, agent_handles: dict[str, Any]) -> None:
        self.args = GatewayArgs.model_validate_json(args_json)
        configure_logs(self.args.log_format)
        env = read_env()
        configure_error_tracking(env.sentry_dsn, env.sentry_environment)
        self.tenants = env.tenant_keys
        if not self.tenants:
            if self.args.require_auth:
                raise RuntimeError(
                    "require_auth is set but no tenant keys are configured "
                    "(NOCODE_API_KEYS or NOCODE_API_KEYS_FILE)"
                )
            log.warning(
                "auth is OFF: no tenant keys in NOCODE_API_KEYS(_FILE); every caller is "
                "tenant 'public'. Set keys before exposing this service."
            )
        redis_url = env.redis_url.get_secret_value() if env.redis_url else None
        self.keeper = keeper_client(self.args, redis_url)
        self.store = open_store(redis_url, scope="cluster")
        self.redis = redis_url is not None
        self.handles = agent_handles
        index = CatalogIndex.open(self.args.pipeline.retrieval)
        plan_instruction("warm up")  # trains the planner's model now, not on the first request
        self.quotas = TenantQuotas(self.args, self.store)
        self.jobs = JobRunner(
            self.args, self.store, self.keeper, agent_handles, index, quotas=self.quotas
        )
        self.admission = Admission(self.args, self.store, self.keeper, quotas=self.quotas)
        feeds = EventFeeds(self.store, block_s=self.args.ingress.ping_interval_s)
        self.streams = JobStreams(feeds, self.args.ingress.ping_interval_s)
        self._sweeper = asyncio.get_event_loop().create_task(
            supervise("sweeper", self._sweep, ORPHAN_SWEEP_S)
        )

    async def _sweep(self) -> None:
        """Adopt the jobs of replicas that died (supervised: a failure is retried)."""
        await self.keeper.ready()
        await self.jobs.adopt_stale()

    def caller(self, request: Request) -> tuple[str, str]:
        """The caller's tenant and who it is when it names no user: its key, fingerprinted.

        With auth off every caller is tenant 'public', user 'default'.
        """
        if not self.tenants:
            return "public", "default"
        auth = request.headers.get("authorization", "")
        presented = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        key = self.tenants.lookup(presented) if presented else None
        if key is None:
            raise AuthenticationError("a valid 'Authorization: Bearer <api key>' is required")
        return key.tenant, key.key_id

    def tenant(self, request: Request) -> str:
        """The caller's tenant from its bearer key ('public' when auth is off)."""
        return self.caller(request)[0]

    @app.post(
        "/v1/pages/{page_id}/generate",
        openapi_extra=body_schema(GenerateBody),
        status_code=202,
        responses=replies(202, JobAccepted, *GENERATE_ERRORS, sse=True),
    )
    async def generate(
        self, page_id: Annotated[str, Path(pattern=PAGE_ID_PATTERN)], request: Request
    ) -> Response:
        """Start (or attach to) a generation; SSE stream or 202 with a job."""
        caller = self.caller(request)
        body = await read_body(request, GenerateBody, self.args.ingress.max_body_bytes)
        return await self._answer(caller, page_id, body)

    @app.post(
        "/agent/page",
        openapi_extra=body_schema(SeedBody),
        status_code=202,
        responses=replies(202, JobAccepted, *GENERATE_ERRORS, sse=True),
    )
    async def seed_generate(self, request: Request) -> Response:
        """The seed API: ``POST /agent/page`` with the page id in the body."""
        caller = self.caller(request)
        body = await read_body(request, SeedBody, self.args.ingress.max_body_bytes)
        return await self._answer(caller, body.page_id, body)

    async def _answer(self, caller: tuple[str, str], page_id: str, body: GenerateBody) -> Response:
        tenant, key_user = caller
        request_json = {**body.job_request(), "user_id": body.user_id or key_user}
        key_id = key_user if self.tenants else None
        decision: Decision = await self.admission.decide(tenant, page_id, request_json, key_id)
        if isinstance(decision, Attached):
            return self.streams.reply(decision.job, body.stream, deduplicated=True)
        if isinstance(decision, Admitted):
            await self.jobs.launch(decision.job, decision.plan, decision.estimate_s)
            return self.streams.reply(decision.job, body.stream, headers=decision.headers)
        job = await self.jobs.record_replay(decision.job, decision.result)
        return self.streams.reply(job, body.stream)

    async def owned_job(self, request: Request, job_id: str) -> JobRecord:
        """The caller's job; another tenant's is as missing as one that never was."""
        tenant = self.tenant(request)
        job = await self.store.get_job(job_id)
        if job is None or job.tenant != tenant:
            raise NotFoundError(f"no job {job_id}")
        return job

    @app.get("/v1/jobs/{job_id}", responses=replies(200, JobView, *JOB_ERRORS))
    async def get_job(self, job_id: str, request: Request) -> Response:
        """A job's status, and its result or error once finished."""
        job = await self.owned_job(request, job_id)
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

    @app.get(
        "/v1/jobs/{job_id}/events",
        response_class=StreamingResponse,
        responses=replies(200, None, *JOB_ERRORS, sse=True),
    )
    async def job_events(self, job_id: str, request: Request) -> Response:
        """The job's SSE stream from the start, or after ``Last-Event-ID``."""
        await self.owned_job(request, job_id)
        last = request.headers.get("last-event-id", "0").strip()
        return self.streams.response(job_id, int(last) if last.isdigit() else 0)

    @app.delete(
        "/v1/jobs/{job_id}", status_code=202, responses=replies(202, CancelAccepted, *JOB_ERRORS)
    )
    async def cancel_job(self, job_id: str, request: Request) -> Response:
        """Cancel a job; its stream ends with an ``error`` of type ``cancelled``."""
        job = await self.owned_job(request, job_id)
        running = job.status not in TERMINAL
        if running and not await self.jobs.cancel(job_id):
            # Another replica runs it: its heartbeat sees the request within a second.
            await self.store.cache_set(CANCELS, job_id, {"at": time.time()}, 3600)
        status = "cancelling" if running else job.status
        return JSONResponse({"job_id": job_id, "status": status}, status_code=202)

    @app.get("/v1/capacity", responses=replies(200, None, 401, 503))
    async def capacity(self, request: Request) -> Response:
        """An operator's view: budget per model pool, every tenant's queue, measured cost
        per generation, cache hit ratio. A tenant's: its own admitted jobs and wait."""
        tenant = self.tenant(request)
        budget = await self.keeper.snapshot()
        if self.tenants and tenant not in self.args.operator_tenants:
            mine = budget["tenants"].get(tenant) or {"admitted_jobs": 0, "tickets": 0}
            wait = mine.get("estimated_wait_s", 0.0)
            admission = mine | {"estimated_wait_s": wait}
            quota = await self.quotas.view(tenant)
            return JSONResponse({"tenant": tenant, "admission": admission, "quota": quota})
        costs = self.jobs.recent_costs
        lookups, hits = self.admission.cache_lookups, self.admission.cache_hits
        return JSONResponse(
            {
                "pools": budget["pools"],
                "tenants": budget["tenants"],
                "usage_per_generation": budget["usage_per_generation"],
                "generations": {
                    "finished_here": self.jobs.succeeded,
                    "mean_cost_usd": round(sum(costs) / len(costs), 6) if costs else None,
                },
                "result_cache": {
                    "lookups": lookups,
                    "hits": hits,
                    "hit_ratio": round(hits / lookups, 4) if lookups else None,
                },
            }
        )

    @app.get("/v1/usage", responses=replies(200, UsageReport, 401, 422, 503))
    async def usage(
        self, request: Request, days: Annotated[int, Query(ge=1, le=31)] = 7
    ) -> Response:
        """The caller's generations, tokens and cost by day and by agent, newest day
        first, and where it stands against its daily spend limit."""
        tenant = self.tenant(request)
        quota = self.quotas.quota_of(tenant)
        return JSONResponse(await self.quotas.usage.report(tenant, days, quota))

    @app.get("/healthz", responses=replies(200, Health))
    async def healthz(self) -> Response:
        """The process is up."""
        return JSONResponse({"status": "ok"})

    @app.get(
        "/readyz",
        responses={
            200: {"model": Readiness, "description": "Every check passes."},
            503: {"model": Readiness, "description": "Degraded: `failing` says what."},
        },
    )
    async def readyz(self) -> Response:
        """The budget keeper, every agent pool and the store answer."""
        checks = {"budget_keeper": await _answers(self.keeper.ready())}
        checks["store"] = await _answers(self.store.ping(), want=True)
        for name, handle in self.handles.items():
            checks[f"agent:{name}"] = await _answers(handle.ping.remote())
        ready = all(checks.values())
        # Degraded, not down: running jobs go on through a store outage (their owners keep
        # their events), but new work is refused until every check passes again.
        failing = sorted(name for name, ok in checks.items() if not ok)
        body = {"ready": ready, "status": "ready" if ready else "degraded", "failing": failing}
        return JSONResponse(
            {**body, "checks": checks, "redis": self.redis},
            status_code=200 if ready else 503,
        )

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi(self) -> Response:
        """The API's OpenAPI schema, unless ``api_docs`` is off."""
        self._docs_served()
        return JSONResponse(finished(app.openapi(), (GenerateBody, SeedBody)))

    @app.get("/docs", include_in_schema=False)
    async def docs(self) -> Response:
        """The OpenAPI UI, unless ``api_docs`` is off."""
        self._docs_served()
        return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} - docs")

    def _docs_served(self) -> None:
        if not self.args.api_docs:
            raise NotFoundError("the API docs are switched off here")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def playground(self) -> Response:
        """The playground page."""
        return self._asset("index.html")

    @app.get("/playground/{name}", include_in_schema=False)
    async def playground_file(self, name: str) -> Response:
        """The playground's scripts and stylesheet."""
        return self._asset(name)

    @staticmethod
    def _asset(name: str) -> Response:
        data, media_type = asset(name)
        return Response(data, media_type=media_type, headers={"content-security-policy": CSP})
