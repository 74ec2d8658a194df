"""The optimizer race lab: a loss surface, optimizers racing across it (computed ahead off the GUI thread), live plots.

The race is computed once per change of setting by ``simulator.labs.surfaces.race`` in a ``RaceWorker`` (QThread); playback
is one QTimer that, per frame, only calls ``setData`` with slice views of the pre-computed arrays (trajectories,
transformed losses, gradients). Nothing is recomputed per frame.

Arrows (optional) at each current point: the descent direction -grad f (thin, dark) and the step actually taken,
x_{t+1} - x_t (thick, in the optimizer's colour). For SGD with momentum that step is exactly the lecture's velocity
v_{t+1}; for Adam it is -lr m^ / (sqrt(v^) + eps), the moment-scaled step. Both come from the race's trajectory and
from gradients evaluated once in the worker along it, so no optimizer state has to be replayed. The arrows show
directions at a fixed length (their magnitudes span many decades).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, QSize, Qt, QThread, QTimer, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QGraphicsItem,
                               QHBoxLayout, QHeaderView, QLabel, QLineEdit, QProgressBar, QPushButton, QSlider, QSpinBox,
                               QSplitter, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from gui.labs.common import ERROR_STYLE, HYPER_FIELDS, MUTED_STYLE, PALETTE, control_column, error_text, group
from gui.forms import LogSpinBox
from gui.labs.schedule_designer import ScheduleDesigner
from simulator.functional.optim import OPTIMIZERS
from simulator.functional.schedules import Schedule
from simulator.labs.surfaces import SURFACES, ExpressionSurface, NoisyGradient, RaceResult, Surface, make_surface, race

__all__ = ["OptimizerLab", "OptimizerEntry", "RaceWorker", "DEFAULT_OPTIMIZERS"]

# Surface colours: light at the bottom of the valley, slate at the top, so coloured paths stand out everywhere.
SURFACE_CMAP = pg.ColorMap(np.array([0.0, 0.25, 0.55, 1.0]),
                           np.array([[252, 251, 247], [222, 228, 236], [150, 166, 190], [68, 84, 112]], dtype=np.ubyte))
CONTOUR_PEN = pg.mkPen(QColor(60, 72, 95, 110), width=1)
CUSTOM = "Custom f(x, y)"
LOSS_FLOOR = 1e-16        # f - f* below this is rounding noise: the log plot stops there
DEFAULT_STEPS = 500
MAX_STEPS = 10_000
GRID_N = 360              # heatmap resolution
CONTOUR_N = 180           # isocurves are traced on a coarser grid: smooth enough, and quick
N_CONTOURS = 14
# Paths longer than this are drawn decimated: a point wherever the arc length crosses a multiple of (view width /
# DECIMATE_FRACTION), about a fifth of a pixel at the default zoom. Markers, losses and arrows use every point.
DECIMATE_ABOVE = 2000
DECIMATE_FRACTION = 3000.0

# The default race on the default surface (the ill-conditioned bowl): rates picked so that all seven visibly differ.
DEFAULT_OPTIMIZERS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("SGD", {"lr": 0.05}),
    ("Momentum", {"lr": 0.01}),
    ("Nesterov", {"lr": 0.01}),
    ("AdaGrad", {"lr": 0.3}),
    ("RMSProp", {"lr": 0.01}),
    ("Adam", {"lr": 0.05}),
    ("AdamW", {"lr": 0.05}),
)

@dataclass
class OptimizerEntry:
    """One row of the optimizer table: a label, an OPTIMIZERS key, hyperparameter overrides, colour, on/off."""

    label: str
    kind: str
    params: dict[str, Any]
    colour: str
    enabled: bool = True
    status: str = ""

    def value(self, key: str) -> Any:
        """A hyperparameter as the race will use it (override, else the registry default)."""
        merged = {"weight_decay": 0.0, **OPTIMIZERS[self.kind].defaults, **self.params}
        if key in ("beta1", "beta2"):
            return merged["betas"][0 if key == "beta1" else 1]
        return merged[key]

    def set_value(self, key: str, value: Any) -> None:
        if key in ("beta1", "beta2"):
            b = [self.value("beta1"), self.value("beta2")]
            b[0 if key == "beta1" else 1] = value
            self.params["betas"] = (float(b[0]), float(b[1]))
        else:
            self.params[key] = value


@dataclass
class _Run:
    """One optimizer's race, prepared for playback: contiguous coordinate arrays and the plotted loss."""

    label: str
    colour: str
    xs: np.ndarray          # (m,)
    ys: np.ndarray          # (m,)
    loss_y: np.ndarray      # (m,) the loss as plotted (log10 of f - f*, or symlog of f)
    gx: np.ndarray          # (m,) true gradient along the path (no noise)
    gy: np.ndarray
    diverged_at: int | None
    result: RaceResult
    px: np.ndarray | None = None      # the path as drawn: the points kept by _decimate (None: all of them)
    py: np.ndarray | None = None
    pidx: np.ndarray | None = None    # their indices into xs, ys (sorted)
    items: dict[str, Any] = field(default_factory=dict)
    shown_diverged: bool = False

    @property
    def m(self) -> int:
        return len(self.xs)


def _decimate(xs: np.ndarray, ys: np.ndarray, tol: float) -> np.ndarray:
    """Indices of the points kept for drawing: one wherever the arc length crosses a multiple of ``tol`` (plus the
    first and last), so a path that has converged collapses to a few points while every visible turn stays."""
    d = np.hypot(np.diff(xs), np.diff(ys))
    s = np.concatenate(([0.0], np.cumsum(d)))
    with np.errstate(all="ignore"):
        bins = np.floor(s / tol)
    keep = np.ones(len(xs), dtype=bool)
    keep[1:] = bins[1:] != bins[:-1]
    keep[-1] = True
    return np.flatnonzero(keep)


# ------------------------------------------------------------------------------------------------------- worker
@dataclass(frozen=True)
class RaceRequest:
    surface: Surface
    specs: tuple[tuple[str, str, dict[str, Any]], ...]
    start: tuple[float, float]
    n_steps: int
    schedule: Schedule | None
    generation: int


