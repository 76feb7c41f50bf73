"""Messages requests for the agents, laid out for Anthropic prompt caching.

A request is, in prefix order:

1. ``tools``: the output tools of every agent of the model tier, identical for all calls
   of that model (a per-agent tool list would split the cache by agent);
2. ``system``: the shared guide, the catalog index and the prompts of that tier's agents,
   one block marked with the long TTL: tools and system are the stable prefix;
3. a first user block with what every agent of one generation shares (the instruction,
   the page as sent, the retrieved catalog entries), marked with the 5-minute TTL so the
   generation's later calls read it;
4. a last user block with the agent's own task: its role, the changes so far, upstream
   results, its scope. It is never cached.

``tool_choice`` is the same for every call of a tier (``any``, or ``auto`` on models that
refuse forced tool use), because a different tool_choice would miss the messages cache;
the task block names the one tool to call.

The ``per_agent`` layout (``PipelineConfig.prompt_layout``) sends each agent only its own
tool and prompt, as a pipeline of independent agents would; it is what the seed baseline
uses and what the cost benchmark compares against.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from agents.catalog import load_catalog
from agents.config import ModelProfile, PipelineConfig
from agents.page import Page
from agents.specs import SPECS, AgentSpec, Tier, prompt_text
from claude_facts.tokens import count_text

Params = dict[str, Any]


def _unclosable(text: str, tag: str) -> str:
    """``text`` with every ``</tag`` written ``<\\/tag`` (JSON reads both the same)."""
    return re.sub(rf"</(\s*{tag})", r"<\\/\1", text, flags=re.I)


@dataclass(frozen=True)
class GenerationContext:
    """What every agent of one generation sees, identically: one cacheable block."""

    page_id: str
    instruction: str
    page: Page | None
    catalog_docs: tuple[str, ...] = ()

    def render(self) -> str:
        """The instruction and the page framed as data (see the guide): user text cannot
        close its own tags, so it cannot pose as the prompt around it."""
        instruction = _unclosable(self.instruction.strip(), "instruction")
        parts = ["## Instruction", f"<instruction>\n{instruction}\n</instruction>", ""]
        parts.append("## Page as sent")
        if self.page is None:
            parts.append(f"None: this request creates the new page {self.page_id!r}.")
        else:
            page = _unclosable(self.page.model_dump_json(exclude_defaults=True), "page")
            parts.append(f"<page>\n{page}\n</page>")
        if self.catalog_docs:
            parts += ["", "## Catalog entries relevant to the instruction", *self.catalog_docs]
        return "\n".join(parts)


@dataclass(frozen=True)
class AgentTask:
    """One agent call's input; plain data, so it crosses process boundaries."""

    agent: str
    context: GenerationContext
    state: Page
    """The page as this agent must see it: the sent page plus earlier agents' changes."""
    changes: tuple[dict[str, Any], ...] = ()
    """Operations applied so far in this generation, with the ids they minted."""
    upstream: tuple[tuple[str, dict[str, Any]], ...] = ()
    """Results of the agents this one depends on."""
    scope: str | None = None
    """For a per-section call, the section it works on."""
    brief: str = ""
    """For a per-section call, what the analysis asked of the section."""

    def render(self) -> str:
        spec = next(s for s in SPECS if s.name == self.agent)
        parts = [
            f"## Your task: act as {spec.name}, following its section of the guide.",
            f"The user asked: {self.context.instruction.strip()}",
        ]
        if not self.state.sections:
            parts.append("The page has no sections yet: add them.")
        if self.scope is not None:
            section = self.state.section(self.scope)
            parts += [
                "",
                f"## Scope: {self.scope}",
                section.model_dump_json(exclude_defaults=True) if section else "",
            ]
            if section is not None and not section.components:
                parts.append("It has no components yet: add them.")
            if self.brief:
                parts += ["", "## Brief", self.brief]
        else:
            parts += ["", "## Page outline now", self.state.outline()]
            if self.changes:
                parts += [
                    "",
                    "## Changes made so far in this request",
                    *(json.dumps(c, separators=(",", ":")) for c in self.changes),
                ]
        for name, result in self.upstream:
            parts += ["", f"## Result of {name}", json.dumps(result, separators=(",", ":"))]
        parts += ["", f"Answer by calling the tool `{spec.tool_name}` once."]
        return "\n".join(parts)


