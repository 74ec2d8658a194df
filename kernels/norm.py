"""Normalisation kernels: batch norm (plain and spatial share one kernel), layer norm, instance norm, group norm;
forward and backward.

Shapes are reduced to 3-D views by the caller (simulator/layers.py):
  batch norm      (N, D)       -> (N, D, 1)     statistics per D over N
  spatial BN      (N, C, H, W) -> (N, C, H*W)   statistics per C over N, H, W
  layer norm      (N, ...)     -> (N, D)        statistics per row over D, affine per D
  instance norm   (N, C, H, W) -> (N, C, H*W)   statistics per (n, c) over H, W, affine per C
  group norm      (N, C, H, W) -> (N, C, H*W)   statistics per (n, group of C/G channels) over those channels' H, W,
                                                affine per C (G = C is instance norm, G = 1 layer norm with a
                                                per-channel affine)
Sums accumulate in float64 whatever the dtype (group and instance norm: each channel's row summed in the array's
dtype first, the rows' sums in float64; see _REASSOC). Variances are biased (divide by m) for normalising, as
PyTorch; the unbiased running-variance update is the caller's (it needs m > 1).

Backward of xhat = (x - mean) * inv_std over a group of m elements, with dxhat = dout * gamma:
  dx = inv_std / m * (m * dxhat - sum(dxhat) - xhat * sum(dxhat * xhat))
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, error_model="numpy")
def _normalize_affine(x3, mean, inv_std, gamma, beta):
    """x3: (A, C, B) -> (out, xhat): xhat = (x - mean[c]) * inv_std[c], out = gamma[c] * xhat + beta[c]."""
    A, C, B = x3.shape
    out = np.empty_like(x3)
    xhat = np.empty_like(x3)
    for a in range(A):
        for c in range(C):
            mu = mean[c]
            s = inv_std[c]
            g = gamma[c]
            be = beta[c]
            for b in range(B):
                h = (x3[a, c, b] - mu) * s
                xhat[a, c, b] = h
                out[a, c, b] = h * g + be
    return out, xhat


@njit(cache=True, nogil=True, error_model="numpy")
def batchnorm_train_forward(x3, gamma, beta, eps):
    """x3: (A, C, B); gamma, beta: (C,). Normalise per C with batch statistics over A and B.
    Returns (out, xhat, mean (C,), var (C,) biased, inv_std (C,))."""
    A, C, B = x3.shape
    m = A * B
    mean = np.zeros(C, np.float64)
    var = np.zeros(C, np.float64)
    for a in range(A):
        for c in range(C):
            acc = 0.0
            for b in range(B):
                acc += x3[a, c, b]
            mean[c] += acc
    mean /= m
    for a in range(A):
        for c in range(C):
            mu = mean[c]
            acc = 0.0
            for b in range(B):
                d = x3[a, c, b] - mu
                acc += d * d
            var[c] += acc
    var /= m
    inv_std = 1.0 / np.sqrt(var + eps)
    out, xhat = _normalize_affine(x3, mean, inv_std, gamma, beta)
    return out, xhat, mean.astype(x3.dtype), var.astype(x3.dtype), inv_std.astype(x3.dtype)


@njit(cache=True, nogil=True, error_model="numpy")
def batchnorm_eval_forward(x3, gamma, beta, running_mean, running_var, eps):
    """x3: (A, C, B). Normalise per C with the running statistics. Returns (out, xhat, inv_std (C,))."""
    A, C, B = x3.shape
    inv_std = (1.0 / np.sqrt(running_var.astype(np.float64) + eps)).astype(x3.dtype)
    out, xhat = _normalize_affine(x3, running_mean, inv_std, gamma, beta)
    return out, xhat, inv_std


@njit(cache=True, nogil=True, error_model="numpy")
def batchnorm_backward(dout3, xhat3, gamma, inv_std, train):
    """Returns (dx (A, C, B), dgamma (C,), dbeta (C,)). With train=False the statistics are constants (eval mode)."""
    A, C, B = xhat3.shape
    m = A * B
    dgamma = np.zeros(C, np.float64)
    dbeta = np.zeros(C, np.float64)
    for a in range(A):
        for c in range(C):
            sg = 0.0
            sb = 0.0
            for b in range(B):
                g = dout3[a, c, b]
                sb += g
                sg += g * xhat3[a, c, b]
            dgamma[c] += sg
            dbeta[c] += sb
    dx = np.empty_like(xhat3)
    for c in range(C):
        # sum(dxhat) = gamma * dbeta and sum(dxhat * xhat) = gamma * dgamma
        k = gamma[c] * inv_std[c]
        mb = dbeta[c] / m if train else 0.0
        mg = dgamma[c] / m if train else 0.0
        for a in range(A):
            for b in range(B):
                dx[a, c, b] = k * (dout3[a, c, b] - mb - xhat3[a, c, b] * mg)
    return dx, dgamma.astype(xhat3.dtype), dbeta.astype(xhat3.dtype)


@njit(cache=True, nogil=True, error_model="numpy")
def _row_stats(x2, eps):
    R, L = x2.shape
    mean = np.empty(R, np.float64)
    inv_std = np.empty(R, np.float64)
    for r in range(R):
        acc = 0.0
        for l in range(L):
            acc += x2[r, l]
        mu = acc / L
        acc = 0.0
        for l in range(L):
            d = x2[r, l] - mu
            acc += d * d
        mean[r] = mu
        inv_std[r] = 1.0 / np.sqrt(acc / L + eps)
    return mean, inv_std


@njit(cache=True, nogil=True, error_model="numpy")
def layernorm_forward(x2, gamma, beta, eps):
    """x2: (N, D); gamma, beta: (D,). Normalise each row. Returns (out, xhat, inv_std (N,))."""
    N, D = x2.shape
    mean, inv_std = _row_stats(x2, eps)
    out = np.empty_like(x2)
    xhat = np.empty_like(x2)
    for n in range(N):
        mu = mean[n]
        s = inv_std[n]
        for d in range(D):
            h = (x2[n, d] - mu) * s
            xhat[n, d] = h
            out[n, d] = h * gamma[d] + beta[d]
    return out, xhat, inv_std.astype(x2.dtype)


@njit(cache=True, nogil=True, error_model="numpy")
def layernorm_backward(dout2, xhat2, gamma, inv_std):
    """Returns (dx (N, D), dgamma (D,), dbeta (D,))."""
    N, D = xhat2.shape
    dgamma = np.zeros(D, np.float64)
    dbeta = np.zeros(D, np.float64)
    dx = np.empty_like(xhat2)
    for n in range(N):
        s1 = 0.0
        s2 = 0.0
        for d in range(D):
            g = dout2[n, d]
            h = xhat2[n, d]
            dgamma[d] += g * h
            dbeta[d] += g
            dh = g * gamma[d]
            s1 += dh
            s2 += dh * h
        s1 /= D
        s2 /= D
        k = inv_std[n]
        for d in range(D):
            dx[n, d] = k * (dout2[n, d] * gamma[d] - s1 - xhat2[n, d] * s2)
    return dx, dgamma.astype(xhat2.dtype), dbeta.astype(xhat2.dtype)


# Group norm's sums may be reassociated (and multiply-adds fused): LLVM then vectorises the reductions over a group's
# contiguous block. Each channel's row is summed in the array's dtype (eight float32 lanes at a time, where float64
# accumulators would halve the width and convert every element), and the rows' sums in float64; the last pass
# (_normalize_rows, no fast-math) runs in the array's dtype too, the mean carried as two numbers of it. In float32 the
# outputs stay within a few ulps of a float64 computation from the same inputs, dgamma and dbeta within float32
# summation's rounding, a tenth of torch's on 65,536-value rows (tests/kernels/test_norm.py, data far from zero mean
# included). (Summing a row in blocks of float32 sums added in float64 stopped LLVM vectorising the loops: 2-3x
# slower.) As in torch, float32 deviations whose squares sum past float32's range (|x - mean| ~ 1e17 over 1,024
# values) give inf. Nothing else is relaxed (no assumptions about NaN or infinity).
_REASSOC = {"reassoc", "contract"}   # never "nsz" (or True): LLVM could then regroup (x - pivot) + (y - pivot) and
                                     # (x - mu_hi) - mu_lo, and lose what the pivot and mu_lo keep

# The outputs are allocated by the Python wrappers (numpy) and filled by the kernels.


@njit(cache=True, nogil=True, error_model="numpy", fastmath=_REASSOC)
def _groupnorm_forward_into(x3, gamma, beta, groups, eps, out, xhat, inv):
    N, C, L = x3.shape
    G = groups
    cg = C // G
    m = cg * L
    cast = x3.dtype.type
    zero = cast(0)
    for n in range(N):
        for g in range(G):
            c0 = g * cg
            # Summed as deviations from the group's first value, so the rounding of float32 sums scales with the
            # data's spread, not with its distance from zero (an image in 0-255).
            pivot = x3[n, c0, 0] if L > 0 else zero
            acc = 0.0
            for c in range(c0, c0 + cg):
                row = zero
                for l in range(L):
                    row += x3[n, c, l] - pivot
                acc += row
            mu = pivot + acc / m
            mu_hi = cast(mu)               # the mean as a pair of the dtype's numbers, hi + lo: x - mu_hi is exact
            mu_lo = cast(mu - mu_hi)       # for x near the mean, and lo carries the rest of it
            acc = 0.0
            for c in range(c0, c0 + cg):
                row = zero
                for l in range(L):
                    d = x3[n, c, l] - mu_hi
                    row += d * d
                acc += row
            # mean of (x - mu_hi)^2 = variance + (mu - mu_hi)^2: taken off (it matters when the spread is a few ulps
            # of the mean, e.g. 1e4 +- 0.01 in float32)
            s = 1.0 / np.sqrt(max(acc / m - (mu - mu_hi) ** 2, 0.0) + eps)
            inv[n, g] = s
            _normalize_rows(x3, n, c0, c0 + cg, mu_hi, mu_lo, cast(s), gamma, beta, xhat, out)


@njit(cache=True, nogil=True, error_model="numpy", fastmath=False)  # explicit: a callee inherits its caller's
def _normalize_rows(x3, n, c_from, c_to, mu_hi, mu_lo, s, gamma, beta, xhat, out):
    """xhat = ((x - mu_hi) - mu_lo) * s and out = xhat * gamma + beta over rows c_from..c_to of sample n, in the
    array's dtype and evaluated as written: no fast-math here, which would fold mu_lo into mu_hi and lose it."""
    for c in range(c_from, c_to):
        ga = gamma[c]
        be = beta[c]
        for l in range(x3.shape[2]):
            h = ((x3[n, c, l] - mu_hi) - mu_lo) * s
            xhat[n, c, l] = h
            out[n, c, l] = h * ga + be


