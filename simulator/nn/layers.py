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
    torch_source()                               the source of a module class torch.nn lacks (DropConnect), or ""
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
    "DropConnect", "GroupNorm", "InstanceNorm",
    "FractionalMaxPool", "ResidualBlock",
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

    def seeded(self) -> bool:
        """Whether forward draws from its seed in train mode: RANDOM layers, and layers such as a residual block with
        stochastic depth, which is random without being a dropout-like layer for Monte-Carlo passes."""
        return self.RANDOM

    def mc_random(self) -> bool:
        """Whether Monte-Carlo dropout switches this layer to train mode for its stochastic passes: the dropout-like
        layers alone (Dropout, DropConnect). Fractional max pooling and stochastic depth draw from their seed too, but
        they are not the dropout MC dropout averages over: those passes keep them, like every other layer, in eval
        mode."""
        return False

    def eval_draws(self) -> int:
        """How many seeded eval passes the network's predictions average (1: one plain pass); fractional max
        pooling asks for several region draws, the lecture's test-time averaging."""
        return 1

    def skip_path(self, in_shape: tuple[int, ...] | None) -> tuple[str, str] | None:
        """(the residual branch, the skip path) in words for views that draw a skip connection ("conv 3×3 → BN →
        ReLU → conv 3×3 → BN", "identity"); None for a layer without one; in_shape None when unknown."""
        return None

    def receptive_steps(self, in_shape: tuple[int, ...]) -> list[tuple[int, int, int]] | None:
        """The sliding windows this layer applies on an image, in order, as (kernel, stride, pad): how a unit's
        receptive field grows through it. [] for a layer that keeps every pixel where it is (activations, norms,
        dropout); None when no fixed window describes it (a pseudo-random pooling)."""
        if len(in_shape) == 3 and tuple(self.output_shape(in_shape))[1:] == tuple(in_shape)[1:]:
            return []
        return None

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

    def backward_input(self, dout: np.ndarray, cache: Any) -> np.ndarray:
        """dx alone, for a frozen layer (its parameters need no gradient): the full backward by default; a kind
        whose parameter gradients are separate work overrides it (Linear skips x.T @ dout)."""
        return self.backward(dout, cache)[0]

    # ---- expansions
    def to_graph(self, ctx: GraphContext, layer: BuiltLayer, x: str, p: Sequence[str],
                 buffers: Mapping[str, np.ndarray]) -> str:
        raise NotImplementedError

    def torch_module(self, in_shape: tuple[int, ...]) -> str:
        raise NotImplementedError

    def torch_source(self) -> str:
        """Source of a module class that torch_module names and torch.nn lacks (DropConnect): the export writes it
        into the script once, before the model. Empty for torch.nn's own modules."""
        return ""

    def torch_param(self, suffix: str, in_shape: tuple[int, ...]) -> tuple[str, bool]:
        """(torch attribute path, transposed?) of our parameter `suffix` ("w", or "conv1.w" inside a block)."""
        return self.TORCH_NAMES[suffix]


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

    def backward_input(self, dout, cache):
        return dout @ cache[1].T

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

    def receptive_steps(self, in_shape):
        return [(self.kernel, self.stride, self.pad)]

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

    def receptive_steps(self, in_shape):
        return [(self.size, self.stride, 0)]

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

    def mc_random(self) -> bool:
        return True

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


# ---------------------------------------------------------------- group and instance norm, DropConnect (issue 13)

def _check_groups(what: str, in_shape: tuple[int, ...], groups: int) -> tuple[int, int, int]:
    C, H, W = _check_image(what, in_shape, " to normalise per channel group")
    L.check_groups(f"its input {shape_str(in_shape)}", C, H * W, groups, what)
    return C, H, W


class _ChannelNorm(LayerSpec):
    """Per-sample norms of images with a learnable per-channel gamma and beta (PyTorch's affine=True)."""

    ROLE = "norm"
    TORCH_NAMES = _NORM_NAMES

    def param_shapes(self, in_shape):
        return {"gamma": (in_shape[0],), "beta": (in_shape[0],)}

    def init_params(self, in_shape, rng, init, bias_init, dtype):
        return {"gamma": np.ones((in_shape[0],), dtype), "beta": np.zeros((in_shape[0],), dtype)}


