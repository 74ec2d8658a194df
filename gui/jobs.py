"""The one job runner: every long piece of work in every lab is a simulator generator (``simulator.core.jobs``) run here.

A job runs on its own worker thread: the generator is created and advanced there, so neither its set-up (imports,
data loading, JIT compiles) nor its loop touches the UI thread. What it yields is kept (``keep="latest"``: only the
newest item, for progress and frames; ``keep="all"``: every item, for training metrics) and ONE timer per runner
drains it at about 30 Hz, so thousands of yields a second cost one redraw per frame. Starting a job under a name
already running supersedes it (the old one is cancelled and nothing more of it is reported). Cancelling closes the
generator on its own thread (``GeneratorExit`` runs its ``finally`` blocks). A job can start paused, be paused and
resumed, and be stepped one yield at a time (the training playground's Step). Each tick is the UI's turn: the
workers hold at their next yield until the frame is painted, so a Python-bound job (training a small MLP holds the
GIL most of the time) cannot stretch a frame by making the UI thread wait for the GIL at each of its releases.

    self.jobs = JobRunner(self)
    self.jobs.start("race", lambda: model.race_job(settings), on_yield=self._draw_progress,
                    on_done=self._show_result, on_error=self._show_error)
"""
from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Generator

import numpy as np
from PySide6.QtCore import QObject, QTimer

from simulator.core.errors import StudioError

__all__ = ["JobHandle", "JobRunner", "error_text"]


def error_text(exc: BaseException) -> str:
    """What a failed job shows: a StudioError's own message (it is written for the learner); for anything else (a
    bug) the class name too, e.g. 'ZeroDivisionError: division by zero'."""
    if isinstance(exc, StudioError):
        return str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {exc}"


def _set_event() -> threading.Event:
    e = threading.Event()
    e.set()
    return e


@dataclass(eq=False)
class JobHandle:
    """One started job: its callbacks, the worker's output and its control flags (shared with the worker thread)."""

    name: str
    make: Callable[[], Generator]
    keep: str
    on_yield: Callable[[Any], Any] | None
    on_done: Callable[[Any], Any] | None
    on_error: Callable[[BaseException, str], Any] | None
    on_cancel: Callable[[], Any] | None
    ui_turn: threading.Event = field(default_factory=lambda: _set_event())  # clear while the UI draws a frame
    lock: threading.Lock = field(default_factory=threading.Lock)
    gate: threading.Event = field(default_factory=threading.Event)   # set: may advance; clear: paused
    items: list = field(default_factory=list)
    latest: Any = None
    fresh: bool = False
    steps_left: int | None = None        # stepping: this many yields, then pause again
    cancelled: bool = False
    outcome: tuple | None = None         # ("done", result) | ("error", exc) | ("cancelled",)
    thread: threading.Thread | None = None
    yields: int = 0                      # how many items the job has yielded so far

    @property
    def paused(self) -> bool:
        return not self.gate.is_set() and self.outcome is None

    def _run(self) -> None:  # the worker thread
        gen = None
        try:
            with np.errstate(all="ignore"):
                gen = self.make()
                while True:
                    self.gate.wait()
                    self.ui_turn.wait()
                    if not self.gate.is_set():
                        continue            # paused while it waited for the UI's turn: pause means no more items
                    if self.cancelled:
                        gen.close()
                        self.outcome = ("cancelled",)
                        return
                    item = next(gen)
                    with self.lock:
                        self.yields += 1
                        if self.keep == "all":
                            self.items.append(item)
                        else:
                            self.latest = item
                        self.fresh = True
                        if self.steps_left is not None:
                            self.steps_left -= 1
                            if self.steps_left <= 0:
                                self.steps_left = None
                                self.gate.clear()
        except StopIteration as stop:
            self.outcome = ("cancelled",) if self.cancelled else ("done", stop.value)
        except BaseException as exc:  # reported on the UI thread, never raised in the worker
            self.outcome = ("cancelled",) if self.cancelled else ("error", exc)

    def take(self) -> tuple[bool, Any]:
        """(True, what was yielded since the last take) or (False, None): the latest item, or the list of all."""
        with self.lock:
            if not self.fresh:
                return False, None
            self.fresh = False
            if self.keep == "all":
                items, self.items = self.items, []
                return True, items
            item, self.latest = self.latest, None
            return True, item


