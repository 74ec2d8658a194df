"""Benchmark: training steps per second of simulator.nn.network against the same models in PyTorch (CPU, one thread).

Two models, each a full step (forward, loss, backward, Adam update), float32:
  MLP  2-64-3 with ReLU, batch 128 (the spiral playground)      floor: >= 1.5x PyTorch's steps/s
  CNN  conv 8 3x3 pad 1 -> ReLU -> maxpool 2 -> linear 10 on 8x8 digits-sized images, batch 64
                                                                 floor: within 2x of PyTorch (ratio >= 0.5)
Ours is measured through Trainer.step(), so the per-step metrics (batch accuracy, per-layer gradient norms) and
the gather of a shuffled batch are included; PyTorch steps on one fixed tensor batch. Prints steps per second
and ours / PyTorch (higher is better).
Run: python bench/train.py
"""
from __future__ import annotations

import os

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

# bench/ may hold scripts named like packages: the repository root must come first on the path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from simulator.nn.network import Activation, Conv2d, Flatten, Linear, MaxPool, Network, Trainer  # noqa: E402

ROUNDS = 7
FLOORS = {"MLP 2-64-3, batch 128": 1.5, "CNN conv8-pool-fc10, batch 64": 0.5}


def steps_per_second(step, n: int) -> float:
    for _ in range(max(n // 10, 5)):
        step()
    best = float("inf")
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        for _ in range(n):
            step()
        best = min(best, (time.perf_counter() - t0) / n)
    return 1.0 / best


def ours(input_shape, layers, X, y, batch) -> float:
    net = Network(input_shape, layers, seed=0, dtype=np.float32)
    # 200 batches per epoch (so the end-of-epoch evaluation is not what is measured), shuffled and gathered per step
    Xs, ys = np.concatenate([X] * 200), np.concatenate([y] * 200)
    tr = Trainer(net, (Xs, ys, None, None), "Adam", lr=1e-3, batch_size=batch, epochs=1000, seed=0)
    tr.evaluate = lambda: None  # the end-of-epoch full-set evaluation is run()'s cost, not a training step's
    return steps_per_second(tr.step, 300 if X.ndim == 2 else 100)


def theirs(model_fn, X, y) -> float:
    import torch
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = model_fn(torch.nn)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    xb, yb = torch.tensor(X), torch.tensor(y)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
    return steps_per_second(step, 300 if X.ndim == 2 else 100)


def main() -> int:
    rng = np.random.default_rng(0)
    cases = [
        ("MLP 2-64-3, batch 128", (2,), [Linear(64), Activation("relu"), Linear(3)],
         rng.normal(size=(128, 2)).astype(np.float32), rng.integers(0, 3, 128),
         lambda nn: nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 3))),
        ("CNN conv8-pool-fc10, batch 64", (1, 8, 8),
         [Conv2d(8, 3, pad=1), Activation("relu"), MaxPool(2), Flatten(), Linear(10)],
         rng.normal(size=(64, 1, 8, 8)).astype(np.float32), rng.integers(0, 10, 64),
         lambda nn: nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                                  nn.Linear(8 * 4 * 4, 10))),
    ]
    try:
        import torch  # noqa: F401
        has_torch = True
    except ImportError:
        has_torch = False
    print(f"{'model':32s} {'ours steps/s':>13s} {'torch steps/s':>14s} {'ratio':>7s} {'floor':>6s}")
    ok = True
    for name, shape, layers, X, y, model_fn in cases:
        a = ours(shape, layers, X, y, len(X))
        if not has_torch:
            print(f"{name:32s} {a:13.0f} {'(no torch)':>14s}")
            continue
        b = theirs(model_fn, X, y)
        ratio = a / b
        floor = FLOORS[name]
        passed = ratio >= floor
        ok &= passed
        print(f"{name:32s} {a:13.0f} {b:14.0f} {ratio:6.2f}x {floor:5.1f}x {'ok' if passed else 'BELOW FLOOR'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
