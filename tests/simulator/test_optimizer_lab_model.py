"""The optimizer race lab's model without Qt: settings, racers and their declared hyperparameters, the race job."""
from __future__ import annotations

import math

import numpy as np
import pytest

from simulator.core.errors import ExpressionError, StudioError, ValueInputError
from simulator.core.jobs import Progress, run_job
from simulator.functional.schedules import StepDecay
from simulator.labs.optimizer_lab import (CUSTOM, DEFAULT_RACE, OptimizerLabModel, RaceSettings, loss_curves,
                                          surface_heatmap)
from simulator.labs.surfaces import NoisyGradient, QuadraticBowl, Rosenbrock, race


@pytest.fixture
def model():
    m = OptimizerLabModel()
    m.events = []
    m.changed.connect(m.events.append)
    return m


def test_default_race_is_seven_optimizers_on_the_bowl(model):
    assert [r.kind for r in model.racers] == [k for k, _ in DEFAULT_RACE]
    assert [r.label for r in model.racers] == [k for k, _ in DEFAULT_RACE]
    assert [r.slot for r in model.racers] == list(range(7))
    assert model.surface == QuadraticBowl() and model.start == (-1.5, 1.0) and model.n_steps == 500
    assert model.racer(5).hyper.beta1 == 0.9 and model.racer(5).hyper.beta2 == 0.999   # torch's defaults


def test_sgd_on_the_bowl_matches_the_closed_form(model):
    # On f = (u^2 + c v^2)/2 plain GD multiplies u by (1 - lr) and v by (1 - lr c) each step.
    for i in range(6, 0, -1):
        model.remove_optimizer(i)
    model.set_surface("Ill-conditioned bowl", condition=10.0, angle=0.0)
    model.set_start(1.0, 1.0)
    model.set_n_steps(20)
    res = run_job(model.race_job())["SGD"]
    t = np.arange(21)
    np.testing.assert_allclose(res.trajectory[:, 0], 0.95 ** t, rtol=1e-12)
    np.testing.assert_allclose(res.trajectory[:, 1], 0.5 ** t, rtol=1e-12)
    # the arrows' gradients are the surface's: (u, c v)
    np.testing.assert_allclose(res.grads, np.stack([0.95 ** t, 10 * 0.5 ** t], axis=1), rtol=1e-12)


def test_race_job_yields_progress_and_equals_race(model):
    model.set_n_steps(600)
    items = []
    results = run_job(model.race_job(), items.append)
    assert items[0] == Progress(0, 600, "racing") and items[-1] == Progress(600, 600, "done")
    assert Progress(500, 600, "racing") in items
    direct = race(QuadraticBowl(), [r.spec() for r in model.racers], (-1.5, 1.0), 600)
    for label, r in results.items():
        np.testing.assert_array_equal(r.trajectory, direct[label].trajectory)


def test_closing_the_job_cancels_it(model):
    job = model.race_job()
    assert next(job) == Progress(0, 500, "racing")
    job.close()
    with pytest.raises(StopIteration):
        next(job)


def test_race_job_is_a_snapshot(model):
    job = model.race_job()
    model.set_hyper(0, lr=1e9)            # edited while the race runs: that race keeps lr 0.05
    model.set_start(0.5, 0.5)
    res = run_job(job)["SGD"]
    assert res.hyperparameters["lr"] == 0.05 and tuple(res.trajectory[0]) == (-1.5, 1.0)


def test_hyperparameters_are_validated_and_betas_go_both_ways(model):
    model.set_hyper(5, betas=(0.5, 0.6))
    assert (model.racer(5).hyper.beta1, model.racer(5).hyper.beta2) == (0.5, 0.6)
    assert model.racer(5).spec()[2]["betas"] == (0.5, 0.6)
    model.set_hyper(5, beta2=0.7)
    assert model.racer(5).spec()[2]["betas"] == (0.5, 0.7)
    before = model.racers
    for changes, message in [({"momentum": 0.0}, "momentum must be > 0, got 0"),
                             ({"lr": -1.0}, "learning rate must be ≥ 0, got -1"),
                             ({"alpha": 0.5}, "Nesterov has no hyperparameter 'alpha'"),
                             ({"nesterov": False}, "Nesterov always has nesterov=True")]:
        with pytest.raises(ValueInputError, match=message):
            model.set_hyper(2, **changes)
    with pytest.raises(ValueInputError, match=r"beta2 must be < 1, got 1"):
        model.set_hyper(5, beta2=1.0)
    assert model.racers == before                     # refusals change nothing


