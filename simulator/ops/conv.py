"""Convolution ops: conv2d, maxpool2d, avgpool2d on NCHW tensors, over simulator/layers.py and the Numba kernels."""
from __future__ import annotations

import numpy as np

from simulator.functional import layers as L
from simulator.core.errors import ShapeError
from simulator.ops.registry import AttrSpec, OpSpec, register, shape_str


def _f64(*arrays):
    return [np.asarray(a, dtype=np.float64) for a in arrays]


# ---- conv2d ---------------------------------------------------------------------------------------------------

def conv2d_forward(x, w, b, stride=1, pad=0):
    """x: (N, C, H, W); w: (F, C, HH, WW); b: (F,). out: (N, F, Hout, Wout)."""
    return L.conv_forward(*_f64(x, w, b), stride, pad)


def conv2d_backward(dout, cache):
    """Returns (dx, dw, db)."""
    return L.conv_backward(np.asarray(dout, dtype=np.float64), cache)


def conv_out_size(size: int, k: int, stride: int, pad: int) -> int:
    """(size + 2 pad − k) // stride + 1: floor, as PyTorch."""
    return (size + 2 * pad - k) // stride + 1


def conv2d_shape(sx, sw, sb, stride=1, pad=0):
    sx, sw, sb = tuple(sx), tuple(sw), tuple(sb)
    if len(sx) != 4 or len(sw) != 4:
        raise ShapeError(f"conv2d: x has shape {shape_str(sx)} and w has shape {shape_str(sw)}; "
                         f"expected x (N, C, H, W) and w (F, C, HH, WW)")
    if sx[1] != sw[1]:
        raise ShapeError(f"conv2d: x has shape {shape_str(sx)} with {sx[1]} channels but w has shape "
                         f"{shape_str(sw)} expecting {sw[1]}")
    if sb != (sw[0],):
        raise ShapeError(f"conv2d: b has shape {shape_str(sb)} but w has shape {shape_str(sw)}: "
                         f"one bias per filter, shape ({sw[0]},)")
    hout = conv_out_size(sx[2], sw[2], stride, pad)
    wout = conv_out_size(sx[3], sw[3], stride, pad)
    if min(sx + sw) < 1 or hout < 1 or wout < 1:
        raise ShapeError(f"conv2d: x has shape {shape_str(sx)} and w has shape {shape_str(sw)}: with pad {pad} "
                         f"and stride {stride} the output would be {hout}x{wout}")
    return (sx[0], sw[0], hout, wout)


def _conv_samples(rng):
    cases = [((1, 1, 4, 4), (1, 1, 3, 3), 1, 0), ((2, 3, 4, 5), (3, 3, 3, 3), 1, 1),
             ((2, 2, 6, 5), (3, 2, 3, 2), 2, 1), ((1, 2, 5, 7), (2, 2, 1, 1), 1, 0),
             ((2, 1, 7, 7), (2, 1, 3, 3), 3, 2)]
    return [((rng.normal(size=sx), rng.normal(size=sw), rng.normal(size=sw[0])), {"stride": s, "pad": p})
            for sx, sw, s, p in cases]


_STRIDE = AttrSpec("stride", 1, "int", "step of the window, in pixels", minimum=1, maximum=64)

register(OpSpec(
    name="conv2d", family="convolution", inputs=("x", "w", "b"), forward=conv2d_forward, backward=conv2d_backward,
    infer_shape=conv2d_shape, symbol="conv",
    formula="out[n, f, i, j] = b[f] + Σ_c Σ_p Σ_q w[f, c, p, q] · xpad[n, c, i·s + p, j·s + q]",
    local_grad={"x": "dL/dx = Σ over windows of w · dL/dout (a 'full' convolution with the flipped filters)",
                "w": "dL/dw[f] = Σ over positions of dL/dout[f] · the window of x it saw",
                "b": "dL/db[f] = Σ over n, i, j of dL/dout[n, f, i, j]"},
    doc="2-D convolution (cross-correlation, as every framework computes it) of x (N, C, H, W) with F filters "
        "w (F, C, HH, WW) plus a bias b (F,), with zero padding `pad` on each side and step `stride`. "
        "Output (N, F, Hout, Wout), Hout = (H + 2·pad − HH) // stride + 1: each filter slides over x and takes a "
        "dot product at every position, so one small set of weights is shared across the whole image.",
    sample=_conv_samples,
    attrs=(_STRIDE, AttrSpec("pad", 0, "int", "zeros added on each side of H and W", minimum=0, maximum=64))))


