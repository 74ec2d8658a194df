"""Shared benchmark helpers: thread pinning, interleaved timing (ours and the reference, round by round), floors.

Import this module before numpy, numba or torch load (it sets the thread-count variables to 1 unless they are set),
then use `threads(n)` to run a block at n BLAS/torch threads: threadpoolctl when installed, else the environment's
count only (and `threads(n)` for another n reports that it cannot switch).
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import contextlib  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable, Iterator  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# bench/ scripts run as files, and bench/kernels.py would shadow the kernels package: the root must come first
sys.path[:] = [str(ROOT)] + [p for p in sys.path if p != str(ROOT)]

torch = None
_controller = None


def load_torch(use: bool = True):
    """PyTorch pinned to one thread, or None when it is not importable (or `use` is false): every script still runs,
    the reference column is then left out."""
    global torch
    if use and torch is None:
        try:
            import torch as _torch
        except ImportError:
            return None
        _torch.set_num_threads(1)
        torch = _torch
    return torch if use else None


def can_switch_threads() -> bool:
    """True when threads(n) can change the BLAS thread count inside this process (threadpoolctl is installed)."""
    global _controller
    if _controller is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            return False
        _controller = ThreadpoolController()
    return True


@contextlib.contextmanager
def threads(n: int, torch_threads: int | None = None) -> Iterator[None]:
    """Run the block with n BLAS threads (numpy's and scipy's OpenBLAS) and n torch intra-op threads (or
    `torch_threads`: 1 when only ours runs in the block, so that torch's idle workers cannot take a core from it)."""
    if not can_switch_threads():
        if n != int(os.environ["OPENBLAS_NUM_THREADS"]):
            raise RuntimeError("threadpoolctl is not installed: set OPENBLAS_NUM_THREADS instead")
        yield
        return
    old = torch.get_num_threads() if torch is not None else None
    if torch is not None:
        torch.set_num_threads(n if torch_threads is None else torch_threads)
    try:
        with _controller.limit(limits=n, user_api="blas"):
            yield
    finally:
        if torch is not None:
            torch.set_num_threads(old)


def compare(fns: dict[str, Callable[[], object]], rounds: int = 15, min_sample: float = 2e-3,
            settle: float = 0.0, warm: float = 0.3) -> dict[str, float]:
    """Median seconds per call of each function, measured round by round: in every round each function is timed
    once (alternating the order from round to round), so drifts in machine load hit all of them alike. A function
    faster than `min_sample` is called several times per sample.

    `settle` > 0: pause that long whenever the next sample comes from another library than the last one (the first
    word of the name: "ours", "torch", ...). With several threads, OpenBLAS's idle workers spin for about 0.1 s after
    each call and would steal the cores of the next library's threads (and OpenMP's workers likewise)."""
    names = list(fns)
    reps = {}
    for name in names:  # warm up (caches, lazily built primitives, the CPU's clock) for `warm` seconds or 3 calls
        fn = fns[name]
        t_end = time.perf_counter() + warm
        calls = 0
        while calls < 3 or time.perf_counter() < t_end:
            t0 = time.perf_counter()
            fn()
            once = time.perf_counter() - t0
            calls += 1
        reps[name] = max(1, min(1000, int(min_sample / max(once, 1e-9))))
    samples: dict[str, list[float]] = {name: [] for name in names}
    last = None
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            fn, k = fns[name], reps[name]
            lib = name.split()[0]
            if settle and last is not None and lib != last:
                time.sleep(settle)
            last = lib
            t0 = time.perf_counter()
            for _ in range(k):
                fn()
            samples[name].append((time.perf_counter() - t0) / k)
    return {name: statistics.median(s) for name, s in samples.items()}


class Floors:
    """Collects floor checks (name, ok or None when not measured, detail) and prints the verdict."""

    def __init__(self) -> None:
        self.items: list[tuple[str, bool | None, str]] = []

    def check(self, name: str, ok: bool | None, detail: str) -> None:
        self.items.append((name, ok, detail))

    def report(self) -> int:
        """Print PASS/FAIL/SKIP per floor; return 1 if any failed, else 0."""
        failed = sum(ok is False for _, ok, _ in self.items)
        print("\nFloors:")
        for name, ok, detail in self.items:
            status = "SKIP" if ok is None else ("PASS" if ok else "FAIL")
            print(f"  {status}  {name:<60} {detail}")
        measured = sum(ok is not None for _, ok, _ in self.items)
        print(f"\n{measured - failed}/{measured} measured floors pass" + (f", {failed} fail" if failed else ""))
        return 1 if failed else 0


def ms(t: float | None) -> str:
    return f"{t * 1e3:10.3f}" if t is not None else f"{'-':>10}"


def ratio(ref: float | None, ours: float) -> str:
    """ref / ours: above 1 means ours is faster."""
    return f"{ref / ours:7.2f}x" if ref is not None else f"{'-':>8}"
