"""Edit operations: each kind applies, references are checked, ids are minted."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter

from agents.apply import apply_ops
from agents.ops import Op
from tests.agents.test_page import sample_page

OPS: TypeAdapter[list[Op]] = TypeAdapter(list[Op])


def ops(*items: dict[str, Any]) -> list[Op]:
    return OPS.validate_python(list(items))


def test_added_section_and_component_get_pipeline_ids() -> None:
    result = apply_ops(
        sample_page(),
        ops(
            {"op": "add_section", "name": "FAQ", "role": "faq", "position": 1},
            {
                "op": "add_component",
                "section_id": "sec-3",
                "type": "accordion",
                "props": {"items": [{"title": "Refunds?", "content": "Within 30 days."}]},
            },
        ),
    )
    assert result.errors == []
    assert [s.id for s in result.page.sections] == ["sec-1", "sec-3", "sec-2"]
    assert result.records[0]["id"] == "sec-3"
    assert result.records[1]["id"] == "cmp-8"
    assert result.page.component("cmp-8") is not None


@pytest.mark.parametrize(
    "font",
    [
        "alt compact iframe ask sections headers panels now input f",  # a word run too long
        "Inter; background: url(x)",
        "'Comic Sans'",
    ],
)
def test_a_theme_font_must_be_a_font_stack(font: str) -> None:
    with pytest.raises(ValueError, match="font_heading"):
        ops({"op": "set_theme", "theme": {"font_heading": font}})
    page = apply_ops(
        sample_page(), ops({"op": "set_theme", "theme": {"font_body": "Georgia, serif"}})
    ).page
    assert page.theme.font_body == "Georgia, serif"
    assert type(page.theme).model_validate(page.theme.model_dump()) == page.theme


def test_updates_moves_removals_styles_events_and_animations() -> None:
    result = apply_ops(
        sample_page(),
        ops(
            {"op": "update_section", "section_id": "sec-2", "layout": {"columns": 3}},
            {"op": "update_props", "component_id": "cmp-7", "props": {"label": "Start now"}},
            {"op": "move_component", "component_id": "cmp-7", "section_id": "sec-1", "position": 0},
            {"op": "set_styles", "target_id": "sec-2", "styles": {"base": {"padding_px": 48}}},
            {"op": "set_theme", "theme": {"palette": {"primary": "#14532d"}, "mode": "dark"}},
            {
                "op": "add_event",
                "component_id": "cmp-7",
                "event": {"trigger": "click", "action": "scroll_to", "target": "sec-2"},
            },
            {"op": "add_animation", "target_id": "cmp-2", "animation": {"effect": "fade_in"}},
            {"op": "remove_component", "component_id": "cmp-1"},
        ),
    )
    assert result.errors == []
    page = result.page
    assert page.sections[1].layout.columns == 3
    assert page.sections[0].components[0].id == "cmp-7"
    assert page.sections[0].components[0].props["label"] == "Start now"
    assert page.sections[0].components[0].events[0].action == "scroll_to"
    assert page.sections[1].styles is not None
    assert page.sections[1].styles.base.padding_px == 48
    assert page.theme.palette.primary == "#14532d"
    assert page.theme.palette.text == "#0f172a"
    assert page.theme.mode == "dark"
    assert page.component("cmp-1") is None
    assert page.component("cmp-2").animations[0].effect == "fade_in"  # type: ignore[union-attr]


def test_bad_references_and_props_are_reported_and_skipped() -> None:
    original = sample_page()
    result = apply_ops(
        original,
        ops(
            {"op": "remove_section", "section_id": "sec-9"},
            {"op": "update_props", "component_id": "cmp-42", "props": {"label": "x"}},
            {"op": "add_component", "section_id": "sec-1", "type": "image", "props": {}},
            {
                "op": "add_component",
                "section_id": "sec-1",
                "type": "button",
                "parent_id": "cmp-1",
                "props": {"label": "Go", "action": "link"},
            },
            {
                "op": "add_event",
                "component_id": "cmp-7",
                "event": {"trigger": "click", "action": "scroll_to", "target": "sec-8"},
            },
            {"op": "remove_animations", "target_id": "page"},
        ),
    )
    assert len(result.errors) == 5
    assert "the sections are: sec-1, sec-2" in result.errors[0]
    assert "cmp-42" not in result.errors[1], "errors name the valid choices, not the bad id"
    assert "props" in result.errors[2]
    assert "cannot hold components" in result.errors[3]
    assert result.applied == [5]
    assert original == sample_page(), "the input page is never modified"


def test_scope_restricts_additions_to_one_section() -> None:
    result = apply_ops(
        sample_page(),
        ops(
            {"op": "add_component", "section_id": "sec-1", "type": "divider", "props": {}},
        ),
        scope="sec-2",
    )
    assert result.errors == [
        "ops.0 (add_component): section_id must be sec-2, the section this call works on"
    ]


@pytest.mark.parametrize("kind", ["add_section", "update_props", "set_styles", "add_event"])
def test_every_op_kind_is_in_the_union(kind: str) -> None:
    assert kind in str(OPS.json_schema())
