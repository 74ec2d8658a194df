"""Arithmetic ops: + - * / negation, constant powers, exp, log, sqrt, sin, cos, abs, and the max/min of two inputs.

Binary ops broadcast as numpy does; their backward sums each gradient back to its input's shape.
"""
from __future__ import annotations

import numpy as np

from simulator.ops.registry import (ELEMENTWISE_SHAPES, AttrSpec, OpSpec, away_from, broadcast_rule,
                                    register, unbroadcast)

_BROADCAST_PAIRS = (((), ()), ((3,), (3,)), ((2, 3), (3,)), ((2, 1), (1, 4)), ((), (2, 2)), ((2, 3, 2), (2, 3, 2)))


def _binary_samples(x_sampler, y_sampler):
    def sample(rng):
        return [((x_sampler(rng, sa), y_sampler(rng, sb)), {}) for sa, sb in _BROADCAST_PAIRS]
    return sample


def _normal(rng, shape):
    return np.asarray(rng.normal(size=shape))


def _unary_samples(sampler):
    def sample(rng):
        return [((sampler(rng, s),), {}) for s in ELEMENTWISE_SHAPES]
    return sample


def _identity_shape(sx, **_):
    return tuple(sx)


# ---- binary ---------------------------------------------------------------------------------------------------

def add_forward(x, y):
    return x + y, (np.shape(x), np.shape(y))


def add_backward(dout, cache):
    sx, sy = cache
    return unbroadcast(dout, sx), unbroadcast(dout, sy)


def sub_forward(x, y):
    return x - y, (np.shape(x), np.shape(y))


def sub_backward(dout, cache):
    sx, sy = cache
    return unbroadcast(dout, sx), unbroadcast(-dout, sy)


def mul_forward(x, y):
    return x * y, (x, y)


def mul_backward(dout, cache):
    x, y = cache
    return unbroadcast(dout * y, np.shape(x)), unbroadcast(dout * x, np.shape(y))


def div_forward(x, y):
    return x / y, (x, y)


def div_backward(dout, cache):
    x, y = cache
    return unbroadcast(dout / y, np.shape(x)), unbroadcast(-dout * x / (y * y), np.shape(y))


def max_forward(x, y):
    return np.maximum(x, y), (x, y)


def max_backward(dout, cache):
    # Ties send the gradient to x, so exactly one input receives it.
    x, y = cache
    pick_x = x >= y
    return unbroadcast(dout * pick_x, np.shape(x)), unbroadcast(dout * ~pick_x, np.shape(y))


def min_forward(x, y):
    return np.minimum(x, y), (x, y)


def min_backward(dout, cache):
    x, y = cache
    pick_x = x <= y
    return unbroadcast(dout * pick_x, np.shape(x)), unbroadcast(dout * ~pick_x, np.shape(y))


def _distinct_pair_samples(rng):
    """Pairs whose entries differ by at least 0.1 wherever they meet, so max/min are away from their kink."""
    out = []
    for sa, sb in _BROADCAST_PAIRS:
        while True:
            x, y = _normal(rng, sa), _normal(rng, sb)
            if np.min(np.abs(x - y)) >= 0.1:
                break
        out.append(((x, y), {}))
    return out


register(OpSpec(
    name="add", family="arithmetic", inputs=("x", "y"), forward=add_forward, backward=add_backward,
    infer_shape=broadcast_rule("add"), symbol="+", formula="x + y", local_grad={"x": "1", "y": "1"},
    doc="Addition, the gradient distributor: it passes the upstream gradient unchanged to both inputs.",
    sample=_binary_samples(_normal, _normal),
    scalar=(lambda x, y: x + y, lambda d, x, y, out: (d, d))))

register(OpSpec(
    name="sub", family="arithmetic", inputs=("x", "y"), forward=sub_forward, backward=sub_backward,
    infer_shape=broadcast_rule("sub"), symbol="−", formula="x − y", local_grad={"x": "1", "y": "−1"},
    doc="Subtraction: the upstream gradient passes to x and, negated, to y.",
    sample=_binary_samples(_normal, _normal),
    scalar=(lambda x, y: x - y, lambda d, x, y, out: (d, -d))))

register(OpSpec(
    name="mul", family="arithmetic", inputs=("x", "y"), forward=mul_forward, backward=mul_backward,
    infer_shape=broadcast_rule("mul"), symbol="×", formula="x · y", local_grad={"x": "y", "y": "x"},
    doc="Multiplication, the gradient switcher: each input's local gradient is the other input's value.",
    sample=_binary_samples(_normal, _normal),
    scalar=(lambda x, y: x * y, lambda d, x, y, out: (d * y, d * x))))

register(OpSpec(
    name="div", family="arithmetic", inputs=("x", "y"), forward=div_forward, backward=div_backward,
    infer_shape=broadcast_rule("div"), symbol="÷", formula="x / y", local_grad={"x": "1/y", "y": "−x/y²"},
    doc="Division. With x = 1 it is the 1/x gate of the sigmoid example.", domain="division needs y ≠ 0",
    sample=_binary_samples(_normal, lambda rng, s: away_from(rng, s, gap=0.5)),
    scalar=(lambda x, y: x / y, lambda d, x, y, out: (d / y, -d * x / (y * y)))))

register(OpSpec(
    name="max", family="arithmetic", inputs=("x", "y"), forward=max_forward, backward=max_backward,
    infer_shape=broadcast_rule("max"), symbol="max", formula="max(x, y)",
    local_grad={"x": "1[x ≥ y]", "y": "1[y > x]"},
    doc="The larger of two inputs, the gradient router: the whole upstream gradient goes to the winner "
        "(to x on a tie).",
    sample=_distinct_pair_samples,
    scalar=(lambda x, y: x if x >= y else y, lambda d, x, y, out: (d, 0.0) if x >= y else (0.0, d))))

