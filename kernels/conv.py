"""2-D convolution kernels (NCHW input, (F, C, HH, WW) filters, any stride, zero padding): forward and backward.

Three methods, all per chunk of samples:
- Direct (square 3x3 and 5x5 filters at stride 1 or 2): Numba loops over the padded input planes laid out so that
  every tap reads consecutive outputs' inputs, see _planes and _direct; no im2col copies, no GEMM. Backward is direct
  too (conv_forward_keep keeps no columns): dw is _direct_dw; dx at stride 1 is the forward kernel on dout, at
  stride 2 _direct_dx2 (four phase planes). At stride 1 with pad > HH - 1 backward runs on the im2col GEMMs below,
  and the forward pass that feeds it (conv_forward_keep) as well, keeping its columns.
- Winograd F(2x2, 3x3) (kernels/winograd.py) in place of the direct forward, and of backward's dx at stride 1, for
  float32 3x3 filters at stride 1 with at least WINOGRAD_MIN_CHANNELS input channels and filters (_winograd_ok).
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
threadpoolctl; THREADS overrides), handed out one at a time, while BLAS is pinned to one thread (_Threads; the direct
kernels call no BLAS). The Numba kernels release the GIL (nogil=True) and so does numpy's BLAS. Backward sums dw and
db per group of chunks (groups that depend on the shapes only) and adds the groups' sums in order, and a direct
forward output does not depend on the chunking, so every thread count gives the same numbers. No kernel uses
parallel=True. Scratch buffers are per thread and reused across calls (fresh multi-MB arrays cost a page fault per
4 KB).
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
from llvmlite import ir
from numba import njit, types, uint64
from numba.core import cgutils, config
from numba.extending import intrinsic

from kernels import winograd as _wino
from kernels.regblock import TAP_G, TAP_R, _tap_block, _vector_ir

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

# The direct kernels' passes cover about this many outputs (several samples per pass when the planes are small): long
# enough for the loop's setup, short enough for dw's dout rows and dx2's accumulator rows to stay in the L1 cache.
DIRECT_L = 1152

# Elements past a direct kernel's planes (zeros, never written): a forward block of the last sample reads up to one
# block past its rows, a weight-gradient block up to one vector; at stride 2 (where a sample's rows end its planes)
# and for small planes that is past the planes (at most 23 of these elements in float32, measured over 4,344
# geometries).
TAP_SLACK = 64

# float32 3x3 convolutions at stride 1 with at least this many input channels and filters run Winograd F(2x2, 3x3)
# (kernels/winograd.py): the forward pass and, in backward, dx (a convolution of dout with F channels and C filters).
# Measured against the direct kernels (one thread, interleaved): 64 channels 1.3-1.8x faster, 32 channels 1.15-1.2x,
# 16 channels 0.9-0.96x, 3-8 channels 0.6-0.7x.
WINOGRAD_MIN_CHANNELS = 32
# A Winograd block's transformed inputs (16 planes of C * Tp floats) stay within this size, in the L2 cache.
WINOGRAD_BLOCK_BYTES = 320 * 1024

# The direct backward splits a batch into groups of samples of about this many multiply-adds (dx and dw), one task
# each (at most MAX_PARTS): 1-2 ms of work, so that the Python calls per group cost little.
DIRECT_PART_MACS = 32_000_000


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


# Direct convolution for 3x3 and 5x5 filters at stride 1 or 2, without im2col's copies. The padded input planes of m
# samples (M at most per call, see _direct_geometry) are laid out flat so that every output is
#   out[n, f, oh, ow] = sum_ci sum_j w[f, c, i, j] * xp[taps[c, i, j] + q],   q = (s*Hs + oh)*Ws + ow  (sample n0 + s),
# the rows and columns of q past each sample's Hout x Wout computed and dropped. Stride 1: one plane per channel, rows
# of stride Ws = max(W + pad, Wout) (a row of input after `pad` zeros, which are also the right padding of the row
# before) and Hs = max(H + pad, Hout) rows per sample (the same sharing between samples), taps[c, i, j] = c*PS + i*Ws
# + j. Stride 2: 2k planes per channel, one per column tap j and row phase a, plane (c, j, a)[r, ow] = xpad[2r + a,
# 2*ow + j], exactly Wout wide (Ws = Wout) and Hs = Hout + (k-1)//2 rows per sample; the tap (i, j) reads plane
# (c, j, i % 2) i // 2 rows down: taps[c, i, j] = ((c*k + j)*2 + i%2)*PS + (i//2)*Ws. A sample's rows past Hout are
# not computed, and at stride 2 its outputs are one run of q. The planes cost 1.5x (3x3) the copying of the input.
# Forward (_direct): a register block (_tap_block) holds TAP_R vectors of V lanes for TAP_G = 4 filters, 12
# accumulators that stay in registers over all C*k*k taps; per tap it loads TAP_R input vectors and broadcasts 4
# weights, for 12 fused multiply-adds. It then writes its lanes straight into `out`: a vector whose lanes are
# consecutive outputs whole, else lane by lane (a row's end, a sample's last rows). A block's vectors need not be
# neighbours: each has its own offset, so the outputs are cut into vectors either row by row (no lane spent on the
# columns past Wout: 5x5 filters on 32-wide rows, 12% faster than runs of q, where 2 of every 34 positions were
# dropped) or along each sample's run of q, whichever makes fewer vectors, and the blocks run on across the samples of
# a pass (stride 2's 8 rows of 8 outputs no longer fill 3 blocks with a wasted vector: 4-5% faster). One group of 4
# filters runs over all blocks of a pass before the next group, so the output is written as 4 sequential streams per
# sample. Past the last filter a group repeats filter F - 1. Measured on (64,3,32,32) with 32 5x5 filters: 1.2-1.3x
# the kernel it replaced (one pass per filter row (c, i) for 2 filters, accumulator rows loaded and stored at every
# pass: 10 multiply-adds per 7 loads and 2 stores, then a copy of the rows into `out`: 20% of its time), the stride-2
# 3x3 1.2x, the other 3x3 shapes the same; one kernel for both sizes and strides (the conv group's cold compile: 24-27
# s, was 30 s). The blocks in q order with all filter groups per block and an accumulator buffer copied out afterwards
# were 5-20% slower on the 5x5 and stride-2 shapes (the copy costs what writing the output costs) and 5% faster on 64
# channels; in q order with direct stores (32 output streams at once), 20% slower on the 5x5. In a plain Numba loop
# LLVM keeps no vector in a register from one tap to the next: hence the intrinsic.
# Backward: dw[f, c, i, j] = sum_q dout[f, q] * xp[taps[c, i, j] + q] is _direct_dw (both strides): register blocks
# (_dw_block) of 4 filters x 3 taps, 12 vectors of partial sums kept in registers over the whole q loop of dout's rows
# laid out like q (zeros in the dropped rows and columns), 7 loads per 12 multiply-adds; 1.06-1.18x the two kernels
# it replaced (3 filters x 3 taps for 3x3, 2 x 5 for 5x5, plain Numba loops). dx at stride 1 is the same kernel as
# the forward on dout with w flipped and transposed (C, F, HH, WW) at padding HH - 1 - pad; at stride 2 it is
# _direct_dx2 (below).

@njit(cache=True, nogil=True)
def _planes(x, n, m, M, stride, pad, Hs, Ws, xp):
    """The input values of samples n .. n + m - 1 of x into xp, in the direct kernels' layout at stride 1 (see above),
    room for M; at stride 2 the caller has run _planes2 already. The other entries of xp are zeros that stay zero (xp
    is allocated zeroed, and used for one geometry only); when m < M, the places of the missing samples are zeroed
    (the taps past the last sample read into them, for outputs that are dropped, and dw multiplies those by zeros:
    stale inf or nan must not be there; _planes2 does the same at stride 2). No integer division in the loops (about
    40 cycles each)."""
    if stride != 1:
        return
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    PS = (xp.shape[0] - TAP_SLACK) // C  # floats per plane
    if m < M:
        zero = xp.dtype.type(0)
        for c in range(C):
            for t in range(uint64(c * PS + m * Hs * Ws), uint64((c + 1) * PS)):
                xp[t] = zero
    for s in range(m):
        for c in range(C):
            plane = x[n + s, c].reshape(-1)
            for y in range(H):
                row = uint64(c * PS + (s * Hs + y + pad) * Ws + pad)  # after pad zero rows and columns
                src = uint64(y * W)
                for t in range(uint64(W)):
                    xp[row + t] = plane[src + t]


@njit(cache=True, nogil=True)
def _column(src, dst, i, o, n, si, so):
    """dst[o + t*so] = src[i + t*si] for t < n."""
    for _ in range(n):
        dst[o] = src[i]
        i += si
        o += so


@njit(cache=True, nogil=True)
def _planes2(x, n, m, k, stride, pad, Hs, Ws, xp):
    """The stride-2 layout (stride == 2) for k x k filters (see above) of samples n .. n + m - 1 of x into xp: plane
    (c, j, a) holds xpad[2r + a, 2*ow + j] at row r, column ow. The last two column taps are gathered from x's rows in
    one loop (both where both are inside the input, the odd column at each end alone); each other tap's plane is the
    plane two taps to its right moved one column on (one long copy), its column 0 read afresh. The rows of one phase
    are written one after the other (about 2x faster than in the input's order). The entries in the padding are
    zeros that stay zero (xp zeroed, one geometry); in a short group (m < M) the places of the missing samples are
    zeroed (dw's last whole vector reads up to V - 1 positions past sample m - 1, times zeros: stale inf or nan must
    not be there). Called from Python before the
    kernel on each group of samples: inside the kernels it would be compiled into each of them (seconds apiece), and
    written with one plain loop per tap instead it made the forward about 25% slower."""
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    P2 = 2 * k
    PS = (xp.shape[0] - TAP_SLACK) // (C * P2)
    two = uint64(2 * PS)
    ja = k - 2
    lo_a, hi_a = _valid_range(ja, stride, pad, W, Ws)
    lo_b, hi_b = _valid_range(ja + 1, stride, pad, W, Ws)
    lo, hi = max(lo_a, lo_b), min(hi_a, hi_b)
    xf = x.reshape(-1)
    for s in range(m):
        for c in range(C):
            for a in range(2):
                y0 = (a + pad) % 2  # the first input row of phase a, row r0 of its planes
                r0 = (y0 + pad - a) // 2
                nr = min((H - y0 + 1) // 2, Hs - r0)
                # x's column 2*ow + ja - pad at column ow of plane (ja, a); plane (ja + 1, a) at + two
                src0 = ((n + s) * C + c) * H * W + y0 * W + ja - pad
                base0 = (c * P2 + ja * 2 + a) * PS + (s * Hs + r0) * Ws
                src = uint64(src0 + 2 * lo)
                d = uint64(base0 + lo)
                for r in range(nr):
                    for t in range(uint64(max(0, hi - lo))):
                        xp[d + t] = xf[src + t + t]
                        xp[d + two + t] = xf[src + t + t + uint64(1)]
                    src += uint64(2 * W)
                    d += uint64(Ws)
                # the columns where only one of the two taps reads input (at most one at each end)
                if lo_a < lo:
                    _column(xf, xp, src0 + 2 * lo_a, base0 + lo_a, nr, 2 * W, Ws)
                if lo_b < lo:
                    _column(xf, xp, src0 + 2 * lo_b + 1, base0 + lo_b + 2 * PS, nr, 2 * W, Ws)
                if max(hi, lo_a) < hi_a:
                    _column(xf, xp, src0 + 2 * hi_a - 2, base0 + hi_a - 1, nr, 2 * W, Ws)
                if max(hi, lo_b) < hi_b:
                    _column(xf, xp, src0 + 2 * hi_b - 1, base0 + hi_b - 1 + 2 * PS, nr, 2 * W, Ws)
    zero = xp.dtype.type(0)
    span = uint64(m * Hs * Ws)
    for c in range(C):
        for j in range(k - 3, -1, -1):
            x0 = j - pad  # x's column at column 0 of tap j
            inside = 0 <= x0 < W
            for a in range(2):
                dst = uint64((c * P2 + j * 2 + a) * PS)
                src = dst + two + two - uint64(1)
                for u in range(uint64(1), span):
                    xp[dst + u] = xp[src + u]
                for s in range(m):
                    for r in range(Hs):
                        y = 2 * r + a - pad
                        xp[dst + uint64((s * Hs + r) * Ws)] = x[n + s, c, y, x0] if inside and 0 <= y < H else zero
    if m * Hs * Ws < PS:  # a short group: the places of the missing samples zeroed, as in _planes
        for p in range(C * P2):
            for t in range(uint64(p * PS) + span, uint64((p + 1) * PS)):
                xp[t] = zero


@njit(cache=True, nogil=True, fastmath={"reassoc"})  # reassoc: the db sums vectorise (summation order only)
def _rows_in(dout, n, m, Hs, Ws, ds, db):
    """ds[f] <- dout[n .. n + m - 1, f] laid out like q (see above; the other entries are zeros that stay zero, as
    in _planes); db[f] += their sum (float64)."""
    F, Hout, Wout = dout.shape[1], dout.shape[2], dout.shape[3]
    for f in range(F):
        row = ds[f]
        t = 0.0
        for s in range(m):
            plane = dout[n + s, f].reshape(-1)
            if Ws == Wout:  # one run (stride 2)
                dst = uint64(s * Hs * Ws)
                for p in range(uint64(Hout * Wout)):
                    row[dst + p] = plane[p]
            else:
                for oh in range(Hout):
                    src = uint64(oh * Wout)
                    dst = uint64((s * Hs + oh) * Ws)
                    for ow in range(uint64(Wout)):
                        row[dst + ow] = plane[src + ow]
            for p in range(uint64(Hout * Wout)):
                t += plane[p]
        db[f] += t


@njit(cache=True, nogil=True)
def _direct(x, w, b, stride, pad, n0, n1, out, xp, taps, M, Hs, Ws):
    """out[n0:n1] = conv(x[n0:n1], w) + b for k x k filters (see _planes), w (F, C*k*k) and out C-contiguous, taps
    (C, k, k). The outputs of a group of m samples are cut into vectors of V lanes, and _tap_block runs on TAP_R of
    them at a time, in order across the group's samples, for each group of TAP_G filters: vofs[i] is vector i's offset
    in the planes (the q of its first lane), lanes[i * V + v] the place of its lane v in the output counted from the
    group's first sample's plane 0 (-1 for a lane to drop), full[i] whether its lanes are V consecutive outputs. Two
    ways to cut, whichever gives fewer vectors (rows first on a tie): each output row into vectors of its own (a
    row's last vector may hang past its end: 5x5 filters on 32-wide rows, stride 2's 8-wide ones), or each sample's
    run of q, rows Ws apart with the columns past Wout dropped (rows narrower than a few vectors, 28 wide, say)."""
    N, F, Hout, Wout = out.shape
    P = Hout * Wout
    planes = out.reshape(N * F, P)
    taps = taps.reshape(-1)
    V = 32 // xp.itemsize
    B = TAP_R * V
    per_row = (Wout + V - 1) // V            # vectors per output row, cut by rows
    per_run = (Hout * Ws + V - 1) // V       # vectors per sample, cut along q
    by_rows = Hout * per_row <= per_run
    per_sample = Hout * per_row if by_rows else per_run
    blocks = (M * per_sample + TAP_R - 1) // TAP_R
    vofs = np.zeros(blocks * TAP_R, np.int64)
    lanes = np.empty(blocks * B, np.int64)
    full = np.zeros(blocks * TAP_R, np.int64)
    junk = np.empty(V, xp.dtype)
    # past the last lane any vector reads (the taps' offsets come on top)
    last = ((M - 1) * Hs + Hout - 1) * Ws + per_row * V if by_rows else (M - 1) * Hs * Ws + per_run * V
    if w.shape[0] != F or w.shape[1] != taps.shape[0] or b.shape[0] != F or n1 > min(N, x.shape[0]) \
            or (P > 0 and taps.max() + last > xp.shape[0]):  # no block reads past its buffer
        raise ValueError("direct convolution: buffers too small for the geometry")
    filled = -1  # the sample count the vectors are laid out for
    nblocks = 0
    for n in range(n0, n1, M):
        m = min(M, n1 - n)
        _planes(x, n, m, M, stride, pad, Hs, Ws, xp)
        if m != filled:
            i = 0
            for s in range(m):
                if by_rows:
                    for oh in range(Hout):
                        for ow in range(0, Wout, V):
                            vofs[i] = (s * Hs + oh) * Ws + ow
                            place = s * F * P + oh * Wout + ow
                            for v in range(V):
                                lanes[i * V + v] = place + v if ow + v < Wout else -1
                            full[i] = ow + V <= Wout
                            i += 1
                else:
                    oh, ow = 0, 0   # the row and column of q (no division in the loops: about 40 cycles each)
                    for r in range(i, i + per_run):
                        vofs[r] = s * Hs * Ws + (r - i) * V
                        for v in range(r * V, r * V + V):
                            lanes[v] = s * F * P + oh * Wout + ow if ow < Wout and oh < Hout else -1
                            ow += 1
                            if ow == Ws:
                                ow = 0
                                oh += 1
                        full[r] = lanes[r * V] >= 0 and lanes[r * V + V - 1] - lanes[r * V] == V - 1
                    i += per_run
            nblocks = (i + TAP_R - 1) // TAP_R
            while i < nblocks * TAP_R:  # the last block's spare vectors: read what the first one reads, write junk
                vofs[i] = 0
                full[i] = 0
                for v in range(V):
                    lanes[i * V + v] = -1
                i += 1
            filled = m
        for f in range(0, F, TAP_G):
            for blk in range(nblocks):
                _tap_block(xp, w, taps, b, planes, n * F, f, 0, lanes[blk * B:(blk + 1) * B],
                           full[blk * TAP_R:(blk + 1) * TAP_R], junk, vofs[blk * TAP_R:(blk + 1) * TAP_R])


@intrinsic
def _dw_block(typingctx, xp, ds, taps, dw, f0, t0, L):
    """One register block of the direct weight gradient (see _planes): dw[f, t] += sum_{q < L} ds[f, q] *
    xp[taps[t] + q] for the TAP_G filters f = f0 + g and the TAP_R taps t = t0 + r that exist (F = dw's rows, taps
    past the last and filters past F computed on the last one's numbers and not added). L a multiple of the 32-byte
    vector width V. The TAP_G * TAP_R sums are vectors of V partial sums kept in registers over the whole q loop
    (per step TAP_G + TAP_R loads for TAP_G * TAP_R fused multiply-adds), then added up lane by lane in order.
    No bounds checks here: _direct_dw checks its buffers' sizes once per call. xp, ds (rows, >= L), dw (F, taps):
    C-contiguous arrays of one float dtype; taps: 64-bit integers."""
    floats = (xp, ds, dw)
    if not all(isinstance(a, types.Array) and a.layout == "C" and a.dtype == xp.dtype for a in floats) \
            or xp.dtype not in (types.float32, types.float64) \
            or not (isinstance(taps, types.Array) and taps.layout == "C" and isinstance(taps.dtype, types.Integer)
                    and taps.dtype.bitwidth == 64 and taps.ndim == 1) \
            or (xp.ndim, ds.ndim, dw.ndim) != (1, 2, 2):
        return None
    sig = types.void(xp, ds, taps, dw, f0, t0, L)

    def codegen(context, builder, signature, args):
        xa, da, ta, wa = (context.make_array(ty)(context, builder, v) for ty, v in zip(signature.args[:4], args[:4]))
        f0_, t0_, L_ = (context.cast(builder, v, ty, types.int64) for ty, v in zip(signature.args[4:], args[4:]))
        i64 = ir.IntType(64)
        V, vtype, fma = _vector_ir(context, builder, signature.args[0].dtype)

        def const(v):
            return ir.Constant(i64, v)

        def at(ptr, i):
            return builder.gep(ptr, [i])

        def clamp(v, last):
            return builder.select(builder.icmp_signed("<", v, last), v, last)

        F = cgutils.unpack_tuple(builder, wa.shape)[0]
        ntaps = cgutils.unpack_tuple(builder, ta.shape)[0]
        row_len = cgutils.unpack_tuple(builder, da.shape)[1]
        filters = [clamp(builder.add(f0_, const(g)), builder.sub(F, const(1))) for g in range(TAP_G)]
        tap_ids = [clamp(builder.add(t0_, const(r)), builder.sub(ntaps, const(1))) for r in range(TAP_R)]
        drows = [at(da.data, builder.mul(f, row_len)) for f in filters]
        xrows = [at(xa.data, builder.load(at(ta.data, t))) for t in tap_ids]
        acc = [[cgutils.alloca_once_value(builder, ir.Constant(vtype, [0.0] * V)) for _ in range(TAP_R)]
               for _ in range(TAP_G)]
        steps = builder.udiv(L_, const(V))
        with cgutils.for_range(builder, steps) as loop:
            q = builder.mul(loop.index, const(V))
            xs = [builder.load(builder.bitcast(at(row, q), vtype.as_pointer()), align=4) for row in xrows]
            for g in range(TAP_G):
                d = builder.load(builder.bitcast(at(drows[g], q), vtype.as_pointer()), align=4)
                for r in range(TAP_R):
                    builder.store(builder.call(fma, [d, xs[r], builder.load(acc[g][r])]), acc[g][r])
        for g in range(TAP_G):
            f_in = builder.icmp_signed("<", builder.add(f0_, const(g)), F)
            for r in range(TAP_R):
                ok = builder.and_(f_in, builder.icmp_signed("<", builder.add(t0_, const(r)), ntaps))
                with builder.if_then(ok):
                    vec = builder.load(acc[g][r])
                    total = builder.extract_element(vec, ir.Constant(ir.IntType(32), 0))
                    for v in range(1, V):
                        total = builder.fadd(total, builder.extract_element(vec, ir.Constant(ir.IntType(32), v)))
                    dst = at(wa.data, builder.add(builder.mul(filters[g], ntaps), tap_ids[r]))
                    builder.store(builder.fadd(builder.load(dst), total), dst)
        return context.get_dummy_value()
    return sig, codegen


def _dw_block_numpy(xp, ds, taps, dw, f0, t0, L):
    """_dw_block's numbers in numpy (summed in another order), for NUMBA_DISABLE_JIT=1: an intrinsic has no Python
    body."""
    F, ntaps = dw.shape
    for f in range(f0, min(F, f0 + TAP_G)):
        for t in range(t0, min(ntaps, t0 + TAP_R)):
            dw[f, t] += np.dot(ds[f, :L], xp[int(taps[t]):int(taps[t]) + L])


if config.DISABLE_JIT:
    _dw_block = _dw_block_numpy  # noqa: F811


@njit(cache=True, nogil=True)
def _direct_dw(x, dout, stride, pad, n0, n1, dw, db, xp, ds, taps, M, Hs, Ws):
    """dw (F, C*k*k) += the weight gradient of samples n0:n1 for k x k filters, db += their dout sums (see _planes):
    _dw_block for every group of TAP_G filters and TAP_R taps over each group of samples' dout rows ds (laid out
    like q by _rows_in, zeros at the dropped positions)."""
    F, Hout = dout.shape[1], dout.shape[2]
    taps = taps.reshape(-1)
    ntaps = taps.shape[0]
    V = 32 // xp.itemsize
    end = ((M - 1) * Hs + Hout) * Ws
    end = (end + V - 1) // V * V  # a pass's q range, whole vectors
    if dw.shape[0] != F or dw.shape[1] != ntaps or ds.shape[0] < F or ds.shape[1] < end or db.shape[0] < F \
            or n1 > min(x.shape[0], dout.shape[0]) or taps.max() + end > xp.shape[0]:  # no read past a buffer
        raise ValueError("direct convolution: buffers too small for the geometry")
    for n in range(n0, n1, M):
        m = min(M, n1 - n)
        L = ((m - 1) * Hs + Hout) * Ws  # the last sample's rows past Hout are not needed
        _planes(x, n, m, M, stride, pad, Hs, Ws, xp)
        _rows_in(dout, n, m, Hs, Ws, ds, db)
        Lv = (L + V - 1) // V * V
        for f in range(F):  # the whole vector past L: zeros (a later sample's stale row could be there)
            for q in range(L, Lv):
                ds[f, q] = 0
        for f0 in range(0, F, TAP_G):
            for t0 in range(0, ntaps, TAP_R):
                _dw_block(xp, ds, taps, dw, f0, t0, Lv)


# dx at stride 2 (3x3 and 5x5): the input-gradient's phase planes dxpad[2r + a, 2t + b] are each a stride-1
# correlation of dout with the taps (i, j), i % 2 = a, j % 2 = b, at shifts (i // 2, j // 2). dout goes into D: per
# filter a plane of Hd x Wd per sample (Hd = Hout + P0, Wd = Wout + P0, P0 = (k - 1) // 2 zero rows on top and zero
# columns on the left: the shifts read them, and past the last sample), and phase (a, b) at position
# q = (s*Hd + r)*Wd + t is sum over its taps of w[f, c, i, j] * D[f*PSD + (P0 - i//2)*Wd + P0 - j//2 + q]. A
# phase's taps over all filters, in rows of 3 (zero weights filling the last), run in passes of 4 channels over
# accumulator rows in the L1 cache, the 12 weights in registers. Every dx element is in exactly one phase plane,
# inside Hd x Wd.

@njit(cache=True, nogil=True, fastmath={"contract"})  # contract: a*b + c as one FMA (rounding only)
def _direct_dx2(dout, w, taps, index, nrows, pad, n0, n1, dx, dp, ext, M, Hd, Wd):
    """dx[n0:n1] = the stride-2 input gradient of dout[n0:n1] for filters w (see above): taps (4, R, 3) the offsets
    into dp of each phase's rows of 3 taps and index (3, 4, R, 3) their (f, i, j) (phase 2a + b, nrows[phase] rows
    used; f = -1 fills up a phase's last row), dp D's scratch (zeroed, one geometry), ext (8, >= M*Hd*Wd)
    accumulator rows: phases (a, 0) and (a, 1) of 4 channels."""
    F, Hout, Wout = dout.shape[1], dout.shape[2], dout.shape[3]
    C, H, W = dx.shape[1], dx.shape[2], dx.shape[3]
    P0 = Hd - Hout
    PSD = dp.shape[0] // F
    df = dout.reshape(-1)
    xf = dx.reshape(-1)
    zero, one = w.dtype.type(0), w.dtype.type(1)
    for n in range(n0, n1, M):
        m = min(M, n1 - n)
        L = uint64(m * Hd * Wd)
        for s in range(m):  # D: dout rows after P0 zero rows and columns (the zeros are never written)
            for f in range(F):
                src = uint64(((n + s) * F + f) * Hout * Wout)
                dst = uint64(f * PSD + (s * Hd + P0) * Wd + P0)
                for oh in range(Hout):
                    for ow in range(uint64(Wout)):
                        dp[dst + ow] = df[src + ow]
                    src += uint64(Wout)
                    dst += uint64(Wd)
        # dx[2v + e] of a row of parity a is phase (a, be), be = (e + pad) % 2, at column v + (e + pad - be) // 2
        b_ev, b_od = pad % 2, (pad + 1) % 2
        t_ev, t_od = (pad - b_ev) // 2, (pad + 1 - b_od) // 2
        for a in range(2):
            for c0 in range(0, C, 4):  # channels past C: weights 0, rows not written out
                c1, c2, c3 = min(c0 + 1, C - 1), min(c0 + 2, C - 1), min(c0 + 3, C - 1)
                k1, k2, k3 = one if c0 + 1 < C else zero, one if c0 + 2 < C else zero, one if c0 + 3 < C else zero
                for b in range(2):  # phase (a, b) into ext[4b .. 4b + 3]
                    ph = 2 * a + b
                    e0, e1, e2, e3 = ext[4 * b], ext[4 * b + 1], ext[4 * b + 2], ext[4 * b + 3]
                    for R in range(nrows[ph]):
                        t = taps[ph, R]
                        p0, p1, p2 = t[0], t[1], t[2]
                        fs, i_s, js = index[0, ph, R], index[1, ph, R], index[2, ph, R]
                        f0, f1, f2 = max(fs[0], 0), max(fs[1], 0), max(fs[2], 0)  # f = -1: a filled-up place
                        m0 = one if fs[0] >= 0 else zero
                        m1 = one if fs[1] >= 0 else zero
                        m2 = one if fs[2] >= 0 else zero
                        r0, r1, r2 = w[f0, :, i_s[0], js[0]], w[f1, :, i_s[1], js[1]], w[f2, :, i_s[2], js[2]]
                        u00, u01, u02 = r0[c0] * m0, r1[c0] * m1, r2[c0] * m2
                        u10, u11, u12 = r0[c1] * (m0 * k1), r1[c1] * (m1 * k1), r2[c1] * (m2 * k1)
                        u20, u21, u22 = r0[c2] * (m0 * k2), r1[c2] * (m1 * k2), r2[c2] * (m2 * k2)
                        u30, u31, u32 = r0[c3] * (m0 * k3), r1[c3] * (m1 * k3), r2[c3] * (m2 * k3)
                        if R == 0:  # (zeroing the rows costs less than a second loop body to compile)
                            for g in range(4):
                                e = ext[4 * b + g]
                                for q in range(L):
                                    e[q] = zero
                        for q in range(L):
                            v0, v1, v2 = dp[p0 + q], dp[p1 + q], dp[p2 + q]
                            e0[q] = e0[q] + u00 * v0 + u01 * v1 + u02 * v2
                            e1[q] = e1[q] + u10 * v0 + u11 * v1 + u12 * v2
                            e2[q] = e2[q] + u20 * v0 + u21 * v1 + u22 * v2
                            e3[q] = e3[q] + u30 * v0 + u31 * v1 + u32 * v2
                # the rows y = 2r + a - pad of dx, even and odd columns from the two phases in one loop
                r_lo = (pad - a + 1) // 2  # the first r with y >= 0
                y0 = 2 * r_lo + a - pad
                nr = min(Hd - r_lo, (H - y0 + 1) // 2)  # rows r_lo .. r_lo + nr - 1 are inside dx
                for g in range(min(4, C - c0)):
                    ev, od = ext[4 * b_ev + g], ext[4 * b_od + g]
                    for s in range(m):
                        dst = uint64((((n + s) * C + c0 + g) * H + y0) * W)
                        row = (s * Hd + r_lo) * Wd
                        se, so = uint64(row + t_ev), uint64(row + t_od)
                        for r in range(nr):
                            for v in range(uint64(W // 2)):
                                xf[dst + v + v] = ev[se + v]
                                xf[dst + v + v + uint64(1)] = od[so + v]
                            if W % 2 == 1:
                                xf[dst + uint64(W - 1)] = ev[se + uint64(W // 2)]
                            dst += uint64(2 * W)
                            se += uint64(Wd)
                            so += uint64(Wd)


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

    def count(self, macs: int) -> int:
        """Threads for a convolution of `macs` multiply-adds that makes no BLAS call (the direct kernels): 1 below
        PARALLEL_MIN_MACS, else THREADS if set, else BLAS's thread count (the count before the pin while another
        convolution holds it)."""
        if macs < PARALLEL_MIN_MACS:
            return 1
        if THREADS:
            return THREADS
        with self.lock:
            if self.active:
                return self.budget
        return max([lib.get_num_threads() for lib in self._blas()] + [1])

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

DIRECT_SIZES = (3, 5)  # filter sizes that run the direct kernels (they take any size; these are measured)
DIRECT_STRIDES = (1, 2)  # _planes' and _planes2's layouts
# float64 runs the direct kernels at stride 1 only: at stride 2 its im2col GEMMs are as fast (forward + backward
# 1.5-1.8x torch on (32,16,16,16) 32x3x3 s2 over two runs, 1.6x direct), and its stride-2 kernels (_planes2,
# _direct_dx2) would add 4 s to the cold warm-up. (float64 is the graph engine's and the gradient checks' type, not
# training's.)
DIRECT_STRIDES_FLOAT64 = (1,)


def _direct_strides(dtype) -> tuple[int, ...]:
    """The strides at which arrays of this dtype run the direct kernels."""
    if dtype == np.float64:
        return tuple(s for s in DIRECT_STRIDES if s in DIRECT_STRIDES_FLOAT64)
    return DIRECT_STRIDES


def _direct_ok(w: np.ndarray, stride: int) -> bool:
    """The forward pass runs a direct kernel: square filters of a size in DIRECT_SIZES, a stride in DIRECT_STRIDES (for
    float64 also in DIRECT_STRIDES_FLOAT64)."""
    HH, WW = w.shape[2], w.shape[3]
    return HH == WW and HH in DIRECT_SIZES and stride in _direct_strides(w.dtype)


def _direct_dx_ok(w: np.ndarray, stride: int, pad: int) -> bool:
    """Backward runs the direct kernels (else the im2col GEMMs): at stride 2 (_direct_dx2 and _direct_dw), and at
    stride 1, where dx is the stride-1 convolution of dout with w flipped and transposed at padding HH - 1 - pad, which
    needs pad <= HH - 1."""
    return _direct_ok(w, stride) and (stride == 2 or pad <= w.shape[2] - 1)


def _direct_geometry(N: int, C: int, H: int, W: int, k: int, stride: int, pad: int) -> tuple[int, int, int, int]:
    """(M, Hs, Ws, PS) of the direct kernels' layout (see _planes): up to M samples per pass (about DIRECT_L outputs,
    rows and columns to drop included), Hs x Ws positions per sample, PS floats per (phase) plane."""
    Hout = (H + 2 * pad - k) // stride + 1
    Wout = (W + 2 * pad - k) // stride + 1
    if stride == 1:
        Hs, Ws = max(H + pad, Hout), max(W + pad, Wout)
        M = max(1, min(N, DIRECT_L // (Hs * Ws)))
        return M, Hs, Ws, (M * Hs + k + 1) * Ws + k  # the taps of the dropped rows read past the last sample
    Hs, Ws = Hout + (k - 1) // 2, Wout  # stride 2: the taps' rows i // 2 past the last output row
    M = max(1, min(N, DIRECT_L // (Hs * Ws)))
    return M, Hs, Ws, M * Hs * Ws


def _direct_buffers(name: str, x: np.ndarray, k: int, stride: int, pad: int, N: int, rows: int, dtype) -> tuple:
    """(M, Hs, Ws, taps, xp, ds) for a direct kernel on x's planes (N samples in the whole batch), reused from call
    to call per thread (at most 8 geometries, of at most 4 * COLS_CHUNK_BYTES each): taps (C, k, k) the offsets of
    _planes' layout, xp its scratch (TAP_SLACK zeros past the planes), and ds (rows, >= M*Hs*Ws + TAP_SLACK) from
    _aligned_rows, dw's dout rows (the forward asks for 0 rows)."""
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    bufs = _local.__dict__.setdefault("direct", {})
    key = (name, np.dtype(dtype).char, C, H, W, k, stride, pad, N, rows)
    found = bufs.get(key)
    if found is None:
        M, Hs, Ws, PS = _direct_geometry(N, C, H, W, k, stride, pad)
        c, i, j = np.ogrid[:C, :k, :k]
        if stride == 1:
            taps, planes = c * PS + i * Ws + j, 1
        else:  # plane (c, j, i % 2), rows i // 2 on
            taps, planes = ((c * k + j) * 2 + i % 2) * PS + i // 2 * Ws, 2 * k
        ds = _aligned_rows(rows, M * Hs * Ws + TAP_SLACK, dtype)  # zeroed: _rows_in's dropped positions stay zero
        xp = _aligned_zeros(C * planes * PS + TAP_SLACK, dtype)
        found = (M, Hs, Ws, np.ascontiguousarray(taps, np.uint64), xp, ds)
        if xp.nbytes + ds.nbytes <= 4 * COLS_CHUNK_BYTES:
            if len(bufs) >= 8:
                bufs.pop(next(iter(bufs)))
            bufs[key] = found
    return found


