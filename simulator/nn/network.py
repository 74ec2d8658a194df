"""Layer stacks (MLPs, small CNNs) as data: specs, a Network over simulator/layers.py, its Graph expansion, a Trainer.

A network is an input shape (without the batch axis: (2,) for points, (1, 8, 8) for digits) and a list of frozen layer
specs. Shapes are worked out from the specs alone (``describe()``), so an impossible stack is refused before any data
is seen. Linear layers need 1-D inputs: an image must pass through ``Flatten()`` first (no silent auto-flatten, so the
learner sees where the (C, H, W) -> (D,) view happens, as in PyTorch's nn.Sequential).

Weights follow cs231n's layouts: Linear w (D, M), b (M,); Conv2d w (F, C, k, k), b (F,); BatchNorm/LayerNorm gamma,
beta. The loss is the data loss (softmax cross-entropy, multiclass SVM, or MSE against one-hot targets) plus the
regulariser ``reg * sum(w**2)`` (L2) or ``reg * sum(|w|)`` (L1) over the weights ``*.w`` (not biases or norm
parameters), cs231n style. Decoupled weight decay is the AdamW optimizer's ``weight_decay``.

Initialisation (per layer, or the network's default), for a weight with fan_in inputs (D for Linear, C*k*k for Conv2d):
zeros; constant (``init_value``); gaussian, std 0.01; xavier, std 1/sqrt(fan_in); kaiming, std sqrt(2/fan_in). Biases
start at ``bias_init``. The draws come from one numpy Generator seeded with ``seed`` in float64 (then cast), so a seed
gives the same network in float32 and float64.
"""
from __future__ import annotations

import dataclasses
import json
import math
import numbers
import os
import zipfile
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from simulator.functional import layers as L
from simulator.core.errors import FileFormatError, NumericError, ShapeError, StudioError, ValueInputError

__all__ = [
    "Linear", "Conv2d", "MaxPool", "AvgPool", "BatchNorm", "LayerNorm", "Dropout", "Flatten", "Activation",
    "LayerSpec", "LayerRow", "Network", "Trainer", "StepMetrics", "EpochMetrics", "History",
    "ACTIVATIONS", "INITS", "LOSSES", "layer_to_dict", "layer_from_dict",
]

ACTIVATIONS = ("relu", "leaky_relu", "elu", "selu", "sigmoid", "tanh", "gelu", "silu", "softplus")
INITS = ("zeros", "constant", "gaussian", "xavier", "kaiming")
LOSSES = ("softmax", "svm", "mse")
_ACT_NAMES = {"relu": "ReLU", "leaky_relu": "LeakyReLU", "elu": "ELU", "selu": "SELU", "sigmoid": "Sigmoid",
              "tanh": "Tanh", "gelu": "GELU", "silu": "SiLU", "softplus": "Softplus"}
_ACT_LAYERS = {name: (getattr(L, f"{name}_forward"), getattr(L, f"{name}_backward")) for name in ACTIVATIONS}
FORMAT = "backprop-studio-weights"
VERSION = 1
MAX_PARAMS = 20_000_000


def _posint(what: str, v: Any, minimum: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < minimum:
        raise ValueInputError(f"{what} must be an integer >= {minimum}, got {v!r}")
    return int(v)


def _real(what: str, v: Any, low: float = -math.inf, high: float = math.inf) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(float(v)):
        raise ValueInputError(f"{what} must be a finite number, got {v!r}")
    v = float(v)
    if not low <= v <= high:
        raise ValueInputError(f"{what} must lie in [{low}, {high}], got {v}")
    return v


def _init_name(what: str, init: Any) -> str | None:
    if init is not None and init not in INITS:
        raise ValueInputError(f"{what}: unknown init {init!r}; choose one of {', '.join(INITS)}")
    return init


# ================================================================================================== layer specs

class LayerSpec:
    """Base of the layer specs (frozen dataclasses)."""

    kind: str = ""

    def label(self) -> str:
        return type(self).__name__


@dataclass(frozen=True)
class Linear(LayerSpec):
    """Fully connected: (D,) -> (n,), w (D, n), b (n,). init None uses the network's default."""

    n: int
    init: str | None = None
    init_value: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "n", _posint("Linear: the number of units", self.n))
        _init_name("Linear", self.init)
        object.__setattr__(self, "init_value", _real("Linear: init_value", self.init_value))

    def label(self) -> str:
        return f"Linear {self.n}"


@dataclass(frozen=True)
class Conv2d(LayerSpec):
    """2-D convolution: (C, H, W) -> (filters, Hout, Wout), w (filters, C, kernel, kernel), zero padding `pad`."""

    filters: int
    kernel: int
    stride: int = 1
    pad: int = 0
    init: str | None = None
    init_value: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "filters", _posint("Conv2d: filters", self.filters))
        object.__setattr__(self, "kernel", _posint("Conv2d: kernel", self.kernel))
        object.__setattr__(self, "stride", _posint("Conv2d: stride", self.stride))
        object.__setattr__(self, "pad", _posint("Conv2d: pad", self.pad, 0))
        _init_name("Conv2d", self.init)
        object.__setattr__(self, "init_value", _real("Conv2d: init_value", self.init_value))

    def label(self) -> str:
        extra = (f" s{self.stride}" if self.stride != 1 else "") + (f" p{self.pad}" if self.pad else "")
        return f"Conv2d {self.filters}@{self.kernel}x{self.kernel}{extra}"


@dataclass(frozen=True)
class MaxPool(LayerSpec):
    """Max pooling over size x size windows (floor mode, as PyTorch)."""

    size: int = 2
    stride: int = 2

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", _posint("MaxPool: size", self.size))
        object.__setattr__(self, "stride", _posint("MaxPool: stride", self.stride))

    def label(self) -> str:
        return f"MaxPool {self.size}x{self.size}/{self.stride}"


@dataclass(frozen=True)
class AvgPool(LayerSpec):
    """Average pooling over size x size windows (floor mode)."""

    size: int = 2
    stride: int = 2

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", _posint("AvgPool: size", self.size))
        object.__setattr__(self, "stride", _posint("AvgPool: stride", self.stride))

    def label(self) -> str:
        return f"AvgPool {self.size}x{self.size}/{self.stride}"


@dataclass(frozen=True)
class BatchNorm(LayerSpec):
    """Batch norm: per feature on (D,) inputs, per channel (spatial) on (C, H, W). PyTorch's momentum convention."""

    momentum: float = 0.1
    eps: float = 1e-5

    def __post_init__(self) -> None:
        object.__setattr__(self, "momentum", _real("BatchNorm: momentum", self.momentum, 0.0, 1.0))
        object.__setattr__(self, "eps", _real("BatchNorm: eps", self.eps, 1e-12))


