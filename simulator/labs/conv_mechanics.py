"""Convolution and max pooling taken apart for teaching (lecture 5): the output-size rule, a frame-by-frame trace of
one conv layer and of max pooling, their backward passes as explicit numpy computations, and hand-made 3x3 filters
applied to real images (scikit-learn's digits and bundled photos).

One conv layer here has a single filter over a (C, H, W) input (C = 1 for a plain grid): out[i, j] =
sum_{c,p,q} xpad[c, i S + p, j S + q] w[c, p, q] + b, the cross-correlation every deep-learning library calls
convolution. The multi-channel trace takes K such filters, each as deep as the input (w (K, C, F, F), b (K,)): K
output maps, K·C·F·F + K parameters, and with F = 1 a per-pixel matrix product that mixes the channels. Everything is float64; the traces agree with simulator.functional.layers.conv_forward / max_pool_forward, and the
backward computations with conv_backward / max_pool_backward (the tests check both).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from simulator.functional import layers
from simulator.core.errors import ShapeError, ValueInputError
from simulator.core.params import check_int, check_real

__all__ = [
    "output_size", "geometry_fixes", "MAX_TRACE_PAD", "MAX_TRACE_STRIDE", "MAX_TRACE_CELLS", "pad_input", "as_chw", "ConvFrame", "conv_trace", "conv_output", "ConvBackward",
    "conv_backward_explicit", "dilate", "correlate_valid", "PoolFrame", "max_pool_trace", "max_pool_backward_explicit",
    "FILTERS", "FILTER_NOTES", "apply_filter", "load_photo", "PHOTOS", "format_number", "dot_product_text",
    "conv_param_count", "param_count_text", "conv_volume_shape", "MultiConvFrame", "multi_conv_trace",
    "multi_conv_output", "conv1x1_matmul", "COLOUR_MIXES", "load_photo_rgb", "resize_channels",
]


# ============================================================================================== output size

# What the teaching traces draw at most: beyond these a padding or stride says nothing new and only costs memory.
MAX_TRACE_PAD = 16
MAX_TRACE_STRIDE = 64
MAX_TRACE_CELLS = 10_000          # output cells (frames) of one trace
MAX_TRACE_INPUT = 512             # input side


def _size(name: str, v: Any, low: int, high: int | None = None, why: str = "") -> int:
    """A size, stride or padding of the traces: check_int's ShapeError, and past ``high`` a message saying why."""
    v = check_int(name, v, low, error=ShapeError)
    if high is not None and v > high:
        raise ShapeError(f"{name} = {v:.3g} is too large{why}: use at most {high}" if v > 1e6 else
                         f"{name} = {v} is too large{why}: use at most {high}")
    return v


def geometry_fixes(N: int, F: int, P: int, S: int, pads: range | None = None,
                   strides: range | None = None) -> tuple[list[int], list[int]]:
    """The changes of ONE control that make (N - F + 2P)/S + 1 a whole number of positions: (paddings P' in
    ``pads`` that work with the stride S, strides S' in ``strides`` that work with the padding P). Default ranges:
    P' in 0..F - 1 and S' in 1..max(S, F). Every value returned is reachable by that control alone and gives
    output_size(...) without an error; either list may be empty (e.g. N - F odd: no padding fixes an even stride,
    since N - F + 2P keeps the parity of N - F)."""
    N, F, P, S = _size("N", N, 1), _size("F", F, 1), _size("P", P, 0), _size("S", S, 1)
    pads = range(0, F) if pads is None else pads
    strides = range(1, max(S, F) + 1) if strides is None else strides

    def ok(p: int, s: int) -> bool:
        span = N - F + 2 * p
        return span >= 0 and span % s == 0
    return [p for p in pads if p != P and ok(p, S)], [s for s in strides if s != S and ok(P, s)]


def _or(values: list[int]) -> str:
    v = [str(x) for x in values]
    return v[0] if len(v) == 1 else ", ".join(v[:-1]) + " or " + v[-1]


