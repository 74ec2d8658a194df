"""Activation kernels, forward and backward: ReLU family, ELU/SELU, sigmoid, tanh, GELU, SiLU, softplus, PReLU, maxout.

Every public function takes ndarrays (float32 or float64, any shape unless stated) and returns new ndarrays of the
same dtype. Elementwise kernels run on a flat C-contiguous view, so one compiled version serves every shape.

Numba's math is scalar on this build (no SVML), so where a transcendental function dominates (exp, expm1, log1p,
erf, tanh) it is computed by a numpy/scipy ufunc (SIMD) in the thin Python wrapper, and the rest (branches, products,
the gradient algebra) is fused into one Numba pass, compiled with error_model="numpy" so that divisions carry no
zero check and the loops vectorise. Constants are passed in as scalars of the array's dtype so that
float32 arithmetic stays float32 and vectorises at full width.

Conventions follow PyTorch: the derivative at a kink (x == 0) is taken from the x <= 0 branch (ReLU'(0) = 0).
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
from numba import njit
from scipy.special import erf as _erf

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _flat(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).reshape(-1)


def _c(a: np.ndarray, value: float):
    """`value` as a scalar of a's dtype (keeps float32 kernels in float32)."""
    return a.dtype.type(value)


# ---------------------------------------------------------------- ReLU, leaky ReLU

@njit(cache=True, nogil=True, error_model="numpy")
def _relu_fwd(x, zero):
    out = np.empty_like(x)
    for i in range(x.size):
        v = x[i]
        out[i] = v if v > zero else zero
    return out


@njit(cache=True, nogil=True, error_model="numpy")
def _relu_bwd(dout_bits, x, zero, ones):
    # dout's bits kept where x > 0 and cleared (+0.0) elsewhere: an AND with a mask of ones, which the loop
    # vectorises as cheaply as it loads (a float select compiled to blends ran 1.5x torch's time on this machine)
    dx = np.empty(x.size, dout_bits.dtype)
    for i in range(x.size):
        dx[i] = dout_bits[i] & (ones if x[i] > zero else ones ^ ones)
    return dx


def relu_forward(x: np.ndarray) -> np.ndarray:
    """out = max(0, x)."""
    return _relu_fwd(_flat(x), _c(x, 0)).reshape(x.shape)


_BITS = {np.dtype(np.float32): np.int32, np.dtype(np.float64): np.int64}


def relu_backward(dout: np.ndarray, x: np.ndarray) -> np.ndarray:
    """dx = dout where x > 0, else 0 (dout in x's dtype, broadcast to x's shape)."""
    bits = _BITS.get(x.dtype)
    if bits is None:   # not a kernel dtype: plain numpy
        return np.where(x > 0, dout, 0).astype(x.dtype)
    d = _flat(np.broadcast_to(np.asarray(dout, dtype=x.dtype), x.shape)).view(bits)
    return _relu_bwd(d, _flat(x), _c(x, 0), bits(-1)).view(x.dtype).reshape(x.shape)


@njit(cache=True, nogil=True, error_model="numpy")
def _leaky_fwd(x, alpha, zero):
    out = np.empty_like(x)
    for i in range(x.size):
        v = x[i]
        out[i] = v if v > zero else alpha * v
    return out


@njit(cache=True, nogil=True, error_model="numpy")
def _leaky_bwd(dout, x, alpha, zero):
    dx = np.empty_like(x)
    for i in range(x.size):
        g = dout[i]
        dx[i] = g if x[i] > zero else alpha * g
    return dx


def leaky_relu_forward(x: np.ndarray, alpha: float = 0.01) -> np.ndarray:
    """out = x if x > 0 else alpha * x."""
    return _leaky_fwd(_flat(x), _c(x, alpha), _c(x, 0)).reshape(x.shape)


def leaky_relu_backward(dout: np.ndarray, x: np.ndarray, alpha: float = 0.01) -> np.ndarray:
    """dx = dout if x > 0 else alpha * dout."""
    return _leaky_bwd(_flat(dout), _flat(x), _c(x, alpha), _c(x, 0)).reshape(x.shape)


# ---------------------------------------------------------------- PReLU

@njit(cache=True, nogil=True, error_model="numpy")
def _prelu_fwd(x3, alpha, zero):
    A, C, B = x3.shape
    out = np.empty_like(x3)
    for a in range(A):
        for c in range(C):
            s = alpha[c]
            for b in range(B):
                v = x3[a, c, b]
                out[a, c, b] = v if v > zero else s * v
    return out


