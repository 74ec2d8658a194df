"""2-D convolution kernels (NCHW input, (F, C, HH, WW) filters, any stride, zero padding): forward and backward.

Method: im2col + one BLAS GEMM per sample (the sample's column matrix stays in cache; grouping samples into one
larger GEMM measured slower). Output size (floor, as PyTorch): Hout = (H + 2*pad - HH) // stride + 1.

1. Pad and phase-split once: xs[c, r, q, u] = xpad[c, r, u*stride + q]. Window indices never go negative, and for any
   stride the im2col copy `xpad[c, oh*stride + i, ow*stride + j] for ow in 0..Wout` becomes the contiguous run
   xs[c, oh*stride + i, j % stride, j // stride : j // stride + Wout], which vectorises.
2. cols[(c*HH + i)*WW + j, oh*Wout + ow] = xpad[c, oh*stride + i, ow*stride + j], plus a last row of ones;
   out_n = [w2 | b] @ cols, w2 = w.reshape(F, C*HH*WW): the bias rides in the GEMM.
3. Backward: [dw | db] += dout_n @ cols^T (the ones row gives db),  dcols = w2^T @ dout_n,  col2im(dcols)
   accumulates into dxs. conv_forward_cols keeps every sample's columns (N, K + 1, P) so that conv_backward_cols
   skips the padding and im2col (about a fifth of fwd+bwd on small images); conv_backward rebuilds them per sample.

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
    if stride == 1:  # plain zero padding: contiguous row copies
        for n in range(N):
            for c in range(C):
                for i in range(H):
                    for u in range(W):
                        xs[n, c, i + pad, 0, u + pad] = x[n, c, i, u]
        return xs
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
    if stride == 1:
        for n in range(N):
            for c in range(C):
                for i in range(H):
                    for u in range(W):
                        dx[n, c, i, u] = dxs[n, c, i + pad, 0, u + pad]
        return dx
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
def _forward(x, w, b, stride, pad, keep):
    """The forward pass; with keep, every sample's column matrix is kept, cols (N, K, P), for the backward pass.
    Without it one (K, P) buffer is reused (cols (1, K, P)); 1x1 convolutions need no columns (cols (0, K, P))."""
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
        for n in range(N):
            o = out[n].reshape(F, P)
            np.dot(w2, x[n].reshape(C, P), o)
            for f in range(F):  # bias while this sample's output is still in cache
                bf = b[f]
                for p in range(P):
                    o[f, p] += bf
        return out, np.empty((0, K + 1, P), x.dtype)
    # The bias rides in the GEMM: a row of ones under the columns and b as an extra column of the filters.
    w2b = np.empty((F, K + 1), x.dtype)
    w2b[:, :K] = w2
    w2b[:, K] = b
    xs = _split_pad(x, pad, stride, (W + 2 * pad + stride - 1) // stride)
    cols = np.empty((N if keep else 1, K + 1, P), x.dtype)
    for n in range(N):
        c = cols[n if keep else 0]
        _im2col(xs[n], HH, WW, stride, Hout, Wout, c)
        if keep or n == 0:
            c[K, :] = 1.0
        np.dot(w2b, c, out[n].reshape(F, P))
    return out, cols


@njit(cache=True)
def conv_forward(x, w, b, stride, pad):
    """x: (N, C, H, W), w: (F, C, HH, WW), b: (F,) -> out (N, F, Hout, Wout)."""
    return _forward(x, w, b, stride, pad, False)[0]


@njit(cache=True)
def conv_forward_cols(x, w, b, stride, pad):
    """As conv_forward, also returning the column matrices cols (N, C*HH*WW + 1, Hout*Wout), ones in the last row,
    for conv_backward_cols (which then skips padding and im2col). They cost about HH*WW times x's memory:
    conv_forward_keep keeps them only when that is affordable."""
    return _forward(x, w, b, stride, pad, True)


# Columns kept from forward to backward at most this large: above glibc's largest mmap threshold (32 MB) every forward
# would map fresh pages and pay a page fault per 4 KB, which costs more than rebuilding the columns in backward.
KEEP_COLS_BYTES = 16 * 2 ** 20


def conv_forward_keep(x, w, b, stride, pad, max_bytes=KEEP_COLS_BYTES):
    """(out, cols) for conv_backward_cols: the forward's columns when they fit in `max_bytes`, else an empty array
    (backward then rebuilds them sample by sample)."""
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    P = ((H + 2 * pad - HH) // stride + 1) * ((W + 2 * pad - WW) // stride + 1)
    if N * (C * HH * WW + 1) * P * x.itemsize <= max_bytes:
        return conv_forward_cols(x, w, b, stride, pad)
    return conv_forward(x, w, b, stride, pad), np.empty((0, 0, 0), x.dtype)


@njit(cache=True)
def conv_backward(dout, x, w, stride, pad):
    """dout: (N, F, Hout, Wout), x and w as in the forward pass -> (dx, dw, db) with x's, w's and (F,) shapes."""
    return conv_backward_cols(dout, np.empty((0, 0, 0), x.dtype), x, w, stride, pad)


@njit(cache=True)
def conv_backward_cols(dout, cols, x, w, stride, pad):
    """conv_backward with the forward's columns `cols` (N, K + 1, P) from conv_forward_cols; any other cols (such as
    an empty array) means: rebuild each sample's columns here."""
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
        Hp = H + 2 * pad
        cached = cols.shape[0] == N and cols.shape[1] == K + 1 and cols.shape[2] == P
        if cached:
            xs = np.empty((0, C, Hp, stride, Wq), x.dtype)
            buf = np.empty((0, K + 1, P), x.dtype)
        else:
            xs = _split_pad(x, pad, stride, Wq)
            buf = np.empty((1, K + 1, P), x.dtype)
            buf[0, K, :] = 1.0
        # the ones row of the columns makes the last column of dw_b the bias gradient
        dwb = np.zeros((F, K + 1), x.dtype)
        dwn = np.empty((F, K + 1), x.dtype)
        dxs = np.zeros((N, C, Hp, stride, Wq), x.dtype)
        dcols = np.empty((K, P), x.dtype)
        for n in range(N):
            d = dout[n].reshape(F, P)
            if cached:
                c = cols[n]
            else:
                c = buf[0]
                _im2col(xs[n], HH, WW, stride, Hout, Wout, c)
            np.dot(d, c.T, dwn)
            dwb += dwn
            np.dot(w2t, d, dcols)
            _col2im_add(dcols, HH, WW, stride, Hout, Wout, dxs[n])
        dx = _merge_crop(dxs, pad, stride, H, W)
        return dx, np.ascontiguousarray(dwb[:, :K]).reshape(w.shape), dwb[:, K].copy()
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
                out, cols = conv_forward_cols(x, w, b, stride, pad)
                conv_backward_cols(np.ones_like(out), cols, x, w, stride, pad)
        return run
    return [(f"conv[{np.dtype(dt).name}]", task(dt)) for dt in dtypes]
