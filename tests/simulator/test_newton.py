"""Second order in the race: Hessians of every surface (analytic against centred differences of the gradient),
Newton's method (one step on a quadratic, damped Newton's contraction, saddles, maxima, singular Hessians, the
curvature fixes), the other racers untouched by a Newton racer (and still torch.optim's steps), and the
preconditioner directions the lab draws."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from simulator.core.errors import NumericError, ShapeError, ValueInputError
from simulator.core.jobs import run_job
from simulator.functional.schedules import CosineDecay, Warmup
from simulator.labs.optimizer_lab import OptimizerLabModel, point_kind, preconditioners
from simulator.labs.surfaces import (NEWTON, RACERS, Beale, ExpressionSurface, Himmelblau, Hills, Newton, NoisyGradient,
                                     PlateauCliff, QuadraticBowl, Rosenbrock, Saddle, hessian_eigen, hessian_fd,
                                     newton_direction, race)

NAMED = [QuadraticBowl(), QuadraticBowl(condition=50, angle=-70), Rosenbrock(), Rosenbrock(a=-0.5, b=30.0), Beale(),
         Saddle(), Himmelblau(), Hills(), PlateauCliff(), PlateauCliff(steepness=20.0, curvature=0.3)]


def bowl_matrix(condition: float, angle: float) -> np.ndarray:
    """R^T diag(1, condition) R, R the rotation by -angle: the bowl's Hessian from its definition."""
    a = math.radians(angle)
    r = np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])
    return r.T @ np.diag([1.0, condition]) @ r


# ------------------------------------------------------------------------------------------------------ Hessians
@pytest.mark.parametrize("surface", NAMED, ids=lambda s: f"{s.name} {s.as_dict()}")
def test_analytic_hessian_matches_centred_differences_of_the_gradient(surface):
    rng = np.random.default_rng(1)
    x = rng.uniform(*surface.xlim, size=300)
    y = rng.uniform(*surface.ylim, size=300)
    exact = np.array(surface.hessian(x, y))
    assert exact.shape == (3, 300)
    # an independent difference quotient (step 1e-5, not hessian_fd's) of the analytic gradient
    h = 1e-5
    gxp, gyp = surface.grad(x + h, y)
    gxm, gym = surface.grad(x - h, y)
    hxx, hyx = (gxp - gxm) / (2 * h), (gyp - gym) / (2 * h)
    gxp, gyp = surface.grad(x, y + h)
    gxm, gym = surface.grad(x, y - h)
    hxy, hyy = (gxp - gxm) / (2 * h), (gyp - gym) / (2 * h)
    scale = 1.0 + np.abs(exact).max(axis=0)
    for got, want in ((exact[0], hxx), (exact[1], hxy), (exact[1], hyx), (exact[2], hyy)):
        assert np.max(np.abs(got - want) / scale) < 1e-7
    # the fallback agrees with the analytic one too
    assert np.max(np.abs(np.array(hessian_fd(surface, x, y)) - exact) / scale) < 1e-8
    # scalars in, scalars out; one point of an array is that point
    one = surface.hessian(float(x[3]), float(y[3]))
    assert all(np.shape(v) == () for v in one)
    np.testing.assert_allclose(one, exact[:, 3], rtol=1e-13, atol=1e-13)


def test_known_hessians():
    np.testing.assert_allclose(np.array(QuadraticBowl(condition=7, angle=25).hessian(0.3, -2.0)),
                               bowl_matrix(7, 25)[[0, 0, 1], [0, 1, 1]], rtol=1e-14)
    assert Saddle().hessian(5.0, -1.0) == (2.0, 0.0, -2.0)
    # Rosenbrock at its minimum (1, 1): [[802, -400], [-400, 200]]
    assert tuple(map(float, Rosenbrock().hessian(1.0, 1.0))) == (802.0, -400.0, 200.0)
    # Himmelblau's local maximum near (-0.2708, -0.9230): both eigenvalues negative
    lo, hi, _ = hessian_eigen(*Himmelblau().hessian(-0.270845, -0.923039))
    assert lo < 0 and hi < 0


