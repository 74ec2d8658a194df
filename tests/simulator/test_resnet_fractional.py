"""Residual blocks with stochastic depth, and fractional max pooling: the functional layers, the layer records, the
Network around them (names, weights files, regulariser, graph expansion, test-time averaging), the PyTorch export and
training on the digits. References: float64 centred differences, torchvision's documented stochastic_depth (and
torchvision.ops.stochastic_depth's own code on torch tensors when torch is importable), and torch's fractional_max_pool2d given the
same samples (when torch is importable)."""
from __future__ import annotations

import dataclasses
import importlib.util
import subprocess
import sys

import numpy as np
import pytest

from simulator.core.errors import ShapeError, ValueInputError
from simulator.data import datasets as D
from simulator.engine.gradcheck import numerical_gradient
from simulator.engine.trace import run
from simulator.functional import layers as L
from simulator.nn.export_torch import export_torch_script, write_torch_export
from simulator.nn.layers import (
    Activation,
    BatchNorm,
    Conv2d,
    Flatten,
    FractionalMaxPool,
    Linear,
    ResidualBlock,
    layer_from_dict,
    layer_to_dict,
)
from simulator.nn.network import EVAL_DRAW_STRIDE, Network
from simulator.nn.trainer import Trainer

HAS_TORCH = importlib.util.find_spec("torch") is not None


def _torchvision_stochastic_depth(input, p: float, mode: str, training: bool = True):  # noqa: A002
    """torchvision.ops.stochastic_depth, verbatim from torchvision 0.15-0.29 (BSD-3-Clause, torchvision/ops/
    stochastic_depth.py): the reference itself, run on torch tensors, so the check needs torch only (torchvision
    pins a torch of its own and is not installed beside the CPU torch the cross-checks use)."""
    import torch
    if p < 0.0 or p > 1.0:
        raise ValueError(f"drop probability has to be between 0 and 1, but got {p}")
    if mode not in ["batch", "row"]:
        raise ValueError(f"mode has to be either 'batch' or 'row', but got {mode}")
    if not training or p == 0.0:
        return input

    survival_rate = 1.0 - p
    if mode == "row":
        size = [input.shape[0]] + [1] * (input.ndim - 1)
    else:
        size = [1] * input.ndim
    noise = torch.empty(size, dtype=input.dtype, device=input.device)
    noise = noise.bernoulli_(survival_rate)
    if survival_rate > 0.0:
        noise.div_(survival_rate)
    return input * noise


def close(a, b, tol=1e-6):
    return np.allclose(a, b, rtol=tol, atol=tol)


# ================================================================================================ stochastic depth

def torchvision_stochastic_depth(x, p, mode, training, noise_draw):
    """torchvision.ops.stochastic_depth as documented: noise ~ Bernoulli(1 - p) of shape [N, 1, ...] (row) or
    [1, ...] (batch), divided by the survival rate when it is > 0; input * noise. noise_draw(size) supplies the
    Bernoulli draws (so both sides use the same ones)."""
    if p < 0.0 or p > 1.0:
        raise ValueError("drop probability has to be between 0 and 1")
    if not training or p == 0.0:
        return x
    survival = 1.0 - p
    size = [x.shape[0]] + [1] * (x.ndim - 1) if mode == "row" else [1] * x.ndim
    noise = noise_draw(size)
    if survival > 0.0:
        noise = noise / survival
    return x * noise