@njit(cache=True, nogil=True, error_model="numpy")
def _prelu_bwd(dout3, x3, alpha, zero):
    A, C, B = x3.shape
    dx = np.empty_like(x3)
    dalpha = np.zeros(C, np.float64)
    for a in range(A):
        for c in range(C):
            s = alpha[c]
            acc = 0.0
            for b in range(B):
                v = x3[a, c, b]
                g = dout3[a, c, b]
                if v > zero:
                    dx[a, c, b] = g
                else:
                    dx[a, c, b] = s * g
                    acc += g * v
            dalpha[c] += acc
    return dx, dalpha.astype(x3.dtype)


def _prelu_view(x: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x)
    if alpha.size == 1:
        return x.reshape(1, 1, -1)
    return x.reshape(x.shape[0], x.shape[1], -1)


def prelu_forward(x: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """x: (N, C, ...) with alpha (C,) (one slope per channel, axis 1 as in PyTorch), or any shape with alpha (1,).
    out = x if x > 0 else alpha[c] * x."""
    alpha = np.ascontiguousarray(alpha, dtype=x.dtype).reshape(-1)
    return _prelu_fwd(_prelu_view(x, alpha), alpha, _c(x, 0)).reshape(x.shape)


def prelu_backward(dout: np.ndarray, x: np.ndarray, alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Returns (dx, dalpha); dalpha has alpha's size: dalpha[c] = sum over x <= 0 in channel c of dout * x."""
    alpha = np.ascontiguousarray(alpha, dtype=x.dtype).reshape(-1)
    dx, dalpha = _prelu_bwd(_prelu_view(dout, alpha), _prelu_view(x, alpha), alpha, _c(x, 0))
    return dx.reshape(x.shape), dalpha


# ---------------------------------------------------------------- ELU, SELU

@njit(cache=True, nogil=True, error_model="numpy")
def _elu_fwd(x, em1, alpha, scale, zero):
    # em1 = expm1(min(x, 0)), computed by numpy
    out = np.empty_like(x)
    sa = scale * alpha
    for i in range(x.size):
        v = x[i]
        out[i] = scale * v if v > zero else sa * em1[i]
    return out


@njit(cache=True, nogil=True, error_model="numpy")
def _elu_bwd(dout, x, out, alpha, scale, zero):
    # for x <= 0: d/dx scale*alpha*(e^x - 1) = scale*alpha*e^x = out + scale*alpha
    dx = np.empty_like(x)
    sa = scale * alpha
    for i in range(x.size):
        g = dout[i]
        dx[i] = scale * g if x[i] > zero else g * (out[i] + sa)
    return dx


def elu_forward(x: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """out = x if x > 0 else alpha * (exp(x) - 1)."""
    xf = _flat(x)
    em1 = np.minimum(xf, 0)
    np.expm1(em1, out=em1)
    return _elu_fwd(xf, em1, _c(x, alpha), _c(x, 1), _c(x, 0)).reshape(x.shape)


def elu_backward(dout: np.ndarray, x: np.ndarray, out: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """dx = dout if x > 0 else dout * (out + alpha). Needs the forward output."""
    return _elu_bwd(_flat(dout), _flat(x), _flat(out), _c(x, alpha), _c(x, 1), _c(x, 0)).reshape(x.shape)


def selu_forward(x: np.ndarray) -> np.ndarray:
    """out = scale * (x if x > 0 else alpha * (exp(x) - 1)), PyTorch's alpha and scale."""
    xf = _flat(x)
    em1 = np.minimum(xf, 0)
    np.expm1(em1, out=em1)
    return _elu_fwd(xf, em1, _c(x, SELU_ALPHA), _c(x, SELU_SCALE), _c(x, 0)).reshape(x.shape)


def selu_backward(dout: np.ndarray, x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """dx = scale * dout if x > 0 else dout * (out + scale * alpha)."""
    return _elu_bwd(_flat(dout), _flat(x), _flat(out), _c(x, SELU_ALPHA), _c(x, SELU_SCALE),
                    _c(x, 0)).reshape(x.shape)


# ---------------------------------------------------------------- sigmoid, SiLU, softplus, tanh

def _exp_neg_abs(xf: np.ndarray) -> np.ndarray:
    """e = exp(-|x|) in (0, 1]: never overflows, the base of every stable sigmoid-like formula. (Plain numpy: three
    SIMD passes cost less than compiling a kernel for them.)"""
    e = np.abs(xf)
    np.negative(e, out=e)
    np.exp(e, out=e)
    return e


@njit(cache=True, nogil=True, error_model="numpy")
def _sigmoid_from_e(x, e, one, zero):
    # sigma(x) = 1/(1+e) for x >= 0 and e/(1+e) for x < 0, with e = exp(-|x|)
    out = np.empty_like(x)
    for i in range(x.size):
        r = one / (one + e[i])
        out[i] = r if x[i] >= zero else e[i] * r
    return out


@njit(cache=True, nogil=True, error_model="numpy")
def _sigmoid_bwd(dout, out, one):
    dx = np.empty_like(out)
    for i in range(out.size):
        s = out[i]
        dx[i] = dout[i] * s * (one - s)
    return dx


def sigmoid_forward(x: np.ndarray) -> np.ndarray:
    """out = 1 / (1 + exp(-x)), stable for |x| up to the dtype's maximum."""
    xf = _flat(x)
    return _sigmoid_from_e(xf, _exp_neg_abs(xf), _c(x, 1), _c(x, 0)).reshape(x.shape)


def sigmoid_backward(dout: np.ndarray, out: np.ndarray) -> np.ndarray:
    """dx = dout * out * (1 - out). Needs the forward output."""
    return _sigmoid_bwd(_flat(dout), _flat(out), _c(out, 1)).reshape(out.shape)


@njit(cache=True, nogil=True, error_model="numpy")
def _silu_from_e(x, e, one, zero):
    out = np.empty_like(x)
    for i in range(x.size):
        v = x[i]
        r = one / (one + e[i])
        out[i] = v * r if v >= zero else v * e[i] * r
    return out


@njit(cache=True, nogil=True, error_model="numpy")
def _silu_bwd_from_e(dout, x, e, one, zero):
    # d/dx x*s(x) = s * (1 + x * (1 - s))
    dx = np.empty_like(x)
    for i in range(x.size):
        v = x[i]
        r = one / (one + e[i])
        s = r if v >= zero else e[i] * r
        dx[i] = dout[i] * s * (one + v * (one - s))
    return dx


def silu_forward(x: np.ndarray) -> np.ndarray:
    """SiLU / swish: out = x * sigmoid(x)."""
    xf = _flat(x)
    return _silu_from_e(xf, _exp_neg_abs(xf), _c(x, 1), _c(x, 0)).reshape(x.shape)


def silu_backward(dout: np.ndarray, x: np.ndarray) -> np.ndarray:
    """dx = dout * s * (1 + x * (1 - s)), s = sigmoid(x)."""
    xf = _flat(x)
    return _silu_bwd_from_e(_flat(dout), xf, _exp_neg_abs(xf), _c(x, 1), _c(x, 0)).reshape(x.shape)


@njit(cache=True, nogil=True, error_model="numpy")
def _softplus_finish(x, l, zero):
    # softplus(x) = max(x, 0) + log1p(exp(-|x|)); l holds the log1p term
    out = np.empty_like(x)
    for i in range(x.size):
        v = x[i]
        out[i] = (v if v > zero else zero) + l[i]
    return out


def softplus_forward(x: np.ndarray) -> np.ndarray:
    """out = log(1 + exp(x)), computed as max(x, 0) + log1p(exp(-|x|)) so it never overflows."""
    xf = _flat(x)
    l = _exp_neg_abs(xf)
    np.log1p(l, out=l)
    return _softplus_finish(xf, l, _c(x, 0)).reshape(x.shape)


@njit(cache=True, nogil=True, error_model="numpy")
def _mul_sigmoid_from_e(dout, x, e, one, zero):
    dx = np.empty_like(x)
    for i in range(x.size):
        r = one / (one + e[i])
        dx[i] = dout[i] * (r if x[i] >= zero else e[i] * r)
    return dx


def softplus_backward(dout: np.ndarray, x: np.ndarray) -> np.ndarray:
    """dx = dout * sigmoid(x)."""
    xf = _flat(x)
    return _mul_sigmoid_from_e(_flat(dout), xf, _exp_neg_abs(xf), _c(x, 1), _c(x, 0)).reshape(x.shape)


def tanh_forward(x: np.ndarray) -> np.ndarray:
    """out = tanh(x) (numpy's SIMD tanh; saturates cleanly for large |x|)."""
    return np.tanh(x)


@njit(cache=True, nogil=True, error_model="numpy")
def _tanh_bwd(dout, out, one):
    dx = np.empty_like(out)
    for i in range(out.size):
        t = out[i]
        dx[i] = dout[i] * (one - t * t)
    return dx


def tanh_backward(dout: np.ndarray, out: np.ndarray) -> np.ndarray:
    """dx = dout * (1 - out**2). Needs the forward output."""
    return _tanh_bwd(_flat(dout), _flat(out), _c(out, 1)).reshape(out.shape)


# ---------------------------------------------------------------- GELU (exact erf form, PyTorch's default)

@njit(cache=True, nogil=True, error_model="numpy")
def _gelu_finish(x, er, half, one):
    out = np.empty_like(x)
    for i in range(x.size):
        out[i] = half * x[i] * (one + er[i])
    return out


@njit(cache=True, nogil=True, error_model="numpy")
def _gelu_bwd_finish(dout, x, er, ex, half, one, k):
    # d/dx x*Phi(x) = Phi(x) + x*phi(x); Phi = (1 + erf(x/sqrt2))/2, phi = exp(-x^2/2)/sqrt(2 pi)
    dx = np.empty_like(x)
    for i in range(x.size):
        dx[i] = dout[i] * (half * (one + er[i]) + x[i] * k * ex[i])
    return dx


def gelu_forward(x: np.ndarray) -> np.ndarray:
    """out = x * Phi(x) = 0.5 * x * (1 + erf(x / sqrt(2)))."""
    xf = _flat(x)
    er = np.multiply(xf, _c(x, _INV_SQRT2))
    _erf(er, out=er)
    return _gelu_finish(xf, er, _c(x, 0.5), _c(x, 1)).reshape(x.shape)


def gelu_backward(dout: np.ndarray, x: np.ndarray) -> np.ndarray:
    """dx = dout * (Phi(x) + x * phi(x))."""
    xf = _flat(x)
    er = np.multiply(xf, _c(x, _INV_SQRT2))
    _erf(er, out=er)
    ex = np.multiply(xf, _c(x, -0.5))  # -x^2/2, as (-0.5 * x) * x: the same rounding as the fused kernel had
    ex *= xf
    np.exp(ex, out=ex)
    return _gelu_bwd_finish(_flat(dout), xf, er, ex, _c(x, 0.5), _c(x, 1), _c(x, _INV_SQRT2PI)).reshape(x.shape)


# ---------------------------------------------------------------- maxout

def maxout_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x: (N, D), w: (D, M, k), b: (M, k). out[n, m] = max_j (x @ w[:, m, j] + b[m, j]).
    Returns (out (N, M), arg (N, M) int64: the winning piece, the first on ties)."""
    D, M, k = w.shape
    # plain numpy: one GEMM and an argmax, nothing left to fuse (and np.dot in Numba costs seconds to compile)
    z = (np.ascontiguousarray(x) @ np.ascontiguousarray(w).reshape(D, M * k)).reshape(-1, M, k)
    z += np.ascontiguousarray(b).reshape(M, k)
    arg = z.argmax(axis=2)  # the first maximum on ties
    return np.take_along_axis(z, arg[:, :, None], axis=2)[:, :, 0], arg.astype(np.int64)


def maxout_backward(dout: np.ndarray, x: np.ndarray, w: np.ndarray, arg: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Returns (dx (N, D), dw (D, M, k), db (M, k)): the gradient flows only through the winning piece."""
    D, M, k = w.shape
    N = x.shape[0]
    dz = np.zeros((N, M, k), x.dtype)
    np.put_along_axis(dz, np.asarray(arg)[:, :, None], np.asarray(dout, x.dtype)[:, :, None], axis=2)
    dz = dz.reshape(N, M * k)
    dx = dz @ np.ascontiguousarray(w).reshape(D, M * k).T
    dw2 = np.ascontiguousarray(x).T @ dz
    return dx, dw2.reshape(D, M, k), dz.sum(axis=0).reshape(M, k)


# ---------------------------------------------------------------- warm-up

def warmup_tasks(dtypes=(np.float64, np.float32)) -> list[tuple[str, Callable[[], None]]]:
    """(name, zero-arg callable) pairs that compile (or load from cache) the kernels here for `dtypes`: in float64
    every kernel (graph stepping and gradient checks run them all), in float32 the activations networks train with
    (PReLU and maxout are graph ops only, so float64 only; any other call still compiles on first use)."""
    def task(dt):
        def run():
            x = np.linspace(-2, 2, 12).astype(dt).reshape(2, 3, 2)
            g = np.ones_like(x)
            relu_backward(g, relu_forward(x))
            x = x + dt(0)
            leaky_relu_backward(g, x)
            leaky_relu_forward(x)
            if dt == np.float64:
                for a in (np.full(1, 0.25, dt), np.full(3, 0.25, dt)):
                    prelu_backward(g, x, a)
                    prelu_forward(x, a)
            elu_backward(g, x, elu_forward(x))
            selu_backward(g, x, selu_forward(x))
            sigmoid_backward(g, sigmoid_forward(x))
            tanh_backward(g, tanh_forward(x))
            silu_backward(g, x)
            silu_forward(x)
            softplus_backward(g, x)
            softplus_forward(x)
            gelu_backward(g, x)
            gelu_forward(x)
            if dt == np.float64:
                w = np.ones((3, 2, 2), dt)
                b = np.zeros((2, 2), dt)
                x2 = x.reshape(4, 3)
                out, arg = maxout_forward(x2, w, b)
                maxout_backward(np.ones_like(out), x2, w, arg)
        return run
    return [(f"activations[{np.dtype(dt).name}]", task(dt)) for dt in dtypes]