def test_expression_and_noisy_surfaces_take_the_fallback():
    s = ExpressionSurface("x**3 + 2*x*y**2 - exp(y)")
    x = np.linspace(-1.0, 1.0, 7)
    y = np.linspace(0.8, -0.6, 7)
    hxx, hxy, hyy = s.hessian(x, y)
    np.testing.assert_allclose(hxx, 6 * x, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(hxy, 4 * y, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(hyy, 4 * x - np.exp(y), rtol=1e-8, atol=1e-8)
    # a noisy gradient's curvature is the surface's own (differences of the noise would be noise / h)
    noisy = NoisyGradient(Rosenbrock(), sigma=2.0, seed=1)
    assert noisy.hessian(0.3, 0.7) == Rosenbrock().hessian(0.3, 0.7)


def test_eigen_decomposition_of_2x2():
    rng = np.random.default_rng(2)
    h = rng.normal(size=(50, 3)) * 5
    lo, hi, theta = hessian_eigen(h[:, 0], h[:, 1], h[:, 2])
    for i in range(50):
        m = np.array([[h[i, 0], h[i, 1]], [h[i, 1], h[i, 2]]])
        np.testing.assert_allclose([lo[i], hi[i]], np.linalg.eigvalsh(m), rtol=1e-12, atol=1e-12)
        v = np.array([math.cos(theta[i]), math.sin(theta[i])])
        np.testing.assert_allclose(m @ v, hi[i] * v, atol=1e-12)


# ----------------------------------------------------------------------------------------------- Newton's method
@pytest.mark.parametrize("bowl", [QuadraticBowl(), QuadraticBowl(condition=100, angle=30),
                                  QuadraticBowl(condition=1000, angle=-70), QuadraticBowl(condition=1, angle=0)],
                         ids=lambda b: f"condition {b.condition:g}, angle {b.angle:g}")
@pytest.mark.parametrize("start", [(-1.5, 1.0), (1.9, 1.7), (0.01, -2.0)])
def test_newton_on_a_quadratic_reaches_the_minimum_in_one_step(bowl, start):
    r = race(bowl, ["Newton", ("SGD", {"lr": 0.01})], start=start, n_steps=3)["Newton"]
    np.testing.assert_array_equal(r.trajectory[0], start)
    assert np.hypot(*r.trajectory[1]) <= 1e-12            # the minimum is (0, 0): one step gets there
    assert r.losses[1] <= 1e-20 and r.diverged_at is None and r.stopped_at is None
    # gradient descent from the same start is far away after one step (the comparison the lab makes)
    sgd = race(bowl, [("SGD", {"lr": 1.0 / bowl.condition})], start=start, n_steps=1)["SGD"]
    assert np.hypot(*sgd.trajectory[1]) > 1e-3 * np.hypot(*start) or bowl.condition == 1


def test_newton_on_a_typed_quadratic_uses_the_differenced_hessian():
    # f = x^2 + 3xy + 5y^2 - x: grad = (2x + 3y - 1, 3x + 10y), minimum at (10/11, -3/11)
    s = ExpressionSurface("x**2 + 3*x*y + 5*y**2 - x")
    r = race(s, ["Newton"], start=(-1.5, 1.5), n_steps=2)["Newton"]
    # centred differences of a linear gradient are exact up to rounding (eps |g| / h ~ 1e-10)
    np.testing.assert_allclose(r.trajectory[1], [10 / 11, -3 / 11], atol=1e-8)


@pytest.mark.parametrize("lr", [0.1, 0.5, 0.9])
def test_damped_newton_contracts_by_one_minus_lr_per_step(lr):
    bowl = QuadraticBowl(condition=40, angle=55)
    x0 = np.array([-1.2, 1.7])
    r = race(bowl, [("Newton", {"lr": lr})], start=tuple(x0), n_steps=25)["Newton"]
    t = np.arange(26)[:, None]
    np.testing.assert_allclose(r.trajectory, (1 - lr) ** t * x0, rtol=1e-10, atol=1e-14)
    # with a schedule, update t contracts by (1 - lr_t)
    sched = Warmup(CosineDecay(1.0, total_steps=10), warmup_steps=3, start_factor=0.2)
    r = race(bowl, [("Newton", {"lr": lr})], start=tuple(x0), n_steps=10, schedule=sched)["Newton"]
    np.testing.assert_allclose(r.lrs, sched.with_base(lr).curve(10))
    expected = np.cumprod(np.concatenate([[1.0], 1 - r.lrs]))[:, None] * x0
    np.testing.assert_allclose(r.trajectory, expected, rtol=1e-10, atol=1e-14)


def test_pure_newton_goes_to_the_saddle_and_the_fixes_do_not():
    start = (-1.5, 0.5)
    r = race(Saddle(), ["Newton", ("abs", "Newton", {"hessian_fix": "|H|"}),
                        ("shift", "Newton", {"hessian_fix": "H + λI", "damping": 0.1})], start=start, n_steps=40)
    pure = r["Newton"]
    np.testing.assert_array_equal(pure.trajectory[1], [0.0, 0.0])          # one step onto the saddle point
    np.testing.assert_array_equal(pure.trajectory[-1], [0.0, 0.0])         # and it stays there (g = 0)
    assert pure.losses[-1] == 0.0 and point_kind(Saddle(), *pure.final) == "saddle point"
    # |H| = diag(2, 2): x -> 0 and y doubles each step, downhill along y (f = -y^2 is unbounded: it diverges)
    a = r["abs"]
    n = len(a.trajectory)
    np.testing.assert_allclose(a.trajectory[1:], np.column_stack([np.zeros(n - 1), 0.5 * 2.0 ** np.arange(1, n)]))
    assert a.diverged_at == 21 and np.all(np.diff(a.losses) < 0)
    # H + λI, λ raised past the eigenvalue -2 to 2.1: M = diag(4.1, 0.1); x shrinks by 2/4.1, y grows 21-fold
    s = r["shift"]
    np.testing.assert_allclose(s.trajectory[1], [-1.5 * (1 - 2 / 4.1), 0.5 * 21.0], rtol=1e-12)
    assert s.diverged_at is not None and np.all(np.diff(s.losses) < 0)
    assert not np.any(np.all(s.trajectory == 0.0, axis=1)) and not np.any(np.all(a.trajectory == 0.0, axis=1))


def test_pure_newton_climbs_to_himmelblaus_maximum_and_the_fixes_reach_minima():
    r = race(Himmelblau(), ["Newton", ("abs", "Newton", {"hessian_fix": "|H|"}),
                            ("shift", "Newton", {"hessian_fix": "H + λI"})], start=(-0.5, 0.0), n_steps=60)
    top = r["Newton"]
    assert point_kind(Himmelblau(), *top.final) == "maximum"
    assert top.losses[-1] == pytest.approx(181.61652152258262, rel=1e-12) and top.losses[-1] > top.losses[0]
    for label in ("abs", "shift"):
        assert point_kind(Himmelblau(), *r[label].final) == "minimum" and r[label].losses[-1] < 1e-20
        assert any(np.hypot(r[label].final[0] - mx, r[label].final[1] - my) < 1e-9
                   for mx, my, _ in Himmelblau().minima)


def test_newton_on_rosenbrock_lands_on_the_minimum_in_a_few_steps():
    r = race(Rosenbrock(), ["Newton", ("Adam", {"lr": 0.02})], start=(-1.5, 2.0), n_steps=10)
    newton = r["Newton"]
    assert np.hypot(newton.final[0] - 1.0, newton.final[1] - 1.0) < 1e-12
    assert np.hypot(newton.trajectory[6, 0] - 1.0, newton.trajectory[6, 1] - 1.0) < 1e-6
    assert r["Adam"].losses[-1] > 1.0                              # first order is nowhere near after 10 steps


def test_a_singular_hessian_stops_the_racer_with_a_reason():
    s = ExpressionSurface("(x - 1)**2")                            # flat along y: H = diag(2, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = race(s, ["Newton", ("SGD", {"lr": 0.1}), ("abs", "Newton", {"hessian_fix": "|H|"}),
                     ("abs0", "Newton", {"hessian_fix": "|H|", "damping": 0.0})], start=(-1.5, 1.5), n_steps=30)
    pure = r["Newton"]
    assert pure.stopped_at == 1 and pure.diverged_at is None
    assert pure.trajectory.shape == (1, 2) and pure.losses.shape == (1,) and pure.grads.shape == (1, 2)
    assert "H is singular at (-1.5, 1.5)" in pure.stop_reason and "eigenvalues are 0 and 2" in pure.stop_reason
    assert "Choose the H + λI or |H| curvature fix with λ > 0" in pure.stop_reason
    # the others race on: SGD to x = 1, |H| with λ = 0.1 in one step (y has no gradient: it stays)
    assert r["SGD"].trajectory.shape == (31, 2) and r["SGD"].stopped_at is None
    np.testing.assert_allclose(r["abs"].trajectory[1], [1.0, 1.5], atol=1e-9)
    assert r["abs0"].stopped_at == 1 and "Make the damping λ larger" in r["abs0"].stop_reason
    # the class says it as our error
    p = np.array([-1.5, 1.5])
    with pytest.raises(NumericError, match="singular"):
        Newton([p]).step([np.array([-5.0, 0.0])], [np.diag([2.0, 0.0])])
    np.testing.assert_array_equal(p, [-1.5, 1.5])


