"""The kernel warm-up as a job: compile (or load from Numba's cache) every kernel, the ones the learner needs first.

The app runs ``warmup_job(plan)`` on a worker thread at start. ``plan.prefer(groups)`` (called from the UI thread
when the learner opens a tab) moves that tab's kernel groups to the front of what is left, so the lab in front of
the learner is ready first.
"""
from __future__ import annotations

import threading
from typing import Callable, Iterable

from simulator.core.jobs import Job, Progress

__all__ = ["TAB_KERNELS", "WarmupPlan", "warmup_job"]

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

    def pop(self) -> tuple[str, Callable[[], None]] | None:
        with self._lock:
            return self._tasks.pop(0) if self._tasks else None

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


def warmup_job(plan: WarmupPlan | None = None) -> Job[int]:
    """Run every task of the plan, yielding Progress(done, total, task name) after each; returns how many ran."""
    plan = plan or default_plan()
    done = 0
    while (task := plan.pop()) is not None:
        name, run = task
        run()
        done += 1
        yield Progress(done, plan.total, name)
    return done
