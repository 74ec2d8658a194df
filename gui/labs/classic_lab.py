"""The classic-classifiers lab (lectures 2-3): k-nearest neighbours with decision regions, digits and cross-validation,
and a linear classifier (SVM / softmax) trained live on 2-D points or on the digits, in the style of the cs231n web demo.

The model is simulator.labs.classifiers (no Qt). Region maps of kNN and cross-validation run in worker QThreads (results
tagged with a generation number, stale ones dropped); the linear classifier trains on one QTimer, a few SGD steps per
tick, and redraws once per tick.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QImage, QPixmap
from PySide6.QtWidgets import (QAbstractItemView, QButtonGroup, QComboBox, QDoubleSpinBox, QFormLayout, QGridLayout,
                               QHBoxLayout, QHeaderView, QLabel, QProgressBar, QPushButton, QRadioButton,
                               QSlider, QSpinBox, QSplitter, QStackedWidget, QTableWidget,
                               QTableWidgetItem, QTabWidget, QVBoxLayout, QWidget)

from gui import theme
from gui.labs.common import CLASS_COLOURS, ERROR_STYLE, MUTED_STYLE, Jobs, control_column, digit_pixmap, group, muted
from gui.forms import LogSpinBox
from simulator.data import datasets
from simulator.labs.classifiers import (DEMO_X, DEMO_Y, KNearestNeighbor, LinearClassifier, cross_validate_k,
                                   decision_grid)

__all__ = ["ClassicLab", "KnnPanel", "LinearPanel"]

REGION_MIX = 0.22          # share of the class colour in a region's tint
GRID_RES = 200
TEMPLATE_PX = 104
TOY_NAMES = ("spiral", "circles", "xor", "moons", "blobs")
DIGITS = "digits (8x8 images)"
TABLE_ROWS = 30


def _rgb(hex_colour: str) -> np.ndarray:
    c = QColor(hex_colour)
    return np.array([c.red(), c.green(), c.blue()], dtype=np.float64)


_CLASS_RGB = np.array([_rgb(c) for c in CLASS_COLOURS])
_TINT_RGB = np.round(255.0 + REGION_MIX * (_CLASS_RGB - 255.0)).astype(np.uint8)


def region_rgb(Z: np.ndarray) -> np.ndarray:
    """Class indices (nx, ny) -> light tints (nx, ny, 3) uint8."""
    return _TINT_RGB[np.asarray(Z) % len(_TINT_RGB)]


def rgb_pixmap(rgb: np.ndarray, size: int) -> QPixmap:
    rgb = np.ascontiguousarray(rgb)
    h, w = rgb.shape[:2]
    qimg = QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
    return QPixmap.fromImage(qimg.scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio,
                                         Qt.TransformationMode.FastTransformation))


def _visible(plot: pg.PlotWidget, fallback: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    """The plot's visible data rectangle (x0, x1, y0, y1): region maps fill the whole view, whatever its aspect."""
    (x0, x1), (y0, y1) = plot.getPlotItem().getViewBox().viewRange()
    if not (np.isfinite([x0, x1, y0, y1]).all() and x1 > x0 and y1 > y0):
        return fallback
    return float(x0), float(x1), float(y0), float(y1)


def _plot(title: str = "") -> pg.PlotWidget:
    w = pg.PlotWidget(background="w")
    p = w.getPlotItem()
    p.setMenuEnabled(False)
    p.getViewBox().setMenuEnabled(False)
    p.hideButtons()
    if title:
        p.setTitle(title, size="10pt", color=theme.INK_HEX)
    return w


