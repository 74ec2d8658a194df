"""Activation ops: sigmoid, tanh, ReLU and its relatives, GELU, SiLU, softplus. Elementwise, any shape."""
from __future__ import annotations

import numpy as np
from scipy.special import erf, expit

from simulator.ops.registry import ELEMENTWISE_SHAPES, AttrSpec, OpSpec, away_from, register

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
_INV_SQRT2 = 0.7071067811865476
_INV_SQRT_2PI = 0.3989422804014327


def _same(sx, **_):
    return tuple(sx)


def _samples(gap=0.0, scale=3.0):
    def sample(rng):
        if gap:
            return [((away_from(rng, s, gap=gap, scale=scale),), {}) for s in ELEMENTWISE_SHAPES]
        return [((rng.normal(scale=scale / 2, size=s),), {}) for s in ELEMENTWISE_SHAPES]
    return sample


def sigmoid_forward(x):
    out = expit(x)
    return out, out


def sigmoid_backward(dout, out):
    return (dout * out * (1.0 - out),)


def tanh_forward(x):
    out = np.tanh(x)
    return out, out


def tanh_backward(dout, out):
    return (dout * (1.0 - out * out),)


def relu_forward(x):
    return np.maximum(x, 0.0), x


def relu_backward(dout, x):
    return (dout * (x > 0),)


def leaky_relu_forward(x, alpha=0.01):
    return np.where(x > 0, x, alpha * x), (x, alpha)


def leaky_relu_backward(dout, cache):
    x, alpha = cache
    return (dout * np.where(x > 0, 1.0, alpha),)


def elu_forward(x, alpha=1.0):
    out = np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0.0)))
    return out, (x, alpha)


def elu_backward(dout, cache):
    x, alpha = cache
    return (dout * np.where(x > 0, 1.0, alpha * np.exp(np.minimum(x, 0.0))),)


def selu_forward(x):
    out = SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(np.minimum(x, 0.0)))
    return out, x


def selu_backward(dout, x):
    return (dout * SELU_SCALE * np.where(x > 0, 1.0, SELU_ALPHA * np.exp(np.minimum(x, 0.0))),)


def gelu_forward(x):
    cdf = 0.5 * (1.0 + erf(x * _INV_SQRT2))
    return x * cdf, (x, cdf)


def gelu_backward(dout, cache):
    x, cdf = cache
    return (dout * (cdf + x * _INV_SQRT_2PI * np.exp(-0.5 * x * x)),)


def silu_forward(x):
    s = expit(x)
    return x * s, (x, s)


def silu_backward(dout, cache):
    x, s = cache
    return (dout * s * (1.0 + x * (1.0 - s)),)


def softplus_forward(x):
    return np.logaddexp(0.0, x), x


def softplus_backward(dout, x):
    return (dout * expit(x),)


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
    backward=leaky_relu_backward, infer_shape=_same, symbol="lrelu", formula="max(αx, x)",
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
