"""The planner's fitting: the sentence network learns what a linear score cannot, the
same way every time."""

from __future__ import annotations

import numpy as np

from agents.planner_fit import fit_sentence, fit_words


def _xor(n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors in 8 dimensions whose label is the sign of the product of the first two
    coordinates: no linear score separates them."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(n, 8))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = (x[:, 0] * x[:, 1] > 0).astype(np.float64)[:, None]
    return x, y


def test_the_sentence_network_learns_a_label_no_linear_score_can() -> None:
    x, y = _xor()
    net = fit_sentence(x, y)
    predicted = net.logits(x)[:, 0] > 0
    assert (predicted == (y[:, 0] == 1)).mean() >= 0.9
    # The best a linear score does on this set, for comparison: about chance.
    weights, *_ = np.linalg.lstsq(np.hstack([x, np.ones((len(x), 1))]), y * 2 - 1, rcond=None)
    linear = (np.hstack([x, np.ones((len(x), 1))]) @ weights)[:, 0] > 0
    assert (linear == (y[:, 0] == 1)).mean() < 0.75


def test_fitting_is_deterministic() -> None:
    x, y = _xor(60)
    first, second = fit_sentence(x, y), fit_sentence(x, y)
    np.testing.assert_array_equal(first.hidden, second.hidden)
    np.testing.assert_array_equal(first.out, second.out)


def test_the_words_regression_weighs_the_features_that_decide() -> None:
    feats = [["w:red", "w:the"], ["w:blue", "w:the"]] * 20
    labels = np.array([[1.0], [0.0]] * 20)
    vocabulary, weights, _ = fit_words(feats, labels)
    assert weights[vocabulary["w:red"], 0] > 1.0 > -1.0 > weights[vocabulary["w:blue"], 0]
    assert abs(weights[vocabulary["w:the"], 0]) < abs(weights[vocabulary["w:red"], 0])
