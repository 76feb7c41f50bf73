"""The planner's learned half: one logistic regression per group, conservative by design.

Features generalise past the words a lexicon lists: stems, stem pairs, character n-grams
of each word (typos and unseen forms share most of theirs: "animtions", "tiles") and the
lexicon planner's own verdicts. The model is trained on ``planner_data/train.jsonl`` (the
labelled instructions shipped with the package) by ``python -m agents train-planner``,
which writes ``planner_data/model.npz`` with the digest of the rows it learned from; a
process loads that file, or trains at first use (about a minute) if the rows have
changed since. A plan is the lexicon's groups plus each group the model scores at or above
its threshold. There is a set of thresholds per context
(``CONTEXTS``: new page or edit, and whether the lexicon is sure of its plan), since the
mistakes differ between them; they are set together on out-of-fold probabilities of the
training rows, as high as they can be while the plans keep ``RECALL_TARGET`` of the groups
those rows need: a group is added when unsure. No test or reported set is ever read here.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import numpy.typing as npt

GROUPS = ("layout", "components", "events", "styles", "animation")
RECALL_TARGET = 0.99
"""Share of the groups the training rows need that the plans keep, out of fold."""
CONTEXTS = 4
"""Contexts with thresholds of their own: 2 x (asks for a new page) + (the lexicon is sure)."""
LEXICON_WEIGHT = 4
FOLDS = 5
EPOCHS = 600
RATE = 0.05
L2 = 1e-5
_WORD = re.compile(r"[a-z0-9#]+")
Row = tuple[str, Sequence[str]]
Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]


ARTIFACT = Path(__file__).with_name("planner_data") / "model.npz"
"""Where ``python -m agents train-planner`` writes the trained model, in the source tree."""


def training_rows() -> list[Row]:
    """The labelled instructions the model learns from."""
    text = (resources.files("agents") / "planner_data" / "train.jsonl").read_text()
    return [(r["instruction"], r["needs"]) for r in map(json.loads, text.splitlines()) if r]


def features(text: str, verdicts: Iterable[str], stem: Callable[[str], str]) -> list[str]:
    """The instruction's features: stems, stem pairs, character 3-5-grams, and the lexicon
    planner's ``verdicts`` (its groups, and whether it saw a new page)."""
    words = [
        stem(w) if w.isalpha() else ("#num" if w.isdigit() else w)
        for w in _WORD.findall(text.lower().replace("'", ""))
    ]
    out = [f"w:{w}" for w in words] + [f"b:{a}_{b}" for a, b in itertools.pairwise(words)]
    for word in words:
        padded = f"<{word}>"
        out += [f"c:{padded[i : i + n]}" for n in (3, 4, 5) for i in range(len(padded) - n + 1)]
    # Repeated, so that the lexicon's verdicts weigh as much as a few words do.
    return out + [f"lex{k}:{v}" for v in verdicts for k in range(LEXICON_WEIGHT)]


@dataclass(frozen=True)
class GroupModel:
    """Weights per (feature, group), a bias per group, and each group's threshold per
    context (a row of ``thresholds`` each)."""

    vocabulary: dict[str, int]
    weights: Floats
    bias: Floats
    thresholds: Floats

    def probabilities(self, feats: Sequence[str]) -> Floats:
        """P(needed) per group, in ``GROUPS`` order."""
        idx = [self.vocabulary[f] for f in set(feats) if f in self.vocabulary]
        scale = 1.0 / np.sqrt(max(1, len(set(feats))))
        logits = self.weights[idx].sum(axis=0) * scale + self.bias
        return np.asarray(1.0 / (1.0 + np.exp(-logits)), dtype=np.float64)

    def reasons(self, feats: Sequence[str], group: int, most: int = 3) -> list[str]:
        """What pushed ``group`` up the most, readable: words, word pairs, parts of words
        (``~ton``) and the lexicon's verdicts."""
        present = {f for f in set(feats) if f in self.vocabulary}
        # Ties (parts of words that always come together) by name, so that the same
        # instruction is explained alike in every process, whatever its hash seed.
        ranked = sorted(present, key=lambda f: (-self.weights[self.vocabulary[f], group], f))
        # Parts of one- or two-letter words ("a", "~a") explain nothing to a reader.
        readable = dict.fromkeys(
            text
            for f in ranked
            if self.weights[self.vocabulary[f], group] > 0
            and len((text := _readable(f)).strip("~")) > 2
        )
        return list(readable)[:most]


def _readable(feature: str) -> str:
    kind, _, value = feature.partition(":")
    if kind.startswith("lex"):
        return f"lexicon: {value}"
    if kind == "c":
        return "~" + value.strip("<>")
    return value.replace("_", " ")


def fit(feats: list[list[str]], labels: Floats) -> tuple[dict[str, int], Floats, Floats]:
    """Logistic regression per group by full-batch Adam over sparse binary features (each
    row scaled to unit length), in plain numpy: a gather and a ``bincount`` per step."""
    vocabulary: dict[str, int] = {}
    for row in feats:
        for f in row:
            vocabulary.setdefault(f, len(vocabulary))
    index = [sorted({vocabulary[f] for f in row}) for row in feats]
    sizes = np.array([len(i) for i in index])
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    cols = np.concatenate([np.array(i, dtype=np.int64) for i in index])
    values = np.repeat(1.0 / np.sqrt(np.maximum(sizes, 1)), sizes)
    rows_of = np.repeat(np.arange(len(index)), sizes)
    n, groups = labels.shape
    params = np.zeros((len(vocabulary) + 1, groups))  # the last row is the bias
    moment, second = np.zeros_like(params), np.zeros_like(params)
    for step in range(1, EPOCHS + 1):
        logits = np.add.reduceat(params[cols] * values[:, None], starts, axis=0) + params[-1]
        residual = (1.0 / (1.0 + np.exp(-logits)) - labels) / n
        grad = np.empty_like(params)
        spread = residual[rows_of] * values[:, None]
        for g in range(groups):
            grad[:-1, g] = np.bincount(cols, weights=spread[:, g], minlength=len(vocabulary))
        grad[:-1] += L2 * params[:-1]
        grad[-1] = residual.sum(axis=0)
        moment = 0.9 * moment + 0.1 * grad
        second = 0.999 * second + 0.001 * grad**2
        unbiased = moment / (1 - 0.9**step)
        params -= RATE * unbiased / (np.sqrt(second / (1 - 0.999**step)) + 1e-8)
    return vocabulary, params[:-1], params[-1]


