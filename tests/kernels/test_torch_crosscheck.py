"""A few kernels against PyTorch CPU (skipped when torch is not importable)."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from kernels import activations as A  # noqa: E402
from kernels import conv, losses, norm, pool  # noqa: E402


def t(a, grad=False):
    return torch.tensor(a, requires_grad=grad)


@pytest.mark.parametrize("stride,pad", [(1, 0), (2, 1), (3, 2)])
def test_conv_matches_torch(stride, pad):
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((2, 3, 9, 8)), rng.standard_normal((4, 3, 3, 2)), rng.standard_normal(4)
    out = conv.conv_forward(x, w, b, stride, pad)
    tx, tw, tb = t(x, True), t(w, True), t(b, True)
    tout = F.conv2d(tx, tw, tb, stride, pad)
    g = rng.standard_normal(out.shape)
    tout.backward(t(g))
    np.testing.assert_allclose(out, tout.detach().numpy(), rtol=1e-12, atol=1e-12)
    for mine, theirs in zip(conv.conv_backward(g, x, w, stride, pad), (tx.grad, tw.grad, tb.grad)):
        np.testing.assert_allclose(mine, theirs.numpy(), rtol=1e-11, atol=1e-11)


def test_pools_match_torch():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 7, 9))
    g = rng.standard_normal((2, 3, 3, 3))
    out, arg = pool.max_pool_forward(x, 3, 2, 2, 3)
    tx = t(x, True)
    tout = F.max_pool2d(tx, (3, 2), (2, 3))
    tout.backward(t(g))
    np.testing.assert_array_equal(out, tout.detach().numpy())
    np.testing.assert_allclose(pool.max_pool_backward(g, arg, 7, 9), tx.grad.numpy(), rtol=1e-12)
    tx = t(x, True)
    tout = F.avg_pool2d(tx, (3, 2), (2, 3))
    tout.backward(t(g))
    np.testing.assert_allclose(pool.avg_pool_forward(x, 3, 2, 2, 3), tout.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(pool.avg_pool_backward(g, 7, 9, 3, 2, 2, 3), tx.grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize("name", ["elu", "selu", "gelu", "silu", "softplus", "sigmoid", "tanh", "leaky_relu"])
def test_activations_match_torch(name):
    x = np.linspace(-30, 30, 301)
    tx = t(x, True)
    tf = {"elu": F.elu, "selu": F.selu, "gelu": F.gelu, "silu": F.silu, "softplus": F.softplus,
          "sigmoid": torch.sigmoid, "tanh": torch.tanh, "leaky_relu": F.leaky_relu}[name]
    tout = tf(tx)
    tout.sum().backward()
    out = getattr(A, f"{name}_forward")(x)
    g = np.ones_like(x)
    dx = {"elu": lambda: A.elu_backward(g, x, out), "selu": lambda: A.selu_backward(g, x, out),
          "sigmoid": lambda: A.sigmoid_backward(g, out), "tanh": lambda: A.tanh_backward(g, out)}.get(
        name, lambda: getattr(A, f"{name}_backward")(g, x))()
    # torch's softplus returns x itself above its threshold 20; the exact value differs by < exp(-20)
    tol = 3e-9 if name == "softplus" else 1e-12
    np.testing.assert_allclose(out, tout.detach().numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=tol, atol=tol)


def test_prelu_matches_torch():
    rng = np.random.default_rng(2)
    x, alpha = rng.standard_normal((3, 4, 5)), rng.uniform(0, 0.5, 4)
    tx, ta = t(x, True), t(alpha, True)
    tout = F.prelu(tx, ta)
    g = rng.standard_normal(x.shape)
    tout.backward(t(g))
    np.testing.assert_allclose(A.prelu_forward(x, alpha), tout.detach().numpy(), rtol=1e-12)
    dx, da = A.prelu_backward(g, x, alpha)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(da, ta.grad.numpy(), rtol=1e-10)


def test_batchnorm_running_stats_match_torch():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 3, 4, 5)) * 2 + 1
    g, b = rng.standard_normal(3), rng.standard_normal(3)
    rm, rv = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    tx, tg, tb = t(x, True), t(g, True), t(b, True)
    tout = F.batch_norm(tx, rm, rv, tg, tb, training=True, momentum=0.1, eps=1e-5)
    dout = rng.standard_normal(x.shape)
    tout.backward(t(dout))
    out, xhat, mean, var, inv_std = norm.batchnorm_train_forward(x.reshape(6, 3, 20), g, b, 1e-5)
    np.testing.assert_allclose(out.reshape(x.shape), tout.detach().numpy(), rtol=1e-10, atol=1e-12)
    m = 6 * 20
    np.testing.assert_allclose(0.9 * 0 + 0.1 * mean, rm.numpy(), rtol=1e-12)
    np.testing.assert_allclose(0.9 * 1 + 0.1 * var * m / (m - 1), rv.numpy(), rtol=1e-12)
    dx, dg, db = norm.batchnorm_backward(dout.reshape(6, 3, 20), xhat, g, inv_std, True)
    np.testing.assert_allclose(dx.reshape(x.shape), tx.grad.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(dg, tg.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(db, tb.grad.numpy(), rtol=1e-10)


def test_layer_and_instance_norm_match_torch():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 4, 5)) * 3
    g, b = rng.standard_normal(20), rng.standard_normal(20)
    tx = t(x, True)
    tout = F.layer_norm(tx, (4, 5), t(g.reshape(4, 5)), t(b.reshape(4, 5)), eps=1e-5)
    tout.sum().backward()
    out, xhat, inv_std = norm.layernorm_forward(x.reshape(3, 20), g, b, 1e-5)
    np.testing.assert_allclose(out.reshape(x.shape), tout.detach().numpy(), rtol=1e-10, atol=1e-12)
    dx, _, _ = norm.layernorm_backward(np.ones((3, 20)), xhat, g, inv_std)
    np.testing.assert_allclose(dx.reshape(x.shape), tx.grad.numpy(), rtol=1e-9, atol=1e-10)
    x4 = rng.standard_normal((2, 3, 4, 5))
    gi, bi = rng.standard_normal(3), rng.standard_normal(3)
    tx = t(x4, True)
    tout = F.instance_norm(tx, weight=t(gi), bias=t(bi), eps=1e-5)
    dout = rng.standard_normal(x4.shape)
    tout.backward(t(dout))
    out, xhat, inv_std = norm.instancenorm_forward(x4.reshape(2, 3, 20), gi, bi, 1e-5)
    np.testing.assert_allclose(out.reshape(x4.shape), tout.detach().numpy(), rtol=1e-10, atol=1e-12)
    dx, _, _ = norm.instancenorm_backward(dout.reshape(2, 3, 20), xhat, gi, inv_std)
    np.testing.assert_allclose(dx.reshape(x4.shape), tx.grad.numpy(), rtol=1e-9, atol=1e-10)



@pytest.mark.parametrize("groups", [1, 2, 3, 6])
def test_group_norm_matches_torch(groups):
    rng = np.random.default_rng(groups)
    x = rng.standard_normal((3, 6, 4, 5)) * 2 + 1
    g, b = rng.standard_normal(6), rng.standard_normal(6)
    dout = rng.standard_normal(x.shape)
    tx, tg, tb = t(x, True), t(g, True), t(b, True)
    tout = F.group_norm(tx, groups, tg, tb, eps=1e-5)
    tout.backward(t(dout))
    out, xhat, inv_std = norm.groupnorm_forward(x.reshape(3, 6, 20), g, b, groups, 1e-5)
    np.testing.assert_allclose(out.reshape(x.shape), tout.detach().numpy(), rtol=1e-10, atol=1e-12)
    dx, dg, db = norm.groupnorm_backward(dout.reshape(3, 6, 20), xhat, g, inv_std, groups)
    np.testing.assert_allclose(dx.reshape(x.shape), tx.grad.numpy(), rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(dg, tg.grad.numpy(), rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(db, tb.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_losses_match_torch():
    rng = np.random.default_rng(5)
    s = rng.standard_normal((7, 5)) * 3
    y = rng.integers(0, 5, 7)
    ts = t(s, True)
    tl = F.cross_entropy(ts, torch.tensor(y))
    tl.backward()
    loss, ds = losses.softmax_loss(s, y)
    np.testing.assert_allclose(loss, tl.item(), rtol=1e-12)
    np.testing.assert_allclose(ds, ts.grad.numpy(), rtol=1e-11, atol=1e-14)
    ts = t(s, True)
    tl = F.multi_margin_loss(ts, torch.tensor(y)) * 5  # torch divides each sample's sum by the class count
    tl.backward()
    loss, ds = losses.svm_loss(s, y)
    np.testing.assert_allclose(loss, tl.item(), rtol=1e-12)
    np.testing.assert_allclose(ds, ts.grad.numpy(), rtol=1e-12, atol=1e-14)
