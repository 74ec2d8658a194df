"""Hyperparameter search and the lecture-8 sanity checks: grid vs random (log-uniform) search over learning rate and
weight decay, brief training of each trial, initial loss vs ln(C), overfitting a tiny subset, a learning-rate sweep,
and seed ensembles. No Qt.

Weight decay is the optimizer's (decoupled for AdamW, the default; L2-in-the-gradient for SGD/Momentum/Adam), as
``Trainer(..., weight_decay=...)`` passes it through. Learning rates and weight decays are positive and searched on
a log scale, as the lecture recommends (1e-4 .. 1e-1 for lr; weight decay 1e-5 .. 1e-2).

Long work is a job (simulator/core/jobs.py), a generator yielding progress and returning its result, cancelled by
``close()``: ``trials_job``, ``overfit_job``, ``lr_sweep_job``, ``ensemble_job``. ``run_trials``,
``overfit_small_subset``, ``lr_sweep`` and ``ensemble`` run them to the end.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Generator, Mapping, Sequence

import numpy as np

from simulator.core.errors import NumericError, ShapeError, StudioError, ValueInputError
from simulator.core.jobs import Progress, run_job
from simulator.core.params import Settings, check_choice, check_int, check_real, param
from simulator.functional.optim import OPTIMIZERS, WEIGHT_DECAY, make_optimizer
from simulator.labs.interpret import DigitsData, digits_data, digits_mlp, softmax
from simulator.nn.network import Network
from simulator.nn.trainer import Trainer

__all__ = [
    "SearchSpace", "data_tuple", "grid_search", "random_search", "TrialResult", "TrialProgress", "trials_job", "run_trials",
    "digits_trainer_factory", "initial_loss_check", "OverfitResult", "overfit_job", "overfit_small_subset",
    "lr_sweep_job", "lr_sweep", "suggest_lr", "EnsembleResult", "ensemble_job", "ensemble", "best_trial",
]

Config = dict[str, float]
# A coarse search is a few dozen short trainings; more than this many configurations is a typo, not a plan.
MAX_TRIALS = 10_000
# Search ranges are log-scale and > 0; their upper ends are the optimizers' own (a range the trainer would refuse
# must not be offered).
LR_RANGE = dict(low=0.0, low_open=True, high=100.0, log=True)
WD_RANGE = dict(low=0.0, low_open=True, high=WEIGHT_DECAY.high, log=True)


@dataclass(frozen=True)
class SearchSpace(Settings):
    """Log-scale bounds: lr in [lr_min, lr_max], weight_decay in [wd_min, wd_max] (all > 0)."""

    lr_min: float = param(1e-4, label="smallest learning rate", doc="lower end of the log-scale learning-rate range",
                          **LR_RANGE)
    lr_max: float = param(1e-1, label="largest learning rate", doc="upper end of the log-scale learning-rate range",
                          **LR_RANGE)
    wd_min: float = param(1e-5, label="smallest weight decay", doc="lower end of the log-scale weight-decay range",
                          **WD_RANGE)
    wd_max: float = param(1e-1, label="largest weight decay", doc="upper end of the log-scale weight-decay range",
                          **WD_RANGE)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.lr_min > self.lr_max:
            raise ValueInputError(f"search space: the smallest learning rate ({self.lr_min:g}) exceeds the largest "
                                  f"({self.lr_max:g})")
        if self.wd_min > self.wd_max:
            raise ValueInputError(f"search space: the smallest weight decay ({self.wd_min:g}) exceeds the largest "
                                  f"({self.wd_max:g})")

    @property
    def axes(self) -> dict[str, tuple[float, float]]:
        return {"lr": (self.lr_min, self.lr_max), "weight_decay": (self.wd_min, self.wd_max)}


def _space(space: Any) -> SearchSpace:
    """A SearchSpace, or a mapping {"lr": (low, high), "weight_decay": (low, high)}, checked."""
    if isinstance(space, SearchSpace):
        return space
    if not isinstance(space, Mapping):
        raise ValueInputError(f"a search space is a SearchSpace or a mapping of axis -> (low, high), got "
                              f"{type(space).__name__}")
    missing = [k for k in ("lr", "weight_decay") if k not in space]
    if missing:
        raise ValueInputError(f"the search space has no range for {' or '.join(map(repr, missing))}: give "
                              f"(low, high) for both 'lr' and 'weight_decay'")
    bounds = []
    for key in ("lr", "weight_decay"):
        v = space[key]
        try:
            lo, hi = v
        except (TypeError, ValueError):
            raise ValueInputError(f"the search space's {key!r} range must be (low, high), got {v!r}") from None
        bounds += [lo, hi]
    return SearchSpace(*bounds)


def grid_search(space: SearchSpace | Mapping[str, tuple[float, float]], n_per_axis: int) -> list[Config]:
    """Every combination of n_per_axis log-spaced values per axis (bounds included): n_per_axis**2 configs,
    lr varying slowest."""
    s = _space(space)
    n = check_int("grid search: values per axis", n_per_axis, 1, int(math.isqrt(MAX_TRIALS)))
    lrs = np.geomspace(s.lr_min, s.lr_max, n) if n > 1 else np.array([math.sqrt(s.lr_min * s.lr_max)])
    wds = np.geomspace(s.wd_min, s.wd_max, n) if n > 1 else np.array([math.sqrt(s.wd_min * s.wd_max)])
    return [{"lr": float(a), "weight_decay": float(b)} for a in lrs for b in wds]


def random_search(space: SearchSpace | Mapping[str, tuple[float, float]], n_trials: int, seed: int = 0
                  ) -> list[Config]:
    """n_trials configs, each axis sampled log-uniformly: exp(uniform(ln lo, ln hi)), seeded."""
    s = _space(space)
    n = check_int("random search: number of trials", n_trials, 1, MAX_TRIALS)
    rng = np.random.default_rng(check_int("seed", seed, 0))
    lr = np.exp(rng.uniform(math.log(s.lr_min), math.log(s.lr_max), n))
    wd = np.exp(rng.uniform(math.log(s.wd_min), math.log(s.wd_max), n))
    return [{"lr": float(a), "weight_decay": float(b)} for a, b in zip(lr, wd)]


@dataclass(frozen=True)
class TrialResult:
    """One trained trial: its config, final validation accuracy (0 when it diverged), final validation loss
    (nan when it diverged), diverged flag and the error text."""

    config: Config
    val_accuracy: float
    val_loss: float
    diverged: bool = False
    message: str = ""


@dataclass(frozen=True)
class TrialProgress:
    """What trials_job yields: how many of how many trials are done and the trial just finished (None while a trial
    is under way: it yields once an epoch so that closing it stops promptly)."""

    done: int
    total: int
    result: TrialResult | None


def data_tuple(data: Any) -> tuple:
    """(X_train, y_train, X_val, y_val) from a DigitsData or a 4-sequence (ValueInputError otherwise)."""
    try:
        tup = data.as_tuple() if isinstance(data, DigitsData) else tuple(data)
    except TypeError:
        tup = ()
    if len(tup) != 4:
        raise ValueInputError("data must be (X_train, y_train, X_val, y_val); the validation pair may be None")
    return tup


def _optimizer(name: Any) -> str:
    return check_choice("optimizer", name, tuple(OPTIMIZERS))


def digits_trainer_factory(data: DigitsData | Sequence[Any] | None = None,
                           make_network: Callable[[int], Network] | None = None, optimizer: str = "AdamW",
                           batch_size: int = 64, seed: int = 0) -> Callable[[Config, int], Trainer]:
    """make_trainer(config, epochs) for trials_job: a fresh network (make_network(seed), default digits_mlp) trained
    on digits (or ``data``) with ``optimizer`` at config's lr and weight_decay."""
    optimizer = _optimizer(optimizer)
    batch_size = check_int("batch size", batch_size, 1)
    seed = check_int("seed", seed, 0)
    tup = data_tuple(digits_data(seed) if data is None else data)
    make_network = make_network or (lambda s: digits_mlp(s))

    def make_trainer(config: Config, epochs: int) -> Trainer:
        net = make_network(seed)
        return Trainer(net, tup, optimizer, lr=config["lr"], batch_size=batch_size, epochs=epochs, seed=seed,
                       weight_decay=config.get("weight_decay", 0.0))
    return make_trainer


