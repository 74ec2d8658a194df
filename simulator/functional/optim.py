"""Optimizers with torch.optim's definitions and defaults (SGD, momentum, Nesterov, AdaGrad, RMSProp, Adam, AdamW).

Each optimizer holds a list of numpy arrays (float32 or float64) and updates them in place with ``step(grads)``, on
the fused Numba kernels of ``kernels/optim.py``. Per-parameter state (``opt.state[i]``) uses torch's names so plots and
learners meet the same words: ``step``, ``momentum_buffer``, ``sum``, ``square_avg``, ``grad_avg``, ``exp_avg``,
``exp_avg_sq``. ``opt.lr`` may be changed between steps (that is how a schedule drives an optimizer).

The update rules, for gradient g of parameter p at update number t = 1, 2, ... (wd: weight decay, added to the
gradient as L2, g <- g + wd p, except in AdamW):

    SGD        p <- p - lr g
    Momentum   b <- mu b + g   (b <- g on the first step);          p <- p - lr b
    Nesterov   b <- mu b + g   (b <- g on the first step);          p <- p - lr (g + mu b)
    AdaGrad    s <- s + g^2;                                         p <- p - lr g / (sqrt(s) + eps)
    RMSProp    v <- alpha v + (1 - alpha) g^2;  a = sqrt(v) + eps;   p <- p - lr g / a
               (momentum: b <- mu b + g / a, p <- p - lr b;  centered: a = sqrt(v - gbar^2) + eps with
               gbar <- alpha gbar + (1 - alpha) g)
    Adam       m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;
               p <- p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
    AdamW      p <- p (1 - lr wd) first, then Adam's update with the raw gradient (decoupled weight decay)

The lecture's Nesterov and PyTorch's are the same update
--------------------------------------------------------
The lecture writes Nesterov with a velocity v and a look-ahead gradient:

    v_{t+1} = rho v_t - alpha grad f(x_t + rho v_t),        x_{t+1} = x_t + v_{t+1},

and, to avoid evaluating the gradient away from the parameters, changes variables to x~_t = x_t + rho v_t:

    v_{t+1}  = rho v_t - alpha grad f(x~_t)
    x~_{t+1} = x~_t - rho v_t + (1 + rho) v_{t+1} = x~_t + v_{t+1} + rho (v_{t+1} - v_t).

PyTorch (dampening 0) keeps the parameters p = x~ and a buffer b = -v / alpha, and evaluates g_t = grad f(p_t):

    b_{t+1} = rho b_t + g_t,        p_{t+1} = p_t - alpha (g_t + rho b_{t+1}).

Substituting v = -alpha b in the lecture's first line gives -alpha b_{t+1} = -alpha rho b_t - alpha g_t, i.e. torch's
first line. In its second line, x~_{t+1} = x~_t - alpha b_{t+1} - alpha rho (b_{t+1} - b_t); torch's second line with
g_t = b_{t+1} - rho b_t is p_t - alpha (b_{t+1} - rho b_t) - alpha rho b_{t+1}: the same expression. Both start from
v_0 = b_0 = 0 and x~_0 = x_0 (so torch's "b <- g on the first step" is rho * 0 + g). The one difference: when alpha
changes between steps (a schedule), torch's v = -alpha b rescales the whole velocity by the current rate, while the
lecture's velocity keeps earlier steps at the rate they were taken with. The same holds for plain momentum.
"""
from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, ClassVar, Mapping, Sequence

import numpy as np

from kernels import optim as K
from simulator.core.errors import ShapeError, ValueInputError
from simulator.core.params import Param, Settings, param

__all__ = [
    "Optimizer", "SGD", "AdaGrad", "RMSProp", "Adam", "AdamW",
    "OptimizerInfo", "OPTIMIZERS", "make_optimizer", "optimizer_info", "HYPERPARAMETERS",
    "LR", "MOMENTUM", "ALPHA", "EPS", "BETA1", "BETA2", "WEIGHT_DECAY", "CENTERED",
]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_EMPTY = {dt: np.empty(0, dt) for dt in _FLOATS}

