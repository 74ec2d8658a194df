"""The convolution lab (lecture 5): one conv layer animated cell by cell, its backward pass as correlations, max
pooling's gradient routing, and hand-made filters on real images.

The numbers come from simulator.labs.conv_mechanics (traces and explicit backward grids, checked there against
simulator.functional.layers); this module only draws them. Grids are painted by ``GridView`` (QPainter); the animation is one
QTimer stepping through the pre-computed frames.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QPainter, QPen
from PySide6.QtWidgets import (QComboBox, QDoubleSpinBox, QFormLayout, QGridLayout, QHBoxLayout, QLabel,
                               QPushButton, QSizePolicy, QSlider, QSpinBox, QTabWidget, QVBoxLayout,
                               QWidget)

from gui import theme
from gui.labs.common import control_column, group, muted
from simulator.data import datasets
from simulator.functional import layers
from simulator.labs.conv_mechanics import (FILTER_NOTES, FILTERS, PHOTOS, apply_filter, conv_backward_explicit,
                                      conv_trace, format_number, load_photo, max_pool_backward_explicit,
                                      max_pool_trace, output_size)
from simulator.core.errors import ShapeError

__all__ = ["ConvLab", "GridView"]

ERROR_STYLE = f"color: {theme.ERROR.name()}; background: #fbeaea; border: 1px solid #f0c9c6; border-radius: 4px; " \
              f"padding: 6px;"
OK_STYLE = f"color: {theme.INK_HEX}; background: #eef5ee; border: 1px solid #cfe3d2; border-radius: 4px; padding: 6px;"
PAD_FILL = QColor("#eceef2")
CELL_LINE = QColor("#d3d8df")
ACCENT = QColor(theme.ACCENT_HEX)
WINDOW_FILL = QColor(47, 116, 208, 38)
MARK = QColor("#e08a00")
HUBEL_WIESEL = ("Hubel and Wiesel found cells in the cat's visual cortex that fire for edges of one orientation: "
                "the Sobel filters are hand-made versions of what a CNN's first layer learns by itself.")


class GridView(QWidget):
    """A grid of numbers painted with QPainter: monospace values, subtle colours, padding cells shaded, windows
    outlined in the accent colour. ``values`` (H, W) include any padding ring of width ``pad``.

    Signals: cell_clicked(row, col, button) in unpadded coordinates (only when editable and not on padding).
    """

    cell_clicked = Signal(int, int, object)

    def __init__(self, title: str = "", colours: str = "neutral", max_cell: int = 46, parent: QWidget | None = None):
        super().__init__(parent)
        self.title = title
        self.colours = colours            # "neutral", "diverging" (values), "gradient" (red/blue, lighter)
        self.max_cell = max_cell
        self.values = np.zeros((0, 0))
        self.pad = 0
        self.shown: np.ndarray | None = None        # bool mask: cells with a value so far (None: all)
        self.windows: list[tuple[int, int, int, int, QColor, bool]] = []   # r, c, h, w, colour, filled
        self.marks: set[tuple[int, int]] = set()
        self.editable = False
        self.subtitle = ""
        self.setMinimumSize(QSize(120, 120))
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self._font = theme.font(9.5, mono=True)
        self._title_font = theme.font(9.5, QFont.Weight.DemiBold)

    def set_values(self, values: np.ndarray, pad: int = 0, shown: np.ndarray | None = None) -> None:
        self.values = np.asarray(values, dtype=np.float64)
        self.pad = int(pad)
        self.shown = shown
        self.update()

    def set_windows(self, windows: list[tuple[int, int, int, int, QColor, bool]]) -> None:
        self.windows = list(windows)
        self.update()

    def set_marks(self, marks: set[tuple[int, int]]) -> None:
        self.marks = set(marks)
        self.update()

    # ---- geometry
    def _layout(self) -> tuple[float, float, float]:
        rows, cols = self.values.shape if self.values.size else (1, 1)
        top = 24.0
        bottom = 18.0 if self.subtitle else 4.0
        cell = min((self.width() - 8) / cols, (self.height() - top - bottom) / rows, float(self.max_cell))
        cell = max(cell, 8.0)
        x0 = (self.width() - cell * cols) / 2
        return x0, top, cell

    def cell_rect(self, r: int, c: int) -> QRectF:
        x0, y0, cell = self._layout()
        return QRectF(x0 + c * cell, y0 + r * cell, cell, cell)

    def sizeHint(self) -> QSize:  # noqa: N802
        rows, cols = self.values.shape if self.values.size else (5, 5)
        return QSize(int(cols * 36 + 16), int(rows * 36 + 46))

    # ---- painting
    def _fill(self, v: float, scale: float) -> QColor:
        if self.colours == "neutral" or scale == 0:
            return QColor("#ffffff")
        t = max(-1.0, min(1.0, v / scale)) * 0.42           # subtle: at most 42% of the way to the colour
        pos, neg = (QColor("#c8372d"), QColor("#3b6fb6"))
        target = pos if t >= 0 else neg
        a = abs(t)
        return QColor(round(255 + a * (target.red() - 255)), round(255 + a * (target.green() - 255)),
                      round(255 + a * (target.blue() - 255)))

    def paintEvent(self, event) -> None:  # noqa: N802
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        p.setFont(self._title_font)
        p.setPen(QColor(theme.INK_HEX))
        p.drawText(QRectF(0, 2, self.width(), 20), Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignVCenter,
                   self.title)
        if not self.values.size:
            p.setPen(QColor(theme.MUTED_HEX))
            p.drawText(QRectF(0, 24, self.width(), self.height() - 24), Qt.AlignmentFlag.AlignCenter, "—")
            p.end()
            return
        rows, cols = self.values.shape
        x0, y0, cell = self._layout()
        scale = float(np.max(np.abs(self.values))) if self.values.size else 0.0
        font = QFont(self._font)
        font.setPointSizeF(max(6.5, min(10.5, cell * 0.26)))
        p.setFont(font)
        P = self.pad
        for r in range(rows):
            for c in range(cols):
                rect = self.cell_rect(r, c)
                is_pad = P > 0 and (r < P or c < P or r >= rows - P or c >= cols - P)
                shown = self.shown is None or bool(self.shown[r, c])
                fill = PAD_FILL if is_pad else (self._fill(self.values[r, c], scale) if shown else QColor("#fafbfc"))
                p.fillRect(rect, fill)
                p.setPen(QPen(CELL_LINE, 1))
                p.drawRect(rect)
                if shown:
                    p.setPen(QColor(theme.MUTED_HEX) if is_pad else QColor(theme.INK_HEX))
                    p.drawText(rect, Qt.AlignmentFlag.AlignCenter, format_number(self.values[r, c]))
        for (r, c) in self.marks:
            if 0 <= r < rows and 0 <= c < cols:
                p.setPen(QPen(MARK, 2.4))
                p.drawRect(self.cell_rect(r, c).adjusted(2, 2, -2, -2))
        for (r, c, h, w, colour, filled) in self.windows:
            rect = QRectF(x0 + c * cell, y0 + r * cell, w * cell, h * cell)
            if filled:
                fill = QColor(colour)
                fill.setAlpha(40)
                p.fillRect(rect, fill)
            p.setPen(QPen(colour, 2.6))
            p.drawRect(rect.adjusted(1, 1, -1, -1))
        # outer frame of the real (unpadded) grid
        if P:
            p.setPen(QPen(QColor("#8d97a5"), 1.2, Qt.PenStyle.DashLine))
            p.drawRect(QRectF(x0 + P * cell, y0 + P * cell, (cols - 2 * P) * cell, (rows - 2 * P) * cell))
        if self.subtitle:
            p.setFont(theme.font(8.5))
            p.setPen(QColor(theme.MUTED_HEX))
            p.drawText(QRectF(0, y0 + rows * cell + 2, self.width(), 16), Qt.AlignmentFlag.AlignHCenter,
                       self.subtitle)
        p.end()

    def mousePressEvent(self, event) -> None:  # noqa: N802
        if not self.editable or not self.values.size:
            return
        x0, y0, cell = self._layout()
        pos = event.position()
        c, r = int((pos.x() - x0) // cell), int((pos.y() - y0) // cell)
        rows, cols = self.values.shape
        P = self.pad
        if P <= r < rows - P and P <= c < cols - P:
            self.cell_clicked.emit(r - P, c - P, event.button())


def _spin(lo: int, hi: int, value: int) -> QSpinBox:
    b = QSpinBox()
    b.setRange(lo, hi)
    b.setValue(value)
    b.setKeyboardTracking(False)
    return b


class ConvLab(QWidget):
    """One convolution layer, forwards (animated) and backwards, max pooling, and hand-made filters.

    Children for tests: n_box, f_box, s_box, p_box, bias_box, random_input_button, random_filter_button, size_label,
    play_button, pause_button, step_button, reset_button, speed_slider, tabs, input_view, filter_view, output_view,
    dot_label, bw_xpad_view, bw_dout_view, bw_dw_view, bw_full_view, bw_flip_view, bw_dx_view, db_label,
    check_label, random_dout_button, pool_size_box, pool_stride_box, pool_random_button, pool_input_view,
    pool_output_view, pool_dout_view, pool_dx_view, pool_label, filter_combo, image_combo, digit_box, kernel_view,
    original_item, filtered_item, filter_caption.
    State: x, w, b, dout, frames, frame_index (-1 before the first cell), backward (ConvBackward or None).
    """

    frame_shown = Signal(int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._rng = np.random.default_rng(231)
        self.x = self._rng.integers(0, 4, (5, 5)).astype(np.float64)
        self.w = self._rng.integers(-1, 2, (3, 3)).astype(np.float64)
        self.b = 0.0
        self.dout = np.zeros((0, 0))
        self.frames: list = []
        self.frame_index = -1
        self.backward = None
        self.error = ""
        self._digits: tuple[np.ndarray, np.ndarray] | None = None
        self._photos: dict[str, np.ndarray] = {}
        self._timer = QTimer(self)
        self._timer.setInterval(450)
        self._timer.timeout.connect(self._on_tick)
        self._build()
        self._recompute()
        self._update_pool()
        self._update_filter()

    # ================================================================================================ build
    def _build(self) -> None:
        self.n_box, self.f_box, self.s_box, self.p_box = _spin(2, 9, 5), _spin(1, 7, 3), _spin(1, 4, 1), _spin(0, 3, 1)
        self.bias_box = QDoubleSpinBox()
        self.bias_box.setRange(-9, 9)
        self.bias_box.setDecimals(1)
        self.bias_box.setValue(0.0)
        self.bias_box.setKeyboardTracking(False)
        self.random_input_button = QPushButton("Random input")
        self.random_filter_button = QPushButton("Random filter")
        for box in (self.n_box, self.f_box, self.s_box, self.p_box):
            box.valueChanged.connect(self._on_geometry_changed)
        self.bias_box.valueChanged.connect(self._on_bias_changed)
        self.random_input_button.clicked.connect(self._on_random_input)
        self.random_filter_button.clicked.connect(self._on_random_filter)
        layer = QFormLayout()
        layer.addRow("Input N×N", self.n_box)
        layer.addRow("Filter F×F", self.f_box)
        layer.addRow("Stride S", self.s_box)
        layer.addRow("Padding P", self.p_box)
        layer.addRow("Bias b", self.bias_box)
        rnd = QHBoxLayout()
        rnd.addWidget(self.random_input_button)
        rnd.addWidget(self.random_filter_button)
        layer.addRow(rnd)
        layer.addRow(muted("Click a cell of the input, filter or upstream gradient: +1; right-click: −1."))

        self.size_label = QLabel()
        self.size_label.setWordWrap(True)
        self.size_label.setFont(theme.font(9.5, mono=True))
        size_box = QVBoxLayout()
        size_box.addWidget(self.size_label)

        self.play_button = QPushButton("▶ Play")
        self.pause_button = QPushButton("❚❚ Pause")
        self.step_button = QPushButton("Step")
        self.reset_button = QPushButton("⟲ Reset")
        self.play_button.clicked.connect(self.play)
        self.pause_button.clicked.connect(self.pause)
        self.step_button.clicked.connect(self.step)
        self.reset_button.clicked.connect(self.reset)
        self.speed_slider = QSlider(Qt.Orientation.Horizontal)
        self.speed_slider.setRange(1, 20)
        self.speed_slider.setValue(4)
        self.speed_slider.valueChanged.connect(lambda v: self._timer.setInterval(int(1800 / v)))
        self.progress_label = QLabel()
        anim = QVBoxLayout()
        row = QGridLayout()
        for i, b in enumerate((self.play_button, self.pause_button, self.step_button, self.reset_button)):
            row.addWidget(b, i // 2, i % 2)
        anim.addLayout(row)
        speed = QHBoxLayout()
        speed.addWidget(QLabel("Speed"))
        speed.addWidget(self.speed_slider, 1)
        anim.addLayout(speed)
        anim.addWidget(self.progress_label)

        scroll = control_column([group("Conv layer (one filter)", layer),
                                 group("Output size  (N − F + 2P)/S + 1", size_box), group("Animation", anim)],
                                width=300)

        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self._build_forward(), "Forward")
        self.tabs.addTab(self._build_backward(), "Backward")
        self.tabs.addTab(self._build_pool(), "Max pooling")
        self.tabs.addTab(self._build_filters(), "Filters")
        root = QHBoxLayout(self)
        root.setContentsMargins(0, 0, 0, 0)
        root.addWidget(scroll)
        root.addWidget(self.tabs, 1)
        self.controls = scroll
        # the layer controls belong to the forward and backward tabs; the others bring their own
        self.tabs.currentChanged.connect(lambda i: self.controls.setVisible(i < 2))

    def _build_forward(self) -> QWidget:
        page = QWidget()
        lay = QVBoxLayout(page)
        self.input_view = GridView("Input x (zero padding shaded)", max_cell=62)
        self.filter_view = GridView("Filter w", colours="diverging", max_cell=62)
        self.output_view = GridView("Output", colours="diverging", max_cell=62)
        for v in (self.input_view, self.filter_view):
            v.editable = True
        self.input_view.cell_clicked.connect(lambda r, c, btn: self._edit(self.x, r, c, btn))
        self.filter_view.cell_clicked.connect(lambda r, c, btn: self._edit(self.w, r, c, btn))
        grids = QHBoxLayout()
        grids.addWidget(self.input_view, 5)
        grids.addWidget(self.filter_view, 3)
        grids.addWidget(self.output_view, 4)
        lay.addLayout(grids, 1)
        self.dot_title = QLabel()
        self.dot_title.setObjectName("SectionHeader")
        self.dot_label = QLabel()
        self.dot_label.setWordWrap(True)
        self.dot_label.setFont(theme.font(11, mono=True))
        self.dot_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.dot_label.setMinimumHeight(64)
        self.dot_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.dot_label.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.dot_label.setStyleSheet("background: #ffffff; border: 1px solid #dde1e7; border-radius: 4px; "
                                     "padding: 8px;")
        lay.addWidget(self.dot_title)
        lay.addWidget(self.dot_label)
        lay.addWidget(muted("Each output cell is the dot product of the filter with the window under it, plus the "
                             "bias: out[i, j] = Σ x_pad[i·S + p, j·S + q] · w[p, q] + b (what every library calls "
                             "convolution is this cross-correlation)."))
        return page

    def _build_backward(self) -> QWidget:
        page = QWidget()
        lay = QVBoxLayout(page)
        self.bw_xpad_view = GridView("x (padded)")
        self.bw_dout_view = GridView("upstream dout = ∂L/∂out", colours="diverging")
        self.bw_dout_view.editable = True
        self.bw_dout_view.cell_clicked.connect(lambda r, c, btn: self._edit(self.dout, r, c, btn, dout=True))
        self.bw_dw_view = GridView("dW = x_pad ⋆ dout", colours="diverging", max_cell=52)
        self.bw_full_view = GridView("dout, zero-padded by F − 1", colours="diverging")
        self.bw_flip_view = GridView("w rotated 180°", colours="diverging", max_cell=52)
        self.bw_dx_view = GridView("dX = full conv(dout, w)", colours="diverging")
        grid = QGridLayout()
        for i, v in enumerate((self.bw_xpad_view, self.bw_dout_view, self.bw_dw_view,
                               self.bw_full_view, self.bw_flip_view, self.bw_dx_view)):
            grid.addWidget(v, i // 3, i % 3)
        lay.addLayout(grid, 1)
        self.db_label = QLabel()
        self.db_label.setFont(theme.font(10.5, mono=True))
        self.db_label.setWordWrap(True)
        self.db_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.check_label = QLabel()
        self.check_label.setStyleSheet(f"color: {theme.VALUE_HEX};")
        self.random_dout_button = QPushButton("Random dout")
        self.random_dout_button.clicked.connect(self._on_random_dout)
        row = QHBoxLayout()
        row.addWidget(self.db_label, 1)
        row.addWidget(self.check_label)
        row.addWidget(self.random_dout_button)
        lay.addLayout(row)
        lay.addWidget(muted("dW[p, q] = Σ_ij x_pad[i·S + p, j·S + q] · dout[i, j]: each weight collects the inputs it "
                             "multiplied, weighted by the gradient of the output they made. dX slides the flipped "
                             "filter over dout padded by F − 1 (with S − 1 zeros between entries when S > 1), then "
                             "drops the padding ring. db = Σ dout: the bias touched every output."))
        return page

    def _build_pool(self) -> QWidget:
        page = QWidget()
        lay = QVBoxLayout(page)
        self.pool_n_box = _spin(2, 8, 4)
        self.pool_size_box = _spin(1, 4, 2)
        self.pool_stride_box = _spin(1, 4, 2)
        self.pool_random_button = QPushButton("Random")
        for b in (self.pool_n_box, self.pool_size_box, self.pool_stride_box):
            b.valueChanged.connect(self._update_pool)
        self.pool_random_button.clicked.connect(self._on_pool_random)
        ctl = QHBoxLayout()
        for text, w in (("Input", self.pool_n_box), ("Window", self.pool_size_box), ("Stride", self.pool_stride_box)):
            ctl.addWidget(QLabel(text))
            ctl.addWidget(w)
        ctl.addWidget(self.pool_random_button)
        ctl.addStretch(1)
        lay.addLayout(ctl)
        self.pool_x = self._rng.integers(0, 10, (4, 4)).astype(np.float64)
        self.pool_dout = np.zeros((0, 0))
        self.pool_input_view = GridView("Input (windows outlined, maxima marked)", max_cell=60)
        self.pool_output_view = GridView("Max-pooled output", max_cell=60)
        self.pool_dout_view = GridView("upstream dout", colours="diverging", max_cell=60)
        self.pool_dx_view = GridView("dx: each gradient routed to its arg-max", colours="diverging", max_cell=60)
        grid = QGridLayout()
        for i, v in enumerate((self.pool_input_view, self.pool_output_view, self.pool_dout_view, self.pool_dx_view)):
            grid.addWidget(v, i // 2, i % 2)
        lay.addLayout(grid, 1)
        self.pool_label = QLabel()
        self.pool_label.setWordWrap(True)
        lay.addWidget(self.pool_label)
        lay.addWidget(muted("Max pooling passes each window's largest value on; backwards, that cell alone gets the "
                             "window's gradient (a max is a switch), every other cell gets 0. Ties go to the first "
                             "maximum in row order, as in layers.max_pool_forward."))
        return page

    def _build_filters(self) -> QWidget:
        page = QWidget()
        lay = QVBoxLayout(page)
        self.filter_combo = QComboBox()
        self.filter_combo.addItems(list(FILTERS))
        self.image_combo = QComboBox()
        self.image_combo.addItems([f"photo: {p}" for p in PHOTOS] + ["digit (8x8)"])
        self.digit_box = _spin(0, 1796, 0)
        self.filter_combo.currentTextChanged.connect(self._update_filter)
        self.image_combo.currentTextChanged.connect(self._update_filter)
        self.digit_box.valueChanged.connect(self._update_filter)
        ctl = QHBoxLayout()
        ctl.addWidget(QLabel("Filter"))
        ctl.addWidget(self.filter_combo, 2)
        ctl.addWidget(QLabel("Image"))
        ctl.addWidget(self.image_combo, 1)
        ctl.addWidget(QLabel("Digit #"))
        ctl.addWidget(self.digit_box)
        lay.addLayout(ctl)
        row = QHBoxLayout()
        self.kernel_view = GridView("3×3 kernel", colours="diverging", max_cell=50)
        self.kernel_view.setFixedWidth(190)
        self.images = pg.GraphicsLayoutWidget()
        self.images.setBackground("w")
        self.original_item = pg.ImageItem(axisOrder="row-major")
        self.filtered_item = pg.ImageItem(axisOrder="row-major")
        self._image_titles = []
        for i, (item, title) in enumerate(((self.original_item, "original"), (self.filtered_item, "filtered"))):
            t = self.images.addLabel(title, row=0, col=i, color=theme.INK_HEX, size="10pt")
            self._image_titles.append(t)
            vb = self.images.addViewBox(row=1, col=i, lockAspect=True, enableMouse=False)
            vb.invertY(True)
            vb.setMenuEnabled(False)
            vb.addItem(item)
        row.addWidget(self.kernel_view)
        row.addWidget(self.images, 1)
        lay.addLayout(row, 1)
        self.filter_caption = QLabel()
        self.filter_caption.setWordWrap(True)
        lay.addWidget(self.filter_caption)
        lay.addWidget(muted(HUBEL_WIESEL))
        return page

    # ================================================================================================ model
    @property
    def geometry(self) -> tuple[int, int, int, int]:
        return self.n_box.value(), self.f_box.value(), self.p_box.value(), self.s_box.value()

    def _on_geometry_changed(self, *_: Any) -> None:
        N, F, _, _ = self.geometry
        if self.x.shape != (N, N):
            self.x = self._rng.integers(0, 4, (N, N)).astype(np.float64)
        if self.w.shape != (F, F):
            self.w = self._rng.integers(-1, 2, (F, F)).astype(np.float64)
        self._recompute()

    def _on_bias_changed(self, v: float) -> None:
        self.b = float(v)
        self._recompute(keep_frame=True)

    def _on_random_input(self) -> None:
        N = self.n_box.value()
        self.x = self._rng.integers(0, 4, (N, N)).astype(np.float64)
        self._recompute()

    def _on_random_filter(self) -> None:
        F = self.f_box.value()
        self.w = self._rng.integers(-1, 2, (F, F)).astype(np.float64)
        self._recompute()

    def _on_random_dout(self) -> None:
        if self.dout.size:
            self.dout = self._rng.integers(-2, 3, self.dout.shape).astype(np.float64)
            self._update_backward()

    def _edit(self, a: np.ndarray, r: int, c: int, button, dout: bool = False) -> None:
        a[r, c] += -1.0 if button == Qt.MouseButton.RightButton else 1.0
        if dout:
            self._update_backward()
        else:
            self._recompute(keep_frame=True)

    def _recompute(self, keep_frame: bool = False) -> None:
        N, F, P, S = self.geometry
        self.pause()
        try:
            n = output_size(N, F, P, S)
            self.frames = conv_trace(self.x, self.w, self.b, S, P)
            self.error = ""
            self.size_label.setText(f"(N − F + 2P)/S + 1\n= ({N} − {F} + 2·{P})/{S} + 1\n= {n}   → output {n}×{n}")
            self.size_label.setStyleSheet(OK_STYLE)
            if self.dout.shape != (n, n):
                self.dout = self._rng.integers(-2, 3, (n, n)).astype(np.float64)
        except ShapeError as exc:
            self.frames = []
            self.error = str(exc)
            self.size_label.setText(f"Cannot build this layer:\n{exc}")
            self.size_label.setStyleSheet(ERROR_STYLE)
            self.dout = np.zeros((0, 0))
        ok = bool(self.frames)
        for b in (self.play_button, self.step_button, self.reset_button, self.pause_button):
            b.setEnabled(ok)
        if not keep_frame or not ok:
            self.frame_index = -1
        self.frame_index = min(self.frame_index, len(self.frames) - 1)
        self._show_frame()
        self._update_backward()

    # ================================================================================================ animation
    def play(self) -> None:
        if not self.frames:
            return
        if self.frame_index >= len(self.frames) - 1:
            self.frame_index = -1
            self._show_frame()
        self._timer.start()

    def pause(self) -> None:
        self._timer.stop()

    def is_playing(self) -> bool:
        return self._timer.isActive()

    def step(self) -> None:
        if self.frames and self.frame_index < len(self.frames) - 1:
            self.frame_index += 1
            self._show_frame()

    def reset(self) -> None:
        self.pause()
        self.frame_index = -1
        self._show_frame()

    def _on_tick(self) -> None:
        if self.frame_index >= len(self.frames) - 1:
            self.pause()
            return
        self.step()
        if self.frame_index >= len(self.frames) - 1:
            self.pause()

    def _show_frame(self) -> None:
        N, F, P, S = self.geometry
        xp = np.pad(self.x, P)
        self.input_view.set_values(xp, pad=P)
        self.filter_view.set_values(self.w)
        self.filter_view.subtitle = f"b = {format_number(self.b)}"
        if not self.frames:
            self.output_view.set_values(np.zeros((0, 0)))
            self.input_view.set_windows([])
            self.output_view.set_windows([])
            self.dot_title.setText("Dot product")
            self.dot_label.setText("The animation is off until the output size is a whole number (see the left).")
            self.progress_label.setText("")
            self.frame_shown.emit(self.frame_index)
            return
        n = int(round(len(self.frames) ** 0.5))
        out = np.array([f.value for f in self.frames]).reshape(n, n)
        shown = np.zeros((n, n), bool)
        shown.ravel()[:self.frame_index + 1] = True
        self.output_view.set_values(out, shown=shown)
        k = self.frame_index
        if k >= 0:
            f = self.frames[k]
            r, c = f.origin
            self.input_view.set_windows([(r, c, F, F, ACCENT, True)])
            self.output_view.set_windows([(f.out_pos[0], f.out_pos[1], 1, 1, ACCENT, True)])
            self.dot_title.setText(f"out[{f.out_pos[0]}, {f.out_pos[1]}]: window at rows {r}–{r + F - 1}, "
                                   f"columns {c}–{c + F - 1} of the padded input")
            self.dot_label.setText(f.text)
        else:
            self.input_view.set_windows([])
            self.output_view.set_windows([])
            self.dot_title.setText("Dot product")
            self.dot_label.setText("Press Play or Step: the filter slides over the input, left to right, top to "
                                   f"bottom, moving {S} cell{'s' if S > 1 else ''} at a time.")
        self.progress_label.setText(f"cell {k + 1} of {len(self.frames)}")
        self.frame_shown.emit(k)

    # ================================================================================================ backward
    def _update_backward(self) -> None:
        views = (self.bw_xpad_view, self.bw_dout_view, self.bw_dw_view, self.bw_full_view, self.bw_flip_view,
                 self.bw_dx_view)
        if not self.frames:
            self.backward = None
            for v in views:
                v.set_values(np.zeros((0, 0)))
            self.db_label.setText("No backward pass: the layer's geometry is not valid.")
            self.check_label.setText("")
            return
        N, F, P, S = self.geometry
        bk = conv_backward_explicit(self.x, self.w, self.dout, S, P)
        self.backward = bk
        self.bw_xpad_view.set_values(bk.xpad[0], pad=P)
        self.bw_dout_view.set_values(self.dout)
        self.bw_dw_view.set_values(bk.dw[0])
        full = np.pad(bk.dout_dilated, F - 1)
        self.bw_full_view.set_values(full, pad=F - 1)
        self.bw_full_view.title = ("dout dilated (S − 1 zeros) and padded by F − 1" if S > 1
                                   else "dout, zero-padded by F − 1")
        self.bw_flip_view.set_values(bk.w_flipped[0])
        self.bw_dx_view.set_values(bk.dxpad[0], pad=P)
        self.bw_dx_view.title = "dX = full conv(dout, w) (ring cropped)" if P else "dX = full conv(dout, w)"
        terms = " + ".join(f"({format_number(v)})" if v < 0 else format_number(v) for v in self.dout.ravel()[:16]) + (" + …" if self.dout.size > 16 else "")
        self.db_label.setText(f"db = Σ dout = {terms} = {format_number(bk.db)}")
        # the same gradients from the library layer, as a check on screen
        out, cache = layers.conv_forward(self.x[None, None], self.w[None, None], np.array([self.b]), S, P)
        dx, dw, db = layers.conv_backward(self.dout[None, None], cache)
        err = max(np.abs(dx[0, 0] - bk.dx[0]).max(), np.abs(dw[0, 0] - bk.dw[0]).max(), abs(db[0] - bk.db))
        self.check_label.setText(f"layers.conv_backward agrees (max |diff| {err:.1e})" if err < 1e-9
                                 else f"differs from layers.conv_backward by {err:.2e}")

    # ================================================================================================ pooling
    def _on_pool_random(self) -> None:
        n = self.pool_n_box.value()
        self.pool_x = self._rng.integers(0, 10, (n, n)).astype(np.float64)
        self.pool_dout = np.zeros((0, 0))
        self._update_pool()

    def _update_pool(self, *_: Any) -> None:
        n, size, stride = self.pool_n_box.value(), self.pool_size_box.value(), self.pool_stride_box.value()
        if self.pool_x.shape != (n, n):
            self.pool_x = self._rng.integers(0, 10, (n, n)).astype(np.float64)
        try:
            frames = max_pool_trace(self.pool_x, size, stride)
        except ShapeError as exc:
            for v in (self.pool_output_view, self.pool_dout_view, self.pool_dx_view):
                v.set_values(np.zeros((0, 0)))
            self.pool_input_view.set_values(self.pool_x)
            self.pool_input_view.set_windows([])
            self.pool_input_view.set_marks(set())
            self.pool_label.setText(f"<span style='color:{theme.ERROR.name()}'>{exc}</span>")
            return
        m = int(round(len(frames) ** 0.5))
        if self.pool_dout.shape != (m, m):
            self.pool_dout = self._rng.integers(1, 6, (m, m)).astype(np.float64)
        out = np.array([f.value for f in frames]).reshape(m, m)
        dx = max_pool_backward_explicit(self.pool_x, self.pool_dout, size, stride)
        palette = [QColor("#2f74d0"), QColor("#1e8c3a"), QColor("#9a66c8"), QColor("#d0577c")]
        wins = [(f.origin[0], f.origin[1], size, size, palette[(f.out_pos[0] + f.out_pos[1]) % 4 if size <= stride
                                                                 else f.index % 4], False) for f in frames]
        self.pool_input_view.set_values(self.pool_x)
        self.pool_input_view.set_windows(wins)
        self.pool_input_view.set_marks({f.argmax for f in frames})
        self.pool_output_view.set_values(out)
        self.pool_dout_view.set_values(self.pool_dout)
        self.pool_dx_view.set_values(dx)
        self.pool_dx_view.set_marks({f.argmax for f in frames})
        self.pool_label.setText(f"{n}×{n} input, {size}×{size} windows at stride {stride} → {m}×{m} output; "
                                f"{len({f.argmax for f in frames})} cell(s) receive gradient, "
                                f"{n * n - len({f.argmax for f in frames})} get 0.")
        self.pool_dx = dx

    # ================================================================================================ filters
    def current_image(self) -> np.ndarray:
        """The grayscale image of the Filters tab (H, W)."""
        choice = self.image_combo.currentText()
        if choice.startswith("photo: "):
            name = choice[len("photo: "):]
            if name not in self._photos:
                self._photos[name] = load_photo(name, size=120)
            return self._photos[name]
        if self._digits is None:
            self._digits = datasets.load_digits()
        return self._digits[0][self.digit_box.value(), 0] / 16.0

    def _update_filter(self, *_: Any) -> None:
        name = self.filter_combo.currentText()
        self.digit_box.setEnabled(self.image_combo.currentText().startswith("digit"))
        img = self.current_image()
        out = apply_filter(img, name)
        self.filtered = out
        self.original_item.setImage(img, autoLevels=False, levels=(0.0, 1.0))
        signed = out.min() < -1e-9
        if signed:                # edge detectors: signed responses on a blue-white-red scale
            # scaled to the 99th percentile of |out|: the zero padding makes a bright photo's border one big edge
            q = float(np.percentile(np.abs(out), 99)) or 1.0
            self.filtered_item.setImage(theme.diverging_rgb(np.clip(out, -q, q)), autoLevels=False,
                                        levels=(0, 255))
        else:
            self.filtered_item.setImage(out, autoLevels=False, levels=(0.0, max(1.0, float(out.max()))))
        self.kernel_view.set_values(FILTERS[name])
        self._image_titles[1].setText(f"filtered: {name}" + ("  (blue −, red +)" if signed else ""),
                                      color=theme.INK_HEX, size="10pt")
        self.filter_caption.setText(f"<b>{name}</b>: {FILTER_NOTES[name]}. Output = layers.conv_forward(image, "
                                    f"kernel, stride 1, padding 1), {out.shape[0]}×{out.shape[1]} like the input (the zero padding shows as a "
                                    f"frame on bright images).")

    # ================================================================================================ lifetime
    def close_lab(self) -> None:
        """Stop the animation timer."""
        self._timer.stop()

    def closeEvent(self, event) -> None:  # noqa: N802
        self.close_lab()
        super().closeEvent(event)
