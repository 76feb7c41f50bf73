"""The planner's fitting: the sentence networks learn what a linear score cannot, the
same way every time, and score as the mean of their seeds."""

from __future__ import annotations

import numpy as np

from agents.planner_fit import DENSE_SEEDS, SentenceNet, fit_sentence, fit_words


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


def test_the_sentence_score_is_the_mean_of_networks_from_different_seeds() -> None:
    x, y = _xor(60)
    net = fit_sentence(x, y)
    assert net.hidden.shape[0] == len(DENSE_SEEDS) > 1
    alone = [
        SentenceNet(
            net.hidden[k : k + 1],
            net.hidden_bias[k : k + 1],
            net.out[k : k + 1],
            net.out_bias[k : k + 1],
        ).logits(x)
        for k in range(len(DENSE_SEEDS))
    ]
    assert not np.allclose(alone[0], alone[1]), "each seed draws its own start"
    np.testing.assert_allclose(net.logits(x), np.mean(alone, axis=0))


def test_the_words_regression_weighs_the_features_that_decide() -> None:
    feats = [["w:red", "w:the"], ["w:blue", "w:the"]] * 20
    labels = np.array([[1.0], [0.0]] * 20)
    vocabulary, weights, _ = fit_words(feats, labels)
    assert weights[vocabulary["w:red"], 0] > 1.0 > -1.0 > weights[vocabulary["w:blue"], 0]
    assert abs(weights[vocabulary["w:the"], 0]) < abs(weights[vocabulary["w:red"], 0])
