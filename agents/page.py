"""The page document the no-code builder renders, and the agents read and edit.

A page is a theme plus ordered sections; a section lays out components on a grid; a
component has a catalog type, props, optional children, styles, events and animations.
Ids are stable strings (``sec-3``, ``cmp-12``) so edits and JSON Patches can name them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from agents.catalog import load_catalog
from agents.safe_html import clean_props, plain_text
from agents.safe_url import is_safe_url, reads_as_url

SCHEMA_VERSION: Literal["1.0"] = "1.0"
SECTION_ID = r"^sec-[0-9]+$"
COMPONENT_ID = r"^cmp-[0-9]+$"
NODE_ID = r"^(sec-[0-9]+|cmp-[0-9]+)$"
TARGET_ID = r"^(page|sec-[0-9]+|cmp-[0-9]+)$"
HEX_COLOR = r"^#[0-9a-fA-F]{6}$"
# Style values are a small grammar, not free CSS: no url(), expression(), escapes, quotes or
# ';' can reach a stylesheet, so a value cannot load a resource or break out of its rule.
_COLOR = (
    r"(#[0-9a-fA-F]{6}|#[0-9a-fA-F]{3}"
    r"|(rgb|hsl)a?\([0-9]{1,3}%?(, ?[0-9.]{1,4}%?){2,3}\)|[a-z]{3,20})"
)
_STOP = _COLOR + r"( [0-9]{1,3}%)?"
_DIRECTION = r"([0-9]{1,3}deg|to (top|bottom|left|right)( (left|right))?|circle|ellipse)"
BACKGROUND = rf"^({_COLOR}|(linear|radial)-gradient\(({_DIRECTION}, )?{_STOP}(, {_STOP}){{1,5}}\))$"
FONT_STACK = r"^[A-Za-z0-9][A-Za-z0-9 -]{0,39}(, ?[A-Za-z0-9][A-Za-z0-9 -]{0,39}){0,4}$"
EVENT_TARGET = r"^(sec-[0-9]+|cmp-[0-9]+|https?://\S+|/\S*|#[A-Za-z][\w-]*)$"

SectionId = Annotated[str, Field(pattern=SECTION_ID, description="A section id, e.g. sec-2.")]
ComponentId = Annotated[str, Field(pattern=COMPONENT_ID, description="A component id, e.g. cmp-7.")]
NodeId = Annotated[str, Field(pattern=NODE_ID, description="A section or component id.")]
TargetId = Annotated[
    str, Field(pattern=TARGET_ID, description="'page', a section id or a component id.")
]
HexColor = Annotated[str, Field(pattern=HEX_COLOR, description="A #rrggbb colour.")]
PlainText = Annotated[str, AfterValidator(plain_text)]
"""Text shown as text: any markup in it is taken out (``safe_html.plain_text``)."""


def _known_type(value: str) -> str:
    if value not in load_catalog().types:
        raise ValueError(f"unknown component type {value!r}")
    return value


ComponentType = Annotated[
    str,
    AfterValidator(_known_type),
    Field(
        json_schema_extra={"enum": list(load_catalog().types)},
        description="A component type from the catalog.",
    ),
]
SectionRole = Literal[
    "header",
    "hero",
    "features",
    "pricing",
    "testimonials",
    "faq",
    "contact",
    "gallery",
    "about",
    "team",
    "cta",
    "blog",
    "stats",
    "logos",
    "content",
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
Action = Literal[
    "navigate",
    "open_modal",
    "close_modal",
    "toggle_visibility",
    "scroll_to",
    "submit_form",
    "set_state",
    "toggle_state",
    "track",
    "fetch_data",
    "copy_to_clipboard",
    "play_media",
    "validate",
]
Effect = Literal[
    "fade_in",
    "fade_out",
    "slide_up",
    "slide_down",
    "slide_left",
    "slide_right",
    "zoom_in",
    "zoom_out",
    "bounce",
    "pulse",
    "shake",
    "flip",
    "parallax",
    "typewriter",
]


class DocModel(BaseModel):
    """Strict, with field docstrings in the JSON schema the agents' tools carry."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class Palette(DocModel):
    primary: HexColor = "#4f46e5"
    """Brand colour: buttons, links, highlights."""
    secondary: HexColor = "#0ea5e9"
    """Second brand colour."""
    accent: HexColor = "#f59e0b"
    """Sparingly used emphasis colour."""
    background: HexColor = "#ffffff"
    """Page background."""
    surface: HexColor = "#f8fafc"
    """Cards and panels."""
    text: HexColor = "#0f172a"
    """Body text."""
    muted: HexColor = "#64748b"
    """Secondary text."""


