"""kernels.conv against a plain numpy reference (direct loops over output positions), forward and backward."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from kernels import conv as K

SETTINGS = settings(max_examples=40, deadline=None, database=None)


def ref_forward(x, w, b, stride, pad):
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    Ho = (H + 2 * pad - HH) // stride + 1
    Wo = (W + 2 * pad - WW) // stride + 1
    out = np.zeros((N, F, Ho, Wo))
    for i in range(Ho):
        for j in range(Wo):
            win = xp[:, :, i * stride:i * stride + HH, j * stride:j * stride + WW]
            out[:, :, i, j] = np.einsum("nchw,fchw->nf", win, w) + b
    return out


def ref_backward(dout, x, w, stride, pad):
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            sl = (slice(None), slice(None), slice(i * stride, i * stride + HH), slice(j * stride, j * stride + WW))
            dxp[sl] += np.einsum("nf,fchw->nchw", dout[:, :, i, j], w)
            dw += np.einsum("nf,nchw->fchw", dout[:, :, i, j], xp[sl])
    return dxp[:, :, pad:pad + H, pad:pad + W], dw, dout.sum(axis=(0, 2, 3))


@st.composite
def conv_case(draw):
    N = draw(st.integers(1, 3))
    C = draw(st.integers(1, 4))
    F = draw(st.integers(1, 4))
    HH = draw(st.integers(1, 4))
    WW = draw(st.integers(1, 4))
    stride = draw(st.integers(1, 4))
    pad = draw(st.integers(0, 5))
    H = draw(st.integers(max(1, HH - 2 * pad), 11))
    W = draw(st.integers(max(1, WW - 2 * pad), 11))
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    seed = draw(st.integers(0, 2**32 - 1))
    return N, C, H, W, F, HH, WW, stride, pad, dtype, seed


def _check(N, C, H, W, F, HH, WW, stride, pad, dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((F, C, HH, WW)).astype(dtype)
    b = rng.standard_normal(F).astype(dtype)
    out = K.conv_forward(x, w, b, stride, pad)
    x64, w64, b64 = (a.astype(np.float64) for a in (x, w, b))
    expected = ref_forward(x64, w64, b64, stride, pad)
    tol = 1e-12 if dtype == np.float64 else 1e-4
    assert out.dtype == dtype
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=tol, atol=tol * 10)
    dout = rng.standard_normal(out.shape).astype(dtype)
    grads = K.conv_backward(dout, x, w, stride, pad)
    for got, exp in zip(grads, ref_backward(dout.astype(np.float64), x64, w64, stride, pad)):
        assert got.dtype == dtype and got.shape == exp.shape
        np.testing.assert_allclose(got, exp, rtol=tol, atol=tol * 10 * max(1.0, np.abs(exp).max()))


@SETTINGS
@given(conv_case())
def test_conv_matches_reference(case):
    _check(*case)


@pytest.mark.parametrize("case", [
    (1, 1, 28, 28, 8, 3, 3, 1, 1),    # a single image
    (2, 3, 5, 5, 4, 1, 1, 1, 0),      # 1x1 convolution (the direct GEMM path)
    (2, 3, 6, 6, 4, 1, 1, 2, 0),      # 1x1 with stride
    (2, 2, 9, 9, 3, 2, 2, 3, 0),      # stride larger than the kernel
    (2, 2, 4, 4, 3, 2, 2, 1, 3),      # padding larger than the kernel
    (2, 2, 7, 13, 3, 3, 2, 2, 1),     # non-square input and kernel
    (1, 1, 1, 1, 2, 1, 1, 5, 0),      # 1x1 input, big stride
    (3, 4, 3, 3, 2, 3, 3, 1, 0),      # kernel the size of the input: 1x1 output
])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_conv_edge_cases(case, dtype):
    _check(*case, dtype, 7)


def test_padding_and_stride_boundaries_get_no_gradient_when_outside_every_window():
    # H=7, HH=2, stride=3: rows 2 and 5 and 6 are never in a window, so their gradient is exactly zero
    x = np.random.default_rng(0).standard_normal((1, 1, 7, 7))
    w = np.ones((1, 1, 2, 2))
    out = K.conv_forward(x, w, np.zeros(1), 3, 0)
    dx, _, _ = K.conv_backward(np.ones_like(out), x, w, 3, 0)
    assert out.shape == (1, 1, 2, 2)
    assert np.all(dx[0, 0, [2, 5, 6], :] == 0) and np.all(dx[0, 0, :, [2, 5, 6]] == 0)
    assert np.all(dx[0, 0, :2, :2] == 1)


@pytest.mark.parametrize("direct_strides", [(), (1, 2)])  # the im2col GEMMs everywhere; the direct kernels
@pytest.mark.parametrize("chunk_bytes", [1, 3 * 4 * 9 * 2 * 16])  # one sample per chunk; two (and a remainder)
@pytest.mark.parametrize("keep", [False, True])
def test_chunked_batches_and_kept_columns_match_the_reference(monkeypatch, chunk_bytes, keep, direct_strides):
    # N=5 with 4x4 outputs, K = 2*3*3: the chunk sizes 1 and 2 leave a remainder chunk, and reuse zeroed buffers
    monkeypatch.setattr(K, "COLS_CHUNK_BYTES", chunk_bytes)
    monkeypatch.setattr(K, "DIRECT_STRIDES", direct_strides)
    rng = np.random.default_rng(3)
    for stride, pad in ((1, 1), (2, 2)):
        x = rng.standard_normal((5, 2, 4 * stride, 4 * stride)).astype(np.float32)
        w = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
        b = rng.standard_normal(3).astype(np.float32)
        out, cols = K.conv_forward_keep(x, w, b, stride, pad, max_bytes=2**30 if keep else 0)
        assert (cols.size > 0) == (keep and not direct_strides)  # direct backward (strides 1 and 2): no columns
        x64, w64 = x.astype(np.float64), w.astype(np.float64)
        np.testing.assert_allclose(out, ref_forward(x64, w64, b.astype(np.float64), stride, pad), rtol=1e-4, atol=1e-4)
        dout = rng.standard_normal(out.shape).astype(np.float32)
        for got, exp in zip(K.conv_backward_cols(dout, cols, x, w, stride, pad),
                            ref_backward(dout.astype(np.float64), x64, w64, stride, pad)):
            np.testing.assert_allclose(got, exp, rtol=1e-4, atol=1e-3)


def test_kept_columns_give_the_same_gradients_as_rebuilt_ones():
    rng = np.random.default_rng(4)
    x, w, b = rng.standard_normal((3, 2, 6, 5)), rng.standard_normal((4, 2, 2, 3)), rng.standard_normal(4)
    out, cols = K.conv_forward_cols(x, w, b, 1, 1)
    assert cols.shape == (2 * 2 * 3, 3 * out.shape[2] * out.shape[3])
    np.testing.assert_array_equal(out, K.conv_forward(x, w, b, 1, 1))
    dout = rng.standard_normal(out.shape)
    for a, e in zip(K.conv_backward_cols(dout, cols, x, w, 1, 1), K.conv_backward(dout, x, w, 1, 1)):
        np.testing.assert_allclose(a, e, rtol=1e-13, atol=1e-13)


DIRECT_CASES = [  # (N, C, H, W, F, k, stride, pad): the direct kernels' shapes, odd F and sizes, W < 8
    (2, 3, 9, 7, 5, 3, 1, 1),
    (3, 2, 6, 11, 4, 3, 1, 0),
    (2, 1, 5, 5, 3, 3, 1, 2),
    (2, 3, 8, 9, 3, 5, 1, 2),
    (1, 2, 7, 5, 2, 5, 1, 4),
    (2, 2, 5, 6, 1, 5, 1, 0),
    (3, 2, 6, 6, 5, 3, 1, 3),     # pad > HH - 1: direct forward, backward on the im2col GEMMs
    (2, 3, 9, 7, 5, 3, 2, 1),     # stride 2: phase planes
    (3, 2, 10, 11, 3, 5, 2, 2),
    (2, 3, 7, 6, 6, 3, 2, 0),
    (2, 2, 5, 5, 3, 3, 2, 3),
    (1, 1, 3, 3, 1, 3, 2, 0),     # a 1x1 output
    (2, 3, 1, 1, 2, 3, 1, 1),     # a 1x1 input
]


@pytest.mark.parametrize("case", DIRECT_CASES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_direct_kernels_match_the_reference(case, dtype):
    N, C, H, W, F, k, stride, pad = case
    # float64 at stride 2 runs the im2col GEMMs (faster there, and fewer kernels to compile): checked the same way
    assert K._direct_ok(np.empty((F, C, k, k), dtype), stride) == (stride == 1 or dtype == np.float32)
    _check(N, C, H, W, F, k, k, stride, pad, dtype, 11)


STRIDE2_CASES = [  # (N, C, H, W, F, k, pad): stride 2, direct forward, dw and dx (_direct_dx2)
    (2, 3, 16, 16, 5, 3, 1),      # even sizes, F not a multiple of 4
    (3, 2, 15, 15, 6, 3, 1),      # odd sizes
    (2, 3, 9, 12, 7, 3, 0),       # odd H, even W, no padding: the last row is in no window
    (2, 2, 12, 9, 4, 3, 2),       # even H, odd W, pad 2
    (1, 1, 7, 10, 1, 3, 1),       # N = 1, C = 1, F = 1
    (2, 5, 4, 3, 9, 3, 3),        # tiny planes, pad > k - 1, C not a multiple of 4
    (2, 3, 13, 8, 3, 5, 2),       # 5x5, F odd
    (3, 1, 11, 12, 2, 5, 0),      # 5x5 without padding, C = 1
    (1, 2, 6, 9, 5, 5, 1),        # 5x5, N = 1, pad 1
    (2, 2, 5, 5, 3, 5, 4),        # 5x5, padding as large as the filter
]


@pytest.mark.parametrize("case", STRIDE2_CASES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_stride2_direct_kernels_match_the_reference(case, dtype):
    N, C, H, W, F, k, pad = case
    w = np.empty((F, C, k, k), dtype)
    direct = dtype == np.float32                     # float64 runs the im2col GEMMs at stride 2
    assert K._direct_ok(w, 2) == direct and K._direct_dx_ok(w, 2, pad) == direct
    _check(N, C, H, W, F, k, k, 2, pad, dtype, 13)


@pytest.mark.parametrize("k,pad", [(3, 1), (3, 0), (5, 2), (5, 3)])
def test_stride2_dx_writes_every_element_of_dx(k, pad):
    # _direct_dx2 writes dx through its phase planes, each element once: nothing of a nan-filled dx may survive, and
    # the elements that no window covers (the last rows and columns when H + 2*pad - k is odd) come out as zeros
    rng = np.random.default_rng(14)
    for H, W in ((9, 8), (8, 11), (4, 4)):
        x = rng.standard_normal((3, 2, H, W))
        w = rng.standard_normal((5, 2, k, k))
        out = K.conv_forward(x, w, np.zeros(5), 2, pad)
        dout = rng.standard_normal(out.shape)
        dx = np.full_like(x, np.nan)
        K._direct_dx2_run(dout, w, pad, dx, 0, 3)
        np.testing.assert_allclose(dx, ref_backward(dout, x, w, 2, pad)[0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("k", [3, 5])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_direct_kernels_every_filter_count(k, dtype):
    # TAP_G filters per register block: F = 1 .. 2G + 1 covers a first block, whole blocks, and every count of filters
    # past the last whole block (the clamped rows repeat filter F - 1 and write the same numbers again); dx has F' = C
    G = K.TAP_G
    for F in range(1, 2 * G + 2):
        for C in (1, 3):
            for stride, pad in ((1, k // 2), (1, 0), (2, 1)):
                _check(2, C, 7, 6, F, k, k, stride, pad, dtype, 100 * F + C)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_direct_forward_writes_every_output_once_whatever_the_row_width(dtype):
    # the register blocks write their lanes straight to out: a whole vector where its lanes are consecutive outputs,
    # else lane by lane, the positions past a row's Wout or a sample's Hout to a scratch slot. Rows narrower than a
    # vector (a vector spans several rows), as wide as one, and wider; every output of a nan-filled out is written
    rng = np.random.default_rng(15)
    for k, stride, pad in ((3, 1, 1), (5, 1, 2), (3, 1, 0), (5, 1, 4), (3, 2, 1), (5, 2, 2)):
        for W in (1, 2, 3, 5, 8, 9, 13, 26, 33):
            x = rng.standard_normal((3, 2, 7, W)).astype(dtype)
            w = rng.standard_normal((6, 2, k, k)).astype(dtype)
            b = rng.standard_normal(6).astype(dtype)
            if (W + 2 * pad - k) < 0 or not K._direct_ok(w, stride):
                continue
            exp = ref_forward(*(a.astype(np.float64) for a in (x, w, b)), stride, pad)
            out = np.full(exp.shape, np.nan, dtype)
            K._direct_run(x, w, b, stride, pad, out, 0, 3)
            tol = 1e-12 if dtype == np.float64 else 1e-4
            np.testing.assert_allclose(out, exp, rtol=tol, atol=tol * 10, err_msg=f"k={k} s={stride} p={pad} W={W}")


def test_direct_forward_refuses_buffers_too_small_for_its_blocks():
    # _tap_block reads and writes without bounds checks: _direct checks the sizes once per call and raises
    x = np.ones((2, 3, 8, 8))
    w = np.ones((5, 3, 3, 3))
    b = np.zeros(5)
    M, Hs, Ws, taps, xp, _ = K._direct_buffers("test", x, 3, 1, 1, 2, 0, x.dtype)
    out = np.empty((2, 5, 8, 8))
    K._direct(x, w.reshape(5, -1), b, 1, 1, 0, 2, out, xp, taps, M, Hs, Ws)
    np.testing.assert_allclose(out, ref_forward(x, w, b, 1, 1))
    V = 4   # float64 lanes per vector: an 8-wide output row is 2 vectors
    end = ((M - 1) * Hs + 8 - 1) * Ws + (2 - 1) * V + V   # past the last lane the last vector reads
    for bad in (dict(xp=xp[:int(taps.max()) + end - 1]), dict(taps=taps[:2]), dict(w=w[:4].reshape(4, -1)),
                dict(b=b[:4]), dict(out=np.empty((1, 5, 8, 8)))):
        args = dict(xp=xp, taps=taps, w=w.reshape(5, -1), b=b, out=out) | bad
        with pytest.raises(ValueError, match="too small"):
            K._direct(x, args["w"], args["b"], 1, 1, 0, 2, args["out"], args["xp"], args["taps"], M, Hs, Ws)


def test_direct_weight_gradient_refuses_buffers_too_small_for_its_blocks():
    # _dw_block reads without bounds checks: _direct_dw checks the sizes once per call and raises
    rng = np.random.default_rng(16)
    x = rng.standard_normal((2, 3, 8, 8))
    dout = rng.standard_normal((2, 5, 8, 8))
    M, Hs, Ws, taps, xp, ds = K._direct_buffers("test-dw", x, 3, 1, 1, 2, 5, x.dtype)
    dw, db = np.zeros((5, 27)), np.zeros(5)
    K._direct_dw(x, dout, 1, 1, 0, 2, dw, db, xp, ds, taps, M, Hs, Ws)
    np.testing.assert_allclose(dw.reshape(5, 3, 3, 3), ref_backward(dout, x, np.zeros((5, 3, 3, 3)), 1, 1)[1],
                               rtol=1e-12, atol=1e-12)
    end = -(-((M - 1) * Hs + 8) * Ws // 4) * 4
    for bad in (dict(xp=xp[:int(taps.max()) + end - 1]), dict(ds=np.ascontiguousarray(ds[:, :end - 1])),
                dict(ds=ds[:4]), dict(dw=np.zeros((5, 26))), dict(dw=np.zeros((4, 27)))):
        args = dict(xp=xp, ds=ds, dw=dw) | bad
        with pytest.raises(ValueError, match="too small"):
            K._direct_dw(x, dout, 1, 1, 0, 2, args["dw"], db, args["xp"], args["ds"], taps, M, Hs, Ws)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_direct_kernels_stack_small_planes(monkeypatch, dtype):
    # small planes: several samples per pass (M = DIRECT_L // (Hs*Ws)), the last group of a batch shorter where
    # the planes allow it; the numbers do not depend on the grouping (forward bit for bit; dw sums vector partial sums
    # over a pass, so only close) and stay finite after a nan batch (a short group that comes first, at both strides,
    # is test_a_short_first_group_after_a_nan_batch_gives_finite_weight_gradients)
    rng = np.random.default_rng(8)
    for k, stride, pad in ((3, 1, 1), (5, 1, 2), (3, 2, 1), (5, 2, 0)):
        x = rng.standard_normal((11, 3, 6, 5)).astype(dtype)
        w = rng.standard_normal((5, 3, k, k)).astype(dtype)
        b = rng.standard_normal(5).astype(dtype)
        results = []
        for direct_l in (1, 150, 10**6):  # one sample per pass; a few (3x3 s1: 11 = 4 groups); all at once
            monkeypatch.setattr(K, "DIRECT_L", direct_l)
            K._local.__dict__.pop("direct", None)
            poisoned = np.full_like(x, np.nan)
            K.conv_forward(poisoned, w, b, stride, pad)  # the same geometry's buffers hold nan now
            K.conv_backward(np.ones_like(K.conv_forward(poisoned, w, b, stride, pad)), poisoned, w, stride, pad)
            out = K.conv_forward(x, w, b, stride, pad)
            dout = rng.standard_normal(out.shape).astype(dtype) if not results else results[0][1]
            results.append((out, dout, *K.conv_backward(dout, x, w, stride, pad)))
        exp = ref_forward(*(a.astype(np.float64) for a in (x, w, b)), stride, pad)
        grads = ref_backward(results[0][1].astype(np.float64), x.astype(np.float64), w.astype(np.float64), stride, pad)
        tol = 1e-12 if dtype == np.float64 else 1e-4
        for out, _, *got in results:
            np.testing.assert_array_equal(out, results[0][0])
            np.testing.assert_allclose(out, exp, rtol=tol, atol=tol * 10)
            for g, e in zip(got, grads):
                assert np.isfinite(g).all()
                np.testing.assert_allclose(g, e, rtol=tol, atol=tol * 10 * max(1.0, np.abs(e).max()))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_short_first_group_after_a_nan_batch_gives_finite_weight_gradients(monkeypatch, dtype):
    # a group of fewer samples than the buffers hold (m < M) comes first: the places of the missing samples must be
    # zeroed at both strides, since dw's last whole vector reads a few positions into them (times zero dout) and an
    # earlier batch of nan inputs left nan there
    monkeypatch.setattr(K, "DIRECT_L", 10**6)  # all samples in one group: M = N
    rng = np.random.default_rng(17)
    for k, stride, pad in ((3, 1, 1), (5, 1, 2), (3, 2, 0), (3, 2, 1), (5, 2, 2)):
        for H in (5, 9, 12):
            x = rng.standard_normal((3, 2, H, H)).astype(dtype)
            w = rng.standard_normal((6, 2, k, k)).astype(dtype)
            if not K._direct_dx_ok(w, stride, pad):
                continue
            out = K.conv_forward(x, w, np.zeros(6, dtype), stride, pad)
            dout = rng.standard_normal(out.shape).astype(dtype)
            K.conv_backward(dout, np.full_like(x, np.nan), w, stride, pad)  # the geometry's buffers hold nan now
            dw, db = np.zeros_like(w), np.zeros(6)
            K._direct_dw_run(x, dout, stride, pad, 0, 1, dw, db)  # one sample of three: a short group
            exp = ref_backward(dout[:1].astype(np.float64), x[:1].astype(np.float64), w.astype(np.float64), stride,
                               pad)[1]
            assert np.isfinite(dw).all(), (k, stride, pad, H)
            tol = 1e-12 if dtype == np.float64 else 1e-4
            np.testing.assert_allclose(dw, exp, rtol=tol, atol=tol * 10 * max(1.0, np.abs(exp).max()))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_direct_kernels_on_a_large_plane_match_torch(dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(9)
    for k, stride, pad in ((3, 1, 1), (5, 1, 2), (3, 2, 1), (5, 2, 2)):
        x = rng.standard_normal((2, 4, 40, 37)).astype(dtype)
        w = rng.standard_normal((6, 4, k, k)).astype(dtype)
        b = rng.standard_normal(6).astype(dtype)
        tx, tw, tb = (torch.from_numpy(a).requires_grad_() for a in (x, w, b))
        tout = torch.nn.functional.conv2d(tx, tw, tb, stride, pad)
        dout = rng.standard_normal(tuple(tout.shape)).astype(dtype)
        tout.backward(torch.from_numpy(dout))
        tol = 1e-11 if dtype == np.float64 else 2e-4
        out = K.conv_forward(x, w, b, stride, pad)
        np.testing.assert_allclose(out, tout.detach().numpy(), rtol=tol, atol=tol)
        for got, exp in zip(K.conv_backward(dout, x, w, stride, pad), (tx.grad, tw.grad, tb.grad)):
            np.testing.assert_allclose(got, exp.numpy(), rtol=tol, atol=tol * max(1.0, float(exp.abs().max())))


@pytest.mark.parametrize("case", DIRECT_CASES[:4] + [(4, 3, 6, 6, 2, 1, 1, 0), (3, 2, 9, 9, 3, 2, 2, 1),
                                                     (3, 3, 9, 8, 4, 3, 2, 1), (7, 3, 5, 4, 9, 3, 1, 1),
                                                     (5, 2, 6, 7, 3, 5, 2, 2), (4, 2, 8, 8, 5, 3, 1, 3)])
def test_threads_give_the_same_numbers_as_one_thread(monkeypatch, case):
    # the chunks are handed to the threads in any order; the partial sums are added in a fixed order, so any thread
    # count gives bit-identical results (direct kernels at strides 1 and 2, several samples per pass and not, and the
    # im2col GEMM for 1x1, 2x2 and strided filters and for pad > HH - 1)
    N, C, H, W, F, k, stride, pad = case
    monkeypatch.setattr(K, "COLS_CHUNK_BYTES", 1)  # one sample per chunk
    monkeypatch.setattr(K, "PARALLEL_MIN_MACS", 0)
    monkeypatch.setattr(K, "BLAS_SMALL_MACS", 0)
    monkeypatch.setattr(K, "DIRECT_PART_MACS", 1)  # one group of samples per task
    monkeypatch.setattr(K, "DIRECT_L", 150)  # several samples per pass, groups cut by the chunks
    rng = np.random.default_rng(5)
    x = rng.standard_normal((N * 3, C, H, W)).astype(np.float32)
    w = rng.standard_normal((F, C, k, k)).astype(np.float32)
    b = rng.standard_normal(F).astype(np.float32)
    results = {}
    for threads in (1, 2, 3):
        monkeypatch.setattr(K, "THREADS", threads)
        out, cols = K.conv_forward_keep(x, w, b, stride, pad)
        dout = np.cos(out)
        grads = K.conv_backward_cols(dout, cols, x, w, stride, pad)
        results[threads] = (out, K.conv_forward(x, w, b, stride, pad), *grads)
    for threads in (2, 3):
        for a, e in zip(results[threads], results[1]):
            np.testing.assert_array_equal(a, e)


def test_concurrent_calls_from_several_threads_are_correct_and_restore_blas_threads(monkeypatch):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from concurrent.futures import ThreadPoolExecutor
    monkeypatch.setattr(K, "COLS_CHUNK_BYTES", 1)
    monkeypatch.setattr(K, "PARALLEL_MIN_MACS", 0)
    monkeypatch.setattr(K, "BLAS_SMALL_MACS", 0)
    rng = np.random.default_rng(6)
    cases = []
    for k, stride, pad in ((3, 1, 1), (3, 2, 1), (5, 1, 2)):
        x = rng.standard_normal((6, 3, 10, 10))
        w = rng.standard_normal((4, 3, k, k))
        b = rng.standard_normal(4)
        cases.append((x, w, b, stride, pad, ref_forward(x, w, b, stride, pad)))

    def run(case):
        x, w, b, stride, pad, expected = case
        for _ in range(5):
            np.testing.assert_allclose(K.conv_forward(x, w, b, stride, pad), expected, rtol=1e-12, atol=1e-11)

    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        before = [lib["num_threads"] for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"]
        with ThreadPoolExecutor(3) as pool:
            for f in [pool.submit(run, c) for c in cases * 2]:
                f.result()
        after = [lib["num_threads"] for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"]
    assert after == before  # the one-thread pin during the convolutions is undone