@pytest.mark.parametrize("mode", ["row", "batch"])
@pytest.mark.parametrize("p", [0.0, 0.2, 0.5, 0.9])
def test_stochastic_depth_is_torchvisions_formula(mode, p):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(7, 3, 2, 2))
    out, cache = L.stochastic_depth_forward(x, p, mode, True, seed=11)
    # our draw: Bernoulli(1 - p) from the seed, per example (row) or one for the batch
    keep = np.random.default_rng(11).random(7 if mode == "row" else 1) < 1 - p
    ref = torchvision_stochastic_depth(x, p, mode, True,
                                       lambda size: keep.reshape(size).astype(float) if p else np.ones(size))
    assert np.array_equal(out, ref)
    per_example = out.reshape(7, -1)
    for n in range(7):      # every example either dropped whole or kept whole, scaled by 1/(1-p)
        assert np.allclose(per_example[n], 0) or np.allclose(per_example[n], x[n].ravel() / (1 - p))
    if mode == "batch":
        assert np.allclose(out, 0) or np.allclose(out, x / (1 - p))
    dout = rng.normal(size=x.shape)
    # the op is linear in x: its gradient is the same mask applied to dout
    ref_dx = torchvision_stochastic_depth(dout, p, mode, True,
                                          lambda size: keep.reshape(size).astype(float) if p else np.ones(size))
    assert np.array_equal(L.stochastic_depth_backward(dout, cache), ref_dx)
    assert np.array_equal(L.stochastic_depth_forward(x, p, mode, False, 11)[0], x)      # eval: the identity


@pytest.mark.skipif(not HAS_TORCH, reason="torch (the optional reference) is not installed")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("mode", ["row", "batch"])
def test_stochastic_depth_matches_torchvision(mode, dtype):
    """torchvision.ops.stochastic_depth draws its Bernoulli noise from torch's generator and we draw ours from numpy's,
    so the two cannot share a seed: take torchvision's draw, find a seed of ours that keeps the same rows, and then
    the outputs and the gradients must be torchvision's."""
    import torch
    stochastic_depth = _torchvision_stochastic_depth
    rng = np.random.default_rng(1)
    p, n = 0.4, 6
    x = rng.normal(size=(n, 3, 2)).astype(dtype)
    dout = rng.normal(size=x.shape).astype(dtype)
    for torch_seed in range(100):     # a draw that keeps some rows (row: and drops others), so both cases are compared
        torch.manual_seed(torch_seed)
        tx = torch.tensor(x, requires_grad=True)
        tout = stochastic_depth(tx, p, mode, True)
        kept = tout.detach().numpy().reshape(n, -1).any(axis=1)
        if kept.any() and (mode == "batch" or not kept.all()):
            break
    tout.backward(torch.tensor(dout))
    for seed in range(100_000):
        out, cache = L.stochastic_depth_forward(x, p, mode, True, seed)
        if np.array_equal(out.reshape(n, -1).any(axis=1), kept):
            break
    else:
        pytest.fail("no seed of ours drew torchvision's rows")
    tol = dict(rtol=0, atol=0) if dtype == np.float64 else dict(rtol=1e-6, atol=0)   # float32: 1/(1-p) rounded
    assert out.dtype == dtype
    np.testing.assert_allclose(out, tout.detach().numpy(), **tol)
    np.testing.assert_allclose(L.stochastic_depth_backward(dout, cache), tx.grad.numpy(), **tol)
    # eval mode and p = 0 are the identity in both
    for train, q in ((False, p), (True, 0.0)):
        ref = stochastic_depth(torch.tensor(x), q, mode, train).numpy()
        assert np.array_equal(L.stochastic_depth_forward(x, q, mode, train, 3)[0], ref)


def test_stochastic_depth_drops_at_rate_p_and_keeps_the_expectation():
    x = np.ones((20000, 1))
    out, _ = L.stochastic_depth_forward(x, 0.25, "row", True, seed=3)
    assert abs(np.mean(out == 0) - 0.25) < 0.01 and abs(out.mean() - 1.0) < 0.02
    batches = [L.stochastic_depth_forward(x[:4], 0.25, "batch", True, seed=s)[0] for s in range(2000)]
    assert abs(np.mean([np.all(b == 0) for b in batches]) - 0.25) < 0.03


@pytest.mark.parametrize("p", [1.0, -0.1, 1.5, float("nan")])
def test_stochastic_depth_probability_outside_0_1_is_our_error(p):
    with pytest.raises(ValueInputError, match="p"):
        L.stochastic_depth_forward(np.ones((2, 2)), p)
    with pytest.raises(ValueInputError, match="ResidualBlock: stochastic depth p"):
        ResidualBlock(p=p)
    with pytest.raises(ValueInputError, match="mode"):
        L.stochastic_depth_forward(np.ones((2, 2)), 0.1, "column")


