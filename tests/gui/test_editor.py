"""The graph editor driven like a user would: drops from the palette, port-to-port drags, node drags, keys, undo."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPoint, QPointF, QRectF, QSizeF, Qt
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QMouseEvent, QUndoStack, QWheelEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QDialog

from gui import commands as C
from gui.editor.palette import PalettePanel, PlaceOpPopup
from gui.editor.scene import GraphScene
from gui.editor.view import MIME_OP, GraphView
from simulator.engine.trace import Trace
from simulator.graphs.examples import load_example
from simulator.graphs.graph import Edge, Graph

L = Qt.MouseButton.LeftButton
NO = Qt.MouseButton.NoButton


# ---- helpers: real events on the viewport ------------------------------------------------------------------------

def _send_mouse(view: GraphView, kind: QEvent.Type, scene_pos: QPointF, button, buttons) -> None:
    vp = view.viewport()
    local = QPointF(view.mapFromScene(scene_pos))
    event = QMouseEvent(kind, local, QPointF(vp.mapToGlobal(local.toPoint())), button, buttons,
                        Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(vp, event)


def drag(view: GraphView, start: QPointF, end: QPointF, steps: int = 4) -> None:
    """Press at `start`, move in `steps` increments, release at `end` (scene coordinates)."""
    _send_mouse(view, QEvent.Type.MouseButtonPress, start, L, L)
    for i in range(1, steps + 1):
        t = i / steps
        _send_mouse(view, QEvent.Type.MouseMove, start + (end - start) * t, NO, L)
    _send_mouse(view, QEvent.Type.MouseButtonRelease, end, L, NO)


def click(view: GraphView, pos: QPointF) -> None:
    _send_mouse(view, QEvent.Type.MouseButtonPress, pos, L, L)
    _send_mouse(view, QEvent.Type.MouseButtonRelease, pos, L, NO)


def drop(view: GraphView, palette: PalettePanel, name: str, scene_pos: QPointF) -> None:
    """What a drag from the palette delivers. QDrag.exec() runs its own nested event loop that needs a real
    window system, so headless we send the drag-enter and drop events, with the palette's own mime data."""
    data = palette.mime_data_for(name)
    local = view.mapFromScene(scene_pos)
    enter = QDragEnterEvent(local, Qt.DropAction.CopyAction, data, L, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(view.viewport(), enter)
    assert enter.isAccepted()
    event = QDropEvent(QPointF(local), Qt.DropAction.CopyAction, data, L, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(view.viewport(), event)


def wire(view: GraphView, scene: GraphScene, src: str, dst: str, port: str) -> None:
    drag(view, scene.node_item(src).port_scene_pos(None), scene.node_item(dst).port_scene_pos(port))


@pytest.fixture
def editor(qtbot):
    graph = Graph()
    stack = QUndoStack()
    scene = GraphScene(graph, stack)
    view = GraphView(scene)
    qtbot.addWidget(view)
    view.resize(900, 600)
    view.show()
    qtbot.waitExposed(view)
    view.centerOn(QPointF(220, 40))
    yield graph, stack, scene, view
    scene.close()


def _circuit_editor(qtbot, name: str = "circuit"):
    graph = load_example(name)
    stack = QUndoStack()
    scene = GraphScene(graph, stack)
    view = GraphView(scene)
    qtbot.addWidget(view)
    view.resize(1000, 520)
    view.show()
    qtbot.waitExposed(view)
    view.fit_to_view()
    return graph, stack, scene, view


# ---- building a graph by hand ------------------------------------------------------------------------------------

def build_xyz(qtbot, editor):
    graph, stack, scene, view = editor
    palette = PalettePanel()
    qtbot.addWidget(palette)
    drop(view, palette, "add", QPointF(200, 0))
    drop(view, palette, "mul", QPointF(400, 60))
    for pos in (QPointF(0, -40), QPointF(0, 60), QPointF(200, 140)):
        drop(view, palette, "leaf:input", pos)
    assert [n.id for n in graph] == ["add", "mul", "x", "x1", "x2"]
    C.push(stack, C.RenameCommand(graph, "x1", "y"))
    C.push(stack, C.RenameCommand(graph, "x2", "z"))
    wire(view, scene, "x", "add", "x")
    wire(view, scene, "y", "add", "y")
    wire(view, scene, "add", "mul", "x")
    wire(view, scene, "z", "mul", "y")
    return graph, stack, scene, view


def test_build_circuit_from_palette_drops_and_port_drags(qtbot, editor):
    graph, stack, scene, view = build_xyz(qtbot, editor)
    assert set(graph.edges) == {Edge("x", "add", "x"), Edge("y", "add", "y"), Edge("add", "mul", "x"),
                                Edge("z", "mul", "y")}
    assert graph.node("add").pos == (200.0, 0.0) and graph.node("mul").pos == (400.0, 60.0)
    assert len(scene.edge_items()) == 4 and scene.node_item("add").input_ports["x"].connected
    assert stack.count() == 5 + 2 + 4
    assert stack.text(stack.count() - 1) == "Connect z → mul.y"
    # the graph runs: (1 + 1) * 1
    assert float(Trace(graph).value) == 2.0


def test_drop_point_becomes_node_position_snapped(qtbot, editor):
    graph, stack, scene, view = editor
    palette = PalettePanel()
    qtbot.addWidget(palette)
    drop(view, palette, "sigmoid", QPointF(113, 47))
    assert graph.node("sigmoid").pos == (120.0, 40.0)
    assert scene.selected_ids() == ["sigmoid"]


def test_refused_wire_reports_both_shapes_and_adds_nothing(qtbot, editor):
    graph, stack, scene, view = editor
    graph.add_input("a", np.zeros((2, 3)), pos=(0, -40))
    graph.add_input("b", np.zeros((4, 5)), pos=(0, 60))
    graph.add_op("matmul", name="m", pos=(200, 0))
    wire(view, scene, "a", "m", "a")
    before = stack.count()
    with qtbot.waitSignal(scene.edit_refused, timeout=1000) as blocker:
        wire(view, scene, "b", "m", "b")
    message = blocker.args[0]
    assert "'m'" in message and "(2, 3)" in message and "(4, 5)" in message
    assert graph.edge_into("m", "b") is None
    assert ("m", "b") not in {(e.edge.dst, e.edge.port) for e in scene.edge_items()}
    assert stack.count() == before
    assert not [i for i in scene.items() if type(i).__name__ == "RubberWireItem"]


def test_undo_redo_restores_edges_and_positions(qtbot, editor):
    graph, stack, scene, view = build_xyz(qtbot, editor)
    stack.undo()   # the last wire
    assert graph.edge_into("mul", "y") is None
    with pytest.raises(KeyError):
        scene.edge_item("mul", "y")
    stack.redo()
    assert graph.edge_into("mul", "y") == Edge("z", "mul", "y")
    assert scene.edge_item("mul", "y").edge.src == "z"

    item = scene.node_item("add")
    drag(view, item.pos(), item.pos() + QPointF(47, 33))
    assert graph.node("add").pos == (240.0, 40.0)
    stack.undo()
    assert graph.node("add").pos == (200.0, 0.0) and scene.node_item("add").pos() == QPointF(200, 0)
    stack.redo()
    assert scene.node_item("add").pos() == QPointF(240, 40)


def test_one_drag_is_one_undo_step_snapped_and_wires_follow_during_the_drag(qtbot, editor):
    graph, stack, scene, view = build_xyz(qtbot, editor)
    item = scene.node_item("mul")
    edge = scene.edge_item("mul", "x")
    before = stack.count()
    start = item.pos()
    _send_mouse(view, QEvent.Type.MouseButtonPress, start, L, L)
    for k in range(1, 8):
        _send_mouse(view, QEvent.Type.MouseMove, start + QPointF(9 * k, 4 * k), NO, L)
    # mid-drag: no command yet, the model has not moved, but the wire already ends at the moved port
    assert stack.count() == before and graph.node("mul").pos == (400.0, 60.0)
    end = edge.path().pointAtPercent(1.0)
    assert (end - item.port_scene_pos("x")).manhattanLength() < 0.5
    assert item.pos() == start + QPointF(63, 28)
    _send_mouse(view, QEvent.Type.MouseButtonRelease, start + QPointF(63, 28), L, NO)
    assert stack.count() == before + 1
    assert stack.text(stack.count() - 1) == "Move mul"
    assert graph.node("mul").pos == (460.0, 80.0)   # 463, 88 snapped to the 20 px grid
    assert (edge.path().pointAtPercent(1.0) - item.port_scene_pos("x")).manhattanLength() < 0.5
    # a second drag is its own step (commands only merge within a drag)
    drag(view, item.pos(), item.pos() + QPointF(40, 0))
    assert stack.count() == before + 2
    stack.undo()
    assert graph.node("mul").pos == (460.0, 80.0)


def test_delete_node_with_key_and_undo_restores_node_wires_and_output(qtbot, editor):
    graph, stack, scene, view = build_xyz(qtbot, editor)
    graph.set_output("mul")
    scene.select("add")
    view.setFocus()
    QTest.keyClick(view, Qt.Key.Key_Delete)
    assert "add" not in graph and graph.edge_into("mul", "x") is None
    assert len(scene.edge_items()) == 1
    scene.select("mul")
    QTest.keyClick(view, Qt.Key.Key_Backspace)
    assert graph._output is None
    stack.undo()
    stack.undo()
    assert graph._output == "mul"
    assert set(graph.edges) == {Edge("x", "add", "x"), Edge("y", "add", "y"), Edge("add", "mul", "x"),
                                Edge("z", "mul", "y")}
    assert len(scene.edge_items()) == 4 and scene.node_item("add").pos() == QPointF(200, 0)


def test_click_wire_and_delete_disconnects(qtbot, editor):
    graph, stack, scene, view = build_xyz(qtbot, editor)
    edge = scene.edge_item("mul", "y")
    click(view, edge.path().pointAtPercent(0.3))
    assert edge.isSelected() and scene.selected_ids() == []
    view.setFocus()
    QTest.keyClick(view, Qt.Key.Key_Delete)
    assert graph.edge_into("mul", "y") is None
    assert stack.text(stack.count() - 1) == "Disconnect z → mul.y"
    stack.undo()
    assert graph.edge_into("mul", "y") == Edge("z", "mul", "y")


def test_drag_from_connected_input_replugs_the_wire(qtbot, editor):
    graph, stack, scene, view = build_xyz(qtbot, editor)
    before = stack.count()
    # lift z's wire from mul.y and drop it on add... add.y is taken, so take y's wire off first: drop it on empty
    drag(view, scene.node_item("add").port_scene_pos("y"), QPointF(100, 300))
    assert graph.edge_into("add", "y") is None and stack.count() == before + 1
    drag(view, scene.node_item("mul").port_scene_pos("y"), scene.node_item("add").port_scene_pos("y"))
    assert graph.edge_into("mul", "y") is None and graph.edge_into("add", "y") == Edge("z", "add", "y")
    assert stack.count() == before + 2   # disconnect + connect as one macro step
    stack.undo()
    assert graph.edge_into("mul", "y") == Edge("z", "mul", "y") and graph.edge_into("add", "y") is None
    # a lifted wire dropped back on its own port changes nothing
    drag(view, scene.node_item("mul").port_scene_pos("y"), scene.node_item("mul").port_scene_pos("y"))
    assert graph.edge_into("mul", "y") == Edge("z", "mul", "y") and scene.edge_item("mul", "y").isVisible()


def test_copy_paste_and_duplicate_give_fresh_names(qtbot, editor):
    graph, stack, scene, view = build_xyz(qtbot, editor)
    scene.clearSelection()
    scene.node_item("x").setSelected(True)
    scene.node_item("add").setSelected(True)
    text = scene.copy_selected()
    assert scene.paste(text) is None
    assert sorted(scene.selected_ids()) == ["add1", "x1"]  # x1 and x2 were renamed to y and z, so x1 is free
    assert graph.edge_into("add1", "x") == Edge("x1", "add1", "x")
    assert graph.edge_into("add1", "y") is None
    assert graph.node("add1").pos == (240.0, 40.0)
    assert stack.text(stack.count() - 1) == "Paste 2 nodes"
    view.setFocus()
    QTest.keyClick(view, Qt.Key.Key_D, Qt.KeyboardModifier.ControlModifier)
    assert {"add2", "x2"} <= {n.id for n in graph}
    stack.undo()
    stack.undo()
    assert {n.id for n in graph} == {"add", "mul", "x", "y", "z"}
    assert scene.paste("not json") is not None


# ---- commands on their own -------------------------------------------------------------------------------------

def test_push_keeps_a_refused_command_off_the_stack():
    graph = Graph.from_expression("(x + y) * z")
    stack = QUndoStack()
    error = C.push(stack, C.ConnectCommand(graph, "x", "f", "x"))
    assert error is not None and "already fed" in error
    assert stack.count() == 0 and not stack.canUndo()
    assert C.push(stack, C.RenameCommand(graph, "x", "1bad")) is not None
    assert C.push(stack, C.SetValueCommand(graph, "x", float("nan"))) is not None
    assert stack.count() == 0
    assert C.push(stack, C.SetValueCommand(graph, "x", 3.0)) is None
    assert stack.count() == 1 and float(graph.node("x").value) == 3.0
    stack.undo()
    assert float(graph.node("x").value) != 3.0


def test_commands_round_trip():
    graph = Graph.from_expression("(x + y) * z")
    graph.set_value("x", -2.0)
    stack = QUndoStack()
    old = graph.copy()
    assert C.push(stack, C.SetKindCommand(graph, "x", "param")) is None
    assert graph.node("x").kind == "param"
    assert C.push(stack, C.AddNodeCommand(graph, graph.node("x").__class__("p", "op", op="pow"))) is None
    assert C.push(stack, C.SetAttrsCommand(graph, "p", {"p": 3.0})) is None
    assert graph.node("p").attrs["p"] == 3.0
    assert C.push(stack, C.ReplaceGraphCommand(graph, Graph.from_expression("a - b"))) is None
    assert {n.id for n in graph} == {"a", "b", "f"}
    while stack.canUndo():
        stack.undo()
    assert {n.id for n in graph} == {n.id for n in old} and graph.node("x").kind == "input"
    assert set(graph.edges) == set(old.edges)


def test_move_commands_merge_only_within_one_drag():
    graph = Graph.from_expression("x + y")
    stack = QUndoStack()
    C.push(stack, C.MoveNodesCommand(graph, {"x": ((0, 0), (10, 0))}, drag_id=1))
    C.push(stack, C.MoveNodesCommand(graph, {"x": ((10, 0), (20, 0)), "y": ((0, 50), (5, 50))}, drag_id=1))
    assert stack.count() == 1 and stack.text(0) == "Move 2 nodes"
    C.push(stack, C.MoveNodesCommand(graph, {"x": ((20, 0), (30, 0))}, drag_id=2))
    assert stack.count() == 2
    stack.undo()
    stack.undo()
    assert graph.node("x").pos == (0.0, 0.0) and graph.node("y").pos == (0.0, 50.0)


def test_rename_rekeys_items(qtbot, editor):
    graph, stack, scene, view = build_xyz(qtbot, editor)
    C.push(stack, C.RenameCommand(graph, "add", "q"))
    assert scene.node_item("q").node_id == "q"
    assert scene.edge_item("q", "x").edge == Edge("x", "q", "x")
    assert scene.edge_item("mul", "x").edge.src == "q"
    stack.undo()
    assert scene.edge_item("add", "y").edge == Edge("y", "add", "y")


# ---- stepping's display ------------------------------------------------------------------------------------------

def test_show_state_circuit_end_values_and_gradients(qtbot):
    graph, stack, scene, view = _circuit_editor(qtbot)
    trace = Trace(graph)
    state = trace.state_at(len(trace))
    scene.show_state(state, state.event.node, state.event.phase)
    assert scene.node_item("f").output_text() == "-12"
    assert scene.edge_item("f", "x").value_text() == "3"
    assert scene.edge_item("f", "y").value_text() == "-4"
    assert [scene.edge_item(*k).grad_text() for k in (("q", "x"), ("q", "y"), ("f", "y"))] == ["-4", "-4", "3"]
    assert scene.edge_item("f", "x").grad_text() == "-4"
    assert scene.node_item("x").grad_text() == "-4" and scene.node_item("z").grad_text() == "3"
    assert scene.node_item(state.event.node).active_phase == "backward"

    # before anything ran: leaves show values, wires from leaves their values, the op nodes are dimmed
    start = trace.state_at(0)
    scene.show_state(start, None, None)
    assert scene.edge_item("q", "x").value_text() == "-2" and scene.edge_item("f", "x").value_text() == ""
    assert scene.node_item("q").opacity() < 1 and scene.node_item("x").opacity() == 1
    assert scene.edge_item("q", "x").grad_text() == ""

    scene.show_state(None, None, None)
    assert scene.node_item("x").value_text() == "-2"
    assert all(e.value_text() == "" and e.grad_text() == "" for e in scene.edge_items())
    assert scene.node_item("f").output_text() == ""


def test_scalar_labels_use_four_significant_digits(qtbot):
    graph, stack, scene, view = _circuit_editor(qtbot, "sigmoid_neuron")
    trace = Trace(graph)
    scene.show_state(trace.state_at(len(trace)), None, None)
    assert scene.node_item("w0").grad_text() == "-0.1966"
    assert scene.node_item("f").output_text() == "0.7311"


def test_tensor_wire_shows_shape_heatmap_and_numbers_in_tooltip(qtbot):
    graph, stack, scene, view = _circuit_editor(qtbot, "two_layer_net")
    trace = Trace(graph)
    state = trace.state_at(trace.forward_count + 3)
    scene.show_state(state, state.event.node, state.event.phase)
    edge = scene.edge_item("scores", "a")
    assert edge.value_text() == "(4, 5)" and edge.grad_text() == "(4, 5)"
    assert edge._value_image is not None and edge._value_image.size().toTuple() == (24, 16)
    tip = edge.tooltip_text()                # written into toolTip() when the pointer comes over the wire
    h = state.values["h"]
    assert "value (4, 5)" in tip and "gradient (4, 5)" in tip
    assert f"{h.flat[np.argmax(np.abs(h))]:.4f}".rstrip("0") in tip
    assert scene.edge_item("h1", "a").grad_text() == ""   # not reached yet going backward


def _ask_tooltip(view: GraphView, scene_pos: QPointF) -> str:
    """What the pointer resting at scene_pos asks for: a ToolTip help event on the viewport (Qt's own path: the
    view turns it into the scene's help event); returns the tooltip Qt shows."""
    from PySide6.QtGui import QHelpEvent
    from PySide6.QtWidgets import QToolTip
    vp = view.viewport()
    local = view.mapFromScene(scene_pos)
    QToolTip.hideText()
    QApplication.sendEvent(vp, QHelpEvent(QEvent.Type.ToolTip, local, vp.mapToGlobal(local)))
    return QToolTip.text() if QToolTip.isVisible() else ""


def test_canvas_tooltips_are_written_when_asked_for_and_show_the_current_numbers(qtbot):
    graph, stack, scene, view = _circuit_editor(qtbot, "two_layer_net")
    view.show()
    qtbot.waitExposed(view)
    trace = Trace(graph)
    item = scene.node_item("h")
    view.centerOn(item)
    state = trace.state_at(len(trace))
    scene.show_state(state, state.event.node, state.event.phase)
    assert item.toolTip() == ""                         # not written for every node at every step
    tip = _ask_tooltip(view, item.scenePos())
    assert tip == item.tooltip_text() == item.toolTip() and "<b>h</b>" in tip
    assert "gradient (4, 5)" in tip
    g = state.grads["h"]
    assert f"{g.flat[np.argmax(np.abs(g))]:.4f}".rstrip("0") in tip
    scene.show_state(trace.state_at(0), None, None)     # a new step: the next request shows the new numbers
    assert "gradient" not in _ask_tooltip(view, item.scenePos())
    # a wire, also where a port covers its end (the port takes the hover, the wire's tooltip is the one shown)
    edge = scene.edge_item("scores", "a")
    assert edge.toolTip() == ""
    scene.show_state(state, state.event.node, state.event.phase)
    tip = _ask_tooltip(view, edge.path().pointAtPercent(0.5))
    assert tip == edge.tooltip_text() and "h → scores.a" in tip and "gradient (4, 5)" in tip
    scene.show_state(trace.state_at(0), None, None)
    port = scene.node_item("scores").input_ports["a"]
    end = port.scenePos() - QPointF(3, 0)
    assert any(isinstance(i, type(port)) for i in scene.items(end)) and edge in scene.items(end)
    tip = _ask_tooltip(view, end)
    assert tip == edge.tooltip_text() and "gradient" not in tip


def test_wires_follow_a_node_whose_value_text_changes_its_width(qtbot):
    """A gradient-descent update changes a parameter's value (its text, so its box's width, so its output port):
    the wires leaving it start at the port at every step."""
    graph, stack, scene, view = _circuit_editor(qtbot, "sigmoid_neuron")
    for name in ("w0", "w1", "w2"):
        graph.set_kind(name, "param")
    trace = Trace(graph, 1e6)                           # a big step: the new values' texts are much wider
    widths: dict[str, set] = {}
    for k in range(len(trace) + 1):
        scene.show_state(trace.state_at(k), None, None)
        for name in ("w0", "w1", "w2"):
            node = scene.node_item(name)
            widths.setdefault(name, set()).add(round(node.w, 1))
            for e in scene.edge_items():
                if e.edge.src == name:
                    start = e.path().pointAtPercent(0.0)
                    port = node.port_scene_pos(None)
                    assert abs(start.x() - port.x()) < 1e-6 and abs(start.y() - port.y()) < 1e-6
    assert all(len(w) == 2 for w in widths.values())    # each box did change width (52 px, then 83-87 px)


def test_node_bounds_follow_their_numbers_at_every_step_and_cover_what_is_painted(qtbot):
    """A node's bounds are kept between steps; at every step they equal a fresh measure of its numbers (the
    output's value beside it, the gradient under it), and the scene finds the node wherever it paints them."""
    graph, stack, scene, view = _circuit_editor(qtbot, "sigmoid_neuron")
    for name in ("w0", "w1", "w2"):
        graph.set_kind(name, "param")
    trace = Trace(graph, 1e6)
    seen: dict[str, set] = {}
    for k in list(range(len(trace) + 1)) + [0, len(trace), 3]:     # step forward, then jump
        scene.show_state(trace.state_at(k), None, None)
        for node in scene.node_items():
            bounds = node.boundingRect()
            assert bounds == node._measure_bounds() and bounds.contains(node.box_rect())
            seen.setdefault(node.node_id, set()).add(round(bounds.width(), 1))
            corner = node.mapToScene(bounds.bottomLeft() + QPointF(1, -1))   # under the box: the gradient
            near = QRectF(corner, QSizeF(0.5, 0.5))
            assert node in scene.items(near, Qt.ItemSelectionMode.IntersectsItemBoundingRect)
    out = graph.output
    assert len(seen[out]) >= 2 and len(seen["w0"]) >= 2    # the output's and a parameter's bounds did change


def test_graph_edits_clear_a_stale_state(qtbot):
    graph, stack, scene, view = _circuit_editor(qtbot)
    trace = Trace(graph)
    scene.show_state(trace.state_at(len(trace)), None, None)
    C.push(stack, C.SetValueCommand(graph, "x", 1.0))
    assert scene.edge_item("q", "x").grad_text() == "" and scene.node_item("x").value_text() == "1"


# ---- the view, the palette and the popup -----------------------------------------------------------------------

def test_zoom_clamps(qtbot, editor):
    graph, stack, scene, view = editor
    view.zoom_by(1000)
    assert view.zoom() == pytest.approx(4.0)
    vp = view.viewport()
    centre = QPointF(vp.rect().center())
    for _ in range(40):
        event = QWheelEvent(centre, QPointF(vp.mapToGlobal(centre.toPoint())), QPoint(0, 0), QPoint(0, -480), NO,
                            Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
        QApplication.sendEvent(vp, event)
    assert view.zoom() == pytest.approx(0.2)


def test_double_click_on_empty_canvas_requests_placement(qtbot, editor):
    graph, stack, scene, view = editor
    with qtbot.waitSignal(scene.place_requested, timeout=1000) as blocker:
        QTest.mouseDClick(view.viewport(), L, Qt.KeyboardModifier.NoModifier, view.mapFromScene(QPointF(300, 300)))
    assert (blocker.args[0] - QPointF(300, 300)).manhattanLength() < 2


def test_selection_signal(qtbot, editor):
    graph, stack, scene, view = build_xyz(qtbot, editor)
    with qtbot.waitSignal(scene.selection_changed_to) as blocker:
        click(view, scene.node_item("mul").pos())
    assert blocker.args == ["mul"]
    with qtbot.waitSignal(scene.selection_changed_to) as blocker:
        click(view, QPointF(600, 400))
    assert blocker.args == [None]


def test_palette_lists_every_op_filters_and_activates(qtbot):
    from simulator.ops import REGISTRY
    palette = PalettePanel()
    qtbot.addWidget(palette)
    assert set(REGISTRY) | {"leaf:input", "leaf:param", "leaf:const"} == set(palette.visible_names())
    titles = [palette.tree.topLevelItem(i).text(0) for i in range(palette.tree.topLevelItemCount())]
    assert titles[0] == "Arithmetic" and titles[-1] == "Values"
    assert "max(0, x)" in palette.item_for("relu").toolTip(0)
    palette.search.setText("σ")   # QTest.keyClicks aborts on characters outside Latin-1
    assert "sigmoid" in palette.visible_names() and "add" not in palette.visible_names()
    with qtbot.waitSignal(palette.op_activated) as blocker:
        QTest.keyClick(palette.search, Qt.Key.Key_Return)
    assert blocker.args == ["sigmoid"]
    palette.search.clear()
    QTest.keyClicks(palette.search, "matmul")
    assert palette.visible_names() == ["matmul"]
    assert bytes(palette.mime_data_for("matmul").data(MIME_OP)) == b"matmul"


def test_place_popup_filters_and_accepts_on_enter(qtbot):
    popup = PlaceOpPopup()
    qtbot.addWidget(popup)
    popup.show()
    QTest.keyClicks(popup.search, "tanh")
    assert popup.chosen() == "tanh"
    QTest.keyClick(popup.search, Qt.Key.Key_Return)
    assert popup.result() == QDialog.DialogCode.Accepted and popup.chosen() == "tanh"


def test_renders_examples_to_png(qtbot):
    for name, step in (("circuit", None), ("two_layer_net", 7)):
        graph, stack, scene, view = _circuit_editor(qtbot, name)
        trace = Trace(graph)
        state = trace.state_at(len(trace) if step is None else step)
        scene.show_state(state, state.event.node, state.event.phase)
        view.fit_to_view()
        image = view.grab().toImage()
        assert image.width() == 1000
        # something other than background was drawn: the value and gradient colours appear
        colours = {image.pixelColor(x, y).name() for x in range(0, 1000, 3) for y in range(0, 520, 3)}
        assert len(colours) > 20
        image.save(f"/tmp/backprop_editor_{name}.png")
        scene.close()


def test_middle_button_and_space_drag_pan(qtbot, editor):
    graph, stack, scene, view = editor
    before = view.mapToScene(view.viewport().rect().center())
    vp = view.viewport()
    for kind, pos, button, buttons in ((QEvent.Type.MouseButtonPress, QPointF(400, 300), Qt.MouseButton.MiddleButton,
                                        Qt.MouseButton.MiddleButton),
                                       (QEvent.Type.MouseMove, QPointF(300, 250), NO, Qt.MouseButton.MiddleButton),
                                       (QEvent.Type.MouseButtonRelease, QPointF(300, 250), Qt.MouseButton.MiddleButton,
                                        NO)):
        QApplication.sendEvent(vp, QMouseEvent(kind, pos, QPointF(vp.mapToGlobal(pos.toPoint())), button, buttons,
                                               Qt.KeyboardModifier.NoModifier))
    after = view.mapToScene(view.viewport().rect().center())
    assert (after - before - QPointF(100, 50)).manhattanLength() < 2
    view.setFocus()
    QTest.keyPress(view, Qt.Key.Key_Space)
    for kind, x, button, buttons in ((QEvent.Type.MouseButtonPress, 400, L, L), (QEvent.Type.MouseMove, 430, NO, L),
                                     (QEvent.Type.MouseMove, 450, NO, L), (QEvent.Type.MouseButtonRelease, 450, L, NO)):
        pos = QPointF(x, 300)   # viewport coordinates: the scene point under the mouse moves while panning
        QApplication.sendEvent(vp, QMouseEvent(kind, pos, QPointF(vp.mapToGlobal(pos.toPoint())), button, buttons,
                                               Qt.KeyboardModifier.NoModifier))
    QTest.keyRelease(view, Qt.Key.Key_Space)
    assert (view.mapToScene(view.viewport().rect().center()) - after + QPointF(50, 0)).manhattanLength() < 2
    assert len(graph) == 0 and not scene.selectedItems()


def test_deleting_the_selected_node_announces_no_selection(qtbot, editor):
    graph, stack, scene, view = build_xyz(qtbot, editor)
    scene.select("mul")
    with qtbot.waitSignal(scene.selection_changed_to) as blocker:
        scene.delete_selected()
    assert blocker.args == [None]


# ---- hostile positions, incremental stepping display, the cached background (issue 11, 12) ------------------------

def test_fit_to_view_survives_a_node_at_1e308(qtbot):
    from gui.editor.view import MIN_ZOOM
    from simulator.graphs.graph import Node
    graph = load_example("circuit")
    graph.add_node(Node("far", "input", value=np.array(1.0), pos=(1e308, -1e308)))
    stack = QUndoStack()
    scene = GraphScene(graph, stack)
    view = GraphView(scene)
    qtbot.addWidget(view)
    view.resize(800, 500)
    view.show()
    qtbot.waitExposed(view)
    for _ in range(3):   # every later fit and zoom works too (the zoom used to stick at 0)
        view.fit_to_view()
        assert MIN_ZOOM <= view.zoom() <= 1.5
        # the sane nodes are what gets fitted: the circuit's output is on screen
        assert view.viewport().rect().contains(view.mapFromScene(scene.node_item("f").pos()))
        view.zoom_by(1.5)
        view.grab()   # painting the background and the items raises nothing
    view.setTransform(view.transform().scale(0.0, 0.0))   # a broken transform is repaired, not divided by
    view.zoom_by(2.0)
    assert view.zoom() == pytest.approx(2.0)
    view.set_zoom(float("nan"))
    assert view.zoom() == pytest.approx(2.0)
    scene.close()


def test_only_a_single_node_graph_far_away_falls_back_to_the_origin(qtbot):
    from simulator.graphs.graph import Node
    graph = Graph()
    graph.add_node(Node("x", "input", value=np.array(1.0), pos=(1e308, 1e308)))
    scene = GraphScene(graph, QUndoStack())
    view = GraphView(scene)
    qtbot.addWidget(view)
    view.resize(600, 400)
    view.show()
    view.fit_to_view()
    assert view.zoom() == 1.0
    centre = view.mapToScene(view.viewport().rect().center())
    assert abs(centre.x()) < 5 and abs(centre.y()) < 5
    scene.close()


def _shown(scene):
    return ({i.node_id: (i.value_text(), i.grad_text(), i.output_text(), i.active_phase, i.opacity())
             for i in scene.node_items()},
            {(e.edge.dst, e.edge.port): (e.value_text(), e.grad_text(), e.opacity()) for e in scene.edge_items()})


def test_stepping_redraws_only_what_changed_and_shows_what_a_full_redraw_shows(qtbot, monkeypatch):
    graph, stack, scene, view = _circuit_editor(qtbot, "two_layer_net")
    trace = Trace(graph, learning_rate=0.1)
    calls = []
    from gui.editor.node_item import NodeItem
    original = NodeItem.set_display
    monkeypatch.setattr(NodeItem, "set_display", lambda self, *a, **k: (calls.append(self.node_id),
                                                                         original(self, *a, **k))[1])
    order = list(range(len(trace) + 1)) + list(range(len(trace), -1, -3)) + [4, 11, 2]
    previous = None
    for k in order:
        calls.clear()
        state = trace.state_at(k)
        active = state.event.node if state.event else None
        scene.show_state(state, active, state.event.phase if state.event else None)
        incremental = _shown(scene)
        if previous is not None and k == previous + 1:
            assert len(calls) <= 4   # the step's node, its inputs (at most two), the node active before
        previous = k
        fresh = GraphScene(graph, QUndoStack())
        fresh.show_state(state, active, state.event.phase if state.event else None)
        assert incremental == _shown(fresh), f"step {k}"
        fresh.close()


def test_the_grid_background_is_cached(qtbot, editor):
    graph, stack, scene, view = editor
    assert view.cacheMode() & GraphView.CacheModeFlag.CacheBackground
