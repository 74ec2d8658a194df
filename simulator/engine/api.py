"""The scripting API: evaluate an expression with values and get its value and gradients in one call."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from simulator.engine.trace import run
from simulator.core.errors import GraphError
from simulator.graphs.graph import Graph, as_value


@dataclass(frozen=True)
class Evaluation:
    """`value`: the output (a float, or an ndarray for a tensor output). `grads`: for each input name, the
    gradient of the output (of its sum, for a tensor output) with respect to it, shaped like the input."""

    value: float | np.ndarray
    grads: dict[str, float | np.ndarray]
    graph: Graph


def _plain(a: np.ndarray, like_scalar: bool) -> float | np.ndarray:
    return float(a) if like_scalar else np.asarray(a)


def evaluate(expression: str | Graph, **values: Any) -> Evaluation:
    """Run `expression` forward and backward.

    >>> r = evaluate("(x + y) * z", x=-2, y=5, z=-4)
    >>> r.value, r.grads
    (-12.0, {'x': -4.0, 'y': -4.0, 'z': 3.0})
    """
    graph = expression.copy() if isinstance(expression, Graph) else Graph.from_expression(expression)
    inputs = {n.id for n in graph.leaves()}
    unknown = sorted(set(values) - {n.id for n in graph})
    if unknown:
        raise GraphError(f"{', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} not in the expression "
                         f"(its inputs are {', '.join(sorted(inputs)) or 'none'})")
    missing = sorted(i for i in inputs if i not in values) if not isinstance(expression, Graph) else []
    if missing:
        raise GraphError(f"no value given for {', '.join(missing)}")
    scalar_input = {}
    for name, v in values.items():
        arr = as_value(v, f"value of '{name}'")
        scalar_input[name] = arr.ndim == 0
        graph.set_value(name, arr)
    result = run(graph)
    out = result.value
    grads = {n.id: _plain(result.grads.get(n.id, np.zeros_like(n.value)), scalar_input.get(n.id, n.value.ndim == 0))
             for n in graph.leaves()}
    return Evaluation(_plain(out, out.ndim == 0), grads, graph)
