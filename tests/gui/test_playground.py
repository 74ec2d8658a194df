"""The training playground and its network builder, driven through real widgets: clicks, training, pause, errors."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt, QTimer
from PySide6.QtWidgets import QFileDialog, QMessageBox

from gui.labs.network_builder import NetworkBuilder
from gui.labs.playground import DIGITS, GRAPH_BATCH, PlaygroundLab
from simulator import Graph, Trace
from simulator.nn.network import Activation, Conv2d, Linear

LEFT = Qt.MouseButton.LeftButton


def click(qtbot, button) -> None:
    qtbot.mouseClick(button, LEFT)


def table_column(builder: NetworkBuilder, col: int) -> list[str]:
    t = builder.table
    return [t.item(r, col).text() for r in range(t.rowCount())]


@pytest.fixture
def lab(qtbot):
    w = PlaygroundLab()
    qtbot.addWidget(w)
    w.resize(1500, 900)
    w.show()
    qtbot.waitExposed(w)
    w.points_box.setValue(150)          # small and quick
    w.epochs_box.setValue(5)
    qtbot.waitUntil(lambda: w.state == "idle" and not w._rebuild_timer.isActive(), timeout=30_000)
    yield w
    w.close_lab()


def wait_done(qtbot, lab: PlaygroundLab, timeout: int = 20_000) -> None:
    qtbot.waitUntil(lambda: lab.state in ("finished", "failed"), timeout=timeout)


# ---------------------------------------------------------------------------------------------------- the builder

def test_builder_add_remove_reorder_updates_shapes_and_refuses_impossible_stacks(qtbot):
    b = NetworkBuilder(input_shape=(2,), num_classes=3)
    qtbot.addWidget(b)
    b.show()
    changes = []
    b.stack_changed.connect(lambda: changes.append(1))
    assert table_column(b, 1) == ["Input", "Linear 64", "ReLU", "Linear 3 (output)"]
    assert table_column(b, 2) == ["2", "64", "64", "3"]
    assert table_column(b, 3)[1:] == ["192", "–", "195"]

    # add a Linear below the ReLU, set its units through its form, then a tanh
    b.select_layer(1)
    b.add_combo.setCurrentText("Linear")
    click(qtbot, b.add_button)
    assert table_column(b, 1)[3] == "Linear 32"
    units = b.field_widget("n")
    units.setValue(16)
    assert table_column(b, 2)[3:] == ["16", "3"]
    assert table_column(b, 3)[3:] == ["1,040", "51"]
    assert b.summary_label.text().endswith(f"{192 + 1040 + 51:,} parameters")
    b.add_combo.setCurrentText("Activation")
    click(qtbot, b.add_button)
    b.field_widget("name").setCurrentText("tanh")
    assert table_column(b, 1)[1:] == ["Linear 64", "ReLU", "Linear 16", "Tanh", "Linear 3 (output)"]

    # reorder: move the tanh up twice, then down once
    click(qtbot, b.up_button)
    click(qtbot, b.up_button)
    assert table_column(b, 1)[1:5] == ["Linear 64", "Tanh", "ReLU", "Linear 16"]
    click(qtbot, b.down_button)
    assert table_column(b, 1)[1:5] == ["Linear 64", "ReLU", "Tanh", "Linear 16"]
    assert b.selected_layer() == 2

    # remove it
    click(qtbot, b.remove_button)
    assert table_column(b, 1)[1:] == ["Linear 64", "ReLU", "Linear 16", "Linear 3 (output)"]
    assert b.is_valid() and b.error_label.isHidden()

    # an impossible stack: a Conv2d on 2-D points is refused inline, in red, naming the layer
    b.select_layer(0)
    b.add_combo.setCurrentText("Conv2d")
    click(qtbot, b.add_button)
    assert not b.is_valid()
    assert b.error_label.isVisible()
    assert "layer 2 (Conv2d" in b.error_label.text() and "Conv2d needs an image" in b.error_label.text()
    assert "c8372d" in b.error_label.styleSheet()
    assert table_column(b, 2)[1:] == ["?"] * 5
    click(qtbot, b.remove_button)
    assert b.is_valid() and b.error_label.isHidden()
    assert len(changes) >= 8

    # images: the Small CNN preset; then without Flatten the output Linear is refused
    b.set_data_shape((1, 8, 8), 10)
    b.load_preset("Small CNN")
    assert table_column(b, 2) == ["1×8×8", "16×8×8", "16×8×8", "16×4×4", "256", "10"]
    b.select_layer(3)
    click(qtbot, b.remove_button)
    assert not b.is_valid() and "Flatten" in b.error()
    net_layers = [*b.hidden_layers()]
    assert isinstance(net_layers[0], Conv2d)


def test_builder_settings_reach_the_network(qtbot):
    b = NetworkBuilder()
    qtbot.addWidget(b)
    b.set_layers([Linear(8), Activation("tanh")])
    b.select_layer(0)
    b.field_widget("init").setCurrentIndex(b.field_widget("init").findData("xavier"))
    b.loss_combo.setCurrentIndex(b.loss_combo.findData("svm"))
    b.reg_box.setValue(1e-3)
    b.reg_kind_combo.setCurrentIndex(1)
    net = b.build_network(seed=1)
    assert net.specs[0] == Linear(8, init="xavier")
    assert (net.loss_kind, net.reg, net.reg_kind) == ("svm", 1e-3, "l1")
    assert "xavier" in table_column(b, 1)[1]


# ---------------------------------------------------------------------------------------------------- training

def test_train_spiral_fills_plots_and_changes_the_regions(qtbot, lab):
    assert lab.dataset_combo.currentText() == "spiral"
    qtbot.waitUntil(lambda: lab.visuals is not None, timeout=5000)
    before = lab.region_item.image.copy()
    assert before.shape[2] == 4
    states = []
    lab.training_state_changed.connect(states.append)
    click(qtbot, lab.train_button)
    wait_done(qtbot, lab)
    assert lab.state == "finished" and lab.banner.isHidden()
    qtbot.waitUntil(lambda: lab.visuals.iteration == lab.iteration, timeout=5000)
    n_train = len(lab.training_data()[0])
    steps = 5 * -(-n_train // lab.batch_box.value())
    assert lab.iteration == steps
    x, y = lab.curves["loss"].getData()
    assert len(x) == steps and np.all(np.isfinite(y))
    for k in ("train_loss", "val_loss", "train_accuracy", "val_accuracy"):
        assert len(lab.curves[k].getData()[0]) == 5, k
    assert len(lab.curves["lr"].getData()[0]) == steps
    assert set(lab.grad_curves) == {"fc1", "fc2"}
    assert lab.curves["val_accuracy"].getData()[1][-1] > 0.4          # better than chance (1/3) already
    after = lab.region_item.image
    assert after.shape == before.shape and np.abs(after.astype(int) - before.astype(int)).sum() > 0
    assert states[0] == "running" and states[-1] == "finished"
    assert "epoch 5/5" in lab.status_label.text()


def round_trip(qtbot, lab: PlaygroundLab) -> None:
    """Ask for pictures of the paused weights and wait until they are drawn: the visuals job takes the session's
    lock, so any update in flight has finished; then wait until every update the trainer made has been delivered.
    No wall-clock waits."""
    n = lab.visual_updates
    lab.request_visuals()
    qtbot.waitUntil(lambda: lab.visual_updates > n, timeout=20_000)
    qtbot.waitUntil(lambda: lab.iteration == lab.trained_iterations, timeout=20_000)


def test_pause_resume_and_step(qtbot, lab):
    lab.epochs_box.setValue(100_000)
    qtbot.waitUntil(lambda: not lab._rebuild_timer.isActive() and lab.state == "idle", timeout=5000)
    click(qtbot, lab.step_button)
    qtbot.waitUntil(lambda: lab.iteration == 1, timeout=10_000)
    assert lab.state == "paused"
    round_trip(qtbot, lab)
    round_trip(qtbot, lab)
    assert lab.iteration == 1 and lab.trained_iterations == 1   # exactly one update
    click(qtbot, lab.resume_button)
    qtbot.waitUntil(lambda: lab.iteration > 20, timeout=20_000)
    click(qtbot, lab.pause_button)
    assert lab.state == "paused"
    round_trip(qtbot, lab)                               # the update in flight (if any) is done and drained
    frozen = lab.iteration
    assert frozen == lab.trained_iterations
    round_trip(qtbot, lab)
    round_trip(qtbot, lab)
    assert lab.iteration == frozen == lab.trained_iterations   # paused: the count stays put
    assert not lab.pause_button.isEnabled() and lab.resume_button.isEnabled()
    click(qtbot, lab.resume_button)
    qtbot.waitUntil(lambda: lab.iteration > frozen + 10, timeout=20_000)   # resumed: it grows again
    click(qtbot, lab.pause_button)
    round_trip(qtbot, lab)
    n = lab.iteration
    click(qtbot, lab.step_button)
    qtbot.waitUntil(lambda: lab.iteration == n + 1, timeout=10_000)
    round_trip(qtbot, lab)
    assert lab.iteration == n + 1 == lab.trained_iterations
    click(qtbot, lab.reset_button)
    assert lab.iteration == 0 and lab.state == "idle" and lab.trained_iterations == 0
    x, _ = lab.curves["loss"].getData()
    assert x is None or len(x) == 0
    assert lab.jobs.state("train") is None                  # the run was cancelled, not just paused


def test_gui_stays_responsive_while_training(qtbot, lab):
    lab.epochs_box.setValue(100_000)
    qtbot.waitUntil(lambda: not lab._rebuild_timer.isActive(), timeout=5000)
    click(qtbot, lab.train_button)
    qtbot.waitUntil(lambda: lab.iteration > 10, timeout=20_000)
    # the GUI thread keeps serving its own timer while the worker trains (a blocked GUI would time out here)
    ticks = []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(lab.iteration))
    timer.start()
    try:
        qtbot.waitUntil(lambda: len(ticks) >= 20, timeout=20_000)
    finally:
        timer.stop()
    assert lab.state == "running"
    # the plots and the regions keep coming while training: newer pictures of newer weights
    it, shown, redraws = lab.iteration, lab.visuals.iteration, lab.redraw_count
    qtbot.waitUntil(lambda: lab.iteration > it + 20 and lab.visuals.iteration > max(shown, it), timeout=20_000)
    assert lab.state == "running" and lab.redraw_count > redraws
    # the loss curve ends at the newest update shown and starts at the first one (decimated or not)
    x, y = lab.curves["loss"].getData()
    assert x[0] == 1 and x[-1] == lab.iteration and np.all(np.diff(x) > 0) and np.all(np.isfinite(y))
    click(qtbot, lab.pause_button)


def test_a_failure_while_drawing_stops_the_run_with_a_banner(qtbot, lab, monkeypatch):
    import simulator.labs.playground as model_module

    def broken(session, image_index=None):
        raise RuntimeError("no pictures today")

    monkeypatch.setattr(model_module, "compute_visuals", broken)
    lab.epochs_box.setValue(100_000)
    qtbot.waitUntil(lambda: not lab._rebuild_timer.isActive() and lab.state == "idle", timeout=5000)
    click(qtbot, lab.train_button)
    wait_done(qtbot, lab)
    assert lab.state == "failed" and lab.jobs.state("train") is None     # the job ended; Reset or Train again
    qtbot.waitUntil(lambda: lab.banner.isVisible(), timeout=5000)
    text = lab.banner.text()
    assert "Training stopped after iteration" in text and "RuntimeError: no pictures today" in text
    assert lab.train_button.isEnabled() and not lab.pause_button.isEnabled()


def test_huge_learning_rate_stops_with_a_banner_naming_the_layer(qtbot, lab):
    lab.optimizer_combo.setCurrentText("SGD")
    lab.lr_box.setValue(1e9)
    qtbot.waitUntil(lambda: not lab._rebuild_timer.isActive(), timeout=3000)
    click(qtbot, lab.train_button)
    wait_done(qtbot, lab)
    assert lab.state == "failed"
    qtbot.waitUntil(lambda: lab.banner.isVisible(), timeout=3000)
    text = lab.banner.text()
    assert "Training stopped at iteration" in text and "layer" in text and "(Linear" in text
    assert "NaN" in text or "non-finite" in text
    assert lab.train_button.isEnabled() and not lab.pause_button.isEnabled()
    # training again after fixing the rate works and clears the banner
    lab.lr_box.setValue(0.01)
    click(qtbot, lab.reset_button)
    assert lab.banner.isHidden()


def test_impossible_stack_disables_training(qtbot, lab):
    b = lab.builder
    b.select_layer(0)
    b.add_combo.setCurrentText("MaxPool")
    click(qtbot, b.add_button)
    qtbot.waitUntil(lambda: lab.state == "none", timeout=3000)
    assert not lab.train_button.isEnabled() and not lab.step_button.isEnabled()
    assert b.error_label.isVisible() and "pooling needs an image" in b.error_label.text()
    click(qtbot, b.remove_button)
    qtbot.waitUntil(lambda: lab.state == "idle", timeout=3000)
    assert lab.train_button.isEnabled()


def test_clicks_add_and_remove_points(qtbot, lab):
    n = len(lab.X_raw)
    lab.click_class_combo.setCurrentIndex(2)
    vb = lab.data_plot.getPlotItem().getViewBox()
    x0, x1, y0, y1 = lab.grid
    target = QPointF(x0 + 0.9 * (x1 - x0), y0 + 0.9 * (y1 - y0))
    pos = lab.data_plot.mapFromScene(vb.mapViewToScene(target))
    qtbot.mouseClick(lab.data_plot.viewport(), LEFT, pos=pos)
    qtbot.waitUntil(lambda: len(lab.X_raw) == n + 1, timeout=2000)
    assert lab.y_raw[-1] == 2
    assert np.allclose(lab.X_raw[-1], [target.x(), target.y()], atol=0.05 * (x1 - x0))
    qtbot.mouseClick(lab.data_plot.viewport(), Qt.MouseButton.RightButton, pos=pos)
    qtbot.waitUntil(lambda: len(lab.X_raw) == n, timeout=2000)
    assert not np.any(np.all(np.isclose(lab.X_raw, lab.X_raw[-1]), axis=1)[:-1])


def test_standardisation_is_shown_and_optional(qtbot, lab):
    Xtr = lab.training_data()[0]
    assert np.allclose(Xtr.mean(axis=0), 0, atol=1e-9) and np.allclose(Xtr.std(axis=0), 1)
    s = lab.standardizer
    assert f"{s.mean[0]:+.3f}" in lab.stats_label.text() and f"{s.std[1]:.3f}" in lab.stats_label.text()
    lab.preprocess_combo.setCurrentIndex(lab.preprocess_combo.findData("none"))
    assert lab.standardizer is None and "not standardised" in lab.stats_label.text()
    assert np.allclose(lab.training_data()[0], lab.split_raw[0])
    lab.val_box.setValue(0.5)
    assert abs(len(lab.training_data()[2]) - len(lab.X_raw) / 2) <= 3


def test_export_save_load_and_graph(qtbot, lab, tmp_path, monkeypatch):
    click(qtbot, lab.step_button)
    qtbot.waitUntil(lambda: lab.iteration == 1, timeout=3000)

    # export through the button (the folder dialog answered by the test)
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(tmp_path / "export"))
    click(qtbot, lab.export_button)
    script = tmp_path / "export" / "train_torch.py"
    assert script.exists() and (tmp_path / "export" / "train_torch_data.npz").exists()
    compile(script.read_text(), str(script), "exec")

    # save and load weights; a file for another architecture is refused in a message box, nothing crashes
    path = str(tmp_path / "w.npz")
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (path, ""))
    click(qtbot, lab.save_button)
    saved = params(lab)
    lab.step()
    qtbot.waitUntil(lambda: lab.iteration == 2, timeout=3000)
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (path, ""))
    click(qtbot, lab.load_button)
    now = params(lab)
    assert all(np.array_equal(now[k], saved[k]) for k in saved)
    shown = []
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: shown.append(a[1:3]))
    lab.builder.select_layer(0)
    lab.builder.field_widget("n").setValue(8)
    qtbot.waitUntil(lambda: not lab._rebuild_timer.isActive(), timeout=3000)
    click(qtbot, lab.load_button)
    assert len(shown) == 1 and shown[0][0] == "Loading failed" and "but this network needs (2, 8)" in shown[0][1]
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(tmp_path / "junk.npz"), ""))
    click(qtbot, lab.load_button)
    assert len(shown) == 2 and "cannot read" in shown[1][1]

    # the graph for the editor: a float64 Graph of GRAPH_BATCH examples that the engine can trace
    got = []
    lab.graph_requested.connect(got.append)
    click(qtbot, lab.graph_button)
    assert len(got) == 1 and isinstance(got[0], Graph)
    g = got[0]
    x = np.asarray(g.node("x").value)
    assert x.shape == (GRAPH_BATCH, 2) and x.dtype == np.float64
    trace = Trace(g)
    assert trace.forward_count > 0 and trace.backward_count > 0
    loss_now = lab.network_copy().network.loss(lab.training_data()[0][:GRAPH_BATCH],
                                               lab.training_data()[1][:GRAPH_BATCH])[0]
    final = trace.state_at(trace.forward_count).values[trace.output]
    assert float(final) == pytest.approx(loss_now, rel=1e-4)


def losses(lab: PlaygroundLab) -> np.ndarray:
    return np.array(lab.curves["loss"].getData()[1], copy=True)


def params(lab: PlaygroundLab) -> dict[str, np.ndarray]:
    return {k: v.copy() for k, v in lab.network_copy().network.params.items()}


def test_train_again_starts_from_loaded_weights(qtbot, lab, tmp_path):
    click(qtbot, lab.train_button)
    wait_done(qtbot, lab)
    run1 = losses(lab)
    path = tmp_path / "trained.npz"
    lab.save_weights(str(path))
    trained = params(lab)
    click(qtbot, lab.reset_button)                       # fresh weights from the seed
    assert not all(np.array_equal(v, trained[k]) for k, v in params(lab).items())
    lab.load_weights(str(path))
    assert "trained.npz" in lab.status_label.text()
    click(qtbot, lab.train_button)
    wait_done(qtbot, lab)
    assert lab.state == "finished"
    run2 = losses(lab)
    assert len(run2) == len(run1) and run2[0] < run1[0]   # it started from the trained weights
    assert "trained.npz" in lab.train_button.toolTip() and "trained.npz" in lab.status_label.text()

    # Train again: the loaded weights again, with a fresh trainer and optimizer state -> the same run exactly
    assert lab.train_button.text() == "▶ Train again"
    click(qtbot, lab.train_button)
    wait_done(qtbot, lab)
    np.testing.assert_array_equal(losses(lab), run2)

    # Reset forgets them: Train then starts from the seed, as the very first run did
    click(qtbot, lab.reset_button)
    assert "trained.npz" not in lab.status_label.text()
    click(qtbot, lab.train_button)
    wait_done(qtbot, lab)
    np.testing.assert_array_equal(losses(lab), run1)


def test_loaded_weights_that_no_longer_fit_are_dropped_with_a_notice(qtbot, lab, tmp_path):
    path = str(tmp_path / "w.npz")
    lab.save_weights(path)
    lab.load_weights(path)
    lab.builder.select_layer(0)
    lab.builder.field_widget("n").setValue(8)            # another architecture: rebuilt from the seed
    qtbot.waitUntil(lambda: not lab._rebuild_timer.isActive() and lab.state == "idle", timeout=5000)
    assert "do not fit" in lab.status_label.text()
    assert lab.network_copy().network.params["fc1.w"].shape == (2, 8)
    # the notice is shown whole: the status line wraps onto more lines rather than cutting it off
    label = lab.status_label
    label.parentWidget().layout().activate()
    assert label.wordWrap() and label.height() >= label.heightForWidth(label.width())


def test_xavier_tooltip_names_the_pytorch_difference(qtbot):
    b = NetworkBuilder()
    qtbot.addWidget(b)
    tip = b.init_combo.toolTip()
    assert "1/√fan_in" in tip and "xavier_normal_" in tip and "√(2/(fan_in + fan_out))" in tip


def test_digits_confusion_matrix_filters_and_maps(qtbot, lab):
    lab.dataset_combo.setCurrentText(DIGITS)
    lab.points_box.setValue(600)
    lab.epochs_box.setValue(2)
    qtbot.waitUntil(lambda: not lab._rebuild_timer.isActive() and lab.state == "idle", timeout=30_000)
    assert lab.pages.currentIndex() == 1
    assert [type(s).__name__ for s in lab.builder.hidden_layers()] == ["Conv2d", "Activation", "MaxPool", "Flatten"]
    click(qtbot, lab.train_button)
    wait_done(qtbot, lab, 30_000)
    assert lab.state == "finished", lab.error_message
    qtbot.waitUntil(lambda: lab.visuals is not None and lab.visuals.iteration == lab.iteration, timeout=5000)
    v = lab.visuals
    n_val = len(lab.training_data()[2])
    assert v.confusion.shape == (10, 10) and v.confusion.sum() == n_val
    assert np.trace(v.confusion) > 0.5 * n_val
    shown = sum(int(t.toPlainText() or 0) for t in lab.confusion_texts)
    assert shown == n_val
    wrong = n_val - int(np.trace(v.confusion))
    captions = [cap.text() for _, cap in lab.mis_labels if cap.text()]
    assert len(captions) == min(wrong, 24)
    assert v.weights.shape == (16, 3, 3) and lab.filters_item.image is not None
    assert v.maps.shape == (16, 8, 8)
    # choosing another image recomputes its activation maps
    lab.image_box.setValue(5)
    qtbot.waitUntil(lambda: lab.visuals.maps_index == 5, timeout=3000)
    assert f"label {lab.split_raw[3][5]}" in lab.maps_caption.text()


def test_close_lab_stops_the_worker(qtbot):
    w = PlaygroundLab()
    qtbot.addWidget(w)
    w.epochs_box.setValue(100_000)
    qtbot.waitUntil(lambda: not w._rebuild_timer.isActive(), timeout=3000)
    qtbot.waitUntil(lambda: w.state == "idle", timeout=5000)
    w.train()
    qtbot.waitUntil(lambda: w.iteration > 5, timeout=5000)
    handle = w.jobs.handles["train"]
    w.close_lab()
    assert not handle.thread.is_alive() and not w.jobs.running() and not w.jobs.timer.isActive()


def test_digits_can_train_with_augmentation(qtbot, lab):
    assert not lab.augment_check.isEnabled()  # toy 2-D data: nothing to augment
    lab.dataset_combo.setCurrentText(DIGITS)
    lab.points_box.setValue(300)
    lab.epochs_box.setValue(1)
    qtbot.waitUntil(lambda: not lab._rebuild_timer.isActive() and lab.state == "idle", timeout=30_000)
    assert lab.augment_check.isEnabled() and lab.training_augmenter() is None
    lab.augment_check.setChecked(True)
    aug = lab.training_augmenter()
    assert aug is not None and aug.shift == 1 and aug.degrees == 10.0
    qtbot.waitUntil(lambda: not lab._rebuild_timer.isActive() and lab.state == "idle", timeout=5000)
    click(qtbot, lab.train_button)
    wait_done(qtbot, lab, 30_000)
    assert lab.state == "finished", lab.error_message
    assert lab.session.trainer.augment is not None


# ---------------------------------------------------------------------------------------------------- new in issue 10

def test_train_pause_step_resume_reset_with_clicks(qtbot, lab):
    """The transport driven by clicks: the model's trainer and the plots agree at every stop."""
    lab.epochs_box.setValue(100_000)
    qtbot.waitUntil(lambda: not lab._rebuild_timer.isActive() and lab.state == "idle", timeout=5000)
    assert lab.train_button.isEnabled() and not lab.pause_button.isEnabled() and not lab.resume_button.isEnabled()
    click(qtbot, lab.train_button)
    assert lab.state == "running" and lab.jobs.state("train") == "running"
    qtbot.waitUntil(lambda: lab.iteration > 30, timeout=20_000)
    click(qtbot, lab.pause_button)
    assert lab.state == "paused" and lab.jobs.state("train") == "paused"
    round_trip(qtbot, lab)
    n = lab.iteration
    x, _ = lab.curves["loss"].getData()
    assert x[-1] == n == lab.session.trainer.iteration == len(lab.session.trainer.history)
    assert lab.curves["lr"].getData()[0][-1] == n and lab.visuals.iteration == n   # pictures of the paused weights
    click(qtbot, lab.step_button)
    qtbot.waitUntil(lambda: lab.iteration == n + 1, timeout=10_000)
    qtbot.waitUntil(lambda: lab.visuals.iteration == n + 1, timeout=10_000)    # the step brings its own pictures
    assert lab.curves["loss"].getData()[0][-1] == n + 1 and lab.state == "paused"
    click(qtbot, lab.resume_button)
    assert lab.state == "running"
    qtbot.waitUntil(lambda: lab.iteration > n + 20, timeout=20_000)
    click(qtbot, lab.pause_button)
    round_trip(qtbot, lab)
    assert lab.curves["loss"].getData()[0][-1] == lab.iteration == lab.session.trainer.iteration
    click(qtbot, lab.reset_button)
    assert lab.state == "idle" and lab.iteration == 0 and lab.session.trainer.iteration == 0
    x = lab.curves["loss"].getData()[0]
    assert lab.jobs.state("train") is None and (x is None or len(x) == 0)


