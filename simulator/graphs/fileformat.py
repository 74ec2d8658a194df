"""Versioned JSON files for graphs: save, load, migrate older versions, and refuse anything hostile.

A file is {"format": "backprop-studio-graph", "version": 1, "graph": {"nodes": [...], "edges": [...],
"output": id or null}}, optionally with a "meta" object the app uses for its own notes (an autosave records the
file it came from there). Loading raises FileFormatError, and nothing else, for every bad input. Save and load share
their limits (`check_limits` and MAX_FILE_BYTES): whatever save writes, load opens.
"""
from __future__ import annotations

import json
import math
import os
from collections import deque
from typing import Any, Callable

import numpy as np

from simulator.core.errors import FileFormatError, StudioError
from simulator.core.files import atomic_write, check_path, read_bounded
from simulator.graphs.graph import MAX_ELEMENTS, MAX_NODES, Graph, Node

FORMAT = "backprop-studio-graph"
VERSION = 1
MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_TOTAL_ELEMENTS = 20_000_000
MAX_DEPTH = 64
MAX_POS = 1e6          # a canvas coordinate; the editor never goes near it, a hostile file might
MAX_META_BYTES = 64 * 1024

# version n -> function turning a version-n document into a version n+1 document.
MIGRATIONS: dict[int, Callable[[dict], dict]] = {}


# ---- writing -----------------------------------------------------------------------------------------------

def encode_value(v: np.ndarray) -> Any:
    if v.ndim == 0:
        return float(v)
    return {"shape": list(v.shape), "data": v.reshape(-1).astype(np.float64).tolist()}


def _clamp_pos(v: float) -> float:
    return min(max(float(v), -MAX_POS), MAX_POS)


def graph_to_dict(graph: Graph, meta: dict | None = None) -> dict:
    nodes = []
    for n in graph:
        # positions beyond the loader's range are pulled back onto the canvas so the file still opens
        d: dict[str, Any] = {"id": n.id, "kind": n.kind, "pos": [_clamp_pos(n.pos[0]), _clamp_pos(n.pos[1])]}
        if n.kind == "op":
            d["op"] = n.op
            d["attrs"] = {k: list(v) if isinstance(v, tuple) else v for k, v in n.attrs.items()}
        else:
            d["value"] = encode_value(n.value)
        nodes.append(d)
    edges = [{"src": e.src, "dst": e.dst, "port": e.port} for e in graph.edges]
    doc = {"format": FORMAT, "version": VERSION,
           "graph": {"nodes": nodes, "edges": edges, "output": graph.explicit_output}}
    if meta:
        doc["meta"] = meta
    return doc


def check_limits(graph: Graph) -> None:
    """The limits load applies, checked on a graph about to be saved: FileFormatError saying which one is broken."""
    if len(graph) > MAX_NODES:
        raise FileFormatError(f"the graph has {len(graph):,} nodes; a file holds at most {MAX_NODES:,}")
    total = 0
    for n in graph:
        if n.is_leaf and n.value is not None:
            if n.value.size > MAX_ELEMENTS:
                raise FileFormatError(f"'{n.id}' has {n.value.size:,} entries; a file holds at most "
                                      f"{MAX_ELEMENTS:,} per value")
            total += n.value.size
    if total > MAX_TOTAL_ELEMENTS:
        raise FileFormatError(f"the graph holds {total:,} numbers; a file holds at most {MAX_TOTAL_ELEMENTS:,}")


def dumps(graph: Graph, meta: dict | None = None) -> str:
    """The document as text: one line per node field, each list of numbers on one line (a compact file)."""
    doc = graph_to_dict(graph, meta)
    # Numbers one per line would make a file much larger than it needs to be; encode each list of numbers
    # compactly and splice it into the indented document through a placeholder.
    blobs: list[str] = []

    def inline(holder: dict, key: str) -> None:
        blobs.append(json.dumps(holder[key], allow_nan=False))
        holder[key] = f"\x00{len(blobs) - 1}\x00"
    for d in doc["graph"]["nodes"]:
        inline(d, "pos")
        if isinstance(d.get("value"), dict):
            inline(d["value"], "shape")
            inline(d["value"], "data")
    text = json.dumps(doc, indent=1, allow_nan=False)
    if blobs:
        parts = text.split('"\\u0000')
        if len(parts) != len(blobs) + 1:  # a NUL in some other string: give up on the compact form
            return json.dumps(graph_to_dict(graph, meta), indent=1, allow_nan=False)
        out = [parts[0]]
        for part in parts[1:]:
            index, rest = part.split('\\u0000"', 1)
            out.append(blobs[int(index)])
            out.append(rest)
        text = "".join(out)
    return text


