"""The step player: a Trace of the current graph and a position in it, played by the shared frame-player.

The trace is rebuilt whenever the graph changes (debounced); the position is kept, so changing an input value
re-runs the passes and leaves the learner at the same step. Position, playing and the one playback timer belong to
a ``gui.frame_player.FramePlayer`` (frames 0 .. len(trace)), the mechanism the convolution lab and the optimizer
race use too; this class adds the trace, its rebuilds and the Backprop tab's names.
"""
from __future__ import annotations

from PySide6.QtCore import QObject, QTimer, Signal

from gui.frame_player import FramePlayer
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
        self.frame_player = FramePlayer(self)       # frame k = position k; its timer is the one playback timer
        self._rebuilding = False
        self.frame_player.frame_changed.connect(self._on_frame_changed)
        self.frame_player.playing_changed.connect(self.playing_changed)
        self.set_speed(2.0)
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(0)
        self._debounce.timeout.connect(self.rebuild)
        graph.changed.connect(self._on_graph_changed)
        self.rebuild()

    def close(self) -> None:
        self.frame_player.pause()
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
        # the new length clamps the position silently (no trace: count 0, which pauses): listeners hear trace_rebuilt or
        # trace_failed first, then exactly one position_changed, as before
        self._rebuilding = True
        try:
            self.frame_player.set_count(0 if self.trace is None else len(self.trace) + 1)
        finally:
            self._rebuilding = False
        if self.trace is None:
            self.trace_failed.emit(self.error)
        else:
            self.trace_rebuilt.emit()
        self.position_changed.emit(self.position)

    def _on_frame_changed(self, k: int) -> None:
        if not self._rebuilding:
            self.position_changed.emit(k)

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
    def position(self) -> int:
        """0 = nothing computed, ``length`` = every step of the trace shown."""
        return self.frame_player.frame

    @property
    def length(self) -> int:
        return len(self.trace) if self.trace is not None else 0

    def state(self):
        return self.trace.state_at(self.position) if self.trace is not None else None

    def label(self) -> str:
        if self.trace is None:
            return "Cannot run"
        return self.trace.label(self.position)

    # ---- moving: all through the frame-player (stepping pauses, as in every player) -------------------------

    def seek(self, k: int) -> None:
        self.frame_player.seek(k)

    def step_forward(self) -> None:
        self.frame_player.step()

    def step_back(self) -> None:
        self.frame_player.back()

    def reset(self) -> None:
        self.frame_player.rewind()

    def to_end(self) -> None:
        self.frame_player.seek(self.length)

    # ---- playing --------------------------------------------------------------------------------------------

    def set_speed(self, steps_per_second: float) -> None:
        """Steps per second (0.25 .. 20): one step per tick, the tick interval follows."""
        self.speed = max(0.25, min(float(steps_per_second), 20.0))
        self.frame_player.set_interval(int(1000 / self.speed))

    @property
    def playing(self) -> bool:
        return self.frame_player.is_playing()

    def play(self) -> None:
        if self.trace is not None:
            self.frame_player.play()            # from the end: starts again at 0

    def pause(self) -> None:
        self.frame_player.pause()

    def toggle(self) -> None:
        self.pause() if self.playing else self.play()
