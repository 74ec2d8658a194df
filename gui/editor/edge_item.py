"""EdgeItem: one wire from a node's output to an input port, with the forward value above it (green) and the
gradient flowing back below it (red) while stepping."""
from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPainterPath, QPainterPathStroker, QPen
from PySide6.QtWidgets import QGraphicsItem, QGraphicsPathItem, QStyle, QStyleOptionGraphicsItem

from gui import theme
from gui.editor.tooltip import LazyToolTip
from simulator.graphs.graph import Edge

if TYPE_CHECKING:
    from gui.editor.node_item import NodeItem

THUMB_W, THUMB_H = 24, 16
PAD_X, PAD_Y = 4.0, 1.5


def wire_path(p1: QPointF, p2: QPointF) -> QPainterPath:
    """A horizontal-tangent cubic from an output (left) to an input (right); loops back smoothly if reversed."""
    dx = max(40.0, abs(p2.x() - p1.x()) * 0.5)
    path = QPainterPath(p1)
    path.cubicTo(QPointF(p1.x() + dx, p1.y()), QPointF(p2.x() - dx, p2.y()), p2)
    return path


class EdgeItem(LazyToolTip, QGraphicsItem):
    def __init__(self, edge: Edge, src_item: "NodeItem", dst_item: "NodeItem") -> None:
        super().__init__()
        self.edge = edge
        self.src_item = src_item
        self.dst_item = dst_item
        self.value: np.ndarray | None = None
        self.grad: np.ndarray | None = None
        self._value_image: QImage | None = None
        self._grad_image: QImage | None = None
        self._hover = False
        self._path = QPainterPath()
        self._value_rect = QRectF()
        self._grad_rect = QRectF()
        self._bounds = QRectF()
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsSelectable)
        self.setAcceptHoverEvents(True)
        self.setZValue(0)
        self.adjust()

    # ---- what it shows --------------------------------------------------------------------------------------

    def value_text(self) -> str:
        return theme.format_value(self.value)

    def grad_text(self) -> str:
        return theme.format_value(self.grad)

    def set_display(self, value: Any = None, grad: Any = None, dimmed: bool = False) -> None:
        if value is self.value and grad is self.grad:
            self.setOpacity(0.42 if dimmed else 1.0)
            return
        self.value, self.grad = value, grad
        self._value_image = theme.heatmap_image(value, THUMB_W, THUMB_H) if theme.is_tensor(value) else None
        self._grad_image = theme.heatmap_image(grad, THUMB_W, THUMB_H) if theme.is_tensor(grad) else None
        self.setOpacity(0.42 if dimmed else 1.0)
        self._update_tooltip()
        self._place_labels()          # the wire itself has not moved

    def tooltip_text(self) -> str:
        """The wire's ends and the value and gradient it carries (shapes and numbers)."""
        e = self.edge
        parts = [f"<b>{html.escape(e.src)} → {html.escape(e.dst)}.{html.escape(e.port)}</b>"]
        for title, v, colour in (("value", self.value, theme.VALUE), ("gradient", self.grad, theme.GRADIENT)):
            if v is None:
                continue
            a = np.asarray(v)
            head = f"{title} {tuple(a.shape)}" if a.ndim else f"{title} {theme.format_scalar(float(a))}"
            body = f"<pre style='margin:0'>{html.escape(theme.array_text(a))}</pre>" if a.ndim else ""
            parts.append(f"<span style='color:{colour.name()}'>{head}</span>{body}")
        return "<br>".join(parts)

    # ---- geometry -------------------------------------------------------------------------------------------

    def adjust(self) -> None:
        """Follow the two ports (called whenever either node moves or changes size)."""
        p1 = self.src_item.port_scene_pos(None)
        p2 = self.dst_item.port_scene_pos(self.edge.port)
        self._path = wire_path(p1, p2)
        self._mid = self._path.pointAtPercent(0.5)
        # On a slanted wire, slide the labels sideways so they sit beside it instead of covering it: a rising
        # wire has its upper side to the left, a falling one to the right.
        self._lean = max(-1.0, min(1.0, 2.0 * math.sin(math.radians(self._path.angleAtPercent(0.5)))))
        self._wire_bounds = self._path.controlPointRect().adjusted(-6, -6, 6, 6)
        self._place_labels()

    def _place_labels(self) -> None:
        """The value and gradient labels beside the wire's middle, and the bounds they make with it."""
        self.prepareGeometryChange()
        mid, lean = self._mid, self._lean
        self._value_rect = self._label_rect(self.value_text(), self._value_image, mid, above=True, lean=lean)
        self._grad_rect = self._label_rect(self.grad_text(), self._grad_image, mid, above=False, lean=lean)
        bounds = self._wire_bounds
        for r in (self._value_rect, self._grad_rect):
            if not r.isNull():
                bounds = bounds.united(r.adjusted(-2, -2, 2, 2))
        self._bounds = bounds
        self.update()

    def _label_rect(self, text: str, image: QImage | None, mid: QPointF, above: bool, lean: float = 0.0) -> QRectF:
        if not text:
            return QRectF()
        w = (theme.text_width(theme.canvas_fonts().number, text) + 2 * PAD_X
             + (THUMB_W + 4 if image is not None else 0))
        h = max(15.0, THUMB_H + 2 * PAD_Y if image is not None else 0)
        top = mid.y() - h - 3 if above else mid.y() + 3
        shift = (-lean if above else lean) * min(w / 2 + 3, 16.0)   # wide tensor labels only lean a little
        return QRectF(mid.x() - w / 2 + shift, top, w, h)

    def boundingRect(self) -> QRectF:
        return self._bounds

    def shape(self) -> QPainterPath:
        stroker = QPainterPathStroker()
        stroker.setWidth(10)
        path = stroker.createStroke(self._path)
        for r in (self._value_rect, self._grad_rect):
            if not r.isNull():
                path.addRect(r)
        return path

    def path(self) -> QPainterPath:
        return QPainterPath(self._path)

    def value_label_rect(self) -> QRectF:
        return QRectF(self._value_rect)

    def grad_label_rect(self) -> QRectF:
        return QRectF(self._grad_rect)

    # ---- painting -------------------------------------------------------------------------------------------

    def hoverEnterEvent(self, event) -> None:
        self._hover = True
        self.update()

    def hoverLeaveEvent(self, event) -> None:
        self._hover = False
        self.update()

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget=None) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        if selected:
            halo = QColor(theme.ACCENT)
            halo.setAlpha(60)
            painter.setPen(QPen(halo, 6, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap))
            painter.drawPath(self._path)
        colour = theme.ACCENT if selected else (theme.WIRE_HOVER if self._hover else theme.WIRE)
        painter.setPen(QPen(colour, 2.2 if selected else 1.8, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawPath(self._path)
        self._paint_label(painter, self._value_rect, self.value_text(), self._value_image, theme.VALUE)
        self._paint_label(painter, self._grad_rect, self.grad_text(), self._grad_image, theme.GRADIENT)

    def _paint_label(self, painter: QPainter, rect: QRectF, text: str, image: QImage | None, colour: QColor) -> None:
        if rect.isNull():
            return
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(theme.LABEL_BACKGROUND)
        painter.drawRoundedRect(rect, 4, 4)
        x = rect.left() + PAD_X
        if image is not None:
            target = QRectF(x, rect.center().y() - THUMB_H / 2, THUMB_W, THUMB_H)
            painter.drawImage(target, image)
            painter.setPen(QPen(QColor(0, 0, 0, 60), 0.8))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRect(target)
            x += THUMB_W + 4
        painter.setFont(theme.canvas_fonts().number)
        painter.setPen(colour)
        painter.drawText(QRectF(x, rect.top(), rect.right() - x, rect.height()),
                         Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, text)


class RubberWireItem(QGraphicsPathItem):
    """The wire that follows the mouse while connecting."""

    def __init__(self, start: QPointF, from_output: bool) -> None:
        super().__init__()
        self.start = start
        self.from_output = from_output
        pen = QPen(theme.WIRE_RUBBER, 2.0, Qt.PenStyle.DashLine, Qt.PenCapStyle.RoundCap)
        self.setPen(pen)
        self.setZValue(10)
        self.follow(start)

    def follow(self, pos: QPointF) -> None:
        self.setPath(wire_path(self.start, pos) if self.from_output else wire_path(pos, self.start))
