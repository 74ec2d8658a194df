"""Layer kinds as records: each spec class says everything about its kind in one place.

A layer spec is a frozen dataclass of declared parameters (``simulator.core.params.param``: type, default, range,
label, help), validated when it is made, so the network builder's form is built from ``params_of(spec)`` and no
range is written twice. Beside its fields, each kind defines, in PyTorch's and cs231n's words:

    output_shape(in_shape)                       shapes from the spec alone (ShapeError when impossible)
    param_shapes(in_shape), buffer_shapes(...)   {"w": (D, n), "b": (n,)}, {"running_mean": (C,), ...}
    init_params(in_shape, rng, init, bias, dt)   the initial parameter arrays (seeded draws in float64, then cast)
    forward(x, params, buffers, train, seed)     -> (out, cache), over simulator.functional.layers
    backward(dout, cache)                        -> (dx, parameter gradients in param_shapes' order)
    to_graph(ctx, layer, x, params, buffers)     the layer as registered ops in a Graph (returns the output node)
    torch_module(in_shape), TORCH_NAMES          the PyTorch export: an nn module and its parameter names
    label()                                      what tables and messages call it ("Linear 64", "ReLU")

Adding a layer kind is one class here plus its entry in ``LAYER_KINDS``; the Network, the Trainer, the Graph
expansion, the weights files, the PyTorch export and the builder's form all read the record.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from simulator.core.errors import (
    FileFormatError,
    ShapeError,
    StudioError,
    ValueInputError,
)
from simulator.core.params import Settings, param
from simulator.functional import layers as L

__all__ = [
    "ACTIVATIONS", "INITS", "LAYER_KINDS", "Activation", "AvgPool", "BatchNorm", "BuiltLayer", "Conv2d", "Dropout",
    "Flatten", "GraphContext", "LayerNorm", "LayerSpec", "Linear", "MaxPool", "init_std", "layer_from_dict",
    "layer_to_dict", "shape_str",
]

ACTIVATIONS = ("relu", "leaky_relu", "elu", "selu", "sigmoid", "tanh", "gelu", "silu", "softplus")
INITS = ("zeros", "constant", "gaussian", "xavier", "kaiming")
_ACT_NAMES = {"relu": "ReLU", "leaky_relu": "LeakyReLU", "elu": "ELU", "selu": "SELU", "sigmoid": "Sigmoid",
              "tanh": "Tanh", "gelu": "GELU", "silu": "SiLU", "softplus": "Softplus"}
_ACT_LAYERS = {name: (getattr(L, f"{name}_forward"), getattr(L, f"{name}_backward")) for name in ACTIVATIONS}
_ACT_TORCH = {"relu": "nn.ReLU()", "leaky_relu": "nn.LeakyReLU(0.01)", "elu": "nn.ELU(alpha=1.0)",
              "selu": "nn.SELU()", "sigmoid": "nn.Sigmoid()", "tanh": "nn.Tanh()", "gelu": "nn.GELU()",
              "silu": "nn.SiLU()", "softplus": "nn.Softplus()"}
_ACT_GRAPH_ATTRS = {"leaky_relu": {"alpha": 0.01}, "elu": {"alpha": 1.0}}
_INIT_DOC = "the weights' initialisation; empty: the network's default"


def shape_str(s: Sequence[int]) -> str:
    """(64,) and (8, 4, 4): a shape as Python writes a tuple."""
    return "(" + ", ".join(map(str, s)) + ("," if len(s) == 1 else "") + ")"


def init_std(init: str, fan_in: int) -> float:
    """The standard deviation each init draws with (0 for zeros and constant)."""
    return {"zeros": 0.0, "constant": 0.0, "gaussian": 0.01, "xavier": 1.0 / math.sqrt(fan_in),
            "kaiming": math.sqrt(2.0 / fan_in)}[init]


@dataclass
class BuiltLayer:
    """One layer of a built Network: its 1-based index, its name ("fc1", "relu2"), its spec, its input and output
    shapes (no batch axis), the full names of its parameters ("fc1.w", "fc1.b") and of its buffers
    ("bn1.running_mean", "bn1.running_var")."""

    index: int
    name: str
    spec: LayerSpec
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    params: tuple[str, ...] = ()
    buffers: tuple[str, ...] = ()

    @property
    def title(self) -> str:
        return f"layer {self.index} ({self.spec.label()})"


class GraphContext:
    """What a layer's to_graph needs: the graph being built, the mode ('train' or 'eval'), the dropout seed and the
    batch size. ``op`` adds a registered op wired to existing nodes; ``const`` a constant."""

    def __init__(self, graph: Any, mode: str, seed: int, batch: int):
        self.graph, self.mode, self.seed, self.batch = graph, mode, seed, batch

    def op(self, name: str, opname: str, inputs: Mapping[str, str], attrs: Mapping[str, Any] | None = None) -> str:
        nid = self.graph.add_op(opname, dict(attrs or {}), name=name)
        for port, src in inputs.items():
            self.graph.connect(src, nid, port, check_shapes=False)
        return nid

    def const(self, value: np.ndarray, name: str) -> str:
        return self.graph.add_const(value, name=name)


# ================================================================================================== the base record

class LayerSpec(Settings):
    """Base of the layer records (frozen dataclasses of declared fields). Subclasses override what applies."""

    PREFIX: ClassVar[str] = ""                       # parameter prefix: "fc" -> fc1.w, fc1.b
    # what the layer does, for views that pick layers (the first weights to draw, the maps after an activation):
    # "weights" (Linear, Conv2d), "pool", "norm", "dropout", "reshape" or "activation"
    ROLE: ClassVar[str] = ""
    TORCH_NAMES: ClassVar[Mapping[str, tuple[str, bool]]] = {}   # our suffix -> (torch attribute, transposed?)
    REGULARISED: ClassVar[tuple[str, ...]] = ()      # suffixes the L1/L2 regulariser applies to
    RANDOM: ClassVar[bool] = False                   # forward draws from its seed in train mode (dropout masks)

    def __post_init__(self) -> None:
        try:
            super().__post_init__()
        except ValueInputError as exc:               # name the layer kind: "Linear: units must be ≥ 1, got 0"
            raise ValueInputError(f"{type(self).__name__}: {exc}") from None

    @property
    def kind(self) -> str:
        return type(self).__name__

    def label(self) -> str:
        return type(self).__name__

    def prefix(self) -> str:
        return self.PREFIX

    # ---- shapes
    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The output shape (no batch axis) for this input shape; ShapeError (without the layer's name) if none."""
        return in_shape

    def param_shapes(self, in_shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
        return {}

    def buffer_shapes(self, in_shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
        return {}

    # ---- values
    def init_params(self, in_shape: tuple[int, ...], rng: np.random.Generator, init: str, bias_init: float,
                    dtype: np.dtype) -> dict[str, np.ndarray]:
        return {}

    def init_buffers(self, in_shape: tuple[int, ...], dtype: np.dtype) -> dict[str, np.ndarray]:
        return {}

    def check_buffer(self, name: str, value: np.ndarray) -> str | None:
        """Why a loaded buffer value is unusable (None when it is fine)."""
        return None

    # ---- passes
    def forward(self, x: np.ndarray, p: Sequence[np.ndarray], buffers: Mapping[str, np.ndarray] | None,
                train: bool, seed: int | None) -> tuple[np.ndarray, Any]:
        raise NotImplementedError

    def backward(self, dout: np.ndarray, cache: Any) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        raise NotImplementedError

    # ---- expansions
    def to_graph(self, ctx: GraphContext, layer: BuiltLayer, x: str, p: Sequence[str],
                 buffers: Mapping[str, np.ndarray]) -> str:
        raise NotImplementedError

    def torch_module(self, in_shape: tuple[int, ...]) -> str:
        raise NotImplementedError


def _check_image(what: str, shape: tuple[int, ...], why: str = "") -> tuple[int, int, int]:
    if len(shape) != 3:
        raise ShapeError(f"its input has shape {shape_str(shape)}; {what} needs an image (C, H, W){why}")
    return shape  # type: ignore[return-value]


def _draw_weight(spec: Any, wshape: tuple[int, ...], fan_in: int, rng: np.random.Generator, init: str,
                 dtype: np.dtype) -> np.ndarray:
    init = spec.init or init
    if init == "constant":
        w = np.full(wshape, spec.init_value)
    else:
        w = rng.standard_normal(wshape) * init_std(init, fan_in)
    return np.ascontiguousarray(w, dtype=dtype)


# ================================================================================================== the kinds

@dataclass(frozen=True)
class Linear(LayerSpec):
    """Fully connected: (D,) -> (n,), w (D, n), b (n,). init None uses the network's default."""

    n: int = param(32, low=1, high=16384, label="units", doc="output features (columns of w)")
    init: str | None = param(None, choices=(None, *INITS), label="init", doc=_INIT_DOC)
    init_value: float = param(0.0, low=-10.0, high=10.0, decimals=3, label="init value",
                              doc="every weight's value when init is 'constant'")

    PREFIX, ROLE = "fc", "weights"
    TORCH_NAMES = {"w": ("weight", True), "b": ("bias", False)}
    REGULARISED = ("w",)

    def label(self) -> str:
        return f"Linear {self.n}"

    def output_shape(self, in_shape):
        if len(in_shape) != 1:
            raise ShapeError(f"its input has shape {shape_str(in_shape)}, an image; Linear needs a vector (D,): "
                             f"add Flatten() before it")
        return (self.n,)

    def param_shapes(self, in_shape):
        return {"w": (in_shape[0], self.n), "b": (self.n,)}

    def init_params(self, in_shape, rng, init, bias_init, dtype):
        wshape = (in_shape[0], self.n)
        return {"w": _draw_weight(self, wshape, wshape[0], rng, init, dtype),
                "b": np.full((self.n,), bias_init, dtype=dtype)}

    def forward(self, x, p, buffers, train, seed):
        # x (N, D) of the network's dtype, already checked: the affine map of layers.affine_forward without its
        # per-call validation (the same arithmetic, so the same numbers)
        return x @ p[0] + p[1], (x, p[0])

    def backward(self, dout, cache):
        x, w = cache
        return dout @ w.T, (x.T @ dout, dout.sum(axis=0))

    def to_graph(self, ctx, layer, x, p, buffers):
        return ctx.op(layer.name, "affine", {"x": x, "w": p[0], "b": p[1]})

    def torch_module(self, in_shape):
        return f"nn.Linear({in_shape[0]}, {self.n})"


@dataclass(frozen=True)
class Conv2d(LayerSpec):
    """2-D convolution: (C, H, W) -> (filters, Hout, Wout), w (filters, C, kernel, kernel), zero padding `pad`."""

    filters: int = param(8, low=1, high=1024, doc="output channels (one filter each)")
    kernel: int = param(3, low=1, high=31, doc="filter size (kernel × kernel)")
    stride: int = param(1, low=1, high=16, doc="step between windows")
    pad: int = param(0, low=0, high=15, doc="zero padding on each side")
    init: str | None = param(None, choices=(None, *INITS), label="init", doc=_INIT_DOC)
    init_value: float = param(0.0, low=-10.0, high=10.0, decimals=3, label="init value",
                              doc="every weight's value when init is 'constant'")

    PREFIX, ROLE = "conv", "weights"
    TORCH_NAMES = {"w": ("weight", False), "b": ("bias", False)}
    REGULARISED = ("w",)

    def label(self) -> str:
        extra = (f" s{self.stride}" if self.stride != 1 else "") + (f" p{self.pad}" if self.pad else "")
        return f"Conv2d {self.filters}@{self.kernel}x{self.kernel}{extra}"

    def output_shape(self, in_shape):
        _, H, W = _check_image("Conv2d", in_shape, " (after Flatten or Linear the spatial layout is gone)")
        ho = (H + 2 * self.pad - self.kernel) // self.stride + 1
        wo = (W + 2 * self.pad - self.kernel) // self.stride + 1
        if ho < 1 or wo < 1:
            raise ShapeError(f"its input {shape_str(in_shape)} with pad {self.pad} is smaller than the "
                             f"{self.kernel}x{self.kernel} kernel (output would be {ho}x{wo})")
        return (self.filters, ho, wo)

    def param_shapes(self, in_shape):
        return {"w": (self.filters, in_shape[0], self.kernel, self.kernel), "b": (self.filters,)}

    def init_params(self, in_shape, rng, init, bias_init, dtype):
        wshape = (self.filters, in_shape[0], self.kernel, self.kernel)
        return {"w": _draw_weight(self, wshape, int(np.prod(wshape[1:])), rng, init, dtype),
                "b": np.full((self.filters,), bias_init, dtype=dtype)}

    def forward(self, x, p, buffers, train, seed):
        return L.conv_forward(x, p[0], p[1], self.stride, self.pad)

    def backward(self, dout, cache):
        dx, dw, db = L.conv_backward(dout, cache)
        return dx, (dw, db)

    def to_graph(self, ctx, layer, x, p, buffers):
        return ctx.op(layer.name, "conv2d", {"x": x, "w": p[0], "b": p[1]}, {"stride": self.stride, "pad": self.pad})

    def torch_module(self, in_shape):
        return (f"nn.Conv2d({in_shape[0]}, {self.filters}, kernel_size={self.kernel}, stride={self.stride}, "
                f"padding={self.pad})")


class _Pool(LayerSpec):
    ROLE = "pool"
    OP: ClassVar[str] = ""
    TORCH: ClassVar[str] = ""

    def label(self) -> str:
        return f"{type(self).__name__} {self.size}x{self.size}/{self.stride}"

    def output_shape(self, in_shape):
        C, H, W = _check_image("pooling", in_shape)
        if self.size > H or self.size > W:
            raise ShapeError(f"the {self.size}x{self.size} window is larger than its input {shape_str(in_shape)} "
                             f"({H}x{W})")
        return (C, (H - self.size) // self.stride + 1, (W - self.size) // self.stride + 1)

    def to_graph(self, ctx, layer, x, p, buffers):
        return ctx.op(layer.name, self.OP, {"x": x}, {"size": self.size, "stride": self.stride})

    def torch_module(self, in_shape):
        return f"nn.{self.TORCH}({self.size}, stride={self.stride})"


@dataclass(frozen=True)
class MaxPool(_Pool):
    """Max pooling over size x size windows (floor mode, as PyTorch)."""

    size: int = param(2, low=1, high=16, doc="window size (size × size)")
    stride: int = param(2, low=1, high=16, doc="step between windows")

    PREFIX, OP, TORCH = "maxpool", "maxpool2d", "MaxPool2d"

    def forward(self, x, p, buffers, train, seed):
        return L.max_pool_forward(x, self.size, self.stride)

    def backward(self, dout, cache):
        return L.max_pool_backward(dout, cache), ()


@dataclass(frozen=True)
class AvgPool(_Pool):
    """Average pooling over size x size windows (floor mode)."""

    size: int = param(2, low=1, high=16, doc="window size (size × size)")
    stride: int = param(2, low=1, high=16, doc="step between windows")

    PREFIX, OP, TORCH = "avgpool", "avgpool2d", "AvgPool2d"

    def forward(self, x, p, buffers, train, seed):
        return L.avg_pool_forward(x, self.size, self.stride)

    def backward(self, dout, cache):
        return L.avg_pool_backward(dout, cache), ()


_NORM_NAMES = {"gamma": ("weight", False), "beta": ("bias", False)}


@dataclass(frozen=True)
class BatchNorm(LayerSpec):
    """Batch norm: per feature on (D,) inputs, per channel (spatial) on (C, H, W). PyTorch's momentum convention.
    Buffers: running_mean and running_var (the eval-mode statistics), updated in train mode."""

    momentum: float = param(0.1, low=0.0, high=1.0, decimals=3,
                            doc="running = (1 - momentum) · running + momentum · batch (PyTorch's convention)")
    eps: float = param(1e-5, low=1e-12, high=1.0, log=True, doc="added to the variance before the square root")

    PREFIX, ROLE = "bn", "norm"
    TORCH_NAMES = _NORM_NAMES

    def param_shapes(self, in_shape):
        return {"gamma": (in_shape[0],), "beta": (in_shape[0],)}

    def buffer_shapes(self, in_shape):
        return {"running_mean": (in_shape[0],), "running_var": (in_shape[0],)}

    def init_params(self, in_shape, rng, init, bias_init, dtype):
        return {"gamma": np.ones((in_shape[0],), dtype), "beta": np.zeros((in_shape[0],), dtype)}

    def init_buffers(self, in_shape, dtype):
        return {"running_mean": np.zeros((in_shape[0],), dtype), "running_var": np.ones((in_shape[0],), dtype)}

    def check_buffer(self, name, value):
        if name == "running_var" and np.any(value < 0):
            return "a running variance is negative"
        return None

    def forward(self, x, p, buffers, train, seed):
        bn_param = {"mode": "train" if train else "test", "eps": self.eps, "momentum": self.momentum,
                    "running_mean": buffers["running_mean"], "running_var": buffers["running_var"]}
        fwd = L.batchnorm_forward if x.ndim == 2 else L.spatial_batchnorm_forward
        return fwd(x, p[0], p[1], bn_param)   # updates the running statistics in place in train mode

    def backward(self, dout, cache):
        bwd = L.batchnorm_backward if dout.ndim == 2 else L.spatial_batchnorm_backward
        dx, dgamma, dbeta = bwd(dout, cache)
        return dx, (dgamma, dbeta)

    def to_graph(self, ctx, layer, x, p, buffers):
        if ctx.mode == "train":
            return ctx.op(layer.name, "batchnorm", {"x": x, "gamma": p[0], "beta": p[1]}, {"eps": self.eps})
        # eval: an affine map with the running statistics as constants, spelled with arithmetic ops
        name = layer.name
        bshape = (-1,) if len(layer.in_shape) == 1 else (-1, 1, 1)
        mean = np.asarray(buffers["running_mean"], np.float64).reshape(bshape)
        inv = 1.0 / np.sqrt(np.asarray(buffers["running_var"], np.float64) + self.eps).reshape(bshape)
        ctx.const(mean, f"{name}_mean")
        ctx.const(inv, f"{name}_inv_std")
        c = ctx.op(f"{name}_center", "sub", {"x": x, "y": f"{name}_mean"})
        c = ctx.op(f"{name}_xhat", "mul", {"x": c, "y": f"{name}_inv_std"})
        if len(layer.in_shape) == 3:
            gm = ctx.op(f"{name}_g", "reshape", {"x": p[0]}, {"shape": bshape})
            bt = ctx.op(f"{name}_b", "reshape", {"x": p[1]}, {"shape": bshape})
        else:
            gm, bt = p
        c = ctx.op(f"{name}_scale", "mul", {"x": c, "y": gm})
        return ctx.op(name, "add", {"x": c, "y": bt})

    def torch_module(self, in_shape):
        kind = "BatchNorm1d" if len(in_shape) == 1 else "BatchNorm2d"
        return f"nn.{kind}({in_shape[0]}, eps={self.eps!r}, momentum={self.momentum!r})"


@dataclass(frozen=True)
class LayerNorm(LayerSpec):
    """Layer norm per sample over all its features; gamma and beta have the input's shape (nn.LayerNorm(shape))."""

    eps: float = param(1e-5, low=1e-12, high=1.0, log=True, doc="added to the variance before the square root")

    PREFIX, ROLE = "ln", "norm"
    TORCH_NAMES = _NORM_NAMES

    def param_shapes(self, in_shape):
        return {"gamma": tuple(in_shape), "beta": tuple(in_shape)}

    def init_params(self, in_shape, rng, init, bias_init, dtype):
        return {"gamma": np.ones(in_shape, dtype), "beta": np.zeros(in_shape, dtype)}

    def forward(self, x, p, buffers, train, seed):
        return L.layernorm_forward(x, p[0], p[1], {"eps": self.eps})

    def backward(self, dout, cache):
        dx, dgamma, dbeta = L.layernorm_backward(dout, cache)
        return dx, (dgamma, dbeta)

    def to_graph(self, ctx, layer, x, p, buffers):
        return ctx.op(layer.name, "layernorm", {"x": x, "gamma": p[0], "beta": p[1]}, {"eps": self.eps})

    def torch_module(self, in_shape):
        return f"nn.LayerNorm({list(in_shape)}, eps={self.eps!r})"


@dataclass(frozen=True)
class Dropout(LayerSpec):
    """Inverted dropout: drops with probability p in train mode, identity in eval mode."""

    p: float = param(0.5, low=0.0, high=1.0, high_open=True, decimals=2, label="p",
                     doc="the probability of dropping a unit (train mode only)")

    PREFIX, ROLE = "drop", "dropout"
    RANDOM = True

    def label(self) -> str:
        return f"Dropout {self.p:g}"

    def forward(self, x, p, buffers, train, seed):
        return L.dropout_forward(x, {"p": self.p, "mode": "train" if train else "test", "seed": seed})

    def backward(self, dout, cache):
        return L.dropout_backward(dout, cache), ()

    def to_graph(self, ctx, layer, x, p, buffers):
        return ctx.op(layer.name, "dropout", {"x": x}, {"p": self.p, "seed": int(ctx.seed) + layer.index,
                                                       "mode": "train" if ctx.mode == "train" else "test"})

    def torch_module(self, in_shape):
        return f"nn.Dropout(p={self.p!r})"


@dataclass(frozen=True)
class Flatten(LayerSpec):
    """(C, H, W) -> (C*H*W,)."""

    PREFIX, ROLE = "flatten", "reshape"

    def output_shape(self, in_shape):
        return (int(np.prod(in_shape)),)

    def forward(self, x, p, buffers, train, seed):
        return x.reshape(x.shape[0], -1), x.shape

    def backward(self, dout, cache):
        return dout.reshape(cache), ()

    def to_graph(self, ctx, layer, x, p, buffers):
        return ctx.op(layer.name, "reshape", {"x": x}, {"shape": (ctx.batch, int(np.prod(layer.in_shape)))})

    def torch_module(self, in_shape):
        return "nn.Flatten()"


@dataclass(frozen=True)
class Activation(LayerSpec):
    """An elementwise non-linearity: one of ACTIVATIONS (leaky_relu slope 0.01, elu alpha 1, as PyTorch)."""

    name: str = param("relu", choices=ACTIVATIONS, label="activation", doc="the elementwise non-linearity")

    ROLE = "activation"

    def label(self) -> str:
        return _ACT_NAMES[self.name]

    def prefix(self) -> str:
        return self.name

    def forward(self, x, p, buffers, train, seed):
        return _ACT_LAYERS[self.name][0](x)

    def backward(self, dout, cache):
        return _ACT_LAYERS[self.name][1](dout, cache), ()

    def to_graph(self, ctx, layer, x, p, buffers):
        return ctx.op(layer.name, self.name, {"x": x}, _ACT_GRAPH_ATTRS.get(self.name, {}))

    def torch_module(self, in_shape):
        return _ACT_TORCH[self.name]


# every layer kind by name, in the order the builder offers them (and layer_from_dict reads them)
LAYER_KINDS: dict[str, type[LayerSpec]] = {c.__name__: c for c in (Linear, Activation, Conv2d, MaxPool, AvgPool,
                                                                   BatchNorm, LayerNorm, Dropout, Flatten)}


def layer_to_dict(layer: LayerSpec) -> dict[str, Any]:
    """{"type": "Linear", "n": 64, ...}: JSON-ready."""
    return {"type": type(layer).__name__, **dataclasses.asdict(layer)}


def layer_from_dict(d: Mapping[str, Any]) -> LayerSpec:
    """The inverse of layer_to_dict; FileFormatError for anything that is not a known layer with valid fields."""
    if not isinstance(d, Mapping) or d.get("type") not in LAYER_KINDS:
        raise FileFormatError(f"not a known layer: {str(d)[:200]}")
    cls = LAYER_KINDS[d["type"]]
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {k: v for k, v in d.items() if k != "type"}
    if set(kwargs) - names:
        raise FileFormatError(f"layer {d['type']} has unknown fields {sorted(map(str, set(kwargs) - names))}")
    try:
        return cls(**kwargs)
    except (StudioError, TypeError) as exc:
        raise FileFormatError(f"layer {d['type']}: {exc}") from None
