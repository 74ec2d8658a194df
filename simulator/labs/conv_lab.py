"""The Convolution lab's model (lecture 5): one conv layer's geometry, input, filter and upstream gradient, its
frame-by-frame trace and explicit backward pass, max pooling, and hand-made filters on real images. No Qt.

``changed(part)`` names what changed: "layer" (geometry, values, trace), "frame" (the animation moved), "backward"
(dout), "pool", "filter", or "ready" (``prepare()`` finished: photos, digits and kernels are there).

``model.multi`` is the multi-channel part (a MultiConvModel with its own ``changed``: "layer" or "frame"): K filters,
each as deep as the C-channel input, traced number by number into K output maps; with F = 1, channel mixing.

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
from simulator.labs.conv_mechanics import (COLOUR_MIXES, FILTERS, PHOTOS, ConvBackward, ConvFrame, MultiConvFrame,
                                           PoolFrame, apply_filter, conv_backward_explicit, conv_param_count,
                                           conv_trace, max_pool_backward_explicit, max_pool_trace,
                                           multi_conv_trace, output_size, param_count_text, resize_channels)

__all__ = ["ConvLabModel", "FilterSettings", "IMAGES", "LayerSettings", "MultiConvModel", "MultiConvSettings",
           "PoolSettings"]

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


INTEGERS = "small integers"
MULTI_SOURCES = (INTEGERS,) + tuple(f"photo: {p}" for p in PHOTOS)
RANDOM_WEIGHTS = "random integers"
MIX_WEIGHTS = "colour mixes (1×1)"
PHOTO_CHANNELS = ("R", "G", "B")
PHOTO_RGB_SIDE = 128          # the photos' colour channels are kept at this side and resized to the chosen N
ONE_BY_ONE_SIDE = 32          # the 1×1 demonstration's input side: the photo is recognisable (4·32·32 frames)


@dataclass(frozen=True)
class MultiConvSettings(Settings):
    source: str = param(INTEGERS, choices=MULTI_SOURCES, label="Input",
                        doc="small random integers (readable sums) or a photo's R, G, B channels")
    c: int = param(3, low=1, high=4, label="Channels C", doc="depth of the input: every filter is this deep too")
    k: int = param(2, low=1, high=4, label="Filters K", doc="how many filters, so how many output maps")
    n: int = param(5, low=3, high=32, label="Input H×W", doc="side of the square input (photos are resized to it)")
    f: int = param(3, low=1, high=5, label="Filter F×F", doc="side of each filter (1: a 1×1 convolution)")
    stride: int = param(1, low=1, high=3, label="Stride S", doc="how many cells the window moves per step")
    pad: int = param(1, low=0, high=2, label="Padding P", doc="zeros added around every channel")
    weights: str = param(RANDOM_WEIGHTS, choices=(RANDOM_WEIGHTS, MIX_WEIGHTS), label="Filters are",
                         doc="random small integers, or named 1×1 mixes of R, G, B (grey, red − green, ...)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.source != INTEGERS and self.c != len(PHOTO_CHANNELS):
            raise ValueInputError(f"a photo has 3 channels (R, G, B), not C = {self.c}: set Channels C = 3, or "
                                  f"choose {INTEGERS!r} as the input")
        if self.weights == MIX_WEIGHTS and (self.f != 1 or self.c != len(PHOTO_CHANNELS)):
            raise ValueInputError(f"the colour mixes are 1×1 filters over R, G and B, so they need Filter F×F = 1 "
                                  f"and Channels C = 3 (now F = {self.f}, C = {self.c}): set those, or choose "
                                  f"{RANDOM_WEIGHTS!r}")


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
        self.multi = MultiConvModel(seed + 1)

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
        from simulator.labs.conv_mechanics import load_photo, load_photo_rgb
        total = len(PHOTOS) + 2
        photos, photos_rgb = {}, {}
        for i, name in enumerate(PHOTOS):
            yield Progress(i, total, f"loading {name}")
            photos[name] = load_photo(name, size=PHOTO_SIZE)
            photos_rgb[name] = load_photo_rgb(name, size=PHOTO_RGB_SIDE)
        yield Progress(len(PHOTOS), total, "loading the digits")
        digits = datasets.load_digits()[0][:, 0] / 16.0
        yield Progress(len(PHOTOS) + 1, total, "preparing the conv kernels")
        from simulator.functional import layers
        x = np.zeros((1, 1, 4, 4))
        _, cache = layers.conv_forward(x, np.zeros((1, 1, 3, 3)), np.zeros(1), 1, 1)
        layers.conv_backward(np.zeros((1, 1, 4, 4)), cache)
        out, pcache = layers.max_pool_forward(x, 2, 2)
        layers.max_pool_backward(out, pcache)
        return {"photos": photos, "digits": digits, "photos_rgb": photos_rgb}

    def set_prepared(self, prepared: dict[str, Any]) -> None:
        self.photos = dict(prepared["photos"])
        self.digits = prepared["digits"]
        self.ready = True
        self._recompute_filter()
        self.changed.emit("ready")
        self.multi.set_photos(prepared["photos_rgb"])

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


class MultiConvModel:
    """A conv layer with K filters over a C-channel input, traced number by number (multi_conv_trace: all of map 0,
    then map 1, ...). State: ``settings`` (MultiConvSettings), ``x`` (C, N, N), ``w`` (K, C, F, F), ``b`` (K,),
    ``frames``, ``frame_index`` (-1: nothing computed yet), ``error`` (why the geometry has no trace, with the
    paddings or strides that do work). ``changed(part)``: "layer" (settings, values, trace) or "frame"."""

    def __init__(self, seed: int = 232) -> None:
        self.changed = Signal()
        self._rng = np.random.default_rng(seed)
        self.settings = MultiConvSettings()
        self.photos: dict[str, np.ndarray] = {}         # name -> (3, PHOTO_RGB_SIDE, PHOTO_RGB_SIDE) in [0, 1]
        self._resized: dict[tuple[str, int], np.ndarray] = {}
        s = self.settings
        self.x = self._ints((s.c, s.n, s.n), 0, 3)
        self.w = self._ints((s.k, s.c, s.f, s.f), -1, 1)
        self.b = self._ints((s.k,), -1, 1)
        self.frames: list[MultiConvFrame] = []
        self.frame_index = -1
        self.error = ""
        self._recompute()

    def _ints(self, shape: tuple[int, ...], low: int, high: int) -> np.ndarray:
        return self._rng.integers(low, high + 1, shape).astype(np.float64)

    # ---- what the view writes
    @property
    def photo(self) -> str | None:
        """The photo's name when the input is a photo, else None."""
        src = self.settings.source
        return src[len("photo: "):] if src.startswith("photo: ") else None

    def channel_names(self) -> tuple[str, ...]:
        """'R', 'G', 'B' for a photo, else '0', '1', ..."""
        return PHOTO_CHANNELS if self.photo else tuple(str(c) for c in range(self.settings.c))

    def map_names(self) -> tuple[str, ...] | None:
        """The colour mixes' names (one per filter) when the filters are the mixes, else None."""
        return tuple(list(COLOUR_MIXES)[:self.settings.k]) if self.settings.weights == MIX_WEIGHTS else None

    def param_count(self) -> int:
        s = self.settings
        return conv_param_count(s.k, s.c, s.f)

    def param_count_text(self) -> str:
        s = self.settings
        return param_count_text(s.k, s.c, s.f)

    def shape_text(self) -> str:
        """The input, filter and output volumes' shapes and the output side's arithmetic, or why there is no
        output (with the paddings or strides that work)."""
        s = self.settings
        if self.error:
            return f"Cannot build this layer:\n{self.error}"
        k, ho, wo = self.out_shape
        return (f"input    C×H×W   = {s.c}×{s.n}×{s.n}\nfilters  K×C×F×F = {k}×{s.c}×{s.f}×{s.f}\n"
                f"output   K×H'×W' = {k}×{ho}×{wo}\nH' = ({s.n} − {s.f} + 2·{s.pad})/{s.stride} + 1 = {ho}")

    @property
    def out_shape(self) -> tuple[int, int, int]:
        """(K, Hout, Wout), or (K, 0, 0) without a valid geometry."""
        s = self.settings
        if self.error:
            return s.k, 0, 0
        n = int(round((len(self.frames) // s.k) ** 0.5))
        return s.k, n, n

    # ---- edits
    def set_settings(self, settings: MultiConvSettings) -> None:
        if not isinstance(settings, MultiConvSettings):
            raise ValueInputError(f"multi-channel settings must be MultiConvSettings, got {type(settings).__name__}")
        old, s = self.settings, settings
        self.settings = s
        # keep what still fits, so changing K (or C) leaves the other filters' maps (or channels) as they were
        if s.source == INTEGERS:
            if old.source != INTEGERS or self.x.shape[1:] != (s.n, s.n):
                self.x = self._ints((s.c, s.n, s.n), 0, 3)
            elif self.x.shape[0] != s.c:
                self.x = np.concatenate([self.x[:s.c], self._ints((max(0, s.c - self.x.shape[0]), s.n, s.n), 0, 3)])
        if s.weights == MIX_WEIGHTS:
            mixes = list(COLOUR_MIXES.values())[:s.k]
            self.w = np.array([m[0] for m in mixes], dtype=np.float64)[:, :, None, None]
            self.b = np.array([m[1] for m in mixes], dtype=np.float64)
        elif old.weights != RANDOM_WEIGHTS or self.w.shape[1:] != (s.c, s.f, s.f):
            self.w = self._ints((s.k, s.c, s.f, s.f), -1, 1)
            self.b = self._ints((s.k,), -1, 1)
        elif self.w.shape[0] != s.k:
            more = max(0, s.k - self.w.shape[0])
            self.w = np.concatenate([self.w[:s.k], self._ints((more, s.c, s.f, s.f), -1, 1)])
            self.b = np.concatenate([self.b[:s.k], self._ints((more,), -1, 1)])
        self._recompute()
        self.changed.emit("layer")

    def settings_for(self, values: dict[str, Any]) -> MultiConvSettings:
        """The settings a form's values ask for. What the control just changed brings its requirements along:
        choosing a photo sets C = 3, choosing the colour mixes sets F = 1 and C = 3; any other bad combination is
        refused (ValueInputError saying what to change)."""
        v, old = {**self.settings.as_dict(), **dict(values)}, self.settings
        if v["source"] != old.source and v["source"] != INTEGERS:
            v["c"] = len(PHOTO_CHANNELS)
        if v["weights"] != old.weights and v["weights"] == MIX_WEIGHTS:
            v["f"], v["c"] = 1, len(PHOTO_CHANNELS)
        return MultiConvSettings(**v)

    def one_by_one_settings(self) -> MultiConvSettings:
        """The channel-mixing demonstration: the first photo's R, G, B mixed by 1×1 filters into the colour
        mixes (grey, red − green, blue − yellow, negative), at ONE_BY_ONE_SIDE × ONE_BY_ONE_SIDE, large enough to
        recognise the photo in every map."""
        return self.settings.replace(source=MULTI_SOURCES[1], c=len(PHOTO_CHANNELS), k=len(COLOUR_MIXES), f=1,
                                     stride=1, pad=0, weights=MIX_WEIGHTS, n=ONE_BY_ONE_SIDE)

    def random_input(self) -> None:
        """New random integers (a photo input stays the photo)."""
        if self.settings.source == INTEGERS:
            self.x = self._ints(self.x.shape, 0, 3)
            self._recompute()
            self.changed.emit("layer")

    def random_filters(self) -> None:
        """New random integer filters and biases (the colour mixes stay the mixes)."""
        if self.settings.weights == RANDOM_WEIGHTS:
            self.w = self._ints(self.w.shape, -1, 1)
            self.b = self._ints(self.b.shape, -1, 1)
            self._recompute()
            self.changed.emit("layer")

    def set_photos(self, photos: dict[str, np.ndarray]) -> None:
        """The photos' colour channels, (3, H, W) each (ConvLabModel.prepare loads them off the UI thread)."""
        self.photos = {k: np.asarray(v, dtype=np.float64) for k, v in photos.items()}
        self._resized.clear()
        if self.photo:
            self._recompute()
            self.changed.emit("layer")

    def _recompute(self) -> None:
        s = self.settings
        self.frame_index = -1
        if self.photo:
            if self.photo not in self.photos:
                self.x = np.zeros((s.c, s.n, s.n))
                self.frames, self.error = [], "The photos are still loading: they appear here as soon as they are ready."
                return
            key = (self.photo, s.n)
            if key not in self._resized:
                self._resized[key] = resize_channels(self.photos[self.photo], s.n)
            self.x = self._resized[key].copy()
        try:
            self.frames = multi_conv_trace(self.x, self.w, self.b, s.stride, s.pad,
                                           pads=_range_of(MultiConvSettings, "pad"),
                                           strides=_range_of(MultiConvSettings, "stride"))
            self.error = ""
        except ShapeError as exc:
            self.frames, self.error = [], str(exc)

    # ---- the animation
    def show(self, index: int) -> None:
        """Show the first index + 1 output numbers (-1: none); clamped to the frames there are."""
        index = min(max(int(index), -1), len(self.frames) - 1)
        if index != self.frame_index:
            self.frame_index = index
            self.changed.emit("frame")

    def step(self) -> bool:
        """One more output number; False at the end (or without frames)."""
        if self.frame_index >= len(self.frames) - 1:
            return False
        self.show(self.frame_index + 1)
        return True

    def rewind(self) -> None:
        self.show(-1)

    @property
    def frame(self) -> MultiConvFrame | None:
        return self.frames[self.frame_index] if self.frames and self.frame_index >= 0 else None

    def output_maps(self) -> tuple[np.ndarray, np.ndarray]:
        """(out (K, Hout, Wout): every value of the traced layer, shown (K, Hout, Wout) bool: those computed so
        far). Empty (K, 0, 0) arrays without a valid geometry."""
        k, ho, wo = self.out_shape
        if not self.frames:
            return np.zeros((k, 0, 0)), np.zeros((k, 0, 0), bool)
        out = np.array([f.value for f in self.frames]).reshape(k, ho, wo)
        shown = np.zeros(out.shape, bool)
        shown.ravel()[:self.frame_index + 1] = True
        return out, shown

    def mix_matrix(self) -> np.ndarray | None:
        """W = w[:, :, 0, 0] (K × C) of a 1×1 layer (each row mixes one pixel's C channels into one output
        channel), or None when F > 1."""
        return self.w[:, :, 0, 0].copy() if self.settings.f == 1 else None
