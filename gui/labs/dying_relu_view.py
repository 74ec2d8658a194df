"""The dying-ReLU page of the Init / norm lab (lecture 6): a small ReLU MLP trained by SGD on a toy 2-D set, every
hidden unit's activity over training as a strip (red: dead), the dead share for biases 0 and 0.01 side by side, and a
sweep over learning rates. A thin view over simulator.labs.activation_explorer.DyingReluModel: the controls come from
DyingReluSettings, every edit runs the model's job on the lab's JobRunner, and the text is the model's, written from
the numbers on screen."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSplitter, QVBoxLayout, QWidget

from gui import theme
from gui.forms import ParamForm
from gui.jobs import JobRunner
from gui.labs.common import ERROR_STYLE, MUTED_STYLE, control_column, group
from simulator.core.errors import StudioError
from simulator.labs.activation_explorer import (BIAS_VALUE, SWEEP_LRS, SWEEP_SEEDS, DyingRelu, DyingReluModel,
                                                DyingReluSettings)

__all__ = ["DEAD_RGB", "DyingReluView", "rate_colours"]

DEAD_RGB = np.array([200, 55, 45], dtype=np.float64)         # theme.GRADIENT: no gradient ever reaches it
_FAINT = np.array([214, 236, 219], dtype=np.float64)         # active on almost no input
_FULL = np.array([30, 140, 58], dtype=np.float64)            # theme.VALUE: active on every input
BIAS_COLOURS = {0.0: "#4e79a7", BIAS_VALUE: "#f28e2b"}


def rate_colours(rates: np.ndarray) -> np.ndarray:
    """(units, K) activation rates -> (units, K, 3) uint8: dead units (rate exactly 0) red, live ones from a faint to
    a full green by the share of training inputs they are active on."""
    r = np.clip(np.asarray(rates, dtype=np.float64), 0.0, 1.0)[..., None]
    rgb = _FAINT + (_FULL - _FAINT) * np.sqrt(r)              # sqrt: a unit active on 5% already reads as alive
    rgb = np.where(r == 0.0, DEAD_RGB, rgb)
    return np.ascontiguousarray(rgb.round().astype(np.uint8))


def _plot(title: str, left: str, bottom: str) -> pg.PlotWidget:
    w = pg.PlotWidget(background="w")
    pi = w.getPlotItem()
    pi.setTitle(title, size="10pt", color=theme.INK_HEX)
    pi.setLabel("left", left)
    pi.setLabel("bottom", bottom)
    pi.hideButtons()
    pi.setMenuEnabled(False)
    pi.getViewBox().setMouseEnabled(False, False)
    for axis in ("left", "bottom"):
        pi.getAxis(axis).enableAutoSIPrefix(False)
    return w


class DyingReluView(QWidget):
    """Controls (DyingReluSettings), the units × steps strip of the run the toggle selects, the dead share over
    training for both bias inits, the learning-rate sweep, and the model's explanations.

    Signals: ``computed()`` after a result is drawn, ``swept()`` after a sweep is drawn. Children for tests: form
    (widgets: bias_check, lr_box, init_combo), sweep_button, strip (ImageItem), dead_curves {bias: curve},
    sweep_curves {bias: curve}, explain_label, sweep_label, fraction_label, status_label, error_label."""

    computed = Signal()
    swept = Signal()

    def __init__(self, runner: JobRunner | None = None, model: DyingReluModel | None = None,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.model = model or DyingReluModel()
        self.runner = runner or JobRunner(self)
        self._sweep_for: DyingReluSettings | None = None     # the settings the running sweep was made for
        self._build()
        self.model.changed.connect(self._on_changed)
        self.model.sweep_changed.connect(self._on_sweep_changed)
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(120)
        self._debounce.timeout.connect(self._start)

    # ============================================================================================== construction
    def _build(self) -> None:
        self.form = ParamForm(DyingReluSettings)
        self.widgets = self.form.widgets
        self.bias_check, self.lr_box, self.init_combo = (self.widgets["small_bias"], self.widgets["lr"],
                                                         self.widgets["init"])
        self.form.edited.connect(self.request)
        self.sweep_button = QPushButton(f"Sweep learning rates (both biases, {SWEEP_SEEDS} seeds)")
        self.sweep_button.setToolTip(f"Train the same network at the learning rates "
                                     f"{', '.join(f'{v:g}' for v in SWEEP_LRS)}, with biases 0 and {BIAS_VALUE:g}, "
                                     f"for {SWEEP_SEEDS} seeds each, and plot the dead share at the end")
        self.sweep_button.clicked.connect(self.sweep)
        self.fraction_label = QLabel()
        self.fraction_label.setStyleSheet("font-size: 12pt; font-weight: 600;")
        self.fraction_label.setWordWrap(True)
        self.explain_label = QLabel()
        self.explain_label.setWordWrap(True)
        self.explain_label.setStyleSheet("background: #ffffff; border: 1px solid #dde1e7; border-radius: 3px; "
                                         "padding: 6px;")
        self.sweep_label = QLabel()
        self.sweep_label.setWordWrap(True)
        self.sweep_label.setStyleSheet(MUTED_STYLE)
        self.status_label = QLabel()
        self.status_label.setWordWrap(True)
        self.status_label.setStyleSheet(MUTED_STYLE)
        self.error_label = QLabel()
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet(ERROR_STYLE)
        self.error_label.hide()
        left = control_column([group("ReLU network and SGD", self.form), self.sweep_button, self.fraction_label,
                               self.explain_label, self.error_label, self.status_label], min_width=300)

        self.strip_plot = _plot("Hidden units over training: red = dead (inactive on every training input)",
                                "hidden unit", "SGD step")
        pi = self.strip_plot.getPlotItem()
        pi.invertY(True)
        self.strip = pg.ImageItem(axisOrder="row-major")
        pi.addItem(self.strip)
        self.layer_lines: list[pg.InfiniteLine] = []
        def swatch(rgb) -> str:
            return f"<span style='color:rgb{tuple(int(v) for v in rgb)}'>■</span>"
        legend = QLabel(f"{swatch(DEAD_RGB)} dead: pre-activation ≤ 0 on every training input, so no gradient ever "
                        f"reaches it &nbsp;&nbsp; {swatch(_FAINT)} → {swatch(_FULL)} alive: active on a few → all "
                        f"of the training inputs &nbsp;&nbsp; rows: unit number within its layer (L1 = layer 1)")
        legend.setWordWrap(True)
        legend.setStyleSheet(MUTED_STYLE)

        # two short lines: a one-line title wider than a narrow plot would push its axes out of view
        self.dead_plot = _plot(f"Dead share over training<br><span style='font-size: 8.5pt; color: {theme.MUTED_HEX};'>"
                               "same weights and batches</span>", "dead share", "SGD step")
        dp = self.dead_plot.getPlotItem()
        dp.showGrid(x=True, y=True, alpha=0.15)
        dp.setYRange(0, 1, padding=0.03)
        dp.addLegend(offset=(6, 6), labelTextSize="8pt").setBrush(pg.mkBrush(255, 255, 255, 210))
        self.dead_curves = {b: dp.plot(pen=pg.mkPen(c, width=2.4), name=f"biases {b:g}")
                            for b, c in BIAS_COLOURS.items()}

        self.sweep_plot = _plot("Dead share at the end vs learning rate", "dead share", "learning rate")
        sp = self.sweep_plot.getPlotItem()
        sp.setLogMode(x=True)
        sp.showGrid(x=True, y=True, alpha=0.15)
        sp.setYRange(0, 1, padding=0.03)
        sp.addLegend(offset=(6, 6), labelTextSize="8pt").setBrush(pg.mkBrush(255, 255, 255, 210))
        self.sweep_curves = {b: sp.plot(pen=pg.mkPen(c, width=2.2), symbol="o", symbolSize=7, symbolBrush=c,
                                        symbolPen=None, name=f"biases {b:g} (mean)")
                             for b, c in BIAS_COLOURS.items()}
        self.sweep_dots = {b: pg.ScatterPlotItem(size=5, brush=pg.mkBrush(c), pen=None)
                           for b, c in BIAS_COLOURS.items()}
        for dots in self.sweep_dots.values():
            sp.addItem(dots)
        self.lr_line = pg.InfiniteLine(angle=90, pen=pg.mkPen(theme.TEXT_MUTED, width=1, style=Qt.PenStyle.DashLine))
        sp.addItem(self.lr_line)
        self.sweep_hint = pg.TextItem("Press “Sweep learning rates”", color=theme.TEXT_MUTED, anchor=(0.5, 0.5))
        sp.addItem(self.sweep_hint)
        logs = np.log10(SWEEP_LRS)
        self.sweep_hint.setPos(float(logs.mean()), 0.5)
        sp.getAxis("bottom").setTicks([[(float(np.log10(v)), f"{v:g}") for v in SWEEP_LRS], []])
        self._sweep_xrange(None)
        sweep_box = QWidget()
        sb = QVBoxLayout(sweep_box)
        sb.setContentsMargins(0, 0, 0, 0)
        sb.addWidget(self.sweep_plot, 1)
        sb.addWidget(self.sweep_label)

        top = QWidget()
        tl = QVBoxLayout(top)
        tl.setContentsMargins(0, 0, 0, 0)
        tl.addWidget(self.strip_plot, 1)
        tl.addWidget(legend)
        bottom = QSplitter(Qt.Orientation.Horizontal)
        bottom.addWidget(self.dead_plot)
        bottom.addWidget(sweep_box)
        bottom.setSizes([500, 500])
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(top)
        right.addWidget(bottom)
        right.setStretchFactor(0, 3)
        right.setStretchFactor(1, 2)
        right.setSizes([420, 300])
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(left)
        splitter.addWidget(right)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([330, 1200])
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(splitter)

    # ================================================================================================ public API
    def settings(self) -> DyingReluSettings:
        return self.form.value()

    def ensure_computed(self) -> None:
        """The first run, when the page is first shown."""
        if self.model.result is None and not self.is_busy():
            self._start()

    def request(self, *_: object) -> None:
        """Run again soon (edits arriving together are coalesced)."""
        if not self.runner.closed:
            self._debounce.start()

    def is_busy(self) -> bool:
        return self._debounce.isActive() or self.runner.running("dying_relu")

    def sweep(self) -> None:
        try:
            s = self.settings()
            job = self.model.sweep_job(s)
        except StudioError as exc:
            self._on_failed(None, str(exc))
            return
        self._sweep_for = s
        self.sweep_button.setEnabled(False)
        self.sweep_label.setText("Sweeping…")
        self.runner.start("dead_sweep", lambda: job, on_yield=self._on_sweep_progress, on_done=self._sweep_done,
                          on_error=self._sweep_failed)

    def sweeping(self) -> bool:
        return self.runner.running("dead_sweep")

    def stop(self) -> None:
        self._debounce.stop()

    # ================================================================================================ internals
    def _start(self) -> None:
        if self.runner.closed:
            return
        try:
            s = self.settings()
            job = self.model.experiment(s)
        except StudioError as exc:
            self.runner.cancel("dying_relu", notify=False)
            self._on_failed(None, str(exc))
            return
        if self.sweeping() and not self.model.sweep_applies(self._sweep_for, s):
            # the running sweep is for the network before this edit: it would finish beside the wrong result
            self.runner.cancel("dead_sweep", notify=False)
            self.sweep_button.setEnabled(True)
            self.sweep_label.setText("The settings changed while sweeping: sweep again to compare learning rates.")
        self.status_label.setText("Training…")
        self.runner.start("dying_relu", lambda: job, on_yield=self._on_progress, on_done=self.model.show,
                          on_error=self._on_failed)

    def _on_progress(self, p) -> None:
        self.status_label.setText(f"Training… {p.message}")

    def _on_sweep_progress(self, p) -> None:
        self.sweep_label.setText(f"Sweeping… {p.message}")

    def _sweep_done(self, sweep) -> None:
        self.sweep_button.setEnabled(True)
        if not self.model.show_sweep(sweep):             # made for settings the learner has since changed
            self._on_sweep_changed()

    def _sweep_failed(self, _exc, message: str) -> None:
        self.sweep_button.setEnabled(True)
        self.sweep_label.setText(message)

    def _on_failed(self, _exc: BaseException | None, message: str) -> None:
        self.error_label.setText(message)
        self.error_label.show()
        self.status_label.setText("")

    def _on_changed(self) -> None:
        r: DyingRelu | None = self.model.result
        if r is None:
            return
        self.error_label.hide()
        run, s = r.shown, r.settings
        k = len(run.steps)
        step = float(run.steps[-1]) / max(k - 1, 1)
        self.strip.setImage(rate_colours(run.rates), levels=(0, 255))
        self.strip.setRect(QRectF(-step / 2, 0.0, step * k, float(run.units)))
        pi = self.strip_plot.getPlotItem()
        for line in self.layer_lines:
            pi.removeItem(line)
        self.layer_lines = []
        for l in range(1, s.layers):
            line = pg.InfiniteLine(pos=l * s.hidden, angle=0, pen=pg.mkPen(theme.INK_HEX, width=1.5))
            pi.addItem(line)
            self.layer_lines.append(line)
        every = max(1, s.hidden // 4)
        ticks = [(l * s.hidden + u + 0.5, f"L{l + 1}  {u + 1}" if u == 0 else str(u + 1))
                 for l in range(s.layers) for u in range(0, s.hidden, every)]
        pi.getAxis("left").setTicks([ticks, []])
        pi.setXRange(-step / 2, step * (k - 0.5), padding=0)
        pi.setYRange(0, run.units, padding=0)
        pi.setTitle(f"Hidden units over training, biases {run.bias_init:g}: red = dead (inactive on every "
                    f"training input)", size="10pt", color=theme.INK_HEX)
        for b, curve in self.dead_curves.items():
            other = r.runs[b]
            curve.setData(other.steps, other.dead_fraction)
            curve.setPen(pg.mkPen(BIAS_COLOURS[b], width=2.8 if b == run.bias_init else 1.4,
                                  style=Qt.PenStyle.SolidLine if b == run.bias_init else Qt.PenStyle.DashLine))
        dp = self.dead_plot.getPlotItem()
        dp.setXRange(0, float(run.steps[-1]), padding=0.02)
        top = max(float(r.runs[b].dead_fraction.max()) for b in r.runs)
        dp.setYRange(0, min(1.0, max(0.25, 1.15 * top)), padding=0.03)
        self.fraction_label.setText(f"{run.final_dead} of {run.units} units dead ({run.final_dead / run.units:.0%})")
        self.fraction_label.setToolTip(f"after {int(run.steps[-1])} SGD steps, biases {run.bias_init:g}")
        self.explain_label.setText(r.text)
        acc = "the loss overflowed" if run.diverged_at is not None else f"training accuracy {run.accuracy:.0%}"
        self.status_label.setText(f"{s.data}, {s.steps} steps of batch {s.batch}: final loss {run.loss[-1]:.3g}, "
                                  f"{acc}")
        self.lr_line.setPos(np.log10(s.lr))
        self._sweep_xrange(s.lr)
        self.computed.emit()

    def _sweep_xrange(self, lr: float | None) -> None:
        """The sweep's learning rates (log axis), widened to take in the current rate's line."""
        w = self.model.sweep
        lrs = np.asarray(SWEEP_LRS if w is None else w.lrs, dtype=np.float64)
        lo, hi = float(lrs.min()), float(lrs.max())
        if lr is not None:
            lo, hi = min(lo, lr), max(hi, lr)
        self.sweep_plot.getPlotItem().setXRange(np.log10(lo), np.log10(hi), padding=0.06)

    def _on_sweep_changed(self) -> None:
        w = self.model.sweep
        self.sweep_hint.setVisible(w is None)
        if w is None:
            for c in self.sweep_curves.values():
                c.setData([], [])
            for d in self.sweep_dots.values():
                d.setData([], [])
            self.sweep_label.setText("The settings changed: sweep again to compare learning rates.")
            return
        for b, (curve, dots) in enumerate(zip(self.sweep_curves.values(), self.sweep_dots.values())):
            curve.setData(w.lrs, w.mean[b])
            xs = np.repeat(w.lrs, w.dead.shape[2])
            # a small sideways offset per bias, so both sets of dots stay visible where they agree
            dots.setData(np.log10(xs) + (b - 0.5) * 0.04, w.dead[b].ravel())
        self.sweep_plot.getPlotItem().getAxis("bottom").setTicks([[(float(np.log10(v)), f"{v:g}") for v in w.lrs],
                                                                  []])
        self._sweep_xrange(self.model.settings.lr)
        self.sweep_label.setText(w.text)
        self.swept.emit()
