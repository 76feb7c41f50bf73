"""The deployed gateway when a dependency goes away: the contract's JSON errors, then recovery."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx2
import pytest

from tests.serve_app.conftest import Gateway, generate, held_styles_job, parse_sse, user

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
            assert_unavailable(http.get("/v1/usage"))
            ready = http.get("/readyz")
            # The keeper does not need Redis to grant budget; the capacity view stays up.
            capacity = http.get("/v1/capacity")
    finally:
        gateway.redis.start()
    assert ready.status_code == 503
    assert (ready.json()["status"], ready.json()["failing"]) == ("degraded", ["store"])
    assert ready.json()["checks"]["store"] is False
    assert ready.json()["checks"]["budget_keeper"] is True
    assert capacity.status_code == 200
    assert capacity.json()["quota"]["spend"] is None
    # Back: new work is accepted and runs to its result (this Redis kept nothing).
    again = generate(gateway, "outage", {"instruction": "Add a footer", "user_id": user()})
    assert again.status_code == 200
    assert "event: result" in again.text


def test_a_running_job_rides_out_a_redis_restart_that_lost_everything(gateway: Gateway) -> None:
    page_id = f"redis-{uuid.uuid4().hex[:6]}"
    # Held in its styles stage (the haiku pool paused) while Redis goes away.
    events: list[tuple[int, str, dict[str, Any]]] = []
    during: list[httpx2.Response] = []
    with (
        held_styles_job(gateway, page_id) as (job, hold),
        gateway.client() as http,
        http.stream("GET", job["events_url"]) as stream,
    ):
        buffer = ""
        for chunk in stream.iter_text():
            buffer += chunk
            *blocks, buffer = buffer.split("\n\n")
            events += parse_sse("\n\n".join(blocks))
            if not during and any(e[1] == "stage" for e in events):
                gateway.redis.stop()  # killed; it comes back empty (no persistence)
                try:
                    with gateway.client() as other:
                        during.append(other.get(job["status_url"]))
                        again = {"instruction": "Add a footer", "user_id": user()}
                        during.append(other.post(f"/v1/pages/{page_id}/generate", json=again))
                    time.sleep(2)
                finally:
                    gateway.redis.start()
                    hold.release()
    for reply in during:
        assert_unavailable(reply)
    ids = [e[0] for e in events]
    assert ids == sorted(set(ids)), "no event twice, none out of order"
    assert events[-1][1] == "result", events[-1]
    with gateway.client() as http:
        record = http.get(job["status_url"])
    assert record.status_code == 200, "the owner wrote the job again"
    assert record.json()["status"] == "succeeded"
