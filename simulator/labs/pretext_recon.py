"""The Self-supervised lab's reconstruction and photograph pretext tasks (no Qt): an autoencoder and inpainting on
the digits, colourisation and a 2x2 / 3x3 jigsaw on patches of scikit-learn's bundled photographs.

    task = make_inpainting(InpaintSettings(hole=4), seed=0)       # or make_inpainting(hole=4, seed=0)
    task = make_inpainting(lab_settings, options=InpaintSettings(hole=4))   # the lab's SelfSupSettings: its seed
    Trainer(task.network, task.data, augment=task.augment, optimizer=task.optimizer, lr=task.lr,
            epochs=task.epochs, batch_size=task.batch_size).run()
    task.quality(task.network)      # Quality: hidden-pixel MSE against the mean image's pixels there
    task.preview(task.network, 8)   # Preview: original, input (hole shown grey), reconstruction, hole filled in

Each factory takes ``(settings=None, seed=None, *, options=None, **overrides)``: ``settings`` is the lab's
settings (simulator.labs.selfsup.SelfSupSettings, whose ``seed`` is used) or the task's own Settings
(``RECON_SETTINGS[key]``: the declared options the lab's form is built from); ``options`` passes the task's Settings
beside the lab's; keyword overrides replace single options; an explicit ``seed`` wins (default 0). The digits tasks
train on the lab's shared split (``pretext_task.digits_split(seed)``: its training part) and are scored on its
held-out part, which no pretext task trains on.

Every target is made from the data alone (no label is read except by ``latent_codes``, to colour its picture):

- autoencoder: the input digit itself, through a bottleneck of a few numbers;
- inpainting: the full digit, from a copy with a square hole (a fresh hole per image in every batch: the Trainer's
  ``augment`` rebuilds the input from the batch's targets, so the target is always the unmasked image). The network
  predicts all 64 pixels with the plain MSE; the hole's pixels, not the easy copied ones, are what ``quality``
  scores. The hole's pixels read ``MASK_VALUE`` (-1, a value no digit pixel has), so the network sees where the hole
  is while the encoder still reads plain (1, 8, 8) digits (a linear probe can judge it on whole digits);
- colourisation: the a, b channels (CIE Lab, simulator.data.colour) of a photo patch, from its L channel;
- jigsaw: which of K permutations shuffled the tiles of a photo window (the K permutations of the grid's tiles with
  the largest pairwise Hamming distance, picked greedily, as Noroozi and Favaro did).

Photo tasks keep validation honest: every validation patch lies inside the vertical strip of columns
[0.5 W, 0.75 W) of each photo and no training patch touches it, so the two never share a pixel.
"""
from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from simulator.core.errors import ShapeError, ValueInputError
from simulator.core.params import Settings, check_int, param
from simulator.data.colour import lab_to_rgb, rgb_to_lab
from simulator.labs.pretext_task import PretextTask, Preview, Quality, digits_split
from simulator.labs.selfsup import TASKS
from simulator.nn.network import Activation, Conv2d, Flatten, Linear, Network

__all__ = [
    "AB_SCALE", "DIGIT_ENCODER_LAYERS", "MASK_VALUE", "PHOTO_NAMES", "RECON_FACTORIES", "RECON_SETTINGS", "VAL_STRIP",
    "AutoencoderSettings", "ColourSettings", "FlipPairs", "HoleMasker", "InpaintSettings", "JigsawSettings",
    "LatentCodes",
    "colourise_photo", "digit_split", "hide_patches", "jigsaw_permutations", "latent_codes", "make_autoencoder",
    "make_colourisation", "make_inpainting", "make_jigsaw", "photo_gray", "photo_lab",
]

MASK_VALUE = -1.0             # what a hidden pixel reads in the inpainting input (digits lie in [0, 1])
AB_SCALE = 100.0              # colourisation targets are a/100, b/100 (a and b lie roughly in [-110, 100])
VAL_STRIP = (0.5, 0.75)       # validation columns of each photo, as fractions of its width
VAL_PATCHES = 600             # validation patches / puzzles of the photo tasks
PHOTO_NAMES = ("china.jpg", "flower.jpg")
SHOWCASE = 64                 # the most images a preview row draws


# ============================================================================================== settings

@dataclass(frozen=True)
class AutoencoderSettings(Settings):
    hidden: int = param(64, low=4, high=512, label="hidden units",
                        doc="units of the hidden layer on each side of the bottleneck (encoder and decoder)")
    bottleneck: int = param(16, low=1, high=64, label="bottleneck size",
                            doc="numbers the encoder squeezes each 64-pixel digit into; 2 draws the latent space "
                                "directly, more is drawn through PCA of the codes")
    output: str = param("sigmoid", choices=("sigmoid", "linear"),
                        choice_labels=("sigmoid (pixels in 0..1)", "linear"), label="decoder output",
                        doc="a sigmoid keeps every reconstructed pixel in [0, 1], the digits' range")


@dataclass(frozen=True)
class InpaintSettings(Settings):
    hole: int = param(3, low=1, high=6, label="hole size",
                      doc="side of the square patch hidden in each digit (a new place for every image in every "
                          "batch)")
    hidden: int = param(128, low=4, high=512, label="hidden units",
                        doc="units of the hidden layer on each side of the code")
    code: int = param(32, low=2, high=128, label="code size", doc="the encoder's output features")


