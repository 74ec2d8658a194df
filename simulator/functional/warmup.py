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

import subprocess
import sys
import threading
from typing import Callable, Iterable

from simulator.core.jobs import Job, Progress

__all__ = ["COLD_TASK_SECONDS", "GROUP_COMPILE_SECONDS", "TAB_KERNELS", "WarmupPlan", "start_helper", "warmup_job"]

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


# Seconds each kernel group takes to compile from a cold cache, both dtypes, one process (`python -m kernels.warmup`
# with an empty NUMBA_CACHE_DIR on the 2-core machine; conv measured 24.4-26.6 s on 2026-12-01): the second process
# takes the costliest group left, so the largest (conv) compiles beside the tab's first groups instead of after them.
# Unknown groups count 0.
GROUP_COMPILE_SECONDS: dict[str, float] = {"conv": 25.5, "norm": 11.0, "pool": 10.5, "activations": 8.5,
                                           "optim": 6.5, "losses": 4.0, "dropout": 1.0}

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

    def back_group(self, exclude: str | None = None, skip: Iterable[str] = ()) -> list[str]:
        """The tasks of one group for the second process: the costliest (GROUP_COMPILE_SECONDS) of the groups in the
        plan other than ``exclude`` (the group this process is compiling now), the last of them in the plan on a tie,
        leaving out the tasks in ``skip`` (compiled by the second process already). While this process compiles
        (``exclude`` given) that may be the only group left: the second process starts it now, sooner than this one
        could (measured: a 10-s group was left waiting behind an 18-s one). Between two tasks (no ``exclude``) []
        unless at least two groups are left: this process goes on with the last one."""
        skip = set(skip)
        with self._lock:
            named = [(name, self.group_of(name)) for name, _ in self._tasks if name not in skip]
        groups = list(dict.fromkeys(g for _, g in named if g != exclude))
        if len(groups) < (1 if exclude is not None else 2):
            return []
        cost = {g: (GROUP_COMPILE_SECONDS.get(g, 0.0), i) for i, g in enumerate(groups)}
        chosen = max(groups, key=cost.__getitem__)
        return [name for name, g in named if g == chosen]

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
    """The job's side of the second process. It is given one kernel group at a time (every task of one module left
    in the plan and not compiled yet), never the group this process is compiling (``running``): the two processes
    never compile one module's kernels at once, since Numba's cache index of a module is a read-modify-write
    without a lock. Its reader thread takes each "done" line and feeds the next group from the back at once."""

    def __init__(self, plan: WarmupPlan, running: str | None) -> None:
        self.plan = plan
        self.lock = threading.Lock()                # guards what follows, and the plan's pop with `running`
        self.running = running                      # the group this process is compiling now
        self.busy: frozenset[str] = frozenset()     # the tasks it is compiling now: left alone here until done
        self.compiled: set[str] = set()             # the tasks it has compiled (they load here from the cache)
        self.alive = True
        self.changed = threading.Event()
        self.proc = start_helper()
        with self.lock:
            self.feed()
        threading.Thread(target=self._read, name="warm-up helper reader", daemon=True).start()

    def feed(self) -> None:
        """Give it the next group if it is idle (call with the lock held)."""
        if self.alive and not self.busy:
            group = self.plan.back_group(exclude=self.running, skip=self.compiled)
            if group:
                try:
                    self.proc.stdin.write(" ".join(group) + "\n")
                    self.proc.stdin.flush()
                    self.busy = frozenset(group)
                except OSError:                     # it died: its work is done here instead
                    self.alive = False

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self.lock:
                if line.startswith("done"):
                    self.compiled.update(line.split()[1:])
                    self.busy = frozenset()
                    self.feed()
                else:
                    self.alive, self.busy = False, frozenset()
            self.changed.set()
        with self.lock:                             # the process ended (or closed its output)
            self.alive, self.busy = False, frozenset()
        self.changed.set()

    def pop(self) -> tuple[str, Callable[[], None]] | None:
        """This process's next task (not one the helper holds), marked as the group compiling here."""
        with self.lock:
            self.running = None
            self.feed()                             # idle since a group was not to be had: there may be one now
            task = self.plan.pop(self.busy)
            self.running = None if task is None else self.plan.group_of(task[0])
            return task

    def waiting(self) -> str | None:
        """The group this process waits for (the helper holds all that is left), or None."""
        with self.lock:
            return self.plan.group_of(next(iter(self.busy))) if self.busy else None

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
    module's docstring). A task still running after COLD_TASK_SECONDS is compiling: a watchdog timer then starts
    the second process at once, which takes the back group while this task goes on."""
    plan = plan or default_plan()
    done = 0
    second: list[_Helper] = []                  # the second process, once a watchdog has started it

    def start_second(running: str) -> None:    # on the watchdog's thread, while this process compiles `running`
        second.append(_Helper(plan, running))

    try:
        while True:
            s = second[0] if second else None
            if s is not None and not s.alive:   # it died: what it held compiles here
                s.close()
                second.clear()
                helper, s = False, None
            task = s.pop() if s is not None else plan.pop()
            if task is None:
                group = s.waiting() if s is not None else None
                if group is None:
                    return done
                yield Progress(done, plan.total, f"{group} (second process)")
                s.changed.wait(0.05)
                s.changed.clear()
                continue
            name, run = task
            watchdog = None
            if helper and not second:
                watchdog = threading.Timer(COLD_TASK_SECONDS, start_second, (plan.group_of(name),))
                watchdog.daemon = True
                watchdog.start()
            try:
                run()
            finally:
                if watchdog is not None:
                    watchdog.cancel()
                    watchdog.join()             # a second process it started is in `second` from here on
            done += 1
            yield Progress(done, plan.total, name)
    finally:
        for s in second:
            s.close()
