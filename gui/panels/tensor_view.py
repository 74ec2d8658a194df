"""A tensor as a learner reads it: a number for a scalar, a heatmap with a colour bar (and the numbers when small)
for a vector or matrix. Higher-rank tensors fold their leading axes into rows."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QLinearGradient, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from gui.theme import as_matrix, diverging_rgb, heatmap_image

NUMBERS_UP_TO = 8  # cells per side for which the numbers are drawn inside the cells


def _cell_text(x: float) -> str:
    """At most about four characters: 0.25, -1.2, 3e+02; exact zeros as 0."""
    if x == 0:
        return "0"
    if abs(x) >= 100 or abs(x) < 0.01:
        return f"{x:.0e}".replace("e-0", "e-").replace("e+0", "e")
    return f"{x:.2g}"


class TensorView(QWidget):
    """Draws one ndarray: a heatmap with a colour bar, numbers inside the cells when there are few of them."""

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
        m = as_matrix(v)
        rows, cols = m.shape
        if m.size == 0:
            return
        bar_w = 14
        avail_w = self.width() - bar_w - 46
        avail_h = self.height() - 20
        cell = min(avail_w / cols, avail_h / rows, 40.0)
        grid = QRectF(0, 2, cell * cols, cell * rows)
        p.drawImage(grid, heatmap_image(m, cols, rows))
        limit = float(np.max(np.abs(m))) if m.size else 0.0
        if max(rows, cols) <= NUMBERS_UP_TO and cell >= 22:
            texts = [[_cell_text(m[i, j]) for j in range(cols)] for i in range(rows)]
            f = QFont(self.font())
            size = min(9.0, cell / 3.2)
            widest = max(len(t) for row in texts for t in row)
            while size > 6.0:  # shrink until the widest number fits its cell
                f.setPointSizeF(size)
                if QFontMetricsF(f).horizontalAdvance("8" * widest + "-") <= cell - 2:
                    break
                size -= 0.5
            p.setFont(f)
            fits = QFontMetricsF(f).horizontalAdvance("8" * widest) <= cell - 1
            for i in range(rows):
                for j in range(cols):
                    if not fits:
                        break
                    strong = limit > 0 and abs(m[i, j]) / limit > 0.6
                    p.setPen(QColor("#ffffff") if strong else QColor("#1f2430"))
                    p.drawText(QRectF(grid.x() + j * cell, grid.y() + i * cell, cell, cell), Qt.AlignCenter,
                               texts[i][j])
        p.setPen(QPen(QColor("#c9ced6"), 1))
        p.setBrush(Qt.NoBrush)
        p.drawRect(grid)
        # colour bar, symmetric around zero
        bar = QRectF(grid.right() + 10, grid.top(), bar_w, max(grid.height(), 24))
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
