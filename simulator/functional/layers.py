"""cs231n-style layer functions: `<op>_forward(...) -> (out, cache)` and `<op>_backward(dout, cache) -> grads`.

This module owns argument validation (ShapeError for shapes and arguments, ValueInputError for unusable values) and
dtype policy; the arithmetic is in kernels/. Float32 in gives float32 out; float64 in (or any mix with float64, or
integer input) gives float64 out. Backward functions return gradients in the forward's input order, each with its
input's shape. Conventions follow PyTorch where cs231n leaves a choice (batch-norm momentum, unbiased running
variance, pooling floor mode, GELU's exact erf form, SELU's constants, derivative 0 at ReLU's kink).
"""
from __future__ import annotations

import importlib
import math
from typing import Any

import numpy as np

from simulator.core.errors import ShapeError, ValueInputError
from simulator.core.params import check_int, check_real

Cache = Any


class _KernelModule:
    """A kernel module loaded at its first use. Importing the kernels pulls numba and scipy (about 0.7 s); the op
    registry imports this module, so the window would otherwise wait for them before it shows. The warm-up job
    imports them on its worker thread right after start; import_module is thread-safe.

    A function looked up once is kept on this object, so the next lookup is a plain attribute (a training step
    makes a dozen; through __getattr__ each cost ~1.5 us). Constants are looked up each time: tests patch them. (A
    test that patches a kernel function must patch it here too once it has been used.)"""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        value = getattr(importlib.import_module(self._name), attr)
        if callable(value):
            setattr(self, attr, value)
        return value


_act, _conv, _drop, _loss, _norm, _pool = (_KernelModule(f"kernels.{m}") for m in
                                           ("activations", "conv", "dropout", "losses", "norm", "pool"))

__all__ = [
    "affine_forward", "affine_backward", "relu_forward", "relu_backward", "leaky_relu_forward", "leaky_relu_backward",
    "prelu_forward", "prelu_backward", "elu_forward", "elu_backward", "selu_forward", "selu_backward",
    "sigmoid_forward", "sigmoid_backward", "tanh_forward", "tanh_backward", "gelu_forward", "gelu_backward",
    "silu_forward", "silu_backward", "softplus_forward", "softplus_backward", "maxout_forward", "maxout_backward",
    "conv_forward", "conv_backward", "max_pool_forward", "max_pool_backward", "avg_pool_forward", "avg_pool_backward",
    "batchnorm_forward", "batchnorm_backward", "spatial_batchnorm_forward", "spatial_batchnorm_backward",
    "layernorm_forward", "layernorm_backward", "instancenorm_forward", "instancenorm_backward",
    "groupnorm_forward", "groupnorm_backward", "check_groups", "dropconnect_mask", "dropconnect_forward",
    "dropconnect_backward",
    "dropout_forward", "dropout_backward", "fractional_pool_samples", "fractional_max_pool_forward",
    "fractional_max_pool_backward", "stochastic_depth_forward", "stochastic_depth_backward", "stochastic_depth_apply",
    "stochastic_depth_scale",
    "svm_loss", "softmax_loss", "smooth_labels", "smoothed_entropy",
    "infonce_forward", "infonce_backward", "infonce_loss", "contrastive_accuracy", "cosine_similarity",
    "default_partners", "partners_from_ids",
]


# ----------------------------------------------------------------------------------------------- validation helpers

def _array(fn: str, name: str, a: Any) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype.kind not in "biuf":
        raise ValueInputError(f"{fn}: {name} must hold real numbers, got dtype {a.dtype} (shape {a.shape})")
    return a


_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _floats(fn: str, **arrays: Any) -> list[np.ndarray]:
    """The arrays as C-contiguous float arrays of one dtype: float32 if every input is float32, else float64."""
    if len(arrays) == 1:  # the common case, already right (a network's own activations): no copy, no checks (a 0-d
        # array goes the long way: np.ascontiguousarray makes it shape (1,), as for a Python float)
        (a,) = arrays.values()
        if type(a) is np.ndarray and a.ndim and a.dtype in _FLOAT_DTYPES and a.flags.c_contiguous:
            return [a]
    arrs = [_array(fn, name, a) for name, a in arrays.items()]
    dtype = np.float32 if all(a.dtype == np.float32 for a in arrs) else np.float64
    return [np.ascontiguousarray(a, dtype=dtype) for a in arrs]


def _dout(fn: str, dout: Any, shape: tuple, dtype) -> np.ndarray:
    dout = _array(fn, "dout", dout)
    if dout.shape != tuple(shape):
        raise ShapeError(f"{fn}: dout has shape {dout.shape} but the forward output had shape {tuple(shape)}")
    return np.ascontiguousarray(dout, dtype=dtype)


def _ndim(fn: str, name: str, a: np.ndarray, ndim: int, layout: str) -> None:
    if a.ndim != ndim:
        raise ShapeError(f"{fn}: {name} must be {ndim}-D {layout}, got shape {a.shape}")


# Strides, paddings and window sizes beyond this are never meaningful on the images a learner uses, and a huge one
# would reach the kernels as an integer they cannot type (or a padded array of terabytes).
MAX_WINDOW = 4096
# The largest conv output or im2col matrix (elements) one call may allocate: 100M floats, 0.8 GB in float64.
MAX_CONV_ELEMENTS = 100_000_000


def _window(fn: str, name: str, v: Any, minimum: int) -> tuple[int, int]:
    """A pooling size or stride: one integer for both axes, or a (height, width) pair."""
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ShapeError(f"{fn}: {name} must be an integer or a pair of integers, got {v!r}")
        return tuple(check_int(f"{fn}: {name}", e, minimum, MAX_WINDOW, error=ShapeError) for e in v)
    v = check_int(f"{fn}: {name}", v, minimum, MAX_WINDOW, error=ShapeError)
    return v, v


# ----------------------------------------------------------------------------------------------- affine

