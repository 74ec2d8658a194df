"""simulator.functional.layers: every backward against float64 centred differences, dtype policy, edge cases, bad arguments."""
import numpy as np
import pytest

from simulator.functional import layers as L
from simulator.core.errors import ShapeError, ValueInputError

H = 1e-5  # rounding error ~1e-16 |out| / H and truncation ~H**2 |f'''| are both ~1e-11 relative


def numeric_grad(f, x, dout):
    """d sum(f(x) * dout) / dx by centred differences, perturbing one element of x at a time (x is modified and
    restored). The output difference is taken before the dot product, so outputs that do not depend on the element
    cancel exactly and rounding error stays relative to the outputs that do."""
    grad = np.zeros_like(x)
    flat = x.reshape(-1)
    g = grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + H
        plus = np.array(f(), dtype=np.float64, copy=True)
        flat[i] = old - H
        minus = np.array(f(), dtype=np.float64, copy=True)
        flat[i] = old
        g[i] = np.sum((plus - minus) * dout) / (2 * H)
    return grad


def rel_error(a, n):
    """max |a - n| / max(|a|, |n|), elementwise; entries far below the array's scale (1e-3 of its largest) are
    measured against that floor, so exact zeros and cancellation noise do not divide by ~0."""
    a = np.asarray(a, np.float64)
    n = np.asarray(n, np.float64)
    scale = max(np.abs(a).max(initial=0), np.abs(n).max(initial=0))
    denom = np.maximum(np.maximum(np.abs(a), np.abs(n)), max(1e-3 * scale, 1e-300))
    return float((np.abs(a - n) / denom).max(initial=0))


def check(forward, backward, inputs, seed=0, tol=1e-7, index=None):
    """Gradient check of backward(dout, cache) against numeric gradients of forward(*inputs)[0]."""
    rng = np.random.default_rng(seed)
    out, cache = forward(*inputs)
    dout = rng.standard_normal(np.shape(out))
    grads = backward(dout, cache)
    grads = grads if isinstance(grads, tuple) else (grads,)
    which = range(len(grads)) if index is None else index
    for k in which:
        num = numeric_grad(lambda: forward(*inputs)[0], inputs[k], dout)
        assert grads[k].shape == inputs[k].shape
        err = rel_error(grads[k], num)
        assert err < tol, f"gradient {k}: relative error {err:.2e}"


def away_from_zero(rng, shape, margin=0.05):
    x = rng.standard_normal(shape)
    return np.where(np.abs(x) < margin, np.sign(x + 1e-12) * (margin + np.abs(x)), x)


RNG = np.random.default_rng(2024)


@pytest.fixture(autouse=True)
def _fresh_rng():
    """Each test draws the same inputs whichever tests run before it."""
    global RNG
    RNG = np.random.default_rng(2024)


def test_affine():
    x, w, b = RNG.standard_normal((3, 2, 4)), RNG.standard_normal((8, 5)), RNG.standard_normal(5)
    check(L.affine_forward, L.affine_backward, [x, w, b])
    out, _ = L.affine_forward(x, w, b)
    np.testing.assert_allclose(out, x.reshape(3, 8) @ w + b)


ELEMENTWISE = {
    "relu": (L.relu_forward, L.relu_backward),
    "leaky_relu": (lambda x: L.leaky_relu_forward(x, 0.1), L.leaky_relu_backward),
    "elu": (lambda x: L.elu_forward(x, 0.8), L.elu_backward),
    "selu": (L.selu_forward, L.selu_backward),
    "sigmoid": (L.sigmoid_forward, L.sigmoid_backward),
    "tanh": (L.tanh_forward, L.tanh_backward),
    "gelu": (L.gelu_forward, L.gelu_backward),
    "silu": (L.silu_forward, L.silu_backward),
    "softplus": (L.softplus_forward, L.softplus_backward),
}


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_elementwise_activation_gradients(name):
    fwd, bwd = ELEMENTWISE[name]
    x = away_from_zero(RNG, (3, 4, 2)) * 2
    check(fwd, bwd, [x])


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_elementwise_dtype_is_kept(name, dtype):
    fwd, bwd = ELEMENTWISE[name]
    x = RNG.standard_normal((2, 3)).astype(dtype)
    out, cache = fwd(x)
    dx = bwd(np.ones_like(out), cache)
    assert out.dtype == dtype and dx.dtype == dtype