# ================================================================================================ fractional pooling

def test_fractional_pool_gradient_is_the_numerical_one():
    rng = np.random.default_rng(2)
    x = (rng.permutation(2 * 3 * 9 * 7) * 0.05).reshape(2, 3, 9, 7)        # no ties: the maxima are stable
    samples = rng.random((2, 3, 2))
    out, cache = L.fractional_max_pool_forward(x, 2 ** -0.5, samples)
    assert out.shape == (2, 3, 6, 4)
    dout = rng.normal(size=out.shape)
    dx = L.fractional_max_pool_backward(dout, cache)
    num = numerical_gradient(lambda _: float(np.sum(L.fractional_max_pool_forward(x, 2 ** -0.5, samples)[0] * dout)),
                             x)
    assert close(dx, num)


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fractional_pool_wrapper_against_torch(dtype):
    import torch
    rng = np.random.default_rng(4)
    x = rng.normal(size=(3, 2, 11, 10)).astype(dtype)
    samples = rng.random((3, 2, 2)).astype(dtype)
    out, cache = L.fractional_max_pool_forward(x, 0.65, samples)
    tx = torch.tensor(x, requires_grad=True)
    t = torch.nn.functional.fractional_max_pool2d(tx, 2, output_ratio=(0.65, 0.65),
                                                  _random_samples=torch.tensor(samples))
    assert out.dtype == dtype and np.array_equal(out, t.detach().numpy())
    dout = rng.normal(size=out.shape).astype(dtype)
    t.backward(torch.tensor(dout))
    assert close(L.fractional_max_pool_backward(dout, cache), tx.grad.numpy(), 1e-5)
    # the layer record's module is torch's, with the same output size
    module = torch.nn.FractionalMaxPool2d(2, output_ratio=(0.65, 0.65))
    assert tuple(module(tx).shape[1:]) == FractionalMaxPool(0.65).output_shape((2, 11, 10))


@pytest.mark.parametrize("ratio", [0.5, 1.0, 0.3, 1.2, float("inf")])
def test_fractional_ratio_outside_the_open_interval_is_our_error(ratio):
    with pytest.raises(ValueInputError, match="ratio"):
        L.fractional_max_pool_forward(np.ones((1, 1, 6, 6)), ratio)
    with pytest.raises(ValueInputError, match="FractionalMaxPool: ratio must be"):
        FractionalMaxPool(ratio)


def test_fractional_pool_bad_shapes_and_samples_are_our_errors():
    with pytest.raises(ShapeError, match="4-D"):
        L.fractional_max_pool_forward(np.ones((6, 6)), 0.7)
    with pytest.raises(ShapeError, match="too small"):
        L.fractional_max_pool_forward(np.ones((1, 1, 1, 6)), 0.7)
    with pytest.raises(ShapeError, match=r"samples must have shape \(N, C, 2\)"):
        L.fractional_max_pool_forward(np.ones((2, 1, 6, 6)), 0.7, np.zeros((1, 1, 2)))
    with pytest.raises(ValueInputError, match=r"\[0, 1\)"):
        L.fractional_max_pool_forward(np.ones((1, 1, 6, 6)), 0.7, np.ones((1, 1, 2)))
    out, cache = L.fractional_max_pool_forward(np.ones((1, 1, 6, 6)), 0.7, seed=1)
    with pytest.raises(ShapeError, match="dout has shape"):
        L.fractional_max_pool_backward(np.ones((1, 1, 5, 5)), cache)
    with pytest.raises(ShapeError, match=r"layer 1 \(FracMaxPool.*needs an image"):
        Network((16,), [FractionalMaxPool(), Linear(2)])
    with pytest.raises(ShapeError, match="too small"):
        Network((1, 1, 8), [FractionalMaxPool(), Flatten(), Linear(2)])


