"""Classic classifiers of lectures 2-3: k-nearest neighbours (with k-fold cross-validation) and a linear classifier
with the multiclass SVM or softmax loss, plus the 2-D geometry (decision grids, class lines) the classic lab draws.

Conventions
-----------
* kNN distances are exact: differences are broadcast over chunks of queries (no ``|a|^2 + |b|^2 - 2ab`` rounding), so
  equal distances really compare equal. L1 = sum |a - b|; L2 = sqrt(sum (a - b)^2).
* Ties, deterministically: neighbours are ordered by (distance, training index), so among equally distant training
  points the one stored first wins. The vote goes to the class with the most neighbours among the k; when classes tie
  on count, the class whose nearest member ranks first wins (so k = 2 always agrees with k = 1).
* The linear classifier follows the cs231n notes and assignment 1 (and the linear-classification web demo's form):
  scores = X W + b with W (D, C), b (C,);  L = 1/N sum_i L_i + reg * sum(W^2)  (no 0.5 factor: dL/dW gets 2 reg W;
  the bias is not regularised). L_i is the Weston-Watkins multiclass SVM sum_{j != y_i} max(0, s_j - s_{y_i} + 1) or
  the softmax cross-entropy -log(e^{s_{y_i}} / sum_j e^{s_j}); the data loss and dscores come from simulator.functional.layers.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from simulator.core.errors import ShapeError, ValueInputError
from simulator.core.jobs import Job, Progress, run_job
from simulator.core.params import check_int, check_real
from simulator.functional import layers

__all__ = [
    "DISTANCES", "pairwise_distances", "KNearestNeighbor", "kfold_indices", "cross_validate_k",
    "cross_validation_job", "decision_grid",
    "LinearClassifier", "LossBreakdown", "line_segment", "DEMO_X", "DEMO_Y",
]

DISTANCES = ("l1", "l2")
_CHUNK_ELEMENTS = 1 << 22     # ~32 MB of float64 per broadcast chunk

# Nine points in three groups of three, in the layout of the cs231n linear-classification web demo.
DEMO_X = np.array([[0.5, 0.4], [0.8, 0.3], [0.3, 0.8], [-0.4, 0.3], [-0.3, 0.7], [-0.7, 0.2],
                   [0.7, -0.4], [0.5, -0.6], [-0.4, -0.5]], dtype=np.float64)
DEMO_Y = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2], dtype=np.int64)


# ============================================================================================== argument checks

def _distance(name: Any) -> str:
    d = str(name).lower()
    if d not in DISTANCES:
        raise ValueInputError(f"distance must be 'l1' or 'l2', got {name!r}")
    return d


def _matrix(name: str, X: Any) -> np.ndarray:
    X = np.asarray(X)
    if X.dtype.kind not in "biuf":
        raise ValueInputError(f"{name} must hold real numbers, got dtype {X.dtype}")
    X = X.astype(np.float64, copy=False)
    if X.ndim < 2:
        raise ShapeError(f"{name} must be (N, D) (or (N, d1, d2, ...), flattened), got shape {X.shape}")
    X = X.reshape(X.shape[0], int(np.prod(X.shape[1:])))       # not -1: that fails for N = 0
    if not np.all(np.isfinite(X)):
        raise ValueInputError(f"{name} holds NaN or infinite values")
    return X


def _labels(y: Any, n: int) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != n:
        raise ShapeError(f"y must be (N,) with N = {n} labels, got shape {y.shape}")
    if y.dtype.kind not in "iu" and not (y.dtype.kind == "f" and np.all(y == np.round(y))):
        raise ValueInputError(f"y must hold integer class labels, got dtype {y.dtype}")
    y = y.astype(np.int64)
    if n and y.min() < 0:
        raise ValueInputError(f"labels must be >= 0, got {y.min()}")
    return y


# ============================================================================================== k-nearest neighbours

def pairwise_distances(Xq: np.ndarray, X: np.ndarray, distance: str = "l2") -> np.ndarray:
    """Xq: (M, D), X: (N, D). Returns (M, N) exact L1 or L2 distances (broadcast in chunks of queries)."""
    distance = _distance(distance)
    Xq, X = _matrix("queries", Xq), _matrix("X", X)
    if Xq.shape[1] != X.shape[1]:
        raise ShapeError(f"queries have {Xq.shape[1]} features but the training data has {X.shape[1]}")
    M, N, D = Xq.shape[0], X.shape[0], X.shape[1]
    out = np.empty((M, N))
    step = max(1, _CHUNK_ELEMENTS // max(1, N * D))
    if D <= 16:   # few features (2-D maps): accumulate one feature at a time, no (M, N, D) temporary
        out[...] = 0.0
        for d in range(D):
            diff = Xq[:, d:d + 1] - X[None, :, d]
            out += np.abs(diff, out=diff) if distance == "l1" else np.square(diff, out=diff)
        return out if distance == "l1" else np.sqrt(out, out=out)
    for s in range(0, M, step):
        diff = Xq[s:s + step, None, :] - X[None, :, :]
        if distance == "l1":
            out[s:s + step] = np.abs(diff).sum(axis=2)
        else:
            out[s:s + step] = np.sqrt(np.einsum("mnd,mnd->mn", diff, diff))
    return out


def _vote(nlabels: np.ndarray, num_classes: int) -> np.ndarray:
    """nlabels: (M, k) neighbour labels, nearest first. The most frequent class; on equal counts the class whose
    first neighbour ranks earliest."""
    M, k = nlabels.shape
    onehot = nlabels[:, :, None] == np.arange(num_classes)[None, None, :]          # (M, k, C)
    counts = onehot.sum(axis=1)                                                   # (M, C)
    first = np.where(onehot.any(axis=1), onehot.argmax(axis=1), k)                # (M, C) rank of first member
    return np.argmax(counts * (k + 1) - first, axis=1).astype(np.int64)


def _order(dists: np.ndarray, k: int) -> np.ndarray:
    """(M, N) distances -> (M, k) indices of the k nearest, ordered by (distance, index). argpartition picks k
    candidates; rows where more than k points lie within the k-th distance (a tie at the boundary, which
    argpartition would settle arbitrarily) are redone with a full stable sort."""
    M, N = dists.shape
    if k >= N:
        return np.argsort(dists, axis=1, kind="stable")[:, :k]
    idx = np.argpartition(dists, k - 1, axis=1)[:, :k]                            # (M, k) unordered
    d = np.take_along_axis(dists, idx, axis=1)
    kth = d.max(axis=1, keepdims=True)
    tied = np.flatnonzero(np.count_nonzero(dists <= kth, axis=1) > k)
    order = np.lexsort((idx, d), axis=1) if M else idx                            # by distance, then index
    idx = np.take_along_axis(idx, order, axis=1)
    if len(tied):
        idx[tied] = np.argsort(dists[tied], axis=1, kind="stable")[:, :k]
    return idx


class KNearestNeighbor:
    """k-nearest-neighbour classifier: ``train`` memorises, ``predict`` votes among the k nearest (ties: module doc).

    X: (N, D) (or images (N, ...) flattened), y: (N,) int labels.
    """

    def __init__(self, k: int = 1, distance: str = "l2"):
        self.k = check_int("k", k, 1)
        self.distance = _distance(distance)
        self.X = np.zeros((0, 0))
        self.y = np.zeros(0, np.int64)
        self.num_classes = 0
        self.sample_shape: tuple = ()

    def train(self, X: Any, y: Any, num_classes: int | None = None) -> "KNearestNeighbor":
        """Memorise X (N, D) and labels y (N,). Refused (state unchanged) when there is no training point, the
        shapes disagree or a label is not below num_classes."""
        if np.size(X) == 0 or len(np.shape(X)) == 0 or np.shape(X)[0] == 0:
            raise ValueInputError("kNN needs at least one training point, got an empty training set: add points "
                                  "(or choose a data set) before training")
        sample_shape = tuple(np.shape(X)[1:])
        X = _matrix("X", X)
        y = _labels(y, len(X))
        C = int(y.max()) + 1
        if num_classes is not None:
            num_classes = check_int("num_classes", num_classes, 1)
            if C > num_classes:
                raise ValueInputError(f"label {C - 1} is out of range for {num_classes} classes")
            C = num_classes
        self.X, self.y, self.num_classes, self.sample_shape = X, y, C, sample_shape
        return self

    fit = train

    def distances(self, Xq: Any) -> np.ndarray:
        """(M, N) distances from each query to every training point."""
        self._check_trained()
        return pairwise_distances(Xq, self.X, self.distance)

    def neighbours(self, query: Any, k: int | None = None) -> np.ndarray:
        """Indices of the k nearest training points, nearest first: (k,) for one query (D,), (M, k) for (M, D)."""
        self._check_trained()
        q = np.asarray(query, dtype=np.float64)
        single = q.ndim == 1 or q.shape == self.sample_shape
        q2 = q.reshape(1, -1) if single else q
        k = min(check_int("k", self.k if k is None else k, 1), len(self.X))
        idx = _order(self.distances(q2), k)
        return idx[0] if single else idx

    def predict(self, Xq: Any, k: int | None = None) -> np.ndarray:
        """(M,) predicted labels for queries (M, D)."""
        self._check_trained()
        k = min(check_int("k", self.k if k is None else k, 1), len(self.X))
        idx = _order(self.distances(Xq), k)
        return _vote(self.y[idx], self.num_classes)

    def _check_trained(self) -> None:
        if len(self.X) == 0:
            raise ValueInputError("train the kNN classifier before asking it anything")


def kfold_indices(n: int, folds: int, seed: int = 0) -> list[np.ndarray]:
    """A seeded shuffle of range(n) cut into `folds` disjoint validation index sets covering everything, sizes
    differing by at most one (np.array_split). Fold i validates on result[i] and trains on the rest."""
    n = check_int("n", n, 1)
    folds = check_int("folds", folds, 2, n)
    perm = np.random.default_rng(seed).permutation(n)
    return [np.sort(part).astype(np.int64) for part in np.array_split(perm, folds)]


def cross_validation_job(X: Any, y: Any, ks: Sequence[int], folds: int = 5, distance: str = "l2",
                         seed: int = 0) -> Job[np.ndarray]:
    """k-fold cross-validation of kNN over the values in ks, as a job: the arguments are checked now, and the
    generator yields Progress(fold, folds) after each fold and returns the accuracies (len(ks), folds): entry [i, f]
    is the accuracy with k = ks[i] on fold f after training on the other folds. Each fold's distance matrix and
    neighbour order are computed once and reused for every k. Closing the generator stops it between folds."""
    if np.size(X) == 0 or len(np.shape(X)) == 0 or np.shape(X)[0] == 0:
        raise ValueInputError("cross-validation needs training points, got an empty data set")
    X = _matrix("X", X)
    y = _labels(y, len(X))
    ks = [check_int("k", k, 1) for k in ks]
    if not ks:
        raise ValueInputError("ks must hold at least one value of k")
    distance = _distance(distance)
    folds = check_int("folds", folds, 2)
    if folds > len(X):
        raise ValueInputError(f"{folds} folds need at least {folds} points; there {'is' if len(X) == 1 else 'are'} "
                              f"{len(X)}. Add points or lower the folds.")
    parts = kfold_indices(len(X), folds, seed)
    return _cross_validation(X, y, ks, parts, distance)


def cross_validate_k(X: Any, y: Any, ks: Sequence[int], folds: int = 5, distance: str = "l2",
                     seed: int = 0) -> np.ndarray:
    """cross_validation_job run to its end: accuracies (len(ks), folds)."""
    return run_job(cross_validation_job(X, y, ks, folds, distance, seed))


def _cross_validation(X: np.ndarray, y: np.ndarray, ks: list[int], parts: list[np.ndarray],
                      distance: str) -> Job[np.ndarray]:
    C = int(y.max()) + 1
    acc = np.full((len(ks), len(parts)), np.nan)
    for f, val in enumerate(parts):
        mask = np.ones(len(X), bool)
        mask[val] = False
        Xtr, ytr = X[mask], y[mask]
        kmax = min(max(ks), len(Xtr))
        order = _order(pairwise_distances(X[val], Xtr, distance), kmax)
        nl = ytr[order]
        for i, k in enumerate(ks):
            acc[i, f] = np.mean(_vote(nl[:, :min(k, kmax)], C) == y[val])
        yield Progress(f + 1, len(parts), f"fold {f + 1} of {len(parts)}")
    return acc


def decision_grid(predict_fn: Callable[[np.ndarray], np.ndarray], xlim: tuple[float, float],
                  ylim: tuple[float, float], resolution: int | tuple[int, int] = 200
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Evaluate predict_fn ((M, 2) -> (M,)) at cell centres of a grid over xlim x ylim.

    Returns (xs (nx,), ys (ny,), Z (nx, ny)) with Z[i, j] = prediction at (xs[i], ys[j]): x along the first axis, as
    pyqtgraph's ImageItem expects with axisOrder="col-major". Cell centres, so an image placed on the rectangle
    xlim x ylim lines up exactly."""
    nx, ny = (resolution, resolution) if not isinstance(resolution, (tuple, list)) else resolution
    nx, ny = check_int("resolution", nx, 1, 4096), check_int("resolution", ny, 1, 4096)
    (x0, x1), (y0, y1) = xlim, ylim
    x0, x1 = check_real("grid x start", x0), check_real("grid x end", x1)
    y0, y1 = check_real("grid y start", y0), check_real("grid y end", y1)
    if not (x1 > x0 and y1 > y0):
        raise ValueInputError(f"empty grid: xlim {xlim}, ylim {ylim}")
    xs = x0 + (np.arange(nx) + 0.5) * (x1 - x0) / nx
    ys = y0 + (np.arange(ny) + 0.5) * (y1 - y0) / ny
    gx, gy = np.meshgrid(xs, ys, indexing="ij")
    Z = np.asarray(predict_fn(np.c_[gx.ravel(), gy.ravel()])).reshape(nx, ny)
    return xs, ys, Z