def to_bytes(graph: Graph, meta: dict | None = None) -> bytes:
    """The file's bytes, refused with FileFormatError when load would refuse them (too many numbers, too large)."""
    check_limits(graph)
    data = dumps(graph, meta).encode("utf-8")
    if len(data) > MAX_FILE_BYTES:
        raise FileFormatError(f"the graph would take {len(data) / 2**20:.1f} MB on disk; a graph file holds at most "
                              f"{MAX_FILE_BYTES // 2**20} MB (make the large values smaller)")
    return data


def save(graph: Graph, path: str | os.PathLike, meta: dict | None = None) -> None:
    """Write atomically (simulator.core.files.atomic_write). FileFormatError, before anything is written, for a
    graph the loader would refuse; OSError when the disk refuses."""
    p = check_path(path)
    try:
        data = to_bytes(graph, meta)
    except FileFormatError as exc:
        raise FileFormatError(f"{p.name} was not saved: {exc}") from None
    atomic_write(p, data)


# ---- reading -----------------------------------------------------------------------------------------------

def _reject_constant(name: str) -> Any:
    raise FileFormatError(f"the file contains {name}, which is not a number a graph can hold")


def _depth(obj: Any, limit: int) -> int:
    """Nesting depth, iteratively, stopping once past `limit`."""
    stack = [(obj, 1)]
    deepest = 0
    while stack:
        cur, d = stack.pop()
        deepest = max(deepest, d)
        if deepest > limit:
            return deepest
        if isinstance(cur, dict):
            stack.extend((v, d + 1) for v in cur.values() if isinstance(v, (dict, list)))
        elif isinstance(cur, list):
            stack.extend((v, d + 1) for v in cur if isinstance(v, (dict, list)))
    return deepest


def loads(data: bytes | str) -> Graph:
    """Parse a document into a Graph; FileFormatError for anything that is not a valid graph file."""
    return loads_with_meta(data)[0]


def loads_with_meta(data: bytes | str) -> tuple[Graph, dict]:
    """The graph and the document's "meta" object ({} when there is none)."""
    try:
        return _loads(data)
    except FileFormatError:
        raise
    except StudioError as exc:
        raise FileFormatError(f"the graph in the file is invalid: {exc}") from None
    except (RecursionError, MemoryError):
        raise FileFormatError("the file is nested too deeply or too large to read") from None
    except (OverflowError, ValueError) as exc:  # e.g. an integer with thousands of digits
        raise FileFormatError(f"the file holds a number that cannot be used: {str(exc)[:120]}") from None


def _loads(data: bytes | str) -> tuple[Graph, dict]:
    if isinstance(data, str):
        data = data.encode("utf-8", errors="surrogatepass")
    if len(data) > MAX_FILE_BYTES:
        raise FileFormatError(f"the file is larger than {MAX_FILE_BYTES // 2**20} MB")
    if not data.strip():
        raise FileFormatError("the file is empty")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileFormatError(f"the file is not UTF-8 text (bad byte at position {exc.start})") from None
    try:
        doc = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise FileFormatError(f"the file is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}")\
            from None
    if _depth(doc, MAX_DEPTH) > MAX_DEPTH:
        raise FileFormatError("the file is nested too deeply")
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise FileFormatError(f"this is not a Backprop Studio graph (expected \"format\": \"{FORMAT}\")")
    version = doc.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise FileFormatError(f"the file's version must be a positive integer, got {version!r}")
    if version > VERSION:
        raise FileFormatError(f"the file was written by a newer Backprop Studio (format version {version}; "
                              f"this one reads up to {VERSION}). Please update the app.")
    while version < VERSION:
        migrate = MIGRATIONS.get(version)
        if migrate is None:
            raise FileFormatError(f"no migration from format version {version}")
        doc = migrate(doc)
        version += 1
        doc["version"] = version
    meta = doc.get("meta", {})
    _expect(isinstance(meta, dict), "the file's \"meta\" must be an object")
    _expect(len(json.dumps(meta)) <= MAX_META_BYTES, "the file's \"meta\" object is too large")
    return _graph_from(doc.get("graph")), meta