@dataclass(frozen=True)
class LayerNorm(LayerSpec):
    """Layer norm per sample over all its features; gamma and beta have the input's shape (nn.LayerNorm(shape))."""

    eps: float = 1e-5

    def __post_init__(self) -> None:
        object.__setattr__(self, "eps", _real("LayerNorm: eps", self.eps, 1e-12))


@dataclass(frozen=True)
class Dropout(LayerSpec):
    """Inverted dropout: drops with probability p in train mode, identity in eval mode."""

    p: float = 0.5

    def __post_init__(self) -> None:
        p = _real("Dropout: p", self.p, 0.0, 1.0)
        if p >= 1.0:
            raise ValueInputError(f"Dropout: p (the probability of dropping) must be < 1, got {p}")
        object.__setattr__(self, "p", p)

    def label(self) -> str:
        return f"Dropout {self.p:g}"


@dataclass(frozen=True)
class Flatten(LayerSpec):
    """(C, H, W) -> (C*H*W,)."""


@dataclass(frozen=True)
class Activation(LayerSpec):
    """An elementwise non-linearity: one of ACTIVATIONS (leaky_relu slope 0.01, elu alpha 1, as PyTorch)."""

    name: str = "relu"

    def __post_init__(self) -> None:
        if self.name not in ACTIVATIONS:
            raise ValueInputError(f"unknown activation {self.name!r}; choose one of {', '.join(ACTIVATIONS)}")

    def label(self) -> str:
        return _ACT_NAMES[self.name]


_SPECS: dict[str, type] = {c.__name__: c for c in (Linear, Conv2d, MaxPool, AvgPool, BatchNorm, LayerNorm, Dropout,
                                                    Flatten, Activation)}


def layer_to_dict(layer: LayerSpec) -> dict[str, Any]:
    """{"type": "Linear", "n": 64, ...}: JSON-ready."""
    return {"type": type(layer).__name__, **dataclasses.asdict(layer)}


def layer_from_dict(d: Mapping[str, Any]) -> LayerSpec:
    """The inverse of layer_to_dict; FileFormatError for anything that is not a known layer with valid fields."""
    if not isinstance(d, Mapping) or d.get("type") not in _SPECS:
        raise FileFormatError(f"not a known layer: {d!r}")
    cls = _SPECS[d["type"]]
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {k: v for k, v in d.items() if k != "type"}
    if set(kwargs) - names:
        raise FileFormatError(f"layer {d['type']} has unknown fields {sorted(set(kwargs) - names)}")
    try:
        return cls(**kwargs)
    except (StudioError, TypeError) as exc:
        raise FileFormatError(f"layer {d['type']}: {exc}") from None


# ================================================================================================== the network

@dataclass(frozen=True)
class LayerRow:
    """One row of describe(): index (1-based), parameter prefix name, label, output shape (no batch axis), params."""

    index: int
    name: str
    label: str
    output_shape: tuple[int, ...]
    params: int


@dataclass
class _Layer:
    index: int
    name: str
    spec: LayerSpec
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    params: tuple[str, ...] = ()

    @property
    def title(self) -> str:
        return f"layer {self.index} ({self.spec.label()})"


def _shape_str(s: tuple[int, ...]) -> str:
    return "(" + ", ".join(map(str, s)) + ("," if len(s) == 1 else "") + ")"


