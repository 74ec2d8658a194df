"""Colour spaces for the colourisation task: sRGB <-> CIE L*a*b* (D65), vectorised numpy.

    lab = rgb_to_lab(rgb)          # (..., 3) sRGB in [0, 1] -> (..., 3) L in [0, 100], a and b roughly in [-128, 128]
    rgb = lab_to_rgb(lab)          # back, clipped to [0, 1] (clip=False: the raw values, possibly outside)

The path, each step invertible:

1. sRGB gamma (IEC 61966-2-1): a stored value c in [0, 1] is linear light c / 12.92 for c <= 0.04045, else
   ((c + 0.055) / 1.055) ** 2.4.
2. Linear RGB -> CIE XYZ with the sRGB primaries and the D65 white point (the matrix ``RGB_TO_XYZ``, as published by
   Bruce Lindbloom). The white point ``WHITE_D65`` is taken as the matrix's row sums (X, Y, Z of RGB = (1, 1, 1):
   0.95047, 1.0, 1.08883 to seven digits), so white maps to exactly L = 100, a = b = 0.
3. XYZ -> L*a*b* (CIE 1976): with t = X/Xn, Y/Yn, Z/Zn and f(t) = t^(1/3) above (6/29)^3, else the linear piece
   t / (3 (6/29)^2) + 4/29 (which keeps f continuous with a continuous slope):
   L = 116 f(Y/Yn) - 16, a = 500 (f(X/Xn) - f(Y/Yn)), b = 200 (f(Y/Yn) - f(Z/Zn)).

L is lightness (0 black, 100 white); a runs from green (negative) to red/magenta (positive), b from blue (negative)
to yellow (positive). A grey has a = b = 0, so removing colour from an image is keeping L alone.

Out of gamut: not every (L, a, b) triple is a colour sRGB can show (L = 50 with a = b = 120 is far too saturated; a
predicted a, b beside a given L often lands outside as well). ``lab_to_rgb`` clips each channel of the result to
[0, 1] after the gamma (``clip=True``, the default: the nearest displayable value per channel, which can shift hue
a little), or returns the unclipped values (``clip=False``; the gamma is then extended to negative values as an odd
function, c -> -gamma(-c), so every finite Lab gives finite values, and the round trip
rgb_to_lab(lab_to_rgb(lab, clip=False)) == lab is exact for in-gamut colours: rgb_to_lab refuses values outside
[0, 1]). ``in_gamut(lab)`` says which are shown without clipping.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from simulator.core.errors import ShapeError, ValueInputError

__all__ = ["RGB_TO_XYZ", "WHITE_D65", "XYZ_TO_RGB", "in_gamut", "lab_to_rgb", "rgb_to_gray_lab", "rgb_to_lab"]

# linear sRGB -> XYZ, D65 (Lindbloom, "RGB/XYZ Matrices", sRGB)
RGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375],
                       [0.2126729, 0.7151522, 0.0721750],
                       [0.0193339, 0.1191920, 0.9503041]])
XYZ_TO_RGB = np.linalg.inv(RGB_TO_XYZ)
WHITE_D65 = RGB_TO_XYZ.sum(axis=1)          # (0.95047, 1.0000001, 1.0888300): XYZ of RGB white

_DELTA = 6.0 / 29.0
_GAMMA_KNEE = 0.04045                      # stored value where the sRGB curve turns from linear to power
_LINEAR_KNEE = _GAMMA_KNEE / 12.92         # the same point in linear light


def _colours(x: Any, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype.kind not in "biuf":
        raise ValueInputError(f"{name} must hold real numbers, got dtype {a.dtype}")
    if a.ndim == 0 or a.shape[-1] != 3:
        raise ShapeError(f"{name} must have 3 channels on its last axis (..., 3), got shape {a.shape}")
    a = a.astype(np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueInputError(f"{name} holds NaN or infinite values")
    return a


def _srgb_to_linear(c: np.ndarray) -> np.ndarray:
    return np.where(c <= _GAMMA_KNEE, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(c: np.ndarray) -> np.ndarray:
    """The inverse gamma, extended to negative values as an odd function (only clip=False ever sees them)."""
    s, m = np.sign(c), np.abs(c)
    return s * np.where(m <= _LINEAR_KNEE, 12.92 * m, 1.055 * m ** (1.0 / 2.4) - 0.055)


def _f(t: np.ndarray) -> np.ndarray:
    return np.where(t > _DELTA ** 3, np.cbrt(t), t / (3.0 * _DELTA ** 2) + 4.0 / 29.0)


def _f_inv(f: np.ndarray) -> np.ndarray:
    return np.where(f > _DELTA, f ** 3, 3.0 * _DELTA ** 2 * (f - 4.0 / 29.0))


def rgb_to_lab(rgb: Any) -> np.ndarray:
    """sRGB (..., 3) with values in [0, 1] -> CIE L*a*b* (..., 3) float64 (D65). ValueInputError for values outside
    [0, 1] (8-bit images: divide by 255 first), ShapeError without 3 channels on the last axis."""
    c = _colours(rgb, "rgb")
    if c.size and (c.min() < 0.0 or c.max() > 1.0):
        raise ValueInputError(f"rgb values must lie in [0, 1], got {c.min():.4g}..{c.max():.4g} (8-bit images: "
                              f"divide by 255 first)")
    xyz = _srgb_to_linear(c) @ RGB_TO_XYZ.T
    fx, fy, fz = (_f(xyz[..., i] / WHITE_D65[i]) for i in range(3))
    return np.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1)


def _lab_to_linear(lab: np.ndarray) -> np.ndarray:
    fy = (lab[..., 0] + 16.0) / 116.0
    fx = fy + lab[..., 1] / 500.0
    fz = fy - lab[..., 2] / 200.0
    xyz = np.stack([_f_inv(f) * w for f, w in zip((fx, fy, fz), WHITE_D65)], axis=-1)
    return xyz @ XYZ_TO_RGB.T


def lab_to_rgb(lab: Any, clip: bool = True) -> np.ndarray:
    """CIE L*a*b* (..., 3) (D65) -> sRGB (..., 3) float64. ``clip`` (default) clips each channel to [0, 1], the
    nearest displayable value for out-of-gamut colours; ``clip=False`` returns the raw values (outside [0, 1] where
    the colour is out of gamut), so that rgb_to_lab(lab_to_rgb(lab, clip=False)) == lab for in-gamut colours."""
    if not isinstance(clip, (bool, np.bool_)):
        raise ValueInputError(f"clip must be true or false, got {clip!r}")
    rgb = _linear_to_srgb(_lab_to_linear(_colours(lab, "lab")))
    return np.clip(rgb, 0.0, 1.0) if clip else rgb


def in_gamut(lab: Any, tol: float = 1e-9) -> np.ndarray:
    """(...,) bool: which Lab colours sRGB shows without clipping (every channel of the raw RGB in [0, 1] within
    ``tol``)."""
    rgb = lab_to_rgb(lab, clip=False)
    return np.all((rgb >= -tol) & (rgb <= 1.0 + tol), axis=-1)


def rgb_to_gray_lab(rgb: Any) -> np.ndarray:
    """The colour removed, the lightness kept: sRGB (..., 3) -> sRGB (..., 3) grey with the same L (a = b = 0)."""
    lab = rgb_to_lab(rgb)
    lab[..., 1:] = 0.0
    return lab_to_rgb(lab)
