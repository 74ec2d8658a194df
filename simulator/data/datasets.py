"""Data for the training playground: toy 2-D sets, splits, standardisation, scikit-learn's digits, image augmentation.

Toy sets return (X float64 (N, 2), y int64 (N,)) with classes as balanced as N allows (class k gets N // K samples,
the first N % K classes one more), drawn from a numpy Generator seeded with `seed`: the same arguments always give
the same points. Images are (N, C, H, W) float64. Every random augmentation takes a Generator or a seed.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from simulator.core.errors import ShapeError, ValueInputError

__all__ = [
    "spiral", "circles", "xor", "moons", "blobs", "TOY_SETS", "make_toy", "train_val_split", "Standardizer",
    "standardize", "load_digits", "hflip", "random_crop", "rotate", "rotate_by", "brightness_contrast", "cutout",
    "mixup",
    "cutmix", "one_hot", "Augmenter",
]

MAX_POINTS = 1_000_000


def _count(name: str, v: Any, low: int = 1, high: int = MAX_POINTS) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or not low <= v <= high:
        raise ValueInputError(f"{name} must be an integer in [{low}, {high}], got {v!r}")
    return int(v)


def _real(name: str, v: Any, low: float = 0.0, high: float = math.inf) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(float(v)) or not low <= v <= high:
        raise ValueInputError(f"{name} must be a finite number in [{low}, {high}], got {v!r}")
    return float(v)


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

def spiral(n: int = 300, classes: int = 3, noise: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The cs231n spiral: K arms; a point at radius r in [0, 1] of arm k has angle 4 (k + r) + noise * N(0, 1)."""
    n, k = _count("n", n), _count("classes", classes, 2, 100)
    noise = _real("noise", noise, 0.0, 10.0)
    rng = _rng(seed)
    y = _labels(n, k)
    X = np.empty((n, 2))
    for c in range(k):
        m = int(np.sum(y == c))
        r = np.linspace(0.0, 1.0, m)
        t = np.linspace(c * 4.0, (c + 1) * 4.0, m) + rng.standard_normal(m) * noise
        X[y == c] = np.c_[r * np.sin(t), r * np.cos(t)]
    return X, y