def _labels(rows: Sequence[Row]) -> Floats:
    return np.array([[g in needs for g in GROUPS] for _, needs in rows], dtype=np.float64)


def out_of_fold(feats: list[list[str]], labels: Floats) -> Floats:
    """Each row's probabilities from a model trained on the other folds."""
    order = np.arange(len(feats)) % FOLDS  # deterministic: row i is in fold i mod FOLDS
    probs = np.zeros_like(labels)
    for fold in range(FOLDS):
        train, held = np.flatnonzero(order != fold), np.flatnonzero(order == fold)
        vocabulary, weights, bias = fit([feats[i] for i in train], labels[train])
        model = GroupModel(vocabulary, weights, bias, np.zeros((CONTEXTS, len(GROUPS))))
        for i in held:
            probs[i] = model.probabilities(feats[i])
    return probs


def _kept(probs: Floats, lexical: Bools, cut: Floats, contexts: npt.NDArray[np.int_]) -> Bools:
    """The plans: the lexicon's groups and those scored at or above their context's
    threshold; every group where that names none."""
    plans = (probs >= cut[contexts]) | lexical
    plans[~plans.any(axis=1)] = True
    return plans


def thresholds(
    probs: Floats, labels: Floats, lexical: Bools, contexts: npt.NDArray[np.int_], target: float
) -> Floats:
    """Thresholds per (context, group) over the lexicon's plans: from none (lexicon only),
    lower the one threshold whose next needed row costs the fewest exact sets per recall
    gained, until ``target`` of the needed groups are kept. ``contexts`` holds each row's
    context, below ``CONTEXTS``."""
    needed = labels == 1
    cut = np.full((CONTEXTS, len(GROUPS)), 1.01)

    def score(c: Floats) -> tuple[float, float]:
        plans = _kept(probs, lexical, c, contexts)
        return (plans & needed).sum() / needed.sum(), (plans == needed).all(axis=1).mean()

    recall, exact = score(cut)
    while recall < target:
        best: tuple[float, Floats, float, float] | None = None
        for ctx, g in itertools.product(range(CONTEXTS), range(len(GROUPS))):
            open_ = (contexts == ctx) & needed[:, g] & ~lexical[:, g] & (probs[:, g] < cut[ctx, g])
            if not open_.any():
                continue
            trial = cut.copy()
            trial[ctx, g] = probs[open_, g].max()
            r, e = score(trial)
            gain = (r - recall) / (max(exact - e, 0.0) + 1e-4)
            if best is None or gain > best[0]:
                best = (gain, trial, r, e)
        if best is None:
            break
        _, cut, recall, exact = best
    return cut


def train(
    rows: Sequence[Row],
    feats_of: Callable[[str], list[str]],
    lexical_of: Callable[[str], Sequence[str]],
    context_of: Callable[[str], int],
) -> GroupModel:
    """The model on ``rows``, its thresholds set out of fold on the same rows."""
    feats = [feats_of(text) for text, _ in rows]
    labels = _labels(rows)
    lexical = np.array([[g in lexical_of(text) for g in GROUPS] for text, _ in rows])
    contexts = np.array([context_of(text) for text, _ in rows])
    cut = thresholds(out_of_fold(feats, labels), labels, lexical, contexts, RECALL_TARGET)
    vocabulary, weights, bias = fit(feats, labels)
    return GroupModel(vocabulary, weights, bias, cut)


def rows_digest(rows: Sequence[Row]) -> str:
    """What a saved model was trained on, to tell a current file from a stale one."""
    text = json.dumps([[t, list(n)] for t, n in rows], ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def save(model: GroupModel, digest: str, path: Path = ARTIFACT) -> None:
    """Write ``model`` and the digest of its training rows as one compressed ``.npz``."""
    np.savez_compressed(
        path,
        features=np.array(list(model.vocabulary)),
        weights=model.weights.astype(np.float32),
        bias=model.bias,
        thresholds=model.thresholds,
        digest=np.array(digest),
    )


def load(path: Path) -> tuple[GroupModel, str]:
    """A model written by ``save`` and the digest of the rows it was trained on."""
    with np.load(path, allow_pickle=False) as saved:
        features = [str(f) for f in saved["features"]]
        model = GroupModel(
            vocabulary={f: i for i, f in enumerate(features)},
            weights=saved["weights"].astype(np.float64),
            bias=saved["bias"],
            thresholds=saved["thresholds"],
        )
        return model, str(saved["digest"])


@functools.cache
def shipped(
    feats_of: Callable[[str], list[str]],
    lexical_of: Callable[[str], Sequence[str]],
    context_of: Callable[[str], int],
) -> GroupModel:
    """The model of the shipped rows, once per process: the saved one if it was trained on
    these rows, else trained now."""
    rows = training_rows()
    saved = resources.files("agents") / "planner_data" / ARTIFACT.name
    if saved.is_file():
        with resources.as_file(saved) as path:
            model, digest = load(path)
        if digest == rows_digest(rows):
            return model
    return train(rows, feats_of, lexical_of, context_of)
