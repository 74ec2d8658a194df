"""Graph, Node, Edge: the computational graph a learner builds, a DAG of inputs, parameters, constants and op nodes.

Two dicts hold the structure: the wire into each (node, port), and the wires out of each node, so every question
(consumers, ancestors, cycles, the topological order, the shapes after an edit) costs what it touches, never a scan of
the whole graph per node. Every change is announced on `Graph.changed` with a GraphChange, so views can follow the
model without the model knowing about them.
"""
from __future__ import annotations

import contextlib
import gc
import heapq
import math
import re
import threading
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping

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


_gc_lock = threading.Lock()
_gc_pauses = 0            # how many paused_gc() blocks are open, in any thread
_gc_was_enabled = False   # the collector's state when the first of them opened


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Hold Python's cyclic garbage collector during bulk work that builds many objects which all stay alive
    (parsing, compiling, recording a trace, copying a graph). Each collection of the oldest generation scans the
    whole live heap, so collections triggered while thousands of new objects pile up make the work grow faster
    than its size and find nothing to free. Nested and concurrent blocks are counted: the collector is restored
    (if it was on) when the last one closes, whatever happened inside."""
    global _gc_pauses, _gc_was_enabled
    with _gc_lock:
        if _gc_pauses == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pauses += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pauses -= 1
            if _gc_pauses == 0 and _gc_was_enabled:
                gc.enable()


def as_value(value: Any, what: str = "value") -> np.ndarray:
    """A user-supplied number or array as a float64 ndarray, refusing NaN, Inf, strings, complex or masked
    arrays and absurd sizes."""
    if type(value) is float or type(value) is int:   # the common case, kept cheap: evaluate() calls this per input
        try:
            f = float(value)
        except OverflowError:
            raise ValueInputError(f"{what} is too large, got {value!r}") from None
        if not math.isfinite(f):
            raise ValueInputError(f"{what} contains NaN or infinity")
        return np.array(f)
    if isinstance(value, (bool, np.bool_)) or isinstance(value, (str, bytes)):
        raise ValueInputError(f"{what} must be a number or an array of numbers, got {value!r}")
    if isinstance(value, np.ma.MaskedArray):
        raise ValueInputError(f"{what} is a masked array; give plain numbers (fill or drop the masked entries)")
    if isinstance(value, (complex, np.complexfloating)) or (isinstance(value, np.ndarray)
                                                             and np.iscomplexobj(value)):
        raise ValueInputError(f"{what} is complex; the simulator works with real numbers")
    try:
        if isinstance(value, (np.ndarray, np.floating, np.integer)):
            arr = np.array(value, dtype=np.float64)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("error")   # numpy warns, then drops imaginary parts: refuse instead
                arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError, Warning):
        raise ValueInputError(f"{what} must be a number or an array of real numbers, "
                              f"got {type(value).__name__}") from None
    if arr.size > MAX_ELEMENTS:
        raise ValueInputError(f"{what} has {arr.size:,} entries; the limit is {MAX_ELEMENTS:,}")
    if arr.size == 0:
        raise ValueInputError(f"{what} is empty; a value needs at least one entry")
    if arr.ndim > 8:
        raise ValueInputError(f"{what} has {arr.ndim} dimensions; the limit is 8")
    if not (math.isfinite(arr) if arr.ndim == 0 else np.isfinite(arr).all()):
        raise ValueInputError(f"{what} contains NaN or infinity")
    return arr


@dataclass(slots=True)
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


@dataclass(frozen=True, slots=True)
class Edge:
    """A wire from `src`'s output to input `port` of op node `dst`."""

    src: str
    dst: str
    port: str


