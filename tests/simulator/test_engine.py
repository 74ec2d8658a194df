"""The step engine: event order and counts, accumulation at fan-out, replay, the fast path and numeric failures."""
import numpy as np
import pytest

from simulator import Graph, NumericError, Trace, load_example, run
from simulator.core.errors import GraphError, ValueInputError


def test_circuit_event_order():
    t = Trace(load_example("circuit"))
    kinds = [(e.phase, e.kind, e.node) for e in t.events]
    assert kinds == [("forward", "op", "q"), ("forward", "op", "f"),
                     ("backward", "seed", "f"), ("backward", "op", "f"), ("backward", "op", "q")]
    assert [e.index for e in t.events] == list(range(5))
    assert t.forward_count == 2 and t.backward_count == 3
    assert t.label(0).startswith("Ready") and t.label(1) == "Forward 1 / 2" and t.label(4) == "Backward 2 / 3"


def test_chain_rule_notes_carry_the_numbers():
    t = Trace(load_example("circuit"))
    last = t.events[-1]
    assert last.outputs["x"] == -4.0 and last.inputs["upstream"] == -4.0
    assert "df/dx = df/dq · dq/dx = -4 × 1 = -4" in last.note
    assert "df/dz = df/df · df/dz = 1 × 3 = 3" in t.events[3].note
    assert t.events[0].note.endswith("q = 3")


def test_fan_out_has_a_visible_accumulate_event():
    t = Trace(load_example("fan_out"))
    acc = [e for e in t.events if e.kind == "accumulate"]
    assert len(acc) == 1
    (ev,) = acc
    assert ev.node == "x" and ev.phase == "backward"
    assert {float(ev.inputs["previous"]), float(ev.inputs["incoming"])} == {6.0, -4.0}
    assert float(ev.outputs["grad"]) == 2.0
    assert "+=" in ev.note
    # the accumulation comes right after the consumer that delivered the second gradient
    i = t.events.index(ev)
    assert t.events[i - 1].kind == "op" and "x" in t.events[i - 1].sources.values()


def test_every_kind_of_note_reads_as_the_lecture_writes_it_and_events_are_read_only():
    t = Trace(load_example("fan_out"))   # f = x*y + x**2 at x = 3, y = -4
    assert [e.note for e in t.events] == [
        "q1 = x · y  (x ← x = 3, y ← y = -4)  →  q1 = -12",
        "q2 = x^p  (x ← x = 3; p = 2.0)  →  q2 = 9",
        "f = x + y  (x ← q1 = -12, y ← q2 = 9)  →  f = -3",
        "df/df = 1: the backward pass starts at the output",
        "df/dq1 = df/df · df/dq1 = 1 × 1 = 1    (local ∂f/∂x = 1)\n"
        "df/dq2 = df/df · df/dq2 = 1 × 1 = 1    (local ∂f/∂y = 1)",
        "df/dx = df/dq2 · dq2/dx = 1 × 6 = 6    (local ∂q2/∂x = p · x^(p−1))",
        "df/dx = df/dq1 · dq1/dx = 1 × -4 = -4    (local ∂q1/∂x = y)\n"
        "df/dy = df/dq1 · dq1/dy = 1 × 3 = 3    (local ∂q1/∂y = x)",
        "df/dx += -4 (from q1):  6 + -4 = 2    — x feeds several nodes, so its gradients add"]
    assert all(e.note is e.note for e in t.events)   # written once, on first reading
    again = Trace(load_example("fan_out"))
    assert again.events[-1] == t.events[-1] and again.events[0] != t.events[1]
    assert list(again.events) == list(t.events)      # equal field by field, the notes' text included
    ev = t.events[-1]
    with pytest.raises(AttributeError):
        ev.note = "changed"
    with pytest.raises(AttributeError):
        del ev.node
    with pytest.raises(TypeError):
        ev.outputs["grad"] = 0.0
    assert ev.note.startswith("df/dx +=") and ev.node == "x"


