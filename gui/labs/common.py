"""Widgets and helpers every lab shares: group boxes, the control column, captions, palettes, digit pixmaps, jobs."""
from __future__ import annotations

import threading
from typing import Any, Callable

import numpy as np
from PySide6.QtCore import Qt, QThread, QTimer, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QGroupBox, QLabel, QScrollArea, QVBoxLayout, QWidget

from gui import theme
from simulator.core.errors import StudioError

__all__ = ["CLASS_COLOURS", "ERROR_STYLE", "HYPER_FIELDS", "MUTED_STYLE", "PALETTE", "Job", "JobRunner", "JobWorker",
           "Jobs", "control_column", "digit_pixmap", "error_text", "group", "muted"]

MUTED_STYLE = f"color: {theme.MUTED_HEX};"
ERROR_STYLE = f"color: {theme.ERROR.name()};"

# Class colours (Tableau 10): strong for points, blended with white for the regions underneath.
CLASS_COLOURS = ("#4e79a7", "#e15759", "#59a14f", "#f28e2b", "#b07aa1", "#76b7b2", "#edc948", "#ff9da7",
                 "#9c755f", "#bab0ac")

# A qualitative palette (ColorBrewer Set1 with the yellow swapped for teal, plus olive/grey): distinct on the light map.
PALETTE = ("#e41a1c", "#377eb8", "#4daf4a", "#984ea3", "#ff7f00", "#a65628", "#f781bf", "#17becf", "#bcbd22",
           "#555555")

# Hyperparameters shown for each optimizer besides lr: (key, label, widget kind)
HYPER_FIELDS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "SGD": (("weight_decay", "weight decay", "decay"),),
    "Momentum": (("momentum", "momentum", "unit"), ("weight_decay", "weight decay", "decay")),
    "Nesterov": (("momentum", "momentum", "unit"), ("weight_decay", "weight decay", "decay")),
    "AdaGrad": (("eps", "eps", "log"), ("weight_decay", "weight decay", "decay")),
    "RMSProp": (("alpha", "alpha", "unit"), ("momentum", "momentum", "unit"), ("eps", "eps", "log"),
                ("weight_decay", "weight decay", "decay"), ("centered", "centered", "bool")),
    "Adam": (("beta1", "beta1", "unit"), ("beta2", "beta2", "unit"), ("eps", "eps", "log"),
             ("weight_decay", "weight decay", "decay")),
    "AdamW": (("beta1", "beta1", "unit"), ("beta2", "beta2", "unit"), ("eps", "eps", "log"),
              ("weight_decay", "weight decay", "decay")),
}


# ================================================================================================== widgets

def digit_pixmap(img: np.ndarray, size: int = 64) -> QPixmap:
    """An 8x8 digit (values 0..16) as dark ink on white, scaled up with sharp cells."""
    a = np.asarray(img, dtype=np.float64).reshape(8, 8)
    g = np.ascontiguousarray(np.round(255.0 - np.clip(a / 16.0, 0, 1) * 225.0).astype(np.uint8))
    qimg = QImage(g.data, 8, 8, 8, QImage.Format.Format_Grayscale8).copy()
    return QPixmap.fromImage(qimg.scaled(size, size, Qt.AspectRatioMode.IgnoreAspectRatio,
                                         Qt.TransformationMode.FastTransformation))


def group(title: str, layout_or_widget: Any) -> QGroupBox:
    """A titled group box around a layout, or around one widget (in a VBox with margins 6)."""
    g = QGroupBox(title)
    if isinstance(layout_or_widget, QWidget):
        lay = QVBoxLayout()
        lay.setContentsMargins(6, 6, 6, 6)
        lay.addWidget(layout_or_widget)
        g.setLayout(lay)
    else:
        g.setLayout(layout_or_widget)
    return g


def muted(text: str, point_size: float | None = None) -> QLabel:
    """A word-wrapped caption in the muted text colour (optionally at a given font size)."""
    lab = QLabel(text)
    lab.setStyleSheet(MUTED_STYLE if point_size is None else f"{MUTED_STYLE} font-size: {point_size}pt;")
    lab.setWordWrap(True)
    return lab


def control_column(widgets: Any, width: int | None = None, min_width: int | None = None) -> QScrollArea:
    """The lab's left control column: the widgets stacked (margins 6) above a stretch, in a frameless scroll area
    that only scrolls vertically; ``width`` fixes its width, ``min_width`` sets a minimum."""
    column = QWidget()
    col = QVBoxLayout(column)
    col.setContentsMargins(6, 6, 6, 6)
    for w in widgets:
        col.addWidget(w)
    col.addStretch(1)
    scroll = QScrollArea()
    scroll.setWidget(column)
    scroll.setWidgetResizable(True)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    scroll.setFrameShape(QScrollArea.Shape.NoFrame)
    if width is not None:
        scroll.setFixedWidth(width)
    if min_width is not None:
        scroll.setMinimumWidth(min_width)
    return scroll


# ================================================================================================== jobs, pushed

def error_text(exc: BaseException) -> str:
    """What a failed job shows: a StudioError's own message (it is written for the user); for anything else (a bug)
    the class name too, e.g. 'ZeroDivisionError: division by zero'."""
    if isinstance(exc, StudioError):
        return str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {exc}"

# Two job helpers with different contracts, kept apart on purpose: JobWorker/Jobs push results through queued
# signals (one kind of job per Jobs, stale generations dropped); Job/JobRunner are polled by one QTimer per lab
# (several kinds, only the latest progress kept). See each class.

