"""The transfer-learning experiment (no Qt): pretrain on digits 0-4, transfer to 5-9 with few labels, and compare a
linear probe, fine-tuning and training from scratch as a curve of accuracy against the number of labelled examples.

    for item in transfer_job(TransferSettings()):      # Progress, and a TransferPoint per (method, count)
        ...
    result = run_job(transfer_job(settings))           # TransferResult: counts, accuracy per method

The recipe (the lecture's "transfer learning with CNNs" table, on the bundled 8x8 digits):

1. Source task: digits 0-4, split 80/20 (seeded). The inputs are standardised with the source training set's
   statistics (mean image, per-channel std), and the target data use the same statistics, since the pretrained
   features expect them. A network (Flatten, Linear(hidden), ReLU, Linear(hidden), ReLU, head Linear(5)) is trained
   for ``pretrain_epochs`` with Adam.
2. Target task: digits 5-9 (labels 5..9 become 0..4), split into a labelled pool and a fixed test set
   (``test_fraction``, stratified, seeded). For each count n, the first n examples of one seeded, class-balanced
   ordering of the pool are labelled (so the sets are nested: 10 labels are among the 25).
3. For each n, three networks train for ``steps`` updates (Adam, batch min(32, n)) and are scored on the test set:
   - linear probe: the pretrained body frozen (Network.freeze: no gradients, no updates), a fresh head trained;
   - fine-tuning: the pretrained body and a fresh head, everything trained;
   - from scratch: fresh weights everywhere, everything trained.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from simulator.core.errors import ValueInputError
from simulator.core.jobs import Job, Progress
from simulator.core.params import Settings, check_int, param
from simulator.data import datasets
from simulator.nn.network import Activation, Flatten, Linear, Network
from simulator.nn.trainer import Trainer, iters_per_epoch

__all__ = ["COUNT_LADDERS", "METHODS", "METHOD_LABELS", "TransferPoint", "TransferResult", "TransferSettings",
           "build_network", "split_tasks", "transfer_job"]

METHODS = ("probe", "finetune", "scratch")
METHOD_LABELS = {"probe": "linear probe (body frozen)", "finetune": "fine-tuning (all layers)",
                 "scratch": "from scratch"}
COUNT_LADDERS = ("10, 25, 50, 100, 250", "5, 10, 20, 50, 100", "10, 25, 50, 100, 250, 500")
SOURCE = (0, 1, 2, 3, 4)
TARGET = (5, 6, 7, 8, 9)
MAX_BATCH = 32


@dataclass(frozen=True)
class TransferSettings(Settings):
    counts: str = param(COUNT_LADDERS[0], choices=COUNT_LADDERS, label="labelled examples",
                        doc="the numbers of labelled target examples (digits 5-9) each method is trained on")
    hidden: int = param(64, low=4, high=512, label="hidden units",
                        doc="units of each of the two hidden Linear layers (the body that is transferred)")
    pretrain_epochs: int = param(20, low=1, high=500, label="pretraining epochs",
                                 doc="passes over the source task (digits 0-4)")
    steps: int = param(200, low=1, high=20_000, label="updates per run",
                       doc="Adam updates each method makes on its labelled target examples")
    lr: float = param(3e-3, low=0.0, low_open=True, high=1.0, log=True, label="learning rate",
                      doc="Adam's rate, for pretraining and for every transfer run")
    test_fraction: float = param(0.4, low=0.1, high=0.8, decimals=2, label="target test share",
                                 doc="share of the digits 5-9 held out to measure accuracy (never trained on)")
    seed: int = param(0, low=0, high=99_999, label="seed", doc="seeds the splits, the label choice and the weights")

    @property
    def label_counts(self) -> tuple[int, ...]:
        return tuple(int(c) for c in self.counts.split(","))


@dataclass(frozen=True)
class TransferPoint:
    """One point of a curve: ``method`` trained on ``count`` labelled examples reached ``accuracy`` on the test set."""

    method: str
    count: int
    accuracy: float


@dataclass
class TransferResult:
    """The curves: accuracy[method] is (len(counts),) in the order of ``counts`` (NaN where not yet measured)."""

    counts: tuple[int, ...]
    source_accuracy: float = float("nan")
    test_size: int = 0
    accuracy: dict[str, np.ndarray] = field(default_factory=dict)

    def points(self) -> list[TransferPoint]:
        return [TransferPoint(m, c, float(a)) for m in METHODS for c, a in zip(self.counts, self.accuracy[m])
                if np.isfinite(a)]


def build_network(hidden: int, seed: int) -> Network:
    """The experiment's network: Flatten, Linear(hidden), ReLU, Linear(hidden), ReLU, Linear(5) (fc1, fc2, fc3)."""
    return Network((1, 8, 8), [Flatten(), Linear(hidden), Activation("relu"), Linear(hidden), Activation("relu"),
                               Linear(len(TARGET))], seed=seed)