@njit(cache=True, nogil=True, error_model="numpy", fastmath=_REASSOC)
def _groupnorm_backward_into(dout3, xhat3, gamma, inv_std, groups, dx, dgamma, dbeta):
    N, C, L = xhat3.shape
    G = groups
    cg = C // G
    m = cg * L
    cast = xhat3.dtype.type
    zero = cast(0)
    for n in range(N):
        for g in range(G):
            c0 = g * cg
            s1 = 0.0
            s2 = 0.0
            for c in range(c0, c0 + cg):
                ga = gamma[c]
                sg = zero
                sb = zero
                for l in range(L):
                    d = dout3[n, c, l]
                    sb += d
                    sg += d * xhat3[n, c, l]
                dgamma[c] += sg
                dbeta[c] += sb
                s1 += ga * sb
                s2 += ga * sg
            k = inv_std[n, g]
            b0 = cast(k * s1 / m)
            b1 = cast(k * s2 / m)
            for c in range(c0, c0 + cg):
                a = cast(k * gamma[c])
                for l in range(L):
                    dx[n, c, l] = a * dout3[n, c, l] - b0 - b1 * xhat3[n, c, l]


def groupnorm_forward(x3: np.ndarray, gamma: np.ndarray, beta: np.ndarray, groups: int, eps: float
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x3: (N, C, L) C-contiguous with C divisible by `groups`; gamma, beta: (C,). Normalise each (n, group) over its
    C/G channels and L positions (a contiguous block of memory). Returns (out, xhat, inv_std (N, G)), x3's dtype."""
    out = np.empty_like(x3)
    xhat = np.empty_like(x3)
    inv = np.empty((x3.shape[0], groups), np.float64)
    _groupnorm_forward_into(x3, gamma, beta, groups, eps, out, xhat, inv)
    return out, xhat, inv.astype(x3.dtype)


def groupnorm_backward(dout3: np.ndarray, xhat3: np.ndarray, gamma: np.ndarray, inv_std: np.ndarray, groups: int
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Returns (dx (N, C, L), dgamma (C,), dbeta (C,)). Per (n, group) of m = C/G * L elements, with
    dxhat = dout * gamma[c]: dx = inv_std / m * (m * dxhat - sum(dxhat) - xhat * sum(dxhat * xhat))."""
    C = xhat3.shape[1]
    dx = np.empty_like(xhat3)
    dgamma = np.zeros(C, np.float64)
    dbeta = np.zeros(C, np.float64)
    _groupnorm_backward_into(dout3, xhat3, gamma, inv_std, groups, dx, dgamma, dbeta)
    return dx, dgamma.astype(xhat3.dtype), dbeta.astype(xhat3.dtype)


def instancenorm_forward(x3: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x3: (N, C, L); gamma, beta: (C,). Normalise each (n, c) row over L. Returns (out, xhat, inv_std (N, C)).
    Group norm with one group per channel (the same kernel)."""
    return groupnorm_forward(x3, gamma, beta, x3.shape[1], eps)


def instancenorm_backward(dout3: np.ndarray, xhat3: np.ndarray, gamma: np.ndarray, inv_std: np.ndarray
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Returns (dx (N, C, L), dgamma (C,), dbeta (C,))."""
    return groupnorm_backward(dout3, xhat3, gamma, inv_std, xhat3.shape[1])


def warmup_tasks(dtypes=(np.float64, np.float32)) -> list[tuple[str, Callable[[], None]]]:
    """(name, zero-arg callable) pairs that compile (or load from cache) the normalisation kernels for `dtypes`
    (every kernel: networks hold instance and group norm layers in float32 as well)."""
    def task(dt):
        def run():
            x3 = np.linspace(-1, 1, 24).astype(dt).reshape(2, 3, 4)
            g = np.ones(3, dt)
            b = np.zeros(3, dt)
            out, xhat, mean, var, inv_std = batchnorm_train_forward(x3, g, b, 1e-5)
            batchnorm_backward(out, xhat, g, inv_std, True)
            out, xhat, inv_std = batchnorm_eval_forward(x3, g, b, mean, var, 1e-5)
            batchnorm_backward(out, xhat, g, inv_std, False)
            out, xhat, inv_std = instancenorm_forward(x3, g, b, 1e-5)
            instancenorm_backward(out, xhat, g, inv_std)
            x4 = np.linspace(-1, 1, 32).astype(dt).reshape(2, 4, 4)
            g4 = np.ones(4, dt)
            out, xhat, inv_std = groupnorm_forward(x4, g4, np.zeros(4, dt), 2, 1e-5)
            groupnorm_backward(out, xhat, g4, inv_std, 2)
            x2 = x3.reshape(2, 12)
            g2 = np.ones(12, dt)
            out, xhat, inv_std = layernorm_forward(x2, g2, np.zeros(12, dt), 1e-5)
            layernorm_backward(out, xhat, g2, inv_std)
        return run
    return [(f"norm[{np.dtype(dt).name}]", task(dt)) for dt in dtypes]
