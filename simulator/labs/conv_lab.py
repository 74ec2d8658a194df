"""The Convolution lab's model (lecture 5): one conv layer's geometry, input, filter and upstream gradient, its
frame-by-frame trace and explicit backward pass, max pooling, and hand-made filters on real images. No Qt.

``changed(part)`` names what changed: "layer" (geometry, values, trace), "frame" (the animation moved), "backward"
(dout), "pool", "filter", or "ready" (``prepare()`` finished: photos, digits and kernels are there).

    model = ConvLabModel()
    model.set_prepared(run_job(model.prepare()))       # the photos (scikit-learn, Pillow) and the conv kernels
    model.set_layer(model.layer.replace(stride=2))      # 5x5, F 3, P 1, S 2 -> 3x3
    model.step(); model.frames[model.frame_index].text  # '0·1 + ... = 4'
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from simulator.core.errors import ShapeError, ValueInputError
from simulator.core.jobs import Job, Progress
from simulator.core.observer import Signal
from simulator.core.params import Settings, check_choice, check_int, check_real, param, params_of
from simulator.labs.conv_mechanics import (FILTERS, PHOTOS, ConvBackward, ConvFrame, PoolFrame, apply_filter,
                                           conv_backward_explicit, conv_trace, max_pool_backward_explicit,
                                           max_pool_trace, output_size)

__all__ = ["ConvLabModel", "FilterSettings", "IMAGES", "LayerSettings", "PoolSettings"]

IMAGES = tuple(f"photo: {p}" for p in PHOTOS) + ("digit (8x8)",)
PHOTO_SIZE = 120


@dataclass(frozen=True)
class LayerSettings(Settings):
    n: int = param(5, low=2, high=9, label="Input N×N", doc="side of the square input")
    f: int = param(3, low=1, high=7, label="Filter F×F", doc="side of the square filter")
    stride: int = param(1, low=1, high=4, label="Stride S", doc="how many cells the filter moves per step")
    pad: int = param(1, low=0, high=3, label="Padding P", doc="zeros added around the input on every side")
    bias: float = param(0.0, low=-9.0, high=9.0, decimals=1, label="Bias b", doc="added to every output cell")


@dataclass(frozen=True)
class PoolSettings(Settings):
    n: int = param(4, low=2, high=8, label="Input", doc="side of the square input grid")
    size: int = param(2, low=1, high=4, label="Window", doc="side of the pooling window")
    stride: int = param(2, low=1, high=4, label="Stride", doc="how many cells the window moves per step")


@dataclass(frozen=True)
class FilterSettings(Settings):
    filter: str = param(next(iter(FILTERS)), choices=tuple(FILTERS), label="Filter")
    image: str = param(IMAGES[0], choices=IMAGES, label="Image")
    digit: int = param(0, low=0, high=1796, label="Digit #", doc="which of the 1,797 digits")


def _range_of(cls: type, name: str) -> range:
    p = next(p for p in params_of(cls) if p.name == name)
    return range(int(p.low), int(p.high) + 1)


class ConvLabModel:
    """State of the lab: see the module doc. Every edit validates first (ValueInputError / ShapeError, nothing
    changes) and emits ``changed(part)`` after."""

    def __init__(self, seed: int = 231) -> None:
        self.changed = Signal()
        self._rng = np.random.default_rng(seed)
        self.layer = LayerSettings()
        self.x = self._rng.integers(0, 4, (self.layer.n, self.layer.n)).astype(np.float64)
        self.w = self._rng.integers(-1, 2, (self.layer.f, self.layer.f)).astype(np.float64)
        self.dout = np.zeros((0, 0))
        self.frames: list[ConvFrame] = []
        self.frame_index = -1
        self.error = ""
        self.backward: ConvBackward | None = None
        self.pool = PoolSettings()
        self.pool_x = self._rng.integers(0, 10, (self.pool.n, self.pool.n)).astype(np.float64)
        self.pool_dout = np.zeros((0, 0))
        self.pool_frames: list[PoolFrame] = []
        self.pool_out = np.zeros((0, 0))
        self.pool_dx = np.zeros((0, 0))
        self.pool_error = ""
        self.filter = FilterSettings()
        self.photos: dict[str, np.ndarray] = {}
        self.digits: np.ndarray | None = None
        self.filtered: np.ndarray | None = None
        self.ready = False
        self._recompute()
        self._recompute_pool()

    # ================================================================================================ conv layer
    @property
    def output_side(self) -> int:
        return int(round(len(self.frames) ** 0.5))

    def size_text(self) -> str:
        """The output-size arithmetic for the current geometry, or why it fails (with fixes that work)."""
        s = self.layer
        if self.error:
            return f"Cannot build this layer:\n{self.error}"
        n = self.output_side
        return f"(N − F + 2P)/S + 1\n= ({s.n} − {s.f} + 2·{s.pad})/{s.stride} + 1\n= {n}   → output {n}×{n}"

    def set_layer(self, layer: LayerSettings) -> None:
        if not isinstance(layer, LayerSettings):
            raise ValueInputError(f"layer settings must be LayerSettings, got {type(layer).__name__}")
        only_bias = layer.replace(bias=self.layer.bias) == self.layer
        self.layer = layer
        if self.x.shape != (layer.n, layer.n):
            self.x = self._rng.integers(0, 4, (layer.n, layer.n)).astype(np.float64)
        if self.w.shape != (layer.f, layer.f):
            self.w = self._rng.integers(-1, 2, (layer.f, layer.f)).astype(np.float64)
        self._recompute(keep_frame=only_bias)
        self.changed.emit("layer")

    def random_input(self) -> None:
        self.x = self._rng.integers(0, 4, self.x.shape).astype(np.float64)
        self._recompute()
        self.changed.emit("layer")

    def random_filter(self) -> None:
        self.w = self._rng.integers(-1, 2, self.w.shape).astype(np.float64)
        self._recompute()
        self.changed.emit("layer")

    def random_dout(self) -> None:
        if self.dout.size:
            self.dout = self._rng.integers(-2, 3, self.dout.shape).astype(np.float64)
            self._update_backward()
            self.changed.emit("backward")

    def edit(self, which: str, r: int, c: int, delta: float) -> None:
        """Add delta to cell (r, c) of 'x', 'w' or 'dout'."""
        check_choice("grid", which, ("x", "w", "dout"))
        a = {"x": self.x, "w": self.w, "dout": self.dout}[which]
        r = check_int("row", r, 0, a.shape[0] - 1)
        c = check_int("column", c, 0, a.shape[1] - 1)
        a[r, c] += check_real("change", delta, -100, 100)
        if which == "dout":
            self._update_backward()
            self.changed.emit("backward")
        else:
            self._recompute(keep_frame=True)
            self.changed.emit("layer")

    def _recompute(self, keep_frame: bool = False) -> None:
        s = self.layer
        try:
            n = output_size(s.n, s.f, s.pad, s.stride, pads=_range_of(LayerSettings, "pad"),
                            strides=_range_of(LayerSettings, "stride"))
            self.frames = conv_trace(self.x, self.w, s.bias, s.stride, s.pad)
            self.error = ""
            if self.dout.shape != (n, n):
                self.dout = self._rng.integers(-2, 3, (n, n)).astype(np.float64)
        except ShapeError as exc:
            self.frames = []
            self.error = str(exc)
            self.dout = np.zeros((0, 0))
        if not keep_frame or not self.frames:
            self.frame_index = -1
        self.frame_index = min(self.frame_index, len(self.frames) - 1)
        self._update_backward()

    # ---- the animation
    @property
    def at_end(self) -> bool:
        return self.frame_index >= len(self.frames) - 1

    def step(self) -> bool:
        """Show the next output cell; False when there is none."""
        if not self.frames or self.at_end:
            return False
        self.frame_index += 1
        self.changed.emit("frame")
        return True

    def rewind(self) -> None:
        self.frame_index = -1
        self.changed.emit("frame")

    def output_grid(self) -> tuple[np.ndarray, np.ndarray]:
        """(out (n, n), shown (n, n) bool: the cells computed so far)."""
        if not self.frames:
            return np.zeros((0, 0)), np.zeros((0, 0), bool)
        n = self.output_side
        out = np.array([f.value for f in self.frames]).reshape(n, n)
        shown = np.zeros((n, n), bool)
        shown.ravel()[:self.frame_index + 1] = True
        return out, shown

    # ---- backward
    def _update_backward(self) -> None:
        s = self.layer
        self.backward = (conv_backward_explicit(self.x, self.w, self.dout, s.stride, s.pad) if self.frames
                         else None)

    def library_check(self) -> float | None:
        """max |difference| between the explicit backward and layers.conv_backward (Numba kernels: only once
        ``ready``), or None when there is nothing to check or the kernels are not prepared yet."""
        if self.backward is None or not self.ready:
            return None
        from simulator.functional import layers
        s, bk = self.layer, self.backward
        _, cache = layers.conv_forward(self.x[None, None], self.w[None, None], np.array([s.bias]), s.stride, s.pad)
        dx, dw, db = layers.conv_backward(self.dout[None, None], cache)
        return float(max(np.abs(dx[0, 0] - bk.dx[0]).max(), np.abs(dw[0, 0] - bk.dw[0]).max(), abs(db[0] - bk.db)))

    # ================================================================================================ pooling
    def set_pool(self, pool: PoolSettings) -> None:
        if not isinstance(pool, PoolSettings):
            raise ValueInputError(f"pool settings must be PoolSettings, got {type(pool).__name__}")
        self.pool = pool
        if self.pool_x.shape != (pool.n, pool.n):
            self.pool_x = self._rng.integers(0, 10, (pool.n, pool.n)).astype(np.float64)
        self._recompute_pool()
        self.changed.emit("pool")

    def random_pool(self) -> None:
        self.pool_x = self._rng.integers(0, 10, self.pool_x.shape).astype(np.float64)
        self.pool_dout = np.zeros((0, 0))
        self._recompute_pool()
        self.changed.emit("pool")

    def _recompute_pool(self) -> None:
        p = self.pool
        try:
            output_size(p.n, p.size, 0, p.stride, pads=range(0, 1), strides=_range_of(PoolSettings, "stride"))
            frames = max_pool_trace(self.pool_x, p.size, p.stride)
        except ShapeError as exc:
            self.pool_frames, self.pool_error = [], str(exc)
            self.pool_out = self.pool_dx = np.zeros((0, 0))
            return
        self.pool_error = ""
        m = int(round(len(frames) ** 0.5))
        if self.pool_dout.shape != (m, m):
            self.pool_dout = self._rng.integers(1, 6, (m, m)).astype(np.float64)
        self.pool_frames = frames
        self.pool_out = np.array([f.value for f in frames]).reshape(m, m)
        self.pool_dx = max_pool_backward_explicit(self.pool_x, self.pool_dout, p.size, p.stride)

    # ================================================================================================ filters
    def prepare(self) -> Job[dict[str, Any]]:
        """Load the photos (scikit-learn's bundled samples, Pillow) and the digits (datasets.load_digits, read once
        and shared by every lab), and compile (or load from Numba's cache) the conv and pool kernels the Filters tab
        and the backward check call. Returns what ``set_prepared`` takes."""
        from simulator.data import datasets
        from simulator.labs.conv_mechanics import load_photo
        total = len(PHOTOS) + 2
        photos = {}
        for i, name in enumerate(PHOTOS):
            yield Progress(i, total, f"loading {name}")
            photos[name] = load_photo(name, size=PHOTO_SIZE)
        yield Progress(len(PHOTOS), total, "loading the digits")
        digits = datasets.load_digits()[0][:, 0] / 16.0
        yield Progress(len(PHOTOS) + 1, total, "preparing the conv kernels")
        from simulator.functional import layers
        x = np.zeros((1, 1, 4, 4))
        _, cache = layers.conv_forward(x, np.zeros((1, 1, 3, 3)), np.zeros(1), 1, 1)
        layers.conv_backward(np.zeros((1, 1, 4, 4)), cache)
        out, pcache = layers.max_pool_forward(x, 2, 2)
        layers.max_pool_backward(out, pcache)
        return {"photos": photos, "digits": digits}

    def set_prepared(self, prepared: dict[str, Any]) -> None:
        self.photos = dict(prepared["photos"])
        self.digits = prepared["digits"]
        self.ready = True
        self._recompute_filter()
        self.changed.emit("ready")

    def set_filter(self, settings: FilterSettings) -> None:
        if not isinstance(settings, FilterSettings):
            raise ValueInputError(f"filter settings must be FilterSettings, got {type(settings).__name__}")
        self.filter = settings
        self._recompute_filter()
        self.changed.emit("filter")

    def current_image(self) -> np.ndarray | None:
        """The grayscale image (H, W) in [0, 1] the Filters tab filters, or None before ``prepare`` finished."""
        if not self.ready:
            return None
        choice = self.filter.image
        if choice.startswith("photo: "):
            return self.photos[choice[len("photo: "):]]
        return self.digits[self.filter.digit]

    def _recompute_filter(self) -> None:
        img = self.current_image()
        self.filtered = None if img is None else apply_filter(img, self.filter.filter)
