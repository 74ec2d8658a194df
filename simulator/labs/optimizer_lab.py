"""The optimizer race lab's model (no Qt): a surface, a start point, the racing optimizers and their
hyperparameters, gradient noise and a learning-rate schedule; ``race_job()`` races them as a job.

    model = OptimizerLabModel()                     # the default race: seven optimizers on the ill-conditioned bowl
    model.set_surface("Rosenbrock")                 # the start point moves to the surface's suggested start
    model.set_hyper(0, lr=0.002)                    # validated by the optimizer's declared hyperparameters
    results = run_job(model.race_job())             # {label: RaceResult}

Every setter validates first and changes nothing when it refuses (our ValueInputError / ExpressionError, with a
message for the learner), then announces the change on ``changed`` with what changed: "surface", "start",
"optimizers", "noise", "steps" or "schedule". ``race_job()`` takes a snapshot of the settings when it is called, so
editing the model while a race runs never changes that race.

Racers are torch.optim's optimizers or "Newton" (``simulator.labs.surfaces.RACERS``). ``preconditioners`` gives, along a
path, the three step directions the lab draws as arrows: -g (none), AdaGrad's -g / sqrt(sum of g^2) (diagonal) and
Newton's -H^-1 g (the full Hessian); ``point_kind`` says whether a point is a minimum, a saddle point or a maximum.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from simulator.core.errors import ValueInputError
from simulator.core.jobs import Job
from simulator.core.observer import Signal
from simulator.core.params import Settings, check_int, check_real, param
from simulator.functional.optim import OptimizerInfo
from simulator.functional.schedules import Schedule
from simulator.labs.surfaces import (DIVERGENCE_LIMIT, MAX_RACERS, RACERS, SINGULAR_RTOL, SURFACES, ExpressionSurface,
                                     NoisyGradient, RaceResult, Surface, hessian_eigen, make_surface, newton_direction,
                                     race_job, racer_info)

__all__ = ["CUSTOM", "DEFAULT_RACE", "LOSS_FLOOR", "Heatmap", "OptimizerLabModel", "RaceSettings", "Racer", "loss_curves",
           "race_winner", "DecayComparison", "weight_decay_comparison",
           "surface_heatmap", "Preconditioners", "preconditioners", "point_kind"]

CUSTOM = "Custom f(x, y)"
LOSS_FLOOR = 1e-16        # f - f* below this is rounding noise: a log plot of the loss stops there

# The default race on the default surface (the ill-conditioned bowl): rates picked so that all seven visibly differ.
DEFAULT_RACE: tuple[tuple[str, Mapping[str, Any]], ...] = (
    ("SGD", {"lr": 0.05}),
    ("Momentum", {"lr": 0.01}),
    ("Nesterov", {"lr": 0.01}),
    ("AdaGrad", {"lr": 0.3}),
    ("RMSProp", {"lr": 0.01}),
    ("Adam", {"lr": 0.05}),
    ("AdamW", {"lr": 0.05}),
)


@dataclass(frozen=True)
class RaceSettings(Settings):
    """The race's own settings (the surface's parameters are declared by each surface class)."""

    surface: str = param("Ill-conditioned bowl", choices=(*SURFACES, CUSTOM), label="surface",
                         doc="the loss landscape the optimizers race across")
    n_steps: int = param(500, low=1, high=10_000, label="steps", doc="updates per optimizer")
    noise: float = param(0.0, low=0.0, high=5.0, decimals=2, label="gradient noise σ",
                         doc="standard deviation of Gaussian noise added to every gradient component (a stand-in "
                             "for mini-batch noise); the same seed replays the same noise")


@dataclass(frozen=True)
class Racer:
    """One racing optimizer: a unique label, its RACERS entry (an OPTIMIZERS entry or Newton), its hyperparameters
    (the entry's Settings, always valid), whether it races, and a colour slot (the lowest one free when it was
    added)."""

    label: str
    kind: str
    hyper: Settings
    enabled: bool = True
    slot: int = 0

    @property
    def info(self) -> OptimizerInfo:
        return RACERS[self.kind]

    @property
    def lr(self) -> float:
        return float(self.hyper.lr)

    def spec(self) -> tuple[str, str, dict[str, Any]]:
        """(label, kind, class keyword arguments) as ``race`` takes it."""
        return self.label, self.kind, self.info.kwargs(self.hyper)


def loss_curves(results: Mapping[str, RaceResult], minima: tuple = ()) -> tuple[str, float, dict[str, np.ndarray]]:
    """How to plot the losses of a race: ("log", f*, {label: log10(max(f - f*, LOSS_FLOOR))}) when the surface's
    minimum f* is known or every loss is positive (f* = 0 then); else ("symlog", 0, {label: sign(f) log10(1 + |f|)}).
    Non-finite losses are clipped to +-1e300 first, so every curve is finite."""
    if minima:
        mode, fstar = "log", min(m[2] for m in minima)
    else:
        lows = [float(np.nanmin(r.losses)) for r in results.values() if len(r.losses)]
        mode, fstar = ("log", 0.0) if lows and min(lows) > 0 else ("symlog", 0.0)
    curves = {}
    with np.errstate(all="ignore"):
        for label, r in results.items():
            f = np.nan_to_num(r.losses, nan=1e300, posinf=1e300, neginf=-1e300)
            if mode == "log":
                y = np.log10(np.maximum(f - fstar, LOSS_FLOOR))
            else:
                y = np.sign(f) * np.log10(1.0 + np.abs(f))
            curves[label] = np.ascontiguousarray(y)
    return mode, fstar, curves


def race_winner(results: Mapping[str, RaceResult], minima: tuple = (), tol: float = 1e-3
                ) -> tuple[str | None, dict[str, int | None]]:
    """Which racer reaches the minimum first: (the winner's label or None, {label: the first step within ``tol`` of
    f*, or None if it never gets there}). f* is the surface's lowest known minimum, else the lowest loss any racer
    reached; a diverged racer never arrives. Ties go to the earlier racer in the list."""
    if minima:
        fstar = min(m[2] for m in minima)
    else:
        lows = [float(np.nanmin(r.losses)) for r in results.values() if len(r.losses)]
        fstar = min(lows) if lows else 0.0
    steps: dict[str, int | None] = {}
    for label, r in results.items():
        with np.errstate(invalid="ignore"):
            hit = np.flatnonzero(np.asarray(r.losses) - fstar <= tol * max(1.0, abs(fstar)))
        steps[label] = int(hit[0]) if len(hit) else None
    arrived = [(s, i, label) for i, (label, s) in enumerate(steps.items()) if s is not None]
    return (min(arrived)[2] if arrived else None), steps


@dataclass(frozen=True)
class DecayComparison:
    """The same surface, start, rate and decay λ, four ways: SGD with L2 in the gradient (torch's SGD weight_decay),
    SGD with decoupled decay (x ← x − lr·g − lr·λ·x), Adam with L2 (torch's Adam weight_decay) and AdamW (decoupled).
    ``sgd_gap`` (the largest distance between the two SGD paths) is 0 up to rounding: for plain SGD the two are the
    same update; ``adam_gap`` is not: Adam rescales the L2 term per coordinate with the gradient, AdamW does not."""

    paths: dict[str, np.ndarray]
    sgd_gap: float
    adam_gap: float
    lr: float
    weight_decay: float


def weight_decay_comparison(surface: Surface, start: tuple[float, float], lr: float = 0.05, weight_decay: float = 0.1,
                            steps: int = 200) -> DecayComparison:
    """Race the four weight-decay variants of DecayComparison from ``start`` on ``surface``."""
    from simulator.functional.optim import make_optimizer

    lr = check_real("learning rate", lr, 0.0, 10.0, low_open=True)
    weight_decay = check_real("weight decay λ", weight_decay, 0.0, 10.0)
    steps = check_int("steps", steps, 1, 100_000)
    x0 = np.array([check_real("start x", start[0]), check_real("start y", start[1])], dtype=np.float64)

    def grad(x: np.ndarray) -> np.ndarray:
        gx, gy = surface.grad(x[0], x[1])
        return np.array([float(gx), float(gy)])

    paths: dict[str, np.ndarray] = {}
    for label, kind in (("SGD + L2", "SGD"), ("Adam + L2", "Adam"), ("AdamW (decoupled)", "AdamW")):
        x = x0.copy()
        opt = make_optimizer(kind, [x], lr=lr, weight_decay=weight_decay)
        path = [x.copy()]
        with np.errstate(all="ignore"):
            for _ in range(steps):
                opt.step([grad(x)])
                path.append(x.copy())
        paths[label] = np.array(path)
    x = x0.copy()
    path = [x.copy()]
    with np.errstate(all="ignore"):
        for _ in range(steps):
            x = x - lr * grad(x) - lr * weight_decay * x
            path.append(x.copy())
    paths["SGD decoupled"] = np.array(path)
    gap = lambda a, b: float(np.nanmax(np.linalg.norm(paths[a] - paths[b], axis=1)))   # noqa: E731
    order = ("SGD + L2", "SGD decoupled", "Adam + L2", "AdamW (decoupled)")
    return DecayComparison({k: paths[k] for k in order}, gap("SGD + L2", "SGD decoupled"),
                           gap("Adam + L2", "AdamW (decoupled)"), lr, weight_decay)


class OptimizerLabModel:
    """The lab's state and its one job. Attributes are read-only views; change them through the setters."""

    def __init__(self, racers: Any = DEFAULT_RACE, settings: RaceSettings | None = None):
        self.changed = Signal()
        self._settings = settings if settings is not None else RaceSettings()
        if not isinstance(self._settings, RaceSettings):
            raise ValueInputError(f"settings must be RaceSettings, got {self._settings!r}")
        self._expression = ""
        self._surface: Surface = (make_surface(self._settings.surface) if self._settings.surface != CUSTOM
                                  else ExpressionSurface("x**2 + 10*y**2").checked())
        self._start: tuple[float, float] = tuple(map(float, self._surface.start))  # type: ignore[assignment]
        self._racers: list[Racer] = []
        self._schedule: Schedule | None = None
        for kind, hyper in racers:
            self.add_optimizer(kind, **dict(hyper))

    # ------------------------------------------------------------------------------------------------- reading
    @property
    def settings(self) -> RaceSettings:
        return self._settings

    @property
    def surface_kind(self) -> str:
        return self._settings.surface

    @property
    def surface(self) -> Surface:
        """The surface without noise (its declared parameters are its settings)."""
        return self._surface

    @property
    def raced_surface(self) -> Surface:
        """The surface as raced: with gradient noise when noise > 0."""
        sigma = self._settings.noise
        return NoisyGradient(self._surface, sigma) if sigma > 0 else self._surface

    @property
    def expression(self) -> str:
        return self._expression

    @property
    def start(self) -> tuple[float, float]:
        return self._start

    @property
    def n_steps(self) -> int:
        return self._settings.n_steps

    @property
    def noise(self) -> float:
        return self._settings.noise

    @property
    def schedule(self) -> Schedule | None:
        return self._schedule

    @property
    def racers(self) -> tuple[Racer, ...]:
        return tuple(self._racers)

    def racer(self, index: int) -> Racer:
        return self._racers[self._index(index)]

    def specs(self) -> list[tuple[str, str, dict[str, Any]]]:
        """The enabled racers as ``race`` takes them."""
        return [r.spec() for r in self._racers if r.enabled]

    # ------------------------------------------------------------------------------------------------- surface
    def set_surface(self, kind: str, **params: Any) -> None:
        """Race on the registered surface ``kind`` with these declared parameters (the others at their defaults);
        the start point moves to the surface's suggested start. CUSTOM re-uses the last expression."""
        if kind == CUSTOM:
            self.set_expression(self._expression or "x**2 + 10*y**2")
            return
        surface = make_surface(kind, **params)
        self._settings = self._settings.replace(surface=kind)
        self._install_surface(surface, reset_start=True)

    def set_surface_params(self, **changes: Any) -> None:
        """Change declared parameters of the current named surface (e.g. condition=50); the start point stays."""
        if self.surface_kind == CUSTOM:
            raise ValueInputError("a custom surface has no parameters besides its expression")
        surface = self._surface.replace(**changes)
        self._install_surface(surface, reset_start=False)

    def set_expression(self, text: str) -> None:
        """Race on f(x, y) = ``text`` (e.g. "x**2 + 10*y**2 + sin(3*x)"). A typo, an unknown function or a name
        other than x and y is refused with the expression's own message (ExpressionError or ValueInputError)."""
        if not isinstance(text, str):
            raise ValueInputError(f"the expression must be text, got {text!r}")
        surface = ExpressionSurface(text.strip()).checked()
        self._expression = text.strip()
        self._settings = self._settings.replace(surface=CUSTOM)
        self._install_surface(surface, reset_start=True)

    def _install_surface(self, surface: Surface, reset_start: bool) -> None:
        self._surface = surface
        if reset_start:
            self._start = (float(surface.start[0]), float(surface.start[1]))
        self.changed.emit("surface")

    def set_start(self, x: float, y: float) -> None:
        """Start every optimizer from (x, y)."""
        start = (check_real("start x", x, -DIVERGENCE_LIMIT, DIVERGENCE_LIMIT),
                 check_real("start y", y, -DIVERGENCE_LIMIT, DIVERGENCE_LIMIT))
        self._start = start
        self.changed.emit("start")

    def set_noise(self, sigma: float) -> None:
        self._settings = self._settings.replace(noise=sigma)
        self.changed.emit("noise")

    def set_n_steps(self, n: int) -> None:
        self._settings = self._settings.replace(n_steps=n)
        self.changed.emit("steps")

    def set_schedule(self, schedule: Schedule | None) -> None:
        """Shape every optimizer's rate with ``schedule`` (rebased on its own lr); None: constant rates."""
        if schedule is not None and not isinstance(schedule, Schedule):
            raise ValueInputError(f"schedule must be a Schedule or None, got {schedule!r}")
        self._schedule = schedule
        self.changed.emit("schedule")

    # ---------------------------------------------------------------------------------------------- optimizers
    def add_optimizer(self, kind: str, **hyper: Any) -> Racer:
        """Append a racer of RACERS entry ``kind`` (an optimizer or "Newton") with these hyperparameters (the others
        at the entry's defaults; Adam's betas as ``betas=`` or ``beta1=``/``beta2=``). Its label is ``kind``, or
        "kind #2"..."""
        info = racer_info(kind)
        if len(self._racers) >= MAX_RACERS:
            raise ValueInputError(f"a race takes at most {MAX_RACERS} optimizers")
        values = info.settings(**info.values(hyper))
        labels = {r.label for r in self._racers}
        label, i = kind, 1
        while label in labels:
            i += 1
            label = f"{kind} #{i}"
        used = {r.slot for r in self._racers}
        slot = next(s for s in range(len(self._racers) + 1) if s not in used)
        racer = Racer(label, kind, values, True, slot)
        self._racers.append(racer)
        self.changed.emit("optimizers")
        return racer

    def remove_optimizer(self, index: int) -> None:
        del self._racers[self._index(index)]
        self.changed.emit("optimizers")

    def set_hyper(self, index: int, **changes: Any) -> None:
        """Change hyperparameters of racer ``index`` (declared names; Adam's betas in either form)."""
        i = self._index(index)
        racer = self._racers[i]
        values = racer.info.settings(**racer.info.values({**racer.hyper.as_dict(), **self._split(racer, changes)}))
        self._racers[i] = dataclasses.replace(racer, hyper=values)
        self.changed.emit("optimizers")

    def set_enabled(self, index: int, enabled: bool) -> None:
        i = self._index(index)
        if not isinstance(enabled, (bool, np.bool_)):
            raise ValueInputError(f"enabled must be true or false, got {enabled!r}")
        if self._racers[i].enabled != bool(enabled):
            self._racers[i] = dataclasses.replace(self._racers[i], enabled=bool(enabled))
            self.changed.emit("optimizers")

    @staticmethod
    def _split(racer: Racer, changes: Mapping[str, Any]) -> dict[str, Any]:
        if "betas" not in changes:
            return dict(changes)
        split = racer.info.values(betas=changes["betas"])
        return {**{k: v for k, v in changes.items() if k != "betas"}, "beta1": split["beta1"], "beta2": split["beta2"]}

    def _index(self, index: Any) -> int:
        i = check_int("optimizer row", index, 0)
        if i >= len(self._racers):
            raise ValueInputError(f"there is no optimizer row {i}; the race has {len(self._racers)}")
        return i

    # ----------------------------------------------------------------------------------------------------- race
    def race_job(self) -> Job[dict[str, RaceResult]]:
        """The race as it is set now, as a job: yields Progress, returns {label: RaceResult} (enabled racers, in
        row order; an empty dict when none is enabled). Arguments are checked here, when the job is made."""
        specs = self.specs()
        if not specs:
            return _nothing()
        # a NoisyGradient's generator is stateful: every job gets its own (and resets it: a race is reproducible)
        return race_job(self.raced_surface, specs, self._start, self._settings.n_steps, self._schedule)

    def weight_decay_comparison(self, lr: float = 0.05, weight_decay: float = 0.1, steps: int = 200
                                ) -> DecayComparison:
        """The four weight-decay variants on this surface from this start."""
        return weight_decay_comparison(self._surface, self._start, lr, weight_decay, steps)

    def preconditioners(self, result: RaceResult) -> "Preconditioners":
        """The three step directions along a racer's path, on this surface without noise."""
        return preconditioners(self._surface, result.trajectory, result.grads)

    def race_winner(self, results: Mapping[str, RaceResult]) -> tuple[str | None, dict[str, int | None]]:
        """``race_winner`` with this surface's known minima."""
        return race_winner(results, self._surface.minima)

    def loss_curves(self, results: Mapping[str, RaceResult]) -> tuple[str, float, dict[str, np.ndarray]]:
        """``loss_curves`` with this surface's known minima."""
        return loss_curves(results, self._surface.minima)


@dataclass(frozen=True)
class Preconditioners:
    """Three step directions at each point x_0 .. x_{m-1} of a path: (m, 2) arrays unless said otherwise.

    gd        -g: gradient descent, no preconditioner (steepest descent, blind to curvature).
    adagrad   -g / sqrt(s), s = sum_{tau <= t} g_tau^2 per coordinate (``sum_sq``, AdaGrad's accumulator along this
              path): a diagonal preconditioner, one scale per coordinate. At t = 0 it is -sign(g). 0 where s = 0.
    newton    -H^-1 g: the full Hessian. On a quadratic, x + newton is the minimum (or the saddle / maximum where H
              is not positive definite). NaN where H is singular.
    hessians (m, 3) as (hxx, hxy, hyy); eigenvalues (m, 2) as (low, high)."""

    points: np.ndarray
    grads: np.ndarray
    hessians: np.ndarray
    eigenvalues: np.ndarray
    sum_sq: np.ndarray
    gd: np.ndarray
    adagrad: np.ndarray
    newton: np.ndarray

    @property
    def condition(self) -> np.ndarray:
        """(m,) |largest eigenvalue| / |smallest| of H (inf where H is singular)."""
        a = np.abs(self.eigenvalues)
        with np.errstate(all="ignore"):
            return np.where(a.min(axis=1) > 0, a.max(axis=1) / a.min(axis=1), np.inf)

    @property
    def positive_definite(self) -> np.ndarray:
        """(m,) True where both eigenvalues of H are > 0: the surface curves up in every direction (a bowl)."""
        return self.eigenvalues[:, 0] > 0


def preconditioners(surface: Surface, points: Any, grads: Any = None) -> Preconditioners:
    """The three step directions of Preconditioners along ``points`` (m, 2), a path in order; ``grads`` (m, 2) the
    gradients there (default: ``surface.grad``)."""
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) == 0:
        raise ValueInputError(f"points must be a list of (x, y) pairs, got shape {pts.shape}")
    m = len(pts)
    if grads is None:
        gx, gy = surface.grad(pts[:, 0], pts[:, 1])
        grads = np.stack([np.broadcast_to(gx, (m,)), np.broadcast_to(gy, (m,))], axis=1)
    g = np.asarray(grads, dtype=np.float64)
    hxx, hxy, hyy = (np.broadcast_to(np.asarray(h, dtype=np.float64), (m,)) for h in surface.hessian(pts[:, 0], pts[:, 1]))
    lo, hi, _ = hessian_eigen(hxx, hxy, hyy)
    dx, dy, singular, _, _ = newton_direction(g[:, 0], g[:, 1], hxx, hxy, hyy, "none")
    s = np.cumsum(g * g, axis=0)
    with np.errstate(all="ignore"):
        ada = np.where(s > 0, -g / np.sqrt(s), 0.0)
    newton = np.stack([np.where(singular, np.nan, dx), np.where(singular, np.nan, dy)], axis=1)
    return Preconditioners(pts, g, np.stack([hxx, hxy, hyy], axis=1), np.stack([lo, hi], axis=1), s, -g, ada, newton)


def point_kind(surface: Surface, x: float, y: float, gtol: float = 1e-6) -> str:
    """"minimum", "saddle point" or "maximum" when (x, y) is a stationary point (|grad| <= gtol) with a
    non-singular Hessian, told apart by the signs of H's eigenvalues; "" otherwise."""
    gx, gy = (float(v) for v in surface.grad(x, y))
    if not math.hypot(gx, gy) <= gtol:
        return ""
    lo, hi, _ = hessian_eigen(*(float(h) for h in surface.hessian(x, y)))
    lo, hi = float(lo), float(hi)
    if not (math.isfinite(lo) and math.isfinite(hi)) or min(abs(lo), abs(hi)) <= SINGULAR_RTOL * max(abs(lo), abs(hi)):
        return ""
    return "minimum" if lo > 0 else "maximum" if hi < 0 else "saddle point"


def _nothing() -> Job[dict[str, RaceResult]]:
    return {}
    yield  # pragma: no cover  (makes this a generator)


@dataclass(frozen=True)
class Heatmap:
    """What the surface plot colours: ``colour`` (n, n) over ``rect`` = (x0, y0, width, height), rows along y;
    ``levels`` (lo, hi) from the suggested view (the margin saturates); ``log_colour`` when a wide range of values
    (Rosenbrock: 0 .. 2500 with its valley near 0) is coloured by log(1 + f - f_min)."""

    colour: np.ndarray
    rect: tuple[float, float, float, float]
    levels: tuple[float, float]
    log_colour: bool


def surface_heatmap(surface: Surface, n: int = 360, margin: float = 0.5) -> Heatmap:
    """The surface's values over its suggested view widened by ``margin`` of its size on every side (so panning and
    runs that overshoot still show the surface), ready to colour. ValueInputError if no value in view is finite."""
    n = check_int("heatmap size", n, 2, 2000)
    margin = check_real("margin", margin, 0.0, 10.0)
    x0, x1 = surface.xlim
    y0, y1 = surface.ylim
    ex, ey = margin * (x1 - x0), margin * (y1 - y0)
    gx0, gx1, gy0, gy1 = x0 - ex, x1 + ex, y0 - ey, y1 + ey
    X, Y = np.meshgrid(np.linspace(gx0, gx1, n), np.linspace(gy0, gy1, n))
    with np.errstate(all="ignore"):
        Z = np.broadcast_to(np.asarray(surface.value(X, Y), dtype=np.float64), X.shape)
        finite = np.isfinite(Z)
        if not finite.any():
            raise ValueInputError("the surface has no finite values in view")
        inner = finite & (X >= x0) & (X <= x1) & (Y >= y0) & (Y <= y1)
        if not inner.any():
            inner = finite
        fmin = min([m[2] for m in surface.minima] + [float(Z[inner].min())])
        q = np.where(finite, Z - fmin, np.nan)
        qin = q[inner]
        qmax, median = float(np.nanmax(qin)), float(np.nanmedian(qin))
        log_colour = qmax > 20.0 * max(median, 1e-12) or qmax > 1e3
        C = np.log1p(np.maximum(q, 0.0)) if log_colour else q
        lo, hi = float(np.nanmin(C[inner])), float(np.nanmax(C[inner]))
        C = np.where(np.isfinite(C), C, hi)
    if not (np.isfinite(lo) and np.isfinite(hi)) or hi <= lo:
        lo, hi = 0.0, 1.0
    return Heatmap(np.ascontiguousarray(C), (gx0, gy0, gx1 - gx0, gy1 - gy0), (lo, hi), bool(log_colour))


def contour_segments(values: np.ndarray, levels: Any, rect: tuple[float, float, float, float]) -> np.ndarray:
    """Contour lines of ``values`` (n_x, n_y: values[i, j] at x_i, y_j over ``rect`` = (x0, y0, width, height)) at
    each of ``levels``, by marching squares: an (S, 2, 2) array of segments [[x, y], [x, y]], ready to draw as
    pairs. Only the cells a level passes through are visited; a saddle cell gives two segments."""
    Z = np.asarray(values, dtype=np.float64)
    if Z.ndim != 2 or min(Z.shape) < 2:
        raise ValueInputError(f"contours need a 2-D grid of at least 2x2 values, got shape {Z.shape}")
    nx, ny = Z.shape
    x0, y0, w, h = (float(v) for v in rect)
    # corners of every cell, counter-clockwise from (i, j): (i,j) (i+1,j) (i+1,j+1) (i,j+1)
    corners = np.stack([Z[:-1, :-1], Z[1:, :-1], Z[1:, 1:], Z[:-1, 1:]], axis=-1).reshape(-1, 4)
    ci, cj = (g.ravel() for g in np.meshgrid(np.arange(nx - 1.0), np.arange(ny - 1.0), indexing="ij"))
    offsets = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=np.float64)
    lo, hi = np.nanmin(corners, axis=1), np.nanmax(corners, axis=1)
    out = []
    with np.errstate(all="ignore"):
        for level in np.atleast_1d(np.asarray(levels, dtype=np.float64)):
            cells = np.flatnonzero((lo < level) & (hi >= level))
            if cells.size == 0:
                continue
            v = corners[cells]                                   # (k, 4)
            p, q = v, np.roll(v, -1, axis=1)                     # edge e runs from corner e to corner e+1
            crosses = (p < level) != (q < level)
            t = np.where(crosses, (level - p) / (q - p), 0.0)[..., None]
            start, end = offsets, np.roll(offsets, -1, axis=0)
            pts = start + t * (end - start) + np.stack([ci[cells], cj[cells]], axis=-1)[:, None, :]   # (k, 4, 2)
            count = crosses.sum(axis=1)
            two = count == 2
            order = np.argsort(~crosses[two], axis=1, kind="stable")[:, :2]
            out.append(np.take_along_axis(pts[two], order[..., None], axis=1))
            four = count == 4                                    # a saddle: pair the edges around it
            if four.any():
                out += [pts[four][:, [0, 1]], pts[four][:, [2, 3]]]
    segs = np.concatenate(out) if out else np.zeros((0, 2, 2))
    segs = segs[np.isfinite(segs).all(axis=(1, 2))]
    scale = np.array([w / (nx - 1), h / (ny - 1)])
    return segs * scale + np.array([x0, y0])
