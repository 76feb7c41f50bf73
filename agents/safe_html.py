"""The one place raw HTML is allowed onto a page (the embed component's ``html``), cleaned;
every other string prop is text, with any markup taken out.

``nh3`` (the Rust ``ammonia`` sanitiser, maintained) parses the snippet as a browser would
and keeps only the allowlisted tags and attributes below: no script, style, iframe, object,
svg or form, no event handler attributes, and links and images only on the schemes
``safe_url`` allows. Text props keep no tag at all, so that a renderer that (wrongly) puts
one into ``innerHTML`` runs nothing either. What is dropped is dropped silently, as a
sanitiser must.
"""

from __future__ import annotations

import html
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


def plain_text(value: str) -> str:
    """``value`` with every tag (and a script's or style's content) removed, as text."""
    text = value
    # Unescaped after cleaning, so the text reads as written ("a < b"); cleaned again, as
    # an escaped tag ("&lt;script&gt;") becomes a tag when unescaped.
    for _ in range(5):
        if "<" not in text and "&" not in text:
            break
        cleaned = html.unescape(nh3.clean(text, tags=set(), strip_comments=True))
        if cleaned == text:
            break
        text = cleaned
    return text


def _texts(value: Any) -> Any:
    if isinstance(value, str):
        return plain_text(value)
    if isinstance(value, list):
        return [_texts(item) for item in value]
    if isinstance(value, dict):
        return {key: _texts(item) for key, item in value.items()}
    return value


def clean_props(component_type: str, props: dict[str, Any]) -> dict[str, Any]:
    """``props`` with every HTML prop of the type cleaned and markup taken out of the rest."""
    html_props = HTML_PROPS.get(component_type, ())
    return {
        name: clean_html(value) if name in html_props and isinstance(value, str) else _texts(value)
        for name, value in props.items()
    }
