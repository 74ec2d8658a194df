"""The classic-classifiers lab driven through its widgets: kNN regions, clicks, digits, cross-validation, and the
linear classifier stepping and running."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt

from gui.labs.classic_lab import DIGITS, ClassicLab
from simulator.labs.classic_lab import ClassicLabModel, KnnLabModel
from simulator.labs.classifiers import KNearestNeighbor, decision_grid


def wait_idle(qtbot, panel) -> None:
    qtbot.waitUntil(lambda: not panel.is_busy(), timeout=30_000)


@pytest.fixture
def lab(qtbot):
    w = ClassicLab()
    qtbot.addWidget(w)
    w.resize(1400, 860)
    w.show()
    qtbot.waitExposed(w)
    wait_idle(qtbot, w.knn)
    yield w
    w.close_lab()


def wait_ready(qtbot, lab) -> None:
    """The digits (scikit-learn) and the loss kernels (Numba) come from the lab's prepare job, off the UI thread."""
    qtbot.waitUntil(lab.is_ready, timeout=60_000)


def region_image(panel) -> np.ndarray:
    return np.array(panel.region_item.image, copy=True)


def test_knn_regions_follow_k_distance_and_data(qtbot, lab):
    knn = lab.knn
    assert knn.region is not None and knn.region.shape == (200, 200)
    # the map on screen is the model's prediction on the visible grid
    (x0, x1), (y0, y1) = knn.plot.getPlotItem().getViewBox().viewRange()
    ref = KNearestNeighbor(1, "l2").train(knn.X, knn.y, num_classes=knn.num_classes)
    _, _, Z = decision_grid(ref.predict, (x0, x1), (y0, y1), 200)
    assert np.mean(Z == knn.region) > 0.99
    before = region_image(knn)
    knn.k_box.setValue(15)
    wait_idle(qtbot, knn)
    after_k = region_image(knn)
    assert not np.array_equal(before, after_k)
    knn.distance_combo.setCurrentText("L1 (Manhattan)")
    wait_idle(qtbot, knn)
    assert knn.distance == "l1" and not np.array_equal(after_k, region_image(knn))
    X0 = knn.X.copy()
    knn.noise_box.setValue(0.45)
    wait_idle(qtbot, knn)
    assert not np.array_equal(X0, knn.X)
    knn.dataset_combo.setCurrentText("moons")
    wait_idle(qtbot, knn)
    assert knn.num_classes == 2 and set(np.unique(knn.region)) <= {0, 1}
    knn.points_box.setValue(120)
    wait_idle(qtbot, knn)
    assert len(knn.X) == 120 and len(knn.points_item.data) == 120


def click_plot(qtbot, panel, x, y, button=Qt.MouseButton.LeftButton):
    vb = panel.plot.getPlotItem().getViewBox()
    pos = panel.plot.mapFromScene(vb.mapViewToScene(QPointF(x, y)))
    qtbot.mouseClick(panel.plot.viewport(), button, pos=pos)


def test_click_adds_and_right_click_removes_points(qtbot, lab):
    knn = lab.knn
    knn.dataset_combo.setCurrentText("blobs")
    wait_idle(qtbot, knn)
    n = len(knn.X)
    knn.class_combo.setCurrentIndex(2)
    click_plot(qtbot, knn, 0.0, 0.0)
    assert len(knn.X) == n + 1 and knn.y[-1] == 2
    assert np.allclose(knn.X[-1], [0.0, 0.0], atol=0.1)
    wait_idle(qtbot, knn)
    # with k = 1 the new point owns the region around it
    (x0, x1), (y0, y1) = knn.plot.getPlotItem().getViewBox().viewRange()
    i, j = int((0.0 - x0) / (x1 - x0) * 200), int((0.0 - y0) / (y1 - y0) * 200)
    assert knn.region[i, j] == 2
    click_plot(qtbot, knn, 0.02, 0.0, Qt.MouseButton.RightButton)
    assert len(knn.X) == n and not np.any(np.all(np.isclose(knn.X, [0.0, 0.0], atol=0.1), axis=1) & (knn.y == 2))


