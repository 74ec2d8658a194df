"""The data-augmentation preview: a few training images (rows) next to fresh random draws of the augmentation pipeline
(columns), recomputed at every change of a control; mixup and CutMix cells show their soft labels.

The model is simulator.data.datasets (AugmentSettings declares every control's range, default, label and help;
augment_preview computes the grid; no Qt). The grid is cheap (a few dozen 8x8 images), so it is recomputed
synchronously; column j draws from ``np.random.default_rng([seed, j])``, so a seed always gives the same grid and a
test can replay any column.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import QRect, QSize, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (
    QButtonGroup,
    QDialog,
    QFrame,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QRadioButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from gui import theme
from gui.forms import changed_signal, param_widget, read_widget, write_widget
from gui.labs.common import MUTED_STYLE, control_column, digit_pixmap, muted
from simulator.core.params import params_of
from simulator.data import datasets
from simulator.data.datasets import MIX_MODES, AugmentSettings

__all__ = [
    "MIX_MODES",
    "AugmentDialog",
    "AugmentSettings",
    "AugmentView",
    "show_augment_preview",
    "soft_label_text",
]

ROWS = 6            # source images shown
SAMPLES = 5         # augmented draws per source image
BATCH = 32          # the mini-batch the sources sit in (mixup and CutMix partners come from it)
BORDER = QColor("#cdd3dc")
# How each amount is shown beside its check box: (prefix, suffix, arrow step). Ranges, defaults and help text are
# AugmentSettings' declarations.
_SHOWN = {"flip": ("p = ", "", 0.1), "shift": ("pad ", " px", 1), "degrees": ("± ", "°", 5.0),
          "brightness": ("b ± ", "", 0.05), "contrast": ("c ± ", "", 0.05), "cutout": ("square ", " px", 1),
          "mixup_alpha": ("α = ", "", 0.1), "cutmix_alpha": ("α = ", "", 0.1)}
MIX_NOTES = {"none": "Each augmented image keeps its own one-hot label.",
             "mixup": "Blend two images, x = λa + (1−λ)b with λ ~ Beta(α, α); the labels blend the same way.",
             "cutmix": "Paste a box from another image; the labels mix by the pasted area's share."}


def soft_label_text(p: np.ndarray) -> str:
    """A soft label by its two largest weights, "0.62·3 + 0.38·7" (one term when the rest is ~0)."""
    p = np.asarray(p, np.float64)
    order = np.argsort(-p, kind="stable")
    a, b = int(order[0]), int(order[1]) if len(order) > 1 else -1
    if b < 0 or p[b] < 0.005:
        return f"{p[a]:.2f}·{a}"
    return f"{p[a]:.2f}·{a} + {p[b]:.2f}·{b}"


def _gray_pixmap(img: np.ndarray, size: int, vmax: float) -> QPixmap:
    """Any single-channel (or channel-averaged) image as ink on white, nearest-neighbour scaled to size x size."""
    a = np.asarray(img, np.float64)
    a = a.mean(axis=0) if a.ndim == 3 else a
    if a.shape == (8, 8):
        return digit_pixmap(a * (16.0 / vmax), size)   # the digits' own look, shared with the other labs
    h, w = a.shape
    g = np.ascontiguousarray(np.round(255.0 - np.clip(a / vmax, 0, 1) * 225.0).astype(np.uint8))
    qimg = QImage(g.data, w, h, w, QImage.Format.Format_Grayscale8).copy()
    return QPixmap.fromImage(qimg.scaled(size, size, Qt.AspectRatioMode.IgnoreAspectRatio,
                                         Qt.TransformationMode.FastTransformation))


class _ImageCellView(QWidget):
    """One picture, drawn at the largest whole multiple of its pixel size that fits (crisp cells), with a border."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.image: np.ndarray | None = None
        self.vmax = 16.0
        self.highlight = False
        self._pixmap: QPixmap | None = None
        self.setMinimumSize(40, 40)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def set_image(self, img: np.ndarray, vmax: float) -> None:
        self.image, self.vmax, self._pixmap = img, vmax, None
        self.update()

    def sizeHint(self) -> QSize:
        return QSize(96, 96)

    def _side(self) -> int:
        n = self.image.shape[-1] if self.image is not None else 8
        avail = min(self.width(), self.height()) - 2
        return max(n, (avail // n) * n)

    def paintEvent(self, event) -> None:
        if self.image is None:
            return
        side = self._side()
        if self._pixmap is None or self._pixmap.width() != side:
            self._pixmap = _gray_pixmap(self.image, side, self.vmax)
        r = QRect((self.width() - side) // 2, (self.height() - side) // 2, side, side)
        p = QPainter(self)
        p.drawPixmap(r, self._pixmap)
        p.setPen(QPen(QColor(theme.ACCENT_HEX) if self.highlight else BORDER, 1))
        p.drawRect(r.adjusted(0, 0, -1, -1))
        p.end()


class AugmentView(QWidget):
    """Controls on the left, the grid (ROWS sources x original + SAMPLES draws) on the right.

    State for tests: ``cells`` (rows, samples + 1, C, H, W) and ``cell_labels`` (rows, samples + 1, classes) as
    computed; ``captions`` (rows x (samples + 1) plain text); ``batch_images``/``batch_labels`` the mini-batch the
    sources are the first rows of; ``settings()``. Children: flip_check/flip_box, shift_check/shift_box,
    rotate_check/rotate_box, bc_check/brightness_box/contrast_box, cutout_check/cutout_box, mix_radios (mode ->
    QRadioButton), mixup_alpha_box, cutmix_alpha_box, seed_box, shuffle_button, images_button, cell_views,
    caption_labels, pipeline_label.

    ``settings_changed(AugmentSettings)`` fires after each change of a control (the playground trains with them);
    ``set_settings(s)`` shows settings without firing it.
    """

    settings_changed = Signal(object)

    def __init__(self, images: Any = None, labels: Any = None, parent: QWidget | None = None,
                 rows: int = ROWS, samples: int = SAMPLES):
        super().__init__(parent)
        self.rows_wanted, self.samples = rows, samples
        self.images = np.zeros((0, 1, 8, 8))
        self.labels = np.zeros(0, np.int64)
        self.classes = 10
        self.vmax = 16.0
        self.pick = 0                     # which set of source images ("Other images" moves on)
        self.batch_images = np.zeros((0, 1, 8, 8))
        self.batch_labels = np.zeros(0, np.int64)
        self.cells = np.zeros((0, samples + 1, 1, 8, 8))
        self.cell_labels = np.zeros((0, samples + 1, 10))
        self.captions: list[list[str]] = []
        self.recomputes = 0
        self._building = True
        self._build_controls()
        self._build_layout()
        self._building = False
        if images is None:
            images, labels = datasets.load_digits()
        self.set_data(images, labels)

    # ============================================================================================== construction
    def _build_controls(self) -> None:
        """One control per declared AugmentSettings parameter (gui.forms.param_widget), under the names tests use;
        the mixing mode is a row of radio buttons labelled by its declared choice labels."""
        self.params = {p.name: p for p in params_of(AugmentSettings)}
        self.controls: dict[str, QWidget] = {}
        for name, p in self.params.items():
            if p.choices is not None:
                continue
            w = param_widget(p)
            if p.kind is bool:
                w.setText(p.title)
            else:
                w.setToolTip(f"{p.title}: {p.doc}" if p.doc else p.title)
            if name in _SHOWN:
                prefix, suffix, step = _SHOWN[name]
                w.setPrefix(prefix)
                w.setSuffix(suffix)
                w.setSingleStep(step)
            self.controls[name] = w
        c = self.controls
        self.flip_check, self.flip_box = c["flip_on"], c["flip"]
        self.shift_check, self.shift_box = c["shift_on"], c["shift"]
        self.rotate_check, self.rotate_box = c["rotate_on"], c["degrees"]
        self.bc_check, self.brightness_box, self.contrast_box = c["bc_on"], c["brightness"], c["contrast"]
        self.cutout_check, self.cutout_box = c["cutout_on"], c["cutout"]
        self.mixup_alpha_box, self.cutmix_alpha_box = c["mixup_alpha"], c["cutmix_alpha"]
        self.seed_box = c["seed"]
        self.seed_box.setToolTip(self.params["seed"].doc)

        mix = self.params["mix"]
        self.mix_group = QButtonGroup(self)
        self.mix_radios = {m: QRadioButton(mix.choice_label(m)) for m in mix.choices}
        for i, r in enumerate(self.mix_radios.values()):
            self.mix_group.addButton(r, i)
        self.mix_radios[mix.default].setChecked(True)

        self.shuffle_button = QPushButton("⟳ Shuffle")
        self.shuffle_button.setToolTip("New random draws (the next seed)")
        self.images_button = QPushButton("Other images")
        self.images_button.setToolTip("Show a different set of source images")
        self.shuffle_button.clicked.connect(self.shuffle)
        self.images_button.clicked.connect(self.next_images)

        for w in self.controls.values():
            changed_signal(w).connect(self._on_settings_changed)
        self.mix_group.idToggled.connect(lambda _id, on: on and self._on_settings_changed())

    def _build_layout(self) -> None:
        def row(check: QWidget, *boxes: QWidget) -> QHBoxLayout:
            h = QHBoxLayout()
            h.setContentsMargins(0, 0, 0, 0)
            h.addWidget(check, 1)
            for b in boxes:
                b.setFixedWidth(100)
                h.addWidget(b)
            return h

        lp = QVBoxLayout()
        lp.setSpacing(3)
        for switch, boxes in (("flip_on", (self.flip_box,)), ("shift_on", (self.shift_box,)),
                              ("rotate_on", (self.rotate_box,)),
                              ("bc_on", (self.brightness_box, self.contrast_box)),
                              ("cutout_on", (self.cutout_box,))):
            check, why = self.controls[switch], self.params[switch].doc
            if len(boxes) > 1:              # two amounts: a line of their own under the check box
                lp.addWidget(check)
                h = row(QWidget(), *boxes)
                h.setContentsMargins(22, 0, 0, 0)
                lp.addLayout(h)
            else:
                lp.addLayout(row(check, *boxes))
            lab = muted(why, 8.5)
            lab.setContentsMargins(22, 0, 0, 6)
            lp.addWidget(lab)
        lp_box = QGroupBox("Label-preserving transforms")
        lp_box.setLayout(lp)

        mx = QVBoxLayout()
        mx.setSpacing(3)
        for mode, boxes in (("none", ()), ("mixup", (self.mixup_alpha_box,)), ("cutmix", (self.cutmix_alpha_box,))):
            why = MIX_NOTES[mode]
            mx.addLayout(row(self.mix_radios[mode], *boxes))
            lab = muted(why, 8.5)
            lab.setContentsMargins(22, 0, 0, 6)
            mx.addWidget(lab)
        mx_box = QGroupBox("Mixing (soft labels)")
        mx_box.setLayout(mx)

        sm = QHBoxLayout()
        sm.addWidget(QLabel(self.params["seed"].title))
        sm.addWidget(self.seed_box, 1)
        sm.addWidget(self.shuffle_button)
        sm2 = QVBoxLayout()
        sm2.addLayout(sm)
        sm2.addWidget(self.images_button)
        sm2.addWidget(muted("The playground's Train with augmentation uses these settings, mixing included: each "
                            "mini-batch gets fresh draws every epoch, so the net never sees the same picture twice.",
                            8.5))
        sm_box = QGroupBox("Random draws")
        sm_box.setLayout(sm2)

        left = control_column([lp_box, mx_box, sm_box], width=350)

        # ---- the grid
        title = QLabel("Data augmentation")
        title.setStyleSheet(f"color: {theme.INK_HEX}; font-size: 12pt; font-weight: 600;")
        self.purpose_label = QLabel()
        self.purpose_label.setWordWrap(True)
        self.purpose_label.setStyleSheet(MUTED_STYLE)
        self.pipeline_label = QLabel()
        self.pipeline_label.setStyleSheet(f"color: {theme.INK_HEX}; font-family: monospace;")
        self.pipeline_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

        self.grid = QGridLayout()
        self.grid.setHorizontalSpacing(10)
        self.grid.setVerticalSpacing(2)
        self.header_labels: list[QLabel] = []
        for j in range(self.samples + 1):
            h = QLabel("original" if j == 0 else f"draw {j}")
            h.setAlignment(Qt.AlignmentFlag.AlignCenter)
            h.setStyleSheet(f"color: {theme.INK_HEX if j == 0 else theme.MUTED_HEX}; font-weight: 600;")
            self.grid.addWidget(h, 0, self._grid_col(j))
            self.header_labels.append(h)
        line = QFrame()
        line.setFrameShape(QFrame.Shape.VLine)
        line.setStyleSheet(f"color: {BORDER.name()};")
        self.grid.addWidget(line, 0, 1, 2 * self.rows_wanted + 1, 1)
        self.cell_views: list[list[_ImageCellView]] = []
        self.caption_labels: list[list[QLabel]] = []
        for r in range(self.rows_wanted):
            views, caps = [], []
            for j in range(self.samples + 1):
                v = _ImageCellView()
                v.highlight = j == 0
                cap = QLabel()
                cap.setAlignment(Qt.AlignmentFlag.AlignCenter)
                cap.setFont(theme.font(8.5, mono=True))
                cap.setTextFormat(Qt.TextFormat.RichText)
                self.grid.addWidget(v, 1 + 2 * r, self._grid_col(j))
                self.grid.addWidget(cap, 2 + 2 * r, self._grid_col(j))
                views.append(v)
                caps.append(cap)
            self.grid.setRowStretch(1 + 2 * r, 1)
            self.cell_views.append(views)
            self.caption_labels.append(caps)
        for j in range(self.samples + 1):
            self.grid.setColumnStretch(self._grid_col(j), 1)
        self.grid.setColumnMinimumWidth(1, 6)

        canvas = QFrame()
        canvas.setObjectName("AugmentCanvas")
        canvas.setStyleSheet("QFrame#AugmentCanvas { background: #ffffff; border: 1px solid #dde1e7; "
                             "border-radius: 4px; }")
        canvas.setLayout(self.grid)
        self.grid.setContentsMargins(12, 10, 12, 10)

        right = QVBoxLayout()
        right.setContentsMargins(8, 8, 10, 8)
        right.addWidget(title)
        right.addWidget(self.purpose_label)
        right.addWidget(self.pipeline_label)
        right.addWidget(canvas, 1)

        root = QHBoxLayout(self)
        root.setContentsMargins(0, 0, 0, 0)
        root.addWidget(left)
        root.addLayout(right, 1)

    @staticmethod
    def _grid_col(j: int) -> int:
        return 0 if j == 0 else j + 1      # grid column 1 holds the line after the originals

    # ================================================================================================ public API
    def set_data(self, images: Any, labels: Any) -> None:
        """images (N, C, H, W) float, labels (N,) int >= 0."""
        x = np.asarray(images, np.float64)
        y = np.asarray(labels).astype(np.int64).ravel()
        if x.ndim != 4 or len(x) != len(y) or len(x) == 0:
            raise ValueError(f"AugmentView needs images (N, C, H, W) and N labels, got {x.shape} and {y.shape}")
        self.images, self.labels = x, y
        self.classes = max(int(y.max()) + 1, 2)
        self.vmax = float(x.max()) if x.max() > 0 else 1.0
        self.pick = 0
        self._choose_batch()
        self._recompute()

    def settings(self) -> AugmentSettings:
        """What the controls say, as the declared (validated) settings."""
        values = {name: read_widget(w) for name, w in self.controls.items()}
        return AugmentSettings(**values, mix=MIX_MODES[max(self.mix_group.checkedId(), 0)])

    def set_mix(self, mode: str) -> None:
        self.mix_radios[mode].setChecked(True)

    def set_settings(self, settings: AugmentSettings) -> None:
        """Show ``settings`` on the controls and recompute the grid (settings_changed is not emitted)."""
        if not isinstance(settings, AugmentSettings):
            raise TypeError(f"settings must be AugmentSettings, got {settings!r}")
        self._building = True
        try:
            for name, w in self.controls.items():
                w.blockSignals(True)
                write_widget(w, getattr(settings, name))
                w.blockSignals(False)
            self.mix_group.blockSignals(True)
            self.mix_radios[settings.mix].setChecked(True)
            self.mix_group.blockSignals(False)
        finally:
            self._building = False
        self._recompute()

    def shuffle(self) -> None:
        """Fresh random draws: the next seed (shown, so any grid can be brought back)."""
        s = self.seed_box.value() + 1
        self.seed_box.setValue(s if s <= self.seed_box.maximum() else 0)

    def next_images(self) -> None:
        self.pick += 1
        self._choose_batch()
        self._recompute()

    # ================================================================================================ internals
    def _choose_batch(self) -> None:
        """A mini-batch of BATCH images whose first rows are of distinct classes where the data allow."""
        n = len(self.images)
        rng = np.random.default_rng([7919, self.pick])
        order = rng.permutation(n)
        first: list[int] = []
        seen: set[int] = set()
        for i in order:
            if int(self.labels[i]) not in seen:
                first.append(int(i))
                seen.add(int(self.labels[i]))
            if len(first) == self.rows_wanted:
                break
        for i in order:                     # fewer classes than rows: fill up with the next images
            if len(first) >= min(self.rows_wanted, n):
                break
            if int(i) not in first:
                first.append(int(i))
        rest = [int(i) for i in order if int(i) not in first][:max(BATCH - len(first), 0)]
        idx = np.array(first + rest, np.int64)
        self.batch_images, self.batch_labels = self.images[idx], self.labels[idx]

    def _on_settings_changed(self, *_: Any) -> None:
        if not self._building:
            self._recompute()
            self.settings_changed.emit(self.settings())

    def _recompute(self) -> None:
        s = self.settings()
        rows = min(self.rows_wanted, len(self.batch_images))
        self.cells, self.cell_labels = datasets.augment_preview(self.batch_images, self.batch_labels, rows,
                                                                self.samples, s, self.classes)
        self.recomputes += 1
        self.captions = []
        for r in range(self.rows_wanted):
            caps: list[str] = []
            for j in range(self.samples + 1):
                view, label = self.cell_views[r][j], self.caption_labels[r][j]
                view.setVisible(r < rows)
                label.setVisible(r < rows)
                if r >= rows:
                    continue
                view.set_image(self.cells[r, j], self.vmax)
                p = self.cell_labels[r, j]
                if j == 0 or s.mix == "none":
                    text = f"label {int(np.argmax(p))}"
                    label.setText(f"<span style='color:{theme.INK_HEX if j == 0 else theme.MUTED_HEX}'>"
                                  f"{text}</span>")
                else:
                    text = soft_label_text(p)
                    head, _, tail = text.partition(" + ")
                    label.setText(f"<b style='color:{theme.INK_HEX}'>{head}</b>"
                                  + (f"<span style='color:{theme.MUTED_HEX}'> + {tail}</span>" if tail else ""))
                view.setToolTip("soft label  " + "  ".join(f"{k}:{w:.2f}" for k, w in enumerate(p) if w > 0.005))
                caps.append(text)
            if r < rows:
                self.captions.append(caps)
        self._update_text(s)

    def _update_text(self, s: AugmentSettings) -> None:
        if s.mix == "none":
            self.purpose_label.setText(
                "Label-preserving transforms turn each training image into many plausible ones with the same "
                "label: more data for free, and a net that ignores what should not matter.")
        else:
            self.purpose_label.setText(
                f"{'Mixup' if s.mix == 'mixup' else 'CutMix'} mixes each image with a partner from its mini-batch "
                f"and mixes their labels too: the net is trained on soft labels (two largest weights shown), "
                f"which calms over-confident predictions.")
        steps = s.pipeline()
        self.pipeline_label.setText("pipeline:  " + ("  →  ".join(steps) if steps else "nothing (draws = originals)")
                                    + f"      seed {s.seed}")


class AugmentDialog(QDialog):
    """An AugmentView in its own non-modal window."""

    def __init__(self, images: Any = None, labels: Any = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Data augmentation preview")
        self.setModal(False)
        self.view = AugmentView(images, labels, self)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.view)
        self.resize(1400, 860)


def show_augment_preview(parent: QWidget, images: Any = None, labels: Any = None) -> AugmentDialog:
    """Open (or raise) the parent's one augmentation preview window, non-modal."""
    dlg = getattr(parent, "augment_dialog", None)
    if dlg is None:
        dlg = AugmentDialog(images, labels, parent)
        parent.augment_dialog = dlg
    dlg.show()
    dlg.raise_()
    dlg.activateWindow()
    return dlg
