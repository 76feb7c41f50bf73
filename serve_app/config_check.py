"""Check a Serve config before deploying it: ``python -m serve_app.config_check FILE``.

Serve's own schema accepts unknown keys, ``min_replicas > max_replicas`` and deployment
names the application does not have, and finds out only at deploy time, if at all. This
validates the config with Serve's schema, builds every application from its
``import_path`` and ``args`` (so ``GatewayArgs`` and ``SimConfig`` validate them), then
checks every deployment override against the built application: the name exists, the
autoscaling config is valid and ordered, and a pool setting the gateway's args also give
(``agents``, ``ingress.replicas``...) says the same in both places. Works on a
``serve_config.yaml`` and on a KubeRay ``RayService`` (its ``serveConfigV2``).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from ray.serve._private.build_app import build_app as build_serve_app
from ray.serve.config import AutoscalingConfig
from ray.serve.schema import ServeDeploySchema

from serve_app.app import agent_deployment_name
from serve_app.config import GatewayArgs


def serve_config_of(document: dict[str, Any]) -> dict[str, Any]:
    """The Serve config in a document: itself, or a RayService's ``serveConfigV2``."""
    if document.get("kind") == "RayService":
        config: dict[str, Any] = yaml.safe_load(document["spec"]["serveConfigV2"])
        return config
    return document


GATEWAY_IMPORT_PATH = "serve_app.app:build_app"


def gateway_args_of(path: Path) -> GatewayArgs:
    """The gateway application's args in a Serve config or RayService file, validated."""
    for document in yaml.safe_load_all(path.read_text()):
        if not document or document.get("kind") not in (None, "RayService"):
            continue
        for app in serve_config_of(document).get("applications", []):
            if app.get("import_path") == GATEWAY_IMPORT_PATH:
                return GatewayArgs.model_validate(app.get("args") or {})
    raise ValueError(f"{path}: no application imports {GATEWAY_IMPORT_PATH}")


def pool_settings(args: GatewayArgs) -> dict[str, dict[tuple[str, ...], Any]]:
    """The pool settings the gateway's args give explicitly, by deployment and by where
    the same setting sits in a Serve deployment override."""
    out: dict[str, dict[tuple[str, ...], Any]] = {}
    ingress = args.ingress
    where = {
        "replicas": ("num_replicas",),
        "max_ongoing_requests": ("max_ongoing_requests",),
        "num_cpus": ("ray_actor_options", "num_cpus"),
    }
    out["ingress"] = {where[f]: getattr(ingress, f) for f in ingress.model_fields_set & set(where)}
    where = {
        "min_replicas": ("autoscaling_config", "min_replicas"),
        "max_replicas": ("autoscaling_config", "max_replicas"),
        "target_ongoing_requests": ("autoscaling_config", "target_ongoing_requests"),
        "max_ongoing_requests": ("max_ongoing_requests",),
        "num_cpus": ("ray_actor_options", "num_cpus"),
    }
    for agent, pool in args.agents.items():
        given = pool.model_fields_set & set(where)
        out[agent_deployment_name(agent)] = {where[f]: getattr(pool, f) for f in given}
    return out


def disagreements(app: str, args: dict[str, Any], overrides: list[dict[str, Any]]) -> list[str]:
    """Settings the gateway's args and its deployment overrides both give, differently."""
    settings = pool_settings(GatewayArgs.model_validate(args))
    found = []
    for override in overrides:
        for path, from_args in settings.get(str(override.get("name")), {}).items():
            value: Any = override
            for key in path:
                value = value.get(key) if isinstance(value, dict) else None
            if value is not None and value != from_args:
                found.append(
                    f"{app}.{override['name']}: {'.'.join(path)} is {value} under deployments "
                    f"but {from_args} in the app's args; set it in one place"
                )
    return found


def problems(config: dict[str, Any]) -> list[str]:
    """Everything wrong with a Serve config, as readable lines ([] when it is fine)."""
    found: list[str] = []
    known_top = {
        "proxy_location",
        "http_options",
        "grpc_options",
        "logging_config",
        "applications",
        "target_capacity",
    }
    found += [f"unknown top-level key {k!r}" for k in sorted(set(config) - known_top)]
    try:
        ServeDeploySchema.model_validate(config)
    except ValidationError as exc:
        found += [f"Serve's schema: {e['loc']}: {e['msg']}" for e in exc.errors()]
    for app in config.get("applications", []):
        name = app.get("name", "?")
        module, _, attr = str(app.get("import_path", "")).partition(":")
        try:
            builder = getattr(importlib.import_module(module), attr)
            built = build_serve_app(builder(app.get("args") or {}), name=name)
        except (ImportError, AttributeError, ValueError, ValidationError) as exc:
            found.append(f"{name}: cannot build the application: {exc}")
            continue
        names = {d.name for d in built.deployments}
        if app.get("import_path") == GATEWAY_IMPORT_PATH:
            found += disagreements(name, app.get("args") or {}, app.get("deployments", []))
        for override in app.get("deployments", []):
            dep = override.get("name")
            if dep not in names:
                found.append(f"{name}: no deployment {dep!r}; it has {sorted(names)}")
            auto = override.get("autoscaling_config")
            if auto:
                try:
                    checked = AutoscalingConfig(**auto)
                except (ValueError, TypeError) as exc:
                    found.append(f"{name}.{dep}: bad autoscaling_config: {exc}")
                    continue
                if checked.min_replicas > checked.max_replicas:
                    found.append(f"{name}.{dep}: min_replicas > max_replicas")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serve_app.config_check", description=__doc__)
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args(argv)
    failed = False
    for path in args.files:
        for document in yaml.safe_load_all(path.read_text()):
            if not document or (document.get("kind") not in (None, "RayService")):
                continue
            for line in problems(serve_config_of(document)):
                print(f"{path}: {line}")
                failed = True
    if not failed:
        print("ok")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
