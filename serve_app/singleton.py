"""One named Ray actor per cluster: what the budget keeper and the store actor both are."""

from __future__ import annotations

from typing import Any

import ray

NAMESPACE = "nocode"


def cluster_singleton(actor_class: type, name: str, *args: Any) -> Any:
    """The cluster's actor called ``name``, created on first use from ``actor_class(*args)``.

    Detached (it outlives whoever created it), restarted at once when it dies, never
    retrying a call (a retried acquire or append would count twice), with room for many
    waiting calls and no CPU reserved: it waits on I/O and timers, it does not compute.
    """
    return (
        ray.remote(actor_class)
        .options(
            name=name,
            namespace=NAMESPACE,
            lifetime="detached",
            get_if_exists=True,
            max_restarts=-1,
            max_task_retries=0,
            max_concurrency=100_000,
            num_cpus=0,
        )
        .remote(*args)
    )
