"""InfoNCE / NT-Xent (SimCLR's contrastive loss): the functional forward/backward against a plain loop and PyTorch,
float64 numerical gradients, edge cases, the graph op, and the network loss kind the Trainer trains with."""
from __future__ import annotations

import math

import numpy as np
import pytest

from simulator.core.errors import ShapeError, ValueInputError
from simulator.engine.api import evaluate
from simulator.engine.gradcheck import numerical_gradient, relative_error
from simulator.functional import layers as L
from simulator.nn.network import LOSSES, Activation, Linear, Network, Objective
from simulator.nn.trainer import Trainer
from simulator.ops import REGISTRY


def loop_infonce(z, partner, tau):
    """The definition, one row and one similarity at a time (math, no vectorisation)."""
    z = np.asarray(z, np.float64)
    m = len(z)
    unit = []
    for row in z:
        n = math.sqrt(sum(v * v for v in row))
        unit.append([v / max(n, 1e-12) for v in row])
    total = 0.0
    for i in range(m):
        logits = {k: sum(a * b for a, b in zip(unit[i], unit[k])) / tau for k in range(m) if k != i}
        top = max(logits.values())
        lse = top + math.log(sum(math.exp(v - top) for v in logits.values()))
        total += lse - logits[int(partner[i])]
    return total / m


def loop_accuracy(z, partner):
    z = np.asarray(z, np.float64)
    unit = z / np.linalg.norm(z, axis=1, keepdims=True)
    hits = 0
    for i in range(len(z)):
        best = max((k for k in range(len(z)) if k != i), key=lambda k: (float(unit[i] @ unit[k]), -k))
        hits += best == partner[i]
    return hits / len(z)


CASES = [((4, 3), None, 0.5), ((6, 5), None, 0.1), ((8, 2), None, 1.0), ((10, 16), None, 0.07),
         ((5, 4), [1, 2, 3, 4, 0], 0.5), ((6, 3), [3, 4, 5, 0, 1, 2], 2.0)]


@pytest.mark.parametrize("shape, partner, tau", CASES)
def test_forward_matches_a_plain_loop(shape, partner, tau):
    z = np.random.default_rng(shape[0] * 7 + shape[1]).normal(size=shape)
    p = L.default_partners(shape[0]) if partner is None else np.asarray(partner)
    loss, _ = L.infonce_forward(z, partner, tau)
    assert float(loss) == pytest.approx(loop_infonce(z, p, tau), rel=1e-12)
    assert L.contrastive_accuracy(z, partner) == loop_accuracy(z, p)


@pytest.mark.parametrize("shape, partner, tau", CASES)
def test_backward_matches_float64_numerical_gradient(shape, partner, tau):
    z = np.random.default_rng(shape[0] + 100 * shape[1]).normal(size=shape)
    _, dz = L.infonce_loss(z, partner, tau)
    assert dz.shape == z.shape and dz.dtype == np.float64
    numeric = numerical_gradient(lambda x: float(L.infonce_forward(x, partner, tau)[0]), z.copy())
    assert relative_error(dz, numeric).max() < 1e-6
    # the loss cannot see a row's length: the gradient has no radial part
    np.testing.assert_allclose(np.einsum("ij,ij->i", dz, z), 0.0, atol=1e-12)


def test_backward_scales_with_the_upstream_gradient():
    z = np.random.default_rng(3).normal(size=(6, 4))
    _, cache = L.infonce_forward(z, None, 0.3)
    np.testing.assert_allclose(L.infonce_backward(-2.5, cache), -2.5 * L.infonce_backward(1.0, cache), rtol=1e-12,
                               atol=1e-15)


def test_float32_in_gives_float32_out_matching_float64():
    z = np.random.default_rng(4).normal(size=(16, 8))
    l64, d64 = L.infonce_loss(z, None, 0.2)
    l32, d32 = L.infonce_loss(z.astype(np.float32), None, 0.2)
    assert isinstance(l32, np.float32) and d32.dtype == np.float32
    assert float(l32) == pytest.approx(float(l64), rel=1e-5)
    np.testing.assert_allclose(d32, d64, rtol=1e-3, atol=1e-5)


def test_one_pair_has_zero_loss_and_zero_gradient():
    # N = 1: each row's only other row is its partner, so the softmax over it is 1 whatever the similarity
    z = np.array([[1.0, 2.0, -0.5], [-3.0, 0.1, 0.7]])
    loss, dz = L.infonce_loss(z, None, 0.1)
    assert float(loss) == 0.0
    np.testing.assert_array_equal(dz, 0.0)
    assert L.contrastive_accuracy(z) == 1.0