class JobWorker(QThread):
    """Runs fn(progress, cancelled) off the GUI thread; reports (generation, result) or (generation, message)."""

    job_finished = Signal(int, object)
    job_failed = Signal(int, str)
    job_progressed = Signal(int, int, int)       # generation, done, total

    def __init__(self, fn: Callable[[Callable[[int, int], None], Callable[[], bool]], Any], generation: int,
                 parent: Any = None):
        super().__init__(parent)
        self.fn = fn
        self.generation = generation
        self.cancel_requested = False

    def run(self) -> None:  # worker thread
        try:
            result = self.fn(lambda d, t: self.job_progressed.emit(self.generation, d, t),
                             lambda: self.cancel_requested)
        except Exception as exc:  # reported to the GUI, never raised in the thread
            self.job_failed.emit(self.generation, error_text(exc))
            return
        self.job_finished.emit(self.generation, result)


class Jobs:
    """One kind of background job: starting a new one makes earlier results stale; close() waits for all."""

    def __init__(self, owner: QWidget, on_done: Callable[[Any], None], on_failed: Callable[[str], None],
                 on_progress: Callable[[int, int], None] | None = None):
        self.owner, self.on_done, self.on_failed, self.on_progress = owner, on_done, on_failed, on_progress
        self.generation = 0
        self.workers: list[JobWorker] = []
        self.closed = False

    def start(self, fn) -> None:
        if self.closed:
            return
        self.generation += 1
        for w in self.workers:
            w.cancel_requested = True
        w = JobWorker(fn, self.generation, self.owner)
        w.job_finished.connect(self._finished)
        w.job_failed.connect(self._failed)
        w.job_progressed.connect(self._progressed)
        w.finished.connect(lambda w=w: self._reap(w))
        self.workers.append(w)
        w.start()

    def busy(self) -> bool:
        return any(w.generation == self.generation for w in self.workers)

    def cancel(self) -> None:
        """Ask every running job to stop and drop whatever they still report."""
        self.generation += 1
        for w in self.workers:
            w.cancel_requested = True

    def _finished(self, gen: int, result: Any) -> None:
        if gen == self.generation and not self.closed:
            self.on_done(result)

    def _failed(self, gen: int, msg: str) -> None:
        if gen == self.generation and not self.closed:
            self.on_failed(msg)

    def _progressed(self, gen: int, done: int, total: int) -> None:
        if gen == self.generation and not self.closed and self.on_progress is not None:
            self.on_progress(done, total)

    def _reap(self, w: JobWorker) -> None:
        if w in self.workers:
            self.workers.remove(w)
            w.deleteLater()

    def close(self) -> None:
        self.closed = True
        for w in list(self.workers):
            w.cancel_requested = True
            for sig in (w.job_finished, w.job_failed, w.job_progressed):
                try:
                    sig.disconnect()
                except (RuntimeError, TypeError):
                    pass
            w.wait()
        self.workers.clear()


# ================================================================================================== jobs, polled

class Job(QThread):
    """Runs ``fn(report, should_stop)`` off the GUI thread. ``report(obj)`` keeps only the latest progress; the lab's
    one timer takes it with ``take_progress()`` and reads ``result`` / ``error`` once ``isFinished()``."""

    def __init__(self, kind: str, fn: Callable[[Callable[[Any], None], Callable[[], bool]], Any],
                 generation: int = 0, parent: Any = None):
        super().__init__(parent)
        self.kind = kind
        self.generation = generation
        self._fn = fn
        self._lock = threading.Lock()
        self._progress: Any = None
        self._fresh = False
        self._cancel = False
        self.result: Any = None
        self.error: str | None = None

    def run(self) -> None:  # worker thread
        try:
            with np.errstate(all="ignore"):
                self.result = self._fn(self._report, self.is_cancelled)
        except Exception as exc:  # reported in the lab, never raised in the thread
            self.error = error_text(exc)

    def _report(self, obj: Any) -> None:
        with self._lock:
            self._progress = obj
            self._fresh = True

    def take_progress(self) -> Any:
        """The latest progress since the last call, or None."""
        with self._lock:
            if not self._fresh:
                return None
            self._fresh = False
            return self._progress

    def cancel(self) -> None:
        self._cancel = True

    def is_cancelled(self) -> bool:
        return self._cancel


class JobRunner:
    """The lab's jobs by kind (a new job of a kind cancels the old one) and the ONE timer that polls them."""

    TICK_MS = 40

    def __init__(self, owner: QWidget, on_progress: Callable[[Job, Any], None], on_done: Callable[[Job], None]):
        self.jobs: dict[str, Job] = {}
        self._old: list[Job] = []
        self._on_progress = on_progress
        self._on_done = on_done
        self.timer = QTimer(owner)
        self.timer.setInterval(self.TICK_MS)
        self.timer.timeout.connect(self.poll)
        self.closed = False

    def start(self, job: Job) -> None:
        if self.closed:
            return
        old = self.jobs.pop(job.kind, None)
        if old is not None:
            old.cancel()
            self._old.append(old)
        self.jobs[job.kind] = job
        job.start()
        self.timer.start()

    def busy(self, kind: str | None = None) -> bool:
        return bool(self.jobs) if kind is None else kind in self.jobs

    def cancel(self, kind: str) -> None:
        if kind in self.jobs:
            self.jobs[kind].cancel()

    def poll(self) -> None:
        for kind, job in list(self.jobs.items()):
            p = job.take_progress()
            if p is not None:
                self._on_progress(job, p)
            if job.isFinished():
                del self.jobs[kind]
                p = job.take_progress()
                if p is not None:
                    self._on_progress(job, p)
                self._on_done(job)
        self._old = [j for j in self._old if not j.isFinished()]
        if not self.jobs and not self._old:
            self.timer.stop()

    def close(self) -> None:
        self.closed = True
        self.timer.stop()
        for job in [*self.jobs.values(), *self._old]:
            job.cancel()
            job.wait()
        self.jobs.clear()
        self._old.clear()