class Theme(DocModel):
    palette: Palette = Field(default_factory=Palette)
    """The page's colours."""
    font_heading: str = Field(default="Inter", max_length=60, pattern=FONT_STACK)
    """Font family of headings."""
    font_body: str = Field(default="Inter", max_length=60, pattern=FONT_STACK)
    """Font family of body text."""
    base_font_size_px: int = Field(default=16, ge=12, le=24)
    """Body text size."""
    radius_px: int = Field(default=8, ge=0, le=48)
    """Default corner radius."""
    spacing: Literal["compact", "comfortable", "spacious"] = "comfortable"
    """Overall density of the layout."""
    mode: Literal["light", "dark"] = "light"
    """Light or dark appearance."""


class StyleRules(DocModel):
    """Visual overrides; unset fields inherit from the theme."""

    color: HexColor | None = None
    """Text colour."""
    background: str | None = Field(default=None, max_length=200, pattern=BACKGROUND)
    """A colour (#rgb, #rrggbb, rgb(), hsl(), a name) or a linear or radial gradient."""
    font_family: str | None = Field(default=None, max_length=60, pattern=FONT_STACK)
    """Font family, or a stack: 'Inter, sans-serif'."""
    font_size_px: int | None = Field(default=None, ge=8, le=160)
    """Text size."""
    font_weight: Literal[300, 400, 500, 600, 700, 800] | None = None
    """Text weight."""
    text_align: Literal["left", "center", "right"] | None = None
    """Text alignment."""
    padding_px: int | None = Field(default=None, ge=0, le=256)
    """Inner spacing."""
    margin_px: int | None = Field(default=None, ge=0, le=256)
    """Outer spacing."""
    gap_px: int | None = Field(default=None, ge=0, le=128)
    """Space between children."""
    border_width_px: int | None = Field(default=None, ge=0, le=16)
    """Border thickness."""
    border_color: HexColor | None = None
    """Border colour."""
    radius_px: int | None = Field(default=None, ge=0, le=999)
    """Corner radius."""
    shadow: Literal["none", "sm", "md", "lg", "xl"] | None = None
    """Drop shadow size."""
    max_width_px: int | None = Field(default=None, ge=120, le=2400)
    """Largest width."""
    opacity: float | None = Field(default=None, ge=0, le=1)
    """Opacity from 0 to 1."""
    hidden: bool | None = None
    """Hide at this breakpoint."""


class Styles(DocModel):
    """Styles at each breakpoint; tablet and mobile override base."""

    base: StyleRules = Field(default_factory=StyleRules)
    """All screens."""
    tablet: StyleRules | None = None
    """Screens up to 1024 px."""
    mobile: StyleRules | None = None
    """Screens up to 640 px."""


class Event(DocModel):
    """Behaviour: when ``trigger`` fires on the component, do ``action``."""

    trigger: Trigger
    """What the user (or the page) does."""
    action: Action
    """What happens then."""
    target: str | None = Field(default=None, max_length=300, pattern=EVENT_TARGET)
    """The id of the component or section acted on, or a URL or #anchor for navigate."""
    params: dict[str, str | int | float | bool] = Field(default_factory=dict, max_length=8)
    """Action parameters, e.g. {"state": "billing", "value": "yearly"}."""

    @field_validator("target")
    @classmethod
    def _safe_target(cls, target: str | None) -> str | None:
        """A URL target is a link: http(s) or relative, however it is spelled."""
        is_id = not target or target.startswith(("sec-", "cmp-"))
        if not is_id and not is_safe_url(target or "", absolute=False):
            raise ValueError("a URL target must be http(s), a path or a #anchor")
        return target

    @field_validator("params")
    @classmethod
    def _safe_params(cls, params: dict[str, Any]) -> dict[str, Any]:
        """A renderer may use a param as a link (``fetch_data``'s endpoint) or show it: a
        param that reads as a URL passes the link rules, and any other string is text."""
        for name, value in params.items():
            # A browser reads a leading backslash as a slash: "\\\\host" is a link too.
            link = isinstance(value, str) and (reads_as_url(value) or value.startswith(("/", "\\")))
            if link and not is_safe_url(str(value), absolute=False):
                raise ValueError(f"param {name!r} is a URL of a kind that is not allowed")
        return {k: plain_text(v) if isinstance(v, str) else v for k, v in params.items()}


class Animation(DocModel):
    """Motion applied to a section or component."""

    effect: Effect
    """The motion."""
    trigger: Literal["load", "scroll_into_view", "hover", "click"] = "scroll_into_view"
    """When it plays."""
    duration_ms: int = Field(default=400, ge=50, le=5000)
    """How long it runs."""
    delay_ms: int = Field(default=0, ge=0, le=5000)
    """Wait before it starts."""
    easing: Literal["linear", "ease", "ease_in", "ease_out", "ease_in_out", "spring"] = "ease_out"
    """Timing curve."""
    repeat: int = Field(default=0, ge=0, le=10)
    """Extra repetitions (0 plays once)."""


