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

import math
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, ClassVar, Mapping, Sequence

import numpy as np

from kernels import optim as K
from simulator.core.errors import ShapeError, ValueInputError

__all__ = [
    "Optimizer", "SGD", "AdaGrad", "RMSProp", "Adam", "AdamW",
    "OptimizerInfo", "OPTIMIZERS", "make_optimizer",
]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_EMPTY = {dt: np.empty(0, dt) for dt in _FLOATS}


def _number(name: str, value: Any, *, low: float = 0.0, high: float = math.inf,
            low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a float, checked to lie in the interval [low, high] (ends open as asked); else ValueInputError."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueInputError(f"{name} must be a real number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueInputError(f"{name} must be finite, got {v}")
    if v < low or (low_open and v == low) or v > high or (high_open and v == high):
        lo, hi = "(" if low_open else "[", ")" if high_open else "]"
        raise ValueInputError(f"Invalid {name}: {v} (must lie in {lo}{low}, {high}{hi})")
    return v


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
        self.weight_decay = _number("weight_decay value", weight_decay)
        self.state: list[dict[str, Any]] = []

    # ------------------------------------------------------------------------------------------------ learning rate
    @property
    def lr(self) -> float:
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        self._lr = _number("learning rate", value)

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

    def _race_row(self) -> np.ndarray:
        """This optimizer's hyperparameters as a row of ``kernels.optim.race_step_2d``'s ``hyper`` array."""
        row = np.zeros(K.N_HYPER)
        row[K.H_WEIGHT_DECAY] = self.weight_decay
        return row

    def _race_family(self) -> int:
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
        self.momentum = _number("momentum value", momentum)
        self.nesterov = bool(nesterov)
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

    def _race_family(self) -> int:
        return K.SGD_MOMENTUM if self.momentum > 0.0 else K.SGD

    def _race_row(self) -> np.ndarray:
        row = super()._race_row()
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
        self.eps = _number("epsilon value", eps, low_open=True)
        self.reset_state()

    def hyperparameters(self) -> dict[str, float | bool]:
        return dict(lr=self.lr, eps=self.eps, weight_decay=self.weight_decay)

    def _init_state(self, p: np.ndarray) -> dict[str, Any]:
        return {"step": 0, "sum": self._zeros(p)}

    def _update(self, p: np.ndarray, g: np.ndarray, st: dict[str, Any]) -> None:
        K.adagrad_step(p, g, st["sum"].reshape(-1), self.lr, self.eps, self.weight_decay)

    def _race_row(self) -> np.ndarray:
        row = super()._race_row()
        row[K.H_EPS] = self.eps
        return row


class RMSProp(Optimizer):
    """RMSProp ("leaky AdaGrad"), optionally with momentum and centering; torch.optim.RMSprop."""

    family = K.RMSPROP

    def __init__(self, params: Sequence[np.ndarray], lr: float = 0.01, alpha: float = 0.99, eps: float = 1e-8,
                 momentum: float = 0.0, weight_decay: float = 0.0, centered: bool = False):
        super().__init__(params, lr, weight_decay)
        self.alpha = _number("alpha value", alpha, high=1.0)
        self.eps = _number("epsilon value", eps, low_open=True)
        self.momentum = _number("momentum value", momentum)
        self.centered = bool(centered)
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

    def _race_row(self) -> np.ndarray:
        row = super()._race_row()
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
        self.betas = (_number("beta parameter at index 0", beta1, high=1.0, high_open=True),
                      _number("beta parameter at index 1", beta2, high=1.0, high_open=True))
        self.eps = _number("epsilon value", eps, low_open=True)
        self.reset_state()

    def hyperparameters(self) -> dict[str, Any]:
        return dict(lr=self.lr, betas=self.betas, eps=self.eps, weight_decay=self.weight_decay)

    def _init_state(self, p: np.ndarray) -> dict[str, Any]:
        return {"step": 0, "exp_avg": self._zeros(p), "exp_avg_sq": self._zeros(p)}

    def _update(self, p: np.ndarray, g: np.ndarray, st: dict[str, Any]) -> None:
        K.adam_step(p, g, st["exp_avg"].reshape(-1), st["exp_avg_sq"].reshape(-1), self.lr, self.betas[0],
                    self.betas[1], self.eps, self.weight_decay, st["step"])

    def _race_row(self) -> np.ndarray:
        row = super()._race_row()
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
@dataclass(frozen=True)
class OptimizerInfo:
    """A GUI entry: display name, the class that builds it, its default keyword arguments and a one-line rule."""

    name: str
    factory: Callable[..., Optimizer]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    formula: str = ""

    def create(self, params: Sequence[np.ndarray], **overrides: Any) -> Optimizer:
        """Build the optimizer over ``params`` with the defaults, updated by ``overrides``."""
        return self.factory(params, **{**self.defaults, **overrides})


def _info(name: str, factory: Callable[..., Optimizer], formula: str, **defaults: Any) -> OptimizerInfo:
    return OptimizerInfo(name, factory, MappingProxyType(defaults), formula)


OPTIMIZERS: Mapping[str, OptimizerInfo] = MappingProxyType({
    "SGD": _info("SGD", SGD, "p -= lr g", lr=0.01),
    "Momentum": _info("Momentum", SGD, "b = mu b + g;  p -= lr b", lr=0.01, momentum=0.9),
    "Nesterov": _info("Nesterov", SGD, "b = mu b + g;  p -= lr (g + mu b)", lr=0.01, momentum=0.9, nesterov=True),
    "AdaGrad": _info("AdaGrad", AdaGrad, "s += g^2;  p -= lr g / (sqrt(s) + eps)", lr=0.01, eps=1e-10),
    "RMSProp": _info("RMSProp", RMSProp, "v = a v + (1-a) g^2;  p -= lr g / (sqrt(v) + eps)",
                     lr=0.01, alpha=0.99, eps=1e-8, momentum=0.0, centered=False),
    "Adam": _info("Adam", Adam, "m, v moving averages of g, g^2;  p -= lr m^ / (sqrt(v^) + eps)",
                  lr=0.001, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0),
    "AdamW": _info("AdamW", AdamW, "p *= 1 - lr wd;  then Adam", lr=0.001, betas=(0.9, 0.999), eps=1e-8,
                   weight_decay=0.01),
})


def make_optimizer(name: str, params: Sequence[np.ndarray], **overrides: Any) -> Optimizer:
    """Build the registered optimizer ``name`` (a key of OPTIMIZERS) with its defaults updated by ``overrides``."""
    try:
        info = OPTIMIZERS[name]
    except KeyError:
        raise ValueInputError(f"unknown optimizer {name!r}; known: {', '.join(OPTIMIZERS)}") from None
    return info.create(params, **overrides)