@pytest.mark.parametrize("fix", ["none", "H + λI", "|H|"])
def test_the_newton_class_takes_the_steps_of_the_race(fix):
    surface = Rosenbrock()
    r = race(surface, [("Newton", {"lr": 0.7, "hessian_fix": fix, "damping": 0.5})], start=(-1.2, 1.5),
             n_steps=15)["Newton"]
    p = np.array([-1.2, 1.5])
    opt = NEWTON.create([p], lr=0.7, hessian_fix=fix, damping=0.5)
    assert isinstance(opt, Newton) and opt.hyperparameters() == {"lr": 0.7, "hessian_fix": fix, "damping": 0.5}
    path = [p.copy()]
    for _ in range(15):
        g = np.array([float(v) for v in surface.grad(p[0], p[1])])
        hxx, hxy, hyy = (float(v) for v in surface.hessian(p[0], p[1]))
        opt.step([g], [np.array([[hxx, hxy], [hxy, hyy]])])
        path.append(p.copy())
    np.testing.assert_allclose(r.trajectory, np.array(path), rtol=1e-9, atol=1e-12)


def test_the_class_and_the_race_step_by_one_function(monkeypatch):
    """One rule for Newton: the class holds lr, the fix and λ, and both its step and the race's Newton racers go
    through newton_step_2d (so the tests of either test the path the lab runs)."""
    from simulator.labs import surfaces
    calls = []
    real = surfaces.newton_step_2d

    def spy(*args):
        calls.append(args)
        return real(*args)
    monkeypatch.setattr(surfaces, "newton_step_2d", spy)
    race(Rosenbrock(), [("Newton", {"hessian_fix": "|H|", "damping": 0.5}), ("SGD", {"lr": 1e-3})],
         start=(-1.2, 1.5), n_steps=3)
    assert len(calls) == 3 and all(c[5:] == (2, 0.5) for c in calls)
    calls.clear()
    p = np.array([0.5, -0.25])
    g, h = np.array([1.0, -2.0]), np.array([[3.0, 1.0], [1.0, -2.0]])
    Newton([p], lr=0.5, hessian_fix="H + λI", damping=0.25).step([g], [h])
    assert len(calls) == 1 and calls[0][:5] == (1.0, -2.0, 3.0, 1.0, -2.0) and calls[0][5:] == (1, 0.25)
    w = np.linalg.eigvalsh(h)
    np.testing.assert_allclose(p, np.array([0.5, -0.25]) - 0.5 * np.linalg.solve(h + (0.25 - w[0]) * np.eye(2), g),
                               rtol=1e-12)
    with pytest.raises(ShapeError, match="2 numbers"):             # a point of the plane, as in the race
        Newton([np.zeros(3)])


