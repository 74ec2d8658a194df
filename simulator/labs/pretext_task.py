"""What every self-supervised pretext task gives the Self-supervised lab (no Qt).

A pretext task turns unlabelled data into a training problem whose target comes from the data itself (a rotation
the task applied, the pixels it hid, the colour it removed, the other view of the same image). Each task is built
by a factory ``make_<task>(settings) -> PretextTask`` and trains like any model in the app: through
``simulator.nn.trainer.Trainer(task.network, task.data, augment=task.augment, ...)``. The encoder is the first
``encoder_layers`` layers of ``task.network``; what follows is the task's head (class scores) or decoder (pixels).

``settings`` is the lab's ``simulator.labs.selfsup.SelfSupSettings`` (or None: the defaults); a factory reads what
it needs from it (``seed`` for its network and its random draws, ``temperature`` for the contrastive loss) and the
lab trains with the settings' epochs, learning rate and batch size (the task's own ``epochs``, ``lr`` and
``batch_size`` are the values the lab offers when the task is chosen). A task with options of its own (a Settings
class named in the lab's ``TASKS`` registry: the contrastive views, the inpainting hole) is built
``make_<task>(settings, options=...)`` when the learner has set them. Factories load their data (call them from a
job: the first load of the digits imports scikit-learn).

Tasks on the digits (``input_kind`` "digits") train on ``digits_split(seed).X_train`` only, so that the linear probe
(simulator.labs.selfsup) scores every encoder on test digits no pretext task has seen: the split is shared here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from simulator.nn.network import Network

__all__ = ["DIGITS_SCALE", "DIGITS_TEST_FRACTION", "INPUT_KINDS", "DigitsSplit", "PretextTask", "Preview", "Quality",
           "digits_split"]

# "digits": the encoder reads (1, 8, 8) digits, so a linear probe on the digits' labels can judge its features;
# "photo": the encoder reads patches of scikit-learn's sample photographs (no labels to probe with).
INPUT_KINDS = ("digits", "photo")
# The digits as every encoder of the lab sees them: raw values 0..16 times DIGITS_SCALE, i.e. in [0, 1]
DIGITS_SCALE = 1.0 / 16.0
DIGITS_TEST_FRACTION = 0.25       # held out from every pretext task: the linear probe's test digits


@dataclass(frozen=True)
class DigitsSplit:
    """The digits split shared by the digits tasks and the probe: images (N, 1, 8, 8) float32 in [0, 1] (raw / 16)
    with their labels (which pretext tasks never read), a training part and a held-out test part."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray


def digits_split(seed: int = 0) -> DigitsSplit:
    """The shared split of scikit-learn's digits (datasets.load_digits: call from a job the first time): a
    stratified, seeded DIGITS_TEST_FRACTION held out for testing, the rest for (pretext and probe) training."""
    from simulator.core.params import check_int
    from simulator.data import datasets
    seed = check_int("seed", seed, 0)
    X, y = datasets.load_digits()
    Xtr, ytr, Xte, yte = datasets.train_val_split(X * DIGITS_SCALE, y, DIGITS_TEST_FRACTION, seed=seed)
    return DigitsSplit(Xtr.astype(np.float32), ytr, Xte.astype(np.float32), yte)


@dataclass(frozen=True)
class Preview:
    """What the lab draws beside the loss curve: rows of images with their captions, each row (n, H, W) grey or
    (n, H, W, 3) RGB, values in [0, 1] (e.g. "original", "input (patch hidden)", "reconstruction"), and an optional
    matrix (the contrastive batch's similarity matrix, the rotation task's confusion matrix) with its title."""

    rows: tuple[tuple[str, np.ndarray], ...]
    matrix: np.ndarray | None = None
    matrix_title: str = ""


@dataclass(frozen=True)
class Quality:
    """The task's own score on its validation data, and what it is compared with: ``name`` ("rotation accuracy",
    "reconstruction MSE"), ``value``, ``baseline`` (chance accuracy, or the MSE of predicting the mean), and whether
    higher is better. ``text`` says it in a sentence for the learner."""

    name: str
    value: float
    baseline: float
    higher_is_better: bool
    text: str


@dataclass
class PretextTask:
    """One pretext task, ready to train.

    key, title: "rotation", "Rotation prediction". ``lecture``: a short paragraph for the tab (what the target is,
    where it comes from, what the encoder must learn to solve it). ``network``: encoder then head/decoder, trained
    whole. ``encoder_layers``: how many of ``network.layers`` form the encoder. ``data``: (X, targets, X_val,
    targets_val), the Trainer's data (targets are labels (N,) for discriminative tasks, arrays of the network's
    output shape (N, D) for pixel regression with the "mse" loss). ``augment``: the Trainer's per-batch draw (None, or
    a callable with ``takes_labels`` that draws fresh masks / views / rotations every batch). ``input_kind``: one
    of INPUT_KINDS. ``optimizer``, ``lr``, ``epochs``, ``batch_size``: the settings it trains well with by default.
    ``preview(network, n)`` and ``quality(network)`` use the given network (a copy of the one training)."""

    key: str
    title: str
    lecture: str
    network: Network
    encoder_layers: int
    data: tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]
    input_kind: str
    preview_fn: Any
    quality_fn: Any
    augment: Any = None
    optimizer: str = "Adam"
    lr: float = 1e-3
    epochs: int = 10
    batch_size: int = 64

    def preview(self, network: Network, n: int = 8) -> Preview:
        return self.preview_fn(network, n)

    def quality(self, network: Network) -> Quality:
        return self.quality_fn(network)

    def encoder(self, network: Network | None = None) -> Network:
        """A copy of the encoder part of ``network`` (default: the task's own), as a Network whose output is the
        features (the layers after ``encoder_layers`` dropped, no loss head)."""
        from simulator.labs.selfsup import encoder_of   # the lab module owns how a stack is cut
        return encoder_of(network if network is not None else self.network, self.encoder_layers)
