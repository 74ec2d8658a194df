"""Normalisation ops: batchnorm, layernorm, instancenorm, groupnorm, over simulator/layers.py and the Numba kernels.

batchnorm here is train mode only: it normalises with the statistics of the batch it is given. A graph op holds no
state between runs, so the running mean and variance that evaluation uses (updated with momentum after each training
step, PyTorch's convention) belong to whoever owns the training loop: the network trainer calls
simulator.functional.layers.batchnorm_forward with its own bn_param dict (mode 'train' or 'test'). In a graph, evaluation-mode
batch norm is an affine map with constants, (x − running_mean) / √(running_var + ε) · γ + β, buildable from
arithmetic ops.
"""
from __future__ import annotations

import numpy as np

from simulator.functional import layers as L
from simulator.core.errors import ShapeError
from simulator.ops.registry import AttrSpec, OpSpec, register, shape_str


def _f64(*arrays):
    return [np.asarray(a, dtype=np.float64) for a in arrays]


def _grads64(dout, cache, layer_backward):
    return layer_backward(np.asarray(dout, dtype=np.float64), cache)


def _per_channel_params(op, sx, sg, sb, c, what):
    for name, s in (("gamma", sg), ("beta", sb)):
        if tuple(s) != (c,):
            raise ShapeError(f"{op}: x has shape {shape_str(sx)} but {name} has shape {shape_str(s)}; "
                             f"expected one per {what}, shape ({c},)")


_EPS = AttrSpec("eps", 1e-5, "float", "added to the variance before the square root (keeps 1/σ finite)",
                minimum=1e-12)

# ---- batchnorm ------------------------------------------------------------------------------------------------


def batchnorm_forward(x, gamma, beta, eps=1e-5):
    """x: (N, D) with gamma, beta (D,), or x: (N, C, H, W) with gamma, beta (C,) (per channel over N, H, W)."""
    x, gamma, beta = _f64(x, gamma, beta)
    param = {"mode": "train", "eps": eps}  # a fresh dict: the running statistics it collects are discarded
    if x.ndim == 4:
        out, cache = L.spatial_batchnorm_forward(x, gamma, beta, param)
        return out, (True, cache)
    out, cache = L.batchnorm_forward(x, gamma, beta, param)
    return out, (False, cache)


def batchnorm_backward(dout, cache):
    spatial, layer_cache = cache
    return _grads64(dout, layer_cache, L.spatial_batchnorm_backward if spatial else L.batchnorm_backward)


def batchnorm_shape(sx, sg, sb, eps=1e-5):
    sx = tuple(sx)
    if len(sx) not in (2, 4):
        raise ShapeError(f"batchnorm: x has shape {shape_str(sx)} and gamma has shape {shape_str(sg)}; "
                         f"expected x (N, D) or (N, C, H, W)")
    _per_channel_params("batchnorm", sx, sg, sb, sx[1], "feature" if len(sx) == 2 else "channel")
    return sx


def _bn_samples(rng):
    cases = [((4, 3), 1e-5), ((6, 5), 1e-3), ((2, 3, 2, 2), 1e-5), ((3, 2, 3, 1), 1e-5)]
    return [((rng.normal(loc=0.5, scale=2.0, size=s), rng.uniform(0.5, 1.5, size=s[1]), rng.normal(size=s[1])),
             {"eps": eps}) for s, eps in cases]


