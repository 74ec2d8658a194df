"""Benchmark: Trainer.step against a plain numpy loop of the same math and against PyTorch, on the 2-64-3 MLP.

Three ways to take one Adam step of the spiral playground's MLP (2 -> 64 -> ReLU -> 3, softmax cross-entropy,
batch 128, float32), timed round by round (bench/_common.compare: each round times each of them once, in
alternating order, so machine load hits all alike), at one thread:

  ours   Trainer.step(): gathers a shuffled batch, forward, loss, backward, Adam (fused kernel), and reports the
         batch loss, batch accuracy and learning rate every step and the per-layer gradient norms every
         --norms-every steps (the Trainer's default rate, what the playground's plot consumes)
  numpy  the same math written as a plain numpy loop: the same gather, x @ w + b, np.maximum, a stable softmax
         cross-entropy, the backward pass by hand and torch.optim.Adam's update in numpy; it reports the loss only
  torch  torch.nn.Sequential with torch.optim.Adam on the same gathered batches, loss.item() every step

The end-of-epoch full-set evaluation is run()'s cost, not a step's: ours skips it (200 batches per epoch anyway).
Times are this process's CPU time by default (--clock wall for elapsed time): on a shared machine the time the OS
gives to other processes would otherwise land on whichever function happened to be running.
Floors: ours >= 0.95x the numpy loop's steps/s, and >= 3x PyTorch's. Exit status 1 when a measured floor fails.
Run: python bench/trainer.py [--rounds N] [--norms-every K] [--no-torch]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import _common as C  # first: it pins the thread counts before numpy, numba and torch load
import numpy as np

from simulator.nn.network import Activation, Linear, Network
from simulator.nn.trainer import NORMS_EVERY, Trainer

BATCH = 128
HIDDEN = 64
CLASSES = 3
LR = 1e-3
FLOOR_NUMPY = 0.95
FLOOR_TORCH = 3.0


def spiral(n_per_class: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for c in range(CLASSES):
        r = np.linspace(0.0, 1.0, n_per_class)
        t = np.linspace(c * 4.0, (c + 1) * 4.0, n_per_class) + rng.normal(0, 0.2, n_per_class)
        xs.append(np.c_[r * np.sin(t), r * np.cos(t)])
        ys.append(np.full(n_per_class, c))
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys).astype(np.int64)


def ours_step(X: np.ndarray, y: np.ndarray, norms_every: int):
    net = Network((2,), [Linear(HIDDEN), Activation("relu"), Linear(CLASSES)], seed=0, dtype=np.float32)
    tr = Trainer(net, (X, y, None, None), "Adam", lr=LR, batch_size=BATCH, epochs=40_000, seed=0,
                 norms_every=norms_every)
    tr.evaluate = lambda: None  # the end-of-epoch evaluation is not a training step's cost (see the docstring)
    return tr.step, net


def numpy_step(X: np.ndarray, y: np.ndarray, net: Network):
    """The same forward, loss, backward and Adam as plain numpy, starting from the same weights."""
    w1, b1, w2, b2 = (p.copy() for p in net.parameters())
    params = [w1, b1, w2, b2]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    rng = np.random.default_rng([0, 2])
    state = {"order": rng.permutation(len(X)), "pos": 0, "t": 0}
    rows = np.arange(BATCH)

    def step() -> float:
        i = state["pos"]
        if i + BATCH > len(X):
            state["order"], i = rng.permutation(len(X)), 0
        state["pos"] = i + BATCH
        idx = state["order"][i:i + BATCH]
        xb, yb = X[idx], y[idx]
        h = xb @ w1 + b1
        a = np.maximum(h, 0)
        s = a @ w2 + b2
        s = s - s.max(axis=1, keepdims=True)
        e = np.exp(s)
        p = e / e.sum(axis=1, keepdims=True)
        loss = float(-np.log(p[rows, yb]).mean())
        p[rows, yb] -= 1
        p /= BATCH
        dw2, db2 = a.T @ p, p.sum(axis=0)
        da = p @ w2.T
        da[h <= 0] = 0
        dw1, db1 = xb.T @ da, da.sum(axis=0)
        state["t"] += 1
        t = state["t"]
        c1, c2 = 1 - beta1 ** t, 1 - beta2 ** t
        for q, g, mq, vq in zip(params, (dw1, db1, dw2, db2), m, v):
            mq *= beta1
            mq += (1 - beta1) * g
            vq *= beta2
            vq += (1 - beta2) * g * g
            q -= (LR / c1) * mq / (np.sqrt(vq) / np.sqrt(c2) + eps)
        return loss
    return step


def torch_step(X: np.ndarray, y: np.ndarray):
    torch = C.load_torch()
    if torch is None:
        return None
    torch.manual_seed(0)
    nn = torch.nn
    model = nn.Sequential(nn.Linear(2, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, CLASSES))
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    loss_fn = nn.CrossEntropyLoss()
    tX, ty = torch.from_numpy(X), torch.from_numpy(y)
    rng = np.random.default_rng([0, 2])
    state = {"order": torch.from_numpy(rng.permutation(len(X))), "pos": 0}

    def step() -> float:
        i = state["pos"]
        if i + BATCH > len(X):
            state["order"], i = torch.from_numpy(rng.permutation(len(X))), 0
        state["pos"] = i + BATCH
        idx = state["order"][i:i + BATCH]
        opt.zero_grad()
        loss = loss_fn(model(tX[idx]), ty[idx])
        loss.backward()
        opt.step()
        return loss.item()
    return step


def compare(fns: dict[str, Callable[[], object]], rounds: int, clock: Callable[[], float],
            min_sample: float = 5e-3) -> dict[str, float]:
    """Median seconds per call of each function by `clock`, round by round: every round times each function once
    (k calls, k chosen so a sample lasts about min_sample), in alternating order (bench/_common.compare's scheme,
    with a choice of clock)."""
    names = list(fns)
    reps = {}
    for name in names:                                # warm up: caches, kernels' first calls, the CPU's clock
        fn = fns[name]
        for _ in range(50):
            fn()
        t0 = time.perf_counter()
        for _ in range(50):
            fn()
        reps[name] = max(1, int(min_sample / max((time.perf_counter() - t0) / 50, 1e-9)))
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            fn, k = fns[name], reps[name]
            t0 = clock()
            for _ in range(k):
                fn()
            samples[name].append((clock() - t0) / k)
    return {name: statistics.median(v) for name, v in samples.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--rounds", type=int, default=31, help="timing rounds (the median is reported; default 31)")
    ap.add_argument("--norms-every", type=int, default=NORMS_EVERY,
                    help=f"Trainer's norms_every: gradient norms measured every K steps (default {NORMS_EVERY})")
    ap.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                    help="cpu (default): this process's CPU time, which a busy shared machine does not inflate "
                         "(time the OS gives to other processes is not counted); wall: elapsed time")
    ap.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    args = ap.parse_args(argv)

    X, y = spiral(BATCH * 200 // CLASSES + 1)
    ours, net = ours_step(X, y, args.norms_every)
    fns = {"ours Trainer.step": ours, "numpy loop": numpy_step(X, y, net)}
    theirs = None if args.no_torch else torch_step(X, y)
    if theirs is not None:
        fns["torch Adam step"] = theirs
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    with C.threads(1):
        times = compare(fns, args.rounds, clock)
    t_ours, t_np = times["ours Trainer.step"], times["numpy loop"]
    t_torch = times.get("torch Adam step")

    print(f"2-{HIDDEN}-{CLASSES} MLP, batch {BATCH}, float32, Adam, 1 thread, {args.rounds} rounds (medians of "
          f"{args.clock} time); gradient norms every {args.norms_every} steps")
    print(f"{'':<20}{'us/step':>10}{'steps/s':>12}{'ours vs it':>12}")
    for name, t in times.items():
        rel = "" if t is t_ours else C.ratio(t, t_ours)
        print(f"{name:<20}{t * 1e6:10.1f}{1 / t:12.0f}{rel:>12}")
    floors = C.Floors()
    floors.check(f"Trainer.step >= {FLOOR_NUMPY}x the plain numpy loop", t_np / t_ours >= FLOOR_NUMPY,
                 f"{t_np / t_ours:.2f}x")
    floors.check(f"Trainer.step >= {FLOOR_TORCH}x PyTorch's steps/s",
                 None if t_torch is None else t_torch / t_ours >= FLOOR_TORCH,
                 "PyTorch left out or not installed" if t_torch is None else f"{t_torch / t_ours:.2f}x")
    return floors.report()


if __name__ == "__main__":
    sys.exit(main())
