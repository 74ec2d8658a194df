"""The convolution lab (lecture 5): one conv layer animated cell by cell, its backward pass as correlations, max
pooling's gradient routing, hand-made filters on real images, and K filters over C channels (the Multi-channel tab,
gui.labs.conv_multichannel).

A thin view over simulator.labs.conv_lab.ConvLabModel: controls are built from its declared settings, edits go to
the model, and the view redraws on ``model.changed``. Grids are painted by gui.labs.conv_grid.GridView (QPainter,
shared with the Multi-channel tab); the animation is
the shared ``gui.frame_player.FramePlayer`` walking the model's pre-computed frames (player frame k = k output cells
computed, 0 = none yet; Reset = rewind). The photos, the digits and the conv kernels are made
ready by the model's ``prepare`` job on the lab's JobRunner: until it is done the Filters tab says it is preparing.
"""
from __future__ import annotations


import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QGridLayout, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QSlider, QStackedWidget,
                               QVBoxLayout, QWidget)

from gui import theme
from gui.forms import ParamForm
from gui.frame_player import FramePlayer
from gui.jobs import JobRunner
from gui.labs.prediction import PredictionBox
from gui.labs.common import control_column, group, muted
from gui.labs.conv_grid import ACCENT, ERROR_STYLE, OK_STYLE, GridView, sum_box
from gui.labs.conv_multichannel import MultiChannelView
from gui.tab_widget import TabWidget
from simulator.core.errors import StudioError
from simulator.labs.conv_lab import ConvLabModel, FilterSettings, LayerSettings, PoolSettings
from simulator.labs.conv_mechanics import FILTER_NOTES, FILTERS, format_number, output_size

__all__ = ["ConvLab"]

HUBEL_WIESEL = ("Hubel and Wiesel found cells in the cat's visual cortex that fire for edges of one orientation: "
                "the Sobel filters are hand-made versions of what a CNN's first layer learns by itself.")


