"""Typed edit operations on a page: what generators answer with (``apply`` applies them).

Generators answer with operations, not pages, so output tokens scale with the change.
New sections and components get their ids from the pipeline (``Page.next_id``), never
from the model, so ids cannot collide; every id an operation names is checked against
the page it applies to, and what fails comes back as readable errors for a repair call.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from agents.catalog import load_catalog
from agents.page import (
    FONT_STACK,
    Animation,
    ComponentId,
    ComponentType,
    DocModel,
    Event,
    HexColor,
    NodeId,
    SectionId,
    SectionLayout,
    SectionRole,
    Styles,
    TargetId,
    Trigger,
)


def _per_type_props(schema: dict[str, Any]) -> None:
    """Tool schema of add_component: one variant per catalog type, so props fit the type."""
    props = schema["properties"]
    props.pop("props", None)
    props.pop("type", None)
    schema["required"] = [r for r in schema.get("required", []) if r not in ("type", "props")]
    schema["oneOf"] = [
        {
            "properties": {"type": {"const": entry.type}, "props": _compact(entry.props_schema)},
            "required": ["type", "props"],
        }
        for entry in load_catalog().entries
    ]


def _compact(schema: Any) -> Any:
    """A props schema without prose: the catalog docs in the prompt carry the descriptions."""
    if isinstance(schema, list):
        return [_compact(v) for v in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _compact(v) for k, v in schema.items() if k not in _PROSE and k != "properties"}
    if "properties" in schema:
        # Keys of "properties" are prop names (a prop may well be called "title").
        out["properties"] = {name: _compact(sub) for name, sub in schema["properties"].items()}
    return out


_PROSE = frozenset({"description", "examples", "title", "$comment"})


class AddSection(DocModel):
    """Add a section; the pipeline assigns its id."""

    op: Literal["add_section"]
    name: str = Field(max_length=80)
    """Human name, e.g. 'Pricing'."""
    role: SectionRole
    """What the section is for."""
    layout: SectionLayout = Field(default_factory=SectionLayout)
    """Grid of the section."""
    position: int | None = Field(default=None, ge=0, le=50)
    """Index among the sections; appended when omitted."""


class LayoutPatch(DocModel):
    """Fields of a section layout to change; omitted ones stay."""

    columns: int | None = Field(default=None, ge=1, le=12)
    gap_px: int | None = Field(default=None, ge=0, le=128)
    align: Literal["start", "center", "end", "stretch"] | None = None
    full_width: bool | None = None
    min_height_vh: int | None = Field(default=None, ge=0, le=100)
    stack_on_mobile: bool | None = None


class UpdateSection(DocModel):
    """Rename a section, change its role or its layout."""

    op: Literal["update_section"]
    section_id: SectionId
    name: str | None = Field(default=None, max_length=80)
    role: SectionRole | None = None
    layout: LayoutPatch | None = None


class MoveSection(DocModel):
    """Move a section to another index."""

    op: Literal["move_section"]
    section_id: SectionId
    position: int = Field(ge=0, le=50)


class RemoveSection(DocModel):
    """Delete a section and everything in it."""

    op: Literal["remove_section"]
    section_id: SectionId


class AddComponent(DocModel):
    """Add a component of a catalog type to a section (or inside a container component)."""

    model_config = DocModel.model_config | {"json_schema_extra": _per_type_props}

    op: Literal["add_component"]
    section_id: SectionId
    """The section that holds it."""
    type: ComponentType
    props: dict[str, Any] = Field(default_factory=dict)
    """Props of the type, as the catalog defines them."""
    parent_id: ComponentId | None = None
    """A container component to nest it in; top level of the section when omitted."""
    position: int | None = Field(default=None, ge=0, le=100)
    """Index among its siblings; appended when omitted."""
    span: int = Field(default=12, ge=1, le=12)
    """Grid columns taken out of 12."""


class UpdateProps(DocModel):
    """Change some props of a component; a null value removes the prop."""

    op: Literal["update_props"]
    component_id: ComponentId
    props: dict[str, Any] = Field(max_length=20)
    """The props to set."""
    span: int | None = Field(default=None, ge=1, le=12)
    """New grid span."""


class MoveComponent(DocModel):
    """Move a component to a section (and index)."""

    op: Literal["move_component"]
    component_id: ComponentId
    section_id: SectionId
    position: int | None = Field(default=None, ge=0, le=100)


class RemoveComponent(DocModel):
    """Delete a component and its children."""

    op: Literal["remove_component"]
    component_id: ComponentId


class SetStyles(DocModel):
    """Override styles of a section or component; set fields replace, unset ones stay."""

    op: Literal["set_styles"]
    target_id: NodeId
    styles: Styles


class PalettePatch(DocModel):
    primary: HexColor | None = None
    secondary: HexColor | None = None
    accent: HexColor | None = None
    background: HexColor | None = None
    surface: HexColor | None = None
    text: HexColor | None = None
    muted: HexColor | None = None


class ThemePatch(DocModel):
    """Theme fields to change; omitted ones stay."""

    palette: PalettePatch | None = None
    font_heading: str | None = Field(default=None, max_length=60, pattern=FONT_STACK)
    font_body: str | None = Field(default=None, max_length=60, pattern=FONT_STACK)
    base_font_size_px: int | None = Field(default=None, ge=12, le=24)
    radius_px: int | None = Field(default=None, ge=0, le=48)
    spacing: Literal["compact", "comfortable", "spacious"] | None = None
    mode: Literal["light", "dark"] | None = None


class SetTheme(DocModel):
    """Change the page theme."""

    op: Literal["set_theme"]
    theme: ThemePatch


class AddEvent(DocModel):
    """Attach behaviour to a component."""

    op: Literal["add_event"]
    component_id: ComponentId
    event: Event


class RemoveEvents(DocModel):
    """Remove a component's events (all, or those of one trigger)."""

    op: Literal["remove_events"]
    component_id: ComponentId
    trigger: Trigger | None = None


class AddAnimation(DocModel):
    """Animate a section or component."""

    op: Literal["add_animation"]
    target_id: NodeId
    animation: Animation


class RemoveAnimations(DocModel):
    """Remove animations of a section or component, or of the whole page with 'page'."""

    op: Literal["remove_animations"]
    target_id: TargetId


LayoutOp = Annotated[
    AddSection | UpdateSection | MoveSection | RemoveSection, Field(discriminator="op")
]
ComponentOp = Annotated[
    AddComponent | UpdateProps | MoveComponent | RemoveComponent, Field(discriminator="op")
]
EventOp = Annotated[AddEvent | RemoveEvents, Field(discriminator="op")]
StyleOp = Annotated[SetStyles | SetTheme, Field(discriminator="op")]
AnimationOp = Annotated[AddAnimation | RemoveAnimations, Field(discriminator="op")]
Op = (
    AddSection
    | UpdateSection
    | MoveSection
    | RemoveSection
    | AddComponent
    | UpdateProps
    | MoveComponent
    | RemoveComponent
    | SetStyles
    | SetTheme
    | AddEvent
    | RemoveEvents
    | AddAnimation
    | RemoveAnimations
)
