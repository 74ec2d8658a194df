"""Numerical gradient checks: the oracle itself, whole graphs, single nodes, and a deliberately wrong op."""
import numpy as np
import pytest

from simulator import Graph, GraphError, load_example
from simulator.engine.gradcheck import check_graph, check_node, numerical_gradient, relative_error, status_of
from simulator.ops import REGISTRY, OpSpec


def test_numerical_gradient_of_a_known_function():
    x = np.array([1.0, -2.0, 0.5])
    g = numerical_gradient(lambda v: float(np.sum(v ** 3)), x.copy())
    np.testing.assert_allclose(g, 3 * x ** 2, rtol=1e-9)


def test_relative_error_definition():
    err = relative_error(np.array([1.0, 0.0, -2.0, 1e-3]), np.array([1.1, 0.0, -2.0, -1e-3]))
    np.testing.assert_allclose(err, [0.1 / 1.1, 0.0, 0.0, 2.0])


def test_status_thresholds():
    assert status_of(1e-9) == "good" and status_of(1e-5) == "warn" and status_of(0.5) == "bad"


@pytest.mark.parametrize("name", ["circuit", "sigmoid_neuron", "softmax_loss", "two_layer_net", "fan_out"])
def test_examples_pass_the_whole_graph_check(name):
    checks = check_graph(load_example(name))
    assert checks
    for c in checks:
        assert c.analytic.shape == c.numeric.shape
        assert c.max_error < 1e-7, (c.what, c.max_error)
        assert c.status == "good"


def test_node_check_on_every_op_of_the_two_layer_net():
    g = load_example("two_layer_net")
    for node in ("h1", "h", "scores", "L"):
        for c in check_node(g, node):
            assert c.max_error < 1e-7, (c.what, c.max_error)


def test_a_wrong_backward_is_caught():
    good = REGISTRY["mul"]
    broken = OpSpec(**{**good.__dict__, "name": "_broken_mul",
                       "backward": lambda dout, cache: (dout * cache[1], dout * cache[1])})
    REGISTRY["_broken_mul"] = broken
    try:
        g = Graph()
        g.add_input("a", 2.0)
        g.add_input("b", -3.0)
        g.add_op("_broken_mul", name="m")
        g.connect("a", "m", "x")
        g.connect("b", "m", "y")
        statuses = {c.node: c.status for c in check_graph(g)}
        assert statuses == {"a": "good", "b": "bad"}
        local = check_node(g, "m")
        assert [c.status for c in local] == ["good", "bad"]
    finally:
        del REGISTRY["_broken_mul"]


def test_constants_and_labels_are_not_checked():
    g = Graph.from_expression("x * 3 + 1")
    consts = [n.id for n in g if n.kind == "const"]
    with pytest.raises(GraphError, match="constant"):
        check_graph(g, consts[:1])
    with pytest.raises(GraphError, match="labels"):
        check_graph(load_example("svm_loss"), ["y"])


def test_a_node_is_checked_with_the_upstream_gradient_the_stepper_shows():
    from simulator import Trace, load_example
    g = load_example("circuit")                      # f = (x + y) z: df/dq = z = -4
    (cx, cy) = check_node(g, "q")
    assert float(cx.analytic) == -4.0 and float(cy.analytic) == -4.0          # the numbers on q's input wires
    assert "upstream gradient df/dq" in cx.what and cx.max_error < 1e-7
    t = Trace(g)
    wire = next(e for e in t.events if e.phase == "backward" and e.kind == "op" and e.node == "q")
    assert float(wire.outputs["x"]) == float(cx.analytic)
    dead = Graph.from_expression("relu(a) * b")
    dead.set_value("b", 0.0)                          # nothing flows back to relu's output
    (c,) = check_node(dead, next(n.id for n in dead.nodes if n.kind == "op" and n.op == "relu"))
    assert "random upstream gradient" in c.what
