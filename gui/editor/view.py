"""GraphView: the canvas widget. Wheel zoom around the cursor, middle-button and space-drag panning, rubber-band
selection, a dotted grid, keyboard deletion/duplication, and drops from the op palette."""
from __future__ import annotations

import math

from PySide6.QtCore import QPoint, QPointF, QRectF, Qt
from PySide6.QtGui import (QDragEnterEvent, QDragMoveEvent, QDropEvent, QKeyEvent, QMouseEvent, QPainter, QPen,
                           QWheelEvent)
from PySide6.QtWidgets import QFrame, QGraphicsView, QWidget

from gui import theme
from gui.editor.scene import GRID, GraphScene

MIME_OP = "application/x-backprop-op"
MIN_ZOOM, MAX_ZOOM = 0.2, 4.0
FIT_MAX_ZOOM = 1.5          # fitting never blows a tiny graph up beyond this
SANE_EXTENT = 1e6           # scene coordinates beyond this (a hostile file's 1e308) are left out of fit-to-view


def _sane(rect: QRectF) -> bool:
    """A non-empty rectangle with finite corners within SANE_EXTENT of the origin."""
    coords = (rect.left(), rect.top(), rect.right(), rect.bottom())
    return (not rect.isNull() and all(math.isfinite(c) and abs(c) <= SANE_EXTENT for c in coords))


