"""The op palette (every registered op by family, searchable, draggable onto the canvas) and the quick-place popup."""
from __future__ import annotations

import html

from PySide6.QtCore import QMimeData, QPoint, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QFont, QIcon, QKeyEvent, QPainter, QPixmap
from PySide6.QtWidgets import (QAbstractItemView, QDialog, QLineEdit, QListWidget, QListWidgetItem,
                               QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget)

from gui import theme
from gui.editor.view import MIME_OP
from simulator.ops import OpSpec, families

NAME_ROLE = Qt.ItemDataRole.UserRole
SEARCH_ROLE = Qt.ItemDataRole.UserRole + 1
SYMBOL_ROLE = Qt.ItemDataRole.UserRole + 2

LEAVES = (
    ("leaf:input", "Input", "x", "input", "A value fed into the graph (data such as x or labels y)."),
    ("leaf:param", "Parameter", "θ", "param", "A trainable parameter (a weight W or bias b): it receives a gradient "
                                              "and the optimizer updates it."),
    ("leaf:const", "Constant", "c", "const", "A fixed number, such as the 1 in 1 + exp(-x). No gradient flows into it."),
)


def symbol_icon(symbol: str, colours: theme.NodeColours, size: QSize = QSize(34, 22)) -> QIcon:
    """A tiny node-like badge with the op's symbol, so the palette looks like what lands on the canvas."""
    ratio = 2.0
    pix = QPixmap(int(size.width() * ratio), int(size.height() * ratio))
    pix.setDevicePixelRatio(ratio)
    pix.fill(Qt.GlobalColor.transparent)
    p = QPainter(pix)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.setRenderHint(QPainter.RenderHint.TextAntialiasing)
    rect = QRectF(1, 1, size.width() - 2, size.height() - 2)
    p.setPen(colours.border)
    p.setBrush(colours.fill)
    p.drawRoundedRect(rect, 5, 5)
    p.setPen(colours.border.darker(150))
    p.setFont(theme.font(10 if len(symbol) <= 3 else 7.5, QFont.Weight.DemiBold))
    p.drawText(rect, Qt.AlignmentFlag.AlignCenter, symbol if len(symbol) <= 6 else symbol[:5] + "…")
    p.end()
    return QIcon(pix)


def op_tooltip(spec: OpSpec) -> str:
    ports = ", ".join(spec.inputs)
    return (f"<b>{html.escape(spec.name)}</b>({html.escape(ports)})<br>"
            f"<span style='font-family:monospace'>{html.escape(spec.formula)}</span><br>{html.escape(spec.doc)}")


def _entries() -> list[tuple[str, list[tuple[str, str, str, QIcon, str, str]]]]:
    """(group title, [(mime name, label, search text, icon, tooltip, symbol)]) in palette order."""
    groups = []
    for family, specs in families().items():
        rows = []
        for spec in specs:
            symbol = spec.display_symbol()
            rows.append((spec.name, spec.name, f"{spec.name} {symbol} {spec.doc} {spec.formula}".lower(),
                         symbol_icon(symbol, theme.node_colours("op", family)), op_tooltip(spec), symbol))
        groups.append((family.replace("_", " ").title(), rows))
    leaves = [(mime, label, f"{label} {kind} {doc}".lower(), symbol_icon(sym, theme.node_colours(kind)),
               f"<b>{label}</b><br>{html.escape(doc)}", sym) for mime, label, sym, kind, doc in LEAVES]
    groups.append(("Values", leaves))
    return groups


def _matches(search_text: str, query: str) -> bool:
    return all(word in search_text for word in query.lower().split())


class _PaletteTree(QTreeWidget):
    def mimeData(self, items: list[QTreeWidgetItem]) -> QMimeData:
        data = QMimeData()
        names = [i.data(0, NAME_ROLE) for i in items if i.data(0, NAME_ROLE)]
        if names:
            data.setData(MIME_OP, names[0].encode("utf-8"))
            data.setText(names[0])
        return data

    def mimeTypes(self) -> list[str]:
        return [MIME_OP]


