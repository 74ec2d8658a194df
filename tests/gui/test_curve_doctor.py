"""The Playground's "What does my curve say?": a real run read by the curve doctor, the matching reference curve
outlined, and the reading the simulator gives for the same numbers."""
import numpy as np
from PySide6.QtCore import Qt

from simulator.labs.curves import diagnose
from tests.gui.test_playground import lab, wait_done  # noqa: F401  (the fixture)


def test_the_doctor_reads_a_run_far_too_slow(qtbot, lab):  # noqa: F811
    lab.lr_box.setValue(1e-5)
    qtbot.mouseClick(lab.train_button, Qt.LeftButton)
    wait_done(qtbot, lab, 60_000)
    assert lab.curve_button.isEnabled()
    qtbot.mouseClick(lab.curve_button, Qt.LeftButton)
    d = lab.curve_doctor
    steps = np.array(lab._loss.data)
    want = diagnose(steps, lab._epochs["train_loss"], lab._epochs["val_loss"])
    assert d.diagnosis == want and want.verdict == "flat"
    assert want.title in d.verdict.text()
    assert set(d.references) == {"healthy", "diverged", "flat", "slow_start", "overfitting", "plateau"}
    # predict first: nothing is given away until the learner has answered
    assert d.verdict.isHidden() and not d.references["flat"].styleSheet()
    d.prediction.combo.setCurrentText("Overfitting")
    qtbot.mouseClick(d.prediction.check_button, Qt.LeftButton)
    assert "Not quite" in d.prediction.feedback.text() and want.title in d.prediction.feedback.text()
    assert not d.verdict.isHidden() and d.references["flat"].styleSheet() and not d.references["healthy"].styleSheet()
    d.grab().save("/tmp/curve_doctor.png")
    d.close()
