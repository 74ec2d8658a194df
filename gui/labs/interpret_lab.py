"""The interpretability lab (lectures 8-9): saliency, occlusion, class visualisation, adversarial examples and
embeddings of a trained image classifier. A thin view over ``simulator.labs.interpret_lab.InterpretLabModel``: its
controls are built from the model's declared settings, it draws what the model returns and redraws on ``changed``.

Images are shown as the learner knows them (the model's raw images: a standardised digit is un-standardised for
display) while the network gets its own inputs. Long work (training the quick digits model, class visualisation,
the embedding, the robustness curve) runs through ONE ``gui.jobs.JobRunner``: generators on worker threads, one
timer draining their output, so nothing is redrawn per training step and scikit-learn is imported only inside a
job. The quick views (saliency, occlusion, one attack) are one small batched pass each and are computed for the
visible tab only.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, Qt, QTimer, Signal
from PySide6.QtWidgets import (QFrame, QGraphicsRectItem, QGridLayout, QHBoxLayout, QLabel, QProgressBar,
                               QPushButton, QSizePolicy, QSlider, QSpinBox, QSplitter, QVBoxLayout,
                               QWidget)

from gui import plotting, theme
from gui.forms import ParamForm
from gui.jobs import JobRunner
from gui.labs.common import ERROR_STYLE, control_column, group, muted
from gui.tab_widget import TabWidget
from simulator.core.errors import StudioError
from simulator.core.params import params_of
from simulator.labs import interpret_lab as M
from simulator.nn.network import Network

__all__ = ["InterpretLab", "ImageGrid", "CLASS_COLOURS", "image_rgb"]

# tab10: ten distinguishable class colours
CLASS_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
                 "#17becf")
VIEWS = ("Saliency", "Occlusion", "Shapley", "Top patches", "Class visualisation", "Adversarial", "Embedding")
SALIENCY, OCCLUSION, SHAPLEY, PATCHES, CLASSVIS, ADVERSARIAL, EMBEDDING = range(7)
TOP_PATCH_SLOTS = 32                     # the grid's cells: PatchSettings.k's highest value


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

    def __init__(self, titles: list[str], columns: int | None = None, title_size: float = 9.5, min_cell: int = 40,
                 spacing: int = 8):
        super().__init__()
        self.images: list[pg.ImageItem] = []
        self.boxes: list[pg.ViewBox] = []
        self.titles: list[QLabel] = []
        self.captions: list[QLabel] = []
        self.frames: list[QGraphicsRectItem] = []
        self.views: list[pg.GraphicsView] = []
        cols = columns or len(titles)
        grid = QGridLayout(self)
        grid.setContentsMargins(4, 4, 4, 4)
        grid.setHorizontalSpacing(spacing)
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
            view.setMinimumSize(min_cell, min_cell)
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
            self.views.append(view)
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

    def set_shown(self, i: int, on: bool) -> None:
        """Show or hide cell i (its title, picture and caption): a grid with fewer items than cells."""
        for w in (self.titles[i], self.views[i], self.captions[i]):
            w.setVisible(on)


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




def _declared(cls: type, name: str):
    return next(p for p in params_of(cls) if p.name == name)


# ================================================================================================== the lab

class InterpretLab(QWidget):
    """Saliency, occlusion, class visualisation, adversarial examples and embeddings of a trained image classifier.

    ``set_network(network, data, standardizer=None)`` shows another model (data: (X_train, y_train, X_val, y_val) of
    model inputs or a DigitsData; standardizer: what made the inputs from raw images, so they are shown raw); the
    "Train a quick digits model" button trains a small CNN so the lab works on its own. Signals: model_changed (a
    model is on screen), view_updated(str) (a view redrew: its name), job_finished(str) (a background job of that
    kind ended: "train", "classvis", "embedding", "robustness").
    """

    model_changed = Signal()
    view_updated = Signal(str)
    job_finished = Signal(str)

    def __init__(self, parent: QWidget | None = None, model: M.InterpretLabModel | None = None):
        super().__init__(parent)
        self.model = model or M.InterpretLabModel()
        self.runner = JobRunner(self)
        self.saliency: np.ndarray | None = None
        self.occlusion = None
        self.adversarial: np.ndarray | None = None
        self.adv_predictions: tuple[int, int] | None = None
        self.classvis_image: np.ndarray | None = None
        self.classvis_scores: np.ndarray | None = None
        self.neighbours: tuple[np.ndarray, np.ndarray] | None = None
        self.shapley_view: M.ShapleyView | None = None
        self.attack_view: M.AttackView | None = None
        self.top_patches = None
        self._stale = set(range(len(VIEWS)))
        self._classvis_done: dict = {}
        self._rng = np.random.default_rng()
        self._build()
        self._set_enabled(False)
        self.model.changed.connect(self._on_model_changed)

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
        self.train_form = ParamForm(M.QuickModelSettings)
        self.epochs_box = self.train_form.widgets["epochs"]
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
        row.addWidget(self.train_form)
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

        # ---- per-view settings, a page per tab (show/hide: a QStackedWidget is as tall as its tallest page)
        self.settings_stack = QWidget()
        stack = QVBoxLayout(self.settings_stack)
        stack.setContentsMargins(0, 0, 0, 0)
        self.settings_pages = [self._build_saliency_settings(), self._build_occlusion_settings(),
                               self._build_shapley_settings(), self._build_patches_settings(),
                               self._build_classvis_settings(), self._build_adversarial_settings(),
                               self._build_embedding_settings()]
        for page in self.settings_pages:
            stack.addWidget(page)
        self.settings_group = group("Saliency", self.settings_stack)

        scroll = control_column([group("Model", model_box), group("Image", img_box), self.settings_group],
                                min_width=330)

        # ---- views: the first now, the others a moment after the lab is on screen (or when their tab is chosen
        # first), so opening the lab costs one view's widgets
        self.tabs = TabWidget()
        self._view_builders = (self._build_saliency_view, self._build_occlusion_view, self._build_shapley_view,
                               self._build_patches_view, self._build_classvis_view, self._build_adversarial_view,
                               self._build_embedding_view)
        self._built = [False] * len(VIEWS)
        self._robust_data: M.RobustnessCurve | None = None
        for name in VIEWS:
            holder = QWidget()
            QVBoxLayout(holder).setContentsMargins(0, 0, 0, 0)
            self.tabs.addTab(holder, name)
        self._ensure_view(SALIENCY)
        self.tabs.currentChanged.connect(self._on_tab_changed)
        self._on_tab_changed(0)
        # the other views, one at a time while the lab is on screen (from its first showing: it may be built hidden)
        self._next_view = QTimer(self)
        self._next_view.setSingleShot(True)
        self._next_view.timeout.connect(self._build_next_view)

        # until there is a model the views are empty: say what to do, over them
        self.empty_note = QLabel("<p style='font-size:13pt'><b>No model to look inside yet</b></p>"
                                 "<p>Press <b>Train a quick digits model</b> on the left (a small CNN on the bundled digits),"
                                 "<br>or train an image model in the <b>Playground</b>: pausing it or letting it "
                                 "finish brings it here.</p>", self.tabs)
        self.empty_note.setObjectName("EmptyNote")
        self.empty_note.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_note.setWordWrap(True)
        self.empty_note.setStyleSheet("#EmptyNote { background: rgba(255, 255, 255, 235); color: #3b4652; "
                                      "border: 1px solid #d5dae1; border-radius: 6px; padding: 18px; }")
        self.tabs.installEventFilter(self)

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(scroll)
        self.splitter.addWidget(self.tabs)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([350, 1150])
        root = QHBoxLayout(self)
        root.setContentsMargins(0, 0, 0, 0)
        root.addWidget(self.splitter)

    def eventFilter(self, watched, event) -> bool:  # noqa: N802  (Qt's name)
        if watched is self.tabs and event.type() == QEvent.Type.Resize:
            self._place_empty_note()
        return super().eventFilter(watched, event)

    def _place_empty_note(self) -> None:
        """The note over the views, centred, while there is no model."""
        r = self.tabs.rect()
        w = min(560, r.width() - 40)
        h = self.empty_note.heightForWidth(w) if w > 0 else 0
        self.empty_note.setGeometry((r.width() - w) // 2, max(40, (r.height() - h) // 3), w, h)
        self.empty_note.setVisible(getattr(self.model, "network", None) is None)
        self.empty_note.raise_()

    def _ensure_view(self, i: int) -> None:
        """Build view i's widgets if they are not there yet, and draw what the model already holds into them."""
        if self._built[i]:
            return
        self._built[i] = True
        self.tabs.widget(i).layout().addWidget(self._view_builders[i]())
        if i == ADVERSARIAL:
            self._show_eps()
            if self._robust_data is not None:
                self._draw_robustness(self._robust_data)
        elif i == CLASSVIS:
            self._show_gallery(self.model.classvis_results)
        elif i == EMBEDDING and self.model.embedding is not None:
            self._show_embedding()

    def showEvent(self, event) -> None:  # noqa: N802  (Qt's name)
        super().showEvent(event)
        if not all(self._built) and not self._next_view.isActive():
            self._next_view.start(150)

    def _build_next_view(self) -> None:
        # only while the lab is on screen: another tab opened meanwhile must not pay for views nobody sees (the rest
        # are built when their tab is chosen, by _ensure_view, or when the lab is shown again)
        if self.runner.closed or not self.isVisible():
            return
        rest = [i for i, b in enumerate(self._built) if not b]
        if rest:
            self._ensure_view(rest[0])
            if len(rest) > 1:
                self._next_view.start(60)

    @staticmethod
    def _page(form: QWidget, *more: QWidget, note: str = "") -> QWidget:
        w = QWidget()
        lay = QVBoxLayout(w)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(form)
        for m in more:
            lay.addWidget(m)
        if note:
            lay.addWidget(muted(note))
        lay.addStretch(1)
        return w

    # ---- saliency
    def _build_saliency_settings(self) -> QWidget:
        self.saliency_form = ParamForm(M.SaliencySettings)
        self.saliency_class_combo = self.saliency_form.widgets["target"]
        self.saliency_form.edited.connect(lambda: self._refresh(SALIENCY))
        return self._page(self.saliency_form, note=(
            "Saliency = max over channels of |∂s_c/∂x|: one backward pass from the class score to the pixels "
            "(Simonyan et al.). Bright pixels are those whose small change moves the score most."))

    def _build_saliency_view(self) -> QWidget:
        self.saliency_grid = ImageGrid(["Image", "Saliency |∂s/∂x|", "Overlay"])
        self.saliency_probs = _prob_plot("Class probabilities")
        self.saliency_bars = pg.BarGraphItem(x=np.arange(10), height=np.zeros(10), width=0.7,
                                             brush=pg.mkBrush(theme.ACCENT_HEX))
        self.saliency_probs.addItem(self.saliency_bars)
        self.saliency_ties = muted("")
        self.saliency_ties.setWordWrap(True)
        top = QWidget()
        lay = QVBoxLayout(top)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.saliency_grid, 1)
        lay.addWidget(self.saliency_ties)
        s = QSplitter(Qt.Orientation.Vertical)
        s.addWidget(top)
        s.addWidget(self.saliency_probs)
        s.setSizes([560, 260])
        return s

    # ---- occlusion
    def _build_occlusion_settings(self) -> QWidget:
        self.occlusion_form = ParamForm(M.OcclusionSettings)
        w = self.occlusion_form.widgets
        self.patch_box, self.stride_box, self.fill_box, self.measure_combo = (w["patch"], w["stride"], w["fill"],
                                                                              w["measure"])
        self.occlusion_form.edited.connect(lambda: self._refresh(OCCLUSION))
        return self._page(self.occlusion_form, note=(
            "Slide a patch over the image and record how much the true class's probability drops (Zeiler & "
            "Fergus). Red: covering it hurts; blue: covering it helps. The patch value is a fraction of the pixel "
            "range (0.5: grey)."))

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

    # ---- Shapley values
    def _build_shapley_settings(self) -> QWidget:
        self.shapley_form = ParamForm(M.ShapleySettings)
        self.shapley_run_button = QPushButton("▶ Estimate Shapley values")
        self.shapley_run_button.clicked.connect(self.run_shapley)
        self.shapley_stop_button = QPushButton("Stop")
        self.shapley_stop_button.setEnabled(False)
        self.shapley_stop_button.clicked.connect(lambda: self.runner.cancel("shapley"))
        buttons = QWidget()
        r = QHBoxLayout(buttons)
        r.setContentsMargins(0, 0, 0, 0)
        r.addWidget(self.shapley_run_button, 1)
        r.addWidget(self.shapley_stop_button)
        return self._page(self.shapley_form, buttons, note=(
            "Cut the image into patches. A patch's Shapley value is its average contribution to the true class's "
            "probability over every order in which the patches could be put back on a grey image; sampling random "
            "orders estimates it. Unlike occlusion (one patch missing at a time), it credits patches that only "
            "matter together, and the values add up to p(all patches) − p(none)."))

    def _build_shapley_view(self) -> QWidget:
        self.shapley_grid = ImageGrid(["Image", "Shapley values", "Occlusion (same patches)", "Saliency |∂s/∂x|"])
        self.shapley_summary = muted("")
        self.shapley_summary.setWordWrap(True)
        w = QWidget()
        lay = QVBoxLayout(w)
        lay.addWidget(self.shapley_grid, 1)
        lay.addWidget(self.shapley_summary)
        return w

    def run_shapley(self) -> None:
        settings = self.shapley_form.try_value()
        if self.model.network is None or settings is None:
            return
        try:
            job = self.model.shapley(settings)
        except StudioError as exc:
            self._show_error(str(exc))
            return
        self.error_label.hide()
        self.shapley_stop_button.setEnabled(True)
        self.runner.start("shapley", lambda: job, on_yield=self._draw_shapley, on_done=self._on_shapley_done,
                          on_error=self._on_job_error("shapley"), on_cancel=lambda: self._on_shapley_done(None))

    def _draw_shapley(self, v: M.ShapleyView | None) -> None:
        if v is None:
            return
        r = v.result
        H, W = v.image.shape[1:]
        g = self.shapley_grid
        g.set_image(0, self._rgb(v.image), f"true class {v.label}")
        g.set_image(1, theme.diverging_rgb(r.pixel_map((H, W))),
                    f"{r.samples} ordering{'s' if r.samples > 1 else ''}; largest ± {r.stderr.max():.2g}")
        g.set_image(2, theme.diverging_rgb(v.occlusion), f"largest drop {v.occlusion.max():.3g}")
        g.set_image(3, theme.diverging_rgb(v.saliency), f"max {v.saliency.max():.3g}")
        self.shapley_summary.setText(
            f"{r.values.size} patches of {r.patch}×{r.patch}; the values sum to {r.values.sum():+.3f} = p(class "
            f"{v.label} | whole image) − p(class {v.label} | all patches grey). Red: the patch raises the class's "
            f"probability; blue: it lowers it. The ± is the standard error of the sampled average.")
        self.shapley_view = v
        self.view_updated.emit("shapley")

    def _on_shapley_done(self, v: M.ShapleyView | None) -> None:
        self.shapley_stop_button.setEnabled(False)
        if v is not None:
            self._draw_shapley(v)
        self.job_finished.emit("shapley")

    # ---- maximally activating patches
    def _build_patches_settings(self) -> QWidget:
        self.patches_form = ParamForm(M.PatchSettings)
        self.patches_form.edited.connect(lambda: self._refresh(PATCHES))
        return self._page(self.patches_form, note=(
            "Run every validation image through the network and keep, for one feature map, the units that fire "
            "hardest (one per image). Each patch is the part of the input that unit sees: its receptive field, "
            "which grows with every convolution and pooling layer."))

    def _build_patches_view(self) -> QWidget:
        self.patches_grid = ImageGrid([f"{i + 1}" for i in range(TOP_PATCH_SLOTS)], columns=8, title_size=8.5)
        self.patches_summary = muted("")
        self.patches_summary.setWordWrap(True)
        w = QWidget()
        lay = QVBoxLayout(w)
        lay.addWidget(self.patches_grid, 1)
        lay.addWidget(self.patches_summary)
        return w

    def refresh_patches(self) -> None:
        settings = self.patches_form.try_value()
        if self.model.network is None or settings is None:
            return
        v = self.model.top_patches(settings)
        t = v.patches
        rows = -(-len(t.images) // 8)
        for i in range(TOP_PATCH_SLOTS):
            self.patches_grid.set_shown(i, i < 8 * rows)      # whole rows, so the cells keep their size
            if i < len(t.images):
                crop = np.nan_to_num(t.patches[i], nan=self.pixel_range[0])     # outside the image: blank paper
                label = int(self.model.images.labels[t.images[i]])
                self.patches_grid.set_image(i, self._rgb(crop), f"{t.activations[i]:.3g} · a {label}")
            else:
                self.patches_grid.set_image(i, None, "")
        self.patches_summary.setText(
            f"{v.layer_title}, channel {t.channel} of {v.channels}: the {len(t.images)} strongest units over "
            f"{len(self.model.images)} validation images, each seeing a {t.size}×{t.size} patch of the input. "
            f"Captions: the activation and the image's true class.")
        self.top_patches = t
        self.view_updated.emit("patches")

    # ---- class visualisation
    def _build_classvis_settings(self) -> QWidget:
        self.classvis_form = ParamForm(M.ClassVisSettings)
        w = self.classvis_form.widgets
        self.classvis_class_combo, self.classvis_steps_box = w["cls"], w["steps"]
        self.classvis_l2_box, self.classvis_lr_box, self.classvis_blur_box = w["l2_reg"], w["lr"], w["blur_every"]
        self.classvis_blur_box.setSpecialValueText("never")
        self.classvis_blur_box.setSuffix(" steps")
        self.classvis_run_button = QPushButton("▶ Run gradient ascent")
        self.classvis_run_button.clicked.connect(lambda: self.run_class_visualisation())
        self.classvis_all_button = QPushButton("All classes")
        self.classvis_all_button.setToolTip("Visualise every class in turn (the gallery below the plot)")
        self.classvis_all_button.clicked.connect(lambda: self.run_class_visualisation(all_classes=True))
        self.classvis_stop_button = QPushButton("Stop")
        self.classvis_stop_button.setEnabled(False)
        self.classvis_stop_button.clicked.connect(lambda: self.runner.cancel("classvis"))
        buttons = QWidget()
        r = QHBoxLayout(buttons)
        r.setContentsMargins(0, 0, 0, 0)
        r.addWidget(self.classvis_run_button, 1)
        r.addWidget(self.classvis_all_button)
        r.addWidget(self.classvis_stop_button)
        return self._page(self.classvis_form, buttons, note=(
            "Start from a faint random image and climb the class score: x ← x + η(∂s_c/∂x − 2λx), clipped to the "
            "pixel range and blurred now and then. The regulariser keeps the image from turning into noise that "
            "merely excites the score."))

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
        self.attack_form = ParamForm(M.AttackSettings, only=("attack", "target"))
        self.attack_combo = self.attack_form.widgets["attack"]
        self.attack_form.edited.connect(self._on_attack_changed)
        eps = _declared(M.AttackSettings, "eps")
        # a slider in hundredths of the declared range: ε moves as the learner drags
        self.eps_slider = QSlider(Qt.Orientation.Horizontal)
        self.eps_slider.setRange(round(eps.low * 100), round(eps.high * 100))
        self.eps_slider.setValue(round(eps.default * 100))
        self.eps_slider.setToolTip(eps.doc)
        self.eps_slider.valueChanged.connect(lambda *_: self._refresh(ADVERSARIAL))
        self.eps_label = QLabel()
        self.eps_label.setMinimumWidth(50)
        row = QWidget()
        r = QHBoxLayout(row)
        r.setContentsMargins(0, 0, 0, 0)
        r.addWidget(QLabel(eps.title))
        r.addWidget(self.eps_slider, 1)
        r.addWidget(self.eps_label)
        self._show_eps()
        return self._page(self.attack_form, row, note=(
            "FGSM: x' = x + ε·sign(∂L/∂x), one step up the loss of the true label; the iterative version takes 10 "
            "steps of ε/4, projected back into the ε-box around x and the pixel range each time. Targeted: the "
            "notes' four steps — start from the image, pick a class, change the image to raise that class, repeat "
            "(10 steps of ε/4 up log p(target)). ε is a fraction of the pixel range. Last picture: random ±ε noise "
            "of the same size, which rarely changes anything: the gradient's direction is what fools the net."))

    def _build_adversarial_view(self) -> QWidget:
        self.adv_grid = ImageGrid(["Original", "Perturbation (magnified)", "Perturbed", "Random ±ε noise"])
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
        self.embed_form = ParamForm(M.EmbeddingSettings)
        self.embed_combo, self.k_box = self.embed_form.widgets["method"], self.embed_form.widgets["k"]
        self.embed_combo.currentIndexChanged.connect(lambda *_: self.compute_embedding())
        self.k_box.valueChanged.connect(lambda *_: self._show_neighbours())
        self.embed_busy = QProgressBar()
        self.embed_busy.setRange(0, 0)
        self.embed_busy.setMaximumHeight(10)
        self.embed_busy.setTextVisible(False)
        self.embed_busy.hide()
        self.embed_busy_label = muted("Projecting…")
        self.embed_busy_label.hide()
        return self._page(self.embed_form, self.embed_busy_label, self.embed_busy, note=(
            "The last hidden layer's activations of every validation image, projected to 2-D and coloured by the "
            "true class. Click a point: its nearest neighbours in that feature space share its class far more "
            "often than its nearest neighbours in pixel space."))

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
        k = int(_declared(M.EmbeddingSettings, "k").high)
        self.query_grid = ImageGrid(["Query"])
        self.query_grid.setFixedHeight(150)
        # k neighbours in a row: small cells allowed, so the row leaves the plot beside it room on a laptop
        self.feature_grid = ImageGrid([f"{i + 1}" for i in range(k)], title_size=8.5, min_cell=30, spacing=4)
        self.pixel_grid = ImageGrid([f"{i + 1}" for i in range(k)], title_size=8.5, min_cell=30, spacing=4)
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
    @property
    def network(self) -> Network | None:
        return self.model.network

    @property
    def X_val(self) -> np.ndarray | None:  # noqa: N802
        """The validation images as the network sees them."""
        return None if self.model.images is None else self.model.images.inputs

    @property
    def y_val(self) -> np.ndarray | None:
        return None if self.model.images is None else self.model.images.labels

    @property
    def pixel_range(self) -> tuple[float, float]:
        return (0.0, 1.0) if self.model.images is None else self.model.images.pixel_range

    @property
    def predictions(self) -> np.ndarray | None:
        return self.model.predictions

    @property
    def accuracy(self) -> float:
        return self.model.accuracy

    @property
    def index(self) -> int:
        return self.model.index

    @property
    def embedding(self) -> np.ndarray | None:
        return self.model.embedding

    @property
    def features(self) -> np.ndarray | None:
        return self.model.features

    @property
    def selected_point(self) -> int | None:
        return self.model.selected_point

    @property
    def classvis_results(self) -> dict:
        return self.model.classvis_results

    @property
    def current_image(self) -> np.ndarray:
        """The current image as the learner knows it (raw: un-standardised)."""
        return self.model.current_raw

    @property
    def epsilon(self) -> float:
        """The attack's ε in raw pixel units (the slider gives a fraction of the pixel range)."""
        lo, hi = self.pixel_range
        return self.eps_slider.value() / 100.0 * (hi - lo)

    def attack_settings(self) -> M.AttackSettings:
        return self.attack_form.value(eps=self.eps_slider.value() / 100.0)

    def set_network(self, network: Network, data: Any, standardizer: Any = None) -> None:
        """Show ``network`` (a trained image classifier) on ``data``: (X_train, y_train, X_val, y_val) as the network
        sees them, or a DigitsData. ``standardizer`` (simulator.data.datasets.Standardizer): how raw images became
        these inputs, so the views can show the raw ones. A model the lab cannot show is refused with a message."""
        try:
            self.model.set_network(network, data, standardizer)
        except StudioError as exc:
            self._show_error(str(exc))

    def train_quick_model(self) -> None:
        """Train the quick digits CNN in a job; its progress is drawn, the model installed when done."""
        settings = self.train_form.try_value()
        if settings is None:
            return
        self.train_button.setEnabled(False)
        self.train_progress.setValue(0)
        self.train_progress.show()
        self.error_label.hide()
        self.model_label.setText("Preparing the digits…")
        self.runner.start("train", lambda: self.model.training(settings), on_yield=self._on_train_progress,
                          on_done=self._on_trained, on_error=self._on_train_error, on_cancel=self._on_train_ended)

    def set_index(self, i: int, force: bool = False) -> None:
        """Show validation image i in every view."""
        if self.model.images is None:
            return
        i = max(0, min(int(i), len(self.model.images) - 1))
        if i == self.model.index and not force:
            self._sync_index_box()
            return
        self.model.set_index(i)

    def is_busy(self, kind: str | None = None) -> bool:
        return self.runner.running(kind)

    def close_lab(self) -> None:
        """Cancel the jobs and wait for their workers."""
        self.model.changed.disconnect(self._on_model_changed)
        self.runner.close()

    def closeEvent(self, event) -> None:  # noqa: N802
        if not self.runner.closed:
            self.close_lab()
        super().closeEvent(event)

    # =========================================================================================== model events
    def _on_model_changed(self, what: str = "") -> None:
        if what == "network":
            self._on_network_changed()
        elif what == "index":
            self._sync_index_box()
            self._stale.update((SALIENCY, OCCLUSION, ADVERSARIAL))
            self.runner.cancel("shapley", notify=False)
            self._refresh_current()
        elif what == "embedding":
            self._show_embedding()
        elif what == "neighbours":
            self._show_neighbours()
        elif what == "classvis":
            self._show_gallery(self.model.classvis_results)

    def _on_network_changed(self) -> None:
        m = self.model
        for kind in ("classvis", "embedding", "robustness", "shapley"):
            self.runner.cancel(kind, notify=False)
        self._finish_embedding_busy()
        self.classvis_stop_button.setEnabled(False)
        self._classvis_done = {}
        if self._built[CLASSVIS]:
            for i in range(10):
                self.classvis_gallery.set_image(i, None, "")
            self.classvis_curve.setData([], [])
            self.classvis_grid.set_image(0, None, "")
        if self._built[EMBEDDING]:
            self.embed_scatter.setData([], [])
            self.embed_query.setData([], [])
            self.embed_highlight.setData([], [])
        self.neighbours = None
        H, W = m.network.input_shape[1:]
        self.patch_box.setMaximum(min(H, W))
        self.stride_box.setMaximum(max(H, W))
        self.model_label.setText(f"<b>{m.network!r}</b><br>validation accuracy <b>{_pct(m.accuracy)}</b> on "
                                 f"{len(m.images)} images"
                                 + (" (standardised inputs, shown as raw images)" if m.images.standardizer else ""))
        self.error_label.hide()
        self._set_enabled(True)
        self.index_box.blockSignals(True)
        self.index_box.setRange(0, len(m.images) - 1)
        self.index_box.blockSignals(False)
        self._sync_index_box()
        self._stale = set(range(len(VIEWS)))
        self.empty_note.hide()
        self.model_changed.emit()
        self._refresh_current()
        self._start_robustness()

    def _sync_index_box(self) -> None:
        m = self.model
        if m.images is None:
            return
        i = m.index
        if self.index_box.value() != i:
            self.index_box.blockSignals(True)
            self.index_box.setValue(i)
            self.index_box.blockSignals(False)
        y, p = int(m.images.labels[i]), int(m.predictions[i])
        mark = "✓" if y == p else "✗"
        colour = theme.VALUE_HEX if y == p else theme.GRAD_HEX
        self.image_label.setText(f"true <b>{y}</b> · predicted <b style='color:{colour}'>{p} {mark}</b>")

    # =============================================================================================== views
    def _rgb(self, x: np.ndarray) -> np.ndarray:
        return image_rgb(x, self.pixel_range)

    def _refresh(self, view: int) -> None:
        """A control of ``view`` changed: redraw it if it is on screen, else when it is shown."""
        self._stale.add(view)
        if view == ADVERSARIAL:
            self._show_eps()
        self._refresh_current()

    def _refresh_current(self) -> None:
        i = self.tabs.currentIndex()
        if self.model.network is None or i not in self._stale:
            return
        self._stale.discard(i)
        try:
            if i == SALIENCY:
                self.refresh_saliency()
            elif i == OCCLUSION:
                self.refresh_occlusion()
            elif i == ADVERSARIAL:
                self.refresh_adversarial()
            elif i == PATCHES:
                self.refresh_patches()
            elif i == EMBEDDING and self.model.embedding is None and not self.runner.running("embedding"):
                self.compute_embedding()
        except StudioError as exc:
            self._show_error(str(exc))

    def refresh_saliency(self) -> None:
        settings = self.saliency_form.try_value()
        if self.model.network is None or settings is None:
            return
        v = self.model.saliency(settings)
        base = self._rgb(v.image)
        g = self.saliency_grid
        g.set_image(0, base, f"true {v.label}, predicted {v.predicted} ({_pct(v.probs.max())})")
        g.set_image(1, theme.diverging_rgb(v.saliency), f"class {v.cls}: max {v.saliency.max():.3g}")
        g.set_image(2, overlay_rgb(base.astype(np.float64), v.saliency), "")
        brushes = [plotting.brush(theme.GRAD_HEX if i == v.cls else "#9fb3cc") for i in range(len(v.probs))]
        self.saliency_bars.setOpts(x=np.arange(len(v.probs)), height=v.probs, brushes=brushes)
        self.saliency_ties.setText(v.tie_note)
        self.saliency_ties.setVisible(bool(v.tie_note))
        self.saliency = v.saliency
        self.view_updated.emit("saliency")

    def refresh_occlusion(self) -> None:
        settings = self.occlusion_form.try_value()
        if self.model.network is None or settings is None:
            return
        v = self.model.occlusion(settings)
        r = v.result
        self.occlusion = r
        self.occlusion_patch_rect.setRect(v.left, v.top, v.patch, v.patch)
        y = v.label
        g = self.occlusion_grid
        unit = "" if r.measure == "prob" else " (score)"
        g.set_image(0, self._rgb(v.image), f"class {y}: {_pct(r.base) if r.measure == 'prob' else f'{r.base:.3g}'}")
        g.set_image(1, theme.diverging_rgb(np.nan_to_num(r.pixel_map)), f"largest drop {r.drops.max():.3g}{unit}")
        g.set_image(2, self._rgb(v.occluded), f"p(class {y}) = {_pct(v.occluded_probs[y])}, predicted "
                                              f"{int(np.argmax(v.occluded_probs))}")
        self.occlusion_summary.setText(
            f"{r.drops.size} patch positions ({len(r.rows)} × {len(r.cols)}), each a {v.patch}×{v.patch} square of "
            f"value {v.fill:.3g}; the outlined square on the left is the most damaging one.")
        self.view_updated.emit("occlusion")

    def _show_eps(self) -> None:
        self.eps_label.setText(f"{self.eps_slider.value() / 100:.2f}")
        line = getattr(self, "robust_line", None)      # the settings page is built before the plot
        if line is not None:
            line.setValue(self.eps_slider.value() / 100)

    def _on_attack_changed(self) -> None:
        self._refresh(ADVERSARIAL)
        self._start_robustness()

    def refresh_adversarial(self) -> None:
        self._show_eps()
        settings = self.attack_settings()
        if self.model.network is None:
            return
        v = self.model.attack(settings)
        self.attack_view = v
        self.adversarial = v.perturbed
        c0, c1 = v.predictions
        d = v.perturbed - v.image
        g = self.adv_grid
        g.set_image(0, self._rgb(v.image), f"predicted <b>{c0}</b> ({_pct(v.probs[c0])}), true {v.label}")
        g.set_image(1, theme.diverging_rgb(d.mean(axis=0)), f"max |δ| = {np.abs(d).max():.3g}")
        flipped = c1 != c0
        colour = theme.GRAD_HEX if flipped else theme.INK_HEX
        g.set_image(2, self._rgb(v.perturbed), f"<span style='color:{colour}'>predicted <b>{c1}</b> "
                                               f"({_pct(v.perturbed_probs[c1])})"
                                               f"{' — fooled' if flipped and c0 == v.label else ''}</span>")
        if v.target is not None:
            hit = c1 == v.target
            g.set_title(2, f"Targeted at {v.target}: {'reached' if hit else 'not reached'}")
        else:
            g.set_title(2, "Perturbed")
        if v.noise is not None:
            cn = int(np.argmax(v.noise.probs))
            g.set_image(3, self._rgb(v.noise.image), f"predicted <b>{cn}</b> ({_pct(v.noise.probs[cn])})"
                                                     f"{' — fooled too' if cn != c0 else ' — unchanged'}")
        self.adv_bars_orig.setOpts(height=v.probs)
        self.adv_bars_adv.setOpts(height=v.perturbed_probs)
        self.adv_predictions = (c0, c1)
        self.view_updated.emit("adversarial")

    def _start_robustness(self) -> None:
        if self.model.network is None:
            return
        settings = self.attack_settings()
        self._draw_robustness(None)
        self.runner.start("robustness", lambda: self.model.robustness(settings), on_yield=self._draw_robustness,
                          on_done=self._on_robustness_done, on_error=self._on_job_error("robustness"))

    def _draw_robustness(self, c: M.RobustnessCurve | None) -> None:
        self._robust_data = c
        if self._built[ADVERSARIAL]:
            self.robust_curve.setData([] if c is None else c.eps, [] if c is None else c.accuracy)

    def _on_robustness_done(self, c: M.RobustnessCurve) -> None:
        self._draw_robustness(c)
        self.job_finished.emit("robustness")

    # ---- class visualisation
    def run_class_visualisation(self, all_classes: bool = False) -> None:
        settings = self.classvis_form.try_value()
        if self.model.network is None or settings is None:
            return
        self._classvis_done = {}
        self._ensure_view(CLASSVIS)
        self.classvis_stop_button.setEnabled(True)
        self.runner.start("classvis", lambda: self.model.class_visualisation(settings, all_classes),
                          on_yield=self._show_classvis_progress, on_done=self._on_classvis_done,
                          on_error=self._on_job_error("classvis"), on_cancel=self._on_classvis_cancelled)

    def _show_classvis_progress(self, f: M.ClassVisFrame) -> None:
        self.classvis_grid.set_title(0, f"Class {f.cls}: step {f.step}")
        last = f"score {f.scores[-1]:.3g}" if len(f.scores) else ""
        self.classvis_grid.set_image(0, self._rgb(f.image), last)
        self.classvis_curve.setData(np.arange(len(f.scores)), f.scores)
        self._classvis_done = f.finished
        self._show_gallery(f.finished)
        self.classvis_image = f.image
        self.classvis_scores = f.scores
        self.view_updated.emit("classvis")

    def _show_gallery(self, results: dict) -> None:
        if not self._built[CLASSVIS] or self.model.images is None:
            return
        for k, r in results.items():
            self.classvis_gallery.set_image(k, self._rgb(self.model.images.to_raw(r.image)), f"{r.scores[-1]:.3g}")

    def _on_classvis_done(self, results: dict) -> None:
        self.classvis_stop_button.setEnabled(False)
        self.model.add_class_visualisations(results)
        self.job_finished.emit("classvis")

    def _on_classvis_cancelled(self) -> None:
        """Stopped: the classes finished before keep their pictures."""
        self.classvis_stop_button.setEnabled(False)
        if self._classvis_done:
            self.model.add_class_visualisations(self._classvis_done)
        self.job_finished.emit("classvis")

    # ---- embedding
    def compute_embedding(self) -> None:
        settings = self.embed_form.try_value()
        if self.model.network is None or settings is None:
            return
        self._ensure_view(EMBEDDING)
        self.embed_busy_label.setText(f"Running {settings.method}…")
        self.embed_busy.show()
        self.embed_busy_label.show()
        self.runner.start("embedding", lambda: self.model.embedding_job(settings), on_done=self._on_embedding_done,
                          on_error=self._on_job_error("embedding"), on_cancel=self._finish_embedding_busy)

    def _finish_embedding_busy(self) -> None:
        self.embed_busy.hide()
        self.embed_busy_label.hide()

    def _on_embedding_done(self, result: tuple) -> None:
        self._finish_embedding_busy()
        self.model.set_embedding(*result)
        self.job_finished.emit("embedding")

    def _show_embedding(self) -> None:
        m = self.model
        if not self._built[EMBEDDING] or m.embedding is None:
            return
        Y, y = m.embedding, m.images.labels
        brushes = plotting.brushes_by_class(y, CLASS_COLOURS[:10])
        self.embed_scatter.setData(x=Y[:, 0], y=Y[:, 1], brush=brushes, data=np.arange(len(Y)))
        self.embed_plot.getPlotItem().autoRange()
        self.embed_plot.getPlotItem().setTitle(      # two short lines: the plot may be narrow (a laptop)
            f"{m.embedding_method} of the last hidden layer<br>{m.features.shape[1]} units, {len(Y)} validation "
            f"images", size="10pt", color=theme.INK_HEX)
        self.view_updated.emit("embedding")
        self.select_point(m.selected_point if m.selected_point is not None else m.index)

    def _on_point_clicked(self, item: Any, points: Any, *args: Any) -> None:
        if len(points):
            self.select_point(int(points[0].data()))

    def select_point(self, i: int) -> None:
        """Make validation image i the query of the neighbour panels (as clicking its point does)."""
        if self.model.embedding is not None:
            self.model.select_point(i)

    def _show_neighbours(self) -> None:
        m = self.model
        if not self._built[EMBEDDING] or m.embedding is None or m.selected_point is None:
            return
        q = m.selected_point
        k = self.k_box.value()
        nn_feat, nn_pix = m.neighbours(k)
        self.neighbours = (nn_feat, nn_pix)
        y, raw = m.images.labels, m.images.raw
        self.query_grid.set_image(0, self._rgb(raw[q]), f"image {q}, label <b>{int(y[q])}</b>")
        for g, nn in ((self.feature_grid, nn_feat), (self.pixel_grid, nn_pix)):
            for j in range(len(g.images)):
                if j < len(nn):
                    colour = theme.VALUE_HEX if y[nn[j]] == y[q] else theme.GRAD_HEX
                    g.set_image(j, self._rgb(raw[nn[j]]), f"<b style='color:{colour}'>{int(y[nn[j]])}</b>")
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
        self.embed_query.setData([m.embedding[q, 0]], [m.embedding[q, 1]])
        self.embed_highlight.setData(m.embedding[nn_feat, 0], m.embedding[nn_feat, 1])
        self.view_updated.emit("neighbours")

    # =========================================================================================== jobs, misc
    def _on_train_progress(self, p: Any) -> None:
        self.train_progress.setValue(int(100 * p.fraction))
        self.model_label.setText(f"Training… {p.message}" if p.total else f"Preparing: {p.message}…")

    def _on_trained(self, quick: Any) -> None:
        self._on_train_ended()
        try:
            self.model.set_quick_model(quick)
        except StudioError as exc:
            self._show_error(str(exc))
        self.job_finished.emit("train")

    def _on_train_error(self, exc: BaseException, text: str) -> None:
        self._on_train_ended()
        self.model_label.setText("No model yet.")
        self._show_error(text)
        self.job_finished.emit("train")

    def _on_train_ended(self) -> None:
        self.train_button.setEnabled(True)
        self.train_progress.hide()

    def _on_job_error(self, kind: str):
        def show(exc: BaseException, text: str) -> None:
            if kind == "classvis":
                self.classvis_stop_button.setEnabled(False)
            elif kind == "shapley":
                self.shapley_stop_button.setEnabled(False)
            elif kind == "embedding":
                self._finish_embedding_busy()
            self._show_error(text)
            self.job_finished.emit(kind)
        return show

    def _show_error(self, text: str) -> None:
        self.error_label.setText(text)
        self.error_label.show()

    def _set_enabled(self, on: bool) -> None:
        for w in (self.index_box, self.random_button, self.misclassified_button, self.settings_stack):
            w.setEnabled(on)

    def _on_random(self) -> None:
        if self.model.images is not None:
            self.set_index(int(self._rng.integers(len(self.model.images))))

    def _on_next_mistake(self) -> None:
        if self.model.images is not None:
            i = self.model.next_mistake()
            if i is not None:
                self.set_index(i)

    def _on_tab_changed(self, i: int) -> None:
        self._ensure_view(i)
        for k, page in enumerate(self.settings_pages):
            page.setVisible(k == i)
        self.settings_group.setTitle(VIEWS[i])
        self._refresh_current()