# ------------------------------------------------------------------------------------------------ declarations
# Every hyperparameter is declared once, here: the classes validate with these declarations, the registry below
# gives each optimizer its own defaults (``dataclasses.replace``), and the GUI builds its controls from them.
# Ranges are torch.optim's, except where a learner is better served by a refusal: eps > 0, momentum and alpha <= 1,
# weight decay <= 1 (torch accepts any eps >= 0 and any momentum, alpha or weight decay >= 0).
LR = Param("lr", float, 0.01, low=0.0, log=True, label="learning rate",
           doc="Step size: how far each update moves along its (scaled) direction. Too small crawls, too large "
               "overshoots or diverges.")
MOMENTUM = Param("momentum", float, 0.0, low=0.0, high=1.0, label="momentum",
                 doc="mu: the fraction of the previous velocity kept at each step (0 = no momentum; 0.9 is usual). "
                     "The velocity averages about 1 / (1 - mu) recent gradients.")
ALPHA = Param("alpha", float, 0.99, low=0.0, high=1.0, label="alpha",
              doc="Decay of RMSProp's running average of squared gradients: v <- alpha v + (1 - alpha) g^2. Close "
                  "to 1 remembers long; 0 uses only the current gradient.")
EPS = Param("eps", float, 1e-8, low=0.0, low_open=True, log=True, label="eps",
            doc="Added to the denominator so that a tiny accumulated gradient never divides by zero.")
BETA1 = Param("beta1", float, 0.9, low=0.0, high=1.0, high_open=True, label="beta1",
              doc="Adam's decay of the first moment (the running mean of gradients, like momentum).")
BETA2 = Param("beta2", float, 0.999, low=0.0, high=1.0, high_open=True, label="beta2",
              doc="Adam's decay of the second moment (the running mean of squared gradients, like RMSProp's "
                  "alpha).")
WEIGHT_DECAY = Param("weight_decay", float, 0.0, low=0.0, high=1.0, decimals=5, label="weight decay",
                     doc="L2 penalty: wd * p is added to the gradient (AdamW instead shrinks p by lr * wd before "
                         "its update: decoupled weight decay). 0 switches it off.")
CENTERED = Param("centered", bool, False, label="centered",
                 doc="Divide by an estimate of the gradient's variance (squared average minus squared mean) "
                     "instead of its raw second moment.")
NESTEROV = Param("nesterov", bool, False, label="Nesterov",
                 doc="Take the momentum step from the look-ahead point (Nesterov's accelerated gradient).")

HYPERPARAMETERS: Mapping[str, Param] = MappingProxyType({p.name: p for p in (
    LR, MOMENTUM, ALPHA, EPS, BETA1, BETA2, WEIGHT_DECAY, CENTERED, NESTEROV)})


