"""Tensor ops: matrix product, transpose, sum/mean over an axis, reshape, bias add, affine layer, softmax."""
from __future__ import annotations

import numpy as np

from simulator.core.errors import ShapeError
from simulator.ops.registry import AttrSpec, OpSpec, register, shape_str

# ---- matmul ---------------------------------------------------------------------------------------------------


def matmul_forward(a, b):
    return a @ b, (a, b)


def matmul_backward(dout, cache):
    a, b = cache
    # Promote vectors to matrices (a row, b a column) so one formula covers every case.
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    d2 = np.reshape(dout, (a2.shape[0], b2.shape[1]))
    return (d2 @ b2.T).reshape(a.shape), (a2.T @ d2).reshape(b.shape)


def matmul_shape(sa, sb):
    if not (1 <= len(sa) <= 2 and 1 <= len(sb) <= 2):
        raise ShapeError(f"matmul needs vectors or matrices; got a {shape_str(sa)} and b {shape_str(sb)}")
    k_a = sa[-1]
    k_b = sb[0]
    if k_a != k_b:
        raise ShapeError(f"matmul: a has shape {shape_str(sa)} and b has shape {shape_str(sb)}; "
                         f"a's last size {k_a} must equal b's first size {k_b}")
    return tuple(sa[:-1]) + tuple(sb[1:])


def _matmul_samples(rng):
    pairs = [((2, 3), (3, 4)), ((1, 5), (5, 1)), ((3,), (3, 2)), ((2, 3), (3,)), ((4,), (4,))]
    return [((rng.normal(size=sa), rng.normal(size=sb)), {}) for sa, sb in pairs]


register(OpSpec(
    name="matmul", family="linear", inputs=("a", "b"), forward=matmul_forward, backward=matmul_backward,
    infer_shape=matmul_shape, symbol="@", formula="a @ b",
    local_grad={"a": "dL/da = dL/dout @ bᵀ", "b": "dL/db = aᵀ @ dL/dout"},
    doc="Matrix product. The gradient with respect to each factor is the upstream gradient multiplied by the "
        "other factor, transposed: the only arrangement whose shapes fit.",
    sample=_matmul_samples))

# ---- transpose ------------------------------------------------------------------------------------------------


def transpose_forward(x):
    return np.transpose(x), None


def transpose_backward(dout, cache):
    return (np.transpose(dout),)


register(OpSpec(
    name="transpose", family="linear", inputs=("x",), forward=transpose_forward, backward=transpose_backward,
    infer_shape=lambda sx: tuple(reversed(sx)), symbol="xᵀ", formula="xᵀ", local_grad={"x": "dL/dx = (dL/dout)ᵀ"},
    doc="Reverses the axes (the matrix transpose for 2-D).",
    sample=lambda rng: [((rng.normal(size=s),), {}) for s in ((3,), (2, 4), (2, 3, 2))]))

# ---- reductions -----------------------------------------------------------------------------------------------


def _check_axis(op, shape, axis):
    if axis is None:
        return None
    n = len(shape)
    if not -n <= axis < n:
        raise ShapeError(f"{op}: axis {axis} is out of range for x of shape {shape_str(shape)}")
    return axis % n


def _reduce_shape(op):
    def rule(sx, axis=None):
        axis = _check_axis(op, sx, axis)
        if axis is None:
            return ()
        return tuple(n for i, n in enumerate(sx) if i != axis)
    return rule


def sum_forward(x, axis=None):
    return np.sum(x, axis=axis), (np.shape(x), axis)


def sum_backward(dout, cache):
    shape, axis = cache
    if axis is not None:
        dout = np.expand_dims(dout, axis)
    return (np.broadcast_to(dout, shape).copy(),)


def mean_forward(x, axis=None):
    shape = np.shape(x)
    count = int(np.prod(shape)) if axis is None else shape[axis]
    return np.mean(x, axis=axis), (shape, axis, count)


def mean_backward(dout, cache):
    shape, axis, count = cache
    if axis is not None:
        dout = np.expand_dims(dout, axis)
    return (np.broadcast_to(dout / count, shape).copy(),)


def _reduce_samples(rng):
    cases = [((3,), None), ((2, 4), None), ((2, 4), 0), ((2, 4), 1), ((2, 3, 2), -1), ((2, 3, 2), 1)]
    return [((rng.normal(size=s),), {"axis": a}) for s, a in cases]


_AXIS = AttrSpec("axis", None, "axis", "axis to reduce over; None reduces everything to a scalar")

register(OpSpec(
    name="sum", family="reduction", inputs=("x",), forward=sum_forward, backward=sum_backward,
    infer_shape=_reduce_shape("sum"), symbol="Σ", formula="Σ x", local_grad={"x": "1 (copied to every entry)"},
    doc="Sum over an axis (or everything). Backward copies the upstream gradient to every summed entry.",
    sample=_reduce_samples, attrs=(_AXIS,)))

register(OpSpec(
    name="mean", family="reduction", inputs=("x",), forward=mean_forward, backward=mean_backward,
    infer_shape=_reduce_shape("mean"), symbol="mean", formula="(1/n) Σ x", local_grad={"x": "1/n"},
    doc="Mean over an axis (or everything). Backward spreads the upstream gradient evenly, 1/n each.",
    sample=_reduce_samples, attrs=(_AXIS,)))

# ---- reshape --------------------------------------------------------------------------------------------------


