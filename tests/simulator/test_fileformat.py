"""Graph files: round trips, migrations, newer versions refused, and hostile input that only ever raises ours."""
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import EXAMPLES, FileFormatError, Graph, load_example, run
from simulator.graphs import fileformat as ff


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_round_trip_keeps_everything(name, tmp_path):
    g = load_example(name)
    path = tmp_path / "g.bps.json"
    ff.save(g, path)
    h = ff.load(path)
    assert [(n.id, n.kind, n.op, n.attrs, n.pos) for n in h] == [(n.id, n.kind, n.op, n.attrs, n.pos) for n in g]
    assert h.edges == g.edges
    for n in g:
        if n.is_leaf:
            np.testing.assert_array_equal(h.node(n.id).value, n.value)
    np.testing.assert_array_equal(run(h).value, run(g).value)
    assert ff.dumps(h) == ff.dumps(g)


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "a.json"
    ff.save(load_example("circuit"), path)
    ff.save(load_example("fan_out"), path)
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]
    assert ff.load(path).node("x").value == 3.0


def test_a_graph_with_a_shape_problem_still_saves_and_loads():
    g = Graph.from_expression("A @ B")  # scalar defaults: matmul's shape rule fails until values are set
    assert g.shape_problem() is not None
    h = ff.loads(ff.dumps(g))
    assert h.edges == g.edges


def test_newer_version_is_refused_and_migrations_chain(monkeypatch):
    doc = json.loads(ff.dumps(load_example("circuit")))
    doc["version"] = ff.VERSION + 1
    with pytest.raises(FileFormatError, match="newer"):
        ff.loads(json.dumps(doc))
    # Pretend the current version is 3 and that versions 1 and 2 had other spellings.
    old = json.loads(ff.dumps(load_example("circuit")))
    for n in old["graph"]["nodes"]:
        n["type"] = n.pop("kind")
    def v1_to_v2(d):
        for n in d["graph"]["nodes"]:
            n["kind"] = n.pop("type")
        return d
    def v2_to_v3(d):
        d["graph"]["edges"] = [dict(e) for e in d["graph"]["edges"]]
        return d
    monkeypatch.setattr(ff, "VERSION", 3)
    monkeypatch.setattr(ff, "MIGRATIONS", {1: v1_to_v2, 2: v2_to_v3})
    g = ff.loads(json.dumps(old))
    assert float(run(g).value) == -12.0
    monkeypatch.setattr(ff, "MIGRATIONS", {1: v1_to_v2})
    with pytest.raises(FileFormatError, match="no migration from format version 2"):
        ff.loads(json.dumps(old))


def _doc(**graph):
    base = json.loads(ff.dumps(load_example("circuit")))
    base["graph"].update(graph)
    return json.dumps(base)


GOOD = json.loads(ff.dumps(load_example("circuit")))


@pytest.mark.parametrize("data, fragment", [
    (b"", "empty"),
    (b"   \n", "empty"),
    (b'{"format": "backprop-studio-graph", "vers', "not valid JSON"),
    (b"\xff\xfe\x00{", "UTF-8"),
    (b'{"format": "backprop-studio-graph", "version": 1, "graph": {"nodes": [{"id": "x", "kind": "input", '
     b'"value": NaN}], "edges": []}}', "NaN"),
    (b'[Infinity]', "Infinity"),
    (b'{"format": "something-else", "version": 1}', "not a Backprop Studio graph"),
    (b'{"format": "backprop-studio-graph", "version": "1"}', "version"),
    (b'{"format": "backprop-studio-graph", "version": true}', "version"),
    (b'{"format": "backprop-studio-graph", "version": 1}', "no \"graph\""),
    (b"[" * 5000 + b"]" * 5000, "nested"),
    (b'{"a":' * 100 + b"1" + b"}" * 100, "nested"),
    (_doc(nodes=[{"id": "x", "kind": "op", "op": "frobnicate"}], edges=[]).encode(), "unknown op"),
    (_doc(edges=[{"src": "x", "dst": "ghost", "port": "x"}]).encode(), "does not exist"),
    (_doc(nodes=GOOD["graph"]["nodes"] + [GOOD["graph"]["nodes"][0]]).encode(), "share the id"),
    (_doc(edges=GOOD["graph"]["edges"] + [{"src": "f", "dst": "q", "port": "x"}]).encode(), "already fed"),
    (_doc(nodes=[{"id": "x", "kind": "input", "value": {"shape": [100000, 100000], "data": []}}], edges=[]).encode(),
     "limit"),
    (_doc(nodes=[{"id": "x", "kind": "input", "value": {"shape": [2], "data": [1]}}], edges=[]).encode(), "needs 2"),
    (_doc(nodes=[{"id": "x", "kind": "input", "value": "12"}], edges=[]).encode(), "value"),
    (_doc(nodes=[{"id": "x", "kind": "wizard"}], edges=[]).encode(), "unknown kind"),
    (_doc(nodes=[{"id": 7, "kind": "input", "value": 1}], edges=[]).encode(), "id"),
    (_doc(nodes=[{"id": "x y", "kind": "input", "value": 1}], edges=[]).encode(), "valid name"),
    (_doc(nodes=[{"id": "p", "kind": "op", "op": "pow", "attrs": {"p": "two"}}], edges=[]).encode(), "number"),
    (_doc(nodes={"x": 1}).encode(), "lists"),
    (_doc(output="nowhere").encode(), "output"),
])
def test_hostile_files_raise_file_format_error(data, fragment):
    with pytest.raises(FileFormatError, match=fragment):
        ff.loads(data)


def test_cycle_in_file_is_refused():
    doc = json.loads(ff.dumps(load_example("fan_out")))
    # feed f back into q1's y port instead of y
    for e in doc["graph"]["edges"]:
        if e["dst"] == "q1" and e["port"] == "y":
            e["src"] = "f"
    doc["graph"]["edges"].sort(key=lambda e: e["src"] == "f")
    with pytest.raises(FileFormatError, match="cycle"):
        ff.loads(json.dumps(doc))


def test_missing_file_is_our_error(tmp_path):
    with pytest.raises(FileFormatError, match="absent.json: no such file"):
        ff.load(tmp_path / "absent.json")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_raise_only_file_format_error(data):
    try:
        ff.loads(data)
    except FileFormatError:
        pass


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_documents_raise_only_file_format_error(data):
    doc = json.loads(ff.dumps(load_example("sigmoid_neuron")))
    # replace one random sub-tree of a valid document with random JSON
    paths = []

    def walk(obj, path):
        paths.append(path)
        if isinstance(obj, dict):
            for k, v in obj.items():
                walk(v, path + [k])
        elif isinstance(obj, list):
            for i, v in enumerate(obj):
                walk(v, path + [i])
    walk(doc, [])
    path = data.draw(st.sampled_from(paths[1:]))
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = data.draw(json_values)
    try:
        g = ff.loads(json.dumps(doc))
    except FileFormatError:
        return
    assert isinstance(g, Graph)


@pytest.mark.parametrize("replace, by", [
    ('"value": -2.0', '"value": 1' + "0" * 400),
    ('"value": -2.0', '"value": {"shape": [1], "data": [1' + "0" * 400 + ']}'),
    ('"pos": [', '"pos": [1' + "0" * 400 + ', '),
    ('"pos": [', '"pos": [' + "1" * 5000 + ', '),
])
def test_numbers_too_large_for_a_float_are_our_error(replace, by):
    text = ff.dumps(load_example("circuit"))
    assert replace in text
    with pytest.raises(FileFormatError):
        ff.loads(text.replace(replace, by, 1))