def test_same_input_twice_in_one_node_accumulates():
    g = Graph.from_expression("x * x")
    g.set_value("x", 3.0)
    t = Trace(g)
    acc = [e for e in t.events if e.kind == "accumulate"]
    assert len(acc) == 1 and float(acc[0].outputs["grad"]) == 6.0


def test_replay_matches_fast_path_at_the_end_and_is_consistent_midway():
    g = load_example("two_layer_net")
    t = Trace(g)
    fast = run(g)
    end = t.state_at(len(t))
    for name in ("x", "W1", "W2"):
        np.testing.assert_array_equal(end.grads[name], fast.grads[name])
    np.testing.assert_array_equal(end.values["L"], fast.value)
    mid = t.state_at(t.forward_count)
    assert set(mid.values) >= {"h1", "h", "scores", "L"} and mid.grads == {}
    assert t.state_at(0).event is None and t.state_at(3).event is t.events[2]
    # stepping back is replay: the same state comes back exactly
    again = t.state_at(t.forward_count)
    for k in mid.values:
        np.testing.assert_array_equal(mid.values[k], again.values[k])
    with pytest.raises(IndexError):
        t.state_at(len(t) + 1)


def test_labels_get_no_gradient_and_constants_no_events():
    t = Trace(load_example("svm_loss"))
    end = t.state_at(len(t))
    assert "y" not in end.grads and "scores" in end.grads
    g = load_example("sigmoid_neuron")
    end = Trace(g).state_at(len(Trace(g)))
    consts = [n.id for n in g if n.kind == "const"]
    assert consts and not any(c in end.grads for c in consts)


def test_tensor_output_is_seeded_with_ones():
    g = Graph.from_expression("relu(x)")
    g.set_value("x", np.array([-1.0, 2.0, 3.0]))
    r = run(g)
    np.testing.assert_array_equal(r.grads["x"], [0.0, 1.0, 1.0])
    assert "every entry" in Trace(g).events[1].note


def test_nan_is_reported_at_the_node_where_it_appears():
    g = Graph.from_expression("log(x) * 2")
    g.set_value("x", -1.0)
    for attempt in (lambda: run(g), lambda: Trace(g)):
        with pytest.raises(NumericError) as info:
            attempt()
        message = str(info.value)
        assert "forward step 1, node q = log(x)" in message and "where x = -1" in message
        assert "log needs x > 0" in message


def test_incomplete_graph_is_refused_naming_the_port():
    g = Graph()
    g.add_input("x", 1.0)
    g.add_op("add", name="s")
    g.connect("x", "s", "x")
    with pytest.raises(GraphError, match="'y' of 's'"):
        run(g)


def test_an_update_phase_follows_the_backward_pass_when_a_learning_rate_is_given():
    g = load_example("two_layer_net")
    plain = Trace(g)
    t = Trace(g, learning_rate=0.1)
    assert t.update_count == 2 and len(t) == len(plain) + 2
    updates = t.events[-2:]
    assert {e.node for e in updates} == {"W1", "W2"} and all(e.phase == "update" for e in updates)
    fast = run(g)
    end = t.state_at(len(t))
    for name in ("W1", "W2"):
        np.testing.assert_allclose(end.values[name], g.node(name).value - 0.1 * fast.grads[name], rtol=0, atol=0)
    assert t.label(len(t)) == "Update 2 / 2" and t.label(len(plain)) == f"Backward {plain.backward_count} / " \
        f"{plain.backward_count}"
    # inputs and labels are not trained
    assert not any(e.node in ("x", "y") for e in updates)
    with pytest.raises(ValueInputError):
        Trace(g, learning_rate=-1.0)


def test_scalar_update_note_has_the_numbers():
    g = Graph.from_expression("w * x")
    g.set_kind("w", "param")
    g.set_value("w", 2.0)
    g.set_value("x", 3.0)
    t = Trace(g, learning_rate=0.5)
    (ev,) = [e for e in t.events if e.phase == "update"]
    assert float(ev.outputs["value"]) == 2.0 - 0.5 * 3.0
    assert ev.note == "w ← w − lr · df/dw = 2 − 0.5 × 3 = 0.5"
