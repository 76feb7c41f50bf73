"""The XSS corpus the safe-page tests feed in, and an oracle that finds what could run.

The vectors are the classic filter evasions (OWASP's cheat sheet and its kin): script
schemes spelled with entities, tabs, newlines, escapes and case; ``data:`` URLs; markup
with event handlers (SVG ``onload``, ``onerror``); CSS that loads or runs (``url(``,
``expression(``); HTML in text. The oracle does not use the code under test: it reads a
returned page as a browser and a renderer would (the catalog says which props are URLs,
the embed's ``html`` is HTML, every other string is text) and reports whatever in it
could run script or load from elsewhere.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any
from urllib.parse import unquote

from agents.catalog import load_catalog

URL_VECTORS = [
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    " javascript:alert(1)",
    "\tjavascript:alert(1)",
    "java\tscript:alert(1)",
    "java\nscript:alert(1)",
    "java\x00script:alert(1)",
    "javascript://x%0aalert(1)",
    "&#106;avascript:alert(1)",
    "&#x6A;avascript:alert(1)",
    "&#0000106&#0000097vascript:alert(1)",
    "java&#x09;script:alert(1)",
    "&amp;#106;avascript:alert(1)",
    "%6Aavascript:alert(1)",
    "javascript&colon;alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "data:image/svg+xml,<svg onload=alert(1)>",
    "vbscript:msgbox(1)",
    "file:///etc/passwd",
    "jar:http://x/y!/z",
    "https:",
    "http:/\\evil.com",
    "\\\\evil.com\\share",
    "x" * 3000,
]
HTML_VECTORS = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
    "<img src=x onerror=alert(1)>",
    "<svg onload=alert(1)><circle/></svg>",
    "<body onload=alert(1)>",
    '<a href="javascript:alert(1)">x</a>',
    '<a href="java&#x09;script:alert(1)">x</a>',
    '<a href="data:text/html,<script>alert(1)</script>">x</a>',
    '<iframe src="https://evil.example"></iframe>',
    "<style>body{background:url(javascript:alert(1))}</style>",
    '<div style="background:url(javascript:alert(1))">x</div>',
    '<object data="x.swf"></object><embed src="x.swf">',
    '<form action="https://evil.example"><input name=p></form>',
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    "<!--<img src=x onerror=alert(1)>-->",
    '<p title="x" onmouseover="alert(1)">hover</p>',
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    "<<script>script>alert(1)<</script>/script>",
]
CSS_VECTORS = [
    "url(https://evil.example/x.png)",
    "url(javascript:alert(1))",
    "expression(alert(1))",
    "red;background-image:url(x)",
    "red}body{display:none",
    "linear-gradient(red, url(x))",
    "\\75rl(x)",
    "red</style><script>alert(1)</script>",
    "'red'",
]
CORPUS = URL_VECTORS + HTML_VECTORS + CSS_VECTORS

SAFE_SCHEMES = {"http", "https", "mailto", "tel"}
HTML_TAGS = set(
    "a abbr b blockquote br caption code dd div dl dt em figcaption figure h2 h3 h4 h5 h6 hr "
    "i img li ol p pre q s small span strong sub sup table tbody td th thead tr u ul".split()
)
_MARKUP = re.compile(r"<[A-Za-z!/?]")
_CSS_RUNS = re.compile(r"url\s*\(|expression\s*\(|[\\;{}<>\"']|javascript:|@import", re.I)


def url_runs_script(value: str) -> bool:
    """Whether a browser would read ``value`` (a link or source) as a scheme that runs."""
    text = value
    for _ in range(4):
        text = html.unescape(text)
    text = re.sub(r"[\x00-\x20\x7f]", "", text)
    head = unquote(re.split(r"[/?#]", text, maxsplit=1)[0])
    if text.startswith("\\") or "\\" in text.split("?")[0]:
        return True
    scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.\-]*):", head)
    return scheme is not None and scheme.group(1).lower() not in SAFE_SCHEMES


class _HtmlProblems(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in HTML_TAGS:
            self.problems.append(f"<{tag}>")
        for name, value in attrs:
            if name.startswith("on") or name == "style":
                self.problems.append(f"<{tag} {name}=>")
            if name in ("href", "src") and value is not None and url_runs_script(value):
                self.problems.append(f"<{tag} {name}={value!r}>")

    def handle_comment(self, data: str) -> None:
        self.problems.append("<!-- -->")


def html_problems(snippet: str) -> list[str]:
    parser = _HtmlProblems()
    parser.feed(snippet)
    parser.close()
    return parser.problems


def _url_props() -> set[str]:
    names: set[str] = set()

    def walk(schema: dict[str, Any], name: str | None) -> None:
        if schema.get("format") in ("uri", "uri-reference") and name:
            names.add(name)
        for key, sub in schema.get("properties", {}).items():
            walk(sub, key)
        if isinstance(schema.get("items"), dict):
            walk(schema["items"], name)

    for entry in load_catalog().types:
        walk(load_catalog().get(entry).props_schema, None)
    return names


URL_PROPS = _url_props()


def _strings(value: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, (*path, str(key)))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _strings(item, (*path, str(i)))


def executable_parts(page: dict[str, Any]) -> list[str]:
    """What in a returned page (its JSON) could run script: empty when nothing can."""
    found: list[str] = []
    for path, value in _strings(page):
        where = ".".join(path)
        key = path[-1] if path else ""
        in_css = "styles" in path or path[:1] == ("theme",)
        if "props" in path and key == "html":
            found += [f"{where}: {p}" for p in html_problems(value)]
        elif ("props" in path and key in URL_PROPS) or (key == "target" and "events" in path):
            if url_runs_script(value):
                found.append(f"{where}: {value!r}")
        elif "params" in path and "events" in path:
            if url_runs_script(value) or _MARKUP.search(value):
                found.append(f"{where}: {value!r}")
        elif in_css:
            if _CSS_RUNS.search(value):
                found.append(f"{where}: {value!r}")
        elif _MARKUP.search(value):
            found.append(f"{where}: markup {value!r}")
    return found
