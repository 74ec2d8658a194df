"""Network: a feed-forward stack of layer records (simulator/nn/layers.py) with its parameters, buffers and passes.

A network is an input shape (without the batch axis: (2,) for points, (1, 8, 8) for digits) and a list of frozen layer
specs. Shapes are worked out from the specs alone (``describe()``), so an impossible stack is refused before any data
is seen, and so is one with more than MAX_PARAMS parameters (before anything is allocated). Linear layers need 1-D
inputs: an image must pass through ``Flatten()`` first (no silent auto-flatten, so the learner sees where the
(C, H, W) -> (D,) view happens, as in PyTorch's nn.Sequential).

Weights follow cs231n's layouts: Linear w (D, M), b (M,); Conv2d w (F, C, k, k), b (F,); BatchNorm/LayerNorm gamma,
beta. The loss is the data loss (softmax cross-entropy, multiclass SVM, or MSE against one-hot targets) plus the
regulariser ``reg * sum(w**2)`` (L2) or ``reg * sum(|w|)`` (L1) over the weights ``*.w`` (not biases or norm
parameters), cs231n style. Decoupled weight decay is the AdamW optimizer's ``weight_decay``.

A lab may also train with a loss the network builder does not offer (LAB_LOSSES, not among Objective's choices):
"infonce", SimCLR's contrastive InfoNCE / NT-Xent with ``temperature`` τ over the output embeddings. Its targets are
image ids, one per row: the two rows showing the same image (its two augmented views) share an id
(``functional.layers.partners_from_ids``), and its accuracy is the top-1 contrastive accuracy (the partner is the
most similar other row: ``batch_accuracy``).

Initialisation (per layer, or the network's default), for a weight with fan_in inputs (D for Linear, C*k*k for Conv2d):
zeros; constant (``init_value``); gaussian, std 0.01; xavier, std 1/sqrt(fan_in); kaiming, std sqrt(2/fan_in). Biases
start at ``bias_init``. The draws come from one numpy Generator seeded with ``seed`` in float64 (then cast), so a seed
gives the same network in float32 and float64.

State, in PyTorch's words: ``parameters()`` (the live arrays, in order: what optimizers update in place) and
``named_parameters()``; ``buffers()`` / ``named_buffers()`` (batch norm's running_mean and running_var, which train
mode updates); ``state_dict()`` (copies of both, keyed "fc1.w", "bn1.running_var", ...) and
``load_state_dict(d, strict=True)``; ``copy()`` and ``astype(dtype)`` (new networks). ``params`` is the name -> array
dict behind parameters().

Freezing (transfer learning): ``freeze(names)`` / ``unfreeze()`` / ``set_frozen(names)`` and the ``frozen`` set of
layer names. A frozen layer's parameters get no gradient (backward skips its weight-gradient work and, in training,
everything below the lowest trainable layer) and no update (optimizers are given ``trainable_parameters()``);
freezing every layer with parameters is refused. A frozen layer is completely fixed: one with buffers (batch norm, a
residual block with batch norm) runs its eval-mode forward in training too, so its running statistics never change and
the gradient it passes down is the eval-mode one (torch: ``requires_grad_(False)`` and ``.eval()`` on that module; a
frozen residual block's stochastic depth is then off as well). ``copy()``/``astype()`` keep the frozen set;
``state_dict()`` does not hold it (as torch's requires_grad is not in its state_dict). ``check_frozen`` and
``Network.layer_stack`` validate a frozen set against a stack's shapes without building the network.

The layer records live in simulator.nn.layers and are re-exported here (a network is built from them); training
lives in simulator.nn.trainer.
"""
from __future__ import annotations

import math
import numbers
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from simulator.core.errors import NumericError, ShapeError, ValueInputError
from simulator.core.params import Settings, check_int, check_real, param, params_of
from simulator.functional import layers as L
from simulator.nn.layers import (
    ACTIVATIONS,
    INITS,
    LAYER_KINDS,
    Activation,
    AvgPool,
    BatchNorm,
    BuiltLayer,
    Conv2d,
    Dropout,
    Flatten,
    GraphContext,
    LayerNorm,
    LayerSpec,
    Linear,
    MaxPool,
    init_std,
    layer_from_dict,
    layer_to_dict,
    shape_str,
)

__all__ = [
    "ACTIVATIONS",
    "INITS",
    "LAYER_KINDS",
    "LAB_LOSSES",
    "LOSSES",
    "Objective",
    "MAX_PARAMS",
    "Activation",
    "AvgPool",
    "BatchNorm",
    "BuiltLayer",
    "Conv2d",
    "Dropout",
    "Flatten",
    "LayerNorm",
    "LayerRow",
    "LayerSpec",
    "Linear",
    "LoadResult",
    "MaxPool",
    "Network",
    "check_frozen",
    "layer_from_dict",
    "layer_names",
    "layer_to_dict",
]

LOSSES = ("softmax", "svm", "mse")
LAB_LOSSES = ("infonce",)     # losses labs set on their networks; the builder's Objective does not offer them
# eval draw d runs with seed d * EVAL_DRAW_STRIDE (each layer adds its index, so layers draw different regions)
EVAL_DRAW_STRIDE = 1000
REG_KINDS = ("l2", "l1")