@dataclass(frozen=True)
class ColourSettings(Settings):
    patch: int = param(16, low=8, high=32, label="patch size", doc="side of the square photo patches (pixels)")
    patches: int = param(3000, low=200, high=20000, label="training patches",
                         doc="patches cut at random places of the training part of the two photos")
    filters: int = param(16, low=2, high=64, label="filters", doc="channels of each 3x3 convolution")
    depth: int = param(3, low=1, high=5, label="conv layers",
                       doc="3x3 convolutions before the 1x1 layer that gives a and b (each widens the view by 2 px)")
    photo_size: int = param(160, low=64, high=320, label="photo size",
                            doc="the photos are cropped square and resized to this side before patches are cut")


@dataclass(frozen=True)
class JigsawSettings(Settings):
    grid: int = param(3, choices=(2, 3), choice_labels=("2 × 2 tiles", "3 × 3 tiles"), label="grid",
                      doc="tiles per side of each puzzle")
    permutations: int = param(8, low=2, high=100, label="permutations",
                              doc="the puzzle's classes: the K tile orders furthest apart (Hamming distance); "
                                  "chance is 1/K")
    tile: int = param(8, low=4, high=16, label="tile size", doc="side of each square tile (pixels)")
    gap: int = param(2, low=0, high=6, label="gap",
                     doc="pixels left out between neighbouring tiles, so lines cannot simply be continued")
    jitter: int = param(1, low=0, high=3, label="jitter",
                        doc="each tile moves by up to this many pixels in each direction, so tiles do not line up "
                            "exactly")
    puzzles: int = param(10000, low=500, high=50000, label="training puzzles",
                         doc="puzzles cut from the training part of the two photos")
    hidden: int = param(256, low=8, high=1024, label="hidden units",
                        doc="units of the first hidden layer (the second has half as many)")
    photo_size: int = param(160, low=64, high=320, label="photo size",
                            doc="longer side of the grayscale photos the puzzles are cut from")


def _task_args(cls: type, settings: Any, seed: Any, options: Any, overrides: dict[str, Any]) -> tuple[Any, int]:
    """(the task's options, the seed) from a factory's arguments. ``settings`` is None, the task's own Settings
    class (its options), or the lab's settings (simulator.labs.selfsup.SelfSupSettings: any Settings with a
    ``seed``, which is read from it); ``options`` gives the task's Settings beside the lab's; ``overrides`` replace
    single options; an explicit ``seed`` wins (default 0)."""
    lab_seed = None
    if isinstance(settings, cls):
        if options is not None:
            raise ValueInputError(f"give the {cls.__name__} once: as settings or as options")
        options = settings
    elif isinstance(settings, Settings) and hasattr(settings, "seed"):
        lab_seed = settings.seed
    elif settings is not None:
        raise ValueInputError(f"settings must be {cls.__name__} or the lab's settings, got "
                              f"{type(settings).__name__}")
    if options is None:
        options = cls()
    elif not isinstance(options, cls):
        raise ValueInputError(f"options must be {cls.__name__}, got {type(options).__name__}")
    if overrides:
        options = options.replace(**overrides)
    seed = seed if seed is not None else (lab_seed if lab_seed is not None else 0)
    return options, check_int("seed", seed, 0)


def _preview_count(n: Any, available: int) -> int:
    return min(check_int("preview images", n, 1, SHOWCASE), available)


def _mse(a: np.ndarray, b: np.ndarray) -> float:
    d = (np.asarray(a, np.float64) - np.asarray(b, np.float64)).ravel()
    return float(np.dot(d, d) / max(d.size, 1))


def _predict(network: Network, x: np.ndarray, out: int, what: str) -> np.ndarray:
    """The network's outputs (N, out) in eval mode, float64; ShapeError when it is not the task's network."""
    if not isinstance(network, Network):
        raise ValueInputError(f"{what} needs a Network, got {type(network).__name__}")
    if network.input_shape != x.shape[1:] or network.num_classes != out:
        raise ShapeError(f"{what} needs a network from {x.shape[1:]} to ({out},); this one maps "
                         f"{network.input_shape} to ({network.num_classes},)")
    return np.asarray(network.forward(x, "eval"), np.float64)


# ============================================================================================== digits