# ================================================================================================ the residual record

def test_block_names_shapes_and_shortcuts():
    same = ResidualBlock()
    assert same.output_shape((4, 6, 6)) == (4, 6, 6) and same.parts((4, 6, 6))[1] is None     # identity shortcut
    down = ResidualBlock(width=8, stride=2)
    assert down.output_shape((4, 7, 7)) == (8, 4, 4)
    assert list(down.param_shapes((4, 7, 7))) == ["conv1.w", "conv1.b", "bn1.gamma", "bn1.beta", "conv2.w", "conv2.b",
                                                  "bn2.gamma", "bn2.beta", "proj.w", "proj.b"]
    assert down.param_shapes((4, 7, 7))["proj.w"] == (8, 4, 1, 1)
    assert list(down.buffer_shapes((4, 7, 7))) == ["bn1.running_mean", "bn1.running_var", "bn2.running_mean",
                                                   "bn2.running_var"]
    vec = ResidualBlock(width=5, batch_norm=False)
    assert list(vec.param_shapes((3,))) == ["fc1.w", "fc1.b", "fc2.w", "fc2.b", "proj.w", "proj.b"]
    assert vec.output_shape((3,)) == (5,) and ResidualBlock(kernel=5).output_shape((2, 5, 5)) == (2, 5, 5)
    assert layer_from_dict(layer_to_dict(down)) == down
    net = Network((1, 8, 8), [Conv2d(4, 3, pad=1), ResidualBlock(p=0.2), ResidualBlock(width=6, stride=2),
                              Flatten(), ResidualBlock(), Linear(3)])
    assert net.layer_names == ["conv1", "res1", "res2", "flatten1", "res3", "fc1"]
    assert "res1.conv1.w" in net.params and "res2.proj.w" in net.params and "res3.fc2.b" in net.params
    assert "res1.bn2.running_var" in dict(net.named_buffers())


def test_block_shape_mismatches_are_our_errors():
    with pytest.raises(ShapeError, match=r"layer 1 \(ResBlock s2\): .*stride applies to images"):
        Network((6,), [ResidualBlock(stride=2), Linear(2)])
    with pytest.raises(ValueInputError, match="ResidualBlock: unknown kernel 4"):
        ResidualBlock(kernel=4)
    with pytest.raises(ValueInputError, match="ResidualBlock: unknown drop per"):
        ResidualBlock(mode="column")
    block = ResidualBlock()
    params = block.init_params((3, 4, 4), np.random.default_rng(0), "kaiming", 0.0, np.dtype(np.float64))
    buffers = block.init_buffers((3, 4, 4), np.dtype(np.float64))
    out, cache = block.forward(np.ones((2, 3, 4, 4)), list(params.values()), buffers, True, 1)
    with pytest.raises(ShapeError, match="dout has shape"):
        block.backward(np.ones((2, 3, 4, 5)), cache)


def _block_reference(x, P, B, p, mode, seed, stride=1, pad=1):
    """relu(sd(bn2(conv2(relu(bn1(conv1 x))))) + proj(x)) written with the functional layers directly."""
    def bn(h, g, b, name):
        param = {"mode": "train", "eps": 1e-5, "momentum": 0.1, "running_mean": B[f"{name}.running_mean"].copy(),
                 "running_var": B[f"{name}.running_var"].copy()}
        return L.spatial_batchnorm_forward(h, g, b, param)[0]
    h = L.conv_forward(x, P["conv1.w"], P["conv1.b"], stride, pad)[0]
    h = np.maximum(bn(h, P["bn1.gamma"], P["bn1.beta"], "bn1"), 0)
    h = L.conv_forward(h, P["conv2.w"], P["conv2.b"], 1, pad)[0]
    h = bn(h, P["bn2.gamma"], P["bn2.beta"], "bn2")
    keep = np.random.default_rng(seed).random(len(x) if mode == "row" else 1) < 1 - p
    h = h * (np.broadcast_to(keep, (len(x),)) / (1 - p)).reshape(-1, 1, 1, 1)
    short = x if "proj.w" not in P else L.conv_forward(x, P["proj.w"], P["proj.b"], stride, 0)[0]
    return np.maximum(h + short, 0)


