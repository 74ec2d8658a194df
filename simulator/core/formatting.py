"""How numbers are written for learners, everywhere in the app: 4 significant digits, never '-0'."""
from __future__ import annotations

import math
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
