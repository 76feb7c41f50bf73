"""The one place raw HTML is allowed onto a page (the embed component's ``html``), cleaned.

``nh3`` (the Rust ``ammonia`` sanitiser, maintained) parses the snippet as a browser would
and keeps only the allowlisted tags and attributes below: no script, style, iframe, object,
svg or form, no event handler attributes, and links and images only on the schemes
``safe_url`` allows. What is dropped is dropped silently, as a sanitiser must.
"""

from __future__ import annotations

from typing import Any

import nh3

from agents.safe_url import SCHEMES

TAGS = frozenset(
    "a abbr b blockquote br caption code dd div dl dt em figcaption figure h2 h3 h4 h5 h6 hr "
    "i img li ol p pre q s small span strong sub sup table tbody td th thead tr u ul".split()
)
ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "width", "height", "title"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
}
HTML_PROPS = {"embed": ("html",)}
"""Component types and the props of theirs that hold HTML."""


def clean_html(snippet: str) -> str:
    """``snippet`` with everything outside the allowlist removed."""
    return nh3.clean(
        snippet,
        tags=set(TAGS),
        attributes={tag: set(names) for tag, names in ATTRIBUTES.items()},
        url_schemes=set(SCHEMES),
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )


def clean_props(component_type: str, props: dict[str, Any]) -> dict[str, Any]:
    """``props`` with every HTML prop of the type cleaned; others as they are."""
    names = [n for n in HTML_PROPS.get(component_type, ()) if isinstance(props.get(n), str)]
    if not names:
        return props
    return {**props, **{n: clean_html(props[n]) for n in names}}
