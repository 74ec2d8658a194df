"""The layered layout: producers left of consumers, distinct places, no crossings on the lecture graphs, and the
barycentric sweeps stopping early only where the full schedule would change nothing."""
import itertools
import random

import pytest

import simulator.graphs.layout as L
from simulator import Graph, load_example
from simulator.graphs.examples import EXAMPLES
from simulator.graphs.expression import parse_expression


def crossings(graph: Graph, pos: dict) -> int:
    """Pairs of wires between the same two columns whose ends are in opposite vertical order."""
    wires = [(pos[e.src], pos[e.dst]) for e in graph.edges]
    count = 0
    for (a0, a1), (b0, b1) in itertools.combinations(wires, 2):
        if a0[0] == b0[0] and a1[0] == b1[0] and (a0[1] - b0[1]) * (a1[1] - b1[1]) < 0:
            count += 1
    return count


def random_dag(rng: random.Random, n_leaves: int, n_ops: int) -> Graph:
    """Ops wired to random earlier nodes (fan-out and long wires included), added in a shuffled order."""
    g = Graph()
    ids = [g.add_input(f"x{i}", 1.0) for i in range(n_leaves)]
    for k in range(n_ops):
        op = g.add_op(rng.choice(["add", "mul", "sub"]), name=f"o{k}")
        g.connect(rng.choice(ids), op, "x")
        g.connect(rng.choice(ids), op, "y")
        ids.append(op)
    return g


def positions_and_pairs(monkeypatch, graph: Graph, stop_when_settled: bool) -> tuple[dict, int]:
    """The positions, and how many pairs of sweeps ran."""
    real, pairs = L._order_rows, []
    with monkeypatch.context() as m:
        m.setattr(L, "_order_rows", lambda *a: pairs.append(real(*a, stop_when_settled=stop_when_settled)))
        pos = L.layered_positions(graph)
    return pos, pairs[0]


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_lecture_graphs_flow_left_to_right_without_crossings_or_overlaps(name):
    g = load_example(name)
    pos = L.layered_positions(g)
    assert set(pos) == {n.id for n in g}
    assert all(pos[e.src][0] < pos[e.dst][0] for e in g.edges)
    assert len(set(pos.values())) == len(pos)
    assert crossings(g, pos) == 0


def test_sweeps_untangle_inputs_given_in_crossed_order():
    g = parse_expression("a * d + b * c + c * e")   # inputs first met in an order whose wires would cross
    pos = L.layered_positions(g)
    assert crossings(g, pos) == 0
    ys = {n: pos[n][1] for n in "abcde"}
    assert len(set(ys.values())) == 5


def test_stopping_once_settled_gives_the_positions_of_the_full_schedule(monkeypatch):
    rng = random.Random(7)
    lecture = [load_example(name) for name in sorted(EXAMPLES)]
    lecture.append(parse_expression(" + ".join(f"a{i}*b{i}" for i in range(60))))
    tangled = [random_dag(rng, rng.randint(1, 6), rng.randint(1, 40)) for _ in range(150)]
    # Graphs on which a wrong stop would show: stopping after the first quiet pair (seed 2726, before every layer
    # was centred) or counting one direction's moves only (the others) gives other rows than the full schedule.
    for seed in (2726, 753, 797, 2306, 2220, 1855):
        r = random.Random(seed)
        tangled.append(random_dag(r, r.randint(1, 8), r.randint(2, 30)))
    pairs_run = []
    for g in lecture + tangled:
        full, pairs = positions_and_pairs(monkeypatch, g, stop_when_settled=False)
        assert pairs == L._SWEEPS
        settled, pairs = positions_and_pairs(monkeypatch, g, stop_when_settled=True)
        assert settled == full == L.layered_positions(g)
        pairs_run.append(pairs)
    assert max(pairs_run[:len(lecture)]) == 2           # the lecture graphs settle in two pairs of the four
    assert sum(p < L._SWEEPS for p in pairs_run[len(lecture):]) > 30   # and many random tangles before the last
