"""PyTorch export: the script always compiles; with torch installed it runs, and its first losses equal ours."""
from __future__ import annotations

import importlib.util
import subprocess
import sys

import numpy as np
import pytest

from simulator.data import datasets as D
from simulator.functional import schedules as S
from simulator.core.errors import ShapeError, ValueInputError
from simulator.nn.export_torch import _schedule_code, export_torch_script, write_torch_export
from simulator.nn.network import (Activation, AvgPool, BatchNorm, Conv2d, Dropout, Flatten, LayerNorm, Linear, MaxPool,
                                  Network)
from simulator.nn.trainer import Trainer

HAS_TORCH = importlib.util.find_spec("torch") is not None


def mlp_setup(loss="softmax", optimizer="Adam", schedule=None, reg=0.0, reg_kind="l2", **kw):
    X, y = D.spiral(150, 3, seed=1)
    data = D.train_val_split(X, y, 0.2, seed=0)
    net = Network((2,), [Linear(16), BatchNorm(), Activation("tanh"), Linear(8), LayerNorm(), Activation("gelu"),
                         Linear(3)], loss=loss, reg=reg, reg_kind=reg_kind, dtype=np.float64, seed=2)
    tr = Trainer(net, data, optimizer, schedule=schedule, batch_size=32, epochs=2, seed=3, **kw)
    return net, tr, data


def cnn_setup():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 1, 8, 8)), rng.integers(0, 10, 40)
    net = Network((1, 8, 8), [Conv2d(4, 3, pad=1), BatchNorm(), Activation("relu"), MaxPool(), Conv2d(4, 3),
                              AvgPool(2), Flatten(), Dropout(0.25), Linear(10)], reg=1e-3, seed=1)
    tr = Trainer(net, (X, y, None, None), "Momentum", lr=0.05, batch_size=16, epochs=1, seed=0)
    return net, tr, (X, y, None, None)


def first_batch(tr):
    idx = np.random.default_rng([tr.seed, 2]).permutation(len(tr.X))[:tr.batch_size]
    return tr.X[idx], tr.y[idx]


@pytest.mark.parametrize("setup", [mlp_setup, cnn_setup])
def test_script_compiles(setup):
    net, tr, _ = setup()
    src = export_torch_script(net, tr)
    compile(src, "exported.py", "exec")
    assert "nn.Sequential(" in src and "torch.optim." in src


@pytest.mark.parametrize("schedule", [S.Constant(0.1), S.StepDecay(0.1, 3, 0.5), S.CosineDecay(0.1, 7, 0.01),
                                      S.LinearDecay(0.1, 5, 0.02), S.InverseSqrt(0.1, 4.0),
                                      S.Warmup(S.CosineDecay(0.1, 6), 3, 0.1), S.Warmup(S.Constant(0.2), 0)])
def test_schedule_code_is_the_same_formula(schedule):
    ns: dict = {}
    exec("import math\n" + _schedule_code(schedule), ns)
    assert np.allclose([ns["lr_at"](t) for t in range(20)], schedule.curve(20), rtol=1e-14, atol=0)


def test_bad_config():
    net, _, _ = mlp_setup()
    with pytest.raises(ValueInputError):
        export_torch_script(net, {"optimizer": "LBFGS"})
    with pytest.raises(ValueInputError):
        export_torch_script(net, 3)


