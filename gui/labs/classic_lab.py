"""The classic-classifiers lab (lectures 2-3): k-nearest neighbours with decision regions, digits and cross-validation,
and a linear classifier (SVM / softmax) trained live on 2-D points or on the digits, in the style of the cs231n web demo.

A thin view over simulator.labs.classic_lab.ClassicLabModel: the controls are built from its declared settings,
edits go to the model, and each panel redraws on its model's ``changed``. One JobRunner for the lab runs the
``prepare`` job (the digits through scikit-learn, the loss kernels through Numba: until it is done the digits and the
linear classifier's Step/Run say they are preparing), the kNN region maps and the cross-validation. The linear
classifier's Run is an animation: one QTimer asks the model for a few SGD steps per tick and redraws once per tick.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QImage, QPixmap
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QFormLayout, QGridLayout, QHBoxLayout, QHeaderView,
                               QLabel, QProgressBar, QPushButton, QSizePolicy, QSplitter, QStackedWidget, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)

from gui import plotting, theme
from gui.forms import ParamForm
from gui.jobs import JobRunner
from gui.labs.common import (CLASS_COLOURS, ERROR_STYLE, MUTED_STYLE, FlowSplitter, LazyPage, control_column,
                             digit_pixmap, group, muted, size_to_current_page)
from gui.tab_widget import TabWidget
from simulator.core.errors import StudioError
from simulator.labs.classic_lab import (DIGITS, ClassicLabModel, CvSettings, KnnDataSettings, KnnLabModel,
                                        KnnSettings, LinearLabModel, LinearSettings)
from simulator.labs.classifiers import decision_grid

__all__ = ["DIGITS", "ClassicLab", "KnnPanel", "LinearPanel"]

REGION_MIX = 0.22          # share of the class colour in a region's tint
GRID_RES = 200
TEMPLATE_PX = 104
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


class _TemplatesPage(QWidget):
    """The ten class templates in a 5 x 2 grid, each as large as the page's width allows (64 to TEMPLATE_PX a
    side): a narrow window shrinks them rather than the table beside them."""

    def __init__(self, labels: list[QLabel]):
        super().__init__()
        self._labels = labels

    def minimumSizeHint(self):  # noqa: N802  (Qt's name)
        hint = super().minimumSizeHint()
        side = self._labels[0].width() if self._labels else 0
        return QSize(max(0, hint.width() - 5 * max(0, side - 64)), hint.height())

    def resizeEvent(self, event) -> None:  # noqa: N802  (Qt's name)
        margins = self.layout().contentsMargins() if self.layout() is not None else None
        room = event.size().width() - (margins.left() + margins.right() if margins else 0) - 4 * 10
        side = max(64, min(TEMPLATE_PX, room // 5))
        for img in self._labels:
            if img.width() != side:
                img.setFixedSize(side, side)
        super().resizeEvent(event)


# ================================================================================================== kNN

def _fit_width(scroll) -> None:
    """A control column never narrower than its contents (it only scrolls vertically, so it must not clip them)."""
    need = scroll.widget().minimumSizeHint().width() + scroll.verticalScrollBar().sizeHint().width()
    scroll.setMinimumWidth(max(scroll.minimumWidth(), need))

class KnnPanel(QWidget):
    """k-nearest neighbours: regions on 2-D toy data (click to add a point, right-click to remove the nearest), the
    k nearest training images of a digit, and k-fold cross-validation over k.

    Children for tests: data_form (dataset_combo, noise_box, points_box), new_sample_button, class_combo, knn_form
    (k_box, distance_combo), cv_form (folds_box, kmax_box), cv_button, cv_progress, cv_label, stack, plot,
    region_item, points_item, query_box, random_query_button, query_label, neighbour_labels, cv_plot, cv_fold_item,
    cv_mean_item, cv_best_item. ``model``: the KnnLabModel (X, y, region, cv_result live there).
    """

    regions_ready = Signal()
    cv_ready = Signal()

    def __init__(self, model: KnnLabModel, runner: JobRunner, parent: QWidget | None = None):
        super().__init__(parent)
        self.model = model
        self.runner = runner
        self._view = (-1.5, 1.5, -1.5, 1.5)
        self._drawn_data: tuple | None = None
        self._cv_key: tuple | None = None           # the data a running cross-validation is about
        self._redraw_timer = QTimer(self)
        self._redraw_timer.setSingleShot(True)
        self._redraw_timer.setInterval(40)
        self._redraw_timer.timeout.connect(self._start_regions)
        self._build()
        self.model.changed.connect(self._on_model_changed)
        self._on_model_changed()

    # ---- the model's state, for tests and callers
    X = property(lambda self: self.model.X)
    y = property(lambda self: self.model.y)
    num_classes = property(lambda self: self.model.num_classes)
    region = property(lambda self: self.model.region)
    cv_result = property(lambda self: self.model.cv_result)
    is_digits = property(lambda self: self.model.is_digits)
    k = property(lambda self: self.model.k)
    distance = property(lambda self: self.model.distance)

    # ---------------------------------------------------------------------------------------------- construction
    def _build(self) -> None:
        self.data_form = ParamForm(KnnDataSettings)
        wd = self.data_form.widgets
        self.dataset_combo, self.noise_box, self.points_box = wd["dataset"], wd["noise"], wd["points"]
        self.points_box.setSingleStep(50)
        self.data_form.edited.connect(self._on_data_edited)
        self.new_sample_button = QPushButton("New sample")
        self.new_sample_button.clicked.connect(self.model.new_sample)
        self.class_combo = QComboBox()
        self.knn_form = ParamForm(KnnSettings)
        self.k_box, self.distance_combo = self.knn_form.widgets["k"], self.knn_form.widgets["distance"]
        self.knn_form.edited.connect(self._on_knn_edited)
        self.cv_form = ParamForm(CvSettings)
        self.folds_box, self.kmax_box = self.cv_form.widgets["folds"], self.cv_form.widgets["kmax"]
        self.cv_form.edited.connect(self._on_cv_edited)
        self.cv_button = QPushButton("Cross-validate")
        self.cv_progress = QProgressBar()
        self.cv_progress.setMaximumHeight(12)
        self.cv_progress.setTextVisible(False)
        self.cv_progress.hide()
        self.cv_label = muted("")
        self.cv_button.clicked.connect(self.start_cross_validation)

        data = QVBoxLayout()
        data.addWidget(self.data_form)
        clicks = QFormLayout()
        clicks.setContentsMargins(0, 0, 0, 0)
        clicks.addRow("", self.new_sample_button)
        clicks.addRow("Click adds", self.class_combo)
        data.addLayout(clicks)
        self.data_hint = muted("Left-click the plot to add a point of the chosen class; right-click removes the "
                               "nearest point.")
        data.addWidget(self.data_hint)
        model = QVBoxLayout()
        model.addWidget(self.knn_form)
        self.model_hint = muted("Ties: equally distant points in stored order; equal votes go to the class of the "
                                "nearer neighbour.")
        model.addWidget(self.model_hint)
        cv = QVBoxLayout()
        cv.addWidget(self.cv_form)
        cv.addWidget(self.cv_button)
        cv.addWidget(self.cv_progress)
        cv.addWidget(self.cv_label)
        controls = control_column([group("Data", data), group("k-nearest neighbours", model),
                                   group("Cross-validation", cv)], min_width=330)
        _fit_width(controls)

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
        pi.getViewBox().sigRangeChanged.connect(lambda *_: self._schedule_regions())
        self.plot.setMinimumSize(QSize(320, 260))

        # ---- digits
        self.query_box = self._query_spin()
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
        query_panel = QWidget()             # as wide as the query needs: the neighbours get the rest
        query_panel.setLayout(qcol)
        query_panel.setMaximumWidth(240)
        qcol.setContentsMargins(0, 0, 0, 0)
        dl.addWidget(query_panel)
        ncol = QVBoxLayout()
        self.neighbours_title = QLabel("Nearest training images")
        self.neighbours_title.setObjectName("SectionHeader")
        self.neighbours_title.setWordWrap(True)
        ncol.addWidget(self.neighbours_title)
        self._neighbour_grid = QGridLayout()
        self._neighbour_grid.setSpacing(6)
        ncol.addLayout(self._neighbour_grid)
        ncol.addStretch(1)
        neighbours_panel = QWidget()
        neighbours_panel.setLayout(ncol)
        ncol.setContentsMargins(0, 0, 0, 0)
        neighbours_panel.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        dl.addWidget(neighbours_panel, 1)
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
        cp.setXRange(1, CvSettings().kmax)              # an empty plot shows the axes a result will have
        cp.setYRange(0, 1)
        self.cv_fold_item = pg.ScatterPlotItem(size=5, pen=None, brush=pg.mkBrush(90, 100, 115, 110))
        self.cv_mean_item = pg.PlotDataItem(pen=pg.mkPen(theme.ACCENT_HEX, width=2), symbol="o", symbolSize=6,
                                            symbolBrush=theme.ACCENT_HEX, symbolPen=None)
        self.cv_err_item = pg.PlotDataItem(connect="pairs", pen=pg.mkPen(theme.ACCENT_HEX, width=1.2))
        self.cv_best_item = pg.ScatterPlotItem(symbol="star", size=18, pen=pg.mkPen("#5c4400", width=1),
                                               brush=pg.mkBrush("#ffd23f"))
        self.cv_best_text = pg.TextItem(anchor=(0.5, 1.3), color=theme.INK_HEX)
        for it in (self.cv_fold_item, self.cv_err_item, self.cv_mean_item, self.cv_best_item, self.cv_best_text):
            cp.addItem(it)
        self.cv_plot.setMinimumHeight(160)

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

    @staticmethod
    def _query_spin():
        from PySide6.QtWidgets import QSpinBox
        box = QSpinBox()
        box.setKeyboardTracking(False)
        return box

    # ---------------------------------------------------------------------------------------------- edits
    def is_busy(self) -> bool:
        return (self.runner.running("regions") or self._redraw_timer.isActive() or self.runner.running("cv"))

    def digits_split(self) -> tuple[np.ndarray, ...] | None:
        """(train images, train labels, validation images, validation labels), or None while loading."""
        return self.model.digits

    def add_point(self, x: float, y: float, label: int) -> None:
        self.model.add_point(x, y, label)

    def remove_nearest(self, x: float, y: float) -> None:
        self.model.remove_nearest(x, y)

    def _on_data_edited(self) -> None:
        data = self.data_form.try_value()
        if data is None:
            return
        if data.dataset != self.model.data.dataset:
            self.model.choose_dataset(data.dataset)
        else:
            self.model.set_data(data)

    def _on_knn_edited(self) -> None:
        s = self.knn_form.try_value()
        if s is not None:
            self.model.set_settings(s)

    def _on_cv_edited(self) -> None:
        s = self.cv_form.try_value()
        if s is not None:
            self.model.set_cv(s)

    def _on_plot_clicked(self, ev) -> None:
        if self.model.is_digits:
            return
        vb = self.plot.getPlotItem().getViewBox()
        if not vb.sceneBoundingRect().contains(ev.scenePos()):
            return
        p = vb.mapSceneToView(ev.scenePos())
        if ev.button() == Qt.MouseButton.LeftButton:
            self.model.add_point(p.x(), p.y(), max(0, self.class_combo.currentIndex()))
            ev.accept()
        elif ev.button() == Qt.MouseButton.RightButton:
            self.model.remove_nearest(p.x(), p.y())
            ev.accept()

    def _on_random_query(self) -> None:
        rng = np.random.default_rng()
        self.query_box.setValue(int(rng.integers(0, self.query_box.maximum() + 1)))

    # ---------------------------------------------------------------------------------------------- model -> view
    def _data_key(self) -> tuple:
        m = self.model
        return (id(m.X), len(m.X), m.data, m.sample)

    def _on_model_changed(self) -> None:
        m = self.model
        if self.runner.running("cv") and self._data_key() != self._cv_key:
            # the points changed under a running cross-validation: its result would describe data that is gone
            self.runner.cancel("cv", notify=False)
            self.cv_progress.hide()
        self.data_form.set_value(m.data)
        self.knn_form.set_value(m.settings)
        self.cv_form.set_value(m.cv)
        digits = m.is_digits
        self.stack.setCurrentIndex(1 if digits else 0)
        for w in (self.data_form.widgets["noise"], self.points_box, self.new_sample_button, self.class_combo,
                  self.data_hint):
            w.setEnabled(not digits)
        key = (id(m.X), m.data, m.sample)
        if not digits and key != self._drawn_data:     # new points: refit the view to them
            self._drawn_data = key
            self._sync_class_combo()
            lo, hi = m.X.min(axis=0), m.X.max(axis=0)
            pad = 0.12 * float(max(hi - lo))
            self._view = (lo[0] - pad, hi[0] + pad, lo[1] - pad, hi[1] + pad)
            self.plot.getPlotItem().setRange(xRange=self._view[:2], yRange=self._view[2:], padding=0)
        if not digits:
            brushes = plotting.brushes_by_class(m.y, CLASS_COLOURS)
            self.points_item.setData(m.X[:, 0], m.X[:, 1], brush=brushes)
            if m.region is None:
                self._schedule_regions()
        else:
            self._update_digits()
        self._update_cv_button()
        self._draw_cv()

    def _sync_class_combo(self) -> None:
        n = self.model.num_classes
        if self.class_combo.count() == n:
            return
        self.class_combo.blockSignals(True)
        self.class_combo.clear()
        for c in range(n):
            self.class_combo.addItem(f"class {c}")
            self.class_combo.setItemData(c, QColor(CLASS_COLOURS[c]), Qt.ItemDataRole.DecorationRole)
        self.class_combo.blockSignals(False)

    # ---------------------------------------------------------------------------------------------- regions
    def _schedule_regions(self) -> None:
        if not self.model.is_digits:
            self._redraw_timer.start()

    def _start_regions(self) -> None:
        if self.model.is_digits:
            return
        try:
            job = self.model.regions_job(_visible(self.plot, self._view), GRID_RES)
        except StudioError as exc:
            self._show_error(str(exc))
            return
        self.runner.start("regions", lambda: job, on_done=self._on_regions_done,
                          on_error=lambda _e, text: self._show_error(text))

    def _on_regions_done(self, result: Any) -> None:
        self.model.set_regions(result)
        Z, (x0, x1, y0, y1) = result
        self.region_item.setImage(region_rgb(Z), autoLevels=False, levels=(0, 255))
        self.region_item.setRect(x0, y0, x1 - x0, y1 - y0)
        self.regions_ready.emit()

    def _show_error(self, text: str) -> None:
        self.cv_label.setText(text)
        self.cv_label.setStyleSheet(ERROR_STYLE)

    # ---------------------------------------------------------------------------------------------- digits
    def _update_digits(self, *_: Any) -> None:
        m = self.model
        if not m.is_digits:
            return
        if m.digits is None:
            self.query_label.setText("Preparing the digits (scikit-learn)…")
            self.neighbours_title.setText("Nearest training images")
            self.query_box.setEnabled(False)
            self.random_query_button.setEnabled(False)
            return
        self.query_box.setEnabled(True)
        self.random_query_button.setEnabled(True)
        Xtr, ytr, Xv, yv = m.digits
        if self.query_box.maximum() != len(Xv) - 1:
            self.query_box.blockSignals(True)
            self.query_box.setRange(0, len(Xv) - 1)
            self.query_box.blockSignals(False)
        r = m.digit_query(int(self.query_box.value()))
        self.query_image.setPixmap(digit_pixmap(r["image"], 112))
        ok = r["prediction"] == r["label"]
        colour = theme.VALUE_HEX if ok else theme.GRAD_HEX
        self.query_label.setText(f"true label <b>{r['label']}</b><br>kNN says <b style='color:{colour}'>"
                                 f"{r['prediction']}</b> ({'right' if ok else 'wrong'})")
        k = len(r["neighbours"])
        self.neighbours_title.setText(f"The {k} nearest training image{'s' if k > 1 else ''} "
                                      f"({m.distance.upper()} distance on the 64 pixel values)")
        while len(self.neighbour_labels) < k:
            img, cap = QLabel(), QLabel()
            img.setFixedSize(72, 72)
            cap.setAlignment(Qt.AlignmentFlag.AlignHCenter)
            cap.setFont(theme.font(8.5, mono=True))
            n = len(self.neighbour_labels)
            cols = 6
            self._neighbour_grid.addWidget(img, 2 * (n // cols), n % cols)
            self._neighbour_grid.addWidget(cap, 2 * (n // cols) + 1, n % cols)
            self.neighbour_labels.append((img, cap))
        for n, (img, cap) in enumerate(self.neighbour_labels):
            visible = n < k
            img.setVisible(visible)
            cap.setVisible(visible)
            if visible:
                img.setPixmap(digit_pixmap(r["neighbour_images"][n], 72))
                lab = int(r["neighbour_labels"][n])
                same = lab == r["label"]
                cap.setText(f"<span style='color:{theme.VALUE_HEX if same else theme.GRAD_HEX}'><b>{lab}</b>"
                            f"</span> d={r['distances'][n]:.4g}")

    # ---------------------------------------------------------------------------------------------- CV
    def start_cross_validation(self) -> None:
        try:
            job = self.model.cross_validation()
        except StudioError:
            self._update_cv_button()            # refused the same way as the disabled button says
            return
        folds = self.model.cv.folds
        self._cv_key = self._data_key()
        self.cv_progress.setRange(0, folds)
        self.cv_progress.setValue(0)
        self.cv_progress.show()
        self.cv_button.setEnabled(False)
        self.cv_label.setStyleSheet(MUTED_STYLE)
        self.cv_label.setText(f"Cross-validating k = 1…{self.model.cv.kmax} over {folds} folds…")
        self.runner.start("cv", lambda: job, on_yield=lambda p: self.cv_progress.setValue(p.done),
                          on_done=self._on_cv_done, on_error=self._on_cv_failed)

    def _update_cv_button(self) -> None:
        """Cross-validate needs at least one point per fold (and no cross-validation running)."""
        why = self.model.cv_refusal()
        self.cv_button.setEnabled(not why and not self.runner.running("cv"))
        self.cv_button.setToolTip(why)
        if not self.runner.running("cv") and self.model.cv_result is None and self.cv_label.styleSheet() != ERROR_STYLE:
            self.cv_label.setText(f"Cross-validation runs on the {self.model.cv_points()} training images."
                                  if self.model.is_digits else
                                  "Split the data into folds; each fold is validated once on a model trained on "
                                  "the others.")

    def _on_cv_failed(self, _exc: BaseException, text: str) -> None:
        self.cv_progress.hide()
        self._update_cv_button()
        self.cv_label.setStyleSheet(ERROR_STYLE)
        self.cv_label.setText(text)

    def _on_cv_done(self, result: Any) -> None:
        self.cv_progress.hide()
        self.cv_label.setStyleSheet(MUTED_STYLE)
        self.model.set_cv_result(result)
        self.cv_ready.emit()

    def _draw_cv(self) -> None:
        best = self.model.best_k()
        if best is None:
            for it in (self.cv_fold_item, self.cv_mean_item, self.cv_best_item, self.cv_err_item):
                it.setData([], [])
            self.cv_best_text.setText("")
            return
        ks, acc = self.model.cv_result
        mean, std = acc.mean(axis=1), acc.std(axis=1)
        folds = acc.shape[1]
        self.cv_fold_item.setData(np.repeat(ks, folds).astype(float), acc.ravel())
        self.cv_mean_item.setData(ks.astype(float), mean)
        self.cv_err_item.setData(np.repeat(ks.astype(float), 2), np.c_[mean - std, mean + std].ravel())
        k, m, s = best
        self.cv_best_item.setData([float(k)], [m])
        self.cv_best_text.setText(f"best k = {k}")
        self.cv_best_text.setPos(float(k), m)
        self.cv_plot.getPlotItem().enableAutoRange()
        self.cv_label.setText(f"Best k = {k}: mean accuracy {m:.3f} ± {s:.3f} over {folds} folds (dots: single "
                              f"folds; bars: ±1 std).")

    def close_panel(self) -> None:
        self._redraw_timer.stop()


# ================================================================================================== linear
class LinearPanel(QWidget):
    """A linear classifier trained live: SVM or softmax loss, L2 regularisation, plain SGD at a learning rate.

    On 2-D data (3 classes): the regions where each class scores highest, each class's line w_c . x + b_c = 0 and an
    arrow along w_c (the direction in which its score grows), the points, and a table of every example's scores and
    loss term. On digits: each class's weights as an 8x8 template.

    Children for tests: form (data_combo, loss_combo, reg_box, lr_box, steps_box), step_button, run_button,
    reset_button, loss_label, accuracy_label, table, table_caption, stack, plot, region_item, points_item,
    line_items, arrow_items, template_labels (template_arrays: the 8x8 weights shown). ``model``: LinearLabModel.
    """

    stepped = Signal()

    def __init__(self, model: LinearLabModel, parent: QWidget | None = None):
        super().__init__(parent)
        self.model = model
        self.kernels_ready = False
        self._view = (-1.25, 1.25, -1.25, 1.25)
        self._in_redraw = False
        self._shown_data: str | None = None
        self._timer = QTimer(self)
        self._timer.setInterval(30)
        self._timer.timeout.connect(self._on_tick)
        self._build()
        self.model.changed.connect(self._on_model_changed)
        self._on_model_changed()

    clf = property(lambda self: self.model.clf)
    X = property(lambda self: self.model.X)
    y = property(lambda self: self.model.y)
    is_digits = property(lambda self: self.model.is_digits)

    def show_margin_check(self) -> None:
        """'Does Δ matter?': Δ only rescales W (exactly, from a rescaled start at a rescaled rate); and the bias
        trick for the current weights."""
        try:
            r = self.model.margin_check(2.0)
        except StudioError as exc:
            self.aside_label.setText(str(exc))
            return
        self.aside_label.setText(
            f"Δ = 2 vs Δ = 1 after {r.steps} steps: W₂ = {r.ratio:.6g} × W₁ (largest deviation from 2·W₁: "
            f"{r.max_deviation:.1e}); predictions {'identical' if r.same_predictions else 'differ'}. The margin only "
            f"sets the scale of W, so Δ = 1 loses nothing (with λ > 0 it trades against λ instead).\n\n"
            + self.model.bias_trick_text())

    def _build(self) -> None:
        self.form = ParamForm(LinearSettings)
        wd = self.form.widgets
        self.data_combo, self.loss_combo, self.reg_box, self.lr_box, self.steps_box = (
            wd["data"], wd["loss"], wd["reg"], wd["lr"], wd["speed"])
        self.form.edited.connect(self._on_form_edited)
        self.step_button = QPushButton("Step")
        self.run_button = QPushButton("▶ Run")
        self.run_button.setCheckable(True)
        self.reset_button = QPushButton("⟲ Reset W, b")
        self.step_button.clicked.connect(lambda: self.train_steps(1))
        self.run_button.toggled.connect(self._on_run_toggled)
        self.reset_button.clicked.connect(self.model.reset)

        self.loss_label = QLabel()
        self.loss_label.setTextFormat(Qt.TextFormat.RichText)
        self.loss_label.setFont(theme.font(9.5, mono=True))
        self.accuracy_label = QLabel()
        self.accuracy_label.setFont(theme.font(9.5, mono=True))
        self.status_label = muted("")

        top = QVBoxLayout()
        top.addWidget(self.form)
        buttons = QHBoxLayout()
        for b in (self.step_button, self.run_button, self.reset_button):
            buttons.addWidget(b)
        top.addLayout(buttons)
        top.addWidget(self.status_label)
        status = QVBoxLayout()
        status.addWidget(self.loss_label)
        status.addWidget(self.accuracy_label)
        status.addWidget(muted("L = (1/N) Σᵢ Lᵢ + λ Σ W²   (the bias is not regularised; dL/dW gains 2λW)"))
        self.loss_formula = muted("")
        status.addWidget(self.loss_formula)
        self.margin_button = QPushButton("Does Δ matter?")
        self.margin_button.setToolTip("Train a margin-1 SVM and a margin-2 one side by side (no regularisation) and "
                                      "compare their weights and predictions")
        self.margin_button.clicked.connect(self.show_margin_check)
        self.aside_label = muted("")
        self.aside_label.setWordWrap(True)
        status.addWidget(self.margin_button)
        status.addWidget(self.aside_label)
        controls = control_column([group("Linear classifier  s = W x + b", top), group("Loss", status)],
                                  min_width=330)
        _fit_width(controls)

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
        self.plot.setMinimumSize(QSize(300, 260))
        pi.getViewBox().sigRangeChanged.connect(self._on_view_changed)

        # ---- digit templates
        self.template_labels: list[QLabel] = []
        self.template_arrays: list[np.ndarray] = [np.zeros((8, 8)) for _ in range(10)]
        templates_page = _TemplatesPage(self.template_labels)
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
            img.setScaledContents(True)         # the page sizes them to its width (_TemplatesPage)
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
        size_to_current_page(self.stack)

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
        table_box.setMinimumWidth(380)      # scores readable in every column of the 2-D sets

        # the plot (or the templates) and the table side by side when there is room, the table under them when
        # there is not (a laptop with the lesson dock open)
        self.view_splitter = FlowSplitter(side=(540, 410), stacked=(3, 2))
        self.view_splitter.addWidget(self.stack)
        self.view_splitter.addWidget(table_box)
        self.splitter = split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(controls)
        split.addWidget(self.view_splitter)
        split.setStretchFactor(1, 1)
        split.setChildrenCollapsible(False)
        split.setSizes([330, 950])
        root = QHBoxLayout(self)
        root.setContentsMargins(0, 0, 0, 0)
        root.addWidget(split)

    # ---------------------------------------------------------------------------------------------- public
    def is_running(self) -> bool:
        return self._timer.isActive()

    def set_kernels_ready(self) -> None:
        self.kernels_ready = True
        self._update_buttons()

    def train_steps(self, n: int) -> None:
        if not (self.kernels_ready and self.model.ready):
            return
        self.model.step(n)
        if self.model.diverged:
            self.run_button.setChecked(False)
        self.stepped.emit()

    # ---------------------------------------------------------------------------------------------- events
    def _on_form_edited(self) -> None:
        s = self.form.try_value()
        if s is not None:
            self.model.set_settings(s)

    def _on_view_changed(self, *_: Any) -> None:
        if not self.model.is_digits and not self._in_redraw and self.model.ready:
            self._redraw()

    def _on_run_toggled(self, on: bool) -> None:
        self.run_button.setText("❚❚ Pause" if on else "▶ Run")
        if on:
            self._timer.start()
        else:
            self._timer.stop()

    def _on_tick(self) -> None:
        self.train_steps(self.model.settings.speed)

    def _update_buttons(self) -> None:
        live = self.kernels_ready and self.model.ready
        for b in (self.step_button, self.run_button):
            b.setEnabled(live and not self.model.diverged)
        if not live:
            self.run_button.setChecked(False)
        self.status_label.setText("" if live else "Preparing the loss kernels and the digits…")

    def _on_model_changed(self) -> None:
        m = self.model
        self.form.set_value(m.settings)
        name = m.settings.data
        if name != self._shown_data or m.clf.steps == 0:
            self._shown_data = name
            self.stack.setCurrentIndex(1 if m.is_digits else 0)
            # the digits' table has 13 columns: it gets more of the room beside (or under) the templates
            self.view_splitter.set_shares(side=(1, 1) if m.is_digits else (540, 410),
                                          stacked=(1, 1) if m.is_digits else (3, 2))
            if not m.is_digits:
                self.plot.getPlotItem().setRange(xRange=self._view[:2], yRange=self._view[2:], padding=0)
            self._setup_table()
        self._update_buttons()
        if not m.ready:
            self.loss_label.setText("")
            self.accuracy_label.setText("")
            return
        self._redraw()

    # ---------------------------------------------------------------------------------------------- drawing
    def _setup_table(self) -> None:
        m = self.model
        C = m.clf.num_classes
        d2 = m.X.shape[1] == 2
        heads = (["x₁", "x₂"] if d2 else []) + ["y"] + [f"s{c}" for c in range(C)] + ["Lᵢ"]
        rows = min(TABLE_ROWS, len(m.X))
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
        shown = "every example" if rows == len(m.X) else f"the first {rows} of {len(m.X)} examples"
        self.table_caption.setText(f"Scores and loss term of {shown} (bold: the correct class's score; "
                                   f"Lᵢ in red when the example is penalised).")

    def _redraw(self) -> None:
        self._in_redraw = True
        try:
            self._redraw_now()
        finally:
            self._in_redraw = False

    def _redraw_now(self) -> None:
        m = self.model
        bd = m.breakdown()
        if m.diverged:
            self.loss_label.setText(f"<span style='color:{theme.GRAD_HEX}'>diverged: lower the learning rate and "
                                    f"reset</span>")
        else:
            self.loss_label.setText(f"L = {theme.format_scalar(bd.loss)}<br>"
                                    f"<span style='color:{theme.MUTED_HEX}'>data {theme.format_scalar(bd.data_loss)} "
                                    f"+ reg {theme.format_scalar(bd.reg_loss)}</span>")
        self.accuracy_label.setText(f"accuracy {bd.accuracy:.1%}   step {m.clf.steps}")
        self.loss_formula.setText("Lᵢ = Σ_{j≠yᵢ} max(0, s_j − s_yᵢ + 1)" if m.clf.loss == "svm"
                                  else "Lᵢ = −log( e^{s_yᵢ} / Σ_j e^{s_j} )")
        self._fill_table(bd)
        if m.is_digits:
            self._draw_templates()
        else:
            self._draw_plane(bd)

    def _fill_table(self, bd) -> None:
        m = self.model
        C = m.clf.num_classes
        d2 = m.X.shape[1] == 2
        bold, normal = QFont(self.table.font()), QFont(self.table.font())
        bold.setBold(True)
        red, ink = QColor(theme.GRAD_HEX), QColor(theme.INK_HEX)
        for r in range(self.table.rowCount()):
            vals: list[str] = []
            if d2:
                vals += [f"{m.X[r, 0]:.2f}", f"{m.X[r, 1]:.2f}"]
            vals.append(str(int(m.y[r])))
            vals += [f"{s:.2f}" for s in bd.scores[r]]
            vals.append(f"{bd.terms[r]:.3f}")
            base = 2 if d2 else 0
            for col, text in enumerate(vals):
                it = self.table.item(r, col)
                it.setText(text)
                if base + 1 <= col < base + 1 + C:
                    it.setFont(bold if col - base - 1 == m.y[r] else normal)
                if col == len(vals) - 1:
                    it.setForeground(red if bd.terms[r] >= 5e-4 else ink)   # red when it shows as non-zero
            yit = self.table.item(r, base)
            yit.setForeground(QColor(CLASS_COLOURS[int(m.y[r]) % len(CLASS_COLOURS)]))
            yit.setFont(bold)

    def _draw_plane(self, bd) -> None:
        m = self.model
        x0, x1, y0, y1 = _visible(self.plot, self._view)
        _, _, Z = decision_grid(m.clf.predict, (x0, x1), (y0, y1), 160)
        self.region_item.setImage(region_rgb(Z), autoLevels=False, levels=(0, 255))
        self.region_item.setRect(x0, y0, x1 - x0, y1 - y0)
        lines = m.clf.class_lines((x0, x1), (y0, y1))
        anchors, dirs = m.clf.score_directions()
        span = x1 - x0
        for c in range(3):
            seg = lines[c]
            if seg is None:
                self.line_items[c].setData([], [])
            else:
                self.line_items[c].setData([seg[0][0], seg[1][0]], [seg[0][1], seg[1][1]])
            norm = float(np.hypot(*dirs[c]))
            if not np.isfinite(norm) or norm < 1e-9:
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
        self.points_item.setData(m.X[:, 0], m.X[:, 1],
                                 brush=plotting.brushes_by_class(m.y, CLASS_COLOURS),
                                 pen=[plotting.pen(theme.GRAD_HEX, 2) if p != t else plotting.pen("#1f2933", 1)
                                      for p, t in zip(bd.predictions, m.y)])

    def _draw_templates(self) -> None:
        W = self.model.clf.W
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
class DimensionPanel(QWidget):
    """The curse of dimensionality for kNN: as the dimension grows, every point is about as far from a query as every
    other (the relative contrast of distances collapses), and 1-NN on a label that lives in 2 of D dimensions falls
    towards chance. Measured in a job on uniform random data (simulator.labs.classifiers.dimension_curve)."""

    measured = Signal()

    def __init__(self, runner: JobRunner, parent: QWidget | None = None):
        super().__init__(parent)
        self.runner = runner
        self.curve = None
        self.run_button = QPushButton("Measure again (new random data)")
        self.run_button.clicked.connect(lambda: self.measure(seed=self._seed + 1))
        self._seed = 0
        self.note = muted("Uniform random points in the unit cube of D dimensions. Left: (farthest − nearest) / "
                          "nearest distance from a query — near 0 means 'nearest' stops meaning anything. Right: 1-NN "
                          "on a label that depends on 2 of the D coordinates; the other D − 2 are noise that "
                          "drowns it. kNN needs data that fill the space, and their number grows exponentially "
                          "with D.")
        self.note.setWordWrap(True)
        self.contrast_plot, self.acc_plot = _plot(), _plot()
        for plot, title, left in ((self.contrast_plot, "Distance contrast", "(max − min) / min"),
                                  (self.acc_plot, "1-NN accuracy, label in 2 of D dims", "accuracy")):
            pi = plot.getPlotItem()
            pi.setTitle(title, size="10pt")
            pi.setLabel("bottom", "dimensions D (log)")
            pi.setLabel("left", left)
            pi.setLogMode(x=True, y=plot is self.contrast_plot)
            pi.showGrid(x=True, y=True, alpha=0.15)
        self.acc_plot.getPlotItem().setYRange(0.4, 1.02, padding=0)
        self.contrast_curve = self.contrast_plot.plot(pen=pg.mkPen(theme.GRAD_HEX, width=2), symbol="o",
                                                      symbolSize=6, symbolBrush=theme.GRAD_HEX)
        self.acc_curve = self.acc_plot.plot(pen=pg.mkPen(theme.ACCENT_HEX, width=2), symbol="o", symbolSize=6,
                                            symbolBrush=theme.ACCENT_HEX)
        chance = pg.InfiniteLine(0.5, angle=0, pen=pg.mkPen("#9aa0a6", style=Qt.PenStyle.DashLine),
                                 label="chance", labelOpts={"position": 0.9, "color": "#5b6270"})
        self.acc_plot.addItem(chance)
        plots = QHBoxLayout()
        plots.addWidget(self.contrast_plot)
        plots.addWidget(self.acc_plot)
        lay = QVBoxLayout(self)
        lay.addWidget(self.note)
        lay.addLayout(plots, 1)
        lay.addWidget(self.run_button, 0, Qt.AlignmentFlag.AlignLeft)

    def measure(self, seed: int = 0) -> None:
        from simulator.labs.classifiers import dimension_curve
        self._seed = seed
        self.run_button.setEnabled(False)

        def job():
            yield None
            return dimension_curve(seed=seed)
        self.runner.start("dimensions", job, on_done=self._show, on_error=lambda _e, text: self.note.setText(text))

    def _show(self, c) -> None:
        self.curve = c
        ticks = [[(float(np.log10(d)), str(int(d))) for d in c.dims], []]     # the measured D's, not 3·10¹ crowds
        for plot in (self.contrast_plot, self.acc_plot):
            plot.getPlotItem().getAxis("bottom").setTicks(ticks)
        self.contrast_curve.setData(c.dims.astype(float), c.contrast)
        self.acc_curve.setData(c.dims.astype(float), c.accuracy)
        self.run_button.setEnabled(True)
        self.measured.emit()


class ClassicLab(QWidget):
    """Classic classifiers: "Nearest neighbours", "Linear classifier" and "Curse of dimensionality" sub-tabs (knn,
    linear, dimensions) over one ClassicLabModel (``model``) and one JobRunner (``runner``). ``ready`` fires once the
    prepare job is done. The last two are built when first shown or first asked for (``linear_page`` and
    ``dimensions_page`` are their tabs): about 0.15 s of the lab's first open."""

    ready = Signal()

    def __init__(self, parent: QWidget | None = None, model: ClassicLabModel | None = None):
        super().__init__(parent)
        self.model = model or ClassicLabModel()
        self.runner = JobRunner(self)
        self._prepared: bool | str | None = None       # the prepare job: True done, a message if it failed
        self.tabs = TabWidget()
        self.tabs.setDocumentMode(True)
        self.knn = KnnPanel(self.model.knn, self.runner)
        self.linear_page = LazyPage(self._make_linear)
        self.dimensions_page = LazyPage(lambda: DimensionPanel(self.runner))
        self.tabs.addTab(self.knn, "Nearest neighbours")
        self.tabs.addTab(self.linear_page, "Linear classifier")
        self.tabs.addTab(self.dimensions_page, "Curse of dimensionality")
        self.tabs.currentChanged.connect(
            lambda i: self.dimensions.measure() if self.tabs.widget(i) is self.dimensions_page and
            self.dimensions.curve is None and not self.runner.running("dimensions") else None)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.tabs)
        # after the first paint: the job's imports (scikit-learn) would otherwise compete with building the window
        QTimer.singleShot(0, self, lambda: self.runner.start("prepare", self.model.prepare, on_done=self._on_prepared,
                                                             on_error=self._on_prepare_failed))

    @property
    def linear(self) -> LinearPanel:
        return self.linear_page.page()

    @property
    def dimensions(self) -> DimensionPanel:
        return self.dimensions_page.page()

    def is_ready(self) -> bool:
        return self.model.ready

    def _make_linear(self) -> LinearPanel:
        panel = LinearPanel(self.model.linear)
        self._show_prepared(panel)
        return panel

    def _show_prepared(self, panel: LinearPanel) -> None:
        if self._prepared is True:
            panel.set_kernels_ready()
        elif isinstance(self._prepared, str):
            panel.status_label.setText(f"Could not prepare the digits and kernels: {self._prepared}")
            panel.status_label.setStyleSheet(ERROR_STYLE)

    def _on_prepared(self, digits) -> None:
        self.model.set_prepared(digits)
        self._prepared = True
        if self.linear_page.is_built:
            self._show_prepared(self.linear)
        self.ready.emit()

    def _on_prepare_failed(self, _exc: BaseException, text: str) -> None:
        self._prepared = text
        if self.linear_page.is_built:
            self._show_prepared(self.linear)
        self.knn.query_label.setText(f"Could not load the digits: {text}")

    def close_lab(self) -> None:
        """Stop the training timer and the background jobs."""
        self.knn.close_panel()
        if self.linear_page.is_built:
            self.linear.close_panel()
        self.runner.close()

    def closeEvent(self, event) -> None:  # noqa: N802
        self.close_lab()
        super().closeEvent(event)