def fix_hint(N: int, F: int, P: int, S: int, pads: range | None = None, strides: range | None = None) -> str:
    """A sentence naming only values that work (geometry_fixes): 'Try padding P = 0 or 2 (keeping S = 2), or stride
    S = 1 (keeping P = 1).' When no padding can work, it says why (the parity of N - F)."""
    fp, fs = geometry_fixes(N, F, P, S, pads, strides)
    parts = []
    if fp:
        parts.append(f"padding P = {_or(fp)} (keeping S = {S})")
    if fs:
        parts.append(f"stride S = {_or(fs)} (keeping P = {P})")
    text = ("Try " + ", or ".join(parts) + ".") if parts else "No single change of P or S fixes it: change N or F."
    if not fp and S % 2 == 0 and (N - F) % 2 != 0:
        text += (f" No padding works at stride {S}: N − F = {N - F} is odd and 2P is even, so N − F + 2P is always "
                 f"odd and never a multiple of {S}.")
    return text


def output_size(N: int, F: int, P: int, S: int, *, pads: range | None = None, strides: range | None = None) -> int:
    """(N - F + 2P) / S + 1 for an N x N input, F x F filter, padding P and stride S, when that is a whole number of
    positions. Otherwise ShapeError, with the arithmetic: the filter does not fit, or the stride does not tile the
    padded input exactly (libraries would silently drop the last rows and columns). The message suggests only
    paddings in ``pads`` and strides in ``strides`` that do work (geometry_fixes; a lab passes its controls' ranges)."""
    N, F, P, S = _size("N", N, 1), _size("F", F, 1), _size("P", P, 0), _size("S", S, 1)
    span = N - F + 2 * P
    if span < 0:
        raise ShapeError(f"the {F}x{F} filter does not fit: the padded input is only N + 2P = {N} + 2·{P} = "
                         f"{N + 2 * P} wide (N - F + 2P = {N} - {F} + 2·{P} = {span} < 0). "
                         + fix_hint(N, F, P, S, pads, strides))
    q, r = divmod(span, S)
    if r:
        raise ShapeError(f"(N - F + 2P)/S + 1 = ({N} - {F} + 2·{P})/{S} + 1 = {span}/{S} + 1 = {span / S + 1:.4g} "
                         f"is not an integer: stride {S} does not divide {span} (remainder {r}), so the filter cannot "
                         f"land on the last {r} column{'s' if r > 1 else ''}. " + fix_hint(N, F, P, S, pads, strides))
    return q + 1


# ============================================================================================== helpers

