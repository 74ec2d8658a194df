"""The Convolution lab's multi-channel view: K filters, each as deep as the C-channel input, animated number by
number into K output maps; the parameter count and the volumes' shapes; with F = 1, channel mixing as a matrix.

A thin view over simulator.labs.conv_lab.MultiConvModel: the form is built from MultiConvSettings, edits go to the
model, the view redraws on ``model.changed``. The animation is the shared ``gui.frame_player.FramePlayer`` with its
``FrameTransportBar`` (player frame t = t output numbers computed, 0 = none yet). Slices are painted by ``SliceView``.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPen
from PySide6.QtWidgets import (QGridLayout, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QStackedWidget,
                               QVBoxLayout, QWidget)

from gui import theme
from gui.forms import ParamForm
from gui.frame_player import FramePlayer, FrameTransportBar
from gui.labs.common import control_column, group, muted
from simulator.core.errors import StudioError
from simulator.labs.conv_lab import MultiConvModel, MultiConvSettings
from simulator.labs.conv_mechanics import format_number

__all__ = ["MultiChannelView", "SliceView"]

ACCENT = QColor(theme.ACCENT_HEX)
PAD_FILL = QColor("#eceef2")
CELL_LINE = QColor("#d3d8df")
HIDDEN_FILL = QColor("#fafbfc")
TINTS = {"R": QColor("#d0312d"), "G": QColor("#2e9e44"), "B": QColor("#2f64d0")}
ERROR_STYLE = (f"color: {theme.ERROR.name()}; background: #fbeaea; border: 1px solid #f0c9c6; border-radius: 4px; "
               f"padding: 6px;")
OK_STYLE = (f"color: {theme.INK_HEX}; background: #eef5ee; border: 1px solid #cfe3d2; border-radius: 4px; "
            f"padding: 6px;")
DEPTH_NOTE = ("Every filter extends through the full depth of its input: a C-channel input needs C×F×F filters, and "
              "each output number adds up C per-channel dot products plus the filter's bias. K filters give K "
              "activation maps, stacked into the output volume, whatever C is. With F = 1 a filter sees one pixel: "
              "a 1×1 convolution multiplies each pixel's C channels by a K×C matrix, changing the depth and nothing "
              "else.")


class SliceView(QWidget):
    """One 2-D slice (a channel, a filter slice, an output map, a matrix) painted as cells.

    ``mode``: "value" (numbers on subtle blue/red by sign), "R"/"G"/"B"/"grey" (a picture: black up to the colour
    over ``levels``), "signed" (a picture on a blue-white-red scale). Numbers are written when ``numbers`` and the
    cells are large enough. ``pad`` shades a padding ring, ``shown`` hides cells not computed yet, ``windows`` are
    outlined (r, c, h, w), ``current`` frames the whole slice in the accent colour."""

    def __init__(self, title: str = "", max_cell: int = 44, parent: QWidget | None = None):
        super().__init__(parent)
        self.title = title
        self.max_cell = max_cell
        self.values = np.zeros((0, 0))
        self.pad = 0
        self.mode = "value"
        self.levels = (0.0, 1.0)
        self.numbers = True
        self.shown: np.ndarray | None = None
        self.windows: list[tuple[int, int, int, int]] = []
        self.current = False
        self.footer = ""                  # a line under the grid (a filter slice's partial sum)
        self.setMinimumSize(QSize(48, 48))
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self._font = theme.font(9.5, mono=True)
        self._title_font = theme.font(9, QFont.Weight.DemiBold)

    def set_slice(self, values: np.ndarray, *, pad: int = 0, mode: str = "value", levels: tuple[float, float] = (0, 1),
                  numbers: bool = True, shown: np.ndarray | None = None,
                  windows: list[tuple[int, int, int, int]] | None = None, current: bool = False,
                  title: str | None = None, footer: str = "") -> None:
        self.values = np.asarray(values, dtype=np.float64)
        self.pad, self.mode, self.levels, self.numbers = int(pad), mode, (float(levels[0]), float(levels[1])), numbers
        self.shown = shown
        self.windows = list(windows or [])
        self.current = current
        self.footer = footer
        if title is not None:
            self.title = title
            self.setToolTip(title)
        self.update()

    # ---- geometry
    def _layout(self) -> tuple[float, float, float]:
        """(x0, y0, cell): the grid centred in the widget, its title just above it and the footer just below."""
        rows, cols = self.values.shape if self.values.size else (1, 1)
        top, bottom = 20.0, (20.0 if self.footer else 4.0)
        cell = min((self.width() - 8) / cols, (self.height() - top - bottom) / rows, float(self.max_cell))
        cell = max(cell, 2.0)
        y0 = top + max(0.0, (self.height() - top - bottom - cell * rows) / 2)
        return (self.width() - cell * cols) / 2, y0, cell

    def cell_rect(self, r: int, c: int) -> QRectF:
        x0, y0, cell = self._layout()
        return QRectF(x0 + c * cell, y0 + r * cell, cell, cell)

    def shows_numbers(self) -> bool:
        return self.numbers and self._layout()[2] >= 15

    def sizeHint(self) -> QSize:  # noqa: N802
        rows, cols = self.values.shape if self.values.size else (4, 4)
        return QSize(int(min(cols, 10) * 26 + 12), int(min(rows, 10) * 26 + 26))

    # ---- painting
    def _fill(self, v: float, scale: float) -> QColor:
        if self.mode in TINTS or self.mode == "grey":
            lo, hi = self.levels
            t = 0.0 if hi <= lo else min(1.0, max(0.0, (v - lo) / (hi - lo)))
            if self.mode == "grey":
                g = round(255 * t)
                return QColor(g, g, g)
            tint = TINTS[self.mode]
            return QColor(round(tint.red() * t), round(tint.green() * t), round(tint.blue() * t))
        if scale == 0:
            return QColor("#ffffff")
        strength = 0.42 if self.mode == "value" else 1.0      # "value": subtle, the numbers are the message
        t = max(-1.0, min(1.0, v / scale)) * strength
        target = QColor("#c8372d") if t >= 0 else QColor("#3b6fb6")
        a = abs(t)
        return QColor(round(255 + a * (target.red() - 255)), round(255 + a * (target.green() - 255)),
                      round(255 + a * (target.blue() - 255)))

    def paintEvent(self, event) -> None:  # noqa: N802
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        x0, y0, cell = self._layout()
        p.setFont(self._title_font)
        p.setPen(ACCENT if self.current else QColor(theme.INK_HEX))
        title = p.fontMetrics().elidedText(self.title, Qt.TextElideMode.ElideRight, max(10, self.width() - 4))
        p.drawText(QRectF(0, y0 - 20, self.width(), 17), Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignVCenter,
                   title)
        if not self.values.size:
            p.setPen(QColor(theme.MUTED_HEX))
            p.drawText(QRectF(0, 20, self.width(), self.height() - 20), Qt.AlignmentFlag.AlignCenter, "—")
            p.end()
            return
        rows, cols = self.values.shape
        P = self.pad
        inner = self.values[P:rows - P, P:cols - P] if P else self.values
        scale = float(np.max(np.abs(inner))) if inner.size else 0.0
        numbers = self.shows_numbers()
        font = QFont(self._font)
        font.setPointSizeF(max(6.5, min(10.5, cell * 0.27)))
        if numbers:                            # the longest number must fit its cell: shrink the font if not
            longest = max((format_number(v) for v in inner.ravel()), key=len, default="0")
            wide = QFontMetrics(font).horizontalAdvance(longest)
            if wide > cell - 4:
                font.setPointSizeF(max(6.0, font.pointSizeF() * (cell - 4) / wide))
        p.setFont(font)
        grid = self.mode == "value" and cell >= 6          # a picture is drawn without cell lines
        for r in range(rows):
            for c in range(cols):
                rect = QRectF(x0 + c * cell, y0 + r * cell, cell, cell)
                is_pad = P > 0 and (r < P or c < P or r >= rows - P or c >= cols - P)
                shown = self.shown is None or bool(self.shown[r, c])
                fill = PAD_FILL if is_pad else (self._fill(self.values[r, c], scale) if shown else HIDDEN_FILL)
                p.fillRect(rect, fill)
                if grid or (not shown and cell >= 6):
                    p.setPen(QPen(CELL_LINE, 1))
                    p.drawRect(rect)
                if numbers and shown:
                    p.setPen(QColor(theme.MUTED_HEX) if is_pad else QColor(theme.INK_HEX))
                    p.drawText(rect, Qt.AlignmentFlag.AlignCenter, format_number(self.values[r, c]))
        if P:
            p.setPen(QPen(QColor("#8d97a5"), 1.2, Qt.PenStyle.DashLine))
            p.drawRect(QRectF(x0 + P * cell, y0 + P * cell, (cols - 2 * P) * cell, (rows - 2 * P) * cell))
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        for (r, c, h, w) in self.windows:
            rect = QRectF(x0 + c * cell, y0 + r * cell, w * cell, h * cell)
            fill = QColor(ACCENT)
            fill.setAlpha(45)
            p.fillRect(rect, fill)
            # a bright halo under the accent line, so the window shows on dark photo pixels too
            p.setPen(QPen(QColor("#ffffff"), 4.4))
            p.drawRect(rect.adjusted(-1, -1, 1, 1))
            p.setPen(QPen(ACCENT, 2.4))
            p.drawRect(rect.adjusted(-1, -1, 1, 1))
        if self.current:
            p.setPen(QPen(ACCENT, 2.0))
            p.drawRect(QRectF(x0 - 3, y0 - 3, cols * cell + 6, rows * cell + 6))
        if self.footer:
            p.setFont(self._font)
            p.setPen(QColor(theme.INK_HEX))
            p.drawText(QRectF(0, y0 + rows * cell + 2, self.width(), 18), Qt.AlignmentFlag.AlignHCenter
                       | Qt.AlignmentFlag.AlignVCenter, self.footer)
        p.end()


def _operator(text: str) -> QLabel:
    lab = QLabel(text)
    lab.setFont(theme.font(16, QFont.Weight.DemiBold))
    lab.setAlignment(Qt.AlignmentFlag.AlignCenter)
    lab.setStyleSheet(f"color: {theme.MUTED_HEX};")
    return lab


class MultiChannelView(QWidget):
    """K filters over a C-channel input, animated. Children for tests: form (source_combo, c_box, k_box, n_box,
    f_box, s_box, p_box, weights_combo), random_input_button, random_filters_button, mix_button, params_label,
    shape_label, player (FramePlayer), transport (FrameTransportBar: back_button, play_button, step_button,
    rewind_button, slider, speed_box), input_views (C SliceViews), filter_views (C; footer: the channel's partial
    sum), lower_stack
    (0: filter slices, 1: the 1×1 matrix), mix_w_view, mix_x_view, mix_b_view, mix_out_view, output_views (K),
    sum_title, sum_label. ``model``: the MultiConvModel."""

    frame_shown = Signal(int)

    def __init__(self, model: MultiConvModel, parent: QWidget | None = None):
        super().__init__(parent)
        self.model = model
        self.player = FramePlayer(self, interval_ms=300)
        self._syncing = False
        self._frames_seen = -1
        self.input_views: list[SliceView] = []
        self.filter_views: list[SliceView] = []
        self.output_views: list[SliceView] = []
        self._build()
        self.player.frame_changed.connect(self._on_player_frame)
        self.model.changed.connect(self._on_model_changed)
        self._show_layer()

    # ================================================================================================ build
    def _build(self) -> None:
        self.form = ParamForm(MultiConvSettings)
        wd = self.form.widgets
        (self.source_combo, self.c_box, self.k_box, self.n_box, self.f_box, self.s_box, self.p_box,
         self.weights_combo) = (wd[n] for n in ("source", "c", "k", "n", "f", "stride", "pad", "weights"))
        self.form.edited.connect(self._on_form_edited)
        self.random_input_button = QPushButton("Random input")
        self.random_filters_button = QPushButton("Random filters")
        self.random_input_button.clicked.connect(self.model.random_input)
        self.random_filters_button.clicked.connect(self.model.random_filters)
        self.mix_button = QPushButton("1×1: mix a photo's R, G, B")
        self.mix_button.setToolTip("A photo's three channels mixed by four 1×1 filters: grey, red − green, "
                                   "blue − yellow and a negative (its bias is 1)")
        self.mix_button.clicked.connect(self._on_mix_clicked)
        layer = QVBoxLayout()
        layer.addWidget(self.form)
        rnd = QHBoxLayout()
        rnd.addWidget(self.random_input_button)
        rnd.addWidget(self.random_filters_button)
        layer.addLayout(rnd)
        layer.addWidget(self.mix_button)

        self.params_label = QLabel()
        self.params_label.setWordWrap(True)
        self.params_label.setFont(theme.font(10, QFont.Weight.DemiBold, mono=True))
        self.shape_label = QLabel()
        self.shape_label.setWordWrap(True)
        self.shape_label.setFont(theme.font(9.5, mono=True))
        sizes = QVBoxLayout()
        sizes.addWidget(self.params_label)
        sizes.addWidget(self.shape_label)

        self.transport = FrameTransportBar(self.player, unit="number", speed_suffix=" /tick", max_speed=500)
        anim = QVBoxLayout()
        anim.addWidget(self.transport)
        anim.addWidget(muted("One frame per output number: all of map 0, then map 1, …"))
        self.controls = control_column([group("K filters, each C deep", layer), group("Parameters and shapes", sizes),
                                        group("Animation", anim)])
        # never narrower than what the column needs: nothing in it is clipped on the right
        need = self.controls.widget().minimumSizeHint().width() + self.controls.verticalScrollBar().sizeHint().width()
        self.controls.setFixedWidth(max(300, need))

        # ---- the picture: channels (input above, filter below) | output maps
        self.input_header = QLabel()
        self.input_header.setObjectName("SectionHeader")
        self.input_row = QHBoxLayout()
        self.input_row.setSpacing(4)
        self.filter_header = QLabel()
        self.filter_header.setObjectName("SectionHeader")
        self.filter_row = QHBoxLayout()
        self.filter_row.setSpacing(4)
        filters_page = QWidget()
        fl = QVBoxLayout(filters_page)
        fl.setContentsMargins(0, 0, 0, 0)
        fl.addWidget(self.filter_header)
        fl.addLayout(self.filter_row, 1)

        mix_page = QWidget()
        ml = QVBoxLayout(mix_page)
        ml.setContentsMargins(0, 0, 0, 0)
        self.mix_header = QLabel()
        self.mix_header.setObjectName("SectionHeader")
        ml.addWidget(self.mix_header)
        self.mix_w_view = SliceView("W (K×C)", max_cell=58)
        self.mix_x_view = SliceView("x[:, i, j]", max_cell=58)
        self.mix_b_view = SliceView("b", max_cell=58)
        self.mix_out_view = SliceView("out[:, i, j]", max_cell=58)
        row = QHBoxLayout()
        for wdg, stretch in ((self.mix_w_view, 5), (_operator("·"), 0), (self.mix_x_view, 2), (_operator("+"), 0),
                             (self.mix_b_view, 1), (_operator("="), 0), (self.mix_out_view, 2)):
            row.addWidget(wdg, stretch)
        ml.addLayout(row, 1)
        self.lower_stack = QStackedWidget()
        self.lower_stack.addWidget(filters_page)
        self.lower_stack.addWidget(mix_page)

        left = QVBoxLayout()
        left.addWidget(self.input_header)
        left.addLayout(self.input_row, 5)
        left.addWidget(self.lower_stack, 4)
        self.output_header = QLabel()
        self.output_header.setObjectName("SectionHeader")
        self.output_grid = QGridLayout()
        self.output_grid.setSpacing(4)
        right = QVBoxLayout()
        right.addWidget(self.output_header)
        right.addLayout(self.output_grid, 1)
        top = QHBoxLayout()
        top.addLayout(left, 5)
        top.addLayout(right, 3)

        self.sum_title = QLabel()
        self.sum_title.setObjectName("SectionHeader")
        self.sum_label = QLabel()
        self.sum_label.setWordWrap(True)
        self.sum_label.setFont(theme.font(10, mono=True))
        self.sum_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.sum_label.setMinimumHeight(60)
        self.sum_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.sum_label.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.sum_label.setStyleSheet("background: #ffffff; border: 1px solid #dde1e7; border-radius: 4px; "
                                     "padding: 6px;")
        page = QVBoxLayout()
        page.addLayout(top, 1)
        page.addWidget(self.sum_title)
        page.addWidget(self.sum_label)
        page.addWidget(muted(DEPTH_NOTE))
        root = QHBoxLayout(self)
        root.setContentsMargins(0, 0, 0, 0)
        root.addWidget(self.controls)
        root.addLayout(page, 1)

    # ---- the slices follow C and K
    @staticmethod
    def _resize(views: list, count: int, layout, make) -> None:
        while len(views) > count:
            w = views.pop()
            layout.removeWidget(w)
            w.hide()                          # at once: deleteLater waits for the event loop's next turn
            w.deleteLater()
        while len(views) < count:
            w = make()
            views.append(w)
            layout.addWidget(w, 1)

    def _sync_views(self) -> None:
        s = self.model.settings
        self._resize(self.input_views, s.c, self.input_row, lambda: SliceView(max_cell=48))
        self._resize(self.filter_views, s.c, self.filter_row, lambda: SliceView(max_cell=48))
        if len(self.output_views) != s.k:
            for w in self.output_views:
                self.output_grid.removeWidget(w)
                w.hide()
                w.deleteLater()
            self.output_views = [SliceView(max_cell=40) for _ in range(s.k)]
            cols = 1 if s.k <= 2 else 2
            for i, w in enumerate(self.output_views):
                self.output_grid.addWidget(w, i // cols, i % cols)

    # ================================================================================================ edits
    def _on_form_edited(self) -> None:
        try:
            settings = self.model.settings_for(self.form.values())
        except StudioError as exc:
            self.form.error.setText(str(exc))
            self.form.error.setStyleSheet(f"color: {theme.ERROR.name()};")
            self.form.error.show()
            return
        self.form.error.hide()
        self.model.set_settings(settings)

    def _on_mix_clicked(self) -> None:
        self.model.set_settings(self.model.one_by_one_settings())

    def _on_model_changed(self, part: str) -> None:
        if part == "layer":
            self._show_layer()
        elif part == "frame":
            self._sync_player()
            self._show_frame()

    # ================================================================================================ animation
    def _on_player_frame(self, t: int) -> None:
        if not self._syncing:
            self.model.show(t - 1)            # the model's "frame" event redraws

    def _sync_player(self) -> None:
        m = self.model
        self._syncing = True
        try:
            self.player.set_count(len(m.frames) + 1 if m.frames else 0)
            self.player.seek(m.frame_index + 1)
        finally:
            self._syncing = False

    def pause(self) -> None:
        self.player.pause()

    # ================================================================================================ drawing
    def _show_layer(self) -> None:
        m, s = self.model, self.model.settings
        self.player.pause()
        self.form.set_value(s)
        self.form.error.hide()
        self._sync_views()
        self.params_label.setText(m.param_count_text())
        self.shape_label.setText(m.shape_text())
        self.shape_label.setStyleSheet(ERROR_STYLE if m.error else OK_STYLE)
        self.random_input_button.setEnabled(m.photo is None)
        self.random_filters_button.setEnabled(m.map_names() is None)
        if len(m.frames) != self._frames_seen:    # a new size: about a hundred ticks for the whole layer
            self._frames_seen = len(m.frames)
            self.transport.speed_box.setValue(max(1, len(m.frames) // 100))
        self._sync_player()
        self._show_frame()

    def _channel_label(self, c: int) -> str:
        name = self.model.channel_names()[c]
        return name if self.model.photo else f"c{name}"

    def _show_frame(self) -> None:
        m, s = self.model, self.model.settings
        f = m.frame
        P, F = s.pad, s.f
        k = f.k if f is not None else 0
        photo = m.photo is not None
        window = [(f.origin[0], f.origin[1], F, F)] if f is not None else []
        names = [self._channel_label(c) for c in range(s.c)]
        self.input_header.setText(f"Input x: C×H×W = {s.c}×{s.n}×{s.n}"
                                  + (f", padded by {P}" if P else "")
                                  + (": the window covers every channel at once" if f is not None else ""))
        for c, v in enumerate(self.input_views):
            v.set_slice(np.pad(m.x[c], P), pad=P, mode=names[c] if photo else "value", levels=(0.0, 1.0),
                        numbers=not photo, windows=window, title=f"x[{names[c]}]" if photo else f"x[{c}]")
        self.filter_header.setText(f"Filter {k}: C×F×F = {s.c}×{F}×{F}, bias b[{k}] = {format_number(m.b[k])}")
        for c, v in enumerate(self.filter_views):      # under each filter slice: its channel's partial sum
            v.set_slice(m.w[k, c], title=f"w[{k}, {names[c] if photo else c}]",
                        footer=f"x[{names[c] if photo else c}] · w = {format_number(f.partials[c])}" if f is not None
                        else "")
        out, shown = m.output_maps()
        mixes = m.map_names()
        self.output_header.setText(f"Output: K = {s.k} map{'s' if s.k > 1 else ''}, one per filter"
                                   + (f" ({s.k}×{out.shape[1]}×{out.shape[2]})" if out.size else ""))
        for i, v in enumerate(self.output_views):
            name = f"map {i}" + (f": {mixes[i]}" if mixes else f" (filter {i})")
            if not out.size:
                v.set_slice(np.zeros((0, 0)), title=name)
                continue
            mode, levels = "value", (0.0, 1.0)
            if photo:
                lo, hi = float(out[i].min()), float(out[i].max())
                mode, levels = ("grey", (0.0, max(hi, 1e-12))) if lo >= 0 else ("signed", (lo, hi))
            cur = f is not None and f.k == i
            v.set_slice(out[i], mode=mode, levels=levels, numbers=not photo, shown=shown[i],
                        windows=[(f.out_pos[0], f.out_pos[1], 1, 1)] if cur else [], current=cur, title=name)
        self.lower_stack.setCurrentIndex(1 if F == 1 else 0)
        if F == 1:
            self._show_mix(f, out, shown)
        self._show_sum(f, names)
        self.frame_shown.emit(m.frame_index)

    def _show_mix(self, f, out: np.ndarray, shown: np.ndarray) -> None:
        m, s = self.model, self.model.settings
        W = m.mix_matrix()
        self.mix_header.setText("1×1 convolution = one matrix product per pixel: out[:, i, j] = W · x[:, i, j] + b")
        row = [(f.k, 0, 1, s.c)] if f is not None else []
        self.mix_w_view.set_slice(W, windows=row, title=f"W = w[:, :, 0, 0]  ({s.k}×{s.c})")
        self.mix_b_view.set_slice(m.b[:, None], windows=[(f.k, 0, 1, 1)] if f is not None else [], title="b")
        if f is None or not out.size:
            self.mix_x_view.set_slice(np.zeros((0, 0)), title="x[:, i, j]")
            self.mix_out_view.set_slice(np.zeros((0, 0)), title="out[:, i, j]")
            return
        i, j = f.out_pos
        self.mix_x_view.set_slice(f.window[:, 0, 0][:, None], windows=[(0, 0, s.c, 1)],
                                  title=f"x[:, {f.origin[0] - s.pad}, {f.origin[1] - s.pad}]")
        self.mix_out_view.set_slice(out[:, i, j][:, None], shown=shown[:, i, j][:, None],
                                    windows=[(f.k, 0, 1, 1)], title=f"out[:, {i}, {j}]")

    def _show_sum(self, f, names: list[str]) -> None:
        m, s = self.model, self.model.settings
        if not m.frames:
            self.sum_title.setText("Sum over channels")
            self.sum_label.setText("The animation is off until the layer can be built (see the left).")
            return
        if f is None:
            self.sum_title.setText("Sum over channels")
            self.sum_label.setText("Press Play or Step: filter 0 slides over the input through all its channels at "
                                   "once, filling map 0; then filter 1 fills map 1, and so on.")
            return
        r, c, F = f.origin[0], f.origin[1], s.f
        of = "the padded input" if s.pad else "the input"
        where = (f"pixel ({r}, {c}) of {of}" if F == 1 else f"rows {r}–{r + F - 1}, columns {c}–{c + F - 1} of {of}")
        self.sum_title.setText(f"out[{f.k}, {f.out_pos[0]}, {f.out_pos[1]}]: filter {f.k} over {where}, "
                               f"in all {s.c} channel{'s' if s.c > 1 else ''}")
        width = max(len(n) for n in names)
        lines = [f"{n.rjust(width)}: {t}" for n, t in zip(names, f.channel_texts)]
        lines.append(f"{'Σ'.rjust(width)}: {f.text}")
        self.sum_label.setText("\n".join(lines))

    # ================================================================================================ lifetime
    def close_view(self) -> None:
        self.player.pause()
