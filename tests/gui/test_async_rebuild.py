"""Issue 12: editing a value of a large graph (or of one holding a learner's op) re-runs the passes on a worker
thread, from a copy of the graph; the old trace stays on screen, the player holds, and the new trace lands with the
signals a synchronous rebuild sends. Small graphs stay synchronous."""
import threading
import time

import numpy as np
import pytest
from PySide6.QtCore import Qt, QTimer

import gui.stepping.player as player_module
from gui.jobs import JobRunner
from gui.stepping.player import ASYNC_NODES, RECOMPUTING, StepPlayer
from simulator import Graph, Trace, load_example
from simulator.engine.user_ops import TEMPLATE, register_user_op, unregister_user_op
from simulator.graphs.expression import parse_expression
from simulator.ops.registry import REGISTRY, OpSpec, register

TERMS = ("sigmoid(w{i}*x{i} + b{i})", "tanh(w{i}*x{i})", "relu(a{i} - c{i})", "exp(-w{i}) * x{i}",
         "log(1 + exp(q{i}))")


def big_graph(extra: str = "") -> Graph:
    """A graph of about 210 nodes mixing the lecture's ops, its inputs drawn at random (seeded)."""
    text = " + ".join(TERMS[i % len(TERMS)].format(i=i) for i in range(36)) + extra
    g = parse_expression(text)
    rng = np.random.default_rng(7)
    g.set_values({n.id: float(rng.uniform(-2, 2)) for n in g if n.kind == "input" and n.id != "z"})
    assert len(g) > ASYNC_NODES
    return g


def assert_same_trace(trace: Trace, ref: Trace) -> None:
    """Same steps, same final values and gradients (bit for bit: the same computation on the same numbers)."""
    assert len(trace) == len(ref) and trace.forward_count == ref.forward_count
    assert [(e.phase, e.kind, e.node) for e in trace.events] == [(e.phase, e.kind, e.node) for e in ref.events]
    a, b = trace.state_at(len(trace)), ref.state_at(len(ref))
    assert set(a.values) == set(b.values) and set(a.grads) == set(b.grads)
    for key in b.values:
        np.testing.assert_array_equal(a.values[key], b.values[key])
    for key in b.grads:
        np.testing.assert_array_equal(a.grads[key], b.grads[key])


class Builds:
    """Wraps the player's build_trace: records each build (thread, a leaf's value, start and end), and holds the
    builds made on worker threads while ``gate`` is clear."""

    def __init__(self, leaf: str):
        self.leaf = leaf
        self.gate = threading.Event()
        self.gate.set()
        self.calls: list[dict] = []
        self.lock = threading.Lock()

    def __call__(self, graph, lr, _real=player_module.build_trace):
        call = {"thread": threading.current_thread(), "start": time.perf_counter(),
                "leaf": float(graph.node(self.leaf).value) if self.leaf in graph else None}
        with self.lock:
            self.calls.append(call)
        if threading.current_thread() is not threading.main_thread():
            assert self.gate.wait(30)
        try:
            return _real(graph, lr)
        finally:
            call["end"] = time.perf_counter()

    @property
    def on_workers(self) -> list[dict]:
        return [c for c in self.calls if c["thread"] is not threading.main_thread()]


@pytest.fixture
def builds(monkeypatch):
    b = Builds("x0")
    monkeypatch.setattr(player_module, "build_trace", b)
    yield b
    b.gate.set()


def listen(player) -> list:
    heard = []
    player.trace_rebuilt.connect(lambda: heard.append("rebuilt"))
    player.trace_failed.connect(lambda msg: heard.append(("failed", msg)))
    player.position_changed.connect(heard.append)
    return heard


def open_big(w, graph: Graph):
    w.replace_graph(graph, "big graph")           # flushes: the first trace is there at once
    assert w.player.trace is not None and not w.player.busy
    return w.player


