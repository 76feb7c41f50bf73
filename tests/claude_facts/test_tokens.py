"""The token counter: deterministic, lossless splitting, plausible sizes."""

from __future__ import annotations

import random
import string

import pytest

from claude_facts.tokens import count_block, count_text, split_tokens


def test_split_is_lossless_and_sums_to_the_count() -> None:
    rng = random.Random(0)
    alphabet = string.printable + "éü中文"
    for _ in range(500):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80)))
        pieces = split_tokens(text)
        assert "".join(p for p, _ in pieces) == text
        assert sum(n for _, n in pieces) == count_text(text)


@pytest.mark.parametrize(
    ("text", "low", "high"),
    [
        ("Add a pricing section with a monthly/yearly toggle", 9, 13),
        ("The quick brown fox jumps over 12345 lazy dogs.", 9, 14),
        ('{"type": "object", "properties": {"name": {"type": "string"}}}', 15, 26),
        ("", 0, 0),
    ],
)
def test_counts_are_close_to_claudes_tokenizer(text: str, low: int, high: int) -> None:
    assert low <= count_text(text) <= high


def test_blocks_count_their_text_not_their_markup() -> None:
    assert count_block({"type": "text", "text": "hello world"}) == count_text("hello world")
    assert count_block({"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}) == 1
    tool = {"name": "emit", "description": "Emit it.", "input_schema": {"type": "object"}}
    assert count_block(tool) > count_text("Emit it.")


def test_the_token_count_cache_keeps_few_texts_whatever_the_traffic() -> None:
    from claude_facts.tokens import count_text

    for i in range(5_000):
        count_text(f"a unique page body {i} " * 50)
    info = count_text.cache_info()
    assert info.maxsize is not None
    assert info.currsize <= info.maxsize <= 4_096
