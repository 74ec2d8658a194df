"""A tensor as a learner reads it: a number for a scalar, a heatmap with a colour bar (and the numbers when small)
for a vector or matrix. Higher-rank tensors fold their leading axes into rows."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QLinearGradient, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from gui.theme import as_matrix, diverging_rgb, heatmap_image

BAR_W = 14                 # the colour bar's width
NUMBERS_UP_TO = 8          # cells per side for which the numbers are drawn inside the cells
MIN_POINT_SIZE = 6.5       # smaller numbers are not readable: the cells then show their colour only
MAX_POINT_SIZE = 9.0
DARK_INK, LIGHT_INK = (31, 36, 48), (255, 255, 255)   # #1f2430 and white: whichever reads better on the cell


def cell_text(x: float, digits: int = 2) -> str:
    """A cell's number, short enough for a heatmap cell: ``digits`` significant digits between 0.01 and 100
    (-0.092, 1.5, 12 with 2; -0.09, 2 with 1), one significant digit in compact exponent form outside it (2e-3, 3e2),
    exact zeros as 0. Values and gradients are written by this one function."""
    x = float(x)
    if x == 0:
        return "0"
    if not math.isfinite(x):
        return str(x)
    text = f"{x:.{digits}g}"
    if "e" in text or abs(float(text)) < 0.01:      # rounding may carry 99.7 to 1e+02
        mantissa, exponent = f"{x:.0e}".split("e")
        text = f"{mantissa}e{int(exponent)}"
    return text


def _relative_luminance(rgb) -> float:
    """WCAG 2 relative luminance of an sRGB colour (0..255 per channel)."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return float(lin @ np.array([0.2126, 0.7152, 0.0722]))