class ConvLab(QWidget):
    """One convolution layer, forwards (animated) and backwards, max pooling, and hand-made filters.

    Children for tests: layer_form (n_box, f_box, s_box, p_box, bias_box), random_input_button,
    random_filter_button, size_label, play_button, pause_button, step_button, reset_button, speed_slider, tabs,
    input_view, filter_view, output_view, dot_label, bw_xpad_view, bw_dout_view, bw_dw_view, bw_full_view,
    bw_flip_view, bw_dx_view, db_label, check_label, random_dout_button, pool_form (pool_n_box, pool_size_box,
    pool_stride_box), pool_random_button, pool_input_view, pool_output_view, pool_dout_view, pool_dx_view,
    pool_label, filter_form (filter_combo, image_combo, digit_box), filters_stack, preparing_label, kernel_view,
    original_item, filtered_item, filter_caption, multi_view (the Multi-channel tab: gui.labs.conv_multichannel).
    ``model``: the ConvLabModel; ``runner``: the lab's JobRunner;
    ``player``: the animation's FramePlayer (frames 0 .. number of output cells).
    """

    frame_shown = Signal(int)
    ready = Signal()

    def __init__(self, parent: QWidget | None = None, model: ConvLabModel | None = None):
        super().__init__(parent)
        self.model = model or ConvLabModel()
        self.runner = JobRunner(self)
        self.player = FramePlayer(self, interval_ms=450)
        self._moving = False           # the model follows the player: one redraw per frame, not per model step
        self.player.frame_changed.connect(self._on_player_frame)
        self._build()
        self.model.changed.connect(self._on_model_changed)
        self._show_layer()
        self._show_pool()
        self._show_filter()
        # after the first paint: the job's imports (scikit-learn) would otherwise compete with building the window
        QTimer.singleShot(0, self, lambda: self.runner.start("prepare", self.model.prepare, on_done=self._on_prepared,
                                                             on_error=self._on_prepare_failed))

    # ---- the model's state, for tests and callers
    x = property(lambda self: self.model.x)
    w = property(lambda self: self.model.w)
    b = property(lambda self: self.model.layer.bias)
    dout = property(lambda self: self.model.dout)
    frames = property(lambda self: self.model.frames)
    frame_index = property(lambda self: self.model.frame_index)
    backward = property(lambda self: self.model.backward)
    error = property(lambda self: self.model.error)
    pool_x = property(lambda self: self.model.pool_x)
    pool_dout = property(lambda self: self.model.pool_dout)
    pool_dx = property(lambda self: self.model.pool_dx)
    filtered = property(lambda self: self.model.filtered)

    # ================================================================================================ build
    def _build(self) -> None:
        self.layer_form = ParamForm(LayerSettings)
        wd = self.layer_form.widgets
        self.n_box, self.f_box, self.s_box, self.p_box, self.bias_box = (wd["n"], wd["f"], wd["stride"], wd["pad"],
                                                                         wd["bias"])
        self.layer_form.edited.connect(self._on_layer_edited)
        self.random_input_button = QPushButton("Random input")
        self.random_filter_button = QPushButton("Random filter")
        self.random_input_button.clicked.connect(self.model.random_input)
        self.random_filter_button.clicked.connect(self.model.random_filter)
        layer = QVBoxLayout()
        layer.addWidget(self.layer_form)
        rnd = QHBoxLayout()
        rnd.addWidget(self.random_input_button)
        rnd.addWidget(self.random_filter_button)
        layer.addLayout(rnd)
        layer.addWidget(muted("Click a cell of the input, filter or upstream gradient: +1; right-click: −1."))

        self.size_label = QLabel()
        self.size_label.setWordWrap(True)
        self.size_label.setFont(theme.font(9.5, mono=True))
        size_box = QVBoxLayout()
        size_box.addWidget(self.size_label)
        self._quiz_rng = np.random.default_rng()
        self.size_question: tuple[int, int, int, int] = (7, 3, 2, 0)
        self.size_prediction = PredictionBox("", self._check_size_prediction)
        self.new_question_button = QPushButton("New question")
        self.new_question_button.clicked.connect(self.new_size_question)
        self.show_question_button = QPushButton("Show it in the lab")
        self.show_question_button.setToolTip("Set the layer to the question's N, F, S and P")
        self.show_question_button.clicked.connect(self._show_size_question)
        size_box.addWidget(self.size_prediction)
        qrow = QHBoxLayout()
        qrow.addWidget(self.new_question_button)
        qrow.addWidget(self.show_question_button)
        size_box.addLayout(qrow)
        self._ask_size(self.size_question)

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
        self.speed_slider.setValue(4)                       # 1800 / 4 = the player's 450 ms per cell
        self.speed_slider.valueChanged.connect(lambda v: self.player.set_interval(int(1800 / v)))
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
                                width=290)

        self.tabs = TabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self._build_forward(), "Forward")
        self.tabs.addTab(self._build_backward(), "Backward")
        self.tabs.addTab(self._build_pool(), "Max pooling")
        self.tabs.addTab(self._build_filters(), "Filters")
        self.multi_view = MultiChannelView(self.model.multi)
        self.tabs.addTab(self.multi_view, "Multi-channel")
        root = QHBoxLayout(self)
        root.setContentsMargins(0, 0, 0, 0)
        root.addWidget(scroll)
        root.addWidget(self.tabs, 1)
        self.controls = scroll
        # the layer controls belong to the forward and backward tabs; the others bring their own
        self.tabs.currentChanged.connect(lambda i: self.controls.setVisible(i < 2))
        self.tabs.currentChanged.connect(self._on_tab_changed)

    def _build_forward(self) -> QWidget:
        page = QWidget()
        lay = QVBoxLayout(page)
        self.input_view = GridView("Input x (zero padding shaded)", max_cell=62)
        self.filter_view = GridView("Filter w", colours="diverging", max_cell=62)
        self.output_view = GridView("Output", colours="diverging", max_cell=62)
        for v in (self.input_view, self.filter_view):
            v.editable = True
        self.input_view.cell_clicked.connect(lambda r, c, btn: self._edit("x", r, c, btn))
        self.filter_view.cell_clicked.connect(lambda r, c, btn: self._edit("w", r, c, btn))
        grids = QHBoxLayout()
        grids.addWidget(self.input_view, 5)
        grids.addWidget(self.filter_view, 3)
        grids.addWidget(self.output_view, 4)
        lay.addLayout(grids, 1)
        self.dot_title = QLabel()
        self.dot_title.setObjectName("SectionHeader")
        self.dot_label = sum_box(11)
        lay.addWidget(self.dot_title)
        lay.addWidget(self.dot_label)
        lay.addWidget(muted("Each output cell is the dot product of the filter with the window under it, plus the "
                             "bias: out[i, j] = Σ x_pad[i·S + p, j·S + q] · w[p, q] + b (what every library calls "
                             "convolution is this cross-correlation)."))
        return page

    def _build_backward(self) -> QWidget:
        page = QWidget()
        lay = QVBoxLayout(page)
        lay.setContentsMargins(6, 6, 6, 6)
        self.bw_xpad_view = GridView("x (padded)")
        self.bw_dout_view = GridView("upstream dout = ∂L/∂out", colours="diverging")
        self.bw_dout_view.editable = True
        self.bw_dout_view.cell_clicked.connect(lambda r, c, btn: self._edit("dout", r, c, btn))
        self.bw_dw_view = GridView("dW = x_pad ⋆ dout", colours="diverging", max_cell=52)
        self.bw_full_view = GridView("dout, zero-padded by F − 1", colours="diverging")
        self.bw_flip_view = GridView("w rotated 180°", colours="diverging", max_cell=52)
        self.bw_dx_view = GridView("dX = full conv(dout, w)", colours="diverging")
        grid = QGridLayout()
        for i, v in enumerate((self.bw_xpad_view, self.bw_dout_view, self.bw_dw_view,
                               self.bw_full_view, self.bw_flip_view, self.bw_dx_view)):
            grid.addWidget(v, i // 3, i % 3)
        # each column as wide as its usual titles, so a narrow window (the lesson dock open) elides none of them
        grid.setHorizontalSpacing(4)
        for col, (view, title) in enumerate(((self.bw_full_view, "dout, zero-padded by F − 1"),
                                             (self.bw_dout_view, "upstream dout = ∂L/∂out"),
                                             (self.bw_dx_view, "dX = full conv(dout, w), cropped"))):
            grid.setColumnMinimumWidth(col, view.title_width(title))
        lay.addLayout(grid, 1)
        self.db_label = QLabel()
        self.db_label.setFont(theme.font(10.5, mono=True))
        self.db_label.setWordWrap(True)
        self.db_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.check_label = QLabel()
        self.check_label.setStyleSheet(f"color: {theme.VALUE_HEX};")
        self.random_dout_button = QPushButton("Random dout")
        self.random_dout_button.clicked.connect(self.model.random_dout)
        self.check_label.setWordWrap(True)
        lay.addWidget(self.db_label)        # the sum on its own line, the check and the button under it
        row = QHBoxLayout()
        row.addWidget(self.check_label, 1)
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
        self.pool_form = ParamForm(PoolSettings)
        wd = self.pool_form.widgets
        self.pool_n_box, self.pool_size_box, self.pool_stride_box = wd["n"], wd["size"], wd["stride"]
        for box in wd.values():
            box.setMinimumWidth(80)
        self.pool_form.edited.connect(self._on_pool_edited)
        self.pool_random_button = QPushButton("Random")
        self.pool_random_button.clicked.connect(self.model.random_pool)
        ctl = QHBoxLayout()
        ctl.addWidget(self.pool_form)
        ctl.addWidget(self.pool_random_button, 0, Qt.AlignmentFlag.AlignBottom)
        ctl.addStretch(1)
        lay.addLayout(ctl)
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
        self.filter_form = ParamForm(FilterSettings)
        wd = self.filter_form.widgets
        self.filter_combo, self.image_combo, self.digit_box = wd["filter"], wd["image"], wd["digit"]
        self.filter_form.edited.connect(self._on_filter_edited)
        self.filter_form.setEnabled(False)
        ctl = QHBoxLayout()
        ctl.addWidget(self.filter_form)
        ctl.addStretch(1)
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
        self.preparing_label = QLabel("Preparing the photos and the convolution kernels…")
        self.preparing_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preparing_label.setWordWrap(True)
        self.preparing_label.setStyleSheet(f"color: {theme.MUTED_HEX}; font-size: 12pt;")
        self.filters_stack = QStackedWidget()
        self.filters_stack.addWidget(self.preparing_label)
        self.filters_stack.addWidget(self.images)
        row.addWidget(self.kernel_view)
        row.addWidget(self.filters_stack, 1)
        lay.addLayout(row, 1)
        self.filter_caption = QLabel()
        self.filter_caption.setWordWrap(True)
        lay.addWidget(self.filter_caption)
        lay.addWidget(muted(HUBEL_WIESEL))
        return page

    # ================================================================================================ edits
    # ---- predict the output size
    def _ask_size(self, q: tuple[int, int, int, int]) -> None:
        N, F, S, P = q
        self.size_question = q
        self.size_prediction.question.setText(
            f"<b>Predict first:</b> input {N}×{N}, filter {F}×{F}, stride {S}, padding {P}: what is the output "
            f"size? (0 if the filter cannot tile it exactly)")
        self.size_prediction.reset()

    def new_size_question(self) -> None:
        """A random geometry within the lab's ranges; about one in four does not tile (its answer is 0)."""
        rng = self._quiz_rng

        def pick(box, *prefer) -> int:          # within the lab's own ranges, so "Show it in the lab" can
            lo, hi = box.minimum(), box.maximum()
            options = [v for v in prefer if lo <= v <= hi] or list(range(lo, hi + 1))
            return int(rng.choice(options))
        N = pick(self.n_box, *range(5, 12))
        F = pick(self.f_box, *(f for f in (1, 2, 3, 5) if f <= N))
        S = pick(self.s_box, 1, 1, 2, 2, 3)
        P = pick(self.p_box, 0, 1, 2)
        self._ask_size((N, F, S, P))

    def _check_size_prediction(self, guess: float) -> tuple[bool, str]:
        N, F, S, P = self.size_question
        try:
            out = output_size(N, F, P, S)
        except StudioError as exc:
            return guess == 0, f"This one does not tile: {exc}"
        return guess == out, f"(N − F + 2P)/S + 1 = ({N} − {F} + 2·{P})/{S} + 1 = {out}."

    def _show_size_question(self) -> None:
        N, F, S, P = self.size_question
        self.n_box.setValue(N)
        self.f_box.setValue(F)
        self.s_box.setValue(S)
        self.p_box.setValue(P)

    @property
    def geometry(self) -> tuple[int, int, int, int]:
        s = self.model.layer
        return s.n, s.f, s.pad, s.stride

    def _on_layer_edited(self) -> None:
        settings = self.layer_form.try_value()
        if settings is not None:
            self.pause()
            self.model.set_layer(settings)

    def _on_pool_edited(self) -> None:
        settings = self.pool_form.try_value()
        if settings is not None:
            self.model.set_pool(settings)

    def _on_filter_edited(self) -> None:
        settings = self.filter_form.try_value()
        if settings is not None:
            self.model.set_filter(settings)

    def _edit(self, which: str, r: int, c: int, button) -> None:
        self.model.edit(which, r, c, -1.0 if button == Qt.MouseButton.RightButton else 1.0)

    def _on_prepared(self, prepared) -> None:
        self.model.set_prepared(prepared)

    def _on_prepare_failed(self, _exc: BaseException, text: str) -> None:
        self.preparing_label.setText(f"The Filters tab could not load its images: {text}")
        self.preparing_label.setStyleSheet(f"color: {theme.ERROR.name()};")

    def is_ready(self) -> bool:
        return self.model.ready

    def _on_model_changed(self, part: str) -> None:
        if part == "layer":
            self.pause()
            self._show_layer()
        elif part == "frame":
            if not self._moving:         # moved by someone else: draw it and let the player follow
                self._show_frame()
                self.player.follow(len(self.model.frames), self.model.frame_index)
        elif part == "backward":
            self._show_backward()
        elif part == "pool":
            self._show_pool()
        elif part == "filter":
            self._show_filter()
        elif part == "ready":
            self._show_backward()
            self._show_filter()
            self.ready.emit()

    # ================================================================================================ animation
    def play(self) -> None:
        """From the end: starts again with no cell computed. No frames (invalid geometry): nothing happens."""
        self.player.play()

    def pause(self) -> None:
        self.player.pause()

    def is_playing(self) -> bool:
        return self.player.is_playing()

    def step(self) -> None:
        """Pause, then compute one more output cell."""
        self.player.step()

    def reset(self) -> None:
        """Pause and clear the output (player frame 0)."""
        self.player.rewind()

    def _on_player_frame(self, k: int) -> None:
        """The player is on frame k: the model shows its first k output cells (frame_index k - 1)."""
        if self.player.following:       # the player follows the model: its frame must not move the model back
            return
        m = self.model
        target = k - 1
        if target == m.frame_index:
            return
        self._moving = True
        try:
            if target < m.frame_index:
                m.rewind()
            while m.frame_index < target and m.step():
                pass
        finally:
            self._moving = False
        self._show_frame()

    # ================================================================================================ drawing
    def _show_layer(self) -> None:
        m = self.model
        self.layer_form.set_value(m.layer)
        self.size_label.setText(m.size_text())
        self.size_label.setStyleSheet(ERROR_STYLE if m.error else OK_STYLE)
        ok = bool(m.frames)
        for b in (self.play_button, self.step_button, self.reset_button, self.pause_button):
            b.setEnabled(ok)
        self.player.follow(len(m.frames), m.frame_index)     # no frames without a valid geometry
        self._show_frame()
        self._show_backward()

    def _show_frame(self) -> None:
        m = self.model
        N, F, P, S = self.geometry
        self.input_view.set_values(np.pad(m.x, P), pad=P)
        self.filter_view.set_values(m.w, footer=f"b = {format_number(m.layer.bias)}")
        if not m.frames:
            self.output_view.set_values(np.zeros((0, 0)))
            self.input_view.set_windows([])
            self.output_view.set_windows([])
            self.dot_title.setText("Dot product")
            self.dot_label.setText("The animation is off until the output size is a whole number (see the left).")
            self.progress_label.setText("")
            self.frame_shown.emit(m.frame_index)
            return
        out, shown = m.output_grid()
        self.output_view.set_values(out, shown=shown)
        k = m.frame_index
        if k >= 0:
            f = m.frames[k]
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
        self.progress_label.setText(f"cell {k + 1} of {len(m.frames)}")
        self.frame_shown.emit(k)

    def _show_backward(self) -> None:
        m = self.model
        views = (self.bw_xpad_view, self.bw_dout_view, self.bw_dw_view, self.bw_full_view, self.bw_flip_view,
                 self.bw_dx_view)
        bk = m.backward
        if bk is None:
            for v in views:
                v.set_values(np.zeros((0, 0)))
            self.db_label.setText("No backward pass: the layer's geometry is not valid.")
            self.check_label.setText("")
            return
        N, F, P, S = self.geometry
        self.bw_xpad_view.set_values(bk.xpad[0], pad=P)
        self.bw_dout_view.set_values(m.dout)
        self.bw_dw_view.set_values(bk.dw[0])
        self.bw_full_view.set_values(np.pad(bk.dout_dilated, F - 1), pad=F - 1,
                                     title=("dout dilated (S − 1 zeros) and padded by F − 1" if S > 1
                                            else "dout, zero-padded by F − 1"))
        self.bw_flip_view.set_values(bk.w_flipped[0])
        self.bw_dx_view.set_values(bk.dxpad[0], pad=P, title=("dX = full conv(dout, w), cropped" if P
                                                              else "dX = full conv(dout, w)"))
        terms = " + ".join(f"({format_number(v)})" if v < 0 else format_number(v) for v in m.dout.ravel()[:16])
        terms += " + …" if m.dout.size > 16 else ""
        self.db_label.setText(f"db = Σ dout = {terms} = {format_number(bk.db)}")
        err = m.library_check()          # the same gradients from the library layer, as a check on screen
        if err is None:
            self.check_label.setText("checking against layers.conv_backward once its kernels are ready…")
        else:
            self.check_label.setText(f"layers.conv_backward agrees (max |diff| {err:.1e})" if err < 1e-9
                                     else f"differs from layers.conv_backward by {err:.2e}")

    def _show_pool(self) -> None:
        m = self.model
        p = m.pool
        self.pool_form.set_value(p)
        if m.pool_error:
            for v in (self.pool_output_view, self.pool_dout_view, self.pool_dx_view):
                v.set_values(np.zeros((0, 0)))
            self.pool_input_view.set_values(m.pool_x)
            self.pool_input_view.set_windows([])
            self.pool_input_view.set_marks(set())
            self.pool_label.setText(f"<span style='color:{theme.ERROR.name()}'>{m.pool_error}</span>")
            return
        frames, size, stride = m.pool_frames, p.size, p.stride
        palette = [QColor("#2f74d0"), QColor("#1e8c3a"), QColor("#9a66c8"), QColor("#d0577c")]
        wins = [(f.origin[0], f.origin[1], size, size,
                 palette[(f.out_pos[0] + f.out_pos[1]) % 4 if size <= stride else f.index % 4], False)
                for f in frames]
        marks = {f.argmax for f in frames}
        self.pool_input_view.set_values(m.pool_x)
        self.pool_input_view.set_windows(wins)
        self.pool_input_view.set_marks(marks)
        self.pool_output_view.set_values(m.pool_out)
        self.pool_dout_view.set_values(m.pool_dout)
        self.pool_dx_view.set_values(m.pool_dx)
        self.pool_dx_view.set_marks(marks)
        mo = m.pool_out.shape[0]
        self.pool_label.setText(f"{p.n}×{p.n} input, {size}×{size} windows at stride {stride} → {mo}×{mo} output; "
                                f"{len(marks)} cell(s) receive gradient, {p.n * p.n - len(marks)} get 0.")

    def _show_filter(self) -> None:
        m = self.model
        s = m.filter
        self.filter_form.set_value(s)
        self.kernel_view.set_values(FILTERS[s.filter])
        img, out = m.current_image(), m.filtered
        if img is None or out is None:
            self.filters_stack.setCurrentIndex(0)
            self.filter_form.setEnabled(False)
            self.filter_caption.setText(f"<b>{s.filter}</b>: {FILTER_NOTES[s.filter]}.")
            return
        self.filters_stack.setCurrentIndex(1)
        self.filter_form.setEnabled(True)
        self.digit_box.setEnabled(s.image.startswith("digit"))
        self.original_item.setImage(img, autoLevels=False, levels=(0.0, 1.0))
        signed = out.min() < -1e-9
        if signed:                # edge detectors: signed responses on a blue-white-red scale
            # scaled to the 99th percentile of |out|: the zero padding makes a bright photo's border one big edge
            q = float(np.percentile(np.abs(out), 99)) or 1.0
            self.filtered_item.setImage(theme.diverging_rgb(np.clip(out, -q, q)), autoLevels=False,
                                        levels=(0, 255))
        else:
            self.filtered_item.setImage(out, autoLevels=False, levels=(0.0, max(1.0, float(out.max()))))
        self._image_titles[1].setText(f"filtered: {s.filter}" + ("  (blue −, red +)" if signed else ""),
                                      color=theme.INK_HEX, size="10pt")
        self.filter_caption.setText(f"<b>{s.filter}</b>: {FILTER_NOTES[s.filter]}. Output = "
                                    f"layers.conv_forward(image, kernel, stride 1, padding 1), "
                                    f"{out.shape[0]}×{out.shape[1]} like the input (the zero padding shows as a "
                                    f"frame on bright images).")

    def _on_tab_changed(self, index: int) -> None:
        """An animation runs only on its own tab."""
        if self.tabs.widget(index) is not self.multi_view:
            self.multi_view.pause()
        if index > 1:
            self.pause()

    # ================================================================================================ lifetime
    def close_lab(self) -> None:
        """Stop the animations and the preparing job."""
        self.player.pause()
        self.multi_view.close_view()
        self.runner.close()

    def closeEvent(self, event) -> None:  # noqa: N802
        self.close_lab()
        super().closeEvent(event)