def test_choosing_a_schedule_builds_its_declared_form_and_reaches_the_trainer(qtbot, lab):
    from simulator.functional.schedules import SCHEDULES, Warmup
    lab.schedule_combo.setCurrentIndex(lab.schedule_combo.findData("Cosine"))
    assert set(lab.schedule_boxes) == {p.name for p in SCHEDULES["Cosine"].params} | {"warmup_steps", "start_factor"}
    total = lab.model.total_steps()
    assert lab.schedule_boxes["total_steps"].value() == total            # the whole run
    lab.schedule_boxes["warmup_steps"].setValue(3)
    qtbot.waitUntil(lambda: not lab._rebuild_timer.isActive() and lab.state == "idle", timeout=5000)
    sched = lab.session.trainer.schedule
    assert isinstance(sched, Warmup) and sched.warmup_steps == 3 and sched.inner.total_steps == total
    assert sched.lr_at(3) == pytest.approx(lab.lr_box.value())
    lab.schedule_combo.setCurrentIndex(lab.schedule_combo.findData("none"))
    qtbot.waitUntil(lambda: not lab._rebuild_timer.isActive(), timeout=5000)
    assert lab.schedule_boxes == {} and lab.session.trainer.schedule is None


def test_optimizer_form_comes_from_its_declaration(qtbot, lab):
    from simulator.functional.optim import OPTIMIZERS
    lab.optimizer_combo.setCurrentIndex(lab.optimizer_combo.findData("RMSProp"))
    assert tuple(lab.hyper_boxes) == OPTIMIZERS["RMSProp"].param_names[1:]
    assert lab.lr_box.value() == OPTIMIZERS["RMSProp"].params[0].default
    lab.hyper_boxes["momentum"].setValue(0.5)
    qtbot.waitUntil(lambda: not lab._rebuild_timer.isActive() and lab.state == "idle", timeout=5000)
    opt = lab.session.trainer.optimizer
    assert type(opt).__name__ == "RMSProp" and opt.momentum == 0.5 and opt.lr == lab.lr_box.value()


