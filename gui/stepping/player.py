"""The step player: a Trace of the current graph and a position in it, played by the shared frame-player.

The trace is rebuilt whenever the graph changes (debounced); the position is kept, so changing an input value
re-runs the passes and leaves the learner at the same step. Position, playing and the one playback timer belong to
a ``gui.frame_player.FramePlayer`` (frames 0 .. len(trace)), the mechanism the convolution lab and the optimizer
race use too; this class adds the trace, its rebuilds and the Backprop tab's names.

Small graphs (at most ``ASYNC_NODES`` nodes: every lecture example) are rebuilt on the UI thread, at once. A larger
graph, or one holding an op of the learner's (its forward and backward run in the sandbox process, up to 3 s a
call), is rebuilt on a worker thread through the window's ``JobRunner``, from a copy of the graph taken on the UI
thread: while it runs the player keeps the old trace (or none; the canvas itself drops its numbers on any edit),
``busy`` is True (``busy_changed``), ``label()`` says "Recomputing…" and the player does not move (stepping, seeking
and playing wait; playback paused by the rebuild resumes when it lands), so nothing shows a mix of the old trace and
the new one. A newer edit supersedes it; builds run one at a time (a superseded build still running finishes first,
a superseded one still waiting never starts). When it lands, listeners hear exactly what a synchronous rebuild
says. ``flush()`` always ends with the current trace: a pending or running rebuild is done synchronously there.
"""
from __future__ import annotations

import threading

from PySide6.QtCore import QObject, QTimer, Signal

from gui.frame_player import FramePlayer
from simulator import Graph, StudioError, Trace
from simulator.engine.user_ops import USER_FAMILY
from simulator.ops.registry import REGISTRY

# Above this many nodes the trace is built off the UI thread. Measured on the 2-core machine under the usual load
# (other processes busy): a Trace of a graph mixing sigmoid, tanh, relu, exp, log, + and * takes 15 ms (median) at
# 144 nodes, 19 ms at 173 and 25 ms at 231; a sum of products costs less per node (10 ms at 199). So up to 150 nodes a
# rebuild fits in one 60 Hz frame and stays synchronous (the largest lecture example has 15 nodes).
ASYNC_NODES = 150
JOB_NAME = "stepper trace"
RECOMPUTING = "Recomputing…"


def failure_text(exc: BaseException) -> str:
    """What the stepper shows when the passes cannot run: a StudioError's own message; anything else (an op failing
    on odd values) in one short line with its class name."""
    if isinstance(exc, StudioError):
        return str(exc)
    first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
    return f"The computation failed ({type(exc).__name__}{': ' + first if first else ''})."


def build_trace(graph: Graph, learning_rate: float | None) -> tuple[Trace | None, str | None]:
    """(trace, None), or (None, what to show): the one place a stepper trace is built, on either thread."""
    try:
        return Trace(graph, learning_rate), None
    except Exception as exc:  # noqa: BLE001  (an op failing on odd values must not take the window down)
        return None, failure_text(exc)


def holds_learner_op(graph: Graph) -> bool:
    """Does the graph use an op of the learner's (run in the sandbox process)?"""
    for node in graph:
        if node.kind == "op":
            spec = REGISTRY.get(node.op)
            if spec is not None and spec.family == USER_FAMILY:
                return True
    return False


def _trace_job(graph: Graph, learning_rate: float | None, earlier: list[threading.Thread]):
    """The worker's build: first wait for earlier (superseded) builds still running, yielding between waits so that
    a newer edit can cancel this one before it starts; then build from the copy."""
    for thread in earlier:
        while thread.is_alive():
            thread.join(0.02)
            yield None
    return build_trace(graph, learning_rate)


