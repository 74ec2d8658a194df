"""Work in idle moments (gui.idle.IdleQueue) and the main window's labs prepared in them: a task waits while the
learner uses the window, while it animates and while a dialog or a held button is in the way; the labs come out
built and laid out at their tab's size, and their first click then only shows them."""
import time

import pytest
from PySide6.QtCore import QEvent, QPoint, QSettings, Qt, QTimer
from PySide6.QtTest import QTest
from PySide6.QtCore import QCoreApplication
from PySide6.QtWidgets import QApplication, QDialog, QLabel, QLineEdit, QMessageBox, QVBoxLayout, QWidget

from gui.idle import ANIMATING_UPDATES, IdleQueue
from gui.main_window import PREPARE_LABS_KEY

QUIET = 300
POLL_WAIT = 600          # more than a poll of the queue (250 ms) and a quiet moment


@pytest.fixture
def shown(qtbot):
    w = QWidget()
    lay = QVBoxLayout(w)
    lay.addWidget(QLabel("a label", w))
    edit = QLineEdit(w)
    lay.addWidget(edit)
    w.resize(300, 200)
    w.show()
    qtbot.waitExposed(w)
    edit.setFocus()
    yield w
    w.close()


def _keep_busy(qtbot, seconds: float, action) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        action()
        qtbot.wait(50)


def test_a_task_waits_for_a_quiet_moment_and_input_postpones_it(qtbot, shown):
    q = IdleQueue(shown, quiet_ms=QUIET)
    ran = []
    q.add("one", lambda: ran.append(time.monotonic()))
    start = time.monotonic()
    handle = shown.windowHandle()
    moves = iter(range(10_000))
    _keep_busy(qtbot, 1.0, lambda: QTest.mouseMove(handle, QPoint(20 + next(moves) % 50, 30)))
    assert ran == []                              # the mouse moved every 50 ms: never quiet for 300 ms
    last_input = time.monotonic()
    with qtbot.waitSignal(q.finished, timeout=3000):
        pass
    assert len(ran) == 1 and ran[0] - last_input >= QUIET / 1000 - 0.06
    assert ran[0] - start >= 1.0
    assert len(q) == 0 and not q._timer.isActive()


def test_keys_postpone_a_task_too(qtbot, shown):
    q = IdleQueue(shown, quiet_ms=QUIET)
    ran = []
    q.add("one", lambda: ran.append(1))
    edit = shown.findChild(QLineEdit)
    _keep_busy(qtbot, 0.8, lambda: QTest.keyClick(shown.windowHandle(), Qt.Key.Key_A))
    assert ran == [] and edit.text().startswith("aaaa")   # the keys reached the line edit, not the window
    qtbot.waitUntil(lambda: ran == [1], timeout=3000)


def test_input_to_another_window_of_the_app_postpones_a_task(qtbot, shown):
    """A non-modal dialog (Write your own op, a floating dock) is a window of its own: typing there is not idle."""
    dialog = QDialog(shown)
    QVBoxLayout(dialog).addWidget(QLineEdit(dialog))
    dialog.show()
    qtbot.waitExposed(dialog)
    q = IdleQueue(shown, quiet_ms=QUIET)
    ran = []
    q.add("one", lambda: ran.append(1))
    _keep_busy(qtbot, 0.8, lambda: QTest.keyClick(dialog.windowHandle(), Qt.Key.Key_B))
    assert ran == [] and dialog.findChild(QLineEdit).text().startswith("bbbb")
    qtbot.waitUntil(lambda: ran == [1], timeout=3000)
    dialog.close()


def test_the_owner_can_hold_the_tasks_while_it_is_busy(qtbot, shown):
    working = [True]
    q = IdleQueue(shown, quiet_ms=QUIET, busy=lambda: working[0])
    ran = []
    q.add("one", lambda: ran.append(1))
    qtbot.wait(QUIET + 700)
    assert ran == []
    working[0] = False
    qtbot.waitUntil(lambda: ran == [1], timeout=3000)


