"""Test-time averaging of a trained Network: test-time augmentation (TTA) and Monte-Carlo dropout, next to the plain
evaluation, as the lecture describes them ("at test time, average out the randomness").

Both average **probabilities**, not scores or votes: p(y | x) = mean_k softmax(f_k(x)), then the class is the argmax
of the mean. The scores are turned into probabilities by softmax whatever loss the network was trained with.

- TTA: f_k(x) = f(t_k(x)) over a fixed, documented set of views t_k of each image (TTA_VIEWS): the identity, the
  four one-pixel shifts (zero fill, like the training augmentation's random crop with pad 1) and, if asked, the
  left-right mirror (a mirrored 2 or 7 is another glyph: flipping digits usually costs accuracy, which is worth
  seeing). Images only.
- MC dropout (Gal and Ghahramani): f_k is the network with its dropout layers (the records whose ``mc_random()`` is
  True: Dropout and DropConnect) in train mode and every other layer in eval mode, exactly as the plain evaluation
  runs it: batch norm uses its running statistics and does not update them, stochastic depth keeps every branch,
  fractional max pooling averages its fixed eval region draws. Pass k draws the masks of its c-th chunk of BATCH
  examples from the stream [seed, k, c]: no two chunks reuse a stream, so example i and example i + BATCH draw their
  masks independently. T passes are averaged. With p = 0 every pass equals the plain evaluation; a network without a
  dropout layer has nothing to average, and the evaluation job reports MC dropout as not applying (NaN) rather than a
  gain.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from simulator.core.errors import ShapeError, ValueInputError
from simulator.core.jobs import Job, Progress
from simulator.core.params import Settings, check_choice, check_int, param
from simulator.nn.network import EVAL_DRAW_STRIDE, Network

__all__ = ["TTA_VIEWS", "VIEW_FUNCS", "EvalResult", "EvalSettings", "evaluation_job", "mc_dropout_layers",
           "mc_dropout_proba", "mc_pass_proba", "plain_proba", "softmax", "tta_proba", "view"]

BATCH = 512


def _shift(x: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Shift images (N, C, H, W) by (dy, dx) pixels (down, right positive), filling with 0."""
    out = np.zeros_like(x)
    H, W = x.shape[2:]
    ys, yd = (slice(0, H - dy), slice(dy, H)) if dy >= 0 else (slice(-dy, H), slice(0, H + dy))
    xs, xd = (slice(0, W - dx), slice(dx, W)) if dx >= 0 else (slice(-dx, W), slice(0, W + dx))
    out[:, :, yd, xd] = x[:, :, ys, xs]
    return out


VIEW_FUNCS: Mapping[str, Callable[[np.ndarray], np.ndarray]] = {
    "identity": lambda x: x,
    "right": lambda x: _shift(x, 0, 1),
    "left": lambda x: _shift(x, 0, -1),
    "down": lambda x: _shift(x, 1, 0),
    "up": lambda x: _shift(x, -1, 0),
    "flip": lambda x: x[:, :, :, ::-1],
}
# the view sets offered; every set starts with the identity (the plain evaluation is one of the views)
TTA_VIEWS: Mapping[str, tuple[str, ...]] = {
    "shifts": ("identity", "right", "left", "down", "up"),
    "shifts + flip": ("identity", "right", "left", "down", "up", "flip"),
    "flip": ("identity", "flip"),
}


def view(x: Any, name: str) -> np.ndarray:
    """One named view (VIEW_FUNCS) of images x (N, C, H, W)."""
    x = np.asarray(x)
    if x.ndim != 4:
        raise ShapeError(f"test-time augmentation flips and shifts images (N, C, H, W); got shape {x.shape}")
    return np.ascontiguousarray(VIEW_FUNCS[check_choice("view", name, tuple(VIEW_FUNCS))](x))


