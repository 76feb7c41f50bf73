"""The seed's Celery worker module (``app/worker.py`` of ``scaling-plan.md``), for real.

One task per agent call, ``call_claude_agent(bind=True, max_retries=3, rate_limit='10/m')``,
a Redis broker (db 0) and result backend (db 1), and on a 429 the seed's
``self.retry(countdown=2 ** self.request.retries * 10)``. The worker processes are started
by ``bench.seed_celery`` as ``celery -A bench.seed_celery_app worker --concurrency=2``; what
a benchmark varies (Redis, the Claude URL, the rate limit, the backoff base) comes from the
environment it sets, read once here because Celery reads ``rate_limit`` at import.

The task also counts what it did in a Redis hash (db 2), so the benchmark reports runs,
429s and retries as the workers saw them; the simulator's own counters stay the ground truth.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

import anthropic
import redis
from celery import Celery, Task

from bench.seed.base import STATS_KEY, TASK_NAME

REDIS_URL = os.environ.get("SEED_REDIS_URL", "redis://127.0.0.1:6379")

celery_app = Celery("ai_worker", broker=f"{REDIS_URL}/0", backend=f"{REDIS_URL}/1")
celery_app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@cache
def _client() -> anthropic.Anthropic:
    """One SDK client per pool process, made after the fork; Celery does the retrying."""
    return anthropic.Anthropic(
        api_key=os.environ.get("SEED_API_KEY", "sk-seed"),
        base_url=os.environ["SEED_CLAUDE_URL"],
        max_retries=0,
    )


@cache
def _stats() -> redis.Redis:
    return redis.Redis.from_url(f"{REDIS_URL}/2")


def _count(name: str) -> None:
    _stats().hincrby(STATS_KEY, name, 1)


@celery_app.task(
    bind=True,
    name=TASK_NAME,
    max_retries=int(os.environ.get("SEED_MAX_RETRIES", "3")),
    rate_limit=os.environ.get("SEED_RATE_LIMIT", "10/m") or None,
)
def call_claude_agent(self: Task, params: dict[str, Any]) -> dict[str, Any]:
    """One Messages API call; a 429 is retried with the seed's exponential countdown."""
    _count("tasks_run")
    base_s = float(os.environ.get("SEED_BACKOFF_BASE_S", "10"))
    try:
        message = _client().messages.create(**params)
    except anthropic.RateLimitError:
        _count("rate_limited")
        retries: int = self.request.retries
        _count("failed_after_retries" if retries >= (self.max_retries or 0) else "retries")
        # Past max_retries, retry() raises MaxRetriesExceededError: the task fails.
        raise self.retry(countdown=2**retries * base_s) from None
    except Exception:
        _count("failed_other")
        raise
    return message.model_dump(mode="json")
