"""Data preprocessing as the lecture draws it: zero-centre, normalise, PCA-rotate (decorrelate) and whiten, fitted on
the training split only and applied unchanged to every other set (validation, the decision-boundary grid).

cs231n's recipe, on X (N, D) (an image (C, H, W) is a vector of C*H*W values for the statistics):

    mean = X_train.mean(axis=0)                      zero-centre:  X - mean
    std  = X_train.std(axis=0)                       normalise:    (X - mean) / std
    cov  = Xc.T @ Xc / N      (Xc = X_train - mean, the biased 1/N estimate, as the notes write it)
    cov  = U diag(S) U.T      (eigenvectors U as columns, S in decreasing order)
    PCA-rotate (decorrelate): (X - mean) @ U         covariance diag(S)
    whiten:                   (X - mean) @ U / sqrt(S)   covariance I

Degenerate data. Fewer than 2 training samples (no spread to measure) or non-finite values raise our
ValueInputError. A direction without spread (a constant feature, points on a line) would be divided by zero: its
standard deviation (or sqrt of its eigenvalue) is floored at STD_FLOOR = 1e-8, the floor
``simulator.data.datasets.Standardizer`` uses too, so such a direction stays (close to) 0 instead of blowing up.
No epsilon is added to the eigenvalues of well-spread data (the notes' ``S + 1e-5`` would leave whitened
covariance S/(S + 1e-5) instead of I).

Images. zero-centre subtracts the mean image; normalise is ``datasets.standardize`` (mean image, then one std per
channel), so the interpretability lab can invert both. PCA whitening is refused for images: it mixes every pixel
with every other, so convolutions no longer see a picture (the notes: "not used with images").
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from simulator.core.errors import ShapeError, ValueInputError
from simulator.core.params import Settings, check_choice, check_int, param
from simulator.data import datasets
from simulator.data.datasets import Standardizer

__all__ = ["PREPROCESS", "PREPROCESS_LABELS", "STAGES", "STD_FLOOR", "PreprocessViewSettings", "Stage", "Whitener",
           "covariance", "ellipse", "fit_preprocess", "pca", "preprocess_stages", "stage_data"]

PREPROCESS = ("none", "zero-centre", "normalise", "PCA whiten")
PREPROCESS_LABELS = ("none (raw inputs)", "zero-centre  x − μ", "normalise  (x − μ) / σ",
                     "PCA whiten  (x − μ)·U / √S")
STD_FLOOR = 1e-8
CORRELATED = "correlated gaussian"
STAGES = ("original", "zero-centred", "normalised", "decorrelated (PCA-rotated)", "whitened")


def _train_matrix(X: Any, what: str = "preprocessing") -> np.ndarray:
    X = np.asarray(X)
    if X.dtype.kind not in "biuf" or X.ndim < 2:
        raise ShapeError(f"{what} needs samples (N, D) or images (N, C, H, W) of numbers, got shape {X.shape}")
    if len(X) < 2:
        raise ValueInputError(f"{what} needs at least 2 training samples to measure their spread, got {len(X)}")
    X = X.reshape(len(X), -1).astype(np.float64)
    if not np.isfinite(X).all():
        raise ValueInputError(f"{what}: the training data hold NaN or infinity")
    return X


def covariance(X: Any) -> np.ndarray:
    """The (D, D) covariance of samples X (N, D) with the biased 1/N estimate (cs231n: Xc.T @ Xc / N)."""
    X = _train_matrix(X, "a covariance")
    Xc = X - X.mean(axis=0)
    return Xc.T @ Xc / len(X)


def pca(X: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean (D,), U (D, D) eigenvectors as columns, S (D,) eigenvalues, decreasing) of the covariance of X. Each
    eigenvector's largest component is made positive, so the rotation is the same on every machine."""
    X = _train_matrix(X, "PCA")
    mean = X.mean(axis=0)
    Xc = X - mean
    S, U = np.linalg.eigh(Xc.T @ Xc / len(X))
    order = np.argsort(S)[::-1]
    S, U = np.maximum(S[order], 0.0), U[:, order]
    sign = np.sign(U[np.argmax(np.abs(U), axis=0), np.arange(U.shape[1])])
    U = U * np.where(sign == 0, 1.0, sign)
    return mean, U, S


@dataclass(frozen=True)
class Whitener:
    """PCA rotation, optionally whitening: ``apply(X) = (X - mean) @ U / scale`` with scale = max(sqrt(S),
    STD_FLOOR) when whitening, 1 when only rotating; ``invert`` undoes it. Fitted by fit_preprocess / pca."""

    mean: np.ndarray       # (D,)
    U: np.ndarray          # (D, D), eigenvectors as columns
    scale: np.ndarray      # (D,)

    def apply(self, X: Any) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.mean.shape[0]:
            raise ShapeError(f"X has shape {X.shape}; the whitening was fitted on (N, {self.mean.shape[0]})")
        return (X - self.mean) @ self.U / self.scale

    def invert(self, X: Any) -> np.ndarray:
        return (np.asarray(X, dtype=np.float64) * self.scale) @ self.U.T + self.mean