def test_adding_and_removing_keeps_labels_and_colour_slots_unique(model):
    a = model.add_optimizer("Adam", lr=0.1)
    assert a.label == "Adam #2" and a.slot == 7 and a.lr == 0.1
    model.remove_optimizer(1)                         # Momentum (slot 1) leaves
    b = model.add_optimizer("SGD")
    assert b.label == "SGD #2" and b.slot == 1 and b.lr == 0.1      # the declared SGD default
    model.set_enabled(0, False)
    assert [s[0] for s in model.specs()][:1] == ["Nesterov"]
    assert model.events.count("optimizers") == 4
    with pytest.raises(ValueInputError, match="unknown optimizer 'LBFGS'"):
        model.add_optimizer("LBFGS")
    with pytest.raises(ValueInputError, match="there is no optimizer row 42"):
        model.remove_optimizer(42)


def test_no_enabled_racer_races_nothing(model):
    for i in range(len(model.racers)):
        model.set_enabled(i, False)
    assert run_job(model.race_job()) == {}


def test_surface_choice_parameters_and_start(model):
    model.set_surface("Rosenbrock", b=10.0)
    assert model.surface == Rosenbrock(b=10.0) and model.start == (-1.5, 2.0)
    model.set_start(0.25, -0.5)
    model.set_surface_params(a=2.0)
    assert model.surface.minima == ((2.0, 4.0, 0.0),) and model.start == (0.25, -0.5)
    assert model.events == ["surface", "start", "surface"]
    for call, message in [(lambda: model.set_surface("Ackley"), "unknown surface 'Ackley'"),
                          (lambda: model.set_surface("Rosenbrock", condition=3), "has no parameter 'condition'"),
                          (lambda: model.set_surface_params(b=-1.0), "b must be ≥ 0, got -1"),
                          (lambda: model.set_start(math.nan, 0.0), "start x must be a finite number"),
                          (lambda: model.set_start(0.0, 1e7), "start y must be ≤ 1e\\+06")]:
        with pytest.raises(ValueInputError, match=message):
            call()
    assert model.surface == Rosenbrock(a=2.0, b=10.0) and model.start == (0.25, -0.5)


def test_custom_expression_with_sin_races(model):
    model.set_expression("x**2 + 10*y**2 + sin(3*x)")
    assert model.surface_kind == CUSTOM and model.start == (-1.5, 1.5)
    x, y = np.array([0.3, -1.0]), np.array([0.2, 0.4])
    np.testing.assert_allclose(model.surface.value(x, y), x**2 + 10 * y**2 + np.sin(3 * x), rtol=1e-12)
    gx, gy = model.surface.grad(x, y)
    np.testing.assert_allclose(gx, 2 * x + 3 * np.cos(3 * x), rtol=1e-12)
    np.testing.assert_allclose(gy, 20 * y, rtol=1e-12)
    model.set_n_steps(50)
    assert len(run_job(model.race_job())) == 7


@pytest.mark.parametrize("text, error, message", [
    ("x**2 + * y", ExpressionError, "syntax error"),
    ("x**2 + z", ValueInputError, "may use only x and y; 'x\\*\\*2 \\+ z' also uses z"),
    ("", ValueInputError, "type an expression in x and y"),
    ("x" * 2000, ValueInputError, "at most 1000 characters"),
])
def test_bad_expressions_are_refused_and_the_surface_stays(model, text, error, message):
    with pytest.raises(error, match=message):
        model.set_expression(text)
    assert model.surface == QuadraticBowl() and model.events == []


def test_noise_steps_and_schedule(model):
    model.set_noise(0.5)
    assert isinstance(model.raced_surface, NoisyGradient) and model.raced_surface.sigma == 0.5
    a, b = run_job(model.race_job()), run_job(model.race_job())
    np.testing.assert_array_equal(a["Adam"].trajectory, b["Adam"].trajectory)      # seeded: reproducible
    model.set_schedule(StepDecay(1.0, step_size=100, gamma=0.5))
    model.set_n_steps(300)
    r = run_job(model.race_job())["SGD"]
    assert r.lrs[0] == 0.05 and r.lrs[100] == 0.025 and r.lrs[299] == 0.0125
    for call, message in [(lambda: model.set_noise(-1.0), "gradient noise σ must be ≥ 0"),
                          (lambda: model.set_n_steps(10**9), "steps must be ≤ 10000"),
                          (lambda: model.set_n_steps(0), "steps must be ≥ 1"),
                          (lambda: model.set_schedule("cosine"), "must be a Schedule or None")]:
        with pytest.raises(ValueInputError, match=message):
            call()
    assert model.noise == 0.5 and model.n_steps == 300