def _affine_args(fn: str, x: Any, w: Any, b: Any, flatten: bool = True
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The checked arguments of out = x2 @ w + b (the affine layer, DropConnect): x (N, d1, ..., dk), or only (N, D)
    when not ``flatten``; w (D, M); b (M,). Returns (x, x2, w, b), x2 being x as (N, D)."""
    x, w, b = _floats(fn, x=x, w=w, b=b)
    if not flatten:
        _ndim(fn, "x", x, 2, "(N, D)")
    elif x.ndim < 1:
        raise ShapeError(f"{fn}: x must have a batch axis, got shape {x.shape}")
    _ndim(fn, "w", w, 2, "(D, M)")
    x2 = x.reshape(x.shape[0], math.prod(x.shape[1:]))       # not -1: an empty batch has a D too
    if x2.shape[1] != w.shape[0]:
        raise ShapeError(f"{fn}: x has {x2.shape[1]} features per sample (shape {x.shape}) "
                         f"but w expects {w.shape[0]} (shape {w.shape})")
    if b.shape != (w.shape[1],):
        raise ShapeError(f"{fn}: b has shape {b.shape} but w (shape {w.shape}) needs one bias per column, "
                         f"shape ({w.shape[1]},)")
    return x, x2, w, b


def affine_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, Cache]:
    """x: (N, d1, ..., dk), reshaped to (N, D) with D = d1*...*dk; w: (D, M); b: (M,). out = x2 @ w + b: (N, M)."""
    x, x2, w, b = _affine_args("affine_forward", x, w, b)
    out = x2 @ w + b
    return out, (x, w)


def affine_backward(dout: np.ndarray, cache: Cache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dout: (N, M). Returns dx (x's shape), dw (D, M), db (M,)."""
    x, w = cache
    dout = _dout("affine_backward", dout, (x.shape[0], w.shape[1]), x.dtype)
    x2 = x.reshape(x.shape[0], -1)
    return (dout @ w.T).reshape(x.shape), x2.T @ dout, dout.sum(axis=0)


# ----------------------------------------------------------------------------------------------- activations

def relu_forward(x: np.ndarray) -> tuple[np.ndarray, Cache]:
    """x: any shape. out = max(0, x)."""
    (x,) = _floats("relu_forward", x=x)
    return _act.relu_forward(x), x


def relu_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """Returns dx = dout * 1[x > 0] (0 at the kink, as PyTorch)."""
    x = cache
    return _act.relu_backward(_dout("relu_backward", dout, x.shape, x.dtype), x)


def leaky_relu_forward(x: np.ndarray, alpha: float = 0.01) -> tuple[np.ndarray, Cache]:
    """x: any shape. out = x if x > 0 else alpha * x."""
    (x,) = _floats("leaky_relu_forward", x=x)
    alpha = check_real("leaky_relu_forward: alpha", alpha)
    return _act.leaky_relu_forward(x, alpha), (x, alpha)


def leaky_relu_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """Returns dx."""
    x, alpha = cache
    return _act.leaky_relu_backward(_dout("leaky_relu_backward", dout, x.shape, x.dtype), x, alpha)


def prelu_forward(x: np.ndarray, alpha: np.ndarray) -> tuple[np.ndarray, Cache]:
    """x: (N, C, ...) with alpha (C,), one learnable slope per channel (axis 1, as torch.nn.PReLU); or any shape
    with a single slope alpha of shape (1,) or (). out = x if x > 0 else alpha * x."""
    fn = "prelu_forward"
    x, alpha_arr = _floats(fn, x=x, alpha=alpha)
    if alpha_arr.size != 1:
        if alpha_arr.ndim != 1 or x.ndim < 2 or alpha_arr.shape[0] != x.shape[1]:
            raise ShapeError(f"{fn}: alpha (shape {alpha_arr.shape}) must hold one slope, or one per channel of "
                             f"x's axis 1 (x shape {x.shape})")
    return _act.prelu_forward(x, alpha_arr), (x, alpha_arr)


def prelu_backward(dout: np.ndarray, cache: Cache) -> tuple[np.ndarray, np.ndarray]:
    """Returns (dx, dalpha), dalpha with alpha's shape."""
    x, alpha = cache
    dx, dalpha = _act.prelu_backward(_dout("prelu_backward", dout, x.shape, x.dtype), x, alpha)
    return dx, dalpha.reshape(alpha.shape)


def elu_forward(x: np.ndarray, alpha: float = 1.0) -> tuple[np.ndarray, Cache]:
    """x: any shape. out = x if x > 0 else alpha * (exp(x) - 1)."""
    (x,) = _floats("elu_forward", x=x)
    alpha = check_real("elu_forward: alpha", alpha)
    out = _act.elu_forward(x, alpha)
    return out, (x, out, alpha)


def elu_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """Returns dx."""
    x, out, alpha = cache
    return _act.elu_backward(_dout("elu_backward", dout, x.shape, x.dtype), x, out, alpha)


def selu_forward(x: np.ndarray) -> tuple[np.ndarray, Cache]:
    """x: any shape. out = scale * elu(x, alpha) with PyTorch's alpha = 1.6732632..., scale = 1.0507009..."""
    (x,) = _floats("selu_forward", x=x)
    out = _act.selu_forward(x)
    return out, (x, out)


def selu_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """Returns dx."""
    x, out = cache
    return _act.selu_backward(_dout("selu_backward", dout, x.shape, x.dtype), x, out)


def sigmoid_forward(x: np.ndarray) -> tuple[np.ndarray, Cache]:
    """x: any shape. out = 1 / (1 + exp(-x)), numerically stable for any magnitude."""
    (x,) = _floats("sigmoid_forward", x=x)
    out = _act.sigmoid_forward(x)
    return out, out


def sigmoid_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """Returns dx = dout * out * (1 - out)."""
    out = cache
    return _act.sigmoid_backward(_dout("sigmoid_backward", dout, out.shape, out.dtype), out)


def tanh_forward(x: np.ndarray) -> tuple[np.ndarray, Cache]:
    """x: any shape. out = tanh(x)."""
    (x,) = _floats("tanh_forward", x=x)
    out = _act.tanh_forward(x)
    return out, out


def tanh_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """Returns dx = dout * (1 - out**2)."""
    out = cache
    return _act.tanh_backward(_dout("tanh_backward", dout, out.shape, out.dtype), out)


def gelu_forward(x: np.ndarray) -> tuple[np.ndarray, Cache]:
    """x: any shape. out = x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)), the exact form (PyTorch's default)."""
    (x,) = _floats("gelu_forward", x=x)
    return _act.gelu_forward(x), x


def gelu_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """Returns dx = dout * (Phi(x) + x phi(x))."""
    x = cache
    return _act.gelu_backward(_dout("gelu_backward", dout, x.shape, x.dtype), x)


def silu_forward(x: np.ndarray) -> tuple[np.ndarray, Cache]:
    """x: any shape. out = x * sigmoid(x) (SiLU, a.k.a. swish)."""
    (x,) = _floats("silu_forward", x=x)
    return _act.silu_forward(x), x


def silu_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """Returns dx = dout * s (1 + x (1 - s)), s = sigmoid(x)."""
    x = cache
    return _act.silu_backward(_dout("silu_backward", dout, x.shape, x.dtype), x)


def softplus_forward(x: np.ndarray) -> tuple[np.ndarray, Cache]:
    """x: any shape. out = log(1 + exp(x)), computed without overflow."""
    (x,) = _floats("softplus_forward", x=x)
    return _act.softplus_forward(x), x


def softplus_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """Returns dx = dout * sigmoid(x)."""
    x = cache
    return _act.softplus_backward(_dout("softplus_backward", dout, x.shape, x.dtype), x)


def maxout_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, Cache]:
    """x: (N, d1, ..., dk) reshaped to (N, D); w: (D, M, k); b: (M, k).
    out[n, m] = max_j (x2 @ w[:, m, j] + b[m, j]): (N, M). Ties go to the first piece."""
    fn = "maxout_forward"
    x, w, b = _floats(fn, x=x, w=w, b=b)
    if x.ndim < 1:
        raise ShapeError(f"{fn}: x must have a batch axis, got shape {x.shape}")
    _ndim(fn, "w", w, 3, "(D, M, k)")
    x2 = x.reshape(x.shape[0], -1)
    if x2.shape[1] != w.shape[0]:
        raise ShapeError(f"{fn}: x has {x2.shape[1]} features per sample (shape {x.shape}) "
                         f"but w expects {w.shape[0]} (shape {w.shape})")
    if b.shape != w.shape[1:]:
        raise ShapeError(f"{fn}: b has shape {b.shape} but w (shape {w.shape}) needs shape {w.shape[1:]}")
    if w.shape[2] < 1 or w.shape[1] < 1:
        raise ShapeError(f"{fn}: w needs at least one unit and one piece, got shape {w.shape}")
    out, arg = _act.maxout_forward(x2, w, b)
    return out, (x, w, arg)


