"""Reading learning curves (the recipe's step 6): each reference curve is read as its own verdict whatever the noise,
real training runs with a far too high or far too low rate are read right, and bad input is refused."""
import math

import numpy as np
import pytest

from simulator.core.errors import ShapeError, ValueInputError
from simulator.data.datasets import toy_data
from simulator.labs.curves import DIAGNOSES, MIN_STEPS, diagnose, reference_curves
from simulator.nn.network import Activation, Linear, Network
from simulator.nn.trainer import Trainer


@pytest.mark.parametrize("seed", range(6))
def test_every_reference_curve_is_read_as_its_own_verdict(seed):
    curves = reference_curves(seed=seed)
    assert set(curves) == set(DIAGNOSES) - {"too_short"}
    for verdict, (steps, train, val) in curves.items():
        d = diagnose(steps, train, val)
        assert d.verdict == verdict, (verdict, d.evidence)
        assert d.title and d.advice and d.evidence


def _run(lr, epochs=15, optimizer="SGD"):
    X, y = toy_data("spiral", points=300, seed=0)
    order = np.random.default_rng(0).permutation(len(X))
    X, y = X[order], y[order]
    net = Network((2,), [Linear(32), Activation("relu"), Linear(3)], seed=0, dtype=np.float64)
    t = Trainer(net, (X[:240], y[:240], X[240:], y[240:]), optimizer, lr=lr, batch_size=30, epochs=epochs, seed=0)
    losses = []
    try:
        for m in t.training():
            if hasattr(m, "loss"):
                losses.append(m.loss)
    except Exception:            # a diverged run stops with our error: what it logged so far is the curve
        losses.append(math.inf)
    h = t.history
    return np.array(losses), h.train_loss, h.val_loss


def test_real_runs_far_too_slow_and_far_too_fast():
    assert diagnose(*_run(1e-6)).verdict == "flat"
    assert diagnose(*_run(50.0)).verdict == "diverged"
    assert diagnose(*_run(0.5, optimizer="SGD")).verdict in ("healthy", "plateau", "overfitting")


def test_short_runs_and_bad_input():
    assert diagnose([2.3] * (MIN_STEPS - 1)).verdict == "too_short"
    assert diagnose([2.3, float("nan")]).verdict == "diverged"
    with pytest.raises(ShapeError):
        diagnose(np.ones((3, 3)))
    with pytest.raises(ValueInputError):
        diagnose(["a", "b"])
