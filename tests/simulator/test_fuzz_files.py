"""Hostile graph files: byte-mutated saves of every example, pipes, devices, huge positions, a back-to-front file of
5,000 nodes, and a graph too large to open (refused when saved, not when opened)."""
import json
import os
import threading
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator import EXAMPLES, FileFormatError, Graph, StudioError, load_example
from simulator.graphs import fileformat as ff
from simulator.graphs.graph import MAX_ELEMENTS

SEEDS = {name: ff.dumps(load_example(name)).encode() for name in sorted(EXAMPLES)}


def _mutate(data: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    """Apply (kind, position, bytes) edits: 0 overwrite, 1 insert, 2 delete a run, 3 duplicate a run."""
    b = bytearray(data)
    for kind, pos, chunk in edits:
        if not b:
            b = bytearray(chunk)
            continue
        i = pos % len(b)
        if kind == 0:
            b[i:i + len(chunk)] = chunk
        elif kind == 1:
            b[i:i] = chunk
        elif kind == 2:
            del b[i:i + 1 + len(chunk) * 8]
        else:
            b[i:i] = b[i:i + 1 + len(chunk) * 16]
    return bytes(b)


INTERESTING = st.sampled_from([b"{", b"}", b"[", b"]", b",", b":", b'"', b"-", b"0", b"1e308", b"1e999", b"-0",
                               b"NaN", b"null", b"true", b"\x00", b"\xff", b"\\u0000", b'"op"', b'"kind"',
                               b'"const"', b'"shape"', b'"data"', b"9" * 40, b"[" * 70])
CHUNKS = st.one_of(st.binary(min_size=1, max_size=6), INTERESTING)


@settings(max_examples=400, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(SEEDS)),
       edits=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 1 << 20), CHUNKS), min_size=1, max_size=4))
def test_byte_mutated_example_files_raise_only_our_errors(name, edits):
    data = _mutate(SEEDS[name], edits)
    try:
        g = ff.loads(data)
    except FileFormatError:
        return
    except StudioError as exc:  # pragma: no cover - the loader promises FileFormatError itself
        pytest.fail(f"a {type(exc).__name__} escaped the loader: {exc}")
    assert isinstance(g, Graph)
    for n in g:  # whatever loaded is within the limits the file format states
        assert abs(n.pos[0]) <= ff.MAX_POS and abs(n.pos[1]) <= ff.MAX_POS
        if n.is_leaf:
            assert np.all(np.isfinite(n.value)) and n.value.size <= MAX_ELEMENTS
    ff.loads(ff.to_bytes(g))  # and what loaded saves and loads again


@settings(max_examples=150, deadline=2000)
@given(name=st.sampled_from(sorted(SEEDS)), data=st.data())
def test_values_swapped_for_json_of_another_type_raise_only_our_errors(name, data):
    doc = json.loads(SEEDS[name])
    nodes = doc["graph"]["nodes"]
    node = nodes[data.draw(st.integers(0, len(nodes) - 1))]
    key = data.draw(st.sampled_from(sorted(node)))
    node[key] = data.draw(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=5),
                                    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3),
                                                                                         st.integers(), max_size=2)))
    try:
        ff.loads(json.dumps(doc))
    except FileFormatError:
        pass


# ---- paths that are not graph files ----------------------------------------------------------------------------

def _load_within(path, seconds: float = 10.0):
    """ff.load(path) in a thread: the error it raised, or a failure when it is still waiting after `seconds`."""
    result: list = []

    def run():
        try:
            ff.load(path)
            result.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            result.append(exc)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"loading {path} hangs"
    return result[0]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX-only")
def test_a_fifo_is_refused_at_once_naming_the_file(tmp_path):
    fifo = tmp_path / "pipe.bps.json"
    os.mkfifo(fifo)
    exc = _load_within(fifo)
    assert isinstance(exc, FileFormatError) and "pipe.bps.json" in str(exc) and "not a regular file" in str(exc)


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom", "/dev/null"])
def test_devices_are_refused_at_once(device):
    if not os.path.exists(device):
        pytest.skip(f"{device} does not exist here")
    exc = _load_within(device)
    assert isinstance(exc, FileFormatError) and "not a regular file" in str(exc)


def test_folders_nul_bytes_and_missing_files_are_our_errors(tmp_path):
    for path, fragment in ((tmp_path, "folder"), (str(tmp_path / "a\x00b.json"), "valid file name"),
                           (tmp_path / "gone.bps.json", "no such file"), ("", "no file name")):
        with pytest.raises(FileFormatError, match=fragment):
            ff.load(path)


def test_a_file_over_the_limit_is_refused_before_it_is_read(tmp_path, monkeypatch):
    path = tmp_path / "big.bps.json"
    path.write_bytes(ff.dumps(load_example("circuit")).encode())
    monkeypatch.setattr(ff, "MAX_FILE_BYTES", 100)
    with pytest.raises(FileFormatError, match=r"big\.bps\.json.*limit"):
        ff.load(path)


