"""The training playground's model (no Qt): data settings and data, the network's layers, the training settings
(optimizer and its hyperparameters, schedule, batch size, epochs, early stopping, seed), one training session, and
the training job that steps it and yields metrics and pictures.

    model = PlaygroundLabModel()
    model.set_raw_data(*run_job(model.data_job()))          # spiral, 300 points, split and standardised
    session = model.new_session()                          # a fresh network (seeded) and Trainer
    for update in model.training_job(session): ...         # TrainUpdate(step, epoch, visuals) per update

Threads. The view runs ``data_job``, ``training_job`` and ``visuals_job`` on worker threads (gui.jobs.JobRunner) and
commits what they return (``set_raw_data``) on the UI thread, where ``changed`` is emitted. The training job holds
``session.lock`` for each update and while it draws pictures; everything else that reads the session's network
(``visuals_job``, ``snapshot``, ``save_weights``, ``export_torch``, ``graph``) takes the same lock, so it sees the
weights between two updates and never waits longer than one update.

Every setter validates first and changes nothing when it refuses (our ValueInputError / ShapeError, with a message
for the learner), then emits ``changed(what)`` with what changed: "data", "training", "network" or "loaded".
"""
from __future__ import annotations

import math

import difflib
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import numpy as np

from simulator.core.errors import ShapeError, StudioError, ValueInputError
from simulator.core.jobs import Job, Progress
from simulator.core.observer import Signal
from simulator.core.params import Settings, check_bool, check_choice, check_int, check_real, param
from simulator.data import datasets
from simulator.data.datasets import Standardizer
from simulator.data.preprocess import PREPROCESS, PREPROCESS_LABELS, Whitener, fit_preprocess
from simulator.functional.layers import smoothed_entropy
from simulator.functional.optim import LR, OPTIMIZERS, optimizer_info
from simulator.functional.schedules import SCHEDULES, WARMUP_PARAMS, Schedule, make_schedule
from simulator.labs.interpret import softmax
from simulator.nn.evaluation import EvalResult, EvalSettings, evaluation_job
from simulator.nn.layers import BuiltLayer, LayerSpec, Linear
from simulator.nn.network import Network, Objective, check_frozen, layer_names
from simulator.nn.trainer import EpochMetrics, StepMetrics, Trainer, iters_per_epoch

__all__ = ["DATASETS", "DIGITS", "DIGITS_COUNT", "GRAPH_BATCH", "MAX_CLASSES", "NO_SCHEDULE", "DataSettings",
           "PicturesFailed", "PlaygroundLabModel", "TrainSettings", "TrainUpdate", "TrainedModel", "TrainingFailed",
           "TrainingSession", "Visuals", "compute_visuals", "region_rgba", "training_job", "visuals_job",
           "LrScalingHint", "TRAINING_AUGMENT"]

DIGITS = "digits (8×8)"
DATASETS = (*datasets.TOY_NAMES, DIGITS)
DIGITS_COUNT = 1797
MAX_CLASSES = 10            # the class palette's size
MULTICLASS = datasets.MULTICLASS     # the toy sets whose number of classes is a setting
NO_SCHEDULE = "none"
GRAPH_BATCH = 4             # training examples in the graph the editor steps through
VIZ_INTERVAL = 0.2          # seconds between pictures while training (about 5 a second)
REGION_GRID = 150           # decision-region resolution (cells per side)
MAX_MISCLASSIFIED = 24
ADAPTIVE = ("Adam", "AdamW", "RMSProp")
# What switching between toy points and digits sets (the rest of the settings stay as the learner left them).
KIND_DEFAULTS: Mapping[str, Mapping[str, Any]] = {
    "toy": {"epochs": 300, "batch_size": 32},
    "digits": {"epochs": 20, "batch_size": 64},
}


# ================================================================================================== settings

