"""Benchmark: the optimizer race, and each optimizer kernel on 1e6 float32 parameters against torch.optim.

One thread everywhere. Ours and torch.optim (foreach and fused=True where torch has it) are timed round by round,
alternating; the table shows median updates per second and ratios (torch time / our time: above 1 means ours is
faster). Floor: Adam and AdamW faster than torch.optim.Adam/AdamW(fused=True). Without torch only our numbers are
shown. Run: python bench/optim.py [--rounds N]
"""
from __future__ import annotations

import argparse
import sys

N = 1_000_000
CASES = {  # display name -> (our overrides, torch class name, torch kwargs)
    "SGD": ({"lr": 1e-3}, "SGD", {"lr": 1e-3}),
    "Momentum": ({"lr": 1e-3}, "SGD", {"lr": 1e-3, "momentum": 0.9}),
    "Nesterov": ({"lr": 1e-3}, "SGD", {"lr": 1e-3, "momentum": 0.9, "nesterov": True}),
    "AdaGrad": ({}, "Adagrad", {"lr": 0.01}),
    "RMSProp": ({}, "RMSprop", {"lr": 0.01}),
    "Adam": ({}, "Adam", {"lr": 1e-3}),
    "AdamW": ({}, "AdamW", {"lr": 1e-3}),
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=15, help="timed rounds per optimizer (default 15)")
    p.add_argument("--no-torch", action="store_true", help="leave PyTorch out even when it is installed")
    args = p.parse_args(argv)

    import time

    import _common
    import numpy as np

    from kernels.optim import warmup_tasks
    from simulator.functional.optim import OPTIMIZERS, make_optimizer
    from simulator.labs.surfaces import Rosenbrock, race

    torch = _common.load_torch(not args.no_torch)
    for _, task in warmup_tasks():
        task()
    race(Rosenbrock(), list(OPTIMIZERS), n_steps=10)
    t0 = time.perf_counter()
    race(Rosenbrock(), list(OPTIMIZERS), start=(-1.5, 2.0), n_steps=10_000)
    dt = time.perf_counter() - t0
    print(f"race: {len(OPTIMIZERS)} optimizers x 10,000 steps on Rosenbrock: {dt * 1e3:.0f} ms "
          f"({len(OPTIMIZERS) * 10_000 / dt:,.0f} optimizer-steps/s)\n")

    rng = np.random.default_rng(0)
    p0 = rng.standard_normal(N).astype(np.float32)
    g = (0.1 * rng.standard_normal(N)).astype(np.float32)
    floors = _common.Floors()
    print(f"1e6 float32 parameters, 1 thread, {args.rounds} interleaved rounds: updates per second")
    print(f"{'optimizer':<10} {'ours':>10} {'torch':>10} {'fused':>10} {'x torch':>8} {'x fused':>8}")
    with _common.threads(1):
        for name, (ours_kw, torch_name, torch_kw) in CASES.items():
            opt = make_optimizer(name, [p0.copy()], **ours_kw)
            fns = {"ours": lambda opt=opt: opt.step([g])}
            if torch is not None:
                cls = getattr(torch.optim, torch_name)
                tp = torch.nn.Parameter(torch.from_numpy(p0.copy()))
                tp.grad = torch.from_numpy(g.copy())
                fns["torch"] = cls([tp], **torch_kw).step
                try:
                    tq = torch.nn.Parameter(torch.from_numpy(p0.copy()))
                    tq.grad = torch.from_numpy(g.copy())
                    fns["torch fused"] = cls([tq], **torch_kw, fused=True).step
                except (RuntimeError, TypeError, ValueError):
                    pass
            t = _common.compare(fns, args.rounds)
            ours, ref, fused = t["ours"], t.get("torch"), t.get("torch fused")

            def cell(v):
                return f"{1 / v:10.0f}" if v else f"{'-':>10}"
            print(f"{name:<10} {cell(ours)} {cell(ref)} {cell(fused)} {_common.ratio(ref, ours)} "
                  f"{_common.ratio(fused, ours)}", flush=True)
            if name in ("Adam", "AdamW"):
                floors.check(f"{name} faster than torch fused", None if fused is None else fused > ours,
                             "torch (fused) not measured" if fused is None else f"{fused / ours:.2f}x")
    return floors.report()


if __name__ == "__main__":
    sys.exit(main())
