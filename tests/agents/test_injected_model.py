"""A prompt-injected model (claude_sim's ``injected_output``) writing the XSS corpus into
its answers: what reaches a returned page runs nothing.

The simulator puts the corpus into about half of the free strings (and a tenth of the
patterned ones) of the tool input of one reply in three: links, sources, the embed's HTML,
text, styles, event targets and params, section names, review notes. Each answer then goes
through the runner's validation and repair and the page's sanitising, as in production.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from agents.errors import PipelineError
from agents.pipeline import GenerationRequest
from agents.samples import landing_page
from tests.agents.xss_corpus import CORPUS, executable_parts

MARK = "xss-probe"
"""Carried by every payload: where it shows, a payload reached the page, neutralised."""
PAYLOADS = [f"{vector} {MARK}" for vector in CORPUS if len(vector) < 500]
INSTRUCTIONS = [
    "Create a landing page for a bakery with a hero, a product grid and a contact form",
    "Add a pricing section with a monthly/yearly toggle and a signup button",
    "Add an FAQ accordion and a footer with social links",
    "Embed our booking widget and add a newsletter signup that opens a modal",
    "Make the hero buttons link to the pricing section and animate the cards on scroll",
    "Create a portfolio page with a gallery, testimonials and a contact form",
]


async def test_a_prompt_injected_model_gets_nothing_executable_onto_a_page(
    make_pipeline: Any,
) -> None:
    sim = {"faults": {"injected_output": 0.35}, "injection_payloads": PAYLOADS, "seed": 11}
    wiring = make_pipeline(sim=sim)
    returned: list[dict[str, Any]] = []
    failed: Counter[str] = Counter()
    for i, instruction in enumerate(INSTRUCTIONS * 2):
        page = landing_page(f"p{i}") if i % 2 else None
        try:
            result = await wiring.pipeline.run(GenerationRequest(f"p{i}", instruction, page))
        except PipelineError as exc:  # an answer that never validated: a clean failure
            failed[type(exc).__name__] += 1
            continue
        returned.append(result.to_json())
    injected = sum(m.faults["injected_output"] for m in wiring.sim.state.api.stats.models.values())
    assert injected >= 10, "the simulator wrote the corpus into its answers"
    assert len(returned) >= len(INSTRUCTIONS), f"most generations still end with a page: {failed}"
    for payload in returned:
        assert executable_parts(payload["page"]) == []
        assert executable_parts({"review": payload["review"]}) == []
    assert any(MARK in json.dumps(p["page"]) for p in returned), "payloads reached pages"
