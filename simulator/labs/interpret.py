"""Looking inside a trained Network (lecture 8-9): input gradients, saliency, occlusion, class visualisation,
adversarial examples (FGSM, iterative FGSM), embeddings of the last hidden layer and nearest neighbours. No Qt.

The gradient with respect to the *input* comes from the network's own passes: ``Network.forward_with_caches`` in
eval mode, then ``Network.backward``, which returns the input gradient beside the parameter gradients. Everything
runs in eval mode (running batch-norm statistics, no dropout), so each sample's gradient depends on that sample
alone.

Images are (N, C, H, W) (or (N, D) for vector inputs), in the network's dtype. ``pixel_range`` arguments are
(lo, hi) scalars or arrays broadcastable to one image: the values a real input can take.

Long work is a job (simulator/core/jobs.py): ``class_visualisation_job`` yields each step's image and
``quick_digits_training`` yields training progress; both return their result and are cancelled by ``close()``.
``class_visualisation`` and ``quick_digits_model`` run them to the end.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Generator

import numpy as np

from simulator.core.errors import ShapeError, ValueInputError
from simulator.core.jobs import Progress, run_job
from simulator.core.params import check_choice, check_int, check_real
from simulator.nn.network import Activation, Conv2d, Flatten, Linear, MaxPool, Network
from simulator.nn.trainer import EpochMetrics, Trainer

__all__ = [
    "input_gradient", "saliency_map", "occlusion_map", "OcclusionResult", "class_visualisation",
    "class_visualisation_job", "ClassVisResult", "ClassVisStep", "fgsm", "iterative_fgsm", "softmax",
    "hidden_features", "embed", "pca_2d", "nearest_neighbours", "blur", "digits_data", "digits_cnn", "digits_mlp",
    "quick_digits_model", "quick_digits_training", "QuickModel", "DigitsData", "targeted_attack",
    "random_sign_noise", "maxpool_ties", "PoolTies", "shapley_job", "ShapleyResult", "receptive_field",
    "top_patches", "TopPatches",
]


def _network(fn: str, network: Any) -> Network:
    if not isinstance(network, Network):
        raise ValueInputError(f"{fn} needs a trained Network, got {type(network).__name__}")
    return network


def _class(what: str, cls: Any, num_classes: int) -> int:
    """One class index, with a message that says which class is asked for when it is missing or out of range."""
    if cls is None:
        raise ValueInputError(f"{what}: choose a class (a whole number in 0..{num_classes - 1})")
    return check_int(f"{what}: the class", cls, 0, num_classes - 1)


def _amount(what: str, v: Any) -> float | np.ndarray:
    """A non-negative finite step (eps, alpha): a number, or an array broadcastable to one image (per channel)."""
    if isinstance(v, np.ndarray) and v.ndim > 0:
        a = np.asarray(v, dtype=np.float64)
        if not np.all(np.isfinite(a)) or np.any(a < 0):
            raise ValueInputError(f"{what} must be finite numbers >= 0")
        return a
    return check_real(what, v, 0.0)


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
    _network("input_gradient", network)
    check_choice("input_gradient: of", of, ("score", "loss"))
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
    _network("saliency_map", network)
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


def occlusion_map(network: Network, x: Any, cls: int, patch: int = 2, stride: int = 1, fill: Any = 0.0,
                  measure: str = "prob") -> OcclusionResult:
    """Zeiler & Fergus's occlusion: slide a ``patch`` x ``patch`` square of value ``fill`` (every channel) over one
    image (C, H, W) or (1, C, H, W) with ``stride``, and record how much the class ``cls`` value drops. measure:
    "prob" (softmax probability) or "score" (raw class score). All occluded copies run in one eval-mode batch.
    ``fill`` is a number, or an array broadcastable to the image (the grey of a standardised input differs per
    pixel: the patch then takes the fill image's values under it)."""
    _network("occlusion_map", network)
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 4 and x.shape[0] == 1:
        x = x[0]
    if x.ndim != 3:
        raise ShapeError(f"occlusion_map needs one image (C, H, W), got shape {x.shape}")
    check_choice("occlusion measure", measure, ("prob", "score"))
    cls = _class("occlusion_map", cls, network.num_classes)
    H, W = x.shape[1:]
    patch = check_int("occlusion patch size", patch, 1, min(H, W))
    stride = check_int("occlusion stride", stride, 1, max(H, W))
    if isinstance(fill, np.ndarray) and fill.ndim > 0:
        try:
            fill_img = np.broadcast_to(np.asarray(fill, dtype=np.float64), x.shape)
        except ValueError:
            raise ShapeError(f"occlusion_map: a fill of shape {fill.shape} does not fit an image {x.shape}") from None
        if not np.all(np.isfinite(fill_img)):
            raise ValueInputError("occlusion_map: the patch value must be finite")
    else:
        fill_img = np.full(x.shape, check_real("occlusion patch value", fill))
    rows = np.arange(0, H - patch + 1, stride)
    cols = np.arange(0, W - patch + 1, stride)
    batch = np.repeat(x[None], len(rows) * len(cols) + 1, axis=0)
    k = 1
    for r in rows:
        for c in cols:
            batch[k, :, r:r + patch, c:c + patch] = fill_img[:, r:r + patch, c:c + patch]
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
    included); objectives: score - l2_reg ||x||^2 likewise."""

    cls: int
    image: np.ndarray
    scores: np.ndarray
    objectives: np.ndarray


@dataclass(frozen=True)
class ClassVisStep:
    """What the ascent yields at each step: the image (C, H, W) before this step's update and the score it earns."""

    cls: int
    step: int
    steps: int
    image: np.ndarray
    score: float


