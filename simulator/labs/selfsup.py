"""The Self-supervised lab's model (no Qt): pretext tasks trained through the Trainer, and the lecture's judgement of
what their encoders learned, a linear probe on frozen features with few labels.

    lab = SelfSupLab(SelfSupSettings(task="contrastive", epochs=10, batch_size=128, lr=1e-2))
    result = run_job(lab.pretext_job())        # StepMetrics / EpochMetrics / PretextPreview yielded; PretextResult
    probe = run_job(lab.probe_job())           # ProbePoint per (method, fraction); ProbeResult
    emb = lab.embeddings("pca", 300)           # 2-D features of held-out digits per encoder, nearest neighbours
    hand = lab.encoder_handoff()               # the encoder + a fresh Linear(10) head, for the Playground

**Tasks.** ``TASKS`` names every pretext task and where its factory lives: rotation and contrastive in
simulator/labs/pretext.py, inpainting, autoencoder, colourisation and jigsaw in simulator/labs/pretext_recon.py.
A task's title is written once, in its entry here; its factory titles the built task with it. A factory is
imported by name when a task is built, so a task whose module is missing is refused then (ValueInputError), not
when the lab loads.

**The probe** (``probe_job``): the encoder is frozen and only a linear softmax classifier is trained on its
features. The features of the digits' training part (``pretext_task.digits_split``: the images every digits
pretext task trained on, now with their labels) are standardised with that part's statistics (unlabelled data,
so every method may use them); for each labelled fraction, the first n = max(10, round(f × N)) examples of one
seeded class-balanced order are labelled (round-robin over the classes, so the subsets are nested and balanced, as in
simulator/labs/transfer.py), a Linear(10) is trained for ``probe_steps`` Adam updates (batch min(64, n), seeded)
and scored on the held-out test digits no pretext task has seen. Three encoders of the same architecture are probed:
the self-supervised one (the pretext network's first ``encoder_layers`` layers), the random one (the very weights
the pretext training started from) and a supervised one (the same layers with a Linear(10) head, trained on 100% of
the labels: the upper reference).

Threads. Jobs run on a worker thread (gui.jobs.JobRunner): ``pretext_job`` holds ``lock`` for each update (what
writes the weights), never for the epoch-end evaluation or a preview (they read the weights or a copy), and keeps
its network on the model, so ``probe_job``, ``embeddings_job`` and ``encoder_handoff`` copy the weights between two
updates (a probe while training runs judges the weights of that moment) and wait at most one update for them.
``trained`` and ``refusal`` take no lock at all: they read references the job replaces whole. Jobs never emit
``changed``: the setters do, on the caller's (the UI's) thread, with what changed ("settings", "task", "options").
"""
from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from simulator.core.errors import StudioError, ValueInputError
from simulator.core.jobs import Job, Progress, run_job
from simulator.core.observer import Signal
from simulator.core.params import Settings, check_choice, check_int, check_real, param
from simulator.labs.pretext_task import DIGITS_SCALE, DigitsSplit, PretextTask, Preview, Quality, digits_split
from simulator.nn.layers import LayerSpec
from simulator.nn.network import Flatten, Linear, Network
from simulator.nn.trainer import History, StepMetrics, Trainer, iters_per_epoch

__all__ = ["CLASSES", "DEFAULT_FRACTIONS", "METHODS", "METHOD_LABELS", "TASKS", "EmbedSettings", "Embeddings",
           "EncoderHandoff",
           "PretextPreview", "PretextResult", "PreviewFailed", "ProbePoint", "ProbeResult", "SelfSupLab",
           "SelfSupSettings", "TaskEntry", "TrainingFailed", "balanced_order", "encoder_of", "label_counts",
           "load_factory", "options_class"]

CLASSES = 10
DEFAULT_FRACTIONS = (0.01, 0.05, 0.1, 1.0)
METHODS = ("self-supervised", "random", "supervised")
METHOD_LABELS = {"self-supervised": "self-supervised encoder", "random": "random encoder (untrained)",
                 "supervised": "supervised encoder (100% labels)"}
MIN_LABELS = CLASSES            # a probe sees every class at least once
PROBE_BATCH = 64
SUPERVISED_BATCH = 64
SUPERVISED_LR = 3e-3
PREVIEW_INTERVAL = 0.5          # seconds between previews while a pretext task trains
PREVIEW_IMAGES = 8
# layers a positive input scale passes through unchanged in shape (x -> c·x stays c·(layer x) for c > 0)
_SCALE_FREE_ROLES = ("reshape", "pool")