register(OpSpec(
    name="batchnorm", family="normalization", inputs=("x", "gamma", "beta"), forward=batchnorm_forward,
    backward=batchnorm_backward, infer_shape=batchnorm_shape, symbol="BN",
    formula="x̂ = (x − μ_B) / √(σ²_B + ε);  out = γ · x̂ + β   (μ_B, σ²_B: mean and biased variance over the batch)",
    local_grad={"x": "(γ / σ) · (g − mean(g) − x̂ · mean(g · x̂)), g = dL/dout, means over the batch",
                "gamma": "Σ over the batch of dL/dout · x̂", "beta": "Σ over the batch of dL/dout"},
    doc="Batch normalisation in training mode: each feature (for (N, D)) or channel (for (N, C, H, W), over N, H "
        "and W) is standardised with the mean and variance of this batch, then scaled by γ and shifted by β. "
        "Because the statistics depend on the whole batch, every sample's gradient depends on every other's. "
        "Running averages for evaluation are kept by the trainer, not the graph (a graph op has no memory between "
        "runs); needs at least two values per feature.",
    sample=_bn_samples, attrs=(_EPS,)))

# ---- layernorm ------------------------------------------------------------------------------------------------


def layernorm_forward(x, gamma, beta, eps=1e-5):
    """x: (N, d1, ..., dk), normalised per sample over all but the first axis; gamma, beta: x.shape[1:] or (D,)."""
    x, gamma, beta = _f64(x, gamma, beta)
    return L.layernorm_forward(x, gamma, beta, {"eps": eps})


def layernorm_backward(dout, cache):
    return _grads64(dout, cache, L.layernorm_backward)


def layernorm_shape(sx, sg, sb, eps=1e-5):
    sx = tuple(sx)
    if len(sx) < 2:
        raise ShapeError(f"layernorm: x has shape {shape_str(sx)} and gamma has shape {shape_str(sg)}; "
                         f"expected x with a batch axis, (N, D, ...)")
    d = int(np.prod(sx[1:]))
    for name, s in (("gamma", sg), ("beta", sb)):
        if tuple(s) not in (sx[1:], (d,)):
            raise ShapeError(f"layernorm: x has shape {shape_str(sx)} but {name} has shape {shape_str(s)}; "
                             f"expected {shape_str(sx[1:])} or ({d},)")
    return sx


def _ln_samples(rng):
    cases = [((3, 4), (4,)), ((2, 5), (5,)), ((2, 2, 3), (2, 3)), ((2, 2, 2, 2), (8,))]
    return [((rng.normal(loc=-0.3, scale=1.5, size=s), rng.uniform(0.5, 1.5, size=g), rng.normal(size=g)),
             {"eps": 1e-5}) for s, g in cases]


register(OpSpec(
    name="layernorm", family="normalization", inputs=("x", "gamma", "beta"), forward=layernorm_forward,
    backward=layernorm_backward, infer_shape=layernorm_shape, symbol="LN",
    formula="x̂ = (x − μ) / √(σ² + ε) per sample over its features;  out = γ · x̂ + β",
    local_grad={"x": "(γ / σ) · (g − mean(g) − x̂ · mean(g · x̂)), g = dL/dout, means over one sample's features",
                "gamma": "Σ over the batch of dL/dout · x̂", "beta": "Σ over the batch of dL/dout"},
    doc="Layer normalisation: each sample is standardised over its own features, so it behaves the same in "
        "training and evaluation and at any batch size (the transformer's choice).",
    sample=_ln_samples, attrs=(_EPS,)))

# ---- instancenorm ---------------------------------------------------------------------------------------------


def instancenorm_forward(x, gamma, beta, eps=1e-5):
    """x: (N, C, H, W), normalised per sample and channel over H and W; gamma, beta: (C,)."""
    x, gamma, beta = _f64(x, gamma, beta)
    return L.instancenorm_forward(x, gamma, beta, {"eps": eps})


def instancenorm_backward(dout, cache):
    return _grads64(dout, cache, L.instancenorm_backward)


def instancenorm_shape(sx, sg, sb, eps=1e-5):
    sx = tuple(sx)
    if len(sx) != 4:
        raise ShapeError(f"instancenorm: x has shape {shape_str(sx)} and gamma has shape {shape_str(sg)}; "
                         f"expected x (N, C, H, W)")
    _per_channel_params("instancenorm", sx, sg, sb, sx[1], "channel")
    return sx


