"""The discriminative pretext tasks on the digits (no Qt): rotation prediction and SimCLR-style contrastive learning.

    task = make_rotation(settings)          # a PretextTask (simulator/labs/pretext_task.py)
    Trainer(task.network, task.data, augment=task.augment, lr=..., epochs=..., batch_size=...).run()
    task.quality(task.network)              # Quality: rotation accuracy on held-out digits vs chance 0.25

Both read the digits of ``digits_split(seed)`` (scaled to [0, 1]) and never their labels; both share one small CNN
encoder (``encoder_specs``: two conv 3×3 / ReLU / max-pool 2 stages, then Flatten: 64 features), so the linear
probe compares like with like.

**Rotation** (Gidaris et al. 2018): every image is turned by k·90°, k ∈ {0, 1, 2, 3} (np.rot90), and a 4-way head
predicts k. To name the rotation the encoder must know which way up a digit is: where its strokes start, which end is
heavy. Each batch draws fresh rotations (``RandomRotation``: the stored rotation k becomes (k + r) mod 4); the
validation set holds every held-out digit in all four rotations. Some digits look alike upside down (0, 1, 8), so
even a perfect encoder stays below 100%.

**Contrastive** (SimCLR, Chen et al. 2020): each batch draws two random views of every image (``digit_views``: a
shift, a small rotation, brightness/contrast, cutout, noise); the encoder and a small projection head map the 2B
views to embeddings, and the InfoNCE / NT-Xent loss (temperature τ) asks each view to be most similar (cosine) to
the other view of its own image among the 2B − 1 others. The linear probe reads the encoder's output, not the
projection (SimCLR's finding: the layer before the head keeps more of what the views share). The training rows are
a fixed pair of views per image (what the epoch's loss and accuracy are measured on); every batch draws fresh views
of the images its rows come from (``TwoViews``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from simulator.core.errors import ShapeError, ValueInputError
from simulator.core.params import Settings, check_int, param
from simulator.data import datasets
from simulator.functional import layers as L
from simulator.labs.pretext_task import PretextTask, Preview, Quality, digits_split
from simulator.labs.selfsup import TASKS
from simulator.nn.network import Activation, Conv2d, Flatten, LayerSpec, Linear, MaxPool, Network

__all__ = ["ENCODER_FEATURES", "ROTATIONS", "RandomRotation", "TwoViews", "ViewSettings", "digit_views",
           "encoder_specs", "make_contrastive", "make_rotation", "rotate_quarter"]

ROTATIONS = 4
DIGITS_SHAPE = (1, 8, 8)
ENCODER_FEATURES = 64           # 16 channels × 2 × 2 after the second pooling
DEFAULT_TEMPERATURE = 0.1      # SimCLR's choice for small batches: a sharp softmax over the other views
PREVIEW_SEED = 12345            # the preview's views are drawn alike every time: only the network changes


def encoder_specs() -> list[LayerSpec]:
    """The digits encoder every digits task of this module shares: (1, 8, 8) -> conv 8@3×3 (pad 1), ReLU, max-pool
    2 -> conv 16@3×3 (pad 1), ReLU, max-pool 2 -> Flatten: 64 features (1,248 parameters: small enough to train
    in seconds)."""
    return [Conv2d(8, 3, pad=1), Activation("relu"), MaxPool(2, 2), Conv2d(16, 3, pad=1), Activation("relu"),
            MaxPool(2, 2), Flatten()]


def _seed(settings: Any) -> int:
    return check_int("seed", getattr(settings, "seed", 0) if settings is not None else 0, 0)


def _images(fn: str, x: Any) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 4 or x.shape[2] != x.shape[3]:
        raise ShapeError(f"{fn}: expected square images (N, C, H, H), got shape {x.shape}")
    return x


# ================================================================================================== rotation

def rotate_quarter(x: Any, k: Any) -> np.ndarray:
    """Image i turned counter-clockwise (as displayed, row 0 at the top) by k[i]·90° (np.rot90 on the last two
    axes); k is one int or one per image, taken mod 4. x: (N, C, H, H)."""
    x = _images("rotate_quarter", x)
    k = np.asarray(k)
    if k.dtype.kind not in "iu":
        raise ValueInputError(f"rotate_quarter: k must be whole quarter turns, got dtype {k.dtype}")
    try:
        k = np.broadcast_to(k % ROTATIONS, (len(x),))
    except ValueError:
        raise ShapeError(f"rotate_quarter: k has shape {k.shape}; give one k or one per image ({len(x)})") from None
    out = np.empty_like(x)
    for r in range(ROTATIONS):
        m = k == r
        if m.any():
            out[m] = np.rot90(x[m], r, axes=(2, 3))
    return out


class RandomRotation:
    """The rotation task's per-batch draw for Trainer(augment=...): every image (already turned by its stored k)
    turns by a fresh r ∈ {0, 1, 2, 3}, and its target becomes (k + r) mod 4."""

    takes_labels = True

    def __call__(self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        r = rng.integers(0, ROTATIONS, len(x))
        return rotate_quarter(x, r), (np.asarray(y) + r) % ROTATIONS


def make_rotation(settings: Any = None) -> PretextTask:
    """The rotation-prediction task on the digits: the shared encoder, a head Linear(64), ReLU, Linear(4), the
    training digits each at a seeded rotation (fresh rotations every batch), the held-out digits in all four
    rotations for validation."""
    seed = _seed(settings)
    split = digits_split(seed)
    rng = np.random.default_rng([seed, 41])
    k = rng.integers(0, ROTATIONS, len(split.X_train))
    X = rotate_quarter(split.X_train, k)
    Xv = np.concatenate([rotate_quarter(split.X_test, r) for r in range(ROTATIONS)])
    kv = np.repeat(np.arange(ROTATIONS), len(split.X_test))
    enc = encoder_specs()
    net = Network(DIGITS_SHAPE, [*enc, Linear(64), Activation("relu"), Linear(ROTATIONS)], seed=seed)

    def quality(network: Network) -> Quality:
        acc = network.accuracy(Xv, kv)
        return Quality("rotation accuracy", acc, 1.0 / ROTATIONS, True,
                       f"The network names the rotation of {acc:.0%} of the {len(Xv):,} held-out digit images "
                       f"(each held-out digit in all four rotations); guessing gets 25%.")

    def preview(network: Network, n: int = 8) -> Preview:
        n = check_int("preview images", n, 1, len(split.X_test))
        x = rotate_quarter(split.X_test[:n], np.arange(n) % ROTATIONS)
        pred = network.predict(x)
        full = network.predict(Xv)
        confusion = np.bincount(kv * ROTATIONS + full, minlength=ROTATIONS ** 2).reshape(ROTATIONS, ROTATIONS)
        return Preview((("input (turned by k·90°)", x[:, 0].astype(np.float64)),
                        ("turned back by the predicted k", rotate_quarter(x, -pred)[:, 0].astype(np.float64))),
                       confusion.astype(np.float64),
                       "true rotation (rows) × predicted rotation (columns), held-out digits")

    return PretextTask(
        key="rotation", title=TASKS["rotation"].title,
        lecture="Turn every digit by 0°, 90°, 180° or 270° and ask the network which. The target is free: the task "
                "chose the turn. To answer, the encoder has to know what an upright digit looks like (where the "
                "strokes start, which end is heavy), which is knowledge about digits, learned without one label. "
                "A 0, 1 or 8 looks much the same upside down, so even a perfect encoder cannot always tell.",
        network=net, encoder_layers=len(enc), data=(X, k, Xv, kv), input_kind="digits", preview_fn=preview,
        quality_fn=quality, augment=RandomRotation(), optimizer="Adam", lr=3e-3, epochs=12, batch_size=64)


# ================================================================================================== contrastive

@dataclass(frozen=True)
class ViewSettings(Settings):
    """How the contrastive task draws a view of a digit (in this order; a strength of 0 turns a step off). The
    views must differ in what does not matter (position, slant, ink, a missing piece) and keep what does."""

    shift: int = param(1, low=0, high=2, label="largest shift",
                       doc="pixels a view may move in each direction (zero padding, random crop)")
    degrees: float = param(15.0, low=0.0, high=45.0, decimals=0, label="largest tilt",
                           doc="each view turns by a uniform random angle in [−a, a] degrees")
    brightness: float = param(0.2, low=0.0, high=1.0, decimals=2, label="brightness",
                              doc="the ink level shifts by b × the image's range, b ~ U(−β, β)")
    contrast: float = param(0.3, low=0.0, high=1.0, decimals=2, label="contrast",
                            doc="the ink stretches about its mean by c ~ U(1 − γ, 1 + γ)")
    cutout: int = param(3, low=0, high=5, label="cutout square", doc="side of a blanked square (0: off)")
    cutout_p: float = param(0.5, low=0.0, high=1.0, decimals=2, label="cutout probability",
                            doc="the share of views that get the cutout square")
    noise: float = param(0.05, low=0.0, high=0.5, decimals=2, label="noise",
                         doc="the std of Gaussian noise added to every pixel (pixels lie in [0, 1])")


def digit_views(x: Any, rng: np.random.Generator, views: ViewSettings | None = None) -> np.ndarray:
    """One random view of each image x (N, 1, H, W) in [0, 1]: shift, tilt, brightness/contrast, cutout (on a
    ``cutout_p`` share), noise, then clipped to [0, 1]. Same dtype as x."""
    v = views if views is not None else ViewSettings()
    if not isinstance(v, ViewSettings):
        raise ValueInputError(f"views must be ViewSettings, got {v!r}")
    x = _images("digit_views", x)
    dtype = x.dtype if x.dtype.kind == "f" else np.float64
    out = np.asarray(x, np.float64)
    if v.shift:
        out = datasets.random_crop(out, v.shift, rng)
    if v.degrees:
        out = datasets.rotate(out, v.degrees, rng)
    if v.brightness or v.contrast:
        out = datasets.brightness_contrast(out, v.brightness, v.contrast, rng)
    if v.cutout:
        hit = rng.random(len(out)) < v.cutout_p
        if hit.any():
            out[hit] = datasets.cutout(out[hit], v.cutout, rng, fill=0.0)
    if v.noise:
        out = out + rng.normal(0.0, v.noise, out.shape)
    return np.clip(out, 0.0, 1.0).astype(dtype)


class TwoViews:
    """The contrastive task's per-batch draw for Trainer(augment=...): the batch's rows name images by id (their
    targets); each image in the batch (once, however many of its rows came) gets two fresh views. Returns (2U views:
    the first views of the U images, then their second views, and the ids (2U,): the InfoNCE targets)."""

    takes_labels = True

    def __init__(self, images: np.ndarray, views: ViewSettings | None = None):
        self.images = _images("TwoViews", images)
        self.views = views if views is not None else ViewSettings()

    def __call__(self, x: np.ndarray, ids: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        ids = np.asarray(ids)
        _, first = np.unique(ids, return_index=True)
        u = ids[np.sort(first)]                              # each image once, in batch order
        imgs = self.images[u]
        return (np.concatenate([digit_views(imgs, rng, self.views), digit_views(imgs, rng, self.views)]),
                np.concatenate([u, u]))


def fixed_pairs(images: np.ndarray, views: ViewSettings, seed: Any) -> tuple[np.ndarray, np.ndarray]:
    """Two seeded views of every image: (2N views: first views then second views, ids (2N,))."""
    rng = np.random.default_rng(seed)
    n = len(images)
    ids = np.arange(n)
    return (np.concatenate([digit_views(images, rng, views), digit_views(images, rng, views)]),
            np.concatenate([ids, ids]))


def make_contrastive(settings: Any = None, *, options: ViewSettings | None = None) -> PretextTask:
    """The contrastive (SimCLR) task on the digits: the shared encoder and a projection head Linear(64), ReLU,
    Linear(32), trained with InfoNCE at the settings' temperature on two fresh views of each image per batch (drawn
    as ``options``, a ViewSettings, says); validation: a fixed pair of views of every held-out digit."""
    seed = _seed(settings)
    tau = getattr(settings, "temperature", DEFAULT_TEMPERATURE) if settings is not None else DEFAULT_TEMPERATURE
    views = options if options is not None else ViewSettings()
    if not isinstance(views, ViewSettings):
        raise ValueInputError(f"the contrastive task's options must be ViewSettings, got {views!r}")
    split = digits_split(seed)
    X, ids = fixed_pairs(split.X_train, views, [seed, 51])
    Xv, ids_v = fixed_pairs(split.X_test, views, [seed, 52])
    enc = encoder_specs()
    net = Network(DIGITS_SHAPE, [*enc, Linear(64), Activation("relu"), Linear(32)], loss="infonce",
                  temperature=tau, seed=seed)
    rows_v = len(Xv)

    def quality(network: Network) -> Quality:
        # Network.evaluate scores chunks of up to 1024 rows: with every held-out pair in one chunk, each view's
        # partner is to be found among all the other held-out views
        acc = network.accuracy(Xv, ids_v, batch_size=rows_v + rows_v % 2)
        chance = 1.0 / (rows_v - 1)
        return Quality("top-1 contrastive accuracy", acc, chance, True,
                       f"For {acc:.0%} of the {rows_v:,} held-out views, the most similar of the other "
                       f"{rows_v - 1:,} views is the other view of the same digit; guessing gets "
                       f"1/{rows_v - 1:,} = {chance:.2%}.")

    def preview(network: Network, n: int = 8) -> Preview:
        n = check_int("preview images", n, 2, len(split.X_test))
        rng = np.random.default_rng([PREVIEW_SEED, seed])
        imgs = split.X_test[:n]
        v1, v2 = digit_views(imgs, rng, views), digit_views(imgs, rng, views)
        z = network.forward(np.concatenate([v1, v2]), "eval")
        return Preview((("view 1", v1[:, 0].astype(np.float64)), ("view 2", v2[:, 0].astype(np.float64))),
                       L.cosine_similarity(z.astype(np.float64)),
                       f"cosine similarity of the {2 * n} views' embeddings (view i and view i + {n}: one digit)")

    return PretextTask(
        key="contrastive", title=TASKS["contrastive"].title,
        lecture="Draw two random views of every digit (shifted, tilted, lighter or darker, with a square cut out, "
                "noisy) and train the network so that the two views of one digit end up closer (cosine "
                "similarity) than any other view in the batch: InfoNCE, a softmax over the other 2N − 1 views with "
                "the partner as the right answer, its similarities divided by a temperature τ. The encoder learns "
                "what survives the augmentations: the digit's shape. The probe reads the encoder, not the "
                "projection head the loss sees.",
        network=net, encoder_layers=len(enc), data=(X, ids, Xv, ids_v), input_kind="digits", preview_fn=preview,
        quality_fn=quality, augment=TwoViews(split.X_train, views), optimizer="Adam", lr=1e-2, epochs=10,
        batch_size=128)