class Network:
    """A feed-forward stack. ``params``: ordered name -> ndarray ("fc1.w", "conv1.b", "bn1.gamma", ...), updated in
    place by optimizers. ``forward``/``loss`` run simulator/layers.py (the Numba kernels) in ``dtype``."""

    def __init__(self, input_shape: Sequence[int], layers: Sequence[LayerSpec], loss: str = "softmax",
                 reg: float = 0.0, reg_kind: str = "l2", init: str = "kaiming", bias_init: float = 0.0,
                 seed: int = 0, dtype: Any = np.float32):
        if isinstance(input_shape, numbers.Integral):
            input_shape = (int(input_shape),)
        try:
            self.input_shape = tuple(_posint("input_shape entries", int(s) if isinstance(s, np.integer) else s)
                                     for s in input_shape)
        except TypeError:
            raise ValueInputError(f"input_shape must be a tuple of sizes, got {input_shape!r}") from None
        if len(self.input_shape) not in (1, 3):
            raise ShapeError(f"input_shape must be (D,) for vectors or (C, H, W) for images, got {self.input_shape}")
        self.specs: tuple[LayerSpec, ...] = tuple(layers)
        for i, s in enumerate(self.specs):
            if not isinstance(s, LayerSpec):
                raise ValueInputError(f"layer {i + 1} is not a layer spec: {s!r}")
        if loss not in LOSSES:
            raise ValueInputError(f"unknown loss {loss!r}; choose one of {', '.join(LOSSES)}")
        if reg_kind not in ("l2", "l1"):
            raise ValueInputError(f"reg_kind must be 'l2' or 'l1', got {reg_kind!r}")
        if init not in INITS:
            raise ValueInputError(f"unknown init {init!r}; choose one of {', '.join(INITS)}")
        if np.dtype(dtype) not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ValueInputError(f"dtype must be float32 or float64, got {dtype!r}")
        self.loss_kind = loss
        self.reg = _real("reg", reg, 0.0)
        self.reg_kind = reg_kind
        self.init = init
        self.bias_init = _real("bias_init", bias_init)
        self.seed = _posint("seed", seed, 0)
        self.dtype = np.dtype(dtype)
        self._layers = self._build_shapes()
        self.num_classes = self._layers[-1].out_shape[0] if self._layers else self.input_shape[0]
        self.params: dict[str, np.ndarray] = {}
        self.bn_params: dict[str, dict[str, Any]] = {}
        self.param_layer: dict[str, str] = {}
        self.reset_parameters(self.seed)
        self._dropout_rng = np.random.default_rng([self.seed, 1])

    # ------------------------------------------------------------------------------------------- shapes, no data
    def _build_shapes(self) -> list[_Layer]:
        shape = self.input_shape
        counts: dict[str, int] = {}
        out: list[_Layer] = []
        for i, spec in enumerate(self.specs, start=1):
            prefix = {"Linear": "fc", "Conv2d": "conv", "MaxPool": "maxpool", "AvgPool": "avgpool", "BatchNorm": "bn",
                      "LayerNorm": "ln", "Dropout": "drop", "Flatten": "flatten"}.get(type(spec).__name__)
            if prefix is None:
                prefix = spec.name  # an activation
            counts[prefix] = counts.get(prefix, 0) + 1
            name = f"{prefix}{counts[prefix]}"
            where = f"layer {i} ({spec.label()})"
            if isinstance(spec, Linear):
                if len(shape) != 1:
                    raise ShapeError(f"{where}: its input has shape {_shape_str(shape)}, an image; Linear needs a "
                                     f"vector (D,): add Flatten() before it")
                new, params = (spec.n,), (f"{name}.w", f"{name}.b")
            elif isinstance(spec, Conv2d):
                if len(shape) != 3:
                    raise ShapeError(f"{where}: its input has shape {_shape_str(shape)}; Conv2d needs an image "
                                     f"(C, H, W) (after Flatten or Linear the spatial layout is gone)")
                C, H, W = shape
                ho = (H + 2 * spec.pad - spec.kernel) // spec.stride + 1
                wo = (W + 2 * spec.pad - spec.kernel) // spec.stride + 1
                if ho < 1 or wo < 1:
                    raise ShapeError(f"{where}: its input {_shape_str(shape)} with pad {spec.pad} is smaller than "
                                     f"the {spec.kernel}x{spec.kernel} kernel (output would be {ho}x{wo})")
                new, params = (spec.filters, ho, wo), (f"{name}.w", f"{name}.b")
            elif isinstance(spec, (MaxPool, AvgPool)):
                if len(shape) != 3:
                    raise ShapeError(f"{where}: its input has shape {_shape_str(shape)}; pooling needs an image "
                                     f"(C, H, W)")
                C, H, W = shape
                if spec.size > H or spec.size > W:
                    raise ShapeError(f"{where}: the {spec.size}x{spec.size} window is larger than its input "
                                     f"{_shape_str(shape)} ({H}x{W})")
                new, params = (C, (H - spec.size) // spec.stride + 1, (W - spec.size) // spec.stride + 1), ()
            elif isinstance(spec, (BatchNorm, LayerNorm)):
                new, params = shape, (f"{name}.gamma", f"{name}.beta")
            elif isinstance(spec, Flatten):
                new, params = (int(np.prod(shape)),), ()
            else:  # Dropout, Activation
                new, params = shape, ()
            out.append(_Layer(i, name, spec, shape, tuple(new), params))
            shape = tuple(new)
        if len(shape) != 1:
            raise ShapeError(f"the last layer gives shape {_shape_str(shape)}; the loss needs class scores (C,): "
                             f"end with Flatten() and Linear(C)")
        if self.loss_kind in ("softmax", "svm") and shape[0] < 2:
            raise ShapeError(f"the {self.loss_kind} loss needs at least 2 class scores, the last layer gives "
                             f"{shape[0]}")
        return out

    def _param_shapes(self, layer: _Layer) -> list[tuple[int, ...]]:
        s = layer.spec
        if isinstance(s, Linear):
            return [(layer.in_shape[0], s.n), (s.n,)]
        if isinstance(s, Conv2d):
            return [(s.filters, layer.in_shape[0], s.kernel, s.kernel), (s.filters,)]
        if isinstance(s, BatchNorm):
            return [(layer.in_shape[0],)] * 2
        if isinstance(s, LayerNorm):
            return [layer.in_shape] * 2
        return []

    def describe(self) -> list[LayerRow]:
        """Per-layer rows (index, name, label, output shape without the batch axis, parameter count)."""
        return [LayerRow(l.index, l.name, l.spec.label(), l.out_shape,
                         sum(int(np.prod(s)) for s in self._param_shapes(l))) for l in self._layers]

    @property
    def num_params(self) -> int:
        return sum(r.params for r in self.describe())

    @property
    def layer_names(self) -> list[str]:
        return [l.name for l in self._layers]

    def __repr__(self) -> str:
        return (f"Network({self.input_shape} -> " + " -> ".join(l.spec.label() for l in self._layers)
                + f", loss={self.loss_kind!r}, {self.num_params} params)")

    # ------------------------------------------------------------------------------------------- initialisation
    @staticmethod
    def init_std(init: str, fan_in: int) -> float:
        """The standard deviation each init draws with (0 for zeros and constant)."""
        return {"zeros": 0.0, "constant": 0.0, "gaussian": 0.01, "xavier": 1.0 / math.sqrt(fan_in),
                "kaiming": math.sqrt(2.0 / fan_in)}[init]

    def reset_parameters(self, seed: int | None = None) -> None:
        """Fresh weights from `seed` (default: the network's), fresh batch-norm running statistics."""
        rng = np.random.default_rng(self.seed if seed is None else seed)
        params: dict[str, np.ndarray] = {}
        for layer in self._layers:
            shapes = self._param_shapes(layer)
            s = layer.spec
            if isinstance(s, (Linear, Conv2d)):
                wshape, bshape = shapes
                fan_in = int(np.prod(wshape[1:])) if isinstance(s, Conv2d) else wshape[0]
                init = s.init or self.init
                if init == "constant":
                    w = np.full(wshape, s.init_value)
                else:
                    w = rng.standard_normal(wshape) * self.init_std(init, fan_in)
                params[layer.params[0]] = np.ascontiguousarray(w, dtype=self.dtype)
                params[layer.params[1]] = np.full(bshape, self.bias_init, dtype=self.dtype)
            elif isinstance(s, (BatchNorm, LayerNorm)):
                params[layer.params[0]] = np.ones(shapes[0], self.dtype)
                params[layer.params[1]] = np.zeros(shapes[1], self.dtype)
                if isinstance(s, BatchNorm):
                    self.bn_params[layer.name] = {"mode": "train", "eps": s.eps, "momentum": s.momentum,
                                                  "running_mean": np.zeros(shapes[0], self.dtype),
                                                  "running_var": np.ones(shapes[0], self.dtype)}
            for p in layer.params:
                self.param_layer[p] = layer.name
        if self.params:  # keep the same arrays (optimizers hold them): overwrite in place
            for k, v in params.items():
                self.params[k][...] = v
        else:
            self.params = params

    # ------------------------------------------------------------------------------------------- passes
    def check_input(self, x: Any) -> np.ndarray:
        """x as a contiguous array of the network's dtype, refusing wrong shapes and non-numbers."""
        return self._check_input(x)

    def _check_input(self, x: Any) -> np.ndarray:
        x = np.asarray(x)
        if x.dtype.kind not in "biuf":
            raise ValueInputError(f"x must hold numbers, got dtype {x.dtype}")
        if x.shape[1:] != self.input_shape or x.ndim != len(self.input_shape) + 1:
            want = ", ".join(map(str, self.input_shape))
            raise ShapeError(f"x has shape {x.shape} but the network takes (N, {want})")
        if x.shape[0] < 1:
            raise ShapeError("x holds no samples")
        return np.ascontiguousarray(x, dtype=self.dtype)

    def _forward(self, x: np.ndarray, mode: str, seed: int | None, record: bool = False,
                 bn_params: Mapping[str, dict] | None = None) -> tuple[np.ndarray, list, list]:
        """x already checked. Returns (scores, caches, outputs if record)."""
        if mode not in ("train", "eval"):
            raise ValueInputError(f"mode must be 'train' or 'eval', got {mode!r}")
        lmode = "train" if mode == "train" else "test"
        P = self.params
        bnp = self.bn_params if bn_params is None else bn_params
        caches: list = []
        outs: list = []
        out = x
        for layer in self._layers:
            s = layer.spec
            if isinstance(s, Linear):
                out, cache = L.affine_forward(out, P[layer.params[0]], P[layer.params[1]])
            elif isinstance(s, Activation):
                out, cache = _ACT_LAYERS[s.name][0](out)
            elif isinstance(s, Conv2d):
                out, cache = L.conv_forward(out, P[layer.params[0]], P[layer.params[1]], s.stride, s.pad)
            elif isinstance(s, MaxPool):
                out, cache = L.max_pool_forward(out, s.size, s.stride)
            elif isinstance(s, AvgPool):
                out, cache = L.avg_pool_forward(out, s.size, s.stride)
            elif isinstance(s, BatchNorm):
                bp = bnp[layer.name]
                bp["mode"] = lmode
                fwd = L.batchnorm_forward if out.ndim == 2 else L.spatial_batchnorm_forward
                out, cache = fwd(out, P[layer.params[0]], P[layer.params[1]], bp)
            elif isinstance(s, LayerNorm):
                out, cache = L.layernorm_forward(out, P[layer.params[0]], P[layer.params[1]], {"eps": s.eps})
            elif isinstance(s, Dropout):
                dseed = None if seed is None else seed + layer.index
                out, cache = L.dropout_forward(out, {"p": s.p, "mode": lmode, "seed": dseed})
            else:  # Flatten
                cache = out.shape
                out = out.reshape(out.shape[0], -1)
            caches.append(cache)
            if record:
                outs.append(out)
        return out, caches, outs

    def _backward(self, dout: np.ndarray, caches: list) -> dict[str, np.ndarray]:
        return self.backward(dout, caches)[0]

    def backward(self, dout: np.ndarray, caches: list) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """From d(something)/dscores and the caches of forward_with_caches: every parameter's gradient and the
        gradient with respect to the input (what saliency maps and adversarial examples need)."""
        grads: dict[str, np.ndarray] = {}
        for layer, cache in zip(reversed(self._layers), reversed(caches)):
            s = layer.spec
            if isinstance(s, (Linear, Conv2d)):
                dout, dw, db = (L.affine_backward if isinstance(s, Linear) else L.conv_backward)(dout, cache)
                grads[layer.params[0]], grads[layer.params[1]] = dw, db
            elif isinstance(s, Activation):
                dout = _ACT_LAYERS[s.name][1](dout, cache)
            elif isinstance(s, MaxPool):
                dout = L.max_pool_backward(dout, cache)
            elif isinstance(s, AvgPool):
                dout = L.avg_pool_backward(dout, cache)
            elif isinstance(s, BatchNorm):
                bwd = L.batchnorm_backward if len(layer.in_shape) == 1 else L.spatial_batchnorm_backward
                dout, dg, dbeta = bwd(dout, cache)
                grads[layer.params[0]], grads[layer.params[1]] = dg, dbeta
            elif isinstance(s, LayerNorm):
                dout, dg, dbeta = L.layernorm_backward(dout, cache)
                grads[layer.params[0]], grads[layer.params[1]] = dg, dbeta
            elif isinstance(s, Dropout):
                dout = L.dropout_backward(dout, cache)
            else:  # Flatten
                dout = dout.reshape(cache)
        return {k: grads[k] for k in self.params}, dout

    @property
    def layers(self) -> tuple:
        """The built layers in order: each has .spec (the layer spec), .title, .params and .in_shape."""
        return tuple(self._layers)

    def layer_outputs(self, x: Any, mode: str = "eval", seed: int | None = None) -> list[np.ndarray]:
        """Every layer's output for input x, in order (for activation maps and embeddings)."""
        xc = self._check_input(x)
        with np.errstate(over="ignore", invalid="ignore"):
            return self._forward(xc, mode, seed, record=True)[2]

    def forward_with_caches(self, x: Any, mode: str = "eval", seed: int | None = None) -> tuple[np.ndarray, list]:
        """Scores (N, C) and each layer's cache, for backward()."""
        xc = self._check_input(x)
        with np.errstate(over="ignore", invalid="ignore"):
            scores, caches, _ = self._forward(xc, mode, seed)
        return scores, caches

    def forward(self, x: Any, mode: str = "eval", seed: int | None = None) -> np.ndarray:
        """Class scores (N, C). mode 'train' uses batch statistics (and updates the running ones) and drops units;
        'eval' uses the running statistics and no dropout. seed fixes the dropout masks (None: a fresh draw)."""
        x = self._check_input(x)
        if mode == "train" and seed is None:
            seed = self._next_seed()
        with np.errstate(over="ignore", invalid="ignore"):
            scores, _, _ = self._forward(x, mode, seed)
        if not np.all(np.isfinite(scores)):
            self._locate(x, mode, seed, "output")
        return scores

    def predict(self, x: Any) -> np.ndarray:
        """Predicted class per sample (N,) int64, in eval mode."""
        return np.argmax(self.forward(x, "eval"), axis=1).astype(np.int64)

    def _next_seed(self) -> int:
        return int(self._dropout_rng.integers(0, 2**31 - 1000))

    def data_loss(self, scores: np.ndarray, y: Any) -> tuple[float, np.ndarray]:
        """The data loss and d loss / d scores. y: int labels (N,); for 'mse' also float targets (N, C)."""
        if self.loss_kind == "softmax":
            loss, d = L.softmax_loss(scores, y)
        elif self.loss_kind == "svm":
            loss, d = L.svm_loss(scores, y)
        else:
            target = self._mse_target(scores, y)
            diff = scores - target
            loss = np.dot(diff.ravel(), diff.ravel()) / diff.size
            d = (2.0 / diff.size) * diff
        return float(loss), d

    def _mse_target(self, scores: np.ndarray, y: Any) -> np.ndarray:
        y = np.asarray(y)
        if y.shape == scores.shape:
            return y.astype(scores.dtype)
        if y.shape != (scores.shape[0],) or y.dtype.kind not in "iu":
            raise ShapeError(f"mse: y has shape {y.shape}; expected integer labels ({scores.shape[0]},) or targets "
                             f"{scores.shape}")
        if y.size and (y.min() < 0 or y.max() >= scores.shape[1]):
            raise ValueInputError(f"mse: labels must lie in 0..{scores.shape[1] - 1}")
        t = np.zeros_like(scores)
        t[np.arange(y.size), y] = 1.0
        return t

    def reg_loss(self) -> float:
        """reg * sum(w^2) (l2) or reg * sum(|w|) (l1) over the weights."""
        if self.reg == 0.0:
            return 0.0
        total = 0.0
        for k, w in self.params.items():
            if k.endswith(".w"):
                f = w.ravel()
                total += float(np.dot(f, f)) if self.reg_kind == "l2" else float(np.abs(f).sum())
        return self.reg * total

    def loss(self, x: Any, y: Any, mode: str = "train", seed: int | None = None
             ) -> tuple[float, dict[str, np.ndarray]]:
        """(data loss + regulariser, grads) with grads ordered as params. mode as forward(); seed fixes dropout."""
        loss, grads, _ = self.loss_grads_scores(x, y, mode, seed)
        return loss, grads

    def loss_grads_scores(self, x: Any, y: Any, mode: str = "train", seed: int | None = None, what: str = ""
                          ) -> tuple[float, dict[str, np.ndarray], np.ndarray]:
        """loss() that also returns the scores. A non-finite loss or gradient raises NumericError naming the layer
        where it appeared, with the batch-norm running statistics left as they were before the call."""
        x = self._check_input(x)
        if mode == "train" and seed is None:
            seed = self._next_seed()
        bn_before = self._bn_snapshot()
        with np.errstate(over="ignore", invalid="ignore"):  # divergence is reported below, naming the layer
            scores, caches, _ = self._forward(x, mode, seed)
        loss, dscores = self.data_loss(scores, y)
        if self.reg:
            loss += self.reg_loss()
        if not math.isfinite(loss):
            self._restore_bn(bn_before)
            self._locate(x, mode, seed, "output")
            raise NumericError(f"{what}the loss is not finite ({loss}) although every layer's output is")
        with np.errstate(over="ignore", invalid="ignore"):
            grads = self._backward(dscores, caches)
        if self.reg:
            for k, w in self.params.items():
                if k.endswith(".w"):
                    g = grads[k]
                    if self.reg_kind == "l2":
                        g += (2.0 * self.reg) * w
                    else:
                        g += self.reg * np.sign(w)
        if not all(np.all(np.isfinite(g)) for g in grads.values()):
            self._restore_bn(bn_before)
            self.locate_nonfinite_grads(grads)
        return loss, grads, scores

    def _bn_snapshot(self) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
        if not self.bn_params:
            return None
        return {k: (v["running_mean"].copy(), v["running_var"].copy()) for k, v in self.bn_params.items()}

    def _restore_bn(self, snap) -> None:
        if snap:
            for k, (m, v) in snap.items():
                self.bn_params[k]["running_mean"][...] = m
                self.bn_params[k]["running_var"][...] = v

    def _locate(self, x: np.ndarray, mode: str, seed: int | None, what: str) -> None:
        """Re-run forward layer by layer (on copies of the running statistics) and raise NumericError naming the
        first layer with a non-finite parameter or output."""
        for layer in self._layers:
            for p in layer.params:
                if not np.all(np.isfinite(self.params[p])):
                    raise NumericError(f"{layer.title}: non-finite parameter {p} (NaN or infinity); the learning "
                                       f"rate is probably too high")
        bn_copy = {k: {**v, "running_mean": v["running_mean"].copy(), "running_var": v["running_var"].copy()}
                   for k, v in self.bn_params.items()}
        with np.errstate(all="ignore"):
            _, _, outs = self._forward(x, mode, seed, record=True, bn_params=bn_copy)
        for layer, out in zip(self._layers, outs):
            if not np.all(np.isfinite(out)):
                raise NumericError(f"{layer.title}: non-finite {what} (NaN or infinity); the learning rate is "
                                   f"probably too high, or the weights too large")

    def locate_nonfinite_grads(self, grads: Mapping[str, np.ndarray]) -> None:
        """Raise NumericError naming the last layer (the first the backward pass reaches) with a non-finite gradient."""
        for layer in reversed(self._layers):
            for p in layer.params:
                if not np.all(np.isfinite(grads[p])):
                    raise NumericError(f"{layer.title}: non-finite gradient of {p} (NaN or infinity); the learning "
                                       f"rate is probably too high")

    def accuracy(self, x: Any, y: Any, batch_size: int = 1024) -> float:
        y = np.asarray(y)
        correct = 0
        for i in range(0, len(y), batch_size):
            correct += int(np.sum(self.predict(x[i:i + batch_size]) == y[i:i + batch_size]))
        return correct / max(len(y), 1)

    def evaluate(self, x: Any, y: Any, batch_size: int = 1024) -> tuple[float, float]:
        """(loss, accuracy) over a data set in eval mode, in batches; the loss includes the regulariser."""
        x = np.asarray(x)
        y = np.asarray(y)
        if len(x) == 0:
            return float("nan"), float("nan")
        total, correct = 0.0, 0
        for i in range(0, len(x), batch_size):
            xb, yb = x[i:i + batch_size], y[i:i + batch_size]
            scores = self.forward(xb, "eval")
            loss, _ = self.data_loss(scores, yb)
            total += loss * len(xb)
            # soft (N, C) targets: the class with the largest target counts as the label
            labels = yb if yb.ndim == 1 else np.argmax(yb, axis=1)
            correct += int(np.sum(np.argmax(scores, axis=1) == labels))
        return total / len(x) + self.reg_loss(), correct / len(x)

    # ------------------------------------------------------------------------------------------- graph expansion
    @staticmethod
    def graph_name(param: str) -> str:
        """The graph node id of a parameter: 'fc1.w' -> 'fc1_w' (graph names cannot hold dots)."""
        return param.replace(".", "_")

    def to_graph(self, batch_x: Any, batch_y: Any, mode: str = "train", seed: int = 0):
        """The stack as a simulator Graph: the batch as inputs x and y, every parameter a 'param' node (named by
        graph_name), one registered op per layer, the loss op, and the regulariser (an l2/l1 op per weight with
        strength reg, added to the loss). Dropout masks use `seed` as loss(..., seed=seed) does. Batch norm in
        'train' mode is the batchnorm op; in 'eval' mode it is spelled with arithmetic ops and the running
        statistics as constants. Laid out left to right."""
        from simulator.graphs.graph import Graph
        from simulator.graphs.layout import apply_layout

        x = np.asarray(self._check_input(batch_x), dtype=np.float64)
        if mode not in ("train", "eval"):
            raise ValueInputError(f"mode must be 'train' or 'eval', got {mode!r}")
        N = x.shape[0]
        g = Graph()
        g.add_input("x", x)
        cur = "x"

        def op(name: str, opname: str, inputs: Mapping[str, str], attrs: Mapping[str, Any] | None = None) -> str:
            nid = g.add_op(opname, attrs or {}, name=name)
            for port, src in inputs.items():
                g.connect(src, nid, port, check_shapes=False)
            return nid

        for layer in self._layers:
            s = layer.spec
            pn = [self.graph_name(p) for p in layer.params]
            for p, gname in zip(layer.params, pn):
                g.add_input(gname, self.params[p].astype(np.float64), trainable=True)
            if isinstance(s, Linear):
                cur = op(layer.name, "affine", {"x": cur, "w": pn[0], "b": pn[1]})
            elif isinstance(s, Conv2d):
                cur = op(layer.name, "conv2d", {"x": cur, "w": pn[0], "b": pn[1]}, {"stride": s.stride, "pad": s.pad})
            elif isinstance(s, MaxPool):
                cur = op(layer.name, "maxpool2d", {"x": cur}, {"size": s.size, "stride": s.stride})
            elif isinstance(s, AvgPool):
                cur = op(layer.name, "avgpool2d", {"x": cur}, {"size": s.size, "stride": s.stride})
            elif isinstance(s, BatchNorm) and mode == "train":
                cur = op(layer.name, "batchnorm", {"x": cur, "gamma": pn[0], "beta": pn[1]}, {"eps": s.eps})
            elif isinstance(s, BatchNorm):
                bp = self.bn_params[layer.name]
                bshape = (-1,) if len(layer.in_shape) == 1 else (-1, 1, 1)
                mean = np.asarray(bp["running_mean"], np.float64).reshape(bshape)
                inv = 1.0 / np.sqrt(np.asarray(bp["running_var"], np.float64) + s.eps).reshape(bshape)
                g.add_const(mean, name=f"{layer.name}_mean")
                g.add_const(inv, name=f"{layer.name}_inv_std")
                c = op(f"{layer.name}_center", "sub", {"x": cur, "y": f"{layer.name}_mean"})
                c = op(f"{layer.name}_xhat", "mul", {"x": c, "y": f"{layer.name}_inv_std"})
                if len(layer.in_shape) == 3:
                    gm = op(f"{layer.name}_g", "reshape", {"x": pn[0]}, {"shape": bshape})
                    bt = op(f"{layer.name}_b", "reshape", {"x": pn[1]}, {"shape": bshape})
                else:
                    gm, bt = pn
                c = op(f"{layer.name}_scale", "mul", {"x": c, "y": gm})
                cur = op(layer.name, "add", {"x": c, "y": bt})
            elif isinstance(s, LayerNorm):
                cur = op(layer.name, "layernorm", {"x": cur, "gamma": pn[0], "beta": pn[1]}, {"eps": s.eps})
            elif isinstance(s, Dropout):
                cur = op(layer.name, "dropout", {"x": cur},
                         {"p": s.p, "seed": int(seed) + layer.index, "mode": "train" if mode == "train" else "test"})
            elif isinstance(s, Flatten):
                cur = op(layer.name, "reshape", {"x": cur}, {"shape": (N, int(np.prod(layer.in_shape)))})
            else:
                attrs = {"alpha": 0.01} if s.name == "leaky_relu" else {"alpha": 1.0} if s.name == "elu" else {}
                cur = op(layer.name, s.name, {"x": cur}, attrs)
        y = np.asarray(batch_y)
        if self.loss_kind == "mse":
            g.add_input("y", self._mse_target(np.zeros((N, self.num_classes)), y))
            loss = op("loss", "mse", {"pred": cur, "target": "y"})
        else:
            if y.shape != (N,):
                raise ShapeError(f"y has shape {y.shape}; expected ({N},) labels")
            g.add_input("y", y.astype(np.float64))
            loss = op("data_loss" if self.reg else "loss", "softmax_ce" if self.loss_kind == "softmax" else "svm_loss",
                      {"scores": cur, "y": "y"})
        if self.reg:
            weights = [p for p in self.params if p.endswith(".w")]
            for i, p in enumerate(weights):
                r = op(f"reg_{self.graph_name(p)}", self.reg_kind, {"w": self.graph_name(p)}, {"strength": self.reg})
                loss = op("loss" if i == len(weights) - 1 else f"loss_{i + 1}", "add", {"x": loss, "y": r})
        g.set_output(loss)
        g.infer_shapes()
        apply_layout(g)
        return g

    # ------------------------------------------------------------------------------------------- save / load
    def spec_dict(self) -> dict[str, Any]:
        """The architecture as JSON-ready data (what save() writes in its header)."""
        return {"input_shape": list(self.input_shape), "layers": [layer_to_dict(s) for s in self.specs],
                "loss": self.loss_kind, "reg": self.reg, "reg_kind": self.reg_kind, "init": self.init,
                "bias_init": self.bias_init, "seed": self.seed, "dtype": self.dtype.name}

    def save(self, path: str | os.PathLike) -> None:
        """np.savez with a JSON header (format, version, architecture, parameter shapes), the parameters and the
        batch-norm running statistics. No pickles."""
        header = {"format": FORMAT, "version": VERSION, "network": self.spec_dict(),
                  "params": {k: list(v.shape) for k, v in self.params.items()},
                  "buffers": sorted(self.bn_params)}
        arrays = {"header": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)}
        for k, v in self.params.items():
            arrays[f"param/{k}"] = v
        for k, bp in self.bn_params.items():
            arrays[f"buffer/{k}.running_mean"] = bp["running_mean"]
            arrays[f"buffer/{k}.running_var"] = bp["running_var"]
        with open(path, "wb") as f:
            np.savez(f, **arrays)

    @staticmethod
    def _read(path: str | os.PathLike) -> tuple[dict, dict[str, np.ndarray]]:
        try:
            with np.load(path, allow_pickle=False) as z:
                if "header" not in z.files:
                    raise FileFormatError(f"{os.fspath(path)}: not a Backprop Studio weights file (no header)")
                arrays = {k: z[k] for k in z.files}
        except FileFormatError:
            raise
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
            raise FileFormatError(f"{os.fspath(path)}: cannot read weights ({exc})") from None
        try:
            header = json.loads(arrays.pop("header").tobytes().decode())
        except (ValueError, UnicodeDecodeError):
            raise FileFormatError(f"{os.fspath(path)}: the header is not valid JSON") from None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise FileFormatError(f"{os.fspath(path)}: not a Backprop Studio weights file")
        if not isinstance(header.get("version"), int) or header["version"] > VERSION:
            raise FileFormatError(f"{os.fspath(path)}: written by a newer version ({header.get('version')!r})")
        return header, arrays

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Network":
        """A network rebuilt from the file's architecture, with its weights."""
        header, _ = cls._read(path)
        spec = header.get("network")
        try:
            net = cls(tuple(spec["input_shape"]), [layer_from_dict(d) for d in spec["layers"]], loss=spec["loss"],
                      reg=spec["reg"], reg_kind=spec["reg_kind"], init=spec["init"], bias_init=spec["bias_init"],
                      seed=spec["seed"], dtype=np.dtype(spec["dtype"]))
        except FileFormatError:
            raise
        except (KeyError, TypeError, ValueError, StudioError) as exc:
            raise FileFormatError(f"{os.fspath(path)}: bad network description ({exc})") from None
        net.load_weights(path)
        return net

    def load_weights(self, path: str | os.PathLike) -> None:
        """Copy the file's parameters (and running statistics) into this network, in place. ShapeError when the
        file's architecture does not match; FileFormatError for a damaged file. Nothing changes on error."""
        header, arrays = self._read(path)
        new: dict[str, np.ndarray] = {}
        expected = {k: v.shape for k, v in self.params.items()}
        for k, bp in self.bn_params.items():
            expected[f"buffer/{k}.running_mean"] = bp["running_mean"].shape
            expected[f"buffer/{k}.running_var"] = bp["running_var"].shape
        got = {k[len("param/"):] if k.startswith("param/") else k: v for k, v in arrays.items()}
        missing = [k for k in expected if k not in got]
        extra = [k for k in got if k not in expected]
        if missing or extra:
            raise ShapeError(f"{os.fspath(path)}: the weights do not fit this network (missing {missing or 'none'}, "
                             f"unexpected {extra or 'none'})")
        for k, shape in expected.items():
            a = got[k]
            if a.dtype.kind != "f":
                raise FileFormatError(f"{os.fspath(path)}: {k} holds {a.dtype}, not floats")
            if a.shape != shape:
                raise ShapeError(f"{os.fspath(path)}: {k} has shape {a.shape} but this network needs {shape}")
            if not np.all(np.isfinite(a)):
                raise FileFormatError(f"{os.fspath(path)}: {k} contains NaN or infinity")
            new[k] = a
        for k in self.params:
            self.params[k][...] = new[k]
        for k, bp in self.bn_params.items():
            bp["running_mean"][...] = new[f"buffer/{k}.running_mean"]
            bp["running_var"][...] = new[f"buffer/{k}.running_var"]


