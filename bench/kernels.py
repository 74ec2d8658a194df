"""Kernel benchmark: our Numba kernels against numpy and (when importable) PyTorch CPU, with floors.

Convolution rows (forward, and forward+backward as simulator/functional/layers.py runs them) for every shape in
CONV_SHAPES, float32 and float64, at 1 and 2 threads (BLAS threads for ours, which kernels.conv shares out over
samples; intra-op threads for torch); pooling and activations at 1 thread. Ours and the references are timed round by
round, alternating, and the table shows medians and ratios (reference time / our time: above 1 means ours is faster),
then PASS/FAIL per floor.
PyTorch is timed through its ATen ops directly (convolution_backward, max_pool2d_with_indices_backward,
threshold_backward): its fastest path, without autograd's bookkeeping. Without torch the torch columns and floors are
left out. Switching thread counts inside one run needs threadpoolctl; without it only OPENBLAS_NUM_THREADS's count is
measured.

Floors (1 thread unless stated): conv float32 forward >= 1.0x torch and forward+backward >= 1.1x torch on every shape;
conv float64 forward and forward+backward >= 1.0x torch; our conv at 2 threads no slower than at 1 thread (within 5%
timer noise; ours at both counts timed interleaved round by round); max pool and fractional max pool (each) fwd+bwd
>= 3x torch; ReLU within 10% of torch; exp/erf-based activations within 1.5x numpy;
group norm and instance norm fwd+bwd within 1.5x torch's time (float32 and float64, 1 thread).
"""
from __future__ import annotations

import argparse
import math
import sys

CONV_SHAPES = [  # (N, C, H, W, F, k, stride, pad)
    (1, 1, 28, 28, 8, 3, 1, 1),
    (16, 3, 32, 32, 16, 3, 1, 1),
    (64, 3, 32, 32, 32, 5, 1, 2),
    (32, 16, 16, 16, 32, 3, 2, 1),
    (64, 64, 32, 32, 64, 3, 1, 1),
]
NOISE = 1.05  # "no slower" allows this much timer noise on a shared 2-core machine


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                epilog="Ratios are reference time / our time: above 1 means ours is faster.")
    p.add_argument("--rounds", type=int, default=15, help="timed rounds per row (default 15); the median is shown")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts for conv (default 1 2)")
    p.add_argument("--dtypes", nargs="+", default=["float32", "float64"], choices=["float32", "float64"],
                   help="conv dtypes (default both)")
    p.add_argument("--only", nargs="+", default=["conv", "pool", "activations", "norm"],
                   choices=["conv", "pool", "activations", "norm"], help="which groups to run (default all)")
    p.add_argument("--shapes", type=int, nargs="+", help="indices into CONV_SHAPES (default all)")
    p.add_argument("--no-torch", action="store_true", help="leave PyTorch out even when it is installed")
    return p.parse_args(argv)


def header(ref: str) -> None:
    print(f"\n{'kernel':<58} {'ours ms':>10} {ref + ' ms':>10} {ref + '/ours':>8}")


def line(name, ours, ref=None):
    from _common import ms, ratio
    print(f"{name:<58} {ms(ours)} {ms(ref)} {ratio(ref, ours)}", flush=True)


