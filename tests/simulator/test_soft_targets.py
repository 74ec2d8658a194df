"""Soft targets, label smoothing, mixup and CutMix trained for real (issue 13): loss values and gradients against
float64 numerical gradients, hand computations and PyTorch; the graph op; the Network, the Trainer on the digits;
the playground model's augmentation, loss floor and linear-scaling hint; bad input."""
from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest

from kernels import losses as K
from simulator.core.errors import ShapeError, StudioError, ValueInputError
from simulator.core.jobs import run_job
from simulator.data import datasets as D
from simulator.engine.gradcheck import numerical_gradient
from simulator.engine.trace import run
from simulator.functional import layers as L
from simulator.nn.network import (
    Activation,
    Conv2d,
    Flatten,
    Linear,
    MaxPool,
    Network,
    Objective,
)
from simulator.nn.trainer import Trainer
from simulator.ops.registry import get_op

HAS_TORCH = importlib.util.find_spec("torch") is not None


def rel_error(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b))))


def probs(rng, n, c):
    t = rng.random((n, c))
    return t / t.sum(axis=1, keepdims=True)


def ce_by_hand(s, t):
    """-1/N sum_n sum_j t_nj log softmax(s_n)_j, written out with numpy in float64."""
    s = np.asarray(s, np.float64)
    logp = s - s.max(axis=1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(axis=1, keepdims=True))
    return float(-(t * logp).sum() / len(s))


# ------------------------------------------------------------------------------------------------ the layer

def test_smoothed_targets_are_the_lecture_formula():
    t = L.smooth_labels(np.array([2, 0]), 4, 0.2)
    # correct class 1 - (K-1)/K eps = 1 - 3/4 * 0.2 = 0.85, the others eps/K = 0.05
    assert np.allclose(t, [[0.05, 0.05, 0.85, 0.05], [0.85, 0.05, 0.05, 0.05]], rtol=0, atol=1e-15)
    soft = np.array([[0.5, 0.5, 0.0, 0.0]])
    assert np.allclose(L.smooth_labels(soft, 4, 0.2), [[0.45, 0.45, 0.05, 0.05]], rtol=0, atol=1e-15)
    assert np.array_equal(L.smooth_labels(np.array([1]), 3, 0.0), [[0.0, 1.0, 0.0]])


@pytest.mark.parametrize("n, c", [(1, 2), (4, 3), (7, 10)])
def test_soft_target_loss_value_and_gradient(n, c):
    rng = np.random.default_rng(n * c)
    s, t = rng.normal(scale=2.0, size=(n, c)), probs(rng, n, c)
    loss, ds = L.softmax_loss(s, t)
    assert loss == pytest.approx(ce_by_hand(s, t), rel=1e-12)
    num = numerical_gradient(lambda _: L.softmax_loss(s, t)[0], s)
    assert rel_error(ds, num) < 1e-6
    # (softmax - t) / N, by hand
    p = np.exp(s - s.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    assert np.allclose(ds, (p - t) / n, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.5, 0.9])
def test_label_smoothing_value_and_gradient(eps):
    rng = np.random.default_rng(int(eps * 10))
    s, y = rng.normal(size=(6, 5)), rng.integers(0, 5, 6)
    t = np.full((6, 5), eps / 5)
    t[np.arange(6), y] = 1 - 4 / 5 * eps
    loss, ds = L.softmax_loss(s, y, eps)
    assert loss == pytest.approx(ce_by_hand(s, t), rel=1e-12)
    num = numerical_gradient(lambda _: L.softmax_loss(s, y, eps)[0], s)
    assert rel_error(ds, num) < 1e-6
    # smoothing a soft target: (1 - eps) t + eps / K
    q = probs(rng, 6, 5)
    loss_q, ds_q = L.softmax_loss(s, q, eps)
    assert loss_q == pytest.approx(ce_by_hand(s, (1 - eps) * q + eps / 5), rel=1e-12)
    assert rel_error(ds_q, numerical_gradient(lambda _: L.softmax_loss(s, q, eps)[0], s)) < 1e-6


def test_hard_labels_and_their_one_hot_rows_give_the_same_loss():
    rng = np.random.default_rng(3)
    s, y = rng.normal(size=(8, 4)).astype(np.float32), rng.integers(0, 4, 8)
    a, da = L.softmax_loss(s, y)
    b, db = L.softmax_loss(s, np.eye(4)[y])
    assert a.dtype == b.dtype == np.float32 and db.dtype == np.float32
    assert a == pytest.approx(b, rel=1e-6) and np.allclose(da, db, atol=1e-7)


