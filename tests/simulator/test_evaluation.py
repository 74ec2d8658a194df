"""Test-time averaging: TTA over a fixed set of views and MC dropout, both averaging probabilities."""
from __future__ import annotations

import math

import numpy as np
import pytest

from simulator.core.errors import ShapeError, ValueInputError
from simulator.core.jobs import Progress, run_job
from simulator.nn import evaluation as E
from simulator.nn.evaluation import (
    TTA_VIEWS,
    EvalSettings,
    evaluation_job,
    mc_dropout_proba,
    plain_proba,
    tta_proba,
    view,
)
from simulator.nn.layers import Conv2d, DropConnect, FractionalMaxPool, ResidualBlock
from simulator.nn.network import (
    Activation,
    AvgPool,
    BatchNorm,
    Dropout,
    Flatten,
    Linear,
    Network,
)


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def test_views_shift_by_one_pixel_with_zero_fill_and_flip():
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    np.testing.assert_array_equal(view(x, "right")[0, 0], [[0, 0, 1], [0, 3, 4], [0, 6, 7]])
    np.testing.assert_array_equal(view(x, "left")[0, 0], [[1, 2, 0], [4, 5, 0], [7, 8, 0]])
    np.testing.assert_array_equal(view(x, "down")[0, 0], [[0, 0, 0], [0, 1, 2], [3, 4, 5]])
    np.testing.assert_array_equal(view(x, "up")[0, 0], [[3, 4, 5], [6, 7, 8], [0, 0, 0]])
    np.testing.assert_array_equal(view(x, "flip")[0, 0], [[2, 1, 0], [5, 4, 3], [8, 7, 6]])
    assert all(v[0] == "identity" for v in TTA_VIEWS.values())
    with pytest.raises(ShapeError, match="images"):
        view(np.zeros((3, 2)), "flip")


