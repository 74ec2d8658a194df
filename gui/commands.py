"""Every user edit of a Graph as a QUndoCommand. Commands call model methods only; the views follow Graph.changed.

Commands catch nothing: a refused edit (GraphError, ShapeError, ValueInputError...) propagates out of redo().
Push them with `push(stack, cmd)`, which runs the first redo itself and keeps a refused command off the stack.
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

import numpy as np
from PySide6.QtGui import QUndoCommand, QUndoStack

from simulator.core.errors import StudioError
from simulator.graphs.graph import Edge, Graph, Node

MOVE_COMMAND_ID = 0x6D6F7665  # "move": consecutive moves of one drag merge into one undo step


def push(stack: QUndoStack, cmd: "GraphCommand") -> str | None:
    """Apply `cmd` and put it on `stack`; if the model refuses, return its message and leave the stack as it was.

    The first redo runs here, outside Qt, so the model's exception reaches us (an exception raised inside a
    virtual called from C++ would only be printed). QUndoStack.push then calls redo() again, which is skipped.
    """
    try:
        cmd.redo()
    except StudioError as exc:
        cmd.error = str(exc)
        cmd.setObsolete(True)
        return str(exc)
    cmd._applied = True
    stack.push(cmd)
    return None


def _copy_node(n: Node) -> Node:
    return Node(n.id, n.kind, n.op, dict(n.attrs), None if n.value is None else np.array(n.value, copy=True), n.pos)


def _plural(count: int, what: str) -> str:
    return f"{count} {what}{'' if count == 1 else 's'}"


class GraphCommand(QUndoCommand):
    """Base: `redo` skips the run `push` already did; subclasses implement `_redo` and `undo`."""

    def __init__(self, graph: Graph, text: str = "") -> None:
        super().__init__(text)
        self.graph = graph
        self.error: str | None = None
        self._applied = False

    def redo(self) -> None:
        if self._applied:
            self._applied = False
            return
        self._redo()

    def _redo(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class AddNodeCommand(GraphCommand):
    def __init__(self, graph: Graph, node: Node) -> None:
        what = node.op if node.kind == "op" else {"param": "parameter", "const": "constant"}.get(node.kind, node.kind)
        super().__init__(graph, f"Add {what} '{node.id}'")
        self.node = _copy_node(node)

    def _redo(self) -> None:
        self.graph.add_node(_copy_node(self.node))

    def undo(self) -> None:
        self.graph.remove_node(self.node.id)


class RemoveNodesCommand(GraphCommand):
    """Delete nodes; undo puts back the nodes, every wire that touched them and the chosen output."""

    def __init__(self, graph: Graph, ids: Iterable[str]) -> None:
        self.ids = list(dict.fromkeys(ids))
        super().__init__(graph, f"Delete {self.ids[0]}" if len(self.ids) == 1 else f"Delete {_plural(len(self.ids), 'node')}")
        self._nodes: list[Node] = []
        self._edges: list[Edge] = []
        self._output: str | None = None

    def _redo(self) -> None:
        g = self.graph
        gone = set(self.ids)
        # raises GraphError for an unknown id, before any change; places are kept so undo restores the exact order
        self._nodes = sorted(((g.index_of(i), _copy_node(g.node(i))) for i in self.ids), key=lambda t: t[0])
        self._edges = [(i, e) for i, e in enumerate(g.edges) if e.src in gone or e.dst in gone]
        self._output = g.explicit_output   # the explicit choice, not the inferred sink
        for nid in self.ids:
            g.remove_node(nid)

    def undo(self) -> None:
        g = self.graph
        for index, n in self._nodes:
            g.add_node(_copy_node(n), index=index)
        for index, e in self._edges:
            g.connect(e.src, e.dst, e.port, check_shapes=False, index=index)
        if self._output is not None and g.explicit_output != self._output:
            g.set_output(self._output)


class ConnectCommand(GraphCommand):
    def __init__(self, graph: Graph, src: str, dst: str, port: str) -> None:
        super().__init__(graph, f"Connect {src} → {dst}.{port}")
        self.src, self.dst, self.port = src, dst, port

    def _redo(self) -> None:
        self.graph.connect(self.src, self.dst, self.port)

    def undo(self) -> None:
        self.graph.disconnect(self.dst, self.port)


class DisconnectCommand(GraphCommand):
    def __init__(self, graph: Graph, dst: str, port: str) -> None:
        edge = graph.edge_into(dst, port)
        super().__init__(graph, f"Disconnect {edge.src} → {dst}.{port}" if edge else f"Disconnect {dst}.{port}")
        self.dst, self.port = dst, port
        self.src: str | None = edge.src if edge else None

    def _redo(self) -> None:
        self.src = self.graph.disconnect(self.dst, self.port).src

    def undo(self) -> None:
        # the wire existed a moment ago: put it back exactly, even if the graph's shapes are mid-repair
        self.graph.connect(self.src, self.dst, self.port, check_shapes=False)


class MoveNodesCommand(GraphCommand):
    """Move nodes: {id: (old_pos, new_pos)}. Commands with the same non-None `drag_id` merge into one step."""

    def __init__(self, graph: Graph, moves: Mapping[str, tuple[tuple[float, float], tuple[float, float]]],
                 drag_id: object = None) -> None:
        self.moves = {k: (tuple(a), tuple(b)) for k, (a, b) in moves.items()}
        ids = list(self.moves)
        super().__init__(graph, f"Move {ids[0]}" if len(ids) == 1 else f"Move {_plural(len(ids), 'node')}")
        self.drag_id = drag_id

    def id(self) -> int:
        return MOVE_COMMAND_ID

    def mergeWith(self, other: QUndoCommand) -> bool:
        if not isinstance(other, MoveNodesCommand) or self.drag_id is None or other.drag_id != self.drag_id:
            return False
        for k, (_, new) in other.moves.items():
            old = self.moves[k][0] if k in self.moves else other.moves[k][0]
            self.moves[k] = (old, new)
        n = len(self.moves)
        self.setText(f"Move {next(iter(self.moves))}" if n == 1 else f"Move {_plural(n, 'node')}")
        return True

    def _redo(self) -> None:
        for k, (_, new) in self.moves.items():
            self.graph.move(k, new)

    def undo(self) -> None:
        for k, (old, _) in self.moves.items():
            self.graph.move(k, old)


class SetValueCommand(GraphCommand):
    def __init__(self, graph: Graph, node_id: str, value: Any) -> None:
        super().__init__(graph, f"Set {node_id}")
        self.node_id = node_id
        self.value = value
        old = graph.node(node_id).value
        self.old = None if old is None else np.array(old, copy=True)

    def _redo(self) -> None:
        self.graph.set_value(self.node_id, self.value)

    def undo(self) -> None:
        self.graph.set_value(self.node_id, self.old)


class SetAttrsCommand(GraphCommand):
    def __init__(self, graph: Graph, node_id: str, attrs: Mapping[str, Any]) -> None:
        names = ", ".join(attrs)
        super().__init__(graph, f"Set {names} of {node_id}")
        self.node_id = node_id
        self.attrs = dict(attrs)
        self.old = dict(graph.node(node_id).attrs)

    def _redo(self) -> None:
        self.graph.set_attrs(self.node_id, self.attrs)

    def undo(self) -> None:
        self.graph.set_attrs(self.node_id, self.old)


class RenameCommand(GraphCommand):
    def __init__(self, graph: Graph, old: str, new: str) -> None:
        super().__init__(graph, f"Rename {old} → {new}")
        self.old, self.new = old, new

    def _redo(self) -> None:
        self.graph.rename(self.old, self.new)

    def undo(self) -> None:
        self.graph.rename(self.new, self.old)


class SetKindCommand(GraphCommand):
    _NAMES = {"input": "an input", "param": "a parameter", "const": "a constant"}

    def __init__(self, graph: Graph, node_id: str, kind: str) -> None:
        super().__init__(graph, f"Make {node_id} {self._NAMES.get(kind, kind)}")
        self.node_id, self.kind = node_id, kind
        self.old = graph.node(node_id).kind

    def _redo(self) -> None:
        self.graph.set_kind(self.node_id, self.kind)

    def undo(self) -> None:
        self.graph.set_kind(self.node_id, self.old)


class ReplaceGraphCommand(GraphCommand):
    """Swap in a whole new graph (open a file, load an example, build from an expression)."""

    def __init__(self, graph: Graph, new_graph: Graph, text: str = "Replace graph") -> None:
        super().__init__(graph, text)
        self.new = new_graph.copy()
        self.old: Graph | None = None

    def _redo(self) -> None:
        old = self.graph.copy()
        self.graph.replace_with(self.new)
        self.old = old

    def undo(self) -> None:
        self.graph.replace_with(self.old)


class PasteCommand(GraphCommand):
    """Add copies of `nodes` (fresh unique names, positions offset by +40, +40) and the `edges` among them."""

    OFFSET = (40.0, 40.0)

    def __init__(self, graph: Graph, nodes: Iterable[Node], edges: Iterable[Edge]) -> None:
        self.nodes = [_copy_node(n) for n in nodes]
        ids = {n.id for n in self.nodes}
        self.edges = [e for e in edges if e.src in ids and e.dst in ids]
        super().__init__(graph, f"Paste {_plural(len(self.nodes), 'node')}")
        self.names: dict[str, str] = {}   # original id -> pasted id, fixed on the first redo

    @property
    def new_ids(self) -> list[str]:
        return [self.names[n.id] for n in self.nodes if n.id in self.names]

    def _redo(self) -> None:
        g = self.graph
        if not self.names:
            taken: set[str] = set()
            for n in self.nodes:
                prefix = re.sub(r"\d+$", "", n.id) or n.id
                name = g.unique_name(prefix, reserved=taken)
                taken.add(name)
                self.names[n.id] = name
        added: list[str] = []
        try:
            for n in self.nodes:
                copy = _copy_node(n)
                copy.id = self.names[n.id]
                copy.pos = (n.pos[0] + self.OFFSET[0], n.pos[1] + self.OFFSET[1])
                added.append(g.add_node(copy))
            for e in self.edges:
                g.connect(self.names[e.src], self.names[e.dst], e.port, check_shapes=False)
        except StudioError:
            for nid in reversed(added):   # leave the graph as it was, then let the error through
                g.remove_node(nid)
            raise

    def undo(self) -> None:
        for n in reversed(self.nodes):
            self.graph.remove_node(self.names[n.id])