@dataclass(frozen=True)
class TaskEntry:
    """Where a pretext task's factory lives: ``module`` and the factory's name(s) (the first one the module has is
    used), its title, the input it reads ("digits" or "photo": what the view says before building it) and the name
    of the Settings class of its own options in the same module (None: the task has none), which the factory takes
    as ``options=``."""

    key: str
    title: str
    module: str
    factories: tuple[str, ...]
    input_kind: str
    options: str | None = None


# The one place a task's title is written: each factory titles its PretextTask with TASKS[key].title, so the
# choice, the messages before a task is built and the built task's own words agree.
TASKS: dict[str, TaskEntry] = {e.key: e for e in (
    TaskEntry("rotation", "Rotation prediction", "simulator.labs.pretext", ("make_rotation",), "digits"),
    TaskEntry("contrastive", "Contrastive (SimCLR)", "simulator.labs.pretext", ("make_contrastive",), "digits",
              "ViewSettings"),
    TaskEntry("inpainting", "Inpainting (masked autoencoder)", "simulator.labs.pretext_recon", ("make_inpainting",),
              "digits", "InpaintSettings"),
    TaskEntry("autoencoder", "Autoencoder", "simulator.labs.pretext_recon", ("make_autoencoder",), "digits",
              "AutoencoderSettings"),
    TaskEntry("colourisation", "Colourisation", "simulator.labs.pretext_recon", ("make_colourisation",), "photo",
              "ColourSettings"),
    TaskEntry("jigsaw", "Jigsaw puzzle", "simulator.labs.pretext_recon", ("make_jigsaw",), "photo",
              "JigsawSettings"),
)}


def _task_module(key: str) -> tuple[TaskEntry, Any]:
    entry = TASKS[check_choice("pretext task", key, TASKS)]
    try:
        return entry, importlib.import_module(entry.module)
    except ModuleNotFoundError as exc:
        if exc.name != entry.module:
            raise
        raise ValueInputError(f"the {entry.title} task is not available in this build ({entry.module} is "
                              f"missing)") from None


def options_class(key: str) -> type[Settings] | None:
    """The Settings class of task ``key``'s own options (its form's fields), None when it has none."""
    entry, module = _task_module(key)
    if entry.options is None:
        return None
    cls = getattr(module, entry.options, None)
    if not (isinstance(cls, type) and issubclass(cls, Settings)):
        raise ValueInputError(f"the {entry.title} task's options ({entry.module}.{entry.options}) are missing")
    return cls


def load_factory(key: str) -> Any:
    """The factory of task ``key``, imported now. ValueInputError when the task or its module is not there."""
    entry, module = _task_module(key)
    for name in entry.factories:
        factory = getattr(module, name, None)
        if callable(factory):
            return factory
    raise ValueInputError(f"the {entry.title} task is not available in this build ({entry.module} has no "
                          f"{' or '.join(entry.factories)})")


@dataclass(frozen=True)
class SelfSupSettings(Settings):
    """The lab's settings: which pretext task, how it trains, and how the probe judges its encoder."""

    task: str = param("rotation", choices=tuple(TASKS),
                      choice_labels=tuple(e.title + (" (photos)" if e.input_kind == "photo" else "")
                                          for e in TASKS.values()),
                      label="pretext task", doc="the task whose target comes from the data itself")
    epochs: int = param(12, low=1, high=1000, label="epochs", doc="passes over the pretext task's training data")
    lr: float = param(3e-3, low=0.0, low_open=True, high=1.0, log=True, label="learning rate",
                      doc="the pretext training's learning rate (the task's optimizer, Adam by default)")
    batch_size: int = param(64, low=2, high=2048, label="batch size",
                            doc="training rows per update; the contrastive task makes two views of each image, "
                                "so its loss compares 2 × batch views")
    temperature: float = param(0.1, low=0.0, low_open=True, high=10.0, log=True, label="temperature τ",
                               doc="contrastive task: the InfoNCE softmax runs over cosine similarity / τ; a small "
                                   "τ weighs the hardest negatives most")
    seed: int = param(0, low=0, high=99_999, label="seed",
                      doc="seeds the digits split, the network's initial weights, the views and the batches")
    probe_steps: int = param(300, low=10, high=20_000, label="probe updates",
                             doc="Adam updates of each linear probe (one per encoder and labelled fraction)")
    probe_lr: float = param(1e-2, low=0.0, low_open=True, high=1.0, log=True, label="probe learning rate",
                            doc="the linear probes' Adam learning rate")
    supervised_epochs: int = param(15, low=1, high=1000, label="supervised epochs",
                                   doc="epochs of the supervised reference encoder (all labels, same layers)")

    @property
    def entry(self) -> TaskEntry:
        return TASKS[self.task]


# ================================================================================================== encoders

