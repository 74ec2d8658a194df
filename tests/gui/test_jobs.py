"""gui.jobs.JobRunner: generators on worker threads, output coalesced by one timer, supersede, pause/step, cancel,
errors reported as text."""
import threading
import time

import pytest

from gui.jobs import JobRunner
from simulator.core.errors import ValueInputError
from simulator.core.jobs import Progress


@pytest.fixture
def runner(qtbot):
    r = JobRunner()
    yield r
    r.close()


def _forever(closed):
    """A job that runs until cancelled and records that its generator was closed."""
    def job():
        try:
            while True:
                time.sleep(0.001)
                yield 1
        finally:
            closed.append(True)
    return job


def counting(n, thread_names=None, delay=0.0):
    if thread_names is not None:
        thread_names.append(threading.current_thread().name)
    total = 0
    for i in range(n):
        total += i
        if delay:
            time.sleep(delay)
        yield Progress(i + 1, n)
    return total


def test_a_job_runs_off_the_ui_thread_and_reports_its_result(qtbot, runner):
    names, seen, done = [], [], []
    runner.start("sum", lambda: counting(1000, names), on_yield=seen.append, on_done=done.append)
    qtbot.waitUntil(lambda: bool(done), timeout=5000)
    assert done == [sum(range(1000))]
    assert names == ["job:sum"] and threading.current_thread().name != "job:sum"
    # keep="latest" coalesces: far fewer deliveries than yields, and the last one is the final progress
    assert 1 <= len(seen) < 1000 and seen[-1] == Progress(1000, 1000)
    assert not runner.running()


def test_keep_all_delivers_every_item_in_order(qtbot, runner):
    batches, done = [], []
    runner.start("all", lambda: counting(500), on_yield=batches.append, on_done=done.append, keep="all")
    qtbot.waitUntil(lambda: bool(done), timeout=5000)
    items = [p.done for batch in batches for p in batch]
    assert items == list(range(1, 501))


def test_a_new_job_of_the_same_name_supersedes_the_old(qtbot, runner):
    old_done, new_done, closed = [], [], []

    def slow():
        try:
            for i in range(10_000):
                time.sleep(0.001)
                yield i
        finally:
            closed.append(True)
        return "old"

    runner.start("work", slow, on_done=old_done.append)
    qtbot.wait(30)
    runner.start("work", lambda: counting(3), on_done=new_done.append)
    qtbot.waitUntil(lambda: bool(new_done and closed), timeout=5000)
    qtbot.wait(100)
    assert new_done == [3] and old_done == [] and closed == [True]


def test_pause_step_resume(qtbot, runner):
    seen, done = [], []
    runner.start("train", lambda: counting(50), on_yield=lambda b: seen.extend(p.done for p in b),
                 on_done=done.append, keep="all", paused=True)
    qtbot.wait(100)
    assert seen == [] and runner.state("train") == "paused"
    runner.step("train")
    qtbot.waitUntil(lambda: bool(seen == [1]), timeout=3000)
    runner.step("train", 3)
    qtbot.waitUntil(lambda: seen == [1, 2, 3, 4], timeout=3000)
    qtbot.wait(100)
    assert seen == [1, 2, 3, 4] and runner.state("train") == "paused"
    runner.resume("train")
    qtbot.waitUntil(lambda: bool(done), timeout=3000)
    assert seen == list(range(1, 51)) and done == [sum(range(50))]


def test_cancel_closes_the_generator_and_reports_cancel(qtbot, runner):
    closed, cancelled, done = [], [], []

    forever = _forever(closed)

    runner.start("loop", forever, on_done=done.append, on_cancel=lambda: cancelled.append(True))
    qtbot.wait(50)
    runner.cancel("loop")
    qtbot.waitUntil(lambda: bool(closed), timeout=3000)
    assert cancelled == [True] and done == [] and not runner.running("loop")


