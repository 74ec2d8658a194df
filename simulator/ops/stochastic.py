"""Seeded structural ops of lecture 8: fractional max pooling (Graham 2014) and stochastic depth (Huang et al. 2016).

Both draw their randomness from a `seed` attribute, so a graph holding them is a fixed function of its inputs: it can
be stepped, replayed and gradient-checked, and a network's graph uses the seed its forward pass used.
"""
from __future__ import annotations

import numpy as np

from simulator.core.errors import ShapeError
from simulator.functional import layers as L
from simulator.ops.registry import ELEMENTWISE_SHAPES, AttrSpec, OpSpec, register, shape_str

_SEED = AttrSpec("seed", 0, "int", "random seed of the draw", minimum=0, maximum=2**32 - 1)


# ---- fractional max pooling -------------------------------------------------------------------------------------

def fractional_maxpool2d_forward(x, ratio=2 ** -0.5, seed=0, mode="train"):
    """x: (N, C, H, W) -> (N, C, floor(H·ratio), floor(W·ratio)): the maximum of 2x2 windows at pseudo-random
    positions drawn from `seed` (train: per example and channel; test: one draw per channel for every example)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 4:
        raise ShapeError(f"fractional_maxpool2d: x has shape {shape_str(x.shape)}; expected 4-D (N, C, H, W)")
    samples = L.fractional_pool_samples(x.shape[0], x.shape[1], seed, np.float64, shared=mode == "test")
    return L.fractional_max_pool_forward(x, ratio, samples)


def fractional_maxpool2d_backward(dout, cache):
    return (L.fractional_max_pool_backward(np.asarray(dout, dtype=np.float64), cache),)


def fractional_maxpool2d_shape(sx, ratio=2 ** -0.5, seed=0, mode="train"):
    sx = tuple(sx)
    if len(sx) != 4:
        raise ShapeError(f"fractional_maxpool2d: x has shape {shape_str(sx)}; expected 4-D (N, C, H, W)")
    ho, wo = int(sx[2] * ratio), int(sx[3] * ratio)
    if min(sx) < 1 or ho < 1 or wo < 1 or ho + 1 > sx[2] or wo + 1 > sx[3]:
        raise ShapeError(f"fractional_maxpool2d: x has shape {shape_str(sx)}, too small for 2x2 windows at ratio "
                         f"{ratio:g} (the output would be {ho}x{wo})")
    return (sx[0], sx[1], ho, wo)


def _fractional_samples(rng):
    def distinct(shape):   # values 0.05 apart: a 1e-5 nudge never changes a window's maximum
        n = int(np.prod(shape))
        return (rng.permutation(n) * 0.05 - 0.025 * n).reshape(shape)
    cases = (((1, 1, 5, 5), 0.75, "train"), ((2, 3, 7, 6), 2 ** -0.5, "train"), ((2, 2, 8, 8), 0.6, "train"),
             ((2, 2, 9, 7), 0.8, "test"))
    return [((distinct(s),), {"ratio": r, "seed": i, "mode": m}) for i, (s, r, m) in enumerate(cases)]


register(OpSpec(
    name="fractional_maxpool2d", family="convolution", inputs=("x",), forward=fractional_maxpool2d_forward,
    backward=fractional_maxpool2d_backward, infer_shape=fractional_maxpool2d_shape, symbol="fmax ×{ratio}",
    formula="out[n, c, i, j] = max of x[n, c, a_i : a_i + 2, b_j : b_j + 2],  a_i = ⌊(i + u)α⌋ − ⌊uα⌋, "
            "α = (H − 2) / (Hout − 1)",
    local_grad={"x": "1 at each window's maximum, 0 elsewhere (overlapping windows add up)"},
    doc="Fractional max pooling (Graham 2014), as PyTorch's FractionalMaxPool2d(2, output_ratio=ratio): the output "
        "is ratio times the input (floor), e.g. 1/√2, a gentler shrink than 2x2 pooling's 1/2. The 2x2 windows start "
        "at a pseudo-random sequence of rows and columns drawn from u in [0, 1) per example and channel; a trainer "
        "draws new regions every step, and a test pass averages several draws. The steps are ⌊α⌋ or ⌈α⌉: 1 or 2 "
        "when 2·Hout ≥ H, so every row is pooled; for an odd H at a ratio just above 1/2 a step of 3 skips a row, "
        "as in torch (H = 7 at ratio 0.51: windows at rows 0, 2, 5, row 4 never pooled, or 0, 3, 5).",
    sample=_fractional_samples,
    attrs=(AttrSpec("ratio", 2 ** -0.5, "float", "output size / input size, in (1/2, 1)", minimum=0.5, maximum=1.0),
           _SEED,
           AttrSpec("mode", "train", "choice", "train: regions per example and channel; test: one draw per channel",
                    choices=("train", "test")))))


# ---- stochastic depth -------------------------------------------------------------------------------------------

def stochastic_depth_forward(x, p=0.2, seed=0, per="row", mode="train"):
    """x: (N, ...), a residual branch. Train: each example's branch (per="row") or the batch's (per="batch") is
    dropped with probability p, the kept ones scaled by 1/(1 − p); test: the identity."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim < 1:
        raise ShapeError("stochastic_depth: x needs a batch axis, got a scalar")
    return L.stochastic_depth_forward(x, p, per, mode == "train", seed)


def stochastic_depth_backward(dout, cache):
    return (L.stochastic_depth_backward(np.asarray(dout, dtype=np.float64), cache),)


def _sd_shape(sx, p=0.2, seed=0, per="row", mode="train"):
    if len(sx) < 1:
        raise ShapeError("stochastic_depth: x needs a batch axis, got a scalar")
    return tuple(sx)


def _sd_samples(rng):
    out = [((rng.normal(size=s),), {"p": (0.5, 0.3, 0.0)[i % 3], "seed": i, "per": ("row", "batch")[i % 2]})
           for i, s in enumerate(ELEMENTWISE_SHAPES[1:] + ((6, 2, 3, 3),))]
    out.append(((rng.normal(size=(3, 2)),), {"p": 0.5, "seed": 1, "mode": "test"}))
    return out


register(OpSpec(
    name="stochastic_depth", family="regularization", inputs=("x",), forward=stochastic_depth_forward,
    backward=stochastic_depth_backward, infer_shape=_sd_shape, symbol="depth {p}",
    formula="train: out[n] = x[n] · m[n] / (1 − p), m ~ Bernoulli(1 − p) per example (row) or per batch;  "
            "test: out = x",
    local_grad={"x": "m[n] / (1 − p): 0 for a dropped branch, 1/(1 − p) for a kept one (test: 1)"},
    doc="Stochastic depth (Huang et al. 2016), torchvision.ops.stochastic_depth: applied to a residual branch F(x), "
        "it drops the whole branch with probability p, so the block is just its shortcut for that example (row) or "
        "batch, and scales survivors by 1/(1 − p) so the expected output is F(x) and test mode is the identity.",
    sample=_sd_samples,
    attrs=(AttrSpec("p", 0.2, "float", "probability of dropping the branch, in [0, 1)", minimum=0.0, maximum=0.999),
           _SEED,
           AttrSpec("per", "row", "choice", "row: one draw per example; batch: one draw for the whole batch",
                    choices=("row", "batch")),
           AttrSpec("mode", "train", "choice", "train: drop and rescale; test: pass x through",
                    choices=("train", "test")))))
