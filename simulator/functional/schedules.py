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
import math
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from simulator.core.errors import ValueInputError

__all__ = [
    "Schedule", "Constant", "StepDecay", "CosineDecay", "LinearDecay", "InverseSqrt", "Warmup",
    "ScheduledOptimizer", "ParamSpec", "ScheduleInfo", "SCHEDULES", "make_schedule",
]


def _real(name: str, value: Any, low: float = 0.0, high: float = math.inf, low_open: bool = False) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueInputError(f"{name} must be a real number, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or v < low or (low_open and v == low) or v > high:
        raise ValueInputError(f"{name} must be a finite number in {'(' if low_open else '['}{low}, {high}], got {v}")
    return v


def _count(name: str, value: Any, low: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueInputError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


class Schedule:
    """Base class. Subclasses are frozen dataclasses with a ``base_lr`` field and a vectorised ``_rates``."""

    base_lr: float

    def lr_at(self, step: int) -> float:
        """The learning rate of update number ``step`` (0-based)."""
        step = _count("step", step, 0)
        return float(self._rates(np.array([step], dtype=np.float64))[0])

    def curve(self, n_steps: int) -> np.ndarray:
        """Rates of updates 0 .. n_steps-1: (n_steps,) float64, finite and non-negative."""
        n_steps = _count("n_steps", n_steps, 0)
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

    def _check_base(self) -> None:
        object.__setattr__(self, "base_lr", _real("base_lr", self.base_lr))


@dataclass(frozen=True)
class Constant(Schedule):
    base_lr: float

    def __post_init__(self) -> None:
        self._check_base()

    def _rates(self, t: np.ndarray) -> np.ndarray:
        return np.full(t.shape, self.base_lr)


@dataclass(frozen=True)
class StepDecay(Schedule):
    """Multiply the rate by ``gamma`` every ``step_size`` updates (torch's StepLR)."""

    base_lr: float
    step_size: int = 1000
    gamma: float = 0.1

    def __post_init__(self) -> None:
        self._check_base()
        object.__setattr__(self, "step_size", _count("step_size", self.step_size, 1))
        object.__setattr__(self, "gamma", _real("gamma", self.gamma, 0.0, 1.0))

    def _rates(self, t: np.ndarray) -> np.ndarray:
        with np.errstate(under="ignore"):
            return self.base_lr * self.gamma ** np.floor(t / self.step_size)


@dataclass(frozen=True)
class CosineDecay(Schedule):
    """Half a cosine from base_lr down to eta_min over total_steps updates, then eta_min."""

    base_lr: float
    total_steps: int = 1000
    eta_min: float = 0.0

    def __post_init__(self) -> None:
        self._check_base()
        object.__setattr__(self, "total_steps", _count("total_steps", self.total_steps, 1))
        object.__setattr__(self, "eta_min", _real("eta_min", self.eta_min))

    def _rates(self, t: np.ndarray) -> np.ndarray:
        tc = np.minimum(t, self.total_steps)
        return self.eta_min + (self.base_lr - self.eta_min) / 2 * (1 + np.cos(np.pi * tc / self.total_steps))


@dataclass(frozen=True)
class LinearDecay(Schedule):
    """A straight line from base_lr to end_lr over total_steps updates, then end_lr."""

    base_lr: float
    total_steps: int = 1000
    end_lr: float = 0.0

    def __post_init__(self) -> None:
        self._check_base()
        object.__setattr__(self, "total_steps", _count("total_steps", self.total_steps, 1))
        object.__setattr__(self, "end_lr", _real("end_lr", self.end_lr))

    def _rates(self, t: np.ndarray) -> np.ndarray:
        tc = np.minimum(t, self.total_steps)
        return self.base_lr + (self.end_lr - self.base_lr) * (tc / self.total_steps)


@dataclass(frozen=True)
class InverseSqrt(Schedule):
    """base_lr / sqrt(1 + t / timescale): flat for t << timescale, then falling as 1 / sqrt(t)."""

    base_lr: float
    timescale: float = 1.0

    def __post_init__(self) -> None:
        self._check_base()
        object.__setattr__(self, "timescale", _real("timescale", self.timescale, low_open=True))

    def _rates(self, t: np.ndarray) -> np.ndarray:
        return self.base_lr / np.sqrt(1.0 + t / self.timescale)


@dataclass(frozen=True)
class Warmup(Schedule):
    """Linear warm-up over ``warmup_steps`` updates from start_factor * inner.lr_at(0), then ``inner`` restarted."""

    inner: Schedule
    warmup_steps: int = 100
    start_factor: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.inner, Schedule):
            raise ValueInputError(f"Warmup wraps a schedule, got {self.inner!r}")
        object.__setattr__(self, "warmup_steps", _count("warmup_steps", self.warmup_steps, 0))
        object.__setattr__(self, "start_factor", _real("start_factor", self.start_factor, 0.0, 1.0))

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
class ParamSpec:
    """One schedule parameter as the GUI shows it: a spin box from low to high (integer or not)."""

    name: str
    default: float
    low: float
    high: float
    integer: bool = False


@dataclass(frozen=True)
class ScheduleInfo:
    name: str
    factory: Callable[..., Schedule]
    params: tuple[ParamSpec, ...]
    formula: str

    def create(self, base_lr: float, **params: Any) -> Schedule:
        values = {p.name: p.default for p in self.params}
        values.update(params)
        for p in self.params:
            if p.integer and isinstance(values[p.name], float) and values[p.name].is_integer():
                values[p.name] = int(values[p.name])
        return self.factory(base_lr, **values)


SCHEDULES: Mapping[str, ScheduleInfo] = MappingProxyType({
    "Constant": ScheduleInfo("Constant", Constant, (), "a0"),
    "Step": ScheduleInfo("Step", StepDecay, (ParamSpec("step_size", 1000, 1, 1e7, True),
                                               ParamSpec("gamma", 0.1, 0.0, 1.0)), "a0 gamma^floor(t / step_size)"),
    "Cosine": ScheduleInfo("Cosine", CosineDecay, (ParamSpec("total_steps", 1000, 1, 1e7, True),
                                                   ParamSpec("eta_min", 0.0, 0.0, 10.0)),
                           "eta_min + (a0 - eta_min)/2 (1 + cos(pi t / T))"),
    "Linear": ScheduleInfo("Linear", LinearDecay, (ParamSpec("total_steps", 1000, 1, 1e7, True),
                                                   ParamSpec("end_lr", 0.0, 0.0, 10.0)),
                           "a0 + (end_lr - a0) t / T"),
    "Inverse sqrt": ScheduleInfo("Inverse sqrt", InverseSqrt, (ParamSpec("timescale", 1.0, 1e-3, 1e7),),
                                 "a0 / sqrt(1 + t / timescale)"),
})


def make_schedule(name: str, base_lr: float, warmup_steps: int = 0, start_factor: float = 0.0,
                  **params: Any) -> Schedule:
    """Build the registered schedule ``name`` (a key of SCHEDULES), wrapped in Warmup when warmup_steps > 0."""
    try:
        info = SCHEDULES[name]
    except KeyError:
        raise ValueInputError(f"unknown schedule {name!r}; known: {', '.join(SCHEDULES)}") from None
    schedule = info.create(base_lr, **params)
    if warmup_steps:
        return Warmup(schedule, warmup_steps, start_factor)
    return schedule
