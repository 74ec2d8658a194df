"""The step engine: a Graph compiled into an ordered program, run as a fast pass or as recorded step events.

Forward visits op nodes in topological order. Backward seeds the output with ones (dL/dL = 1; for a tensor
output, the gradient of its sum), visits op nodes in reverse order and applies the chain rule
downstream = upstream x local. A value that feeds several nodes receives one gradient per wire; each arrival
after the first is its own "accumulate" event (the += of micrograd). A Trace records the events, so stepping
back or scrubbing replays them instead of recomputing.
"""
from __future__ import annotations

import bisect
import math
import re
import weakref
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Iterator, Literal, Mapping

import numpy as np

from simulator.core.errors import GraphError, NumericError, StudioError, ValueInputError
from simulator.core.formatting import format_value
from simulator.core.params import Param
from simulator.graphs.graph import Graph, paused_gc
from simulator.ops import OpSpec

Phase = Literal["forward", "backward", "update"]
EventKind = Literal["op", "seed", "accumulate"]


# The rate of the optional update phase (p ← p − lr · dL/dp at the end of a trace), as the transport bar offers it.
UPDATE_LR = Param("lr", float, 0.1, low=0.0, low_open=True, high=1e12, log=True, label="update learning rate",
                  doc="After the backward pass, step through p ← p − lr · dL/dp for every trainable parameter "
                      "(make a leaf a Parameter in the inspector)")


_NO_ATTRS: Mapping[str, Any] = MappingProxyType({})   # one empty read-only mapping: ops without attributes, events
_Frozen = MappingProxyType   # an event's read-only view of a dict made for it (nothing else holds the dict)


class StepEvent:
    """One visible step. Forward op: inputs {port: value}, outputs {"out": value}. Backward seed: outputs
    {"grad": ones}. Backward op: inputs {"upstream": dL/dnode}, outputs {port: dL/d(input via that wire)}.
    Accumulate: node is the receiving value, inputs {"previous", "incoming"}, outputs {"grad": their sum}.
    `sources` (backward op): port -> the node the wire comes from; `local` (backward op on scalars): port ->
    d node / d port.

    `note` is the chain-rule sentence the step panel shows. A trace records thousands of events and the learner
    reads a few of them, so a recorder may pass instead a function of the event that writes it, called the first
    time it is read; it may read the compiled op (`program_step`) and the graph's output (`output`) the event
    was recorded with. Events are read-only; two events are equal when all their fields (the note's text
    included) are."""

    __slots__ = ("index", "phase", "kind", "node", "inputs", "outputs", "_note", "sources", "local", "_step",
                 "_output")
    _FIELDS = ("index", "phase", "kind", "node", "inputs", "outputs", "note", "sources", "local")

    def __init__(self, index: int, phase: Phase, kind: EventKind, node: str, inputs: Mapping[str, np.ndarray],
                 outputs: Mapping[str, np.ndarray], note: str | Callable[["StepEvent"], str],
                 sources: Mapping[str, str] = _NO_ATTRS, local: Mapping[str, np.ndarray] = _NO_ATTRS,
                 program_step: "_OpStep | None" = None, output: str | None = None):
        put = object.__setattr__   # (no tuple of fields to build per event: a trace makes thousands)
        put(self, "index", index)
        put(self, "phase", phase)
        put(self, "kind", kind)
        put(self, "node", node)
        put(self, "inputs", inputs)
        put(self, "outputs", outputs)
        put(self, "_note", note)
        put(self, "sources", sources)
        put(self, "local", local)
        put(self, "_step", program_step)
        put(self, "_output", output)

    @property
    def note(self) -> str:
        note = self._note
        if not isinstance(note, str):
            note = note(self)
            object.__setattr__(self, "_note", note)
        return note

    @property
    def program_step(self) -> "_OpStep | None":
        return self._step

    @property
    def output(self) -> str | None:
        return self._output

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"a StepEvent is read-only (cannot set '{name}')")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"a StepEvent is read-only (cannot delete '{name}')")

    def __eq__(self, other: object) -> bool:
        if type(other) is not StepEvent:
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in self._FIELDS)

    __hash__ = None   # type: ignore[assignment]  # its mappings are not hashable

    def __repr__(self) -> str:
        return "StepEvent(" + ", ".join(f"{f}={getattr(self, f)!r}" for f in self._FIELDS) + ")"