@dataclass(frozen=True)
class Objective(Settings):
    """What a network is trained to minimise and how its weights start: the settings the network builder shows
    beside the layer stack (``Network(..., **objective.as_dict())``)."""

    init: str = param("kaiming", choices=INITS, choice_labels=("zeros", "constant", "gaussian 0.01", "xavier",
                                                                "kaiming"),
                      label="initialisation",
                      doc="The default initialisation of every Linear/Conv2d weight (a layer may override it).\n"
                          "gaussian: std 0.01 · kaiming: std √(2/fan_in) (PyTorch's kaiming_normal_, ReLU gain)\n"
                          "xavier: std 1/√fan_in, the cs231n / LeCun form; PyTorch's xavier_normal_ uses "
                          "√(2/(fan_in + fan_out)) instead, so the two differ unless fan_in = fan_out.")
    loss: str = param("softmax", choices=LOSSES, choice_labels=("softmax cross-entropy", "multiclass SVM",
                                                                 "MSE (one-hot)"), label="loss")
    reg: float = param(0.0, low=0.0, high=10.0, log=True, zero_off=True, label="regularisation λ",
                       doc="λ in λ·Σw² (L2) or λ·Σ|w| (L1) over the weights")
    reg_kind: str = param("l2", choices=REG_KINDS, choice_labels=("L2", "L1"), label="penalty",
                          doc="L2 (weight decay) spreads the weights; L1 drives many of them to exactly 0")
    label_smoothing: float = param(0.0, low=0.0, high=1.0, high_open=True, decimals=2, label="label smoothing ε",
                                   doc="Softmax cross-entropy against a smoothed target: the correct class gets "
                                       "1 − (K−1)/K·ε, every other class ε/K (PyTorch's label_smoothing). The loss "
                                       "can then no longer reach 0: its floor is the target's entropy.")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.label_smoothing and self.loss != "softmax":
            raise ValueInputError(f"label smoothing applies to the softmax cross-entropy loss; the "
                                  f"{self.loss_label} loss takes hard labels: set label smoothing ε to 0 or choose "
                                  f"softmax cross-entropy")

    @property
    def loss_label(self) -> str:
        return next(p for p in params_of(Objective) if p.name == "loss").choice_label(self.loss)
# Parameters and buffers of one network, all layers together: what the builder accepts and a weights file may hold.
MAX_PARAMS = 20_000_000

@dataclass(frozen=True)
class LayerRow:
    """One row of describe(): index (1-based), parameter prefix name, label, output shape (no batch axis), params."""

    index: int
    name: str
    label: str
    output_shape: tuple[int, ...]
    params: int


class LoadResult(NamedTuple):
    """What load_state_dict(strict=False) left out: keys the network has but the state lacks, keys the state has
    but the network lacks, and keys whose shapes differ (PyTorch's _IncompatibleKeys, plus the shape mismatches)."""

    missing_keys: list[str]
    unexpected_keys: list[str]
    mismatched_keys: list[str]


def layer_names(specs: Sequence[LayerSpec]) -> list[str]:
    """The layer names of a stack ("fc1", "relu1", "fc2", ...): each record's prefix numbered by kind, from the
    records alone (no shapes)."""
    counts: dict[str, int] = {}
    out = []
    for spec in specs:
        prefix = spec.prefix()
        counts[prefix] = counts.get(prefix, 0) + 1
        out.append(f"{prefix}{counts[prefix]}")
    return out


def check_frozen(layers: Sequence[BuiltLayer], names: Any, whole: bool = True) -> frozenset[str]:
    """``names`` (layer names, or one name) as the frozen set of the stack ``layers`` (Network.layer_stack or
    Network.layers): each must name a layer with parameters, and (``whole``) at least one layer with parameters must
    stay trainable. ValueInputError otherwise. What Network.set_frozen and the playground's Freeze panel check."""
    if isinstance(names, str):
        names = (names,)
    try:
        names = frozenset(map(str, names))
    except TypeError:
        raise ValueInputError(f"layers to freeze must be layer names such as 'fc1', got {names!r}") from None
    by_name = {l.name: l for l in layers}
    for n in sorted(names):
        if n not in by_name:
            raise ValueInputError(f"there is no layer {n!r} to freeze; the layers are "
                                  f"{', '.join(by_name)}")
        if not by_name[n].params:
            raise ValueInputError(f"{by_name[n].title} has no parameters to freeze")
    with_params = {l.name for l in layers if l.params}
    if whole and with_params and with_params <= names:
        raise ValueInputError("freezing every layer leaves nothing to train: keep at least one layer with "
                              "parameters unfrozen (a linear probe trains only the last Linear)")
    return names


