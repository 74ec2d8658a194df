"""GroupNorm, InstanceNorm and DropConnect (issue 13): layer functions, records, networks, graphs, weights, export.

Every gradient against float64 centred differences; the norms against torch's group_norm and instance_norm when
torch is importable; DropConnect's eval mode against a plain Linear, its train-mode mask statistics and inverted
scaling, and its gradients with a fixed mask."""
from __future__ import annotations

import importlib.util
import runpy
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
    LAYER_KINDS,
    Activation,
    Conv2d,
    DropConnect,
    Flatten,
    GroupNorm,
    InstanceNorm,
    Linear,
    MaxPool,
    layer_from_dict,
    layer_to_dict,
)
from simulator.nn.network import Network
from simulator.nn.trainer import Trainer

HAS_TORCH = importlib.util.find_spec("torch") is not None


def _check_grads(f, arrays, grads, rtol=1e-6, atol=1e-8):
    for name, (a, g) in zip("abcdefgh", zip(arrays, grads)):
        num = numerical_gradient(f, a)
        assert np.allclose(num, g, rtol=rtol, atol=atol), (name, np.abs(num - g).max())


# ------------------------------------------------------------------------------------------- layer functions

@pytest.mark.parametrize("shape, groups", [((2, 4, 3, 3), 2), ((3, 6, 2, 2), 3), ((2, 3, 2, 3), 1),
                                           ((2, 3, 3, 2), 3)])
def test_groupnorm_forward_and_every_gradient(shape, groups):
    rng = np.random.default_rng(sum(shape) + groups)
    x = rng.normal(0.7, 2.0, size=shape)
    gamma, beta = rng.uniform(0.5, 1.5, shape[1]), rng.normal(size=shape[1])
    dout = rng.normal(size=shape)
    out, cache = L.groupnorm_forward(x, gamma, beta, groups)
    # normalised over exactly each (sample, group): mean 0 and variance 1 there before the affine map
    xhat = ((out - beta[None, :, None, None]) / gamma[None, :, None, None]).reshape(shape[0], groups, -1)
    assert np.allclose(xhat.mean(axis=2), 0, atol=1e-12)
    assert np.allclose(xhat.var(axis=2), 1, atol=1e-4)
    dx, dgamma, dbeta = L.groupnorm_backward(dout, cache)

    def f(_):
        return float(np.sum(L.groupnorm_forward(x, gamma, beta, groups)[0] * dout))
    _check_grads(f, [x, gamma, beta], [dx, dgamma, dbeta])


def test_instancenorm_forward_and_every_gradient():
    rng = np.random.default_rng(5)
    x = rng.normal(-0.4, 1.7, size=(3, 2, 3, 4))
    gamma, beta = rng.uniform(0.5, 1.5, 2), rng.normal(size=2)
    dout = rng.normal(size=x.shape)
    out, cache = L.instancenorm_forward(x, gamma, beta)
    dx, dgamma, dbeta = L.instancenorm_backward(dout, cache)

    def f(_):
        return float(np.sum(L.instancenorm_forward(x, gamma, beta)[0] * dout))
    _check_grads(f, [x, gamma, beta], [dx, dgamma, dbeta])
    # instance norm is group norm with one group per channel
    assert np.allclose(L.groupnorm_forward(x, gamma, beta, 2)[0], out, rtol=1e-12, atol=1e-12)