def test_integer_input_becomes_float64_and_mixed_input_float64():
    out, _ = L.relu_forward(np.array([[-1, 2]]))
    assert out.dtype == np.float64
    out, _ = L.affine_forward(np.ones((2, 3), np.float32), np.ones((3, 2)), np.ones(2, np.float32))
    assert out.dtype == np.float64


@pytest.mark.parametrize("per_channel", [True, False])
def test_prelu(per_channel):
    x = away_from_zero(RNG, (2, 3, 4))
    alpha = RNG.uniform(0.05, 0.3, 3 if per_channel else 1)
    check(L.prelu_forward, L.prelu_backward, [x, alpha])


def test_maxout():
    # distinct pieces: the winner does not change under the perturbation
    x, w, b = RNG.standard_normal((4, 2, 3)), RNG.standard_normal((6, 3, 4)), RNG.standard_normal((3, 4))
    z = np.einsum("nd,dmk->nmk", x.reshape(4, 6), w) + b
    top2 = np.sort(z, axis=2)[:, :, -2:]
    assert np.all(top2[:, :, 1] - top2[:, :, 0] > 1e-4)
    check(L.maxout_forward, L.maxout_backward, [x, w, b])


@pytest.mark.parametrize("shape,stride,pad", [
    ((2, 3, 7, 6, 4, 3, 2), 1, 1),
    ((1, 2, 5, 5, 3, 1, 1), 1, 0),    # batch of 1, 1x1 conv
    ((2, 2, 9, 7, 2, 2, 2), 3, 0),    # stride larger than the kernel
    ((2, 2, 4, 5, 2, 2, 3), 1, 3),    # padding larger than the kernel, non-square
])
def test_conv(shape, stride, pad):
    N, C, Hh, W, F, HH, WW = shape
    x, w, b = RNG.standard_normal((N, C, Hh, W)), RNG.standard_normal((F, C, HH, WW)), RNG.standard_normal(F)
    check(lambda x, w, b: L.conv_forward(x, w, b, stride, pad), L.conv_backward, [x, w, b])


def _distinct(shape):
    # distinct values spaced 0.01 apart: far more than the 1e-5 step, so no window changes its maximum
    return RNG.permutation(np.prod(shape)).reshape(shape) * 0.01


@pytest.mark.parametrize("size,stride,shape", [(2, 2, (2, 3, 4, 6)), (3, 2, (1, 2, 7, 8)), ((2, 3), (1, 2), (2, 1, 5, 7))])
def test_pools(size, stride, shape):
    x = _distinct(shape)
    check(lambda x: L.max_pool_forward(x, size, stride), L.max_pool_backward, [x])
    check(lambda x: L.avg_pool_forward(x, size, stride), L.avg_pool_backward, [x])


def test_max_pool_all_equal_and_non_tiling():
    out, cache = L.max_pool_forward(np.ones((1, 1, 5, 5)), 2, 2)
    assert out.shape == (1, 1, 2, 2)
    dx = L.max_pool_backward(np.ones_like(out), cache)
    assert np.count_nonzero(dx) == 4 and dx.sum() == 4 and np.all(dx[0, 0, 4, :] == 0)


