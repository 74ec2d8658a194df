"""Export a Network and its training set-up as a standalone PyTorch script, the learner's next step after the studio.

The script builds the same stack as an nn.Sequential (one module per layer spec), loads the network's current
weights (embedded as lists when small, else read from the .npz beside the script), reads the data from that .npz
(X_train, y_train, X_val, y_val), and trains with torch.optim's version of our optimizer (same hyperparameters) and,
with a schedule, a LambdaLR computing the same rate formula. Mini-batches come in the same order as our Trainer's
(numpy's Generator seeded the same way), so losses can be compared step by step; dropout masks differ (torch's RNG).
``python script.py --steps K`` stops after K updates; the first line it prints is the loss of the first batch before
any update (train mode), which equals Network.loss on that batch.

Label smoothing is cross_entropy's ``label_smoothing``. Mixup and CutMix (a Trainer with an AugmentSettings that
mixes) are written out as a ``mix(xb, yb)`` step on each training batch, drawing lam, the partners and the boxes
from numpy's Generator seeded as the Trainer's augmentation ([seed, 3]), in the same order, so the mixed batches and
their soft targets are ours. The label-preserving transforms (shift, rotation, flip, ...) are not exported (the
script says so); with them on, our batches draw from that Generator first and the two runs differ.

Frozen layers (Network.freeze) get ``requires_grad_(False)``, the optimizer is built from the parameters that still
require grad, and a frozen layer with buffers (batch norm) is put in eval mode after every ``model.train()``, as the
studio runs it. The regulariser sums over every weight as ours does: a frozen weight adds a constant (no gradient),
so the losses printed equal ours step by step.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from simulator.core.errors import ShapeError, ValueInputError
from simulator.core.params import check_int
from simulator.core.files import atomic_write
from simulator.data.datasets import AugmentSettings
from simulator.functional import schedules as S
from simulator.functional.optim import make_optimizer
from simulator.nn.network import Network

__all__ = ["TORCH_OPTIMIZERS", "export_torch_script", "write_torch_export"]

EMBED_LIMIT = 20_000  # parameters: up to this many are written into the script as lists

TORCH_OPTIMIZERS = {"SGD": "SGD", "Momentum": "SGD", "Nesterov": "SGD", "AdaGrad": "Adagrad", "RMSProp": "RMSprop",
                    "Adam": "Adam", "AdamW": "AdamW"}


def _module(layer) -> str:
    """The layer's nn module, from its record (simulator/nn/layers.py)."""
    return layer.spec.torch_module(layer.in_shape)


def _schedule_code(schedule: Any) -> str:
    """Python source defining lr_at(t): the rate of update t (0-based), the same formula as the schedule's."""
    lines: list[str] = []
    counter = [0]

    def emit(s: Any) -> str:
        name = f"_rate{counter[0]}"
        counter[0] += 1
        if isinstance(s, S.Constant):
            body = [f"    return {s.base_lr!r}"]
        elif isinstance(s, S.StepDecay):
            body = [f"    return {s.base_lr!r} * {s.gamma!r} ** (t // {s.step_size})"]
        elif isinstance(s, S.CosineDecay):
            body = [f"    tc = min(t, {s.total_steps})",
                    f"    return {s.eta_min!r} + ({s.base_lr!r} - {s.eta_min!r}) / 2 * "
                    f"(1 + math.cos(math.pi * tc / {s.total_steps}))"]
        elif isinstance(s, S.LinearDecay):
            body = [f"    tc = min(t, {s.total_steps})",
                    f"    return {s.base_lr!r} + ({s.end_lr!r} - {s.base_lr!r}) * (tc / {s.total_steps})"]
        elif isinstance(s, S.InverseSqrt):
            body = [f"    return {s.base_lr!r} / math.sqrt(1.0 + t / {s.timescale!r})"]
        elif isinstance(s, S.Warmup):
            inner = emit(s.inner)
            w, f = s.warmup_steps, s.start_factor
            body = [f"    if t < {w}:", f"        return {inner}(0) * ({f!r} + (1.0 - {f!r}) * (t / {w}))",
                    f"    return {inner}(t - {w})"]
        else:
            raise ValueInputError(f"cannot export schedule {s!r}")
        lines.extend([f"def {name}(t):", *body, ""])
        return name

    top = emit(schedule)
    lines.extend(["def lr_at(t):", f"    return {top}(t)", ""])
    return "\n".join(lines)