def softmax(scores: np.ndarray) -> np.ndarray:
    """Row-wise softmax (N, C) in float64, shifted by the row max."""
    s = np.asarray(scores, np.float64)
    e = np.exp(s - s.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def plain_proba(net: Network, x: Any) -> np.ndarray:
    """softmax(scores) in eval mode, (N, C) float64."""
    x = np.asarray(x)
    return np.concatenate([softmax(net.forward(x[i:i + BATCH], "eval")) for i in range(0, len(x), BATCH)])


def tta_proba(net: Network, x: Any, views: Any = "shifts") -> np.ndarray:
    """The mean over the views (a TTA_VIEWS key or a sequence of VIEW_FUNCS names) of softmax(f(view(x)))."""
    names = TTA_VIEWS[check_choice("views", views, tuple(TTA_VIEWS))] if isinstance(views, str) else tuple(views)
    if not names:
        raise ValueInputError("test-time augmentation needs at least one view")
    total = None
    for name in names:
        p = plain_proba(net, view(x, name))
        total = p if total is None else total + p
    return total / len(names)


def mc_dropout_layers(net: Network) -> int:
    """How many layers MC dropout switches to train mode (Dropout and DropConnect: their ``mc_random()``); 0 means
    MC dropout does not apply to ``net``."""
    return sum(1 for layer in net.layers if layer.spec.mc_random())


def _mixed_forward(net: Network, x: np.ndarray, mask_seed: int, eval_seed: int | None) -> np.ndarray:
    """Scores with the dropout layers in train mode (masks from mask_seed + layer index) and every other layer in
    eval mode with eval_seed + layer index (None: no seed), as Network.forward(x, "eval", eval_seed) runs them."""
    buffers = dict(net.named_buffers())
    out = x
    with np.errstate(over="ignore", invalid="ignore"):
        for layer in net.layers:
            spec = layer.spec
            p = [net.params[n] for n in layer.params]
            b = {full.split(".", 1)[1]: buffers[full] for full in layer.buffers} or None
            if spec.mc_random():
                out, _ = spec.forward(out, p, b, True, mask_seed + layer.index)
            else:
                out, _ = spec.forward(out, p, b, False, None if eval_seed is None else eval_seed + layer.index)
    return out


def _mc_scores(net: Network, x: Any, mask_seed: int) -> np.ndarray:
    """One stochastic pass's scores: the plain evaluation with the dropout masks of mask_seed. Where a layer asks for
    several eval draws (fractional max pooling), their scores are averaged as Network.forward does, each draw with
    the same masks."""
    x = net.check_input(x)
    draws = max((layer.spec.eval_draws() for layer in net.layers), default=1)
    if draws == 1:
        return _mixed_forward(net, x, mask_seed, None)
    scores = _mixed_forward(net, x, mask_seed, 0)
    for d in range(1, draws):
        scores = scores + _mixed_forward(net, x, mask_seed, d * EVAL_DRAW_STRIDE)
    return scores / draws


def mc_pass_proba(net: Network, x: Any, seed: int, k: int) -> np.ndarray:
    """Pass k's probabilities (N, C): the c-th chunk of BATCH examples draws its masks from the stream [seed, k, c],
    so examples in different chunks draw independent masks."""
    seed, k = check_int("seed", seed, 0), check_int("pass k", k, 0)
    x = np.asarray(x)
    out = []
    for c, i in enumerate(range(0, len(x), BATCH)):
        s = int(np.random.default_rng([seed, k, c]).integers(0, 2**31 - 1000))
        out.append(softmax(_mc_scores(net, x[i:i + BATCH], s)))
    return np.concatenate(out) if out else np.zeros((0, net.num_classes))


def mc_dropout_proba(net: Network, x: Any, passes: int = 20, seed: int = 0,
                     on_pass: Callable[[int], Any] | None = None) -> np.ndarray:
    """The mean over ``passes`` stochastic passes of softmax(scores): Dropout and DropConnect on (mc_pass_proba),
    every other layer in eval mode. ``on_pass(k)`` is called after each pass (progress). Without a dropout layer each
    pass is the plain evaluation."""
    T = check_int("passes T", passes, 1, 10_000)
    x = np.asarray(x)
    total = np.zeros((len(x), net.num_classes))
    seed = check_int("seed", seed, 0)
    for k in range(T):
        total += mc_pass_proba(net, x, seed, k)
        if on_pass is not None:
            on_pass(k + 1)
    return total / T


@dataclass(frozen=True)
class EvalSettings(Settings):
    """Test-time averaging, as the Playground's Evaluate panel offers it."""

    tta: str = param("shifts", choices=tuple(TTA_VIEWS), label="TTA views",
                     choice_labels=("identity + 4 one-pixel shifts", "shifts + left-right flip", "identity + flip"),
                     doc="the fixed views of each image whose probabilities are averaged (images only); a flipped "
                         "digit is often another glyph")
    passes: int = param(20, low=1, high=1000, label="MC dropout passes T",
                        doc="stochastic forward passes with dropout on whose probabilities are averaged")
    seed: int = param(0, low=0, high=99_999, label="MC seed", doc="seeds the dropout masks of the T passes")


@dataclass(frozen=True)
class EvalResult:
    """Accuracies on ``n`` examples (NaN where a method does not apply) and what was averaged."""

    n: int
    plain: float
    tta: float
    mc: float
    views: tuple[str, ...]
    passes: int
    random_layers: int          # Dropout / DropConnect layers MC dropout switches on (0: MC does not apply, mc NaN)

    def gain(self, method: str) -> float:
        """Accuracy gained over the plain evaluation by 'tta' or 'mc' (NaN when it does not apply)."""
        return getattr(self, check_choice("method", method, ("tta", "mc"))) - self.plain


def _accuracy(p: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.argmax(p, axis=1) == y))


def evaluation_job(net: Network, x: Any, y: Any, settings: EvalSettings | None = None) -> Job[EvalResult]:
    """Plain, TTA (images only) and MC-dropout accuracy of ``net`` on (x, y int labels). Yields Progress per pass;
    returns an EvalResult. MC dropout runs only when the network has a Dropout or DropConnect layer (else its
    accuracy is NaN: nothing to average, no gain to claim). Give it a copy of a network that may train meanwhile."""
    s = settings if settings is not None else EvalSettings()
    if not isinstance(s, EvalSettings):
        raise ValueInputError(f"settings must be EvalSettings, got {s!r}")
    x, y = np.asarray(x), np.asarray(y)
    if len(x) == 0 or y.shape != (len(x),):
        raise ShapeError(f"evaluation needs examples with one integer label each, got {x.shape} and {y.shape}")
    images = x.ndim == 4
    views = TTA_VIEWS[s.tta] if images else ()
    random_layers = mc_dropout_layers(net)
    passes = s.passes if random_layers else 0
    total = 1 + len(views) + passes
    yield Progress(0, total, "plain evaluation…")
    plain = _accuracy(plain_proba(net, x), y)
    tta = math.nan
    if images:
        acc = None
        for k, name in enumerate(views):
            p = plain_proba(net, view(x, name))
            acc = p if acc is None else acc + p
            yield Progress(2 + k, total, f"test-time augmentation: view {name}")
        tta = _accuracy(acc / len(views), y)
    mc = math.nan
    if passes:
        mc_total = np.zeros((len(x), net.num_classes))
        for k in range(passes):
            mc_total += mc_pass_proba(net, x, s.seed, k)
            yield Progress(1 + len(views) + k + 1, total, f"MC dropout: pass {k + 1} of {passes}")
        mc = _accuracy(mc_total / passes, y)
    return EvalResult(len(x), plain, tta, mc, tuple(views), s.passes, random_layers)