class RaceWorker(QThread):
    """Runs one race (and the gradient along every path, for the arrows) off the GUI thread."""

    race_finished = Signal(int, object)   # generation, (results, grads)
    race_failed = Signal(int, str)

    def __init__(self, request: RaceRequest, parent: Any = None):
        super().__init__(parent)
        self.request = request

    def run(self) -> None:  # worker thread
        req = self.request
        try:
            with np.errstate(all="ignore"):
                results = race(req.surface, list(req.specs), req.start, req.n_steps, req.schedule)
                plain = req.surface.surface if isinstance(req.surface, NoisyGradient) else req.surface
                grads = {}
                if results:
                    # one vectorised gradient call over every point of every path
                    pts = np.concatenate([r.trajectory for r in results.values()])
                    gx, gy = plain.grad(pts[:, 0], pts[:, 1])
                    gx = np.broadcast_to(np.asarray(gx, dtype=np.float64), (len(pts),))
                    gy = np.broadcast_to(np.asarray(gy, dtype=np.float64), (len(pts),))
                    i = 0
                    for label, r in results.items():
                        m = len(r.trajectory)
                        grads[label] = (np.ascontiguousarray(gx[i:i + m]), np.ascontiguousarray(gy[i:i + m]))
                        i += m
        except Exception as exc:  # a bad hyperparameter or expression is reported, never raised in the thread
            self.race_failed.emit(req.generation, error_text(exc))
            return
        self.race_finished.emit(req.generation, (results, grads))


# ------------------------------------------------------------------------------------------------------ widgets
class _LossAxis(pg.AxisItem):
    """Left axis of the loss plot: in "symlog" mode data are sign(f) log10(1 + |f|) and ticks show f."""

    symlog = False

    def tickStrings(self, values, scale, spacing):  # noqa: N802 (Qt naming)
        if not self.symlog:
            return super().tickStrings(values, scale, spacing)
        out = []
        for v in values:
            f = math.copysign(10.0 ** min(abs(v), 300.0) - 1.0, v)
            out.append(f"{f:.3g}")
        return out


def _swatch(colour: str, size: int = 12) -> QIcon:
    pm = QPixmap(size, size)
    pm.fill(QColor(colour))
    return QIcon(pm)


def _unit_box(value: float) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(0.0, 0.9999)
    box.setDecimals(4)
    box.setSingleStep(0.01)
    box.setValue(value)
    box.setKeyboardTracking(False)
    return box