def test_identical_views_far_apart_from_the_rest_give_a_small_loss_and_full_accuracy():
    base = np.eye(4)
    z = np.concatenate([base, base])                      # rows i and i + 4 identical, pairs orthogonal
    loss, _ = L.infonce_loss(z, None, 0.1)
    # each row: logit 10 for its partner, 0 for the 6 others
    assert float(loss) == pytest.approx(math.log(math.exp(10) + 6) - 10, rel=1e-12)
    assert L.contrastive_accuracy(z) == 1.0


def test_a_zero_row_stays_finite_as_with_F_normalize():
    z = np.random.default_rng(5).normal(size=(6, 3))
    z[2] = 0.0
    loss, dz = L.infonce_loss(z, None, 0.5)
    assert np.isfinite(loss) and np.all(np.isfinite(dz))
    # the zero row's cosine similarities are all 0: the loop's normalisation (x / max(|x|, eps)) agrees
    assert float(loss) == pytest.approx(loop_infonce(z, L.default_partners(6), 0.5), rel=1e-12)


@pytest.mark.parametrize("tau", [0.0, -0.1, float("nan"), float("inf"), "0.5", None])
def test_a_bad_temperature_is_our_error(tau):
    with pytest.raises(ValueInputError, match="temperature"):
        L.infonce_loss(np.ones((4, 2)), None, tau)


@pytest.mark.parametrize("z, partner, error, words", [
    (np.ones((5, 2)), None, ShapeError, "even number of rows"),
    (np.ones((1, 2)), None, ShapeError, "at least two rows"),
    (np.ones(4), None, ShapeError, "2-D"),
    (np.ones((4, 2)), [1, 0, 3], ShapeError, "one partner index per row"),
    (np.ones((4, 2)), [1, 0, 3, 3], ValueInputError, "row 3 is its own partner"),
    (np.ones((4, 2)), [1, 0, 3, 4], ValueInputError, "out of range"),
    (np.ones((4, 2)), [1.0, 0.0, 3.0, 2.0], ValueInputError, "integers"),
])
def test_bad_shapes_and_partners_are_our_errors(z, partner, error, words):
    with pytest.raises(error, match=words):
        L.infonce_forward(z, partner, 0.5)


def test_partners_from_image_ids():
    ids = np.array([7, 3, 9, 3, 7, 9])
    p = L.partners_from_ids(ids)
    np.testing.assert_array_equal(p, [4, 3, 5, 1, 0, 2])
    assert np.all(p[p] == np.arange(6))
    with pytest.raises(ValueInputError, match="id 3 appears 3 time"):
        L.partners_from_ids([3, 3, 3, 1, 1, 5, 5])
    with pytest.raises(ValueInputError, match="id 2 appears 1 time"):
        L.partners_from_ids([1, 1, 2])
    with pytest.raises(ValueInputError, match="integers"):
        L.partners_from_ids([1.0, 1.0])


# ------------------------------------------------------------------------------------------------ against PyTorch

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape, partner, tau", CASES[:5])
def test_matches_torch_cross_entropy_on_masked_similarity_logits(dtype, shape, partner, tau):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    z = np.random.default_rng(shape[0]).normal(size=shape).astype(dtype)
    if shape[0] > 4:
        z[1] = 0.0                                         # a zero row: F.normalize's eps
    p = L.default_partners(shape[0]) if partner is None else np.asarray(partner)
    t = torch.tensor(z, requires_grad=True)
    u = F.normalize(t, dim=1)
    logits = (u @ u.T / tau).masked_fill(torch.eye(shape[0], dtype=torch.bool), float("-inf"))
    ref = F.cross_entropy(logits, torch.tensor(p))
    ref.backward()
    loss, dz = L.infonce_loss(z, partner, tau)
    tol = 1e-12 if dtype == np.float64 else 2e-5
    assert float(loss) == pytest.approx(ref.item(), rel=tol)
    g = t.grad.numpy()
    np.testing.assert_allclose(dz, g, rtol=tol * 10, atol=tol * np.abs(g).max())


# ------------------------------------------------------------------------------------------------ the graph op

def test_the_op_is_registered_and_agrees_with_the_function():
    spec = REGISTRY["infonce"]
    assert spec.family == "loss" and spec.nondiff == {"y"}
    z = np.random.default_rng(6).normal(size=(6, 3))
    y = np.array([3.0, 4.0, 5.0, 0.0, 1.0, 2.0])
    out, cache = spec.forward(z, y, temperature=0.2)
    assert float(out) == pytest.approx(float(L.infonce_forward(z, None, 0.2)[0]), rel=1e-14)
    dz, dy = spec.backward(np.array(1.0), cache)
    np.testing.assert_allclose(dz, L.infonce_loss(z, None, 0.2)[1], rtol=1e-14)
    assert dy is None
    assert spec.infer_shape((6, 3), (6,)) == ()
    with pytest.raises(ShapeError, match=r"\(6, 3\).*\(5,\)"):
        spec.infer_shape((6, 3), (5,))
    with pytest.raises(ValueInputError, match="whole numbers"):
        spec.forward(z, y + 0.5)