def test_batchnorm_train_and_test():
    x, g, b = RNG.standard_normal((5, 4)) * 2 + 1, RNG.standard_normal(4), RNG.standard_normal(4)
    check(lambda x, g, b: L.batchnorm_forward(x, g, b, {"mode": "train"}), L.batchnorm_backward, [x, g, b])
    bn_param = {"mode": "train", "momentum": 0.2}
    L.batchnorm_forward(x, g, b, bn_param)
    np.testing.assert_allclose(bn_param["running_mean"], 0.2 * x.mean(0))
    np.testing.assert_allclose(bn_param["running_var"], 0.8 + 0.2 * x.var(0, ddof=1))
    bn_param["mode"] = "test"
    rm, rv = bn_param["running_mean"].copy(), bn_param["running_var"].copy()
    out, _ = L.batchnorm_forward(x, g, b, bn_param)
    np.testing.assert_allclose(out, (x - rm) / np.sqrt(rv + 1e-5) * g + b)
    np.testing.assert_array_equal(bn_param["running_mean"], rm)
    check(lambda x, g, b: L.batchnorm_forward(x, g, b, dict(bn_param)), L.batchnorm_backward, [x, g, b])
    # test mode works on a batch of one
    out, _ = L.batchnorm_forward(x[:1], g, b, bn_param)
    assert out.shape == (1, 4) and np.all(np.isfinite(out))


def test_spatial_batchnorm():
    x, g, b = RNG.standard_normal((2, 3, 3, 2)) + 1, RNG.standard_normal(3), RNG.standard_normal(3)
    check(lambda x, g, b: L.spatial_batchnorm_forward(x, g, b, {"mode": "train"}), L.spatial_batchnorm_backward,
          [x, g, b])
    out, _ = L.spatial_batchnorm_forward(x, np.ones(3), np.zeros(3), {"mode": "train"})
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    # N = 1 is fine when H*W > 1
    L.spatial_batchnorm_forward(x[:1], g, b, {"mode": "train"})


def test_layernorm_and_instancenorm():
    x, g, b = RNG.standard_normal((3, 2, 4)) * 3, RNG.standard_normal((2, 4)), RNG.standard_normal((2, 4))
    check(lambda x, g, b: L.layernorm_forward(x, g, b, {}), L.layernorm_backward, [x, g, b])
    x2 = RNG.standard_normal((3, 6))
    check(lambda x, g, b: L.layernorm_forward(x, g, b), L.layernorm_backward,
          [x2, RNG.standard_normal(6), RNG.standard_normal(6)])
    x4, g4, b4 = RNG.standard_normal((2, 3, 2, 3)), RNG.standard_normal(3), RNG.standard_normal(3)
    check(lambda x, g, b: L.instancenorm_forward(x, g, b, {"eps": 1e-5}), L.instancenorm_backward, [x4, g4, b4])


def test_batchnorm_on_one_sample_raises_a_clear_error():
    with pytest.raises(ValueInputError, match=r"more than one value.*\(1, 3\)"):
        L.batchnorm_forward(np.ones((1, 3)), np.ones(3), np.zeros(3), {"mode": "train"})
    with pytest.raises(ValueInputError, match=r"\(1, 2, 1, 1\)"):
        L.spatial_batchnorm_forward(np.ones((1, 2, 1, 1)), np.ones(2), np.zeros(2), {"mode": "train"})
    with pytest.raises(ValueInputError):
        L.instancenorm_forward(np.ones((4, 2, 1, 1)), np.ones(2), np.zeros(2), {})


def test_dropout():
    x = RNG.standard_normal((4, 5))
    param = {"p": 0.4, "mode": "train", "seed": 3}
    check(lambda x: L.dropout_forward(x, dict(param)), L.dropout_backward, [x])
    out1, _ = L.dropout_forward(x, param)
    out2, _ = L.dropout_forward(x, param)
    np.testing.assert_array_equal(out1, out2)
    out, cache = L.dropout_forward(x, {"p": 0.4, "mode": "test"})
    np.testing.assert_array_equal(out, x)
    np.testing.assert_array_equal(L.dropout_backward(np.ones_like(x), cache), np.ones_like(x))
    out, _ = L.dropout_forward(x, {"p": 0.0, "mode": "train"})
    np.testing.assert_array_equal(out, x)
    out, _ = L.dropout_forward(np.ones(100_000, np.float32), {"p": 0.99, "seed": 1})
    assert out.dtype == np.float32 and abs(out.mean() - 1) < 0.2


