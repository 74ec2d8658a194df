"""The kernel warm-up as a job: compile (or load from Numba's cache) every kernel, the ones the learner needs first.

The app runs ``warmup_job(plan)`` on a worker thread at start. ``plan.prefer(groups)`` (called from the UI thread
when the learner opens a tab) moves that tab's kernel groups to the front of what is left, so the lab in front of
the learner is ready first.

With an empty cache (a first run, or kernels changed) the compiling takes most of a minute on one core. When a task
shows that the cache is cold (it took longer than COLD_TASK_SECONDS; a cache hit takes a fraction of that), the job
starts a second process, ``python -m kernels.warmup --serve``, and from then on this process compiles from the front
of the plan while the second one compiles into Numba's on-disk cache from the back, one whole kernel group (module)
at a time: two cores compile, the tab in front of the learner still comes first (``prefer`` reorders the front),
and a group the second process finished loads here from the cache in a fraction of a second. This process leaves the
group in the other's hands alone until it is reported done (if only that one is left, it waits); a second process
that fails or dies costs nothing but time, since its group then compiles here. Closing the job stops it.
"""
from __future__ import annotations

import queue
import subprocess
import sys
import threading
import time
from typing import Callable, Iterable

from simulator.core.jobs import Job, Progress

__all__ = ["COLD_TASK_SECONDS", "TAB_KERNELS", "WarmupPlan", "start_helper", "warmup_job"]

# Which kernel groups (kernels.<module>) each part of the app calls.
TAB_KERNELS: dict[str, tuple[str, ...]] = {
    "Backprop": ("activations", "losses", "conv", "pool", "norm", "dropout"),
    "Playground": ("activations", "losses", "optim", "conv", "pool", "norm", "dropout"),
    "Init / norm": ("activations", "norm"),
    "Optimizers": ("optim",),
    "Classifiers": ("losses", "optim"),
    "Convolution": ("conv", "pool"),
    "Interpretability": ("conv", "pool", "activations", "losses", "optim"),
    "Self-supervised": ("conv", "pool", "activations", "losses", "optim"),
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

    def back_group(self) -> list[str]:
        """The tasks of the group that runs last (every task of it left), for the second process; [] when one
        group or none is left (this process then finishes it alone)."""
        with self._lock:
            groups = [self.group_of(name) for name, _ in self._tasks]
        if len(set(groups)) < 2:
            return []
        last = groups[-1]
        return [name for name, g in zip(self.names(), groups) if g == last]

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


def start_helper() -> subprocess.Popen:
    """A second Python process that compiles the warm-up tasks it is sent into Numba's on-disk cache
    (``python -m kernels.warmup --serve``: one line of task names in, one line "done <names>" out)."""
    return subprocess.Popen([sys.executable, "-m", "kernels.warmup", "--serve"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)


class _Helper:
    """The job's side of the second process: it is given one kernel group at a time (every task of one module
    left in the plan, so the two processes never compile one module's kernels at once: Numba's cache index of a
    module is a read-modify-write without a lock), and reports each group done on a line its reader thread
    queues."""

    def __init__(self) -> None:
        self.proc = start_helper()
        self.busy: frozenset[str] = frozenset()     # the tasks it is compiling now: left alone here until done
        self.alive = True
        self._lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, name="warm-up helper reader", daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)                       # the process ended (or closed its output)

    def give(self, names: list[str]) -> None:
        try:
            self.proc.stdin.write(" ".join(names) + "\n")
            self.proc.stdin.flush()
            self.busy = frozenset(names)
        except OSError:                             # it died: its work is done here instead
            self.alive, self.busy = False, frozenset()

    def collect(self, timeout: float = 0.0) -> None:
        """Take what the process reported (waiting up to ``timeout`` for a line): a finished group frees its
        tasks, which then load here from the cache; an ended process frees everything it held."""
        try:
            line = self._lines.get(timeout=timeout) if timeout else self._lines.get_nowait()
        except queue.Empty:
            return
        if line is None or not line.startswith("done"):
            self.alive = False
        self.busy = frozenset()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()             # end of input: it exits after the group in hand
            except OSError:
                pass
            if self.busy or not self.alive:
                self.proc.kill()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def warmup_job(plan: WarmupPlan | None = None, helper: bool = True) -> Job[int]:
    """Run every task of the plan, yielding Progress(done, total, task name) after each; returns how many ran.
    ``helper``: with a cold cache, let a second process compile kernel groups from the back of the plan (see the
    module's docstring)."""
    plan = plan or default_plan()
    done = 0
    second: _Helper | None = None
    try:
        while True:
            if second is not None:
                second.collect()
                if second.alive and not second.busy:
                    group = plan.back_group()
                    if group:
                        second.give(group)
                if not second.alive:
                    second.close()
                    second = None
            task = plan.pop(second.busy if second is not None else frozenset())
            if task is None:
                if second is None or not second.busy:
                    return done
                yield Progress(done, plan.total, f"{plan.group_of(next(iter(second.busy)))} (second process)")
                second.collect(timeout=0.05)
                continue
            name, run = task
            start = time.perf_counter()
            run()
            done += 1
            if helper and second is None and time.perf_counter() - start > COLD_TASK_SECONDS:
                helper = False                      # one helper per warm-up
                second = _Helper()
            yield Progress(done, plan.total, name)
    finally:
        if second is not None:
            second.close()
