"""The step engine: a Graph compiled into an ordered program, run as a fast pass or as recorded step events.

Forward visits op nodes in topological order. Backward seeds the output with ones (dL/dL = 1; for a tensor
output, the gradient of its sum), visits op nodes in reverse order and applies the chain rule
downstream = upstream x local. A value that feeds several nodes receives one gradient per wire; each arrival
after the first is its own "accumulate" event (the += of micrograd). A Trace records the events, so stepping
back or scrubbing replays them instead of recomputing.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Iterator, Literal, Mapping

import numpy as np

from simulator.core.errors import GraphError, NumericError, StudioError, ValueInputError
from simulator.core.formatting import format_value
from simulator.graphs.graph import Graph
from simulator.ops import OpSpec

Phase = Literal["forward", "backward", "update"]
EventKind = Literal["op", "seed", "accumulate"]


@dataclass(frozen=True)
class StepEvent:
    """One visible step. Forward op: inputs {port: value}, outputs {"out": value}. Backward seed: outputs
    {"grad": ones}. Backward op: inputs {"upstream": dL/dnode}, outputs {port: dL/d(input via that wire)}.
    Accumulate: node is the receiving value, inputs {"previous", "incoming"}, outputs {"grad": their sum}."""

    index: int
    phase: Phase
    kind: EventKind
    node: str
    inputs: Mapping[str, np.ndarray]
    outputs: Mapping[str, np.ndarray]
    note: str
    sources: Mapping[str, str] = field(default_factory=dict)  # backward op: port -> the node the wire comes from
    local: Mapping[str, np.ndarray] = field(default_factory=dict)  # backward op on scalars: port -> d node / d port


@dataclass(frozen=True)
class _OpStep:
    node: str
    op: str
    spec: OpSpec
    attrs: dict[str, Any]
    srcs: tuple[str, ...]          # source node per port
    grad_ports: tuple[bool, ...]   # whether a gradient flows back through each port


class Program:
    """A graph frozen into run order. Recompile after the graph's structure changes; values are read per run."""

    def __init__(self, graph: Graph):
        missing = graph.missing_inputs()
        if missing:
            raise GraphError("unconnected inputs: " + ", ".join(f"'{p}' of '{n}'" for n, p in missing))
        graph.infer_shapes()
        self.output = graph.output
        needed = _ancestors_and_self(graph, self.output)
        order = [nid for nid in graph.topological_order() if nid in needed]
        nodes = {nid: graph.node(nid) for nid in order}
        self.leaves = [nid for nid in order if nodes[nid].is_leaf]
        self.kinds = {nid: nodes[nid].kind for nid in order}
        # A gradient is wanted for inputs, parameters and anything computed from them; never for constants.
        wants: dict[str, bool] = {}
        steps = []
        for nid in order:
            node = nodes[nid]
            if node.is_leaf:
                # labels feed only non-differentiable ports: they get no gradient
                wants[nid] = node.kind != "const" and any(
                    e.dst in needed and graph.node(e.dst).spec.differentiable(e.port) for e in graph.edges_from(nid))
                wants[nid] = wants[nid] or (nid == self.output and node.kind != "const")
                continue
            srcs = tuple(graph.edge_into(nid, p).src for p in node.ports)
            grad_ports = tuple(node.spec.differentiable(p) and wants[s] for p, s in zip(node.ports, srcs))
            wants[nid] = any(grad_ports)
            steps.append(_OpStep(nid, node.op, node.spec, dict(node.attrs), srcs, grad_ports))
        self.steps: tuple[_OpStep, ...] = tuple(steps)
        self.wants_grad = wants
        self.fan_out = {nid: sum(s.srcs.count(nid) for s in steps) for nid in order}

    def leaf_values(self, graph: Graph, overrides: Mapping[str, Any] | None = None) -> dict[str, np.ndarray]:
        values = {nid: graph.node(nid).value for nid in self.leaves}
        for k, v in (overrides or {}).items():
            if k not in values:
                raise GraphError(f"'{k}' is not an input of this graph")
            values[k] = v
        return values


def _ancestors_and_self(graph: Graph, node: str) -> set[str]:
    return graph.ancestors(node) | {node}


# ---- the core of both paths: one node forward, one node backward -----------------------------------------------