def test_an_inspector_edit_of_a_large_graph_is_traced_on_a_worker_and_lands_as_a_synchronous_trace(
        qtbot, tmp_path, make_window, builds):
    w = make_window(tmp_path / "s.ini")
    p = open_big(w, big_graph())
    k = p.trace.forward_count + 5
    p.seek(k)
    old = p.trace
    heard = listen(p)
    builds.gate.clear()
    w.inspector.set_node("x0")
    w.inspector.value_edit.clear()
    qtbot.keyClicks(w.inspector.value_edit, "2.5")
    qtbot.keyClick(w.inspector.value_edit, Qt.Key_Return)
    assert w.graph.node("x0").value == 2.5
    qtbot.waitUntil(lambda: p.busy and len(builds.on_workers) == 1, timeout=10_000)
    # the old trace is still shown, the player says it is recomputing and holds still
    assert p.trace is old and p.label() == RECOMPUTING
    assert w.transport.step_label.text() == RECOMPUTING and w.phase_label.text() == RECOMPUTING
    assert not w.transport.forward_button.isEnabled() and not w.transport.scrubber.isEnabled()
    w.step_forward_action.trigger()
    p.step_back()
    p.seek(0)
    p.to_end()
    p.play()
    qtbot.mouseClick(w.transport.end_button, Qt.LeftButton)
    assert p.position == k and not p.playing and heard == []
    # the old trace's numbers belong to the graph before the edit: none are shown for it meanwhile
    assert p.state() is None
    assert float(w.inspector.views["value"].value()) == 2.5 and w.inspector.views["grad"].value() is None
    builds.gate.set()
    qtbot.waitUntil(lambda: not p.busy, timeout=20_000)
    assert heard == ["rebuilt", k] and p.position == k
    assert builds.on_workers[0]["leaf"] == 2.5 and builds.on_workers[0]["thread"].name.startswith("job:")
    assert_same_trace(p.trace, Trace(w.graph))
    assert float(p.trace.initial["x0"]) == 2.5
    assert w.transport.forward_button.isEnabled() and w.transport.scrubber.isEnabled()
    assert w.phase_label.text() == p.label() != RECOMPUTING
    p.step_forward()                                  # and it steps again
    assert p.position == k + 1


def test_a_build_of_the_graph_before_an_edit_never_lands_after_it(qtbot, tmp_path, make_window, builds):
    w = make_window(tmp_path / "s.ini")
    p = open_big(w, big_graph())
    heard = listen(p)
    builds.gate.clear()
    w.graph.set_value("x0", 2.0)
    qtbot.waitUntil(lambda: len(builds.on_workers) == 1, timeout=10_000)    # building the graph with x0 = 2
    w.graph.set_value("x0", 3.0)                      # edited again before that build is delivered …
    p._debounce.stop()                                # … and its own rebuild not started yet
    builds.gate.set()
    qtbot.waitUntil(lambda: "end" in builds.on_workers[0], timeout=20_000)
    qtbot.wait(200)                                   # the runner delivers the x0 = 2 build: it must be dropped
    assert heard == [] and p.busy
    p.rebuild()
    qtbot.waitUntil(lambda: not p.busy, timeout=20_000)
    assert heard[0] == "rebuilt" and float(p.trace.initial["x0"]) == 3.0


def test_two_quick_edits_only_the_last_ones_trace_lands(qtbot, tmp_path, make_window, builds):
    w = make_window(tmp_path / "s.ini")
    p = open_big(w, big_graph())
    p.to_end()
    n = p.position
    heard = listen(p)
    builds.gate.clear()
    w.graph.set_value("x0", 2.0)
    qtbot.waitUntil(lambda: len(builds.on_workers) == 1, timeout=10_000)    # the first build is running
    first_job = w.jobs.handles[player_module.JOB_NAME]
    w.graph.set_value("x0", 3.0)
    qtbot.waitUntil(lambda: w.jobs.handles.get(player_module.JOB_NAME) not in (None, first_job), timeout=10_000)
    second_job = w.jobs.handles[player_module.JOB_NAME]
    w.graph.set_value("x0", 4.0)                      # supersedes the second while it waits for the first
    qtbot.waitUntil(lambda: w.jobs.handles.get(player_module.JOB_NAME) not in (None, second_job), timeout=10_000)
    qtbot.wait(100)
    assert p.busy and heard == []
    builds.gate.set()
    qtbot.waitUntil(lambda: not p.busy, timeout=20_000)
    qtbot.wait(150)                                   # nothing of the superseded builds arrives afterwards
    assert heard == ["rebuilt", n]
    # one build at a time: the superseded build ran to its end, the one waiting behind it never started
    assert [c["leaf"] for c in builds.on_workers] == [2.0, 4.0]
    first, last = builds.on_workers
    assert last["start"] >= first["end"]
    assert float(p.trace.initial["x0"]) == 4.0
    assert_same_trace(p.trace, Trace(w.graph))


