"""Lecture 8's interpretability additions: targeted attacks (the notes' four steps) against a random-sign baseline,
max-pool ties behind saliency maps, Shapley values of patches (exact on a linear model, efficient by construction)
and maximally activating patches with their receptive fields."""
import itertools
import math

import numpy as np
import pytest

from simulator.core.errors import ShapeError, ValueInputError
from simulator.core.jobs import run_job
from simulator.labs.interpret import (maxpool_ties, quick_digits_model, random_sign_noise, receptive_field,
                                      shapley_job, softmax, targeted_attack, top_patches)
from simulator.nn.layers import FractionalMaxPool, ResidualBlock
from simulator.nn.network import Activation, Conv2d, Flatten, Linear, MaxPool, Network


@pytest.fixture(scope="module")
def model():
    return quick_digits_model(seed=0)


def test_a_targeted_attack_reaches_its_class_within_the_eps_box_and_noise_does_not(model):
    net, (X, y) = model.network, (model.data.X_val[:40], model.data.y_val[:40])
    target = (y + 3) % 10
    eps = 0.3 * float(X.max() - X.min())
    xa = targeted_attack(net, X, target, eps, steps=20, pixel_range=(X.min(), X.max()))
    assert np.abs(xa - X).max() <= eps * (1 + 1e-6)
    hit = np.mean(net.predict(xa) == target)
    noise = random_sign_noise(X, eps, seed=1, pixel_range=(X.min(), X.max()))
    assert np.abs(noise - X).max() <= eps * (1 + 1e-6)
    assert hit >= 0.8                                              # the gradient's direction finds the target
    assert np.mean(net.predict(noise) == target) <= 0.2            # the same budget at random does not
    # the target's probability rises step by step on average
    p0 = softmax(net.forward(X))[np.arange(40), target].mean()
    p1 = softmax(net.forward(targeted_attack(net, X, target, eps, steps=2)))[np.arange(40), target].mean()
    assert p1 > p0


def test_targeted_attack_checks_its_arguments(model):
    net, X = model.network, model.data.X_val[:2]
    with pytest.raises(ValueInputError):
        targeted_attack(net, X, 10, 0.1)
    with pytest.raises(ValueInputError):
        targeted_attack(net, X, 1, float("nan"))


def test_ties_are_counted_where_a_window_holds_its_maximum_twice():
    net = Network((1, 4, 4), [MaxPool(2, 2), Flatten(), Linear(2)], seed=0, dtype=np.float64)
    x = np.array([[[1, 1, 0, 2],
                   [0, 0, 1, 0],
                   [5, 4, 3, 3],
                   [0, 0, 0, 0]]], float)
    (t,) = maxpool_ties(net, x)
    assert (t.windows, t.tied) == (4, 2)            # top-left: 1 and 1; bottom-right: 3 and 3


def test_the_digits_background_makes_saliency_a_sub_gradient(model):
    net = model.network
    ties = maxpool_ties(net, model.data.X_val[0])
    assert ties and ties[0].tied > 0                # blank background: ReLU zeros tie in the pooling windows


def _linear_net():
    net = Network((1, 4, 4), [Flatten(), Linear(3)], seed=0, dtype=np.float64)
    return net


def test_shapley_values_are_exact_on_a_linear_score():
    """With the raw score of a linear model, v(S) is additive, so every ordering gives each patch w·(x - fill)
    over its pixels: the estimate is exact from one sample on."""
    net = _linear_net()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 4, 4))
    fill = 0.25
    r = run_job(shapley_job(net, x, cls=1, patch=2, samples=3, fill=fill, measure="score"))
    w = net.params[net.layers[1].params[0]][:, 1].reshape(4, 4)
    expect = np.array([[np.sum(w[i:i + 2, j:j + 2] * (x[0, i:i + 2, j:j + 2] - fill)) for j in (0, 2)] for i in (0, 2)])
    np.testing.assert_allclose(r.values, expect, atol=1e-12)
    np.testing.assert_allclose(r.stderr, 0, atol=1e-9)
    assert r.samples == 3


