"""The simulated API's behaviour, apart from HTTP: admission, caching, pacing, faults.

``SimulatedAPI.messages`` validates and admits a request, then returns a ``SimReply`` whose
event generator paces the answer in real time (time to first token, then the model's
token rate, divided by ``speed``). Streaming and plain replies run the same generator, so
their content, usage and timing agree.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from claude_sim.cache import CachePlan, PromptCache
from claude_sim.completion import Completion, Piece, complete
from claude_sim.config import ModelSpec, SimConfig
from claude_sim.errors import (
    APIError,
    InternalServerError,
    NotFoundError,
    OverloadedError,
    RateLimitError,
)
from claude_sim.prompt import prompt_blocks, prompt_tokens
from claude_sim.ratelimit import RateLimiter
from claude_sim.request import (
    MessagesRequest,
    check_semantics,
    parse_count_tokens,
    parse_messages,
)
from claude_sim.stats import SimStats, key_fingerprint, request_digest

FAULT_KINDS = (
    "overloaded",
    "api_error",
    "stream_error",
    "dropped_connection",
    "slow_response",
    "invalid_tool_input",
)


class DroppedConnectionError(Exception):
    """Raised inside a reply to make the HTTP layer cut the connection."""


@dataclass(frozen=True, slots=True)
class Faults:
    """The faults drawn for one request."""

    kinds: frozenset[str]

    def __contains__(self, kind: str) -> bool:
        return kind in self.kinds


@dataclass(slots=True)
class SimReply:
    """An admitted request: its headers now, its events as they are produced."""

    request_id: str
    headers: dict[str, str]
    events: AsyncGenerator[tuple[str, dict[str, Any]], None]
    content: tuple[dict[str, Any], ...]


class SimulatedAPI:
    """All state of one emulated API: buckets, prompt cache, stats, fault generator."""

    def __init__(self, config: SimConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._clock = clock
        self.limiter = RateLimiter(config, clock)
        self.cache = PromptCache()
        self.stats = SimStats()
        self._fault_rng = random.Random(config.seed)
        self.started_at = clock()

    def now(self) -> float:
        """The API's clock."""
        return self._clock()

    def elapsed_s(self) -> float:
        """Seconds since the API started or was last reset."""
        return self._clock() - self.started_at

    def reset(self) -> None:
        """Forget buckets, cache entries, stats and the fault sequence."""
        self.limiter.clear()
        self.cache.clear()
        self.stats = SimStats()
        self._fault_rng = random.Random(self.config.seed)
        self.started_at = self._clock()

    def model(self, model_id: str) -> ModelSpec:
        spec = self.config.model(model_id)
        if spec is None or spec.lifecycle == "retired":
            raise NotFoundError(f"model: {model_id}")
        return spec

    def count_tokens(self, body: dict[str, Any], api_version: str) -> int:
        req = parse_count_tokens(body)
        model = self.model(req.model)
        blocks = prompt_blocks(req)
        total = prompt_tokens(blocks)
        check_semantics(req, model, api_version, total)
        return total

    def draw_faults(self) -> Faults:
        rates = self.config.faults
        drawn = {kind for kind in FAULT_KINDS if self._fault_rng.random() < getattr(rates, kind)}
        # Drawn only when on, so that the other faults' seeded sequence stays as it was.
        if rates.injected_output and self._fault_rng.random() < rates.injected_output:
            drawn.add("injected_output")
        return Faults(frozenset(drawn))

    def messages(self, api_key: str, body: dict[str, Any], api_version: str) -> SimReply:
        """Validate and admit a request; raises ``APIError`` for what fails before a reply."""
        key_id = key_fingerprint(api_key)
        req = parse_messages(body)
        model = self.model(req.model)
        stats = self.stats.models[(key_id, model.id)]
        stats.requests += 1
        try:
            blocks = prompt_blocks(req)
            check_semantics(req, model, api_version, prompt_tokens(blocks))
            faults = self.draw_faults()
            for kind, error in (
                ("overloaded", OverloadedError("Overloaded")),
                ("api_error", InternalServerError("Internal server error")),
            ):
                if kind in faults:
                    stats.faults[kind] += 1
                    raise error
            now = self._clock()
            plan = self.cache.plan(key_id, model.id, model.min_cacheable_tokens, blocks, now)
            input_cost = plan.uncached_tokens + plan.write_tokens
            reserved = self.limiter.admit(key_id, model.pool, input_cost, req.max_tokens)
        except RateLimitError as exc:
            stats.rate_limited[exc.limit] += 1
            raise
        except APIError as exc:
            stats.errors[str(exc.status)] += 1
            exc.headers.update(self.limiter.headers(key_id, model.pool))
            raise
        self.cache.commit(plan, now)
        pool = self.stats.pools[(key_id, model.pool)]
        pool.admitted_requests += 1
        pool.admitted_input_tokens += input_cost
        invalid = "invalid_tool_input" in faults
        payloads = self.config.injection_payloads if "injected_output" in faults else ()
        for kind in faults.kinds - {"overloaded", "api_error"}:
            stats.faults[kind] += 1
        answer = complete(
            req,
            model,
            seed=self.config.seed,
            body=body,
            auto_tool_use=self.config.auto_tool_use,
            invalid_tool_input=invalid,
            payloads=payloads,
        )
        request_id = f"req_{secrets.token_hex(12)}"
        headers = {"request-id": request_id, **self.limiter.headers(key_id, model.pool)}
        run = _Answering(self, key_id, req, model, plan, answer, faults, reserved)
        run.digest = request_digest(body)
        return SimReply(request_id, headers, run.events(), answer.content)