def class_visualisation_job(network: Network, cls: int, steps: int = 200, lr: float = 0.1, l2_reg: float = 1e-3,
                            seed: int = 0, blur_every: int | None = None, init_scale: float = 0.01,
                            pixel_range: tuple[Any, Any] | None = None
                            ) -> Generator[ClassVisStep, None, ClassVisResult]:
    """Gradient ascent on the input to maximise s_cls(x) - l2_reg ||x||^2 (eval mode), from a small random image
    (normal with std ``init_scale``, seeded): x <- x + lr (d s_cls/dx - 2 l2_reg x). Optionally blurred every
    ``blur_every`` steps and clipped to ``pixel_range``. A job: yields a ClassVisStep per image (step 0 the start),
    returns the ClassVisResult. The arguments are checked now, before the first step."""
    _network("class_visualisation", network)
    cls = _class("class_visualisation", cls, network.num_classes)
    steps = check_int("class visualisation steps", steps, 0, 1_000_000)
    lr = check_real("class visualisation step size", lr, 0.0, low_open=True)
    l2_reg = check_real("class visualisation L2 strength", l2_reg, 0.0)
    init_scale = check_real("class visualisation start scale", init_scale, 0.0)
    seed = check_int("seed", seed, 0)
    blur_every = None if blur_every in (None, 0) else check_int("blur every", blur_every, 1)
    return _ascent(network, cls, steps, lr, l2_reg, seed, blur_every, init_scale, pixel_range)


def _ascent(network: Network, cls: int, steps: int, lr: float, l2_reg: float, seed: int, blur_every: int | None,
            init_scale: float, pixel_range: tuple[Any, Any] | None) -> Generator[ClassVisStep, None, ClassVisResult]:
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((1, *network.input_shape)) * init_scale).astype(network.dtype)
    scores = np.empty(steps + 1)
    objs = np.empty(steps + 1)
    for t in range(steps + 1):
        dx, s = input_gradient(network, x, cls, "score")
        score = float(s[0, cls])
        scores[t] = score
        objs[t] = score - l2_reg * float(np.sum(x.astype(np.float64) ** 2))
        yield ClassVisStep(cls, t, steps, x[0].copy(), score)  # the image and the score it earns, before the update
        if t == steps:
            break
        x = x + lr * (dx - 2.0 * l2_reg * x)
        if blur_every and (t + 1) % blur_every == 0:
            x = blur(x)
        if pixel_range is not None:
            x = np.clip(x, pixel_range[0], pixel_range[1])
        x = x.astype(network.dtype)
    return ClassVisResult(cls, x[0].copy(), scores, objs)


