"""Hyperparameter search and the lecture-8 sanity checks: grid vs random (log-uniform) search over learning rate and
weight decay, brief training of each trial, initial loss vs ln(C), overfitting a tiny subset, a learning-rate sweep,
and seed ensembles. No Qt.

Weight decay is the optimizer's (decoupled for AdamW, the default; L2-in-the-gradient for SGD/Momentum/Adam), as
``Trainer(..., weight_decay=...)`` passes it through. Learning rates and weight decays are positive and searched on
a log scale, as the lecture recommends (1e-4 .. 1e-1 for lr; weight decay 1e-5 .. 1e-2).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from simulator.core.errors import NumericError, StudioError, ValueInputError
from simulator.labs.interpret import DigitsData, digits_data, digits_mlp, softmax
from simulator.nn.network import Network, Trainer
from simulator.functional.optim import make_optimizer

__all__ = [
    "SearchSpace", "grid_search", "random_search", "TrialResult", "run_trials", "digits_trainer_factory",
    "initial_loss_check", "OverfitResult", "overfit_small_subset", "lr_sweep", "suggest_lr", "EnsembleResult",
    "ensemble", "best_trial",
]

Config = dict[str, float]


@dataclass(frozen=True)
class SearchSpace:
    """Log-scale bounds: lr in [lr_min, lr_max], weight_decay in [wd_min, wd_max] (all > 0)."""

    lr_min: float = 1e-4
    lr_max: float = 1e-1
    wd_min: float = 1e-5
    wd_max: float = 1e-1

    def __post_init__(self) -> None:
        for name in ("lr_min", "lr_max", "wd_min", "wd_max"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise ValueInputError(f"search space: {name} must be a positive number (log scale), got {v!r}")
        if self.lr_min > self.lr_max or self.wd_min > self.wd_max:
            raise ValueInputError("search space: each lower bound must not exceed its upper bound")

    @property
    def axes(self) -> dict[str, tuple[float, float]]:
        return {"lr": (self.lr_min, self.lr_max), "weight_decay": (self.wd_min, self.wd_max)}


def _space(space: SearchSpace | Mapping[str, tuple[float, float]]) -> SearchSpace:
    if isinstance(space, SearchSpace):
        return space
    lr, wd = space["lr"], space["weight_decay"]
    return SearchSpace(float(lr[0]), float(lr[1]), float(wd[0]), float(wd[1]))


def grid_search(space: SearchSpace | Mapping[str, tuple[float, float]], n_per_axis: int) -> list[Config]:
    """Every combination of n_per_axis log-spaced values per axis (bounds included): n_per_axis**2 configs,
    lr varying slowest."""
    s = _space(space)
    n = int(n_per_axis)
    if n < 1:
        raise ValueInputError("grid_search: n_per_axis must be >= 1")
    lrs = np.geomspace(s.lr_min, s.lr_max, n) if n > 1 else np.array([math.sqrt(s.lr_min * s.lr_max)])
    wds = np.geomspace(s.wd_min, s.wd_max, n) if n > 1 else np.array([math.sqrt(s.wd_min * s.wd_max)])
    return [{"lr": float(a), "weight_decay": float(b)} for a in lrs for b in wds]


def random_search(space: SearchSpace | Mapping[str, tuple[float, float]], n_trials: int, seed: int = 0
                  ) -> list[Config]:
    """n_trials configs, each axis sampled log-uniformly: exp(uniform(ln lo, ln hi)), seeded."""
    s = _space(space)
    n = int(n_trials)
    if n < 1:
        raise ValueInputError("random_search: n_trials must be >= 1")
    rng = np.random.default_rng(seed)
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


def digits_trainer_factory(data: DigitsData | Sequence[Any] | None = None,
                           make_network: Callable[[int], Network] | None = None, optimizer: str = "AdamW",
                           batch_size: int = 64, seed: int = 0) -> Callable[[Config, int], Trainer]:
    """make_trainer(config, epochs) for run_trials: a fresh network (make_network(seed), default digits_mlp) trained
    on digits (or ``data``) with ``optimizer`` at config's lr and weight_decay."""
    if data is None:
        data = digits_data(seed)
    tup = data.as_tuple() if isinstance(data, DigitsData) else tuple(data)
    make_network = make_network or (lambda s: digits_mlp(s))

    def make_trainer(config: Config, epochs: int) -> Trainer:
        net = make_network(seed)
        return Trainer(net, tup, optimizer, lr=config["lr"], batch_size=batch_size, epochs=epochs, seed=seed,
                       weight_decay=config.get("weight_decay", 0.0))
    return make_trainer


