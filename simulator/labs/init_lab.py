"""The Init / norm lab's model (lecture 6): its settings, the experiment as a job, the histograms the view draws, and
an explanation written from the measured numbers (never from a table of expectations that could contradict them).

    model = InitLabModel()
    job = model.experiment(InitSettings(activation="tanh", init="gaussian 1.0"))   # checked now, run later
    result = run_job(job)            # or gui.jobs.JobRunner; then model.show(result)
    model.explain(result.stats)      # "... dL/da grows ×7.3e+04 from layer 10 to layer 1 ..."

    job = model.norm_comparison(NormSettings(channels=6, groups=3))   # the four norms on one N x C x H x W tensor
    model.show_norms(run_job(job))   # model.norms.row("GroupNorm").sets == 18; norms_changed is emitted
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from simulator.core.jobs import Job, Progress
from simulator.core.observer import Signal
from simulator.core.params import Settings, param
from simulator.labs.init_stats import (ACTIVATION_CHOICES, INIT_CHOICES, InitStats, NormComparison, check_norm_size,
                                       experiment_steps, histogram, init_std, layer_statistics_job,
                                       norm_activations, norm_comparison_job)

__all__ = ["BINS", "InitLabModel", "InitResult", "InitSettings", "NormSettings", "explain", "explain_norms"]

BINS = 60


@dataclass(frozen=True)
class InitSettings(Settings):
    """One experiment: the network, its initialisation and batch norm."""

    depth: int = param(10, low=1, high=30, label="Depth (layers)", doc="number of hidden layers")
    width: int = param(500, low=2, high=2000, label="Width (units)", doc="units per layer (and input features)")
    n: int = param(1000, low=10, high=5000, label="Inputs (random)", doc="random N(0, 1) inputs in the batch")
    activation: str = param("tanh", choices=ACTIVATION_CHOICES, label="Activation")
    init: str = param("gaussian 0.01", choices=INIT_CHOICES, label="Initialisation",
                      doc="weight std: 0.01, 1, 1/√D_in (xavier) or √(2/D_in) (kaiming)")
    seed: int = param(0, low=0, high=99_999, label="Seed", doc="seed of the weights, inputs and upstream gradient")
    batchnorm: bool = param(False, label="Batch norm", doc="batch norm (γ 1, β 0) before each non-linearity")
    mode: str = param("train", choices=("train", "eval"), label="Batch-norm mode",
                      doc="train: normalise with the batch's statistics; eval: with the running statistics")
    warmup: int = param(5, low=0, high=500, label="Warm-up passes",
                        doc="train-mode passes on fresh batches before the measured one: they fill the running "
                            "mean and variance (momentum 0.1)")


@dataclass(frozen=True)
class InitResult:
    """Everything the view draws: the statistics, one histogram (counts, edges) per layer for the activations (and,
    with batch norm, for the other mode's activations) and the gradients, their x ranges, and the explanation."""

    settings: InitSettings
    stats: InitStats
    acts: list
    other: list
    grads: list
    a_lim: float
    g_lim: float
    text: str
    seconds: float


@dataclass(frozen=True)
class NormSettings(Settings):
    """The norm comparison: one activation tensor N x C x H x W and the four norms applied to it."""

    n: int = param(6, low=2, high=64, label="Batch N", doc="samples in the batch (the cube's depth)")
    channels: int = param(6, low=1, high=64, label="Channels C", doc="channels (the cube's width)")
    size: int = param(4, low=2, high=32, label="Height = width", doc="H = W: pixels per channel are H·W")
    groups: int = param(3, low=1, high=64, label="GroupNorm groups G",
                        doc="GroupNorm splits the C channels into G groups of C/G (G must divide C)")
    channel_shift: float = param(2.0, low=0.0, high=10.0, decimals=2, label="Channel offsets",
                                 doc="std of the channels' means in the input: what batch and instance norm remove")
    sample_scale: float = param(0.5, low=0.0, high=2.0, decimals=2, label="Sample scales",
                                doc="spread (log scale) of each sample's overall scale in the input: what layer, "
                                    "instance and group norm remove")
    seed: int = param(0, low=0, high=99_999, label="Seed", doc="seed of the activation tensor")


def _limit(arrays: list[np.ndarray]) -> float:
    tops = [float(np.percentile(np.abs(a[np.isfinite(a)]), 99.5)) if np.isfinite(a).any() else 0.0 for a in arrays]
    return max(max(tops, default=0.0), 1e-12)


def _g(v: float) -> str:
    return f"{v:.2g}" if 1e-3 <= abs(v) < 1e4 or v == 0 else f"{v:.1e}"


def _factor(r: float) -> str:
    return f"×{r:.3g}" if 1e-3 <= r < 1e4 else f"×{r:.1e}"


def explain(s: InitStats) -> str:
    """What the numbers of one experiment say, in sentences that quote them: how the activations' std changes from
    layer 1 to the last layer, saturation (tanh) or inactive units (ReLU), and how dL/da changes from the last layer
    (the upstream gradient) back to layer 1, with the per-layer factor that causes it. Plain text."""
    L = s.depth
    std, gstd = s.column("std"), s.column("grad_std")
    out: list[str] = []
    first, last = float(std[0]), float(std[-1])
    ratio = last / first if first > 0 else math.inf
    if L == 1:
        out.append(f"One layer: its activations have std {_g(first)}.")
    elif ratio < 1e-2:
        out.append(f"Activations collapse towards 0: their std falls from {_g(first)} in layer 1 to {_g(last)} in "
                   f"layer {L} ({_factor(ratio ** (1 / (L - 1)))} per layer).")
    elif ratio > 1e2:
        out.append(f"Activations explode: their std grows from {_g(first)} in layer 1 to {_g(last)} in layer {L} "
                   f"({_factor(ratio ** (1 / (L - 1)))} per layer).")
    else:
        out.append(f"Activations keep a usable scale: std {_g(first)} in layer 1, {_g(last)} in layer {L}.")
    if s.activation == "tanh":
        sat = float(np.mean(s.column("saturated")))
        local = float(np.nanmean(s.column("local_grad")))
        if sat > 0.5:
            out.append(f"{sat:.0%} of the tanh units are saturated (|a| > 0.99): their local gradient 1 − a² is "
                       f"tiny (mean {_g(local)}).")
        elif sat > 0.05:
            out.append(f"{sat:.0%} of the tanh units are saturated (|a| > 0.99); the mean local gradient 1 − a² is "
                       f"{_g(local)}.")
        else:
            out.append(f"Almost no tanh unit saturates ({sat:.0%} with |a| > 0.99); the mean local gradient 1 − a² "
                       f"is {_g(local)}.")
    else:
        zero = float(np.mean(s.column("zero_fraction")))
        dead = float(np.mean(s.column("dead_fraction")))
        text = f"{zero:.0%} of the ReLU outputs are 0"
        text += f", and {dead:.0%} of the units are dead (0 for every input)." if dead >= 0.01 else "."
        out.append(text)
    top, bottom = float(gstd[-1]), float(gstd[0])
    if L > 1:
        g = bottom / top if top > 0 else math.inf
        per = g ** (1 / (L - 1)) if math.isfinite(g) and g > 0 else g
        head = f"Backwards, dL/da has std {_g(top)} at layer {L} (the upstream gradient) and {_g(bottom)} at layer 1"
        if g > 1e2:
            text = f"{head}: it grows {_factor(g)} ({_factor(per)} per layer), so the gradients explode"
            if s.activation == "tanh" and float(np.mean(s.column("saturated"))) > 0.5:
                gain = init_std(s.init, s.width) * math.sqrt(s.width)
                text += (f". Saturation does not make them vanish: each layer multiplies dL/da by Wᵀ, about "
                         f"{_factor(gain)} for weights of std {_g(init_std(s.init, s.width))}, which more than "
                         f"makes up for the small 1 − a²")
            out.append(text + ".")
        elif g < 1e-2:
            out.append(f"{head}: it shrinks {_factor(g)} ({_factor(per)} per layer), so the gradients vanish and "
                       f"the first layers barely learn.")
        else:
            out.append(f"{head}: it changes only {_factor(g)} over {L} layers, so the gradient reaches every layer "
                       f"at a usable scale.")
    if s.batchnorm:
        pre = s.column("pre_std")
        if s.mode == "train":
            out.append(f"Batch norm re-centres and re-scales every layer's pre-activations with the batch's "
                       f"statistics: their std is {float(pre.min()):.3f}–{float(pre.max()):.3f} across the layers, "
                       f"whatever the initialisation.")
        else:
            gap = float(np.nanmean(s.column("train_eval_gap")))
            out.append(f"Eval mode normalises with the running statistics, which after a few warm-up passes still lag "
                       f"behind the batch's (the running mean holds 1 − 0.9^k of it after k passes): the outputs "
                       f"differ from train mode by {gap:.2f} std on average.")
    return " ".join(out)


_PER_SET = {"BatchNorm": "one channel over the batch and its pixels (N·H·W)",
            "LayerNorm": "one sample over all its channels and pixels (C·H·W)",
            "InstanceNorm": "one channel of one sample over its pixels (H·W)",
            "GroupNorm": "one sample's group of C/G channels over their pixels (C/G·H·W)"}


def explain_norms(c: NormComparison) -> str:
    """What the comparison's numbers say, one sentence per norm, quoting them: how many statistics it takes and
    over how many values, and which differences survive it (per-sample means after batch norm, per-channel means
    after layer and group norm). Plain text."""
    N, C = c.x.shape[:2]
    out = []
    for r in c.rows:
        stat = "statistic" if r.sets == 1 else "statistics"
        text = (f"{r.name}: {r.sets} mean/variance {stat}, each of {_PER_SET[r.name]} = {r.per_set} values; "
                f"the means it removes range {r.in_mean[0]:+.2f}…{r.in_mean[1]:+.2f}")
        keeps = []
        if r.sample_spread > 1e-6:
            keeps.append(f"the samples' means still differ (spread {r.sample_spread:.2f})")
        if r.channel_spread > 1e-6:
            keeps.append(f"the channels' means still differ (spread {r.channel_spread:.2f})")
        text += ("; after it " + " and ".join(keeps)) if keeps else "; after it every sample and channel has mean 0"
        out.append(text + ".")
    gn = c.row("GroupNorm")
    out.append(f"GroupNorm with G = {c.groups} sits between layer norm (G = 1) and instance norm (G = C = {C}); "
               f"with G = {c.groups} its sets hold {gn.per_set} values. Batch norm alone depends on the batch: "
               f"the other three treat each of the {N} samples on its own.")
    return " ".join(out)


class InitLabModel:
    """The lab's settings and its latest result. ``experiment(settings)`` checks them (ValueInputError, nothing
    changes) and returns the job; ``show(result)`` makes a finished result current and emits ``changed``."""

    def __init__(self) -> None:
        self.changed = Signal()
        self.norms_changed = Signal()
        self.settings = InitSettings()
        self.result: InitResult | None = None
        self.norm_settings = NormSettings()
        self.norms: NormComparison | None = None

    @property
    def stats(self) -> InitStats | None:
        return None if self.result is None else self.result.stats

    def experiment(self, settings: InitSettings | None = None) -> Job[InitResult]:
        """The job for ``settings`` (default: the current ones). Arguments and size are checked at once."""
        s = self.settings if settings is None else settings
        if not isinstance(s, InitSettings):
            from simulator.core.errors import ValueInputError
            raise ValueInputError(f"settings must be InitSettings, got {type(s).__name__}")
        stats_job = layer_statistics_job(s.depth, s.width, s.activation, s.init, s.batchnorm, s.n, s.seed, s.mode,
                                         s.warmup)
        return self._experiment(s, stats_job)

    @staticmethod
    def _experiment(s: InitSettings, stats_job: Job[InitStats]) -> Job[InitResult]:
        t0 = time.perf_counter()
        stats = yield from stats_job
        total = experiment_steps(s.depth, s.batchnorm, s.warmup if s.batchnorm else 0)
        tanh = s.activation == "tanh"
        a_lim = 1.0 if tanh else _limit(stats.activations)
        g_lim = _limit(stats.gradients)
        if tanh:
            acts = [histogram(a, BINS, a_lim) for a in stats.activations]
            other = [histogram(a, BINS, a_lim) for a in stats.other_activations]
        else:   # ReLU: half the outputs are exactly 0; that spike is a number of its own, the histogram shows a > 0
            def positive(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
                counts, edges = np.histogram(a[a > 0], bins=BINS, range=(0.0, a_lim))
                return counts / max(a.size, 1), edges
            acts = [positive(a) for a in stats.activations]
            other = [positive(a) for a in stats.other_activations]
        grads = [histogram(g, BINS, g_lim) for g in stats.gradients]
        yield Progress(total, total, "histograms")
        return InitResult(s, stats, acts, other, grads, a_lim, g_lim, explain(stats), time.perf_counter() - t0)

    def set_settings(self, settings: InitSettings) -> None:
        self.settings = settings

    def show(self, result: InitResult) -> None:
        self.settings = result.settings
        self.result = result
        self.changed.emit()

    # ---- the four norms on one tensor
    def norm_comparison(self, settings: NormSettings | None = None) -> Job[NormComparison]:
        """The comparison job for ``settings`` (default: the current ones): checked now, before the tensor is drawn
        (ShapeError when G does not divide C, ValueInputError for a tensor over MAX_NORM_VALUES and other
        refusals), computed as the job runs."""
        s = self.norm_settings if settings is None else settings
        if not isinstance(s, NormSettings):
            from simulator.core.errors import ValueInputError
            raise ValueInputError(f"settings must be NormSettings, got {type(s).__name__}")
        check_norm_size(s.n, s.channels, s.size, s.size, s.groups)
        x = norm_activations(s.n, s.channels, s.size, s.seed, s.channel_shift, s.sample_scale)
        job = norm_comparison_job(x, s.groups)
        self.norm_settings = s
        return job

    def show_norms(self, comparison: NormComparison) -> None:
        self.norms = comparison
        self.norms_changed.emit()