def test_digits_neighbours_and_cross_validation(qtbot, lab):
    wait_ready(qtbot, lab)
    knn = lab.knn
    knn.dataset_combo.setCurrentText(DIGITS)
    assert knn.stack.currentIndex() == 1
    knn.k_box.setValue(4)
    Xtr, ytr, Xv, yv = knn.digits_split()
    visible = [(img, cap) for img, cap in knn.neighbour_labels if not img.isHidden()]
    assert len(visible) == 4
    knn.query_box.setValue(7)
    ref = KNearestNeighbor(4).train(Xtr, ytr).neighbours(Xv[7])
    first_caption = visible[0][1].text()
    assert f"<b>{ytr[ref[0]]}</b>" in first_caption
    d0 = np.sqrt(((Xtr[ref[0]] - Xv[7]) ** 2).sum())
    assert f"d={d0:.4g}" in first_caption
    assert f"true label <b>{yv[7]}</b>" in knn.query_label.text()
    pix_before = knn.query_image.pixmap().toImage()
    knn.query_box.setValue(8)
    assert knn.query_image.pixmap().toImage() != pix_before
    knn.kmax_box.setValue(6)
    knn.folds_box.setValue(3)
    qtbot.mouseClick(knn.cv_button, Qt.MouseButton.LeftButton)
    with qtbot.waitSignal(knn.cv_ready, timeout=60_000):
        pass
    ks, acc = knn.cv_result
    assert acc.shape == (6, 3) and np.all(acc > 0.9)
    assert len(knn.cv_fold_item.data) == 18
    best = int(ks[np.argmax(acc.mean(axis=1))])
    assert knn.cv_best_item.data["x"][0] == best and f"Best k = {best}" in knn.cv_label.text()


def test_cross_validation_on_toy_data(qtbot, lab):
    knn = lab.knn
    knn.kmax_box.setValue(10)
    with qtbot.waitSignal(knn.cv_ready, timeout=60_000):
        qtbot.mouseClick(knn.cv_button, Qt.MouseButton.LeftButton)
    xs, ys = knn.cv_mean_item.getData()
    np.testing.assert_array_equal(xs, np.arange(1, 11))
    np.testing.assert_allclose(ys, knn.cv_result[1].mean(axis=1))
    assert knn.cv_button.isEnabled() and knn.cv_progress.isHidden()


def test_cross_validate_needs_a_point_per_fold(qtbot, lab):
    knn = lab.knn
    assert knn.cv_button.isEnabled() and knn.cv_button.toolTip() == ""
    while len(knn.X) > 3:
        knn.remove_nearest(*knn.X[0])
    wait_idle(qtbot, knn)
    assert knn.folds_box.value() == 5
    assert not knn.cv_button.isEnabled()
    assert "5 folds need at least 5 points" in knn.cv_button.toolTip() and "are 3" in knn.cv_button.toolTip()
    knn.start_cross_validation()                         # called directly: refused the same way, nothing runs
    assert not knn.is_busy() and knn.cv_progress.isHidden()
    knn.folds_box.setValue(3)
    assert knn.cv_button.isEnabled() and knn.cv_button.toolTip() == ""
    knn.folds_box.setValue(4)
    assert not knn.cv_button.isEnabled()
    knn.add_point(0.0, 0.0, 0)
    assert knn.cv_button.isEnabled()


def failing_job(exc):
    def cross_validation(self):
        def job():
            raise exc
            yield
        return job()
    return cross_validation


def test_job_errors_show_a_studio_errors_own_message(qtbot, lab, monkeypatch):
    from simulator.core.errors import ValueInputError

    monkeypatch.setattr(KnnLabModel, "cross_validation",
                        failing_job(ValueInputError("folds must be ≥ 2, got 1")))
    knn = lab.knn
    qtbot.mouseClick(knn.cv_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: knn.cv_progress.isHidden(), timeout=10_000)
    assert knn.cv_label.text() == "folds must be ≥ 2, got 1"      # no "ValueInputError: "
    assert knn.cv_button.isEnabled()

    monkeypatch.setattr(KnnLabModel, "cross_validation", failing_job(ZeroDivisionError("division by zero")))
    qtbot.mouseClick(knn.cv_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "ZeroDivisionError" in knn.cv_label.text(), timeout=10_000)
    assert knn.cv_label.text() == "ZeroDivisionError: division by zero"          # a bug keeps its class name


