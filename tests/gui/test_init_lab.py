"""The initialisation / batch-norm lab through its widgets: one histogram per layer, numbers that follow the settings."""
from __future__ import annotations

import time

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt

from gui.labs.init_lab import InitLab
from simulator.labs import init_stats


@pytest.fixture
def lab(qtbot):
    w = InitLab()
    qtbot.addWidget(w)
    w.resize(1500, 900)
    w.show()
    qtbot.waitExposed(w)
    w.width_box.setValue(200)           # quicker than the default 500 x 1000, same lessons
    w.n_box.setValue(400)
    settle(qtbot, w)
    yield w
    w.close_lab()


def settle(qtbot, w: InitLab) -> None:
    qtbot.waitUntil(lambda: not w.is_busy() and w.stats is not None, timeout=15_000)
    qtbot.wait(20)


def test_defaults_and_one_histogram_per_layer(qtbot, lab):
    assert lab.depth_box.value() == 10
    assert lab.stats.width == 200 and lab.stats.depth == 10
    assert lab.act_plot.row_count() == 10 and lab.grad_plot.row_count() == 10
    # every row is a real histogram: non-zero somewhere, and drawn at its own height band
    bases = []
    for row in lab.act_plot.rows[:10]:
        x, y = row.getData()
        assert len(x) == len(y) + 1 and np.ptp(y) > 0     # stepMode edges
        bases.append(y.min())
    assert np.all(np.diff(bases) < 0)                    # layer 1 on top, stacked downwards
    assert lab.table.rowCount() == 10
    assert "σ" in lab.act_plot.labels[0].toPlainText()
    lab.depth_box.setValue(4)
    settle(qtbot, lab)
    assert lab.act_plot.row_count() == 4 and lab.table.rowCount() == 4
    assert not lab.act_plot.rows[5].isVisible()


def test_numbers_follow_init_and_activation(qtbot, lab):
    # gaussian 0.01 + tanh (the default): collapse
    assert lab.init_combo.currentText() == "gaussian 0.01" and lab.activation_combo.currentText() == "tanh"
    std = lab.stats.column("std")
    assert std[-1] < 1e-4 * std[0]
    assert float(lab.table.item(9, 2).text()) == pytest.approx(std[-1], rel=1e-2)
    assert "collapse" in lab.explain_label.text()

    lab.init_combo.setCurrentText("gaussian 1.0")
    settle(qtbot, lab)
    assert lab.stats.init == "gaussian 1.0"
    assert np.all(lab.stats.column("saturated") > 0.8)
    heights = lab.bars[0].opts["height"]
    assert len(heights) == 10 and np.all(np.asarray(heights) > 0.8)
    assert lab.table.item(0, 4).text().endswith("%") and int(lab.table.item(0, 4).text()[:-1]) > 80

    lab.activation_combo.setCurrentText("relu")
    lab.init_combo.setCurrentText("kaiming")
    settle(qtbot, lab)
    std = lab.stats.column("std")
    assert np.all((std > 0.6) & (std < 1.1))
    zero = np.asarray(lab.bars[0].opts["height"])
    assert np.all(np.abs(zero - 0.5) < 0.1)               # half the ReLU outputs are 0
    assert "dead units" in lab.bar_plot.getPlotItem().titleLabel.text
    curve_y = lab.std_curves["std"].getData()[1]          # the plot is log-y: getData gives log10
    assert np.allclose(10 ** curve_y, std)


def test_batchnorm_train_and_eval_modes(qtbot, lab):
    assert not lab.mode_combo.isEnabled()
    lab.bn_check.setChecked(True)
    settle(qtbot, lab)
    assert lab.stats.batchnorm and lab.stats.mode == "train"
    assert np.allclose(lab.stats.column("pre_std"), 1, atol=0.02)   # even from gaussian 0.01
    assert lab.mode_combo.isEnabled()
    assert all(o.getData()[0] is not None and len(o.getData()[0]) for o in lab.act_plot.outlines[:10])  # dashed
    train_gap = lab.stats.column("train_eval_gap")
    lab.mode_combo.setCurrentText("eval")
    settle(qtbot, lab)
    assert lab.stats.mode == "eval"
    assert np.allclose(lab.stats.column("train_eval_gap"), train_gap)
    assert lab.table.item(9, 6).text() != "–"
    lab.warmup_box.setValue(80)
    settle(qtbot, lab)
    assert np.all(lab.stats.column("train_eval_gap") < train_gap)
    assert "running statistics" in lab.explain_label.text()


