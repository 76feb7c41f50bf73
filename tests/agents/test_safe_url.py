"""Links and sources that reach a page: the classic filter-evasion vectors never pass."""

from __future__ import annotations

import pytest

from agents.catalog import load_catalog
from agents.safe_url import is_safe_url
from tests.agents.xss_corpus import URL_VECTORS

RUNS_SCRIPT = URL_VECTORS
LINKS = ["https://example.com/pricing?plan=pro#faq", "http://example.com", "mailto:hi@x.io"]
LINKS += ["tel:+15551234567", "/pricing", "#signup", "?ref=nav", "about/team", "//cdn.x.io/a"]


@pytest.mark.parametrize("url", RUNS_SCRIPT)
def test_nothing_that_can_run_script_passes(url: str) -> None:
    assert not is_safe_url(url, absolute=False)
    assert not is_safe_url(url, absolute=True)


@pytest.mark.parametrize("url", LINKS)
def test_ordinary_links_pass(url: str) -> None:
    assert is_safe_url(url, absolute=False)


@pytest.mark.parametrize("url", ["/\\evil.example/x", "//\\S+|/\\S*|#", "a\\b?q=1"])
def test_a_relative_link_with_a_backslash_in_its_path_is_refused(url: str) -> None:
    assert not is_safe_url(url, absolute=False)
    assert is_safe_url("/search?q=a\\b", absolute=False), "a backslash in the query is data"


def test_a_source_must_be_absolute() -> None:
    assert is_safe_url("https://cdn.example.com/a.png", absolute=True)
    assert not is_safe_url("/a.png", absolute=True)
    assert not is_safe_url("#top", absolute=True)


@pytest.mark.parametrize(
    "url", ["javascript:alert(1)", "data:text/html,<b>x</b>", "java\tscript:x"]
)
def test_catalog_props_refuse_script_links_and_sources(url: str) -> None:
    catalog = load_catalog()

    def url_problems(type_: str, props: dict[str, object]) -> list[str]:
        return [p for p in catalog.validate_props(type_, props) if "uri" in p]

    assert url_problems("button", {"label": "Go", "href": url}) == [
        f"props.href: {url!r} is not a 'uri-reference'"
    ]
    assert url_problems("image", {"src": url, "alt": "x"})
    assert url_problems("navbar", {"logo_text": "A", "items": [{"label": "H", "href": url}]})
    assert not url_problems("button", {"label": "Go", "href": "/signup"})