def test_repaint_requests_of_one_frame_count_once(qtbot, shown):
    q = IdleQueue(shown, quiet_ms=QUIET)
    q.add("one", lambda: None)
    for _ in range(3):                            # one frame reaching the widget and its window
        QCoreApplication.sendEvent(shown, QEvent(QEvent.Type.UpdateRequest))
    assert len(q._updates) == 1
    qtbot.wait(20)
    QCoreApplication.sendEvent(shown, QEvent(QEvent.Type.UpdateRequest))
    assert len(q._updates) == 2
    q.clear()


def test_an_animating_window_is_not_idle_but_a_blinking_cursor_is(qtbot, shown):
    label = shown.findChild(QLabel)
    shown.findChild(QLineEdit).clearFocus()      # its own cursor would blink too: the label is the only repaint
    q = IdleQueue(shown, quiet_ms=QUIET)
    ran = []
    q.add("one", lambda: ran.append(1))
    frames = iter(range(10_000))
    animation = QTimer()
    animation.setInterval(100)                    # 10 repaints a second: a slow animation
    animation.timeout.connect(lambda: label.setText(f"frame {next(frames)}"))
    animation.start()
    qtbot.wait(1200)
    assert ran == [] and not q.is_quiet()
    animation.setInterval(500)                    # a text cursor's blink: 2 repaints a second
    assert 2 <= ANIMATING_UPDATES
    qtbot.waitUntil(lambda: ran == [1], timeout=4000)
    animation.stop()


def test_a_modal_dialog_or_a_held_button_postpones_a_task(qtbot, shown):
    q = IdleQueue(shown, quiet_ms=QUIET)
    ran = []
    q.add("one", lambda: ran.append(1))
    box = QMessageBox(QMessageBox.Icon.Information, "A dialog", "open", QMessageBox.StandardButton.Close, shown)
    box.setWindowModality(Qt.WindowModality.ApplicationModal)
    box.show()
    qtbot.waitUntil(lambda: QApplication.activeModalWidget() is box, timeout=2000)
    qtbot.wait(900)
    assert ran == []
    box.close()
    handle = shown.windowHandle()
    QTest.mousePress(handle, Qt.MouseButton.LeftButton, pos=QPoint(40, 40))
    try:
        qtbot.wait(900)                           # a drag held still is not idle
        assert ran == []
    finally:
        QTest.mouseRelease(handle, Qt.MouseButton.LeftButton, pos=QPoint(40, 40))
    qtbot.waitUntil(lambda: ran == [1], timeout=3000)


def test_tasks_run_one_per_quiet_moment_in_order_and_a_failing_one_is_dropped(qtbot, shown):
    q = IdleQueue(shown, quiet_ms=QUIET)
    ran, done = [], []
    q.task_done.connect(done.append)

    def boom():
        ran.append("boom")
        raise RuntimeError("a lab that cannot be built now")

    q.add("a", lambda: ran.append("a"))
    q.add("boom", boom)
    q.add("b", lambda: ran.append("b"))
    assert q.pending() == ["a", "boom", "b"]
    qtbot.waitUntil(lambda: ran == ["a"], timeout=3000)
    moves = iter(range(10_000))                   # one task per quiet moment: input after the first holds the rest
    _keep_busy(qtbot, 0.8, lambda: QTest.mouseMove(shown.windowHandle(), QPoint(20 + next(moves) % 50, 30)))
    assert ran == ["a"] and q.pending() == ["boom", "b"]
    with qtbot.waitSignal(q.finished, timeout=5000):
        pass
    assert ran == ["a", "boom", "b"] and done == ["a", "b"]


