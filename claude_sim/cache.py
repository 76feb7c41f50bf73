"""Prompt caching as the API does it: prefixes up to cache_control breakpoints, per key and model.

Rules honoured: at most four breakpoints (checked in ``request``); the prefix runs tools ->
system -> messages; a lookup checks each breakpoint and up to 20 blocks before it; a
prefix shorter than the model's minimum is processed uncached without error; an entry
is readable only once the response that wrote it has started; a hit refreshes its TTL.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from claude_sim.prompt import PromptBlock

LOOKBACK_BLOCKS = 20
TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}


@dataclass(slots=True)
class _Entry:
    ttl_s: float
    expires_at: float
    readable: bool = False
    writers: int = 0


@dataclass(frozen=True, slots=True)
class CachePlan:
    """How one request's input splits into cache reads, cache writes and plain input."""

    read_tokens: int
    write_5m_tokens: int
    write_1h_tokens: int
    uncached_tokens: int
    hit_key: tuple[str, str, str] | None = None
    write_keys: tuple[tuple[tuple[str, str, str], float], ...] = field(default=())

    @property
    def write_tokens(self) -> int:
        return self.write_5m_tokens + self.write_1h_tokens


class PromptCache:
    """Cache entries of every key and model, keyed by prefix hash."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str, str], _Entry] = {}
        self._sweep_at = 0.0

    def plan(
        self, scope: str, model: str, min_tokens: int, blocks: list[PromptBlock], now: float
    ) -> CachePlan:
        """Work out reads and writes for a request without changing the cache."""
        total = blocks[-1].prefix_tokens if blocks else 0
        marks = [i for i, b in enumerate(blocks) if b.cache_control is not None]
        hit = -1
        for b in marks:
            for j in range(b, max(-1, b - LOOKBACK_BLOCKS), -1):
                if j <= hit:
                    break
                entry = self._entries.get((scope, model, blocks[j].prefix_hash))
                if entry and entry.readable and entry.expires_at > now:
                    hit = j
                    break
        read = blocks[hit].prefix_tokens if hit >= 0 else 0
        writes: list[tuple[tuple[str, str, str], float]] = []
        by_ttl = {"5m": 0, "1h": 0}
        covered = read
        for b in marks:
            block = blocks[b]
            cc = block.cache_control
            if b <= hit or cc is None or block.prefix_tokens < min_tokens:
                continue
            by_ttl[cc.ttl] += block.prefix_tokens - covered
            covered = block.prefix_tokens
            writes.append(((scope, model, block.prefix_hash), TTL_SECONDS[cc.ttl]))
        return CachePlan(
            read_tokens=read,
            write_5m_tokens=by_ttl["5m"],
            write_1h_tokens=by_ttl["1h"],
            uncached_tokens=total - covered,
            hit_key=(scope, model, blocks[hit].prefix_hash) if hit >= 0 else None,
            write_keys=tuple(writes),
        )

    def commit(self, plan: CachePlan, now: float) -> None:
        """An admitted request: refresh what it read, open what it writes (not yet readable)."""
        self._sweep(now)
        if plan.hit_key and (hit := self._entries.get(plan.hit_key)):
            hit.expires_at = max(hit.expires_at, now + hit.ttl_s)
        for key, ttl in plan.write_keys:
            entry = self._entries.get(key)
            if entry is None or entry.expires_at <= now:
                entry = self._entries[key] = _Entry(ttl_s=ttl, expires_at=now + ttl)
            entry.writers += 1
            entry.expires_at = max(entry.expires_at, now + ttl)

    def started(self, plan: CachePlan, now: float) -> None:
        """The writing response has started: its entries become readable."""
        for key, ttl in plan.write_keys:
            entry = self._entries.get(key)
            if entry is not None:
                entry.readable = True
                entry.writers = max(0, entry.writers - 1)
                entry.expires_at = max(entry.expires_at, now + ttl)

    def abandon(self, plan: CachePlan) -> None:
        """The writing request failed before its response started: drop what only it opened."""
        for key, _ in plan.write_keys:
            entry = self._entries.get(key)
            if entry is None or entry.readable:
                continue
            entry.writers -= 1
            if entry.writers <= 0:
                del self._entries[key]

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def _sweep(self, now: float) -> None:
        if now < self._sweep_at:
            return
        self._sweep_at = now + 30.0
        for key in [k for k, e in self._entries.items() if e.expires_at <= now and e.writers <= 0]:
            del self._entries[key]