def test_huge_learning_rate_diverges_instead_of_failing(model):
    model.set_hyper(0, lr=1e9)
    r = run_job(model.race_job())
    assert r["SGD"].diverged_at == 1 and np.all(np.isfinite(r["SGD"].trajectory))
    assert r["Adam"].diverged_at is None and len(r["Adam"].trajectory) == 501
    mode, fstar, curves = model.loss_curves(r)
    assert (mode, fstar) == ("log", 0.0) and all(np.all(np.isfinite(c)) for c in curves.values())


def test_loss_curves_modes():
    bowl = run_job(OptimizerLabModel([("SGD", {"lr": 0.05})]).race_job())
    mode, _, curves = loss_curves(bowl, QuadraticBowl().minima)
    f = bowl["SGD"].losses
    np.testing.assert_allclose(curves["SGD"], np.log10(np.maximum(f, 1e-16)))
    assert mode == "log"
    m = OptimizerLabModel([("SGD", {"lr": 0.01})])
    m.set_surface("Saddle")                           # no minimum, negative values: symmetric log
    mode, _, curves = m.loss_curves(run_job(m.race_job()))
    assert mode == "symlog" and curves["SGD"][-1] < 0


def test_heatmap_of_rosenbrock_is_log_coloured():
    h = surface_heatmap(Rosenbrock(), 50)
    assert h.colour.shape == (50, 50) and h.log_colour and h.rect == (-4.0, -3.0, 8.0, 8.0)
    assert 0.0 <= h.levels[0] < 0.5 < h.levels[1]          # the lowest grid value is near the valley floor, 0
    assert not surface_heatmap(QuadraticBowl(), 20).log_colour
    with pytest.raises(ValueInputError, match="heatmap size must be ≤ 2000"):
        surface_heatmap(Rosenbrock(), 10**6)


def test_settings_declare_their_ranges():
    assert RaceSettings().as_dict() == {"surface": "Ill-conditioned bowl", "n_steps": 500, "noise": 0.0}
    with pytest.raises(ValueInputError, match="unknown surface 'Moon'"):
        RaceSettings(surface="Moon")
    with pytest.raises(StudioError):
        OptimizerLabModel([("SGD", {"lr": "fast"})])


def test_contour_segments_trace_level_sets():
    import numpy as np

    from simulator.core.errors import ValueInputError
    from simulator.labs.optimizer_lab import contour_segments
    xs = np.linspace(-2.0, 2.0, 161)
    X, Y = np.meshgrid(xs, xs, indexing="ij")
    segs = contour_segments(X ** 2 + Y ** 2, [1.0, 2.0], (-2.0, -2.0, 4.0, 4.0))
    r = np.hypot(segs[..., 0], segs[..., 1])
    on_one, on_two = np.abs(r - 1.0) < 2e-3, np.abs(r - np.sqrt(2.0)) < 2e-3
    assert (on_one | on_two).all() and on_one.any() and on_two.any()
    # each closed circle is traced all the way round: segment lengths add up to its circumference
    lengths = np.linalg.norm(segs[:, 1] - segs[:, 0], axis=1)
    inner = np.abs(np.hypot(*segs[:, 0].T) - 1.0) < 2e-3
    assert lengths[inner].sum() == pytest.approx(2 * np.pi, rel=1e-3)
    # a saddle x*y = 0 on a cell centred at the origin gives two crossing segments there
    xs = np.linspace(-1.0, 1.0, 2)
    X, Y = np.meshgrid(xs, xs, indexing="ij")
    assert contour_segments(X * Y + 1e-9, [0.0], (-1, -1, 2, 2)).shape == (2, 2, 2)
    with pytest.raises(ValueInputError, match="2-D grid"):
        contour_segments(np.zeros(5), [0.0], (0, 0, 1, 1))


def test_weight_decay_is_the_same_for_sgd_and_not_for_adam():
    model = OptimizerLabModel()
    r = model.weight_decay_comparison(lr=0.01, weight_decay=0.5, steps=100)
    assert r.sgd_gap < 1e-12 and r.adam_gap > 1e-3
    # AdamW by hand: x <- x - lr*lam*x, then the Adam step (bias-corrected moments), from the lab's start
    x = np.array(model.start, dtype=np.float64)
    lr, lam, b1, b2, eps = 0.01, 0.5, 0.9, 0.999, 1e-8
    m = v = np.zeros(2)
    for t in range(1, 101):
        gx, gy = model.surface.grad(x[0], x[1])
        g = np.array([float(gx), float(gy)])
        x = x * (1 - lr * lam)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        x = x - lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
    np.testing.assert_allclose(r.paths["AdamW (decoupled)"][-1], x, rtol=1e-10, atol=1e-12)