def test_clear_drops_the_tasks_and_stops_watching(qtbot, shown):
    seen = []

    class Watched(IdleQueue):
        def eventFilter(self, obj, event):  # noqa: N802
            seen.append(event.type())
            return super().eventFilter(obj, event)

    q = Watched(shown, quiet_ms=QUIET)
    ran = []
    q.add("one", lambda: ran.append(1))
    QTest.mouseMove(shown.windowHandle(), QPoint(5, 5))
    assert QEvent.Type.MouseMove in seen          # watched while it has a task
    q.clear()
    seen.clear()
    QTest.mouseMove(shown.windowHandle(), QPoint(9, 9))
    shown.findChild(QLabel).setText("changed")
    qtbot.wait(QUIET + 400)
    assert ran == [] and len(q) == 0 and not q._timer.isActive()
    assert seen == []


def test_a_task_that_clears_the_queue_ends_it_without_finished(qtbot, shown):
    q = IdleQueue(shown, quiet_ms=QUIET)
    ended = []
    q.finished.connect(lambda: ended.append(1))
    q.add("clears", q.clear)
    q.add("never", lambda: ended.append("ran"))
    qtbot.waitUntil(lambda: len(q) == 0, timeout=3000)
    qtbot.wait(POLL_WAIT)
    assert ended == [] and not q._timer.isActive()


def test_a_window_that_stops_being_top_level_is_let_go(qtbot):
    """Its QWindow is destroyed when it is put inside another widget: stopping must not touch the dead window."""
    lone = QWidget()
    lone.resize(200, 100)
    lone.show()
    qtbot.waitExposed(lone)
    q = IdleQueue(lone, quiet_ms=QUIET)
    q.add("one", lambda: None)
    container = QWidget()
    lone.setParent(container)
    assert lone.windowHandle() is None
    q.clear()                                     # raised "Internal C++ object already deleted" before
    assert len(q) == 0 and not q._timer.isActive()
    container.close()


def test_the_window_prepares_every_lab_and_their_first_click_only_shows_them(qtbot, make_window, tmp_path):
    import pyqtgraph as pg

    w = make_window(tmp_path / "s.ini")
    assert w.prepare_labs_action.isChecked()      # on by default
    w.idle_tasks.quiet_ms = 200
    w.prepare_labs()
    titles = [w.tabs.tabText(i) for i in range(1, w.tabs.count())]
    assert w.idle_tasks.pending()[:4] == ["build Playground", "lay out Playground", "build Init / norm",
                                          "lay out Init / norm"]
    with qtbot.waitSignal(w.idle_tasks.finished, timeout=60_000):
        pass
    assert sorted(w.labs) == sorted(titles)
    assert w.tabs.currentIndex() == 0 and not any(lab.isVisible() for lab in w.labs.values())
    page = w.tabs.currentWidget().size()
    for i in range(1, w.tabs.count()):
        assert w.tabs.widget(i).size() == page, w.tabs.tabText(i)
    playground = w.labs["Playground"]
    sizes = [p.size() for p in playground.findChildren(pg.PlotWidget) if p.isVisibleTo(playground)]
    assert len(sizes) == 5 and all(s.width() > 150 and s.height() > 100 for s in sizes)
    bar = w.tabs.tabBar()
    index = titles.index("Playground") + 1
    qtbot.mouseClick(bar, Qt.MouseButton.LeftButton, pos=bar.tabRect(index).center())
    QApplication.processEvents()
    assert w.labs["Playground"] is playground and playground.isVisible()
    assert [p.size() for p in playground.findChildren(pg.PlotWidget) if p.isVisible()] == sizes
    w.open_lab("Interpretability")
    assert w.labs["Interpretability"].isVisible()