def contrast_ratio(a, b) -> float:
    """WCAG contrast ratio of two sRGB colours: 1 (none) to 21 (black on white)."""
    la, lb = sorted((_relative_luminance(a), _relative_luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def ink_for(background) -> tuple[int, int, int]:
    """Dark or white text, whichever contrasts more with the cell's colour (at least 3.9:1 on the diverging map)."""
    return max((DARK_INK, LIGHT_INK), key=lambda ink: contrast_ratio(ink, background))


@dataclass(frozen=True)
class CellNumbers:
    """The numbers a TensorView draws at its current size: one text and one ink colour per cell (rows x cols of the
    displayed matrix), the point size, and the cell's width and height in pixels."""

    texts: list[list[str]]
    inks: list[list[tuple[int, int, int]]]
    point_size: float
    cell_w: float
    cell_h: float
    digits: int


def fit_numbers(m: np.ndarray, font: QFont, max_cell_w: float, cell_h: float) -> CellNumbers | None:
    """The largest readable way to write every number of ``m`` inside its cell: 2 significant digits at the
    largest point size from MAX_POINT_SIZE down to MIN_POINT_SIZE whose widest number fits ``max_cell_w`` (the cell
    grows wider than tall when the numbers need it), else 1 significant digit the same way; None when even that
    does not fit (too many or too small cells: colour only). The same rule for every tensor, values and gradients."""
    rows, cols = m.shape
    if max(rows, cols) > NUMBERS_UP_TO or m.size == 0:
        return None
    f = QFont(font)
    for digits in (2, 1):
        texts = [[cell_text(m[i, j], digits) for j in range(cols)] for i in range(rows)]
        size = min(MAX_POINT_SIZE, cell_h / 3.2)
        while size >= MIN_POINT_SIZE:
            f.setPointSizeF(size)
            fm = QFontMetricsF(f)
            need = max(fm.horizontalAdvance(t) for row in texts for t in row) + 6   # 3 px either side
            if need <= max_cell_w and fm.height() <= cell_h - 2:
                rgb = diverging_rgb(m)
                inks = [[ink_for(rgb[i, j]) for j in range(cols)] for i in range(rows)]
                return CellNumbers(texts, inks, size, max(cell_h, need), cell_h, digits)
            size -= 0.5
    return None


class TensorView(QWidget):
    """Draws one ndarray: a heatmap with a colour bar, numbers inside the cells when they fit (values and gradients
    alike). ``numbers()``: what the cells show at the current size (None: colour only)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._value: np.ndarray | None = None
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)
        self.setMinimumHeight(40)

    def set_value(self, value: np.ndarray | None) -> None:
        self._value = None if value is None else np.asarray(value, dtype=np.float64)
        if self._value is not None and self._value.ndim >= 1:
            m = as_matrix(self._value)
            self.setToolTip(np.array2string(self._value, precision=4, threshold=200, suppress_small=True))
            rows = m.shape[0]
            cell = 32 if max(m.shape) <= NUMBERS_UP_TO else max(4, min(14, 220 // max(m.shape)))
            self.setFixedHeight(min(rows * cell, 260) + 24)
        else:
            self.setToolTip("")
            self.setFixedHeight(28)
        self.update()

    def value(self) -> np.ndarray | None:
        return self._value

    def _layout(self) -> tuple[np.ndarray, float, float, CellNumbers | None]:
        """The displayed matrix, the cell width and height, and the numbers (or None) at the current size."""
        m = as_matrix(self._value)
        rows, cols = m.shape
        avail_w = self.width() - BAR_W - 46
        avail_h = self.height() - 20
        cell_h = min(avail_w / cols, avail_h / rows, 40.0)
        numbers = fit_numbers(m, self.font(), avail_w / cols, cell_h) if cell_h > 0 else None
        return m, (numbers.cell_w if numbers else cell_h), cell_h, numbers

    def numbers(self) -> CellNumbers | None:
        """The numbers drawn in the cells at the current size; None for a scalar, nothing, or colour only."""
        if self._value is None or self._value.ndim == 0 or self._value.size == 0:
            return None
        return self._layout()[3]

    def sizeHint(self) -> QSize:
        return QSize(260, self.height())

    def paintEvent(self, _event) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.Antialiasing)
        v = self._value
        if v is None:
            p.setPen(QColor("#8a8f98"))
            p.drawText(self.rect(), Qt.AlignVCenter | Qt.AlignLeft, "not computed yet")
            return
        if v.ndim == 0:
            f = QFont(self.font())
            f.setPointSizeF(f.pointSizeF() * 1.25)
            f.setBold(True)
            p.setFont(f)
            p.setPen(QColor("#1f2430"))
            p.drawText(self.rect(), Qt.AlignVCenter | Qt.AlignLeft, f"{float(v):.6g}")
            return
        if v.size == 0:
            return
        m, cell_w, cell_h, numbers = self._layout()
        rows, cols = m.shape
        grid = QRectF(0, 2, cell_w * cols, cell_h * rows)
        p.drawImage(grid, heatmap_image(m, cols, rows))
        limit = float(np.max(np.abs(m))) if m.size else 0.0
        if numbers is not None:
            f = QFont(self.font())
            f.setPointSizeF(numbers.point_size)
            p.setFont(f)
            for i in range(rows):
                for j in range(cols):
                    p.setPen(QColor(*numbers.inks[i][j]))
                    p.drawText(QRectF(grid.x() + j * cell_w, grid.y() + i * cell_h, cell_w, cell_h), Qt.AlignCenter,
                               numbers.texts[i][j])
        p.setPen(QPen(QColor("#c9ced6"), 1))
        p.setBrush(Qt.NoBrush)
        p.drawRect(grid)
        # colour bar, symmetric around zero
        bar = QRectF(grid.right() + 10, grid.top(), BAR_W, max(grid.height(), 24))
        grad = QLinearGradient(bar.topLeft(), bar.bottomLeft())
        top, mid, bottom = diverging_rgb(np.array([1.0, 0.0, -1.0]))  # the cells' own colour map
        grad.setColorAt(0.0, QColor(*map(int, top)))
        grad.setColorAt(0.5, QColor(*map(int, mid)))
        grad.setColorAt(1.0, QColor(*map(int, bottom)))
        p.fillRect(bar, grad)
        p.drawRect(bar)
        f = QFont(self.font())
        f.setPointSizeF(7.5)
        p.setFont(f)
        p.setPen(QColor("#5b6270"))
        p.drawText(QRectF(bar.right() + 3, bar.top() - 2, 44, 12), Qt.AlignLeft, f"{limit:.2g}")
        p.drawText(QRectF(bar.right() + 3, bar.bottom() - 10, 44, 12), Qt.AlignLeft, f"{-limit:.2g}")
        shape = "×".join(str(n) for n in v.shape)
        extra = "" if v.ndim <= 2 else f"  (shown as {rows}×{cols})"
        p.drawText(QRectF(0, grid.bottom() + 3, self.width(), 14), Qt.AlignLeft, f"shape {shape}{extra}")
