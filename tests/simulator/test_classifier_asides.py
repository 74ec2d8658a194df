"""Lecture 3's asides on linear classifiers and kNN: the SVM margin Δ only rescales W, softmax temperature sets how
peaky the probabilities are (with the right gradient), the bias trick, and the curse of dimensionality."""
import numpy as np
import pytest

from simulator.core.errors import ShapeError, ValueInputError
from simulator.labs.classifiers import LinearClassifier, bias_trick, dimension_curve, margin_rescaling


def _data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2))
    y = (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0.5)
    return X, y


def test_the_margin_only_rescales_w():
    X, y = _data()
    r = margin_rescaling(X, y, delta=3.0, steps=40)
    assert r.ratio == pytest.approx(3.0, rel=1e-9) and r.max_deviation < 1e-9 and r.same_predictions


@pytest.mark.parametrize("loss, delta, T", [("svm", 2.5, 1.0), ("softmax", 1.0, 0.4), ("softmax", 1.0, 3.0)])
def test_margin_and_temperature_losses_and_gradients(loss, delta, T):
    X, y = _data()
    clf = LinearClassifier(2, 3, loss, reg=0.01, seed=1, weight_scale=0.7, delta=delta, temperature=T)
    L, dW, db, (scores, terms) = clf.loss_and_grads(X, y)
    n = np.arange(len(y))
    if loss == "svm":
        m = np.maximum(0, scores - scores[n, y][:, None] + delta)
        m[n, y] = 0
        want = m.sum(axis=1).mean()
    else:
        s = scores / T
        p = np.exp(s - s.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        want = -np.log(p[n, y]).mean()
    assert L == pytest.approx(want + 0.01 * np.sum(clf.W ** 2), rel=1e-12)
    assert terms.mean() == pytest.approx(want, rel=1e-12)
    h, W0 = 1e-6, clf.W.copy()
    for (i, j) in [(0, 0), (1, 2), (0, 1)]:
        clf.W = W0.copy()
        clf.W[i, j] += h
        lp = clf.loss_and_grads(X, y)[0]
        clf.W[i, j] -= 2 * h
        lm = clf.loss_and_grads(X, y)[0]
        assert dW[i, j] == pytest.approx((lp - lm) / (2 * h), rel=1e-5, abs=1e-8)


def test_a_low_temperature_makes_the_softmax_peaky():
    X, y = _data()
    clf = LinearClassifier(2, 3, "softmax", seed=1, weight_scale=0.7)
    def top(T):
        clf.temperature = T
        s = clf.scores(X) / T
        p = np.exp(s - s.max(axis=1, keepdims=True))
        return (p / p.sum(axis=1, keepdims=True)).max(axis=1).mean()
    assert top(0.2) > top(1.0) > top(5.0) > 1 / 3
    with pytest.raises(ValueInputError):
        clf.temperature = 0.0
    with pytest.raises(ValueInputError):
        clf.delta = -1.0


def test_the_bias_trick_gives_the_same_scores():
    X, _ = _data()
    W, b = np.random.default_rng(1).normal(size=(2, 3)), np.array([0.5, -1.0, 2.0])
    X1, Wb = bias_trick(X, W, b)
    assert X1.shape == (60, 3) and Wb.shape == (3, 3) and np.all(X1[:, -1] == 1)
    np.testing.assert_allclose(X1 @ Wb, X @ W + b, rtol=1e-14)
    with pytest.raises(ShapeError):
        bias_trick(X, W, b[:2])


def test_the_curse_of_dimensionality():
    c = dimension_curve(dims=(2, 10, 100, 500), points=300, seed=0)
    assert np.all(np.diff(c.contrast) < 0)                  # distances concentrate as D grows
    assert c.contrast[0] > 10 * c.contrast[-1]
    assert c.accuracy[0] > 0.9 and c.accuracy[-1] < 0.7      # 1-NN drowns in the noise dimensions
