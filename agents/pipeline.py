"""The agent DAG: plan, run each agent when its inputs are ready, merge edits, diff the page.

layout -> components -> {events, styles, animation} in parallel -> review; analyzers run
before their generators; component generation fans out per affected section. Agents the
plan skips are bypassed (a dependant waits for their nearest running ancestors).
Operations are merged in pipeline order (per-section results in section order), so the
result does not depend on which call finished first. How an agent is called is injected
(``CallAgent``): in-process through the SDK, or through Ray deployments by the gateway.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import jsonpatch

from agents.apply import apply_ops
from agents.config import PipelineConfig, Price
from agents.ops import Op
from agents.outputs import ComponentAnalysis, ops_of
from agents.page import Page, empty_page
from agents.planner import GROUPS, Group, Plan, plan_instruction
from agents.prompting import AgentTask, GenerationContext
from agents.retrieval import CatalogIndex
from agents.runner import AgentOutcome
from agents.specs import SPEC_BY_NAME, SPECS, ancestors, waits_for
from agents.usage import UsageTotals

CallAgent = Callable[[AgentTask], Awaitable[AgentOutcome]]
NEW_PAGE_GROUPS: tuple[Group, ...] = ("layout", "components", "styles")


@dataclass(frozen=True)
class GenerationRequest:
    """What a user asked for: an instruction, on an existing page or a new one."""

    page_id: str
    instruction: str
    page: Page | None = None
    groups: tuple[Group, ...] | None = None
    """Forces the plan instead of the planner's choice."""


@dataclass(frozen=True)
class StageEvent:
    """Progress of one agent, for streaming to the user."""

    agent: str
    status: Literal["started", "completed", "failed", "retrying"]
    attempt: int = 1
    duration_ms: int | None = None
    usage: dict[str, Any] | None = None
    sections: tuple[str, ...] = ()
    error: str | None = None

    def to_data(self) -> dict[str, Any]:
        """The ``stage`` event's JSON payload: fields left unset are omitted."""
        data: dict[str, Any] = {"agent": self.agent, "status": self.status, "attempt": self.attempt}
        if self.duration_ms is not None:
            data["duration_ms"] = self.duration_ms
        if self.usage is not None:
            data["usage"] = self.usage
        if self.sections:
            data["sections"] = list(self.sections)
        if self.error:
            data["error"] = self.error
        return data


OnEvent = Callable[[StageEvent], None]


@dataclass
class GenerationResult:
    """The new page, how it differs from the sent one, the review, and the bill."""

    page: Page
    patch: list[dict[str, Any]] | None
    review: dict[str, Any] | None
    plan: Plan
    usage: dict[str, UsageTotals]
    total: UsageTotals
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "page": self.page.model_dump(mode="json"),
            "patch": self.patch,
            "review": self.review,
            "plan": list(self.plan.agents),
            "skipped": list(self.plan.skipped),
            "usage": {
                "agents": {k: v.as_dict() for k, v in self.usage.items()},
                "total": self.total.as_dict(),
            },
            "warnings": self.warnings,
        }


def make_plan(request: GenerationRequest) -> Plan:
    """The planner's choice, or the forced groups; a new page always gets its basics."""
    has_page = request.page is not None
    if request.groups is None:
        return plan_instruction(request.instruction, has_page=has_page)
    wanted = set(request.groups) | (set() if has_page else set(NEW_PAGE_GROUPS))
    return Plan(needs=tuple(g for g in GROUPS if g in wanted), confidence=1.0)


class Pipeline:
    """Runs generations under one config, calling agents through ``call_agent``."""

    def __init__(
        self,
        config: PipelineConfig,
        call_agent: CallAgent,
        *,
        catalog_index: CatalogIndex | None = None,
    ) -> None:
        self._config = config
        self._call = call_agent
        self._index = catalog_index

    async def context(self, request: GenerationRequest) -> GenerationContext:
        """The block every agent of the generation shares, with the retrieved catalog entries."""
        docs: tuple[str, ...] = ()
        if self._index is not None:
            entries = await asyncio.to_thread(
                self._index.search, request.instruction, self._config.catalog_entries
            )
            docs = tuple(entry.doc() for entry in entries)
        return GenerationContext(request.page_id, request.instruction, request.page, docs)

    async def run(
        self,
        request: GenerationRequest,
        *,
        plan: Plan | None = None,
        on_event: OnEvent | None = None,
    ) -> GenerationResult:
        plan = plan or make_plan(request)
        context = await self.context(request)
        run = _GenerationRun(self._call, request, plan, context, on_event, self._config.price_of)
        await run.execute()
        return run.result(self._config)


