"""Winograd F(2x2, 3x3): a float32 3x3 convolution at stride 1 with 2.25x fewer multiply-adds than the direct sum.

Each 2x2 tile of outputs is computed from the 4x4 tile d of (zero-padded) inputs under it (tiles overlap by 2):
    Y = A^T [ sum over channels c of (G g_c G^T) * (B^T d_c B) ] A     (* elementwise)
with (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks", 2016)
    B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]],
    G   = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]],
    A^T = [[1, 1, 1, 0], [0, 1, -1, -1]].
For each of the 16 positions xi = 4*i + j of a 4x4 tile the sum over channels is one matrix product,
    M[xi] (F, T) = U[xi] (F, C) @ V[xi] (C, T),   U = G g G^T of every filter, V = B^T d B of every tile,
so a 2x2 tile costs 16 multiply-adds per filter and channel instead of 4 * 9 = 36.

forward() runs a sample in blocks of R rows of tiles, small enough that the block's V and M stay in the L2 cache:
1. the block's input rows are split into even and odd columns (eo), so that every transform reads unit strides;
   in_block transforms 8 tiles per call into V (vector loads and stores, LLVM IR);
2. 16 GEMMs on the forward's register block (kernels.regblock._tap_block: 4 filters x 24 tiles, 12 accumulators in
   registers over the C channels), into M;
3. out_block transforms 8 tiles of M per call into 2 x 16 outputs (interleaved in registers, stored whole, or
   masked at a row's end) and adds the bias.
The transforms add and subtract only (the weights are transformed in float64): the numbers differ from the direct
sum's by rounding. Numba's own loops did not vectorise the transforms (each loop's many pointers exceeded LLVM's
run-time overlap checks), hence the intrinsics.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types, uint64
from numba.core import cgutils, config
from numba.extending import intrinsic

from kernels.regblock import TAP_G, TAP_R, _tap_block

# G of F(2x2, 3x3) (see above)
_G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])
LANES = 8  # float32 per 32-byte vector: tiles per in_block / out_block
BLOCK = TAP_R * LANES  # tiles per GEMM register block


def weights(w: np.ndarray) -> np.ndarray:
    """U (16, F, C) in w's dtype: U[4*i + j, f, c] = (G w[f, c] G^T)[i, j], computed in float64."""
    F, C = w.shape[0], w.shape[1]
    u = np.einsum("ai,fcij,bj->abfc", _G, w.astype(np.float64), _G, optimize=True)
    return np.ascontiguousarray(u.reshape(16, F, C), dtype=w.dtype)


