"""2-D convolution kernels (NCHW input, (F, C, HH, WW) filters, any stride, zero padding): forward and backward.

Two methods, both per chunk of samples:
- Direct (3x3 and 5x5 filters at stride 1 when C*HH*WW <= DIRECT_MAX_K, i.e. few input channels, where im2col would
  copy every input value HH*WW times for a GEMM with a short inner dimension): Numba loops over padded planes, see
  _direct3. Backward's dx is the same kernel on dout; dw is the im2col GEMM below.
- im2col + GEMM (everything else): im2col for a chunk of samples in Numba, then one numpy GEMM per chunk (a chunk's
  columns stay within COLS_CHUNK_BYTES, so they are still in cache for the GEMM).
  1. cols[(c*HH + i)*WW + j, n*P + oh*Wout + ow] = xpad[n, c, oh*stride + i, ow*stride + j], P = Hout*Wout; the zero
     padding is never materialised (entries that fall in it stay zero in buffers kept per geometry).
  2. res = w2 @ cols, w2 = w.reshape(F, K), K = C*HH*WW: res[f, n*P + p] is out[n, f, p] minus the bias; one Numba
     pass moves it into NCHW order and adds the bias.
  3. Backward, with d[f, n*P + p] = dout[n, f, p] (the same pass also sums db):
     dw = d @ cols^T,  dcols = w2^T @ d,  col2im(dcols) accumulates into dx, skipping the padding.
     conv_forward_cols keeps the forward's columns for conv_backward_cols, which then skips the im2col.
Output size (floor, as PyTorch): Hout = (H + 2*pad - HH) // stride + 1.

Threading, one level at a time: the chunks are shared by as many threads as BLAS was given (OPENBLAS_NUM_THREADS or
threadpoolctl; THREADS overrides), handed out one at a time, while BLAS is pinned to one thread (_Threads). The Numba
kernels release the GIL (nogil=True) and so does numpy's BLAS. Backward sums dw and db per group of chunks and adds
the groups' sums in order, so every thread count gives the same numbers. No kernel uses parallel=True. Scratch
buffers are per thread and reused across calls (fresh multi-MB arrays cost a page fault per 4 KB).
Callers (simulator/functional/layers.py) validate shapes; these kernels assume C-contiguous arrays of one float dtype.
"""
from __future__ import annotations

import contextlib
import itertools
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterator

import numpy as np
from numba import njit, uint64

# A chunk's column matrix stays under this size (unless one sample alone is larger): the GEMM then reads columns
# that the im2col has just written to cache, and big batches need no column matrix of the whole batch.
COLS_CHUNK_BYTES = 2 ** 20

# Columns kept from forward to backward at most this large: above glibc's largest mmap threshold (32 MB) every forward
# would map fresh pages and pay a page fault per 4 KB, which costs more than rebuilding the columns in backward.
KEEP_COLS_BYTES = 24 * 2 ** 20

# Backward sums dw in at most this many partial sums (groups of consecutive chunks, each one task for the threads).
MAX_PARTS = 16

# Threads per convolution: None = as many as BLAS was given (see _Threads); tests set it to force the threaded path.
# The app runs BLAS on one thread and gives the convolutions the cores through BACKPROP_CONV_THREADS (main.py).
THREADS: int | None = None
if os.environ.get("BACKPROP_CONV_THREADS", "").strip().isdigit():   # anything else: BLAS's count, as without it
    THREADS = max(1, int(os.environ["BACKPROP_CONV_THREADS"]))

# Below this many multiply-adds (about 1 ms of work) a convolution runs on one thread: waking a helper costs tens of
# microseconds, and on a busy machine the last chunk can wait for a helper that has lost its core (interleaved runs of
# (16, 3, 32, 32, 16, 3, 1, 1) and (32, 16, 16, 16, 32, 3, 2, 1), 7-9M multiply-adds, were 6-28% slower at 2 threads).
PARALLEL_MIN_MACS = 32_000_000

# OpenBLAS runs a GEMM of fewer multiply-adds than this on the calling thread whatever its thread count
# (SMP_THRESHOLD_MIN * GEMM_MULTITHREAD_THRESHOLD = 65536 * 4).
BLAS_SMALL_MACS = 262_144

