"""Kernel warm-up: compile (or load from Numba's on-disk cache) every kernel before the user needs it.

Convention: each kernel module defines `warmup_tasks() -> list[tuple[str, Callable[[], None]]]`, (name, zero-arg
callable) pairs that call its kernels on tiny arrays. Modules whose `warmup_tasks` accepts a `dtypes` argument get the
requested dtypes; others are called with no arguments. kernels.optim (written separately) is imported lazily and
included when it exists and follows the convention.

Order: MODULES order, except that the groups named in `first` (module names: "conv", "pool", "optim", ...) go first,
in the order given, so the kernels the user is about to need are ready soonest. A task's group is its module.
"""
from __future__ import annotations

import importlib
import inspect
import sys
import types
from typing import Callable, Iterable

import numpy as np

MODULES = ("conv", "pool", "activations", "norm", "dropout", "losses", "optim")


def _ordered(first: Iterable[str]) -> list[str]:
    if isinstance(first, str):
        first = (first,)
    first = list(dict.fromkeys(first))
    unknown = [g for g in first if g not in MODULES]
    if unknown:
        raise ValueError(f"unknown warm-up group(s) {unknown}; the groups are {', '.join(MODULES)}")
    return first + [m for m in MODULES if m not in first]


def collect_tasks(dtypes: Iterable = (np.float64, np.float32),
                  first: Iterable[str] = ()) -> list[tuple[str, Callable[[], None]]]:
    """Every module's warm-up tasks, the groups in `first` first, then the rest in MODULES order. A missing
    kernels.optim (or one without warmup_tasks) is skipped; any other import error propagates."""
    dtypes = tuple(dtypes)
    tasks: list[tuple[str, Callable[[], None]]] = []
    for name in _ordered(first):
        try:
            module = importlib.import_module(f"kernels.{name}")
        except ModuleNotFoundError as exc:
            if name == "optim" and exc.name == "kernels.optim":
                continue
            raise
        make = getattr(module, "warmup_tasks", None)
        if make is None:
            continue
        if "dtypes" in inspect.signature(make).parameters:
            tasks.extend(make(dtypes=dtypes))
        else:
            tasks.extend(make())
    return tasks


def warmup(progress: Callable[[int, int, str], None] | None = None,
           dtypes: Iterable = (np.float64, np.float32), first: Iterable[str] = ()) -> int:
    """Run every warm-up task; after each, call progress(done, total, name). Returns the number of tasks run.
    `first`: groups to compile before the others, e.g. first=("conv",). Safe to call from a worker thread (no kernel
    uses parallel=True; every kernel is nogil, so the thread runs beside the GUI)."""
    tasks = collect_tasks(dtypes, first)
    total = len(tasks)
    for done, (name, run) in enumerate(tasks, start=1):
        run()
        if progress is not None:
            progress(done, total, name)
    return total


class _CallableModule(types.ModuleType):
    """Lets `kernels.warmup(...)` work whether `kernels.warmup` names this module or its function: importing a
    submodule rebinds the package attribute to the module, so the module itself must be callable."""

    def __call__(self, progress: Callable[[int, int, str], None] | None = None,
                 dtypes: Iterable = (np.float64, np.float32), first: Iterable[str] = ()) -> int:
        return warmup(progress, dtypes, first)


sys.modules[__name__].__class__ = _CallableModule


def _serve() -> None:
    """The app's second warm-up process (simulator.functional.warmup): read a line of task names, run them (compiling
    into Numba's on-disk cache), answer "done <names>"; an empty line or the end of input ends it. An unknown name
    exits with status 2."""
    tasks = dict(collect_tasks())
    for line in sys.stdin:
        names = line.split()
        if not names:
            return
        if any(n not in tasks for n in names):
            sys.exit(2)
        for n in names:
            tasks[n]()
        print("done", *names, flush=True)


def _main() -> None:
    """python -m kernels.warmup [group ...]: every task, those groups first, with progress;
    python -m kernels.warmup --serve: the app's second warm-up process (see _serve)."""
    import time
    args = sys.argv[1:]
    if args[:1] == ["--serve"]:
        _serve()
        return
    t0 = time.perf_counter()
    warmup(lambda done, total, name: print(f"[{done}/{total}] {name}  {time.perf_counter() - t0:.1f} s"),
           first=args)


if __name__ == "__main__":
    _main()