def test_a_contrastive_network_expands_to_a_graph_with_the_same_loss_and_gradients():
    net = Network((4,), [Linear(6), Activation("tanh"), Linear(3)], loss="infonce", temperature=0.3,
                  dtype=np.float64, seed=2)
    x = np.random.default_rng(7).normal(size=(6, 4))
    ids = np.array([5, 1, 8, 1, 8, 5])
    loss, grads = net.loss(x, ids)
    g = net.to_graph(x, ids)
    assert g.node("loss").op == "infonce"
    r = evaluate(g)
    assert float(r.value) == pytest.approx(loss, rel=1e-12)
    for name, grad in grads.items():
        np.testing.assert_allclose(r.grads[Network.graph_name(name)], grad, rtol=1e-9, atol=1e-12)


# ------------------------------------------------------------------------------------------------ the network loss

def test_infonce_is_a_network_loss_but_not_a_builder_choice():
    assert "infonce" not in LOSSES
    with pytest.raises(ValueInputError):
        Objective(loss="infonce")
    net = Network((4,), [Linear(3)], loss="infonce", temperature=0.25, seed=0)
    assert net.loss_kind == "infonce" and net.temperature == 0.25
    assert net.copy().temperature == 0.25 and net.astype(np.float64).loss_kind == "infonce"
    with pytest.raises(ValueInputError, match="temperature"):
        Network((4,), [Linear(3)], loss="infonce", temperature=0.0)
    with pytest.raises(ValueInputError, match="label smoothing"):
        Network((4,), [Linear(3)], loss="infonce", label_smoothing=0.1)


def test_network_loss_accuracy_and_evaluation_use_image_ids():
    net = Network((4,), [Linear(8), Activation("relu"), Linear(3)], loss="infonce", temperature=0.5,
                  dtype=np.float64, seed=1)
    rng = np.random.default_rng(8)
    x = rng.normal(size=(10, 4))
    ids = np.array([0, 1, 2, 3, 4, 4, 3, 2, 1, 0])
    partner = L.partners_from_ids(ids)
    scores = net.forward(x)
    loss, _ = net.data_loss(scores, ids)
    assert loss == pytest.approx(float(L.infonce_forward(scores, partner, 0.5)[0]), rel=1e-14)
    assert net.batch_accuracy(scores, ids) == loop_accuracy(scores, partner)
    # evaluate() keeps both views of an image in one chunk: with chunks of 4 rows, pairs (0, 9), (1, 8) ...
    # are scored two pairs at a time
    ev_loss, ev_acc = net.evaluate(x, ids, batch_size=4)
    order = np.argsort(ids, kind="stable")
    parts = [order[i:i + 4] for i in range(0, 10, 4)]
    want = sum(net.data_loss(scores[p], ids[p])[0] * len(p) for p in parts) / 10
    assert ev_loss == pytest.approx(want, rel=1e-12)
    assert ev_acc == pytest.approx(sum(net.batch_accuracy(scores[p], ids[p]) * len(p) for p in parts) / 10)
    assert net.accuracy(x, ids, batch_size=4) == ev_acc
    with pytest.raises(ValueInputError, match="exactly twice"):
        net.evaluate(x[:9], ids[:9])


