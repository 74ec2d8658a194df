"""Looking inside a trained Network (lecture 8-9): input gradients, saliency, occlusion, class visualisation,
adversarial examples (FGSM, iterative FGSM), embeddings of the last hidden layer and nearest neighbours. No Qt.

The gradient with respect to the *input* comes from the network's own passes: ``Network.forward_with_caches`` in
eval mode, then ``Network.backward``, which returns the input gradient beside the parameter gradients. Everything runs in eval mode (running batch-norm statistics, no dropout), so each sample's gradient
depends on that sample alone.

Images are (N, C, H, W) (or (N, D) for vector inputs), in the network's dtype. ``pixel_range`` arguments are
(lo, hi) scalars or arrays broadcastable to one image: the values a real input can take.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from simulator.core.errors import ShapeError, ValueInputError
from simulator.nn.network import (Activation, Conv2d, Flatten, Linear,
                            MaxPool, Network, Trainer)

__all__ = [
    "input_gradient", "saliency_map", "occlusion_map", "OcclusionResult", "class_visualisation", "ClassVisResult",
    "fgsm", "iterative_fgsm", "softmax", "hidden_features", "embed", "nearest_neighbours", "blur",
    "digits_data", "digits_cnn", "digits_mlp", "quick_digits_model", "QuickModel", "DigitsData",
]


# ================================================================================================== gradients

def softmax(scores: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, C) scores, shifted by the row max for stability."""
    s = np.asarray(scores, dtype=np.float64)
    e = np.exp(s - s.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _input_backward(network: Network, dout: np.ndarray, caches: list) -> np.ndarray:
    """d(something)/dx from d(something)/dscores, through the network's own backward pass."""
    return network.backward(dout, caches)[1]


def _scores_and_caches(network: Network, x: Any) -> tuple[np.ndarray, np.ndarray, list]:
    xc = network.check_input(x)
    scores, caches = network.forward_with_caches(xc, "eval")
    return xc, scores, caches


def _per_sample(what: str, v: Any, n: int, num_classes: int) -> np.ndarray:
    a = np.asarray(v)
    if a.ndim == 0:
        a = np.full(n, int(a))
    if a.shape != (n,) or a.dtype.kind not in "iu":
        raise ShapeError(f"{what}: expected one integer class or ({n},) integer classes, got shape {a.shape}")
    if n and (a.min() < 0 or a.max() >= num_classes):
        raise ValueInputError(f"{what}: classes must lie in 0..{num_classes - 1}")
    return a.astype(np.int64)


def input_gradient(network: Network, x: Any, target: Any, of: str = "score") -> tuple[np.ndarray, np.ndarray]:
    """Gradient with respect to the input images, in eval mode. Returns (dx, scores).

    of="score": d s_target / dx, the raw class score (before softmax) of class ``target`` (an int for every sample or
    (N,) ints). of="loss": d L_i / dx of each sample's own data loss with label ``target`` (the network's loss:
    softmax, svm or mse), i.e. N times the gradient of the batch-mean loss. x: (N, *input_shape); dx has its shape.
    """
    xc, scores, caches = _scores_and_caches(network, x)
    n = len(xc)
    if of == "score":
        t = _per_sample("input_gradient target", target, n, network.num_classes)
        dscores = np.zeros_like(scores)
        dscores[np.arange(n), t] = 1.0
    elif of == "loss":
        t = _per_sample("input_gradient labels", target, n, network.num_classes)
        _, dscores = network.data_loss(scores, t)
        dscores = dscores * n
    else:
        raise ValueInputError(f"input_gradient: of must be 'score' or 'loss', got {of!r}")
    return _input_backward(network, dscores.astype(scores.dtype), caches), scores


def saliency_map(network: Network, x: Any, cls: Any = None) -> np.ndarray:
    """Simonyan et al.'s saliency: max over channels of |d s_cls / dx|. x (N, C, H, W) -> (N, H, W); vector inputs
    (N, D) -> (N, D). cls: an int, (N,) ints, or None for each sample's predicted class."""
    x = np.asarray(x)
    if cls is None:
        cls = network.predict(x)
    dx, _ = input_gradient(network, x, cls, "score")
    a = np.abs(dx.astype(np.float64))
    return a.max(axis=1) if a.ndim == 4 else a


@dataclass(frozen=True)
class OcclusionResult:
    """drops[i, j]: base - value with the patch's top-left corner at (rows[i], cols[j]); positive = the patch hurt.
    pixel_map (H, W): each pixel's mean drop over the patches covering it. base: the unoccluded value."""

    drops: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    pixel_map: np.ndarray
    base: float
    patch: int
    stride: int
    measure: str


def occlusion_map(network: Network, x: Any, cls: int, patch: int = 2, stride: int = 1, fill: float = 0.0,
                  measure: str = "prob") -> OcclusionResult:
    """Zeiler & Fergus's occlusion: slide a ``patch`` x ``patch`` square of value ``fill`` (every channel) over one
    image (C, H, W) or (1, C, H, W) with ``stride``, and record how much the class ``cls`` value drops. measure:
    "prob" (softmax probability) or "score" (raw class score). All occluded copies run in one eval-mode batch."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 4 and x.shape[0] == 1:
        x = x[0]
    if x.ndim != 3:
        raise ShapeError(f"occlusion_map needs one image (C, H, W), got shape {x.shape}")
    if measure not in ("prob", "score"):
        raise ValueInputError(f"occlusion_map: measure must be 'prob' or 'score', got {measure!r}")
    H, W = x.shape[1:]
    patch, stride = int(patch), int(stride)
    if not 1 <= patch <= min(H, W) or stride < 1:
        raise ValueInputError(f"occlusion_map: patch must lie in 1..{min(H, W)} and stride >= 1")
    cls = int(cls)
    if not 0 <= cls < network.num_classes:
        raise ValueInputError(f"occlusion_map: class must lie in 0..{network.num_classes - 1}")
    rows = np.arange(0, H - patch + 1, stride)
    cols = np.arange(0, W - patch + 1, stride)
    batch = np.repeat(x[None], len(rows) * len(cols) + 1, axis=0)
    k = 1
    for r in rows:
        for c in cols:
            batch[k, :, r:r + patch, c:c + patch] = fill
            k += 1
    scores = network.forward(batch, "eval").astype(np.float64)
    vals = softmax(scores)[:, cls] if measure == "prob" else scores[:, cls]
    base = float(vals[0])
    drops = (base - vals[1:]).reshape(len(rows), len(cols))
    total = np.zeros((H, W))
    count = np.zeros((H, W))
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            total[r:r + patch, c:c + patch] += drops[i, j]
            count[r:r + patch, c:c + patch] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        pixel_map = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return OcclusionResult(drops, rows, cols, pixel_map, base, patch, stride, measure)


# ================================================================================================== class visualisation

def blur(x: np.ndarray) -> np.ndarray:
    """A light separable [1, 2, 1] / 4 blur over the last two axes (edges repeated): the regulariser that keeps
    gradient ascent from painting high-frequency noise."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim < 2:
        return x.copy()
    p = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(1, 1), (1, 1)], mode="edge")
    v = 0.25 * p[..., :-2, :] + 0.5 * p[..., 1:-1, :] + 0.25 * p[..., 2:, :]
    return 0.25 * v[..., :-2] + 0.5 * v[..., 1:-1] + 0.25 * v[..., 2:]


