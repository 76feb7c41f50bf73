"""The HTTP API's request bodies, and reading one within the size limit.

A body that does not fit its model is ``InvalidRequestError`` (422) naming the first field
at fault, with pydantic's detail; one over ``max_body_bytes`` is ``PayloadTooLargeError``,
counted as it arrives whatever ``Content-Length`` says. A submitted page is bounded in
sections, components, nesting and string lengths (``PageLimits``), and its components'
props are checked against the catalog, before any job starts.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request

from agents.catalog import load_catalog
from agents.page import Page
from agents.planner import Group
from serve_app.errors import InvalidRequestError, PayloadTooLargeError

PAGE_ID_PATTERN = r"^[A-Za-z0-9._-]{1,120}$"
"""What a page id may be (the contract): 1..120 letters, digits, '.', '_' or '-'."""


class PageLimits:
    """The most a submitted page may hold; a page past one is refused with 422."""

    sections = 40
    components = 400
    depth = 6
    """Components nested inside components, counting the section's own as 1."""
    string_chars = 4000
    props_per_component = 40


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _depth(components: list[Any]) -> int:
    return max((1 + _depth(c.children) for c in components), default=0)


def within_limits(page: Page | None) -> Page | None:
    """``page`` if it fits ``PageLimits`` and every component's props fit its catalog
    schema (safe links and sources included); ``ValueError`` naming what does not."""
    if page is None:
        return None
    limits = PageLimits
    components = [c for *_, c in page.walk()]
    if len(page.sections) > limits.sections:
        raise ValueError(f"a page holds at most {limits.sections} sections")
    if len(components) > limits.components:
        raise ValueError(f"a page holds at most {limits.components} components")
    if max((_depth(s.components) for s in page.sections), default=0) > limits.depth:
        raise ValueError(f"components nest at most {limits.depth} deep")
    if any(len(c.props) > limits.props_per_component for c in components):
        raise ValueError(f"a component has at most {limits.props_per_component} props")
    if any(len(s) > limits.string_chars for s in _strings(page.model_dump(mode="json"))):
        raise ValueError(f"a page's strings are at most {limits.string_chars} characters")
    catalog = load_catalog()
    for _, _, component in page.walk():
        problems = catalog.validate_props(component.type, component.props)
        if problems:
            raise ValueError(f"component {component.id} ({component.type}): {problems[0]}")
    return page


BoundedPage = Annotated[Page | None, AfterValidator(within_limits)]


class GenerateBody(BaseModel):
    """What a generation asks for."""

    model_config = ConfigDict(extra="forbid")

    instruction: str = Field(min_length=1, max_length=4000, description="What to change.")
    page: BoundedPage = Field(default=None, description="The current page; none: a new page.")
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

    page_id: str = Field(pattern=PAGE_ID_PATTERN, description="The page's id.")

    def job_request(self) -> dict[str, object]:
        return self.model_dump(mode="json", exclude={"stream", "page_id"})


B = TypeVar("B", bound=GenerateBody)


async def read_body(request: Request, model: type[B], limit: int) -> B:
    """The request's JSON body as ``model``, refused above ``limit`` bytes before parsing."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"the body exceeds {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:  # a chunked body, or a Content-Length that lied
            raise PayloadTooLargeError(f"the body exceeds {limit} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    try:
        return model.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        detail = json.loads(exc.json(include_url=False, include_input=False))
        first = detail[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise InvalidRequestError(f"{where}: {first['msg']}", detail=detail) from None
