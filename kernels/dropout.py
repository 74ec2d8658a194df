"""Inverted dropout kernels: p is the probability of dropping a unit; kept units are scaled by 1/(1-p) (as PyTorch),
so the expected output equals the input and evaluation needs no rescaling.

The mask comes from numpy's seeded Generator (PCG64) in the thin Python wrapper, so a seed reproduces the same mask
with or without the JIT; Numba fuses the threshold, the scaling and the product into one pass.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, error_model="numpy")
def _dropout_apply(x, u, p, scale, zero):
    out = np.empty_like(x)
    mask = np.empty_like(x)
    for i in range(x.size):
        k = scale if u[i] >= p else zero
        mask[i] = k
        out[i] = x[i] * k
    return out, mask


def dropout_forward(x: np.ndarray, p: float, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """x: any shape, 0 <= p < 1. Returns (out, mask), both x's shape and dtype; mask holds 0 or 1/(1-p)."""
    xf = np.ascontiguousarray(x).reshape(-1)
    if p == 0:
        return x.copy(), np.ones_like(x)
    u = np.random.default_rng(seed).random(xf.size, dtype=x.dtype)
    t = x.dtype.type
    out, mask = _dropout_apply(xf, u, t(p), t(1.0 / (1.0 - p)), t(0))
    return out.reshape(x.shape), mask.reshape(x.shape)


def dropout_backward(dout: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """dx = dout * mask (numpy's SIMD product: nothing to fuse, so nothing to compile)."""
    return np.multiply(dout, mask, dtype=dout.dtype)


def warmup_tasks(dtypes=(np.float64, np.float32)) -> list[tuple[str, Callable[[], None]]]:
    """(name, zero-arg callable) pairs that compile (or load from cache) the dropout kernels for `dtypes`."""
    def task(dt):
        def run():
            x = np.ones((2, 3), dt)
            out, mask = dropout_forward(x, 0.5, 0)
            dropout_backward(out, mask)
        return run
    return [(f"dropout[{np.dtype(dt).name}]", task(dt)) for dt in dtypes]