@dataclass(frozen=True)
class ClassVisResult:
    """image: the final input (C, H, W); scores: the class score after each step (steps + 1 values, the start
    included); objectives: score - l2_reg ||x||^2 likewise; stopped: cancelled before the last step."""

    cls: int
    image: np.ndarray
    scores: np.ndarray
    objectives: np.ndarray
    stopped: bool = False


def class_visualisation(network: Network, cls: int, steps: int = 200, lr: float = 0.1, l2_reg: float = 1e-3,
                        seed: int = 0, blur_every: int | None = None, init_scale: float = 0.01,
                        pixel_range: tuple[Any, Any] | None = None,
                        callback: Callable[[int, np.ndarray, float], Any] | None = None,
                        should_stop: Callable[[], bool] | None = None) -> ClassVisResult:
    """Gradient ascent on the input to maximise s_cls(x) - l2_reg ||x||^2 (eval mode), from a small random image
    (normal with std ``init_scale``, seeded): x <- x + lr (d s_cls/dx - 2 l2_reg x). Optionally blurred every
    ``blur_every`` steps and clipped to ``pixel_range``. callback(step, image, score) for each image, step 0 the start."""
    steps = int(steps)
    if steps < 0:
        raise ValueInputError("class_visualisation: steps must be >= 0")
    if not 0 <= int(cls) < network.num_classes:
        raise ValueInputError(f"class_visualisation: class must lie in 0..{network.num_classes - 1}")
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((1, *network.input_shape)) * init_scale).astype(network.dtype)
    lo, hi = (None, None) if pixel_range is None else pixel_range
    scores = np.empty(steps + 1)
    objs = np.empty(steps + 1)
    stopped = False
    done = 0
    for t in range(steps + 1):
        dx, s = input_gradient(network, x, int(cls), "score")
        score = float(s[0, int(cls)])
        scores[t] = score
        objs[t] = score - l2_reg * float(np.sum(x.astype(np.float64) ** 2))
        done = t
        if callback is not None:
            callback(t, x[0], score)  # the image and the score it earns, before this step's update
        if t == steps:
            break
        if should_stop is not None and should_stop():
            stopped = True
            break
        x = x + lr * (dx - 2.0 * l2_reg * x)
        if blur_every and (t + 1) % int(blur_every) == 0:
            x = blur(x)
        if pixel_range is not None:
            x = np.clip(x, lo, hi)
        x = x.astype(network.dtype)
    return ClassVisResult(int(cls), x[0].copy(), scores[:done + 1], objs[:done + 1], stopped)


