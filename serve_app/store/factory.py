"""The one place a backend is chosen: Redis when configured, else memory, local or shared."""

from __future__ import annotations

from typing import Literal

from serve_app.store.actor import ActorStore, store_actor
from serve_app.store.base import Store
from serve_app.store.memory import MemoryStore
from serve_app.store.redis_backend import RedisStore

Scope = Literal["process", "cluster"]


def open_store(redis_url: str | None, *, scope: Scope = "process") -> Store:
    """Redis when a URL is set; otherwise this process's memory, or the cluster's store actor.

    ``scope="cluster"`` is what replicas use: without Redis they must still share one store,
    and the store actor is it. ``"process"`` keeps a memory store to this process (tests,
    the pipeline CLI).
    """
    if redis_url:
        return RedisStore(redis_url)
    if scope == "cluster":
        return ActorStore(store_actor())
    return MemoryStore()
