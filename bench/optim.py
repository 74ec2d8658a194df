"""Benchmark: the optimizer race, and each optimizer kernel on 1e6 float32 parameters against torch.optim.

One thread everywhere. Prints updates per second and our speed over torch's (higher is better). Floor: Adam and
AdamW must beat torch.optim.Adam/AdamW(fused=True). Run: python bench/optim.py
"""
from __future__ import annotations

import os

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kernels.optim import warmup_tasks  # noqa: E402
from simulator.functional.optim import OPTIMIZERS, make_optimizer  # noqa: E402
from simulator.labs.surfaces import Rosenbrock, race  # noqa: E402

N = 1_000_000
ROUNDS, REPS = 7, 20


def best_time(fn, reps: int = REPS) -> float:
    fn()
    best = float("inf")
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        best = min(best, (time.perf_counter() - t0) / reps)
    return best


CASES = {  # display name -> (our overrides, torch class name, torch kwargs)
    "SGD": ({"lr": 1e-3}, "SGD", {"lr": 1e-3}),
    "Momentum": ({"lr": 1e-3}, "SGD", {"lr": 1e-3, "momentum": 0.9}),
    "Nesterov": ({"lr": 1e-3}, "SGD", {"lr": 1e-3, "momentum": 0.9, "nesterov": True}),
    "AdaGrad": ({}, "Adagrad", {"lr": 0.01}),
    "RMSProp": ({}, "RMSprop", {"lr": 0.01}),
    "Adam": ({}, "Adam", {"lr": 1e-3}),
    "AdamW": ({}, "AdamW", {"lr": 1e-3}),
}


def main() -> int:
    for _, task in warmup_tasks():
        task()
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        torch = None
        print("torch not importable: our numbers only")

    race(Rosenbrock(), list(OPTIMIZERS), n_steps=10)
    t0 = time.perf_counter()
    race(Rosenbrock(), list(OPTIMIZERS), start=(-1.5, 2.0), n_steps=10_000)
    dt = time.perf_counter() - t0
    print(f"race: 7 optimizers x 10,000 steps on Rosenbrock: {dt * 1e3:.0f} ms "
          f"({7 * 10_000 / dt:,.0f} optimizer-steps/s)\n")

    rng = np.random.default_rng(0)
    p0 = rng.standard_normal(N).astype(np.float32)
    g = (0.1 * rng.standard_normal(N)).astype(np.float32)
    rows = []
    for name, (ours_kw, torch_name, torch_kw) in CASES.items():
        p = p0.copy()
        opt = make_optimizer(name, [p], **ours_kw)
        ours = best_time(lambda: opt.step([g]))
        ref = fused = None
        if torch is not None:
            tp = torch.nn.Parameter(torch.from_numpy(p0.copy()))
            tp.grad = torch.from_numpy(g.copy())
            cls = getattr(torch.optim, torch_name)
            topt = cls([tp], **torch_kw)
            ref = best_time(topt.step)
            try:
                tf = cls([tp], **torch_kw, fused=True)
                fused = best_time(tf.step)
            except (RuntimeError, TypeError, ValueError):
                fused = None
        rows.append((name, ours, ref, fused))

    print("1e6 float32 parameters, 1 thread: updates per second (ours / torch.optim)")
    print(f"{'optimizer':<10} {'ours':>10} {'torch':>10} {'fused':>10} {'x torch':>8} {'x fused':>8}")
    ok = True
    for name, ours, ref, fused in rows:
        def cell(v):
            return f"{1 / v:10.0f}" if v else f"{'-':>10}"

        r1 = f"{ref / ours:8.2f}" if ref else f"{'-':>8}"
        r2 = f"{fused / ours:8.2f}" if fused else f"{'-':>8}"
        print(f"{name:<10} {cell(ours)} {cell(ref)} {cell(fused)} {r1} {r2}")
        if name in ("Adam", "AdamW") and fused and fused / ours <= 1.0:
            ok = False
    if torch is not None:
        print("\nfloor (Adam and AdamW faster than torch fused):", "met" if ok else "NOT MET")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
