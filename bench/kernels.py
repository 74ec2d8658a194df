"""Kernel benchmark at one thread: our Numba kernels against numpy and (when importable) PyTorch CPU, with floors.

Run: python bench/kernels.py [--repeats N]. Prints a table of median times and ratios, then PASS/FAIL per floor.
Every thread pool is pinned to one thread before numpy, numba or torch load, so the ratios compare single-core code.
PyTorch is timed through its ATen ops directly (convolution_backward, max_pool2d_with_indices_backward,
threshold_backward): its fastest path, without autograd's bookkeeping.
"""
from __future__ import annotations

import os

for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from scipy.special import erf  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import kernels  # noqa: E402
from kernels import activations as A  # noqa: E402
from kernels import conv, pool  # noqa: E402

try:
    import torch
    torch.set_num_threads(1)
    F = torch.nn.functional
except ImportError:  # the benchmark still runs; torch floors are reported as not measured
    torch = None

CONV_SHAPES = [(1, 1, 28, 28, 8, 3, 1, 1), (16, 3, 32, 32, 16, 3, 1, 1), (64, 3, 32, 32, 32, 5, 1, 2),
               (32, 16, 16, 16, 32, 3, 2, 1)]


def median_time(fn, repeats: int, budget: float = 1.0) -> float:
    fn()
    fn()
    times = []
    t_end = time.perf_counter() + budget
    while len(times) < repeats or (time.perf_counter() < t_end and len(times) < 20 * repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


ROWS: list[tuple[str, float, float | None, float | None]] = []
FLOORS: list[tuple[str, bool | None, str]] = []


def row(name, ours, numpy_t=None, torch_t=None):
    ROWS.append((name, ours, numpy_t, torch_t))
    cols = [f"{name:<44}", f"{ours * 1e3:10.3f}"]
    for ref in (numpy_t, torch_t):
        cols.append(f"{ref * 1e3:10.3f} {ref / ours:7.2f}x" if ref else f"{'-':>10} {'-':>8}")
    print(" ".join(cols), flush=True)


def floor(name, ok, detail):
    FLOORS.append((name, ok, detail))


def bench_conv(repeats):
    rng = np.random.default_rng(0)
    for dt, tdt in ((np.float32, "float32"), (np.float64, "float64")):
        for shape in CONV_SHAPES:
            N, C, H, W, Fn, k, s, p = shape
            x = rng.standard_normal((N, C, H, W)).astype(dt)
            w = rng.standard_normal((Fn, C, k, k)).astype(dt)
            b = rng.standard_normal(Fn).astype(dt)
            g = rng.standard_normal(conv.conv_forward(x, w, b, s, p).shape).astype(dt)

            def ours():  # as simulator/layers.py runs them: the forward keeps its columns for the backward
                _, cols = conv.conv_forward_keep(x, w, b, s, p)
                conv.conv_backward_cols(g, cols, x, w, s, p)
            t_ours = median_time(ours, repeats)
            t_torch = None
            if torch is not None:
                tx, tw, tb, tg = (torch.from_numpy(a) for a in (x, w, b, g))

                def theirs():
                    F.conv2d(tx, tw, tb, s, p)
                    torch.ops.aten.convolution_backward(tg, tx, tw, [Fn], [s, s], [p, p], [1, 1], False, [0, 0], 1,
                                                        [True, True, True])
                t_torch = median_time(theirs, repeats)
            row(f"conv fwd+bwd {tdt} {shape}", t_ours, None, t_torch)
            if t_torch is None:
                floor(f"conv {tdt} {shape}", None, "torch not importable")
            elif dt == np.float32:
                limit = 1.0 if shape == CONV_SHAPES[0] else 2.0
                floor(f"conv float32 {shape} <= {limit:g}x torch", t_ours <= limit * t_torch,
                      f"{t_ours / t_torch:.2f}x torch's time")
            else:
                floor(f"conv float64 {shape} <= 1x torch", t_ours <= t_torch, f"{t_ours / t_torch:.2f}x torch's time")


def bench_pool(repeats):
    x = np.random.default_rng(1).standard_normal((16, 16, 64, 64)).astype(np.float32)  # 1,048,576 elements

    def ours():
        out, arg = pool.max_pool_forward(x, 2, 2, 2, 2)
        pool.max_pool_backward(out, arg, 64, 64)

    def numpy_ref():  # reshape trick, tiling windows only
        v = x.reshape(16, 16, 32, 2, 32, 2).transpose(0, 1, 2, 4, 3, 5).reshape(16, 16, 32, 32, 4)
        arg = v.argmax(axis=-1)
        out = np.take_along_axis(v, arg[..., None], -1)[..., 0]
        dx = np.zeros_like(v)
        np.put_along_axis(dx, arg[..., None], out[..., None], -1)
        return dx.reshape(16, 16, 32, 32, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(x.shape)
    t_ours = median_time(ours, repeats)
    t_np = median_time(numpy_ref, repeats)
    t_torch = None
    if torch is not None:
        tx = torch.from_numpy(x)

        def theirs():
            out, idx = torch.ops.aten.max_pool2d_with_indices(tx, [2, 2], [2, 2])
            torch.ops.aten.max_pool2d_with_indices_backward(out, tx, [2, 2], [2, 2], [0, 0], [1, 1], False, idx)
        t_torch = median_time(theirs, repeats)
    row("max pool 2x2 fwd+bwd float32 (1e6 elements)", t_ours, t_np, t_torch)
    floor("max pool fwd+bwd >= 3x faster than torch", None if t_torch is None else t_torch >= 3 * t_ours,
          "torch not importable" if t_torch is None else f"{t_torch / t_ours:.2f}x faster")

    def ours_avg():
        pool.avg_pool_backward(pool.avg_pool_forward(x, 2, 2, 2, 2), 64, 64, 2, 2, 2, 2)
    t_torch = None
    if torch is not None:
        def theirs_avg():
            out = F.avg_pool2d(tx, 2, 2)
            torch.ops.aten.avg_pool2d_backward(out, tx, [2, 2], [2, 2], [0, 0], False, True, None)
        t_torch = median_time(theirs_avg, repeats)
    row("avg pool 2x2 fwd+bwd float32 (1e6 elements)", median_time(ours_avg, repeats), None, t_torch)


# the passes that evaluate exp, expm1, log1p or erf (tanh is numpy's own; the other backward passes reuse the output)
EXP_ERF_BASED = ("sigmoid fwd", "elu fwd", "selu fwd", "gelu fwd", "gelu bwd", "silu fwd", "silu bwd", "softplus fwd",
                 "softplus bwd")


def _sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def bench_activations(repeats):
    rng = np.random.default_rng(2)
    x = (rng.standard_normal(1_000_000) * 3).astype(np.float32)
    g = rng.standard_normal(x.size).astype(np.float32)
    relu_out = A.relu_forward(x)
    t_f = median_time(lambda: A.relu_forward(x), repeats)
    t_b = median_time(lambda: A.relu_backward(g, x), repeats)
    tf_torch = tb_torch = None
    if torch is not None:
        tx, tg, to = (torch.from_numpy(a) for a in (x, g, relu_out))
        tf_torch = median_time(lambda: torch.relu(tx), repeats)
        tb_torch = median_time(lambda: torch.ops.aten.threshold_backward(tg, to, 0), repeats)
    row("relu forward float32 (1e6)", t_f, median_time(lambda: np.maximum(x, 0), repeats), tf_torch)
    row("relu backward float32 (1e6)", t_b, median_time(lambda: g * (x > 0), repeats), tb_torch)
    # "at PyTorch's speed": within 10% (timer noise on a shared 2-core machine is about that)
    for name, ours, ref in (("relu forward", t_f, tf_torch), ("relu backward", t_b, tb_torch)):
        floor(f"{name} at torch's speed (<= 1.1x)", None if ref is None else ours <= 1.1 * ref,
              "torch not importable" if ref is None else f"{ours / ref:.2f}x torch's time")

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
        "silu fwd": (lambda: A.silu_forward(x), lambda: x * _sig(x)),
        "silu bwd": (lambda: A.silu_backward(g, x), lambda: (lambda s: g * s * (1 + x * (1 - s)))(_sig(x))),
        "softplus fwd": (lambda: A.softplus_forward(x), lambda: np.logaddexp(0, x)),
        "softplus bwd": (lambda: A.softplus_backward(g, x), lambda: g * _sig(x)),
    }
    with np.errstate(over="ignore"):
        for name, (ours_fn, np_fn) in cases.items():
            ours = median_time(ours_fn, repeats)
            ref = median_time(np_fn, repeats)
            row(f"{name} float32 (1e6)", ours, ref, None)
            if name in EXP_ERF_BASED:
                floor(f"{name} within 1.5x of numpy", ours <= 1.5 * ref, f"{ours / ref:.2f}x numpy's time")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    t0 = time.perf_counter()
    kernels.warmup(dtypes=(np.float32, np.float64))
    print(f"warm-up {time.perf_counter() - t0:.1f} s; numpy {np.__version__}, "
          f"torch {torch.__version__ if torch else 'not importable'}; 1 thread\n")
    print(f"{'kernel':<44} {'ours ms':>10} {'numpy ms':>10} {'np/ours':>8} {'torch ms':>10} {'torch/ours':>8}")
    bench_conv(args.repeats)
    bench_pool(args.repeats)
    bench_activations(args.repeats)
    print("\nFloors (ratios > 1 in the table mean we are faster):")
    failed = 0
    for name, ok, detail in FLOORS:
        status = "SKIP" if ok is None else ("PASS" if ok else "FAIL")
        failed += ok is False
        print(f"  {status}  {name:<52} {detail}")
    print(f"\n{len(FLOORS) - failed}/{len(FLOORS)} floors pass" + ("" if not failed else f", {failed} fail"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
