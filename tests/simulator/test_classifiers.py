"""kNN, k-fold cross-validation and the linear classifier against loop references, layers' losses and numerical
gradients."""
from __future__ import annotations

import numpy as np
import pytest

from simulator.functional import layers
from simulator.core.jobs import Progress, run_job
from simulator.labs.classifiers import (DEMO_X, DEMO_Y, KNearestNeighbor, LinearClassifier, cross_validate_k,
                                        cross_validation_job, decision_grid, kfold_indices, line_segment,
                                        pairwise_distances)
from simulator.core.errors import ShapeError, ValueInputError
from simulator.engine.gradcheck import numerical_gradient


def brute_force_predict(Xtr, ytr, Xq, k, distance):
    """Loops: distances one pair at a time; neighbours by (distance, index); vote by count, then nearest member."""
    preds = []
    for q in Xq:
        d = []
        for i, x in enumerate(Xtr):
            if distance == "l1":
                d.append((sum(abs(a - b) for a, b in zip(q, x)), i))
            else:
                d.append((np.sqrt(sum((a - b) ** 2 for a, b in zip(q, x))), i))
        d.sort()
        labels = [int(ytr[i]) for _, i in d[:k]]
        best, best_key = None, None
        for c in set(labels):
            key = (labels.count(c), -labels.index(c))
            if best_key is None or key > best_key:
                best, best_key = c, key
        preds.append(best)
    return np.array(preds)


@pytest.mark.parametrize("k", [1, 3, 5])
@pytest.mark.parametrize("distance", ["l1", "l2"])
def test_knn_matches_brute_force_loops(k, distance):
    rng = np.random.default_rng(k * 10 + len(distance))
    Xtr, ytr = rng.standard_normal((60, 4)), rng.integers(0, 3, 60)
    Xq = rng.standard_normal((25, 4))
    knn = KNearestNeighbor(k, distance).train(Xtr, ytr)
    np.testing.assert_array_equal(knn.predict(Xq), brute_force_predict(Xtr, ytr, Xq, k, distance))
    ref = [[np.abs(q - x).sum() if distance == "l1" else np.sqrt(((q - x) ** 2).sum()) for x in Xtr] for q in Xq]
    np.testing.assert_allclose(knn.distances(Xq), ref, rtol=1e-12)


@pytest.mark.parametrize("distance", ["l1", "l2"])
def test_knn_ties_on_a_lattice_are_broken_like_the_reference(distance):
    # integer points: many exactly equal distances, both among neighbours and among class counts
    rng = np.random.default_rng(3)
    Xtr, ytr = rng.integers(0, 4, (40, 2)).astype(float), rng.integers(0, 3, 40)
    Xq = rng.integers(0, 4, (30, 2)).astype(float)
    for k in (1, 2, 3, 4, 6):
        knn = KNearestNeighbor(k, distance).train(Xtr, ytr)
        np.testing.assert_array_equal(knn.predict(Xq), brute_force_predict(Xtr, ytr, Xq, k, distance))


def test_neighbours_order_and_single_query():
    X = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [3.0, 3.0]])
    knn = KNearestNeighbor(2, "l2").train(X, [0, 1, 1, 0])
    # (1, 0) and (0, 1) are equally far from the origin: the one stored first comes first
    np.testing.assert_array_equal(knn.neighbours([0.1, 0.0], 3), [0, 1, 2])
    np.testing.assert_array_equal(knn.neighbours(np.array([[0.0, 0.0], [3.0, 2.0]]), 2), [[0, 1], [3, 1]])
    assert knn.predict([[0.05, 0.05]])[0] == 0        # k=2: {0, 1} tie, the nearest member (class 0) wins
    images = np.arange(4 * 4).reshape(4, 1, 2, 2).astype(float)
    knn_img = KNearestNeighbor(1).train(images, [0, 1, 2, 3])
    np.testing.assert_array_equal(knn_img.neighbours(images[2], 2), [2, 1])


def test_knn_refuses_bad_arguments():
    with pytest.raises(ValueInputError, match="distance"):
        KNearestNeighbor(1, "cosine")
    with pytest.raises(ValueInputError, match="k must be"):
        KNearestNeighbor(0)
    with pytest.raises(ValueInputError, match="train"):
        KNearestNeighbor(1).predict(np.zeros((1, 2)))
    with pytest.raises(ShapeError, match="features"):
        KNearestNeighbor(1).train(np.zeros((3, 2)), [0, 1, 0]).predict(np.zeros((1, 3)))


@pytest.mark.parametrize("n, folds", [(10, 3), (17, 5), (100, 10), (7, 7)])
def test_folds_partition_the_data(n, folds):
    parts = kfold_indices(n, folds, seed=4)
    assert len(parts) == folds
    allidx = np.concatenate(parts)
    assert len(allidx) == n and set(allidx.tolist()) == set(range(n))      # disjoint and covering
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1
    assert all(np.array_equal(a, b) for a, b in zip(parts, kfold_indices(n, folds, seed=4)))
    assert not all(np.array_equal(a, b) for a, b in zip(parts, kfold_indices(n, folds, seed=5)))
    with pytest.raises(ValueInputError):
        kfold_indices(n, n + 1)