def test_apply_config_sets_optimizer_rate_and_weight_decay(qtbot, lab):
    lab.apply_config({"optimizer": "AdamW", "lr": 0.002, "weight_decay": 0.05, "val_accuracy": 0.9})
    assert lab.optimizer_combo.currentData() == "AdamW" and lab.lr_box.value() == 0.002
    assert lab.hyper_boxes["weight_decay"].value() == 0.05
    qtbot.waitUntil(lambda: lab.state == "idle" and not lab._rebuild_timer.isActive(), timeout=5000)
    opt = lab.session.trainer.optimizer
    assert type(opt).__name__ == "AdamW" and opt.lr == 0.002 and opt.weight_decay == 0.05
    assert "AdamW" in lab.status_label.text()
    # an optimizer without weight decay: said in the status line, not applied
    lab.model.train  # noqa: B018
    from simulator.functional.optim import OPTIMIZERS
    no_wd = next((n for n, i in OPTIMIZERS.items() if "weight_decay" not in i.param_names), None)
    if no_wd is not None:
        lab.apply_config({"optimizer": no_wd, "lr": 0.01, "weight_decay": 0.1})
        assert "no weight decay" in lab.status_label.text()
    # a refused value changes nothing
    lab.apply_config({"optimizer": "Adam", "lr": -1.0})
    assert lab.banner.isVisible() and "learning rate" in lab.banner.text()
    assert lab.optimizer_combo.currentData() == (no_wd or "AdamW")


