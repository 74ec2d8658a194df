"""The dying-ReLU page through its widgets: the bias toggle and the learning rate change the strip, the dead share and
the text; the sweep draws the model's numbers; the page lives in the Init / norm lab and trains when first shown."""
import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt

from gui.labs.dying_relu_view import DEAD_RGB, DyingReluView, rate_colours


@pytest.fixture
def view(qtbot):
    v = DyingReluView()
    qtbot.addWidget(v)
    v.resize(1280, 760)
    v.show()
    qtbot.waitExposed(v)
    v.widgets["steps"].setValue(120)                 # quicker than the default 300, the same lesson
    with qtbot.waitSignal(v.computed, timeout=30_000):
        v.ensure_computed()
    qtbot.waitUntil(lambda: not v.is_busy(), timeout=30_000)
    yield v
    v.stop()
    v.runner.close()


def _red_pixels(widget) -> int:
    img = widget.grab().toImage()
    count = 0
    for x in range(0, img.width(), 2):
        for y in range(0, img.height(), 2):
            c = img.pixelColor(x, y)
            count += abs(c.red() - DEAD_RGB[0]) + abs(c.green() - DEAD_RGB[1]) + abs(c.blue() - DEAD_RGB[2]) < 12
    return count


def _shows(v, run) -> None:
    """The strip, the big number and the text show ``run``."""
    np.testing.assert_array_equal(v.strip.image, rate_colours(run.rates))
    assert v.fraction_label.text() == f"{run.final_dead} of {run.units} units dead ({run.final_dead / run.units:.0%})"
    assert v.explain_label.text() == v.model.result.text
    assert v.explain_label.text().startswith(f"2 × 32 ReLU units, Kaiming weights, biases {run.bias_init:g}:")
    _, ys = v.dead_curves[run.bias_init].getData()
    np.testing.assert_array_equal(ys, run.dead_fraction)
    assert v.dead_curves[run.bias_init].opts["pen"].style() == Qt.PenStyle.SolidLine