def class_visualisation(network: Network, cls: int, steps: int = 200, lr: float = 0.1, l2_reg: float = 1e-3,
                        seed: int = 0, blur_every: int | None = None, init_scale: float = 0.01,
                        pixel_range: tuple[Any, Any] | None = None) -> ClassVisResult:
    """class_visualisation_job run to its end."""
    return run_job(class_visualisation_job(network, cls, steps, lr, l2_reg, seed, blur_every, init_scale,
                                           pixel_range))


# ================================================================================================== adversarial examples

def _clip(x: np.ndarray, pixel_range: tuple[Any, Any] | None) -> np.ndarray:
    if pixel_range is None:
        return x
    return np.clip(x, pixel_range[0], pixel_range[1])


def fgsm(network: Network, x: Any, y: Any, eps: float, pixel_range: tuple[Any, Any] | None = None) -> np.ndarray:
    """Goodfellow et al.'s fast gradient sign method: x + eps sign(d L(x, y) / dx), clipped to pixel_range.
    The perturbation's max-norm is eps wherever the clip does not bite (and the gradient is non-zero)."""
    _network("fgsm", network)
    x = np.asarray(x, dtype=network.dtype)
    eps = _amount("fgsm: eps", eps)
    dx, _ = input_gradient(network, x, y, "loss")
    return _clip(x + eps * np.sign(dx), pixel_range).astype(network.dtype)


def iterative_fgsm(network: Network, x: Any, y: Any, eps: float, alpha: float | None = None, steps: int = 10,
                   pixel_range: tuple[Any, Any] | None = None) -> np.ndarray:
    """Kurakin et al.'s basic iterative method: ``steps`` FGSM steps of size alpha (default eps / 4), each followed
    by a projection onto the L-infinity ball of radius eps around x and onto pixel_range. eps and alpha: numbers,
    or arrays broadcastable to one image (a per-channel step for standardised inputs)."""
    _network("iterative_fgsm", network)
    x0 = np.asarray(x, dtype=network.dtype)
    eps = _amount("iterative_fgsm: eps", eps)
    alpha = eps / 4.0 if alpha is None else _amount("iterative_fgsm: alpha", alpha)
    steps = check_int("iterative_fgsm: steps", steps, 0, 10_000)
    xa = x0.copy()
    for _ in range(steps):
        dx, _ = input_gradient(network, xa, y, "loss")
        xa = xa + alpha * np.sign(dx)
        xa = np.clip(xa, x0 - eps, x0 + eps)
        xa = _clip(xa, pixel_range).astype(network.dtype)
    return xa


def targeted_attack(network: Network, x: Any, target: Any, eps: float, alpha: float | None = None, steps: int = 10,
                    pixel_range: tuple[Any, Any] | None = None) -> np.ndarray:
    """The notes' four steps: start from an image (1), pick a class (2), change the image to raise that class (3),
    repeat (4). Each step moves every pixel by alpha (default eps / 4) along sign(∂ log p_target / ∂x) (the target's
    score relative to the others: raising the raw score alone can lift every class), then projects back within eps of
    the original (L∞) and into pixel_range. target: one class for every image or (N,) classes."""
    _network("targeted_attack", network)
    x0 = np.asarray(x, dtype=network.dtype)
    target = _per_sample("targeted_attack target", target, len(x0), network.num_classes)
    eps = _amount("targeted_attack: eps", eps)
    alpha = eps / 4.0 if alpha is None else _amount("targeted_attack: alpha", alpha)
    steps = check_int("targeted_attack: steps", steps, 0, 10_000)
    xa = x0.copy()
    rows = np.arange(len(x0))
    for _ in range(steps):
        # d log p_target / d scores = onehot(target) - softmax(scores), whatever loss the network was trained with
        xc, scores, caches = _scores_and_caches(network, xa)
        dscores = -softmax(scores)
        dscores[rows, target] += 1.0
        dx = _input_backward(network, dscores.astype(scores.dtype), caches)
        xa = np.clip(xa + alpha * np.sign(dx), x0 - eps, x0 + eps)
        xa = _clip(xa, pixel_range).astype(network.dtype)
    return xa