@pytest.mark.parametrize("fix, what", [("none", "H"), ("H + λI", "H + λI"), ("|H|", "|H|")])
def test_a_singular_matrix_is_named_by_the_fix_in_the_race_and_the_class(fix, what):
    """On (x - 1)^2 the surface is flat along y: H, and H + λI or |H| with λ = 0, are singular. The race's short
    label and reason, and the class's error, name the matrix that was singular, in the same words."""
    s = ExpressionSurface("(x - 1)**2")
    r = race(s, [("Newton", {"hessian_fix": fix, "damping": 0.0})], start=(-1.5, 1.5), n_steps=5)["Newton"]
    assert r.stopped_at == 1 and r.stop_label == f"{what} singular"
    assert r.stop_reason.startswith(f"{what} is singular at (-1.5, 1.5): its eigenvalues are 0 and 2")
    p = np.array([-1.5, 1.5])
    with pytest.raises(NumericError) as e:
        Newton([p], hessian_fix=fix, damping=0.0).step([np.array([-5.0, 0.0])], [np.diag([2.0, 0.0])])
    assert str(e.value) == r.stop_reason
    np.testing.assert_array_equal(p, [-1.5, 1.5])
    ok = race(s, [("Newton", {"hessian_fix": fix, "damping": 0.1})], start=(-1.5, 1.5), n_steps=5)["Newton"]
    assert (ok.stopped_at is None) == (fix != "none") and ok.stop_label == ("" if fix != "none" else "H singular")


