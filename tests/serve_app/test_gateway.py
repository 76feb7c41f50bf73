"""The gateway over real HTTP: Ray Serve, the agent pools, the budget keeper, claude_sim."""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx2
import pytest

from agents.page import Page
from agents.samples import landing_page
from tests.serve_app.conftest import Gateway, generate, held_styles_job, parse_sse, user

pytestmark = pytest.mark.ray

EDIT = "Change the primary colour to dark green"
NEW_PAGE = "Create a landing page for a bakery with a hero, a product grid and a contact form"


def test_every_deployment_is_healthy(gateway: Gateway) -> None:
    from ray import serve

    status = serve.status()
    gateway_app = status.applications["gateway"]
    names = set(gateway_app.deployments)
    assert "ingress" in names
    assert {f"agent_{a}" for a in ("layout_analyzer", "component_generator", "review")} <= names
    assert len(names) == 10
    assert all(d.status == "HEALTHY" for d in gateway_app.deployments.values())
    assert status.applications["claude-sim"].status == "RUNNING"


def test_new_page_streams_accepted_stages_and_one_result(gateway: Gateway) -> None:
    reply = generate(
        gateway, f"page-{uuid.uuid4().hex[:6]}", {"instruction": NEW_PAGE, "user_id": user()}
    )
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(reply.text)
    ids = [e[0] for e in events]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    kinds = [e[1] for e in events]
    assert kinds[0] == "accepted"
    assert kinds[-1] == "result"
    assert kinds.count("result") == 1
    assert "error" not in kinds
    accepted = events[0][2]
    assert "layout_generator" in accepted["plan"]
    assert 0.0 < accepted["confidence"] <= 1.0
    assert accepted["deduplicated"] is False
    stages = [e[2] for e in events if e[1] == "stage"]
    assert {s["agent"] for s in stages if s["status"] == "completed"} == set(accepted["plan"])
    result = events[-1][2]
    page = Page.model_validate(result["page"])
    assert page.sections
    assert result["usage"]["total"]["cost_usd"] > 0
    assert result["cached"] is False


def test_edit_in_job_mode_then_status_events_and_resume(gateway: Gateway) -> None:
    page = landing_page("acme").model_dump(mode="json")
    reply = generate(
        gateway, "acme", {"instruction": EDIT, "page": page, "stream": False, "user_id": user()}
    )
    assert reply.status_code == 202
    job = reply.json()
    assert job["status_url"] == f"/v1/jobs/{job['job_id']}"
    with gateway.client() as http:
        deadline = time.monotonic() + 120
        while (status := http.get(job["status_url"]).json())["status"] not in (
            "succeeded",
            "failed",
        ):
            assert time.monotonic() < deadline
            time.sleep(0.5)
        assert status["status"] == "succeeded"
        assert status["result"]["patch"], "an edit comes with its JSON Patch"
        everything = parse_sse(http.get(job["events_url"]).text)
        resumed = parse_sse(http.get(job["events_url"], headers={"Last-Event-ID": "2"}).text)
    assert everything[0][1] == "accepted"
    assert [e[0] for e in resumed] == [e[0] for e in everything if e[0] > 2]
    assert resumed[-1][1] == "result"


def wide_page(sections: int) -> dict[str, Any]:
    return {
        "id": "wide",
        "title": "A page",
        "sections": [
            {"id": f"sec-{i}", "name": f"S{i}", "role": "content"} for i in range(1, sections + 1)
        ],
    }


def link_page(href: str) -> dict[str, Any]:
    page = wide_page(1)
    button = {"label": "Go", "action": "link", "href": href}
    page["sections"][0]["components"] = [{"id": "cmp-1", "type": "button", "props": button}]
    return page


def long_text_page(chars: int) -> dict[str, Any]:
    page = wide_page(1)
    page["sections"][0]["components"] = [
        {"id": "cmp-1", "type": "text", "props": {"content": "t" * chars}}
    ]
    return page