def test_a_flip_invariant_network_gives_identical_tta_results():
    # global average pooling, then Linear: mirroring the image changes nothing
    net = Network((1, 4, 4), [AvgPool(4, 4), Flatten(), Linear(3)], seed=3, dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((7, 1, 4, 4))
    np.testing.assert_allclose(tta_proba(net, x, "flip"), plain_proba(net, x), rtol=0, atol=1e-14)


def test_averaging_is_over_probabilities_checked_by_hand():
    # image 1x2 = (a, b); scores = (2a, b). x = (1, 0): identity scores (2, 0), flipped (0, 1)
    net = Network((1, 1, 2), [Flatten(), Linear(2)], dtype=np.float64)
    net.params["fc1.w"][...] = [[2.0, 0.0], [0.0, 1.0]]
    net.params["fc1.b"][...] = 0.0
    p = tta_proba(net, np.array([[[[1.0, 0.0]]]]), "flip")
    by_hand = (sigmoid(2.0) + sigmoid(-1.0)) / 2              # mean of softmax probabilities of class 0
    np.testing.assert_allclose(p[0], [by_hand, 1 - by_hand], rtol=1e-14)
    assert abs(p[0, 0] - sigmoid(0.5)) > 0.04                  # averaging the scores would give sigmoid(0.5)


def test_mc_dropout_with_p_zero_equals_the_plain_evaluation():
    net = Network((2,), [Linear(16), Activation("relu"), Dropout(0.0), Linear(3)], seed=0, dtype=np.float64)
    x = np.random.default_rng(1).standard_normal((20, 2))
    np.testing.assert_allclose(mc_dropout_proba(net, x, passes=5), plain_proba(net, x), rtol=0, atol=1e-15)


def test_mc_dropout_draws_masks_keeps_batch_norm_in_eval_and_averages_the_passes():
    net = Network((4,), [Linear(32), BatchNorm(), Activation("relu"), Dropout(0.5), Linear(3)], seed=0,
                  dtype=np.float64)
    net.params["bn1.beta"][...] = 0.3
    before = net.state_dict()
    x = np.random.default_rng(2).standard_normal((10, 4))
    one, two = mc_dropout_proba(net, x, 1, seed=0), mc_dropout_proba(net, x, 1, seed=1)
    assert not np.allclose(one, two) and not np.allclose(one, plain_proba(net, x))
    # the running statistics are used, not updated
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    # T passes are the mean of the single passes [seed, k]
    passes = [E.mc_pass_proba(net, x, 0, k) for k in range(3)]
    np.testing.assert_allclose(mc_dropout_proba(net, x, 3, seed=0), np.mean(passes, axis=0), rtol=1e-14)
    np.testing.assert_allclose(mc_dropout_proba(net, x, 3, seed=0).sum(axis=1), 1.0, rtol=1e-14)
    with pytest.raises(ValueInputError, match="passes T"):
        mc_dropout_proba(net, x, 0)


def test_evaluation_job_reports_plain_tta_and_mc_accuracy():
    rng = np.random.default_rng(0)
    net = Network((1, 4, 4), [Flatten(), Linear(8), Activation("relu"), Dropout(0.3), Linear(3)], seed=0)
    x, y = rng.standard_normal((30, 1, 4, 4)), rng.integers(0, 3, 30)
    items = []
    res = run_job(evaluation_job(net, x, y, EvalSettings(tta="shifts", passes=4)), items.append)
    assert res.n == 30 and res.views == TTA_VIEWS["shifts"] and res.passes == 4 and res.random_layers == 1
    assert res.plain == pytest.approx(net.accuracy(x, y))
    assert res.tta == pytest.approx(np.mean(np.argmax(tta_proba(net, x, "shifts"), 1) == y))
    assert res.mc == pytest.approx(np.mean(np.argmax(mc_dropout_proba(net, x, 4, 0), 1) == y))
    assert res.gain("tta") == pytest.approx(res.tta - res.plain)
    prog = [i for i in items if isinstance(i, Progress)]
    assert prog[-1].done == prog[-1].total == 1 + 5 + 4
    # points have no views: TTA does not apply
    pts = Network((2,), [Linear(4), Activation("relu"), Linear(2)], seed=0)
    r = run_job(evaluation_job(pts, rng.standard_normal((9, 2)), rng.integers(0, 2, 9), EvalSettings(passes=2)))
    assert math.isnan(r.tta) and r.random_layers == 0 and math.isnan(r.mc)
    with pytest.raises(ValueInputError, match="TTA views"):
        EvalSettings(tta="rotations")


# ------------------------------------------------------------------ MC dropout randomises dropout, and nothing else

def small_resnet() -> Network:
    """The builder's "Small ResNet" preset on 1x8x8 images: stochastic depth and fractional max pooling draw from
    seeds, but there is no Dropout layer."""
    return Network((1, 8, 8), [Conv2d(4, 3, pad=1), BatchNorm(), Activation("relu"), ResidualBlock(p=0.1),
                               FractionalMaxPool(), Flatten(), Linear(3)], seed=0, dtype=np.float64)


def test_only_dropout_and_dropconnect_are_switched_by_mc_dropout():
    assert Dropout(0.3).mc_random() and DropConnect(8, 0.3).mc_random()
    for spec in (FractionalMaxPool(), ResidualBlock(p=0.5), BatchNorm(), Linear(3)):
        assert not spec.mc_random()
    assert FractionalMaxPool().seeded() and ResidualBlock(p=0.5).seeded()      # random, but not dropout


def test_without_dropout_mc_dropout_does_not_apply_and_claims_no_gain():
    net = small_resnet()
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((40, 1, 8, 8)), rng.integers(0, 3, 40)
    # every stochastic pass is the plain evaluation: pooling regions and residual branches stay in eval mode
    for k in (0, 1):
        np.testing.assert_array_equal(E.mc_pass_proba(net, x, 2, k), plain_proba(net, x))
    np.testing.assert_allclose(mc_dropout_proba(net, x, passes=3, seed=2), plain_proba(net, x), rtol=1e-15, atol=0)
    items = []
    r = run_job(evaluation_job(net, x, y, EvalSettings(tta="flip", passes=6)), items.append)
    assert r.random_layers == 0 and math.isnan(r.mc) and math.isnan(r.gain("mc"))
    assert r.plain == pytest.approx(net.accuracy(x, y))
    prog = [i for i in items if isinstance(i, Progress)]
    assert prog[-1].done == prog[-1].total == 1 + 2        # no passes were run for it


def test_mc_passes_keep_fractional_pooling_and_batch_norm_in_eval_mode():
    # dropout p = 0 beside fractional pooling (3 eval draws) and batch norm: each pass is exactly the plain evaluation
    layers = [Conv2d(3, 3, pad=1), BatchNorm(), Activation("relu"), FractionalMaxPool(draws=3), Flatten(),
              Dropout(0.0), Linear(3)]
    net = Network((1, 7, 7), layers, seed=1, dtype=np.float64)
    x = np.random.default_rng(6).standard_normal((9, 1, 7, 7))
    np.testing.assert_array_equal(E.mc_pass_proba(net, x, 4, 0), plain_proba(net, x))
    # the same weights with p = 0.5: the masks make the passes differ from plain, and the one Dropout is counted
    drop = Network((1, 7, 7), layers[:5] + [Dropout(0.5), Linear(3)], seed=1, dtype=np.float64)
    drop.load_state_dict(net.state_dict())
    one = E.mc_pass_proba(drop, x, 4, 0)
    assert not np.allclose(one, plain_proba(drop, x))
    assert run_job(evaluation_job(drop, x, np.zeros(9, np.int64), EvalSettings(passes=2))).random_layers == 1


def test_dropconnect_counts_as_dropout_for_mc_passes():
    net = Network((4,), [DropConnect(16, 0.5), Activation("relu"), Linear(3)], seed=0, dtype=np.float64)
    x = np.random.default_rng(7).standard_normal((12, 4))
    assert not np.allclose(mc_dropout_proba(net, x, 1, seed=0), plain_proba(net, x))
    r = run_job(evaluation_job(net, x, np.zeros(12, np.int64), EvalSettings(passes=2)))
    assert r.random_layers == 1 and not math.isnan(r.mc)


def test_every_chunk_of_a_pass_draws_its_own_masks():
    # identical examples: any difference between two of them is their dropout masks. Examples i and i + BATCH are
    # in different chunks of one pass; they must not share a mask
    net = Network((16,), [Dropout(0.5), Linear(4)], seed=0, dtype=np.float64)
    x = np.ones((2 * E.BATCH + 10, 16))
    p = E.mc_pass_proba(net, x, 0, 0)
    same = np.all(p[:E.BATCH] == p[E.BATCH:2 * E.BATCH], axis=1)
    assert same.mean() < 0.01
    assert not np.all(p[:10] == p[2 * E.BATCH:], axis=1).any()
    # within a chunk the masks differ from example to example too, and a pass is reproducible
    assert len({row.tobytes() for row in p[:E.BATCH]}) > E.BATCH // 2
    np.testing.assert_array_equal(p, E.mc_pass_proba(net, x, 0, 0))
    assert not np.array_equal(p, E.mc_pass_proba(net, x, 0, 1))
