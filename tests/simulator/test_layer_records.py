"""Layer kinds are records: declared fields, shapes, parameters, passes, graph expansion and export in one class each,
and a new kind defined in one place works everywhere (network, gradients, state, weights files, graph)."""
from __future__ import annotations

import dataclasses
import importlib.util

import numpy as np
import pytest

from simulator.core.errors import ShapeError, ValueInputError
from simulator.core.params import param, params_of
from simulator.engine.gradcheck import numerical_gradient
from simulator.engine.trace import run
from simulator.nn import layers as NL
from simulator.nn.layers import (
    LAYER_KINDS,
    Activation,
    AvgPool,
    BatchNorm,
    Conv2d,
    Dropout,
    Flatten,
    LayerNorm,
    LayerSpec,
    Linear,
    MaxPool,
    layer_from_dict,
    layer_to_dict,
)
from simulator.nn.network import Network

HAS_TORCH = importlib.util.find_spec("torch") is not None

# one instance of every kind, with the input shape it gets
EXAMPLES = [
    (Linear(7, init="xavier"), (5,)), (Conv2d(4, 3, stride=2, pad=1), (2, 7, 6)), (MaxPool(2, 2), (3, 6, 5)),
    (AvgPool(3, 1), (2, 5, 5)), (BatchNorm(momentum=0.2), (6,)), (BatchNorm(), (3, 4, 4)), (LayerNorm(), (2, 3, 3)),
    (Dropout(0.3), (8,)), (Flatten(), (2, 3, 4)), *[(Activation(a), (6,)) for a in NL.ACTIVATIONS],
    (NL.GroupNorm(2), (4, 3, 3)), (NL.GroupNorm(1, eps=1e-3), (3, 2, 2)), (NL.InstanceNorm(), (3, 3, 2)),
    (NL.DropConnect(5, 0.3), (6,)),
]


def test_every_kind_is_registered_and_declares_its_fields():
    assert set(LAYER_KINDS) == {"Linear", "Conv2d", "MaxPool", "AvgPool", "BatchNorm", "LayerNorm", "Dropout",
                                "Flatten", "Activation", "GroupNorm", "InstanceNorm", "DropConnect",
                                "ResidualBlock", "FractionalMaxPool"}
    for name, cls in LAYER_KINDS.items():
        declared = [p.name for p in params_of(cls)]
        assert declared == [f.name for f in dataclasses.fields(cls)], name   # every field is declared
        spec = cls()                                                          # declared defaults make a valid spec
        assert spec.kind == name and spec.label()
        assert layer_from_dict(layer_to_dict(spec)) == spec
    n = {p.name: p for p in params_of(Linear)}["n"]
    assert (n.kind, n.low, n.high, n.title) == (int, 1, 16384, "units") and n.doc


@pytest.mark.parametrize("make, message", [
    (lambda: Linear(0), "Linear: units must be ≥ 1, got 0"),
    (lambda: Linear(10**12), "Linear: units must be ≤ 16384"),
    (lambda: Linear(2.5), "Linear: units must be a whole number"),
    (lambda: Conv2d(4, 3, pad=-1), "Conv2d: pad must be ≥ 0"),
    (lambda: Dropout(1.0), "Dropout: p must be < 1"),
    (lambda: BatchNorm(momentum=2), "BatchNorm: momentum must be ≤ 1"),
    (lambda: Activation("swish"), "unknown activation 'swish'"),
    (lambda: Linear(4, init="he"), "unknown init 'he'"),
])
def test_fields_are_validated_by_their_declarations(make, message):
    with pytest.raises(ValueInputError, match=message.replace("(", r"\(")):
        make()


def test_whole_floats_and_numpy_ints_are_coerced():
    assert Linear(np.int64(4)) == Linear(4.0) == Linear(4) and isinstance(Linear(4.0).n, int)


