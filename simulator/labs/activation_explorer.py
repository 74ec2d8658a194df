"""The activation explorer (no Qt): every activation and its derivative side by side, where it saturates, the
lecture's two warnings about sigmoid-like units, constant-init symmetry, and dying ReLUs with the 0.01-bias remedy.

    curves("sigmoid")          # x, f(x), f'(x), the saturated mask (|f'| < SATURATION), the largest f' and where
    zigzag(centred=False)      # SGD on w from all-positive inputs: every step moves all of w's coordinates the same way
    symmetry()                 # constant init: every hidden unit gets the same gradient for ever
    run_job(dying_relu(DyingReluSettings(lr=3)))   # a ReLU MLP trained with biases 0 and 0.01: its dead units
    run_job(dead_sweep(DyingReluSettings()))       # the final dead share over learning rates, both biases, 3 seeds

f and f' come from the layer functions the networks use (simulator.functional.layers: forward, then backward with
an upstream of ones), so the explorer shows exactly what training computes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.core.jobs import Job, Progress
from simulator.core.observer import Signal
from simulator.core.params import Settings, check_choice, check_int, check_real, param
from simulator.data.datasets import TOY_NAMES
from simulator.functional import layers as L
from simulator.nn.layers import ACTIVATIONS

__all__ = ["ActivationCurves", "BIAS_VALUE", "DeadSweep", "DyingRelu", "DyingReluModel", "DyingReluSettings",
           "ReluRun", "SATURATION", "Symmetry", "ZigZag", "activation_rates", "curves", "dead_sweep", "dead_units",
           "dying_relu", "explain_dying", "explain_sweep", "relu_mlp", "relu_training", "symmetry", "zigzag"]

SATURATION = 0.02          # |f'(x)| below this: the unit passes almost no gradient back


@dataclass(frozen=True)
class ActivationCurves:
    name: str
    x: np.ndarray
    f: np.ndarray
    df: np.ndarray
    saturated: np.ndarray          # |f'| < SATURATION
    max_slope: float
    argmax_slope: float
    zero_centred: bool             # f takes negative and positive values

    @property
    def note(self) -> str:
        parts = [f"largest f' = {self.max_slope:.4g} at x = {self.argmax_slope:.3g}"]
        if self.max_slope < 1 - 1e-9:
            parts.append(f"so every such layer multiplies the gradient by at most {self.max_slope:.3g}: stacked, "
                         f"the gradient shrinks geometrically")
        frac = float(self.saturated.mean())
        if frac:
            parts.append(f"{frac:.0%} of [{self.x[0]:g}, {self.x[-1]:g}] is saturated (|f'| < {SATURATION:g}: the "
                         f"shaded bands), where the unit passes almost no gradient back")
        if not self.zero_centred:
            parts.append("its outputs are never negative (not zero-centred): the next layer's weights get gradients "
                         "of one sign per example — see the zig-zag")
        return "; ".join(parts) + "."


def curves(name: str, lo: float = -6.0, hi: float = 6.0, points: int = 1201) -> ActivationCurves:
    """f and f' of one activation on [lo, hi], from the network's own layer functions."""
    check_choice("activation", name, ACTIVATIONS)
    lo, hi = check_real("from", lo, -1e3, 1e3), check_real("to", hi, -1e3, 1e3)
    points = check_int("points", points, 3, 100_000)
    if not lo < hi:
        lo, hi = min(lo, hi) - 1.0, max(lo, hi) + 1.0
    x = np.linspace(lo, hi, points)
    forward, backward = getattr(L, f"{name}_forward"), getattr(L, f"{name}_backward")
    f, cache = forward(x.copy())
    df = np.asarray(backward(np.ones_like(x), cache), dtype=np.float64)
    f = np.asarray(f, dtype=np.float64)
    k = int(np.argmax(df))
    return ActivationCurves(name, x, f, df, np.abs(df) < SATURATION, float(df[k]), float(x[k]),
                            bool(f.min() < -1e-3 and f.max() > 1e-3))


@dataclass(frozen=True)
class ZigZag:
    """SGD on a 2-D weight vector towards w* = (1, −1), one example at a time. path: (steps + 1, 2); same_sign: the
    share of steps that moved both coordinates in the same direction (1.0 for all-positive inputs: the path can only
    go north-east or south-west, so reaching a point to the south-east takes a zig-zag)."""

    path: np.ndarray
    same_sign: float
    centred: bool
    target: tuple[float, float] = (1.0, -1.0)


def zigzag(centred: bool = False, steps: int = 60, lr: float = 0.1, seed: int = 0) -> ZigZag:
    """Fit w·x to w*·x by SGD from w = (−1, 1), with inputs in the positive quadrant (a sigmoid layer's outputs, all
    in (0, 1)) or zero-centred (a tanh's). dL/dw = (w·x − w*·x) x: with x > 0 both coordinates share the sign of the
    scalar (w·x − w*·x)."""
    steps = check_int("steps", steps, 1, 10_000)
    lr = check_real("learning rate", lr, 0.0, 10.0, low_open=True)
    rng = np.random.default_rng(check_int("seed", seed, 0))
    X = rng.uniform(0.05, 1.0, (steps, 2))
    if centred:
        X = X * rng.choice((-1.0, 1.0), (steps, 2))
    w_star = np.array([1.0, -1.0])
    w = np.array([-1.0, 1.0])
    path = [w.copy()]
    same = 0
    for x in X:
        step = -lr * (w @ x - w_star @ x) * x
        same += int(step[0] * step[1] > 0)
        w = w + step
        path.append(w.copy())
    return ZigZag(np.array(path), same / steps, centred)


@dataclass(frozen=True)
class Symmetry:
    """A 2-H-3 tanh MLP trained by full-batch SGD from a constant initialisation and from a random one: the first
    layer's weights (H units × 2 inputs) after training, and the spread between the hidden units' weight vectors at
    every step (the largest distance of a unit's vector from the first unit's). Constant init: every unit computes the same thing and gets the
    same gradient, so the spread stays exactly 0 — H units are worth one."""

    constant_w: np.ndarray
    random_w: np.ndarray
    constant_spread: np.ndarray
    random_spread: np.ndarray
    constant_loss: float
    random_loss: float


def symmetry(hidden: int = 8, steps: int = 200, lr: float = 0.5, value: float = 0.1, seed: int = 0) -> Symmetry:
    """Train the same network from ``init='constant'`` (every weight ``value``) and from Xavier, on the spiral."""
    from simulator.data.datasets import toy_data
    from simulator.nn.layers import Activation, Linear
    from simulator.nn.network import Network

    hidden = check_int("hidden units", hidden, 2, 256)
    steps = check_int("steps", steps, 1, 5000)
    lr = check_real("learning rate", lr, 0.0, 10.0, low_open=True)
    value = check_real("constant value", value, -10.0, 10.0)
    X, y = toy_data("spiral", points=150, seed=seed)
    out = {}
    for kind in ("constant", "xavier"):
        layers = [Linear(hidden, init=kind, init_value=value), Activation("tanh"),
                  Linear(3, init=kind, init_value=value)]
        net = Network((2,), layers, seed=seed, dtype=np.float64)
        w_name = net.layers[0].params[0]
        spread = []
        for _ in range(steps):
            W = net.params[w_name]
            spread.append(float(np.max(np.linalg.norm(W.T - W.T[0], axis=1))))   # exactly 0 for identical units
            loss, grads = net.loss(X, y, "train")
            for name, g in grads.items():
                net.params[name] -= lr * g
        out[kind] = (net.params[w_name].T.copy(), np.array(spread), float(net.loss(X, y, "eval")[0]))
    (cw, cs, cl), (rw, rs, rl) = out["constant"], out["xavier"]
    return Symmetry(cw, rw, cs, rs, cl, rl)


# ================================================================================================== dying ReLU
# Lecture 6: "ReLU can lead to 'dying' ReLUs. To prevent, often initialize biases with small positive value (e.g.
# 0.01)." A hidden unit is dead when its pre-activation is <= 0 on every training input: its output is 0 everywhere
# and so is ReLU's local gradient 1[x > 0], so no example ever sends it a gradient and SGD never moves its weights
# again (a first-layer unit can never recover; a deeper one only if the layer below it changes its inputs).

BIAS_VALUE = 0.01                              # the notes' small positive bias
DYING_INITS = ("kaiming", "xavier", "gaussian")
DYING_INIT_LABELS = ("Kaiming: std √(2/D_in)", "Xavier: std 1/√D_in", "Gaussian: std 0.01")
SWEEP_LRS = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0)   # the learning rates of the sweep
SWEEP_SEEDS = 3                                # seeds per learning rate and bias in the sweep
SNAPSHOTS = 100                                # activation rates are recorded at about this many steps (plus step 0)


@dataclass(frozen=True)
class DyingReluSettings(Settings):
    """A small ReLU MLP on a toy 2-D set, trained by plain minibatch SGD (no momentum, no weight decay)."""

    data: str = param("spiral", choices=TOY_NAMES, label="Data", doc="the toy 2-D training set")
    layers: int = param(2, low=1, high=3, label="Hidden layers", doc="ReLU hidden layers")
    hidden: int = param(32, low=2, high=128, label="Units per layer", doc="ReLU units in each hidden layer")
    init: str = param("kaiming", choices=DYING_INITS, choice_labels=DYING_INIT_LABELS, label="Weight init",
                      doc="how the weights are drawn (the biases: see below)")
    small_bias: bool = param(False, label="Biases start at 0.01 (else 0)",
                             doc="the notes' remedy for dying ReLUs: every bias starts at 0.01 instead of 0")
    lr: float = param(0.3, low=0.0, low_open=True, high=100.0, log=True, label="Learning rate",
                      doc="SGD step size: too high a rate throws units into the dead region for good")
    steps: int = param(300, low=10, high=3000, label="SGD steps", doc="minibatch updates")
    batch: int = param(32, low=1, high=1000, label="Batch size", doc="examples per SGD step")
    seed: int = param(0, low=0, high=99_999, label="Seed", doc="seed of the data, the weights and the batches")

    @property
    def bias_init(self) -> float:
        return BIAS_VALUE if self.small_bias else 0.0


def relu_mlp(s: DyingReluSettings, bias_init: float, seed: int | None = None, classes: int = 3):
    """The lab's network: (Linear(hidden), ReLU) x layers, then Linear(classes), float64, the chosen weight init and
    every bias at ``bias_init``. The weights depend on the seed only, so bias 0 and 0.01 start from the same
    weights."""
    from simulator.nn.layers import Activation, Linear
    from simulator.nn.network import Network

    specs = []
    for _ in range(s.layers):
        specs += [Linear(s.hidden), Activation("relu")]
    specs.append(Linear(classes))
    return Network((2,), specs, init=s.init, bias_init=check_real("bias init", bias_init, -10.0, 10.0),
                   seed=s.seed if seed is None else seed, dtype=np.float64)


def activation_rates(net, x: np.ndarray, outputs: list | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(rates, layer): for every ReLU unit of the network (its ReLU layers in order), the share of the inputs ``x``
    (N, D) on which its pre-activation (what the ReLU receives) is > 0, and its 1-based hidden layer. A rate of
    exactly 0 is a dead unit. ``outputs``: the network's layer outputs for ``x``, when already computed."""
    from simulator.nn.layers import Activation

    outs = net.layer_outputs(x) if outputs is None else outputs
    rates, layer = [], []
    for k, built in enumerate(net.layers):
        if isinstance(built.spec, Activation) and built.spec.name == "relu":
            pre = (np.asarray(x) if k == 0 else outs[k - 1]).reshape(len(x), -1)
            rates.append(np.mean(pre > 0, axis=0))
            layer.append(np.full(pre.shape[1], len(rates)))
    if not rates:
        return np.zeros(0), np.zeros(0, dtype=int)
    return np.concatenate(rates).astype(np.float64), np.concatenate(layer).astype(int)


def dead_units(net, x: np.ndarray) -> np.ndarray:
    """A bool per ReLU unit: its pre-activation is <= 0 on every row of ``x``, so its output and its gradient are 0
    on all of them."""
    return activation_rates(net, x)[0] == 0.0


@dataclass(frozen=True)
class ReluRun:
    """One training run. ``steps`` (K,): the SGD step of each snapshot (0: at initialisation); ``rates`` (units, K):
    each unit's share of training inputs with a positive pre-activation at each snapshot; ``layer`` (units,): its
    hidden layer; ``loss`` (K,): the training loss; ``initial_biases``: every layer's biases before the first
    step; ``accuracy``: the final training accuracy; ``diverged_at``: the step whose loss overflowed (training
    stopped there), or None."""

    bias_init: float
    lr: float
    steps: np.ndarray
    rates: np.ndarray
    layer: np.ndarray
    loss: np.ndarray
    initial_biases: dict
    accuracy: float
    diverged_at: int | None

    @property
    def dead(self) -> np.ndarray:
        """(units, K) bools: dead at each snapshot."""
        return self.rates == 0.0

    @property
    def units(self) -> int:
        return int(self.rates.shape[0])

    @property
    def dead_fraction(self) -> np.ndarray:
        return self.dead.mean(axis=0)

    @property
    def initial_dead(self) -> int:
        return int(self.dead[:, 0].sum())

    @property
    def final_dead(self) -> int:
        return int(self.dead[:, -1].sum())

    def final_dead_in(self, layer: int) -> int:
        return int(self.dead[self.layer == layer, -1].sum())

    def revived(self, layer: int | None = None) -> int:
        """Units that were dead at one snapshot and active at a later one (in ``layer``, or in any)."""
        d = self.dead if layer is None else self.dead[self.layer == layer]
        if d.shape[1] < 2:
            return 0
        was_dead = np.logical_or.accumulate(d, axis=1)[:, :-1]
        return int(np.any(was_dead & ~d[:, 1:], axis=1).sum())


def _batches(n: int, batch: int, steps: int, seed: int):
    """The minibatch indices of each step: reshuffled epochs, the same for every run with this seed."""
    rng = np.random.default_rng([seed, 7])
    order, pos = rng.permutation(n), 0
    for _ in range(steps):
        if pos + batch > n:
            order, pos = rng.permutation(n), 0
        yield order[pos:pos + batch]
        pos += batch


def relu_training(s: DyingReluSettings, bias_init: float, lr: float | None = None, seed: int | None = None,
                  snapshots: int = SNAPSHOTS) -> Job[ReluRun]:
    """Train the lab's network by minibatch SGD (p <- p - lr * dL/dp) and record every unit's activation rate on the
    whole training set at about ``snapshots`` evenly spaced steps (and at step 0). Yields Progress."""
    from simulator.core.errors import NumericError
    from simulator.data.datasets import toy_data

    lr = s.lr if lr is None else check_real("learning rate", lr, 0.0, 100.0, low_open=True)
    seed = s.seed if seed is None else check_int("seed", seed, 0)
    snapshots = check_int("snapshots", snapshots, 1, 10_000)
    x, y = toy_data(s.data, seed=seed)
    x = np.ascontiguousarray(x, dtype=np.float64)
    net = relu_mlp(s, bias_init, seed, classes=int(y.max()) + 1)
    initial_biases = {k: v.copy() for k, v in net.params.items() if k.endswith(".b")}
    marks = set(np.unique(np.linspace(0, s.steps, min(s.steps, snapshots) + 1).round().astype(int)).tolist())
    batch = min(s.batch, len(x))
    at, rates, losses = [], [], []
    layer = np.zeros(0, dtype=int)
    diverged = None

    def snapshot(step: int) -> None:
        nonlocal layer
        outs = net.layer_outputs(x)
        r, layer = activation_rates(net, x, outs)
        at.append(step)
        rates.append(r)
        with np.errstate(all="ignore"):
            losses.append(net.data_loss(outs[-1], y)[0])

    snapshot(0)
    for t, idx in enumerate(_batches(len(x), batch, s.steps, seed), start=1):
        try:
            _, grads, _ = net.loss_grads_scores(x[idx], y[idx], "train", checked=True)   # finite, or it raises
        except NumericError:
            diverged = t
            break
        for name, g in grads.items():
            net.params[name] -= lr * g
        if t in marks:
            snapshot(t)
        if t % 25 == 0:
            yield Progress(t, s.steps, f"SGD step {t}")
    if diverged is None:
        accuracy = float(np.mean(net.predict(x) == y))
    else:
        accuracy = float("nan")
        if at[-1] != diverged - 1:
            snapshot(diverged - 1)     # the parameters whose loss overflowed: the last finite ones
    return ReluRun(float(bias_init), float(lr), np.array(at), np.stack(rates, axis=1), layer, np.array(losses),
                   initial_biases, accuracy, diverged)


@dataclass(frozen=True)
class DyingRelu:
    """The lab's result: the same network (same weights, same batches) trained with biases 0 and with biases 0.01;
    ``shown`` is the run of the bias the settings ask for, ``other`` the other one; ``text`` says what they show."""

    settings: DyingReluSettings
    runs: dict
    text: str = ""

    @property
    def shown(self) -> ReluRun:
        return self.runs[self.settings.bias_init]

    @property
    def other(self) -> ReluRun:
        return self.runs[0.0 if self.settings.small_bias else BIAS_VALUE]


def _plural(k: int) -> str:
    return "unit" if k == 1 else "units"


def _units(k: int) -> str:
    return f"{k} {_plural(k)}"


def _layer_counts(run: ReluRun) -> str:
    layers = int(run.layer.max()) if run.layer.size else 0
    if layers < 2 or run.final_dead == 0:
        return ""
    return " (" + ", ".join(f"{run.final_dead_in(l)} in layer {l}" for l in range(1, layers + 1)) + ")"


def explain_dying(r: DyingRelu) -> str:
    """What the two runs' numbers say, quoting them: dead units at initialisation and after training, why they stay
    dead, whether any came back, and what the 0.01 bias changed in this setting. Plain text."""
    s, run, other = r.settings, r.shown, r.other
    n = run.units
    init = DYING_INIT_LABELS[DYING_INITS.index(s.init)].split(":")[0]
    out = [(f"{s.layers} × {s.hidden} ReLU units, {init} weights, biases {run.bias_init:g}: "
            f"{run.initial_dead} of {n} units are dead at initialisation")]
    trained = int(run.steps[-1])
    if run.diverged_at is not None:
        out[0] += (f"; at learning rate {s.lr:g} the loss overflowed at step {run.diverged_at}, so training stopped "
                   f"there with {run.final_dead} dead ({run.final_dead / n:.0%}).")
    else:
        out[0] += (f", {run.final_dead} ({run.final_dead / n:.0%}) after {trained} SGD steps at learning rate "
                   f"{s.lr:g}{_layer_counts(run)}.")
    died = int((run.dead[:, -1] & ~run.dead[:, 0]).sum())
    if died:
        out.append(f"Training killed {_units(died)}: an update pushed {'its' if died == 1 else 'their'} "
                   f"pre-activation below 0 on every training input; from then on ReLU's local gradient 1[x > 0] is "
                   f"0 on every example, so SGD never moves {'its' if died == 1 else 'their'} weights again.")
    elif run.final_dead == 0:
        out.append("No unit died.")
    first = int(run.dead[run.layer == 1].any(axis=1).sum())
    if first:
        back = run.revived(1)
        out.append(f"{'None' if back == 0 else back} of the {first} units that were dead in layer 1 at some point "
                   f"came back" + (" (their inputs, the data, never change)." if back == 0 else "."))
    deeper = run.revived() - run.revived(1)
    if deeper:
        out.append(f"{_units(deeper)} of deeper layers {'was' if deeper == 1 else 'were'} dead at one point and "
                   f"active later: the layer below changed {'its' if deeper == 1 else 'their'} inputs.")
    zero, small = r.runs[0.0], r.runs[BIAS_VALUE]
    out.append(f"The same weights and batches with biases {other.bias_init:g}: {other.final_dead} dead "
               f"({other.final_dead / n:.0%}).")
    diff = zero.final_dead - small.final_dead          # > 0: the 0.01 bias kept units alive
    small_diff = max(1, round(0.05 * n))
    if diff == 0:
        out.append("Here the 0.01 bias made no difference to the number of dead units.")
    elif abs(diff) <= small_diff:
        out.append(f"Here the 0.01 bias barely mattered ({zero.final_dead} dead with biases 0, {small.final_dead} "
                   f"with 0.01).")
    elif diff > 0:
        out.append(f"Here the 0.01 bias kept {diff} more {_plural(diff)} alive ({zero.final_dead} dead with "
                   f"biases 0, {small.final_dead} with 0.01).")
    else:
        out.append(f"Here the 0.01 bias left {-diff} more {_plural(-diff)} dead ({zero.final_dead} with biases 0, "
                   f"{small.final_dead} with 0.01): it did not help.")
    return " ".join(out)


def dying_relu(s: DyingReluSettings) -> Job[DyingRelu]:
    """Both runs of ``s`` (biases 0 and 0.01, same weights and batches), then the explanation."""
    if not isinstance(s, DyingReluSettings):
        from simulator.core.errors import ValueInputError
        raise ValueInputError(f"settings must be DyingReluSettings, got {type(s).__name__}")
    return _dying_relu(s)


def _relabelled(job: Job, offset: int, total: int, what: str) -> Job:
    """Run ``job`` inside a bigger one: its Progress is shifted by ``offset`` of ``total`` and prefixed with
    ``what``; returns its result."""
    try:
        while True:
            p = next(job)
            yield Progress(offset + p.done, total, f"{what}: {p.message}")
    except StopIteration as stop:
        return stop.value
    finally:
        job.close()


def _dying_relu(s: DyingReluSettings) -> Job[DyingRelu]:
    runs = {}
    for k, bias in enumerate((0.0, BIAS_VALUE)):
        runs[bias] = yield from _relabelled(relu_training(s, bias), k * s.steps, 2 * s.steps, f"biases {bias:g}")
    r = DyingRelu(s, runs)
    return DyingRelu(s, runs, explain_dying(r))


@dataclass(frozen=True)
class DeadSweep:
    """The final dead share over learning rates, both bias inits and several seeds, everything else as in
    ``settings``. ``dead`` (2, rates, seeds): [0] biases 0, [1] biases 0.01; ``diverged`` the same shape, True where
    the loss overflowed (that run's share is taken where it stopped)."""

    settings: DyingReluSettings
    lrs: np.ndarray
    seeds: np.ndarray
    dead: np.ndarray
    diverged: np.ndarray
    text: str = ""

    @property
    def mean(self) -> np.ndarray:
        """(2, rates): the dead share averaged over the seeds."""
        return self.dead.mean(axis=2)


def _pct(v: float) -> str:
    return f"{v:.0%}"


def explain_sweep(w: DeadSweep) -> str:
    """What the sweep's numbers say: how the dead share grows with the learning rate, and whether the 0.01 bias
    lowered it at every rate (a consistent improvement) or not. Plain text quoting the means."""
    zero, small = w.mean
    seeds = len(w.seeds)
    lrs = [f"{v:g}" for v in w.lrs]
    out = [(f"Dead share after {w.settings.steps} steps, mean of {seeds} seed{'s' if seeds > 1 else ''}, biases 0: "
            + ", ".join(f"{_pct(d)} at {lr}" for d, lr in zip(zero, lrs)) + ".")]
    over = np.maximum(zero, small) > 0.5                 # more than half dead with one of the two bias inits
    half = [lr for lr, o in zip(lrs, over) if o]
    first = int(np.argmax(over))
    if not half:
        out.append("At none of these rates did more than half of the units die.")
    elif over[first:].all():                             # a trend: every rate from the first such one on
        out.append(f"From learning rate {half[0]} on, more than half of the units end up dead with one of the two "
                   f"bias inits: too large a step throws them into the region where ReLU passes no gradient.")
    else:
        below = [lr for lr, o in zip(lrs[first:], over[first:]) if not o]
        out.append(f"More than half of the units end up dead with one of the two bias inits at learning "
                   f"rate{'s' if len(half) > 1 else ''} {', '.join(half)}, but not at the larger "
                   f"rate{'s' if len(below) > 1 else ''} {', '.join(below)}: here the dead share does not simply "
                   f"grow with the step.")
    d = zero - small                                     # > 0: the 0.01 bias lowered the dead share
    helps = [lr for lr, v in zip(lrs, d) if v > 0.02]
    hurts = [lr for lr, v in zip(lrs, d) if v < -0.02]
    if not helps and not hurts:
        out.append(f"The 0.01 bias changed the mean dead share by at most {float(np.abs(d).max()) * 100:.1f} "
                   f"points at any rate: no real difference here.")
    elif helps and not hurts and len(helps) == len(lrs):
        out.append(f"The 0.01 bias lowered the dead share at every rate, by {float(d.min()) * 100:.1f} to "
                   f"{float(d.max()) * 100:.1f} points: in this setting it helps.")
    else:
        parts = []
        if helps:
            parts.append(f"lowered the dead share by more than 2 points at {', '.join(helps)}")
        if hurts:
            parts.append(f"raised the dead share by more than 2 points at {', '.join(hurts)}")
        rest = [lr for lr in lrs if lr not in helps and lr not in hurts]
        if rest:
            parts.append(f"changed it by 2 points or less at {', '.join(rest)}")
        verdict = ("not a consistent improvement" if helps and hurts else
                   "in this setting it helps (it never raised the dead share by more than 2 points)" if helps else
                   "in this setting it does not help")
        out.append("The 0.01 bias " + "; ".join(parts) + f": {verdict}.")
    bad = int(w.diverged.sum())
    if bad:
        out.append(f"The loss overflowed in {bad} of the {w.diverged.size} runs (counted where they stopped).")
    return " ".join(out)


def dead_sweep(s: DyingReluSettings, lrs=SWEEP_LRS, seeds: int = SWEEP_SEEDS) -> Job[DeadSweep]:
    """Train ``s`` at every learning rate of ``lrs``, with biases 0 and 0.01, for ``seeds`` seeds (s.seed, s.seed +
    1, ...), and keep each run's final dead share. Yields Progress counted in SGD steps over all the runs (one
    total from start to end, runs × steps), with a message naming the run."""
    if not isinstance(s, DyingReluSettings):
        from simulator.core.errors import ValueInputError
        raise ValueInputError(f"settings must be DyingReluSettings, got {type(s).__name__}")
    lrs = np.array([check_real("learning rate", v, 0.0, 100.0, low_open=True) for v in lrs], dtype=np.float64)
    seeds = check_int("seeds", seeds, 1, 20)
    return _dead_sweep(s, lrs, np.arange(s.seed, s.seed + seeds))


def _dead_sweep(s: DyingReluSettings, lrs: np.ndarray, seeds: np.ndarray) -> Job[DeadSweep]:
    dead = np.zeros((2, len(lrs), len(seeds)))
    diverged = np.zeros(dead.shape, dtype=bool)
    runs, done = dead.size, 0
    total = runs * s.steps                               # in SGD steps, so the runs' own Progress fits in
    for i, lr in enumerate(lrs):
        for b, bias in enumerate((0.0, BIAS_VALUE)):
            for k, seed in enumerate(seeds):
                run = yield from _relabelled(relu_training(s, bias, lr=float(lr), seed=int(seed), snapshots=1),
                                             done * s.steps, total,
                                             f"run {done + 1} of {runs}: learning rate {lr:g}, biases {bias:g}, "
                                             f"seed {seed}")
                dead[b, i, k] = run.final_dead / max(run.units, 1)
                diverged[b, i, k] = run.diverged_at is not None
                done += 1
                yield Progress(done * s.steps, total, f"{done} of {runs} runs")
    w = DeadSweep(s, lrs, seeds, dead, diverged)
    return DeadSweep(s, lrs, seeds, dead, diverged, explain_sweep(w))


def _sweep_key(s: DyingReluSettings) -> DyingReluSettings:
    """What a sweep depends on: everything but the learning rate and the bias toggle (it varies both)."""
    return s.replace(lr=1.0, small_bias=False)


class DyingReluModel:
    """The dying-ReLU demo's settings, its latest result and its latest sweep. ``experiment(settings)`` checks them
    and returns the job (switching only the bias toggle reuses the runs already made: both biases are trained every
    time); ``show(result)`` makes a result current and emits ``changed``; a sweep made for other settings (anything
    but the learning rate and the toggle) is dropped then, with ``sweep_changed``; ``show_sweep(sweep)`` refuses a
    sweep made for other settings than the current ones (one that finished after an edit)."""

    def __init__(self) -> None:
        self.changed = Signal()
        self.sweep_changed = Signal()
        self.settings = DyingReluSettings()
        self.result: DyingRelu | None = None
        self.sweep: DeadSweep | None = None

    def experiment(self, settings: DyingReluSettings | None = None) -> Job[DyingRelu]:
        s = self.settings if settings is None else settings
        job = dying_relu(s)                              # checks the type
        r = self.result
        if r is not None and r.settings.replace(small_bias=s.small_bias) == s:
            job.close()
            return self._switched(DyingRelu(s, r.runs))
        return job

    @staticmethod
    def _switched(r: DyingRelu) -> Job[DyingRelu]:
        yield Progress(1, 1, "the other bias's run")
        return DyingRelu(r.settings, r.runs, explain_dying(r))

    def show(self, result: DyingRelu) -> None:
        self.settings = result.settings
        self.result = result
        if self.sweep is not None and not self.sweep_applies(self.sweep.settings, result.settings):
            self.sweep = None
            self.sweep_changed.emit()
        self.changed.emit()

    def sweep_job(self, settings: DyingReluSettings | None = None) -> Job[DeadSweep]:
        return dead_sweep(self.settings if settings is None else settings)

    @staticmethod
    def sweep_applies(made_for: DyingReluSettings, settings: DyingReluSettings) -> bool:
        """Whether a sweep made for ``made_for`` belongs beside a result for ``settings`` (they differ at most in
        the learning rate and the bias toggle, which the sweep varies)."""
        return _sweep_key(made_for) == _sweep_key(settings)

    def show_sweep(self, sweep: DeadSweep) -> bool:
        """Make ``sweep`` current and emit ``sweep_changed``; True if it was. A sweep made for other settings than
        the current ones (the learner edited while it ran) is dropped: False, and nothing changes."""
        if not self.sweep_applies(sweep.settings, self.settings):
            return False
        self.sweep = sweep
        self.sweep_changed.emit()
        return True