def as_chw(x: Any, name: str = "x") -> np.ndarray:
    """(H, W) or (C, H, W) real numbers -> float64 (C, H, W)."""
    a = np.asarray(x)
    if a.dtype.kind not in "biuf":
        raise ValueInputError(f"{name} must hold real numbers, got dtype {a.dtype}")
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3 or min(a.shape) < 1:
        raise ShapeError(f"{name} must be (H, W) or (C, H, W), got shape {np.shape(x)}")
    if a.size > 64 * MAX_TRACE_INPUT ** 2:
        raise ShapeError(f"{name} of shape {np.shape(x)} is too large for this teaching tool")
    a = a.astype(np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueInputError(f"{name} holds NaN or infinite values")
    return a


def pad_input(x: Any, pad: int) -> np.ndarray:
    """(C, H, W) (or (H, W)) zero-padded by `pad` on every side: (C, H + 2 pad, W + 2 pad)."""
    x = as_chw(x)
    p = _size("P", pad, 0, MAX_TRACE_PAD, " for a padding (F − 1 already lets a filter reach every input cell)")
    return np.pad(x, ((0, 0), (p, p), (p, p)))


def format_number(v: float) -> str:
    """Whole numbers without decimals ('7', '-3'), others with up to 3 significant digits ('0.25', '-1.5')."""
    v = float(v)
    if v == 0:
        return "0"
    if v == round(v) and abs(v) < 1e6:
        return str(int(round(v)))
    return f"{v:.3g}"


def _fmt_factor(v: float) -> str:
    s = format_number(v)
    return f"({s})" if s.startswith("-") else s


def _products_text(window: np.ndarray, filt: np.ndarray, max_terms: int) -> str:
    """'1·0 + 2·1 + ...': the elementwise products of a window with a filter (long sums elided in the middle)."""
    wv, fv = np.ravel(window), np.ravel(filt)
    terms = [f"{_fmt_factor(a)}·{_fmt_factor(b)}" for a, b in zip(wv, fv)]
    if len(terms) > max_terms:
        terms = terms[:max_terms - 2] + ["…", terms[-1]]
    return " + ".join(terms)


def dot_product_text(window: np.ndarray, filt: np.ndarray, bias: float, value: float, max_terms: int = 27) -> str:
    """'1·0 + 2·1 + ... + b = 7' for the elementwise products of a window with a filter, bias and result."""
    return _products_text(window, filt, max_terms) + f" + {_fmt_factor(bias)} = {format_number(value)}"


# ============================================================================================== forward trace

@dataclass(frozen=True)
class ConvFrame:
    """One output cell of a conv layer. Window coordinates are in the padded input."""

    index: int                    # frame number, row-major over the output
    out_pos: tuple[int, int]      # (i, j) in the output
    origin: tuple[int, int]       # (row, col) of the window's top-left cell in the padded input: (i S, j S)
    window: np.ndarray            # (C, F, F) the input values under the filter
    filt: np.ndarray              # (C, F, F)
    products: np.ndarray          # (C, F, F) window * filt
    total: float                  # products.sum()
    bias: float
    value: float                  # total + bias = out[i, j]
    text: str                     # the dot product written out


def _conv_args(x: Any, w: Any, b: float, stride: int, pad: int) -> tuple[np.ndarray, np.ndarray, float, int, int]:
    x = as_chw(x, "x")
    w = as_chw(w, "w")
    if w.shape[0] != x.shape[0]:
        raise ShapeError(f"the filter has {w.shape[0]} channels (shape {w.shape}) but x has {x.shape[0]} "
                         f"(shape {x.shape}): filters must be as deep as the input")
    if w.shape[1] != w.shape[2] or x.shape[1] != x.shape[2]:
        raise ShapeError(f"this trace uses square inputs and filters, got x {x.shape} and w {w.shape}")
    b = check_real("bias", b)
    S = _size("S", stride, 1, MAX_TRACE_STRIDE, " for a stride")
    P = _size("P", pad, 0, MAX_TRACE_PAD, " for a padding (F − 1 already lets a filter reach every input cell)")
    return x, w, b, S, P


def conv_trace(x: Any, w: Any, b: float = 0.0, stride: int = 1, pad: int = 0) -> list[ConvFrame]:
    """Every output cell of the conv layer (x (C, H, W) or (H, W); w (C, F, F) or (F, F); scalar bias) as a frame,
    row-major. Raises ShapeError (from output_size) when the geometry is not exact."""
    x, w, b, S, P = _conv_args(x, w, b, stride, pad)
    F = w.shape[1]
    n = output_size(x.shape[1], F, P, S)
    if n * n > MAX_TRACE_CELLS:
        raise ShapeError(f"a {n}x{n} output has {n * n:,} cells, too many to trace one by one (at most "
                         f"{MAX_TRACE_CELLS:,}): use a smaller input or a larger stride")
    xp = pad_input(x, P)
    frames = []
    for i in range(n):
        for j in range(n):
            r, c = i * S, j * S
            win = xp[:, r:r + F, c:c + F].copy()
            prod = win * w
            total = float(prod.sum())
            value = total + b
            frames.append(ConvFrame(len(frames), (i, j), (r, c), win, w.copy(), prod, total, b, value,
                                    dot_product_text(win, w, b, value)))
    return frames


def conv_output(x: Any, w: Any, b: float = 0.0, stride: int = 1, pad: int = 0) -> np.ndarray:
    """The same layer through simulator.functional.layers.conv_forward: out (n, n)."""
    x, w, b, S, P = _conv_args(x, w, b, stride, pad)
    output_size(x.shape[1], w.shape[1], P, S)
    out, _ = layers.conv_forward(x[None], w[None], np.array([b]), S, P)
    return out[0, 0]


# ============================================================================================== backward

def dilate(d: np.ndarray, stride: int) -> np.ndarray:
    """(n, n) -> ((n - 1) S + 1, same): S - 1 zeros inserted between neighbouring entries (stride undone)."""
    n0, n1 = d.shape
    out = np.zeros(((n0 - 1) * stride + 1, (n1 - 1) * stride + 1))
    out[::stride, ::stride] = d
    return out


def correlate_valid(a: np.ndarray, k: np.ndarray) -> np.ndarray:
    """2-D 'valid' cross-correlation: out[p, q] = sum_{i,j} a[p + i, q + j] k[i, j], shape (A - K + 1, ...)."""
    K0, K1 = k.shape
    H, W = a.shape[0] - K0 + 1, a.shape[1] - K1 + 1
    out = np.zeros((H, W))
    for i in range(K0):
        for j in range(K1):
            out += k[i, j] * a[i:i + H, j:j + W]
    return out


@dataclass(frozen=True)
class ConvBackward:
    """The backward pass of one conv layer with its intermediate grids, for display.

    dout_dilated: dout with S - 1 zeros between entries, ((n-1)S + 1) square.
    dw[c] = correlate_valid(xpad[c], dout_dilated) (cropped to F x F): each filter weight meets every input value it
    multiplied, weighted by the gradient of the output it fed.
    w_flipped[c] = w[c] rotated by 180 degrees; dxpad[c] = correlate_valid(zero-pad(dout_dilated, F - 1), w_flipped[c]),
    the 'full' convolution of the upstream gradient with the filter; dx = dxpad without the padding ring.
    db = sum(dout): the bias was added to every output.
    """

    xpad: np.ndarray          # (C, H + 2P, W + 2P)
    dout: np.ndarray          # (n, n)
    dout_dilated: np.ndarray
    w_flipped: np.ndarray     # (C, F, F)
    dxpad: np.ndarray         # (C, H + 2P, W + 2P)
    dx: np.ndarray            # (C, H, W)
    dw: np.ndarray            # (C, F, F)
    db: float


def conv_backward_explicit(x: Any, w: Any, dout: Any, stride: int = 1, pad: int = 0) -> ConvBackward:
    """dx, dw, db of the traced conv layer for an upstream gradient dout (n, n), computed as correlations (see
    ConvBackward). Equal to simulator.functional.layers.conv_backward."""
    x, w, _, S, P = _conv_args(x, w, 0.0, stride, pad)
    F = w.shape[1]
    n = output_size(x.shape[1], F, P, S)
    dout = np.asarray(dout, dtype=np.float64)
    if dout.shape != (n, n):
        raise ShapeError(f"dout must have the output's shape ({n}, {n}), got {dout.shape}")
    xp = pad_input(x, P)
    dd = dilate(dout, S)                                           # (n-1)S + 1 = H + 2P - F + 1: exact geometry
    dw = np.stack([correlate_valid(xp[c], dd) for c in range(x.shape[0])])
    wf = w[:, ::-1, ::-1].copy()
    ddp = np.pad(dd, F - 1)
    dxpad = np.stack([correlate_valid(ddp, wf[c]) for c in range(x.shape[0])])
    H = x.shape[1]
    dx = dxpad[:, P:P + H, P:P + H].copy()
    return ConvBackward(xp, dout, dd, wf, dxpad, dx, dw, float(dout.sum()))


# ============================================================================================== max pooling

@dataclass(frozen=True)
class PoolFrame:
    """One output cell of max pooling over a (H, W) grid."""

    index: int
    out_pos: tuple[int, int]
    origin: tuple[int, int]       # top-left of the window in the input
    window: np.ndarray            # (size, size)
    argmax: tuple[int, int]       # input coordinates of the maximum (first in row-major order on ties)
    value: float


def _pool_args(x: Any, size: int, stride: int) -> tuple[np.ndarray, int, int, int, int]:
    a = as_chw(x)
    if a.shape[0] != 1:
        raise ShapeError(f"the pooling trace takes one (H, W) grid, got shape {np.shape(x)}")
    a = a[0]
    size = _size("pool size", size, 1, a.shape[0], " for this grid")
    stride = _size("pool stride", stride, 1, MAX_TRACE_STRIDE, " for a stride")
    ho = output_size(a.shape[0], size, 0, stride) if a.shape[0] == a.shape[1] else None
    if ho is None:
        raise ShapeError(f"the pooling trace uses square grids, got shape {a.shape}")
    return a, size, stride, ho, ho


def max_pool_trace(x: Any, size: int = 2, stride: int = 2) -> list[PoolFrame]:
    """Every output cell of size x size max pooling at `stride` over a square (H, W) grid (exact geometry only)."""
    a, size, stride, ho, wo = _pool_args(x, size, stride)
    frames = []
    for i in range(ho):
        for j in range(wo):
            r, c = i * stride, j * stride
            win = a[r:r + size, c:c + size].copy()
            k = int(np.argmax(win))             # first maximum in row-major order, as layers.max_pool_forward
            frames.append(PoolFrame(len(frames), (i, j), (r, c), win, (r + k // size, c + k % size), float(win.max())))
    return frames


def max_pool_backward_explicit(x: Any, dout: Any, size: int = 2, stride: int = 2) -> np.ndarray:
    """dx (H, W): each window's upstream gradient routed to its arg-max cell (accumulated where windows overlap);
    every other cell gets 0. Equal to simulator.functional.layers.max_pool_backward."""
    a, size, stride, ho, wo = _pool_args(x, size, stride)
    dout = np.asarray(dout, dtype=np.float64)
    if dout.shape != (ho, wo):
        raise ShapeError(f"dout must have the pooled shape ({ho}, {wo}), got {dout.shape}")
    dx = np.zeros_like(a)
    for f in max_pool_trace(a, size, stride):
        dx[f.argmax] += dout[f.out_pos]
    return dx


# ============================================================================================== hand-made filters

FILTERS: dict[str, np.ndarray] = {
    "Vertical edges (Sobel x)": np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float64),
    "Horizontal edges (Sobel y)": np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]], dtype=np.float64),
    "Laplacian": np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=np.float64),
    "Box blur": np.full((3, 3), 1.0 / 9.0),
    "Gaussian blur": np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], dtype=np.float64) / 16.0,
    "Sharpen": np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], dtype=np.float64),
    "Identity": np.array([[0, 0, 0], [0, 1, 0], [0, 0, 0]], dtype=np.float64),
}