def run_trials(trials: Sequence[Config], make_trainer: Callable[[Config, int], Trainer], epochs: int = 2,
               callback: Callable[[int, int, TrialResult], Any] | None = None,
               should_stop: Callable[[], bool] | None = None) -> list[TrialResult]:
    """Train each trial for ``epochs`` (the lecture's coarse search: a couple of epochs each) and evaluate it on the
    validation set. A trial that diverges scores 0. callback(done, total, result) after each trial; should_stop()
    is checked before every update, and a cancelled trial is dropped (the list then holds the finished ones)."""
    out: list[TrialResult] = []
    total = len(trials)
    for i, cfg in enumerate(trials):
        if should_stop is not None and should_stop():
            break
        tr = make_trainer(dict(cfg), int(epochs))
        try:
            with np.errstate(all="ignore"):
                tr.run(None, should_stop)
            if not tr.done:
                break
            vl, va = tr.network.evaluate(tr.Xv, tr.yv) if tr.Xv is not None else tr.network.evaluate(tr.X, tr.y)
            if not math.isfinite(vl):
                raise NumericError("the validation loss is not finite")
            res = TrialResult(dict(cfg), float(va), float(vl))
        except (NumericError, FloatingPointError) as exc:
            res = TrialResult(dict(cfg), 0.0, math.nan, True, str(exc))
        out.append(res)
        if callback is not None:
            callback(i + 1, total, res)
    return out


def best_trial(results: Sequence[TrialResult]) -> TrialResult | None:
    """The trial with the highest validation accuracy (the first one on ties), or None."""
    best = None
    for r in results:
        if best is None or r.val_accuracy > best.val_accuracy:
            best = r
    return best


# ================================================================================================== sanity checks

def initial_loss_check(network: Network, X: Any, y: Any) -> tuple[float, float]:
    """(the data loss of the untrained network in eval mode, without any regulariser, ln C). With small weights a
    softmax classifier gives every class about 1/C, so the first should be close to the second."""
    scores = network.forward(X, "eval")
    loss, _ = network.data_loss(scores, np.asarray(y))
    return float(loss), math.log(network.num_classes)


@dataclass(frozen=True)
class OverfitResult:
    """losses: the training loss after each update; final_loss and final_accuracy on the subset (eval mode)."""

    losses: np.ndarray
    final_loss: float
    final_accuracy: float
    n_samples: int


def overfit_small_subset(network: Network, X: Any, y: Any, n: int = 20, steps: int = 200, lr: float = 1e-2,
                         optimizer: str = "Adam", seed: int = 0,
                         should_stop: Callable[[], bool] | None = None) -> OverfitResult:
    """Train on the first n samples of a seeded permutation (one full batch per update, no weight decay) for
    ``steps`` updates: a healthy model and training loop drive the loss to about zero."""
    X, y = np.asarray(X), np.asarray(y)
    idx = np.random.default_rng(seed).permutation(len(X))[:int(n)]
    Xs, ys = X[idx], y[idx]
    tr = Trainer(network, (Xs, ys, None, None), optimizer, lr=lr, batch_size=len(Xs), epochs=int(steps), seed=seed)
    tr.run(None, should_stop)
    loss, acc = network.evaluate(Xs, ys)
    return OverfitResult(np.array(tr.history.loss), float(loss), float(acc), len(Xs))


