"""Flow pulses: a dot that travels along a wire when a step is taken, so the learner sees the value (forward, green)
or the gradient (backward, red, travelling right to left) move from one node to the next."""
from __future__ import annotations

from PySide6.QtCore import QEasingCurve, QVariantAnimation
from PySide6.QtGui import QBrush, QColor, QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsEllipseItem, QGraphicsScene
from shiboken6 import Shiboken

RADIUS = 5.0


class FlowPulse(QGraphicsEllipseItem):
    """One dot moving along `path` (scene coordinates) over `duration_ms`, removed from the scene at the end."""

    def __init__(self, scene: QGraphicsScene, path: QPainterPath, colour: QColor, reverse: bool, duration_ms: int):
        super().__init__(-RADIUS, -RADIUS, 2 * RADIUS, 2 * RADIUS)
        self._path = path
        self._reverse = reverse
        halo = QColor(colour)
        halo.setAlpha(90)
        self.setBrush(QBrush(colour))
        self.setPen(QPen(halo, 4.0))
        self.setZValue(20)
        self.setAcceptedMouseButtons(self.acceptedMouseButtons().NoButton)
        scene.addItem(self)
        self.animation = QVariantAnimation()
        self.animation.setStartValue(0.0)
        self.animation.setEndValue(1.0)
        self.animation.setDuration(max(1, duration_ms))
        self.animation.setEasingCurve(QEasingCurve.InOutQuad)
        self.animation.valueChanged.connect(self._on_progress)
        self._on_progress(0.0)

    def start(self) -> None:
        self.animation.start()

    def _on_progress(self, t: float) -> None:
        if not Shiboken.isValid(self):       # the scene was cleared under a running pulse: stop, draw nothing
            self.animation.stop()
            return
        t = float(t)
        self.setPos(self._path.pointAtPercent(1.0 - t if self._reverse else t))

    def stop(self) -> None:
        self.animation.stop()
        if Shiboken.isValid(self) and self.scene() is not None:
            self.scene().removeItem(self)
