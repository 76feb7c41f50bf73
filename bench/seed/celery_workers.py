"""The seed's Celery deployment for real: a Redis server, M worker processes, a web tier.

``start`` launches a fresh ``redis-server`` (broker on db 0, results on db 1) and
``settings.workers`` processes of ``celery -A bench.seed.worker worker --concurrency=N``
(prefork, Celery's default prefetch and fair scheduling), and waits until every worker
answers a ping. ``send`` is the seed's web tier calling ``call_claude_agent.delay(...)``:
it publishes the task by name and waits for its result in the Redis result backend.

Waiting is one poller for all pending tasks, reading their states with the backend's own
``get_many`` (one MGET per round), rather than one ``AsyncResult.get()`` per call: the web
tier here is one event loop, and Celery's result consumer is not safe to share between
threads. All Celery client calls run on one thread, so they never block the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import redis
from celery import Celery
from celery.exceptions import MaxRetriesExceededError
from celery.exceptions import TimeoutError as CeleryTimeoutError

from agents.errors import ClaudeAPIError
from agents.prompting import Params
from agents.runner import MessageJSON
from bench.redisproc import RedisServer, redis_server
from bench.seed.base import STATS_KEY, TASK_NAME, SeedSettings, SeedTasks

POLL_S = 0.1
"""How often the web tier looks for finished tasks (one MGET for all of them)."""
WORKER_COUNTERS = ("tasks_run", "rate_limited", "retries", "failed_after_retries", "failed_other")


class CeleryWorkers(SeedTasks):
    """Real Celery workers on a real Redis, started and stopped with this object."""

    def __init__(
        self, claude_url: str, settings: SeedSettings, *, api_key: str = "sk-seed"
    ) -> None:
        super().__init__(settings)
        self._claude_url = claude_url
        self._api_key = api_key
        self._stack = contextlib.ExitStack()
        self._redis: RedisServer | None = None
        self._app: Celery | None = None
        self._workers: list[subprocess.Popen[bytes]] = []
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="celery-client")
        self._waiting: dict[str, asyncio.Future[MessageJSON]] = {}
        self._poller: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._app is not None:
            return
        self._redis = self._stack.enter_context(redis_server())
        base = f"redis://127.0.0.1:{self._redis.port}"
        app = Celery("ai_worker", broker=f"{base}/0", backend=f"{base}/1")
        app.conf.update(task_serializer="json", result_serializer="json", accept_content=["json"])
        self._app = app
        env = {**os.environ, **self._worker_env(base)}
        self._workers = [self._spawn(i, env) for i in range(self.settings.workers)]
        await self._in_thread(self._wait_for_workers)
        self._poller = asyncio.create_task(self._poll(), name="seed-result-poller")

    def _worker_env(self, base: str) -> dict[str, str]:
        rate = self.settings.rate_per_minute
        return {
            "SEED_REDIS_URL": base,
            "SEED_CLAUDE_URL": self._claude_url,
            "SEED_API_KEY": self._api_key,
            "SEED_RATE_LIMIT": f"{rate:g}/m" if rate > 0 else "",
            "SEED_MAX_RETRIES": str(self.settings.max_retries),
            "SEED_BACKOFF_BASE_S": f"{self.settings.backoff_base_s:g}",
        }

    def _spawn(self, index: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "bench.seed.worker",
            "worker",
            "--pool=prefork",
            f"--concurrency={self.settings.concurrency}",
            f"--prefetch-multiplier={self.settings.prefetch_multiplier}",
            f"--hostname=seed-{index}@%h",
            "--loglevel=WARNING",
        ]
        return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)

    def _wait_for_workers(self, within_s: float = 90) -> None:
        assert self._app is not None
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            if any(w.poll() is not None for w in self._workers):
                raise RuntimeError("a Celery worker exited while starting")
            answers = self._app.control.ping(timeout=1.0)
            if len(answers) >= self.settings.workers:
                return
        raise RuntimeError(f"the Celery workers did not answer within {within_s:g} s")

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
            self._poller = None
        for future in self._waiting.values():
            future.cancel()
        self._waiting.clear()
        if self._app is not None:
            await self._in_thread(self._read_counters)
            self._app.close()
            self._app = None
        for worker in self._workers:
            worker.terminate()  # warm shutdown: the tasks that run finish first
        for worker in self._workers:
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait(10)
        self._workers = []
        self._stack.close()
        self._thread.shutdown(wait=True)

    def _read_counters(self) -> None:
        assert self._redis is not None
        client = redis.Redis.from_url(f"redis://127.0.0.1:{self._redis.port}/2")
        with client:
            raw = client.hgetall(STATS_KEY)
        counts = {k.decode(): int(v) for k, v in raw.items()}
        for name in WORKER_COUNTERS:
            setattr(self.stats, name, counts.get(name, 0))
        self.stats.tasks_published += self.stats.retries

    async def send(self, params: Params) -> MessageJSON:
        if self._app is None:
            raise RuntimeError("CeleryWorkers is not started")
        task_id = uuid.uuid4().hex
        future: asyncio.Future[MessageJSON] = asyncio.get_running_loop().create_future()
        self._waiting[task_id] = future
        app = self._app
        await self._in_thread(lambda: app.send_task(TASK_NAME, args=[params], task_id=task_id))
        self.stats.tasks_published += 1
        return await future

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(POLL_S)
            if not self._waiting:
                continue
            ids = list(self._waiting)
            for task_id, meta in await self._in_thread(lambda ids=ids: self._ready(ids)):
                future = self._waiting.pop(task_id, None)
                if future is None:
                    continue
                if future.done():
                    self.stats.orphaned += 1
                elif meta["status"] == "SUCCESS":
                    future.set_result(meta["result"])
                else:
                    future.set_exception(_task_error(task_id, meta["result"]))

    def _ready(self, ids: list[str]) -> list[tuple[str, dict[str, Any]]]:
        """The tasks among ``ids`` that have ended, with their result meta (one MGET)."""
        assert self._app is not None
        ready: list[tuple[str, dict[str, Any]]] = []
        with contextlib.suppress(CeleryTimeoutError):
            for task_id, meta in self._app.backend.get_many(ids, timeout=0, interval=0):
                ready.append((task_id, meta))
        return ready

    async def _in_thread(self, call: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._thread, call)


def _task_error(task_id: str, error: object) -> ClaudeAPIError:
    """A failed task as the pipeline's error; MaxRetriesExceededError is the 429 one."""
    if isinstance(error, MaxRetriesExceededError):
        return ClaudeAPIError(
            f"{TASK_NAME}[{task_id}]: MaxRetriesExceededError on anthropic.RateLimitError "
            "(429 rate limit)",
            upstream_status=429,
        )
    status = getattr(error, "status_code", None)
    return ClaudeAPIError(
        f"{TASK_NAME}[{task_id}]: {type(error).__name__}: {str(error)[:300]}",
        upstream_status=status if isinstance(status, int) else None,
    )
