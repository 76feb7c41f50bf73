"""Parsing and validation of Messages requests, with the real API's 400 messages.

The real API validates bodies with pydantic-style messages (``max_tokens: Field
required``); the same models here give the same wording, and the checks pydantic cannot
express (model limits, cache breakpoints, tool_choice) follow with the API's phrasing.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from claude_sim.config import ModelSpec
from claude_sim.errors import InvalidRequestError

API_VERSIONS = ("2023-06-01", "2026-10-21")
SAMPLING_REJECTED_FROM = "2026-10-21"
MAX_CACHE_BREAKPOINTS = 4


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CacheControl(_Body):
    type: Literal["ephemeral"]
    ttl: Literal["5m", "1h"] = "5m"


class TextBlock(_Body):
    type: Literal["text"]
    text: str
    cache_control: CacheControl | None = None
    citations: list[Any] | None = None


class ImageBlock(_Body):
    type: Literal["image"]
    source: dict[str, Any]
    cache_control: CacheControl | None = None


class DocumentBlock(_Body):
    type: Literal["document"]
    source: dict[str, Any]
    title: str | None = None
    context: str | None = None
    citations: dict[str, Any] | None = None
    cache_control: CacheControl | None = None


class ToolUseBlock(_Body):
    type: Literal["tool_use"]
    id: str
    name: str
    input: dict[str, Any]
    cache_control: CacheControl | None = None
    caller: dict[str, Any] | None = None
    toolset_name: str | None = None


class ToolResultBlock(_Body):
    type: Literal["tool_result"]
    tool_use_id: str
    content: str | list[TextBlock | ImageBlock] = ""
    is_error: bool = False
    cache_control: CacheControl | None = None


class ThinkingBlock(_Body):
    type: Literal["thinking"]
    thinking: str
    signature: str


ContentBlock = Annotated[
    TextBlock | ImageBlock | DocumentBlock | ToolUseBlock | ToolResultBlock | ThinkingBlock,
    Field(discriminator="type"),
]


class Message(_Body):
    role: Literal["user", "assistant"]
    content: str | list[ContentBlock]


class Tool(_Body):
    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,128}$")
    description: str | None = None
    input_schema: dict[str, Any]
    cache_control: CacheControl | None = None
    type: Literal["custom"] | None = None
    strict: bool | None = None


class ToolChoiceAuto(_Body):
    type: Literal["auto"]
    disable_parallel_tool_use: bool | None = None


class ToolChoiceAny(_Body):
    type: Literal["any"]
    disable_parallel_tool_use: bool | None = None


class ToolChoiceTool(_Body):
    type: Literal["tool"]
    name: str
    disable_parallel_tool_use: bool | None = None


class ToolChoiceNone(_Body):
    type: Literal["none"]


ToolChoice = Annotated[
    ToolChoiceAuto | ToolChoiceAny | ToolChoiceTool | ToolChoiceNone,
    Field(discriminator="type"),
]


class Metadata(_Body):
    user_id: str | None = None


class CountTokensRequest(_Body):
    """The body of ``POST /v1/messages/count_tokens``."""

    model: str
    messages: list[Message] = Field(min_length=1)
    system: str | list[TextBlock] | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    thinking: dict[str, Any] | None = None
    output_config: dict[str, Any] | None = None
    mcp_servers: list[Any] | None = None
    context_management: dict[str, Any] | None = None


class MessagesRequest(CountTokensRequest):
    """The body of ``POST /v1/messages``."""

    max_tokens: int = Field(ge=1)
    stream: bool = False
    stop_sequences: list[str] | None = None
    metadata: Metadata | None = None
    temperature: float | None = Field(default=None, ge=0, le=1)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
    service_tier: Literal["auto", "standard_only"] | None = None
    container: Any = None
    inference_geo: str | None = None


def _loc(loc: tuple[int | str, ...]) -> str:
    """Field path as the API prints it, without pydantic's union-member labels."""
    parts = [str(p) for p in loc if isinstance(p, int) or ("[" not in p and "-" not in p)]
    return ".".join(parts)


def _first_error(err: ValidationError) -> str:
    errors = err.errors(include_url=False)
    # A str | list union reports both branches; the deepest path is the informative one.
    best = max(errors, key=lambda e: len(e["loc"]))
    return f"{_loc(best['loc'])}: {best['msg']}"