def deep_page(depth: int) -> dict[str, Any]:
    card = {"type": "card", "props": {"title": "Nested"}}
    component: dict[str, Any] = {"id": f"cmp-{depth}", **card}
    for level in range(depth - 1, 0, -1):
        component = {"id": f"cmp-{level}", **card, "children": [component]}
    page = wide_page(1)
    page["sections"][0]["components"] = [component]
    return page


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({}, 422, "instruction"),
        ({"instruction": ""}, 422, "instruction"),
        ({"instruction": "x" * 4001}, 422, "instruction"),
        ({"instruction": "hi", "colour": "red"}, 422, "colour"),
        ({"instruction": "hi", "page": {"sections": "nope"}}, 422, "page"),
        ({"instruction": "hi", "agents": ["magic"]}, 422, "agents"),
        ({"instruction": "hi", "priority": "urgent"}, 422, "priority"),
        ({"instruction": "hi", "page": deep_page(8)}, 422, "nest"),
        ({"instruction": "hi", "page": wide_page(41)}, 422, "sections"),
        ({"instruction": "hi", "page": long_text_page(5000)}, 422, "characters"),
        ({"instruction": "hi", "page": link_page("javascript:alert(1)")}, 422, "href"),
        ({"instruction": "hi", "page": link_page("java&#x09;script:alert(1)")}, 422, "href"),
    ],
)
def test_bad_bodies_get_json_errors(
    gateway: Gateway, body: dict[str, Any], status: int, fragment: str
) -> None:
    reply = generate(gateway, "bad", body)
    assert reply.status_code == status
    error = reply.json()["error"]
    assert error["type"] == "invalid_request"
    assert fragment in json.dumps(error)


@pytest.mark.parametrize("page_id", ["p" * 121, "has space", "semi;colon", "dots..ok..but.ü"])
def test_a_bad_page_id_is_refused_before_any_job_starts(gateway: Gateway, page_id: str) -> None:
    for stream in (True, False):
        reply = generate(gateway, page_id, {"instruction": "Add a footer", "stream": stream})
        assert reply.status_code == 422, reply.text
        assert reply.json()["error"]["type"] == "invalid_request"
    with gateway.client() as http:
        seed = http.post("/agent/page", json={"page_id": page_id, "instruction": "Add a footer"})
    assert seed.status_code == 422
    assert "page_id" in seed.text


def test_a_body_without_content_length_is_capped_as_it_arrives(gateway: Gateway) -> None:
    def chunks() -> Any:
        yield b'{"instruction": "hi", "user_id": "'
        for _ in range(300):
            yield b"x" * 10_000
        yield b'"}'

    with gateway.client() as http:
        reply = http.post("/v1/pages/chunked/generate", content=chunks())
    assert reply.status_code == 413
    assert reply.json()["error"]["type"] == "payload_too_large"


def test_oversized_body_unknown_job_and_route(gateway: Gateway) -> None:
    big = generate(gateway, "big", {"instruction": "hi", "user_id": "x" * 3_000_000})
    assert big.status_code == 413
    assert big.json()["error"]["type"] == "payload_too_large"
    with gateway.client() as http:
        missing = http.get("/v1/jobs/job_nope")
        route = http.get("/v1/nothing")
        broken = http.post("/v1/pages/p/generate", content=b"{not json")
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "not_found"
    assert route.status_code == 404
    assert route.json()["error"]["type"] == "not_found"
    assert broken.status_code == 422


def test_per_user_rate_limit_with_retry_after(gateway: Gateway) -> None:
    who = user()
    page = landing_page("rl").model_dump(mode="json")
    statuses = []
    for i in range(6):
        reply = generate(
            gateway,
            f"rl-{i}",
            {
                "instruction": f"{EDIT} {i}",
                "page": page,
                "user_id": who,
                "stream": False,
                "agents": ["styles"],
            },
        )
        statuses.append(reply.status_code)
    assert statuses == [202] * 5 + [429]
    assert int(reply.headers["Retry-After"]) >= 1
    assert reply.headers["RateLimit-Policy"] == "5;w=60"
    assert "remaining=0" in reply.headers["RateLimit"]
    assert reply.json()["error"]["type"] == "rate_limited"
    other = generate(
        gateway,
        "rl-other",
        {
            "instruction": EDIT,
            "page": page,
            "user_id": user(),
            "stream": False,
            "agents": ["styles"],
        },
    )
    assert other.status_code == 202


def test_timeout_headers_from_clients_do_not_lift_our_limits(gateway: Gateway) -> None:
    who = user()
    escape = {"x-request-timeout-seconds": "0", "x-request-disconnect-disabled": "?1"}
    page = landing_page("esc").model_dump(mode="json")
    codes = [
        generate(
            gateway,
            f"esc-{i}",
            {"instruction": f"{EDIT} {i}", "page": page, "user_id": who, "agents": ["styles"]},
            headers=escape,
        ).status_code
        for i in range(6)
    ]
    assert codes == [200] * 5 + [429]


