"""Training a Network: Trainer (mini-batches, loss, optimizer, schedule, early stopping), its metrics and History.

One update per ``step()``, so a caller can pause or stop anywhere; ``training()`` is the same loop as a job
(simulator/core/jobs.py): a generator yielding metrics and returning the History, cancelled by ``close()``.

What each step costs is what the plots need: the loss, batch accuracy and learning rate are measured every step;
the per-layer gradient norms (a full pass over every gradient) on the first step, every ``norms_every``-th step after
it and on the last step of each epoch. A step that does not measure them carries the latest measured norms (what a
plot holds) with ``norms_measured`` False, and History keeps NaN there; ``grad_norms()`` measures the last step's on
demand. Gradients are checked for NaN and infinity on measuring steps; between them a non-finite gradient reaches
the parameters and the next loss (checked every step) stops training naming the layer.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from simulator.core.errors import ShapeError, ValueInputError
from simulator.core.jobs import run_job
from simulator.core.params import check_int
from simulator.data import datasets
from simulator.nn.network import Network

__all__ = ["MAX_TRAINING_STEPS", "EpochMetrics", "History", "StepMetrics", "Trainer"]

MAX_TRAINING_STEPS = 10_000_000
NORMS_EVERY = 10


@dataclass(frozen=True)
class StepMetrics:
    """One update: iteration (1-based, over the whole run), epoch (0-based, the one this step belongs to), batch loss
    (regulariser included), batch accuracy (train mode), the learning rate used, per-layer gradient norms (measured
    at this step when ``norms_measured``, else the latest measured ones), and whether the step ended an epoch.

    On a batch trained with soft targets (mixup, CutMix) the batch accuracy counts a prediction as right when it is
    the class with the largest target weight (the argmax of the soft label: the image that dominates the mix; a tie
    goes to the lower class index, as numpy's argmax). With the contrastive "infonce" loss it is the top-1
    contrastive accuracy (Network.batch_accuracy: the other view of a row's image is its most similar row)."""

    iteration: int
    epoch: int
    loss: float
    accuracy: float
    lr: float
    grad_norms: Mapping[str, float]
    end_of_epoch: bool
    norms_measured: bool = True


@dataclass(frozen=True)
class EpochMetrics:
    """The end of an epoch: full-set loss and accuracy in eval mode (val NaN without validation data)."""

    epoch: int
    iteration: int
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    best_epoch: int
    stopped_early: bool


class History:
    """Metrics in numpy arrays that grow by doubling (views of the filled part are returned), so plots read them
    directly and a long run costs memory only for the steps it has taken. ``grad_norms`` (steps, layers) holds NaN
    on the steps that did not measure them (``norms_measured`` is the mask)."""

    _START = 4096

    def __init__(self, steps: int, epochs: int, layers: Sequence[str]):
        self._n = 0
        self._e = 0
        cap = max(1, min(steps, self._START))
        self._step = {k: np.full(cap, np.nan) for k in ("loss", "accuracy", "lr")}
        self._norms = np.full((cap, len(layers)), np.nan)
        self.norm_layers = tuple(layers)
        ecap = max(1, min(epochs, self._START))
        self._epoch = {k: np.full(ecap, np.nan) for k in ("train_loss", "train_accuracy", "val_loss",
                                                          "val_accuracy", "iteration")}

    @staticmethod
    def _grown(a: np.ndarray) -> np.ndarray:
        bigger = np.full((2 * a.shape[0],) + a.shape[1:], np.nan)
        bigger[:a.shape[0]] = a
        return bigger

    def add_step(self, m: StepMetrics) -> None:
        i = self._n
        if i == self._norms.shape[0]:
            self._step = {k: self._grown(v) for k, v in self._step.items()}
            self._norms = self._grown(self._norms)
        s = self._step
        s["loss"][i], s["accuracy"][i], s["lr"][i] = m.loss, m.accuracy, m.lr
        if m.norms_measured:
            self._norms[i] = [m.grad_norms[k] for k in self.norm_layers]
        self._n += 1

    def add_epoch(self, m: EpochMetrics) -> None:
        i = self._e
        if i == len(self._epoch["iteration"]):
            self._epoch = {k: self._grown(v) for k, v in self._epoch.items()}
        for k in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "iteration"):
            self._epoch[k][i] = getattr(m, k)
        self._e += 1

    @property
    def norms_measured(self) -> np.ndarray:
        """(steps,) bool: the steps whose gradient norms were measured."""
        return ~np.isnan(self._norms[:self._n]).any(axis=1) if self.norm_layers else np.ones(self._n, bool)

    def __getattr__(self, name: str) -> np.ndarray:
        if name.startswith("_"):
            raise AttributeError(name)
        if name in ("loss", "accuracy", "lr"):
            return self._step[name][:self._n]
        if name == "grad_norms":
            return self._norms[:self._n]
        if name in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
            return self._epoch[name][:self._e]
        if name == "epoch_iteration":
            return self._epoch["iteration"][:self._e]
        raise AttributeError(name)

    def __len__(self) -> int:
        return self._n


def iters_per_epoch(n: int, batch_size: int) -> int:
    """Mini-batches in one pass over n examples: ceil(n / batch_size), where a last batch of a single example is
    merged into the one before (batch norm cannot normalise one example)."""
    return max(1, -(-n // batch_size) - (1 if n % batch_size == 1 and n > 1 else 0))


class Trainer:
    """Mini-batch training of a Network, one update per ``step()``, so a worker thread can pause or stop anywhere.

    data: (X_train, y_train, X_val, y_val) (the validation pair may be None). The optimizer is one of
    simulator.functional.optim.OPTIMIZERS over the network's parameter arrays (updated in place by the fused
    kernels), built with ``lr`` (None: the optimizer's default) and ``optimizer_kwargs``. A ``schedule``
    (simulator.functional.schedules) sets the rate of every update (its own base_lr; pass ``lr`` too and the schedule
    is rebased on it). Each epoch visits the training set in a fresh seeded permutation. ``patience``: stop once the
    validation loss (the training loss without validation data) has not improved for that many epochs, restoring the
    best weights. ``norms_every``: how often the per-layer gradient norms are measured (see the module's docstring;
    1 measures every step). Frozen layers (Network.freeze) are read when the Trainer is made: their parameters are
    not given to the optimizer, and their layers have no gradient-norm curve. Changing the frozen set afterwards
    makes the next ``step()`` refuse (ValueInputError: start a new training) rather than train with an optimizer
    and a history laid out for the old set (a newly frozen layer's optimizer state, momentum included, would
    otherwise still move it; a newly unfrozen one would have no optimizer state): freeze first, then make the Trainer,
    as the playground does for each session.

    ``augment`` transforms each training batch (drawing from its own Generator, seeded ``[seed, 3]``):
    an ``AugmentSettings`` (simulator.data.datasets: the augmentation the preview shows) runs its label-preserving
    transforms and, with mixup or CutMix, mixes images and labels: the batch is trained on soft targets (B, C)
    (``augment_batch``, the preview's own function); a callable ``augment(x_batch, rng) -> x_batch`` keeps the
    labels; a callable with a true ``takes_labels`` attribute is called ``augment(x_batch, y_batch, rng)`` and
    returns (x_batch, targets), targets being labels (B,) or probability rows (B, C), one per returned input (a
    contrastive draw returns two views of each image, 2B inputs with their image ids). Soft targets need the softmax
    or MSE loss (the SVM's hinge needs one correct class: refused with ValueInputError). ``last_targets`` holds the
    targets of the last update.
    """

    def __init__(self, network: Network, data: Sequence[Any], optimizer: str = "Adam", lr: float | None = None,
                 schedule: Any = None, batch_size: int = 64, epochs: int = 10, patience: int | None = None,
                 seed: int = 0, augment: Any = None,
                 restore_best: bool = True, norms_every: int = NORMS_EVERY, **optimizer_kwargs: Any):
        from simulator.functional.optim import make_optimizer
        if len(data) != 4:
            raise ValueInputError("data must be (X_train, y_train, X_val, y_val); the validation pair may be None")
        self.network = network
        X, y, Xv, yv = data
        self.X = np.asarray(X)
        self.y = np.asarray(y)
        if self.X.shape[1:] != network.input_shape or self.X.shape[0] != self.y.shape[0] or len(self.X) == 0:
            raise ShapeError(f"training data X {self.X.shape} / y {self.y.shape} do not fit the network's input "
                             f"(N, {', '.join(map(str, network.input_shape))}) with one label per sample")
        self.Xv = None if Xv is None else np.asarray(Xv)
        self.yv = None if yv is None else np.asarray(yv)
        if self.Xv is not None and (self.yv is None or self.Xv.shape[1:] != network.input_shape
                                    or len(self.Xv) != len(self.yv)):
            raise ShapeError("validation data do not fit the network's input or have no matching labels")
        # checked and cast once (NaN refused here, not per step); batches are gathered from this array
        self._X_checked = network.check_input(self.X)
        self.batch_size = check_int("batch_size", batch_size, 1)
        self.epochs = check_int("epochs", epochs, 1)
        self.patience = None if patience is None else check_int("patience", patience, 1)
        self.seed = check_int("seed", seed, 0)
        self.norms_every = check_int("norms_every", norms_every, 1)
        self.augment = augment
        self.mixes_labels = self._check_augment(augment, network)
        self.last_targets: np.ndarray | None = None
        self.restore_best = restore_best
        self.optimizer_name = optimizer
        kwargs = dict(optimizer_kwargs)
        if lr is not None:
            kwargs["lr"] = lr
        self.schedule = schedule
        if schedule is not None and lr is not None:
            self.schedule = schedule.with_base(lr)
        # frozen layers (Network.freeze) are not given to the optimizer: no update, no optimizer state
        self.param_names = network.trainable_names
        self.frozen = network.frozen
        try:
            self.optimizer = make_optimizer(optimizer, network.trainable_parameters(), **kwargs)
        except TypeError as exc:
            raise ValueInputError(f"optimizer {optimizer}: {exc}") from None
        self.optimizer_kwargs = dict(self.optimizer.hyperparameters())
        self._rng = np.random.default_rng([self.seed, 2])
        self._aug_rng = np.random.default_rng([self.seed, 3])
        # A last mini-batch of a single example joins the one before it: batch norm needs two examples.
        n = len(self.X)
        self.iters_per_epoch = iters_per_epoch(n, self.batch_size)
        self.total_steps = self.iters_per_epoch * self.epochs
        if self.total_steps > MAX_TRAINING_STEPS:
            raise ValueInputError(f"{self.total_steps:,} training steps ({self.epochs} epochs of "
                                  f"{self.iters_per_epoch} batches) is more than {MAX_TRAINING_STEPS:,}: use fewer "
                                  f"epochs or larger batches")
        self._norm_groups = [(l.name, l.params) for l in network.layers if l.params and l.name not in network.frozen]
        self.history = History(self.total_steps, self.epochs, [name for name, _ in self._norm_groups])
        self.iteration = 0
        self.epoch = 0
        self._batch = 0
        self._order = self._rng.permutation(len(self.X))
        self.best_loss = math.inf
        self.best_epoch = -1
        self._best_state: dict[str, np.ndarray] | None = None
        self.stopped_early = False
        self._pending_eval = False
        self._last_grads: dict[str, np.ndarray] | None = None
        self._norms: Mapping[str, float] = {name: math.nan for name, _ in self._norm_groups}

    @staticmethod
    def _check_augment(augment: Any, network: Network) -> bool:
        """Whether the augmentation trains on its own targets (mixing); refuses what cannot work before training."""
        if augment is None:
            return False
        if isinstance(augment, datasets.AugmentSettings):
            if len(network.input_shape) != 3:
                raise ShapeError(f"image augmentation needs image inputs (C, H, W); this network takes "
                                 f"{network.input_shape}")
            soft = augment.mixes_labels
        elif callable(augment):
            soft = bool(getattr(augment, "takes_labels", False))
        else:
            raise ValueInputError(f"augment must be AugmentSettings or a callable, got {augment!r}")
        if soft and network.loss_kind == "svm":
            what = augment.pipeline()[-1] if isinstance(augment, datasets.AugmentSettings) else "this augmentation"
            raise ValueInputError(f"{what} trains on soft labels, which the multiclass SVM loss cannot take (its "
                                  f"hinge needs one correct class): choose softmax cross-entropy or MSE, or turn "
                                  f"the mixing off")
        return soft

    def _augmented(self, idx: np.ndarray, yb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The batch's inputs and targets after the augmentation (see the class docstring)."""
        aug, xb = self.augment, self.X[idx]
        if isinstance(aug, datasets.AugmentSettings):
            if aug.mixes_labels:
                return datasets.augment_batch(xb, yb, self.network.num_classes, aug, self._aug_rng)
            return aug.augmenter()(np.asarray(xb, np.float64), self._aug_rng), yb
        if getattr(aug, "takes_labels", False):
            out = aug(xb, yb, self._aug_rng)
            if not isinstance(out, tuple) or len(out) != 2:
                raise ValueInputError("an augmentation that takes labels must return (x_batch, targets)")
            xa, ta = out
            if len(np.asarray(ta)) != len(xa):
                raise ShapeError(f"the augmentation returned {len(np.asarray(ta))} targets for {len(xa)} inputs")
            return xa, np.asarray(ta)
        return aug(xb, self._aug_rng), yb

    @property
    def done(self) -> bool:
        return self.stopped_early or (self.epoch >= self.epochs and not self._pending_eval)

    @property
    def lr(self) -> float:
        """The rate of the next update."""
        return self.schedule.lr_at(self.iteration) if self.schedule is not None else self.optimizer.lr

    def _measure_norms(self, grads: Mapping[str, np.ndarray]) -> dict[str, float]:
        norms = {}
        for name, ps in self._norm_groups:
            sq = 0.0
            for p in ps:
                f = grads[p].ravel()
                sq += float(np.dot(f, f))
            norms[name] = math.sqrt(sq)
        return norms

    def grad_norms(self) -> dict[str, float]:
        """The per-layer gradient norms of the last step, measured now (empty before the first step)."""
        return {} if self._last_grads is None else self._measure_norms(self._last_grads)

    def step(self) -> StepMetrics:
        """One mini-batch update. After the epoch's last batch, end_of_epoch is True and evaluate() is due."""
        if self._pending_eval:  # the caller skipped evaluate(): the epoch's metrics still belong in the history
            self.evaluate()
        if self.done:
            raise ValueInputError("training is finished: no steps left")
        net = self.network
        if net.frozen != self.frozen:
            then, now = (", ".join(sorted(f)) or "none" for f in (self.frozen, net.frozen))
            raise ValueInputError(f"the frozen layers changed after the Trainer was made: start a new training "
                                  f"(a new Trainer; frozen when it was made: {then}, now: {now})")
        bs = self.batch_size
        last = self._batch == self.iters_per_epoch - 1
        idx = self._order[self._batch * bs:len(self._order) if last else (self._batch + 1) * bs]
        yb = self.y[idx]
        measure = last or self.iteration % self.norms_every == 0
        if self.augment is None:
            xb, checked = self._X_checked[idx], True
        else:
            (xb, yb), checked = self._augmented(idx, yb), False
        self.last_targets = yb
        loss, grads, scores = net.loss_grads_scores(xb, yb, "train", what=f"iteration {self.iteration + 1}: ",
                                                    checked=checked, check_grads=measure)
        # soft targets (mixing): the class with the largest weight counts as the label (StepMetrics)
        acc = net.batch_accuracy(scores, yb)
        self._last_grads = grads
        if measure:
            self._norms = self._measure_norms(grads)
        lr = self.schedule.apply(self.optimizer, self.iteration) if self.schedule is not None else self.optimizer.lr
        self.optimizer.step([grads[k] for k in self.param_names])
        self.iteration += 1
        self._batch += 1
        end = self._batch >= self.iters_per_epoch
        m = StepMetrics(self.iteration, self.epoch, loss, acc, float(lr), self._norms, end, measure)
        self.history.add_step(m)
        if end:
            self._batch = 0
            self._order = self._rng.permutation(len(self.X))
            self.epoch += 1
            self._pending_eval = True
        return m

    def evaluate(self) -> EpochMetrics:
        """Full-set train and validation loss and accuracy (eval mode) for the epoch just finished; updates early
        stopping. Called by run() (and by step() if it was skipped). With the InfoNCE loss the sets are scored in
        chunks of 2 x batch_size rows, the two views of a batch of images as the loss sees them in training: a row's
        negatives are the other rows of its chunk, so the epoch's numbers and the steps' are the same task
        (1,024-row chunks would be a harder one, and the held-out curve would sit below the steps' for that alone)."""
        chunk = 2 * self.batch_size if self.network.loss_kind == "infonce" else 1024
        tl, ta = self.network.evaluate(self._X_checked, self.y, chunk)
        if self.Xv is not None and len(self.Xv):
            vl, va = self.network.evaluate(self.Xv, self.yv, chunk)
            watch = vl
        else:
            vl, va = float("nan"), float("nan")
            watch = tl
        epoch = self.epoch - 1
        if self._pending_eval:
            self._pending_eval = False
            if watch < self.best_loss:
                self.best_loss, self.best_epoch = watch, epoch
                if self.patience is not None and self.restore_best:
                    self._best_state = self.network.state_dict()
            elif self.patience is not None and epoch - self.best_epoch >= self.patience:
                self.stopped_early = True
                if self.restore_best and self._best_state is not None:
                    self.network.load_state_dict(self._best_state)
            m = EpochMetrics(epoch, self.iteration, tl, ta, vl, va, self.best_epoch, self.stopped_early)
            self.history.add_epoch(m)
            return m
        return EpochMetrics(epoch, self.iteration, tl, ta, vl, va, self.best_epoch, self.stopped_early)

    def training(self, metrics_every: int = 1) -> Generator[StepMetrics | EpochMetrics, None, History]:
        """Training as a job (simulator/core/jobs.py): trains until done, yielding every ``metrics_every``-th
        StepMetrics (and the last one) and every EpochMetrics, and returns the History (which holds every step).
        ``close()`` cancels between two updates; the network keeps the weights of the last one."""
        every = check_int("metrics_every", metrics_every, 1)
        while not self.done:
            m = self.step()
            if m.iteration % every == 0 or m.end_of_epoch or self.done:
                yield m
            if m.end_of_epoch:
                yield self.evaluate()
        return self.history

    def run(self, on_yield: Callable[[StepMetrics | EpochMetrics], Any] | None = None) -> History:
        """Train until done (the training job driven to its end); ``on_yield`` sees every StepMetrics and
        EpochMetrics and stops the training early by returning True. Returns the history."""
        run_job(self.training(), on_yield)
        return self.history

    def config(self) -> dict[str, Any]:
        """What export_torch needs: optimizer name and hyperparameters, schedule, batch size, epochs, seed, and the
        augmentation when it is an AugmentSettings (None otherwise)."""
        aug = self.augment if isinstance(self.augment, datasets.AugmentSettings) else None
        return {"optimizer": self.optimizer_name, "hyperparameters": dict(self.optimizer_kwargs),
                "schedule": self.schedule, "batch_size": self.batch_size, "epochs": self.epochs, "seed": self.seed,
                "augment": aug}
