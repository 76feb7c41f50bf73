"""One agent call: build the request, send it, validate the answer, repair it once.

An answer is valid when it calls the agent's tool with input that parses as its output
model and whose ids exist on the page (for generators: whose operations apply). A failed
answer gets ``repair_attempts`` follow-up calls carrying the errors. After them, an answer
that parses is kept minus what does not fit the page (reported as warnings); one that does
not parse raises ``AgentOutputError``. Every call's usage is kept, repairs included.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import anthropic
from pydantic import ValidationError

from agents.apply import apply_ops
from agents.config import PipelineConfig
from agents.errors import AgentOutputError, ClaudeAPIError
from agents.outputs import ComponentAnalysis, EventsAnalysis, Review, ops_of
from agents.page import DocModel
from agents.prompting import AgentTask, Params, build_request, repair_request
from agents.specs import SPEC_BY_NAME, AgentSpec
from agents.usage import CallUsage

MessageJSON = dict[str, Any]
"""A Messages API reply as JSON: ``content``, ``usage``, ``model``, ``stop_reason``."""
Send = Callable[[Params], Awaitable[MessageJSON]]
"""Sends one Messages request; the gateway wraps this with its budget keeper."""


@dataclass(frozen=True)
class AgentOutcome:
    """A validated answer and what it cost; plain data, so it crosses process boundaries."""

    agent: str
    output: dict[str, Any]
    calls: tuple[CallUsage, ...]
    attempts: int
    duration_s: float
    records: tuple[dict[str, Any], ...] = field(default=())
    """For generators: the operations as applied to the task's page, with minted ids."""
    warnings: tuple[str, ...] = field(default=())
    """What was dropped from the last answer because it did not fit the page."""

    def to_json(self) -> dict[str, Any]:
        """Plain JSON, for a cache."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AgentOutcome:
        return cls(
            data["agent"],
            data["output"],
            tuple(CallUsage(**call) for call in data["calls"]),
            data["attempts"],
            data["duration_s"],
            tuple(data["records"]),
            tuple(data["warnings"]),
        )


def sdk_send(client: anthropic.AsyncAnthropic) -> Send:
    """A ``Send`` that calls the API through the SDK."""

    async def send(params: Params) -> MessageJSON:
        try:
            message = await client.messages.create(**params)
        except anthropic.APIStatusError as exc:
            raise ClaudeAPIError(
                f"Claude API answered {exc.status_code}: {exc.message}",
                upstream_status=exc.status_code,
            ) from None
        except anthropic.APIConnectionError as exc:
            raise ClaudeAPIError(
                f"Claude API unreachable: {type(exc).__name__}", upstream_status=None
            ) from None
        return message.model_dump(mode="json")

    return send


def _validation_problems(exc: ValidationError) -> list[str]:
    return [
        f"{'.'.join(str(p) for p in err['loc']) or 'input'}: {err['msg']}"
        for err in exc.errors(include_url=False)
    ][:20]


def check(spec: AgentSpec, output: DocModel, task: AgentTask) -> Checked:
    """What in a parsed answer does not fit the task's page, and the answer without it."""
    page = task.state
    if spec.edits:
        ops = ops_of(output)
        applied = apply_ops(page, ops, scope=task.scope)
        kept = output.model_copy(update={"ops": [ops[i] for i in applied.applied]})
        return Checked(applied.errors, kept, tuple(applied.records))
    sections = {s.id for s in page.sections}
    nodes = sections | {c.id for *_, c in page.walk()}
    listing = ", ".join(sorted(sections)) or "none yet"
    if isinstance(output, ComponentAnalysis):
        bad = [i for i, t in enumerate(output.targets) if t.section_id not in sections]
        problems = [
            f"targets.{i}.section_id: not a section of the page; the sections are {listing}"
            for i in bad
        ]
        field_name = "targets"
    elif isinstance(output, EventsAnalysis):
        bad = [i for i, n in enumerate(output.needs) if n.component_id not in nodes]
        problems = [f"needs.{i}.component_id: not a component of the page" for i in bad]
        field_name = "needs"
    elif isinstance(output, Review):
        bad = [i for i, n in enumerate(output.notes) if n.target_id and n.target_id not in nodes]
        problems = [f"notes.{i}.target_id: not on the page" for i in bad]
        field_name = "notes"
    else:
        return Checked([], output, ())
    items = getattr(output, field_name)
    kept = output.model_copy(update={field_name: [x for i, x in enumerate(items) if i not in bad]})
    return Checked(problems, kept, ())


def _leaves_page_empty(spec: AgentSpec, task: AgentTask, checked: Checked) -> bool:
    """An edit of an empty page (a new one) of which every operation was dropped: kept,
    it would return a page with nothing on it."""
    return spec.edits and not ops_of(checked.kept) and not task.state.sections


@dataclass(frozen=True)
class Checked:
    """The problems of an answer, and the answer reduced to what fits the page."""

    problems: list[str]
    kept: DocModel
    records: tuple[dict[str, Any], ...]


class AgentRunner:
    """Runs agent calls through ``send`` under one pipeline config."""

    def __init__(self, config: PipelineConfig, send: Send) -> None:
        self._config = config
        self._send = send

    async def run(self, task: AgentTask, params: Params | None = None) -> AgentOutcome:
        """The agent's validated answer to ``task``; ``AgentOutputError`` after repairs.

        ``params``: the first request, when the caller has built it already (to key a cache).
        """
        spec = SPEC_BY_NAME[task.agent]
        params = params or build_request(spec, task, self._config)
        started = time.monotonic()
        calls: list[CallUsage] = []
        problems: list[str] = []
        attempts = self._config.repair_attempts + 1
        for attempt in range(1, attempts + 1):
            reply = await self._send(params)
            calls.append(
                CallUsage.from_api(
                    str(reply.get("model") or params["model"]), reply.get("usage", {})
                )
            )
            checked, problems = self._parse(spec, task, reply)
            # Out of repairs, an answer that parses keeps what fits the page; the rest is
            # reported, so one bad reference does not sink a whole generation; but not an
            # answer that would leave a new page empty.
            usable = checked is not None and not (
                problems and _leaves_page_empty(spec, task, checked)
            )
            if checked is not None and (not problems or (attempt == attempts and usable)):
                return AgentOutcome(
                    spec.name,
                    checked.kept.model_dump(mode="json", exclude_none=True),
                    tuple(calls),
                    attempt,
                    time.monotonic() - started,
                    checked.records,
                    tuple(problems),
                )
            params = repair_request(params, reply.get("content", []), spec, problems, task.scope)
        raise AgentOutputError(
            f"{spec.name} gave no valid answer after {len(calls)} calls: {problems[0]}",
            agent=spec.name,
            problems=problems[:10],
            usage=[c.__dict__ for c in calls],
        )

    def _parse(
        self, spec: AgentSpec, task: AgentTask, reply: MessageJSON
    ) -> tuple[Checked | None, list[str]]:
        uses = [b for b in reply.get("content", []) if b.get("type") == "tool_use"]
        mine = [b for b in uses if b.get("name") == spec.tool_name]
        if not mine:
            if reply.get("stop_reason") == "max_tokens":
                return None, ["the answer was cut at max_tokens; make it shorter"]
            called = ", ".join(b.get("name", "?") for b in uses) or "no tool"
            return None, [f"you called {called}; call `{spec.tool_name}` instead"]
        try:
            output = spec.output.model_validate(mine[0].get("input", {}))
        except ValidationError as exc:
            return None, _validation_problems(exc)
        checked = check(spec, output, task)
        return checked, checked.problems
