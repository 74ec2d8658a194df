"""2-D loss surfaces with analytic gradients, and the optimizer race that runs optimizers across them.

Every surface evaluates elementwise over same-shaped arrays of x and y (a 300x300 heatmap is one call):
``value(x, y)`` and ``grad(x, y) -> (gx, gy)``. It also carries a suggested view (``xlim``, ``ylim``), a suggested
``start`` point and its known ``minima`` as (x, y, value) triples.

``race(surface, specs, start, n_steps, schedule)`` runs several optimizers from one start point in lockstep: one
vectorised gradient call per step for all of them, and one call of ``kernels.optim.race_step_2d``, which applies
the same per-element rules as the ``simulator.functional.optim`` classes (so a race and a class take identical steps).
``race_job`` is the same race as a job (``simulator.core.jobs``): it yields Progress and returns the results.

Every surface also gives its Hessian, ``hessian(x, y) -> (hxx, hxy, hyy)``: analytic for the named surfaces, centred
differences of ``grad`` otherwise (``hessian_fd``: expression surfaces). A ``Newton`` racer (not a torch.optim
optimizer: it needs the Hessian) joins the same race, x <- x - lr M^-1 g with M = H, H + lambda I or |H|
(``newton_direction``); the other racers' steps are untouched by it.

The named surfaces are Settings (``simulator.core.params``): their parameters (a bowl's condition number, Rosenbrock's
a and b, ...) are declared once with ranges, labels and help, validated when a surface is made, and a form can be
built from ``params_of(SURFACES[name])``.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Any, Callable, ClassVar, Mapping, Sequence

import numpy as np

from kernels import optim as K
from simulator.core.errors import NumericError, ShapeError, ValueInputError
from simulator.core.jobs import Job, Progress, run_job
from simulator.core.params import Param, Settings, check_int, check_real, param, params_of
from simulator.functional.optim import LR, OPTIMIZERS, Optimizer, OptimizerInfo, make_optimizer
from simulator.functional.schedules import Schedule

__all__ = [
    "Surface", "QuadraticBowl", "Rosenbrock", "Beale", "Saddle", "Himmelblau", "Hills", "PlateauCliff",
    "ExpressionSurface", "NoisyGradient", "SURFACES", "make_surface", "RaceResult", "race", "race_job",
    "DIVERGENCE_LIMIT", "MAX_RACE_STEPS", "MAX_GRID", "hessian_fd", "hessian_eigen", "newton_direction",
    "newton_step_2d",
    "HESSIAN_FIXES", "Newton", "NEWTON", "RACERS", "racer_info", "SINGULAR_RTOL",
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


def hessian_fd(surface: "Surface", x: Any, y: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(hxx, hxy, hyy) by centred differences of ``surface.grad``: one vectorised gradient call at the four points
    (x +- h, y) and (x, y +- h), h = 6e-6 max(1, |coordinate|) (about the cube root of the float64 epsilon: the
    truncation error, h^2 times a third derivative, and the rounding error, eps |g| / h, are then both near 1e-11).
    The two mixed derivatives, d gx / dy and d gy / dx, are averaged, so the result is symmetric."""
    x, y = np.broadcast_arrays(*_xy(x, y))
    shape = x.shape
    x, y = x.ravel(), y.ravel()
    n = x.size
    # the step actually taken ((x + h) - x, exact in floating point) is the one to divide by
    hx = (x + 6e-6 * np.maximum(1.0, np.abs(x))) - x
    hy = (y + 6e-6 * np.maximum(1.0, np.abs(y))) - y
    gx, gy = surface.grad(np.concatenate([x + hx, x - hx, x, x]), np.concatenate([y, y, y + hy, y - hy]))
    gx = np.broadcast_to(np.asarray(gx, dtype=np.float64), (4 * n,))
    gy = np.broadcast_to(np.asarray(gy, dtype=np.float64), (4 * n,))
    hxx = (gx[:n] - gx[n:2 * n]) / (2.0 * hx)
    hyx = (gy[:n] - gy[n:2 * n]) / (2.0 * hx)
    hxy = (gx[2 * n:3 * n] - gx[3 * n:]) / (2.0 * hy)
    hyy = (gy[2 * n:3 * n] - gy[3 * n:]) / (2.0 * hy)
    return hxx.reshape(shape), (0.5 * (hxy + hyx)).reshape(shape), hyy.reshape(shape)