def test_groupnorm_float32_in_float32_out_close_to_float64():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 6, 5, 5))
    g, b = rng.normal(size=6), rng.normal(size=6)
    out32, c32 = L.groupnorm_forward(x.astype(np.float32), g.astype(np.float32), b.astype(np.float32), 3)
    out64, c64 = L.groupnorm_forward(x, g, b, 3)
    assert out32.dtype == np.float32 and np.allclose(out32, out64, atol=1e-5)
    d = rng.normal(size=x.shape)
    for a, b_ in zip(L.groupnorm_backward(d.astype(np.float32), c32), L.groupnorm_backward(d, c64)):
        assert a.dtype == np.float32 and np.allclose(a, b_, rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_group_and_instance_norm_layers_match_torch(dtype):
    import torch
    import torch.nn.functional as F
    rng = np.random.default_rng(2)
    x = (rng.normal(size=(4, 6, 5, 3)) * 3 + 1).astype(dtype)
    g, b = rng.normal(size=6).astype(dtype), rng.normal(size=6).astype(dtype)
    dout = rng.normal(size=x.shape).astype(dtype)
    tol = {"rtol": 1e-9, "atol": 1e-10} if dtype == np.float64 else {"rtol": 1e-4, "atol": 1e-4}
    for groups in (1, 2, 3, 6, "instance"):
        tx, tg, tb = (torch.tensor(a, requires_grad=True) for a in (x, g, b))
        if groups == "instance":
            tout = F.instance_norm(tx, weight=tg, bias=tb, eps=1e-5)
            out, cache = L.instancenorm_forward(x, g, b)
            grads = L.instancenorm_backward(dout, cache)
        else:
            tout = F.group_norm(tx, groups, tg, tb, eps=1e-5)
            out, cache = L.groupnorm_forward(x, g, b, groups)
            grads = L.groupnorm_backward(dout, cache)
        tout.backward(torch.tensor(dout))
        assert np.allclose(out, tout.detach().numpy(), **tol), groups
        for ours, theirs in zip(grads, (tx.grad, tg.grad, tb.grad)):
            assert np.allclose(ours, theirs.numpy(), **tol), groups


@pytest.mark.parametrize("call, error, message", [
    (lambda x, g, b: L.groupnorm_forward(x, g, b, 4), ShapeError,
     r"x \(shape \(2, 6, 3, 3\)\) has 6 channels, which do not split into 4 equal groups"),
    (lambda x, g, b: L.groupnorm_forward(x, g, b, 0), ShapeError, "groups must be ≥ 1"),
    (lambda x, g, b: L.groupnorm_forward(x[:, :, 0], g, b, 2), ShapeError, r"must be 4-D \(N, C, H, W\)"),
    (lambda x, g, b: L.groupnorm_forward(x, g[:3], b, 2), ShapeError, r"gamma has shape \(3,\)"),
    (lambda x, g, b: L.groupnorm_forward(x[:, :, :1, :1], g, b, 6), ValueInputError,
     r"x \(shape \(2, 6, 1, 1\)\) leaves one value per group of group norm: it needs more than one value"),
    (lambda x, g, b: L.groupnorm_forward(x, g, b, 2, {"eps": -1}), ValueInputError, "eps must be > 0"),
])
def test_groupnorm_refuses_bad_input(call, error, message):
    rng = np.random.default_rng(0)
    x, g, b = rng.normal(size=(2, 6, 3, 3)), np.ones(6), np.zeros(6)
    with pytest.raises(error, match=message):
        call(x, g, b)


# ------------------------------------------------------------------------------------------- DropConnect

def _dc_setup(seed=0, n=200, d=30, m=20):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), rng.normal(size=(d, m)), rng.normal(size=m)


def test_dropconnect_eval_is_the_plain_linear_layer():
    x, w, b = _dc_setup()
    out, cache = L.dropconnect_forward(x, w, b, {"p": 0.7, "mode": "test", "seed": 3})
    assert np.array_equal(out, L.affine_forward(x, w, b)[0])
    net_dc = Network((30,), [DropConnect(20, 0.7), Activation("relu"), Linear(4)], dtype=np.float64, seed=4)
    net_lin = Network((30,), [Linear(20), Activation("relu"), Linear(4)], dtype=np.float64, seed=4)
    assert list(net_dc.params) == list(net_lin.params) == ["fc1.w", "fc1.b", "fc2.w", "fc2.b"]
    net_lin.load_state_dict(net_dc.state_dict())
    assert np.array_equal(net_dc.forward(x, "eval"), net_lin.forward(x, "eval"))
    dx, dw, db = L.dropconnect_backward(np.ones_like(out), cache)
    assert np.allclose(dw, x.T @ np.ones_like(out)) and np.allclose(dx, np.ones_like(out) @ w.T)
    assert np.array_equal(db, np.full(20, 200.0))


