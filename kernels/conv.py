"""2-D convolution kernels (NCHW input, (F, C, HH, WW) filters, any stride, zero padding): forward and backward.

Method: im2col for a whole chunk of samples in Numba, then ONE numpy GEMM per chunk (a chunk is the whole batch unless
its columns would pass COLS_CHUNK_BYTES). Output size (floor, as PyTorch): Hout = (H + 2*pad - HH) // stride + 1.

1. cols[(c*HH + i)*WW + j, n*P + oh*Wout + ow] = xpad[n, c, oh*stride + i, ow*stride + j], P = Hout*Wout; the zero
   padding is never materialised (rows and runs of columns that fall in it are written as zeros).
2. res = w2 @ cols, w2 = w.reshape(F, K), K = C*HH*WW: res[f, n*P + p] is out[n, f, p] minus the bias; one Numba pass
   moves it into NCHW order and adds the bias.
3. Backward, with d[f, n*P + p] = dout[n, f, p] (the same pass also sums db):
   dw = d @ cols^T,  dcols = w2^T @ d,  col2im(dcols) accumulates into dx, skipping the padding.
   conv_forward_cols keeps the forward's columns for conv_backward_cols, which then skips the im2col.

Threading: the Numba passes are single-threaded and release the GIL (nogil=True), and the GEMMs are numpy's BLAS
(which also releases the GIL): so a worker thread runs beside the GUI, and there is one level of threading at a time,
BLAS's own, set by the environment (OPENBLAS_NUM_THREADS) or threadpoolctl. No kernel uses parallel=True.
Callers (simulator/functional/layers.py) validate shapes; these kernels assume C-contiguous arrays of one float dtype.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from numba import njit, uint64

# A chunk's column matrix stays under this size (unless one sample alone is larger): the GEMM then reads columns
# that the im2col has just written to cache, and big batches need no column matrix of the whole batch.
COLS_CHUNK_BYTES = 4 * 2 ** 20

# Columns kept from forward to backward at most this large: above glibc's largest mmap threshold (32 MB) every forward
# would map fresh pages and pay a page fault per 4 KB, which costs more than rebuilding the columns in backward.
KEEP_COLS_BYTES = 24 * 2 ** 20


@njit(cache=True, nogil=True)
def _valid_range(j, stride, pad, W, Wout):
    """[lo, hi): the ow with 0 <= ow*stride + j - pad < W (columns that read real input, not padding)."""
    lo = min(Wout, max(0, (pad - j + stride - 1) // stride))
    t = W - 1 + pad - j
    hi = min(Wout, t // stride + 1) if t >= 0 else 0
    return lo, max(lo, hi)


# The inner loops index flat views with unsigned (uint64) offsets: a signed index carries Numba's negative-index
# wrap-around, which keeps LLVM from vectorising the loop (about 3x slower copies).

@njit(cache=True, nogil=True)
def _im2col(x, HH, WW, stride, pad, Hout, Wout, n0, cols):
    """cols (K, m*P) <- the columns of samples n0 .. n0 + m - 1 of x (N, C, H, W). Only the entries that read real
    input are written: those that fall in the padding are the same for every chunk, and the caller allocates cols
    zeroed once (np.zeros) and reuses it for chunks of the same size."""
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    P = Hout * Wout
    m = cols.shape[1] // P
    xf = x.reshape(-1)
    cf = cols.reshape(-1)
    s = uint64(stride)
    for c in range(C):
        for i in range(HH):
            for j in range(WW):
                row = (c * HH + i) * WW + j
                lo, hi = _valid_range(j, stride, pad, W, Wout)
                if lo == hi:
                    continue
                for n in range(m):
                    plane = ((n0 + n) * C + c) * H * W
                    for oh in range(Hout):
                        r = oh * stride + i - pad
                        if r < 0 or r >= H:
                            continue
                        dst = uint64(row * m * P + n * P + oh * Wout + lo)
                        src = uint64(plane + r * W + lo * stride + j - pad)
                        if stride == 1:
                            for t in range(uint64(hi - lo)):
                                cf[dst + t] = xf[src + t]
                        else:
                            for t in range(uint64(hi - lo)):
                                cf[dst + t] = xf[src + t * s]


@njit(cache=True, nogil=True)
def _col2im_add(dcols, HH, WW, stride, pad, Hout, Wout, n0, dx):
    """dx[n0 .. n0 + m - 1] += col2im(dcols (K, m*P)): the adjoint of _im2col (padding positions are dropped)."""
    C, H, W = dx.shape[1], dx.shape[2], dx.shape[3]
    P = Hout * Wout
    m = dcols.shape[1] // P
    df = dcols.reshape(-1)
    xf = dx.reshape(-1)
    s = uint64(stride)
    for c in range(C):
        for i in range(HH):
            for j in range(WW):
                row = (c * HH + i) * WW + j
                lo, hi = _valid_range(j, stride, pad, W, Wout)
                if lo == hi:
                    continue
                for n in range(m):
                    plane = ((n0 + n) * C + c) * H * W
                    for oh in range(Hout):
                        r = oh * stride + i - pad
                        if r < 0 or r >= H:
                            continue
                        src = uint64(row * m * P + n * P + oh * Wout + lo)
                        dst = uint64(plane + r * W + lo * stride + j - pad)
                        if stride == 1:
                            for t in range(uint64(hi - lo)):
                                xf[dst + t] += df[src + t]
                        else:
                            for t in range(uint64(hi - lo)):
                                xf[dst + t * s] += df[src + t]


@njit(cache=True, nogil=True)
def _unfold_bias(res, b, out, n0):
    """out[n0 + n, f, p] = res[f, n*P + p] + b[f] for the m samples of res (F, m*P); out is (N, F, P)."""
    F, P = out.shape[1], out.shape[2]
    m = res.shape[1] // P
    rf = res.reshape(-1)
    of = out.reshape(-1)
    for n in range(m):
        for f in range(F):
            bf = b[f]
            src = uint64(f * m * P + n * P)
            dst = uint64(((n0 + n) * F + f) * P)
            for p in range(uint64(P)):
                of[dst + p] = rf[src + p] + bf


@njit(cache=True, nogil=True, fastmath={"reassoc"})  # reassoc: the db sums vectorise (summation order only)
def _fold_sum(dout, n0, d, db):
    """d[f, n*P + p] = dout[n0 + n, f, p] for the m samples of d (F, m*P); db[f] += their sum (float64)."""
    F, P = dout.shape[1], dout.shape[2]
    m = d.shape[1] // P
    gf = dout.reshape(-1)
    df = d.reshape(-1)
    for n in range(m):
        for f in range(F):
            src = uint64(((n0 + n) * F + f) * P)
            dst = uint64(f * m * P + n * P)
            t = 0.0
            for p in range(uint64(P)):
                v = gf[src + p]
                df[dst + p] = v
                t += v
            db[f] += t


def _geometry(x: np.ndarray, w: np.ndarray, stride: int, pad: int) -> tuple[int, int, int, int]:
    """(Hout, Wout, K, P)."""
    H, W = x.shape[2], x.shape[3]
    C, HH, WW = w.shape[1], w.shape[2], w.shape[3]
    Hout = (H + 2 * pad - HH) // stride + 1
    Wout = (W + 2 * pad - WW) // stride + 1
    return Hout, Wout, C * HH * WW, Hout * Wout


def _chunk(N: int, K: int, P: int, itemsize: int) -> int:
    """Samples per chunk: as many as keep a chunk's columns within COLS_CHUNK_BYTES, at least one."""
    return max(1, min(N, COLS_CHUNK_BYTES // max(1, K * P * itemsize)))


def _is_direct(w: np.ndarray, stride: int, pad: int) -> bool:
    """A 1x1 convolution without stride or padding: each sample's (C, H*W) plane already is its column matrix."""
    return w.shape[2] == 1 and w.shape[3] == 1 and stride == 1 and pad == 0


def _forward(x, w, b, stride, pad, keep):
    N, C = x.shape[0], x.shape[1]
    F, HH, WW = w.shape[0], w.shape[2], w.shape[3]
    Hout, Wout, K, P = _geometry(x, w, stride, pad)
    w2 = w.reshape(F, K)
    out = np.empty((N, F, P), x.dtype)
    m = N if keep else _chunk(N, K, P, x.itemsize)
    direct = _is_direct(w, stride, pad)
    cols = buf = res = None
    for n0 in range(0, N, m):
        mm = min(m, N - n0)
        if mm == 1:  # one sample: the GEMM writes straight into its output plane
            c = x[n0].reshape(C, P) if direct else None
            if c is None:
                if buf is None or buf.shape[1] != P:
                    buf = np.zeros((K, P), x.dtype)
                _im2col(x, HH, WW, stride, pad, Hout, Wout, n0, buf)
                c = buf
            o = out[n0]
            np.matmul(w2, c, out=o)
            o += b[:, None]
            cols = c
            continue
        if buf is None or buf.shape[1] != mm * P:
            buf = np.zeros((K, mm * P), x.dtype)  # see _im2col: zeros where the windows cover padding
            res = np.empty((F, mm * P), x.dtype)
        _im2col(x, HH, WW, stride, pad, Hout, Wout, n0, buf)
        np.matmul(w2, buf, out=res)
        _unfold_bias(res, b, out, n0)
        cols = buf
    return out.reshape(N, F, Hout, Wout), (cols if keep else None)


def conv_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int, pad: int) -> np.ndarray:
    """x: (N, C, H, W), w: (F, C, HH, WW), b: (F,) -> out (N, F, Hout, Wout)."""
    return _forward(x, w, b, stride, pad, False)[0]


def conv_forward_cols(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int, pad: int
                      ) -> tuple[np.ndarray, np.ndarray]:
    """As conv_forward, also returning the column matrix of the whole batch, cols (C*HH*WW, N*Hout*Wout), for
    conv_backward_cols (which then skips the im2col). It costs about HH*WW times x's memory: conv_forward_keep keeps
    it only when that is affordable."""
    return _forward(x, w, b, stride, pad, True)


def conv_forward_keep(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int, pad: int,
                      max_bytes: int = KEEP_COLS_BYTES) -> tuple[np.ndarray, np.ndarray]:
    """(out, cols) for conv_backward_cols: the forward's columns when they fit in `max_bytes`, else an empty array
    (backward then rebuilds them chunk by chunk)."""
    N = x.shape[0]
    _, _, K, P = _geometry(x, w, stride, pad)
    if N * K * P * x.itemsize <= max_bytes:
        return conv_forward_cols(x, w, b, stride, pad)
    return conv_forward(x, w, b, stride, pad), np.empty((0, 0), x.dtype)


def conv_backward(dout: np.ndarray, x: np.ndarray, w: np.ndarray, stride: int, pad: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dout: (N, F, Hout, Wout), x and w as in the forward pass -> (dx, dw, db) with x's, w's and (F,) shapes."""
    return conv_backward_cols(dout, np.empty((0, 0), x.dtype), x, w, stride, pad)


def conv_backward_cols(dout: np.ndarray, cols: np.ndarray, x: np.ndarray, w: np.ndarray, stride: int, pad: int
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """conv_backward with the forward's columns `cols` (K, N*P) from conv_forward_cols; any other cols (such as an
    empty array) means: rebuild the columns here, chunk by chunk."""
    N, C, H, W = x.shape
    F, HH, WW = w.shape[0], w.shape[2], w.shape[3]
    Hout, Wout, K, P = _geometry(x, w, stride, pad)
    dt = x.dtype
    w2 = w.reshape(F, K)
    d3 = dout.reshape(N, F, P)
    direct = _is_direct(w, stride, pad)
    cached = cols is not None and cols.ndim == 2 and cols.shape == (K, N * P) and cols.dtype == dt
    m = N if cached else _chunk(N, K, P, x.itemsize)
    db = np.zeros(F, np.float64)
    dw = None
    dx = np.empty_like(x) if direct else np.zeros_like(x)
    buf = d = dcols = None
    for n0 in range(0, N, m):
        mm = min(m, N - n0)
        if mm == 1:
            dn = d3[n0]
            db += dn.sum(axis=1, dtype=np.float64)
        else:
            if d is None or d.shape[1] != mm * P:
                d = np.empty((F, mm * P), dt)
            _fold_sum(d3, n0, d, db)
            dn = d
        if cached:
            c = cols
        elif direct and mm == 1:
            c = x[n0].reshape(C, P)
        else:
            if buf is None or buf.shape[1] != mm * P:
                buf = np.zeros((K, mm * P), dt)
            _im2col(x, HH, WW, stride, pad, Hout, Wout, n0, buf)
            c = buf
        g = dn @ c.T
        if dw is None:
            dw = g
        else:
            dw += g
        if direct and mm == 1:
            np.matmul(w2.T, dn, out=dx[n0].reshape(C, P))
            continue
        if dcols is None or dcols.shape[1] != mm * P:
            dcols = np.empty((K, mm * P), dt)
        np.matmul(w2.T, dn, out=dcols)
        if direct:  # the adjoint of the im2col copy is the copy back: no padding, nothing overlaps
            dx[n0:n0 + mm] = dcols.reshape(C, mm, P).transpose(1, 0, 2).reshape(mm, C, H, W)
        else:
            _col2im_add(dcols, HH, WW, stride, pad, Hout, Wout, n0, dx)
    return dx, dw.reshape(w.shape), db.astype(dt)


def warmup_tasks(dtypes=(np.float64, np.float32)) -> list[tuple[str, Callable[[], None]]]:
    """(name, zero-arg callable) pairs that compile (or load from cache) the convolution kernels for `dtypes`."""
    def task(dt):
        def run():
            x = np.ones((2, 2, 5, 5), dt)
            b = np.zeros(3, dt)
            w = np.ones((3, 2, 3, 3), dt)
            out, cols = conv_forward_cols(x, w, b, 2, 1)
            conv_backward_cols(np.ones_like(out), cols, x, w, 2, 1)
        return run
    return [(f"conv[{np.dtype(dt).name}]", task(dt)) for dt in dtypes]