def random_sign_noise(x: Any, eps: Any, seed: int = 0, pixel_range: tuple[Any, Any] | None = None) -> np.ndarray:
    """The black-box baseline: every pixel moved by ±eps with a random sign (the same L∞ size as an FGSM step, in a
    direction that knows nothing of the network), clipped to pixel_range."""
    x = np.asarray(x)
    eps = _amount("random noise: eps", eps)
    signs = np.random.default_rng(check_int("seed", seed, 0, 2**32 - 1)).choice((-1.0, 1.0), size=x.shape)
    return _clip(x + eps * signs, pixel_range).astype(x.dtype)


@dataclass(frozen=True)
class PoolTies:
    """One max-pool layer's windows on one image: how many there are and in how many the maximum is shared."""

    layer: str
    windows: int
    tied: int


def maxpool_ties(network: Network, x: Any, tol: float = 0.0) -> list[PoolTies]:
    """For each MaxPool layer, on one image (C, H, W): the windows whose maximum is attained by more than one entry
    (within tol). There the max has no single derivative: backprop sends the gradient to one of the maxima (the first,
    as PyTorch does), one sub-gradient among several, so a saliency map is one choice among equally valid ones."""
    _network("maxpool_ties", network)
    x = np.asarray(x)
    if x.ndim == len(network.input_shape):
        x = x[None]
    outs = network.layer_outputs(x[:1], "eval")
    found = []
    for k, layer in enumerate(network.layers):
        if not isinstance(layer.spec, MaxPool):
            continue
        a = np.asarray(x[:1] if k == 0 else outs[k - 1], dtype=np.float64)[0]      # (C, H, W)
        size, stride = layer.spec.size, layer.spec.stride
        C, H, W = a.shape
        Ho, Wo = (H - size) // stride + 1, (W - size) // stride + 1
        win = np.lib.stride_tricks.sliding_window_view(a, (size, size), axis=(1, 2))[:, ::stride, ::stride][:, :Ho, :Wo]
        win = win.reshape(C, Ho, Wo, size * size)
        top = win.max(axis=-1, keepdims=True)
        tied = int(np.count_nonzero((win >= top - tol).sum(axis=-1) > 1))
        found.append(PoolTies(layer.name, C * Ho * Wo, tied))
    return found


# ================================================================================================== Shapley values

@dataclass(frozen=True)
class ShapleyResult:
    """Shapley values of the patches of one image for one class: values[i, j] (patch row i, column j), their
    standard errors, the number of sampled orderings, the patch size, and v(all) - v(none) (which the values sum to
    exactly: each ordering's contributions telescope)."""

    values: np.ndarray
    stderr: np.ndarray
    samples: int
    patch: int
    total: float
    measure: str

    def pixel_map(self, shape: tuple[int, int]) -> np.ndarray:
        """Each pixel gets its patch's value: (H, W)."""
        H, W = shape
        return np.kron(self.values, np.ones((self.patch, self.patch)))[:H, :W]


