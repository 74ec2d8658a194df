"""A QTabWidget that does not repaint itself, and everything inside it, whenever a page's size hints change.

Qt's QTabWidget answers every LayoutRequest by placing its tab bar and page stack again and then repainting its
whole area (`QTabWidget::setUpLayout` ends in `update()`). A LayoutRequest reaches it whenever any widget on the
current page changes its size hints, and a QLabel does on every `setText`: QLayout::activate() tells the parent
"ideally only if sizeHint() or sizePolicy() has changed", but always does. So a step label or a chain-rule title
that changes at every step, or a metric label that changes at every frame of training, repainted the whole window
(1400x814 pixels, 5-6 ms on the 2-core machine) instead of the label.

TabWidget places its tab bar and stack again only when something they are placed from has changed: its own size,
the tab bar's size hint (tabs added, removed or renamed) or a corner widget's. Otherwise it only passes the news up
(updateGeometry), as QTabWidget does after placing them, so that a page that needs more room still gets it.
"""
from __future__ import annotations

from PySide6.QtCore import QEvent, Qt
from PySide6.QtWidgets import QTabWidget, QWidget


class TabWidget(QTabWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._placed_for: tuple | None = None    # what the tab bar and the stack were last placed from
        self.full_layouts = 0                    # how many LayoutRequests placed them (a count for tests)

    def _placement_key(self) -> tuple:
        corners = tuple(None if w is None or not w.isVisible() else (w.sizeHint(), w.minimumSizeHint())
                        for w in (self.cornerWidget(Qt.Corner.TopLeftCorner),
                                  self.cornerWidget(Qt.Corner.TopRightCorner)))
        bar = self.tabBar()
        return (self.size(), self.isVisible(), bar.isVisible(), bar.sizeHint(), bar.minimumSizeHint(), corners)

    def event(self, e: QEvent) -> bool:
        if e.type() == QEvent.Type.LayoutRequest:
            key = self._placement_key()
            if key == self._placed_for:
                self.updateGeometry()           # a page's hints changed: our parent may need to know
                return QWidget.event(self, e)
            self._placed_for = key
            self.full_layouts += 1
        return super().event(e)