def test_workers_wait_while_the_ui_thread_draws_a_frame(qtbot, runner):
    """A tick is the UI's turn: the workers hold at their next yield until the frame is painted (the zero timer
    after the tick), so a Python-bound job never makes the UI thread wait for the GIL mid-frame."""
    handle = runner.start("loop", _forever([]))
    qtbot.waitUntil(lambda: handle.yields > 5, timeout=3000)
    runner.drain()                                   # a tick, as the timer would run it
    frozen = handle.yields
    time.sleep(0.1)                                  # no event processed: the frame is still being drawn
    assert handle.yields <= frozen + 1               # at most the item it was computing when the tick began
    qtbot.waitUntil(lambda: handle.yields > frozen + 5, timeout=3000)   # the event loop ran: the turn is back
    runner.close()
    assert runner.ui_turn.is_set()                   # closing never leaves a worker waiting for a turn


def test_a_pause_during_the_uis_turn_stops_the_job_at_once(qtbot, runner):
    """A worker waiting for the UI's turn when the job is paused must not produce one more item once the turn is
    back (the Playground's Pause, then Step, counts on it)."""
    def instant():
        n = 0
        while True:
            n += 1
            yield n
    handle = runner.start("loop", instant)
    qtbot.waitUntil(lambda: handle.yields > 5, timeout=3000)
    runner.drain()                                   # the UI's turn: the worker now waits for it
    time.sleep(0.05)
    frozen = handle.yields
    runner.pause("loop")
    qtbot.wait(150)                                  # the turn comes back; the job is paused
    assert handle.yields == frozen and runner.state("loop") == "paused"
    runner.step("loop")
    qtbot.waitUntil(lambda: handle.yields == frozen + 1, timeout=3000)
    qtbot.wait(100)
    assert handle.yields == frozen + 1


def test_errors_come_back_as_text(qtbot, runner):
    errors = []

    def bad():
        yield 1
        raise ValueInputError("the learning rate must be > 0")

    def bug():
        yield 1
        return 1 / 0

    runner.start("bad", bad, on_error=lambda exc, text: errors.append((type(exc), text)))
    runner.start("bug", bug, on_error=lambda exc, text: errors.append((type(exc), text)))
    qtbot.waitUntil(lambda: bool(len(errors) == 2), timeout=3000)
    assert (ValueInputError, "the learning rate must be > 0") in errors
    assert (ZeroDivisionError, "ZeroDivisionError: division by zero") in errors


def test_close_cancels_everything_and_waits(qtbot):
    r = JobRunner()
    closed = []

    forever = _forever(closed)

    a = r.start("a", forever)
    b = r.start("b", forever, paused=True)       # never started: closing it runs no finally
    qtbot.wait(30)
    r.close()
    assert closed == [True]
    assert not r.running() and not a.thread.is_alive() and not b.thread.is_alive()


# ---------------------------------------------------------------------------------------------- forms from params

from dataclasses import dataclass  # noqa: E402

from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QSpinBox  # noqa: E402

from gui.forms import LogSpinBox, ParamForm  # noqa: E402
from simulator.core.params import Settings, param  # noqa: E402


@dataclass(frozen=True)
class _Demo(Settings):
    optimizer: str = param("Adam", choices=("SGD", "Adam"), doc="the update rule")
    lr: float = param(1e-2, low=0, low_open=True, log=True, label="learning rate")
    batch: int = param(32, low=1, high=4096)
    momentum: float = param(0.9, low=0, high=1)
    shuffle: bool = param(True)


def test_a_form_is_built_from_the_declarations(qtbot):
    form = ParamForm(_Demo)
    qtbot.addWidget(form)
    w = form.widgets
    assert isinstance(w["optimizer"], QComboBox) and w["optimizer"].toolTip() == "the update rule"
    assert isinstance(w["lr"], LogSpinBox) and isinstance(w["momentum"], QDoubleSpinBox)
    assert isinstance(w["batch"], QSpinBox) and (w["batch"].minimum(), w["batch"].maximum()) == (1, 4096)
    assert isinstance(w["shuffle"], QCheckBox) and w["shuffle"].isChecked()
    assert (w["momentum"].minimum(), w["momentum"].maximum()) == (0.0, 1.0)
    assert form.value() == _Demo()


