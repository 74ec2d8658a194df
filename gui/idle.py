"""Work done while the learner is not using the app: a queue of short tasks, one run per quiet moment.

The app is quiet when, for ``quiet_ms``, none of its windows has had input (mouse, keys, wheel, touch: the main
window, a dialog, a floating dock), no button is held, no menu, popup or modal dialog is open, the main window is not
animating (at most ``ANIMATING_UPDATES`` repaints in the last second: a text cursor's blinking is two; playing,
training or racing is eight or more) and the owner's ``busy()`` says no (the main window's: no lab has a job running,
so no job is timed or slowed by a task). Tasks run on the UI thread, so each is one slice of work (the main window's:
build one lab, or lay one out and paint it once while hidden): a click that comes meanwhile waits for one slice at
most, and the next slice waits for the next quiet moment.

The queue watches the app (an event filter on the application: every window's input and repaint requests) only
while it has tasks: the filter is removed when the last task has run. (Watching each QWindow instead crashed: the
list of top-level windows can hold one whose widget was just reparented or deleted, and wrapping it segfaults.)
"""
from __future__ import annotations

import time
from collections import deque
from typing import Callable

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QApplication, QWidget

QUIET_MS = 1000
POLL_MS = 250
ANIMATING_UPDATES = 3      # repaints in the last second above which the window counts as animating
FRAME_S = 0.010            # repaint requests this close together are one repaint

_T = QEvent.Type
_INPUT = frozenset({
    _T.MouseButtonPress, _T.MouseButtonRelease, _T.MouseButtonDblClick, _T.MouseMove, _T.Wheel,
    _T.KeyPress, _T.KeyRelease, _T.TouchBegin, _T.TouchUpdate, _T.TouchEnd, _T.TabletPress, _T.TabletMove,
    _T.TabletRelease, _T.NativeGesture, _T.DragEnter, _T.DragMove, _T.Drop,
})


class IdleQueue(QObject):
    """Tasks (name, callable) for the app's quiet moments, run in the order added, one per moment.

    ``task_done(str)`` is emitted with a task's name after it ran, ``finished()`` when the queue has run dry. A task
    that raises is dropped (its work is left to be done when it is needed) and the queue goes on."""

    task_done = Signal(str)
    finished = Signal()

    def __init__(self, window: QWidget, quiet_ms: int = QUIET_MS, busy: Callable[[], bool] | None = None):
        super().__init__(window)                      # the queue lives and dies with its window
        self.quiet_ms = quiet_ms
        self.busy = busy
        self._tasks: deque[tuple[str, Callable[[], object]]] = deque()
        self._last_input = time.monotonic()
        self._updates: deque[float] = deque()          # when a window was last repainted (within a second)
        self._timer = QTimer(self)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self._poll)

    def __len__(self) -> int:
        return len(self._tasks)

    def pending(self) -> list[str]:
        return [name for name, _task in self._tasks]

    def add(self, name: str, task: Callable[[], object]) -> None:
        if not self._timer.isActive():
            self._last_input = time.monotonic()         # quiet is counted from now
            QApplication.instance().installEventFilter(self)
            self._timer.start()
        self._tasks.append((name, task))

    def clear(self) -> None:
        """Drop every task not run yet and stop watching the app."""
        self._tasks.clear()
        self._stop()

    def _stop(self) -> None:
        self._timer.stop()
        app = QApplication.instance()
        if app is not None:
            app.removeEventFilter(self)

    def eventFilter(self, _obj, event) -> bool:  # noqa: N802  (Qt's name)
        kind = event.type()
        if kind == _T.UpdateRequest:
            now = time.monotonic()
            if not self._updates or now - self._updates[-1] > FRAME_S:   # one frame may reach a window and a widget
                self._updates.append(now)
        elif kind in _INPUT:
            self._last_input = time.monotonic()
        return False

    def is_quiet(self) -> bool:
        now = time.monotonic()
        while self._updates and self._updates[0] < now - 1.0:
            self._updates.popleft()
        return (now - self._last_input >= self.quiet_ms / 1000 and len(self._updates) <= ANIMATING_UPDATES
                and QApplication.mouseButtons() == Qt.MouseButton.NoButton
                and QApplication.activePopupWidget() is None and QApplication.activeModalWidget() is None
                and not (self.busy is not None and self.busy()))

    def _poll(self) -> None:
        if not self._tasks or not self.is_quiet():
            return
        name, task = self._tasks.popleft()
        try:
            task()
        except Exception:  # noqa: BLE001  (left for when the work is needed, where its error is reported)
            pass
        else:
            self.task_done.emit(name)
        if not self._tasks and self._timer.isActive():  # (a task that cleared the queue has stopped it already)
            self._stop()
            self.finished.emit()