@pytest.mark.parametrize("spec, in_shape", EXAMPLES, ids=lambda v: getattr(v, "label", lambda: str(v))())
def test_record_shapes_params_and_passes_agree(spec, in_shape):
    rng = np.random.default_rng(0)
    out_shape = spec.output_shape(in_shape)
    pshapes = spec.param_shapes(in_shape)
    params = spec.init_params(in_shape, rng, "kaiming", 0.1, np.dtype(np.float64))
    assert {k: v.shape for k, v in params.items()} == pshapes
    buffers = spec.init_buffers(in_shape, np.dtype(np.float64))
    assert {k: v.shape for k, v in buffers.items()} == spec.buffer_shapes(in_shape)
    assert set(spec.TORCH_NAMES) == set(pshapes) and set(spec.REGULARISED) <= set(pshapes)
    x = rng.normal(size=(4, *in_shape))
    p = [params[k] for k in pshapes]
    out, cache = spec.forward(x, p, buffers or None, True, 3)
    assert out.shape == (4, *out_shape)
    dout = rng.normal(size=out.shape)
    dx, grads = spec.backward(dout, cache)
    assert dx.shape == x.shape and [g.shape for g in grads] == list(pshapes.values())
    if not spec.RANDOM and not buffers:         # centred differences of sum(out * dout) against backward
        def f(_):
            return float(np.sum(spec.forward(x, p, None, True, 3)[0] * dout))
        assert np.allclose(numerical_gradient(f, x), dx, rtol=1e-5, atol=1e-6)
        for arr, g in zip(p, grads):
            assert np.allclose(numerical_gradient(f, arr), g, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("spec, in_shape", [(Linear(3), (3, 4, 4)), (Conv2d(2, 3), (5,)), (MaxPool(4), (1, 3, 3)),
                                            (Conv2d(2, 5), (1, 3, 3))])
def test_impossible_inputs_are_shape_errors_without_the_layer_name(spec, in_shape):
    with pytest.raises(ShapeError) as info:
        spec.output_shape(in_shape)
    assert not str(info.value).startswith("layer")        # the network adds "layer i (label): "
    with pytest.raises(ShapeError, match=r"^layer 1 \("):
        Network(in_shape, [spec, Flatten(), Linear(2)])


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed")
@pytest.mark.parametrize("spec, in_shape", EXAMPLES, ids=lambda v: getattr(v, "label", lambda: str(v))())
def test_torch_modules_have_our_shapes(spec, in_shape):
    import torch
    scope = {"nn": torch.nn, "torch": torch, "F": torch.nn.functional}
    exec(spec.torch_source(), scope)                  # DropConnect's module class, as the exported script has it
    module = eval(spec.torch_module(in_shape), scope)
    module.eval()
    out = module(torch.zeros((2, *in_shape)))
    assert tuple(out.shape[1:]) == spec.output_shape(in_shape)
    for k, shape in spec.param_shapes(in_shape).items():
        attr, transposed = spec.TORCH_NAMES[k]
        got = tuple(getattr(module, attr).shape)
        assert got == (shape[::-1] if transposed else shape), k
    for k, shape in spec.buffer_shapes(in_shape).items():
        assert tuple(getattr(module, k).shape) == shape


# ------------------------------------------------------------------------------------------------ one new kind

@dataclasses.dataclass(frozen=True)
class Scale(LayerSpec):
    """A learnable per-feature scale, out = x * s: the whole new kind is this class."""

    start: float = param(1.0, low=-10.0, high=10.0, doc="every scale's initial value")

    PREFIX, ROLE = "scale", "weights"
    TORCH_NAMES = {"s": ("weight", False)}
    REGULARISED = ("s",)

    def param_shapes(self, in_shape):
        return {"s": tuple(in_shape)}

    def init_params(self, in_shape, rng, init, bias_init, dtype):
        return {"s": np.full(in_shape, self.start, dtype)}

    def forward(self, x, p, buffers, train, seed):
        return x * p[0], (x, p[0])

    def backward(self, dout, cache):
        x, s = cache
        return dout * s, ((dout * x).sum(axis=0),)

    def to_graph(self, ctx, layer, x, p, buffers):
        return ctx.op(layer.name, "mul", {"x": x, "y": p[0]})

    def torch_module(self, in_shape):
        return "Scale()"


def test_a_new_kind_defined_once_works_everywhere(tmp_path, monkeypatch):
    monkeypatch.setitem(LAYER_KINDS, "Scale", Scale)
    net = Network((3,), [Linear(4), Scale(0.5), Activation("tanh"), Linear(2)], reg=0.01, dtype=np.float64, seed=2)
    assert [r.name for r in net.describe()] == ["fc1", "scale1", "tanh1", "fc2"]
    assert net.describe()[1].params == 4 and list(net.params)[2] == "scale1.s"
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(5, 3)), rng.integers(0, 2, 5)
    loss, grads = net.loss(x, y)
    for k, arr in net.params.items():          # gradients, regulariser included
        num = numerical_gradient(lambda _: net.loss(x, y)[0], arr)
        assert np.allclose(num, grads[k], rtol=1e-6, atol=1e-8), k
    result = run(net.to_graph(x, y))           # the graph expansion
    assert abs(float(result.value) - loss) < 1e-10
    net.params["scale1.s"][...] = [1.0, 2.0, 3.0, 4.0]
    net.save(tmp_path / "w.npz")               # the weights file
    back = Network.load(tmp_path / "w.npz")
    assert back.specs[1] == Scale(0.5) and np.array_equal(back.params["scale1.s"], [1.0, 2.0, 3.0, 4.0])
