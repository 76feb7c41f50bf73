"""Injected faults, each at its configured rate and deterministic by seed."""

from __future__ import annotations

import asyncio
import time

import anthropic
import httpx2
import jsonschema
import pytest

from claude_sim import FaultRates, SimConfig, create_app
from tests.claude_sim.conftest import USER, raw, sdk, served

TOOL = {
    "name": "emit",
    "input_schema": {
        "type": "object",
        "required": ["title", "count"],
        "properties": {"title": {"type": "string"}, "count": {"type": "integer", "minimum": 0}},
    },
}


def faulty(**rates: float) -> SimConfig:
    return SimConfig(speed=200, faults=FaultRates(**rates))  # type: ignore[arg-type]


async def test_overloaded_and_api_error_map_to_sdk_exceptions() -> None:
    with pytest.raises(anthropic.OverloadedError) as over:
        await sdk(create_app(faulty(overloaded=1))).messages.create(
            model="claude-haiku-4-5", max_tokens=10, messages=USER
        )
    assert over.value.status_code == 529
    with pytest.raises(anthropic.InternalServerError) as err:
        await sdk(create_app(faulty(api_error=1))).messages.create(
            model="claude-haiku-4-5", max_tokens=10, messages=USER
        )
    assert err.value.status_code == 500
    assert err.value.body["error"]["type"] == "api_error"  # type: ignore[index]


async def test_sdk_retries_an_overloaded_reply_once_it_clears() -> None:
    config = SimConfig(speed=200, faults=FaultRates(overloaded=0.5), seed=3)
    app = create_app(config)
    client = sdk(app, max_retries=5)
    for _ in range(4):
        await client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=USER)


async def test_stream_error_event_mid_stream_raises_in_the_sdk() -> None:
    client = sdk(create_app(faulty(stream_error=1)))
    received: list[str] = []

    async def consume() -> None:
        async with client.messages.stream(
            model="claude-haiku-4-5", max_tokens=300, messages=USER
        ) as stream:
            async for event in stream:
                received.append(event.type)

    with pytest.raises(anthropic.APIStatusError) as err:
        await consume()
    assert "content_block_delta" in received, "the error came before any content"
    assert "api_error" in str(err.value.body)


async def test_dropped_connection_over_a_real_socket() -> None:
    async with served(faulty(dropped_connection=1)) as url:
        client = anthropic.AsyncAnthropic(api_key="k", base_url=url, max_retries=0)
        with pytest.raises(anthropic.APIConnectionError):
            await client.messages.create(model="claude-haiku-4-5", max_tokens=300, messages=USER)
        # Mid-stream, the SDK lets the transport's own error through unwrapped.
        with pytest.raises(httpx2.RemoteProtocolError):
            async with client.messages.stream(
                model="claude-haiku-4-5", max_tokens=300, messages=USER
            ) as stream:
                await stream.get_final_message()
        await client.close()


async def test_slow_response_multiplies_latency() -> None:
    async def elapsed(config: SimConfig) -> float:
        client = sdk(create_app(config))
        started = time.monotonic()
        await client.messages.create(model="claude-sonnet-5", max_tokens=40, messages=USER)
        return time.monotonic() - started

    base = SimConfig(speed=8)
    slow = SimConfig(speed=8, faults=FaultRates(slow_response=1, slow_factor=5))
    assert await elapsed(slow) > 3 * await elapsed(base)


async def test_invalid_tool_input_violates_the_schema() -> None:
    client = sdk(create_app(faulty(invalid_tool_input=1)))
    message = await client.messages.create(
        model="claude-sonnet-5",
        max_tokens=500,
        tools=[TOOL],
        tool_choice={"type": "tool", "name": "emit"},
        messages=USER,
    )
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(message.content[0].input, TOOL["input_schema"])  # type: ignore[union-attr]


async def test_an_injected_reply_writes_the_payloads_into_its_strings() -> None:
    payload = "<img src=x onerror=alert(1)>"
    config = SimConfig(
        speed=200, faults=FaultRates(injected_output=1), injection_payloads=(payload,)
    )
    app = create_app(config)
    client = sdk(app)
    tool = {
        "name": "emit",
        "input_schema": {
            "type": "object",
            "required": ["titles"],
            "properties": {
                "titles": {"type": "array", "minItems": 12, "items": {"type": "string"}}
            },
        },
    }
    message = await client.messages.create(
        model="claude-sonnet-5",
        max_tokens=500,
        tools=[tool],
        tool_choice={"type": "tool", "name": "emit"},
        messages=USER,
    )
    titles = message.content[0].input["titles"]  # type: ignore[union-attr]
    assert payload in titles
    assert any(t != payload for t in titles), "about half, not all"
    faults = [m.faults["injected_output"] for m in app.state.api.stats.models.values()]
    assert sum(faults) == 1


async def outcomes(seed: int, n: int = 40) -> list[str]:
    client = sdk(
        create_app(
            SimConfig(speed=500, seed=seed, faults=FaultRates(overloaded=0.3, api_error=0.2))
        )
    )

    async def one() -> str:
        try:
            await client.messages.create(model="claude-haiku-4-5", max_tokens=5, messages=USER)
        except anthropic.APIStatusError as exc:
            return str(exc.status_code)
        return "ok"

    return [await one() for _ in range(n)]


async def test_faults_follow_their_rates_and_repeat_by_seed() -> None:
    first, again, other = await asyncio.gather(outcomes(7), outcomes(7), outcomes(8))
    assert first == again
    assert first != other
    assert 4 <= first.count("529") <= 20
    assert first.count("ok") >= 10


async def test_stats_count_faults_and_hide_keys() -> None:
    app = create_app(faulty(overloaded=1))
    with pytest.raises(anthropic.OverloadedError):
        await sdk(app, key="sk-secret-value").messages.create(
            model="claude-haiku-4-5", max_tokens=5, messages=USER
        )
    async with raw(app) as http:
        stats = (await http.get("/sim/stats")).json()
        assert "sk-secret-value" not in str(stats)
        (entry,) = stats["keys"].values()
        assert entry["models"]["claude-haiku-4-5"]["faults"] == {"overloaded": 1}
        assert entry["models"]["claude-haiku-4-5"]["errors"] == {"529": 1}
        await http.post("/sim/reset")
        assert (await http.get("/sim/stats")).json()["keys"] == {}


async def test_stats_count_the_same_request_answered_twice_but_not_a_failed_one() -> None:
    app = create_app(SimConfig(speed=200, seed=3, faults=FaultRates(stream_error=0.5)))
    client = sdk(app)
    answered: list[str] = []
    failed = 0
    for text in ["first"] * 6 + ["second", "third"]:
        message = [{"role": "user", "content": text}]
        try:
            async with client.messages.stream(
                model="claude-haiku-4-5", max_tokens=40, messages=message
            ) as stream:
                await stream.get_final_message()
            answered.append(text)
        except anthropic.APIStatusError:
            failed += 1
    async with raw(app) as http:
        replies = (await http.get("/sim/stats")).json()["replies"]
    assert failed > 0
    assert answered.count("first") > 1
    assert replies["distinct"] == len(set(answered))
    assert replies["repeated"] == len(answered) - len(set(answered))
