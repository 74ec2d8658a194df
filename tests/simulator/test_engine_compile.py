"""Issue 12's faster compile, evaluate and wiring give the answers they gave before: which leaves get a gradient,
the ancestors of a node, evaluate's float path against run()'s arrays, shared default positions. Behaviour only,
never timed (bench/engine.py measures the speed)."""
import numpy as np
import pytest

from simulator import Graph, evaluate, load_example, run
from simulator.core.errors import GraphError
from simulator.engine.trace import Program, compile_program
from simulator.graphs.examples import EXAMPLES
from simulator.graphs.expression import parse_expression


def _reference_wants(g: Graph, output: str) -> dict[str, bool]:
    """The rule as first written: a leaf wants a gradient when it is the output (and not a constant) or feeds a
    differentiable port of a node the output needs; an op when any of its ports passes one back."""
    needed = g.ancestors(output) | {output}
    wants: dict[str, bool] = {}
    for nid in g.topological_order():
        if nid not in needed:
            continue
        node = g.node(nid)
        if node.is_leaf:
            wants[nid] = node.kind != "const" and (nid == output or any(
                e.dst in needed and g.node(e.dst).spec.differentiable(e.port) for e in g.edges_from(nid)))
        else:
            wants[nid] = any(node.spec.differentiable(p) and wants[g.edge_into(nid, p).src] for p in node.ports)
    return wants


def _mixed_graph() -> Graph:
    """Constants, a label port, a parameter used twice, an input that does not reach the output."""
    g = Graph()
    g.add_input("x", np.array([0.5, -1.0, 2.0]))
    g.add_input("w", np.array([1.0, 2.0, 3.0]), trainable=True)
    g.add_const(2.0, name="two")
    g.add_input("y", np.array(1.0))   # a label: feeds only the loss's non-differentiable port
    g.add_input("unused", np.array([1.0, 2.0]))
    g.add_op("mul", name="xw")
    g.connect("x", "xw", "x")
    g.connect("w", "xw", "y")
    g.add_op("mul", name="scaled")
    g.connect("xw", "scaled", "x")
    g.connect("two", "scaled", "y")
    g.add_op("add", name="again")
    g.connect("scaled", "again", "x")
    g.connect("w", "again", "y")
    g.add_op("svm_loss", name="L")
    g.connect("again", "L", "scores")
    g.connect("y", "L", "y")
    return g


@pytest.mark.parametrize("name", sorted(EXAMPLES) + ["mixed"])
def test_compiling_marks_the_same_gradients_as_the_rule_it_replaced(name):
    g = _mixed_graph() if name == "mixed" else load_example(name)
    p = Program(g)
    ref = _reference_wants(g, p.output)
    assert p.wants_grad == ref and list(p.wants_grad) == list(ref)
    for step in p.steps:
        node = g.node(step.node)
        assert step.grad_ports == tuple(node.spec.differentiable(port) and ref[src]
                                        for port, src in zip(node.ports, step.srcs))
    assert p.leaves == [n for n in ref if g.node(n).is_leaf]
    if name == "mixed":
        assert p.wants_grad["w"] and not p.wants_grad["two"] and not p.wants_grad["y"]
        assert "unused" not in p.wants_grad


def test_ops_without_attributes_share_one_read_only_mapping():
    p = Program(parse_expression("x * y + x ** 2"))
    no_attrs = [s.attrs for s in p.steps if s.op != "pow"]
    assert no_attrs and all(a is no_attrs[0] and len(a) == 0 for a in no_attrs)
    with pytest.raises(TypeError):
        no_attrs[0]["p"] = 3
    assert [dict(s.attrs) for s in p.steps if s.op == "pow"] == [{"p": 2.0}]


def test_ancestors_match_networkx():
    import networkx as nx

    for g in [load_example(name) for name in EXAMPLES] + [_mixed_graph(),
                                                          parse_expression("a*b + c*(a + d) + exp(b)")]:
        nxg = g.to_networkx()
        for nid in g.topological_order():
            assert g.ancestors(nid) == nx.ancestors(nxg, nid)
    with pytest.raises(GraphError):
        g.ancestors("nowhere")


@pytest.mark.parametrize("text", ["(x + y) * z", "x * y + x ** 2", "1 / (1 + exp(-(w0*x0 + w1*x1 + w2)))",
                                  "max(x, y) - min(x, 3) / y", "-x * x - x"])