# ================================================================================================== training

@dataclass(frozen=True)
class StepMetrics:
    """One update: iteration (1-based, over the whole run), epoch (0-based, the one this step belongs to), batch loss
    (regulariser included), batch accuracy (train mode), the learning rate used, per-layer gradient norms."""

    iteration: int
    epoch: int
    loss: float
    accuracy: float
    lr: float
    grad_norms: Mapping[str, float]
    end_of_epoch: bool


@dataclass(frozen=True)
class EpochMetrics:
    """The end of an epoch: full-set loss and accuracy in eval mode (val NaN without validation data)."""

    epoch: int
    iteration: int
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    best_epoch: int
    stopped_early: bool


MAX_TRAINING_STEPS = 10_000_000


class History:
    """Metrics in numpy arrays that grow by doubling (views of the filled part are returned), so plots read them
    directly and a long run costs memory only for the steps it has taken."""

    _START = 4096

    def __init__(self, steps: int, epochs: int, layers: Sequence[str]):
        self._n = 0
        self._e = 0
        cap = max(1, min(steps, self._START))
        self._step = {k: np.full(cap, np.nan) for k in ("loss", "accuracy", "lr")}
        self._norms = np.full((cap, len(layers)), np.nan)
        self.norm_layers = tuple(layers)
        ecap = max(1, min(epochs, self._START))
        self._epoch = {k: np.full(ecap, np.nan) for k in ("train_loss", "train_accuracy", "val_loss",
                                                          "val_accuracy", "iteration")}

    @staticmethod
    def _grown(a: np.ndarray) -> np.ndarray:
        bigger = np.full((2 * a.shape[0],) + a.shape[1:], np.nan)
        bigger[:a.shape[0]] = a
        return bigger

    def add_step(self, m: StepMetrics) -> None:
        i = self._n
        if i == self._norms.shape[0]:
            self._step = {k: self._grown(v) for k, v in self._step.items()}
            self._norms = self._grown(self._norms)
        self._step["loss"][i], self._step["accuracy"][i], self._step["lr"][i] = m.loss, m.accuracy, m.lr
        self._norms[i] = [m.grad_norms[k] for k in self.norm_layers]
        self._n += 1

    def add_epoch(self, m: EpochMetrics) -> None:
        i = self._e
        if i == len(self._epoch["iteration"]):
            self._epoch = {k: self._grown(v) for k, v in self._epoch.items()}
        for k in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "iteration"):
            self._epoch[k][i] = getattr(m, k)
        self._e += 1

    def __getattr__(self, name: str) -> np.ndarray:
        if name.startswith("_"):
            raise AttributeError(name)
        if name in ("loss", "accuracy", "lr"):
            return self._step[name][:self._n]
        if name == "grad_norms":
            return self._norms[:self._n]
        if name in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
            return self._epoch[name][:self._e]
        if name == "epoch_iteration":
            return self._epoch["iteration"][:self._e]
        raise AttributeError(name)

    def __len__(self) -> int:
        return self._n


