"""Background jobs on QThreads: long work never runs on the GUI thread; results come back through signals."""
from __future__ import annotations

from PySide6.QtCore import QThread, Signal


class WarmupWorker(QThread):
    """Compiles (or loads from Numba's cache) every kernel, reporting progress, so the first step is instant."""

    progressed = Signal(int, int, str)
    failed = Signal(str)

    def run(self) -> None:  # runs in the worker thread
        try:
            from kernels.warmup import warmup
            warmup(lambda done, total, name: self.progressed.emit(done, total, name))
        except Exception as exc:  # a kernel that fails to compile must not take the app down; say so instead
            self.failed.emit(f"{type(exc).__name__}: {exc}")
