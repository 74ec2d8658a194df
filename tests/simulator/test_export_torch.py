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


# ---------------------------------------------------------------------------------------------------- issue 13

def tricks_setup(mix="none", eps=0.0, loss="softmax", **aug):
    """An image MLP in float64 on 60 digits, trained with label smoothing and/or mixing (transforms off)."""
    X, y = D.load_digits()
    X, y = X[:60] / 16.0, y[:60]
    data = D.train_val_split(X, y, 0.25, seed=0)
    net = Network((1, 8, 8), [Flatten(), Linear(12), Activation("tanh"), Linear(10)], loss=loss,
                  label_smoothing=eps, dtype=np.float64, seed=4)
    settings = D.AugmentSettings(shift_on=False, rotate_on=False, mix=mix, **aug)
    tr = Trainer(net, data, "SGD", lr=0.2, batch_size=16, epochs=2, seed=6,
                 augment=settings if mix != "none" or aug else None)
    return net, tr, data


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed")
@pytest.mark.parametrize("mix, eps, loss", [("none", 0.1, "softmax"), ("mixup", 0.0, "softmax"),
                                            ("cutmix", 0.2, "softmax"), ("mixup", 0.0, "mse")])
def test_exported_script_reproduces_smoothing_and_mixing(tmp_path, mix, eps, loss):
    net, tr, data = tricks_setup(mix, eps, loss)
    script = write_torch_export(tmp_path, net, tr, data)
    text = script.read_text()
    assert (f"label_smoothing={eps!r}" in text) == bool(eps)
    assert (f"MIX, ALPHA, CLASSES = {mix!r}" in text) == (mix != "none")
    initial, steps = _run(script, 4)
    ours = [tr.step().loss for _ in range(4)]   # the first loss is before any update: the script's initial loss
    assert initial == pytest.approx(ours[0], rel=1e-9)
    assert np.allclose(steps, ours, rtol=0, atol=1e-6), (steps, ours)   # the script prints 6 decimals


def test_export_says_what_it_leaves_out_and_refuses_svm_mixing():
    net, tr, _ = tricks_setup("cutmix", 0.0, flip_on=True)
    src = export_torch_script(net, tr)
    compile(src, "exported.py", "exec")
    assert "Not exported: the studio's label-preserving augmentation (flip)" in src
    assert "Training batches are mixed (CutMix, alpha = 1.0)" in src
    svm = Network((1, 8, 8), [Flatten(), Linear(10)], loss="svm")
    with pytest.raises(ValueInputError, match="multiclass SVM"):
        export_torch_script(svm, {**tr.config(), "augment": D.AugmentSettings(mix="mixup")})
    with pytest.raises(ValueInputError, match="AugmentSettings or None"):
        export_torch_script(net, {**tr.config(), "augment": "mixup"})


# ---------------------------------------------------------------------------------------------------- frozen layers

@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed")
@pytest.mark.parametrize("optimizer, reg_kind, kw", [("Adam", "l2", {"lr": 0.01}),
                                                     ("AdamW", "l1", {"lr": 0.02, "weight_decay": 0.1})])
def test_exported_frozen_layers_stay_frozen_and_the_losses_equal_ours(tmp_path, optimizer, reg_kind, kw):
    """fc1 and bn1 frozen (bn1 with moved running statistics: it runs in eval mode in training), the rest trains;
    the regulariser counts the frozen weight as a constant, as ours does."""
    net, tr, data = mlp_setup("softmax", optimizer, None, reg=0.01, reg_kind=reg_kind, **kw)
    net.buffers()[0][...] = np.linspace(-0.3, 0.3, 16)     # bn1.running_mean
    net.buffers()[1][...] = np.linspace(0.5, 1.5, 16)      # bn1.running_var
    net.freeze(["fc1", "bn1"])
    tr = Trainer(net, data, optimizer, batch_size=32, epochs=2, seed=3, **kw)   # made after freezing
    before = net.state_dict()
    script = write_torch_export(tmp_path, net, tr, data)
    text = script.read_text()
    assert "FROZEN = [0, 1]" in text and "FIXED = [1]" in text and "requires_grad_(False)" in text
    assert "[p for p in model.parameters() if p.requires_grad]" in text
    initial, steps = _run(script, 5)
    ours = [tr.step().loss for _ in range(5)]
    assert initial == pytest.approx(ours[0], rel=1e-9)
    assert np.allclose(steps, ours, rtol=0, atol=2e-6), (steps, ours)   # the script prints 6 decimals
    for k in ("fc1.w", "fc1.b", "bn1.gamma", "bn1.beta", "bn1.running_mean", "bn1.running_var"):
        assert net.state_dict()[k].tobytes() == before[k].tobytes(), k
