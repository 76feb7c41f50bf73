"""The playground in a real browser: Playwright drives Debian's Chromium against the gateway.

It types an instruction as a user would and watches the job: the plan, every planned
agent completed, the preview drawing the result's sections (checked against the job's
result from the API), a reload mid-job that picks the stream up again, and a second job
cancelled from the page. Screenshots go to ``test-artifacts/playground/``.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray
from playwright.sync_api import Browser, Page, expect, sync_playwright

from serve_app.keeper import KEEPER_NAME
from serve_app.singleton import NAMESPACE
from tests.serve_app.conftest import TENANT_KEYS, Gateway

pytestmark = pytest.mark.ray
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "playground"
DONE_S = 180_000  # ms: a whole new page on claude_sim, queued behind other tests' calls


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is not installed: run `make test`, which installs it")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, gateway: Gateway) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    opened.goto(gateway.url + "/")
    opened.fill("#key", TENANT_KEYS["acme"])
    yield opened
    context.close()


def hold_haiku(seconds: float) -> None:
    """Hold the keeper's haiku pool, so that a job stays mid-way for a while."""
    ray.get(ray.get_actor(KEEPER_NAME, namespace=NAMESPACE).pause.remote("haiku", seconds))


def start(page: Page, instruction: str) -> dict[str, Any]:
    """Fill the form and press Generate; the 202 the page got."""
    page.fill("#page-id", f"pg-{uuid.uuid4().hex[:8]}")
    page.fill("#instruction", instruction)
    with page.expect_response(lambda r: r.request.method == "POST") as reply:
        page.click("#go")
    assert reply.value.status == 202, reply.value.text()
    return reply.value.json()  # type: ignore[no-any-return]


def job_of(gateway: Gateway, job_id: str) -> dict[str, Any]:
    with gateway.client("acme") as http:
        return http.get(f"/v1/jobs/{job_id}").json()  # type: ignore[no-any-return]


def test_a_generation_is_watched_resumed_after_a_reload_and_previewed(
    page: Page, gateway: Gateway
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    hold_haiku(6.0)
    tag = uuid.uuid4().hex[:6]
    job = start(page, f"Create a landing page for a bakery with a hero and a contact form ({tag})")
    expect(page.locator("#plan")).to_contain_text("agents run")
    page.screenshot(path=ARTIFACTS / "playground-running.png", full_page=True)
    page.reload()  # mid-job: the page picks the stream up from its session
    expect(page.locator("#connection")).to_contain_text("Resumed after a reload")
    expect(page.locator("#status")).to_have_attribute("data-state", "succeeded", timeout=DONE_S)
    finished = job_of(gateway, job["job_id"])
    assert finished["status"] == "succeeded"
    for agent in finished["plan"]:
        expect(page.locator(f"#stages li[data-agent={agent}]").first).to_have_attribute(
            "data-status", "completed"
        )
    preview = page.frame_locator("#preview")
    sections = finished["result"]["page"]["sections"]
    assert sections
    for section in sections:
        expect(preview.locator(f"[data-section='{section['id']}']")).to_contain_text(
            section["name"][:20]
        )
    expect(page.locator("#totals")).to_contain_text("Total:")
    page.screenshot(path=ARTIFACTS / "playground-result.png", full_page=True)
    expect(page.locator("#source-last")).to_be_enabled()


def test_cancel_ends_a_running_job_as_cancelled(page: Page, gateway: Gateway) -> None:
    hold_haiku(20.0)
    job = start(page, f"Create a portfolio page with a gallery ({uuid.uuid4().hex[:6]})")
    expect(page.locator("#plan")).to_contain_text("agents run")
    page.click("#cancel")
    expect(page.locator("#status")).to_have_attribute("data-state", "cancelled", timeout=60_000)
    expect(page.locator("#go")).to_be_enabled()
    assert job_of(gateway, job["job_id"])["status"] == "cancelled"


def test_the_page_is_usable_by_keyboard_and_at_360_px(page: Page) -> None:
    page.set_viewport_size({"width": 360, "height": 800})
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 360, f"the page scrolls sideways at 360 px ({width} px wide)"
    page.focus("#key")
    focused = []
    for _ in range(8):
        page.keyboard.press("Tab")
        focused.append(page.evaluate("document.activeElement.id || document.activeElement.value"))
    assert "instruction" in focused
    assert "go" in focused
