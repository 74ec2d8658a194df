"""Max, average and fractional max pooling kernels (NCHW, no padding), forward and backward.

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


# ------------------------------------------------------------------------------------------ fractional max pooling
# Graham's fractional max pooling (2014) as PyTorch's FractionalMaxPool2d computes it: an output of size
# Hout = floor(H * ratio) with k x k windows whose top rows follow the pseudo-random sequence
#     a_i = floor((i + u) * alpha) - floor(u * alpha),  alpha = (H - k) / (Hout - 1),  i < Hout - 1;  a_last = H - k
# for one u in [0, 1) per (sample, channel, axis) (torch's ``_random_samples[n, c] = (u_w, u_h)``). Each step is
# floor(alpha) or ceil(alpha). With k = 2, alpha <= 2 exactly when 2 Hout >= H (always for an even H at a ratio in
# (1/2, 1)): the steps are 1 or 2, the windows cover every row and overlap where a step is 1. For an odd H with
# Hout = (H - 1) / 2 (a ratio just above 1/2) a step of 3 skips a row: H = 7 at ratio 0.51 gives starts 0, 2, 5
# (row 4 is never pooled) or 0, 3, 5 (row 2). torch does the same.

def fractional_intervals(u: np.ndarray, in_size: int, out_size: int, k: int) -> np.ndarray:
    """u: (N, C) samples in [0, 1) -> (N, C, out_size) int32 window starts along one axis. The arithmetic is done in
    u's dtype, as torch's generate_intervals does in the input's scalar type (float32 gives torch's float32 starts)."""
    u = np.asarray(u)
    seq = np.empty(u.shape + (out_size,), np.int32)
    if out_size > 1:
        dt = u.dtype.type
        alpha = dt(in_size - k) / dt(out_size - 1)
        i = np.arange(out_size - 1, dtype=u.dtype)
        # static_cast<int> truncates; every value here is >= 0, so truncation is the floor
        seq[..., :-1] = ((i + u[..., None]) * alpha).astype(np.int32) - (u * alpha).astype(np.int32)[..., None]
    if out_size > 0:
        seq[..., -1] = in_size - k
    return seq


@njit(cache=True, nogil=True, error_model="numpy")
def fractional_max_pool_forward(x, starts_h, starts_w, k):
    """x: (N, C, H, W); starts_h (N, C, Hout), starts_w (N, C, Wout) int32 window corners; k the window size ->
    (out (N, C, Hout, Wout), arg (N, C, Hout, Wout) int32 flat index into the H*W plane). Ties go to the first element
    in row-major window order, as in max_pool_forward (and torch, for inputs without NaN)."""
    N, C, H, W = x.shape
    Hout = starts_h.shape[2]
    Wout = starts_w.shape[2]
    out = np.empty((N, C, Hout, Wout), x.dtype)
    arg = np.empty((N, C, Hout, Wout), np.int32)
    if k == 2:
        # the usual window, unrolled: 4 loads, 3 compares
        for n in range(N):
            for c in range(C):
                xp = x[n, c]
                for oh in range(Hout):
                    r = np.intp(starts_h[n, c, oh])
                    for ow in range(Wout):
                        s = np.intp(starts_w[n, c, ow])
                        best = xp[r, s]
                        bi = r * W + s
                        v = xp[r, s + 1]
                        if v > best:
                            best = v
                            bi = r * W + s + 1
                        v = xp[r + 1, s]
                        if v > best:
                            best = v
                            bi = (r + 1) * W + s
                        v = xp[r + 1, s + 1]
                        if v > best:
                            best = v
                            bi = (r + 1) * W + s + 1
                        out[n, c, oh, ow] = best
                        arg[n, c, oh, ow] = bi
        return out, arg
    for n in range(N):
        for c in range(C):
            xp = x[n, c]
            for oh in range(Hout):
                r = np.intp(starts_h[n, c, oh])
                for ow in range(Wout):
                    s = np.intp(starts_w[n, c, ow])
                    best = xp[r, s]
                    bi = r * W + s
                    for i in range(k):
                        for j in range(k):
                            v = xp[r + i, s + j]
                            if v > best:
                                best = v
                                bi = (r + i) * W + s + j
                    out[n, c, oh, ow] = best
                    arg[n, c, oh, ow] = bi
    return out, arg


@njit(cache=True, nogil=True, error_model="numpy")
def fractional_max_pool_backward(dout, arg, H, W):
    """dout, arg: (N, C, Hout, Wout) -> dx (N, C, H, W): each dout goes to its window's recorded maximum; windows
    that overlap (a step of 1) accumulate."""
    N, C, Hout, Wout = dout.shape
    dx = np.zeros((N, C, H, W), dout.dtype)
    for n in range(N):
        for c in range(C):
            plane = dx[n, c].reshape(H * W)
            for oh in range(Hout):
                for ow in range(Wout):
                    plane[arg[n, c, oh, ow]] += dout[n, c, oh, ow]
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
            sh = fractional_intervals(np.full((2, 2), 0.5, dt), 5, 3, 2)
            sw = fractional_intervals(np.full((2, 2), 0.5, dt), 4, 3, 2)
            out, arg = fractional_max_pool_forward(x, sh, sw, 2)
            fractional_max_pool_backward(np.ones_like(out), arg, 5, 4)
        return run
    return [(f"pool[{np.dtype(dt).name}]", task(dt)) for dt in dtypes]