FILTER_NOTES: dict[str, str] = {
    "Vertical edges (Sobel x)": "responds where brightness changes from left to right: vertical edges",
    "Horizontal edges (Sobel y)": "responds where brightness changes from top to bottom: horizontal edges",
    "Laplacian": "second derivative in all directions: outlines and fine detail, zero on flat regions",
    "Box blur": "the mean of the 3x3 neighbourhood: smooths noise and detail",
    "Gaussian blur": "a weighted mean favouring the centre: a gentler blur",
    "Sharpen": "the image plus its negative Laplacian: edges stand out more",
    "Identity": "copies the centre pixel: the output equals the input",
}

PHOTOS = ("china.jpg", "flower.jpg")


def apply_filter(image: Any, kernel: str | np.ndarray, pad: int = 1) -> np.ndarray:
    """A grayscale image (H, W) filtered by a named 3x3 kernel (FILTERS) or any (F, F) array, through
    layers.conv_forward with stride 1 and zero padding `pad` (1 keeps a 3x3 filter's output the input's size)."""
    k = FILTERS[kernel] if isinstance(kernel, str) and kernel in FILTERS else kernel
    if isinstance(k, str):
        raise ValueInputError(f"unknown filter {kernel!r}; choose one of {', '.join(FILTERS)}")
    img = as_chw(image, "image")
    w = as_chw(k, "kernel")
    if img.shape[0] != 1 or w.shape[0] != 1:
        raise ShapeError(f"apply_filter takes a grayscale (H, W) image and an (F, F) kernel, got {np.shape(image)} "
                         f"and {np.shape(k)}")
    out, _ = layers.conv_forward(img[None], w[None], np.zeros(1), 1,
                                 _size("pad", pad, 0, MAX_TRACE_PAD, " for a padding"))
    return out[0, 0]


