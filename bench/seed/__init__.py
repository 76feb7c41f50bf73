"""The seed plan's Phase 2 architecture as a benchmark baseline, on one of two backends.

``celery_workers``: real Celery worker processes on a real Redis broker and result backend
(what the seed deploys). ``emulated``: the same task semantics in one asyncio process, a
fast variant kept only where it agrees with the real one. ``baseline.SeedBaseline`` runs
the seed's generation (md5 response cache, all nine agents, no prompt caching) on either.
"""

from __future__ import annotations

from typing import Literal

from bench.seed.base import SeedSettings, SeedTasks

Backend = Literal["celery", "emulated"]
BACKENDS: tuple[Backend, ...] = ("celery", "emulated")


def seed_tasks(backend: Backend, claude_url: str, settings: SeedSettings) -> SeedTasks:
    """The task runner for ``backend`` against the Messages API at ``claude_url``."""
    if backend == "celery":
        from bench.seed.celery_workers import CeleryWorkers

        return CeleryWorkers(claude_url, settings)
    from bench.seed.emulated import EmulatedCelery

    return EmulatedCelery(claude_url, settings)


__all__ = ["BACKENDS", "Backend", "seed_tasks"]