def digit_split(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The lab's shared digits split (pretext_task.digits_split: values / 16, in [0, 1]) as (X, y, X_val, y_val):
    the digits tasks train on its training part and are scored on its held-out part (the linear probe's test
    digits, which no pretext task trains on). Labels are read only to colour the latent-space picture."""
    split = digits_split(seed)
    return split.X_train, split.y_train, split.X_test, split.y_test


def _showcase(y: np.ndarray, n: int) -> np.ndarray:
    """Indices of n examples that cycle through the classes (one 0, one 1, ... then the next of each)."""
    per_class = [np.flatnonzero(y == c) for c in np.unique(y)]
    order = [int(idx[r]) for r in range(max(map(len, per_class))) for idx in per_class if r < len(idx)]
    return np.asarray(order[:n], np.int64)


def _digit_autoencoder(hidden: int, code: int, sigmoid: bool, seed: int) -> Network:
    """Flatten, Linear(hidden), ReLU, Linear(code) | Linear(hidden), ReLU, Linear(64)[, Sigmoid]: the encoder is
    the first four layers (its output, the code, is linear)."""
    layers = [Flatten(), Linear(hidden), Activation("relu"), Linear(code),
              Linear(hidden), Activation("relu"), Linear(64)]
    if sigmoid:
        layers.append(Activation("sigmoid"))
    return Network((1, 8, 8), layers, loss="mse", seed=seed)


DIGIT_ENCODER_LAYERS = 4


def hide_patches(images: Any, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Each image (N, 1, H, W) with one size x size square, at a uniformly drawn place that lies wholly inside it,
    set to MASK_VALUE: (masked copies float64, mask (N, H, W) bool, True on the hidden pixels)."""
    x = np.asarray(images)
    if x.ndim != 4 or x.shape[1] != 1 or x.dtype.kind not in "biuf":
        raise ShapeError(f"hide_patches needs grey images (N, 1, H, W), got shape {x.shape}")
    N, _, H, W = x.shape
    size = check_int("hole size", size, 1, min(H, W), error=ShapeError)
    r = rng.integers(0, H - size + 1, N)
    c = rng.integers(0, W - size + 1, N)
    rows = np.arange(H)[None, :, None]
    cols = np.arange(W)[None, None, :]
    mask = ((rows >= r[:, None, None]) & (rows < r[:, None, None] + size)
            & (cols >= c[:, None, None]) & (cols < c[:, None, None] + size))
    out = x.astype(np.float64)
    out[:, 0][mask] = MASK_VALUE
    return out, mask


class HoleMasker:
    """The inpainting task's Trainer augmentation (``takes_labels``): every batch gets fresh holes, one per image,
    cut into the batch's targets (the full images, flattened (B, H*W)), so the input is always made from the very
    image the network must give back. Returns (masked images (B, 1, H, W), the targets unchanged)."""

    takes_labels = True

    def __init__(self, hole: int, shape: tuple[int, int, int] = (1, 8, 8)):
        self.shape = tuple(shape)
        self.hole = check_int("hole size", hole, 1, min(self.shape[1:]), error=ShapeError)

    def __call__(self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        y = np.asarray(y)
        full = y.reshape((len(y), *self.shape))
        masked, _ = hide_patches(full, self.hole, rng)
        return masked, y


def _digit_row(flat: np.ndarray) -> np.ndarray:
    return np.clip(flat, 0.0, 1.0).reshape(-1, 8, 8)


_AE_LECTURE = (
    "An autoencoder's target is its own input: the network squeezes each 64-pixel digit through a bottleneck of a "
    "few numbers (the encoder) and must rebuild all 64 pixels from them (the decoder), trained with the mean squared "
    "error per pixel. No label is read. A bottleneck much narrower than the image forces the code to keep what "
    "varies most between digits (stroke placement, slant, thickness): with a linear code and decoder this is PCA, "
    "and the ReLU layers let it bend. The features are judged afterwards: keep the encoder, drop the decoder, and "
    "train a linear classifier on the codes. Reconstruction quality and good features are not the same thing: a "
    "code can rebuild the pixels well and still mix up classes a probe needs apart.")

_INPAINT_LECTURE = (
    "Inpainting (a masked autoencoder): a square hole is cut into every digit, anew for every image in every batch, "
    "and the network must give back the whole digit, hole included. The target is the unmasked digit itself, so the "
    "supervision is free; the hidden pixels read −1, a value no pixel has, so the network can see where the hole "
    "is. The loss is the plain mean squared error over all 64 pixels (the visible ones are easy to copy; the hole "
    "is the hard part, and it is what the score below measures, against filling the hole with the mean digit's "
    "pixels). MAE puts its whole loss on the hidden patches instead. To fill a hole, the encoder must know how "
    "strokes continue and which digit it is looking at: context, not copying. (Pathak et al.'s context encoders add "
    "an adversarial loss for sharper fills.)")

_COLOUR_LECTURE = (
    "Colourisation: photo patches are converted to CIE Lab, where L is lightness and a, b are the colour "
    "(green–red, blue–yellow). The input is L alone (a grey image); the target is a and b at every pixel, taken "
    "from the photo itself. A fully convolutional network predicts both, trained with mean squared error. To know "
    "that a textured mid-grey region is foliage (green) and a smooth bright one is sky (blue), the encoder must "
    "recognise what it sees. Predicting the average colour everywhere is the trivial baseline: mostly a dull "
    "brownish grey. The mean squared error rewards that hedging, so a low colour error can still look dull; Zhang "
    "et al. predict a distribution over quantised colours for livelier results. Validation patches come from a "
    "strip of each photo that no training patch touches.")

_JIGSAW_LECTURE = (
    "Jigsaw puzzle: a window of a photo is cut into a grid of tiles, the tiles are shuffled by one of K fixed "
    "permutations, and the network must say which one. The permutations are the K orders furthest apart (Hamming "
    "distance), so they are not confused by one swapped pair. The label is the shuffle the task itself applied, so "
    "it costs nothing. To solve it the encoder must know what belongs above what: sky over roofs, petals around a "
    "centre. Networks love shortcuts: lines that run straight across a tile border, or the colour fringes of a "
    "lens's chromatic aberration that reveal where in the frame a patch was. The tiles here are grey, separated by "
    "a gap and jittered by a pixel or so at random (as Doersch et al. and Noroozi and Favaro did), so continuing "
    "edges alone does not solve it. Relative patch position (centre tile plus one neighbour: where is the "
    "neighbour?) is the same idea with one tile pair.")


# ============================================================================================== autoencoder

def make_autoencoder(settings: Any = None, seed: int | None = None, *, options: AutoencoderSettings | None = None,
                     **overrides: Any) -> PretextTask:
    """The autoencoder on the digits (see AutoencoderSettings; keyword overrides replace its fields)."""
    s, seed = _task_args(AutoencoderSettings, settings, seed, options, overrides)
    X, _, Xv, yv = digit_split(seed)
    net = _digit_autoencoder(s.hidden, s.bottleneck, s.output == "sigmoid", seed)
    T, Tv = X.reshape(len(X), 64), Xv.reshape(len(Xv), 64)
    mean_image = T.mean(axis=0)
    baseline = _mse(np.broadcast_to(mean_image, Tv.shape), Tv)
    show = _showcase(yv, SHOWCASE)

    def preview(network: Network, n: int = 8) -> Preview:
        idx = show[:_preview_count(n, len(show))]
        rec = _predict(network, Xv[idx], 64, "the autoencoder preview")
        return Preview(rows=(("original", Xv[idx, 0]), ("reconstruction", _digit_row(rec))))

    def quality(network: Network) -> Quality:
        v = _mse(_predict(network, Xv, 64, "the autoencoder score"), Tv)
        ratio = baseline / v if v > 0 else float("inf")
        text = (f"Reconstruction error {v:.4f} per pixel on {len(Xv)} held-out digits, through {s.bottleneck} "
                f"number{'s' if s.bottleneck != 1 else ''} per 64-pixel digit; predicting the mean training digit "
                f"gives {baseline:.4f} ({ratio:.1f}× the error).")
        return Quality("reconstruction MSE", v, baseline, False, text)

    return PretextTask(key="autoencoder", title=TASKS["autoencoder"].title, lecture=_AE_LECTURE, network=net,
                       encoder_layers=DIGIT_ENCODER_LAYERS, data=(X, T, Xv, Tv), input_kind="digits",
                       preview_fn=preview, quality_fn=quality, augment=None, optimizer="Adam", lr=3e-3, epochs=80,
                       batch_size=32)


class LatentCodes(NamedTuple):
    """Digits placed by their codes: ``codes`` (N, 2) (the code itself for a 2-number bottleneck, else its first two
    principal components; a 1-number code has a zero second column), ``labels`` (N,) to colour them, and
    ``axes`` the two axis titles."""

    codes: np.ndarray
    labels: np.ndarray
    axes: tuple[str, str]


def latent_codes(network: Network, encoder_layers: int = DIGIT_ENCODER_LAYERS, seed: int = 0,
                 X: Any = None, y: Any = None) -> LatentCodes:
    """The encoder's codes of digits for the latent-space picture: the held-out digits of ``digit_split(seed)``
    unless X (N, 1, 8, 8) in [0, 1] and labels y are given. The code is the output of layer ``encoder_layers`` (the
    autoencoder's bottleneck); wider than 2 it is projected on its two principal components (PCA fitted on these
    codes, each component's sign chosen so that its largest loading is positive)."""
    if not isinstance(network, Network):
        raise ValueInputError(f"latent_codes needs a Network, got {type(network).__name__}")
    k = check_int("encoder layers", encoder_layers, 1, len(network.layers))
    if X is None:
        _, _, X, y = digit_split(seed)
    X, y = np.asarray(X), np.asarray(y)
    if X.ndim != 4 or X.shape[1:] != network.input_shape or y.shape != (len(X),):
        raise ShapeError(f"latent_codes needs images (N, {', '.join(map(str, network.input_shape))}) and one label "
                         f"each, got {X.shape} and {y.shape}")
    codes = np.asarray(network.layer_outputs(X)[k - 1], np.float64).reshape(len(X), -1)
    d = codes.shape[1]
    if d == 1:
        return LatentCodes(np.hstack([codes, np.zeros_like(codes)]), y, ("code", ""))
    if d == 2:
        return LatentCodes(codes, y, ("code 1", "code 2"))
    centred = codes - codes.mean(axis=0)
    _, sv, vt = np.linalg.svd(centred, full_matrices=False)
    comps = vt[:2] * np.where(vt[:2][np.arange(2), np.abs(vt[:2]).argmax(axis=1)] < 0, -1.0, 1.0)[:, None]
    var = sv ** 2
    share = var[:2] / var.sum() if var.sum() > 0 else np.zeros(2)
    return LatentCodes(centred @ comps.T, y,
                       (f"PC 1 of the {d}-number code ({share[0]:.0%} of variance)",
                        f"PC 2 ({share[1]:.0%} of variance)"))


# ============================================================================================== inpainting

def make_inpainting(settings: Any = None, seed: int | None = None, *, options: InpaintSettings | None = None,
                    **overrides: Any) -> PretextTask:
    """Inpainting on the digits (see InpaintSettings; keyword overrides replace its fields). The training inputs
    in ``data`` carry one fixed hole each (what the epoch-end training loss is measured on); every batch trains on
    fresh holes (``augment``, a HoleMasker). The validation inputs carry fixed holes drawn from the seed."""
    s, seed = _task_args(InpaintSettings, settings, seed, options, overrides)
    X, _, Xv, yv = digit_split(seed)
    T, Tv = X.reshape(len(X), 64), Xv.reshape(len(Xv), 64)
    Xm, _ = hide_patches(X, s.hole, np.random.default_rng([seed, 11]))
    Xvm, vmask = hide_patches(Xv, s.hole, np.random.default_rng([seed, 12]))
    net = _digit_autoencoder(s.hidden, s.code, True, seed)
    mean_image = T.mean(axis=0).reshape(8, 8)
    baseline = _mse(np.broadcast_to(mean_image, vmask.shape)[vmask], Xv[:, 0][vmask])
    show = _showcase(yv, SHOWCASE)

    def preview(network: Network, n: int = 8) -> Preview:
        idx = show[:_preview_count(n, len(show))]
        rec = _digit_row(_predict(network, Xvm[idx], 64, "the inpainting preview"))
        hole = vmask[idx]
        shown = np.where(hole, 0.5, Xv[idx, 0])
        filled = np.where(hole, rec, Xv[idx, 0])
        return Preview(rows=(("original", Xv[idx, 0]), ("input (hole shown grey)", shown),
                             ("reconstruction", rec), ("hole filled in", filled)))

    def quality(network: Network) -> Quality:
        rec = _predict(network, Xvm, 64, "the inpainting score").reshape(-1, 8, 8)
        v = _mse(rec[vmask], Xv[:, 0][vmask])
        text = (f"Error on the hidden pixels {v:.4f} per pixel ({len(Xv)} held-out digits, a {s.hole}×{s.hole} hole "
                f"each); filling the hole with the mean training digit's pixels gives {baseline:.4f}.")
        return Quality("hidden-pixel MSE", v, baseline, False, text)

    return PretextTask(key="inpainting", title=TASKS["inpainting"].title, lecture=_INPAINT_LECTURE,
                       network=net, encoder_layers=DIGIT_ENCODER_LAYERS, data=(Xm, T, Xvm, Tv), input_kind="digits",
                       preview_fn=preview, quality_fn=quality, augment=HoleMasker(s.hole), optimizer="Adam",
                       lr=3e-3, epochs=100, batch_size=32)


# ============================================================================================== photographs

_PHOTO_CACHE: dict[tuple[str, str, int], np.ndarray] = {}
_PHOTO_LOCK = threading.Lock()


def photo_lab(name: str, size: int) -> np.ndarray:
    """A bundled photo (PHOTO_NAMES) cropped square and resized to size x size (conv_mechanics.load_photo_rgb), in
    CIE Lab: (size, size, 3) float64, read-only, cached per process."""
    key = ("lab", name, size)
    with _PHOTO_LOCK:
        if key not in _PHOTO_CACHE:
            from simulator.labs.conv_mechanics import load_photo_rgb
            lab = rgb_to_lab(np.moveaxis(load_photo_rgb(name, size), 0, -1))
            lab.flags.writeable = False
            _PHOTO_CACHE[key] = lab
        return _PHOTO_CACHE[key]


def photo_gray(name: str, size: int) -> np.ndarray:
    """A bundled photo in grey (conv_mechanics.load_photo: ITU-R 601 luma, longer side ``size``), cached."""
    key = ("gray", name, size)
    with _PHOTO_LOCK:
        if key not in _PHOTO_CACHE:
            from simulator.labs.conv_mechanics import load_photo
            g = load_photo(name, size)
            g.flags.writeable = False
            _PHOTO_CACHE[key] = g
        return _PHOTO_CACHE[key]


def _column_starts(width: int, window: int, val: bool) -> np.ndarray:
    """Left columns at which a window of ``window`` px lies wholly inside the validation strip (val) or wholly
    outside it (training)."""
    a, b = int(VAL_STRIP[0] * width), int(VAL_STRIP[1] * width)
    starts = np.arange(0, width - window + 1)
    inside = (starts >= a) & (starts + window <= b)
    outside = (starts + window <= a) | (starts >= b)
    return starts[inside if val else outside]


def _check_window(window: int, height: int, width: int, what: str) -> None:
    a, b = int(VAL_STRIP[0] * width), int(VAL_STRIP[1] * width)
    if window > b - a or window > height:
        raise ValueInputError(f"{what} of {window} px does not fit the photos' validation strip ({b - a} px wide at "
                              f"this photo size): use smaller {what}s or a larger photo size")


def _place(images: list[np.ndarray], n: int, window: int, val: bool, rng: np.random.Generator
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n windows: (photo index, top row, left column) each, uniformly over both photos' allowed places."""
    which = rng.integers(0, len(images), n)
    rows = np.empty(n, np.int64)
    cols = np.empty(n, np.int64)
    for i, img in enumerate(images):
        sel = which == i
        H, W = img.shape[:2]
        starts = _column_starts(W, window, val)
        rows[sel] = rng.integers(0, H - window + 1, sel.sum())
        cols[sel] = starts[rng.integers(0, len(starts), sel.sum())]
    return which, rows, cols


def _crop(images: list[np.ndarray], which: np.ndarray, rows: np.ndarray, cols: np.ndarray, size: int
          ) -> np.ndarray:
    """(n, size, size[, C]) crops at the given photos and top-left corners."""
    r = rows[:, None, None] + np.arange(size)[None, :, None]
    c = cols[:, None, None] + np.arange(size)[None, None, :]
    out = np.empty((len(which), size, size) + images[0].shape[2:])
    for i, img in enumerate(images):
        sel = which == i
        out[sel] = img[r[sel], c[sel]]
    return out


def _interleave(which: np.ndarray, n: int) -> np.ndarray:
    """Indices of up to n items taking turns between the photos (``which``: each item's photo index)."""
    per_photo = [np.flatnonzero(which == i) for i in np.unique(which)]
    order = [int(idx[r]) for r in range(max(map(len, per_photo))) for idx in per_photo if r < len(idx)]
    return np.asarray(order[:n], np.int64)


# ---------------------------------------------------------------------------------------------- colourisation

def _l_input(lab: np.ndarray) -> np.ndarray:
    """(n, p, p, 3) Lab -> the network's input (n, 1, p, p): L / 50 - 1, in [-1, 1]."""
    return (lab[..., 0] / 50.0 - 1.0)[:, None]


def _ab_target(lab: np.ndarray) -> np.ndarray:
    """(n, p, p, 3) Lab -> the target (n, 2 p p): a / AB_SCALE then b / AB_SCALE, each (p, p) in row-major order
    (the order Flatten gives the network's (2, p, p) output)."""
    return (np.moveaxis(lab[..., 1:], -1, 1) / AB_SCALE).reshape(len(lab), -1)


def _to_rgb(L: np.ndarray, ab_flat: np.ndarray, p: int) -> np.ndarray:
    """L (n, p, p) in Lab units and scaled ab (n, 2 p p) -> sRGB (n, p, p, 3), clipped to [0, 1]."""
    ab = np.moveaxis(ab_flat.reshape(len(L), 2, p, p), 1, -1) * AB_SCALE
    return lab_to_rgb(np.concatenate([L[..., None], ab], axis=-1))


class FlipPairs:
    """The colourisation task's Trainer augmentation (``takes_labels``): each patch mirrored left-right with
    probability 1/2, its target colours mirrored with it (a mirrored photo has the same colours in mirrored
    places)."""

    takes_labels = True

    def __init__(self, patch: int, channels: int = 2):
        self.patch = check_int("patch size", patch, 1, error=ShapeError)
        self.channels = check_int("target channels", channels, 1)

    def __call__(self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        x = np.array(x, np.float64)
        t = np.array(y, np.float64).reshape(len(y), self.channels, self.patch, self.patch)
        flip = rng.random(len(x)) < 0.5
        x[flip] = x[flip][..., ::-1]
        t[flip] = t[flip][..., ::-1]
        return x, t.reshape(len(y), -1)


def make_colourisation(settings: Any = None, seed: int | None = None, *, options: ColourSettings | None = None,
                       **overrides: Any) -> PretextTask:
    """Colourisation of photo patches (see ColourSettings; keyword overrides replace its fields): input L (1, p, p),
    target a, b (2 p p,), a fully convolutional network: depth x [Conv2d(filters, 3, pad 1), ReLU], then
    Conv2d(2, 1) and Flatten. The encoder is the 3x3 convolutions with their ReLUs."""
    s, seed = _task_args(ColourSettings, settings, seed, options, overrides)
    p = s.patch
    photos = [photo_lab(n, s.photo_size) for n in PHOTO_NAMES]
    _check_window(p, *photos[0].shape[:2], "patch")
    rng = np.random.default_rng([seed, 21])
    lab = _crop(photos, *_place(photos, s.patches, p, False, rng), p)
    place_v = _place(photos, VAL_PATCHES, p, True, np.random.default_rng([seed, 22]))
    lab_v, which_v = _crop(photos, *place_v, p), place_v[0]
    X, T = _l_input(lab), _ab_target(lab)
    Xv, Tv = _l_input(lab_v), _ab_target(lab_v)
    layers: list[Any] = []
    for _ in range(s.depth):
        layers += [Conv2d(s.filters, 3, pad=1), Activation("relu")]
    net = Network((1, p, p), layers + [Conv2d(2, 1), Flatten()], loss="mse", seed=seed)
    mean_ab = T.reshape(len(T), 2, -1).mean(axis=(0, 2))
    mean_flat = np.repeat(mean_ab, p * p)
    baseline = _mse(np.broadcast_to(mean_flat, Tv.shape), Tv)
    # the preview alternates between the two photos (each photo's patches in their random order)
    show = _interleave(which_v, SHOWCASE)
    Lv = lab_v[..., 0]

    def preview(network: Network, n: int = 8) -> Preview:
        idx = show[:_preview_count(n, len(show))]
        pred = _predict(network, Xv[idx], 2 * p * p, "the colourisation preview")
        grey = _to_rgb(Lv[idx], np.zeros_like(pred), p)
        mean = _to_rgb(Lv[idx], np.broadcast_to(mean_flat, pred.shape), p)
        return Preview(rows=(("grey input (L only)", grey), ("predicted colour", _to_rgb(Lv[idx], pred, p)),
                             ("true colour", _to_rgb(Lv[idx], Tv[idx], p)),
                             ("mean colour (baseline)", mean)))

    def quality(network: Network) -> Quality:
        v = _mse(_predict(network, Xv, 2 * p * p, "the colourisation score"), Tv)
        text = (f"Colour error (a, b / {AB_SCALE:g}) {v:.4f} on {len(Xv)} patches from the held-out strip, "
                f"about {AB_SCALE * np.sqrt(v):.1f} Lab units per channel; painting every pixel the mean colour "
                f"gives {baseline:.4f} (about {AB_SCALE * np.sqrt(baseline):.1f}). A low error can still look dull: "
                f"the squared error rewards cautious, greyish guesses.")
        return Quality("colour (ab) MSE", v, baseline, False, text)

    return PretextTask(key="colourisation", title=TASKS["colourisation"].title, lecture=_COLOUR_LECTURE,
                       network=net, encoder_layers=2 * s.depth, data=(X, T, Xv, Tv), input_kind="photo",
                       preview_fn=preview, quality_fn=quality, augment=FlipPairs(p), optimizer="Adam", lr=3e-3,
                       epochs=6, batch_size=32)


def colourise_photo(network: Network, name: str = "china.jpg", size: int = 160
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A whole photo coloured tile by tile by a colourisation network (its input (1, p, p)): the photo (photo_lab,
    cropped to a multiple of p) cut into p x p tiles, each tile's a, b predicted from its L. Returns sRGB (H, W, 3)
    images (grey input, predicted colour, true colour). Tile borders may show: each tile is coloured on its own."""
    if not isinstance(network, Network) or len(network.input_shape) != 3 or network.input_shape[0] != 1:
        raise ShapeError("colourise_photo needs a colourisation network (input (1, p, p))")
    p = network.input_shape[1]
    if name not in PHOTO_NAMES:
        raise ValueInputError(f"unknown photo {name!r}; choose one of {', '.join(PHOTO_NAMES)}")
    lab = photo_lab(name, check_int("photo size", size, p, 1024))
    n = lab.shape[0] // p
    lab = lab[:n * p, :n * p]
    tiles = lab.reshape(n, p, n, p, 3).transpose(0, 2, 1, 3, 4).reshape(n * n, p, p, 3)
    pred = _predict(network, _l_input(tiles), 2 * p * p, "colourise_photo")

    def whole(rgb: np.ndarray) -> np.ndarray:
        return rgb.reshape(n, n, p, p, 3).transpose(0, 2, 1, 3, 4).reshape(n * p, n * p, 3)

    L = tiles[..., 0]
    return (whole(_to_rgb(L, np.zeros_like(pred), p)), whole(_to_rgb(L, pred, p)),
            whole(_to_rgb(L, _ab_target(tiles), p)))


# ---------------------------------------------------------------------------------------------- jigsaw

_PERM_CACHE: dict[Any, np.ndarray] = {}


def jigsaw_permutations(grid: int, k: int) -> np.ndarray:
    """(k, grid²) int64: k orders of the grid's tiles chosen greedily for a large minimum Hamming distance: start
    from the identity, then repeatedly add the permutation whose smallest distance to those chosen is largest (the
    first in lexicographic order on ties). For 2 x 2 and k = 4 every pair differs in all four places."""
    grid = check_int("grid", grid, 2, 3)
    m = grid * grid
    k = check_int("permutations", k, 2, 100 if grid == 3 else 24)
    key = (grid, k)
    if key not in _PERM_CACHE:
        if m not in _PERM_CACHE:
            _PERM_CACHE[m] = np.array(list(itertools.permutations(range(m))), np.int8)   # all m! orders
        allp = _PERM_CACHE[m]
        chosen = [0]
        mind = (allp != allp[0]).sum(axis=1)
        for _ in range(k - 1):
            nxt = int(np.argmax(mind))
            chosen.append(nxt)
            mind = np.minimum(mind, (allp != allp[nxt]).sum(axis=1))
        perms = allp[chosen].astype(np.int64)
        perms.flags.writeable = False
        _PERM_CACHE[key] = perms
    return _PERM_CACHE[key]


def _assemble(tiles: np.ndarray, grid: int, gap: int, fill: float = 1.0) -> np.ndarray:
    """(n, grid², t, t) tiles, row-major positions -> (n, S, S) pictures with ``gap`` px of ``fill`` between tiles."""
    n, _, t, _ = tiles.shape
    side = grid * t + (grid - 1) * gap
    out = np.full((n, side, side), fill)
    for k in range(grid * grid):
        r, c = divmod(k, grid)
        out[:, r * (t + gap):r * (t + gap) + t, c * (t + gap):c * (t + gap) + t] = tiles[:, k]
    return out


def _puzzles(photos: list[np.ndarray], n: int, s: JigsawSettings, perms: np.ndarray, val: bool,
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n puzzles: (tiles in their original positions (n, grid², t, t) in [0, 1], permutation indices (n,), photo
    indices (n,))."""
    g, t, gap, j = s.grid, s.tile, s.gap, s.jitter
    window = g * t + (g - 1) * gap + 2 * j
    which, rows, cols = _place(photos, n, window, val, rng)
    tiles = np.empty((n, g * g, t, t))
    for k in range(g * g):
        r, c = divmod(k, g)
        dr, dc = rng.integers(-j, j + 1, (2, n))
        tiles[:, k] = _crop(photos, which, rows + j + r * (t + gap) + dr, cols + j + c * (t + gap) + dc, t)
    return tiles, rng.integers(0, len(perms), n), which


def _shuffle(tiles: np.ndarray, labels: np.ndarray, perms: np.ndarray) -> np.ndarray:
    """The network's input: slot k shows the tile from position perms[label][k] (n, grid², t, t)."""
    return np.take_along_axis(tiles, perms[labels][:, :, None, None], axis=1)


def make_jigsaw(settings: Any = None, seed: int | None = None, *, options: JigsawSettings | None = None,
                **overrides: Any) -> PretextTask:
    """The jigsaw puzzle on grey photo windows (see JigsawSettings; keyword overrides replace its fields): input the
    shuffled tiles as channels (grid², t, t), values minus 0.5; label the index of the permutation. Network: Flatten,
    Linear(hidden), ReLU, Linear(hidden/2), ReLU (the encoder), Linear(K)."""
    s, seed = _task_args(JigsawSettings, settings, seed, options, overrides)
    perms = jigsaw_permutations(s.grid, s.permutations)
    K, m = len(perms), s.grid * s.grid
    photos = [photo_gray(n, s.photo_size) for n in PHOTO_NAMES]
    window = s.grid * s.tile + (s.grid - 1) * s.gap + 2 * s.jitter
    _check_window(window, *photos[0].shape[:2], "puzzle window")
    tiles, y, _ = _puzzles(photos, s.puzzles, s, perms, False, np.random.default_rng([seed, 31]))
    tiles_v, yv, which_v = _puzzles(photos, VAL_PATCHES, s, perms, True, np.random.default_rng([seed, 32]))
    X = _shuffle(tiles, y, perms) - 0.5
    Xv = _shuffle(tiles_v, yv, perms) - 0.5
    net = Network((m, s.tile, s.tile), [Flatten(), Linear(s.hidden), Activation("relu"),
                                        Linear(max(2, s.hidden // 2)), Activation("relu"), Linear(K)], seed=seed)
    chance = 1.0 / K
    # the preview shows puzzles whose tiles all carry some texture (a tile of clear sky could go anywhere), taking
    # turns between the photos
    textured = np.flatnonzero(tiles_v.std(axis=(2, 3)).min(axis=1) >= 0.02)
    show = textured[_interleave(which_v[textured], SHOWCASE)] if len(textured) else np.arange(SHOWCASE)

    def predictions(network: Network, x: np.ndarray, what: str) -> np.ndarray:
        return _predict(network, x, K, what).argmax(axis=1)

    def preview(network: Network, n: int = 8) -> Preview:
        idx = show[:_preview_count(n, len(show))]
        pred = predictions(network, Xv[idx], "the jigsaw preview")
        shown = Xv[idx] + 0.5
        # slot k holds the tile the prediction says came from position perms[pred][k]: put it back there
        placed = np.empty_like(shown)
        np.put_along_axis(placed, perms[pred][:, :, None, None], shown, axis=1)
        scores = predictions(network, Xv, "the jigsaw preview")
        conf = np.zeros((K, K))
        np.add.at(conf, (yv, scores), 1.0)
        conf /= np.maximum(conf.sum(axis=1, keepdims=True), 1.0)
        return Preview(rows=(("shuffled tiles (what the network sees)", _assemble(shown, s.grid, s.gap)),
                             ("put back by the prediction", _assemble(placed, s.grid, s.gap)),
                             ("original arrangement", _assemble(tiles_v[idx], s.grid, s.gap))),
                       matrix=conf, matrix_title="true permutation (rows) against predicted (columns), share of "
                                                 "each row")

    def quality(network: Network) -> Quality:
        acc = float(np.mean(predictions(network, Xv, "the jigsaw score") == yv))
        text = (f"{acc:.1%} of {len(Xv)} puzzles from the held-out strip solved (which of {K} shuffles was "
                f"applied); guessing is right {chance:.1%} of the time.")
        return Quality("permutation accuracy", acc, chance, True, text)

    return PretextTask(key="jigsaw", title=TASKS["jigsaw"].title, lecture=_JIGSAW_LECTURE, network=net,
                       encoder_layers=5, data=(X, y, Xv, yv), input_kind="photo", preview_fn=preview,
                       quality_fn=quality, augment=None, optimizer="Adam", lr=1e-3, epochs=8, batch_size=64)


RECON_SETTINGS: dict[str, type[Settings]] = {"autoencoder": AutoencoderSettings, "inpainting": InpaintSettings,
                                             "colourisation": ColourSettings, "jigsaw": JigsawSettings}
RECON_FACTORIES = {"autoencoder": make_autoencoder, "inpainting": make_inpainting,
                   "colourisation": make_colourisation, "jigsaw": make_jigsaw}
