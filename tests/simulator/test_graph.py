"""The graph model: edits, refusals that name the nodes, shape checks at wiring time, and change announcements."""
import numpy as np
import pytest

from simulator import Graph, GraphError, ShapeError, ValueInputError
from simulator.graphs.graph import GraphChange


def _chain():
    g = Graph()
    g.add_input("x", 1.0)
    g.add_op("exp", name="a")
    g.add_op("neg", name="b")
    g.connect("x", "a", "x")
    g.connect("a", "b", "x")
    return g


def test_cycle_is_refused_naming_the_nodes():
    g = _chain()
    g.add_op("add", name="c")
    g.connect("b", "c", "x")
    with pytest.raises(GraphError, match="cycle") as info:
        g.connect("c", "a", "x") if False else g.connect("c", "c", "y")
    assert "'c'" in str(info.value)
    g.disconnect("a", "x")
    with pytest.raises(GraphError, match="cycle.*'a'.*'b'|cycle"):
        g.connect("b", "a", "x")
    assert g.edge_into("a", "x") is None


def test_missing_port_and_double_feed_and_unknown_node():
    g = _chain()
    with pytest.raises(GraphError, match="no input port 'z'"):
        g.connect("x", "b", "z")
    with pytest.raises(GraphError, match="already fed by 'a'"):
        g.connect("x", "b", "x")
    with pytest.raises(GraphError, match="'nope'"):
        g.connect("nope", "b", "x")
    with pytest.raises(GraphError, match="no input ports"):
        g.connect("a", "x", "x")
    with pytest.raises(GraphError, match="unknown op 'frobnicate'"):
        g.add_op("frobnicate")


def test_shape_mismatch_at_wiring_names_node_and_shapes():
    g = Graph()
    g.add_input("A", np.zeros((2, 3)))
    g.add_input("B", np.zeros((4, 5)))
    g.add_op("matmul", name="m")
    g.connect("A", "m", "a")
    with pytest.raises(ShapeError) as info:
        g.connect("B", "m", "b")
    msg = str(info.value)
    assert "'m'" in msg and "(2, 3)" in msg and "(4, 5)" in msg
    assert g.edge_into("m", "b") is None  # refused wire leaves the graph unchanged
    with pytest.raises(ShapeError):
        g.connect("A", "m", "b") or g.set_value("A", np.zeros((3, 3)))
    assert g.node("A").value.shape == (2, 3)


def test_value_change_that_breaks_a_consumer_is_refused():
    g = Graph()
    g.add_input("A", np.zeros((2, 3)))
    g.add_input("B", np.zeros((3, 4)))
    g.add_op("matmul", name="m")
    g.connect("A", "m", "a")
    g.connect("B", "m", "b")
    with pytest.raises(ShapeError, match="'m'"):
        g.set_value("B", np.zeros((5, 4)))
    assert g.node("B").value.shape == (3, 4)
    with pytest.raises(ValueInputError, match="NaN"):
        g.set_value("A", np.full((2, 3), np.nan))


def test_changes_are_announced():
    g = Graph()
    seen: list[GraphChange] = []
    g.changed.connect(seen.append)
    g.add_input("x", 2.0)
    g.add_op("exp", name="e")
    g.connect("x", "e", "x")
    g.set_value("x", 3.0)
    g.move("e", (10, 20))
    g.rename("x", "u")
    g.remove_node("u")
    assert [c.kind for c in seen] == ["node_added", "node_added", "edge_added", "value_changed", "node_moved",
                                      "node_renamed", "edge_removed", "node_removed"]
    assert seen[5].old == "x" and seen[5].node == "u"
    g.changed.disconnect(seen.append)
    g.add_input("z")
    assert len(seen) == 8


def test_rename_keeps_wires_and_rejects_bad_names():
    g = _chain()
    g.rename("a", "ea")
    assert g.edge_into("ea", "x").src == "x" and g.edge_into("b", "x").src == "ea"
    assert g.topological_order() == ["x", "ea", "b"]
    for bad in ("", "1x", "a b", "x"):
        with pytest.raises(GraphError):
            g.rename("ea", bad)


def test_output_is_the_only_sink_or_chosen():
    g = _chain()
    assert g.output == "b"
    g.add_op("exp", name="other")
    g.connect("x", "other", "x")
    with pytest.raises(GraphError, match="several outputs"):
        g.output
    g.set_output("other")
    assert g.output == "other"


def test_copy_is_independent():
    g = _chain()
    h = g.copy()
    h.set_value("x", 5.0)
    assert float(g.node("x").value) == 1.0
    assert [e for e in h.edges] == [e for e in g.edges]


