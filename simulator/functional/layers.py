"""cs231n-style layer functions: `<op>_forward(...) -> (out, cache)` and `<op>_backward(dout, cache) -> grads`.

This module owns argument validation (ShapeError for shapes and arguments, ValueInputError for unusable values) and
dtype policy; the arithmetic is in kernels/. Float32 in gives float32 out; float64 in (or any mix with float64, or
integer input) gives float64 out. Backward functions return gradients in the forward's input order, each with its
input's shape. Conventions follow PyTorch where cs231n leaves a choice (batch-norm momentum, unbiased running
variance, pooling floor mode, GELU's exact erf form, SELU's constants, derivative 0 at ReLU's kink).
"""
from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from simulator.core.errors import ShapeError, ValueInputError
from simulator.core.params import check_int, check_real

Cache = Any


class _KernelModule:
    """A kernel module loaded at its first use. Importing the kernels pulls numba and scipy (about 0.7 s); the op
    registry imports this module, so the window would otherwise wait for them before it shows. The warm-up job
    imports them on its worker thread right after start; import_module is thread-safe and, once loaded, a dict
    lookup."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self._name), attr)


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
    "dropout_forward", "dropout_backward", "svm_loss", "softmax_loss",
]


# ----------------------------------------------------------------------------------------------- validation helpers

def _array(fn: str, name: str, a: Any) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype.kind not in "biuf":
        raise ValueInputError(f"{fn}: {name} must hold real numbers, got dtype {a.dtype} (shape {a.shape})")
    return a


def _floats(fn: str, **arrays: Any) -> list[np.ndarray]:
    """The arrays as C-contiguous float arrays of one dtype: float32 if every input is float32, else float64."""
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

def affine_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, Cache]:
    """x: (N, d1, ..., dk), reshaped to (N, D) with D = d1*...*dk; w: (D, M); b: (M,). out = x2 @ w + b: (N, M)."""
    fn = "affine_forward"
    x, w, b = _floats(fn, x=x, w=w, b=b)
    if x.ndim < 1:
        raise ShapeError(f"{fn}: x must have a batch axis, got shape {x.shape}")
    if w.ndim != 2:
        raise ShapeError(f"{fn}: w must be 2-D (D, M), got shape {w.shape}")
    x2 = x.reshape(x.shape[0], -1)
    if x2.shape[1] != w.shape[0]:
        raise ShapeError(f"{fn}: x has {x2.shape[1]} features per sample (shape {x.shape}) "
                         f"but w expects {w.shape[0]} (shape {w.shape})")
    if b.shape != (w.shape[1],):
        raise ShapeError(f"{fn}: b has shape {b.shape} but w (shape {w.shape}) needs one bias per column, "
                         f"shape ({w.shape[1]},)")
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
    # the cache keeps the forward's im2col columns (when they fit in kernels.conv.KEEP_COLS_BYTES): backward reuses them
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

def _loss_args(fn: str, scores: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    (scores,) = _floats(fn, scores=scores)
    _ndim(fn, "scores", scores, 2, "(N, C)")
    y = np.asarray(y)
    if y.shape != (scores.shape[0],):
        raise ShapeError(f"{fn}: y has shape {y.shape} but scores (shape {scores.shape}) needs one label per row, "
                         f"shape ({scores.shape[0]},)")
    if scores.shape[0] < 1 or scores.shape[1] < 1:
        raise ShapeError(f"{fn}: scores needs at least one row and one class, got shape {scores.shape}")
    if y.dtype.kind not in "iu":
        raise ValueInputError(f"{fn}: labels y must be integers, got dtype {y.dtype} (shape {y.shape})")
    if y.min() < 0 or y.max() >= scores.shape[1]:
        bad = y[(y < 0) | (y >= scores.shape[1])][0]
        raise ValueInputError(f"{fn}: label {bad} is out of range for {scores.shape[1]} classes "
                              f"(scores shape {scores.shape}, y shape {y.shape})")
    return scores, np.ascontiguousarray(y, dtype=np.int64)


def svm_loss(scores: np.ndarray, y: np.ndarray) -> tuple[np.floating, np.ndarray]:
    """Multiclass SVM loss. scores: (N, C); y: (N,) integer labels in [0, C).
    loss = 1/N sum_n sum_{j != y_n} max(0, s_nj - s_ny + 1). Returns (loss, dscores (N, C))."""
    scores, y = _loss_args("svm_loss", scores, y)
    loss, dscores = _loss.svm_loss(scores, y)
    return scores.dtype.type(loss), dscores


def softmax_loss(scores: np.ndarray, y: np.ndarray) -> tuple[np.floating, np.ndarray]:
    """Softmax cross-entropy. scores: (N, C) logits; y: (N,) integer labels in [0, C).
    loss = 1/N sum_n (logsumexp(s_n) - s_ny), stable for any logit size. Returns (loss, dscores (N, C))."""
    scores, y = _loss_args("softmax_loss", scores, y)
    loss, dscores = _loss.softmax_loss(scores, y)
    return scores.dtype.type(loss), dscores