def split_tasks(X: np.ndarray, y: np.ndarray, settings: TransferSettings) -> dict[str, Any]:
    """The source split (standardised with its training statistics), the target pool in a class-balanced seeded
    order and the target test set (standardised with the same statistics); target labels 5..9 become 0..4."""
    src = np.isin(y, SOURCE)
    Xs_tr, ys_tr, Xs_v, ys_v = datasets.train_val_split(X[src], y[src], 0.2, seed=settings.seed)
    stats, (Xs_tr, Xs_v) = datasets.standardize(Xs_tr, Xs_v)
    tgt = np.isin(y, TARGET)
    Xp, yp, Xt, yt = datasets.train_val_split(X[tgt], y[tgt] - TARGET[0], settings.test_fraction,
                                              seed=settings.seed + 1)
    # class-balanced order: round-robin over the classes, each class in a seeded shuffle
    rng = np.random.default_rng([settings.seed, 7])
    per_class = [rng.permutation(np.flatnonzero(yp == c)) for c in range(len(TARGET))]
    order = [int(idx[r]) for r in range(max(len(p) for p in per_class)) for idx in per_class if r < len(idx)]
    order = np.asarray(order, np.int64)
    return {"source": (Xs_tr, ys_tr, Xs_v, ys_v), "pool": (stats.apply(Xp[order]), yp[order]),
            "test": (stats.apply(Xt), yt)}


def _train(net: Network, X: np.ndarray, y: np.ndarray, steps: int, lr: float, seed: int) -> None:
    batch = min(MAX_BATCH, len(X))
    epochs = max(1, -(-steps // iters_per_epoch(len(X), batch)))
    Trainer(net, (X, y, None, None), optimizer="Adam", lr=lr, batch_size=batch, epochs=epochs, seed=seed,
            norms_every=1_000_000).run()


def _transferred(pretrained: Network, settings: TransferSettings, seed: int) -> Network:
    """The pretrained body with a fresh head (the head's weights drawn from ``seed``)."""
    net = build_network(settings.hidden, seed)
    head = net.layers[-1].params
    net.load_state_dict({k: v for k, v in pretrained.state_dict().items() if k not in head}, strict=False)
    return net


def transfer_job(settings: TransferSettings | None = None, counts: Sequence[int] | None = None
                 ) -> Job[TransferResult]:
    """The whole experiment as a job: yields Progress and one TransferPoint per (count, method) as it is measured
    (counts in increasing order, the three methods for each); returns the TransferResult. ``counts`` overrides the
    settings' ladder (tests). Closing the job cancels it between two runs."""
    s = settings if settings is not None else TransferSettings()
    if not isinstance(s, TransferSettings):
        raise ValueInputError(f"settings must be TransferSettings, got {s!r}")
    ladder = tuple(sorted({check_int("labelled examples", c, 1) for c in (counts or s.label_counts)}))
    total = 1 + len(ladder) * len(METHODS)
    yield Progress(0, total, "loading the digits…")
    X, y = datasets.load_digits()
    data = split_tasks(X, y, s)
    Xp, yp = data["pool"]
    if ladder[-1] > len(Xp):
        raise ValueInputError(f"the labelled pool of digits 5-9 has {len(Xp)} examples; {ladder[-1]} cannot be "
                              f"labelled (use a smaller target test share or fewer labels)")
    result = TransferResult(ladder, test_size=len(data["test"][0]),
                            accuracy={m: np.full(len(ladder), np.nan) for m in METHODS})
    yield Progress(0, total, "pretraining on digits 0-4…")
    Xs_tr, ys_tr, Xs_v, ys_v = data["source"]
    pretrained = build_network(s.hidden, s.seed)
    epochs_batch = min(MAX_BATCH, len(Xs_tr))
    Trainer(pretrained, (Xs_tr, ys_tr, None, None), optimizer="Adam", lr=s.lr, batch_size=epochs_batch,
            epochs=s.pretrain_epochs, seed=s.seed, norms_every=1_000_000).run()
    result.source_accuracy = pretrained.accuracy(Xs_v, ys_v)
    yield Progress(1, total, f"pretrained: {result.source_accuracy:.1%} on held-out digits 0-4")
    Xt, yt = data["test"]
    body = [l.name for l in pretrained.layers[:-1] if l.params]
    done = 1
    for i, n in enumerate(ladder):
        Xn, yn = Xp[:n], yp[:n]
        for method in METHODS:
            run_seed = s.seed + 1000 * (i + 1)          # the same fresh head for the probe and fine-tuning
            if method == "scratch":
                net = build_network(s.hidden, run_seed)
            else:
                net = _transferred(pretrained, s, run_seed)
                if method == "probe":
                    net.freeze(body)
            _train(net, Xn, yn, s.steps, s.lr, run_seed)
            acc = net.accuracy(Xt, yt)
            result.accuracy[method][i] = acc
            done += 1
            yield TransferPoint(method, n, acc)
            yield Progress(done, total, f"{METHOD_LABELS[method]}, {n} labels: {acc:.1%}")
    return result