def test_model_trained_hands_on_a_copy_with_data_and_standardizer(qtbot, lab):
    from simulator.labs.interpret_lab import ImageSet
    got = []
    lab.model_trained.connect(got.append)
    lab.dataset_combo.setCurrentText(DIGITS)
    lab.points_box.setValue(300)
    lab.epochs_box.setValue(1)
    qtbot.waitUntil(lambda: not lab._rebuild_timer.isActive() and lab.state == "idle", timeout=10_000)
    click(qtbot, lab.train_button)
    wait_done(qtbot, lab, 30_000)
    assert lab.state == "finished" and len(got) == 1
    net, data, stats = got[0]
    assert net is not lab.session.network and net.input_shape == (1, 8, 8)
    for k, v in lab.session.network.params.items():
        np.testing.assert_array_equal(net.params[k], v)
    Xtr, ytr, Xv, yv = data
    np.testing.assert_array_equal(Xv, lab.training_data()[2])
    np.testing.assert_allclose(stats.invert(Xv), lab.split_raw[2], atol=1e-12)   # standardised -> raw again
    images = ImageSet.from_data(data, stats)                                   # what the interpretability lab takes
    np.testing.assert_allclose(images.raw, lab.split_raw[2], atol=1e-12)
    # a toy (2-D) model is not handed on
    lab.dataset_combo.setCurrentText("moons")
    qtbot.waitUntil(lambda: not lab._rebuild_timer.isActive() and lab.state == "idle", timeout=10_000)
    lab.epochs_box.setValue(1)
    click(qtbot, lab.train_button)
    wait_done(qtbot, lab)
    assert len(got) == 1


