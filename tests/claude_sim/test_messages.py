"""POST /v1/messages through the real SDK: content, tool inputs, streaming, determinism."""

from __future__ import annotations

import json
from typing import Any, Literal

import jsonschema
import pytest
from pydantic import BaseModel, Field

from claude_facts.tokens import count_text
from claude_sim import SimConfig, create_app
from tests.claude_sim.conftest import USER, raw, sdk


class Button(BaseModel):
    """A button."""

    id: str = Field(pattern=r"^cmp-[0-9]+$", description="Component id.")
    label: str = Field(min_length=1, max_length=40)
    variant: Literal["primary", "secondary", "link"] = "primary"


class Section(BaseModel):
    id: str = Field(pattern=r"^sec-[0-9]+$")
    columns: int = Field(ge=1, le=4)
    ratio: float = Field(gt=0, lt=1, multiple_of=0.25)
    buttons: list[Button] = Field(min_length=1, max_length=3)
    anchor: str | None = None
    color: str = Field(pattern=r"^#[0-9a-f]{6}$")
    link: str = Field(json_schema_extra={"format": "uri"})
    published: str = Field(json_schema_extra={"format": "date-time"})
    tags: list[Literal["new", "hot", "sale"]] = Field(
        max_length=3, json_schema_extra={"uniqueItems": True}
    )
    meta: dict[str, int] = Field(default_factory=dict)


SCHEMA = Section.model_json_schema()
TOOL = {"name": "emit_section", "description": "Emit the section.", "input_schema": SCHEMA}


async def test_text_reply_has_usage_and_words_of_the_request(make_sim: Any) -> None:
    _, client = make_sim()
    message = await client.messages.create(model="claude-haiku-4-5", max_tokens=400, messages=USER)
    assert message.stop_reason == "end_turn"
    text = message.content[0].text  # type: ignore[union-attr]
    assert {"pricing", "toggle"} & set(text.lower().replace(".", " ").split())
    assert message.usage.output_tokens == count_text(text)
    assert message.usage.input_tokens > 0
    assert message.id.startswith("msg_")


@pytest.mark.parametrize("seed", range(8))
async def test_forced_tool_input_is_valid_against_a_pydantic_schema(seed: int) -> None:
    app = create_app(SimConfig(speed=200, seed=seed))
    client = sdk(app)
    message = await client.messages.create(
        model="claude-sonnet-5",
        max_tokens=4000,
        tools=[TOOL],
        tool_choice={"type": "tool", "name": "emit_section"},
        messages=[{"role": "user", "content": f"Put two buttons in sec-4 (variant {seed})"}],
    )
    assert message.stop_reason == "tool_use"
    block = message.content[0]
    assert block.type == "tool_use"
    jsonschema.validate(block.input, SCHEMA, format_checker=jsonschema.FormatChecker())
    Section.model_validate(block.input)


async def test_patterned_strings_reuse_ids_from_the_request(make_sim: Any) -> None:
    _, client = make_sim()
    ids = set()
    for i in range(12):
        message = await client.messages.create(
            model="claude-sonnet-5",
            max_tokens=4000,
            tools=[TOOL],
            tool_choice={"type": "any"},
            messages=[{"role": "user", "content": f"Change the buttons of sec-17, try {i}"}],
        )
        ids.add(message.content[0].input["id"])  # type: ignore[union-attr]
    assert "sec-17" in ids


async def test_same_request_same_answer_and_seed_changes_it() -> None:
    async def answer(seed: int) -> str:
        client = sdk(create_app(SimConfig(speed=200, seed=seed)))
        m = await client.messages.create(model="claude-haiku-4-5", max_tokens=300, messages=USER)
        return m.content[0].text  # type: ignore[union-attr]

    assert await answer(1) == await answer(1)
    assert await answer(1) != await answer(2)


async def test_output_is_cut_at_max_tokens(make_sim: Any) -> None:
    _, client = make_sim()
    message = await client.messages.create(model="claude-haiku-4-5", max_tokens=7, messages=USER)
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens <= 7
    tool = await client.messages.create(
        model="claude-sonnet-5",
        max_tokens=20,
        tools=[TOOL],
        tool_choice={"type": "tool", "name": "emit_section"},
        messages=USER,
    )
    assert tool.stop_reason == "max_tokens"
    assert tool.usage.output_tokens <= 20
    assert isinstance(tool.content[0].input, dict)  # type: ignore[union-attr]


async def test_stop_sequence_ends_the_text(make_sim: Any) -> None:
    _, client = make_sim()
    message = await client.messages.create(
        model="claude-haiku-4-5", max_tokens=500, messages=USER, stop_sequences=["toggle"]
    )
    assert message.stop_reason == "stop_sequence"
    assert message.stop_sequence == "toggle"
    assert "toggle" not in message.content[0].text  # type: ignore[union-attr]