def test_identical_request_in_flight_attaches_to_the_running_job(gateway: Gateway) -> None:
    who = user()
    body = {"instruction": NEW_PAGE, "user_id": who}
    page_id = f"dup-{uuid.uuid4().hex[:6]}"
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(generate, gateway, page_id, body)
        time.sleep(0.5)
        second = pool.submit(generate, gateway, page_id, body)
        a, b = parse_sse(first.result().text), parse_sse(second.result().text)
    assert a[0][2]["job_id"] == b[0][2]["job_id"]
    assert b[0][2]["deduplicated"] is True
    assert a[-1][1] == b[-1][1] == "result"


def test_repeat_is_answered_from_the_result_cache(gateway: Gateway) -> None:
    page = landing_page("cache").model_dump(mode="json")
    body = {"instruction": "Make the hero headline bigger", "page": page, "user_id": user()}
    first = parse_sse(generate(gateway, "cache", body).text)
    before = gateway.sim_stats()
    again = parse_sse(generate(gateway, "cache", {**body, "user_id": user()}).text)
    after = gateway.sim_stats()
    assert first[-1][1] == "result"
    assert again[0][2]["cached"] is True
    assert again[-1][2]["cached"] is True
    assert again[-1][2]["page"] == first[-1][2]["page"]
    assert _requests(after) == _requests(before), "no upstream call for a cached result"


def test_tenants_see_neither_each_others_jobs_nor_cached_results(gateway: Gateway) -> None:
    page = landing_page("tenants").model_dump(mode="json")
    body = {"instruction": "Make the footer text smaller", "page": page, "agents": ["styles"]}
    first = parse_sse(generate(gateway, "tenants", body).text)
    assert first[-1][1] == "result"
    job_id = first[0][2]["job_id"]
    with gateway.client("globex") as other:
        for reply in (
            other.get(f"/v1/jobs/{job_id}"),
            other.get(f"/v1/jobs/{job_id}/events"),
            other.delete(f"/v1/jobs/{job_id}"),
        ):
            assert reply.status_code == 404, reply.text
            assert reply.json()["error"]["type"] == "not_found"
        theirs = parse_sse(other.post("/v1/pages/tenants/generate", json=body).text)
    # The same request from another tenant is computed afresh, never served from acme's cache.
    assert theirs[0][2]["cached"] is False
    assert theirs[-1][1] == "result"
    assert theirs[-1][2]["cached"] is False
    ours = parse_sse(generate(gateway, "tenants", body).text)
    assert ours[-1][2]["cached"] is True
    with gateway.client(None) as anonymous:
        refused = anonymous.post("/v1/pages/tenants/generate", json=body)
    assert refused.status_code == 401
    assert refused.json()["error"]["type"] == "authentication_error"


def test_identical_agent_calls_in_flight_share_one_upstream_call(gateway: Gateway) -> None:
    page = landing_page("sf").model_dump(mode="json")
    body = {
        "instruction": "Add a subtle fade-in to the testimonials",
        "page": page,
        "agents": ["animation"],
    }
    solo = _requests(gateway.sim_stats())
    parse_sse(generate(gateway, "sf-solo", {**body, "user_id": user()}).text)
    per_generation = _requests(gateway.sim_stats()) - solo
    before = _requests(gateway.sim_stats())
    with ThreadPoolExecutor(4) as pool:
        replies = list(
            pool.map(lambda _: generate(gateway, "sf", {**body, "user_id": user()}), range(4))
        )
    assert all(parse_sse(r.text)[-1][1] == "result" for r in replies)
    assert _requests(gateway.sim_stats()) - before <= per_generation


def test_cancel_ends_the_stream_with_a_cancelled_error(gateway: Gateway) -> None:
    # Held waiting for budget, so the cancel lands while it runs, whatever earlier tests
    # left in the caches.
    page_id = f"cancel-{uuid.uuid4().hex[:6]}"
    with held_styles_job(gateway, page_id) as (job, _), gateway.client() as http:
        cancelled = http.delete(job["status_url"])
        assert cancelled.status_code == 202
        assert cancelled.json()["status"] == "cancelling", "the job was still running"
    with gateway.client() as http:
        events = parse_sse(http.get(job["events_url"]).text)
        status = http.get(job["status_url"]).json()
    assert events[-1][1] == "error"
    assert events[-1][2]["type"] == "cancelled"
    assert status["status"] == "cancelled"


def test_tight_budget_many_users_no_upstream_429_nothing_lost(gateway: Gateway) -> None:
    page = landing_page("load").model_dump(mode="json")
    before = gateway.sim_stats()
    bodies = [
        {"instruction": f"Add a FAQ section with {n} questions", "page": page, "user_id": user()}
        for n in range(3, 13)
    ]
    with ThreadPoolExecutor(len(bodies)) as pool:
        replies = list(pool.map(lambda b: generate(gateway, f"load-{b['user_id']}", b), bodies))
    finals = [parse_sse(r.text)[-1] for r in replies]
    assert [f[1] for f in finals] == ["result"] * len(bodies), [f[2] for f in finals]
    after = gateway.sim_stats()
    assert _rate_limited(after) == _rate_limited(before) == 0