PHOTO_LIBRARIES = "the sample photos need scikit-learn and Pillow: pip install scikit-learn pillow"


def _pil_image():
    """Pillow's Image module (the photos are resized with it), or our error with the install hint."""
    try:
        from PIL import Image
    except ImportError:
        raise ValueInputError(PHOTO_LIBRARIES) from None
    return Image


def _sample_rgb(name: str) -> np.ndarray:
    """scikit-learn's bundled photo `name` as float64 (H, W, 3) in [0, 1]."""
    if name not in PHOTOS:
        raise ValueInputError(f"unknown photo {name!r}; choose one of {', '.join(PHOTOS)}")
    _pil_image()                                          # resizing needs it: fail here, before loading
    try:
        from sklearn.datasets import load_sample_image
    except ImportError:
        raise ValueInputError(PHOTO_LIBRARIES) from None
    return load_sample_image(name).astype(np.float64) / 255.0


def load_photo(name: str = "china.jpg", size: int = 120) -> np.ndarray:
    """One of scikit-learn's bundled sample photos (PHOTOS; no download) as grayscale float64 (H, W) in [0, 1], the
    longer side resized to `size` px (Lanczos, via Pillow). Gray = 0.299 R + 0.587 G + 0.114 B (ITU-R 601)."""
    rgb = _sample_rgb(name)
    Image = _pil_image()
    size = _size("size", size, 8, 1024, " for a photo")
    gray = rgb @ np.array([0.299, 0.587, 0.114])
    h, w = gray.shape
    scale = size / max(h, w)
    new = (max(1, round(w * scale)), max(1, round(h * scale)))
    img = Image.fromarray(gray.astype(np.float32), mode="F").resize(new, Image.Resampling.LANCZOS)
    return np.clip(np.asarray(img, dtype=np.float64), 0.0, 1.0)


