"""Benchmark: training steps per second of simulator.nn.network against the same models in PyTorch (CPU, one thread).

Two models, each a full step (forward, loss, backward, Adam update), float32:
  MLP  2-64-3 with ReLU, batch 128 (the spiral playground)      floor: >= 1.5x PyTorch's steps/s
  CNN  conv 8 3x3 pad 1 -> ReLU -> maxpool 2 -> linear 10 on 8x8 digits-sized images, batch 64
                                                                 floor: within 2x of PyTorch (ratio >= 0.5)
Ours is measured through Trainer.step(), so the per-step metrics (batch accuracy, per-layer gradient norms) and
the gather of a shuffled batch are included; PyTorch steps on one fixed tensor batch. Ours and PyTorch are timed
round by round, alternating (each sample a block of steps); the table shows median steps per second and ours /
PyTorch (higher is better). Without torch only our numbers are shown. Run: python bench/train.py [--rounds N]
"""
from __future__ import annotations

import argparse
import sys

FLOORS = {"MLP 2-64-3, batch 128": 1.5, "CNN conv8-pool-fc10, batch 64": 0.5}


def ours_step(input_shape, layers, X, y, batch):
    import numpy as np

    from simulator.nn.network import Network
    from simulator.nn.trainer import Trainer
    net = Network(input_shape, layers, seed=0, dtype=np.float32)
    # 200 batches per epoch (so the end-of-epoch evaluation is not what is measured), shuffled and gathered per step
    Xs, ys = np.concatenate([X] * 200), np.concatenate([y] * 200)
    tr = Trainer(net, (Xs, ys, None, None), "Adam", lr=1e-3, batch_size=batch, epochs=1000, seed=0)
    tr.evaluate = lambda: None  # the end-of-epoch full-set evaluation is run()'s cost, not a training step's
    return tr.step


def torch_step(torch, model_fn, X, y):
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
    return step


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=15, help="timed rounds per model (default 15)")
    p.add_argument("--no-torch", action="store_true", help="leave PyTorch out even when it is installed")
    args = p.parse_args(argv)

    import _common
    import numpy as np

    import kernels
    from simulator.nn.network import Activation, Conv2d, Flatten, Linear, MaxPool

    torch = _common.load_torch(not args.no_torch)
    kernels.warmup(dtypes=(np.float32,))
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
    floors = _common.Floors()
    print(f"1 thread, {args.rounds} interleaved rounds")
    print(f"{'model':32s} {'ours steps/s':>13s} {'torch steps/s':>14s} {'ratio':>7s}")
    with _common.threads(1):
        for name, shape, layers, X, y, model_fn in cases:
            fns = {"ours": ours_step(shape, layers, X, y, len(X))}
            if torch is not None:
                fns["torch"] = torch_step(torch, model_fn, X, y)
            t = _common.compare(fns, args.rounds, min_sample=0.02)
            a = 1.0 / t["ours"]
            if torch is None:
                print(f"{name:32s} {a:13.0f} {'(no torch)':>14s}")
                floors.check(f"{name} >= {FLOORS[name]:g}x torch", None, "torch not measured")
                continue
            b = 1.0 / t["torch"]
            print(f"{name:32s} {a:13.0f} {b:14.0f} {a / b:6.2f}x", flush=True)
            floors.check(f"{name} >= {FLOORS[name]:g}x torch", a / b >= FLOORS[name], f"{a / b:.2f}x")
    return floors.report()


if __name__ == "__main__":
    sys.exit(main())
