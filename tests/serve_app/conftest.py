"""One Ray instance and one deployed gateway (with its simulator) for the whole session."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest
import ray

from serve_app.store import JobRecord, Store
from serve_app.store.actor import ActorStore
from serve_app.store.memory import MemoryStore
from serve_app.store.redis_backend import RedisStore
from tests.conftest import RedisServer, free_port, started_redis

# Ray reads these when it starts: no token auth locally, workers not niced below us,
# temp files inside our own directory.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_worker_niceness", "0")

SIM_LIMITS = {"rpm": 120, "itpm": 400_000, "otpm": 40_000}
"""Tight enough that concurrent tests queue, loose enough that a suite stays quick."""

TENANT_KEYS = {
    "acme": "key-acme-test",
    "globex": "key-globex-test",
    "initech": "key-initech",
    "hooli": "key-hooli-test",
    "umbrella": "key-umbrella-test",
    "wayne": "key-wayne-test",
    "stark": "key-stark-test",
}
"""Two tenants, so that tests can look for leaks between them, two with tight quotas, one
whose usage only one test makes, the schema fuzzer's (its quota bounds what it runs), and
one whose cost only the cost-counter test makes."""
QUOTA = {"generations_per_minute": 2}
"""Initech's quota, small enough for a test to reach."""
FUZZ_QUOTA = {"generations_per_minute": 3, "concurrent_jobs": 2}
"""Wayne's: the fuzzer's valid bodies start a few real generations, then get 429s."""
SPEND_QUOTA = {"usd_per_day": 0.01, "usd_held_per_generation": 0.01}
"""Hooli's: one running job holds its whole day, and any dollar it spent refuses the next."""


@dataclass
class Gateway:
    url: str
    sim_url: str
    metrics_url: str
    redis: RedisServer
    """The gateway's Redis, which a test may stop (and must start again)."""

    def client(self, tenant: str | None = "acme", **kw: Any) -> httpx2.Client:
        """An HTTP client for the gateway, as ``tenant`` (None: without a key)."""
        headers = {"authorization": f"Bearer {TENANT_KEYS[tenant]}"} if tenant else {}
        return httpx2.Client(base_url=self.url, timeout=120, headers=headers, **kw)

    def sim_stats(self) -> dict[str, Any]:
        return httpx2.get(self.sim_url + "/sim/stats", timeout=30).json()  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def gateway_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """The gateway's own Redis, apart from the store tests' (which empty theirs after each)."""
    server = started_redis(tmp_path_factory)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def ray_serve(
    tmp_path_factory: pytest.TempPathFactory, gateway_redis: RedisServer
) -> Iterator[tuple[int, int]]:
    """A local Ray instance with Serve on a free port; yields (serve port, metrics port).

    Its workers see the tenants' keys and the gateway's Redis in their environment, as in
    production, so the gateway under test keeps its state in a real Redis server.
    """
    import ray
    from ray import serve

    port, metrics_port = free_port(), free_port()
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        namespace="nocode",
        _temp_dir=str(tmp_path_factory.mktemp("ray")),
        _metrics_export_port=metrics_port,
        runtime_env={
            "env_vars": {
                "NOCODE_API_KEYS": ",".join(f"{t}:{k}" for t, k in TENANT_KEYS.items()),
                "REDIS_URL": gateway_redis.url,
            }
        },
    )
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    yield port, metrics_port
    serve.shutdown()
    ray.shutdown()


@pytest.fixture(scope="session")
def gateway(
    ray_serve: tuple[int, int],
    gateway_redis: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Gateway]:
    """The gateway and its simulator, deployed once (two tenants with keys, on Redis)."""
    import ray
    from ray import serve

    from claude_sim.deployment import build_sim_app
    from serve_app.app import build_app
    from serve_app.keeper import KEEPER_NAME
    from serve_app.singleton import NAMESPACE
    from serve_app.store.actor import STORE_ACTOR_NAME

    base = f"http://127.0.0.1:{ray_serve[0]}"
    limits = {p: SIM_LIMITS for p in ("haiku", "sonnet", "opus")}
    serve.run(
        build_sim_app({"profile": "custom", "limits": limits, "speed": 25}),
        name="claude-sim",
        route_prefix="/claude-sim",
        blocking=False,
    )
    # The pipeline never uses opus: a tiny opus budget lets a test watch the keeper's
    # fairness without other tests' calls in the queue.
    budget = {**limits, "opus": {"rpm": 120, "itpm": 100_000, "otpm": 100_000}}
    index = tmp_path_factory.mktemp("catalog") / "index.lance"
    args = {
        "operator_tenants": ["globex"],
        "tenant_quotas": {"initech": QUOTA, "hooli": SPEND_QUOTA, "wayne": FUZZ_QUOTA},
        "budget": {"tier": "custom", "limits": budget, "admission_max_wait_s": 600},
        "upstream": {"simulator_url": base + "/claude-sim", "agent_cache_ttl_s": 600},
        "pipeline": {"retrieval": {"uri": str(index)}},
        "ingress": {"ping_interval_s": 1.0, "user_generations_per_minute": 5},
        "agents": {
            name: {"min_replicas": 1, "max_replicas": 1}
            for name in (
                "layout_analyzer",
                "layout_generator",
                "component_analyzer",
                "component_generator",
                "events_analyzer",
                "events_generator",
                "styles",
                "animation",
                "review",
            )
        },
    }
    serve.run(build_app(args), name="gateway", route_prefix="/", blocking=False)
    deadline = time.monotonic() + 180
    while True:
        try:
            if httpx2.get(base + "/readyz", timeout=10).status_code == 200:
                break
        except httpx2.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("the gateway did not become ready")
        time.sleep(1)
    metrics = f"http://127.0.0.1:{ray_serve[1]}/metrics"
    yield Gateway(base, base + "/claude-sim", metrics, gateway_redis)
    serve.delete("gateway")
    serve.delete("claude-sim")
    ray.kill(ray.get_actor(KEEPER_NAME, namespace=NAMESPACE))
    with contextlib.suppress(ValueError):  # only there if a test used the cluster scope
        ray.kill(ray.get_actor(STORE_ACTOR_NAME, namespace=NAMESPACE))


