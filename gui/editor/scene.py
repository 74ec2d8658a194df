"""GraphScene: the canvas's items kept in step with a Graph (one NodeItem per node, one EdgeItem per wire), the
editing gestures (drag to move, drag port to port to wire) turned into undo commands, and stepping's display."""
from __future__ import annotations

import itertools

import numpy as np
from PySide6.QtCore import QAbstractAnimation, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QTransform, QUndoStack
from PySide6.QtWidgets import QGraphicsScene, QGraphicsSceneMouseEvent

from gui import commands as C
from gui import theme
from gui.editor.edge_item import EdgeItem, RubberWireItem
from gui.editor.flow import FlowPulse
from gui.editor.node_item import NodeItem
from gui.editor.port_item import PortItem
from gui.editor.tooltip import LazyToolTip
from simulator.engine.trace import StepEvent, TraceState
from simulator.core.errors import StudioError
from simulator.graphs.fileformat import dumps, loads
from simulator.graphs.graph import Edge, Graph, GraphChange, Node

GRID = 20.0
LEAF_NAMES = {"input": "x", "param": "w", "const": "c"}
_drag_ids = itertools.count(1)


def snap(p: QPointF) -> tuple[float, float]:
    return (round(p.x() / GRID) * GRID, round(p.y() / GRID) * GRID)