def test_shapley_sums_to_the_full_change_and_matches_exact_enumeration():
    net = Network((1, 4, 4), [Flatten(), Linear(6), Activation("tanh"), Linear(3)], seed=4, dtype=np.float64)
    x = np.random.default_rng(2).normal(size=(1, 4, 4))
    r = run_job(shapley_job(net, x, cls=0, patch=2, samples=4000, seed=1))
    assert r.values.sum() == pytest.approx(r.total, abs=1e-12)          # efficiency: orderings telescope
    # the exact Shapley values by enumerating the 4! orderings
    masks = [np.zeros((4, 4), bool) for _ in range(4)]
    for k in range(4):
        i, j = divmod(k, 2)
        masks[k][2 * i:2 * i + 2, 2 * j:2 * j + 2] = True

    def v(S):
        img = np.where(np.any([masks[k] for k in S], axis=0), x[0], 0.0) if S else np.zeros((4, 4))
        return softmax(net.forward(img[None, None]))[0, 0]
    exact = np.zeros(4)
    for perm in itertools.permutations(range(4)):
        for t, k in enumerate(perm):
            exact[k] += v(perm[:t + 1]) - v(perm[:t])
    exact /= math.factorial(4)
    np.testing.assert_allclose(r.values.ravel(), exact, atol=4 * r.stderr.max() + 1e-9)


def test_receptive_fields_follow_the_lecture_arithmetic():
    net = Network((1, 16, 16), [Conv2d(2, 3, pad=1), Activation("relu"), MaxPool(2, 2), Conv2d(2, 3, stride=2),
                                Flatten(), Linear(2)], seed=0, dtype=np.float64)
    assert receptive_field(net, 0) == (3, 1, -1)
    assert receptive_field(net, 1) == (3, 1, -1)
    assert receptive_field(net, 2) == (4, 2, -1)
    assert receptive_field(net, 3) == (8, 4, -1)
    with pytest.raises(ShapeError):
        receptive_field(net, 4)
    # a residual block: its two same-padded convs grow the field (the record says so, not a guess from its fields)
    res = Network((1, 8, 8), [Conv2d(4, 3, pad=1), Activation("relu"), ResidualBlock(kernel=3), Flatten(), Linear(2)],
                  seed=0, dtype=np.float64)
    assert receptive_field(res, 2) == (7, 1, -3)
    frac = Network((1, 8, 8), [Conv2d(2, 3, pad=1), FractionalMaxPool(), Flatten(), Linear(2)], seed=0,
                   dtype=np.float64)
    with pytest.raises(ShapeError, match="no fixed window"):
        receptive_field(frac, 1)


def test_the_targeted_attack_climbs_log_p_whatever_the_training_loss():
    net = Network((1, 4, 4), [Flatten(), Linear(6), Activation("tanh"), Linear(3)], loss="svm", seed=1,
                  dtype=np.float64)
    x = np.random.default_rng(0).normal(size=(5, 1, 4, 4))
    before = np.log(softmax(net.forward(x))[:, 2])
    after = np.log(softmax(net.forward(targeted_attack(net, x, 2, 0.5, alpha=0.05, steps=1))))[:, 2]
    # one small signed step up the gradient of log p(target): every image's log p rises (to first order, by
    # alpha times the L1 norm of that gradient)
    assert np.all(after > before)


def test_top_patches_are_the_strongest_units_and_their_crops():
    net = Network((1, 6, 6), [Conv2d(1, 3, pad=0, init="constant", init_value=1.0), Flatten(), Linear(2)], seed=0,
                  dtype=np.float64)
    X = np.zeros((5, 1, 6, 6))
    for n in range(5):
        X[n, 0, 1:4, 2:5] = n + 1.0          # a bright 3x3 square at rows 1..3, cols 2..4: the all-ones filter's peak
    t = top_patches(net, X, 0, 0, k=3)
    assert list(t.images) == [4, 3, 2] and t.size == 3
    assert [tuple(u) for u in t.units] == [(1, 2)] * 3
    np.testing.assert_allclose(t.patches[0, 0], np.full((3, 3), 5.0))
    b = net.params[net.layers[0].params[1]][0]
    np.testing.assert_allclose(t.activations, [45 + b, 36 + b, 27 + b])
