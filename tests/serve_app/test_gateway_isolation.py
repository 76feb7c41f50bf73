"""Two tenants sending the same thing: nothing of one reaches the other, in any layer.

Hypothesis draws scenarios in which acme and globex share a page id, a user id and an
instruction (and the page), one after the other or at the same moment. Whatever is cached
or shared inside the gateway (whole results, agent calls, single-flight, dedup of running
jobs), the second tenant's generation must be answered by calls of its own: the ground
truth is what reached claude_sim, which answers every call it is sent (an answer served
from the other tenant's caches never reaches it). Each tenant's jobs and events are
invisible to the other (``404``). A nonce per example keeps earlier examples' caches (each
tenant's own, rightly used) out of the next.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.samples import landing_page
from tests.serve_app.conftest import Gateway

pytestmark = pytest.mark.ray

TENANTS = ("acme", "globex")


@dataclass(frozen=True)
class Scenario:
    page_id: str
    user: str
    instruction: str
    agents: tuple[str, ...]
    first: str
    together: bool
    """Both tenants at the same moment (dedup and single-flight), else one after the other."""


scenarios = st.builds(
    Scenario,
    page_id=st.sampled_from(["home", "pricing", "a.b-c_1", "x" * 120]),
    user=st.sampled_from(["u1", "shared-user", "admin"]),
    instruction=st.sampled_from(
        ["Make the buttons rounder", "Use a dark theme", "Animate the hero on load"]
    ),
    agents=st.sampled_from([("styles",), ("animation",)]),
    first=st.sampled_from(TENANTS),
    together=st.booleans(),
)


def answered(gateway: Gateway) -> int:
    """Calls claude_sim has answered in full, since it started."""
    replies = gateway.sim_stats()["replies"]
    return int(replies["distinct"] + replies["repeated"])


def start(gateway: Gateway, tenant: str, case: Scenario, nonce: str) -> dict[str, Any]:
    body = {
        "instruction": f"{case.instruction} ({nonce})",
        "page": landing_page(case.page_id[:40]).model_dump(mode="json"),
        "user_id": f"{case.user}-{nonce}",
        "agents": list(case.agents),
        "stream": False,
    }
    with gateway.client(tenant) as http:
        reply = http.post(f"/v1/pages/{case.page_id}/generate", json=body)
    assert reply.status_code == 202, reply.text
    return reply.json()  # type: ignore[no-any-return]


def ended(gateway: Gateway, tenant: str, job: dict[str, Any]) -> dict[str, Any]:
    with gateway.client(tenant) as http:
        deadline = time.monotonic() + 120
        while (status := http.get(job["status_url"]).json())["status"] not in (
            "succeeded",
            "failed",
            "cancelled",
        ):
            assert time.monotonic() < deadline, status
            time.sleep(0.2)
    assert status["status"] == "succeeded", status
    return status["result"]  # type: ignore[no-any-return]


def calls(result: dict[str, Any]) -> int:
    return int(result["usage"]["total"]["calls"])


def assert_invisible(gateway: Gateway, reader: str, job: dict[str, Any]) -> None:
    with gateway.client(reader) as http:
        replies = [
            http.get(job["status_url"]),
            http.get(job["events_url"]),
            http.delete(job["status_url"]),
        ]
    assert [r.status_code for r in replies] == [404, 404, 404]
    assert all(r.json()["error"]["type"] == "not_found" for r in replies)


@given(case=scenarios)
@settings(
    max_examples=6,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_layer_answers_one_tenant_with_anothers_work(gateway: Gateway, case: Scenario) -> None:
    nonce = uuid.uuid4().hex[:8]
    second = TENANTS[1] if case.first == TENANTS[0] else TENANTS[0]
    before = answered(gateway)
    if case.together:
        with ThreadPoolExecutor(2) as pool:
            jobs = dict(
                zip(
                    (case.first, second),
                    pool.map(
                        lambda tenant: start(gateway, tenant, case, nonce), (case.first, second)
                    ),
                    strict=True,
                )
            )
        results = {tenant: ended(gateway, tenant, job) for tenant, job in jobs.items()}
        # Neither was attached to the other's job, nor its calls folded into the other's.
        assert jobs[case.first]["job_id"] != jobs[second]["job_id"]
        assert answered(gateway) - before >= calls(results[case.first]) + calls(results[second])
    else:
        jobs = {case.first: start(gateway, case.first, case, nonce)}
        results = {case.first: ended(gateway, case.first, jobs[case.first])}
        middle = answered(gateway)
        jobs[second] = start(gateway, second, case, nonce)
        results[second] = ended(gateway, second, jobs[second])
        # The first tenant's result and agent calls were there to reuse: none were.
        assert answered(gateway) - middle >= calls(results[second])
    assert all(calls(result) >= 1 for result in results.values())
    for tenant, job in jobs.items():
        assert_invisible(gateway, second if tenant == case.first else case.first, job)
