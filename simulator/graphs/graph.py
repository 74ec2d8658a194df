"""Graph, Node, Edge: the computational graph a learner builds, a DAG of inputs, parameters, constants and op nodes.

networkx holds the structure (topological order, cycle checks). Every change is announced on `Graph.changed`
with a GraphChange, so views can follow the model without the model knowing about them.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping

import networkx as nx
import numpy as np

from simulator.core.errors import GraphError, ShapeError, StudioError, ValueInputError
from simulator.core.observer import Signal
from simulator.ops import OpSpec, get_op
from simulator.ops.registry import shape_str

LEAF_KINDS = ("input", "param", "const")
NODE_KINDS = LEAF_KINDS + ("op",)
MAX_ELEMENTS = 10_000_000  # per tensor: enough for the digits set, small enough to refuse absurd files
MAX_NODES = 5_000
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def as_value(value: Any, what: str = "value") -> np.ndarray:
    """A user-supplied number or array as a float64 ndarray, refusing NaN, Inf, strings and absurd sizes."""
    if isinstance(value, (bool, np.bool_)) or isinstance(value, (str, bytes)):
        raise ValueInputError(f"{what} must be a number or an array of numbers, got {value!r}")
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise ValueInputError(f"{what} must be a number or an array of numbers, got {type(value).__name__}") from None
    if arr.size > MAX_ELEMENTS:
        raise ValueInputError(f"{what} has {arr.size:,} entries; the limit is {MAX_ELEMENTS:,}")
    if arr.size == 0:
        raise ValueInputError(f"{what} is empty; a value needs at least one entry")
    if arr.ndim > 8:
        raise ValueInputError(f"{what} has {arr.ndim} dimensions; the limit is 8")
    if not np.all(np.isfinite(arr)):
        raise ValueInputError(f"{what} contains NaN or infinity")
    return arr


@dataclass
class Node:
    """One node. Leaves (input, param, const) carry a value; op nodes carry an op name and its attributes."""

    id: str
    kind: str
    op: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    value: np.ndarray | None = None
    pos: tuple[float, float] = (0.0, 0.0)

    @property
    def spec(self) -> OpSpec:
        if self.op is None:
            raise GraphError(f"node '{self.id}' is a {self.kind}, not an op")
        return get_op(self.op)

    @property
    def ports(self) -> tuple[str, ...]:
        return self.spec.inputs if self.kind == "op" else ()

    @property
    def is_leaf(self) -> bool:
        return self.kind in LEAF_KINDS

    def label(self) -> str:
        """What the editor draws in the node's box."""
        if self.kind == "op":
            return self.spec.display_symbol(self.attrs)
        if self.kind == "const" and self.value is not None and self.value.ndim == 0:
            return f"{float(self.value):g}"
        return self.id


@dataclass(frozen=True)
class Edge:
    """A wire from `src`'s output to input `port` of op node `dst`."""

    src: str
    dst: str
    port: str


@dataclass(frozen=True)
class GraphChange:
    """What changed. kind is one of: node_added, node_removed, node_renamed (old -> node), edge_added,
    edge_removed, value_changed, attrs_changed, node_moved, output_changed, reset (everything replaced)."""

    kind: str
    node: str | None = None
    edge: Edge | None = None
    old: str | None = None