def compare_threads(fns, counts, rounds, settle=0.15, min_sample=0.02, budget=20.0, max_rounds=61):
    """{(name, n): median seconds per call} of each function at each thread count in `counts`, the counts alternating
    round by round. The count is switched outside the timed calls, then a pause of `settle` seconds (BLAS's idle
    workers spin for about 0.1 s) and one untimed call precede the timed ones. A function faster than `min_sample`
    is called several times per sample. At least `rounds` rounds, more (up to `max_rounds`) while they fit in
    `budget` seconds: on this shared VM one round's 2t/1t ratio of the same one-thread code ranged 0.6-1.5 (30
    rounds of the smallest shape), so 15 rounds put the median anywhere in 0.92-1.11 over twelve runs."""
    import statistics
    import time

    from _common import threads

    reps, once = {}, {}
    for name, fn in fns.items():
        with threads(counts[0], torch_threads=1):
            fn()
            t0 = time.perf_counter()
            fn()
            once[name] = max(time.perf_counter() - t0, 1e-9)
            reps[name] = max(1, min(1000, int(min_sample / once[name])))
    per_round = len(counts) * (settle + sum((reps[k] + 1) * once[k] for k in fns))  # the untimed call included
    rounds = max(rounds, min(max_rounds, int(budget / per_round)))
    samples = {(name, n): [] for name in fns for n in counts}
    for r in range(rounds):
        for n in (counts if r % 2 == 0 else counts[::-1]):
            with threads(n, torch_threads=1):      # only ours runs here: torch's workers stay asleep
                time.sleep(settle)
                for name, fn in fns.items():
                    fn()
                    t0 = time.perf_counter()
                    for _ in range(reps[name]):
                        fn()
                    samples[name, n].append((time.perf_counter() - t0) / reps[name])
    return {key: statistics.median(s) for key, s in samples.items()}


def bench_conv(args, floors, torch):
    import numpy as np
    from _common import can_switch_threads, compare, threads
    from kernels import conv

    counts = args.threads if can_switch_threads() else [int(__import__("os").environ["OPENBLAS_NUM_THREADS"])]
    shapes = [CONV_SHAPES[i] for i in args.shapes] if args.shapes else CONV_SHAPES
    header("torch")
    rng = np.random.default_rng(0)
    for tdt in args.dtypes:
        dt = np.dtype(tdt)
        for shape in shapes:
            N, C, H, W, Fn, k, s, p = shape
            x = rng.standard_normal((N, C, H, W)).astype(dt)
            w = rng.standard_normal((Fn, C, k, k)).astype(dt)
            b = rng.standard_normal(Fn).astype(dt)
            g = rng.standard_normal(conv.conv_forward(x, w, b, s, p).shape).astype(dt)

            def ours_f():
                conv.conv_forward(x, w, b, s, p)

            def ours_fb():  # as simulator/functional/layers.py runs them: the forward keeps its columns
                _, cols = conv.conv_forward_keep(x, w, b, s, p)
                conv.conv_backward_cols(g, cols, x, w, s, p)
            fns = {"ours fwd": ours_f, "ours fb": ours_fb}
            if torch is not None:
                tx, tw, tb, tg = (torch.from_numpy(a) for a in (x, w, b, g))
                F = torch.nn.functional

                def torch_f():
                    F.conv2d(tx, tw, tb, s, p)

                def torch_fb():
                    F.conv2d(tx, tw, tb, s, p)
                    torch.ops.aten.convolution_backward(tg, tx, tw, [Fn], [s, s], [p, p], [1, 1], False, [0, 0], 1,
                                                        [True, True, True])
                fns |= {"torch fwd": torch_f, "torch fb": torch_fb}
            t = {}
            for n in counts:  # one block per thread count: ours and torch interleaved round by round inside it
                with threads(n):
                    t |= {f"{k} {n}": v for k, v in compare(fns, args.rounds, settle=0.15 if n > 1 else 0).items()}
            for n in counts:
                for kind, label in (("fwd", "fwd"), ("fb", "fwd+bwd")):
                    ours, ref = t[f"ours {kind} {n}"], t.get(f"torch {kind} {n}")
                    line(f"conv {label} {tdt} {n}t {shape}", ours, ref)
                    if n == 1 and ref is not None:
                        need = 1.0 if (tdt == "float64" or kind == "fwd") else 1.1
                        floors.check(f"conv {label} {tdt} 1t {shape} >= {need:g}x torch", ref / ours >= need,
                                     f"{ref / ours:.2f}x")
            if 1 in counts and len(counts) > 1:
                # ours against ours: the thread counts alternate round by round (not block after block, minutes
                # apart on a shared machine), without torch's threads in between
                by = compare_threads({"fwd": ours_f, "fb": ours_fb}, counts, args.rounds)
                for n in counts:
                    if n == 1:
                        continue
                    for kind, label in (("fwd", "fwd"), ("fb", "fwd+bwd")):
                        a, b1 = by[kind, n], by[kind, 1]
                        floors.check(f"conv {label} {tdt} {shape}: {n}t no slower than 1t", a <= NOISE * b1,
                                     f"{n}t/1t time {a / b1:.2f} (interleaved)")
    if len(counts) < len(args.threads):
        print("(threadpoolctl is not installed: only OPENBLAS_NUM_THREADS's count was measured)")