def parse_json(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object, or the API's 400."""
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRequestError(
            f"There was an error parsing the body of your request: {exc}"
        ) from None
    if not isinstance(body, dict):
        raise InvalidRequestError("Request body must be a JSON object")
    return body


def parse_messages(body: dict[str, Any]) -> MessagesRequest:
    """A validated Messages request, or the API's 400."""
    try:
        return MessagesRequest.model_validate(body)
    except ValidationError as exc:
        raise InvalidRequestError(_first_error(exc)) from None


def parse_count_tokens(body: dict[str, Any]) -> CountTokensRequest:
    """A validated count_tokens request, or the API's 400."""
    try:
        return CountTokensRequest.model_validate(body)
    except ValidationError as exc:
        raise InvalidRequestError(_first_error(exc)) from None


def cache_controls(req: CountTokensRequest) -> list[CacheControl]:
    """Every cache breakpoint of the request, in prefix order (tools, system, messages)."""
    found: list[CacheControl] = [t.cache_control for t in req.tools or [] if t.cache_control]
    if isinstance(req.system, list):
        found += [b.cache_control for b in req.system if b.cache_control]
    for message in req.messages:
        if isinstance(message.content, list):
            found += [cc for b in message.content if (cc := getattr(b, "cache_control", None))]
    return found


def check_semantics(
    req: CountTokensRequest, model: ModelSpec, api_version: str, prompt_tokens: int
) -> None:
    """The checks beyond the body's shape, raising the API's 400 on the first that fails."""
    if isinstance(req, MessagesRequest):
        _check_generation(req, model, api_version)
    _check_contents(req)
    _check_breakpoints(req)
    _check_tools(req, model)
    if prompt_tokens > model.context_window:
        raise InvalidRequestError(
            f"prompt is too long: {prompt_tokens} tokens > {model.context_window} maximum"
        )


def _check_generation(req: MessagesRequest, model: ModelSpec, api_version: str) -> None:
    if req.max_tokens > model.max_output_tokens:
        raise InvalidRequestError(
            f"max_tokens: {req.max_tokens} > {model.max_output_tokens}, which is the maximum "
            f"allowed number of output tokens for {model.id}"
        )
    if api_version >= SAMPLING_REJECTED_FROM:
        for name in ("temperature", "top_p", "top_k"):
            if getattr(req, name) is not None:
                raise InvalidRequestError(
                    f"{name}: sampling parameters are not supported with anthropic-version "
                    f"{api_version}; remove `{name}` from the request"
                )


def _check_contents(req: CountTokensRequest) -> None:
    for i, message in enumerate(req.messages):
        if isinstance(message.content, list) and not message.content and i < len(req.messages) - 1:
            raise InvalidRequestError(
                f"messages.{i}.content: all messages must have non-empty content"
            )
        blank = isinstance(message.content, str) and not message.content.strip()
        if blank and message.role == "user":
            raise InvalidRequestError(f"messages.{i}: user messages must have non-empty content")


def _check_breakpoints(req: CountTokensRequest) -> None:
    breakpoints = cache_controls(req)
    if len(breakpoints) > MAX_CACHE_BREAKPOINTS:
        raise InvalidRequestError(
            f"A maximum of {MAX_CACHE_BREAKPOINTS} blocks with cache_control may be provided. "
            f"Found {len(breakpoints)}."
        )
    seen_5m = False
    for cc in breakpoints:
        if cc.ttl == "5m":
            seen_5m = True
        elif seen_5m:
            raise InvalidRequestError(
                "a ttl='1h' cache_control block must not come after a ttl='5m' cache_control "
                "block; longer TTLs must come first"
            )


def _check_tools(req: CountTokensRequest, model: ModelSpec) -> None:
    names = [t.name for t in req.tools or []]
    if len(set(names)) != len(names):
        raise InvalidRequestError("tools: Tool names must be unique.")
    for i, tool in enumerate(req.tools or []):
        if tool.input_schema.get("type") != "object":
            raise InvalidRequestError(f"tools.{i}.input_schema.type: Input should be 'object'")
    choice = req.tool_choice
    if choice is None or choice.type not in ("any", "tool"):
        return
    if not req.tools:
        raise InvalidRequestError(
            "tool_choice: tool_choice may only be specified while providing tools."
        )
    if not model.forced_tool_choice:
        raise InvalidRequestError(
            f"tool_choice: forced tool use (type '{choice.type}') is not supported on "
            f"{model.id}; use tool_choice 'auto' or 'none'"
        )
    if isinstance(choice, ToolChoiceTool) and choice.name not in names:
        raise InvalidRequestError(f"tool_choice.name: Tool '{choice.name}' not found in tools")