# The direct 3x3 / 5x5 kernels run when the im2col GEMM's inner dimension C*HH*WW is at most this; above it the
# GEMM's register blocking wins (measured on (64, 64, 32, 32, 64, 3, 1, 1), K = 576: GEMM about 10% faster).
DIRECT_MAX_K = 160


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
def _im2col(x, HH, WW, stride, pad, Hout, Wout, n0, m, cols, c0):
    """cols[:, c0 : c0 + m*P] <- the columns of samples n0 .. n0 + m - 1 of x (N, C, H, W), P = Hout*Wout. Only the
    entries that read real input are written: those that fall in the padding are the same for every chunk of the
    same geometry, and the caller allocates cols zeroed (np.zeros, or _zeroed_workspace keyed by the geometry)."""
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    P = Hout * Wout
    ld = cols.shape[1]
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
                        dst = uint64(row * ld + c0 + n * P + oh * Wout + lo)
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


# Direct convolution for small 3x3 and 5x5 filters at stride 1 (few input channels: im2col would copy each input value
# HH*WW times for a GEMM with a short inner dimension). Each padded input plane is a flat array of row length
# Wp = W + 2*pad, so out[oh, ow] = sum_ij w[i, j] * xp[(oh + i)*Wp + ow + j] = ext[oh*Wp + ow] is one long loop over
# q = oh*Wp + ow that LLVM vectorises; the Wp - Wout columns of ext past each output row are computed and dropped.
# Backward: dx is the same kernel on dout with w flipped and transposed (C, F, HH, WW) at padding HH - 1 - pad; dw
# stays an im2col GEMM. (Measured slower, so not used: dw as dot products of dout with the shifted planes, and a
# direct kernel at stride 2 on the four even/odd phase planes.)

@njit(cache=True, nogil=True)
def _pad_planes(x, n, pad, xp):
    """xp (C, >= (H + 2*pad)*(W + 2*pad)) <- the zero-padded planes of sample n of x; the rest of each row is zero."""
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    Wp = W + 2 * pad
    zero = xp.dtype.type(0)
    for c in range(C):
        for t in range(uint64(xp.shape[1])):
            xp[c, t] = zero
        for r in range(H):
            dst = uint64((r + pad) * Wp + pad)
            src = uint64(r * W)
            plane = x[n, c].reshape(-1)
            for t in range(uint64(W)):
                xp[c, dst + t] = plane[src + t]


@njit(cache=True, nogil=True, fastmath={"contract"})  # contract: a*b + c as one FMA (rounding only)
def _direct3(x, w, b, pad, n0, n1, out, xp, ext):
    """out[n0:n1] = conv(x[n0:n1], w) + b for 3x3 filters at stride 1 (see _direct_ok)."""
    C, W = x.shape[1], x.shape[3]
    F, Hout, Wout = out.shape[1], out.shape[2], out.shape[3]
    Wp = W + 2 * pad
    L = uint64(Hout * Wp)
    o00 = uint64(0 * Wp + 0)
    o01 = uint64(0 * Wp + 1)
    o02 = uint64(0 * Wp + 2)
    o10 = uint64(1 * Wp + 0)
    o11 = uint64(1 * Wp + 1)
    o12 = uint64(1 * Wp + 2)
    o20 = uint64(2 * Wp + 0)
    o21 = uint64(2 * Wp + 1)
    o22 = uint64(2 * Wp + 2)
    for n in range(n0, n1):
        _pad_planes(x, n, pad, xp)
        for f in range(F):
            bf = b[f]
            for q in range(L):
                ext[q] = bf
            for c in range(C):
                a = xp[c]
                u00, u01, u02 = w[f, c, 0, 0], w[f, c, 0, 1], w[f, c, 0, 2]
                u10, u11, u12 = w[f, c, 1, 0], w[f, c, 1, 1], w[f, c, 1, 2]
                u20, u21, u22 = w[f, c, 2, 0], w[f, c, 2, 1], w[f, c, 2, 2]
                for q in range(L):
                    ext[q] += (u00 * a[q + o00] + u01 * a[q + o01] + u02 * a[q + o02] + u10 * a[q + o10]
                               + u11 * a[q + o11] + u12 * a[q + o12] + u20 * a[q + o20] + u21 * a[q + o21]
                               + u22 * a[q + o22])
            for oh in range(Hout):
                src = uint64(oh * Wp)
                for ow in range(uint64(Wout)):
                    out[n, f, oh, ow] = ext[src + ow]


