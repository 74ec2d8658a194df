"""A QTabWidget that does not repaint itself, and everything inside it, whenever a page's size hints change.

Qt's QTabWidget answers every LayoutRequest by placing its tab bar and page stack again and then repainting its
whole area (`QTabWidget::setUpLayout` ends in `update()`). A LayoutRequest reaches it whenever any widget on the
current page changes its size hints, and a QLabel does on every `setText`: QLayout::activate() tells the parent
"ideally only if sizeHint() or sizePolicy() has changed", but always does. So a step label or a chain-rule title
that changes at every step, or a metric label that changes at every frame of training, repainted the whole window
(1400x814 pixels, 5-6 ms on the 2-core machine) instead of the label.

TabWidget places its tab bar, stack and corner widgets again only when something they are placed from has changed
(its own size, the tab bar's size hint: tabs added, removed or renamed; a corner widget's) or when one of them is no
longer where the last placement put it. Otherwise it only passes the news up (updateGeometry), as QTabWidget does
after placing them, so that a page that needs more room still gets it.
"""
from __future__ import annotations

from PySide6.QtCore import QEvent, Qt
from PySide6.QtWidgets import QStackedWidget, QTabWidget, QWidget


class TabWidget(QTabWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._placed_for: tuple | None = None    # what the tab bar, stack and corners were last placed from, and where
        self.full_layouts = 0                    # how many LayoutRequests placed them (a count for tests)
        self._stack = self.findChild(QStackedWidget, "qt_tabwidget_stackedwidget",
                                     Qt.FindChildOption.FindDirectChildrenOnly)   # QTabWidget's own, made with it

    def _corners(self) -> tuple[QWidget | None, QWidget | None]:
        return self.cornerWidget(Qt.Corner.TopLeftCorner), self.cornerWidget(Qt.Corner.TopRightCorner)

    def _placement(self) -> tuple:
        """What QTabWidget places its children from (its size, the tab bar's and the corners' size hints) and where
        they are. QTabWidget also places them without a LayoutRequest (on a resize, a new tab title, a new corner
        widget, ...), and a corner widget may be moved from outside: where they are tells whether the last
        placement still holds."""
        bar = self.tabBar()
        corners = tuple(None if w is None else (w.isVisible(), w.sizeHint(), w.minimumSizeHint(), w.geometry())
                        for w in self._corners())
        return (self.size(), self.isVisible(), bar.isVisible(), bar.sizeHint(), bar.minimumSizeHint(),
                bar.geometry(), self._stack.geometry(), corners)

    def event(self, e: QEvent) -> bool:
        if e.type() != QEvent.Type.LayoutRequest:
            return super().event(e)
        if self._placement() == self._placed_for:
            self.updateGeometry()               # a page's hints changed: our parent may need to know
            return QWidget.event(self, e)
        handled = super().event(e)
        self._placed_for = self._placement()
        self.full_layouts += 1
        return handled