def test_deployed_keeper_serves_a_light_tenant_between_a_heavy_tenants_calls(
    gateway: Gateway,
) -> None:
    import asyncio

    import ray

    from serve_app.call_demand import CallDemand
    from serve_app.keeper import KEEPER_NAME
    from serve_app.singleton import NAMESPACE

    keeper = ray.get_actor(KEEPER_NAME, namespace=NAMESPACE)

    async def scenario() -> list[str]:
        # The opus pool is configured tiny and unused by the pipeline: the calls below are
        # the only ones in it, so grant order is the keeper's fairness alone.
        order: list[str] = []

        async def call(call_id: str, who: str) -> None:
            demand = CallDemand(call_id, "opus", 1, 1, user=who, tenant=who, job_id=call_id)
            await keeper.acquire.remote(demand, 60)
            order.append(who)

        # Empty the bucket first, so the calls below must queue.
        await asyncio.gather(
            *(keeper.acquire.remote(CallDemand(f"drain-{i}", "opus", 1, 1), 60) for i in range(117))
        )
        heavy = [asyncio.create_task(call(f"fair-h{i}", "heavy")) for i in range(12)]
        await asyncio.sleep(0.5)
        light = asyncio.create_task(call("fair-l", "light"))
        await asyncio.gather(light, *heavy)
        return order

    order = asyncio.run(scenario())
    heavy_before = order.index("light")
    assert heavy_before <= 4, order
    assert len(order) == 13


def _new_pages_metered(gateway: Gateway) -> int:
    with gateway.client("globex") as http:
        metered = http.get("/v1/capacity").json()["usage_per_generation"]
    return int(metered.get("new_page", {}).get("generations", 0))


def test_capacity_shows_an_operator_every_pool_and_a_tenant_only_its_own_share(
    gateway: Gateway,
) -> None:
    before = _new_pages_metered(gateway)
    reply = generate(gateway, "cap", {"instruction": "Add a footer", "user_id": user()})
    assert parse_sse(reply.text)[-1][1] == "result"
    with gateway.client("acme") as http:
        mine = http.get("/v1/capacity").json()
    assert mine["tenant"] == "acme"
    assert set(mine) == {"tenant", "admission", "quota"}
    assert "globex" not in json.dumps(mine)
    with gateway.client("globex") as http:
        capacity = http.get("/v1/capacity").json()
    assert isinstance(capacity["tenants"], dict)
    sonnet = capacity["pools"]["sonnet"]
    assert sonnet["limits"]["requests"] == pytest.approx(120 * 0.98)
    assert "1m" in sonnet["utilisation"]
    assert "queue_depth" in sonnet
    # The generation above (no page given: a new page) is metered for capacity planning
    # once its job has wound up, just after its result was sent.
    deadline = time.monotonic() + 30
    while _new_pages_metered(gateway) <= before and time.monotonic() < deadline:
        time.sleep(0.5)
    with gateway.client("globex") as http:
        metered = http.get("/v1/capacity").json()["usage_per_generation"]["new_page"]
    assert metered["generations"] > before
    assert sum(p["requests"] for p in metered["totals"].values()) >= metered["generations"]
    assert "usage_per_generation" not in mine


def _requests(stats: dict[str, Any]) -> int:
    return sum(m["requests"] for k in stats["keys"].values() for m in k["models"].values())


def _rate_limited(stats: dict[str, Any]) -> int:
    return sum(
        m["rate_limited_total"] for k in stats["keys"].values() for m in k["models"].values()
    )


def test_prometheus_metrics_are_exported(gateway: Gateway) -> None:
    generate(
        gateway,
        "metrics",
        {"instruction": EDIT, "user_id": user(), "page": landing_page("m").model_dump(mode="json")},
    )
    deadline = time.monotonic() + 60
    text = ""
    while time.monotonic() < deadline:
        text = httpx2.get(gateway.metrics_url, timeout=10).text
        if "ray_nocode_generations_total" in text and "ray_nocode_claude_tokens_total" in text:
            break
        time.sleep(2)
    assert "ray_nocode_generations_total{" in text
    assert 'status="succeeded"' in text
    assert "ray_nocode_claude_tokens_total" in text
    assert "ray_nocode_budget_wait_seconds" in text