def test_toggling_the_bias_switches_the_picture_and_the_fraction(qtbot, view):
    v = view
    r = v.model.result
    assert not v.bias_check.isChecked() and r.settings.steps == 120
    _shows(v, r.runs[0.0])
    assert v.dead_curves[0.01].opts["pen"].style() == Qt.PenStyle.DashLine
    with qtbot.waitSignal(v.computed, timeout=30_000):            # click the check box's indicator
        qtbot.mouseClick(v.bias_check, Qt.MouseButton.LeftButton, pos=QPoint(8, v.bias_check.height() // 2))
    assert v.model.settings.small_bias and v.model.result.shown is r.runs[0.01]
    _shows(v, r.runs[0.01])
    for b in r.runs[0.01].initial_biases.values():
        assert np.all(b == 0.01)
    # Gaussian 0.01 weights: the bias dominates the tiny pre-activations, and the picture and the number say so
    with qtbot.waitSignal(v.computed, timeout=30_000):
        v.init_combo.setCurrentIndex(v.init_combo.findText("Gaussian: std 0.01"))
    g = v.model.result
    assert g.settings.init == "gaussian" and g.runs[0.01].final_dead < g.runs[0.0].final_dead
    assert "the 0.01 bias kept" in v.explain_label.text()
    red_with_bias = _red_pixels(v.strip_plot)
    with qtbot.waitSignal(v.computed, timeout=30_000):
        qtbot.mouseClick(v.bias_check, Qt.MouseButton.LeftButton, pos=QPoint(8, v.bias_check.height() // 2))
    assert v.model.result.shown is g.runs[0.0]
    np.testing.assert_array_equal(v.strip.image, rate_colours(g.runs[0.0].rates))
    assert _red_pixels(v.strip_plot) > red_with_bias + 50


def test_a_too_high_learning_rate_turns_the_strip_red(qtbot, view):
    v = view
    calm = v.model.result.shown
    red_before = _red_pixels(v.strip_plot)
    box = v.lr_box
    box.setFocus()
    box.lineEdit().selectAll()
    with qtbot.waitSignal(v.computed, timeout=30_000):
        qtbot.keyClicks(box.lineEdit(), "5")
        qtbot.keyClick(box.lineEdit(), Qt.Key.Key_Return)
    wild = v.model.result.shown
    assert v.model.settings.lr == 5.0
    assert wild.final_dead > calm.final_dead + 10 and wild.final_dead / wild.units > 0.5
    assert v.fraction_label.text().startswith(f"{wild.final_dead} of 64 units dead")
    assert _red_pixels(v.strip_plot) > 3 * max(red_before, 1)
    assert "None of the" in v.explain_label.text()                # layer 1's dead units never came back


def test_the_sweep_draws_the_models_numbers(qtbot, view):
    v = view
    v.widgets["steps"].setValue(40)
    qtbot.waitUntil(lambda: not v.is_busy() and v.model.result.settings.steps == 40, timeout=30_000)
    with qtbot.waitSignal(v.swept, timeout=60_000):
        qtbot.mouseClick(v.sweep_button, Qt.MouseButton.LeftButton)
    w = v.model.sweep
    assert w.settings.steps == 40 and v.sweep_button.isEnabled() and not v.sweep_hint.isVisible()
    for b, bias in enumerate((0.0, 0.01)):
        _, ys = v.sweep_curves[bias].getData()
        np.testing.assert_allclose(ys, w.mean[b])
    assert v.sweep_label.text() == w.text and w.mean[0, -1] > w.mean[0, 0]
    with qtbot.waitSignal(v.computed, timeout=30_000):          # another width: the sweep no longer applies
        v.widgets["hidden"].setValue(16)
    assert v.model.sweep is None and v.sweep_hint.isVisible() and "sweep again" in v.sweep_label.text()


def test_an_edit_during_a_sweep_cancels_it_and_no_old_sweep_appears(qtbot, view):
    v = view
    swept = []
    v.swept.connect(lambda: swept.append(v.model.sweep))
    qtbot.mouseClick(v.sweep_button, Qt.MouseButton.LeftButton)
    assert v.sweeping() and not v.sweep_button.isEnabled()
    with qtbot.waitSignal(v.computed, timeout=30_000):          # another width while the sweep runs
        v.widgets["hidden"].setValue(16)
        qtbot.waitUntil(lambda: not v.sweeping(), timeout=5_000)    # cancelled by the edit, not finished
        assert v.sweep_button.isEnabled() and "sweep again" in v.sweep_label.text()
    assert v.model.result.settings.hidden == 16
    qtbot.wait(300)                                              # any late delivery would land here
    assert v.model.sweep is None and swept == [] and v.sweep_hint.isVisible()
    for curve in v.sweep_curves.values():
        xs = curve.getData()[0]
        assert xs is None or len(xs) == 0
    # an edit the sweep does not depend on (the learning rate) leaves it running
    qtbot.mouseClick(v.sweep_button, Qt.MouseButton.LeftButton)
    v.lr_box.setValue(0.3)
    qtbot.wait(400)
    assert v.sweeping() or swept


def test_the_init_lab_trains_the_page_when_it_is_first_shown(qtbot):
    from gui.labs.init_lab import InitLab
    lab = InitLab()
    qtbot.addWidget(lab)
    lab.resize(1280, 760)
    lab.show()
    qtbot.waitExposed(lab)
    try:
        bar = lab.tabs.tabBar()
        k = lab.tabs.indexOf(lab._dying_page)
        assert not lab._dying_page.is_built
        page = lab.dying_view
        assert page.model.result is None
        assert bar.tabText(k) == "Dying ReLU: the 0.01 bias"
        with qtbot.waitSignal(page.computed, timeout=60_000):
            qtbot.mouseClick(bar, Qt.MouseButton.LeftButton, pos=bar.tabRect(k).center())
        assert page.model.result.settings.steps == 300 and "units are dead at initialisation" in \
            page.explain_label.text()
    finally:
        lab.close_lab()
