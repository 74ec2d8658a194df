"""The initialisation / batch-norm lab through its widgets: one histogram per layer, numbers that follow the settings."""
from __future__ import annotations

import numpy as np
import pytest

from gui.labs.init_lab import InitLab


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
    assert not lab.eval_radio.isEnabled()
    lab.bn_check.setChecked(True)
    settle(qtbot, lab)
    assert lab.stats.batchnorm and lab.stats.mode == "train"
    assert np.allclose(lab.stats.column("pre_std"), 1, atol=0.02)   # even from gaussian 0.01
    assert lab.eval_radio.isEnabled()
    assert all(o.getData()[0] is not None and len(o.getData()[0]) for o in lab.act_plot.outlines[:10])  # dashed
    train_gap = lab.stats.column("train_eval_gap")
    lab.eval_radio.setChecked(True)
    settle(qtbot, lab)
    assert lab.stats.mode == "eval"
    assert np.allclose(lab.stats.column("train_eval_gap"), train_gap)
    assert lab.table.item(9, 6).text() != "–"
    lab.warmup_box.setValue(80)
    settle(qtbot, lab)
    assert np.all(lab.stats.column("train_eval_gap") < train_gap)
    assert "running statistics" in lab.explain_label.text()