def test_linear_step_run_and_controls(qtbot, lab):
    wait_ready(qtbot, lab)
    lin = lab.linear
    lab.tabs.setCurrentWidget(lab.linear_page)
    qtbot.waitExposed(lin)
    W0 = lin.clf.W.copy()
    img0 = region_image(lin)
    line0 = [it.getData()[0].copy() for it in lin.line_items]
    cell0 = lin.table.item(0, 3).text()
    loss0 = lin.loss_label.text()
    for _ in range(5):
        qtbot.mouseClick(lin.step_button, Qt.MouseButton.LeftButton)
    assert lin.clf.steps == 5 and not np.allclose(W0, lin.clf.W)
    assert lin.loss_label.text() != loss0
    assert lin.table.rowCount() == 9 and lin.table.item(0, 3).text() != cell0
    bd = lin.clf.breakdown(lin.X, lin.y)
    assert lin.table.item(4, 6).text() == f"{bd.terms[4]:.3f}"
    assert any(not np.allclose(a, it.getData()[0]) for a, it in zip(line0, lin.line_items))
    qtbot.mouseClick(lin.run_button, Qt.MouseButton.LeftButton)
    assert lin.is_running()
    qtbot.waitUntil(lambda: lin.clf.steps >= 40, timeout=10_000)
    qtbot.mouseClick(lin.run_button, Qt.MouseButton.LeftButton)
    assert not lin.is_running()
    assert not np.array_equal(img0, region_image(lin))
    assert "accuracy" in lin.accuracy_label.text()
    # loss type and regularisation change the loss shown, without a step
    steps = lin.clf.steps
    text = lin.loss_label.text()
    lin.loss_combo.setCurrentIndex(1)
    assert lin.clf.loss == "softmax" and lin.loss_label.text() != text
    text = lin.loss_label.text()
    lin.reg_box.setValue(1.0)
    assert lin.clf.reg == 1.0 and lin.loss_label.text() != text and lin.clf.steps == steps


def test_linear_on_other_data_and_digits_templates(qtbot, lab):
    wait_ready(qtbot, lab)
    lin = lab.linear
    lab.tabs.setCurrentWidget(lab.linear_page)
    lin.data_combo.setCurrentText("spiral (3 classes)")
    assert lin.table.rowCount() == 30 and "first 30 of 90" in lin.table_caption.text()
    lin.data_combo.setCurrentText(DIGITS)
    assert lin.stack.currentIndex() == 1 and lin.clf.W.shape == (64, 10)
    t0 = [a.copy() for a in lin.template_arrays]
    pm0 = lin.template_labels[3].pixmap().toImage()
    lin.steps_box.setValue(20)
    acc0 = lin.clf.breakdown(lin.X, lin.y).accuracy
    lin.train_steps(40)
    np.testing.assert_allclose(lin.template_arrays[3], lin.clf.W[:, 3].reshape(8, 8))
    assert not np.allclose(t0[3], lin.template_arrays[3])
    assert lin.template_labels[3].pixmap().toImage() != pm0
    assert lin.clf.breakdown(lin.X, lin.y).accuracy > max(acc0, 0.8)
    assert lin.table.columnCount() == 12        # y, s0..s9, L_i


def test_lab_renders(qtbot, lab, tmp_path):
    path = tmp_path / "classic.png"
    assert lab.grab().save(str(path)) and path.stat().st_size > 10_000


