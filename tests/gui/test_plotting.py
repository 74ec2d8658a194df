"""gui.plotting: an axis is drawn once and kept as a pixmap, through tab switches, until its range changes."""
import pyqtgraph as pg
import pytest
from PySide6.QtWidgets import QLabel, QTabWidget

import gui.plotting  # noqa: F401  (configures pyqtgraph as every lab has it)


def _counting_axis_paints(monkeypatch) -> dict[str, int]:
    count = {"n": 0}
    paint = pg.AxisItem.paint

    def counted(self, *args):
        count["n"] += 1
        return paint(self, *args)
    monkeypatch.setattr(pg.AxisItem, "paint", counted)
    return count


def test_switching_tabs_does_not_redraw_the_axes_but_a_new_range_does(qtbot, monkeypatch):
    count = _counting_axis_paints(monkeypatch)
    tabs = QTabWidget()
    qtbot.addWidget(tabs)
    plot = pg.PlotWidget()
    curve = plot.plot([0, 1, 2], [3, 1, 2])
    tabs.addTab(QLabel("other"), "other")
    tabs.addTab(plot, "plot")
    tabs.resize(500, 400)
    tabs.show()
    tabs.setCurrentIndex(1)
    qtbot.waitUntil(lambda: count["n"] >= 2)          # both axes drawn once shown
    qtbot.wait(100)
    drawn = count["n"]
    for _ in range(3):  # each switch sends the scene WindowDeactivate / WindowActivate
        tabs.setCurrentIndex(0)
        qtbot.wait(30)
        tabs.setCurrentIndex(1)
        qtbot.wait(30)
        plot.grab()
    assert count["n"] == drawn
    curve.setData([0, 10, 20], [300, 100, 200])      # a new range relabels both axes: drawn again, not stale
    plot.grab()
    qtbot.waitUntil(lambda: count["n"] >= drawn + 2)


def test_switching_back_to_a_plot_paints_it_once_and_a_legend_or_title_change_still_shows(qtbot):
    """Qt sends a shown view's items WindowActivate, and QGraphicsWidget repaints on it: pyqtgraph's widgets (plot,
    view box, legend, label) ignore it, so a tab switch paints a plot once instead of twice."""
    from PySide6.QtCore import QEvent, QObject

    class Paints(QObject):
        n = 0

        def eventFilter(self, obj, ev):
            if ev.type() == QEvent.Type.Paint:
                Paints.n += 1
            return False

    tabs = QTabWidget()
    qtbot.addWidget(tabs)
    plot = pg.PlotWidget(title="loss")
    plot.addLegend()
    plot.plot([0, 1, 2], [3, 1, 2], name="train")
    tabs.addTab(QLabel("other"), "other")
    tabs.addTab(plot, "plot")
    tabs.resize(500, 400)
    tabs.show()
    tabs.setCurrentIndex(1)
    qtbot.waitExposed(plot)
    qtbot.wait(100)
    watcher = Paints()
    plot.viewport().installEventFilter(watcher)
    for _ in range(3):
        tabs.setCurrentIndex(0)
        qtbot.wait(30)
        Paints.n = 0
        tabs.setCurrentIndex(1)
        qtbot.wait(60)
        assert Paints.n == 1
    Paints.n = 0
    plot.setTitle("validation loss")                  # a real change is still painted
    qtbot.waitUntil(lambda: Paints.n >= 1)
    assert plot.getPlotItem().titleLabel.text == "validation loss"


def test_an_axis_label_follows_its_text_and_its_si_prefix(qtbot):
    plot = pg.PlotWidget()
    qtbot.addWidget(plot)
    axis = plot.getPlotItem().getAxis("left")
    plot.setLabel("left", "voltage", units="V")
    plot.setYRange(0, 2e-6, padding=0)
    assert axis.label.toPlainText() == "voltage (\u00b5V)"           # micro sign
    plot.setYRange(0, 2.0, padding=0)                   # the range alone changes the prefix
    assert axis.label.toPlainText() == "voltage (V)"
    plot.setLabel("left", "current", units="A")
    assert axis.label.toPlainText() == "current (A)"


def test_next_nice_step_walks_the_1_2_5_sequence():
    from gui.plotting import next_nice_step

    seq = [0.01]
    for _ in range(6):
        seq.append(next_nice_step(seq[-1]))
    assert seq == pytest.approx([0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0])
    assert next_nice_step(25.0) == pytest.approx(50.0) and next_nice_step(3.0) == pytest.approx(5.0)


def test_a_short_vertical_axis_spaces_its_labels_and_a_tall_one_keeps_pyqtgraphs_ticks(qtbot):
    """0..1 on a 45 px axis: pyqtgraph asks for ticks every 0.2 (9 px apart, the labels piled on each other); they
    are 0.5 apart (22.5 px). On a 400 px axis and on a bottom axis the spacing is pyqtgraph's own."""
    from gui.plotting import MIN_LABEL_GAP_PX

    w = pg.PlotWidget()
    qtbot.addWidget(w)
    left, bottom = w.getPlotItem().getAxis("left"), w.getPlotItem().getAxis("bottom")
    short = left.tickSpacing(0.0, 1.0, 45)
    assert short[0][0] == pytest.approx(0.5) and short[0][0] * 45 >= MIN_LABEL_GAP_PX
    assert all(level[0] < short[0][0] for level in short[1:])
    values = left.tickValues(0.0, 1.0, 45)
    assert list(values[0][1]) == pytest.approx([0.0, 0.5, 1.0])
    assert left.tickSpacing(0.0, 1.0, 400)[0][0] == pytest.approx(0.2)      # 80 px apart already
    assert bottom.tickSpacing(0.0, 1.0, 45)[0][0] == pytest.approx(0.2)     # widths are pyqtgraph's business