@dataclass(frozen=True)
class GroupNorm(_ChannelNorm):
    """Group norm (Wu & He 2018) on (C, H, W): each sample's channels in `groups` groups of C/groups consecutive
    channels, each group normalised over its channels and pixels; gamma and beta per channel. C must be divisible by
    groups. groups = 1: the whole sample (layer norm); groups = C: instance norm."""

    groups: int = param(2, low=1, high=1024, label="groups",
                        doc="G: the channels are split into G groups of C/G channels (G must divide C)")
    eps: float = param(1e-5, low=1e-12, high=1.0, log=True, doc="added to the variance before the square root")

    PREFIX = "gn"

    def label(self) -> str:
        return f"GroupNorm G={self.groups}"

    def output_shape(self, in_shape):
        _check_groups("GroupNorm", in_shape, self.groups)
        return in_shape

    def forward(self, x, p, buffers, train, seed):
        return L.groupnorm_forward(x, p[0], p[1], self.groups, {"eps": self.eps})

    def backward(self, dout, cache):
        dx, dgamma, dbeta = L.groupnorm_backward(dout, cache)
        return dx, (dgamma, dbeta)

    def to_graph(self, ctx, layer, x, p, buffers):
        return ctx.op(layer.name, "groupnorm", {"x": x, "gamma": p[0], "beta": p[1]},
                      {"groups": self.groups, "eps": self.eps})

    def torch_module(self, in_shape):
        return f"nn.GroupNorm({self.groups}, {in_shape[0]}, eps={self.eps!r})"


@dataclass(frozen=True)
class InstanceNorm(_ChannelNorm):
    """Instance norm on (C, H, W): each channel of each sample normalised over its pixels (GroupNorm with one group
    per channel); gamma and beta per channel, as nn.InstanceNorm2d(C, affine=True). No running statistics."""

    eps: float = param(1e-5, low=1e-12, high=1.0, log=True, doc="added to the variance before the square root")

    PREFIX = "in"

    def output_shape(self, in_shape):
        _check_groups("InstanceNorm", in_shape, in_shape[0] if len(in_shape) == 3 else 1)
        return in_shape

    def forward(self, x, p, buffers, train, seed):
        return L.instancenorm_forward(x, p[0], p[1], {"eps": self.eps})

    def backward(self, dout, cache):
        dx, dgamma, dbeta = L.instancenorm_backward(dout, cache)
        return dx, (dgamma, dbeta)

    def to_graph(self, ctx, layer, x, p, buffers):
        return ctx.op(layer.name, "instancenorm", {"x": x, "gamma": p[0], "beta": p[1]}, {"eps": self.eps})

    def torch_module(self, in_shape):
        return f"nn.InstanceNorm2d({in_shape[0]}, eps={self.eps!r}, affine=True)"


_DROPCONNECT_TORCH = '''class DropConnect(nn.Linear):
    """Backprop Studio's DropConnect: a Linear layer whose individual weights are dropped with probability p in
    training, the kept ones scaled by 1/(1-p); in eval mode the weights are used as they are."""

    def __init__(self, in_features, out_features, p):
        super().__init__(in_features, out_features)
        self.p = p

    def forward(self, x):
        w = self.weight
        if self.training and self.p > 0:
            w = w * ((torch.rand_like(w) >= self.p).to(w.dtype) / (1.0 - self.p))
        return F.linear(x, w, self.bias)
'''


