"""The main window driven as a learner would: type an expression, step, inspect, edit, undo, save, reopen, check
gradients, export, recover; and the --screenshot command line."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QSettings, QStandardPaths, Qt
from PySide6.QtWidgets import QMessageBox

from gui.commands import SetValueCommand
from gui.main_window import MainWindow
from simulator.graphs import fileformat

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def window(qtbot, tmp_path):
    QStandardPaths.setTestModeEnabled(True)
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat)
    w = MainWindow(settings=settings, warm_up=False)
    w.autosave_path = tmp_path / "autosave.bps.json"
    w.resize(1400, 860)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.undo_stack.setClean()  # closing must not ask to save what a test left unsaved
    w.close()
    w.deleteLater()


def _type_expression(qtbot, w, text):
    w.expression_edit.clear()
    qtbot.keyClicks(w.expression_edit, text)
    qtbot.keyClick(w.expression_edit, Qt.Key_Return)
    w.player.flush()


def _step_to_end(qtbot, w):
    for _ in range(w.player.length):
        qtbot.mouseClick(w.transport.forward_button, Qt.LeftButton)


def test_expression_step_to_end_shows_the_lecture_numbers(qtbot, window):
    w = window
    _type_expression(qtbot, w, "(x + y) * z")
    assert sorted(n.id for n in w.graph) == ["f", "q", "x", "y", "z"]
    for name, v in (("x", -2), ("y", 5), ("z", -4)):
        w.scene.select(name)
        w.inspector.value_edit.selectAll()
        qtbot.keyClicks(w.inspector.value_edit, str(v))
        qtbot.keyClick(w.inspector.value_edit, Qt.Key_Return)
    w.player.flush()
    assert w.player.length == 5
    _step_to_end(qtbot, w)
    assert w.transport.step_label.text() == "Backward 3 / 3"
    state = w.player.state()
    assert float(state.values["f"]) == -12.0
    assert {k: float(state.grads[k]) for k in "xyz"} == {"x": -4.0, "y": -4.0, "z": 3.0}
    # the chain-rule panel shows the last step with its numbers
    body = w.chain_panel.body.text()
    assert "-4" in body and "×" in body and "∂q/∂x" in body
    # the inspector of x shows its gradient
    w.scene.select("x")
    assert float(w.inspector.views["grad"]._value) == -4.0
    w.scene.select("f")
    assert float(w.inspector.views["value"]._value) == -12.0
    # wires show values and gradients
    texts = " ".join(w.scene.edge_item(e.dst, e.port).value_text() + " " + w.scene.edge_item(e.dst, e.port).grad_text()
                     for e in w.graph.edges) + " " + w.scene.node_item("f").output_text()
    for number in ("-12", "-4", "3", "-2", "5"):
        assert number in texts
    # step back replays: the last gradient disappears, values stay
    qtbot.mouseClick(w.transport.back_button, Qt.LeftButton)
    assert w.transport.step_label.text() == "Backward 2 / 3"
    assert "x" not in w.player.state().grads and float(w.player.state().values["f"]) == -12.0
    # keyboard: Left steps back, Home resets
    w.view.setFocus()
    qtbot.keyClick(w.view, Qt.Key_Left)
    assert w.player.position == 3
    qtbot.keyClick(w.view, Qt.Key_Home)
    assert w.player.position == 0


def test_expression_error_points_at_the_column(qtbot, window):
    w = window
    before = len(w.graph)
    _type_expression(qtbot, w, "x + foo(y)")
    assert w.expression_error.isVisible()
    assert "column 5" in w.expression_error.text() and "foo" in w.expression_error.text()
    assert len(w.graph) == before
    assert w.expression_edit.selectedText() == "foo"


def test_value_edit_reruns_and_keeps_the_position_and_undo_restores(qtbot, window):
    w = window
    w.open_example("circuit")
    w.player.flush()
    w.player.seek(4)
    w.scene.select("z")
    w.inspector.value_edit.selectAll()
    qtbot.keyClicks(w.inspector.value_edit, "2")
    qtbot.keyClick(w.inspector.value_edit, Qt.Key_Return)
    w.player.flush()
    assert w.player.position == 4
    assert float(w.player.state().values["f"]) == 6.0
    assert w.windowTitle().startswith("(x + y) · z[*]") and w.isWindowModified()
    w.undo_stack.undo()
    w.player.flush()
    assert float(w.graph.node("z").value) == -4.0 and float(w.player.state().values["f"]) == -12.0
    assert not w.isWindowModified()
    w.undo_stack.redo()
    assert float(w.graph.node("z").value) == 2.0


def test_bad_value_is_refused_inline(qtbot, window):
    w = window
    w.open_example("circuit")
    w.scene.select("x")
    w.inspector.value_edit.selectAll()
    qtbot.keyClicks(w.inspector.value_edit, "__import__('os')")
    qtbot.keyClick(w.inspector.value_edit, Qt.Key_Return)
    assert w.inspector.error_label.isVisible()
    assert float(w.graph.node("x").value) == -2.0


def test_save_reopen_compare(qtbot, window, tmp_path, monkeypatch):
    w = window
    w.open_example("two_layer_net")
    path = tmp_path / "net.bps.json"
    monkeypatch.setattr("gui.main_window.QFileDialog.getSaveFileName", lambda *a, **k: (str(path), ""))
    assert w.save()
    assert w.windowTitle().startswith("net.bps.json")
    original = fileformat.dumps(w.graph)
    w.open_example("circuit")
    assert w.open_path(path)
    assert fileformat.dumps(w.graph) == original
    assert w.recent_files()[0] == str(path)
    assert [a.text() for a in w.recent_menu.actions()] == ["net.bps.json"]


def test_broken_file_shows_a_dialog_and_keeps_the_graph(qtbot, window, tmp_path, monkeypatch):
    w = window
    w.open_example("sigmoid_neuron")
    before = fileformat.dumps(w.graph)
    shown = []
    monkeypatch.setattr(QMessageBox, "critical", lambda parent, title, text, *a: shown.append((title, text)))
    for content in (b"{not json", b'{"format": "backprop-studio-graph", "version": 99}', b"\xff\xfe"):
        bad = tmp_path / "bad.json"
        bad.write_bytes(content)
        assert not w.open_path(bad)
    assert len(shown) == 3
    assert "not valid JSON" in shown[0][1] and "newer" in shown[1][1] and "UTF-8" in shown[2][1]
    assert fileformat.dumps(w.graph) == before


def test_gradient_check_dialog(qtbot, window):
    w = window
    w.open_example("sigmoid_neuron")
    dialog = w.gradient_check_graph()
    assert dialog.table.rowCount() == 5
    assert all(c.status == "good" for c in dialog.checks)
    w.scene.select("q1")
    node_dialog = w.gradient_check_node()
    assert [c.status for c in node_dialog.checks] == ["good", "good"]


def test_examples_menu_opens_every_example(qtbot, window):
    w = window
    menu = w.examples_menu
    assert menu.menuAction() in w.menuBar().actions()
    titles = [a.text() for a in menu.actions()]
    assert len(titles) == 6
    for action in menu.actions():
        action.trigger()
        w.player.flush()
        assert w.player.trace is not None and len(w.graph) >= 3


def test_exports(qtbot, window, tmp_path):
    w = window
    w.open_example("circuit")
    w.export_png(tmp_path / "g.png")
    w.export_svg(tmp_path / "g.svg")
    frames = w.export_gif(str(tmp_path / "g.gif"))
    assert (tmp_path / "g.png").stat().st_size > 1000
    assert "<svg" in (tmp_path / "g.svg").read_text()
    from PIL import Image
    with Image.open(tmp_path / "g.gif") as gif:
        assert gif.n_frames == frames == 6


def test_autosave_is_this_windows_own_and_goes_when_saved(qtbot, window, monkeypatch, tmp_path):
    """Recovery across processes (kill -9, a second instance) is in tests/gui/test_recovery.py."""
    w = window
    w.open_example("fan_out")
    w.undo_stack.push(SetValueCommand(w.graph, "y", 7.0))
    assert w.autosave()
    assert float(fileformat.load(w.autosave_path).node("y").value) == 7.0
    asked = []
    monkeypatch.setattr("gui.recovery.choose", lambda *a: asked.append(a) or "restore")
    assert not w.offer_recovery() and not asked  # a live window's autosave is not a crash
    monkeypatch.setattr("gui.main_window.QFileDialog.getSaveFileName", lambda *a, **k: (str(tmp_path / "f.json"), ""))
    assert w.save()
    assert not w.autosave_path.exists()  # saved: the autosave would only be older than the file


def test_screenshot_command_line(tmp_path):
    out = tmp_path / "shot.png"
    proc = subprocess.run([sys.executable, "main.py", "--example", "sigmoid_neuron", "--step", "12",
                           "--screenshot", str(out), "--size", "1200x760"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen"})
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    from PIL import Image
    with Image.open(out) as img:
        assert img.size == (1200, 760)
        colours = np.asarray(img.convert("RGB")).reshape(-1, 3)
        assert len(np.unique(colours, axis=0)) > 50  # a real picture, not a blank window


def test_help_lists_examples():
    proc = subprocess.run([sys.executable, "main.py", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    for name in ("circuit", "sigmoid_neuron", "two_layer_net", "fan_out"):
        assert name in proc.stdout
    bad = subprocess.run([sys.executable, "main.py", "--example", "nope", "--screenshot", "x.png"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "no example 'nope'" in bad.stderr


def test_optimizer_lab_opens_as_a_tab(qtbot, window):
    w = window
    lab = w.open_lab("Optimizers")
    assert w.tabs.currentWidget().isAncestorOf(lab)
    qtbot.waitUntil(lambda: not lab.is_busy() and len(lab.runs) > 0, timeout=20_000)
    assert len(lab.runs) == 7
    assert w.open_lab("Optimizers") is lab  # built once


def test_a_step_sends_a_pulse_along_the_wires(qtbot, window):
    w = window
    w.open_example("circuit")
    w.player.flush()
    qtbot.mouseClick(w.transport.forward_button, Qt.LeftButton)  # forward through q = x + y
    pulses = list(w.scene._pulses)
    assert len(pulses) == 2
    start = [p.pos() for p in pulses]
    qtbot.waitUntil(lambda: any(p.pos() != s for p, s in zip(pulses, start)), timeout=3000)  # they travel
    qtbot.waitUntil(lambda: not w.scene._pulses, timeout=3000)  # and are gone when they arrive
    assert all(p.scene() is None for p in pulses)
    w.player.seek(3)
    w.player.step_forward()  # backward through f: gradients flow back to q and z
    assert len(w.scene._pulses) == 2
    w.player.seek(0)  # a jump is not a step: no pulse
    assert not w.scene._pulses


def test_kernel_warmup_runs_off_the_gui_thread_with_progress(qtbot, tmp_path):
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat)
    w = MainWindow(settings=settings, warm_up=False)
    seen, shown = [], w._on_warmup_progress
    w._on_warmup_progress = lambda p: (seen.append((p.done, p.total)), shown(p))
    w._start_warmup()
    w.show()
    qtbot.waitUntil(lambda: not w.jobs.running("warmup"), timeout=240_000)
    assert w.warmup_plan.remaining == 0 and w.warmup_plan.total >= 20
    assert seen and seen[-1] == (w.warmup_plan.total, w.warmup_plan.total)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert w.progress.isHidden()
    w.close()


def test_the_warmup_compiles_the_open_tabs_kernels_first():
    from simulator.functional.warmup import TAB_KERNELS, WarmupPlan, warmup_job
    ran = []
    tasks = [(f"{g}[float64]", lambda g=g: ran.append(g)) for g in ("conv", "pool", "activations", "optim")]
    plan = WarmupPlan(tasks)
    plan.prefer(TAB_KERNELS["Optimizers"])
    job = warmup_job(plan)
    first = next(job)
    assert first.message == "optim[float64]" and (first.done, first.total) == (1, 4)
    plan.prefer(TAB_KERNELS["Convolution"])            # the learner switched tabs meanwhile
    assert [p.message for p in job] == ["conv[float64]", "pool[float64]", "activations[float64]"]
    assert ran == ["optim", "conv", "pool", "activations"]


def test_window_layout_is_restored(qtbot, tmp_path):
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat)
    w = MainWindow(settings=settings, warm_up=False)
    w.show()
    w.resize(1111, 777)
    w.inspector_dock.hide()
    qtbot.wait(20)
    saved = w.saveGeometry()
    w.close()
    assert settings.value("geometry") == saved
    again = MainWindow(settings=settings, warm_up=False)
    again.show()
    qtbot.wait(20)
    # the offscreen screen is small, so the size is clamped to it; the dock layout comes back as it was
    assert again.inspector_dock.isHidden() and not again.palette_dock.isHidden()
    again.close()


def test_undo_of_a_delete_restores_the_exact_graph(qtbot, window):
    w = window
    w.open_example("sigmoid_neuron")
    before = fileformat.dumps(w.graph)
    events = [e.node for e in w.player.trace.events]
    w.scene.select("q1")
    w.scene.delete_selected()
    assert "q1" not in w.graph
    w.undo_stack.undo()
    w.player.flush()
    assert fileformat.dumps(w.graph) == before
    assert [e.node for e in w.player.trace.events] == events


def test_inspector_edits_small_float_attributes_and_refuses_bad_values(qtbot, window):
    w = window
    w.expression_edit.setText("leaky_relu(x, alpha=0.00001) + x")
    w.build_from_expression()
    op = next(n.id for n in w.graph if n.op == "leaky_relu")
    w.scene.select(op)
    edit = w.inspector.attr_widgets["alpha"]
    assert edit.text() == "1e-05"
    depth = w.undo_stack.count()
    edit.setFocus()
    edit.editingFinished.emit()  # leaving the field unchanged is not an edit
    assert w.undo_stack.count() == depth and not w.inspector.error_label.isVisible()
    edit.setText("0.2")
    edit.editingFinished.emit()
    assert w.graph.node(op).attrs["alpha"] == 0.2 and w.undo_stack.count() == depth + 1
    w.scene.select("x")
    for text in ("[]", "True", "[[1, 2], [3]]"):
        w.inspector.value_edit.setText(text)
        w.inspector._on_value_entered()
        assert w.inspector.error_label.isVisible()
        assert float(w.graph.node("x").value) == 1.0
    qtbot.wait(10)  # a repaint with the refused values must not crash


def test_every_lab_opens_in_its_tab_and_closes_cleanly(qtbot, window):
    w = window
    titles = [w.tabs.tabText(i) for i in range(w.tabs.count())]
    assert titles[0] == "Backprop"
    assert {"Classifiers", "Convolution", "Optimizers", "Interpretability", "Search"} <= set(titles)
    for title in titles[1:]:
        lab = w.open_lab(title)
        assert lab.isVisible() and w.tabs.currentWidget().isAncestorOf(lab)
        assert not w.palette_dock.isVisible() and not w.inspector_dock.isVisible()  # labs get the whole width
    w.tabs.setCurrentIndex(0)
    assert w.palette_dock.isVisible() and w.inspector_dock.isVisible()


def test_playground_hands_its_network_to_the_graph_editor_and_the_interpretability_lab(qtbot, window):
    from gui.labs.playground import DIGITS
    w = window
    pg = w.open_lab("Playground")
    qtbot.waitUntil(lambda: pg.state == "idle" and not pg._rebuild_timer.isActive(), timeout=10_000)
    qtbot.mouseClick(pg.graph_button, Qt.LeftButton)
    assert w.tabs.currentIndex() == 0
    params = [n.id for n in w.graph if n.kind == "param"]
    assert len(params) == 4  # fc1.w, fc1.b, fc2.w, fc2.b
    w.player.flush()
    assert w.player.trace is not None and w.player.trace.backward_count > 3
    assert w.player.trace.update_count == 4  # the iteration ends with the parameter updates
    w.undo_stack.undo()  # the learner's graph comes back
    assert not any(n.kind == "param" for n in w.graph)
    # an image model trained in the playground shows up in the interpretability lab
    w.open_lab("Playground")
    pg.dataset_combo.setCurrentText(DIGITS)
    pg.points_box.setValue(400)
    pg.epochs_box.setValue(2)
    qtbot.waitUntil(lambda: not pg._rebuild_timer.isActive() and pg.state == "idle", timeout=10_000)
    qtbot.mouseClick(pg.train_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: pg.state in ("finished", "failed"), timeout=60_000)
    assert pg.state == "finished"
    assert w.pending_model is not None and len(w.pending_model[0].input_shape) == 3
    lab = w.open_lab("Interpretability")
    assert lab.network is w.pending_model[0]  # a copy: the playground may go on training its own
    assert lab.network is not pg.session.network
    # the learner sees the digits as they are, the network gets them standardised
    np.testing.assert_allclose(lab.model.images.raw, pg.split_raw[2], atol=1e-9)
    np.testing.assert_allclose(lab.model.images.inputs, w.pending_model[1][2])
    assert not np.allclose(lab.model.images.raw, lab.model.images.inputs)


def test_apply_best_in_search_sets_the_playgrounds_optimizer_rate_and_decay(qtbot, window):
    w = window
    search = w.open_lab("Search")
    config = {"optimizer": "RMSProp", "lr": 0.0042, "weight_decay": 0.003, "val_accuracy": 0.93, "search": "random"}
    search.best_config_applied.emit(config)       # what its Apply best button emits (tested in test_search_lab)
    assert w.tabs.tabText(w.tabs.currentIndex()) == "Playground"
    pg = w.labs["Playground"]
    assert pg.optimizer_combo.currentData() == "RMSProp" and pg.lr_box.value() == 0.0042
    assert pg.hyper_boxes["weight_decay"].value() == 0.003
    qtbot.waitUntil(lambda: pg.state == "idle" and not pg._rebuild_timer.isActive(), timeout=10_000)
    opt = pg.session.trainer.optimizer
    assert type(opt).__name__ == "RMSProp" and opt.lr == 0.0042 and opt.weight_decay == 0.003
    assert "RMSProp" in w.statusBar().currentMessage()


def test_stepping_can_end_with_a_gradient_descent_update(qtbot, window):
    w = window
    w.open_example("two_layer_net")
    w.player.flush()
    plain = w.player.length
    qtbot.mouseClick(w.transport.update_check, Qt.LeftButton)
    w.player.flush()
    assert w.player.length == plain + 2 and w.transport.lr_box.isEnabled()
    w.player.to_end()
    assert w.transport.step_label.text() == "Update 2 / 2"
    assert "W2 ← W2 − lr · dL/dW2" in w.chain_panel.body.text()
    state = w.player.state()
    grads = w.player.trace.state_at(plain).grads
    np.testing.assert_allclose(state.values["W2"], w.graph.node("W2").value - 0.1 * grads["W2"])
    qtbot.mouseClick(w.transport.update_check, Qt.LeftButton)
    w.player.flush()
    assert w.player.length == plain


def test_a_lab_opened_by_its_tab_is_painted_once_when_shown(qtbot, window):
    """The click asks for the tab's repaint before the lab exists; the lab's layouts, asked for while it is built,
    are settled before that paint, so the events that show the lab paint its plots once, not once more after its
    layouts settle (what its own jobs draw later is painted when they finish)."""
    from PySide6.QtCore import QEvent, QObject
    from PySide6.QtWidgets import QApplication
    import pyqtgraph as pg

    class Paints(QObject):
        def __init__(self):
            super().__init__()
            self.count = {}

        def eventFilter(self, obj, ev):
            if ev.type() == QEvent.Type.Paint:
                self.count[obj] = self.count.get(obj, 0) + 1
            return False

    w = window
    bar = w.tabs.tabBar()
    index = [w.tabs.tabText(i) for i in range(w.tabs.count())].index("Playground")
    paints = Paints()
    app = QApplication.instance()
    app.installEventFilter(paints)
    try:
        qtbot.mouseClick(bar, Qt.MouseButton.LeftButton, pos=bar.tabRect(index).center())
        app.processEvents()                      # what showing the tab takes, and nothing later
    finally:
        app.removeEventFilter(paints)
    plots = [p.viewport() for p in w.labs["Playground"].findChildren(pg.PlotWidget) if p.isVisible()]
    assert len(plots) == 5
    assert [paints.count.get(v, 0) for v in plots] == [1] * 5