@pytest.mark.parametrize("loss", [L.svm_loss, L.softmax_loss])
def test_losses(loss):
    s = RNG.standard_normal((5, 4))
    y = RNG.integers(0, 4, 5)
    value, ds = loss(s, y)
    dout = 1.0
    num = numeric_grad(lambda: loss(s, y)[0], s, dout)
    assert rel_error(ds, num) < 1e-7
    big = np.array([[1e4, -1e4, 0], [-1e4, 1e4, 1e4]], np.float32)
    value, ds = loss(big, np.array([1, 0]))
    assert np.isfinite(value) and np.all(np.isfinite(ds)) and ds.dtype == np.float32


BAD_SHAPES = [
    (lambda: L.conv_forward(np.zeros((2, 3, 8, 8)), np.zeros((5, 4, 3, 3)), np.zeros(5)),
     r"x has 3 channels \(shape \(2, 3, 8, 8\)\) but w expects 4 \(shape \(5, 4, 3, 3\)\)"),
    (lambda: L.conv_forward(np.zeros((3, 8, 8)), np.zeros((5, 3, 3, 3)), np.zeros(5)), r"\(3, 8, 8\)"),
    (lambda: L.conv_forward(np.zeros((1, 3, 8, 8)), np.zeros((5, 3, 3, 3)), np.zeros(4)), r"\(4,\)"),
    (lambda: L.conv_forward(np.zeros((1, 3, 8, 8)), np.zeros((5, 3, 3, 3)), np.zeros(5), stride=0), "stride"),
    (lambda: L.conv_forward(np.zeros((1, 3, 8, 8)), np.zeros((5, 3, 3, 3)), np.zeros(5), stride=-1), "stride"),
    (lambda: L.conv_forward(np.zeros((1, 3, 8, 8)), np.zeros((5, 3, 3, 3)), np.zeros(5), pad=-1), "pad"),
    (lambda: L.conv_forward(np.zeros((1, 3, 8, 8)), np.zeros((5, 3, 3, 3)), np.zeros(5), stride=1.5), "stride"),
    (lambda: L.conv_forward(np.zeros((1, 3, 2, 2)), np.zeros((5, 3, 3, 3)), np.zeros(5)),
     r"\(1, 3, 2, 2\).*\(5, 3, 3, 3\)"),
    (lambda: L.affine_forward(np.zeros((2, 3)), np.zeros((4, 5)), np.zeros(5)), r"\(2, 3\).*\(4, 5\)"),
    (lambda: L.max_pool_forward(np.zeros((1, 1, 3, 3)), 4, 1), r"\(1, 1, 3, 3\)"),
    (lambda: L.max_pool_forward(np.zeros((1, 1, 3, 3)), 2, 0), "stride"),
    (lambda: L.avg_pool_forward(np.zeros((1, 3, 3)), 2, 2), r"\(1, 3, 3\)"),
    (lambda: L.batchnorm_forward(np.zeros((4, 3)), np.ones(2), np.zeros(3), {}), r"\(2,\).*\(4, 3\)"),
    (lambda: L.softmax_loss(np.zeros((4, 3)), np.zeros(3, int)), r"\(3,\).*\(4, 3\)"),
    (lambda: L.svm_loss(np.zeros(3), np.zeros(3, int)), r"\(3,\)"),
    (lambda: L.relu_backward(np.zeros((2, 2)), L.relu_forward(np.zeros((2, 3)))[1]), r"\(2, 2\).*\(2, 3\)"),
    (lambda: L.conv_backward(np.zeros((1, 5, 5, 5)),
                             L.conv_forward(np.zeros((1, 3, 8, 8)), np.zeros((5, 3, 3, 3)), np.zeros(5))[1]),
     r"\(1, 5, 5, 5\).*\(1, 5, 6, 6\)"),
    (lambda: L.maxout_forward(np.zeros((2, 3)), np.zeros((3, 2, 2)), np.zeros((2, 3))), r"\(2, 3\)"),
    (lambda: L.prelu_forward(np.zeros((2, 3)), np.zeros(2)), r"\(2,\).*\(2, 3\)"),
]


