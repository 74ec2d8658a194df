"""Predict first, in the labs: each prediction is answered by the lab's own computation (the race's winner, the
convolution's output size, the untrained network's loss)."""
import math

import pytest
from PySide6.QtCore import Qt

from simulator.labs.conv_mechanics import output_size
from tests.gui.test_optimizer_lab import lab as optimizer_lab  # noqa: F401  (fixture)
from tests.gui.test_playground import lab as playground  # noqa: F401  (fixture)
from tests.gui.test_conv_lab import lab as conv_lab  # noqa: F401  (fixture)

LEFT = Qt.MouseButton.LeftButton


def test_which_optimizer_reaches_the_minimum_first(qtbot, optimizer_lab):  # noqa: F811
    lab = optimizer_lab
    winner, steps = lab.model.race_winner(lab.results)
    assert winner is not None and steps[winner] == min(s for s in steps.values() if s is not None)
    box = lab.prediction
    labels = [box.combo.itemText(i) for i in range(1, box.combo.count())]
    assert winner in labels
    loser = next(l for l in labels if l != winner)
    box.combo.setCurrentText(loser)
    qtbot.mouseClick(box.check_button, LEFT)
    assert "Not quite" in box.feedback.text() and f"{winner} gets there first" in box.feedback.text()
    box.combo.setCurrentText(winner)
    qtbot.mouseClick(box.check_button, LEFT)
    assert box.feedback.text().count("Right") == 1


def test_predict_the_output_size(qtbot, conv_lab):  # noqa: F811
    lab = conv_lab
    for _ in range(12):
        qtbot.mouseClick(lab.new_question_button, LEFT)
        N, F, S, P = lab.size_question
        try:
            want = output_size(N, F, P, S)
        except Exception:
            want = 0
        lab.size_prediction.edit.setText(str(want + 1))
        qtbot.keyClick(lab.size_prediction.edit, Qt.Key.Key_Return)
        assert "Not quite" in lab.size_prediction.feedback.text()
        lab.size_prediction.edit.setText(str(want))
        qtbot.mouseClick(lab.size_prediction.check_button, LEFT)
        assert "Right" in lab.size_prediction.feedback.text()
    qtbot.mouseClick(lab.show_question_button, LEFT)
    assert (lab.n_box.value(), lab.f_box.value(), lab.s_box.value(), lab.p_box.value()) == lab.size_question


def test_predict_the_first_loss(qtbot, playground):  # noqa: F811
    lab = playground
    loss, _ = lab.model.initial_loss()
    net = lab.model.build_network()
    X, y = lab.training_data()[:2]
    want, _ = net.data_loss(net.forward(X[:512], "eval"), y[:512])
    assert loss == pytest.approx(float(want), rel=1e-12)
    box = lab.loss_prediction
    box.edit.setText(f"{math.log(50):.3f}")
    qtbot.mouseClick(box.check_button, LEFT)
    assert "Not quite" in box.feedback.text() and f"{loss:.3f}" in box.feedback.text()
    box.edit.setText(f"{loss:.4f}")
    qtbot.mouseClick(box.check_button, LEFT)
    assert "Right" in box.feedback.text() and "ln 3" in box.feedback.text()


def test_the_weight_decay_comparison_opens_from_the_race(qtbot, optimizer_lab):  # noqa: F811
    lab = optimizer_lab
    qtbot.mouseClick(lab.decay_button, LEFT)
    r = lab.decay_result
    assert list(r.paths) == ["SGD + L2", "SGD decoupled", "Adam + L2", "AdamW (decoupled)"]
    assert r.sgd_gap < 1e-9 < r.adam_gap
    assert lab.decay_dialog.isVisible()
    lab.decay_dialog.grab().save("/tmp/weight_decay.png")
    lab.decay_dialog.close()