class _GenerationRun:
    """One generation in progress."""

    def __init__(
        self,
        call: CallAgent,
        request: GenerationRequest,
        plan: Plan,
        context: GenerationContext,
        on_event: OnEvent | None,
        price_of: Callable[[str], Price | None],
    ) -> None:
        self.call = call
        self.price_of = price_of  # stage events priced as the result is
        self.request = request
        self.plan = plan
        self.context = context
        self.emit = on_event or (lambda event: None)
        self.base = request.page or empty_page(request.page_id)
        self.running = frozenset(plan.agents)
        self.outcomes: dict[str, list[AgentOutcome]] = {}
        self.ops: dict[str, list[Op]] = {}
        self.done: dict[str, asyncio.Event] = {name: asyncio.Event() for name in self.running}

    async def execute(self) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                for name in self.plan.agents:
                    group.create_task(self._agent(name))
        except BaseExceptionGroup as group_error:
            # Callers get the first failure itself, typed, not the task group's wrapper.
            raise group_error.exceptions[0] from None

    def _state(self, upto: tuple[str, ...]) -> tuple[Page, tuple[dict[str, Any], ...]]:
        ops = [op for name in upto for op in self.ops.get(name, [])]
        applied = apply_ops(self.base, ops)
        return applied.page, tuple(applied.records)

    def _tasks(self, name: str) -> list[AgentTask]:
        spec = SPEC_BY_NAME[name]
        state, changes = self._state(ancestors(name, self.running))
        upstream = tuple(
            (dep, self.outcomes[dep][0].output)
            for dep in spec.depends_on
            if dep in self.outcomes and not SPEC_BY_NAME[dep].fan_out
        )
        task = AgentTask(name, self.context, state, changes, upstream)
        if not spec.fan_out:
            return [task]
        briefs: dict[str, str] = {}
        if "component_analyzer" in self.outcomes:
            analysis = ComponentAnalysis.model_validate(
                self.outcomes["component_analyzer"][0].output
            )
            for target in analysis.targets:
                kinds = ", ".join(target.component_types)
                briefs.setdefault(target.section_id, f"{target.brief} (types: {kinds})")
        # A new page fills every section; an edit only those the analysis named.
        scopes = [s.id for s in state.sections if self.request.page is None or s.id in briefs]
        if not scopes:
            return [task]
        return [
            AgentTask(name, self.context, state, changes, (), scope, briefs.get(scope, ""))
            for scope in scopes
        ]

    async def _call(self, task: AgentTask) -> AgentOutcome:
        return await self.call(task)

    async def _agent(self, name: str) -> None:
        for dep in waits_for(name, self.running):
            await self.done[dep].wait()
        spec = SPEC_BY_NAME[name]
        tasks = self._tasks(name)
        sections = tuple(t.scope for t in tasks if t.scope)
        self.emit(StageEvent(name, "started", sections=sections))
        started = time.monotonic()
        try:
            # A task group: when one section's call fails, its siblings are cancelled
            # rather than left to spend budget on a generation that has already failed.
            async with asyncio.TaskGroup() as group:
                calls = [group.create_task(self._call(t)) for t in tasks]
            outcomes = [call.result() for call in calls]
        except BaseExceptionGroup as group_error:
            # Whoever fails the stage (the API, an answer, the caller's transport), say so,
            # and raise the first failure itself, typed.
            exc = group_error.exceptions[0]
            self.emit(StageEvent(name, "failed", error=str(exc)))
            raise exc from None
        self.outcomes[name] = outcomes
        if spec.edits:
            self.ops[name] = [
                op for o in outcomes for op in ops_of(spec.output.model_validate(o.output))
            ]
        totals = UsageTotals()
        for outcome in outcomes:
            for call in outcome.calls:
                totals.add(call, self.price_of(call.model))
        self.emit(
            StageEvent(
                name,
                "completed",
                attempt=max(o.attempts for o in outcomes),
                duration_ms=round((time.monotonic() - started) * 1000),
                usage=totals.as_dict(),
                sections=sections,
            )
        )
        self.done[name].set()

    def result(self, config: PipelineConfig) -> GenerationResult:
        order = [s.name for s in SPECS if s.name in self.ops]
        applied = apply_ops(self.base, [op for name in order for op in self.ops[name]])
        patch = None
        if self.request.page is not None:
            patch = jsonpatch.make_patch(
                self.request.page.model_dump(mode="json"), applied.page.model_dump(mode="json")
            ).patch
        usage: dict[str, UsageTotals] = {}
        total = UsageTotals()
        for name in (s.name for s in SPECS if s.name in self.outcomes):
            totals = usage[name] = UsageTotals()
            for outcome in self.outcomes[name]:
                for call in outcome.calls:
                    totals.add(call, config.price_of(call.model))
            total.merge(totals)
        review = self.outcomes["review"][0].output if "review" in self.outcomes else None
        warnings = [
            f"{o.agent}: {w}" for outs in self.outcomes.values() for o in outs for w in o.warnings
        ]
        return GenerationResult(
            applied.page, patch, review, self.plan, usage, total, warnings=warnings + applied.errors
        )
