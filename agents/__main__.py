"""Command line: ``python -m agents plan "..."``, ``python -m agents "..." [--page p.json]``
and ``python -m agents train-planner`` (retrain the planner after editing its rows).

The second runs the whole pipeline in this process. Upstream, in order of precedence:
``ANTHROPIC_BASE_URL`` (any Messages API, e.g. ``python -m claude_sim``), the real API when
``ANTHROPIC_API_KEY`` is set, otherwise claude_sim in-process (no server, no key).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import anthropic
import httpx2
from pydantic import ValidationError

from agents.config import PipelineConfig
from agents.page import Page
from agents.pipeline import GenerationRequest, Pipeline
from agents.planner import GROUPS, Group, plan_instruction, train_shipped_model
from agents.retrieval import CatalogIndex, RetrievalConfig
from agents.runner import AgentRunner, sdk_send


def upstream_client() -> anthropic.AsyncAnthropic:
    """The SDK client the environment asks for (see the module docstring)."""
    base_url = os.environ.get("ANTHROPIC_BASE_URL")
    key = os.environ.get("ANTHROPIC_API_KEY")
    if base_url or key:
        return anthropic.AsyncAnthropic(api_key=key or "sk-local", base_url=base_url, max_retries=2)
    from claude_sim import SimConfig, create_app

    transport = httpx2.ASGITransport(app=create_app(SimConfig(profile="tier4", speed=20)))
    return anthropic.AsyncAnthropic(
        api_key="sk-local",
        base_url="http://claude-sim",
        http_client=httpx2.AsyncClient(transport=transport),
        max_retries=2,
    )


async def generate(args: argparse.Namespace, page: Page | None) -> dict[str, Any]:
    groups: tuple[Group, ...] | None = None
    if args.agents:
        wanted = [g.strip() for g in args.agents.split(",")]
        unknown = [g for g in wanted if g not in GROUPS]
        if unknown:
            raise SystemExit(f"unknown agent groups {unknown}; choose from {list(GROUPS)}")
        groups = tuple(g for g in GROUPS if g in wanted)
    config = PipelineConfig(
        prompt_caching=not args.no_cache,
        retrieval=RetrievalConfig(
            uri=args.index or str(Path(tempfile.gettempdir()) / "nocode-ai-catalog.lance")
        ),
    )
    client = upstream_client()
    runner = AgentRunner(config, sdk_send(client))
    index = await asyncio.to_thread(CatalogIndex.open, config.retrieval)
    pipeline = Pipeline(config, runner.run, catalog_index=index)
    request = GenerationRequest(
        page_id=page.id if page else args.page_id,
        instruction=args.instruction,
        page=page,
        groups=groups,
    )
    result = await pipeline.run(request)
    await client.close()
    out = result.to_json()
    out["cost_usd"] = out["usage"]["total"]["cost_usd"]
    return out


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv == ["train-planner"]:
        train_shipped_model()
        return
    if argv[:1] == ["plan"]:
        parser = argparse.ArgumentParser(prog="python -m agents plan")
        parser.add_argument("instruction")
        parser.add_argument(
            "--new-page",
            action="store_true",
            help="the request carries no page (a page from scratch)",
        )
        args = parser.parse_args(argv[1:])
        plan = plan_instruction(args.instruction, has_page=False if args.new_page else None)
        print(json.dumps(plan.to_json()))
        return
    parser = argparse.ArgumentParser(prog="python -m agents", description=__doc__)
    parser.add_argument("instruction")
    parser.add_argument("--page", help="the current page document (JSON); none: a new page")
    parser.add_argument("--page-id", default="page-1", help="id of a new page")
    parser.add_argument("--agents", help="force these groups, comma separated")
    parser.add_argument("--no-cache", action="store_true", help="send no cache breakpoints")
    parser.add_argument("--index", help="LanceDB URI of the catalog index")
    args = parser.parse_args(argv)
    try:
        page = Page.model_validate_json(Path(args.page).read_text()) if args.page else None
        print(json.dumps(asyncio.run(generate(args, page)), indent=2))
    except (OSError, ValidationError) as exc:
        parser.error(str(exc))


if __name__ == "__main__":
    main()
