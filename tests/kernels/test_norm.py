"""kernels.norm against plain numpy: batch norm (train and eval), layer norm, instance norm, forward and backward."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from kernels import norm as K

SETTINGS = settings(max_examples=30, deadline=None, database=None)
EPS = 1e-5


def ref_norm_backward(dout, x, gamma_b, axes, eps):
    """Backward of out = (x - mean) / sqrt(var + eps) * gamma over `axes`, written out term by term."""
    m = np.prod([x.shape[a] for a in axes])
    mu = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)
    istd = 1 / np.sqrt(var + eps)
    dxhat = dout * gamma_b
    dvar = np.sum(dxhat * (x - mu) * -0.5 * istd ** 3, axis=axes, keepdims=True)
    dmu = np.sum(-dxhat * istd, axis=axes, keepdims=True) + dvar * np.mean(-2 * (x - mu), axis=axes, keepdims=True)
    return dxhat * istd + dvar * 2 * (x - mu) / m + dmu / m


def _tol(dtype):
    return (1e-10, 1e-10) if dtype == np.float64 else (2e-4, 2e-4)


@SETTINGS
@given(A=st.integers(1, 5), C=st.integers(1, 4), B=st.integers(1, 6), dtype=st.sampled_from([np.float64, np.float32]),
       seed=st.integers(0, 2**32 - 1))
def test_batchnorm_train_and_eval(A, C, B, dtype, seed):
    if A * B < 2:
        A = 2
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((A, C, B)) * 3 + 1).astype(dtype)
    g = rng.standard_normal(C).astype(dtype)
    be = rng.standard_normal(C).astype(dtype)
    dout = rng.standard_normal(x.shape).astype(dtype)
    x64 = x.astype(np.float64)
    gb, bb = g[None, :, None].astype(np.float64), be[None, :, None].astype(np.float64)
    rtol, atol = _tol(dtype)

    out, xhat, mean, var, inv_std = K.batchnorm_train_forward(x, g, be, EPS)
    mu, v = x64.mean(axis=(0, 2)), x64.var(axis=(0, 2))
    exp = (x64 - mu[None, :, None]) / np.sqrt(v[None, :, None] + EPS) * gb + bb
    np.testing.assert_allclose(out, exp, rtol=rtol, atol=atol)
    np.testing.assert_allclose(mean, mu, rtol=rtol, atol=atol)
    np.testing.assert_allclose(var, v, rtol=rtol, atol=atol)
    dx, dg, db = K.batchnorm_backward(dout, xhat, g, inv_std, True)
    d64 = dout.astype(np.float64)
    np.testing.assert_allclose(dx, ref_norm_backward(d64, x64, gb, (0, 2), EPS), rtol=rtol * 10, atol=atol * 10)
    xh = (x64 - mu[None, :, None]) / np.sqrt(v[None, :, None] + EPS)
    np.testing.assert_allclose(dg, (d64 * xh).sum(axis=(0, 2)), rtol=rtol * 10, atol=atol * 10)
    np.testing.assert_allclose(db, d64.sum(axis=(0, 2)), rtol=rtol, atol=atol)
    assert {a.dtype for a in (out, xhat, mean, var, inv_std, dx, dg, db)} == {np.dtype(dtype)}

    rm = rng.standard_normal(C).astype(dtype)
    rv = rng.uniform(0.5, 2, C).astype(dtype)
    out, xhat, inv_std = K.batchnorm_eval_forward(x, g, be, rm, rv, EPS)
    s = 1 / np.sqrt(rv.astype(np.float64) + EPS)
    np.testing.assert_allclose(out, (x64 - rm[None, :, None]) * s[None, :, None] * gb + bb, rtol=rtol, atol=atol)
    dx, dg, db = K.batchnorm_backward(dout, xhat, g, inv_std, False)
    np.testing.assert_allclose(dx, d64 * gb * s[None, :, None], rtol=rtol, atol=atol)
    np.testing.assert_allclose(dg, (d64 * (x64 - rm[None, :, None]) * s[None, :, None]).sum(axis=(0, 2)),
                               rtol=rtol * 10, atol=atol * 10)


@SETTINGS
@given(N=st.integers(1, 5), D=st.integers(1, 9), dtype=st.sampled_from([np.float64, np.float32]),
       seed=st.integers(0, 2**32 - 1))
def test_layernorm(N, D, dtype, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((N, D)) * 2 - 1).astype(dtype)
    g = rng.standard_normal(D).astype(dtype)
    be = rng.standard_normal(D).astype(dtype)
    dout = rng.standard_normal(x.shape).astype(dtype)
    x64, d64 = x.astype(np.float64), dout.astype(np.float64)
    rtol, atol = _tol(dtype)
    out, xhat, inv_std = K.layernorm_forward(x, g, be, EPS)
    xh = (x64 - x64.mean(1, keepdims=True)) / np.sqrt(x64.var(1, keepdims=True) + EPS)
    np.testing.assert_allclose(out, xh * g + be, rtol=rtol, atol=atol)
    dx, dg, db = K.layernorm_backward(dout, xhat, g, inv_std)
    np.testing.assert_allclose(dx, ref_norm_backward(d64, x64, g.astype(np.float64), (1,), EPS),
                               rtol=rtol * 10, atol=atol * 10)
    np.testing.assert_allclose(dg, (d64 * xh).sum(0), rtol=rtol * 10, atol=atol * 10)
    np.testing.assert_allclose(db, d64.sum(0), rtol=rtol, atol=atol)


@SETTINGS
@given(N=st.integers(1, 4), C=st.integers(1, 4), L=st.integers(2, 9), dtype=st.sampled_from([np.float64, np.float32]),
       seed=st.integers(0, 2**32 - 1))
def test_instancenorm(N, C, L, dtype, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((N, C, L)) * 2 + 1).astype(dtype)
    g = rng.standard_normal(C).astype(dtype)
    be = rng.standard_normal(C).astype(dtype)
    dout = rng.standard_normal(x.shape).astype(dtype)
    x64, d64 = x.astype(np.float64), dout.astype(np.float64)
    gb = g[None, :, None].astype(np.float64)
    rtol, atol = _tol(dtype)
    out, xhat, inv_std = K.instancenorm_forward(x, g, be, EPS)
    xh = (x64 - x64.mean(2, keepdims=True)) / np.sqrt(x64.var(2, keepdims=True) + EPS)
    np.testing.assert_allclose(out, xh * gb + be[None, :, None], rtol=rtol, atol=atol)
    dx, dg, db = K.instancenorm_backward(dout, xhat, g, inv_std)
    np.testing.assert_allclose(dx, ref_norm_backward(d64, x64, gb, (2,), EPS), rtol=rtol * 10, atol=atol * 10)
    np.testing.assert_allclose(dg, (d64 * xh).sum((0, 2)), rtol=rtol * 10, atol=atol * 10)
    np.testing.assert_allclose(db, d64.sum((0, 2)), rtol=rtol, atol=atol)


@SETTINGS
@given(N=st.integers(1, 4), G=st.integers(1, 4), cg=st.integers(1, 3), L=st.integers(1, 7),
       dtype=st.sampled_from([np.float64, np.float32]), seed=st.integers(0, 2**32 - 1))
def test_groupnorm(N, G, cg, L, dtype, seed):
    if cg * L < 2:
        L = 2
    C = G * cg
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((N, C, L)) * 2 - 0.5).astype(dtype)
    g = rng.standard_normal(C).astype(dtype)
    be = rng.standard_normal(C).astype(dtype)
    dout = rng.standard_normal(x.shape).astype(dtype)
    x64, d64 = x.astype(np.float64), dout.astype(np.float64)
    rtol, atol = _tol(dtype)
    out, xhat, inv_std = K.groupnorm_forward(x, g, be, G, EPS)
    assert out.dtype == dtype and inv_std.shape == (N, G)
    # numpy reference: the group axis made explicit, (N, G, C/G, L), statistics over the last two axes
    xg = x64.reshape(N, G, cg, L)
    xh = ((xg - xg.mean((2, 3), keepdims=True)) / np.sqrt(xg.var((2, 3), keepdims=True) + EPS)).reshape(x.shape)
    gb = g[None, :, None].astype(np.float64)
    np.testing.assert_allclose(out, xh * gb + be[None, :, None], rtol=rtol, atol=atol)
    dx, dg, db = K.groupnorm_backward(dout, xhat, g, inv_std, G)
    ref = ref_norm_backward(d64.reshape(N, G, cg, L), xg, gb.reshape(1, G, cg, 1), (2, 3), EPS).reshape(x.shape)
    np.testing.assert_allclose(dx, ref, rtol=rtol * 10, atol=atol * 10)
    np.testing.assert_allclose(dg, (d64 * xh).sum((0, 2)), rtol=rtol * 10, atol=atol * 10)
    np.testing.assert_allclose(db, d64.sum((0, 2)), rtol=rtol, atol=atol)


@pytest.mark.parametrize("offset, scale, L", [(0.0, 1.0, 1024), (100.0, 1.0, 1024), (0.0, 1e-3, 1024),
                                              (255.0, 60.0, 1024), (1e4, 1e-2, 1024), (128.0, 60.0, 65536)])
def test_groupnorm_float32_long_rows_stay_within_float32_rounding(offset, scale, L):
    """Rows of 1,024 values (a 32x32 feature map) and of 65,536 (256x256), which the float32 kernel sums in float32
    lanes: against a float64 reference computed from the same float32 inputs, including data far
    from zero mean (an image in 0-255) and data whose spread is a few ulps of its mean (1e4 +- 0.01). The outputs
    lie within about 1e-6: a few float32 ulps."""
    rng = np.random.default_rng(7)
    N, G, cg = (3, 2, 4) if L <= 1024 else (1, 2, 2)
    C = G * cg
    x = (rng.standard_normal((N, C, L)) * scale + offset).astype(np.float32)
    g, be = rng.standard_normal(C).astype(np.float32), rng.standard_normal(C).astype(np.float32)
    dout = rng.standard_normal(x.shape).astype(np.float32)
    x64, d64 = x.astype(np.float64), dout.astype(np.float64)
    xg = x64.reshape(N, G, cg, L)
    xh = ((xg - xg.mean((2, 3), keepdims=True)) / np.sqrt(xg.var((2, 3), keepdims=True) + EPS)).reshape(x.shape)
    gb = g[None, :, None].astype(np.float64)
    out, xhat, inv_std = K.groupnorm_forward(x, g, be, G, EPS)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, xh * gb + be[None, :, None], rtol=1e-6, atol=2e-6)
    dx, dg, db = K.groupnorm_backward(dout, xhat, g, inv_std, G)
    ref = ref_norm_backward(d64.reshape(N, G, cg, L), xg, gb.reshape(1, G, cg, 1), (2, 3), EPS).reshape(x.shape)
    np.testing.assert_allclose(dx, ref, rtol=1e-5, atol=1e-5)
    # dgamma and dbeta sum N*L terms in float32 lanes: the rounding grows as the square root of the terms (at 65,536:
    # 3e-4 and 4e-4 here, where torch's float32 group norm is 4e-3 and 1e-3 off)
    atol = 1e-4 * np.sqrt(L / 1024)
    np.testing.assert_allclose(dg, (d64 * xh).sum((0, 2)), rtol=1e-5, atol=atol)
    np.testing.assert_allclose(db, d64.sum((0, 2)), rtol=1e-5, atol=atol)


def test_groupnorm_with_one_group_per_channel_is_instance_norm():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 4, 6))
    g, b, d = rng.standard_normal(4), rng.standard_normal(4), rng.standard_normal((3, 4, 6))
    out, xhat, inv = K.groupnorm_forward(x, g, b, 4, EPS)
    out_i, xhat_i, inv_i = K.instancenorm_forward(x, g, b, EPS)
    np.testing.assert_allclose(out, out_i, rtol=1e-12, atol=1e-13)
    for a, b_ in zip(K.groupnorm_backward(d, xhat, g, inv, 4), K.instancenorm_backward(d, xhat_i, g, inv_i)):
        np.testing.assert_allclose(a, b_, rtol=1e-11, atol=1e-12)


def test_warmup_compiles_what_the_layers_call():
    # the warm-up's calls have the layers' signatures, so a network with group or instance norm in float32 or
    # float64 compiles nothing when it first runs (on the UI thread, say)
    from simulator.functional import layers as L
    for _, task in K.warmup_tasks():
        task()
    kernels = (K._groupnorm_forward_into, K._groupnorm_backward_into)      # instance norm runs these too
    before = [len(k.signatures) for k in kernels]
    assert all(n >= 2 for n in before)
    rng = np.random.default_rng(0)
    for dt in (np.float32, np.float64):
        x = rng.standard_normal((3, 4, 5, 5)).astype(dt)
        g, b = np.ones(4, dt), np.zeros(4, dt)
        out, cache = L.groupnorm_forward(x, g, b, 2)
        L.groupnorm_backward(out, cache)
        out, cache = L.instancenorm_forward(x, g, b)
        L.instancenorm_backward(out, cache)
    assert [len(k.signatures) for k in kernels] == before
