"""2-D convolution kernels (NCHW input, (F, C, HH, WW) filters, any stride, zero padding): forward and backward.

Method: im2col + one BLAS GEMM per sample (the sample's column matrix stays in cache; grouping samples into one
larger GEMM measured slower). Output size (floor, as PyTorch): Hout = (H + 2*pad - HH) // stride + 1.

1. Pad and phase-split once: xs[c, r, q, u] = xpad[c, r, u*stride + q]. Window indices never go negative, and for any
   stride the im2col copy `xpad[c, oh*stride + i, ow*stride + j] for ow in 0..Wout` becomes the contiguous run
   xs[c, oh*stride + i, j % stride, j // stride : j // stride + Wout], which vectorises.
2. cols[(c*HH + i)*WW + j, oh*Wout + ow] = xpad[c, oh*stride + i, ow*stride + j];  out_n = w2 @ cols + b,
   w2 = w.reshape(F, C*HH*WW).
3. Backward (columns are rebuilt per sample rather than kept for the whole batch):
   dw += dout_n @ cols^T,  dcols = w2^T @ dout_n,  col2im(dcols) accumulates into dxs,  db = sum of dout.

Inner loops index arrays element-wise rather than through row views: a view costs reference-count traffic.
Callers (simulator/layers.py) validate shapes; these kernels assume C-contiguous arrays of one float dtype.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from numba import njit


@njit(cache=True)
def _phase_range(q, stride, pad, W, Wq):
    """u such that 0 <= u*stride + q - pad < W (the phase-q slots that hold real, unpadded columns)."""
    lo = max(0, (pad - q + stride - 1) // stride)
    hi = min(Wq, (pad + W - 1 - q) // stride + 1)
    return lo, hi


@njit(cache=True)
def _split_pad(x, pad, stride, Wq):
    """(N, C, H, W) -> zero-padded, phase-split (N, C, H + 2*pad, stride, Wq)."""
    N, C, H, W = x.shape
    Hp = H + 2 * pad
    xs = np.zeros((N, C, Hp, stride, Wq), x.dtype)
    for q in range(stride):
        lo, hi = _phase_range(q, stride, pad, W, Wq)
        off = q - pad
        for n in range(N):
            for c in range(C):
                for i in range(H):
                    for u in range(lo, hi):
                        xs[n, c, i + pad, q, u] = x[n, c, i, u * stride + off]
    return xs


@njit(cache=True)
def _merge_crop(dxs, pad, stride, H, W):
    """Inverse of _split_pad for gradients: (N, C, Hp, stride, Wq) -> (N, C, H, W)."""
    N, C, Wq = dxs.shape[0], dxs.shape[1], dxs.shape[4]
    dx = np.empty((N, C, H, W), dxs.dtype)
    for q in range(stride):
        lo, hi = _phase_range(q, stride, pad, W, Wq)
        off = q - pad
        for n in range(N):
            for c in range(C):
                for i in range(H):
                    for u in range(lo, hi):
                        dx[n, c, i, u * stride + off] = dxs[n, c, i + pad, q, u]
    return dx


@njit(cache=True)
def _im2col(xs_n, HH, WW, stride, Hout, Wout, cols):
    C = xs_n.shape[0]
    for c in range(C):
        for i in range(HH):
            for j in range(WW):
                row = (c * HH + i) * WW + j
                q = j % stride
                u0 = j // stride
                for oh in range(Hout):
                    r = oh * stride + i
                    base = oh * Wout
                    for ow in range(Wout):
                        cols[row, base + ow] = xs_n[c, r, q, u0 + ow]


@njit(cache=True)
def _col2im_add(dcols, HH, WW, stride, Hout, Wout, dxs_n):
    C = dxs_n.shape[0]
    for c in range(C):
        for i in range(HH):
            for j in range(WW):
                row = (c * HH + i) * WW + j
                q = j % stride
                u0 = j // stride
                for oh in range(Hout):
                    r = oh * stride + i
                    base = oh * Wout
                    for ow in range(Wout):
                        dxs_n[c, r, q, u0 + ow] += dcols[row, base + ow]


@njit(cache=True)
def _sum_rows_into(d, acc):
    for f in range(d.shape[0]):
        t = 0.0
        for p in range(d.shape[1]):
            t += d[f, p]
        acc[f] += t


@njit(cache=True)
def conv_forward(x, w, b, stride, pad):
    """x: (N, C, H, W), w: (F, C, HH, WW), b: (F,) -> out (N, F, Hout, Wout)."""
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    Hout = (H + 2 * pad - HH) // stride + 1
    Wout = (W + 2 * pad - WW) // stride + 1
    K = C * HH * WW
    P = Hout * Wout
    w2 = w.reshape(F, K)
    out = np.empty((N, F, Hout, Wout), x.dtype)
    direct = HH == 1 and WW == 1 and stride == 1 and pad == 0
    if direct:  # 1x1 convolution: each input plane already is the column matrix
        xs = x.reshape(N, C, H, 1, W)
    else:
        xs = _split_pad(x, pad, stride, (W + 2 * pad + stride - 1) // stride)
    cols = np.empty((K, P), x.dtype)
    for n in range(N):
        o = out[n].reshape(F, P)
        if direct:
            np.dot(w2, x[n].reshape(C, P), o)
        else:
            _im2col(xs[n], HH, WW, stride, Hout, Wout, cols)
            np.dot(w2, cols, o)
        for f in range(F):  # bias while this sample's output is still in cache
            bf = b[f]
            for p in range(P):
                o[f, p] += bf
    return out


@njit(cache=True)
def conv_backward(dout, x, w, stride, pad):
    """dout: (N, F, Hout, Wout), x and w as in the forward pass -> (dx, dw, db) with x's, w's and (F,) shapes."""
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    Hout = dout.shape[2]
    Wout = dout.shape[3]
    K = C * HH * WW
    P = Hout * Wout
    w2t = w.reshape(F, K).T
    dw2 = np.zeros((F, K), x.dtype)
    dwn = np.empty((F, K), x.dtype)
    db = np.zeros(F, np.float64)
    direct = HH == 1 and WW == 1 and stride == 1 and pad == 0
    if direct:
        dx = np.empty_like(x)
        for n in range(N):
            d = dout[n].reshape(F, P)
            _sum_rows_into(d, db)
            np.dot(d, x[n].reshape(C, P).T, dwn)
            dw2 += dwn
            np.dot(w2t, d, dx[n].reshape(C, P))
    else:
        Wq = (W + 2 * pad + stride - 1) // stride
        xs = _split_pad(x, pad, stride, Wq)
        dxs = np.zeros(xs.shape, x.dtype)
        cols = np.empty((K, P), x.dtype)
        dcols = np.empty((K, P), x.dtype)
        for n in range(N):
            d = dout[n].reshape(F, P)
            _sum_rows_into(d, db)
            _im2col(xs[n], HH, WW, stride, Hout, Wout, cols)
            np.dot(d, cols.T, dwn)
            dw2 += dwn
            np.dot(w2t, d, dcols)
            _col2im_add(dcols, HH, WW, stride, Hout, Wout, dxs[n])
        dx = _merge_crop(dxs, pad, stride, H, W)
    return dx, dw2.reshape(w.shape), db.astype(x.dtype)


def warmup_tasks(dtypes=(np.float64, np.float32)) -> list[tuple[str, Callable[[], None]]]:
    """(name, zero-arg callable) pairs that compile (or load from cache) the convolution kernels for `dtypes`."""
    def task(dt):
        def run():
            x = np.ones((1, 2, 5, 5), dt)
            b = np.zeros(3, dt)
            for k, stride, pad in ((3, 1, 1), (3, 2, 0), (1, 1, 0)):
                w = np.ones((3, 2, k, k), dt)
                out = conv_forward(x, w, b, stride, pad)
                conv_backward(np.ones_like(out), x, w, stride, pad)
        return run
    return [(f"conv[{np.dtype(dt).name}]", task(dt)) for dt in dtypes]
