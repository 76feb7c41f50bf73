"""The Kubernetes manifests and the Serve configs: valid against their schemas and the app."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from ray.serve._private.build_app import build_app as build_serve_app

from serve_app.app import build_app
from serve_app.config import GatewayArgs
from serve_app.config_check import GATEWAY_IMPORT_PATH, pool_settings, problems, serve_config_of

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT.parent / "shared" / "kuberay" / "rayservice.v1.openapi.json"


def documents(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((ROOT / name).read_text()) if d]


def rayservice() -> dict[str, Any]:
    (service,) = [d for d in documents("cluster/rayservice.yaml") if d["kind"] == "RayService"]
    return service


def test_rayservice_matches_the_kuberay_crd_schema() -> None:
    jsonschema.validate(rayservice(), json.loads(CRD.read_text()))


@pytest.mark.parametrize("name", ["serve_config.yaml", "cluster/rayservice.yaml"])
def test_serve_configs_build_and_name_real_deployments(name: str) -> None:
    (document,) = [d for d in documents(name) if d.get("kind") in (None, "RayService")]
    assert problems(serve_config_of(document)) == []


def gateway_app(name: str) -> dict[str, Any]:
    (document,) = [d for d in documents(name) if d.get("kind") in (None, "RayService")]
    config = serve_config_of(document)
    return next(a for a in config["applications"] if a["import_path"] == GATEWAY_IMPORT_PATH)


@pytest.mark.parametrize("name", ["serve_config.yaml", "cluster/rayservice.yaml"])
def test_every_pool_is_sized_in_serves_own_config_not_in_args(name: str) -> None:
    app = gateway_app(name)
    built = {d.name for d in build_serve_app(build_app(app["args"]), name="gateway").deployments}
    listed = {d["name"]: d for d in app["deployments"]}
    assert set(listed) == built
    assert len(built) == 10
    for dep in listed.values():
        assert {"max_ongoing_requests", "ray_actor_options"} <= set(dep), dep["name"]
        assert ("num_replicas" in dep) != ("autoscaling_config" in dep), dep["name"]
    args = GatewayArgs.model_validate(app["args"])
    assert pool_settings(args) == {"ingress": {}}, "pool settings left in the app's args"


def test_config_check_refuses_a_pool_set_differently_in_args_and_deployments() -> None:
    config = serve_config_of(rayservice())
    app = config["applications"][0]
    app["args"]["agents"] = {"review": {"max_replicas": 3, "num_cpus": 0.1}}
    app["args"]["ingress"] = {"replicas": 5}
    found = problems(config)
    assert any("agent_review: autoscaling_config.max_replicas is 8" in p for p in found), found
    assert any("ingress: num_replicas is 2" in p for p in found), found
    assert not any("num_cpus" in p for p in found), "the same value in both places is fine"


def test_config_check_catches_what_serve_would_accept() -> None:
    config = serve_config_of(rayservice())
    app = config["applications"][0]
    app["deployments"] = [
        {"name": "agent_review", "autoscaling_config": {"min_replicas": 5, "max_replicas": 2}},
        {"name": "agent_nope"},
    ]
    found = problems(config)
    assert any("agent_nope" in p for p in found)
    assert any("min_replicas" in p for p in found)
    app["args"] = {"budget": {"tier": "tier9"}}
    assert any("cannot build" in p for p in problems(config))


def test_production_config_requires_keys_and_uses_fractional_cpus() -> None:
    app = serve_config_of(rayservice())["applications"][0]
    args = GatewayArgs.model_validate(app["args"])
    assert args.require_auth is True
    review = next(d for d in app["deployments"] if d["name"] == "agent_review")
    assert 0 < review["ray_actor_options"]["num_cpus"] < 1
    local = next(
        a
        for a in serve_config_of(documents("serve_config.yaml")[0])["applications"]
        if a["name"] == "gateway"
    )
    assert GatewayArgs.model_validate(local["args"]).require_auth is False


def test_edge_strips_the_headers_that_change_serves_timeouts() -> None:
    (ingress,) = documents("cluster/ingress.yaml")
    snippet = ingress["metadata"]["annotations"][
        "nginx.ingress.kubernetes.io/configuration-snippet"
    ]
    assert "x-request-timeout-seconds" in snippet
    assert "x-request-disconnect-disabled" in snippet


def test_no_secret_values_in_the_manifests() -> None:
    text = "".join((ROOT / "cluster" / n).read_text() for n in ("rayservice.yaml", "redis.yaml"))
    assert "sk-ant-" not in text
    secret = documents("cluster/secrets.example.yaml")[0]
    assert all(v.startswith(("<", "redis://")) for v in secret["stringData"].values())


def test_redis_needs_the_secrets_password_and_only_gateway_pods_reach_it() -> None:
    statefulset, _, policy = documents("cluster/redis.yaml")
    (redis,) = statefulset["spec"]["template"]["spec"]["containers"]
    args = redis["args"]
    assert args[args.index("--requirepass") + 1] == "$(REDIS_PASSWORD)"
    (password,) = [e for e in redis["env"] if e["name"] == "REDIS_PASSWORD"]
    assert password["valueFrom"]["secretKeyRef"] == {"name": "nocode-ai", "key": "redis-password"}
    assert policy["kind"] == "NetworkPolicy"
    assert policy["spec"]["podSelector"]["matchLabels"] == {"app": "nocode-redis"}
    (allowed,) = policy["spec"]["ingress"][0]["from"]
    gateway = allowed["podSelector"]["matchLabels"]
    spec = rayservice()["spec"]["rayClusterConfig"]
    pods = [spec["headGroupSpec"], *spec["workerGroupSpecs"]]
    assert all(gateway.items() <= p["template"]["metadata"]["labels"].items() for p in pods), (
        "every Ray pod may reach Redis"
    )
    gcs = spec["gcsFaultToleranceOptions"]["redisPassword"]["valueFrom"]["secretKeyRef"]
    assert gcs["key"] == "redis-password"