def test_first_open_shows_preparing_then_idle(qtbot):
    w = PlaygroundLab()
    qtbot.addWidget(w)
    assert w.state == "preparing" and not w.train_button.isEnabled()       # the data are made in a job
    qtbot.waitUntil(lambda: w.state == "idle", timeout=10_000)
    assert w.train_button.isEnabled() and "ready" in w.status_label.text()
    w.close_lab()


def test_growing_curves_are_decimated_incrementally_and_keep_their_spikes():
    from gui.labs.playground import Decimated
    rng = np.random.default_rng(0)
    full = rng.normal(size=20_000)
    full[1234], full[17_321] = 50.0, -40.0
    d = Decimated(cap=200)
    for n in range(1, len(full) + 1, 997):                    # the series grows as training goes on
        x, y = d(np.arange(n, dtype=float), full[:n])
    n = len(x) and int(x[-1]) + 1
    assert len(y) <= 2 * 200 + 2 and x[0] == 0 and np.all(np.diff(x) > 0)
    assert 50.0 in y and -40.0 in y                           # spikes survive
    np.testing.assert_array_equal(y, full[x.astype(int)])     # every drawn point is a real one
    # the same as decimating the final series in one go
    x2, y2 = Decimated(cap=200)(np.arange(n, dtype=float), full[:n])
    np.testing.assert_array_equal(x, x2)