class Component(DocModel):
    id: ComponentId
    type: ComponentType
    props: dict[str, Any] = Field(default_factory=dict)
    """Props as the catalog entry of the type defines them."""
    span: int = Field(default=12, ge=1, le=12)
    """Grid columns taken out of 12."""
    children: list[Component] = Field(default_factory=list)
    """Nested components, for container types (card, tabs, form, modal...)."""
    styles: Styles | None = None
    """Visual overrides."""
    events: list[Event] = Field(default_factory=list)
    """Behaviour."""
    animations: list[Animation] = Field(default_factory=list)
    """Motion."""

    @field_validator("props")
    @classmethod
    def _clean_html(cls, props: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        """Raw HTML props (the embed's ``html``) are sanitised whatever wrote them."""
        return clean_props(str(info.data.get("type", "")), props)


class SectionLayout(DocModel):
    columns: int = Field(default=1, ge=1, le=12)
    """Grid columns of the section."""
    gap_px: int = Field(default=24, ge=0, le=128)
    """Space between grid cells."""
    align: Literal["start", "center", "end", "stretch"] = "stretch"
    """Vertical alignment of cells."""
    full_width: bool = False
    """Span the whole viewport instead of the content width."""
    min_height_vh: int = Field(default=0, ge=0, le=100)
    """Least height as a share of the viewport."""
    stack_on_mobile: bool = True
    """Collapse to one column on small screens."""


class Section(DocModel):
    id: SectionId
    name: PlainText = Field(max_length=80)
    """Human name shown in the builder."""
    role: SectionRole = "content"
    """What the section is for."""
    layout: SectionLayout = Field(default_factory=SectionLayout)
    """How its components are laid out."""
    components: list[Component] = Field(default_factory=list)
    """Components, in reading order."""
    styles: Styles | None = None
    """Visual overrides."""
    animations: list[Animation] = Field(default_factory=list)
    """Motion of the whole section."""


class Page(DocModel):
    schema_version: Literal["1.0"] = SCHEMA_VERSION
    """Version of this document format."""
    id: str = Field(min_length=1, max_length=120)
    """The page id the builder uses."""
    title: PlainText = Field(default="", max_length=200)
    """Document title."""
    description: PlainText = Field(default="", max_length=500)
    """Meta description."""
    theme: Theme = Field(default_factory=Theme)
    """Colours, fonts and density."""
    sections: list[Section] = Field(default_factory=list)
    """Sections, top to bottom."""

    def walk(self) -> Iterator[tuple[Section, list[Component], Component]]:
        """Every component with its section and the list that holds it, depth first."""

        def visit(
            section: Section, items: list[Component]
        ) -> Iterator[tuple[Section, list[Component], Component]]:
            for item in items:
                yield section, items, item
                yield from visit(section, item.children)

        for section in self.sections:
            yield from visit(section, section.components)

    def section(self, section_id: str) -> Section | None:
        return next((s for s in self.sections if s.id == section_id), None)

    def component(self, component_id: str) -> Component | None:
        return next((c for _, _, c in self.walk() if c.id == component_id), None)

    def next_id(self, prefix: Literal["sec", "cmp"]) -> str:
        """A fresh id: one above the highest in use."""
        ids = [s.id for s in self.sections] if prefix == "sec" else [c.id for *_, c in self.walk()]
        return f"{prefix}-{max((int(i.split('-')[1]) for i in ids), default=0) + 1}"

    def outline(self) -> str:
        """One line per section and component (ids, types, labels): a compact view for prompts."""
        lines = [f"page {self.id} ({len(self.sections)} sections)"]

        def visit(items: list[Component], depth: int) -> None:
            for comp in items:
                label = next(
                    (
                        str(comp.props[k])
                        for k in ("title", "headline", "heading", "text", "label")
                        if comp.props.get(k)
                    ),
                    "",
                )
                lines.append(
                    f"{'  ' * depth}- {comp.id} {comp.type}" + (f" {label[:40]!r}" if label else "")
                )
                visit(comp.children, depth + 1)

        for section in self.sections:
            lines.append(
                f"- {section.id} {section.role} {section.name!r}, {section.layout.columns} columns"
            )
            visit(section.components, 1)
        return "\n".join(lines)


def empty_page(page_id: str) -> Page:
    """A page with no sections: what a new page is built from."""
    return Page(id=page_id)
