"""The Classifiers lab's model: kNN data, regions and cross-validation, the linear classifier's steps, and refusals
that leave the state as it was."""
from __future__ import annotations

import numpy as np
import pytest

from simulator.core.errors import ValueInputError
from simulator.core.jobs import run_job
from simulator.data.datasets import TOY_DEFAULTS
from simulator.labs.classic_lab import (DIGITS, ClassicLabModel, CvSettings, KnnDataSettings, KnnLabModel,
                                        KnnSettings, LinearLabModel, LinearSettings)
from simulator.labs.classifiers import DEMO_X, DEMO_Y, KNearestNeighbor, decision_grid


@pytest.fixture(scope="module")
def prepared():
    model = ClassicLabModel()
    return run_job(model.prepare())


def test_knn_data_follows_its_settings_and_each_set_has_its_own_noise():
    m = KnnLabModel()
    calls = []
    m.changed.connect(lambda: calls.append(1))
    assert m.data == KnnDataSettings() and m.X.shape == (200, 2) and m.num_classes == 3
    m.choose_dataset("moons")
    assert m.data.noise == TOY_DEFAULTS["moons"].noise == 0.1 and m.num_classes == 2 and calls == [1]
    m.choose_dataset("circles")
    assert m.data.noise == TOY_DEFAULTS["circles"].noise == 0.05 and calls == [1, 1]
    m.choose_dataset("moons")
    m.set_data(m.data.replace(points=120))
    assert len(m.X) == 120
    X0 = m.X.copy()
    m.new_sample()
    assert not np.array_equal(X0, m.X) and m.sample == 1
    with pytest.raises(ValueInputError, match="Points must be ≥ 10"):
        m.set_data(m.data.replace(points=3))
    assert len(m.X) == 120


def test_regions_are_the_knn_prediction_on_the_grid():
    m = KnnLabModel()
    m.set_settings(KnnSettings(k=5, distance="L1 (Manhattan)"))
    rect = (-1.5, 1.5, -1.0, 1.0)
    Z, got = run_job(m.regions_job(rect, 40))
    ref = KNearestNeighbor(5, "l1").train(m.X, m.y, num_classes=3)
    np.testing.assert_array_equal(Z, decision_grid(ref.predict, rect[:2], rect[2:], 40)[2])
    m.set_regions((Z, got))
    assert m.region is Z and m.region_rect == rect
    with pytest.raises(ValueInputError, match="non-empty rectangle"):
        m.regions_job((1, 0, 0, 1))


def test_points_are_added_and_removed_and_bad_points_refused():
    m = KnnLabModel()
    m.choose_dataset("blobs")
    n = len(m.X)
    m.add_point(0.0, 0.0, 2)
    assert len(m.X) == n + 1 and m.y[-1] == 2 and m.region is None
    with pytest.raises(ValueInputError, match="class must be ≤ 2"):
        m.add_point(0.0, 0.0, 7)
    with pytest.raises(ValueInputError, match="x must be a finite number"):
        m.add_point(float("nan"), 0.0, 0)
    assert len(m.X) == n + 1
    m.remove_nearest(0.01, 0.0)
    assert len(m.X) == n and not np.any(np.all(m.X == 0.0, axis=1))


def test_cross_validation_needs_a_point_per_fold_and_matches_the_function():
    m = KnnLabModel()
    while len(m.X) > 3:
        m.remove_nearest(*m.X[0])
    assert m.cv_refusal() == "5 folds need at least 5 points; there are 3. Add points or lower the folds."
    with pytest.raises(ValueInputError, match="5 folds need at least 5 points"):
        m.cross_validation()
    m.set_cv(CvSettings(folds=3, kmax=2))
    ks, acc = run_job(m.cross_validation())
    assert ks.tolist() == [1, 2] and acc.shape == (2, 3)
    m.set_cv_result((ks, acc))
    k, mean, std = m.best_k()
    assert k == ks[np.argmax(acc.mean(axis=1))] and mean == pytest.approx(acc.mean(axis=1).max())


def test_digits_wait_for_prepare_then_answer_queries(prepared):
    m = KnnLabModel()
    m.choose_dataset(DIGITS)
    assert m.cv_refusal() == "The digits are still loading."
    with pytest.raises(ValueInputError, match="still loading"):
        m.digit_query(0)
    images, labels = prepared
    assert images.shape == (1797, 1, 8, 8)
    model = ClassicLabModel()
    model.set_prepared(prepared)
    knn = model.knn
    knn.choose_dataset(DIGITS)
    knn.set_settings(KnnSettings(k=4))
    Xtr, ytr, Xv, yv = knn.digits
    assert len(Xtr) + len(Xv) == 1797 and knn.cv_points() == len(Xtr)
    r = knn.digit_query(7)
    ref = KNearestNeighbor(4).train(Xtr, ytr).neighbours(Xv[7])
    np.testing.assert_array_equal(r["neighbours"], ref)
    assert r["distances"][0] == pytest.approx(np.sqrt(((Xtr[ref[0]] - Xv[7]) ** 2).sum()))
    with pytest.raises(ValueInputError, match="query must be ≤"):
        knn.digit_query(10**6)


def test_linear_steps_lower_the_loss_and_settings_apply_without_a_step(prepared):
    m = LinearLabModel()
    np.testing.assert_array_equal(m.y, DEMO_Y)
    np.testing.assert_allclose(m.X, DEMO_X / np.abs(DEMO_X).max())
    loss0 = m.breakdown().loss
    assert m.step(50) and m.clf.steps == 50 and m.breakdown().loss < loss0
    m.set_settings(m.settings.replace(loss="Softmax", reg=1.0))
    assert m.clf.loss == "softmax" and m.clf.reg == 1.0 and m.clf.steps == 50
    m.set_settings(m.settings.replace(lr=10.0, reg=0.0))
    m.step(100)
    # SGD at lr 10 on the SVM loss: a finite loss either way; the classifier reports divergence if it happens
    assert m.diverged == (not np.all(np.isfinite(m.clf.W)))
    m.set_settings(m.settings.replace(data=DIGITS))          # not loaded yet: refused to step, nothing breaks
    assert not m.ready and m.settings.lr == 0.1               # the digits cap the learning rate
    with pytest.raises(ValueInputError, match="still loading"):
        m.step(1)
    m.set_digits(*prepared)
    assert m.ready and m.clf.W.shape == (64, 10)
    acc0 = m.breakdown().accuracy
    m.step(40)
    assert m.breakdown().accuracy > max(acc0, 0.8)
    with pytest.raises(ValueInputError, match="Learning rate must be ≤ 10"):
        LinearSettings(lr=11)
