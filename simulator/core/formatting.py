"""How numbers are written for learners, everywhere in the app: 4 significant digits, never '-0'."""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np


def format_scalar(x: float) -> str:
    """-0.19661193 -> '-0.1966', -12.0 -> '-12', 0.0 and -0.0 -> '0'; NaN and infinities as Python writes them."""
    x = float(x)
    if x == 0:
        return "0"
    if not math.isfinite(x):
        return str(x)
    return f"{x:.4g}"


def format_value(v: Any) -> str:
    """A scalar's digits, or 'tensor(4, 3)' for anything with a shape."""
    a = np.asarray(v)
    if a.ndim == 0:
        return format_scalar(float(a))
    return f"tensor{tuple(a.shape)}"


def in_learner_words(formula: str, names: Mapping[str, str]) -> str:
    """An op's formula with its port names replaced by the learner's node names, all at once (so x -> y and y -> x
    swap cleanly): 'x · y' with {'x': 'q', 'y': 'z'} reads 'q · z'. Whole words only ('max' keeps its x)."""
    names = {p: n for p, n in names.items() if p != n}
    if not names or not formula:
        return formula
    # not inside a longer word, and not a letter carrying a combining mark (x̂ is its own symbol, not x)
    pattern = re.compile(r"(?<![\w.])(" + "|".join(map(re.escape, sorted(names, key=len, reverse=True)))
                         + r")(?![\w.\u0300-\u036f])")
    return pattern.sub(lambda m: names[m.group(1)], formula)


def learner_names(graph: Any, node: str, ports: Any) -> dict[str, str]:
    """port -> the node wired into it (the learner's name for that input), and each scalar attribute -> its value
    (pow's p -> 2), so a formula reads in the learner's own terms (for ``in_learner_words``)."""
    out = {}
    n = graph.node(node)
    for key, value in (n.attrs or {}).items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = format_scalar(float(value))
    for port in ports:
        edge = graph.edge_into(node, port)
        if edge is not None:
            out[port] = edge.src
    return out