async def test_auto_tool_choice_calls_the_named_tool(make_sim: Any) -> None:
    _, client = make_sim()
    other = {**TOOL, "name": "other_tool"}
    message = await client.messages.create(
        model="claude-sonnet-5-5",
        max_tokens=4000,
        tools=[other, TOOL],
        messages=[{"role": "user", "content": "Answer with emit_section for sec-2"}],
    )
    assert message.stop_reason == "tool_use"
    assert message.content[-1].name == "emit_section"  # type: ignore[union-attr]


async def test_streaming_event_sequence_is_exact(make_sim: Any) -> None:
    app, _ = make_sim()
    body = {
        "model": "claude-sonnet-5",
        "max_tokens": 2000,
        "stream": True,
        "tools": [TOOL],
        "tool_choice": {"type": "tool", "name": "emit_section"},
        "messages": USER,
    }
    async with raw(app) as http:
        reply = await http.post(
            "/v1/messages", json=body, headers={"x-api-key": "k", "anthropic-version": "2023-06-01"}
        )
    assert reply.headers["content-type"].startswith("text/event-stream")
    names = [line[7:] for line in reply.text.splitlines() if line.startswith("event: ")]
    datas = [json.loads(line[6:]) for line in reply.text.splitlines() if line.startswith("data: ")]
    assert len(names) == len(datas)
    assert all(d["type"] == n for n, d in zip(names, datas, strict=True))
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(names[3:-3]) == {"content_block_delta"}
    partial = "".join(d["delta"]["partial_json"] for d in datas[3:-3])
    jsonschema.validate(json.loads(partial), SCHEMA)
    assert datas[0]["message"]["content"] == []
    assert datas[-2]["delta"]["stop_reason"] == "tool_use"


async def test_stream_final_message_matches_the_plain_reply(make_sim: Any) -> None:
    _, client = make_sim()
    kwargs: dict[str, Any] = {
        "model": "claude-sonnet-5",
        "max_tokens": 3000,
        "tools": [TOOL],
        "tool_choice": {"type": "auto"},
        "messages": USER,
    }
    plain = await client.messages.create(**kwargs)
    async with client.messages.stream(**kwargs) as stream:
        final = await stream.get_final_message()
    assert final.usage == plain.usage
    assert [b.type for b in final.content] == [b.type for b in plain.content]
    assert final.content[-1].input == plain.content[-1].input  # type: ignore[union-attr]
    assert final.stop_reason == plain.stop_reason


async def test_count_tokens_equals_the_input_usage(make_sim: Any) -> None:
    _, client = make_sim()
    kwargs: dict[str, Any] = {
        "model": "claude-sonnet-5",
        "messages": USER,
        "tools": [TOOL],
        "system": "You design landing pages.",
    }
    counted = await client.messages.count_tokens(**kwargs)
    message = await client.messages.create(max_tokens=100, **kwargs)
    assert counted.input_tokens == message.usage.input_tokens


async def test_models_list_pages_and_get(make_sim: Any) -> None:
    _, client = make_sim()
    first = await client.models.list(limit=2)
    assert len(first.data) == 2
    assert first.has_more
    ids = [m.id async for m in client.models.list(limit=3)]
    assert len(ids) == len(set(ids)) >= 6
    assert "claude-sonnet-5" in ids
    info = await client.models.retrieve("claude-haiku-4-5")
    assert info.display_name == "Claude Haiku 4.5"


def test_a_tool_input_does_not_pick_an_operation_on_an_id_the_request_never_names() -> None:
    import random

    from claude_sim.synth import RequestWords, SchemaFiller

    op = {
        "anyOf": [
            {
                "type": "object",
                "required": ["op", "section_id"],
                "properties": {
                    "op": {"const": "remove_section"},
                    "section_id": {"type": "string", "pattern": "^sec-[0-9]+$"},
                },
            },
            {
                "type": "object",
                "required": ["op", "name"],
                "properties": {"op": {"const": "add_section"}, "name": {"type": "string"}},
            },
        ]
    }
    empty = RequestWords(["Start a page for a bakery; the page has no sections yet"])
    picked = {SchemaFiller(op, empty, random.Random(s)).fill()["op"] for s in range(40)}
    assert picked == {"add_section"}
    named = RequestWords(["Drop sec-4 from the page"], salient=["remove the section sec-4"])
    picked = {SchemaFiller(op, named, random.Random(s)).fill()["op"] for s in range(40)}
    assert "remove_section" in picked
