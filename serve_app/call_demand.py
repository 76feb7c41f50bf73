"""What one upstream call asks of its pool, and whom it is for: the budget's unit of work."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from serve_app.prompt_cache import PromptShape

KINDS = ("requests", "input_tokens", "output_tokens")
Priority = Literal["interactive", "batch"]


@dataclass(frozen=True)
class Limits:
    """Per-minute limits of one pool, already reduced by the configured headroom."""

    rpm: float
    itpm: float
    otpm: float

    def of(self, kind: str) -> float:
        return {"requests": self.rpm, "input_tokens": self.itpm, "output_tokens": self.otpm}[kind]


@dataclass(frozen=True)
class CallDemand:
    """What one upstream call asks of its pool."""

    call_id: str
    pool: str
    input_tokens: int
    output_tokens: int
    user: str = "anonymous"
    job_id: str | None = None
    priority: Priority = "interactive"
    tag: str = ""
    """Kind of call (the agent): ``max_tokens`` is right-sized from such calls' answers."""
    shape: PromptShape | None = None
    """The request's cacheable prefixes: only what follows the warm ones is reserved."""
    full_output: bool = False
    """Reserve ``output_tokens`` as asked, not the learned bound (a retry after it cut the
    answer short)."""
    tenant: str = "public"
    """Whose fair share the call draws on."""
    job_admitted_at: float = 0.0
    """When the call's job was admitted: older jobs' calls go first within a tenant."""
    path_after: int = 0
    """Agents still to run after this call's agent on the longest path of its DAG."""

    def amount(self, kind: str) -> float:
        return {
            "requests": 1.0,
            "input_tokens": float(self.input_tokens),
            "output_tokens": float(self.output_tokens),
        }[kind]

    def share_of(self, limits: Limits) -> float:
        """The call's dominant share of a pool: its largest fraction of one minute's limit."""
        return max(self.amount(kind) / limits.of(kind) for kind in KINDS)
