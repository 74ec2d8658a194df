"""The Playground's transfer-learning, test-time-averaging and preprocessing controls, driven by real clicks."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QCheckBox

from gui.labs.playground import DIGITS
from simulator.data.preprocess import covariance, fit_preprocess
from simulator.labs.transfer import METHODS
from tests.gui.test_playground import lab  # noqa: F401  (the Playground fixture, shared)

LEFT = Qt.MouseButton.LeftButton
SHOTS = Path("/tmp/backprop_transfer_eval")


def click(qtbot, w) -> None:
    if isinstance(w, QCheckBox):         # on the box itself (a wide check box's centre may be past its text)
        qtbot.mouseClick(w, LEFT, pos=QPoint(8, w.height() // 2))
    else:
        qtbot.mouseClick(w, LEFT)


def choose(combo, value) -> None:
    combo.setCurrentIndex(combo.findData(value))




def idle(qtbot, lab) -> None:
    qtbot.waitUntil(lambda: lab.state == "idle" and not lab._rebuild_timer.isActive(), timeout=10_000)


def test_freeze_boxes_train_only_the_unfrozen_layers(qtbot, lab):
    panel = lab.freeze_panel
    assert list(panel.boxes) == ["fc1", "fc2"] and panel.boxes["fc2"].text().endswith("(output)")
    click(qtbot, panel.boxes["fc1"])
    assert lab.model.frozen == ("fc1",) and panel.boxes["fc1"].isChecked()
    idle(qtbot, lab)
    assert lab.session.network.frozen == {"fc1"}
    before = lab.session.network.state_dict()
    click(qtbot, lab.train_button)
    qtbot.waitUntil(lambda: lab.state == "finished", timeout=30_000)
    after = lab.session.network.state_dict()
    for k in ("fc1.w", "fc1.b"):
        assert after[k].tobytes() == before[k].tobytes()
    assert not np.array_equal(after["fc2.w"], before["fc2.w"])
    # freezing the output layer too would leave nothing to train: refused, shown, and the box unticked again
    click(qtbot, panel.boxes["fc2"])
    assert "nothing to train" in panel.error_label.text() and panel.error_label.isVisible()
    assert not panel.boxes["fc2"].isChecked() and lab.model.frozen == ("fc1",)
    click(qtbot, panel.all_button)
    assert lab.model.frozen == () and not panel.boxes["fc1"].isChecked() and not panel.error_label.isVisible()
    # a deeper stack: Linear probe freezes all but the output layer
    lab.builder.select_layer(1)
    lab.builder.add_combo.setCurrentText("Linear")
    click(qtbot, lab.builder.add_button)
    qtbot.waitUntil(lambda: list(panel.boxes) == ["fc1", "fc2", "fc3"], timeout=5000)
    click(qtbot, panel.probe_button)
    assert lab.model.frozen == ("fc1", "fc2")
    assert [b.isChecked() for b in panel.boxes.values()] == [True, True, False]
    idle(qtbot, lab)
    assert lab.session.trainer.param_names == ["fc3.w", "fc3.b"]


def test_evaluate_button_shows_plain_tta_and_mc_accuracy(qtbot, lab):
    ev = lab.evaluate_panel
    lab.builder.select_layer(1)
    lab.builder.add_combo.setCurrentText("Dropout")
    click(qtbot, lab.builder.add_button)
    idle(qtbot, lab)
    click(qtbot, lab.train_button)
    qtbot.waitUntil(lambda: lab.state == "finished", timeout=30_000)
    ev.passes_box.setValue(7)
    click(qtbot, ev.evaluate_button)
    qtbot.waitUntil(lambda: ev.result is not None and ev.evaluate_button.isEnabled(), timeout=20_000)
    r = ev.result
    Xv, yv = lab.training_data()[2], lab.training_data()[3]
    assert r.n == len(Xv) and r.passes == 7 and r.random_layers == 1
    assert r.plain == pytest.approx(lab.session.network.accuracy(Xv, yv))
    assert ev.plain_label.text() == f"{r.plain:.1%}"
    assert ev.tta_label.text() == "—" and "not for 2-D points" in ev.note_label.text()
    assert ev.mc_label.text().startswith(f"{r.mc:.1%}")


def test_evaluate_panel_says_mc_dropout_does_not_apply_to_the_small_resnet_preset(qtbot):
    # stochastic depth and fractional max pooling draw from seeds, but there is no dropout: no MC pass, no gain shown
    from gui.jobs import JobRunner
    from gui.labs.evaluate_panel import EvaluatePanel
    from gui.labs.network_builder import PRESETS
    from simulator.nn.evaluation import evaluation_job
    from simulator.nn.layers import Linear
    from simulator.nn.network import Network

    net = Network((1, 8, 8), [*PRESETS["Small ResNet"], Linear(3)], seed=0)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((30, 1, 8, 8)), rng.integers(0, 3, 30)
    runner = JobRunner()
    panel = EvaluatePanel(runner, lambda s: evaluation_job(net, x, y, s))
    qtbot.addWidget(panel)
    panel.show()
    click(qtbot, panel.evaluate_button)
    qtbot.waitUntil(lambda: panel.result is not None and panel.evaluate_button.isEnabled(), timeout=20_000)
    r = panel.result
    assert r.random_layers == 0 and np.isnan(r.mc) and not np.isnan(r.tta)
    assert panel.mc_label.text() == "—" and panel.plain_label.text() == f"{r.plain:.1%}"
    assert "MC dropout does not apply" in panel.note_label.text()
    assert "MC dropout over" not in panel.note_label.text()
    runner.close()


def test_evaluate_on_digits_averages_the_views(qtbot, lab):
    lab.dataset_combo.setCurrentText(DIGITS)
    qtbot.waitUntil(lambda: lab.kind == "digits" and lab.state == "idle", timeout=30_000)
    lab.points_box.setValue(400)
    lab.epochs_box.setValue(1)
    qtbot.waitUntil(lambda: lab.state == "idle" and len(lab.X_raw) == 400, timeout=30_000)
    idle(qtbot, lab)
    ev = lab.evaluate_panel
    choose(ev.tta_combo, "shifts + flip")
    ev.passes_box.setValue(2)
    click(qtbot, ev.evaluate_button)
    qtbot.waitUntil(lambda: ev.result is not None, timeout=30_000)
    r = ev.result
    assert len(r.views) == 6 and "flip" in r.views and ev.tta_label.text().startswith(f"{r.tta:.1%}")
    assert r.random_layers == 0 and np.isnan(r.mc) and ev.mc_label.text() == "—"
    assert "MC dropout does not apply" in ev.note_label.text() and "MC dropout over" not in ev.note_label.text()
    # PCA whitening is for points: refused on the digits, and never chosen with them
    choose(lab.preprocess_combo, "PCA whiten")
    assert "PCA whitening is offered for the 2-D points" in lab.data_form.error.text()


def test_pca_whitening_uses_training_statistics_for_validation_and_the_grid(qtbot, lab):
    choose(lab.preprocess_combo, "PCA whiten")
    idle(qtbot, lab)
    Xtr, _, Xv, _ = lab.training_data()
    Xtr_raw, _, Xv_raw, _ = lab.split_raw
    assert np.abs(covariance(Xtr) - np.eye(2)).max() < 1e-10
    w = fit_preprocess(Xtr_raw, "PCA whiten")
    np.testing.assert_allclose(Xv, w.apply(Xv_raw), rtol=1e-12)
    pts = np.array([[0.0, 0.0], [0.5, -0.3]])
    np.testing.assert_allclose(lab.session.transform(pts), w.apply(pts), rtol=1e-12)
    assert "PCA whiten" in lab.stats_label.text()
    choose(lab.preprocess_combo, "zero-centre")
    Xtr = lab.training_data()[0]
    np.testing.assert_allclose(Xtr.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(Xtr, Xtr_raw - Xtr_raw.mean(axis=0), rtol=1e-12)
    assert "zero-centred with the training mean" in lab.stats_label.text()


def test_preprocess_preview_opens_and_follows_its_data_set(qtbot, lab):
    click(qtbot, lab.preprocess_button)
    dlg = lab.preprocess_dialog
    qtbot.waitExposed(dlg)
    v = dlg.view
    first = v.stages["original"].X.copy()
    choose(v.dataset_combo, "moons")
    assert v.stages["original"].X.shape == (300, 2) and not np.array_equal(v.stages["original"].X[:5], first[:5])
    assert v.plots[(1, 2)].caption.text().replace(" ", "") == "cov=[1.0000.000]\n[0.0001.000]"
    x, y = v.plots[(1, 2)].after.getData()
    assert np.allclose(np.hypot(x, y), 2.0)                   # whitened: the 2-sigma ellipse is a circle of radius 2
    v.points_box.setValue(2)
    assert v.stages["original"].X.shape == (2, 2)
    click(qtbot, lab.preprocess_button)
    assert lab.preprocess_dialog is dlg
    SHOTS.mkdir(exist_ok=True)
    assert dlg.grab().save(str(SHOTS / "preprocess.png"))
    dlg.close()


def test_transfer_experiment_draws_a_curve_per_method_and_cancels(qtbot, lab):
    click(qtbot, lab.freeze_panel.experiment_button)
    dlg = lab.freeze_panel.transfer_dialog
    qtbot.waitExposed(dlg)
    v = dlg.view
    f = v.form.widgets
    f["hidden"].setValue(8)
    f["pretrain_epochs"].setValue(1)
    f["steps"].setValue(3)
    choose(f["counts"], "5, 10, 20, 50, 100")
    click(qtbot, v.run_button)
    assert not v.run_button.isEnabled() and v.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: v.result is not None, timeout=60_000)
    for m in METHODS:
        _, ys = v.curves[m].getData()
        assert [c for c, _ in v.points[m]] == [5, 10, 20, 50, 100]
        np.testing.assert_allclose([a for _, a in v.points[m]], v.result.accuracy[m])
        assert len(ys) == 5
    assert v.status_label.text() == "done" and v.run_button.isEnabled()
    assert f"{v.result.accuracy['scratch'][-1]:.1%}" in v.summary_label.text()
    SHOTS.mkdir(exist_ok=True)
    assert dlg.grab().save(str(SHOTS / "transfer.png"))
    # run again and cancel: the job stops and says so
    click(qtbot, v.run_button)
    click(qtbot, v.cancel_button)
    qtbot.waitUntil(lambda: v.run_button.isEnabled(), timeout=10_000)
    assert v.status_label.text().startswith("cancelled") and v.result is None
    dlg.close()


def test_a_freeze_follows_its_layer_when_one_is_inserted_above_it_and_says_so(qtbot, lab):
    panel = lab.freeze_panel
    click(qtbot, panel.boxes["fc1"])
    idle(qtbot, lab)
    frozen_spec = lab.session.network.layers[0].spec
    assert not panel.notice_label.isVisible()
    lab.builder.add_layer("Linear", 0)                  # a new first layer: the frozen one becomes fc2
    qtbot.waitUntil(lambda: list(panel.boxes) == ["fc1", "fc2", "fc3"], timeout=5000)
    assert [b.isChecked() for b in panel.boxes.values()] == [False, True, False]
    assert lab.model.frozen == ("fc2",)
    assert panel.notice_label.isVisible() and "frozen fc1 is now fc2" in panel.notice_label.text()
    idle(qtbot, lab)
    layer = {l.name: l for l in lab.session.network.layers}["fc2"]
    assert lab.session.network.frozen == {"fc2"} and layer.spec == frozen_spec
    assert "frozen fc1 is now fc2" in lab.status_label.text()
    # removing the frozen layer unfreezes it (its name now belongs to the output layer) and says so
    lab.builder.remove_layer(1)
    qtbot.waitUntil(lambda: list(panel.boxes) == ["fc1", "fc2"], timeout=5000)
    assert lab.model.frozen == () and not any(b.isChecked() for b in panel.boxes.values())
    assert "was removed or replaced: no longer frozen" in panel.notice_label.text()