def test_the_racers_form_is_declared_with_lambda_zero_reachable():
    """DAMPING says 0 means "no damping" below its log scale (zero_off): the Settings class a form is built from
    keeps that, so the form can reach the λ = 0 the class accepts."""
    from simulator.core.params import params_of
    damping = {p.name: p for p in params_of(NEWTON.settings)}["damping"]
    assert damping.log and damping.zero_off and damping.low == 0.0
    assert NEWTON.settings(damping=0.0).damping == 0.0 and Newton([np.zeros(2)], damping=0.0).damping == 0.0
    with pytest.raises(ValueInputError, match="damping λ must be ≥ 0"):
        NEWTON.settings(damping=-1e-3)


def test_newton_direction_of_each_fix():
    h = np.array([[3.0, 1.0], [1.0, -2.0]])                       # indefinite
    g = np.array([0.7, -1.1])
    w, q = np.linalg.eigh(h)
    cases = {"none": h, "H + λI": h + (0.25 - w[0]) * np.eye(2), "|H|": (q * np.abs(w)) @ q.T}
    for fix, m in cases.items():
        dx, dy, singular, lo, hi = newton_direction(g[0], g[1], 3.0, 1.0, -2.0, fix, 0.25)
        np.testing.assert_allclose([dx, dy], -np.linalg.solve(m, g), rtol=1e-12)
        np.testing.assert_allclose([lo, hi], np.linalg.eigvalsh(m), rtol=1e-12)
        assert not singular
    # the fixed matrices are positive definite: their step goes downhill, d . g < 0; pure Newton's need not
    for fix in ("H + λI", "|H|"):
        dx, dy, *_ = newton_direction(g[0], g[1], 3.0, 1.0, -2.0, fix, 0.25)
        assert dx * g[0] + dy * g[1] < 0
    with pytest.raises(ValueInputError, match="unknown curvature fix"):
        newton_direction(1.0, 1.0, 1.0, 0.0, 1.0, "abs")


# ------------------------------------------------------------------------------- the others are left untouched
SPECS = [("SGD", {"lr": 1e-3}), ("Momentum", {"lr": 1e-3, "momentum": 0.9}), ("AdaGrad", {"lr": 0.1}),
         ("RMSProp", {"lr": 0.001, "centered": True}), ("Adam", {"lr": 0.01}), ("AdamW", {"lr": 0.01})]


@pytest.mark.parametrize("surface", [Rosenbrock(), Himmelblau(), Saddle(), ExpressionSurface("x**2 + 3*y**2")],
                         ids=lambda s: s.name)
def test_a_newton_racer_leaves_the_other_paths_bit_for_bit_unchanged(surface):
    sched = Warmup(CosineDecay(1.0, total_steps=100), warmup_steps=10)
    for schedule in (None, sched):
        alone = race(surface, SPECS, start=(-1.2, 1.5), n_steps=150, schedule=schedule)
        mixed = race(surface, [SPECS[0], ("Newton", {}), *SPECS[1:4], ("Newton", {"hessian_fix": "|H|"}),
                               *SPECS[4:]], start=(-1.2, 1.5), n_steps=150, schedule=schedule)
        assert list(mixed) == ["SGD", "Newton", "Momentum", "AdaGrad", "RMSProp", "Newton #2", "Adam", "AdamW"]
        for label, a in alone.items():
            b = mixed[label]
            np.testing.assert_array_equal(a.trajectory, b.trajectory)
            np.testing.assert_array_equal(a.losses, b.losses)
            assert a.diverged_at == b.diverged_at


def test_sgd_and_adam_still_take_torch_optims_steps_beside_newton():
    torch = pytest.importorskip("torch")
    surface = Rosenbrock()
    r = race(surface, [("SGD", {"lr": 1e-4}), ("Newton", {}), ("Adam", {"lr": 0.01})], start=(-1.2, 1.5),
             n_steps=100)
    for label, make in (("SGD", lambda p: torch.optim.SGD([p], lr=1e-4)),
                        ("Adam", lambda p: torch.optim.Adam([p], lr=0.01))):
        p = torch.tensor([-1.2, 1.5], dtype=torch.float64, requires_grad=True)
        opt = make(p)
        path = [p.detach().numpy().copy()]
        for _ in range(100):
            opt.zero_grad()
            gx, gy = surface.grad(p[0].item(), p[1].item())
            p.grad = torch.tensor([float(gx), float(gy)], dtype=torch.float64)
            opt.step()
            path.append(p.detach().numpy().copy())
        np.testing.assert_allclose(r[label].trajectory, np.array(path), rtol=1e-12, atol=1e-15)


