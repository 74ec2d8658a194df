"""Background jobs on QThreads: long work never runs on the GUI thread; results come back through signals."""
from __future__ import annotations

from PySide6.QtCore import QThread, Signal


class _Cancelled(Exception):
    """Raised from the progress callback to stop the warm-up when the app closes."""


class WarmupWorker(QThread):
    """Compiles (or loads from Numba's cache) every kernel, reporting progress, so the first step is instant."""

    progressed = Signal(int, int, str)
    failed = Signal(str)

    def run(self) -> None:  # runs in the worker thread
        def progress(done: int, total: int, name: str) -> None:
            self.progressed.emit(done, total, name)
            if self.isInterruptionRequested():
                raise _Cancelled
        try:
            from kernels.warmup import warmup
            warmup(progress)
        except _Cancelled:
            return
        except Exception as exc:  # a kernel that fails to compile must not take the app down; say so instead
            self.failed.emit(f"{type(exc).__name__}: {exc}")
