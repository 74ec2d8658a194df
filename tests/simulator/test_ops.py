"""Every registered op: backward against float64 centred differences, and the shape rule against forward.

The tests iterate the registry, so a new op is covered the moment it is registered (its OpSpec must supply
samples away from its kinks)."""
import numpy as np
import pytest

from simulator.core.errors import ShapeError
from simulator.engine.gradcheck import numerical_gradient, relative_error
from simulator.ops import REGISTRY

OPS = sorted(REGISTRY)


def _samples(name):
    rng = np.random.default_rng(sum(map(ord, name)))
    return REGISTRY[name].sample(rng)


@pytest.mark.parametrize("name", OPS)
def test_backward_matches_numerical_gradient(name):
    spec = REGISTRY[name]
    samples = _samples(name)
    assert len(samples) >= 2, "each op must be tested on several shapes or values"
    for inputs, attrs in samples:
        inputs = [np.asarray(x, dtype=np.float64) for x in inputs]
        out, cache = spec.forward(*inputs, **attrs)
        upstream = np.random.default_rng(1).normal(size=np.shape(out))
        grads = spec.backward(upstream, cache)
        assert len(grads) == len(spec.inputs)
        for i, port in enumerate(spec.inputs):
            if not spec.differentiable(port):
                assert grads[i] is None
                continue

            def f(x, i=i):
                args = list(inputs)
                args[i] = x
                return float(np.sum(np.asarray(spec.forward(*args, **attrs)[0]) * upstream))
            numeric = numerical_gradient(f, inputs[i].copy())
            analytic = np.asarray(grads[i])
            assert analytic.shape == inputs[i].shape, f"{name}.{port}: gradient shape {analytic.shape}"
            err = relative_error(analytic, numeric).max(initial=0.0)
            assert err < 1e-7, f"{name}.{port} with shapes {[x.shape for x in inputs]} {attrs}: rel error {err:.2e}"


@pytest.mark.parametrize("name", OPS)
def test_shape_rule_agrees_with_forward(name):
    spec = REGISTRY[name]
    for inputs, attrs in _samples(name):
        out, _ = spec.forward(*[np.asarray(x, dtype=np.float64) for x in inputs], **attrs)
        assert tuple(spec.infer_shape(*[np.shape(x) for x in inputs], **attrs)) == np.shape(out)


@pytest.mark.parametrize("name", OPS)
def test_spec_is_documented(name):
    spec = REGISTRY[name]
    assert spec.doc and spec.formula and spec.symbol
    assert set(spec.local_grad) == {p for p in spec.inputs if spec.differentiable(p)}


@pytest.mark.parametrize("name, shapes", [
    ("add", [(2, 3), (4,)]), ("matmul", [(2, 3), (4, 5)]), ("affine", [(2, 3), (3, 4), (5,)]),
    ("svm_loss", [(2, 3), (3,)]), ("mse", [(2,), (3,)]), ("bias_add", [(2, 3), (2,)]),
    ("reshape", [(2, 3)]), ("sum", [(2, 3)]), ("softmax", [()]),
])
def test_shape_rule_rejects_mismatch_naming_both_shapes(name, shapes):
    spec = REGISTRY[name]
    attrs = {"reshape": {"shape": (4,)}, "sum": {"axis": 2}}.get(name, {})
    with pytest.raises(ShapeError) as info:
        spec.infer_shape(*shapes, **attrs)
    message = str(info.value)
    named = shapes[1:] if name == "affine" else shapes  # affine's mismatch here is between w and b
    for s in named:
        assert (str(s) in message) or (s == () and "()" in message)


def test_registry_names_families():
    families = {spec.family for spec in REGISTRY.values()}
    assert {"arithmetic", "activations", "linear", "reduction", "loss"} <= families
    required = {"add", "sub", "mul", "div", "neg", "pow", "exp", "log", "sqrt", "abs", "max", "min", "sigmoid",
                "tanh", "relu", "leaky_relu", "elu", "selu", "gelu", "silu", "softplus", "matmul", "transpose",
                "sum", "mean", "reshape", "bias_add", "affine", "softmax", "svm_loss", "softmax_ce", "mse", "l1", "l2"}
    assert required <= set(REGISTRY)


def test_activation_values_match_closed_forms():
    x = np.array([-1.0, 0.5, 2.0])
    assert np.allclose(REGISTRY["gelu"].forward(x)[0], [-0.15865525393145707, 0.34573123063700656, 1.9544997361036416])
    assert np.allclose(REGISTRY["selu"].forward(np.array([-1.0, 1.0]))[0], [-1.1113307378125625, 1.0507009873554805])
    assert np.allclose(REGISTRY["softplus"].forward(np.array([0.0, 1000.0]))[0], [np.log(2.0), 1000.0])
    assert np.allclose(REGISTRY["sigmoid"].forward(np.array([-1000.0, 0.0]))[0], [0.0, 0.5])


def test_max_tie_sends_gradient_to_exactly_one_input():
    out, cache = REGISTRY["max"].forward(np.array(2.0), np.array(2.0))
    dx, dy = REGISTRY["max"].backward(np.array(1.0), cache)
    assert float(dx) + float(dy) == 1.0
