"""claude_sim as a Serve application, so ``serve run`` brings up a keyless local upstream.

One replica: its buckets are the simulated organisation's limits, shared by every caller.
"""

from __future__ import annotations

from typing import Any, cast

from ray import serve
from ray.serve import Application
from ray.serve.deployment import Deployment

from claude_sim import SimConfig, create_app


def build_sim_app(args: dict[str, Any] | None = None) -> Application:
    """The simulator; ``args`` are ``SimConfig`` fields (profile, limits, speed, ...)."""
    config = SimConfig.model_validate(args or {})
    asgi = create_app(config)

    @serve.deployment(
        name="claude_sim",
        num_replicas=1,
        max_ongoing_requests=10_000,
        ray_actor_options={"num_cpus": 0},
    )
    @serve.ingress(asgi)
    class ClaudeSim:
        """The simulated Anthropic API."""

    return cast(Deployment, ClaudeSim).bind()