def _config(trainer_config: Any) -> dict[str, Any]:
    if hasattr(trainer_config, "config"):
        trainer_config = trainer_config.config()
    if not isinstance(trainer_config, Mapping):
        raise ValueInputError("trainer_config must be a Trainer or its config() dict")
    cfg = {"optimizer": "Adam", "hyperparameters": {}, "schedule": None, "batch_size": 64, "epochs": 10, "seed": 0,
           "augment": None}
    cfg.update(trainer_config)
    if cfg["optimizer"] not in TORCH_OPTIMIZERS:
        raise ValueInputError(f"unknown optimizer {cfg['optimizer']!r}")
    if not isinstance(cfg["hyperparameters"], Mapping):
        raise ValueInputError("the hyperparameters must be a mapping such as {'lr': 0.01}")
    # the optimizer's own declarations check every value (a NaN rate, a beta of 2, an unknown name)
    make_optimizer(cfg["optimizer"], [np.zeros(1)], **cfg["hyperparameters"])
    if cfg["schedule"] is not None and not isinstance(cfg["schedule"], S.Schedule):
        raise ValueInputError(f"the schedule must be a Schedule (simulator.functional.schedules) or None, "
                              f"got {cfg['schedule']!r}")
    cfg["batch_size"] = check_int("batch size", cfg["batch_size"], 1, 1 << 20)
    cfg["epochs"] = check_int("epochs", cfg["epochs"], 1, 1_000_000)
    cfg["seed"] = check_int("seed", cfg["seed"], 0, 2**32 - 1)
    if cfg["augment"] is not None and not isinstance(cfg["augment"], AugmentSettings):
        raise ValueInputError(f"the augmentation must be AugmentSettings or None, got {cfg['augment']!r}")
    return cfg


def _mix_code(augment: AugmentSettings | None, classes: int, seed: int) -> tuple[str, str]:
    """(a note for the docstring, Python source defining MIX and mix(xb, yb) -> (xb, soft targets)): mixup or
    CutMix with the Trainer's draws (simulator.data.datasets.mixup / cutmix: lam ~ Beta(a, a) per image, then the
    partner permutation, then CutMix's box centres)."""
    if augment is None:
        return "", "MIX = None\n"
    dropped = [s for s in augment.pipeline() if s not in ("mixup", "CutMix")]
    note = (f"\nNot exported: the studio's label-preserving augmentation ({', '.join(dropped)}); add torchvision "
            f"transforms for it.\n" if dropped else "")
    if not augment.mixes_labels:
        return note, "MIX = None\n"
    note += (f"Training batches are mixed ({augment.pipeline()[-1]}, alpha = {augment.alpha!r}) and trained on soft "
             f"labels.\n")
    code = f'''MIX, ALPHA, CLASSES = {augment.mix!r}, {augment.alpha!r}, {classes}
mix_rng = np.random.default_rng([{seed}, 3])  # the studio Trainer's augmentation draws


def mix(xb, yb):
    """Mix each image and its one-hot label with a partner from the batch: lam ~ Beta(ALPHA, ALPHA) per image.
    mixup: x = lam x + (1 - lam) x[partner]; CutMix: a box of about (1 - lam) of the image comes from the partner,
    and the labels mix by the pasted area's share. Returns (images, soft targets (B, CLASSES))."""
    B = len(xb)
    t = F.one_hot(yb, CLASSES).to(DTYPE)
    lam = mix_rng.beta(ALPHA, ALPHA, B)
    perm = torch.as_tensor(mix_rng.permutation(B))
    if MIX == "mixup":
        share = torch.tensor(1.0 - lam, dtype=DTYPE)
        s = share[:, None, None, None]
        xb = (1.0 - s) * xb + s * xb[perm]
    else:
        H, W = xb.shape[2], xb.shape[3]
        out = xb.clone()
        share = torch.zeros(B, dtype=DTYPE)
        for i in range(B):
            h, w = int(round(H * math.sqrt(1 - lam[i]))), int(round(W * math.sqrt(1 - lam[i])))
            cy, cx = int(mix_rng.integers(0, H)), int(mix_rng.integers(0, W))
            y0, y1 = max(cy - h // 2, 0), min(cy - h // 2 + h, H)
            x0, x1 = max(cx - w // 2, 0), min(cx - w // 2 + w, W)
            out[i, :, y0:y1, x0:x1] = xb[perm[i], :, y0:y1, x0:x1]
            share[i] = (y1 - y0) * (x1 - x0) / (H * W)
        xb = out
    return xb, (1.0 - share)[:, None] * t + share[:, None] * t[perm]
'''
    return note, code