def encoder_of(network: Network, k: int) -> Network:
    """A copy of the first ``k`` layers of ``network`` with their weights (and buffers), as a Network whose output
    is the features: Flatten() is appended when the k-th layer gives an image. Its loss ("mse") is never used: an
    encoder is for ``forward``. Frozen layers are not carried (a copy to read features from)."""
    if not isinstance(network, Network):
        raise ValueInputError(f"encoder_of needs a Network, got {type(network).__name__}")
    k = check_int("encoder layers", k, 1, len(network.layers))
    specs = list(network.specs[:k])
    if len(network.layers[k - 1].out_shape) != 1:
        specs.append(Flatten())
    enc = Network(network.input_shape, specs, loss="mse", init=network.init, seed=network.seed, dtype=network.dtype)
    state = network.state_dict()
    enc.load_state_dict({name: state[name] for name in enc.state_dict()})
    return enc


def features(encoder: Network, X: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """The encoder's eval-mode output for X, (N, D) float64, in batches."""
    out = [encoder.forward(X[i:i + batch_size], "eval") for i in range(0, len(X), batch_size)]
    return np.concatenate(out).astype(np.float64).reshape(len(X), -1)


def balanced_order(y: np.ndarray, seed: Any, classes: int = CLASSES) -> np.ndarray:
    """A seeded class-balanced order of the examples: round-robin over the classes, each class in a seeded shuffle,
    so that the first n hold every class about n / classes times and a smaller set is inside every larger one."""
    rng = np.random.default_rng(seed)
    per_class = [rng.permutation(np.flatnonzero(y == c)) for c in range(classes)]
    longest = max((len(p) for p in per_class), default=0)
    return np.asarray([int(p[r]) for r in range(longest) for p in per_class if r < len(p)], np.int64)


def label_counts(fractions: Sequence[float], n: int) -> tuple[int, ...]:
    """Labelled examples for each fraction of n: max(MIN_LABELS, round(f × n)), at most n."""
    return tuple(min(n, max(MIN_LABELS, round(f * n))) for f in fractions)


def _check_fractions(fractions: Any) -> tuple[float, ...]:
    try:
        values = [check_real("labelled fraction", f, 0.0, 1.0, low_open=True) for f in fractions]
    except TypeError:
        raise ValueInputError(f"fractions must be a list of numbers in (0, 1], got {fractions!r}") from None
    if not values:
        raise ValueInputError("give at least one labelled fraction, such as 0.1 for 10% of the labels")
    return tuple(sorted(set(values)))


# ================================================================================================== results

class TrainingFailed(StudioError):
    """A pretext update failed (a diverged loss, non-finite gradients): the message names the iteration."""


class PreviewFailed(StudioError):
    """Drawing a task's preview or measuring its quality failed (a bug in the task): training stops and says so."""


@dataclass(frozen=True)
class PretextPreview:
    """A task's Preview of a copy of the network after ``iteration`` updates."""

    iteration: int
    preview: Preview


@dataclass
class PretextResult:
    """A finished (or cancelled) pretext training: the task, the Trainer's History, the task's Quality of the final
    weights, the updates made and whether training ran to its end."""

    key: str
    title: str
    history: History
    quality: Quality
    iterations: int
    finished: bool


@dataclass(frozen=True)
class ProbePoint:
    """One point of the probe plot: ``method``'s encoder with ``fraction`` (``count`` labels) scored ``accuracy``."""

    method: str
    fraction: float
    count: int
    accuracy: float


@dataclass
class ProbeResult:
    """The probe plot's data: accuracy[method] is (len(fractions),) in the order of ``fractions`` (NaN where not
    measured); ``counts`` the labelled examples of each fraction, ``test_size`` the held-out digits scored on,
    ``supervised_accuracy`` the supervised network's own test accuracy (its head, not a probe) and ``task`` the
    pretext task judged."""

    task: str
    fractions: tuple[float, ...]
    counts: tuple[int, ...]
    test_size: int
    accuracy: dict[str, np.ndarray] = field(default_factory=dict)
    supervised_accuracy: float = float("nan")

    def points(self) -> list[ProbePoint]:
        return [ProbePoint(m, f, c, float(a)) for m in METHODS if m in self.accuracy
                for f, c, a in zip(self.fractions, self.counts, self.accuracy[m]) if np.isfinite(a)]


@dataclass
class Embeddings:
    """Features of ``images`` (n held-out digits, (n, 8, 8) in [0, 1]) per encoder, projected to 2-D: coords[method]
    (n, 2); neighbours[method] the indices of the ``k`` nearest images to image ``query`` in that feature space
    (nearest first); knn_agreement[method] the share of each image's k nearest neighbours with its own label,
    averaged over the n images (how well the features group digits by class, no training involved). "pixels" is
    the raw images' own space, the reference."""

    projection: str
    images: np.ndarray
    labels: np.ndarray
    query: int
    k: int
    coords: dict[str, np.ndarray] = field(default_factory=dict)
    neighbours: dict[str, np.ndarray] = field(default_factory=dict)
    knn_agreement: dict[str, float] = field(default_factory=dict)
    # each space's features, standardised per dimension (what the neighbours are measured in)
    features: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def nearest(self, query: int) -> dict[str, np.ndarray]:
        """The ``k`` nearest images to image ``query`` in every feature space (nearest first), as ``neighbours``
        holds them for ``self.query``: another image's neighbours without projecting again."""
        from simulator.labs.interpret import nearest_neighbours
        q = check_int("query image", query, 0, len(self.images) - 1)
        return {name: nearest_neighbours(F, q, self.k) for name, F in self.features.items()}


@dataclass(frozen=True)
class EmbedSettings(Settings):
    """How the embeddings view projects each encoder's features (``SelfSupLab.embeddings_job``'s arguments)."""

    projection: str = param("pca", choices=("pca", "tsne"), choice_labels=("PCA", "t-SNE"), label="projection",
                            doc="PCA: a linear projection, instant; t-SNE: keeps neighbours together, a few seconds "
                                "per encoder")
    images: int = param(300, low=3, high=2000, label="images",
                        doc="held-out digits embedded (the first n of the probe's test digits)")
    neighbours: int = param(8, low=1, high=12, label="neighbours k",
                            doc="nearest neighbours shown for the chosen image, and counted in each space's k-NN "
                                "label agreement")


@dataclass(frozen=True)
class EncoderHandoff:
    """The trained encoder for the Playground to fine-tune or probe on the digits.

    ``layers``: the encoder's layer records (the Playground appends its Linear(C)); ``state``: the full state of
    ``Network(input_shape, [*layers, Linear(10)])``, the encoder's trained weights and a fresh head (seeded), so
    ``load_state_dict(state)`` fits strictly; ``frozen``: the encoder's layers with parameters (freeze them for a
    linear probe, none for fine-tuning). The lab's encoders read digits scaled to [0, 1]; here the first weights are
    divided by 16 (when only reshapes and pooling come before them: exact, as both commute with a positive scale), so
    the network takes the raw digits (0..16, the Playground's preprocessing "none") and ``input_scale`` is 1;
    otherwise the weights are as trained and inputs must be multiplied by ``input_scale`` (1/16) first."""

    title: str
    input_shape: tuple[int, ...]
    layers: tuple[LayerSpec, ...]
    state: dict[str, np.ndarray]
    frozen: tuple[str, ...]
    input_scale: float
    preprocess: str = "none"
    seed: int = 0

    def network(self, freeze: bool = True) -> Network:
        """The encoder with its head as a Network (float32), the encoder frozen when ``freeze``."""
        net = Network(self.input_shape, [*self.layers, Linear(CLASSES)], seed=self.seed)
        net.load_state_dict(self.state)
        if freeze and self.frozen:
            net.freeze(self.frozen)
        return net


@dataclass
class _Run:
    """The pretext training the model keeps: the built task, the live network (updated under the lab's lock), the
    state it started from (the random encoder's weights) and the settings it was trained with."""

    task: PretextTask
    network: Network
    initial: dict[str, np.ndarray]
    settings: SelfSupSettings


# ================================================================================================== the model

class SelfSupLab:
    """The Self-supervised lab's state: settings, each task's own options, the last pretext training, the supervised
    reference encoder and the last probe. Read the attributes; change them through the setters."""

    def __init__(self, settings: SelfSupSettings | None = None, options: Mapping[str, Settings] | None = None):
        self.changed = Signal()
        self.lock = threading.RLock()
        self._settings = self._checked(settings if settings is not None else SelfSupSettings())
        self._options: dict[str, Settings] = {}
        for key, value in (options or {}).items():
            self._options[key] = self._checked_options(key, value)
        # the kept pretext training and its (task key, updates made): each replaced whole (one reference, atomic),
        # so the window reads them without the lock
        self._run: _Run | None = None
        self._trained: tuple[str, int] | None = None
        # ((seed, epochs), the supervised reference network): reused while the seed and its epochs stay
        self._supervised: tuple[tuple[int, int], Network] | None = None
        self.probe_result: ProbeResult | None = None
        self.pretext_result: PretextResult | None = None

    @staticmethod
    def _checked(settings: Any) -> SelfSupSettings:
        if not isinstance(settings, SelfSupSettings):
            raise ValueInputError(f"settings must be SelfSupSettings, got {settings!r}")
        return settings

    # ------------------------------------------------------------------------------------------------ settings
    @property
    def settings(self) -> SelfSupSettings:
        return self._settings

    def set_settings(self, settings: SelfSupSettings) -> None:
        settings = self._checked(settings)
        if settings != self._settings:
            self._settings = settings
            self.changed.emit("settings")

    @staticmethod
    def _checked_options(key: str, options: Any) -> Settings:
        cls = options_class(key)
        if cls is None:
            raise ValueInputError(f"the {TASKS[key].title} task has no options of its own")
        if not isinstance(options, cls):
            raise ValueInputError(f"the {TASKS[key].title} task's options must be {cls.__name__}, got {options!r}")
        return options

    def options(self, key: str | None = None) -> Settings | None:
        """Task ``key``'s own options (default: the chosen task's; imports its module): those set, else its
        defaults; None for a task without options (rotation). The contrastive task's are its views
        (simulator.labs.pretext.ViewSettings)."""
        key = self._settings.task if key is None else key
        if key in self._options:
            return self._options[key]
        cls = options_class(key)
        return None if cls is None else cls()

    def set_options(self, key: str, options: Settings) -> None:
        """Set task ``key``'s own options (an instance of ``options_class(key)``); used from its next training."""
        options = self._checked_options(key, options)
        if options != self.options(key):
            self._options[key] = options
            self.changed.emit("options")

    def build_task(self, settings: SelfSupSettings | None = None) -> PretextTask:
        """The chosen task built afresh (its network from the seed) with its options. Loads data: call it from a
        job."""
        s = self._checked(settings if settings is not None else self._settings)
        factory = load_factory(s.task)
        task = factory(s, options=self._options[s.task]) if s.task in self._options else factory(s)
        if not isinstance(task, PretextTask):
            raise ValueInputError(f"the {s.entry.title} task's factory returned {type(task).__name__}, not a "
                                  f"PretextTask")
        return task

    def task_job(self, key: str | None = None) -> Job[PretextTask]:
        """Build task ``key`` (default: the settings' task) with the current settings, as a job; its result goes to
        ``use_task_defaults``."""
        s = self._settings if key is None else self._settings.replace(task=key)
        yield Progress(0, 1, f"preparing the {s.entry.title} task…")
        return self.build_task(s)

    def use_task_defaults(self, task: PretextTask) -> None:
        """Choose ``task`` (built by task_job) with the training settings it trains well with (its epochs, learning
        rate and batch size)."""
        if not isinstance(task, PretextTask):
            raise ValueInputError(f"task must be a PretextTask, got {task!r}")
        s = self._settings.replace(task=task.key, epochs=task.epochs, lr=task.lr, batch_size=task.batch_size)
        if s != self._settings:
            self._settings = s
            self.changed.emit("task")

    # ------------------------------------------------------------------------------------------------ pretext
    @property
    def trained(self) -> tuple[str, int] | None:
        """(task key, updates made) of the pretext network the model keeps, None before any training. Read without
        the lock (the job replaces the tuple after each update), so the window never waits for training."""
        return self._trained

    def trained_network(self) -> tuple[str, Network] | None:
        """(task key, a copy of the kept pretext network taken between two updates), None before any training."""
        with self.lock:
            return None if self._run is None else (self._run.task.key, self._run.network.copy())

    def pretext_job(self, settings: SelfSupSettings | None = None, preview_every: float = PREVIEW_INTERVAL,
                    preview_images: int = PREVIEW_IMAGES) -> Job[PretextResult]:
        """Train the chosen task from fresh weights through Trainer.training(): yields Progress while building,
        every StepMetrics and EpochMetrics, and a PretextPreview of a copy of the network before the first update,
        every ``preview_every`` seconds (0: after every update) and after the last; returns the PretextResult
        (history and the task's Quality of the final weights). The network stays on the model for the probe and
        the hand-off (also when the job is cancelled: the weights of the last update). A failing update raises
        TrainingFailed naming the iteration."""
        s = self._checked(settings if settings is not None else self._settings)
        preview_every = check_real("preview interval", preview_every, 0.0)
        preview_images = check_int("preview images", preview_images, 2, 64)
        return self._pretext(s, preview_every, preview_images)

    def _pretext(self, s: SelfSupSettings, every: float, n: int) -> Job[PretextResult]:
        yield Progress(0, 0, f"preparing the {s.entry.title} task…")
        task = self.build_task(s)
        net = task.network
        trainer = Trainer(net, task.data, optimizer=task.optimizer, lr=s.lr, batch_size=s.batch_size,
                          epochs=s.epochs, seed=s.seed, augment=task.augment)
        run = _Run(task, net, net.state_dict(), s)
        with self.lock:
            self._run = run
            self._trained = (task.key, 0)
            self.pretext_result = None
        yield PretextPreview(0, self._preview(run, n))
        last, shown = time.monotonic(), 0
        # Trainer.training() spelled out step by step, so that the lock covers what writes the weights (one update:
        # forward, backward, optimizer step, batch-norm statistics) and not the epoch-end evaluation, which only
        # reads them (eval mode; no early stopping here, so no weights are restored) and takes long (the contrastive
        # task's full-set evaluation: a third to half a second, which the window's calls would otherwise wait out)
        while not trainer.done:
            with self.lock:
                try:
                    m = trainer.step()
                except StudioError as exc:
                    raise TrainingFailed(f"Training stopped at iteration {trainer.iteration + 1}: {exc}") from exc
            self._trained = (task.key, trainer.iteration)       # one reference replaced: read without the lock
            # Python's locks are not fair: without a pause the next update takes the lock again before a thread
            # woken by its release runs, and a copy waits several updates. sleep(0) lets that thread in.
            time.sleep(0)
            yield m
            if time.monotonic() - last >= every:
                shown = trainer.iteration
                yield PretextPreview(shown, self._preview(run, n))
                last = time.monotonic()
            if m.end_of_epoch:
                try:
                    epoch = trainer.evaluate()
                except StudioError as exc:
                    raise TrainingFailed(f"Training stopped evaluating epoch {trainer.epoch}: {exc}") from exc
                yield epoch
        if shown != trainer.iteration:
            yield PretextPreview(trainer.iteration, self._preview(run, n))
        with self.lock:
            final = net.copy()
        quality = self._guarded(lambda: task.quality(final), task, "measuring its quality")
        result = PretextResult(task.key, task.title, trainer.history, quality, trainer.iteration, trainer.done)
        with self.lock:
            self.pretext_result = result
        return result

    def _preview(self, run: _Run, n: int) -> Preview:
        with self.lock:
            net = run.network.copy()
        return self._guarded(lambda: run.task.preview(net, n), run.task, "drawing its preview")

    @staticmethod
    def _guarded(fn: Any, task: PretextTask, what: str) -> Any:
        try:
            return fn()
        except StudioError:
            raise
        except Exception as exc:    # noqa: BLE001 (a bug in a task: stop and say which)
            raise PreviewFailed(f"the {task.title} task failed {what}: {type(exc).__name__}: {exc}") from exc

    # ------------------------------------------------------------------------------------------------ encoders
    def _digits_run(self, what: str) -> _Run:
        run = self._run         # replaced whole by the job; its task and input shape never change: no lock needed
        if run is None:
            raise ValueInputError(f"train a pretext task first: {what} judges the encoder it learned")
        if run.task.input_kind != "digits" or run.network.input_shape != (1, 8, 8):
            raise ValueInputError(f"{what} needs an encoder of the digits: the {run.task.title} task reads "
                                  f"photographs, which come without class labels to train a probe on or to "
                                  f"colour the embedding by; train a digits task (rotation, contrastive, "
                                  f"inpainting or the autoencoder)")
        return run

    def refusal(self, what: str) -> str | None:
        """Why ``what`` ("the linear probe", ...) cannot judge the kept encoder now, in the words of the
        ValueInputError the job would raise (no encoder yet, or a photograph task's); None when it can."""
        try:
            self._digits_run(what)
        except ValueInputError as exc:
            return str(exc)
        return None

    def encoders(self, what: str = "the encoders") -> dict[str, Network]:
        """Copies of the self-supervised encoder (the trained pretext network's encoder layers) and the random one
        (the weights its training started from), plus the supervised one once the probe has trained it (same
        seed and supervised epochs). Digits tasks only (ValueInputError otherwise)."""
        run = self._digits_run(what)
        with self.lock:
            trained = run.network.copy()
            sup = self._supervised
        k = run.task.encoder_layers
        start = Network(trained.input_shape, trained.specs, **trained.config())
        start.load_state_dict(run.initial)
        out = {"self-supervised": encoder_of(trained, k), "random": encoder_of(start, k)}
        if sup is not None and sup[0] == self._supervised_key(run) and sup[1].specs[:k] == trained.specs[:k]:
            out["supervised"] = encoder_of(sup[1], k)
        return out

    def _supervised_key(self, run: _Run) -> tuple[int, int]:
        return run.settings.seed, self._settings.supervised_epochs

    def _supervised_job(self, run: _Run, split: DigitsSplit) -> Job[Network]:
        """The supervised reference: the task's encoder layers with a Linear(10) head, trained on every training
        label (softmax, Adam)."""
        s = self._settings
        k = run.task.encoder_layers
        specs = list(run.network.specs[:k])
        if len(run.network.layers[k - 1].out_shape) != 1:
            specs.append(Flatten())
        net = Network(run.network.input_shape, [*specs, Linear(CLASSES)], seed=run.settings.seed)
        trainer = Trainer(net, (split.X_train, split.y_train, None, None), optimizer="Adam", lr=SUPERVISED_LR,
                          batch_size=SUPERVISED_BATCH, epochs=s.supervised_epochs, seed=run.settings.seed,
                          norms_every=1_000_000)
        for m in trainer.training():
            if isinstance(m, StepMetrics):
                yield Progress(m.iteration, trainer.total_steps,
                               f"training the supervised encoder on every label: update {m.iteration}/"
                               f"{trainer.total_steps}")
        return net

    # ------------------------------------------------------------------------------------------------ probe
    def probe_job(self, fractions: Sequence[float] = DEFAULT_FRACTIONS) -> Job[ProbeResult]:
        """The lecture's evaluation (see the module's docstring): for each encoder (self-supervised, random,
        supervised) and each labelled fraction, a linear probe on the frozen features. Yields Progress and a
        ProbePoint as each is measured; returns the ProbeResult (also kept as ``probe_result``). Needs a trained
        digits task (ValueInputError otherwise, checked before the job starts); closing it cancels between two
        updates."""
        fr = _check_fractions(fractions)
        run = self._digits_run("the linear probe")
        return self._probe(run, fr)

    def _probe(self, run: _Run, fractions: tuple[float, ...]) -> Job[ProbeResult]:
        s = self._settings
        seed = run.settings.seed
        yield Progress(0, 0, "loading the digits…")
        split = digits_split(seed)
        order = balanced_order(split.y_train, [seed, 7])
        counts = label_counts(fractions, len(order))
        result = ProbeResult(run.task.key, fractions, counts, len(split.X_test),
                             {m: np.full(len(fractions), np.nan) for m in METHODS})
        encs = self.encoders("the linear probe")
        if "supervised" not in encs:
            sup = yield from self._supervised_job(run, split)
            with self.lock:
                self._supervised = (self._supervised_key(run), sup)
            encs["supervised"] = encoder_of(sup, run.task.encoder_layers)
        with self.lock:
            sup_net = self._supervised[1] if self._supervised is not None else None
        if sup_net is not None:
            result.supervised_accuracy = sup_net.accuracy(split.X_test, split.y_test)
        total, done = len(METHODS) * len(fractions), 0
        for method in METHODS:
            F, Ft = features(encs[method], split.X_train), features(encs[method], split.X_test)
            mean, std = F.mean(axis=0), F.std(axis=0)
            std = np.where(std > 1e-8, std, 1.0)             # a dead feature stays 0 instead of dividing by 0
            F, Ft = (F - mean) / std, (Ft - mean) / std
            for i, (f, n) in enumerate(zip(fractions, counts)):
                idx = order[:n]
                acc = self._linear_probe(F[idx], split.y_train[idx], Ft, split.y_test, s, seed + 1000 * (i + 1))
                result.accuracy[method][i] = acc
                done += 1
                yield ProbePoint(method, f, n, acc)
                yield Progress(done, total, f"{METHOD_LABELS[method]}, {f:.0%} of the labels ({n}): {acc:.1%}")
        with self.lock:
            self.probe_result = result
        return result

    @staticmethod
    def _linear_probe(F: np.ndarray, y: np.ndarray, Ft: np.ndarray, yt: np.ndarray, s: SelfSupSettings,
                      seed: int) -> float:
        """A Linear(10) on features F trained for s.probe_steps Adam updates; its accuracy on (Ft, yt)."""
        net = Network((F.shape[1],), [Linear(CLASSES)], seed=seed)
        batch = min(PROBE_BATCH, len(F))
        epochs = max(1, -(-s.probe_steps // iters_per_epoch(len(F), batch)))
        Trainer(net, (F, y, None, None), optimizer="Adam", lr=s.probe_lr, batch_size=batch, epochs=epochs,
                seed=seed, norms_every=1_000_000).run()
        return net.accuracy(Ft, yt)

    # ------------------------------------------------------------------------------------------------ embeddings
    def embeddings_job(self, projection: str = "pca", n: int = 300, query: int = 0, k: int = 8) -> Job[Embeddings]:
        """Features of the first ``n`` held-out digits from each encoder (and the pixels), projected to 2-D by PCA
        or t-SNE (the Interpretability lab's ``embed``), with the ``k`` nearest neighbours of image ``query`` in
        each feature space (Euclidean, on features standardised per dimension so no unit dominates) and each
        space's k-NN label agreement. Digits tasks only."""
        projection = check_choice("projection", projection, ("pca", "tsne"))
        n = check_int("images", n, 3, 2000)
        k = check_int("neighbours", k, 1, 50)
        run = self._digits_run("the embedding")
        return self._embeddings(run, projection, n, query, k)

    def _embeddings(self, run: _Run, projection: str, n: int, query: int, k: int) -> Job[Embeddings]:
        from simulator.labs.interpret import embed, nearest_neighbours
        yield Progress(0, 0, "loading the digits…")
        split = digits_split(run.settings.seed)
        n = min(n, len(split.X_test))
        q = check_int("query image", query, 0, n - 1)
        k = min(k, n - 1)
        X, y = split.X_test[:n], split.y_test[:n]
        spaces = {"pixels": X.reshape(n, -1).astype(np.float64)}
        for name, enc in self.encoders("the embedding").items():
            spaces[name] = features(enc, X)
        out = Embeddings(projection, X[:, 0].astype(np.float64), y.copy(), q, k)
        for i, (name, F) in enumerate(spaces.items()):
            std = F.std(axis=0)
            F = (F - F.mean(axis=0)) / np.where(std > 1e-8, std, 1.0)
            yield Progress(i, len(spaces), f"projecting the {name} features…")
            out.coords[name] = embed(None, None, projection, seed=run.settings.seed, features=F)
            out.neighbours[name] = nearest_neighbours(F, q, k)
            out.knn_agreement[name] = _knn_agreement(F, y, k)
            out.features[name] = F
        return out

    def embeddings(self, projection: str = "pca", n: int = 300, query: int = 0, k: int = 8) -> Embeddings:
        """embeddings_job run to its end."""
        return run_job(self.embeddings_job(projection, n, query, k))

    def latent_job(self) -> Job[Any]:
        """The autoencoder's latent space: its codes of the held-out digits (pretext_recon.latent_codes: the code
        itself for a 2-number bottleneck, else its first two principal components) with their labels, from a copy
        of the kept network. ValueInputError unless the kept network is an autoencoder's."""
        with self.lock:
            run = self._run
            net = None if run is None else run.network.copy()
        if run is None or run.task.key != "autoencoder":
            raise ValueInputError("the latent space belongs to the autoencoder: train the autoencoder task first")
        return self._latent(net, run.task.encoder_layers, run.settings.seed)

    @staticmethod
    def _latent(net: Network, k: int, seed: int) -> Job[Any]:
        from simulator.labs.pretext_recon import latent_codes
        yield Progress(0, 1, "encoding the held-out digits…")
        return latent_codes(net, k, seed=seed)

    def colourise_job(self, name: str = "china.jpg", size: int = 160) -> Job[tuple[np.ndarray, np.ndarray,
                                                                                  np.ndarray]]:
        """A whole photograph coloured tile by tile by the kept colourisation network (pretext_recon.colourise_photo:
        sRGB (grey input, predicted colour, true colour)). ValueInputError unless the kept network is a
        colourisation network."""
        with self.lock:
            run = self._run
            net = None if run is None else run.network.copy()
        if run is None or run.task.key != "colourisation":
            raise ValueInputError("colouring a whole photograph needs a colourisation network: train the "
                                  "colourisation task first")
        return self._colourise(net, name, size)

    @staticmethod
    def _colourise(net: Network, name: str, size: int) -> Job[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        from simulator.labs.pretext_recon import colourise_photo
        yield Progress(0, 1, f"colouring {name}…")
        return colourise_photo(net, name, size)

    # ------------------------------------------------------------------------------------------------ hand-off
    def encoder_handoff(self) -> EncoderHandoff:
        """The self-supervised encoder with a fresh Linear(10) head for the Playground's digits (EncoderHandoff).
        Digits tasks only."""
        run = self._digits_run("sending the encoder to the Playground")
        with self.lock:
            trained = run.network.copy()
        enc = encoder_of(trained, run.task.encoder_layers)
        seed = run.settings.seed
        net = Network(enc.input_shape, [*enc.specs, Linear(CLASSES)], seed=seed)
        state = net.state_dict()
        state.update(enc.state_dict())
        scale = DIGITS_SCALE
        first = next((layer for layer in enc.layers if layer.params), None)
        before = enc.layers[:first.index - 1] if first is not None else ()
        if first is not None and first.spec.ROLE == "weights" and all(
                layer.spec.ROLE in _SCALE_FREE_ROLES for layer in before):
            w = f"{first.name}.w"
            state[w] = (state[w] * DIGITS_SCALE).astype(state[w].dtype)
            scale = 1.0
        frozen = tuple(layer.name for layer in enc.layers if layer.params)
        return EncoderHandoff(f"{run.task.title} encoder", enc.input_shape, tuple(enc.specs), state, frozen, scale,
                              seed=seed)


def _knn_agreement(F: np.ndarray, y: np.ndarray, k: int) -> float:
    """The mean share of each row's k nearest other rows (Euclidean) that share its label."""
    sq = np.einsum("ij,ij->i", F, F)
    d = sq[:, None] + sq[None, :] - 2.0 * F @ F.T
    np.fill_diagonal(d, np.inf)
    nn = np.argsort(d, axis=1, kind="stable")[:, :k]
    return float(np.mean(y[nn] == y[:, None]))
