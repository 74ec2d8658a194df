"""Long work is a generator: it yields progress and returns its result; closing it cancels it.

    def training(settings) -> Job[History]:
        for step in range(n):
            ...
            yield Progress(step + 1, n, "training")     # or any object the view draws (metrics, a frame)
        return history

One contract for every lab, the kernel warm-up and the scripts: ``gui.jobs.JobRunner`` drives such generators on a
worker thread (progress coalesced by one UI timer, cancel by ``close()``), and ``run_job`` drives one to the end in
plain Python (tests, scripts, the command line).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Generator, TypeVar

__all__ = ["Job", "Progress", "run_job"]

T = TypeVar("T")
Job = Generator[Any, None, T]


@dataclass(frozen=True)
class Progress:
    """A plain progress report: ``done`` of ``total`` units (total 0 when unknown) and what is being done."""

    done: int
    total: int
    message: str = ""

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total > 0 else 0.0


def run_job(job: Job[T], on_yield: Callable[[Any], Any] | None = None) -> T:
    """Drive a job to its end and return its result. ``on_yield`` sees every yielded item; if it returns True the
    job is cancelled (closed) and None is returned."""
    try:
        while True:
            item = next(job)
            if on_yield is not None and on_yield(item) is True:
                job.close()
                return None  # type: ignore[return-value]
    except StopIteration as stop:
        return stop.value
