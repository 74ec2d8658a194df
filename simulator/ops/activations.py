"""Activation ops: sigmoid, tanh, ReLU and its relatives, GELU, SiLU, softplus (elementwise, any shape); PReLU and
maxout, which learn their shape.

The arithmetic is simulator/layers.py over the Numba kernels (float64 here, for stepping and gradient checks).
"""
from __future__ import annotations

import numpy as np

from simulator.functional import layers as L
from simulator.core.errors import ShapeError
from simulator.ops.registry import ELEMENTWISE_SHAPES, AttrSpec, OpSpec, away_from, register, shape_str

SELU_ALPHA = 1.6732632423543772848170429916717  # the kernels' constants (PyTorch's), shown in the docs
SELU_SCALE = 1.0507009873554804934193349852946


def _same(sx, **_):
    return tuple(sx)


def _samples(gap=0.0, scale=3.0):
    def sample(rng):
        if gap:
            return [((away_from(rng, s, gap=gap, scale=scale),), {}) for s in ELEMENTWISE_SHAPES]
        return [((rng.normal(scale=scale / 2, size=s),), {}) for s in ELEMENTWISE_SHAPES]
    return sample


def _flat64(x) -> np.ndarray:
    """x as a C-contiguous float64 vector: the kernels want 1-D+ arrays, graph values may be 0-d or any shape."""
    return np.ascontiguousarray(x, dtype=np.float64).reshape(-1)


def _elementwise(layer_forward, layer_backward):
    """forward(x, *params)/backward for an elementwise op over simulator/layers.py, any shape (0-d included),
    in float64. The cache is (layer cache, x's shape); backward never mutates it, so the engine may call it twice."""
    def forward(x, *params):
        shape = np.shape(x)
        out, cache = layer_forward(_flat64(x), *params)
        return out.reshape(shape), (cache, shape)

    def backward(dout, cache):
        layer_cache, shape = cache
        return (layer_backward(_flat64(dout), layer_cache).reshape(shape),)
    return forward, backward


sigmoid_forward, sigmoid_backward = _elementwise(L.sigmoid_forward, L.sigmoid_backward)
tanh_forward, tanh_backward = _elementwise(L.tanh_forward, L.tanh_backward)
relu_forward, relu_backward = _elementwise(L.relu_forward, L.relu_backward)
_leaky_relu_forward, leaky_relu_backward = _elementwise(L.leaky_relu_forward, L.leaky_relu_backward)
_elu_forward, elu_backward = _elementwise(L.elu_forward, L.elu_backward)
selu_forward, selu_backward = _elementwise(L.selu_forward, L.selu_backward)
gelu_forward, gelu_backward = _elementwise(L.gelu_forward, L.gelu_backward)
silu_forward, silu_backward = _elementwise(L.silu_forward, L.silu_backward)
softplus_forward, softplus_backward = _elementwise(L.softplus_forward, L.softplus_backward)


def leaky_relu_forward(x, alpha=0.01):
    return _leaky_relu_forward(x, alpha)


def elu_forward(x, alpha=1.0):
    return _elu_forward(x, alpha)


register(OpSpec(
    name="sigmoid", family="activations", inputs=("x",), forward=sigmoid_forward, backward=sigmoid_backward,
    infer_shape=_same, symbol="σ", formula="σ(x) = 1 / (1 + e^(−x))", local_grad={"x": "σ(x)(1 − σ(x))"},
    doc="The logistic sigmoid; squashes to (0, 1) and saturates, killing gradients at both ends.",
    sample=_samples()))

register(OpSpec(
    name="tanh", family="activations", inputs=("x",), forward=tanh_forward, backward=tanh_backward,
    infer_shape=_same, symbol="tanh", formula="tanh(x)", local_grad={"x": "1 − tanh²(x)"},
    doc="Hyperbolic tangent: zero-centred, but saturates like the sigmoid.", sample=_samples()))