def test_huge_logits_stay_finite_with_soft_targets():
    s = np.array([[1e4, -1e4, 0.0], [0.0, 0.0, 1e4]])
    t = np.array([[0.0, 0.5, 0.5], [1.0, 0.0, 0.0]])
    loss, ds = L.softmax_loss(s, t)
    assert loss == pytest.approx((0.5 * 2e4 + 0.5 * 1e4 + 1e4) / 2, rel=1e-12)
    assert np.all(np.isfinite(ds))


def test_the_floor_is_the_entropy_of_the_smoothed_target():
    for k, eps in ((10, 0.1), (3, 0.3), (2, 0.05)):
        hi, lo = 1 - (k - 1) / k * eps, eps / k
        h = -hi * math.log(hi) - (k - 1) * lo * math.log(lo)
        assert L.smoothed_entropy(k, eps) == pytest.approx(h, rel=1e-14)
        y = np.arange(k) % k
        best = np.log(L.smooth_labels(y, k, eps))            # softmax(s) = t: the minimum
        loss, ds = L.softmax_loss(best, y, eps)
        assert loss == pytest.approx(h, rel=1e-12) and np.max(np.abs(ds)) < 1e-15
        # any other scores lose more
        rng = np.random.default_rng(k)
        assert L.softmax_loss(best + rng.normal(scale=0.3, size=best.shape), y, eps)[0] > h
    assert L.smoothed_entropy(10, 0.0) == 0.0


