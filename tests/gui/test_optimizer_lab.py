"""The optimizer race lab and schedule designer, driven through real widgets: clicks, typing, the player."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt

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
