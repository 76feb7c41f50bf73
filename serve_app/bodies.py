"""The HTTP API's request bodies, and reading one within the size limit.

A body that does not fit its model is ``InvalidRequestError`` (422) naming the first field
at fault, with pydantic's detail; one over ``max_body_bytes`` is ``PayloadTooLargeError``.
"""

from __future__ import annotations

import json
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request

from agents.page import Page
from agents.planner import Group
from serve_app.errors import InvalidRequestError, PayloadTooLargeError


class GenerateBody(BaseModel):
    """What a generation asks for."""

    model_config = ConfigDict(extra="forbid")

    instruction: str = Field(min_length=1, max_length=4000, description="What to change.")
    page: Page | None = Field(default=None, description="The current page; none: a new page.")
    user_id: str | None = Field(
        default=None,
        max_length=200,
        description="End user within the tenant (limits, fairness); without it, the API key.",
    )
    priority: Literal["interactive", "batch"] = Field(
        default="interactive", description="Batch waits behind users."
    )
    agents: list[Group] | None = Field(default=None, description="Forces the agent groups.")
    stream: bool = Field(default=True, description="SSE stream, or 202 and a job to poll.")

    def job_request(self) -> dict[str, object]:
        """The body as a job stores it (how it is answered, ``stream``, is not part of it)."""
        return self.model_dump(mode="json", exclude={"stream"})


class SeedBody(GenerateBody):
    """The seed API's body: the page id inside."""

    page_id: str = Field(min_length=1, max_length=200)

    def job_request(self) -> dict[str, object]:
        return self.model_dump(mode="json", exclude={"stream", "page_id"})


B = TypeVar("B", bound=GenerateBody)


async def read_body(request: Request, model: type[B], limit: int) -> B:
    """The request's JSON body as ``model``, refused above ``limit`` bytes before parsing."""
    declared = request.headers.get("content-length", "")
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
