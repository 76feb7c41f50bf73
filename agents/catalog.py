"""The component catalog: every component type the page builder can render, with its props schema.

The catalog ships as package data (``agents/catalog/components.json``); its type names are the enum
the agents' output schemas use, and ``CatalogEntry.doc`` is what an agent sees of a component.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from typing import Any, Literal

from jsonschema import Draft202012Validator, FormatChecker  # type: ignore[import-untyped]
from jsonschema.exceptions import SchemaError  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agents.safe_url import is_safe_url

Category = Literal[
    "navigation",
    "hero",
    "content",
    "media",
    "layout",
    "commerce",
    "social_proof",
    "forms",
    "interactive",
    "data",
    "footer",
]
Trigger = Literal[
    "click",
    "hover",
    "submit",
    "change",
    "toggle",
    "open",
    "close",
    "load",
    "scroll_into_view",
    "focus",
]

_MAX_ENUM_SHOWN = 5


def _absolute_url(value: object) -> bool:
    return not isinstance(value, str) or is_safe_url(value, absolute=True)


def _url_reference(value: object) -> bool:
    return not isinstance(value, str) or is_safe_url(value, absolute=False)


# jsonschema only checks "uri" when the optional rfc3987 package is installed, and a URI that
# parses may still run script: both formats are the safe-URL check (``safe_url``). Media
# sources and form actions are "uri" (absolute); links are "uri-reference" (relative too).
_FORMAT_CHECKER = FormatChecker()
_FORMAT_CHECKER.checks("uri")(_absolute_url)
_FORMAT_CHECKER.checks("uri-reference")(_url_reference)


class CatalogEntry(BaseModel):
    """One component type: what it is, when to use it and which props it accepts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str = Field(
        pattern=r"^[a-z][a-z0-9_]*$", description="Unique snake_case type name used in page edits."
    )
    category: Category = Field(description="Palette group the component belongs to.")
    description: str = Field(min_length=1, description="One line saying what the component is.")
    usage: str = Field(
        min_length=1, description="When to use it, key props, pairings and accessibility notes."
    )
    keywords: tuple[str, ...] = Field(
        default=(), description="Synonyms that retrieval indexes, e.g. 'faq' for accordion."
    )
    props_schema: dict[str, Any] = Field(
        description="Self-contained JSON Schema (draft 2020-12) of the component's props."
    )
    example: dict[str, Any] = Field(description="Props that are valid against props_schema.")
    triggers: tuple[Trigger, ...] = Field(description="Events the component can fire.")
    container: bool = Field(description="True when the component holds child components.")

    def doc(self) -> str:
        """A compact rendering for agent prompts: header, usage and props on one line each."""
        traits: list[str] = [self.category]
        if self.container:
            traits.append("container")
        if self.triggers:
            traits.append("fires " + ",".join(self.triggers))
        props = _describe_properties(self.props_schema)
        return (
            f"{self.type} ({'; '.join(traits)}): {self.description}\n"
            f"Usage: {self.usage}\n"
            f"Props (* required): {props or 'none'}"
        )


def _describe_properties(schema: Mapping[str, Any]) -> str:
    required = set(schema.get("required", ()))
    return ", ".join(
        f"{name}{'*' if name in required else ''}: {_describe(sub)}"
        for name, sub in schema.get("properties", {}).items()
    )


def _describe(schema: Mapping[str, Any]) -> str:
    """A short type label: enums inline, objects as their key names, arrays by item type."""
    if "enum" in schema:
        values = [str(v) for v in schema["enum"]]
        shown = "|".join(values[:_MAX_ENUM_SHOWN])
        return shown + ("|…" if len(values) > _MAX_ENUM_SHOWN else "")
    kind = schema.get("type")
    if kind == "array":
        return f"list[{_describe(schema.get('items', {}))}]"
    if kind == "object":
        required = set(schema.get("required", ()))
        keys = [f"{k}{'*' if k in required else ''}" for k in schema.get("properties", {})]
        return "{" + (", ".join(keys) or "…") + "}"
    if kind == "string" and "format" in schema:
        return str(schema["format"])
    labels = {"string": "str", "integer": "int", "number": "num", "boolean": "bool"}
    label = labels.get(kind, "any") if isinstance(kind, str) else "any"
    if "minimum" in schema and "maximum" in schema:
        label += f" {schema['minimum']}-{schema['maximum']}"
    elif "minimum" in schema:
        label += f" >={schema['minimum']}"
    return label


class Catalog:
    """An ordered, immutable set of catalog entries with per-type props validation."""

    def __init__(self, entries: Iterable[CatalogEntry]) -> None:
        self.entries: tuple[CatalogEntry, ...] = tuple(entries)
        self._by_type = {entry.type: entry for entry in self.entries}
        if len(self._by_type) != len(self.entries):
            counts = Counter(entry.type for entry in self.entries)
            dupes = sorted(name for name, count in counts.items() if count > 1)
            raise ValueError(f"duplicate component types in catalog: {', '.join(dupes)}")
        self._validators: dict[str, Draft202012Validator] = {}

    @classmethod
    def from_records(cls, records: Sequence[Mapping[str, Any]]) -> Catalog:
        """Build a catalog from plain JSON records; a bad record raises ValueError naming it."""
        entries = []
        for index, record in enumerate(records):
            try:
                entries.append(CatalogEntry.model_validate(record))
            except ValidationError as exc:
                name = record.get("type", "?") if isinstance(record, Mapping) else "?"
                raise ValueError(f"catalog entry {index} ({name}) is invalid: {exc}") from None
        return cls(entries)

    @property
    def types(self) -> tuple[str, ...]:
        """Type names in file order."""
        return tuple(self._by_type)

    @functools.cached_property
    def fingerprint(self) -> str:
        """SHA-256 of the catalog's canonical JSON, so indexes can tell when it changed."""
        canonical = json.dumps(
            [entry.model_dump(mode="json") for entry in self.entries],
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def get(self, type: str) -> CatalogEntry:
        """The entry for a type name; KeyError listing the known types when it is unknown."""
        try:
            return self._by_type[type]
        except KeyError:
            raise KeyError(
                f"unknown component type {type!r}; known types: {', '.join(self.types)}"
            ) from None

    def validate_props(self, type: str, props: dict[str, Any]) -> list[str]:
        """Human-readable problems with ``props`` for this type, [] when they are valid."""
        validator = self._validator(type)
        messages = []
        for error in validator.iter_errors(props):
            path = "".join(f".{part}" for part in error.absolute_path)
            messages.append(f"props{path}: {error.message}")
        return sorted(messages)

    def _validator(self, type: str) -> Draft202012Validator:
        validator = self._validators.get(type)
        if validator is None:
            schema = self.get(type).props_schema
            try:
                Draft202012Validator.check_schema(schema)
            except SchemaError as exc:
                raise ValueError(f"props_schema of {type!r} is invalid: {exc.message}") from None
            validator = Draft202012Validator(schema, format_checker=_FORMAT_CHECKER)
            self._validators[type] = validator
        return validator


@functools.cache
def load_catalog() -> Catalog:
    """The catalog shipped with the package, parsed once per process."""
    text = resources.files("agents").joinpath("catalog", "components.json").read_text("utf-8")
    return Catalog.from_records(json.loads(text))