@dataclass(frozen=True)
class DataSettings(Settings):
    dataset: str = param("spiral", choices=DATASETS, label="data set",
                         doc="toy 2-D points (click to add more) or scikit-learn's 8×8 handwritten digits")
    points: int = param(300, low=10, high=5000, label="points",
                        doc=f"how many samples (the digits set has {DIGITS_COUNT:,})")
    classes: int = param(3, low=2, high=MAX_CLASSES, label="classes", doc="classes of the spiral and blobs sets")
    noise: float = param(0.2, low=0.0, high=3.0, decimals=2, label="noise",
                         doc="how far the points scatter from the clean shape (blobs: each blob's std)")
    seed: int = param(0, low=0, high=99_999, label="data seed", doc="seeds the points and the train/val split")
    val_fraction: float = param(0.2, low=0.0, high=0.8, decimals=2, label="validation",
                                doc="share of the data held out for validation (stratified by class)")
    preprocess: str = param("normalise", choices=PREPROCESS, choice_labels=PREPROCESS_LABELS, label="preprocess",
                            doc="fitted on the training part only (its mean, std or PCA), then applied unchanged to "
                                "the validation part and to the decision-region grid.\n"
                                "PCA whiten rotates onto the principal axes and scales each to variance 1 (2-D points "
                                "only; on images it would scramble the pixels the convolutions look at)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.dataset == DIGITS and self.points > DIGITS_COUNT:
            raise ValueInputError(f"the digits set has {DIGITS_COUNT:,} images; choose at most that many points, "
                                  f"got {self.points:,}")
        if self.dataset == DIGITS and self.preprocess == "PCA whiten":
            raise ValueInputError("PCA whitening is offered for the 2-D points: on images it mixes every pixel with "
                                  "every other, so convolutions no longer see a picture; choose zero-centre or "
                                  "normalise")

    @property
    def kind(self) -> str:
        return "digits" if self.dataset == DIGITS else "toy"


_LR_DECL = {k: getattr(LR, k) for k in ("low", "low_open", "log", "label", "doc")}


@dataclass(frozen=True)
class TrainSettings(Settings):
    """How the network is trained. The optimizer's own hyperparameters (momentum, betas, weight decay, ...) are
    OPTIMIZERS[optimizer].settings, held by the model next to these; the schedule's are SCHEDULES[schedule]'s."""

    optimizer: str = param("Adam", choices=tuple(OPTIMIZERS), label="optimizer", doc="the update rule")
    lr: float = param(OPTIMIZERS["Adam"].params[0].default, **_LR_DECL)
    batch_size: int = param(32, low=1, high=4096, label="batch size", doc="examples per update")
    epochs: int = param(300, low=1, high=100_000, label="epochs", doc="passes over the training set")
    patience: int = param(0, low=0, high=10_000, label="patience",
                          doc="early stopping: stop when the validation loss has not improved for this many epochs, "
                              "and restore the best weights (0: off)")
    seed: int = param(0, low=0, high=99_999, label="seed", doc="seeds the initial weights, the batch order and dropout")
    schedule: str = param(NO_SCHEDULE, choices=(NO_SCHEDULE, *SCHEDULES), label="schedule",
                          doc="how the learning rate changes over the run (none: constant)")
    augment: bool = param(False, label="Train with augmentation",
                          doc="digits only: each mini-batch gets fresh random transformations, set up in the "
                              "augmentation preview; with mixup or CutMix the images and their labels are mixed "
                              "(the batch trains on soft labels)")


# What "Train with augmentation" uses until the learner sets it up in the preview: a shift of 1 px and a 10° tilt.
TRAINING_AUGMENT = datasets.AugmentSettings(degrees=10.0)
WARMUP_EPOCHS = 5               # the lecture's warm-up length for the linear scaling rule
WARMUP_SCHEDULE = "Constant"    # the schedule a warm-up is put on when there is none


@dataclass(frozen=True)
class LrScalingHint:
    """The linear scaling rule for a batch-size change: from ``old_batch`` at ``old_lr`` to ``new_batch`` at
    ``new_lr`` (= old_lr × new/old); ``warmup_steps`` > 0 when a warm-up should come with it (starting at
    ``start_factor`` × new_lr, i.e. at the old rate)."""

    old_batch: int
    new_batch: int
    old_lr: float
    new_lr: float
    warmup_steps: int = 0
    start_factor: float = 0.0
    warmup_epochs: float = 0.0

    @property
    def factor(self) -> float:
        return self.new_batch / self.old_batch

    @property
    def text(self) -> str:
        f = self.factor
        how = f"×{f:.3g}" if f >= 1 else f"÷{1 / f:.3g}"
        out = f"batch {how} → lr {how}: {self.old_lr:.3g} → {self.new_lr:.3g}"
        if self.warmup_steps:
            out += (f", with a linear warm-up over {self.warmup_steps} updates ({self.warmup_epochs:.3g} epochs) "
                    f"from the old rate")
        return out


@dataclass(frozen=True)
class NetworkSettings:
    """The layers the learner stacked (the output Linear(C) is added by the model) and the network-wide options,
    declared in simulator.nn.network.Objective."""

    layers: tuple[LayerSpec, ...] = ()
    objective: Objective = Objective()
    frozen: tuple[str, ...] = ()          # layer names ("fc1") frozen for transfer learning (Network.freeze)


_OUTPUT = "<the output layer>"      # stands for the Linear(C) the model appends, in _follow_frozen's alignment


def _follow_frozen(old: Sequence[LayerSpec], new: Sequence[LayerSpec], frozen: Sequence[str]
                   ) -> tuple[tuple[str, ...], list[str]]:
    """The frozen layer names of the stack ``old`` carried to the stack ``new`` (both without the output layer),
    and what happened, in words. Names are positions ("fc1": the first Linear), so a layer inserted above a frozen
    fc1 would take its name: the edit is found by aligning the two stacks (difflib, the builder changes one layer at
    a time), and a frozen layer follows its record to its new name. A frozen layer that was removed, or replaced by
    another kind, is no longer frozen; one whose settings were edited in place (same kind) stays frozen. A name that
    names no layer of ``old`` (never valid) is dropped: a kept name always names the same layer."""
    if not frozen:
        return (), []
    old_full, new_full = [*old, _OUTPUT], [*new, _OUTPUT]
    # the output Linear(C) counts among the Linear layers' names; its width does not matter for naming
    old_names = layer_names([*old, Linear(2)])
    new_names = layer_names([*new, Linear(2)])
    where: dict[int, int] = {}
    ops = difflib.SequenceMatcher(None, old_full, new_full, autojunk=False).get_opcodes()
    for tag, i1, i2, j1, j2 in ops:
        if tag == "equal" or (tag == "replace" and i2 - i1 == j2 - j1):
            for i, j in zip(range(i1, i2), range(j1, j2)):
                if tag == "equal" or type(old_full[i]) is type(new_full[j]):
                    where[i] = j
    keep: list[str] = []
    notes: list[str] = []
    for name in sorted(frozen):
        i = old_names.index(name) if name in old_names else None
        if i is None:
            notes.append(f"there is no layer {name} any more: no longer frozen")
        elif i not in where:
            what = "the output layer" if old_full[i] is _OUTPUT else old_full[i].label()
            notes.append(f"{name} ({what}) was removed or replaced: no longer frozen")
        else:
            keep.append(new_names[where[i]])
            if new_names[where[i]] != name and old_full[i] is not _OUTPUT:    # "(output)" says which that is
                notes.append(f"frozen {name} is now {new_names[where[i]]} (the layers before it changed)")
    return tuple(sorted(keep)), notes


# ================================================================================================== data



def data_job(settings: DataSettings) -> Job[tuple[np.ndarray, np.ndarray]]:
    """Make the raw data of ``settings``: (X (N, 2) or (N, 1, 8, 8), y (N,) int64). Digits are subsampled with the
    data seed (sorted indices) when fewer points than 1,797 are asked for."""
    if not isinstance(settings, DataSettings):
        raise ValueInputError(f"settings must be DataSettings, got {settings!r}")
    yield Progress(0, 1, "loading the digits…" if settings.kind == "digits" else "making the points…")
    if settings.kind == "digits":
        X, y = datasets.load_digits()
        if settings.points < len(X):
            idx = np.sort(np.random.default_rng(settings.seed).permutation(len(X))[:settings.points])
            X, y = X[idx], y[idx]
        return X, y
    return datasets.toy_data(settings.dataset, settings.points, settings.noise, settings.classes, settings.seed)


@dataclass(frozen=True)
class PreparedData:
    """The data as shown and as the network sees them: raw (X, y), their split, the split standardised with the
    training part's statistics (``standardizer``: the fitted preprocessing of simulator.data.preprocess, a
    Standardizer for zero-centre and normalise, a Whitener for PCA whitening, None for raw inputs), classes and the
    2-D view rectangle."""

    kind: str
    X_raw: np.ndarray
    y_raw: np.ndarray
    split_raw: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
    split: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
    standardizer: Standardizer | Whitener | None
    num_classes: int
    grid: tuple[float, float, float, float]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.X_raw.shape[1:])