class _OpStep:
    """One op node of a compiled program (a slotted class: compiling builds thousands of these)."""

    __slots__ = ("node", "op", "spec", "attrs", "srcs", "grad_ports", "index")

    def __init__(self, node: str, op: str, spec: OpSpec, attrs: dict[str, Any], srcs: tuple[str, ...],
                 grad_ports: tuple[bool, ...], index: int):
        self.node, self.op, self.spec, self.attrs = node, op, spec, attrs
        self.srcs = srcs                 # source node per port
        self.grad_ports = grad_ports     # whether a gradient flows back through each port
        self.index = index               # its place in the forward pass (forward step index + 1)


MEMORY_BUDGET = 1 << 30  # bytes: values, gradients and the recorded trace of one run, estimated before allocating


class MemoryBudgetError(ValueInputError):
    """A run would need more memory than MEMORY_BUDGET (estimated from the shapes before anything is allocated)."""


class Program:
    """A graph frozen into run order. Recompile after the graph's structure changes; values are read per run.
    Compiling is linear in the graph's size (plus the sort of its topological order)."""

    def __init__(self, graph: Graph):
        # One walk over the graph's nodes collects what compiling needs; the rest works on that compact list. (A
        # graph of thousands of nodes outgrows the CPU's caches, so every extra walk over it costs memory traffic.)
        walked = []   # (node, kind, op, spec, attrs, srcs) in topological order
        complete = True
        node_of, edge_into = graph.node, graph.edge_into
        for nid in graph.topological_order():
            node = node_of(nid)
            if node.kind != "op":
                walked.append((nid, node.kind, None, None, None, ()))
                continue
            spec = node.spec
            edges = [edge_into(nid, p) for p in spec.inputs]
            if None in edges:
                complete = False
                continue
            attrs = dict(node.attrs) if node.attrs else _NO_ATTRS
            walked.append((nid, "op", node.op, spec, attrs, tuple(e.src for e in edges)))
        if not complete:
            missing = graph.missing_inputs()
            raise GraphError("unconnected inputs: " + ", ".join(f"'{p}' of '{n}'" for n, p in missing))
        shapes = graph.infer_shapes()
        self.output = output = graph.output
        needed = {output}
        for nid, _kind, _op, _spec, _attrs, srcs in reversed(walked):   # consumers before producers
            if nid in needed:
                needed.update(srcs)
        self.leaves: list[str] = []
        self.kinds: dict[str, str] = {}
        self.shapes: dict[str, tuple[int, ...] | None] = {}
        # A gradient is wanted for inputs, parameters and anything computed from them; never for constants.
        # A leaf wants one when it is the output or feeds a differentiable port (labels feed only
        # non-differentiable ports: they get none); it is marked while its consumers are compiled.
        wants: dict[str, bool] = {}
        steps = []
        kinds = self.kinds
        for nid, kind, op, spec, attrs, srcs in walked:
            if nid not in needed:
                continue
            kinds[nid] = kind
            self.shapes[nid] = shapes[nid]
            if kind != "op":
                self.leaves.append(nid)
                wants[nid] = kind != "const" and nid == output
                continue
            grad_ports = []
            for p, src in zip(spec.inputs, srcs):
                if not spec.differentiable(p):
                    grad_ports.append(False)
                elif kinds[src] == "op":
                    grad_ports.append(wants[src])
                else:
                    grad_ports.append(kinds[src] != "const")
                    wants[src] = wants[src] or grad_ports[-1]
            wants[nid] = any(grad_ports)
            steps.append(_OpStep(nid, op, spec, attrs, srcs, tuple(grad_ports), len(steps) + 1))
        self.steps: tuple[_OpStep, ...] = tuple(steps)
        self.wants_grad = wants
        # every value a scalar: run() may use the ops' plain-float rules (same numbers, far less overhead)
        self.scalar = all(s == () for s in self.shapes.values())
        self.estimated_bytes = self._estimate_bytes()

    def _estimate_bytes(self) -> int:
        """Float64 bytes of every value, every wire's gradient, every += total and the seed: what a recorded
        run keeps (a node's gradient is the array of its first wire, so it is not counted twice)."""
        size = {nid: math.prod(s) if s is not None else 1 for nid, s in self.shapes.items()}
        total = sum(size.values()) + size[self.output]
        arrivals: dict[str, int] = {}
        for step in self.steps:
            for src, want in zip(step.srcs, step.grad_ports):
                if want:
                    arrivals[src] = arrivals.get(src, 0) + 1
                    total += size[src] * (1 if arrivals[src] == 1 else 2)
        return 8 * total

    def check_budget(self, budget: int | None = None) -> None:
        """Refuse, before allocating, a run whose values, gradients and trace would exceed the memory budget."""
        budget = MEMORY_BUDGET if budget is None else budget
        if self.estimated_bytes > budget:
            raise MemoryBudgetError(
                f"this graph would need about {_mib(self.estimated_bytes)} for its values, gradients and steps; "
                f"the limit is {_mib(budget)}. Use smaller tensors or fewer ops.")

    def leaf_values(self, graph: Graph, overrides: Mapping[str, Any] | None = None) -> dict[str, np.ndarray]:
        values = {nid: graph.node(nid).value for nid in self.leaves}
        for k, v in (overrides or {}).items():
            if k not in values:
                raise GraphError(f"'{k}' is not an input of this graph")
            values[k] = v
        return values


