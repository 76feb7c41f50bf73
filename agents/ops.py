"""Typed edit operations on a page, and applying them with reference checks.

Generators answer with operations, not pages, so output tokens scale with the change.
New sections and components get their ids from the pipeline (``Page.next_id``), never
from the model, so ids cannot collide; every id an operation names is checked against
the page it applies to, and what fails comes back as readable errors for a repair call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import Field

from agents.catalog import load_catalog
from agents.page import (
    Animation,
    Component,
    ComponentId,
    ComponentType,
    DocModel,
    Event,
    HexColor,
    NodeId,
    Page,
    Section,
    SectionId,
    SectionLayout,
    SectionRole,
    StyleRules,
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
    font_heading: str | None = Field(default=None, max_length=60)
    font_body: str | None = Field(default=None, max_length=60)
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


@dataclass
class Applied:
    """The page after some operations, each applied op with the id it minted, and errors."""

    page: Page
    records: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    applied: list[int] = field(default_factory=list)
    """Indices of the operations that applied."""


def apply_ops(page: Page, ops: list[Op], *, scope: str | None = None) -> Applied:
    """Apply ``ops`` to a copy of ``page``; ``scope`` restricts additions to one section."""
    out = Applied(page.model_copy(deep=True))
    for index, op in enumerate(ops):
        try:
            minted = _apply(out.page, op, scope)
        except _OpError as exc:
            out.errors.append(f"ops.{index} ({op.op}): {exc}")
            continue
        record = op.model_dump(mode="json", exclude_none=True)
        if minted:
            record["id"] = minted
        out.records.append(record)
        out.applied.append(index)
    return out


class _OpError(Exception):
    """An operation that does not fit the page."""


def _at(position: int | None, length: int) -> int:
    return length if position is None else min(position, length)


# Error messages name the valid choices rather than repeat the wrong id: the repair call
# should steer the model towards what exists.
def _section(page: Page, section_id: str) -> Section:
    found = page.section(section_id)
    if found is None:
        ids = ", ".join(s.id for s in page.sections) or "none yet"
        raise _OpError(f"that section is not on the page; the sections are: {ids}")
    return found


def _component(page: Page, component_id: str) -> tuple[list[Component], Component]:
    for _, holder, comp in page.walk():
        if comp.id == component_id:
            return holder, comp
    ids = ", ".join(c.id for *_, c in page.walk())
    raise _OpError(f"that component is not on the page; the components are: {ids or 'none yet'}")


def _target(page: Page, target_id: str) -> Section | Component:
    if target_id.startswith("sec-"):
        return _section(page, target_id)
    return _component(page, target_id)[1]


def _merge_styles(current: Styles | None, update: Styles) -> Styles:
    base = current or Styles()
    merged: dict[str, Any] = {}
    for name in ("base", "tablet", "mobile"):
        old = getattr(base, name) or StyleRules()
        new = getattr(update, name)
        merged[name] = old.model_copy(update=new.model_dump(exclude_none=True)) if new else old
    return Styles.model_validate(merged)


def _apply(page: Page, op: Op, scope: str | None) -> str | None:
    """Apply one operation in place and return the id it minted, if any."""
    catalog = load_catalog()
    if isinstance(op, AddSection):
        section = Section(id=page.next_id("sec"), name=op.name, role=op.role, layout=op.layout)
        page.sections.insert(_at(op.position, len(page.sections)), section)
        return section.id
    if isinstance(op, UpdateSection):
        found = _section(page, op.section_id)
        found.name = op.name or found.name
        found.role = op.role or found.role
        if op.layout:
            found.layout = found.layout.model_copy(update=op.layout.model_dump(exclude_none=True))
    elif isinstance(op, MoveSection):
        found = _section(page, op.section_id)
        page.sections.remove(found)
        page.sections.insert(_at(op.position, len(page.sections)), found)
    elif isinstance(op, RemoveSection):
        page.sections.remove(_section(page, op.section_id))
    elif isinstance(op, AddComponent):
        if scope and op.section_id != scope:
            raise _OpError(f"section_id must be {scope}, the section this call works on")
        holder = _section(page, op.section_id).components
        if op.parent_id:
            parent = _component(page, op.parent_id)[1]
            if not catalog.get(parent.type).container:
                raise _OpError(f"{parent.id} is a {parent.type}, which cannot hold components")
            holder = parent.children
        problems = catalog.validate_props(op.type, op.props)
        if problems:
            raise _OpError("; ".join(problems[:5]))
        comp = Component(id=page.next_id("cmp"), type=op.type, props=op.props, span=op.span)
        holder.insert(_at(op.position, len(holder)), comp)
        return comp.id
    elif isinstance(op, UpdateProps):
        comp = _component(page, op.component_id)[1]
        props = {**comp.props, **op.props}
        props = {k: v for k, v in props.items() if v is not None}
        problems = catalog.validate_props(comp.type, props)
        if problems:
            raise _OpError("; ".join(problems[:5]))
        comp.props = props
        comp.span = op.span or comp.span
    elif isinstance(op, MoveComponent):
        holder, comp = _component(page, op.component_id)
        destination = _section(page, op.section_id).components
        holder.remove(comp)
        destination.insert(_at(op.position, len(destination)), comp)
    elif isinstance(op, RemoveComponent):
        holder, comp = _component(page, op.component_id)
        holder.remove(comp)
    elif isinstance(op, SetStyles):
        node = _target(page, op.target_id)
        node.styles = _merge_styles(node.styles, op.styles)
    elif isinstance(op, SetTheme):
        update = op.theme.model_dump(exclude_none=True)
        palette = update.pop("palette", {})
        page.theme = page.theme.model_copy(
            update={**update, "palette": page.theme.palette.model_copy(update=palette)}
        )
    elif isinstance(op, AddEvent):
        comp = _component(page, op.component_id)[1]
        aim = op.event.target
        if (
            aim
            and aim.startswith(("sec-", "cmp-"))
            and not (page.section(aim) or page.component(aim))
        ):
            raise _OpError("the event target is not on the page; use an id from the outline")
        comp.events.append(op.event)
    elif isinstance(op, RemoveEvents):
        comp = _component(page, op.component_id)[1]
        comp.events = [e for e in comp.events if op.trigger and e.trigger != op.trigger]
    elif isinstance(op, AddAnimation):
        _target(page, op.target_id).animations.append(op.animation)
    elif isinstance(op, RemoveAnimations):
        if op.target_id == "page":
            for section in page.sections:
                section.animations = []
            for *_, comp in page.walk():
                comp.animations = []
        else:
            _target(page, op.target_id).animations = []
    return None