def _export_data(network: Network, data: Any) -> dict[str, np.ndarray]:
    """(X_train, y_train, X_val, y_val) checked against the network: inputs of its shape with finite values, one
    integer class label (or, for MSE, target row) per sample; X_val and y_val may be None."""
    if not isinstance(data, (tuple, list)) or len(data) != 4:
        raise ValueInputError("data must be a tuple (X_train, y_train, X_val, y_val); X_val and y_val may be None")
    X, y, Xv, yv = data
    arrays: dict[str, np.ndarray] = {}
    for split, xs, ys in (("train", X, y), ("val", Xv, yv)):
        if xs is None and ys is None and split == "val":
            continue
        if xs is None or ys is None:
            raise ValueInputError(f"X_{split} and y_{split} must both be given")
        xs = network.check_input(xs)
        ys = np.asarray(ys)
        if ys.shape != (len(xs),) or ys.dtype.kind not in "biu" or ys.min() < 0 or ys.max() >= network.num_classes:
            raise ShapeError(f"y_{split} must hold one class label in 0..{network.num_classes - 1} per sample of "
                             f"X_{split} ({len(xs)} samples), got shape {ys.shape} of {ys.dtype}")
        arrays[f"X_{split}"] = xs
        arrays[f"y_{split}"] = ys.astype(np.int64)
    return arrays


def _torch_param_names(network: Network) -> list[tuple[str, int, str, bool]]:
    """(our name, module index, torch attribute, transpose?) for every parameter, from each layer record."""
    out = []
    for i, layer in enumerate(network.layers):
        for p in layer.params:
            attr, transpose = layer.spec.torch_param(p.split(".", 1)[1], layer.in_shape)   # "res1.conv1.w" nests
            out.append((p, i, attr, transpose))
    return out


def _torch_buffer_names(network: Network) -> list[tuple[str, int, str]]:
    """(our name, module index, torch attribute) for every buffer: batch norm's running statistics keep their
    names in torch."""
    return [(b, i, b.split(".", 1)[1]) for i, layer in enumerate(network.layers) for b in layer.buffers]


