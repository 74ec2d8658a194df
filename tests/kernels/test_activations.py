"""kernels.activations against plain numpy formulas, forward and backward, float32 and float64, and at extremes."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy.special import erf

from kernels import activations as K

SETTINGS = settings(max_examples=30, deadline=None, database=None)
A, S = K.SELU_ALPHA, K.SELU_SCALE


def _sig(x):
    return np.exp(-np.logaddexp(0.0, -x))


# name -> (forward(x), backward(dout, x, out), numpy forward, numpy dx/dx)
REFS = {
    "relu": (K.relu_forward, lambda g, x, o: K.relu_backward(g, x),
             lambda x: np.maximum(x, 0), lambda x: (x > 0) * 1.0),
    "leaky_relu": (lambda x: K.leaky_relu_forward(x, 0.1), lambda g, x, o: K.leaky_relu_backward(g, x, 0.1),
                   lambda x: np.where(x > 0, x, 0.1 * x), lambda x: np.where(x > 0, 1.0, 0.1)),
    "elu": (lambda x: K.elu_forward(x, 0.7), lambda g, x, o: K.elu_backward(g, x, o, 0.7),
            lambda x: np.where(x > 0, x, 0.7 * np.expm1(np.minimum(x, 0))),
            lambda x: np.where(x > 0, 1.0, 0.7 * np.exp(np.minimum(x, 0)))),
    "selu": (K.selu_forward, lambda g, x, o: K.selu_backward(g, x, o),
             lambda x: S * np.where(x > 0, x, A * np.expm1(np.minimum(x, 0))),
             lambda x: S * np.where(x > 0, 1.0, A * np.exp(np.minimum(x, 0)))),
    "sigmoid": (K.sigmoid_forward, lambda g, x, o: K.sigmoid_backward(g, o),
                _sig, lambda x: _sig(x) * _sig(-x)),
    "tanh": (K.tanh_forward, lambda g, x, o: K.tanh_backward(g, o),
             np.tanh, lambda x: 1.0 / np.cosh(np.clip(x, -300, 300)) ** 2),
    "gelu": (K.gelu_forward, lambda g, x, o: K.gelu_backward(g, x),
             lambda x: 0.5 * x * (1 + erf(x / math.sqrt(2))),
             lambda x: 0.5 * (1 + erf(x / math.sqrt(2))) + x * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)),
    "silu": (K.silu_forward, lambda g, x, o: K.silu_backward(g, x),
             lambda x: x * _sig(x), lambda x: _sig(x) * (1 + x * _sig(-x))),
    "softplus": (K.softplus_forward, lambda g, x, o: K.softplus_backward(g, x),
                 lambda x: np.logaddexp(0.0, x), _sig),
}


shapes = st.lists(st.integers(1, 6), min_size=1, max_size=4).map(tuple)


@SETTINGS
@given(name=st.sampled_from(sorted(REFS)), shape=shapes, dtype=st.sampled_from([np.float64, np.float32]),
       scale=st.sampled_from([0.5, 3.0, 30.0]), seed=st.integers(0, 2**32 - 1))
def test_activation_matches_numpy(name, shape, dtype, scale, seed):
    fwd, bwd, ref_f, ref_d = REFS[name]
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * scale).astype(dtype)
    dout = rng.standard_normal(shape).astype(dtype)
    out = fwd(x)
    dx = bwd(dout, x, out)
    x64 = x.astype(np.float64)
    rtol, atol = (1e-12, 1e-14) if dtype == np.float64 else (2e-6, 1e-6)
    assert out.dtype == dtype and dx.dtype == dtype and out.shape == shape and dx.shape == shape
    np.testing.assert_allclose(out, ref_f(x64), rtol=rtol, atol=atol)
    np.testing.assert_allclose(dx, dout.astype(np.float64) * ref_d(x64), rtol=rtol * 4, atol=atol * 4)


@pytest.mark.parametrize("name", sorted(REFS))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_extreme_inputs_stay_finite_and_saturate(name, dtype):
    fwd, bwd, ref_f, ref_d = REFS[name]
    x = np.array([-1e4, -80.0, -1.0, 0.0, 1.0, 80.0, 1e4], dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow to 0 is fine
        out = fwd(x)
        dx = bwd(np.ones_like(x), x, out)
    assert np.all(np.isfinite(out)) and np.all(np.isfinite(dx))
    with np.errstate(all="ignore"):
        exp_out = ref_f(x.astype(np.float64))
        exp_dx = ref_d(x.astype(np.float64))
    rtol = 1e-12 if dtype == np.float64 else 2e-6
    np.testing.assert_allclose(out, exp_out, rtol=rtol, atol=1e-30)
    np.testing.assert_allclose(dx, exp_dx, rtol=rtol * 4, atol=1e-30)


def test_relu_gradient_at_the_kink_is_zero():
    x = np.zeros(3)
    assert np.all(K.relu_backward(np.ones(3), x) == 0)
    assert np.all(K.leaky_relu_backward(np.ones(3), x, 0.01) == 0.01)


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_relu_backward_passes_dout_bit_for_bit_and_zeroes_the_rest(dtype):
    """dx is dout itself where x > 0 (every bit: -0.0, inf, NaN, the smallest subnormal) and +0.0 elsewhere,
    whatever dout holds there (an inf upstream gradient behind a dead unit gives 0, not NaN, as in torch)."""
    tiny = np.finfo(dtype).smallest_subnormal
    dout = np.array([-0.0, np.inf, np.nan, tiny, -3.5, np.inf, np.nan, -2.0, 7.0], dtype)
    x = np.array([1.0, 2.0, 0.5, 3.0, 4.0, -1.0, 0.0, np.nan, -0.0], dtype).reshape(3, 3)
    dx = K.relu_backward(dout.reshape(3, 3), x)
    assert dx.dtype == dtype and dx.shape == (3, 3)
    expected = np.array([-0.0, np.inf, np.nan, tiny, -3.5, 0.0, 0.0, 0.0, 0.0], dtype)
    assert dx.reshape(-1).tobytes() == expected.tobytes()
    # a float64 upstream gradient is taken in x's dtype, and a scalar or a row broadcasts to x's shape
    assert K.relu_backward(np.full((3, 3), 0.1), x).dtype == dtype
    kept = (x > 0).reshape(-1)
    for g in (np.float64(2.0), np.full(3, 2.0)):
        dx = K.relu_backward(g, x).reshape(-1)
        assert dx.dtype == dtype and np.array_equal(dx, np.where(kept, 2.0, 0.0).astype(dtype))


@SETTINGS
@given(shape=st.lists(st.integers(1, 5), min_size=2, max_size=4).map(tuple), per_channel=st.booleans(),
       dtype=st.sampled_from([np.float64, np.float32]), seed=st.integers(0, 2**32 - 1))
def test_prelu_matches_numpy(shape, per_channel, dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    dout = rng.standard_normal(shape).astype(dtype)
    alpha = rng.uniform(0, 0.5, shape[1] if per_channel else 1).astype(dtype)
    a = alpha.reshape((1, -1) + (1,) * (len(shape) - 2)) if per_channel else alpha[0]
    out = K.prelu_forward(x, alpha)
    dx, dalpha = K.prelu_backward(dout, x, alpha)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(out, np.where(x > 0, x, a * x), rtol=tol)
    np.testing.assert_allclose(dx, np.where(x > 0, dout, a * dout), rtol=tol)
    neg = np.where(x > 0, 0, dout.astype(np.float64) * x)
    exp_da = neg.sum(axis=tuple(i for i in range(len(shape)) if i != 1)) if per_channel else np.array([neg.sum()])
    assert dalpha.shape == alpha.shape and dalpha.dtype == dtype
    np.testing.assert_allclose(dalpha, exp_da, rtol=tol * 10, atol=tol * 10)


@SETTINGS
@given(N=st.integers(1, 5), D=st.integers(1, 6), M=st.integers(1, 4), k=st.integers(1, 4),
       dtype=st.sampled_from([np.float64, np.float32]), seed=st.integers(0, 2**32 - 1))
def test_maxout_matches_numpy(N, D, M, k, dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, D)).astype(dtype)
    w = rng.standard_normal((D, M, k)).astype(dtype)
    b = rng.standard_normal((M, k)).astype(dtype)
    out, arg = K.maxout_forward(x, w, b)
    z = np.einsum("nd,dmk->nmk", x.astype(np.float64), w.astype(np.float64)) + b
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(out, z.max(axis=2), rtol=tol, atol=tol)
    dout = rng.standard_normal((N, M)).astype(dtype)
    dx, dw, db = K.maxout_backward(dout, x, w, arg)
    dz = np.zeros((N, M, k))
    np.put_along_axis(dz, arg[:, :, None], dout[:, :, None].astype(np.float64), axis=2)
    np.testing.assert_allclose(dx, np.einsum("nmk,dmk->nd", dz, w), rtol=tol, atol=tol * 10)
    np.testing.assert_allclose(dw, np.einsum("nd,nmk->dmk", x, dz), rtol=tol, atol=tol * 10)
    np.testing.assert_allclose(db, dz.sum(axis=0), rtol=tol, atol=tol * 10)
    assert dx.dtype == dw.dtype == db.dtype == dtype
