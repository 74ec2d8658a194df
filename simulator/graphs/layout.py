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
    n = len(order)
    index = {nid: i for i, nid in enumerate(order)}   # nodes by place: lists, not dicts, in the sweeps below
    preds: list[list[int]] = [[] for _ in range(n)]
    succs: list[list[int]] = [[] for _ in range(n)]
    # Where along its consumer's left edge each wire lands: port i of n sits at i / n.
    in_slots: list[list[tuple[int, float]]] = [[] for _ in range(n)]    # src -> [(dst, offset)]
    out_slots: list[list[tuple[int, float]]] = [[] for _ in range(n)]   # dst -> [(src, 0)]
    ports_of: dict[str, tuple[str, ...]] = {}
    for e in graph.edges:
        src, dst = index[e.src], index[e.dst]
        preds[dst].append(src)
        succs[src].append(dst)
        ports = ports_of.get(e.dst)
        if ports is None:
            ports = ports_of[e.dst] = graph.node(e.dst).ports
        in_slots[src].append((dst, (ports.index(e.port) + 0.5) / len(ports) - 0.5))
        out_slots[dst].append((src, 0.0))

    layer = [0] * n
    for i in range(n):   # producers first: each node's inputs already have their layers
        if preds[i]:
            layer[i] = 1 + max(layer[p] for p in preds[i])
    for i, nid in enumerate(order):
        if succs[i] and graph.node(nid).is_leaf:
            layer[i] = min(layer[s] for s in succs[i]) - 1
    shift = min(layer, default=0)
    layers: dict[int, list[int]] = {}
    for i in range(n):
        layers.setdefault(layer[i] - shift, []).append(i)

    row = [0.0] * n
    for members in layers.values():
        for k, i in enumerate(members):
            row[i] = float(k)
    _order_rows(layers, row, out_slots, in_slots)
    return {nid: (float(layer[i] - shift) * LAYER_GAP, row[i] * ROW_GAP) for i, nid in enumerate(order)}


def _order_rows(layers: dict[int, list[int]], row: list[float], out_slots: list[list[tuple[int, float]]],
                in_slots: list[list[tuple[int, float]]], stop_when_settled: bool = True) -> int:
    """The barycentric sweeps: `_SWEEPS` pairs (left to right by inputs, right to left by consumers), then one
    more left to right. Reorders each layer's members in place and sets every node's row (centred on 0).

    The first pair centres every layer. After it, a pair that moves no node in any layer leaves the rows exactly
    as they were, so every later sweep would compute the same keys and change nothing: the sweeps stop there
    (`stop_when_settled`), with the very rows the full schedule gives. Most graphs settle within two pairs.
    Returns the number of pairs run."""

    def sweep(depths, neighbours, sign) -> bool:
        moved = False
        for depth in depths:
            members = layers[depth]
            keys = []
            for i in members:
                near = neighbours[i]
                keys.append(sum([row[m] + sign * off for m, off in near]) / len(near) if near else row[i])
            # Ordered by (key, row). Rows grow along `members` (every sweep numbers them in order), so a stable sort
            # on the key alone gives that order, and sorting plain floats is the list sort's fast path.
            ranked = sorted(range(len(members)), key=keys.__getitem__)
            reordered = [members[k] for k in ranked]
            if reordered != members:
                moved = True
                members[:] = reordered
            half = (len(members) - 1) / 2.0
            for k, i in enumerate(members):
                row[i] = float(k) - half
        return moved

    depths = sorted(layers)
    for pair in range(_SWEEPS):
        moved = sweep(depths[1:], out_slots, 0.0)
        moved = sweep(depths[-2::-1], in_slots, 1.0) or moved
        if stop_when_settled and pair > 0 and not moved:
            return pair + 1
    sweep(depths[1:], out_slots, 0.0)
    return _SWEEPS


def apply_layout(graph: Graph) -> None:
    """Move every node to its layered position (announcing each move)."""
    for nid, pos in layered_positions(graph).items():
        graph.move(nid, pos)