def test_closing_during_a_big_experiment_returns_quickly(qtbot, monkeypatch):
    # A minutes-long experiment (the size cap lifted for the test): closing cancels it within one layer's work.
    monkeypatch.setattr(init_stats, "MAX_WORK", float("inf"))
    w = InitLab()
    qtbot.addWidget(w)
    for box, v in ((w.width_box, 1000), (w.n_box, 2000), (w.warmup_box, 500)):
        box.setValue(v)
    w.bn_check.setChecked(True)
    qtbot.waitUntil(lambda: w.runner.running("experiment") and not w._debounce.isActive(), timeout=5000)
    assert w.settings().warmup == 500
    handle = w.runner.handles["experiment"]
    t0 = time.perf_counter()
    w.close_lab()
    assert time.perf_counter() - t0 < 2.0
    assert not w.runner.running() and not handle.thread.is_alive()


def test_a_new_experiment_cancels_the_previous_one(qtbot, lab, monkeypatch):
    monkeypatch.setattr(init_stats, "MAX_WORK", float("inf"))
    lab.bn_check.setChecked(True)
    lab.warmup_box.setValue(500)
    qtbot.waitUntil(lambda: lab.runner.running("experiment") and not lab._debounce.isActive(), timeout=5000)
    slow = lab.runner.handles["experiment"]
    lab.warmup_box.setValue(3)
    settle(qtbot, lab)
    assert slow.cancelled and not slow.thread.is_alive()
    assert lab.stats.batchnorm and lab.error_label.isHidden()


def test_too_big_an_experiment_is_refused_inline(qtbot, lab):
    before = lab.stats
    lab.width_box.setValue(1000)
    lab.n_box.setValue(1000)
    lab.bn_check.setChecked(True)
    lab.warmup_box.setValue(500)
    qtbot.waitUntil(lambda: not lab.is_busy(), timeout=15_000)
    qtbot.waitUntil(lambda: lab.error_label.isVisible(), timeout=5000)
    assert "too slow" in lab.error_label.text() and "warm-up" in lab.error_label.text()
    assert "ValueInputError" not in lab.error_label.text()
    assert not lab.runner.running("experiment")          # refused: no experiment was started
    assert lab.stats is before                           # the last results stay on screen
    lab.bn_check.setChecked(False)                       # without batch norm there are no warm-up passes
    qtbot.waitUntil(lambda: not lab.is_busy() and lab.stats is not before, timeout=15_000)
    assert lab.error_label.isHidden() and lab.stats.width == 1000