@dataclass(frozen=True)
class DropConnect(LayerSpec):
    """DropConnect (Wan et al. 2013): Linear (D,) -> (n,) whose individual weights are dropped with probability p
    in train mode, the kept ones scaled by 1/(1-p) (inverted, so eval mode uses w as it is). The mask is drawn from
    the layer's seed, like Dropout's; in a train-mode graph it is a constant node `<name>_mask` multiplied into w.
    Shapes, parameters and their initialisation are Linear's."""

    n: int = param(32, low=1, high=16384, label="units", doc="output features (columns of w)")
    p: float = param(0.5, low=0.0, high=1.0, high_open=True, decimals=2, label="p",
                     doc="the probability of dropping a weight (train mode only)")
    init: str | None = param(None, choices=(None, *INITS), label="init", doc=_INIT_DOC)
    init_value: float = param(0.0, low=-10.0, high=10.0, decimals=3, label="init value",
                              doc="every weight's value when init is 'constant'")

    PREFIX, ROLE = "fc", "weights"
    TORCH_NAMES = Linear.TORCH_NAMES
    REGULARISED = ("w",)
    RANDOM = True
    output_shape = Linear.output_shape
    param_shapes = Linear.param_shapes
    init_params = Linear.init_params

    def label(self) -> str:
        return f"DropConnect {self.n} p={self.p:g}"

    def mc_random(self) -> bool:
        return True

    def forward(self, x, p, buffers, train, seed):
        return L.dropconnect_forward(x, p[0], p[1], {"p": self.p, "mode": "train" if train else "test",
                                                       "seed": seed})

    def backward(self, dout, cache):
        dx, dw, db = L.dropconnect_backward(dout, cache)
        return dx, (dw, db)

    def mask(self, in_shape: tuple[int, ...], seed: int | None, dtype: Any = np.float64) -> np.ndarray:
        """The (D, n) train-mode mask of this layer for a seed (the network passes its seed + the layer index)."""
        return L.dropconnect_mask((in_shape[0], self.n), self.p, seed, dtype)

    def to_graph(self, ctx, layer, x, p, buffers):
        if ctx.mode != "train":
            return ctx.op(layer.name, "affine", {"x": x, "w": p[0], "b": p[1]})
        mask = ctx.const(self.mask(layer.in_shape, int(ctx.seed) + layer.index), f"{layer.name}_mask")
        w = ctx.op(f"{layer.name}_w_dropped", "mul", {"x": p[0], "y": mask})
        return ctx.op(layer.name, "affine", {"x": x, "w": w, "b": p[1]})

    def torch_module(self, in_shape):
        return f"DropConnect({in_shape[0]}, {self.n}, p={self.p!r})"

    def torch_source(self) -> str:
        return _DROPCONNECT_TORCH


# ================================================================================================== residual blocks
# (He et al. 2016) with stochastic depth (Huang et al. 2016), and fractional max pooling (Graham 2014): lecture 8

_TORCH_RESIDUAL = '''def stochastic_depth(x, p, mode, training):
    """torchvision.ops.stochastic_depth written out: drop the whole residual branch per example ("row") or per batch
    ("batch") with probability p, scale survivors by 1/(1 - p); the identity in eval mode."""
    if not training or p == 0.0:
        return x
    survival = 1.0 - p
    size = [x.shape[0]] + [1] * (x.ndim - 1) if mode == "row" else [1] * x.ndim
    noise = torch.empty(size, dtype=x.dtype, device=x.device).bernoulli_(survival)
    if survival > 0.0:
        noise.div_(survival)
    return x * noise


class ResidualBlock(nn.Module):
    """out = relu(stochastic_depth(F(x)) + shortcut(x)): F runs the named modules in order, the shortcut is the
    identity or the projection `proj` (1x1 conv or Linear)."""

    def __init__(self, branch, proj=None, p=0.0, mode="row"):
        super().__init__()
        self.order = [name for name, _ in branch]
        for name, module in branch:
            self.add_module(name, module)
        self.proj = proj
        self.p, self.mode = p, mode

    def forward(self, x):
        h = x
        for name in self.order:
            h = getattr(self, name)(h)
        h = stochastic_depth(h, self.p, self.mode, self.training)
        return torch.relu(h + (x if self.proj is None else self.proj(x)))'''


@dataclass(frozen=True)
class _Part:
    """One inner layer of a residual block: its name in the block ("conv1"), record, input shape, output shape,
    parameter and buffer suffixes."""

    name: str
    spec: LayerSpec
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    params: tuple[str, ...]
    buffers: tuple[str, ...]


