"""The nine agents as data: model tier, prompt file, output model, dependencies, budget.

An agent's tool is ``submit_<name>`` with its output model's JSON schema; its prompt is
``prompts/<name>.md``. Dependencies name the agents whose results it reads; the executor
also orders it after every earlier agent of the pipeline that changes what it sees.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal

from agents.outputs import (
    AnimationPlan,
    ComponentAnalysis,
    ComponentPlan,
    EventsAnalysis,
    EventsPlan,
    LayoutAnalysis,
    LayoutPlan,
    Review,
    StylesPlan,
)
from agents.page import DocModel
from agents.planner import Group

Tier = Literal["fast", "smart"]


@dataclass(frozen=True)
class AgentSpec:
    """One agent of the pipeline."""

    name: str
    group: Group | None
    tier: Tier
    output: type[DocModel]
    depends_on: tuple[str, ...]
    max_tokens: int
    """Room for the largest answer expected; the gateway sends less once it has seen answers."""
    fan_out: bool = False
    """Runs once per affected section, in parallel."""
    edits: bool = False
    """Answers with page operations (``output.ops``)."""

    @property
    def tool_name(self) -> str:
        return f"submit_{self.name}"

    def prompt(self) -> str:
        return prompt_text(self.name)

    def tool(self) -> dict[str, Any]:
        """The tool definition the model fills in: the output model's schema."""
        return {
            "name": self.tool_name,
            "description": (self.output.__doc__ or self.name).strip().splitlines()[0],
            "input_schema": self.output.model_json_schema(),
        }


@cache
def prompt_text(name: str) -> str:
    """A prompt file shipped in ``agents/prompts``."""
    return (resources.files("agents") / "prompts" / f"{name}.md").read_text().strip()


SPECS: tuple[AgentSpec, ...] = (
    AgentSpec("layout_analyzer", "layout", "fast", LayoutAnalysis, (), 1_000),
    AgentSpec(
        "layout_generator", "layout", "smart", LayoutPlan, ("layout_analyzer",), 2_000, edits=True
    ),
    AgentSpec(
        "component_analyzer", "components", "fast", ComponentAnalysis, ("layout_generator",), 1_200
    ),
    AgentSpec(
        "component_generator",
        "components",
        "smart",
        ComponentPlan,
        ("component_analyzer",),
        3_000,
        fan_out=True,
        edits=True,
    ),
    AgentSpec("events_analyzer", "events", "fast", EventsAnalysis, ("component_generator",), 1_000),
    AgentSpec(
        "events_generator", "events", "smart", EventsPlan, ("events_analyzer",), 1_500, edits=True
    ),
    AgentSpec("styles", "styles", "fast", StylesPlan, ("component_generator",), 1_500, edits=True),
    AgentSpec(
        "animation", "animation", "fast", AnimationPlan, ("component_generator",), 1_000, edits=True
    ),
    AgentSpec("review", None, "smart", Review, ("events_generator", "styles", "animation"), 1_200),
)
SPEC_BY_NAME: dict[str, AgentSpec] = {spec.name: spec for spec in SPECS}


def ancestors(name: str, running: frozenset[str]) -> tuple[str, ...]:
    """Agents among ``running`` that ``name`` transitively depends on, in pipeline order."""
    seen: set[str] = set()
    stack = list(SPEC_BY_NAME[name].depends_on)
    while stack:
        dep = stack.pop()
        if dep not in seen:
            seen.add(dep)
            stack.extend(SPEC_BY_NAME[dep].depends_on)
    return tuple(s.name for s in SPECS if s.name in seen and s.name in running)


@cache
def path_after(name: str) -> int:
    """How many agents follow ``name`` on the longest chain of agents that depend on it."""
    dependents = [s.name for s in SPECS if name in s.depends_on]
    return max((1 + path_after(d) for d in dependents), default=0)


def waits_for(name: str, running: frozenset[str]) -> tuple[str, ...]:
    """The running agents ``name`` must wait for: its nearest running ancestors."""
    direct: list[str] = []
    stack = list(SPEC_BY_NAME[name].depends_on)
    seen: set[str] = set()
    while stack:
        dep = stack.pop()
        if dep in seen:
            continue
        seen.add(dep)
        if dep in running:
            direct.append(dep)
        else:
            stack.extend(SPEC_BY_NAME[dep].depends_on)
    return tuple(s.name for s in SPECS if s.name in direct)
