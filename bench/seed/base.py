"""What both seed backends share: the seed's knobs, its counters and the task interface.

The seed (``scaling-plan.md``) runs every Claude agent call as a Celery task
``call_claude_agent`` (``max_retries=3, rate_limit='10/m'``) on a Redis broker, consumed by
``replicas: 5`` worker pods started with ``--concurrency=2``; a 429 is retried with
``self.retry(countdown=2 ** self.request.retries * 10)``. A backend is one way of running
those tasks: on real Celery workers (``celery_workers``) or emulated in-process
(``emulated``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the worker processes import this module and need none of the pipeline
    from agents.prompting import Params
    from agents.runner import MessageJSON

TASK_NAME = "call_claude_agent"
STATS_KEY = "seed:stats"
"""The Redis hash (db 2) where the real workers count what they did."""


@dataclass(frozen=True)
class SeedSettings:
    """The seed's knobs: ``replicas``, ``--concurrency``, ``rate_limit``, ``max_retries``."""

    workers: int = 5
    """Celery worker pods (``k8s/celery-worker.yaml``: ``replicas: 5``)."""
    concurrency: int = 2
    """Pool processes per worker (``--concurrency=2``)."""
    rate_per_minute: float = 10
    """Per-worker ``rate_limit`` of the task (``'10/m'``); 0 disables it."""
    max_retries: int = 3
    backoff_base_s: float = 10
    """``countdown = 2 ** retries * backoff_base_s``: 10, 20, 40 s."""
    prefetch_multiplier: int = 4
    """Celery's ``worker_prefetch_multiplier`` (default 4; the seed does not set it)."""

    def __post_init__(self) -> None:
        if self.workers < 1 or self.concurrency < 1 or self.prefetch_multiplier < 1:
            raise ValueError("workers, concurrency and prefetch_multiplier must be >= 1")
        if self.rate_per_minute < 0 or self.max_retries < 0 or self.backoff_base_s < 0:
            raise ValueError("rate_per_minute, max_retries and backoff_base_s must be >= 0")


@dataclass
class SeedStats:
    """Counters of a seed deployment, as its workers and its web tier saw them."""

    tasks_published: int = 0
    """Messages sent to the broker, retries included."""
    tasks_run: int = 0
    """Task executions (each one upstream request)."""
    rate_limited: int = 0
    """429 answers seen."""
    retries: int = 0
    """Retries published after a 429."""
    failed_after_retries: int = 0
    """Tasks failed with MaxRetriesExceededError."""
    failed_other: int = 0
    """Tasks failed on another API error (not retried)."""
    orphaned: int = 0
    """Task results nobody waited for any more (their generation had failed)."""
    cache_hits: int = 0
    generations: int = 0
    generations_failed: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class SeedTasks(ABC):
    """Runs ``call_claude_agent`` tasks: publish one, wait for its result."""

    def __init__(self, settings: SeedSettings) -> None:
        self.settings = settings
        self.stats = SeedStats()

    @abstractmethod
    async def start(self) -> None:
        """Bring the workers up; returns when they take tasks."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop the workers; calls still waiting are cancelled. ``stats`` is final after."""

    @abstractmethod
    async def send(self, params: Params) -> MessageJSON:
        """``call_claude_agent.delay(params)`` and its result.

        Raises ClaudeAPIError when the task fails: with ``upstream_status=429`` after its
        last retry on a 429 (MaxRetriesExceededError), with the status on any other error.
        """