def _part(name: str, spec: LayerSpec, in_shape: tuple[int, ...]) -> _Part:
    return _Part(name, spec, in_shape, tuple(spec.output_shape(in_shape)), tuple(spec.param_shapes(in_shape)),
                 tuple(spec.buffer_shapes(in_shape)))


_BLOCK_PARTS: dict[tuple[Any, tuple[int, ...]], tuple[tuple[_Part, ...], _Part | None]] = {}


@dataclass(frozen=True)
class ResidualBlock(LayerSpec):
    """A residual block: out = relu(F(x) + shortcut(x)), the lecture's ResNet building block.

    The record holds its inner layers as declared fields (width, kernel, stride, batch norm), not as a nested list of
    layer records: the builder's form stays one flat form of choices, a saved block is one JSON object, and every
    block is a valid block. From the input shape it builds the inner records (Conv2d, BatchNorm, Activation, Linear)
    and delegates to them:

    - images (C, H, W): F = conv1 (width filters, kernel x kernel, stride, same padding) - bn1 - ReLU - conv2 (width,
      kernel x kernel, stride 1) - bn2; vectors (D,): F = fc1 (Linear width) - bn1 - ReLU - fc2 (Linear width) - bn2;
      without batch norm the bn layers are left out;
    - the shortcut is the identity when F keeps the shape, else the projection ``proj``: a 1x1 conv with the stride
      (images) or a Linear (vectors).

    Parameters and buffers keep their inner names under the block's: res1.conv1.w, res1.conv1.b, res1.bn1.gamma, ...,
    res1.proj.w, res1.bn1.running_mean. Stochastic depth with probability p drops F(x) in train mode for each example
    ("row") or for the whole batch ("batch") and scales the kept ones by 1/(1 - p), exactly torchvision.ops.
    stochastic_depth; eval mode uses F(x) as it is. In the graph the block's input fans out to F and to the shortcut,
    so backward adds the two gradients at the fork."""

    width: int = param(0, low=0, high=1024, label="width",
                       doc="channels (images) or units (vectors) of the block's output; 0: as many as its input, "
                           "so the shortcut is the identity (a different width needs the projection)")
    kernel: int = param(3, choices=(1, 3, 5, 7), label="kernel",
                        doc="the two convolutions' kernel size on images (same padding: kernel // 2)")
    stride: int = param(1, low=1, high=4, label="stride",
                        doc="conv1's stride on images: 2 halves H and W (the shortcut becomes a strided 1x1 conv)")
    batch_norm: bool = param(True, label="batch norm",
                             doc="conv-BN-ReLU-conv-BN as in ResNet (off: conv-ReLU-conv)")
    p: float = param(0.0, low=0.0, high=1.0, high_open=True, decimals=2, label="stochastic depth p",
                     doc="the probability of dropping the block's residual branch in training (0: never); kept "
                         "branches are scaled by 1/(1 - p), as torchvision.ops.stochastic_depth")
    mode: str = param("row", choices=("row", "batch"), choice_labels=("per example (row)", "per batch"),
                      label="drop per", doc="row: one draw per example; batch: one draw for the whole batch")

    PREFIX, ROLE = "res", "block"
    # our suffix -> (torch attribute, transposed?) for the exported ResidualBlock module (proj: see torch_param)
    TORCH_NAMES = {f"{layer}.{ours}": (f"{layer}.{theirs}", t) for layer, t in
                   (("conv1", False), ("conv2", False), ("fc1", True), ("fc2", True), ("bn1", False),
                    ("bn2", False))
                   for ours, theirs in (("w", "weight"), ("b", "bias"), ("gamma", "weight"), ("beta", "bias"))}
    # the weights the regulariser applies to, among those the block has
    REGULARISED = ("conv1.w", "conv2.w", "fc1.w", "fc2.w", "proj.w")

    def receptive_steps(self, in_shape):
        """On images: conv1 (kernel, stride, same padding) then conv2 (kernel, stride 1); the shortcut sees less."""
        if len(in_shape) != 3:
            return None
        pad = self.kernel // 2
        return [(self.kernel, self.stride, pad), (self.kernel, 1, pad)]

    def label(self) -> str:
        return ("ResBlock" + (f" {self.width}" if self.width else "") + (f" s{self.stride}" if self.stride > 1 else "")
                + (f" k{self.kernel}" if self.kernel != 3 else "") + ("" if self.batch_norm else " no BN")
                + (f" p{self.p:g}" if self.p else ""))

    def seeded(self) -> bool:
        return self.p > 0

    def skip_path(self, in_shape):
        k = f"{self.kernel}×{self.kernel}"
        if in_shape is None or len(in_shape) not in (1, 3):
            return "F(x)", "skip"
        bn = " → BN" if self.batch_norm else ""
        if len(in_shape) == 1:
            w = self.width or in_shape[0]
            branch = f"Linear {w}{bn} → ReLU → Linear {w}{bn}"
            skip = "identity" if w == in_shape[0] else f"Linear {w}"
        else:
            w = self.width or in_shape[0]
            s = f" s{self.stride}" if self.stride > 1 else ""
            branch = f"conv {k}{s}{bn} → ReLU → conv {k}{bn}"
            skip = "identity" if w == in_shape[0] and self.stride == 1 else f"1×1 conv{s}"
        if self.p:
            branch += f" (dropped with p {self.p:g} per {'example' if self.mode == 'row' else 'batch'})"
        return branch, skip

    def parts(self, in_shape: tuple[int, ...]) -> tuple[tuple[_Part, ...], _Part | None]:
        """The inner layers of F in order and the projection (None: the identity shortcut) for this input shape."""
        key = (self, tuple(in_shape))
        got = _BLOCK_PARTS.get(key)
        if got is not None:
            return got
        if len(in_shape) == 3:
            w = self.width or in_shape[0]
            pad = self.kernel // 2
            first = _part("conv1", Conv2d(filters=w, kernel=self.kernel, stride=self.stride, pad=pad), in_shape)
            second = Conv2d(filters=w, kernel=self.kernel, stride=1, pad=pad)
            names = ("conv1", "conv2")
            proj = (None if w == in_shape[0] and self.stride == 1 else
                    _part("proj", Conv2d(filters=w, kernel=1, stride=self.stride, pad=0), in_shape))
        elif len(in_shape) == 1:
            if self.stride != 1:
                raise ShapeError(f"its input has shape {shape_str(in_shape)}, a vector; a residual block's stride "
                                 f"applies to images: set stride 1")
            w = self.width or in_shape[0]
            first = _part("fc1", Linear(n=w), in_shape)
            second = Linear(n=w)
            names = ("fc1", "fc2")
            proj = None if w == in_shape[0] else _part("proj", Linear(n=w), in_shape)
        else:
            raise ShapeError(f"its input has shape {shape_str(in_shape)}; a residual block needs (C, H, W) or (D,)")
        branch = [first]
        if self.batch_norm:
            branch.append(_part("bn1", BatchNorm(), first.out_shape))
        branch.append(_part("relu", Activation("relu"), first.out_shape))
        branch.append(_part(names[1], second, first.out_shape))
        if self.batch_norm:
            branch.append(_part("bn2", BatchNorm(), branch[-1].out_shape))
        if proj is not None and proj.out_shape != branch[-1].out_shape:   # cannot happen with odd kernels
            raise ShapeError(f"the shortcut gives {shape_str(proj.out_shape)} but the branch "
                             f"{shape_str(branch[-1].out_shape)}")
        got = (tuple(branch), proj)
        if len(_BLOCK_PARTS) < 1024:
            _BLOCK_PARTS[key] = got
        return got

    def _all_parts(self, in_shape):
        branch, proj = self.parts(in_shape)
        return branch + ((proj,) if proj is not None else ())

    def output_shape(self, in_shape):
        return self.parts(tuple(in_shape))[0][-1].out_shape

    def param_shapes(self, in_shape):
        return {f"{q.name}.{k}": v for q in self._all_parts(in_shape)
                for k, v in q.spec.param_shapes(q.in_shape).items()}

    def buffer_shapes(self, in_shape):
        return {f"{q.name}.{k}": v for q in self._all_parts(in_shape)
                for k, v in q.spec.buffer_shapes(q.in_shape).items()}

    def init_params(self, in_shape, rng, init, bias_init, dtype):
        return {f"{q.name}.{k}": v for q in self._all_parts(in_shape)
                for k, v in q.spec.init_params(q.in_shape, rng, init, bias_init, dtype).items()}

    def init_buffers(self, in_shape, dtype):
        return {f"{q.name}.{k}": v for q in self._all_parts(in_shape)
                for k, v in q.spec.init_buffers(q.in_shape, dtype).items()}

    def check_buffer(self, name, value):
        inner, _, suffix = name.partition(".")
        return BatchNorm().check_buffer(suffix, value) if inner.startswith("bn") else None

    def forward(self, x, p, buffers, train, seed):
        branch, proj = self.parts(x.shape[1:])
        i, h, caches = 0, x, []
        for q in branch:
            b = {k: buffers[f"{q.name}.{k}"] for k in q.buffers} if q.buffers else None
            h, c = q.spec.forward(h, p[i:i + len(q.params)], b, train, None)
            i += len(q.params)
            caches.append(c)
        h, sd_cache = L.stochastic_depth_forward(h, self.p, self.mode, train, seed)
        shortcut, proj_cache = (x, None) if proj is None else proj.spec.forward(x, p[i:], None, train, None)
        out, relu_cache = L.relu_forward(h + shortcut)
        return out, (branch, proj, caches, sd_cache, proj_cache, relu_cache)

    def backward(self, dout, cache):
        branch, proj, caches, sd_cache, proj_cache, relu_cache = cache
        ds = L.relu_backward(dout, relu_cache)              # d out / d (F(x) + shortcut(x))
        dh = L.stochastic_depth_backward(ds, sd_cache)
        grads: list[np.ndarray] = []
        for q, c in zip(reversed(branch), reversed(caches)):
            dh, g = q.spec.backward(dh, c)
            grads[:0] = g
        if proj is None:
            return dh + ds, tuple(grads)                     # the fork: both paths' gradients add up
        dshort, g = proj.spec.backward(ds, proj_cache)
        return dh + dshort, (*grads, *g)

    def to_graph(self, ctx, layer, x, p, buffers):
        branch, proj = self.parts(layer.in_shape)
        name, i, h = layer.name, 0, x
        for q in branch:
            sub = BuiltLayer(layer.index, f"{name}_{q.name}", q.spec, q.in_shape, q.out_shape)
            h = q.spec.to_graph(ctx, sub, h, p[i:i + len(q.params)], {k: buffers[f"{q.name}.{k}"] for k in q.buffers})
            i += len(q.params)
        if self.p > 0 and ctx.mode == "train":   # the same draw as Network.loss(..., seed=ctx.seed)
            h = ctx.op(f"{name}_depth", "stochastic_depth", {"x": h},
                       {"p": self.p, "seed": int(ctx.seed) + layer.index, "per": self.mode, "mode": "train"})
        shortcut = x
        if proj is not None:
            shortcut = proj.spec.to_graph(ctx, BuiltLayer(layer.index, f"{name}_proj", proj.spec, proj.in_shape,
                                                          proj.out_shape), x, p[i:], {})
        s = ctx.op(f"{name}_sum", "add", {"x": h, "y": shortcut})
        return ctx.op(name, "relu", {"x": s})

    def torch_source(self) -> str:
        return _TORCH_RESIDUAL

    def torch_param(self, suffix, in_shape):
        if suffix.startswith("proj."):
            return suffix.replace(".w", ".weight").replace(".b", ".bias"), len(in_shape) == 1
        return self.TORCH_NAMES[suffix]

    def torch_module(self, in_shape):
        branch, proj = self.parts(tuple(in_shape))
        inner = ", ".join(f"({q.name!r}, {q.spec.torch_module(q.in_shape)})" for q in branch)
        proj_src = "None" if proj is None else proj.spec.torch_module(proj.in_shape)
        return f"ResidualBlock([{inner}], proj={proj_src}, p={self.p!r}, mode={self.mode!r})"