def export_torch_script(network: Network, trainer_config: Any, data_file: str = "data.npz") -> str:
    """The source of a standalone PyTorch training script for `network` (its current weights as the initial
    weights) with the optimizer, hyperparameters, schedule, batch size, epochs and seed of `trainer_config` (a
    Trainer or Trainer.config()). The data (and, for large networks, the weights) are read from `data_file`,
    resolved beside the script; write_torch_export writes both files."""
    cfg = _config(trainer_config)
    hyper = dict(cfg["hyperparameters"])
    schedule = cfg["schedule"]
    torch_dtype = "torch.float64" if network.dtype == np.float64 else "torch.float32"
    modules = ",\n    ".join(_module(l) for l in network.layers)
    # module classes that torch.nn lacks (DropConnect), each written once before the model
    classes = "".join(src + "\n\n" for src in dict.fromkeys(l.spec.torch_source() for l in network.layers) if src)
    mapping = _torch_param_names(network)
    buffers = _torch_buffer_names(network)
    buffer_values = dict(network.named_buffers())
    embed = network.num_params <= EMBED_LIMIT
    weights = ""
    if embed:
        weights = "INITIAL = {\n" + "".join(
            f"    {k!r}: {np.asarray(v, np.float64).tolist()!r},\n" for k, v in network.params.items()) + "}\n"
        weights += "BUFFERS = {\n" + "".join(
            f"    {k!r}: {np.asarray(buffer_values[k], np.float64).tolist()!r},\n" for k, _, _ in buffers) + "}\n"
    opt_cls = TORCH_OPTIMIZERS[cfg["optimizer"]]
    lr = hyper.pop("lr", 1e-3)
    if schedule is not None:
        base = schedule.base_lr if schedule.base_lr > 0 else 1.0
        lr = base
    args = ", ".join(f"{k}={v!r}" for k, v in hyper.items())
    sched_code = _schedule_code(schedule) if schedule is not None else ""
    reg_term = ""
    if network.reg:
        fn = "w.pow(2).sum()" if network.reg_kind == "l2" else "w.abs().sum()"
        reg_term = (f"    # cs231n-style {network.reg_kind.upper()} regulariser on the weights (not biases or norm "
                    f"parameters);\n    # a frozen weight adds a constant and no gradient: only trainable weights are "
                    f"pulled towards 0, as in the studio\n"
                    f"    loss = loss + {network.reg!r} * sum({fn} for w in WEIGHTS)\n")
    augment = cfg["augment"]
    if network.loss_kind not in ("softmax", "svm", "mse"):
        raise ValueInputError(f"the PyTorch export writes classifiers (softmax, SVM or MSE loss); this network is "
                              f"trained with the {network.loss_kind} loss of the self-supervised lab")
    if augment is not None and augment.mixes_labels and network.loss_kind == "svm":
        raise ValueInputError("mixup and CutMix train on soft labels, which the multiclass SVM loss cannot take")
    mix_note, mix_code = _mix_code(augment, network.num_classes, cfg["seed"])
    if network.loss_kind == "softmax":
        # y: class indices, or probability rows (mixed batches); label smoothing as torch defines it
        smooth = f", label_smoothing={network.label_smoothing!r}" if network.label_smoothing else ""
        loss_body = f"    loss = F.cross_entropy(scores, y{smooth})\n"
    elif network.loss_kind == "svm":
        loss_body = ("    # multiclass SVM (hinge, margin 1): summed over classes, averaged over the batch\n"
                     "    correct = scores.gather(1, y[:, None])\n"
                     "    margins = (scores - correct + 1.0).clamp(min=0.0).scatter(1, y[:, None], 0.0)\n"
                     "    loss = margins.sum() / scores.shape[0]\n")
    else:
        loss_body = (f"    target = y if y.ndim == 2 else F.one_hot(y, {network.num_classes}).to(scores.dtype)"
                     "  # one-hot, or mixed rows\n    loss = F.mse_loss(scores, target)\n")
    reg_names = [f"{l.name}.{k}" for l in network.layers for k in l.spec.REGULARISED if f"{l.name}.{k}" in l.params]
    # fractional max pooling: evaluation averages the scores of several region draws (the lecture's test-time
    # averaging; torch draws its own regions)
    draws = max((l.spec.eval_draws() for l in network.layers), default=1)
    eval_scores = ("model(X)" if draws == 1 else
                   f"sum(model(X) for _ in range({draws})) / {draws}  # average {draws} pooling-region draws")
    frozen = [i for i, l in enumerate(network.layers) if l.name in network.frozen]
    # frozen layers with buffers run in eval mode in training (their running statistics stay fixed)
    fixed = [i for i in frozen if network.layers[i].buffers]
    scheduler_line = "scheduler = None"
    if schedule is not None:  # LambdaLR scales the initial lr: lr_at(t) / lr is the factor
        scheduler_line = f"scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: lr_at(t) / {lr!r})"
    src = f'''"""Exported from Backprop Studio: {network!r}.

Optimizer {cfg["optimizer"]} (torch.optim.{opt_cls}), batch size {cfg["batch_size"]}, {cfg["epochs"]} epochs,
seed {cfg["seed"]}{f", label smoothing {network.label_smoothing!r}" if network.label_smoothing else ""}.
{mix_note}Run: python {{this file}} [--steps K]. The data are read from {data_file!r} beside this script.
"""
import argparse
import math
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(1)
torch.manual_seed({cfg["seed"]})
DTYPE = {torch_dtype}
HERE = os.path.dirname(os.path.abspath(__file__))
DATA = np.load(os.path.join(HERE, {data_file!r}), allow_pickle=False)

{classes}model = nn.Sequential(
    {modules},
).to(DTYPE)

# Our layouts: Linear w is (D, M) (torch's weight is its transpose); Conv2d w (F, C, k, k) as torch.
PARAMS = {[(k, i, a, t) for k, i, a, t in mapping]!r}
BUFFER_NAMES = {buffers!r}
{weights}

def initial(name):
    return np.asarray(INITIAL[name]) if {embed!r} else DATA["init/" + name]


def load_initial_weights():
    with torch.no_grad():
        for name, index, attr, transpose in PARAMS:
            value = torch.tensor(initial(name), dtype=DTYPE)
            model[index].get_parameter(attr).copy_(value.T if transpose else value)
        for name, index, attr in BUFFER_NAMES:
            value = np.asarray(BUFFERS[name]) if {embed!r} else DATA["buffer/" + name]
            model[index].get_buffer(attr).copy_(torch.tensor(value, dtype=DTYPE))


load_initial_weights()
FROZEN = {frozen!r}  # module indices of the frozen layers: no gradient, no update
FIXED = {fixed!r}  # frozen layers with running statistics: eval mode in training too, so they stay fixed
for index in FROZEN:
    model[index].requires_grad_(False)


def train_mode():
    model.train()
    for index in FIXED:
        model[index].eval()


WEIGHTS = [model[index].get_parameter(attr) for name, index, attr, _ in PARAMS if name in {reg_names!r}]


def loss_fn(scores, y):
{loss_body}{reg_term}    return loss


{sched_code}
{mix_code}
optimizer = torch.optim.{opt_cls}([p for p in model.parameters() if p.requires_grad], lr={lr!r}{", " + args if args else ""})
{scheduler_line}

X_train = torch.tensor(DATA["X_train"], dtype=DTYPE)
y_train = torch.tensor(DATA["y_train"], dtype=torch.long)
X_val = torch.tensor(DATA["X_val"], dtype=DTYPE) if "X_val" in DATA.files else None
y_val = torch.tensor(DATA["y_val"], dtype=torch.long) if "y_val" in DATA.files else None
BATCH_SIZE, EPOCHS = {cfg["batch_size"]}, {cfg["epochs"]}


def evaluate(X, y):
    model.eval()
    with torch.no_grad():
        scores = {eval_scores}
        loss = loss_fn(scores, y).item()
        acc = (scores.argmax(1) == y).double().mean().item()
    train_mode()
    return loss, acc


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=None, help="stop after this many updates")
    steps = parser.parse_args().steps
    order_rng = np.random.default_rng([{cfg["seed"]}, 2])  # the studio Trainer's batch order
    n = len(X_train)
    iteration = 0
    train_mode()
    for epoch in range(EPOCHS):
        order = torch.as_tensor(order_rng.permutation(n))
        starts = list(range(0, n, BATCH_SIZE))
        if len(starts) > 1 and n - starts[-1] == 1:  # a single-example tail joins the batch before (as the studio)
            starts.pop()
        for i, start in enumerate(starts):
            idx = order[start:starts[i + 1] if i + 1 < len(starts) else n]
            xb, yb = X_train[idx], y_train[idx]
            if MIX is not None:
                xb, yb = mix(xb, yb)
            optimizer.zero_grad()
            loss = loss_fn(model(xb), yb)
            if iteration == 0:
                print(f"initial_loss {{loss.item()!r}}", flush=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            iteration += 1
            print(f"step {{iteration}} loss {{loss.item():.6f}}", flush=True)
            if steps is not None and iteration >= steps:
                return
        train = evaluate(X_train, y_train)
        val = evaluate(X_val, y_val) if X_val is not None and len(X_val) else (float("nan"), float("nan"))
        print(f"epoch {{epoch + 1}}: train loss {{train[0]:.4f}} acc {{train[1]:.4f}}  "
              f"val loss {{val[0]:.4f}} acc {{val[1]:.4f}}", flush=True)


if __name__ == "__main__":
    main()
'''
    return src


def write_torch_export(directory: str | os.PathLike, network: Network, trainer_config: Any,
                       data: tuple, name: str = "train_torch.py") -> Path:
    """Write the script and its data file (X_train, y_train, X_val, y_val, and the weights when too large to
    embed) into `directory`; returns the script's path."""
    arrays = _export_data(network, data)
    script_text = export_torch_script(network, trainer_config, Path(name).stem + "_data.npz")
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    data_file = Path(name).stem + "_data.npz"
    if network.num_params > EMBED_LIMIT:
        for k, v in network.named_parameters():
            arrays["init/" + k] = v
        for k, v in network.named_buffers():
            arrays["buffer/" + k] = v
    atomic_write(d / data_file, lambda fh: np.savez(fh, **arrays))
    script = d / name
    atomic_write(script, script_text)
    return script
