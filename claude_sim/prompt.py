"""A request's prompt as the ordered blocks the API counts and caches: tools, system, messages.

Each block carries its tokens and the hash of the whole prefix ending with it, so the
prompt cache can look a prefix up in one step and the counter sums one list.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from claude_facts.tokens import (
    MESSAGE_OVERHEAD,
    REQUEST_OVERHEAD,
    TOOL_USE_SYSTEM_TOKENS,
    canonical_json,
    count_block,
)
from claude_sim.request import CacheControl, CountTokensRequest


@dataclass(frozen=True, slots=True)
class PromptBlock:
    """One cacheable unit of the prompt."""

    section: str
    tokens: int
    prefix_tokens: int
    prefix_hash: str
    cache_control: CacheControl | None


def _dump(block: BaseModel) -> dict[str, Any]:
    return block.model_dump(exclude_none=True, exclude={"cache_control"})


def prompt_blocks(req: CountTokensRequest) -> list[PromptBlock]:
    """The prompt as blocks in cache-prefix order, with running token totals and hashes."""
    raw: list[tuple[str, object, int, CacheControl | None]] = []
    choice_type = req.tool_choice.type if req.tool_choice else "auto"
    for i, tool in enumerate(req.tools or []):
        extra = TOOL_USE_SYSTEM_TOKENS[choice_type] if i == 0 else 0
        tool_body = _dump(tool)
        raw.append(("tools", tool_body, count_block(tool_body) + extra, tool.cache_control))
    if isinstance(req.system, str):
        raw.append(("system", req.system, count_block(req.system), None))
    elif req.system:
        for block in req.system:
            system_body = _dump(block)
            raw.append(("system", system_body, count_block(system_body), block.cache_control))
    # The API keeps the tools and system cache when tool_choice changes, not the messages'.
    choice = canonical_json(req.tool_choice.model_dump() if req.tool_choice else None)
    for j, message in enumerate(req.messages):
        content = message.content
        items: list[tuple[object, CacheControl | None]] = (
            [(content, None)]
            if isinstance(content, str)
            else [(_dump(b), getattr(b, "cache_control", None)) for b in content]
        )
        for k, (body, cc) in enumerate(items):
            overhead = MESSAGE_OVERHEAD if k == 0 else 0
            marker: dict[str, object] = {"role": message.role, "block": body}
            if j == 0 and k == 0:
                marker["tool_choice"] = choice
            raw.append(("messages", marker, count_block(body) + overhead, cc))

    blocks: list[PromptBlock] = []
    digest = hashlib.sha256()
    total = REQUEST_OVERHEAD
    for section, body, tokens, cc in raw:
        digest.update(canonical_json([section, body]).encode())
        total += tokens
        blocks.append(PromptBlock(section, tokens, total, digest.copy().hexdigest(), cc))
    return blocks


def prompt_tokens(blocks: list[PromptBlock]) -> int:
    """Total input tokens of the prompt."""
    return blocks[-1].prefix_tokens if blocks else REQUEST_OVERHEAD
