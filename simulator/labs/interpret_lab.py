"""The interpretability lab's model (no Qt): a trained image classifier, its validation images as the learner knows
them and as the network sees them, the views' settings, and the results the views draw.

Two spaces of images. A network trained on standardised inputs (the playground's default: x' = (x - mean) / std)
sees images the learner would not recognise: a digit becomes grey noise. ``ImageSet`` keeps the model's inputs and,
when there is one, the ``Standardizer`` that made them, so every view shows ``raw`` images (what the learner knows:
ink on paper) while the network always gets ``inputs``. Whatever is computed in input space and shown as an image
(the perturbed image of an attack, the occluded image, the class visualisation) is turned back with
``ImageSet.to_raw``; the pixel range, the occlusion patch value and the attack's epsilon are set in raw units (a
fraction of the raw pixel range) and converted with ``to_input`` / ``scale_to_input``.

Long work is a job (simulator/core/jobs.py): ``training``, ``class_visualisation``, ``robustness`` and ``embedding``
return generators; the view runs them on a worker and commits what they return (``set_network``,
``set_embedding``, ``add_class_visualisation``) on the UI thread, where ``changed`` is emitted.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generator

import numpy as np

from simulator.core.errors import ShapeError, ValueInputError
from simulator.core.jobs import Progress
from simulator.core.observer import Signal
from simulator.core.params import Settings, check_choice, check_int, param
from simulator.data.datasets import Standardizer
from simulator.labs import interpret as I
from simulator.nn.network import Network

__all__ = ["AttackSettings", "PatchSettings", "ShapleySettings", "ShapleyView", "TopPatchesView", "ClassVisSettings", "ClassVisFrame", "EmbeddingSettings", "ImageSet",
           "InterpretLabModel", "OcclusionSettings", "QuickModelSettings", "RobustnessCurve", "SaliencySettings",
           "SALIENCY_TARGETS"]

SALIENCY_TARGETS = ("predicted class", "true class") + tuple(f"class {i}" for i in range(10))
ATTACKS = ("FGSM (one step)", "Iterative FGSM (10 steps)", "Targeted (10 steps toward a class)")
PROJECTIONS = ("PCA", "t-SNE")
ROBUSTNESS_IMAGES = 200


# ================================================================================================== settings

@dataclass(frozen=True)
class QuickModelSettings(Settings):
    epochs: int = param(10, low=1, high=100, label="epochs",
                        doc="passes over the 1,437 training digits (a small CNN, about a second)")


@dataclass(frozen=True)
class SaliencySettings(Settings):
    target: str = param("predicted class", choices=SALIENCY_TARGETS, label="score of",
                        doc="the class whose score is differentiated with respect to the pixels")


@dataclass(frozen=True)
class OcclusionSettings(Settings):
    patch: int = param(2, low=1, high=64, label="patch size", doc="side of the square patch, in pixels")
    stride: int = param(1, low=1, high=64, label="stride", doc="pixels between two patch positions")
    fill: float = param(0.5, low=0.0, high=1.0, label="patch value", decimals=2,
                        doc="the patch's value as a fraction of the pixel range (0.5: grey, halfway)")
    measure: str = param("probability", choices=("probability", "raw score"), label="measure the drop of",
                         doc="softmax probability of the true class, or its raw score")


@dataclass(frozen=True)
class ClassVisSettings(Settings):
    cls: int = param(0, choices=tuple(range(10)), label="class", doc="the class whose score is climbed")
    steps: int = param(200, low=1, high=5000, label="steps", doc="gradient-ascent steps")
    l2_reg: float = param(0.2, low=0.0, high=10.0, log=True, zero_off=True, label="L2 strength λ",
                          doc="the objective is s_c(x) − λ‖x‖²: larger λ keeps the image faint and smooth")
    lr: float = param(0.02, low=0.0, low_open=True, high=10.0, log=True, label="step size η",
                      doc="x ← x + η (∂s_c/∂x − 2λx)")
    blur_every: int = param(4, low=0, high=100, label="blur every",
                            doc="blur the image every this many steps (0: never); a regulariser against noise")


@dataclass(frozen=True)
class AttackSettings(Settings):
    attack: str = param(ATTACKS[0], choices=ATTACKS, label="attack",
                        doc="one signed-gradient step of size ε, or 10 steps of ε/4 kept within ε of the image")
    eps: float = param(0.10, low=0.0, high=0.5, label="ε", decimals=2,
                       doc="the largest change of any pixel, as a fraction of the pixel range")
    target: int = param(0, choices=tuple(range(10)), label="target class",
                        doc="the class the targeted attack pushes the image towards (the other attacks ignore it)")


@dataclass(frozen=True)
class ShapleySettings(Settings):
    patch: int = param(2, low=1, high=64, label="patch size", doc="side of the square patches the image is cut into")
    samples: int = param(200, low=1, high=5000, label="orderings",
                         doc="random orderings of the patches averaged (each costs one forward pass per patch)")
    fill: float = param(0.5, low=0.0, high=1.0, label="patch value", decimals=2,
                        doc="what a missing patch shows, as a fraction of the pixel range (0.5: grey)")


@dataclass(frozen=True)
class PatchSettings(Settings):
    layer: int = param(1, low=1, high=32, label="convolution",
                       doc="which convolution layer (1: the first), after its non-linearity when one follows")
    channel: int = param(0, low=0, high=1023, label="channel", doc="the feature map whose strongest units are shown")
    k: int = param(16, low=1, high=32, label="patches", doc="how many patches (one per image at most)")


@dataclass(frozen=True)
class EmbeddingSettings(Settings):
    method: str = param("PCA", choices=PROJECTIONS, label="projection",
                        doc="PCA: a linear projection, instant; t-SNE: keeps neighbours together, a few seconds")
    k: int = param(6, low=1, high=8, label="neighbours k", doc="how many nearest neighbours are shown")


# ================================================================================================== images

@dataclass(frozen=True)
class ImageSet:
    """Validation images of an image classifier: ``inputs`` (N, C, H, W) as the network sees them, ``labels`` (N,),
    the ``standardizer`` that made inputs from raw images (None: inputs are raw) and the raw ``pixel_range``."""

    inputs: np.ndarray
    labels: np.ndarray
    standardizer: Standardizer | None = None
    pixel_range: tuple[float, float] = (0.0, 1.0)

    @classmethod
    def from_data(cls, data: Any, standardizer: Standardizer | None = None,
                  pixel_range: tuple[float, float] | None = None) -> "ImageSet":
        """From a DigitsData, an ImageSet or (X_train, y_train, X_val, y_val) of model inputs (the validation pair
        may be None: then the training pair is used). ``standardizer``: what turned raw images into these inputs.
        The raw pixel range is the data's own (DigitsData: 0..1) or the raw images' min and max."""
        if isinstance(data, ImageSet):
            return data
        if isinstance(data, I.DigitsData):
            Xtr, ytr, Xv, yv = data.as_tuple()
            pixel_range = pixel_range or data.pixel_range
        else:
            try:
                Xtr, ytr, Xv, yv = data
            except (TypeError, ValueError):
                raise ValueInputError("data must be (X_train, y_train, X_val, y_val) or a DigitsData") from None
        if Xv is None or len(Xv) == 0:
            Xv, yv = Xtr, ytr
        Xv, yv = np.asarray(Xv), np.asarray(yv)
        if Xv.ndim != 4 or len(Xv) == 0 or yv.shape != (len(Xv),):
            raise ShapeError(f"the lab needs images (N, C, H, W) with one label each, got {Xv.shape} and {yv.shape}")
        if standardizer is not None and not isinstance(standardizer, Standardizer):
            raise ValueInputError(f"standardizer must be a Standardizer, got {type(standardizer).__name__}")
        if standardizer is not None and standardizer.mean.shape != Xv.shape[1:]:
            raise ShapeError(f"the standardiser is for images {standardizer.mean.shape}, the data are {Xv.shape[1:]}")
        if pixel_range is None:
            raws = [_invert(standardizer, np.asarray(a)) for a in (Xtr, Xv) if a is not None and len(a)]
            pixel_range = (float(min(r.min() for r in raws)), float(max(r.max() for r in raws)))
        lo, hi = (float(v) for v in pixel_range)
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise ValueInputError("the images are not all finite")
        if hi <= lo:
            hi = lo + 1.0
        return cls(Xv, yv, standardizer, (lo, hi))

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def raw(self) -> np.ndarray:
        """The images as the learner knows them (N, C, H, W)."""
        return _invert(self.standardizer, self.inputs)

    @property
    def span(self) -> float:
        return self.pixel_range[1] - self.pixel_range[0]

    def to_raw(self, x: np.ndarray) -> np.ndarray:
        """Model inputs (C, H, W) or (N, C, H, W) as raw images."""
        x = np.asarray(x, dtype=np.float64)
        return _invert(self.standardizer, x[None])[0] if x.ndim == 3 else _invert(self.standardizer, x)

    def to_input(self, raw: Any) -> np.ndarray:
        """Raw images (C, H, W) (or a raw value, broadcast to one image) as model inputs (C, H, W)."""
        shape = self.inputs.shape[1:]
        r = np.broadcast_to(np.asarray(raw, dtype=np.float64), shape)
        return r.copy() if self.standardizer is None else self.standardizer.apply(r[None])[0]

    def scale_to_input(self, amount: float) -> Any:
        """A raw-unit distance (epsilon) in input units: amount / std per channel ((C, 1, 1)); a number if raw."""
        if self.standardizer is None:
            return float(amount)
        std = self.standardizer.std if self.standardizer.std.ndim == self.standardizer.mean.ndim \
            else self.standardizer.std.reshape(-1, 1, 1)
        return np.broadcast_to(amount / std, self.inputs.shape[1:]).copy()

    @property
    def input_range(self) -> tuple[Any, Any]:
        """The pixel range in input units: numbers for raw inputs, (C, H, W) images after standardisation."""
        lo, hi = self.pixel_range
        if self.standardizer is None:
            return lo, hi
        return self.to_input(lo), self.to_input(hi)


def _invert(s: Standardizer | None, x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float64) if s is None else np.asarray(s.invert(x), dtype=np.float64)


# ================================================================================================== results

@dataclass(frozen=True)
class SaliencyView:
    image: np.ndarray          # raw (C, H, W)
    saliency: np.ndarray       # (H, W)
    probs: np.ndarray          # (classes,)
    cls: int                   # whose score was differentiated
    label: int
    predicted: int
    ties: tuple = ()           # I.PoolTies per max-pool layer: windows whose maximum is shared

    @property
    def tie_note(self) -> str:
        """Where max-pool windows tie, the saliency is one sub-gradient among several: say so, with the count."""
        tied = [t for t in self.ties if t.tied]
        if not tied:
            return ""
        parts = ", ".join(f"{t.tied} of {t.windows} windows in {t.layer}" for t in tied)
        return (f"Max-pool ties: {parts} hold their maximum more than once (a blank background is all equal). The "
                f"max has no single derivative there; backprop sends the gradient to the first maximum, one "
                f"sub-gradient among several, so this map is one of several equally valid ones.")


@dataclass(frozen=True)
class OcclusionView:
    result: I.OcclusionResult
    image: np.ndarray          # raw
    occluded: np.ndarray       # raw, the most damaging patch in place
    top: int
    left: int
    patch: int
    fill: float                # raw units
    occluded_probs: np.ndarray
    label: int


@dataclass(frozen=True)
class AttackView:
    image: np.ndarray          # raw
    perturbed: np.ndarray      # raw
    probs: np.ndarray
    perturbed_probs: np.ndarray
    label: int
    eps: float                 # raw units
    noise: RandomBaseline | None = None
    target: int | None = None  # the targeted attack's class

    @property
    def predictions(self) -> tuple[int, int]:
        return int(np.argmax(self.probs)), int(np.argmax(self.perturbed_probs))


@dataclass(frozen=True)
class RandomBaseline:
    """Random-sign noise of the attack's size (the black-box intuition): the image and its probabilities."""

    image: np.ndarray          # raw
    probs: np.ndarray