def tiles(Hout: int, Wout: int) -> tuple[int, int]:
    """(TH, TW): rows and columns of 2x2 output tiles covering Hout x Wout outputs (the last may overhang)."""
    return -(-Hout // 2), -(-Wout // 2)


@njit(cache=True, nogil=True)
def layout(TW, R):
    """(Wh, Tp) for blocks of R rows of TW tiles: Wh the length of eo's rows (the tiles' column slots, a vector's
    reach past the last one, zeros), Tp the tiles per channel in V and M (R*TW and a vector's overhang, rounded up to
    whole GEMM blocks). Jitted: forward() and the callers that size its buffers share it."""
    Wh = (TW + LANES - 1) // LANES * LANES + LANES
    Tp = (R * TW + LANES + BLOCK - 1) // BLOCK * BLOCK
    return Wh, Tp


def _vec(builder):
    return ir.VectorType(ir.FloatType(), LANES)


def _load(builder, ptr, off):
    return builder.load(builder.bitcast(builder.gep(ptr, [off]), _vec(builder).as_pointer()), align=4)


def _store(builder, value, ptr, off):
    builder.store(value, builder.bitcast(builder.gep(ptr, [off]), _vec(builder).as_pointer()), align=4)


def _f32_vectors(*arrays) -> bool:
    return all(isinstance(a, types.Array) and a.dtype == types.float32 and a.layout == "C" and a.ndim == 1
               for a in arrays)


@intrinsic
def in_block(typingctx, eo, V, e0, half, wh, q, vs):
    """8 tiles l < 8: V[q + xi*vs + l] = (B^T d B)[i, j] (xi = 4*i + j) of the tile whose input rows k < 4 have their
    even columns at eo[e0 + k*wh + l], eo[e0 + k*wh + l + 1] and their odd columns at the same places + half. eo, V:
    1-D C-contiguous float32; no bounds checks (forward checks its buffers once per call)."""
    if not _f32_vectors(eo, V):
        return None
    sig = types.void(eo, V, e0, half, wh, q, vs)

    def codegen(context, builder, signature, args):
        ep, vp = (context.make_array(t)(context, builder, a).data for t, a in zip(signature.args[:2], args[:2]))
        e0_, half_, wh_, q_, vs_ = (context.cast(builder, a, t, types.int64)
                                    for t, a in zip(signature.args[2:], args[2:]))
        i64 = ir.IntType(64)
        t = []  # B^T d for each of the tile's 4 columns (even l, odd l, even l + 1, odd l + 1): rows 0..3
        for parity, shift in ((None, 0), (half_, 0), (None, 1), (half_, 1)):
            d = []
            for k in range(4):
                off = builder.add(builder.add(e0_, builder.mul(wh_, ir.Constant(i64, k))), ir.Constant(i64, shift))
                d.append(_load(builder, ep, off if parity is None else builder.add(off, parity)))
            t.append((builder.fsub(d[0], d[2]), builder.fadd(d[1], d[2]), builder.fsub(d[2], d[1]),
                      builder.fsub(d[1], d[3])))
        for i in range(4):  # (B^T d) B, row i
            a, b, e, g = t[0][i], t[1][i], t[2][i], t[3][i]
            for j, value in enumerate((builder.fsub(a, e), builder.fadd(b, e), builder.fsub(e, b), builder.fsub(b, g))):
                _store(builder, value, vp, builder.add(q_, builder.mul(vs_, ir.Constant(i64, 4 * i + j))))
        return context.get_dummy_value()
    return sig, codegen


@intrinsic
def out_block(typingctx, Mf, out, r, ms, o, wo, bias, nvalid, rows):
    """8 tiles l < 8 of M (Mf[r + xi*ms + l], xi < 16) -> out[o + a*wo + 2*l + e] = (A^T M A)[a, e] + bias for the
    rows a < rows (1 or 2) and the first nvalid (<= 16) of each row's 16 columns (stored whole when nvalid = 16,
    else through llvm.masked.store, which leaves the other places untouched). Mf, out: 1-D C-contiguous float32."""
    if not _f32_vectors(Mf, out):
        return None
    sig = types.void(Mf, out, r, ms, o, wo, types.float32, nvalid, rows)

    def codegen(context, builder, signature, args):
        mp, op = (context.make_array(t)(context, builder, a).data for t, a in zip(signature.args[:2], args[:2]))
        r_, ms_, o_, wo_ = (context.cast(builder, a, t, types.int64) for t, a in zip(signature.args[2:6], args[2:6]))
        nv_, rows_ = (context.cast(builder, a, t, types.int64) for t, a in zip(signature.args[7:], args[7:]))
        i32, i64 = ir.IntType(32), ir.IntType(64)
        vt = _vec(builder)

        def splat(value, vtype):
            undef = ir.Constant(vtype, ir.Undefined)
            first = builder.insert_element(undef, value, ir.Constant(i32, 0))
            return builder.shuffle_vector(first, undef, ir.Constant(ir.VectorType(i32, LANES), [0] * LANES))

        m = [_load(builder, mp, builder.add(r_, builder.mul(ms_, ir.Constant(i64, xi)))) for xi in range(16)]
        bias_ = splat(args[6], vt)
        s = [builder.fadd(builder.fadd(m[j], m[4 + j]), m[8 + j]) for j in range(4)]  # (A^T M) row 0
        d = [builder.fsub(builder.fsub(m[4 + j], m[8 + j]), m[12 + j]) for j in range(4)]  # row 1
        halves = []
        for v in (s, d):  # (A^T M) A: columns 2l and 2l + 1, interleaved into 16 consecutive outputs
            y0 = builder.fadd(builder.fadd(builder.fadd(v[0], v[1]), v[2]), bias_)
            y1 = builder.fadd(builder.fsub(builder.fsub(v[1], v[2]), v[3]), bias_)
            halves.append([builder.shuffle_vector(y0, y1, ir.Constant(ir.VectorType(i32, LANES), order))
                           for order in ([0, 8, 1, 9, 2, 10, 3, 11], [4, 12, 5, 13, 6, 14, 7, 15])])
        mask_t = ir.VectorType(ir.IntType(1), LANES)
        masked_store = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [vt, vt.as_pointer(), i32, mask_t]),
            "llvm.masked.store.v8f32.p0v8f32")
        lane = ir.Constant(ir.VectorType(i64, LANES), list(range(LANES)))
        nv = splat(nv_, ir.VectorType(i64, LANES))
        masks = (builder.icmp_signed("<", lane, nv),
                 builder.icmp_signed("<", builder.add(lane, ir.Constant(ir.VectorType(i64, LANES), [LANES] * LANES)),
                                     nv))
        whole = builder.icmp_signed("==", nv_, ir.Constant(i64, 2 * LANES))
        for a in range(2):
            with builder.if_then(builder.icmp_signed(">", rows_, ir.Constant(i64, a)), likely=True):
                base = builder.add(o_, builder.mul(wo_, ir.Constant(i64, a)))
                ptrs = [builder.bitcast(builder.gep(op, [builder.add(base, ir.Constant(i64, h * LANES))]),
                                        vt.as_pointer()) for h in range(2)]
                with builder.if_else(whole, likely=True) as (then, otherwise):
                    with then:
                        for h in range(2):
                            builder.store(halves[a][h], ptrs[h], align=4)
                    with otherwise:
                        for h in range(2):
                            builder.call(masked_store, [halves[a][h], ptrs[h], ir.Constant(i32, 4), masks[h]])
        return context.get_dummy_value()
    return sig, codegen


