"""The OpenAPI document's replies: every route's answers, errors in the contract's shape.

FastAPI documents a route's success as an untyped ``200`` and its bad input as its own
``HTTPValidationError``; neither is what the gateway sends. The models here are what it
does send (the body of ``shared/notes/http-api.md``), so a client generated from
``/openapi.json`` reads the real replies, and a schema fuzzer can hold the gateway to them.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field

from serve_app.errors import InvalidRequestError
from serve_app.store import JobStatus


class _Reply(BaseModel):
    """A reply body: the fields named here are always there; others may be added."""

    model_config = ConfigDict(extra="allow")


class ErrorDetail(_Reply):
    type: str = Field(description="What went wrong, e.g. invalid_request, quota_exceeded.")
    message: str = Field(description="For people: what happened and what to do.")
    retry_after_s: float | None = Field(
        default=None, description="Seconds after which trying again may succeed."
    )


class ErrorBody(BaseModel):
    """Every error reply: ``{"error": {...}}``."""

    error: ErrorDetail


class JobAccepted(_Reply):
    """``202``: the job was accepted (or an identical running one attached)."""

    job_id: str
    status_url: str
    events_url: str
    deduplicated: bool


class JobView(_Reply):
    """A job's status, with its result or error once it ended."""

    job_id: str
    status: JobStatus
    plan: list[str]
    created_at: float
    updated_at: float
    result: dict[str, Any] | None = None
    error: ErrorDetail | None = None


class CancelAccepted(_Reply):
    job_id: str
    status: Literal["cancelling", "queued", "running", "succeeded", "failed", "cancelled"]


class UsageReport(_Reply):
    """The caller's usage by day (newest first) and its daily spend limit."""

    tenant: str
    days: list[dict[str, Any]]
    limit: dict[str, Any]


class Health(_Reply):
    status: str


class Readiness(_Reply):
    ready: bool
    status: Literal["ready", "degraded"]
    failing: list[str]
    checks: dict[str, bool]


SSE_EVENT = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {"enum": ["accepted", "queued", "stage", "result", "error"]},
        "data": {"type": "string", "contentMediaType": "application/json"},
        "id": {"type": "string", "pattern": "^[0-9]+$"},
    },
}
SSE = {"text/event-stream": {"schema": SSE_EVENT}}
"""A stream of the contract's events; in Open API 3.1 an event stream's ``schema`` is one
event's (its ``data`` the event's JSON, its ``id`` the job's event number)."""
ERRORS: dict[int, str] = {
    401: "No valid bearer key.",
    404: "No such job (or another tenant's).",
    413: "The body is larger than the limit.",
    422: "The request is not valid: `detail` says where.",
    429: "A rate limit, quota or the admission bound: retry after `Retry-After`.",
    503: "A dependency (store, budget) is unavailable: retry after `Retry-After`.",
}


def replies(
    ok: int, model: type[BaseModel] | None, *errors: int, sse: bool = False
) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of a route: its success and the errors it may answer."""
    out: dict[int | str, dict[str, Any]] = {}
    if model is not None:
        out[ok] = {"model": model, "description": model.__doc__ or "OK"}
    if sse:
        out[200] = {"description": "The generation's SSE stream.", "content": SSE}
    for status in errors:
        out[status] = {"model": ErrorBody, "description": ERRORS[status]}
    return out


BEARER = {"bearer": {"type": "http", "scheme": "bearer", "description": "A tenant's API key."}}
REF = "#/components/schemas/{model}"


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The ``openapi_extra`` of a route that reads its body itself (to bound its size before
    parsing): a required JSON body of ``model``, its parts in the document's components."""
    schema = model.model_json_schema(ref_template=REF)
    schema.pop("$defs", None)
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def finished(schema: dict[str, Any], bodies: tuple[type[BaseModel], ...]) -> dict[str, Any]:
    """``schema`` as served: the parts of the ``bodies`` among its components (where their
    references point), and the bearer key declared and required on every ``/v1`` route
    (and the seed's ``/agent/page``)."""
    components = schema.setdefault("components", {})
    for model in bodies:
        components.setdefault("schemas", {}).update(
            model.model_json_schema(ref_template=REF).get("$defs", {})
        )
    components["securitySchemes"] = BEARER
    for path, operations in schema["paths"].items():
        if path.startswith(("/v1/", "/agent/")):
            for operation in operations.values():
                operation["security"] = [{"bearer": []}]
    return schema


async def refuse_unknown_query(request: Request) -> None:
    """A dependency of every route: a query parameter the route does not declare is a
    ``422`` (a misspelt ``?day=3`` is told, not silently ignored).

    Async because a plain ``def`` dependency runs in a worker thread, and handing work to
    a thread makes anyio walk every task of the loop: with thousands of open streams,
    that walk was a fifth of the ingress's CPU."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    known = {param.alias for param in getattr(dependant, "query_params", ())}
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        raise InvalidRequestError(
            f"unknown query parameter {unknown[0]!r}",
            detail=[
                {"loc": ["query", name], "msg": "not a parameter of this route"} for name in unknown
            ],
        )
