"""The search lab's model (no Qt): grid vs random search over learning rate and weight decay, the lecture-8 sanity
checks and seed ensembles, with their settings declared once and their results kept for the view.

Every run uses the optimizer and training settings of the search panel (``SearchSettings``): the searches, the
overfitting check, the learning-rate sweep and the ensemble alike, so what the learner compares is one training
recipe. Long work is a job (simulator/core/jobs.py); data are loaded inside the jobs (scikit-learn's digits by
default), never when the lab opens. A job's result is committed on the UI thread with ``set_search_results``,
``set_check`` or ``set_ensemble``, which emit ``changed``.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any, Callable, Generator

from simulator.core.errors import ValueInputError
from simulator.core.jobs import Progress
from simulator.core.observer import Signal
from simulator.core.params import Settings, check_choice, param
from simulator.functional.optim import OPTIMIZERS
from simulator.labs import search as S
from simulator.labs.interpret import digits_data, digits_mlp
from simulator.nn.network import Network

__all__ = ["CHECKS", "EnsembleSettings", "SanitySettings", "SearchLabModel", "SearchProgress", "SearchSettings"]

CHECKS = ("initial_loss", "overfit", "lr_sweep")
_LR = dict(low=0.0, low_open=True, high=100.0, log=True)
_WD = dict(low=0.0, low_open=True, high=10.0, log=True)


@dataclass(frozen=True)
class SearchSettings(Settings):
    """The search space (log scale) and the training recipe every trial, check and ensemble member uses."""

    lr_min: float = param(1e-4, label="learning rate from", doc="lower end of the log-scale learning-rate range",
                          **_LR)
    lr_max: float = param(1e-1, label="learning rate to", doc="upper end of the log-scale learning-rate range", **_LR)
    wd_min: float = param(1e-5, label="weight decay from", doc="lower end of the log-scale weight-decay range", **_WD)
    wd_max: float = param(1e-1, label="weight decay to", doc="upper end of the log-scale weight-decay range", **_WD)
    trials: int = param(16, low=1, high=100, label="trials per search",
                        doc="trials of each search; the grid uses round(√trials) values per axis")
    epochs: int = param(2, low=1, high=50, label="epochs per trial",
                        doc="the lecture's coarse search: a couple of epochs per trial")
    optimizer: str = param("AdamW", choices=tuple(OPTIMIZERS), label="optimizer",
                           doc="the update rule of every trial, sanity check and ensemble member")
    batch_size: int = param(64, low=1, high=4096, label="batch size", doc="examples per update")
    seed: int = param(0, low=0, high=10_000, label="seed",
                      doc="initialisation, batch order and the random search's draws")

    def __post_init__(self) -> None:
        super().__post_init__()
        self.space  # noqa: B018  (checks that each lower bound is at most its upper bound)

    @property
    def space(self) -> S.SearchSpace:
        return S.SearchSpace(self.lr_min, self.lr_max, self.wd_min, self.wd_max)

    @property
    def per_axis(self) -> int:
        return max(1, int(round(math.sqrt(self.trials))))


@dataclass(frozen=True)
class SanitySettings(Settings):
    """The lecture's steps 1-3 before any search (the optimizer, batch size and seed are the search panel's)."""

    overfit_n: int = param(20, low=2, high=500, label="examples to overfit",
                           doc="a tiny training subset the model should learn by heart")
    overfit_steps: int = param(200, low=1, high=5000, label="overfit updates", doc="full-batch updates on the subset")
    overfit_lr: float = param(1e-2, label="overfit learning rate", doc="the rate of the overfitting check", **_LR)
    sweep_iters: int = param(100, low=2, high=2000, label="sweep updates",
                             doc="updates of the learning-rate sweep (the lecture: about 100)")
    sweep_lr_min: float = param(1e-5, label="sweep from", doc="the sweep's first learning rate", **_LR)
    sweep_lr_max: float = param(10.0, label="sweep to", doc="the sweep's last learning rate", **_LR)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.sweep_lr_min >= self.sweep_lr_max:
            raise ValueInputError(f"the sweep's first rate ({self.sweep_lr_min:g}) must be below its last "
                                  f"({self.sweep_lr_max:g})")


@dataclass(frozen=True)
class EnsembleSettings(Settings):
    seeds: int = param(5, low=2, high=12, label="models", doc="one model per seed 0, 1, 2, …")
    epochs: int = param(10, low=1, high=50, label="epochs each", doc="training epochs of every model")
    lr: float = param(3e-3, label="learning rate", doc="the rate every member trains with", **_LR)
    weight_decay: float = param(0.0, low=0.0, high=10.0, label="weight decay", decimals=5,
                                doc="the optimizer's weight decay for every member")


@dataclass(frozen=True)
class SearchProgress:
    """What the search job yields: the finished trials of each search so far, how many of how many."""

    results: dict
    done: int
    total: int
    kind: str


class SearchLabModel:
    """Grid vs random search, the sanity checks and ensembles of ``factory(seed)`` networks on ``data``.

    ``changed`` is emitted with "factory", "search", "check" or "ensemble" after a commit."""

    def __init__(self, factory: Callable[[int], Network] | None = None, data: Any = None,
                 name: str | None = None) -> None:
        self.changed = Signal()
        self.factory: Callable[[int], Network] = factory or (lambda seed: digits_mlp(seed))
        self.factory_name = name or "digits MLP (64 hidden ReLU units)"
        self._data = data
        self._digits = None          # split inside the first job that needs them (jobs may run side by side)
        self._digits_lock = threading.Lock()
        self.results: dict[str, list[S.TrialResult]] = {"grid": [], "random": []}
        self.planned: dict[str, list[dict]] = {"grid": [], "random": []}
        self.ran_with: SearchSettings | None = None
        self.complete = False
        self.last_check: tuple[str, Any] | None = None
        self.last_ensemble: S.EnsembleResult | None = None

    # ------------------------------------------------------------------------------------------------ model, data
    def set_network_factory(self, factory: Callable[[int], Network], data: Any = None, name: str | None = None
                            ) -> None:
        """Search, check and ensemble ``factory(seed)`` networks (fresh weights per seed) on ``data``
        ((X_train, y_train, X_val, y_val) or a DigitsData; None: digits)."""
        if not callable(factory):
            raise ValueInputError(f"the network factory must be callable (seed -> Network), got {factory!r}")
        if data is not None:
            S.data_tuple(data)
        self.factory, self._data = factory, data
        self.factory_name = name or "a custom network"
        self.changed.emit("factory")

    @property
    def default_data(self) -> bool:
        """True while the lab uses scikit-learn's digits (no data were given)."""
        return self._data is None or self._data is self._digits

    def data(self) -> tuple:
        """(X_train, y_train, X_val, y_val); loads digits the first time (scikit-learn: call it inside a job)."""
        if self._data is None:
            with self._digits_lock:
                if self._digits is None:
                    self._digits = digits_data(0)
                return S.data_tuple(self._digits)
        return S.data_tuple(self._data)

    # ------------------------------------------------------------------------------------------------ search
    def plan(self, settings: SearchSettings) -> dict[str, list[dict]]:
        """The configurations both searches will try: round(√trials)² grid points and ``trials`` random draws."""
        return {"grid": S.grid_search(settings.space, settings.per_axis),
                "random": S.random_search(settings.space, settings.trials, seed=settings.seed)}

    def search(self, settings: SearchSettings) -> Generator[SearchProgress, None, dict]:
        """A job: the grid's trials, then the random ones, each trained for settings.epochs with the panel's
        optimizer. Yields SearchProgress (also while a trial trains, so closing it stops promptly); returns
        {"grid": [TrialResult...], "random": [...]}."""
        plan = self.plan(settings)
        return self._search(settings, plan)

    def _search(self, settings: SearchSettings, plan: dict) -> Generator[SearchProgress, None, dict]:
        make = S.digits_trainer_factory(self.data(), self.factory, settings.optimizer, settings.batch_size,
                                        settings.seed)
        out: dict[str, list] = {"grid": [], "random": []}
        total = len(plan["grid"]) + len(plan["random"])
        for kind in ("grid", "random"):
            for p in S.trials_job(plan[kind], make, settings.epochs):
                if p.result is not None:
                    out[kind].append(p.result)
                yield SearchProgress({k: list(v) for k, v in out.items()}, len(out["grid"]) + len(out["random"]),
                                     total, kind)
        return out

    def set_search_results(self, settings: SearchSettings, results: dict, complete: bool = True) -> None:
        """Keep the trials a search finished (all of them, or those done before it was cancelled)."""
        self.results = {"grid": list(results.get("grid", [])), "random": list(results.get("random", []))}
        self.planned = self.plan(settings)
        self.ran_with = settings
        self.complete = complete
        self.changed.emit("search")

    def best(self) -> tuple[str, S.TrialResult] | None:
        """(search kind, trial) of the best finished trial over both searches (the grid's on ties)."""
        cands = [(k, r) for k in ("grid", "random") for r in self.results[k]]
        if not cands:
            return None
        return max(cands, key=lambda kr: kr[1].val_accuracy)

    def best_config(self) -> dict | None:
        """The best trial as a training configuration for the playground: optimizer, lr, weight_decay (and, for
        the record, its validation accuracy and which search found it). The optimizer is the one the search RAN
        with, whatever the panel shows now."""
        b = self.best()
        if b is None or self.ran_with is None:
            return None
        kind, r = b
        return {"optimizer": self.ran_with.optimizer, "lr": r.config["lr"], "weight_decay": r.config["weight_decay"],
                "val_accuracy": r.val_accuracy, "search": kind}

    @staticmethod
    def distinct_lrs(results: list[S.TrialResult]) -> int:
        return len({round(math.log10(r.config["lr"]), 9) for r in results})

    # ------------------------------------------------------------------------------------------------ checks
    def check(self, which: str, sanity: SanitySettings, settings: SearchSettings) -> Generator[Progress, None, Any]:
        """A job for one sanity check, with the search panel's optimizer, batch size and seed:
        "initial_loss" -> (loss, ln C); "overfit" -> OverfitResult; "lr_sweep" -> SweepResult."""
        check_choice("sanity check", which, CHECKS)
        return self._check(which, sanity, settings)

    def _check(self, which: str, sanity: SanitySettings, settings: SearchSettings) -> Generator[Progress, None, Any]:
        yield Progress(0, 0, "preparing the data")
        Xtr, ytr, _, _ = self.data()
        net = self.factory(settings.seed)
        if which == "initial_loss":
            return S.initial_loss_check(net, Xtr, ytr)
        if which == "overfit":
            return (yield from S.overfit_job(net, Xtr, ytr, n=min(sanity.overfit_n, len(Xtr)),
                                             steps=sanity.overfit_steps, lr=sanity.overfit_lr,
                                             optimizer=settings.optimizer, seed=settings.seed))
        return (yield from S.lr_sweep_job(net, Xtr, ytr, sanity.sweep_lr_min, sanity.sweep_lr_max, sanity.sweep_iters,
                                          settings.batch_size, settings.optimizer, settings.seed))

    def set_check(self, which: str, value: Any) -> None:
        check_choice("sanity check", which, CHECKS)
        self.last_check = (which, value)
        self.changed.emit("check")

    # ------------------------------------------------------------------------------------------------ ensemble
    def ensemble(self, ens: EnsembleSettings, settings: SearchSettings) -> Generator[Progress, None, Any]:
        """A job: ens.seeds models (seeds 0, 1, ...) trained with the panel's optimizer and batch size at ens.lr and
        ens.weight_decay; returns the EnsembleResult."""
        seeds = list(range(ens.seeds))
        return self._ensemble(seeds, ens, settings)

    def _ensemble(self, seeds: list[int], ens: EnsembleSettings, settings: SearchSettings
                  ) -> Generator[Progress, None, Any]:
        yield Progress(0, len(seeds), "preparing the data")
        data = self.data()
        return (yield from S.ensemble_job(seeds, self.factory, data, settings.optimizer, ens.lr, ens.epochs,
                                          settings.batch_size, ens.weight_decay))

    def set_ensemble(self, result: S.EnsembleResult) -> None:
        self.last_ensemble = result
        self.changed.emit("ensemble")

