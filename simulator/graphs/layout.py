"""Left-to-right layered layout of a graph: inputs on the left, the output on the right (longest-path layers,
then barycentric sweeps)."""
from __future__ import annotations

from simulator.graphs.graph import Graph

LAYER_GAP = 170.0
ROW_GAP = 100.0
_SWEEPS = 4


def layered_positions(graph: Graph) -> dict[str, tuple[float, float]]:
    """A position per node. Each op node sits one layer right of its deepest input; each leaf sits just left of its
    first consumer, so constants do not stretch wires across the picture. Rows inside a layer are ordered by
    barycentric sweeps (left to right by inputs, right to left by consumers and their port order), the classic
    Sugiyama heuristic, which removes the crossings of the usual lecture graphs."""
    order = graph.topological_order()
    layer: dict[str, int] = {}
    for nid in order:
        preds = graph.predecessors(nid)
        layer[nid] = 1 + max(layer[p] for p in preds) if preds else 0
    for nid in order:
        succs = graph.successors(nid)
        if graph.node(nid).is_leaf and succs:
            layer[nid] = min(layer[s] for s in succs) - 1
    shift = min(layer.values(), default=0)
    layers: dict[int, list[str]] = {}
    for nid in order:
        layers.setdefault(layer[nid] - shift, []).append(nid)

    # Where along its consumer's left edge each wire lands: port i of n sits at i / n.
    in_slots: dict[str, list[tuple[str, float]]] = {nid: [] for nid in order}   # src -> [(dst, offset)]
    out_slots: dict[str, list[tuple[str, float]]] = {nid: [] for nid in order}  # dst -> [(src, offset)]
    for e in graph.edges:
        ports = graph.node(e.dst).ports
        offset = (ports.index(e.port) + 0.5) / len(ports) - 0.5
        in_slots[e.src].append((e.dst, offset))
        out_slots[e.dst].append((e.src, 0.0))

    row = {nid: float(i) for members in layers.values() for i, nid in enumerate(members)}

    def sweep(depths, neighbours, sign):
        for depth in depths:
            members = layers[depth]
            keys = {}
            for i, nid in enumerate(members):
                near = [row[m] + sign * off for m, off in neighbours[nid]]
                keys[nid] = (sum(near) / len(near)) if near else row[nid]
            members.sort(key=lambda n: (keys[n], row[n]))
            for i, nid in enumerate(members):
                row[nid] = float(i) - (len(members) - 1) / 2.0

    depths = sorted(layers)
    for _ in range(_SWEEPS):
        sweep(depths[1:], out_slots, 0.0)
        sweep(depths[-2::-1], in_slots, 1.0)
    sweep(depths[1:], out_slots, 0.0)
    return {nid: (float(layer[nid] - shift) * LAYER_GAP, row[nid] * ROW_GAP) for nid in order}


def apply_layout(graph: Graph) -> None:
    """Move every node to its layered position (announcing each move)."""
    for nid, pos in layered_positions(graph).items():
        graph.move(nid, pos)