def test_a_lab_opened_before_its_turn_is_not_built_again_and_the_setting_is_kept(qtbot, make_window, tmp_path):
    w = make_window(tmp_path / "s.ini")
    w.idle_tasks.quiet_ms = 200
    optimizers = w.open_lab("Optimizers")
    w.prepare_labs()
    assert "build Optimizers" not in w.idle_tasks.pending() and "lay out Optimizers" not in w.idle_tasks.pending()
    w.prepare_labs_action.trigger()               # View → Prepare labs in idle moments: off
    assert len(w.idle_tasks) == 0 and not w.prepare_labs_action.isChecked()
    assert QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat).value(PREPARE_LABS_KEY, type=bool) is False
    w._on_warmup_done(0)                          # the warm-up's end starts nothing while it is off
    assert len(w.idle_tasks) == 0
    qtbot.wait(500)
    assert list(w.labs) == ["Optimizers"] and w.labs["Optimizers"] is optimizers
    w.prepare_labs_action.trigger()               # on again: the preparation starts (no warm-up is running)
    assert w.prepare_labs_action.isChecked() and w.idle_tasks.pending()[0] == "build Playground"
    again = make_window(tmp_path / "s2.ini")
    assert again.prepare_labs_action.isChecked()
    again.prepare_labs_action.trigger()
    third = make_window(tmp_path / "s2.ini")
    assert not third.prepare_labs_action.isChecked()
    third._on_warmup_done(0)
    assert len(third.idle_tasks) == 0
    w.idle_tasks.clear()
    w._on_warmup_done(0)                          # the setting is on here: the warm-up's end starts it
    assert w.idle_tasks.pending()[0] == "build Playground"


def test_the_preparation_waits_while_a_lab_has_a_job_running(qtbot, make_window, tmp_path):
    """No step runs while a built lab's job runs (its data, a first experiment, a training): the job is not slowed,
    the time a lab shows for it is not inflated, and a lab is painted hidden only once its data has arrived."""
    import threading

    from gui.jobs import JobRunner

    w = make_window(tmp_path / "s.ini")
    w.idle_tasks.quiet_ms = 200
    w._prepare_build("Optimizers")
    runner = w.labs["Optimizers"].findChildren(JobRunner)[0]
    release = threading.Event()

    def slow():
        release.wait(10)
        yield 1

    delivered = []
    runner.start("held", slow, on_done=lambda _r: delivered.append(1))
    w.prepare_labs()
    pending = w.idle_tasks.pending()
    assert pending[:2] == ["build Playground", "lay out Playground"] and "build Optimizers" not in pending
    qtbot.wait(900)                               # quiet moments pass, and nothing runs
    assert w.idle_tasks.pending() == pending and list(w.labs) == ["Optimizers"]
    release.set()
    qtbot.waitUntil(lambda: "Optimizers" in w._laid_out, timeout=30_000)
    assert delivered == [1]
    assert w._lab_holder("Optimizers").size() == w.tabs.currentWidget().size()


def test_a_lab_opened_while_queued_is_not_built_again_and_closing_drops_the_queue(qtbot, make_window, tmp_path):
    w = make_window(tmp_path / "s.ini")
    w.idle_tasks.quiet_ms = 200
    w.prepare_labs()
    assert "build Search" in w.idle_tasks.pending()
    search = w.open_lab("Search")                 # before its turn
    with qtbot.waitSignal(w.idle_tasks.finished, timeout=60_000):
        pass
    assert w.labs["Search"] is search and w._lab_holder("Search").findChildren(type(search)) == [search]
    again = make_window(tmp_path / "s2.ini")
    again.idle_tasks.quiet_ms = 200
    again.prepare_labs()
    again.undo_stack.setClean()
    again.close()
    assert len(again.idle_tasks) == 0
    qtbot.wait(600)
    assert again.labs == {}


def test_a_prepared_interpretability_lab_builds_its_other_views_once_shown(qtbot, make_window, tmp_path):
    w = make_window(tmp_path / "s.ini")
    w._prepare_build("Interpretability")
    w._prepare_layout("Interpretability")
    lab = w.labs["Interpretability"]
    qtbot.wait(500)
    assert not all(lab._built)                    # hidden: nobody sees the views yet
    w.open_lab("Interpretability")
    qtbot.waitUntil(lambda: all(lab._built), timeout=10_000)