class GraphView(QGraphicsView):
    def __init__(self, scene: GraphScene, parent: QWidget | None = None) -> None:
        super().__init__(scene, parent)
        self.setRenderHints(QPainter.RenderHint.Antialiasing | QPainter.RenderHint.TextAntialiasing
                            | QPainter.RenderHint.SmoothPixmapTransform)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.SmartViewportUpdate)
        # The dotted grid is drawn once per scroll or zoom, not on every repaint of a node while stepping.
        self.setCacheMode(QGraphicsView.CacheModeFlag.CacheBackground)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setDragMode(QGraphicsView.DragMode.RubberBandDrag)
        self.setRubberBandSelectionMode(Qt.ItemSelectionMode.IntersectsItemShape)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setAcceptDrops(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self._pan_from: QPoint | None = None
        self._space = False

    @property
    def graph_scene(self) -> GraphScene:
        return self.scene()

    # ---- zoom -----------------------------------------------------------------------------------------------

    def zoom(self) -> float:
        return self.transform().m11()

    def _repair_transform(self) -> float:
        """The current zoom; a transform that is not a plain finite positive scale is reset to zoom 1 first."""
        t = self.transform()
        z = t.m11()
        if not (math.isfinite(z) and z > 0 and math.isfinite(t.m22()) and t.m22() > 0
                and math.isfinite(t.dx()) and math.isfinite(t.dy())):
            self.resetTransform()
            z = 1.0
        return z

    def zoom_by(self, factor: float) -> None:
        """Scale by `factor` about the mouse (or the centre), keeping the zoom within 0.2 .. 4."""
        current = self._repair_transform()
        if not (math.isfinite(factor) and factor > 0):
            return
        target = min(MAX_ZOOM, max(MIN_ZOOM, current * factor))
        if not math.isclose(target, current):
            self.scale(target / current, target / current)

    def set_zoom(self, zoom: float) -> None:
        if not (math.isfinite(zoom) and zoom > 0):
            return
        self.zoom_by(zoom / self._repair_transform())

    def wheelEvent(self, event: QWheelEvent) -> None:
        delta = event.angleDelta().y() or event.pixelDelta().y()
        if delta:
            self.zoom_by(math.pow(1.0015, delta))
        event.accept()

    def fit_to_view(self, margin: float = 40.0) -> None:
        """Zoom (within MIN_ZOOM .. 1.5) and centre so the whole graph shows. Nodes at absurd positions (beyond
        SANE_EXTENT, or not finite) are left out; with none left, the view shows the origin at zoom 1."""
        rect = self.graph_scene.items_bounding_rect()
        if not _sane(rect):
            rect = QRectF()
            for item in self.graph_scene.node_items():
                r = item.sceneBoundingRect()
                if _sane(r):
                    rect = rect.united(r)
        self.resetTransform()
        if rect.isNull() or not _sane(rect):
            self.centerOn(0, 0)
            return
        rect = rect.adjusted(-margin, -margin, margin, margin)
        view = self.viewport().rect()
        zoom = min(view.width() / max(rect.width(), 1.0), view.height() / max(rect.height(), 1.0))
        zoom = min(FIT_MAX_ZOOM, max(MIN_ZOOM, zoom)) if math.isfinite(zoom) and zoom > 0 else 1.0
        self.scale(zoom, zoom)
        self.centerOn(rect.center())

    def centre_scene_pos(self) -> QPointF:
        return self.mapToScene(self.viewport().rect().center())

    # ---- panning --------------------------------------------------------------------------------------------

    def _start_pan(self, event: QMouseEvent) -> None:
        self._pan_from = event.position().toPoint()
        self.viewport().setCursor(Qt.CursorShape.ClosedHandCursor)
        event.accept()

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.MiddleButton or (
                event.button() == Qt.MouseButton.LeftButton and self._space):
            self._start_pan(event)
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._pan_from is not None:
            pos = event.position().toPoint()
            delta = pos - self._pan_from
            self._pan_from = pos
            self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() - delta.x())
            self.verticalScrollBar().setValue(self.verticalScrollBar().value() - delta.y())
            event.accept()
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if self._pan_from is not None and event.button() in (Qt.MouseButton.MiddleButton, Qt.MouseButton.LeftButton):
            self._pan_from = None
            self.viewport().setCursor(Qt.CursorShape.OpenHandCursor if self._space else Qt.CursorShape.ArrowCursor)
            event.accept()
            return
        super().mouseReleaseEvent(event)

    # ---- keys -----------------------------------------------------------------------------------------------

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key, mods = event.key(), event.modifiers()
        if key == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space = True
            self.viewport().setCursor(Qt.CursorShape.OpenHandCursor)
            event.accept()
            return
        if key in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace):
            self.graph_scene.delete_selected()
            event.accept()
            return
        if key == Qt.Key.Key_D and mods & Qt.KeyboardModifier.ControlModifier:
            self.graph_scene.duplicate_selected()
            event.accept()
            return
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space = False
            if self._pan_from is None:
                self.viewport().setCursor(Qt.CursorShape.ArrowCursor)
            event.accept()
            return
        super().keyReleaseEvent(event)

    # ---- drops from the palette -----------------------------------------------------------------------------

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasFormat(MIME_OP):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        if event.mimeData().hasFormat(MIME_OP):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        data = event.mimeData()
        if not data.hasFormat(MIME_OP):
            event.ignore()
            return
        name = bytes(data.data(MIME_OP)).decode("utf-8")
        self.graph_scene.add_op_at(name, self.mapToScene(event.position().toPoint()))
        event.acceptProposedAction()
        self.setFocus()

    # ---- background -----------------------------------------------------------------------------------------

    def drawBackground(self, painter: QPainter, rect: QRectF) -> None:
        painter.fillRect(rect, theme.BACKGROUND)
        zoom = self.zoom()
        if not (_sane(rect) and math.isfinite(zoom) and zoom > 0):
            return   # nowhere sensible to draw dots (a broken transform is repaired on the next zoom or fit)
        step = GRID
        while step * zoom < 14:   # keep dots at least ~14 px apart on screen
            step *= 2
        left = math.floor(rect.left() / step) * step
        top = math.floor(rect.top() / step) * step
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        minor, major = [], []
        y = top
        while y <= rect.bottom():
            x = left
            major_row = math.isclose(math.fmod(abs(y), step * 5), 0.0, abs_tol=1e-6)
            while x <= rect.right():
                if major_row and math.isclose(math.fmod(abs(x), step * 5), 0.0, abs_tol=1e-6):
                    major.append(QPointF(x, y))
                else:
                    minor.append(QPointF(x, y))
                x += step
            y += step
        painter.setPen(QPen(theme.GRID_DOT, 0))
        painter.drawPoints(minor)
        painter.setPen(QPen(theme.GRID_DOT_MAJOR, 0))
        painter.drawPoints(major)
        painter.restore()