def _mib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


# ---- non-finite numbers, reported in the learner's words ------------------------------------------------------

_INFIX = {"add": "+", "sub": "-", "mul": "*", "div": "/", "matmul": "@"}


def describe(step: _OpStep) -> str:
    """The node as the learner would write it: 'q1 = log(x)', 'f = q1 + q2', 'q = x**0.5'."""
    a = step.srcs
    if step.op in _INFIX and len(a) == 2:
        rhs = f"{a[0]} {_INFIX[step.op]} {a[1]}"
    elif step.op == "pow":
        rhs = f"{a[0]}**{_fmt(step.attrs.get('p', 2.0))}"
    elif step.op == "neg":
        rhs = f"-{a[0]}"
    else:
        rhs = f"{step.op}({', '.join(a)})"
    return f"{step.node} = {rhs}"


def _bad_kind(a: np.ndarray) -> str:
    a = np.asarray(a)
    bad = a[~np.isfinite(a)] if a.ndim else a.reshape(1)
    if np.any(np.isnan(bad)):
        return "NaN (not a number)"
    return "+infinity" if np.all(bad > 0) else ("-infinity" if np.all(bad < 0) else "infinite")


def _where(out: np.ndarray, inputs: Mapping[str, np.ndarray]) -> str:
    """'x = -1' for scalars; 'entry (0, 2), where x = -1' for tensors (inputs broadcast to the output's shape)."""
    out = np.asarray(out)
    if out.ndim == 0:
        index: tuple[int, ...] = ()
        prefix = ""
    else:
        flat = int(np.flatnonzero(~np.isfinite(out))[0])
        index = tuple(int(i) for i in np.unravel_index(flat, out.shape))
        prefix = f"at entry {index}, "
    parts = []
    for name, v in inputs.items():
        v = np.asarray(v)
        if v.ndim == 0:
            parts.append(f"{name} = {_fmt(v)}")
        elif v.shape == out.shape:
            parts.append(f"{name} = {_fmt(v[index])}")
        else:
            try:
                parts.append(f"{name} = {_fmt(np.broadcast_to(v, out.shape)[index])}")
            except ValueError:
                parts.append(f"{name} {tuple(v.shape)}")
    return prefix + ("where " + ", ".join(parts) if parts else "")


