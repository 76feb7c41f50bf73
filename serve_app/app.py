"""``build_app(GatewayArgs) -> Application``: the gateway as Serve deployments.

Nine agent deployments of the one generic ``AgentReplica`` class, each with its own
autoscaling pool, and the FastAPI ingress that holds their handles. The budget keeper is
a named actor the replicas create on first use (see ``keeper.py`` for why). The bound
application can be inspected in a test without a cluster.
"""

from __future__ import annotations

from typing import Any, cast

from ray import serve
from ray.serve import Application
from ray.serve.config import AutoscalingConfig
from ray.serve.deployment import Deployment

from agents.specs import SPECS
from serve_app.agent_pool import AgentReplica
from serve_app.config import GatewayArgs
from serve_app.ingress import Ingress


def agent_deployment_name(agent: str) -> str:
    return f"agent_{agent}"


def build_app(args: GatewayArgs | dict[str, Any] | None = None) -> Application:
    """The gateway application; ``args`` as ``serve_config.yaml`` gives them."""
    if not isinstance(args, GatewayArgs):
        args = GatewayArgs.model_validate(args or {})
    args_json = args.model_dump_json()
    # Serve's decorators are typed loosely; these are Deployments at run time.
    pool = cast(Deployment, serve.deployment(AgentReplica))
    handles = {}
    for spec in SPECS:
        settings = args.pool_args(spec.name)
        handles[spec.name] = pool.options(
            name=agent_deployment_name(spec.name),
            max_ongoing_requests=settings.max_ongoing_requests,
            autoscaling_config=AutoscalingConfig(
                min_replicas=settings.min_replicas,
                initial_replicas=max(1, settings.min_replicas),
                max_replicas=settings.max_replicas,
                target_ongoing_requests=settings.target_ongoing_requests,
            ),
            ray_actor_options={"num_cpus": settings.num_cpus},
            health_check_period_s=5,
        ).bind(spec.name, args_json)
    ingress = args.ingress
    return (
        cast(Deployment, Ingress)
        .options(
            name="ingress",
            num_replicas=ingress.replicas,
            max_ongoing_requests=ingress.max_ongoing_requests,
            ray_actor_options={"num_cpus": ingress.num_cpus},
            health_check_period_s=5,
        )
        .bind(args_json, handles)
    )