register(OpSpec(
    name="relu", family="activations", inputs=("x",), forward=relu_forward, backward=relu_backward,
    infer_shape=_same, symbol="relu", formula="max(0, x)", local_grad={"x": "1[x > 0]"},
    doc="Rectified linear unit: does not saturate for x > 0; a unit whose input is always negative is 'dead'.",
    sample=_samples(gap=0.1)))

register(OpSpec(
    name="leaky_relu", family="activations", inputs=("x",), forward=leaky_relu_forward,
    backward=leaky_relu_backward, infer_shape=_same, symbol="lrelu", formula="x if x > 0 else αx",
    local_grad={"x": "1 if x > 0 else α"},
    doc="Leaky ReLU: a small slope α for x < 0, so units never die.", sample=_samples(gap=0.1),
    attrs=(AttrSpec("alpha", 0.01, "float", "slope for x < 0", minimum=0.0),)))

register(OpSpec(
    name="elu", family="activations", inputs=("x",), forward=elu_forward, backward=elu_backward,
    infer_shape=_same, symbol="elu", formula="x if x > 0 else α(eˣ − 1)", local_grad={"x": "1 if x > 0 else αeˣ"},
    doc="Exponential linear unit: smooth negative saturation, outputs closer to zero mean.",
    sample=_samples(gap=0.1), attrs=(AttrSpec("alpha", 1.0, "float", "scale of the negative part", minimum=0.0),)))

register(OpSpec(
    name="selu", family="activations", inputs=("x",), forward=selu_forward, backward=selu_backward,
    infer_shape=_same, symbol="selu", formula="λ(x if x > 0 else α(eˣ − 1))",
    local_grad={"x": "λ if x > 0 else λαeˣ"},
    doc="Scaled ELU with λ ≈ 1.0507, α ≈ 1.6733: self-normalising for deep MLPs.", sample=_samples(gap=0.1)))

register(OpSpec(
    name="gelu", family="activations", inputs=("x",), forward=gelu_forward, backward=gelu_backward,
    infer_shape=_same, symbol="gelu", formula="x · Φ(x)", local_grad={"x": "Φ(x) + x · φ(x)"},
    doc="Gaussian error linear unit (exact erf form, PyTorch's default), as used in transformers.",
    sample=_samples()))

register(OpSpec(
    name="silu", family="activations", inputs=("x",), forward=silu_forward, backward=silu_backward,
    infer_shape=_same, symbol="silu", formula="x · σ(x)", local_grad={"x": "σ(x)(1 + x(1 − σ(x)))"},
    doc="SiLU, also called swish: x times its sigmoid.", sample=_samples()))

register(OpSpec(
    name="softplus", family="activations", inputs=("x",), forward=softplus_forward, backward=softplus_backward,
    infer_shape=_same, symbol="softplus", formula="ln(1 + eˣ)", local_grad={"x": "σ(x)"},
    doc="A smooth ReLU whose derivative is the sigmoid.", sample=_samples()))


# ---- ops with learnable parameters: PReLU (a learned slope), maxout (the max of k affine pieces) -----------------

def prelu_forward(x, alpha):
    """x: (N, C, ...) with alpha (C,), one slope per channel (axis 1, as torch.nn.PReLU); or any shape (0-d too)
    with a single slope (alpha of size 1)."""
    x, alpha = np.asarray(x, dtype=np.float64), np.asarray(alpha, dtype=np.float64)
    out, cache = L.prelu_forward(x, alpha)  # layers sees 0-d arrays as (1,): reshape back
    return out.reshape(x.shape), (cache, x.shape, alpha.shape)


def prelu_backward(dout, cache):
    layer_cache, xshape, ashape = cache
    dx, dalpha = L.prelu_backward(np.asarray(dout, dtype=np.float64).reshape(layer_cache[0].shape), layer_cache)
    return dx.reshape(xshape), dalpha.reshape(ashape)


def prelu_shape(sx, sa):
    sx, sa = tuple(sx), tuple(sa)
    if int(np.prod(sa)) == 1 or (len(sa) == 1 and len(sx) >= 2 and sa[0] == sx[1]):
        return sx
    raise ShapeError(f"prelu: x has shape {shape_str(sx)} and alpha has shape {shape_str(sa)}; alpha must hold one "
                     f"slope, or one per channel of x's axis 1" + (f", shape ({sx[1]},)" if len(sx) >= 2 else ""))


