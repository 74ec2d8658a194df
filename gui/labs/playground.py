"""The training playground: pick data, build a network, train it live (TensorFlow Playground, with the lecture's knobs).

A thin view over ``simulator.labs.playground.PlaygroundLabModel``: the data and training controls are built from
the model's declared settings (and the optimizers' and schedules' own declarations), every piece of long work is a
job of the lab's one ``gui.jobs.JobRunner``: making the data ("data": the digits' scikit-learn import and loading
happen there, never when the tab opens), training ("train": keep="all", one TrainUpdate per update; the runner's
pause/resume/step(1) are Pause/Resume/Step, Reset cancels it) and the pictures of paused weights ("visuals").

The runner's one timer delivers what the job yielded about 40 times a second; each delivery appends the metrics and
calls setData once per curve (curves longer than MAX_CURVE_POINTS are decimated keeping each bucket's min and max),
and redraws the regions / confusion matrix / filters / maps only when a new picture came. The network is read from
this thread (save, export, the graph for the editor, the copy handed to the interpretability lab) only under the
session's lock, which the training job holds for one update at a time: such a read waits at most one update.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from gui import plotting, theme
from gui.forms import ParamForm, param_widget, read_widget, write_widget
from gui.jobs import JobRunner
from gui.labs.curve_doctor import CurveDoctor
from gui.labs.prediction import PredictionBox
from gui.labs.augment_view import show_augment_preview
from gui.labs.evaluate_panel import EvaluatePanel
from gui.labs.preprocess_view import show_preprocess_preview
from gui.labs.transfer_view import FreezePanel
from gui.labs.common import CLASS_COLOURS, MUTED_STYLE, PALETTE, FlowSplitter, control_column, digit_pixmap, group
from gui.labs.network_builder import NetworkBuilder
from simulator.core.errors import StudioError
from simulator.core.params import params_of
from simulator.data import datasets
from simulator.functional.optim import OPTIMIZERS
from simulator.functional.schedules import SCHEDULES, WARMUP_PARAMS
from simulator.labs import playground as M
from simulator.labs.playground import DATASETS, DIGITS, GRAPH_BATCH, NO_SCHEDULE, TrainedModel, TrainUpdate, Visuals
from simulator.nn.network import Objective

__all__ = ["DATASETS", "DIGITS", "GRAPH_BATCH", "PlaygroundLab"]

TICK_MS = 20                  # the runner's delivery timer: 50 Hz, so >= 30 redraws a second while training
MAX_CURVE_POINTS = 1500       # per curve on screen; longer runs are decimated (min and max of each bucket)
MAX_EPOCH_SYMBOLS = 40        # epoch curves beyond this many points are drawn as plain lines
BANNER_STYLE = (f"color: {theme.ERROR.name()}; background: #fbeaea; border: 1px solid #f0c9c6; border-radius: 3px;"
                f" padding: 6px 10px; font-weight: 600;")
_CLASS_RGB = np.array([[QColor(c).red(), QColor(c).green(), QColor(c).blue()] for c in CLASS_COLOURS], float)
TRAIN_COLOUR = "#2f74d0"
VAL_COLOUR = "#e8710a"
STEP_COLOUR = (120, 135, 155, 110)
FLOOR = 1e-12                 # log plots: zero losses and norms are drawn at this floor


def _tiles(stack: np.ndarray, cols: int | None = None, pad: int = 1) -> np.ndarray:
    """(F, h, w) -> one RGB mosaic (rows*(h+pad), cols*(w+pad), 3) uint8, each tile in theme.diverging_rgb with its
    own symmetric scale (white = 0), separated by light lines."""
    F, h, w = stack.shape
    cols = cols or int(math.ceil(math.sqrt(F)))
    rows = int(math.ceil(F / cols))
    out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), 225, np.uint8)
    for k in range(F):
        r, c = divmod(k, cols)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        out[y:y + h, x:x + w] = theme.diverging_rgb(np.nan_to_num(stack[k]))
    return out


class Decimated:
    """Min/max decimation of a growing series, kept up to date: at most about ``cap`` points, each bucket of k points
    drawn as its min and max (in order) so spikes survive, the first and last point always kept. Buckets are
    powers of two that double as the series does, so each call only scans the buckets completed since the last one
    (amortised O(new points), where re-decimating the whole series every frame grew with the run)."""

    def __init__(self, cap: int = MAX_CURVE_POINTS):
        self.cap = cap
        self.k = 0
        self.m = 0                                   # points covered by complete buckets so far
        self.idx = np.empty(0, np.int64)

    def __call__(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = len(y)
        if n <= self.cap:
            return x, y
        k = 1 << max(0, math.ceil(math.log2(2 * n / self.cap)))
        if k != self.k:
            self.k, self.m, self.idx = k, 0, np.empty(0, np.int64)
        m = (n // k) * k
        if m > self.m:
            yb = y[self.m:m].reshape(-1, k)
            lo = np.argmin(np.where(np.isnan(yb), np.inf, yb), axis=1)
            hi = np.argmax(np.where(np.isnan(yb), -np.inf, yb), axis=1)
            base = np.arange(self.m, m, k)
            new = np.empty(2 * len(base), np.int64)
            new[0::2], new[1::2] = base + np.minimum(lo, hi), base + np.maximum(lo, hi)
            self.idx = np.concatenate([self.idx, new])
            self.m = m
        idx = np.concatenate([[0], self.idx, np.arange(self.m, n), [n - 1]])
        idx = idx[np.concatenate([[True], np.diff(idx) > 0])]    # repeated indices (min = max, ends): once
        return x[idx], y[idx]


def _nice_ceiling(v: float) -> float:
    """The smallest of 1, 2, 5 x 10^k that is >= v (v > 0)."""
    e = 10.0 ** math.floor(math.log10(v))
    return next(m * e for m in (1, 2, 5, 10) if m * e >= v)


def _decades(y: np.ndarray, current: tuple[float, float] | None) -> tuple[float, float] | None:
    """A log plot's y range (log10 units, whole decades) holding the positive finite values ``y``; None when the
    current range already holds them, so the axes (cached pictures) are redrawn only when the data leave it."""
    y = y[np.isfinite(y) & (y > 0)]
    if not y.size:
        return None
    lo, hi = math.log10(float(y.min())), math.log10(float(y.max()))
    if current is not None and current[0] <= lo and hi <= current[1]:
        return None
    a, b = math.floor(lo), math.ceil(hi)
    if current is not None:
        a, b = min(a, current[0]), max(b, current[1])
    return float(a), float(max(b, a + 1))


class _Series:
    """A growing float64 column (doubling), read as a view of the filled part."""

    def __init__(self, width: int = 0):
        self.width = width
        self.a = np.empty((256, width) if width else 256)
        self.n = 0

    def extend(self, values: list) -> None:
        k = len(values)
        if self.n + k > len(self.a):
            bigger = np.empty(((self.n + k) * 2,) + self.a.shape[1:])
            bigger[:self.n] = self.a[:self.n]
            self.a = bigger
        if k:
            self.a[self.n:self.n + k] = values
        self.n += k

    @property
    def data(self) -> np.ndarray:
        return self.a[:self.n]


def _plot(title: str, left: str, log_y: bool = False) -> pg.PlotWidget:
    p = pg.PlotWidget(background="w")
    pi = p.getPlotItem()
    pi.setMenuEnabled(False)
    pi.hideButtons()
    pi.showGrid(x=True, y=True, alpha=0.15)
    pi.setTitle(title, size="9.5pt")
    pi.setLabel("left", left)
    pi.getAxis("left").enableAutoSIPrefix(False)
    pi.getAxis("bottom").enableAutoSIPrefix(False)
    pi.setLabel("bottom", "iteration")
    pi.setContentsMargins(0, 0, 12, 0)   # room for the last tick label of the iteration axis at the window's edge
    if log_y:
        pi.setLogMode(y=True)
        pi.getAxis("left").setStyle(maxTextLevel=0)   # decade labels only: minor labels pile up
    p.setMinimumHeight(110)
    return p


def _image_plot(title: str) -> tuple[pg.PlotWidget, pg.ImageItem]:
    p = pg.PlotWidget(background="w")
    pi = p.getPlotItem()
    pi.setMenuEnabled(False)
    pi.hideButtons()
    pi.setTitle(title, size="9.5pt")
    pi.setAspectLocked(True)
    pi.hideAxis("left")
    pi.hideAxis("bottom")
    pi.getViewBox().setMouseEnabled(False, False)
    pi.getViewBox().invertY(True)
    img = pg.ImageItem(axisOrder="row-major")
    pi.addItem(img)
    p.setMinimumSize(140, 140)
    return p, img


class PlaygroundLab(QWidget):
    """Data, network builder, training controls, live plots and pictures.

    Signals (past tense, wired by the main window):
      ``graph_requested(Graph)``: the current network (float64, GRAPH_BATCH training examples, train mode) as a
      graph to step through in the editor;
      ``model_trained(TrainedModel)``: training paused or finished on an image model; carries a copy of the network,
      (X, y, Xv, yv) as the network sees them and the Standardizer (None when inputs are raw), i.e. the arguments of
      ``InterpretLab.set_network(*trained)``;
      ``training_state_changed(str)``: the state (see ``state``).
    ``apply_config(config)`` takes a configuration from the search lab (optimizer, lr, weight_decay).

    Children for tests and the benchmark: data_form (dataset_combo, points_box, classes_box, noise_box,
    data_seed_box, val_box, preprocess_combo), preprocess_button, freeze_panel (gui.labs.transfer_view.FreezePanel),
    evaluate_panel (gui.labs.evaluate_panel.EvaluatePanel), stats_label, click_class_combo, builder, optimizer_combo,
    lr_box,
    hyper_form / hyper_boxes, schedule_combo, schedule_boxes, train_form (batch_box, epochs_box, patience_box,
    seed_box), augment_check, train_button, pause_button, resume_button, step_button, reset_button, graph_button,
    export_button, save_button, load_button, banner, status_label, data_plot, region_item, point_items, loss_plot,
    acc_plot, lr_plot, grad_plot, curves (name -> PlotDataItem), grad_curves, confusion_item, confusion_texts,
    mis_labels, filters_item, maps_item, image_box; ``redraw_count`` (plot redraws from training output).
    Lecture 8's tricks: smoothing_box (the builder's label smoothing ε), floor_line (the loss floor it implies, with
    ``loss_floor``), augment_label (what Train with augmentation trains with), lr_hint / lr_hint_label /
    lr_hint_apply / lr_hint_close (the linear scaling rule, offered as ``lr_hint_offer``).
    """

    graph_requested = Signal(object)
    model_trained = Signal(object)
    training_state_changed = Signal(str)

    def __init__(self, parent: QWidget | None = None, model: M.PlaygroundLabModel | None = None):
        super().__init__(parent)
        self.model = model or M.PlaygroundLabModel()
        self.jobs = JobRunner(self, tick_ms=TICK_MS)
        self.session: M.TrainingSession | None = None
        self._closed = False
        self._state = "preparing"
        self._error: str | None = None
        self._started = False       # the session's training job has been started
        self.grid = (-1.0, 1.0, -1.0, 1.0)
        self.visuals: Visuals | None = None
        self._visuals_session = None         # the session whose pictures are shown
        self.visual_updates = 0
        self.redraw_count = 0
        self._digits_built = False
        self._shown_cm: np.ndarray | None = None
        self._shown_mis: tuple | None = None
        self._shown_optimizer = ""
        self._shown_schedule = ""
        self._lr_top = 0.0
        self._lr_seen = self._norms_seen = 0
        self._symbols_off = False
        self._reset_metrics()

        self._build_controls()
        self._build_plots()
        self._build_layout()

        self._rebuild_timer = QTimer(self)       # coalesces bursts of edits into one new session
        self._rebuild_timer.setSingleShot(True)
        self._rebuild_timer.setInterval(60)
        self._rebuild_timer.timeout.connect(self._rebuild)
        self.model.changed.connect(self._on_model_changed)
        self._show_training()
        self._sync_network()
        self._update_buttons()
        self._load_data()

    # ============================================================================================== construction
    def _build_controls(self) -> None:
        # ---- data: the model's DataSettings
        self.data_form = ParamForm(M.DataSettings)
        w = self.data_form.widgets
        self.dataset_combo, self.points_box, self.classes_box = w["dataset"], w["points"], w["classes"]
        self.noise_box, self.data_seed_box, self.val_box = w["noise"], w["seed"], w["val_fraction"]
        self.preprocess_combo = w["preprocess"]
        self.points_box.setSingleStep(50)
        self.data_form.edited.connect(self._on_data_edited)
        self.stats_label = QLabel()
        self.stats_label.setStyleSheet(MUTED_STYLE + " font-family: monospace;")
        self.stats_label.setWordWrap(True)
        self.click_class_combo = QComboBox()

        # ---- network
        self.builder = NetworkBuilder(input_shape=(2,), num_classes=3)
        self.builder.stack_changed.connect(self._on_stack_changed)

        # ---- training: TrainSettings, the optimizer's declared hyperparameters, the schedule's
        tp = {p.name: p for p in params_of(M.TrainSettings)}
        self.optimizer_combo = param_widget(tp["optimizer"])
        self.lr_box = param_widget(OPTIMIZERS[self.model.train.optimizer].params[0])
        self.hyper_form: ParamForm | None = None
        self.hyper_boxes: dict[str, QWidget] = {}
        self.hyper_holder = QVBoxLayout()
        self.hyper_holder.setContentsMargins(0, 0, 0, 0)
        self.schedule_combo = param_widget(tp["schedule"])
        self.schedule_form: ParamForm | None = None
        self.schedule_boxes: dict[str, QWidget] = {}
        self.schedule_holder = QVBoxLayout()
        self.schedule_holder.setContentsMargins(0, 0, 0, 0)
        self.train_form = ParamForm(M.TrainSettings, only=("batch_size", "epochs", "patience", "seed"))
        tw = self.train_form.widgets
        self.batch_box, self.epochs_box, self.patience_box, self.seed_box = (tw["batch_size"], tw["epochs"],
                                                                             tw["patience"], tw["seed"])
        self.patience_box.setSpecialValueText("off")
        self.augment_check = param_widget(tp["augment"])
        self.augment_check.setText(tp["augment"].title)
        self.augment_check.setEnabled(False)
        self.optimizer_combo.currentIndexChanged.connect(self._on_optimizer_changed)
        self.schedule_combo.currentIndexChanged.connect(self._on_schedule_changed)
        self.lr_box.valueChanged.connect(self._on_train_edited)
        self.train_form.edited.connect(self._on_train_edited)
        self.augment_check.toggled.connect(self._on_train_edited)
        self.settings_note = QLabel("Changed settings take effect at ⟲ Reset.")
        self.settings_note.setStyleSheet(MUTED_STYLE)
        self.settings_note.hide()
        self._build_tricks()

        # ---- transport
        self.train_button = QPushButton("▶ Train")
        self.pause_button = QPushButton("❚❚ Pause")
        self.resume_button = QPushButton("▶ Resume")
        self.step_button = QPushButton("Step")
        self.step_button.setToolTip("One update on one mini-batch")
        self.reset_button = QPushButton("⟲ Reset")
        self.reset_button.setToolTip("Fresh weights from the seed (forgets loaded weights); clears the plots")
        self.train_button.clicked.connect(self.train)
        self.pause_button.clicked.connect(self.pause)
        self.resume_button.clicked.connect(self.resume)
        self.step_button.clicked.connect(self.step)
        self.reset_button.clicked.connect(self.reset)
        self.status_label = QLabel()
        self.status_label.setStyleSheet("font-family: monospace;")
        self.status_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.status_label.setWordWrap(True)       # a hand-off's or a load's notice goes on a second line, not cut
        self.banner = QLabel()
        self.banner.setObjectName("ErrorBanner")
        self.banner.setStyleSheet(BANNER_STYLE)
        self.banner.setWordWrap(True)
        self.banner.hide()

        # ---- files and the graph editor
        self.graph_button = QPushButton("Step one iteration in the graph editor")
        self.graph_button.setToolTip(f"Open the network on {GRAPH_BATCH} training examples as a computational graph "
                                     f"(float64) to step its forward and backward pass")
        self.export_button = QPushButton("Export PyTorch script…")
        self.save_button = QPushButton("Save weights…")
        self.load_button = QPushButton("Load weights…")
        self.curve_button = QPushButton("What does my curve say?")
        self.curve_button.setToolTip("Read this run's loss curves the lecture's way (rate too high, bad init, "
                                     "overfitting, plateau...) beside annotated reference curves")
        self.curve_button.clicked.connect(self.show_curve_doctor)
        self.graph_button.clicked.connect(self.request_graph)
        self.export_button.clicked.connect(self._on_export_clicked)
        self.save_button.clicked.connect(self._on_save_clicked)
        self.load_button.clicked.connect(self._on_load_clicked)

    def _build_tricks(self) -> None:
        """Lecture 8's training tricks: what "Train with augmentation" trains with (the preview's settings, mixing
        included), label smoothing (the network builder's Objective form) and the linear-scaling hint."""
        self.augment_label = QLabel()
        self.augment_label.setStyleSheet(MUTED_STYLE)
        self.augment_label.setWordWrap(True)
        self.smoothing_box = self.builder.objective_form.widgets["label_smoothing"]
        self._lr_anchor: tuple[int, float] | None = None     # (batch, lr) the hint scales from
        self.lr_hint_offer: M.LrScalingHint | None = None
        self.lr_hint = QWidget()
        self.lr_hint.setObjectName("LrHint")
        self.lr_hint.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.lr_hint.setStyleSheet("QWidget#LrHint { background: #eef4fc; border: 1px solid #c4d7f2; "
                                   "border-radius: 3px; }")
        self.lr_hint_label = QLabel()
        self.lr_hint_label.setWordWrap(True)
        self.lr_hint_label.setStyleSheet("border: none;")
        self.lr_hint_apply = QPushButton("Apply")
        self.lr_hint_close = QPushButton("✕")
        self.lr_hint_close.setFixedWidth(28)
        self.lr_hint_close.setToolTip("Dismiss: keep the learning rate")
        self.lr_hint_apply.clicked.connect(self._on_lr_hint_applied)
        self.lr_hint_close.clicked.connect(self._on_lr_hint_dismissed)
        hl = QVBoxLayout(self.lr_hint)
        hl.setContentsMargins(8, 6, 8, 6)
        hl.setSpacing(4)
        hl.addWidget(self.lr_hint_label)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.lr_hint_apply)
        row.addWidget(self.lr_hint_close)
        hl.addLayout(row)
        self.lr_hint.hide()

    def _build_plots(self) -> None:
        # ---- 2-D data and decision regions
        self.data_plot = pg.PlotWidget(background="w")
        dp = self.data_plot.getPlotItem()
        dp.setMenuEnabled(False)
        dp.hideButtons()
        dp.setAspectLocked(True)
        dp.getViewBox().setMouseEnabled(False, False)
        dp.setTitle("Decision regions", size="10pt")
        self.data_plot.setMinimumSize(200, 200)
        self.region_item = pg.ImageItem(axisOrder="row-major")
        self.region_item.setZValue(-10)
        dp.addItem(self.region_item)
        self.point_items = {
            "train": pg.ScatterPlotItem(size=7, pen=pg.mkPen("w", width=1), hoverable=False),
            "val": pg.ScatterPlotItem(size=7, pen=pg.mkPen("#1f2933", width=1.3), symbol="o", hoverable=False),
        }
        for it in self.point_items.values():
            it.setZValue(10)
            dp.addItem(it)
        self.data_plot.scene().sigMouseClicked.connect(self._on_data_clicked)
        dp.getViewBox().sigRangeChanged.connect(self._on_view_changed)
        self.click_hint = QLabel("Click adds a point of")
        self.click_hint.setStyleSheet(MUTED_STYLE)
        self.click_hint2 = QLabel("· right-click removes · ringed: validation")
        self.click_hint2.setToolTip("Right-click removes the nearest point; points with a dark ring are the "
                                    "validation set (not trained on)")
        self.click_hint2.setStyleSheet(MUTED_STYLE)
        self.click_hint2.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        # the digits pictures are built the first time the digits are chosen (three more plots cost ~0.1 s)
        self.confusion_texts: list[Any] = []
        self.mis_labels: list[tuple[QLabel, QLabel]] = []
        self.image_box = QSpinBox()
        self.image_box.setRange(0, 0)
        self.image_box.setPrefix("val. image ")
        self.image_box.valueChanged.connect(self._on_image_changed)

        # ---- live metric plots
        self.loss_plot = _plot("Loss", "loss (log)", log_y=True)
        self.acc_plot = _plot("Accuracy", "accuracy")
        self.acc_plot.getPlotItem().setYRange(0, 1.02, padding=0)
        self.lr_plot = _plot("Learning rate", "lr")
        self.grad_plot = _plot("Gradient norm per layer", "‖∇‖ (log)", log_y=True)
        step_pen = pg.mkPen(STEP_COLOUR, width=1)
        lp, ap = self.loss_plot.getPlotItem(), self.acc_plot.getPlotItem()
        ll = lp.addLegend(offset=(-6, 6), labelTextSize="8pt")
        al = ap.addLegend(offset=(-6, -6), labelTextSize="8pt")
        ll.setBrush(pg.mkBrush(255, 255, 255, 200))
        al.setBrush(pg.mkBrush(255, 255, 255, 200))
        self.grad_legend = self.grad_plot.getPlotItem().addLegend(offset=(-6, 6), labelTextSize="8pt")
        self.grad_legend.setBrush(pg.mkBrush(255, 255, 255, 200))
        sym = dict(symbol="o", symbolSize=4)
        # The per-step curves are bare PlotCurveItems (a PlotDataItem costs ~1 ms more per setData); on the log plots
        # they are given log10 values, which is what a log-mode plot's coordinates are.
        self._log_curves = {"loss"}
        self.curves = {
            "loss": self._curve(lp, step_pen, "batch"),
            "train_loss": lp.plot(pen=pg.mkPen(TRAIN_COLOUR, width=2), name="train (epoch)",
                                  symbolBrush=TRAIN_COLOUR, symbolPen=None, **sym),
            "val_loss": lp.plot(pen=pg.mkPen(VAL_COLOUR, width=2), name="validation",
                                symbolBrush=VAL_COLOUR, symbolPen=None, **sym),
            "accuracy": self._curve(ap, step_pen, "batch"),
            "train_accuracy": ap.plot(pen=pg.mkPen(TRAIN_COLOUR, width=2), name="train (epoch)",
                                      symbolBrush=TRAIN_COLOUR, symbolPen=None, **sym),
            "val_accuracy": ap.plot(pen=pg.mkPen(VAL_COLOUR, width=2), name="validation",
                                    symbolBrush=VAL_COLOUR, symbolPen=None, **sym),
            "lr": self._curve(self.lr_plot.getPlotItem(), pg.mkPen("#7a4cc2", width=2)),
        }
        self.grad_curves: dict[str, pg.PlotDataItem] = {}
        # label smoothing's floor: the smallest loss a network can reach (the smoothed target's entropy), dashed
        floor_pen = pg.mkPen("#3d8b4f", width=1.5, style=Qt.PenStyle.DashLine)
        self.floor_line = pg.InfiniteLine(angle=0, movable=False, pen=floor_pen,
                                          label="", labelOpts={"position": 0.02, "anchors": [(0, 1), (0, 1)],
                                                               "color": "#2c6e3c"})
        self.floor_line.setZValue(5)
        self.floor_line.hide()
        lp.addItem(self.floor_line, ignoreBounds=True)
        self.floor_legend = pg.PlotDataItem(pen=floor_pen)        # a legend entry only: it holds no data
        self.loss_floor = 0.0
        # Ranges are set by the view, never autoranged: they change only when the data leave them (x grows to the
        # next 1-2-5 number, log y by whole decades), so the axes (cached as pixmaps, see gui.plotting) are not
        # redrawn every frame.
        for p in (self.loss_plot, self.acc_plot, self.lr_plot, self.grad_plot):
            pi = p.getPlotItem()
            pi.getViewBox().setMouseEnabled(False, False)
            if p is not self.loss_plot:
                pi.setXLink(self.loss_plot.getPlotItem())
            pi.disableAutoRange()
        self._ranges: dict[str, Any] = {}
        self._decimators: dict[str, Decimated] = {}      # one per curve (gui.labs.playground.Decimated)

    @staticmethod
    def _curve(plot_item: pg.PlotItem, pen: Any, name: str | None = None) -> pg.PlotCurveItem:
        c = pg.PlotCurveItem(pen=pen, name=name, skipFiniteCheck=True)
        plot_item.addItem(c)
        return c

    def _decimated(self, name: str) -> Decimated:
        d = self._decimators.get(name)
        if d is None:
            d = self._decimators[name] = Decimated()
        return d

    def _set_curve(self, name: str, x: np.ndarray, y: np.ndarray) -> None:
        grad = name in self.grad_curves
        curve = self.grad_curves[name] if grad else self.curves[name]
        if grad or name in self._log_curves:
            y = np.log10(np.maximum(y, FLOOR))
        curve.setData(x, y)

    def _build_digits_page(self) -> None:
        if self._digits_built:
            return
        self._digits_built = True
        self.confusion_plot, self.confusion_item = _image_plot("Confusion matrix (validation)")
        cp = self.confusion_plot.getPlotItem()
        cp.showAxis("left")
        cp.showAxis("bottom")
        cp.setLabel("left", "true")
        cp.setLabel("bottom", "predicted")
        for ax in ("left", "bottom"):
            cp.getAxis(ax).setTicks([[(k + 0.5, str(k)) for k in range(10)]])
        self.filters_plot, self.filters_item = _image_plot("First-layer filters")
        self.maps_plot, self.maps_item = _image_plot("Activation maps")
        self.image_preview = QLabel()
        self.image_preview.setFixedSize(48, 48)
        self.maps_caption = QLabel()
        self.maps_caption.setStyleSheet(MUTED_STYLE)
        self.mis_title = QLabel("Misclassified validation examples (true → predicted)")
        self.mis_title.setStyleSheet("font-weight: 600;")
        self.mis_title.setWordWrap(True)
        # fractional max pooling: validation accuracy with one region draw next to the test-time average
        self.draws_label = QLabel()
        self.draws_label.setWordWrap(True)
        self.draws_label.hide()
        mis_grid = QGridLayout()
        mis_grid.setSpacing(2)
        for k in range(M.MAX_MISCLASSIFIED):
            pic, cap = QLabel(), QLabel()
            pic.setFixedSize(34, 34)
            cap.setAlignment(Qt.AlignmentFlag.AlignCenter)
            cap.setStyleSheet("font-size: 8pt;")
            r, c = divmod(k, 6)
            mis_grid.addWidget(pic, 2 * r, c, Qt.AlignmentFlag.AlignCenter)
            mis_grid.addWidget(cap, 2 * r + 1, c, Qt.AlignmentFlag.AlignCenter)
            self.mis_labels.append((pic, cap))
        mis = QWidget()
        mis.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        ml = QVBoxLayout(mis)
        ml.setContentsMargins(4, 4, 4, 4)
        ml.addWidget(self.mis_title)
        ml.addWidget(self.draws_label)
        ml.addLayout(mis_grid)
        ml.addStretch(1)
        maps = QWidget()
        mpl = QVBoxLayout(maps)
        mpl.setContentsMargins(0, 0, 0, 0)
        pick = QHBoxLayout()
        pick.addWidget(self.image_box)
        pick.addWidget(self.image_preview)
        self.maps_caption.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        pick.addWidget(self.maps_caption, 1)
        mpl.addLayout(pick)
        mpl.addWidget(self.maps_plot, 1)
        # the misclassified examples scroll when the page is short (the curves under it on a laptop)
        mis_scroll = QScrollArea()
        mis_scroll.setWidget(mis)
        mis_scroll.setWidgetResizable(True)
        mis_scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        mis_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        top, bottom = QSplitter(Qt.Orientation.Horizontal), QSplitter(Qt.Orientation.Horizontal)
        top.addWidget(self.confusion_plot)
        top.addWidget(mis_scroll)
        bottom.addWidget(self.filters_plot)
        bottom.addWidget(maps)
        for sp in (top, bottom):
            sp.setSizes([250, 250])
            sp.setChildrenCollapsible(False)
        page = QSplitter(Qt.Orientation.Vertical)
        page.addWidget(top)
        page.addWidget(bottom)
        page.setSizes([420, 420])
        page.setChildrenCollapsible(False)
        self.pages.addWidget(page)

    def _build_layout(self) -> None:
        data_box = QVBoxLayout()
        data_box.addWidget(self.data_form)
        data_box.addWidget(self.stats_label)
        self.preprocess_button = QPushButton("Preview preprocessing on 2-D points…")   # the lecture's pictures
        self.preprocess_button.clicked.connect(lambda: show_preprocess_preview(self))
        self.preprocess_dialog = None       # made at the first click (preprocess_view)
        data_box.addWidget(self.preprocess_button)
        self.augment_button = QPushButton("Preview image augmentation…")   # a non-modal window on the digits
        self.augment_button.clicked.connect(self._on_augment_clicked)
        self.augment_dialog = None          # the non-modal preview, made at the first click (augment_view)
        data_box.addWidget(self.augment_button)
        data_box.addWidget(self.augment_check)
        data_box.addWidget(self.augment_label)

        train_box = QVBoxLayout()
        top = QFormLayout()
        top.setContentsMargins(0, 0, 0, 0)
        opt_label = QLabel(params_of(M.TrainSettings)[0].title)
        top.addRow(opt_label, self.optimizer_combo)
        top.addRow(OPTIMIZERS["SGD"].params[0].title, self.lr_box)
        train_box.addLayout(top)
        train_box.addLayout(self.hyper_holder)
        sched = QFormLayout()
        sched.setContentsMargins(0, 0, 0, 0)
        sched.addRow(params_of(M.TrainSettings)[6].title, self.schedule_combo)
        train_box.addLayout(sched)
        train_box.addLayout(self.schedule_holder)
        train_box.addWidget(self.train_form)
        train_box.addWidget(self.lr_hint)
        self.loss_prediction = PredictionBox("what will the first loss be, before any update?",
                                             self._check_initial_loss)
        train_box.addWidget(self.loss_prediction)
        train_box.addWidget(self.settings_note)

        files = QVBoxLayout()
        files.addWidget(self.curve_button)
        files.addWidget(self.graph_button)
        files.addWidget(self.export_button)
        row = QHBoxLayout()
        row.addWidget(self.save_button)
        row.addWidget(self.load_button)
        files.addLayout(row)

        net_box = QVBoxLayout()
        net_box.setContentsMargins(0, 0, 0, 0)
        net_box.addWidget(self.builder)
        self.freeze_panel = FreezePanel(self.model)
        self.evaluate_panel = EvaluatePanel(
            self.jobs, lambda s: None if self.session is None else self.model.evaluation_job(self.session, s))
        self.left = control_column([group("Data", data_box), group("Training", train_box),
                                    group("Network", net_box), group("Transfer learning", self.freeze_panel),
                                    group("Evaluate: test-time averaging", self.evaluate_panel),
                                    group("Model files", files)], min_width=330)
        content = self.left.widget()
        self.left.setMinimumWidth(content.minimumSizeHint().width() + self.left.verticalScrollBar().sizeHint().width())
        self.left.setMaximumWidth(max(self.left.minimumWidth(), 460))

        # centre: the transport, the status, and the 2-D page or the digits page
        toy_page = QWidget()
        tl = QVBoxLayout(toy_page)
        tl.setContentsMargins(0, 0, 0, 0)
        tl.addWidget(self.data_plot, 1)
        hint = QHBoxLayout()
        hint.addWidget(self.click_hint)
        hint.addWidget(self.click_class_combo)
        hint.addWidget(self.click_hint2, 1)
        tl.addLayout(hint)
        self.pages = QStackedWidget()
        self.pages.addWidget(toy_page)

        transport = QHBoxLayout()
        transport.setContentsMargins(6, 6, 6, 2)
        for b in (self.train_button, self.pause_button, self.resume_button, self.step_button, self.reset_button):
            b.setMinimumWidth(0)
            transport.addWidget(b)
        transport.addStretch(1)
        centre = QWidget()
        cl = QVBoxLayout(centre)
        cl.setContentsMargins(0, 0, 0, 0)
        cl.addLayout(transport)
        status_row = QHBoxLayout()
        status_row.setContentsMargins(8, 0, 6, 0)
        status_row.addWidget(self.status_label, 1)
        cl.addLayout(status_row)
        cl.addWidget(self.banner)
        cl.addWidget(self.pages, 1)
        centre.setMinimumWidth(380)

        # the four curves: a column beside the centre when there is room for three columns, a 2 x 2 grid under it
        # when there is not (a laptop with the lesson dock open); two pairs, each a splitter that turns with it
        plots = QSplitter(Qt.Orientation.Vertical)
        self._plot_pairs = (QSplitter(Qt.Orientation.Vertical), QSplitter(Qt.Orientation.Vertical))
        for pair, members in zip(self._plot_pairs, ((self.loss_plot, self.acc_plot), (self.lr_plot, self.grad_plot))):
            for p in members:
                pair.addWidget(p)
            pair.setChildrenCollapsible(False)
            plots.addWidget(pair)
        plots.setChildrenCollapsible(False)
        plots.setMinimumWidth(260)
        self._plots = plots

        self.plots_splitter = FlowSplitter(side=(3, 2), stacked=(5, 4))
        self.plots_splitter.arrangement_changed.connect(self._on_arrangement_changed)
        self.plots_splitter.addWidget(centre)
        self.plots_splitter.addWidget(plots)
        self._on_arrangement_changed(False)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.left)
        self.splitter.addWidget(self.plots_splitter)
        self.splitter.setChildrenCollapsible(False)
        for i, s in enumerate((0, 1)):
            self.splitter.setStretchFactor(i, s)
        self.splitter.setSizes([self.left.minimumWidth(), 920])
        root = QHBoxLayout(self)
        root.setContentsMargins(0, 0, 0, 0)
        root.addWidget(self.splitter)

    def _on_arrangement_changed(self, stacked: bool) -> None:
        """The curves in a column beside the centre (loss, accuracy, learning rate, gradient norms) or in a 2 x 2 grid
        under it."""
        turn = Qt.Orientation.Horizontal if stacked else Qt.Orientation.Vertical
        for pair in self._plot_pairs:
            pair.setOrientation(turn)
        if stacked:
            self._plots.setSizes([1, 1])
            for pair in self._plot_pairs:
                pair.setSizes([1, 1])
        else:
            self._plots.setSizes([520, 380])
            self._plot_pairs[0].setSizes([300, 220])
            self._plot_pairs[1].setSizes([140, 240])

    # ================================================================================================ public API
    @property
    def state(self) -> str:
        """'preparing' (the data are being made), 'none' (no runnable network), 'idle' (a fresh session), 'running',
        'paused', 'finished' or 'failed'."""
        return self._state

    @property
    def iteration(self) -> int:
        """Updates shown so far (delivered from the training job)."""
        return self._n_steps

    @property
    def trained_iterations(self) -> int:
        """Updates the session's trainer has made (perhaps not yet delivered)."""
        return self.session.iteration if self.session is not None else 0

    @property
    def error_message(self) -> str | None:
        return self._error

    @property
    def kind(self) -> str:
        return self.model.kind

    @property
    def standardizer(self):
        return self.model.data.standardizer if self.model.data is not None else None

    @property
    def X_raw(self) -> np.ndarray:
        return self.model.data.X_raw if self.model.data is not None else np.zeros((0, 2))

    @property
    def y_raw(self) -> np.ndarray:
        return self.model.data.y_raw if self.model.data is not None else np.zeros(0, np.int64)

    @property
    def split_raw(self) -> tuple:
        return self.model.data.split_raw if self.model.data is not None else ()

    def training_data(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(X_train, y_train, X_val, y_val) as the network sees them (standardised when the box is ticked)."""
        return self.model.data.split if self.model.data is not None else ()  # type: ignore[return-value]

    def train(self) -> None:
        """Start (or continue) training; a finished or failed run starts over from fresh weights, or from the loaded
        ones after load_weights (with a fresh trainer and optimizer state either way)."""
        if self._state in ("finished", "failed") or self._rebuild_timer.isActive() or self.session is None:
            self._rebuild()
        if self.session is None or self._state in ("none", "preparing"):
            return
        if not self._started:
            self._start_job(paused=False)
        else:
            self.jobs.resume("train")
        self._set_state("running")

    def pause(self) -> None:
        if self._state != "running":
            return
        self.jobs.pause("train")
        self._set_state("paused")
        self._want_visuals()
        self._hand_on()

    def resume(self) -> None:
        if self._state in ("paused", "idle") and self.session is not None:
            self.train()

    def step(self) -> None:
        """One update (pauses a running session first)."""
        if self._state in ("finished", "failed") or self._rebuild_timer.isActive() or self.session is None:
            self._rebuild()
        if self.session is None or self._state in ("none", "preparing"):
            return
        if self._state == "running":
            self.jobs.pause("train")
        self.session.visuals_requested = True       # the step's update carries its pictures
        if not self._started:
            self._start_job(paused=True)
        self.jobs.step("train", 1)
        self._set_state("paused")

    def reset(self) -> None:
        """Stop the run, make a new network from the seed (forgetting loaded weights), clear the plots (changed
        settings take effect here)."""
        self.model.forget_loaded()
        self._rebuild()

    def apply_config(self, config: dict) -> None:
        """A configuration from the search lab ("Apply best"): ``optimizer``, ``lr`` and ``weight_decay`` are set in
        the model and the form (other keys ignored); a new session starts with them. When the optimizer takes no
        weight decay the status line says so. A refused value shows in the banner and changes nothing."""
        try:
            note = self.model.apply_config(config)
        except StudioError as exc:
            self._show_error(f"Cannot apply the configuration: {exc}")
            return
        self._rebuild()
        parts = [f"applied {self.model.train.optimizer}, lr {self.model.train.lr:g}"]
        wd = self.model.hyper.as_dict().get("weight_decay")
        if wd is not None:
            parts.append(f"weight decay {wd:g}")
        self.status_label.setText(" · ".join(parts) + (f" · {note}" if note else ""))

    def adopt_encoder(self, handoff: Any, freeze: bool = True) -> bool:
        """An encoder from the Self-supervised tab (EncoderHandoff): the digits with preprocessing "none", its
        layers in the builder with the fresh Linear(10) head, frozen for a linear probe (``freeze``) or not, and the
        next session starting from its weights (PlaygroundLabModel.adopt_encoder). A refused hand-off shows in the
        banner and changes nothing; returns whether it was taken."""
        b = self.builder
        before = (b.input_shape, b.num_classes, b.hidden_layers(), b.objective_form.value())
        self._cancel_training()
        b.blockSignals(True)          # the builder first: the model's "data" keeps a stack that fits the digits
        b.set_data_shape((1, 8, 8), 10)
        b.set_layers(list(getattr(handoff, "layers", before[2])))
        b.objective_form.set_value(Objective())
        b.blockSignals(False)
        try:
            regenerate = self.model.adopt_encoder(handoff, freeze)
        except StudioError as exc:
            b.blockSignals(True)
            b.set_data_shape(*before[:2])
            b.set_layers(before[2])
            b.objective_form.set_value(before[3])
            b.blockSignals(False)
            self._show_error(f"Cannot take the encoder: {exc}")
            return False
        s = self.model.data_settings
        self.data_form.set_value(s)
        self.classes_box.setEnabled(s.dataset in M.MULTICLASS)
        self.noise_box.setEnabled(False)
        self.augment_check.setEnabled(True)
        if regenerate:
            self._load_data()
        else:
            self._rebuild()
        return True

    def request_visuals(self) -> None:
        """Draw the pictures of the current weights again (with the next update while training)."""
        self._want_visuals()

    def add_point(self, x: float, y: float, label: int) -> None:
        """Add a 2-D point of class ``label`` (the data change: training restarts)."""
        try:
            self.model.add_point(x, y, label)
        except StudioError as exc:
            self._show_error(str(exc))

    def remove_nearest(self, x: float, y: float) -> None:
        try:
            self.model.remove_nearest(x, y)
        except StudioError as exc:
            self._show_error(str(exc))

    def request_graph(self) -> Any:
        """Emit graph_requested with the network (float64 copy, current weights) on GRAPH_BATCH training examples;
        returns the graph (None when there is no network)."""
        if self.session is None:
            self._message("No network", self.builder.error() or "Build a network first.")
            return None
        try:
            graph = self.model.graph(self.session)
        except StudioError as exc:
            self._message("Cannot build the graph", str(exc))
            return None
        self.graph_requested.emit(graph)
        return graph

    def export_torch(self, directory: str) -> str:
        """Write the PyTorch script and its data into `directory`; returns the script's path."""
        if self.session is None:
            raise StudioError(self.builder.error() or "there is no network to export")
        return self.model.export_torch(self.session, directory)

    def save_weights(self, path: str) -> None:
        if self.session is None:
            raise StudioError(self.builder.error() or "there is no network to save")
        self.model.save_weights(self.session, path)

    def load_weights(self, path: str) -> None:
        """Load weights into the current network (ShapeError when they belong to another architecture)."""
        if self.session is None:
            raise StudioError(self.builder.error() or "there is no network to load into")
        self.model.load_weights(self.session, path)
        self._update_status()
        self._want_visuals()
        self._update_buttons()

    def network_copy(self) -> TrainedModel | None:
        """A copy of the network with its data and standardiser (None without a session)."""
        return None if self.session is None else self.model.snapshot(self.session)

    def training_augmenter(self) -> datasets.AugmentSettings | None:
        """The augmentation the trainer applies to each mini-batch: the model's AugmentSettings (the preview's, mixing
        included, once it has been opened; before that a mild default: shift 1 px, rotation 10°); None when switched
        off."""
        if not (self.model.train.augment and self.kind == "digits"):
            return None
        return self.model.augment_settings

    def close_lab(self) -> None:
        """Stop the timers and every job (waiting for them); the lab does nothing afterwards."""
        self._closed = True
        self._rebuild_timer.stop()
        self.jobs.close()
        if self.freeze_panel.transfer_dialog is not None:
            self.freeze_panel.transfer_dialog.view.close_view()

    def closeEvent(self, event) -> None:  # noqa: N802
        self.close_lab()
        super().closeEvent(event)

    # ================================================================================================== model
    def _on_model_changed(self, what: str) -> None:
        if self._closed:
            return
        if what == "training":
            self._show_training()
            self._sync_lr_hint()
            self._on_training_setting_changed()
        elif what == "data":
            if self.model.data is not None:
                self._show_data()
        elif what == "network":
            self._rebuild_timer.start()

    # ================================================================================================== data
    def _on_data_edited(self) -> None:
        s = self.data_form.try_value()
        if s is None:
            return
        if s.dataset != self.model.data_settings.dataset:
            self.data_form.set_value({**s.as_dict(), **self.model.dataset_defaults(s.dataset)})
            s = self.data_form.try_value()
            if s is None:
                return
        self._apply_data_settings(s)

    def _apply_data_settings(self, s: M.DataSettings) -> None:
        digits = s.kind == "digits"
        self.classes_box.setEnabled(s.dataset in M.MULTICLASS)
        self.noise_box.setEnabled(not digits)
        self.augment_check.setEnabled(digits)
        try:
            regenerate = self.model.set_data_settings(s)
        except StudioError as exc:
            self.data_form.error.setText(str(exc))
            self.data_form.error.show()
            return
        if regenerate:
            self._load_data()

    def _load_data(self) -> None:
        """Make the data in a job ('preparing…' until it is done); the session waits for them."""
        self._cancel_training()
        self.session = None
        self._set_state("preparing")
        self.status_label.setText("preparing the data…")
        settings = self.model.data_settings
        self.jobs.start("data", lambda: M.data_job(settings), on_done=self._on_data_made,
                        on_error=self._on_data_failed)

    def _on_data_made(self, result: tuple[np.ndarray, np.ndarray]) -> None:
        if self._closed:
            return
        try:
            self.model.set_raw_data(*result)
        except StudioError as exc:
            self._on_data_failed(exc, str(exc))

    def _on_data_failed(self, _exc: BaseException, text: str) -> None:
        self._show_error(f"Cannot make the data: {text}")
        self._set_state("none")

    def _show_data(self) -> None:
        """The data changed: points or pages, the statistics, the builder's shapes; then a new session."""
        d = self.model.data
        digits = d.kind == "digits"
        if digits:
            self._build_digits_page()
        self.pages.setCurrentIndex(1 if digits else 0)
        self._show_stats()
        self.click_class_combo.blockSignals(True)
        keep = self.click_class_combo.currentIndex()
        self.click_class_combo.clear()
        for c in range(d.num_classes):
            self.click_class_combo.addItem(f"class {c}")
            self.click_class_combo.setItemData(c, QColor(CLASS_COLOURS[c % len(CLASS_COLOURS)]),
                                               Qt.ItemDataRole.DecorationRole)
        self.click_class_combo.setCurrentIndex(min(max(keep, 0), d.num_classes - 1))
        self.click_class_combo.blockSignals(False)
        if not digits:
            self.grid = d.grid
            self._draw_points()
            x0, x1, y0, y1 = self.grid
            self.data_plot.getPlotItem().setRange(xRange=(x0, x1), yRange=(y0, y1), padding=0)
        else:
            self.image_box.setRange(0, max(len(d.split[2]) - 1, 0))
        self.builder.blockSignals(True)
        if self.builder.input_shape != d.input_shape:
            # the other kind of data: its preset network
            self.builder.set_data_shape(d.input_shape, d.num_classes)
            self.builder.load_preset("Small CNN" if digits else "2-64-3 MLP")
        else:
            self.builder.set_data_shape(d.input_shape, d.num_classes)
        self.builder.blockSignals(False)
        self._sync_network()
        self._rebuild()

    def _show_stats(self) -> None:
        d = self.model.data
        s = d.standardizer
        parts = [f"{len(d.split[0])} train · {len(d.split[2])} validation"]
        kind = self.model.data_settings.preprocess
        if s is None:
            parts.append("raw inputs (not standardised)")
        elif kind == "PCA whiten":              # a Whitener (simulator.data.preprocess)
            mean = ", ".join(f"{v:+.3f}" for v in s.mean)
            scale = ", ".join(f"{v:.3f}" for v in s.scale)
            parts.append(f"PCA whiten (training statistics)\nmean = ({mean})\n√eigenvalues = ({scale})")
        elif kind == "zero-centre":
            parts.append("zero-centred with the training mean "
                         + (f"({', '.join(f'{v:+.3f}' for v in s.mean)})" if s.mean.ndim == 1 else
                            f"image ({s.mean.min():.2f} … {s.mean.max():.2f} per pixel)"))
        elif s.mean.ndim == 1:
            mean = ", ".join(f"{v:+.3f}" for v in s.mean)
            std = ", ".join(f"{v:.3f}" for v in s.std)
            parts.append(f"mean = ({mean})\nstd  = ({std})")
        else:
            parts.append(f"mean image: {s.mean.min():.2f} … {s.mean.max():.2f} (per pixel)\n"
                         f"std per channel = {', '.join(f'{v:.3f}' for v in s.std)}")
        self.stats_label.setText("\n".join(parts))

    def _draw_points(self) -> None:
        Xtr, ytr, Xv, yv = self.model.data.split_raw
        for key, X, y in (("train", Xtr, ytr), ("val", Xv, yv)):
            brushes = plotting.brushes_by_class(y, CLASS_COLOURS)
            self.point_items[key].setData(x=X[:, 0] if len(X) else [], y=X[:, 1] if len(X) else [], brush=brushes)

    def _on_data_clicked(self, ev) -> None:
        if self.kind != "toy" or self.model.data is None:
            return
        vb = self.data_plot.getPlotItem().getViewBox()
        pos = ev.scenePos()
        if not vb.sceneBoundingRect().contains(pos):
            return
        p = vb.mapSceneToView(pos)
        if ev.button() == Qt.MouseButton.LeftButton:
            self.add_point(p.x(), p.y(), max(self.click_class_combo.currentIndex(), 0))
            ev.accept()
        elif ev.button() == Qt.MouseButton.RightButton:
            self.remove_nearest(p.x(), p.y())
            ev.accept()

    def _on_augment_clicked(self) -> None:
        """Open the augmentation preview on all the digits; the first time they are loaded by a job (the button
        waits, disabled, meanwhile) so the click never blocks the window."""
        images = datasets.digits_if_loaded()
        if images is not None:
            self._bind_augment_preview(show_augment_preview(self, *images))
            return
        self.augment_button.setEnabled(False)

        def shown(images) -> None:
            self.augment_button.setEnabled(True)
            self._bind_augment_preview(show_augment_preview(self, *images))

        def failed(_exc: BaseException, text: str) -> None:
            self.augment_button.setEnabled(True)
            self._show_error(text)

        self.jobs.start("digits", datasets.digits_job, on_done=shown, on_error=failed)

    def _bind_augment_preview(self, dialog) -> None:
        """The preview shows the augmentation training uses, and its controls set it (once per dialog)."""
        if getattr(dialog, "_playground_bound", False):
            return
        dialog._playground_bound = True
        dialog.view.set_settings(self.model.augment_settings)
        dialog.view.settings_changed.connect(self._on_augment_settings_changed)

    def _on_augment_settings_changed(self, settings: datasets.AugmentSettings) -> None:
        if not self._closed:
            self.model.set_augment(settings)

    # ================================================================================================== tricks
    def _sync_lr_hint(self) -> None:
        """The linear scaling rule as a hint: offered when the batch size moved away from the one the rate was set
        for (typing a rate, applying or dismissing the hint makes the current pair the new reference)."""
        t = self.model.train
        a = self._lr_anchor
        if a is None or t.lr != a[1]:
            self._lr_anchor = (t.batch_size, t.lr)
            self._show_lr_hint(None)
            return
        try:
            hint = self.model.lr_scaling_hint(a[0], a[1], t.batch_size)
        except StudioError:
            hint = None
        self._show_lr_hint(hint)

    def _show_lr_hint(self, hint: M.LrScalingHint | None) -> None:
        self.lr_hint_offer = hint
        if hint is None:
            self.lr_hint.hide()
            return
        self.lr_hint_label.setText(f"<b>Linear scaling rule</b> (lecture 8): {hint.text}.")
        self.lr_hint_label.setToolTip("Goyal et al. (lecture 8): a batch N times larger averages N times as many "
                                      "gradients, so take N times larger steps; start with a linear warm-up "
                                      "(about 5 epochs) so the early, large updates do not blow up the weights.")
        self.lr_hint_apply.setText("Apply lr + warm-up" if hint.warmup_steps else "Apply lr")
        self.lr_hint.show()

    def _on_lr_hint_applied(self) -> None:
        hint = self.lr_hint_offer
        if hint is None:
            return
        try:
            self.model.apply_lr_scaling(hint)
        except StudioError as exc:
            self._show_error(str(exc))
            return
        self._lr_anchor = (self.model.train.batch_size, self.model.train.lr)
        self._show_lr_hint(None)

    def _on_lr_hint_dismissed(self) -> None:
        self._lr_anchor = (self.model.train.batch_size, self.model.train.lr)
        self._show_lr_hint(None)

    def _show_augment_summary(self) -> None:
        s = self.model.augment_settings
        steps = s.pipeline()
        text = "trains with: " + (" → ".join(steps) if steps else "nothing (every transform off)")
        if s.mixes_labels:
            text += " (soft labels; batch accuracy counts the larger share as the label)"
        self.augment_label.setText(text)
        self.augment_label.setVisible(self.augment_check.isChecked() and self.augment_check.isEnabled())

    def _show_loss_floor(self, use_session: bool = True) -> None:
        """The dashed floor on the loss plot: label smoothing keeps ε/K on every class, so even a perfect network's
        loss stays at the smoothed target's entropy."""
        session = self.session if use_session else None
        floor = self.model.loss_floor(session) if session is not None else self.model.loss_floor()
        self.loss_floor = floor
        lp = self.loss_plot.getPlotItem()
        legend = lp.legend
        if floor <= 0:
            self.floor_line.hide()
            if legend.getLabel(self.floor_legend) is not None:
                legend.removeItem(self.floor_legend)
            self.loss_plot.setToolTip("")
            return
        eps = (session.network if session is not None else self.model.network_settings.objective).label_smoothing
        self.floor_line.show()                    # first: a hidden line's label does not take its text
        self.floor_line.setPos(math.log10(floor))
        self.floor_line.label.setFormat(f"floor {floor:.3g}")
        if legend.getLabel(self.floor_legend) is None:
            legend.addItem(self.floor_legend, "min. loss")
        why = (f"Label smoothing ε = {eps:g}: the target keeps ε/K on every wrong class, so even a perfect network "
               f"has cross-entropy ≥ the target's entropy H = {floor:.4g} (dashed line), not 0. Mixup and CutMix "
               f"batches mix their targets too, so batch losses sit higher still.")
        self.floor_line.setToolTip(why)
        self.loss_plot.setToolTip(why)

    # ================================================================================================== training
    def _on_stack_changed(self) -> None:
        self._sync_network()

    def _sync_network(self) -> None:
        """The builder's stack into the model (an impossible one leaves the lab without a session)."""
        if not self.builder.is_valid():
            self._rebuild_timer.start()
            return
        try:
            self.model.set_network(self.builder.hidden_layers(), **self.builder.network_kwargs())
        except StudioError as exc:
            self._show_error(f"Cannot train: {exc}")

    def _on_optimizer_changed(self, _index: int) -> None:
        name = read_widget(self.optimizer_combo)
        if name != self.model.train.optimizer:
            self.model.set_optimizer(name)

    def _on_schedule_changed(self, _index: int) -> None:
        name = read_widget(self.schedule_combo)
        if name != self.model.train.schedule:
            try:
                self.model.set_schedule(name)
            except StudioError as exc:
                self._show_error(str(exc))

    def _on_train_edited(self, *_: object) -> None:
        """A training control changed: the whole training panel into the model (validated there)."""
        # read every control first: the model's change redraws the panel
        hyper = self.hyper_form.values() if self.hyper_form is not None else {}
        sched = self.schedule_form.values() if self.schedule_form is not None else {}
        warm = {k: read_widget(w) for k, w in self.schedule_boxes.items() if k in self._warmup_names}
        try:
            s = self.model.train.replace(lr=read_widget(self.lr_box), augment=read_widget(self.augment_check),
                                         **self.train_form.values())
            if s.schedule != NO_SCHEDULE:
                defaults = self.model.schedule_defaults(s.schedule)
                given = {k: v for k, v in sched.items() if v != defaults.get(k)}
                self.model.set_schedule(s.schedule, given, warm)
            self.model.set_training(s, hyper)
        except StudioError as exc:
            self._show_error(str(exc))
            return
        if self._error and self._state not in ("failed", "none"):
            self._show_error(None)

    _warmup_names = tuple(p.name for p in WARMUP_PARAMS)

    def _show_training(self) -> None:
        """Show the model's training settings (signals blocked: showing is not editing)."""
        t, hyper = self.model.train, self.model.hyper
        for w, v in ((self.optimizer_combo, t.optimizer), (self.lr_box, t.lr), (self.schedule_combo, t.schedule),
                     (self.augment_check, t.augment)):
            w.blockSignals(True)
            write_widget(w, v)
            w.blockSignals(False)
        self.train_form.set_value(t)
        self._show_augment_summary()
        if t.optimizer != self._shown_optimizer:
            self._shown_optimizer = t.optimizer
            info = OPTIMIZERS[t.optimizer]
            if self.hyper_form is not None:
                self.hyper_form.setParent(None)
                self.hyper_form.deleteLater()
            self.hyper_form = ParamForm(info.settings, only=info.param_names[1:])
            self.hyper_form.edited.connect(self._on_train_edited)
            self.hyper_boxes = self.hyper_form.widgets
            self.hyper_holder.addWidget(self.hyper_form)
            self.lr_box.setToolTip(info.params[0].doc)
            self.optimizer_combo.setToolTip(info.doc)
        self.hyper_form.set_value(hyper)
        if t.schedule != self._shown_schedule:
            self._shown_schedule = t.schedule
            if self.schedule_form is not None:
                self._schedule_box.setParent(None)
                self._schedule_box.deleteLater()
                self.schedule_form = None
            self.schedule_boxes = {}
            if t.schedule != NO_SCHEDULE:
                info = SCHEDULES[t.schedule]
                box = QWidget()
                bl = QVBoxLayout(box)
                bl.setContentsMargins(0, 0, 0, 0)
                bl.setSpacing(2)
                form = ParamForm(info.factory, only=tuple(p.name for p in info.params))
                form.edited.connect(self._on_train_edited)
                bl.addWidget(form)
                warm = QFormLayout()
                warm.setContentsMargins(0, 0, 0, 0)
                for p in WARMUP_PARAMS:                   # the warm-up's own declared parameters
                    w = param_widget(p, box)
                    lab = QLabel(p.title)
                    lab.setToolTip(p.doc)
                    warm.addRow(lab, w)
                    w.valueChanged.connect(self._on_train_edited)
                    self.schedule_boxes[p.name] = w
                bl.addLayout(warm)
                self.schedule_form = form
                self._schedule_box = box
                self.schedule_boxes.update(form.widgets)
                self.schedule_holder.addWidget(box)
        if self.schedule_form is not None:
            self.schedule_form.set_value({**self.model.schedule_defaults(t.schedule), **self.model.schedule_params})
            warm = {**{p.name: p.default for p in WARMUP_PARAMS}, **self.model.warmup}
            for name in self._warmup_names:
                w = self.schedule_boxes[name]
                w.blockSignals(True)
                write_widget(w, warm[name])
                w.blockSignals(False)

    def _on_training_setting_changed(self) -> None:
        if self.iteration == 0 and self._state in ("idle", "none"):
            self._rebuild_timer.start()
        elif self._state not in ("preparing",):
            self.settings_note.show()

    def _start_job(self, paused: bool) -> None:
        session = self.session
        self._started = True
        self.jobs.cancel("visuals", notify=False)
        self.jobs.start("train", lambda: M.training_job(session), on_yield=self._on_updates,
                        on_done=self._on_training_done, on_error=self._on_training_failed, keep="all",
                        paused=paused)

    def _cancel_training(self) -> None:
        self.jobs.cancel("train", notify=False)
        self.jobs.cancel("visuals", notify=False)
        self._started = False

    def _rebuild(self) -> None:
        """A new session: cancel the run, fresh network (or the loaded weights while they fit), clear the plots."""
        self._rebuild_timer.stop()
        self._cancel_training()
        self._reset_metrics()
        self._shown_cm, self._shown_mis = None, None
        self._clear_plots()
        self._show_error(None)
        self.settings_note.hide()
        self.session = None
        if self._closed:
            return
        if self.model.data is None or self.jobs.running("data"):
            self._set_state("preparing")
            return
        if not self.builder.is_valid():
            self._show_error(None)
            self._set_state("none")
            return
        try:
            self.session = self.model.new_session(_CLASS_RGB, augment=self.training_augmenter(), grid=self.grid)
            self.session.image_index = self.image_box.value()
            self._show_loss_floor()
        except StudioError as exc:
            self._show_error(f"Cannot train: {exc}")
            self._set_state("none")
            return
        self._set_state("idle")
        self._update_status()
        self._want_visuals()

    def _want_visuals(self) -> None:
        """Pictures of the current weights: with the next update while training, else from a short job."""
        s = self.session
        if s is None:
            return
        s.visuals_requested = True
        if self._state == "running":
            return
        self.jobs.start("visuals", lambda: M.visuals_job(s), on_done=lambda v: self._on_visuals_done(v, s),
                        on_error=self._on_visuals_failed)

    def _on_visuals_done(self, v: Visuals | None, session: Any = None) -> None:
        """Pictures from a visuals job: dropped when they belong to an older session or are older than the pictures
        a training update has shown meanwhile (a step after a pause brings its own)."""
        if v is None or (session is not None and session is not self.session):
            return
        if self.visuals is not None and self._visuals_session is session and v.iteration < self.visuals.iteration:
            return
        self._draw_visuals(v)

    def _on_visuals_failed(self, _exc: BaseException, text: str) -> None:
        self._show_error(text)

    def _on_updates(self, updates: list[TrainUpdate]) -> None:
        """The one redraw per timer tick: every update since the last tick into the series, one setData per curve,
        the pictures only when a new one came."""
        if not updates:
            return
        steps = [u.step for u in updates]
        self._iters.extend([m.iteration for m in steps])
        self._loss.extend([m.loss for m in steps])
        self._acc.extend([m.accuracy for m in steps])
        self._lr.extend([m.lr for m in steps])
        measured = [m for m in steps if m.norms_measured]
        if measured:
            if not self._norm_names:
                self._norm_names = list(measured[0].grad_norms)
                self._norms = _Series(len(self._norm_names))
            self._norm_iters.extend([m.iteration for m in measured])
            self._norms.extend([[m.grad_norms[k] for k in self._norm_names] for m in measured])
        epochs = [u.epoch for u in updates if u.epoch is not None]
        for m in epochs:
            for k in self._epochs:
                self._epochs[k].append(getattr(m, k))
            self._last_epoch = m
        self._n_steps = steps[-1].iteration
        self._draw_metrics(bool(epochs))
        pictures = [u.visuals for u in updates if u.visuals is not None]
        if pictures:
            self._draw_visuals(pictures[-1])
        self._update_status()
        self.redraw_count += 1

    def _on_training_done(self, _n: int) -> None:
        self._set_state("finished")
        self._hand_on()

    def _on_training_failed(self, exc: BaseException, text: str) -> None:
        if not isinstance(exc, StudioError):      # a bug: say where it stopped, and what it was
            text = f"Training stopped at iteration {self.trained_iterations + 1}: {text}"
        self._show_error(text)
        self._set_state("failed")

    def _hand_on(self) -> None:
        """Training paused or finished on an image model: hand a copy on (model_trained)."""
        s = self.session
        if s is None or len(s.network.input_shape) != 3:
            return
        self.model_trained.emit(self.model.snapshot(s))

    def _set_state(self, s: str) -> None:
        changed = s != self._state
        self._state = s
        self._update_buttons()
        if changed:
            self.training_state_changed.emit(s)

    def _update_buttons(self) -> None:
        s = self._state
        ok = s not in ("none", "preparing")
        self.train_button.setEnabled(ok and s != "running")
        self.pause_button.setEnabled(s == "running")
        self.resume_button.setEnabled(s == "paused")
        self.step_button.setEnabled(ok and s != "running")
        self.reset_button.setEnabled(s != "preparing")
        for b in (self.graph_button, self.export_button, self.save_button, self.load_button):
            b.setEnabled(ok)
        self.curve_button.setEnabled(ok)          # before any update it says "too short to judge"
        loaded = self.model.loaded
        self.train_button.setText("▶ Train again" if s in ("finished", "failed") else "▶ Train")
        self.train_button.setToolTip(
            "" if s not in ("finished", "failed") else
            f"Start over from the weights loaded from {loaded[0]}" if loaded is not None else
            "Start over from fresh weights (the seed)")

    def _show_error(self, message: str | None) -> None:
        self._error = message
        if message:
            self.banner.setText("⚠ " + message)
            self.banner.show()
        else:
            self.banner.hide()

    # ================================================================================================== drawing
    def _reset_metrics(self) -> None:
        self._n_steps = 0
        self._iters, self._loss, self._acc, self._lr = _Series(), _Series(), _Series(), _Series()
        self._norm_iters = _Series()
        self._norms = _Series(1)
        self._norm_names: list[str] = []
        self._epochs: dict[str, list[float]] = {k: [] for k in ("iteration", "train_loss", "train_accuracy",
                                                                "val_loss", "val_accuracy")}
        self._last_epoch = None

    def _clear_plots(self) -> None:
        for c in self.curves.values():
            c.setData([], [])
        for c in self.grad_curves.values():
            self.grad_plot.getPlotItem().removeItem(c)
            self.grad_legend.removeItem(c)
        self.grad_curves = {}
        if self._symbols_off:
            self._symbols_off = False
            for k in ("train_loss", "val_loss", "train_accuracy", "val_accuracy"):
                self.curves[k].setSymbol("o")
        self._lr_top = 0.0
        self._lr_seen = self._norms_seen = 0
        self._ranges = {}
        self._decimators: dict[str, Decimated] = {}
        for plot, span in ((self.loss_plot, (-2.0, 1.0)), (self.grad_plot, (-3.0, 1.0))):
            self._set_decades(plot, span)          # empty log plots show decades, not a pile of 2..9 labels
        self.status_label.setText("")
        self._show_loss_floor(use_session=False)       # the next session's (the old one is going)

    def _draw_metrics(self, epochs: bool) -> None:
        """One setData per curve (decimated beyond MAX_CURVE_POINTS); the epoch curves only when an epoch ended."""
        it = self._iters.data
        self._set_curve("loss", *self._decimated("loss")(it, self._loss.data))
        self._set_curve("accuracy", *self._decimated("accuracy")(it, self._acc.data))
        lr = self._lr.data
        self._set_curve("lr", *self._decimated("lr")(it, lr))
        r = self._ranges
        if self._n_steps > r.get("x", 0):
            r["x"] = _nice_ceiling(self._n_steps * 1.25)
            self.loss_plot.getPlotItem().setXRange(0, r["x"], padding=0)
        seen, self._lr_seen = self._lr_seen, lr.size       # only the new values can move the y ranges
        new_losses = self._loss.data[seen:]
        top = float(np.nanmax(lr[seen:])) if lr.size > seen else 0.0
        if math.isfinite(top) and top > self._lr_top:
            self._lr_top = top
            self.lr_plot.getPlotItem().setYRange(0, self._lr_top * 1.1, padding=0)
        floor = [self.loss_floor] if self.loss_floor > 0 else []
        span = _decades(np.concatenate([new_losses, self._epoch_losses(), floor]), r.get("loss"))
        if span is not None:
            r["loss"] = span
            self._set_decades(self.loss_plot, span)
        if epochs:
            ei = np.asarray(self._epochs["iteration"], np.float64)
            if len(ei) > MAX_EPOCH_SYMBOLS and not self._symbols_off:   # a few hundred markers cost a frame
                self._symbols_off = True
                for k in ("train_loss", "val_loss", "train_accuracy", "val_accuracy"):
                    self.curves[k].setSymbol(None)
            for k in ("train_loss", "val_loss", "train_accuracy", "val_accuracy"):
                v = np.asarray(self._epochs[k], np.float64)
                ok = np.isfinite(v)
                self.curves[k].setData(ei[ok], np.maximum(v[ok], FLOOR) if k.endswith("loss") else v[ok])
        gp = self.grad_plot.getPlotItem()
        ni, norms = self._norm_iters.data, self._norms.data
        for j, name in enumerate(self._norm_names):
            c = self.grad_curves.get(name)
            if c is None:
                c = self._curve(gp, pg.mkPen(PALETTE[j % len(PALETTE)], width=1.5), name)
                self.grad_curves[name] = c
            self._set_curve(name, *self._decimated(name)(ni, np.nan_to_num(norms[:, j], nan=FLOOR)))
        if len(ni) > self._norms_seen:
            span = _decades(norms[self._norms_seen:].ravel(), r.get("grad"))
            self._norms_seen = len(ni)
            if span is not None:
                r["grad"] = span
                self._set_decades(self.grad_plot, span)

    @staticmethod
    def _set_decades(plot: pg.PlotWidget, span: tuple[float, float]) -> None:
        """A log plot's range and its labels: whole decades only (minor labels pile up on a short plot)."""
        pi = plot.getPlotItem()
        pi.setYRange(*span, padding=0)
        a, b = int(span[0]), int(span[1])
        step = max(1, (b - a) // 5)
        major = [(k, f"{10.0 ** k:g}") for k in range(a, b + 1, step)]
        minor = [(k + math.log10(m), f"{m * 10.0 ** k:g}") for k in range(a, b) for m in (2, 5)] if b - a <= 2 else []
        pi.getAxis("left").setTicks([sorted(major + minor), []])   # one level: the axis shows text on level 0 only

    def _epoch_losses(self) -> np.ndarray:
        return np.asarray(self._epochs["train_loss"][-2:] + self._epochs["val_loss"][-2:], np.float64)

    def _update_status(self) -> None:
        notice = f" · {self.model.notice}" if self.model.notice else ""
        if self._state == "preparing":
            self.status_label.setText("preparing the data…")
            return
        if not self._n_steps:
            self.status_label.setText("ready · press ▶ Train or Step" + notice)
            return
        total_epochs = self.session.trainer.epochs if self.session is not None else 0
        parts = [f"iter {self._n_steps}", f"epoch {len(self._epochs['iteration'])}/{total_epochs}",
                 f"loss {theme.format_scalar(float(self._loss.data[-1]))}"]
        m = self._last_epoch
        if m is not None:
            if math.isfinite(m.val_accuracy):
                parts.append(f"train {m.train_accuracy:.1%} · val {m.val_accuracy:.1%}")
            else:
                parts.append(f"train {m.train_accuracy:.1%}")
            if m.stopped_early:
                parts.append(f"stopped early (best epoch {m.best_epoch + 1})")
        self.status_label.setText(" · ".join(parts) + notice)

    def _draw_visuals(self, v: Visuals) -> None:
        self.visuals = v
        self._visuals_session = self.session
        self.visual_updates += 1
        if v.region is not None:
            x0, x1, y0, y1 = v.grid
            self.region_item.setImage(v.region, autoLevels=False)
            self.region_item.setRect(QRectF(x0, y0, x1 - x0, y1 - y0))
            return
        if not self._digits_built or self.model.data is None:
            return
        split_raw = self.model.data.split_raw
        if v.confusion is not None:
            self._draw_confusion(v.confusion)
        if v.misclassified is not None:
            Xv_raw, yv = split_raw[2], split_raw[3]
            key = (tuple(v.misclassified), tuple(v.mis_pred))
            mis_changed = key != self._shown_mis
            self._shown_mis = key
            for k, (pic, cap) in enumerate(self.mis_labels if mis_changed else ()):
                if k < len(v.misclassified):
                    i = int(v.misclassified[k])
                    pic.setPixmap(digit_pixmap(Xv_raw[i, 0], 34))
                    cap.setText(f"{yv[i]}→{v.mis_pred[k]}")
                    cap.setStyleSheet(f"font-size: 8pt; color: {theme.ERROR.name()};")
                else:
                    pic.clear()
                    cap.setText("")
            n_wrong = int(v.confusion.sum() - np.trace(v.confusion)) if v.confusion is not None else 0
            self.mis_title.setText(f"Misclassified validation examples (true → predicted): {n_wrong}")
        if v.draws_accuracy is not None:
            draws, one, averaged = v.draws_accuracy
            self.draws_label.setText(f"Fractional pooling, validation accuracy: 1 region draw {one:.1%} · "
                                     f"averaged over {draws} draws {averaged:.1%} ({averaged - one:+.1%})")
        self.draws_label.setVisible(v.draws_accuracy is not None)
        if v.weights is not None:
            self.filters_item.setImage(_tiles(v.weights), autoLevels=False)
            self.filters_plot.getPlotItem().setTitle(v.weights_title, size="9.5pt")
        if v.maps is not None:
            self.maps_item.setImage(_tiles(v.maps), autoLevels=False)
            self.maps_plot.getPlotItem().setTitle(v.maps_title, size="9.5pt")
        else:
            self.maps_item.clear()
            self.maps_plot.getPlotItem().setTitle("Activation maps: the network has no Conv2d layer", size="9.5pt")
        if len(split_raw[2]) > v.maps_index:
            i = v.maps_index
            self.image_preview.setPixmap(digit_pixmap(split_raw[2][i, 0], 48))
            self.maps_caption.setText(f"label {split_raw[3][i]} · predicted {v.maps_pred}")

    def _draw_confusion(self, cm: np.ndarray) -> None:
        if self._shown_cm is not None and np.array_equal(self._shown_cm, cm):
            return                                   # a hundred text items: redrawn only when a count changed
        self._shown_cm = cm
        K = cm.shape[0]
        t = cm / max(cm.max(), 1)
        accent = np.array([theme.ACCENT.red(), theme.ACCENT.green(), theme.ACCENT.blue()], float)
        rgb = np.round(255.0 + t[..., None] * 0.85 * (accent - 255.0)).astype(np.uint8)
        self.confusion_item.setImage(rgb, autoLevels=False)
        self.confusion_item.setRect(QRectF(0, 0, K, K))
        cp = self.confusion_plot.getPlotItem()
        while len(self.confusion_texts) < K * K:
            ti = pg.TextItem(anchor=(0.5, 0.5))
            ti.setFont(theme.font(7.5))
            cp.addItem(ti)
            self.confusion_texts.append(ti)
        for r in range(K):
            for c in range(K):
                ti = self.confusion_texts[r * K + c]
                n = int(cm[r, c])
                ti.setText(str(n) if n else "", color="w" if t[r, c] > 0.55 else
                           (theme.ERROR if r != c else theme.TEXT))
                ti.setPos(c + 0.5, r + 0.5)

    def _on_view_changed(self, *_: object) -> None:
        """The regions fill exactly the visible rectangle (the plot keeps a 1:1 aspect, so it depends on the size)."""
        (x0, x1), (y0, y1) = self.data_plot.getPlotItem().getViewBox().viewRange()
        if not (np.isfinite([x0, x1, y0, y1]).all() and x1 > x0 and y1 > y0):
            return
        self.grid = (float(x0), float(x1), float(y0), float(y1))
        if self.session is not None and self.kind == "toy":
            self.session.grid = self.grid
            self._want_visuals()

    def _on_image_changed(self, i: int) -> None:
        if self.session is not None:
            self.session.image_index = int(i)
            self._want_visuals()

    # ================================================================================================== files
    def _message(self, title: str, text: str) -> None:
        QMessageBox.warning(self, title, text)

    def _check_initial_loss(self, guess: float) -> tuple[bool, str]:
        """The lab's own answer: the untrained network's loss (within 10%)."""
        loss, text = self.model.initial_loss()
        return abs(guess - loss) <= 0.1 * max(abs(loss), 1e-9), text[0].upper() + text[1:]

    def show_curve_doctor(self) -> CurveDoctor:
        """The run so far (loss per update; training and validation loss per epoch) read by the curve doctor."""
        ep = self._epochs
        dialog = CurveDoctor(np.array(self._loss.data, dtype=np.float64),
                             np.asarray(ep["train_loss"], np.float64), np.asarray(ep["val_loss"], np.float64), self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        self.curve_doctor = dialog
        return dialog

    def _on_export_clicked(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "Export a PyTorch script into a folder")
        if not d:
            return
        try:
            path = self.export_torch(d)
        except (StudioError, OSError) as exc:
            self._message("Export failed", str(exc))
            return
        self.status_label.setText(f"exported {path}")

    def _on_save_clicked(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save weights", "weights.npz", "Weights (*.npz)")
        if not path:
            return
        try:
            self.save_weights(path)
        except (StudioError, OSError) as exc:
            self._message("Saving failed", str(exc))

    def _on_load_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load weights", "", "Weights (*.npz);;All files (*)")
        if not path:
            return
        try:
            self.load_weights(path)
        except (StudioError, OSError) as exc:
            self._message("Loading failed", str(exc))
