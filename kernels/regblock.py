"""Register blocks in LLVM IR, shared by the convolution kernels (kernels.conv, kernels.winograd).

Numba's loops keep no vector in a register from one iteration to the next, so the inner products that dominate a
convolution are written as @intrinsic functions that emit LLVM IR: vector loads, llvm.fmuladd and a loop over the
taps whose accumulators stay in registers. Each has a numpy stand-in for NUMBA_DISABLE_JIT=1 (an intrinsic has no
Python body).
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils, config
from numba.extending import intrinsic

# The register block (_tap_block): TAP_G filters x TAP_R vectors of 32 bytes (8 float32 or 4 float64 outputs),
# TAP_G * TAP_R = 12 accumulators + TAP_R inputs + 1 weight = the 16 vector registers of AVX2.
TAP_G, TAP_R = 4, 3


def _vector_ir(context, builder, dtype) -> tuple:
    """(V, vector type, llvm.fmuladd on it) for the register blocks: V elements of the Numba float `dtype` per 32-byte
    vector. llvm.fmuladd is one FMA instruction where the CPU has them, a multiply and an add where it has not
    (llvm.fma would call libm's fmaf per lane there)."""
    V = 32 // (4 if dtype == types.float32 else 8)
    vtype = ir.VectorType(context.get_value_type(dtype), V)
    fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vtype, [vtype] * 3),
                                         "llvm.fmuladd.v%d%s" % (V, "f32" if V == 8 else "f64"))
    return V, vtype, fma


