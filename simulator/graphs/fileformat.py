"""Versioned JSON files for graphs: save, load, migrate older versions, and refuse anything hostile.

A file is {"format": "backprop-studio-graph", "version": 1, "graph": {"nodes": [...], "edges": [...],
"output": id or null}}. Loading raises FileFormatError, and nothing else, for every bad input.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from simulator.core.errors import FileFormatError, StudioError
from simulator.graphs.graph import MAX_ELEMENTS, MAX_NODES, Graph, Node

FORMAT = "backprop-studio-graph"
VERSION = 1
MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_TOTAL_ELEMENTS = 20_000_000
MAX_DEPTH = 64

# version n -> function turning a version-n document into a version n+1 document.
MIGRATIONS: dict[int, Callable[[dict], dict]] = {}


# ---- writing -----------------------------------------------------------------------------------------------

def encode_value(v: np.ndarray) -> Any:
    if v.ndim == 0:
        return float(v)
    return {"shape": list(v.shape), "data": [float(x) for x in v.reshape(-1)]}


def graph_to_dict(graph: Graph) -> dict:
    nodes = []
    for n in graph:
        d: dict[str, Any] = {"id": n.id, "kind": n.kind, "pos": [n.pos[0], n.pos[1]]}
        if n.kind == "op":
            d["op"] = n.op
            d["attrs"] = {k: list(v) if isinstance(v, tuple) else v for k, v in n.attrs.items()}
        else:
            d["value"] = encode_value(n.value)
        nodes.append(d)
    edges = [{"src": e.src, "dst": e.dst, "port": e.port} for e in graph.edges]
    return {"format": FORMAT, "version": VERSION,
            "graph": {"nodes": nodes, "edges": edges, "output": graph.explicit_output}}


def dumps(graph: Graph) -> str:
    return json.dumps(graph_to_dict(graph), indent=1, allow_nan=False)


def save(graph: Graph, path: str | os.PathLike) -> None:
    """Write atomically: a temporary file in the same folder, then a rename over the target."""
    path = Path(path)
    text = dumps(graph)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


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
            stack.extend((v, d + 1) for v in cur.values())
        elif isinstance(cur, list):
            stack.extend((v, d + 1) for v in cur if isinstance(v, (dict, list)))
    return deepest


def loads(data: bytes | str) -> Graph:
    """Parse a document into a Graph; FileFormatError for anything that is not a valid graph file."""
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


def _loads(data: bytes | str) -> Graph:
    if isinstance(data, str):
        data = data.encode("utf-8", errors="surrogatepass")
    if not data.strip():
        raise FileFormatError("the file is empty")
    if len(data) > MAX_FILE_BYTES:
        raise FileFormatError(f"the file is larger than {MAX_FILE_BYTES // 2**20} MB")
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
    return _graph_from(doc.get("graph"))


def _expect(cond: bool, message: str) -> None:
    if not cond:
        raise FileFormatError(message)


def _decode_value(raw: Any, where: str, budget: list[int]) -> np.ndarray:
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        _expect(math.isfinite(raw), f"{where}: the value must be finite")
        return np.array(float(raw))
    _expect(isinstance(raw, dict) and set(raw) == {"shape", "data"},
            f"{where}: a value must be a number or {{\"shape\": [...], \"data\": [...]}}")
    shape, flat = raw["shape"], raw["data"]
    _expect(isinstance(shape, list) and len(shape) <= 8 and all(
        isinstance(n, int) and not isinstance(n, bool) and 0 < n <= MAX_ELEMENTS for n in shape),
        f"{where}: the shape must be a list of at most 8 positive integers")
    size = int(np.prod(shape, dtype=np.int64)) if shape else 1
    _expect(size <= MAX_ELEMENTS, f"{where}: the tensor has {size:,} entries; the limit is {MAX_ELEMENTS:,}")
    budget[0] += size
    _expect(budget[0] <= MAX_TOTAL_ELEMENTS, f"the file holds more than {MAX_TOTAL_ELEMENTS:,} numbers in all")
    _expect(isinstance(flat, list) and len(flat) == size,
            f"{where}: the shape {shape} needs {size} numbers, the data has "
            f"{len(flat) if isinstance(flat, list) else 'no list of'} numbers")
    _expect(all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in flat),
            f"{where}: the data must contain only numbers")
    arr = np.array(flat, dtype=np.float64).reshape(shape)
    _expect(bool(np.all(np.isfinite(arr))), f"{where}: the data contains non-finite numbers")
    return arr


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
        where = f"node '{nid}'"
        _expect(nid not in graph, f"two nodes share the id '{nid}'")
        pos = raw.get("pos", [0, 0])
        _expect(isinstance(pos, list) and len(pos) == 2 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in pos), f"{where}: bad \"pos\"")
        if kind == "op":
            op, attrs = raw.get("op"), raw.get("attrs", {})
            _expect(isinstance(op, str), f"{where}: an op node needs an \"op\" name")
            _expect(isinstance(attrs, dict), f"{where}: \"attrs\" must be an object")
            try:
                graph.add_node(Node(nid, "op", op=op, attrs=attrs, pos=tuple(pos)))
            except StudioError as exc:
                raise FileFormatError(f"{where}: {exc}") from None
        elif kind in ("input", "param", "const"):
            value = _decode_value(raw.get("value"), where, budget)
            graph.add_node(Node(nid, kind, value=value, pos=tuple(pos)))
        else:
            raise FileFormatError(f"{where}: unknown kind {kind!r}")
    for i, raw in enumerate(edges):
        _expect(isinstance(raw, dict) and all(isinstance(raw.get(k), str) for k in ("src", "dst", "port")),
                f"edge {i + 1} needs text \"src\", \"dst\" and \"port\"")
        for end in ("src", "dst"):
            _expect(raw[end] in graph, f"edge {i + 1} refers to a node '{raw[end]}' that does not exist")
        try:
            graph.connect(raw["src"], raw["dst"], raw["port"], check_shapes=False)
        except StudioError as exc:
            raise FileFormatError(f"edge {i + 1} ({raw['src']} → {raw['dst']}.{raw['port']}): {exc}") from None
    output = g.get("output")
    if output is not None:
        _expect(isinstance(output, str) and output in graph, f"the output '{output}' is not a node of the graph")
        graph.set_output(output)
    return graph


def load(path: str | os.PathLike) -> Graph:
    """Read a graph file. FileFormatError for anything unreadable, including a missing file."""
    try:
        size = os.path.getsize(path)
        if size > MAX_FILE_BYTES:
            raise FileFormatError(f"the file is larger than {MAX_FILE_BYTES // 2**20} MB")
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise FileFormatError(f"cannot read {path}: {exc.strerror or exc}") from None
    return loads(data)
