"""The Self-supervised tab (the last lecture): learn from a pretext task whose target comes from the data itself, then
judge the encoder the lecture's way (a linear probe on its frozen features with few labels, its embeddings) and send
it to the Playground to fine-tune.

A thin view over ``simulator.labs.selfsup.SelfSupLab``: the task picker, the task's own options, the training, probe
and embedding settings are forms built from the model's declarations (``SelfSupSettings``, the task's options class,
``EmbedSettings``); every piece of long work is a job of the tab's one ``gui.jobs.JobRunner``:

- "task": ``task_job`` builds the chosen task (its lecture paragraph, its loss), and ``use_task_defaults`` fills the
  training settings it trains well with;
- "pretext": ``pretext_job`` (keep="all": every StepMetrics / EpochMetrics and the PretextPreviews), with Pause,
  Resume and Cancel; the curves are decimated (``gui.labs.playground.Decimated``), the preview rows, the matrix
  (a contrastive batch's similarity matrix, drawn live; the rotation or jigsaw confusion matrix) and, for the
  autoencoder, the latent space ("latent": ``latent_job`` after each preview) are redrawn as they come; after
  colourisation a whole photograph is coloured ("photo": ``colourise_job``);
- "probe": ``probe_job`` (keep="all": a ProbePoint as each accuracy is measured), drawn on one plot of accuracy
  against the labelled fraction, one line per encoder, with a summary computed from the ProbeResult;
- "embeddings": ``embeddings_job``, one scatter per encoder (pixels, self-supervised, random, supervised) and the
  nearest neighbours of a clicked image in each space.

"Fine-tune in the Playground" emits ``encoder_sent(EncoderHandoff, freeze)`` (wired by the main window to
``PlaygroundLab.adopt_encoder``). The photograph tasks have no labels to probe with: their probe, embedding and
hand-off buttons are disabled, the model's reason (``SelfSupLab.refusal``) as tooltip and note.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QSizePolicy,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from gui import plotting, theme
from gui.forms import ParamForm, param_widget, read_widget, write_widget
from gui.jobs import JobRunner
from gui.labs.common import (
    CLASS_COLOURS,
    MUTED_STYLE,
    PALETTE,
    LazyPage,
    control_column,
    digit_pixmap,
    group,
    muted,
)
from gui.labs.interpret_lab import ImageGrid
from gui.labs.playground import Decimated
from gui.tab_widget import TabWidget
from simulator.core.errors import StudioError
from simulator.core.jobs import Progress
from simulator.core.params import params_of
from simulator.labs.selfsup import (
    DEFAULT_FRACTIONS,
    METHOD_LABELS,
    METHODS,
    TASKS,
    Embeddings,
    EmbedSettings,
    PretextPreview,
    PretextResult,
    ProbePoint,
    ProbeResult,
    SelfSupLab,
    SelfSupSettings,
    options_class,
)
from simulator.nn.trainer import EpochMetrics, StepMetrics, iters_per_epoch

__all__ = ["SelfSupervisedLab", "matrix_rgb", "probe_summary", "row_mosaic"]

TRAIN_FORM = ("epochs", "lr", "batch_size", "seed")
PROBE_FORM = ("probe_steps", "probe_lr", "supervised_epochs")
METHOD_COLOURS = {"self-supervised": PALETTE[1], "random": "#8a8f98", "supervised": PALETTE[2]}
SPACES = ("pixels", *METHODS)
SPACE_LABELS = {"pixels": "pixels (no encoder)", "self-supervised": "self-supervised encoder",
                "random": "random encoder", "supervised": "supervised encoder"}
SPACE_COLOURS = {"pixels": "#555555", **METHOD_COLOURS}
STEP_PEN = (120, 135, 155, 120)
TRAIN_COLOUR = "#2f74d0"
VAL_COLOUR = "#e8710a"
FLOOR = 1e-12
GAP = 225                     # the light grey between the images of a preview row
MAX_CELL_TEXTS = 10           # matrices up to this size carry their numbers in the cells


# ================================================================================================== pictures

def row_mosaic(images: np.ndarray, ink: bool, gap: int = 1) -> np.ndarray:
    """One preview row as one RGB picture (H, n (W + gap) - gap, 3) uint8: images (n, H, W) grey or (n, H, W, 3)
    RGB with values in [0, 1], side by side, ``gap`` light-grey pixels apart. ``ink``: grey digits are drawn as dark
    ink on white paper (1 = black), as the app draws digits everywhere; photographs keep their own lightness."""
    a = np.clip(np.nan_to_num(np.asarray(images, np.float64)), 0.0, 1.0)
    if a.ndim == 3:
        a = np.repeat((1.0 - a if ink else a)[..., None], 3, axis=3)
    n, h, w, _ = a.shape
    out = np.full((h, n * (w + gap) - gap, 3), GAP, np.uint8)
    for i in range(n):
        out[:, i * (w + gap):i * (w + gap) + w] = np.round(a[i] * 255.0).astype(np.uint8)
    return out


def matrix_rgb(m: np.ndarray, signed: bool) -> np.ndarray:
    """A preview matrix as RGB uint8: a similarity matrix (``signed``) blue-white-red with white at 0
    (theme.diverging_rgb); counts or shares from white to the accent colour, scaled by the largest entry."""
    m = np.nan_to_num(np.asarray(m, np.float64))
    if signed:
        return theme.diverging_rgb(m)
    t = m / max(float(m.max()), 1e-12)
    accent = np.array([theme.ACCENT.red(), theme.ACCENT.green(), theme.ACCENT.blue()], float)
    return np.ascontiguousarray(np.round(255.0 + t[..., None] * 0.85 * (accent - 255.0)).astype(np.uint8))


def _cell_names(key: str | None, n: int) -> list[str]:
    """Tick labels of a preview matrix's rows or columns: the rotation's angles, the contrastive batch's views (i
    and i' are the two views of image i), else the class index."""
    if key == "rotation" and n == 4:
        return ["0°", "90°", "180°", "270°"]
    if key == "contrastive" and n % 2 == 0:
        return [f"{i + 1}" for i in range(n // 2)] + [f"{i + 1}′" for i in range(n // 2)]
    return [str(i) for i in range(n)]


def _pct(f: float) -> str:
    return f"{100 * f:.3g}%"


def probe_summary(result: ProbeResult, title: str) -> str:
    """What the probe's own numbers show, in sentences (rich text): at 10% of the labels (or the fraction nearest
    it), the self-supervised encoder against the random one and the supervised one; then with every label."""
    fr = np.asarray(result.fractions, float)
    acc = result.accuracy
    i = int(np.argmin(np.abs(np.log10(fr) - math.log10(0.1))))
    ss, rnd, sup = (float(acc[m][i]) for m in METHODS)
    diff = 100.0 * (ss - rnd)
    verdict = ("beats the random encoder by" if diff >= 0.05 else
               "does no better than the random encoder:" if diff > -0.05 else "falls behind the random encoder by")
    parts = [f"With <b>{_pct(fr[i])} of the labels</b> ({result.counts[i]} digits), a linear classifier on the frozen "
             f"features of the <b>{title}</b> encoder scores <b>{ss:.1%}</b> on {result.test_size} held-out digits, "
             f"the random encoder's {rnd:.1%}: the pretext training {verdict} <b>{abs(diff):.1f} points</b>. "
             f"The supervised encoder, trained on every label, gets {sup:.1%}"
             + (f" ({100 * (sup - ss):.1f} points above the self-supervised one)." if sup >= ss else ".")]
    if fr[-1] == 1.0 and i != len(fr) - 1:
        a = {m: float(acc[m][-1]) for m in METHODS}
        parts.append(f"With every label: self-supervised {a['self-supervised']:.1%}, random {a['random']:.1%}, "
                     f"supervised {a['supervised']:.1%}.")
    if len(fr) > 1 and i != 0:
        a = {m: float(acc[m][0]) for m in METHODS}
        parts.append(f"With {_pct(fr[0])} ({result.counts[0]} labels): self-supervised {a['self-supervised']:.1%}, "
                     f"random {a['random']:.1%}, supervised {a['supervised']:.1%}.")
    if np.isfinite(result.supervised_accuracy):
        parts.append(f"(The supervised network's own head scores {result.supervised_accuracy:.1%}.)")
    return " ".join(parts)


def _quality_value(v: float, higher_is_better: bool) -> str:
    """An accuracy in per cent to three figures (chance can be 0.111%), an error to four decimals."""
    return f"{100 * v:.3g}%" if higher_is_better else f"{v:.4f}"


def _plot(title: str, left: str, bottom: str = "iteration", log_y: bool = False) -> pg.PlotWidget:
    p = pg.PlotWidget(background="w")
    pi = p.getPlotItem()
    pi.setMenuEnabled(False)
    pi.hideButtons()
    pi.showGrid(x=True, y=True, alpha=0.15)
    pi.setTitle(title, size="9.5pt")
    pi.setLabel("left", left)
    pi.setLabel("bottom", bottom)
    pi.getAxis("left").enableAutoSIPrefix(False)
    pi.getAxis("bottom").enableAutoSIPrefix(False)
    pi.getViewBox().setMouseEnabled(False, False)
    pi.getAxis("bottom").setStyle(maxTextLevel=0)      # whole steps only: minor labels crowd a short run
    if log_y:
        pi.setLogMode(y=True)
        pi.getAxis("left").setStyle(maxTextLevel=0)
    p.setMinimumSize(160, 120)
    return p


def _log_ticks(plot: pg.PlotWidget, lo: float, hi: float) -> None:
    """A log-y plot's range lo..hi (log10 units, whole decades) with a label at each decade only and unlabelled
    ticks at 2..9 times each (pyqtgraph labels every minor tick of a short log axis, and they pile up)."""
    pi = plot.getPlotItem()
    decades = range(int(lo), int(hi) + 1)
    major = [(float(k), f"{10.0 ** k:g}") for k in decades]
    minor = [(k + math.log10(m), "") for k in decades[:-1] for m in range(2, 10)]
    pi.getAxis("left").setTicks([major, minor])
    pi.setYRange(lo, hi, padding=0.07)           # room for the end decades' labels


def _digit_legend() -> str:
    """The class colours as a line of coloured digits (rich text), the legend of the digit scatters."""
    return "digits: " + " ".join(f"<b style='color:{CLASS_COLOURS[c]}'>{c}</b>" for c in range(10))


def _picture_view() -> tuple[pg.GraphicsView, pg.ViewBox, pg.ImageItem]:
    view = pg.GraphicsView(background="w")
    view.setFrameShape(QFrame.Shape.NoFrame)
    vb = pg.ViewBox(lockAspect=True, invertY=True, enableMouse=False, enableMenu=False)
    view.setCentralItem(vb)
    item = pg.ImageItem(axisOrder="row-major")
    vb.addItem(item)
    return view, vb, item


class PreviewRows(QWidget):
    """A task's Preview rows: each caption above its row of images (one mosaic, aspect kept). Children for tests:
    captions (QLabels), items (pg.ImageItems), shown (the mosaics drawn, uint8)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.lay = QVBoxLayout(self)
        self.lay.setContentsMargins(4, 2, 4, 2)
        self.lay.setSpacing(1)
        self.captions: list[QLabel] = []
        self.views: list[pg.GraphicsView] = []
        self.boxes: list[pg.ViewBox] = []
        self.items: list[pg.ImageItem] = []
        self.shown: list[np.ndarray] = []
        self.empty = muted("The preview of the network's work appears here when training starts.")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.lay.addWidget(self.empty)
        self.lay.addStretch(1)

    def set_rows(self, rows: tuple, ink: bool) -> None:
        while len(self.items) < len(rows):
            cap = QLabel()
            cap.setStyleSheet("font-weight: 600;")
            cap.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
            view, vb, item = _picture_view()
            self.lay.insertWidget(self.lay.count() - 1, cap)
            self.lay.insertWidget(self.lay.count() - 1, view)
            self.captions.append(cap)
            self.views.append(view)
            self.boxes.append(vb)
            self.items.append(item)
        self.shown = []
        for i, (cap, view, vb, item) in enumerate(zip(self.captions, self.views, self.boxes, self.items)):
            on = i < len(rows)
            cap.setVisible(on)
            view.setVisible(on)
            if on:
                caption, images = rows[i]
                rgb = row_mosaic(images, ink)
                self.shown.append(rgb)
                cap.setText(caption)
                item.setImage(rgb, levels=(0, 255))
                h, w = rgb.shape[:2]
                vb.setRange(xRange=(0, w), yRange=(0, h), padding=0.01)
        self.empty.setVisible(not rows)
        self._fit_heights()

    def _fit_heights(self) -> None:
        """Each row as tall as its mosaic at the panel's width (so rows stack without gaps), within limits that
        keep every row on screen."""
        width = max(self.width() - 8, 40)
        rows = max(len(self.shown), 1)
        room = max(self.height() - rows * 22 - 8, rows * 24)
        for view, rgb in zip(self.views, self.shown):
            h, w = rgb.shape[:2]
            view.setFixedHeight(int(min(width * h / w * 1.02, room / rows, 220)))

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._fit_heights()

    def clear(self) -> None:
        self.set_rows((), True)


class _Thumbs(QWidget):
    """A row of small digit pictures, each with its label under it (green: same label as the query, red: not)."""

    def __init__(self, k: int, size: int = 30):
        super().__init__()
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(3)
        grid.setVerticalSpacing(0)
        self.size = size
        self.pics: list[QLabel] = []
        self.caps: list[QLabel] = []
        for j in range(k):
            pic, cap = QLabel(), QLabel()
            pic.setFixedSize(size, size)
            cap.setAlignment(Qt.AlignmentFlag.AlignCenter)
            cap.setStyleSheet("font-size: 8pt;")
            grid.addWidget(pic, 0, j, Qt.AlignmentFlag.AlignCenter)
            grid.addWidget(cap, 1, j, Qt.AlignmentFlag.AlignCenter)
            self.pics.append(pic)
            self.caps.append(cap)
        grid.setColumnStretch(k, 1)

    def show_images(self, images: np.ndarray, labels: np.ndarray, idx: np.ndarray, query_label: int) -> None:
        for j, (pic, cap) in enumerate(zip(self.pics, self.caps)):
            if j < len(idx):
                i = int(idx[j])
                pic.setPixmap(digit_pixmap(images[i] * 16.0, self.size))
                same = int(labels[i]) == query_label
                cap.setText(str(int(labels[i])))
                cap.setStyleSheet(f"font-size: 8pt; font-weight: 600; color: "
                                  f"{theme.VALUE_HEX if same else theme.GRAD_HEX};")
                pic.setToolTip(f"held-out digit {i}, label {int(labels[i])}")
            else:
                pic.clear()
                cap.setText("")


# ================================================================================================== the tab

class SelfSupervisedLab(QWidget):
    """Pretext tasks trained live, their encoders judged by a linear probe and their embeddings, and the hand-off.

    Signal (past tense, wired by the main window): ``encoder_sent(EncoderHandoff, freeze: bool)``: the trained
    encoder with a fresh Linear(10) head, to be probed (freeze) or fine-tuned whole in the Playground.

    Children for tests: task_combo, lecture_label, kind_label, options_form (None for a task without options),
    temperature_form, train_form (epochs_box, lr_box, batch_box, seed_box), train_button, pause_button,
    resume_button, cancel_button, progress, status_label, error_label, tabs (pretext_page, judge_page), loss_plot,
    acc_plot, curves, quality_label, preview (PreviewRows), side (the matrix, latent or photo page), matrix_plot,
    matrix_item, matrix_title, matrix_shown, latent_plot, latent_scatter, latent_shown, photo_grid, photo_shown,
    probe_form, probe_button, probe_plot, probe_curves, probe_label, probe_points (as they arrived), probe_result,
    embed_form, embed_button, embed_plots, embed_scatters, embed_marks (the rings and the star), embeddings, query,
    neighbour_rows, probe_radio, finetune_radio, send_button, judge_note; ``built_task`` (the picked task as built),
    ``last_preview`` (the PretextPreview drawn last), ``previews_received`` and ``previews_drawn`` (this run;
    of the previews that arrive between two frames only the newest is drawn), ``result`` (the last PretextResult).
    The "Judge the features" page (``judge_page``) is built when first shown or when one of its widgets is asked for.
    """

    encoder_sent = Signal(object, bool)

    def __init__(self, parent: QWidget | None = None, model: SelfSupLab | None = None):
        super().__init__(parent)
        self.model = model or SelfSupLab()
        self.jobs = JobRunner(self)
        self._closed = False
        self._tasks: dict[str, tuple[Any, Any]] = {}    # key -> (options it was built with, PretextTask)
        self._run_key: str | None = None                # the task of the pretext run shown
        self._run_total = 0                             # updates of that run (0: not known yet)
        self._run_epochs = 1
        self.last_preview: PretextPreview | None = None
        self.result: PretextResult | None = None
        self.probe_result: ProbeResult | None = None
        self.embeddings: Embeddings | None = None
        self.query = 0
        self.matrix_shown: np.ndarray | None = None
        self.latent_shown = None
        self.photo_shown = None
        self._matrix_texts: list[pg.TextItem] = []
        self._matrix_key: tuple | None = None
        self.probe_points: list[ProbePoint] = []
        self.previews_received = self.previews_drawn = 0
        self._reset_series()
        self._rebuild_timer = QTimer(self)          # coalesces a burst of option edits into one build
        self._rebuild_timer.setSingleShot(True)
        self._rebuild_timer.setInterval(300)
        self._rebuild_timer.timeout.connect(lambda: self._build_task(self.model.settings.task, defaults=False))
        self._build_controls()
        self._build_pretext_page()
        # "Judge the features" is built when first shown or one of its widgets is first asked for (_judge_widget, at
        # the end of the module): about 0.2 s of this lab's first open that a learner who only trains does not wait for
        self.judge_page = LazyPage(self._build_judge_page, lambda _page: self._update_buttons())
        self._build_layout()
        self.model.changed.connect(self._on_model_changed)
        self._show_settings()
        self._show_task(self.model.settings.task)
        self._update_buttons()
        self._build_task(self.model.settings.task, defaults=False)

    # ============================================================================================== construction
    def _build_controls(self) -> None:
        decl = {p.name: p for p in params_of(SelfSupSettings)}
        self.task_combo = param_widget(decl["task"])
        self.task_combo.currentIndexChanged.connect(self._on_task_picked)
        self.kind_label = muted("")
        self.lecture_label = QLabel()
        self.lecture_label.setWordWrap(True)
        self.lecture_label.setStyleSheet("font-size: 9pt;")
        self.lecture_label.setTextFormat(Qt.TextFormat.PlainText)
        task_box = QVBoxLayout()
        task_box.addWidget(self.task_combo)
        task_box.addWidget(self.kind_label)
        task_box.addWidget(self.lecture_label)

        self.options_form: ParamForm | None = None
        self.options_holder = QVBoxLayout()
        self.options_holder.setContentsMargins(0, 0, 0, 0)
        self.no_options = muted("")
        self.temperature_form = ParamForm(SelfSupSettings, only=("temperature",))
        self.temperature_form.edited.connect(self._on_settings_edited)
        opt_box = QVBoxLayout()
        opt_box.addLayout(self.options_holder)
        opt_box.addWidget(self.temperature_form)
        opt_box.addWidget(self.no_options)
        self.options_group = group("Task options", opt_box)

        self.train_form = ParamForm(SelfSupSettings, only=TRAIN_FORM)
        w = self.train_form.widgets
        self.epochs_box, self.lr_box, self.batch_box, self.seed_box = (w["epochs"], w["lr"], w["batch_size"],
                                                                       w["seed"])
        self.train_form.edited.connect(self._on_settings_edited)
        train_box = QVBoxLayout()
        train_box.addWidget(self.train_form)
        train_box.addWidget(muted("Picking a task fills in the settings it trains well with."))

        self.probe_form = ParamForm(SelfSupSettings, only=PROBE_FORM)
        self.probe_form.edited.connect(self._on_settings_edited)
        self.probe_button = QPushButton("Run the linear probe")
        self.probe_button.clicked.connect(self.run_probe)
        self.embed_form = ParamForm(EmbedSettings)
        self.embed_button = QPushButton("Embed the features")
        self.embed_button.clicked.connect(self.run_embeddings)
        self.judge_note = muted("")
        judge_box = QVBoxLayout()
        judge_box.addWidget(muted(f"A linear classifier on the frozen features with "
                                  f"{', '.join(_pct(f) for f in DEFAULT_FRACTIONS)} of the labels, beside the same "
                                  f"layers with random weights and trained on every label."))
        judge_box.addWidget(self.probe_form)
        judge_box.addWidget(self.probe_button)
        judge_box.addWidget(self.embed_form)
        judge_box.addWidget(self.embed_button)
        judge_box.addWidget(self.judge_note)

        self.probe_radio = QRadioButton("linear probe (encoder frozen)")
        self.probe_radio.setToolTip("Only the new Linear(10) head trains on the encoder's features")
        self.finetune_radio = QRadioButton("fine-tune all")
        self.finetune_radio.setToolTip("Every layer trains, starting from the encoder's weights")
        self.probe_radio.setChecked(True)
        self._mode = QButtonGroup(self)
        self._mode.addButton(self.probe_radio)
        self._mode.addButton(self.finetune_radio)
        self.send_button = QPushButton("Fine-tune in the Playground")
        self.send_button.clicked.connect(self.send_encoder)
        send_box = QVBoxLayout()
        send_box.addWidget(self.probe_radio)
        send_box.addWidget(self.finetune_radio)
        send_box.addWidget(self.send_button)
        send_box.addWidget(muted("The Playground gets the digits (preprocessing none), the encoder's layers with "
                                 "its weights and a fresh Linear(10) head."))

        self.left = control_column([group("Pretext task", task_box), self.options_group,
                                    group("Training", train_box), group("Judge the features", judge_box),
                                    group("Hand-off", send_box)], min_width=320)
        self.left.setMaximumWidth(400)

        # ---- transport
        self.train_button = QPushButton("▶ Train")
        self.pause_button = QPushButton("❚❚ Pause")
        self.resume_button = QPushButton("▶ Resume")
        self.cancel_button = QPushButton("■ Cancel")
        self.cancel_button.setToolTip("Stop training: the encoder of the last update is kept for the probe and the "
                                      "hand-off")
        self.train_button.clicked.connect(self.train)
        self.pause_button.clicked.connect(self.pause)
        self.resume_button.clicked.connect(self.resume)
        self.cancel_button.clicked.connect(self.cancel)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setMaximumWidth(220)
        self.progress.setTextVisible(False)
        self.status_label = QLabel("")
        self.status_label.setStyleSheet(MUTED_STYLE)
        self.status_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.status_label.setWordWrap(True)       # long messages (a hand-off, a task being prepared) wrap, not cut
        self.error_label = QLabel()
        self.error_label.setObjectName("ErrorBanner")
        self.error_label.setWordWrap(True)
        self.error_label.setTextFormat(Qt.TextFormat.PlainText)
        self.error_label.hide()

    def _build_pretext_page(self) -> None:
        self.loss_plot = _plot("Pretext loss", "loss (log)", log_y=True)
        self.acc_plot = _plot("The pretext task's accuracy", "accuracy")
        self.acc_plot.getPlotItem().setYRange(0, 1.02, padding=0)
        lp, ap = self.loss_plot.getPlotItem(), self.acc_plot.getPlotItem()
        ap.setXLink(lp)
        for p in (lp, ap):
            p.disableAutoRange()         # ranges change when the data leave them, so the axes are rarely redrawn
        # where the curves seldom go: a falling loss leaves the lower left free, a rising accuracy the upper left
        for p, corner in ((lp, (8, -8)), (ap, (8, 8))):
            legend = p.addLegend(offset=corner, labelTextSize="8pt")
            legend.setBrush(pg.mkBrush(255, 255, 255, 200))
        sym = dict(symbol="o", symbolSize=5, symbolPen=None)
        step = pg.mkPen(STEP_PEN, width=1)
        self.curves = {
            "loss": lp.plot(pen=step, name="batch"),
            "train_loss": lp.plot(pen=pg.mkPen(TRAIN_COLOUR, width=2), symbolBrush=TRAIN_COLOUR,
                                  name="train (epoch)", **sym),
            "val_loss": lp.plot(pen=pg.mkPen(VAL_COLOUR, width=2), symbolBrush=VAL_COLOUR, name="held out", **sym),
            "accuracy": ap.plot(pen=step, name="batch"),
            "train_accuracy": ap.plot(pen=pg.mkPen(TRAIN_COLOUR, width=2), symbolBrush=TRAIN_COLOUR,
                                      name="train (epoch)", **sym),
            "val_accuracy": ap.plot(pen=pg.mkPen(VAL_COLOUR, width=2), symbolBrush=VAL_COLOUR, name="held out",
                                    **sym),
        }
        self._log_curves = {"loss", "train_loss", "val_loss"}
        plots = QSplitter(Qt.Orientation.Horizontal)
        plots.addWidget(self.loss_plot)
        plots.addWidget(self.acc_plot)
        plots.setChildrenCollapsible(False)
        self.quality_label = QLabel("")
        self.quality_label.setWordWrap(True)
        self.quality_label.setTextFormat(Qt.TextFormat.RichText)
        self.quality_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

        self.preview = PreviewRows()
        self.preview_title = QLabel("Preview")
        self.preview_title.setObjectName("SectionHeader")
        pv = QWidget()
        pl = QVBoxLayout(pv)
        pl.setContentsMargins(0, 0, 0, 0)
        pl.addWidget(self.preview_title)
        pl.addWidget(self.preview, 1)

        # the side panel: the matrix, the autoencoder's latent space, or a whole colourised photograph
        self.matrix_plot = pg.PlotWidget(background="w")
        mp = self.matrix_plot.getPlotItem()
        mp.setMenuEnabled(False)
        mp.hideButtons()
        mp.setAspectLocked(True)
        mp.getViewBox().setMouseEnabled(False, False)
        mp.getViewBox().invertY(True)
        self.matrix_item = pg.ImageItem(axisOrder="row-major")
        mp.addItem(self.matrix_item)
        for ax in ("left", "bottom"):
            mp.getAxis(ax).setStyle(tickLength=0)
            mp.getAxis(ax).setPen(pg.mkPen(None))
            mp.getAxis(ax).setTextPen(pg.mkPen(theme.INK_HEX))
        self.matrix_title = QLabel("")
        self.matrix_title.setWordWrap(True)
        self.matrix_title.setStyleSheet("font-weight: 600;")
        self.matrix_title.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        matrix_page = QWidget()
        ml = QVBoxLayout(matrix_page)
        ml.setContentsMargins(0, 0, 0, 0)
        ml.addWidget(self.matrix_title)
        ml.addWidget(self.matrix_plot, 1)

        self.latent_plot = _plot("Latent space of the held-out digits", "", "")
        lt = self.latent_plot.getPlotItem()
        self.latent_scatter = pg.ScatterPlotItem(size=6, pen=pg.mkPen(255, 255, 255, 140, width=0.5))
        lt.addItem(self.latent_scatter)
        self.latent_legend = QLabel(_digit_legend())
        self.latent_legend.setAlignment(Qt.AlignmentFlag.AlignCenter)
        latent_page = QWidget()
        la = QVBoxLayout(latent_page)
        la.setContentsMargins(0, 0, 0, 0)
        la.addWidget(self.latent_plot, 1)
        la.addWidget(self.latent_legend)

        self.photo_grid = ImageGrid(["grey input (L only)", "predicted colour", "true colour"], columns=2,
                                    title_size=8.5)
        self.photo_note = muted("After training, the whole photograph is coloured tile by tile here.")
        photo_page = QWidget()
        phl = QVBoxLayout(photo_page)
        phl.setContentsMargins(0, 0, 0, 0)
        phl.addWidget(self.photo_note)
        phl.addWidget(self.photo_grid, 1)

        self.side = QStackedWidget()
        for page in (matrix_page, latent_page, photo_page):
            self.side.addWidget(page)
        self.side.setMinimumWidth(220)
        self.side.hide()                    # until a task has something to show there (empty axes say nothing)

        bottom = QSplitter(Qt.Orientation.Horizontal)
        bottom.addWidget(pv)
        bottom.addWidget(self.side)
        bottom.setChildrenCollapsible(False)
        bottom.setStretchFactor(0, 3)
        bottom.setStretchFactor(1, 2)
        bottom.setSizes([560, 380])
        self.bottom_split = bottom

        top = QWidget()
        tl = QVBoxLayout(top)
        tl.setContentsMargins(0, 0, 0, 0)
        tl.addWidget(plots, 1)
        tl.addWidget(self.quality_label)
        page = QSplitter(Qt.Orientation.Vertical)
        page.addWidget(top)
        page.addWidget(bottom)
        page.setChildrenCollapsible(False)
        page.setSizes([300, 420])
        self.pretext_page = page

    def _build_judge_page(self) -> QWidget:
        self.probe_plot = _plot("Linear probe on held-out digits", "test accuracy",
                                "labelled training digits (log scale)")
        pp = self.probe_plot.getPlotItem()
        pp.setYRange(0, 1.0, padding=0.02)
        ticks = [(math.log10(100 * f), _pct(f)) for f in DEFAULT_FRACTIONS]
        pp.getAxis("bottom").setTicks([ticks, []])
        pp.setXRange(math.log10(100 * min(DEFAULT_FRACTIONS)), 2.0, padding=0.06)
        legend = pp.addLegend(offset=(-8, -8), labelTextSize="8.5pt")
        legend.setBrush(pg.mkBrush(255, 255, 255, 220))
        self.probe_curves = {
            m: pp.plot(pen=pg.mkPen(METHOD_COLOURS[m], width=2.5,
                                    style=Qt.PenStyle.DashLine if m == "supervised" else Qt.PenStyle.SolidLine),
                       symbol="o", symbolSize=8, symbolBrush=METHOD_COLOURS[m], symbolPen=None,
                       name=METHOD_LABELS[m])
            for m in METHODS}
        self.probe_plot.setMinimumSize(260, 240)
        self.probe_label = QLabel("Train a pretext task on the digits, then press <b>Run the linear probe</b>: "
                                  "points appear as each probe is measured.")
        self.probe_label.setWordWrap(True)
        self.probe_label.setTextFormat(Qt.TextFormat.RichText)
        self.probe_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(self.probe_plot, 1)
        ll.addWidget(self.probe_label)

        self.embed_title = QLabel("Embeddings: each encoder's features of held-out digits in 2-D, coloured by the "
                                  "true digit. Click a point to choose the image whose neighbours are shown.")
        self.embed_title.setWordWrap(True)
        self.embed_title.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        grid = QGridLayout()
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setSpacing(2)
        self.embed_plots: dict[str, pg.PlotWidget] = {}
        self.embed_scatters: dict[str, pg.ScatterPlotItem] = {}
        self.embed_marks: dict[str, tuple[pg.ScatterPlotItem, pg.ScatterPlotItem]] = {}
        for i, space in enumerate(SPACES):
            p = pg.PlotWidget(background="w")
            pi = p.getPlotItem()
            pi.setMenuEnabled(False)
            pi.hideButtons()
            pi.hideAxis("left")
            pi.hideAxis("bottom")
            pi.setTitle(SPACE_LABELS[space], size="8.5pt", color=SPACE_COLOURS[space])
            sc = pg.ScatterPlotItem(size=6, pen=pg.mkPen(255, 255, 255, 150, width=0.5), hoverable=True,
                                    hoverSize=10)
            sc.sigClicked.connect(self._on_point_clicked)
            near = pg.ScatterPlotItem(size=12, pen=pg.mkPen(theme.INK_HEX, width=1.6), brush=None)
            star = pg.ScatterPlotItem(size=17, symbol="star", pen=pg.mkPen(theme.INK_HEX, width=1.2),
                                      brush=pg.mkBrush("#ffd23f"))
            near.setZValue(10)
            star.setZValue(11)
            for mark in (near, star):           # a click on a ringed neighbour chooses it, as on any point
                mark.sigClicked.connect(self._on_point_clicked)
            for item in (sc, near, star):
                pi.addItem(item)
            p.setMinimumSize(140, 120)
            grid.addWidget(p, i // 2, i % 2)
            self.embed_plots[space] = p
            self.embed_scatters[space] = sc
            self.embed_marks[space] = (near, star)
        k_max = int(next(p.high for p in params_of(EmbedSettings) if p.name == "neighbours"))
        self.query_pic = QLabel()
        self.query_pic.setFixedSize(40, 40)
        self.query_label = QLabel("")
        self.query_label.setWordWrap(True)
        self.query_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        qrow = QHBoxLayout()
        qrow.addWidget(self.query_pic)
        qrow.addWidget(self.query_label, 1)
        nb = QGridLayout()
        nb.setContentsMargins(0, 0, 0, 0)
        nb.setHorizontalSpacing(6)
        nb.setVerticalSpacing(2)
        self.neighbour_rows: dict[str, tuple[QLabel, _Thumbs]] = {}
        for r, space in enumerate(SPACES):
            name = QLabel("")
            name.setStyleSheet(f"color: {SPACE_COLOURS[space]}; font-weight: 600;")
            thumbs = _Thumbs(k_max, 26)
            nb.addWidget(name, r, 0)
            nb.addWidget(thumbs, r, 1)
            self.neighbour_rows[space] = (name, thumbs)
        nb.setColumnStretch(1, 1)
        self.neighbours_box = QWidget()
        nl = QVBoxLayout(self.neighbours_box)
        nl.setContentsMargins(0, 0, 0, 0)
        nl.addLayout(qrow)
        nl.addLayout(nb)
        self.neighbours_box.hide()
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.embed_title)
        rl.addLayout(grid, 1)
        legend = QLabel(_digit_legend())
        legend.setAlignment(Qt.AlignmentFlag.AlignCenter)
        rl.addWidget(legend)
        rl.addWidget(self.neighbours_box)
        page = QSplitter(Qt.Orientation.Horizontal)
        page.addWidget(left)
        page.addWidget(right)
        page.setChildrenCollapsible(False)
        page.setSizes([480, 520])
        return page

    def _build_layout(self) -> None:
        transport = QHBoxLayout()
        transport.setContentsMargins(6, 6, 6, 2)
        for b in (self.train_button, self.pause_button, self.resume_button, self.cancel_button):
            transport.addWidget(b)
        transport.addWidget(self.progress)
        transport.addWidget(self.status_label, 1)
        self.tabs = TabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self.pretext_page, "Pretext training")
        self.tabs.addTab(self.judge_page, "Judge the features")
        centre = QWidget()
        cl = QVBoxLayout(centre)
        cl.setContentsMargins(0, 0, 4, 4)
        cl.addLayout(transport)
        cl.addWidget(self.error_label)
        cl.addWidget(self.tabs, 1)
        centre.setMinimumWidth(520)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.left)
        self.splitter.addWidget(centre)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([360, 900])
        root = QHBoxLayout(self)
        root.setContentsMargins(0, 0, 0, 0)
        root.addWidget(self.splitter)

    # ================================================================================================ public API
    @property
    def state(self) -> str:
        """The pretext training: 'running', 'paused' or 'idle'."""
        return self.jobs.state("pretext") or "idle"

    @property
    def built_task(self) -> Any:
        """The picked task as built for its current options (its lecture, network, data), None until built."""
        key = self.model.settings.task
        cached = self._tasks.get(key)
        return cached[1] if cached is not None and cached[0] == self.model.options(key) else None

    def pick_task(self, key: str) -> None:
        """Choose a pretext task as the picker does."""
        write_widget(self.task_combo, key)

    def train(self) -> None:
        """Train the chosen task from fresh weights (a run already going is superseded)."""
        settings = self._read_settings()
        if settings is None:
            return
        self._show_error(None)
        self._reset_series()
        self._clear_pretext()
        self._clear_judgement()
        self.result = None
        self.previews_received = self.previews_drawn = 0
        key = settings.task
        self._run_key = key
        self._run_epochs = settings.epochs
        cached = self._tasks.get(key)
        self._run_total = 0
        if cached is not None and cached[0] == self.model.options(key):
            n = len(cached[1].data[0])
            self._run_total = iters_per_epoch(n, settings.batch_size) * settings.epochs
        self._show_run_kind()
        self.progress.setRange(0, max(self._run_total, 0))
        self.progress.setValue(0)
        self.status_label.setText(f"preparing the {TASKS[key].title} task…")
        self.jobs.start("pretext", lambda: self.model.pretext_job(settings), keep="all",
                        on_yield=self._on_pretext_items, on_done=self._on_pretext_done,
                        on_error=self._on_pretext_failed, on_cancel=self._on_pretext_cancelled)
        self.tabs.setCurrentWidget(self.pretext_page)
        self._update_buttons()

    def pause(self) -> None:
        if self.jobs.state("pretext") == "running":
            self.jobs.pause("pretext")
            self.status_label.setText(f"paused after {self._n_steps} updates")
            self._update_buttons()

    def resume(self) -> None:
        if self.jobs.state("pretext") == "paused":
            self.jobs.resume("pretext")
            self._update_buttons()

    def cancel(self) -> None:
        self.jobs.cancel("pretext")

    def run_probe(self) -> None:
        """The lecture's judgement of the kept encoder (a job; points arrive as they are measured)."""
        self._show_error(None)
        for c in self.probe_curves.values():
            c.setData([], [])
        self.probe_points = []
        self.probe_result = None
        self.probe_label.setText("measuring…")
        self.tabs.setCurrentWidget(self.judge_page)
        self.jobs.start("probe", lambda: self.model.probe_job(DEFAULT_FRACTIONS), keep="all",
                        on_yield=self._on_probe_items, on_done=self._on_probe_done,
                        on_error=self._on_job_failed("probe"), on_cancel=self._update_buttons)
        self._update_buttons()

    def run_embeddings(self, query: int | None = None) -> None:
        """Each encoder's features of held-out digits in 2-D (a job), with image ``query``'s neighbours."""
        s = self.embed_form.try_value()
        if s is None:
            return
        self._show_error(None)
        self.query = 0 if query is None else int(query)
        q = min(self.query, s.images - 1)
        self.tabs.setCurrentWidget(self.judge_page)
        self.embed_title.setText(f"Projecting each encoder's features ({'PCA' if s.projection == 'pca' else 't-SNE'})"
                                 f"…")
        self.jobs.start("embeddings", lambda: self.model.embeddings_job(s.projection, s.images, q, s.neighbours),
                        on_yield=self._on_progress_text, on_done=self._on_embeddings_done,
                        on_error=self._on_job_failed("embeddings"), on_cancel=self._update_buttons)
        self._update_buttons()

    def select_query(self, i: int) -> None:
        """Make held-out image i the image whose nearest neighbours are shown (as clicking its point does)."""
        if self.embeddings is None:
            return
        self.query = int(i)
        self._show_neighbours(self.embeddings.nearest(self.query))

    def send_encoder(self) -> None:
        """Emit encoder_sent with the kept encoder and the chosen mode (frozen for a linear probe, or not)."""
        try:
            handoff = self.model.encoder_handoff()
        except StudioError as exc:
            self._show_error(str(exc))
            return
        freeze = self.probe_radio.isChecked()
        self.status_label.setText(f"sent the {handoff.title} to the Playground "
                                  f"({'linear probe: encoder frozen' if freeze else 'fine-tune all'})")
        self.encoder_sent.emit(handoff, freeze)

    def close_lab(self) -> None:
        """Stop every job (waiting for them); the lab does nothing afterwards."""
        self._closed = True
        self._rebuild_timer.stop()
        self.jobs.close()

    def closeEvent(self, event) -> None:  # noqa: N802
        self.close_lab()
        super().closeEvent(event)

    # ================================================================================================ settings
    def _read_settings(self) -> SelfSupSettings | None:
        values = {**self.train_form.values(), **self.probe_form.values(), **self.temperature_form.values()}
        try:
            s = self.model.settings.replace(**values)
            self.model.set_settings(s)
        except StudioError as exc:
            self._show_error(str(exc))
            return None
        return self.model.settings

    def _on_settings_edited(self) -> None:
        if self._read_settings() is not None:
            self._show_error(None)

    def _on_options_edited(self) -> None:
        form = self.options_form
        if form is None:
            return
        options = form.try_value()
        if options is None:
            return
        try:
            self.model.set_options(self.model.settings.task, options)
        except StudioError as exc:
            form.error.setText(str(exc))
            form.error.show()
            return
        self._rebuild_timer.start()          # the task again with its new options (its network, its data)

    def _on_task_picked(self, _index: int) -> None:
        key = read_widget(self.task_combo)
        if key == self.model.settings.task:
            return
        try:
            self.model.set_settings(self.model.settings.replace(task=key))
        except StudioError as exc:
            self._show_error(str(exc))
            return
        self._show_task(key)
        self._build_task(key, defaults=True)

    def _build_task(self, key: str, defaults: bool) -> None:
        """Build task ``key`` in a job: its lecture and loss, and (``defaults``) the settings it trains well with."""
        options = self.model.options(key)

        def done(task: Any) -> None:
            self._tasks[key] = (options, task)
            if defaults and self.model.settings.task == key and self.jobs.state("pretext") is None:
                self.model.use_task_defaults(task)
            if self.model.settings.task == key:
                self._show_task(key)
            if self._run_key == key:
                self._show_run_kind()
            self._update_buttons()

        self.jobs.start(f"task:{key}", lambda: self.model.task_job(key), on_done=done,
                        on_error=self._on_job_failed("task"))
        if self.jobs.state("pretext") is None:
            self.status_label.setText(f"preparing the {TASKS[key].title} task…")

    def _on_model_changed(self, what: str) -> None:
        if self._closed:
            return
        if what in ("settings", "task"):
            self._show_settings()
        if what == "task":
            self.status_label.setText(f"{TASKS[self.model.settings.task].title}: ready, with the settings it trains "
                                      f"well with")
        self._update_buttons()

    def _show_settings(self) -> None:
        s = self.model.settings
        self.task_combo.blockSignals(True)
        write_widget(self.task_combo, s.task)
        self.task_combo.blockSignals(False)
        for form in (self.train_form, self.probe_form, self.temperature_form):
            form.set_value(s)

    def _show_task(self, key: str) -> None:
        """The picker's task: its lecture paragraph (once built), what it reads, its options form."""
        entry = TASKS[key]
        built = self._tasks.get(key)
        self.lecture_label.setText(built[1].lecture if built is not None else f"{entry.title}: preparing…")
        self.kind_label.setText("Reads the 8×8 digits (their labels are never used in training)."
                                if entry.input_kind == "digits" else
                                "Reads patches of scikit-learn's two sample photographs (no labels at all).")
        cls = options_class(key)
        if self.options_form is None or self.options_form.settings_cls is not cls:
            if self.options_form is not None:
                self.options_form.setParent(None)
                self.options_form.deleteLater()
                self.options_form = None
            if cls is not None:
                self.options_form = ParamForm(cls)
                self.options_form.edited.connect(self._on_options_edited)
                self.options_holder.addWidget(self.options_form)
        if self.options_form is not None:
            self.options_form.set_value(self.model.options(key))
        self.temperature_form.setVisible(key == "contrastive")
        self.no_options.setText("" if cls is not None else f"{entry.title} has no options of its own: the task "
                                                           f"and its network are fixed.")
        self.no_options.setVisible(cls is None)
        self.options_group.setTitle(f"Task options: {entry.title}" if key != "contrastive" else
                                    "Task options: the views and τ")

    # ================================================================================================ training
    def _reset_series(self) -> None:
        self._n_steps = 0
        self._steps: list[tuple[int, float, float]] = []
        self._step_arr = np.zeros((0, 3))
        self._epochs: list[EpochMetrics] = []
        self._decimators: dict[str, Decimated] = {}
        self._x_top = 0.0
        self._loss_span: tuple[float, float] | None = None

    def _show_run_kind(self) -> None:
        """The accuracy plot only for a discriminative task (an MSE task's 'accuracy' means nothing)."""
        key = self._run_key
        cached = self._tasks.get(key) if key is not None else None
        discriminative = cached is not None and cached[1].network.loss_kind != "mse"
        self.acc_plot.setVisible(discriminative)
        title = "Pretext loss"
        if cached is not None:
            loss = cached[1].network.loss_kind
            title += {"mse": ": mean squared error per output", "infonce": ": InfoNCE",
                      "softmax": ": softmax cross-entropy"}.get(loss, "")
        self.loss_plot.getPlotItem().setTitle(title, size="9.5pt")
        dips = ("Each epoch ends on a smaller batch: fewer other views to tell the partner from, so its loss dips "
                "and its accuracy jumps." if cached is not None and cached[1].network.loss_kind == "infonce" else "")
        self.loss_plot.setToolTip(dips)
        self.acc_plot.setToolTip(dips)
        if cached is not None:
            self.acc_plot.getPlotItem().setTitle(
                "Top-1 contrastive accuracy" if cached[1].network.loss_kind == "infonce" else
                "Accuracy on the pretext labels", size="9.5pt")
        entry = TASKS[key] if key else None
        self.side.setVisible(False)
        if entry is not None:
            if key == "autoencoder":
                self.side.setCurrentIndex(1)
                self.side.setVisible(True)
            elif key == "colourisation":
                self.side.setCurrentIndex(2)
                self.side.setVisible(True)

    def _on_pretext_items(self, items: list) -> None:
        steps, previews = [], []
        for it in items:
            if isinstance(it, StepMetrics):
                steps.append((it.iteration, it.loss, it.accuracy))
                if it.end_of_epoch and not self._run_total:
                    self._run_total = it.iteration * self._run_epochs
                    self.progress.setRange(0, self._run_total)
            elif isinstance(it, EpochMetrics):
                self._epochs.append(it)
            elif isinstance(it, PretextPreview):
                previews.append(it)
            elif isinstance(it, Progress):
                self.status_label.setText(it.message)
        if steps:
            self._steps.extend(steps)
            self._n_steps = steps[-1][0]
            self._draw_curves()
            if self._run_total:
                self.progress.setValue(min(self._n_steps, self._run_total))
            state = "paused" if self.jobs.state("pretext") == "paused" else "training"
            epoch = f" · epoch {len(self._epochs) + 1}/{self._run_epochs}" if len(self._epochs) < self._run_epochs \
                else ""
            self.status_label.setText(f"{state}: update {self._n_steps}"
                                      + (f"/{self._run_total}" if self._run_total else "") + epoch
                                      + f" · batch loss {steps[-1][1]:.4g}")
        if previews:
            self.previews_received += len(previews)
            self._draw_preview(previews[-1])

    def _draw_curves(self) -> None:
        a = np.asarray(self._steps, np.float64)
        x = a[:, 0]
        for name, col in (("loss", 1), ("accuracy", 2)):
            d = self._decimators.get(name)
            if d is None:
                d = self._decimators[name] = Decimated()
            self._set_curve(name, *d(x, a[:, col]))
        if self._epochs:
            e = self._epochs
            it = np.array([m.iteration for m in e], float)
            for name in ("train_loss", "val_loss", "train_accuracy", "val_accuracy"):
                self._set_curve(name, it, np.array([getattr(m, name) for m in e], float))
        if self._n_steps > self._x_top:
            self._x_top = _nice_ceiling(self._n_steps * 1.25)
            self.loss_plot.getPlotItem().setXRange(0, self._x_top, padding=0)
        losses = np.concatenate([a[:, 1], [m.train_loss for m in self._epochs], [m.val_loss for m in self._epochs]])
        losses = losses[np.isfinite(losses) & (losses > 0)]
        if losses.size:
            lo, hi = math.floor(math.log10(losses.min())), math.ceil(math.log10(losses.max()))
            span = (float(lo), float(max(hi, lo + 1)))
            if span != self._loss_span:
                self._loss_span = span
                _log_ticks(self.loss_plot, *span)

    def _set_curve(self, name: str, x: np.ndarray, y: np.ndarray) -> None:
        # PlotDataItems on a log plot take the values themselves (they map them to log10 coordinates)
        if name in self._log_curves:
            y = np.maximum(y, FLOOR)
        ok = np.isfinite(y)
        self.curves[name].setData(x[ok], y[ok])

    def _draw_preview(self, p: PretextPreview) -> None:
        self.last_preview = p
        self.previews_drawn += 1
        key = self._run_key or self.model.settings.task
        entry = TASKS[key]
        pv = p.preview
        self.preview_title.setText(f"Preview after {p.iteration} update{'s' if p.iteration != 1 else ''} "
                                   f"(held-out {'digits' if entry.input_kind == 'digits' else 'photo patches'})")
        self.preview.set_rows(pv.rows, ink=entry.input_kind == "digits")
        if pv.matrix is not None:
            self._draw_matrix(pv.matrix, pv.matrix_title, signed=key == "contrastive")
            self.side.setCurrentIndex(0)
            self.side.setVisible(True)
        if key == "autoencoder":
            self.jobs.start("latent", self.model.latent_job, on_done=self._draw_latent,
                            on_error=self._on_job_failed("latent"))

    def _draw_matrix(self, m: np.ndarray, title: str, signed: bool) -> None:
        m = np.asarray(m, np.float64)
        self.matrix_shown = m
        K = m.shape[0]
        self.matrix_item.setImage(matrix_rgb(m, signed), levels=(0, 255))
        self.matrix_item.setRect(QRectF(0, 0, m.shape[1], K))
        self.matrix_title.setText(title[:1].upper() + title[1:] if title else "")
        mp = self.matrix_plot.getPlotItem()
        mp.setRange(xRange=(0, m.shape[1]), yRange=(0, K), padding=0.02)
        if self._matrix_key != (self._run_key, m.shape):
            self._matrix_key = (self._run_key, m.shape)
            for ax, n in (("left", K), ("bottom", m.shape[1])):
                mp.getAxis(ax).setTicks([[(i + 0.5, t) for i, t in enumerate(_cell_names(self._run_key, n))], []])
        show = K <= MAX_CELL_TEXTS and m.shape[1] <= MAX_CELL_TEXTS
        while show and len(self._matrix_texts) < K * m.shape[1]:
            ti = pg.TextItem(anchor=(0.5, 0.5))
            ti.setFont(theme.font(7.5))
            mp.addItem(ti)
            self._matrix_texts.append(ti)
        top = max(float(np.abs(m).max()), 1e-12)
        shares = not signed and float(m.max()) <= 1.0 + 1e-9
        for j, ti in enumerate(self._matrix_texts):
            r, c = divmod(j, m.shape[1]) if show else (K, 0)
            if not show or r >= K:
                ti.setText("")
                continue
            v = m[r, c]
            text = "" if v == 0 else (f"{v:.2f}" if (signed or shares) else str(int(round(v))))
            ti.setText(text, color="w" if abs(v) / top > 0.6 else (theme.TEXT if r == c else theme.ERROR))
            ti.setPos(c + 0.5, r + 0.5)

    def _draw_latent(self, codes: Any) -> None:
        if codes is None:
            return
        self.latent_shown = codes
        brushes = plotting.brushes_by_class(codes.labels, CLASS_COLOURS[:10])
        self.latent_scatter.setData(x=codes.codes[:, 0], y=codes.codes[:, 1], brush=brushes)
        lt = self.latent_plot.getPlotItem()
        lt.setLabel("bottom", codes.axes[0])
        lt.setLabel("left", codes.axes[1])
        lt.autoRange()

    def _on_pretext_done(self, result: PretextResult) -> None:
        self.result = result
        q = result.quality
        better = (q.value > q.baseline) == q.higher_is_better and q.value != q.baseline
        base = "chance" if q.higher_is_better else "predicting the mean"
        colour = theme.VALUE_HEX if better else theme.ERROR.name()
        self.quality_label.setText(
            f"<b>{q.name[:1].upper() + q.name[1:]} <span style='color:{colour}'>"
            f"{_quality_value(q.value, q.higher_is_better)}</span></b> · {base} "
            f"{_quality_value(q.baseline, q.higher_is_better)} "
            f"({'better' if better else 'no better'} than the baseline). "
            f"<span style='color:{theme.MUTED_HEX}'>{q.text}</span>")
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        if self._n_steps:                       # the run is over: the curves fill the plots' width
            self._x_top = float(self._n_steps)
            self.loss_plot.getPlotItem().setXRange(0, self._x_top, padding=0.02)
        self.status_label.setText(f"{result.title}: trained, {result.iterations} updates"
                                  + ("" if result.finished else " (stopped early)"))
        if result.key == "colourisation":
            self._colour_photo()
        self._update_buttons()

    def _colour_photo(self) -> None:
        self.photo_note.setText("Colouring the whole photograph tile by tile…")
        self.jobs.start("photo", self.model.colourise_job, on_done=self._draw_photo,
                        on_error=self._on_job_failed("photo"))

    def _draw_photo(self, images: tuple) -> None:
        self.photo_shown = images
        for i, rgb in enumerate(images):
            self.photo_grid.set_image(i, np.ascontiguousarray(np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8)))
        self.photo_note.setText("The whole photograph coloured by the network, one patch at a time (tile borders "
                                "can show: each tile is coloured on its own).")

    def _on_pretext_failed(self, _exc: BaseException, text: str) -> None:
        self._show_error(text)
        self.status_label.setText("training stopped")
        self._update_buttons()

    def _on_pretext_cancelled(self) -> None:
        trained = self.model.trained
        n = trained[1] if trained is not None else 0
        self.status_label.setText(f"cancelled after {n} updates: the encoder of the last update is kept for the "
                                  f"probe and the hand-off")
        self.quality_label.setText("")
        if self._run_key == "colourisation" and n:
            self._colour_photo()
        self._update_buttons()

    def _clear_pretext(self) -> None:
        for c in self.curves.values():
            c.setData([], [])
        self.quality_label.setText("")
        self.preview.clear()
        self.preview_title.setText("Preview")
        self.last_preview = None
        self.matrix_shown = None
        self.matrix_item.clear()
        self.matrix_title.setText("")
        for ti in self._matrix_texts:
            ti.setText("")
        self.latent_shown = None
        self.latent_scatter.setData([], [])
        self.photo_shown = None
        for i in range(3):
            self.photo_grid.set_image(i, None)
        self.photo_note.setText("After training, the whole photograph is coloured tile by tile here.")
        self._loss_span = None
        _log_ticks(self.loss_plot, -2.0, 1.0)
        self.loss_plot.getPlotItem().setXRange(0, 10, padding=0)

    # ================================================================================================ judging
    def _on_probe_items(self, items: list) -> None:
        new = False
        for it in items:
            if isinstance(it, ProbePoint):
                self.probe_points.append(it)
                new = True
            elif isinstance(it, Progress):
                self.probe_label.setText(it.message)
        if new:
            for m in METHODS:
                pts = sorted((p.fraction, p.accuracy) for p in self.probe_points if p.method == m)
                if pts:
                    a = np.asarray(pts, np.float64)
                    self.probe_curves[m].setData(np.log10(100 * a[:, 0]), a[:, 1])

    def _on_probe_done(self, result: ProbeResult) -> None:
        self.probe_result = result
        for m in METHODS:
            self.probe_curves[m].setData(np.log10(100 * np.asarray(result.fractions, float)), result.accuracy[m])
        self.probe_label.setText(probe_summary(result, TASKS[result.task].title))
        self._update_buttons()

    def _on_progress_text(self, p: Any) -> None:
        if isinstance(p, Progress):
            self.embed_title.setText(p.message)

    def _on_embeddings_done(self, e: Embeddings) -> None:
        self.embeddings = e
        self.query = e.query
        name = "PCA" if e.projection == "pca" else "t-SNE"
        self.embed_title.setText(f"{name} of each encoder's features of {len(e.images)} held-out digits, coloured by "
                                 f"the true digit; the k-NN agreement is the share of each digit's {e.k} nearest "
                                 f"neighbours with its label. Click a point to choose the image.")
        brushes = plotting.brushes_by_class(e.labels, CLASS_COLOURS[:10])
        for space in SPACES:
            p = self.embed_plots[space].getPlotItem()
            sc = self.embed_scatters[space]
            if space in e.coords:
                xy = e.coords[space]
                sc.setData(x=xy[:, 0], y=xy[:, 1], brush=brushes, data=np.arange(len(xy)))
                p.setTitle(f"{space}<br>k-NN agreement {e.knn_agreement[space]:.0%}", size="8.5pt",
                           color=SPACE_COLOURS[space])      # two short lines fit a narrow plot
                p.autoRange()
            else:
                sc.setData([], [])
                for mark in self.embed_marks[space]:
                    mark.setData([], [])
                p.setTitle(f"{SPACE_LABELS[space]}<br>run the probe: it trains it", size="8.5pt",
                           color=theme.MUTED_HEX)
        self._show_neighbours(e.neighbours)
        self._update_buttons()

    def _on_point_clicked(self, _item: Any, points: Any, *_: Any) -> None:
        if len(points):
            self.select_query(int(points[0].data()))

    def _show_neighbours(self, neighbours: dict[str, np.ndarray]) -> None:
        e = self.embeddings
        q = self.query
        yq = int(e.labels[q])
        self.query_pic.setPixmap(digit_pixmap(e.images[q] * 16.0, 40))
        self.query_label.setText(f"<b>Held-out digit {q}</b> (label {yq}) and its {e.k} nearest neighbours in each "
                                 f"space (green: same label).")
        for space in SPACES:
            name, thumbs = self.neighbour_rows[space]
            nn = neighbours.get(space)
            near, star = self.embed_marks[space]
            if nn is None:
                name.setText("")
                thumbs.show_images(e.images, e.labels, np.zeros(0, np.int64), yq)
                continue
            same = int(np.sum(e.labels[nn] == yq))
            name.setText(f"{space}: {same}/{len(nn)}")
            thumbs.show_images(e.images, e.labels, nn, yq)
            xy = e.coords[space]
            near.setData(xy[nn, 0], xy[nn, 1], data=nn)
            star.setData([xy[q, 0]], [xy[q, 1]], data=[q])
        self.neighbours_box.show()

    def _clear_judgement(self) -> None:
        """A new pretext run: the old encoder's probe and embeddings no longer describe the kept one."""
        self.jobs.cancel("probe", notify=False)
        self.jobs.cancel("embeddings", notify=False)
        self.probe_result = None
        self.embeddings = None
        if not self.judge_page.is_built:        # nothing drawn yet: it is built from this state
            return
        for c in self.probe_curves.values():
            c.setData([], [])
        self.probe_label.setText("Train a pretext task on the digits, then press <b>Run the linear probe</b>: "
                                 "points appear as each probe is measured.")
        for space in SPACES:
            self.embed_scatters[space].setData([], [])
            for mark in self.embed_marks[space]:
                mark.setData([], [])
            self.embed_plots[space].getPlotItem().setTitle(SPACE_LABELS[space], size="8.5pt",
                                                           color=SPACE_COLOURS[space])
        self.neighbours_box.hide()

    # ================================================================================================ state
    def _on_job_failed(self, what: str):
        def show(_exc: BaseException, text: str) -> None:
            if what == "probe":
                self.probe_label.setText("")
            elif what == "embeddings":
                self.embed_title.setText("")
            elif what == "photo":
                self.photo_note.setText("")
            self._show_error(text)
            self._update_buttons()
        return show

    def _show_error(self, text: str | None) -> None:
        if text:
            self.error_label.setText("⚠ " + text)
            self.error_label.show()
        else:
            self.error_label.hide()

    def _update_buttons(self) -> None:
        if self._closed:
            return
        state = self.jobs.state("pretext")
        self.train_button.setEnabled(state is None)
        again = state is None and self.model.trained is not None
        self.train_button.setText("▶ Train again" if again else "▶ Train")
        self.pause_button.setEnabled(state == "running")
        self.resume_button.setEnabled(state == "paused")
        self.cancel_button.setEnabled(state is not None)
        idle = state is None
        for w in (self.task_combo, self.options_group, self.train_form):
            w.setEnabled(idle)
        judged = {self.probe_button: ("the linear probe", "Train a linear classifier on the frozen features"),
                  self.embed_button: ("the embedding", "Project each encoder's features to 2-D"),
                  self.send_button: ("sending the encoder to the Playground",
                                     "Open the Playground with this encoder and a fresh Linear(10) head")}
        reason = None
        for button, (what, tip) in judged.items():
            why = self.model.refusal(what)
            busy = state == "running" or (button is self.probe_button and self.jobs.running("probe")) or \
                (button is self.embed_button and self.jobs.running("embeddings"))
            button.setEnabled(why is None and not busy)
            button.setToolTip(why[:1].upper() + why[1:] if why else tip)
            reason = reason or why
        if self.probe_result is None and not self.jobs.running("probe") and self.judge_page.is_built:
            self.probe_label.setText(reason[:1].upper() + reason[1:] + "." if reason and self.model.trained else
                                     "Train a pretext task on the digits, then press <b>Run the linear probe</b>: "
                                     "points appear as each probe is measured.")
        if reason and self.model.trained is not None:
            self.judge_note.setText(reason[:1].upper() + reason[1:] + ".")
            self.judge_note.setStyleSheet(MUTED_STYLE)
        elif state == "running":
            self.judge_note.setText("Pause or let training finish to judge the encoder of that moment.")
            self.judge_note.setStyleSheet(MUTED_STYLE)
        elif self.model.trained is not None:
            key, n = self.model.trained
            self.judge_note.setText(f"Judges the {TASKS[key].title} encoder after {n} updates.")
            self.judge_note.setStyleSheet(MUTED_STYLE)
        else:
            self.judge_note.setText("Train a pretext task on the digits first.")
            self.judge_note.setStyleSheet(MUTED_STYLE)


def _nice_ceiling(v: float) -> float:
    """The smallest of 1, 2, 5 x 10^k that is >= v (v > 0)."""
    e = 10.0 ** math.floor(math.log10(v))
    return next(m * e for m in (1, 2, 5, 10) if m * e >= v)


def _judge_widget(name: str) -> property:
    """A widget of the "Judge the features" page: reading it builds the page first if it is not built yet (the
    builder sets it; it reads only widgets it has set)."""
    def get(self: SelfSupervisedLab) -> Any:
        widgets = self.__dict__.setdefault("_judge_widgets", {})
        if name not in widgets:
            self.judge_page.page()
        return widgets[name]

    def set_(self: SelfSupervisedLab, value: Any) -> None:
        self.__dict__.setdefault("_judge_widgets", {})[name] = value
    return property(get, set_, doc=f"{name} of the Judge the features page (built when first asked for)")


for _name in ("probe_plot", "probe_curves", "probe_label", "embed_title", "embed_plots", "embed_scatters",
              "embed_marks", "query_pic", "query_label", "neighbour_rows", "neighbours_box"):
    setattr(SelfSupervisedLab, _name, _judge_widget(_name))
del _name
