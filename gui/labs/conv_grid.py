"""The Convolution lab's grid widget and sum box, shared by its one-filter tabs (gui.labs.conv_lab) and its
multi-channel view (gui.labs.conv_multichannel): ``GridView`` paints one 2-D array as cells (numbers or a picture,
padding shaded, cells not computed yet hidden, windows outlined); ``sum_box`` is the white box that spells out a sum."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPen
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget

from gui import theme
from simulator.labs.conv_mechanics import format_number

__all__ = ["ACCENT", "ERROR_STYLE", "GridView", "OK_STYLE", "PICTURES", "sum_box"]

ACCENT = QColor(theme.ACCENT_HEX)
PAD_FILL = QColor("#eceef2")
CELL_LINE = QColor("#d3d8df")
HIDDEN_FILL = QColor("#fafbfc")
MARK = QColor("#e08a00")
TINTS = {"R": QColor("#d0312d"), "G": QColor("#2e9e44"), "B": QColor("#2f64d0")}
PICTURES = ("R", "G", "B", "grey", "signed")     # colour schemes that paint a picture: no cell lines
ERROR_STYLE = (f"color: {theme.ERROR.name()}; background: #fbeaea; border: 1px solid #f0c9c6; border-radius: 4px; "
               f"padding: 6px;")
OK_STYLE = (f"color: {theme.INK_HEX}; background: #eef5ee; border: 1px solid #cfe3d2; border-radius: 4px; "
            f"padding: 6px;")


def sum_box(point_size: float = 10.0) -> QLabel:
    """The white, bordered box under a conv picture that spells out the current sum: monospace, selectable, top-left
    aligned, word-wrapped, as wide as its place allows (it never widens the page)."""
    lab = QLabel()
    lab.setWordWrap(True)
    lab.setFont(theme.font(point_size, mono=True))
    lab.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    lab.setMinimumHeight(60)
    lab.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
    lab.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
    lab.setStyleSheet("background: #ffffff; border: 1px solid #dde1e7; border-radius: 4px; padding: 7px;")
    return lab


class GridView(QWidget):
    """One 2-D array painted as cells with QPainter. ``values`` (H, W) include any padding ring of width ``pad``
    (shaded, its inner edge dashed).

    ``colours``: "neutral" (white cells: the numbers are the message), "diverging" (subtle red / blue by sign),
    "R", "G", "B", "grey" (a picture: black up to the colour over ``levels``) or "signed" (a picture on a
    blue-white-red scale); pictures have no cell lines. Numbers are written when ``numbers`` is on and the cells are
    large enough (``shows_numbers()``), in a font fitted to the longest. ``shown`` (bool, like ``values``) hides the
    cells not computed yet; ``windows`` (r, c, h, w, colour, filled) are outlined, inside their cells where numbers
    are written, around them on a white halo on a picture (visible on dark pixels, never hiding a small cell);
    ``marks`` (r, c) are framed; ``current`` frames the whole grid and its title in the accent colour; ``footer`` is a
    line under the grid. ``align``: "top" (grids side by side start level) or "centre" (in the widget's height).

    Signals: cell_clicked(row, col, button) in unpadded coordinates (only when editable and not on padding).
    """

    cell_clicked = Signal(int, int, object)

    def __init__(self, title: str = "", colours: str = "neutral", max_cell: int = 46, *, align: str = "top",
                 hint_cell: int = 36, parent: QWidget | None = None):
        super().__init__(parent)
        self.title = title
        self.setToolTip(title)
        self.colours = colours
        self.max_cell = max_cell
        self.align = align
        self.hint_cell = hint_cell
        self.values = np.zeros((0, 0))
        self.pad = 0
        self.levels = (0.0, 1.0)
        self.numbers = True
        self.shown: np.ndarray | None = None        # bool mask: cells with a value so far (None: all)
        self.windows: list[tuple[int, int, int, int, QColor, bool]] = []
        self.marks: set[tuple[int, int]] = set()
        self.current = False
        self.footer = ""
        self.editable = False
        self.setMinimumSize(QSize(120, 120))
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self._font = theme.font(9.5, mono=True)
        self._title_font = theme.font(9.5, QFont.Weight.DemiBold)

    def set_values(self, values: np.ndarray, pad: int = 0, shown: np.ndarray | None = None, *,
                   windows: list | None = None, colours: str | None = None,
                   levels: tuple[float, float] | None = None, numbers: bool | None = None,
                   current: bool | None = None, title: str | None = None, footer: str | None = None) -> None:
        """New values (with their padding ring and shown mask); each keyword given replaces that part of the look,
        each left out keeps it."""
        self.values = np.asarray(values, dtype=np.float64)
        self.pad = int(pad)
        self.shown = shown
        if windows is not None:
            self.windows = list(windows)
        if colours is not None:
            self.colours = colours
        if levels is not None:
            self.levels = (float(levels[0]), float(levels[1]))
        if numbers is not None:
            self.numbers = bool(numbers)
        if current is not None:
            self.current = bool(current)
        if title is not None:
            self.title = title
            self.setToolTip(title)
        if footer is not None:
            self.footer = footer
        self.update()

    def set_windows(self, windows: list[tuple[int, int, int, int, QColor, bool]]) -> None:
        self.windows = list(windows)
        self.update()

    def set_marks(self, marks: set[tuple[int, int]]) -> None:
        self.marks = set(marks)
        self.update()

    # ---- geometry
    def _layout(self) -> tuple[float, float, float]:
        """(x0, y0, cell): the grid centred across, at the top (or centred) below its title, the footer under it."""
        rows, cols = self.values.shape if self.values.size else (1, 1)
        top, bottom = 24.0, (20.0 if self.footer else 4.0)
        cell = min((self.width() - 8) / cols, (self.height() - top - bottom) / rows, float(self.max_cell))
        cell = max(cell, 2.0)
        y0 = top
        if self.align == "centre":
            y0 += max(0.0, (self.height() - top - bottom - cell * rows) / 2)
        return (self.width() - cell * cols) / 2, y0, cell

    def cell_rect(self, r: int, c: int) -> QRectF:
        x0, y0, cell = self._layout()
        return QRectF(x0 + c * cell, y0 + r * cell, cell, cell)

    def title_width(self, text: str) -> int:
        """The width this grid needs to show ``text`` as its title in full (longer titles are elided)."""
        return QFontMetrics(self._title_font).horizontalAdvance(text) + 8

    def shows_numbers(self) -> bool:
        """Whether the numbers are written: asked for, and cells of at least 15 px to hold them."""
        return self.numbers and self._layout()[2] >= 15

    def sizeHint(self) -> QSize:  # noqa: N802
        rows, cols = self.values.shape if self.values.size else (5, 5)
        return QSize(int(min(cols, 10) * self.hint_cell + 16), int(min(rows, 10) * self.hint_cell + 46))

    # ---- painting
    def _fill(self, v: float, scale: float) -> QColor:
        if self.colours in TINTS or self.colours == "grey":
            lo, hi = self.levels
            t = 0.0 if hi <= lo else min(1.0, max(0.0, (v - lo) / (hi - lo)))
            if self.colours == "grey":
                g = round(255 * t)
                return QColor(g, g, g)
            tint = TINTS[self.colours]
            return QColor(round(tint.red() * t), round(tint.green() * t), round(tint.blue() * t))
        if self.colours == "neutral" or scale == 0:
            return QColor("#ffffff")
        strength = 1.0 if self.colours == "signed" else 0.42   # numbers: subtle, at most 42% of the way
        t = max(-1.0, min(1.0, v / scale)) * strength
        target = QColor("#c8372d") if t >= 0 else QColor("#3b6fb6")
        a = abs(t)
        return QColor(round(255 + a * (target.red() - 255)), round(255 + a * (target.green() - 255)),
                      round(255 + a * (target.blue() - 255)))

    def paintEvent(self, event) -> None:  # noqa: N802
        p = QPainter(self)
        x0, y0, cell = self._layout()
        p.setFont(self._title_font)
        p.setPen(ACCENT if self.current else QColor(theme.INK_HEX))
        title = p.fontMetrics().elidedText(self.title, Qt.TextElideMode.ElideRight, max(10, self.width() - 4))
        p.drawText(QRectF(0, y0 - 22, self.width(), 20), Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignVCenter,
                   title)
        if not self.values.size:
            p.setPen(QColor(theme.MUTED_HEX))
            p.drawText(QRectF(0, 24, self.width(), self.height() - 24), Qt.AlignmentFlag.AlignCenter, "—")
            p.end()
            return
        rows, cols = self.values.shape
        P = self.pad
        inner = self.values[P:rows - P, P:cols - P] if P else self.values
        scale = float(np.max(np.abs(inner))) if inner.size else 0.0     # the ring's numbers do not set the colours
        numbers = self.shows_numbers()
        font = QFont(self._font)
        font.setPointSizeF(max(6.5, min(10.5, cell * 0.26)))
        if numbers:                            # the longest number must fit its cell: shrink the font if not
            drawn = self.values if self.shown is None else self.values[self.shown]
            longest = max((format_number(v) for v in drawn.ravel()), key=len, default="0")
            wide = QFontMetrics(font).horizontalAdvance(longest)
            if wide > cell - 4:
                font.setPointSizeF(max(6.0, font.pointSizeF() * (cell - 4) / wide))
        p.setFont(font)
        lines = self.colours not in PICTURES and cell >= 6
        for r in range(rows):
            for c in range(cols):
                rect = QRectF(x0 + c * cell, y0 + r * cell, cell, cell)
                is_pad = P > 0 and (r < P or c < P or r >= rows - P or c >= cols - P)
                shown = self.shown is None or bool(self.shown[r, c])
                fill = PAD_FILL if is_pad else (self._fill(self.values[r, c], scale) if shown else HIDDEN_FILL)
                p.fillRect(rect, fill)
                if lines or (not shown and cell >= 6):
                    p.setPen(QPen(CELL_LINE, 1))
                    p.drawRect(rect)
                if numbers and shown:
                    p.setPen(QColor(theme.MUTED_HEX) if is_pad else QColor(theme.INK_HEX))
                    p.drawText(rect, Qt.AlignmentFlag.AlignCenter, format_number(self.values[r, c]))
        if P:                                  # the real (unpadded) grid's edge
            p.setPen(QPen(QColor("#8d97a5"), 1.2, Qt.PenStyle.DashLine))
            p.drawRect(QRectF(x0 + P * cell, y0 + P * cell, (cols - 2 * P) * cell, (rows - 2 * P) * cell))
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        for (r, c) in self.marks:
            if 0 <= r < rows and 0 <= c < cols:
                p.setPen(QPen(MARK, 2.4))
                p.drawRect(self.cell_rect(r, c).adjusted(2, 2, -2, -2))
        for (r, c, h, w, colour, filled) in self.windows:
            rect = QRectF(x0 + c * cell, y0 + r * cell, w * cell, h * cell)
            if filled:
                fill = QColor(colour)
                fill.setAlpha(40)
                p.fillRect(rect, fill)
            if numbers:                        # inside the window's cells: neighbouring windows stay apart
                p.setPen(QPen(colour, 2.6))
                p.drawRect(rect.adjusted(1, 1, -1, -1))
            else:
                p.setPen(QPen(QColor("#ffffff"), 4.4))
                p.drawRect(rect.adjusted(-1, -1, 1, 1))
                p.setPen(QPen(colour, 2.4))
                p.drawRect(rect.adjusted(-1, -1, 1, 1))
        if self.current:
            p.setPen(QPen(ACCENT, 2.0))
            p.drawRect(QRectF(x0 - 3, y0 - 3, cols * cell + 6, rows * cell + 6))
        if self.footer:
            p.setFont(self._font)
            p.setPen(QColor(theme.INK_HEX))
            p.drawText(QRectF(0, y0 + rows * cell + 2, self.width(), 18),
                       Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignVCenter, self.footer)
        p.end()

    def mousePressEvent(self, event) -> None:  # noqa: N802
        if not self.editable or not self.values.size:
            return
        x0, y0, cell = self._layout()
        pos = event.position()
        c, r = int((pos.x() - x0) // cell), int((pos.y() - y0) // cell)
        rows, cols = self.values.shape
        P = self.pad
        if P <= r < rows - P and P <= c < cols - P:
            self.cell_clicked.emit(r - P, c - P, event.button())