@dataclass(frozen=True)
class FractionalMaxPool(LayerSpec):
    """Fractional max pooling (Graham 2014), as torch's FractionalMaxPool2d(2, output_ratio=ratio): (C, H, W) ->
    (C, floor(H ratio), floor(W ratio)) with 2x2 windows at pseudo-random rows and columns. Train mode draws new
    regions every step from its seed (per example and channel). Eval mode uses one region draw per channel, shared
    by every example (seed 0 unless given), and the network's predictions average `draws` such draws: the lecture's
    test-time averaging (Network.forward in eval mode)."""

    ratio: float = param(round(2 ** -0.5, 4), low=0.5, high=1.0, low_open=True, high_open=True, decimals=4,
                         label="ratio",
                         doc="output size / input size (floor), strictly between 1/2 and 1; Graham's 1/√2 ≈ 0.7071 "
                             "halves the area, a gentler shrink than 2x2 max pooling's quarter")
    draws: int = param(4, low=1, high=64, label="test draws",
                       doc="eval: the predictions are averaged over this many region draws (1: a single draw)")

    PREFIX, ROLE = "fmaxpool", "pool"
    RANDOM = True

    def receptive_steps(self, in_shape):
        return None                                   # pseudo-random windows: no fixed receptive field

    def label(self) -> str:
        return f"FracMaxPool ×{self.ratio:.3g}" + (f" · {self.draws} draws" if self.draws > 1 else "")

    def eval_draws(self) -> int:
        return self.draws

    def output_shape(self, in_shape):
        C, H, W = _check_image("fractional max pooling", in_shape)
        ho, wo = int(H * self.ratio), int(W * self.ratio)
        if ho < 1 or wo < 1 or ho + 1 > H or wo + 1 > W:
            raise ShapeError(f"its input {shape_str(in_shape)} is too small for 2x2 windows at ratio {self.ratio:g} "
                             f"(the output would be {ho}x{wo})")
        return (C, ho, wo)

    def samples(self, x_shape: tuple[int, ...], train: bool, seed: int | None, dtype: Any) -> np.ndarray:
        """torch's _random_samples (N, C, 2) for a pass: per example from `seed` in train mode; in eval one draw per
        channel for every example, from `seed` (0 when None)."""
        if train:
            return L.fractional_pool_samples(x_shape[0], x_shape[1], seed, dtype)
        return L.fractional_pool_samples(x_shape[0], x_shape[1], 0 if seed is None else seed, dtype, shared=True)

    def forward(self, x, p, buffers, train, seed):
        return L.fractional_max_pool_forward(x, self.ratio, self.samples(x.shape, train, seed, x.dtype))

    def backward(self, dout, cache):
        return L.fractional_max_pool_backward(dout, cache), ()

    def to_graph(self, ctx, layer, x, p, buffers):
        return ctx.op(layer.name, "fractional_maxpool2d", {"x": x},
                      {"ratio": self.ratio, "seed": int(ctx.seed) + layer.index,
                       "mode": "train" if ctx.mode == "train" else "test"})

    def torch_module(self, in_shape):
        return f"nn.FractionalMaxPool2d(2, output_ratio=({self.ratio!r}, {self.ratio!r}))"


# every layer kind by name, in the order the builder offers them (and layer_from_dict reads them)
LAYER_KINDS: dict[str, type[LayerSpec]] = {c.__name__: c for c in (Linear, Activation, Conv2d, MaxPool, AvgPool,
                                                                   BatchNorm, LayerNorm, Dropout, Flatten)}
LAYER_KINDS.update({c.__name__: c for c in (GroupNorm, InstanceNorm, DropConnect)})
LAYER_KINDS.update({c.__name__: c for c in (ResidualBlock, FractionalMaxPool)})


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