def test_kernel_against_a_numpy_reference_in_both_dtypes():
    rng = np.random.default_rng(8)
    for dt in (np.float64, np.float32):
        for n, c in ((1, 2), (3, 7), (16, 10)):
            s, t = rng.normal(scale=3, size=(n, c)).astype(dt), probs(rng, n, c)
            loss, ds = K.softmax_loss_soft(s, t)
            assert ds.dtype == dt
            assert loss == pytest.approx(ce_by_hand(s, t), rel=1e-6 if dt == np.float32 else 1e-12)
            p = np.exp(s.astype(np.float64) - s.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            assert np.allclose(ds, (p - t) / n, rtol=1e-5, atol=1e-7)


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed")
@pytest.mark.parametrize("eps", [0.0, 0.1, 0.35])
def test_against_torch_cross_entropy(eps):
    import torch
    F = torch.nn.functional
    rng = np.random.default_rng(11)
    s, y, t = rng.normal(size=(9, 6)), rng.integers(0, 6, 9), probs(rng, 9, 6)
    for target, ours in ((torch.tensor(y), L.softmax_loss(s, y, eps)), (torch.tensor(t), L.softmax_loss(s, t, eps))):
        st = torch.tensor(s, requires_grad=True)
        ref = F.cross_entropy(st, target, label_smoothing=eps)
        ref.backward()
        assert float(ours[0]) == pytest.approx(ref.item(), rel=1e-12)
        assert np.allclose(ours[1], st.grad.numpy(), rtol=1e-10, atol=1e-14)


BAD_TARGETS = [
    (np.array([[0.5, 0.6, -0.1]]), ValueInputError, r"cannot be negative: row 0, class 2 is -0.1"),
    (np.array([[0.5, 0.4, 0.0]]), ValueInputError, r"must sum to 1 .*row 0 sums to 0.9"),
    (np.array([[0.5, 0.5, 1e-5]]), ValueInputError, r"row 0 sums to 1.00001"),
    (np.array([[0.5, np.nan, 0.5]]), ValueInputError, r"row 0 holds NaN"),
    (np.array([[0.5, 0.5]]), ShapeError, r"soft targets have shape \(1, 2\) but scores have shape \(1, 3\)"),
    (np.array([["a", "b", "c"]]), ValueInputError, r"must hold numbers"),
]


@pytest.mark.parametrize("t, error, message", BAD_TARGETS)
def test_targets_that_are_not_probabilities_are_refused(t, error, message):
    with pytest.raises(error, match=message):
        L.softmax_loss(np.zeros((1, 3)), t)


def test_a_row_off_by_less_than_the_tolerance_is_a_probability():
    loss, _ = L.softmax_loss(np.zeros((1, 3)), np.array([[0.5, 0.5, 5e-7]]))
    assert loss == pytest.approx(math.log(3) * (1 + 5e-7), rel=1e-12)


@pytest.mark.parametrize("eps, message", [(1.0, "must be < 1, got 1"), (-0.1, "must be ≥ 0"),
                                          (float("nan"), "finite"), ("0.1", "must be a number")])
def test_bad_label_smoothing_is_refused(eps, message):
    with pytest.raises(ValueInputError, match=message):
        L.softmax_loss(np.zeros((2, 3)), np.array([0, 1]), eps)
    with pytest.raises(ValueInputError, match=message):
        Objective(label_smoothing=eps)


def test_the_svm_refuses_soft_targets_and_smoothing():
    with pytest.raises(ValueInputError, match="multiclass SVM loss needs one integer label.*softmax"):
        L.svm_loss(np.zeros((2, 3)), np.full((2, 3), 1 / 3))
    with pytest.raises(ValueInputError, match="label smoothing applies to the softmax.*multiclass SVM"):
        Network((2,), [Linear(3)], loss="svm", label_smoothing=0.1)
    with pytest.raises(ValueInputError, match="MSE"):
        Objective(loss="mse", label_smoothing=0.2)


# ------------------------------------------------------------------------------------------------ the graph op

def test_softmax_ce_op_takes_soft_targets_and_smoothing():
    op = get_op("softmax_ce")
    rng = np.random.default_rng(4)
    s, t = rng.normal(size=(3, 4)), probs(rng, 3, 4)
    assert op.infer_shape((3, 4), (3, 4)) == () and op.infer_shape((4,), (4,)) == ()
    out, cache = op.forward(s, t, label_smoothing=0.2)
    assert out == pytest.approx(ce_by_hand(s, 0.8 * t + 0.05), rel=1e-12)
    (ds, dy) = op.backward(2.0, cache)
    assert dy is None and np.allclose(ds, 2.0 * L.softmax_loss(s, t, 0.2)[1])
    with pytest.raises(ShapeError, match="probability targets"):
        op.infer_shape((3, 4), (3, 5))
    with pytest.raises(StudioError, match="sum to 1"):
        op.forward(s, t * 2)


def test_network_graph_with_soft_targets_and_smoothing_agrees_with_network_loss():
    net = Network((3,), [Linear(5), Activation("tanh"), Linear(4)], dtype=np.float64, seed=1, reg=0.01,
                  label_smoothing=0.15)
    rng = np.random.default_rng(6)
    x, t = rng.normal(size=(5, 3)), probs(rng, 5, 4)
    for y in (t, np.array([0, 3, 1, 1, 2])):
        loss, grads = net.loss(x, y)
        result = run(net.to_graph(x, y))
        assert float(result.value) == pytest.approx(loss, rel=1e-12)
        for k in net.params:
            assert rel_error(result.grads[Network.graph_name(k)], grads[k]) < 1e-9, k


# ------------------------------------------------------------------------------------------------ the network

@pytest.mark.parametrize("loss, eps", [("softmax", 0.1), ("softmax", 0.0), ("mse", 0.0)])
def test_network_gradients_with_soft_targets(loss, eps):
    net = Network((3,), [Linear(6), Activation("tanh"), Linear(4)], loss=loss, dtype=np.float64, seed=2,
                  label_smoothing=eps)
    rng = np.random.default_rng(1)
    x, t = rng.normal(size=(5, 3)), probs(rng, 5, 4)
    loss_value, grads = net.loss(x, t)
    for name, p in net.params.items():
        num = numerical_gradient(lambda _: net.loss(x, t)[0], p)
        assert rel_error(grads[name], num) < 1e-6, name
    if loss == "softmax":
        assert loss_value == pytest.approx(ce_by_hand(net.forward(x, "train"), (1 - eps) * t + eps / 4), rel=1e-12)


def test_label_smoothing_survives_copy_and_weights_files(tmp_path):
    net = Network((2,), [Linear(3)], label_smoothing=0.25, seed=3)
    assert net.copy().label_smoothing == 0.25 and net.config()["label_smoothing"] == 0.25
    net.save(tmp_path / "w.npz")
    assert Network.load(tmp_path / "w.npz").label_smoothing == 0.25


# ------------------------------------------------------------------------------------------------ training

@pytest.fixture(scope="module")
def digits():
    X, y = D.load_digits()
    X = X[:600] / 16.0
    return D.train_val_split(X, y[:600], 0.2, seed=0)


def small_cnn(**kw):
    return Network((1, 8, 8), [Conv2d(8, 3, pad=1), Activation("relu"), MaxPool(2), Flatten(), Linear(10)], seed=1,
                   **kw)


@pytest.mark.parametrize("mix, eps", [("mixup", 0.0), ("cutmix", 0.0), ("none", 0.1), ("cutmix", 0.1)])
def test_trainer_on_digits_with_mixing_and_smoothing(digits, mix, eps):
    aug = D.AugmentSettings(shift_on=False, rotate_on=False, mix=mix)
    net = small_cnn(label_smoothing=eps)
    tr = Trainer(net, digits, "Adam", lr=1e-2, batch_size=32, epochs=6, seed=5, augment=aug)
    assert tr.mixes_labels == (mix != "none")
    h = tr.run()
    assert np.all(np.isfinite(h.loss)) and np.all(np.isfinite(h.accuracy)) and np.all(np.isfinite(h.val_loss))
    n = tr.iters_per_epoch
    assert h.loss[-n:].mean() < 0.8 * h.loss[:n].mean()          # the loss decreases
    assert h.val_accuracy[-1] > 0.8 and h.train_loss[-1] < h.train_loss[0]
    floor = L.smoothed_entropy(10, eps)
    assert h.train_loss.min() > floor and h.val_loss.min() > floor       # never below the target's entropy
    if mix != "none":
        assert tr.last_targets.shape == (len(tr.last_targets), 10)
        assert np.allclose(tr.last_targets.sum(axis=1), 1.0)
        assert np.mean(tr.last_targets.max(axis=1) < 1.0) > 0.5      # really mixed
    else:
        assert tr.last_targets.ndim == 1


@pytest.mark.parametrize("mix", ["mixup", "cutmix"])
def test_the_first_batch_is_mixed_as_computed_by_hand(digits, mix):
    """Seed 7: the batch order and the mixing draws replayed by hand; the step's loss is the network's loss on the
    hand-mixed batch and soft targets (before the update)."""
    X, y = digits[0], digits[1]
    alpha = 0.4 if mix == "mixup" else 1.0
    aug = D.AugmentSettings(shift_on=False, rotate_on=False, mix=mix)
    net = small_cnn(dtype=np.float64)
    before = net.copy()
    tr = Trainer(net, digits, "SGD", lr=0.1, batch_size=16, epochs=1, seed=7, augment=aug)
    m = tr.step()
    idx = np.random.default_rng([7, 2]).permutation(len(X))[:16]
    xb, yb = X[idx], y[idx]
    rng = np.random.default_rng([7, 3])
    lam = rng.beta(alpha, alpha, 16)
    perm = rng.permutation(16)
    onehot = np.eye(10)[yb]
    if mix == "mixup":
        share = 1 - lam
        xm = lam[:, None, None, None] * xb + share[:, None, None, None] * xb[perm]
    else:
        xm, share = xb.copy(), np.zeros(16)
        for i in range(16):
            side = [int(round(8 * math.sqrt(1 - lam[i])))] * 2
            cy, cx = rng.integers(0, 8), rng.integers(0, 8)
            y0, y1 = max(cy - side[0] // 2, 0), min(cy - side[0] // 2 + side[0], 8)
            x0, x1 = max(cx - side[1] // 2, 0), min(cx - side[1] // 2 + side[1], 8)
            xm[i, :, y0:y1, x0:x1] = xb[perm[i], :, y0:y1, x0:x1]
            share[i] = (y1 - y0) * (x1 - x0) / 64
    target = (1 - share)[:, None] * onehot + share[:, None] * onehot[perm]
    assert np.allclose(tr.last_targets, target, rtol=0, atol=1e-15)
    assert m.loss == pytest.approx(before.loss(xm, target)[0], rel=1e-12)
    scores = before.forward(xm, "train")
    assert m.accuracy == np.mean(scores.argmax(axis=1) == target.argmax(axis=1))


def test_cutout_stays_label_preserving_and_a_labelled_callable_is_used(digits):
    net = small_cnn()
    tr = Trainer(net, digits, batch_size=16, epochs=1, augment=D.AugmentSettings(cutout_on=True))
    tr.step()
    assert not tr.mixes_labels and tr.last_targets.dtype.kind == "i"

    def halves(x, y, rng):
        t = np.full((len(y), 10), 0.5 / 9)
        t[np.arange(len(y)), y] = 0.5
        return x, t
    halves.takes_labels = True
    tr = Trainer(small_cnn(), digits, batch_size=16, epochs=1, augment=halves)
    m = tr.step()
    assert tr.mixes_labels and np.allclose(tr.last_targets.max(axis=1), 0.5) and np.isfinite(m.loss)


def test_bad_augmentations_are_refused(digits):
    with pytest.raises(ValueInputError, match="mixup trains on soft labels.*multiclass SVM"):
        Trainer(small_cnn(loss="svm"), digits, augment=D.AugmentSettings(mix="mixup"))
    with pytest.raises(ShapeError, match="image augmentation needs image inputs"):
        Trainer(Network((2,), [Linear(3)]), (np.zeros((4, 2)), np.zeros(4, int), None, None),
                augment=D.AugmentSettings())
    with pytest.raises(ValueInputError, match="augment must be AugmentSettings or a callable"):
        Trainer(small_cnn(), digits, augment="mixup")


# ------------------------------------------------------------------------------------------------ the playground model

@pytest.fixture
def digits_model():
    from simulator.labs import playground as P
    m = P.PlaygroundLabModel()
    m.set_data_settings(P.DataSettings(dataset=P.DIGITS, points=400))
    m.set_raw_data(*run_job(m.data_job()))
    m.set_network((Flatten(), Linear(16), Activation("relu")))
    return m


def test_playground_trains_with_the_preview_mixing(digits_model):
    from simulator.labs import playground as P
    m = digits_model
    assert m.augment_settings == P.TRAINING_AUGMENT and not m.augment_settings.mixes_labels
    events = []
    m.changed.connect(events.append)
    m.set_augment(D.AugmentSettings(shift_on=False, rotate_on=False, mix="cutmix"))
    assert events == ["training"]
    m.set_training(m.train.replace(augment=True, epochs=2, batch_size=32))
    s = m.new_session()
    assert s.trainer.augment == m.augment_settings and s.trainer.mixes_labels
    run_job(P.training_job(s, viz_interval=1e9))
    assert s.trainer.last_targets.ndim == 2 and np.isfinite(s.trainer.history.loss).all()
    with pytest.raises(ValueInputError, match="AugmentSettings"):
        m.set_augment({"mix": "mixup"})


def test_playground_loss_floor(digits_model):
    m = digits_model
    assert m.loss_floor() == 0.0
    m.set_network((Flatten(),), label_smoothing=0.1)
    assert m.loss_floor() == pytest.approx(L.smoothed_entropy(10, 0.1), rel=1e-15)
    s = m.new_session()
    assert s.network.label_smoothing == 0.1 and m.loss_floor(s) == m.loss_floor()


def test_linear_scaling_hint_and_its_warm_up(digits_model):
    from simulator.labs import playground as P
    m = digits_model
    m.set_training(m.train.replace(batch_size=64, lr=0.003, epochs=20))
    assert m.lr_scaling_hint(64, 0.003) is None
    m.set_training(m.train.replace(batch_size=256))
    h = m.lr_scaling_hint(64, 0.003)
    per_epoch = -(-320 // 256)                              # 320 training images
    assert (h.factor, h.new_lr, h.warmup_steps, h.start_factor) == (4, pytest.approx(0.012), 5 * per_epoch, 0.25)
    assert "batch ×4 → lr ×4: 0.003 → 0.012" in h.text and "warm-up over 10 updates (5 epochs)" in h.text
    m.apply_lr_scaling(h)
    assert m.train.lr == pytest.approx(0.012) and m.hyper.lr == pytest.approx(0.012)
    assert m.train.schedule == "Constant" and m.warmup == {"warmup_steps": 10, "start_factor": 0.25}
    sched = m.schedule()
    assert sched.lr_at(0) == pytest.approx(0.003) and sched.lr_at(10) == pytest.approx(0.012)
    # smaller batches: the rate follows, no warm-up; a warm-up already set is kept
    h2 = m.lr_scaling_hint(256, 0.012, 128)
    assert "batch ÷2 → lr ÷2" in h2.text and h2.warmup_steps == 0 and h2.new_lr == pytest.approx(0.006)
    assert m.lr_scaling_hint(128, 0.006, 512).warmup_steps == 0
    with pytest.raises(ValueInputError, match="batch size must be ≥ 1"):
        m.lr_scaling_hint(0, 0.1)
    with pytest.raises(ValueInputError, match="LrScalingHint"):
        m.apply_lr_scaling(0.1)
    assert isinstance(h, P.LrScalingHint)