def _prelu_samples(rng):
    cases = [((), ()), ((5,), (1,)), ((3, 4), (4,)), ((2, 3, 2, 2), (3,)), ((2, 3), ())]
    return [((away_from(rng, sx), rng.uniform(0.05, 0.5, size=sa)), {}) for sx, sa in cases]


register(OpSpec(
    name="prelu", family="activations", inputs=("x", "alpha"), forward=prelu_forward, backward=prelu_backward,
    infer_shape=prelu_shape, symbol="prelu", formula="x if x > 0 else α · x  (α per channel)",
    local_grad={"x": "1 if x > 0 else α", "alpha": "Σ of x where x ≤ 0 (over the entries sharing that α)"},
    doc="Parametric ReLU: a leaky ReLU whose negative slope α is learned, one per channel (axis 1) or one shared. "
        "Wire α from a parameter node to train it.",
    sample=_prelu_samples))


def maxout_forward(x, w, b):
    """x: (N, d1, ..., dk) flattened to (N, D); w: (D, M, k); b: (M, k). out[n, m] = max_j (x w[:, m, j] + b[m, j])."""
    return L.maxout_forward(*(np.asarray(a, dtype=np.float64) for a in (x, w, b)))


def maxout_backward(dout, cache):
    return L.maxout_backward(np.asarray(dout, dtype=np.float64), cache)


def maxout_shape(sx, sw, sb):
    sx, sw, sb = tuple(sx), tuple(sw), tuple(sb)
    if len(sx) < 1 or len(sw) != 3:
        raise ShapeError(f"maxout: x has shape {shape_str(sx)} and w has shape {shape_str(sw)}; expected x (N, D) "
                         f"(or (N, d1, ...)) and w (D, M, k)")
    d = int(np.prod(sx[1:]))
    if d != sw[0]:
        raise ShapeError(f"maxout: x has shape {shape_str(sx)} ({d} features per sample) but w has shape "
                         f"{shape_str(sw)} (expects {sw[0]})")
    if sb != sw[1:]:
        raise ShapeError(f"maxout: b has shape {shape_str(sb)} but w has shape {shape_str(sw)}: expected "
                         f"{shape_str(sw[1:])}")
    if min(sw[1:]) < 1:
        raise ShapeError(f"maxout: w has shape {shape_str(sw)}; it needs at least one unit and one piece")
    return (sx[0], sw[1])


def _maxout_samples(rng):
    """Inputs whose winning piece leads the runner-up by at least 0.05, so a small nudge never switches it."""
    out = []
    for sx, m, k in (((3, 4), 2, 3), ((2, 5), 3, 2), ((2, 2, 3), 2, 2), ((1, 3), 1, 4)):
        d = int(np.prod(sx[1:]))
        while True:
            x, w, b = rng.normal(size=sx), rng.normal(size=(d, m, k)), rng.normal(size=(m, k))
            z = np.sort(np.einsum("nd,dmk->nmk", x.reshape(sx[0], d), w) + b, axis=-1)
            if k == 1 or np.min(z[..., -1] - z[..., -2]) > 0.05:
                break
        out.append(((x, w, b), {}))
    return out


register(OpSpec(
    name="maxout", family="activations", inputs=("x", "w", "b"), forward=maxout_forward, backward=maxout_backward,
    infer_shape=maxout_shape, symbol="maxout", formula="out[n, m] = maxⱼ (x[n] · w[:, m, j] + b[m, j])",
    local_grad={"x": "w[:, m, j*] for each unit's winning piece j*", "w": "x[n] into the winning piece's column only",
                "b": "1 for the winning piece, 0 for the others"},
    doc="Maxout (Goodfellow et al. 2013): each of M units computes k affine pieces of x and outputs the largest, a "
        "learned convex piecewise-linear activation (ReLU is the case of one piece fixed at zero). Ties go to the "
        "first piece.",
    sample=_maxout_samples))