def _in_samples(rng):
    cases = [(2, 3, 2, 2), (1, 2, 3, 3), (2, 1, 4, 1)]
    return [((rng.normal(loc=0.4, scale=1.5, size=s), rng.uniform(0.5, 1.5, size=s[1]), rng.normal(size=s[1])),
             {"eps": 1e-5}) for s in cases]


register(OpSpec(
    name="instancenorm", family="normalization", inputs=("x", "gamma", "beta"), forward=instancenorm_forward,
    backward=instancenorm_backward, infer_shape=instancenorm_shape, symbol="IN",
    formula="x̂ = (x − μ) / √(σ² + ε) per sample and channel over H, W;  out = γ · x̂ + β",
    local_grad={"x": "(γ / σ) · (g − mean(g) − x̂ · mean(g · x̂)), g = dL/dout, means over one channel's H·W",
                "gamma": "Σ over n, h, w of dL/dout · x̂", "beta": "Σ over n, h, w of dL/dout"},
    doc="Instance normalisation: each channel of each image is standardised over its own pixels (style transfer's "
        "choice: it removes per-image contrast). Needs at least two pixels per channel.",
    sample=_in_samples, attrs=(_EPS,)))

# ---- groupnorm ------------------------------------------------------------------------------------------------


def groupnorm_forward(x, gamma, beta, groups=2, eps=1e-5):
    """x: (N, C, H, W), normalised per sample and group of C/groups channels over those channels and H, W;
    gamma, beta: (C,)."""
    x, gamma, beta = _f64(x, gamma, beta)
    return L.groupnorm_forward(x, gamma, beta, groups, {"eps": eps})


def groupnorm_backward(dout, cache):
    return _grads64(dout, cache, L.groupnorm_backward)


def groupnorm_shape(sx, sg, sb, groups=2, eps=1e-5):
    sx = tuple(sx)
    if len(sx) != 4:
        raise ShapeError(f"groupnorm: x has shape {shape_str(sx)} and gamma has shape {shape_str(sg)}; "
                         f"expected x (N, C, H, W)")
    if sx[1] % groups:
        raise ShapeError(f"groupnorm: x has shape {shape_str(sx)}: its {sx[1]} channels do not split into {groups} "
                         f"equal groups")
    _per_channel_params("groupnorm", sx, sg, sb, sx[1], "channel")
    return sx


def _gn_samples(rng):
    cases = [((2, 4, 2, 2), 2), ((1, 6, 3, 1), 3), ((2, 2, 2, 3), 1), ((2, 3, 2, 2), 3)]
    return [((rng.normal(loc=0.4, scale=1.5, size=s), rng.uniform(0.5, 1.5, size=s[1]), rng.normal(size=s[1])),
             {"groups": g, "eps": 1e-5}) for s, g in cases]


register(OpSpec(
    name="groupnorm", family="normalization", inputs=("x", "gamma", "beta"), forward=groupnorm_forward,
    backward=groupnorm_backward, infer_shape=groupnorm_shape, symbol="GN",
    formula="x̂ = (x − μ) / √(σ² + ε) per sample and group of C/G channels over those channels and H, W;  "
            "out = γ · x̂ + β (per channel)",
    local_grad={"x": "(γ / σ) · (g − mean(g) − x̂ · mean(g · x̂)), g = dL/dx̂, means over one group's channels and "
                     "pixels",
                "gamma": "Σ over n, h, w of dL/dout · x̂", "beta": "Σ over n, h, w of dL/dout"},
    doc="Group normalisation (Wu & He 2018): each image's channels are split into G groups of consecutive "
        "channels, and each group is standardised over its channels and pixels. G = 1 normalises the whole image "
        "(layer norm), G = C each channel on its own (instance norm). Like layer norm it does not depend on the "
        "batch, so it works the same at batch size 1 and in evaluation.",
    sample=_gn_samples, attrs=(AttrSpec("groups", 2, "int", "number of channel groups G (must divide C)", minimum=1),
                               _EPS)))
