"""The network builder: a layer stack edited as a table (add, remove, reorder, configure), with live shapes and counts.

The stack is a list of layer records (simulator/nn/layers.py, frozen dataclasses of declared fields); the form of the
selected layer is built from ``params_of(spec)``, so every range, label and help text comes from the record. The data decide the input shape and the
number of classes, so the last layer, Linear(C), is fixed and shown as the output row; everything above it is the
learner's. Every change rebuilds a throw-away Network (no data needed: shapes come from the specs alone) to fill the
table from ``Network.describe()``; an impossible stack keeps the table (shapes shown as "?") and shows the
ShapeError's message in red under it, and ``is_valid()`` turns False so the playground disables training.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QFont, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QStyle,
    QStyledItemDelegate,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from gui import theme
from gui.forms import ParamForm, changed_signal, param_widget, read_widget, write_widget
from gui.labs.common import ERROR_STYLE, MUTED_STYLE
from simulator.core.errors import StudioError
from simulator.core.params import params_of
from simulator.nn.layers import (
    LAYER_KINDS,
    Activation,
    BatchNorm,
    Conv2d,
    DropConnect,
    Flatten,
    FractionalMaxPool,
    GroupNorm,
    LayerSpec,
    Linear,
    MaxPool,
    ResidualBlock,
)
from simulator.nn.network import Network, Objective

__all__ = ["LAYER_TYPES", "PRESETS", "NetworkBuilder", "default_layer"]

LAYER_TYPES = tuple(LAYER_KINDS)
_INIT = next(p for p in params_of(Objective) if p.name == "init")     # the lecture's names for the inits
PRESETS: dict[str, tuple[LayerSpec, ...]] = {
    "2-64-3 MLP": (Linear(64), Activation("relu")),
    "2-16-16 tanh MLP": (Linear(16), Activation("tanh"), Linear(16), Activation("tanh")),
    "Small CNN": (Conv2d(16, 3, pad=1), Activation("relu"), MaxPool(2, 2), Flatten()),
    # lecture 8: a residual block with stochastic depth, then fractional max pooling (ratio 1/√2)
    "Small ResNet": (Conv2d(16, 3, pad=1), BatchNorm(), Activation("relu"), ResidualBlock(p=0.1),
                     FractionalMaxPool(), Flatten()),
    # lecture 7/8: group norm (batch-independent) after the conv, DropConnect on the hidden fully connected layer
    "CNN + GroupNorm + DropConnect": (Conv2d(16, 3, pad=1), GroupNorm(4), Activation("relu"), MaxPool(2, 2),
                                      Flatten(), DropConnect(64, 0.3), Activation("relu")),
    "Digits MLP": (Flatten(), Linear(64), Activation("relu")),
    "Linear classifier": (),
}
_BAD_ROW = QColor("#fbeaea")
_OUTPUT_ROW = QColor("#f2f4f7")
_SKIP_ROW = QColor("#eef4fb")
SKIP_ROLE = Qt.ItemDataRole.UserRole + 7      # a layer cell's skip path ("identity", "1×1 conv s2"): draw the bracket
# What "Add" inserts where it differs from the record's declared defaults: a padded conv keeps the image size.
_ADD_OVERRIDES = {"Conv2d": {"pad": 1}}


def default_layer(kind: str) -> LayerSpec:
    """The spec a fresh "Add" inserts: the layer record's declared defaults (Linear(32), Activation("relu"), ...)."""
    return LAYER_KINDS[kind](**_ADD_OVERRIDES.get(kind, {}))


def _shape_text(shape: tuple[int, ...]) -> str:
    return "×".join(map(str, shape))


