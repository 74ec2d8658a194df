"""The Convolution lab's multi-channel view: K filters, each as deep as the C-channel input, animated number by
number into K output maps; the parameter count and the volumes' shapes; with F = 1, channel mixing as a matrix.

A thin view over simulator.labs.conv_lab.MultiConvModel: the form is built from MultiConvSettings, edits go to the
model, the view redraws on ``model.changed``. The animation is the shared ``gui.frame_player.FramePlayer`` with its
``FrameTransportBar`` (player frame t = t output numbers computed, 0 = none yet). Slices are painted by
gui.labs.conv_grid.GridView, the grid of the lab's other tabs.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QGridLayout, QHBoxLayout, QLabel, QPushButton, QStackedWidget, QVBoxLayout, QWidget

from gui import theme
from gui.forms import ParamForm
from gui.frame_player import FramePlayer, FrameTransportBar
from gui.labs.common import control_column, group, muted, size_to_current_page
from gui.labs.conv_grid import ACCENT, ERROR_STYLE, OK_STYLE, GridView, sum_box
from simulator.core.errors import StudioError
from simulator.labs.conv_lab import MultiConvModel, MultiConvSettings
from simulator.labs.conv_mechanics import format_number

__all__ = ["MultiChannelView"]

PADDING_TITLE = "padding (zeros)"      # the 1×1 window's vector when it sits on the padding ring
DEPTH_NOTE = ("Every filter extends through the full depth of its input: a C-channel input needs C×F×F filters, and "
              "each output number adds up C per-channel dot products plus the filter's bias. K filters give K "
              "activation maps, stacked into the output volume, whatever C is. With F = 1 a filter sees one pixel: "
              "a 1×1 convolution multiplies each pixel's C channels by a K×C matrix, changing the depth and nothing "
              "else.")


def _slice(title: str = "", max_cell: int = 48) -> GridView:
    """A grid for one slice (a channel, a filter slice, an output map, a matrix): numbers on subtle colours, centred
    in its place, small enough for four channels side by side."""
    v = GridView(title, colours="diverging", max_cell=max_cell, align="centre", hint_cell=26)
    v.setMinimumSize(QSize(48, 48))
    return v


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
    rewind_button, slider, speed_box), input_views (C GridViews), filter_views (C; footer: the channel's partial
    sum), lower_stack
    (0: filter slices, 1: the 1×1 matrix), mix_w_view, mix_x_view, mix_b_view, mix_out_view, output_views (K),
    sum_title, sum_label. ``model``: the MultiConvModel."""

    frame_shown = Signal(int)

    def __init__(self, model: MultiConvModel, parent: QWidget | None = None):
        super().__init__(parent)
        self.model = model
        self.player = FramePlayer(self, interval_ms=300)
        self._frames_seen = -1
        self.input_views: list[GridView] = []
        self.filter_views: list[GridView] = []
        self.output_views: list[GridView] = []
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
        self.mix_w_view = _slice("W (K×C)", max_cell=58)
        self.mix_x_view = _slice("x[:, i, j]", max_cell=58)
        self.mix_b_view = _slice("b", max_cell=58)
        self.mix_out_view = _slice("out[:, i, j]", max_cell=58)
        self.mix_x_view.setMinimumWidth(self.mix_x_view.title_width(PADDING_TITLE))    # never elided
        row = QHBoxLayout()
        for wdg, stretch in ((self.mix_w_view, 5), (_operator("·"), 0), (self.mix_x_view, 2), (_operator("+"), 0),
                             (self.mix_b_view, 1), (_operator("="), 0), (self.mix_out_view, 2)):
            row.addWidget(wdg, stretch)
        ml.addLayout(row, 1)
        self.lower_stack = QStackedWidget()
        self.lower_stack.addWidget(filters_page)
        self.lower_stack.addWidget(mix_page)
        size_to_current_page(self.lower_stack)     # the 1x1 matrix page never widens the filters' page

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
        self.sum_label = sum_box(10)
        page = QVBoxLayout()
        page.addLayout(top, 1)
        page.addWidget(self.sum_title)
        page.addWidget(self.sum_label)
        page.addWidget(muted(DEPTH_NOTE))
        for header in (self.input_header, self.filter_header, self.mix_header, self.output_header, self.sum_title):
            header.setWordWrap(True)      # a long shape line wraps rather than widening the whole tab
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
        self._resize(self.input_views, s.c, self.input_row, _slice)
        self._resize(self.filter_views, s.c, self.filter_row, _slice)
        if len(self.output_views) != s.k:
            for w in self.output_views:
                self.output_grid.removeWidget(w)
                w.hide()
                w.deleteLater()
            self.output_views = [_slice(max_cell=40) for _ in range(s.k)]
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
            self.player.follow(len(self.model.frames), self.model.frame_index)
            self._show_frame()

    # ================================================================================================ animation
    def _on_player_frame(self, t: int) -> None:
        if not self.player.following:         # the player follows the model: not the user's move
            self.model.show(t - 1)            # the model's "frame" event redraws

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
        self.player.follow(len(m.frames), m.frame_index)
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
        window = [(f.origin[0], f.origin[1], F, F, ACCENT, True)] if f is not None else []
        names = [self._channel_label(c) for c in range(s.c)]
        self.input_header.setText(f"Input x: C×H×W = {s.c}×{s.n}×{s.n}"
                                  + (f", padded by {P}" if P else "")
                                  + (": the window covers every channel at once" if f is not None else ""))
        for c, v in enumerate(self.input_views):
            v.set_values(np.pad(m.x[c], P), pad=P, colours=names[c] if photo else "diverging", levels=(0.0, 1.0),
                         numbers=not photo, windows=window, title=f"x[{names[c]}]" if photo else f"x[{c}]")
        self.filter_header.setText(f"Filter {k}: C×F×F = {s.c}×{F}×{F}, bias b[{k}] = {format_number(m.b[k])}")
        for c, v in enumerate(self.filter_views):      # under each filter slice: its channel's partial sum
            v.set_values(m.w[k, c], title=f"w[{k}, {names[c] if photo else c}]",
                         footer=f"x[{names[c] if photo else c}] · w = {format_number(f.partials[c])}" if f is not None
                         else "")
        out, shown = m.output_maps()
        mixes = m.map_names()
        self.output_header.setText(f"Output: K = {s.k} map{'s' if s.k > 1 else ''}, one per filter"
                                   + (f" ({s.k}×{out.shape[1]}×{out.shape[2]})" if out.size else ""))
        for i, v in enumerate(self.output_views):
            name = f"map {i}" + (f": {mixes[i]}" if mixes else f" (filter {i})")
            if not out.size:
                v.set_values(np.zeros((0, 0)), windows=[], current=False, title=name)
                continue
            colours, levels = "diverging", (0.0, 1.0)
            if photo:
                lo, hi = float(out[i].min()), float(out[i].max())
                colours, levels = ("grey", (0.0, max(hi, 1e-12))) if lo >= 0 else ("signed", (lo, hi))
            cur = f is not None and f.k == i
            v.set_values(out[i], shown=shown[i], colours=colours, levels=levels, numbers=not photo,
                         windows=[(f.out_pos[0], f.out_pos[1], 1, 1, ACCENT, True)] if cur else [], current=cur,
                         title=name)
        self.lower_stack.setCurrentIndex(1 if F == 1 else 0)
        if F == 1:
            self._show_mix(f, out, shown)
        self._show_sum(f, names)
        self.frame_shown.emit(m.frame_index)

    def _show_mix(self, f, out: np.ndarray, shown: np.ndarray) -> None:
        m, s = self.model, self.model.settings
        W = m.mix_matrix()
        self.mix_header.setText("1×1 convolution = one matrix product per pixel: out[:, i, j] = W · x[:, i, j] + b")
        row = [(f.k, 0, 1, s.c, ACCENT, True)] if f is not None else []
        self.mix_w_view.set_values(W, windows=row, title=f"W = w[:, :, 0, 0]  ({s.k}×{s.c})")
        self.mix_b_view.set_values(m.b[:, None], windows=[(f.k, 0, 1, 1, ACCENT, True)] if f is not None else [],
                                   title="b")
        if f is None or not out.size:
            self.mix_x_view.set_values(np.zeros((0, 0)), windows=[], title="x[:, i, j]")
            self.mix_out_view.set_values(np.zeros((0, 0)), windows=[], title="out[:, i, j]")
            return
        i, j = f.out_pos
        r, c = f.origin[0] - s.pad, f.origin[1] - s.pad          # in the unpadded input
        inside = 0 <= r < s.n and 0 <= c < s.n
        self.mix_x_view.set_values(f.window[:, 0, 0][:, None], windows=[(0, 0, s.c, 1, ACCENT, True)],
                                   title=f"x[:, {r}, {c}]" if inside else PADDING_TITLE)
        self.mix_out_view.set_values(out[:, i, j][:, None], shown=shown[:, i, j][:, None],
                                     windows=[(f.k, 0, 1, 1, ACCENT, True)], title=f"out[:, {i}, {j}]")

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
