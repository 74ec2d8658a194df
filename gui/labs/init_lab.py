"""The initialisation / normalisation lab (lecture 6): a deep MLP on random data, one forward and one backward pass,
and what happens to the activations and gradients layer by layer for each initialisation, activation and batch norm.

A thin view over simulator.labs.init_lab.InitLabModel: the controls are built from InitSettings, each edit starts
the model's experiment job on the lab's JobRunner (the previous one is superseded and stops within one layer), and
the finished result (statistics, histograms and the explanation, all computed off the UI thread) is drawn when the
model announces it. Each layer gets its own histogram, drawn as a row of a ridge plot (layer 1 at the top), for the
activations and for the gradients dL/da.

A second tab, *Normalisation axes*, compares batch, layer, instance and group norm on one N x C x H x W activation
tensor: one cube per norm (Wu & He's figure: depth N, width C, height H·W) with the set of values that share one mean
and one variance shaded, and a table of each norm's statistics of that tensor (model: InitLabModel.norm_comparison).
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QPainter, QPen, QPolygonF
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QHBoxLayout, QHeaderView, QLabel, QSizePolicy, QSplitter,
                               QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from gui import theme
from gui.forms import ParamForm
from gui.jobs import JobRunner
from gui.labs.common import ERROR_STYLE, MUTED_STYLE, LazyPage, control_column, group
from gui.labs.dying_relu_view import DyingReluView
from gui.tab_widget import TabWidget
from simulator.core.errors import StudioError
from simulator.labs.activation_explorer import curves as activation_curves
from simulator.labs.activation_explorer import symmetry, zigzag
from simulator.labs.init_lab import InitLabModel, InitResult, InitSettings, NormSettings, explain_norms
from simulator.labs.init_stats import NORM_KINDS, InitStats, NormComparison, norm_sets

__all__ = ["InitLab", "NormCompareView", "NormCubesView"]

ROW = 1.0                   # vertical space per layer in the ridge plots
ACT_COLOUR = theme.VALUE    # forward values green, gradients red, as everywhere in the app
GRAD_COLOUR = theme.GRADIENT
NETWORK = ("depth", "width", "n", "activation", "init", "seed")
BATCHNORM = ("batchnorm", "mode", "warmup")



def _fit_width(scroll) -> None:
    """A control column never narrower than its contents (it only scrolls vertically, so it must not clip them)."""
    need = scroll.widget().minimumSizeHint().width() + scroll.verticalScrollBar().sizeHint().width()
    scroll.setMinimumWidth(max(scroll.minimumWidth(), need))

# a plot title's smaller second line: one long line wider than a narrow plot would push its axes out of view
_SUB = f"<br><span style='font-size: 8.5pt; color: {theme.MUTED_HEX};'>"


class _RidgePlot(pg.PlotWidget):
    """One histogram per layer, stacked: layer 1 on top. Each row is a filled step curve scaled to its own peak,
    labelled with the layer's mean and std."""

    def __init__(self, title: str, colour: QColor):
        super().__init__(background="w")
        self.colour = colour
        pi = self.getPlotItem()
        pi.setMenuEnabled(False)
        pi.hideButtons()
        pi.setTitle(title, size="10pt")
        pi.getViewBox().setMouseEnabled(False, False)
        pi.getAxis("left").setStyle(tickLength=0)
        pi.getAxis("bottom").enableAutoSIPrefix(False)
        pi.showGrid(x=True, y=False, alpha=0.12)
        self.rows: list[pg.PlotDataItem] = []
        self.outlines: list[pg.PlotDataItem] = []
        self.labels: list[pg.TextItem] = []
        self.baselines: list[pg.InfiniteLine] = []

    def set_histograms(self, hists: list[tuple[np.ndarray, np.ndarray]], texts: list[str], limit: float,
                       outlines: list[tuple[np.ndarray, np.ndarray]] | None = None, low: float | None = None
                       ) -> None:
        pi = self.getPlotItem()
        depth = len(hists)
        fill = QColor(self.colour)
        fill.setAlpha(110)
        while len(self.rows) < depth:
            k = len(self.rows)
            row = pg.PlotDataItem(stepMode="center", fillLevel=0, pen=pg.mkPen(self.colour, width=1.2),
                                  brush=pg.mkBrush(fill))
            out = pg.PlotDataItem(stepMode="center", pen=pg.mkPen(theme.TEXT, width=1, style=Qt.PenStyle.DashLine))
            # anchored by its top-right corner at the top of its own row, so the text sits inside that row
            lab = pg.TextItem(anchor=(1, 0), color=theme.TEXT_MUTED, fill=pg.mkBrush(255, 255, 255, 190))
            lab.setFont(theme.font(7.5, mono=True))
            base = pg.InfiniteLine(angle=0, pen=pg.mkPen(theme.GRID_DOT, width=1))
            for it in (base, row, out, lab):
                pi.addItem(it)
            self.rows.append(row)
            self.outlines.append(out)
            self.labels.append(lab)
            self.baselines.append(base)
            _ = k
        for k in range(len(self.rows)):
            visible = k < depth
            for it in (self.rows[k], self.outlines[k], self.labels[k], self.baselines[k]):
                it.setVisible(visible)
            if not visible:
                continue
            counts, edges = hists[k]
            base = (depth - 1 - k) * ROW
            peak = float(counts.max()) or 1.0
            self.rows[k].setData(edges, base + 0.85 * ROW * counts / peak, fillLevel=base)
            self.baselines[k].setPos(base)
            if outlines:
                oc, oe = outlines[k]
                self.outlines[k].setData(oe, base + 0.85 * ROW * oc / (float(oc.max()) or 1.0))
            else:
                self.outlines[k].setData([], [])
            self.labels[k].setText(texts[k])
            self.labels[k].setPos(limit, base + 0.98 * ROW)
        pi.setXRange(-limit if low is None else low, limit, padding=0.02)
        pi.setYRange(0, depth * ROW, padding=0.01)
        pi.getAxis("left").setTicks([[((depth - 1 - k) * ROW + 0.4, f"L{k + 1}") for k in range(depth)]])

    def row_count(self) -> int:
        return sum(1 for r in self.rows if r.isVisible() and r.xData is not None and len(r.xData))