def test_main_path_click_batch_norm_and_the_text_quotes_the_table(qtbot, lab):
    lab.init_combo.setCurrentText("gaussian 1.0")
    settle(qtbot, lab)
    text = lab.explain_label.text()
    g = lab.stats.column("grad_std")
    assert "grows" in text and "stall" not in text                       # agrees with dL/da growing backwards
    assert lab.table.item(0, 3).text() == f"{g[0]:.3g}" and g[0] > 100 * g[-1]
    box = lab.bn_check                                                  # click its indicator, at the left
    qtbot.mouseClick(box, Qt.MouseButton.LeftButton, pos=QPoint(8, box.height() // 2))
    settle(qtbot, lab)
    assert lab.model.settings.batchnorm and lab.stats.batchnorm
    pre = lab.stats.column("pre_std")
    assert f"{pre.min():.3f}–{pre.max():.3f}" in lab.explain_label.text()


# ------------------------------------------------------------------------------------------- the norm comparison

def _type(qtbot, spin, text: str) -> None:
    spin.setFocus()
    spin.lineEdit().selectAll()
    qtbot.keyClicks(spin.lineEdit(), text)
    qtbot.keyClick(spin.lineEdit(), Qt.Key.Key_Return)


def test_the_norm_comparison_tab_shades_each_norms_set_and_tabulates_its_statistics(qtbot, lab):
    from simulator.labs.init_stats import NORM_KINDS, norm_sets
    bar = lab.tabs.tabBar()
    qtbot.mouseClick(bar, Qt.MouseButton.LeftButton, pos=bar.tabRect(1).center())
    assert lab.tabs.currentIndex() == 1 and lab.norms_view.isVisible()
    view = lab.norms_view
    qtbot.waitUntil(lambda: lab.model.norms is not None and not lab.norms_busy(), timeout=15_000)
    c = lab.model.norms
    assert c.x.shape == (6, 6, 4, 4) and c.groups == 3

    def shaded_by_model(kind):
        sets = norm_sets(kind, c.x.shape, c.groups)
        return {(n, k) for n in range(6) for k in range(6) if sets[n, k] == sets[0, 0]}
    # the paper's figure: BN shades channel 0 of every sample, LN all of sample 0, IN one cell, GN one group
    assert view.cubes.shaded["BatchNorm"] == {(n, 0) for n in range(6)}
    assert view.cubes.shaded["LayerNorm"] == {(0, k) for k in range(6)}
    assert view.cubes.shaded["InstanceNorm"] == {(0, 0)}
    assert view.cubes.shaded["GroupNorm"] == {(0, 0), (0, 1)}
    for kind in NORM_KINDS:
        assert view.cubes.shaded[kind] == shaded_by_model(kind)
    t = view.norm_table
    for r, row in enumerate(c.rows):
        assert t.item(r, 0).text() == row.name
        assert (int(t.item(r, 2).text()), int(t.item(r, 3).text())) == (row.sets, row.per_set)
        assert float(t.item(r, 8).text()) == pytest.approx(row.channel_spread, abs=6e-4)
        assert float(t.item(r, 9).text()) == pytest.approx(row.sample_spread, abs=6e-4)
        assert float(t.item(r, 6).text()) < 1e-10                     # mean 0 over exactly its sets
    assert "GroupNorm: 18 mean/variance statistics" in view.norm_explain.text()
    pixmap = view.cubes.grab()                                         # the cubes are painted, in the shade colour
    img = pixmap.toImage()
    from gui.labs.init_lab import SHADE
    assert any(img.pixelColor(x, y) == SHADE for x in range(0, img.width(), 3) for y in range(0, img.height(), 3))

    # typing G = 2: the GroupNorm set grows to three channels; G = 4 does not divide C = 6 and is refused inline
    _type(qtbot, view.widgets["groups"], "2")
    qtbot.waitUntil(lambda: lab.model.norms is not c and not lab.norms_busy(), timeout=10_000)
    assert view.cubes.shaded["GroupNorm"] == {(0, 0), (0, 1), (0, 2)}
    assert t.item(3, 2).text() == "12" and t.item(3, 3).text() == "48"
    before = lab.model.norms
    _type(qtbot, view.widgets["groups"], "4")
    qtbot.waitUntil(lambda: view.norm_error.isVisible(), timeout=5000)
    assert "6 channels do not split into 4 equal groups" in view.norm_error.text()
    assert lab.model.norms is before and not lab.runner.running("norms")
    _type(qtbot, view.widgets["channels"], "8")                      # 8 channels split into 4 groups
    qtbot.waitUntil(lambda: lab.model.norms is not before and not lab.norms_busy(), timeout=10_000)
    assert view.norm_error.isHidden() and lab.model.norms.x.shape[1] == 8
    assert view.cubes.shaded["GroupNorm"] == {(0, 0), (0, 1)} and t.item(3, 2).text() == "24"


def test_the_activation_explorer_shades_saturation_and_shows_the_zigzag(qtbot, lab):
    bar = lab.tabs.tabBar()
    assert not lab._activations_page.is_built                      # built when first shown, not with the lab
    qtbot.mouseClick(bar, Qt.MouseButton.LeftButton, pos=bar.tabRect(2).center())
    view = lab.activations_view
    assert view.isVisible()
    assert view.current.name == "sigmoid" and len(view.bands) == 2          # both tails of the sigmoid
    xs, ys = view.df_curve.getData()
    assert max(ys) == pytest.approx(0.25)
    assert "at most 0.25" in view.note.text()
    view.combo.setCurrentText("relu")
    assert view.current.name == "relu" and len(view.bands) == 1              # the dead side
    xs, ys = view.f_curve.getData()
    np.testing.assert_allclose(ys, np.maximum(xs, 0))
    pos, cen = view.zigzags
    assert "100% of the steps" in view.zz_note.text() and pos.same_sign == 1.0
    assert len(view.zz_pos.getData()[0]) == len(pos.path)


def test_the_symmetry_view_trains_both_inits_in_a_job(qtbot, lab):
    bar = lab.tabs.tabBar()
    assert not lab._symmetry_page.is_built and not lab.runner.running("symmetry")
    qtbot.mouseClick(bar, Qt.MouseButton.LeftButton, pos=bar.tabRect(3).center())
    view = lab.symmetry_view                   # built by the click, its job started (the result arrives by events)
    assert lab.runner.running("symmetry")
    with qtbot.waitSignal(view.computed, timeout=60_000):
        pass
    r = view.result
    assert r.constant_spread.max() == 0.0 and "exactly 0" in view.note.text()
    assert view.heat[0].image is not None and view.heat[0].image.shape[:2] == r.constant_w.shape
