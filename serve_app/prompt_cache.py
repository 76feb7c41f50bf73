"""What the API's prompt cache holds, as far as our own calls show, to reserve ITPM exactly.

ITPM is charged for uncached input and cache writes, not cache reads. A request's cacheable
prefixes end at its ``cache_control`` breakpoints; once a call reading or writing a prefix
has been answered, the prefix is warm until its TTL runs out (each hit refreshes it). The
budget then reserves only what follows the longest warm prefix. Our token counts are local
estimates; ``TokenScale`` learns how the API's counts compare and scales reservations, so
a tokenizer that counts 30% more is covered after a few calls.
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from dataclasses import dataclass
from typing import Any

from claude_facts.tokens import TOOL_USE_SYSTEM_TOKENS, count_block

TTL_S = {"5m": 300.0, "1h": 3600.0}


@dataclass(frozen=True)
class PromptShape:
    """A request's input: its cacheable prefixes and its total, in local token counts."""

    model: str
    prefixes: tuple[tuple[str, int, float], ...]
    """(hash of the prefix, tokens up to and including its breakpoint, TTL in seconds)."""
    total: int
    identity: str
    """Hash of the whole request (its blocks, where each sits, and every other parameter):
    equal for requests the API would answer alike, so it keys the agent-call cache without
    encoding the request a second time."""


def prompt_shape(params: dict[str, Any]) -> PromptShape:
    """Walk a request in cache order (tools, system, messages), noting every breakpoint."""
    blocks: list[Any] = [*params.get("tools", [])]
    layout: dict[str, Any] = {"tools": len(blocks)}
    system = params.get("system", [])
    blocks += [system] if isinstance(system, str) else system
    layout |= {"system": len(blocks), "messages": []}
    for message in params["messages"]:
        content = message["content"]
        blocks += [content] if isinstance(content, str) else content
        layout["messages"].append([message["role"], len(blocks)])
    rest = {k: v for k, v in params.items() if k not in ("tools", "system", "messages")}
    digest = hashlib.sha256(params["model"].encode())
    # The API adds a hidden system prompt of a documented size when tools are given.
    choice = (params.get("tool_choice") or {}).get("type", "auto")
    tokens = 3 + (TOOL_USE_SYSTEM_TOKENS[choice] if params.get("tools") else 0)
    prefixes = []
    tools = len(params.get("tools", []))
    for n, block in enumerate(blocks):
        encoded, counted = _tool_encoding(block) if n < tools else _encoding(block)
        digest.update(encoded)
        tokens += counted
        marker = block.get("cache_control") if isinstance(block, dict) else None
        if marker:
            prefixes.append((digest.hexdigest(), tokens, TTL_S[marker.get("ttl", "5m")]))
    # JSON values read back unambiguously end to end, so the blocks' hash plus where each
    # section ends and the other parameters identify the request.
    digest.update(json.dumps([layout, rest], sort_keys=True).encode())
    total = tokens + 3 * len(params["messages"])
    return PromptShape(params["model"], tuple(prefixes), total, digest.hexdigest())


def _encoding(block: Any) -> tuple[bytes, int]:
    """A block's JSON, as hashed, and its tokens (texts that repeat are counted once)."""
    return json.dumps(block, sort_keys=True).encode(), count_block(block)


_TOOLS: dict[int, tuple[Any, bytes, int]] = {}
MAX_TOOLS = 256


def _tool_encoding(tool: Any) -> tuple[bytes, int]:
    """``_encoding`` of a tool definition, by identity: an agent's tools are the same
    objects in every request (built once per agent, never changed), so each replica
    encodes them once rather than 15 KB per call. The entry holds the tool, so its id
    cannot be reused while it is remembered."""
    held = _TOOLS.get(id(tool))
    if held is not None and held[0] is tool:
        return held[1], held[2]
    if len(_TOOLS) >= MAX_TOOLS:
        _TOOLS.clear()
    encoded, tokens = _encoding(tool)
    _TOOLS[id(tool)] = (tool, encoded, tokens)
    return encoded, tokens


MAX_WARM = 50_000
"""Prefixes remembered at most: past it, the mirror prunes (a forgotten prefix only makes
an estimate pessimistic, never over budget)."""


class PromptCacheMirror:
    """Warm prefixes per model, learned from the usage our calls reported."""

    def __init__(self) -> None:
        self._warm: dict[tuple[str, str], float] = {}

    def uncached(self, shape: PromptShape, now: float) -> int:
        """Tokens after the longest prefix known to be warm."""
        warm = [
            tokens
            for key, tokens, _ in shape.prefixes
            if self._warm.get((shape.model, key), 0.0) > now
        ]
        return shape.total - max(warm, default=0)

    def learn(self, shape: PromptShape, cached_tokens: int, now: float) -> None:
        """A call read or wrote ``cached_tokens`` of cache: those prefixes are warm now."""
        for key, tokens, ttl in shape.prefixes:
            if cached_tokens > 0 and tokens <= cached_tokens * 1.05 + 16:
                self._warm[(shape.model, key)] = now + ttl
        if len(self._warm) > MAX_WARM:
            self._prune(now)

    def _prune(self, now: float) -> None:
        """Forget expired prefixes; if still too many, keep the half that stays warm longest."""
        live = [(k, v) for k, v in self._warm.items() if v > now]
        if len(live) > MAX_WARM // 2:
            live = sorted(live, key=lambda kv: kv[1])[-(MAX_WARM // 2) :]
        self._warm = dict(live)

    def forget(self, model_prefix: str = "") -> None:
        """After a surprise (a 429), trust nothing cached for matching models."""
        self._warm = {k: v for k, v in self._warm.items() if not k[0].startswith(model_prefix)}


class TokenScale:
    """API token counts over local ones, per model: the highest recent ratio, with margin."""

    def __init__(self, window: int = 30, margin: float = 1.03) -> None:
        self._ratios: dict[str, deque[float]] = {}
        self._window = window
        self._margin = margin

    def scale(self, model: str) -> float:
        ratios = self._ratios.get(model)
        return (max(ratios) if ratios else 1.0) * self._margin

    def learn(self, model: str, local: int, reported: int) -> None:
        if local > 0 and reported > 0:
            self._ratios.setdefault(model, deque(maxlen=self._window)).append(reported / local)