def test_cross_validation_shape_and_values():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((47, 3)), rng.integers(0, 3, 47)
    ks = [1, 2, 5, 9]
    done = []
    acc = run_job(cross_validation_job(X, y, ks, folds=4, distance="l1", seed=2),
                  lambda p: done.append((p.done, p.total)))
    assert acc.shape == (4, 4) and done == [(1, 4), (2, 4), (3, 4), (4, 4)]
    np.testing.assert_array_equal(acc, cross_validate_k(X, y, ks, folds=4, distance="l1", seed=2))
    for f, val in enumerate(kfold_indices(47, 4, seed=2)):
        mask = np.ones(47, bool)
        mask[val] = False
        for i, k in enumerate(ks):
            pred = brute_force_predict(X[mask], y[mask], X[val], k, "l1")
            assert acc[i, f] == pytest.approx(np.mean(pred == y[val]))


def test_cross_validation_on_separable_blobs_is_perfect():
    rng = np.random.default_rng(1)
    X = np.r_[rng.normal(-5, 0.3, (20, 2)), rng.normal(5, 0.3, (20, 2))]
    y = np.r_[np.zeros(20, int), np.ones(20, int)]
    np.testing.assert_array_equal(cross_validate_k(X, y, [1, 3, 7], folds=5), np.ones((3, 5)))


def test_decision_grid_orientation():
    xs, ys, Z = decision_grid(lambda P: (P[:, 0] > 0.5).astype(int) + 2 * (P[:, 1] > 0.0), (0, 1), (-1, 1), (4, 2))
    np.testing.assert_allclose(xs, [0.125, 0.375, 0.625, 0.875])
    np.testing.assert_allclose(ys, [-0.5, 0.5])
    np.testing.assert_array_equal(Z, [[0, 2], [0, 2], [1, 3], [1, 3]])   # Z[i, j] at (xs[i], ys[j])


# ----------------------------------------------------------------------------------------------- linear classifier

@pytest.mark.parametrize("loss", ["svm", "softmax"])
def test_linear_loss_matches_layers_plus_regulariser(loss):
    rng = np.random.default_rng(7)
    X, y = rng.standard_normal((13, 5)), rng.integers(0, 4, 13)
    clf = LinearClassifier(5, 4, loss=loss, reg=0.3, seed=1)
    clf.W[:] = rng.standard_normal(clf.W.shape)
    clf.b[:] = rng.standard_normal(4)
    total, dW, db, (scores, terms) = clf.loss_and_grads(X, y)
    fn = layers.svm_loss if loss == "svm" else layers.softmax_loss
    data, dscores = fn(X @ clf.W + clf.b, y)
    assert total == pytest.approx(float(data) + 0.3 * np.sum(clf.W ** 2), rel=1e-12)
    np.testing.assert_allclose(scores, X @ clf.W + clf.b)
    assert terms.mean() == pytest.approx(float(data), rel=1e-12)
    np.testing.assert_allclose(dW, X.T @ dscores + 0.6 * clf.W, rtol=1e-12)
    # each loss term by hand for the first example
    s, c = scores[0], y[0]
    if loss == "svm":
        ref = sum(max(0.0, s[j] - s[c] + 1) for j in range(4) if j != c)
    else:
        ref = -np.log(np.exp(s[c]) / np.exp(s).sum())
    assert terms[0] == pytest.approx(ref, rel=1e-12)


