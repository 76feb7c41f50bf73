"""Ground truth for benchmarks: what every key sent, what was admitted, what was refused.

Keys are reported by fingerprint (``key-`` + 12 hex digits of their SHA-256), never in
clear, so a stats dump can be pasted into a report.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any


def key_fingerprint(api_key: str) -> str:
    """A key's public fingerprint."""
    return "key-" + hashlib.sha256(api_key.encode()).hexdigest()[:12]


@dataclass(slots=True)
class ModelStats:
    requests: int = 0
    succeeded: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    rate_limited: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "succeeded": self.succeeded,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
            "rate_limited": dict(self.rate_limited),
            "rate_limited_total": sum(self.rate_limited.values()),
            "errors": dict(self.errors),
            "faults": dict(self.faults),
        }


@dataclass(slots=True)
class PoolStats:
    """What the pool's buckets were charged: the numbers a limit is measured against."""

    admitted_requests: int = 0
    admitted_input_tokens: int = 0
    output_tokens: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "admitted_requests": self.admitted_requests,
            "admitted_input_tokens": self.admitted_input_tokens,
            "output_tokens": self.output_tokens,
        }


MAX_REPLY_DIGESTS = 200_000
"""Distinct requests whose answers are counted; past it new ones are not (``capped``)."""


def request_digest(body: dict[str, Any]) -> str:
    """What identifies a request's content: the same body twice is the same call paid twice."""
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


class SimStats:
    """Counters per key and model, per key and pool, and answers delivered per request."""

    def __init__(self) -> None:
        self.models: defaultdict[tuple[str, str], ModelStats] = defaultdict(ModelStats)
        self.pools: defaultdict[tuple[str, str], PoolStats] = defaultdict(PoolStats)
        self.open_streams = 0
        self.peak_streams = 0
        self.replies: Counter[str] = Counter()
        """Complete answers per request digest: a count above one is the same call answered
        (and paid) again, which is how a benchmark sees work run twice."""

    def answered(self, digest: str) -> None:
        if digest in self.replies or len(self.replies) < MAX_REPLY_DIGESTS:
            self.replies[digest] += 1

    def stream_opened(self) -> None:
        self.open_streams += 1
        self.peak_streams = max(self.peak_streams, self.open_streams)

    def stream_closed(self) -> None:
        self.open_streams -= 1

    def snapshot(self, levels: dict[tuple[str, str], dict[str, float]]) -> dict[str, Any]:
        keys: dict[str, Any] = {}
        for (key_id, model), stats in sorted(self.models.items()):
            keys.setdefault(key_id, {"models": {}, "pools": {}})["models"][model] = stats.as_dict()
        for (key_id, pool), pstats in sorted(self.pools.items()):
            entry = keys.setdefault(key_id, {"models": {}, "pools": {}})["pools"]
            entry[pool] = {**pstats.as_dict(), "bucket_levels": levels.get((key_id, pool), {})}
        replies = {
            "distinct": len(self.replies),
            "repeated": sum(n - 1 for n in self.replies.values()),
            "capped": len(self.replies) >= MAX_REPLY_DIGESTS,
        }
        return {
            "keys": keys,
            "open_streams": self.open_streams,
            "peak_streams": self.peak_streams,
            "replies": replies,
        }