# ================================================================================================== adversarial examples

def _clip(x: np.ndarray, pixel_range: tuple[Any, Any] | None) -> np.ndarray:
    if pixel_range is None:
        return x
    return np.clip(x, pixel_range[0], pixel_range[1])


def fgsm(network: Network, x: Any, y: Any, eps: float, pixel_range: tuple[Any, Any] | None = None) -> np.ndarray:
    """Goodfellow et al.'s fast gradient sign method: x + eps sign(d L(x, y) / dx), clipped to pixel_range.
    The perturbation's max-norm is eps wherever the clip does not bite (and the gradient is non-zero)."""
    x = np.asarray(x, dtype=network.dtype)
    eps = float(eps)
    if eps < 0 or not math.isfinite(eps):
        raise ValueInputError(f"fgsm: eps must be a finite number >= 0, got {eps}")
    dx, _ = input_gradient(network, x, y, "loss")
    return _clip(x + eps * np.sign(dx), pixel_range).astype(network.dtype)


def iterative_fgsm(network: Network, x: Any, y: Any, eps: float, alpha: float | None = None, steps: int = 10,
                   pixel_range: tuple[Any, Any] | None = None) -> np.ndarray:
    """Kurakin et al.'s basic iterative method: ``steps`` FGSM steps of size alpha (default eps / 4), each followed
    by a projection onto the L-infinity ball of radius eps around x and onto pixel_range."""
    x0 = np.asarray(x, dtype=network.dtype)
    eps = float(eps)
    if eps < 0 or not math.isfinite(eps):
        raise ValueInputError(f"iterative_fgsm: eps must be a finite number >= 0, got {eps}")
    alpha = eps / 4.0 if alpha is None else float(alpha)
    if alpha < 0 or not math.isfinite(alpha):
        raise ValueInputError(f"iterative_fgsm: alpha must be a finite number >= 0, got {alpha}")
    if isinstance(steps, bool) or int(steps) != steps or steps < 0:
        raise ValueInputError(f"iterative_fgsm: steps must be a whole number >= 0, got {steps}")
    xa = x0.copy()
    for _ in range(int(steps)):
        dx, _ = input_gradient(network, xa, y, "loss")
        xa = xa + alpha * np.sign(dx)
        xa = np.clip(xa, x0 - eps, x0 + eps)
        xa = _clip(xa, pixel_range).astype(network.dtype)
    return xa


# ================================================================================================== embeddings

def hidden_features(network: Network, X: Any, batch_size: int = 512) -> np.ndarray:
    """The last hidden layer's activations (the input of the final layer), flattened: (N, D) float64, eval mode."""
    X = np.asarray(X)
    out = []
    for i in range(0, len(X), batch_size):
        xc = np.asarray(X[i:i + batch_size])
        outs = network.layer_outputs(xc, "eval")
        feats = outs[-2] if len(outs) >= 2 else xc
        out.append(np.asarray(feats, dtype=np.float64).reshape(len(xc), -1))
    return np.concatenate(out) if out else np.zeros((0, 0))


