"""The training playground: pick data, build a network, train it live (TensorFlow Playground, with the lecture's knobs).

Data (toy 2-D sets or the 8x8 digits) are split, then standardised with statistics from the training part only, shown
on screen. The network comes from the NetworkBuilder. Training runs in a TrainingWorker (gui/workers_training.py):
it steps the Trainer in its own thread and posts metrics and pictures into a buffer; ONE QTimer here drains the
buffer about 30 times a second and calls setData. Nothing is redrawn per training step, and nothing that reads the
network runs on the GUI thread except under the worker's lock (export, save, load, the graph for the editor).
"""
from __future__ import annotations

import math
import os
import time
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from gui import theme
from gui.labs.augment_view import AugmentSettings, show_augment_preview
from gui.labs.common import (
    CLASS_COLOURS,
    HYPER_FIELDS,
    MUTED_STYLE,
    PALETTE,
    control_column,
    digit_pixmap,
    group,
)
from gui.labs.network_builder import NetworkBuilder
from gui.forms import LogSpinBox
from gui.workers_training import TrainingSession, TrainingWorker, Visuals
from simulator.data import datasets
from simulator.core.errors import StudioError
from simulator.nn.network import Network, Trainer
from simulator.functional.optim import OPTIMIZERS
from simulator.functional.schedules import SCHEDULES, make_schedule

__all__ = ["DATASETS", "DIGITS", "GRAPH_BATCH", "PlaygroundLab"]

DIGITS = "digits (8×8)"
DATASETS = ("spiral", "circles", "xor", "moons", "blobs", DIGITS)
NOISE_DEFAULTS = {"spiral": 0.2, "circles": 0.05, "xor": 0.1, "moons": 0.1, "blobs": 0.5}
LR_DEFAULTS = {"SGD": 0.1, "Momentum": 0.05, "Nesterov": 0.05, "AdaGrad": 0.05, "RMSProp": 0.005, "Adam": 0.01,
               "AdamW": 0.01}
GRAPH_BATCH = 4
TICK_MS = 30
PLOT_INTERVAL = 0.1     # seconds between metric-plot redraws while training
BANNER_STYLE = (f"color: {theme.ERROR.name()}; background: #fbeaea; border: 1px solid #f0c9c6; border-radius: 3px;"
                f" padding: 6px 10px; font-weight: 600;")
_CLASS_RGB = np.array([[QColor(c).red(), QColor(c).green(), QColor(c).blue()] for c in CLASS_COLOURS], float)
TRAIN_COLOUR = "#2f74d0"
VAL_COLOUR = "#e8710a"
STEP_COLOUR = (120, 135, 155, 110)


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
    return p, img