def resize_channels(x: Any, size: int) -> np.ndarray:
    """(C, H, W) -> (C, size, size): each channel resized on its own (Lanczos, via Pillow), then clipped to the
    input's range (Lanczos rings a little past sharp edges). A non-square input is centre-cropped to a square first."""
    x = as_chw(x)
    size = _size("size", size, 1, MAX_TRACE_INPUT, " for a side")
    Image = _pil_image()
    H, W = x.shape[1:]
    s = min(H, W)
    r0, c0 = (H - s) // 2, (W - s) // 2
    sq = x[:, r0:r0 + s, c0:c0 + s]
    out = np.stack([np.asarray(Image.fromarray(ch.astype(np.float32), mode="F").resize(
        (size, size), Image.Resampling.LANCZOS), dtype=np.float64) for ch in sq])
    return np.clip(out, x.min(), x.max())


def load_photo_rgb(name: str = "china.jpg", size: int = 32) -> np.ndarray:
    """A bundled photo as its three colour channels: float64 (3, size, size) in [0, 1] (R, G, B), centre-cropped to
    a square and resized (Lanczos)."""
    rgb = _sample_rgb(name)
    size = _size("size", size, 1, MAX_TRACE_INPUT, " for a photo")
    return resize_channels(np.moveaxis(rgb, -1, 0), size)


# ============================================================================================== K filters, C channels

def conv_param_count(K: int, C: int, F: int) -> int:
    """The learnable numbers of a conv layer with K filters of F×F over C input channels: every filter spans the
    full depth of its input, so K·C·F·F weights, plus one bias per filter: K·C·F·F + K."""
    K, C, F = _size("K", K, 1), _size("C", C, 1), _size("F", F, 1)
    return K * C * F * F + K


def param_count_text(K: int, C: int, F: int) -> str:
    """'K·C·F·F + K = 4·3·3·3 + 4 = 112 parameters'."""
    n = conv_param_count(K, C, F)
    return f"K·C·F·F + K = {K}·{C}·{F}·{F} + {K} = {n:,} parameter{'s' if n != 1 else ''}"


