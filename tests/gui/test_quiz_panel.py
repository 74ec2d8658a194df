"""The stepper's quiz driven with clicks and keys: it stops at each backward step, checks typed gradients, explains
a wrong one, reveals on request, keeps a score, and asks tensor steps cell by cell."""
import pytest
from PySide6.QtCore import QSettings, QStandardPaths, Qt
from PySide6.QtWidgets import QLineEdit, QTableWidget

from gui.main_window import MainWindow


@pytest.fixture
def window(qtbot, tmp_path):
    QStandardPaths.setTestModeEnabled(True)
    w = MainWindow(settings=QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat), warm_up=False, recovery=False)
    w.resize(1280, 800)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.undo_stack.setClean()
    w.close()
    w.deleteLater()


def _forward(qtbot, w, n=1):
    for _ in range(n):
        qtbot.mouseClick(w.transport.forward_button, Qt.LeftButton)


def _type(qtbot, box, text):
    box.clear()
    qtbot.keyClicks(box, text)


def test_the_quiz_stops_at_each_backward_step_until_answered(qtbot, window):
    w = window
    w.open_example("circuit")                       # f = (x + y) z with x = -2, y = 5, z = -4
    w.player.flush()
    qtbot.mouseClick(w.transport.quiz_check, Qt.LeftButton)
    assert w.transport.quiz_check.isChecked() and w.quiz_panel.isVisible()
    _forward(qtbot, w, 10)                          # forward pass and the seed, then the first question stops it
    first = min(w.quiz_panel.quiz.questions)
    assert w.player.position == first
    assert "Backprop through f" in w.quiz_panel.prompt.text()
    boxes = w.quiz_panel.inputs
    assert set(boxes) == {"x", "y"} and all(isinstance(b, QLineEdit) for b in boxes.values())
    # a wrong answer: explained with the step's numbers, and the step is still hidden
    _type(qtbot, boxes["x"], "3")                   # df/dq = z = -4, not 3
    _type(qtbot, boxes["y"], "3")                   # df/dz = q = 3
    qtbot.mouseClick(w.quiz_panel.check_button, Qt.LeftButton)
    text = w.quiz_panel.feedback.text()
    assert "1 × -4 = -4" in text and w.player.position == first
    # the right answer (Enter in a box checks) shows the step
    _type(qtbot, boxes["x"], "-4")
    qtbot.keyClick(boxes["x"], Qt.Key_Return)
    assert w.player.position == first + 1
    assert "Right" in w.quiz_panel.feedback.text()
    # the next question: reveal instead; the end button stops nowhere any more
    _forward(qtbot, w)
    assert w.quiz_panel.question is not None
    qtbot.mouseClick(w.quiz_panel.reveal_button, Qt.LeftButton)
    assert w.player.position == first + 2
    assert w.quiz_panel.score_label.text() == "score 0 / 2 at the first try"
    qtbot.mouseClick(w.transport.end_button, Qt.LeftButton)
    assert w.player.position == w.player.length


def test_end_and_scrubbing_stop_at_the_question_and_quiz_off_lets_go(qtbot, window):
    w = window
    w.open_example("circuit")
    w.player.flush()
    w.set_quiz(True)
    qtbot.mouseClick(w.transport.end_button, Qt.LeftButton)
    first = min(w.quiz_panel.quiz.questions)
    assert w.player.position == first
    w.transport.scrubber.setValue(w.player.length)
    assert w.player.position == first and w.transport.scrubber.value() == first
    w.player.play()
    qtbot.waitUntil(lambda: not w.player.playing, timeout=5000)
    assert w.player.position == first
    qtbot.mouseClick(w.transport.quiz_check, Qt.LeftButton)
    assert not w.quiz_panel.isVisible()
    qtbot.mouseClick(w.transport.end_button, Qt.LeftButton)
    assert w.player.position == w.player.length


def test_tensor_steps_are_asked_cell_by_cell(qtbot, window):
    w = window
    w.open_example("two_layer_net")
    w.player.flush()
    w.set_quiz(True)
    quiz = w.quiz_panel.quiz
    k = next(i for i, q in quiz.questions.items() if q.node == "scores")
    qtbot.mouseClick(w.transport.end_button, Qt.LeftButton)
    while w.player.position < k:                    # answer (reveal) the questions before it
        qtbot.mouseClick(w.quiz_panel.reveal_button, Qt.LeftButton)
        qtbot.mouseClick(w.transport.end_button, Qt.LeftButton)
    q = w.quiz_panel.question
    assert q.node == "scores"
    table = next(w.quiz_panel.inputs[b.port] for b in q.blanks if b.source == "W2")
    assert isinstance(table, QTableWidget) and (table.rowCount(), table.columnCount()) == (5, 3)
    for b in q.blanks:
        box = w.quiz_panel.inputs[b.port]
        for i in range(box.rowCount()):
            for j in range(box.columnCount()):
                box.item(i, j).setText(f"{b.expected.reshape(box.rowCount(), -1)[i, j]:.6g}")
    dW2 = next(b for b in q.blanks if b.source == "W2")
    table.item(2, 1).setText(str(dW2.expected[2, 1] + 5))
    qtbot.mouseClick(w.quiz_panel.check_button, Qt.LeftButton)
    assert "cell [2, 1]" in w.quiz_panel.feedback.text() and w.player.position == k
    assert table.item(2, 1).background().color().name() == "#fbeaea"
    table.item(2, 1).setText(f"{dW2.expected[2, 1]:.6g}")
    qtbot.mouseClick(w.quiz_panel.check_button, Qt.LeftButton)
    assert w.player.position == k + 1
