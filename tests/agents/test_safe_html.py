"""The embed's raw HTML, from a submitted page or a model's edit: nothing executable is kept."""

from __future__ import annotations

import re

import pytest
from pydantic import TypeAdapter

from agents.apply import apply_ops
from agents.ops import Op
from agents.page import Component, Page
from tests.agents.xss_corpus import HTML_VECTORS

VECTORS = HTML_VECTORS
EXECUTABLE = re.compile(
    r"<\s*(script|iframe|object|embed|svg|style|form|math|body)|\son\w+\s*=|javascript:|data:"
    r"|style\s*=",
    re.I,
)


def embed(html: str) -> dict[str, object]:
    return {"kind": "html", "title": "Snippet", "html": html}


@pytest.mark.parametrize("vector", VECTORS)
def test_a_submitted_page_keeps_nothing_executable(vector: str) -> None:
    page = Page.model_validate(
        {
            "id": "p",
            "sections": [
                {
                    "id": "sec-1",
                    "name": "S",
                    "components": [{"id": "cmp-1", "type": "embed", "props": embed(vector)}],
                }
            ],
        }
    )
    html = page.sections[0].components[0].props["html"]
    assert not EXECUTABLE.search(html), html


@pytest.mark.parametrize("vector", VECTORS)
def test_a_models_edit_keeps_nothing_executable(vector: str) -> None:
    page = Page.model_validate(
        {"id": "p", "sections": [{"id": "sec-1", "name": "S", "components": []}]}
    )
    ops = TypeAdapter(list[Op]).validate_python(
        [
            {
                "op": "add_component",
                "section_id": "sec-1",
                "type": "embed",
                "props": embed("<p>ok</p>"),
            }
        ]
    )
    added = apply_ops(page, ops)
    assert not added.errors
    update = TypeAdapter(list[Op]).validate_python(
        [{"op": "update_props", "component_id": "cmp-1", "props": {"html": vector}}]
    )
    html = apply_ops(added.page, update).page.sections[0].components[0].props["html"]
    assert not EXECUTABLE.search(html), html


def test_plain_formatting_survives() -> None:
    snippet = '<p>Hello <strong>world</strong> <a href="https://example.com">link</a></p>'
    kept = Component(id="cmp-1", type="embed", props=embed(snippet)).props["html"]
    assert "<strong>world</strong>" in kept
    assert 'href="https://example.com"' in kept
