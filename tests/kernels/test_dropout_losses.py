"""kernels.dropout (seeded inverted dropout) and kernels.losses (SVM, softmax) against numpy."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from kernels import dropout as D
from kernels import losses as L

SETTINGS = settings(max_examples=40, deadline=None, database=None)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_dropout_p0_is_identity(dtype):
    x = np.random.default_rng(0).standard_normal((4, 5)).astype(dtype)
    out, mask = D.dropout_forward(x, 0.0, 1)
    np.testing.assert_array_equal(out, x)
    np.testing.assert_array_equal(D.dropout_backward(np.ones_like(x), mask), np.ones_like(x))


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9, 0.99])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_dropout_preserves_the_mean_and_is_seeded(p, dtype):
    x = np.full(400_000, 2.0, dtype)
    out, mask = D.dropout_forward(x, p, 123)
    assert out.dtype == mask.dtype == dtype
    kept = mask != 0
    np.testing.assert_allclose(mask[kept], 1 / (1 - p), rtol=1e-6)
    np.testing.assert_array_equal(out, x * mask)
    # fraction kept ~ Binomial(n, 1-p): allow 6 standard deviations
    n = x.size
    sd = np.sqrt(p * (1 - p) / n)
    assert abs(kept.mean() - (1 - p)) < 6 * sd
    assert abs(out.mean() - 2.0) < 2.0 * 6 * sd / (1 - p)
    out2, mask2 = D.dropout_forward(x, p, 123)
    np.testing.assert_array_equal(mask, mask2)
    _, mask3 = D.dropout_forward(x, p, 124)
    assert not np.array_equal(mask, mask3)
    g = np.random.default_rng(1).standard_normal(x.shape).astype(dtype)
    np.testing.assert_array_equal(D.dropout_backward(g, mask), g * mask)


def ref_svm(s, y):
    N = s.shape[0]
    margins = np.maximum(0, s - s[np.arange(N), y][:, None] + 1)
    margins[np.arange(N), y] = 0
    ds = (margins > 0).astype(np.float64)
    ds[np.arange(N), y] = -ds.sum(axis=1)
    return margins.sum() / N, ds / N


def ref_softmax(s, y):
    N = s.shape[0]
    z = s - s.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    ds = np.exp(logp)
    ds[np.arange(N), y] -= 1
    return -logp[np.arange(N), y].mean(), ds / N


@SETTINGS
@given(N=st.integers(1, 8), C=st.integers(1, 7), scale=st.sampled_from([0.1, 2.0, 1e4]),
       dtype=st.sampled_from([np.float64, np.float32]), seed=st.integers(0, 2**32 - 1))
def test_losses_match_numpy(N, C, scale, dtype, seed):
    rng = np.random.default_rng(seed)
    s = (rng.standard_normal((N, C)) * scale).astype(dtype)
    y = rng.integers(0, C, N)
    s64 = s.astype(np.float64)
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    for kernel, ref in ((L.svm_loss, ref_svm), (L.softmax_loss, ref_softmax)):
        loss, ds = kernel(s, y)
        eloss, eds = ref(s64, y)
        assert ds.dtype == dtype and ds.shape == s.shape
        assert np.isfinite(loss) and np.all(np.isfinite(ds))
        np.testing.assert_allclose(loss, eloss, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(ds, eds, rtol=rtol, atol=rtol / N)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_losses_with_huge_logits_are_finite(dtype):
    s = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e4, 1e4, -1e4]], dtype)
    y = np.array([1, 0, 2])
    loss, ds = L.softmax_loss(s, y)
    assert np.isfinite(loss) and np.all(np.isfinite(ds))
    np.testing.assert_allclose(loss, (2e4 + np.log(3) + 2e4 + np.log(2)) / 3, rtol=1e-12)
    np.testing.assert_allclose(ds.sum(axis=1), 0, atol=1e-7)
    loss, ds = L.svm_loss(s, y)
    np.testing.assert_allclose(loss, ((2e4 + 1 + 1e4 + 1) + 2 + 2 * (2e4 + 1)) / 3, rtol=1e-12)
    assert np.all(np.isfinite(ds))


def test_warmup_compiles_what_the_loss_layers_call():
    # the warm-up's calls have the loss layers' signatures, so a network's first loss, hard or soft labels, float32
    # or float64, compiles nothing on the thread that asks for it (the shared max / log-sum-exp helper is compiled
    # into both softmax kernels, and cached with them)
    from simulator.functional import layers as F
    for _, task in L.warmup_tasks():
        task()
    kernels = (L.softmax_loss, L.softmax_loss_soft, L.svm_loss)
    before = [len(k.signatures) for k in kernels]
    assert all(n >= 2 for n in before)
    rng = np.random.default_rng(0)
    for dt in (np.float32, np.float64):
        s = rng.standard_normal((5, 3)).astype(dt)
        y = rng.integers(0, 3, 5)
        F.softmax_loss(s, y)
        F.softmax_loss(s, y, label_smoothing=0.1)
        F.softmax_loss(s, np.full((5, 3), 1 / 3))
        F.svm_loss(s, y)
    assert [len(k.signatures) for k in kernels] == before