def maxout_backward(dout: np.ndarray, cache: Cache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dout: (N, M). Returns dx (x's shape), dw (D, M, k), db (M, k)."""
    x, w, arg = cache
    dout = _dout("maxout_backward", dout, arg.shape, x.dtype)
    dx, dw, db = _act.maxout_backward(dout, x.reshape(x.shape[0], -1), w, arg)
    return dx.reshape(x.shape), dw, db


# ----------------------------------------------------------------------------------------------- convolution, pooling

def conv_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int = 1, pad: int = 0
                 ) -> tuple[np.ndarray, Cache]:
    """x: (N, C, H, W); w: (F, C, HH, WW); b: (F,); zero padding `pad` on each side.
    out: (N, F, Hout, Wout), Hout = (H + 2 pad - HH) // stride + 1, Wout likewise (floor, as PyTorch)."""
    fn = "conv_forward"
    x, w, b = _floats(fn, x=x, w=w, b=b)
    _ndim(fn, "x", x, 4, "(N, C, H, W)")
    _ndim(fn, "w", w, 4, "(F, C, HH, WW)")
    if x.shape[1] != w.shape[1]:
        raise ShapeError(f"{fn}: x has {x.shape[1]} channels (shape {x.shape}) "
                         f"but w expects {w.shape[1]} (shape {w.shape})")
    if b.shape != (w.shape[0],):
        raise ShapeError(f"{fn}: b has shape {b.shape} but w (shape {w.shape}) needs one bias per filter, "
                         f"shape ({w.shape[0]},)")
    stride = check_int(f"{fn}: stride", stride, 1, MAX_WINDOW, error=ShapeError)
    pad = check_int(f"{fn}: pad", pad, 0, MAX_WINDOW, error=ShapeError)
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    Hout = (H + 2 * pad - HH) // stride + 1
    Wout = (W + 2 * pad - WW) // stride + 1
    if min(N, C, H, W, F, HH, WW) < 1 or Hout < 1 or Wout < 1:
        raise ShapeError(f"{fn}: x (shape {x.shape}) with pad {pad} is too small for w (shape {w.shape}) "
                         f"at stride {stride}: the output would be {Hout}x{Wout}")
    work = max(N * F * Hout * Wout, N * Hout * Wout * C * HH * WW)
    if work > MAX_CONV_ELEMENTS:
        raise ShapeError(f"{fn}: x (shape {x.shape}) with w (shape {w.shape}), pad {pad} and stride {stride} needs "
                         f"{work:,} numbers at once; the limit is {MAX_CONV_ELEMENTS:,} (use a smaller batch, "
                         f"input or padding)")
    # the cache keeps the forward's im2col columns (when the forward builds them, not the direct kernels, and they fit
    # in kernels.conv.KEEP_COLS_BYTES): backward reuses them
    out, cols = _conv.conv_forward_keep(x, w, b, stride, pad)
    return out, (x, w, stride, pad, (N, F, Hout, Wout), cols)


def conv_backward(dout: np.ndarray, cache: Cache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dout: (N, F, Hout, Wout). Returns dx (N, C, H, W), dw (F, C, HH, WW), db (F,)."""
    x, w, stride, pad, out_shape, cols = cache
    dout = _dout("conv_backward", dout, out_shape, x.dtype)
    return _conv.conv_backward_cols(dout, cols, x, w, stride, pad)


def _pool_args(fn: str, x: Any, size: Any, stride: Any) -> tuple[np.ndarray, int, int, int, int]:
    (x,) = _floats(fn, x=x)
    _ndim(fn, "x", x, 4, "(N, C, H, W)")
    HH, WW = _window(fn, "size", size, 1)
    sh, sw = _window(fn, "stride", stride, 1)
    if min(x.shape) < 1 or HH > x.shape[2] or WW > x.shape[3]:
        raise ShapeError(f"{fn}: x (shape {x.shape}) is smaller than the {HH}x{WW} pooling window")
    return x, HH, WW, sh, sw


def max_pool_forward(x: np.ndarray, size: int | tuple[int, int] = 2, stride: int | tuple[int, int] = 2
                     ) -> tuple[np.ndarray, Cache]:
    """x: (N, C, H, W); window size and stride as an int or (h, w). out: (N, C, Hout, Wout) with
    Hout = (H - size) // stride + 1: rows/columns that do not fill a window are dropped (floor, as PyTorch).
    Ties go to the first element of the window in row-major order."""
    x, HH, WW, sh, sw = _pool_args("max_pool_forward", x, size, stride)
    out, arg = _pool.max_pool_forward(x, HH, WW, sh, sw)
    return out, (arg, x.shape, x.dtype)


def max_pool_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """dout: (N, C, Hout, Wout). Returns dx (N, C, H, W): each gradient goes to its window's maximum."""
    arg, shape, dtype = cache
    dout = _dout("max_pool_backward", dout, arg.shape, dtype)
    return _pool.max_pool_backward(dout, arg, shape[2], shape[3])


def avg_pool_forward(x: np.ndarray, size: int | tuple[int, int] = 2, stride: int | tuple[int, int] = 2
                     ) -> tuple[np.ndarray, Cache]:
    """x: (N, C, H, W). out: (N, C, Hout, Wout), the mean of each window (floor mode, as max_pool_forward)."""
    x, HH, WW, sh, sw = _pool_args("avg_pool_forward", x, size, stride)
    out = _pool.avg_pool_forward(x, HH, WW, sh, sw)
    return out, (x.shape, out.shape, x.dtype, HH, WW, sh, sw)


def avg_pool_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """dout: (N, C, Hout, Wout). Returns dx (N, C, H, W)."""
    shape, out_shape, dtype, HH, WW, sh, sw = cache
    dout = _dout("avg_pool_backward", dout, out_shape, dtype)
    return _pool.avg_pool_backward(dout, shape[2], shape[3], HH, WW, sh, sw)


# Fractional max pooling (Graham 2014) needs a ratio strictly between 1/2 and 1: below 1/2 the 2x2 windows would skip
# rows as a rule (just above 1/2 an odd size can still skip one: see kernels.pool), at 1 it is no pooling at all.
FRACTIONAL_RATIO_LOW, FRACTIONAL_RATIO_HIGH = 0.5, 1.0


def fractional_pool_samples(n: int, c: int, seed: Any, dtype: Any = np.float64, shared: bool = False) -> np.ndarray:
    """(n, c, 2) samples in [0, 1), torch's ``_random_samples`` layout ([..., 0] for the width, [..., 1] for the
    height), drawn in float64 from numpy's Generator seeded with `seed` and cast to `dtype`: one draw per example and
    channel (training), or with ``shared`` one per channel for every example (an eval draw: an example's regions then
    do not depend on the batch it is in)."""
    dt = np.dtype(dtype).type
    u = np.random.default_rng(seed).random((1 if shared else n, c, 2)).astype(dt)
    u = np.ascontiguousarray(np.broadcast_to(u, (n, c, 2)))
    return np.minimum(u, np.nextafter(dt(1), dt(0)))   # a float64 draw just below 1 must not round up to 1


def fractional_max_pool_forward(x: np.ndarray, ratio: float = 2 ** -0.5, samples: Any = None,
                                seed: int | None = None, size: int = 2) -> tuple[np.ndarray, Cache]:
    """x: (N, C, H, W). Fractional max pooling with size x size windows at pseudo-random positions (as torch's
    fractional_max_pool2d(x, size, output_ratio=ratio, _random_samples=samples)): out (N, C, floor(H ratio),
    floor(W ratio)). samples: (N, C, 2) in [0, 1) ([..., 0] places the columns, [..., 1] the rows); None draws them
    from `seed` (fractional_pool_samples). The cache keeps the window corners (cache[3], cache[4]: (N, C, Hout) and
    (N, C, Wout)) for pictures of the regions."""
    fn = "fractional_max_pool_forward"
    (x,) = _floats(fn, x=x)
    _ndim(fn, "x", x, 4, "(N, C, H, W)")
    ratio = check_real(f"{fn}: ratio", ratio, FRACTIONAL_RATIO_LOW, FRACTIONAL_RATIO_HIGH, low_open=True,
                       high_open=True)
    k = check_int(f"{fn}: size", size, 1, MAX_WINDOW, error=ShapeError)
    N, C, H, W = x.shape
    Ho, Wo = int(H * ratio), int(W * ratio)
    if min(N, C) < 1 or Ho < 1 or Wo < 1 or Ho + k - 1 > H or Wo + k - 1 > W:
        raise ShapeError(f"{fn}: x (shape {x.shape}) is too small for a {k}x{k} window at ratio {ratio:g} (the "
                         f"output would be {Ho}x{Wo})")
    if samples is None:
        samples = fractional_pool_samples(N, C, seed, x.dtype.type)
    samples = _array(fn, "samples", samples)
    if samples.shape != (N, C, 2):
        raise ShapeError(f"{fn}: samples must have shape (N, C, 2) = {(N, C, 2)}, got {samples.shape}")
    samples = np.ascontiguousarray(samples, dtype=x.dtype)
    if not (np.all(samples >= 0) and np.all(samples < 1)):
        raise ValueInputError(f"{fn}: samples must lie in [0, 1)")
    starts_h = _pool.fractional_intervals(samples[..., 1], H, Ho, k)
    starts_w = _pool.fractional_intervals(samples[..., 0], W, Wo, k)
    out, arg = _pool.fractional_max_pool_forward(x, starts_h, starts_w, k)
    return out, (arg, x.shape, x.dtype, starts_h, starts_w)


def fractional_max_pool_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """dout: (N, C, Hout, Wout). Returns dx (N, C, H, W): each gradient goes to its window's maximum (overlapping
    windows add up)."""
    arg, shape, dtype = cache[:3]
    dout = _dout("fractional_max_pool_backward", dout, arg.shape, dtype)
    return _pool.fractional_max_pool_backward(dout, arg, shape[2], shape[3])


# ----------------------------------------------------------------------------------------------- stochastic depth

_SD_MODES = ("row", "batch")


def stochastic_depth_forward(x: np.ndarray, p: float, mode: str = "row", train: bool = True,
                             seed: int | None = None) -> tuple[np.ndarray, Cache]:
    """torchvision.ops.stochastic_depth(x, p, mode, training): in train mode each example's ("row") or the whole
    batch's ("batch") x is dropped with probability p and the survivors scaled by 1/(1-p); eval mode (or p = 0) is the
    identity. x: (N, ...), typically a residual branch. The cache holds the per-example scale (N,) (None: identity)."""
    fn = "stochastic_depth_forward"
    (x,) = _floats(fn, x=x)
    p = check_real(f"{fn}: p (the probability of dropping the branch)", p, 0.0, 1.0, high_open=True)
    if mode not in _SD_MODES:
        raise ValueInputError(f"{fn}: mode must be 'row' or 'batch', got {mode!r}")
    if x.ndim < 1:
        raise ShapeError(f"{fn}: x must have a batch axis, got shape {x.shape}")
    if not train or p == 0.0:
        return x.copy(), (None, x.shape)
    scale = stochastic_depth_scale(x.shape[0], p, mode, seed, x.dtype)
    return stochastic_depth_apply(x, scale), (scale, x.shape)


def stochastic_depth_scale(n: int, p: float, mode: str, seed: Any, dtype: Any = np.float64) -> np.ndarray:
    """(n,) per-example factors: Bernoulli(1 - p) keeps (one per example for "row", one for the batch for "batch")
    divided by 1 - p, drawn from numpy's Generator seeded with `seed`."""
    survival = 1.0 - p
    keep = np.random.default_rng(seed).random(n if mode == "row" else 1) < survival
    return np.ascontiguousarray(np.broadcast_to(keep / survival, (n,)), dtype=dtype)


def stochastic_depth_apply(x: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """x * scale per example: x (N, ...), scale (N,) (0 for a dropped branch, 1/(1-p) for a kept one)."""
    return x * scale.reshape((-1,) + (1,) * (x.ndim - 1))


def stochastic_depth_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """dx = dout * scale per example (dout itself in eval mode)."""
    scale, shape = cache
    dt = dout.dtype if scale is None else scale.dtype
    dout = _dout("stochastic_depth_backward", dout, shape, dt if dt in (np.float32, np.float64) else np.float64)
    return dout.copy() if scale is None else stochastic_depth_apply(dout, scale)


# ----------------------------------------------------------------------------------------------- normalisation

_MODES = ("train", "test")


def _bn(fn: str, x3: np.ndarray, gamma: np.ndarray, beta: np.ndarray, bn_param: dict, x_shape: tuple,
        group: str) -> tuple[np.ndarray, Cache]:
    if not isinstance(bn_param, dict):
        raise ValueInputError(f"{fn}: bn_param must be a dict, got {type(bn_param).__name__}")
    mode = bn_param.get("mode", "train")
    if mode not in _MODES:
        raise ValueInputError(f"{fn}: bn_param['mode'] must be 'train' or 'test', got {mode!r}")
    eps = check_real(f"{fn}: eps", bn_param.get("eps", 1e-5), 0.0, low_open=True)
    momentum = check_real(f"{fn}: momentum", bn_param.get("momentum", 0.1), 0.0, 1.0)
    C = x3.shape[1]
    dtype = x3.dtype
    if bn_param.get("running_mean") is None:
        bn_param["running_mean"] = np.zeros(C, dtype)
    if bn_param.get("running_var") is None:
        bn_param["running_var"] = np.ones(C, dtype)
    rm = np.asarray(bn_param["running_mean"])
    rv = np.asarray(bn_param["running_var"])
    for name, r in (("running_mean", rm), ("running_var", rv)):
        if r.shape != (C,):
            raise ShapeError(f"{fn}: bn_param['{name}'] has shape {r.shape} but x (shape {x_shape}) "
                             f"has {C} {group}")
    if mode == "train":
        m = x3.shape[0] * x3.shape[2]
        if m < 2:
            raise ValueInputError(f"{fn}: train mode needs more than one value per {group[:-1]} to estimate a "
                                  f"variance, but x has shape {x_shape}; use a larger batch or mode='test'")
        out, xhat, mean, var, inv_std = _norm.batchnorm_train_forward(x3, gamma, beta, eps)
        # PyTorch: running = (1 - momentum) * running + momentum * batch, with the unbiased batch variance
        new_mean = (1.0 - momentum) * rm + momentum * mean
        new_var = (1.0 - momentum) * rv + momentum * var * (m / (m - 1.0))
        for name, r, new in (("running_mean", rm, new_mean), ("running_var", rv, new_var)):
            if r.dtype.kind == "f" and r.flags.writeable and bn_param.get(name) is r:
                r[...] = new  # in place: whoever holds the array sees the update
            else:
                bn_param[name] = new.astype(dtype)
    else:
        out, xhat, inv_std = _norm.batchnorm_eval_forward(x3, gamma, beta, np.ascontiguousarray(rm, dtype),
                                                          np.ascontiguousarray(rv, dtype), eps)
    bn_param.setdefault("mode", mode)
    return out, (xhat, gamma, inv_std, mode == "train", x_shape)


def _affine_params(fn: str, x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, C: int, what: str) -> None:
    for name, v in (("gamma", gamma), ("beta", beta)):
        if v.shape != (C,):
            raise ShapeError(f"{fn}: {name} has shape {v.shape} but x (shape {x.shape}) has {C} {what}: "
                             f"expected shape ({C},)")


def batchnorm_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, bn_param: dict
                      ) -> tuple[np.ndarray, Cache]:
    """x: (N, D); gamma, beta: (D,). bn_param: mode 'train' | 'test', eps (1e-5), momentum (0.1, PyTorch's
    convention), running_mean (zeros) / running_var (ones), created in the dict on first use and updated in place
    after each train step: running = (1 - momentum) running + momentum batch, with the unbiased batch variance.
    Train mode needs N >= 2 (ValueInputError otherwise). out: (N, D)."""
    fn = "batchnorm_forward"
    x, gamma, beta = _floats(fn, x=x, gamma=gamma, beta=beta)
    _ndim(fn, "x", x, 2, "(N, D)")
    _affine_params(fn, x, gamma, beta, x.shape[1], "features")
    out, cache = _bn(fn, x.reshape(x.shape[0], x.shape[1], 1), gamma, beta, bn_param, x.shape, "features")
    return out.reshape(x.shape), cache


def batchnorm_backward(dout: np.ndarray, cache: Cache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dout: (N, D). Returns dx (N, D), dgamma (D,), dbeta (D,)."""
    xhat, gamma, inv_std, train, shape = cache
    dout = _dout("batchnorm_backward", dout, shape, xhat.dtype).reshape(xhat.shape)
    dx, dgamma, dbeta = _norm.batchnorm_backward(dout, xhat, gamma, inv_std, train)
    return dx.reshape(shape), dgamma, dbeta


def spatial_batchnorm_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, bn_param: dict
                              ) -> tuple[np.ndarray, Cache]:
    """x: (N, C, H, W); gamma, beta: (C,). Batch norm per channel over N, H and W; bn_param as batchnorm_forward.
    Train mode needs N*H*W >= 2."""
    fn = "spatial_batchnorm_forward"
    x, gamma, beta = _floats(fn, x=x, gamma=gamma, beta=beta)
    _ndim(fn, "x", x, 4, "(N, C, H, W)")
    _affine_params(fn, x, gamma, beta, x.shape[1], "channels")
    N, C, H, W = x.shape
    out, cache = _bn(fn, x.reshape(N, C, H * W), gamma, beta, bn_param, x.shape, "channels")
    return out.reshape(x.shape), cache


def spatial_batchnorm_backward(dout: np.ndarray, cache: Cache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dout: (N, C, H, W). Returns dx (N, C, H, W), dgamma (C,), dbeta (C,)."""
    xhat, gamma, inv_std, train, shape = cache
    dout = _dout("spatial_batchnorm_backward", dout, shape, xhat.dtype).reshape(xhat.shape)
    dx, dgamma, dbeta = _norm.batchnorm_backward(dout, xhat, gamma, inv_std, train)
    return dx.reshape(shape), dgamma, dbeta


def _eps(fn: str, param: dict | None) -> float:
    if param is None:
        param = {}
    if not isinstance(param, dict):
        raise ValueInputError(f"{fn}: the parameter dict must be a dict, got {type(param).__name__}")
    return check_real(f"{fn}: eps", param.get("eps", 1e-5), 0.0, low_open=True)


def layernorm_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, ln_param: dict | None = None
                      ) -> tuple[np.ndarray, Cache]:
    """x: (N, d1, ..., dk), normalised per sample over all axes but the first (D = d1*...*dk; for (N, D), over D);
    gamma, beta: x.shape[1:] or (D,). ln_param: eps (1e-5). Same in train and test. out: x's shape."""
    fn = "layernorm_forward"
    eps = _eps(fn, ln_param)
    x, gamma, beta = _floats(fn, x=x, gamma=gamma, beta=beta)
    if x.ndim < 2:
        raise ShapeError(f"{fn}: x must be at least 2-D (N, D, ...), got shape {x.shape}")
    D = int(np.prod(x.shape[1:]))
    for name, v in (("gamma", gamma), ("beta", beta)):
        if v.shape not in (x.shape[1:], (D,)):
            raise ShapeError(f"{fn}: {name} has shape {v.shape} but x (shape {x.shape}) needs {x.shape[1:]} "
                             f"(or ({D},))")
    g = gamma.reshape(D)
    out, xhat, inv_std = _norm.layernorm_forward(x.reshape(x.shape[0], D), g, beta.reshape(D), eps)
    return out.reshape(x.shape), (xhat, g, inv_std, x.shape, gamma.shape)


def layernorm_backward(dout: np.ndarray, cache: Cache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Returns dx (x's shape), dgamma, dbeta (gamma's shape)."""
    xhat, g, inv_std, shape, gshape = cache
    dout = _dout("layernorm_backward", dout, shape, xhat.dtype).reshape(xhat.shape)
    dx, dgamma, dbeta = _norm.layernorm_backward(dout, xhat, g, inv_std)
    return dx.reshape(shape), dgamma.reshape(gshape), dbeta.reshape(gshape)


def instancenorm_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, in_param: dict | None = None
                         ) -> tuple[np.ndarray, Cache]:
    """x: (N, C, H, W), normalised per sample and channel over H and W; gamma, beta: (C,). in_param: eps (1e-5).
    Needs H*W >= 2 (ValueInputError otherwise, as PyTorch). out: (N, C, H, W)."""
    fn = "instancenorm_forward"
    eps = _eps(fn, in_param)
    x, gamma, beta = _floats(fn, x=x, gamma=gamma, beta=beta)
    _ndim(fn, "x", x, 4, "(N, C, H, W)")
    _affine_params(fn, x, gamma, beta, x.shape[1], "channels")
    N, C, H, W = x.shape
    if H * W < 2:
        raise ValueInputError(f"{fn}: needs more than one spatial value per channel to estimate a variance, "
                              f"but x has shape {x.shape}")
    out, xhat, inv_std = _norm.instancenorm_forward(x.reshape(N, C, H * W), gamma, beta, eps)
    return out.reshape(x.shape), (xhat, gamma, inv_std, x.shape)


def instancenorm_backward(dout: np.ndarray, cache: Cache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dout: (N, C, H, W). Returns dx (N, C, H, W), dgamma (C,), dbeta (C,)."""
    xhat, gamma, inv_std, shape = cache
    dout = _dout("instancenorm_backward", dout, shape, xhat.dtype).reshape(xhat.shape)
    dx, dgamma, dbeta = _norm.instancenorm_backward(dout, xhat, gamma, inv_std)
    return dx.reshape(shape), dgamma, dbeta


def check_groups(subject: str, channels: int, pixels: int, groups: int, what: str,
                 small: type[Exception] = ShapeError) -> None:
    """Group norm's shape rule, for groupnorm_forward and the GroupNorm / InstanceNorm layer records alike: `groups`
    must split the channels evenly (ShapeError), and each group (channels / groups channels of `pixels` values) must
    hold more than one value to have a variance (``small``). `subject` is what has the shape ("its input (4, 6, 6)");
    `what` names the norm in the message."""
    if channels % groups:
        raise ShapeError(f"{subject} has {channels} channels, which do not split into {groups} equal groups: "
                         f"{what} needs a number of groups that divides {channels}")
    if channels // groups * pixels < 2:
        raise small(f"{subject} leaves one value per group of {what}: it needs more than one value per group to "
                    f"estimate a variance")


def groupnorm_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, groups: int, gn_param: dict | None = None
                      ) -> tuple[np.ndarray, Cache]:
    """x: (N, C, H, W) with C divisible by `groups` (ShapeError otherwise); gamma, beta: (C,). Each sample's channels
    are split into `groups` groups of C/groups consecutive channels, each group normalised over its channels and
    pixels, then scaled and shifted per channel (torch.nn.functional.group_norm). groups = C is instance norm,
    groups = 1 normalises the whole sample. gn_param: eps (1e-5). Needs C/groups*H*W >= 2. out: (N, C, H, W)."""
    fn = "groupnorm_forward"
    eps = _eps(fn, gn_param)
    x, gamma, beta = _floats(fn, x=x, gamma=gamma, beta=beta)
    _ndim(fn, "x", x, 4, "(N, C, H, W)")
    _affine_params(fn, x, gamma, beta, x.shape[1], "channels")
    N, C, H, W = x.shape
    groups = check_int(f"{fn}: groups", groups, 1, max(C, 1), error=ShapeError)
    check_groups(f"{fn}: x (shape {x.shape})", C, H * W, groups, "group norm", ValueInputError)
    out, xhat, inv_std = _norm.groupnorm_forward(x.reshape(N, C, H * W), gamma, beta, groups, eps)
    return out.reshape(x.shape), (xhat, gamma, inv_std, groups, x.shape)


def groupnorm_backward(dout: np.ndarray, cache: Cache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dout: (N, C, H, W). Returns dx (N, C, H, W), dgamma (C,), dbeta (C,)."""
    xhat, gamma, inv_std, groups, shape = cache
    dout = _dout("groupnorm_backward", dout, shape, xhat.dtype).reshape(xhat.shape)
    dx, dgamma, dbeta = _norm.groupnorm_backward(dout, xhat, gamma, inv_std, groups)
    return dx.reshape(shape), dgamma, dbeta


# ----------------------------------------------------------------------------------------------- dropconnect

def dropconnect_mask(shape: tuple[int, ...], p: float, seed: int | None, dtype: Any = np.float64) -> np.ndarray:
    """DropConnect's weight mask: each entry 1/(1-p) with probability 1-p, else 0 (inverted scaling, so the expected
    masked weight is the weight). Drawn in float64 from numpy's Generator seeded with `seed`, whatever `dtype`, so a
    seed gives the same mask to a float32 network and to its float64 graph."""
    p = check_real("dropconnect: p (the probability of dropping a weight)", p, 0.0, 1.0, high_open=True)
    u = np.random.default_rng(seed).random(tuple(shape))
    return np.where(u >= p, 1.0 / (1.0 - p), 0.0).astype(dtype)


def dropconnect_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray, dc_param: dict
                        ) -> tuple[np.ndarray, Cache]:
    """DropConnect (Wan et al. 2013): an affine layer whose individual weights are dropped. x: (N, D); w: (D, M);
    b: (M,). dc_param: p (probability of dropping a weight, 0 <= p < 1), mode 'train' | 'test', seed (the same seed
    gives the same mask), mask (optional, (D, M): use this mask instead of drawing one). Train: out = x @ (w * mask)
    + b with mask from dropconnect_mask; test: out = x @ w + b (the weights as they are). out: (N, M)."""
    fn = "dropconnect_forward"
    if not isinstance(dc_param, dict):
        raise ValueInputError(f"{fn}: dc_param must be a dict, got {type(dc_param).__name__}")
    x, _, w, b = _affine_args(fn, x, w, b, flatten=False)
    p = check_real(f"{fn}: p (the probability of dropping a weight)", dc_param.get("p", 0.5), 0.0, 1.0,
                   high_open=True)
    mode = dc_param.get("mode", "train")
    if mode not in _MODES:
        raise ValueInputError(f"{fn}: dc_param['mode'] must be 'train' or 'test', got {mode!r}")
    if mode == "test":
        return x @ w + b, (x, w, None)
    mask = dc_param.get("mask")
    if mask is None:
        mask = dropconnect_mask(w.shape, p, dc_param.get("seed"), w.dtype)
    else:
        mask = np.ascontiguousarray(_array(fn, "mask", mask), dtype=w.dtype)
        if mask.shape != w.shape:
            raise ShapeError(f"{fn}: mask has shape {mask.shape} but w has shape {w.shape}")
    wm = w * mask
    return x @ wm + b, (x, wm, mask)


def dropconnect_backward(dout: np.ndarray, cache: Cache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dout: (N, M). Returns dx (N, D), dw (D, M) = (x.T @ dout) * mask (a dropped weight gets no gradient),
    db (M,)."""
    x, wm, mask = cache
    dout = _dout("dropconnect_backward", dout, (x.shape[0], wm.shape[1]), x.dtype)
    dw = x.T @ dout
    if mask is not None:
        dw *= mask
    return dout @ wm.T, dw, dout.sum(axis=0)


# ----------------------------------------------------------------------------------------------- dropout

def dropout_forward(x: np.ndarray, dropout_param: dict) -> tuple[np.ndarray, Cache]:
    """x: any shape. dropout_param: p (probability of dropping, 0 <= p < 1), mode 'train' | 'test', seed (optional:
    the same seed gives the same mask). Inverted dropout: kept units are scaled by 1/(1-p) in train mode, so test
    mode is the identity."""
    fn = "dropout_forward"
    if not isinstance(dropout_param, dict):
        raise ValueInputError(f"{fn}: dropout_param must be a dict, got {type(dropout_param).__name__}")
    (x,) = _floats(fn, x=x)
    p = check_real(f"{fn}: p (the probability of dropping)", dropout_param.get("p", 0.5), 0.0, 1.0, high_open=True)
    mode = dropout_param.get("mode", "train")
    if mode not in _MODES:
        raise ValueInputError(f"{fn}: dropout_param['mode'] must be 'train' or 'test', got {mode!r}")
    seed = dropout_param.get("seed")
    if mode == "test":
        return x.copy(), (None, x.shape)
    out, mask = _drop.dropout_forward(x, p, seed)
    return out, (mask, x.shape)


def dropout_backward(dout: np.ndarray, cache: Cache) -> np.ndarray:
    """Returns dx = dout * mask (train) or dout (test)."""
    mask, shape = cache
    if mask is None:
        (dout,) = _floats("dropout_backward", dout=dout)
        if dout.shape != shape:
            raise ShapeError(f"dropout_backward: dout has shape {dout.shape} but the forward output had shape {shape}")
        return dout.copy()
    return _drop.dropout_backward(_dout("dropout_backward", dout, shape, mask.dtype), mask)


# ----------------------------------------------------------------------------------------------- losses

# A probability target's rows must sum to 1 within this (float32 soft labels are summed in float64).
SOFT_TARGET_TOL = 1e-6


def _loss_args(fn: str, scores: Any, y: Any, soft: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Scores as a float (N, C) array and y as int64 labels (N,), or (``soft``) also y as probability targets
    (N, C) in float64: finite, >= 0, each row summing to 1 within SOFT_TARGET_TOL."""
    (scores,) = _floats(fn, scores=scores)
    _ndim(fn, "scores", scores, 2, "(N, C)")
    y = np.asarray(y)
    if soft and y.ndim == 2:
        return scores, _soft_target(fn, scores, y)
    if y.shape != (scores.shape[0],):
        also = f", or probability targets of shape {scores.shape}" if soft else ""
        raise ShapeError(f"{fn}: y has shape {y.shape} but scores (shape {scores.shape}) needs one label per row, "
                         f"shape ({scores.shape[0]},){also}")
    if scores.shape[0] < 1 or scores.shape[1] < 1:
        raise ShapeError(f"{fn}: scores needs at least one row and one class, got shape {scores.shape}")
    if y.dtype.kind not in "iu":
        raise ValueInputError(f"{fn}: labels y must be integers, got dtype {y.dtype} (shape {y.shape})")
    labels = np.ascontiguousarray(y, dtype=np.int64)
    # one pass for both ends: a negative label read as unsigned is larger than any class index
    if np.count_nonzero(labels.view(np.uint64) >= scores.shape[1]):
        bad = y[(y < 0) | (y >= scores.shape[1])][0]
        raise ValueInputError(f"{fn}: label {bad} is out of range for {scores.shape[1]} classes "
                              f"(scores shape {scores.shape}, y shape {y.shape})")
    return scores, labels


def _soft_target(fn: str, scores: np.ndarray, t: np.ndarray) -> np.ndarray:
    """t checked to be one probability distribution per row of scores; float64, C-contiguous."""
    if t.shape != scores.shape:
        raise ShapeError(f"{fn}: soft targets have shape {t.shape} but scores have shape {scores.shape}; "
                         f"give one probability row per example (N, C), or integer labels (N,)")
    if scores.shape[0] < 1 or scores.shape[1] < 1:
        raise ShapeError(f"{fn}: scores needs at least one row and one class, got shape {scores.shape}")
    if t.dtype.kind not in "biuf":
        raise ValueInputError(f"{fn}: soft targets must hold numbers, got dtype {t.dtype}")
    t = np.ascontiguousarray(t, dtype=np.float64)
    if not np.all(np.isfinite(t)):
        n = int(np.argwhere(~np.isfinite(t))[0][0])
        raise ValueInputError(f"{fn}: soft target row {n} holds NaN or infinity: {t[n].tolist()}")
    if t.min() < 0:
        n, j = (int(v) for v in np.argwhere(t < 0)[0])
        raise ValueInputError(f"{fn}: soft targets are probabilities and cannot be negative: row {n}, class {j} "
                              f"is {t[n, j]:g}")
    sums = t.sum(axis=1)
    off = np.abs(sums - 1.0) > SOFT_TARGET_TOL
    if off.any():
        n = int(np.flatnonzero(off)[0])
        raise ValueInputError(f"{fn}: each soft target row must sum to 1 (a probability distribution), but row {n} "
                              f"sums to {sums[n]:.9g}")
    return t


def smooth_labels(y: Any, classes: int, eps: float) -> np.ndarray:
    """Label smoothing (Szegedy et al.; the lecture's formula, PyTorch's ``label_smoothing``): integer labels (N,)
    or probability targets (N, C) -> targets (N, C) float64 = (1 - eps) t + eps / K, so a hard label gives the
    correct class 1 - (K - 1)/K eps and every other class eps / K. eps in [0, 1)."""
    classes = check_int("label_smoothing: classes", classes, 1)
    eps = check_real("label smoothing ε", eps, 0.0, 1.0, high_open=True)
    y = np.asarray(y)
    if y.ndim == 2:
        t = _soft_target("smooth_labels", np.empty((y.shape[0], classes)), y)
    else:
        _, labels = _loss_args("smooth_labels", np.empty((y.shape[0] if y.ndim == 1 else 0, classes)), y)
        t = np.zeros((labels.size, classes))
        t[np.arange(labels.size), labels] = 1.0
    return (1.0 - eps) * t + eps / classes if eps else t


def smoothed_entropy(classes: int, eps: float) -> float:
    """The entropy of a label-smoothed one-hot target, -sum_j t_j log t_j: the smallest cross-entropy any scores
    can reach with label smoothing eps (0 for eps = 0), reached by softmax(s) = t."""
    classes = check_int("classes", classes, 1)
    eps = check_real("label smoothing ε", eps, 0.0, 1.0, high_open=True)
    if eps == 0.0 or classes == 1:
        return 0.0
    hi, lo = 1.0 - eps + eps / classes, eps / classes
    return float(-hi * np.log(hi) - (classes - 1) * lo * np.log(lo))


def svm_loss(scores: np.ndarray, y: np.ndarray) -> tuple[np.floating, np.ndarray]:
    """Multiclass SVM loss. scores: (N, C); y: (N,) integer labels in [0, C).
    loss = 1/N sum_n sum_{j != y_n} max(0, s_nj - s_ny + 1). Returns (loss, dscores (N, C)).
    The hinge needs one correct class per example: soft targets (N, C) are refused (ValueInputError)."""
    if np.ndim(y) == 2:
        raise ValueInputError(f"svm_loss: the multiclass SVM loss needs one integer label per example; it cannot "
                              f"train on soft targets of shape {np.shape(y)} (label smoothing, mixup, CutMix): use "
                              f"the softmax cross-entropy loss for those")
    scores, y = _loss_args("svm_loss", scores, y)
    loss, dscores = _loss.svm_loss(scores, y)
    return scores.dtype.type(loss), dscores


def softmax_loss(scores: np.ndarray, y: np.ndarray, label_smoothing: float = 0.0
                 ) -> tuple[np.floating, np.ndarray]:
    """Softmax cross-entropy. scores: (N, C) logits; y: (N,) integer labels in [0, C), or (N, C) probability
    targets t (soft labels: each row >= 0 and summing to 1). label_smoothing eps in [0, 1) replaces the target by
    (1 - eps) t + eps / C (smooth_labels), as torch's cross_entropy(..., label_smoothing=eps) does.
    loss = 1/N sum_n sum_j t_nj (logsumexp(s_n) - s_nj) (for hard labels logsumexp(s_n) - s_ny), stable for any
    logit size. dscores = (softmax(s) - t) / N. Returns (loss, dscores (N, C))."""
    eps = check_real("softmax_loss: label smoothing ε", label_smoothing, 0.0, 1.0, high_open=True)
    scores, y = _loss_args("softmax_loss", scores, y, soft=True)
    if y.ndim == 1 and eps == 0.0:
        loss, dscores = _loss.softmax_loss(scores, y)
    else:
        t = smooth_labels(y, scores.shape[1], eps) if eps else y
        loss, dscores = _loss.softmax_loss_soft(scores, t)
    return scores.dtype.type(loss), dscores


# ----------------------------------------------------------------------------------------------- contrastive (InfoNCE)

# F.normalize's eps: a row shorter than this is divided by NORM_EPS instead of its length (no division by zero)
NORM_EPS = 1e-12


def default_partners(m: int) -> np.ndarray:
    """SimCLR's layout for 2N rows: rows i and i + N are the two views of one image, so row i's partner is
    (i + N) mod 2N. (2N,) int64; ShapeError for an odd or too small m."""
    m = check_int("InfoNCE: rows", m, 0, error=ShapeError)
    if m < 2 or m % 2:
        raise ShapeError(f"InfoNCE: z has {m} rows; without a partner array rows i and i + N are the two views of "
                         f"one image, so it needs an even number of rows (2N, N ≥ 1)")
    n = m // 2
    return np.concatenate([np.arange(n, m), np.arange(n)]).astype(np.int64)


def partners_from_ids(ids: Any) -> np.ndarray:
    """The partner index of every row from image ids (M,): the two rows showing the same image share an id, and
    each id must appear exactly twice. (M,) int64 with partner[partner[i]] = i. ValueInputError otherwise."""
    ids = np.asarray(ids)
    if ids.ndim != 1:
        raise ShapeError(f"InfoNCE: image ids must be one per row (M,), got shape {ids.shape}")
    if ids.dtype.kind not in "iu":
        raise ValueInputError(f"InfoNCE: image ids must be integers, got dtype {ids.dtype}")
    order = np.argsort(ids, kind="stable")
    s = ids[order]
    values, counts = np.unique(s, return_counts=True)
    if len(ids) < 2 or np.any(counts != 2):
        if len(ids) < 2:
            raise ValueInputError(f"InfoNCE: a batch needs at least one pair of views, got {len(ids)} row(s)")
        bad = int(np.flatnonzero(counts != 2)[0])
        raise ValueInputError(f"InfoNCE: image id {values[bad]} appears {counts[bad]} time(s) in the batch; each "
                              f"image must appear exactly twice (its two views)")
    partner = np.empty(len(ids), np.int64)
    partner[order[0::2]] = order[1::2]
    partner[order[1::2]] = order[0::2]
    return partner


def _infonce_args(fn: str, z: Any, partner: Any, temperature: float) -> tuple[np.ndarray, np.ndarray, float]:
    (z,) = _floats(fn, z=z)
    _ndim(fn, "z", z, 2, "embeddings (2N, D)")
    M, D = z.shape
    if M < 2 or D < 1:
        raise ShapeError(f"{fn}: z must hold at least two rows (one pair of views) of at least one feature, got "
                         f"shape {z.shape}")
    tau = check_real(f"{fn}: temperature τ", temperature, 0.0, low_open=True)
    if partner is None:
        return z, default_partners(M), tau
    p = np.asarray(partner)
    if p.shape != (M,):
        raise ShapeError(f"{fn}: partner has shape {p.shape} but z (shape {z.shape}) needs one partner index per "
                         f"row, shape ({M},)")
    if p.dtype.kind not in "iu":
        raise ValueInputError(f"{fn}: partner indices must be integers, got dtype {p.dtype}")
    if p.min() < 0 or p.max() >= M:
        bad = int(p[(p < 0) | (p >= M)][0])
        raise ValueInputError(f"{fn}: partner index {bad} is out of range for {M} rows")
    own = np.flatnonzero(p == np.arange(M))
    if own.size:
        raise ValueInputError(f"{fn}: row {own[0]} is its own partner; a row's positive must be another row (the "
                              f"other view of its image)")
    return z, np.ascontiguousarray(p, dtype=np.int64), tau


def _unit_rows(z: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(u, denom, long): u = z / max(‖z‖, eps) row by row (F.normalize), denom the divisor, long where ‖z‖ > eps."""
    norms = np.sqrt(np.einsum("ij,ij->i", z, z))
    denom = np.maximum(norms, z.dtype.type(eps))
    return z / denom[:, None], denom, norms > eps


def cosine_similarity(z: Any, eps: float = NORM_EPS) -> np.ndarray:
    """The (M, M) cosine similarities of the rows of z (M, D): û ûᵀ with û = z / max(‖z‖, eps)."""
    (z,) = _floats("cosine_similarity", z=z)
    _ndim("cosine_similarity", "z", z, 2, "(M, D)")
    u = _unit_rows(z, eps)[0]
    return u @ u.T


def infonce_forward(z: Any, partner: Any = None, temperature: float = 0.5, eps: float = NORM_EPS
                    ) -> tuple[np.floating, Cache]:
    """InfoNCE / NT-Xent (SimCLR). z: (2N, D) embeddings of N pairs of views; partner: (2N,) the row holding the
    other view of each row's image (None: rows i and i + N pair up, ``default_partners``); temperature τ > 0.

    Each row is L2-normalised, û = z / max(‖z‖, eps) (F.normalize), the logits are s_ij = ûᵢ·ûⱼ / τ with the row's
    own similarity masked out (s_ii = −∞), and the loss is the cross-entropy with the partner as the correct class,
    averaged over the 2N rows:

        loss = 1/(2N) Σᵢ [ log Σ_{k≠i} exp(s_ik) − s_i,partner(i) ]

    (torch: ``F.cross_entropy(sim.masked_fill(eye, -inf) / τ, partner)``). Stable for any τ: each row's largest
    logit is subtracted before exponentiating. Returns (loss in z's dtype, cache)."""
    z, p, tau = _infonce_args("infonce_forward", z, partner, temperature)
    u, denom, long = _unit_rows(z, eps)
    M = len(z)
    idx = np.arange(M)
    logits = (u @ u.T) / z.dtype.type(tau)
    logits[idx, idx] = -np.inf
    top = logits.max(axis=1, keepdims=True)
    e = np.exp(logits - top)                         # the masked diagonal gives exp(−∞) = 0
    total = e.sum(axis=1, keepdims=True)
    lse = top[:, 0].astype(np.float64) + np.log(total[:, 0].astype(np.float64))
    loss = float(np.mean(lse - logits[idx, p]))
    return z.dtype.type(loss), (u, denom, long, e / total, p, tau)


def infonce_backward(dout: Any, cache: Cache) -> np.ndarray:
    """dz (2N, D) of infonce_forward, given d(something)/d loss ``dout`` (a scalar).

    With P the masked softmax of the logits and Y the one-hot partners, dL/ds = (P − Y) / 2N (0 on the diagonal);
    s = û ûᵀ / τ gives dL/dû = (dS + dSᵀ) û / τ; and û = z / ‖z‖ gives dz = (dû − û (û·dû)) / ‖z‖ (the radial
    part removed: the loss cannot see a row's length). A row with ‖z‖ ≤ eps was divided by eps: dz = dû / eps."""
    u, denom, long, prob, p, tau = cache
    M = len(u)
    g = float(np.asarray(dout, dtype=np.float64))
    dS = prob.copy()
    dS[np.arange(M), p] -= 1
    dS *= u.dtype.type(g / M)
    du = (dS + dS.T) @ u / u.dtype.type(tau)
    radial = np.einsum("ij,ij->i", u, du)
    dz = np.where(long[:, None], du - u * radial[:, None], du) / denom[:, None]
    return dz.astype(u.dtype, copy=False)


def infonce_loss(z: Any, partner: Any = None, temperature: float = 0.5) -> tuple[np.floating, np.ndarray]:
    """InfoNCE as a loss function, softmax_loss's way: (loss, dz). See infonce_forward."""
    loss, cache = infonce_forward(z, partner, temperature)
    return loss, infonce_backward(1.0, cache)


def contrastive_accuracy(z: Any, partner: Any = None) -> float:
    """Top-1 contrastive accuracy: the share of rows whose most similar other row (cosine similarity) is their
    partner (a tie goes to the lower index). Chance is 1/(2N − 1) for 2N rows."""
    z, p, _ = _infonce_args("contrastive_accuracy", z, partner, 1.0)
    u = _unit_rows(z, NORM_EPS)[0]
    sim = u @ u.T
    np.fill_diagonal(sim, -np.inf)
    return float(np.mean(sim.argmax(axis=1) == p))
