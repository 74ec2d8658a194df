"""The scripting API: evaluate an expression with values and get its value and gradients in one call."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from simulator.core.errors import GraphError, ValueInputError
from simulator.engine.trace import _all_scalars, compile_program, run, run_floats
from simulator.graphs.graph import Graph, as_value


@dataclass(frozen=True)
class Evaluation:
    """`value`: the output (a float, or an ndarray for a tensor output). `grads`: for each input name, the
    gradient of the output (of its sum, for a tensor output) with respect to it, shaped like the input.
    `graph`: the graph with the given values set (built on first use)."""

    value: float | np.ndarray
    grads: dict[str, float | np.ndarray]
    _source: Graph = field(repr=False, compare=False)
    _values: dict[str, np.ndarray] = field(repr=False, compare=False)

    @property
    def graph(self) -> Graph:
        g = self._source.copy()
        g.set_values(self._values)
        return g


def _plain(a: np.ndarray, like_scalar: bool) -> float | np.ndarray:
    return float(a) if like_scalar else np.asarray(a)


def evaluate(expression: str | Graph, **values: Any) -> Evaluation:
    """Run `expression` forward and backward. Every name given must be an input (or parameter) of it.

    >>> r = evaluate("(x + y) * z", x=-2, y=5, z=-4)
    >>> r.value, r.grads
    (-12.0, {'x': -4.0, 'y': -4.0, 'z': 3.0})
    """
    given_graph = isinstance(expression, Graph)
    graph = expression if given_graph else Graph.from_expression(expression)
    leaves = graph.leaves()
    inputs = {n.id for n in leaves}
    unknown = sorted(values.keys() - inputs)
    if unknown:
        consts = [u for u in unknown if u in graph]
        what = (f"{', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} not "
                f"{'an input' if len(unknown) == 1 else 'inputs'} of the expression")
        if consts:
            what += f" ({', '.join(consts)} {'is a constant' if len(consts) == 1 else 'are constants'} or computed)"
        raise ValueInputError(f"{what}; its inputs are {', '.join(sorted(inputs)) or 'none'}")
    missing = sorted(i for i in inputs if i not in values) if not given_graph else []
    if missing:
        raise GraphError(f"no value given for {', '.join(missing)}")
    arrays = {name: as_value(v, f"value of '{name}'") for name, v in values.items()}
    scalar_input = {name: a.ndim == 0 for name, a in arrays.items()}
    if all(graph.node(n).value.shape == a.shape for n, a in arrays.items()):
        source = graph   # same shapes: the compiled program fits, the values ride along without a copy
    else:
        source = graph.copy() if given_graph else graph
        source.set_values(arrays)   # one shape check for them all (refused, unchanged, if they do not fit)
    program = compile_program(source)
    leaf_values = program.leaf_values(source, arrays)
    program.check_budget()
    if _all_scalars(program, leaf_values):
        # scalars all through: the run's floats are the answer (no array per node and per gradient)
        fv, got = run_floats(program, leaf_values)
        out: float | np.ndarray = float(fv[program.output])
    else:
        result = run(program, values=leaf_values)
        out, got = result.value, result.grads
    grads = {}
    for n in leaves:
        g = got.get(n.id)
        if g is None:   # an input that does not reach the output (or only as labels): its gradient is 0
            g = np.zeros_like(arrays[n.id] if n.id in arrays else n.value)
        elif not isinstance(g, np.ndarray):   # from the run of scalars: every leaf it reached is a scalar
            grads[n.id] = float(g)
            continue
        grads[n.id] = float(g) if scalar_input.get(n.id, g.ndim == 0) else np.asarray(g)
    return Evaluation(out if type(out) is float else _plain(out, out.ndim == 0), grads, source, arrays)
