"""kernels.winograd (F(2x2, 3x3), float32) against the float64 reference, through kernels.conv and called directly."""
import numpy as np
import pytest

from kernels import conv as K
from kernels import winograd as Wg
from tests.kernels.test_conv import ref_backward, ref_forward


def _case(rng, N, C, H, W, F, scale=1.0):
    x = (scale * rng.standard_normal((N, C, H, W))).astype(np.float32)
    w = (scale * rng.standard_normal((F, C, 3, 3))).astype(np.float32)
    b = rng.standard_normal(F).astype(np.float32)
    return x, w, b


def _close(got, exp, err_msg=""):
    # float32 sums of C*9 products: relative to the largest value
    np.testing.assert_allclose(got, exp, rtol=0, atol=2e-6 * max(1.0, np.abs(exp).max()), err_msg=err_msg)


def _winograd(x, w, b, pad, out=None):
    Hout, Wout = x.shape[2] + 2 * pad - 2, x.shape[3] + 2 * pad - 2
    if out is None:
        out = np.full((x.shape[0], w.shape[0], Hout, Wout), np.nan, np.float32)
    K._winograd_run(x, Wg.weights(w), b, pad, out, 0, x.shape[0])
    return out


@pytest.mark.parametrize("N, C, H, W, F, pad", [
    (2, 3, 7, 6, 5, 1),     # odd output rows, even columns
    (2, 4, 5, 9, 3, 0),     # odd columns: the last tile's second column dropped (masked store)
    (1, 2, 3, 3, 4, 2),     # padding larger than a tile's overlap
    (3, 2, 1, 2, 2, 1),     # one output row
    (2, 3, 11, 37, 6, 1),   # 18 tiles per row: two whole vectors of 8 tiles and a partial one
    (1, 2, 34, 18, 3, 2),   # 18 tile rows: several blocks of rows
    (2, 1, 1, 1, 1, 1),     # one output
])
def test_winograd_matches_the_reference(N, C, H, W, F, pad):
    x, w, b = _case(np.random.default_rng(N * 1000 + H * 10 + W), N, C, H, W, F)
    out = _winograd(x, w, b, pad)
    _close(out, ref_forward(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), 1, pad))


def test_an_output_without_columns_or_rows_is_an_empty_array():
    rng = np.random.default_rng(8)
    for H, W in ((9, 2), (2, 9), (2, 2)):  # pad 0: Wout, Hout or both 0 (the direct kernels return empty arrays too)
        x, w, b = _case(rng, 2, 32, H, W, 32)
        out = K.conv_forward(x, w, b, 1, 0)
        assert out.shape == (2, 32, H - 2, W - 2)
        dx, dw, db = K.conv_backward(out, x, w, 1, 0)
        assert dx.shape == x.shape and np.all(dw == 0) and np.all(db == 0)


def test_the_weight_transform_is_g_w_gt():
    w = np.random.default_rng(0).standard_normal((3, 2, 3, 3))
    G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])
    U = Wg.weights(w)
    for f in range(3):
        for c in range(2):
            np.testing.assert_allclose(U[:, f, c].reshape(4, 4), G @ w[f, c] @ G.T, rtol=1e-15, atol=1e-15)


def test_every_block_height_gives_the_same_numbers(monkeypatch):
    x, w, b = _case(np.random.default_rng(1), 2, 3, 13, 21, 5)
    outs = []
    for R in range(1, 8):  # 7 tile rows: blocks of 1 .. 7 rows, with short last blocks
        monkeypatch.setattr(K, "_winograd_rows", lambda C, Hout, Wout, R=R: R)
        monkeypatch.setattr(K._local, "winograd", {}, raising=False)
        outs.append(_winograd(x, w, b, 1))
    _close(outs[0], ref_forward(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), 1, 1))
    for out in outs[1:]:
        np.testing.assert_array_equal(out, outs[0])  # each tile's sums run in the same order whatever the block


def test_block_rows_keep_the_transformed_inputs_in_cache_and_waste_few_gemm_places():
    assert K._winograd_rows(64, 32, 32) == 3    # 16 tiles a row: 48 = two whole blocks of 24
    assert K._winograd_rows(64, 16, 16) == 6    # 8 tiles a row: 48
    assert K._winograd_rows(64, 8, 8) == 4      # 4 tiles a row, 4 rows: the whole sample
    for C, Hout, Wout in ((32, 32, 32), (64, 32, 32), (256, 64, 64), (512, 224, 224)):
        R = K._winograd_rows(C, Hout, Wout)
        Tp = Wg.layout(Wg.tiles(Hout, Wout)[1], R)[1]
        assert R == 1 or 16 * C * Tp * 4 <= K.WINOGRAD_BLOCK_BYTES


