"""The learning-rate schedule designer: pick a schedule and warm-up, see its whole curve, pin curves, apply to a race."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QComboBox, QGridLayout, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QVBoxLayout,
                               QWidget)

from gui.forms import param_widget, read_widget, write_widget
from gui.labs.common import ERROR_STYLE
from simulator.core.errors import StudioError
from simulator.core.params import params_of
from simulator.functional.schedules import SCHEDULES, WARMUP_PARAMS, Constant, Schedule, make_schedule

__all__ = ["ScheduleDesigner", "PIN_COLOURS"]

CURVE_COLOUR = "#1f2933"
# Pinned curves: muted, distinct from the bold current curve.
PIN_COLOURS = ("#e41a1c", "#377eb8", "#4daf4a", "#984ea3", "#ff7f00", "#a65628", "#f781bf", "#17becf")


def _describe(schedule: Schedule | None) -> str:
    if schedule is None:
        return "constant lr"
    return repr(schedule).replace("base_lr=", "a0=")


class ScheduleDesigner(QWidget):
    """Choose a schedule (SCHEDULES), its parameters and a warm-up; the curve over the whole horizon is drawn at once.
    Every control is built from the schedules' declared parameters (ranges, labels and help live there).

    Pin keeps a copy of the current curve for comparison; Apply emits ``schedule_applied`` with the schedule, or None
    for a constant rate without warm-up (the race then uses each optimizer's own lr). In a race the schedule's base
    rate is replaced by each optimizer's lr (``Schedule.with_base``), so the base lr here only sets the plot's scale.
    """

    schedule_applied = Signal(object)
    schedule_changed = Signal(object)

    def __init__(self, parent: QWidget | None = None, horizon: int = 500):
        super().__init__(parent)
        self._horizon = int(horizon)
        self._param_boxes: dict[str, QWidget] = {}
        self._pins: list[pg.PlotDataItem] = []
        self._schedule: Schedule | None = None

        self.schedule_combo = QComboBox()
        self.schedule_combo.addItems(list(SCHEDULES))
        self.schedule_combo.setCurrentText("Cosine")
        base_lr = next(p for p in params_of(Constant) if p.name == "base_lr")
        self.base_lr_box = param_widget(base_lr)
        self.formula_label = QLabel()
        self.formula_label.setStyleSheet("color: #6b7785; font-family: monospace;")
        self.formula_label.setWordWrap(True)
        warmup = {p.name: p for p in WARMUP_PARAMS}
        self.warmup_steps_box = param_widget(warmup["warmup_steps"])
        self.warmup_steps_box.setSpecialValueText("none")
        write_widget(self.warmup_steps_box, 0)        # the designer starts without warm-up
        self.start_factor_box = param_widget(warmup["start_factor"])
        self.start_factor_box.setSingleStep(0.05)
        self.error_label = QLabel()
        self.error_label.setTextFormat(Qt.TextFormat.PlainText)
        self.error_label.setStyleSheet(ERROR_STYLE)
        self.error_label.setWordWrap(True)
        self.error_label.hide()

        self.pin_button = QPushButton("Pin")
        self.pin_button.setToolTip("Keep this curve on the plot for comparison")
        self.clear_button = QPushButton("Clear pins")
        self.apply_button = QPushButton("Apply to race")
        self.apply_button.setDefault(True)
        self.constant_button = QPushButton("Constant lr")
        self.constant_button.setToolTip("Race with each optimizer's constant lr (no schedule)")
        self.applied_label = QLabel("Race uses: constant lr")
        self.applied_label.setStyleSheet("color: #6b7785;")
        self.applied_label.setWordWrap(True)

        self.plot = pg.PlotWidget(background="w")
        self.plot.setMinimumHeight(160)
        self.plot.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        pi = self.plot.getPlotItem()
        pi.showGrid(x=True, y=True, alpha=0.15)
        pi.setLabel("bottom", "step")
        pi.setLabel("left", "learning rate")
        pi.getAxis("left").enableAutoSIPrefix(False)
        pi.setMenuEnabled(False)
        pi.setTitle("Learning-rate schedule", size="10pt")
        self.legend = pi.addLegend(offset=(-8, 8), labelTextSize="8pt")
        self.curve_item = pi.plot(pen=pg.mkPen(CURVE_COLOUR, width=2.5))

        # ---- layout: the plot on top, a compact grid of controls below it
        self._params_row = QHBoxLayout()
        self._params_row.setContentsMargins(0, 0, 0, 0)
        grid = QGridLayout()
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(8)
        grid.addWidget(QLabel("Schedule"), 0, 0)
        grid.addWidget(self.schedule_combo, 0, 1)
        grid.addWidget(self._label(base_lr), 0, 2)
        grid.addWidget(self.base_lr_box, 0, 3)
        grid.addWidget(self.formula_label, 1, 0, 1, 4)
        grid.addLayout(self._params_row, 2, 0, 1, 4)
        grid.addWidget(self._label(warmup["warmup_steps"]), 3, 0)
        grid.addWidget(self.warmup_steps_box, 3, 1)
        grid.addWidget(self._label(warmup["start_factor"]), 3, 2)
        grid.addWidget(self.start_factor_box, 3, 3)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(3, 1)
        buttons = QHBoxLayout()
        for b in (self.pin_button, self.clear_button, self.constant_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        buttons.addWidget(self.apply_button)
        root = QVBoxLayout(self)
        root.setContentsMargins(4, 4, 4, 4)
        root.addWidget(self.plot, 1)
        root.addLayout(grid)
        root.addWidget(self.error_label)
        root.addLayout(buttons)
        root.addWidget(self.applied_label)

        self.schedule_combo.currentTextChanged.connect(self._on_schedule_kind_changed)
        self.base_lr_box.valueChanged.connect(self._on_params_changed)
        self.warmup_steps_box.valueChanged.connect(self._on_params_changed)
        self.start_factor_box.valueChanged.connect(self._on_params_changed)
        self.pin_button.clicked.connect(self.pin)
        self.clear_button.clicked.connect(self.clear_pins)
        self.apply_button.clicked.connect(self.apply)
        self.constant_button.clicked.connect(self.apply_constant)
        self._on_schedule_kind_changed(self.schedule_combo.currentText())

    @staticmethod
    def _label(p) -> QLabel:
        label = QLabel(p.title[:1].upper() + p.title[1:])
        label.setToolTip(p.doc)
        return label

    # ------------------------------------------------------------------------------------------------- public API
    @property
    def horizon(self) -> int:
        return self._horizon

    def set_horizon(self, n_steps: int) -> None:
        """Draw curves over n_steps updates; a length parameter that followed the old horizon follows the new one."""
        old, self._horizon = self._horizon, max(1, int(n_steps))
        for name, box in self._param_boxes.items():
            if name == "total_steps" and read_widget(box) == old:
                write_widget(box, self._horizon)
        self._redraw()  # pinned curves are snapshots: they keep the horizon they were drawn with

    def schedule(self) -> Schedule | None:
        """The schedule the widgets describe (None when they do not make a valid one)."""
        return self._schedule

    def pin(self) -> None:
        if self._schedule is None:
            return
        x, y = self.curve_item.getData()
        colour = PIN_COLOURS[len(self._pins) % len(PIN_COLOURS)]
        item = self.plot.getPlotItem().plot(np.array(x), np.array(y), pen=pg.mkPen(colour, width=1.5,
                                                                                   style=Qt.PenStyle.DashLine),
                                            name=self._short_name())
        self._pins.append(item)

    def clear_pins(self) -> None:
        pi = self.plot.getPlotItem()
        for item in self._pins:
            pi.removeItem(item)
        self._pins.clear()

    @property
    def pinned(self) -> list[pg.PlotDataItem]:
        return list(self._pins)

    def apply(self) -> None:
        """Emit the current schedule (None for constant without warm-up) for the race."""
        s = self._schedule
        if s is None and self.error_label.isVisible():
            return
        if s is not None and self.schedule_combo.currentText() == "Constant" and self.warmup_steps_box.value() == 0:
            s = None
        self.applied_label.setText(f"Race uses: {self._short_name() if s is not None else 'constant lr'}")
        self.schedule_applied.emit(s)

    def apply_constant(self) -> None:
        self.applied_label.setText("Race uses: constant lr")
        self.schedule_applied.emit(None)

    # -------------------------------------------------------------------------------------------------- internals
    def _short_name(self) -> str:
        kind = self.schedule_combo.currentText()
        parts = [f"{n}={read_widget(b):g}" for n, b in self._param_boxes.items()]
        text = kind + (f" ({', '.join(parts)})" if parts else "")
        if self.warmup_steps_box.value():
            text += f" + warm-up {self.warmup_steps_box.value()}"
        return text

    def _on_schedule_kind_changed(self, kind: str) -> None:
        while self._params_row.count():
            w = self._params_row.takeAt(0).widget()
            if w is not None:
                w.hide()
                w.setParent(None)
                w.deleteLater()
        self._param_boxes.clear()
        info = SCHEDULES[kind]
        self.formula_label.setText(f"lr(t) = {info.formula}")
        for spec in info.params:
            box = param_widget(spec)
            # lengths follow the race: the decay spans the whole horizon, a step decay drops four times
            if spec.name == "total_steps":
                write_widget(box, self._horizon)
            elif spec.name == "step_size":
                write_widget(box, max(1, self._horizon // 4))
            box.valueChanged.connect(self._on_params_changed)
            self._param_boxes[spec.name] = box
            self._params_row.addWidget(self._label(spec))
            self._params_row.addWidget(box, 1)
        self._redraw()

    def _on_params_changed(self, *_: object) -> None:
        self._redraw()

    def _redraw(self) -> None:
        kind = self.schedule_combo.currentText()
        params = {n: read_widget(b) for n, b in self._param_boxes.items()}
        try:
            s = make_schedule(kind, read_widget(self.base_lr_box), warmup_steps=read_widget(self.warmup_steps_box),
                              start_factor=read_widget(self.start_factor_box), **params)
            y = s.curve(self._horizon)
        except StudioError as exc:  # a bad combination is shown, never raised
            self._schedule = None
            self.error_label.setText(str(exc))
            self.error_label.show()
            return
        self.error_label.hide()
        self._schedule = s
        self.curve_item.setData(np.arange(self._horizon, dtype=np.float64), y)
        self.plot.getPlotItem().enableAutoRange()
        self.schedule_changed.emit(s)
