"""Bad requests get the real API's statuses and error bodies, and the SDK's matching exceptions."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

from claude_sim import SimConfig, create_app
from tests.claude_sim.conftest import USER, raw, sdk

HEADERS = {"x-api-key": "sk-test", "anthropic-version": "2023-06-01"}
BASE = {"model": "claude-sonnet-5", "max_tokens": 100, "messages": USER}
TOOL = {"name": "t", "input_schema": {"type": "object", "properties": {}}}


async def post(body: Any, headers: dict[str, str] | None = None, **config: Any) -> Any:
    app = create_app(SimConfig.model_validate({"speed": 200, **config}))
    async with raw(app) as http:
        return await http.post(
            "/v1/messages", json=body, headers=HEADERS if headers is None else headers
        )


def cc(ttl: str = "5m") -> dict[str, str]:
    return {"type": "ephemeral", "ttl": ttl}


@pytest.mark.parametrize(
    ("patch", "fragment"),
    [
        ({"max_tokens": None}, "max_tokens: Field required"),
        ({"messages": []}, "messages: List should have at least 1 item"),
        ({"messages": [{"role": "system", "content": "x"}]}, "messages.0.role"),
        ({"max_tokens": 0}, "max_tokens: Input should be greater than or equal to 1"),
        ({"bogus": 1}, "bogus: Extra inputs are not permitted"),
        ({"max_tokens": 999_999}, "maximum allowed number of output tokens"),
        ({"tools": [TOOL], "tool_choice": {"type": "tool", "name": "nope"}}, "'nope' not found"),
        ({"tool_choice": {"type": "any"}}, "only be specified while providing tools"),
        ({"tools": [TOOL, TOOL]}, "Tool names must be unique"),
        (
            {
                "system": [
                    {"type": "text", "text": f"s{i}", "cache_control": cc()} for i in range(5)
                ]
            },
            "A maximum of 4 blocks with cache_control may be provided. Found 5.",
        ),
        (
            {
                "system": [
                    {"type": "text", "text": "a", "cache_control": cc("5m")},
                    {"type": "text", "text": "b", "cache_control": cc("1h")},
                ]
            },
            "ttl='1h'",
        ),
        (
            {"model": "claude-sonnet-5-5", "tools": [TOOL], "tool_choice": {"type": "any"}},
            "forced tool use",
        ),
    ],
)
async def test_invalid_bodies_are_400_with_the_api_message(
    patch: dict[str, Any], fragment: str
) -> None:
    body = {**BASE, **patch}
    body = {k: v for k, v in body.items() if v is not None}
    reply = await post(body)
    assert reply.status_code == 400
    payload = reply.json()
    assert payload["type"] == "error"
    assert payload["error"]["type"] == "invalid_request_error"
    assert fragment in payload["error"]["message"]
    assert payload["request_id"].startswith("req_")


async def test_malformed_json_is_400() -> None:
    app = create_app(SimConfig(speed=200))
    async with raw(app) as http:
        reply = await http.post("/v1/messages", content=b"{nope", headers=HEADERS)
    assert reply.status_code == 400
    assert "parsing the body" in reply.json()["error"]["message"]


async def test_sampling_parameters_depend_on_the_api_version() -> None:
    body = {**BASE, "temperature": 0.5}
    old = await post(body)
    new = await post(body, {**HEADERS, "anthropic-version": "2026-10-21"})
    assert old.status_code == 200
    assert new.status_code == 400
    assert "temperature" in new.json()["error"]["message"]


@pytest.mark.parametrize(
    ("headers", "status", "kind"),
    [
        ({"anthropic-version": "2023-06-01"}, 401, "authentication_error"),
        ({"x-api-key": "wrong", "anthropic-version": "2023-06-01"}, 401, "authentication_error"),
        ({"x-api-key": "sk-good"}, 400, "invalid_request_error"),
        ({"x-api-key": "sk-good", "anthropic-version": "1999-01-01"}, 400, "invalid_request_error"),
    ],
)
async def test_auth_and_version_headers(headers: dict[str, str], status: int, kind: str) -> None:
    reply = await post(BASE, headers, api_keys=["sk-good"])
    assert reply.status_code == status
    assert reply.json()["error"]["type"] == kind
    assert "sk-good" not in reply.text
    assert "wrong" not in reply.text


async def test_bearer_auth_is_accepted() -> None:
    reply = await post(
        BASE,
        {"authorization": "Bearer sk-good", "anthropic-version": "2023-06-01"},
        api_keys=["sk-good"],
    )
    assert reply.status_code == 200


async def test_sdk_maps_statuses_to_its_exceptions() -> None:
    app = create_app(SimConfig(speed=200, api_keys=["sk-good"]))
    with pytest.raises(anthropic.AuthenticationError):
        await sdk(app, key="sk-bad").messages.create(**BASE)
    with pytest.raises(anthropic.NotFoundError) as err:
        await sdk(app, key="sk-good").messages.create(**{**BASE, "model": "claude-nope-1"})
    assert err.value.status_code == 404
    assert "claude-nope-1" in err.value.message
    with pytest.raises(anthropic.BadRequestError):
        await sdk(app, key="sk-good").messages.create(**{**BASE, "messages": []})


async def test_oversized_body_is_413() -> None:
    reply = await post({**BASE, "system": "x" * 3000}, max_request_bytes=2048)
    assert reply.status_code == 413
    assert reply.json()["error"]["type"] == "request_too_large"


async def test_prompt_over_the_context_window_is_400() -> None:
    reply = await post({**BASE, "model": "claude-haiku-4-5", "system": "word " * 210_000})
    assert reply.status_code == 400
    assert "prompt is too long" in reply.json()["error"]["message"]


async def test_unknown_routes_and_methods_answer_json_errors() -> None:
    app = create_app(SimConfig(speed=200))
    async with raw(app) as http:
        missing = await http.get("/v1/nothing", headers=HEADERS)
        wrong = await http.get("/v1/messages", headers=HEADERS)
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "not_found_error"
    assert wrong.status_code == 405
    assert wrong.json()["type"] == "error"
