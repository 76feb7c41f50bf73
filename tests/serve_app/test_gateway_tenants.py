"""Tenants over real HTTP: a spend limit reached, and what each tenant is told it spent."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from agents.samples import landing_page
from tests.serve_app.conftest import SPEND_QUOTA, Gateway, user

pytestmark = pytest.mark.ray
USAGE_FIELDS = ("input_tokens", "output_tokens", "cache_read_input_tokens")


def finished(gateway: Gateway, tenant: str, status_url: str) -> dict[str, Any]:
    """The job once it has ended (its status body)."""
    with gateway.client(tenant) as http:
        deadline = time.monotonic() + 120
        while (status := http.get(status_url).json())["status"] not in ("succeeded", "failed"):
            assert time.monotonic() < deadline, status
            time.sleep(0.3)
    return status  # type: ignore[no-any-return]


def styles_job(tag: str) -> dict[str, Any]:
    """A styles-only edit no other test sends (so that no cache answers it)."""
    return {
        "instruction": f"Make the footer darker ({tag})",
        "page": landing_page("spend").model_dump(mode="json"),
        "agents": ["styles"],
        "stream": False,
        "user_id": user(),
    }


def test_a_tenant_at_its_spend_limit_is_refused_while_another_is_served(
    gateway: Gateway,
) -> None:
    tag = uuid.uuid4().hex[:8]
    with gateway.client("hooli") as http:
        first = http.post("/v1/pages/spend/generate", json=styles_job(f"{tag} 1"))
        assert first.status_code == 202, first.text
        done = finished(gateway, "hooli", first.json()["status_url"])
        assert done["status"] == "succeeded"
        assert done["result"]["usage"]["total"]["cost_usd"] > 0
        refused = http.post("/v1/pages/spend/generate", json=styles_job(f"{tag} 2"))
        spend = http.get("/v1/capacity").json()["quota"]["spend"]
    assert refused.status_code == 429
    assert refused.json()["error"]["type"] == "quota_exceeded"
    assert "spend limit" in refused.json()["error"]["message"]
    assert 1 <= int(refused.headers["retry-after"]) <= 86_400
    assert refused.headers["ratelimit-policy"] == f"{SPEND_QUOTA['usd_per_day']:g};w=86400"
    cost = done["result"]["usage"]["total"]["cost_usd"]
    # Both are rounded to the micro-dollar, from sums taken in different orders.
    assert spend["spent_today_usd"] == pytest.approx(cost, abs=2e-6)
    left = max(0.0, SPEND_QUOTA["usd_per_day"] - cost)
    assert spend["remaining_usd"] == pytest.approx(left, abs=2e-6)
    assert spend["held_usd"] == 0.0
    with gateway.client("globex") as http:
        other = http.post("/v1/pages/spend/generate", json=styles_job(f"{tag} 3"))
    assert other.status_code == 202, other.text
    assert finished(gateway, "globex", other.json()["status_url"])["status"] == "succeeded"


def test_a_tenant_is_billed_what_its_results_said_and_nothing_of_others(
    gateway: Gateway,
) -> None:
    """Between two reads of umbrella's usage it ran one job and acme another: the change
    is umbrella's result's usage exactly, acme's not in it."""
    with gateway.client("umbrella") as http:
        before = _totals(http.get("/v1/usage").json())
        mine = http.post("/v1/pages/spend/generate", json=styles_job(uuid.uuid4().hex))
    with gateway.client("acme") as http:
        theirs = http.post("/v1/pages/spend/generate", json=styles_job(uuid.uuid4().hex))
    result = finished(gateway, "umbrella", mine.json()["status_url"])["result"]
    assert finished(gateway, "acme", theirs.json()["status_url"])["status"] == "succeeded"
    with gateway.client("umbrella") as http:
        report = http.get("/v1/usage").json()
    assert report["tenant"] == "umbrella"
    after = _totals(report)
    used = result["usage"]["agents"]["styles"]
    assert used["calls"] >= 1
    for field in ("calls", *USAGE_FIELDS):
        assert after[field] - before[field] == used[field], field
    assert after["cost_usd"] - before["cost_usd"] == pytest.approx(used["cost_usd"], abs=2e-6)
    assert after["succeeded"] - before["succeeded"] == 1


def _totals(report: dict[str, Any]) -> dict[str, float]:
    """The styles agent's totals over the report's days, and the generations that succeeded."""
    totals: dict[str, float] = {"succeeded": 0}
    for day in report["days"]:
        totals["succeeded"] += day["generations"]["succeeded"]
        for field, value in day["agents"].get("styles", {}).items():
            totals[field] = totals.get(field, 0) + value
    return {k: totals.get(k, 0) for k in ("calls", *USAGE_FIELDS, "cost_usd", "succeeded")}


@pytest.mark.parametrize("query", [{"days": "0"}, {"days": "32"}, {"days": "week"}, {"day": "3"}])
def test_usage_out_of_range_or_misspelt_is_422(gateway: Gateway, query: dict[str, str]) -> None:
    with gateway.client("acme") as http:
        reply = http.get("/v1/usage", params=query)
    assert reply.status_code == 422
    assert reply.json()["error"]["type"] == "invalid_request"
    (name,) = query
    assert reply.json()["error"]["detail"][0]["loc"] == ["query", name]