def conv_volume_shape(x_shape: Any, K: int, F: int, stride: int = 1, pad: int = 0, *, pads: range | None = None,
                      strides: range | None = None) -> tuple[int, int, int]:
    """The output volume of K F×F filters over an input of shape (C, H, W): (K, Hout, Wout), one activation map per
    filter whatever C is; each side is (N − F + 2P)/S + 1 (output_size: its refusals, and only hints within
    ``pads`` / ``strides``)."""
    shape = tuple(x_shape) if isinstance(x_shape, (tuple, list)) else ()
    if len(shape) != 3:
        raise ShapeError(f"the input volume's shape must be (C, H, W), got {x_shape!r}")
    _, H, W = (_size(n, v, 1) for n, v in zip(("C", "H", "W"), shape))
    K = _size("K", K, 1)
    return (K, output_size(H, F, pad, stride, pads=pads, strides=strides),
            output_size(W, F, pad, stride, pads=pads, strides=strides))


@dataclass(frozen=True)
class MultiConvFrame:
    """One output number out[k, i, j] of a conv layer with K filters over C channels. Window coordinates are in the
    padded input; the same window is taken from every channel."""

    index: int                    # frame number: filter k first, then row-major over the output map
    k: int                        # the filter, and so the output channel
    out_pos: tuple[int, int]      # (i, j) in map k
    origin: tuple[int, int]       # (row, col) of the window's top-left cell in the padded input: (i S, j S)
    window: np.ndarray            # (C, F, F) the input values under the filter, in every channel
    filt: np.ndarray              # (C, F, F) filter k
    products: np.ndarray          # (C, F, F) window * filt
    partials: np.ndarray          # (C,) partials[c] = window[c] · filt[c], the sum of channel c's products
    total: float                  # partials.sum()
    bias: float                   # b[k]
    value: float                  # total + bias = out[k, i, j]
    channel_texts: tuple[str, ...]  # per channel: '1·0 + 2·1 + ... = 3'
    text: str                     # 'out[k, i, j] = 3 + (-2) + 5 + 1 = 7' (the partials, then b[k])


