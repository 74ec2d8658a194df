"""Widgets and helpers every lab shares: group boxes, the control column, captions, palettes, digit pixmaps. (Jobs
are gui.jobs.JobRunner's; forms are gui.forms'.)"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
from PySide6.QtCore import QEvent, QSize, Qt, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (QGroupBox, QLabel, QScrollArea, QSizePolicy, QSplitter, QStackedWidget, QVBoxLayout,
                               QWidget)

from gui import plotting, theme  # noqa: F401  (plotting: cached axes for every lab's plots)

__all__ = ["CLASS_COLOURS", "ERROR_STYLE", "MUTED_STYLE", "PALETTE", "FlowSplitter", "LazyPage", "control_column",
           "digit_pixmap", "group", "min_width", "muted", "size_to_current_page"]

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


# ================================================================================================== fitting a page

def min_width(w: QWidget) -> int:
    """The width a layout never gives ``w`` less of (Qt's qSmartMinSize): an explicit minimum width wins, else the
    minimum size hint (the size hint for a policy that cannot shrink); 0 for an Ignored policy."""
    if w.minimumWidth() > 0:
        return min(w.minimumWidth(), w.maximumWidth())
    policy = w.sizePolicy().horizontalPolicy()
    if policy == QSizePolicy.Policy.Ignored:
        return 0
    hint = w.minimumSizeHint().width()
    if not policy.value & QSizePolicy.PolicyFlag.ShrinkFlag.value:
        hint = max(hint, w.sizeHint().width())
    return max(0, min(hint, w.maximumWidth()))


def size_to_current_page(stack: QStackedWidget) -> None:
    """A stacked widget is as large as its largest page, shown or not; after this it asks only for the room of the
    page it shows (the others are Ignored while hidden), so a wide hidden page never widens a narrow window. (A
    page's explicit minimum size still counts: Qt puts it above any policy.)"""
    def follow(index: int) -> None:
        for i in range(stack.count()):
            page = stack.widget(i)
            policy = QSizePolicy.Policy.Preferred if i == index else QSizePolicy.Policy.Ignored
            page.setSizePolicy(policy, policy)
        stack.updateGeometry()
    stack.currentChanged.connect(follow)
    follow(stack.currentIndex())


class FlowSplitter(QSplitter):
    """Panes side by side while the splitter is at least as wide as they need (the sum of their minimum widths, or
    ``side_by_side_at``), one above the other when it is narrower (a laptop, the lesson dock open): no pane is ever
    squeezed below its minimum width. ``side`` and ``stacked`` are the panes' shares of the room (one number per
    pane), kept through resizes until the user drags a handle, and applied again whenever the arrangement changes.
    ``arrangement_changed`` (True: stacked) lets the owner rearrange inside the panes."""

    arrangement_changed = Signal(bool)

    def __init__(self, side: tuple[float, ...], stacked: tuple[float, ...] | None = None,
                 side_by_side_at: int | None = None, parent: QWidget | None = None):
        super().__init__(Qt.Orientation.Horizontal, parent)
        self.setChildrenCollapsible(False)
        self._side, self._stacked = tuple(side), tuple(stacked or side)
        self._at = side_by_side_at
        self._arranged = False
        self._dragged = False          # the user moved a handle since the arrangement last changed
        self.splitterMoved.connect(self._on_dragged)

    @property
    def stacked(self) -> bool:
        return self.orientation() == Qt.Orientation.Vertical

    def side_by_side_width(self) -> int:
        """The width below which the panes are stacked."""
        if self._at is not None:
            return self._at
        panes = [self.widget(i) for i in range(self.count())]
        return sum(min_width(p) for p in panes) + self.handleWidth() * max(0, len(panes) - 1)

    def arrange(self, width: int | None = None, height: int | None = None) -> None:
        """Side by side or stacked for this width (the splitter's own by default)."""
        width = self.width() if width is None else width
        height = self.height() if height is None else height
        stacked = width < self.side_by_side_width()
        changed = not self._arranged or stacked != self.stacked
        if not changed and self._dragged:
            return
        self._arranged, self._dragged = True, False
        if changed:             # the owner rearranges inside the panes first: their minimum sizes follow
            self.setOrientation(Qt.Orientation.Vertical if stacked else Qt.Orientation.Horizontal)
            self.arrangement_changed.emit(stacked)
        shares = self._stacked if stacked else self._side
        total = max(1, height if stacked else width)
        self.setSizes([max(1, round(total * s / sum(shares))) for s in shares])

    def set_shares(self, side: tuple[float, ...], stacked: tuple[float, ...] | None = None) -> None:
        """New shares of the room for the panes (what they show changed), applied now (in the arrangement the
        panes' minimum widths now call for)."""
        self._side, self._stacked = tuple(side), tuple(stacked or side)
        self._dragged = False
        if self._arranged and self.isVisible():
            self.arrange()

    def event(self, event) -> bool:  # noqa: A003  (Qt's name)
        # a pane's minimum width changed without a resize (a stacked page switched, a table grew): stack or unstack
        # now if the panes no longer fit side by side or fit again
        if (event.type() == QEvent.Type.LayoutRequest and self._arranged
                and (self.width() < self.side_by_side_width()) != self.stacked):
            self.arrange()
        return super().event(event)

    def minimumSizeHint(self):  # noqa: N802  (Qt's name)
        """As narrow as its widest pane: below the side-by-side width the panes stack (so a page that holds it,
        shown or not, never asks for the side-by-side width)."""
        hint = super().minimumSizeHint()
        if self.stacked:
            return hint
        panes = [self.widget(i) for i in range(self.count())]
        return QSize(max([min_width(p) for p in panes] or [0]), hint.height())

    def _on_dragged(self, *_: object) -> None:
        self._dragged = True

    def resizeEvent(self, event) -> None:  # noqa: N802  (Qt's name)
        if self.isVisible():        # a lab being built has no real size yet: arranging for it is wasted work
            self.arrange(event.size().width(), event.size().height())
        super().resizeEvent(event)

    def showEvent(self, event) -> None:  # noqa: N802  (Qt's name)
        self.arrange()
        super().showEvent(event)