class JobRunner(QObject):
    """Starts, supersedes, pauses, steps and cancels jobs by name; one timer delivers their output on the UI thread."""

    TICK_MS = 33

    def __init__(self, parent: QObject | None = None, tick_ms: int | None = None):
        super().__init__(parent)
        self.handles: dict[str, JobHandle] = {}
        self._retired: list[JobHandle] = []       # superseded or cancelled, still finishing on their threads
        self.timer = QTimer(self)
        self.timer.setInterval(tick_ms or self.TICK_MS)
        self.timer.timeout.connect(self.drain)
        # The UI's turn: while a tick delivers and the window repaints, the workers wait at their next yield, so the
        # UI thread gets the GIL without waiting a switch interval at each of its many releases (a Python-bound job,
        # such as training a small MLP, would otherwise slow every frame several times over).
        self.ui_turn = _set_event()
        self._turn_back = QTimer(self)
        self._turn_back.setSingleShot(True)
        self._turn_back.setInterval(0)
        self._turn_back.timeout.connect(self.ui_turn.set)
        self.closed = False

    # ------------------------------------------------------------------------------------------------ control
    def start(self, name: str, make: Callable[[], Generator], *, on_yield: Callable[[Any], Any] | None = None,
              on_done: Callable[[Any], Any] | None = None,
              on_error: Callable[[BaseException, str], Any] | None = None,
              on_cancel: Callable[[], Any] | None = None, keep: str = "latest", paused: bool = False) -> JobHandle:
        """Run ``make()`` (which returns a generator) on a worker thread. ``on_yield`` gets the latest item (or, with
        keep="all", the list of items since the last tick); ``on_done(result)``, ``on_error(exc, text)`` or
        ``on_cancel()`` ends it. A job of the same name still running is superseded."""
        if keep not in ("latest", "all"):
            raise ValueError(f"keep must be 'latest' or 'all', got {keep!r}")
        self.cancel(name, notify=False)
        h = JobHandle(name, make, keep, on_yield, on_done, on_error, on_cancel, self.ui_turn)
        if not paused:
            h.gate.set()
        if self.closed:
            return h
        h.thread = threading.Thread(target=h._run, name=f"job:{name}", daemon=True)
        self.handles[name] = h
        h.thread.start()
        self.timer.start()
        return h

    def cancel(self, name: str, notify: bool = True) -> None:
        """Stop the job: its generator is closed on its thread; ``on_cancel`` runs (unless notify is False). A job
        that has already ended but not yet been delivered is delivered as it ended (its result is not thrown away)."""
        h = self.handles.get(name)
        if h is None:
            return
        if h.outcome is not None and notify:
            self._deliver(name, h)
            return
        del self.handles[name]
        h.cancelled = True
        h.gate.set()
        self._retired.append(h)
        if notify and h.on_cancel is not None:
            h.on_cancel()

    def pause(self, name: str) -> None:
        h = self.handles.get(name)
        if h is not None:
            with h.lock:
                h.steps_left = None
                h.gate.clear()

    def resume(self, name: str) -> None:
        h = self.handles.get(name)
        if h is not None:
            with h.lock:
                h.steps_left = None
                h.gate.set()

    def step(self, name: str, n: int = 1) -> None:
        """Let a paused job advance by n yields, then pause it again."""
        h = self.handles.get(name)
        if h is not None and h.paused:
            with h.lock:
                h.steps_left = n
                h.gate.set()

    def running(self, name: str | None = None) -> bool:
        return bool(self.handles) if name is None else name in self.handles

    def state(self, name: str) -> str | None:
        """'running', 'paused' or None (no such job, or it ended)."""
        h = self.handles.get(name)
        if h is None:
            return None
        return "paused" if h.paused else "running"

    # --------------------------------------------------------------------------------------------- UI thread
    def drain(self) -> None:
        """Deliver what every job yielded since the last tick, then the ends of finished jobs."""
        self.ui_turn.clear()
        self._turn_back.start()                          # the workers go on once this frame has been painted
        for name, h in list(self.handles.items()):
            if self.handles.get(name) is not h:          # superseded by a callback earlier in this tick
                continue
            try:
                fresh, item = h.take()
                if fresh and h.on_yield is not None:
                    h.on_yield(item)
                if h.outcome is not None and self.handles.get(name) is h:
                    self._deliver(name, h)
            except Exception:
                # A bug in a view's callback: stop that job (its next tick would fail the same way) and report
                # once, instead of one error dialog per tick.
                if self.handles.get(name) is h:
                    self.cancel(name, notify=False)
                sys.excepthook(*sys.exc_info())
        self._retired = [h for h in self._retired if h.thread is not None and h.thread.is_alive()]
        if not self.handles and not self._retired:
            self.timer.stop()

    def _deliver(self, name: str, h: JobHandle) -> None:
        """The end of a finished job: what it yielded last, then on_done / on_error / on_cancel."""
        fresh, item = h.take()
        if fresh and h.on_yield is not None:
            h.on_yield(item)
        if self.handles.get(name) is h:
            del self.handles[name]
        kind = h.outcome[0]
        if kind == "done":
            if h.on_done is not None:
                h.on_done(h.outcome[1])
        elif kind == "error":
            exc = h.outcome[1]
            if h.on_error is not None:
                h.on_error(exc, error_text(exc))
            else:                                       # nobody asked: the last-resort handler shows it
                sys.excepthook(type(exc), exc, exc.__traceback__)
        elif h.on_cancel is not None:
            h.on_cancel()

    def wait(self, name: str, timeout: float = 30.0) -> bool:
        """Block until the named job's worker ends (tests, shutdown); True if it did. Its results are delivered by
        the next ``drain``."""
        h = self.handles.get(name)
        if h is None or h.thread is None:
            return True
        h.thread.join(timeout)
        return not h.thread.is_alive()

    def close(self, timeout: float = 10.0) -> None:
        """Cancel every job and wait for the workers (the window is closing): nothing is delivered any more."""
        self.closed = True
        self.timer.stop()
        self._turn_back.stop()
        self.ui_turn.set()
        for name in list(self.handles):
            self.cancel(name, notify=False)
        deadline = time.monotonic() + timeout          # one deadline for all: the workers are daemon threads
        for h in self._retired:
            if h.thread is not None:
                h.thread.join(max(0.0, deadline - time.monotonic()))
        self._retired.clear()