def _expect(cond: bool, message: str) -> None:
    if not cond:
        raise FileFormatError(message)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _decode_value(raw: Any, where: str, budget: list[int]) -> np.ndarray:
    if _is_number(raw):
        _expect(math.isfinite(raw), f"{where}: the value must be finite")
        budget[0] += 1
        _expect(budget[0] <= MAX_TOTAL_ELEMENTS, f"the file holds more than {MAX_TOTAL_ELEMENTS:,} numbers in all")
        return np.array(float(raw))
    _expect(isinstance(raw, dict) and set(raw) == {"shape", "data"},
            f"{where}: a value must be a number or {{\"shape\": [...], \"data\": [...]}}")
    shape, flat = raw["shape"], raw["data"]
    _expect(isinstance(shape, list) and 0 < len(shape) <= 8 and all(
        isinstance(n, int) and not isinstance(n, bool) and 0 < n <= MAX_ELEMENTS for n in shape),
        f"{where}: the shape must be a list of 1 to 8 positive integers")
    size = 1
    for n in shape:  # exact integers: a product of huge dimensions must not wrap around
        size *= n
        _expect(size <= MAX_ELEMENTS, f"{where}: the tensor has more than {MAX_ELEMENTS:,} entries (shape {shape}); "
                                      f"the limit is {MAX_ELEMENTS:,}")
    budget[0] += size
    _expect(budget[0] <= MAX_TOTAL_ELEMENTS, f"the file holds more than {MAX_TOTAL_ELEMENTS:,} numbers in all")
    _expect(isinstance(flat, list) and len(flat) == size,
            f"{where}: the shape {shape} needs {size} numbers, the data has "
            f"{len(flat) if isinstance(flat, list) else 'no list of'} numbers")
    _expect(all(_is_number(x) for x in flat), f"{where}: the data must contain only numbers")
    arr = np.array(flat, dtype=np.float64).reshape(shape)
    _expect(bool(np.all(np.isfinite(arr))), f"{where}: the data contains non-finite numbers")
    return arr


def _decode_pos(raw: Any, where: str) -> tuple[float, float]:
    _expect(isinstance(raw, list) and len(raw) == 2 and all(_is_number(v) for v in raw),
            f"{where}: \"pos\" must be two numbers")
    x, y = float(raw[0]), float(raw[1])  # OverflowError for a 400-digit integer: our error, through loads
    _expect(math.isfinite(x) and math.isfinite(y) and abs(x) <= MAX_POS and abs(y) <= MAX_POS,
            f"{where}: the position {raw} is outside the canvas (each coordinate within ±{MAX_POS:g})")
    return (x, y)