def test_noisy_race_with_newton():
    noisy = NoisyGradient(QuadraticBowl(), sigma=0.3, seed=5)
    r = race(noisy, ["Newton", "SGD"], n_steps=50)
    # H is exact, g is noisy: each step lands on the noise's image H^-1 e, near the minimum, not on it
    t = r["Newton"].trajectory
    assert np.all(np.isfinite(t)) and 0 < np.abs(t[1:]).max() < 2.0
    np.testing.assert_array_equal(t, race(NoisyGradient(QuadraticBowl(), sigma=0.3, seed=5), ["Newton", "SGD"],
                                          n_steps=50)["Newton"].trajectory)


# ------------------------------------------------------------------------------------------------ the lab model
def test_the_lab_model_races_newton_and_validates_its_hyperparameters():
    assert list(RACERS)[-1] == "Newton" and "Newton" not in list(RACERS)[:-1]
    m = OptimizerLabModel([("SGD", {"lr": 0.05})])
    racer = m.add_optimizer("Newton")
    assert racer.label == "Newton" and racer.lr == 1.0 and racer.hyper.hessian_fix == "none"
    m.set_hyper(1, hessian_fix="|H|", damping=0.5, lr=0.5)
    assert m.specs()[1] == ("Newton", "Newton", {"lr": 0.5, "hessian_fix": "|H|", "damping": 0.5})
    with pytest.raises(ValueInputError, match="unknown curvature fix 'abs'; choose one of: none"):
        m.set_hyper(1, hessian_fix="abs")
    with pytest.raises(ValueInputError, match="damping λ must be ≥ 0"):
        m.set_hyper(1, damping=-1.0)
    with pytest.raises(ValueInputError, match="Newton has no hyperparameter 'momentum'"):
        m.add_optimizer("Newton", momentum=0.9)
    m.set_n_steps(20)
    res = run_job(m.race_job())
    # |H| = H on the bowl (positive definite, eigenvalues >= 0.5): damped Newton, halving the distance each step
    np.testing.assert_allclose(res["Newton"].trajectory[3], 0.125 * np.array(m.start), rtol=1e-10)
    assert m.race_winner(res)[0] == "Newton"


def test_preconditioner_directions_on_the_bowl():
    bowl = QuadraticBowl(condition=10, angle=30)
    m = OptimizerLabModel([("AdaGrad", {"lr": 0.3})])
    m.set_n_steps(30)
    r = run_job(m.race_job())["AdaGrad"]
    p = m.preconditioners(r)
    x = r.trajectory
    h = bowl_matrix(10, 30)
    g = x @ h                                                     # h is symmetric: g = H x
    np.testing.assert_allclose(p.gd, -g, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(p.newton, -x, rtol=1e-9, atol=1e-13)       # straight at the minimum, full length
    np.testing.assert_allclose(p.adagrad[0], -np.sign(g[0]))             # step 0: s = g^2
    np.testing.assert_allclose(p.adagrad, -g / np.sqrt(np.cumsum(g * g, axis=0)), rtol=1e-12)
    np.testing.assert_allclose(p.eigenvalues, np.tile([1.0, 10.0], (31, 1)), rtol=1e-12)
    np.testing.assert_allclose(p.condition, 10.0, rtol=1e-12)
    assert p.positive_definite.all()
    # the AdaGrad racer really steps along -g / sqrt(s) (its eps, 1e-10, aside)
    steps = np.diff(x, axis=0)
    np.testing.assert_allclose(steps, 0.3 * p.adagrad[:-1], rtol=1e-8)
    # on the saddle pure Newton points at the saddle point; the matrix is not positive definite
    q = preconditioners(Saddle(), np.array([[-1.2, 0.6]]))
    np.testing.assert_allclose(q.newton[0], [1.2, -0.6])
    assert not q.positive_definite[0] and q.condition[0] == 1.0
    # where H is singular there is no Newton direction
    f = preconditioners(ExpressionSurface("(x - 1)**2"), np.array([[0.0, 0.0]]))
    assert np.isnan(f.newton).all() and f.condition[0] == np.inf
    with pytest.raises(ValueInputError):
        preconditioners(bowl, np.zeros((3, 3)))
