"""The Classifiers lab's model (lectures 2-3): kNN on 2-D toy data or the digits with cross-validation, and a linear
classifier (SVM / softmax) trained step by step. Settings declared once here; long work as jobs; no Qt.

    model = ClassicLabModel()
    model.set_prepared(run_job(model.prepare()))       # digits loaded, loss kernels compiled (a job: sklearn, Numba)
    model.knn.choose_dataset("moons")                  # regenerates the points, emits knn.changed
    model.knn.set_regions(run_job(model.knn.regions_job((-2, 2, -2, 2), 200)))
    ks, acc = run_job(model.knn.cross_validation())
    model.linear.step(10)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from simulator.core.errors import ValueInputError
from simulator.core.jobs import Job, Progress
from simulator.core.observer import Signal
from simulator.core.params import Settings, check_int, check_real, param
from simulator.data import datasets
from simulator.labs.classifiers import (DEMO_X, DEMO_Y, KNearestNeighbor, LinearClassifier, MarginRescaling,
                                        bias_trick, cross_validation_job, decision_grid, margin_rescaling)

__all__ = ["ClassicLabModel", "CvSettings", "DIGITS", "DISTANCES", "KnnDataSettings", "KnnLabModel", "KnnSettings",
           "LINEAR_SETS", "LinearLabModel", "LinearSettings", "TOY_NAMES"]

TOY_NAMES = datasets.TOY_NAMES
DIGITS = "digits (8x8 images)"
DISTANCES = {"L2 (Euclidean)": "l2", "L1 (Manhattan)": "l1"}
LINEAR_SETS = ("cs231n demo (9 points)", "blobs (3 classes)", "spiral (3 classes)", DIGITS)
LOSSES = {"Multiclass SVM": "svm", "Softmax": "softmax"}


@dataclass(frozen=True)
class KnnDataSettings(Settings):
    dataset: str = param("spiral", choices=(*TOY_NAMES, DIGITS), label="Data set")
    noise: float = param(datasets.TOY_DEFAULTS["spiral"].noise, low=0.0, high=0.6, decimals=2, label="Noise",
                         doc="noise std of the toy set (blobs: each cluster's std)")
    points: int = param(200, low=10, high=2000, label="Points", doc="how many points the toy set has")


@dataclass(frozen=True)
class KnnSettings(Settings):
    k: int = param(1, low=1, high=50, label="k", doc="how many nearest training points vote")
    distance: str = param("L2 (Euclidean)", choices=tuple(DISTANCES), label="Distance",
                          doc="L1 = Σ|a − b|, L2 = √Σ(a − b)²")


@dataclass(frozen=True)
class CvSettings(Settings):
    folds: int = param(5, low=2, high=10, label="Folds", doc="each fold is validated once on a model trained on "
                                                             "the others")
    kmax: int = param(25, low=2, high=50, label="k from 1 to", doc="the values of k compared")


@dataclass(frozen=True)
class LinearSettings(Settings):
    data: str = param(LINEAR_SETS[0], choices=LINEAR_SETS, label="Data")
    loss: str = param("Multiclass SVM", choices=tuple(LOSSES), label="Loss")
    reg: float = param(0.1, low=0.0, high=10.0, decimals=4, label="Regularisation λ",
                       doc="L = data loss + λ Σ W² (the bias is not regularised)")
    lr: float = param(0.1, low=1e-5, high=10.0, log=True, label="Learning rate", doc="plain SGD step size")
    speed: int = param(1, low=1, high=100, label="Steps per frame", doc="SGD steps per frame while running")
    delta: float = param(1.0, low=0.0, low_open=True, high=100.0, decimals=2, label="SVM margin Δ",
                         doc="the SVM's margin: max(0, s_j − s_y + Δ); it only sets the scale of W (see 'Does Δ "
                             "matter?')")
    temperature: float = param(1.0, low=0.0, low_open=True, high=100.0, decimals=2, label="Softmax temperature T",
                               doc="p = softmax(s / T): small T makes the probabilities peaky, large T flat")


def _digit_split(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, ...]:
    return tuple(datasets.train_val_split(images, labels, val_fraction=0.2, seed=0))


# ================================================================================================== kNN
class KnnLabModel:
    """kNN on a toy set (points the learner can add and remove) or on the digits (an 80/20 split), its region map
    and a cross-validation over k. ``changed`` fires after every change of data, settings or results."""

    def __init__(self) -> None:
        self.changed = Signal()
        self.data = KnnDataSettings()
        self.settings = KnnSettings()
        self.cv = CvSettings()
        self.sample = 0
        self.digits: tuple[np.ndarray, ...] | None = None      # (train images, train labels, val images, val labels)
        self.X = np.zeros((0, 2))
        self.y = np.zeros(0, np.int64)
        self.num_classes = 3
        self.region: np.ndarray | None = None
        self.region_rect: tuple[float, float, float, float] | None = None
        self.cv_result: tuple[np.ndarray, np.ndarray] | None = None
        self._generate()

    # ---- state
    @property
    def is_digits(self) -> bool:
        return self.data.dataset == DIGITS

    @property
    def k(self) -> int:
        return self.settings.k

    @property
    def distance(self) -> str:
        return DISTANCES[self.settings.distance]

    def cv_points(self) -> int:
        if self.is_digits:
            return 0 if self.digits is None else len(self.digits[0])
        return len(self.X)

    def cv_refusal(self) -> str:
        """Why cross-validation cannot run now ('' when it can)."""
        if self.is_digits and self.digits is None:
            return "The digits are still loading."
        n, folds = self.cv_points(), self.cv.folds
        if n < folds:
            return (f"{folds} folds need at least {folds} points; there {'is' if n == 1 else 'are'} {n}. Add points "
                    f"or lower the folds.")
        return ""

    # ---- edits
    def choose_dataset(self, name: str) -> None:
        """Switch data set; a toy set starts at its own default noise (datasets.TOY_DEFAULTS)."""
        data = self.data.replace(dataset=name)
        if name in datasets.TOY_DEFAULTS:
            data = data.replace(noise=datasets.TOY_DEFAULTS[name].noise)
        self.set_data(data)

    def set_data(self, data: KnnDataSettings) -> None:
        if not isinstance(data, KnnDataSettings):
            raise ValueInputError(f"data settings must be KnnDataSettings, got {type(data).__name__}")
        self.data = data
        self._generate()
        self.changed.emit()

    def new_sample(self) -> None:
        self.sample += 1
        self._generate()
        self.changed.emit()

    def set_settings(self, settings: KnnSettings) -> None:
        if not isinstance(settings, KnnSettings):
            raise ValueInputError(f"kNN settings must be KnnSettings, got {type(settings).__name__}")
        self.settings = settings
        self.region = None
        self.changed.emit()

    def set_cv(self, cv: CvSettings) -> None:
        if not isinstance(cv, CvSettings):
            raise ValueInputError(f"cross-validation settings must be CvSettings, got {type(cv).__name__}")
        self.cv = cv
        self.changed.emit()

    def set_digits(self, split: tuple[np.ndarray, ...]) -> None:
        self.digits = tuple(split)
        if self.is_digits:
            self._generate()
        self.changed.emit()

    def add_point(self, x: float, y: float, label: int) -> None:
        """Add a training point of class ``label`` at (x, y) (toy sets only)."""
        if self.is_digits:
            raise ValueInputError("points can be added to the 2-D toy sets only, not to the digits")
        x, y = check_real("x", x), check_real("y", y)
        label = check_int("class", label, 0, self.num_classes - 1)
        self.X = np.vstack([self.X, [[x, y]]])
        self.y = np.append(self.y, np.int64(label))
        self._data_edited()

    def remove_nearest(self, x: float, y: float) -> None:
        """Remove the training point nearest (x, y); the last point stays (kNN needs one)."""
        x, y = check_real("x", x), check_real("y", y)
        if self.is_digits or len(self.X) <= 1:
            return
        i = int(np.argmin(np.hypot(self.X[:, 0] - x, self.X[:, 1] - y)))
        self.X = np.delete(self.X, i, axis=0)
        self.y = np.delete(self.y, i)
        self._data_edited()

    def _data_edited(self) -> None:
        self.region = None
        self.cv_result = None
        self.changed.emit()

    def _generate(self) -> None:
        self.region = None
        self.cv_result = None
        if self.is_digits:
            self.num_classes = 10
            return
        d = self.data
        noise = max(d.noise, 0.01) if d.dataset == "blobs" else d.noise     # blobs of std 0: one point per class
        self.X, self.y = datasets.toy_data(d.dataset, d.points, noise, seed=self.sample)
        self.num_classes = int(self.y.max()) + 1

    # ---- jobs and results
    def regions_job(self, rect: tuple[float, float, float, float], resolution: int = 200) -> Job:
        """The predicted class at every cell of a resolution² grid over rect (x0, x1, y0, y1), as a job returning
        (Z (nx, ny), rect). Checked now (empty data, bad rectangle)."""
        x0, x1, y0, y1 = (check_real(n, v) for n, v in zip(("x0", "x1", "y0", "y1"), rect))
        if not (x1 > x0 and y1 > y0):
            raise ValueInputError(f"the region map needs a non-empty rectangle, got x {x0}..{x1}, y {y0}..{y1}")
        resolution = check_int("resolution", resolution, 1, 4096)
        knn = KNearestNeighbor(self.k, self.distance).train(self.X.copy(), self.y.copy(),
                                                            num_classes=self.num_classes)

        def job():
            yield Progress(0, 1, "region map")
            _, _, Z = decision_grid(knn.predict, (x0, x1), (y0, y1), resolution)
            return Z, (x0, x1, y0, y1)
        return job()

    def set_regions(self, result: tuple[np.ndarray, tuple[float, float, float, float]]) -> None:
        self.region, self.region_rect = result
        self.changed.emit()

    def cross_validation(self) -> Job[tuple[np.ndarray, np.ndarray]]:
        """Cross-validate k = 1..kmax over the folds on the current data (the digits: the training images) as a job
        yielding Progress per fold and returning (ks, accuracies (len(ks), folds)). Refused now when impossible."""
        why = self.cv_refusal()
        if why:
            raise ValueInputError(why)
        X, y = (self.digits[0], self.digits[1]) if self.is_digits else (self.X.copy(), self.y.copy())
        ks = np.arange(1, self.cv.kmax + 1)
        inner = cross_validation_job(X, y, ks, folds=self.cv.folds, distance=self.distance, seed=0)

        def job():
            acc = yield from inner
            return ks, acc
        return job()

    def set_cv_result(self, result: tuple[np.ndarray, np.ndarray]) -> None:
        self.cv_result = result
        self.changed.emit()

    def best_k(self) -> tuple[int, float, float] | None:
        """(k, mean accuracy, std over folds) of the best k (the smallest among equals), or None before any run."""
        if self.cv_result is None:
            return None
        ks, acc = self.cv_result
        mean, std = acc.mean(axis=1), acc.std(axis=1)
        i = int(np.argmax(mean))
        return int(ks[i]), float(mean[i]), float(std[i])

    def digit_query(self, q: int) -> dict[str, Any]:
        """The kNN answer for validation digit q: its image and label, the k nearest training images (indices,
        labels, distances) and the vote."""
        if self.digits is None:
            raise ValueInputError("the digits are still loading")
        Xtr, ytr, Xv, yv = self.digits
        q = check_int("query", q, 0, len(Xv) - 1)
        knn = KNearestNeighbor(self.k, self.distance).train(Xtr, ytr, num_classes=10)
        idx = knn.neighbours(Xv[q], self.k)
        d = knn.distances(Xv[q].reshape(1, -1))[0, idx]
        pred = int(knn.predict(Xv[q].reshape(1, -1))[0])
        return {"image": Xv[q], "label": int(yv[q]), "neighbours": idx, "neighbour_labels": ytr[idx],
                "neighbour_images": Xtr[idx], "distances": d, "prediction": pred}


# ================================================================================================== linear
class LinearLabModel:
    """A linear classifier s = W x + b on one of LINEAR_SETS, its loss and full-batch SGD steps. ``changed`` fires
    after every step, reset or setting change; ``diverged`` is True once W or b stopped being finite."""

    def __init__(self) -> None:
        self.changed = Signal()
        self.settings = LinearSettings()
        self.digits: tuple[np.ndarray, np.ndarray] | None = None
        self.diverged = False
        self._load()

    @property
    def is_digits(self) -> bool:
        return self.settings.data == DIGITS

    @property
    def ready(self) -> bool:
        """False while the digits are chosen but not loaded yet."""
        return not self.is_digits or self.digits is not None

    def set_digits(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.digits = (images, labels)
        if self.is_digits:
            self._load()
        self.changed.emit()

    def set_settings(self, settings: LinearSettings) -> None:
        """Apply settings: another data set reloads and resets W, b (digits: the learning rate is capped at 0.5,
        they diverge above); loss and λ change the loss at once, without a step."""
        if not isinstance(settings, LinearSettings):
            raise ValueInputError(f"linear settings must be LinearSettings, got {type(settings).__name__}")
        data_changed = settings.data != self.settings.data
        if data_changed and settings.data == DIGITS and settings.lr > 0.5:
            settings = settings.replace(lr=0.1)
        self.settings = settings
        if data_changed:
            self._load()
        else:
            self.clf.loss = LOSSES[settings.loss]
            self.clf.reg = settings.reg
            self.clf.delta = settings.delta
            self.clf.temperature = settings.temperature
        self.changed.emit()

    def reset(self) -> None:
        self._load()
        self.changed.emit()

    def _load(self) -> None:
        name = self.settings.data
        if name == DIGITS:
            if self.digits is None:
                X, y, C = np.zeros((0, 64)), np.zeros(0, np.int64), 10
            else:
                images, labels = self.digits
                X = images.reshape(len(images), -1) / 16.0
                X, y, C = X - X.mean(axis=0), labels, 10          # centred pixels (cs231n's mean-image subtraction)
        else:
            if name.startswith("cs231n"):
                X, y = DEMO_X.copy(), DEMO_Y.copy()
            elif name.startswith("blobs"):
                X, y = datasets.make_toy("blobs", n=60, classes=3, std=0.7, seed=1)
            else:
                X, y = datasets.make_toy("spiral", n=90, classes=3, noise=0.15, seed=1)
            X, C = X / np.abs(X).max(), 3                         # inside [-1, 1], the demo's range
        self.X, self.y = X, y
        self.clf = LinearClassifier(X.shape[1], C, loss=LOSSES[self.settings.loss], reg=self.settings.reg, seed=0,
                                    weight_scale=0.5 if C == 3 else 0.01, delta=self.settings.delta,
                                    temperature=self.settings.temperature)
        self.diverged = False

    def step(self, n: int = 1) -> bool:
        """n full-batch SGD steps at the set learning rate; False (and ``diverged``) if W or b is no longer finite."""
        n = check_int("steps", n, 1, 10_000)
        if not self.ready or len(self.X) == 0:
            raise ValueInputError("the digits are still loading")
        if self.diverged:
            return False
        with np.errstate(over="ignore", invalid="ignore"):
            for _ in range(n):
                self.clf.step(self.X, self.y, self.settings.lr)
        self.diverged = not (np.all(np.isfinite(self.clf.W)) and np.all(np.isfinite(self.clf.b)))
        self.changed.emit()
        return not self.diverged

    def breakdown(self):
        return self.clf.breakdown(self.X, self.y)

    def margin_check(self, delta: float = 2.0) -> MarginRescaling:
        """'Does Δ matter?': train a unit-margin SVM and a Δ-margin one on the current data (no regularisation)."""
        if not self.ready or len(self.X) == 0:
            raise ValueInputError("the digits are still loading")
        return margin_rescaling(self.X, self.y, delta, steps=50, lr=min(self.settings.lr, 0.1))

    def bias_trick_text(self) -> str:
        """The current W and b as one matrix: x W + b = [x, 1] [W; b], checked on the data."""
        X1, Wb = bias_trick(self.X[:50], self.clf.W, self.clf.b)
        same = np.allclose(X1 @ Wb, self.X[:50] @ self.clf.W + self.clf.b, rtol=1e-12, atol=1e-12)
        D, C = self.clf.W.shape
        return (f"Bias trick: x W + b = [x, 1] · [W; b] — W ({D}×{C}) and b ({C}) become one ({D + 1}×{C}) matrix "
                f"when every x gets a last coordinate 1; {'the scores are identical' if same else 'mismatch!'}.")


# ================================================================================================== the lab
class ClassicLabModel:
    """Both halves of the lab and what they share: the digits and the loss kernels, made ready by ``prepare()``."""

    def __init__(self) -> None:
        self.knn = KnnLabModel()
        self.linear = LinearLabModel()
        self.ready = False

    def prepare(self) -> Job[tuple[np.ndarray, np.ndarray]]:
        """Load the digits (datasets.load_digits: read once per process and shared by every lab) and compile (or
        load from Numba's cache) the SVM and softmax loss kernels the linear classifier steps with. Returns
        (images (N, 1, 8, 8), labels (N,))."""
        yield Progress(0, 3, "loading the digits")
        images, labels = datasets.load_digits()
        yield Progress(1, 3, "preparing the loss kernels")
        from simulator.functional import layers
        s = np.array([[0.5, -0.2, 0.1], [0.0, 1.0, -1.0]])
        y = np.array([0, 2])
        layers.svm_loss(s, y)
        layers.softmax_loss(s, y)
        yield Progress(2, 3, "splitting the digits")
        return images, labels

    def set_prepared(self, digits: tuple[np.ndarray, np.ndarray]) -> None:
        images, labels = digits
        self.ready = True
        self.knn.set_digits(_digit_split(images, labels))
        self.linear.set_digits(images, labels)