@pytest.mark.parametrize("args, message", [
    ((np.ones((2, 3)), np.ones((4, 2)), np.ones(2)),
     r"x has 3 features per sample \(shape \(2, 3\)\) but w expects 4 \(shape \(4, 2\)\)"),
    ((np.ones((2, 3)), np.ones((3, 2)), np.ones(3)),
     r"b has shape \(3,\) but w \(shape \(3, 2\)\) needs one bias per column, shape \(2,\)"),
    ((np.ones((2, 3)), np.ones(3), np.ones(2)), r"w must be 2-D \(D, M\), got shape \(3,\)"),
])
def test_dropconnect_refuses_what_the_affine_layer_refuses(args, message):
    with pytest.raises(ShapeError, match="affine_forward: " + message):
        L.affine_forward(*args)
    for mode in ("train", "test"):
        with pytest.raises(ShapeError, match="dropconnect_forward: " + message):
            L.dropconnect_forward(*args, {"p": 0.5, "mode": mode, "seed": 0})
    # DropConnect's input is (N, D) only; the affine layer flattens (N, d1, ..., dk)
    with pytest.raises(ShapeError, match=r"dropconnect_forward: x must be 2-D \(N, D\), got shape \(2, 3, 1\)"):
        L.dropconnect_forward(np.ones((2, 3, 1)), np.ones((3, 2)), np.ones(2), {"p": 0.5})
    assert L.affine_forward(np.ones((2, 3, 1)), np.ones((3, 2)), np.ones(2))[0].shape == (2, 2)
    # an empty batch is a batch: (0, M) out
    for mode in ("train", "test"):
        out, _ = L.dropconnect_forward(np.ones((0, 3)), np.ones((3, 2)), np.ones(2), {"p": 0.5, "mode": mode})
        assert out.shape == (0, 2)


@pytest.mark.parametrize("p", [0.0, 0.2, 0.5, 0.9])
def test_dropconnect_train_mask_statistics_and_inverted_scaling(p):
    x, w, b = _dc_setup(1)
    out, (_, wm, mask) = L.dropconnect_forward(x, w, b, {"p": p, "mode": "train", "seed": 11})
    assert mask.shape == w.shape and set(np.unique(mask)) <= {0.0, 1.0 / (1.0 - p)}
    assert np.allclose(out, x @ (w * mask) + b) and np.array_equal(wm, w * mask)
    big = L.dropconnect_mask((400, 500), p, 7)
    dropped = float(np.mean(big == 0))
    assert abs(dropped - p) < 4 * np.sqrt(p * (1 - p) / big.size) + 1e-12     # 4 standard errors
    assert abs(big.mean() - 1.0) < 0.02 * (1 + 3 * p)                          # inverted: E[mask] = 1
    # the same seed gives the same mask, another seed another one (p > 0), whatever the dtype
    assert np.array_equal(L.dropconnect_mask(w.shape, p, 11), mask)
    assert np.array_equal(L.dropconnect_mask(w.shape, p, 11, np.float32), mask.astype(np.float32))
    if p > 0:
        assert not np.array_equal(L.dropconnect_mask(w.shape, p, 12), mask)


def test_dropconnect_expected_output_is_the_eval_output():
    x, w, b = _dc_setup(2, n=5, d=8, m=3)
    mean = np.mean([L.dropconnect_forward(x, w, b, {"p": 0.4, "seed": s})[0] for s in range(4000)], axis=0)
    eval_out = x @ w + b
    assert np.allclose(mean, eval_out, atol=0.12 * np.abs(eval_out).max())