register(OpSpec(
    name="min", family="arithmetic", inputs=("x", "y"), forward=min_forward, backward=min_backward,
    infer_shape=broadcast_rule("min"), symbol="min", formula="min(x, y)",
    local_grad={"x": "1[x ≤ y]", "y": "1[y < x]"},
    doc="The smaller of two inputs; like max, it routes the gradient to the winner (to x on a tie).",
    sample=_distinct_pair_samples,
    scalar=(lambda x, y: x if x <= y else y, lambda d, x, y, out: (d, 0.0) if x <= y else (0.0, d))))


# ---- unary ----------------------------------------------------------------------------------------------------

def neg_forward(x):
    return -x, None


def neg_backward(dout, cache):
    return (-dout,)


def pow_forward(x, p=2.0):
    return np.power(x, p), (x, p)


def pow_backward(dout, cache):
    x, p = cache
    return (dout * p * np.power(x, p - 1.0),)


def _pow_samples(rng):
    out = []
    for p in (2.0, 3.0, -1.0):
        for s in ELEMENTWISE_SHAPES[:3]:
            out.append(((away_from(rng, s, gap=0.3),), {"p": p}))
    out.append(((rng.uniform(0.3, 2.0, size=(2, 3)),), {"p": 0.5}))
    return out


def exp_forward(x):
    out = np.exp(x)
    return out, out


def exp_backward(dout, out):
    return (dout * out,)


def log_forward(x):
    return np.log(x), x


def log_backward(dout, x):
    return (dout / x,)


def sqrt_forward(x):
    out = np.sqrt(x)
    return out, out


def sqrt_backward(dout, out):
    return (dout / (2.0 * out),)


def sin_forward(x):
    return np.sin(x), x


def sin_backward(dout, x):
    return (dout * np.cos(x),)


def cos_forward(x):
    return np.cos(x), x


def cos_backward(dout, x):
    return (-dout * np.sin(x),)


def abs_forward(x):
    return np.abs(x), x


def abs_backward(dout, x):
    return (dout * np.sign(x),)


def _positive(rng, shape):
    return np.asarray(rng.uniform(0.2, 3.0, size=shape))


register(OpSpec(
    name="neg", family="arithmetic", inputs=("x",), forward=neg_forward, backward=neg_backward,
    infer_shape=_identity_shape, symbol="−x", formula="−x", local_grad={"x": "−1"},
    doc="Negation (the ·(−1) gate).", sample=_unary_samples(_normal),
    scalar=(lambda x: -x, lambda d, x, out: (-d,))))

register(OpSpec(
    name="pow", family="arithmetic", inputs=("x",), forward=pow_forward, backward=pow_backward,
    infer_shape=_identity_shape, symbol="x^{p}", formula="x^p", local_grad={"x": "p · x^(p−1)"},
    doc="x raised to a constant power p (an attribute, not an input).",
    sample=_pow_samples, attrs=(AttrSpec("p", 2.0, "float", "the constant exponent"),),
    domain="x**p needs x > 0 when p is fractional, and x ≠ 0 when p < 1 (for the gradient)"))

register(OpSpec(
    name="exp", family="arithmetic", inputs=("x",), forward=exp_forward, backward=exp_backward,
    infer_shape=_identity_shape, symbol="exp", formula="eˣ", local_grad={"x": "eˣ"},
    doc="The exponential; its own derivative.", sample=_unary_samples(_normal),
    domain="exp overflows to infinity above x ≈ 709"))

register(OpSpec(
    name="log", family="arithmetic", inputs=("x",), forward=log_forward, backward=log_backward,
    infer_shape=_identity_shape, symbol="log", formula="ln x", local_grad={"x": "1/x"},
    doc="The natural logarithm (x > 0).", sample=_unary_samples(_positive), domain="log needs x > 0"))

register(OpSpec(
    name="sqrt", family="arithmetic", inputs=("x",), forward=sqrt_forward, backward=sqrt_backward,
    infer_shape=_identity_shape, symbol="√", formula="√x", local_grad={"x": "1/(2√x)"},
    doc="The square root (x ≥ 0).", sample=_unary_samples(_positive),
    domain="sqrt needs x ≥ 0, and x > 0 for its gradient 1/(2√x)"))

register(OpSpec(
    name="sin", family="arithmetic", inputs=("x",), forward=sin_forward, backward=sin_backward,
    infer_shape=_identity_shape, symbol="sin", formula="sin x", local_grad={"x": "cos x"},
    doc="The sine (x in radians). Its local gradient is cos x, so the upstream gradient is scaled by cos x.",
    sample=_unary_samples(lambda rng, s: rng.uniform(-4.0, 4.0, size=s))))

register(OpSpec(
    name="cos", family="arithmetic", inputs=("x",), forward=cos_forward, backward=cos_backward,
    infer_shape=_identity_shape, symbol="cos", formula="cos x", local_grad={"x": "−sin x"},
    doc="The cosine (x in radians). Its local gradient is −sin x.",
    sample=_unary_samples(lambda rng, s: rng.uniform(-4.0, 4.0, size=s))))

register(OpSpec(
    name="abs", family="arithmetic", inputs=("x",), forward=abs_forward, backward=abs_backward,
    infer_shape=_identity_shape, symbol="|x|", formula="|x|", local_grad={"x": "sign(x)"},
    doc="Absolute value; its gradient at 0 is taken as 0.",
    sample=_unary_samples(lambda rng, s: away_from(rng, s))))
