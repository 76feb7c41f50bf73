"""The page document: validation, JSON round trip, ids and lookups."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agents.page import Component, Page, Section
from tests.agents.xss_corpus import CSS_VECTORS


def sample_page() -> Page:
    return Page(
        id="home",
        title="Cafe Lumen",
        sections=[
            Section(
                id="sec-1",
                name="Header",
                role="header",
                components=[
                    Component(id="cmp-1", type="navbar", props={"logo_text": "Lumen", "items": []}),
                ],
            ),
            Section(
                id="sec-2",
                name="Pricing",
                role="pricing",
                components=[
                    Component(
                        id="cmp-2",
                        type="card",
                        children=[
                            Component(
                                id="cmp-7", type="button", props={"label": "Buy", "action": "link"}
                            ),
                        ],
                    ),
                ],
            ),
        ],
    )


def test_round_trip_through_json_is_lossless() -> None:
    page = sample_page()
    again = Page.model_validate_json(page.model_dump_json())
    assert again == page
    assert again.schema_version == "1.0"


def test_lookup_walks_nested_components_and_mints_fresh_ids() -> None:
    page = sample_page()
    assert page.component("cmp-7") is not None
    assert page.component("cmp-99") is None
    assert page.section("sec-2") is page.sections[1]
    assert page.next_id("cmp") == "cmp-8"
    assert page.next_id("sec") == "sec-3"
    outline = page.outline()
    assert "sec-2 pricing 'Pricing'" in outline
    assert "    - cmp-7 button" in outline


@pytest.mark.parametrize(
    "bad",
    [
        {"id": "home", "sections": [{"id": "section-1", "name": "x"}]},
        {
            "id": "home",
            "sections": [
                {"id": "sec-1", "name": "x", "components": [{"id": "cmp-1", "type": "hologram"}]}
            ],
        },
        {"id": "home", "theme": {"palette": {"primary": "red"}}},
        {"id": "home", "extra": 1},
        {"id": "home", "sections": [{"id": "sec-1", "name": "x", "layout": {"columns": 13}}]},
    ],
)
def test_invalid_documents_are_rejected(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Page.model_validate(bad)


def test_schema_carries_field_docs_and_the_catalog_enum() -> None:
    schema = Page.model_json_schema()
    component = schema["$defs"]["Component"]
    assert "grid columns" in component["properties"]["span"]["description"].lower()
    assert "pricing_table" in component["properties"]["type"]["enum"]


STYLE_ATTACKS = CSS_VECTORS


@pytest.mark.parametrize("value", STYLE_ATTACKS)
def test_style_values_that_could_load_or_break_out_are_refused(value: str) -> None:
    from pydantic import ValidationError

    from agents.page import StyleRules, Theme

    with pytest.raises(ValidationError):
        StyleRules(background=value)
    with pytest.raises(ValidationError):
        StyleRules(font_family=value)
    with pytest.raises(ValidationError):
        Theme(font_heading=value)


@pytest.mark.parametrize(
    "background",
    [
        "#fff",
        "#1a2b3c",
        "white",
        "rgb(10, 20, 30)",
        "hsla(210, 40%, 50%, 0.5)",
        "linear-gradient(90deg, #0f172a, #1e3a8a 60%)",
        "radial-gradient(circle, white, #eee)",
    ],
)
def test_colours_and_gradients_pass(background: str) -> None:
    from agents.page import StyleRules

    assert StyleRules(background=background, font_family="Inter, sans-serif").background