@pytest.mark.parametrize("loss", ["svm", "softmax"])
def test_linear_gradients_match_numerical(loss):
    rng = np.random.default_rng(11)
    X, y = rng.standard_normal((9, 3)), rng.integers(0, 3, 9)
    clf = LinearClassifier(3, 3, loss=loss, reg=0.1, seed=2)
    clf.W[:] = rng.standard_normal(clf.W.shape)
    _, dW, db, _ = clf.loss_and_grads(X, y)

    def loss_at(param):
        return lambda value: (param.__setitem__(slice(None), value), clf.loss_and_grads(X, y)[0])[1]

    W0, b0 = clf.W.copy(), clf.b.copy()
    num_dW = numerical_gradient(loss_at(clf.W), W0.copy())
    clf.W[:] = W0
    num_db = numerical_gradient(loss_at(clf.b), b0.copy())
    clf.b[:] = b0
    np.testing.assert_allclose(dW, num_dW, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(db, num_db, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("loss", ["svm", "softmax"])
def test_training_on_the_demo_data_lowers_the_loss_and_classifies(loss):
    clf = LinearClassifier(2, 3, loss=loss, reg=0.001, seed=0)
    first = clf.step(DEMO_X, DEMO_Y, 0.5)
    W0 = clf.W.copy()
    for _ in range(300):
        last = clf.step(DEMO_X, DEMO_Y, 0.5)
    assert last < first and not np.allclose(W0, clf.W)
    bd = clf.breakdown(DEMO_X, DEMO_Y)
    assert bd.accuracy == 1.0 and bd.loss == pytest.approx(bd.data_loss + bd.reg_loss)
    assert clf.steps == 301


def test_step_with_an_optimizer_from_optim():
    clf = LinearClassifier(2, 3, loss="softmax", seed=0)
    clf.use_optimizer("Adam")
    losses = [clf.step(DEMO_X, DEMO_Y, 0.05) for _ in range(50)]
    assert losses[-1] < losses[0]


def test_class_lines_and_directions():
    clf = LinearClassifier(2, 3, seed=0)
    clf.W[:] = [[1.0, 0.0, 1.0], [0.0, 2.0, 1.0]]
    clf.b[:] = [-0.5, 1.0, 5.0]
    lines = clf.class_lines((-1, 1), (-1, 1))
    a, b = lines[0]                                   # x = 0.5
    np.testing.assert_allclose(sorted([a[1], b[1]]), [-1, 1])
    assert a[0] == pytest.approx(0.5) and b[0] == pytest.approx(0.5)
    a, b = lines[1]                                   # y = -0.5
    assert a[1] == pytest.approx(-0.5) and b[1] == pytest.approx(-0.5)
    assert lines[2] is None                           # x + y = -5 misses the box
    anchors, dirs = clf.score_directions()
    np.testing.assert_allclose(anchors[0], [0.5, 0.0])
    np.testing.assert_allclose(anchors[1], [0.0, -0.5])
    np.testing.assert_allclose(dirs, clf.W.T)
    assert line_segment(np.zeros(2), 1.0, (0, 1), (0, 1)) is None


def test_linear_refuses_bad_arguments():
    with pytest.raises(ValueInputError, match="loss"):
        LinearClassifier(2, 3, loss="hinge")
    with pytest.raises(ValueInputError, match="reg"):
        LinearClassifier(2, 3, reg=-1)
    clf = LinearClassifier(2, 3)
    with pytest.raises(ShapeError, match="features"):
        clf.loss_and_grads(np.zeros((2, 3)), [0, 1])
    with pytest.raises(ValueInputError, match="out of range"):
        clf.loss_and_grads(np.zeros((2, 2)), [0, 3])
    with pytest.raises(ValueInputError, match="lr"):
        clf.step(DEMO_X, DEMO_Y, float("nan"))


def test_pairwise_distances_high_dimensional_chunks():
    rng = np.random.default_rng(5)
    A, B = rng.standard_normal((30, 40)), rng.standard_normal((50, 40))
    ref = np.sqrt(((A[:, None] - B[None]) ** 2).sum(-1))
    np.testing.assert_allclose(pairwise_distances(A, B, "l2"), ref, rtol=1e-12)
    np.testing.assert_allclose(pairwise_distances(A, B, "l1"), np.abs(A[:, None] - B[None]).sum(-1), rtol=1e-12)


def test_cross_validation_job_stops_between_folds_when_closed():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((40, 2)), rng.integers(0, 2, 40)
    job = cross_validation_job(X, y, [1, 3], folds=5)
    assert next(job) == Progress(1, 5, "fold 1 of 5")
    job.close()                                   # cancelled: no more folds are computed
    with pytest.raises(StopIteration):
        next(job)


def test_knn_on_an_empty_training_set_is_refused_and_keeps_its_state():
    knn = KNearestNeighbor(1).train(np.array([[0.0, 0.0], [1.0, 1.0]]), [0, 1])
    for X, y in ((np.zeros((0, 2)), []), ([], []), (np.zeros((0, 3, 4)), np.zeros(0, int))):
        with pytest.raises(ValueInputError, match="at least one training point"):
            knn.train(X, y)
    assert knn.X.shape == (2, 2) and knn.sample_shape == (2,)         # still the model trained before
    np.testing.assert_array_equal(knn.predict([[0.9, 0.9]]), [1])
    with pytest.raises(ValueInputError, match="out of range for 2 classes"):
        knn.train([[0.0, 0.0]], [5], num_classes=2)
    assert knn.num_classes == 2
    with pytest.raises(ValueInputError, match="empty data set"):
        cross_validation_job(np.zeros((0, 2)), [], [1])
    with pytest.raises(ValueInputError, match="5 folds need at least 5 points; there are 3"):
        cross_validation_job(np.zeros((3, 2)), [0, 1, 0], [1], folds=5)


def test_decision_grid_and_linear_classifier_refuse_non_finite_or_bad_values():
    with pytest.raises(ValueInputError, match="finite"):
        decision_grid(lambda P: np.zeros(len(P)), (0, float("inf")), (0, 1), 4)
    with pytest.raises(ValueInputError, match="weight scale"):
        LinearClassifier(2, 3, weight_scale=float("nan"))
    with pytest.raises(ValueInputError, match="seed"):
        LinearClassifier(2, 3, seed=-1)