def _aligned_zeros(n: int, dtype) -> np.ndarray:
    """np.zeros(n, dtype) starting on a 64-byte boundary. The direct kernels' planes: where the base of xp was not
    32-byte aligned (numpy aligns to 16), the stride-2 forward of (32,16,16,16) with 32 3x3 filters took 442-449 us
    instead of 392-397 (a vector of 8 outputs then spans two cache lines)."""
    flat = np.zeros(n + 16, dtype)
    start = (-flat.ctypes.data % 64) // flat.itemsize
    return flat[start:start + n]


def _aligned_rows(rows: int, cols: int, dtype) -> np.ndarray:
    """A zeroed (rows, >= cols) array whose rows start on 64-byte boundaries (aligned accumulator rows load and store
    about 6% faster)."""
    cols = -(-cols // 16) * 16
    return _aligned_zeros(rows * cols, dtype).reshape(rows, cols)


def _dx2_buffers(dout: np.ndarray, k: int, C: int, N: int, dtype) -> tuple:
    """(M, Hd, Wd, taps, nrows, index, dp, ext) for _direct_dx2 (see above it), reused per thread like
    _direct_buffers: taps (4, R, 3) and nrows (4,) its phases' rows of taps, index (3, 4, R, 3) the (f, i, j) of each
    tap (-1 where a row is filled up), dp D's scratch, ext 8 accumulator rows."""
    F, Hout, Wout = dout.shape[1], dout.shape[2], dout.shape[3]
    bufs = _local.__dict__.setdefault("direct", {})
    key = ("dx2", np.dtype(dtype).char, F, Hout, Wout, C, k, N)
    found = bufs.get(key)
    if found is None:
        P0 = (k - 1) // 2
        Hd, Wd = Hout + P0, Wout + P0
        M = max(1, min(N, DIRECT_L // (Hd * Wd)))
        PSD = (M * Hd + P0) * Wd + P0  # the taps read P0 rows and columns past a sample
        phases = [[(f, i, j) for f in range(F) for i in range(a, k, 2) for j in range(b, k, 2)]
                  for a in (0, 1) for b in (0, 1)]
        R = max(-(-len(t) // 3) for t in phases)
        index = np.full((3, 4, R, 3), -1, np.int64)
        taps = np.zeros((4, R, 3), np.uint64)
        for ph, tl in enumerate(phases):
            for u, (f, i, j) in enumerate(tl):
                index[:, ph, u // 3, u % 3] = f, i, j
                taps[ph, u // 3, u % 3] = f * PSD + (P0 - i // 2) * Wd + P0 - j // 2
        nrows = np.array([-(-len(t) // 3) for t in phases], np.int64)
        dp = _aligned_zeros(F * PSD, dtype)  # zeroed: D's padding rows and columns stay zero
        ext = _aligned_rows(8, M * Hd * Wd, dtype)
        found = (M, Hd, Wd, taps, nrows, index, dp, ext)
        if dp.nbytes + ext.nbytes <= 4 * COLS_CHUNK_BYTES:
            if len(bufs) >= 8:
                bufs.pop(next(iter(bufs)))
            bufs[key] = found
    return found


def _direct_dx2_run(dout, w, pad, dx, n0, n1):
    """dx[n0:n1] = the stride-2 input gradient of dout[n0:n1] by _direct_dx2."""
    M, Hd, Wd, taps, nrows, index, dp, ext = _dx2_buffers(dout, w.shape[2], dx.shape[1], dx.shape[0], dx.dtype)
    _direct_dx2(dout, w, taps, index, nrows, pad, n0, n1, dx, dp, ext, M, Hd, Wd)


def _direct_run(x, w, b, stride, pad, out, n0, n1):
    """out[n0:n1] = the direct convolution of x[n0:n1] with w (F, C, k, k) (a geometry that _direct_ok accepts; out
    C-contiguous)."""
    F, k = w.shape[0], w.shape[2]
    M, Hs, Ws, taps, xp, _ = _direct_buffers("fwd", x, k, stride, pad, x.shape[0], 0, x.dtype)
    w2 = np.ascontiguousarray(w.reshape(F, -1))  # a view of a C-contiguous w
    if stride == 1:
        _direct(x, w2, b, stride, pad, n0, n1, out, xp, taps, M, Hs, Ws)
        return
    for n in range(n0, n1, M):  # stride 2: _planes2 first, then the kernel on that group of samples
        m = min(M, n1 - n)
        _planes2(x, n, m, k, stride, pad, Hs, Ws, xp)
        _direct(x, w2, b, stride, pad, n, n + m, out, xp, taps, M, Hs, Ws)


def _direct_dw_run(x, dout, stride, pad, n0, n1, dw, db):
    """dw += the weight gradient of samples n0:n1 (a geometry that _direct_ok accepts), db += their dout sums."""
    k = dw.shape[2]
    M, Hs, Ws, taps, xp, ds = _direct_buffers("dw", x, k, stride, pad, x.shape[0], dout.shape[1], x.dtype)
    dw2 = dw.reshape(dw.shape[0], -1)  # a view: dw is C-contiguous
    if stride == 1:
        _direct_dw(x, dout, stride, pad, n0, n1, dw2, db, xp, ds, taps, M, Hs, Ws)
        return
    for n in range(n0, n1, M):  # stride 2: _planes2 first, then the kernel on that group of samples
        m = min(M, n1 - n)
        _planes2(x, n, m, k, stride, pad, Hs, Ws, xp)
        _direct_dw(x, dout, stride, pad, n, n + m, dw2, db, xp, ds, taps, M, Hs, Ws)


def _winograd_ok(dtype, C: int, F: int, HH: int, WW: int, stride: int) -> bool:
    """The convolution runs Winograd F(2x2, 3x3): float32, 3x3 filters, stride 1, C and F >= WINOGRAD_MIN_CHANNELS."""
    return min(C, F) >= WINOGRAD_MIN_CHANNELS and HH == WW == 3 and stride == 1 and dtype == np.float32


def _winograd_rows(C: int, Hout: int, Wout: int) -> int:
    """Rows of tiles per Winograd block: the count whose GEMM blocks of 24 tiles waste the fewest places (the larger
    on a tie), among those whose V fits in WINOGRAD_BLOCK_BYTES (at least 1). Shapes only."""
    TH, TW = _wino.tiles(Hout, Wout)
    best, best_waste = 1, 2.0
    if TW == 0:  # no output columns: nothing to compute, any block height does
        return best
    for R in range(1, TH + 1):
        Tp = _wino.layout(TW, R)[1]
        if R > 1 and 16 * C * Tp * 4 > WINOGRAD_BLOCK_BYTES:
            break
        waste = 1 - R * TW / (-(-(R * TW) // _wino.BLOCK) * _wino.BLOCK)
        if waste <= best_waste:
            best, best_waste = R, waste
    return best


def _winograd_buffers(C: int, F: int, H: int, W: int, pad: int) -> tuple:
    """(R, eo, V, M2) for kernels.winograd.forward on (C, H, W) inputs and F filters, per thread and reused (at most
    8 geometries of at most 4 * COLS_CHUNK_BYTES each): eo zeroed (its padding places stay zero), V and M2 of
    undefined contents."""
    bufs = _local.__dict__.setdefault("winograd", {})
    key = (C, F, H, W, pad)
    found = bufs.get(key)
    if found is None:
        Hout, Wout = H + 2 * pad - 2, W + 2 * pad - 2
        R = _winograd_rows(C, Hout, Wout)
        Wh, Tp = _wino.layout(_wino.tiles(Hout, Wout)[1], R)
        found = (R, np.zeros(2 * (2 * R + 2) * Wh, np.float32), np.empty(16 * (C * Tp + 16), np.float32),
                 np.empty((16 * (F + 1), Tp), np.float32))
        if sum(a.nbytes for a in found[1:]) <= 4 * COLS_CHUNK_BYTES:  # wide planes with many channels: not kept
            if len(bufs) >= 8:
                bufs.pop(next(iter(bufs)))
            bufs[key] = found
    return found


def _winograd_run(x, U, b, pad, out, n0, n1):
    """out[n0:n1] = the 3x3 stride-1 convolution of x[n0:n1] (padding pad) with the filters whose transform is U
    (kernels.winograd.weights), plus b."""
    R, eo, V, M2 = _winograd_buffers(x.shape[1], U.shape[1], x.shape[2], x.shape[3], pad)
    _wino.forward(x, U, b, pad, n0, n1, out, R, eo, V, M2)


def _forward(x, w, b, stride, pad, keep):
    N = x.shape[0]
    F, HH, WW = w.shape[0], w.shape[2], w.shape[3]
    Hout, Wout, K, P = _geometry(x, w, stride, pad)
    dt = x.dtype
    macs = N * F * K * P
    if not keep and _direct_ok(w, stride):
        out4 = np.empty((N, F, Hout, Wout), dt)
        # (F tested first: the call costs ~0.3 us, 3 % of the smallest convolutions)
        wino = F >= WINOGRAD_MIN_CHANNELS and _winograd_ok(dt, x.shape[1], F, HH, WW, stride)
        U = _wino.weights(w) if wino else None
        threads = min(N, _threads.count(macs))
        if threads == 1:  # one call, none of the chunking's Python overhead
            if U is None:
                _direct_run(x, w, b, stride, pad, out4, 0, N)
            else:
                _winograd_run(x, U, b, pad, out4, 0, N)
            return out4, None
        # a sample's output does not depend on the chunking: four chunks per thread, handed out one at a time
        m = -(-N // (4 * threads))

        def run(i: int) -> None:
            if U is None:
                _direct_run(x, w, b, stride, pad, out4, i * m, min(N, (i + 1) * m))
            else:
                _winograd_run(x, U, b, pad, out4, i * m, min(N, (i + 1) * m))
        _threads.run(-(-N // m), run, threads)
        return out4, None
    w2 = w.reshape(F, K)
    m = _chunk(N, K, P, x.itemsize)
    nchunks = -(-N // m)
    cols = np.zeros((K, N * P), dt) if keep else None
    geometry = (x.shape[1:], w.shape[1:], stride, pad)
    out = np.empty((N, F, P), dt)

    def work(i: int) -> None:
        n0 = i * m
        mm = min(m, N - n0)
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

    _threads.run_pinned(nchunks, work, macs)
    return out.reshape(N, F, Hout, Wout), cols


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
    """(out, cols) for conv_backward_cols: the forward's columns when backward runs on the im2col GEMMs (not on the
    direct kernels, see _direct_dx_ok) and they fit in `max_bytes` (default KEEP_COLS_BYTES), else an empty array
    (backward then builds them chunk by chunk, in cache, if it needs them)."""
    N = x.shape[0]
    _, _, K, P = _geometry(x, w, stride, pad)
    if _direct_dx_ok(w, stride, pad):  # backward needs no columns
        max_bytes = -1
    if N * K * P * x.itemsize <= (KEEP_COLS_BYTES if max_bytes is None else max_bytes):
        return conv_forward_cols(x, w, b, stride, pad)
    return conv_forward(x, w, b, stride, pad), np.empty((0, 0), x.dtype)


def conv_backward(dout: np.ndarray, x: np.ndarray, w: np.ndarray, stride: int, pad: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dout: (N, F, Hout, Wout), x and w as in the forward pass -> (dx, dw, db) with x's, w's and (F,) shapes."""
    return conv_backward_cols(dout, np.empty((0, 0), x.dtype), x, w, stride, pad)


def _sum_parts(dw_parts: np.ndarray, db_parts: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The groups' partial dw and db added in group order (the same numbers whichever thread ran which group)."""
    dw = dw_parts[0]
    db = db_parts[0]
    for i in range(1, len(dw_parts)):
        dw += dw_parts[i]
        db += db_parts[i]
    return dw.reshape(w.shape), db.astype(w.dtype)


def _direct_backward(dout, x, w, stride, pad):
    """conv_backward on the direct kernels (a geometry that _direct_dx_ok accepts): dx at stride 1 = conv(dout, w
    flipped in space and transposed to (C, F, HH, WW)) at padding HH - 1 - pad, at stride 2 _direct_dx2; dw and db by
    _direct_dw_run. The samples form consecutive groups, one task each; how many depends on the shapes only (about
    DIRECT_PART_MACS multiply-adds each, at most MAX_PARTS), never on the thread count."""
    N, C = x.shape[0], x.shape[1]
    F, k = w.shape[0], w.shape[2]
    macs = 2 * N * F * C * k * k * dout.shape[2] * dout.shape[3]
    nparts = max(1, min(N, MAX_PARTS, macs // DIRECT_PART_MACS))
    dx = np.empty_like(x)
    if stride == 1:
        w_t = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
        zeros = np.zeros(C, x.dtype)
    dw_parts = np.zeros((nparts, F, C, k, k), x.dtype)
    db_parts = np.zeros((nparts, F), np.float64)

    # dx at stride 1 is a convolution with F channels and C filters: Winograd when both are enough
    U_t = _wino.weights(w_t) if stride == 1 and _winograd_ok(x.dtype, F, C, k, k, 1) else None

    def work(part: int) -> None:
        n0, n1 = part * N // nparts, (part + 1) * N // nparts
        _direct_dw_run(x, dout, stride, pad, n0, n1, dw_parts[part], db_parts[part])
        if U_t is not None:
            _winograd_run(dout, U_t, zeros, k - 1 - pad, dx, n0, n1)
        elif stride == 1:
            _direct_run(dout, w_t, zeros, 1, k - 1 - pad, dx, n0, n1)
        else:
            _direct_dx2_run(dout, w, pad, dx, n0, n1)

    _threads.run(nparts, work, _threads.count(macs))
    return (dx, *_sum_parts(dw_parts, db_parts, w))


def conv_backward_cols(dout: np.ndarray, cols: np.ndarray, x: np.ndarray, w: np.ndarray, stride: int, pad: int
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """conv_backward with the forward's columns `cols` (K, N*P) from conv_forward_cols; any other cols (such as an
    empty array) means: rebuild the columns here, chunk by chunk (the direct kernels' geometries use none)."""
    dout = np.ascontiguousarray(dout)
    if _direct_dx_ok(w, stride, pad):
        return _direct_backward(dout, x, w, stride, pad)
    N = x.shape[0]
    F, HH, WW = w.shape[0], w.shape[2], w.shape[3]
    Hout, Wout, K, P = _geometry(x, w, stride, pad)
    dt = x.dtype
    w2t = w.reshape(F, K).T
    d3 = dout.reshape(N, F, P)
    cached = cols is not None and cols.ndim == 2 and cols.shape == (K, N * P) and cols.dtype == dt
    m = _chunk(N, K, P, x.itemsize)
    nchunks = -(-N // m)
    # The chunks form up to MAX_PARTS groups of consecutive chunks, one group per task; each group sums its dw and db
    # in chunk order, and the groups' sums are added in group order: the same numbers whichever thread ran which group,
    # with memory for at most MAX_PARTS partial dw.
    nparts = min(nchunks, MAX_PARTS)
    dw_parts = np.empty((nparts, F, K), dt)
    db_parts = np.zeros((nparts, F), np.float64)
    geometry = (x.shape[1:], w.shape[1:], stride, pad)
    dx = np.zeros_like(x)

    def chunk(i: int, dw_part: np.ndarray, db_part: np.ndarray, first: bool) -> None:
        n0 = i * m
        mm = min(m, N - n0)
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
        dcols = _workspace("dcols", (K, mm * P), dt)
        np.matmul(w2t, d, out=dcols)
        _col2im_add(dcols, HH, WW, stride, pad, Hout, Wout, n0, dx)

    def work(part: int) -> None:
        for i in range(part * nchunks // nparts, (part + 1) * nchunks // nparts):
            chunk(i, dw_parts[part], db_parts[part], i == part * nchunks // nparts)

    _threads.run_pinned(nparts, work, N * F * K * P)
    return (dx, *_sum_parts(dw_parts, db_parts, w))


def warmup_tasks(dtypes=(np.float64, np.float32)) -> list[tuple[str, Callable[[], None]]]:
    """(name, zero-arg callable) pairs that compile (or load from cache) the convolution kernels for `dtypes`."""
    def task(dt):
        def run():
            x = np.ones((2, 2, 5, 5), dt)
            b = np.zeros(3, dt)
            w = np.ones((3, 2, 2, 2), dt)  # 2x2: the im2col GEMMs
            out, cols = conv_forward_cols(x, w, b, 2, 1)
            conv_backward_cols(np.ones_like(out), cols, x, w, 2, 1)
            conv_backward(np.ones_like(out), x, w, 2, 1)
            for k in DIRECT_SIZES:  # the direct kernels: forward (and backward's dx at stride 1), dw, dx at stride 2
                wk = np.ones((3, 2, k, k), dt)
                for stride in _direct_strides(np.dtype(dt)):
                    out = np.empty((2, 3, 4 // stride + 1, 4 // stride + 1), dt)
                    _direct_run(x, wk, b, stride, k // 2, out, 0, 2)
                _direct_dw_run(x, np.ones((2, 3, 5, 5), dt), 1, k // 2, 0, 2, np.zeros_like(wk), np.zeros(3))
            conv_backward(np.ones((2, 3, 3, 3), dt), x, np.ones((3, 2, 3, 3), dt), 2, 1)  # float32: _direct_dx2
            if np.dtype(dt) == np.float32:  # Winograd (its channel threshold does not apply when called directly)
                w3 = np.ones((3, 2, 3, 3), dt)
                _winograd_run(x, _wino.weights(w3), b, 1, np.empty((2, 3, 5, 5), dt), 0, 2)
        return run
    return [(f"conv[{np.dtype(dt).name}]", task(dt)) for dt in dtypes]
