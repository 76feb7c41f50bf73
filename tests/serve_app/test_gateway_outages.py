"""The deployed gateway when a dependency goes away: the contract's JSON errors, then recovery."""

from __future__ import annotations

import httpx2
import pytest

from tests.serve_app.conftest import Gateway, generate, user

pytestmark = [pytest.mark.ray, pytest.mark.redis]


def assert_unavailable(reply: httpx2.Response) -> None:
    assert reply.status_code == 503, reply.text
    assert reply.headers["content-type"].startswith("application/json")
    error = reply.json()["error"]
    assert error["type"] == "store_unavailable"
    assert "redis://127.0.0.1" in error["message"]
    assert int(reply.headers["retry-after"]) >= 1
    assert error["retry_after_s"] >= 1


def test_every_route_answers_json_503_while_redis_is_down(gateway: Gateway) -> None:
    accepted = generate(gateway, "outage", {"instruction": "Add an FAQ", "stream": False})
    assert accepted.status_code == 202
    job_url = accepted.json()["status_url"]
    gateway.redis.stop()
    try:
        with gateway.client() as http:
            assert_unavailable(http.get(job_url))
            assert_unavailable(http.get(job_url + "/events"))
            assert_unavailable(http.delete(job_url))
            body = {"instruction": "Add a footer", "user_id": user()}
            assert_unavailable(http.post("/v1/pages/outage/generate", json=body))
            assert_unavailable(http.post("/agent/page", json={**body, "page_id": "outage"}))
            ready = http.get("/readyz")
            # The keeper does not need Redis to grant budget; the capacity view stays up.
            capacity = http.get("/v1/capacity")
    finally:
        gateway.redis.start()
    assert ready.status_code == 503
    assert ready.json()["checks"]["store"] is False
    assert ready.json()["checks"]["budget_keeper"] is True
    assert capacity.status_code == 200
    # Back: new work is accepted and runs to its result (this Redis kept nothing).
    again = generate(gateway, "outage", {"instruction": "Add a footer", "user_id": user()})
    assert again.status_code == 200
    assert "event: result" in again.text