class _Answering:
    """One admitted request being answered."""

    def __init__(
        self,
        api: SimulatedAPI,
        key_id: str,
        req: MessagesRequest,
        model: ModelSpec,
        plan: CachePlan,
        answer: Completion,
        faults: Faults,
        reserved: int,
    ) -> None:
        self.api, self.key_id, self.req, self.model = api, key_id, req, model
        self.plan, self.answer, self.faults, self.reserved = plan, answer, faults, reserved
        self.produced = 0
        self.started = False
        self.digest = ""
        slow = api.config.faults.slow_factor if "slow_response" in faults else 1.0
        self.time_scale = slow / api.config.speed

    def usage(self, output_tokens: int) -> dict[str, Any]:
        plan = self.plan
        return {
            "input_tokens": plan.uncached_tokens,
            "cache_creation_input_tokens": plan.write_tokens,
            "cache_read_input_tokens": plan.read_tokens,
            "cache_creation": {
                "ephemeral_5m_input_tokens": plan.write_5m_tokens,
                "ephemeral_1h_input_tokens": plan.write_1h_tokens,
            },
            "output_tokens": output_tokens,
            "service_tier": "standard",
        }

    def _produce(self, tokens: int) -> None:
        self.produced += tokens
        self.api.limiter.produce(self.key_id, self.model.pool, tokens)
        self.api.stats.pools[(self.key_id, self.model.pool)].output_tokens += tokens

    async def events(self) -> AsyncGenerator[tuple[str, dict[str, Any]], None]:
        """The stream's events, paced as the model would produce them."""
        api, answer = self.api, self.answer
        try:
            await asyncio.sleep(self.model.ttft_s * self.time_scale)
            api.cache.started(self.plan, api.now())
            self.started = True
            yield "message_start", {"type": "message_start", "message": self._message_start()}
            async for event in self._blocks():
                yield event
                if event[0] == "error":
                    return
            delta = {"stop_reason": answer.stop_reason, "stop_sequence": answer.stop_sequence}
            usage = self.usage(answer.output_tokens)
            yield "message_delta", {"type": "message_delta", "delta": delta, "usage": usage}
            yield "message_stop", {"type": "message_stop"}
            self._record(succeeded=True)
        finally:
            if not self.started:
                api.cache.abandon(self.plan)
            api.limiter.settle(self.key_id, self.model.pool, self.reserved, self.produced)
            if self.produced < answer.output_tokens:
                self._record(succeeded=False)

    def _message_start(self) -> dict[str, Any]:
        return {
            "id": f"msg_{secrets.token_hex(12)}",
            "type": "message",
            "role": "assistant",
            "model": self.model.id,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": self.usage(1),
        }

    async def _blocks(self) -> AsyncGenerator[tuple[str, dict[str, Any]], None]:
        """Each content block's start, deltas and stop; a stream fault strikes halfway."""
        answer = self.answer
        faulty = {"stream_error", "dropped_connection"} & self.faults.kinds
        fail_at = len(answer.pieces) // 2 if faulty else -1
        done = 0
        for index, start in enumerate(answer.starts):
            yield (
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": start},
            )
            if index == 0:
                yield "ping", {"type": "ping"}
            block = [p for p in answer.pieces if p.index == index]
            async for batch in self._paced(block):
                if 0 <= fail_at <= done:
                    if "dropped_connection" in self.faults:
                        raise DroppedConnectionError("connection dropped by fault injection")
                    yield "error", InternalServerError("Internal server error").body("")
                    return
                done += len(batch)
                yield "content_block_delta", _delta(index, start["type"], batch)
            yield "content_block_stop", {"type": "content_block_stop", "index": index}

    async def _paced(self, pieces: list[Piece]) -> AsyncIterator[list[Piece]]:
        """Pieces grouped so that deltas go out no more often than ``stream_chunk_s``."""
        rate = self.model.tokens_per_s / self.time_scale
        min_gap = self.api.config.stream_chunk_s * self.time_scale
        batch: list[Piece] = []
        owed = 0.0
        for piece in pieces:
            batch.append(piece)
            owed += piece.tokens / rate
            if owed >= min_gap:
                await asyncio.sleep(owed)
                self._produce(sum(p.tokens for p in batch))
                yield batch
                batch, owed = [], 0.0
        if batch:
            await asyncio.sleep(owed)
            self._produce(sum(p.tokens for p in batch))
            yield batch

    def _record(self, *, succeeded: bool) -> None:
        stats = self.api.stats.models[(self.key_id, self.model.id)]
        if succeeded:
            stats.succeeded += 1
            self.api.stats.answered(self.digest)
        stats.input_tokens += self.plan.uncached_tokens
        stats.cache_creation_input_tokens += self.plan.write_tokens
        stats.cache_read_input_tokens += self.plan.read_tokens
        stats.output_tokens += self.produced


def _delta(index: int, kind: str, batch: list[Piece]) -> dict[str, Any]:
    text = "".join(p.fragment for p in batch)
    delta = (
        {"type": "text_delta", "text": text}
        if kind == "text"
        else {"type": "input_json_delta", "partial_json": text}
    )
    return {"type": "content_block_delta", "index": index, "delta": delta}


async def collect(reply: SimReply) -> dict[str, Any]:
    """Run a reply to the end and return the full Message, as a non-streaming call does."""
    message: dict[str, Any] = {}
    async with aclosing(reply.events) as events:
        async for name, data in events:
            if name == "message_start":
                message = dict(data["message"])
            elif name == "message_delta":
                message.update(data["delta"])
                message["usage"] = data["usage"]
            elif name == "error":
                raise InternalServerError(data["error"]["message"])
    return message | {"content": list(reply.content)}
