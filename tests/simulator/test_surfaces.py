"""Surfaces: analytic gradients against centred differences, known minima, the race (exactly the optimizer classes,
convergence, divergence without warnings, speed) and the expression surface on the engine."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from simulator.core.errors import ValueInputError
from simulator.functional.optim import OPTIMIZERS, make_optimizer
from simulator.functional.schedules import CosineDecay, Warmup
from simulator.labs.surfaces import (SURFACES, Beale, ExpressionSurface, Himmelblau, Hills, NoisyGradient, PlateauCliff,
                                QuadraticBowl, Rosenbrock, Saddle, make_surface, race)

ALL = [QuadraticBowl(), QuadraticBowl(condition=50, angle=-70), Rosenbrock(), Beale(), Saddle(), Himmelblau(),
       Hills(), PlateauCliff()]


def numerical_grad(surface, x, y, h=1e-6):
    gx = (surface.value(x + h, y) - surface.value(x - h, y)) / (2 * h)
    gy = (surface.value(x, y + h) - surface.value(x, y - h)) / (2 * h)
    return gx, gy


@pytest.mark.parametrize("surface", ALL, ids=lambda s: s.name)
def test_gradient_matches_centred_differences(surface):
    rng = np.random.default_rng(0)
    x = rng.uniform(*surface.xlim, size=200)
    y = rng.uniform(*surface.ylim, size=200)
    gx, gy = surface.grad(x, y)
    nx, ny = numerical_grad(surface, x, y)
    scale = 1.0 + np.abs(gx) + np.abs(gy)
    assert np.max(np.abs(gx - nx) / scale) < 1e-6
    assert np.max(np.abs(gy - ny) / scale) < 1e-6


@pytest.mark.parametrize("surface", ALL, ids=lambda s: s.name)
def test_vectorised_over_a_300x300_grid(surface):
    X, Y, Z = surface.grid(300)
    assert X.shape == Y.shape == Z.shape == (300, 300)
    gx, gy = surface.grad(X, Y)
    assert gx.shape == gy.shape == (300, 300)
    assert np.all(np.isfinite(Z)) and np.all(np.isfinite(gx)) and np.all(np.isfinite(gy))
    assert surface.grad(X[7, 11], Y[7, 11])[0] == pytest.approx(gx[7, 11], rel=1e-12, abs=1e-14)
    x0, y0 = surface.start
    assert surface.xlim[0] <= x0 <= surface.xlim[1] and surface.ylim[0] <= y0 <= surface.ylim[1]


def test_named_minima():
    assert Rosenbrock().minima == ((1.0, 1.0, 0.0),)
    assert Beale().minima == ((3.0, 0.5, 0.0),)
    assert len(Himmelblau().minima) == 4
    assert (3.0, 2.0, 0.0) in Himmelblau().minima
    assert Saddle().minima == ()
    assert QuadraticBowl().minima == ((0.0, 0.0, 0.0),)
    assert len(Hills().minima) == 3  # one per well: a global and two local minima
    assert Hills().minima[0][2] < Hills().minima[1][2] < Hills().minima[2][2]


@pytest.mark.parametrize("surface", ALL, ids=lambda s: s.name)
def test_minima_have_zero_gradient_and_the_stated_value(surface):
    for mx, my, mv in surface.minima:
        gx, gy = surface.grad(mx, my)
        assert abs(gx) < 1e-9 and abs(gy) < 1e-9
        assert float(surface.value(mx, my)) == pytest.approx(mv, abs=1e-12)
        # and it is a minimum: every nearby point is higher
        ang = np.linspace(0, 2 * np.pi, 16, endpoint=False)
        assert np.all(surface.value(mx + 1e-3 * np.cos(ang), my + 1e-3 * np.sin(ang)) > mv)


def test_bowl_condition_number_and_rotation():
    s = QuadraticBowl(condition=25, angle=90)
    # rotated by 90 degrees, the steep axis (curvature 25) is the x axis
    assert float(s.value(1.0, 0.0)) == pytest.approx(12.5)
    assert float(s.value(0.0, 1.0)) == pytest.approx(0.5)
    with pytest.raises(ValueInputError):
        QuadraticBowl(condition=0.5)


# ----------------------------------------------------------------------------------------------------- the race
SPECS = [
    ("SGD", {"lr": 1e-4}),
    ("Momentum", {"lr": 1e-4, "momentum": 0.9, "weight_decay": 0.01}),
    ("Nesterov", {"lr": 1e-4, "momentum": 0.9}),
    ("AdaGrad", {"lr": 0.1, "weight_decay": 0.01}),
    ("RMSProp", {"lr": 0.001, "momentum": 0.5, "centered": True}),
    ("RMSProp", {"lr": 0.001, "weight_decay": 0.1}),
    ("Adam", {"lr": 0.01, "weight_decay": 0.1}),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.1}),
]


@pytest.mark.parametrize("surface", [Rosenbrock(), QuadraticBowl(condition=30, angle=20), Himmelblau()],
                         ids=lambda s: s.name)
@pytest.mark.parametrize("with_schedule", [False, True])
def test_race_takes_exactly_the_steps_of_the_optimizer_classes(surface, with_schedule):
    schedule = Warmup(CosineDecay(1.0, total_steps=150), warmup_steps=20, start_factor=0.1) if with_schedule else None
    n = 300
    results = race(surface, SPECS, start=(-1.2, 1.5), n_steps=n, schedule=schedule)
    assert len(results) == len(SPECS)  # the second RMSProp got a label of its own
    for (kind, hp), result in zip(SPECS, results.values()):
        p = np.array([-1.2, 1.5])
        opt = make_optimizer(kind, [p], **hp)
        lrs = schedule.with_base(opt.lr).curve(n) if schedule else np.full(n, opt.lr)
        path = [p.copy()]
        for t in range(n):
            opt.lr = lrs[t]
            gx, gy = surface.grad(p[0:1], p[1:2])
            opt.step([np.array([gx[0], gy[0]])])
            path.append(p.copy())
        assert result.diverged_at is None
        np.testing.assert_array_equal(result.trajectory, np.array(path))
        np.testing.assert_array_equal(result.lrs, lrs)
        np.testing.assert_array_equal(result.losses, surface.value(result.trajectory[:, 0], result.trajectory[:, 1]))


def test_race_labels_and_spec_forms():
    r = race(Rosenbrock(), ["Adam", ("Adam", {"lr": 0.1}), ("slow SGD", "SGD", {"lr": 1e-5})], n_steps=3)
    assert list(r) == ["Adam", "Adam #2", "slow SGD"]
    assert r["Adam #2"].hyperparameters["lr"] == 0.1
    r = race(Rosenbrock(), {"a": "SGD", "b": ("Adam", {"lr": 0.1})}, n_steps=2)
    assert list(r) == ["a", "b"] and r["b"].optimizer == "Adam"
    assert r["a"].trajectory.shape == (3, 2) and r["a"].losses.shape == (3,)
    np.testing.assert_array_equal(r["a"].trajectory[0], Rosenbrock().start)
    for bad in (["Adagrad"], [("x", "SGD", {}), ("x", "Adam", {})], []):
        with pytest.raises(ValueInputError):
            race(Rosenbrock(), bad, n_steps=2)
    with pytest.raises(ValueInputError):
        race(Rosenbrock(), ["SGD"], start=(np.nan, 0.0), n_steps=2)


def test_adam_reaches_the_rosenbrock_minimum():
    # lr 0.02 for 5000 steps lands within 1e-12 of (1, 1) in practice; we ask for 1e-6.
    r = race(Rosenbrock(), [("Adam", {"lr": 0.02})], start=(-1.5, 2.0), n_steps=5000)["Adam"]
    assert np.hypot(r.final[0] - 1.0, r.final[1] - 1.0) < 1e-6
    assert r.losses[-1] < 1e-10 and r.losses[-1] < r.losses[0]


def test_momentum_reaches_the_bottom_of_the_ill_conditioned_bowl():
    # condition 10 (stable for lr < 2/10 without momentum); lr 0.05, mu 0.9: |x| ~ 1e-11 after 500 steps; ask 1e-6.
    bowl = QuadraticBowl(condition=10, angle=30)
    r = race(bowl, [("Momentum", {"lr": 0.05, "momentum": 0.9})], n_steps=500)["Momentum"]
    assert np.hypot(*r.final) < 1e-6
    assert r.losses[-1] < 1e-12


def test_divergence_is_recorded_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = race(Rosenbrock(), [("SGD", {"lr": 1e9}), ("Adam", {"lr": 0.01})], n_steps=1000)
    bad, good = r["SGD"], r["Adam"]
    assert bad.diverged_at == 1  # the first update jumps beyond 1e6
    assert bad.trajectory.shape == (1, 2) and bad.losses.shape == (1,)
    assert np.all(np.isfinite(bad.trajectory)) and np.all(np.isfinite(bad.losses))
    assert good.diverged_at is None and good.trajectory.shape == (1001, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = race(Saddle(), [("Momentum", {"lr": 0.1, "momentum": 0.9})], n_steps=5000)
    s = r["Momentum"]
    assert s.diverged_at is not None and 1 < s.diverged_at < 5000
    assert len(s.trajectory) == s.diverged_at and np.abs(s.trajectory).max() <= 1e6


def test_race_of_seven_optimizers_for_10000_steps():
    # its speed is measured by bench/optim.py, not here
    r = race(Rosenbrock(), list(OPTIMIZERS), start=(-1.5, 2.0), n_steps=10_000)
    assert len(r) == 7
    for res in r.values():
        assert len(res.losses) == len(res.trajectory) and np.all(np.isfinite(res.trajectory))
        assert res.diverged_at is not None or len(res.trajectory) == 10_001


def test_noisy_gradient_is_seeded_and_unbiased():
    base = Rosenbrock()
    noisy = NoisyGradient(base, sigma=0.5, seed=3)
    x = np.zeros(20000)
    gx, gy = noisy.grad(x, x)
    tx, ty = base.grad(x, x)
    assert abs(np.mean(gx - tx)) < 0.02 and np.std(gy - ty) == pytest.approx(0.5, rel=0.05)
    assert noisy.value(1.0, 1.0) == 0.0 and noisy.minima == base.minima and noisy.xlim == base.xlim
    a = race(noisy, ["SGD", "Adam"], n_steps=50)
    b = race(NoisyGradient(base, sigma=0.5, seed=3), ["SGD", "Adam"], n_steps=50)
    np.testing.assert_array_equal(a["Adam"].trajectory, b["Adam"].trajectory)
    c = race(NoisyGradient(base, sigma=0.5, seed=4), ["SGD", "Adam"], n_steps=50)
    assert not np.array_equal(a["Adam"].trajectory, c["Adam"].trajectory)


def test_surface_registry():
    assert list(SURFACES) == ["Ill-conditioned bowl", "Rosenbrock", "Beale", "Saddle", "Himmelblau", "Hills",
                              "Plateau and cliff"]
    assert make_surface("Ill-conditioned bowl", condition=4, angle=0).condition == 4
    with pytest.raises(ValueInputError):
        make_surface("Ackley")


# ------------------------------------------------------------------------------- expression surface (the engine)
def test_expression_surface_value_and_gradient_elementwise():
    s = ExpressionSurface("x**2 + 3*x*y + exp(y)")
    x = np.linspace(-1.0, 1.0, 12).reshape(3, 4)
    y = np.linspace(0.5, -0.5, 12).reshape(3, 4)
    np.testing.assert_allclose(s.value(x, y), x**2 + 3 * x * y + np.exp(y), rtol=1e-12)
    gx, gy = s.grad(x, y)
    assert gx.shape == gy.shape == (3, 4)
    np.testing.assert_allclose(gx, 2 * x + 3 * y, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(gy, 3 * x + np.exp(y), rtol=1e-12)


def test_expression_surface_in_one_variable_and_in_a_race():
    s = ExpressionSurface("(x - 1)**2")
    gx, gy = s.grad(np.array([0.0, 2.0]), np.array([5.0, -5.0]))
    np.testing.assert_allclose(gx, [-2.0, 2.0])
    np.testing.assert_array_equal(gy, [0.0, 0.0])
    r = race(ExpressionSurface("x**2 + 10*y**2"), [("SGD", {"lr": 0.05})], start=(1.0, 1.0), n_steps=100)["SGD"]
    assert np.hypot(*r.final) < 1e-4
    # x^2 + 10 y^2 is twice the condition-10 bowl: SGD at lr 0.05 on it is SGD at lr 0.1 on the bowl
    bowl = race(QuadraticBowl(condition=10, angle=0), [("SGD", {"lr": 0.1})], start=(1.0, 1.0), n_steps=100)["SGD"]
    np.testing.assert_allclose(r.trajectory, bowl.trajectory, rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueInputError):
        ExpressionSurface("x + z").grad(0.0, 0.0)


# -------------------------------------------------------------------------------------- declarations, bad input
def test_surface_parameters_are_declared():
    from simulator.core.params import params_of
    assert [p.name for p in params_of(QuadraticBowl)] == ["condition", "angle"]
    assert [p.name for p in params_of(Rosenbrock)] == ["a", "b"]
    assert [p.name for p in params_of(PlateauCliff)] == ["height", "steepness", "curvature", "x0"]
    assert params_of(Beale) == ()
    assert QuadraticBowl().replace(condition=50).condition == 50.0


def test_race_job_reports_progress_and_can_be_cancelled():
    from simulator.core.jobs import Progress, run_job
    from simulator.labs.surfaces import race_job
    seen = []
    r = run_job(race_job(Rosenbrock(), ["Adam"], n_steps=500, report_every=200), seen.append)
    assert seen == [Progress(0, 500, "racing"), Progress(200, 500, "racing"), Progress(400, 500, "racing"),
                    Progress(500, 500, "done")]
    assert r["Adam"].grads.shape == (501, 2)
    np.testing.assert_allclose(r["Adam"].grads[:, 0], Rosenbrock().grad(*r["Adam"].trajectory.T)[0])
    job = race_job(Rosenbrock(), ["Adam"], n_steps=500)
    next(job)
    job.close()
    assert run_job(race_job(Rosenbrock(), ["Adam"], n_steps=0))["Adam"].trajectory.shape == (1, 2)


@pytest.mark.parametrize("call, message", [
    (lambda: race(Rosenbrock(), ["SGD"], n_steps=10**9), "number of steps must be ≤ 100000"),
    (lambda: race(Rosenbrock(), ["SGD"], start=(1.0,), n_steps=2), "start must be two numbers"),
    (lambda: race(Rosenbrock(), ["SGD"], start=(1e9, 0.0), n_steps=2), "start x must be ≤ 1e\\+06"),
    (lambda: race(Rosenbrock(), "SGD", n_steps=2), "optimizers must be a list"),
    (lambda: race(Rosenbrock(), [("SGD", 0.1)], n_steps=2), "hyperparameters of SGD must be a mapping"),
    (lambda: race(Rosenbrock(), [("SGD", {"momentum": 0.9})], n_steps=2), "SGD always has momentum=0.0"),
    (lambda: race(Rosenbrock(), ["SGD"] * 40, n_steps=2), "at most 32 optimizers"),
    (lambda: race("Rosenbrock", ["SGD"], n_steps=2), "race needs a surface"),
    (lambda: make_surface("Rosenbrock", c=1.0), "the Rosenbrock surface has no parameter 'c'; it has: a, b"),
    (lambda: QuadraticBowl(condition=0.5), "condition number must be ≥ 1, got 0.5"),
    (lambda: QuadraticBowl(angle=float("nan")), "angle \\(degrees\\) must be a finite number"),
    (lambda: NoisyGradient(Rosenbrock(), sigma=-1.0), "gradient noise sigma must be ≥ 0"),
    (lambda: Rosenbrock().grid(10**6), "grid size must be ≤ 2000"),
    (lambda: ExpressionSurface(""), "type an expression in x and y"),
    (lambda: ExpressionSurface("x", xlim=(1.0, -1.0)), "xlim must go from a lower to a higher number"),
])
def test_bad_input_says_what_is_wrong(call, message):
    with pytest.raises(ValueInputError, match=message):
        call()
