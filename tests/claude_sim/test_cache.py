"""Prompt caching: prefixes, breakpoints, minimum lengths, TTLs, and when an entry is readable."""

from __future__ import annotations

import asyncio
from typing import Any

from claude_sim import SimConfig, create_app
from claude_sim.cache import PromptCache
from claude_sim.prompt import prompt_blocks
from claude_sim.request import parse_count_tokens
from tests.claude_sim.conftest import USER, long_text, sdk

EPHEMERAL = {"type": "ephemeral"}


def system(tokens: int, ttl: str = "5m") -> list[dict[str, Any]]:
    return [
        {
            "type": "text",
            "text": long_text(tokens),
            "cache_control": {"type": "ephemeral", "ttl": ttl},
        }
    ]


async def test_second_request_reads_the_prefix_the_first_wrote(make_sim: Any) -> None:
    _, client = make_sim()
    kwargs: dict[str, Any] = {
        "model": "claude-sonnet-5",
        "max_tokens": 20,
        "system": system(2_000),
        "messages": USER,
    }
    first = await client.messages.create(**kwargs)
    second = await client.messages.create(**kwargs)
    assert first.usage.cache_read_input_tokens == 0
    assert first.usage.cache_creation_input_tokens == 2_000 + 3
    assert first.usage.cache_creation.ephemeral_5m_input_tokens == 2_003  # type: ignore[union-attr]
    assert second.usage.cache_creation_input_tokens == 0
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
    assert second.usage.input_tokens == first.usage.input_tokens
    total = first.usage.input_tokens + first.usage.cache_creation_input_tokens
    assert (
        await client.messages.count_tokens(
            model="claude-sonnet-5", system=system(2_000), messages=USER
        )
    ).input_tokens == total


async def test_parallel_request_sent_before_the_first_started_misses() -> None:
    app = create_app(SimConfig(speed=10))
    client = sdk(app)
    kwargs: dict[str, Any] = {
        "model": "claude-sonnet-5",
        "max_tokens": 20,
        "system": system(2_000),
        "messages": USER,
    }
    a, b = await asyncio.gather(client.messages.create(**kwargs), client.messages.create(**kwargs))
    assert a.usage.cache_read_input_tokens == b.usage.cache_read_input_tokens == 0
    assert a.usage.cache_creation_input_tokens == b.usage.cache_creation_input_tokens > 0
    c = await client.messages.create(**kwargs)
    assert c.usage.cache_read_input_tokens == a.usage.cache_creation_input_tokens


async def test_prefix_below_the_model_minimum_is_not_cached(make_sim: Any) -> None:
    _, client = make_sim()
    for model, size, cached in [
        ("claude-sonnet-5", 900, False),
        ("claude-sonnet-5-5", 900, True),
        ("claude-haiku-4-5", 3_000, False),
        ("claude-haiku-4-5", 4_200, True),
    ]:
        reply = await client.messages.create(
            model=model, max_tokens=5, system=system(size), messages=USER
        )
        assert (reply.usage.cache_creation_input_tokens > 0) is cached, model


async def test_ttls_split_cache_writes_and_later_breakpoints_extend_the_prefix(
    make_sim: Any,
) -> None:
    _, client = make_sim()
    tool = {
        "name": "emit",
        "description": long_text(1_200),
        "input_schema": {"type": "object", "properties": {}},
        "cache_control": {"type": "ephemeral", "ttl": "1h"},
    }
    kwargs: dict[str, Any] = {
        "model": "claude-sonnet-5",
        "max_tokens": 5,
        "tools": [tool],
        "system": system(1_500),
        "messages": USER,
    }
    first = await client.messages.create(**kwargs)
    split = first.usage.cache_creation
    assert split is not None
    assert split.ephemeral_1h_input_tokens > 1_200 + 300
    assert split.ephemeral_5m_input_tokens == 1_500
    other_system = {**kwargs, "system": system(1_600)}
    second = await client.messages.create(**other_system)
    assert second.usage.cache_read_input_tokens == split.ephemeral_1h_input_tokens
    assert second.usage.cache_creation_input_tokens == 1_600


async def test_tool_choice_change_keeps_system_cache_but_not_messages(make_sim: Any) -> None:
    _, client = make_sim()
    tool = {"name": "emit", "input_schema": {"type": "object", "properties": {}}}
    long_user = [
        {
            "role": "user",
            "content": [{"type": "text", "text": long_text(1_500), "cache_control": EPHEMERAL}],
        }
    ]
    base: dict[str, Any] = {
        "model": "claude-sonnet-5",
        "max_tokens": 5,
        "tools": [tool],
        "system": system(1_100),
        "messages": long_user,
    }
    await client.messages.create(**base, tool_choice={"type": "auto"})
    same = await client.messages.create(**base, tool_choice={"type": "auto"})
    changed = await client.messages.create(**base, tool_choice={"type": "any"})
    assert same.usage.cache_creation_input_tokens == 0
    assert 1_100 < changed.usage.cache_read_input_tokens < same.usage.cache_read_input_tokens
    assert changed.usage.cache_creation_input_tokens >= 1_500


def _blocks(messages: list[dict[str, Any]]) -> Any:
    return prompt_blocks(parse_count_tokens({"model": "m", "messages": messages}))


def test_lookback_finds_earlier_entries_within_20_blocks() -> None:
    cache = PromptCache()
    turns: list[dict[str, Any]] = [
        {
            "role": "user" if i % 2 == 0 else "assistant",
            "content": [{"type": "text", "text": long_text(100) + f" turn{i}"}],
        }
        for i in range(30)
    ]
    mark = {"type": "ephemeral"}
    early = [dict(t) for t in turns[:5]]
    early[4] = {**early[4], "content": [{**early[4]["content"][0], "cache_control": mark}]}
    plan = cache.plan("k", "m", 0, _blocks(early), 0.0)
    cache.commit(plan, 0.0)
    cache.started(plan, 0.0)

    def later(n: int) -> Any:
        conv = [dict(t) for t in turns[:n]]
        conv[n - 1] = {
            **conv[n - 1],
            "content": [{**conv[n - 1]["content"][0], "cache_control": mark}],
        }
        return cache.plan("k", "m", 0, _blocks(conv), 1.0)

    assert later(20).read_tokens == plan.write_tokens
    assert later(24).read_tokens == plan.write_tokens
    assert later(25).read_tokens == 0


def test_entries_expire_and_a_hit_refreshes_the_ttl() -> None:
    cache = PromptCache()
    blocks = prompt_blocks(
        parse_count_tokens({"model": "m", "system": system(50), "messages": USER})
    )
    plan = cache.plan("k", "m", 0, blocks, 0.0)
    cache.commit(plan, 0.0)
    assert cache.plan("k", "m", 0, blocks, 1.0).read_tokens == 0
    cache.started(plan, 1.0)
    hit = cache.plan("k", "m", 0, blocks, 200.0)
    assert hit.read_tokens == plan.write_tokens
    cache.commit(hit, 200.0)
    assert cache.plan("k", "m", 0, blocks, 450.0).read_tokens == plan.write_tokens
    assert cache.plan("k", "m", 0, blocks, 501.0).read_tokens == 0
    assert cache.plan("other-key", "m", 0, blocks, 300.0).read_tokens == 0


def test_abandoned_write_is_dropped() -> None:
    cache = PromptCache()
    blocks = prompt_blocks(
        parse_count_tokens({"model": "m", "system": system(50), "messages": USER})
    )
    plan = cache.plan("k", "m", 0, blocks, 0.0)
    cache.commit(plan, 0.0)
    cache.abandon(plan)
    assert len(cache) == 0