def wait_for_held_call(keeper: Any, pool: str, events: list[Any]) -> dict[str, Any]:
    """The keeper's snapshot once a call waits in ``pool``'s queue: the stage's call has
    then reached its replica, so a kill lands in flight (a stage that has only started may
    still be on its way there on a loaded machine). Fails if none has queued within two
    minutes, with the job's events and the keeper's grants: a kill then would find nothing
    in flight to retry, and fresh-clone CI on a machine running other work once saw none
    queue within one."""
    import ray

    started = time.monotonic()
    while True:
        seen: dict[str, Any] = ray.get(keeper.snapshot.remote())
        if seen["pools"][pool]["queue_depth"] >= 1:
            return seen
        waited = time.monotonic() - started
        grants = {k: seen[k] for k in ("grants_total", "grants_open", "leases_out")}
        assert waited < 120, (
            f"no call queued in {pool} after {waited:.0f} s: {seen['pools'][pool]}; "
            f"{grants}; events so far: {events}"
        )
        time.sleep(0.1)


def test_a_stage_whose_replica_dies_is_retried_on_another(gateway: Gateway) -> None:
    import ray

    # Held in its styles stage (the haiku pool paused), so the kill below lands while the
    # stage is in flight rather than after it; released once the replica is dead.
    from serve_app.keeper import KEEPER_NAME
    from serve_app.singleton import NAMESPACE

    keeper = ray.get_actor(KEEPER_NAME, namespace=NAMESPACE)
    page_id = f"kill-{uuid.uuid4().hex[:6]}"
    events: list[tuple[int, str, dict[str, Any]]] = []
    seen: dict[str, Any] = {}
    with (
        held_styles_job(gateway, page_id) as (job, hold),
        gateway.client() as http,
        http.stream("GET", job["events_url"]) as stream,
    ):
        killed = False
        buffer = ""
        for chunk in stream.iter_text():
            buffer += chunk
            *blocks, buffer = buffer.split("\n\n")
            events += parse_sse("\n\n".join(blocks))
            started = any(e[1] == "stage" and e[2]["agent"] == "styles" for e in events)
            if started and not killed:
                seen = wait_for_held_call(keeper, "haiku", events)
                for actor in ray.util.list_named_actors(all_namespaces=True):
                    if "#agent_styles#" in actor["name"]:
                        ray.kill(ray.get_actor(actor["name"], namespace=actor["namespace"]))
                        killed = True
                hold.release()
    assert killed, "found no replica of agent_styles"
    kinds = [e[1] for e in events]
    assert kinds[-1] == "result", events[-1]
    styles = [e[2] for e in events if e[1] == "stage" and e[2]["agent"] == "styles"]
    told = [(s["status"], s["emitted_at"]) for s in styles]
    assert any(s["status"] == "retrying" for s in styles), (
        f"{told}; haiku: {seen['pools']['haiku']}"
    )
    assert styles[-1]["status"] == "completed", styles


def test_the_api_docs_are_served_with_the_page_id_rule(gateway: Gateway) -> None:
    with gateway.client(None) as http:
        schema = http.get("/openapi.json")
        ui = http.get("/docs")
    assert schema.status_code == 200
    route = schema.json()["paths"]["/v1/pages/{page_id}/generate"]["post"]
    (page_id,) = [p for p in route["parameters"] if p["name"] == "page_id"]
    assert page_id["schema"]["pattern"] == "^[A-Za-z0-9._-]{1,120}$"
    assert ui.status_code == 200
    assert "swagger" in ui.text.lower()


def test_a_tenant_at_its_quota_is_refused_while_another_is_served(gateway: Gateway) -> None:
    body = {"instruction": "Add a footer", "stream": False, "agents": ["styles"]}
    page = landing_page("quota").model_dump(mode="json")
    replies = []
    with gateway.client("initech") as http:
        for i in range(3):
            instruction = f"Make the footer darker ({uuid.uuid4().hex[:6]} {i})"
            replies.append(
                http.post(
                    "/v1/pages/quota/generate",
                    json={**body, "instruction": instruction, "user_id": user(), "page": page},
                )
            )
    assert [r.status_code for r in replies[:2]] == [202, 202]
    refused = replies[2]
    assert refused.status_code == 429
    assert refused.json()["error"]["type"] == "quota_exceeded"
    assert int(refused.headers["retry-after"]) >= 1
    assert "ratelimit-policy" in refused.headers
    other = generate(
        gateway, "quota", {**body, "instruction": "Make the footer darker", "user_id": user()}
    )
    assert other.status_code == 202, other.text