def numeric_error(step: _OpStep, values: Mapping[str, np.ndarray], bad: np.ndarray, *, backward_step: int = 0,
                  port: str | None = None, output: str = "L") -> NumericError:
    """Our NumericError naming the node, the step and the numbers that led there."""
    ins = {s: values[s] for s in dict.fromkeys(step.srcs) if s in values}
    hint = f" ({_in_names(step.spec.domain, step)})" if step.spec.domain else ""
    if backward_step:
        src = step.srcs[step.spec.inputs.index(port)] if port in step.spec.inputs else "its input"
        return NumericError(
            f"backward step {backward_step}, node {describe(step)}: the gradient d{output}/d{src} is "
            f"{_bad_kind(bad)} {_where(bad, ins)}{hint}")
    return NumericError(f"forward step {step.index}, node {describe(step)}: the value is {_bad_kind(bad)} "
                        f"{_where(bad, ins)}{hint}")


def _in_names(text: str, step: _OpStep) -> str:
    """The op's port names in `text` replaced by the names of the nodes wired to them (x -> q1)."""
    names = dict(zip(step.spec.inputs, step.srcs))
    pattern = r"\b(" + "|".join(map(re.escape, names)) + r")\b"
    return re.sub(pattern, lambda m: names[m.group(1)], text) if names else text


def _finite(a: np.ndarray) -> bool:
    return math.isfinite(a) if a.ndim == 0 else bool(np.isfinite(a).all())


# ---- the core of both paths: one node forward, one node backward -----------------------------------------------

def _forward_node(step: _OpStep, values: dict[str, np.ndarray], caches: dict[str, Any]) -> np.ndarray:
    """Forward one op (call inside np.errstate(all="ignore")); raises NumericError on NaN or infinity."""
    ins = [values[s] for s in step.srcs]
    try:
        out, cache = step.spec.forward(*ins, **step.attrs)
    except StudioError as exc:
        raise type(exc)(f"node '{step.node}' ({step.op}): {exc}") from None
    out = np.asarray(out, dtype=np.float64)
    values[step.node] = out
    caches[step.node] = cache
    if not _finite(out):
        raise numeric_error(step, values, out)
    return out


def _backward_node(step: _OpStep, upstream: np.ndarray, cache: Any) -> tuple[np.ndarray | None, ...]:
    grads = step.spec.backward(upstream, cache)
    return tuple(None if (g is None or not want) else np.asarray(g, dtype=np.float64)
                 for g, want in zip(grads, step.grad_ports))


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


_PROGRAMS: "weakref.WeakKeyDictionary[Graph, tuple[int, Program]]" = weakref.WeakKeyDictionary()


def compile_program(graph: Graph) -> Program:
    """The graph's Program, compiled once per version of the graph (any edit recompiles)."""
    cached = _PROGRAMS.get(graph)
    if cached is not None and cached[0] == graph.version:
        return cached[1]
    with paused_gc():   # a step object per op, all kept: nothing for the collector to find
        program = Program(graph)
    _PROGRAMS[graph] = (graph.version, program)
    return program