def test_flush_returns_with_the_current_trace_and_the_running_build_is_dropped(qtbot, tmp_path, make_window,
                                                                                builds):
    w = make_window(tmp_path / "s.ini")
    p = open_big(w, big_graph())
    k = 7
    p.seek(k)
    heard = listen(p)
    builds.gate.clear()
    w.graph.set_value("x0", -1.5)
    qtbot.waitUntil(lambda: p.busy and len(builds.on_workers) == 1, timeout=10_000)
    p.flush()                                         # synchronous, on this thread
    assert not p.busy and heard == ["rebuilt", k] and p.position == k
    assert builds.calls[-1]["thread"] is threading.main_thread()
    assert_same_trace(p.trace, Trace(w.graph))
    flushed = p.trace
    builds.gate.set()
    builds.on_workers[0]["thread"].join(10)
    qtbot.wait(150)
    assert p.trace is flushed and heard == ["rebuilt", k]
    # an edit not yet picked up (the debounce is pending) is flushed synchronously too: never busy
    w.graph.set_value("x0", 0.25)
    p.flush()
    assert not p.busy and float(p.trace.initial["x0"]) == 0.25 and heard == ["rebuilt", k, "rebuilt", k]


def test_a_failing_large_graph_reports_what_the_synchronous_path_says(qtbot, tmp_path, make_window):
    w = make_window(tmp_path / "s.ini")
    p = open_big(w, big_graph(" + log(z)"))
    heard = listen(p)
    busy = []
    p.busy_changed.connect(busy.append)
    w.graph.set_value("z", -3.0)
    qtbot.waitUntil(lambda: busy == [True, False], timeout=20_000)          # built on a worker, then landed
    sync = StepPlayer(w.graph.copy())                 # no job runner: the synchronous path
    try:
        assert sync.trace is None and sync.error
        assert p.trace is None and p.error == sync.error and heard == [("failed", sync.error), 0]
        with pytest.raises(Exception) as err:
            Trace(w.graph)
        assert p.error == str(err.value) and "NaN" in p.error and "log" in p.error
    finally:
        sync.close()
    assert p.label() == "Cannot run" and not w.transport.forward_button.isEnabled()
    w.graph.set_value("z", 3.0)                        # fixed: it runs again
    qtbot.waitUntil(lambda: p.trace is not None and not p.busy, timeout=20_000)
    assert_same_trace(p.trace, Trace(w.graph))


def test_an_op_failing_with_a_python_error_gives_the_same_message_on_both_paths(qtbot, tmp_path, make_window):
    def forward(x):
        if np.any(np.asarray(x) < 0):
            raise ZeroDivisionError("odd value")
        return np.asarray(x, dtype=np.float64), None

    register(OpSpec(name="fragile", family="test", inputs=("x",), forward=forward, backward=lambda d, c: (d,),
                    infer_shape=lambda s: tuple(s), symbol="fr", formula="fragile(x)", local_grad={"x": "1"},
                    doc="fails on negative inputs", sample=lambda rng: [((rng.uniform(0.5, 1.0, (2, 2)),), {})]))
    try:
        w = make_window(tmp_path / "s.ini")
        p = open_big(w, big_graph(" + fragile(z)"))
        busy = []
        p.busy_changed.connect(busy.append)
        w.graph.set_value("z", -1.0)
        qtbot.waitUntil(lambda: busy == [True, False], timeout=20_000)
        sync = StepPlayer(w.graph.copy())
        try:
            assert p.error == sync.error == "The computation failed (ZeroDivisionError: odd value)."
        finally:
            sync.close()
        assert p.trace is None
    finally:
        REGISTRY.pop("fragile", None)