def tier_specs(tier: Tier) -> tuple[AgentSpec, ...]:
    return tuple(s for s in SPECS if s.tier == tier)


@cache
def tier_tools(tier: Tier) -> tuple[dict[str, Any], ...]:
    """The output tools of a tier's agents, in pipeline order."""
    return tuple(spec.tool() for spec in tier_specs(tier))


@cache
def tier_system(tier: Tier) -> str:
    """The guide, the catalog index and the prompts of a tier's agents."""
    index = "\n".join(f"- {e.type}: {e.description}" for e in load_catalog().entries)
    prompts = "\n\n".join(spec.prompt() for spec in tier_specs(tier))
    return "\n\n".join(
        [prompt_text("guide"), "## Component catalog\n\n" + index, "# Agents\n\n" + prompts]
    )


@cache
def agent_system(name: str) -> str:
    """The guide, the catalog index and one agent's prompt: the per-agent layout."""
    index = "\n".join(f"- {e.type}: {e.description}" for e in load_catalog().entries)
    return "\n\n".join(
        [
            prompt_text("guide"),
            "## Component catalog\n\n" + index,
            "# Agents\n\n" + prompt_text(name),
        ]
    )


@cache
def static_prefix(spec: AgentSpec, layout: str) -> tuple[tuple[dict[str, Any], ...], str, int]:
    """Tools, system text and their token count for an agent under a prompt layout."""
    if layout == "per_agent":
        tools: tuple[dict[str, Any], ...] = (spec.tool(),)
        system = agent_system(spec.name)
    else:
        tools, system = tier_tools(spec.tier), tier_system(spec.tier)
    tokens = sum(count_text(json.dumps(t, sort_keys=True)) for t in tools)
    return tools, system, tokens + count_text(system)


def _marker(ttl: str) -> dict[str, str]:
    return {"type": "ephemeral", "ttl": ttl}


def build_request(spec: AgentSpec, task: AgentTask, config: PipelineConfig) -> Params:
    """The Messages API parameters of one agent call."""
    profile: ModelProfile = config.model(spec.tier)
    tools, system_text, static = static_prefix(spec, config.prompt_layout)
    context_text = task.context.render()
    system: dict[str, Any] = {"type": "text", "text": system_text}
    shared: dict[str, Any] = {"type": "text", "text": context_text}
    if config.prompt_caching:
        # A breakpoint below the model's minimum would cache nothing: place only useful ones.
        if static >= profile.min_cacheable_tokens:
            system["cache_control"] = _marker(config.static_ttl)
        if static + count_text(context_text) >= profile.min_cacheable_tokens:
            shared["cache_control"] = _marker("5m")
    choice: dict[str, str] = {"type": "any" if profile.forced_tool_choice else "auto"}
    if config.prompt_layout == "per_agent" and profile.forced_tool_choice:
        choice = {"type": "tool", "name": spec.tool_name}
    return {
        "model": profile.id,
        "max_tokens": spec.max_tokens,
        "tools": list(tools),
        "tool_choice": choice,
        "system": [system],
        "messages": [
            {"role": "user", "content": [shared, {"type": "text", "text": task.render()}]}
        ],
    }


def repair_request(
    params: Params,
    reply_content: list[dict[str, Any]],
    spec: AgentSpec,
    problems: list[str],
    scope: str | None = None,
) -> Params:
    """The same request continued: the model's answer, then what was wrong with it."""
    listing = "\n".join(f"- {p}" for p in problems[:20])
    reminder = f" You work on {scope} only." if scope else ""
    instruction = (
        f"Your answer was rejected:\n{listing}\nFix exactly these problems and call "
        f"`{spec.tool_name}` again with the complete corrected input.{reminder}"
    )
    # The API wants a result for every tool_use of the answer; the first carries the errors.
    uses = [b for b in reply_content if b.get("type") == "tool_use"]
    follow_up: list[dict[str, Any]] = [
        {
            "type": "tool_result",
            "tool_use_id": b["id"],
            "is_error": True,
            "content": instruction if i == 0 else "Not used.",
        }
        for i, b in enumerate(uses)
    ] or [{"type": "text", "text": instruction}]
    answer = [{k: v for k, v in block.items() if v is not None} for block in reply_content]
    messages = [
        *params["messages"],
        {"role": "assistant", "content": answer},
        {"role": "user", "content": follow_up},
    ]
    return {**params, "messages": messages}
