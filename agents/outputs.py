"""What each agent answers: one pydantic model per agent, used as its tool's input schema.

The schemas are the same for every request (they sit at the start of the cached prompt
prefix), so they constrain only what is static: catalog types as an enum, ids by pattern,
bounded lists. Whether an id exists is checked after parsing, against the page.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from agents.ops import AnimationOp, ComponentOp, EventOp, LayoutOp, Op, StyleOp
from agents.page import (
    ComponentId,
    ComponentType,
    DocModel,
    NodeId,
    PlainText,
    SectionId,
    SectionRole,
)


class PlannedSection(DocModel):
    role: SectionRole
    """What the section is for."""
    name: str = Field(max_length=80)
    """Short name, e.g. 'Pricing'."""
    purpose: str = Field(max_length=200)
    """One sentence on what it must achieve."""
    columns: int = Field(ge=1, le=12)
    """Suggested grid columns."""


class LayoutAnalysis(DocModel):
    """The sections the instruction needs, before any component is designed."""

    intent: Literal[
        "new_page",
        "add_sections",
        "remove_sections",
        "reorder_sections",
        "resize_sections",
        "no_layout_change",
    ]
    """The kind of structural change."""
    sections: list[PlannedSection] = Field(default_factory=list, max_length=12)
    """Sections to create or change, top to bottom."""
    notes: str = Field(default="", max_length=400)
    """Anything the layout generator should know."""


class LayoutPlan(DocModel):
    """Section operations that give the page the analysed structure."""

    ops: list[LayoutOp] = Field(max_length=16)
    """Operations, applied in order."""
    summary: str = Field(max_length=300)
    """One sentence on what changed."""


class SectionBrief(DocModel):
    section_id: SectionId
    """The section to fill or change."""
    component_types: list[ComponentType] = Field(max_length=12)
    """Catalog types it needs, in reading order."""
    brief: str = Field(max_length=300)
    """What the components should say and hold."""


class ComponentAnalysis(DocModel):
    """Which sections need which components."""

    targets: list[SectionBrief] = Field(max_length=12)
    """One brief per affected section."""
    notes: str = Field(default="", max_length=400)
    """Anything the component generator should know."""


class ComponentPlan(DocModel):
    """Component operations for the section in scope."""

    ops: list[ComponentOp] = Field(max_length=24)
    """Operations, applied in order."""
    summary: str = Field(max_length=300)
    """One sentence on what changed."""


class BehaviourNeed(DocModel):
    component_id: ComponentId
    """The component that fires the behaviour."""
    behaviour: str = Field(max_length=200)
    """What should happen, in one sentence."""


class EventsAnalysis(DocModel):
    """The behaviour the instruction asks for."""

    needs: list[BehaviourNeed] = Field(max_length=12)
    """Behaviour per component."""
    notes: str = Field(default="", max_length=400)
    """Anything the events generator should know."""


class EventsPlan(DocModel):
    """Event operations."""

    ops: list[EventOp] = Field(max_length=16)
    """Operations, applied in order."""
    summary: str = Field(max_length=300)
    """One sentence on what changed."""


class StylesPlan(DocModel):
    """Theme and style operations."""

    ops: list[StyleOp] = Field(max_length=16)
    """Operations, applied in order."""
    summary: str = Field(max_length=300)
    """One sentence on what changed."""


class AnimationPlan(DocModel):
    """Animation operations."""

    ops: list[AnimationOp] = Field(max_length=16)
    """Operations, applied in order."""
    summary: str = Field(max_length=300)
    """One sentence on what changed."""


class ReviewNote(DocModel):
    severity: Literal["info", "warning", "error"]
    """How much it matters."""
    target_id: NodeId | None = None
    """The section or component concerned, if any."""
    message: PlainText = Field(max_length=300)
    """What is wrong or worth knowing."""


class Review(DocModel):
    """The reviewer's verdict on the edited page."""

    approved: bool
    """False only when the result clearly fails the request."""
    notes: list[ReviewNote] = Field(default_factory=list, max_length=10)
    """Findings, most important first."""
    summary: PlainText = Field(max_length=300)
    """One sentence."""


EditPlan = LayoutPlan | ComponentPlan | EventsPlan | StylesPlan | AnimationPlan


def ops_of(output: DocModel) -> list[Op]:
    """The operations of a generator's answer ([] for analyzers and the reviewer)."""
    return list(output.ops) if isinstance(output, EditPlan) else []
