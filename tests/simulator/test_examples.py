"""The lecture examples give the numbers on the slides, through both the graph API and evaluate()."""
import numpy as np
import pytest

import simulator
from simulator import EXAMPLES, Trace, evaluate, load_example, run


def test_evaluate_circuit():
    r = evaluate("(x + y) * z", x=-2, y=5, z=-4)
    assert r.value == -12.0 and isinstance(r.value, float)
    assert r.grads == {"x": -4.0, "y": -4.0, "z": 3.0}
    assert all(isinstance(g, float) for g in r.grads.values())


def test_sigmoid_neuron_example():
    r = run(load_example("sigmoid_neuron"))
    assert float(r.value) == pytest.approx(0.7310585786300049, abs=1e-15)
    expected = {"w0": -0.19661193324148185, "x0": 0.3932238664829637, "w1": -0.3932238664829637,
                "x1": -0.5898357997244456, "w2": 0.19661193324148185}
    for name, g in expected.items():
        assert float(r.grads[name]) == pytest.approx(g, rel=1e-12)
    assert round(float(r.value), 2) == 0.73 and round(float(r.grads["w0"]), 2) == -0.20


def test_svm_example_is_2_9():
    r = run(load_example("svm_loss"))
    assert float(r.value) == pytest.approx(2.9)
    # Car (margin 2.9 > 0) pushes its score up, cat's score down; frog's margin is negative: no gradient.
    assert np.allclose(r.grads["scores"], [[-1.0, 1.0, 0.0]])


def test_softmax_example_is_2_04():
    r = run(load_example("softmax_loss"))
    s = np.array([3.2, 5.1, -1.7])
    p = np.exp(s) / np.exp(s).sum()
    assert float(r.value) == pytest.approx(-np.log(p[0]), rel=1e-12)
    assert round(float(r.value), 2) == 2.04
    assert np.allclose(r.grads["scores"], [p - np.array([1.0, 0.0, 0.0])])


def test_two_layer_net_matches_hand_written_backprop():
    from simulator.graphs.examples import EXAMPLES
    assert "max(0, x W1) W2" in EXAMPLES["two_layer_net"].title      # the title says what the graph computes
    g = load_example("two_layer_net")
    r = run(g)
    x, W1, W2 = (g.node(n).value for n in ("x", "W1", "W2"))
    y = g.node("y").value.astype(int)
    h1 = x @ W1
    h = np.maximum(h1, 0)
    s = h @ W2
    n = len(y)
    margins = np.maximum(0, s - s[np.arange(n), y][:, None] + 1)
    margins[np.arange(n), y] = 0
    assert float(r.value) == pytest.approx(margins.sum() / n)
    ds = (margins > 0).astype(float)
    ds[np.arange(n), y] = -ds.sum(axis=1)
    ds /= n
    assert np.allclose(r.grads["W2"], h.T @ ds)
    assert np.allclose(r.grads["W1"], x.T @ ((ds @ W2.T) * (h1 > 0)))


def test_fan_out_gradients_add():
    r = evaluate("x * y + x ** 2", x=3.0, y=-4.0)
    assert r.value == -3.0 and r.grads["x"] == 2.0 and r.grads["y"] == 3.0


def test_every_example_builds_runs_and_traces():
    for name, ex in EXAMPLES.items():
        g = ex.build()
        assert ex.title and ex.description
        assert np.isfinite(run(g).value).all()
        assert len(Trace(g)) >= 3


def test_unknown_example_is_our_error():
    with pytest.raises(simulator.GraphError, match="circuit"):
        load_example("nope")


def test_evaluate_with_arrays_is_elementwise():
    x = np.linspace(-1, 1, 5)
    r = evaluate("x * x + 3 * x", x=x)
    assert np.allclose(r.value, x * x + 3 * x)
    assert isinstance(r.grads["x"], np.ndarray) and np.allclose(r.grads["x"], 2 * x + 3)


def test_evaluate_refuses_missing_and_unknown_values():
    with pytest.raises(simulator.GraphError, match="z"):
        evaluate("(x + y) * z", x=1, y=2)
    with pytest.raises(simulator.ValueInputError, match="w is not an input of the expression; its inputs are x"):
        evaluate("x + 1", x=1, w=2)
    with pytest.raises(simulator.ValueInputError):
        evaluate("x + 1", x=float("nan"))
