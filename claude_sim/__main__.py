"""``python -m claude_sim --profile tier1 --port 8787``: serve the emulator over HTTP."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import uvicorn
import yaml

from claude_facts.limits import PoolLimits
from claude_sim.app import create_app
from claude_sim.config import SimConfig


def _limits(spec: str) -> tuple[str, PoolLimits]:
    """``sonnet=50,30000,8000`` -> ("sonnet", PoolLimits(rpm=50, itpm=30000, otpm=8000))."""
    try:
        pool, numbers = spec.split("=", 1)
        rpm, itpm, otpm = (int(x) for x in numbers.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected POOL=RPM,ITPM,OTPM such as sonnet=50,30000,8000, got {spec!r}"
        ) from None
    return pool, PoolLimits(rpm=rpm, itpm=itpm, otpm=otpm)


def build_config(args: argparse.Namespace) -> SimConfig:
    """The SimConfig a command line describes: a config file, then flags on top."""
    data: dict[str, Any] = {}
    if args.config:
        text = Path(args.config).read_text()
        data = json.loads(text) if args.config.endswith(".json") else yaml.safe_load(text)
    for field in ("profile", "speed", "seed", "otpm_mode"):
        if getattr(args, field) is not None:
            data[field] = getattr(args, field)
    if args.limit:
        data["limits"] = {
            **data.get("limits", {}),
            **{pool: lim.model_dump() for pool, lim in args.limit},
        }
    if args.api_key:
        data["api_keys"] = args.api_key
    return SimConfig.model_validate(data)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m claude_sim", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8787)
    parser.add_argument("--config", help="SimConfig as a JSON or YAML file")
    parser.add_argument("--profile", choices=["tier1", "tier2", "tier3", "tier4", "custom"])
    parser.add_argument(
        "--limit",
        action="append",
        type=_limits,
        metavar="POOL=RPM,ITPM,OTPM",
        help="per-pool limits replacing the profile's (repeatable)",
    )
    parser.add_argument("--otpm-mode", dest="otpm_mode", choices=["estimate", "produced"])
    parser.add_argument("--speed", type=float, help="latency divisor (10 = ten times faster)")
    parser.add_argument("--seed", type=int)
    parser.add_argument(
        "--api-key", action="append", help="accept only these keys (repeatable); default: any key"
    )
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    try:
        config = build_config(args)
    except (OSError, ValueError) as exc:
        parser.error(str(exc))
    logging.basicConfig(level=args.log_level.upper())
    uvicorn.run(
        create_app(config),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=False,
    )


if __name__ == "__main__":
    main()