@pytest.mark.parametrize("block, in_shape", [(ResidualBlock(p=0.5, mode="row"), (3, 5, 5)),
                                             (ResidualBlock(width=4, stride=2, p=0.3, mode="batch"), (2, 6, 6))])
def test_block_forward_is_the_lecture_formula(block, in_shape):
    rng = np.random.default_rng(3)
    P = block.init_params(in_shape, rng, "kaiming", 0.1, np.dtype(np.float64))
    B = block.init_buffers(in_shape, np.dtype(np.float64))
    x = rng.normal(size=(6, *in_shape))
    seed = 2 if block.mode == "batch" else 8       # a seed whose draw keeps the batch (batch) / mixes (row)
    out, _ = block.forward(x, list(P.values()), {k: v.copy() for k, v in B.items()}, True, seed)
    ref = _block_reference(x, P, B, block.p, block.mode, seed, block.stride)
    assert close(out, ref, 1e-10)
    eval_out, _ = block.forward(x, list(P.values()), B, False, seed)
    assert close(eval_out, block.replace(p=0.0).forward(x, list(P.values()), B, False, None)[0], 1e-12)


@pytest.mark.parametrize("layers, in_shape", [
    ([ResidualBlock(p=0.4), Flatten(), Linear(3)], (2, 4, 4)),
    ([ResidualBlock(width=3, stride=2, p=0.3, mode="batch"), Flatten(), Linear(3)], (2, 5, 5)),
    ([ResidualBlock(width=5, p=0.5, batch_norm=False), ResidualBlock(), Linear(3)], (4,)),
    ([Conv2d(2, 3, pad=1), FractionalMaxPool(0.7), ResidualBlock(p=0.3), Flatten(), Linear(3)], (1, 7, 7)),
])
def test_every_gradient_of_a_residual_network_is_the_numerical_one(layers, in_shape):
    """Fixed drop masks and region draws (the seed): the network is a fixed function, checked in float64, the L2
    regulariser included (it must reach every weight inside the blocks)."""
    net = Network(in_shape, layers, dtype=np.float64, seed=4, reg=0.01)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(5, *in_shape)), rng.integers(0, 3, 5)
    loss, grads = net.loss(x, y, "train", seed=7)
    for k, arr in net.params.items():
        num = numerical_gradient(lambda _: net.loss(x, y, "train", seed=7)[0], arr)
        assert close(grads[k], num, 1e-5), k
    _, caches = net.forward_with_caches(x, "train", seed=7)
    scores = net.forward(x, "train", seed=7)
    dx = net.backward(np.ones_like(scores), caches)[1]
    num_x = numerical_gradient(lambda xx: float(net.forward(xx, "train", seed=7).sum()), x.copy())
    assert close(dx, num_x, 1e-5)
    reg_weights = [k for k in net.params if k.endswith(".w")]
    plain = Network(in_shape, layers, dtype=np.float64, seed=4)
    assert loss - plain.loss(x, y, "train", seed=7)[0] == pytest.approx(
        0.01 * sum(float(np.sum(net.params[k] ** 2)) for k in reg_weights), rel=1e-9)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_graph_expansion_has_the_fork_and_the_networks_numbers(mode):
    net = Network((2, 5, 5), [ResidualBlock(p=0.5), ResidualBlock(width=3, stride=2), FractionalMaxPool(0.75),
                              Flatten(), Linear(3)], dtype=np.float64, seed=1)
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(4, 2, 5, 5)), rng.integers(0, 3, 4)
    net.loss(x, y, "train", seed=1)                   # running statistics that are not the initial ones
    loss, grads = net.loss(x, y, mode, seed=9)
    graph = net.to_graph(x, y, mode=mode, seed=9)
    consumers = [e.dst for e in graph.edges if e.src == "x"]
    assert sorted(consumers) == ["res1_conv1", "res1_sum"]          # the skip connection is a fan-out of x
    assert ("res1_depth" in {n.id for n in graph.nodes}) == (mode == "train")
    assert {e.dst for e in graph.edges if e.src == "res1"} == {"res2_conv1", "res2_proj"}
    result = run(graph)
    assert abs(float(result.value) - loss) < 1e-9
    for k in net.params:
        assert close(result.grads[Network.graph_name(k)], grads[k], 1e-9), k