def embed(network: Network | None, X: Any, method: str = "pca", seed: int = 0, perplexity: float = 30.0,
          features: np.ndarray | None = None) -> np.ndarray:
    """2-D coordinates (N, 2) of the last hidden layer's activations by PCA or t-SNE (scikit-learn), seeded.
    Pass ``features`` to embed precomputed features (network may then be None)."""
    F = hidden_features(network, X) if features is None else np.asarray(features, dtype=np.float64)
    if F.ndim != 2 or len(F) < 3:
        raise ShapeError(f"embed needs at least 3 feature vectors (N, D), got shape {F.shape}")
    if F.shape[1] < 2:
        raise ShapeError(f"the last hidden layer has {F.shape[1]} unit; a 2-D embedding needs at least 2")
    if method == "pca":
        from sklearn.decomposition import PCA
        Y = PCA(n_components=2, svd_solver="full", random_state=seed).fit_transform(F)
        # sign convention: the largest-|value| entry of each component positive, so a seed gives one picture
        flip = np.sign(Y[np.abs(Y).argmax(axis=0), [0, 1]])
        return Y * np.where(flip == 0, 1.0, flip)
    if method == "tsne":
        from sklearn.manifold import TSNE
        perp = min(float(perplexity), (len(F) - 1) / 3.0)
        return TSNE(n_components=2, perplexity=perp, init="pca", random_state=seed,
                    learning_rate="auto").fit_transform(F)
    raise ValueInputError(f"embed: method must be 'pca' or 'tsne', got {method!r}")


def nearest_neighbours(features: Any, query_index: int, k: int = 5) -> np.ndarray:
    """Indices of the k nearest rows to row query_index by Euclidean distance (the query itself excluded), nearest
    first; ties keep index order. features: (N, D), e.g. hidden_features(...) or images flattened."""
    F = np.asarray(features, dtype=np.float64)
    F = F.reshape(len(F), -1)
    q = int(query_index)
    if not 0 <= q < len(F):
        raise ValueInputError(f"nearest_neighbours: query_index must lie in 0..{len(F) - 1}")
    d = np.sum((F - F[q]) ** 2, axis=1)
    d[q] = np.inf
    order = np.argsort(d, kind="stable")
    return order[:max(0, min(int(k), len(F) - 1))]


# ================================================================================================== a quick model

@dataclass(frozen=True)
class DigitsData:
    """scikit-learn's digits scaled to [0, 1] (raw / 16), split 80/20 (stratified, seeded): images (N, 1, 8, 8)."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    pixel_range: tuple[float, float] = (0.0, 1.0)

    def as_tuple(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return self.X_train, self.y_train, self.X_val, self.y_val


def digits_data(seed: int = 0, dtype: Any = np.float32) -> DigitsData:
    from simulator.data.datasets import load_digits, train_val_split
    X, y = load_digits()
    Xtr, ytr, Xv, yv = train_val_split(X / 16.0, y, 0.2, seed=seed)
    return DigitsData(Xtr.astype(dtype), ytr, Xv.astype(dtype), yv)


def digits_cnn(seed: int = 0, dtype: Any = np.float32, filters: int = 16, hidden: int = 64) -> Network:
    """conv 3x3 (pad 1) - ReLU - maxpool 2 - flatten - linear - ReLU - linear 10: a few thousand parameters."""
    return Network((1, 8, 8), [Conv2d(filters, 3, pad=1), Activation("relu"), MaxPool(2, 2), Flatten(),
                               Linear(hidden), Activation("relu"), Linear(10)], seed=seed, dtype=dtype)


def digits_mlp(seed: int = 0, dtype: Any = np.float32, hidden: int = 64, reg: float = 0.0) -> Network:
    """flatten - linear - ReLU - linear 10."""
    return Network((1, 8, 8), [Flatten(), Linear(hidden), Activation("relu"), Linear(10)], seed=seed, dtype=dtype,
                   reg=reg)


@dataclass
class QuickModel:
    network: Network
    data: DigitsData
    val_accuracy: float
    history: Any = field(repr=False, default=None)
    stopped: bool = False


def quick_digits_model(seed: int = 0, epochs: int = 10, dtype: Any = np.float32, lr: float = 3e-3,
                       callback: Callable[[int, int, float], Any] | None = None,
                       should_stop: Callable[[], bool] | None = None) -> QuickModel:
    """A small CNN (digits_cnn) trained on digits with Adam, batch 32, in about half a second (about 96-97% validation
    accuracy with the defaults).
    callback(iteration, total_iterations, val_accuracy or nan) as training goes."""
    data = digits_data(seed, dtype)
    net = digits_cnn(seed, dtype)
    tr = Trainer(net, data.as_tuple(), "Adam", lr=lr, batch_size=32, epochs=epochs, seed=seed)
    last_acc = [math.nan]

    def report(m: Any) -> None:
        if hasattr(m, "val_accuracy"):
            last_acc[0] = m.val_accuracy
        if callback is not None:
            callback(m.iteration, tr.total_steps, last_acc[0])

    tr.run(report, should_stop)
    acc = net.accuracy(data.X_val, data.y_val)
    return QuickModel(net, data, acc, tr.history, stopped=not tr.done)

