"""2-D loss surfaces with analytic gradients, and the optimizer race that runs optimizers across them.

Every surface evaluates elementwise over same-shaped arrays of x and y (a 300x300 heatmap is one call):
``value(x, y)`` and ``grad(x, y) -> (gx, gy)``. It also carries a suggested view (``xlim``, ``ylim``), a suggested
``start`` point and its known ``minima`` as (x, y, value) triples.

``race(surface, specs, start, n_steps, schedule)`` runs several optimizers from one start point in lockstep: one
vectorised gradient call per step for all of them, and one call of ``kernels.optim.race_step_2d``, which applies
the same per-element rules as the ``simulator.functional.optim`` classes (so a race and a class take identical steps).
``race_job`` is the same race as a job (``simulator.core.jobs``): it yields Progress and returns the results.

The named surfaces are Settings (``simulator.core.params``): their parameters (a bowl's condition number, Rosenbrock's
a and b, ...) are declared once with ranges, labels and help, validated when a surface is made, and a form can be
built from ``params_of(SURFACES[name])``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Any, Callable, ClassVar, Mapping, Sequence

import numpy as np

from kernels import optim as K
from simulator.core.errors import ValueInputError
from simulator.core.jobs import Job, Progress, run_job
from simulator.core.params import Settings, check_int, check_real, param, params_of
from simulator.functional.optim import OPTIMIZERS, Optimizer, make_optimizer
from simulator.functional.schedules import Schedule

__all__ = [
    "Surface", "QuadraticBowl", "Rosenbrock", "Beale", "Saddle", "Himmelblau", "Hills", "PlateauCliff",
    "ExpressionSurface", "NoisyGradient", "SURFACES", "make_surface", "RaceResult", "race", "race_job",
    "DIVERGENCE_LIMIT", "MAX_RACE_STEPS", "MAX_GRID",
]

DIVERGENCE_LIMIT = 1e6
MAX_RACE_STEPS = 100_000     # a race keeps every point of every path: 100k steps x 10 optimizers is 16 MB
MAX_GRID = 2000              # grid(n) allocates n x n values
MAX_RACERS = 32


def _xy(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)


def _pair(name: str, value: Any) -> tuple[Any, Any]:
    try:
        a, b = value
    except (TypeError, ValueError):
        raise ValueInputError(f"{name} must be two numbers, got {value!r}") from None
    return a, b


def _polish(surface: "Surface", x: float, y: float, iterations: int = 30) -> tuple[float, float, float]:
    """Newton's method on the analytic gradient (Hessian by centred differences of it), from (x, y)."""
    h = 1e-6
    for _ in range(iterations):
        gx, gy = (float(v) for v in surface.grad(x, y))
        if abs(gx) < 1e-15 and abs(gy) < 1e-15:
            break
        hxx, hyx = ((a - b) / (2 * h) for a, b in zip(surface.grad(x + h, y), surface.grad(x - h, y)))
        hxy, hyy = ((a - b) / (2 * h) for a, b in zip(surface.grad(x, y + h), surface.grad(x, y - h)))
        det = hxx * hyy - hxy * hyx
        x, y = x - (hyy * gx - hxy * gy) / det, y - (hxx * gy - hyx * gx) / det
    return float(x), float(y), float(surface.value(x, y))