# ================================================================================================ test-time averaging

def test_eval_averages_the_scores_of_several_region_draws():
    net = Network((1, 8, 8), [Conv2d(3, 3, pad=1), FractionalMaxPool(draws=5), Flatten(), Linear(4)],
                  dtype=np.float64, seed=0)
    x = np.random.default_rng(1).normal(size=(6, 1, 8, 8))
    draws = [net.forward(x, "eval", seed=d * EVAL_DRAW_STRIDE) for d in range(5)]
    assert not np.allclose(draws[0], draws[1])                       # the draws differ
    assert close(net.forward(x, "eval"), np.mean(draws, axis=0), 1e-12)
    assert np.array_equal(net.forward(x, "eval"), net.forward(x, "eval"))          # eval is deterministic
    assert close(net.forward(x[2:4], "eval"), net.forward(x, "eval")[2:4], 1e-12)  # and independent of the batch
    one = Network(net.input_shape, [dataclasses.replace(s, draws=1) if isinstance(s, FractionalMaxPool) else s
                                    for s in net.specs], dtype=np.float64, seed=0)
    assert np.array_equal(one.forward(x, "eval"), one.forward(x, "eval"))      # one fixed draw
    assert not np.allclose(one.forward(x, "eval"), net.forward(x, "eval"))
    # training draws new regions every step
    assert not np.allclose(net.forward(x, "train"), net.forward(x, "train"))


# ================================================================================================ files and export

def test_weights_round_trip_keeps_nested_names(tmp_path):
    net = Network((1, 8, 8), [Conv2d(4, 3, pad=1), ResidualBlock(p=0.2), ResidualBlock(width=6, stride=2, p=0.1),
                              FractionalMaxPool(0.7, draws=3), Flatten(), ResidualBlock(width=8), Linear(10)], seed=3)
    x = np.random.default_rng(0).normal(size=(8, 1, 8, 8))
    for s in range(3):
        net.loss(x, np.arange(8), "train", seed=s)    # move the running statistics
    net.save(tmp_path / "w.npz")
    back = Network.load(tmp_path / "w.npz")
    assert back.specs == net.specs and list(back.state_dict()) == list(net.state_dict())
    for k, v in net.state_dict().items():
        assert np.array_equal(back.state_dict()[k], v), k
    assert np.array_equal(back.forward(x), net.forward(x))
    bad = net.state_dict()
    bad["res1.bn1.running_var"][0] = -1.0
    with pytest.raises(ValueInputError, match="res1.bn1.running_var: a running variance is negative"):
        net.load_state_dict(bad)


def test_export_writes_the_block_and_fractional_pool():
    net = Network((1, 8, 8), [Conv2d(4, 3, pad=1), ResidualBlock(p=0.2, mode="batch"), FractionalMaxPool(0.7),
                              Flatten(), ResidualBlock(width=6), Linear(10)], reg=1e-3, seed=3)
    src = export_torch_script(net, {"optimizer": "SGD", "hyperparameters": {"lr": 0.1}})
    compile(src, "exported.py", "exec")
    assert "class ResidualBlock(nn.Module)" in src and "def stochastic_depth(x, p, mode, training)" in src
    assert "nn.FractionalMaxPool2d(2, output_ratio=(0.7, 0.7))" in src
    assert "p=0.2, mode='batch'" in src and "sum(model(X) for _ in range(4)) / 4" in src
    assert "('res1.conv1.w', 1, 'conv1.weight', False)" in src and "('res2.proj.w', 4, 'proj.weight', True)" in src