def new_job(job_id: str = "job-1", **fields: Any) -> JobRecord:
    now = time.time()
    return JobRecord.model_validate(
        {
            "job_id": job_id,
            "tenant": "acme",
            "user_id": "u1",
            "page_id": "home",
            "request": {"instruction": "add a pricing section", "page": None},
            "created_at": now,
            "updated_at": now,
            **fields,
        }
    )


BACKENDS = [
    "memory",
    pytest.param("redis", marks=pytest.mark.redis),
    pytest.param("actor", marks=pytest.mark.ray),
]


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    """Each backend: in memory, in a real Redis, and hosted by a Ray actor (a fresh one)."""
    if request.param == "memory":
        opened: Store = MemoryStore()
    elif request.param == "redis":
        opened = RedisStore(request.getfixturevalue("redis_url"))
    else:
        request.getfixturevalue("ray_serve")
        actor = ray.remote(MemoryStore).options(max_concurrency=1000, num_cpus=0).remote()
        opened = ActorStore(actor)
        # Started before the test, so its timings measure the store, not an actor's start.
        assert await opened.ping() is True
    yield opened
    await opened.close()
    if request.param == "actor":
        ray.kill(actor)


def parse_sse(text: str) -> list[tuple[int, str, dict[str, Any]]]:
    """(id, event, data) of each event of an SSE body; comments are skipped."""
    events = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            fields[name] = value
        if "event" in fields:
            events.append((int(fields["id"]), fields["event"], json.loads(fields["data"])))
    return events


def generate(
    gw: Gateway, page_id: str, body: dict[str, Any], headers: dict[str, str] | None = None
) -> httpx2.Response:
    """POST a generation as tenant acme."""
    with gw.client() as http:
        return http.post(f"/v1/pages/{page_id}/generate", json=body, headers=headers or {})


@contextlib.asynccontextmanager
async def own_keeper(args: Any) -> AsyncIterator[Any]:
    """A budget keeper for one test (``args``: its GatewayArgs), over a real actor, apart
    from the deployed gateway's singleton."""
    from serve_app.keeper import BudgetKeeper
    from serve_app.keeper_client import KeeperClient

    actor = ray.remote(BudgetKeeper).options(num_cpus=0).remote(args.model_dump_json(), None)
    client = KeeperClient(actor)
    await client.ready()
    try:
        yield client
    finally:
        ray.kill(actor)


class PoolHold:
    """Holds one of the keeper's pools paused until ``release``: a thread renews a short
    pause, so the hold outlasts however long a loaded machine takes to reach the held
    call, and ends within ``2 * RENEW_S`` of the release. Each pause lasts four of the
    thread's periods: on a loaded CI machine a pause lasting two lapsed between renewals
    (the thread or the keeper stalled) and let the held call through."""

    RENEW_S = 2.0

    def __init__(self, pool: str) -> None:
        from serve_app.keeper import KEEPER_NAME
        from serve_app.singleton import NAMESPACE

        self._keeper = ray.get_actor(KEEPER_NAME, namespace=NAMESPACE)
        self._pool = pool
        self._released = threading.Event()
        self._pause()
        self._thread = threading.Thread(target=self._renew, daemon=True)
        self._thread.start()

    def _pause(self) -> None:
        ray.get(self._keeper.pause.remote(self._pool, 2 * self.RENEW_S))

    def _renew(self) -> None:
        while not self._released.wait(self.RENEW_S / 2):
            self._pause()

    def release(self) -> None:
        self._released.set()
        self._thread.join()


@contextlib.contextmanager
def held_styles_job(gw: Gateway, page_id: str) -> Iterator[tuple[dict[str, Any], PoolHold]]:
    """Start a styles-only job (``stream: false``) whose one call is held in the keeper
    (the haiku pool paused) until the hold is released or the block ends, so that a test
    can break something mid-job. The instruction names the page: a page given whole is
    not in the prompt, and an answer kept from an earlier held job (one cancelled, say)
    would skip the hold."""
    from agents.samples import landing_page

    body = {
        "instruction": f"Restyle the footer of {page_id} in dark mode",
        "page": landing_page(page_id).model_dump(mode="json"),
        "user_id": user(),
        "agents": ["styles"],
        "stream": False,
    }
    hold = PoolHold("haiku")
    try:
        yield generate(gw, page_id, body).json(), hold
    finally:
        hold.release()


def user() -> str:
    """A fresh user id, so that tests never share a user's rate limit."""
    return f"user-{uuid.uuid4().hex[:8]}"
