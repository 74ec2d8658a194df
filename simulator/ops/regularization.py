"""Regularisation ops: dropout (inverted, seeded), over simulator/layers.py and the Numba kernels."""
from __future__ import annotations

import numpy as np

from simulator.functional import layers as L
from simulator.ops.registry import ELEMENTWISE_SHAPES, AttrSpec, OpSpec, register


def dropout_forward(x, p=0.5, seed=0, mode="train"):
    """x: any shape (0-d included). Train: each unit is zeroed with probability p and the rest scaled by 1/(1 − p);
    the mask comes from `seed`, so the op is a fixed function of x and can be stepped and gradient-checked.
    Test: the identity."""
    shape = np.shape(x)
    out, cache = L.dropout_forward(np.asarray(x, dtype=np.float64).reshape(-1), {"p": p, "seed": seed, "mode": mode})
    return out.reshape(shape), (cache, shape)


def dropout_backward(dout, cache):
    layer_cache, shape = cache
    return (L.dropout_backward(np.asarray(dout, dtype=np.float64).reshape(-1), layer_cache).reshape(shape),)


def _dropout_samples(rng):
    out = []
    for i, s in enumerate(ELEMENTWISE_SHAPES + ((4, 5),)):
        out.append(((rng.normal(size=s),), {"p": (0.5, 0.3, 0.0)[i % 3], "seed": i, "mode": "train"}))
    out.append(((rng.normal(size=(2, 3)),), {"p": 0.5, "seed": 1, "mode": "test"}))
    return out


register(OpSpec(
    name="dropout", family="regularization", inputs=("x",), forward=dropout_forward, backward=dropout_backward,
    infer_shape=lambda sx, p=0.5, seed=0, mode="train": tuple(sx), symbol="drop {p}",
    formula="train: out = x · m / (1 − p), m ~ Bernoulli(1 − p) per unit;  test: out = x",
    local_grad={"x": "m / (1 − p): 0 for a dropped unit, 1/(1 − p) for a kept one (test: 1)"},
    doc="Inverted dropout: in training each unit is zeroed with probability p and the survivors are scaled up by "
        "1/(1 − p), so the expected output is x and test mode is simply the identity. The mask is drawn from "
        "`seed`: change the seed to see another mask (a trainer draws a new one every step).",
    sample=_dropout_samples,
    attrs=(AttrSpec("p", 0.5, "float", "probability of dropping a unit, in [0, 1)", minimum=0.0, maximum=0.999),
           AttrSpec("seed", 0, "int", "random seed of the mask", minimum=0, maximum=2**32 - 1),
           AttrSpec("mode", "train", "choice", "train: drop and rescale; test: pass x through",
                    choices=("train", "test")))))
