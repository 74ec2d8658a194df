"""Lessons in the window: the browser opens a shipped lesson, each step sets its tab, graph, position and quiz,
answers are checked with clicks and keys, progress is remembered across windows, a broken file is refused with its
line, and --lesson opens one from the command line."""
import os
import subprocess
import sys
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QApplication, QRadioButton

from gui.lessons import LessonBrowser, completed_steps
from simulator.labs.lessons import load_lesson

ROOT = Path(__file__).resolve().parents[2]


def _close(w):
    w.undo_stack.setClean()
    w.close()
    w.deleteLater()


def test_a_lesson_from_the_browser_sets_each_step_and_checks_answers(qtbot, tmp_path, make_window):
    w = make_window(tmp_path / "s.ini")
    browser = LessonBrowser(w.settings, w)
    names = [browser.list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(browser.list.count())]
    assert len(names) == 8 and "l4-backprop-circuit" in names and "l8-self-supervised" in names
    browser.list.setCurrentRow(names.index("l4-backprop-circuit"))
    browser.accept_current()
    w.open_lesson(browser.chosen)
    panel = w.lesson_panel
    assert w.lesson_dock.isVisible() and "Backpropagation on a circuit" in panel.header.text()
    # step 1 set the circuit, the forward pass done, the quiz on
    assert w.example_name == "circuit" and w.tabs.currentIndex() == 0
    assert w.player.position == w.player.trace.forward_count and w.transport.quiz_check.isChecked()
    first, second = panel.question_boxes
    qtbot.keyClicks(first.edit, "-4")                     # df/dz is 3
    qtbot.mouseClick(first.check_button, Qt.LeftButton)
    assert "Not quite" in first.feedback.text() and "Multiply switches" in first.feedback.text()
    first.edit.clear()
    qtbot.keyClicks(first.edit, "3")
    qtbot.keyClick(first.edit, Qt.Key_Return)
    assert "Right" in first.feedback.text()
    qtbot.keyClicks(second.edit, "-4")
    qtbot.mouseClick(second.check_button, Qt.LeftButton)
    assert completed_steps(w.settings, panel.run.lesson) == {0}
    assert "1 of 3 completed" in panel.where.text()
    qtbot.mouseClick(panel.next_button, Qt.LeftButton)
    assert w.example_name == "fan_out" and not w.transport.quiz_check.isChecked()
    assert "step 2 of 3" in panel.where.text()
    qtbot.mouseClick(panel.next_button, Qt.LeftButton)         # skipping a step does not complete it
    assert completed_steps(w.settings, panel.run.lesson) == {0}
    assert w.example_name == "sigmoid_neuron"
    qtbot.mouseClick(panel.back_button, Qt.LeftButton)
    assert w.example_name == "fan_out"
    qtbot.mouseClick(panel.close_button, Qt.LeftButton)
    assert not w.lesson_dock.isVisible()
    _close(w)
    # a new window remembers: the lesson opens at its first step not completed
    w2 = make_window(tmp_path / "s.ini")
    w2.open_lesson("l4-backprop-circuit")
    assert w2.lesson_panel.run.index == 1 and w2.example_name == "fan_out"
    _close(w2)


def test_choices_and_a_lab_tab(qtbot, tmp_path, make_window):
    w = make_window(tmp_path / "s.ini")
    w.open_lesson("l7-optimizers-and-batchnorm")
    assert w.current_tab == "Optimizers"
    box = w.lesson_panel.question_boxes[1]
    buttons = box.findChildren(QRadioButton)
    qtbot.waitUntil(lambda: buttons[1].isVisible())        # laid out: the click lands on the button itself
    qtbot.mouseClick(buttons[1], Qt.LeftButton)           # RMSProp
    qtbot.mouseClick(box.check_button, Qt.LeftButton)
    assert "Right" in box.feedback.text()
    _close(w)


def test_the_window_s_tabs_are_the_tabs_a_lesson_may_name(qtbot, tmp_path, make_window):
    """simulator keeps the list of tab titles (it cannot import the window): the window's tabs are exactly it."""
    from simulator.labs import TAB_TITLES
    w = make_window(tmp_path / "s.ini")
    assert tuple(w.tabs.tabText(i) for i in range(w.tabs.count())) == TAB_TITLES
    _close(w)


