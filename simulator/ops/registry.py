"""The op registry: one OpSpec per op, read by the engine, the editor's palette, the inspector, the file loader and the docs."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from simulator.core.errors import GraphError, ShapeError, ValueInputError

Shape = tuple[int, ...]
# A test sample: the op's inputs (in port order) and its attributes.
Sample = tuple[tuple[np.ndarray, ...], dict[str, Any]]


@dataclass(frozen=True)
class AttrSpec:
    """One editable attribute of an op (an exponent, an axis, a slope).

    kind: "float" (finite number), "int", "axis" (None or an int), "shape" (tuple of ints, one may be -1),
    "choice" (one of `choices`).
    """

    name: str
    default: Any
    kind: str
    doc: str = ""
    minimum: float | None = None
    choices: tuple[str, ...] = ()
    maximum: float | None = None

    def validate(self, value: Any) -> Any:
        """Return `value` coerced to this attribute's type, or raise ValueInputError saying why not."""
        where = f"attribute '{self.name}'"
        if self.kind == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise ValueInputError(f"{where} must be a number, got {value!r}")
            try:
                value = float(value)
            except OverflowError:
                raise ValueInputError(f"{where} is too large, got {value!r}") from None
            if not math.isfinite(value):
                raise ValueInputError(f"{where} must be finite, got {value!r}")
        elif self.kind == "int":
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ValueInputError(f"{where} must be an integer, got {value!r}")
            value = int(value)
        elif self.kind == "axis":
            if value is None:
                return None
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ValueInputError(f"{where} must be an integer axis or None, got {value!r}")
            value = int(value)
        elif self.kind == "shape":
            if not isinstance(value, (list, tuple)) or not all(
                isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value
            ):
                raise ValueInputError(f"{where} must be a list of integers, got {value!r}")
            value = tuple(int(v) for v in value)
            if len(value) > 8 or any(v < -1 or v == 0 for v in value) or value.count(-1) > 1:
                raise ValueInputError(f"{where}: sizes must be positive with at most one -1, got {value}")
        elif self.kind == "choice":
            if value not in self.choices:
                raise ValueInputError(f"{where} must be one of {', '.join(self.choices)}, got {value!r}")
        else:  # pragma: no cover - a programming error in an OpSpec
            raise TypeError(f"unknown attribute kind {self.kind!r}")
        if self.minimum is not None and value < self.minimum:
            raise ValueInputError(f"{where} must be at least {self.minimum}, got {value}")
        if self.maximum is not None and value > self.maximum:
            raise ValueInputError(f"{where} must be at most {self.maximum}, got {value}")
        return value


@dataclass(frozen=True)
class OpSpec:
    """Everything the app knows about one op.

    forward(*inputs, **attrs) -> (out, cache); backward(dout, cache) -> gradients in input order (None for an
    input with no gradient, such as integer labels); infer_shape(*shapes, **attrs) -> output shape, raising
    ShapeError with both shapes. `symbol` is drawn in the node box and may use attributes ("^{p}").
    `local_grad` maps each input port to the formula of d out / d port shown in the chain-rule view.
    `sample(rng)` returns inputs that exercise the op away from its kinks: the gradient tests use it, so an op
    cannot be registered without being tested. `domain` says, in the learner's words, where the op (or its
    gradient) is defined; it is added to the message when a NaN or an infinity appears at the op.
    """

    name: str
    family: str
    inputs: tuple[str, ...]
    forward: Callable[..., tuple[Any, Any]]
    backward: Callable[[np.ndarray, Any], tuple[np.ndarray | None, ...]]
    infer_shape: Callable[..., Shape]
    symbol: str
    formula: str
    local_grad: Mapping[str, str]
    doc: str
    sample: Callable[[np.random.Generator], list[Sample]]
    attrs: tuple[AttrSpec, ...] = ()
    nondiff: frozenset[str] = field(default_factory=frozenset)
    domain: str = ""
    # Optional plain-float rules for graphs of scalars (no attributes): forward(*x) -> out and
    # backward(dout, *x, out) -> gradients in input order. They must give bit for bit what forward and backward
    # give on 0-d arrays (IEEE + - * / and comparisons do); the engine then skips numpy's per-call overhead.
    scalar: tuple[Callable[..., float], Callable[..., tuple[float, ...]]] | None = None

    def default_attrs(self) -> dict[str, Any]:
        return {a.name: a.default for a in self.attrs}

    def resolve_attrs(self, attrs: Mapping[str, Any] | None) -> dict[str, Any]:
        """Defaults overlaid with `attrs`, each validated; unknown names raise ValueInputError."""
        attrs = dict(attrs or {})
        known = {a.name: a for a in self.attrs}
        unknown = sorted(set(attrs) - set(known))
        if unknown:
            raise ValueInputError(f"op '{self.name}' has no attribute {', '.join(map(repr, unknown))}")
        return {name: spec.validate(attrs.get(name, spec.default)) for name, spec in known.items()}

    def display_symbol(self, attrs: Mapping[str, Any] | None = None) -> str:
        values = self.default_attrs()
        values.update(attrs or {})
        return self.symbol.format(**{k: _short(v) for k, v in values.items()})

    def differentiable(self, port: str) -> bool:
        return port not in self.nondiff


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