@pytest.mark.parametrize("call,match", BAD_SHAPES)
def test_bad_shapes_raise_shape_error(call, match):
    with pytest.raises(ShapeError, match=match):
        call()


BAD_VALUES = [
    lambda: L.softmax_loss(np.zeros((2, 3)), np.array([0, 3])),
    lambda: L.svm_loss(np.zeros((2, 3)), np.array([-1, 0])),
    lambda: L.softmax_loss(np.zeros((2, 3)), np.array([0.0, 1.0])),
    lambda: L.dropout_forward(np.zeros(3), {"p": 1.0}),
    lambda: L.dropout_forward(np.zeros(3), {"p": -0.1}),
    lambda: L.dropout_forward(np.zeros(3), {"p": 0.5, "mode": "eval"}),
    lambda: L.batchnorm_forward(np.zeros((4, 3)), np.ones(3), np.zeros(3), {"mode": "training"}),
    lambda: L.batchnorm_forward(np.zeros((4, 3)), np.ones(3), np.zeros(3), {"eps": 0}),
    lambda: L.relu_forward(np.array(["a"])),
    lambda: L.leaky_relu_forward(np.zeros(3), alpha=float("nan")),
]


@pytest.mark.parametrize("call", BAD_VALUES)
def test_bad_values_raise_value_input_error(call):
    with pytest.raises(ValueInputError):
        call()


@pytest.mark.parametrize("loss", [L.svm_loss, L.softmax_loss])
@pytest.mark.parametrize("labels, bad", [
    (np.array([0, 2, -1], np.int64), -1),
    (np.array([0, 3, 1], np.int8), 3),
    (np.array([1, 2**64 - 1, 0], np.uint64), 2**64 - 1),  # wraps to -1 as int64: still out of range
    (np.array([-(2**63), 0, 1], np.int64), -(2**63)),
])
def test_an_out_of_range_label_is_named_whatever_its_integer_type(loss, labels, bad):
    with pytest.raises(ValueInputError, match=f"label {bad} is out of range for 3 classes"):
        loss(np.zeros((3, 3)), labels)
    ok = labels.copy()
    ok[labels == bad] = 2
    assert np.isfinite(loss(np.zeros((3, 3)), ok)[0])


@pytest.mark.parametrize("call, message", [
    (lambda x, w, b: L.conv_forward(x, w, b, stride=10**20), "stride must be ≤ 4096"),
    (lambda x, w, b: L.conv_forward(x, w, b, pad=10**20), "pad must be ≤ 4096"),
    (lambda x, w, b: L.conv_forward(x, w, b, pad=4000), "the limit is 100,000,000"),
    (lambda x, w, b: L.max_pool_forward(x, size=10**20), "size must be ≤ 4096"),
    (lambda x, w, b: L.avg_pool_forward(x, stride=10**20), "stride must be ≤ 4096"),
])
def test_absurd_strides_pads_and_windows_are_refused_before_any_allocation(call, message):
    x, w, b = np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3)), np.zeros(1)
    with pytest.raises(ShapeError, match=message):
        call(x, w, b)


@pytest.mark.parametrize("fwd", [L.relu_forward, L.sigmoid_forward, L.tanh_forward])
def test_a_0d_array_is_treated_as_a_python_number(fwd):
    """The one-array fast path of the input check leaves 0-d arrays to the long way: shape (1,), as for a float."""
    for x in (np.array(0.5), np.array(0.5, np.float32), 0.5, np.float64(0.5)):
        out, _ = fwd(x)
        assert out.shape == (1,)