def in_block_numpy(eo, V, e0, half, wh, q, vs):
    """in_block's numbers in numpy, for NUMBA_DISABLE_JIT=1."""
    lane = np.arange(LANES)
    cols = [[eo[e0 + k * wh + lane + shift + extra] for k in range(4)]
            for extra, shift in ((0, 0), (half, 0), (0, 1), (half, 1))]
    t = [(d[0] - d[2], d[1] + d[2], d[2] - d[1], d[1] - d[3]) for d in cols]
    for i in range(4):
        a, b, e, g = t[0][i], t[1][i], t[2][i], t[3][i]
        for j, value in enumerate((a - e, b + e, e - b, b - g)):
            V[q + (4 * i + j) * vs + lane] = value


def out_block_numpy(Mf, out, r, ms, o, wo, bias, nvalid, rows):
    """out_block's numbers in numpy, for NUMBA_DISABLE_JIT=1."""
    m = [Mf[r + xi * ms + np.arange(LANES)] for xi in range(16)]
    s = [m[j] + m[4 + j] + m[8 + j] for j in range(4)]
    d = [m[4 + j] - m[8 + j] - m[12 + j] for j in range(4)]
    for a, v in enumerate((s, d)[:rows]):
        row = np.empty(2 * LANES, np.float32)
        row[0::2] = v[0] + v[1] + v[2] + bias
        row[1::2] = v[1] - v[2] - v[3] + bias
        out[o + a * wo:o + a * wo + nvalid] = row[:nvalid]


if config.DISABLE_JIT:
    in_block = in_block_numpy  # noqa: F811
    out_block = out_block_numpy  # noqa: F811


