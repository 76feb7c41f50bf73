"""Which URLs may reach a published page: http(s), mailto, tel, or relative; nothing that runs.

A browser is lenient about what it takes for a scheme: it drops tabs and newlines anywhere
in a URL, ignores leading spaces and control characters, decodes HTML character references
in attributes, and matches the scheme case-insensitively. So ``java&#x09;script:``,
``\\tjavascript:``, ``JaVaScRiPt:`` and ``javascript://x%0aalert(1)`` all run script. This
check reads a URL the way the browser will, and refuses any scheme outside the allowlist
(``javascript:``, ``data:``, ``vbscript:``, ``file:``...), however it is spelled.
"""

from __future__ import annotations

import html
import re
from urllib.parse import unquote

SCHEMES = frozenset({"http", "https", "mailto", "tel"})
"""What a link or a media source may use."""
HIERARCHICAL = frozenset({"http", "https"})
"""Schemes that need a host."""
MAX_URL_CHARS = 2048
_DROPPED = re.compile(r"[\x00-\x20\x7f]+")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")


def browser_reading(value: str) -> str:
    """``value`` as a browser resolves it: entities decoded (repeatedly: ``&amp;#106;``),
    percent-escapes of the scheme part decoded, and control characters and whitespace
    dropped."""
    text = value
    for _ in range(3):
        decoded = html.unescape(text)
        if decoded == text:
            break
        text = decoded
    text = _DROPPED.sub("", text)
    head, sep, rest = text.partition(":")
    if sep and "/" not in head and "?" not in head and "#" not in head:
        text = _DROPPED.sub("", unquote(head)) + ":" + rest
    return text


def is_safe_url(value: str, *, absolute: bool) -> bool:
    """Whether ``value`` may be a link or a source; ``absolute`` asks for a scheme (and a
    host for http/https), else a relative reference (a path, ``#anchor``, ``?query``) also
    passes."""
    if len(value) > MAX_URL_CHARS or value != value.strip():
        return False
    reading = browser_reading(value)
    if reading != _DROPPED.sub("", value):
        return False  # an entity, escape or control character where a plain URL has none
    scheme = _SCHEME.match(reading)
    if scheme is None:
        # No scheme: relative. A colon before any '/', '?' or '#' would be read as one; a
        # backslash in the path is read as '/', so /\host leaves for another origin.
        head = re.split(r"[/?#]", reading, maxsplit=1)[0]
        path = re.split(r"[?#]", reading, maxsplit=1)[0]
        return not absolute and ":" not in head and "\\" not in path
    name = scheme.group(1).lower()
    if name not in SCHEMES:
        return False
    rest = reading[scheme.end() :]
    if name in HIERARCHICAL:
        host = rest[2:].split("/", 1)[0] if rest.startswith("//") else ""
        return bool(host) and "\\" not in rest
    return bool(rest)


def reads_as_url(value: str) -> bool:
    """Whether ``value``, read as a browser would read a URL, starts with a scheme: for
    free values (event params) that a renderer might use as a link."""
    return _SCHEME.match(browser_reading(value)) is not None
