"""pyqtgraph as every lab uses it: axes drawn once and kept as pixmaps until they change.

An axis redraws its ticks and labels (text layout, the most expensive part of a plot) on every paint of its view,
though they change only with the range; showing a tab with a dozen plots spent most of its time there. With Qt's
device-coordinate cache each axis is drawn once into a pixmap and blitted after; pyqtgraph's own ``update()`` on a
range or label change invalidates it, so nothing shown is ever stale. Qt also sends every item of a view's scene a
WindowActivate or WindowDeactivate event each time the view is shown or hidden (a tab switch), and QGraphicsWidget
answers with ``update()``, for an active/inactive palette that pyqtgraph's items do not use (they draw with their own
pens and brushes): every pyqtgraph GraphicsWidget (plot, view box, axis, legend, label) ignores those events, so
switching back to a tab no longer redraws its axes' text (about 10 ms on the optimizer lab) nor paints its plots a
second time (the optimizer lab's three plots: 52 -> 26-35 ms from the tab switch to the end of painting). Plots are also
made without pyqtgraph's right-click menus (every lab turned them off after building them, at ~10 ms a plot), and
a vertical axis spaces its labelled ticks at least MIN_LABEL_GAP_PX apart (short plots no longer pile labels up).
Imported (and applied) by gui.labs.common, which every lab view imports before it makes a plot."""
from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence

import pyqtgraph as pg
from PySide6.QtCore import QEvent
from PySide6.QtWidgets import QGraphicsItem

__all__ = ["brush", "brushes_by_class", "configure", "pen"]

_ACTIVATION = (QEvent.Type.WindowActivate, QEvent.Type.WindowDeactivate)

# A vertical axis's labelled ticks are at least this far apart (a label is about 13 px tall): pyqtgraph asks for at
# least 2.25 intervals whatever the axis's length, which piles 0.2, 0.4, 0.6 and 0.8 on each other on a plot 45 px
# tall (the Playground's learning-rate plot at 1280x800).
MIN_LABEL_GAP_PX = 16


def next_nice_step(step: float) -> float:
    """The next step of the 1-2-5 sequence above ``step`` (0.2 -> 0.5 -> 1 -> 2)."""
    exp = math.floor(math.log10(step) + 1e-9)
    unit = 10.0 ** exp
    m = round(step / unit, 6)
    return (2 if m < 2 else 5 if m < 5 else 10) * unit


def spaced_levels(levels: list, span: float, size: float) -> list:
    """pyqtgraph's tick levels [(spacing, offset), ...] for a vertical axis `size` px long showing `span` units, with
    the major spacing raised along 1-2-5 until its ticks are MIN_LABEL_GAP_PX apart; finer levels stay if finer."""
    if not levels or size <= 0 or span <= 0:
        return levels
    major, offset = levels[0]
    while major * size / span < MIN_LABEL_GAP_PX:
        major = next_nice_step(major)
    return [(major, offset)] + [level for level in levels[1:] if level[0] < major]


@functools.lru_cache(maxsize=1024)
def brush(colour: str) -> "pg.QtGui.QBrush":
    """One shared brush per colour. Give a scatter's points shared brushes and pens, never a fresh one each: pyqtgraph
    draws one symbol per distinct brush object, so 300 points with 300 brushes of three colours cost ~30 ms to set
    against ~4 ms with three brushes."""
    return pg.mkBrush(colour)


@functools.lru_cache(maxsize=1024)
def pen(colour: str, width: float = 1.0) -> "pg.QtGui.QPen":
    """One shared pen per colour and width (see brush)."""
    return pg.mkPen(colour, width=width)


def brushes_by_class(labels: Iterable, colours: Sequence[str]) -> list:
    """The shared brush of each label's colour (colours[label % len(colours)]), one per point."""
    table = [brush(c) for c in colours]
    return [table[int(c) % len(table)] for c in labels]


def _no_menus() -> None:
    """Plots are made without pyqtgraph's right-click menus (the labs have their own controls and turn them off
    anyway): building a ViewBox's menu of ~40 actions cost ~10 ms per plot, at every lab's first open."""
    for cls in (pg.ViewBox, pg.PlotItem):
        if cls.__dict__.get("_studio_no_menu", False):
            continue
        init = cls.__init__

        def __init__(self, *args, _init=init, **kwargs):  # noqa: N807
            kwargs.setdefault("enableMenu", False)
            _init(self, *args, **kwargs)

        cls.__init__ = __init__
        cls._studio_no_menu = True


def configure() -> None:
    """Idempotent: every AxisItem made from now on caches its drawing; plots come without context menus."""
    _no_menus()
    if getattr(pg.AxisItem, "_studio_cached", False):
        return
    init = pg.AxisItem.__init__

    def __init__(self, *args, **kwargs):  # noqa: N807
        init(self, *args, **kwargs)
        self.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)

    event = pg.GraphicsWidget.event

    def _event(self, ev) -> bool:
        if ev.type() in _ACTIVATION:      # no active/inactive look: nothing to repaint, an axis keeps its pixmap
            return True
        return event(self, ev)

    def _update_label(self) -> None:
        # pyqtgraph re-sets the label's HTML at every range change (its SI-prefix check): ~0.1 ms of text layout
        # each, 373 times in the search lab's first open. Only a changed label is laid out again.
        text = self.labelString()
        if text != self.__dict__.get("_studio_label"):
            self._studio_label = text
            self.label.setHtml(text)
        self._adjustSize()
        self.picture = None
        self.update()

    spacing = pg.AxisItem.tickSpacing

    def _tick_spacing(self, min_val, max_val, size):
        levels = spacing(self, min_val, max_val, size)
        if self.orientation in ("left", "right") and self._tickSpacing is None:
            return spaced_levels(levels, abs(max_val - min_val), size)
        return levels

    pg.AxisItem.__init__ = __init__
    pg.AxisItem.tickSpacing = _tick_spacing
    pg.GraphicsWidget.event = _event
    pg.AxisItem._updateLabel = _update_label
    pg.AxisItem._studio_cached = True


configure()