class Graph:
    """A computational graph. Node ids are also the names learners see (x, w0, q1), unique in the graph."""

    def __init__(self) -> None:
        self._nodes: dict[str, Node] = {}
        self._in: dict[tuple[str, str], Edge] = {}  # (dst, port) -> edge: each input port is fed at most once
        self._nx = nx.MultiDiGraph()
        self._output: str | None = None
        self.changed = Signal()

    # ---- reading --------------------------------------------------------------------------------------------

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._nodes

    def __len__(self) -> int:
        return len(self._nodes)

    def __iter__(self) -> Iterator[Node]:
        return iter(self._nodes.values())

    def node(self, node_id: str) -> Node:
        try:
            return self._nodes[node_id]
        except KeyError:
            raise GraphError(f"there is no node '{node_id}'") from None

    @property
    def nodes(self) -> list[Node]:
        return list(self._nodes.values())

    @property
    def edges(self) -> list[Edge]:
        return list(self._in.values())

    def edge_into(self, dst: str, port: str) -> Edge | None:
        return self._in.get((dst, port))

    def edges_from(self, src: str) -> list[Edge]:
        """Every wire leaving `src`, in the order the consumers were added."""
        return [e for e in self._in.values() if e.src == src]

    def leaves(self, kinds: Iterable[str] = ("input", "param")) -> list[Node]:
        kinds = tuple(kinds)
        return [n for n in self._nodes.values() if n.kind in kinds]

    def topological_order(self) -> list[str]:
        """Node ids, producers before consumers; ties broken by insertion order so the order is stable."""
        rank = {nid: i for i, nid in enumerate(self._nodes)}
        return list(nx.lexicographical_topological_sort(self._nx, key=rank.__getitem__))

    @property
    def output(self) -> str:
        """The node whose value the passes compute: set explicitly, or else the graph's only sink."""
        if self._output is not None:
            return self._output
        sinks = [nid for nid in self._nodes if self._nx.out_degree(nid) == 0]
        op_sinks = [nid for nid in sinks if self._nodes[nid].kind == "op"] or sinks
        if len(op_sinks) == 1:
            return op_sinks[0]
        if not op_sinks:
            raise GraphError("the graph is empty")
        raise GraphError(f"the graph has several outputs ({', '.join(op_sinks)}); choose one as the output")

    @property
    def explicit_output(self) -> str | None:
        """The output chosen with set_output, or None when the graph's only sink is used."""
        return self._output

    def index_of(self, node_id: str) -> int:
        """The node's place in insertion order (which breaks ties in the topological order)."""
        self.node(node_id)
        return list(self._nodes).index(node_id)

    def edge_index(self, dst: str, port: str) -> int:
        return list(self._in).index((dst, port))

    def predecessors(self, node_id: str) -> list[str]:
        return list(dict.fromkeys(self._nx.predecessors(node_id)))

    def successors(self, node_id: str) -> list[str]:
        return list(dict.fromkeys(self._nx.successors(node_id)))

    def ancestors(self, node_id: str) -> set[str]:
        """Every node whose value flows into `node_id`."""
        self.node(node_id)
        return nx.ancestors(self._nx, node_id)

    def set_output(self, node_id: str | None) -> None:
        if node_id is not None:
            self.node(node_id)
        self._output = node_id
        self.changed.emit(GraphChange("output_changed", node=node_id))

    def unique_name(self, prefix: str, reserved: Iterable[str] = ()) -> str:
        reserved = set(reserved)
        if prefix not in self._nodes and prefix not in reserved:
            return prefix
        i = 1
        while f"{prefix}{i}" in self._nodes or f"{prefix}{i}" in reserved:
            i += 1
        return f"{prefix}{i}"

    # ---- adding and removing nodes --------------------------------------------------------------------------

    def add_input(self, name: str, value: Any = 0.0, pos: tuple[float, float] = (0.0, 0.0),
                  trainable: bool = False) -> str:
        """An input (or, with trainable=True, a parameter such as a weight) holding `value`."""
        return self._add(Node(name, "param" if trainable else "input", value=as_value(value, f"value of '{name}'"),
                              pos=_pos(pos)))

    def add_const(self, value: Any, name: str | None = None, pos: tuple[float, float] = (0.0, 0.0)) -> str:
        name = name or self.unique_name("c")
        return self._add(Node(name, "const", value=as_value(value, f"value of '{name}'"), pos=_pos(pos)))

    def add_op(self, op: str, attrs: Mapping[str, Any] | None = None, name: str | None = None,
               pos: tuple[float, float] = (0.0, 0.0)) -> str:
        spec = get_op(op)
        resolved = spec.resolve_attrs(attrs)
        return self._add(Node(name or self.unique_name(op), "op", op=op, attrs=resolved, pos=_pos(pos)))

    def add_node(self, node: Node, index: int | None = None) -> str:
        """Insert a fully described node (used by undo and by the file loader); its fields are validated.
        `index` puts it back at a place in insertion order (undo restores the graph exactly)."""
        if node.kind not in NODE_KINDS:
            raise GraphError(f"node '{node.id}' has an unknown kind '{node.kind}'")
        if node.kind == "op":
            node = Node(node.id, "op", op=node.op, attrs=get_op(str(node.op)).resolve_attrs(node.attrs),
                        pos=_pos(node.pos))
        else:
            node = Node(node.id, node.kind, value=as_value(node.value, f"value of '{node.id}'"), pos=_pos(node.pos))
        return self._add(node, index)

    def _add(self, node: Node, index: int | None = None) -> str:
        if not isinstance(node.id, str) or not _NAME_RE.match(node.id):
            raise GraphError(f"'{node.id}' is not a valid name: use letters, digits and _, starting with a letter")
        if node.id in self._nodes:
            raise GraphError(f"a node named '{node.id}' already exists")
        if len(self._nodes) >= MAX_NODES:
            raise GraphError(f"a graph holds at most {MAX_NODES} nodes")
        self._nodes[node.id] = node
        if index is not None and index < len(self._nodes) - 1:
            items = list(self._nodes.items())
            items.insert(index, items.pop())
            self._nodes = dict(items)
        self._nx.add_node(node.id)
        self.changed.emit(GraphChange("node_added", node=node.id))
        return node.id

    def remove_node(self, node_id: str) -> None:
        """Remove a node and every wire touching it (each removal announced first)."""
        self.node(node_id)
        for edge in [e for e in self._in.values() if node_id in (e.src, e.dst)]:
            self.disconnect(edge.dst, edge.port)
        del self._nodes[node_id]
        self._nx.remove_node(node_id)
        if self._output == node_id:
            self._output = None
        self.changed.emit(GraphChange("node_removed", node=node_id))

    def rename(self, old: str, new: str) -> None:
        if old == new:
            return
        node = self.node(old)
        if not _NAME_RE.match(new or ""):
            raise GraphError(f"'{new}' is not a valid name: use letters, digits and _, starting with a letter")
        if new in self._nodes:
            raise GraphError(f"a node named '{new}' already exists")
        self._nodes = {(new if k == old else k): v for k, v in self._nodes.items()}
        node.id = new
        nx.relabel_nodes(self._nx, {old: new}, copy=False)
        self._in = {(new if d == old else d, p): Edge(new if e.src == old else e.src, new if e.dst == old else e.dst, p)
                    for (d, p), e in self._in.items()}
        if self._output == old:
            self._output = new
        self.changed.emit(GraphChange("node_renamed", node=new, old=old))

    # ---- wiring ---------------------------------------------------------------------------------------------

    def connect(self, src: str, dst: str, port: str, check_shapes: bool = True, index: int | None = None) -> Edge:
        """Wire src's output into `port` of op node dst; refuses cycles, missing ports, double feeds and
        (with check_shapes) a wire that breaks a shape rule. A refused wire leaves the graph unchanged."""
        self.node(src)
        dst_node = self.node(dst)
        if dst_node.kind != "op":
            raise GraphError(f"'{dst}' is a {dst_node.kind} and has no input ports")
        if port not in dst_node.ports:
            raise GraphError(f"'{dst}' ({dst_node.op}) has no input port '{port}'; its ports are "
                             f"{', '.join(dst_node.ports)}")
        existing = self._in.get((dst, port))
        if existing is not None:
            raise GraphError(f"input '{port}' of '{dst}' is already fed by '{existing.src}'; disconnect it first")
        if src == dst or nx.has_path(self._nx, dst, src):
            raise GraphError(f"wiring '{src}' into '{dst}' would close a cycle ('{dst}' already feeds '{src}')")
        edge = Edge(src, dst, port)

        def add() -> None:
            self._in[(dst, port)] = edge
            if index is not None and index < len(self._in) - 1:
                items = list(self._in.items())
                items.insert(index, items.pop())
                self._in = dict(items)
            self._nx.add_edge(src, dst, key=port)

        def undo() -> None:
            del self._in[(dst, port)]
            self._nx.remove_edge(src, dst, key=port)
        if check_shapes:
            self._guarded(add, undo)
        else:
            add()
        self.changed.emit(GraphChange("edge_added", edge=edge))
        return edge

    def disconnect(self, dst: str, port: str) -> Edge:
        edge = self._in.pop((dst, port), None)
        if edge is None:
            raise GraphError(f"input '{port}' of '{dst}' is not connected")
        self._nx.remove_edge(edge.src, edge.dst, key=port)
        self.changed.emit(GraphChange("edge_removed", edge=edge))
        return edge

    # ---- editing values -------------------------------------------------------------------------------------

    def set_value(self, node_id: str, value: Any) -> None:
        """Change a leaf's value; refused (unchanged) if the new shape breaks a consumer's shape rule."""
        node = self.node(node_id)
        if not node.is_leaf:
            raise GraphError(f"'{node_id}' is an op node; its value is computed, not set")
        new = as_value(value, f"value of '{node_id}'")
        old = node.value

        def assign(v: np.ndarray | None) -> None:
            node.value = v
        if old is not None and old.shape == new.shape:
            assign(new)
        else:
            self._guarded(lambda: assign(new), lambda: assign(old))
        self.changed.emit(GraphChange("value_changed", node=node_id))

    def set_attrs(self, node_id: str, attrs: Mapping[str, Any]) -> None:
        node = self.node(node_id)
        merged = dict(node.attrs)
        merged.update(attrs)
        resolved = node.spec.resolve_attrs(merged)
        old = node.attrs

        def assign(a: dict[str, Any]) -> None:
            node.attrs = a
        self._guarded(lambda: assign(resolved), lambda: assign(old))
        self.changed.emit(GraphChange("attrs_changed", node=node_id))

    def set_kind(self, node_id: str, kind: str) -> None:
        """Turn a leaf into an input, a trainable parameter or a constant."""
        node = self.node(node_id)
        if not node.is_leaf or kind not in LEAF_KINDS:
            raise GraphError(f"'{node_id}' cannot become a {kind}")
        node.kind = kind
        self.changed.emit(GraphChange("value_changed", node=node_id))

    def move(self, node_id: str, pos: tuple[float, float]) -> None:
        self.node(node_id).pos = _pos(pos)
        self.changed.emit(GraphChange("node_moved", node=node_id))

    # ---- shapes ---------------------------------------------------------------------------------------------

    def infer_shapes(self) -> dict[str, tuple[int, ...] | None]:
        """Every node's output shape, or None where an input port upstream is still unconnected.

        Raises ShapeError naming the node, its op and the shapes that do not fit.
        """
        shapes: dict[str, tuple[int, ...] | None] = {}
        for nid in self.topological_order():
            node = self._nodes[nid]
            if node.is_leaf:
                shapes[nid] = tuple(node.value.shape) if node.value is not None else None
                continue
            ins = []
            for port in node.ports:
                edge = self._in.get((nid, port))
                ins.append(None if edge is None else shapes[edge.src])
            if any(s is None for s in ins):
                shapes[nid] = None
                continue
            try:
                shapes[nid] = tuple(node.spec.infer_shape(*ins, **node.attrs))
                if int(np.prod(shapes[nid], dtype=np.float64)) > MAX_ELEMENTS:
                    raise ShapeError(f"the output would have shape {shapes[nid]}, more than "
                                     f"{MAX_ELEMENTS:,} entries")
            except ShapeError as exc:
                feeders = ", ".join(f"{p} from '{self._in[(nid, p)].src}' {shape_str(s)}"
                                    for p, s in zip(node.ports, ins))
                raise ShapeError(f"node '{nid}' ({node.op}): {exc} [inputs: {feeders}]") from None
            except StudioError as exc:
                raise type(exc)(f"node '{nid}' ({node.op}): {exc}") from None
        return shapes

    def shape_problem(self) -> StudioError | None:
        """The first shape error of the graph, or None when every connected node's shapes fit."""
        try:
            self.infer_shapes()
        except StudioError as exc:
            return exc
        return None

    def _guarded(self, apply: Callable[[], None], revert: Callable[[], None]) -> None:
        """Apply an edit, undoing it and raising if it breaks the shapes of a graph whose shapes fitted.
        A graph that is already broken (mid-edit) accepts edits, so the learner can repair it step by step."""
        fitted = self.shape_problem() is None
        apply()
        if fitted:
            problem = self.shape_problem()
            if problem is not None:
                revert()
                raise problem

    def missing_inputs(self) -> list[tuple[str, str]]:
        """(node, port) pairs still waiting for a wire."""
        return [(n.id, p) for n in self._nodes.values() if n.kind == "op" for p in n.ports if (n.id, p) not in self._in]

    # ---- whole-graph operations -----------------------------------------------------------------------------

    def copy(self) -> "Graph":
        """An independent deep copy (values copied), with no observers."""
        g = Graph()
        for n in self._nodes.values():
            g._nodes[n.id] = Node(n.id, n.kind, n.op, dict(n.attrs),
                                  None if n.value is None else n.value.copy(), n.pos)
            g._nx.add_node(n.id)
        for e in self._in.values():
            g._in[(e.dst, e.port)] = e
            g._nx.add_edge(e.src, e.dst, key=e.port)
        g._output = self._output
        return g

    def replace_with(self, other: "Graph") -> None:
        """Take `other`'s contents in place (keeping this graph's observers) and announce a reset."""
        fresh = other.copy()
        self._nodes, self._in, self._nx, self._output = fresh._nodes, fresh._in, fresh._nx, fresh._output
        self.changed.emit(GraphChange("reset"))

    @classmethod
    def from_expression(cls, text: str) -> "Graph":
        """Build the graph of an expression such as "(x + y) * z", laid out left to right."""
        from simulator.graphs.expression import parse_expression
        return parse_expression(text)

    def values(self) -> dict[str, np.ndarray]:
        return {n.id: n.value for n in self._nodes.values() if n.is_leaf}

    def __repr__(self) -> str:
        return f"Graph({len(self._nodes)} nodes, {len(self._in)} edges)"


def _pos(pos: Any) -> tuple[float, float]:
    try:
        x, y = (float(v) for v in pos)
    except (TypeError, ValueError, OverflowError):
        raise GraphError(f"a position must be two finite numbers, got {pos!r}") from None
    if not (math.isfinite(x) and math.isfinite(y)):
        raise GraphError(f"a position must be finite, got {pos!r}")
    return (x, y)
