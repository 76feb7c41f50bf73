"""The shipped component catalog: coverage, schema validity, props validation and prompt docs."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

from agents.catalog import Catalog, CatalogEntry, load_catalog

REQUIRED_TYPES = {
    "navbar", "hero", "heading", "text", "button", "link", "image", "gallery", "video", "icon",
    "card", "feature_grid", "pricing_table", "pricing_toggle", "testimonial", "logo_cloud",
    "stats", "accordion", "tabs", "modal", "carousel", "form", "input", "textarea", "select",
    "checkbox", "newsletter_signup", "map", "countdown", "social_links", "footer", "divider",
    "spacer", "banner", "team_grid", "timeline", "table", "embed",
}  # fmt: skip


def test_catalog_has_at_least_32_unique_types_including_the_required_ones(
    catalog: Catalog,
) -> None:
    assert len(catalog.types) >= 32
    assert len(set(catalog.types)) == len(catalog.types)
    assert not REQUIRED_TYPES - set(catalog.types), "missing required types"


def test_load_catalog_is_cached(catalog: Catalog) -> None:
    assert load_catalog() is catalog


def test_every_props_schema_is_valid_and_self_contained(catalog: Catalog) -> None:
    for entry in catalog.entries:
        schema = entry.props_schema
        Draft202012Validator.check_schema(schema)
        assert schema["type"] == "object", entry.type
        assert schema["additionalProperties"] is False, entry.type
        assert "$ref" not in repr(schema), entry.type
        assert 1 <= len(schema["properties"]) <= 15, entry.type
        for name, prop in schema["properties"].items():
            assert prop.get("description"), f"{entry.type}.{name} has no description"


def test_every_example_validates(catalog: Catalog) -> None:
    for entry in catalog.entries:
        assert catalog.validate_props(entry.type, entry.example) == [], entry.type


def test_containers_include_the_obvious_ones(catalog: Catalog) -> None:
    for name in ("card", "tabs", "modal", "accordion", "carousel", "form", "columns"):
        assert catalog.get(name).container, name
    for name in ("image", "input", "pricing_table", "divider"):
        assert not catalog.get(name).container, name


@pytest.mark.parametrize(
    ("type_", "props", "expected"),
    [
        (
            "pricing_table",
            {
                "plans": [
                    {
                        "name": "Pro",
                        "monthly_price": -1,
                        "yearly_price": 90,
                        "currency": "USD",
                        "features": [],
                        "cta_label": "Buy",
                    }
                ]
            },
            "props.plans.0.monthly_price: -1 is less than the minimum of 0",
        ),
        ("image", {"src": "https://cdn.example.com/a.png"}, "props: 'alt' is a required property"),
        ("image", {"src": "not a url", "alt": "x"}, "props.src: 'not a url' is not a 'uri'"),
        ("navbar", {"items": [], "colour": "red"}, "props: Additional properties are not allowed"),
        ("button", {"label": "Go", "action": "fly"}, "props.action: 'fly' is not one of"),
        ("pricing_toggle", {"options": [], "default": "weekly"}, "props.default: 'weekly' is not"),
    ],
)
def test_validate_props_reports_a_clear_error(
    catalog: Catalog, type_: str, props: dict[str, Any], expected: str
) -> None:
    errors = catalog.validate_props(type_, props)
    assert any(error.startswith(expected) for error in errors), errors


def test_unknown_type_raises_key_error_naming_it(catalog: Catalog) -> None:
    with pytest.raises(KeyError, match="unknown component type 'carousell'"):
        catalog.get("carousell")
    with pytest.raises(KeyError, match="carousell"):
        catalog.validate_props("carousell", {})


def test_doc_is_short_and_names_the_props(catalog: Catalog) -> None:
    for entry in catalog.entries:
        doc = entry.doc()
        assert len(doc.split()) <= 100, (entry.type, len(doc.split()))
        assert doc.count("\n") == 2, entry.type
        assert doc.startswith(entry.type), entry.type
        for name in entry.props_schema["properties"]:
            assert name in doc, (entry.type, name)
    pricing = catalog.get("pricing_table").doc()
    assert "plans*: list[{name*, description, monthly_price*, yearly_price*" in pricing
    assert "billing_period: monthly|yearly" in pricing


def test_from_records_turns_bad_records_into_value_errors(catalog: Catalog) -> None:
    record = catalog.get("divider").model_dump()
    with pytest.raises(ValueError, match=r"catalog entry 0 \(divider\) is invalid"):
        Catalog.from_records([{**record, "category": "decoration"}])
    with pytest.raises(ValueError, match="duplicate component types in catalog: divider"):
        Catalog.from_records([record, record])


def test_entries_are_frozen(catalog: Catalog) -> None:
    entry: CatalogEntry = catalog.get("spacer")
    with pytest.raises(ValueError, match="frozen"):
        entry.description = "changed"  # type: ignore[misc]
    assert entry.triggers == ()


def test_fingerprint_changes_with_content(catalog: Catalog) -> None:
    changed = Catalog(
        entry.model_copy(update={"usage": entry.usage + " Changed."}) if i == 0 else entry
        for i, entry in enumerate(catalog.entries)
    )
    assert changed.fingerprint != catalog.fingerprint
    assert Catalog(catalog.entries).fingerprint == catalog.fingerprint
