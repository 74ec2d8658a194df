"""The interpretability lab (lectures 8-9): saliency, occlusion, class visualisation, adversarial examples and
embeddings of a trained image classifier, drawn from simulator.labs.interpret (no numbers are computed here).

Long work (training the quick digits model, class visualisation, t-SNE, the robustness curve) runs in ``Job``
QThreads that only store their latest progress and result; ONE QTimer polls the jobs and redraws, so nothing is
redrawn per training step. Quick views (saliency, occlusion, one FGSM image) are recomputed on the GUI thread: each
is one small batched forward/backward pass.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QComboBox, QDoubleSpinBox, QFormLayout, QFrame, QGraphicsRectItem, QGridLayout,
                               QHBoxLayout, QLabel, QProgressBar,
                               QPushButton, QSizePolicy, QSlider, QSpinBox, QSplitter, QTabWidget,
                               QVBoxLayout, QWidget)

from gui import theme
from gui.labs.common import ERROR_STYLE, Job, JobRunner, control_column, group, muted
from gui.forms import LogSpinBox
from simulator.labs import interpret as I
from simulator.nn.network import Network

__all__ = ["InterpretLab", "ImageGrid", "CLASS_COLOURS", "image_rgb"]

# tab10: ten distinguishable class colours
CLASS_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
                 "#17becf")
VIEWS = ("Saliency", "Occlusion", "Class visualisation", "Adversarial", "Embedding")


# ================================================================================================== drawing helpers

def image_rgb(x: np.ndarray, pixel_range: tuple[float, float]) -> np.ndarray:
    """One image (C, H, W) as uint8 RGB (H, W, 3): dark ink on white for one channel (digits as on paper), colour
    for three; values outside pixel_range saturate."""
    lo, hi = pixel_range
    a = (np.asarray(x, dtype=np.float64) - lo) / max(hi - lo, 1e-12)
    a = np.clip(a, 0.0, 1.0)
    if a.shape[0] == 3:
        return np.ascontiguousarray((a.transpose(1, 2, 0) * 255).round().astype(np.uint8))
    g = 1.0 - a.mean(axis=0)
    return np.ascontiguousarray(np.repeat((g[..., None] * 255).round().astype(np.uint8), 3, axis=2))


def overlay_rgb(base: np.ndarray, heat: np.ndarray, strength: float = 0.85) -> np.ndarray:
    """The heat (>= 0) painted over an RGB image in the theme's positive colour, opacity proportional to heat."""
    h = np.nan_to_num(np.asarray(heat, dtype=np.float64))
    m = float(h.max()) if h.size else 0.0
    a = (h / m if m > 0 else np.zeros_like(h))[..., None] * strength
    red = theme.diverging_rgb(np.ones((1, 1)))[0, 0].astype(np.float64)
    return np.ascontiguousarray((base * (1 - a) + red * a).round().astype(np.uint8))


class ImageGrid(QWidget):
    """A grid of pixel images, each with a title above and a caption below; columns share the width equally, aspect
    locked, no axes. ``images[i]`` are pg.ImageItems, ``boxes[i]`` their ViewBoxes (add overlays there)."""

    def __init__(self, titles: list[str], columns: int | None = None, title_size: float = 9.5):
        super().__init__()
        self.images: list[pg.ImageItem] = []
        self.boxes: list[pg.ViewBox] = []
        self.titles: list[QLabel] = []
        self.captions: list[QLabel] = []
        self.frames: list[QGraphicsRectItem] = []
        cols = columns or len(titles)
        grid = QGridLayout(self)
        grid.setContentsMargins(4, 4, 4, 4)
        grid.setHorizontalSpacing(8)
        grid.setVerticalSpacing(2)
        for i, t in enumerate(titles):
            r, c = divmod(i, cols)
            title = QLabel(t)
            title.setAlignment(Qt.AlignmentFlag.AlignCenter)
            f = title.font()
            f.setPointSizeF(title_size)
            f.setBold(True)
            title.setFont(f)
            title.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
            view = pg.GraphicsView(background="w")
            view.setMinimumSize(40, 40)
            view.setFrameShape(QFrame.Shape.NoFrame)
            vb = pg.ViewBox(lockAspect=True, invertY=True, enableMouse=False, enableMenu=False)
            view.setCentralItem(vb)
            item = pg.ImageItem(axisOrder="row-major")
            vb.addItem(item)
            frame = QGraphicsRectItem(0, 0, 1, 1)
            frame.setPen(pg.mkPen("#b8bfc9", width=1, cosmetic=True))
            frame.setZValue(5)
            frame.hide()
            vb.addItem(frame)
            self.frames.append(frame)
            cap = QLabel("")
            cap.setAlignment(Qt.AlignmentFlag.AlignCenter)
            cap.setWordWrap(True)
            cap.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Minimum)
            grid.addWidget(title, 3 * r, c)
            grid.addWidget(view, 3 * r + 1, c)
            grid.addWidget(cap, 3 * r + 2, c)
            grid.setRowStretch(3 * r + 1, 1)
            self.images.append(item)
            self.boxes.append(vb)
            self.titles.append(title)
            self.captions.append(cap)
        for c in range(cols):
            grid.setColumnStretch(c, 1)

    def set_image(self, i: int, rgb: np.ndarray | None, caption: str | None = None) -> None:
        if rgb is None:
            self.images[i].clear()
            self.frames[i].hide()
        else:
            self.images[i].setImage(rgb, levels=(0, 255))
            h, w = rgb.shape[:2]
            self.frames[i].setRect(0, 0, w, h)
            self.frames[i].show()
            self.boxes[i].setRange(xRange=(0, w), yRange=(0, h), padding=0.02)
        if caption is not None:
            self.captions[i].setText(caption)

    def set_title(self, i: int, text: str) -> None:
        self.titles[i].setText(text)