def test_editing_the_form_changes_the_settings_and_set_value_shows_them(qtbot):
    form = ParamForm(_Demo, only=("optimizer", "batch"))
    qtbot.addWidget(form)
    edits = []
    form.edited.connect(lambda: edits.append(1))
    form.widgets["optimizer"].setCurrentIndex(0)
    form.widgets["batch"].setValue(64)
    assert edits and form.value() == _Demo(optimizer="SGD", batch=64)
    edits.clear()
    form.set_value(_Demo(optimizer="Adam", batch=8, lr=0.5))
    assert edits == [] and form.value() == _Demo(optimizer="Adam", batch=8, lr=0.5)


def test_a_bool_parameter_is_a_check_box_named_by_its_label(qtbot):
    from PySide6.QtCore import Qt
    form = ParamForm(_Demo, only=("shuffle",))
    qtbot.addWidget(form)
    form.show()
    box = form.widgets["shuffle"]
    assert box.text() == "shuffle"
    qtbot.mouseClick(box, Qt.LeftButton, pos=box.rect().center())    # the text is part of the click target
    assert form.value().shuffle is False


def test_a_strength_that_may_be_off_steps_from_zero_to_its_lowest_decade(qtbot):
    from gui.forms import ZeroLogSpinBox
    from simulator.nn.network import Objective
    form = ParamForm(Objective)
    qtbot.addWidget(form)
    box = form.widgets["reg"]
    assert isinstance(box, ZeroLogSpinBox) and box.value() == 0.0 and box.text() == "0 (off)"
    box.stepBy(1)
    assert box.value() == ZeroLogSpinBox.LOWEST
    box.stepBy(4)
    assert box.value() == pytest.approx(10 * ZeroLogSpinBox.LOWEST)
    box.stepBy(-4)
    box.stepBy(-1)
    assert box.value() == 0.0
    loss = form.widgets["loss"]
    assert [loss.itemText(i) for i in range(loss.count())] == ["softmax cross-entropy", "multiclass SVM",
                                                                "MSE (one-hot)"]
    loss.setCurrentIndex(1)
    assert form.value() == Objective(loss="svm")


def test_learning_rates_are_plain_log_boxes_that_never_offer_zero(qtbot):
    from gui.forms import ZeroLogSpinBox, param_widget
    from simulator.functional.optim import OPTIMIZERS
    from simulator.core.params import params_of
    from simulator.functional.schedules import CosineDecay
    lr = param_widget(OPTIMIZERS["SGD"].params[0])
    base = param_widget(next(p for p in params_of(CosineDecay) if p.name == "base_lr"))
    for box in (lr, base):
        qtbot.addWidget(box)
        assert isinstance(box, LogSpinBox) and not isinstance(box, ZeroLogSpinBox) and box.minimum() > 0
        box.setValue(box.minimum())
        box.stepBy(-3)
        assert box.value() > 0


def test_a_failing_callback_stops_its_job_and_is_reported_once(qtbot, monkeypatch):
    import sys
    reported = []
    monkeypatch.setattr(sys, "excepthook", lambda kind, value, tb: reported.append(kind))
    r = JobRunner()
    closed = []

    forever = _forever(closed)

    def broken(_item):
        raise RuntimeError("a drawing bug")

    r.start("train", forever, on_yield=broken)
    qtbot.waitUntil(lambda: bool(closed), timeout=3000)
    qtbot.wait(100)
    assert reported == [RuntimeError] and not r.running("train")
    r.close()


def test_cancelling_a_job_that_already_ended_delivers_its_result(qtbot, runner):
    done, cancelled = [], []
    runner.start("quick", lambda: counting(3), on_done=done.append, on_cancel=lambda: cancelled.append(True))
    runner.wait("quick")
    runner.cancel("quick")              # the learner clicked Cancel in the tick the job finished
    assert done == [3] and cancelled == []


def test_an_error_nobody_handles_reaches_the_last_resort_handler(qtbot, runner, monkeypatch):
    import sys
    reported = []
    monkeypatch.setattr(sys, "excepthook", lambda kind, value, tb: reported.append(str(value)))

    def bad():
        yield 1
        raise ValueInputError("refused")

    runner.start("bad", bad)
    qtbot.waitUntil(lambda: bool(reported), timeout=3000)
    assert reported == ["refused"]