def prepare(settings: DataSettings, X: Any, y: Any) -> PreparedData:
    """Split and standardise raw data (cheap: no loading)."""
    X, y = np.asarray(X), np.asarray(y)
    if X.ndim not in (2, 4) or len(X) != len(y) or len(X) < 2:
        raise ShapeError(f"the playground needs at least two samples (N, 2) or images (N, 1, 8, 8) with one label "
                         f"each, got {X.shape} and {y.shape}")
    kind = settings.kind
    classes = max(int(y.max()) + 1, 2)
    if kind == "toy" and settings.dataset in MULTICLASS:
        classes = max(classes, settings.classes)
    if kind == "digits":
        classes = 10
    Xtr, ytr, Xv, yv = datasets.train_val_split(X, y, settings.val_fraction, seed=settings.seed)
    if len(Xtr) == 0:
        raise ValueInputError("the training set is empty: use more points or a smaller validation share")
    stats = fit_preprocess(Xtr, settings.preprocess)        # training statistics only
    if stats is not None:
        Xtr_s, Xv_s = stats.apply(Xtr), (stats.apply(Xv) if len(Xv) else Xv.astype(np.float64))
    else:
        Xtr_s, Xv_s = Xtr.astype(np.float64), Xv.astype(np.float64)
    grid = (-1.0, 1.0, -1.0, 1.0)
    if kind == "toy":
        lo, hi = X.min(axis=0), X.max(axis=0)
        span = np.maximum(hi - lo, 1e-6)
        half = span.max() / 2 + 0.12 * span.max()
        cx, cy = (lo + hi) / 2
        grid = (float(cx - half), float(cx + half), float(cy - half), float(cy + half))
    return PreparedData(kind, X, y, (Xtr, ytr, Xv, yv), (Xtr_s, ytr, Xv_s, yv), stats, classes, grid)


# ================================================================================================== training

@dataclass
class TrainingSession:
    """One training run: the network, its Trainer and what the pictures need. kind 'toy': ``grid`` = (x0, x1, y0, y1)
    in raw data coordinates and ``transform`` maps raw points to network inputs (standardisation). The job holds
    ``lock`` while it updates or reads the network; ``image_index`` and ``visuals_requested`` are set by the view."""

    network: Network
    trainer: Trainer
    kind: str
    num_classes: int
    class_rgb: np.ndarray                      # (K, 3) float64 class colours for the regions
    grid: tuple[float, float, float, float] = (-1.0, 1.0, -1.0, 1.0)
    transform: Callable[[np.ndarray], np.ndarray] | None = None
    lock: threading.RLock = field(default_factory=threading.RLock)
    image_index: int = 0
    visuals_requested: bool = True

    @property
    def iteration(self) -> int:
        return self.trainer.iteration


@dataclass
class Visuals:
    """One set of pictures of the weights after ``iteration`` updates."""

    iteration: int
    region: np.ndarray | None = None           # (G, G, 4) uint8, row = y, col = x
    grid: tuple[float, float, float, float] = (0.0, 1.0, 0.0, 1.0)   # the region's (x0, x1, y0, y1)
    confusion: np.ndarray | None = None        # (K, K) int64 counts, row = true, col = predicted
    misclassified: np.ndarray | None = None    # validation indices
    mis_pred: np.ndarray | None = None
    weights: np.ndarray | None = None          # (F, h, w) first layer's filters / weight images
    weights_title: str = ""
    maps: np.ndarray | None = None             # (F, H, W) activation maps of the chosen image
    maps_title: str = ""
    maps_index: int = 0
    maps_pred: int = -1
    # fractional max pooling's test-time averaging: (draws, validation accuracy with one region draw, averaged)
    draws_accuracy: tuple[int, float, float] | None = None


@dataclass(frozen=True)
class TrainUpdate:
    """What the training job yields once per update: the step's metrics, the epoch's when the step ended one, and
    pictures when they were due (at most about 5 a second, and on request)."""

    step: StepMetrics
    epoch: EpochMetrics | None = None
    visuals: Visuals | None = None


def region_rgba(probs: np.ndarray, class_rgb: np.ndarray, g: int) -> np.ndarray:
    """TensorFlow Playground's look: each cell mixes the class colours by predicted probability and fades to white
    where the network is unsure (max probability near 1/K). probs (g*g, K) -> (g, g, 4) uint8."""
    K = probs.shape[1]
    mix = probs @ class_rgb[:K]                                   # (n, 3)
    conf = (probs.max(axis=1) - 1.0 / K) / (1.0 - 1.0 / K)       # 0 unsure .. 1 certain
    alpha = (0.1 + 0.42 * np.clip(conf, 0, 1))[:, None]
    rgb = 255.0 + alpha * (mix - 255.0)
    out = np.empty((g * g, 4), np.uint8)
    out[:, :3] = np.clip(np.round(rgb), 0, 255)
    out[:, 3] = 255
    return out.reshape(g, g, 4)