def test_attrs_are_validated():
    g = Graph()
    g.add_op("leaky_relu", {"alpha": 0.2}, name="l")
    assert g.node("l").attrs == {"alpha": 0.2}
    with pytest.raises(ValueInputError):
        g.set_attrs("l", {"alpha": "big"})
    with pytest.raises(ValueInputError):
        g.add_op("pow", {"q": 2})
    assert g.node("l").spec.display_symbol(g.node("l").attrs) == "lrelu"
    g.add_op("pow", {"p": 3}, name="p3")
    assert g.node("p3").label() == "x^3"


def test_empty_values_and_huge_numbers_are_refused():
    g = Graph()
    for bad in ([], (), [[]], np.zeros((2, 0))):
        with pytest.raises(ValueInputError, match="empty"):
            g.add_input("x", bad)
    with pytest.raises(ValueInputError):
        g.add_input("x", 10**400)
    with pytest.raises(GraphError):
        g.add_input("x", 1.0, pos=(10**400, 0))


def test_an_op_whose_output_would_be_absurdly_large_is_refused():
    g = Graph()
    g.add_input("x", np.ones((1, 1, 4, 4)))
    g.add_input("w", np.ones((64, 1, 1, 1)))
    g.add_input("b", np.ones(64))
    g.add_op("conv2d", {"pad": 64}, name="c")
    g.connect("x", "c", "x")
    g.connect("w", "c", "w")
    g.connect("b", "c", "b")
    with pytest.raises(ValueInputError, match="at most 64"):
        g.set_attrs("c", {"pad": 65})
    assert g.infer_shapes()["c"] == (1, 64, 132, 132)
    with pytest.raises(ShapeError, match="more than 10,000,000"):
        g.set_value("x", np.ones((10, 1, 4, 4)))  # 10 x 64 x 132 x 132 outputs
    assert g.node("x").value.shape == (1, 1, 4, 4)


def test_nodes_and_edges_go_back_to_their_places():
    g = Graph.from_expression("a*b + c*d")
    order, edges = [n.id for n in g], g.edges
    node, removed = g.node("q1"), [(g.edge_index(e.dst, e.port), e) for e in g.edges if "q1" in (e.src, e.dst)]
    index = g.index_of("q1")
    g.remove_node("q1")
    g.add_node(node, index=index)
    for i, e in removed:
        g.connect(e.src, e.dst, e.port, index=i)
    assert [n.id for n in g] == order and g.edges == edges


def test_a_refused_cycle_names_the_whole_chain():
    g = Graph.from_expression("exp(a * b) + c")          # a -> q1 (mul) -> q2 (exp) -> f (add)
    assert g.path("a", "f") == ["a", "q1", "q2", "f"]
    g.disconnect("q2", "x")
    with pytest.raises(GraphError, match="wiring 'f' into 'q2' would close a cycle: q2 → f → q2"):
        g.connect("f", "q2", "x")
    with pytest.raises(GraphError, match="no chain of wires leads from 'a' to 'f'"):
        g.path("a", "f")


def test_to_networkx_mirrors_the_wires():
    g = Graph.from_expression("(x + y) * z")
    nxg = g.to_networkx()
    assert set(nxg.nodes) == {n.id for n in g}
    assert {(e.src, e.dst, e.port) for e in g.edges} == {(u, v, d["port"]) for u, v, d in nxg.edges(data=True)}


def _heap_order(g):
    """Kahn's algorithm, the ready node of the lowest insertion rank first (the definition of topological_order)."""
    rank = {nid: i for i, nid in enumerate(n.id for n in g.nodes)}
    preds = {nid: {e.src for e in g.edges if e.dst == nid} for nid in rank}
    done, order = set(), []
    while len(order) < len(rank):
        nid = min((n for n in rank if n not in done and preds[n] <= done), key=rank.get)
        done.add(nid)
        order.append(nid)
    return order


def test_topological_order_puts_producers_first_and_breaks_ties_by_insertion_order():
    rng = np.random.default_rng(0)
    for trial in range(30):
        g = Graph()
        names = [g.add_input(f"x{i}", 1.0) for i in range(3)]
        ops = [g.add_op("add") for _ in range(8)]
        # each op takes two earlier-or-later nodes, without cycles: op k reads inputs or ops of lower index k' < k,
        # wired in a random order so that half the trials insert a consumer before its producer
        perm = rng.permutation(len(ops)) if trial % 2 else np.arange(len(ops))
        for k in range(len(ops)):
            pool = names + [ops[j] for j in range(len(ops)) if perm[j] < perm[k]]
            a, b = rng.choice(pool, 2)
            g.connect(str(a), ops[k], "x", check_shapes=False)
            g.connect(str(b), ops[k], "y", check_shapes=False)
        order = g.topological_order()
        assert order == _heap_order(g)
        pos = {nid: i for i, nid in enumerate(order)}
        assert all(pos[e.src] < pos[e.dst] for e in g.edges)