@dataclass(frozen=True)
class ShapleyView:
    """Shapley values of the current image's patches for its true class, beside occlusion with the same patches
    and the saliency map, all for the same image (raw) and class."""

    image: np.ndarray
    result: I.ShapleyResult
    occlusion: np.ndarray      # (H, W) drop of the class probability when the patch over the pixel is covered
    saliency: np.ndarray       # (H, W)
    label: int


@dataclass(frozen=True)
class TopPatchesView:
    patches: I.TopPatches
    layer_title: str
    channels: int


@dataclass(frozen=True)
class ClassVisFrame:
    """What the class-visualisation job yields: the class, step, raw image, the scores so far and the classes
    finished so far (class -> ClassVisResult)."""

    cls: int
    step: int
    image: np.ndarray
    scores: np.ndarray
    finished: dict


@dataclass(frozen=True)
class RobustnessCurve:
    eps: np.ndarray            # fractions of the pixel range
    accuracy: np.ndarray
    attack: str


# ================================================================================================== the model

class InterpretLabModel:
    """The network on show, its validation images, the current image and what the slower views computed.

    ``set_network(network, data, standardizer=None)`` shows a trained image classifier; ``training(settings)`` is a
    job that makes the quick digits CNN (commit its result with ``set_quick_model``). The quick views
    (``saliency``, ``occlusion``, ``attack``) compute at once; ``robustness``, ``class_visualisation`` and
    ``embedding`` are jobs. ``changed`` is emitted with what changed: "network", "index", "embedding",
    "classvis", "neighbours".
    """

    def __init__(self) -> None:
        self.changed = Signal()
        self.network: Network | None = None
        self.images: ImageSet | None = None
        self.predictions: np.ndarray | None = None
        self.accuracy = float("nan")
        self.index = 0
        self.embedding: np.ndarray | None = None
        self.embedding_method: str | None = None
        self.features: np.ndarray | None = None
        self.selected_point: int | None = None
        self.classvis_results: dict[int, I.ClassVisResult] = {}

    # ------------------------------------------------------------------------------------------------ the network
    def set_network(self, network: Network, data: Any, standardizer: Standardizer | None = None) -> None:
        """Show ``network`` on ``data`` (see ImageSet.from_data); ``standardizer`` says how raw images became the
        data (None: the data are raw). Refused (ShapeError, state unchanged) unless it is an image classifier whose
        input fits the images."""
        if not isinstance(network, Network):
            raise ValueInputError(f"set_network needs a Network, got {type(network).__name__}")
        if len(network.input_shape) != 3:
            raise ShapeError(f"This lab needs an image model (C, H, W); this network takes {network.input_shape}.")
        images = ImageSet.from_data(data, standardizer)
        if images.inputs.shape[1:] != tuple(network.input_shape):
            raise ShapeError(f"the network takes images {network.input_shape}, the data are "
                             f"{images.inputs.shape[1:]}")
        if images.labels.dtype.kind not in "iu" or images.labels.min() < 0 \
                or images.labels.max() >= network.num_classes:
            raise ValueInputError(f"labels must be classes 0..{network.num_classes - 1}")
        predictions = network.predict(images.inputs)
        self.network, self.images = network, images
        self.predictions = predictions
        self.accuracy = float(np.mean(predictions == images.labels))
        self.index = min(self.index, len(images) - 1)
        self.embedding = self.features = None
        self.embedding_method = None
        self.selected_point = None
        self.classvis_results = {}
        self.changed.emit("network")

    def training(self, settings: QuickModelSettings, seed: int = 0) -> Generator[Progress, None, I.QuickModel]:
        """A job: the quick digits CNN (data loaded and scikit-learn imported inside the job)."""
        return I.quick_digits_training(seed=seed, epochs=settings.epochs)

    def set_quick_model(self, quick: I.QuickModel) -> None:
        self.set_network(quick.network, quick.data)

    def _need(self) -> tuple[Network, ImageSet]:
        if self.network is None or self.images is None:
            raise ValueInputError("no model yet: train the quick digits model or an image model in the playground")
        return self.network, self.images

    # ------------------------------------------------------------------------------------------------ the image
    def set_index(self, i: Any) -> None:
        _, images = self._need()
        i = check_int("validation image", i, 0, len(images) - 1)
        if i != self.index:
            self.index = i
            self.changed.emit("index")

    def next_mistake(self) -> int | None:
        """The next misclassified validation image after the current one (wrapping), or None if there is none."""
        _, images = self._need()
        wrong = np.flatnonzero(self.predictions != images.labels)
        if not len(wrong):
            return None
        later = wrong[wrong > self.index]
        return int(later[0] if len(later) else wrong[0])

    @property
    def current_input(self) -> np.ndarray:
        """The current image as the network sees it (C, H, W)."""
        return self._need()[1].inputs[self.index]

    @property
    def current_raw(self) -> np.ndarray:
        """The current image as the learner knows it (C, H, W)."""
        return self._need()[1].to_raw(self.current_input)

    @property
    def current_label(self) -> int:
        return int(self._need()[1].labels[self.index])

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """Softmax probabilities of one model input (C, H, W)."""
        net, _ = self._need()
        return I.softmax(net.forward(np.asarray(x)[None], "eval"))[0]

    # ------------------------------------------------------------------------------------------------ quick views
    def saliency(self, settings: SaliencySettings) -> SaliencyView:
        net, images = self._need()
        x, y = self.current_input, self.current_label
        probs = self.probabilities(x)
        k = SALIENCY_TARGETS.index(settings.target)
        cls = int(np.argmax(probs)) if k == 0 else y if k == 1 else k - 2
        if cls >= net.num_classes:
            raise ValueInputError(f"this network has {net.num_classes} classes; class {cls} does not exist")
        sal = I.saliency_map(net, x[None], cls)[0]
        return SaliencyView(images.to_raw(x), sal, probs, cls, y, int(np.argmax(probs)), tuple(I.maxpool_ties(net, x)))

    def occlusion(self, settings: OcclusionSettings) -> OcclusionView:
        net, images = self._need()
        x, y = self.current_input, self.current_label
        H, W = x.shape[1:]
        patch = check_int("occlusion patch size", settings.patch, 1, min(H, W))
        fill_raw = images.pixel_range[0] + settings.fill * images.span
        fill_in = images.to_input(fill_raw)
        measure = "prob" if settings.measure == "probability" else "score"
        r = I.occlusion_map(net, x, y, patch, settings.stride, fill_in if images.standardizer else fill_raw, measure)
        i, j = np.unravel_index(int(np.argmax(r.drops)), r.drops.shape)
        top, left = int(r.rows[i]), int(r.cols[j])
        occ = np.array(x, dtype=np.float64)
        occ[:, top:top + patch, left:left + patch] = fill_in[:, top:top + patch, left:left + patch]
        occ = occ.astype(x.dtype)
        return OcclusionView(r, images.to_raw(x), images.to_raw(occ), top, left, patch, fill_raw,
                             self.probabilities(occ), y)

    def _attack(self, x: np.ndarray, y: np.ndarray, settings: AttackSettings, eps_fraction: float) -> np.ndarray:
        net, images = self._need()
        eps = images.scale_to_input(eps_fraction * images.span)
        rng = images.input_range
        if settings.attack == ATTACKS[0]:
            return I.fgsm(net, x, y, eps, rng)
        if settings.attack == ATTACKS[2]:
            if settings.target >= net.num_classes:
                raise ValueInputError(f"this network has {net.num_classes} classes; class {settings.target} does not "
                                      f"exist")
            return I.targeted_attack(net, x, settings.target, eps, eps / 4.0, 10, rng)
        return I.iterative_fgsm(net, x, y, eps, eps / 4.0, 10, rng)

    def attack(self, settings: AttackSettings) -> AttackView:
        _, images = self._need()
        x, y = self.current_input, self.current_label
        xa = self._attack(x[None], np.array([y]), settings, settings.eps)[0]
        eps = images.scale_to_input(settings.eps * images.span)
        noisy = I.random_sign_noise(x, eps, seed=self.index, pixel_range=images.input_range)
        return AttackView(images.to_raw(x), images.to_raw(xa), self.probabilities(x), self.probabilities(xa), y,
                          settings.eps * images.span, RandomBaseline(images.to_raw(noisy), self.probabilities(noisy)),
                          settings.target if settings.attack == ATTACKS[2] else None)

    # ------------------------------------------------------------------------------------------------ lecture 8
    def conv_layers(self) -> list[int]:
        """Indices of the layers a 'convolution k' means: each conv layer, or the activation right after it."""
        net, _ = self._need()
        out = []
        for k, layer in enumerate(net.layers):
            if layer.spec.ROLE == "weights" and len(layer.out_shape) == 3:
                nxt = k + 1 < len(net.layers) and net.layers[k + 1].spec.ROLE == "activation"
                out.append(k + 1 if nxt else k)
        return out

    def top_patches(self, settings: PatchSettings) -> TopPatchesView:
        """The validation patches that excite one channel of one convolution most (the lecture's 'maximally
        activating patches'), cropped from the images as the learner knows them."""
        net, images = self._need()
        convs = self.conv_layers()
        if not convs:
            raise ValueInputError("this network has no convolution layer: top patches need feature maps")
        if settings.layer > len(convs):
            raise ValueInputError(f"this network has {len(convs)} convolution layer{'s' if len(convs) > 1 else ''}; "
                                  f"there is no convolution {settings.layer}")
        k = convs[settings.layer - 1]
        channels = net.layers[k].out_shape[0]
        if settings.channel >= channels:
            raise ValueInputError(f"{net.layers[k].title} has {channels} channels (0..{channels - 1}); there is no "
                                  f"channel {settings.channel}")
        t = I.top_patches(net, images.inputs, k, settings.channel, min(settings.k, len(images)), raw=images.raw)
        return TopPatchesView(t, net.layers[k].title, channels)

    def shapley(self, settings: ShapleySettings) -> Generator[ShapleyView, None, ShapleyView]:
        """A job: Shapley values of the current image's patches for its true class (sampled orderings, the estimate
        drawn as it converges), with occlusion by the same patches and the saliency map beside it."""
        net, images = self._need()
        x, y = self.current_input, self.current_label
        fill_raw = images.pixel_range[0] + settings.fill * images.span
        fill = images.to_input(np.full(x.shape, fill_raw)) if images.standardizer is not None else fill_raw
        job = I.shapley_job(net, x, y, settings.patch, settings.samples, fill, "prob", seed=self.index)
        return self._shapley(job, settings, x, y, fill)

    def _shapley(self, job: Any, settings: ShapleySettings, x: np.ndarray, y: int, fill: Any
                 ) -> Generator[ShapleyView, None, ShapleyView]:
        net, images = self._need()
        occ = I.occlusion_map(net, x, y, settings.patch, settings.patch, fill, "prob").pixel_map
        sal = I.saliency_map(net, x[None], y)[0]
        raw = images.to_raw(x)
        view = None
        for r in job:
            view = ShapleyView(raw, r, np.nan_to_num(occ), sal, y)
            yield view
        return view

    # ------------------------------------------------------------------------------------------------ jobs
    def robustness(self, settings: AttackSettings, n: int = ROBUSTNESS_IMAGES
                   ) -> Generator[RobustnessCurve, None, RobustnessCurve]:
        """A job: validation accuracy on the first n images under the attack, for ε from 0 to half the pixel range
        (21 values for FGSM, 11 for the iterative attack); yields the curve so far."""
        self._need()
        n = check_int("images", n, 1)
        return self._robustness(settings, n)

    def _robustness(self, settings: AttackSettings, n: int) -> Generator[RobustnessCurve, None, RobustnessCurve]:
        net, images = self._need()
        X, y = images.inputs[:n], images.labels[:n]
        iterative = settings.attack == ATTACKS[1]
        epss = np.linspace(0, 0.5, 11 if iterative else 21)
        accs: list[float] = []
        for e in epss:
            xa = self._attack(X, y, settings, float(e))
            accs.append(float(np.mean(net.predict(xa) == y)))
            yield RobustnessCurve(epss[:len(accs)].copy(), np.array(accs), settings.attack)
        return RobustnessCurve(epss, np.array(accs), settings.attack)

    def class_visualisation(self, settings: ClassVisSettings, all_classes: bool = False
                            ) -> Generator[ClassVisFrame, None, dict]:
        """A job: gradient ascent for the chosen class (or every class in turn), clipped to the pixel range, from a
        faint random image; yields ClassVisFrames (raw images to show), returns {class: ClassVisResult} (images as
        model inputs: ``images.to_raw`` shows them).
        The arguments are checked before the first step."""
        net, images = self._need()
        if settings.cls >= net.num_classes:
            raise ValueInputError(f"this network has {net.num_classes} classes; class {settings.cls} does not exist")
        classes = list(range(net.num_classes)) if all_classes else [settings.cls]
        first = self._ascent(classes[0], settings)     # checks the arguments now
        return self._classvis(settings, classes, first)

    def _ascent(self, cls: int, settings: ClassVisSettings) -> Generator[I.ClassVisStep, None, I.ClassVisResult]:
        net, images = self._need()
        return I.class_visualisation_job(net, cls, settings.steps, settings.lr, settings.l2_reg, seed=0,
                                         blur_every=settings.blur_every or None, pixel_range=images.input_range)

    def _classvis(self, settings: ClassVisSettings, classes: list[int], first: Any
                  ) -> Generator[ClassVisFrame, None, dict]:
        _, images = self._need()
        out: dict[int, I.ClassVisResult] = {}
        for c in classes:
            job = first if c == classes[0] else self._ascent(c, settings)
            scores: list[float] = []
            try:
                while True:
                    step = next(job)
                    scores.append(step.score)
                    yield ClassVisFrame(c, step.step, images.to_raw(step.image), np.array(scores), dict(out))
            except StopIteration as stop:
                r = stop.value
            out[c] = r
            yield ClassVisFrame(c, settings.steps, images.to_raw(r.image), r.scores, dict(out))
        return out

    def add_class_visualisations(self, results: dict) -> None:
        self.classvis_results.update(results)
        self.changed.emit("classvis")

    def embedding_job(self, settings: EmbeddingSettings) -> Generator[Progress, None, tuple]:
        """A job: the last hidden layer of every validation image, projected to 2-D by PCA or t-SNE (scikit-learn is
        imported inside). Returns (method, features (N, D), coordinates (N, 2)); commit with set_embedding."""
        self._need()
        check_choice("projection", settings.method, PROJECTIONS)
        return self._embedding(settings.method)

    def _embedding(self, method: str) -> Generator[Progress, None, tuple]:
        net, images = self._need()
        yield Progress(0, 2, "hidden features")
        F = I.hidden_features(net, images.inputs)
        yield Progress(1, 2, f"running {method}")
        Y = I.embed(None, None, "pca" if method == "PCA" else "tsne", seed=0, features=F)
        return method, F, Y

    def set_embedding(self, method: str, features: np.ndarray, coords: np.ndarray) -> None:
        _, images = self._need()
        if coords.shape != (len(images), 2) or len(features) != len(images):
            raise ShapeError(f"an embedding of {len(images)} images needs ({len(images)}, 2) coordinates, got "
                             f"{coords.shape}")
        self.embedding_method, self.features, self.embedding = method, features, coords
        self.changed.emit("embedding")

    def select_point(self, i: Any) -> None:
        _, images = self._need()
        self.selected_point = check_int("selected image", i, 0, len(images) - 1)
        self.changed.emit("neighbours")

    def neighbours(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(nearest in hidden-feature space, nearest in raw pixel space) of the selected point, k each."""
        _, images = self._need()
        if self.features is None or self.selected_point is None:
            raise ValueInputError("compute the embedding and pick a point first")
        q = self.selected_point
        raw = images.raw
        return (I.nearest_neighbours(self.features, q, k),
                I.nearest_neighbours(raw.reshape(len(raw), -1), q, k))