class GraphScene(QGraphicsScene):
    selection_changed_to = Signal(object)   # the selected node id, or None
    edit_refused = Signal(str)              # the model's message for a refused edit
    place_requested = Signal(QPointF)       # double-click on empty canvas

    def __init__(self, graph: Graph, undo_stack: QUndoStack, parent=None) -> None:
        super().__init__(parent)
        self.graph = graph
        self.undo_stack = undo_stack
        self._nodes: dict[str, NodeItem] = {}
        self._edges: dict[tuple[str, str], EdgeItem] = {}
        self._pulses: list[FlowPulse] = []
        self._by_node: dict[str, set[tuple[str, str]]] = {}   # node id -> keys of the wires touching it
        self._state: TraceState | None = None
        self._active: str | None = None
        self._phase: str | None = None
        self._drag_start: dict[str, QPointF] = {}
        self._wire: RubberWireItem | None = None
        self._wire_from: PortItem | None = None
        self._detached: EdgeItem | None = None
        self._last_selected: object = None
        self.setSceneRect(QRectF(-20000, -20000, 40000, 40000))
        self.setItemIndexMethod(QGraphicsScene.ItemIndexMethod.NoIndex)   # items move often; graphs are small
        self._rebuild()
        graph.changed.connect(self._on_graph_changed)
        self.selectionChanged.connect(self._on_selection_changed)

    def close(self) -> None:
        self.graph.changed.disconnect(self._on_graph_changed)

    # ---- lookup ---------------------------------------------------------------------------------------------

    def node_item(self, node_id: str) -> NodeItem:
        return self._nodes[node_id]

    def edge_item(self, dst: str, port: str) -> EdgeItem:
        return self._edges[(dst, port)]

    def node_items(self) -> list[NodeItem]:
        return list(self._nodes.values())

    def edge_items(self) -> list[EdgeItem]:
        return list(self._edges.values())

    def items_bounding_rect(self) -> QRectF:
        rect = QRectF()
        for item in itertools.chain(self._nodes.values(), self._edges.values()):
            rect = rect.united(item.sceneBoundingRect())
        return rect

    def selected_ids(self) -> list[str]:
        return [i.node_id for i in self.selectedItems() if isinstance(i, NodeItem)]

    def selected_edges(self) -> list[Edge]:
        return [i.edge for i in self.selectedItems() if isinstance(i, EdgeItem)]

    def select(self, node_id: str | None) -> None:
        self.clearSelection()
        if node_id is not None and node_id in self._nodes:
            self._nodes[node_id].setSelected(True)

    # ---- following the model --------------------------------------------------------------------------------

    def _on_graph_changed(self, change: GraphChange) -> None:
        kind = change.kind
        if kind == "node_added":
            self._add_node_item(change.node)
        elif kind == "node_removed":
            item = self._nodes.pop(change.node, None)
            self._by_node.pop(change.node, None)
            if item is not None:
                self.removeItem(item)
        elif kind == "node_renamed":
            self._rename(change.old, change.node)
        elif kind == "edge_added":
            self._add_edge_item(change.edge)
        elif kind == "edge_removed":
            self._remove_edge_item(change.edge)
        elif kind in ("value_changed", "attrs_changed"):
            item = self._nodes.get(change.node)
            if item is not None:
                item.sync()
                self._adjust_edges(change.node)
        elif kind == "node_moved":
            item = self._nodes.get(change.node)
            if item is not None:
                item.setPos(QPointF(*self.graph.node(change.node).pos))
        elif kind == "output_changed":
            self._refresh_output()
        elif kind == "reset":
            self._rebuild()
        if kind not in ("node_moved", "output_changed", "node_renamed") and self._state is not None:
            self.show_state(None, None, None)   # a shown trace no longer describes the edited graph
        elif kind in ("node_added", "node_removed", "edge_added", "edge_removed"):
            self._refresh_output()

    def _rebuild(self) -> None:
        self._cancel_wire()
        for item in itertools.chain(self._edges.values(), self._nodes.values()):
            self.removeItem(item)
        self._nodes.clear()
        self._edges.clear()
        self._by_node.clear()
        self._state = None
        for node in self.graph:
            self._add_node_item(node.id)
        for edge in self.graph.edges:
            self._add_edge_item(edge)
        self._refresh_output()

    def _add_node_item(self, node_id: str) -> None:
        item = NodeItem(self.graph, node_id)
        self._nodes[node_id] = item
        self._by_node.setdefault(node_id, set())
        self.addItem(item)

    def _add_edge_item(self, edge: Edge) -> None:
        key = (edge.dst, edge.port)
        item = EdgeItem(edge, self._nodes[edge.src], self._nodes[edge.dst])
        self._edges[key] = item
        self._by_node.setdefault(edge.src, set()).add(key)
        self._by_node.setdefault(edge.dst, set()).add(key)
        self.addItem(item)
        self._nodes[edge.dst].input_ports[edge.port].set_connected(True)

    def _remove_edge_item(self, edge: Edge) -> None:
        key = (edge.dst, edge.port)
        item = self._edges.pop(key, None)
        for nid in (edge.src, edge.dst):
            self._by_node.get(nid, set()).discard(key)
        if item is not None:
            if item is self._detached:
                self._detached = None
            self.removeItem(item)
        dst = self._nodes.get(edge.dst)
        if dst is not None and edge.port in dst.input_ports:
            dst.input_ports[edge.port].set_connected(False)

    def _rename(self, old: str, new: str) -> None:
        item = self._nodes.pop(old)
        item.node_id = new
        self._nodes[new] = item
        keys = self._by_node.pop(old, set())
        new_keys = set()
        for key in keys:
            edge_item = self._edges.pop(key)
            e = edge_item.edge
            edge_item.edge = Edge(new if e.src == old else e.src, new if e.dst == old else e.dst, e.port)
            new_key = (edge_item.edge.dst, e.port)
            self._edges[new_key] = edge_item
            new_keys.add(new_key)
            other = edge_item.edge.src if edge_item.edge.dst == new else edge_item.edge.dst
            if other != new:
                self._by_node[other].discard(key)
                self._by_node[other].add(new_key)
            edge_item._update_tooltip()
        self._by_node[new] = new_keys
        item.sync()

    def _adjust_edges(self, node_id: str) -> None:
        for key in self._by_node.get(node_id, ()):
            self._edges[key].adjust()

    def helpEvent(self, event) -> None:  # noqa: N802  (Qt's name)
        """Before Qt picks the tooltip under the pointer: the stale ones there are written (see gui/editor/tooltip)."""
        for item in self.items(event.scenePos()):
            if isinstance(item, LazyToolTip):
                item.write_tooltip()
        super().helpEvent(event)

    def node_item_moved(self, item: NodeItem) -> None:
        """Called from NodeItem.itemChange: wires follow a node while it is dragged."""
        self._adjust_edges(item.node_id)

    def _output_id(self) -> str | None:
        try:
            return self.graph.output
        except StudioError:
            return None

    def _refresh_output(self) -> None:
        out = self._output_id()
        for nid, item in self._nodes.items():
            if (nid == out) != item.is_output:
                value = self._state.values.get(nid) if self._state is not None else None
                item.set_display(grad=item.grad, output_value=value if nid == out else None, is_output=nid == out,
                                 active_phase=item.active_phase, dimmed=item.opacity() < 1)

    # ---- stepping's display ---------------------------------------------------------------------------------

    def show_state(self, state: TraceState | None, active_node: str | None = None, phase: str | None = None) -> None:
        """Show a step of the player: values above wires, gradients below, the active node highlighted.

        Moving between two states of the same trace redraws only what differs (the nodes and wires the steps in
        between touched, and the old and new active node), so a step costs the same at 50 nodes as at 2,000."""
        previous, previous_active = self._state, self._active
        diff = state.changed_since(previous) if state is not None else None
        self._state, self._active, self._phase = state, active_node, phase
        out = self._output_id()
        values = state.values if state is not None else {}
        grads = state.grads if state is not None else {}
        edge_grads = state.edge_grads if state is not None else {}
        if diff is None:
            node_ids, wire_keys = self._nodes.keys(), self._edges.keys()
        else:
            changed_nodes, changed_wires = diff
            node_ids = (changed_nodes | {previous_active, active_node}) - {None}
            wire_keys = set(changed_wires)
            for nid in changed_nodes:   # a wire shows its source's value, so it follows its source
                wire_keys.update(k for k in self._by_node.get(nid, ()) if self._edges[k].edge.src == nid)
        for nid in node_ids:
            item = self._nodes.get(nid)
            if item is None:
                continue
            reached = state is None or nid in values
            item.set_display(value=values.get(nid), grad=grads.get(nid),
                             output_value=values.get(nid) if nid == out else None, is_output=nid == out,
                             active_phase=phase if nid == active_node and phase else None,
                             dimmed=not reached)
        for key in wire_keys:
            item = self._edges.get(key)
            if item is None:
                continue
            src = item.edge.src
            item.set_display(value=values.get(src), grad=edge_grads.get(key),
                             dimmed=state is not None and src not in values)

    def animate_step(self, event: StepEvent, duration_ms: int = 450) -> list[FlowPulse]:
        """A pulse along each wire the step used: into the node (forward, green), or back out of it to its
        inputs (backward, red). Earlier pulses still running are stopped first."""
        self.stop_pulses()
        if event.kind != "op" or event.phase == "update":
            return []
        node = event.node
        if event.phase == "forward":
            wires = [self._edges.get((node, port)) for port in event.inputs]
            colour, reverse = theme.VALUE, False
        else:
            wires = [self._edges.get((node, port)) for port in event.outputs]
            colour, reverse = theme.GRADIENT, True
        for item in wires:
            if item is None:
                continue
            pulse = FlowPulse(self, item.sceneTransform().map(item.path()), colour, reverse, duration_ms)
            pulse.animation.finished.connect(self._on_pulse_finished)
            self._pulses.append(pulse)
            pulse.start()
        return list(self._pulses)

    def stop_pulses(self) -> None:
        for pulse in self._pulses:
            pulse.stop()
        self._pulses.clear()

    def _on_pulse_finished(self) -> None:
        for pulse in [p for p in self._pulses if p.animation.state() == QAbstractAnimation.Stopped]:
            pulse.stop()
            self._pulses.remove(pulse)

    # ---- editing: adding, deleting, copying -----------------------------------------------------------------

    def _push(self, cmd: C.GraphCommand) -> str | None:
        error = C.push(self.undo_stack, cmd)
        if error is not None:
            self.edit_refused.emit(error)
        return error

    def add_op_at(self, op_name: str, pos: QPointF) -> str | None:
        """Place a new op node (or, for "leaf:input" etc., a leaf) at `pos`; returns the error message or None."""
        if op_name.startswith("leaf:"):
            return self.add_leaf_at(op_name.split(":", 1)[1], pos)
        try:
            name = self.graph.unique_name(op_name)
            node = Node(name, "op", op=op_name, pos=snap(pos))
        except StudioError as exc:
            self.edit_refused.emit(str(exc))
            return str(exc)
        error = self._push(C.AddNodeCommand(self.graph, node))
        if error is None:
            self.select(name)
        return error

    def add_leaf_at(self, kind: str, pos: QPointF) -> str | None:
        if kind not in LEAF_NAMES:
            message = f"'{kind}' is not a kind of value; use input, param or const"
            self.edit_refused.emit(message)
            return message
        name = self.graph.unique_name(LEAF_NAMES[kind])
        node = Node(name, kind, value=np.array(1.0), pos=snap(pos))
        error = self._push(C.AddNodeCommand(self.graph, node))
        if error is None:
            self.select(name)
        return error

    def delete_selected(self) -> None:
        ids = self.selected_ids()
        gone = set(ids)
        wires = [e for e in self.selected_edges() if e.src not in gone and e.dst not in gone]
        if not ids and not wires:
            return
        macro = bool(ids) + len(wires) > 1
        if macro:
            self.undo_stack.beginMacro(f"Delete {len(ids) + len(wires)} items")
        try:
            for e in wires:
                self._push(C.DisconnectCommand(self.graph, e.dst, e.port))
            if ids:
                self._push(C.RemoveNodesCommand(self.graph, ids))
        finally:
            if macro:
                self.undo_stack.endMacro()

    def copy_selected(self) -> str:
        """The selected nodes and the wires among them, as a graph document (JSON)."""
        ids = set(self.selected_ids())
        sub = Graph()
        for node in self.graph:
            if node.id in ids:
                sub.add_node(Node(node.id, node.kind, node.op, dict(node.attrs), node.value, node.pos))
        for e in self.graph.edges:
            if e.src in ids and e.dst in ids:
                sub.connect(e.src, e.dst, e.port, check_shapes=False)
        return dumps(sub)

    def paste(self, text: str) -> str | None:
        """Add copies of the nodes in `text` (from copy_selected) with fresh names; they become the selection."""
        try:
            sub = loads(text)
        except StudioError as exc:
            self.edit_refused.emit(f"cannot paste: {exc}")
            return str(exc)
        if len(sub) == 0:
            return None
        cmd = C.PasteCommand(self.graph, sub.nodes, sub.edges)
        error = self._push(cmd)
        if error is None:
            self.clearSelection()
            for nid in cmd.new_ids:
                self._nodes[nid].setSelected(True)
        return error

    def duplicate_selected(self) -> str | None:
        if not self.selected_ids():
            return None
        return self.paste(self.copy_selected())

    # ---- editing: wires -------------------------------------------------------------------------------------

    def begin_wire(self, port: PortItem, pos: QPointF) -> bool:
        """Start a rubber wire from `port` (called by PortItem on press). A connected input port lifts its wire."""
        self._cancel_wire()
        start = port
        if not port.is_output:
            key = (port.node_id, port.port)
            existing = self._edges.get(key)
            if existing is not None:   # lift the wire: it now hangs from its source's output
                self._detached = existing
                existing.setVisible(False)
                start = self._nodes[existing.edge.src].output_port
        self._wire_from = start
        self._wire = RubberWireItem(start.scenePos(), start.is_output)
        self._wire.follow(pos)
        self.addItem(self._wire)
        return True

    def update_wire(self, pos: QPointF) -> None:
        if self._wire is not None:
            self._wire.follow(pos)

    def end_wire(self, pos: QPointF) -> None:
        start, detached = self._wire_from, self._detached
        self._cancel_wire()
        if start is None:
            return
        target = self._port_at(pos, want_output=not start.is_output)
        if detached is not None:
            old = detached.edge
            if target is not None and (target.node_id, target.port) == (old.dst, old.port):
                return   # dropped back where it was
            if target is None:
                self._push(C.DisconnectCommand(self.graph, old.dst, old.port))
                return
            trial = self.graph.copy()   # check the re-plug first, so a refused one leaves the wire in place
            try:
                trial.disconnect(old.dst, old.port)
                trial.connect(old.src, target.node_id, target.port)
            except StudioError as exc:
                self.edit_refused.emit(str(exc))
                return
            self.undo_stack.beginMacro(f"Reconnect {old.src} → {target.node_id}.{target.port}")
            self._push(C.DisconnectCommand(self.graph, old.dst, old.port))
            self._push(C.ConnectCommand(self.graph, old.src, target.node_id, target.port))
            self.undo_stack.endMacro()
            return
        if target is None:
            return
        if start.is_output:
            src, dst, port = start.node_id, target.node_id, target.port
        else:
            src, dst, port = target.node_id, start.node_id, start.port
        self._push(C.ConnectCommand(self.graph, src, dst, port))

    def _cancel_wire(self) -> None:
        if self._wire is not None:
            self.removeItem(self._wire)
        if self._detached is not None and self._detached.scene() is self:
            self._detached.setVisible(True)
        self._wire = self._wire_from = self._detached = None

    def _port_at(self, pos: QPointF, want_output: bool) -> PortItem | None:
        """The port under the mouse (with a little slack); over a node's box, its output or first free input."""
        slack = 10.0
        best, best_d = None, slack * slack
        for item in self.items(QRectF(pos.x() - slack, pos.y() - slack, 2 * slack, 2 * slack)):
            if isinstance(item, PortItem) and item.is_output == want_output:
                d = item.scenePos() - pos
                dist = d.x() ** 2 + d.y() ** 2
                if dist <= best_d:
                    best, best_d = item, dist
        if best is not None:
            return best
        for item in self.items(pos):
            if isinstance(item, NodeItem) and item.box_rect().contains(item.mapFromScene(pos)):
                if want_output:
                    return item.output_port
                free = [p for p in item.input_ports.values() if not p.connected]
                return free[0] if free else None
        return None

    # ---- mouse: moving nodes, placing ops -------------------------------------------------------------------

    def mousePressEvent(self, event: QGraphicsSceneMouseEvent) -> None:
        super().mousePressEvent(event)
        if event.button() == Qt.MouseButton.LeftButton and isinstance(self.mouseGrabberItem(), NodeItem):
            self._drag_start = {i.node_id: i.pos() for i in self.selectedItems() if isinstance(i, NodeItem)}
        else:
            self._drag_start = {}

    def mouseReleaseEvent(self, event: QGraphicsSceneMouseEvent) -> None:
        super().mouseReleaseEvent(event)
        if event.button() != Qt.MouseButton.LeftButton or not self._drag_start:
            return
        starts, self._drag_start = self._drag_start, {}
        moves = {}
        for nid, old in starts.items():
            item = self._nodes.get(nid)
            if item is None or item.pos() == old:
                continue
            moves[nid] = ((old.x(), old.y()), snap(item.pos()))
        if moves:
            error = self._push(C.MoveNodesCommand(self.graph, moves, drag_id=next(_drag_ids)))
            if error is not None:
                for nid, (old, _) in moves.items():
                    self._nodes[nid].setPos(QPointF(*old))

    def mouseDoubleClickEvent(self, event: QGraphicsSceneMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton and self.itemAt(event.scenePos(), self._view_transform()) is None:
            self.place_requested.emit(event.scenePos())
            event.accept()
            return
        super().mouseDoubleClickEvent(event)

    def _view_transform(self) -> QTransform:
        views = self.views()
        return views[0].transform() if views else QTransform()

    def _on_selection_changed(self) -> None:
        ids = self.selected_ids()
        current = ids[0] if len(ids) == 1 else None
        if current != self._last_selected:
            self._last_selected = current
            self.selection_changed_to.emit(current)