def _form() -> QFormLayout:
    f = QFormLayout()
    f.setContentsMargins(0, 0, 0, 0)
    f.setLabelAlignment(Qt.AlignmentFlag.AlignLeft)
    return f


def _prob_plot(title: str) -> pg.PlotWidget:
    w = pg.PlotWidget(background="w")
    p = w.getPlotItem()
    p.setMenuEnabled(False)
    p.hideButtons()
    p.setMouseEnabled(False, False)
    p.setTitle(title, size="10pt", color=theme.INK_HEX)
    p.setLabel("left", "probability")
    p.setYRange(0, 1.02, padding=0)
    p.getAxis("bottom").setTicks([[(i, str(i)) for i in range(10)]])
    p.showGrid(y=True, alpha=0.15)
    return w


def _pct(p: float) -> str:
    return f"{100 * p:.1f}%"


# ================================================================================================== the lab

class InterpretLab(QWidget):
    """Saliency, occlusion, class visualisation, adversarial examples and embeddings of a trained image classifier.

    ``set_network(network, data)`` shows another model (data: (X_train, y_train, X_val, y_val) or a DigitsData);
    the "Train a quick digits model" button trains a small CNN so the lab works on its own. Signals: model_changed
    (a model is on screen), view_updated(str) (a view redrew: its name), job_finished(str) (a background job of that
    kind ended: "train", "classvis", "tsne", "robustness").
    """

    model_changed = Signal()
    view_updated = Signal(str)
    job_finished = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.network: Network | None = None
        self.X_val: np.ndarray | None = None
        self.y_val: np.ndarray | None = None
        self.pixel_range: tuple[float, float] = (0.0, 1.0)
        self.index = 0
        self.embedding: np.ndarray | None = None
        self.features: np.ndarray | None = None
        self.selected_point: int | None = None
        self.classvis_results: dict[int, I.ClassVisResult] = {}
        self._generation = 0
        self._rng = np.random.default_rng()
        self.runner = JobRunner(self, self._on_job_progress, self._on_job_done)
        self._build()
        self._set_enabled(False)

    # ============================================================================================ construction
    def _build(self) -> None:
        # ---- model
        self.model_label = QLabel("No model yet. Train a quick digits CNN here, or train an image model in the "
                                  "playground.")
        self.model_label.setWordWrap(True)
        self.train_button = QPushButton("Train a quick digits model")
        self.train_button.setToolTip("A small CNN (conv 3x3 - ReLU - pool - FC 64 - FC 10) on scikit-learn's digits, "
                                     "about a second")
        self.train_button.clicked.connect(self.train_quick_model)
        self.epochs_box = QSpinBox()
        self.epochs_box.setRange(1, 100)
        self.epochs_box.setValue(10)
        self.epochs_box.setSuffix(" epochs")
        self.train_progress = QProgressBar()
        self.train_progress.setRange(0, 100)
        self.train_progress.setMaximumHeight(14)
        self.train_progress.setTextVisible(False)
        self.train_progress.hide()
        self.error_label = QLabel()
        self.error_label.setStyleSheet(ERROR_STYLE)
        self.error_label.setWordWrap(True)
        self.error_label.hide()
        model_box = QVBoxLayout()
        model_box.addWidget(self.model_label)
        row = QHBoxLayout()
        row.addWidget(self.train_button, 1)
        row.addWidget(self.epochs_box)
        model_box.addLayout(row)
        model_box.addWidget(self.train_progress)
        model_box.addWidget(self.error_label)

        # ---- image
        self.index_box = QSpinBox()
        self.index_box.setRange(0, 0)
        self.index_box.setKeyboardTracking(False)
        self.index_box.valueChanged.connect(self.set_index)
        self.random_button = QPushButton("Random")
        self.random_button.clicked.connect(self._on_random)
        self.misclassified_button = QPushButton("Next mistake")
        self.misclassified_button.setToolTip("The next validation image the model gets wrong")
        self.misclassified_button.clicked.connect(self._on_next_mistake)
        self.image_label = QLabel("")
        self.image_label.setWordWrap(True)
        img_box = QVBoxLayout()
        r = QHBoxLayout()
        r.addWidget(QLabel("Validation image"))
        r.addWidget(self.index_box, 1)
        img_box.addLayout(r)
        r = QHBoxLayout()
        r.addWidget(self.random_button)
        r.addWidget(self.misclassified_button)
        img_box.addLayout(r)
        img_box.addWidget(self.image_label)

        # ---- per-view settings, a page per tab
        # (show/hide rather than a QStackedWidget, whose height is its tallest page's)
        self.settings_stack = QWidget()
        stack = QVBoxLayout(self.settings_stack)
        stack.setContentsMargins(0, 0, 0, 0)
        self.settings_pages = [self._build_saliency_settings(), self._build_occlusion_settings(),
                               self._build_classvis_settings(), self._build_adversarial_settings(),
                               self._build_embedding_settings()]
        for page in self.settings_pages:
            stack.addWidget(page)
        self.settings_group = group("Saliency", self.settings_stack)

        scroll = control_column([group("Model", model_box), group("Image", img_box), self.settings_group],
                                min_width=330)

        # ---- views
        self.tabs = QTabWidget()
        self.tabs.addTab(self._build_saliency_view(), VIEWS[0])
        self.tabs.addTab(self._build_occlusion_view(), VIEWS[1])
        self.tabs.addTab(self._build_classvis_view(), VIEWS[2])
        self.tabs.addTab(self._build_adversarial_view(), VIEWS[3])
        self.tabs.addTab(self._build_embedding_view(), VIEWS[4])
        self.tabs.currentChanged.connect(self._on_tab_changed)
        self._on_tab_changed(0)

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(scroll)
        self.splitter.addWidget(self.tabs)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([350, 1150])
        root = QHBoxLayout(self)
        root.setContentsMargins(0, 0, 0, 0)
        root.addWidget(self.splitter)

    def _class_combo(self, extra: tuple[str, ...] = ()) -> QComboBox:
        c = QComboBox()
        c.addItems(list(extra) + [f"class {i}" for i in range(10)])
        return c

    # ---- saliency
    def _build_saliency_settings(self) -> QWidget:
        w = QWidget()
        f = _form()
        self.saliency_class_combo = self._class_combo(("predicted class", "true class"))
        self.saliency_class_combo.currentIndexChanged.connect(lambda *_: self.refresh_saliency())
        f.addRow("Score of", self.saliency_class_combo)
        lay = QVBoxLayout(w)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(f)
        lay.addWidget(muted("Saliency = max over channels of |∂s_c/∂x|: one backward pass from the class score to "
                             "the pixels (Simonyan et al.). Bright pixels are those whose small change moves the score "
                             "most."))
        lay.addStretch(1)
        return w

    def _build_saliency_view(self) -> QWidget:
        self.saliency_grid = ImageGrid(["Image", "Saliency |∂s/∂x|", "Overlay"])
        self.saliency_probs = _prob_plot("Class probabilities")
        self.saliency_bars = pg.BarGraphItem(x=np.arange(10), height=np.zeros(10), width=0.7,
                                             brush=pg.mkBrush(theme.ACCENT_HEX))
        self.saliency_probs.addItem(self.saliency_bars)
        s = QSplitter(Qt.Orientation.Vertical)
        s.addWidget(self.saliency_grid)
        s.addWidget(self.saliency_probs)
        s.setSizes([560, 260])
        return s

    # ---- occlusion
    def _build_occlusion_settings(self) -> QWidget:
        w = QWidget()
        f = _form()
        self.patch_box = QSpinBox()
        self.patch_box.setRange(1, 8)
        self.patch_box.setValue(2)
        self.stride_box = QSpinBox()
        self.stride_box.setRange(1, 8)
        self.stride_box.setValue(1)
        self.fill_box = QDoubleSpinBox()
        self.fill_box.setDecimals(2)
        self.fill_box.setSingleStep(0.05)
        self.fill_box.setRange(-1e6, 1e6)
        self.fill_box.setValue(0.5)
        self.fill_box.setKeyboardTracking(False)
        self.fill_box.setToolTip("The patch's value (grey: the middle of the pixel range)")
        self.measure_combo = QComboBox()
        self.measure_combo.addItems(["probability", "raw score"])
        for b in (self.patch_box, self.stride_box, self.fill_box):
            b.valueChanged.connect(lambda *_: self.refresh_occlusion())
        self.measure_combo.currentIndexChanged.connect(lambda *_: self.refresh_occlusion())
        f.addRow("Patch size", self.patch_box)
        f.addRow("Stride", self.stride_box)
        f.addRow("Patch value", self.fill_box)
        f.addRow("Measure the drop of", self.measure_combo)
        lay = QVBoxLayout(w)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(f)
        lay.addWidget(muted("Slide a grey patch over the image and record how much the true class's probability "
                             "drops (Zeiler & Fergus). Red: covering it hurts; blue: covering it helps."))
        lay.addStretch(1)
        return w

    def _build_occlusion_view(self) -> QWidget:
        self.occlusion_grid = ImageGrid(["Image", "Drop when covered (per pixel)", "The most damaging patch"])
        self.occlusion_patch_rect = pg.QtWidgets.QGraphicsRectItem(0, 0, 1, 1)
        self.occlusion_patch_rect.setPen(pg.mkPen(theme.ACCENT_HEX, width=2))
        self.occlusion_grid.boxes[0].addItem(self.occlusion_patch_rect)
        self.occlusion_summary = muted("")
        w = QWidget()
        lay = QVBoxLayout(w)
        lay.addWidget(self.occlusion_grid, 1)
        lay.addWidget(self.occlusion_summary)
        return w

    # ---- class visualisation
    def _build_classvis_settings(self) -> QWidget:
        w = QWidget()
        f = _form()
        self.classvis_class_combo = self._class_combo()
        self.classvis_steps_box = QSpinBox()
        self.classvis_steps_box.setRange(1, 5000)
        self.classvis_steps_box.setValue(200)
        self.classvis_l2_box = LogSpinBox(0.2, 1e-6, 10.0)
        self.classvis_lr_box = LogSpinBox(0.02, 1e-5, 10.0)
        self.classvis_blur_box = QSpinBox()
        self.classvis_blur_box.setRange(0, 100)
        self.classvis_blur_box.setValue(4)
        self.classvis_blur_box.setSpecialValueText("never")
        self.classvis_blur_box.setPrefix("every ")
        self.classvis_blur_box.setSuffix(" steps")
        self.classvis_run_button = QPushButton("▶ Run gradient ascent")
        self.classvis_run_button.clicked.connect(self.run_class_visualisation)
        self.classvis_all_button = QPushButton("All classes")
        self.classvis_all_button.setToolTip("Visualise every class in turn (the gallery below the plot)")
        self.classvis_all_button.clicked.connect(lambda: self.run_class_visualisation(all_classes=True))
        self.classvis_stop_button = QPushButton("Stop")
        self.classvis_stop_button.clicked.connect(lambda: self.runner.cancel("classvis"))
        f.addRow("Class", self.classvis_class_combo)
        f.addRow("Steps", self.classvis_steps_box)
        f.addRow("L2 strength λ", self.classvis_l2_box)
        f.addRow("Step size", self.classvis_lr_box)
        f.addRow("Blur", self.classvis_blur_box)
        lay = QVBoxLayout(w)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(f)
        r = QHBoxLayout()
        r.addWidget(self.classvis_run_button, 1)
        r.addWidget(self.classvis_all_button)
        r.addWidget(self.classvis_stop_button)
        lay.addLayout(r)
        lay.addWidget(muted("Start from a faint random image and climb the class score: x ← x + η(∂s_c/∂x − 2λx), "
                             "clipped to the pixel range and blurred now and then. The regulariser keeps the image "
                             "from turning into noise that merely excites the score."))
        lay.addStretch(1)
        return w

    def _build_classvis_view(self) -> QWidget:
        self.classvis_grid = ImageGrid(["Gradient ascent"])
        self.classvis_plot = pg.PlotWidget(background="w")
        p = self.classvis_plot.getPlotItem()
        p.setMenuEnabled(False)
        p.setTitle("Class score during the ascent", size="10pt", color=theme.INK_HEX)
        p.setLabel("bottom", "step")
        p.setLabel("left", "score s_c")
        p.showGrid(x=True, y=True, alpha=0.15)
        self.classvis_curve = p.plot(pen=pg.mkPen(theme.GRAD_HEX, width=2))
        self.classvis_gallery = ImageGrid([f"{i}" for i in range(10)], columns=10, title_size=9.0)
        self.classvis_gallery.setMinimumHeight(150)
        top = QSplitter(Qt.Orientation.Horizontal)
        top.addWidget(self.classvis_grid)
        top.addWidget(self.classvis_plot)
        top.setSizes([520, 560])
        s = QSplitter(Qt.Orientation.Vertical)
        s.addWidget(top)
        s.addWidget(self.classvis_gallery)
        s.setSizes([600, 200])
        return s

    # ---- adversarial
    def _build_adversarial_settings(self) -> QWidget:
        w = QWidget()
        f = _form()
        self.attack_combo = QComboBox()
        self.attack_combo.addItems(["FGSM (one step)", "Iterative FGSM (10 steps)"])
        self.attack_combo.currentIndexChanged.connect(lambda *_: self._on_attack_changed())
        self.eps_slider = QSlider(Qt.Orientation.Horizontal)
        self.eps_slider.setRange(0, 50)
        self.eps_slider.setValue(10)
        self.eps_slider.valueChanged.connect(lambda *_: self.refresh_adversarial())
        self.eps_label = QLabel()
        self.eps_label.setMinimumWidth(70)
        r = QHBoxLayout()
        r.addWidget(self.eps_slider, 1)
        r.addWidget(self.eps_label)
        f.addRow("Attack", self.attack_combo)
        f.addRow("ε", r)
        lay = QVBoxLayout(w)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(f)
        lay.addWidget(muted("FGSM: x' = x + ε·sign(∂L/∂x), one step up the loss of the true label; the iterative "
                             "version takes 10 steps of ε/4, projected back into the ε-box around x and the pixel "
                             "range each time. ε is a fraction of the pixel range."))
        lay.addStretch(1)
        return w

    def _build_adversarial_view(self) -> QWidget:
        self.adv_grid = ImageGrid(["Original", "Perturbation (magnified)", "Perturbed"])
        self.adv_probs = _prob_plot("Probabilities: original vs perturbed")
        self.adv_bars_orig = pg.BarGraphItem(x=np.arange(10) - 0.18, height=np.zeros(10), width=0.34,
                                             brush=pg.mkBrush(theme.VALUE_HEX))
        self.adv_bars_adv = pg.BarGraphItem(x=np.arange(10) + 0.18, height=np.zeros(10), width=0.34,
                                            brush=pg.mkBrush(theme.GRAD_HEX))
        legend = self.adv_probs.getPlotItem().addLegend(offset=(-8, 8), labelTextSize="9pt")
        self.adv_probs.addItem(self.adv_bars_orig)
        self.adv_probs.addItem(self.adv_bars_adv)
        legend.addItem(self.adv_bars_orig, "original")
        legend.addItem(self.adv_bars_adv, "perturbed")
        self.robust_plot = pg.PlotWidget(background="w")
        p = self.robust_plot.getPlotItem()
        p.setMenuEnabled(False)
        p.setTitle("Validation accuracy under attack", size="10pt", color=theme.INK_HEX)
        p.setLabel("bottom", "ε (fraction of the pixel range)")
        p.getAxis("bottom").enableAutoSIPrefix(False)
        p.setLabel("left", "accuracy")
        p.setYRange(0, 1.02, padding=0)
        p.showGrid(x=True, y=True, alpha=0.15)
        self.robust_curve = p.plot(pen=pg.mkPen(theme.GRAD_HEX, width=2), symbol="o", symbolSize=5,
                                   symbolBrush=theme.GRAD_HEX, symbolPen=None)
        self.robust_line = pg.InfiniteLine(angle=90, pen=pg.mkPen(theme.INK_HEX, style=Qt.PenStyle.DashLine))
        p.addItem(self.robust_line)
        bottom = QSplitter(Qt.Orientation.Horizontal)
        bottom.addWidget(self.adv_probs)
        bottom.addWidget(self.robust_plot)
        s = QSplitter(Qt.Orientation.Vertical)
        s.addWidget(self.adv_grid)
        s.addWidget(bottom)
        s.setSizes([500, 320])
        return s

    # ---- embedding
    def _build_embedding_settings(self) -> QWidget:
        w = QWidget()
        f = _form()
        self.embed_combo = QComboBox()
        self.embed_combo.addItems(["PCA", "t-SNE"])
        self.embed_combo.currentIndexChanged.connect(lambda *_: self.compute_embedding())
        self.k_box = QSpinBox()
        self.k_box.setRange(1, 8)
        self.k_box.setValue(6)
        self.k_box.valueChanged.connect(lambda *_: self._show_neighbours())
        self.embed_busy = QProgressBar()
        self.embed_busy.setRange(0, 0)
        self.embed_busy.setMaximumHeight(10)
        self.embed_busy.setTextVisible(False)
        self.embed_busy.hide()
        self.embed_busy_label = muted("Running t-SNE…")
        self.embed_busy_label.hide()
        f.addRow("Projection", self.embed_combo)
        f.addRow("Neighbours k", self.k_box)
        lay = QVBoxLayout(w)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(f)
        lay.addWidget(self.embed_busy_label)
        lay.addWidget(self.embed_busy)
        lay.addWidget(muted("The last hidden layer's activations of every validation image, projected to 2-D and "
                             "coloured by the true class. Click a point: its nearest neighbours in that feature space "
                             "share its class far more often than its nearest neighbours in pixel space."))
        lay.addStretch(1)
        return w

    def _build_embedding_view(self) -> QWidget:
        self.embed_plot = pg.PlotWidget(background="w")
        p = self.embed_plot.getPlotItem()
        p.setMenuEnabled(False)
        p.hideButtons()
        p.setTitle("Last hidden layer, validation set", size="10pt", color=theme.INK_HEX)
        p.hideAxis("left")
        p.hideAxis("bottom")
        self.embed_scatter = pg.ScatterPlotItem(size=8, pen=pg.mkPen(255, 255, 255, 160, width=0.6), hoverable=True,
                                                hoverSize=12)
        self.embed_scatter.sigClicked.connect(self._on_point_clicked)
        p.addItem(self.embed_scatter)
        self.embed_highlight = pg.ScatterPlotItem(size=15, pen=pg.mkPen(theme.INK_HEX, width=2), brush=None)
        self.embed_highlight.setZValue(10)
        self.embed_query = pg.ScatterPlotItem(size=20, symbol="star", pen=pg.mkPen(theme.INK_HEX, width=1.5),
                                              brush=pg.mkBrush("#ffd23f"))
        self.embed_query.setZValue(11)
        p.addItem(self.embed_highlight)
        p.addItem(self.embed_query)
        legend = p.addLegend(offset=(-6, 6), labelTextSize="8pt", colCount=2)
        for c in range(10):
            legend.addItem(pg.ScatterPlotItem(size=8, brush=pg.mkBrush(CLASS_COLOURS[c]), pen=None), str(c))
        k = 8
        self.query_grid = ImageGrid(["Query"])
        self.query_grid.setFixedHeight(150)
        self.feature_grid = ImageGrid([f"{i + 1}" for i in range(k)], title_size=8.5)
        self.pixel_grid = ImageGrid([f"{i + 1}" for i in range(k)], title_size=8.5)
        for g in (self.feature_grid, self.pixel_grid):
            g.setFixedHeight(120)
        self.neighbour_title = QLabel("Click a point in the plot.")
        self.neighbour_title.setWordWrap(True)
        self.feature_label = QLabel("Nearest in the hidden-feature space")
        self.pixel_label = QLabel("Nearest in pixel space")
        right = QWidget()
        rl = QVBoxLayout(right)
        head = QLabel("Nearest neighbours")
        head.setObjectName("SectionHeader")
        rl.addWidget(head)
        rl.addWidget(self.neighbour_title)
        rl.addWidget(self.query_grid)
        rl.addWidget(self.feature_label)
        rl.addWidget(self.feature_grid)
        rl.addWidget(self.pixel_label)
        rl.addWidget(self.pixel_grid)
        rl.addWidget(muted("Green labels agree with the query, red ones do not. Distances are Euclidean: between "
                            "hidden activations in one row, between raw pixel vectors in the other."))
        rl.addStretch(1)
        s = QSplitter(Qt.Orientation.Horizontal)
        s.addWidget(self.embed_plot)
        s.addWidget(right)
        s.setSizes([640, 480])
        return s

    # ============================================================================================= public API
    def set_network(self, network: Network, data: Any) -> None:
        """Show ``network`` (a trained image classifier) on ``data``: (X_train, y_train, X_val, y_val) or a
        DigitsData. The validation images are what the views pick from (the training set when there is none)."""
        if len(network.input_shape) != 3:
            self._show_error(f"This lab needs an image model (C, H, W); this network takes {network.input_shape}.")
            return
        if isinstance(data, I.DigitsData):
            Xtr, ytr, Xv, yv = data.as_tuple()
            rng = data.pixel_range
        else:
            Xtr, ytr, Xv, yv = data
            rng = None
        if Xv is None or len(Xv) == 0:
            Xv, yv = Xtr, ytr
        Xv, yv = np.asarray(Xv), np.asarray(yv)
        if rng is None:
            both = np.concatenate([np.asarray(Xtr).ravel(), Xv.ravel()])
            rng = (float(both.min()), float(both.max()))
        self._generation += 1
        for kind in ("classvis", "tsne", "robustness"):
            self.runner.cancel(kind)
        self.network = network
        self.X_val, self.y_val = Xv, yv
        self.pixel_range = rng
        self.predictions = network.predict(Xv)
        self.accuracy = float(np.mean(self.predictions == yv))
        self.embedding = None
        self.features = None
        self.selected_point = None
        self.classvis_results.clear()
        for i in range(10):
            self.classvis_gallery.set_image(i, None, "")
        self.classvis_curve.setData([], [])
        self.classvis_grid.set_image(0, None, "")
        self.fill_box.blockSignals(True)
        self.fill_box.setRange(rng[0] - abs(rng[1] - rng[0]), rng[1] + abs(rng[1] - rng[0]))
        self.fill_box.setSingleStep((rng[1] - rng[0]) / 20 or 0.05)
        self.fill_box.setValue(0.5 * (rng[0] + rng[1]))
        self.fill_box.blockSignals(False)
        H = network.input_shape[1]
        self.patch_box.setMaximum(min(network.input_shape[1:]))
        self.stride_box.setMaximum(max(1, H))
        self.model_label.setText(f"<b>{network!r}</b><br>validation accuracy <b>{_pct(self.accuracy)}</b> on "
                                 f"{len(yv)} images")
        self.error_label.hide()
        self._set_enabled(True)
        self.index_box.blockSignals(True)
        self.index_box.setRange(0, len(Xv) - 1)
        self.index_box.blockSignals(False)
        self.model_changed.emit()
        self.set_index(min(self.index, len(Xv) - 1), force=True)
        self._start_robustness()
        if self.tabs.currentIndex() == 4:
            self.compute_embedding()

    def train_quick_model(self) -> None:
        """Train digits_cnn on digits in a worker; the timer shows progress and installs the model when done."""
        epochs = self.epochs_box.value()
        self.train_button.setEnabled(False)
        self.train_progress.setValue(0)
        self.train_progress.show()
        self.error_label.hide()

        def work(report, stop):
            return I.quick_digits_model(seed=0, epochs=epochs, callback=lambda it, n, acc: report((it, n, acc)),
                                        should_stop=stop)
        self.runner.start(Job("train", work))

    def set_index(self, i: int, force: bool = False) -> None:
        """Show validation image i in every view."""
        if self.X_val is None:
            return
        i = max(0, min(int(i), len(self.X_val) - 1))
        if i == self.index and not force and self.index_box.value() == i:
            return
        self.index = i
        if self.index_box.value() != i:
            self.index_box.blockSignals(True)
            self.index_box.setValue(i)
            self.index_box.blockSignals(False)
        y, p = int(self.y_val[i]), int(self.predictions[i])
        mark = "✓" if y == p else "✗"
        colour = theme.VALUE_HEX if y == p else theme.GRAD_HEX
        self.image_label.setText(f"true <b>{y}</b> · predicted <b style='color:{colour}'>{p} {mark}</b>")
        self.refresh_saliency()
        self.refresh_occlusion()
        self.refresh_adversarial()

    def is_busy(self, kind: str | None = None) -> bool:
        return self.runner.busy(kind)

    def close_lab(self) -> None:
        """Cancel and wait for the workers, stop the timer."""
        self.runner.close()

    def closeEvent(self, event) -> None:  # noqa: N802
        self.close_lab()
        super().closeEvent(event)

    @property
    def current_image(self) -> np.ndarray:
        return self.X_val[self.index]

    @property
    def epsilon(self) -> float:
        """The attack's ε in input units (the slider gives a fraction of the pixel range)."""
        lo, hi = self.pixel_range
        return self.eps_slider.value() / 100.0 * (hi - lo)

    # =============================================================================================== views
    def _rgb(self, x: np.ndarray) -> np.ndarray:
        return image_rgb(x, self.pixel_range)

    def _probs(self, x: np.ndarray) -> np.ndarray:
        return I.softmax(self.network.forward(x[None], "eval"))[0]

    def refresh_saliency(self) -> None:
        if self.network is None:
            return
        x, y = self.current_image, int(self.y_val[self.index])
        probs = self._probs(x)
        k = self.saliency_class_combo.currentIndex()
        cls = int(np.argmax(probs)) if k == 0 else y if k == 1 else k - 2
        sal = I.saliency_map(self.network, x[None], cls)[0]
        base = self._rgb(x)
        g = self.saliency_grid
        g.set_image(0, base, f"true {y}, predicted {int(np.argmax(probs))} ({_pct(probs.max())})")
        g.set_image(1, theme.diverging_rgb(sal), f"class {cls}: max {sal.max():.3g}")
        g.set_image(2, overlay_rgb(base.astype(np.float64), sal), "")
        brushes = [pg.mkBrush(theme.GRAD_HEX if i == cls else "#9fb3cc") for i in range(len(probs))]
        self.saliency_bars.setOpts(x=np.arange(len(probs)), height=probs, brushes=brushes)
        self.saliency = sal
        self.view_updated.emit("saliency")

    def refresh_occlusion(self) -> None:
        if self.network is None:
            return
        x, y = self.current_image, int(self.y_val[self.index])
        patch = min(self.patch_box.value(), min(x.shape[1:]))
        measure = "prob" if self.measure_combo.currentIndex() == 0 else "score"
        r = I.occlusion_map(self.network, x, y, patch, self.stride_box.value(), self.fill_box.value(), measure)
        self.occlusion = r
        i, j = np.unravel_index(int(np.argmax(r.drops)), r.drops.shape)
        top, left = int(r.rows[i]), int(r.cols[j])
        self.occlusion_patch_rect.setRect(left, top, patch, patch)
        occ = x.copy()
        occ[:, top:top + patch, left:left + patch] = self.fill_box.value()
        p_occ = self._probs(occ)
        g = self.occlusion_grid
        unit = "" if measure == "prob" else " (score)"
        g.set_image(0, self._rgb(x), f"class {y}: {_pct(r.base) if measure == 'prob' else f'{r.base:.3g}'}")
        g.set_image(1, theme.diverging_rgb(np.nan_to_num(r.pixel_map)),
                    f"largest drop {r.drops.max():.3g}{unit}")
        g.set_image(2, self._rgb(occ), f"p(class {y}) = {_pct(p_occ[y])}, predicted {int(np.argmax(p_occ))}")
        self.occlusion_summary.setText(
            f"{r.drops.size} patch positions ({len(r.rows)} × {len(r.cols)}), each a {patch}×{patch} square of value "
            f"{self.fill_box.value():g}; the outlined square on the left is the most damaging one.")
        self.view_updated.emit("occlusion")

    def _on_attack_changed(self) -> None:
        self.refresh_adversarial()
        self._start_robustness()

    def _attack(self, x: np.ndarray, y: np.ndarray, eps: float) -> np.ndarray:
        if self.attack_combo.currentIndex() == 0:
            return I.fgsm(self.network, x, y, eps, self.pixel_range)
        return I.iterative_fgsm(self.network, x, y, eps, eps / 4.0, 10, self.pixel_range)

    def refresh_adversarial(self) -> None:
        self.eps_label.setText(f"{self.eps_slider.value() / 100:.2f}")
        self.robust_line.setValue(self.eps_slider.value() / 100)
        if self.network is None:
            return
        x, y = self.current_image, int(self.y_val[self.index])
        eps = self.epsilon
        xa = self._attack(x[None], np.array([y]), eps)[0]
        self.adversarial = xa
        p0, p1 = self._probs(x), self._probs(xa)
        c0, c1 = int(np.argmax(p0)), int(np.argmax(p1))
        d = (xa - x).astype(np.float64)
        g = self.adv_grid
        g.set_image(0, self._rgb(x), f"predicted <b>{c0}</b> ({_pct(p0[c0])}), true {y}")
        g.set_image(1, theme.diverging_rgb(d.mean(axis=0)), f"max |δ| = {np.abs(d).max():.3g}")
        flipped = c1 != c0
        colour = theme.GRAD_HEX if flipped else theme.INK_HEX
        g.set_image(2, self._rgb(xa), f"<span style='color:{colour}'>predicted <b>{c1}</b> ({_pct(p1[c1])})"
                                      f"{' — fooled' if flipped and c0 == y else ''}</span>")
        self.adv_bars_orig.setOpts(height=p0)
        self.adv_bars_adv.setOpts(height=p1)
        self.adv_predictions = (c0, c1)
        self.view_updated.emit("adversarial")

    def _start_robustness(self) -> None:
        if self.network is None:
            return
        net, X, y = self.network, self.X_val[:200], self.y_val[:200]
        iterative = self.attack_combo.currentIndex() == 1
        rng_ = self.pixel_range
        span = rng_[1] - rng_[0]
        epss = np.linspace(0, 0.5, 11 if iterative else 21)

        def work(report, stop):
            accs = []
            for e in epss:
                if stop():
                    return None
                eps = e * span
                xa = (I.iterative_fgsm(net, X, y, eps, eps / 4.0, 10, rng_) if iterative
                      else I.fgsm(net, X, y, eps, rng_))
                accs.append(float(np.mean(net.predict(xa) == y)))
                report((epss[:len(accs)], np.array(accs)))
            return epss, np.array(accs)
        self.runner.start(Job("robustness", work, self._generation))

    # ---- class visualisation
    def run_class_visualisation(self, all_classes: bool = False) -> None:
        if self.network is None:
            return
        net = self.network
        classes = list(range(net.num_classes)) if all_classes else [self.classvis_class_combo.currentIndex()]
        steps, lr, l2 = self.classvis_steps_box.value(), self.classvis_lr_box.value(), self.classvis_l2_box.value()
        blur = self.classvis_blur_box.value() or None
        rng_ = self.pixel_range

        def work(report, stop):
            out = {}
            for c in classes:
                scores: list[float] = []

                def cb(t, img, s, c=c, scores=scores):
                    scores.append(s)
                    report((c, t, img.copy(), np.array(scores), dict(out)))
                r = I.class_visualisation(net, c, steps, lr, l2, seed=0, blur_every=blur, pixel_range=rng_,
                                          callback=cb, should_stop=stop)
                out[c] = r
                report((c, steps, r.image, r.scores, dict(out)))
                if r.stopped:
                    break
            return out
        self.classvis_stop_button.setEnabled(True)
        self.runner.start(Job("classvis", work, self._generation))

    def _show_classvis_progress(self, progress: Any) -> None:
        c, t, img, scores, done = progress
        self.classvis_grid.set_title(0, f"Class {c}: step {t}")
        last = f"score {scores[-1]:.3g}" if len(scores) else ""
        self.classvis_grid.set_image(0, self._rgb(img), last)
        self.classvis_curve.setData(np.arange(len(scores)), scores)
        for k, r in done.items():
            if k not in self.classvis_results:
                self.classvis_results[k] = r
                self.classvis_gallery.set_image(k, self._rgb(r.image), f"{r.scores[-1]:.3g}")
        self.classvis_image = img
        self.classvis_scores = scores
        self.view_updated.emit("classvis")

    # ---- embedding
    def compute_embedding(self) -> None:
        if self.network is None:
            return
        net, X = self.network, self.X_val
        method = "tsne" if self.embed_combo.currentIndex() == 1 else "pca"
        if method == "pca":
            self.features = I.hidden_features(net, X)
            self._show_embedding(I.embed(None, None, "pca", seed=0, features=self.features))
            return
        self.embed_busy.show()
        self.embed_busy_label.show()

        def work(report, stop):
            F = I.hidden_features(net, X)
            return F, I.embed(None, None, "tsne", seed=0, features=F)
        self.runner.start(Job("tsne", work, self._generation))

    def _show_embedding(self, Y: np.ndarray) -> None:
        self.embedding = Y
        y = self.y_val
        brushes = [pg.mkBrush(CLASS_COLOURS[int(c) % 10]) for c in y]
        self.embed_scatter.setData(x=Y[:, 0], y=Y[:, 1], brush=brushes, data=np.arange(len(Y)))
        self.embed_plot.getPlotItem().autoRange()
        method = self.embed_combo.currentText()
        self.embed_plot.getPlotItem().setTitle(
            f"{method} of the last hidden layer ({self.features.shape[1]} units), {len(Y)} validation images",
            size="10pt", color=theme.INK_HEX)
        self.select_point(self.selected_point if self.selected_point is not None else self.index)
        self.view_updated.emit("embedding")

    def _on_point_clicked(self, item: Any, points: Any, *args: Any) -> None:
        if len(points):
            self.select_point(int(points[0].data()))

    def select_point(self, i: int) -> None:
        """Make validation image i the query of the neighbour panels (as clicking its point does)."""
        if self.embedding is None:
            return
        self.selected_point = int(i)
        self._show_neighbours()

    def _show_neighbours(self) -> None:
        if self.embedding is None or self.selected_point is None:
            return
        q = self.selected_point
        k = self.k_box.value()
        nn_feat = I.nearest_neighbours(self.features, q, k)
        nn_pix = I.nearest_neighbours(self.X_val.reshape(len(self.X_val), -1), q, k)
        self.neighbours = (nn_feat, nn_pix)
        y = self.y_val
        self.query_grid.set_image(0, self._rgb(self.X_val[q]), f"image {q}, label <b>{int(y[q])}</b>")
        for g, nn in ((self.feature_grid, nn_feat), (self.pixel_grid, nn_pix)):
            for j in range(len(g.images)):
                if j < len(nn):
                    colour = theme.VALUE_HEX if y[nn[j]] == y[q] else theme.GRAD_HEX
                    g.set_image(j, self._rgb(self.X_val[nn[j]]), f"<b style='color:{colour}'>{int(y[nn[j]])}</b>")
                    g.set_title(j, f"{j + 1}")
                else:
                    g.set_image(j, None, "")
                    g.set_title(j, "")
        agree_f = int(np.sum(y[nn_feat] == y[q]))
        agree_p = int(np.sum(y[nn_pix] == y[q]))
        self.neighbour_title.setText(f"Query: validation image {q} (label {int(y[q])}), k = {k}.")
        self.feature_label.setText(f"<b>Nearest in the hidden-feature space</b>: {agree_f}/{len(nn_feat)} share the "
                                   f"label")
        self.pixel_label.setText(f"<b>Nearest in pixel space</b>: {agree_p}/{len(nn_pix)} share the label")
        self.embed_query.setData([self.embedding[q, 0]], [self.embedding[q, 1]])
        self.embed_highlight.setData(self.embedding[nn_feat, 0], self.embedding[nn_feat, 1])
        self.view_updated.emit("neighbours")

    # =========================================================================================== jobs, misc
    def _on_job_progress(self, job: Job, p: Any) -> None:
        if job.kind == "train":
            it, n, acc = p
            self.train_progress.setValue(int(100 * it / max(n, 1)))
            if math.isfinite(acc):
                self.model_label.setText(f"Training… iteration {it}/{n}, validation accuracy {_pct(acc)}")
            else:
                self.model_label.setText(f"Training… iteration {it}/{n}")
        elif job.generation != self._generation:
            return
        elif job.kind == "classvis":
            self._show_classvis_progress(p)
        elif job.kind == "robustness":
            e, a = p
            self.robust_curve.setData(e, a)

    def _on_job_done(self, job: Job) -> None:
        if job.kind == "train":
            self.train_button.setEnabled(True)
            self.train_progress.hide()
            if job.error:
                self._show_error(job.error)
            elif job.result is not None and not job.result.stopped:
                self.set_network(job.result.network, job.result.data)
        elif job.generation == self._generation:
            if job.error:
                self._show_error(job.error)
            elif job.kind == "tsne" and job.result is not None:
                self.features, Y = job.result
                self._show_embedding(Y)
            elif job.kind == "robustness" and job.result is not None:
                self.robust_curve.setData(*job.result)
        if job.kind == "tsne" and not self.runner.busy("tsne"):
            self.embed_busy.hide()
            self.embed_busy_label.hide()
        self.job_finished.emit(job.kind)

    def _show_error(self, text: str) -> None:
        self.error_label.setText(text)
        self.error_label.show()

    def _set_enabled(self, on: bool) -> None:
        for w in (self.index_box, self.random_button, self.misclassified_button, self.settings_stack):
            w.setEnabled(on)

    def _on_random(self) -> None:
        if self.X_val is not None:
            self.set_index(int(self._rng.integers(len(self.X_val))))

    def _on_next_mistake(self) -> None:
        if self.X_val is None:
            return
        wrong = np.flatnonzero(self.predictions != self.y_val)
        if len(wrong):
            later = wrong[wrong > self.index]
            self.set_index(int(later[0] if len(later) else wrong[0]))

    def _on_tab_changed(self, i: int) -> None:
        for k, page in enumerate(self.settings_pages):
            page.setVisible(k == i)
        self.settings_group.setTitle(VIEWS[i])
        if i == 4 and self.embedding is None and self.network is not None and not self.runner.busy("tsne"):
            self.compute_embedding()