def _multi_args(x: Any, w: Any, b: Any, stride: int, pad: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    x = as_chw(x, "x")
    wa = np.asarray(w)
    if wa.dtype.kind not in "biuf":
        raise ValueInputError(f"w must hold real numbers, got dtype {wa.dtype}")
    if wa.ndim != 4 or min(wa.shape) < 1:
        raise ShapeError(f"w must be (K, C, F, F): K filters, each C channels deep, got shape {np.shape(w)}")
    K, C = wa.shape[:2]
    if C != x.shape[0]:
        raise ShapeError(f"each filter is {C} channel{'s' if C != 1 else ''} deep (w {wa.shape}) but x has "
                         f"{x.shape[0]} (shape {x.shape}): a filter always extends through the full depth of its "
                         f"input, so w must be ({K}, {x.shape[0]}, F, F)")
    if wa.shape[2] != wa.shape[3]:
        raise ShapeError(f"this trace uses square filters, got w {wa.shape}")
    if K > 64 or C > 64:
        raise ShapeError(f"w of shape {wa.shape} is too large for this teaching trace: use at most 64 filters of at "
                         f"most 64 channels")
    if wa.shape[2] > MAX_TRACE_INPUT:
        raise ShapeError(f"a {wa.shape[2]}×{wa.shape[2]} filter is too large for this teaching trace")
    wa = wa.astype(np.float64)
    if not np.all(np.isfinite(wa)):
        raise ValueInputError("w holds NaN or infinite values")
    ba = np.asarray(b)
    if ba.dtype.kind not in "biuf":
        raise ValueInputError(f"b must hold real numbers, got dtype {ba.dtype}")
    if ba.shape != (K,):
        raise ShapeError(f"b must hold one bias per filter, shape ({K},), got shape {ba.shape}")
    ba = ba.astype(np.float64)
    if not np.all(np.isfinite(ba)):
        raise ValueInputError("b holds NaN or infinite values")
    S = _size("S", stride, 1, MAX_TRACE_STRIDE, " for a stride")
    P = _size("P", pad, 0, MAX_TRACE_PAD, " for a padding (F − 1 already lets a filter reach every input cell)")
    return x, wa, ba, S, P


def multi_conv_trace(x: Any, w: Any, b: Any, stride: int = 1, pad: int = 0, *, pads: range | None = None,
                     strides: range | None = None, max_terms: int = 27) -> list[MultiConvFrame]:
    """Every output number of the conv layer x (C, H, W) (or (H, W)), w (K, C, F, F), b (K,) as a frame: all of
    map 0 row by row, then map 1, ...: K·Hout·Wout frames. out[k, i, j] = Σ_c Σ_{p,q} xpad[c, iS + p, jS + q]
    w[k, c, p, q] + b[k], shown as C partial sums (one per channel) plus the bias. Raises ShapeError (from
    output_size, hints within ``pads`` / ``strides``) when the geometry is not exact."""
    x, w, b, S, P = _multi_args(x, w, b, stride, pad)
    K, C, F, _ = w.shape
    _, ho, wo = conv_volume_shape(x.shape, K, F, S, P, pads=pads, strides=strides)
    if K * ho * wo > MAX_TRACE_CELLS:
        raise ShapeError(f"{K} output map{'s' if K > 1 else ''} of {ho}×{wo} hold {K * ho * wo:,} numbers, too many "
                         f"to trace one by one (at most {MAX_TRACE_CELLS:,}): use fewer filters, a smaller input or "
                         f"a larger stride")
    xp = pad_input(x, P)
    frames = []
    for k in range(K):
        filt = w[k].copy()
        for i in range(ho):
            for j in range(wo):
                r, c = i * S, j * S
                win = xp[:, r:r + F, c:c + F].copy()
                prod = win * filt
                partials = prod.reshape(C, -1).sum(axis=1)
                total = float(partials.sum())
                value = total + float(b[k])
                texts = tuple(_products_text(win[ch], filt[ch], max_terms) + f" = {format_number(partials[ch])}"
                              for ch in range(C))
                text = (f"out[{k}, {i}, {j}] = " + " + ".join(_fmt_factor(v) for v in partials)
                        + f" + {_fmt_factor(b[k])} = {format_number(value)}")
                frames.append(MultiConvFrame(len(frames), k, (i, j), (r, c), win, filt, prod, partials, total,
                                             float(b[k]), value, texts, text))
    return frames


def multi_conv_output(x: Any, w: Any, b: Any, stride: int = 1, pad: int = 0) -> np.ndarray:
    """The same layer through simulator.functional.layers.conv_forward: out (K, Hout, Wout)."""
    x, w, b, S, P = _multi_args(x, w, b, stride, pad)
    conv_volume_shape(x.shape, w.shape[0], w.shape[2], S, P)
    out, _ = layers.conv_forward(x[None], w, b, S, P)
    return out[0]


def conv1x1_matmul(x: Any, w: Any, b: Any) -> np.ndarray:
    """A 1×1 convolution written as what it is, one matrix product per pixel: out[:, i, j] = W x[:, i, j] + b with
    W = w[:, :, 0, 0] (K × C), i.e. np.einsum('kc,chw->khw', W, x) + b. It mixes the C channels of each pixel into K
    new ones and never looks at a neighbour. x (C, H, W); w (K, C, 1, 1) or (K, C); b (K,)."""
    wa = np.asarray(w)
    if wa.ndim == 2:
        wa = wa[:, :, None, None]
    if wa.ndim != 4 or wa.shape[2:] != (1, 1):
        raise ShapeError(f"a 1×1 convolution's w is (K, C, 1, 1) or (K, C), got shape {np.shape(w)}")
    x, wa, b, _, _ = _multi_args(x, wa, b, 1, 0)
    return np.einsum("kc,chw->khw", wa[:, :, 0, 0], x) + b[:, None, None]


# Colour mixes for a 1×1 convolution over R, G, B: name -> (weights over (R, G, B), bias).
COLOUR_MIXES: dict[str, tuple[tuple[float, float, float], float]] = {
    "grey": ((0.299, 0.587, 0.114), 0.0),                  # ITU-R 601 luma, as load_photo
    "red − green": ((1.0, -1.0, 0.0), 0.0),
    "blue − yellow": ((-0.5, -0.5, 1.0), 0.0),
    "negative": ((-1 / 3, -1 / 3, -1 / 3), 1.0),            # 1 − mean: the bias at work
}