class Trainer:
    """Mini-batch training of a Network, one update per ``step()``, so a worker thread can pause or stop anywhere.

    data: (X_train, y_train, X_val, y_val) (the validation pair may be None). The optimizer is one of
    simulator.functional.optim.OPTIMIZERS over the network's parameter arrays (updated in place by the fused kernels), built
    with ``lr`` (None: the optimizer's default) and ``optimizer_kwargs``. A ``schedule`` (simulator.functional.schedules)
    sets the rate of every update (its own base_lr; pass ``lr`` too and the schedule is rebased on it). Each epoch
    visits the training set in a fresh seeded permutation. ``patience``: stop once the validation loss (the training
    loss without validation data) has not improved for that many epochs, restoring the best weights.
    ``augment(x_batch, rng) -> x_batch`` is applied to each training batch.
    """

    def __init__(self, network: Network, data: Sequence[Any], optimizer: str = "Adam", lr: float | None = None,
                 schedule: Any = None, batch_size: int = 64, epochs: int = 10, patience: int | None = None,
                 seed: int = 0, augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
                 restore_best: bool = True, **optimizer_kwargs: Any):
        from simulator.functional.optim import make_optimizer
        if len(data) != 4:
            raise ValueInputError("data must be (X_train, y_train, X_val, y_val); the validation pair may be None")
        self.network = network
        X, y, Xv, yv = data
        self.X = np.asarray(X)
        self.y = np.asarray(y)
        if self.X.shape[1:] != network.input_shape or self.X.shape[0] != self.y.shape[0] or len(self.X) == 0:
            raise ShapeError(f"training data X {self.X.shape} / y {self.y.shape} do not fit the network's input "
                             f"(N, {', '.join(map(str, network.input_shape))}) with one label per sample")
        self.Xv = None if Xv is None else np.asarray(Xv)
        self.yv = None if yv is None else np.asarray(yv)
        if self.Xv is not None and (self.yv is None or self.Xv.shape[1:] != network.input_shape
                                    or len(self.Xv) != len(self.yv)):
            raise ShapeError("validation data do not fit the network's input or have no matching labels")
        self.batch_size = _posint("batch_size", batch_size)
        self.epochs = _posint("epochs", epochs)
        self.patience = None if patience is None else _posint("patience", patience)
        self.seed = _posint("seed", seed, 0)
        self.augment = augment
        self.restore_best = restore_best
        self.optimizer_name = optimizer
        kwargs = dict(optimizer_kwargs)
        if lr is not None:
            kwargs["lr"] = lr
        self.schedule = schedule
        if schedule is not None and lr is not None:
            self.schedule = schedule.with_base(lr)
        names = list(network.params)
        self.param_names = names
        try:
            self.optimizer = make_optimizer(optimizer, [network.params[k] for k in names], **kwargs)
        except TypeError as exc:
            raise ValueInputError(f"optimizer {optimizer}: {exc}") from None
        self.optimizer_kwargs = dict(self.optimizer.hyperparameters())
        self._rng = np.random.default_rng([self.seed, 2])
        self._aug_rng = np.random.default_rng([self.seed, 3])
        # A last mini-batch of a single example joins the one before it: batch norm needs two examples.
        n = len(self.X)
        self.iters_per_epoch = max(1, -(-n // self.batch_size) - (1 if n % self.batch_size == 1 and n > 1 else 0))
        self.total_steps = self.iters_per_epoch * self.epochs
        if self.total_steps > MAX_TRAINING_STEPS:
            raise ValueInputError(f"{self.total_steps:,} training steps ({self.epochs} epochs of "
                                  f"{self.iters_per_epoch} batches) is more than {MAX_TRAINING_STEPS:,}: use fewer "
                                  f"epochs or larger batches")
        self._norm_layers = [l.name for l in network._layers if l.params]
        self._norm_groups = [(l.name, l.params) for l in network._layers if l.params]
        self.history = History(self.total_steps, self.epochs, self._norm_layers)
        self.iteration = 0
        self.epoch = 0
        self._batch = 0
        self._order = self._rng.permutation(len(self.X))
        self.best_loss = math.inf
        self.best_epoch = -1
        self._best_params: dict[str, np.ndarray] | None = None
        self._best_bn: Any = None
        self.stopped_early = False
        self._pending_eval = False

    @property
    def done(self) -> bool:
        return self.stopped_early or (self.epoch >= self.epochs and not self._pending_eval)

    @property
    def lr(self) -> float:
        """The rate of the next update."""
        return self.schedule.lr_at(self.iteration) if self.schedule is not None else self.optimizer.lr

    def step(self) -> StepMetrics:
        """One mini-batch update. After the epoch's last batch, end_of_epoch is True and evaluate() is due."""
        if self._pending_eval:  # the caller skipped evaluate(): the epoch's metrics still belong in the history
            self.evaluate()
        if self.done:
            raise ValueInputError("training is finished: no steps left")
        bs = self.batch_size
        last = self._batch == self.iters_per_epoch - 1
        idx = self._order[self._batch * bs:len(self._order) if last else (self._batch + 1) * bs]
        xb, yb = self.X[idx], self.y[idx]
        if self.augment is not None:
            xb = self.augment(xb, self._aug_rng)
        net = self.network
        loss, grads, scores = net.loss_grads_scores(xb, yb, "train", what=f"iteration {self.iteration + 1}: ")
        acc = float(np.mean(np.argmax(scores, axis=1) == yb)) if yb.ndim == 1 else float("nan")
        norms = {}
        for name, ps in self._norm_groups:
            sq = 0.0
            for p in ps:
                f = grads[p].ravel()
                sq += float(np.dot(f, f))
            norms[name] = math.sqrt(sq)
        lr = self.schedule.apply(self.optimizer, self.iteration) if self.schedule is not None else self.optimizer.lr
        self.optimizer.step([grads[k] for k in self.param_names])
        self.iteration += 1
        self._batch += 1
        end = self._batch >= self.iters_per_epoch
        m = StepMetrics(self.iteration, self.epoch, float(loss), acc, float(lr), norms, end)
        self.history.add_step(m)
        if end:
            self._batch = 0
            self._order = self._rng.permutation(len(self.X))
            self.epoch += 1
            self._pending_eval = True
        return m

    def evaluate(self) -> EpochMetrics:
        """Full-set train and validation loss and accuracy (eval mode) for the epoch just finished; updates early
        stopping. Called by run() (and by step() if it was skipped)."""
        tl, ta = self.network.evaluate(self.X, self.y)
        if self.Xv is not None and len(self.Xv):
            vl, va = self.network.evaluate(self.Xv, self.yv)
            watch = vl
        else:
            vl, va = float("nan"), float("nan")
            watch = tl
        epoch = self.epoch - 1
        if self._pending_eval:
            self._pending_eval = False
            if watch < self.best_loss:
                self.best_loss, self.best_epoch = watch, epoch
                if self.patience is not None and self.restore_best:
                    self._best_params = {k: v.copy() for k, v in self.network.params.items()}
                    self._best_bn = self.network._bn_snapshot()
            elif self.patience is not None and epoch - self.best_epoch >= self.patience:
                self.stopped_early = True
                if self.restore_best and self._best_params is not None:
                    for k, v in self._best_params.items():
                        self.network.params[k][...] = v
                    self.network._restore_bn(self._best_bn)
            m = EpochMetrics(epoch, self.iteration, tl, ta, vl, va, self.best_epoch, self.stopped_early)
            self.history.add_epoch(m)
            return m
        return EpochMetrics(epoch, self.iteration, tl, ta, vl, va, self.best_epoch, self.stopped_early)

    def __iter__(self) -> Iterator[StepMetrics | EpochMetrics]:
        """Yields a StepMetrics per update and an EpochMetrics after each epoch, until done."""
        while not self.done:
            m = self.step()
            yield m
            if m.end_of_epoch:
                yield self.evaluate()

    def run(self, callback: Callable[[StepMetrics | EpochMetrics], Any] | None = None,
            should_stop: Callable[[], bool] | None = None) -> History:
        """Train until done or should_stop() returns True (checked before every step); returns the history."""
        for m in self:
            if callback is not None:
                callback(m)
            if should_stop is not None and should_stop():
                break
        return self.history

    def config(self) -> dict[str, Any]:
        """What export_torch needs: optimizer name and hyperparameters, schedule, batch size, epochs, seed."""
        return {"optimizer": self.optimizer_name, "hyperparameters": dict(self.optimizer_kwargs),
                "schedule": self.schedule, "batch_size": self.batch_size, "epochs": self.epochs, "seed": self.seed}
