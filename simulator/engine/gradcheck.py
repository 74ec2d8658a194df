"""Numerical gradients by centred differences in float64, and the relative error that compares them to backprop.

Thresholds from the cs231n notes: a relative error above 1e-2 means the gradient is probably wrong, below 1e-7
is what a correct smooth gradient gives, and in between deserves a look (kinks such as ReLU's land there).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np

from simulator.engine.trace import Program, _forward_node, numeric_error, run
from simulator.core.errors import GraphError
from simulator.graphs.graph import Graph

GOOD = 1e-7
BAD = 1e-2
Status = Literal["good", "warn", "bad"]


def numerical_gradient(f: Callable[[np.ndarray], float], x: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """d f / d x by centred differences (f(x + h) - f(x - h)) / 2h, one entry at a time. `x` is restored."""
    x = np.asarray(x, dtype=np.float64)
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        fp = float(f(x))
        flat[i] = old - h
        fm = float(f(x))
        flat[i] = old
        gflat[i] = (fp - fm) / (2.0 * h)
    return grad


def relative_error(analytic: np.ndarray, numeric: np.ndarray) -> np.ndarray:
    """|a - n| / max(|a|, |n|) per entry; 0 where both are exactly zero."""
    a = np.asarray(analytic, dtype=np.float64)
    n = np.asarray(numeric, dtype=np.float64)
    denom = np.maximum(np.abs(a), np.abs(n))
    with np.errstate(invalid="ignore", divide="ignore"):
        err = np.abs(a - n) / denom
    return np.where(denom == 0, 0.0, err)


def status_of(error: float) -> Status:
    if error < GOOD:
        return "good"
    if error < BAD:
        return "warn"
    return "bad"


@dataclass(frozen=True)
class GradCheck:
    """One comparison: `what` names the gradient (dL/dx, or node q's local gradient for input port a)."""

    node: str
    what: str
    analytic: np.ndarray
    numeric: np.ndarray
    errors: np.ndarray

    @property
    def max_error(self) -> float:
        return float(np.max(self.errors)) if self.errors.size else 0.0

    @property
    def status(self) -> Status:
        return status_of(self.max_error)


def check_graph(graph: Graph, nodes: list[str] | None = None, h: float = 1e-5) -> list[GradCheck]:
    """dL/dnode from backprop against centred differences of the whole forward pass, for every input and
    parameter (or the given leaves). L is the output (its sum, for a tensor output)."""
    program = Program(graph)
    base = program.leaf_values(graph)
    result = run(program, base, scalar_rules=False)   # check the ops' own backward, not their float rules
    targets = nodes or [nid for nid in program.leaves if program.wants_grad[nid]]
    checks = []
    for nid in targets:
        if nid not in base:
            raise GraphError(f"'{nid}' is not an input or parameter feeding the output")
        if not program.wants_grad[nid]:
            what = "a constant" if program.kinds[nid] == "const" else "only used as labels"
            raise GraphError(f"'{nid}' gets no gradient: it is {what}")
        values = {k: v.astype(np.float64, copy=True) for k, v in base.items()}

        def f(x: np.ndarray, nid: str = nid) -> float:
            values[nid] = x
            return float(np.sum(run(program, values, backward=False, scalar_rules=False).value))
        numeric = numerical_gradient(f, values[nid].copy(), h)
        analytic = result.grads.get(nid, np.zeros_like(base[nid]))
        checks.append(GradCheck(nid, f"d{program.output}/d{nid}", analytic, numeric, relative_error(analytic, numeric)))
    return checks


def check_node(graph: Graph, node: str, seed: int = 0, h: float = 1e-5) -> list[GradCheck]:
    """An op node's backward against centred differences of its forward, one check per differentiable input.

    The node is checked on its current input values with the upstream gradient g = d(output)/d(node) of the
    backward pass (the gradient the learner sees under the node), comparing backward(g) with the numerical
    gradient of sum(forward(inputs) * g): the analytic numbers are the ones the stepper shows on the node's input
    wires. Where that gradient is 0 everywhere (a dead ReLU downstream) a seeded random g is used instead, and the
    check says so (a check against 0 would pass whatever the backward did).
    """
    program = Program(graph)
    step = next((s for s in program.steps if s.node == node), None)
    if step is None:
        raise GraphError(f"'{node}' is not an op node that feeds the output")
    values = program.leaf_values(graph)
    caches: dict = {}
    with np.errstate(all="ignore"):   # a NaN or an infinity is our NumericError, naming the node and the step
        for s in program.steps:
            _forward_node(s, values, caches)
            if s is step:
                break
        ins = [values[s].astype(np.float64, copy=True) for s in step.srcs]
    from simulator.engine.trace import Trace
    trace = Trace(graph)
    upstream = np.asarray(trace.state_at(len(trace)).grads.get(node, 0.0), dtype=np.float64)
    upstream = np.broadcast_to(upstream, np.shape(values[node])).copy()
    which = f"the backward pass's upstream gradient d{program.output}/d{node}"
    mag = np.abs(upstream)
    if not mag.size or mag.max() == 0 or mag.min() < 1e-3 * mag.max():
        # 0 (or nearly 0) in places: a check there would pass whatever the backward did there, and centred
        # differences cannot resolve tiny entries relatively. A seeded random g exercises every entry.
        upstream = np.random.default_rng(seed).normal(size=np.shape(values[node]))
        which = (f"a random upstream gradient g: d{program.output}/d{node} is 0 or tiny in places, where a check "
                 f"would prove nothing")
    with np.errstate(all="ignore"):
        analytic = step.spec.backward(upstream, caches[node])
    for port, g in zip(step.spec.inputs, analytic):
        if g is not None and step.spec.differentiable(port) and not np.all(np.isfinite(g)):
            raise numeric_error(step, values, np.asarray(g, dtype=np.float64), backward_step=1, port=port,
                                output=node)
    checks = []
    for i, port in enumerate(step.spec.inputs):
        if not step.spec.differentiable(port):
            continue

        def f(x: np.ndarray, i: int = i) -> float:
            args = list(ins)
            args[i] = x
            with np.errstate(all="ignore"):
                out, _ = step.spec.forward(*args, **step.attrs)
            return float(np.sum(np.asarray(out) * upstream))
        numeric = numerical_gradient(f, ins[i].copy(), h)
        a = np.asarray(analytic[i], dtype=np.float64)
        checks.append(GradCheck(node, f"backward of {node} for input {port} ({step.srcs[i]}), with {which}", a,
                                numeric, relative_error(a, numeric)))
    return checks
