"""Data for the labs: toy 2-D sets, splits, standardisation, scikit-learn's digits, image augmentation.

Toy sets return (X float64 (N, 2), y int64 (N,)) with classes as balanced as N allows (class k gets N // K samples,
the first N % K classes one more), drawn from a numpy Generator seeded with `seed`: the same arguments always give
the same points. Each set's defaults (points, noise, classes) are declared once, in TOY_DEFAULTS. The digits are read
once per process (``load_digits``, lock-protected, read-only arrays) and shared by every lab. Images are
(N, C, H, W) float64. Every random augmentation takes a Generator or a seed; ``AugmentSettings`` declares the
augmentation a learner sets up (ranges, defaults, labels, help) and ``augment_batch`` applies it.
"""
from __future__ import annotations

import math
import numbers
import threading
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from simulator.core.errors import ShapeError, ValueInputError
from simulator.core.jobs import Job, Progress
from simulator.core.params import Settings, check_int, check_real, param

__all__ = [
    "spiral", "circles", "xor", "moons", "blobs", "ToyDefaults", "TOY_DEFAULTS", "TOY_NAMES", "MULTICLASS",
    "TOY_SETS", "make_toy", "toy_data", "train_val_split", "Standardizer", "standardize", "load_digits",
    "digits_if_loaded", "hflip", "random_crop", "rotate", "rotate_by", "brightness_contrast", "cutout", "mixup",
    "cutmix", "one_hot", "Augmenter", "AugmentSettings", "MIX_MODES", "augment_batch", "augment_preview",
]

MAX_POINTS = 1_000_000


def _rng(seed: Any) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or (isinstance(seed, numbers.Integral) and not isinstance(seed, bool) and seed >= 0):
        return np.random.default_rng(seed)
    raise ValueInputError(f"seed must be a non-negative integer or a numpy Generator, got {seed!r}")