def bench_pool(args, floors, torch):
    import numpy as np
    from _common import compare, threads
    from kernels import pool

    header("torch")
    x = np.random.default_rng(1).standard_normal((16, 16, 64, 64)).astype(np.float32)  # 1,048,576 elements

    def ours():
        out, arg = pool.max_pool_forward(x, 2, 2, 2, 2)
        pool.max_pool_backward(out, arg, 64, 64)

    def ours_avg():
        pool.avg_pool_backward(pool.avg_pool_forward(x, 2, 2, 2, 2), 64, 64, 2, 2, 2, 2)

    # fractional max pooling, ratio 1/sqrt(2) (64 -> 45), the same _random_samples on both sides; ours includes the
    # window sequences, which torch computes inside its op
    u = np.random.default_rng(2).random((16, 16, 2)).astype(np.float32)

    def ours_frac():
        sh = pool.fractional_intervals(u[..., 1], 64, 45, 2)
        sw = pool.fractional_intervals(u[..., 0], 64, 45, 2)
        out, arg = pool.fractional_max_pool_forward(x, sh, sw, 2)
        pool.fractional_max_pool_backward(out, arg, 64, 64)
    fns = {"ours max": ours, "ours avg": ours_avg, "ours frac": ours_frac}
    if torch is not None:
        tx = torch.from_numpy(x)

        def theirs():
            out, idx = torch.ops.aten.max_pool2d_with_indices(tx, [2, 2], [2, 2])
            torch.ops.aten.max_pool2d_with_indices_backward(out, tx, [2, 2], [2, 2], [0, 0], [1, 1], False, idx)

        def theirs_avg():
            out = torch.nn.functional.avg_pool2d(tx, 2, 2)
            torch.ops.aten.avg_pool2d_backward(out, tx, [2, 2], [2, 2], [0, 0], False, True, None)
        tu = torch.from_numpy(u)

        def theirs_frac():
            out, idx = torch.ops.aten.fractional_max_pool2d(tx, [2, 2], [45, 45], tu)
            torch.ops.aten.fractional_max_pool2d_backward(out, tx, [2, 2], [45, 45], idx)
        fns |= {"torch max": theirs, "torch avg": theirs_avg, "torch frac": theirs_frac}
    with threads(1):
        t = compare(fns, args.rounds)
    line("max pool 2x2 fwd+bwd float32 1t (1e6 elements)", t["ours max"], t.get("torch max"))
    line("avg pool 2x2 fwd+bwd float32 1t (1e6 elements)", t["ours avg"], t.get("torch avg"))
    line("frac max pool 1/√2 fwd+bwd float32 1t (1e6 elements)", t["ours frac"], t.get("torch frac"))
    if torch is not None:
        floors.check("max pool fwd+bwd >= 3x torch", t["torch max"] >= 3 * t["ours max"],
                     f"{t['torch max'] / t['ours max']:.2f}x")
        floors.check("fractional max pool fwd+bwd >= 3x torch", t["torch frac"] >= 3 * t["ours frac"],
                     f"{t['torch frac'] / t['ours frac']:.2f}x")