class Network:
    """A feed-forward stack. ``params``: ordered name -> ndarray ("fc1.w", "conv1.b", "bn1.gamma", ...), updated in
    place by optimizers. ``forward``/``loss`` run simulator/functional/layers.py (the Numba kernels) in ``dtype``."""

    def __init__(self, input_shape: Sequence[int], layers: Sequence[LayerSpec], loss: str = "softmax",
                 reg: float = 0.0, reg_kind: str = "l2", init: str = "kaiming", bias_init: float = 0.0,
                 seed: int = 0, dtype: Any = np.float32, label_smoothing: float = 0.0, temperature: float = 0.5):
        if isinstance(input_shape, numbers.Integral):
            input_shape = (int(input_shape),)
        try:
            self.input_shape = tuple(check_int("input_shape entries", s, 1) for s in input_shape)
        except TypeError:
            raise ValueInputError(f"input_shape must be a tuple of sizes, got {input_shape!r}") from None
        if len(self.input_shape) not in (1, 3):
            raise ShapeError(f"input_shape must be (D,) for vectors or (C, H, W) for images, got {self.input_shape}")
        self.specs: tuple[LayerSpec, ...] = tuple(layers)
        for i, s in enumerate(self.specs):
            if not isinstance(s, LayerSpec):
                raise ValueInputError(f"layer {i + 1} is not a layer spec: {s!r}")
        lab_loss = isinstance(loss, str) and loss in LAB_LOSSES
        if lab_loss and label_smoothing:
            raise ValueInputError(f"label smoothing applies to the softmax cross-entropy loss, not to {loss}: set "
                                  f"label smoothing ε to 0")
        # a lab's loss is checked here; the rest of the objective by its declaration
        objective = Objective(init=init, loss="softmax" if lab_loss else loss, reg=reg, reg_kind=reg_kind,
                              label_smoothing=label_smoothing)
        self.label_smoothing = objective.label_smoothing
        self.loss_kind, self.reg, self.reg_kind, self.init = (loss if lab_loss else objective.loss, objective.reg,
                                                              objective.reg_kind, objective.init)
        self.temperature = check_real("temperature τ", temperature, 0.0, low_open=True)
        self.bias_init = check_real("bias_init", bias_init)
        self.seed = check_int("seed", seed, 0)
        try:
            dt = np.dtype(dtype)
        except TypeError:
            dt = None
        if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ValueInputError(f"dtype must be float32 or float64, got {dtype!r}")
        self.dtype = dt
        self._layers = self.layer_stack(self.input_shape, self.specs, self.loss_kind)
        self.num_classes = self._layers[-1].out_shape[0] if self._layers else self.input_shape[0]
        self.param_layer: dict[str, str] = {p: l.name for l in self._layers for p in l.params}
        self._reg_names = [f"{l.name}.{k}" for l in self._layers for k in l.spec.REGULARISED
                           if f"{l.name}.{k}" in l.params]   # a residual block names the weights it may have
        # per layer: (spec, parameter names, {buffer suffix: full name} or None, index): the passes' plan
        self._random = any(l.spec.seeded() for l in self._layers)   # draw dropout seeds only when they are used
        # eval-mode predictions average this many seeded passes (fractional max pooling's region draws)
        self._eval_draws = max((l.spec.eval_draws() for l in self._layers), default=1)
        # a name is "<layer>.<suffix>", the suffix nested inside a residual block ("res1.bn1.running_var")
        self._plan = [(l.spec, l.params, {b.split(".", 1)[1]: b for b in l.buffers} or None, l.index)
                      for l in self._layers]
        self.params: dict[str, np.ndarray] = {}
        self._buffers: dict[str, np.ndarray] = {}
        self.reset_parameters(self.seed)
        self._dropout_rng = np.random.default_rng([self.seed, 1])
        self._frozen: frozenset[str] = frozenset()
        self._set_frozen_plan()

    # ------------------------------------------------------------------------------------------- shapes, no data
    @staticmethod
    def layer_stack(input_shape: tuple[int, ...], specs: Sequence[LayerSpec], loss: str = "softmax"
                    ) -> list[BuiltLayer]:
        """The built layers of a stack (names, shapes, parameter and buffer names) from the records' shapes alone:
        nothing is allocated, so a view may ask on every edit. Raises ShapeError / ValueInputError as the constructor
        does for an impossible stack. ``input_shape`` without the batch axis, already checked."""
        shape = tuple(input_shape)
        out: list[BuiltLayer] = []
        total = 0
        for i, (spec, name) in enumerate(zip(specs, layer_names(specs)), start=1):
            where = f"layer {i} ({spec.label()})"
            try:
                new = tuple(spec.output_shape(shape))
            except ShapeError as exc:
                raise ShapeError(f"{where}: {exc}") from None
            pshapes, bshapes = spec.param_shapes(shape), spec.buffer_shapes(shape)
            count = sum(math.prod(s) for s in (*pshapes.values(), *bshapes.values()))
            total += count
            if total > MAX_PARAMS:  # refused before anything is allocated
                raise ValueInputError(f"{where}: its {count:,} parameters bring the network to {total:,}, more than "
                                      f"the {MAX_PARAMS:,} the studio trains; use fewer units or filters")
            out.append(BuiltLayer(i, name, spec, shape, new, tuple(f"{name}.{k}" for k in pshapes),
                                  tuple(f"{name}.{k}" for k in bshapes)))
            shape = new
        if len(shape) != 1:
            raise ShapeError(f"the last layer gives shape {shape_str(shape)}; the loss needs class scores (C,): "
                             f"end with Flatten() and Linear(C)")
        if loss in ("softmax", "svm") and shape[0] < 2:
            raise ShapeError(f"the {loss} loss needs at least 2 class scores, the last layer gives "
                             f"{shape[0]}")
        return out

    def describe(self) -> list[LayerRow]:
        """Per-layer rows (index, name, label, output shape without the batch axis, parameter count)."""
        return [LayerRow(l.index, l.name, l.spec.label(), l.out_shape,
                         sum(math.prod(s) for s in l.spec.param_shapes(l.in_shape).values())) for l in self._layers]

    @property
    def num_params(self) -> int:
        return sum(r.params for r in self.describe())

    @property
    def layer_names(self) -> list[str]:
        return [l.name for l in self._layers]

    @property
    def layers(self) -> tuple[BuiltLayer, ...]:
        """The built layers in order: each has .index, .name, .spec (the layer record), .title, .in_shape,
        .out_shape, .params and .buffers (full names)."""
        return tuple(self._layers)

    def __repr__(self) -> str:
        return (f"Network({self.input_shape} -> " + " -> ".join(l.spec.label() for l in self._layers)
                + f", loss={self.loss_kind!r}, {self.num_params} params)")

    def config(self) -> dict[str, Any]:
        """The constructor's keyword arguments besides the input shape and layers (loss, reg, init, seed, dtype)."""
        return {"loss": self.loss_kind, "reg": self.reg, "reg_kind": self.reg_kind, "init": self.init,
                "bias_init": self.bias_init, "seed": self.seed, "dtype": self.dtype,
                "label_smoothing": self.label_smoothing, "temperature": self.temperature}

    # ------------------------------------------------------------------------------------------- initialisation
    init_std = staticmethod(init_std)

    def reset_parameters(self, seed: int | None = None) -> None:
        """Fresh weights from `seed` (default: the network's), fresh batch-norm running statistics."""
        rng = np.random.default_rng(self.seed if seed is None else seed)
        params: dict[str, np.ndarray] = {}
        buffers: dict[str, np.ndarray] = {}
        for layer in self._layers:
            s = layer.spec
            for k, v in s.init_params(layer.in_shape, rng, self.init, self.bias_init, self.dtype).items():
                params[f"{layer.name}.{k}"] = v
            for k, v in s.init_buffers(layer.in_shape, self.dtype).items():
                buffers[f"{layer.name}.{k}"] = v
        if self.params:  # keep the same arrays (optimizers hold them): overwrite in place
            for k, v in params.items():
                self.params[k][...] = v
            for k, v in buffers.items():
                self._buffers[k][...] = v
        else:
            self.params, self._buffers = params, buffers

    # ------------------------------------------------------------------------------------------- state
    def parameters(self) -> list[np.ndarray]:
        """The parameter arrays in order (live: optimizers update them in place), as torch's Module.parameters()."""
        return list(self.params.values())

    def named_parameters(self) -> Iterator[tuple[str, np.ndarray]]:
        """(name, live array) pairs in order: ("fc1.w", ...), ("fc1.b", ...), ..."""
        return iter(self.params.items())

    def buffers(self) -> list[np.ndarray]:
        """The buffer arrays in order (batch norm's running_mean and running_var; live, train mode updates them)."""
        return list(self._buffers.values())

    def named_buffers(self) -> Iterator[tuple[str, np.ndarray]]:
        """(name, live array) pairs: ("bn1.running_mean", ...), ("bn1.running_var", ...), ..."""
        return iter(self._buffers.items())

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every parameter and buffer, keyed by name, layer by layer (parameters before buffers within a
        layer, as PyTorch orders them). Unlike torch's, the arrays are copies: a snapshot stays as it was while
        training goes on."""
        out: dict[str, np.ndarray] = {}
        for layer in self._layers:
            for k in layer.params:
                out[k] = self.params[k].copy()
            for k in layer.buffers:
                out[k] = self._buffers[k].copy()
        return out

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> LoadResult:
        """Copy values into the parameters and buffers in place (the arrays optimizers hold stay the same).

        strict: every key must be present, none unexpected, every shape equal (ShapeError naming the key) and every
        value finite, running variances >= 0 (ValueInputError naming the key); nothing changes unless all is well.
        Not strict: what matches by name and shape is loaded (still checked), the rest reported in the result."""
        if not isinstance(state, Mapping):
            raise ValueInputError(f"load_state_dict needs a mapping of name -> array, got {type(state).__name__}")
        expected = {**{k: v.shape for k, v in self.params.items()}, **{k: v.shape for k, v in self._buffers.items()}}
        missing = [k for k in expected if k not in state]
        unexpected = [str(k) for k in state if k not in expected]
        if strict and (missing or unexpected):
            raise ValueInputError(f"the state does not fit this network: missing {', '.join(missing) or 'none'}; "
                                  f"unexpected {', '.join(unexpected[:20]) or 'none'}")
        new: dict[str, np.ndarray] = {}
        mismatched: list[str] = []
        for k, shape in expected.items():
            if k not in state:
                continue
            a = np.asarray(state[k])
            if a.shape != shape:
                if strict:
                    raise ShapeError(f"{k} has shape {a.shape} but this network needs {shape}")
                mismatched.append(k)
                continue
            new[k] = self._checked_value(k, a)
        for k, v in new.items():
            (self.params[k] if k in self.params else self._buffers[k])[...] = v
        return LoadResult(missing, unexpected, mismatched)

    def _checked_value(self, key: str, a: np.ndarray) -> np.ndarray:
        if a.dtype.kind not in "biuf":
            raise ValueInputError(f"{key} holds {a.dtype}, not numbers")
        if not np.all(np.isfinite(a)):
            raise ValueInputError(f"{key} contains NaN or infinity")
        layer = self._layers[self.layer_names.index(key.split(".", 1)[0])]
        why = layer.spec.check_buffer(key.split(".", 1)[1], a) if key in self._buffers else None
        if why:
            raise ValueInputError(f"{key}: {why}")
        return a

    def copy(self) -> Network:
        """A new network with the same architecture, weights and buffers (and dtype)."""
        return self.astype(self.dtype)

    def astype(self, dtype: Any) -> Network:
        """A new network in `dtype` (float32 or float64) with this one's weights and buffers cast to it; this one is
        unchanged (torch's Module.to(dtype) converts in place; a copy keeps the arrays optimizers hold intact)."""
        net = Network(self.input_shape, self.specs, **{**self.config(), "dtype": dtype})
        net.load_state_dict(self.state_dict())
        if self._frozen:
            net.set_frozen(self._frozen)
        return net

    # ------------------------------------------------------------------------------------------- passes
    def check_input(self, x: Any) -> np.ndarray:
        """x as a contiguous array of the network's dtype, refusing wrong shapes, non-numbers and NaN or infinity
        (ValueInputError: a NaN input would otherwise come out as a confident prediction)."""
        x = np.asarray(x)
        if x.dtype.kind not in "biuf":
            raise ValueInputError(f"x must hold numbers, got dtype {x.dtype}")
        if x.shape[1:] != self.input_shape or x.ndim != len(self.input_shape) + 1:
            want = ", ".join(map(str, self.input_shape))
            raise ShapeError(f"x has shape {x.shape} but the network takes (N, {want})")
        if x.shape[0] < 1:
            raise ShapeError("x holds no samples")
        x = np.ascontiguousarray(x, dtype=self.dtype)
        if x.dtype.kind == "f" and not np.isfinite(x).all():
            bad = np.argwhere(~np.isfinite(x))[0]
            raise ValueInputError(f"x holds NaN or infinity (sample {bad[0]}, value {x[tuple(bad)]}); clean or drop "
                                  f"such samples first")
        return x

    def _forward(self, x: np.ndarray, mode: str, seed: int | None, record: bool = False,
                 buffers: Mapping[str, np.ndarray] | None = None) -> tuple[np.ndarray, list, list]:
        """x already checked. Returns (scores, caches, outputs if record)."""
        if mode != "train" and mode != "eval":
            raise ValueInputError(f"mode must be 'train' or 'eval', got {mode!r}")
        train = mode == "train"
        P = self.params
        B = self._buffers if buffers is None else buffers
        caches: list = []
        outs: list = []
        out = x
        for (spec, names, bufs, index), fixed in zip(self._plan, self._plan_fixed):
            p = [P[n] for n in names]
            b = {k: B[full] for k, full in bufs.items()} if bufs else None
            # a frozen layer with buffers runs its eval-mode forward in training too: its statistics stay fixed
            out, cache = spec.forward(out, p, b, train and not fixed, None if seed is None else seed + index)
            caches.append(cache)
            if record:
                outs.append(out)
        return out, caches, outs

    def backward(self, dout: np.ndarray, caches: list, input_grad: bool = True
                 ) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
        """From d(something)/dscores (N, C) and the caches of forward_with_caches: the gradient of every trainable
        parameter (ordered as params; frozen layers' parameters have none) and the gradient with respect to the input
        (what saliency maps and adversarial examples need).

        A frozen layer passes the gradient through (its ``backward_input``: Linear skips x.T @ dout) without its
        weight-gradient work. ``input_grad=False`` (training) also stops below the lowest layer that trains: the
        layers under it need no gradient at all, and the input gradient returned is None."""
        dout = np.ascontiguousarray(dout, dtype=self.dtype)
        if dout.ndim != 2 or dout.shape[1] != self.num_classes:
            raise ShapeError(f"dout has shape {dout.shape}; expected (N, {self.num_classes}) like the scores")
        grads: dict[str, np.ndarray] = {}
        stop = 0 if input_grad else self._lowest_trainable
        for k in range(len(self._plan) - 1, stop - 1, -1):
            spec, names, _, _ = self._plan[k]
            if self._plan_frozen[k]:
                dout = spec.backward_input(dout, caches[k])
                continue
            dout, g = spec.backward(dout, caches[k])
            for n, gi in zip(names, g):
                grads[n] = gi
        return {k: grads[k] for k in self._trainable_names}, (dout if stop == 0 else None)

    # ------------------------------------------------------------------------------------------- freezing
    @property
    def frozen(self) -> frozenset[str]:
        """The names of the frozen layers ("fc1", "conv1"): their parameters get no gradient and no update."""
        return self._frozen

    def freeze(self, names: Any) -> None:
        """Freeze the layers ``names`` (layer names as in layer_names, or one name) in addition to those frozen
        already (torch's ``requires_grad_(False)`` on a module's parameters). Only layers with parameters can be
        frozen; at least one such layer must stay trainable (ValueInputError otherwise; nothing changes then)."""
        self.set_frozen(self._frozen | self._frozen_names(names))

    def unfreeze(self, names: Any = None) -> None:
        """Let the layers ``names`` (default: every layer) train again."""
        self.set_frozen(frozenset() if names is None else self._frozen - self._frozen_names(names))

    def set_frozen(self, names: Any) -> None:
        """Exactly the layers ``names`` frozen (an empty collection: every layer trains)."""
        self._frozen = check_frozen(self._layers, names)
        self._set_frozen_plan()

    def _frozen_names(self, names: Any) -> frozenset[str]:
        return check_frozen(self._layers, names, whole=False)

    def _set_frozen_plan(self) -> None:
        """What the passes and optimizers read: per layer whether it is frozen and whether it runs in eval mode in
        training (frozen with buffers), the trainable parameter names, the regularised ones among them, and the lowest
        layer a training backward pass must reach."""
        self._plan_frozen = [l.name in self._frozen for l in self._layers]
        self._plan_fixed = [l.name in self._frozen and bool(l.buffers) for l in self._layers]
        self._trainable_names = [p for l in self._layers if l.name not in self._frozen for p in l.params]
        trainable = set(self._trainable_names)
        self._reg_trainable = [k for k in self._reg_names if k in trainable]
        self._lowest_trainable = next((k for k, l in enumerate(self._layers)
                                       if l.params and l.name not in self._frozen), len(self._layers))

    @property
    def trainable_names(self) -> list[str]:
        """The names of the parameters that train (every parameter unless some layers are frozen), in order."""
        return list(self._trainable_names)

    def trainable_parameters(self) -> list[np.ndarray]:
        """The live arrays of the parameters that train: what an optimizer is given."""
        return [self.params[k] for k in self._trainable_names]

    def layer_outputs(self, x: Any, mode: str = "eval", seed: int | None = None) -> list[np.ndarray]:
        """Every layer's output for input x, in order (for activation maps and embeddings)."""
        xc = self.check_input(x)
        with np.errstate(over="ignore", invalid="ignore"):
            return self._forward(xc, mode, seed, record=True)[2]

    def forward_with_caches(self, x: Any, mode: str = "eval", seed: int | None = None) -> tuple[np.ndarray, list]:
        """Scores (N, C) and each layer's cache, for backward()."""
        xc = self.check_input(x)
        with np.errstate(over="ignore", invalid="ignore"):
            scores, caches, _ = self._forward(xc, mode, seed)
        return scores, caches

    def forward(self, x: Any, mode: str = "eval", seed: int | None = None) -> np.ndarray:
        """Class scores (N, C). mode 'train' uses batch statistics (and updates the running ones) and drops units;
        'eval' uses the running statistics and no dropout. seed fixes the dropout masks (None: a fresh draw).
        Eval mode with seed None averages the scores of eval_draws passes with the seeds 0, EVAL_DRAW_STRIDE, ...
        when a layer asks for it (fractional max pooling: the lecture's test-time averaging over region draws);
        an eval seed picks one such pass (seed=0: the first draw alone)."""
        x = self.check_input(x)
        if mode == "train" and seed is None and self._random:
            seed = self._next_seed()
        with np.errstate(over="ignore", invalid="ignore"):
            if mode == "eval" and seed is None and self._eval_draws > 1:
                scores = self._forward(x, mode, 0)[0]
                for d in range(1, self._eval_draws):
                    scores = scores + self._forward(x, mode, d * EVAL_DRAW_STRIDE)[0]
                scores = scores / self._eval_draws
            else:
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
        """The data loss and d loss / d scores. y: int labels (N,), or probability targets (N, C) (soft labels from
        mixup / CutMix; 'softmax' and 'mse' only, the SVM refuses them); 'softmax' smooths either target by the
        network's label_smoothing."""
        if self.loss_kind == "softmax":
            loss, d = L.softmax_loss(scores, y, self.label_smoothing)
        elif self.loss_kind == "svm":
            loss, d = L.svm_loss(scores, y)
        elif self.loss_kind == "infonce":
            loss, d = L.infonce_loss(scores, L.partners_from_ids(y), self.temperature)
        else:
            target = self.mse_target(scores, y)
            diff = scores - target
            loss = np.dot(diff.ravel(), diff.ravel()) / diff.size
            d = (2.0 / diff.size) * diff
        return float(loss), d

    def mse_target(self, scores: np.ndarray, y: Any) -> np.ndarray:
        """The MSE loss's targets: y itself when it has the scores' shape, else one-hot rows of the labels y."""
        y = np.asarray(y)
        if y.shape == scores.shape:
            if y.dtype.kind not in "biuf" or not np.all(np.isfinite(y)):
                raise ValueInputError(f"mse: targets must be finite numbers, got dtype {y.dtype}")
            return y.astype(scores.dtype)
        if y.shape != (scores.shape[0],) or y.dtype.kind not in "iu":
            raise ShapeError(f"mse: y has shape {y.shape}; expected integer labels ({scores.shape[0]},) or targets "
                             f"{scores.shape}")
        if y.size and (y.min() < 0 or y.max() >= scores.shape[1]):
            raise ValueInputError(f"mse: labels must lie in 0..{scores.shape[1] - 1}")
        t = np.zeros_like(scores)
        t[np.arange(y.size), y] = 1.0
        return t

    _mse_target = mse_target

    def reg_loss(self) -> float:
        """reg * sum(w^2) (l2) or reg * sum(|w|) (l1) over the weights."""
        if self.reg == 0.0:
            return 0.0
        total = 0.0
        for k in self._reg_names:
            f = self.params[k].ravel()
            total += float(np.dot(f, f)) if self.reg_kind == "l2" else float(np.abs(f).sum())
        return self.reg * total

    def loss(self, x: Any, y: Any, mode: str = "train", seed: int | None = None
             ) -> tuple[float, dict[str, np.ndarray]]:
        """(data loss + regulariser, grads) with grads ordered as params (frozen layers' parameters have none).
        mode as forward(); seed fixes dropout."""
        loss, grads, _ = self.loss_grads_scores(x, y, mode, seed)
        return loss, grads

    def loss_grads_scores(self, x: Any, y: Any, mode: str = "train", seed: int | None = None, what: str = "",
                          checked: bool = False, check_grads: bool = True
                          ) -> tuple[float, dict[str, np.ndarray], np.ndarray]:
        """loss() that also returns the scores. A non-finite loss or gradient raises NumericError naming the layer
        where it appeared, with the batch-norm running statistics left as they were before the call.

        For a training loop's hot path: ``checked=True`` promises that x is what check_input returned for it (an
        array of the network's dtype and input shape, finite), so it is not checked again; ``check_grads=False``
        skips the finiteness check of every gradient (a non-finite gradient then shows up in the next loss, which is
        always checked, naming the layer whose parameters it reached)."""
        if not checked:
            x = self.check_input(x)
        if mode == "train" and seed is None and self._random:
            seed = self._next_seed()
        bn_before = self._buffer_snapshot()
        with np.errstate(over="ignore", invalid="ignore"):  # divergence is reported below, naming the layer
            scores, caches, _ = self._forward(x, mode, seed)
            loss, dscores = self.data_loss(scores, y)
            if self.reg:
                loss += self.reg_loss()
            if not math.isfinite(loss):
                self._restore_buffers(bn_before)
                self._locate(x, mode, seed, "output")
                raise NumericError(f"{what}the loss is not finite ({loss}) although every layer's output is")
            grads = self.backward(dscores, caches, input_grad=False)[0]
        if self.reg:
            for k in self._reg_trainable:
                w, g = self.params[k], grads[k]
                if self.reg_kind == "l2":
                    g += (2.0 * self.reg) * w
                else:
                    g += self.reg * np.sign(w)
        if check_grads and not all(np.isfinite(g).all() for g in grads.values()):
            self._restore_buffers(bn_before)
            self.locate_nonfinite_grads(grads)
        return loss, grads, scores

    def _buffer_snapshot(self) -> dict[str, np.ndarray] | None:
        return {k: v.copy() for k, v in self._buffers.items()} if self._buffers else None

    def _restore_buffers(self, snap: Mapping[str, np.ndarray] | None) -> None:
        if snap:
            for k, v in snap.items():
                self._buffers[k][...] = v

    def _locate(self, x: np.ndarray, mode: str, seed: int | None, what: str) -> None:
        """Re-run forward layer by layer (on copies of the running statistics) and raise NumericError naming the
        first layer with a non-finite parameter or output."""
        for layer in self._layers:
            for p in layer.params:
                if not np.all(np.isfinite(self.params[p])):
                    raise NumericError(f"{layer.title}: non-finite parameter {p} (NaN or infinity); the learning "
                                       f"rate is probably too high")
        with np.errstate(all="ignore"):
            _, _, outs = self._forward(x, mode, seed, record=True, buffers=self._buffer_snapshot() or {})
        for layer, out in zip(self._layers, outs):
            if not np.all(np.isfinite(out)):
                raise NumericError(f"{layer.title}: non-finite {what} (NaN or infinity); the learning rate is "
                                   f"probably too high, or the weights too large")

    def locate_nonfinite_grads(self, grads: Mapping[str, np.ndarray]) -> None:
        """Raise NumericError naming the last layer (the first the backward pass reaches) with a non-finite gradient."""
        for layer in reversed(self._layers):
            for p in layer.params:
                if p in grads and not np.all(np.isfinite(grads[p])):
                    raise NumericError(f"{layer.title}: non-finite gradient of {p} (NaN or infinity); the learning "
                                       f"rate is probably too high")

    def batch_accuracy(self, scores: np.ndarray, y: Any) -> float:
        """The accuracy of one batch's scores (what StepMetrics reports): the share of rows whose largest score is
        their label (for soft targets (N, C), the class with the largest target weight; a tie goes to the lower
        index). For the "infonce" loss, y are image ids and it is the top-1 contrastive accuracy: the share of rows
        whose most similar other row (cosine) is the other view of their image (chance 1/(2N − 1))."""
        y = np.asarray(y)
        if self.loss_kind == "infonce":
            return L.contrastive_accuracy(scores, L.partners_from_ids(y))
        labels = y if y.ndim == 1 else y.argmax(axis=1)
        return np.count_nonzero(np.asarray(scores).argmax(axis=1) == labels) / max(len(labels), 1)

    def accuracy(self, x: Any, y: Any, batch_size: int = 1024) -> float:
        if self.loss_kind == "infonce":
            return self.evaluate(x, y, batch_size)[1]
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
        if self.loss_kind == "infonce":
            return self._evaluate_pairs(x, y, batch_size)
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

    def _evaluate_pairs(self, x: np.ndarray, y: np.ndarray, batch_size: int) -> tuple[float, float]:
        """evaluate() for the InfoNCE loss: the rows grouped by image id (both views of an image in one chunk), the
        M pairs split into k = ceil(M / (batch_size // 2)) chunks of near-equal size (whole pairs; the first M mod k
        chunks hold one pair more): each row's negatives are the other rows of its chunk. Near-equal, because a
        remainder chunk of a pair or two is an easier task (one pair: loss 0, accuracy 1) that would lift the mean.
        (loss, top-1 contrastive accuracy), weighted by the chunks' rows."""
        L.partners_from_ids(y)                           # every id exactly twice
        order = np.argsort(y, kind="stable")             # the two views of each image side by side
        pairs = len(order) // 2
        chunks = -(-pairs // max(1, batch_size // 2))
        sizes = np.full(chunks, pairs // chunks)
        sizes[:pairs % chunks] += 1                      # the first pairs % chunks chunks hold one pair more
        bounds = 2 * np.concatenate([[0], np.cumsum(sizes)])
        total, correct = 0.0, 0.0
        for start, stop in zip(bounds[:-1], bounds[1:]):
            idx = order[start:stop]
            scores = self.forward(x[idx], "eval")
            loss, _ = self.data_loss(scores, y[idx])
            total += loss * len(idx)
            correct += self.batch_accuracy(scores, y[idx]) * len(idx)
        return total / len(x) + self.reg_loss(), correct / len(x)

    # ------------------------------------------------------------------------------------------- graph expansion
    @staticmethod
    def graph_name(param: str) -> str:
        """The graph node id of a parameter: 'fc1.w' -> 'fc1_w' (graph names cannot hold dots)."""
        return param.replace(".", "_")

    def to_graph(self, batch_x: Any, batch_y: Any, mode: str = "train", seed: int = 0):
        """The stack as a simulator Graph: the batch as inputs x and y, every parameter a 'param' node (named by
        graph_name), one registered op per layer (each layer record's to_graph), the loss op, and the regulariser
        (an l2/l1 op per weight with strength reg, added to the loss). Dropout masks use `seed` as
        loss(..., seed=seed) does. Batch norm in 'train' mode is the batchnorm op; in 'eval' mode it is spelled with
        arithmetic ops and the running statistics as constants. The output node is 'loss'. Laid out left to right."""
        from simulator.graphs.graph import Graph
        from simulator.graphs.layout import apply_layout

        x = np.asarray(self.check_input(batch_x), dtype=np.float64)
        if mode not in ("train", "eval"):
            raise ValueInputError(f"mode must be 'train' or 'eval', got {mode!r}")
        N = x.shape[0]
        g = Graph()
        ctx = GraphContext(g, mode, seed, N)
        fixed_ctx = GraphContext(g, "eval", seed, N)      # frozen layers with buffers, as loss() runs them
        g.add_input("x", x)
        cur = "x"
        for layer, fixed in zip(self._layers, self._plan_fixed):
            pn = [self.graph_name(p) for p in layer.params]
            for p, gname in zip(layer.params, pn):
                g.add_input(gname, self.params[p].astype(np.float64), trainable=True)
            bufs = {b.split(".", 1)[1]: self._buffers[b] for b in layer.buffers}
            cur = layer.spec.to_graph(fixed_ctx if fixed else ctx, layer, cur, pn, bufs)
        y = np.asarray(batch_y)
        data_name = "data_loss" if self.reg else "loss"   # the regulariser's last sum is 'loss'
        if self.loss_kind == "mse":
            g.add_input("y", self.mse_target(np.zeros((N, self.num_classes)), y))
            loss = ctx.op(data_name, "mse", {"pred": cur, "target": "y"})
        elif self.loss_kind == "infonce":
            # the graph's y holds each row's partner index (the other view of its image), from the image ids
            g.add_input("y", L.partners_from_ids(y).astype(np.float64))
            loss = ctx.op(data_name, "infonce", {"z": cur, "y": "y"}, {"temperature": self.temperature})
        else:
            soft = self.loss_kind == "softmax" and y.shape == (N, self.num_classes)
            if y.shape != (N,) and not soft:
                raise ShapeError(f"y has shape {y.shape}; expected ({N},) labels"
                                 + (f" or ({N}, {self.num_classes}) probability targets"
                                    if self.loss_kind == "softmax" else ""))
            g.add_input("y", y.astype(np.float64))
            if self.loss_kind == "softmax":
                loss = ctx.op(data_name, "softmax_ce", {"scores": cur, "y": "y"},
                              {"label_smoothing": self.label_smoothing} if self.label_smoothing else None)
            else:
                loss = ctx.op(data_name, "svm_loss", {"scores": cur, "y": "y"})
        if self.reg:
            for i, p in enumerate(self._reg_names):
                r = ctx.op(f"reg_{self.graph_name(p)}", self.reg_kind, {"w": self.graph_name(p)},
                           {"strength": self.reg})
                loss = ctx.op("loss" if i == len(self._reg_names) - 1 else f"loss_{i + 1}", "add",
                              {"x": loss, "y": r})
        g.set_output(loss)
        g.infer_shapes()
        apply_layout(g)
        return g

    # ------------------------------------------------------------------------------------------- save / load
    def spec_dict(self) -> dict[str, Any]:
        """The architecture as JSON-ready data (what save() writes in its header)."""
        return {"input_shape": list(self.input_shape), "layers": [layer_to_dict(s) for s in self.specs],
                "loss": self.loss_kind, "reg": self.reg, "reg_kind": self.reg_kind, "init": self.init,
                "bias_init": self.bias_init, "seed": self.seed, "dtype": self.dtype.name,
                "label_smoothing": self.label_smoothing,
                **({"temperature": self.temperature} if self.loss_kind in LAB_LOSSES else {})}

    def save(self, path: str | os.PathLike) -> None:
        """Write the weights file atomically (simulator/nn/weights.py: a JSON header, the parameters and buffers)."""
        from simulator.nn.weights import save_weights
        save_weights(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Network:
        """A network rebuilt from the file's architecture, with its weights (FileFormatError for a bad file)."""
        from simulator.nn.weights import load_network
        return load_network(path)

    def load_weights(self, path: str | os.PathLike) -> None:
        """Copy the file's parameters (and running statistics) into this network, in place. ShapeError when the
        file's architecture does not match; FileFormatError for a damaged file. Nothing changes on error."""
        from simulator.nn.weights import load_weights
        load_weights(self, path)
