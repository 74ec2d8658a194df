"""kernels.pool against plain numpy loops: max and average pooling, forward and backward, floor mode."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from kernels import pool as K

SETTINGS = settings(max_examples=40, deadline=None, database=None)


def ref_max(x, HH, WW, sh, sw):
    N, C, H, W = x.shape
    Ho, Wo = (H - HH) // sh + 1, (W - WW) // sw + 1
    out = np.zeros((N, C, Ho, Wo), x.dtype)
    arg = np.zeros((N, C, Ho, Wo), np.int64)
    for n in range(N):
        for c in range(C):
            for i in range(Ho):
                for j in range(Wo):
                    win = x[n, c, i * sh:i * sh + HH, j * sw:j * sw + WW]
                    k = int(np.argmax(win))  # numpy's argmax: first occurrence in row-major order
                    out[n, c, i, j] = win.flat[k]
                    arg[n, c, i, j] = (i * sh + k // WW) * W + j * sw + k % WW
    return out, arg


def ref_max_backward(dout, arg, H, W):
    N, C = dout.shape[:2]
    dx = np.zeros((N, C, H * W))
    for n in range(N):
        for c in range(C):
            np.add.at(dx[n, c], arg[n, c].ravel(), dout[n, c].ravel())
    return dx.reshape(N, C, H, W)


def ref_avg(x, HH, WW, sh, sw):
    N, C, H, W = x.shape
    Ho, Wo = (H - HH) // sh + 1, (W - WW) // sw + 1
    out = np.zeros((N, C, Ho, Wo))
    for i in range(Ho):
        for j in range(Wo):
            out[:, :, i, j] = x[:, :, i * sh:i * sh + HH, j * sw:j * sw + WW].mean(axis=(2, 3))
    return out


def ref_avg_backward(dout, H, W, HH, WW, sh, sw):
    N, C, Ho, Wo = dout.shape
    dx = np.zeros((N, C, H, W))
    for i in range(Ho):
        for j in range(Wo):
            dx[:, :, i * sh:i * sh + HH, j * sw:j * sw + WW] += dout[:, :, i, j, None, None] / (HH * WW)
    return dx


@st.composite
def pool_case(draw):
    HH, WW = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    H, W = draw(st.integers(HH, 10)), draw(st.integers(WW, 10))
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 3)), H, W)
    ties = draw(st.booleans())  # small integers: many ties, which must go to the first maximum
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    return shape, HH, WW, sh, sw, ties, dtype, draw(st.integers(0, 2**32 - 1))


@SETTINGS
@given(pool_case())
def test_pools_match_reference(case):
    shape, HH, WW, sh, sw, ties, dtype, seed = case
    rng = np.random.default_rng(seed)
    x = (rng.integers(0, 3, shape) if ties else rng.standard_normal(shape)).astype(dtype)
    out, arg = K.max_pool_forward(x, HH, WW, sh, sw)
    rout, rarg = ref_max(x, HH, WW, sh, sw)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, rout)
    np.testing.assert_array_equal(arg, rarg)
    dout = rng.standard_normal(out.shape).astype(dtype)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    dx = K.max_pool_backward(dout, arg, shape[2], shape[3])
    assert dx.dtype == dtype
    np.testing.assert_allclose(dx, ref_max_backward(dout.astype(np.float64), rarg, *shape[2:]), rtol=tol, atol=tol)

    out = K.avg_pool_forward(x, HH, WW, sh, sw)
    assert out.dtype == dtype
    np.testing.assert_allclose(out, ref_avg(x.astype(np.float64), HH, WW, sh, sw), rtol=tol, atol=tol)
    dx = K.avg_pool_backward(dout, shape[2], shape[3], HH, WW, sh, sw)
    assert dx.dtype == dtype
    np.testing.assert_allclose(dx, ref_avg_backward(dout.astype(np.float64), *shape[2:], HH, WW, sh, sw),
                               rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_all_equal_window_routes_gradient_to_exactly_the_first_element(dtype):
    x = np.full((2, 3, 6, 6), 1.5, dtype)
    out, arg = K.max_pool_forward(x, 2, 2, 2, 2)
    dx = K.max_pool_backward(np.ones_like(out), arg, 6, 6)
    assert dx.sum() == out.size
    assert np.count_nonzero(dx) == out.size       # one element per window
    assert np.all(dx[:, :, ::2, ::2] == 1)        # the first in row-major order


def test_windows_that_do_not_tile_drop_the_remainder():
    x = np.arange(2 * 7 * 5, dtype=np.float64).reshape(1, 2, 7, 5)
    out, arg = K.max_pool_forward(x, 2, 2, 2, 2)
    assert out.shape == (1, 2, 3, 2)
    dx = K.max_pool_backward(np.ones_like(out), arg, 7, 5)
    assert np.all(dx[:, :, 6, :] == 0) and np.all(dx[:, :, :, 4] == 0)
    a = K.avg_pool_forward(x, 3, 3, 3, 3)
    assert a.shape == (1, 2, 2, 1)
    assert a[0, 0, 0, 0] == x[0, 0, :3, :3].mean()