def _edge_order(graph: Graph, edges: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """The order to wire the edges in, after proving they form no cycle (Kahn's algorithm, linear in the file).

    Graph.connect checks for a cycle by searching from the consumer; in the file's own order that search can cross
    the whole graph for every edge (a graph listed back to front took 30 s for 5,000 nodes). The search is cheap
    when the consumer has no outgoing wire yet, so the file's order is kept when that holds for every edge (files
    the editor writes in the usual order), and otherwise the edges are wired in the topological order of their
    consumers (stable), where it always holds. Either way the load is linear in the file's size."""
    succ: dict[str, list[str]] = {}
    indeg: dict[str, int] = {}
    for src, dst, _ in edges:
        succ.setdefault(src, []).append(dst)
        indeg[dst] = indeg.get(dst, 0) + 1
    rank: dict[str, int] = {}
    ready = deque(n.id for n in graph if indeg.get(n.id, 0) == 0)
    while ready:
        nid = ready.popleft()
        rank[nid] = len(rank)
        for nxt in succ.get(nid, ()):
            indeg[nxt] -= 1
            if indeg[nxt] == 0:
                ready.append(nxt)
    if len(rank) < len(graph):
        stuck = sorted(nid for nid, d in indeg.items() if d > 0)
        raise FileFormatError(f"the edges form a cycle through {', '.join(repr(s) for s in stuck[:6])}"
                              f"{' …' if len(stuck) > 6 else ''}")
    has_out: set[str] = set()
    for src, dst, _ in edges:
        if dst in has_out:
            break
        has_out.add(src)
    else:
        return edges
    return sorted(edges, key=lambda e: rank[e[1]])


def _graph_from(g: Any) -> Graph:
    _expect(isinstance(g, dict), "the file has no \"graph\" object")
    nodes, edges = g.get("nodes"), g.get("edges")
    _expect(isinstance(nodes, list) and isinstance(edges, list), "the graph needs \"nodes\" and \"edges\" lists")
    _expect(len(nodes) <= MAX_NODES, f"the graph has more than {MAX_NODES} nodes")
    graph = Graph()
    budget = [0]
    for i, raw in enumerate(nodes):
        where = f"node {i + 1}"
        _expect(isinstance(raw, dict), f"{where} is not an object")
        nid, kind = raw.get("id"), raw.get("kind")
        _expect(isinstance(nid, str), f"{where} has no text \"id\"")
        where = f"node '{nid[:64]}'"
        _expect(nid not in graph, f"two nodes share the id '{nid[:64]}'")
        pos = _decode_pos(raw.get("pos", [0, 0]), where)
        if kind == "op":
            op, attrs = raw.get("op"), raw.get("attrs", {})
            _expect(isinstance(op, str), f"{where}: an op node needs an \"op\" name")
            _expect(isinstance(attrs, dict), f"{where}: \"attrs\" must be an object")
            try:
                graph.add_node(Node(nid, "op", op=op, attrs=attrs, pos=pos))
            except StudioError as exc:
                raise FileFormatError(f"{where}: {exc}") from None
        elif kind in ("input", "param", "const"):
            value = _decode_value(raw.get("value"), where, budget)
            try:
                graph.add_node(Node(nid, kind, value=value, pos=pos))
            except StudioError as exc:
                raise FileFormatError(f"{where}: {exc}") from None
        else:
            raise FileFormatError(f"{where}: unknown kind {str(kind)[:40]!r}")
    _expect(len(edges) <= 16 * MAX_NODES, f"the graph has more than {16 * MAX_NODES:,} edges")
    wires: list[tuple[str, str, str]] = []
    fed: set[tuple[str, str]] = set()
    for i, raw in enumerate(edges):
        _expect(isinstance(raw, dict) and all(isinstance(raw.get(k), str) for k in ("src", "dst", "port")),
                f"edge {i + 1} needs text \"src\", \"dst\" and \"port\"")
        src, dst, port = raw["src"], raw["dst"], raw["port"]
        for end in (src, dst):
            _expect(end in graph, f"edge {i + 1} refers to a node '{end[:64]}' that does not exist")
        node = graph.node(dst)
        _expect(node.kind == "op", f"edge {i + 1} ({src} → {dst}): '{dst}' is a {node.kind} and has no input ports")
        _expect(port in node.ports, f"edge {i + 1} ({src} → {dst}): '{dst}' ({node.op}) has no input port "
                                    f"'{port[:64]}'; its ports are {', '.join(node.ports)}")
        _expect((dst, port) not in fed, f"edge {i + 1}: input '{port}' of '{dst}' is already fed by another edge")
        _expect(src != dst, f"edge {i + 1}: '{src}' cannot feed itself (a cycle)")
        fed.add((dst, port))
        wires.append((src, dst, port))
    for src, dst, port in _edge_order(graph, wires):
        try:
            graph.connect(src, dst, port, check_shapes=False)
        except StudioError as exc:
            raise FileFormatError(f"edge {src} → {dst}.{port}: {exc}") from None
    output = g.get("output")
    if output is not None:
        _expect(isinstance(output, str) and output in graph,
                f"the output '{str(output)[:64]}' is not a node of the graph")
        graph.set_output(output)
    return graph


def load(path: str | os.PathLike) -> Graph:
    """Read a graph file: FileFormatError naming the file for anything unreadable (missing, a folder, a FIFO or
    device, too large, damaged, hostile), raised before reading more than MAX_FILE_BYTES."""
    return load_with_meta(path)[0]


def load_with_meta(path: str | os.PathLike) -> tuple[Graph, dict]:
    """The graph and the file's "meta" object (an autosave's notes; {} for an ordinary file)."""
    p = check_path(path)
    data = read_bounded(p, MAX_FILE_BYTES, "graph file")
    try:
        return loads_with_meta(data)
    except FileFormatError as exc:
        raise FileFormatError(f"{p.name}: {exc}") from None