SLOW = (TEMPLATE.replace("def forward(x):\n", "def forward(x):\n    import time\n    time.sleep(0.8)\n")
        .replace("np.maximum(0.0, x)", "2.0 * x").replace("dx = dout * (x > 0)", "dx = 2.0 * dout"))


def test_a_learner_op_is_traced_off_the_ui_thread_which_keeps_processing_events(qtbot, tmp_path, make_window):
    register_user_op("slow_double", SLOW)
    try:
        w = make_window(tmp_path / "s.ini")
        p = w.player
        g = Graph.from_expression("slow_double(x) * 3")
        g.set_value("x", 1.25)
        assert len(g) <= ASYNC_NODES                  # small: the learner's op alone sends it to a worker
        ticks = []
        timer = QTimer()
        timer.setInterval(10)
        timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
        timer.start()
        t0 = time.perf_counter()
        busy = []
        p.busy_changed.connect(busy.append)
        w.graph.replace_with(g)                       # the Graph API: a "reset" change
        qtbot.waitUntil(lambda: busy == [True, False], timeout=30_000)
        took = time.perf_counter() - t0
        timer.stop()
        assert took >= 0.8                            # the forward slept in the sandbox...
        during = [t for t in ticks if t0 <= t]
        gaps = np.diff(during)
        assert len(during) > 20 and gaps.max() < 0.3, (len(during), gaps.max())   # ...and the UI thread kept going
        assert p.trace is not None and p.error is None
        end = p.trace.state_at(len(p.trace))
        assert float(end.values[p.trace.output]) == pytest.approx(3 * 2.0 * 1.25)
        assert float(end.grads["x"]) == pytest.approx(6.0)
        w.undo_stack.setClean()
        w.close()
    finally:
        unregister_user_op("slow_double")


def test_playback_paused_by_a_rebuild_goes_on_from_the_same_step(qtbot, tmp_path, make_window, builds):
    w = make_window(tmp_path / "s.ini")
    p = open_big(w, big_graph())
    p.set_speed(20)
    p.seek(3)
    p.play()
    builds.gate.clear()
    w.graph.set_value("x0", 1.75)
    qtbot.waitUntil(lambda: p.busy, timeout=10_000)
    held = p.position
    assert not p.playing
    heard = listen(p)
    builds.gate.set()
    qtbot.waitUntil(lambda: not p.busy, timeout=20_000)
    assert heard[:2] == ["rebuilt", held] and p.playing
    qtbot.waitUntil(lambda: p.position > held + 2, timeout=5_000)
    p.pause()


def test_small_graphs_stay_synchronous(qtbot, tmp_path, make_window, builds):
    w = make_window(tmp_path / "s.ini")
    w.replace_graph(load_example("sigmoid_neuron"), "neuron")
    p = w.player
    busy = []
    p.busy_changed.connect(busy.append)
    leaf = next(n.id for n in w.graph if n.kind == "input")
    before = p.trace
    w.graph.set_value(leaf, 0.75)
    qtbot.waitUntil(lambda: p.trace is not before, timeout=5_000)
    assert busy == [] and not p.runs_async()
    assert all(c["thread"] is threading.main_thread() for c in builds.calls) and builds.calls

    # the threshold is on the node count: ASYNC_NODES nodes stay synchronous, one more goes to a worker
    def chain(n_nodes):
        g = Graph()
        prev = g.add_input("x", 0.5)
        for _ in range(n_nodes - 1):
            op = g.add_op("tanh")
            g.connect(prev, op, REGISTRY["tanh"].inputs[0], check_shapes=False)
            prev = op
        return g
    jobs = JobRunner()
    for n_nodes, expect in ((ASYNC_NODES, False), (ASYNC_NODES + 1, True)):
        g = chain(n_nodes)
        sp = StepPlayer(g, jobs=jobs)
        try:
            assert len(g) == n_nodes and sp.runs_async() is expect
        finally:
            sp.close()
    jobs.close()
