"""The window's frame: docks that keep their width across tab switches and restarts, a tab bar that never moves, a
title and status bar that describe the current tab and graph, and the hand-offs between tabs."""
import pytest
from PySide6.QtCore import QPoint, QSettings, QStandardPaths, Qt

from gui.main_window import INSPECTOR_MIN_WIDTH, PALETTE_MIN_WIDTH, MainWindow
from simulator.nn.network import Activation, Linear, Network


def _window(qtbot, tmp_path, size=(1280, 800)):
    QStandardPaths.setTestModeEnabled(True)
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat)
    w = MainWindow(settings=settings, warm_up=False)
    w.autosave_path = tmp_path / "autosave.bps.json"
    w.resize(*size)
    w.show()
    qtbot.waitExposed(w)
    return w


def _close(w):
    w.undo_stack.setClean()
    w.close()
    w.deleteLater()


@pytest.fixture
def window(qtbot, tmp_path):
    w = _window(qtbot, tmp_path)
    yield w
    _close(w)


def _tab_index(w, title):
    return next(i for i in range(w.tabs.count()) if w.tabs.tabText(i) == title)


def _click_tab(qtbot, w, title):
    bar = w.tabs.tabBar()
    qtbot.mouseClick(bar, Qt.LeftButton, pos=bar.tabRect(_tab_index(w, title)).center())
    qtbot.wait(20)


def test_docks_keep_their_width_and_the_tab_bar_stays_put(qtbot, window):
    w = window
    w.open_example("circuit")
    qtbot.wait(50)
    bar = w.tabs.tabBar()
    widths = (w.palette_dock.width(), w.inspector_dock.width())
    assert widths[0] >= PALETTE_MIN_WIDTH and widths[1] >= INSPECTOR_MIN_WIDTH
    where = bar.mapTo(w, QPoint(0, 0))
    for title in ("Optimizers", "Backprop", "Classifiers", "Backprop"):
        _click_tab(qtbot, w, title)
        assert w.tabs.tabText(w.tabs.currentIndex()) == title
        assert bar.mapTo(w, QPoint(0, 0)) == where          # the same click opens the same tab
    assert (w.palette_dock.width(), w.inspector_dock.width()) == widths
    assert w.palette_dock.isVisible() and w.inspector_dock.isVisible()


def test_dock_widths_survive_a_restart_even_after_a_lab_was_open(qtbot, tmp_path):
    w = _window(qtbot, tmp_path)
    w.editor_window.resizeDocks([w.inspector_dock], [400], Qt.Horizontal)
    qtbot.wait(20)
    width = w.inspector_dock.width()
    _click_tab(qtbot, w, "Init / norm")
    _close(w)                                           # closed while a lab is showing
    w2 = _window(qtbot, tmp_path)
    try:
        qtbot.wait(20)
        assert abs(w2.inspector_dock.width() - width) <= 2
        assert w2.palette_dock.width() >= PALETTE_MIN_WIDTH
    finally:
        _close(w2)


def test_collapsed_docks_from_an_old_layout_are_not_restored(qtbot, tmp_path):
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat)
    w = _window(qtbot, tmp_path)
    w.editor_window.resizeDocks([w.palette_dock], [10], Qt.Horizontal)
    settings.setValue("editor_state", w.editor_window.saveState(1))    # an older version's state
    settings.sync()
    _close(w)
    w2 = _window(qtbot, tmp_path)
    try:
        assert w2.palette_dock.width() >= PALETTE_MIN_WIDTH
    finally:
        _close(w2)


def test_title_and_status_bar_describe_the_current_tab_and_graph(qtbot, window):
    w = window
    w.open_example("circuit")
    w.player.step_forward()
    w.player.step_forward()
    assert w.phase_label.isVisible() and w.phase_label.text().startswith("Forward")
    assert w.windowTitle().startswith(w.document_name())
    w.statusBar().showMessage("f = (x + y) z with x = -2")
    _click_tab(qtbot, w, "Init / norm")
    assert not w.phase_label.isVisible()                 # no "Forward 2 / 5" under a lab
    assert w.statusBar().currentMessage() == ""          # nor the graph's description
    assert w.windowTitle().startswith(f"Init / norm · {w.document_name()}")
    _click_tab(qtbot, w, "Backprop")
    assert w.phase_label.isVisible() and w.windowTitle().startswith(w.document_name())


def test_a_network_opened_in_the_editor_is_named_in_the_title(qtbot, window):
    import numpy as np
    w = window
    w.open_example("sigmoid_neuron")
    before = w.windowTitle()
    net = Network((2,), [Linear(4), Activation("relu"), Linear(3)], seed=0)
    x = np.random.default_rng(0).normal(size=(4, 2))
    w.open_network_graph(net.to_graph(x, np.array([0, 1, 2, 0])))
    assert w.windowTitle() != before
    assert "Network from the Playground" in w.windowTitle()
    assert w.tabs.currentIndex() == 0


def test_expression_errors_are_shown_as_written(qtbot, window):
    w = window
    w.expression_edit.setText("x^2 + 'a'")
    qtbot.keyClick(w.expression_edit, Qt.Key_Return)
    assert w.expression_error.isVisible()
    shown = w.expression_error.text()
    assert "&#" not in shown and "&quot;" not in shown and "**" in shown