class PalettePanel(QWidget):
    """Every op, grouped by family. Drag one onto the canvas, or double-click / Enter to place it."""

    op_activated = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.search = QLineEdit(placeholderText="Search ops…")
        self.search.setClearButtonEnabled(True)
        self.tree = _PaletteTree()
        self.tree.setHeaderHidden(True)
        self.tree.setIconSize(QSize(34, 22))
        self.tree.setIndentation(10)
        self.tree.setRootIsDecorated(True)
        self.tree.setDragEnabled(True)
        self.tree.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.setStyleSheet("QTreeWidget { border: none; }")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.setSpacing(6)
        layout.addWidget(self.search)
        layout.addWidget(self.tree)
        self.refresh()
        self.search.textChanged.connect(self._on_search_changed)
        self.search.returnPressed.connect(self._on_search_return)
        self.tree.itemActivated.connect(self._on_item_activated)
        self.tree.itemDoubleClicked.connect(self._on_item_activated)

    def refresh(self) -> None:
        """(Re)build the tree from the registry: at start, and when an op of the learner's is added."""
        self.tree.clear()
        group_font = theme.font(9, QFont.Weight.DemiBold)
        for title, rows in _entries():
            group = QTreeWidgetItem(self.tree, [title])
            group.setFont(0, group_font)
            group.setForeground(0, theme.TEXT_MUTED)
            group.setFlags(Qt.ItemFlag.ItemIsEnabled)
            group.setSizeHint(0, QSize(0, 24))
            for name, label, search_text, icon, tip, symbol in rows:
                item = QTreeWidgetItem(group, [label])
                item.setData(0, SYMBOL_ROLE, symbol)
                item.setSizeHint(0, QSize(0, 26))
                item.setIcon(0, icon)
                item.setToolTip(0, tip)
                item.setData(0, NAME_ROLE, name)
                item.setData(0, SEARCH_ROLE, search_text)
                item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsDragEnabled)
            group.setExpanded(True)
        if self.search.text():
            self._on_search_changed(self.search.text())

    def items(self) -> list[QTreeWidgetItem]:
        """Every op and value item (not the group headers)."""
        out = []
        for g in range(self.tree.topLevelItemCount()):
            group = self.tree.topLevelItem(g)
            out.extend(group.child(i) for i in range(group.childCount()))
        return out

    def item_for(self, name: str) -> QTreeWidgetItem | None:
        return next((i for i in self.items() if i.data(0, NAME_ROLE) == name), None)

    def visible_names(self) -> list[str]:
        return [i.data(0, NAME_ROLE) for i in self.items() if not i.isHidden()]

    def mime_data_for(self, name: str) -> QMimeData:
        """The payload a drag of `name` carries (what the canvas's drop accepts)."""
        return self.tree.mimeData([self.item_for(name)])

    def _on_search_changed(self, text: str) -> None:
        for g in range(self.tree.topLevelItemCount()):
            group = self.tree.topLevelItem(g)
            any_shown = False
            for i in range(group.childCount()):
                item = group.child(i)
                shown = _matches(item.data(0, SEARCH_ROLE), text)
                item.setHidden(not shown)
                any_shown |= shown
            group.setHidden(not any_shown)
        visible = [i for i in self.items() if not i.isHidden()]
        if text and visible:   # Enter takes the best match: a name or symbol that starts with the query
            query = text.strip().lower()
            best = next((i for i in visible if i.data(0, NAME_ROLE).split(":")[-1].startswith(query)
                         or i.text(0).lower().startswith(query) or i.data(0, SYMBOL_ROLE).lower().startswith(query)),
                        visible[0])
            self.tree.setCurrentItem(best)

    def _on_search_return(self) -> None:
        item = self.tree.currentItem()
        if item is not None and item.data(0, NAME_ROLE) and not item.isHidden():
            self.op_activated.emit(item.data(0, NAME_ROLE))

    def _on_item_activated(self, item: QTreeWidgetItem, column: int = 0) -> None:
        name = item.data(0, NAME_ROLE)
        if name:
            self.op_activated.emit(name)


class _SearchField(QLineEdit):
    """A line edit that hands Up/Down to the list below it, so one can type and arrow without leaving it."""

    def __init__(self, target: QListWidget) -> None:
        super().__init__()
        self.target = target

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Up, Qt.Key.Key_Down, Qt.Key.Key_PageUp, Qt.Key.Key_PageDown):
            rows = [r for r in range(self.target.count()) if not self.target.item(r).isHidden()]
            if rows:
                cur = self.target.currentRow()
                pos = rows.index(cur) if cur in rows else -1
                step = -1 if event.key() in (Qt.Key.Key_Up, Qt.Key.Key_PageUp) else 1
                self.target.setCurrentRow(rows[max(0, min(len(rows) - 1, pos + step))])
            return
        super().keyPressEvent(event)


class PlaceOpPopup(QDialog):
    """A small searchable list opened on a canvas double-click: type, arrow, Enter places the op."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Popup)
        self.setObjectName("PlaceOpPopup")
        self.setStyleSheet("#PlaceOpPopup { background: #ffffff; border: 1px solid #c9cfd8; border-radius: 6px; }"
                           "QListWidget { border: none; }")
        self.list = QListWidget()
        self.search = _SearchField(self.list)
        self.search.setPlaceholderText("Place an op…")
        self.list.setIconSize(QSize(34, 22))
        self.list.setUniformItemSizes(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.setSpacing(4)
        layout.addWidget(self.search)
        layout.addWidget(self.list)
        for _, rows in _entries():
            for name, label, search_text, icon, tip, symbol in rows:
                item = QListWidgetItem(icon, label)
                item.setData(NAME_ROLE, name)
                item.setData(SEARCH_ROLE, search_text)
                item.setToolTip(tip)
                item.setSizeHint(QSize(0, 26))
                self.list.addItem(item)
        self.list.setCurrentRow(0)
        self.resize(240, 320)
        self.search.textChanged.connect(self._on_search_changed)
        self.search.returnPressed.connect(self.accept)
        self.list.itemActivated.connect(lambda _item: self.accept())
        self.search.setFocus()

    def chosen(self) -> str | None:
        item = self.list.currentItem()
        if item is None or item.isHidden():
            return None
        return item.data(NAME_ROLE)

    def visible_names(self) -> list[str]:
        return [self.list.item(r).data(NAME_ROLE) for r in range(self.list.count()) if not self.list.item(r).isHidden()]

    def _on_search_changed(self, text: str) -> None:
        first = None
        for r in range(self.list.count()):
            item = self.list.item(r)
            shown = _matches(item.data(SEARCH_ROLE), text)
            item.setHidden(not shown)
            if shown and first is None:
                first = r
        # prefer an exact name match, then the first visible row
        exact = next((r for r in range(self.list.count())
                      if not self.list.item(r).isHidden() and self.list.item(r).data(NAME_ROLE) == text.strip()), None)
        row = exact if exact is not None else first
        if row is not None:
            self.list.setCurrentRow(row)
        else:
            self.list.setCurrentRow(-1)

    @classmethod
    def choose(cls, parent: QWidget | None, global_pos: QPoint) -> str | None:
        """Show the popup at `global_pos` and wait (modal); the op name chosen, or None if dismissed."""
        popup = cls(parent)
        popup.move(global_pos)
        if popup.exec() == QDialog.DialogCode.Accepted:
            return popup.chosen()
        return None