@dataclass(frozen=True, slots=True)
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
        self._out: dict[str, dict[tuple[str, str], None]] = {}  # src -> keys of _in of the wires leaving it
        self._output: str | None = None
        # Caches, so compiling and checked wiring cost work proportional to what changed, not to the graph:
        # the topological order (dropped on any structural change) and every node's shape (kept up to date
        # incrementally while the graph's shapes fit; None when unknown).
        self._order: list[str] | None = None
        self._shapes: dict[str, tuple[int, ...] | None] | None = None
        self._version = 0
        self._sink: tuple[int, str] | None = None
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
        """Every wire leaving `src`, in the order they were wired."""
        return [self._in[k] for k in self._out.get(src, ())]

    def leaves(self, kinds: Iterable[str] = ("input", "param")) -> list[Node]:
        kinds = tuple(kinds)
        return [n for n in self._nodes.values() if n.kind in kinds]

    def topological_order(self) -> list[str]:
        """Node ids, producers before consumers; ties broken by insertion order so the order is stable.
        Kahn's algorithm with a heap on insertion rank: O(n log n), cached until the structure changes. When every
        wire runs from an earlier node to a later one (graphs built producers first: parsed expressions, networks,
        most edits) that order is the insertion order itself, found in O(n) (the heap would pop each node in
        turn)."""
        if self._order is None:
            rank = {nid: i for i, nid in enumerate(self._nodes)}
            if all(rank[e.src] < rank[dst] for (dst, _port), e in self._in.items()):
                self._order = list(self._nodes)
                return list(self._order)
            indeg = {nid: 0 for nid in self._nodes}
            for dst, _port in self._in:
                indeg[dst] += 1
            heap = [(rank[nid], nid) for nid, d in indeg.items() if d == 0]
            heapq.heapify(heap)
            order: list[str] = []
            while heap:
                _, nid = heapq.heappop(heap)
                order.append(nid)
                for key in self._out.get(nid, ()):
                    dst = key[0]
                    indeg[dst] -= 1
                    if indeg[dst] == 0:
                        heapq.heappush(heap, (rank[dst], dst))
            self._order = order
        return list(self._order)

    @property
    def output(self) -> str:
        """The node whose value the passes compute: set explicitly, or else the graph's only sink."""
        if self._output is not None:
            return self._output
        if self._sink is not None and self._sink[0] == self._version:
            return self._sink[1]
        sinks = [nid for nid in self._nodes if not self._out.get(nid)]
        op_sinks = [nid for nid in sinks if self._nodes[nid].kind == "op"] or sinks
        if len(op_sinks) == 1:
            self._sink = (self._version, op_sinks[0])   # asked on every step: cached until the next change
            return op_sinks[0]
        if not op_sinks:
            raise GraphError("the graph is empty")
        raise GraphError(f"the graph has several outputs ({', '.join(op_sinks)}); choose one as the output")

    @property
    def explicit_output(self) -> str | None:
        """The output chosen with set_output, or None when the graph's only sink is used."""
        return self._output

    @property
    def version(self) -> int:
        """A number that grows with every change: equal versions mean an unchanged graph (caches key on it)."""
        return self._version

    def _announce(self, change: GraphChange) -> None:
        self._version += 1
        self.changed.emit(change)

    def _structure_changed(self) -> None:
        self._order = None

    def index_of(self, node_id: str) -> int:
        """The node's place in insertion order (which breaks ties in the topological order)."""
        self.node(node_id)
        return list(self._nodes).index(node_id)

    def edge_index(self, dst: str, port: str) -> int:
        return list(self._in).index((dst, port))

    def predecessors(self, node_id: str) -> list[str]:
        node = self.node(node_id)
        return list(dict.fromkeys(self._in[(node_id, p)].src for p in node.ports if (node_id, p) in self._in))

    def successors(self, node_id: str) -> list[str]:
        self.node(node_id)
        return list(dict.fromkeys(dst for dst, _port in self._out.get(node_id, ())))

    def ancestors(self, node_id: str) -> set[str]:
        """Every node whose value flows into `node_id`."""
        self.node(node_id)
        nodes, wires = self._nodes, self._in
        seen: set[str] = set()
        stack = [node_id]
        while stack:   # the wires into each node found, by port: no list per node (compiling asks this)
            nid = stack.pop()
            node = nodes[nid]
            if node.kind != "op":
                continue
            for port in node.spec.inputs:
                edge = wires.get((nid, port))
                if edge is not None and edge.src not in seen:
                    seen.add(edge.src)
                    stack.append(edge.src)
        return seen

    def to_networkx(self):
        """The structure as a networkx DiGraph (node ids; each edge carries its ``port``), for graph algorithms
        the model does not need on its hot paths: cycle paths in messages, analyses, exports."""
        import networkx as nx      # loaded when first needed: keeps `import simulator` and start-up quick

        g = nx.DiGraph()
        g.add_nodes_from(self._nodes)
        g.add_edges_from((e.src, e.dst, {"port": e.port}) for e in self.edges)
        return g

    def path(self, src: str, dst: str) -> list[str]:
        """The node ids along one shortest chain of wires from src to dst (GraphError if there is none)."""
        import networkx as nx

        try:
            return nx.shortest_path(self.to_networkx(), src, dst)
        except (nx.NetworkXNoPath, nx.NodeNotFound):
            raise GraphError(f"no chain of wires leads from '{src}' to '{dst}'") from None

    def _reach(self, start: str, step: Callable[[str], list[str]]) -> set[str]:
        seen: set[str] = set()
        stack = [start]
        while stack:
            for nxt in step(stack.pop()):
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return seen

    def set_output(self, node_id: str | None) -> None:
        if node_id is not None:
            self.node(node_id)
        self._output = node_id
        self._announce(GraphChange("output_changed", node=node_id))

    def unique_name(self, prefix: str, reserved: Iterable[str] = ()) -> str:
        if not isinstance(reserved, (set, frozenset, dict)):
            reserved = set(reserved)   # a set is used as it is: a parser asks once per op, copying was O(names)
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
        self._structure_changed()
        if self._shapes is not None:
            self._shapes[node.id] = (tuple(node.value.shape) if node.is_leaf and node.value is not None else None)
        self._announce(GraphChange("node_added", node=node.id))
        return node.id

    def remove_node(self, node_id: str) -> None:
        """Remove a node and every wire touching it (each removal announced first)."""
        node = self.node(node_id)
        touching = [self._in[(node_id, p)] for p in node.ports if (node_id, p) in self._in]
        touching += self.edges_from(node_id)
        for edge in sorted(touching, key=self._edge_rank_key()):
            self.disconnect(edge.dst, edge.port)
        del self._nodes[node_id]
        self._out.pop(node_id, None)
        self._structure_changed()
        if self._shapes is not None:
            self._shapes.pop(node_id, None)
        if self._output == node_id:
            self._output = None
        self._announce(GraphChange("node_removed", node=node_id))

    def rename(self, old: str, new: str) -> None:
        if old == new:
            return
        self.node(old)
        if not isinstance(new, str) or not _NAME_RE.match(new):
            raise GraphError(f"'{new}' is not a valid name: use letters, digits and _, starting with a letter")
        if new in self._nodes:
            raise GraphError(f"a node named '{new}' already exists")
        self.rename_many({old: new})

    def rename_many(self, mapping: Mapping[str, str]) -> None:
        """Rename several nodes at once (old -> new; the new names may swap or reuse old ones) in one pass over
        the graph, announcing each rename. Refused, unchanged, if a name is invalid or two nodes would share one."""
        mapping = {o: n for o, n in mapping.items() if o != n}
        if not mapping:
            return
        for old, new in mapping.items():
            self.node(old)
            if not isinstance(new, str) or not _NAME_RE.match(new):
                raise GraphError(f"'{new}' is not a valid name: use letters, digits and _, starting with a letter")
        final = [mapping.get(k, k) for k in self._nodes]
        if len(set(final)) != len(final):
            clash = next(n for n in mapping.values() if final.count(n) > 1)
            raise GraphError(f"a node named '{clash}' already exists")
        self._relabel(mapping)
        if self._output in mapping:
            self._output = mapping[self._output]
        for old, new in mapping.items():
            self._announce(GraphChange("node_renamed", node=new, old=old))

    def _relabel(self, mapping: Mapping[str, str]) -> None:
        """Apply old -> new to every map in one O(nodes + wires) pass, keeping insertion orders."""
        m = mapping.get
        for old, new in mapping.items():
            self._nodes[old].id = new
        self._nodes = {m(k, k): v for k, v in self._nodes.items()}
        self._in = {(m(d, d), p): Edge(m(e.src, e.src), m(e.dst, e.dst), p) for (d, p), e in self._in.items()}
        self._out = {m(s, s): {(m(d, d), p): None for d, p in keys} for s, keys in self._out.items()}
        self._structure_changed()
        if self._shapes is not None:
            self._shapes = {m(k, k): v for k, v in self._shapes.items()}

    def _edge_rank_key(self) -> Callable[[Edge], int]:
        rank = {k: i for i, k in enumerate(self._in)}
        return lambda e: rank[(e.dst, e.port)]

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
        key = (dst, port)   # one tuple, shared by both maps
        existing = self._in.get(key)
        if existing is not None:
            raise GraphError(f"input '{port}' of '{dst}' is already fed by '{existing.src}'; disconnect it first")
        # A new node has no consumers yet, so it cannot close a cycle: skip the search (parsers wire only those).
        if src == dst:
            raise GraphError(f"wiring '{src}' into itself would close a cycle")
        if self._out.get(dst) and src in self._reach(dst, self.successors):
            path = " → ".join(self.path(dst, src))
            raise GraphError(f"wiring '{src}' into '{dst}' would close a cycle: {path} → {dst}")
        edge = Edge(src, dst, port)

        def add() -> None:
            self._in[key] = edge
            if index is not None and index < len(self._in) - 1:
                items = list(self._in.items())
                items.insert(index, items.pop())
                self._in = dict(items)
            out = self._out.get(src)
            if out is None:
                self._out[src] = {key: None}
            else:
                out[key] = None
            self._structure_changed()

        def undo() -> None:
            del self._in[key]
            del self._out[src][key]
            self._structure_changed()
        if check_shapes:
            self._guarded(add, undo, dst)
        else:
            add()
            self._reshape_or_forget(dst)
        self._announce(GraphChange("edge_added", edge=edge))
        return edge

    def disconnect(self, dst: str, port: str) -> Edge:
        edge = self._in.pop((dst, port), None)
        if edge is None:
            raise GraphError(f"input '{port}' of '{dst}' is not connected")
        self._out[edge.src].pop((dst, port), None)
        self._structure_changed()
        self._reshape_or_forget(dst)
        self._announce(GraphChange("edge_removed", edge=edge))
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
            self._guarded(lambda: assign(new), lambda: assign(old), node_id)
        self._announce(GraphChange("value_changed", node=node_id))

    def set_values(self, values: Mapping[str, Any]) -> None:
        """Change several leaves' values with one shape check for them all (linear in the graph, where setting
        them one by one re-checks what each feeds); refused, unchanged, if the new shapes break a shape rule."""
        new = {}
        for node_id, value in values.items():
            if not self.node(node_id).is_leaf:
                raise GraphError(f"'{node_id}' is an op node; its value is computed, not set")
            new[node_id] = as_value(value, f"value of '{node_id}'")
        old = {nid: self._nodes[nid].value for nid in new}
        reshaped = any(o is None or o.shape != new[nid].shape for nid, o in old.items())
        if reshaped:
            fitted = self.shape_problem() is None
            saved = self._shapes
        for nid, v in new.items():
            self._nodes[nid].value = v
        if reshaped:
            self._shapes = None
            if fitted:
                problem = self.shape_problem()
                if problem is not None:
                    for nid, v in old.items():
                        self._nodes[nid].value = v
                    self._shapes = saved
                    raise problem
        for nid in new:
            self._announce(GraphChange("value_changed", node=nid))

    def set_attrs(self, node_id: str, attrs: Mapping[str, Any]) -> None:
        node = self.node(node_id)
        merged = dict(node.attrs)
        merged.update(attrs)
        resolved = node.spec.resolve_attrs(merged)
        old = node.attrs

        def assign(a: dict[str, Any]) -> None:
            node.attrs = a
        self._guarded(lambda: assign(resolved), lambda: assign(old), node_id)
        self._announce(GraphChange("attrs_changed", node=node_id))

    def set_kind(self, node_id: str, kind: str) -> None:
        """Turn a leaf into an input, a trainable parameter or a constant."""
        node = self.node(node_id)
        if not node.is_leaf or kind not in LEAF_KINDS:
            raise GraphError(f"'{node_id}' cannot become a {kind}")
        node.kind = kind
        self._announce(GraphChange("value_changed", node=node_id))

    def move(self, node_id: str, pos: tuple[float, float]) -> None:
        self.node(node_id).pos = _pos(pos)
        self._announce(GraphChange("node_moved", node=node_id))

    # ---- shapes ---------------------------------------------------------------------------------------------

    def infer_shapes(self) -> dict[str, tuple[int, ...] | None]:
        """Every node's output shape, or None where an input port upstream is still unconnected.

        Raises ShapeError naming the node, its op and the shapes that do not fit. The result is cached and kept
        up to date edit by edit, so asking again after a small edit costs only what the edit affected.
        """
        if self._shapes is not None and any(
                n.is_leaf and self._shapes.get(n.id) != (None if n.value is None else n.value.shape)
                for n in self._nodes.values()):
            self._shapes = None   # a leaf's value was replaced behind the graph's back: start again
        return dict(self._ensure_shapes())

    def _ensure_shapes(self) -> dict[str, tuple[int, ...] | None]:
        if self._shapes is None:
            shapes: dict[str, tuple[int, ...] | None] = {}
            self._infer_into(shapes, self.topological_order())
            self._shapes = shapes
        return self._shapes

    def _infer_into(self, shapes: dict[str, tuple[int, ...] | None], order: Iterable[str]) -> None:
        """Infer the shapes of `order` (producers first), reading the shapes of their inputs from `shapes`."""
        for nid in order:
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
                if math.prod(shapes[nid]) > MAX_ELEMENTS:
                    raise ShapeError(f"the output would have shape {shapes[nid]}, more than "
                                     f"{MAX_ELEMENTS:,} entries")
            except ShapeError as exc:
                feeders = ", ".join(f"{p} from '{self._in[(nid, p)].src}' {shape_str(s)}"
                                    for p, s in zip(node.ports, ins))
                raise ShapeError(f"node '{nid}' ({node.op}): {exc} [inputs: {feeders}]") from None
            except StudioError as exc:
                raise type(exc)(f"node '{nid}' ({node.op}): {exc}") from None

    def _downstream_order(self, root: str) -> list[str]:
        """`root` and every node it feeds, producers first: Kahn's algorithm on just that part of the graph,
        so the work is proportional to what an edit at `root` can affect."""
        if not self._out.get(root):
            return [root]   # the usual case while wiring up: a new node feeds nothing yet
        affected = {root: None}
        stack = [root]
        while stack:
            for dst, _port in self._out.get(stack.pop(), ()):
                if dst not in affected:
                    affected[dst] = None
                    stack.append(dst)
        indeg = dict.fromkeys(affected, 0)
        for nid in affected:
            for dst, _port in self._out.get(nid, ()):
                indeg[dst] += 1
        ready = [nid for nid, d in indeg.items() if d == 0]
        order = []
        while ready:
            nid = ready.pop()
            order.append(nid)
            for dst, _port in self._out.get(nid, ()):
                indeg[dst] -= 1
                if indeg[dst] == 0:
                    ready.append(dst)
        return order

    def _reinfer_from(self, root: str) -> dict[str, tuple[int, ...] | None]:
        """The new shapes of `root` and its consumers, given the cached shapes of everything else (raises)."""
        assert self._shapes is not None
        layered = _Overlay(self._shapes)
        self._infer_into(layered, self._downstream_order(root))
        return layered.changes

    def _reshape_or_forget(self, root: str) -> None:
        """After an unchecked edit at `root`: update the cached shapes downstream, or forget them if they break."""
        if self._shapes is None:
            return
        try:
            self._shapes.update(self._reinfer_from(root))
        except StudioError:
            self._shapes = None

    def shape_problem(self) -> StudioError | None:
        """The first shape error of the graph, or None when every connected node's shapes fit."""
        try:
            self._ensure_shapes()
        except StudioError as exc:
            return exc
        return None

    def _guarded(self, apply: Callable[[], None], revert: Callable[[], None], root: str) -> None:
        """Apply an edit at `root`, undoing it and raising if it breaks the shapes of a graph whose shapes fitted.
        A graph that is already broken (mid-edit) accepts edits, so the learner can repair it step by step.
        Only `root` and what it feeds are inferred again: the work an edit costs is what it affects."""
        fitted = self.shape_problem() is None
        apply()
        if not fitted:
            self._shapes = None
            return
        try:
            changes = self._reinfer_from(root)
        except StudioError:
            revert()
            raise
        self._shapes.update(changes)

    def missing_inputs(self) -> list[tuple[str, str]]:
        """(node, port) pairs still waiting for a wire."""
        return [(n.id, p) for n in self._nodes.values() if n.kind == "op" for p in n.ports if (n.id, p) not in self._in]

    # ---- whole-graph operations -----------------------------------------------------------------------------

    def copy(self) -> "Graph":
        """An independent deep copy (values copied), with no observers."""
        g = Graph()
        with paused_gc():
            for n in self._nodes.values():
                g._nodes[n.id] = Node(n.id, n.kind, n.op, dict(n.attrs),
                                      None if n.value is None else n.value.copy(), n.pos)
            g._in = dict(self._in)
            g._out = {s: dict(keys) for s, keys in self._out.items()}
        g._output = self._output
        g._order = None if self._order is None else list(self._order)
        g._shapes = None if self._shapes is None else dict(self._shapes)
        return g

    def replace_with(self, other: "Graph") -> None:
        """Take `other`'s contents in place (keeping this graph's observers) and announce a reset."""
        fresh = other.copy()
        self._nodes, self._in, self._output = fresh._nodes, fresh._in, fresh._output
        self._out, self._order, self._shapes = fresh._out, fresh._order, fresh._shapes
        self._announce(GraphChange("reset"))

    @classmethod
    def from_expression(cls, text: str) -> "Graph":
        """Build the graph of an expression such as "(x + y) * z", laid out left to right."""
        from simulator.graphs.expression import parse_expression
        return parse_expression(text)

    def values(self) -> dict[str, np.ndarray]:
        return {n.id: n.value for n in self._nodes.values() if n.is_leaf}

    def __repr__(self) -> str:
        return f"Graph({len(self._nodes)} nodes, {len(self._in)} edges)"


class _Overlay(dict):
    """Shapes being re-inferred: reads fall through to the cached shapes, writes are collected in `changes`."""

    def __init__(self, base: Mapping[str, Any]):
        super().__init__()
        self.base = base
        self.changes = self

    def __missing__(self, key: str) -> Any:
        return self.base[key]


def _pos(pos: Any) -> tuple[float, float]:
    if type(pos) is tuple and len(pos) == 2 and type(pos[0]) is float and type(pos[1]) is float:
        if math.isfinite(pos[0]) and math.isfinite(pos[1]):
            return pos   # already a tuple of two finite floats: shared, not rebuilt (most nodes sit at the default)
    try:
        x, y = (float(v) for v in pos)
    except (TypeError, ValueError, OverflowError):
        raise GraphError(f"a position must be two finite numbers, got {pos!r}") from None
    if not (math.isfinite(x) and math.isfinite(y)):
        raise GraphError(f"a position must be finite, got {pos!r}")
    return (x, y)