_NORM_TITLES = {"BatchNorm": "Batch Norm", "LayerNorm": "Layer Norm", "InstanceNorm": "Instance Norm",
                "GroupNorm": "Group Norm"}
_AXES_TEXT = {"BatchNorm": "N, H, W", "LayerNorm": "C, H, W", "InstanceNorm": "H, W", "GroupNorm": "C/G, H, W"}
SHADE = QColor("#5b8def")          # the shaded set, as in the GroupNorm paper's figure
MAX_DRAWN_N, MAX_DRAWN_C = 8, 16   # cells drawn along N and C (larger tensors: the first ones, and a note)
NORM_COLUMNS = ["norm", "normalises\nover", "sets", "values\neach", "input\nmeans", "input\nstds",
                "after: max\n|mean|", "after: max\n|var − 1|", "after: spread of\nchannel means",
                "after: spread of\nsample means"]


class NormCubesView(QWidget):
    """Wu & He's figure for the tensor on screen: one cube per norm (depth N, width C, height H·W), the (sample,
    channel) columns of one normalisation set shaded (the set of sample 0, channel 0). ``shaded[kind]``: the drawn
    (n, c) cells that are shaded, for tests."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.shape: tuple[int, int, int, int] | None = None
        self.groups = 1
        self.shaded: dict[str, set[tuple[int, int]]] = {}
        self.setMinimumSize(520, 180)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def sizeHint(self) -> QSize:
        return QSize(900, 260)

    def set_tensor(self, shape: tuple[int, ...], groups: int) -> None:
        self.shape, self.groups = tuple(int(v) for v in shape), int(groups)
        self.shaded = {}
        for kind in NORM_KINDS:
            sets = norm_sets(kind, self.shape, self.groups)[:MAX_DRAWN_N, :MAX_DRAWN_C]
            self.shaded[kind] = {(int(n), int(c)) for n, c in zip(*np.nonzero(sets == sets[0, 0]))}
        self.update()

    def paintEvent(self, event) -> None:
        if self.shape is None:
            return
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.fillRect(self.rect(), QColor("#ffffff"))
        # one row of four cubes or two rows of two: whichever draws the cells larger
        cols = max((4, 2), key=lambda k: self._cell(self.width() / k, self.height() / (len(NORM_KINDS) // k)))
        rows = len(NORM_KINDS) // cols
        cw, ch = self.width() / cols, self.height() / rows
        for k, kind in enumerate(NORM_KINDS):
            self._draw_cube(p, QRectF((k % cols) * cw, (k // cols) * ch, cw, ch), kind)
        p.end()

    _TITLE_H, _FOOT_H, _LEFT_W, _RIGHT_W = 20.0, 32.0, 34.0, 44.0

    def _cell(self, w: float, h: float) -> float:
        """The cell size of a cube drawn in a w x h box: the front face is nc cells wide and 3 high (H·W), the
        depth, nn cells, goes up and to the right."""
        nn, nc = min(self.shape[0], MAX_DRAWN_N), min(self.shape[1], MAX_DRAWN_C)
        avail_w, avail_h = w - self._LEFT_W - self._RIGHT_W, h - self._TITLE_H - self._FOOT_H - 6
        return max(2.0, min(avail_w / (nc + 0.55 * nn), avail_h / (3.0 + 0.42 * nn)))

    def _draw_cube(self, p: QPainter, box: QRectF, kind: str) -> None:
        N, C, H, W = self.shape
        nn, nc = min(N, MAX_DRAWN_N), min(C, MAX_DRAWN_C)
        title_h, left_w = self._TITLE_H, self._LEFT_W
        avail_w = box.width() - left_w - self._RIGHT_W
        avail_h = box.height() - title_h - self._FOOT_H - 6
        s = self._cell(box.width(), box.height())
        ddx, ddy, fh = 0.55 * s, -0.42 * s, 3.0 * s
        width, height = nc * s + nn * ddx, fh - nn * ddy
        x0 = box.left() + left_w + (avail_w - width) / 2
        y0 = box.top() + title_h + 4 + (avail_h - height) / 2 + nn * -ddy + fh
        p.setPen(theme.TEXT)
        p.setFont(theme.font(9.5, weight=QFont.Weight.DemiBold))
        p.drawText(QRectF(box.left(), box.top() + 2, box.width(), title_h), Qt.AlignmentFlag.AlignCenter,
                   _NORM_TITLES[kind])
        shaded = self.shaded.get(kind, set())
        line = QPen(QColor("#5a6472"), 0.8)
        p.setPen(line)
        for n in reversed(range(nn)):       # back to front, left to right: nearer cells cover farther ones
            for c in range(nc):
                x = x0 + c * s + n * ddx
                top = y0 - fh + n * ddy
                on = (n, c) in shaded
                p.setBrush(SHADE.darker(135) if on else QColor("#dfe4ea"))
                p.drawPolygon(QPolygonF([QPointF(x + s, top), QPointF(x + s + ddx, top + ddy),
                                         QPointF(x + s + ddx, top + ddy + fh), QPointF(x + s, top + fh)]))
                p.setBrush(SHADE.darker(118) if on else QColor("#eef1f5"))
                p.drawPolygon(QPolygonF([QPointF(x, top), QPointF(x + s, top), QPointF(x + s + ddx, top + ddy),
                                         QPointF(x + ddx, top + ddy)]))
                p.setBrush(SHADE if on else QColor("#ffffff"))
                p.drawRect(QRectF(x, top, s, fh))
        # axis labels: C under the front face, N along the depth edge, H, W beside the front face
        p.setPen(theme.TEXT_MUTED)
        p.setFont(theme.font(8.5))
        p.drawText(QRectF(x0, y0 + 1, nc * s, 14), Qt.AlignmentFlag.AlignCenter, f"C = {C}")
        p.drawText(QRectF(x0 + nc * s + nn * ddx / 2 + 8, y0 + nn * ddy / 2, 60, 14),
                   Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, f"N = {N}")
        p.drawText(QRectF(x0 - left_w - 2, y0 - fh, left_w, fh),
                   Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, f"H, W\n{H}×{W}")
        note = f"over {_AXES_TEXT[kind]}"
        if N > nn or C > nc:
            note += f"  (first {nn} × {nc} drawn)"
        p.setPen(theme.TEXT)
        p.drawText(QRectF(box.left(), y0 + 15, box.width(), 15), Qt.AlignmentFlag.AlignCenter, note)


class NormCompareView(QWidget):
    """The *Normalisation axes* page: the tensor's settings (from NormSettings), the cubes, the statistics table and
    the explanation. Children for tests: norm_form (its widgets in ``widgets``), cubes, norm_table, norm_explain,
    norm_error, status."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.norm_form = ParamForm(NormSettings)
        self.widgets = self.norm_form.widgets
        self.cubes = NormCubesView()
        self.norm_table = QTableWidget(len(NORM_KINDS), len(NORM_COLUMNS))
        self.norm_table.setHorizontalHeaderLabels(NORM_COLUMNS)
        self.norm_table.verticalHeader().hide()
        self.norm_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.norm_table.verticalHeader().setDefaultSectionSize(22)
        self.norm_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.norm_table.horizontalHeader().setStretchLastSection(True)
        self.norm_table.setFont(theme.font(8.5, mono=True))
        self.norm_table.setMinimumHeight(22 * len(NORM_KINDS) + 52)
        self.norm_table.setMaximumHeight(22 * len(NORM_KINDS) + 70)
        self.norm_explain = QLabel()
        self.norm_explain.setWordWrap(True)
        self.norm_explain.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.norm_explain.setStyleSheet("background: #ffffff; border: 1px solid #dde1e7; border-radius: 3px; "
                                        "padding: 6px;")
        self.norm_error = QLabel()
        self.norm_error.setStyleSheet(ERROR_STYLE)
        self.norm_error.setWordWrap(True)
        self.norm_error.hide()
        self.status = QLabel()
        self.status.setStyleSheet(MUTED_STYLE)
        note = QLabel("Shaded: the values that share one mean and one variance (the set of sample 0, channel 0). "
                      "γ = 1, β = 0, ε = 1e-5; batch norm in train mode. Green spreads: what the norm makes equal.")
        note.setWordWrap(True)
        note.setStyleSheet(MUTED_STYLE)
        left = control_column([group("Activation tensor N × C × H × W", self.norm_form), note, self.norm_error,
                               self.status], min_width=290)
        _fit_width(left)
        lower = QWidget()
        lay = QVBoxLayout(lower)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.norm_table)
        lay.addWidget(self.norm_explain, 1)
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self.cubes)
        right.addWidget(lower)
        right.setStretchFactor(0, 1)
        right.setSizes([360, 300])
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(left)
        splitter.addWidget(right)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([300, 1200])
        root = QHBoxLayout(self)
        root.setContentsMargins(0, 0, 0, 0)
        root.addWidget(splitter)

    def settings(self) -> NormSettings:
        return NormSettings(**self.norm_form.values())

    def show_comparison(self, c: NormComparison) -> None:
        self.norm_error.hide()
        self.cubes.set_tensor(c.x.shape, c.groups)
        t = self.norm_table
        for r, row in enumerate(c.rows):
            vals = [row.name, ", ".join(row.axes), str(row.sets), str(row.per_set),
                    f"{row.in_mean[0]:+.2f} … {row.in_mean[1]:+.2f}", f"{row.in_std[0]:.2f} … {row.in_std[1]:.2f}",
                    f"{row.out_mean:.1e}", f"{row.out_var:.1e}", f"{row.channel_spread:.3f}",
                    f"{row.sample_spread:.3f}"]
            for k, v in enumerate(vals):
                it = QTableWidgetItem(v)
                if k >= 2:
                    it.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if k >= 8 and float(v) < 1e-6:
                    it.setForeground(theme.VALUE)          # what this norm makes equal
                t.setItem(r, k, it)
        self.norm_explain.setText(explain_norms(c))
        N, C, H, W = c.x.shape
        self.status.setText(f"{N} × {C} × {H} × {W} = {c.x.size:,} values, GroupNorm G = {c.groups}")

    def show_error(self, message: str) -> None:
        self.norm_error.setText(message)
        self.norm_error.show()