def test_dropconnect_gradients_with_a_fixed_mask():
    x, w, b = _dc_setup(3, n=6, d=5, m=4)
    mask = L.dropconnect_mask(w.shape, 0.5, 9)
    assert 0 < np.count_nonzero(mask) < mask.size
    prm = {"p": 0.5, "mode": "train", "mask": mask}
    dout = np.random.default_rng(4).normal(size=(6, 4))
    out, cache = L.dropconnect_forward(x, w, b, prm)
    assert np.allclose(out, x @ (w * mask) + b)
    dx, dw, db = L.dropconnect_backward(dout, cache)

    def f(_):
        return float(np.sum(L.dropconnect_forward(x, w, b, prm)[0] * dout))
    _check_grads(f, [x, w, b], [dx, dw, db])
    assert np.all(dw[mask == 0] == 0)               # a dropped weight gets no gradient


def test_dropconnect_network_gradients_with_its_seeded_mask():
    rng = np.random.default_rng(6)
    net = Network((5,), [DropConnect(6, 0.3), Activation("tanh"), Linear(3)], reg=0.01, dtype=np.float64, seed=3)
    x, y = rng.normal(size=(7, 5)), rng.integers(0, 3, 7)
    loss, grads = net.loss(x, y, "train", seed=21)          # the seed fixes the mask
    assert loss != net.loss(x, y, "train", seed=22)[0]
    for k, arr in net.params.items():
        num = numerical_gradient(lambda _: net.loss(x, y, "train", seed=21)[0], arr)
        assert np.allclose(num, grads[k], rtol=1e-6, atol=1e-8), k


@pytest.mark.parametrize("make, message", [
    (lambda: DropConnect(8, 1.0), "DropConnect: p must be < 1"),
    (lambda: DropConnect(8, -0.1), "DropConnect: p must be ≥ 0"),
    (lambda: DropConnect(0, 0.5), "DropConnect: units must be ≥ 1"),
    (lambda: GroupNorm(0), "GroupNorm: groups must be ≥ 1"),
    (lambda: InstanceNorm(eps=0), "InstanceNorm: eps must be ≥ 1e-12"),
    (lambda: L.dropconnect_forward(np.ones((2, 3)), np.ones((3, 2)), np.ones(2), {"p": 1.5}), "p .* must be < 1"),
    (lambda: L.dropconnect_mask((2, 2), -0.5, 0), r"p .* must be ≥ 0"),
])
def test_bad_settings_are_our_errors(make, message):
    with pytest.raises(ValueInputError, match=message):
        make()


@pytest.mark.parametrize("layers, message", [
    ([GroupNorm(3)], r"layer 1 \(GroupNorm G=3\): its input \(4, 6, 6\) has 4 channels, which do not split into 3"),
    ([Flatten(), GroupNorm(1)], r"layer 2 \(GroupNorm G=1\): its input has shape \(144,\); GroupNorm needs an image"),
    ([Flatten(), InstanceNorm()], r"layer 2 \(InstanceNorm\): its input has shape \(144,\); InstanceNorm needs"),
    ([MaxPool(6, 6), InstanceNorm()], r"layer 2 \(InstanceNorm\): its input \(4, 1, 1\) leaves one value per group"),
    ([DropConnect(8)], r"layer 1 \(DropConnect 8 p=0.5\): its input has shape \(4, 6, 6\), an image"),
])
def test_impossible_stacks_are_shape_errors_naming_the_layer(layers, message):
    with pytest.raises(ShapeError, match=message):
        Network((4, 6, 6), [*layers, Flatten(), Linear(3)])


def test_records_round_trip_and_are_offered_by_the_builder():
    for spec in (GroupNorm(4, eps=1e-4), InstanceNorm(), DropConnect(64, 0.25, init="xavier")):
        assert LAYER_KINDS[spec.kind] is type(spec) and layer_from_dict(layer_to_dict(spec)) == spec
    assert DropConnect(10, 0.3).label() == "DropConnect 10 p=0.3" and GroupNorm(2).label() == "GroupNorm G=2"


# ------------------------------------------------------------------------------------------- networks

def _digits(n=600):
    X, y = D.load_digits()
    X = (X[:n] - 8.0) / 8.0
    return D.train_val_split(X, y[:n], 0.2, seed=0)


