"""Submitted pages: the XSS corpus in every place a page holds a string.

Each vector is put where a link, a source, raw HTML, text, a style, an event target or
param, a section name or a title goes. The body is either refused (the gateway's ``422``)
or accepted with nothing executable left in it, as the corpus's oracle reads it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from agents.catalog import load_catalog
from serve_app.bodies import GenerateBody
from tests.agents.xss_corpus import CORPUS, executable_parts


def component(type_: str, **props: Any) -> dict[str, Any]:
    """A component of ``type_`` with its catalog example's props, ``props`` over them."""
    example = copy.deepcopy(load_catalog().get(type_).example)
    return {"id": "cmp-1", "type": type_, "props": {**example, **props}}


def page_with(*components: dict[str, Any], **page: Any) -> dict[str, Any]:
    section = {
        "id": "sec-1",
        "name": page.pop("section_name", "Main"),
        "components": list(components),
    }
    return {"id": "home", "title": "Home", **page, "sections": [section]}


def _navigate(vector: str) -> dict[str, Any]:
    event = {"trigger": "click", "action": "navigate", "target": vector}
    return page_with(component("button") | {"events": [event]})


def _param(vector: str) -> dict[str, Any]:
    event = {"trigger": "click", "action": "fetch_data", "params": {"url": vector}}
    return page_with(component("button") | {"events": [event]})


def _style(vector: str) -> dict[str, Any]:
    styles = {"base": {"background": vector, "font_family": vector}}
    return page_with(component("heading") | {"styles": styles})


PLACES: dict[str, Callable[[str], dict[str, Any]]] = {
    "link": lambda v: page_with(component("button", href=v)),
    "nested link": lambda v: page_with(component("navbar", items=[{"label": "Go", "href": v}])),
    "source": lambda v: page_with(component("image", src=v)),
    "embed html": lambda v: page_with(component("embed", kind="html", html=v)),
    "text": lambda v: page_with(component("heading", text=v[:200])),
    "rich text": lambda v: page_with(component("text", content=v)),
    "event target": _navigate,
    "event param": _param,
    "style": _style,
    "section name": lambda v: page_with(component("heading"), section_name=v[:80]),
    "title": lambda v: page_with(component("heading"), title=v[:200]),
}


@pytest.mark.parametrize("place", sorted(PLACES))
def test_no_vector_of_the_corpus_survives_in_a_submitted_page(place: str) -> None:
    survived: dict[str, list[str]] = {}
    accepted = 0
    for vector in CORPUS:
        try:
            body = GenerateBody.model_validate(
                {"instruction": "Edit", "page": PLACES[place](vector)}
            )
        except ValidationError:
            continue  # refused: the gateway answers 422 and nothing is stored
        accepted += 1
        assert body.page is not None
        found = executable_parts(body.page.model_dump(mode="json"))
        if found:
            survived[vector] = found
    assert survived == {}
    if place in ("text", "rich text", "embed html", "section name", "title"):
        assert accepted > 0, "text and HTML are cleaned, not refused"


def test_the_oracle_finds_what_an_unchecked_page_would_carry() -> None:
    """The oracle is not blind: the same places, unvalidated, are found out."""
    for place, make in PLACES.items():
        raw = make('<img src=x onerror="alert(1)">' if "text" in place else "javascript:alert(1)")
        if place in ("embed html", "section name", "title", "text", "rich text"):
            raw = make('<img src=x onerror="alert(1)">')
        if place == "style":
            raw = make("url(javascript:alert(1))")
        assert executable_parts(raw), place