class Optimizer:
    """Base class: holds the parameters, their state and ``lr``; subclasses supply ``_init_state`` and ``_update``.

    params: list of float32/float64 ndarrays, updated in place. state[i]: dict of that parameter's state arrays
    (same shape and dtype as params[i]) and its update count ``step``.
    """

    family: ClassVar[int]

    def __init__(self, params: Sequence[np.ndarray], lr: float, weight_decay: float = 0.0):
        if isinstance(params, np.ndarray):
            params = [params]
        params = list(params)
        if not params:
            raise ValueInputError("optimizer got an empty parameter list")
        for i, p in enumerate(params):
            if not isinstance(p, np.ndarray) or p.dtype not in _FLOATS:
                got = p.dtype if isinstance(p, np.ndarray) else type(p).__name__
                raise ValueInputError(f"parameter {i} must be a float32 or float64 ndarray, got {got}")
            if not p.flags.writeable:
                raise ValueInputError(f"parameter {i} is read-only; the optimizer updates parameters in place")
        self.params: list[np.ndarray] = params
        self.lr = lr
        self.weight_decay = WEIGHT_DECAY.check(weight_decay)
        self.state: list[dict[str, Any]] = []

    # ------------------------------------------------------------------------------------------------ learning rate
    @property
    def lr(self) -> float:
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        self._lr = LR.check(value)

    # ---------------------------------------------------------------------------------------------------- stepping
    def step(self, grads: Sequence[np.ndarray]) -> None:
        """Update every parameter in place from its gradient. grads: same length and shapes as ``params``."""
        if isinstance(grads, np.ndarray):
            grads = [grads]
        grads = list(grads)
        if len(grads) != len(self.params):
            raise ValueInputError(f"got {len(grads)} gradients for {len(self.params)} parameters")
        checked = []
        for i, (p, g) in enumerate(zip(self.params, grads)):
            if np.shape(g) != p.shape:
                raise ShapeError(f"gradient {i} has shape {np.shape(g)} but parameter {i} has shape {p.shape}")
            checked.append(np.ascontiguousarray(g, dtype=p.dtype).reshape(-1))
        for p, g, st in zip(self.params, checked, self.state):
            st["step"] += 1
            if p.flags.c_contiguous:
                self._update(p.reshape(-1), g, st)
            else:  # reshape would copy: update a contiguous copy and write it back
                flat = np.ascontiguousarray(p).reshape(-1)
                self._update(flat, g, st)
                p[...] = flat.reshape(p.shape)

    def reset_state(self) -> None:
        """Forget all state (buffers to zero, step counts to 0), as a freshly built optimizer."""
        self.state = [self._init_state(p) for p in self.params]

    def hyperparameters(self) -> dict[str, float | bool]:
        """The constructor's keyword arguments (lr included) as they are now."""
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({args})"

    # --------------------------------------------------------------------------------------------- for subclasses
    def _init_state(self, p: np.ndarray) -> dict[str, Any]:
        raise NotImplementedError

    def _update(self, p: np.ndarray, g: np.ndarray, st: dict[str, Any]) -> None:
        """One in-place update of a flat contiguous parameter; st["step"] already counts this update."""
        raise NotImplementedError

    def race_row(self) -> np.ndarray:
        """This optimizer's hyperparameters as a row of ``kernels.optim.race_step_2d``'s ``hyper`` array."""
        row = np.zeros(K.N_HYPER)
        row[K.H_WEIGHT_DECAY] = self.weight_decay
        return row

    def race_family(self) -> int:
        return self.family

    @staticmethod
    def _zeros(p: np.ndarray) -> np.ndarray:
        return np.zeros(p.shape, p.dtype)


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with (Nesterov) momentum; torch.optim.SGD with dampening 0."""

    family = K.SGD

    def __init__(self, params: Sequence[np.ndarray], lr: float, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0):
        super().__init__(params, lr, weight_decay)
        self.momentum = MOMENTUM.check(momentum)
        self.nesterov = NESTEROV.check(bool(nesterov) if isinstance(nesterov, (int, np.integer)) else nesterov)
        if self.nesterov and self.momentum <= 0.0:
            raise ValueInputError("Nesterov momentum requires a momentum > 0")
        self.reset_state()

    def hyperparameters(self) -> dict[str, float | bool]:
        return dict(lr=self.lr, momentum=self.momentum, nesterov=self.nesterov, weight_decay=self.weight_decay)

    def _init_state(self, p: np.ndarray) -> dict[str, Any]:
        st: dict[str, Any] = {"step": 0}
        if self.momentum > 0.0:
            st["momentum_buffer"] = self._zeros(p)
        return st

    def _update(self, p: np.ndarray, g: np.ndarray, st: dict[str, Any]) -> None:
        if self.momentum > 0.0:
            K.sgd_momentum_step(p, g, st["momentum_buffer"].reshape(-1), self.lr, self.momentum,
                                self.weight_decay, self.nesterov, st["step"] == 1)
        else:
            K.sgd_step(p, g, self.lr, self.weight_decay)

    def race_family(self) -> int:
        return K.SGD_MOMENTUM if self.momentum > 0.0 else K.SGD

    def race_row(self) -> np.ndarray:
        row = super().race_row()
        row[K.H_MOMENTUM] = self.momentum
        row[K.H_NESTEROV] = float(self.nesterov)
        return row


class AdaGrad(Optimizer):
    """AdaGrad: per-coordinate steps scaled by the root of the summed squared gradients; torch.optim.Adagrad with
    lr_decay 0 and initial_accumulator_value 0."""

    family = K.ADAGRAD

    def __init__(self, params: Sequence[np.ndarray], lr: float = 0.01, eps: float = 1e-10,
                 weight_decay: float = 0.0):
        super().__init__(params, lr, weight_decay)
        self.eps = EPS.check(eps)
        self.reset_state()

    def hyperparameters(self) -> dict[str, float | bool]:
        return dict(lr=self.lr, eps=self.eps, weight_decay=self.weight_decay)

    def _init_state(self, p: np.ndarray) -> dict[str, Any]:
        return {"step": 0, "sum": self._zeros(p)}

    def _update(self, p: np.ndarray, g: np.ndarray, st: dict[str, Any]) -> None:
        K.adagrad_step(p, g, st["sum"].reshape(-1), self.lr, self.eps, self.weight_decay)

    def race_row(self) -> np.ndarray:
        row = super().race_row()
        row[K.H_EPS] = self.eps
        return row


class RMSProp(Optimizer):
    """RMSProp ("leaky AdaGrad"), optionally with momentum and centering; torch.optim.RMSprop."""

    family = K.RMSPROP

    def __init__(self, params: Sequence[np.ndarray], lr: float = 0.01, alpha: float = 0.99, eps: float = 1e-8,
                 momentum: float = 0.0, weight_decay: float = 0.0, centered: bool = False):
        super().__init__(params, lr, weight_decay)
        self.alpha = ALPHA.check(alpha)
        self.eps = EPS.check(eps)
        self.momentum = MOMENTUM.check(momentum)
        self.centered = CENTERED.check(bool(centered) if isinstance(centered, (int, np.integer)) else centered)
        self.reset_state()

    def hyperparameters(self) -> dict[str, float | bool]:
        return dict(lr=self.lr, alpha=self.alpha, eps=self.eps, momentum=self.momentum,
                    weight_decay=self.weight_decay, centered=self.centered)

    def _init_state(self, p: np.ndarray) -> dict[str, Any]:
        st: dict[str, Any] = {"step": 0, "square_avg": self._zeros(p)}
        if self.momentum > 0.0:
            st["momentum_buffer"] = self._zeros(p)
        if self.centered:
            st["grad_avg"] = self._zeros(p)
        return st

    def _update(self, p: np.ndarray, g: np.ndarray, st: dict[str, Any]) -> None:
        empty = _EMPTY[p.dtype]
        grad_avg = st["grad_avg"].reshape(-1) if self.centered else empty
        buf = st["momentum_buffer"].reshape(-1) if self.momentum > 0.0 else empty
        K.rmsprop_step(p, g, st["square_avg"].reshape(-1), grad_avg, buf, self.lr, self.alpha, self.eps,
                       self.momentum, self.weight_decay, self.centered)

    def race_row(self) -> np.ndarray:
        row = super().race_row()
        row[K.H_MOMENTUM] = self.momentum
        row[K.H_BETA1] = self.alpha
        row[K.H_EPS] = self.eps
        row[K.H_CENTERED] = float(self.centered)
        return row


class Adam(Optimizer):
    """Adam with bias correction; ``weight_decay`` is L2 added to the gradient (torch.optim.Adam, amsgrad off)."""

    family = K.ADAM

    def __init__(self, params: Sequence[np.ndarray], lr: float = 0.001, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0):
        super().__init__(params, lr, weight_decay)
        try:
            beta1, beta2 = betas
        except (TypeError, ValueError):
            raise ValueInputError(f"betas must be a pair of numbers, got {betas!r}") from None
        self.betas = (BETA1.check(beta1), BETA2.check(beta2))
        self.eps = EPS.check(eps)
        self.reset_state()

    def hyperparameters(self) -> dict[str, Any]:
        return dict(lr=self.lr, betas=self.betas, eps=self.eps, weight_decay=self.weight_decay)

    def _init_state(self, p: np.ndarray) -> dict[str, Any]:
        return {"step": 0, "exp_avg": self._zeros(p), "exp_avg_sq": self._zeros(p)}

    def _update(self, p: np.ndarray, g: np.ndarray, st: dict[str, Any]) -> None:
        K.adam_step(p, g, st["exp_avg"].reshape(-1), st["exp_avg_sq"].reshape(-1), self.lr, self.betas[0],
                    self.betas[1], self.eps, self.weight_decay, st["step"])

    def race_row(self) -> np.ndarray:
        row = super().race_row()
        row[K.H_BETA1], row[K.H_BETA2] = self.betas
        row[K.H_EPS] = self.eps
        return row


class AdamW(Adam):
    """Adam with decoupled weight decay: p <- p (1 - lr wd) before the Adam step (torch.optim.AdamW)."""

    family = K.ADAMW

    def __init__(self, params: Sequence[np.ndarray], lr: float = 0.001, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.01):
        super().__init__(params, lr, betas, eps, weight_decay)

    def _update(self, p: np.ndarray, g: np.ndarray, st: dict[str, Any]) -> None:
        K.adamw_step(p, g, st["exp_avg"].reshape(-1), st["exp_avg_sq"].reshape(-1), self.lr, self.betas[0],
                     self.betas[1], self.eps, self.weight_decay, st["step"])


# ------------------------------------------------------------------------------------------------------- registry
_BETAS = ("beta1", "beta2")


@dataclass(frozen=True)
class OptimizerInfo:
    """One entry of the registry: display name, the class that builds it, its hyperparameters declared (``params``,
    learning rate first, each with this optimizer's default), keyword arguments fixed by the entry (``fixed``:
    Nesterov's ``nesterov=True``), a one-line update rule and a sentence for learners.

    ``settings`` is a Settings class with one field per declared hyperparameter (a form is built from it, and an
    instance is always valid). Adam's ``betas=(beta1, beta2)`` keyword is split into two declared scalars; the
    packing and unpacking happen only here, in ``kwargs`` and ``values``."""

    name: str
    factory: Callable[..., Optimizer]
    params: tuple[Param, ...]
    formula: str = ""
    fixed: Mapping[str, Any] = field(default_factory=dict)
    doc: str = ""
    settings: type = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # every part of each declaration (zero_off, choice_labels, ...), so the form shows what was declared
        fields = [(p.name, p.kind, param(p.default, kind=p.kind, **{f.name: getattr(p, f.name)
                                                                     for f in dataclasses.fields(Param)
                                                                     if f.name not in ("name", "kind", "default")}))
                  for p in self.params]
        cls = dataclasses.make_dataclass(f"{self.name}Settings", fields, bases=(Settings,), frozen=True,
                                         namespace={"__doc__": f"{self.name}'s hyperparameters."})
        cls.__module__ = __name__
        object.__setattr__(self, "settings", cls)

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    @property
    def implied(self) -> Mapping[str, Any]:
        """Keyword arguments of the class that this entry does not declare, at the values it implies: ``fixed``
        ones and the class's own defaults (the SGD entry is SGD with momentum 0.0 and nesterov False). Given with
        those values they are accepted, so ``make_optimizer(name, ..., **opt.hyperparameters())`` rebuilds opt."""
        sig = inspect.signature(self.factory)
        out = {name: p.default for name, p in sig.parameters.items()
               if p.default is not inspect.Parameter.empty and name not in self.param_names and name != "betas"}
        out.update(self.fixed)
        return MappingProxyType(out)

    @property
    def defaults(self) -> Mapping[str, Any]:
        """The constructor's keyword arguments for this entry's defaults (``betas`` packed, ``fixed`` included)."""
        return MappingProxyType(self.kwargs(self.settings()))

    def values(self, hyper: Mapping[str, Any] | None = None, **more: Any) -> dict[str, Any]:
        """Declared values from keyword arguments in either form (``betas=(b1, b2)`` or ``beta1=``/``beta2=``),
        merged over the defaults and validated. Keys this optimizer does not have are refused by name; keys fixed
        by the entry (``nesterov``) are accepted only with their fixed value."""
        given = dict(hyper or {}, **more)
        if "betas" in given and "beta1" in self.param_names:
            betas = given.pop("betas")
            try:
                b1, b2 = betas
            except (TypeError, ValueError):
                raise ValueInputError(f"betas must be a pair of numbers (beta1, beta2), got {betas!r}") from None
            given.setdefault("beta1", b1)
            given.setdefault("beta2", b2)
        for key, value in self.implied.items():
            if key in given and given.pop(key) != value:
                raise ValueInputError(f"{self.name} always has {key}={value!r}; choose another optimizer to change it")
        unknown = sorted(set(given) - set(self.param_names))
        if unknown:
            raise ValueInputError(f"{self.name} has no hyperparameter {', '.join(map(repr, unknown))}; it has: "
                                  f"{', '.join(self.param_names)}")
        return self.settings(**given).as_dict()

    def kwargs(self, values: Any = None) -> dict[str, Any]:
        """The class's keyword arguments for declared values (a Settings object or a mapping; missing ones take
        their defaults): ``beta1``/``beta2`` packed as ``betas``, the entry's fixed arguments added."""
        if values is None:
            values = self.settings()
        vals = values.as_dict() if isinstance(values, Settings) else self.values(values)
        out = {k: v for k, v in vals.items() if k not in _BETAS}
        if "beta1" in vals:
            out["betas"] = (vals["beta1"], vals["beta2"])
        out.update(self.fixed)
        return out

    def create(self, params: Sequence[np.ndarray], values: Any = None, **overrides: Any) -> Optimizer:
        """Build the optimizer over ``params`` with the defaults, updated by ``values`` (a Settings object or a
        mapping) and then by ``overrides`` (either form of Adam's betas)."""
        base = values.as_dict() if isinstance(values, Settings) else dict(values or {})
        if overrides:
            if "betas" in overrides:
                base = {k: v for k, v in base.items() if k not in _BETAS}
            base.update(overrides)
        return self.factory(params, **self.kwargs(self.values(base)))


