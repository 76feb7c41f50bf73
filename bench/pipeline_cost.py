"""Tokens and dollars per generation, with and without prompt caching, against the seed plan.

Every instruction of the shared dataset runs once, in steady state (after a warm-up that
fills the caches), against claude_sim: new pages from scratch, edits against a six-section
landing page. Three setups at today's model prices:

- ours: the planner skips agents an instruction does not need; prompt caching on, one
  shared prefix per model tier;
- ours with per-agent prompts: the same, but each agent sends only its own tool and prompt;
- ours without caching: the shared layout with no cache breakpoints;
- the seed's shape: all nine agents always, per-agent prompts, no caching.

The "typical generation" is the dataset's own mix. The seed plan estimated ~32,000
tokens and ~$0.20 per full generation.

    python -m bench.pipeline_cost
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import httpx2

from agents.config import PipelineConfig
from agents.pipeline import GenerationRequest, Pipeline
from agents.planner import GROUPS
from agents.retrieval import CatalogIndex, RetrievalConfig
from agents.runner import AgentRunner, sdk_send
from agents.samples import landing_page
from agents.usage import UsageTotals
from bench import report
from claude_sim import PoolLimits, SimConfig, create_app

DATASET = report.ROOT.parent / "shared" / "datasets" / "instructions.jsonl"
SEED_TOKENS, SEED_COST = 32_000, 0.20
UNLIMITED = PoolLimits(rpm=10**7, itpm=10**10, otpm=10**10)
NEW_PAGE_WORDS = (
    "create a",
    "build a",
    "generate a",
    "design a",
    "make a",
    "new page",
    "landing page for",
    "page for",
)


@dataclass(frozen=True)
class Setup:
    name: str
    caching: bool
    all_agents: bool
    layout: str = "shared"


SETUPS = (
    Setup("ours", True, False),
    Setup("ours, per-agent prompts", True, False, "per_agent"),
    Setup("ours, no caching", False, False),
    Setup("seed shape: 9 agents, per-agent prompts, no caching", False, True, "per_agent"),
)


def instructions() -> list[tuple[str, bool]]:
    """(instruction, is a new page) for every dataset row."""
    rows = []
    for line in DATASET.read_text().splitlines():
        text = json.loads(line)["instruction"]
        rows.append((text, any(w in text.lower() for w in NEW_PAGE_WORDS)))
    return rows


async def measure(
    setup: Setup, rows: list[tuple[str, bool]], index_uri: str, warmup: int
) -> dict[str, list[UsageTotals]]:
    # Limits are not what this measures: make them unreachable.
    app = create_app(
        SimConfig(
            profile="custom", speed=1000, limits={p: UNLIMITED for p in ("haiku", "sonnet", "opus")}
        )
    )
    http = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app))
    client = anthropic.AsyncAnthropic(
        api_key="sk-bench", base_url="http://sim", http_client=http, max_retries=0
    )
    config = PipelineConfig(
        prompt_caching=setup.caching,
        prompt_layout=setup.layout,
        retrieval=RetrievalConfig(uri=index_uri),
    )
    pipeline = Pipeline(
        config,
        AgentRunner(config, sdk_send(client)).run,
        catalog_index=CatalogIndex.open(config.retrieval),
    )
    page = landing_page()
    groups = GROUPS if setup.all_agents else None
    out: dict[str, list[UsageTotals]] = {"new page": [], "edit": [], "typical": []}
    for i, (text, new) in enumerate(rows[:warmup] + rows):
        request = GenerationRequest(f"page-{i}", text, None if new else page, groups)
        result = await pipeline.run(request)
        if i >= warmup:
            out["new page" if new else "edit"].append(result.total)
            out["typical"].append(result.total)
    await http.aclose()
    return out


def summary(totals: list[UsageTotals]) -> dict[str, float]:
    def mean(field: str) -> float:
        return statistics.mean(getattr(t, field) for t in totals)

    fields = (
        "calls",
        "input_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
        "output_tokens",
        "cost_usd",
    )
    out = {f: mean(f) for f in fields}
    out["total_tokens"] = (
        out["input_tokens"]
        + out["cache_creation_input_tokens"]
        + out["cache_read_input_tokens"]
        + out["output_tokens"]
    )
    inputs = out["total_tokens"] - out["output_tokens"]
    out["cache_read_share"] = out["cache_read_input_tokens"] / inputs if inputs else 0.0
    out["n"] = len(totals)
    return out


async def main(warmup: int) -> None:
    rows = instructions()
    results: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        index_uri = str(Path(tmp) / "catalog.lance")
        for setup in SETUPS:
            print(f"{setup.name}: {len(rows)} generations after {warmup} warm-up ...", flush=True)
            measured = await measure(setup, rows, index_uri, warmup)
            results[setup.name] = {kind: summary(t) for kind, t in measured.items() if t}
    report.save_json("pipeline_cost", results)
    table_rows: list[list[Any]] = []
    for name, kinds in results.items():
        for kind, s in kinds.items():
            table_rows.append(
                [
                    name,
                    kind,
                    int(s["n"]),
                    f"{s['calls']:.1f}",
                    f"{s['input_tokens']:,.0f}",
                    f"{s['cache_creation_input_tokens']:,.0f}",
                    f"{s['cache_read_input_tokens']:,.0f}",
                    f"{s['output_tokens']:,.0f}",
                    f"{s['total_tokens']:,.0f}",
                    f"{s['cache_read_share']:.0%}",
                    f"${s['cost_usd']:.4f}",
                ]
            )
    ours = results["ours"]["typical"]
    body = (
        "Each instruction of the shared dataset once, in steady state, against claude_sim "
        f"(default models: `{PipelineConfig().fast.id}` for the fast tier, "
        f"`{PipelineConfig().smart.id}` for the smart tier, at list prices). Edits run "
        "against a six-section landing page (`agents.samples.landing_page`). Means per "
        "generation; input is split into uncached input, cache writes and cache reads.\n\n"
        + report.table(
            [
                "setup",
                "generation",
                "n",
                "calls",
                "input",
                "cache write",
                "cache read",
                "output",
                "total tokens",
                "reads / input",
                "cost",
            ],
            table_rows,
        )
        + f"\n\nThe seed plan: ~{SEED_TOKENS:,} tokens and ~${SEED_COST:.2f} per full generation "
        f"(nine agents, no caching, 2025 prices). Ours, typical: "
        f"${ours['cost_usd']:.4f} per generation ({ours['cost_usd'] / SEED_COST:.0%} of the "
        f"seed's estimate); cache reads are {ours['cache_read_share']:.0%} of input tokens."
    )
    report.write_section("pipeline_cost", "Pipeline: tokens and cost per generation", body)
    print(json.dumps(results["ours"], indent=1))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--warmup", type=int, default=6)
    asyncio.run(main(parser.parse_args().warmup))
