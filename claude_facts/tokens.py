"""The one deterministic token counter used for usage, count_tokens and rate limits.

Claude's tokenizer is not public, so this approximates it with a few rules over a regex
split: a common word (with its leading space) is one token and a long one one more per
8 letters, digits go 4 to a token, punctuation runs 3 to a token, and a run of line
breaks and indentation is one token. Against the last tokenizer Anthropic published
(the Claude 2/3 ``tokenizer.json`` of ``anthropic`` 0.30) the mean absolute error is 5%
on prose, 4% on user instructions and 2% on JSON, with totals within 3%
(``bench/tokenizer_error.py``). Newer models' tokenizers count about 30% more for the
same text: a gateway must learn that ratio from reported usage rather than trust any
local count.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

_PIECE = re.compile(r" ?[^\W\d_]+| ?\d+| ?(?:[^\w\s]|_)+|\s+")

MESSAGE_OVERHEAD = 3
"""Role markers around each message."""
REQUEST_OVERHEAD = 3
"""Markers around the whole prompt."""
TOOL_USE_SYSTEM_TOKENS = {"auto": 346, "none": 346, "any": 313, "tool": 313}
"""The hidden system prompt the API adds when tools are given, by tool_choice type."""


def _piece_tokens(piece: str) -> int:
    core = piece.lstrip(" ")
    if not core:
        return 1
    first = core[0]
    if first.isspace():
        return 1
    if first.isdigit():
        return 1 + (len(core) - 1) // 4
    if first.isalpha():
        return 1 + (len(core) - 1) // 8 if first.isascii() else len(core)
    return (len(core) + 2) // 3


@lru_cache(maxsize=1_024)
def count_text(text: str) -> int:
    """Tokens in ``text`` (cached: system prompts and schemas repeat across requests).

    Small on purpose: the cache keeps the texts themselves, and every request brings unique
    ones (its page, its task) of several KB, which at 65,536 entries could hold hundreds of
    MB; the few dozen texts that repeat stay at the front.
    """
    return sum(_piece_tokens(m.group()) for m in _PIECE.finditer(text))


def split_tokens(text: str) -> list[tuple[str, int]]:
    """``text`` cut into pieces with their token counts; the counts sum to ``count_text``."""
    return [(m.group(), _piece_tokens(m.group())) for m in _PIECE.finditer(text)]


def canonical_json(value: Any) -> str:
    """Compact, key-sorted JSON: the form tokens and cache keys are computed on."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def count_block(block: Any) -> int:
    """Tokens of one content block, tool definition or string."""
    if isinstance(block, str):
        return count_text(block)
    if isinstance(block, dict):
        kind = block.get("type")
        if kind == "text":
            return count_text(str(block.get("text", "")))
        if kind == "tool_use":
            return (
                3
                + count_text(str(block.get("name", "")))
                + count_text(canonical_json(block.get("input", {})))
            )
        if kind == "tool_result":
            content = block.get("content", "")
            if isinstance(content, list):
                return 3 + sum(count_block(b) for b in content)
            return 3 + count_text(str(content))
        if "input_schema" in block:
            return (
                count_text(str(block.get("name", "")))
                + count_text(str(block.get("description", "")))
                + count_text(canonical_json(block["input_schema"]))
            )
        if kind == "image":
            return 1_600
        stripped = {k: v for k, v in block.items() if k != "cache_control"}
        return count_text(canonical_json(stripped))
    return count_text(canonical_json(block))
