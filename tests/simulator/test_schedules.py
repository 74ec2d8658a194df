"""Schedules at known steps, whole curves finite and non-negative, and driving an optimizer."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.core.errors import ValueInputError
from simulator.functional.optim import SGD
from simulator.functional.schedules import (SCHEDULES, Constant, CosineDecay, InverseSqrt, LinearDecay, ScheduledOptimizer,
                                 StepDecay, Warmup, make_schedule)


def test_constant():
    s = Constant(0.3)
    assert s.lr_at(0) == 0.3 and s.lr_at(10**6) == 0.3
    np.testing.assert_array_equal(s.curve(4), [0.3] * 4)


def test_step_decay_boundaries():
    s = StepDecay(1.0, step_size=10, gamma=0.5)
    assert [s.lr_at(t) for t in (0, 9, 10, 19, 20, 35)] == [1.0, 1.0, 0.5, 0.5, 0.25, 0.125]


def test_cosine_known_steps():
    s = CosineDecay(0.1, total_steps=100)
    assert s.lr_at(0) == pytest.approx(0.1)
    assert s.lr_at(50) == pytest.approx(0.05)
    assert s.lr_at(25) == pytest.approx(0.05 * (1 + math.cos(math.pi / 4)))
    assert s.lr_at(100) == pytest.approx(0.0, abs=1e-18)
    assert s.lr_at(1000) == s.lr_at(100)  # stays at the floor
    floor = CosineDecay(1.0, total_steps=10, eta_min=0.2)
    assert floor.lr_at(0) == pytest.approx(1.0)
    assert floor.lr_at(5) == pytest.approx(0.6)
    assert floor.lr_at(10) == pytest.approx(0.2)


def test_linear_known_steps():
    s = LinearDecay(1.0, total_steps=4, end_lr=0.2)
    np.testing.assert_allclose(s.curve(7), [1.0, 0.8, 0.6, 0.4, 0.2, 0.2, 0.2])


def test_inverse_sqrt_known_steps():
    s = InverseSqrt(2.0)
    assert [s.lr_at(t) for t in (0, 3, 15)] == pytest.approx([2.0, 1.0, 0.5])
    # Transformer form: warm-up W, then a0 * sqrt(W) / sqrt(t) with t counted from the start.
    w = Warmup(InverseSqrt(1.0, timescale=16), warmup_steps=16)
    for t in (16, 25, 64, 400):
        assert w.lr_at(t) == pytest.approx(math.sqrt(16) / math.sqrt(t))


def test_warmup_boundaries_and_inner_clock_starting_after_warmup():
    s = Warmup(CosineDecay(0.1, total_steps=100), warmup_steps=10)
    assert s.lr_at(0) == 0.0
    assert s.lr_at(5) == pytest.approx(0.05)
    assert s.lr_at(9) == pytest.approx(0.09)
    assert s.lr_at(10) == pytest.approx(0.1)  # end of warm-up: the inner schedule's t = 0
    assert s.lr_at(60) == pytest.approx(0.05)  # inner t = 50 of 100
    assert s.lr_at(110) == pytest.approx(0.0, abs=1e-18)
    start = Warmup(StepDecay(1.0, step_size=5, gamma=0.1), warmup_steps=4, start_factor=0.5)
    assert [start.lr_at(t) for t in (0, 2, 4, 8, 9)] == pytest.approx([0.5, 0.75, 1.0, 1.0, 0.1])
    assert Warmup(Constant(0.3), warmup_steps=0).lr_at(0) == 0.3


def test_lr_at_agrees_with_curve():
    s = Warmup(CosineDecay(0.5, total_steps=37, eta_min=0.01), warmup_steps=7, start_factor=0.1)
    c = s.curve(60)
    assert c.shape == (60,)
    assert [s.lr_at(t) for t in range(60)] == list(c)


def test_with_base_keeps_the_shape():
    s = Warmup(LinearDecay(1.0, total_steps=10, end_lr=0.0), warmup_steps=5)
    t = s.with_base(0.01)
    assert t.base_lr == 0.01
    np.testing.assert_allclose(t.curve(20), 0.01 * s.curve(20))


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(sorted(SCHEDULES)),
    base_lr=st.floats(0.0, 10.0),
    warmup=st.integers(0, 50),
    start_factor=st.floats(0.0, 1.0),
    step_size=st.integers(1, 50),
    gamma=st.floats(0.0, 1.0),
    total=st.integers(1, 200),
    floor=st.floats(0.0, 1.0),
    timescale=st.floats(1e-3, 1e4),
)
def test_every_curve_is_finite_and_non_negative(name, base_lr, warmup, start_factor, step_size, gamma, total,
                                                floor, timescale):
    params = {"Constant": {}, "Step": dict(step_size=step_size, gamma=gamma),
              "Cosine": dict(total_steps=total, eta_min=floor), "Linear": dict(total_steps=total, end_lr=floor),
              "Inverse sqrt": dict(timescale=timescale)}[name]
    s = make_schedule(name, base_lr, warmup_steps=warmup, start_factor=start_factor, **params)
    c = s.curve(400)
    assert c.shape == (400,)
    assert np.all(np.isfinite(c)) and np.all(c >= 0.0)
    if warmup == 0:
        assert c[0] == pytest.approx(base_lr)


def test_scheduled_optimizer_sets_lr_before_each_step():
    p = np.array([0.0])
    opt = SGD([p], lr=1.0)
    sched = ScheduledOptimizer(opt, StepDecay(1.0, step_size=2, gamma=0.5))
    seen = []
    for _ in range(5):
        seen.append(sched.lr)
        sched.step([np.array([-1.0])])  # p += lr
        assert opt.lr == seen[-1]
    assert seen == [1.0, 1.0, 0.5, 0.5, 0.25]
    assert p[0] == pytest.approx(3.25)
    assert Constant(0.2).apply(opt, 7) == 0.2 and opt.lr == 0.2


@pytest.mark.parametrize("make", [
    lambda: Constant(-1.0),
    lambda: Constant(float("nan")),
    lambda: StepDecay(1.0, step_size=0),
    lambda: StepDecay(1.0, gamma=1.5),
    lambda: CosineDecay(1.0, total_steps=0),
    lambda: CosineDecay(1.0, eta_min=-0.1),
    lambda: LinearDecay(1.0, total_steps=2.5),
    lambda: InverseSqrt(1.0, timescale=0.0),
    lambda: Warmup(Constant(1.0), warmup_steps=-1),
    lambda: Warmup(Constant(1.0), start_factor=2.0),
    lambda: Warmup("cosine", 10),
    lambda: make_schedule("Exponential", 1.0),
    lambda: Constant(1.0).lr_at(-1),
])
def test_bad_parameters_raise(make):
    with pytest.raises(ValueInputError):
        make()


def test_registry_entries_build_with_their_defaults():
    assert list(SCHEDULES) == ["Constant", "Step", "Cosine", "Linear", "Inverse sqrt"]
    for name, info in SCHEDULES.items():
        s = info.create(0.1)
        assert s.lr_at(0) == pytest.approx(0.1)
        for p in info.params:
            assert p.low <= p.default <= p.high


def test_parameters_are_declared_once_and_validate():
    from simulator.core.params import params_of
    from simulator.functional.schedules import MAX_CURVE_STEPS, WARMUP_PARAMS
    assert [p.name for p in SCHEDULES["Cosine"].params] == ["total_steps", "eta_min"]
    assert [p.name for p in params_of(StepDecay)] == ["base_lr", "step_size", "gamma"]
    assert [p.name for p in WARMUP_PARAMS] == ["warmup_steps", "start_factor"]
    for info in SCHEDULES.values():
        for p in info.params:
            assert p.label and p.doc
    assert StepDecay(1.0, step_size=5.0).step_size == 5 and isinstance(StepDecay(1.0, step_size=5.0).step_size, int)
    assert Constant(1.0).curve(MAX_CURVE_STEPS).shape == (MAX_CURVE_STEPS,)


@pytest.mark.parametrize("make, message", [
    (lambda: Constant(1.0).curve(10**9), "number of steps of a schedule curve must be ≤ 1000000"),
    (lambda: Constant(1.0).curve(-1), "must be ≥ 0"),
    (lambda: Constant(1.0).lr_at(2.5), "step must be a whole number"),
    (lambda: StepDecay(1.0, gamma=1.5), "gamma must be ≤ 1, got 1.5"),
    (lambda: CosineDecay(1.0, total_steps=0), "total steps must be ≥ 1, got 0"),
    (lambda: Constant("fast"), "base lr must be a number"),
    (lambda: make_schedule("Step", 1.0, total_steps=10), "the Step schedule has no parameter 'total_steps'"),
    (lambda: make_schedule("Cosine", 1.0, start_factor=3.0), "start factor must be ≤ 1"),
    (lambda: make_schedule(None, 1.0), "unknown schedule None"),
])
def test_bad_input_says_what_is_wrong(make, message):
    with pytest.raises(ValueInputError, match=message):
        make()