def test_conv_uses_winograd_from_32_channels_and_filters_forward_and_dx(monkeypatch):
    calls = []
    run = K._winograd_run
    monkeypatch.setattr(K, "_winograd_run", lambda *a: calls.append(a[0].shape) or run(*a))
    rng = np.random.default_rng(2)
    for C, F, used in ((32, 32, 2), (31, 32, 0), (32, 31, 0), (40, 33, 2)):
        calls.clear()
        x, w, b = _case(rng, 2, C, 6, 7, F, scale=0.3)
        out = K.conv_forward(x, w, b, 1, 1)
        x64, w64 = x.astype(np.float64), w.astype(np.float64)
        _close(out, ref_forward(x64, w64, b.astype(np.float64), 1, 1))
        dout = rng.standard_normal(out.shape).astype(np.float32)
        for got, exp in zip(K.conv_backward(dout, x, w, 1, 1), ref_backward(dout.astype(np.float64), x64, w64, 1, 1)):
            _close(got, exp)
        assert len(calls) == used, (C, F, calls)  # the forward and backward's dx
    x, w, b = _case(rng, 2, 32, 6, 7, 32)
    calls.clear()
    K.conv_forward(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), 1, 1)  # float64: direct
    K.conv_forward(x, w, b, 2, 1)  # stride 2: direct
    assert calls == []


def test_threads_give_the_same_numbers_as_one_thread(monkeypatch):
    x, w, b = _case(np.random.default_rng(3), 9, 32, 10, 12, 32, scale=0.3)
    dout = np.random.default_rng(4).standard_normal((9, 32, 10, 12)).astype(np.float32)
    monkeypatch.setattr(K, "PARALLEL_MIN_MACS", 0)
    results = []
    for threads in (1, 2, 3):
        monkeypatch.setattr(K, "THREADS", threads)
        results.append((K.conv_forward(x, w, b, 1, 1), *K.conv_backward(dout, x, w, 1, 1)))
    for other in results[1:]:
        for a, e in zip(other, results[0]):
            np.testing.assert_array_equal(a, e)


def test_a_nan_batch_leaves_nothing_behind_for_the_next_one():
    rng = np.random.default_rng(5)
    x, w, b = _case(rng, 2, 3, 9, 11, 4)
    _winograd(np.full_like(x, np.nan), w, b, 1)  # the per-thread buffers of this geometry now hold nan
    _winograd(np.full_like(x, np.inf), w, b, 1)
    out = _winograd(x, w, b, 1)
    _close(out, ref_forward(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), 1, 1))


def test_winograd_refuses_buffers_too_small_for_its_blocks():
    x, w, b = _case(np.random.default_rng(6), 1, 2, 8, 8, 3)
    U = Wg.weights(w)
    out = np.empty((1, 3, 8, 8), np.float32)
    R, eo, V, M2 = K._winograd_buffers(2, 3, 8, 8, 1)
    Wg.forward(x, U, b, 1, 0, 1, out, R, eo, V, M2)  # the right sizes run
    _close(out, ref_forward(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), 1, 1))
    narrow = np.empty((M2.shape[0], M2.shape[1] - Wg.BLOCK), np.float32)  # another block height's M
    for bad in ((eo[:-1], V, M2), (eo, V[:-1], M2), (eo, V, M2[:-1]), (eo, V, narrow)):
        with pytest.raises(ValueError, match="buffers too small"):
            Wg.forward(x, U, b, 1, 0, 1, out, R, *bad)
    with pytest.raises(ValueError, match="buffers too small"):
        Wg.forward(x, np.ascontiguousarray(U[:, :2]), b, 1, 0, 1, out, R, eo, V, M2)  # another filter count


def test_the_numpy_stand_ins_compute_what_the_intrinsics_do():
    from numba import njit

    in_jit = njit(lambda eo, V, e0, half, wh, q, vs: Wg.in_block(eo, V, e0, half, wh, q, vs))
    out_jit = njit(lambda Mf, out, r, ms, o, wo, bias, nv, rows: Wg.out_block(Mf, out, r, ms, o, wo, bias, nv, rows))
    rng = np.random.default_rng(7)
    eo = rng.standard_normal(200).astype(np.float32)
    for args in ((3, 100, 20, 5, 33), (0, 90, 24, 0, 17)):
        a = np.full(700, np.nan, np.float32)
        e = a.copy()
        in_jit(eo, a, *args)
        Wg.in_block_numpy(eo, e, *args)
        np.testing.assert_array_equal(a, e)  # adds and subtractions in the same order: the same bits
    Mf = rng.standard_normal(400).astype(np.float32)
    for nv, rows in ((16, 2), (16, 1), (9, 2), (1, 1), (15, 2)):
        a = np.full(100, np.nan, np.float32)
        e = a.copy()
        out_jit(Mf, a, 5, 21, 7, 40, np.float32(0.5), nv, rows)
        Wg.out_block_numpy(Mf, e, 5, 21, 7, 40, np.float32(0.5), nv, rows)
        np.testing.assert_array_equal(a, e)
        assert np.isnan(a[7 + nv:47]).all() and np.isnan(a[47 + nv:]).all()  # masked places untouched
        assert np.isnan(a[:7]).all() and (rows == 2 or np.isnan(a[47:]).all())
