"""Applying edit operations to a page, with reference checks, through a table of handlers.

Every id an operation names is checked against the page it applies to; new sections and
components get their ids from ``Page.next_id``, never from the model. What fails comes
back as readable errors for a repair call, naming the valid choices.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agents.catalog import load_catalog
from agents.ops import (
    AddAnimation,
    AddComponent,
    AddEvent,
    AddSection,
    MoveComponent,
    MoveSection,
    Op,
    RemoveAnimations,
    RemoveComponent,
    RemoveEvents,
    RemoveSection,
    SetStyles,
    SetTheme,
    UpdateProps,
    UpdateSection,
)
from agents.page import Component, Page, Section, StyleRules, Styles, Theme
from agents.safe_html import clean_props


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


def _add_section(page: Page, op: AddSection, scope: str | None) -> str:
    section = Section(id=page.next_id("sec"), name=op.name, role=op.role, layout=op.layout)
    page.sections.insert(_at(op.position, len(page.sections)), section)
    return section.id


def _update_section(page: Page, op: UpdateSection, scope: str | None) -> None:
    found = _section(page, op.section_id)
    found.name = op.name or found.name
    found.role = op.role or found.role
    if op.layout:
        found.layout = found.layout.model_copy(update=op.layout.model_dump(exclude_none=True))


def _move_section(page: Page, op: MoveSection, scope: str | None) -> None:
    found = _section(page, op.section_id)
    page.sections.remove(found)
    page.sections.insert(_at(op.position, len(page.sections)), found)


def _remove_section(page: Page, op: RemoveSection, scope: str | None) -> None:
    page.sections.remove(_section(page, op.section_id))


def _add_component(page: Page, op: AddComponent, scope: str | None) -> str:
    if scope and op.section_id != scope:
        raise _OpError(f"section_id must be {scope}, the section this call works on")
    catalog = load_catalog()
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


def _update_props(page: Page, op: UpdateProps, scope: str | None) -> None:
    comp = _component(page, op.component_id)[1]
    props = {k: v for k, v in {**comp.props, **op.props}.items() if v is not None}
    problems = load_catalog().validate_props(comp.type, props)
    if problems:
        raise _OpError("; ".join(problems[:5]))
    comp.props = clean_props(comp.type, props)
    comp.span = op.span or comp.span


def _move_component(page: Page, op: MoveComponent, scope: str | None) -> None:
    holder, comp = _component(page, op.component_id)
    destination = _section(page, op.section_id).components
    holder.remove(comp)
    destination.insert(_at(op.position, len(destination)), comp)


def _remove_component(page: Page, op: RemoveComponent, scope: str | None) -> None:
    holder, comp = _component(page, op.component_id)
    holder.remove(comp)


def _set_styles(page: Page, op: SetStyles, scope: str | None) -> None:
    node = _target(page, op.target_id)
    node.styles = _merge_styles(node.styles, op.styles)


def _set_theme(page: Page, op: SetTheme, scope: str | None) -> None:
    update = op.theme.model_dump(exclude_none=True)
    palette = update.pop("palette", {})
    # Validated whole, not copied over: a theme is only ever one the schema allows.
    current = page.theme.model_dump()
    page.theme = Theme.model_validate(
        {**current, **update, "palette": {**current["palette"], **palette}}
    )


def _add_event(page: Page, op: AddEvent, scope: str | None) -> None:
    comp = _component(page, op.component_id)[1]
    aim = op.event.target
    if aim and aim.startswith(("sec-", "cmp-")) and not (page.section(aim) or page.component(aim)):
        raise _OpError("the event target is not on the page; use an id from the outline")
    comp.events.append(op.event)


def _remove_events(page: Page, op: RemoveEvents, scope: str | None) -> None:
    comp = _component(page, op.component_id)[1]
    comp.events = [e for e in comp.events if op.trigger and e.trigger != op.trigger]


def _add_animation(page: Page, op: AddAnimation, scope: str | None) -> None:
    _target(page, op.target_id).animations.append(op.animation)


def _remove_animations(page: Page, op: RemoveAnimations, scope: str | None) -> None:
    if op.target_id != "page":
        _target(page, op.target_id).animations = []
        return
    for section in page.sections:
        section.animations = []
    for *_, comp in page.walk():
        comp.animations = []


_HANDLERS: dict[type[Any], Callable[[Page, Any, str | None], str | None]] = {
    AddSection: _add_section,
    UpdateSection: _update_section,
    MoveSection: _move_section,
    RemoveSection: _remove_section,
    AddComponent: _add_component,
    UpdateProps: _update_props,
    MoveComponent: _move_component,
    RemoveComponent: _remove_component,
    SetStyles: _set_styles,
    SetTheme: _set_theme,
    AddEvent: _add_event,
    RemoveEvents: _remove_events,
    AddAnimation: _add_animation,
    RemoveAnimations: _remove_animations,
}
"""How each operation is applied: in place, returning the id it minted, if any."""


def _apply(page: Page, op: Op, scope: str | None) -> str | None:
    """Apply one operation in place and return the id it minted, if any."""
    return _HANDLERS[type(op)](page, op, scope)
