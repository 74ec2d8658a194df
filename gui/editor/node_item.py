"""NodeItem: how one graph node looks on the canvas (op box with its symbol, or a leaf pill with name and value),
with its ports, its gradient under the box and, during stepping, its highlight."""
from __future__ import annotations

import html
from typing import Any

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QImage, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsItem, QStyle, QStyleOptionGraphicsItem

from gui import theme
from gui.editor.port_item import PortItem
from gui.editor.tooltip import LazyToolTip
from simulator.graphs.graph import Graph, Node

OP_RADIUS = 8.0
PORT_GAP = 20.0
STUB = 26.0            # the output node's short outgoing wire
THUMB_W, THUMB_H = 24, 16
_MOVED = QGraphicsItem.GraphicsItemChange.ItemPositionHasChanged   # itemChange runs for every change of every item

_width = theme.text_width


class NodeItem(LazyToolTip, QGraphicsItem):
    """The canvas picture of node `node_id`; its position is the box centre (the model's `pos`)."""

    def __init__(self, graph: Graph, node_id: str) -> None:
        super().__init__()
        self.graph = graph
        self.node_id = node_id
        self.input_ports: dict[str, PortItem] = {}
        self.output_port = PortItem(self, None)
        # what stepping shows (set by show_state)
        self.value: np.ndarray | None = None        # leaves: their value
        self.grad: np.ndarray | None = None         # dL/dnode, under the box
        self.output_value: np.ndarray | None = None  # the output node: its value on the outgoing stub
        self.is_output = False
        self.active_phase: str | None = None
        self._value_image: QImage | None = None
        self._grad_image: QImage | None = None
        self._out_image: QImage | None = None
        self.setFlags(QGraphicsItem.GraphicsItemFlag.ItemIsMovable | QGraphicsItem.GraphicsItemFlag.ItemIsSelectable
                      | QGraphicsItem.GraphicsItemFlag.ItemSendsGeometryChanges)
        self.setAcceptHoverEvents(True)
        self.setZValue(1)
        self.w = self.h = 0.0
        self._bounds: QRectF | None = None   # boundingRect, kept until what it is measured from changes
        self.sync()

    # ---- reading the model ----------------------------------------------------------------------------------

    @property
    def node(self) -> Node:
        return self.graph.node(self.node_id)

    @property
    def kind(self) -> str:
        return self.node.kind

    @property
    def colours(self) -> theme.NodeColours:
        node = self.node
        return theme.node_colours(node.kind, node.spec.family if node.kind == "op" else None)

    def sync(self) -> None:
        """Re-read the node (kind, attrs, value, name) and recompute the geometry."""
        node = self.node
        self.setPos(QPointF(*node.pos))
        wanted = list(node.ports)
        if list(self.input_ports) != wanted:
            for p in self.input_ports.values():
                p.setParentItem(None)
                if p.scene() is not None:
                    p.scene().removeItem(p)
            self.input_ports = {name: PortItem(self, name) for name in wanted}
        if node.is_leaf:
            self.value = node.value
        self._layout()

    def _layout(self) -> None:
        self.prepareGeometryChange()
        self._bounds = None
        old_w, old_ports = self.w, len(self.input_ports)
        node = self.node
        if node.kind == "op":
            symbol = node.label()
            font = theme.canvas_fonts().symbol if len(symbol) <= 3 else theme.canvas_fonts().symbol_small
            self._symbol, self._symbol_font = symbol, font
            label_w = max((_width(theme.canvas_fonts().port, p) for p in node.ports), default=0.0)
            label_w = label_w + 8 if label_w else 0.0
            self.h = max(40.0, PORT_GAP * len(node.ports) + 8)
            self._label_w = label_w
            self.w = max(56.0, _width(font, symbol) + 28 + label_w)
        elif node.kind == "const":
            text = self._leaf_value_text()
            self.h = 26.0
            self.w = max(40.0, self._value_width(text) + 22)
        else:
            text = self._leaf_value_text()
            self.h = 40.0
            self.w = max(52.0, _width(theme.canvas_fonts().name, node.id) + 30, self._value_width(text) + 22)
        self._value_image = (theme.heatmap_image(self.value, THUMB_W, THUMB_H)
                             if node.is_leaf and theme.is_tensor(self.value) else None)
        ports = list(self.input_ports.values())
        for i, p in enumerate(ports):
            p.setPos(-self.w / 2, -self.h / 2 + self.h * (i + 1) / (len(ports) + 1))
        self.output_port.setPos(self.w / 2, 0)
        scene = self.scene()
        if scene is not None and (self.w != old_w or len(ports) != old_ports):
            scene.node_item_moved(self)     # the ports moved (a new value's text is wider): the wires follow
        self._update_tooltip()
        self.update()

    def _value_width(self, text: str) -> float:
        extra = THUMB_W + 5 if theme.is_tensor(self.value) else 0
        return _width(theme.canvas_fonts().number, text) + extra

    def _leaf_value_text(self) -> str:
        return theme.format_value(self.value)

    # ---- what stepping shows --------------------------------------------------------------------------------

    def value_text(self) -> str:
        return self._leaf_value_text() if self.node.is_leaf else ""

    def grad_text(self) -> str:
        return theme.format_value(self.grad)

    def output_text(self) -> str:
        return theme.format_value(self.output_value) if self.is_output else ""

    def set_display(self, value: Any = None, grad: Any = None, output_value: Any = None, is_output: bool = False,
                    active_phase: str | None = None, dimmed: bool = False) -> None:
        node = self.node
        new_value = value if node.is_leaf and value is not None else (node.value if node.is_leaf else None)
        relayout = (theme.format_value(new_value) != theme.format_value(self.value)
                    or theme.is_tensor(new_value) != theme.is_tensor(self.value) or is_output != self.is_output)
        self.value = new_value
        self.grad = grad
        self._grad_image = theme.heatmap_image(grad, THUMB_W, THUMB_H) if theme.is_tensor(grad) else None
        self.output_value = output_value
        self._out_image = theme.heatmap_image(output_value, THUMB_W, THUMB_H) if theme.is_tensor(output_value) else None
        self.is_output = is_output
        self.active_phase = active_phase
        self.setOpacity(0.42 if dimmed else 1.0)
        self.setZValue(3 if active_phase else 1)
        if relayout:
            self._layout()
        else:
            bounds = self._measure_bounds()   # the numbers under and beside the box may be wider or narrower
            if bounds != self._bounds:
                self.prepareGeometryChange()  # (Qt reads the old bounds here, to repaint what they covered)
                self._bounds = bounds
            self._update_tooltip()
            self.update()

    def tooltip_text(self) -> str:
        """Name, kind or op formula, and the value, output and gradient shown (shapes and numbers)."""
        node = self.node
        lines = [f"<b>{html.escape(node.id)}</b>"]
        if node.kind == "op":
            spec = node.spec
            lines.append(f"{html.escape(spec.name)}: {html.escape(spec.formula)}")
        else:
            lines.append({"input": "input", "param": "trainable parameter", "const": "constant"}[node.kind])
        for title, v, colour in (("value", self.value, theme.VALUE), ("output", self.output_value, theme.VALUE),
                                 ("gradient", self.grad, theme.GRADIENT)):
            if v is None or (title == "output" and not self.is_output):
                continue
            a = np.asarray(v)
            head = f"{title} {tuple(a.shape)}" if a.ndim else title
            lines.append(f"<span style='color:{colour.name()}'>{head}</span>"
                         f"<pre style='margin:0'>{html.escape(theme.array_text(a))}</pre>")
        return "<br>".join(lines)

    # ---- geometry -------------------------------------------------------------------------------------------

    def box_rect(self) -> QRectF:
        return QRectF(-self.w / 2, -self.h / 2, self.w, self.h)

    def _radius(self) -> float:
        kind = self.node.kind
        return self.h / 2 if kind in ("input", "const") else (6.0 if kind == "param" else OP_RADIUS)

    def boundingRect(self) -> QRectF:
        # Qt asks for it far more often than it changes: for every item, on every paint of a scene without an
        # index (3,000 times a scrub at 2,000 nodes), and measuring it means measuring its texts.
        if self._bounds is None:
            self._bounds = self._measure_bounds()
        return QRectF(self._bounds)

    def _measure_bounds(self) -> QRectF:
        right = self.w / 2 + 12
        if self.is_output:
            right += STUB + max(_width(theme.canvas_fonts().number, self.output_text()) + (THUMB_W + 4 if self._out_image else 0), 0)
        grad_w = _width(theme.canvas_fonts().number, self.grad_text()) + (THUMB_W + 6 if self._grad_image else 0) + 12
        half = max(self.w / 2 + 12, grad_w / 2, _width(theme.canvas_fonts().node_id, self.node_id) / 2 + 4)
        return QRectF(-half, -self.h / 2 - 22, half + max(right, half), self.h + 22 + 30)

    def shape(self) -> QPainterPath:
        path = QPainterPath()
        path.addRoundedRect(self.box_rect(), self._radius(), self._radius())
        return path

    def port_scene_pos(self, port: str | None) -> QPointF:
        item = self.output_port if port is None else self.input_ports[port]
        return item.scenePos()

    def itemChange(self, change: QGraphicsItem.GraphicsItemChange, value: Any) -> Any:
        if change == _MOVED:
            scene = self.scene()
            if scene is not None:
                scene.node_item_moved(self)   # wires follow while dragging, before any command exists
        return super().itemChange(change, value)

    # ---- painting -------------------------------------------------------------------------------------------

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget=None) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setRenderHint(QPainter.RenderHint.TextAntialiasing)
        node = self.node
        colours = self.colours
        rect = self.box_rect()
        r = self._radius()
        selected = bool(option.state & QStyle.StateFlag.State_Selected)

        if self.active_phase:
            glow = QColor(theme.PHASE.get(self.active_phase, theme.ACCENT))
            painter.setPen(Qt.PenStyle.NoPen)
            for grow, alpha in ((9, 28), (5.5, 45), (2.5, 70)):
                glow.setAlpha(alpha)
                painter.setBrush(glow)
                painter.drawRoundedRect(rect.adjusted(-grow, -grow, grow, grow), r + grow, r + grow)
        else:  # a soft drop shadow, two layers
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(theme.SHADOW)
            painter.drawRoundedRect(rect.translated(0, 2.5).adjusted(-1, -0.5, 1, 1), r + 1, r + 1)
            painter.drawRoundedRect(rect.translated(0, 1), r, r)

        if selected:
            sel = QColor(theme.ACCENT)
            sel.setAlpha(40)
            painter.setBrush(sel)
            painter.setPen(QPen(theme.ACCENT, 1.3))
            painter.drawRoundedRect(rect.adjusted(-4.5, -4.5, 4.5, 4.5), r + 4.5, r + 4.5)

        border_pen = QPen(colours.border, 1.5)
        if self.active_phase:
            border_pen = QPen(theme.PHASE.get(self.active_phase, theme.ACCENT), 2.6)
        painter.setPen(border_pen)
        painter.setBrush(QBrush(colours.fill))
        painter.drawRoundedRect(rect, r, r)

        if node.kind == "op":
            self._paint_op(painter, node, colours, rect)
        else:
            self._paint_leaf(painter, node, colours, rect)
        if self.is_output:
            self._paint_output_stub(painter, colours)
        if self.grad is not None:
            self._paint_number(painter, self.grad_text(), self._grad_image, theme.GRADIENT,
                               QPointF(0, rect.bottom() + 4), align_top=True)

    def _paint_op(self, painter: QPainter, node: Node, colours: theme.NodeColours, rect: QRectF) -> None:
        painter.setFont(theme.canvas_fonts().node_id)
        painter.setPen(theme.TEXT_MUTED)
        painter.drawText(QRectF(rect.center().x() - 80, rect.top() - 18, 160, 15),
                         Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignBottom, node.id)
        painter.setPen(colours.border.darker(150))
        painter.setFont(self._symbol_font)
        # centred in the room right of the port names (short names barely shift it)
        painter.drawText(rect.adjusted(self._label_w, 0, 0, 0), Qt.AlignmentFlag.AlignCenter, self._symbol)
        if len(self.input_ports) > 0:
            painter.setFont(theme.canvas_fonts().port)
            painter.setPen(theme.TEXT_MUTED)
            for name, port in self.input_ports.items():
                y = port.pos().y()
                painter.drawText(QRectF(rect.left() + 7, y - 8, 40, 16),
                                 Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, name)

    def _paint_leaf(self, painter: QPainter, node: Node, colours: theme.NodeColours, rect: QRectF) -> None:
        text = self._leaf_value_text()
        if node.kind == "const":
            self._paint_number(painter, text, self._value_image, colours.text, QPointF(0, 0), centred=True)
            return
        painter.setFont(theme.canvas_fonts().name)
        painter.setPen(colours.text)
        painter.drawText(QRectF(rect.left(), rect.top() + 3, rect.width(), 17), Qt.AlignmentFlag.AlignCenter, node.id)
        self._paint_number(painter, text, self._value_image, theme.VALUE, QPointF(0, rect.top() + 29), centred=True)
        if node.kind == "param":   # a small "trainable" badge: the parameter is updated by the optimizer
            badge = QRectF(rect.right() - 7, rect.top() - 7, 14, 14)
            painter.setPen(QPen(QColor("#ffffff"), 1.2))
            painter.setBrush(colours.border)
            painter.drawEllipse(badge)
            painter.setPen(QColor("#ffffff"))
            painter.setFont(theme.font(7, QFont.Weight.Bold))
            painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, "θ")

    def _paint_output_stub(self, painter: QPainter, colours: theme.NodeColours) -> None:
        x0, x1 = self.w / 2 + 5, self.w / 2 + STUB
        painter.setPen(QPen(theme.WIRE, 1.8))
        painter.drawLine(QPointF(x0, 0), QPointF(x1 - 4, 0))
        painter.setBrush(theme.WIRE)
        painter.setPen(Qt.PenStyle.NoPen)
        arrow = QPainterPath(QPointF(x1, 0))
        arrow.lineTo(x1 - 7, -4)
        arrow.lineTo(x1 - 7, 4)
        arrow.closeSubpath()
        painter.drawPath(arrow)
        if self.output_value is not None:
            self._paint_number(painter, self.output_text(), self._out_image, theme.VALUE, QPointF(x0 + 2, -5),
                               align_bottom_left=True)

    def _paint_number(self, painter: QPainter, text: str, image: QImage | None, colour: QColor, anchor: QPointF,
                      centred: bool = False, align_top: bool = False, align_bottom_left: bool = False) -> None:
        """Draw `text` (and a tensor thumbnail before it) centred on, hanging from, or sitting on `anchor`."""
        painter.setFont(theme.canvas_fonts().number)
        tw = _width(theme.canvas_fonts().number, text)
        iw = THUMB_W + 4 if image is not None else 0
        th = max(14.0, THUMB_H if image is not None else 0)
        total = tw + iw
        if align_bottom_left:
            left, top = anchor.x(), anchor.y() - th
        else:
            left = anchor.x() - total / 2
            top = anchor.y() if align_top else anchor.y() - th / 2
        if image is not None:
            target = QRectF(left, top + (th - THUMB_H) / 2, THUMB_W, THUMB_H)
            painter.drawImage(target, image)
            painter.setPen(QPen(QColor(0, 0, 0, 60), 0.8))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRect(target)
        painter.setPen(colour)
        painter.drawText(QRectF(left + iw, top, tw + 2, th), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                         text)