def run(graph: Graph | Program, values: Mapping[str, Any] | None = None, graph_for_values: Graph | None = None,
        backward: bool = True, scalar_rules: bool = True) -> RunResult:
    """Forward and (optionally) backward with no recording: the path training and gradient checks use.

    `graph` may be a precompiled Program, in which case `values` must hold every leaf. A NaN or an infinity
    anywhere raises NumericError naming the node and the step. On a graph of scalars the ops' plain-float rules
    are used (`scalar_rules=False` forces every op's own forward and backward, as gradient checks want).
    """
    if isinstance(graph, Program):
        program = graph
        vals = dict(values or {}) if graph_for_values is None else program.leaf_values(graph_for_values, values)
    else:
        program = compile_program(graph)
        vals = program.leaf_values(graph, values)
    program.check_budget()
    if scalar_rules and _all_scalars(program, vals):
        fv, fgrads = run_floats(program, vals, backward)
        array = np.array
        return RunResult(program.output, {k: array(v) for k, v in fv.items()},
                         {k: array(v) for k, v in fgrads.items()})
    caches: dict[str, Any] = {}
    grads: dict[str, np.ndarray] = {}
    out = program.output
    with np.errstate(all="ignore"):
        for step in program.steps:
            _forward_node(step, vals, caches)
        if backward:
            grads[out] = np.ones_like(vals[out])
            index = 1   # backward steps counted as the Trace counts them: the seed, each op, each +=
            for step in reversed(program.steps):
                up = grads.get(step.node)
                if up is None:
                    continue
                index += 1
                for port, src, g in zip(step.spec.inputs, step.srcs, _backward_node(step, up, caches[step.node])):
                    if g is None:
                        continue
                    if not _finite(g):
                        raise numeric_error(step, vals, g, backward_step=index, port=port, output=out)
                    if src in grads:
                        index += 1
                        g = np.asarray(grads[src] + g)
                        if not _finite(g):
                            raise numeric_error(step, vals, g, backward_step=index, port=port, output=out)
                    grads[src] = g
    return RunResult(out, vals, grads)


def _all_scalars(program: Program, leaves: Mapping[str, Any]) -> bool:
    """Whether the program's values are all scalars, the leaves given included (so run_floats applies)."""
    if not program.scalar:
        return False
    for nid in program.leaves:
        v = leaves[nid]
        if not (v.ndim == 0 if type(v) is np.ndarray else np.ndim(v) == 0):
            return False
    return True


def run_floats(program: Program, leaves: Mapping[str, Any], backward: bool = True
               ) -> tuple[dict[str, float], dict[str, float]]:
    """run() for a graph of scalars (`_all_scalars`), in Python floats: each op's plain-float rule where it has
    one, its array forward/backward on 0-d arrays where it has not (so the numbers are the array path's, bit for
    bit). Returns every node's value and every gradient as floats; callers that want only a few of them (such as
    evaluate(), which reports the inputs' gradients) skip making an array per node."""
    fv: dict[str, float] = {nid: float(v) for nid, v in leaves.items()}
    caches: dict[str, Any] = {}
    isfinite = math.isfinite
    with np.errstate(all="ignore"):
        for step in program.steps:
            rule = step.spec.scalar
            if rule is not None:
                try:
                    out = rule[0](*[fv[s] for s in step.srcs])
                except ArithmeticError:    # x / 0 in floats: let the array path give inf and the message
                    out = math.nan
            else:
                ins = [np.array(fv[s]) for s in step.srcs]
                try:
                    res, caches[step.node] = step.spec.forward(*ins, **step.attrs)
                except StudioError as exc:
                    raise type(exc)(f"node '{step.node}' ({step.op}): {exc}") from None
                out = float(res)
            if not isfinite(out):
                values = {k: np.array(v) for k, v in fv.items()}
                _forward_node(step, values, {})   # raises NumericError with the array path's numbers
                out = float(values[step.node])
            fv[step.node] = out
        grads: dict[str, float] = {}
        output = program.output
        if backward:
            grads[output] = 1.0
            index = 1
            for step in reversed(program.steps):
                up = grads.get(step.node)
                if up is None:
                    continue
                index += 1
                rule = step.spec.scalar
                if rule is not None:
                    try:
                        downs = rule[1](up, *[fv[s] for s in step.srcs], fv[step.node])
                    except ArithmeticError:
                        downs = tuple(math.nan for _ in step.srcs)
                else:
                    downs = [None if g is None else float(g)
                             for g in step.spec.backward(np.array(up), caches[step.node])]
                for port, src, g, want in zip(step.spec.inputs, step.srcs, downs, step.grad_ports):
                    if g is None or not want:
                        continue
                    if src in grads:
                        index += 1
                        g = grads[src] + g
                    if not isfinite(g):
                        values = {k: np.array(v) for k, v in fv.items()}
                        raise numeric_error(step, values, np.array(g), backward_step=index, port=port, output=output)
                    grads[src] = g
    return fv, grads