def _digits(n=600):
    X, y = D.load_digits()
    X = (X[:n] - 8.0) / 8.0
    return X, y[:n]


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed")
def test_exported_resnet_reproduces_our_loss(tmp_path):
    X, y = _digits(200)
    net = Network((1, 8, 8), [Conv2d(4, 3, pad=1), ResidualBlock(), ResidualBlock(width=6, stride=2),
                              Flatten(), ResidualBlock(width=12), Linear(10)], reg=1e-3, seed=3, dtype=np.float64)
    tr = Trainer(net, (X, y, None, None), "SGD", lr=0.05, batch_size=32, epochs=1, seed=0)
    idx = np.random.default_rng([0, 2]).permutation(len(X))[:32]
    ours0 = net.loss(X[idx], y[idx], "train", seed=0)[0]
    script = write_torch_export(tmp_path, net, tr, (X, y, None, None))
    r = subprocess.run([sys.executable, str(script), "--steps", "3"], capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stdout.splitlines()
    assert float(lines[0].split()[1]) == pytest.approx(ours0, rel=1e-7)
    ours = [tr.step().loss for _ in range(3)]
    theirs = [float(l.split()[3]) for l in lines[1:] if l.startswith("step ")]
    assert np.allclose(theirs, ours, rtol=1e-5, atol=1e-6), (theirs, ours)


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed")
def test_exported_block_module_has_our_numbers_with_stochastic_depth_and_regions():
    """The script's ResidualBlock and FractionalMaxPool2d given our drop mask and our regions compute our forward."""
    import torch
    import torch.nn as nn
    block = ResidualBlock(width=3, stride=2, p=0.5)
    in_shape = (2, 6, 6)
    rng = np.random.default_rng(2)
    P = block.init_params(in_shape, rng, "kaiming", 0.1, np.dtype(np.float64))
    B = block.init_buffers(in_shape, np.dtype(np.float64))
    x = rng.normal(size=(5, *in_shape))
    ours, _ = block.forward(x, list(P.values()), B, True, 13)
    scope = {"nn": nn, "torch": torch}
    exec(block.torch_source(), scope)
    module = eval(block.torch_module(in_shape), scope).double()
    with torch.no_grad():
        for k, v in P.items():
            attr, transposed = block.torch_param(k, in_shape)
            module.get_parameter(attr).copy_(torch.tensor(v.T if transposed else v))
    keep = np.random.default_rng(13).random(5) < 0.5
    scope["torch"] = torch
    original = torch.Tensor.bernoulli_
    try:   # torch's own Bernoulli replaced by our draw: the rest is the script's code
        torch.Tensor.bernoulli_ = lambda t, q: t.copy_(torch.tensor(keep, dtype=t.dtype).reshape(t.shape))
        theirs = module.train()(torch.tensor(x)).detach().numpy()
    finally:
        torch.Tensor.bernoulli_ = original
    assert close(ours, theirs, 1e-10)


# ================================================================================================ training

def test_a_resnet_with_stochastic_depth_and_fractional_pooling_learns_the_digits():
    X, y = _digits(600)
    Xt, yt, Xv, yv = X[:500], y[:500], X[500:], y[500:]
    net = Network((1, 8, 8), [Conv2d(8, 3, pad=1), BatchNorm(), Activation("relu"), ResidualBlock(p=0.2),
                              FractionalMaxPool(draws=3), Flatten(), Linear(10)], seed=0)
    before = net.evaluate(Xv, yv)[0]
    tr = Trainer(net, (Xt, yt, Xv, yv), "Adam", lr=3e-3, batch_size=50, epochs=8, seed=1)
    losses = tr.run().loss
    after_loss, after_acc = net.evaluate(Xv, yv)
    assert after_loss < 0.25 * before and after_acc > 0.75          # chance is 0.1
    assert np.mean(losses[-10:]) < 0.3 * np.mean(losses[:10])
