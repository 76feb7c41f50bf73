"""A realistic existing page (header, hero, features, pricing, testimonials, footer).

The shared instruction dataset assumes such a page; tests, benchmarks and the README's
examples edit it. Props come from the catalog's own examples, so they are valid.
"""

from __future__ import annotations

from agents.catalog import load_catalog
from agents.page import Component, Page, Section, SectionLayout

_SECTIONS = (
    ("Header", "header", 1, ("navbar",)),
    ("Hero", "hero", 2, ("hero",)),
    ("Features", "features", 3, ("feature_grid",)),
    ("Pricing", "pricing", 3, ("pricing_toggle", "pricing_table")),
    ("Testimonials", "testimonials", 2, ("testimonial", "testimonial")),
    ("Footer", "footer", 1, ("footer",)),
)


def landing_page(page_id: str = "landing") -> Page:
    """A six-section landing page with valid props throughout."""
    catalog = load_catalog()
    sections = []
    next_component = 1
    for number, (name, role, columns, types) in enumerate(_SECTIONS, start=1):
        components = []
        for kind in types:
            span = 12 if len(types) == 1 or kind == "pricing_toggle" else 12 // len(types)
            components.append(
                Component(
                    id=f"cmp-{next_component}",
                    type=kind,
                    props=dict(catalog.get(kind).example),
                    span=span,
                )
            )
            next_component += 1
        sections.append(
            Section(
                id=f"sec-{number}",
                name=name,
                role=role,
                layout=SectionLayout(columns=columns),
                components=components,
            )
        )
    return Page(id=page_id, title="Acme: plans for every team", sections=sections)
