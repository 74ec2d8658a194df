"""Lecture 8's training tricks in the Playground, driven through real widgets (issue 13): label smoothing and the loss
floor it draws, the linear-scaling hint for the learning rate, and mixup / CutMix from the augmentation preview
trained for real. Pictures of the Playground at 1280x800 and 1920x1080 are saved under /tmp for a look."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QSettings, QStandardPaths, Qt

from gui.labs.playground import DIGITS
from simulator.functional.layers import smoothed_entropy
from tests.gui.test_playground import lab  # noqa: F401  (the Playground fixture, shared)

LEFT = Qt.MouseButton.LeftButton
SHOTS = Path("/tmp/backprop_playground_tricks")


def type_into(qtbot, box, text: str) -> None:
    """Select the spin box's text and type a new value, then Enter: what a learner does."""
    box.setFocus()
    box.lineEdit().selectAll()
    qtbot.keyClicks(box.lineEdit(), text)
    qtbot.keyClick(box.lineEdit(), Qt.Key.Key_Return)


def indicator(button) -> QPoint:
    """Where a check box's or radio button's box is drawn (its row may be much wider than its text)."""
    return QPoint(8, button.height() // 2)


def settle(qtbot, lab, state="idle", timeout=10_000) -> None:
    qtbot.waitUntil(lambda: not lab._rebuild_timer.isActive() and lab.state == state, timeout=timeout)




def test_label_smoothing_control_trains_and_draws_the_floor(qtbot, lab):
    assert lab.smoothing_box.isVisible() and not lab.floor_line.isVisible()
    type_into(qtbot, lab.smoothing_box, "0.2")
    settle(qtbot, lab)
    net = lab.session.network
    assert net.label_smoothing == pytest.approx(0.2) and net.num_classes == 3
    floor = smoothed_entropy(3, 0.2)
    assert lab.loss_floor == pytest.approx(floor, rel=1e-12)
    assert lab.floor_line.isVisible() and lab.floor_line.value() == pytest.approx(math.log10(floor))
    assert lab.floor_line.label.toPlainText() == "floor 0.485"         # H(3 classes, ε = 0.2) = 0.4851
    legend = [label.text for _, label in lab.loss_plot.getPlotItem().legend.items]
    assert "min. loss" in legend
    assert f"{floor:.4g}" in lab.loss_plot.toolTip() and "ε = 0.2" in lab.loss_plot.toolTip()
    lo, hi = lab.loss_plot.getPlotItem().getViewBox().viewRange()[1]
    assert lo <= math.log10(floor) <= hi                               # the floor is on the plot

    qtbot.mouseClick(lab.train_button, LEFT)
    qtbot.waitUntil(lambda: lab.state in ("finished", "failed"), timeout=30_000)
    assert lab.state == "finished", lab.error_message
    h = lab.session.trainer.history
    assert np.all(h.loss > floor) and np.all(h.train_loss > floor)    # never below the target's entropy

    # the SVM cannot take a smoothed target: the builder says so and nothing trains
    lab.builder.loss_combo.setCurrentIndex(lab.builder.loss_combo.findData("svm"))
    settle(qtbot, lab, "none")
    assert "label smoothing applies to the softmax" in lab.builder.error()
    # back to 0: no floor
    lab.builder.loss_combo.setCurrentIndex(lab.builder.loss_combo.findData("softmax"))
    type_into(qtbot, lab.smoothing_box, "0")
    settle(qtbot, lab)
    assert lab.loss_floor == 0.0 and not lab.floor_line.isVisible()
    assert "min. loss" not in [label.text for _, label in lab.loss_plot.getPlotItem().legend.items]


def test_batch_size_change_offers_the_linear_scaling_rule(qtbot, lab):
    assert not lab.lr_hint.isVisible()
    lr0 = lab.model.train.lr
    type_into(qtbot, lab.batch_box, "128")
    qtbot.waitUntil(lambda: lab.lr_hint.isVisible(), timeout=3000)
    hint = lab.lr_hint_offer
    assert hint.factor == 4 and hint.new_lr == pytest.approx(4 * lr0)
    assert "batch ×4 → lr ×4" in lab.lr_hint_label.text() and "warm-up" in lab.lr_hint_label.text()
    assert lab.model.train.lr == lr0                                    # only a hint: nothing changed yet
    qtbot.mouseClick(lab.lr_hint_apply, LEFT)
    assert not lab.lr_hint.isVisible()
    assert lab.model.train.lr == pytest.approx(4 * lr0) and lab.lr_box.value() == pytest.approx(4 * lr0)
    assert lab.schedule_combo.currentData() == "Constant"
    assert lab.schedule_boxes["warmup_steps"].value() == hint.warmup_steps > 0
    assert lab.schedule_boxes["start_factor"].value() == pytest.approx(0.25)
    settle(qtbot, lab)
    sched = lab.session.trainer.schedule
    assert sched.lr_at(0) == pytest.approx(lr0) and sched.lr_at(hint.warmup_steps) == pytest.approx(4 * lr0)

    # halving the batch: lr ÷ 2, no warm-up needed (one is set anyway); dismissing keeps the rate
    type_into(qtbot, lab.batch_box, "64")
    qtbot.waitUntil(lambda: lab.lr_hint.isVisible(), timeout=3000)
    assert "batch ÷2 → lr ÷2" in lab.lr_hint_label.text() and lab.lr_hint_offer.warmup_steps == 0
    assert lab.lr_hint_apply.text() == "Apply lr"
    qtbot.mouseClick(lab.lr_hint_close, LEFT)
    assert not lab.lr_hint.isVisible() and lab.model.train.lr == pytest.approx(4 * lr0)
    # typing a rate makes it the reference: no hint for the batch it was typed at
    type_into(qtbot, lab.batch_box, "32")
    qtbot.waitUntil(lambda: lab.lr_hint.isVisible(), timeout=3000)
    type_into(qtbot, lab.lr_box, "0.005")
    qtbot.waitUntil(lambda: not lab.lr_hint.isVisible(), timeout=3000)


def test_mixing_set_in_the_preview_is_trained_with(qtbot, lab):
    lab.dataset_combo.setCurrentText(DIGITS)
    lab.points_box.setValue(300)
    lab.epochs_box.setValue(1)
    settle(qtbot, lab, timeout=30_000)
    qtbot.mouseClick(lab.augment_check, LEFT)
    assert lab.model.train.augment and lab.augment_label.isVisible()
    assert lab.augment_label.text() == "trains with: shift → rotate"
    qtbot.mouseClick(lab.augment_button, LEFT)
    qtbot.waitUntil(lambda: lab.augment_dialog is not None and lab.augment_dialog.isVisible(), timeout=30_000)
    view = lab.augment_dialog.view
    assert view.settings() == lab.model.augment_settings                # the preview shows what training uses
    qtbot.mouseClick(view.rotate_check, LEFT, pos=indicator(view.rotate_check))     # rotation off
    qtbot.mouseClick(view.mix_radios["cutmix"], LEFT, pos=indicator(view.mix_radios["cutmix"]))
    s = lab.model.augment_settings
    assert s.mix == "cutmix" and not s.rotate_on and s == view.settings()
    assert lab.augment_label.text().startswith("trains with: shift → CutMix (soft labels")
    settle(qtbot, lab)
    assert lab.training_augmenter() == s and lab.session.trainer.mixes_labels
    qtbot.mouseClick(lab.train_button, LEFT)
    qtbot.waitUntil(lambda: lab.state in ("finished", "failed"), timeout=60_000)
    assert lab.state == "finished", lab.error_message
    t = lab.session.trainer
    assert t.last_targets.shape[1] == 10 and np.allclose(t.last_targets.sum(axis=1), 1.0)
    assert np.mean(t.last_targets.max(axis=1) < 1) > 0.5              # the labels really were mixed
    assert np.all(np.isfinite(t.history.loss)) and np.all(np.isfinite(t.history.accuracy))
    SHOTS.mkdir(parents=True, exist_ok=True)
    assert lab.augment_dialog.grab().save(str(SHOTS / "augment_preview_cutmix.png"))
    lab.augment_dialog.close()
    lab.left.ensureWidgetVisible(lab.augment_label)
    qtbot.wait(50)
    assert lab.grab().save(str(SHOTS / "playground_digits_cutmix.png"))


@pytest.mark.parametrize("size", [(1280, 800), (1920, 1080)], ids=["1280x800", "1920x1080"])
def test_playground_pictures_with_the_tricks_on(qtbot, tmp_path, size):
    from gui.main_window import MainWindow
    from tests.gui.test_fit import _overflowing_plots
    QStandardPaths.setTestModeEnabled(True)
    w = MainWindow(settings=QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat), warm_up=False, recovery=False)
    w.resize(*size)
    w.show()
    qtbot.waitExposed(w)
    try:
        lab = w.open_lab("Playground")
        settle(qtbot, lab, timeout=20_000)
        lab.epochs_box.setValue(30)
        type_into(qtbot, lab.smoothing_box, "0.1")
        type_into(qtbot, lab.batch_box, "64")
        qtbot.waitUntil(lambda: lab.lr_hint.isVisible(), timeout=3000)
        settle(qtbot, lab)
        lab.left.ensureWidgetVisible(lab.lr_hint)
        qtbot.mouseClick(lab.train_button, LEFT)
        qtbot.waitUntil(lambda: lab.state == "finished", timeout=60_000)
        qtbot.wait(150)
        assert lab.floor_line.isVisible() and lab.lr_hint.isVisible()
        hint = lab.minimumSizeHint()
        page = w.tabs.currentWidget()
        assert hint.width() <= page.width() and hint.height() <= page.height()
        assert _overflowing_plots(lab) == []
        # the hint's text and buttons are inside the left column, not cut off on the right
        col = lab.left.viewport()
        for widget in (lab.lr_hint_label, lab.lr_hint_apply, lab.lr_hint_close):
            right = widget.mapTo(col, widget.rect().topRight()).x()
            assert right <= col.width(), widget
        SHOTS.mkdir(parents=True, exist_ok=True)
        assert w.grab().save(str(SHOTS / f"playground_{size[0]}x{size[1]}.png"))
        lab.left.ensureWidgetVisible(lab.smoothing_box)
        qtbot.wait(50)
        right = lab.smoothing_box.mapTo(col, lab.smoothing_box.rect().topRight()).x()
        assert lab.smoothing_box.isVisible() and right <= col.width()
        assert w.grab().save(str(SHOTS / f"playground_smoothing_{size[0]}x{size[1]}.png"))
    finally:
        w.undo_stack.setClean()
        w.close()
        w.deleteLater()