def _forward_node(step: _OpStep, values: dict[str, np.ndarray], caches: dict[str, Any]) -> np.ndarray:
    ins = [values[s] for s in step.srcs]
    try:
        with np.errstate(all="ignore"):
            out, cache = step.spec.forward(*ins, **step.attrs)
    except StudioError as exc:
        raise type(exc)(f"node '{step.node}' ({step.op}): {exc}") from None
    out = np.asarray(out, dtype=np.float64)
    values[step.node] = out
    caches[step.node] = cache
    return out


def _backward_node(step: _OpStep, upstream: np.ndarray, cache: Any) -> tuple[np.ndarray | None, ...]:
    with np.errstate(all="ignore"):
        grads = step.spec.backward(upstream, cache)
    return tuple(None if (g is None or not want) else np.asarray(g, dtype=np.float64)
                 for g, want in zip(grads, step.grad_ports))


def _check_finite(program: Program, values: Mapping[str, np.ndarray], what: str = "value") -> None:
    for step in program.steps:
        v = values.get(step.node)
        if v is not None and not np.all(np.isfinite(v)):
            ins = ", ".join(f"{s} = {_fmt(values[s])}" for s in step.srcs)
            raise NumericError(f"node '{step.node}' ({step.op}) produced a non-finite {what} "
                               f"(NaN or infinity) from {ins}")


# ---- fast path ---------------------------------------------------------------------------------------------

@dataclass
class RunResult:
    """The outcome of one forward + backward pass: every node's value and every gradient (dL/dnode)."""

    output: str
    values: dict[str, np.ndarray]
    grads: dict[str, np.ndarray]

    @property
    def value(self) -> np.ndarray:
        return self.values[self.output]


def run(graph: Graph | Program, values: Mapping[str, Any] | None = None, graph_for_values: Graph | None = None,
        backward: bool = True) -> RunResult:
    """Forward and (optionally) backward with no recording: the path training and gradient checks use.

    `graph` may be a precompiled Program, in which case `values` must hold every leaf.
    """
    if isinstance(graph, Program):
        program = graph
        vals = dict(values or {}) if graph_for_values is None else program.leaf_values(graph_for_values, values)
    else:
        program = Program(graph)
        vals = program.leaf_values(graph, values)
    caches: dict[str, Any] = {}
    for step in program.steps:
        _forward_node(step, vals, caches)
    _check_finite(program, vals)
    grads: dict[str, np.ndarray] = {}
    if backward:
        out = program.output
        grads[out] = np.ones_like(vals[out])
        for step in reversed(program.steps):
            up = grads.get(step.node)
            if up is None:
                continue
            for src, g in zip(step.srcs, _backward_node(step, up, caches[step.node])):
                if g is not None:
                    grads[src] = np.asarray(grads[src] + g) if src in grads else g
        _check_finite(program, grads, "gradient")
    return RunResult(program.output, vals, grads)


# ---- recorded path -----------------------------------------------------------------------------------------

_fmt = format_value


def _grad_name(node: str, output: str) -> str:
    return f"d{output}/d{node}"


class Trace:
    """The recorded events of one forward and backward pass, and the state after any prefix of them.

    With a learning rate, one gradient-descent update per trainable parameter follows the backward pass
    (p ← p − lr · dL/dp), so a whole training iteration can be stepped through.
    """

    def __init__(self, graph: Graph, learning_rate: float | None = None):
        if learning_rate is not None and not (np.isfinite(learning_rate) and learning_rate > 0):
            raise ValueInputError(f"the learning rate must be a positive number, got {learning_rate!r}")
        self.program = Program(graph)
        self.output = self.program.output
        self.learning_rate = learning_rate
        self.initial: dict[str, np.ndarray] = self.program.leaf_values(graph)
        self.events: tuple[StepEvent, ...] = tuple(_record(self.program, dict(self.initial), learning_rate))
        self.forward_count = sum(1 for e in self.events if e.phase == "forward")
        self.update_count = sum(1 for e in self.events if e.phase == "update")
        self.backward_count = len(self.events) - self.forward_count - self.update_count

    def __len__(self) -> int:
        return len(self.events)

    def state_at(self, k: int) -> "TraceState":
        """What is known after the first k events (0 = only the leaves' values)."""
        if not 0 <= k <= len(self.events):
            raise IndexError(f"step {k} is outside 0..{len(self.events)}")
        values = dict(self.initial)
        grads: dict[str, np.ndarray] = {}
        edge_grads: dict[tuple[str, str], np.ndarray] = {}
        for ev in self.events[:k]:
            if ev.phase == "forward":
                values[ev.node] = ev.outputs["out"]
            elif ev.phase == "update":
                values[ev.node] = ev.outputs["value"]
            elif ev.kind == "seed" or ev.kind == "accumulate":
                grads[ev.node] = ev.outputs["grad"]
            else:
                for port, g in ev.outputs.items():
                    edge_grads[(ev.node, port)] = g
                    src = ev.sources[port]
                    grads.setdefault(src, g)
        return TraceState(k, values, grads, edge_grads, self.events[k - 1] if k else None)

    def label(self, k: int) -> str:
        """'Forward 2 / 3', 'Backward 1 / 7' or 'Ready' for step k, as the transport bar shows it."""
        if k == 0:
            updates = f", {self.update_count} updates" if self.update_count else ""
            return f"Ready: {self.forward_count} forward, {self.backward_count} backward steps{updates}"
        if k <= self.forward_count:
            return f"Forward {k} / {self.forward_count}"
        if k <= self.forward_count + self.backward_count:
            return f"Backward {k - self.forward_count} / {self.backward_count}"
        return f"Update {k - self.forward_count - self.backward_count} / {self.update_count}"

    @property
    def value(self) -> np.ndarray:
        return self.state_at(len(self.events)).values[self.output]


