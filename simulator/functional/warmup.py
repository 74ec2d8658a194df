"""The kernel warm-up as a job: compile (or load from Numba's cache) every kernel, the ones the learner needs first.

The app runs ``warmup_job(plan)`` on a worker thread at start. ``plan.prefer(groups)`` (called from the UI thread
when the learner opens a tab) moves that tab's kernel groups to the front of what is left, so the lab in front of
the learner is ready first.

With an empty cache (a first run, or kernels changed) the compiling takes most of a minute on one core. When a task
shows that the cache is cold (it took longer than COLD_TASK_SECONDS; a cache hit takes a fraction of that), the job
starts a second process, ``python -m kernels.warmup --tasks ...``, that compiles the back half of what is left into
Numba's on-disk cache while this process compiles the front half: the two halves compile on two cores, and the
helper's kernels then load here from the cache in a fraction of a second each. Until the helper exits this process
leaves its tasks alone (if only those are left, it waits for the helper); a helper that fails costs nothing but time,
since its tasks then compile here. Closing the job stops the helper.
"""
from __future__ import annotations

import subprocess
import sys
import threading
import time
from typing import Callable, Iterable

from simulator.core.jobs import Job, Progress

__all__ = ["COLD_TASK_SECONDS", "TAB_KERNELS", "WarmupPlan",
           "back_half", "start_helper", "warmup_job"]

# Which kernel groups (kernels.<module>) each part of the app calls.
TAB_KERNELS: dict[str, tuple[str, ...]] = {
    "Backprop": ("activations", "losses", "conv", "pool", "norm", "dropout"),
    "Playground": ("activations", "losses", "optim", "conv", "pool", "norm", "dropout"),
    "Init / norm": ("activations", "norm"),
    "Optimizers": ("optim",),
    "Classifiers": ("losses", "optim"),
    "Convolution": ("conv", "pool"),
    "Interpretability": ("conv", "pool", "activations", "losses", "optim"),
    "Search": ("activations", "losses", "optim", "conv", "pool"),
}


# A warm-up task slower than this compiled its kernels: the cache is cold (see the module's docstring).
COLD_TASK_SECONDS = 1.0


def _group(task_name: str) -> str:
    """'conv[float32]' -> 'conv', 'relu' -> 'relu' (a task's name starts with its module's group)."""
    return task_name.split("[", 1)[0].split(" ", 1)[0]


class WarmupPlan:
    """The warm-up's to-do list, reordered safely while the job runs."""

    def __init__(self, tasks: Iterable[tuple[str, Callable[[], None]]], module_of: dict[str, str] | None = None):
        self._tasks = list(tasks)
        self._module_of = module_of or {}
        self._lock = threading.Lock()
        self.total = len(self._tasks)

    def group_of(self, name: str) -> str:
        return self._module_of.get(name, _group(name))

    def prefer(self, groups: Iterable[str]) -> None:
        """Move the tasks of these kernel groups (in this order) to the front of what is left."""
        rank = {g: i for i, g in enumerate(groups)}
        with self._lock:
            self._tasks.sort(key=lambda t: rank.get(self.group_of(t[0]), len(rank)))

    def pop(self, skip: frozenset[str] = frozenset()) -> tuple[str, Callable[[], None]] | None:
        """The first task left whose name is not in ``skip`` (None if there is none), taken off the list."""
        with self._lock:
            for i, (name, _) in enumerate(self._tasks):
                if name not in skip:
                    return self._tasks.pop(i)
            return None

    def names(self) -> list[str]:
        """The names of the tasks left, in the order they will run."""
        with self._lock:
            return [name for name, _ in self._tasks]

    @property
    def remaining(self) -> int:
        with self._lock:
            return len(self._tasks)


def default_plan() -> WarmupPlan:
    """Every kernel module's warm-up tasks, labelled with their module (kernels.warmup's convention)."""
    import importlib

    from kernels.warmup import MODULES

    tasks, module_of = [], {}
    for module_name in MODULES:
        module = importlib.import_module(f"kernels.{module_name}")
        make = getattr(module, "warmup_tasks", None)
        if make is None:
            continue
        for name, run in make():
            tasks.append((name, run))
            module_of[name] = module_name
    return WarmupPlan(tasks, module_of)


def _cost(name: str) -> float:
    """A task's rough compile cost: 'conv[float32]' compiles a module's kernels for one dtype, 'optim.adam_step[...]'
    one kernel (about a fifth of it)."""
    return 0.2 if "." in name.split("[", 1)[0] else 1.0


def back_half(names: list[str]) -> list[str]:
    """The tasks at the end of ``names`` that make up about half of their compile cost (at least one, never all)."""
    total = sum(_cost(n) for n in names)
    tail: list[str] = []
    for name in reversed(names[1:]):
        if sum(_cost(n) for n in tail) + _cost(name) / 2 > total / 2:
            break
        tail.append(name)
    return tail[::-1]


def start_helper(names: list[str]) -> subprocess.Popen:
    """A second Python process that compiles the named warm-up tasks into Numba's on-disk cache."""
    return subprocess.Popen([sys.executable, "-m", "kernels.warmup", "--tasks", *names],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def warmup_job(plan: WarmupPlan | None = None, helper: bool = True) -> Job[int]:
    """Run every task of the plan, yielding Progress(done, total, task name) after each; returns how many ran.
    ``helper``: with a cold cache, let a second process compile the back half (see the module's docstring)."""
    plan = plan or default_plan()
    done = 0
    child: subprocess.Popen | None = None
    given: frozenset[str] = frozenset()   # the tasks the helper is compiling, left alone here until it exits
    try:
        while True:
            if child is not None and child.poll() is not None:
                given = frozenset()
            task = plan.pop(given)
            if task is None:
                if not given:
                    return done
                yield Progress(done, plan.total, "compiling in a second process")
                time.sleep(0.05)
                continue
            name, run = task
            start = time.perf_counter()
            run()
            done += 1
            if (helper and child is None and time.perf_counter() - start > COLD_TASK_SECONDS
                    and plan.remaining >= 2):
                tail = back_half(plan.names())
                child, given = start_helper(tail), frozenset(tail)
            yield Progress(done, plan.total, name)
    finally:
        if child is not None and child.poll() is None:
            child.kill()
            child.wait()