# ---- recorded path -----------------------------------------------------------------------------------------

_fmt = format_value


def _grad_name(node: str, output: str) -> str:
    return f"d{output}/d{node}"


class Trace:
    """The recorded events of one forward and backward pass, and the state after any prefix of them.

    With a learning rate, one gradient-descent update per trainable parameter follows the backward pass
    (p ← p − lr · dL/dp), so a whole training iteration can be stepped through.

    Seeking is O(1): each value, gradient and wire gradient keeps the (short) list of steps at which it was
    set, so `state_at(k)` copies nothing and a lookup is a binary search in that list, wherever k is.
    """

    def __init__(self, graph: Graph, learning_rate: float | None = None):
        if learning_rate is not None:
            learning_rate = UPDATE_LR.check(learning_rate)
        self.program = compile_program(graph)
        self.program.check_budget()
        self.output = self.program.output
        self.learning_rate = learning_rate
        self.initial: dict[str, np.ndarray] = self.program.leaf_values(graph)
        # Recording builds thousands of containers that all stay alive: the cyclic garbage collector would
        # re-scan them again and again (superlinear in the graph's size) and find nothing to free.
        with paused_gc():
            self._record(graph, learning_rate)

    def _record(self, graph: Graph, learning_rate: float | None) -> None:
        self.events: tuple[StepEvent, ...] = tuple(_record(self.program, dict(self.initial), learning_rate))
        self.forward_count = sum(1 for e in self.events if e.phase == "forward")
        self.update_count = sum(1 for e in self.events if e.phase == "update")
        self.backward_count = len(self.events) - self.forward_count - self.update_count
        self._values = _History()
        self._grads = _History()
        self._edge_grads = _History()
        for nid, v in self.initial.items():
            self._values.set(nid, 0, v)
        for i, ev in enumerate(self.events, start=1):
            if ev.phase == "forward":
                self._values.set(ev.node, i, ev.outputs["out"])
            elif ev.phase == "update":
                self._values.set(ev.node, i, ev.outputs["value"])
            elif ev.kind == "seed" or ev.kind == "accumulate":
                self._grads.set(ev.node, i, ev.outputs["grad"])
            else:
                for port, g in ev.outputs.items():
                    self._edge_grads.set((ev.node, port), i, g)
                    src = ev.sources[port]
                    if src not in self._grads:   # the first arrival; later ones are accumulate events
                        self._grads.set(src, i, g)

    def __len__(self) -> int:
        return len(self.events)

    def state_at(self, k: int) -> "TraceState":
        """What is known after the first k events (0 = only the leaves' values). O(1), whatever k is."""
        if not 0 <= k <= len(self.events):
            raise IndexError(f"step {k} is outside 0..{len(self.events)}")
        return TraceState(k, _StateView(self._values, k), _StateView(self._grads, k),
                          _StateView(self._edge_grads, k), self.events[k - 1] if k else None, self)

    def changed_between(self, a: int, b: int) -> tuple[set[str], set[tuple[str, str]]]:
        """The nodes and wires whose value or gradient differs between steps a and b: what a view redraws."""
        lo, hi = min(a, b), max(a, b)
        nodes: set[str] = set()
        wires: set[tuple[str, str]] = set()
        for ev in self.events[lo:hi]:   # an event sets its node's value or gradient; a backward op also its wires'
            nodes.add(ev.node)
            if ev.phase == "backward" and ev.kind == "op":
                for port, src in ev.sources.items():
                    wires.add((ev.node, port))
                    nodes.add(src)
        return nodes, wires

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