@dataclass(frozen=True)
class TraceState:
    step: int
    values: dict[str, np.ndarray]
    grads: dict[str, np.ndarray]
    edge_grads: dict[tuple[str, str], np.ndarray]
    event: StepEvent | None


def forward_events(program: Program, values: dict[str, np.ndarray], caches: dict[str, Any],
                   start: int = 0) -> Iterator[StepEvent]:
    """Run the forward pass one op node at a time, yielding an event per node."""
    for i, step in enumerate(program.steps):
        out = _forward_node(step, values, caches)
        ins = {p: values[s] for p, s in zip(step.spec.inputs, step.srcs)}
        if not np.all(np.isfinite(out)):
            _check_finite(program, values)
        yield StepEvent(start + i, "forward", "op", step.node, _frozen(ins), _frozen({"out": out}),
                        _forward_note(step, ins, out))


def backward_events(program: Program, values: dict[str, np.ndarray], caches: dict[str, Any],
                    start: int = 0) -> Iterator[StepEvent]:
    """Run the backward pass one op node at a time: a seed event, then an event per op node, with an
    accumulate event whenever a value receives its second (third, ...) gradient."""
    out_id = program.output
    index = start
    seed = np.ones_like(values[out_id])
    grads: dict[str, np.ndarray] = {out_id: seed}
    yield StepEvent(index, "backward", "seed", out_id, _frozen({}), _frozen({"grad": seed}),
                    _seed_note(out_id, seed))
    index += 1
    for step in reversed(program.steps):
        up = grads.get(step.node)
        if up is None:
            continue
        downs = _backward_node(step, up, caches[step.node])
        outs = {p: g for p, g in zip(step.spec.inputs, downs) if g is not None}
        sources = {p: s for p, s, g in zip(step.spec.inputs, step.srcs, downs) if g is not None}
        if not all(np.all(np.isfinite(g)) for g in outs.values()):
            raise NumericError(f"node '{step.node}' ({step.op}) produced a non-finite gradient (NaN or infinity)")
        local = _scalar_locals(step, up, outs, caches[step.node])
        yield StepEvent(index, "backward", "op", step.node, _frozen({"upstream": up}), _frozen(outs),
                        _backward_note(step, program.output, up, outs, local), _frozen(sources), _frozen(local))
        index += 1
        for port, g in outs.items():
            src = sources[port]
            if src not in grads:
                grads[src] = g
                continue
            previous = grads[src]
            total = np.asarray(previous + g)
            grads[src] = total
            yield StepEvent(index, "backward", "accumulate", src, _frozen({"previous": previous, "incoming": g}),
                            _frozen({"grad": total}),
                            _accumulate_note(src, program.output, previous, g, total, step.node))
            index += 1


def _record(program: Program, values: dict[str, np.ndarray], learning_rate: float | None = None) -> list[StepEvent]:
    caches: dict[str, Any] = {}
    events = list(forward_events(program, values, caches))
    events.extend(backward_events(program, values, caches, start=len(events)))
    if learning_rate is not None:
        events.extend(update_events(program, values, events, learning_rate, start=len(events)))
    return events