class OptimizerLab(QWidget):
    """Optimizers racing on a 2-D loss surface, with a loss plot and a schedule designer.

    Children for tests and for the main window: surface_combo, surface_param_boxes, expression_edit,
    expression_error, noise_slider, optimizer_table, add_combo, add_button, remove_button, hyper_form,
    n_steps_box, speed_box, play_button, pause_button, step_button, reset_button, step_slider, arrows_check,
    surface_plot, image_item, isocurves, start_item, minima_item, loss_plot, step_line, divergence_item,
    schedule_designer, race_error, busy_bar. State: entries, runs (label -> _Run), step, start_point, schedule.
    """

    race_ready = Signal()        # a new race result is on screen
    step_changed = Signal(int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.entries: list[OptimizerEntry] = []
        self.runs: dict[str, _Run] = {}
        self.schedule: Schedule | None = None
        self.surface: Surface | None = None       # the surface as raced (NoisyGradient when noise is on)
        self.base_surface: Surface | None = None  # the same without noise
        self._start: tuple[float, float] = (0.0, 0.0)
        self._step = 0
        self._n = 0                               # steps of the race on screen
        self._steps_x = np.arange(1, dtype=np.float64)
        self._generation = 0
        self._worker: RaceWorker | None = None
        self._old_workers: list[RaceWorker] = []
        self._pending = False
        self._closed = False
        self._loss_mode = "log"
        self._shown_diverged = 0
        self._hyper_widgets: list[QWidget] = []

        self._build_controls()
        self._build_plots()
        self._build_layout()

        self._timer = QTimer(self)
        self._timer.setInterval(16)
        self._timer.timeout.connect(self._on_tick)
        self._recompute_timer = QTimer(self)
        self._recompute_timer.setSingleShot(True)
        self._recompute_timer.setInterval(120)
        self._recompute_timer.timeout.connect(self._start_race)

        for kind, params in DEFAULT_OPTIMIZERS:
            self.add_optimizer(kind, params, recompute=False)
        self.optimizer_table.selectRow(0)
        self._on_surface_kind_changed(self.surface_combo.currentText())

    # ============================================================================================== construction
    def _build_controls(self) -> None:
        # ---- surface
        self.surface_combo = QComboBox()
        self.surface_combo.addItems(list(SURFACES) + [CUSTOM])
        self.surface_param_boxes: dict[str, QDoubleSpinBox] = {}
        self._surface_form = QFormLayout()
        self._surface_form.setContentsMargins(0, 0, 0, 0)
        self.expression_edit = QLineEdit()
        self.expression_edit.setPlaceholderText("e.g. x**2 + 10*y**2 + sin(3*x)")
        self.expression_edit.setClearButtonEnabled(True)
        self.expression_error = QLabel()
        self.expression_error.setStyleSheet(ERROR_STYLE)
        self.expression_error.setWordWrap(True)
        self.expression_error.hide()
        self.noise_slider = QSlider(Qt.Orientation.Horizontal)
        self.noise_slider.setRange(0, 100)
        self.noise_slider.setToolTip("Standard deviation of Gaussian noise added to every gradient component")
        self.noise_label = QLabel("σ = 0")
        self.noise_label.setMinimumWidth(56)
        self.surface_combo.currentTextChanged.connect(self._on_surface_kind_changed)
        self.expression_edit.returnPressed.connect(self._on_expression_entered)
        self.noise_slider.valueChanged.connect(self._on_noise_changed)

        # ---- optimizers
        self.optimizer_table = QTableWidget(0, 4)
        self.optimizer_table.setHorizontalHeaderLabels(["", "Optimizer", "lr", "Result"])
        self.optimizer_table.verticalHeader().hide()
        self.optimizer_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.optimizer_table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.optimizer_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        hh = self.optimizer_table.horizontalHeader()
        hh.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        hh.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        hh.setSectionResizeMode(2, QHeaderView.ResizeMode.Fixed)
        hh.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.optimizer_table.setColumnWidth(2, 84)
        self.optimizer_table.verticalHeader().setDefaultSectionSize(26)
        self.optimizer_table.setMinimumHeight(26 * 8 + 4)
        self.optimizer_table.itemChanged.connect(self._on_table_item_changed)
        self.optimizer_table.itemSelectionChanged.connect(self._on_selection_changed)
        self.add_combo = QComboBox()
        self.add_combo.addItems(list(OPTIMIZERS))
        self.add_button = QPushButton("Add")
        self.remove_button = QPushButton("Remove")
        self.add_button.clicked.connect(lambda: self.add_optimizer(self.add_combo.currentText()))
        self.remove_button.clicked.connect(self._on_remove_clicked)
        self.hyper_title = QLabel()
        self.hyper_title.setStyleSheet("font-weight: 600;")
        self.hyper_form = QFormLayout()
        self.hyper_form.setContentsMargins(0, 0, 0, 0)

        # ---- race
        self.n_steps_box = QSpinBox()
        self.n_steps_box.setRange(1, MAX_STEPS)
        self.n_steps_box.setValue(DEFAULT_STEPS)
        self.n_steps_box.setSingleStep(100)
        self.n_steps_box.setKeyboardTracking(False)
        self.n_steps_box.valueChanged.connect(self._on_n_steps_changed)
        self.speed_box = QSpinBox()
        self.speed_box.setRange(1, 1000)
        self.speed_box.setValue(2)
        self.speed_box.setSuffix(" steps/frame")
        self.play_button = QPushButton("▶ Play")
        self.pause_button = QPushButton("❚❚ Pause")
        self.step_button = QPushButton("Step")
        self.reset_button = QPushButton("⟲ Reset")
        self.play_button.clicked.connect(self.play)
        self.pause_button.clicked.connect(self.pause)
        self.step_button.clicked.connect(lambda: self.set_step(self._step + 1))
        self.reset_button.clicked.connect(self.reset)
        self.step_slider = QSlider(Qt.Orientation.Horizontal)
        self.step_slider.setRange(0, 0)
        self.step_slider.valueChanged.connect(self._on_slider_moved)
        self.step_label = QLabel("step 0 / 0")
        self.step_label.setMinimumWidth(110)
        self.step_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.arrows_check = QCheckBox("Arrows: −∇f and the step taken")
        self.arrows_check.toggled.connect(self._on_arrows_toggled)
        self.busy_bar = QProgressBar()
        self.busy_bar.setRange(0, 0)     # indeterminate: race() reports no progress
        self.busy_bar.setMaximumHeight(10)
        self.busy_bar.setTextVisible(False)
        self.busy_bar.hide()
        self.busy_label = QLabel("Computing race…")
        self.busy_label.setStyleSheet(MUTED_STYLE)
        self.busy_label.hide()
        self.race_error = QLabel()
        self.race_error.setStyleSheet(ERROR_STYLE)
        self.race_error.setWordWrap(True)
        self.race_error.hide()

        self.schedule_designer = ScheduleDesigner(horizon=DEFAULT_STEPS)
        self.schedule_designer.schedule_applied.connect(self._on_schedule_applied)

    def _build_plots(self) -> None:
        # ---- surface
        self.surface_plot = pg.PlotWidget(background="w")
        sp = self.surface_plot.getPlotItem()
        sp.setAspectLocked(True)
        sp.setMenuEnabled(False)
        sp.hideButtons()
        sp.showGrid(x=False, y=False)
        sp.setLabel("bottom", "x")
        sp.setLabel("left", "y")
        self.image_item = pg.ImageItem(axisOrder="col-major")
        self.image_item.setColorMap(SURFACE_CMAP)
        self.image_item.setZValue(-10)
        sp.addItem(self.image_item)
        self.isocurves: list[pg.IsocurveItem] = []
        for _ in range(N_CONTOURS):
            iso = pg.IsocurveItem(pen=CONTOUR_PEN, axisOrder="col-major")
            iso.setParentItem(self.image_item)
            iso.setZValue(5)
            self.isocurves.append(iso)
        self.minima_item = pg.ScatterPlotItem(symbol="star", size=15, pen=pg.mkPen("#5c4400", width=1),
                                              brush=pg.mkBrush("#ffd23f"))
        self.minima_item.setZValue(20)
        sp.addItem(self.minima_item)
        self.start_item = pg.ScatterPlotItem(symbol="o", size=13, pen=pg.mkPen("#1f2933", width=2),
                                             brush=pg.mkBrush(255, 255, 255, 230))
        self.start_item.setZValue(30)
        sp.addItem(self.start_item)
        self.grad_shafts = pg.PlotDataItem(connect="pairs", pen=pg.mkPen("#1f2933", width=1.4), skipFiniteCheck=True)
        self.grad_shafts.setZValue(40)
        sp.addItem(self.grad_shafts)
        self.surface_plot.scene().sigMouseClicked.connect(self._on_surface_clicked)
        self._cache_axes(sp)

        # ---- loss
        self._loss_axis = _LossAxis("left")
        self.loss_plot = pg.PlotWidget(background="w", axisItems={"left": self._loss_axis})
        lp = self.loss_plot.getPlotItem()
        lp.setMenuEnabled(False)
        lp.showGrid(x=True, y=True, alpha=0.15)
        lp.setLabel("bottom", "iteration")
        lp.setTitle("Loss", size="10pt")
        self.loss_legend = lp.addLegend(offset=(-8, 8), labelTextSize="8pt", colCount=1)
        self.step_line = pg.InfiniteLine(pos=0, angle=90, movable=True, pen=pg.mkPen("#1f2933", width=1,
                                                                                     style=Qt.PenStyle.DashLine))
        self.step_line.setZValue(50)
        self.step_line.sigDragged.connect(lambda line: self.set_step(int(round(line.value()))))
        lp.addItem(self.step_line)
        self.divergence_item = pg.ScatterPlotItem(symbol="x", size=16, pen=pg.mkPen("#1f2933", width=1))
        self.divergence_item.setZValue(60)
        lp.addItem(self.divergence_item)
        self._loss_axis.enableAutoSIPrefix(False)   # a "x1e+24" prefix would relabel the decades wrongly
        self._cache_axes(lp)

    @staticmethod
    def _cache_axes(plot_item: pg.PlotItem) -> None:
        """Axes change only with the view range; caching them as pixmaps keeps their text out of every frame."""
        for name in ("left", "bottom"):
            plot_item.getAxis(name).setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)

    def _build_layout(self) -> None:
        surf = QVBoxLayout()
        surf.addWidget(self.surface_combo)
        holder = QWidget()
        holder.setLayout(self._surface_form)
        surf.addWidget(holder)
        expr = QFormLayout()
        expr.setContentsMargins(0, 0, 0, 0)
        expr.addRow("Custom f(x, y) =", self.expression_edit)
        surf.addLayout(expr)
        surf.addWidget(self.expression_error)
        noise = QHBoxLayout()
        noise.addWidget(QLabel("Gradient noise"))
        noise.addWidget(self.noise_slider, 1)
        noise.addWidget(self.noise_label)
        surf.addLayout(noise)
        hint = QLabel("Click the surface to set the start point.")
        hint.setStyleSheet(MUTED_STYLE)
        surf.addWidget(hint)

        opts = QVBoxLayout()
        opts.addWidget(self.optimizer_table)
        add_row = QHBoxLayout()
        add_row.addWidget(self.add_combo, 1)
        add_row.addWidget(self.add_button)
        add_row.addWidget(self.remove_button)
        opts.addLayout(add_row)
        opts.addWidget(self.hyper_title)
        opts.addLayout(self.hyper_form)

        race_box = QVBoxLayout()
        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Steps", self.n_steps_box)
        form.addRow("Speed", self.speed_box)
        race_box.addLayout(form)
        buttons = QHBoxLayout()
        for b in (self.play_button, self.pause_button, self.step_button, self.reset_button):
            buttons.addWidget(b)
        race_box.addLayout(buttons)
        scrub = QHBoxLayout()
        scrub.addWidget(self.step_slider, 1)
        scrub.addWidget(self.step_label)
        race_box.addLayout(scrub)
        race_box.addWidget(self.arrows_check)
        race_box.addWidget(self.busy_label)
        race_box.addWidget(self.busy_bar)
        race_box.addWidget(self.race_error)

        scroll = control_column([group("Surface", surf), group("Optimizers", opts), group("Race", race_box)],
                                min_width=350)

        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self.loss_plot)
        right.addWidget(self.schedule_designer)
        right.setStretchFactor(0, 3)
        right.setStretchFactor(1, 2)
        self.schedule_designer.setMinimumHeight(250)

        self.surface_plot.setMinimumSize(QSize(360, 360))
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(scroll)
        self.splitter.addWidget(self.surface_plot)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 5)
        self.splitter.setStretchFactor(2, 4)
        self.splitter.setSizes([360, 640, 500])
        root = QHBoxLayout(self)
        root.setContentsMargins(0, 0, 0, 0)
        root.addWidget(self.splitter)

    # ================================================================================================ public API
    @property
    def step(self) -> int:
        return self._step

    @property
    def n_steps(self) -> int:
        """Steps of the race on screen."""
        return self._n

    @property
    def start_point(self) -> tuple[float, float]:
        return self._start

    def set_start_point(self, x: float, y: float) -> None:
        self._start = (float(x), float(y))
        self.start_item.setData([self._start[0]], [self._start[1]])
        self.request_race()

    def is_busy(self) -> bool:
        """True while a race is being computed (or one is waiting to start)."""
        return self._worker is not None or self._recompute_timer.isActive() or self._pending

    def add_optimizer(self, kind: str, params: dict[str, Any] | None = None, recompute: bool = True) -> OptimizerEntry:
        """Append an optimizer row (OPTIMIZERS key ``kind``) with its own colour; returns the entry."""
        labels = {e.label for e in self.entries}
        label, i = kind, 1
        while label in labels:
            i += 1
            label = f"{kind} #{i}"
        used = {e.colour for e in self.entries}
        colour = next((c for c in PALETTE if c not in used), PALETTE[len(self.entries) % len(PALETTE)])
        entry = OptimizerEntry(label, kind, dict(params or {}), colour)
        self.entries.append(entry)
        self._append_row(entry)
        if recompute:
            self.optimizer_table.selectRow(len(self.entries) - 1)
            self.request_race()
        return entry

    def remove_optimizer(self, row: int) -> None:
        if not 0 <= row < len(self.entries):
            return
        del self.entries[row]
        self.optimizer_table.removeRow(row)
        if self.entries:
            self.optimizer_table.selectRow(min(row, len(self.entries) - 1))
        else:
            self._rebuild_hyper_form()
        self.request_race()

    def lr_box(self, row: int) -> LogSpinBox:
        return self.optimizer_table.cellWidget(row, 2)  # type: ignore[return-value]

    def play(self) -> None:
        if self._step >= self._n and self._n > 0:
            self.set_step(0)
        self._timer.start()

    def pause(self) -> None:
        self._timer.stop()

    def is_playing(self) -> bool:
        return self._timer.isActive()

    def reset(self) -> None:
        self.pause()
        self.set_step(0)

    def set_step(self, t: int) -> None:
        """Show the race at update t (clamped to [0, n_steps])."""
        t = max(0, min(int(t), self._n))
        self._step = t
        self._show_step(t)
        self.step_changed.emit(t)

    def request_race(self) -> None:
        """Recompute the race soon (changes arriving together are coalesced)."""
        if not self._closed:
            self._recompute_timer.start()

    def close_lab(self) -> None:
        """Stop the timers and wait for a running worker; the lab does nothing afterwards."""
        self._closed = True
        self._timer.stop()
        self._recompute_timer.stop()
        for w in [self._worker, *self._old_workers]:
            if w is not None:
                try:
                    w.race_finished.disconnect()
                    w.race_failed.disconnect()
                except (RuntimeError, TypeError):
                    pass
                w.wait()
        self._worker = None
        self._old_workers.clear()

    def closeEvent(self, event) -> None:  # noqa: N802
        self.close_lab()
        super().closeEvent(event)

    # ================================================================================================== surface
    def _on_surface_kind_changed(self, kind: str) -> None:
        while self._surface_form.rowCount():
            self._surface_form.removeRow(0)
        self.surface_param_boxes.clear()
        if kind == CUSTOM:
            self._on_expression_entered()
            return
        cls = SURFACES[kind]
        if dataclasses.is_dataclass(cls):
            for f in dataclasses.fields(cls):
                if not f.init or isinstance(f.default, bool) or not isinstance(f.default, (int, float)):
                    continue
                box = self._surface_param_box(f.name, float(f.default))
                box.valueChanged.connect(self._on_surface_param_changed)
                self.surface_param_boxes[f.name] = box
                self._surface_form.addRow(f.name.replace("_", " "), box)
        self._set_surface(self._build_named_surface(), reset_start=True)

    @staticmethod
    def _surface_param_box(name: str, value: float) -> QDoubleSpinBox:
        if name == "condition":
            box: QDoubleSpinBox = LogSpinBox(value, 1.0, 1e4)
        else:
            box = QDoubleSpinBox()
            lo, hi, step = {"angle": (-180.0, 180.0, 5.0), "b": (0.0, 1e4, 10.0), "steepness": (0.0, 100.0, 1.0),
                            "curvature": (0.0, 10.0, 0.005), "bowl": (0.0, 10.0, 0.01)}.get(name, (-100.0, 100.0, 0.1))
            box.setRange(lo, hi)
            box.setDecimals(3)
            box.setSingleStep(step)
            box.setValue(value)
        box.setKeyboardTracking(False)
        return box

    def _build_named_surface(self) -> Surface | None:
        kind = self.surface_combo.currentText()
        params = {n: b.value() for n, b in self.surface_param_boxes.items()}
        try:
            surface = make_surface(kind, **params)
            self.expression_error.hide()
            return surface
        except Exception as exc:
            self._show_surface_error(str(exc))
            return None

    def _on_surface_param_changed(self, *_: object) -> None:
        self._set_surface(self._build_named_surface(), reset_start=False)

    def _on_expression_entered(self) -> None:
        text = self.expression_edit.text().strip()
        if not text:
            if self.surface_combo.currentText() == CUSTOM:
                self._show_surface_error("Type an expression in x and y, e.g. x**2 + 10*y**2, and press Enter.")
            return
        try:
            surface = ExpressionSurface(text)
            _ = surface.variables          # parses, and refuses names other than x and y
            v = surface.value(np.array([0.1, -0.2]), np.array([0.3, 0.05]))
            surface.grad(np.array([0.1, -0.2]), np.array([0.3, 0.05]))
            if np.shape(v) != (2,):
                raise ValueError("the expression must give one value per point")
        except Exception as exc:  # shown inline: a typo must never crash the lab
            self._show_surface_error(f"{exc}")
            return
        self.expression_error.hide()
        if self.surface_combo.currentText() != CUSTOM:
            self.surface_combo.blockSignals(True)
            self.surface_combo.setCurrentText(CUSTOM)
            self.surface_combo.blockSignals(False)
            while self._surface_form.rowCount():
                self._surface_form.removeRow(0)
            self.surface_param_boxes.clear()
        self._set_surface(surface, reset_start=True)

    def _show_surface_error(self, message: str) -> None:
        self.expression_error.setText(message)
        self.expression_error.show()

    def _on_noise_changed(self, value: int) -> None:
        self.noise_label.setText(f"σ = {self._sigma():g}")
        if self.base_surface is not None:
            self._set_surface(self.base_surface, reset_start=False)

    def _sigma(self) -> float:
        return self.noise_slider.value() / 20.0   # 0 .. 5 in steps of 0.05

    def _set_surface(self, surface: Surface | None, reset_start: bool) -> None:
        if surface is None:
            return
        changed = surface is not self.base_surface
        self.base_surface = surface
        sigma = self._sigma()
        self.surface = NoisyGradient(surface, sigma) if sigma > 0 else surface
        if changed:
            try:
                self._draw_surface(surface)
            except Exception as exc:
                self._show_surface_error(f"cannot draw this surface: {exc}")
                return
        if reset_start:
            self._start = (float(surface.start[0]), float(surface.start[1]))
            self.start_item.setData([self._start[0]], [self._start[1]])
            self._clear_runs()
        self.request_race()

    def _draw_surface(self, surface: Surface) -> None:
        # The heatmap covers the suggested view and half as much again on every side, so the locked aspect's
        # extra room, panning and runs that overshoot still show the surface.
        x0, x1 = surface.xlim
        y0, y1 = surface.ylim
        ex, ey = 0.5 * (x1 - x0), 0.5 * (y1 - y0)
        gx0, gx1, gy0, gy1 = x0 - ex, x1 + ex, y0 - ey, y1 + ey
        X, Y = np.meshgrid(np.linspace(gx0, gx1, GRID_N), np.linspace(gy0, gy1, GRID_N))
        with np.errstate(all="ignore"):
            Z = np.asarray(surface.value(X, Y), dtype=np.float64)
            Z = np.broadcast_to(Z, X.shape)
            finite = np.isfinite(Z)
            if not finite.any():
                raise ValueError("the surface has no finite values in view")
            inner = finite & (X >= x0) & (X <= x1) & (Y >= y0) & (Y <= y1)
            if not inner.any():
                inner = finite
            zmin = float(Z[inner].min())
            fmin = min([m[2] for m in surface.minima] + [zmin])
            q = np.where(finite, Z - fmin, np.nan)
            qin = q[inner]
            qmax = float(np.nanmax(qin))
            median = float(np.nanmedian(qin))
            # A wide range (Rosenbrock: 0 .. 2500 with a valley near 0) is coloured by log(1 + f - f_min).
            self.surface_log_colour = qmax > 20.0 * max(median, 1e-12) or qmax > 1e3
            C = np.log1p(np.maximum(q, 0.0)) if self.surface_log_colour else q
            # colour levels from the suggested view: the margin saturates instead of washing the view out
            lo, hi = float(np.nanmin(C[inner])), float(np.nanmax(C[inner]))
            C = np.where(np.isfinite(C), C, hi)
        if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
            lo, hi = 0.0, 1.0
        self.image_item.setImage(C.T, levels=(lo, hi), autoLevels=False)
        self.image_item.setRect(QRectF(gx0, gy0, gx1 - gx0, gy1 - gy0))
        # isocurves on a coarser copy, mapped back by scaling their parent's transform
        step = max(1, GRID_N // CONTOUR_N)
        Cc = C[::step, ::step]
        levels = lo + (hi - lo) * np.linspace(0, 1, N_CONTOURS + 2)[1:-1] ** (1.3 if self.surface_log_colour else 1.6)
        for iso, level in zip(self.isocurves, levels):
            iso.setData(Cc.T, level=float(level))
            iso.resetTransform()
            iso.setTransform(pg.QtGui.QTransform.fromScale(step, step))
        mins = surface.minima
        self.minima_item.setData([m[0] for m in mins], [m[1] for m in mins])
        self.surface_plot.getPlotItem().setRange(xRange=(x0, x1), yRange=(y0, y1), padding=0.0)

    def _on_surface_clicked(self, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton or event.double():
            return
        vb = self.surface_plot.getPlotItem().getViewBox()
        pos = event.scenePos()
        if not vb.sceneBoundingRect().contains(pos):
            return
        p = vb.mapSceneToView(pos)
        event.accept()
        self.set_start_point(p.x(), p.y())

    # =============================================================================================== optimizers
    def _append_row(self, entry: OptimizerEntry) -> None:
        t = self.optimizer_table
        row = t.rowCount()
        t.blockSignals(True)
        t.insertRow(row)
        on = QTableWidgetItem()
        on.setFlags(Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
        on.setCheckState(Qt.CheckState.Checked if entry.enabled else Qt.CheckState.Unchecked)
        on.setIcon(_swatch(entry.colour))
        on.setToolTip("Race this optimizer")
        t.setItem(row, 0, on)
        name = QTableWidgetItem(entry.label)
        name.setForeground(QColor(entry.colour).darker(115))
        f = name.font()
        f.setBold(True)
        name.setFont(f)
        name.setToolTip(OPTIMIZERS[entry.kind].formula)
        t.setItem(row, 1, name)
        t.setItem(row, 3, QTableWidgetItem(""))
        t.blockSignals(False)
        box = LogSpinBox(float(entry.value("lr")), 1e-8, 1e10)
        box.setFrame(False)
        box.setButtonSymbols(QDoubleSpinBox.ButtonSymbols.UpDownArrows)
        box.valueChanged.connect(lambda v, e=entry: self._on_lr_changed(e, v))
        t.setCellWidget(row, 2, box)

    def _row_of(self, entry: OptimizerEntry) -> int:
        return next(i for i, e in enumerate(self.entries) if e is entry)

    def _on_lr_changed(self, entry: OptimizerEntry, value: float) -> None:
        entry.params["lr"] = float(value)
        self.request_race()

    def _on_table_item_changed(self, item: QTableWidgetItem) -> None:
        if item.column() != 0 or not 0 <= item.row() < len(self.entries):
            return
        entry = self.entries[item.row()]
        enabled = item.checkState() == Qt.CheckState.Checked
        if enabled != entry.enabled:
            entry.enabled = enabled
            self.request_race()

    def _on_remove_clicked(self) -> None:
        rows = self.optimizer_table.selectionModel().selectedRows()
        if rows:
            self.remove_optimizer(rows[0].row())

    def _selected_entry(self) -> OptimizerEntry | None:
        rows = self.optimizer_table.selectionModel().selectedRows()
        if rows and 0 <= rows[0].row() < len(self.entries):
            return self.entries[rows[0].row()]
        return None

    def _on_selection_changed(self) -> None:
        self._rebuild_hyper_form()

    def _rebuild_hyper_form(self) -> None:
        while self.hyper_form.rowCount():
            self.hyper_form.removeRow(0)
        entry = self._selected_entry()
        if entry is None:
            self.hyper_title.setText("")
            return
        self.hyper_title.setText(f"{entry.label} hyperparameters")
        for key, label, kind in HYPER_FIELDS[entry.kind]:
            value = entry.value(key)
            if kind == "bool":
                w: QWidget = QCheckBox()
                w.setChecked(bool(value))
                w.toggled.connect(lambda v, e=entry, k=key: self._on_hyper_changed(e, k, bool(v)))
            elif kind == "log":
                w = LogSpinBox(float(value), 1e-12, 1.0)
                w.valueChanged.connect(lambda v, e=entry, k=key: self._on_hyper_changed(e, k, float(v)))
            elif kind == "unit":
                w = _unit_box(float(value))
                w.valueChanged.connect(lambda v, e=entry, k=key: self._on_hyper_changed(e, k, float(v)))
            else:
                w = QDoubleSpinBox()
                w.setRange(0.0, 10.0)
                w.setDecimals(4)
                w.setSingleStep(0.01)
                w.setValue(float(value))
                w.setKeyboardTracking(False)
                w.valueChanged.connect(lambda v, e=entry, k=key: self._on_hyper_changed(e, k, float(v)))
            self.hyper_form.addRow(label, w)

    def _on_hyper_changed(self, entry: OptimizerEntry, key: str, value: Any) -> None:
        entry.set_value(key, value)
        self.request_race()

    def _set_status(self, entry: OptimizerEntry, text: str, colour: str | None = None) -> None:
        entry.status = text
        row = self._row_of(entry)
        item = self.optimizer_table.item(row, 3)
        if item is None:
            return
        self.optimizer_table.blockSignals(True)
        item.setText(text)
        item.setForeground(QColor(colour or "#1f2933"))
        item.setToolTip(text)
        self.optimizer_table.blockSignals(False)

    # ===================================================================================================== race
    def _on_n_steps_changed(self, n: int) -> None:
        self.schedule_designer.set_horizon(n)
        self.request_race()

    def _on_schedule_applied(self, schedule: Schedule | None) -> None:
        self.schedule = schedule
        self.request_race()

    def _start_race(self) -> None:
        if self._closed:
            return
        if self._worker is not None:
            self._pending = True
            return
        self._pending = False
        if self.surface is None:
            return
        specs = tuple((e.label, e.kind, dict(e.params)) for e in self.entries if e.enabled)
        self._generation += 1
        if not specs:
            self._clear_runs()
            self.race_error.hide()
            return
        surface = self.surface
        if isinstance(surface, NoisyGradient):   # its generator is stateful: the worker gets its own
            surface = NoisyGradient(surface.surface, surface.sigma, surface.seed)
        request = RaceRequest(surface, specs, self._start, int(self.n_steps_box.value()), self.schedule,
                              self._generation)
        worker = RaceWorker(request)
        worker.race_finished.connect(self._on_race_finished)
        worker.race_failed.connect(self._on_race_failed)
        worker.finished.connect(lambda w=worker: self._on_worker_done(w))
        self._worker = worker
        self.busy_bar.show()
        self.busy_label.show()
        worker.start()

    def _on_worker_done(self, worker: RaceWorker) -> None:
        if worker is self._worker:
            self._worker = None
        worker.deleteLater()
        if self._worker is None:
            self.busy_bar.hide()
            self.busy_label.hide()
            if self._pending and not self._closed:
                self._start_race()

    def _on_race_failed(self, generation: int, message: str) -> None:
        if generation != self._generation or self._closed:
            return
        self.race_error.setText(message)
        self.race_error.show()

    def _on_race_finished(self, generation: int, payload: Any) -> None:
        if generation != self._generation or self._closed:
            return   # stale: a newer race has been asked for
        self.race_error.hide()
        results, grads = payload
        self._install_runs(results, grads)
        self.race_ready.emit()

    def _clear_runs(self) -> None:
        sp, lp = self.surface_plot.getPlotItem(), self.loss_plot.getPlotItem()
        for run in self.runs.values():
            for key, item in run.items.items():
                (lp if key == "loss" else sp).removeItem(item)
        self.runs = {}
        self.loss_legend.clear()
        self.divergence_item.setData([], [])
        self._shown_diverged = 0
        self.grad_shafts.setData([], [])

    def _loss_transform(self, results: dict[str, RaceResult]) -> tuple[str, float]:
        """("log", f*) to plot log10(f - f*), or ("symlog", 0) for surfaces with no known minimum and f < 0."""
        base = self.base_surface
        minima = base.minima if base is not None else ()
        if minima:
            return "log", min(m[2] for m in minima)
        lows = [float(np.nanmin(r.losses)) for r in results.values() if len(r.losses)]
        if lows and min(lows) > 0:
            return "log", 0.0
        return "symlog", 0.0

    def _install_runs(self, results: dict[str, RaceResult], grads: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
        self._clear_runs()
        n = int(self.n_steps_box.value())
        for r in results.values():
            n = len(r.lrs)
            break
        self._n = n
        self._steps_x = np.arange(n + 1, dtype=np.float64)
        mode, fstar = self._loss_transform(results)
        self._loss_mode = mode
        sp, lp = self.surface_plot.getPlotItem(), self.loss_plot.getPlotItem()
        colours = {e.label: e.colour for e in self.entries}
        entries = {e.label: e for e in self.entries}
        lo, hi = math.inf, -math.inf
        xlim = self.base_surface.xlim if self.base_surface is not None else (-1.0, 1.0)
        tol = (xlim[1] - xlim[0]) / DECIMATE_FRACTION
        for label, r in results.items():
            colour = colours.get(label, "#555555")
            with np.errstate(all="ignore"):
                f = np.nan_to_num(r.losses, nan=1e300, posinf=1e300, neginf=-1e300)
                if mode == "log":
                    y = np.log10(np.maximum(f - fstar, LOSS_FLOOR))
                else:
                    y = np.sign(f) * np.log10(1.0 + np.abs(f))
            y = np.ascontiguousarray(y)
            if len(y):
                lo, hi = min(lo, float(y.min())), max(hi, float(y.max()))
            gx, gy = grads.get(label, (np.zeros(len(y)), np.zeros(len(y))))
            run = _Run(label, colour, np.ascontiguousarray(r.trajectory[:, 0]), np.ascontiguousarray(r.trajectory[:, 1]),
                       y, gx, gy, r.diverged_at, r)
            if run.m > DECIMATE_ABOVE:
                run.pidx = _decimate(run.xs, run.ys, tol)
                run.px, run.py = run.xs[run.pidx], run.ys[run.pidx]
            pen = pg.mkPen(colour, width=2.2)
            run.items["path"] = pg.PlotDataItem(pen=pen, skipFiniteCheck=True)
            run.items["path"].setZValue(10)
            # one spot at the item's origin, moved with setPos each frame (no per-frame setData)
            run.items["marker"] = pg.ScatterPlotItem([0.0], [0.0], symbol="o", size=11, brush=pg.mkBrush(colour),
                                                     pen=pg.mkPen("w", width=1.5))
            run.items["marker"].setZValue(35)
            run.items["step_arrow"] = pg.PlotDataItem(pen=pg.mkPen(colour, width=3), skipFiniteCheck=True)
            run.items["step_arrow"].setZValue(38)
            run.items["step_head"] = pg.ArrowItem(headLen=11, tipAngle=35, tailLen=0, pen=pg.mkPen(colour),
                                                  brush=pg.mkBrush(colour))
            run.items["grad_head"] = pg.ArrowItem(headLen=9, tipAngle=35, tailLen=0, pen=pg.mkPen("#1f2933"),
                                                  brush=pg.mkBrush("#1f2933"))
            for key in ("path", "marker", "step_arrow", "step_head", "grad_head"):
                sp.addItem(run.items[key])
            name = label if r.diverged_at is None else f"{label}: diverged at step {r.diverged_at}"
            # width 1: the raster engine draws thin lines several times faster than wide ones
            loss = pg.PlotDataItem(pen=pg.mkPen(colour, width=1), name=name, skipFiniteCheck=True)
            loss.setClipToView(True)
            loss.setDownsampling(auto=True, method="peak")
            lp.addItem(loss)
            run.items["loss"] = loss
            self.runs[label] = run
            entry = entries.get(label)
            if entry is not None:
                if r.diverged_at is not None:
                    self._set_status(entry, f"diverged at step {r.diverged_at}", "#c8372d")
                else:
                    self._set_status(entry, f"f = {float(r.losses[-1]):.3g}")
        for e in self.entries:
            if not e.enabled:
                self._set_status(e, "off", "#9aa3ad")
        # fixed ranges: the view never jumps while playing and autorange costs nothing per frame
        self._loss_axis.symlog = mode == "symlog"
        self._loss_axis.setLogMode(False, mode == "log")
        has_minima = self.base_surface is not None and bool(self.base_surface.minima)
        lp.setLabel("left", "f − f*" if mode == "log" and has_minima else "f")
        if not math.isfinite(lo):
            lo, hi = 0.0, 1.0
        if hi - lo < 1e-9:
            lo, hi = lo - 0.5, hi + 0.5
        lp.setRange(xRange=(0, max(n, 1)), yRange=(lo, hi), padding=0.04)
        self._loss_axis.picture = None
        self._loss_axis.update()
        self.step_slider.blockSignals(True)
        self.step_slider.setRange(0, n)
        self.step_slider.blockSignals(False)
        self._set_arrows_visible(self.arrows_check.isChecked())
        self.set_step(min(self._step, n))

    # =================================================================================================== player
    def _on_tick(self) -> None:
        t = self._step + self.speed_box.value()
        if t >= self._n:
            t = self._n
            self._timer.stop()
        self.set_step(t)

    def _on_slider_moved(self, value: int) -> None:
        if value != self._step:
            self.set_step(value)

    def _show_step(self, t: int) -> None:
        """Per frame: setData with slice views of the pre-computed arrays; nothing else is computed."""
        div_x, div_y, div_brush = [], [], []
        arrows = self.arrows_check.isChecked()
        if arrows:
            x0, x1 = self.surface_plot.getPlotItem().getViewBox().viewRange()[0]
            length = 0.07 * (x1 - x0)
            shafts = np.empty(2 * len(self.runs))
            shafts_y = np.empty(2 * len(self.runs))
        for i, run in enumerate(self.runs.values()):
            k = min(t, run.m - 1)
            it = run.items
            if run.pidx is None:
                it["path"].setData(run.xs[:k + 1], run.ys[:k + 1])
            else:
                c = int(np.searchsorted(run.pidx, k, side="right"))
                it["path"].setData(run.px[:c], run.py[:c])
            it["marker"].setPos(float(run.xs[k]), float(run.ys[k]))
            it["loss"].setData(self._steps_x[:k + 1], run.loss_y[:k + 1])
            diverged = run.diverged_at is not None and t >= run.diverged_at
            if diverged != run.shown_diverged:
                run.shown_diverged = diverged
                it["marker"].setData([0.0], [0.0], symbol="x" if diverged else "o", size=14 if diverged else 11,
                                     brush=pg.mkBrush(run.colour),
                                     pen=pg.mkPen(run.colour, width=2) if diverged else pg.mkPen("w", width=1.5))
            if diverged:
                div_x.append(float(run.diverged_at))
                div_y.append(float(run.loss_y[-1]))
                div_brush.append(run.colour)
            if arrows:
                self._place_arrows(run, k, length, shafts, shafts_y, i)
        if arrows:
            self.grad_shafts.setData(shafts, shafts_y)
        if len(div_x) != self._shown_diverged:
            self._shown_diverged = len(div_x)
            self.divergence_item.setData(div_x, div_y, pen=[pg.mkPen(c, width=3) for c in div_brush],
                                         brush=div_brush)
        self.step_line.setValue(t)
        if self.step_slider.value() != t:
            self.step_slider.blockSignals(True)
            self.step_slider.setValue(t)
            self.step_slider.blockSignals(False)
        self.step_label.setText(f"step {t} / {self._n}")

    def _place_arrows(self, run: _Run, k: int, length: float, shafts: np.ndarray, shafts_y: np.ndarray,
                      i: int) -> None:
        x, y = float(run.xs[k]), float(run.ys[k])
        gx, gy = -float(run.gx[k]), -float(run.gy[k])
        g = math.hypot(gx, gy)
        it = run.items
        if g > 0 and math.isfinite(g):
            ex, ey = x + length * gx / g, y + length * gy / g
            shafts[2 * i:2 * i + 2] = (x, ex)
            shafts_y[2 * i:2 * i + 2] = (y, ey)
            it["grad_head"].setPos(ex, ey)
            it["grad_head"].setStyle(angle=math.degrees(math.atan2(gy, -gx)))
            it["grad_head"].show()
        else:
            shafts[2 * i:2 * i + 2] = (x, x)
            shafts_y[2 * i:2 * i + 2] = (y, y)
            it["grad_head"].hide()
        if k + 1 < run.m:
            dx, dy = float(run.xs[k + 1]) - x, float(run.ys[k + 1]) - y
            d = math.hypot(dx, dy)
        else:
            d = 0.0
        if d > 0 and math.isfinite(d):
            ex, ey = x + 0.8 * length * dx / d, y + 0.8 * length * dy / d
            it["step_arrow"].setData([x, ex], [y, ey])
            it["step_head"].setPos(ex, ey)
            it["step_head"].setStyle(angle=math.degrees(math.atan2(dy, -dx)))
            it["step_arrow"].show()
            it["step_head"].show()
        else:
            it["step_arrow"].hide()
            it["step_head"].hide()

    def _on_arrows_toggled(self, on: bool) -> None:
        self._set_arrows_visible(on)
        self._show_step(self._step)

    def _set_arrows_visible(self, on: bool) -> None:
        self.grad_shafts.setVisible(on)
        for run in self.runs.values():
            for key in ("step_arrow", "step_head", "grad_head"):
                run.items[key].setVisible(on)