class _History:
    """For each key, the steps at which it was set and what it was set to (steps ascending). Most keys are set
    once: their step and value are kept as they are, and only keys set again get lists (a trace records
    thousands of keys, and every list would be one more object for memory and for the garbage collector)."""

    __slots__ = ("first", "value", "later")

    def __init__(self) -> None:
        self.first: dict[Any, int] = {}     # key -> the step it first appears at (also the iteration order)
        self.value: dict[Any, Any] = {}     # key -> what it was set to then
        self.later: dict[Any, tuple[list[int], list[Any]]] = {}   # keys set again: the later steps and values

    def __contains__(self, key: Any) -> bool:
        return key in self.first

    def set(self, key: Any, step: int, value: Any) -> None:
        if key not in self.first:
            self.first[key] = step
            self.value[key] = value
            return
        more = self.later.get(key)
        if more is None:
            self.later[key] = ([step], [value])
        else:
            more[0].append(step)
            more[1].append(value)

    def at(self, key: Any, k: int, default: Any = None) -> Any:
        first = self.first.get(key)
        if first is None or first > k:
            return default
        more = self.later.get(key)
        if more is None or more[0][0] > k:
            return self.value[key]
        steps, items = more
        if steps[-1] <= k:
            return items[-1]
        return items[bisect.bisect_right(steps, k) - 1]


_MISSING = object()


class _StateView(Mapping):
    """A read-only dict of what was known at step k, looked up in a _History (nothing is copied)."""

    __slots__ = ("_history", "_k")

    def __init__(self, history: _History, k: int):
        self._history, self._k = history, k

    def __getitem__(self, key: Any) -> Any:
        v = self._history.at(key, self._k, _MISSING)
        if v is _MISSING:
            raise KeyError(key)
        return v

    def get(self, key: Any, default: Any = None) -> Any:
        return self._history.at(key, self._k, default)

    def __contains__(self, key: object) -> bool:
        first = self._history.first.get(key)
        return first is not None and first <= self._k

    def __iter__(self) -> Iterator[Any]:
        k = self._k
        return (key for key, first in self._history.first.items() if first <= k)

    def __len__(self) -> int:
        k = self._k
        return sum(1 for first in self._history.first.values() if first <= k)

    def __repr__(self) -> str:
        return repr(dict(self.items()))


@dataclass(frozen=True)
class TraceState:
    """What is known after `step` events: read-only mappings of values, gradients and wire gradients."""

    step: int
    values: Mapping[str, np.ndarray]
    grads: Mapping[str, np.ndarray]
    edge_grads: Mapping[tuple[str, str], np.ndarray]
    event: StepEvent | None
    trace: "Trace | None" = field(default=None, repr=False, compare=False)

    def changed_since(self, other: "TraceState | None") -> tuple[set[str], set[tuple[str, str]]] | None:
        """The nodes and wires that differ from `other`, a state of the same trace; None if not comparable."""
        if other is None or self.trace is None or other.trace is not self.trace:
            return None
        return self.trace.changed_between(other.step, self.step)


def forward_events(program: Program, values: dict[str, np.ndarray], caches: dict[str, Any],
                   start: int = 0) -> Iterator[StepEvent]:
    """Run the forward pass one op node at a time, yielding an event per node (iterate it inside
    np.errstate(all="ignore"), as _record does: a NaN or an infinity raises our NumericError instead)."""
    for i, step in enumerate(program.steps):
        out = _forward_node(step, values, caches)
        ins = _Frozen({p: values[s] for p, s in zip(step.spec.inputs, step.srcs)})
        yield StepEvent(start + i, "forward", "op", step.node, ins, _Frozen({"out": out}), _forward_note_of,
                        program_step=step)