@pytest.mark.parametrize("layer", [GroupNorm(4), InstanceNorm(), None], ids=["groupnorm", "instancenorm",
                                                                             "dropconnect"])
def test_a_digits_cnn_with_the_layer_trains(layer):
    norm = [layer] if layer is not None else []
    head = [DropConnect(32, 0.3), Activation("relu")] if layer is None else []
    net = Network((1, 8, 8), [Conv2d(8, 3, pad=1), *norm, Activation("relu"), MaxPool(2, 2), Flatten(), *head,
                              Linear(10)], seed=0)
    data = _digits()
    before = net.evaluate(*data[:2])[0]
    tr = Trainer(net, data, "Adam", lr=0.01, batch_size=32, epochs=6, seed=0)
    tr.run()
    after, acc = net.evaluate(*data[:2])
    assert after < 0.5 * before and acc > 0.85, (before, after, acc)


def test_weights_round_trip(tmp_path):
    net = Network((2, 6, 6), [Conv2d(4, 3, pad=1), GroupNorm(2), InstanceNorm(), Activation("relu"), Flatten(),
                              DropConnect(12, 0.4), Linear(3)], seed=5)
    rng = np.random.default_rng(0)
    for v in net.params.values():
        v[...] = rng.normal(size=v.shape)
    net.save(tmp_path / "w.npz")
    back = Network.load(tmp_path / "w.npz")
    assert back.specs == net.specs
    for k, v in net.state_dict().items():
        assert np.array_equal(back.state_dict()[k], v), k
    x = rng.normal(size=(3, 2, 6, 6))
    assert np.array_equal(back.forward(x), net.forward(x))
    assert np.array_equal(back.forward(x, "train", seed=4), net.forward(x, "train", seed=4))


# ------------------------------------------------------------------------------------------- graphs

def test_graph_expansion_equals_the_network_and_shows_the_mask():
    rng = np.random.default_rng(1)
    net = Network((4, 4, 4), [GroupNorm(2), InstanceNorm(), Activation("relu"), Flatten(), DropConnect(6, 0.5),
                              Activation("tanh"), Linear(3)], reg=0.01, dtype=np.float64, seed=2)
    x, y = rng.normal(size=(4, 4, 4, 4)), rng.integers(0, 3, 4)
    g = net.to_graph(x, y, "train", seed=7)
    nodes = {n.id: n for n in g.nodes}
    assert nodes["gn1"].op == "groupnorm" and nodes["gn1"].attrs["groups"] == 2
    assert nodes["in1"].op == "instancenorm"
    # the DropConnect mask is a visible constant multiplied into the weights before the affine map
    mask = nodes["fc1_mask"]
    assert mask.kind == "const"
    layer = net.layers[4]
    assert np.array_equal(mask.value, layer.spec.mask(layer.in_shape, 7 + layer.index))
    assert nodes["fc1_w_dropped"].op == "mul" and nodes["fc1"].op == "affine"
    assert {e.src for e in g.edges if e.dst == "fc1_w_dropped"} == {"fc1_w", "fc1_mask"}
    result = run(g)
    loss, grads = net.loss(x, y, "train", seed=7)
    assert abs(float(result.value) - loss) < 1e-10
    for k in net.params:
        assert np.allclose(result.grads[Network.graph_name(k)], grads[k], rtol=1e-8, atol=1e-10), k
    ev = net.to_graph(x, y, "eval")
    assert "fc1_mask" not in {n.id for n in ev.nodes}
    assert abs(float(run(ev).value) - net.loss(x, y, "eval")[0]) < 1e-10


# ------------------------------------------------------------------------------------------- PyTorch export

def _export_setup():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 2, 6, 6)), rng.integers(0, 4, 40)
    net = Network((2, 6, 6), [Conv2d(4, 3, pad=1), GroupNorm(2), Activation("relu"), InstanceNorm(eps=1e-4),
                              Flatten(), DropConnect(16, 0.3), Activation("relu"), Linear(4)], seed=1,
                  dtype=np.float64)
    for k in ("gn1.gamma", "gn1.beta", "in1.gamma", "in1.beta"):
        net.params[k] += rng.normal(scale=0.3, size=net.params[k].shape)   # not the initial ones and zeros
    tr = Trainer(net, (X, y, None, None), "Adam", lr=0.01, batch_size=16, epochs=1, seed=0)
    return net, tr, (X, y, None, None)


