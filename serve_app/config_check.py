"""Check a Serve config before deploying it: ``python -m serve_app.config_check FILE``.

Serve's own schema accepts unknown keys, ``min_replicas > max_replicas`` and deployment
names the application does not have, and finds out only at deploy time, if at all. This
builds every application from its ``import_path`` and ``args`` (so ``GatewayArgs`` and
``SimConfig`` validate them), then checks every deployment override against the built
application: the name exists, the autoscaling config is valid and ordered. Works on a
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