def compute_visuals(session: TrainingSession, image_index: int | None = None) -> Visuals:
    """The pictures for the session's current weights (call with ``session.lock`` held, or from the job)."""
    net, trainer = session.network, session.trainer
    v = Visuals(trainer.iteration)
    if session.kind == "toy":
        x0, x1, y0, y1 = v.grid = session.grid
        g = REGION_GRID
        gx, gy = np.meshgrid(np.linspace(x0, x1, g), np.linspace(y0, y1, g))   # row = y, col = x
        pts = np.c_[gx.ravel(), gy.ravel()]
        if session.transform is not None:
            pts = session.transform(pts)
        with np.errstate(all="ignore"):
            probs = softmax(net.forward(pts, "eval").astype(np.float64))
        v.region = region_rgba(np.nan_to_num(probs, nan=1.0 / probs.shape[1]), session.class_rgb, g)
        return v
    Xv, yv = trainer.Xv, trainer.yv
    if Xv is not None and len(Xv):
        pred = net.predict(Xv)
        K = session.num_classes
        v.confusion = np.bincount(yv * K + pred, minlength=K * K).reshape(K, K)
        wrong = np.flatnonzero(pred != yv)[:MAX_MISCLASSIFIED]
        v.misclassified, v.mis_pred = wrong, pred[wrong]
        draws = max(l.spec.eval_draws() for l in net.layers)
        if draws > 1:                    # pred averaged the draws; seed 0 is the first draw alone
            one = np.argmax(net.forward(Xv, "eval", seed=0), axis=1)
            v.draws_accuracy = (draws, float(np.mean(one == yv)), float(np.mean(pred == yv)))
    first = next((l for l in net.layers if l.spec.ROLE == "weights"), None)
    if first is not None:
        w = net.params[first.params[0]].astype(np.float64)
        if w.ndim == 4:                              # Conv2d filters (F, C, k, k)
            v.weights = w[:, 0] if w.shape[1] == 1 else w.mean(axis=1)
            v.weights_title = f"{first.name} filters ({w.shape[0]} × {w.shape[2]}×{w.shape[3]})"
        elif w.shape[0] == 64:
            v.weights = w.T.reshape(-1, 8, 8)[:64]
            v.weights_title = f"{first.name} weights as 8×8 images (first {min(64, w.shape[1])} units)"
    X = Xv if Xv is not None and len(Xv) else trainer.X
    index = session.image_index if image_index is None else image_index
    i = int(min(max(index, 0), len(X) - 1))
    v.maps_index = i
    conv_i = next((k for k, l in enumerate(net.layers) if l.spec.ROLE == "weights" and len(l.out_shape) == 3), None)
    outs = net.layer_outputs(X[i:i + 1], "eval")
    v.maps_pred = int(np.argmax(outs[-1][0]))
    if conv_i is not None:
        k = conv_i
        if k + 1 < len(net.layers) and net.layers[k + 1].spec.ROLE == "activation":
            k += 1                                   # what the next layer sees: after the non-linearity
        v.maps = outs[k][0].astype(np.float64)
        v.maps_title = f"{net.layers[k].title} maps"
    return v


class TrainingFailed(StudioError):
    """An update failed (a diverged loss, non-finite gradients): the message names the iteration and the layer."""


class PicturesFailed(StudioError):
    """Drawing the pictures failed (a bug): training stops and says so."""


def _pictures(session: TrainingSession) -> Visuals | None:
    try:
        return compute_visuals(session)
    except StudioError:
        return None             # a diverged network has nothing to show; the training step says why
    except Exception as exc:    # noqa: BLE001 (a bug in the pictures: stop the run and say so)
        raise PicturesFailed(f"Training stopped after iteration {session.trainer.iteration}: drawing the pictures "
                             f"failed: {type(exc).__name__}: {exc}") from exc


def training_job(session: TrainingSession, viz_interval: float = VIZ_INTERVAL) -> Job[int]:
    """Train the session until its Trainer is done, one TrainUpdate per update (metrics every step; the epoch's at
    its end; pictures when ``viz_interval`` seconds have passed, when ``session.visuals_requested`` is set and after
    the last update). Returns the number of updates. A failing update raises our error naming the iteration.
    Pausing, stepping and cancelling are the runner's: the job only ever stops between two updates."""
    trainer = session.trainer
    last_viz = time.monotonic()
    while not trainer.done:
        with session.lock:
            try:
                m = trainer.step()
                em = trainer.evaluate() if m.end_of_epoch else None
            except StudioError as exc:
                raise TrainingFailed(f"Training stopped at iteration {trainer.iteration + 1}: {exc}") from exc
            now = time.monotonic()
            v = None
            if session.visuals_requested or trainer.done or now - last_viz >= viz_interval:
                session.visuals_requested = False
                v = _pictures(session)
                last_viz = time.monotonic()
        yield TrainUpdate(m, em, v)
    return trainer.iteration


def visuals_job(session: TrainingSession) -> Job[Visuals | None]:
    """The pictures of the current weights, between two updates of a (paused) training job."""
    if False:  # a job is a generator; this one has nothing to report before its result
        yield None
    with session.lock:
        return _pictures(session)


class TrainedModel(NamedTuple):
    """What ``model_trained`` hands on: a copy of the network, (X, y, Xv, yv) as the network sees them (standardised
    when the standardiser is not None) and the Standardizer (``apply``: raw -> input, ``invert``: input -> raw,
    ``mean`` (C, H, W) / ``std`` (C,) for images). Unpacks as InterpretLab.set_network's arguments."""

    network: Network
    data: tuple
    standardizer: Standardizer | None


# ================================================================================================== the model

