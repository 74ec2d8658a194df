"""The inspector: everything about the selected node — op, formula, local gradients, attributes, the values that
flowed in, its output and its gradient at the current step — with editable name, kind, value and attributes."""
from __future__ import annotations

import ast
import html

import numpy as np
import shiboken6
from PySide6.QtCore import Qt
from PySide6.QtGui import QUndoStack
from PySide6.QtWidgets import (QComboBox, QFormLayout, QFrame, QLabel, QLineEdit, QScrollArea,
                               QSpinBox, QVBoxLayout, QWidget)

from gui import commands, theme
from gui.panels.tensor_view import TensorView
from gui.stepping.player import StepPlayer
from simulator import Graph, GraphChange
from simulator.graphs.graph import MAX_ELEMENTS

KIND_NAMES = {"input": "Input", "param": "Parameter (trainable)", "const": "Constant"}


def value_to_text(v: np.ndarray) -> str:
    if v.ndim == 0:
        return f"{float(v):.10g}"
    if v.size > 400:
        return f"<tensor {v.shape}>"
    return np.array2string(v, separator=", ", precision=6, suppress_small=True, max_line_width=10_000,
                           threshold=10_000).replace("\n", "")


def parse_value(text: str) -> np.ndarray:
    """A number or a nested list of numbers, read with ast.literal_eval (never eval). Raises ValueError."""
    text = text.strip()
    if not text:
        raise ValueError("type a number, or a list such as [[1, 2], [3, 4]]")
    if len(text) > 200_000:
        raise ValueError("that value is too long to type; load it from a file instead")
    try:
        raw = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise ValueError(f"'{text[:40]}' is not a number or a list of numbers") from None
    if _contains_bool(raw):
        raise ValueError("True and False are not numbers here; type 1 or 0")
    try:
        arr = np.array(raw, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise ValueError("a value must be a number or a rectangular list of numbers") from None
    if arr.size > MAX_ELEMENTS:
        raise ValueError("that value is too large")
    return arr


def _contains_bool(raw) -> bool:
    stack = [raw]
    while stack:
        item = stack.pop()
        if isinstance(item, bool):
            return True
        if isinstance(item, (list, tuple)):
            stack.extend(item)
    return False


def _section(text: str) -> QLabel:
    label = QLabel(text)
    label.setObjectName("SectionHeader")
    return label


def _guard(fn):
    """Mark an inspector slot as one of its own widget callbacks: the form it belongs to must outlive it."""
    def slot(self, *args):
        self._busy += 1
        try:
            return fn(self, *args)
        finally:
            self._busy -= 1
    slot.__name__ = fn.__name__
    return slot


class InspectorPanel(QScrollArea):
    def __init__(self, graph: Graph, undo_stack: QUndoStack, player: StepPlayer, parent: QWidget | None = None):
        super().__init__(parent)
        self.graph = graph
        self.undo_stack = undo_stack
        self.player = player
        self.node_id: str | None = None
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.NoFrame)
        # Each form lives in its own body widget. A replaced body is retired, not deleted, while one of our own
        # widget callbacks may still be running (an edit re-forms the panel from inside the editor's signal);
        # retired bodies are destroyed at the next re-form outside such a callback. Deleting through
        # deleteLater alone leaked every form when the window stepped without returning to the event loop.
        self._busy = 0
        self._retired: list[QWidget] = []
        self._new_body()
        self.value_edit: QLineEdit | None = None
        self.name_edit: QLineEdit | None = None
        self.error_label: QLabel | None = None
        self.attr_widgets: dict[str, QWidget] = {}
        self.views: dict[str, TensorView] = {}
        graph.changed.connect(self._on_graph_changed)
        player.position_changed.connect(self._on_position_changed)
        player.trace_rebuilt.connect(self._refresh_values)
        player.busy_changed.connect(self._refresh_values)     # recomputing: the old trace's numbers leave the views
        self.set_node(None)

    def close_panel(self) -> None:
        self.graph.changed.disconnect(self._on_graph_changed)

    # ---- building the form ----------------------------------------------------------------------------------

    def _new_body(self) -> None:
        self._body = QWidget()
        self._layout = QVBoxLayout(self._body)
        self._layout.setContentsMargins(12, 10, 12, 10)
        self._layout.setSpacing(6)
        self.setWidget(self._body)

    def _clear(self) -> None:
        self.value_edit = self.name_edit = self.error_label = None
        self.attr_widgets = {}
        self.views = {}
        old = self.takeWidget()
        if old is not None:
            old.hide()
            old.deleteLater()         # the event loop frees it if no re-form comes first
            self._retired.append(old)
        self._purge_retired()
        self._new_body()

    def _purge_retired(self) -> None:
        if self._busy:
            return
        retired, self._retired = self._retired, []
        for w in retired:
            if shiboken6.isValid(w):
                shiboken6.delete(w)

    @property
    def retired_count(self) -> int:
        """Replaced forms not yet destroyed (tests watch this stay small)."""
        return len(self._retired)

    def set_node(self, node_id: str | None) -> None:
        self.node_id = node_id if node_id in self.graph else None
        self._clear()
        if self.node_id is None:
            hint = QLabel("Select a node to see its formula, its local gradients and the numbers flowing through it."
                          "\n\nDouble-click the canvas or drag from the palette to add ops; drag from an output dot "
                          "to an input dot to wire them.")
            hint.setWordWrap(True)
            hint.setObjectName("Muted")
            self._layout.addWidget(hint)
            self._layout.addStretch(1)
            return
        node = self.graph.node(self.node_id)
        header = QLabel(f"<span style='font-size:15pt;font-weight:600'>{html.escape(node.id)}</span>"
                        f"<span style='color:{theme.MUTED_HEX}'>  {html.escape(node.op or KIND_NAMES[node.kind])}</span>")
        self._layout.addWidget(header)
        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignRight)
        self.name_edit = QLineEdit(node.id)
        self.name_edit.setToolTip("Rename the node (letters, digits and _)")
        self.name_edit.editingFinished.connect(self._on_rename)
        form.addRow("Name", self.name_edit)
        if node.is_leaf:
            kind = QComboBox()
            for k, text in KIND_NAMES.items():
                kind.addItem(text, k)
            kind.setCurrentIndex(list(KIND_NAMES).index(node.kind))
            kind.currentIndexChanged.connect(lambda i, c=kind: self._set_kind(c.itemData(i)))
            form.addRow("Kind", kind)
            self.value_edit = QLineEdit(value_to_text(node.value))
            self.value_edit.setToolTip("A number, or a list such as [[1, 2], [3, 4]]; press Enter to apply")
            self.value_edit.returnPressed.connect(self._on_value_entered)
            form.addRow("Value", self.value_edit)
        else:
            spec = node.spec
            for a in spec.attrs:
                w = self._attr_widget(a, node.attrs.get(a.name, a.default))
                self.attr_widgets[a.name] = w
                form.addRow(a.name, w)
        self._layout.addLayout(form)
        self.error_label = QLabel("")
        self.error_label.setObjectName("ErrorText")
        self.error_label.setWordWrap(True)
        self.error_label.hide()
        self._layout.addWidget(self.error_label)
        if not node.is_leaf:
            spec = node.spec
            self._layout.addWidget(_section("Formula"))
            f = QLabel(f"<span style='font-size:13pt'>{html.escape(node.id)} = {html.escape(spec.formula)}</span>")
            f.setTextInteractionFlags(Qt.TextSelectableByMouse)
            self._layout.addWidget(f)
            self._layout.addWidget(_section("Local gradients"))
            for port, g in spec.local_grad.items():
                lg = QLabel(f"∂{html.escape(node.id)}/∂{html.escape(port)} = "
                            f"<span style='color:{theme.LOCAL_HEX}'>{html.escape(g)}</span>")
                lg.setWordWrap(True)
                self._layout.addWidget(lg)
            doc = QLabel(spec.doc)
            doc.setWordWrap(True)
            doc.setObjectName("Muted")
            self._layout.addWidget(doc)
            self._layout.addWidget(_section("Inputs"))
            for port in spec.inputs:
                edge = self.graph.edge_into(node.id, port)
                src = edge.src if edge else "(not connected)"
                self._layout.addWidget(QLabel(f"{html.escape(port)} ← <b>{html.escape(src)}</b>"))
                self.views[f"in:{port}"] = self._add_view()
        self._layout.addWidget(_section("Value" if node.is_leaf else "Output"))
        self.views["value"] = self._add_view()
        out = self.player.trace.output if self.player.trace is not None else "L"
        grad_title = QLabel(f"Gradient <span style='color:{theme.GRAD_HEX}'>d{html.escape(out)}/"
                            f"d{html.escape(node.id)}</span>")
        grad_title.setObjectName("SectionHeader")
        self._layout.addWidget(grad_title)
        self.views["grad"] = self._add_view()
        self._layout.addStretch(1)
        self._refresh_values()

    def _add_view(self) -> TensorView:
        v = TensorView()
        self._layout.addWidget(v)
        return v

    def _attr_widget(self, a, value) -> QWidget:
        if a.kind == "float":  # a line edit, so 1e-05 shows as itself rather than as 0.0000
            w = QLineEdit(f"{float(value):g}")
            w.setToolTip(a.doc)
            w.editingFinished.connect(lambda n=a.name, w=w: self._set_attr_text(n, w.text(), "float"))
            return w
        if a.kind == "int":
            w = QSpinBox()
            w.setRange(int(a.minimum) if a.minimum is not None else -10**6,
                       int(a.maximum) if a.maximum is not None and a.maximum < 2**31 else 10**6)
            w.setValue(int(value))
            w.editingFinished.connect(lambda n=a.name, w=w: self._set_attr(n, w.value()))
            return w
        w = QLineEdit("" if value is None else (", ".join(map(str, value)) if isinstance(value, tuple) else str(value)))
        w.setPlaceholderText("None" if a.kind == "axis" else "")
        w.setToolTip(a.doc)
        w.editingFinished.connect(lambda n=a.name, w=w, k=a.kind: self._set_attr_text(n, w.text(), k))
        return w

    # ---- edits ----------------------------------------------------------------------------------------------

    def _push(self, cmd) -> bool:
        error = commands.push(self.undo_stack, cmd)
        if self.error_label is not None:
            self.error_label.setVisible(error is not None)
            self.error_label.setText(error or "")
        return error is None

    @_guard
    def _set_kind(self, kind: str) -> None:
        if not self._push(commands.SetKindCommand(self.graph, self.node_id, kind)):
            error = self.error_label.text()
            self.set_node(self.node_id)  # show the kind the model kept
            self.error_label.setText(error)
            self.error_label.show()

    @_guard
    def _on_rename(self) -> None:
        if self.name_edit is None or self.node_id is None:
            return
        new = self.name_edit.text().strip()
        if new and new != self.node_id:
            self._push(commands.RenameCommand(self.graph, self.node_id, new))

    @_guard
    def _on_value_entered(self) -> None:
        if self.value_edit is None or self.node_id is None:
            return
        try:
            value = parse_value(self.value_edit.text())
        except ValueError as exc:
            self.error_label.setText(str(exc))
            self.error_label.show()
            return
        self._push(commands.SetValueCommand(self.graph, self.node_id, value))

    @_guard
    def _set_attr(self, name: str, value) -> None:
        node = self.graph.node(self.node_id)
        if node.attrs.get(name) != value:
            self._push(commands.SetAttrsCommand(self.graph, self.node_id, {name: value}))

    @_guard
    def _set_attr_text(self, name: str, text: str, kind: str) -> None:
        text = text.strip()
        try:
            if kind == "axis":
                value = None if text in ("", "None", "none") else int(text)
            elif kind == "float":
                value = float(text)
            elif kind == "shape":
                value = tuple(int(t) for t in text.replace("(", "").replace(")", "").split(",") if t.strip())
            else:
                value = text
        except ValueError:
            self.error_label.setText(f"'{text}' is not valid for {name}")
            self.error_label.show()
            return
        self._set_attr(name, value)

    # ---- following the model and the player -----------------------------------------------------------------

    def _on_graph_changed(self, change: GraphChange) -> None:
        if change.kind == "node_renamed" and change.old == self.node_id:
            self.set_node(change.node)
        elif change.kind in ("node_removed", "reset") and (change.node == self.node_id or change.kind == "reset"):
            self.set_node(self.node_id if self.node_id in self.graph else None)
        elif change.node == self.node_id and change.kind in ("value_changed", "attrs_changed"):
            self.set_node(self.node_id)
        elif change.kind in ("edge_added", "edge_removed") and change.edge and change.edge.dst == self.node_id:
            self.set_node(self.node_id)

    def _on_position_changed(self, _k: int) -> None:
        self._refresh_values()

    def _refresh_values(self, *_) -> None:
        if self.node_id is None or self.node_id not in self.graph:
            return
        state = self.player.state()
        node = self.graph.node(self.node_id)
        values = state.values if state else ({node.id: node.value} if node.is_leaf else {})
        grads = state.grads if state else {}
        if "value" in self.views:
            self.views["value"].set_value(values.get(node.id))
        if "grad" in self.views:
            self.views["grad"].set_value(grads.get(node.id))
        for port in node.ports:
            view = self.views.get(f"in:{port}")
            edge = self.graph.edge_into(node.id, port)
            if view is not None:
                view.set_value(values.get(edge.src) if edge else None)
