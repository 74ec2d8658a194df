"""The step player: a Trace of the current graph and a position in it, advanced by one QTimer.

The trace is rebuilt whenever the graph changes (debounced); the position is kept, so changing an input value
re-runs the passes and leaves the learner at the same step.
"""
from __future__ import annotations

from PySide6.QtCore import QObject, QTimer, Signal

from simulator import Graph, StudioError, Trace


class StepPlayer(QObject):
    """Owns the Trace and the position k (0 = nothing computed, len(trace) = both passes done)."""

    position_changed = Signal(int)
    trace_rebuilt = Signal()
    trace_failed = Signal(str)
    playing_changed = Signal(bool)

    def __init__(self, graph: Graph, parent: QObject | None = None):
        super().__init__(parent)
        self._graph = graph
        self.trace: Trace | None = None
        self.error: str | None = None
        self.learning_rate: float | None = None  # set: the trace ends with a gradient-descent update
        self.position = 0
        self._timer = QTimer(self)
        self._timer.timeout.connect(self._on_tick)
        self.set_speed(2.0)
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(0)
        self._debounce.timeout.connect(self.rebuild)
        graph.changed.connect(self._on_graph_changed)
        self.rebuild()

    def close(self) -> None:
        self._timer.stop()
        self._debounce.stop()
        self._graph.changed.disconnect(self._on_graph_changed)

    # ---- the trace ------------------------------------------------------------------------------------------

    def _on_graph_changed(self, change) -> None:
        if change.kind == "node_moved":
            return
        self._debounce.start()

    def rebuild(self) -> None:
        """Record the passes again for the graph as it is now, keeping the position where possible."""
        self._debounce.stop()
        try:
            self.trace = Trace(self._graph, self.learning_rate)
            self.error = None
        except StudioError as exc:
            self.trace = None
            self.error = str(exc)
        except Exception as exc:  # an op failing on odd values must not take the window down
            self.trace = None
            first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
            self.error = f"The computation failed ({type(exc).__name__}{': ' + first if first else ''})."
        if self.trace is None:
            self.pause()
            self.position = 0
            self.trace_failed.emit(self.error)
        else:
            self.position = min(self.position, len(self.trace))
            self.trace_rebuilt.emit()
        self.position_changed.emit(self.position)

    def set_learning_rate(self, lr: float | None) -> None:
        """None: forward and backward only; a number: also step through p ← p − lr · dL/dp."""
        if lr != self.learning_rate:
            self.learning_rate = lr
            self.rebuild()

    def flush(self) -> None:
        """Rebuild now if a rebuild is pending (tests and exports want the current trace)."""
        if self._debounce.isActive():
            self.rebuild()

    @property
    def length(self) -> int:
        return len(self.trace) if self.trace is not None else 0

    def state(self):
        return self.trace.state_at(self.position) if self.trace is not None else None

    def label(self) -> str:
        if self.trace is None:
            return "Cannot run"
        return self.trace.label(self.position)

    # ---- moving ---------------------------------------------------------------------------------------------

    def seek(self, k: int) -> None:
        k = max(0, min(int(k), self.length))
        if k != self.position:
            self.position = k
            self.position_changed.emit(k)

    def step_forward(self) -> None:
        self.seek(self.position + 1)

    def step_back(self) -> None:
        self.seek(self.position - 1)

    def reset(self) -> None:
        self.pause()
        self.seek(0)

    def to_end(self) -> None:
        self.seek(self.length)

    # ---- playing --------------------------------------------------------------------------------------------

    def set_speed(self, steps_per_second: float) -> None:
        self.speed = max(0.25, min(float(steps_per_second), 20.0))
        self._timer.setInterval(int(1000 / self.speed))

    @property
    def playing(self) -> bool:
        return self._timer.isActive()

    def play(self) -> None:
        if self.trace is None:
            return
        if self.position >= self.length:
            self.seek(0)
        self._timer.start()
        self.playing_changed.emit(True)

    def pause(self) -> None:
        if self._timer.isActive():
            self._timer.stop()
            self.playing_changed.emit(False)

    def toggle(self) -> None:
        self.pause() if self.playing else self.play()

    def _on_tick(self) -> None:
        if self.position >= self.length:
            self.pause()
            return
        self.step_forward()
        if self.position >= self.length:
            self.pause()