def test_the_self_supervised_lesson_opens_its_tab(qtbot, tmp_path, make_window):
    w = make_window(tmp_path / "s.ini")
    w.open_lesson("l8-self-supervised")
    assert w.current_tab == "Self-supervised" and w.tabs.tabText(w.tabs.currentIndex()) == "Self-supervised"
    assert w.labs["Self-supervised"].isVisible()
    box = w.lesson_panel.question_boxes[0]
    qtbot.keyClicks(box.edit, "1/4")                       # guessing one of four rotations
    qtbot.mouseClick(box.check_button, Qt.LeftButton)
    assert "Right" in box.feedback.text()
    qtbot.mouseClick(w.lesson_panel.next_button, Qt.LeftButton)
    box = w.lesson_panel.question_boxes[0]
    qtbot.keyClicks(box.edit, "4.84")                      # ln 127: the loss of 64 digits, not of 128
    qtbot.mouseClick(box.check_button, Qt.LeftButton)
    assert "Not quite" in box.feedback.text() and "ln 255" in box.feedback.text()
    qtbot.mouseClick(w.lesson_panel.next_button, Qt.LeftButton)
    box = w.lesson_panel.question_boxes[0]
    first = box.findChildren(QRadioButton)[0]
    qtbot.waitUntil(first.isVisible)
    qtbot.mouseClick(first, Qt.LeftButton)
    qtbot.mouseClick(box.check_button, Qt.LeftButton)
    assert "Right" in box.feedback.text() and w.current_tab == "Self-supervised"
    _close(w)


def test_a_broken_lesson_file_is_refused_with_its_line(qtbot, tmp_path, make_window):
    w = make_window(tmp_path / "s.ini")
    bad = tmp_path / "mine.toml"
    bad.write_text('format = 1\ntitle = "x"\nlecture = 4\n\n[[step]]\ntext = "t"\ntab = "Nowhere"\n')
    browser = LessonBrowser(w.settings, w)
    assert not browser.open_path(str(bad))
    assert not browser.error.isHidden() and browser.error.text().startswith("mine.toml, line 7: unknown tab 'Nowhere'")
    assert not w.lesson_dock.isVisible()
    _close(w)


def test_the_help_menu_opens_the_browser(qtbot, tmp_path, make_window):
    w = make_window(tmp_path / "s.ini")

    def choose():
        dialog = QApplication.activeModalWidget()
        assert isinstance(dialog, LessonBrowser)
        dialog.list.setCurrentRow(0)
        dialog.accept_current()
    QTimer.singleShot(200, choose)
    action = next(a for a in w.findChildren(QAction) if a.text() == "&Lessons…")
    assert action.shortcut().toString() == "F1"
    action.trigger()
    assert w.lesson_dock.isVisible() and w.lesson_panel.run.lesson.lecture == 2
    _close(w)


def test_lesson_on_the_command_line(tmp_path):
    out = tmp_path / "shot.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HOME": str(tmp_path)}
    r = subprocess.run([sys.executable, str(ROOT / "main.py"), "--lesson", "l3-losses", "--screenshot", str(out),
                        "--size", "1280x800"], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    assert out.stat().st_size > 10_000
    r = subprocess.run([sys.executable, str(ROOT / "main.py"), "--lesson", "nope", "--screenshot", str(out)],
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 2 and "no lesson named 'nope'" in r.stderr
    assert load_lesson("l3-losses").lecture == 3


def test_a_teachers_apostrophes_show_as_written_and_long_choices_wrap(qtbot, tmp_path, make_window):
    from gui.lessons import _ChoiceLabel
    w = make_window(tmp_path / "s.ini")
    w.resize(1280, 800)
    w.open_lesson("l8-schedules-and-regularisation")          # its text says "tab's"
    panel = w.lesson_panel
    texts = [panel.header.text(), panel.text.text()]
    for _ in range(len(panel.run.lesson.steps) - 1):
        qtbot.mouseClick(panel.next_button, Qt.LeftButton)
        texts.append(panel.text.text())
    assert any("'" in t for t in texts) and not any("&#x27;" in t or "&amp;" in t for t in texts)
    w.open_lesson("l7-optimizers-and-batchnorm")               # long answer choices
    qtbot.wait(50)
    box = w.lesson_panel.question_boxes[1]
    labels = box.findChildren(_ChoiceLabel)
    assert len(labels) == len(box.findChildren(QRadioButton)) and all(lb.wordWrap() for lb in labels)
    # the Check button stays inside the panel (the choices wrap instead of pushing it out)
    right = box.check_button.mapTo(w.lesson_panel, box.check_button.rect().topRight()).x()
    assert right <= w.lesson_panel.width()
    qtbot.mouseClick(labels[1], Qt.LeftButton)                 # clicking the words picks the choice
    assert box.group.checkedId() == 2
    _close(w)