class StepPlayer(QObject):
    """Owns the Trace and the position k (0 = nothing computed, len(trace) = both passes done)."""

    position_changed = Signal(int)
    trace_rebuilt = Signal()
    trace_failed = Signal(str)
    playing_changed = Signal(bool)
    busy_changed = Signal(bool)      # True: a rebuild runs on a worker (the old trace is shown, the player holds)

    def __init__(self, graph: Graph, parent: QObject | None = None, jobs=None):
        """jobs: the window's ``gui.jobs.JobRunner`` for rebuilding large graphs off the UI thread; None: every
        rebuild is synchronous."""
        super().__init__(parent)
        self._graph = graph
        self._jobs = jobs
        self.trace: Trace | None = None
        self.error: str | None = None
        self.learning_rate: float | None = None  # set: the trace ends with a gradient-descent update
        self.frame_player = FramePlayer(self)       # frame k = position k; its timer is the one playback timer
        self._rebuilding = False
        self.busy = False
        self._generation = 0                        # the newest rebuild; an older worker's result is dropped
        self._builds: list[threading.Thread] = []   # worker threads of rebuilds that may still be building
        self._resume_play = False
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
        self._cancel_async()
        self._graph.changed.disconnect(self._on_graph_changed)

    # ---- the trace ------------------------------------------------------------------------------------------

    def _on_graph_changed(self, change) -> None:
        if change.kind == "node_moved":
            return
        if self.busy:
            self._generation += 1          # a build still running was for the graph before this edit: never land it
        self._debounce.start()

    def runs_async(self) -> bool:
        """Would a rebuild of the graph as it is now run on a worker thread?"""
        return self._jobs is not None and (len(self._graph) > ASYNC_NODES or holds_learner_op(self._graph))

    def rebuild(self) -> None:
        """Record the passes again for the graph as it is now, keeping the position where possible: at once for a
        small graph, on a worker for a large one or one with a learner's op (see the module's docstring)."""
        self._debounce.stop()
        if self.runs_async():
            self._start_async()
        else:
            self._rebuild_now()

    def _rebuild_now(self) -> None:
        self._debounce.stop()
        self._cancel_async()
        self._land(*build_trace(self._graph, self.learning_rate))

    def _start_async(self) -> None:
        self._generation += 1
        generation = self._generation
        self._builds = [t for t in self._builds if t.is_alive()]
        earlier = list(self._builds)
        graph, lr = self._graph.copy(), self.learning_rate   # the worker never reads the live graph
        handle = self._jobs.start(JOB_NAME, lambda: _trace_job(graph, lr, earlier),
                                  on_done=lambda result: self._on_built(generation, result),
                                  on_error=lambda exc, _text: self._on_built(generation, (None, failure_text(exc))))
        if handle.thread is not None:
            self._builds.append(handle.thread)
        if not self.busy:
            self._resume_play = self.frame_player.is_playing()
            self.frame_player.pause()
            self.busy = True
            self.busy_changed.emit(True)

    def _cancel_async(self) -> None:
        """Forget a rebuild running on a worker (its result will never land)."""
        if self.busy:
            self._generation += 1
            if self._jobs is not None:
                self._jobs.cancel(JOB_NAME, notify=False)

    def _on_built(self, generation: int, result: tuple[Trace | None, str | None]) -> None:
        if generation == self._generation and self.busy:
            self._land(*result)

    def _land(self, trace: Trace | None, error: str | None) -> None:
        """Show a new trace (or the reason there is none): the same signals whichever thread built it."""
        self.trace, self.error = trace, error
        resume = self.busy and self._resume_play
        if self.busy:
            self.busy = False
            self._resume_play = False
            self.busy_changed.emit(False)
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
        if resume and self.trace is not None and self.position < self.length:
            self.frame_player.play()              # playback the rebuild paused goes on from the same step

    def _on_frame_changed(self, k: int) -> None:
        if not self._rebuilding:
            self.position_changed.emit(k)

    def set_learning_rate(self, lr: float | None) -> None:
        """None: forward and backward only; a number: also step through p ← p − lr · dL/dp."""
        if lr != self.learning_rate:
            self.learning_rate = lr
            self.rebuild()

    def flush(self) -> None:
        """End with the current trace (tests and exports want it): a pending rebuild, or one running on a worker, is
        done now, synchronously, on this thread (a running worker's result is dropped)."""
        if self._debounce.isActive() or self.busy:
            self._rebuild_now()

    @property
    def position(self) -> int:
        """0 = nothing computed, ``length`` = every step of the trace shown."""
        return self.frame_player.frame

    @property
    def length(self) -> int:
        return len(self.trace) if self.trace is not None else 0

    def state(self):
        """The values and gradients at the current step; None without a trace or while recomputing (the old trace's
        numbers no longer belong to the edited graph)."""
        return self.trace.state_at(self.position) if self.trace is not None and not self.busy else None

    def label(self) -> str:
        if self.busy:
            return RECOMPUTING
        if self.trace is None:
            return "Cannot run"
        return self.trace.label(self.position)

    # ---- moving: all through the frame-player (stepping pauses, as in every player); held while recomputing -----

    def seek(self, k: int) -> None:
        if not self.busy:
            self.frame_player.seek(k)

    def step_forward(self) -> None:
        if not self.busy:
            self.frame_player.step()

    def step_back(self) -> None:
        if not self.busy:
            self.frame_player.back()

    def reset(self) -> None:
        if not self.busy:
            self.frame_player.rewind()

    def to_end(self) -> None:
        if not self.busy:
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
        if self.trace is not None and not self.busy:
            self.frame_player.play()            # from the end: starts again at 0

    def pause(self) -> None:
        self.frame_player.pause()
        self._resume_play = False

    def toggle(self) -> None:
        self.pause() if self.playing else self.play()