def shapley_job(network: Network, x: Any, cls: Any, patch: int = 2, samples: int = 100, fill: Any = 0.0,
                measure: str = "prob", seed: int = 0) -> Generator[ShapleyResult, None, ShapleyResult]:
    """A job: the Shapley value of each patch of one image (C, H, W) for class ``cls``, estimated by sampling
    orderings of the patches (Štrumbelj & Kononenko): start from the image with every patch replaced by ``fill``, put
    the patches back one at a time in a random order, and credit each patch with the change of the class's value
    (softmax probability or raw score) it caused. Averaged over ``samples`` orderings; yields the running estimate
    every few orderings. One ordering costs one batch of (patches + 1) forward passes."""
    _network("shapley", network)
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 4 and x.shape[0] == 1:
        x = x[0]
    if x.ndim != 3:
        raise ShapeError(f"shapley needs one image (C, H, W), got shape {x.shape}")
    cls = _class("shapley", cls, network.num_classes)
    check_choice("shapley measure", measure, ("prob", "score"))
    H, W = x.shape[1:]
    patch = check_int("Shapley patch size", patch, 1, min(H, W))
    samples = check_int("Shapley samples", samples, 1, 100_000)
    seed = check_int("seed", seed, 0, 2**32 - 1)
    fill_img = np.broadcast_to(np.asarray(fill, dtype=np.float64), x.shape) if np.ndim(fill) else \
        np.full(x.shape, check_real("Shapley patch value", fill))
    if not np.all(np.isfinite(fill_img)):
        raise ValueInputError("shapley: the patch value must be finite")
    return _shapley(network, x, cls, patch, samples, fill_img, measure, seed)