# ============================================================================================== linear classifier

@dataclass(frozen=True)
class LossBreakdown:
    """Everything the table of examples shows: scores (N, C), per-example loss terms (N,), data loss (their mean),
    regularisation loss, total loss, predictions (N,) and accuracy."""

    scores: np.ndarray
    terms: np.ndarray
    data_loss: float
    reg_loss: float
    loss: float
    predictions: np.ndarray
    accuracy: float


class LinearClassifier:
    """scores = X W + b, W (D, C), b (C,); loss "svm" or "softmax" + reg * sum(W^2) (module doc).

    W starts as 0.01 * N(0, 1) from `seed` (cs231n's initialisation), b at zero. ``step`` is plain SGD unless an
    optimizer from simulator.functional.optim has been attached with ``use_optimizer``.
    """

    LOSSES = ("svm", "softmax")

    def __init__(self, num_features: int, num_classes: int, loss: str = "svm", reg: float = 0.0, seed: int = 0,
                 weight_scale: float = 0.01, delta: float = 1.0, temperature: float = 1.0):
        self.num_features = check_int("num_features", num_features, 1)
        self.num_classes = check_int("num_classes", num_classes, 2)
        self.loss = loss
        self.reg = reg
        self.delta = delta
        self.temperature = temperature
        weight_scale = check_real("weight scale", weight_scale, 0.0)
        rng = np.random.default_rng(check_int("seed", seed, 0))
        self.W = weight_scale * rng.standard_normal((self.num_features, self.num_classes))
        self.b = np.zeros(self.num_classes)
        self.optimizer = None
        self.steps = 0

    # ---- hyperparameters, validated on every set
    @property
    def loss(self) -> str:
        return self._loss

    @loss.setter
    def loss(self, v: str) -> None:
        if v not in self.LOSSES:
            raise ValueInputError(f"loss must be 'svm' or 'softmax', got {v!r}")
        self._loss = v

    @property
    def reg(self) -> float:
        return self._reg

    @reg.setter
    def reg(self, v: float) -> None:
        self._reg = check_real("reg", v, 0.0)

    @property
    def delta(self) -> float:
        """The SVM's margin Δ: max(0, s_j − s_y + Δ)."""
        return self._delta

    @delta.setter
    def delta(self, v: float) -> None:
        self._delta = check_real("SVM margin Δ", v, 0.0, low_open=True)

    @property
    def temperature(self) -> float:
        """The softmax's temperature T: p = softmax(s / T); small T makes it peaky, large T flat."""
        return self._temperature

    @temperature.setter
    def temperature(self, v: float) -> None:
        self._temperature = check_real("softmax temperature T", v, 0.0, low_open=True)

    def use_optimizer(self, name: str | None, **hyper: Any) -> None:
        """Update W and b with simulator.functional.optim's `name` (e.g. "Adam") from now on; None returns to plain SGD."""
        if name is None:
            self.optimizer = None
            return
        from simulator.functional.optim import make_optimizer
        self.optimizer = make_optimizer(name, [self.W, self.b], **hyper)

    # ---- forward and backward
    def _check(self, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        X = _matrix("X", X)
        if X.shape[1] != self.num_features:
            raise ShapeError(f"X has {X.shape[1]} features but the classifier has W of shape {self.W.shape}")
        y = _labels(y, len(X))
        if len(y) and y.max() >= self.num_classes:
            raise ValueInputError(f"label {y.max()} out of range for {self.num_classes} classes")
        return X, y

    def scores(self, X: Any) -> np.ndarray:
        """(N, C) class scores."""
        X = _matrix("X", X)
        return X @ self.W + self.b

    def predict(self, X: Any) -> np.ndarray:
        return np.argmax(self.scores(X), axis=1).astype(np.int64)

    def loss_terms(self, scores: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Per-example L_i (N,), whose mean is the data loss: the SVM's sum of max(0, s_j − s_y + Δ), or the softmax's
        cross-entropy of softmax(s / T)."""
        n = np.arange(len(y))
        if self.loss == "svm":
            correct = scores[n, y][:, None]
            margins = np.maximum(0.0, scores - correct + self.delta)
            margins[n, y] = 0.0
            return margins.sum(axis=1)
        scores = scores / self.temperature
        correct = scores[n, y][:, None]
        m = scores.max(axis=1, keepdims=True)
        lse = m[:, 0] + np.log(np.exp(scores - m).sum(axis=1))
        return lse - correct[:, 0]

    def loss_and_grads(self, X: Any, y: Any) -> tuple[float, np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]:
        """Returns (loss, dW (D, C), db (C,), (scores (N, C), loss terms (N,)))."""
        X, y = self._check(X, y)
        scores = X @ self.W + self.b
        if self.loss == "svm":
            # max(0, s_j - s_y + Δ) = Δ · max(0, s_j/Δ - s_y/Δ + 1): the unit-margin loss of s/Δ, times Δ (its
            # gradient with respect to s is the unit-margin one at s/Δ)
            data_loss, dscores = layers.svm_loss(scores / self.delta, y)
            data_loss = self.delta * data_loss
        else:
            data_loss, dscores = layers.softmax_loss(scores / self.temperature, y)
            dscores = dscores / self.temperature
        loss = float(data_loss) + self.reg * float(np.sum(self.W * self.W))
        dW = X.T @ dscores + 2.0 * self.reg * self.W
        db = dscores.sum(axis=0)
        return loss, dW, db, (scores, self.loss_terms(scores, y))

    def breakdown(self, X: Any, y: Any) -> LossBreakdown:
        X, y = self._check(X, y)
        with np.errstate(all="ignore"):  # a diverged classifier shows inf/nan numbers, not console warnings
            scores = X @ self.W + self.b
            terms = self.loss_terms(scores, y)
            data = float(terms.mean()) if len(terms) else 0.0
            reg = self.reg * float(np.sum(self.W * self.W))
        pred = np.argmax(scores, axis=1).astype(np.int64)
        acc = float(np.mean(pred == y)) if len(y) else 0.0
        return LossBreakdown(scores, terms, data, reg, data + reg, pred, acc)

    def step(self, X: Any, y: Any, lr: float) -> float:
        """One full-batch gradient step; returns the loss before the step."""
        lr = check_real("lr", lr, 0.0)
        loss, dW, db, _ = self.loss_and_grads(X, y)
        if self.optimizer is None:
            self.W -= lr * dW
            self.b -= lr * db
        else:
            self.optimizer.lr = float(lr)
            self.optimizer.step([dW, db])
        self.steps += 1
        return loss

    # ---- 2-D geometry
    def class_lines(self, xlim: tuple[float, float], ylim: tuple[float, float]
                    ) -> list[tuple[np.ndarray, np.ndarray] | None]:
        """For 2-D data: per class, the segment of the line w_c . x + b_c = 0 inside the box (or None)."""
        if self.num_features != 2:
            raise ShapeError(f"class lines need 2-D data, but W has shape {self.W.shape}")
        return [line_segment(self.W[:, c], self.b[c], xlim, ylim) for c in range(self.num_classes)]

    def score_directions(self) -> tuple[np.ndarray, np.ndarray]:
        """For 2-D data: (anchors (C, 2), directions (C, 2)). The anchor is the point of the class line
        w_c . x + b_c = 0 nearest the origin, -b_c w_c / |w_c|^2; the direction is w_c, along which the score grows
        (by |w_c|^2 per unit of w_c)."""
        if self.num_features != 2:
            raise ShapeError(f"score directions need 2-D data, but W has shape {self.W.shape}")
        w = self.W.T                                                       # (C, 2)
        with np.errstate(all="ignore"):
            n2 = np.maximum(np.sum(w * w, axis=1), 1e-300)
            return -(self.b / n2)[:, None] * w, w.copy()


def line_segment(w: np.ndarray, b: float, xlim: tuple[float, float], ylim: tuple[float, float]
                 ) -> tuple[np.ndarray, np.ndarray] | None:
    """The part of the line w[0] x + w[1] y + b = 0 inside the box xlim x ylim: two end points, or None if the line
    misses the box (or w = 0)."""
    w0, w1 = float(w[0]), float(w[1])
    (x0, x1), (y0, y1) = xlim, ylim
    pts = []
    if abs(w1) > 1e-12:
        for x in (x0, x1):
            y = -(w0 * x + b) / w1
            if y0 - 1e-12 <= y <= y1 + 1e-12:
                pts.append((x, y))
    if abs(w0) > 1e-12:
        for y in (y0, y1):
            x = -(w1 * y + b) / w0
            if x0 - 1e-12 <= x <= x1 + 1e-12:
                pts.append((x, y))
    if len(pts) < 2:
        return None
    pts_arr = np.array(pts)
    # the two points farthest apart (corners can appear twice)
    d = np.linalg.norm(pts_arr[:, None] - pts_arr[None], axis=2)
    i, j = np.unravel_index(np.argmax(d), d.shape)
    if d[i, j] == 0:
        return None
    return pts_arr[i], pts_arr[j]


# ================================================================================================== lecture 3's asides

@dataclass(frozen=True)
class MarginRescaling:
    """Two SVMs trained from the same start, one with margin 1 and one with Δ (its start and rate scaled by Δ):
    W_Δ = Δ · W_1 at every step and the predictions never differ, so Δ only sets the scale of W (the lecture's
    "Δ can be set to 1"; with λ > 0 it trades against λ instead)."""

    delta: float
    steps: int
    ratio: float                 # max |W_Δ / W_1| over the entries, ≈ Δ
    max_deviation: float         # max |W_Δ − Δ W_1|
    same_predictions: bool


def margin_rescaling(X: Any, y: Any, delta: float, steps: int = 50, lr: float = 0.1, seed: int = 0) -> MarginRescaling:
    """Train a unit-margin SVM and a Δ-margin one (no regularisation) side by side and compare their weights."""
    delta = check_real("SVM margin Δ", delta, 0.0, low_open=True)
    steps = check_int("steps", steps, 1, 100_000)
    X = _matrix("X", X)
    y = _labels(y, len(X))
    C = int(y.max()) + 1 if len(y) else 2
    one = LinearClassifier(X.shape[1], max(C, 2), "svm", 0.0, seed=seed, delta=1.0)
    big = LinearClassifier(X.shape[1], max(C, 2), "svm", 0.0, seed=seed, delta=delta)
    big.W, big.b = delta * one.W, delta * one.b
    for _ in range(steps):
        one.step(X, y, lr)
        big.step(X, y, lr * delta)
    with np.errstate(all="ignore"):
        nz = np.abs(one.W) > 1e-12
        ratio = float(np.median(big.W[nz] / one.W[nz])) if nz.any() else delta
    return MarginRescaling(delta, steps, ratio, float(np.max(np.abs(big.W - delta * one.W))),
                           bool(np.array_equal(one.predict(X), big.predict(X))))


def bias_trick(X: Any, W: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
    """The bias trick: append a constant 1 to every x and b as the last row of W, so x W + b = [x, 1] [W; b].
    Returns (X with the ones column (N, D+1), the stacked weights (D+1, C))."""
    X = _matrix("X", X)
    W = np.asarray(W, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if W.ndim != 2 or W.shape[0] != X.shape[1] or b.shape != (W.shape[1],):
        raise ShapeError(f"the bias trick needs W of shape (D, C) and b of shape (C,) for X of shape {X.shape}, got "
                         f"{W.shape} and {b.shape}")
    return np.hstack([X, np.ones((len(X), 1))]), np.vstack([W, b[None, :]])


@dataclass(frozen=True)
class DimensionCurve:
    """The curse of dimensionality for kNN: for each number of dimensions D, the relative contrast of distances
    ((farthest − nearest) / nearest from a query to uniform random points: it collapses towards 0 as D grows, every
    point about as far as every other) and 1-NN's accuracy on a task whose label depends on 2 of the D dimensions
    (the rest noise drowns them)."""

    dims: np.ndarray
    contrast: np.ndarray
    accuracy: np.ndarray


def dimension_curve(dims: Sequence[int] = (2, 5, 10, 20, 50, 100, 200, 500), points: int = 400,
                    seed: int = 0) -> DimensionCurve:
    """Measure the curse of dimensionality on uniform random data (see DimensionCurve)."""
    dims = [check_int("dimensions", d, 2, 5000) for d in dims]       # the label needs 2 of them
    points = check_int("points", points, 10, 20_000)
    rng = np.random.default_rng(check_int("seed", seed, 0))
    contrast, acc = [], []
    for d in dims:
        P = rng.uniform(size=(points, d))
        q = rng.uniform(size=(32, d))
        dist = np.sqrt(((q[:, None, :] - P[None, :, :]) ** 2).sum(axis=2))
        contrast.append(float(np.median((dist.max(axis=1) - dist.min(axis=1)) / dist.min(axis=1))))
        X = rng.uniform(size=(2 * points, d))
        y = (X[:, 0] + X[:, 1] > 1.0).astype(np.int64)          # the label lives in two dimensions
        knn = KNearestNeighbor()
        knn.train(X[:points], y[:points])
        acc.append(float(np.mean(knn.predict(X[points:], k=1) == y[points:])))
    return DimensionCurve(np.array(dims), np.array(contrast), np.array(acc))
