"""Left-to-right layered layout of a graph: inputs on the left, the output on the right (networkx does the layering)."""
from __future__ import annotations

import networkx as nx

from simulator.graph import Graph

LAYER_GAP = 190.0
ROW_GAP = 110.0


def layered_positions(graph: Graph) -> dict[str, tuple[float, float]]:
    """A position per node. Each op node sits one layer right of its deepest input; each leaf sits just left
    of its first consumer, so constants do not stretch wires across the picture. Rows inside a layer follow
    the mean row of their inputs, which keeps wires from crossing in the common cases."""
    g = graph._nx
    order = graph.topological_order()
    layer: dict[str, int] = {}
    for nid in order:
        preds = list(g.predecessors(nid))
        layer[nid] = 1 + max(layer[p] for p in preds) if preds else 0
    for nid in order:
        succs = list(g.successors(nid))
        if graph.node(nid).is_leaf and succs:
            layer[nid] = min(layer[s] for s in succs) - 1
    shift = min(layer.values(), default=0)
    layers: dict[int, list[str]] = {}
    for nid in order:
        layers.setdefault(layer[nid] - shift, []).append(nid)

    row: dict[str, float] = {}
    for depth in sorted(layers):
        members = layers[depth]

        def key(nid: str) -> float:
            preds = [row[p] for p in g.predecessors(nid) if p in row]
            succ_rows = [order.index(s) for s in g.successors(nid)]
            return sum(preds) / len(preds) if preds else (min(succ_rows, default=0) + order.index(nid) * 1e-3)
        members.sort(key=key)
        for i, nid in enumerate(members):
            row[nid] = i - (len(members) - 1) / 2.0
    return {nid: (layers_x(layer[nid] - shift), row[nid] * ROW_GAP) for nid in order}


def layers_x(depth: int) -> float:
    return depth * LAYER_GAP


def apply_layout(graph: Graph) -> None:
    """Move every node to its layered position (announcing each move)."""
    for nid, pos in layered_positions(graph).items():
        graph.move(nid, pos)


__all__ = ["layered_positions", "apply_layout", "nx"]
