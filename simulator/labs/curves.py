"""What does my learning curve say? The training recipe's step 6 (no Qt): read a run's loss curves the way the
lecture does, and the annotated reference curves to compare with.

    d = diagnose(step_losses, epoch_train_losses, epoch_val_losses)
    d.verdict        # "healthy", "diverged", "flat", "slow_start", "overfitting", "plateau" or "too_short"
    d.title, d.advice, d.evidence     # what it is, what to do, the numbers that say so

The rules, in order (the first that matches wins): a NaN, an infinity or a loss that ends far above where it started
means the learning rate is too high; a loss that never moves means a bad initialisation or a rate far too low; a
loss that stays put for a long while and then drops means a bad initialisation; a validation loss rising while the
training loss keeps falling means overfitting; a loss that fell and then stopped moving means it is time to decay
the learning rate. Losses are smoothed (a running median) before they are compared, so mini-batch noise does not
count as a trend.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from simulator.core.errors import ShapeError, ValueInputError

__all__ = ["DIAGNOSES", "Diagnosis", "MIN_STEPS", "SHORT_NAMES", "diagnose", "reference_curves"]

MIN_STEPS = 20

DIAGNOSES: dict[str, tuple[str, str]] = {
    "diverged": ("The loss exploded: the learning rate is too high",
                 "Divide the learning rate by 3 to 10 and train again; a NaN or a loss far above its start never "
                 "comes back by itself."),
    "flat": ("The loss does not move: a bad initialisation, or a rate far too low",
             "Check that the first loss is about ln C (softmax over C classes); if it is, raise the learning rate by "
             "10×; if not, fix the initialisation (Kaiming for ReLU, Xavier for tanh)."),
    "slow_start": ("A flat start, then a drop: a bad initialisation",
                   "The network spent its first updates getting out of a poor starting point; a better-scaled "
                   "initialisation (or batch norm) would start learning at once."),
    "overfitting": ("The validation loss rises while the training loss falls: overfitting",
                    "Regularise (weight decay, dropout, augmentation), get more data, or stop at the best "
                    "validation epoch (early stopping)."),
    "plateau": ("The loss fell, then stopped: a plateau",
                "Decay the learning rate (step or cosine schedule): smaller steps go further down the valley the "
                "large ones keep jumping across."),
    "healthy": ("A healthy curve",
                "The loss falls and validation follows training: train longer, or try a larger model."),
    "too_short": ("Too short to judge",
                  f"Train for at least {MIN_STEPS} updates, then ask again."),
}


SHORT_NAMES = {"diverged": "Rate too high", "flat": "Flat: bad init or rate too low",
               "slow_start": "Flat start: bad init", "overfitting": "Overfitting", "plateau": "Plateau: decay the rate",
               "healthy": "Healthy", "too_short": "Too short"}


@dataclass(frozen=True)
class Diagnosis:
    verdict: str
    evidence: str

    @property
    def title(self) -> str:
        return DIAGNOSES[self.verdict][0]

    @property
    def advice(self) -> str:
        return DIAGNOSES[self.verdict][1]


def _smooth(a: np.ndarray, width: int) -> np.ndarray:
    """Running median over ``width`` points (shorter at the ends)."""
    if width <= 1 or len(a) < 3:
        return a
    pad = width // 2
    padded = np.pad(a, pad, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * pad + 1)
    return np.median(windows, axis=1)[:len(a)]


def _as_curve(name: str, v: Any) -> np.ndarray | None:
    if v is None:
        return None
    try:
        a = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueInputError(f"{name} must be a list of numbers") from None
    if a.ndim != 1:
        raise ShapeError(f"{name} must be one value per step, got shape {a.shape}")
    return a


def diagnose(step_loss: Any, train_epochs: Any = None, val_epochs: Any = None) -> Diagnosis:
    """Read a run: the loss of every update, and (optionally) the training and validation loss of every epoch."""
    loss = _as_curve("step losses", step_loss)
    train = _as_curve("training losses per epoch", train_epochs)
    val = _as_curve("validation losses per epoch", val_epochs)
    n = len(loss)
    bad = np.flatnonzero(~np.isfinite(loss))
    if len(bad):
        return Diagnosis("diverged", f"the loss became {loss[bad[0]]} at update {bad[0] + 1}")
    if n < MIN_STEPS:
        return Diagnosis("too_short", f"{n} update{'s' if n != 1 else ''} so far")
    s = _smooth(loss, max(3, n // 25) | 1)
    k = max(2, n // 10)
    start, end = float(np.median(s[:k])), float(np.median(s[-k:]))
    first = float(loss[0])                 # the loss before any update: where a sane run never goes back above
    if end > 3 * first and end > first + 1e-3:
        return Diagnosis("diverged", f"the loss ends near {end:.3g}, far above its first value {first:.3g}")
    scale = max(abs(start), 1e-12)
    if (start - end) / scale < 0.05:
        return Diagnosis("flat", f"the loss went from about {start:.3g} to {end:.3g} in {n} updates "
                                 f"({100 * (start - end) / scale:.1f}% lower)")
    # a flat start: the first stretch of the run moved little of the total drop, and the rest moved a lot
    drop = start - end
    third = max(k, n // 3)
    early = start - float(np.median(s[third - k // 2:third + k // 2 + 1]))
    if early < 0.1 * drop:
        return Diagnosis("slow_start", f"in the first {third} updates the loss moved {100 * max(early, 0) / drop:.0f}% of its "
                                       f"total drop ({start:.3g} → {end:.3g})")
    if train is not None and val is not None and len(val) >= 4 and len(train) == len(val) and \
            np.all(np.isfinite(val)) and np.all(np.isfinite(train)):
        best = int(np.argmin(val))
        rise = (val[-1] - val[best]) / max(abs(val[best]), 1e-12)
        if best < len(val) - 2 and rise > 0.1 and train[-1] < train[best]:
            return Diagnosis("overfitting", f"validation loss was lowest at epoch {best + 1} ({val[best]:.3g}) and "
                                            f"is now {val[-1]:.3g} ({100 * rise:.0f}% higher), while the training "
                                            f"loss fell to {train[-1]:.3g}")
    last = s[-max(k, n // 3):]
    last_drop = float(last[0] - last[-1])
    if last_drop < 0.05 * drop and end > 0.2 * start:          # stuck while still well above where it could go
        return Diagnosis("plateau", f"over the last {len(last)} updates the loss moved {100 * last_drop / drop:.1f}% "
                                    f"of its total drop and stays near {end:.3g}")
    gap = ""
    if val is not None and train is not None and len(val) and len(train) and math.isfinite(val[-1]):
        gap = f"; validation {val[-1]:.3g} vs training {train[-1]:.3g}"
    return Diagnosis("healthy", f"the loss fell from about {start:.3g} to {end:.3g}{gap}")


def reference_curves(n: int = 300, epochs: int = 20, seed: int = 0
                     ) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The lecture's reference curves, one per diagnosis: {verdict: (step losses, train per epoch, val per epoch)}.
    Each is one that ``diagnose`` reads as its own verdict (a test keeps them honest)."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, n)
    te = np.linspace(0, 1, epochs)
    noise = lambda size: 1 + 0.04 * rng.normal(size=size)        # noqa: E731  (multiplicative mini-batch noise)
    c = math.log(10)
    healthy = (0.1 + (c - 0.1) * np.exp(-3 * t)) * noise(n)
    healthy_e = 0.1 + (c - 0.1) * np.exp(-3 * te)
    blow = c * np.exp(-3 * t[: n // 2])
    diverged = np.concatenate([blow, blow[-1] * np.exp(12 * t[: n - n // 2])]) * noise(n)
    diverged[-n // 10:] = np.inf
    flat = np.full(n, c) * noise(n)
    slow = np.where(t < 0.45, c, 0.15 + (c - 0.15) * np.exp(-9 * (t - 0.45))) * noise(n)
    over_e_train = 0.02 + (c - 0.02) * np.exp(-6 * te)
    over_e_val = 0.6 + (c - 0.6) * np.exp(-8 * te) + 0.9 * np.maximum(te - 0.35, 0) ** 1.5
    over = (0.02 + (c - 0.02) * np.exp(-6 * t)) * noise(n)
    plateau = (0.8 + (c - 0.8) * np.exp(-20 * t)) * noise(n)
    plateau_e = 0.8 + (c - 0.8) * np.exp(-20 * te)
    return {
        "healthy": (healthy, healthy_e, healthy_e * 1.08),
        "diverged": (diverged, np.full(epochs, np.nan), np.full(epochs, np.nan)),
        "flat": (flat, np.full(epochs, c), np.full(epochs, c)),
        "slow_start": (slow, np.where(te < 0.45, c, 0.15 + (c - 0.15) * np.exp(-9 * (te - 0.45))),
                       np.where(te < 0.45, c, 0.2 + (c - 0.2) * np.exp(-9 * (te - 0.45)))),
        "overfitting": (over, over_e_train, over_e_val),
        "plateau": (plateau, plateau_e, plateau_e * 1.05),
    }