def test_evaluate_on_scalars_gives_the_numbers_run_gives(text):
    g = parse_expression(text)
    values = {n.id: 0.25 + 0.5 * i for i, n in enumerate(g.leaves())}
    r = evaluate(g, **values)
    ref = run(g, {k: np.array(v) for k, v in values.items()})
    assert type(r.value) is float and r.value == float(ref.value)
    assert r.grads == {k: float(ref.grads[k]) for k in values}
    assert all(type(v) is float for v in r.grads.values())


def test_evaluate_keeps_the_shape_of_an_input_that_does_not_reach_a_scalar_output():
    g = Graph()
    g.add_input("x", 0.5)
    g.add_input("t", np.ones(3))   # feeds nothing: the output (tanh) is all scalars
    g.add_op("tanh", name="f")
    g.connect("x", "f", "x")
    r = evaluate(g, x=0.25)
    assert r.value == float(np.tanh(0.25)) and type(r.grads["x"]) is float
    assert isinstance(r.grads["t"], np.ndarray) and r.grads["t"].shape == (3,) and not r.grads["t"].any()


def test_positions_are_validated_and_the_default_is_shared():
    g = Graph()
    a, b = g.add_input("a"), g.add_op("tanh", name="t")
    assert g.node(a).pos == (0.0, 0.0) and g.node(a).pos is g.node(b).pos
    g.add_input("c", pos=(1, 2))
    assert g.node("c").pos == (1.0, 2.0) and all(type(v) is float for v in g.node("c").pos)
    for bad in ((float("nan"), 0.0), (0.0, float("inf")), (1.0,), "xy", (1.0, 2.0, 3.0)):
        with pytest.raises(GraphError):
            g.move("c", bad)
    assert g.node("c").pos == (1.0, 2.0)


def test_unique_name_reads_a_set_or_any_iterable_without_changing_it():
    g = Graph()
    g.add_input("q")
    reserved = {"q1", "q2"}
    assert g.unique_name("q", reserved) == "q3" and reserved == {"q1", "q2"}
    assert g.unique_name("q", ["q1"]) == "q2" and g.unique_name("q", iter(["q1", "q2"])) == "q3"
    assert g.unique_name("r", reserved) == "r"


def test_nodes_and_wires_keep_value_semantics():
    g = load_example("fan_out")
    edges = g.edges
    copy = g.copy()
    assert copy.edges == edges and {e: i for i, e in enumerate(edges)} == {e: i for i, e in enumerate(copy.edges)}
    assert copy.node("x") == g.node("x") or np.array_equal(copy.node("x").value, g.node("x").value)
    with pytest.raises(AttributeError):
        edges[0].src = "elsewhere"


@pytest.mark.parametrize("text", ["x", "-x", "+x", "-3 * x", "x ** -2", "exp(-x) + max(x, -y) ** 2", "+(+x) - -(-y)",
                                  "matmul(x, w) @ v", "1 / (1 + exp(-(w0*x0 + w1*x1 + w2)))"])
def test_the_parser_counts_its_ops_before_making_them(text):
    import ast

    from simulator.graphs.expression import _count_ops

    g = parse_expression(text)
    assert _count_ops(ast.parse(text, mode="eval").body) == sum(n.kind == "op" for n in g)


def test_bulk_work_pauses_the_collector_and_always_restores_it():
    import gc

    from simulator.graphs.graph import paused_gc

    assert gc.isenabled()
    with paused_gc():
        assert not gc.isenabled()
        with paused_gc():   # nested: still paused after the inner block closes
            pass
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(ZeroDivisionError):
        with paused_gc():
            1 / 0
    assert gc.isenabled()
    gc.disable()   # a collector switched off by someone else stays off
    try:
        with paused_gc():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
    with pytest.raises(Exception):
        parse_expression("x +* y")   # a refused expression leaves the collector on
    assert gc.isenabled()
    with pytest.raises(GraphError):
        compile_program(_incomplete())
    assert gc.isenabled()


def _incomplete() -> Graph:
    g = Graph()
    g.add_input("x")
    g.add_op("mul", name="m")
    g.connect("x", "m", "x")
    return g


def test_an_incomplete_graph_names_every_open_port_in_graph_order():
    g = _incomplete()
    g.add_op("tanh", name="t")
    with pytest.raises(GraphError, match=r"unconnected inputs: 'y' of 'm', 'x' of 't'"):
        Program(g)