def _full(shape: tuple[int, ...], *values: float) -> tuple[np.ndarray, ...]:
    return tuple(np.full(shape, float(v)) for v in values)


def _shaped(shape: tuple[int, ...], a: Any) -> np.ndarray:
    """``a`` as an array of ``shape`` (broadcast and copied only when it is not one already: broadcast_to costs
    more than the arithmetic on the few points of a race step)."""
    a = np.asarray(a, dtype=np.float64)
    return a if a.shape == shape else np.broadcast_to(a, shape).copy()


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

    def hessian(self, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(hxx, hxy, hyy): the second derivatives at each point (H is symmetric, so hyx = hxy). This default takes
        centred differences of ``grad`` (``hessian_fd``); the named surfaces override it with the exact ones."""
        return hessian_fd(self, x, y)

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

    def hessian(self, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """H = R^T diag(1, condition) R with R the rotation by -angle: the same matrix everywhere."""
        x, y = _xy(x, y)
        c, s = self._cs
        k = self.condition
        return _full(np.broadcast_shapes(x.shape, y.shape), c * c + k * s * s, c * s * (1.0 - k), s * s + k * c * c)


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

    def hessian(self, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x, y = _xy(x, y)
        shape = np.broadcast_shapes(x.shape, y.shape)
        hxx = 2.0 - 4.0 * self.b * (y - x * x) + 8.0 * self.b * x * x
        return _shaped(shape, hxx), _shaped(shape, -4.0 * self.b * x), np.full(shape, 2.0 * self.b)


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

    def hessian(self, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # d t_k / dx = y^k - 1 and d t_k / dy = k x y^(k-1), for t_k = c_k - x + x y^k
        x, y = _xy(x, y)
        t1, t2, t3, y2, y3 = self._terms(x, y)
        hxx = 2.0 * ((y - 1.0) ** 2 + (y2 - 1.0) ** 2 + (y3 - 1.0) ** 2)
        hxy = 2.0 * (t1 + x * (y - 1.0) + 2.0 * y * t2 + 2.0 * x * y * (y2 - 1.0)
                     + 3.0 * y2 * t3 + 3.0 * x * y2 * (y3 - 1.0))
        hyy = 2.0 * x * (x + 2.0 * t2 + 4.0 * x * y2 + 6.0 * y * t3 + 9.0 * x * y2 * y2)
        shape = np.broadcast_shapes(x.shape, y.shape)
        return _shaped(shape, hxx), _shaped(shape, hxy), _shaped(shape, hyy)


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

    def hessian(self, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """diag(2, -2) everywhere: curving up along x, down along y (not positive definite)."""
        x, y = _xy(x, y)
        return _full(np.broadcast_shapes(x.shape, y.shape), 2.0, 0.0, -2.0)


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

    def hessian(self, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x, y = _xy(x, y)
        a, b = x * x + y - 11.0, x + y * y - 7.0
        return 4.0 * a + 8.0 * x * x + 2.0, 4.0 * (x + y), 2.0 + 4.0 * b + 8.0 * y * y


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

    def hessian(self, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # d/dx of e dx / w^2 (with d e / dx = -e dx / w^2) is e / w^2 (1 - dx^2 / w^2)
        x, y = _xy(x, y)
        shape = np.broadcast_shapes(x.shape, y.shape)
        hxx, hxy, hyy = _full(shape, 2.0 * self.bowl, 0.0, 2.0 * self.bowl)
        for dx, dy, e, w in self._wells(x, y):
            w2 = w * w
            hxx = hxx + e / w2 * (1.0 - dx * dx / w2)
            hxy = hxy - e * dx * dy / (w2 * w2)
            hyy = hyy + e / w2 * (1.0 - dy * dy / w2)
        return hxx, hxy, hyy


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

    def hessian(self, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # d(1 - th^2)/dx = -steepness th (1 - th^2), th = tanh(steepness x / 2)
        x, y = _xy(x, y)
        shape = np.broadcast_shapes(x.shape, y.shape)
        th = np.tanh(0.5 * self.steepness * x)
        hxx = 0.25 * self.height * self.steepness ** 2 * th * (1.0 - th * th) + 2.0 * self.curvature
        return (_shaped(shape, hxx), *_full(shape, 0.0, 2.0 * self.curvature))


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

    def hessian(self, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The surface's own Hessian, without noise: the noise stands for mini-batch noise in the gradient, and
        differencing a noisy gradient would multiply its noise by 1 / h. (It draws no noise, so adding a Newton
        racer never changes the noise the other racers see.)"""
        return self.surface.hessian(x, y)


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


# --------------------------------------------------------------------------------------------- second order
SINGULAR_RTOL = 1e-12    # a matrix whose smallest |eigenvalue| is at most this times its largest one is singular
HESSIAN_FIXES = ("none", "H + λI", "|H|")


def _eigen_2x2(hxx: Any, hxy: Any, hyy: Any, lib: Any = np) -> tuple[Any, Any, Any]:
    """(low, high, theta) of [[hxx, hxy], [hxy, hyy]] (see hessian_eigen), with ``lib``'s hypot and atan2: numpy's
    for arrays, ``math``'s for one point's floats (no numpy overhead per call)."""
    m = 0.5 * (hxx + hyy)
    r = lib.hypot(0.5 * (hxx - hyy), hxy)
    return m - r, m + r, 0.5 * lib.atan2(2.0 * hxy, hxx - hyy)


def hessian_eigen(hxx: Any, hxy: Any, hyy: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Eigen-decomposition of symmetric 2x2 matrices [[hxx, hxy], [hxy, hyy]], elementwise: (low, high, theta),
    the eigenvalues low <= high and the angle theta of high's eigenvector (cos theta, sin theta); low's is
    (-sin theta, cos theta). From m = (hxx + hyy) / 2, r = sqrt(((hxx - hyy) / 2)^2 + hxy^2): low, high = m -+ r and
    tan 2 theta = 2 hxy / (hxx - hyy)."""
    return _eigen_2x2(*(np.asarray(h, dtype=np.float64) for h in (hxx, hxy, hyy)))


def _fix_codes(fix: Any) -> np.ndarray:
    if isinstance(fix, str):
        if fix not in HESSIAN_FIXES:
            raise ValueInputError(f"unknown curvature fix {fix!r}; choose one of: {', '.join(HESSIAN_FIXES)}")
        return np.asarray(HESSIAN_FIXES.index(fix))
    return np.asarray(fix, dtype=np.int64)


def _div(a: float, b: float) -> float:
    """a / b in IEEE arithmetic (inf or NaN instead of Python's ZeroDivisionError)."""
    if b != 0.0:
        return a / b
    return math.nan if a == 0.0 or math.isnan(a) else math.copysign(math.inf, a) * math.copysign(1.0, b)


def newton_step_2d(gx: float, gy: float, hxx: float, hxy: float, hyy: float, fix: int = 0, damping: float = 0.0
                   ) -> tuple[float, float, bool, float, float]:
    """One point's Newton direction, in plain floats (a race steps one racer at a time; numpy's per-call overhead
    would cost more than the arithmetic): (dx, dy, singular, low, high). ``fix`` is an index of HESSIAN_FIXES; see
    ``newton_direction``, which applies this to arrays, and the ``Newton`` class, which holds fix and damping."""
    lo, hi, theta = _eigen_2x2(hxx, hxy, hyy, math)
    mu = 0.0
    if fix == 2:
        a_lo, a_hi = max(abs(lo), damping), max(abs(hi), damping)
    else:
        if fix == 1:
            mu = damping + max(0.0, -lo)
        a_lo, a_hi = lo + mu, hi + mu
    if min(abs(a_lo), abs(a_hi)) <= SINGULAR_RTOL * max(abs(a_lo), abs(a_hi)):     # NaN: not singular
        return 0.0, 0.0, True, a_lo, a_hi
    if fix == 2:
        # M = Q |Λ| Q^T: d = -sum_i (q_i . g) / |λ_i| q_i, q_hi = (c, s), q_lo = (-s, c)
        c, s = math.cos(theta), math.sin(theta)
        p_hi, p_lo = _div(c * gx + s * gy, a_hi), _div(-s * gx + c * gy, a_lo)
        return -(p_hi * c - p_lo * s), -(p_hi * s + p_lo * c), False, a_lo, a_hi
    # M = H + mu I inverted by its adjugate (exact for a diagonal H, and no eigenvectors needed)
    mxx, myy = hxx + mu, hyy + mu
    det = mxx * myy - hxy * hxy
    return -_div(myy * gx - hxy * gy, det), -_div(mxx * gy - hxy * gx, det), False, a_lo, a_hi


_newton_ufunc = np.frompyfunc(newton_step_2d, 7, 5)


def newton_direction(gx: Any, gy: Any, hxx: Any, hxy: Any, hyy: Any, fix: Any = "none", damping: Any = 0.0
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The Newton direction d = -M^-1 g at each point, elementwise: (dx, dy, singular, low, high).

    M is the matrix the step divides by, chosen by ``fix`` (one of HESSIAN_FIXES, or their indices per point):
      "none"    M = H: pure Newton. It jumps to the stationary point of the local quadratic model, which is a
                minimum only where H is positive definite: at a saddle or a maximum of the model it goes there.
      "H + λI"  M = H + mu I, mu = λ + max(0, -lowest eigenvalue of H): Levenberg's damping, raised where H has a
                negative eigenvalue until M is positive definite (its lowest eigenvalue is then λ), as in
                "modified Newton" (Nocedal & Wright, sec. 3.4). Large λ: small gradient-descent-like steps, -g / λ.
      "|H|"     M = Q max(|Λ|, λ) Q^T for H = Q Λ Q^T: every curvature made positive, at least λ (saddle-free
                Newton, Dauphin et al. 2014); the step along a direction of negative curvature goes downhill.
    ``damping`` is λ >= 0. low, high: M's eigenvalues. Where M is singular (smallest |eigenvalue| <= SINGULAR_RTOL
    times the largest, or both 0) ``singular`` is True and d = 0: there is no M^-1 g there.
    """
    args = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (gx, gy, hxx, hxy, hyy)),
                               _fix_codes(fix), np.asarray(damping, dtype=np.float64))
    dx, dy, singular, lo, hi = _newton_ufunc(*args)      # scalars in, Python scalars out: asarray covers both
    return (np.asarray(dx, dtype=np.float64), np.asarray(dy, dtype=np.float64), np.asarray(singular, dtype=np.bool_),
            np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64))


NEWTON_LR = dataclasses.replace(LR, default=1.0, doc="Multiplies the Newton step: 1 is the full step, which lands on "
                                "the minimum of a quadratic at once; below 1 is damped Newton (on a quadratic, the "
                                "distance to the minimum shrinks by (1 - lr) per step).")
HESSIAN_FIX = Param("hessian_fix", str, "none", choices=HESSIAN_FIXES, label="curvature fix",
                    doc="What the step divides by. none: H itself (pure Newton; where H is not positive definite it "
                        "heads for a saddle or a maximum). H + λI: Levenberg damping, λ raised past a negative "
                        "eigenvalue so the matrix is positive definite. |H|: H with every eigenvalue made positive "
                        "(at least λ), so negative curvature is walked downhill (saddle-free Newton).")
DAMPING = Param("damping", float, 0.1, low=0.0, high=1e6, log=True, zero_off=True, label="damping λ",
                doc="λ for the curvature fix: added to H (H + λI), or the smallest curvature |H| may use; 0: none "
                    "(a flat direction then leaves the matrix singular). Unused by pure Newton.")


class Newton:
    """Newton's method on a point of the plane, p <- p - lr M^-1 g with M = H, H + λI or |H| (``hessian_fix``, see
    ``newton_direction``): it holds the settings, and ``direction`` is ``newton_step_2d`` with them, the one rule the
    race steps its Newton racers by. Not a torch.optim optimizer: it needs the Hessian, which is n x n for n
    parameters (10^12 numbers for a million-weight network: why it is not used to train networks); here n = 2.

    ``step(grads, hessians)``: per parameter (2 numbers: a point) its gradient (2 numbers) and Hessian (2, 2,
    symmetrised). A singular M raises NumericError with ``singular_text`` (nothing is changed)."""

    def __init__(self, params: Sequence[np.ndarray], lr: float = 1.0, hessian_fix: str = "none",
                 damping: float = 0.1):
        self.params = list(params)
        for p in self.params:
            if not isinstance(p, np.ndarray) or p.dtype != np.float64:
                raise ValueInputError("Newton's parameters must be float64 numpy arrays")
            if p.size != 2:
                raise ShapeError(f"Newton here steps a point of the plane: each parameter holds 2 numbers, got "
                                 f"shape {p.shape}")
        self.lr = NEWTON_LR.check(lr)
        self.hessian_fix = HESSIAN_FIX.check(hessian_fix)
        self.damping = DAMPING.check(damping)
        self._fix = HESSIAN_FIXES.index(self.hessian_fix)

    def hyperparameters(self) -> dict[str, Any]:
        return dict(lr=self.lr, hessian_fix=self.hessian_fix, damping=self.damping)

    @property
    def divides_by(self) -> str:
        """The name of M: "H", "H + λI" or "|H|"."""
        return self.hessian_fix if self._fix else "H"

    def direction(self, gx: float, gy: float, hxx: float, hxy: float, hyy: float
                  ) -> tuple[float, float, bool, float, float]:
        """-M^-1 g at one point, with this racer's fix and λ: newton_step_2d's (dx, dy, singular, low, high)."""
        return newton_step_2d(gx, gy, hxx, hxy, hyy, self._fix, self.damping)

    def singular_label(self) -> str:
        """``singular_text`` in a few words: "H + λI singular"."""
        return f"{self.divides_by} singular"

    def singular_text(self, x: float, y: float, low: float, high: float) -> str:
        """Why there is no step from (x, y), where M's eigenvalues are low and high, and what to change."""
        what = self.divides_by
        return (f"{what} is singular at ({x:.4g}, {y:.4g}): its eigenvalues are {low:.3g} and {high:.3g}, so "
                f"it has no inverse (the surface does not curve along one direction) and there is no {what}⁻¹g to "
                f"step along. " + ("Choose the H + λI or |H| curvature fix with λ > 0." if self._fix == 0
                                   else "Make the damping λ larger."))

    def step(self, grads: Sequence[np.ndarray], hessians: Sequence[np.ndarray]) -> None:
        if len(grads) != len(self.params) or len(hessians) != len(self.params):
            raise ValueInputError(f"Newton needs one gradient and one Hessian per parameter "
                                  f"({len(self.params)}), got {len(grads)} and {len(hessians)}")
        steps = []
        for p, g, h in zip(self.params, grads, hessians):
            g = np.asarray(g, dtype=np.float64).reshape(-1)
            h = np.asarray(h, dtype=np.float64)
            if g.size != 2 or h.shape != (2, 2):
                raise ShapeError(f"a point of the plane needs a gradient of 2 numbers and a Hessian of shape (2, 2); "
                                 f"got {g.size} and {h.shape}")
            dx, dy, singular, lo, hi = self.direction(float(g[0]), float(g[1]), float(h[0, 0]),
                                                      0.5 * float(h[0, 1] + h[1, 0]), float(h[1, 1]))
            if singular:
                x, y = p.reshape(-1)
                raise NumericError(self.singular_text(float(x), float(y), lo, hi))
            steps.append((dx, dy))
        for p, d in zip(self.params, steps):
            p.reshape(-1)[:] += self.lr * np.array(d)


NEWTON = OptimizerInfo("Newton", Newton, (NEWTON_LR, HESSIAN_FIX, DAMPING), "p -= lr H⁻¹ g",
                       doc="Newton's method: divides the gradient by the Hessian (the curvature), so on a quadratic "
                           "bowl one full step lands on the minimum. Second order: it needs the Hessian, which the "
                           "race computes exactly (or by differences of the gradient on a typed surface).")
# Every kind a race takes: torch.optim's optimizers and the second-order racer.
RACERS: Mapping[str, OptimizerInfo] = MappingProxyType({**OPTIMIZERS, "Newton": NEWTON})


def racer_info(name: str) -> OptimizerInfo:
    """The entry ``name`` of RACERS, or ValueInputError listing the known names."""
    try:
        return RACERS[name]
    except (KeyError, TypeError):
        raise ValueInputError(f"unknown optimizer {name!r}; known: {', '.join(RACERS)}") from None


# ----------------------------------------------------------------------------------------------------------- race
@dataclass(frozen=True)
class RaceResult:
    """One optimizer's run. trajectory: (m, 2) points x_0 .. x_{m-1}; losses: (m,) surface values there.
    m = n_steps + 1, or, if update number s diverged (non-finite or a coordinate beyond DIVERGENCE_LIMIT),
    m = s: the run stops at its last good point and ``diverged_at`` = s. grads: (m, 2) the gradient at each point
    of the path without noise (what an arrow of -grad f shows). A Newton racer whose matrix M is singular at
    x_{s-1} cannot take update s: it stops there too (m = s), with ``stopped_at`` = s, ``stop_reason`` saying why
    and ``stop_label`` the same in a few words ("|H| singular")."""

    label: str
    optimizer: str
    hyperparameters: Mapping[str, Any]
    trajectory: np.ndarray
    losses: np.ndarray
    diverged_at: int | None
    lrs: np.ndarray  # (n_steps,) the rate of each update
    grads: np.ndarray | None = None
    stopped_at: int | None = None
    stop_reason: str = ""
    stop_label: str = ""

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
        if not isinstance(kind, str) or kind not in RACERS:
            raise ValueInputError(f"unknown optimizer {kind!r}; known: {', '.join(RACERS)}")
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
    simulator.functional.optim.OPTIMIZERS or "Newton" (keys of RACERS), hyperparameters override its defaults.
    start: (x, y), default surface.start.
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
    opts: list[Optimizer | Newton] = [RACERS[kind].create([np.zeros(2)], **params) if kind not in OPTIMIZERS
                                      else make_optimizer(kind, [np.zeros(2)], **params) for _, kind, params in specs]
    lrs = np.empty((n_steps, len(opts)))
    for j, o in enumerate(opts):
        lrs[:, j] = schedule.with_base(o.lr).curve(n_steps) if schedule is not None else o.lr
    return _race_steps(surface, specs, opts, x_start, lrs, report_every)


def _newton_update(surface: Surface, x: np.ndarray, gx: np.ndarray, gy: np.ndarray, rows: np.ndarray,
                   opts: list[Any], lr: np.ndarray, t: int, active: np.ndarray, diverged: np.ndarray,
                   stopped: np.ndarray, reasons: list[tuple[str, str]]) -> None:
    """Update number t + 1 of the Newton racers ``rows`` (all active), in place, by their ``Newton.direction``,
    with the rules of race_step_2d: a non-finite point or a coordinate beyond DIVERGENCE_LIMIT is put back and
    marks the racer diverged; a singular M stops it with a reason (short and long)."""
    px, py = x[rows, 0], x[rows, 1]
    hs = [_shaped(px.shape, h).tolist() for h in surface.hessian(px, py)]
    for i, j in enumerate(rows.tolist()):
        x0, y0 = float(px[i]), float(py[i])
        o: Newton = opts[j]
        dx, dy, singular, lo, hi = o.direction(float(gx[j]), float(gy[j]), hs[0][i], hs[1][i], hs[2][i])
        if singular:
            active[j], stopped[j] = False, t + 1
            reasons[j] = (o.singular_label(), o.singular_text(x0, y0, lo, hi))
            continue
        a = float(lr[j])
        nx, ny = x0 + a * dx, y0 + a * dy
        if not (abs(nx) <= DIVERGENCE_LIMIT and abs(ny) <= DIVERGENCE_LIMIT):     # also catches NaN and inf
            active[j], diverged[j] = False, t + 1
        else:
            x[j, 0], x[j, 1] = nx, ny


def _race_steps(surface: Surface, specs: list[tuple[str, str, dict[str, Any]]], opts: list[Any],
                x_start: np.ndarray, lrs: np.ndarray, report_every: int) -> Job[dict[str, RaceResult]]:
    n_steps, k = lrs.shape
    if isinstance(surface, NoisyGradient):
        surface.reset()
    # Newton racers are rows the kernel never touches (always inactive for it): they step in _newton_update.
    newton = np.array([isinstance(o, Newton) for o in opts], dtype=np.bool_)
    family = np.array([K.SGD if nw else o.race_family() for nw, o in zip(newton, opts)], dtype=np.int64)
    hyper = np.ascontiguousarray(np.stack([np.zeros(K.N_HYPER) if nw else o.race_row()
                                           for nw, o in zip(newton, opts)]))
    x = np.tile(x_start, (k, 1))
    s1, s2, s3 = np.zeros((k, 2)), np.zeros((k, 2)), np.zeros((k, 2))
    step = np.zeros(k, dtype=np.int64)
    active = ~newton
    newton_active = newton.copy()
    diverged = np.zeros(k, dtype=np.int64)
    stopped = np.zeros(k, dtype=np.int64)
    reasons = [("", "")] * k
    path = np.empty((n_steps + 1, k, 2))
    path[0] = x
    xs, ys = x[:, 0], x[:, 1]  # views: always the current points
    t = 0
    yield Progress(0, n_steps, "racing")
    with np.errstate(all="ignore"):
        while t < n_steps and (active.any() or newton_active.any()):
            gx, gy = surface.grad(xs, ys)
            gx = np.ascontiguousarray(gx, dtype=np.float64)
            gy = np.ascontiguousarray(gy, dtype=np.float64)
            rows = np.flatnonzero(newton_active)
            if rows.size:   # before the kernel moves the others: x still holds the points gx, gy were taken at
                _newton_update(surface, x, gx, gy, rows, opts, lrs[t], t, newton_active, diverged, stopped, reasons)
            K.race_step_2d(x, gx, gy, s1, s2, s3, family, hyper, lrs[t], step, active, diverged, DIVERGENCE_LIMIT)
            t += 1
            path[t] = x
            if t % report_every == 0:
                yield Progress(t, n_steps, "racing")
        ends = [int(diverged[j]) if diverged[j] else int(stopped[j]) if stopped[j] else t + 1 for j in range(k)]
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
                                        np.ascontiguousarray(g[i:i + m]), int(stopped[j]) if stopped[j] else None,
                                        reasons[j][1], reasons[j][0])
            i += m
    yield Progress(n_steps, n_steps, "done")
    return results
