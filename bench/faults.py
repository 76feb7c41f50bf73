"""A three-node Ray cluster on this machine, and the faults the chaos benchmark injects into it.

``ray.cluster_utils.Cluster`` starts a head and two worker nodes as separate raylets, so a
node can die for real (every process of it SIGKILLed) while the others go on. Faults are
what production sees: a replica or the budget keeper SIGKILLed, Redis killed and restarted
(replaying its append-only file), a worker node gone. Each fault says what it hit.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from bench.redisproc import RedisServer
from bench.simproc import free_port

CPUS_PER_NODE = 2


@dataclass
class ChaosCluster:
    """The running cluster: its nodes, Serve's HTTP address, the Redis the gateway uses."""

    cluster: Any
    workers: list[Any]
    url: str
    redis: RedisServer
    dashboard: str
    """The Ray dashboard, which the state API (actors, their pids and nodes) goes through."""
    injected: list[dict[str, Any]] = field(default_factory=list)

    def actors(self, class_prefix: str) -> list[Any]:
        from ray.util.state import list_actors

        alive = list_actors(address=self.dashboard, filters=[("state", "=", "ALIVE")], limit=10_000)
        return [a for a in alive if a.class_name.startswith(class_prefix)]

    def placement(self) -> dict[str, dict[str, int]]:
        """Live gateway actors per node: which deployments (and the keeper) run where."""
        names = {n.node_id: f"worker-{i + 1}" for i, n in enumerate(self.workers)}
        out: dict[str, Counter[str]] = {}
        for actor in self.actors("ServeReplica:gateway:") + self.actors("BudgetKeeper"):
            node = names.get(actor.node_id, "head")
            out.setdefault(node, Counter())[actor.class_name.split(":")[-1]] += 1
        return {node: dict(sorted(c.items())) for node, c in sorted(out.items())}

    def kill_actor(self, fault: str, class_prefix: str) -> None:
        """SIGKILL one live actor of that class (the first one listed)."""
        found = self.actors(class_prefix)
        if not found:
            self.note(fault, f"no live {class_prefix} to kill")
            return
        victim = found[0]
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim.pid, signal.SIGKILL)
        self.note(fault, f"{victim.class_name} pid {victim.pid}")

    def restart_redis(self, fault: str, down_s: float) -> None:
        """SIGKILL Redis, keep it down ``down_s``, start it again on its append-only file."""
        self.redis.stop()
        time.sleep(down_s)
        self.redis.start()
        self.note(fault, f"down {down_s:.0f} s, restarted from its append-only file")

    def remove_worker(self, fault: str) -> None:
        """SIGKILL every process of the worker node that hosts the most agent replicas."""
        agents = Counter(a.node_id for a in self.actors("ServeReplica:gateway:agent_"))
        if not self.workers:
            self.note(fault, "no worker node left")
            return
        node = max(self.workers, key=lambda n: agents.get(n.node_id, 0))
        self.workers.remove(node)
        self.cluster.remove_node(node, allow_graceful=False)
        self.note(fault, f"node with {agents.get(node.node_id, 0)} agent replicas")

    def note(self, fault: str, what: str) -> None:
        self.injected.append({"fault": fault, "at": time.monotonic(), "what": what})


@contextlib.contextmanager
def chaos_cluster(redis: RedisServer, env: dict[str, str]) -> Iterator[ChaosCluster]:
    """A head and two worker nodes, Serve's proxy on the head only; yields the cluster."""
    import ray
    from ray import serve
    from ray.cluster_utils import Cluster

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_worker_niceness", "0")
    dashboard_port = free_port()
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": CPUS_PER_NODE,
            "include_dashboard": True,
            "dashboard_host": "127.0.0.1",
            "dashboard_port": dashboard_port,
        },
    )
    workers = [cluster.add_node(num_cpus=CPUS_PER_NODE) for _ in range(2)]
    cluster.wait_for_nodes()
    ray.init(
        address=cluster.address,
        namespace="nocode",
        log_to_driver=False,
        runtime_env={"env_vars": {**env, "REDIS_URL": redis.url}},
    )
    port = free_port()
    try:
        serve.start(proxy_location="HeadOnly", http_options={"host": "127.0.0.1", "port": port})
        dashboard = f"http://127.0.0.1:{dashboard_port}"
        yield ChaosCluster(cluster, workers, f"http://127.0.0.1:{port}", redis, dashboard)
    finally:
        with contextlib.suppress(Exception):
            serve.shutdown()
        ray.shutdown()
        cluster.shutdown()