class ActivationExplorer(QWidget):
    """Every activation and its derivative side by side (from the networks' own layer functions), the saturated
    bands shaded, the largest slope marked; beside it the lecture's zig-zag: SGD on w from all-positive inputs (a
    sigmoid layer's outputs) against zero-centred ones."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        from simulator.nn.layers import ACTIVATIONS
        self.combo = QComboBox(self)
        self.combo.addItems(list(ACTIVATIONS))
        self.combo.currentTextChanged.connect(self.show_activation)
        self.f_plot, self.df_plot, self.zz_plot = pg.PlotWidget(background="w"), pg.PlotWidget(background="w"), \
            pg.PlotWidget(background="w")
        for plot, title, left in ((self.f_plot, "f(x)", "f"), (self.df_plot, "f'(x): the local gradient", "f'"),
                                  (self.zz_plot, "SGD on w towards w* = (1, −1)", "w₂")):
            pi = plot.getPlotItem()
            pi.setTitle(title, size="10pt", color=theme.INK_HEX)
            pi.setLabel("left", left)
            pi.setLabel("bottom", "x" if plot is not self.zz_plot else "w₁")
            pi.showGrid(x=True, y=True, alpha=0.15)
            pi.hideButtons()
            for axis in ("left", "bottom"):
                pi.getAxis(axis).enableAutoSIPrefix(False)      # 0.25, not 250 × 0.001
        self.f_curve = self.f_plot.plot(pen=pg.mkPen(theme.VALUE_HEX, width=2.2))
        self.df_curve = self.df_plot.plot(pen=pg.mkPen(theme.GRAD_HEX, width=2.2))
        self.peak = pg.ScatterPlotItem(size=9, brush=pg.mkBrush(theme.GRAD_HEX), pen=None)
        self.df_plot.addItem(self.peak)
        self.bands: list[pg.LinearRegionItem] = []
        self.note = QLabel(self)
        self.note.setWordWrap(True)
        self.note.setStyleSheet(MUTED_STYLE)
        pi = self.zz_plot.getPlotItem()
        pi.setAspectLocked(True)
        pi.addLegend(offset=(-6, 6), labelTextSize="8pt")
        self.zz_pos = pi.plot(pen=pg.mkPen("#e15759", width=2), symbol="o", symbolSize=4,
                              symbolBrush="#e15759", symbolPen=None, name="inputs all > 0 (after a sigmoid)")
        self.zz_cen = pi.plot(pen=pg.mkPen("#4e79a7", width=2), symbol="o", symbolSize=4,
                              symbolBrush="#4e79a7", symbolPen=None, name="zero-centred inputs (after a tanh)")
        pi.addItem(pg.ScatterPlotItem([1.0], [-1.0], symbol="star", size=16, brush=pg.mkBrush("#ffd23f"),
                                      pen=pg.mkPen(theme.INK_HEX)))
        self.zz_note = QLabel(self)
        self.zz_note.setWordWrap(True)
        self.zz_note.setStyleSheet(MUTED_STYLE)
        left = QVBoxLayout()
        row = QHBoxLayout()
        row.addWidget(QLabel("Activation", self))
        row.addWidget(self.combo, 1)
        left.addLayout(row)
        left.addWidget(self.f_plot, 1)
        left.addWidget(self.df_plot, 1)
        left.addWidget(self.note)
        right = QVBoxLayout()
        right.addWidget(self.zz_plot, 1)
        right.addWidget(self.zz_note)
        lay = QHBoxLayout(self)
        lay.addLayout(left, 3)
        lay.addLayout(right, 2)
        self.combo.setCurrentText("sigmoid")
        self.show_activation("sigmoid")
        self._show_zigzag()

    def show_activation(self, name: str) -> None:
        c = activation_curves(name)
        self.current = c
        self.f_curve.setData(c.x, c.f)
        self.df_curve.setData(c.x, c.df)
        self.peak.setData([c.argmax_slope], [c.max_slope])
        for band in self.bands:
            self.df_plot.removeItem(band)
        self.bands = []
        edges = np.flatnonzero(np.diff(np.r_[0, c.saturated.astype(np.int8), 0]))
        for a, b in zip(edges[::2], edges[1::2]):          # each run of saturated points, shaded
            band = pg.LinearRegionItem((c.x[a], c.x[b - 1]), movable=False, brush=pg.mkBrush(225, 87, 89, 40),
                                       pen=pg.mkPen(None))
            self.df_plot.addItem(band)
            self.bands.append(band)
        self.note.setText(f"{name}: {c.note}")

    def _show_zigzag(self) -> None:
        pos, cen = zigzag(centred=False), zigzag(centred=True)
        self.zigzags = (pos, cen)
        self.zz_pos.setData(pos.path[:, 0], pos.path[:, 1])
        self.zz_cen.setData(cen.path[:, 0], cen.path[:, 1])
        self.zz_note.setText(
            f"From w = (−1, 1), {len(pos.path) - 1} SGD steps on one example at a time. dL/dw = (w·x − w*·x)·x: when "
            f"every input x is positive (a sigmoid's outputs), both coordinates of a step share one sign — "
            f"{pos.same_sign:.0%} of the steps go north-east or south-west, never straight towards w* in the "
            f"south-east, so the path zig-zags (red). Zero-centred inputs: {cen.same_sign:.0%} of the steps share a "
            f"sign, and the path heads straight there (blue).")


class SymmetryView(QWidget):
    """Why weights are not initialised to one constant: the same 2-8-3 tanh MLP trained from a constant init and from
    Xavier; the first layer's weights as two heatmaps (one row per hidden unit) and the spread between the units over
    the updates. Computed in a job the first time the tab is shown."""

    computed = Signal()

    def __init__(self, runner: JobRunner, parent: QWidget | None = None):
        super().__init__(parent)
        self.runner = runner
        self.result = None
        self.heat: list[pg.ImageItem] = []
        heats = QHBoxLayout()
        for title in ("constant init (every weight 0.1), after training", "Xavier init, after training"):
            plot = pg.PlotWidget(background="w")
            pi = plot.getPlotItem()
            pi.setTitle(title, size="10pt", color=theme.INK_HEX)
            pi.setLabel("left", "hidden unit")
            pi.setLabel("bottom", "input (x₁, x₂)")
            pi.hideButtons()
            pi.invertY(True)
            item = pg.ImageItem(axisOrder="row-major")
            pi.addItem(item)
            self.heat.append(item)
            heats.addWidget(plot)
        self.spread_plot = pg.PlotWidget(background="w")
        pi = self.spread_plot.getPlotItem()
        pi.setTitle("Spread between the hidden units' weight vectors", size="10pt", color=theme.INK_HEX)
        pi.setLabel("bottom", "update")
        pi.setLabel("left", "max distance from unit 1")
        pi.showGrid(x=True, y=True, alpha=0.15)
        pi.addLegend(offset=(-6, 6), labelTextSize="8pt")
        self.constant_curve = pi.plot(pen=pg.mkPen("#e15759", width=2.2), name="constant init")
        self.random_curve = pi.plot(pen=pg.mkPen("#4e79a7", width=2.2), name="Xavier init")
        self.note = QLabel("Computing…", self)
        self.note.setWordWrap(True)
        self.note.setStyleSheet(MUTED_STYLE)
        lay = QVBoxLayout(self)
        lay.addLayout(heats, 3)
        lay.addWidget(self.spread_plot, 2)
        lay.addWidget(self.note)

    def compute(self) -> None:
        def job():
            yield None
            return symmetry()
        self.runner.start("symmetry", job, on_done=self._show, on_error=lambda _e, text: self.note.setText(text))

    def _show(self, r) -> None:
        self.result = r
        lim = float(max(np.abs(r.constant_w).max(), np.abs(r.random_w).max(), 1e-12))
        for item, w in zip(self.heat, (r.constant_w, r.random_w)):
            item.setImage(theme.diverging_rgb(w / lim), levels=(0, 255))
            pi = item.getViewBox().parentItem()          # the plot: cells labelled by unit and input
            pi.getAxis("bottom").setTicks([[(0.5, "x₁"), (1.5, "x₂")], []])
            pi.getAxis("left").setTicks([[(i + 0.5, str(i + 1)) for i in range(len(w))], []])
        self.constant_curve.setData(np.arange(len(r.constant_spread)), r.constant_spread)
        self.random_curve.setData(np.arange(len(r.random_spread)), r.random_spread)
        n = len(r.constant_w)
        self.note.setText(
            f"With every weight equal, all {n} hidden units compute the same output, receive the same gradient and "
            f"take the same step, for ever: their spread stays exactly {r.constant_spread.max():g} and the {n} rows "
            f"are identical — {n} units are worth one (final loss {r.constant_loss:.3f}). Random weights break the "
            f"symmetry: the units spread out to {r.random_spread[-1]:.3g} and learn different features (final loss "
            f"{r.random_loss:.3f}).")
        self.computed.emit()

class InitLab(QWidget):
    """Depth, width, activation, init, batch norm (train/eval), and per-layer histograms, numbers and bars.

    Signals: ``computed()`` after new results are on screen, ``norms_computed()`` after a new norm comparison.
    Children for tests: tabs (Initialisation, Normalisation axes), net_form (depth_box, width_box, n_box,
    activation_combo, init_combo, seed_box), bn_form (bn_check, mode_combo, warmup_box), act_plot, grad_plot,
    std_plot, bar_plot, table, explain_label, status_label, error_label; the other sub-tabs' views norms_view,
    activations_view, symmetry_view, dying_view (each built when its tab is first shown or the attribute first read).
    ``model``: the InitLabModel; ``stats``: the InitStats on screen; ``runner``: the lab's JobRunner (jobs
    "experiment" and "norms")."""

    computed = Signal()
    norms_computed = Signal()

    def __init__(self, parent: QWidget | None = None, model: InitLabModel | None = None):
        super().__init__(parent)
        self.model = model or InitLabModel()
        self.runner = JobRunner(self)
        self._build()
        self.model.changed.connect(self._on_model_changed)
        self.model.norms_changed.connect(self._on_norms_changed)
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(80)
        self._debounce.timeout.connect(self._start)
        self._norms_debounce = QTimer(self)
        self._norms_debounce.setSingleShot(True)
        self._norms_debounce.setInterval(80)
        self._norms_debounce.timeout.connect(self._start_norms)
        self.request()

    stats = property(lambda self: self.model.stats)
    result = property(lambda self: self.model.result)
    # the sub-tabs' views, built on first use
    norms_view = property(lambda self: self._norms_page.page())
    activations_view = property(lambda self: self._activations_page.page())
    symmetry_view = property(lambda self: self._symmetry_page.page())
    dying_view = property(lambda self: self._dying_page.page())

    # ============================================================================================== construction
    def _build(self) -> None:
        self.net_form = ParamForm(InitSettings, only=NETWORK)
        self.bn_form = ParamForm(InitSettings, only=BATCHNORM)
        wd = {**self.net_form.widgets, **self.bn_form.widgets}
        self.depth_box, self.width_box, self.n_box = wd["depth"], wd["width"], wd["n"]
        self.activation_combo, self.init_combo, self.seed_box = wd["activation"], wd["init"], wd["seed"]
        self.bn_check, self.mode_combo, self.warmup_box = wd["batchnorm"], wd["mode"], wd["warmup"]
        self.width_box.setSingleStep(50)
        self.n_box.setSingleStep(100)
        self.net_form.edited.connect(self.request)
        self.bn_form.edited.connect(self.request)
        self.explain_label = QLabel()
        self.explain_label.setWordWrap(True)
        self.explain_label.setStyleSheet("background: #ffffff; border: 1px solid #dde1e7; border-radius: 3px; "
                                         "padding: 6px;")
        self.status_label = QLabel()
        self.status_label.setStyleSheet(MUTED_STYLE)
        self.status_label.setWordWrap(True)
        self.error_label = QLabel()
        self.error_label.setStyleSheet(ERROR_STYLE)
        self.error_label.setWordWrap(True)
        self.error_label.hide()

        self.act_plot = _RidgePlot("Activations a per layer (histograms)", ACT_COLOUR)
        self.grad_plot = _RidgePlot("Gradients dL/da per layer (histograms)", GRAD_COLOUR)
        self.std_plot = pg.PlotWidget(background="w")
        sp = self.std_plot.getPlotItem()
        sp.setMenuEnabled(False)
        sp.hideButtons()
        sp.setTitle("std per layer", size="10pt")
        sp.setLogMode(y=True)
        sp.showGrid(x=True, y=True, alpha=0.15)
        sp.setLabel("bottom", "layer")
        sp.getAxis("left").setStyle(maxTextLevel=1)
        legend = sp.addLegend(offset=(-6, 6), labelTextSize="8pt")
        legend.setBrush(pg.mkBrush(255, 255, 255, 200))
        self.std_curves = {
            "std": sp.plot(pen=pg.mkPen(ACT_COLOUR, width=2), symbol="o", symbolSize=5, symbolBrush=ACT_COLOUR,
                           symbolPen=None, name="activations"),
            "grad_std": sp.plot(pen=pg.mkPen(GRAD_COLOUR, width=2), symbol="o", symbolSize=5,
                                symbolBrush=GRAD_COLOUR, symbolPen=None, name="gradients"),
        }
        self.bar_plot = pg.PlotWidget(background="w")
        bp = self.bar_plot.getPlotItem()
        bp.setMenuEnabled(False)
        bp.hideButtons()
        bp.setLabel("bottom", "layer")
        bp.setYRange(0, 1, padding=0.02)
        bp.showGrid(x=False, y=True, alpha=0.15)
        bp.getViewBox().setMouseEnabled(False, False)
        self.bars: list[pg.BarGraphItem] = []

        self.table = QTableWidget(0, 7)
        self.table.setHorizontalHeaderLabels(["layer", "mean a", "std a", "std dL/da", "|a|>0.99", "a≤0",
                                              "BN gap"])
        self.table.horizontalHeaderItem(6).setToolTip("batch norm: |train-mode output − eval-mode output|")
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setDefaultSectionSize(20)
        # columns as wide as their numbers (no "+1.87e-…"); the last one takes what is left
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setFont(theme.font(8.5, mono=True))

        bn = QVBoxLayout()
        bn.addWidget(self.bn_form)
        self.bn_note = QLabel()
        self.bn_note.setWordWrap(True)
        self.bn_note.setStyleSheet(MUTED_STYLE)
        bn.addWidget(self.bn_note)
        left = control_column([group("Network", self.net_form), group("Batch normalisation", bn),
                               self.explain_label, self.error_label, self.status_label], min_width=290)
        _fit_width(left)

        ridges = QSplitter(Qt.Orientation.Horizontal)
        ridges.addWidget(self.act_plot)
        ridges.addWidget(self.grad_plot)
        bottom = QSplitter(Qt.Orientation.Horizontal)
        bottom.addWidget(self.std_plot)
        bottom.addWidget(self.bar_plot)
        bottom.addWidget(self.table)
        bottom.setSizes([280, 260, 580])
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(ridges)
        right.addWidget(bottom)
        right.setSizes([560, 300])
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(left)
        splitter.addWidget(right)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([300, 1200])
        # the other sub-tabs are built the first time they are shown: opening the lab costs the first one's widgets
        self.tabs = TabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(splitter, "Initialisation")
        self._norms_page = LazyPage(self._make_norms_view, lambda _view: self._on_norms_built())
        self._activations_page = LazyPage(ActivationExplorer)
        self._symmetry_page = LazyPage(lambda: SymmetryView(self.runner))
        self._dying_page = LazyPage(lambda: DyingReluView(self.runner))
        self.tabs.addTab(self._norms_page, "Normalisation axes: BN, LN, IN, GN")
        self.tabs.addTab(self._activations_page, "Activations: f and f'")
        self.tabs.addTab(self._symmetry_page, "Constant init: symmetry")
        self.tabs.addTab(self._dying_page, "Dying ReLU: the 0.01 bias")
        self.tabs.currentChanged.connect(self._on_tab_changed)
        root = QHBoxLayout(self)
        root.setContentsMargins(0, 0, 0, 0)
        root.addWidget(self.tabs)

    # ================================================================================================ public API
    def request(self, *_: object) -> None:
        """Recompute soon (edits arriving together are coalesced)."""
        if not self.runner.closed:
            self._debounce.start()

    def is_busy(self) -> bool:
        return self._debounce.isActive() or self.runner.running("experiment")

    def settings(self) -> InitSettings:
        """The settings the controls show."""
        return InitSettings(**{**self.net_form.values(), **self.bn_form.values()})

    def request_norms(self, *_: object) -> None:
        """Recompute the norm comparison soon (edits arriving together are coalesced)."""
        if not self.runner.closed:
            self._norms_debounce.start()

    def norms_busy(self) -> bool:
        return self._norms_debounce.isActive() or self.runner.running("norms")

    def close_lab(self) -> None:
        self._debounce.stop()
        self._norms_debounce.stop()
        if self._dying_page.is_built:
            self.dying_view.stop()
        self.runner.close()

    def closeEvent(self, event) -> None:
        self.close_lab()
        super().closeEvent(event)

    # ================================================================================================ internals
    def _make_norms_view(self) -> NormCompareView:
        view = NormCompareView()
        view.norm_form.edited.connect(self.request_norms)
        return view

    def _on_norms_built(self) -> None:
        if self.model.norms is None:
            self.request_norms()
        else:
            self._on_norms_changed()

    def _on_tab_changed(self, index: int) -> None:
        page = self.tabs.widget(index)
        if page is self._dying_page:
            self.dying_view.ensure_computed()
        elif page is self._symmetry_page and self.symmetry_view.result is None:
            self.symmetry_view.compute()

    def _start(self) -> None:
        try:
            s = self.settings()
            for w in (self.mode_combo, self.warmup_box):
                w.setEnabled(s.batchnorm)
            job = self.model.experiment(s)      # checked now: a refused size starts no job
        except StudioError as exc:
            self.runner.cancel("experiment", notify=False)
            self._on_failed(None, str(exc))
            return
        self.model.set_settings(s)
        self.status_label.setText("Computing…")
        self.runner.start("experiment", lambda: job, on_yield=self._on_progress, on_done=self.model.show,
                          on_error=self._on_failed)

    def _start_norms(self) -> None:
        view = self.norms_view
        try:
            job = self.model.norm_comparison(view.settings())   # checked now: G not dividing C starts no job
        except StudioError as exc:
            self.runner.cancel("norms", notify=False)
            view.show_error(str(exc))
            return
        self.runner.start("norms", lambda: job, on_done=self.model.show_norms,
                          on_error=lambda _exc, message: view.show_error(message))

    def _on_norms_changed(self) -> None:
        if self.model.norms is not None and self._norms_page.is_built:
            self.norms_view.show_comparison(self.model.norms)
            self.norms_computed.emit()

    def _on_progress(self, p) -> None:
        self.status_label.setText(f"Computing… {p.message} ({p.done} of {p.total})")

    def _on_failed(self, _exc: BaseException | None, message: str) -> None:
        self.error_label.setText(message)
        self.error_label.show()
        self.status_label.setText("")

    def _on_model_changed(self) -> None:
        r: InitResult | None = self.model.result
        if r is None:
            return
        self.error_label.hide()
        s: InitStats = r.stats
        L = s.layers
        tanh = s.activation == "tanh"
        a_texts = [f"μ {x.mean:+.2g}  σ {x.std:.2g}" + ("" if tanh else f"  a≤0 {x.zero_fraction:.0%}")
                   for x in L]
        g_texts = [f"σ {x.grad_std:.2g}" for x in L]
        self.act_plot.set_histograms(r.acts, a_texts, r.a_lim, r.other or None, low=None if tanh else 0.0)
        self.act_plot.getPlotItem().setTitle("Activations a per layer (histograms)" if tanh else
                                             "ReLU activations a > 0 per layer (histograms; a = 0 share in text)",
                                             size="10pt")
        self.grad_plot.set_histograms(r.grads, g_texts, r.g_lim)
        layers = np.arange(1, s.depth + 1, dtype=float)
        for k, c in self.std_curves.items():
            c.setData(layers, np.maximum(s.column(k), 1e-30))
        self._draw_bars(s, tanh)
        self._fill_table(s)
        self.explain_label.setText(f"<b>{s.activation} + {s.init}{' + batch norm' if s.batchnorm else ''}</b>"
                                   f"<br>{r.text}")
        other = "train" if s.mode == "eval" else "eval"
        self.bn_note.setText(
            (f"Dashed outlines: the same batch in {other} mode. Mean train−eval gap: "
             f"{np.nanmean(s.column('train_eval_gap')):.2f} std. More warm-up passes bring the running statistics "
             f"closer to the batch's.") if s.batchnorm else "Tick batch norm to compare train and eval mode.")
        self.status_label.setText(f"{s.depth} layers × {s.width} units on {len(s.x)} random inputs, "
                                  f"{s.mode} mode: {r.seconds * 1000:.0f} ms")
        self.computed.emit()

    def _draw_bars(self, s: InitStats, tanh: bool) -> None:
        bp = self.bar_plot.getPlotItem()
        for b in self.bars:
            bp.removeItem(b)
        x = np.arange(1, s.depth + 1, dtype=float)
        if tanh:
            sat = s.column("saturated")
            self.bars = [pg.BarGraphItem(x=x, height=sat, width=0.7, brush=pg.mkBrush(theme.GRADIENT), pen=None)]
            bp.setTitle(f"Saturated units{_SUB}share of |a| > 0.99</span>", size="10pt")
        else:
            zero = s.column("zero_fraction")
            dead = s.column("dead_fraction")
            self.bars = [pg.BarGraphItem(x=x, height=zero, width=0.7, brush=pg.mkBrush(200, 208, 220), pen=None),
                         pg.BarGraphItem(x=x, height=dead, width=0.7, brush=pg.mkBrush(theme.GRADIENT), pen=None)]
            bp.setTitle(f"Zero and dead units{_SUB}grey: a ≤ 0 · red: dead</span>", size="10pt")
        for b in self.bars:
            bp.addItem(b)
        bp.setXRange(0.4, s.depth + 0.6, padding=0)
        bp.setYRange(0, 1, padding=0.02)

    def _fill_table(self, s: InitStats) -> None:
        t = self.table
        t.setRowCount(s.depth)
        tanh = s.activation == "tanh"
        for r, x in enumerate(s.layers):
            vals = [str(x.index), f"{x.mean:+.1e}", f"{x.std:.3g}", f"{x.grad_std:.3g}",
                    f"{x.saturated:.0%}" if tanh else "–", "–" if tanh else f"{x.zero_fraction:.0%}",
                    "–" if np.isnan(x.train_eval_gap) else f"{x.train_eval_gap:.2f}"]
            for c, v in enumerate(vals):
                it = QTableWidgetItem(v)
                it.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if c == 2 and (x.std < 1e-3 or (tanh and x.saturated > 0.5)):
                    it.setForeground(theme.ERROR)
                t.setItem(r, c, it)