def test_evaluation_splits_the_pairs_into_near_equal_chunks():
    """9 pairs in chunks of at most 8 rows (4 pairs): ceil(9 / 4) = 3 chunks of 3 pairs each, not 4 + 4 + 1 (a
    lone pair scores loss 0 and accuracy 1 and would lift the mean); 11 pairs: 4 + 4 + 3."""
    net = Network((4,), [Linear(8), Activation("relu"), Linear(3)], loss="infonce", temperature=0.5,
                  dtype=np.float64, seed=2)
    rng = np.random.default_rng(11)
    for pairs, sizes in ((9, (3, 3, 3)), (11, (4, 4, 3))):
        ids = rng.permutation(np.concatenate([np.arange(pairs), np.arange(pairs)]))
        x = rng.normal(size=(2 * pairs, 4))
        scores = net.forward(x)
        order = np.argsort(ids, kind="stable")
        cuts = np.cumsum([0, *sizes]) * 2
        parts = [order[a:b] for a, b in zip(cuts[:-1], cuts[1:])]
        assert all(len(set(ids[p])) == len(p) // 2 for p in parts)        # whole pairs in every chunk
        want_loss = sum(loop_infonce(scores[p], L.partners_from_ids(ids[p]), 0.5) * len(p) for p in parts)
        want_acc = sum(loop_accuracy(scores[p], L.partners_from_ids(ids[p])) * len(p) for p in parts)
        loss, acc = net.evaluate(x, ids, batch_size=8)
        assert loss == pytest.approx(want_loss / (2 * pairs), rel=1e-12)
        assert acc == pytest.approx(want_acc / (2 * pairs), rel=1e-12)
    # one pair alone: the easy task the even split avoids
    assert net.evaluate(rng.normal(size=(2, 4)), np.array([0, 0])) == (0.0, 1.0)


def test_the_trainer_trains_on_two_views_per_image_and_reports_contrastive_accuracy():
    """A takes_labels augmentation returns 2B views with their image ids; StepMetrics' accuracy is the top-1
    contrastive accuracy of the batch's embeddings before the update (not an argmax of an embedding)."""
    rng = np.random.default_rng(9)
    X = rng.normal(size=(32, 5))
    seen = []

    def two_views(xb, ids, r):                             # the batch's rows name images; two fresh views of each
        u = np.unique(ids)
        xa = np.concatenate([X[u] + 0.3 * r.normal(size=(len(u), 5)), X[u] + 0.3 * r.normal(size=(len(u), 5))])
        seen.append((xa, np.concatenate([u, u])))
        return seen[-1]
    two_views.takes_labels = True

    net = Network((5,), [Linear(16), Activation("relu"), Linear(8)], loss="infonce", temperature=0.2,
                  dtype=np.float64, seed=3)
    pairs = np.concatenate([X + 0.3 * rng.normal(size=X.shape), X + 0.3 * rng.normal(size=X.shape)])
    ids = np.concatenate([np.arange(32), np.arange(32)])
    tr = Trainer(net, (pairs, ids, None, None), lr=3e-2, batch_size=16, epochs=20, seed=0, augment=two_views)
    before = net.copy()
    m = tr.step()
    xa, ta = seen[-1]
    assert len(xa) == 2 * len(np.unique(ta)) and np.array_equal(tr.last_targets, ta)
    assert m.accuracy == before.batch_accuracy(before.forward(xa, "train"), ta)
    assert m.loss == pytest.approx(before.loss(xa, ta)[0], rel=1e-12)
    first_loss, first_acc = before.evaluate(pairs, ids)
    tr.run()
    # measured: loss 2.91 -> 1.70, accuracy on the fixed pairs 0.44 -> 0.62
    assert tr.history.train_loss[-1] < first_loss - 0.8
    assert tr.history.train_accuracy[-1] > first_acc + 0.1
    # the epoch's full-set numbers are scored in chunks of 2 x batch_size rows (16 images, two views each), so each
    # row has as many negatives as in training
    assert max(len(t) for _, t in seen) == 32
    loss, acc = net.evaluate(pairs, ids, batch_size=32)
    assert tr.history.train_loss[-1] == pytest.approx(loss, rel=1e-12)
    assert tr.history.train_accuracy[-1] == pytest.approx(acc, rel=1e-12)
    assert net.evaluate(pairs, ids)[0] > loss + 0.3                   # all 64 rows in one chunk: a harder task


def test_an_infonce_network_keeps_its_temperature_through_a_weights_file_and_is_not_exported(tmp_path):
    from simulator.core.errors import ValueInputError
    from simulator.nn.export_torch import write_torch_export
    from simulator.nn.network import Flatten, Linear, Network
    from simulator.nn.trainer import Trainer
    net = Network((1, 4, 4), [Flatten(), Linear(8)], loss="infonce", temperature=0.2, seed=3)
    net.save(tmp_path / "enc.bpsw")
    again = Network.load(tmp_path / "enc.bpsw")
    assert again.loss_kind == "infonce" and again.temperature == 0.2
    X = np.random.default_rng(0).standard_normal((6, 1, 4, 4)).astype(np.float32)
    ids = np.array([0, 1, 2, 0, 1, 2])
    np.testing.assert_allclose(again.loss(X, ids)[0], net.loss(X, ids)[0], rtol=1e-6)
    tr = Trainer(net, (X, ids, None, None), batch_size=6, epochs=1)
    with pytest.raises(ValueInputError, match="self-supervised"):
        write_torch_export(tmp_path / "out", net, tr.config(), (X, ids, X, ids))