def backward_events(program: Program, values: dict[str, np.ndarray], caches: dict[str, Any],
                    start: int = 0) -> Iterator[StepEvent]:
    """Run the backward pass one op node at a time: a seed event, then an event per op node, with an
    accumulate event whenever a value receives its second (third, ...) gradient."""
    out_id = program.output
    index = start
    seed = np.ones_like(values[out_id])
    grads: dict[str, np.ndarray] = {out_id: seed}
    yield StepEvent(index, "backward", "seed", out_id, _Frozen({}), _Frozen({"grad": seed}),
                    _seed_note(out_id, seed))
    index += 1
    for step in reversed(program.steps):
        up = grads.get(step.node)
        if up is None:
            continue
        downs = _backward_node(step, up, caches[step.node])
        outs = _Frozen({p: g for p, g in zip(step.spec.inputs, downs) if g is not None})
        sources = _Frozen({p: s for p, s, g in zip(step.spec.inputs, step.srcs, downs) if g is not None})
        for port, g in outs.items():
            if not _finite(g):
                raise numeric_error(step, values, g, backward_step=index - start + 1, port=port, output=out_id)
        local = _Frozen(_scalar_locals(step, up, outs, caches[step.node]))
        yield StepEvent(index, "backward", "op", step.node, _Frozen({"upstream": up}), outs, _backward_note_of,
                        sources, local, program_step=step, output=out_id)
        index += 1
        for port, g in outs.items():
            src = sources[port]
            if src not in grads:
                grads[src] = g
                continue
            previous = grads[src]
            total = np.asarray(previous + g)
            if not _finite(total):
                raise numeric_error(step, values, total, backward_step=index - start + 1, port=port, output=out_id)
            grads[src] = total
            yield StepEvent(index, "backward", "accumulate", src, _Frozen({"previous": previous, "incoming": g}),
                            _Frozen({"grad": total}), _accumulate_note_of, program_step=step, output=out_id)
            index += 1


def _record(program: Program, values: dict[str, np.ndarray], learning_rate: float | None = None) -> list[StepEvent]:
    caches: dict[str, Any] = {}
    with np.errstate(all="ignore"):   # non-finite numbers are caught node by node and reported as ours
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
        if not _finite(np.asarray(new)):
            raise NumericError(f"update step {index - start + 1}, parameter '{nid}': {nid} − lr · d{out}/d{nid} is "
                               f"{_bad_kind(np.asarray(new))} (lr = {lr:g}); use a smaller learning rate")
        if np.ndim(new) == 0:
            note = (f"{nid} ← {nid} − lr · d{out}/d{nid} = {_fmt(old)} − {lr:g} × {_fmt(g)} = {_fmt(new)}")
        else:
            note = f"{nid} ← {nid} − lr · d{out}/d{nid}  (lr = {lr:g}, shape {tuple(np.shape(new))})"
        yield StepEvent(index, "update", "op", nid, _Frozen({"value": old, "grad": g}), _Frozen({"value": new}), note)
        index += 1


# ---- notes for the chain-rule view -------------------------------------------------------------------------

def _forward_note_of(ev: StepEvent) -> str:
    return _forward_note(ev.program_step, ev.inputs, ev.outputs["out"])


def _backward_note_of(ev: StepEvent) -> str:
    return _backward_note(ev.program_step, ev.output, ev.inputs["upstream"], ev.outputs, ev.local)


def _accumulate_note_of(ev: StepEvent) -> str:
    return _accumulate_note(ev.node, ev.output, ev.inputs["previous"], ev.inputs["incoming"], ev.outputs["grad"],
                            ev.program_step.node)


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