# ---- pooling --------------------------------------------------------------------------------------------------

def _pool_shape(op):
    def rule(sx, size=2, stride=2):
        sx = tuple(sx)
        if len(sx) != 4:
            raise ShapeError(f"{op}: x has shape {shape_str(sx)}; expected 4-D (N, C, H, W)")
        if min(sx) < 1 or size > sx[2] or size > sx[3]:
            raise ShapeError(f"{op}: x has shape {shape_str(sx)}, smaller than the {size}x{size} window")
        return (sx[0], sx[1], (sx[2] - size) // stride + 1, (sx[3] - size) // stride + 1)
    return rule


def maxpool2d_forward(x, size=2, stride=2):
    """x: (N, C, H, W). out: (N, C, Hout, Wout), the maximum of each size x size window."""
    return L.max_pool_forward(np.asarray(x, dtype=np.float64), size, stride)


def maxpool2d_backward(dout, cache):
    return (L.max_pool_backward(np.asarray(dout, dtype=np.float64), cache),)


def avgpool2d_forward(x, size=2, stride=2):
    """x: (N, C, H, W). out: (N, C, Hout, Wout), the mean of each size x size window."""
    return L.avg_pool_forward(np.asarray(x, dtype=np.float64), size, stride)


def avgpool2d_backward(dout, cache):
    return (L.avg_pool_backward(np.asarray(dout, dtype=np.float64), cache),)


_POOL_CASES = (((1, 1, 4, 4), 2, 2), ((2, 3, 6, 5), 2, 2), ((1, 2, 7, 7), 3, 2), ((2, 2, 5, 6), 2, 1),
               ((1, 1, 5, 5), 3, 3))


def _distinct(rng, shape):
    """Values 0.05 apart in a random order: no window has a tie, and a 1e-5 nudge never changes its maximum."""
    n = int(np.prod(shape))
    return (rng.permutation(n) * 0.05 - 0.025 * n).reshape(shape)


def _maxpool_samples(rng):
    return [((_distinct(rng, s),), {"size": k, "stride": st}) for s, k, st in _POOL_CASES]


def _avgpool_samples(rng):
    return [((rng.normal(size=s),), {"size": k, "stride": st}) for s, k, st in _POOL_CASES]


_SIZE = AttrSpec("size", 2, "int", "height and width of the square window", minimum=1, maximum=64)
_POOL_STRIDE = AttrSpec("stride", 2, "int", "step of the window (stride = size: windows tile without overlap)", minimum=1,
                        maximum=64)

register(OpSpec(
    name="maxpool2d", family="convolution", inputs=("x",), forward=maxpool2d_forward, backward=maxpool2d_backward,
    infer_shape=_pool_shape("maxpool2d"), symbol="max {size}×{size}",
    formula="out[n, c, i, j] = max over the window at (i·s, j·s) of x[n, c, ·, ·]",
    local_grad={"x": "1 at each window's maximum, 0 elsewhere (the gradient is routed, not spread)"},
    doc="Max pooling over size x size windows with step `stride` (floor mode: rows and columns that do not fill a "
        "window are dropped, as PyTorch). Downsamples and gives a little translation invariance; in backward only "
        "the winner of each window receives gradient. Ties go to the first element in row-major order.",
    sample=_maxpool_samples, attrs=(_SIZE, _POOL_STRIDE)))

register(OpSpec(
    name="avgpool2d", family="convolution", inputs=("x",), forward=avgpool2d_forward, backward=avgpool2d_backward,
    infer_shape=_pool_shape("avgpool2d"), symbol="avg {size}×{size}",
    formula="out[n, c, i, j] = mean over the window at (i·s, j·s) of x[n, c, ·, ·]",
    local_grad={"x": "1/(size²) to every element of each window"},
    doc="Average pooling over size x size windows with step `stride` (floor mode, as maxpool2d): every input in a "
        "window gets an equal share of the gradient.",
    sample=_avgpool_samples, attrs=(_SIZE, _POOL_STRIDE)))