class Surface(Settings):
    """Base class of 2-D surfaces. Subclasses define value and grad; x, y: arrays of one shape (or scalars).
    Their declared fields (``param``) are validated when a surface is made."""

    name: str = "surface"
    xlim: tuple[float, float] = (-2.0, 2.0)
    ylim: tuple[float, float] = (-2.0, 2.0)
    start: tuple[float, float] = (-1.5, 1.5)
    minima: tuple[tuple[float, float, float], ...] = ()

    def value(self, x: Any, y: Any) -> np.ndarray:
        raise NotImplementedError

    def grad(self, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def grid(self, n: int = 300) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(X, Y, Z), each (n, n), over the suggested view; Z[i, j] = value(X[i, j], Y[i, j]), rows along y."""
        n = check_int("grid size", n, 2, MAX_GRID)
        xs = np.linspace(*self.xlim, n)
        ys = np.linspace(*self.ylim, n)
        X, Y = np.meshgrid(xs, ys)
        with np.errstate(over="ignore", invalid="ignore"):
            return X, Y, self.value(X, Y)


@dataclass(frozen=True)
class QuadraticBowl(Surface):
    """f = (u^2 + condition * v^2) / 2 with (u, v) the point rotated by -angle (degrees): an ellipse whose steep
    axis is ``angle`` + 90 degrees from the x axis. Hessian eigenvalues 1 and ``condition``; minimum 0 at the origin.
    Plain gradient descent is stable for lr < 2 / condition."""

    condition: float = param(10.0, low=1.0, high=1e4, log=True, label="condition number",
                             doc="ratio of the steepest to the flattest curvature (Hessian eigenvalues 1 and this); "
                                 "plain gradient descent is stable only for lr < 2 / condition")
    angle: float = param(30.0, low=-180.0, high=180.0, decimals=1, label="angle (degrees)",
                         doc="rotation of the ellipse: a bowl not aligned with the axes defeats per-coordinate "
                             "scaling (AdaGrad, RMSProp, Adam)")
    name = "Ill-conditioned bowl"
    xlim = (-2.0, 2.0)
    ylim = (-2.0, 2.0)
    start = (-1.5, 1.0)
    minima = ((0.0, 0.0, 0.0),)

    @property
    def _cs(self) -> tuple[float, float]:
        a = math.radians(self.angle)
        return math.cos(a), math.sin(a)

    def value(self, x: Any, y: Any) -> np.ndarray:
        x, y = _xy(x, y)
        c, s = self._cs
        u, v = c * x + s * y, -s * x + c * y
        return 0.5 * (u * u + self.condition * v * v)

    def grad(self, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        x, y = _xy(x, y)
        c, s = self._cs
        u, v = c * x + s * y, -s * x + c * y
        du, dv = u, self.condition * v
        return c * du - s * dv, s * du + c * dv


@dataclass(frozen=True)
class Rosenbrock(Surface):
    """f = (a - x)^2 + b (y - x^2)^2: a curved, flat-bottomed valley; minimum 0 at (a, a^2)."""

    a: float = param(1.0, low=-10.0, high=10.0, decimals=2, label="a", doc="the minimum is at (a, a^2)")
    b: float = param(100.0, low=0.0, high=1e4, decimals=1, label="b",
                     doc="steepness of the valley's walls: larger b makes a narrower, harder valley")
    name = "Rosenbrock"
    xlim = (-2.0, 2.0)
    ylim = (-1.0, 3.0)
    start = (-1.5, 2.0)

    @property
    def minima(self) -> tuple[tuple[float, float, float], ...]:  # type: ignore[override]
        return ((self.a, self.a * self.a, 0.0),)

    def value(self, x: Any, y: Any) -> np.ndarray:
        x, y = _xy(x, y)
        r = y - x * x
        return (self.a - x) ** 2 + self.b * r * r

    def grad(self, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        x, y = _xy(x, y)
        r = y - x * x
        return -2.0 * (self.a - x) - 4.0 * self.b * x * r, 2.0 * self.b * r


@dataclass(frozen=True)
class Beale(Surface):
    """f = (1.5 - x + xy)^2 + (2.25 - x + xy^2)^2 + (2.625 - x + xy^3)^2; minimum 0 at (3, 0.5), sharp ridges."""

    name = "Beale"
    xlim = (-4.5, 4.5)
    ylim = (-4.5, 4.5)
    start = (1.0, 1.5)
    minima = ((3.0, 0.5, 0.0),)

    def _terms(self, x: np.ndarray, y: np.ndarray):
        y2 = y * y
        y3 = y2 * y
        return 1.5 - x + x * y, 2.25 - x + x * y2, 2.625 - x + x * y3, y2, y3

    def value(self, x: Any, y: Any) -> np.ndarray:
        x, y = _xy(x, y)
        t1, t2, t3, _, _ = self._terms(x, y)
        return t1 * t1 + t2 * t2 + t3 * t3

    def grad(self, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        x, y = _xy(x, y)
        t1, t2, t3, y2, y3 = self._terms(x, y)
        gx = 2.0 * (t1 * (y - 1.0) + t2 * (y2 - 1.0) + t3 * (y3 - 1.0))
        gy = 2.0 * x * (t1 + 2.0 * y * t2 + 3.0 * y2 * t3)
        return gx, gy


@dataclass(frozen=True)
class Saddle(Surface):
    """f = x^2 - y^2: a saddle at the origin and no minimum (unbounded below along y)."""

    name = "Saddle"
    xlim = (-2.0, 2.0)
    ylim = (-2.0, 2.0)
    start = (-1.5, 1e-3)
    minima = ()

    def value(self, x: Any, y: Any) -> np.ndarray:
        x, y = _xy(x, y)
        return x * x - y * y

    def grad(self, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        x, y = _xy(x, y)
        return 2.0 * x, -2.0 * y


@dataclass(frozen=True)
class Himmelblau(Surface):
    """f = (x^2 + y - 11)^2 + (x + y^2 - 7)^2: four minima of value 0 (which one you reach depends on the start)."""

    name = "Himmelblau"
    xlim = (-5.0, 5.0)
    ylim = (-5.0, 5.0)
    start = (-0.5, 0.0)
    # (3, 2) exactly; the other three are roots of a quartic, to double precision.
    minima = (
        (3.0, 2.0, 0.0),
        (-2.805118086952745, 3.131312518250573, 0.0),
        (-3.779310253377747, -3.283185991286170, 0.0),
        (3.584428340330492, -1.848126526964404, 0.0),
    )

    def value(self, x: Any, y: Any) -> np.ndarray:
        x, y = _xy(x, y)
        a, b = x * x + y - 11.0, x + y * y - 7.0
        return a * a + b * b

    def grad(self, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        x, y = _xy(x, y)
        a, b = x * x + y - 11.0, x + y * y - 7.0
        return 4.0 * x * a + 2.0 * b, 2.0 * a + 4.0 * y * b


@dataclass(frozen=True)
class Hills(Surface):
    """f = bowl * (x^2 + y^2) - sum_i depth_i exp(-|p - c_i|^2 / (2 width_i^2)): Gaussian wells of different depths
    (a deep global one and shallower local ones) in a shallow bowl that keeps runs from wandering off."""

    centers: tuple[tuple[float, float], ...] = ((-1.0, 1.0), (1.2, -0.6), (1.2, 1.4))
    depths: tuple[float, ...] = (1.5, 0.9, 0.6)
    widths: tuple[float, ...] = (0.6, 0.5, 0.4)
    bowl: float = param(0.05, low=0.0, high=10.0, decimals=3, label="bowl",
                        doc="curvature of the shallow bowl that keeps runs from wandering off")
    name = "Hills"
    xlim = (-3.0, 3.0)
    ylim = (-3.0, 3.0)
    start = (2.5, -2.0)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (len(self.centers) == len(self.depths) == len(self.widths)):
            raise ValueInputError("Hills needs as many depths and widths as centers")
        if any(not (w > 0) for w in self.widths):
            raise ValueInputError("Hills widths must be > 0")

    @cached_property
    def minima(self) -> tuple[tuple[float, float, float], ...]:  # type: ignore[override]
        """Polished from each well's centre; wells that merge into a deeper one are listed once."""
        found: list[tuple[float, float, float]] = []
        for cx, cy in self.centers:
            mx, my, mv = _polish(self, cx, cy)
            gx, gy = self.grad(mx, my)
            if abs(gx) + abs(gy) > 1e-9 or any(math.hypot(mx - fx, my - fy) < 1e-6 for fx, fy, _ in found):
                continue
            found.append((mx, my, mv))
        return tuple(sorted(found, key=lambda m: m[2]))

    def _wells(self, x: np.ndarray, y: np.ndarray):
        for (cx, cy), d, w in zip(self.centers, self.depths, self.widths):
            dx, dy = x - cx, y - cy
            yield dx, dy, d * np.exp(-(dx * dx + dy * dy) / (2.0 * w * w)), w

    def value(self, x: Any, y: Any) -> np.ndarray:
        x, y = _xy(x, y)
        f = self.bowl * (x * x + y * y)
        for _, _, e, _ in self._wells(x, y):
            f = f - e
        return f

    def grad(self, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        x, y = _xy(x, y)
        gx, gy = 2.0 * self.bowl * x, 2.0 * self.bowl * y
        for dx, dy, e, w in self._wells(x, y):
            # d/dx of -d exp(-r^2 / 2w^2) is +d exp(...) dx / w^2
            gx = gx + e * dx / (w * w)
            gy = gy + e * dy / (w * w)
        return gx, gy


@dataclass(frozen=True)
class PlateauCliff(Surface):
    """f = height * sigmoid(-steepness x) + curvature ((x - x0)^2 + y^2): a nearly flat high plateau (x < 0) that
    drops down a smooth cliff at x = 0 (slope height * steepness / 4) into a wide bowl around (x0, 0).
    sigmoid(-s x) is written (1 - tanh(s x / 2)) / 2, which never overflows."""

    height: float = param(1.0, low=0.0, high=100.0, decimals=2, label="height", doc="height of the plateau")
    steepness: float = param(8.0, low=0.0, high=100.0, decimals=1, label="steepness",
                             doc="how sharply the cliff drops (its slope is height * steepness / 4)")
    curvature: float = param(0.005, low=0.0, high=10.0, decimals=4, label="curvature",
                             doc="curvature of the wide bowl below the cliff")
    x0: float = param(1.5, low=-10.0, high=10.0, decimals=2, label="x0", doc="centre of the bowl below the cliff")
    name = "Plateau and cliff"
    xlim = (-4.0, 3.0)
    ylim = (-2.0, 2.0)
    start = (-3.5, 1.0)

    @cached_property
    def minima(self) -> tuple[tuple[float, float, float], ...]:  # type: ignore[override]
        return (_polish(self, self.x0, 0.0),)

    def value(self, x: Any, y: Any) -> np.ndarray:
        x, y = _xy(x, y)
        cliff = 0.5 * self.height * (1.0 - np.tanh(0.5 * self.steepness * x))
        return cliff + self.curvature * ((x - self.x0) ** 2 + y * y)

    def grad(self, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        x, y = _xy(x, y)
        th = np.tanh(0.5 * self.steepness * x)
        gx = -0.25 * self.height * self.steepness * (1.0 - th * th) + 2.0 * self.curvature * (x - self.x0)
        return gx, 2.0 * self.curvature * y


@dataclass(frozen=True)
class ExpressionSurface(Surface):
    """A surface typed as an expression in x and y, e.g. "x**2 + 3*y**2"; value and gradient from the engine
    (``simulator.evaluate(text, x=..., y=...)``, elementwise over arrays, backward seeded with ones)."""

    text: str
    xlim: tuple[float, float] = (-2.0, 2.0)
    ylim: tuple[float, float] = (-2.0, 2.0)
    start: tuple[float, float] = (-1.5, 1.5)
    minima: tuple[tuple[float, float, float], ...] = ()

    MAX_LENGTH: ClassVar[int] = 1000

    def __post_init__(self) -> None:
        if not isinstance(self.text, str) or not self.text.strip():
            raise ValueInputError("type an expression in x and y, e.g. x**2 + 10*y**2")
        if len(self.text) > self.MAX_LENGTH:
            raise ValueInputError(f"a surface expression may be at most {self.MAX_LENGTH} characters long, "
                                  f"got {len(self.text):,}")
        for name, lim in (("xlim", self.xlim), ("ylim", self.ylim)):
            lo, hi = (check_real(name, v) for v in _pair(name, lim))
            if not lo < hi:
                raise ValueInputError(f"{name} must go from a lower to a higher number, got {lim!r}")
        for v in _pair("start", self.start):
            check_real("start", v)

    def checked(self) -> "ExpressionSurface":
        """This surface, once it has parsed, used only x and y, and given one finite-shaped value and gradient per
        point at two test points; else our error (ExpressionError or ValueInputError) with a learner's message."""
        _ = self.variables
        x, y = np.array([0.1, -0.2]), np.array([0.3, 0.05])
        with np.errstate(all="ignore"):
            v = self.value(x, y)
            self.grad(x, y)
        if np.shape(v) != (2,):
            raise ValueInputError(f"{self.text!r} must give one number per point (x, y)")
        return self

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.text

    @cached_property
    def variables(self) -> tuple[str, ...]:
        """Which of x and y the expression uses (the engine refuses values for names it does not use)."""
        from simulator.graphs.graph import Graph  # the engine: imported when first needed, not when this module loads

        names = {n.id for n in Graph.from_expression(self.text).leaves()}
        extra = sorted(names - {"x", "y"})
        if extra:
            raise ValueInputError(f"a surface expression may use only x and y; {self.text!r} also uses "
                                  f"{', '.join(extra)}")
        return tuple(sorted(names))

    def _evaluate(self, x: Any, y: Any):
        from simulator.engine.api import evaluate

        x, y = np.broadcast_arrays(*_xy(x, y))
        given = {"x": np.array(x), "y": np.array(y)}
        return evaluate(self.text, **{name: given[name] for name in self.variables})

    def value(self, x: Any, y: Any) -> np.ndarray:
        x, y = _xy(x, y)
        shape = np.broadcast_shapes(x.shape, y.shape)
        return np.broadcast_to(np.asarray(self._evaluate(x, y).value, dtype=np.float64), shape).copy()

    def grad(self, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        x, y = _xy(x, y)
        result = self._evaluate(x, y)
        shape = np.broadcast_shapes(x.shape, y.shape)
        # A variable the expression does not use has no gradient entry: its derivative is 0.
        gx = result.grads.get("x", 0.0)
        gy = result.grads.get("y", 0.0)
        return (np.broadcast_to(np.asarray(gx, dtype=np.float64), shape).copy(),
                np.broadcast_to(np.asarray(gy, dtype=np.float64), shape).copy())


@dataclass
class NoisyGradient(Surface):
    """``surface`` with Gaussian noise of standard deviation ``sigma`` added to each gradient component (seeded;
    ``reset()`` replays the same noise). Values are the surface's, without noise."""

    surface: Surface
    sigma: float = 0.1
    seed: int = 0
    _rng: np.random.Generator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.surface, Surface):
            raise ValueInputError(f"NoisyGradient adds noise to a surface, got {self.surface!r}")
        self.sigma = check_real("gradient noise sigma", self.sigma, 0.0)
        self.seed = check_int("noise seed", self.seed, 0)
        self.reset()

    def reset(self) -> None:
        self._rng = np.random.default_rng(self.seed)

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"{self.surface.name} (noisy, sigma={self.sigma:g})"

    xlim = property(lambda self: self.surface.xlim)  # type: ignore[assignment]
    ylim = property(lambda self: self.surface.ylim)  # type: ignore[assignment]
    start = property(lambda self: self.surface.start)  # type: ignore[assignment]
    minima = property(lambda self: self.surface.minima)  # type: ignore[assignment]

    def value(self, x: Any, y: Any) -> np.ndarray:
        return self.surface.value(x, y)

    def grad(self, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        gx, gy = self.surface.grad(x, y)
        gx = gx + self.sigma * self._rng.standard_normal(np.shape(gx))
        gy = gy + self.sigma * self._rng.standard_normal(np.shape(gy))
        return gx, gy


SURFACES: Mapping[str, Callable[[], Surface]] = MappingProxyType({
    "Ill-conditioned bowl": QuadraticBowl,
    "Rosenbrock": Rosenbrock,
    "Beale": Beale,
    "Saddle": Saddle,
    "Himmelblau": Himmelblau,
    "Hills": Hills,
    "Plateau and cliff": PlateauCliff,
})


def make_surface(name: str, **params: Any) -> Surface:
    """Build the registered surface ``name`` (a key of SURFACES) with its declared parameters (e.g. condition,
    angle); a parameter it does not declare is refused by name."""
    try:
        cls = SURFACES[name]
    except (KeyError, TypeError):
        raise ValueInputError(f"unknown surface {name!r}; known: {', '.join(SURFACES)}") from None
    declared = [p.name for p in params_of(cls)]
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise ValueInputError(f"the {name} surface has no parameter {', '.join(map(repr, unknown))}"
                              + (f"; it has: {', '.join(declared)}" if declared else ""))
    return cls(**params)


# ----------------------------------------------------------------------------------------------------------- race
@dataclass(frozen=True)
class RaceResult:
    """One optimizer's run. trajectory: (m, 2) points x_0 .. x_{m-1}; losses: (m,) surface values there.
    m = n_steps + 1, or, if update number s diverged (non-finite or a coordinate beyond DIVERGENCE_LIMIT),
    m = s: the run stops at its last good point and ``diverged_at`` = s. grads: (m, 2) the gradient at each point
    of the path without noise (what an arrow of -grad f shows)."""

    label: str
    optimizer: str
    hyperparameters: Mapping[str, Any]
    trajectory: np.ndarray
    losses: np.ndarray
    diverged_at: int | None
    lrs: np.ndarray  # (n_steps,) the rate of each update
    grads: np.ndarray | None = None

    @property
    def final(self) -> tuple[float, float]:
        return float(self.trajectory[-1, 0]), float(self.trajectory[-1, 1])


OptimizerSpec = Any  # "Adam" | ("Adam", {"lr": 0.1}) | ("fast Adam", "Adam", {"lr": 0.1})


def _parse_specs(specs: Any) -> list[tuple[str, str, dict[str, Any]]]:
    if isinstance(specs, Mapping):
        items: list[Any] = []
        for label, value in specs.items():
            kind, params = (value, {}) if isinstance(value, str) else _pair(f"optimizer spec {label!r}", value)
            items.append((label, kind, params))
    elif isinstance(specs, (str, bytes)) or not isinstance(specs, (Sequence, tuple, list)):
        raise ValueInputError(f"optimizers must be a list such as ['SGD', ('Adam', {{'lr': 0.1}})], got {specs!r}")
    else:
        items = list(specs)
    if len(items) > MAX_RACERS:
        raise ValueInputError(f"a race takes at most {MAX_RACERS} optimizers, got {len(items)}")
    parsed = []
    seen: dict[str, int] = {}
    for item in items:
        if isinstance(item, str):
            label, kind, params = None, item, {}
        elif isinstance(item, (tuple, list)) and len(item) == 2:
            (kind, params), label = item, None
        elif isinstance(item, (tuple, list)) and len(item) == 3:
            label, kind, params = item
        else:
            raise ValueInputError(f"cannot read optimizer spec {item!r}")
        if not isinstance(kind, str) or kind not in OPTIMIZERS:
            raise ValueInputError(f"unknown optimizer {kind!r}; known: {', '.join(OPTIMIZERS)}")
        if not isinstance(params, Mapping):
            raise ValueInputError(f"the hyperparameters of {kind} must be a mapping such as {{'lr': 0.1}}, "
                                  f"got {params!r}")
        if label is None:
            label = kind
            seen[label] = seen.get(label, 0) + 1
            if seen[label] > 1:
                label = f"{kind} #{seen[label]}"
        parsed.append((str(label), kind, dict(params)))
    labels = [p[0] for p in parsed]
    if len(set(labels)) != len(labels):
        raise ValueInputError(f"optimizer labels must be unique, got {labels}")
    if not parsed:
        raise ValueInputError("a race needs at least one optimizer")
    return parsed


def race(surface: Surface, optimizers_spec: Any, start: Sequence[float] | None = None, n_steps: int = 1000,
         schedule: Schedule | None = None) -> dict[str, RaceResult]:
    """Run optimizers from a common start for n_steps updates; returns {label: RaceResult} in spec order.

    optimizers_spec: a sequence of display names ("Adam"), (name, hyperparameters) or (label, name,
    hyperparameters), or a mapping label -> name or (name, hyperparameters); names are keys of
    simulator.functional.optim.OPTIMIZERS, hyperparameters override its defaults. start: (x, y), default surface.start.
    schedule: shapes every optimizer's rate, scaled to that optimizer's own lr (``schedule.with_base(lr)``).
    A NoisyGradient surface is reset first, so a race is reproducible.
    """
    return run_job(race_job(surface, optimizers_spec, start, n_steps, schedule))


def race_job(surface: Surface, optimizers_spec: Any, start: Sequence[float] | None = None, n_steps: int = 1000,
             schedule: Schedule | None = None, report_every: int = 250) -> Job[dict[str, RaceResult]]:
    """``race`` as a job: checks its arguments at once (before the first ``next``, so a bad one raises where the
    job is made), then yields Progress(t, n_steps) every ``report_every`` updates and returns {label: RaceResult}.
    Closing it stops the race."""
    if not isinstance(surface, Surface):
        raise ValueInputError(f"race needs a surface, got {surface!r}")
    n_steps = check_int("number of steps", n_steps, 0, MAX_RACE_STEPS)
    report_every = check_int("report_every", report_every, 1)
    xy = _pair("start", surface.start if start is None else start)
    x_start = np.array([check_real("start x", xy[0], -DIVERGENCE_LIMIT, DIVERGENCE_LIMIT),
                        check_real("start y", xy[1], -DIVERGENCE_LIMIT, DIVERGENCE_LIMIT)])
    if schedule is not None and not isinstance(schedule, Schedule):
        raise ValueInputError(f"schedule must be a Schedule or None, got {schedule!r}")
    specs = _parse_specs(optimizers_spec)
    opts: list[Optimizer] = [make_optimizer(kind, [np.zeros(2)], **params) for _, kind, params in specs]
    lrs = np.empty((n_steps, len(opts)))
    for j, o in enumerate(opts):
        lrs[:, j] = schedule.with_base(o.lr).curve(n_steps) if schedule is not None else o.lr
    return _race_steps(surface, specs, opts, x_start, lrs, report_every)


def _race_steps(surface: Surface, specs: list[tuple[str, str, dict[str, Any]]], opts: list[Optimizer],
                x_start: np.ndarray, lrs: np.ndarray, report_every: int) -> Job[dict[str, RaceResult]]:
    n_steps, k = lrs.shape
    if isinstance(surface, NoisyGradient):
        surface.reset()
    family = np.array([o.race_family() for o in opts], dtype=np.int64)
    hyper = np.ascontiguousarray(np.stack([o.race_row() for o in opts]))
    x = np.tile(x_start, (k, 1))
    s1, s2, s3 = np.zeros((k, 2)), np.zeros((k, 2)), np.zeros((k, 2))
    step = np.zeros(k, dtype=np.int64)
    active = np.ones(k, dtype=np.bool_)
    diverged = np.zeros(k, dtype=np.int64)
    path = np.empty((n_steps + 1, k, 2))
    path[0] = x
    xs, ys = x[:, 0], x[:, 1]  # views: always the current points
    t = 0
    yield Progress(0, n_steps, "racing")
    with np.errstate(all="ignore"):
        while t < n_steps and active.any():
            gx, gy = surface.grad(xs, ys)
            K.race_step_2d(x, np.ascontiguousarray(gx, dtype=np.float64), np.ascontiguousarray(gy, dtype=np.float64),
                           s1, s2, s3, family, hyper, lrs[t], step, active, diverged, DIVERGENCE_LIMIT)
            t += 1
            path[t] = x
            if t % report_every == 0:
                yield Progress(t, n_steps, "racing")
        ends = [int(diverged[j]) if diverged[j] else t + 1 for j in range(k)]
        # the noise-free gradient along every path, in one vectorised call (arrows of -grad f)
        plain = surface.surface if isinstance(surface, NoisyGradient) else surface
        pts = np.concatenate([path[:m, j] for j, m in enumerate(ends)])
        gx, gy = plain.grad(pts[:, 0], pts[:, 1])
        g = np.stack([np.broadcast_to(np.asarray(gx, dtype=np.float64), (len(pts),)),
                      np.broadcast_to(np.asarray(gy, dtype=np.float64), (len(pts),))], axis=1)
        results = {}
        i = 0
        for j, ((label, kind, _), o) in enumerate(zip(specs, opts)):
            m = ends[j]
            traj = path[:m, j].copy()
            losses = np.asarray(surface.value(traj[:, 0], traj[:, 1]), dtype=np.float64)
            results[label] = RaceResult(label, kind, MappingProxyType(o.hyperparameters()), traj, losses,
                                        int(diverged[j]) if diverged[j] else None, lrs[:, j].copy(),
                                        np.ascontiguousarray(g[i:i + m]))
            i += m
    yield Progress(n_steps, n_steps, "done")
    return results