def _config(cfg: Any) -> Config:
    if not isinstance(cfg, Mapping) or "lr" not in cfg:
        raise ValueInputError(f"a trial is a mapping with at least 'lr' (and 'weight_decay'), got {cfg!r}")
    out = {"lr": check_real("trial learning rate", cfg["lr"], 0.0, low_open=True)}
    out["weight_decay"] = check_real("trial weight decay", cfg.get("weight_decay", 0.0), 0.0)
    return out


def trials_job(trials: Sequence[Config], make_trainer: Callable[[Config, int], Trainer], epochs: int = 2
               ) -> Generator[TrialProgress, None, list[TrialResult]]:
    """A job: train each trial for ``epochs`` (the lecture's coarse search: a couple of epochs each) and evaluate it
    on the validation set. A trial that diverges scores 0. Yields a TrialProgress after each trial; returns the
    list of results. Closing it stops between two updates (the trial under way is dropped)."""
    configs = [_config(c) for c in trials]
    epochs = check_int("epochs per trial", epochs, 1, 1000)
    return _trials(configs, make_trainer, epochs)


def _trials(configs: list[Config], make_trainer: Callable[[Config, int], Trainer], epochs: int
            ) -> Generator[TrialProgress, None, list[TrialResult]]:
    out: list[TrialResult] = []
    for i, cfg in enumerate(configs):
        try:
            with np.errstate(all="ignore"):
                tr = make_trainer(dict(cfg), epochs)
                for _ in tr.training(metrics_every=1_000_000):
                    yield TrialProgress(i, len(configs), None)      # a trial under way: close() may stop here
                vl, va = tr.network.evaluate(tr.Xv, tr.yv) if tr.Xv is not None else tr.network.evaluate(tr.X, tr.y)
            if not math.isfinite(vl):
                raise NumericError("the validation loss is not finite")
            res = TrialResult(dict(cfg), float(va), float(vl))
        except (NumericError, FloatingPointError) as exc:
            res = TrialResult(dict(cfg), 0.0, math.nan, True, str(exc))
        out.append(res)
        yield TrialProgress(i + 1, len(configs), res)
    return out