# the passes that evaluate exp, expm1, log1p or erf (tanh is numpy's own; the other backward passes reuse the output)
EXP_ERF_BASED = ("sigmoid fwd", "elu fwd", "selu fwd", "gelu fwd", "gelu bwd", "silu fwd", "silu bwd", "softplus fwd",
                 "softplus bwd")


def bench_activations(args, floors, torch):
    import numpy as np
    from scipy.special import erf
    from _common import compare, threads
    from kernels import activations as A

    def sig(v):
        return 1.0 / (1.0 + np.exp(-v))

    rng = np.random.default_rng(2)
    x = (rng.standard_normal(1_000_000) * 3).astype(np.float32)
    g = rng.standard_normal(x.size).astype(np.float32)
    relu_out = A.relu_forward(x)
    header("numpy")
    with threads(1):
        fns = {"ours f": lambda: A.relu_forward(x), "numpy f": lambda: np.maximum(x, 0),
               "ours b": lambda: A.relu_backward(g, x), "numpy b": lambda: g * (x > 0)}
        if torch is not None:
            tx, tg, to = (torch.from_numpy(a) for a in (x, g, relu_out))
            fns |= {"torch f": lambda: torch.relu(tx), "torch b": lambda: torch.ops.aten.threshold_backward(tg, to, 0)}
        t = compare(fns, args.rounds)
    line("relu forward float32 (1e6)", t["ours f"], t["numpy f"])
    line("relu backward float32 (1e6)", t["ours b"], t["numpy b"])
    if torch is not None:
        line("relu forward float32 (1e6), vs torch", t["ours f"], t["torch f"])
        line("relu backward float32 (1e6), vs torch", t["ours b"], t["torch b"])
        for name, kind in (("relu forward", "f"), ("relu backward", "b")):
            ours, ref = t[f"ours {kind}"], t[f"torch {kind}"]
            floors.check(f"{name} within 10% of torch's time", ours <= 1.1 * ref, f"{ours / ref:.2f}x torch's time")

    inv2, invs2pi = 1 / math.sqrt(2), 1 / math.sqrt(2 * math.pi)
    cases = {
        # name: (ours, plain numpy vectorised version)
        "sigmoid fwd": (lambda: A.sigmoid_forward(x), lambda: 1 / (1 + np.exp(-x))),
        "sigmoid bwd": (lambda: A.sigmoid_backward(g, relu_out), lambda: g * relu_out * (1 - relu_out)),
        "tanh fwd": (lambda: A.tanh_forward(x), lambda: np.tanh(x)),
        "tanh bwd": (lambda: A.tanh_backward(g, relu_out), lambda: g * (1 - relu_out * relu_out)),
        "elu fwd": (lambda: A.elu_forward(x), lambda: np.where(x > 0, x, np.expm1(np.minimum(x, 0)))),
        "elu bwd": (lambda: A.elu_backward(g, x, relu_out), lambda: np.where(x > 0, g, g * (relu_out + 1))),
        "selu fwd": (lambda: A.selu_forward(x),
                     lambda: A.SELU_SCALE * np.where(x > 0, x, A.SELU_ALPHA * np.expm1(np.minimum(x, 0)))),
        "gelu fwd": (lambda: A.gelu_forward(x), lambda: 0.5 * x * (1 + erf(x * inv2))),
        "gelu bwd": (lambda: A.gelu_backward(g, x),
                     lambda: g * (0.5 * (1 + erf(x * inv2)) + x * invs2pi * np.exp(-0.5 * x * x))),
        "silu fwd": (lambda: A.silu_forward(x), lambda: x * sig(x)),
        "silu bwd": (lambda: A.silu_backward(g, x), lambda: (lambda s: g * s * (1 + x * (1 - s)))(sig(x))),
        "softplus fwd": (lambda: A.softplus_forward(x), lambda: np.logaddexp(0, x)),
        "softplus bwd": (lambda: A.softplus_backward(g, x), lambda: g * sig(x)),
    }
    with np.errstate(over="ignore"), threads(1):
        for name, (ours_fn, np_fn) in cases.items():
            t = compare({"ours": ours_fn, "numpy": np_fn}, args.rounds)
            line(f"{name} float32 (1e6)", t["ours"], t["numpy"])
            if name in EXP_ERF_BASED:
                floors.check(f"{name} within 1.5x of numpy's time", t["ours"] <= 1.5 * t["numpy"],
                             f"{t['ours'] / t['numpy']:.2f}x numpy's time")