REGISTRY: dict[str, OpSpec] = {}


def register(spec: OpSpec) -> OpSpec:
    """Add an op to the registry; a second op of the same name is a programming error."""
    if spec.name in REGISTRY:
        raise ValueError(f"op '{spec.name}' is registered twice")
    if len(set(spec.inputs)) != len(spec.inputs):
        raise ValueError(f"op '{spec.name}' has duplicate input names")
    if set(spec.local_grad) != set(spec.inputs) - set(spec.nondiff):
        raise ValueError(f"op '{spec.name}': local_grad must name exactly its differentiable inputs")
    REGISTRY[spec.name] = spec
    return spec


def get_op(name: str) -> OpSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise GraphError(f"unknown op '{name}'") from None


def families() -> dict[str, list[OpSpec]]:
    """Ops grouped by family, in registration order: what the palette lists."""
    out: dict[str, list[OpSpec]] = {}
    for spec in REGISTRY.values():
        out.setdefault(spec.family, []).append(spec)
    return out


# ---- helpers shared by the op families ---------------------------------------------------------------------

def shape_str(shape: Shape) -> str:
    return "scalar ()" if shape == () else str(tuple(shape))


def same_shape(op: str, a: str = "x", b: str = "y") -> Callable[[Shape, Shape], Shape]:
    def rule(sa: Shape, sb: Shape) -> Shape:
        if tuple(sa) != tuple(sb):
            raise ShapeError(f"{op}: {a} has shape {shape_str(sa)} but {b} has shape {shape_str(sb)}; they must match")
        return tuple(sa)
    return rule


def broadcast_rule(op: str) -> Callable[[Shape, Shape], Shape]:
    def rule(sa: Shape, sb: Shape) -> Shape:
        try:
            return tuple(np.broadcast_shapes(tuple(sa), tuple(sb)))
        except ValueError:
            raise ShapeError(
                f"{op}: x has shape {shape_str(sa)} and y has shape {shape_str(sb)}, which do not broadcast"
            ) from None
    return rule


def unbroadcast(grad: np.ndarray, shape: Shape) -> np.ndarray:
    """Sum `grad` back down to `shape`: the gradient of a broadcast is the sum over the copies it made."""
    grad = np.asarray(grad)
    if grad.shape == tuple(shape):
        return grad
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    keep = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if keep:
        grad = grad.sum(axis=keep, keepdims=True)
    return grad.reshape(shape)


ELEMENTWISE_SHAPES: tuple[Shape, ...] = ((), (3,), (2, 4), (2, 3, 2))


def away_from(rng: np.random.Generator, shape: Shape, gap: float = 0.1, scale: float = 2.0,
              at: float = 0.0) -> np.ndarray:
    """Random values at least `gap` away from the kink at `at`: sign * U(gap, scale) + at."""
    sign = rng.choice([-1.0, 1.0], size=shape)
    return np.asarray(at + sign * rng.uniform(gap, scale, size=shape), dtype=np.float64)
