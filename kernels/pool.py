"""Max and average pooling kernels (NCHW, no padding), forward and backward.

Output size is floor((H - HH) / stride) + 1 (and the same for W), as PyTorch's default (ceil_mode=False): when the
windows do not tile the input, the remainder rows/columns at the bottom/right are dropped and get zero gradient.
Max pooling records, per output, the flat index (within its H*W plane) of the maximum; ties go to the first element
in row-major window order, so an all-equal window routes its whole gradient to exactly one element. Overlapping
windows (stride < window) accumulate gradients.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, error_model="numpy")
def max_pool_forward(x, HH, WW, stride_h, stride_w):
    """x: (N, C, H, W) -> (out (N, C, Hout, Wout), arg (N, C, Hout, Wout) int32 flat index into the H*W plane)."""
    N, C, H, W = x.shape
    Hout = (H - HH) // stride_h + 1
    Wout = (W - WW) // stride_w + 1
    out = np.empty((N, C, Hout, Wout), x.dtype)
    arg = np.empty((N, C, Hout, Wout), np.int32)
    if HH == 2 and WW == 2 and stride_h == 2 and stride_w == 2:
        # the common case, unrolled: 4 loads, 3 compares, first-wins ties
        for n in range(N):
            for c in range(C):
                for oh in range(Hout):
                    r = 2 * oh
                    for ow in range(Wout):
                        s = 2 * ow
                        best = x[n, c, r, s]
                        bi = r * W + s
                        v = x[n, c, r, s + 1]
                        if v > best:
                            best = v
                            bi = r * W + s + 1
                        v = x[n, c, r + 1, s]
                        if v > best:
                            best = v
                            bi = (r + 1) * W + s
                        v = x[n, c, r + 1, s + 1]
                        if v > best:
                            best = v
                            bi = (r + 1) * W + s + 1
                        out[n, c, oh, ow] = best
                        arg[n, c, oh, ow] = bi
        return out, arg
    for n in range(N):
        for c in range(C):
            for oh in range(Hout):
                r0 = oh * stride_h
                for ow in range(Wout):
                    s0 = ow * stride_w
                    best = x[n, c, r0, s0]
                    bi = r0 * W + s0
                    for i in range(HH):
                        for j in range(WW):
                            v = x[n, c, r0 + i, s0 + j]
                            if v > best:
                                best = v
                                bi = (r0 + i) * W + s0 + j
                    out[n, c, oh, ow] = best
                    arg[n, c, oh, ow] = bi
    return out, arg


@njit(cache=True, nogil=True, error_model="numpy")
def max_pool_backward(dout, arg, H, W):
    """dout, arg: (N, C, Hout, Wout) -> dx (N, C, H, W): each dout goes to its window's recorded maximum."""
    N, C, Hout, Wout = dout.shape
    dx = np.zeros((N, C, H, W), dout.dtype)
    for n in range(N):
        for c in range(C):
            plane = dx[n, c].reshape(H * W)
            for oh in range(Hout):
                for ow in range(Wout):
                    plane[arg[n, c, oh, ow]] += dout[n, c, oh, ow]
    return dx


@njit(cache=True, nogil=True, error_model="numpy")
def avg_pool_forward(x, HH, WW, stride_h, stride_w):
    """x: (N, C, H, W) -> out (N, C, Hout, Wout), the mean of each window."""
    N, C, H, W = x.shape
    Hout = (H - HH) // stride_h + 1
    Wout = (W - WW) // stride_w + 1
    out = np.empty((N, C, Hout, Wout), x.dtype)
    inv = 1.0 / (HH * WW)
    for n in range(N):
        for c in range(C):
            for oh in range(Hout):
                r0 = oh * stride_h
                for ow in range(Wout):
                    s0 = ow * stride_w
                    acc = 0.0
                    for i in range(HH):
                        for j in range(WW):
                            acc += x[n, c, r0 + i, s0 + j]
                    out[n, c, oh, ow] = acc * inv
    return out


@njit(cache=True, nogil=True, error_model="numpy")
def avg_pool_backward(dout, H, W, HH, WW, stride_h, stride_w):
    """dout: (N, C, Hout, Wout) -> dx (N, C, H, W): each dout is spread evenly over its window."""
    N, C, Hout, Wout = dout.shape
    dx = np.zeros((N, C, H, W), dout.dtype)
    inv = 1.0 / (HH * WW)
    for n in range(N):
        for c in range(C):
            for oh in range(Hout):
                r0 = oh * stride_h
                for ow in range(Wout):
                    s0 = ow * stride_w
                    g = dout[n, c, oh, ow] * inv
                    for i in range(HH):
                        for j in range(WW):
                            dx[n, c, r0 + i, s0 + j] += g
    return dx


def warmup_tasks(dtypes=(np.float64, np.float32)) -> list[tuple[str, Callable[[], None]]]:
    """(name, zero-arg callable) pairs that compile (or load from cache) the pooling kernels for `dtypes`."""
    def task(dt):
        def run():
            x = np.arange(2 * 2 * 5 * 4, dtype=dt).reshape(2, 2, 5, 4)
            for k, s in ((2, 2), (3, 1)):
                out, arg = max_pool_forward(x, k, k, s, s)
                max_pool_backward(np.ones_like(out), arg, 5, 4)
                out = avg_pool_forward(x, k, k, s, s)
                avg_pool_backward(np.ones_like(out), 5, 4, k, k, s, s)
        return run
    return [(f"pool[{np.dtype(dt).name}]", task(dt)) for dt in dtypes]