def _labels(n: int, k: int) -> np.ndarray:
    """n labels, class sizes differing by at most one, in class order."""
    return np.repeat(np.arange(k, dtype=np.int64), [n // k + (c < n % k) for c in range(k)])


# ================================================================================================== toy 2-D sets

@dataclass(frozen=True)
class ToyDefaults:
    """What a lab starts a toy set at: ``points`` samples, ``noise`` (the noise std; for blobs, each blob's std,
    passed as ``noise_arg``), ``classes`` classes; ``multiclass`` says whether the number of classes is a setting
    (False: the set always has ``classes``)."""

    points: int
    noise: float
    classes: int
    multiclass: bool = False
    noise_arg: str = "noise"


# Each toy set's defaults, declared once: the functions below take them as their argument defaults and every lab
# starts a set at them (the playground's and the Classifiers lab's data settings).
TOY_DEFAULTS: Mapping[str, ToyDefaults] = {
    "spiral": ToyDefaults(points=300, noise=0.2, classes=3, multiclass=True),
    "circles": ToyDefaults(points=300, noise=0.05, classes=2),
    "xor": ToyDefaults(points=300, noise=0.1, classes=2),
    "moons": ToyDefaults(points=300, noise=0.1, classes=2),
    "blobs": ToyDefaults(points=300, noise=0.5, classes=3, multiclass=True, noise_arg="std"),
}
TOY_NAMES = tuple(TOY_DEFAULTS)
MULTICLASS = tuple(name for name, d in TOY_DEFAULTS.items() if d.multiclass)   # the class count is a setting
_D = TOY_DEFAULTS


def spiral(n: int = _D["spiral"].points, classes: int = _D["spiral"].classes, noise: float = _D["spiral"].noise,
           seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The cs231n spiral: K arms; a point at radius r in [0, 1] of arm k has angle 4 (k + r) + noise * N(0, 1)."""
    n, k = check_int("n", n, 1, MAX_POINTS), check_int("classes", classes, 2, 100)
    noise = check_real("noise", noise, 0.0, 10.0)
    rng = _rng(seed)
    y = _labels(n, k)
    X = np.empty((n, 2))
    for c in range(k):
        m = int(np.sum(y == c))
        r = np.linspace(0.0, 1.0, m)
        t = np.linspace(c * 4.0, (c + 1) * 4.0, m) + rng.standard_normal(m) * noise
        X[y == c] = np.c_[r * np.sin(t), r * np.cos(t)]
    return X, y


def circles(n: int = _D["circles"].points, noise: float = _D["circles"].noise, factor: float = 0.5, seed: int = 0
            ) -> tuple[np.ndarray, np.ndarray]:
    """Two concentric circles: class 0 on radius 1, class 1 on radius `factor`, plus Gaussian noise."""
    n = check_int("n", n, 1, MAX_POINTS)
    noise, factor = check_real("noise", noise, 0.0, 10.0), check_real("factor", factor, 0.0, 1.0)
    rng = _rng(seed)
    y = _labels(n, 2)
    t = rng.uniform(0.0, 2 * np.pi, n)
    r = np.where(y == 0, 1.0, factor)
    X = np.c_[r * np.cos(t), r * np.sin(t)] + rng.standard_normal((n, 2)) * noise
    return X, y


def xor(n: int = _D["xor"].points, noise: float = _D["xor"].noise, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Four clusters at (+-1, +-1); class 1 where the signs differ (the XOR of the quadrants)."""
    n = check_int("n", n, 1, MAX_POINTS)
    noise = check_real("noise", noise, 0.0, 10.0)
    rng = _rng(seed)
    y = _labels(n, 2)
    sx = rng.choice([-1.0, 1.0], n)
    sy = np.where(y == 1, -sx, sx)
    X = np.c_[sx, sy] * rng.uniform(0.2, 1.0, (n, 2)) + rng.standard_normal((n, 2)) * noise
    return X, y


def moons(n: int = _D["moons"].points, noise: float = _D["moons"].noise, seed: int = 0
          ) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles (scikit-learn's make_moons construction)."""
    n = check_int("n", n, 1, MAX_POINTS)
    noise = check_real("noise", noise, 0.0, 10.0)
    rng = _rng(seed)
    y = _labels(n, 2)
    t = rng.uniform(0.0, np.pi, n)
    X = np.where(y[:, None] == 0, np.c_[np.cos(t), np.sin(t)], np.c_[1.0 - np.cos(t), 0.5 - np.sin(t)])
    return X + rng.standard_normal((n, 2)) * noise, y


def blobs(n: int = _D["blobs"].points, classes: int = _D["blobs"].classes, std: float = _D["blobs"].noise,
          spread: float = 3.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """K Gaussian blobs of standard deviation `std`, centres evenly spaced on a circle of radius `spread`."""
    n, k = check_int("n", n, 1, MAX_POINTS), check_int("classes", classes, 2, 100)
    std, spread = check_real("std", std, 0.0, 100.0), check_real("spread", spread, 0.0, 1000.0)
    rng = _rng(seed)
    y = _labels(n, k)
    angles = 2 * np.pi * np.arange(k) / k
    centres = spread * np.c_[np.cos(angles), np.sin(angles)]
    return centres[y] + rng.standard_normal((n, 2)) * std, y


TOY_SETS: dict[str, Callable[..., tuple[np.ndarray, np.ndarray]]] = {
    "spiral": spiral, "circles": circles, "xor": xor, "moons": moons, "blobs": blobs}


def make_toy(name: str, **kwargs: Any) -> tuple[np.ndarray, np.ndarray]:
    """TOY_SETS[name](**kwargs), with a clear error for an unknown name or argument."""
    if name not in TOY_SETS:
        raise ValueInputError(f"unknown data set {name!r}; choose one of {', '.join(TOY_SETS)}")
    try:
        return TOY_SETS[name](**kwargs)
    except TypeError as exc:
        raise ValueInputError(f"{name}: {exc}") from None


def toy_data(name: str, points: int | None = None, noise: float | None = None, classes: int | None = None,
             seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A toy set from the settings every lab shows (points, noise, classes, seed), each defaulting to TOY_DEFAULTS:
    ``noise`` goes to the set's own noise argument (blobs: ``std``) and ``classes`` is used by the MULTICLASS sets
    only (the others always have their own number)."""
    if name not in TOY_DEFAULTS:
        raise ValueInputError(f"unknown data set {name!r}; choose one of {', '.join(TOY_SETS)}")
    d = TOY_DEFAULTS[name]
    kw: dict[str, Any] = {"n": d.points if points is None else points, "seed": seed,
                          d.noise_arg: d.noise if noise is None else noise}
    if d.multiclass:
        kw["classes"] = d.classes if classes is None else classes
    return TOY_SETS[name](**kw)


# ================================================================================================== splitting, scaling

def train_val_split(X: Any, y: Any, val_fraction: float = 0.2, seed: int = 0, stratify: bool = True
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(X_train, y_train, X_val, y_val): a seeded shuffle; with stratify (integer labels), each class contributes
    round(val_fraction * its count) samples to validation, so both parts keep the class balance."""
    X, y = np.asarray(X), np.asarray(y)
    if len(X) != len(y):
        raise ShapeError(f"X has {len(X)} samples but y has {len(y)}")
    f = check_real("val_fraction", val_fraction, 0.0, 1.0)
    rng = _rng(seed)
    if stratify and y.ndim == 1 and y.dtype.kind in "iu":
        val = []
        for c in np.unique(y):
            idx = rng.permutation(np.flatnonzero(y == c))
            val.append(idx[:int(round(f * len(idx)))])
        val_idx = rng.permutation(np.concatenate(val)) if val else np.zeros(0, np.int64)
        mask = np.ones(len(y), bool)
        mask[val_idx] = False
        train_idx = rng.permutation(np.flatnonzero(mask))
    else:
        perm = rng.permutation(len(y))
        k = int(round(f * len(y)))
        val_idx, train_idx = perm[:k], perm[k:]
    return X[train_idx], y[train_idx], X[val_idx], y[val_idx]


@dataclass(frozen=True)
class Standardizer:
    """Statistics from the training set only. Vectors (N, D): mean and std per feature. Images (N, C, H, W): the
    mean image (C, H, W) is subtracted and each channel divided by its std (C,) (computed after the subtraction).
    ``apply(X)`` = (X - mean) / std, std floored at 1e-8 so constant features stay finite."""

    mean: np.ndarray
    std: np.ndarray

    def apply(self, X: Any) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.shape[1:] != self.mean.shape:
            raise ShapeError(f"X has samples of shape {X.shape[1:]} but the statistics are for {self.mean.shape}")
        std = self.std if self.std.ndim == self.mean.ndim else self.std.reshape(-1, 1, 1)
        return (X - self.mean) / std

    def invert(self, X: Any) -> np.ndarray:
        std = self.std if self.std.ndim == self.mean.ndim else self.std.reshape(-1, 1, 1)
        return np.asarray(X) * std + self.mean


def standardize(X_train: Any, *X_other: Any) -> tuple[Standardizer, list[np.ndarray]]:
    """Fit on X_train only, apply to it and to every other set: (stats, [X_train', X_other'...])."""
    X = np.asarray(X_train, dtype=np.float64)
    if X.ndim not in (2, 4) or len(X) == 0:
        raise ShapeError(f"standardize needs (N, D) vectors or (N, C, H, W) images, got shape {X.shape}")
    mean = X.mean(axis=0)
    if X.ndim == 2:
        std = X.std(axis=0)
    else:
        std = (X - mean).transpose(1, 0, 2, 3).reshape(X.shape[1], -1).std(axis=1)
    stats = Standardizer(mean, np.maximum(std, 1e-8))
    return stats, [stats.apply(a) for a in (X, *X_other)]


# ================================================================================================== digits

_DIGITS: tuple[np.ndarray, np.ndarray] | None = None
_DIGITS_LOCK = threading.Lock()


def load_digits(*, cached: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled digits (no download): 1,797 images (N, 1, 8, 8) float64 with values 0..16, labels
    int64 0..9, both read-only (copy before changing them). Read once per process and shared by every lab: the
    first call imports scikit-learn and reads the file (~0.3 s; call it from a job, not on the UI thread), later
    calls return the same arrays; concurrent first calls wait for one read. ``cached=False`` reads the file again
    (and keeps nothing). Needs scikit-learn (ValueInputError saying so when it is missing)."""
    global _DIGITS
    with _DIGITS_LOCK:
        if _DIGITS is not None and cached:
            return _DIGITS
        try:
            from sklearn.datasets import load_digits as _load
        except ImportError:
            raise ValueInputError("the digits data set needs scikit-learn, which is not installed: "
                                  "pip install scikit-learn") from None
        d = _load()
        X, y = d.images.astype(np.float64).reshape(-1, 1, 8, 8), d.target.astype(np.int64)
        X.flags.writeable = False
        y.flags.writeable = False
        if cached:
            _DIGITS = (X, y)
        return X, y


def digits_if_loaded() -> tuple[np.ndarray, np.ndarray] | None:
    """The digits if some job has loaded them already, else None (never loads: safe on the UI thread)."""
    with _DIGITS_LOCK:
        return _DIGITS


def digits_job() -> Job[tuple[np.ndarray, np.ndarray]]:
    """Loading the digits as a job (the first load imports scikit-learn: seconds, off the UI thread)."""
    yield Progress(0, 1, "loading the digits…")
    return load_digits()


# ================================================================================================== augmentation

def _images(fn: str, x: Any) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 4 or x.dtype.kind != "f":
        raise ShapeError(f"{fn}: expected float images (N, C, H, W), got shape {x.shape} dtype {x.dtype}")
    return x


def hflip(x: Any, p: float = 0.5, seed: Any = None) -> np.ndarray:
    """Each image mirrored left-right with probability p."""
    x = _images("hflip", x)
    flip = _rng(seed).random(len(x)) < check_real("p", p, 0.0, 1.0)
    out = x.copy()
    out[flip] = x[flip, :, :, ::-1]
    return out


def random_crop(x: Any, pad: int = 1, seed: Any = None) -> np.ndarray:
    """Zero-pad each side by `pad`, then crop back to H x W at a random offset: a random shift of up to pad pixels."""
    x = _images("random_crop", x)
    pad = check_int("pad", pad, 0, 1000)
    if pad == 0:
        return x.copy()
    N, C, H, W = x.shape
    padded = np.zeros((N, C, H + 2 * pad, W + 2 * pad), x.dtype)
    padded[:, :, pad:pad + H, pad:pad + W] = x
    rng = _rng(seed)
    oy, ox = rng.integers(0, 2 * pad + 1, N), rng.integers(0, 2 * pad + 1, N)
    rows = oy[:, None] + np.arange(H)[None, :]
    cols = ox[:, None] + np.arange(W)[None, :]
    n = np.arange(N)[:, None, None, None]
    c = np.arange(C)[None, :, None, None]
    return padded[n, c, rows[:, None, :, None], cols[:, None, None, :]]


def rotate(x: Any, max_degrees: float = 10.0, seed: Any = None, order: str = "bilinear") -> np.ndarray:
    """Rotate each image about its centre by a uniform random angle in [-max_degrees, max_degrees] (rotate_by)."""
    x = _images("rotate", x)
    degrees = _rng(seed).uniform(-1, 1, len(x)) * check_real("max_degrees", max_degrees, 0.0, 180.0)
    return rotate_by(x, degrees, order)


def rotate_by(x: Any, degrees: Any, order: str = "bilinear") -> np.ndarray:
    """Rotate image i counter-clockwise (as displayed, row 0 at the top) by degrees[i] about its centre; pixels
    from outside the image are 0. order: 'nearest' or 'bilinear'. Inverse mapping: each output pixel samples the
    input at R(-angle) applied to its own position."""
    x = _images("rotate_by", x)
    if order not in ("nearest", "bilinear"):
        raise ValueInputError(f"rotate: order must be 'nearest' or 'bilinear', got {order!r}")
    N, C, H, W = x.shape
    ang = -np.deg2rad(np.broadcast_to(np.asarray(degrees, np.float64), (N,)))
    cy, cx = (H - 1) / 2.0, (W - 1) / 2.0
    yy, xx = np.meshgrid(np.arange(H) - cy, np.arange(W) - cx, indexing="ij")
    cos, sin = np.cos(ang)[:, None, None], np.sin(ang)[:, None, None]
    # (row, col) source of each output pixel; rows grow downwards, hence the minus sign above
    sy = cos * yy - sin * xx + cy
    sx = sin * yy + cos * xx + cx
    n = np.arange(N)[:, None, None]
    if order == "nearest":
        iy, ix = np.rint(sy).astype(np.int64), np.rint(sx).astype(np.int64)
        ok = (iy >= 0) & (iy < H) & (ix >= 0) & (ix < W)
        vals = x[n, :, np.clip(iy, 0, H - 1), np.clip(ix, 0, W - 1)]  # (N, H, W, C)
        return np.moveaxis(np.where(ok[..., None], vals, 0.0), -1, 1).astype(x.dtype)
    y0, x0 = np.floor(sy).astype(np.int64), np.floor(sx).astype(np.int64)
    fy, fx = sy - y0, sx - x0
    acc = np.zeros((N, H, W, C))
    for dy, dx, wgt in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
        iy, ix = y0 + dy, x0 + dx
        ok = (iy >= 0) & (iy < H) & (ix >= 0) & (ix < W)
        vals = x[n, :, np.clip(iy, 0, H - 1), np.clip(ix, 0, W - 1)]
        acc += np.where(ok[..., None], vals, 0.0) * wgt[..., None]
    return np.moveaxis(acc, -1, 1).astype(x.dtype)


def brightness_contrast(x: Any, brightness: float = 0.1, contrast: float = 0.1, seed: Any = None) -> np.ndarray:
    """Per image: out = (x - mean) * c + mean + b * range, c ~ U(1 - contrast, 1 + contrast), b ~ U(-brightness,
    brightness), where mean is the image's mean and range its max - min (so the shift scales with the data)."""
    x = _images("brightness_contrast", x)
    rng = _rng(seed)
    N = len(x)
    c = 1 + rng.uniform(-1, 1, N) * check_real("contrast", contrast, 0.0, 1.0)
    b = rng.uniform(-1, 1, N) * check_real("brightness", brightness, 0.0, 10.0)
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    rng_ = (x.max(axis=(1, 2, 3)) - x.min(axis=(1, 2, 3)))
    shape = (N, 1, 1, 1)
    return ((x - mean) * c.reshape(shape) + mean + (b * rng_).reshape(shape)).astype(x.dtype)


def cutout(x: Any, size: int = 3, seed: Any = None, fill: float | None = None) -> np.ndarray:
    """A size x size square at a random centre (clipped at the border) set to `fill` (default: the image's mean
    colour, per channel, as in the lecture)."""
    x = _images("cutout", x)
    size = check_int("size", size, 1, 10_000)
    N, C, H, W = x.shape
    rng = _rng(seed)
    cy, cx = rng.integers(0, H, N), rng.integers(0, W, N)
    out = x.copy()
    for i in range(N):
        y0, y1 = max(cy[i] - size // 2, 0), min(cy[i] - size // 2 + size, H)
        x0, x1 = max(cx[i] - size // 2, 0), min(cx[i] - size // 2 + size, W)
        val = x[i].mean(axis=(1, 2))[:, None, None] if fill is None else fill
        out[i, :, y0:y1, x0:x1] = val
    return out


def one_hot(y: Any, classes: int) -> np.ndarray:
    """Integer labels (N,) -> (N, classes) float64; soft labels (N, classes) pass through."""
    y = np.asarray(y)
    if y.ndim == 2:
        if y.shape[1] != classes:
            raise ShapeError(f"soft labels have {y.shape[1]} classes, expected {classes}")
        return y.astype(np.float64)
    if y.dtype.kind not in "iu" or (y.size and (y.min() < 0 or y.max() >= classes)):
        raise ValueInputError(f"labels must be integers in 0..{classes - 1}")
    out = np.zeros((len(y), classes))
    out[np.arange(len(y)), y] = 1.0
    return out


def mixup(x: Any, y: Any, classes: int, alpha: float = 0.2, seed: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Blend each image with a random partner: lam ~ Beta(alpha, alpha) per sample, out = lam x + (1 - lam) x[perm],
    labels likewise (soft labels (N, classes), each row summing to 1)."""
    x = _images("mixup", x)
    yh = one_hot(y, classes)
    rng = _rng(seed)
    alpha = check_real("alpha", alpha, 1e-6, 1e6)
    lam = rng.beta(alpha, alpha, len(x))
    perm = rng.permutation(len(x))
    xm = lam[:, None, None, None] * x + (1 - lam[:, None, None, None]) * x[perm]
    return xm.astype(x.dtype), lam[:, None] * yh + (1 - lam[:, None]) * yh[perm]


def cutmix(x: Any, y: Any, classes: int, alpha: float = 1.0, seed: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Paste a random box of a partner image into each image; the labels mix by the pasted area's share."""
    x = _images("cutmix", x)
    yh = one_hot(y, classes)
    rng = _rng(seed)
    alpha = check_real("alpha", alpha, 1e-6, 1e6)
    N, C, H, W = x.shape
    lam = rng.beta(alpha, alpha, N)
    perm = rng.permutation(N)
    out = x.copy()
    share = np.zeros(N)
    for i in range(N):
        h, w = int(round(H * math.sqrt(1 - lam[i]))), int(round(W * math.sqrt(1 - lam[i])))
        cy, cx = rng.integers(0, H), rng.integers(0, W)
        y0, y1 = max(cy - h // 2, 0), min(cy - h // 2 + h, H)
        x0, x1 = max(cx - w // 2, 0), min(cx - w // 2 + w, W)
        out[i, :, y0:y1, x0:x1] = x[perm[i], :, y0:y1, x0:x1]
        share[i] = (y1 - y0) * (x1 - x0) / (H * W)
    return out, (1 - share)[:, None] * yh + share[:, None] * yh[perm]


@dataclass(frozen=True)
class Augmenter:
    """A label-preserving pipeline for Trainer(augment=...): flip, shift, rotate, brightness/contrast, cutout, each
    applied when its setting is non-zero. Call with (x_batch, rng)."""

    flip: float = 0.0
    shift: int = 0
    degrees: float = 0.0
    brightness: float = 0.0
    contrast: float = 0.0
    cutout: int = 0

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        dtype = x.dtype
        x = np.asarray(x, dtype=np.float64)
        if self.flip:
            x = hflip(x, self.flip, rng)
        if self.shift:
            x = random_crop(x, self.shift, rng)
        if self.degrees:
            x = rotate(x, self.degrees, rng)
        if self.brightness or self.contrast:
            x = brightness_contrast(x, self.brightness, self.contrast, rng)
        if self.cutout:
            x = cutout(x, self.cutout, rng)
        return x.astype(dtype)


MIX_MODES = ("none", "mixup", "cutmix")
_PIPELINE_NAMES = ("flip", "shift", "rotate", "brightness/contrast", "cutout")    # the Augmenter's order


@dataclass(frozen=True)
class AugmentSettings(Settings):
    """The augmentation a learner sets up, declared once (the preview's controls and the playground's training read
    it): each label-preserving transform switched on or off with its strength, then optional mixing of each image
    with a partner from its mini-batch (soft labels). ``augmenter()`` is the label-preserving part as
    Trainer(augment=...) runs it; ``augment_batch`` applies all of it; ``seed`` seeds the preview's draws only
    (training draws from the trainer's own seed)."""

    flip_on: bool = param(False, label="Horizontal flip",
                          doc="Mirror left-right: free data for photos, but a mirrored 3 is no longer a 3.")
    flip: float = param(0.5, low=0.0, high=1.0, decimals=2, label="flip probability",
                        doc="the probability p that an image is mirrored")
    shift_on: bool = param(True, label="Random crop / shift",
                           doc="Zero-pad, crop back at a random offset: where the digit sits should not matter.")
    shift: int = param(1, low=1, high=3, label="padding",
                       doc="pixels of zero padding on each side: the largest shift, in pixels")
    rotate_on: bool = param(True, label="Rotation", doc="Tilt by a small random angle, as handwriting does.")
    degrees: float = param(15.0, low=1.0, high=45.0, decimals=0, label="largest angle",
                           doc="each image turns by a uniform random angle in [−a, a] degrees")
    bc_on: bool = param(False, label="Brightness / contrast",
                        doc="Shift and stretch the ink level: robustness to lighting and pen pressure.")
    brightness: float = param(0.2, low=0.0, high=1.0, decimals=2, label="brightness",
                              doc="the ink level shifts by b × the image's range, b ~ U(−β, β)")
    contrast: float = param(0.3, low=0.0, high=1.0, decimals=2, label="contrast",
                            doc="the ink stretches about its mean by c ~ U(1 − γ, 1 + γ)")
    cutout_on: bool = param(False, label="Cutout",
                            doc="Blank a random square: the net must use the whole digit, not one stroke.")
    cutout: int = param(3, low=1, high=6, label="square side", doc="the side of the blanked square, in pixels")
    mix: str = param("none", choices=MIX_MODES, choice_labels=("None (hard labels)", "Mixup", "CutMix"),
                     label="mixing", doc="mix each image, and its label, with a partner from its mini-batch")
    mixup_alpha: float = param(0.4, low=0.05, high=10.0, decimals=2, label="mixup α",
                               doc="λ ~ Beta(α, α): small α keeps most images nearly pure, α = 1 mixes uniformly")
    cutmix_alpha: float = param(1.0, low=0.05, high=10.0, decimals=2, label="CutMix α",
                                doc="the kept share λ ~ Beta(α, α); the pasted box covers about 1 − λ of the image")
    seed: int = param(0, low=0, high=99_999, label="Seed",
                      doc="Column j of the preview draws its randomness from default_rng([seed, j])")

    @property
    def mixes_labels(self) -> bool:
        """True when mixup or CutMix is on: the batch's labels become soft targets (B, classes)."""
        return self.mix != "none"

    @property
    def alpha(self) -> float:
        """The Beta(α, α) parameter of the chosen mixing (mixup's when there is none)."""
        return self.cutmix_alpha if self.mix == "cutmix" else self.mixup_alpha

    def augmenter(self) -> Augmenter:
        """The label-preserving part, exactly as Trainer(augment=...) runs it (a switched-off transform is 0)."""
        return Augmenter(flip=self.flip if self.flip_on else 0.0, shift=self.shift if self.shift_on else 0,
                         degrees=self.degrees if self.rotate_on else 0.0,
                         brightness=self.brightness if self.bc_on else 0.0,
                         contrast=self.contrast if self.bc_on else 0.0, cutout=self.cutout if self.cutout_on else 0)

    def pipeline(self) -> list[str]:
        """The steps that change an image, in the Augmenter's order, then the mixing."""
        a = self.augmenter()
        on = (a.flip, a.shift, a.degrees, a.brightness or a.contrast, a.cutout)
        steps = [name for name, k in zip(_PIPELINE_NAMES, on) if k]
        if self.mix != "none":
            steps.append("mixup" if self.mix == "mixup" else "CutMix")
        return steps


def augment_batch(x: Any, y: Any, classes: int, settings: AugmentSettings, rng: np.random.Generator
                  ) -> tuple[np.ndarray, np.ndarray]:
    """One draw of the whole augmentation on a mini-batch x (B, C, H, W), y (B,) int: the label-preserving
    Augmenter, then mixup or CutMix with partners from the batch. Returns (images float64, soft labels
    (B, classes)). The preview shows it and Trainer(augment=settings) trains with it, drawing from one Generator
    in this order: the Augmenter's draws, then the mixing's (lam ~ Beta(α, α) per image, the partner permutation,
    and for CutMix each box's centre)."""
    if not isinstance(settings, AugmentSettings):
        raise ValueInputError(f"settings must be AugmentSettings, got {settings!r}")
    xa = settings.augmenter()(np.asarray(x, np.float64), rng)
    if settings.mix == "mixup":
        return mixup(xa, y, classes, settings.mixup_alpha, rng)
    if settings.mix == "cutmix":
        return cutmix(xa, y, classes, settings.cutmix_alpha, rng)
    return xa, one_hot(y, classes)


def augment_preview(x: Any, y: Any, rows: int, samples: int, settings: AugmentSettings, classes: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """The preview grid of a mini-batch x (B, C, H, W), y (B,) int whose first ``rows`` images are shown.

    Returns cells (rows, samples + 1, C, H, W) and soft labels (rows, samples + 1, classes): column 0 the originals
    (one-hot), column j >= 1 augment_batch of the whole batch with rng = default_rng([settings.seed, j]) (so mixing
    partners come from the batch, as in training, and any column can be replayed)."""
    x = _images("augment_preview", np.asarray(x, np.float64))
    y = np.asarray(y)
    rows = check_int("rows", rows, 0, len(x))
    samples = check_int("samples", samples, 0, 1000)
    cells = np.empty((rows, samples + 1, *x.shape[1:]))
    soft = np.empty((rows, samples + 1, classes))
    cells[:, 0] = x[:rows]
    soft[:, 0] = one_hot(y[:rows], classes)
    for j in range(1, samples + 1):
        xa, ya = augment_batch(x, y, classes, settings, np.random.default_rng([settings.seed, j]))
        cells[:, j] = xa[:rows]
        soft[:, j] = ya[:rows]
    return cells, soft
