"""The gateway's shared state, one module per part (see ``base`` for the interface).

``base``: the interface and its records; ``primitives``: GCRA and single-flight, built once
on the backends' atomic steps; ``memory``, ``redis_backend``, ``actor``: the backends;
``factory.open_store``: the one place a backend is chosen.
"""

from serve_app.store.base import (
    TERMINAL,
    CounterBound,
    Fence,
    JobFencedError,
    JobRecord,
    JobStatus,
    Store,
    StoredEvent,
)
from serve_app.store.factory import open_store
from serve_app.store.primitives import RateDecision

__all__ = [
    "TERMINAL",
    "CounterBound",
    "Fence",
    "JobFencedError",
    "JobRecord",
    "JobStatus",
    "RateDecision",
    "Store",
    "StoredEvent",
    "open_store",
]