@njit(cache=True, nogil=True)
def forward(x, U, b, pad, n0, n1, out, R, eo, V, M2):
    """out[n0:n1] = the 3x3 stride-1 convolution of x[n0:n1] (zero padding pad) with the filters whose transform is
    U (16, F, C) (weights()), plus b: each sample in blocks of R rows of tiles (see the module docstring). eo, V, M2:
    scratch of at least 2*(2R + 2)*Wh, 16*(C*Tp + 16) and (16*(F + 1), Tp) floats (layout()); eo must hold zeros
    wherever this geometry never writes (the padding's places: allocate it zeroed and use it for one geometry only).
    All float32, C-contiguous. Raises ValueError for buffers too small (the intrinsics have no bounds checks)."""
    N, C, H, W = x.shape
    F, Hout, Wout = out.shape[1], out.shape[2], out.shape[3]
    TH, TW = (Hout + 1) // 2, (Wout + 1) // 2
    Wh, Tp = layout(TW, R)
    VS = C * Tp + 16  # V's planes 16 floats further apart than their size: at a multiple of 4 KB the 16 streams
    MS = (F + 1) * Tp  # of a transform would share one L1 cache set; M's likewise, by a row of padding per plane
    half = (2 * R + 2) * Wh  # eo's odd columns
    if U.shape[0] != 16 or U.shape[1] != F or U.shape[2] != C or b.shape[0] != F or n1 > min(N, out.shape[0]) \
            or Hout != H + 2 * pad - 2 or Wout != W + 2 * pad - 2 or R < 1 or eo.size < 2 * half \
            or V.size < 16 * VS or M2.shape[0] < 16 * (F + 1) or M2.shape[1] != Tp:
        raise ValueError("winograd convolution: buffers too small for the geometry")
    taps = np.empty((16, C), np.int64)  # V's rows, for _tap_block
    for xi in range(16):
        for c in range(C):
            taps[xi, c] = xi * VS + c * Tp
    zero_bias = np.zeros(F, np.float32)  # the bias is added by out_block
    xf = x.reshape(-1)
    of = out.reshape(-1)
    Mf = M2.reshape(-1)
    je0, je1 = (pad + 1) // 2, (W - 1 + pad) // 2 + 1  # eo's even slots j with input: x column 2j - pad
    jo0, jo1 = pad // 2, (W - 2 + pad) // 2 + 1  # odd slots: x column 2j + 1 - pad
    ne, no = uint64(max(0, je1 - je0)), uint64(max(0, jo1 - jo0))
    zero = np.float32(0)
    for n in range(n0, n1):
        for ti0 in range(0, TH, R):
            nti = min(R, TH - ti0)
            T = nti * TW
            for c in range(C):
                base = (n * C + c) * H * W
                for k in range(2 * nti + 2):  # the block's input rows, split by column parity
                    y = 2 * ti0 - pad + k
                    ev = uint64(k * Wh + je0)
                    od = uint64(half + k * Wh + jo0)
                    if 0 <= y < H:
                        src = uint64(base + y * W + 2 * je0 - pad)
                        for j in range(ne):
                            eo[ev + j] = xf[src + j + j]
                        src = uint64(base + y * W + 2 * jo0 + 1 - pad)
                        for j in range(no):
                            eo[od + j] = xf[src + j + j]
                    else:
                        for j in range(ne):
                            eo[ev + j] = zero
                        for j in range(no):
                            eo[od + j] = zero
                for lt in range(nti):  # a row's last call writes past its TW tiles: the next row overwrites them
                    for tj0 in range(0, TW, LANES):
                        in_block(eo, V, 2 * lt * Wh + tj0, half, Wh, c * Tp + lt * TW + tj0, VS)
            for xi in range(16):
                Ux = U[xi]
                tx = taps[xi]
                for f in range(0, F, TAP_G):
                    for q in range(0, T, BLOCK):
                        _tap_block(V, Ux, tx, zero_bias, M2, xi * (F + 1), f, q,  # whole vectors
                                   None, None, None, None)
            for f in range(F):
                bias = b[f]
                for lt in range(nti):
                    ti = ti0 + lt
                    rows = min(2, Hout - 2 * ti)
                    for tj0 in range(0, TW, LANES):
                        out_block(Mf, of, f * Tp + lt * TW + tj0, MS, ((n * F + f) * Hout + 2 * ti) * Wout + 2 * tj0,
                                  Wout, bias, min(2 * LANES, Wout - 2 * tj0), rows)