def _run(script, steps):
    r = subprocess.run([sys.executable, str(script), "--steps", str(steps)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stdout.splitlines()
    assert lines[0].startswith("initial_loss ")
    return float(lines[0].split()[1]), [float(l.split()[3]) for l in lines[1:] if l.startswith("step ")]


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed")
@pytest.mark.parametrize("loss, optimizer, schedule, reg_kind, kw", [
    ("softmax", "Adam", None, "l2", {"lr": 0.01}),
    ("svm", "AdamW", S.Warmup(S.CosineDecay(0.02, 10), 2, 0.5), "l1", {"weight_decay": 0.1}),
    ("mse", "Nesterov", S.StepDecay(0.05, 2, 0.5), "l2", {}),
    ("softmax", "RMSProp", None, "l2", {"lr": 0.01, "centered": True, "momentum": 0.5}),
])
def test_exported_mlp_matches_our_losses(tmp_path, loss, optimizer, schedule, reg_kind, kw):
    net, tr, data = mlp_setup(loss, optimizer, schedule, reg=0.01, reg_kind=reg_kind, **kw)
    net.params["fc1.w"] *= 1.5  # weights that are not the seed's: the script must carry the current ones
    net.params["ln1.gamma"] += np.linspace(-0.2, 0.2, 8)
    xb, yb = first_batch(tr)
    ours0 = net.loss(xb, yb, "train", seed=0)[0]
    script = write_torch_export(tmp_path, net, tr, data)
    initial, steps = _run(script, 4)
    assert initial == pytest.approx(ours0, rel=1e-5, abs=1e-7)
    ours = [tr.step().loss for _ in range(4)]  # no dropout: the same batches give the same losses, step by step
    assert np.allclose(steps, ours, rtol=1e-5, atol=1e-6), (steps, ours)


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed")
def test_exported_cnn_initial_loss(tmp_path, monkeypatch):
    monkeypatch.setattr("simulator.nn.export_torch.EMBED_LIMIT", 10)  # large-network path: weights in the .npz
    net, tr, data = cnn_setup()
    xb, yb = first_batch(tr)
    # dropout masks differ between us and torch: compare with the dropout layer at p = 0 on both sides
    script = write_torch_export(tmp_path, net, tr, data)
    text = script.read_text().replace("nn.Dropout(p=0.25)", "nn.Dropout(p=0.0)")
    assert "INITIAL = {" not in text
    script.write_text(text)
    nodrop = Network(net.input_shape, [s if not isinstance(s, Dropout) else Dropout(0.0) for s in net.specs],
                     reg=net.reg, seed=1)
    ours0 = nodrop.loss(xb, yb, "train")[0]
    initial, steps = _run(script, 2)
    assert initial == pytest.approx(ours0, rel=1e-5)
    assert len(steps) == 2 and all(np.isfinite(steps))


@pytest.mark.parametrize("change, error, message", [
    ({"data": "abc"}, ValueInputError, "data must be a tuple"),
    ({"data": "other shape"}, ShapeError, r"x has shape \(10, 5\) but the network takes \(N, 2\)"),
    ({"data": "nan"}, ValueInputError, "NaN or infinity"),
    ({"data": "labels"}, ShapeError, "one class label in 0..2"),
    ({"hyper": {"lr": float("nan")}}, ValueInputError, "finite"),
    ({"hyper": {"lr": 0.1, "betas": (0.9, 2.0)}}, ValueInputError, "beta"),
    ({"schedule": "cosine"}, ValueInputError, "the schedule must be a Schedule"),
    ({"batch_size": 0}, ValueInputError, "batch size must be ≥ 1"),
])
def test_bad_exports_are_refused_before_anything_is_written(tmp_path, change, error, message):
    from simulator.nn.export_torch import write_torch_export
    from simulator.nn.network import Activation, Linear, Network
    net = Network((2,), [Linear(4), Activation("relu"), Linear(3)], seed=0)
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(10, 2)), np.arange(10) % 3
    data = {"abc": "abc", "other shape": (np.ones((10, 5)), y, None, None),
            "nan": (np.full((10, 2), np.nan), y, None, None), "labels": (X, y + 5, None, None),
            None: (X, y, X[:4], y[:4])}[change.get("data")]
    cfg = {"optimizer": "Adam", "hyperparameters": change.get("hyper", {"lr": 0.01}),
           "schedule": change.get("schedule"), "batch_size": change.get("batch_size", 4), "epochs": 1, "seed": 0}
    with pytest.raises(error, match=message):
        write_torch_export(tmp_path / "out", net, cfg, data)
    assert not (tmp_path / "out").exists()