@njit(cache=True, nogil=True, fastmath={"contract"})  # contract: a*b + c as one FMA (rounding only)
def _direct5(x, w, b, pad, n0, n1, out, xp, ext):
    """out[n0:n1] = conv(x[n0:n1], w) + b for 5x5 filters at stride 1 (see _direct_ok)."""
    C, W = x.shape[1], x.shape[3]
    F, Hout, Wout = out.shape[1], out.shape[2], out.shape[3]
    Wp = W + 2 * pad
    L = uint64(Hout * Wp)
    o00 = uint64(0 * Wp + 0)
    o01 = uint64(0 * Wp + 1)
    o02 = uint64(0 * Wp + 2)
    o03 = uint64(0 * Wp + 3)
    o04 = uint64(0 * Wp + 4)
    o10 = uint64(1 * Wp + 0)
    o11 = uint64(1 * Wp + 1)
    o12 = uint64(1 * Wp + 2)
    o13 = uint64(1 * Wp + 3)
    o14 = uint64(1 * Wp + 4)
    o20 = uint64(2 * Wp + 0)
    o21 = uint64(2 * Wp + 1)
    o22 = uint64(2 * Wp + 2)
    o23 = uint64(2 * Wp + 3)
    o24 = uint64(2 * Wp + 4)
    o30 = uint64(3 * Wp + 0)
    o31 = uint64(3 * Wp + 1)
    o32 = uint64(3 * Wp + 2)
    o33 = uint64(3 * Wp + 3)
    o34 = uint64(3 * Wp + 4)
    o40 = uint64(4 * Wp + 0)
    o41 = uint64(4 * Wp + 1)
    o42 = uint64(4 * Wp + 2)
    o43 = uint64(4 * Wp + 3)
    o44 = uint64(4 * Wp + 4)
    for n in range(n0, n1):
        _pad_planes(x, n, pad, xp)
        for f in range(F):
            bf = b[f]
            for q in range(L):
                ext[q] = bf
            for c in range(C):
                a = xp[c]
                u00, u01, u02, u03, u04 = w[f, c, 0, 0], w[f, c, 0, 1], w[f, c, 0, 2], w[f, c, 0, 3], w[f, c, 0, 4]
                u10, u11, u12, u13, u14 = w[f, c, 1, 0], w[f, c, 1, 1], w[f, c, 1, 2], w[f, c, 1, 3], w[f, c, 1, 4]
                u20, u21, u22, u23, u24 = w[f, c, 2, 0], w[f, c, 2, 1], w[f, c, 2, 2], w[f, c, 2, 3], w[f, c, 2, 4]
                u30, u31, u32, u33, u34 = w[f, c, 3, 0], w[f, c, 3, 1], w[f, c, 3, 2], w[f, c, 3, 3], w[f, c, 3, 4]
                u40, u41, u42, u43, u44 = w[f, c, 4, 0], w[f, c, 4, 1], w[f, c, 4, 2], w[f, c, 4, 3], w[f, c, 4, 4]
                for q in range(L):
                    ext[q] += (u00 * a[q + o00] + u01 * a[q + o01] + u02 * a[q + o02] + u03 * a[q + o03]
                               + u04 * a[q + o04] + u10 * a[q + o10] + u11 * a[q + o11] + u12 * a[q + o12]
                               + u13 * a[q + o13] + u14 * a[q + o14] + u20 * a[q + o20] + u21 * a[q + o21]
                               + u22 * a[q + o22] + u23 * a[q + o23] + u24 * a[q + o24] + u30 * a[q + o30]
                               + u31 * a[q + o31] + u32 * a[q + o32] + u33 * a[q + o33] + u34 * a[q + o34]
                               + u40 * a[q + o40] + u41 * a[q + o41] + u42 * a[q + o42] + u43 * a[q + o43]
                               + u44 * a[q + o44])
            for oh in range(Hout):
                src = uint64(oh * Wp)
                for ow in range(uint64(Wout)):
                    out[n, f, oh, ow] = ext[src + ow]


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
    """Samples per chunk: as many as keep a chunk's columns within COLS_CHUNK_BYTES, at least one. It depends on the
    shapes only (never on the thread count), so every thread count sums the same partial results in the same order."""
    m = max(1, min(N, COLS_CHUNK_BYTES // max(1, K * P * itemsize)))
    return -(-N // -(-N // m))  # the same number of chunks, of nearly equal sizes


# ------------------------------------------------------------------------------------------------ workspace, threads

_local = threading.local()


def _workspace(name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
    """A per-thread scratch array of `shape` (contents undefined), reused from call to call: fresh arrays of a few MB
    would cost a page fault per 4 KB on every call. Buffers above COLS_CHUNK_BYTES * 4 are not kept."""
    size = math.prod(shape)
    bufs = _local.__dict__.setdefault("bufs", {})
    key = (name, np.dtype(dtype).char)
    buf = bufs.get(key)
    if buf is None or buf.size < size:
        buf = np.empty(size, dtype)
        if size * buf.itemsize <= 4 * COLS_CHUNK_BYTES:
            bufs[key] = buf
    return buf[:size].reshape(shape)


def _zeroed_workspace(name: str, shape: tuple[int, int], dtype, geometry: tuple) -> np.ndarray:
    """A per-thread column buffer for _im2col, zeroed when created and reused only for the same `geometry` (the same
    entries are padding every time, so they stay zero). At most 8 geometries are kept per thread."""
    bufs = _local.__dict__.setdefault("zeroed", {})
    key = (name, np.dtype(dtype).char, shape, geometry)
    buf = bufs.get(key)
    if buf is None:
        buf = np.zeros(shape, dtype)
        if buf.nbytes <= 4 * COLS_CHUNK_BYTES:
            if len(bufs) >= 8:
                bufs.pop(next(iter(bufs)))
            bufs[key] = buf
    return buf


class _Threads:
    """How many threads a convolution uses, and BLAS pinned to one thread while it runs.

    One level of threading at a time: the count BLAS was given (OPENBLAS_NUM_THREADS, threadpoolctl) is the count of
    threads that share a convolution's chunks of samples, and each runs its GEMMs on single-threaded BLAS. Chunks are
    handed out one at a time, so a thread that gets no core on a busy machine just takes fewer of them (BLAS's own
    threads wait for each other inside every GEMM, which is what made 2 threads 10x slower than 1 under load)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.libs: list | None = None
        self.active = 0
        self.saved: list[tuple[object, int]] = []
        self.budget = 1
        self.pool: ThreadPoolExecutor | None = None
        self.pool_size = 0

    def _blas(self) -> list:
        if self.libs is None:
            try:
                from threadpoolctl import ThreadpoolController
                self.libs = list(ThreadpoolController().select(user_api="blas").lib_controllers)
            except Exception:  # noqa: BLE001  threadpoolctl missing or failing: BLAS keeps its threads, ours stay 1
                self.libs = []
        return self.libs

    @contextlib.contextmanager
    def pinned(self) -> Iterator[int]:
        """Pin BLAS to one thread for the block (nested and concurrent blocks share one pin); yields the thread count
        the convolution may use: THREADS if set, else BLAS's own count before the pin."""
        with self.lock:
            if self.active == 0:
                self.saved = [(lib, lib.get_num_threads()) for lib in self._blas()]
                self.budget = max([n for _, n in self.saved] + [1])
                for lib, n in self.saved:
                    if n > 1:
                        lib.set_num_threads(1)
            self.active += 1
            budget = THREADS or self.budget
        try:
            yield max(1, budget)
        finally:
            with self.lock:
                self.active -= 1
                if self.active == 0:
                    for lib, n in self.saved:
                        if n > 1:
                            lib.set_num_threads(n)
                    self.saved = []

    def run(self, nchunks: int, work: Callable[[int], None], threads: int) -> None:
        """work(i) for i in range(nchunks), on up to `threads` threads (this one included), chunks handed out in
        order one at a time."""
        threads = min(threads, nchunks)
        if threads <= 1:
            for i in range(nchunks):
                work(i)
            return
        with self.lock:
            if self.pool is None or self.pool_size < threads - 1:
                # a bigger pool replaces the old one, which is not shut down: a concurrent call may still submit to it
                # (its idle threads end when it is garbage-collected)
                self.pool = ThreadPoolExecutor(threads - 1, thread_name_prefix="conv")
                self.pool_size = threads - 1
            pool = self.pool
        counter = itertools.count()  # next() is atomic under the GIL
        failed: list[BaseException] = []

        def loop() -> None:
            for i in counter:
                if i >= nchunks or failed:
                    return
                try:
                    work(i)
                except BaseException as exc:  # noqa: BLE001  re-raised in the calling thread below
                    failed.append(exc)
                    return
        helpers = [pool.submit(loop) for _ in range(threads - 1)]
        loop()
        for h in helpers:
            if not h.cancel():  # a helper that has not started (its thread busy elsewhere) is not waited for
                h.result()
        if failed:
            raise failed[0]

    def run_pinned(self, nchunks: int, work: Callable[[int], None], macs: int) -> None:
        """run() for a convolution of `macs` multiply-adds: inline below BLAS_SMALL_MACS (BLAS runs such GEMMs on one
        thread anyway, and the pin would cost more than the work), on one thread below PARALLEL_MIN_MACS (waking a
        helper costs tens of microseconds), else on as many threads as pinned() allows."""
        if macs < BLAS_SMALL_MACS:
            for i in range(nchunks):
                work(i)
            return
        with self.pinned() as budget:
            self.run(nchunks, work, budget if macs >= PARALLEL_MIN_MACS else 1)


_threads = _Threads()


# ------------------------------------------------------------------------------------------------ forward, backward

_DIRECT = {(3, 1): _direct3, (5, 1): _direct5}  # (filter size, stride): kernel


def _direct_ok(w: np.ndarray, stride: int, pad: int) -> bool:
    """The forward pass runs a direct kernel: square filters of a size and stride in _DIRECT, and a short im2col inner
    dimension C*HH*WW."""
    _, C, HH, WW = w.shape
    return HH == WW and (HH, stride) in _DIRECT and C * HH * WW <= DIRECT_MAX_K


def _direct_dx_ok(w: np.ndarray, stride: int, pad: int) -> bool:
    """Backward's dx runs the direct kernel too: dx is the stride-1 convolution of dout with w flipped and transposed
    at padding HH - 1 - pad, which needs stride 1 and pad <= HH - 1."""
    return stride == 1 and pad <= w.shape[2] - 1 and _direct_ok(w, stride, pad)


def _direct_run(x, w, b, stride, pad, out, n0, n1):
    """out[n0:n1] = the direct convolution of x[n0:n1] (a geometry that _direct_ok accepts)."""
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    k = w.shape[2]
    Wp = W + 2 * pad
    xp = _workspace("xp", (C, (H + 2 * pad) * Wp + k), x.dtype)
    ext = _workspace("ext", (out.shape[2] * Wp,), x.dtype)
    _DIRECT[k, stride](x, w, b, pad, n0, n1, out, xp, ext)


def _forward(x, w, b, stride, pad, keep):
    N = x.shape[0]
    F, HH, WW = w.shape[0], w.shape[2], w.shape[3]
    Hout, Wout, K, P = _geometry(x, w, stride, pad)
    dt = x.dtype
    w2 = w.reshape(F, K)
    direct = not keep and _direct_ok(w, stride, pad)
    if direct and N * F * K * P < BLAS_SMALL_MACS:  # small: one call, none of the chunking's Python overhead
        out4 = np.empty((N, F, Hout, Wout), dt)
        _direct_run(x, w, b, stride, pad, out4, 0, N)
        return out4, None
    # a direct chunk's output does not depend on the chunking: eight chunks, so that threads can share them
    m = -(-N // 8) if direct else _chunk(N, K, P, x.itemsize)
    nchunks = -(-N // m)
    cols = np.zeros((K, N * P), dt) if keep else None
    geometry = (x.shape[1:], w.shape[1:], stride, pad)
    out = np.empty((N, F, P), dt)
    out4 = out.reshape(N, F, Hout, Wout)

    def work(i: int) -> None:
        n0 = i * m
        mm = min(m, N - n0)
        if direct:
            _direct_run(x, w, b, stride, pad, out4, n0, n0 + mm)
            return
        if keep:
            _im2col(x, HH, WW, stride, pad, Hout, Wout, n0, mm, cols, n0 * P)
            c = cols[:, n0 * P:(n0 + mm) * P]
        else:
            c = _zeroed_workspace("cols", (K, mm * P), dt, geometry)
            _im2col(x, HH, WW, stride, pad, Hout, Wout, n0, mm, c, 0)
        if mm == 1:  # one sample: the GEMM writes straight into its output plane
            o = out[n0]
            np.matmul(w2, c, out=o)
            o += b[:, None]
            return
        res = _workspace("res", (F, mm * P), dt)
        np.matmul(w2, c, out=res)
        _unfold_bias(res, b, out, n0)

    _threads.run_pinned(nchunks, work, N * F * K * P)
    return out4, cols


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
                      max_bytes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(out, cols) for conv_backward_cols: the forward's columns when they fit in `max_bytes` (default
    KEEP_COLS_BYTES), else an empty array (backward then rebuilds them chunk by chunk, in cache)."""
    N = x.shape[0]
    _, _, K, P = _geometry(x, w, stride, pad)
    if _direct_ok(w, stride, pad):  # no columns in the forward pass: backward builds them for dw, chunk by chunk
        max_bytes = -1
    if N * K * P * x.itemsize <= (KEEP_COLS_BYTES if max_bytes is None else max_bytes):
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
    N = x.shape[0]
    F, HH, WW = w.shape[0], w.shape[2], w.shape[3]
    Hout, Wout, K, P = _geometry(x, w, stride, pad)
    dt = x.dtype
    w2t = w.reshape(F, K).T
    dout = np.ascontiguousarray(dout)
    d3 = dout.reshape(N, F, P)
    cached = cols is not None and cols.ndim == 2 and cols.shape == (K, N * P) and cols.dtype == dt
    m = _chunk(N, K, P, x.itemsize)
    nchunks = -(-N // m)
    # The chunks form up to MAX_PARTS groups of consecutive chunks, one group per task; each group sums its dw and db
    # in chunk order, and the groups' sums are added in group order below: the same numbers whichever thread ran which
    # group, with memory for at most MAX_PARTS partial dw.
    nparts = min(nchunks, MAX_PARTS)
    dw_parts = np.empty((nparts, F, K), dt)
    db_parts = np.zeros((nparts, F), np.float64)
    geometry = (x.shape[1:], w.shape[1:], stride, pad)
    direct = _direct_dx_ok(w, stride, pad)
    if direct:  # dx = conv(dout, w flipped in space and transposed to (C, F, HH, WW)), padding HH - 1 - pad
        dx = np.empty_like(x)
        w_t = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
        zeros = np.zeros(x.shape[1], dt)
    else:
        dx = np.zeros_like(x)

    def chunk(i: int, dw_part: np.ndarray, db_part: np.ndarray, first: bool) -> None:
        n0 = i * m
        mm = min(m, N - n0)
        if mm == 1:  # one sample: its dout plane already is d
            d = d3[n0]
            db_part += d.sum(axis=1, dtype=np.float64)
        else:
            d = _workspace("d", (F, mm * P), dt)
            _fold_sum(d3, n0, d, db_part)
        if cached:
            c = cols[:, n0 * P:(n0 + mm) * P]
        else:
            c = _zeroed_workspace("cols", (K, mm * P), dt, geometry)
            _im2col(x, HH, WW, stride, pad, Hout, Wout, n0, mm, c, 0)
        if first:
            np.matmul(d, c.T, out=dw_part)
        else:
            g = _workspace("dw", (F, K), dt)
            np.matmul(d, c.T, out=g)
            dw_part += g
        if direct:
            _direct_run(dout, w_t, zeros, 1, HH - 1 - pad, dx, n0, n0 + mm)
            return
        dcols = _workspace("dcols", (K, mm * P), dt)
        np.matmul(w2t, d, out=dcols)
        _col2im_add(dcols, HH, WW, stride, pad, Hout, Wout, n0, dx)

    def work(part: int) -> None:
        for i in range(part * nchunks // nparts, (part + 1) * nchunks // nparts):
            chunk(i, dw_parts[part], db_parts[part], i == part * nchunks // nparts)

    _threads.run_pinned(nparts, work, N * F * K * P)
    dw = dw_parts[0]
    db = db_parts[0]
    for i in range(1, nparts):
        dw += dw_parts[i]
        db += db_parts[i]
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
            conv_backward(np.ones_like(out), x, w, 2, 1)
            for k, stride in _DIRECT:  # the direct kernels, forward and (at stride 1) backward's dx
                wk = np.ones((3, 2, k, k), dt)
                conv_backward(np.ones_like(conv_forward(x, wk, b, stride, k // 2)), x, wk, stride, k // 2)
        return run
    return [(f"conv[{np.dtype(dt).name}]", task(dt)) for dt in dtypes]