def fit_preprocess(X_train: Any, kind: str) -> Standardizer | Whitener | None:
    """The transform ``kind`` (one of PREPROCESS) fitted on the training data only: None for 'none', a
    datasets.Standardizer for 'zero-centre' (std 1) and 'normalise', a Whitener for 'PCA whiten' (vectors only).
    Apply it with ``.apply(X)`` to the training set, the validation set and anything else the network sees."""
    kind = check_choice("preprocessing", kind, PREPROCESS)
    if kind == "none":
        return None
    X = np.asarray(X_train)
    flat = _train_matrix(X, kind)
    if kind == "normalise":
        return datasets.standardize(X.astype(np.float64))[0]
    if kind == "zero-centre":
        mean = X.astype(np.float64).mean(axis=0)
        return Standardizer(mean, np.ones(X.shape[1] if X.ndim == 4 else X.shape[1:]))
    if X.ndim != 2:
        raise ValueInputError("PCA whitening is offered for 2-D points and other vectors: on images it mixes every "
                              "pixel with every other, so convolutions no longer see a picture; choose zero-centre or "
                              "normalise")
    mean, U, S = pca(flat)
    return Whitener(mean, U, np.maximum(np.sqrt(S), STD_FLOOR))


# ============================================================================================ the lecture's pictures

@dataclass(frozen=True)
class Stage:
    """One picture: the data after a step (N, 2), its mean and covariance, and the input's ('before')."""

    name: str
    X: np.ndarray
    mean: np.ndarray
    cov: np.ndarray
    before_mean: np.ndarray
    before_cov: np.ndarray


def preprocess_stages(X: Any) -> dict[str, Stage]:
    """Every step of the lecture's two pictures on 2-D data X (N, 2), all fitted on X: original, zero-centred,
    normalised (from zero-centred), decorrelated = PCA-rotated (from the original) and whitened (from
    decorrelated). Keys: STAGES."""
    X = _train_matrix(X, "the preprocessing pictures")
    if X.shape[1] != 2:
        raise ShapeError(f"the preprocessing pictures draw 2-D points, got {X.shape[1]} features")
    mean, U, S = pca(X)
    std = np.maximum(X.std(axis=0), STD_FLOOR)
    centred = X - mean
    rotated = centred @ U
    steps = {STAGES[0]: (X, X), STAGES[1]: (X, centred), STAGES[2]: (centred, centred / std),
             STAGES[3]: (X, rotated), STAGES[4]: (rotated, rotated / np.maximum(np.sqrt(S), STD_FLOOR))}
    out = {}
    for name, (before, after) in steps.items():
        out[name] = Stage(name, after, after.mean(axis=0), covariance(after), before.mean(axis=0),
                          covariance(before))
    return out


def ellipse(mean: Any, cov: Any, nsigma: float = 2.0, n: int = 120) -> np.ndarray:
    """The closed nsigma-ellipse {mean + nsigma * L u : |u| = 1} of a 2-D Gaussian (L L^T = cov) as n + 1 points
    (n + 1, 2): where the Mahalanobis distance is nsigma."""
    mean = np.asarray(mean, np.float64)
    cov = np.asarray(cov, np.float64)
    if mean.shape != (2,) or cov.shape != (2, 2):
        raise ShapeError(f"ellipse needs a 2-D mean and a 2x2 covariance, got {mean.shape} and {cov.shape}")
    S, U = np.linalg.eigh((cov + cov.T) / 2)
    L = U * np.sqrt(np.maximum(S, 0.0))
    t = np.linspace(0.0, 2.0 * np.pi, check_int("n", n, 3) + 1)
    return mean + nsigma * np.c_[np.cos(t), np.sin(t)] @ L.T


@dataclass(frozen=True)
class PreprocessViewSettings(Settings):
    """The data the preprocessing pictures are drawn on."""

    dataset: str = param(CORRELATED, choices=(CORRELATED, *datasets.TOY_NAMES), label="data set",
                         doc="a stretched, tilted, off-centre Gaussian cloud (the lecture's picture) or one of the "
                             "Playground's toy sets")
    points: int = param(300, low=2, high=5000, label="points", doc="how many points")
    seed: int = param(0, low=0, high=99_999, label="seed", doc="seeds the points")


def stage_data(settings: PreprocessViewSettings) -> np.ndarray:
    """The raw 2-D points of ``settings`` (N, 2). The correlated gaussian has mean (3, 2), standard deviations
    about 2 and 0.5 along axes tilted by 30°, as in the notes' picture."""
    if not isinstance(settings, PreprocessViewSettings):
        raise ValueInputError(f"settings must be PreprocessViewSettings, got {settings!r}")
    if settings.dataset == CORRELATED:
        rng = np.random.default_rng(settings.seed)
        a = np.deg2rad(30.0)
        R = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        z = rng.standard_normal((settings.points, 2)) * [2.0, 0.5]
        return z @ R.T + [3.0, 2.0]
    X, _ = datasets.toy_data(settings.dataset, settings.points, None, None, settings.seed)
    return X