def test_main_path_preparing_then_linear_steps_by_clicks(qtbot):
    w = ClassicLab()
    qtbot.addWidget(w)
    w.resize(1280, 710)
    w.show()
    lin = w.linear
    if not w.is_ready():                 # the prepare job (digits, loss kernels) runs off the UI thread
        assert not lin.step_button.isEnabled() and "Preparing" in lin.status_label.text()
    wait_ready(qtbot, w)
    w.tabs.setCurrentWidget(w.linear_page)
    assert lin.step_button.isEnabled() and lin.status_label.text() == ""
    loss0 = w.model.linear.breakdown().loss
    for _ in range(3):
        qtbot.mouseClick(lin.step_button, Qt.MouseButton.LeftButton)
    assert w.model.linear.clf.steps == 3 and w.model.linear.breakdown().loss < loss0
    assert "step 3" in lin.accuracy_label.text()
    qtbot.mouseClick(lin.reset_button, Qt.MouseButton.LeftButton)
    assert w.model.linear.clf.steps == 0 and "step 0" in lin.accuracy_label.text()
    w.close_lab()


def test_changing_the_points_cancels_a_running_cross_validation(qtbot, lab):
    knn = lab.knn
    knn.points_box.setValue(400)
    wait_idle(qtbot, knn)
    knn.kmax_box.setValue(25)
    qtbot.mouseClick(knn.cv_button, Qt.MouseButton.LeftButton)
    assert knn.runner.running("cv")
    knn.add_point(0.3, 0.3, 1)                       # the data the cross-validation is about is gone
    assert not knn.runner.running("cv") and knn.cv_progress.isHidden()
    qtbot.wait(300)
    assert knn.model.cv_result is None               # no stale result arrives later
    assert knn.cv_button.isEnabled()


def test_margin_temperature_bias_trick_and_the_curse_of_dimensionality(qtbot, lab):
    lin = lab.linear
    lab.tabs.setCurrentWidget(lab.linear_page)
    # the temperature and margin are declared settings: the form shows them and the classifier follows
    lin.form.widgets["loss"].setCurrentIndex(1)                 # softmax
    lin.form.widgets["temperature"].setValue(0.5)
    assert lin.clf.temperature == 0.5 and lin.clf.loss == "softmax"
    lin.form.widgets["loss"].setCurrentIndex(0)
    lin.form.widgets["delta"].setValue(3.0)
    assert lin.clf.delta == 3.0
    qtbot.mouseClick(lin.margin_button, Qt.MouseButton.LeftButton)
    text = lin.aside_label.text()
    assert "W₂ = 2 × W₁" in text and "identical" in text and "Bias trick" in text and "identical" in text
    # the curse of dimensionality: measured in a job when its tab is first shown
    with qtbot.waitSignal(lab.dimensions.measured, timeout=60_000):
        lab.tabs.setCurrentWidget(lab.dimensions_page)
    c = lab.dimensions.curve
    xs, ys = lab.dimensions.acc_curve.getData()
    assert len(xs) == len(c.dims) and ys[0] > 0.9 and ys[-1] < 0.7
    assert np.all(np.diff(c.contrast) < 0)


def test_the_linear_and_dimension_tabs_are_built_when_first_shown_in_the_labs_state(qtbot, lab):
    wait_ready(qtbot, lab)
    assert not lab.linear_page.is_built and not lab.dimensions_page.is_built     # the lab opened without them
    lab.tabs.setCurrentWidget(lab.linear_page)
    qtbot.waitUntil(lambda: lab.linear_page.is_built)
    lin = lab.linear
    assert lin.isVisible() and lin.kernels_ready and lin.step_button.isEnabled()   # prepared before it existed
    qtbot.mouseClick(lin.step_button, Qt.MouseButton.LeftButton)
    assert lab.model.linear.clf.steps == 1 and "step 1" in lin.accuracy_label.text()
    assert not lab.dimensions_page.is_built


def test_a_failed_prepare_shows_on_the_linear_tab_built_after_it(qtbot, monkeypatch):
    def prepare(self):
        raise OSError("the digits are unreadable")
        yield
    monkeypatch.setattr(ClassicLabModel, "prepare", prepare)
    w = ClassicLab()
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: "unreadable" in w.knn.query_label.text())
    assert not w.linear_page.is_built
    w.tabs.setCurrentWidget(w.linear_page)
    assert "Could not prepare the digits and kernels: OSError: the digits are unreadable" in \
        w.linear.status_label.text()
    assert not w.linear.step_button.isEnabled()
    w.close_lab()
