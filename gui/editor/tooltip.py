"""Canvas tooltips written when asked for: a node's or a wire's tooltip holds its numbers (whole tensors), and
writing them for every item at every step cost a tenth of a 1,000-node graph's first drawing. Items mark theirs stale;
GraphScene.helpEvent writes the stale ones under the pointer just before Qt picks the tooltip to show."""
from __future__ import annotations


class LazyToolTip:
    """Mixed into a QGraphicsItem that defines ``tooltip_text()``."""

    _tooltip_stale = True

    def _update_tooltip(self) -> None:
        """What the tooltip shows has changed: it is written when next asked for."""
        self._tooltip_stale = True

    def write_tooltip(self) -> None:
        if self._tooltip_stale:
            self.setToolTip(self.tooltip_text())
            self._tooltip_stale = False