class PlaygroundLab(QWidget):
    """Data, network builder, training controls, live plots and pictures.

    Signals: ``graph_requested(object)``: a simulator Graph (float64, GRAPH_BATCH training examples, train mode) of
    the current network, for stepping one iteration in the graph editor; ``training_state_changed(str)``.

    Children for tests: dataset_combo, classes_box, points_box, noise_box, data_seed_box, val_box, standardize_check,
    stats_label, click_class_combo, builder, optimizer_combo, lr_box, hyper_boxes, schedule_combo, batch_box,
    epochs_box, patience_box, seed_box, train_button, pause_button, resume_button, step_button, reset_button,
    graph_button, export_button, save_button, load_button, banner, status_label, data_plot, region_item,
    point_items, loss_plot, acc_plot, lr_plot, grad_plot, curves (name -> PlotDataItem), grad_curves, confusion_item,
    confusion_texts, mis_labels, filters_item, maps_item, image_box.
    """

    graph_requested = Signal(object)
    training_state_changed = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.worker: TrainingWorker | None = None
        self.session: TrainingSession | None = None
        self._closed = False
        # weights from a file: (file name, params, batch-norm running statistics). Every rebuild (Train again, a
        # changed setting or data) starts from them while they fit the network; ⟲ Reset discards them.
        self._loaded: tuple[str, dict[str, np.ndarray], dict[str, tuple[np.ndarray, np.ndarray]]] | None = None
        self._notice = ""       # about the loaded weights, shown in the status line
        self._state = "none"
        self._error: str | None = None
        self.X_raw = np.zeros((0, 2))
        self.y_raw = np.zeros(0, np.int64)
        self.split: tuple[np.ndarray, ...] = ()
        self.split_raw: tuple[np.ndarray, ...] = ()
        self.standardizer: datasets.Standardizer | None = None
        self.num_classes = 3
        self.kind = "toy"
        self.grid = (-1.0, 1.0, -1.0, 1.0)
        self.visuals: Visuals | None = None
        self.visual_updates = 0
        self._digits_cache: tuple[np.ndarray, np.ndarray] | None = None
        self._reset_metrics()

        self._build_controls()
        self._build_plots()
        self._build_layout()

        self._timer = QTimer(self)
        self._timer.setInterval(TICK_MS)
        self._timer.timeout.connect(self._on_tick)
        self._timer.start()
        self._rebuild_timer = QTimer(self)       # coalesces bursts of edits into one reset
        self._rebuild_timer.setSingleShot(True)
        self._rebuild_timer.setInterval(60)
        self._rebuild_timer.timeout.connect(self._rebuild)

        self._on_optimizer_changed(self.optimizer_combo.currentText())
        self._on_schedule_changed(self.schedule_combo.currentText())
        self._regenerate_data()

    # ============================================================================================== construction
    def _build_controls(self) -> None:
        # ---- data
        self.dataset_combo = QComboBox()
        self.dataset_combo.addItems(list(DATASETS))
        self.classes_box = QSpinBox()
        self.classes_box.setRange(2, len(CLASS_COLOURS))
        self.classes_box.setValue(3)
        self.points_box = QSpinBox()
        self.points_box.setRange(10, 5000)
        self.points_box.setValue(300)
        self.points_box.setSingleStep(50)
        self.noise_box = QDoubleSpinBox()
        self.noise_box.setRange(0.0, 3.0)
        self.noise_box.setDecimals(2)
        self.noise_box.setSingleStep(0.05)
        self.noise_box.setValue(NOISE_DEFAULTS["spiral"])
        self.data_seed_box = QSpinBox()
        self.data_seed_box.setRange(0, 99999)
        self.val_box = QDoubleSpinBox()
        self.val_box.setRange(0.0, 0.8)
        self.val_box.setDecimals(2)
        self.val_box.setSingleStep(0.05)
        self.val_box.setValue(0.2)
        self.val_box.setToolTip("Share of the data held out for validation (stratified by class)")
        for box in (self.classes_box, self.points_box, self.noise_box, self.data_seed_box, self.val_box):
            box.setKeyboardTracking(False)
        self.standardize_check = QCheckBox("Standardise  x ← (x − mean) / std")
        self.standardize_check.setToolTip("Mean and std come from the training part only, then are applied to both")
        self.standardize_check.setChecked(True)
        self.stats_label = QLabel()
        self.stats_label.setStyleSheet(MUTED_STYLE + " font-family: monospace;")
        self.stats_label.setWordWrap(True)
        self.click_class_combo = QComboBox()
        self.dataset_combo.currentTextChanged.connect(self._on_dataset_changed)
        for box in (self.classes_box, self.points_box, self.noise_box, self.data_seed_box):
            box.valueChanged.connect(self._regenerate_data)
        self.val_box.valueChanged.connect(self._prepare_data)
        self.standardize_check.toggled.connect(self._prepare_data)

        # ---- network
        self.builder = NetworkBuilder(input_shape=(2,), num_classes=3)
        self.builder.stack_changed.connect(self._on_stack_changed)

        # ---- training
        self.optimizer_combo = QComboBox()
        self.optimizer_combo.addItems(list(OPTIMIZERS))
        self.optimizer_combo.setCurrentText("Adam")
        self.lr_box = LogSpinBox(LR_DEFAULTS["Adam"], 1e-8, 1e10)
        self.hyper_form = QFormLayout()
        self.hyper_form.setContentsMargins(0, 0, 0, 0)
        self.hyper_boxes: dict[str, QWidget] = {}
        self.schedule_combo = QComboBox()
        self.schedule_combo.addItems(["none", *SCHEDULES])
        self.schedule_form = QFormLayout()
        self.schedule_form.setContentsMargins(0, 0, 0, 0)
        self.schedule_boxes: dict[str, QWidget] = {}
        self.batch_box = QSpinBox()
        self.batch_box.setRange(1, 4096)
        self.batch_box.setValue(32)
        self.epochs_box = QSpinBox()
        self.epochs_box.setRange(1, 100000)
        self.epochs_box.setValue(300)
        self.patience_box = QSpinBox()
        self.patience_box.setRange(0, 10000)
        self.patience_box.setSpecialValueText("off")
        self.patience_box.setToolTip("Early stopping: stop when the validation loss has not improved for this many "
                                     "epochs, and restore the best weights")
        self.seed_box = QSpinBox()
        self.seed_box.setRange(0, 99999)
        self.seed_box.setToolTip("Seeds the initial weights, the batch order and dropout")
        self.optimizer_combo.currentTextChanged.connect(self._on_optimizer_changed)
        self.schedule_combo.currentTextChanged.connect(self._on_schedule_changed)
        for box in (self.lr_box, self.batch_box, self.epochs_box, self.patience_box, self.seed_box):
            box.setKeyboardTracking(False)
            box.valueChanged.connect(self._on_training_setting_changed)
        self.settings_note = QLabel("Changed settings take effect at ⟲ Reset.")
        self.settings_note.setStyleSheet(MUTED_STYLE)
        self.settings_note.hide()

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
        self.graph_button.clicked.connect(self.request_graph)
        self.export_button.clicked.connect(self._on_export_clicked)
        self.save_button.clicked.connect(self._on_save_clicked)
        self.load_button.clicked.connect(self._on_load_clicked)

    def _build_plots(self) -> None:
        # ---- 2-D data and decision regions
        self.data_plot = pg.PlotWidget(background="w")
        dp = self.data_plot.getPlotItem()
        dp.setMenuEnabled(False)
        dp.hideButtons()
        dp.setAspectLocked(True)
        dp.getViewBox().setMouseEnabled(False, False)
        dp.setTitle("Decision regions", size="10pt")
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
        self.click_hint2 = QLabel("· right-click removes the nearest · dark rings: validation points")
        self.click_hint2.setStyleSheet(MUTED_STYLE)
        self.click_hint2.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

        # ---- digits pictures
        self.confusion_plot, self.confusion_item = _image_plot("Confusion matrix (validation)")
        cp = self.confusion_plot.getPlotItem()
        cp.showAxis("left")
        cp.showAxis("bottom")
        cp.setLabel("left", "true")
        cp.setLabel("bottom", "predicted")
        for ax in ("left", "bottom"):
            cp.getAxis(ax).setTicks([[(k + 0.5, str(k)) for k in range(10)]])
        self.confusion_texts: list[pg.TextItem] = []
        self.filters_plot, self.filters_item = _image_plot("First-layer filters")
        self.maps_plot, self.maps_item = _image_plot("Activation maps")
        self.image_box = QSpinBox()
        self.image_box.setRange(0, 0)
        self.image_box.setPrefix("val. image ")
        self.image_box.valueChanged.connect(self._on_image_changed)
        self.image_preview = QLabel()
        self.image_preview.setFixedSize(48, 48)
        self.maps_caption = QLabel()
        self.maps_caption.setStyleSheet(MUTED_STYLE)
        self.mis_title = QLabel("Misclassified validation examples (true → predicted)")
        self.mis_title.setStyleSheet("font-weight: 600;")
        self.mis_labels: list[tuple[QLabel, QLabel]] = []
        self.mis_grid = QGridLayout()
        self.mis_grid.setSpacing(2)
        for k in range(24):
            pic, cap = QLabel(), QLabel()
            pic.setFixedSize(34, 34)
            cap.setAlignment(Qt.AlignmentFlag.AlignCenter)
            cap.setStyleSheet("font-size: 8pt;")
            r, c = divmod(k, 6)
            self.mis_grid.addWidget(pic, 2 * r, c, Qt.AlignmentFlag.AlignCenter)
            self.mis_grid.addWidget(cap, 2 * r + 1, c, Qt.AlignmentFlag.AlignCenter)
            self.mis_labels.append((pic, cap))

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
        self.curves = {
            "loss": lp.plot(pen=step_pen, name="batch"),
            "train_loss": lp.plot(pen=pg.mkPen(TRAIN_COLOUR, width=2), name="train (epoch)",
                                  symbolBrush=TRAIN_COLOUR, symbolPen=None, **sym),
            "val_loss": lp.plot(pen=pg.mkPen(VAL_COLOUR, width=2), name="validation",
                                symbolBrush=VAL_COLOUR, symbolPen=None, **sym),
            "accuracy": ap.plot(pen=step_pen, name="batch"),
            "train_accuracy": ap.plot(pen=pg.mkPen(TRAIN_COLOUR, width=2), name="train (epoch)",
                                      symbolBrush=TRAIN_COLOUR, symbolPen=None, **sym),
            "val_accuracy": ap.plot(pen=pg.mkPen(VAL_COLOUR, width=2), name="validation",
                                    symbolBrush=VAL_COLOUR, symbolPen=None, **sym),
            "lr": self.lr_plot.getPlotItem().plot(pen=pg.mkPen("#7a4cc2", width=2)),
        }
        for c in self.curves.values():
            c.setClipToView(True)
            c.setDownsampling(auto=True, method="peak")
        self.grad_curves: dict[str, pg.PlotDataItem] = {}

    def _build_layout(self) -> None:
        # data
        data_form = QFormLayout()
        data_form.setContentsMargins(0, 0, 0, 0)
        data_form.addRow("Data set", self.dataset_combo)
        row = QHBoxLayout()
        row.addWidget(self.points_box, 1)
        row.addWidget(QLabel("classes"))
        row.addWidget(self.classes_box)
        data_form.addRow("Points", row)
        row = QHBoxLayout()
        row.addWidget(self.noise_box, 1)
        row.addWidget(QLabel("seed"))
        row.addWidget(self.data_seed_box)
        data_form.addRow("Noise", row)
        data_form.addRow("Validation", self.val_box)
        data_box = QVBoxLayout()
        data_box.addLayout(data_form)
        data_box.addWidget(self.standardize_check)
        data_box.addWidget(self.stats_label)
        self.augment_button = QPushButton("Preview image augmentation…")   # a non-modal window on the digits
        self.augment_button.clicked.connect(lambda: show_augment_preview(self, *(self._digits_cache or ())))
        data_box.addWidget(self.augment_button)
        self.augment_check = QCheckBox("Train with augmentation")
        self.augment_check.setToolTip("Digits only: each mini-batch gets fresh label-preserving draws with the "
                                      "preview's settings (shift ±1 px and rotation ±10° until you change them)")
        self.augment_check.setEnabled(False)
        self.augment_check.toggled.connect(self._on_training_setting_changed)
        data_box.addWidget(self.augment_check)

        # training
        train_form = QFormLayout()
        train_form.setContentsMargins(0, 0, 0, 0)
        train_form.addRow("Optimizer", self.optimizer_combo)
        train_form.addRow("Learning rate", self.lr_box)
        train_box = QVBoxLayout()
        train_box.addLayout(train_form)
        train_box.addLayout(self.hyper_form)
        sched_form = QFormLayout()
        sched_form.setContentsMargins(0, 0, 0, 0)
        sched_form.addRow("Schedule", self.schedule_combo)
        train_box.addLayout(sched_form)
        train_box.addLayout(self.schedule_form)
        more = QFormLayout()
        more.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        row.addWidget(self.batch_box, 1)
        row.addWidget(QLabel("epochs"))
        row.addWidget(self.epochs_box, 1)
        more.addRow("Batch size", row)
        row = QHBoxLayout()
        row.addWidget(self.patience_box, 1)
        row.addWidget(QLabel("seed"))
        row.addWidget(self.seed_box, 1)
        more.addRow("Patience", row)
        train_box.addLayout(more)
        train_box.addWidget(self.settings_note)

        files = QVBoxLayout()
        files.addWidget(self.graph_button)
        files.addWidget(self.export_button)
        row = QHBoxLayout()
        row.addWidget(self.save_button)
        row.addWidget(self.load_button)
        files.addLayout(row)

        left = control_column([group("Data", data_box), group("Training", train_box), group("Model files", files)],
                              min_width=300)
        middle = control_column([group("Network", self._wrap(self.builder))], min_width=365)

        # centre: the 2-D page or the digits page
        toy_page = QWidget()
        tl = QVBoxLayout(toy_page)
        tl.setContentsMargins(0, 0, 0, 0)
        tl.addWidget(self.data_plot, 1)
        hint = QHBoxLayout()
        hint.addWidget(self.click_hint)
        hint.addWidget(self.click_class_combo)
        hint.addWidget(self.click_hint2, 1)
        tl.addLayout(hint)
        mis = QWidget()
        mis.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.mis_title.setWordWrap(True)
        ml = QVBoxLayout(mis)
        ml.setContentsMargins(4, 4, 4, 4)
        ml.addWidget(self.mis_title)
        ml.addLayout(self.mis_grid)
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
        top, bottom = QSplitter(Qt.Orientation.Horizontal), QSplitter(Qt.Orientation.Horizontal)
        top.addWidget(self.confusion_plot)
        top.addWidget(mis)
        bottom.addWidget(self.filters_plot)
        bottom.addWidget(maps)
        for sp in (top, bottom):
            sp.setSizes([250, 250])
            sp.setChildrenCollapsible(False)
        digits_page = QSplitter(Qt.Orientation.Vertical)
        digits_page.addWidget(top)
        digits_page.addWidget(bottom)
        digits_page.setSizes([420, 420])
        self.pages = QStackedWidget()
        self.pages.addWidget(toy_page)
        self.pages.addWidget(digits_page)

        transport = QHBoxLayout()
        transport.setContentsMargins(6, 6, 6, 2)
        for b in (self.train_button, self.pause_button, self.resume_button, self.step_button, self.reset_button):
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

        plots = QSplitter(Qt.Orientation.Vertical)
        for p in (self.loss_plot, self.acc_plot, self.lr_plot, self.grad_plot):
            plots.addWidget(p)
        plots.setSizes([300, 220, 140, 240])

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(left)
        self.splitter.addWidget(middle)
        self.splitter.addWidget(centre)
        self.splitter.addWidget(plots)
        plots.setMinimumWidth(280)
        for i, s in enumerate((0, 0, 3, 2)):
            self.splitter.setStretchFactor(i, s)
        self.splitter.setSizes([300, 365, 505, 330])
        root = QHBoxLayout(self)
        root.setContentsMargins(0, 0, 0, 0)
        root.addWidget(self.splitter)

    @staticmethod
    def _wrap(w: QWidget) -> QVBoxLayout:
        lay = QVBoxLayout()
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(w)
        return lay

    # ================================================================================================ public API
    @property
    def state(self) -> str:
        """'none' (no runnable network), 'idle', 'running', 'paused', 'finished' or 'failed'."""
        return self._state

    @property
    def iteration(self) -> int:
        """Updates shown so far (drained from the worker)."""
        return len(self._steps["iteration"])

    @property
    def error_message(self) -> str | None:
        return self._error

    def train(self) -> None:
        """Start (or continue) training; a finished or failed run starts over from fresh weights, or from the loaded
        ones after load_weights (with a fresh trainer and optimizer state either way)."""
        if self.worker is None or self.worker.state in ("finished", "failed") or self._rebuild_timer.isActive():
            self._rebuild()
        if self.worker is not None:
            self.worker.run_training()
            self._set_state(self.worker.state)

    def pause(self) -> None:
        if self.worker is not None:
            self.worker.pause()
            self._set_state(self.worker.state)

    def resume(self) -> None:
        if self.worker is not None and self.worker.state in ("paused", "idle"):
            self.worker.run_training()
            self._set_state(self.worker.state)

    def step(self) -> None:
        """One update (pauses a running session first)."""
        if self.worker is None or self.worker.state in ("finished", "failed") or self._rebuild_timer.isActive():
            self._rebuild()
        if self.worker is not None:
            self.worker.step_once()
            self._set_state(self.worker.state)

    def reset(self) -> None:
        """Stop the run, rebuild the network from the seed (discarding loaded weights), clear the plots (settings
        take effect here)."""
        self._loaded = None
        self._rebuild()

    def _rebuild(self) -> None:
        """reset(), but starting from the loaded weights when there are some and they still fit."""
        self._rebuild_timer.stop()
        self._notice = ""
        self._stop_worker()
        self._reset_metrics()
        self._clear_plots()
        self._show_error(None)
        self.settings_note.hide()
        self.session = None
        if self._closed:
            return
        try:
            self.session = self._make_session()
        except StudioError as exc:
            self._show_error(f"Cannot train: {exc}")
            self._set_state("none")
            return
        if self.session is None:
            self._set_state("none")
            return
        if self._loaded is not None:
            self._apply_loaded(self.session.network)     # before the worker starts: no lock needed
        self.worker = TrainingWorker(self.session)
        self.worker.start()
        self._set_state("idle")

    def training_data(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(X_train, y_train, X_val, y_val) as the network sees them (standardised when the box is ticked)."""
        return self.split  # type: ignore[return-value]

    def add_point(self, x: float, y: float, label: int) -> None:
        """Add a 2-D point of class `label` (the data change: training restarts)."""
        if self.kind != "toy":
            return
        self.X_raw = np.vstack([self.X_raw, [[x, y]]])
        self.y_raw = np.append(self.y_raw, np.int64(label))
        self._prepare_data()

    def remove_nearest(self, x: float, y: float) -> None:
        if self.kind != "toy" or len(self.X_raw) <= 2:
            return
        k = int(np.argmin(np.sum((self.X_raw - [x, y]) ** 2, axis=1)))
        self.X_raw = np.delete(self.X_raw, k, axis=0)
        self.y_raw = np.delete(self.y_raw, k)
        self._prepare_data()

    def request_graph(self) -> Any:
        """Emit graph_requested with the network (float64 copy, current weights) on GRAPH_BATCH training examples;
        returns the graph (None when there is no network)."""
        if self.worker is None:
            self._message("No network", self.builder.error() or "Build a network first.")
            return None
        X, y = self.split[0][:GRAPH_BATCH], self.split[1][:GRAPH_BATCH]

        def build(net: Network, trainer: Trainer):
            net64 = Network(net.input_shape, net.specs, loss=net.loss_kind, reg=net.reg, reg_kind=net.reg_kind,
                            init=net.init, bias_init=net.bias_init, seed=net.seed, dtype=np.float64)
            for k, v in net.params.items():
                net64.params[k][...] = v
            for k, bp in net.bn_params.items():
                net64.bn_params[k]["running_mean"][...] = bp["running_mean"]
                net64.bn_params[k]["running_var"][...] = bp["running_var"]
            return net64.to_graph(X, y, mode="train", seed=0)

        try:
            graph = self.worker.with_network(build)
        except StudioError as exc:
            self._message("Cannot build the graph", str(exc))
            return None
        self.graph_requested.emit(graph)
        return graph

    def export_torch(self, directory: str) -> str:
        """Write the PyTorch script and its data into `directory`; returns the script's path."""
        from simulator.nn.export_torch import write_torch_export
        if self.worker is None:
            raise StudioError(self.builder.error() or "there is no network to export")
        data = self.split
        path = self.worker.with_network(lambda net, tr: write_torch_export(directory, net, tr.config(), data))
        return os.fspath(path)

    def save_weights(self, path: str) -> None:
        if self.worker is None:
            raise StudioError(self.builder.error() or "there is no network to save")
        self.worker.with_network(lambda net, tr: net.save(path))

    def load_weights(self, path: str) -> None:
        """Load weights into the current network (ShapeError when they belong to another architecture)."""
        if self.worker is None:
            raise StudioError(self.builder.error() or "there is no network to load into")
        def load(net: Network, trainer: Trainer):
            net.load_weights(path)
            return ({k: v.copy() for k, v in net.params.items()},
                    {k: (b["running_mean"].copy(), b["running_var"].copy()) for k, b in net.bn_params.items()})

        params, bn = self.worker.with_network(load)
        name = os.path.basename(os.fspath(path))
        self._loaded = (name, params, bn)
        self._notice = f"weights loaded from {name}"
        self._update_status()
        self.worker.request_visuals()
        self._update_buttons()

    def _apply_loaded(self, net: Network) -> None:
        """Copy the loaded weights into a freshly built network, or drop them (with a notice) when they no longer fit."""
        assert self._loaded is not None
        name, params, bn = self._loaded
        fits = ({k: v.shape for k, v in params.items()} == {k: v.shape for k, v in net.params.items()}
                and {k: m.shape for k, (m, _) in bn.items()}
                == {k: b["running_mean"].shape for k, b in net.bn_params.items()})
        if not fits:
            self._loaded = None
            self._notice = f"the weights loaded from {name} do not fit the changed network: fresh weights"
            self._update_status()
            return
        for k, v in params.items():
            net.params[k][...] = v
        for k, (mean, var) in bn.items():
            net.bn_params[k]["running_mean"][...] = mean
            net.bn_params[k]["running_var"][...] = var
        self._notice = f"started from the weights loaded from {name} (⟲ Reset for fresh ones)"
        self._update_status()

    def close_lab(self) -> None:
        """Stop the timers and the worker (waiting for it); the lab does nothing afterwards."""
        self._closed = True
        self._timer.stop()
        self._rebuild_timer.stop()
        self._stop_worker()

    def closeEvent(self, event) -> None:
        self.close_lab()
        super().closeEvent(event)

    # ================================================================================================== data
    def _on_dataset_changed(self, name: str) -> None:
        digits = name == DIGITS
        for w in (self.classes_box, self.noise_box):
            w.setEnabled(not digits and (w is not self.classes_box or name in ("spiral", "blobs")))
        self.points_box.blockSignals(True)
        self.noise_box.blockSignals(True)
        if digits:
            self.points_box.setRange(50, 1797)
            self.points_box.setValue(1797)
        else:
            self.points_box.setRange(10, 5000)
            if self.kind == "digits":
                self.points_box.setValue(300)
            self.noise_box.setValue(NOISE_DEFAULTS[name])
        self.points_box.blockSignals(False)
        self.noise_box.blockSignals(False)
        self.augment_check.setEnabled(digits)
        if not digits:
            self.augment_check.setChecked(False)
        new_kind = "digits" if digits else "toy"
        if new_kind != self.kind:
            self.kind = new_kind
            self.pages.setCurrentIndex(1 if digits else 0)
            self.builder.blockSignals(True)
            self.builder.set_data_shape((1, 8, 8) if digits else (2,), 10 if digits else self.num_classes)
            self.builder.load_preset("Small CNN" if digits else "2-64-3 MLP")
            self.builder.blockSignals(False)
            self.lr_box.setValue(0.003 if digits else LR_DEFAULTS[self.optimizer_combo.currentText()])
            self.epochs_box.setValue(20 if digits else 300)
            self.batch_box.setValue(64 if digits else 32)
        self._regenerate_data()

    def _regenerate_data(self, *_: object) -> None:
        name = self.dataset_combo.currentText()
        seed = self.data_seed_box.value()
        n = self.points_box.value()
        if name == DIGITS:
            if self._digits_cache is None:
                try:
                    self._digits_cache = datasets.load_digits()
                except StudioError as exc:
                    self._show_error(str(exc))
                    return
            X, y = self._digits_cache
            if n < len(X):
                idx = np.sort(np.random.default_rng(seed).permutation(len(X))[:n])
                X, y = X[idx], y[idx]
            self.X_raw, self.y_raw = X, y
        else:
            kw: dict[str, Any] = {"n": n, "seed": seed}
            if name in ("spiral", "blobs"):
                kw["classes"] = self.classes_box.value()
            kw["std" if name == "blobs" else "noise"] = self.noise_box.value()
            self.X_raw, self.y_raw = datasets.make_toy(name, **kw)
        self._prepare_data()

    def _prepare_data(self, *_: object) -> None:
        """Split, standardise, redraw the points, reset training."""
        X, y = self.X_raw, self.y_raw
        classes = max(int(y.max()) + 1 if len(y) else 2, 2)
        if self.kind == "toy":
            classes = max(classes, self.classes_box.value() if self.dataset_combo.currentText() in
                          ("spiral", "blobs") else 2)
        self.num_classes = classes
        Xtr, ytr, Xv, yv = datasets.train_val_split(X, y, self.val_box.value(), seed=self.data_seed_box.value())
        self.split_raw = (Xtr, ytr, Xv, yv)
        if self.standardize_check.isChecked() and len(Xtr):
            self.standardizer, (Xtr_s, Xv_s) = datasets.standardize(Xtr, Xv)
        else:
            self.standardizer, Xtr_s, Xv_s = None, Xtr.astype(np.float64), Xv.astype(np.float64)
        self.split = (Xtr_s, ytr, Xv_s, yv)
        self._show_stats()
        # the click-to-add class list
        self.click_class_combo.blockSignals(True)
        keep = self.click_class_combo.currentIndex()
        self.click_class_combo.clear()
        for c in range(classes):
            self.click_class_combo.addItem(f"class {c}")
            self.click_class_combo.setItemData(c, QColor(CLASS_COLOURS[c % len(CLASS_COLOURS)]),
                                               Qt.ItemDataRole.DecorationRole)
        self.click_class_combo.setCurrentIndex(min(max(keep, 0), classes - 1))
        self.click_class_combo.blockSignals(False)
        if self.kind == "toy":
            if len(X):
                lo, hi = X.min(axis=0), X.max(axis=0)
                span = np.maximum(hi - lo, 1e-6)
                pad = 0.12 * span.max()
                cx, cy = (lo + hi) / 2
                half = span.max() / 2 + pad
                self.grid = (cx - half, cx + half, cy - half, cy + half)
            self._draw_points()
            x0, x1, y0, y1 = self.grid
            self.data_plot.getPlotItem().setRange(xRange=(x0, x1), yRange=(y0, y1), padding=0)
        else:
            self.image_box.setRange(0, max(len(Xv) - 1, 0))
        self.builder.blockSignals(True)
        self.builder.set_data_shape(tuple(X.shape[1:]), 10 if self.kind == "digits" else classes)
        self.builder.blockSignals(False)
        self._rebuild()

    def _show_stats(self) -> None:
        s = self.standardizer
        parts = [f"{len(self.split[0])} train · {len(self.split[2])} validation"]
        if s is None:
            parts.append("raw inputs (not standardised)")
        elif s.mean.ndim == 1:
            mean = ", ".join(f"{v:+.3f}" for v in s.mean)
            std = ", ".join(f"{v:.3f}" for v in s.std)
            parts.append(f"mean = ({mean})\nstd  = ({std})")
        else:
            parts.append(f"mean image: {s.mean.min():.2f} … {s.mean.max():.2f} (per pixel)\n"
                         f"std per channel = {', '.join(f'{v:.3f}' for v in s.std)}")
        self.stats_label.setText("\n".join(parts))

    def _draw_points(self) -> None:
        Xtr, ytr, Xv, yv = self.split_raw
        for key, X, y in (("train", Xtr, ytr), ("val", Xv, yv)):
            brushes = [pg.mkBrush(CLASS_COLOURS[int(c) % len(CLASS_COLOURS)]) for c in y]
            self.point_items[key].setData(x=X[:, 0] if len(X) else [], y=X[:, 1] if len(X) else [], brush=brushes)

    def _on_data_clicked(self, ev) -> None:
        if self.kind != "toy":
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

    # ================================================================================================== training
    def _on_stack_changed(self) -> None:
        self._rebuild_timer.start()

    def _on_training_setting_changed(self, *_: object) -> None:
        if self.iteration == 0 and self._state in ("idle", "none"):
            self._rebuild_timer.start()
        else:
            self.settings_note.show()

    def _on_optimizer_changed(self, name: str) -> None:
        while self.hyper_form.rowCount():
            self.hyper_form.removeRow(0)
        self.hyper_boxes = {}
        self.lr_box.blockSignals(True)
        self.lr_box.setValue(LR_DEFAULTS.get(name, OPTIMIZERS[name].defaults.get("lr", 0.01))
                             if self.kind == "toy" else 0.003 if name in ("Adam", "AdamW", "RMSProp") else 0.03)
        self.lr_box.blockSignals(False)
        defaults = {"weight_decay": 0.0, **OPTIMIZERS[name].defaults}
        for key, label, kind in HYPER_FIELDS.get(name, ()):
            if key in ("beta1", "beta2"):
                value = defaults["betas"][0 if key == "beta1" else 1]
            else:
                value = defaults.get(key, 0.0)
            if kind == "bool":
                w = QCheckBox()
                w.setChecked(bool(value))
                w.toggled.connect(self._on_training_setting_changed)
            elif kind in ("log", "decay"):
                w = LogSpinBox(float(value) if value else 1e-4, 1e-12, 10.0)
                if kind == "decay":
                    w.setMinimum(0.0)
                    w.setSpecialValueText("0")
                w.setValue(float(value))
                w.valueChanged.connect(self._on_training_setting_changed)
            else:
                w = QDoubleSpinBox()
                w.setRange(0.0, 0.9999)
                w.setDecimals(4)
                w.setSingleStep(0.01)
                w.setValue(float(value))
                w.setKeyboardTracking(False)
                w.valueChanged.connect(self._on_training_setting_changed)
            self.hyper_boxes[key] = w
            self.hyper_form.addRow(label, w)
        self._on_training_setting_changed()

    def _optimizer_kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {}
        betas = [None, None]
        for key, w in self.hyper_boxes.items():
            v = w.isChecked() if isinstance(w, QCheckBox) else float(w.value())
            if key in ("beta1", "beta2"):
                betas[0 if key == "beta1" else 1] = v
            else:
                kw[key] = v
        if betas[0] is not None:
            kw["betas"] = (betas[0], betas[1])
        return kw

    def _on_schedule_changed(self, name: str) -> None:
        while self.schedule_form.rowCount():
            self.schedule_form.removeRow(0)
        self.schedule_boxes = {}
        if name != "none":
            for p in SCHEDULES[name].params:
                if p.integer:
                    w = QSpinBox()
                    w.setRange(0, int(min(p.high, 2**31 - 1)))
                    if p.name == "total_steps":
                        w.setSpecialValueText("auto (whole run)")
                        w.setValue(0)
                    else:
                        w.setValue(int(p.default))
                else:
                    w = QDoubleSpinBox()
                    w.setRange(p.low, p.high)
                    w.setDecimals(4)
                    w.setSingleStep(0.05)
                    w.setValue(p.default)
                w.setKeyboardTracking(False)
                w.valueChanged.connect(self._on_training_setting_changed)
                self.schedule_boxes[p.name] = w
                self.schedule_form.addRow("  " + p.name.replace("_", " "), w)
            w = QSpinBox()
            w.setRange(0, 1_000_000)
            w.setSpecialValueText("none")
            w.setKeyboardTracking(False)
            w.valueChanged.connect(self._on_training_setting_changed)
            self.schedule_boxes["warmup_steps"] = w
            self.schedule_form.addRow("  warm-up steps", w)
        self._on_training_setting_changed()

    def _make_schedule(self, total_steps: int):
        name = self.schedule_combo.currentText()
        if name == "none":
            return None
        params: dict[str, Any] = {}
        for k, w in self.schedule_boxes.items():
            if k == "warmup_steps":
                continue
            v = w.value()
            if k == "total_steps" and v == 0:
                v = total_steps
            params[k] = v
        return make_schedule(name, float(self.lr_box.value()), warmup_steps=self.schedule_boxes["warmup_steps"].value(),
                             **params)

    def training_augmenter(self):
        """The augmentation the trainer applies to each mini-batch: the preview's label-preserving settings, or a
        mild default (shift 1 px, rotation 10°) when the preview was never opened; None when switched off."""
        if not (self.augment_check.isChecked() and self.kind == "digits"):
            return None
        dialog = getattr(self, "augment_dialog", None)
        settings = dialog.view.settings() if dialog is not None else AugmentSettings(shift=1, degrees=10.0)
        return settings.augmenter()

    def _make_session(self) -> TrainingSession | None:
        if not self.builder.is_valid() or not self.split:
            if not self.builder.is_valid():
                self._show_error(None)
            return None
        Xtr, ytr, Xv, yv = self.split
        if len(Xtr) == 0:
            raise StudioError("the training set is empty")
        seed = self.seed_box.value()
        net = self.builder.build_network(seed=seed)
        epochs = self.epochs_box.value()
        total = -(-len(Xtr) // self.batch_box.value()) * epochs
        patience = self.patience_box.value() or None
        trainer = Trainer(net, (Xtr, ytr, Xv if len(Xv) else None, yv if len(yv) else None),
                          optimizer=self.optimizer_combo.currentText(), lr=float(self.lr_box.value()),
                          schedule=self._make_schedule(total), batch_size=self.batch_box.value(), epochs=epochs,
                          patience=patience, seed=seed, augment=self.training_augmenter(),
                          **self._optimizer_kwargs())
        transform = self.standardizer.apply if self.standardizer is not None else None
        return TrainingSession(net, trainer, self.kind, net.num_classes, _CLASS_RGB, self.grid, transform)

    def _stop_worker(self) -> None:
        w = self.worker
        self.worker = None
        if w is not None:
            w.stop()
            w.wait()

    def _set_state(self, s: str) -> None:
        if s == self._state:
            self._update_buttons()
            return
        self._state = s
        self._update_buttons()
        self.training_state_changed.emit(s)

    def _update_buttons(self) -> None:
        s = self._state
        ok = s != "none"
        self.train_button.setEnabled(ok and s != "running")
        self.pause_button.setEnabled(s == "running")
        self.resume_button.setEnabled(s == "paused")
        self.step_button.setEnabled(ok and s != "running")
        self.reset_button.setEnabled(True)
        for b in (self.graph_button, self.export_button, self.save_button, self.load_button):
            b.setEnabled(ok)
        self.train_button.setText("▶ Train again" if s in ("finished", "failed") else "▶ Train")
        self.train_button.setToolTip(
            "" if s not in ("finished", "failed") else
            f"Start over from the weights loaded from {self._loaded[0]}" if self._loaded is not None else
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
        self._steps: dict[str, list[float]] = {"iteration": [], "loss": [], "accuracy": [], "lr": []}
        self._norms: list[list[float]] = []
        self._norm_names: list[str] = []
        self._epochs: dict[str, list[float]] = {k: [] for k in ("iteration", "train_loss", "train_accuracy",
                                                                "val_loss", "val_accuracy")}
        self._last_epoch = None
        self._metrics_dirty = False
        self._metrics_drawn = 0.0

    def _clear_plots(self) -> None:
        for c in self.curves.values():
            c.setData([], [])
        for c in self.grad_curves.values():
            self.grad_plot.getPlotItem().removeItem(c)
            self.grad_legend.removeItem(c)
        self.grad_curves = {}
        self.status_label.setText("")

    def _on_tick(self) -> None:
        """The one timer: drain the worker's buffer and update what changed."""
        w = self.worker
        if w is None:
            return
        upd = w.take()
        if upd.steps:
            for m in upd.steps:
                self._steps["iteration"].append(m.iteration)
                self._steps["loss"].append(m.loss)
                self._steps["accuracy"].append(m.accuracy)
                self._steps["lr"].append(m.lr)
                if not self._norm_names:
                    self._norm_names = list(m.grad_norms)
                self._norms.append([m.grad_norms[k] for k in self._norm_names])
            for m in upd.epochs:
                for k in self._epochs:
                    self._epochs[k].append(getattr(m, k))
                self._last_epoch = m
            self._metrics_dirty = True
        now = time.monotonic()
        if self._metrics_dirty and (now - self._metrics_drawn >= PLOT_INTERVAL or upd.state != "running"):
            # the four plots repaint their axes on every new range: ~10 redraws a second is smooth and cheap
            self._draw_metrics()
            self._metrics_dirty = False
            self._metrics_drawn = now
        if upd.error:
            self._show_error(upd.error)
        if upd.visuals is not None:
            self._draw_visuals(upd.visuals)
        if upd.state != self._state and upd.state != "stopped":
            self._set_state(upd.state)
        if upd.steps or upd.error or upd.visuals is not None:
            self._update_status()

    def _draw_metrics(self) -> None:
        it = np.asarray(self._steps["iteration"], np.float64)
        floor = 1e-12
        self.curves["loss"].setData(it, np.maximum(np.asarray(self._steps["loss"]), floor))
        self.curves["accuracy"].setData(it, np.asarray(self._steps["accuracy"]))
        lr = np.asarray(self._steps["lr"])
        self.curves["lr"].setData(it, lr)
        top = float(np.nanmax(lr)) if lr.size else 0.0
        if math.isfinite(top) and top > 0:
            self.lr_plot.getPlotItem().setYRange(0, top * 1.1, padding=0)
        ei = np.asarray(self._epochs["iteration"], np.float64)
        for k in ("train_loss", "val_loss"):
            v = np.asarray(self._epochs[k], np.float64)
            ok = np.isfinite(v)
            self.curves[k].setData(ei[ok], np.maximum(v[ok], floor))
        for k in ("train_accuracy", "val_accuracy"):
            v = np.asarray(self._epochs[k], np.float64)
            ok = np.isfinite(v)
            self.curves[k].setData(ei[ok], v[ok])
        norms = np.asarray(self._norms, np.float64)
        gp = self.grad_plot.getPlotItem()
        for j, name in enumerate(self._norm_names):
            c = self.grad_curves.get(name)
            if c is None:
                c = gp.plot(pen=pg.mkPen(PALETTE[j % len(PALETTE)], width=1.5), name=name)
                c.setClipToView(True)
                c.setDownsampling(auto=True, method="peak")
                self.grad_curves[name] = c
            c.setData(it, np.maximum(np.nan_to_num(norms[:, j], nan=floor), floor))

    def _update_status(self) -> None:
        notice = f" · {self._notice}" if self._notice else ""
        if not self._steps["iteration"]:
            self.status_label.setText("ready · press ▶ Train or Step" + notice)
            return
        s = self.session
        total_epochs = s.trainer.epochs if s is not None else 0
        parts = [f"iter {self._steps['iteration'][-1]}",
                 f"epoch {len(self._epochs['iteration'])}/{total_epochs}",
                 f"loss {theme.format_scalar(self._steps['loss'][-1])}"]
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
        self.visual_updates += 1
        if v.region is not None:
            x0, x1, y0, y1 = v.grid
            self.region_item.setImage(v.region, autoLevels=False)
            self.region_item.setRect(QRectF(x0, y0, x1 - x0, y1 - y0))
            return
        if v.confusion is not None:
            self._draw_confusion(v.confusion)
        if v.misclassified is not None:
            Xv_raw, yv = self.split_raw[2], self.split_raw[3]
            for k, (pic, cap) in enumerate(self.mis_labels):
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
        if v.weights is not None:
            self.filters_item.setImage(_tiles(v.weights), autoLevels=False)
            self.filters_plot.getPlotItem().setTitle(v.weights_title, size="9.5pt")
        if v.maps is not None:
            self.maps_item.setImage(_tiles(v.maps), autoLevels=False)
            self.maps_plot.getPlotItem().setTitle(v.maps_title, size="9.5pt")
        else:
            self.maps_item.clear()
            self.maps_plot.getPlotItem().setTitle("Activation maps: the network has no Conv2d layer", size="9.5pt")
        if len(self.split_raw) and len(self.split_raw[2]):
            i = v.maps_index
            self.image_preview.setPixmap(digit_pixmap(self.split_raw[2][i, 0], 48))
            self.maps_caption.setText(f"label {self.split_raw[3][i]} · predicted {v.maps_pred}")

    def _draw_confusion(self, cm: np.ndarray) -> None:
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
            if self.worker is not None:
                self.worker.request_visuals()

    def _on_image_changed(self, i: int) -> None:
        if self.worker is not None:
            self.worker.set_image_index(i)

    # ================================================================================================== files
    def _message(self, title: str, text: str) -> None:
        QMessageBox.warning(self, title, text)

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