def reshape_shape(sx, shape=(-1,)):
    size = int(np.prod(sx))
    known = int(np.prod([n for n in shape if n != -1]))
    if -1 in shape:
        if known == 0 or size % known:
            raise ShapeError(f"reshape: x of shape {shape_str(sx)} ({size} values) cannot be viewed as {shape}")
        return tuple(size // known if n == -1 else n for n in shape)
    if known != size:
        raise ShapeError(f"reshape: x of shape {shape_str(sx)} has {size} values but {shape} holds {known}")
    return tuple(shape)


def reshape_forward(x, shape=(-1,)):
    return np.reshape(x, reshape_shape(np.shape(x), shape)), np.shape(x)


def reshape_backward(dout, shape):
    return (np.reshape(dout, shape),)


register(OpSpec(
    name="reshape", family="reduction", inputs=("x",), forward=reshape_forward, backward=reshape_backward,
    infer_shape=reshape_shape, symbol="reshape", formula="x viewed as another shape",
    local_grad={"x": "dL/dx = dL/dout reshaped back"},
    doc="Same values, new shape (one size may be -1). The gradient is reshaped back.",
    sample=lambda rng: [((rng.normal(size=(2, 3)),), {"shape": (3, 2)}), ((rng.normal(size=(2, 3, 2)),), {"shape": (-1,)}),
                        ((rng.normal(size=(4,)),), {"shape": (2, -1)})],
    attrs=(AttrSpec("shape", (-1,), "shape", "the new shape; one size may be -1"),)))

# ---- bias add and affine --------------------------------------------------------------------------------------


def bias_add_shape(sx, sb):
    if len(sb) != 1 or len(sx) < 1 or sx[-1] != sb[0]:
        raise ShapeError(f"bias_add: x has shape {shape_str(sx)} and b has shape {shape_str(sb)}; "
                         f"b must be a vector as long as x's last axis")
    return tuple(sx)


def bias_add_forward(x, b):
    return x + b, np.ndim(x)


def bias_add_backward(dout, ndim):
    return dout, np.sum(dout, axis=tuple(range(ndim - 1)))


register(OpSpec(
    name="bias_add", family="linear", inputs=("x", "b"), forward=bias_add_forward, backward=bias_add_backward,
    infer_shape=bias_add_shape, symbol="+b", formula="x + b (b broadcast over rows)",
    local_grad={"x": "1", "b": "dL/db = Σ over rows of dL/dout"},
    doc="Adds a bias vector to every row. The bias was copied to each row, so its gradient sums over them.",
    sample=lambda rng: [((rng.normal(size=(4, 3)), rng.normal(size=(3,))), {}),
                        ((rng.normal(size=(3,)), rng.normal(size=(3,))), {}),
                        ((rng.normal(size=(2, 3, 2)), rng.normal(size=(2,))), {})]))


def affine_shape(sx, sw, sb):
    if len(sx) not in (1, 2) or len(sw) != 2 or len(sb) != 1:
        raise ShapeError(f"affine needs x (N, D) or (D,), w (D, M), b (M,); got x {shape_str(sx)}, "
                         f"w {shape_str(sw)}, b {shape_str(sb)}")
    if sx[-1] != sw[0]:
        raise ShapeError(f"affine: x has shape {shape_str(sx)} and w has shape {shape_str(sw)}; "
                         f"x's last size {sx[-1]} must equal w's first size {sw[0]}")
    if sb[0] != sw[1]:
        raise ShapeError(f"affine: w has shape {shape_str(sw)} and b has shape {shape_str(sb)}; "
                         f"b needs {sw[1]} entries")
    return tuple(sx[:-1]) + (sw[1],)


def affine_forward(x, w, b):
    return x @ w + b, (x, w)


def affine_backward(dout, cache):
    x, w = cache
    x2 = x[None, :] if x.ndim == 1 else x
    d2 = np.reshape(dout, (x2.shape[0], w.shape[1]))
    return (d2 @ w.T).reshape(x.shape), x2.T @ d2, d2.sum(axis=0)


register(OpSpec(
    name="affine", family="linear", inputs=("x", "w", "b"), forward=affine_forward, backward=affine_backward,
    infer_shape=affine_shape, symbol="xW+b", formula="x @ W + b",
    local_grad={"x": "dL/dx = dL/dout @ Wᵀ", "w": "dL/dW = xᵀ @ dL/dout", "b": "dL/db = Σ rows of dL/dout"},
    doc="A fully connected layer: rows of x are examples, W maps D inputs to M outputs.",
    sample=lambda rng: [((rng.normal(size=(4, 3)), rng.normal(size=(3, 2)), rng.normal(size=(2,))), {}),
                        ((rng.normal(size=(3,)), rng.normal(size=(3, 5)), rng.normal(size=(5,))), {})]))

# ---- softmax --------------------------------------------------------------------------------------------------


def softmax_forward(x, axis=-1):
    shifted = x - np.max(x, axis=axis, keepdims=True)
    e = np.exp(shifted)
    out = e / np.sum(e, axis=axis, keepdims=True)
    return out, (out, axis)


def softmax_backward(dout, cache):
    s, axis = cache
    return (s * (dout - np.sum(dout * s, axis=axis, keepdims=True)),)


def softmax_shape(sx, axis=-1):
    if len(sx) == 0:
        raise ShapeError("softmax needs at least a vector; got a scalar ()")
    _check_axis("softmax", sx, axis)
    return tuple(sx)


register(OpSpec(
    name="softmax", family="reduction", inputs=("x",), forward=softmax_forward, backward=softmax_backward,
    infer_shape=softmax_shape, symbol="softmax", formula="eˣⁱ / Σⱼ eˣʲ",
    local_grad={"x": "dL/dx = s ⊙ (dL/ds − Σ dL/ds ⊙ s)"},
    doc="Turns scores into probabilities along an axis (numerically stable: the max is subtracted first).",
    sample=lambda rng: [((rng.normal(size=s),), {"axis": a}) for s, a in (((3,), -1), ((2, 4), -1), ((2, 4), 0))],
    attrs=(AttrSpec("axis", -1, "axis", "the axis holding the classes"),)))
