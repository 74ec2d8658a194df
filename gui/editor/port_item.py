"""PortItem: a node's connection dot (inputs on the left, the output on the right); dragging from it draws a wire."""
from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsItem, QGraphicsSceneHoverEvent, QGraphicsSceneMouseEvent, QStyleOptionGraphicsItem

from gui import theme

if TYPE_CHECKING:
    from gui.editor.node_item import NodeItem

RADIUS = 4.5
HIT_RADIUS = 9.0


class PortItem(QGraphicsItem):
    """One port of a node. `port` is the input's name, or None for the output."""

    def __init__(self, node_item: "NodeItem", port: str | None) -> None:
        super().__init__(node_item)
        self.node_item = node_item
        self.port = port
        self.connected = False
        self._hover = False
        self.setAcceptHoverEvents(True)
        self.setAcceptedMouseButtons(Qt.MouseButton.LeftButton)
        self.setCursor(Qt.CursorShape.CrossCursor)
        self.setZValue(2)

    @property
    def is_output(self) -> bool:
        return self.port is None

    @property
    def node_id(self) -> str:
        return self.node_item.node_id

    def set_connected(self, connected: bool) -> None:
        if connected != self.connected:
            self.connected = connected
            self.update()

    # ---- geometry and painting ------------------------------------------------------------------------------

    def boundingRect(self) -> QRectF:
        return QRectF(-HIT_RADIUS, -HIT_RADIUS, 2 * HIT_RADIUS, 2 * HIT_RADIUS)

    def shape(self) -> QPainterPath:
        path = QPainterPath()
        path.addEllipse(QPointF(0, 0), HIT_RADIUS, HIT_RADIUS)
        return path

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget=None) -> None:
        border = self.node_item.colours.border
        r = RADIUS + (1.5 if self._hover else 0.0)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(QPen(border.darker(115) if self._hover else border, 1.4))
        fill = border if (self.connected or self.is_output) else QColor(theme.BACKGROUND)
        if self._hover:
            fill = theme.ACCENT
        painter.setBrush(QBrush(fill))
        painter.drawEllipse(QPointF(0, 0), r, r)

    # ---- interaction: the scene draws and finishes the wire -------------------------------------------------

    def hoverEnterEvent(self, event: QGraphicsSceneHoverEvent) -> None:
        self._hover = True
        self.update()

    def hoverLeaveEvent(self, event: QGraphicsSceneHoverEvent) -> None:
        self._hover = False
        self.update()

    def mousePressEvent(self, event: QGraphicsSceneMouseEvent) -> None:
        scene = self.scene()
        if event.button() == Qt.MouseButton.LeftButton and scene is not None and scene.begin_wire(self, event.scenePos()):
            event.accept()
        else:
            event.ignore()

    def mouseMoveEvent(self, event: QGraphicsSceneMouseEvent) -> None:
        self.scene().update_wire(event.scenePos())

    def mouseReleaseEvent(self, event: QGraphicsSceneMouseEvent) -> None:
        self.scene().end_wire(event.scenePos())
