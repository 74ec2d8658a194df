"""Preprocessing: zero-centre, normalise, PCA-rotate, whiten; fitted on the training split only."""
from __future__ import annotations

import numpy as np
import pytest

from simulator.core.errors import ShapeError, ValueInputError
from simulator.data.datasets import Standardizer
from simulator.data.preprocess import (
    STAGES,
    STD_FLOOR,
    PreprocessViewSettings,
    Whitener,
    covariance,
    ellipse,
    fit_preprocess,
    pca,
    preprocess_stages,
    stage_data,
)


def cloud(n=400, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 2)) @ np.array([[2.0, 0.0], [1.5, 0.4]]) + [3.0, -1.0]


def test_whitened_training_data_have_identity_covariance_and_pca_rotated_diagonal():
    X = cloud()
    w = fit_preprocess(X, "PCA whiten")
    Z = w.apply(X)
    np.testing.assert_allclose(Z.mean(axis=0), 0.0, atol=1e-12)
    assert np.abs(covariance(Z) - np.eye(2)).max() < 1e-10
    mean, U, S = pca(X)
    R = (X - mean) @ U
    C = covariance(R)
    assert abs(C[0, 1]) < 1e-10 and abs(C[1, 0]) < 1e-10
    np.testing.assert_allclose(np.diag(C), S, rtol=1e-12)
    assert S[0] > S[1] > 0
    # the stages the view draws agree
    st = preprocess_stages(X)
    assert list(st) == list(STAGES)
    assert np.abs(st["whitened"].cov - np.eye(2)).max() < 1e-10
    assert abs(st["decorrelated (PCA-rotated)"].cov[0, 1]) < 1e-10
    np.testing.assert_allclose(np.diag(st["normalised"].cov), 1.0, rtol=1e-12)
    np.testing.assert_allclose(st["zero-centred"].mean, 0.0, atol=1e-12)
    np.testing.assert_allclose(st["whitened"].before_cov, C, rtol=1e-12)
    np.testing.assert_allclose(w.invert(Z), X, atol=1e-12)


def test_validation_uses_the_training_statistics_checked_by_hand():
    Xtr = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0], [2.0, 4.0]])     # mean (1, 2), std (1, 2)
    Xv = np.array([[3.0, 6.0], [1.0, 2.0]])
    zc = fit_preprocess(Xtr, "zero-centre")
    np.testing.assert_array_equal(zc.apply(Xv), [[2.0, 4.0], [0.0, 0.0]])
    nm = fit_preprocess(Xtr, "normalise")
    np.testing.assert_array_equal(nm.apply(Xv), [[2.0, 2.0], [0.0, 0.0]])
    # covariance diag(1, 4): PCA puts the y axis first (variance 4); whitening divides by the stds 2 and 1
    w = fit_preprocess(Xtr, "PCA whiten")
    np.testing.assert_allclose(w.U, [[0.0, 1.0], [1.0, 0.0]], atol=1e-15)
    np.testing.assert_allclose(w.apply(Xv), [[2.0, 2.0], [0.0, 0.0]], atol=1e-12)
    # statistics of the validation set itself are never used: its mean is not subtracted
    assert not np.allclose(w.apply(Xv).mean(axis=0), 0)
    assert fit_preprocess(Xtr, "none") is None


def test_images_zero_centre_and_normalise_per_channel_and_refuse_whitening():
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 16, (30, 1, 4, 4))
    zc = fit_preprocess(X, "zero-centre")
    assert isinstance(zc, Standardizer) and zc.mean.shape == (1, 4, 4)
    np.testing.assert_allclose(zc.apply(X).mean(axis=0), 0.0, atol=1e-12)
    nm = fit_preprocess(X, "normalise")
    np.testing.assert_allclose(nm.apply(X).std(), 1.0, rtol=1e-12)
    with pytest.raises(ValueInputError, match="PCA whitening is offered for 2-D points"):
        fit_preprocess(X, "PCA whiten")


def test_degenerate_data_get_our_error_or_the_documented_floor():
    for kind in ("zero-centre", "normalise", "PCA whiten"):
        with pytest.raises(ValueInputError, match="at least 2 training samples"):
            fit_preprocess(np.array([[1.0, 2.0]]), kind)
    with pytest.raises(ValueInputError, match="NaN"):
        fit_preprocess(np.array([[1.0, np.nan], [0.0, 0.0]]), "normalise")
    with pytest.raises(ValueInputError, match="unknown preprocessing"):
        fit_preprocess(cloud(), "sphere")
    # points on a line: one direction without spread keeps its (near-zero) values, floored at STD_FLOOR
    t = np.linspace(-1, 1, 21)
    X = np.c_[t, 2 * t] + [5.0, 1.0]
    w = fit_preprocess(X, "PCA whiten")
    assert isinstance(w, Whitener) and w.scale[1] == STD_FLOOR
    Z = w.apply(X)
    assert np.isfinite(Z).all()
    np.testing.assert_allclose(covariance(Z)[0, 0], 1.0, rtol=1e-12)
    assert np.abs(Z[:, 1]).max() < 1e-6
    const = np.ones((5, 2))
    assert np.isfinite(fit_preprocess(const, "normalise").apply(const)).all()
    with pytest.raises(ShapeError, match="2-D points"):
        preprocess_stages(np.zeros((4, 3)))


def test_ellipse_is_the_two_sigma_mahalanobis_contour():
    cov = np.array([[4.0, 1.2], [1.2, 1.0]])
    E = ellipse([1.0, -2.0], cov, 2.0, 64)
    d = E - [1.0, -2.0]
    m = np.einsum("ni,ij,nj->n", d, np.linalg.inv(cov), d)
    np.testing.assert_allclose(m, 4.0, rtol=1e-10)
    np.testing.assert_allclose(E[0], E[-1])


def test_view_data_sets():
    X = stage_data(PreprocessViewSettings())
    assert X.shape == (300, 2)
    mean, _, S = pca(X)
    assert np.linalg.norm(mean - [3.0, 2.0]) < 0.3 and S[0] / S[1] > 8     # stretched and off-centre
    assert stage_data(PreprocessViewSettings(dataset="moons", points=50)).shape == (50, 2)
