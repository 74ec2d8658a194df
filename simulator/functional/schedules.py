"""Learning-rate schedules: pure functions of the step number, and the glue that lets one drive any optimizer.

Steps count updates from 0: ``lr_at(0)`` is the rate of the first update, ``curve(n)`` the rates of updates
0 .. n-1. Every schedule is a frozen dataclass whose first field is ``base_lr`` (a0):

    Constant     a0
    StepDecay    a0 * gamma ** (t // step_size)
    CosineDecay  eta_min + (a0 - eta_min) / 2 * (1 + cos(pi t / T)),  t clipped to T (stays at eta_min after T)
    LinearDecay  a0 + (end_lr - a0) * t / T,                           t clipped to T (stays at end_lr after T)
    InverseSqrt  a0 / sqrt(1 + t / timescale) = a0 * sqrt(timescale) / sqrt(timescale + t)

``Warmup(inner, warmup_steps=W, start_factor=s)`` ramps linearly from s * a0 at t = 0 towards a0 (the inner schedule's
``lr_at(0)``), reaching it at t = W, and then runs the inner schedule with its clock started at the end of warm-up:
``inner.lr_at(t - W)``. So a cosine's T, or a linear decay's, is the length of the decay after warm-up, and the curve
is continuous at t = W. With s = 0 (the default, as in HuggingFace's ``get_*_schedule_with_warmup``) the very first
update has rate 0. ``Warmup(InverseSqrt(a0, timescale=W), W)`` is the Transformer/fairseq schedule: linear warm-up, then
a0 * sqrt(W) / sqrt(t) for t >= W. Without warm-up, ``InverseSqrt(a0)`` (timescale 1) is a0 / sqrt(t + 1).

Floors (``eta_min``, ``end_lr``) are absolute rates, as torch's CosineAnnealingLR's eta_min. ``with_base(lr)`` returns
the same schedule for another base rate (used by the optimizer race, where each optimizer keeps its own lr).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping, Sequence

import numpy as np

from simulator.core.errors import ValueInputError
from simulator.core.params import Param, Settings, check_int, param, params_of

__all__ = [
    "Schedule", "Constant", "StepDecay", "CosineDecay", "LinearDecay", "InverseSqrt", "Warmup",
    "ScheduledOptimizer", "ScheduleInfo", "SCHEDULES", "make_schedule", "MAX_CURVE_STEPS", "WARMUP_PARAMS",
]

# ``curve(n)`` allocates n floats: a plot or a race never needs more than this (80 MB would be 10 million).
MAX_CURVE_STEPS = 1_000_000
_MAX_LENGTH = 10_000_000    # step counts a schedule may be declared with (the trainer's limit on steps)


def _base_lr() -> Any:
    return param(0.1, low=0.0, log=True, label="base lr",
                 doc="a0: the rate at t = 0 (in a race, each optimizer's own lr takes its place)")


def _length(default: int, label: str, doc: str) -> Any:
    return param(default, low=1, high=_MAX_LENGTH, label=label, doc=doc)


class Schedule(Settings):
    """Base class. Subclasses are frozen dataclasses of declared parameters (the first is ``base_lr``), validated
    when made, with a vectorised ``_rates``."""

    base_lr: float

    def lr_at(self, step: int) -> float:
        """The learning rate of update number ``step`` (0-based)."""
        step = check_int("step", step, 0)
        return float(self._rates(np.array([step], dtype=np.float64))[0])

    def curve(self, n_steps: int) -> np.ndarray:
        """Rates of updates 0 .. n_steps-1: (n_steps,) float64, finite and non-negative. At most MAX_CURVE_STEPS."""
        n_steps = check_int("number of steps of a schedule curve", n_steps, 0, MAX_CURVE_STEPS)
        return self._rates(np.arange(n_steps, dtype=np.float64))

    def with_base(self, base_lr: float) -> "Schedule":
        """The same schedule with another base rate."""
        return dataclasses.replace(self, base_lr=base_lr)

    def apply(self, optimizer: Any, step: int) -> float:
        """Set ``optimizer.lr`` to the rate of update ``step``; returns it."""
        lr = self.lr_at(step)
        optimizer.lr = lr
        return lr

    def _rates(self, t: np.ndarray) -> np.ndarray:
        """t: (n,) float64 step numbers >= 0. Returns (n,) rates."""
        raise NotImplementedError


@dataclass(frozen=True)
class Constant(Schedule):
    base_lr: float = _base_lr()

    def _rates(self, t: np.ndarray) -> np.ndarray:
        return np.full(t.shape, self.base_lr)


@dataclass(frozen=True)
class StepDecay(Schedule):
    """Multiply the rate by ``gamma`` every ``step_size`` updates (torch's StepLR)."""

    base_lr: float = _base_lr()
    step_size: int = _length(1000, "step size", "the rate drops every this many updates")
    gamma: float = param(0.1, low=0.0, high=1.0, label="gamma", doc="the factor applied at every drop")

    def _rates(self, t: np.ndarray) -> np.ndarray:
        with np.errstate(under="ignore"):
            return self.base_lr * self.gamma ** np.floor(t / self.step_size)


@dataclass(frozen=True)
class CosineDecay(Schedule):
    """Half a cosine from base_lr down to eta_min over total_steps updates, then eta_min."""

    base_lr: float = _base_lr()
    total_steps: int = _length(1000, "total steps", "T: the decay reaches eta_min after this many updates")
    eta_min: float = param(0.0, low=0.0, high=10.0, label="eta min", doc="the floor the rate decays to (absolute)")

    def _rates(self, t: np.ndarray) -> np.ndarray:
        tc = np.minimum(t, self.total_steps)
        return self.eta_min + (self.base_lr - self.eta_min) / 2 * (1 + np.cos(np.pi * tc / self.total_steps))


@dataclass(frozen=True)
class LinearDecay(Schedule):
    """A straight line from base_lr to end_lr over total_steps updates, then end_lr."""

    base_lr: float = _base_lr()
    total_steps: int = _length(1000, "total steps", "T: the line reaches end_lr after this many updates")
    end_lr: float = param(0.0, low=0.0, high=10.0, label="end lr", doc="the rate at the end of the line (absolute)")

    def _rates(self, t: np.ndarray) -> np.ndarray:
        tc = np.minimum(t, self.total_steps)
        return self.base_lr + (self.end_lr - self.base_lr) * (tc / self.total_steps)


@dataclass(frozen=True)
class InverseSqrt(Schedule):
    """base_lr / sqrt(1 + t / timescale): flat for t << timescale, then falling as 1 / sqrt(t)."""

    base_lr: float = _base_lr()
    timescale: float = param(1.0, low=1e-3, high=1e7, log=True, label="timescale",
                             doc="the rate is about flat for t much smaller than this, then falls as 1 / sqrt(t)")

    def _rates(self, t: np.ndarray) -> np.ndarray:
        return self.base_lr / np.sqrt(1.0 + t / self.timescale)


@dataclass(frozen=True)
class Warmup(Schedule):
    """Linear warm-up over ``warmup_steps`` updates from start_factor * inner.lr_at(0), then ``inner`` restarted."""

    inner: Schedule = None  # type: ignore[assignment]
    warmup_steps: int = param(100, low=0, high=_MAX_LENGTH, label="warm-up steps",
                              doc="the rate ramps up linearly over this many updates (0: no warm-up)")
    start_factor: float = param(0.0, low=0.0, high=1.0, label="start factor",
                                doc="the first update's rate, as a fraction of the rate after warm-up")

    def __post_init__(self) -> None:
        if not isinstance(self.inner, Schedule):
            raise ValueInputError(f"Warmup wraps a schedule, got {self.inner!r}")
        super().__post_init__()

    @property
    def base_lr(self) -> float:  # type: ignore[override]
        return self.inner.base_lr

    def with_base(self, base_lr: float) -> "Warmup":
        return dataclasses.replace(self, inner=self.inner.with_base(base_lr))

    def _rates(self, t: np.ndarray) -> np.ndarray:
        w = self.warmup_steps
        after = self.inner._rates(np.maximum(t - w, 0.0))
        if w == 0:
            return after
        peak = self.inner._rates(np.zeros(1))[0]
        ramp = peak * (self.start_factor + (1.0 - self.start_factor) * (t / w))
        return np.where(t < w, ramp, after)


class ScheduledOptimizer:
    """An optimizer driven by a schedule: each ``step(grads)`` sets ``optimizer.lr = schedule.lr_at(t)`` first."""

    def __init__(self, optimizer: Any, schedule: Schedule):
        self.optimizer = optimizer
        self.schedule = schedule
        self.t = 0  # updates taken so far, i.e. the step number of the next update

    @property
    def lr(self) -> float:
        """The rate the next update will use."""
        return self.schedule.lr_at(self.t)

    def step(self, grads: Sequence[np.ndarray]) -> None:
        self.schedule.apply(self.optimizer, self.t)
        self.optimizer.step(grads)
        self.t += 1


# ------------------------------------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class ScheduleInfo:
    """A registry entry: display name, the schedule class (a Settings class: its declared parameters are the form)
    and the formula. ``params`` are the declared parameters besides ``base_lr``."""

    name: str
    factory: type
    formula: str

    @property
    def params(self) -> tuple[Param, ...]:
        return tuple(p for p in params_of(self.factory) if p.name != "base_lr")

    def create(self, base_lr: float, **params: Any) -> Schedule:
        """The schedule with ``base_lr`` and these parameters (the others at their declared defaults)."""
        unknown = sorted(set(params) - {p.name for p in self.params})
        if unknown:
            raise ValueInputError(f"the {self.name} schedule has no parameter {', '.join(map(repr, unknown))}")
        return self.factory(base_lr, **params)


# The warm-up's own parameters, for a form: Warmup(inner, warmup_steps, start_factor).
WARMUP_PARAMS: tuple[Param, ...] = params_of(Warmup)

SCHEDULES: Mapping[str, ScheduleInfo] = MappingProxyType({
    "Constant": ScheduleInfo("Constant", Constant, "a0"),
    "Step": ScheduleInfo("Step", StepDecay, "a0 gamma^floor(t / step_size)"),
    "Cosine": ScheduleInfo("Cosine", CosineDecay, "eta_min + (a0 - eta_min)/2 (1 + cos(pi t / T))"),
    "Linear": ScheduleInfo("Linear", LinearDecay, "a0 + (end_lr - a0) t / T"),
    "Inverse sqrt": ScheduleInfo("Inverse sqrt", InverseSqrt, "a0 / sqrt(1 + t / timescale)"),
})


def make_schedule(name: str, base_lr: float, warmup_steps: int = 0, start_factor: float = 0.0,
                  **params: Any) -> Schedule:
    """Build the registered schedule ``name`` (a key of SCHEDULES), wrapped in Warmup when warmup_steps > 0."""
    try:
        info = SCHEDULES[name]
    except (KeyError, TypeError):
        raise ValueInputError(f"unknown schedule {name!r}; known: {', '.join(SCHEDULES)}") from None
    schedule = info.create(base_lr, **params)
    warmup_steps = check_int("warm-up steps", warmup_steps, 0, _MAX_LENGTH)
    if warmup_steps:
        return Warmup(schedule, warmup_steps, start_factor)
    Warmup(schedule, 0, start_factor)   # start_factor is checked even when there is no warm-up
    return schedule
