"""pyqtgraph as every lab uses it: axes drawn once and kept as pixmaps until they change.

An axis redraws its ticks and labels (text layout, the most expensive part of a plot) on every paint of its view,
though they change only with the range; showing a tab with a dozen plots spent most of its time there. With Qt's
device-coordinate cache each axis is drawn once into a pixmap and blitted after; pyqtgraph's own ``update()`` on a
range or label change invalidates it, so nothing shown is ever stale. Imported (and applied) by gui.labs.common,
which every lab view imports before it makes a plot."""
from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtWidgets import QGraphicsItem

__all__ = ["configure"]


def configure() -> None:
    """Idempotent: every AxisItem made from now on caches its drawing."""
    if getattr(pg.AxisItem, "_studio_cached", False):
        return
    init = pg.AxisItem.__init__

    def __init__(self, *args, **kwargs):  # noqa: N807
        init(self, *args, **kwargs)
        self.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)

    pg.AxisItem.__init__ = __init__
    pg.AxisItem._studio_cached = True


configure()