def _lr(default: float) -> Param:
    return dataclasses.replace(LR, default=default)


def _with(p: Param, **changes: Any) -> Param:
    return dataclasses.replace(p, **changes)


# Learning-rate defaults are sensible starting points for training a small network (the playground's); every other
# default is torch.optim's (the Momentum and Nesterov entries are SGD with momentum 0.9).
OPTIMIZERS: Mapping[str, OptimizerInfo] = MappingProxyType({
    "SGD": OptimizerInfo("SGD", SGD, (_lr(0.1), WEIGHT_DECAY), "p -= lr g",
                         doc="Plain stochastic gradient descent: step straight down the gradient."),
    "Momentum": OptimizerInfo("Momentum", SGD, (_lr(0.05), _with(MOMENTUM, default=0.9), WEIGHT_DECAY),
                              "b = mu b + g;  p -= lr b",
                              doc="SGD with a velocity: gradients are accumulated, so steps build up along "
                                  "consistent directions and oscillations cancel."),
    "Nesterov": OptimizerInfo("Nesterov", SGD, (_lr(0.05), _with(MOMENTUM, default=0.9, low_open=True),
                                                WEIGHT_DECAY), "b = mu b + g;  p -= lr (g + mu b)",
                              fixed=MappingProxyType({"nesterov": True}),
                              doc="Momentum with the gradient taken at the look-ahead point: it brakes earlier."),
    "AdaGrad": OptimizerInfo("AdaGrad", AdaGrad, (_lr(0.05), _with(EPS, default=1e-10), WEIGHT_DECAY),
                             "s += g^2;  p -= lr g / (sqrt(s) + eps)",
                             doc="Per-coordinate steps divided by the root of all squared gradients so far: "
                                 "steep directions slow down, and every step shrinks over time."),
    "RMSProp": OptimizerInfo("RMSProp", RMSProp, (_lr(0.005), ALPHA, EPS, MOMENTUM, WEIGHT_DECAY, CENTERED),
                             "v = a v + (1-a) g^2;  p -= lr g / (sqrt(v) + eps)",
                             doc="Leaky AdaGrad: a running average of squared gradients, so steps do not "
                                 "shrink forever."),
    "Adam": OptimizerInfo("Adam", Adam, (_lr(0.01), BETA1, BETA2, EPS, WEIGHT_DECAY),
                          "m, v moving averages of g, g^2;  p -= lr m^ / (sqrt(v^) + eps)",
                          doc="Momentum and RMSProp together, with bias correction of both averages."),
    "AdamW": OptimizerInfo("AdamW", AdamW, (_lr(0.01), BETA1, BETA2, EPS, _with(WEIGHT_DECAY, default=0.01)),
                           "p *= 1 - lr wd;  then Adam",
                           doc="Adam with decoupled weight decay: p shrinks by lr * wd each step, apart from "
                               "the adaptive update."),
})


def optimizer_info(name: str) -> OptimizerInfo:
    """The registry entry ``name`` (a key of OPTIMIZERS), or ValueInputError listing the known names."""
    try:
        return OPTIMIZERS[name]
    except (KeyError, TypeError):
        raise ValueInputError(f"unknown optimizer {name!r}; known: {', '.join(OPTIMIZERS)}") from None


def make_optimizer(name: str, params: Sequence[np.ndarray], **overrides: Any) -> Optimizer:
    """Build the registered optimizer ``name`` (a key of OPTIMIZERS) with its defaults updated by ``overrides``."""
    return optimizer_info(name).create(params, **overrides)