# ---- values ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("pos", [[1e7, 0], [0, -1e6 - 1], [1e308, 1e308], [2 ** 80, 0]])
def test_positions_outside_the_canvas_are_refused(pos):
    doc = json.loads(ff.dumps(load_example("circuit")))
    doc["graph"]["nodes"][1]["pos"] = pos
    with pytest.raises(FileFormatError, match="outside the canvas"):
        ff.loads(json.dumps(doc))
    doc["graph"]["nodes"][1]["pos"] = [ff.MAX_POS, -ff.MAX_POS]  # the edge of the range is fine
    assert ff.loads(json.dumps(doc)).nodes[1].pos == (ff.MAX_POS, -ff.MAX_POS)


def test_a_node_dragged_far_away_is_saved_where_the_loader_accepts_it(tmp_path):
    g = load_example("circuit")
    g.move("x", (5e7, -3e9))
    ff.save(g, tmp_path / "far.bps.json")
    assert ff.load(tmp_path / "far.bps.json").node("x").pos == (ff.MAX_POS, -ff.MAX_POS)


# ---- what can be saved can be opened ------------------------------------------------------------------------------

def test_a_graph_too_large_to_open_is_refused_by_save_before_writing(tmp_path):
    g = Graph()
    g.add_input("x", np.random.default_rng(0).standard_normal(3_500_000))  # ~70 MB of text: over 64 MB
    g.add_op("relu", name="r")
    g.connect("x", "r", "x")
    path = tmp_path / "huge.bps.json"
    path.write_bytes(b"the old file")
    with pytest.raises(FileFormatError, match=r"huge\.bps\.json was not saved.*MB"):
        ff.save(g, path)
    assert path.read_bytes() == b"the old file" and os.listdir(tmp_path) == ["huge.bps.json"]


def test_the_largest_savable_graph_opens(tmp_path, monkeypatch):
    """Shrink the byte limit and find a graph just under it: save accepts it, load accepts it."""
    monkeypatch.setattr(ff, "MAX_FILE_BYTES", 200_000)
    rng = np.random.default_rng(1)
    saved = None
    for n in range(4_000, 20_000, 1_000):
        g = Graph()
        g.add_input("x", rng.standard_normal(n))
        try:
            ff.save(g, tmp_path / "g.bps.json")
        except FileFormatError:
            break
        saved = n
    assert saved is not None and saved < 19_000  # the limit was reached ...
    assert ff.load(tmp_path / "g.bps.json").node("x").value.size == saved  # ... and the last save opens


def test_element_limits_are_shared(monkeypatch):
    monkeypatch.setattr(ff, "MAX_TOTAL_ELEMENTS", 10)
    g = Graph()
    g.add_input("a", np.ones(6))
    g.add_input("b", np.ones(6))
    with pytest.raises(FileFormatError, match="at most 10"):
        ff.to_bytes(g)
    monkeypatch.setattr(ff, "MAX_TOTAL_ELEMENTS", 12)
    text = ff.to_bytes(g)
    monkeypatch.setattr(ff, "MAX_TOTAL_ELEMENTS", 10)
    with pytest.raises(FileFormatError, match="more than 10"):
        ff.loads(text)


# ---- linear time ----------------------------------------------------------------------------------------------------

def _big_chain(n_nodes: int = 5_000) -> dict:
    """A chain x -> a1 -> a3 -> ... with a constant into every add: n_nodes nodes (the file-format limit)."""
    g = Graph()
    g.add_input("x", 1.0)
    prev = "x"
    for i in range(1, (n_nodes - 1) // 2 + 1):
        c = g.add_const(0.5, name=f"c{i}", pos=(i * 10.0, 50.0))
        a = g.add_op("add", name=f"a{i}", pos=(i * 10.0, 0.0))
        g.connect(prev, a, "x", check_shapes=False)
        g.connect(c, a, "y", check_shapes=False)
        prev = a
    return json.loads(ff.dumps(g))


def _best_of(text: str, repeats: int = 2) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        ff.loads(text)
        best = min(best, time.perf_counter() - t0)
    return best


def test_edge_order_does_not_make_loading_quadratic():
    doc = _big_chain()
    assert len(doc["graph"]["nodes"]) >= 4_999
    forward = json.dumps(doc)
    doc["graph"]["edges"].reverse()
    backward = json.dumps(doc)
    import random
    random.Random(0).shuffle(doc["graph"]["edges"])
    shuffled = json.dumps(doc)
    t_forward = _best_of(forward)
    for text in (backward, shuffled):
        t = _best_of(text)
        assert t <= 3 * t_forward + 0.5, f"{t:.2f} s against {t_forward:.2f} s in forward order"
    g = ff.loads(backward)
    assert g.infer_shapes()[g.output] == ()


def test_a_file_in_the_usual_order_keeps_its_edge_order_and_a_cycle_anywhere_is_named():
    g = load_example("two_layer_net")
    assert ff.loads(ff.dumps(g)).edges == g.edges
    doc = _big_chain(41)
    doc["graph"]["edges"].reverse()
    doc["graph"]["edges"][0] = {"src": "a20", "dst": "a3", "port": "y"}  # a3's constant replaced by a back edge
    doc["graph"]["edges"] = [e for e in doc["graph"]["edges"] if not (e["dst"] == "a3" and e["src"] == "c3")]
    with pytest.raises(FileFormatError, match="cycle through 'a10'"):
        ff.loads(json.dumps(doc))