# ================================================================================================== kNN
class KnnPanel(QWidget):
    """k-nearest neighbours: regions on 2-D toy data (click to add a point, right-click to remove the nearest), the
    k nearest training images of a digit, and k-fold cross-validation over k.

    Children for tests: dataset_combo, noise_slider, points_box, new_sample_button, class_combo, k_box,
    distance_l1, distance_l2, folds_box, kmax_box, cv_button, cv_progress, cv_label, stack, plot, region_item,
    points_item, query_box, random_query_button, query_label, neighbour_labels, cv_plot, cv_fold_item, cv_mean_item,
    cv_best_item. State: X, y (2-D data), region (last map), cv_result (ks, acc).
    """

    regions_ready = Signal()
    cv_ready = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.X = np.zeros((0, 2))
        self.y = np.zeros(0, np.int64)
        self.num_classes = 3
        self.region: np.ndarray | None = None
        self.cv_result: tuple[np.ndarray, np.ndarray] | None = None
        self._seed = 0
        self._digits: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
        self._view = (-1.5, 1.5, -1.5, 1.5)
        self._grid_jobs = Jobs(self, self._on_regions_done, self._on_job_failed)
        self._cv_jobs = Jobs(self, self._on_cv_done, self._on_cv_failed, self._on_cv_progress)
        self._cv_running = False
        self._redraw_timer = QTimer(self)
        self._redraw_timer.setSingleShot(True)
        self._redraw_timer.setInterval(40)
        self._redraw_timer.timeout.connect(self._start_regions)
        self._build()
        self._on_dataset_changed()

    # ---------------------------------------------------------------------------------------------- construction
    def _build(self) -> None:
        self.dataset_combo = QComboBox()
        self.dataset_combo.addItems([*TOY_NAMES, DIGITS])
        self.noise_slider = QSlider(Qt.Orientation.Horizontal)
        self.noise_slider.setRange(0, 60)
        self.noise_slider.setValue(20)
        self.noise_label = QLabel("0.20")
        self.noise_label.setMinimumWidth(36)
        self.points_box = QSpinBox()
        self.points_box.setRange(10, 2000)
        self.points_box.setValue(200)
        self.points_box.setSingleStep(50)
        self.points_box.setKeyboardTracking(False)
        self.new_sample_button = QPushButton("New sample")
        self.class_combo = QComboBox()
        self.dataset_combo.currentTextChanged.connect(self._on_dataset_changed)
        self.noise_slider.valueChanged.connect(self._on_noise_changed)
        self.points_box.valueChanged.connect(self._regenerate)
        self.new_sample_button.clicked.connect(self._on_new_sample)

        self.k_box = QSpinBox()
        self.k_box.setRange(1, 50)
        self.k_box.setValue(1)
        self.distance_l1 = QRadioButton("L1 (Manhattan)")
        self.distance_l2 = QRadioButton("L2 (Euclidean)")
        self.distance_l2.setChecked(True)
        self._distance_group = QButtonGroup(self)
        self._distance_group.addButton(self.distance_l1)
        self._distance_group.addButton(self.distance_l2)
        self.k_box.valueChanged.connect(self._on_model_changed)
        self.distance_l1.toggled.connect(self._on_model_changed)

        self.folds_box = QSpinBox()
        self.folds_box.setRange(2, 10)
        self.folds_box.setValue(5)
        self.kmax_box = QSpinBox()
        self.kmax_box.setRange(2, 50)
        self.kmax_box.setValue(25)
        self.cv_button = QPushButton("Cross-validate")
        self.cv_progress = QProgressBar()
        self.cv_progress.setMaximumHeight(12)
        self.cv_progress.setTextVisible(False)
        self.cv_progress.hide()
        self.cv_label = muted("Split the data into folds; each fold is validated once on a model trained on the "
                               "others.")
        self.cv_button.clicked.connect(self.start_cross_validation)
        self.folds_box.valueChanged.connect(self._update_cv_button)

        data = QFormLayout()
        data.addRow("Data set", self.dataset_combo)
        noise_row = QHBoxLayout()
        noise_row.addWidget(self.noise_slider, 1)
        noise_row.addWidget(self.noise_label)
        self._noise_row = QWidget()
        self._noise_row.setLayout(noise_row)
        noise_row.setContentsMargins(0, 0, 0, 0)
        data.addRow("Noise", self._noise_row)
        data.addRow("Points", self.points_box)
        data.addRow("", self.new_sample_button)
        data.addRow("Click adds", self.class_combo)
        self.data_hint = muted("Left-click the plot to add a point of the chosen class; right-click removes the "
                                "nearest point.")
        data.addRow(self.data_hint)

        model = QFormLayout()
        model.addRow("k", self.k_box)
        model.addRow("Distance", self.distance_l1)
        model.addRow("", self.distance_l2)
        self.model_hint = muted("Ties: equally distant points in stored order; equal votes go to the class of the "
                                 "nearer neighbour.")
        model.addRow(self.model_hint)

        cv = QFormLayout()
        cv.addRow("Folds", self.folds_box)
        cv.addRow("k from 1 to", self.kmax_box)
        cv.addRow(self.cv_button)
        cv.addRow(self.cv_progress)
        cv.addRow(self.cv_label)

        controls = control_column([group("Data", data), group("k-nearest neighbours", model),
                                   group("Cross-validation", cv)], min_width=300)

        # ---- 2-D regions
        self.plot = _plot()
        pi = self.plot.getPlotItem()
        pi.setAspectLocked(True)
        pi.setLabel("bottom", "x₁")
        pi.setLabel("left", "x₂")
        self.region_item = pg.ImageItem(axisOrder="col-major")
        self.region_item.setZValue(-10)
        pi.addItem(self.region_item)
        self.points_item = pg.ScatterPlotItem(size=8, pen=pg.mkPen("#ffffff", width=1.0))
        self.points_item.setZValue(10)
        pi.addItem(self.points_item)
        self.plot.scene().sigMouseClicked.connect(self._on_plot_clicked)
        pi.getViewBox().sigRangeChanged.connect(lambda *_: self._on_model_changed())
        self.plot.setMinimumSize(QSize(380, 320))

        # ---- digits
        self.query_box = QSpinBox()
        self.query_box.setKeyboardTracking(False)
        self.random_query_button = QPushButton("Random")
        self.query_image = QLabel()
        self.query_image.setFixedSize(112, 112)
        self.query_label = QLabel()
        self.query_label.setWordWrap(True)
        self.query_box.valueChanged.connect(self._update_digits)
        self.random_query_button.clicked.connect(self._on_random_query)
        digits_page = QWidget()
        dl = QHBoxLayout(digits_page)
        qcol = QVBoxLayout()
        head = QLabel("Query (validation image)")
        head.setObjectName("SectionHeader")
        qcol.addWidget(head)
        qrow = QHBoxLayout()
        qrow.addWidget(self.query_box)
        qrow.addWidget(self.random_query_button)
        qcol.addLayout(qrow)
        qcol.addWidget(self.query_image)
        qcol.addWidget(self.query_label)
        qcol.addStretch(1)
        dl.addLayout(qcol)
        ncol = QVBoxLayout()
        self.neighbours_title = QLabel("Nearest training images")
        self.neighbours_title.setObjectName("SectionHeader")
        ncol.addWidget(self.neighbours_title)
        self._neighbour_grid = QGridLayout()
        self._neighbour_grid.setSpacing(6)
        ncol.addLayout(self._neighbour_grid)
        ncol.addStretch(1)
        dl.addLayout(ncol, 1)
        self.neighbour_labels: list[tuple[QLabel, QLabel]] = []

        self.stack = QStackedWidget()
        self.stack.addWidget(self.plot)
        self.stack.addWidget(digits_page)

        # ---- cross-validation plot
        self.cv_plot = _plot("Cross-validation accuracy")
        cp = self.cv_plot.getPlotItem()
        cp.setLabel("bottom", "k")
        cp.setLabel("left", "accuracy")
        cp.showGrid(x=True, y=True, alpha=0.15)
        self.cv_fold_item = pg.ScatterPlotItem(size=5, pen=None, brush=pg.mkBrush(90, 100, 115, 110))
        self.cv_mean_item = pg.PlotDataItem(pen=pg.mkPen(theme.ACCENT_HEX, width=2), symbol="o", symbolSize=6,
                                            symbolBrush=theme.ACCENT_HEX, symbolPen=None)
        self.cv_err_item = pg.PlotDataItem(connect="pairs", pen=pg.mkPen(theme.ACCENT_HEX, width=1.2))
        self.cv_best_item = pg.ScatterPlotItem(symbol="star", size=18, pen=pg.mkPen("#5c4400", width=1),
                                               brush=pg.mkBrush("#ffd23f"))
        self.cv_best_text = pg.TextItem(anchor=(0.5, 1.3), color=theme.INK_HEX)
        for it in (self.cv_fold_item, self.cv_err_item, self.cv_mean_item, self.cv_best_item, self.cv_best_text):
            cp.addItem(it)
        self.cv_plot.setMinimumHeight(190)

        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self.stack)
        right.addWidget(self.cv_plot)
        right.setStretchFactor(0, 3)
        right.setStretchFactor(1, 1)
        right.setSizes([560, 240])
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(controls)
        split.addWidget(right)
        split.setStretchFactor(1, 1)
        split.setSizes([320, 1000])
        root = QHBoxLayout(self)
        root.setContentsMargins(0, 0, 0, 0)
        root.addWidget(split)

    # ---------------------------------------------------------------------------------------------- state
    @property
    def is_digits(self) -> bool:
        return self.dataset_combo.currentText() == DIGITS

    @property
    def k(self) -> int:
        return self.k_box.value()

    @property
    def distance(self) -> str:
        return "l1" if self.distance_l1.isChecked() else "l2"

    def is_busy(self) -> bool:
        return self._grid_jobs.busy() or self._redraw_timer.isActive() or self._cv_jobs.busy()

    def digits_split(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(train images, train labels, validation images, validation labels): an 80/20 stratified split."""
        if self._digits is None:
            images, labels = datasets.load_digits()
            self._digits = datasets.train_val_split(images, labels, val_fraction=0.2, seed=0)
        return self._digits

    def add_point(self, x: float, y: float, label: int) -> None:
        self.X = np.vstack([self.X, [[x, y]]])
        self.y = np.append(self.y, np.int64(label))
        self._data_changed(refit_view=False)

    def remove_nearest(self, x: float, y: float) -> None:
        if len(self.X) <= 1:
            return
        i = int(np.argmin(np.hypot(self.X[:, 0] - x, self.X[:, 1] - y)))
        self.X = np.delete(self.X, i, axis=0)
        self.y = np.delete(self.y, i)
        self._data_changed(refit_view=False)

    # ---------------------------------------------------------------------------------------------- data
    def _on_dataset_changed(self, *_: Any) -> None:
        digits = self.is_digits
        self.stack.setCurrentIndex(1 if digits else 0)
        for w in (self._noise_row, self.points_box, self.new_sample_button, self.class_combo, self.data_hint):
            w.setEnabled(not digits)
        self.cv_result = None
        self._clear_cv_plot()
        if digits:
            Xtr, ytr, Xv, yv = self.digits_split()
            self.query_box.setRange(0, len(Xv) - 1)
            self.cv_label.setText(f"Cross-validation runs on the {len(Xtr)} training images.")
            self._update_cv_button()
            self._update_digits()
        else:
            name = self.dataset_combo.currentText()
            default_noise = {"spiral": 0.2, "circles": 0.1, "xor": 0.1, "moons": 0.15, "blobs": 0.5}[name]
            self.noise_slider.blockSignals(True)
            self.noise_slider.setValue(int(round(default_noise * 100)))
            self.noise_slider.blockSignals(False)
            self.noise_label.setText(f"{default_noise:.2f}")
            self.cv_label.setText("Split the data into folds; each fold is validated once on a model trained on "
                                  "the others.")
            self._regenerate()

    def _on_noise_changed(self, v: int) -> None:
        self.noise_label.setText(f"{v / 100:.2f}")
        self._regenerate()

    def _on_new_sample(self) -> None:
        self._seed += 1
        self._regenerate()

    def _regenerate(self, *_: Any) -> None:
        if self.is_digits:
            return
        name = self.dataset_combo.currentText()
        kw: dict[str, Any] = {"n": self.points_box.value(), "seed": self._seed}
        noise = self.noise_slider.value() / 100
        kw["std" if name == "blobs" else "noise"] = noise if name != "blobs" else max(noise, 0.01)
        X, y = datasets.make_toy(name, **kw)
        self.X, self.y = X, y
        self.num_classes = int(y.max()) + 1
        self.class_combo.blockSignals(True)
        self.class_combo.clear()
        for c in range(self.num_classes):
            self.class_combo.addItem(f"class {c}")
            self.class_combo.setItemData(c, QColor(CLASS_COLOURS[c]), Qt.ItemDataRole.DecorationRole)
        self.class_combo.blockSignals(False)
        self._data_changed(refit_view=True)

    def _data_changed(self, refit_view: bool) -> None:
        if refit_view:
            lo, hi = self.X.min(axis=0), self.X.max(axis=0)
            pad = 0.12 * float(max(hi - lo))
            self._view = (lo[0] - pad, hi[0] + pad, lo[1] - pad, hi[1] + pad)
            self.plot.getPlotItem().setRange(xRange=self._view[:2], yRange=self._view[2:], padding=0)
        brushes = [pg.mkBrush(CLASS_COLOURS[c % len(CLASS_COLOURS)]) for c in self.y]
        self.points_item.setData(self.X[:, 0], self.X[:, 1], brush=brushes)
        self.cv_result = None
        self._clear_cv_plot()
        self._update_cv_button()
        self._on_model_changed()

    # ---------------------------------------------------------------------------------------------- regions
    def _on_model_changed(self, *_: Any) -> None:
        if self.is_digits:
            self._update_digits()
        else:
            self._redraw_timer.start()

    def _start_regions(self) -> None:
        X, y, k, dist, C = self.X.copy(), self.y.copy(), self.k, self.distance, self.num_classes
        x0, x1, y0, y1 = _visible(self.plot, self._view)

        def job(progress, cancelled):
            knn = KNearestNeighbor(k, dist).train(X, y, num_classes=C)
            xs, ys, Z = decision_grid(knn.predict, (x0, x1), (y0, y1), GRID_RES)
            return Z, (x0, x1, y0, y1)

        self._grid_jobs.start(job)

    def _on_regions_done(self, result: Any) -> None:
        Z, (x0, x1, y0, y1) = result
        self.region = Z
        self.region_item.setImage(region_rgb(Z), autoLevels=False, levels=(0, 255))
        self.region_item.setRect(x0, y0, x1 - x0, y1 - y0)
        self.regions_ready.emit()

    def _on_job_failed(self, msg: str) -> None:
        self.cv_label.setText(msg)
        self.cv_label.setStyleSheet(ERROR_STYLE)

    def _on_plot_clicked(self, ev) -> None:
        if self.is_digits:
            return
        vb = self.plot.getPlotItem().getViewBox()
        if not vb.sceneBoundingRect().contains(ev.scenePos()):
            return
        p = vb.mapSceneToView(ev.scenePos())
        if ev.button() == Qt.MouseButton.LeftButton:
            self.add_point(p.x(), p.y(), max(0, self.class_combo.currentIndex()))
            ev.accept()
        elif ev.button() == Qt.MouseButton.RightButton:
            self.remove_nearest(p.x(), p.y())
            ev.accept()

    # ---------------------------------------------------------------------------------------------- digits
    def _on_random_query(self) -> None:
        rng = np.random.default_rng()
        self.query_box.setValue(int(rng.integers(0, self.query_box.maximum() + 1)))

    def _update_digits(self, *_: Any) -> None:
        if not self.is_digits:
            return
        Xtr, ytr, Xv, yv = self.digits_split()
        q = int(self.query_box.value())
        knn = KNearestNeighbor(self.k, self.distance).train(Xtr, ytr, num_classes=10)
        idx = knn.neighbours(Xv[q], self.k)
        d = knn.distances(Xv[q].reshape(1, -1))[0, idx]
        pred = int(knn.predict(Xv[q].reshape(1, -1))[0])
        self.query_image.setPixmap(digit_pixmap(Xv[q], 112))
        ok = pred == yv[q]
        colour = theme.VALUE_HEX if ok else theme.GRAD_HEX
        self.query_label.setText(f"true label <b>{yv[q]}</b><br>kNN says <b style='color:{colour}'>{pred}</b> "
                                 f"({'right' if ok else 'wrong'})")
        self.neighbours_title.setText(f"The {self.k} nearest training image{'s' if self.k > 1 else ''} "
                                      f"({self.distance.upper()} distance on the 64 pixel values)")
        while len(self.neighbour_labels) < len(idx):
            img, cap = QLabel(), QLabel()
            img.setFixedSize(72, 72)
            cap.setAlignment(Qt.AlignmentFlag.AlignHCenter)
            cap.setFont(theme.font(8.5, mono=True))
            n = len(self.neighbour_labels)
            cols = 8
            self._neighbour_grid.addWidget(img, 2 * (n // cols), n % cols)
            self._neighbour_grid.addWidget(cap, 2 * (n // cols) + 1, n % cols)
            self.neighbour_labels.append((img, cap))
        for n, (img, cap) in enumerate(self.neighbour_labels):
            visible = n < len(idx)
            img.setVisible(visible)
            cap.setVisible(visible)
            if visible:
                i = int(idx[n])
                img.setPixmap(digit_pixmap(Xtr[i], 72))
                same = ytr[i] == yv[q]
                cap.setText(f"<span style='color:{theme.VALUE_HEX if same else theme.GRAD_HEX}'><b>{ytr[i]}</b>"
                            f"</span> d={d[n]:.4g}")

    # ---------------------------------------------------------------------------------------------- CV
    def start_cross_validation(self) -> None:
        if self.is_digits:
            X, y = self.digits_split()[:2]
        else:
            X, y = self.X.copy(), self.y.copy()
        folds = self.folds_box.value()
        if len(X) < folds:                  # the button is disabled then; a direct call is refused the same way
            self._update_cv_button()
            return
        ks = np.arange(1, self.kmax_box.value() + 1)
        dist = self.distance
        self.cv_progress.setRange(0, folds)
        self.cv_progress.setValue(0)
        self.cv_progress.show()
        self._cv_running = True
        self.cv_button.setEnabled(False)
        self.cv_label.setStyleSheet(MUTED_STYLE)
        self.cv_label.setText(f"Cross-validating k = 1…{ks[-1]} over {folds} folds…")

        def job(progress, cancelled):
            return ks, cross_validate_k(X, y, ks, folds=folds, distance=dist, seed=0, progress=progress,
                                        cancelled=cancelled)

        self._cv_jobs.start(job)

    def _on_cv_progress(self, done: int, total: int) -> None:
        self.cv_progress.setValue(done)

    def _cv_points(self) -> int:
        return len(self.digits_split()[0]) if self.is_digits else len(self.X)

    def _update_cv_button(self, *_: Any) -> None:
        """Cross-validate needs at least one point per fold (and no cross-validation running)."""
        n, folds = self._cv_points(), self.folds_box.value()
        enough = n >= folds
        self.cv_button.setEnabled(enough and not self._cv_running)
        self.cv_button.setToolTip("" if enough else
                                  f"{folds} folds need at least {folds} points; there {'is' if n == 1 else 'are'} "
                                  f"{n}. Add points or lower the folds.")

    def _on_cv_failed(self, msg: str) -> None:
        self.cv_progress.hide()
        self._cv_running = False
        self._update_cv_button()
        self.cv_label.setStyleSheet(ERROR_STYLE)
        self.cv_label.setText(msg)

    def _on_cv_done(self, result: Any) -> None:
        ks, acc = result
        self.cv_progress.hide()
        self._cv_running = False
        self._update_cv_button()
        self.cv_result = (ks, acc)
        mean, std = acc.mean(axis=1), acc.std(axis=1)
        folds = acc.shape[1]
        self.cv_fold_item.setData(np.repeat(ks, folds).astype(float), acc.ravel())
        self.cv_mean_item.setData(ks.astype(float), mean)
        self.cv_err_item.setData(np.repeat(ks.astype(float), 2), np.c_[mean - std, mean + std].ravel())
        best = int(np.argmax(mean))        # the smallest k among equally good ones
        self.cv_best_item.setData([float(ks[best])], [mean[best]])
        self.cv_best_text.setText(f"best k = {ks[best]}")
        self.cv_best_text.setPos(float(ks[best]), mean[best])
        self.cv_plot.getPlotItem().enableAutoRange()
        self.cv_label.setStyleSheet(MUTED_STYLE)
        self.cv_label.setText(f"Best k = {ks[best]}: mean accuracy {mean[best]:.3f} ± {std[best]:.3f} over "
                              f"{folds} folds (dots: single folds; bars: ±1 std).")
        self.cv_ready.emit()

    def _clear_cv_plot(self) -> None:
        for it in (self.cv_fold_item, self.cv_mean_item, self.cv_best_item, self.cv_err_item):
            it.setData([], [])
        self.cv_best_text.setText("")

    def close_panel(self) -> None:
        self._redraw_timer.stop()
        self._grid_jobs.close()
        self._cv_jobs.close()


# ================================================================================================== linear
LINEAR_SETS = ("cs231n demo (9 points)", "blobs (3 classes)", "spiral (3 classes)", DIGITS)


class LinearPanel(QWidget):
    """A linear classifier trained live: SVM or softmax loss, L2 regularisation, plain SGD at a learning rate.

    On 2-D data (3 classes): the regions where each class scores highest, each class's line w_c . x + b_c = 0 and an
    arrow along w_c (the direction in which its score grows), the points, and a table of every example's scores and
    loss term. On digits: each class's weights as an 8x8 template.

    Children for tests: data_combo, loss_combo, reg_box, lr_box, steps_box, step_button, run_button, reset_button,
    loss_label, accuracy_label, table, table_caption, stack, plot, region_item, points_item, line_items, arrow_items,
    template_labels (template_arrays: the 8x8 weights shown). State: clf, X, y.
    """

    stepped = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.X = DEMO_X.copy()
        self.y = DEMO_Y.copy()
        self.clf = LinearClassifier(2, 3)
        self._view = (-1.0, 1.0, -1.0, 1.0)
        self._in_redraw = False
        self._timer = QTimer(self)
        self._timer.setInterval(30)
        self._timer.timeout.connect(self._on_tick)
        self._build()
        self._on_data_changed()

    def _build(self) -> None:
        self.data_combo = QComboBox()
        self.data_combo.addItems(LINEAR_SETS)
        self.loss_combo = QComboBox()
        self.loss_combo.addItems(["Multiclass SVM", "Softmax"])
        self.reg_box = QDoubleSpinBox()
        self.reg_box.setRange(0.0, 10.0)
        self.reg_box.setDecimals(4)
        self.reg_box.setSingleStep(0.01)
        self.reg_box.setValue(0.1)
        self.reg_box.setKeyboardTracking(False)
        self.lr_box = LogSpinBox(0.1, 1e-5, 10.0)
        self.steps_box = QSpinBox()
        self.steps_box.setRange(1, 100)
        self.steps_box.setValue(1)
        self.steps_box.setSuffix(" steps/frame")
        self.step_button = QPushButton("Step")
        self.run_button = QPushButton("▶ Run")
        self.run_button.setCheckable(True)
        self.reset_button = QPushButton("⟲ Reset W, b")
        self.data_combo.currentTextChanged.connect(self._on_data_changed)
        self.loss_combo.currentIndexChanged.connect(self._on_hyper_changed)
        self.reg_box.valueChanged.connect(self._on_hyper_changed)
        self.step_button.clicked.connect(lambda: self.train_steps(1))
        self.run_button.toggled.connect(self._on_run_toggled)
        self.reset_button.clicked.connect(self._on_reset)

        self.loss_label = QLabel()
        self.loss_label.setTextFormat(Qt.TextFormat.RichText)
        self.loss_label.setFont(theme.font(9.5, mono=True))
        self.accuracy_label = QLabel()
        self.accuracy_label.setFont(theme.font(9.5, mono=True))

        form = QFormLayout()
        form.addRow("Data", self.data_combo)
        form.addRow("Loss", self.loss_combo)
        form.addRow("Regularisation λ", self.reg_box)
        form.addRow("Learning rate", self.lr_box)
        form.addRow("Speed", self.steps_box)
        buttons = QHBoxLayout()
        for b in (self.step_button, self.run_button, self.reset_button):
            buttons.addWidget(b)
        form.addRow(buttons)
        status = QVBoxLayout()
        status.addWidget(self.loss_label)
        status.addWidget(self.accuracy_label)
        status.addWidget(muted("L = (1/N) Σᵢ Lᵢ + λ Σ W²   (the bias is not regularised; dL/dW gains 2λW)"))
        self.loss_formula = muted("")
        status.addWidget(self.loss_formula)
        controls = control_column([group("Linear classifier  s = W x + b", form), group("Loss", status)], min_width=300)

        # ---- 2-D plot
        self.plot = _plot()
        pi = self.plot.getPlotItem()
        pi.setAspectLocked(True)
        pi.setLabel("bottom", "x₁")
        pi.setLabel("left", "x₂")
        pi.showGrid(x=True, y=True, alpha=0.12)
        self.region_item = pg.ImageItem(axisOrder="col-major")
        self.region_item.setZValue(-10)
        pi.addItem(self.region_item)
        self.line_items: list[pg.PlotDataItem] = []
        self.shaft_items: list[pg.PlotDataItem] = []
        self.arrow_items: list[pg.ArrowItem] = []
        for c in range(3):
            colour = CLASS_COLOURS[c]
            line = pg.PlotDataItem(pen=pg.mkPen(colour, width=2.2))
            shaft = pg.PlotDataItem(pen=pg.mkPen(colour, width=2.2))
            arrow = pg.ArrowItem(angle=0, headLen=13, tipAngle=32, baseAngle=10, pen=pg.mkPen(colour),
                                 brush=pg.mkBrush(colour))
            for it in (line, shaft, arrow):
                it.setZValue(5)
                pi.addItem(it)
            self.line_items.append(line)
            self.shaft_items.append(shaft)
            self.arrow_items.append(arrow)
        self.points_item = pg.ScatterPlotItem(size=11, pen=pg.mkPen("#1f2933", width=1.2))
        self.points_item.setZValue(10)
        pi.addItem(self.points_item)
        self.plot.setMinimumSize(QSize(360, 300))
        pi.getViewBox().sigRangeChanged.connect(self._on_view_changed)

        # ---- digit templates
        self.template_labels: list[QLabel] = []
        self.template_arrays: list[np.ndarray] = [np.zeros((8, 8)) for _ in range(10)]
        templates_page = QWidget()
        tl = QVBoxLayout(templates_page)
        tl.setContentsMargins(12, 8, 12, 8)
        tl.addWidget(muted("Each class's weights W[:, c] as an 8x8 template (red: positive, blue: negative, one "
                            "colour scale for all). The score of an image is its dot product with the template, "
                            "plus b_c."))
        grid = QGridLayout()
        grid.setSpacing(10)
        for c in range(10):
            cell = QVBoxLayout()
            img = QLabel()
            img.setFixedSize(TEMPLATE_PX, TEMPLATE_PX)
            img.setStyleSheet("border: 1px solid #dde1e7;")
            cap = QLabel(f"class {c}")
            cap.setAlignment(Qt.AlignmentFlag.AlignHCenter)
            cell.addWidget(img, 0, Qt.AlignmentFlag.AlignHCenter)
            cell.addWidget(cap)
            grid.addLayout(cell, c // 5, c % 5)
            self.template_labels.append(img)
        tl.addLayout(grid)
        tl.addStretch(1)

        self.stack = QStackedWidget()
        self.stack.addWidget(self.plot)
        self.stack.addWidget(templates_page)

        # ---- table
        self.table = QTableWidget(0, 0)
        self.table.verticalHeader().setDefaultSectionSize(22)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.setFont(theme.font(9, mono=True))
        self.table.setAlternatingRowColors(True)
        self.table_caption = muted("")
        table_box = QWidget()
        tb = QVBoxLayout(table_box)
        tb.setContentsMargins(4, 4, 4, 4)
        tb.addWidget(self.table_caption)
        tb.addWidget(self.table, 1)

        self.splitter = split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(controls)
        split.addWidget(self.stack)
        split.addWidget(table_box)
        split.setStretchFactor(1, 3)
        split.setStretchFactor(2, 2)
        split.setSizes([320, 620, 460])
        root = QHBoxLayout(self)
        root.setContentsMargins(0, 0, 0, 0)
        root.addWidget(split)

    # ---------------------------------------------------------------------------------------------- public
    @property
    def is_digits(self) -> bool:
        return self.data_combo.currentText() == DIGITS

    def is_running(self) -> bool:
        return self._timer.isActive()

    def train_steps(self, n: int) -> None:
        lr = float(self.lr_box.value())
        with np.errstate(over="ignore", invalid="ignore"):
            for _ in range(n):
                self.clf.step(self.X, self.y, lr)
        if not (np.all(np.isfinite(self.clf.W)) and np.all(np.isfinite(self.clf.b))):
            self.run_button.setChecked(False)
            self.loss_label.setText(f"<span style='color:{theme.GRAD_HEX}'>diverged: lower the learning rate and "
                                    f"reset</span>")
            return
        self._redraw()
        self.stepped.emit()

    # ---------------------------------------------------------------------------------------------- events
    def _on_data_changed(self, *_: Any) -> None:
        name = self.data_combo.currentText()
        if name == DIGITS:
            images, labels = datasets.load_digits()
            X = images.reshape(len(images), -1) / 16.0
            self.X = X - X.mean(axis=0)           # centred pixels (cs231n's mean-image subtraction)
            self.y = labels
            C = 10
            if self.lr_box.value() > 0.5:
                self.lr_box.setValue(0.1)
        else:
            if name.startswith("cs231n"):
                X, y = DEMO_X.copy(), DEMO_Y.copy()
            elif name.startswith("blobs"):
                X, y = datasets.make_toy("blobs", n=60, classes=3, std=0.7, seed=1)
            else:
                X, y = datasets.make_toy("spiral", n=90, classes=3, noise=0.15, seed=1)
            self.X = X / np.abs(X).max()           # inside [-1, 1], the demo's range
            self.y = y
            C = 3
            self._view = (-1.25, 1.25, -1.25, 1.25)
            self.plot.getPlotItem().setRange(xRange=self._view[:2], yRange=self._view[2:], padding=0)
            brushes = [pg.mkBrush(CLASS_COLOURS[c]) for c in self.y]
            self.points_item.setData(self.X[:, 0], self.X[:, 1], brush=brushes)
        self.stack.setCurrentIndex(1 if name == DIGITS else 0)
        total = sum(self.splitter.sizes()) or 1400
        left = self.splitter.sizes()[0] or 320
        table_w = 730 if name == DIGITS else 460
        self.splitter.setSizes([left, max(200, total - left - table_w), table_w])
        self.clf = LinearClassifier(self.X.shape[1], C, loss=self._loss_name(), reg=float(self.reg_box.value()),
                                    seed=0, weight_scale=0.5 if C == 3 else 0.01)
        self._setup_table()
        self._redraw()

    def _loss_name(self) -> str:
        return "svm" if self.loss_combo.currentIndex() == 0 else "softmax"

    def _on_hyper_changed(self, *_: Any) -> None:
        self.clf.loss = self._loss_name()
        self.clf.reg = float(self.reg_box.value())
        self._redraw()

    def _on_view_changed(self, *_: Any) -> None:
        if not self.is_digits and not self._in_redraw:
            self._redraw()

    def _on_reset(self) -> None:
        self._on_data_changed()

    def _on_run_toggled(self, on: bool) -> None:
        self.run_button.setText("❚❚ Pause" if on else "▶ Run")
        if on:
            self._timer.start()
        else:
            self._timer.stop()

    def _on_tick(self) -> None:
        self.train_steps(self.steps_box.value())

    # ---------------------------------------------------------------------------------------------- drawing
    def _setup_table(self) -> None:
        C = self.clf.num_classes
        d2 = self.X.shape[1] == 2
        heads = (["x₁", "x₂"] if d2 else []) + ["y"] + [f"s{c}" for c in range(C)] + ["Lᵢ"]
        rows = min(TABLE_ROWS, len(self.X))
        self.table.clear()
        self.table.setColumnCount(len(heads))
        self.table.setRowCount(rows)
        self.table.setHorizontalHeaderLabels(heads)
        hh = self.table.horizontalHeader()
        hh.setSectionResizeMode(QHeaderView.ResizeMode.Stretch if len(heads) <= 8
                                else QHeaderView.ResizeMode.ResizeToContents)
        hh.setMinimumSectionSize(30)
        for r in range(rows):
            for col in range(len(heads)):
                it = QTableWidgetItem()
                it.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(r, col, it)
        shown = "every example" if rows == len(self.X) else f"the first {rows} of {len(self.X)} examples"
        self.table_caption.setText(f"Scores and loss term of {shown} (bold: the correct class's score; "
                                   f"Lᵢ in red when the example is penalised).")

    def _redraw(self) -> None:
        self._in_redraw = True
        try:
            self._redraw_now()
        finally:
            self._in_redraw = False

    def _redraw_now(self) -> None:
        bd = self.clf.breakdown(self.X, self.y)
        lname = "SVM" if self.clf.loss == "svm" else "softmax"
        self.loss_label.setText(f"L = {theme.format_scalar(bd.loss)}<br>"
                                f"<span style='color:{theme.MUTED_HEX}'>data {theme.format_scalar(bd.data_loss)} "
                                f"+ reg {theme.format_scalar(bd.reg_loss)}</span>")
        self.accuracy_label.setText(f"accuracy {bd.accuracy:.1%}   step {self.clf.steps}")
        self.loss_formula.setText("Lᵢ = Σ_{j≠yᵢ} max(0, s_j − s_yᵢ + 1)" if lname == "SVM"
                                  else "Lᵢ = −log( e^{s_yᵢ} / Σ_j e^{s_j} )")
        self._fill_table(bd)
        if self.is_digits:
            self._draw_templates()
        else:
            self._draw_plane(bd)

    def _fill_table(self, bd) -> None:
        C = self.clf.num_classes
        d2 = self.X.shape[1] == 2
        bold, normal = QFont(self.table.font()), QFont(self.table.font())
        bold.setBold(True)
        red, ink = QColor(theme.GRAD_HEX), QColor(theme.INK_HEX)
        for r in range(self.table.rowCount()):
            vals: list[str] = []
            if d2:
                vals += [f"{self.X[r, 0]:.2f}", f"{self.X[r, 1]:.2f}"]
            vals.append(str(int(self.y[r])))
            vals += [f"{s:.2f}" for s in bd.scores[r]]
            vals.append(f"{bd.terms[r]:.3f}")
            base = 2 if d2 else 0
            for col, text in enumerate(vals):
                it = self.table.item(r, col)
                it.setText(text)
                if base + 1 <= col < base + 1 + C:
                    it.setFont(bold if col - base - 1 == self.y[r] else normal)
                if col == len(vals) - 1:
                    it.setForeground(red if bd.terms[r] >= 5e-4 else ink)   # red when it shows as non-zero
            yit = self.table.item(r, base)
            yit.setForeground(QColor(CLASS_COLOURS[int(self.y[r]) % len(CLASS_COLOURS)]))
            yit.setFont(bold)

    def _draw_plane(self, bd) -> None:
        x0, x1, y0, y1 = _visible(self.plot, self._view)
        _, _, Z = decision_grid(self.clf.predict, (x0, x1), (y0, y1), 160)
        self.region_item.setImage(region_rgb(Z), autoLevels=False, levels=(0, 255))
        self.region_item.setRect(x0, y0, x1 - x0, y1 - y0)
        lines = self.clf.class_lines((x0, x1), (y0, y1))
        anchors, dirs = self.clf.score_directions()
        span = x1 - x0
        for c in range(3):
            seg = lines[c]
            if seg is None:
                self.line_items[c].setData([], [])
            else:
                self.line_items[c].setData([seg[0][0], seg[1][0]], [seg[0][1], seg[1][1]])
            norm = float(np.hypot(*dirs[c]))
            if norm < 1e-9:
                self.shaft_items[c].setData([], [])
                self.arrow_items[c].hide()
                continue
            a = np.clip(anchors[c], [x0, y0], [x1, y1])   # keep the arrow on screen when the line is off it
            length = min(0.25 * norm, 0.3 * span)
            tip = a + dirs[c] / norm * length
            self.shaft_items[c].setData([a[0], tip[0]], [a[1], tip[1]])
            self.arrow_items[c].setPos(tip[0], tip[1])
            self.arrow_items[c].setStyle(angle=180.0 - float(np.degrees(np.arctan2(dirs[c][1], dirs[c][0]))))
            self.arrow_items[c].show()
        self.points_item.setData(self.X[:, 0], self.X[:, 1],
                                 brush=[pg.mkBrush(CLASS_COLOURS[c]) for c in self.y],
                                 pen=[pg.mkPen(theme.GRAD_HEX if p != t else "#1f2933", width=2 if p != t else 1)
                                      for p, t in zip(bd.predictions, self.y)])

    def _draw_templates(self) -> None:
        W = self.clf.W
        scale = float(np.max(np.abs(W))) or 1.0
        for c, img in enumerate(self.template_labels):
            t = W[:, c].reshape(8, 8)
            self.template_arrays[c] = t.copy()
            # one shared scale so templates compare; diverging_rgb scales by the max of what it is given
            rgb = theme.diverging_rgb(np.append(t.ravel(), scale))[:-1].reshape(8, 8, 3)
            img.setPixmap(rgb_pixmap(rgb, TEMPLATE_PX))

    def close_panel(self) -> None:
        self._timer.stop()


# ================================================================================================== the lab
class ClassicLab(QWidget):
    """Classic classifiers: "Nearest neighbours" and "Linear classifier" sub-tabs (knn, linear)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.knn = KnnPanel()
        self.linear = LinearPanel()
        self.tabs.addTab(self.knn, "Nearest neighbours")
        self.tabs.addTab(self.linear, "Linear classifier")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.tabs)

    def close_lab(self) -> None:
        """Stop the training timer and wait for background jobs."""
        self.knn.close_panel()
        self.linear.close_panel()

    def closeEvent(self, event) -> None:  # noqa: N802
        self.close_lab()
        super().closeEvent(event)