@intrinsic
def _tap_block(typingctx, xp, w, taps, b, out, p0, f0, q0, lanes, full, junk, vofs):
    """One register block of the direct forward (kernels.conv._direct) and of Winograd's GEMMs (kernels.winograd): for
    g < TAP_G and lane v < V (the 32-byte vector width) of vector r < TAP_R, the output b[f] + sum_t w[f, t] *
    xp[taps[t] + q0 + vofs[r] + v] of filter f = min(f0 + g, F - 1) goes to out[p0 + f, lanes[r * V + v]] (lanes <
    0: a dropped position, written to junk instead; a position may run past its plane into the planes after it). Its
    TAP_G * TAP_R accumulator vectors stay in registers over all the taps t; each weight is broadcast from memory
    (one load for TAP_R multiply-adds) and each input vector loaded once for the TAP_G filters. A vector whose lanes
    are consecutive outputs (full[r] != 0) is stored whole, any other lane by lane. With lanes, full, junk and vofs
    all None, vector r reads xp[taps[t] + q0 + r * V + v] and goes whole to out[p0 + f, q0 + r * V + v] (the GEMMs'
    case: a smaller function, quicker to compile). Past the last filter a row repeats filter F - 1, which writes the
    same numbers to the same place again. Written in LLVM IR because Numba's loops cannot keep vectors in registers
    across a loop; each multiply-add is llvm.fmuladd (see _vector_ir). No bounds checks here: its callers check
    their buffers' sizes once per call. xp, w (F, taps), b, out (planes, positions), junk: C-contiguous arrays of
    one float dtype; taps (offsets into xp), lanes (TAP_R * V,), full and vofs (TAP_R,): 64-bit integers."""
    whole = all(isinstance(a, types.NoneType) for a in (lanes, full, junk, vofs))
    floats = (xp, w, b, out) if whole else (xp, w, b, out, junk)
    ints = (taps,) if whole else (taps, lanes, full, vofs)
    if not all(isinstance(a, types.Array) and a.layout == "C" and a.dtype == xp.dtype for a in floats) \
            or xp.dtype not in (types.float32, types.float64) \
            or not all(isinstance(a, types.Array) and a.layout == "C" and isinstance(a.dtype, types.Integer)
                       and a.dtype.bitwidth == 64 and a.ndim == 1 for a in ints) \
            or (w.ndim, out.ndim, xp.ndim, b.ndim) != (2, 2, 1, 1) or not (whole or junk.ndim == 1):
        return None
    sig = types.void(xp, w, taps, b, out, p0, f0, q0, lanes, full, junk, vofs)

    def codegen(context, builder, signature, args):
        xa, wa, ta, ba, oa = (context.make_array(ty)(context, builder, v)
                              for ty, v in zip(signature.args[:5], args[:5]))
        if not whole:
            la, fa, ja, va = (context.make_array(ty)(context, builder, v)
                              for ty, v in zip(signature.args[8:], args[8:]))
        p0_, f0_, q0_ = (context.cast(builder, v, ty, types.int64) for ty, v in zip(signature.args[5:8], args[5:8]))
        i64 = ir.IntType(64)
        V, vtype, fma = _vector_ir(context, builder, signature.args[0].dtype)
        undef = ir.Constant(vtype, ir.Undefined)
        lanes0 = ir.Constant(ir.VectorType(ir.IntType(32), V), [0] * V)

        def splat(value):
            return builder.shuffle_vector(builder.insert_element(undef, value, ir.Constant(ir.IntType(32), 0)),
                                          undef, lanes0)

        def const(v):
            return ir.Constant(i64, v)

        def at(ptr, i):
            return builder.gep(ptr, [i])

        ntaps = cgutils.unpack_tuple(builder, ta.shape)[0]
        offsets = ([const(r * V) for r in range(TAP_R)] if whole
                   else [builder.load(at(va.data, const(r))) for r in range(TAP_R)])
        last = builder.sub(cgutils.unpack_tuple(builder, wa.shape)[0], const(1))
        plane = cgutils.unpack_tuple(builder, oa.shape)[1]
        acc, wrows, planes = [], [], []
        for g in range(TAP_G):
            f = builder.add(f0_, const(g))
            f = builder.select(builder.icmp_signed("<", f, last), f, last)
            wrows.append(at(wa.data, builder.mul(f, ntaps)))
            planes.append(at(oa.data, builder.mul(builder.add(p0_, f), plane)))
            bias = splat(builder.load(at(ba.data, f)))
            row = [cgutils.alloca_once(builder, vtype) for _ in range(TAP_R)]
            for slot in row:
                builder.store(bias, slot)
            acc.append(row)
        with cgutils.for_range(builder, ntaps) as loop:
            t = loop.index
            base = builder.add(builder.load(at(ta.data, t)), q0_)
            inputs = [builder.load(builder.bitcast(at(xa.data, builder.add(base, offsets[r])), vtype.as_pointer()),
                                   align=4) for r in range(TAP_R)]
            for g in range(TAP_G):
                weight = splat(builder.load(at(wrows[g], t)))
                for r in range(TAP_R):
                    builder.store(builder.call(fma, [weight, inputs[r], builder.load(acc[g][r])]), acc[g][r])
        if whole:
            for r in range(TAP_R):
                for g in range(TAP_G):
                    dst = builder.bitcast(at(planes[g], builder.add(q0_, const(r * V))), vtype.as_pointer())
                    builder.store(builder.load(acc[g][r]), dst, align=4)
            return context.get_dummy_value()
        for r in range(TAP_R):
            consecutive = builder.icmp_signed("!=", builder.load(at(fa.data, const(r))), const(0))
            with builder.if_else(consecutive, likely=True) as (then, otherwise):
                with then:
                    start = builder.load(at(la.data, const(r * V)))
                    for g in range(TAP_G):
                        dst = builder.bitcast(at(planes[g], start), vtype.as_pointer())
                        builder.store(builder.load(acc[g][r]), dst, align=4)
                with otherwise:
                    for v in range(V):
                        pos = builder.load(at(la.data, const(r * V + v)))
                        dropped = builder.icmp_signed("<", pos, const(0))
                        for g in range(TAP_G):
                            value = builder.extract_element(builder.load(acc[g][r]), ir.Constant(ir.IntType(32), v))
                            builder.store(value, builder.select(dropped, at(ja.data, const(v)), at(planes[g], pos)))
        return context.get_dummy_value()
    return sig, codegen


def _tap_block_numpy(xp, w, taps, b, out, p0, f0, q0, lanes, full, junk, vofs):
    """_tap_block's numbers in numpy (a sum of products per tap, not fused), for NUMBA_DISABLE_JIT=1: an intrinsic
    has no Python body."""
    V = 32 // xp.itemsize
    if lanes is None:  # the GEMMs' case: consecutive positions from q0
        lanes = q0 + np.arange(TAP_R * V)
        vofs = np.arange(TAP_R) * V
    rows = np.minimum(np.arange(f0, f0 + TAP_G), w.shape[0] - 1)
    where = (q0 + np.asarray(vofs, np.int64)[:, None] + np.arange(V)).reshape(-1)   # (B,) input offsets of the lanes
    block = xp[taps.astype(np.int64)[:, None] + where]  # (taps, B)
    values = b[rows, None] + (w[rows][:, :, None] * block[None]).sum(axis=1)
    kept = lanes >= 0
    flat = out.reshape(-1)   # a position may run past its plane into the next ones
    flat[((p0 + rows) * out.shape[1])[:, None] + lanes[kept][None, :]] = values[:, kept]


if config.DISABLE_JIT:
    _tap_block = _tap_block_numpy  # noqa: F811