class _SkipDelegate(QStyledItemDelegate):
    """Draws a residual block's skip connection beside its label: a bracket from the row's top (the block's input)
    around the block to an arrowhead at its bottom (the sum), so the row reads as "x goes around F"."""

    def paint(self, painter: QPainter, option: Any, index: Any) -> None:
        if not index.data(SKIP_ROLE):
            super().paint(painter, option, index)
            return
        rect = option.rect
        option.rect = rect.adjusted(0, 0, -18, 0)   # the label stays clear of the bracket
        super().paint(painter, option, index)
        option.rect = rect
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)    # white on the selection's accent
        painter.setPen(QPen(QColor("white") if selected else theme.ACCENT, 1.6))
        x0, x1 = rect.right() - 15, rect.right() - 5
        top, bottom = rect.top() + 4, rect.bottom() - 4
        path = QPainterPath()
        path.moveTo(x0, top)
        path.lineTo(x1, top)
        path.lineTo(x1, bottom)
        path.lineTo(x0, bottom)
        painter.drawPath(path)
        head = QPainterPath()                        # the arrowhead where the skip joins F(x)
        head.moveTo(x0 + 4, bottom - 3)
        head.lineTo(x0, bottom)
        head.lineTo(x0 + 4, bottom + 3)
        painter.drawPath(head)
        painter.restore()