def _shapley(network: Network, x: np.ndarray, cls: int, patch: int, samples: int, fill_img: np.ndarray, measure: str,
             seed: int) -> Generator[ShapleyResult, None, ShapleyResult]:
    H, W = x.shape[1:]
    R, Cn = -(-H // patch), -(-W // patch)
    P = R * Cn
    masks = np.zeros((P, H, W), bool)
    for k in range(P):
        i, j = divmod(k, Cn)
        masks[k, i * patch:(i + 1) * patch, j * patch:(j + 1) * patch] = True
    rng = np.random.default_rng(seed)
    total = np.zeros(P)
    total_sq = np.zeros(P)
    result = None
    every = max(1, samples // 20)
    for s in range(1, samples + 1):
        order = rng.permutation(P)
        batch = np.empty((P + 1, *x.shape))
        current = fill_img.copy()
        batch[0] = current
        for t, k in enumerate(order, start=1):
            current = np.where(masks[k], x, current)
            batch[t] = current
        scores = network.forward(batch.astype(network.dtype), "eval").astype(np.float64)
        v = softmax(scores)[:, cls] if measure == "prob" else scores[:, cls]
        contrib = np.empty(P)
        contrib[order] = np.diff(v)
        total += contrib
        total_sq += contrib ** 2
        if s % every == 0 or s == samples:
            mean = total / s
            var = np.maximum(total_sq / s - mean ** 2, 0.0)
            stderr = np.sqrt(var / max(s - 1, 1))
            result = ShapleyResult(mean.reshape(R, Cn), stderr.reshape(R, Cn), s, patch, float(v[-1] - v[0]), measure)
            yield result
    return result


# ================================================================================================== top patches

def receptive_field(network: Network, layer_index: int) -> tuple[int, int, int]:
    """(size, jump, start) of one unit of layer ``layer_index``'s output (0-based) in input pixels: unit (i, j) sees
    rows start + i*jump .. start + i*jump + size - 1 (start may be negative: the padding). Conv and pooling layers
    grow it (each layer record's ``receptive_steps``); layers that keep the spatial shape leave it as it is."""
    _network("receptive_field", network)
    layer_index = check_int("layer", layer_index, 0, len(network.layers) - 1)
    size, jump, start = 1, 1, 0
    for layer in network.layers[:layer_index + 1]:
        if len(layer.out_shape) != 3:
            raise ShapeError(f"{layer.title} has no spatial output: only convolution-side layers have patches")
        steps = layer.spec.receptive_steps(layer.in_shape)      # the layer record says how its windows slide
        if steps is None:
            raise ShapeError(f"{layer.title} has no fixed window, so its units have no fixed receptive field")
        for k, st, pad in steps:
            start += -pad * jump
            size += (k - 1) * jump
            jump *= st
    return size, jump, start


@dataclass(frozen=True)
class TopPatches:
    """The k strongest activations of one channel over a set of images: the input patches that caused them (raw
    crops, k x C x size x size, outside the image filled with NaN), which image and unit each came from, and the
    activation value."""

    patches: np.ndarray
    images: np.ndarray
    units: np.ndarray            # (k, 2) row, column in the layer's output
    activations: np.ndarray
    size: int
    layer: str
    channel: int


def top_patches(network: Network, X: Any, layer_index: int, channel: int, k: int = 16, raw: Any = None,
                batch_size: int = 256) -> TopPatches:
    """The lecture's 'maximally activating patches': run the images X (N, C, H, W) through the network, find the k
    largest activations of ``channel`` in layer ``layer_index``'s output (one per image at most, so the grid is not
    k copies of one digit), and crop the input patch each one sees (from ``raw``, the images as the learner knows
    them, when given)."""
    _network("top_patches", network)
    X = np.asarray(X)
    if X.ndim != 4 or len(X) == 0:
        raise ShapeError(f"top_patches needs a non-empty batch of images (N, C, H, W), got shape {X.shape}")
    size, jump, start = receptive_field(network, layer_index)
    layer = network.layers[layer_index]
    channel = check_int("channel", channel, 0, layer.out_shape[0] - 1)
    k = check_int("patches k", k, 1, len(X))
    batch_size = check_int("batch size", batch_size, 1)
    best = np.empty(len(X))
    where = np.empty((len(X), 2), np.int64)
    for a in range(0, len(X), batch_size):
        maps = np.asarray(network.layer_outputs(X[a:a + batch_size], "eval")[layer_index][:, channel], np.float64)
        flat = maps.reshape(len(maps), -1)
        idx = np.argmax(flat, axis=1)
        best[a:a + len(maps)] = flat[np.arange(len(maps)), idx]
        where[a:a + len(maps)] = np.stack(np.unravel_index(idx, maps.shape[1:]), axis=1)
    order = np.argsort(-best, kind="stable")[:k]
    src = np.asarray(X if raw is None else raw, dtype=np.float64)
    C, H, W = src.shape[1:]
    crops = np.full((k, C, size, size), np.nan)
    for n, img in enumerate(order):
        r0, c0 = start + where[img, 0] * jump, start + where[img, 1] * jump
        rs, cs = max(r0, 0), max(c0, 0)
        re, ce = min(r0 + size, H), min(c0 + size, W)
        crops[n, :, rs - r0:re - r0, cs - c0:ce - c0] = src[img, :, rs:re, cs:ce]
    return TopPatches(crops, order, where[order], best[order], size, layer.name, channel)


# ================================================================================================== embeddings

def hidden_features(network: Network, X: Any, batch_size: int = 512) -> np.ndarray:
    """The last hidden layer's activations (the input of the final layer), flattened: (N, D) float64, eval mode."""
    _network("hidden_features", network)
    batch_size = check_int("batch size", batch_size, 1)
    X = np.asarray(X)
    out = []
    for i in range(0, len(X), batch_size):
        xc = np.asarray(X[i:i + batch_size])
        outs = network.layer_outputs(xc, "eval")
        feats = outs[-2] if len(outs) >= 2 else xc
        out.append(np.asarray(feats, dtype=np.float64).reshape(len(xc), -1))
    return np.concatenate(out) if out else np.zeros((0, 0))


def pca_2d(F: Any) -> np.ndarray:
    """The first two principal components of the rows of F (N, D): centre, SVD, project (what scikit-learn's PCA
    with the full solver computes), each component's sign fixed so that its largest-|value| entry is positive."""
    F = np.asarray(F, dtype=np.float64)
    C = F - F.mean(axis=0)
    U, S, _ = np.linalg.svd(C, full_matrices=False)
    Y = U[:, :2] * S[:2]
    flip = np.sign(Y[np.abs(Y).argmax(axis=0), [0, 1]])
    return Y * np.where(flip == 0, 1.0, flip)


def embed(network: Network | None, X: Any, method: str = "pca", seed: int = 0, perplexity: float = 30.0,
          features: np.ndarray | None = None) -> np.ndarray:
    """2-D coordinates (N, 2) of the last hidden layer's activations by PCA (numpy's SVD) or t-SNE (scikit-learn,
    imported here: call it from a job), seeded. Pass ``features`` to embed precomputed features (network may then
    be None)."""
    check_choice("embedding method", method, ("pca", "tsne"))
    seed = check_int("seed", seed, 0, 2**32 - 1)
    perplexity = check_real("t-SNE perplexity", perplexity, 0.0, low_open=True)
    F = hidden_features(network, X) if features is None else np.asarray(features, dtype=np.float64)
    if F.ndim != 2 or len(F) < 3:
        raise ShapeError(f"embed needs at least 3 feature vectors (N, D), got shape {F.shape}")
    if F.shape[1] < 2:
        raise ShapeError(f"the last hidden layer has {F.shape[1]} unit; a 2-D embedding needs at least 2")
    if not np.all(np.isfinite(F)):
        raise ValueInputError("the hidden features are not all finite: the network has diverged")
    if method == "pca":
        return pca_2d(F)
    from sklearn.manifold import TSNE
    perp = min(perplexity, (len(F) - 1) / 3.0)
    return TSNE(n_components=2, perplexity=perp, init="pca", random_state=seed,
                learning_rate="auto").fit_transform(F)


def nearest_neighbours(features: Any, query_index: int, k: int = 5) -> np.ndarray:
    """Indices of the k nearest rows to row query_index by Euclidean distance (the query itself excluded), nearest
    first; ties keep index order. features: (N, D), e.g. hidden_features(...) or images flattened."""
    F = np.asarray(features, dtype=np.float64)
    if F.ndim == 0 or len(F) == 0:
        raise ShapeError("nearest_neighbours needs at least one feature vector")
    F = F.reshape(len(F), -1)
    q = check_int("nearest_neighbours: the query image", query_index, 0, len(F) - 1)
    k = check_int("nearest_neighbours: k", k, 0)
    d = np.sum((F - F[q]) ** 2, axis=1)
    d[q] = np.inf
    order = np.argsort(d, kind="stable")
    return order[:min(k, len(F) - 1)]


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
    """The shared digits (datasets.load_digits: the first call in a process imports scikit-learn and reads them, so
    call it from a job, never on the UI thread), scaled and split afresh (cheap)."""
    from simulator.data.datasets import load_digits, train_val_split
    seed = check_int("seed", seed, 0)
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


def quick_digits_training(seed: int = 0, epochs: int = 10, dtype: Any = np.float32, lr: float = 3e-3
                          ) -> Generator[Progress, None, QuickModel]:
    """A job: a small CNN (digits_cnn) trained on digits with Adam, batch 32, in about half a second (about 96-97%
    validation accuracy with the defaults). Loads the data in the job (scikit-learn is imported there). Yields
    Progress(iteration, total, message with the latest validation accuracy); returns the QuickModel."""
    seed = check_int("seed", seed, 0)
    epochs = check_int("epochs", epochs, 1, 1000)
    lr = check_real("learning rate", lr, 0.0, low_open=True)
    return _quick_training(seed, epochs, dtype, lr)


def _quick_training(seed: int, epochs: int, dtype: Any, lr: float) -> Generator[Progress, None, QuickModel]:
    yield Progress(0, 0, "loading the digits")
    data = digits_data(seed, dtype)
    net = digits_cnn(seed, dtype)
    tr = Trainer(net, data.as_tuple(), "Adam", lr=lr, batch_size=32, epochs=epochs, seed=seed)
    acc = math.nan
    for m in tr.training():
        if isinstance(m, EpochMetrics):
            acc = m.val_accuracy
        text = f"iteration {m.iteration}/{tr.total_steps}"
        if math.isfinite(acc):
            text += f", validation accuracy {100 * acc:.1f}%"
        yield Progress(m.iteration, tr.total_steps, text)
    return QuickModel(net, data, net.accuracy(data.X_val, data.y_val), tr.history)


def quick_digits_model(seed: int = 0, epochs: int = 10, dtype: Any = np.float32, lr: float = 3e-3) -> QuickModel:
    """quick_digits_training run to its end."""
    return run_job(quick_digits_training(seed, epochs, dtype, lr))
