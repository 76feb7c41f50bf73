"""The seed's generation on its task backend: md5 response cache, then all nine agents.

The response cache is the seed's ``get_cache_key``: ``md5(f"{page_id}:{prompt}")``, kept
in memory. As in the seed it is not scoped by tenant (two tenants with the same page id
and prompt share an answer) and it ignores the page content (an edited page with the same
id and prompt gets the old answer). It is consulted before a generation and filled after
a successful one; concurrent identical requests are not merged.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agents.config import PipelineConfig
from agents.errors import PipelineError
from agents.page import Page
from agents.pipeline import GenerationRequest, Pipeline, StageEvent, make_plan
from agents.planner import GROUPS
from agents.prompting import Params
from agents.retrieval import CatalogIndex
from agents.runner import AgentRunner, MessageJSON
from agents.usage import CallUsage, UsageTotals
from bench.seed.base import SeedStats, SeedTasks

OnEvent = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True)
class SeedOutcome:
    """One generation as the seed answers it.

    ``usage`` sums the upstream calls this generation waited for and got answers to
    (priced): the whole bill on success, what was spent before the failure on failure,
    zero calls on a cache hit.
    """

    ok: bool
    cached: bool
    error: str | None
    usage: UsageTotals | None
    page: Page | None


class SeedBaseline:
    """The seed's web tier: generations whose agent calls go through ``tasks``."""

    def __init__(
        self,
        tasks: SeedTasks,
        *,
        catalog_index: CatalogIndex | None = None,
        config: PipelineConfig | None = None,
    ) -> None:
        self.tasks = tasks
        # The seed's agents each send their own prompt, with no prompt caching.
        self.config = (config or PipelineConfig()).model_copy(
            update={"prompt_caching": False, "prompt_layout": "per_agent"}
        )
        self._cache: dict[str, dict[str, Any]] = {}
        self._index = catalog_index

    @property
    def stats(self) -> SeedStats:
        return self.tasks.stats

    async def __aenter__(self) -> SeedBaseline:
        await self.tasks.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.tasks.stop()

    @staticmethod
    def cache_key(page_id: str, prompt: str) -> str:
        """The seed's ``get_cache_key``: no tenant, no page content."""
        return hashlib.md5(f"{page_id}:{prompt}".encode()).hexdigest()

    async def send(self, params: Params) -> MessageJSON:
        """One agent call as a Celery task."""
        return await self.tasks.send(params)

    async def generate(
        self,
        page_id: str,
        instruction: str,
        page: Page | None,
        *,
        on_event: OnEvent | None = None,
    ) -> SeedOutcome:
        """One generation: the md5 cache, else all nine agents through the workers."""
        emit: OnEvent = on_event or (lambda event, data: None)
        self.stats.generations += 1
        request = GenerationRequest(page_id, instruction, page, groups=GROUPS)
        job_id = uuid.uuid4().hex
        key = self.cache_key(page_id, instruction)
        cached = self._cache.get(key)
        accepted = {"job_id": job_id, "deduplicated": False, "cached": cached is not None}
        if cached is not None:
            self.stats.cache_hits += 1
            emit("accepted", {**accepted, "plan": cached["plan"], "skipped": cached["skipped"]})
            emit("result", {**cached, "cached": True})
            page_out = Page.model_validate(cached["page"])
            return SeedOutcome(True, True, None, UsageTotals(), page_out)

        plan = make_plan(request)
        emit("accepted", {**accepted, "plan": list(plan.agents), "skipped": list(plan.skipped)})
        spent = UsageTotals()

        async def send(params: Params) -> MessageJSON:
            reply = await self.send(params)
            call = CallUsage.from_api(
                str(reply.get("model") or params["model"]), reply.get("usage", {})
            )
            spent.add(call, self.config.price_of(call.model))
            return reply

        def on_stage(event: StageEvent) -> None:
            emit("stage", event.to_data())

        runner = AgentRunner(self.config, send)
        pipeline = Pipeline(self.config, runner.run, catalog_index=self._index)
        try:
            result = await pipeline.run(request, plan=plan, on_event=on_stage)
        except PipelineError as exc:
            self.stats.generations_failed += 1
            emit("error", exc.to_json())
            return SeedOutcome(False, False, exc.message, spent, None)
        payload = result.to_json()
        self._cache[key] = payload
        emit("result", {**payload, "cached": False})
        return SeedOutcome(True, False, None, result.total, result.page)