NORM_SHAPES = [  # (N, C, H, W, groups): a digits-CNN batch and a larger conv activation
    (64, 16, 8, 8, 4),
    (32, 32, 16, 16, 8),
]


def bench_norm(args, floors, torch):
    """Group norm and instance norm (G = C), forward+backward as simulator/functional/layers.py runs them, against
    torch's ATen native_group_norm and native_group_norm_backward (what F.group_norm and F.instance_norm's affine
    path reach), interleaved round by round at one thread, float32 and float64."""
    import numpy as np
    from _common import compare, threads
    from kernels import norm as K

    header("torch")
    rng = np.random.default_rng(3)
    for tdt in args.dtypes:
        dt = np.dtype(tdt)
        for N, C, H, W, G in NORM_SHAPES:
            x = rng.standard_normal((N, C, H * W)).astype(dt)
            g, b = rng.standard_normal(C).astype(dt), rng.standard_normal(C).astype(dt)
            d = rng.standard_normal(x.shape).astype(dt)

            def ours_gn():
                _, xhat, inv = K.groupnorm_forward(x, g, b, G, 1e-5)
                K.groupnorm_backward(d, xhat, g, inv, G)

            def ours_in():
                _, xhat, inv = K.instancenorm_forward(x, g, b, 1e-5)
                K.instancenorm_backward(d, xhat, g, inv)
            fns = {"ours gn": ours_gn, "ours in": ours_in}
            if torch is not None:
                tx, tg, tb, td = (torch.from_numpy(a) for a in (x.reshape(N, C, H, W), g, b, d.reshape(N, C, H, W)))
                aten = torch.ops.aten

                def theirs(groups):
                    def run():
                        _, mean, rstd = aten.native_group_norm(tx, tg, tb, N, C, H * W, groups, 1e-5)
                        aten.native_group_norm_backward(td, tx, mean, rstd, tg, N, C, H * W, groups,
                                                        [True, True, True])
                    return run
                fns |= {"torch gn": theirs(G), "torch in": theirs(C)}
            with threads(1):
                t = compare(fns, args.rounds)
            for kind, label in (("gn", f"group norm G={G}"), ("in", "instance norm")):
                ours, ref = t[f"ours {kind}"], t.get(f"torch {kind}")
                line(f"{label} fwd+bwd {tdt} 1t ({N},{C},{H},{W})", ours, ref)
                if ref is not None:
                    floors.check(f"{label} fwd+bwd {tdt} ({N},{C},{H},{W}) within 1.5x torch's time",
                                 ours <= 1.5 * ref, f"{ours / ref:.2f}x torch's time")


def main(argv=None) -> int:
    args = parse_args(argv)
    import time

    import _common  # noqa: F401  (pins thread counts before numpy, numba and torch load)
    import numpy as np

    import kernels
    torch = _common.load_torch(not args.no_torch)
    t0 = time.perf_counter()
    kernels.warmup(dtypes=(np.float32, np.float64))
    print(f"warm-up {time.perf_counter() - t0:.1f} s; numpy {np.__version__}, "
          f"torch {torch.__version__ if torch else 'not used'}; {args.rounds} interleaved rounds per row")
    floors = _common.Floors()
    for group in args.only:
        {"conv": bench_conv, "pool": bench_pool, "activations": bench_activations,
         "norm": bench_norm}[group](args, floors, torch)
    return floors.report()


if __name__ == "__main__":
    sys.exit(main())