def lr_sweep(network: Network, X: Any, y: Any, lr_min: float = 1e-5, lr_max: float = 10.0, iters: int = 100,
             batch_size: int = 64, optimizer: str = "SGD", seed: int = 0, stop_factor: float = 4.0
             ) -> tuple[np.ndarray, np.ndarray]:
    """The lecture's step 3: ~100 updates with the rate growing exponentially from lr_min to lr_max, recording each
    mini-batch loss. Stops early once the loss exceeds stop_factor x its best (or stops being finite). Returns
    (lrs, losses) of the updates made (same length). As in fastai's learning-rate finder, losses[i] is measured on
    mini-batch i just before the update that uses lrs[i]."""
    X, y = np.asarray(X), np.asarray(y)
    iters = int(iters)
    if iters < 2 or not 0 < lr_min < lr_max:
        raise ValueInputError("lr_sweep: needs iters >= 2 and 0 < lr_min < lr_max")
    lrs = lr_min * (lr_max / lr_min) ** (np.arange(iters) / (iters - 1))
    names = list(network.params)
    opt = make_optimizer(optimizer, [network.params[k] for k in names], lr=float(lrs[0]))
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
        except (NumericError, StudioError):
            break
        if not math.isfinite(loss):
            break
        losses.append(loss)
        best = min(best, loss)
        if loss > stop_factor * best:
            break
        opt.lr = float(lrs[i])
        opt.step([grads[k] for k in names])
    n = len(losses)
    return lrs[:n].copy(), np.array(losses)


def suggest_lr(lrs: np.ndarray, losses: np.ndarray, smooth: int = 5) -> float:
    """A rule of thumb: the rate where the (moving-average) loss falls fastest per decade of lr."""
    lrs, losses = np.asarray(lrs, float), np.asarray(losses, float)
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


def ensemble(seeds: Sequence[int], make_network: Callable[[int], Network] | None = None,
             data: DigitsData | Sequence[Any] | None = None, optimizer: str = "Adam", lr: float = 3e-3,
             epochs: int = 10, batch_size: int = 64, weight_decay: float = 0.0,
             callback: Callable[[int, int], Any] | None = None,
             should_stop: Callable[[], bool] | None = None, **trainer_kwargs: Any) -> EnsembleResult:
    """Train one model per seed (its own initialisation and batch order) and average their softmax probabilities on
    the validation set (lecture 8: different models overfit differently; averaging helps a little)."""
    if data is None:
        data = digits_data(0)
    Xtr, ytr, Xv, yv = data.as_tuple() if isinstance(data, DigitsData) else tuple(data)
    make_network = make_network or (lambda s: digits_mlp(s))
    seeds = tuple(int(s) for s in seeds)
    if not seeds:
        raise ValueInputError("ensemble: give at least one seed")
    accs, probs = [], []
    for i, s in enumerate(seeds):
        if should_stop is not None and should_stop():
            break
        net = make_network(s)
        kw = dict(trainer_kwargs)
        if weight_decay:
            kw["weight_decay"] = weight_decay
        tr = Trainer(net, (Xtr, ytr, Xv, yv), optimizer, lr=lr, batch_size=batch_size, epochs=epochs, seed=s, **kw)
        tr.run(None, should_stop)
        if not tr.done:  # cancelled part-way: a half-trained model does not join the ensemble
            break
        p = softmax(net.forward(Xv, "eval"))
        probs.append(p)
        accs.append(float(np.mean(p.argmax(axis=1) == yv)))
        if callback is not None:
            callback(i + 1, len(seeds))
    if not probs:
        return EnsembleResult((), np.zeros(0), math.nan, np.zeros((0, 0)))
    avg = np.mean(probs, axis=0)
    return EnsembleResult(seeds[:len(probs)], np.array(accs), float(np.mean(avg.argmax(axis=1) == yv)), avg)
