"""kernels.pool's fractional max pooling against plain Python written from Graham's / PyTorch's definition, and against
torch.nn.functional.fractional_max_pool2d given the same _random_samples when torch is importable."""
import importlib.util

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from kernels import pool as K

SETTINGS = settings(max_examples=40, deadline=None, database=None)
HAS_TORCH = importlib.util.find_spec("torch") is not None


def ref_starts(u, in_size, out_size, k, dt):
    """PyTorch's generate_intervals, one u at a time, in the input's scalar type: a_i = int((i + u) alpha) -
    int(u alpha) for i < out - 1, alpha = (in - k) / (out - 1); the last window ends at the border."""
    u = dt(u)
    seq = []
    if out_size > 1:
        alpha = dt(in_size - k) / dt(out_size - 1)
        for i in range(out_size - 1):
            seq.append(int(dt(dt(i) + u) * alpha) - int(u * alpha))
    seq.append(in_size - k)
    return seq


def ref_forward(x, samples, ratio, k=2):
    N, C, H, W = x.shape
    Ho, Wo = int(H * ratio), int(W * ratio)
    out = np.zeros((N, C, Ho, Wo), x.dtype)
    arg = np.zeros((N, C, Ho, Wo), np.int64)
    dt = x.dtype.type
    for n in range(N):
        for c in range(C):
            rows = ref_starts(samples[n, c, 1], H, Ho, k, dt)
            cols = ref_starts(samples[n, c, 0], W, Wo, k, dt)
            for i, r in enumerate(rows):
                for j, s in enumerate(cols):
                    win = x[n, c, r:r + k, s:s + k]
                    a = int(np.argmax(win))           # first maximum in row-major order
                    out[n, c, i, j] = win.flat[a]
                    arg[n, c, i, j] = (r + a // k) * W + s + a % k
    return out, arg


def run_ours(x, samples, ratio, k=2):
    H, W = x.shape[2:]
    sh = K.fractional_intervals(samples[..., 1], H, int(H * ratio), k)
    sw = K.fractional_intervals(samples[..., 0], W, int(W * ratio), k)
    return K.fractional_max_pool_forward(x, sh, sw, k)


@SETTINGS
@given(n=st.integers(1, 3), c=st.integers(1, 3), h=st.integers(2, 20), w=st.integers(2, 20),
       ratio=st.floats(0.501, 0.999), seed=st.integers(0, 1000), f32=st.booleans())
def test_forward_and_backward_match_the_definition(n, c, h, w, ratio, seed, f32):
    dt = np.float32 if f32 else np.float64
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(dt)
    samples = rng.random((n, c, 2)).astype(dt)
    if int(h * ratio) < 1 or int(w * ratio) < 1:
        return
    out, arg = run_ours(x, samples, ratio)
    ref_out, ref_arg = ref_forward(x, samples, ratio)
    assert out.dtype == dt and out.shape == (n, c, int(h * ratio), int(w * ratio))
    assert np.array_equal(out, ref_out) and np.array_equal(arg, ref_arg)
    dout = rng.standard_normal(out.shape).astype(dt)
    dx = K.fractional_max_pool_backward(dout, arg, h, w)
    ref_dx = np.zeros((n, c, h * w))
    for idx in np.ndindex(out.shape):
        ref_dx[idx[0], idx[1], ref_arg[idx]] += dout[idx]       # overlapping windows accumulate
    assert dx.dtype == dt and np.allclose(dx, ref_dx.reshape(dx.shape), rtol=1e-6, atol=1e-6)


def test_windows_cover_the_input_with_steps_of_one_or_two():
    u = np.linspace(0, 0.999, 50)[:, None]
    for size in (5, 8, 13, 28, 64):
        out = int(size * 2 ** -0.5)
        seq = K.fractional_intervals(u, size, out, 2)
        steps = np.diff(seq, axis=-1)
        assert seq[..., 0].min() == 0 and np.all(seq[..., -1] == size - 2)
        assert set(np.unique(steps)) <= {1, 2}        # 2x2 windows: every row is in some window
        # the pseudo-random sequence: different u give different region layouts
        assert len({tuple(s) for s in seq[:, 0]}) > 1 or out < 3


def test_windows_skip_a_row_exactly_when_two_outputs_per_input_fall_short():
    # H = 7 at ratio 0.51: Hout = 3, alpha = 5/2, so one step is 3 and a row is in no window
    u = np.linspace(0, 0.999, 200)[:, None]
    seq = K.fractional_intervals(u, 7, int(7 * 0.51), 2)[:, 0]
    assert {tuple(s) for s in seq} == {(0, 2, 5), (0, 3, 5)}
    for s in seq:
        pooled = {r for a in s for r in (a, a + 1)}
        assert set(range(7)) - pooled == ({4} if tuple(s) == (0, 2, 5) else {2})
    # in general: every row is pooled exactly when 2 Hout >= H
    for size in range(2, 40):
        for out in range(max(size // 2, 1), size):           # the outputs floor(size * ratio), ratio in (1/2, 1)
            covered = np.zeros((len(u), size), bool)
            for k in range(out):
                starts = K.fractional_intervals(u, size, out, 2)[:, 0, k]
                covered[np.arange(len(u)), starts] = covered[np.arange(len(u)), starts + 1] = True
            assert covered.all(axis=1).all() == (2 * out >= size), (size, out)


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed")
def test_torch_also_never_pools_row_4_of_7_at_ratio_051():
    import torch
    x = torch.zeros(1, 1, 7, 7, dtype=torch.float64)
    x[0, 0, 4, :] = 1.0                                  # row 4 holds the only non-zero values
    for u in np.linspace(0, 0.99, 12):
        samples = torch.tensor([[[0.3, u]]], dtype=torch.float64)
        out = torch.nn.functional.fractional_max_pool2d(x, 2, output_ratio=(0.51, 0.51), _random_samples=samples)
        ours = K.fractional_intervals(np.array([[u]]), 7, 3, 2)[0, 0]
        assert out.shape == (1, 1, 3, 3)
        # torch sees a 1 exactly where one of our windows holds row 4
        assert bool(out.max() == 1.0) == any(r <= 4 <= r + 1 for r in ours)
    assert any(tuple(K.fractional_intervals(np.array([[u]]), 7, 3, 2)[0, 0]) == (0, 2, 5)
               for u in np.linspace(0, 0.99, 12))


def test_ties_go_to_the_first_element():
    x = np.zeros((1, 1, 4, 4))
    out, arg = run_ours(x, np.zeros((1, 1, 2)), 0.75)
    assert np.all(out == 0) and arg[0, 0, 0, 0] == 0 and arg[0, 0, 2, 2] == 2 * 4 + 2


@pytest.mark.parametrize("k", [1, 3])
def test_other_window_sizes_take_the_general_path(k):
    rng = np.random.default_rng(k)
    x = rng.standard_normal((2, 2, 11, 9))
    samples = rng.random((2, 2, 2))
    out, arg = run_ours(x, samples, 0.6, k)
    ref_out, ref_arg = ref_forward(x, samples, 0.6, k)
    assert np.array_equal(out, ref_out) and np.array_equal(arg, ref_arg)


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, ratio", [((2, 3, 8, 8), 2 ** -0.5), ((3, 2, 13, 9), 0.55), ((2, 4, 28, 28), 0.7071),
                                          ((1, 2, 5, 7), 0.99), ((2, 2, 32, 31), 0.6)])
def test_against_torch_with_the_same_samples(shape, ratio, dtype):
    import torch
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal(shape).astype(dtype)
    samples = rng.random((shape[0], shape[1], 2)).astype(dtype)
    out, arg = run_ours(x, samples, ratio)
    tx = torch.tensor(x, requires_grad=True)
    t_out, t_idx = torch.nn.functional.fractional_max_pool2d(
        tx, 2, output_ratio=(ratio, ratio), return_indices=True, _random_samples=torch.tensor(samples))
    assert np.array_equal(out, t_out.detach().numpy()) and np.array_equal(arg, t_idx.numpy())
    dout = rng.standard_normal(out.shape).astype(dtype)
    t_out.backward(torch.tensor(dout))
    dx = K.fractional_max_pool_backward(dout, arg, shape[2], shape[3])
    assert np.allclose(dx, tx.grad.numpy(), rtol=1e-6, atol=1e-6)