class NetworkBuilder(QWidget):
    """Edit a layer stack. Signals: ``stack_changed()`` after any edit (layers, loss, regularisation, init).

    Children for tests: table (rows: the input, each layer, the fixed output layer), add_combo, add_button,
    remove_button, up_button, down_button, preset_combo, layer_form (QFormLayout of the selected layer's fields),
    init_combo, loss_combo, reg_box, reg_kind_combo, error_label, summary_label.
    """

    stack_changed = Signal()

    def __init__(self, parent: QWidget | None = None, input_shape: tuple[int, ...] = (2,), num_classes: int = 3):
        super().__init__(parent)
        self._input_shape = tuple(input_shape)
        self._classes = int(num_classes)
        self._layers: list[LayerSpec] = list(PRESETS["2-64-3 MLP"])
        self._error: str | None = None
        self._form_widgets: list[QWidget] = []
        self._updating = False

        self.preset_combo = QComboBox()
        self.preset_combo.addItems(list(PRESETS))
        self.preset_combo.setToolTip("Replace the stack with a preset")
        self.preset_button = QPushButton("Load")
        self.preset_button.clicked.connect(lambda: self.load_preset(self.preset_combo.currentText()))

        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["#", "Layer", "Output", "Params"])
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setDefaultSectionSize(22)
        hh = self.table.horizontalHeader()
        hh.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        hh.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        hh.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        hh.setSectionResizeMode(3, QHeaderView.ResizeMode.ResizeToContents)
        self.table.setMinimumHeight(22 * 7 + 28)
        self.table.itemSelectionChanged.connect(self._rebuild_form)
        self._skip_delegate = _SkipDelegate(self.table)     # kept: the view does not own its delegates
        self.table.setItemDelegateForColumn(1, self._skip_delegate)
        self._in_shapes: list[tuple[int, ...] | None] = []

        self.add_combo = QComboBox()
        self.add_combo.addItems(list(LAYER_TYPES))
        self.add_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.add_combo.setMinimumContentsLength(8)
        self.add_button = QPushButton("+ Add")
        self.add_button.setToolTip("Insert the layer below the selected row")
        self.remove_button = QPushButton("− Remove")
        self.up_button = QToolButton()
        self.up_button.setText("▲")
        self.up_button.setToolTip("Move the selected layer up")
        self.down_button = QToolButton()
        self.down_button.setText("▼")
        self.down_button.setToolTip("Move the selected layer down")
        self.add_button.clicked.connect(lambda: self.add_layer(self.add_combo.currentText()))
        self.remove_button.clicked.connect(lambda: self.remove_layer(self.selected_layer()))
        self.up_button.clicked.connect(lambda: self.move_layer(self.selected_layer(), -1))
        self.down_button.clicked.connect(lambda: self.move_layer(self.selected_layer(), +1))

        self.form_title = QLabel()
        self.form_title.setStyleSheet("font-weight: 600;")
        self.layer_form = QFormLayout()
        self.layer_form.setContentsMargins(0, 0, 0, 0)

        self.error_label = QLabel()
        self.error_label.setObjectName("ErrorText")
        self.error_label.setStyleSheet(ERROR_STYLE)
        self.error_label.setWordWrap(True)
        self.error_label.hide()
        self.summary_label = QLabel()
        self.summary_label.setStyleSheet(MUTED_STYLE)

        # init, loss and regularisation: declared once, in simulator.nn.network.Objective
        self.objective_form = ParamForm(Objective)
        w = self.objective_form.widgets
        self.init_combo, self.loss_combo, self.reg_box, self.reg_kind_combo = (w["init"], w["loss"], w["reg"],
                                                                               w["reg_kind"])
        self.objective_form.edited.connect(self._on_setting_changed)

        # ---- layout
        root = QVBoxLayout(self)
        root.setContentsMargins(0, 0, 0, 0)
        preset_row = QHBoxLayout()
        preset_row.addWidget(self.preset_combo, 1)
        preset_row.addWidget(self.preset_button)
        root.addLayout(preset_row)
        root.addWidget(self.table)
        edit_row = QHBoxLayout()
        edit_row.addWidget(self.add_combo, 1)
        edit_row.addWidget(self.add_button)
        edit_row.addWidget(self.remove_button)
        edit_row.addWidget(self.up_button)
        edit_row.addWidget(self.down_button)
        root.addLayout(edit_row)
        root.addWidget(self.error_label)
        root.addWidget(self.summary_label)
        root.addWidget(self.form_title)
        root.addLayout(self.layer_form)
        root.addWidget(self.objective_form)

        self._refresh()

    # ================================================================================================ public API
    def layers(self) -> list[LayerSpec]:
        """The learner's layers followed by the fixed output layer Linear(C)."""
        return [*self._layers, Linear(self._classes)]

    def hidden_layers(self) -> list[LayerSpec]:
        return list(self._layers)

    def set_layers(self, layers: list[LayerSpec]) -> None:
        self._layers = list(layers)
        self._refresh(select=None)
        self.stack_changed.emit()

    def set_data_shape(self, input_shape: tuple[int, ...], num_classes: int) -> None:
        """The data's sample shape (no batch axis) and number of classes; the output layer follows them."""
        input_shape, num_classes = tuple(input_shape), int(num_classes)
        if input_shape == self._input_shape and num_classes == self._classes:
            return
        self._input_shape, self._classes = input_shape, num_classes
        self._refresh(select=self.selected_layer())
        self.stack_changed.emit()

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self._input_shape

    @property
    def num_classes(self) -> int:
        return self._classes

    def load_preset(self, name: str) -> None:
        self.preset_combo.setCurrentText(name)
        self.set_layers(list(PRESETS[name]))

    def network_kwargs(self) -> dict[str, Any]:
        return self.objective_form.value().as_dict()

    def build_network(self, seed: int = 0, dtype: Any = None) -> Network:
        """A fresh Network of the current stack (raises ShapeError/ValueInputError for an impossible one)."""
        kw = self.network_kwargs()
        if dtype is not None:
            kw["dtype"] = dtype
        return Network(self._input_shape, self.layers(), seed=seed, **kw)

    def is_valid(self) -> bool:
        return self._error is None

    def error(self) -> str | None:
        """The message of the stack's ShapeError (or other refusal), None when the stack is possible."""
        return self._error

    def selected_layer(self) -> int:
        """Index into the learner's layers of the selected row, -1 for none (the input or output row)."""
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return -1
        i = rows[0].row() - 1
        return i if 0 <= i < len(self._layers) else -1

    def select_layer(self, i: int) -> None:
        self.table.selectRow(i + 1)

    def add_layer(self, kind: str | LayerSpec, index: int | None = None) -> int:
        """Insert a layer (a LAYER_TYPES name or a spec) after the selected one (or at `index`); returns its index."""
        spec = default_layer(kind) if isinstance(kind, str) else kind
        if index is None:
            sel = self.selected_layer()
            index = sel + 1 if sel >= 0 else len(self._layers)
        index = max(0, min(index, len(self._layers)))
        self._layers.insert(index, spec)
        self._refresh(select=index)
        self.stack_changed.emit()
        return index

    def remove_layer(self, i: int) -> None:
        if not 0 <= i < len(self._layers):
            return
        del self._layers[i]
        self._refresh(select=min(i, len(self._layers) - 1) if self._layers else None)
        self.stack_changed.emit()

    def move_layer(self, i: int, delta: int) -> None:
        j = i + delta
        if not (0 <= i < len(self._layers) and 0 <= j < len(self._layers)):
            return
        self._layers[i], self._layers[j] = self._layers[j], self._layers[i]
        self._refresh(select=j)
        self.stack_changed.emit()

    def replace_layer(self, i: int, spec: LayerSpec) -> None:
        self._layers[i] = spec
        self._refresh(select=i, rebuild_form=False)
        self.stack_changed.emit()

    # ================================================================================================ internals
    def _on_setting_changed(self, *_: object) -> None:
        if not self._updating:
            self._refresh(select=self.selected_layer(), rebuild_form=False)
            self.stack_changed.emit()

    def _refresh(self, select: int | None = -1, rebuild_form: bool = True) -> None:
        """Re-describe the stack and refill the table; select a learner layer index (None: none, -1: keep)."""
        if select == -1:
            select = self.selected_layer()
        rows = None
        try:
            net = Network(self._input_shape, self.layers(), seed=0, **self.network_kwargs())
            rows = net.describe()
            self._error = None
        except StudioError as exc:
            self._error = str(exc)
        bad_layer = None
        if self._error:
            m = re.match(r"layer (\d+)", self._error)
            bad_layer = int(m.group(1)) - 1 if m else len(self._layers)   # "the last layer gives ..." -> output row

        t = self.table
        self._updating = True
        t.blockSignals(True)
        t.setRowCount(len(self._layers) + 2)
        mono = theme.font(9, mono=True)

        def put(r: int, c: int, text: str, bg: QColor | None = None, bold: bool = False, muted: bool = False) -> None:
            it = QTableWidgetItem(text)
            if c >= 2:
                it.setFont(mono)
                it.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            if bold:
                f = QFont(it.font())
                f.setBold(True)
                it.setFont(f)
            if muted:
                it.setForeground(theme.TEXT_MUTED)
            if bg is not None:
                it.setBackground(bg)
            t.setItem(r, c, it)

        put(0, 0, "", muted=True)
        put(0, 1, "Input", muted=True)
        put(0, 2, _shape_text(self._input_shape), muted=True)
        put(0, 3, "", muted=True)
        specs = self.layers()
        self._in_shapes = [self._input_shape, *([r.output_shape for r in rows] if rows is not None
                                                else [None] * len(specs))][:len(specs)]
        for i, spec in enumerate(specs):
            r = i + 1
            is_output = i == len(self._layers)
            bg = _BAD_ROW if bad_layer == i else (_OUTPUT_ROW if is_output else None)
            label = spec.label() + (" (output)" if is_output else "")
            if getattr(spec, "init", None):                     # a layer's own initialisation
                label += f" · {_INIT.choice_label(spec.init)}"
            skip = spec.skip_path(self._in_shapes[i])
            if skip is not None:                                # a residual block: its skip connection is drawn
                label += "  ↳ skip"                           # the path itself: tooltip, form, bracket
                bg = _SKIP_ROW if bg is None else bg
            put(r, 0, str(i + 1), bg, muted=True)
            put(r, 1, label, bg, bold=is_output)
            if skip is not None:
                t.item(r, 1).setData(SKIP_ROLE, skip[1])
                t.item(r, 1).setToolTip(f"out = relu(F(x) + skip(x))\nF: {skip[0]}\nskip: {skip[1]}")
            if rows is not None:
                put(r, 2, _shape_text(rows[i].output_shape), bg)
                put(r, 3, f"{rows[i].params:,}" if rows[i].params else "–", bg)
            else:
                put(r, 2, "?", bg, muted=True)
                put(r, 3, "", bg)
        t.blockSignals(False)
        if select is not None and 0 <= select < len(self._layers):
            t.selectRow(select + 1)
        else:
            t.clearSelection()
        self._updating = False

        if self._error:
            self.error_label.setText("⚠ " + self._error)
            self.error_label.show()
            self.summary_label.setText("This stack cannot run: fix it to train.")
        else:
            self.error_label.hide()
            total = sum(r.params for r in rows)
            self.summary_label.setText(f"{len(specs)} layers · {total:,} parameters")
        self._update_buttons()
        if rebuild_form:
            self._rebuild_form()

    def _update_buttons(self) -> None:
        i = self.selected_layer()
        self.remove_button.setEnabled(i >= 0)
        self.up_button.setEnabled(i > 0)
        self.down_button.setEnabled(0 <= i < len(self._layers) - 1)

    def _rebuild_form(self) -> None:
        if self._updating:
            return
        self._update_buttons()
        while self.layer_form.rowCount():
            self.layer_form.removeRow(0)
        self._form_widgets = []
        i = self.selected_layer()
        if i < 0:
            self.form_title.setText("Select a layer to configure it")
            self.form_title.setStyleSheet(MUTED_STYLE)
            return
        spec = self._layers[i]
        self.form_title.setText(f"Layer {i + 1}: {type(spec).__name__}")
        self.form_title.setStyleSheet("font-weight: 600;")
        # one editor per declared field of the layer record (type, range, label and help come from params_of)
        skip = spec.skip_path(self._in_shapes[i] if i < len(self._in_shapes) else None)
        if skip is not None:                         # the block's two paths, in words
            note = QLabel(f"out = relu(F(x) + skip(x)) · F: {skip[0]} · skip: {skip[1]}")
            note.setObjectName("skip_note")
            note.setWordWrap(True)
            note.setStyleSheet(MUTED_STYLE)
            self.layer_form.addRow(note)
        fields = params_of(spec)
        if not fields:
            note = QLabel("no settings")
            note.setStyleSheet(MUTED_STYLE)
            self.layer_form.addRow(note)
        for p in fields:
            w = param_widget(p)
            if p.name == "init":                     # the network's default, and the lecture's names
                for k in range(w.count()):
                    key = w.itemData(k)
                    w.setItemText(k, "(network default)" if key is None else _INIT.choice_label(key))
                w.setToolTip(_INIT.doc.split("\n", 1)[1])
            write_widget(w, getattr(spec, p.name))
            changed_signal(w).connect(lambda *_, w=w, i=i, k=p.name: self._on_field(i, k, read_widget(w)))
            w.setObjectName(f"field_{p.name}")
            self._form_widgets.append(w)
            label = QLabel(p.title)
            if p.doc:
                label.setToolTip(p.doc)
            self.layer_form.addRow(label, w)

    def _on_field(self, i: int, key: str, value: Any) -> None:
        if not 0 <= i < len(self._layers):
            return
        try:
            spec = dataclasses.replace(self._layers[i], **{key: value})
        except StudioError as exc:
            self.error_label.setText("⚠ " + str(exc))
            self.error_label.show()
            return
        self.replace_layer(i, spec)

    def field_widget(self, name: str) -> QWidget | None:
        """The selected layer's form widget for a field (tests, main window)."""
        return next((w for w in self._form_widgets if w.objectName() == f"field_{name}"), None)
