"""The optimizer race lab and schedule designer, driven through real widgets: clicks, typing, the player."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtWidgets import QApplication

from gui.labs.optimizer_lab import CUSTOM, OptimizerLab
from simulator.labs.optimizer_lab import DEFAULT_RACE
from simulator.labs.surfaces import NoisyGradient

N = 200  # race length for the tests: quick, yet long enough to separate the optimizers


def wait_race(qtbot, lab: OptimizerLab) -> None:
    qtbot.waitUntil(lambda: not lab.is_busy(), timeout=30_000)


def play_to_end(qtbot, lab: OptimizerLab) -> None:
    lab.speed_box.setValue(40)
    qtbot.mouseClick(lab.play_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: lab.step == lab.n_steps and not lab.is_playing(), timeout=10_000)


def click_surface(qtbot, lab: OptimizerLab, x: float, y: float) -> None:
    vb = lab.surface_plot.getPlotItem().getViewBox()
    pos = lab.surface_plot.mapFromScene(vb.mapViewToScene(QPointF(x, y)))
    qtbot.mouseClick(lab.surface_plot.viewport(), Qt.MouseButton.LeftButton, pos=pos)


def type_into(qtbot, widget, text: str) -> None:
    widget.setFocus()
    editor = widget.lineEdit() if hasattr(widget, "lineEdit") else widget
    editor.selectAll()
    qtbot.keyClicks(editor, text)
    qtbot.keyClick(editor, Qt.Key.Key_Return)


@pytest.fixture
def lab(qtbot):
    w = OptimizerLab()
    qtbot.addWidget(w)
    w.resize(1300, 800)
    w.show()
    qtbot.waitExposed(w)
    w.n_steps_box.setValue(N)
    wait_race(qtbot, w)
    yield w
    w.close_lab()


def test_default_race_plays_to_the_end_with_every_point(qtbot, lab):
    assert [r.kind for r in lab.model.racers] == [k for k, _ in DEFAULT_RACE]
    assert [r.lr for r in lab.model.racers] == [h["lr"] for _, h in DEFAULT_RACE]
    assert len({lab.colour(r) for r in lab.model.racers}) == len(lab.model.racers)
    assert lab.n_steps == N and lab.step == 0
    play_to_end(qtbot, lab)
    assert lab.step_label.text() == f"step {N} / {N}"
    assert lab.step_line.value() == N
    for run in lab.runs.values():
        assert run.diverged_at is None
        assert len(run.items["path"].xData) == N + 1
        assert len(run.items["loss"].xData) == N + 1
        np.testing.assert_allclose(run.items["path"].xData[-1], run.result.trajectory[-1, 0])
    # the optimizers really race: they end at different losses
    finals = {float(r.result.losses[-1]) for r in lab.runs.values()}
    assert len(finals) == len(lab.runs)
    # reset goes back to the start: one point per path
    qtbot.mouseClick(lab.reset_button, Qt.MouseButton.LeftButton)
    assert lab.step == 0
    assert all(len(r.items["path"].xData) == 1 for r in lab.runs.values())
    qtbot.mouseClick(lab.step_button, Qt.MouseButton.LeftButton)
    assert lab.step == 1 and all(len(r.items["path"].xData) == 2 for r in lab.runs.values())


def test_add_three_optimizers_through_the_ui(qtbot, lab):
    n0 = lab.optimizer_table.rowCount()
    for kind in ("Adam", "Momentum", "RMSProp"):
        lab.add_combo.setCurrentText(kind)
        qtbot.mouseClick(lab.add_button, Qt.MouseButton.LeftButton)
    assert lab.optimizer_table.rowCount() == n0 + 3
    labels = [lab.optimizer_table.item(r, 1).text() for r in range(lab.optimizer_table.rowCount())]
    assert labels[-3:] == ["Adam #2", "Momentum #2", "RMSProp #2"]
    assert len({lab.colour(r) for r in lab.model.racers}) == n0 + 3        # still all distinct
    wait_race(qtbot, lab)
    assert set(labels) == set(lab.runs)
    play_to_end(qtbot, lab)
    for label in labels[-3:]:
        assert len(lab.runs[label].items["path"].xData) == N + 1
        assert len(lab.runs[label].items["loss"].yData) == N + 1
    # remove one again (selected: the last added)
    qtbot.mouseClick(lab.remove_button, Qt.MouseButton.LeftButton)
    wait_race(qtbot, lab)
    assert "RMSProp #2" not in lab.runs and lab.optimizer_table.rowCount() == n0 + 2


def test_disabling_an_optimizer_takes_it_out_of_the_race(qtbot, lab):
    item = lab.optimizer_table.item(0, 0)
    rect = lab.optimizer_table.visualItemRect(item)
    # the check box sits at the left of the cell
    qtbot.mouseClick(lab.optimizer_table.viewport(), Qt.MouseButton.LeftButton,
                     pos=rect.topLeft() + QPointF(10, rect.height() / 2).toPoint())
    assert not lab.model.racers[0].enabled
    wait_race(qtbot, lab)
    assert lab.model.racers[0].label not in lab.runs
    assert lab.optimizer_table.item(0, 3).text() == "off"


def test_click_on_the_surface_sets_the_start_point(qtbot, lab):
    assert lab.start_point == pytest.approx((-1.5, 1.0))
    click_surface(qtbot, lab, 0.8, -1.2)
    x, y = lab.start_point
    assert x == pytest.approx(0.8, abs=0.03) and y == pytest.approx(-1.2, abs=0.03)
    sx, sy = lab.start_item.getData()
    assert (sx[0], sy[0]) == (x, y)
    wait_race(qtbot, lab)
    for run in lab.runs.values():
        assert (run.xs[0], run.ys[0]) == (x, y)


def test_schedule_redraws_and_applies_to_the_race(qtbot, lab):
    d = lab.schedule_designer
    before = d.curve_item.yData.copy()
    assert len(before) == N                                   # the designer follows the race length
    d.schedule_combo.setCurrentText("Step")
    after = d.curve_item.yData
    assert len(after) == N and not np.allclose(before, after)
    type_into(qtbot, d.warmup_steps_box, "20")
    warm = d.curve_item.yData
    assert warm[0] == 0.0 and warm[20] == pytest.approx(d.base_lr_box.value())
    qtbot.mouseClick(d.pin_button, Qt.MouseButton.LeftButton)
    assert len(d.pinned) == 1
    # constant lr before applying
    adam = lab.runs["Adam"].result
    assert np.all(adam.lrs == adam.lrs[0])
    with qtbot.waitSignal(d.schedule_applied) as blocker:
        qtbot.mouseClick(d.apply_button, Qt.MouseButton.LeftButton)
    schedule = blocker.args[0]
    assert schedule is not None and lab.model.schedule is schedule
    wait_race(qtbot, lab)
    for run in lab.runs.values():
        lr = run.result.hyperparameters["lr"]
        np.testing.assert_allclose(run.result.lrs, schedule.with_base(lr).curve(N))
    qtbot.mouseClick(d.clear_button, Qt.MouseButton.LeftButton)
    assert d.pinned == []
    qtbot.mouseClick(d.constant_button, Qt.MouseButton.LeftButton)
    wait_race(qtbot, lab)
    assert lab.model.schedule is None
    adam = lab.runs["Adam"].result
    assert np.all(adam.lrs == adam.lrs[0])


def test_a_new_race_reuses_the_plot_items_restyled_and_renamed(qtbot, lab):
    sp, lp = lab.surface_plot.getPlotItem(), lab.loss_plot.getPlotItem()
    before = {label: dict(run.items) for label, run in lab.runs.items()}
    n_surface, n_loss = len(sp.items), len(lp.items)
    play_to_end(qtbot, lab)                      # SGD's marker is an "o": it converges at lr 0.05
    lab.optimizer_table.selectRow(0)
    type_into(qtbot, lab.lr_box(0), "1e9")
    wait_race(qtbot, lab)
    assert len(sp.items) == n_surface and len(lp.items) == n_loss      # no item added, none left over
    for label, run in lab.runs.items():
        assert all(run.items[k] is before[label][k] for k in before[label])
        assert run.items["path"].isVisible() and run.items["marker"].isVisible()
    sgd = lab.runs["SGD"]
    names = [label.text for _, label in lab.loss_legend.items]
    assert names == [run.items["loss"].name() for run in lab.runs.values()]
    assert names[0] == f"SGD: diverged at step {sgd.diverged_at}" and names[1] == "Momentum"
    assert lab.step == N and sgd.items["marker"].opts["symbol"] == "x"   # the player stayed at the end
    lab.set_step(0)
    assert sgd.items["marker"].opts["symbol"] == "o"
    assert len(sgd.items["path"].xData) == 1
    # a racer switched off: its items are hidden, not drawn with the last race's data
    lab.optimizer_table.item(1, 0).setCheckState(Qt.CheckState.Unchecked)
    wait_race(qtbot, lab)
    assert "Momentum" not in lab.runs
    assert not before["Momentum"]["path"].isVisible() and not before["Momentum"]["loss"].isVisible()
    assert len([i for i in lab.loss_legend.items]) == len(lab.runs)


def test_a_huge_learning_rate_diverges_visibly_without_warnings(qtbot, lab):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lab.optimizer_table.selectRow(0)
        type_into(qtbot, lab.lr_box(0), "1e9")
        assert lab.model.racers[0].lr == 1e9
        wait_race(qtbot, lab)
        run = lab.runs["SGD"]
        assert run.diverged_at is not None
        assert lab.optimizer_table.item(0, 3).text() == f"diverged at step {run.diverged_at}"
        assert "diverged at step" in run.items["loss"].name()
        play_to_end(qtbot, lab)
        assert lab.divergence_item.data["x"].tolist() == [run.diverged_at]
        assert run.items["marker"].opts["symbol"] == "x"
        assert np.all(np.isfinite(run.items["loss"].yData))
        # the others are unaffected and complete
        for label, other in lab.runs.items():
            if label != "SGD":
                assert len(other.items["path"].xData) == N + 1
        lab.grab()  # paints without error


def test_invalid_hyperparameters_are_reported_inline(qtbot, lab):
    row = [r.kind for r in lab.model.racers].index("Nesterov")
    lab.optimizer_table.selectRow(row)
    box = lab.hyper_form.widgets["momentum"]
    type_into(qtbot, box, "0.5")
    assert lab.model.racers[row].hyper.momentum == 0.5
    type_into(qtbot, box, "0")                 # Nesterov needs momentum > 0: refused, shown under the form
    assert lab.hyper_form.error.isVisible() and "momentum must be > 0" in lab.hyper_form.error.text()
    assert lab.model.racers[row].hyper.momentum == 0.5          # the model kept its last valid value
    type_into(qtbot, box, "0.9")
    wait_race(qtbot, lab)
    assert not lab.hyper_form.error.isVisible() and not lab.race_error.isVisible() and "Nesterov" in lab.runs
    assert lab.runs["Nesterov"].result.hyperparameters["momentum"] == 0.9


def test_switching_surfaces_redraws_the_heatmap(qtbot, lab):
    before = lab.image_item.image.copy()
    lab.surface_combo.setCurrentText("Rosenbrock")
    assert not np.array_equal(before, lab.image_item.image)
    assert lab.surface_log_colour                               # 0 .. 2500 coloured by log(1 + f - f*)
    assert lab.minima_item.data["x"].tolist() == [1.0]
    assert lab.start_point == pytest.approx((-1.5, 2.0))
    wait_race(qtbot, lab)
    assert all(r.result.trajectory[0].tolist() == [-1.5, 2.0] for r in lab.runs.values())
    # a parameter spin box redraws too
    lab.surface_combo.setCurrentText("Ill-conditioned bowl")
    img = lab.image_item.image.copy()
    type_into(qtbot, lab.surface_param_boxes["angle"], "-45")
    assert lab.model.surface.angle == -45.0
    assert not np.array_equal(img, lab.image_item.image)
    wait_race(qtbot, lab)


def test_gradient_noise_slider_makes_the_race_noisy(qtbot, lab):
    clean = lab.runs["SGD"].result.trajectory.copy()
    type_into(qtbot, lab.noise_box, "1")
    assert isinstance(lab.model.raced_surface, NoisyGradient) and lab.model.raced_surface.sigma == 1.0
    wait_race(qtbot, lab)
    noisy = lab.runs["SGD"].result.trajectory
    assert noisy.shape == clean.shape and not np.allclose(noisy, clean)


def test_custom_expression_typo_shows_an_inline_error(qtbot, lab):
    type_into(qtbot, lab.expression_edit, "x**2 + * y")
    assert lab.expression_error.isVisible() and lab.expression_error.text()
    assert lab.surface_combo.currentText() != CUSTOM          # the old surface stays
    type_into(qtbot, lab.expression_edit, "x**2 + z")
    assert lab.expression_error.isVisible() and "z" in lab.expression_error.text()
    image = lab.image_item.image.copy()
    type_into(qtbot, lab.expression_edit, "x**2 + 3*y**2")
    assert not lab.expression_error.isVisible()
    assert lab.surface_combo.currentText() == CUSTOM
    assert not np.array_equal(image, lab.image_item.image)
    wait_race(qtbot, lab)
    play_to_end(qtbot, lab)
    assert all(len(r.items["path"].xData) == N + 1 for r in lab.runs.values() if r.diverged_at is None)


def test_arrows_follow_the_current_point(qtbot, lab):
    qtbot.mouseClick(lab.arrows_check, Qt.MouseButton.LeftButton)
    assert lab.arrows_check.isChecked()
    lab.set_step(10)
    run = lab.runs["Momentum"]
    xs, ys = run.items["step_arrow"].xData, run.items["step_arrow"].yData
    assert (xs[0], ys[0]) == (run.xs[10], run.ys[10])
    # the step arrow points along the step actually taken, x_11 - x_10
    d = np.array([run.xs[11] - run.xs[10], run.ys[11] - run.ys[10]])
    a = np.array([xs[1] - xs[0], ys[1] - ys[0]])
    assert np.dot(a, d) / (np.linalg.norm(a) * np.linalg.norm(d)) == pytest.approx(1.0)


def test_close_lab_stops_everything(qtbot, lab):
    qtbot.mouseClick(lab.play_button, Qt.MouseButton.LeftButton)
    lab.n_steps_box.setValue(N + 1)
    lab.close_lab()
    assert not lab.is_playing() and not lab.is_busy()


def test_long_paths_are_drawn_decimated_but_end_at_the_marker(qtbot, lab):
    lab.n_steps_box.setValue(3000)
    wait_race(qtbot, lab)
    assert lab.n_steps == 3000
    lab.set_step(1234)
    tol = 4.0 / 3000.0                                          # the bowl's view width / DECIMATE_FRACTION
    for run in lab.runs.values():
        x, y = run.items["path"].xData, run.items["path"].yData
        assert len(x) <= 1235
        assert np.isin(x, run.xs[:1235]).all()                  # only real points of the trajectory
        mx, my = run.items["marker"].pos().x(), run.items["marker"].pos().y()
        assert (mx, my) == (run.xs[1234], run.ys[1234])
        assert np.hypot(x[-1] - mx, y[-1] - my) <= tol


def test_the_placeholder_example_races_and_errors_read_as_written(qtbot, lab):
    example = lab.expression_edit.placeholderText().removeprefix("e.g. ")
    assert example == "x**2 + 10*y**2 + sin(3*x)"
    type_into(qtbot, lab.expression_edit, example)
    assert not lab.expression_error.isVisible() and lab.surface_combo.currentText() == CUSTOM
    assert lab.model.expression == example
    wait_race(qtbot, lab)
    assert set(lab.runs) == {r.label for r in lab.model.racers} and not lab.race_error.isVisible()
    # the expression's own message, quotes and all, shown as plain text (never HTML entities)
    type_into(qtbot, lab.expression_edit, "foo(x) + 'a'")
    text = lab.expression_error.text()
    assert lab.expression_error.isVisible() and lab.expression_error.textFormat() == Qt.TextFormat.PlainText
    assert "'" in text and "&#" not in text and "&quot;" not in text
    assert lab.model.expression == example                    # the custom surface stays


def test_main_path_by_clicks_add_tune_race_and_play(qtbot, lab):
    lab.add_combo.setCurrentText("RMSProp")
    qtbot.mouseClick(lab.add_button, Qt.MouseButton.LeftButton)
    row = len(lab.model.racers) - 1
    racer = lab.model.racers[row]
    assert racer.label == "RMSProp #2" and lab.hyper_title.text() == "RMSProp #2 hyperparameters"
    # the form is the declared hyperparameters, lr excepted (it is in the table)
    assert list(lab.hyper_form.widgets) == ["alpha", "eps", "momentum", "weight_decay", "centered"]
    centered = lab.hyper_form.widgets["centered"]
    qtbot.mouseClick(centered, Qt.MouseButton.LeftButton, pos=QPoint(8, centered.height() // 2))   # its box
    type_into(qtbot, lab.hyper_form.widgets["momentum"], "0.5")
    type_into(qtbot, lab.lr_box(row), "0.002")
    racer = lab.model.racers[row]
    assert racer.hyper.centered and racer.hyper.momentum == 0.5 and racer.lr == 0.002
    wait_race(qtbot, lab)
    hp = lab.runs["RMSProp #2"].result.hyperparameters
    assert hp["centered"] and hp["momentum"] == 0.5 and hp["lr"] == 0.002
    lab.speed_box.setValue(40)
    qtbot.mouseClick(lab.play_button, Qt.MouseButton.LeftButton)
    assert lab.play_button.text() == "❚❚ Pause"
    qtbot.waitUntil(lambda: lab.step == N and not lab.is_playing(), timeout=10_000)
    run = lab.runs["RMSProp #2"]
    assert len(run.items["path"].xData) == N + 1 and lab.step_label.text() == f"step {N} / {N}"
    status = lab.optimizer_table.item(row, 3).text()
    assert status == f"f = {float(run.result.losses[-1]):.3g}"
    qtbot.mouseClick(lab.back_button, Qt.MouseButton.LeftButton)
    assert lab.step == N - 1 and len(run.items["path"].xData) == N


# ------------------------------------------------------------------------------------------ second order: Newton
def choose(qtbot, combo, text: str) -> None:
    """Pick ``text`` in a combo box the way a learner does: open its list and click the entry."""
    qtbot.mouseClick(combo, Qt.MouseButton.LeftButton)
    view = combo.view()
    qtbot.waitUntil(view.isVisible, timeout=5_000)
    index = view.model().index(combo.findText(text), 0)
    view.scrollTo(index)
    rect = view.visualRect(index)
    qtbot.wait(QApplication.doubleClickInterval() + 50)   # a release this soon after opening is ignored by Qt
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.waitUntil(lambda: not view.isVisible(), timeout=5_000)
    assert combo.currentText() == text


def click_row(qtbot, lab: OptimizerLab, row: int) -> None:
    t = lab.optimizer_table
    t.scrollToItem(t.item(row, 1))
    qtbot.mouseClick(t.viewport(), Qt.MouseButton.LeftButton, pos=t.visualItemRect(t.item(row, 1)).center())
    assert lab._selected_row() == row


def test_newton_joins_the_race_by_clicks_and_lands_on_the_minimum_in_one_step(qtbot, lab):
    choose(qtbot, lab.add_combo, "Newton")
    qtbot.mouseClick(lab.add_button, Qt.MouseButton.LeftButton)
    row = len(lab.model.racers) - 1
    assert lab.model.racers[row].kind == "Newton" and lab.hyper_title.text() == "Newton hyperparameters"
    assert list(lab.hyper_form.widgets) == ["hessian_fix", "damping"]
    assert lab.lr_box(row).value() == 1.0
    wait_race(qtbot, lab)
    qtbot.mouseClick(lab.step_button, Qt.MouseButton.LeftButton)
    assert lab.step == 1
    run = lab.runs["Newton"]
    # the path drawn ends at the minimum (0, 0) of the bowl after one step, and so does the marker
    px, py = run.items["path"].xData, run.items["path"].yData
    assert len(px) == 2 and (px[0], py[0]) == lab.start_point
    assert math.hypot(px[-1], py[-1]) <= 1e-12
    assert math.hypot(run.items["marker"].pos().x(), run.items["marker"].pos().y()) <= 1e-12
    assert lab.model.race_winner(lab.results)[0] == "Newton"
    play_to_end(qtbot, lab)
    assert lab.optimizer_table.item(row, 3).text().startswith("f = ")
    # damped by the curvature fix H + λI (λ = 0.1): one step is (H + λI)^-1 H x0 short of the minimum
    choose(qtbot, lab.hyper_form.widgets["hessian_fix"], "H + λI")
    assert lab.model.racers[row].hyper.hessian_fix == "H + λI"
    wait_race(qtbot, lab)
    x0 = np.array(lab.start_point)
    h = lab.model.surface.hessian(0.0, 0.0)
    H = np.array([[h[0], h[1]], [h[1], h[2]]], dtype=float)
    expected = x0 - np.linalg.solve(H + 0.1 * np.eye(2), H @ x0)
    np.testing.assert_allclose(lab.runs["Newton"].result.trajectory[1], expected, rtol=1e-10)


def test_sgd_and_adam_paths_are_unchanged_by_a_newton_racer(qtbot, lab):
    before = {k: r.result.trajectory.copy() for k, r in lab.runs.items()}
    lab.add_combo.setCurrentText("Newton")
    qtbot.mouseClick(lab.add_button, Qt.MouseButton.LeftButton)
    wait_race(qtbot, lab)
    assert set(lab.runs) == set(before) | {"Newton"}
    for label, path in before.items():
        np.testing.assert_array_equal(lab.runs[label].result.trajectory, path)


def test_pure_newton_is_shown_resting_on_a_saddle_and_a_singular_hessian_says_why(qtbot, lab):
    choose(qtbot, lab.surface_combo, "Saddle")
    lab.add_combo.setCurrentText("Newton")
    qtbot.mouseClick(lab.add_button, Qt.MouseButton.LeftButton)
    wait_race(qtbot, lab)
    row = len(lab.model.racers) - 1
    assert lab.optimizer_table.item(row, 3).text() == "f = 0 at a saddle point"
    assert lab.runs["Newton"].result.trajectory[1].tolist() == [0.0, 0.0]
    # |H| walks down the negative curvature instead
    choose(qtbot, lab.hyper_form.widgets["hessian_fix"], "|H|")
    wait_race(qtbot, lab)
    assert "saddle" not in lab.optimizer_table.item(row, 3).text()
    assert lab.runs["Newton"].result.losses[-1] < -1.0
    # a surface flat along y: H is singular, the racer stops and the lab says why, in words
    choose(qtbot, lab.hyper_form.widgets["hessian_fix"], "none")
    type_into(qtbot, lab.expression_edit, "(x - 1)**2")
    wait_race(qtbot, lab)
    assert lab.optimizer_table.item(row, 3).text() == "stopped: H singular"
    assert lab.race_note.isVisible() and "Newton stopped at step 1: H is singular" in lab.race_note.text()
    assert "Choose the H + λI or |H| curvature fix" in lab.optimizer_table.item(row, 3).toolTip()
    assert not lab.race_error.isVisible()
    play_to_end(qtbot, lab)                                   # the others race on; Newton's marker stays put
    marker = lab.runs["Newton"].items["marker"].pos()
    assert (marker.x(), marker.y()) == lab.start_point


def test_damping_can_be_set_to_zero_and_the_status_names_the_singular_matrix(qtbot, lab):
    from gui.forms import ZeroLogSpinBox
    type_into(qtbot, lab.expression_edit, "(x - 1)**2")            # flat along y: only λ makes the fixes invertible
    wait_race(qtbot, lab)
    choose(qtbot, lab.add_combo, "Newton")
    qtbot.mouseClick(lab.add_button, Qt.MouseButton.LeftButton)
    row = len(lab.model.racers) - 1
    choose(qtbot, lab.hyper_form.widgets["hessian_fix"], "|H|")
    wait_race(qtbot, lab)
    assert lab.optimizer_table.item(row, 3).text().startswith("f = ")     # λ = 0.1 stands in for the flat curvature
    box = lab.hyper_form.widgets["damping"]
    assert isinstance(box, ZeroLogSpinBox)
    type_into(qtbot, box, "0")                                      # λ = 0: the form reaches what the model accepts
    assert lab.model.racers[row].hyper.damping == 0.0 and box.text() == "0 (off)"
    wait_race(qtbot, lab)
    status = lab.optimizer_table.item(row, 3)
    assert status.text() == "stopped: |H| singular"                 # not "H": the matrix that really was singular
    assert status.toolTip().startswith("|H| is singular at") and "Make the damping λ larger" in status.toolTip()
    assert "Newton stopped at step 1: |H| is singular" in lab.race_note.text()
    choose(qtbot, lab.hyper_form.widgets["hessian_fix"], "H + λI")
    wait_race(qtbot, lab)
    assert lab.model.racers[row].hyper.damping == 0.0
    assert lab.optimizer_table.item(row, 3).text() == "stopped: H + λI singular"
    qtbot.keyClick(lab.hyper_form.widgets["damping"], Qt.Key.Key_Up)      # one click up from 0: the lowest decade
    wait_race(qtbot, lab)
    assert lab.model.racers[row].hyper.damping == ZeroLogSpinBox.LOWEST
    assert lab.optimizer_table.item(row, 3).text().startswith("f = ")


def arrow(lab: OptimizerLab, key: str) -> np.ndarray:
    shaft, _ = lab.precond_items[key]
    return np.array([shaft.xData[1] - shaft.xData[0], shaft.yData[1] - shaft.yData[0]])


def same_direction(a, b) -> bool:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))) == pytest.approx(1.0, abs=1e-9)


def test_preconditioner_arrows_point_along_minus_g_adagrad_and_newton(qtbot, lab):
    assert not lab.precond_text.isVisible()
    qtbot.mouseClick(lab.precond_check, Qt.MouseButton.LeftButton)
    assert lab.precond_check.isChecked() and lab.precond_text.isVisible()
    row = [r.kind for r in lab.model.racers].index("AdaGrad")
    click_row(qtbot, lab, row)
    run = lab.runs["AdaGrad"]
    h = lab.model.surface.hessian(0.0, 0.0)
    H = np.array([[h[0], h[1]], [h[1], h[2]]], dtype=float)  # the bowl: the same H everywhere
    for t in (0, 7):
        lab.set_step(t)
        x = run.result.trajectory[t]
        shaft, head = lab.precond_items["gd"]
        assert (shaft.xData[0], shaft.yData[0]) == (x[0], x[1]) and head.isVisible()
        g = H @ x
        assert same_direction(arrow(lab, "gd"), -g)
        s = np.sum((run.result.trajectory[:t + 1] @ H) ** 2, axis=0)
        assert same_direction(arrow(lab, "adagrad"), -g / np.sqrt(s))
        assert same_direction(arrow(lab, "newton"), -x)             # straight at the minimum
        # AdaGrad's arrow is the direction that racer really steps
        assert same_direction(arrow(lab, "adagrad"), run.result.trajectory[t + 1] - x)
        # the full Newton step is drawn to where it lands: the minimum
        lx, ly = lab.precond_landing.xData[-1], lab.precond_landing.yData[-1]
        assert math.hypot(lx, ly) <= 1e-12
    text = lab.precond_text.text()
    assert "AdaGrad's point at step 7" in text and "eigenvalues 1 and 10, condition number 10" in text
    assert "positive definite" in text and "lands at (0, 0)" in text
    # at step 0 AdaGrad's scaling is -sign(g): both coordinates move alike
    lab.set_step(0)
    assert same_direction(arrow(lab, "adagrad"), -np.sign(H @ run.result.trajectory[0]))
    assert "At step 0, s = g²: −sign(g)" in lab.precond_text.text()
    # a click on the surface moves the start point: the arrows follow it once the race is recomputed
    click_surface(qtbot, lab, 1.0, -1.5)
    wait_race(qtbot, lab)
    click_row(qtbot, lab, row)
    lab.set_step(0)
    shaft, _ = lab.precond_items["newton"]
    assert (shaft.xData[0], shaft.yData[0]) == lab.start_point
    assert same_direction(arrow(lab, "newton"), -np.array(lab.start_point))
    qtbot.mouseClick(lab.precond_check, Qt.MouseButton.LeftButton)
    assert not lab.precond_text.isVisible()
    assert not any(item.isVisible() for pair in lab.precond_items.values() for item in pair)


def test_preconditioner_note_on_a_saddle_says_newton_is_heading_for_it(qtbot, lab):
    choose(qtbot, lab.surface_combo, "Saddle")
    wait_race(qtbot, lab)
    click_surface(qtbot, lab, -1.2, 0.6)
    wait_race(qtbot, lab)
    qtbot.mouseClick(lab.precond_check, Qt.MouseButton.LeftButton)
    lab.set_step(0)
    x = np.array(lab.start_point)
    assert same_direction(arrow(lab, "newton"), -x)                 # towards the saddle point (0, 0)
    # ... uphill along y (the direction of negative curvature), where -g goes down
    assert arrow(lab, "newton")[1] < 0 < arrow(lab, "gd")[1]
    text = lab.precond_text.text()
    assert "a saddle here, not a bowl" in text and "pure Newton heads for saddles and maxima" in text
    lab.grab()
