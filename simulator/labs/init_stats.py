"""The initialisation / batch-norm experiment of lecture 6 as numbers: a deep MLP on random data, one forward pass and
one backward pass of a random upstream gradient, per-layer activations, gradients and their summaries; and the four
normalisations (batch, layer, instance, group norm) applied to one N x C x H x W activation tensor. No Qt.

The network is cs231n's "weight initialisation" demo: x (n, width) ~ N(0, 1); for each of `depth` layers
h = a_prev @ W (no bias), z = batchnorm(h) (optional, gamma 1, beta 0), a = act(z). W is drawn with

    gaussian 0.01: std 0.01          gaussian 1.0: std 1
    xavier:        std 1/sqrt(D_in)  kaiming:      std sqrt(2/D_in)

The backward pass starts from a random upstream gradient dL/da_last ~ N(0, 1) and records dL/da_l for every layer.
Batch norm in 'train' mode uses the batch's statistics; in 'eval' mode the running statistics, filled by
`warmup_passes` earlier train-mode passes on fresh batches (PyTorch's momentum 0.1 convention: after k passes the
running mean holds only 1 - 0.9^k of the true mean, which is why eval outputs differ after a short warm-up).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from simulator.core.errors import ShapeError, ValueInputError
from simulator.core.jobs import Job, Progress, run_job
from simulator.core.params import check_choice, check_int, check_real

__all__ = [
    "ACTIVATION_CHOICES",
    "INIT_CHOICES",
    "NORM_AXES",
    "NORM_KINDS",
    "NormComparison",
    "NormRow",
    "check_norm_size",
    "norm_activations",
    "norm_comparison",
    "norm_comparison_job",
    "norm_sets",
    "INIT_STDS",
    "MAX_WORK",
    "InitStats",
    "LayerSummary",
    "check_size",
    "experiment_steps",
    "experiment_work",
    "histogram",
    "init_std",
    "layer_statistics",
    "layer_statistics_job",
]

INIT_CHOICES = ("gaussian 0.01", "gaussian 1.0", "xavier", "kaiming")
ACTIVATION_CHOICES = ("tanh", "relu")
INIT_STDS = {"gaussian 0.01": lambda d: 0.01, "gaussian 1.0": lambda d: 1.0,
             "xavier": lambda d: 1.0 / np.sqrt(d), "kaiming": lambda d: np.sqrt(2.0 / d)}
MAX_BINS = 10_000
MAX_UNITS = 50_000_000   # n * width * depth: the activations kept for the plots (memory)
# Multiply-adds of one experiment (see experiment_work): 6e10 takes about 1.5 s on one core (float32 BLAS), so a debounced edit never starts minutes of work. Read at call time, so tests can lower or raise it.
MAX_WORK = 6e10
BN_EPS = 1e-5
BN_MOMENTUM = 0.1
SATURATED = 0.99         # |tanh| above this is "saturated": its local gradient 1 - a^2 is below 0.02


def init_std(init: str, fan_in: int) -> float:
    """The weight standard deviation of an INIT_CHOICES entry for a layer with fan_in inputs."""
    check_choice("init", init, INIT_CHOICES)
    return float(INIT_STDS[init](check_int("fan_in", fan_in, 1)))


@dataclass(frozen=True)
class LayerSummary:
    """One layer's numbers. pre_*: the non-linearity's input z (after batch norm when on); mean/std: its output a;
    grad_*: dL/da; saturated: share of |a| > 0.99; zero_fraction: share of a <= 0 (inactive ReLU outputs);
    dead_fraction: share of units whose output is <= 0 for every input (dead ReLUs); train_eval_gap: with batch
    norm, RMS(a_train - a_eval) / std(a_train) on the same batch (NaN without batch norm); local_grad: the mean
    local gradient of the non-linearity, da/dz (1 - a^2 for tanh, 1[a > 0] for ReLU)."""

    index: int
    pre_mean: float
    pre_std: float
    mean: float
    std: float
    grad_mean: float
    grad_std: float
    saturated: float
    zero_fraction: float
    dead_fraction: float
    train_eval_gap: float
    local_grad: float = float("nan")


@dataclass
class InitStats:
    """Per-layer arrays (lists of (n, width) float32 arrays, layer 1 first) and their summaries."""

    depth: int
    width: int
    activation: str
    init: str
    batchnorm: bool
    mode: str
    pre: list[np.ndarray]
    activations: list[np.ndarray]
    gradients: list[np.ndarray]
    layers: list[LayerSummary] = field(default_factory=list)
    x: np.ndarray | None = None                # (n, width) the input
    weights: list[np.ndarray] = field(default_factory=list)   # (width, width) per layer
    dtop: np.ndarray | None = None             # (n, width) the upstream gradient dL/da_last
    other_activations: list[np.ndarray] = field(default_factory=list)   # with batch norm: the other mode's a

    def column(self, name: str) -> np.ndarray:
        """One summary field over the layers, e.g. column('std') -> (depth,)."""
        return np.array([getattr(s, name) for s in self.layers], dtype=np.float64)


def _act(name: str, z: np.ndarray) -> np.ndarray:
    return np.tanh(z) if name == "tanh" else np.maximum(z, 0)


def _act_backward(name: str, da: np.ndarray, a: np.ndarray) -> np.ndarray:
    return da * (1 - a * a) if name == "tanh" else da * (a > 0)


def _counted(gen: Job, counter: list[int], total: int, message: str) -> Job:
    """Drive ``gen`` (which yields once per layer), yielding Progress(done, total, message) for each of its yields;
    returns what it returns."""
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value
        counter[0] += 1
        yield Progress(counter[0], total, message)


def _forward(x: np.ndarray, weights: list[np.ndarray], activation: str, batchnorm: bool, mode: str,
             running: list[list[np.ndarray]] | None):
    """A generator yielding once per layer (a place to stop); returns (pre, acts, caches). Updates the running
    statistics in train mode."""
    pre, acts, caches = [], [], []
    a = x
    for i, W in enumerate(weights):
        yield
        h = a @ W
        cache = None
        if batchnorm:
            if mode == "train":
                mu = h.mean(axis=0)
                var = h.var(axis=0)
                if running is not None:
                    n = h.shape[0]
                    rm, rv = running[i]
                    rm *= 1 - BN_MOMENTUM
                    rm += BN_MOMENTUM * mu
                    rv *= 1 - BN_MOMENTUM
                    rv += BN_MOMENTUM * var * (n / max(n - 1, 1))   # unbiased, as PyTorch
            else:
                mu, var = running[i]
            inv = (1.0 / np.sqrt(var + BN_EPS)).astype(h.dtype)
            z = (h - mu.astype(h.dtype)) * inv
            cache = (z, inv)
        else:
            z = h
        a = _act(activation, z)
        pre.append(z)
        acts.append(a)
        caches.append(cache)
    return pre, acts, caches


def experiment_work(depth: int, width: int, n: int, batchnorm: bool = False, warmup_passes: int = 0) -> float:
    """Multiply-adds of one experiment, roughly: each pass costs n * width * (width + 32) per layer (the matmul and
    the element-wise work); there are 3 passes (forward, backward, summaries), plus with batch norm the other mode's
    forward pass and one per warm-up pass."""
    passes = 3 + ((warmup_passes + 1) if batchnorm else 0)
    return float(passes) * n * width * (width + 32) * depth


def check_size(depth: int, width: int, n: int, batchnorm: bool = False, warmup_passes: int = 0) -> None:
    """Raise ValueInputError when the experiment would keep too many activations or take more than a few seconds."""
    if n * width * depth > MAX_UNITS:
        raise ValueInputError(f"{n} inputs x {depth} layers x {width} units is too large for a quick experiment "
                              f"(limit {MAX_UNITS:,} activations)")
    work = experiment_work(depth, width, n, batchnorm, warmup_passes)
    if work > MAX_WORK:
        what = f"{depth} layers x {width} units on {n} inputs"
        if batchnorm and warmup_passes:
            what += f" with {warmup_passes} warm-up passes"
        raise ValueInputError(f"{what} is too slow for a quick experiment ({work / MAX_WORK:.1f}x the limit): "
                              f"use fewer warm-up passes, inputs, units or layers")


def experiment_steps(depth: int, batchnorm: bool = False, warmup_passes: int = 0) -> int:
    """How many Progress reports layer_statistics_job yields: one per layer of every pass (warm-up passes and the
    other mode's pass only with batch norm), then one for the summaries."""
    passes = 2 + ((warmup_passes + 1) if batchnorm else 0)      # forward, backward (+ warm-ups, other mode)
    return passes * depth + 1


def layer_statistics_job(depth: int = 10, width: int = 500, activation: str = "tanh", init: str = "xavier",
                         batchnorm: bool = False, n: int = 1000, seed: int = 0, mode: str = "train",
                         warmup_passes: int = 5) -> Job[InitStats]:
    """The experiment (see the module docstring) as a job: the arguments are checked now (ValueInputError), the
    work happens as the returned generator is advanced. It yields Progress once per layer of every pass (so closing
    it stops the experiment within one layer's work) and returns the InitStats. mode 'eval' only matters with
    batch norm."""
    depth = check_int("depth", depth, 1)
    width = check_int("width", width, 1)
    n = check_int("n", n, 2)
    warmup_passes = check_int("warmup_passes", warmup_passes, 0)
    seed = check_int("seed", seed, 0)
    check_choice("activation", activation, ACTIVATION_CHOICES)
    check_choice("init", init, INIT_CHOICES)
    check_choice("mode", mode, ("train", "eval"))
    if not isinstance(batchnorm, (bool, np.bool_)):
        raise ValueInputError(f"batchnorm must be true or false, got {batchnorm!r}")
    check_size(depth, width, n, bool(batchnorm), warmup_passes)
    return _run(depth, width, activation, init, bool(batchnorm), n, seed, mode, warmup_passes)


def layer_statistics(depth: int = 10, width: int = 500, activation: str = "tanh", init: str = "xavier",
                     batchnorm: bool = False, n: int = 1000, seed: int = 0, mode: str = "train",
                     warmup_passes: int = 5) -> InitStats:
    """layer_statistics_job run to its end (tests, scripts)."""
    return run_job(layer_statistics_job(depth, width, activation, init, batchnorm, n, seed, mode, warmup_passes))


def _run(depth: int, width: int, activation: str, init: str, batchnorm: bool, n: int, seed: int, mode: str,
         warmup_passes: int) -> Job[InitStats]:
    total = experiment_steps(depth, batchnorm, warmup_passes)
    counter = [0]
    std = init_std(init, width)
    rng = np.random.default_rng(seed)
    weights = [(rng.standard_normal((width, width)) * std).astype(np.float32) for _ in range(depth)]
    x = rng.standard_normal((n, width)).astype(np.float32)
    dtop = rng.standard_normal((n, width)).astype(np.float32)

    running = [[np.zeros(width), np.ones(width)] for _ in range(depth)] if batchnorm else None
    if batchnorm:
        warm = np.random.default_rng([seed, 1])
        for k in range(warmup_passes):
            yield from _counted(_forward(warm.standard_normal((n, width)).astype(np.float32), weights, activation,
                                         True, "train", running), counter, total,
                                f"warm-up pass {k + 1} of {warmup_passes}")
    use_mode = mode if batchnorm else "train"
    with np.errstate(over="ignore", invalid="ignore"):
        pre, acts, caches = yield from _counted(_forward(x, weights, activation, batchnorm, use_mode,
                                                         running if use_mode == "eval" else None),
                                                counter, total, "forward pass")
        gap = [float("nan")] * depth
        acts_other: list[np.ndarray] = []
        if batchnorm:
            other = "eval" if use_mode == "train" else "train"
            _, acts_other, _ = yield from _counted(
                _forward(x, weights, activation, True, other, None if other == "train" else running),
                counter, total, f"{other}-mode pass")
            a_train, a_eval = (acts, acts_other) if use_mode == "train" else (acts_other, acts)
            for i in range(depth):
                d = (a_train[i] - a_eval[i]).astype(np.float64)
                s = float(a_train[i].std())
                gap[i] = float(np.sqrt(np.mean(d * d)) / s) if s > 0 else float("nan")

        # backward: dL/da_depth = dtop, then through act, batch norm and the matmul
        grads: list[np.ndarray] = [None] * depth  # type: ignore[list-item]
        da = dtop
        for i in reversed(range(depth)):
            counter[0] += 1
            yield Progress(counter[0], total, "backward pass")
            grads[i] = da
            dz = _act_backward(activation, da, acts[i])
            if batchnorm:
                z, inv = caches[i]
                if use_mode == "train":
                    m = z.shape[0]
                    dh = (inv / m) * (m * dz - dz.sum(axis=0) - z * (dz * z).sum(axis=0))
                else:
                    dh = dz * inv
            else:
                dh = dz
            da = dh @ weights[i].T

    summaries = []
    for i in range(depth):
        z, a, g = pre[i], acts[i], grads[i]
        inactive = a <= 0
        local = (1.0 - a.astype(np.float64) ** 2) if activation == "tanh" else (a > 0)
        summaries.append(LayerSummary(
            index=i + 1, pre_mean=float(z.mean()), pre_std=float(z.std()), mean=float(a.mean()), std=float(a.std()),
            grad_mean=float(g.mean()), grad_std=float(g.std()), saturated=float(np.mean(np.abs(a) > SATURATED)),
            zero_fraction=float(inactive.mean()), dead_fraction=float(inactive.all(axis=0).mean()),
            train_eval_gap=gap[i], local_grad=float(np.mean(local))))
    counter[0] += 1
    yield Progress(counter[0], total, "summaries")
    return InitStats(depth, width, activation, init, batchnorm, use_mode, pre, acts, grads, summaries, x, weights,
                     dtop, acts_other)


def histogram(a: Any, bins: int = 60, limit: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(counts as fractions of the samples (bins,), edges (bins + 1,)) over [-limit, limit] (default: the
    array's largest |value|, at least 1e-12). Non-finite values are left out. bins: 1..MAX_BINS."""
    bins = check_int("number of histogram bins", bins, 1, MAX_BINS)
    a = np.asarray(a)
    if a.dtype.kind not in "biuf":
        raise ValueInputError(f"a histogram needs real numbers, got values of type {a.dtype}")
    a = a.ravel().astype(np.float64, copy=False)
    a = a[np.isfinite(a)]
    if limit is None:
        limit = float(np.max(np.abs(a))) if a.size else 1.0
    else:
        limit = check_real("histogram limit", limit, 0.0)
    limit = max(float(limit), 1e-12)
    counts, edges = np.histogram(a, bins=bins, range=(-limit, limit))
    return counts / max(a.size, 1), edges


# ================================================================================================ the four norms
#
# Wu & He's figure (Group Normalization, 2018): an activation tensor N x C x H x W, and for each norm the set of values
# that share one mean and one variance. BatchNorm: one channel over the batch and the pixels (N, H, W); LayerNorm:
# one sample over its channels and pixels (C, H, W); InstanceNorm: one sample's channel over its pixels (H, W);
# GroupNorm: one sample's group of C/G consecutive channels over their pixels.

NORM_KINDS = ("BatchNorm", "LayerNorm", "InstanceNorm", "GroupNorm")
NORM_AXES = {"BatchNorm": ("N", "H", "W"), "LayerNorm": ("C", "H", "W"), "InstanceNorm": ("H", "W"),
             "GroupNorm": ("C/G", "H", "W")}
NORM_EPS = 1e-5
MAX_NORM_VALUES = 2_000_000      # N * C * H * W of the compared tensor


def norm_sets(kind: str, shape: tuple[int, int, int, int], groups: int = 1) -> np.ndarray:
    """(N, C) int array: which normalisation set (one mean, one variance) each (sample, channel) belongs to; every
    pixel of a (sample, channel) is in the same set for all four norms. Sets are numbered 0, 1, ... in order."""
    check_choice("norm", kind, NORM_KINDS)
    N, C = int(shape[0]), int(shape[1])
    n, c = np.meshgrid(np.arange(N), np.arange(C), indexing="ij")
    if kind == "BatchNorm":
        return c
    if kind == "LayerNorm":
        return n
    if kind == "InstanceNorm":
        return n * C + c
    if C % groups:
        raise ShapeError(f"GroupNorm: {C} channels do not split into {groups} equal groups; choose G dividing C")
    return n * groups + c // (C // groups)


@dataclass(frozen=True)
class NormRow:
    """One norm applied to the tensor. axes: what one statistic is taken over; sets: how many (mean, variance)
    pairs; per_set: values in each set; in_mean / in_std: (lowest, highest) over the sets of the input's mean and
    standard deviation (what the norm removes); out_mean: the largest |mean| of the output over one of its sets;
    out_var: the largest |variance - 1| there (eps makes it about eps / variance, not 0); channel_spread and
    sample_spread: the standard deviation over channels of the output's per-channel means, and over samples of its
    per-sample means (0 for a norm whose sets contain whole channels, whole samples); out: the normalised tensor
    (gamma 1, beta 0)."""

    name: str
    axes: tuple[str, ...]
    sets: int
    per_set: int
    in_mean: tuple[float, float]
    in_std: tuple[float, float]
    out_mean: float
    out_var: float
    channel_spread: float
    sample_spread: float
    out: np.ndarray


@dataclass
class NormComparison:
    """The tensor x (N, C, H, W), the GroupNorm group count and one NormRow per norm (NORM_KINDS order)."""

    x: np.ndarray
    groups: int
    rows: list[NormRow]

    def row(self, name: str) -> NormRow:
        return next(r for r in self.rows if r.name == name)


def norm_activations(n: int = 6, channels: int = 6, size: int = 4, seed: int = 0, channel_shift: float = 2.0,
                     sample_scale: float = 0.5) -> np.ndarray:
    """A (n, channels, size, size) float64 activation tensor whose channels have their own offsets and scales
    (channel_shift: std of the channel means) and whose samples their own overall scale (exp of N(0, sample_scale)),
    as a conv layer's output on varied images has: so the four norms visibly remove different statistics. The size
    is checked (check_norm_size) before anything is drawn."""
    check_norm_size(n, channels, size, size)
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, channels, size, size))
    offset = channel_shift * rng.standard_normal(channels)
    gain = np.exp(0.5 * rng.standard_normal(channels))
    scale = np.exp(sample_scale * rng.standard_normal(n))
    return scale[:, None, None, None] * (gain[None, :, None, None] * z + offset[None, :, None, None])


def check_norm_size(n: int, channels: int, height: int, width: int, groups: int = 1) -> None:
    """Refuse a comparison tensor N x C x H x W before it is built: more than MAX_NORM_VALUES values
    (ValueInputError), G not dividing C (ShapeError), fewer than 2 samples or 2 pixels per channel."""
    for name, v in (("batch N", n), ("channels C", channels), ("height H", height), ("width W", width),
                    ("groups G", groups)):
        check_int(name, v, 1)
    if n * channels * height * width > MAX_NORM_VALUES:
        raise ValueInputError(f"{n} x {channels} x {height} x {width} is too large for the comparison (limit "
                              f"{MAX_NORM_VALUES:,} values)")
    if channels % groups:
        raise ShapeError(f"GroupNorm: {channels} channels do not split into {groups} equal groups; choose a number "
                         f"of groups that divides {channels}")
    if height * width < 2 or n < 2:
        raise ValueInputError("the comparison needs at least 2 samples and 2 pixels per channel (instance norm "
                              "and batch norm need more than one value per set)")


def norm_comparison_job(x: Any, groups: int) -> Job[NormComparison]:
    """Batch norm (train mode), layer norm, instance norm and group norm (gamma 1, beta 0, eps 1e-5) of the same
    tensor x (N, C, H, W) through simulator.functional.layers (the Numba kernels), and their statistics measured
    independently with norm_sets. Arguments are checked now (ShapeError when G does not divide C); the work happens
    as the generator is advanced (one Progress per norm)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 4:
        raise ShapeError(f"the norm comparison needs an activation tensor (N, C, H, W), got shape {x.shape}")
    groups = check_int("groups G", groups, 1)
    check_norm_size(*x.shape, groups)
    if not np.isfinite(x).all():
        raise ValueInputError("the activation tensor holds NaN or infinity")
    return _norm_comparison(x, groups)


def _norm_comparison(x: np.ndarray, groups: int) -> Job[NormComparison]:
    from simulator.functional import layers as F   # the kernels load on the job's thread

    C = x.shape[1]
    g, b = np.ones(C), np.zeros(C)
    rows = []
    for k, kind in enumerate(NORM_KINDS):
        if kind == "BatchNorm":
            out = F.spatial_batchnorm_forward(x, g, b, {"mode": "train", "eps": NORM_EPS})[0]
        elif kind == "LayerNorm":
            out = F.layernorm_forward(x, np.ones(x.shape[1:]), np.zeros(x.shape[1:]), {"eps": NORM_EPS})[0]
        elif kind == "InstanceNorm":
            out = F.instancenorm_forward(x, g, b, {"eps": NORM_EPS})[0]
        else:
            out = F.groupnorm_forward(x, g, b, groups, {"eps": NORM_EPS})[0]
        sets = np.broadcast_to(norm_sets(kind, x.shape, groups)[:, :, None, None], x.shape).ravel()
        count = np.bincount(sets)
        in_mean, in_var = _set_moments(x.ravel(), sets, count)
        out_mean, out_var = _set_moments(out.ravel(), sets, count)
        rows.append(NormRow(
            kind, NORM_AXES[kind], int(count.size), int(count[0]),
            (float(in_mean.min()), float(in_mean.max())),
            (float(np.sqrt(in_var.min())), float(np.sqrt(in_var.max()))),
            float(np.abs(out_mean).max()), float(np.abs(out_var - 1.0).max()),
            float(out.mean(axis=(0, 2, 3)).std()), float(out.mean(axis=(1, 2, 3)).std()), out))
        yield Progress(k + 1, len(NORM_KINDS), kind)
    return NormComparison(x, groups, rows)


def _set_moments(v: np.ndarray, sets: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = np.bincount(sets, weights=v) / count
    d = v - mean[sets]
    return mean, np.bincount(sets, weights=d * d) / count


def norm_comparison(x: Any, groups: int) -> NormComparison:
    """norm_comparison_job run to its end (tests, scripts)."""
    return run_job(norm_comparison_job(x, groups))
