"""The optimizer race lab's view: a loss surface, optimizers racing across it, the loss plot and the schedule designer.

A thin view over ``simulator.labs.optimizer_lab.OptimizerLabModel``: its controls are built from the declared
parameters (the race's settings, each surface's parameters, each optimizer's hyperparameters), every edit goes to the
model, and the view redraws on the model's ``changed``. The race is computed once per change of setting by the
model's ``race_job`` on the lab's one ``gui.jobs.JobRunner``; playback is the shared ``gui.frame_player.FramePlayer``
(one QTimer) which, per frame, only calls ``setData`` with slice views of the pre-computed arrays (trajectories,
transformed losses, gradients). Nothing is recomputed per frame.

Arrows (optional) at each current point: the descent direction -grad f (thin, dark) and the step actually taken,
x_{t+1} - x_t (thick, in the optimizer's colour). For SGD with momentum that step is exactly the lecture's velocity
v_{t+1}; for Adam it is -lr m^ / (sqrt(v^) + eps), the moment-scaled step. Both come from the race's trajectory and
from the noise-free gradients the race returns along it, so no optimizer state has to be replayed. The arrows show
directions at a fixed length (their magnitudes span many decades).

Newton (a second-order racer) joins the race like the optimizers. The preconditioner view (optional) draws, at the
selected racer's current point, three step directions: -g (gradient descent), -g / sqrt(s) (AdaGrad's diagonal
scaling, s its accumulated squared gradients along that path) and -H^-1 g (Newton), with the full Newton step dashed
to where it lands, and a note under the plot with H, its eigenvalues and condition number there. Its numbers come
from the model's ``preconditioners`` along the whole path, computed once per racer when first shown.
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QComboBox, QDialog, QFormLayout, QGraphicsItem,
                               QHBoxLayout, QHeaderView, QLabel, QLineEdit, QProgressBar, QPushButton, QSplitter, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)

from gui import plotting, theme
from gui.forms import ParamForm, param_widget, read_widget, write_widget
from gui.frame_player import FramePlayer, FrameTransportBar
from gui.jobs import JobRunner
from gui.labs.prediction import PredictionBox
from gui.labs.common import ERROR_STYLE, MUTED_STYLE, PALETTE, FlowSplitter, control_column, group
from gui.labs.schedule_designer import ScheduleDesigner
from gui.tab_widget import TabWidget
from simulator.core.errors import StudioError
from simulator.core.params import params_of
from simulator.functional.schedules import Schedule
from simulator.labs.optimizer_lab import (CUSTOM, OptimizerLabModel, Preconditioners, RaceSettings, Racer,
                                          contour_segments, point_kind, surface_heatmap)
from simulator.labs.surfaces import RACERS, SURFACES, RaceResult

__all__ = ["OptimizerLab", "CUSTOM"]

# Surface colours: light at the bottom of the valley, slate at the top, so coloured paths stand out everywhere.
SURFACE_CMAP = pg.ColorMap(np.array([0.0, 0.25, 0.55, 1.0]),
                           np.array([[252, 251, 247], [222, 228, 236], [150, 166, 190], [68, 84, 112]], dtype=np.ubyte))
CONTOUR_PEN = pg.mkPen(QColor(60, 72, 95, 110), width=1)
GRID_N = 360              # heatmap resolution
CONTOUR_N = 180           # isocurves are traced on a coarser grid: smooth enough, and quick
N_CONTOURS = 14
# Paths longer than this are drawn decimated: a point wherever the arc length crosses a multiple of (view width /
# DECIMATE_FRACTION), about a fifth of a pixel at the default zoom. Markers, losses and arrows use every point.
DECIMATE_ABOVE = 2000
DECIMATE_FRACTION = 3000.0
RACE_DEBOUNCE_MS = 120    # edits arriving together (typing, a slider) start one race
# The preconditioner view's three arrows: (key, colour, what the note calls it). Dark, so they stand out from the
# racers' bright colours.
PRECONDITIONERS = (("gd", "#1f2933", "−g"), ("adagrad", "#b86e00", "−g / √s"), ("newton", "#0b6e69", "−H⁻¹g"))
PRECOND_LENGTH = 0.14     # arrow length, as a fraction of the view's width


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
    precond: Preconditioners | None = None    # computed when the preconditioner view first needs it
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


def _plain_error_label() -> QLabel:
    """An error line that shows a message exactly as written (plain text: quotes and < > are never HTML)."""
    label = QLabel()
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setStyleSheet(ERROR_STYLE)
    label.setWordWrap(True)
    label.hide()
    return label


class OptimizerLab(QWidget):
    """Optimizers racing on a 2-D loss surface, with a loss plot and a schedule designer, over an OptimizerLabModel.

    Children for tests and for the main window: surface_combo, surface_form (the current surface's ParamForm),
    expression_edit, expression_error, noise_box, optimizer_table, add_combo, add_button, remove_button, hyper_form
    (the selected optimizer's ParamForm), n_steps_box, transport (play_button, step_button, back_button,
    reset_button, step_slider, speed_box, step_label), arrows_check, surface_plot, image_item, contour_item,
    start_item, minima_item, loss_plot, step_line, divergence_item, schedule_designer, race_error, race_note (why a
    Newton racer stopped), busy_bar; the preconditioner view: precond_check, precond_items ({key: (shaft, head)} for
    "gd", "adagrad", "newton"), precond_landing (the full Newton step, dashed), precond_text (the note).
    State: model, runs (label -> _Run), player, jobs.
    """

    race_ready = Signal()        # a new race result is on screen
    step_changed = Signal(int)

    def __init__(self, parent: QWidget | None = None, model: OptimizerLabModel | None = None):
        super().__init__(parent)
        self.model = model if model is not None else OptimizerLabModel()
        self.runs: dict[str, _Run] = {}
        self._spare_items: dict[str, dict[str, Any]] = {}   # a past race's plot items per racer, hidden (_run_items)
        self._n = 0                               # steps of the race on screen
        self._steps_x = np.arange(1, dtype=np.float64)
        self._closed = False
        self._loss_mode = "log"
        self._shown_diverged = 0
        self._table_labels: tuple[str, ...] = ()
        self.surface_log_colour = False

        self.jobs = JobRunner(self)
        self.player = FramePlayer(self, interval_ms=16, speed=2)
        self.player.frame_changed.connect(self._on_frame_changed)
        self._race_timer = QTimer(self)
        self._race_timer.setSingleShot(True)
        self._race_timer.setInterval(RACE_DEBOUNCE_MS)
        self._race_timer.timeout.connect(self._start_race)

        self._build_controls()
        self._build_plots()
        self._build_layout()

        self.model.changed.connect(self._on_model_changed)
        self._sync_table()
        self.optimizer_table.selectRow(0)
        self._show_surface_form()
        self._draw_surface()
        self.request_race()

    # ============================================================================================== construction
    def _build_controls(self) -> None:
        race_params = {p.name: p for p in params_of(RaceSettings)}
        # ---- surface
        self.surface_combo = param_widget(race_params["surface"])
        write_widget(self.surface_combo, self.model.surface_kind)
        self.surface_form: ParamForm | None = None
        self._surface_holder = QVBoxLayout()
        self._surface_holder.setContentsMargins(0, 0, 0, 0)
        self.expression_edit = QLineEdit()
        self.expression_edit.setPlaceholderText("e.g. x**2 + 10*y**2 + sin(3*x)")
        self.expression_edit.setClearButtonEnabled(True)
        self.expression_edit.setToolTip("f(x, y) in Python syntax: + - * / **, exp, log, sin, cos, tanh, ... "
                                        "Press Enter to race on it.")
        self.expression_error = _plain_error_label()
        self.noise_box = param_widget(race_params["noise"])
        self.surface_combo.currentIndexChanged.connect(self._on_surface_kind_changed)
        self.expression_edit.returnPressed.connect(self._on_expression_entered)
        self.noise_box.valueChanged.connect(lambda v: self._apply(self.model.set_noise, float(v)))

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
        self.optimizer_table.itemSelectionChanged.connect(self._rebuild_hyper_form)
        self.optimizer_table.itemSelectionChanged.connect(self._show_preconditioners)
        self.add_combo = QComboBox()
        for name, info in RACERS.items():
            self.add_combo.addItem(name, name)
            self.add_combo.setItemData(self.add_combo.count() - 1, f"{info.formula}\n{info.doc}",
                                       Qt.ItemDataRole.ToolTipRole)
        self.add_button = QPushButton("Add")
        self.remove_button = QPushButton("Remove")
        self.add_button.clicked.connect(lambda: self.add_optimizer(self.add_combo.currentText()))
        self.remove_button.clicked.connect(self._on_remove_clicked)
        self.hyper_title = QLabel()
        self.hyper_title.setStyleSheet("font-weight: 600;")
        self.hyper_form: ParamForm | None = None
        self._hyper_holder = QVBoxLayout()
        self._hyper_holder.setContentsMargins(0, 0, 0, 0)

        # ---- race
        self.n_steps_box = param_widget(race_params["n_steps"])
        self.n_steps_box.setSingleStep(100)
        self.n_steps_box.valueChanged.connect(self._on_n_steps_changed)
        self.transport = FrameTransportBar(self.player, unit="step", speed_suffix=" steps/frame")
        t = self.transport
        self.play_button, self.step_button, self.back_button = t.play_button, t.step_button, t.back_button
        self.reset_button, self.step_slider, self.speed_box, self.step_label = (t.rewind_button, t.slider,
                                                                                t.speed_box, t.label)
        self.arrows_check = QCheckBox("Arrows: −∇f and the step taken")
        self.arrows_check.toggled.connect(self._on_arrows_toggled)
        self.busy_bar = QProgressBar()
        self.busy_bar.setRange(0, 0)
        self.busy_bar.setMaximumHeight(10)
        self.busy_bar.setTextVisible(False)
        self.busy_bar.hide()
        self.busy_label = QLabel("Computing race…")
        self.busy_label.setStyleSheet(MUTED_STYLE)
        self.busy_label.hide()
        self.race_error = _plain_error_label()
        self.race_note = _plain_error_label()        # why a racer stopped (a singular Hessian), in its own words
        self.precond_check = QCheckBox("Preconditioners: −g, AdaGrad, Newton")
        self.precond_check.setToolTip("At the selected racer's current point: the step directions of gradient "
                                      "descent, AdaGrad's per-coordinate scaling and Newton's full Hessian, with H, "
                                      "its eigenvalues and condition number there")
        self.precond_check.toggled.connect(self._on_precond_toggled)
        self.precond_text = QLabel()
        self.precond_text.setTextFormat(Qt.TextFormat.RichText)
        self.precond_text.setWordWrap(True)
        self.precond_text.setStyleSheet("QLabel { background: #fbfbf8; border-top: 1px solid #d9dde3; padding: 6px; }")
        self.precond_text.hide()

        self.schedule_designer = ScheduleDesigner(horizon=self.model.n_steps)
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
        # all contour lines are one item of segment pairs (traced by simulator.labs.optimizer_lab.contour_segments)
        self.contour_item = pg.PlotCurveItem(pen=CONTOUR_PEN, connect="pairs", skipFiniteCheck=True)
        self.contour_item.setZValue(5)
        sp.addItem(self.contour_item)
        # the surface and its contours change only with the surface, not per frame of the race: kept as pixmaps, a
        # frame (or a switch back to this tab) blits them instead of scaling the image and stroking every contour
        # (the surface view's paint 9.5 -> 4.9 ms)
        for item in (self.image_item, self.contour_item):
            item.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
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
        self.precond_items: dict[str, tuple[pg.PlotDataItem, pg.ArrowItem]] = {}
        for key, colour, _ in PRECONDITIONERS:
            shaft = pg.PlotDataItem(pen=pg.mkPen(colour, width=3.2), skipFiniteCheck=True)
            head = pg.ArrowItem(headLen=13, tipAngle=36, tailLen=0, pen=pg.mkPen("w", width=1), brush=pg.mkBrush(colour))
            for item in (shaft, head):
                item.setZValue(45)
                item.hide()
                sp.addItem(item)
            self.precond_items[key] = (shaft, head)
        self.precond_landing = pg.PlotDataItem(pen=pg.mkPen(PRECONDITIONERS[2][1], width=1.6,
                                                            style=Qt.PenStyle.DashLine),
                                               symbol=["o", "+"], symbolSize=[0, 14], symbolPen=pg.mkPen(
                                                   PRECONDITIONERS[2][1], width=2.5), symbolBrush=None,
                                               skipFiniteCheck=True)
        self.precond_landing.setZValue(44)
        self.precond_landing.hide()
        sp.addItem(self.precond_landing)

        # ---- loss
        self._loss_axis = _LossAxis("left")
        self.loss_plot = pg.PlotWidget(background="w", axisItems={"left": self._loss_axis})
        lp = self.loss_plot.getPlotItem()
        lp.setMenuEnabled(False)
        lp.showGrid(x=True, y=True, alpha=0.15)
        lp.setLabel("bottom", "iteration")
        lp.setTitle("Loss", size="10pt")
        lp.setContentsMargins(0, 0, 12, 0)        # room for the last tick label of the step axis
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

    def _build_layout(self) -> None:
        surf = QVBoxLayout()
        surf.addWidget(self.surface_combo)
        surf.addLayout(self._surface_holder)
        expr = QFormLayout()
        expr.setContentsMargins(0, 0, 0, 0)
        expr.addRow("Custom f(x, y) =", self.expression_edit)
        surf.addLayout(expr)
        surf.addWidget(self.expression_error)
        noise = QFormLayout()
        noise.setContentsMargins(0, 0, 0, 0)
        noise_label = QLabel(params_of(RaceSettings)[2].title)
        noise_label.setToolTip(self.noise_box.toolTip())
        noise.addRow(noise_label, self.noise_box)
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
        opts.addLayout(self._hyper_holder)

        race_box = QVBoxLayout()
        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        steps_label = QLabel(params_of(RaceSettings)[1].title.capitalize())
        steps_label.setToolTip(self.n_steps_box.toolTip())
        form.addRow(steps_label, self.n_steps_box)
        race_box.addLayout(form)
        race_box.addWidget(self.transport)
        race_box.addWidget(self.arrows_check)
        race_box.addWidget(self.precond_check)
        race_box.addWidget(self.busy_label)
        race_box.addWidget(self.busy_bar)
        race_box.addWidget(self.race_error)
        race_box.addWidget(self.race_note)
        self.prediction = PredictionBox("which optimizer reaches the minimum first on this surface?",
                                        self._check_prediction, choices=[r.label for r in self.model.racers])
        race_box.addWidget(self.prediction)
        self.decay_button = QPushButton("L2 vs decoupled weight decay…")
        self.decay_button.setToolTip("SGD and Adam with weight decay in the gradient (L2) and decoupled (AdamW) from "
                                     "this start: identical for SGD, different for Adam")
        self.decay_button.clicked.connect(self.show_weight_decay)
        race_box.addWidget(self.decay_button)

        scroll = control_column([group("Surface", surf), group("Optimizers", opts), group("Race", race_box)],
                                min_width=360)
        # never narrower than what the column needs: nothing in it is ever clipped on the right
        need = scroll.widget().minimumSizeHint().width() + scroll.verticalScrollBar().sizeHint().width()
        scroll.setMinimumWidth(max(360, need))
        self.control_scroll = scroll

        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self.loss_plot)
        right.addWidget(self.schedule_designer)
        right.setStretchFactor(0, 3)
        right.setStretchFactor(1, 2)
        right.setChildrenCollapsible(False)
        self.loss_plot.setMinimumHeight(180)
        # the designer keeps its layout's minimum height (323 px): a smaller one let its form overlap its plot

        self.surface_plot.setMinimumSize(QSize(320, 320))
        centre = QWidget()
        centre_box = QVBoxLayout(centre)
        centre_box.setContentsMargins(0, 0, 0, 0)
        centre_box.setSpacing(0)
        centre_box.addWidget(self.surface_plot, 1)
        centre_box.addWidget(self.precond_text)
        # the loss plot and the schedule designer: a column beside the surface when there is room for three
        # columns, tabs under the surface when there is not (a laptop with the lesson dock open)
        self._right = right
        self.side_tabs = TabWidget()
        self._side_tab = 0
        self.side_tabs.setDocumentMode(True)
        self.side_tabs.hide()
        right_box = QWidget()
        rb = QVBoxLayout(right_box)
        rb.setContentsMargins(0, 0, 0, 0)
        rb.addWidget(right)
        rb.addWidget(self.side_tabs)
        self.plots_splitter = FlowSplitter(side=(5, 4), stacked=(3, 2))
        self.plots_splitter.arrangement_changed.connect(self._on_arrangement_changed)
        self.plots_splitter.addWidget(centre)
        self.plots_splitter.addWidget(right_box)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(scroll)
        self.splitter.addWidget(self.plots_splitter)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([380, 1140])
        root = QHBoxLayout(self)
        root.setContentsMargins(0, 0, 0, 0)
        root.addWidget(self.splitter)

    def _on_arrangement_changed(self, stacked: bool) -> None:
        """Tabs under the surface (stacked) or a column beside it: the same two widgets move between them."""
        if stacked:
            self._right.hide()
            self.side_tabs.addTab(self.loss_plot, "Loss")
            self.side_tabs.addTab(self.schedule_designer, "Learning-rate schedule")
            self.side_tabs.setCurrentIndex(self._side_tab)      # the tab the learner had chosen last time
            self.side_tabs.show()
        elif self.side_tabs.count():
            self._side_tab = self.side_tabs.currentIndex()
            self._right.insertWidget(0, self.loss_plot)
            self._right.insertWidget(1, self.schedule_designer)
            for w in (self.loss_plot, self.schedule_designer):
                w.show()                # a tab page not on top was hidden by the tabs, and stays so unless shown
            self.side_tabs.hide()
            self._right.show()
            self._right.setSizes([300, 200])

    # ================================================================================================ public API
    @property
    def step(self) -> int:
        return self.player.frame

    @property
    def n_steps(self) -> int:
        """Steps of the race on screen."""
        return self._n

    @property
    def start_point(self) -> tuple[float, float]:
        return self.model.start

    def colour(self, racer: Racer) -> str:
        return PALETTE[racer.slot % len(PALETTE)]

    def set_start_point(self, x: float, y: float) -> None:
        self._apply(self.model.set_start, x, y)

    def is_busy(self) -> bool:
        """True while a race is being computed (or one is about to start)."""
        return self.jobs.running("race") or self._race_timer.isActive()

    def add_optimizer(self, kind: str, params: dict[str, Any] | None = None) -> Racer | None:
        """Append a racer (OPTIMIZERS key ``kind``) and select its row."""
        racer = self._apply(self.model.add_optimizer, kind, **dict(params or {}))
        if racer is not None:
            self.optimizer_table.selectRow(len(self.model.racers) - 1)
        return racer

    def remove_optimizer(self, row: int) -> None:
        if 0 <= row < len(self.model.racers):
            self._apply(self.model.remove_optimizer, row)
            if self.model.racers:
                self.optimizer_table.selectRow(min(row, len(self.model.racers) - 1))

    def lr_box(self, row: int):
        return self.optimizer_table.cellWidget(row, 2)

    def play(self) -> None:
        self.player.play()

    def pause(self) -> None:
        self.player.pause()

    def is_playing(self) -> bool:
        return self.player.is_playing()

    def reset(self) -> None:
        self.player.rewind()

    def set_step(self, t: int) -> None:
        """Show the race at update t (clamped to [0, n_steps])."""
        t = max(0, min(int(t), self._n))
        if t == self.player.frame:
            self._show_step(t)
            self.step_changed.emit(t)
        else:
            self.player.seek(t)

    def request_race(self) -> None:
        """Recompute the race soon (changes arriving together are coalesced)."""
        if not self._closed:
            self._race_timer.start()

    def close_lab(self) -> None:
        """Stop playback and the race; the lab does nothing afterwards."""
        if self._closed:
            return
        self._closed = True
        self.player.pause()
        self._race_timer.stop()
        self.jobs.close()
        self.model.changed.disconnect(self._on_model_changed)

    def closeEvent(self, event) -> None:  # noqa: N802
        self.close_lab()
        super().closeEvent(event)

    # ============================================================================================ model -> view
    def _apply(self, setter, *args: Any, **kwargs: Any) -> Any:
        """Call a model setter; a refusal is shown under the race controls (the model is unchanged)."""
        try:
            out = setter(*args, **kwargs)
        except StudioError as exc:
            self.race_error.setText(str(exc))
            self.race_error.show()
            return None
        return out

    def _on_model_changed(self, what: str) -> None:
        if what == "surface":
            self._draw_surface()
            self._clear_runs()
        elif what == "optimizers":
            self._sync_table()
        elif what == "steps":
            self.schedule_designer.set_horizon(self.model.n_steps)
        if what in ("surface", "start"):
            self.start_item.setData([self.model.start[0]], [self.model.start[1]])
        self.request_race()

    # ================================================================================================== surface
    def _on_surface_kind_changed(self, _index: int) -> None:
        kind = read_widget(self.surface_combo)
        if kind == CUSTOM:
            self._on_expression_entered()
            return
        self._apply(self.model.set_surface, kind)
        self._show_surface_form()

    def _show_surface_form(self) -> None:
        if self.surface_form is not None:
            self.surface_form.hide()
            self.surface_form.setParent(None)
            self.surface_form.deleteLater()
            self.surface_form = None
        if self.model.surface_kind == CUSTOM:
            return
        cls = SURFACES[self.model.surface_kind]
        if not params_of(cls):
            return
        form = ParamForm(cls)
        form.error.setTextFormat(Qt.TextFormat.PlainText)
        form.error.setStyleSheet(ERROR_STYLE)
        form.set_value(self.model.surface)
        form.edited.connect(self._on_surface_param_changed)
        self._surface_holder.addWidget(form)
        form.show()       # at once: a layout would show it only on the next event-loop turn
        self.surface_form = form
        self.surface_param_boxes = form.widgets

    def _on_surface_param_changed(self) -> None:
        form = self.surface_form
        if form is None:
            return
        try:
            self.model.set_surface_params(**form.values())
        except StudioError as exc:
            form.error.setText(str(exc))
            form.error.show()
            return
        form.error.hide()

    def _on_expression_entered(self) -> None:
        text = self.expression_edit.text().strip()
        if not text:
            if read_widget(self.surface_combo) == CUSTOM:
                self._show_surface_error("Type an expression in x and y, e.g. x**2 + 10*y**2, and press Enter.")
            return
        try:
            self.model.set_expression(text)
        except StudioError as exc:   # the expression's own message, shown as plain text
            self._show_surface_error(str(exc))
            self.surface_combo.blockSignals(True)
            write_widget(self.surface_combo, self.model.surface_kind)
            self.surface_combo.blockSignals(False)
            return
        self.expression_error.hide()
        self.surface_combo.blockSignals(True)
        write_widget(self.surface_combo, CUSTOM)
        self.surface_combo.blockSignals(False)
        self._show_surface_form()

    def _show_surface_error(self, message: str) -> None:
        self.expression_error.setText(message)
        self.expression_error.show()

    def _draw_surface(self) -> None:
        surface = self.model.surface
        try:
            heat = surface_heatmap(surface, GRID_N)
        except StudioError as exc:
            self._show_surface_error(f"cannot draw this surface: {exc}")
            return
        self.surface_log_colour = heat.log_colour
        C, (lo, hi) = heat.colour, heat.levels
        self.image_item.setImage(C.T, levels=(lo, hi), autoLevels=False)
        self.image_item.setRect(QRectF(*heat.rect))
        # contours on a coarser copy of the grid: smooth enough, and quick
        step = max(1, GRID_N // CONTOUR_N)
        Cc = C[::step, ::step]
        levels = lo + (hi - lo) * np.linspace(0, 1, N_CONTOURS + 2)[1:-1] ** (1.3 if heat.log_colour else 1.6)
        x0, y0, w, h = heat.rect                  # C[row = y, col = x]; the coarse copy ends at sample step*(len-1)
        cw = w * step * (Cc.shape[1] - 1) / (C.shape[1] - 1)
        ch = h * step * (Cc.shape[0] - 1) / (C.shape[0] - 1)
        segs = contour_segments(Cc.T, levels, (x0, y0, cw, ch))
        self.contour_item.setData(segs[..., 0].ravel(), segs[..., 1].ravel())
        mins = surface.minima
        self.minima_item.setData([m[0] for m in mins], [m[1] for m in mins])
        self.start_item.setData([self.model.start[0]], [self.model.start[1]])
        (x0, x1), (y0, y1) = surface.xlim, surface.ylim
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
    def _sync_table(self) -> None:
        """Rows follow the model's racers; rebuilt only when the list of racers changed (not on a value edit, so
        a box being typed into keeps its focus)."""
        racers = self.model.racers
        labels = tuple(r.label for r in racers)
        if labels == self._table_labels:
            for row, r in enumerate(racers):
                item = self.optimizer_table.item(row, 0)
                state = Qt.CheckState.Checked if r.enabled else Qt.CheckState.Unchecked
                if item is not None and item.checkState() != state:
                    self.optimizer_table.blockSignals(True)
                    item.setCheckState(state)
                    self.optimizer_table.blockSignals(False)
                box = self.lr_box(row)
                if box is not None and read_widget(box) != r.lr:
                    box.blockSignals(True)
                    write_widget(box, r.lr)
                    box.blockSignals(False)
            return
        selected = self._selected_row()
        t = self.optimizer_table
        t.blockSignals(True)
        t.setRowCount(0)
        for r in racers:
            self._append_row(r)
        t.blockSignals(False)
        self._table_labels = labels
        if racers:
            t.selectRow(min(max(selected, 0), len(racers) - 1))
        self._rebuild_hyper_form()

    def _append_row(self, racer: Racer) -> None:
        t = self.optimizer_table
        row = t.rowCount()
        t.insertRow(row)
        colour = self.colour(racer)
        on = QTableWidgetItem()
        on.setFlags(Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
        on.setCheckState(Qt.CheckState.Checked if racer.enabled else Qt.CheckState.Unchecked)
        on.setIcon(_swatch(colour))
        on.setToolTip("Race this optimizer")
        t.setItem(row, 0, on)
        name = QTableWidgetItem(racer.label)
        name.setForeground(QColor(colour).darker(115))
        f = name.font()
        f.setBold(True)
        name.setFont(f)
        name.setToolTip(f"{racer.info.formula}\n{racer.info.doc}")
        t.setItem(row, 1, name)
        t.setItem(row, 3, QTableWidgetItem(""))
        box = param_widget(racer.info.params[0])     # the declared learning rate
        write_widget(box, racer.lr)
        box.setFrame(False)
        box.valueChanged.connect(lambda v, label=racer.label: self._on_lr_changed(label, float(v)))
        t.setCellWidget(row, 2, box)

    def _row_of(self, label: str) -> int:
        return next((i for i, r in enumerate(self.model.racers) if r.label == label), -1)

    def _on_lr_changed(self, label: str, value: float) -> None:
        row = self._row_of(label)
        if row >= 0:
            self._apply(self.model.set_hyper, row, lr=value)
            if self.hyper_form is not None and self._selected_row() == row:
                self.hyper_form.fixed["lr"] = value

    def _on_table_item_changed(self, item: QTableWidgetItem) -> None:
        if item.column() == 0 and 0 <= item.row() < len(self.model.racers):
            self._apply(self.model.set_enabled, item.row(), item.checkState() == Qt.CheckState.Checked)

    def _on_remove_clicked(self) -> None:
        row = self._selected_row()
        if row >= 0:
            self.remove_optimizer(row)

    def _selected_row(self) -> int:
        model = self.optimizer_table.selectionModel()
        rows = model.selectedRows() if model is not None else []
        if rows and 0 <= rows[0].row() < len(self.model.racers):
            return rows[0].row()
        return -1

    def _rebuild_hyper_form(self) -> None:
        if self.hyper_form is not None:
            self.hyper_form.hide()
            self.hyper_form.setParent(None)
            self.hyper_form.deleteLater()
            self.hyper_form = None
        row = self._selected_row()
        if row < 0:
            self.hyper_title.setText("")
            return
        racer = self.model.racers[row]
        self.hyper_title.setText(f"{racer.label} hyperparameters")
        form = ParamForm(racer.info.settings, only=racer.info.param_names[1:])   # lr is in the table
        form.error.setTextFormat(Qt.TextFormat.PlainText)
        form.error.setStyleSheet(ERROR_STYLE)
        form.set_value(racer.hyper)
        form.edited.connect(lambda label=racer.label: self._on_hyper_edited(label))
        self._hyper_holder.addWidget(form)
        form.show()       # at once: a layout would show it only on the next event-loop turn
        self.hyper_form = form

    def _on_hyper_edited(self, label: str) -> None:
        row, form = self._row_of(label), self.hyper_form
        if row < 0 or form is None:
            return
        try:
            self.model.set_hyper(row, **form.values())
        except StudioError as exc:   # the model keeps the last valid values; the refusal is shown under the form
            form.error.setText(str(exc))
            form.error.show()
            return
        form.error.hide()

    def _set_status(self, row: int, text: str, colour: str | None = None, tip: str = "") -> None:
        item = self.optimizer_table.item(row, 3)
        if item is None:
            return
        self.optimizer_table.blockSignals(True)
        item.setText(text)
        item.setForeground(QColor(colour or "#1f2933"))
        item.setToolTip(tip or text)
        self.optimizer_table.blockSignals(False)

    # ===================================================================================================== race
    def _on_n_steps_changed(self, n: int) -> None:
        self._apply(self.model.set_n_steps, int(n))

    def _on_schedule_applied(self, schedule: Schedule | None) -> None:
        self._apply(self.model.set_schedule, schedule)

    def _start_race(self) -> None:
        if self._closed:
            return
        try:
            job = self.model.race_job()      # a snapshot of the settings, checked here
        except StudioError as exc:
            self.jobs.cancel("race", notify=False)
            self._on_race_failed(exc, str(exc))
            return
        self.busy_bar.setRange(0, 0)
        self.busy_bar.show()
        self.busy_label.show()
        self.jobs.start("race", lambda: job, on_yield=self._on_race_progress, on_done=self._on_race_finished,
                        on_error=self._on_race_failed)

    def _race_ended(self) -> None:
        self.busy_bar.hide()
        self.busy_label.hide()

    def _on_race_progress(self, progress: Any) -> None:
        if getattr(progress, "total", 0) > 0:
            self.busy_bar.setRange(0, progress.total)
            self.busy_bar.setValue(progress.done)

    def _on_race_failed(self, _exc: BaseException, text: str) -> None:
        self._race_ended()
        self.race_error.setText(text)
        self.race_error.show()

    def _on_race_finished(self, results: dict[str, RaceResult]) -> None:
        self._race_ended()
        if self._closed:
            return
        self.race_error.hide()
        self._install_runs(results)
        self.results = results
        labels = [r.label for r in self.model.racers if r.enabled]
        if self.prediction.combo is not None and labels != [self.prediction.combo.itemText(i)
                                                            for i in range(1, self.prediction.combo.count())]:
            self.prediction.set_choices(labels)
        self.prediction.feedback.hide()
        self.race_ready.emit()

    def show_weight_decay(self) -> QDialog:
        """The four weight-decay variants on this surface (rate 0.05, λ = 0.1, 200 steps): paths and their gaps."""
        r = self.model.weight_decay_comparison()
        dialog = QDialog(self)
        dialog.setWindowTitle("Weight decay: L2 in the gradient vs decoupled")
        plot = pg.PlotWidget(background="w")
        pi = plot.getPlotItem()
        pi.setAspectLocked(True)
        pi.showGrid(x=True, y=True, alpha=0.15)
        pi.setTitle(f"{self.model.surface.name}: 200 steps, lr {r.lr:g}, λ {r.weight_decay:g}", size="10pt",
                    color=theme.INK_HEX)
        pi.addLegend(offset=(-6, 6), labelTextSize="9pt")
        styles = {"SGD + L2": ("#4e79a7", Qt.PenStyle.SolidLine, 4.0),
                  "SGD decoupled": ("#f28e2b", Qt.PenStyle.DashLine, 2.0), "Adam + L2": ("#e15759", Qt.PenStyle.SolidLine, 2.0),
                  "AdamW (decoupled)": ("#59a14f", Qt.PenStyle.SolidLine, 2.0)}
        for label, path in r.paths.items():
            colour, style, width = styles[label]
            pi.plot(path[:, 0], path[:, 1], pen=pg.mkPen(colour, width=width, style=style), name=label)
        start = next(iter(r.paths.values()))[0]
        pi.addItem(pg.ScatterPlotItem([start[0]], [start[1]], size=11, brush=pg.mkBrush("#ffffff"),
                                      pen=pg.mkPen(theme.INK_HEX, width=2)))
        note = QLabel(
            f"SGD: L2 in the gradient, x ← x − lr·(g + λx), and decoupled decay, x ← x − lr·g − lr·λ·x, are the same "
            f"update: the two paths differ by at most {r.sgd_gap:.1e} (rounding). Adam: L2 goes through Adam's "
            f"per-coordinate scaling by 1/√v, so a coordinate with large gradients is barely decayed; AdamW decays "
            f"every weight by the same lr·λ, outside the adaptive step. Their paths part by up to {r.adam_gap:.3g}.",
            dialog)
        note.setWordWrap(True)
        lay = QVBoxLayout(dialog)
        lay.addWidget(plot, 1)
        lay.addWidget(note)
        dialog.resize(760, 620)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        self.decay_dialog, self.decay_result = dialog, r
        return dialog

    def _check_prediction(self, label: str) -> tuple[bool, str]:
        """The race's own answer: the first racer within 1e-3 of the surface's minimum."""
        results = getattr(self, "results", None)
        if not results:
            return False, "the race has not finished yet"
        winner, steps = self.model.race_winner(results)
        order = sorted((s, l) for l, s in steps.items() if s is not None)
        table = ", ".join(f"{l} at step {s}" for s, l in order) or "none"
        never = [l for l, s in steps.items() if s is None]
        text = f"Reached the minimum: {table}" + (f"; never: {', '.join(never)}" if never else "") + "."
        if winner is None:
            return False, "No optimizer reaches the minimum within the race's steps. " + text
        return label == winner, f"{winner} gets there first. " + text

    def _clear_runs(self) -> None:
        for run in self.runs.values():     # hidden and kept for the next race (_run_items)
            for item in run.items.values():
                item.hide()
            self._spare_items[run.label] = run.items
        self.runs = {}
        self.loss_legend.clear()
        self.divergence_item.setData([], [])
        self._shown_diverged = 0
        self.grad_shafts.setData([], [])
        self._hide_precond_items()

    def _install_runs(self, results: dict[str, RaceResult]) -> None:
        self._clear_runs()
        n = self.model.n_steps
        for r in results.values():
            n = len(r.lrs)
            break
        self._n = n
        self._steps_x = np.arange(n + 1, dtype=np.float64)
        mode, _fstar, curves = self.model.loss_curves(results)
        self._loss_mode = mode
        lp = self.loss_plot.getPlotItem()
        racers = {r.label: r for r in self.model.racers}
        lo, hi = math.inf, -math.inf
        xlim = self.model.surface.xlim
        tol = (xlim[1] - xlim[0]) / DECIMATE_FRACTION
        for label, r in results.items():
            racer = racers.get(label)
            colour = self.colour(racer) if racer is not None else "#555555"
            y = curves[label]
            if len(y):
                lo, hi = min(lo, float(y.min())), max(hi, float(y.max()))
            g = r.grads if r.grads is not None else np.zeros((len(y), 2))
            run = _Run(label, colour, np.ascontiguousarray(r.trajectory[:, 0]),
                       np.ascontiguousarray(r.trajectory[:, 1]), y, np.ascontiguousarray(g[:, 0]),
                       np.ascontiguousarray(g[:, 1]), r.diverged_at, r)
            if run.m > DECIMATE_ABOVE:
                run.pidx = _decimate(run.xs, run.ys, tol)
                run.px, run.py = run.xs[run.pidx], run.ys[run.pidx]
            name = (f"{label}: diverged at step {r.diverged_at}" if r.diverged_at is not None else
                    f"{label}: stopped at step {r.stopped_at}" if r.stopped_at is not None else label)
            run.items = self._run_items(label, colour, name)
            self.runs[label] = run
        notes = []
        for row, racer in enumerate(self.model.racers):
            r = results.get(racer.label)
            if not racer.enabled or r is None:
                self._set_status(row, "off", "#9aa3ad")
            elif r.diverged_at is not None:
                self._set_status(row, f"diverged at step {r.diverged_at}", "#c8372d")
            elif r.stopped_at is not None:
                self._set_status(row, f"stopped: {r.stop_label}", "#c8372d", r.stop_reason)
                notes.append(f"{racer.label} stopped at step {r.stopped_at}: {r.stop_reason}")
            else:
                # an honest ending: a racer (pure Newton, above all) may come to rest on a saddle or a maximum
                kind = point_kind(self.model.surface, *r.final)
                where = f" at a {kind}" if kind in ("saddle point", "maximum") else ""
                self._set_status(row, f"f = {float(r.losses[-1]):.3g}{where}", "#c8372d" if where else None)
        self.race_note.setText("\n".join(notes))
        self.race_note.setVisible(bool(notes))
        # fixed ranges: the view never jumps while playing and autorange costs nothing per frame
        self._loss_axis.symlog = mode == "symlog"
        self._loss_axis.setLogMode(False, mode == "log")
        lp.setLabel("left", "f − f*" if mode == "log" and self.model.surface.minima else "f")
        if not math.isfinite(lo):
            lo, hi = 0.0, 1.0
        if hi - lo < 1e-9:
            lo, hi = lo - 0.5, hi + 0.5
        lp.setRange(xRange=(0, max(n, 1)), yRange=(lo, hi), padding=0.04)
        self._loss_axis.picture = None
        self._loss_axis.update()
        self._set_arrows_visible(self.arrows_check.isChecked())
        frame = min(self.player.frame, n)
        self.player.set_count(n + 1)
        self.set_step(frame)

    def _run_items(self, label: str, colour: str, name: str) -> dict[str, Any]:
        """One racer's plot items, in its colour, shown, the loss curve in the legend as ``name``: those of the last
        race with this label, or new ones. (Making the six pyqtgraph items of each of seven racers anew held the UI
        thread ~100 ms at the end of every race.) Their data is set by _show_step."""
        items = self._spare_items.pop(label, None)
        if items is None:
            sp, lp = self.surface_plot.getPlotItem(), self.loss_plot.getPlotItem()
            items = {"path": pg.PlotDataItem(skipFiniteCheck=True),
                     # one spot at the item's origin, moved with setPos each frame (no per-frame setData)
                     "marker": pg.ScatterPlotItem(),
                     "step_arrow": pg.PlotDataItem(skipFiniteCheck=True),
                     "step_head": pg.ArrowItem(headLen=11, tipAngle=35, tailLen=0),
                     "grad_head": pg.ArrowItem(headLen=9, tipAngle=35, tailLen=0, pen=plotting.pen("#1f2933"),
                                               brush=plotting.brush("#1f2933")),
                     "loss": pg.PlotDataItem(skipFiniteCheck=True)}
            for key, z in (("path", 10), ("marker", 35), ("step_arrow", 38)):
                items[key].setZValue(z)
            for key in ("path", "marker", "step_arrow", "step_head", "grad_head"):
                sp.addItem(items[key])
            items["loss"].setClipToView(True)
            items["loss"].setDownsampling(auto=True, method="peak")
            lp.addItem(items["loss"])
        items["path"].setPen(plotting.pen(colour, 2.2))
        items["marker"].setData([0.0], [0.0], symbol="o", size=11, brush=plotting.brush(colour),
                                pen=plotting.pen("w", 1.5))
        items["step_arrow"].setPen(plotting.pen(colour, 3))
        items["step_head"].setStyle(pen=plotting.pen(colour), brush=plotting.brush(colour))
        items["loss"].setPen(plotting.pen(colour, 1))  # width 1: the raster engine draws thin lines several times faster
        items["loss"].opts["name"] = name                # its name(), as a PlotDataItem made with name=
        self.loss_legend.addItem(items["loss"], name)
        for item in items.values():
            item.show()
        return items

    # =================================================================================================== player
    def _on_frame_changed(self, t: int) -> None:
        self._show_step(t)
        self.step_changed.emit(t)

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
                                     brush=plotting.brush(run.colour),
                                     pen=plotting.pen(run.colour, 2) if diverged else plotting.pen("w", 1.5))
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
            self.divergence_item.setData(div_x, div_y, pen=[plotting.pen(c, 3) for c in div_brush],
                                         brush=div_brush)
        self.step_line.setValue(t)
        if self.precond_check.isChecked():
            self._show_preconditioners()

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
        self._show_step(self.player.frame)

    def _set_arrows_visible(self, on: bool) -> None:
        self.grad_shafts.setVisible(on)
        for run in self.runs.values():
            for key in ("step_arrow", "step_head", "grad_head"):
                run.items[key].setVisible(on)

    # ======================================================================================== preconditioners
    def precond_run(self) -> _Run | None:
        """The run the preconditioner view follows: the selected racer's, else the first one on screen."""
        row = self._selected_row()
        if 0 <= row < len(self.model.racers):
            run = self.runs.get(self.model.racers[row].label)
            if run is not None:
                return run
        return next(iter(self.runs.values()), None)

    def _on_precond_toggled(self, on: bool) -> None:
        self.precond_text.setVisible(on)
        if on:
            self._show_preconditioners()
        else:
            self._hide_precond_items()

    def _hide_precond_items(self) -> None:
        for shaft, head in self.precond_items.values():
            shaft.hide()
            head.hide()
        self.precond_landing.hide()

    def _show_preconditioners(self) -> None:
        """Arrows and note at the followed racer's current point (numbers along its path computed once)."""
        if not self.precond_check.isChecked():
            return
        run = self.precond_run()
        if run is None:
            self._hide_precond_items()
            self.precond_text.setText("The race is being computed…")
            return
        if run.precond is None:
            try:
                run.precond = self.model.preconditioners(run.result)
            except StudioError as exc:
                self._hide_precond_items()
                self.precond_text.setText(html.escape(f"No preconditioners here: {exc}"))
                return
        P = run.precond
        k = min(self.player.frame, run.m - 1)
        x, y = (float(v) for v in P.points[k])
        x0, x1 = self.surface_plot.getPlotItem().getViewBox().viewRange()[0]
        length = PRECOND_LENGTH * (x1 - x0)
        for key, _colour, _name in PRECONDITIONERS:
            dx, dy = (float(v) for v in getattr(P, key)[k])
            n = math.hypot(dx, dy)
            shaft, head = self.precond_items[key]
            if n > 0 and math.isfinite(n):
                ex, ey = x + length * dx / n, y + length * dy / n
                shaft.setData([x, ex], [y, ey])
                head.setPos(ex, ey)
                head.setStyle(angle=math.degrees(math.atan2(dy, -dx)))
                shaft.show()
                head.show()
            else:
                shaft.hide()
                head.hide()
        nx, ny = (float(v) for v in P.newton[k])
        if math.isfinite(nx) and math.isfinite(ny):
            self.precond_landing.setData([x, x + nx], [y, y + ny])
            self.precond_landing.show()
        else:
            self.precond_landing.hide()
        self.precond_text.setText(self._precond_html(run, k))

    def _precond_html(self, run: _Run, k: int) -> str:
        """The note under the plot: H at the point, then what each of the three arrows is, with its numbers."""
        P = run.precond
        assert P is not None
        x, y = P.points[k]
        hxx, hxy, hyy = P.hessians[k]
        lo, hi = P.eigenvalues[k]
        cond = float(P.condition[k])
        newton = P.newton[k]
        singular = not np.all(np.isfinite(newton))

        scale = max(1.0, abs(float(x)), abs(float(y)))

        def num(v: float) -> str:
            if math.isinf(v):
                return "∞"
            return f"{v if abs(v) > 1e-12 * scale else 0.0:.3g}".replace("-", "−")   # rounding noise shown as 0

        def vec(a: Any) -> str:
            return f"({num(float(a[0]))}, {num(float(a[1]))})"

        def swatch(i: int) -> str:
            key, colour, name = PRECONDITIONERS[i]
            return f"<span style='color:{colour}; font-weight:600'>■ {name} = {vec(getattr(P, key)[k])}</span>"

        if singular:
            shape = "singular: the surface does not curve along one direction, so H has no inverse."
        elif lo > 0:
            shape = "positive definite, a bowl here."
        elif hi < 0:
            shape = "both negative, a hilltop here, not a bowl."
        else:
            shape = (f"one negative, a saddle here, not a bowl (it curves down along the direction of "
                     f"eigenvalue {num(float(lo))}).")
        lines = [
            f"<b>At ({num(float(x))}, {num(float(y))})</b>, {html.escape(run.label)}'s point at step {k}: "
            f"H = [[{num(hxx)}, {num(hxy)}], [{num(hxy)}, {num(hyy)}]], eigenvalues {num(float(lo))} and "
            f"{num(float(hi))}, condition number {num(cond)}: {shape}",
            f"{swatch(0)} gradient descent, no preconditioner: steepest downhill, blind to curvature (across a "
            f"narrow valley, not along it).",
            f"{swatch(1)} AdaGrad: g divided per coordinate by √s = {vec(np.sqrt(P.sum_sq[k]))}, the root of its "
            f"accumulated squared gradients, a diagonal curvature estimate (diag H = ({num(hxx)}, {num(hyy)})); "
            f"one scale per axis cannot undo a rotated bowl." + (" At step 0, s = g²: −sign(g)." if k == 0 else ""),
        ]
        if singular:
            lines.append(f"<span style='color:{PRECONDITIONERS[2][1]}; font-weight:600'>■ −H⁻¹g: none</span> "
                         f"Newton needs H⁻¹, which does not exist here.")
        else:
            land = (float(x + newton[0]), float(y + newton[1]))
            where = ("the minimum of the quadratic that matches f here (on a quadratic bowl: the minimum itself)"
                     if lo > 0 else "the stationary point of the quadratic that matches f here, not a minimum: "
                     "pure Newton heads for saddles and maxima too (the H + λI and |H| fixes do not)")
            lines.append(f"{swatch(2)} Newton, the full Hessian: the full step (dashed) lands at {vec(land)}, "
                         f"{where}.")
        return "<br>".join(lines)