class PlaygroundLabModel:
    """The playground's state. Read the attributes; change them through the setters (which validate first)."""

    def __init__(self, data: DataSettings | None = None, train: TrainSettings | None = None):
        self.changed = Signal()
        self._data_settings = data if data is not None else DataSettings()
        self._train = train if train is not None else TrainSettings()
        if not isinstance(self._data_settings, DataSettings) or not isinstance(self._train, TrainSettings):
            raise ValueInputError("PlaygroundLabModel takes DataSettings and TrainSettings")
        self._hyper: Settings = OPTIMIZERS[self._train.optimizer].settings(lr=self._train.lr)
        self._schedule_params: dict[str, Any] = {}
        self._warmup: dict[str, Any] = {}
        self._network = NetworkSettings()
        self.data: PreparedData | None = None
        # weights from a file: (file name, state_dict). Every new session starts from them while they fit.
        self.loaded: tuple[str, dict[str, np.ndarray]] | None = None
        self.notice = ""
        # what the last change of the layer stack did to the frozen layers ("" when nothing): the Freeze panel shows
        # it, and the next session's notice carries it
        self.frozen_notice = ""
        self._announce_frozen = False
        self._augment = TRAINING_AUGMENT

    # ------------------------------------------------------------------------------------------------- reading
    @property
    def data_settings(self) -> DataSettings:
        return self._data_settings

    @property
    def train(self) -> TrainSettings:
        return self._train

    @property
    def network_settings(self) -> NetworkSettings:
        """The learner's layers and the network-wide Objective (init, loss, regulariser, label smoothing)."""
        return self._network

    @property
    def hyper(self) -> Settings:
        """The optimizer's hyperparameters (OPTIMIZERS[train.optimizer].settings; lr equals train.lr)."""
        return self._hyper

    @property
    def kind(self) -> str:
        return self._data_settings.kind

    @property
    def schedule_params(self) -> dict[str, Any]:
        return dict(self._schedule_params)

    @property
    def warmup(self) -> dict[str, Any]:
        return dict(self._warmup)

    def default_lr(self, optimizer: str, kind: str | None = None) -> float:
        """A good first rate: the optimizer's declared default on toy points; on digits (a CNN) 0.003 for the
        adaptive ones and 0.03 for the SGD family."""
        info = optimizer_info(optimizer)
        if (kind or self.kind) == "digits":
            return 0.003 if optimizer in ADAPTIVE else 0.03
        return float(info.params[0].default)

    # ------------------------------------------------------------------------------------------------- data
    def set_data_settings(self, settings: DataSettings) -> bool:
        """Take new data settings; True when the data must be made again (``data_job``), False when only the
        split or the scaling changed (done here). Switching between points and digits also sets the kind's
        epochs, batch size and rate (KIND_DEFAULTS, ``default_lr``)."""
        regenerate, kind_changed = self._take_data_settings(settings)
        if kind_changed:
            self.changed.emit("training")
        self.changed.emit("data")
        return regenerate

    def _take_data_settings(self, settings: DataSettings) -> tuple[bool, bool]:
        """set_data_settings without announcing it: (whether the data must be made again, whether the kind
        changed)."""
        if not isinstance(settings, DataSettings):
            raise ValueInputError(f"settings must be DataSettings, got {settings!r}")
        old = self._data_settings
        regenerate = self.data is None or any(getattr(old, k) != getattr(settings, k)
                                              for k in ("dataset", "points", "classes", "noise", "seed"))
        if not regenerate:
            data = prepare(settings, self.data.X_raw, self.data.y_raw)
            self._data_settings = settings
            self.data = data
        else:
            # the old points do not belong to the new settings: none until data_job's result arrives
            self._data_settings = settings
            self.data = None
        if settings.kind != old.kind:
            lr = self.default_lr(self._train.optimizer, settings.kind)
            self._train = self._train.replace(lr=lr, **KIND_DEFAULTS[settings.kind],
                                              augment=self._train.augment and settings.kind == "digits")
            self._hyper = self._hyper.replace(lr=lr)
        return regenerate, settings.kind != old.kind

    def dataset_defaults(self, dataset: str) -> dict[str, Any]:
        """The data settings that go with choosing ``dataset``: its noise, and all 1,797 digits (300 points when
        coming back from the digits)."""
        dataset = check_choice("data set", dataset, DATASETS)
        if dataset == DIGITS:
            out = {"dataset": dataset, "points": DIGITS_COUNT}
            if self._data_settings.preprocess == "PCA whiten":     # points only
                out["preprocess"] = "normalise"
            return out
        out: dict[str, Any] = {"dataset": dataset, "noise": datasets.TOY_DEFAULTS[dataset].noise}
        if self.kind == "digits":
            out["points"] = DataSettings().points
        return out

    def data_job(self, settings: DataSettings | None = None) -> Job[tuple[np.ndarray, np.ndarray]]:
        return data_job(settings or self._data_settings)

    def set_raw_data(self, X: Any, y: Any) -> PreparedData:
        """Commit data made by ``data_job`` (or edited by clicks): split and standardise them."""
        self.data = prepare(self._data_settings, X, y)
        notes = self._fit_frozen()               # the frozen layers against the data's shapes
        if notes:
            self._note_frozen(notes)
        self.changed.emit("data")
        return self.data

    def add_point(self, x: float, y: float, label: int) -> None:
        """Add a 2-D point of class ``label`` (toy data only)."""
        d = self._need_toy()
        x, y = check_real("x", x), check_real("y", y)
        label = check_int("class", label, 0, d.num_classes - 1)
        self.set_raw_data(np.vstack([d.X_raw, [[x, y]]]), np.append(d.y_raw, np.int64(label)))

    def remove_nearest(self, x: float, y: float) -> None:
        """Remove the point nearest (x, y) (two points always stay)."""
        d = self._need_toy()
        x, y = check_real("x", x), check_real("y", y)
        if len(d.X_raw) <= 2:
            raise ValueInputError("two points must stay: the network needs something to learn from")
        k = int(np.argmin(np.sum((d.X_raw - [x, y]) ** 2, axis=1)))
        self.set_raw_data(np.delete(d.X_raw, k, axis=0), np.delete(d.y_raw, k))

    def _need_toy(self) -> PreparedData:
        if self.data is None or self.data.kind != "toy":
            raise ValueInputError("points can be added and removed on the 2-D data sets only")
        return self.data

    # ------------------------------------------------------------------------------------------------- training
    def set_training(self, settings: TrainSettings, hyper: Any = None) -> None:
        """Take new training settings and, optionally, the optimizer's hyperparameters (a mapping or Settings
        without lr; the others keep their values, or their defaults when the optimizer changed)."""
        if not isinstance(settings, TrainSettings):
            raise ValueInputError(f"settings must be TrainSettings, got {settings!r}")
        info = OPTIMIZERS[settings.optimizer]
        base = {} if settings.optimizer != self._train.optimizer else self._hyper.as_dict()
        given = hyper.as_dict() if isinstance(hyper, Settings) else dict(hyper or {})
        new_hyper = info.settings(**info.values({**base, **given, "lr": settings.lr}))
        if settings.schedule != self._train.schedule:
            self._schedule_params = {}
        self._train, self._hyper = settings, new_hyper
        self.changed.emit("training")

    def set_optimizer(self, name: str) -> None:
        """Switch the optimizer: its declared hyperparameter defaults and a good first rate for the data."""
        info = optimizer_info(name)
        lr = self.default_lr(name)
        self._train = self._train.replace(optimizer=name, lr=lr)
        self._hyper = info.settings(lr=lr)
        self.changed.emit("training")

    def set_schedule(self, name: str, params: Mapping[str, Any] | None = None,
                     warmup: Mapping[str, Any] | None = None) -> None:
        """The schedule ``name`` (NO_SCHEDULE or a key of SCHEDULES) with its declared parameters (the others at
        their defaults; total_steps at the whole run) and the warm-up's (warmup_steps, start_factor)."""
        name = check_choice("schedule", name, (NO_SCHEDULE, *SCHEDULES))
        params, warmup = dict(params or {}), dict(warmup or {})
        if name != NO_SCHEDULE:
            self._schedule_for(name, params, warmup, self.total_steps() or 1)   # validates
        elif params:
            raise ValueInputError("no schedule: there are no schedule parameters to set")
        self._train = self._train.replace(schedule=name)
        self._schedule_params, self._warmup = params, warmup
        self.changed.emit("training")

    def schedule_defaults(self, name: str) -> dict[str, Any]:
        """The declared defaults of schedule ``name``'s parameters, total_steps set to the whole run."""
        info = SCHEDULES[check_choice("schedule", name, tuple(SCHEDULES))]
        out = {p.name: p.default for p in info.params}
        if "total_steps" in out and self.total_steps():
            out["total_steps"] = self.total_steps()
        return out

    def total_steps(self) -> int:
        """Updates in the whole run with the current data, batch size and epochs (0 without data)."""
        if self.data is None:
            return 0
        return iters_per_epoch(len(self.data.split[0]), self._train.batch_size) * self._train.epochs

    def _schedule_for(self, name: str, params: Mapping[str, Any], warmup: Mapping[str, Any],
                      total: int) -> Schedule:
        full = {**self.schedule_defaults(name), **params}
        if "total_steps" in full and "total_steps" not in params:
            full["total_steps"] = max(total, 1)
        w = {p.name: p.default for p in WARMUP_PARAMS}
        w.update(warmup)
        return make_schedule(name, self._train.lr, **w, **full)

    def schedule(self) -> Schedule | None:
        """The schedule of the next session (None: the constant rate)."""
        if self._train.schedule == NO_SCHEDULE:
            return None
        return self._schedule_for(self._train.schedule, self._schedule_params, self._warmup, self.total_steps())

    def optimizer_kwargs(self) -> dict[str, Any]:
        """The Trainer's optimizer keyword arguments (lr included, Adam's betas packed)."""
        return OPTIMIZERS[self._train.optimizer].kwargs(self._hyper)

    def apply_config(self, config: Mapping[str, Any]) -> str:
        """Take a configuration found by the search lab: keys ``optimizer``, ``lr``, ``weight_decay`` (each
        optional; other keys are ignored). Returns a note for the status line: empty, or that this optimizer has no
        weight decay (the decay is then not applied). Nothing changes when a value is refused."""
        if not isinstance(config, Mapping):
            raise ValueInputError(f"a configuration is a mapping of optimizer, lr and weight_decay, got {config!r}")
        name = config.get("optimizer", self._train.optimizer)
        info = optimizer_info(name)
        lr = config.get("lr", self._train.lr if name == self._train.optimizer else self.default_lr(name))
        train = self._train.replace(optimizer=name, lr=lr)
        values = {} if name != self._train.optimizer else self._hyper.as_dict()
        values["lr"] = train.lr
        note = ""
        if "weight_decay" in config:
            if "weight_decay" in info.param_names:
                values["weight_decay"] = config["weight_decay"]
            elif config["weight_decay"]:
                note = f"{name} takes no weight decay: {config['weight_decay']:g} not applied"
        hyper = info.settings(**values)
        self._train, self._hyper = train, hyper
        self.changed.emit("training")
        return note

    # ------------------------------------------------------------------------------------------------- network
    def set_network(self, layers: Sequence[LayerSpec], **objective: Any) -> None:
        """The learner's layers (the output Linear(C) is added for the data's classes) and the network-wide options
        (init, loss, reg, reg_kind: Objective's declared settings, validated there). Frozen layers follow their
        records through the edit (_follow_frozen: a layer inserted above a frozen fc1 makes it fc2); a frozen layer
        that is gone stops being frozen, and never every layer stays frozen; ``frozen_notice`` says what changed."""
        layers = tuple(layers)
        for i, s in enumerate(layers):
            if not isinstance(s, LayerSpec):
                raise ValueInputError(f"layer {i + 1} is not a layer spec: {s!r}")
        old = self._network
        goal = Objective(**objective)
        frozen, notes = _follow_frozen(old.layers, layers, old.frozen)
        self._network = NetworkSettings(layers, goal, frozen)
        notes += self._fit_frozen()
        if old.layers != layers or notes:
            self._note_frozen(notes)
        self.changed.emit("network")

    @property
    def frozen(self) -> tuple[str, ...]:
        """The names of the layers frozen in the next session (transfer learning)."""
        return self._network.frozen

    def freezable_layers(self) -> list[tuple[str, str]]:
        """(name, label) of every layer with parameters, the output layer last ([] for an impossible stack). From
        the layer records' shapes alone (nothing allocated): the Freeze panel asks on every change."""
        try:
            stack = self._stack()
        except StudioError:
            return []
        return [(l.name, l.spec.label()) for l in stack if l.params]

    def set_frozen(self, names: Sequence[str]) -> None:
        """Freeze exactly these layers in the next sessions (their parameters get no gradient and no update).
        Refused with our error (and nothing changes) for unknown names, layers without parameters, all of them, or
        an impossible stack. Checked against the stack's shapes (nothing allocated), as the network will check them."""
        names = tuple(sorted({str(n) for n in names}))
        check_frozen(self._stack(), names)
        n = self._network
        self._network = NetworkSettings(n.layers, n.objective, names)
        self._note_frozen([])
        self.changed.emit("network")

    def _note_frozen(self, notes: list[str]) -> None:
        self.frozen_notice = "; ".join(notes)
        self._announce_frozen = bool(notes)

    def _stack(self) -> list[BuiltLayer]:
        """The next session's layers (names, shapes, parameter names) from the records alone: the data's input shape
        and classes, or, while the data are being made, the kind's ((2,) points, (1, 8, 8) digits). ShapeError /
        ValueInputError for an impossible stack."""
        d = self.data
        if d is not None:
            shape, classes = d.input_shape, d.num_classes
        elif self.kind == "digits":
            shape, classes = (1, 8, 8), 10
        else:
            ds = self._data_settings
            shape, classes = (2,), ds.classes if ds.dataset in MULTICLASS else 2
        n = self._network
        return Network.layer_stack(shape, [*n.layers, Linear(classes)], n.objective.loss)

    def _fit_frozen(self) -> list[str]:
        """Keep only frozen names the stack's shapes accept (layers with parameters, never all of them: then the
        output layer trains again); returns what was changed, in words. An impossible stack is left alone (no session
        can start until it is fixed, and the names were carried by _follow_frozen)."""
        n = self._network
        if not n.frozen:
            return []
        try:
            stack = self._stack()
        except StudioError:
            return []
        titled = {l.name: l.spec.label() for l in stack if l.params}
        keep = [f for f in n.frozen if f in titled]
        notes = [f"{f} has no parameters: no longer frozen" for f in n.frozen if f not in titled]
        if keep and len(keep) == len(titled):
            out = stack[-1].name
            keep.remove(out)
            notes.append(f"the output layer {out} trains again (freezing every layer leaves nothing to train)")
        if notes:
            self._network = NetworkSettings(n.layers, n.objective, tuple(sorted(keep)))
        return notes

    def _build(self, seed: int) -> Network:
        d = self._need_data()
        n = self._network
        return Network(d.input_shape, [*n.layers, Linear(d.num_classes)], **n.objective.as_dict(), seed=seed)

    def initial_loss(self, examples: int = 512) -> tuple[float, str]:
        """The data loss of the untrained network (from the seed) on up to ``examples`` training examples, with what
        the lecture expects of it: ln C for a softmax over C classes with small initial scores, C − 1 for the SVM
        (every margin about Δ = 1). Answers 'predict the first loss' with the lab's own numbers."""
        d = self._need_data()
        net = self.build_network()
        Xtr, ytr = d.split[0][:examples], d.split[1][:examples]
        with np.errstate(all="ignore"):
            loss, _ = net.data_loss(net.forward(Xtr, "eval"), ytr)
        C = net.num_classes
        kind = net.loss_kind
        if kind == "softmax":
            why = (f"with small initial scores every class starts near probability 1/{C}, so the loss is about "
                   f"−ln(1/{C}) = ln {C} = {math.log(C):.3f}")
            if abs(float(loss) - math.log(C)) > 0.15 * math.log(C):
                why += ("; this one is further off because its initial scores are not small (the last layer's "
                        "weights spread them): a smaller init of the last layer brings it back to ln C")
        elif kind == "svm":
            why = f"every score starts near 0, so each of the {C - 1} wrong classes pays about Δ = 1: about {C - 1}"
        else:
            why = "the squared error of near-zero scores against one-hot targets"
        return float(loss), f"the untrained network's loss on {len(Xtr)} training examples is {float(loss):.3f}: {why}."

    def build_network(self, seed: int | None = None) -> Network:
        """A fresh network for the data with the frozen layers frozen (raises ShapeError for an impossible stack,
        ValueInputError without data)."""
        net = self._build(self._train.seed if seed is None else seed)
        if self._network.frozen:
            net.set_frozen(self._network.frozen)
        return net

    def evaluation_job(self, session: TrainingSession, settings: EvalSettings | None = None) -> Job[EvalResult]:
        """Test-time averaging (simulator.nn.evaluation) of a copy of the session's current weights, taken between
        two updates, on the validation part (the training part when there is none)."""
        yield Progress(0, 1, "copying the weights…")
        with session.lock:
            net = session.network.copy()
            tr = session.trainer
            X, y = (tr.Xv, tr.yv) if tr.Xv is not None and len(tr.Xv) else (tr.X, tr.y)
        return (yield from evaluation_job(net, X, y, settings))

    def _need_data(self) -> PreparedData:
        if self.data is None:
            raise ValueInputError("the data are not ready yet")
        return self.data

    def new_session(self, class_rgb: np.ndarray | None = None, augment: Any = None,
                    grid: tuple[float, float, float, float] | None = None) -> TrainingSession:
        """A fresh session: the network from the seed (or from the loaded weights while they fit: else they are
        dropped with a notice), a Trainer with the current settings. ``augment``: the digits' batch augmentation
        (default: ``augment_settings``, mixing included; used only when train.augment is on and the data are
        digits)."""
        d = self._need_data()
        t = self._train
        net = self.build_network()
        Xtr, ytr, Xv, yv = d.split
        trainer = Trainer(net, (Xtr, ytr, Xv if len(Xv) else None, yv if len(yv) else None),
                          optimizer=t.optimizer, schedule=self.schedule(), batch_size=t.batch_size, epochs=t.epochs,
                          patience=t.patience or None, seed=t.seed,
                          augment=(augment if augment is not None else self._augment)
                          if (t.augment and d.kind == "digits") else None,
                          **self.optimizer_kwargs())
        self.notice = ""
        if self.loaded is not None:
            name, state = self.loaded
            try:
                net.load_state_dict(state)
                self.notice = f"started from the weights loaded from {name} (⟲ Reset for fresh ones)"
            except StudioError:
                self.loaded = None
                self.notice = f"the weights loaded from {name} do not fit the changed network: fresh weights"
        if self._announce_frozen:     # the first session after the stack changed the frozen layers says so
            self.notice = " · ".join(filter(None, (self.frozen_notice, self.notice)))
            self._announce_frozen = False
        rgb = class_rgb if class_rgb is not None else np.tile([[128.0, 128.0, 128.0]], (d.num_classes, 1))
        transform = d.standardizer.apply if d.standardizer is not None else None
        return TrainingSession(net, trainer, d.kind, d.num_classes, np.asarray(rgb, float), grid or d.grid, transform)

    # ------------------------------------------------------------------------------------------------- tricks
    @property
    def augment_settings(self) -> datasets.AugmentSettings:
        """The augmentation "Train with augmentation" uses (the preview's settings once it has been opened)."""
        return self._augment

    def set_augment(self, settings: datasets.AugmentSettings) -> None:
        """Take the augmentation to train with (label-preserving transforms and the mixing)."""
        if not isinstance(settings, datasets.AugmentSettings):
            raise ValueInputError(f"settings must be AugmentSettings, got {settings!r}")
        if settings != self._augment:
            self._augment = settings
            self.changed.emit("training")

    def loss_floor(self, session: TrainingSession | None = None) -> float:
        """The smallest data loss the network can reach: with label smoothing ε the target keeps ε/K on every
        class, so the cross-entropy can only fall to the target's entropy (0 without smoothing). Of the session's
        network, else of the next one."""
        if session is not None:
            net = session.network
            return smoothed_entropy(net.num_classes, net.label_smoothing) if net.loss_kind == "softmax" else 0.0
        obj = self._network.objective
        if obj.loss != "softmax" or self.data is None:
            return 0.0
        return smoothed_entropy(self.data.num_classes, obj.label_smoothing)

    def lr_scaling_hint(self, from_batch: int, from_lr: float, to_batch: int | None = None) -> LrScalingHint | None:
        """The linear scaling rule (Goyal et al., lecture 8) for going from ``from_batch`` (trained at ``from_lr``)
        to ``to_batch`` (default: the current batch size): lr × N for batch × N, with a linear warm-up over about
        5 epochs from the old rate when the batch grows and no warm-up is set. None when the size is unchanged."""
        from_batch = check_int("batch size", from_batch, 1)
        from_lr = check_real("learning rate", from_lr, 0.0, low_open=True)
        to_batch = self._train.batch_size if to_batch is None else check_int("batch size", to_batch, 1)
        if to_batch == from_batch:
            return None
        factor = to_batch / from_batch
        warmup, per_epoch = 0, 1
        has_warmup = self._train.schedule != NO_SCHEDULE and self._warmup_steps() > 0
        if factor > 1 and not has_warmup:
            n = len(self.data.split[0]) if self.data is not None else to_batch
            per_epoch = iters_per_epoch(n, to_batch)
            warmup = max(1, min(WARMUP_EPOCHS * per_epoch, (per_epoch * self._train.epochs) // 4))
        return LrScalingHint(from_batch, to_batch, from_lr, LR.check(from_lr * factor), warmup,
                             1.0 / factor if warmup else 0.0, warmup / per_epoch if warmup else 0.0)

    def _warmup_steps(self) -> int:
        return int({**{p.name: p.default for p in WARMUP_PARAMS}, **self._warmup}["warmup_steps"])

    def apply_lr_scaling(self, hint: LrScalingHint) -> None:
        """Take a hint: its learning rate and, when it offers one, its warm-up (on the current schedule, or on a
        constant rate when there is none)."""
        if not isinstance(hint, LrScalingHint):
            raise ValueInputError(f"hint must be an LrScalingHint, got {hint!r}")
        train = self._train.replace(lr=hint.new_lr)
        hyper = self._hyper.replace(lr=train.lr)
        name, params, warmup = train.schedule, self._schedule_params, self._warmup
        if hint.warmup_steps:
            if name == NO_SCHEDULE:
                name, params = WARMUP_SCHEDULE, {}
            warmup = {"warmup_steps": hint.warmup_steps, "start_factor": hint.start_factor}
        old = self._train
        self._train = train.replace(schedule=name)
        try:
            if name != NO_SCHEDULE:
                self._schedule_for(name, params, warmup, self.total_steps() or 1)     # validates
        except StudioError:
            self._train = old
            raise
        self._hyper, self._schedule_params, self._warmup = hyper, dict(params), dict(warmup)
        self.changed.emit("training")

    # ------------------------------------------------------------------------------------------------- hand-offs
    def snapshot(self, session: TrainingSession) -> TrainedModel:
        """A copy of the network with its data and standardiser, taken between two updates."""
        with session.lock:
            net = session.network.copy()
            tr = session.trainer
            data = (tr.X, tr.y, tr.Xv, tr.yv)
        return TrainedModel(net, data, self.data.standardizer if self.data is not None else None)

    def graph(self, session: TrainingSession) -> Any:
        """The network (float64 copy of the current weights) on GRAPH_BATCH training examples as a Graph."""
        X, y = session.trainer.X[:GRAPH_BATCH], session.trainer.y[:GRAPH_BATCH]
        with session.lock:
            net = session.network.astype(np.float64)
        return net.to_graph(X, y, mode="train", seed=0)

    def save_weights(self, session: TrainingSession, path: str | os.PathLike) -> None:
        with session.lock:
            session.network.save(path)

    def load_weights(self, session: TrainingSession, path: str | os.PathLike) -> None:
        """Load a weights file into the session's network (ShapeError for another architecture, FileFormatError for
        a damaged file; nothing changes then). Later sessions start from them while they fit."""
        with session.lock:
            session.network.load_weights(path)
            state = session.network.state_dict()
            session.visuals_requested = True
        name = os.path.basename(os.fspath(path))
        self.loaded = (name, state)
        self.notice = f"weights loaded from {name}"
        self.changed.emit("loaded")

    def adopt_encoder(self, handoff: Any, freeze: bool = True) -> bool:
        """Start the next sessions from an encoder trained in the Self-supervised tab
        (simulator.labs.selfsup.EncoderHandoff): the digits (all of them, preprocessing "none": the encoder reads
        raw digits), its layers as the network (the model appends the Linear(10) head; the objective back to its
        defaults, softmax cross-entropy), its weights and its fresh head as the loaded state, and its layers frozen
        for a linear probe (``freeze``) or none (fine-tune all). Returns True when the data must be made again
        (``data_job``), as set_data_settings does. Everything is checked first; a refused hand-off changes
        nothing."""
        from simulator.labs.selfsup import EncoderHandoff
        if not isinstance(handoff, EncoderHandoff):
            raise ValueInputError(f"the Playground takes an EncoderHandoff from the Self-supervised tab, got "
                                  f"{type(handoff).__name__}")
        freeze = check_bool("freeze the encoder", freeze)
        if tuple(handoff.input_shape) != (1, 8, 8):
            raise ShapeError(f"the {handoff.title} reads inputs of shape {tuple(handoff.input_shape)}; the "
                             f"Playground's digits are (1, 8, 8)")
        if handoff.input_scale != 1.0 or handoff.preprocess != "none":
            raise ValueInputError(f"the {handoff.title} reads digits multiplied by {handoff.input_scale:g} "
                                  f"(preprocessing {handoff.preprocess!r}); the Playground feeds the raw digits")
        layers = tuple(handoff.layers)
        objective = Objective()
        net = Network((1, 8, 8), [*layers, Linear(10)], **objective.as_dict(), seed=handoff.seed)
        net.load_state_dict(handoff.state)                   # strict: every key, shape and value
        frozen = tuple(sorted(handoff.frozen)) if freeze else ()
        check_frozen(net.layers, frozen)
        data = self._data_settings.replace(dataset=DIGITS, points=DIGITS_COUNT, preprocess="none")
        regenerate, kind_changed = self._take_data_settings(data)
        self._network = NetworkSettings(layers, objective, frozen)
        self._note_frozen([])
        self.loaded = (f"the Self-supervised tab ({handoff.title})", net.state_dict())
        if kind_changed:
            self.changed.emit("training")
        self.changed.emit("network")
        self.changed.emit("data")
        self.changed.emit("loaded")
        return regenerate

    def forget_loaded(self) -> None:
        self.loaded = None
        self.notice = ""

    def export_torch(self, session: TrainingSession, directory: str | os.PathLike) -> str:
        """Write the PyTorch script and its data into ``directory``; returns the script's path."""
        from simulator.nn.export_torch import write_torch_export
        data = self._need_data().split
        with session.lock:
            return os.fspath(write_torch_export(directory, session.network, session.trainer.config(), data))