def update_events(program: Program, values: Mapping[str, np.ndarray], events: list[StepEvent], lr: float,
                  start: int = 0) -> Iterator[StepEvent]:
    """One plain gradient-descent step per trainable parameter: p ← p − lr · dL/dp (the final, accumulated
    gradient of the backward pass)."""
    grads: dict[str, np.ndarray] = {}
    for ev in events:
        if ev.phase != "backward":
            continue
        if ev.kind in ("seed", "accumulate"):
            grads[ev.node] = ev.outputs["grad"]
        else:
            for port, g in ev.outputs.items():
                grads.setdefault(ev.sources[port], g)
    index = start
    out = program.output
    for nid in program.leaves:
        if program.kinds[nid] != "param" or nid not in grads:
            continue
        old, g = values[nid], grads[nid]
        new = old - lr * g
        if np.ndim(new) == 0:
            note = (f"{nid} ← {nid} − lr · d{out}/d{nid} = {_fmt(old)} − {lr:g} × {_fmt(g)} = {_fmt(new)}")
        else:
            note = f"{nid} ← {nid} − lr · d{out}/d{nid}  (lr = {lr:g}, shape {tuple(np.shape(new))})"
        yield StepEvent(index, "update", "op", nid, _frozen({"value": old, "grad": g}), _frozen({"value": new}), note)
        index += 1


def _frozen(d: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(d))


# ---- notes for the chain-rule view -------------------------------------------------------------------------

def _forward_note(step: _OpStep, ins: Mapping[str, np.ndarray], out: np.ndarray) -> str:
    formula = step.spec.formula
    if all(np.ndim(v) == 0 for v in ins.values()) and out.ndim == 0:
        args = ", ".join(f"{p} ← {s} = {_fmt(v)}" for (p, v), s in zip(ins.items(), step.srcs))
        if step.attrs:
            args += "; " + ", ".join(f"{k} = {v}" for k, v in step.attrs.items())
        return f"{step.node} = {formula}  ({args})  →  {step.node} = {_fmt(out)}"
    shapes = ", ".join(f"{p} {tuple(np.shape(v))}" for p, v in ins.items())
    return f"{step.node} = {formula}: {shapes}  →  {tuple(out.shape)}"


def _seed_note(out_id: str, seed: np.ndarray) -> str:
    if seed.ndim == 0:
        return f"{_grad_name(out_id, out_id)} = 1: the backward pass starts at the output"
    return (f"{_grad_name(out_id, out_id)} = 1 for every entry of {tuple(seed.shape)}: "
            f"the backward pass starts from the gradient of the sum of the output")


def _scalar_locals(step: _OpStep, up: np.ndarray, outs: Mapping[str, np.ndarray], cache: Any) -> dict:
    """For a node whose upstream and downstream gradients are scalars, its local derivatives d node / d port:
    the backward pass of an upstream gradient of 1 (backward is linear in the upstream gradient)."""
    if up.ndim != 0 or not all(np.ndim(g) == 0 for g in outs.values()):
        return {}
    with np.errstate(all="ignore"):
        grads = step.spec.backward(np.ones(()), cache)
    return {p: np.asarray(g, dtype=np.float64) for p, g in zip(step.spec.inputs, grads) if p in outs}


def _backward_note(step: _OpStep, out_id: str, up: np.ndarray, outs: Mapping[str, np.ndarray],
                   local: Mapping[str, np.ndarray]) -> str:
    lines = []
    up_name = _grad_name(step.node, out_id)
    for port, src in zip(step.spec.inputs, step.srcs):
        if port not in outs:
            continue
        down = outs[port]
        local_formula = step.spec.local_grad[port]
        target = _grad_name(src, out_id)
        if local:
            lines.append(f"{target} = {up_name} · d{step.node}/d{src} = {_fmt(up)} × {_fmt(local[port])} = {_fmt(down)}"
                         f"    (local ∂{step.node}/∂{port} = {local_formula})")
        else:
            lines.append(f"{target} = {up_name} · d{step.node}/d{src}: {local_formula}  →  shape {tuple(down.shape)}")
    return "\n".join(lines)


def _accumulate_note(src: str, out_id: str, previous: np.ndarray, incoming: np.ndarray, total: np.ndarray,
                     via: str) -> str:
    name = _grad_name(src, out_id)
    if np.ndim(total) == 0:
        return (f"{name} += {_fmt(incoming)} (from {via}):  {_fmt(previous)} + {_fmt(incoming)} = {_fmt(total)}"
                f"    — {src} feeds several nodes, so its gradients add")
    return f"{name} += gradient from {via} {tuple(np.shape(incoming))} — {src} feeds several nodes, so its gradients add"
