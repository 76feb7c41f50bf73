"""What the model answers to one request: content blocks, stop reason, and the stream pieces.

The answer is a pure function of the seed and the request (``stream`` aside), so a
streamed reply and a plain one carry the same content and the same usage. Output is cut
at ``max_tokens`` (``stop_reason: max_tokens``), a cut tool input parsed the way the SDK
parses a partial stream.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from dataclasses import dataclass
from typing import Any

import jiter

from claude_facts.tokens import canonical_json, count_text, split_tokens
from claude_sim.config import ModelSpec
from claude_sim.request import MessagesRequest, Tool
from claude_sim.synth import RequestWords, SchemaFiller, break_schema, prose

TOOL_CALL_OVERHEAD = 8
"""Output tokens of the markup around a tool call."""


@dataclass(frozen=True, slots=True)
class Piece:
    """One slice of output: a text or JSON fragment of content block ``index``."""

    index: int
    fragment: str
    tokens: int


@dataclass(frozen=True, slots=True)
class Completion:
    """The full answer, and the same answer as an ordered list of pieces for streaming."""

    starts: tuple[dict[str, Any], ...]
    pieces: tuple[Piece, ...]
    content: tuple[dict[str, Any], ...]
    stop_reason: str
    stop_sequence: str | None
    output_tokens: int


def request_seed(seed: int, body: dict[str, Any]) -> int:
    """The RNG seed of a request: the same body gives the same answer, streamed or not."""
    stable = {k: v for k, v in body.items() if k != "stream"}
    digest = hashlib.sha256(f"{seed}:{canonical_json(stable)}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _request_texts(req: MessagesRequest) -> tuple[list[str], list[str]]:
    """Texts of the request: the last user turn first (what to answer), then the rest."""
    latest: list[str] = []
    context: list[str] = []
    if isinstance(req.system, str):
        context.append(req.system)
    elif req.system:
        context += [b.text for b in req.system]
    for i, message in enumerate(req.messages):
        target = latest if i == len(req.messages) - 1 else context
        if isinstance(message.content, str):
            target.append(message.content)
            continue
        for block in message.content:
            dumped = block.model_dump(exclude_none=True, exclude={"cache_control"})
            target.append(dumped["text"] if "text" in dumped else json.dumps(dumped))
    return latest, context


def _pick_tool(req: MessagesRequest, latest: list[str]) -> Tool | None:
    tools = req.tools or []
    choice = req.tool_choice
    if not tools or (choice is not None and choice.type == "none"):
        return None
    if choice is not None and choice.type == "tool":
        return next(t for t in tools if t.name == choice.name)
    # The tool named last in the latest turn is the one the request asks for.
    text = " ".join(latest)
    named = [t for t in tools if t.name in text]
    return max(named, key=lambda t: text.rfind(t.name)) if named else tools[0]


def complete(
    req: MessagesRequest,
    model: ModelSpec,
    *,
    seed: int,
    body: dict[str, Any],
    auto_tool_use: float,
    invalid_tool_input: bool,
    payloads: tuple[str, ...] = (),
) -> Completion:
    """The model's answer to ``req``; with ``payloads``, a prompt-injected one."""
    rng = random.Random(request_seed(seed, body))
    latest, context = _request_texts(req)
    words = RequestWords(latest + context, focus=latest[-1:], salient=latest[-1:])
    spread = math.exp(rng.gauss(0.0, model.output_sigma)) if model.output_sigma else 1.0
    tool = _pick_tool(req, latest)
    forced = req.tool_choice is not None and req.tool_choice.type in ("any", "tool")
    if tool is not None and not forced and rng.random() >= auto_tool_use:
        tool = None

    starts: list[dict[str, Any]] = []
    pieces: list[Piece] = []
    if tool is None or (not forced and rng.random() < 0.5):
        target = model.output_median_tokens * spread if tool is None else rng.randint(8, 30)
        text = prose(words, rng, max(1, round(target)), count_text)
        starts.append({"type": "text", "text": ""})
        pieces += [Piece(0, frag, n) for frag, n in split_tokens(text)]
    if tool is not None:
        filler = SchemaFiller(tool.input_schema, words, rng, richness=spread, payloads=payloads)
        value = filler.fill()
        if invalid_tool_input:
            value = break_schema(value, tool.input_schema, rng)
        index = len(starts)
        starts.append(
            {
                "type": "tool_use",
                "id": f"toolu_{rng.getrandbits(96):024x}",
                "name": tool.name,
                "input": {},
            }
        )
        fragments = split_tokens(json.dumps(value, ensure_ascii=False))
        pieces.append(Piece(index, "", TOOL_CALL_OVERHEAD))
        pieces += [Piece(index, frag, n) for frag, n in fragments]
    return _assemble(starts, pieces, req, tool is not None)


def _assemble(
    starts: list[dict[str, Any]], pieces: list[Piece], req: MessagesRequest, used_tool: bool
) -> Completion:
    stop_reason = "tool_use" if used_tool else "end_turn"
    stop_sequence: str | None = None
    kept: list[Piece] = []
    total = 0
    for piece in pieces:
        if total + piece.tokens > req.max_tokens:
            stop_reason = "max_tokens"
            break
        kept.append(piece)
        total += piece.tokens
    if starts[0]["type"] == "text" and req.stop_sequences:
        kept, total, hit = _cut_at_stop(kept, req.stop_sequences)
        if hit is not None:
            stop_reason, stop_sequence = "stop_sequence", hit
    starts = starts[: max((p.index for p in kept), default=0) + 1]
    content: list[dict[str, Any]] = []
    for index, start in enumerate(starts):
        joined = "".join(p.fragment for p in kept if p.index == index)
        if start["type"] == "text":
            content.append({"type": "text", "text": joined})
        else:
            parsed = jiter.from_json(joined.encode(), partial_mode=True) if joined else {}
            content.append({**start, "input": parsed if isinstance(parsed, dict) else {}})
    return Completion(tuple(starts), tuple(kept), tuple(content), stop_reason, stop_sequence, total)


def _cut_at_stop(pieces: list[Piece], stops: list[str]) -> tuple[list[Piece], int, str | None]:
    """Text pieces up to the first stop sequence, if the text contains one."""
    text = ""
    for piece in pieces:
        if piece.index != 0:
            break
        text += piece.fragment
        hits = [(text.find(stop), stop) for stop in stops if stop and stop in text]
        if hits:
            at, stop = min(hits)
            kept = [Piece(0, frag, n) for frag, n in split_tokens(text[:at])]
            return kept, sum(p.tokens for p in kept), stop
    return pieces, sum(p.tokens for p in pieces), None
