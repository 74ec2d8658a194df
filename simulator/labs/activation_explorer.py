"""The activation explorer (no Qt): every activation and its derivative side by side, where it saturates, and the
lecture's two warnings about sigmoid-like units.

    curves("sigmoid")          # x, f(x), f'(x), the saturated mask (|f'| < SATURATION), the largest f' and where
    zigzag(centred=False)      # SGD on w from all-positive inputs: every step moves all of w's coordinates the same way

f and f' come from the layer functions the networks use (simulator.functional.layers: forward, then backward with
an upstream of ones), so the explorer shows exactly what training computes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.core.params import check_choice, check_int, check_real
from simulator.functional import layers as L
from simulator.nn.layers import ACTIVATIONS

__all__ = ["ActivationCurves", "SATURATION", "ZigZag", "curves", "zigzag"]

SATURATION = 0.02          # |f'(x)| below this: the unit passes almost no gradient back


@dataclass(frozen=True)
class ActivationCurves:
    name: str
    x: np.ndarray
    f: np.ndarray
    df: np.ndarray
    saturated: np.ndarray          # |f'| < SATURATION
    max_slope: float
    argmax_slope: float
    zero_centred: bool             # f takes negative and positive values

    @property
    def note(self) -> str:
        parts = [f"largest f' = {self.max_slope:.4g} at x = {self.argmax_slope:.3g}"]
        if self.max_slope < 1 - 1e-9:
            parts.append(f"so every such layer multiplies the gradient by at most {self.max_slope:.3g}: stacked, "
                         f"the gradient shrinks geometrically")
        frac = float(self.saturated.mean())
        if frac:
            parts.append(f"{frac:.0%} of [{self.x[0]:g}, {self.x[-1]:g}] is saturated (|f'| < {SATURATION:g}: the "
                         f"shaded bands), where the unit passes almost no gradient back")
        if not self.zero_centred:
            parts.append("its outputs are never negative (not zero-centred): the next layer's weights get gradients "
                         "of one sign per example — see the zig-zag")
        return "; ".join(parts) + "."


def curves(name: str, lo: float = -6.0, hi: float = 6.0, points: int = 1201) -> ActivationCurves:
    """f and f' of one activation on [lo, hi], from the network's own layer functions."""
    check_choice("activation", name, ACTIVATIONS)
    lo, hi = check_real("from", lo, -1e3, 1e3), check_real("to", hi, -1e3, 1e3)
    points = check_int("points", points, 3, 100_000)
    if not lo < hi:
        lo, hi = min(lo, hi) - 1.0, max(lo, hi) + 1.0
    x = np.linspace(lo, hi, points)
    forward, backward = getattr(L, f"{name}_forward"), getattr(L, f"{name}_backward")
    f, cache = forward(x.copy())
    df = np.asarray(backward(np.ones_like(x), cache), dtype=np.float64)
    f = np.asarray(f, dtype=np.float64)
    k = int(np.argmax(df))
    return ActivationCurves(name, x, f, df, np.abs(df) < SATURATION, float(df[k]), float(x[k]),
                            bool(f.min() < -1e-3 and f.max() > 1e-3))


@dataclass(frozen=True)
class ZigZag:
    """SGD on a 2-D weight vector towards w* = (1, −1), one example at a time. path: (steps + 1, 2); same_sign: the
    share of steps that moved both coordinates in the same direction (1.0 for all-positive inputs: the path can only
    go north-east or south-west, so reaching a point to the south-east takes a zig-zag)."""

    path: np.ndarray
    same_sign: float
    centred: bool
    target: tuple[float, float] = (1.0, -1.0)


def zigzag(centred: bool = False, steps: int = 60, lr: float = 0.1, seed: int = 0) -> ZigZag:
    """Fit w·x to w*·x by SGD from w = (−1, 1), with inputs in the positive quadrant (a sigmoid layer's outputs, all
    in (0, 1)) or zero-centred (a tanh's). dL/dw = (w·x − w*·x) x: with x > 0 both coordinates share the sign of the
    scalar (w·x − w*·x)."""
    steps = check_int("steps", steps, 1, 10_000)
    lr = check_real("learning rate", lr, 0.0, 10.0, low_open=True)
    rng = np.random.default_rng(check_int("seed", seed, 0))
    X = rng.uniform(0.05, 1.0, (steps, 2))
    if centred:
        X = X * rng.choice((-1.0, 1.0), (steps, 2))
    w_star = np.array([1.0, -1.0])
    w = np.array([-1.0, 1.0])
    path = [w.copy()]
    same = 0
    for x in X:
        step = -lr * (w @ x - w_star @ x) * x
        same += int(step[0] * step[1] > 0)
        w = w + step
        path.append(w.copy())
    return ZigZag(np.array(path), same / steps, centred)


@dataclass(frozen=True)
class Symmetry:
    """A 2-H-3 tanh MLP trained by full-batch SGD from a constant initialisation and from a random one: the first
    layer's weights (H units × 2 inputs) after training, and the spread between the hidden units' weight vectors at
    every step (the largest distance of a unit's vector from the first unit's). Constant init: every unit computes the same thing and gets the
    same gradient, so the spread stays exactly 0 — H units are worth one."""

    constant_w: np.ndarray
    random_w: np.ndarray
    constant_spread: np.ndarray
    random_spread: np.ndarray
    constant_loss: float
    random_loss: float


def symmetry(hidden: int = 8, steps: int = 200, lr: float = 0.5, value: float = 0.1, seed: int = 0) -> Symmetry:
    """Train the same network from ``init='constant'`` (every weight ``value``) and from Xavier, on the spiral."""
    from simulator.data.datasets import toy_data
    from simulator.nn.layers import Activation, Linear
    from simulator.nn.network import Network

    hidden = check_int("hidden units", hidden, 2, 256)
    steps = check_int("steps", steps, 1, 5000)
    lr = check_real("learning rate", lr, 0.0, 10.0, low_open=True)
    value = check_real("constant value", value, -10.0, 10.0)
    X, y = toy_data("spiral", points=150, seed=seed)
    out = {}
    for kind in ("constant", "xavier"):
        layers = [Linear(hidden, init=kind, init_value=value), Activation("tanh"),
                  Linear(3, init=kind, init_value=value)]
        net = Network((2,), layers, seed=seed, dtype=np.float64)
        w_name = net.layers[0].params[0]
        spread = []
        for _ in range(steps):
            W = net.params[w_name]
            spread.append(float(np.max(np.linalg.norm(W.T - W.T[0], axis=1))))   # exactly 0 for identical units
            loss, grads = net.loss(X, y, "train")
            for name, g in grads.items():
                net.params[name] -= lr * g
        out[kind] = (net.params[w_name].T.copy(), np.array(spread), float(net.loss(X, y, "eval")[0]))
    (cw, cs, cl), (rw, rs, rl) = out["constant"], out["xavier"]
    return Symmetry(cw, rw, cs, rs, cl, rl)
