"""Capacity planning: how many generations, and users, a Claude budget carries.

The seed planned by hand ("Tier 2 gives 5 generations a minute"); this computes it from
measured tokens per generation. For every model pool and limit kind (requests, input
tokens as the API counts them, that is uncached input plus cache writes, and output
tokens), the limit per minute over what a generation uses gives the generations a minute
that limit allows; the smallest binds. A generation's use is the mix of new pages and
edits. The measured use comes from a running gateway (its keeper meters every generation
that ends, ``/v1/capacity``) or, from config alone, from the profile a benchmark run
measured (``capacity_profile.json``). One arithmetic for both.

    python -m serve_app.capacity --tier tier2
    python -m serve_app.capacity --config serve_config.yaml --gateway http://127.0.0.1:8000
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx2

from claude_facts.limits import TIER_NAMES, PoolLimits
from serve_app.call_demand import KINDS
from serve_app.config import GatewayArgs, read_env
from serve_app.config_check import gateway_args_of
from serve_app.usage_meter import GENERATION_KINDS, Usage

PROFILE = Path(__file__).with_name("capacity_profile.json")


@dataclass(frozen=True)
class LimitRow:
    """One pool's limit of one kind against what a generation uses of it."""

    pool: str
    kind: str
    per_minute: float
    per_generation: dict[str, float]
    """By generation kind, and ``mixed``."""

    @property
    def generations_per_minute(self) -> float:
        used = self.per_generation["mixed"]
        return self.per_minute / used if used > 0 else float("inf")


def plan(
    limits: Mapping[str, PoolLimits],
    headroom: float,
    per_generation: Mapping[str, Usage],
    new_share: float,
) -> list[LimitRow]:
    """Every limit a generation draws on, binding first."""
    rows = []
    for pool, lim in limits.items():
        for kind, per_minute in zip(KINDS, (lim.rpm, lim.itpm, lim.otpm), strict=True):
            by_kind = {
                g: per_generation.get(g, {}).get(pool, {}).get(kind, 0.0) for g in GENERATION_KINDS
            }
            mixed = new_share * by_kind["new_page"] + (1 - new_share) * by_kind["edit"]
            if mixed > 0:
                rows.append(LimitRow(pool, kind, per_minute * headroom, by_kind | {"mixed": mixed}))
    return sorted(rows, key=lambda r: r.generations_per_minute)


def render(title: str, rows: list[LimitRow], source: str, new_share: float, activity: float) -> str:
    """The capacity table, the binding limit and the users it carries."""
    lines = [
        f"## {title}",
        f"Tokens per generation: {source}; mix {new_share:.0%} new pages, "
        f"{1 - new_share:.0%} edits.",
        "",
        "| pool | limit | per minute | per new page | per edit | per generation "
        "| generations / min |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        g = r.per_generation
        lines.append(
            f"| {r.pool} | {r.kind} | {r.per_minute:,.0f} | {g['new_page']:,.1f} "
            f"| {g['edit']:,.1f} | {g['mixed']:,.1f} | {r.generations_per_minute:,.2f} |"
        )
    if rows:
        binding = rows[0]
        rate = binding.generations_per_minute
        lines += [
            "",
            f"Binding: {binding.pool} {binding.kind}, {rate:,.2f} generations a minute. "
            f"At {activity:g} generations per active user per minute, that carries "
            f"{rate / activity:,.0f} concurrent users.",
        ]
    return "\n".join(lines)


def profile_usage(path: Path = PROFILE) -> tuple[dict[str, Usage], str]:
    """The measured profile shipped with the gateway, and where it came from."""
    profile = json.loads(path.read_text())
    per_generation = {k: profile["usage"][k]["per_generation"] for k in GENERATION_KINDS}
    counts = ", ".join(f"{profile['usage'][k]['generations']} {k}" for k in GENERATION_KINDS)
    return per_generation, f"{profile['measured_by']} ({counts})"


def gateway_usage(url: str) -> tuple[dict[str, Usage], str]:
    """What a running gateway has measured, from its ``/v1/capacity`` (operator key)."""
    key = read_env().nocode_api_key
    headers = {"Authorization": f"Bearer {key.get_secret_value()}"} if key else {}
    reply = httpx2.get(f"{url.rstrip('/')}/v1/capacity", headers=headers, timeout=10)
    reply.raise_for_status()
    usage = reply.json().get("usage_per_generation")
    if usage is None:
        raise SystemExit("the gateway's /v1/capacity has no usage: is the key an operator's?")
    per_generation = {k: usage[k]["per_generation"] for k in GENERATION_KINDS}
    counts = ", ".join(f"{usage[k]['generations']} {k}" for k in GENERATION_KINDS)
    return per_generation, f"measured by the gateway at {url} ({counts})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m serve_app.capacity", description=__doc__)
    parser.add_argument("--tier", choices=TIER_NAMES, help="one tier (default: every tier)")
    parser.add_argument("--config", type=Path, help="a Serve config: its gateway's budget")
    parser.add_argument("--gateway", help="a running gateway's URL (key: NOCODE_API_KEY)")
    parser.add_argument("--new-share", type=float, default=0.3, help="share of new pages")
    parser.add_argument(
        "--activity", type=float, default=0.2, help="generations per active user per minute"
    )
    args = parser.parse_args(argv)
    if not 0 <= args.new_share <= 1 or args.activity <= 0:
        parser.error("--new-share is a share (0 to 1), --activity more than 0")
    per_generation, source = gateway_usage(args.gateway) if args.gateway else profile_usage()
    budgets = budgets_of(args.config, args.tier)
    for title, gateway_args in budgets:
        budget = gateway_args.budget
        rows = plan(budget.pool_limits(), budget.headroom, per_generation, args.new_share)
        print(render(title, rows, source, args.new_share, args.activity) + "\n")


def budgets_of(config: Path | None, tier: str | None) -> list[tuple[str, GatewayArgs]]:
    """The budgets to plan: the config's gateway, one tier, or every tier."""
    if config is not None:
        args = gateway_args_of(config)
        return [(f"{config}: budget {args.budget.tier}, headroom {args.budget.headroom}", args)]
    tiers = [tier] if tier else list(TIER_NAMES)
    out = []
    for name in tiers:
        args = GatewayArgs.model_validate({"budget": {"tier": name}})
        out.append((f"{name}, headroom {args.budget.headroom}", args))
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
