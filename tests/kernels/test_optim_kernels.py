"""Optimizer kernels against plain numpy references, float64 and float32, over many sizes."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels import optim as K

DTYPES = [np.float64, np.float32]


def _arrays(n, dtype, seed, k):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(n).astype(dtype) for _ in range(k)]


def _c(dtype, v):
    """A Python-float coefficient rounded to the dtype, as the kernels (and torch) round scalars."""
    return dtype(v)


sizes = st.integers(min_value=0, max_value=67)
seeds = st.integers(min_value=0, max_value=2**31 - 1)


@settings(max_examples=25, deadline=None)
@given(n=sizes, seed=seeds, dtype=st.sampled_from(DTYPES), wd=st.sampled_from([0.0, 0.05]))
def test_sgd_step(n, seed, dtype, wd):
    p, g = _arrays(n, dtype, seed, 2)
    ref = p - _c(dtype, 0.1) * (g + _c(dtype, wd) * p)
    K.sgd_step(p, g, 0.1, wd)
    np.testing.assert_array_equal(p, ref)
    assert p.dtype == dtype


@settings(max_examples=25, deadline=None)
@given(n=sizes, seed=seeds, dtype=st.sampled_from(DTYPES), nesterov=st.booleans(), first=st.booleans())
def test_sgd_momentum_step(n, seed, dtype, nesterov, first):
    p, g, buf = _arrays(n, dtype, seed, 3)
    lr, mu, wd = _c(dtype, 0.1), _c(dtype, 0.9), _c(dtype, 0.01)
    gg = g + wd * p
    b = gg.copy() if first else mu * buf + gg
    ref = p - lr * (gg + mu * b if nesterov else b)
    K.sgd_momentum_step(p, g, buf, 0.1, 0.9, 0.01, nesterov, first)
    np.testing.assert_array_equal(buf, b)
    np.testing.assert_array_equal(p, ref)


@settings(max_examples=25, deadline=None)
@given(n=sizes, seed=seeds, dtype=st.sampled_from(DTYPES))
def test_adagrad_step(n, seed, dtype):
    p, g, s = _arrays(n, dtype, seed, 3)
    s = np.abs(s)
    lr, eps, wd = _c(dtype, 0.05), _c(dtype, 1e-10), _c(dtype, 0.1)
    gg = g + wd * p
    s_ref = s + gg * gg
    ref = p - lr * gg / (np.sqrt(s_ref) + eps)
    K.adagrad_step(p, g, s, 0.05, 1e-10, 0.1)
    np.testing.assert_array_equal(s, s_ref)
    np.testing.assert_array_equal(p, ref)


@settings(max_examples=40, deadline=None)
@given(n=sizes, seed=seeds, dtype=st.sampled_from(DTYPES), momentum=st.sampled_from([0.0, 0.9]),
       centered=st.booleans(), wd=st.sampled_from([0.0, 0.01]))
def test_rmsprop_step(n, seed, dtype, momentum, centered, wd):
    p, g, sq, ga, buf = _arrays(n, dtype, seed, 5)
    sq = np.abs(sq) + 1.0  # keep sq - ga^2 positive for the centered variant
    ga = ga * 0.1
    c = lambda v: _c(dtype, v)  # noqa: E731
    gg = g + c(wd) * p
    sq_ref = c(0.99) * sq + c(1.0 - 0.99) * gg * gg
    ga_ref = c(0.99) * ga + c(1.0 - 0.99) * gg if centered else ga
    avg = (np.sqrt(sq_ref - ga_ref * ga_ref) if centered else np.sqrt(sq_ref)) + c(1e-8)
    if momentum:
        buf_ref = c(momentum) * buf + gg / avg
        ref = p - c(0.01) * buf_ref
    else:
        buf_ref = buf
        ref = p - c(0.01) * gg / avg
    K.rmsprop_step(p, g, sq, ga, buf, 0.01, 0.99, 1e-8, momentum, wd, centered)
    np.testing.assert_array_equal(sq, sq_ref)
    np.testing.assert_array_equal(ga, ga_ref)
    np.testing.assert_array_equal(buf, buf_ref)
    np.testing.assert_array_equal(p, ref)


@settings(max_examples=40, deadline=None)
@given(n=sizes, seed=seeds, dtype=st.sampled_from(DTYPES), step=st.integers(1, 5000),
       wd=st.sampled_from([0.0, 0.1]), decoupled=st.booleans())
def test_adam_and_adamw_step(n, seed, dtype, step, wd, decoupled):
    p, g, m, v = _arrays(n, dtype, seed, 4)
    v = np.abs(v)
    c = lambda x: _c(dtype, x)  # noqa: E731
    lr, b1, b2, eps = 1e-3, 0.9, 0.999, 1e-8
    bc1, bc2 = 1 - b1**step, 1 - b2**step  # Python floats, as torch computes them
    if decoupled:
        p0 = p * c(1 - lr * wd) if wd else p
        gg = g
    else:
        p0 = p
        gg = g + c(wd) * p if wd else g
    m_ref = c(b1) * m + c(1 - b1) * gg
    v_ref = c(b2) * v + c(1 - b2) * gg * gg
    ref = p0 - c(lr / bc1) * m_ref / (np.sqrt(v_ref) / c(math.sqrt(bc2)) + c(eps))
    (K.adamw_step if decoupled else K.adam_step)(p, g, m, v, lr, b1, b2, eps, wd, step)
    np.testing.assert_array_equal(m, m_ref)
    np.testing.assert_array_equal(v, v_ref)
    np.testing.assert_array_equal(p, ref)


def test_kernels_update_views_in_place():
    p = np.ones((3, 4))
    K.sgd_step(p.reshape(-1), np.full(12, 2.0), 0.25, 0.0)
    np.testing.assert_array_equal(p, np.full((3, 4), 0.5))


def test_adam_coefficients_match_python():
    for step in (1, 2, 10, 12345):
        ss, bc2s = K.adam_coefficients(0.001, 0.9, 0.999, step)
        assert ss == 0.001 / (1 - 0.9**step)
        assert bc2s == math.sqrt(1 - 0.999**step)


def test_warmup_tasks_run_every_kernel_for_both_dtypes():
    tasks = K.warmup_tasks()
    names = [n for n, _ in tasks]
    assert len(set(names)) == len(names)
    for kernel in ("sgd_step", "sgd_momentum_step", "adagrad_step", "rmsprop_step", "adam_step", "adamw_step"):
        for dt in ("float64", "float32"):
            assert f"optim.{kernel}[{dt}]" in names
    assert "optim.race_step_2d" in names
    for _, task in tasks:
        assert task() is None


@pytest.mark.parametrize("family", [K.SGD, K.SGD_MOMENTUM, K.ADAGRAD, K.RMSPROP, K.ADAM, K.ADAMW])
def test_race_step_flags_divergence_and_restores_the_point(family):
    x = np.array([[1.0, -1.0], [0.5, 0.5]])
    hyper = np.zeros((2, K.N_HYPER))
    hyper[:, K.H_MOMENTUM] = 0.9 if family == K.SGD_MOMENTUM else 0.0
    hyper[:, K.H_BETA1], hyper[:, K.H_BETA2], hyper[:, K.H_EPS] = 0.9, 0.999, 1e-8
    if family == K.RMSPROP:
        hyper[:, K.H_BETA1] = 0.99
    z = np.zeros((2, 2))
    step = np.zeros(2, np.int64)
    active = np.ones(2, np.bool_)
    diverged = np.zeros(2, np.int64)
    lr = np.array([1e12, 1e-3])
    K.race_step_2d(x, np.array([1e3, 1.0]), np.array([1e3, 1.0]), z.copy(), z.copy(), z.copy(),
                   np.full(2, family, np.int64), hyper, lr, step, active, diverged, 1e6)
    assert list(active) == [False, True]
    assert list(diverged) == [1, 0]
    np.testing.assert_array_equal(x[0], [1.0, -1.0])  # put back to its last good point
    assert np.all(x[1] < 0.5)
