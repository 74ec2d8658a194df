"""Widgets and helpers every lab shares: group boxes, the control column, captions, palettes, digit pixmaps. (Jobs
are gui.jobs.JobRunner's; forms are gui.forms'.)"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QGroupBox, QLabel, QScrollArea, QVBoxLayout, QWidget

from gui import plotting, theme  # noqa: F401  (plotting: cached axes for every lab's plots)

__all__ = ["CLASS_COLOURS", "ERROR_STYLE", "MUTED_STYLE", "PALETTE", "LazyPage", "control_column", "digit_pixmap",
           "group", "muted"]

MUTED_STYLE = f"color: {theme.MUTED_HEX};"
ERROR_STYLE = f"color: {theme.ERROR.name()};"

# Class colours (Tableau 10): strong for points, blended with white for the regions underneath.
CLASS_COLOURS = ("#4e79a7", "#e15759", "#59a14f", "#f28e2b", "#b07aa1", "#76b7b2", "#edc948", "#ff9da7",
                 "#9c755f", "#bab0ac")

# A qualitative palette (ColorBrewer Set1 with the yellow swapped for teal, plus olive/grey): distinct on the light map.
PALETTE = ("#e41a1c", "#377eb8", "#4daf4a", "#984ea3", "#ff7f00", "#a65628", "#f781bf", "#17becf", "#bcbd22",
           "#555555")

# ================================================================================================== widgets

def digit_pixmap(img: np.ndarray, size: int = 64) -> QPixmap:
    """An 8x8 digit (values 0..16) as dark ink on white, scaled up with sharp cells."""
    a = np.asarray(img, dtype=np.float64).reshape(8, 8)
    g = np.ascontiguousarray(np.round(255.0 - np.clip(a / 16.0, 0, 1) * 225.0).astype(np.uint8))
    qimg = QImage(g.data, 8, 8, 8, QImage.Format.Format_Grayscale8).copy()
    return QPixmap.fromImage(qimg.scaled(size, size, Qt.AspectRatioMode.IgnoreAspectRatio,
                                         Qt.TransformationMode.FastTransformation))


def group(title: str, layout_or_widget: Any) -> QGroupBox:
    """A titled group box around a layout, or around one widget (in a VBox with margins 6)."""
    g = QGroupBox(title)
    if isinstance(layout_or_widget, QWidget):
        lay = QVBoxLayout()
        lay.setContentsMargins(6, 6, 6, 6)
        lay.addWidget(layout_or_widget)
        g.setLayout(lay)
    else:
        g.setLayout(layout_or_widget)
    return g


def muted(text: str, point_size: float | None = None) -> QLabel:
    """A word-wrapped caption in the muted text colour (optionally at a given font size)."""
    lab = QLabel(text)
    lab.setStyleSheet(MUTED_STYLE if point_size is None else f"{MUTED_STYLE} font-size: {point_size}pt;")
    lab.setWordWrap(True)
    return lab


def control_column(widgets: Any, width: int | None = None, min_width: int | None = None) -> QScrollArea:
    """The lab's left control column: the widgets stacked (margins 6) above a stretch, in a frameless scroll area
    that only scrolls vertically; ``width`` fixes its width, ``min_width`` sets a minimum."""
    column = QWidget()
    col = QVBoxLayout(column)
    col.setContentsMargins(6, 6, 6, 6)
    for w in widgets:
        col.addWidget(w)
    col.addStretch(1)
    scroll = QScrollArea()
    scroll.setWidget(column)
    scroll.setWidgetResizable(True)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    scroll.setFrameShape(QScrollArea.Shape.NoFrame)
    if width is not None:
        scroll.setFixedWidth(width)
    if min_width is not None:
        scroll.setMinimumWidth(min_width)
    return scroll


class LazyPage(QWidget):
    """A tab page whose content is built the first time it is shown (or asked for), so that opening a lab with
    several sub-tabs costs only the visible one's widgets. ``page()`` builds it if needed and returns it;
    ``on_built(page)`` runs once, right after the content is in place."""

    def __init__(self, factory: Callable[[], QWidget], on_built: Callable[[QWidget], None] | None = None,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self._factory, self._on_built = factory, on_built
        self._page: QWidget | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)

    @property
    def is_built(self) -> bool:
        return self._page is not None

    def page(self) -> QWidget:
        if self._page is None:
            self._page = self._factory()
            self.layout().addWidget(self._page)
            self._page.show()           # a child added to a widget being shown is not shown with it
            if self._on_built is not None:
                self._on_built(self._page)
        return self._page

    def showEvent(self, event) -> None:  # noqa: N802  (Qt's name)
        self.page()
        super().showEvent(event)