def circles(n: int = 300, noise: float = 0.05, factor: float = 0.5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two concentric circles: class 0 on radius 1, class 1 on radius `factor`, plus Gaussian noise."""
    n = _count("n", n)
    noise, factor = _real("noise", noise, 0.0, 10.0), _real("factor", factor, 0.0, 1.0)
    rng = _rng(seed)
    y = _labels(n, 2)
    t = rng.uniform(0.0, 2 * np.pi, n)
    r = np.where(y == 0, 1.0, factor)
    X = np.c_[r * np.cos(t), r * np.sin(t)] + rng.standard_normal((n, 2)) * noise
    return X, y


def xor(n: int = 300, noise: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Four clusters at (+-1, +-1); class 1 where the signs differ (the XOR of the quadrants)."""
    n = _count("n", n)
    noise = _real("noise", noise, 0.0, 10.0)
    rng = _rng(seed)
    y = _labels(n, 2)
    sx = rng.choice([-1.0, 1.0], n)
    sy = np.where(y == 1, -sx, sx)
    X = np.c_[sx, sy] * rng.uniform(0.2, 1.0, (n, 2)) + rng.standard_normal((n, 2)) * noise
    return X, y


def moons(n: int = 300, noise: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles (scikit-learn's make_moons construction)."""
    n = _count("n", n)
    noise = _real("noise", noise, 0.0, 10.0)
    rng = _rng(seed)
    y = _labels(n, 2)
    t = rng.uniform(0.0, np.pi, n)
    X = np.where(y[:, None] == 0, np.c_[np.cos(t), np.sin(t)], np.c_[1.0 - np.cos(t), 0.5 - np.sin(t)])
    return X + rng.standard_normal((n, 2)) * noise, y


def blobs(n: int = 300, classes: int = 3, std: float = 0.5, spread: float = 3.0, seed: int = 0
          ) -> tuple[np.ndarray, np.ndarray]:
    """K Gaussian blobs of standard deviation `std`, centres evenly spaced on a circle of radius `spread`."""
    n, k = _count("n", n), _count("classes", classes, 2, 100)
    std, spread = _real("std", std, 0.0, 100.0), _real("spread", spread, 0.0, 1000.0)
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


# ================================================================================================== splitting, scaling

def train_val_split(X: Any, y: Any, val_fraction: float = 0.2, seed: int = 0, stratify: bool = True
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(X_train, y_train, X_val, y_val): a seeded shuffle; with stratify (integer labels), each class contributes
    round(val_fraction * its count) samples to validation, so both parts keep the class balance."""
    X, y = np.asarray(X), np.asarray(y)
    if len(X) != len(y):
        raise ShapeError(f"X has {len(X)} samples but y has {len(y)}")
    f = _real("val_fraction", val_fraction, 0.0, 1.0)
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

def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled digits (no download): 1,797 images (N, 1, 8, 8) float64 with values 0..16, labels
    int64 0..9. Needs scikit-learn (ValueInputError saying so when it is missing)."""
    try:
        from sklearn.datasets import load_digits as _load
    except ImportError:
        raise ValueInputError("the digits data set needs scikit-learn, which is not installed: "
                              "pip install scikit-learn") from None
    d = _load()
    return d.images.astype(np.float64).reshape(-1, 1, 8, 8), d.target.astype(np.int64)


# ================================================================================================== augmentation

def _images(fn: str, x: Any) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 4 or x.dtype.kind != "f":
        raise ShapeError(f"{fn}: expected float images (N, C, H, W), got shape {x.shape} dtype {x.dtype}")
    return x


def hflip(x: Any, p: float = 0.5, seed: Any = None) -> np.ndarray:
    """Each image mirrored left-right with probability p."""
    x = _images("hflip", x)
    flip = _rng(seed).random(len(x)) < _real("p", p, 0.0, 1.0)
    out = x.copy()
    out[flip] = x[flip, :, :, ::-1]
    return out


def random_crop(x: Any, pad: int = 1, seed: Any = None) -> np.ndarray:
    """Zero-pad each side by `pad`, then crop back to H x W at a random offset: a random shift of up to pad pixels."""
    x = _images("random_crop", x)
    pad = _count("pad", pad, 0, 1000)
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
    degrees = _rng(seed).uniform(-1, 1, len(x)) * _real("max_degrees", max_degrees, 0.0, 180.0)
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
    c = 1 + rng.uniform(-1, 1, N) * _real("contrast", contrast, 0.0, 1.0)
    b = rng.uniform(-1, 1, N) * _real("brightness", brightness, 0.0, 10.0)
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    rng_ = (x.max(axis=(1, 2, 3)) - x.min(axis=(1, 2, 3)))
    shape = (N, 1, 1, 1)
    return ((x - mean) * c.reshape(shape) + mean + (b * rng_).reshape(shape)).astype(x.dtype)


def cutout(x: Any, size: int = 3, seed: Any = None, fill: float | None = None) -> np.ndarray:
    """A size x size square at a random centre (clipped at the border) set to `fill` (default: the image's mean
    colour, per channel, as in the lecture)."""
    x = _images("cutout", x)
    size = _count("size", size, 1, 10_000)
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
    alpha = _real("alpha", alpha, 1e-6, 1e6)
    lam = rng.beta(alpha, alpha, len(x))
    perm = rng.permutation(len(x))
    xm = lam[:, None, None, None] * x + (1 - lam[:, None, None, None]) * x[perm]
    return xm.astype(x.dtype), lam[:, None] * yh + (1 - lam[:, None]) * yh[perm]


def cutmix(x: Any, y: Any, classes: int, alpha: float = 1.0, seed: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Paste a random box of a partner image into each image; the labels mix by the pasted area's share."""
    x = _images("cutmix", x)
    yh = one_hot(y, classes)
    rng = _rng(seed)
    alpha = _real("alpha", alpha, 1e-6, 1e6)
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