def run_trials(trials: Sequence[Config], make_trainer: Callable[[Config, int], Trainer], epochs: int = 2
               ) -> list[TrialResult]:
    """trials_job run to its end."""
    return run_job(trials_job(trials, make_trainer, epochs))


def best_trial(results: Sequence[TrialResult]) -> TrialResult | None:
    """The trial with the highest validation accuracy (the first one on ties), or None."""
    best = None
    for r in results:
        if best is None or r.val_accuracy > best.val_accuracy:
            best = r
    return best


# ================================================================================================== sanity checks

def _xy(network: Network, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(network, Network):
        raise ValueInputError(f"the sanity checks need a Network, got {type(network).__name__}")
    X, y = np.asarray(X), np.asarray(y)
    if X.ndim < 2 or len(X) == 0 or len(X) != len(y):
        raise ShapeError(f"the checks need N >= 1 samples with one label each, got X {X.shape} and y {y.shape}")
    return X, y


def initial_loss_check(network: Network, X: Any, y: Any) -> tuple[float, float]:
    """(the data loss of the untrained network in eval mode, without any regulariser, ln C). With small weights a
    softmax classifier gives every class about 1/C, so the first should be close to the second."""
    X, y = _xy(network, X, y)
    scores = network.forward(X, "eval")
    loss, _ = network.data_loss(scores, y)
    return float(loss), math.log(network.num_classes)


@dataclass(frozen=True)
class OverfitResult:
    """losses: the training loss after each update; final_loss and final_accuracy on the subset (eval mode)."""

    losses: np.ndarray
    final_loss: float
    final_accuracy: float
    n_samples: int
    optimizer: str = "Adam"


def overfit_job(network: Network, X: Any, y: Any, n: int = 20, steps: int = 200, lr: float = 1e-2,
                optimizer: str = "Adam", seed: int = 0) -> Generator[Progress, None, OverfitResult]:
    """A job: train on the first n samples of a seeded permutation (one full batch per update, no weight decay) for
    ``steps`` updates: a healthy model and training loop drive the loss to about zero. Yields Progress per update."""
    X, y = _xy(network, X, y)
    n = check_int("overfit: number of examples", n, 1, len(X))
    steps = check_int("overfit: number of updates", steps, 1, 100_000)
    lr = check_real("overfit: learning rate", lr, 0.0, low_open=True)
    optimizer = _optimizer(optimizer)
    seed = check_int("seed", seed, 0)
    idx = np.random.default_rng(seed).permutation(len(X))[:n]
    Xs, ys = X[idx], y[idx]
    tr = Trainer(network, (Xs, ys, None, None), optimizer, lr=lr, batch_size=len(Xs), epochs=steps, seed=seed,
                 weight_decay=0.0)
    return _overfit(tr, Xs, ys, optimizer)


def _overfit(tr: Trainer, Xs: np.ndarray, ys: np.ndarray, optimizer: str) -> Generator[Progress, None, OverfitResult]:
    for m in tr.training(metrics_every=10):
        yield Progress(m.iteration, tr.total_steps, "overfitting")
    loss, acc = tr.network.evaluate(Xs, ys)
    return OverfitResult(np.array(tr.history.loss), float(loss), float(acc), len(Xs), optimizer)


def overfit_small_subset(network: Network, X: Any, y: Any, n: int = 20, steps: int = 200, lr: float = 1e-2,
                         optimizer: str = "Adam", seed: int = 0) -> OverfitResult:
    """overfit_job run to its end."""
    return run_job(overfit_job(network, X, y, n, steps, lr, optimizer, seed))


@dataclass(frozen=True)
class SweepResult:
    """The learning-rate sweep: the rates and mini-batch losses of the updates made, the suggested rate and the
    optimizer that made them."""

    lrs: np.ndarray
    losses: np.ndarray
    suggested: float
    optimizer: str


def lr_sweep_job(network: Network, X: Any, y: Any, lr_min: float = 1e-5, lr_max: float = 10.0, iters: int = 100,
                 batch_size: int = 64, optimizer: str = "SGD", seed: int = 0, stop_factor: float = 4.0,
                 weight_decay: float = 0.0) -> Generator[Progress, None, SweepResult]:
    """A job: the lecture's step 3, ~100 updates with ``optimizer`` and the rate growing exponentially from lr_min to
    lr_max, recording each mini-batch loss. Stops early once the loss exceeds stop_factor x its best (or stops being
    finite). Returns a SweepResult whose lrs and losses have the same length. As in fastai's learning-rate finder,
    losses[i] is measured on mini-batch i just before the update that uses lrs[i]."""
    X, y = _xy(network, X, y)
    iters = check_int("sweep: number of updates", iters, 2, 100_000)
    lr_min = check_real("sweep: smallest learning rate", lr_min, 0.0, low_open=True)
    lr_max = check_real("sweep: largest learning rate", lr_max, lr_min, low_open=True)
    batch_size = check_int("batch size", batch_size, 1)
    optimizer = _optimizer(optimizer)
    seed = check_int("seed", seed, 0)
    stop_factor = check_real("sweep: stop factor", stop_factor, 1.0, low_open=True)
    weight_decay = check_real("weight decay", weight_decay, 0.0)
    return _sweep(network, X, y, lr_min, lr_max, iters, min(batch_size, len(X)), optimizer, seed, stop_factor,
                  weight_decay)


def _sweep(network: Network, X: np.ndarray, y: np.ndarray, lr_min: float, lr_max: float, iters: int,
           batch_size: int, optimizer: str, seed: int, stop_factor: float, weight_decay: float
           ) -> Generator[Progress, None, SweepResult]:
    lrs = lr_min * (lr_max / lr_min) ** (np.arange(iters) / (iters - 1))
    names = network.trainable_names        # frozen layers (Network.freeze) get no gradient and no update
    opt = make_optimizer(optimizer, network.trainable_parameters(), lr=float(lrs[0]), weight_decay=weight_decay)
    rng = np.random.default_rng(seed)
    losses = []
    order = rng.permutation(len(X))
    pos = 0
    best = math.inf
    for i in range(iters):
        if pos + batch_size > len(X):
            order, pos = rng.permutation(len(X)), 0
        idx = order[pos:pos + batch_size]
        pos += batch_size
        try:
            with np.errstate(all="ignore"):
                loss, grads = network.loss(X[idx], y[idx], "train")
        except StudioError:    # NumericError: the loss or a gradient blew up
            break
        if not math.isfinite(loss):
            break
        losses.append(loss)
        best = min(best, loss)
        if loss > stop_factor * best:
            break
        opt.lr = float(lrs[i])
        opt.step([grads[k] for k in names])
        yield Progress(i + 1, iters, "sweeping the learning rate")
    n = len(losses)
    lrs, losses = lrs[:n].copy(), np.array(losses)
    return SweepResult(lrs, losses, suggest_lr(lrs, losses) if n else math.nan, optimizer)


def lr_sweep(network: Network, X: Any, y: Any, lr_min: float = 1e-5, lr_max: float = 10.0, iters: int = 100,
             batch_size: int = 64, optimizer: str = "SGD", seed: int = 0, stop_factor: float = 4.0
             ) -> tuple[np.ndarray, np.ndarray]:
    """lr_sweep_job run to its end: (lrs, losses)."""
    r = run_job(lr_sweep_job(network, X, y, lr_min, lr_max, iters, batch_size, optimizer, seed, stop_factor))
    return r.lrs, r.losses


def suggest_lr(lrs: np.ndarray, losses: np.ndarray, smooth: int = 5) -> float:
    """A rule of thumb: the rate where the (moving-average) loss falls fastest per decade of lr."""
    lrs, losses = np.asarray(lrs, float), np.asarray(losses, float)
    if lrs.shape != losses.shape or lrs.ndim != 1:
        raise ShapeError(f"suggest_lr needs as many rates as losses, got {lrs.shape} and {losses.shape}")
    smooth = check_int("smoothing window", smooth, 1)
    if len(lrs) < smooth + 2:
        return float(lrs[np.argmin(losses)]) if len(lrs) else math.nan
    k = np.ones(smooth) / smooth
    s = np.convolve(losses, k, mode="valid")
    x = np.log10(lrs[smooth // 2: smooth // 2 + len(s)])
    slope = np.gradient(s, x)
    return float(10 ** x[int(np.argmin(slope))])


# ================================================================================================== ensembles

@dataclass(frozen=True)
class EnsembleResult:
    """seeds, each model's validation accuracy, the accuracy of the averaged softmax probabilities, and those
    probabilities (N, C)."""

    seeds: tuple[int, ...]
    single_accuracies: np.ndarray
    ensemble_accuracy: float
    probabilities: np.ndarray

    @property
    def mean_single(self) -> float:
        return float(np.mean(self.single_accuracies))


def ensemble_job(seeds: Sequence[int], make_network: Callable[[int], Network] | None = None,
                 data: DigitsData | Sequence[Any] | None = None, optimizer: str = "Adam", lr: float = 3e-3,
                 epochs: int = 10, batch_size: int = 64, weight_decay: float = 0.0
                 ) -> Generator[Progress, None, EnsembleResult]:
    """A job: train one model per seed (its own initialisation and batch order) and average their softmax
    probabilities on the validation set (lecture 8: different models overfit differently; averaging helps a
    little). Yields Progress(models trained, models); loads digits in the job when ``data`` is None."""
    seeds = tuple(check_int("ensemble seed", s, 0) for s in seeds)
    if not seeds:
        raise ValueInputError("ensemble: give at least one seed")
    optimizer = _optimizer(optimizer)
    lr = check_real("ensemble learning rate", lr, 0.0, low_open=True)
    epochs = check_int("ensemble epochs", epochs, 1, 1000)
    batch_size = check_int("batch size", batch_size, 1)
    weight_decay = check_real("weight decay", weight_decay, 0.0)
    return _ensemble(seeds, make_network or (lambda s: digits_mlp(s)), data, optimizer, lr, epochs, batch_size,
                     weight_decay)


def _ensemble(seeds: tuple[int, ...], make_network: Callable[[int], Network], data: Any, optimizer: str, lr: float,
              epochs: int, batch_size: int, weight_decay: float) -> Generator[Progress, None, EnsembleResult]:
    yield Progress(0, len(seeds), "preparing the data")
    Xtr, ytr, Xv, yv = data_tuple(digits_data(0) if data is None else data)
    if Xv is None or len(Xv) == 0:
        raise ValueInputError("an ensemble is judged on validation data: these data have none")
    accs, probs = [], []
    for i, s in enumerate(seeds):
        net = make_network(s)
        tr = Trainer(net, (Xtr, ytr, Xv, yv), optimizer, lr=lr, batch_size=batch_size, epochs=epochs, seed=s,
                     weight_decay=weight_decay)
        for _ in tr.training(metrics_every=1_000_000):
            yield Progress(i, len(seeds), f"training model {i + 1} of {len(seeds)}")
        p = softmax(net.forward(Xv, "eval"))
        probs.append(p)
        accs.append(float(np.mean(p.argmax(axis=1) == yv)))
        yield Progress(i + 1, len(seeds), f"trained {i + 1} of {len(seeds)} models")
    avg = np.mean(probs, axis=0)
    return EnsembleResult(seeds, np.array(accs), float(np.mean(avg.argmax(axis=1) == yv)), avg)


def ensemble(seeds: Sequence[int], make_network: Callable[[int], Network] | None = None,
             data: DigitsData | Sequence[Any] | None = None, optimizer: str = "Adam", lr: float = 3e-3,
             epochs: int = 10, batch_size: int = 64, weight_decay: float = 0.0) -> EnsembleResult:
    """ensemble_job run to its end."""
    return run_job(ensemble_job(seeds, make_network, data, optimizer, lr, epochs, batch_size, weight_decay))