def test_export_script_names_the_modules_and_defines_dropconnect_once():
    net, tr, _ = _export_setup()
    net2 = Network(net.input_shape, [*net.specs[:-1], DropConnect(8, 0.1), Linear(4)], seed=1)
    for n in (net, net2):
        src = export_torch_script(n, tr)
        compile(src, "exported.py", "exec")
        assert "nn.GroupNorm(2, 4, eps=1e-05)" in src and "nn.InstanceNorm2d(4, eps=0.0001, affine=True)" in src
        assert src.count("class DropConnect(nn.Linear):") == 1 and "DropConnect(144, 16, p=0.3)" in src


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed")
def test_exported_model_reproduces_our_forward(tmp_path):
    import torch
    net, tr, data = _export_setup()
    script = write_torch_export(tmp_path, net, tr, data)
    ns = runpy.run_path(str(script), run_name="exported")      # builds the model and loads our weights
    model = ns["model"]
    x = data[0][:10]
    model.eval()
    with torch.no_grad():
        theirs = model(torch.tensor(x)).numpy()
    assert np.allclose(theirs, net.forward(x, "eval"), rtol=1e-10, atol=1e-12)
    # train mode: DropConnect with the same mask in torch gives our train-mode output
    model.train()
    dc = model[5]
    layer = net.layers[5]
    mask = layer.spec.mask(layer.in_shape, 3 + layer.index)
    with torch.no_grad():
        masked = torch.nn.functional.linear(model[:5](torch.tensor(x)), dc.weight * torch.tensor(mask.T), dc.bias)
        theirs = model[6:](masked).numpy()
    assert np.allclose(theirs, net.forward(x, "train", seed=3), rtol=1e-10, atol=1e-12)
    # and the script's own DropConnect drops about p of the weights, scaled by 1/(1-p), only in training
    torch.manual_seed(0)
    w = dc.weight
    seen = []
    dc.weight = torch.nn.Parameter(torch.ones_like(w))
    with torch.no_grad():
        out = dc(torch.eye(144, dtype=torch.float64)) - dc.bias      # row i: the masked weights of input i
        seen = out.numpy()
        dc.eval()
        assert np.array_equal((dc(torch.eye(144, dtype=torch.float64)) - dc.bias).numpy(), np.ones((144, 16)))
    assert set(np.unique(np.round(seen, 12))) == {0.0, round(1 / 0.7, 12)}
    assert abs(np.mean(seen == 0) - 0.3) < 0.05


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed")
def test_exported_script_runs_and_its_first_loss_is_ours(tmp_path):
    net, tr, data = _export_setup()
    script = write_torch_export(tmp_path, net, tr, data)
    # DropConnect masks come from torch's RNG there: compare with p = 0 on both sides
    text = script.read_text().replace("DropConnect(144, 16, p=0.3)", "DropConnect(144, 16, p=0.0)")
    script.write_text(text)
    nodrop = Network(net.input_shape, [s if not isinstance(s, DropConnect) else DropConnect(16, 0.0)
                                       for s in net.specs], seed=1, dtype=np.float64)
    nodrop.load_state_dict(net.state_dict())
    idx = np.random.default_rng([tr.seed, 2]).permutation(len(tr.X))[:tr.batch_size]
    ours0 = nodrop.loss(tr.X[idx], tr.y[idx], "train")[0]
    r = subprocess.run([sys.executable, str(script), "--steps", "2"], capture_output=True, text=True, timeout=120,
                       check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    first = r.stdout.splitlines()[0]
    assert first.startswith("initial_loss ") and float(first.split()[1]) == pytest.approx(ours0, rel=1e-9)
