"""The hyperparameter-search lab (lecture 8): grid vs random search over learning rate and weight decay on a log
scale, the sanity checks that come first (initial loss, overfitting a tiny subset, a learning-rate sweep), and seed
ensembles. A thin view over ``simulator.labs.search_lab.SearchLabModel``: the controls are built from its declared
settings, every run is a job of the lab's one ``gui.jobs.JobRunner`` (the digits are loaded inside the jobs, never
when the tab opens), and the view redraws when the model's ``changed`` fires.

Why random search wins (Bergstra & Bengio): with n trials a grid tries only sqrt(n) distinct values of each axis, so
when one axis (here the learning rate) matters and the other hardly does, most grid trials repeat the same useful
information. Random search tries n distinct learning rates. The marginal plots above the scatters show exactly that.
"""
from __future__ import annotations

import functools
import math
from typing import Any, Callable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QSplitter, QVBoxLayout, QWidget

from gui import theme
from gui.forms import ParamForm
from gui.jobs import JobRunner
from gui.labs.common import ERROR_STYLE, MUTED_STYLE, control_column, group, muted
from simulator.core.errors import StudioError
from simulator.labs import search as S
from simulator.labs import search_lab as M
from simulator.nn.network import Network

__all__ = ["SearchLab"]

ACC_CMAP = pg.colormap.get("viridis")
GRID_SYMBOL, RANDOM_SYMBOL = "s", "o"


def _brushes(acc: np.ndarray) -> list:
    """A shared brush per accuracy, its colour on 256 levels (see gui.plotting.brush for why shared)."""
    return [_level_brush(int(level)) for level in np.round(np.clip(acc, 0, 1) * 255)]


@functools.lru_cache(maxsize=256)
def _level_brush(level: int):
    return pg.mkBrush(ACC_CMAP.map(level / 255, mode="qcolor"))


class SearchLab(QWidget):
    """Grid vs random search, sanity checks and ensembles on digits (or the network factory and data given).

    Signals: best_config_applied(dict) ("Apply best": optimizer, lr, weight_decay, plus val_accuracy and search),
    search_finished() (both searches done or cancelled), check_finished(str) ("initial_loss", "overfit",
    "lr_sweep"), ensemble_finished().
    """

    best_config_applied = Signal(dict)
    search_finished = Signal()
    check_finished = Signal(str)
    ensemble_finished = Signal()

    def __init__(self, parent: QWidget | None = None, model: M.SearchLabModel | None = None):
        super().__init__(parent)
        self.model = model or M.SearchLabModel()
        self.runner = JobRunner(self)
        self._shown: dict[str, list] = {"grid": [], "random": []}   # what the plots show (partial while running)
        self._running_settings: M.SearchSettings | None = None
        self._build()
        self.model.changed.connect(self._on_model_changed)
        # empty plots already show the decades the search will cover
        self._redraw_search(self.search_form.try_value())
        self.search_form.edited.connect(self._on_search_form_edited)

    # ============================================================================================ construction
    def _build(self) -> None:
        # ---- search space and training recipe
        self.search_form = ParamForm(M.SearchSettings)
        w = self.search_form.widgets
        self.lr_min_box, self.lr_max_box, self.wd_min_box, self.wd_max_box = (w["lr_min"], w["lr_max"], w["wd_min"],
                                                                              w["wd_max"])
        self.trials_box, self.epochs_box, self.optimizer_combo, self.seed_box = (w["trials"], w["epochs"],
                                                                                 w["optimizer"], w["seed"])
        self.run_button = QPushButton("▶ Run grid and random search")
        self.run_button.clicked.connect(self.run_search)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel_search)
        self.progress = QProgressBar()
        self.progress.setFormat("%v / %m trials")
        self.progress.hide()                     # shown when a search starts
        self.status_label = muted("")
        self.best_label = QLabel("")
        self.best_label.setWordWrap(True)
        self.apply_button = QPushButton("Apply best")
        self.apply_button.setEnabled(False)
        self.apply_button.setToolTip("Send the best configuration (optimizer, learning rate, weight decay) to the "
                                     "training playground")
        self.apply_button.clicked.connect(self.apply_best)
        search = QVBoxLayout()
        self.model_label = muted("")
        self._show_model_name()
        search.addWidget(self.model_label)
        search.addWidget(self.search_form)
        r = QHBoxLayout()
        r.addWidget(self.run_button, 1)
        r.addWidget(self.cancel_button)
        search.addLayout(r)
        search.addWidget(self.progress)
        search.addWidget(self.status_label)
        search.addWidget(self.best_label)
        search.addWidget(self.apply_button)

        # ---- sanity checks
        self.sanity_form = ParamForm(M.SanitySettings)
        self.initial_loss_button = QPushButton("1. Initial loss vs ln C")
        self.overfit_button = QPushButton()
        self.sweep_button = QPushButton("3. Learning-rate sweep")
        self.initial_loss_button.clicked.connect(lambda: self.run_check("initial_loss"))
        self.overfit_button.clicked.connect(lambda: self.run_check("overfit"))
        self.sweep_button.clicked.connect(lambda: self.run_check("lr_sweep"))
        self.sanity_form.edited.connect(self._label_checks)
        self._label_checks()
        self.check_label = QLabel("Run the checks before any search (lecture 8, steps 1-3). They train with the "
                                  "optimizer, batch size and seed of the search panel.")
        self.check_label.setWordWrap(True)
        checks = QVBoxLayout()
        checks.addWidget(self.sanity_form)
        for b in (self.initial_loss_button, self.overfit_button, self.sweep_button):
            checks.addWidget(b)
        checks.addWidget(self.check_label)

        # ---- ensemble
        self.ens_form = ParamForm(M.EnsembleSettings)
        self.ens_seeds_box, self.ens_epochs_box = self.ens_form.widgets["seeds"], self.ens_form.widgets["epochs"]
        self.ens_button = QPushButton("▶ Train the ensemble")
        self.ens_button.clicked.connect(self.run_ensemble)
        self.ens_label = QLabel("")
        self.ens_label.setWordWrap(True)
        ens = QVBoxLayout()
        ens.addWidget(self.ens_form)
        ens.addWidget(muted("Each seed gives its own initialisation and batch order; the optimizer and batch size "
                            "are the search panel's."))
        ens.addWidget(self.ens_button)
        ens.addWidget(self.ens_label)

        self.error_label = QLabel()
        self.error_label.setStyleSheet(ERROR_STYLE)
        self.error_label.setWordWrap(True)
        self.error_label.hide()

        scroll = control_column([group("Search: learning rate × weight decay", search), group("Sanity checks", checks),
                                 group("Ensemble", ens), self.error_label], min_width=360)

        # ---- the search plots: marginals over scatters, grid | random, one colour bar
        self.search_view = pg.GraphicsLayoutWidget()
        self.search_view.setBackground("w")
        self.scatter_plots: dict[str, pg.PlotItem] = {}
        self.marginal_plots: dict[str, pg.PlotItem] = {}
        self.scatter_items: dict[str, pg.PlotDataItem] = {}
        self.marginal_items: dict[str, pg.PlotDataItem] = {}
        self.best_items: dict[str, pg.PlotDataItem] = {}
        for c, (kind, title, sym) in enumerate((("grid", "Grid search", GRID_SYMBOL),
                                                 ("random", "Random search", RANDOM_SYMBOL))):
            m = self.search_view.addPlot(row=0, col=c)
            m.setTitle(f"{title}: accuracy", size="10pt", color=theme.INK_HEX)     # short: it must fit a laptop
            m.setLogMode(x=True, y=False)
            m.setYRange(0, 1.02, padding=0)
            m.setLabel("left", "val. accuracy")
            m.showGrid(x=True, y=True, alpha=0.15)
            m.setMenuEnabled(False)
            m.hideButtons()
            m.setMaximumHeight(210)
            mi = m.plot([], [], pen=None, symbol=sym, symbolSize=8, symbolPen=pg.mkPen("#1f2933", width=0.6))
            self.marginal_plots[kind], self.marginal_items[kind] = m, mi
            p = self.search_view.addPlot(row=1, col=c)
            p.setTitle(f"{title}: trials", size="10pt", color=theme.INK_HEX)
            p.setLogMode(x=True, y=True)
            p.setLabel("bottom", "learning rate")
            p.setLabel("left", "weight decay")
            p.showGrid(x=True, y=True, alpha=0.15)
            p.setMenuEnabled(False)
            p.hideButtons()
            m.setXLink(p)
            si = p.plot([], [], pen=None, symbol=sym, symbolSize=15, symbolPen=pg.mkPen("#1f2933", width=0.8))
            best = p.plot([], [], pen=None, symbol="star", symbolSize=26, symbolBrush=pg.mkBrush(0, 0, 0, 0),
                          symbolPen=pg.mkPen("#c8372d", width=2.2))
            self.scatter_plots[kind], self.scatter_items[kind], self.best_items[kind] = p, si, best
        self.colorbar = pg.ColorBarItem(values=(0, 1), colorMap=ACC_CMAP, interactive=False, width=14,
                                        label="validation accuracy")
        self.search_view.addItem(self.colorbar, row=1, col=2)
        lay = self.search_view.ci.layout             # the two searches share the width; the colour bar keeps its own
        lay.setColumnFixedWidth(2, 84)
        lay.setColumnStretchFactor(0, 1)
        lay.setColumnStretchFactor(1, 1)

        self.search_hint = QLabel("")
        self.search_hint.setWordWrap(True)
        self.search_hint.setStyleSheet(MUTED_STYLE + " padding: 2px 8px;")
        top = QWidget()
        tl = QVBoxLayout(top)
        tl.setContentsMargins(0, 0, 0, 0)
        tl.addWidget(self.search_view, 1)
        tl.addWidget(self.search_hint)

        # ---- sanity and ensemble plots
        self.check_plot = pg.PlotWidget(background="w")
        cp = self.check_plot.getPlotItem()
        cp.setMenuEnabled(False)
        cp.showGrid(x=True, y=True, alpha=0.15)
        cp.setTitle("Sanity checks", size="10pt", color=theme.INK_HEX)
        self.check_curve = cp.plot(pen=pg.mkPen(theme.ACCENT_HEX, width=2))
        self.check_ref = pg.InfiniteLine(angle=0, pen=pg.mkPen(theme.MUTED_HEX, style=Qt.PenStyle.DashLine),
                                         label="", labelOpts={"color": theme.MUTED_HEX, "position": 0.85})
        self.check_ref.hide()
        cp.addItem(self.check_ref)
        self.check_marker = pg.InfiniteLine(angle=90, pen=pg.mkPen(theme.GRAD_HEX, style=Qt.PenStyle.DashLine),
                                            label="", labelOpts={"color": theme.GRAD_HEX, "position": 0.9})
        self.check_marker.hide()
        cp.addItem(self.check_marker)
        self.ens_plot = pg.PlotWidget(background="w")
        ep = self.ens_plot.getPlotItem()
        ep.setMenuEnabled(False)
        ep.showGrid(y=True, alpha=0.15)
        ep.setTitle("Ensemble vs single models", size="10pt", color=theme.INK_HEX)
        ep.setLabel("left", "validation accuracy")
        self.ens_bars = pg.BarGraphItem(x=[], height=[], width=0.7, brush=pg.mkBrush("#9fb3cc"))
        self.ens_bar = pg.BarGraphItem(x=[], height=[], width=0.7, brush=pg.mkBrush(theme.VALUE_HEX))
        ep.addItem(self.ens_bars)
        ep.addItem(self.ens_bar)
        self.ens_mean_line = pg.InfiniteLine(angle=0, pen=pg.mkPen(theme.INK_HEX, style=Qt.PenStyle.DashLine),
                                             label="mean single", labelOpts={"color": theme.INK_HEX,
                                                                             "position": 0.1})
        self.ens_mean_line.hide()
        ep.addItem(self.ens_mean_line)
        bottom = QSplitter(Qt.Orientation.Horizontal)
        bottom.addWidget(self.check_plot)
        bottom.addWidget(self.ens_plot)

        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(top)
        right.addWidget(bottom)
        right.setSizes([600, 300])

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(scroll)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([380, 1120])
        root = QHBoxLayout(self)
        root.setContentsMargins(0, 0, 0, 0)
        root.addWidget(self.splitter)
        # a "(x0.001)" prefix would relabel the decades of the log axes
        for plot in [*self.scatter_plots.values(), *self.marginal_plots.values(), cp, ep]:
            for name in ("left", "bottom"):
                plot.getAxis(name).enableAutoSIPrefix(False)

    # ============================================================================================= public API
    @property
    def results(self) -> dict[str, list[S.TrialResult]]:
        """The trials on show: the finished ones of a running search, else the model's last search."""
        return self._shown

    @property
    def last_check(self) -> tuple[str, Any] | None:
        return self.model.last_check

    @property
    def last_ensemble(self) -> S.EnsembleResult | None:
        return self.model.last_ensemble

    def set_network_factory(self, factory: Callable[[int], Network], data: Any = None, name: str | None = None) -> None:
        """Search, check and ensemble ``factory(seed)`` networks (fresh weights per seed) on ``data``
        ((X_train, y_train, X_val, y_val) or a DigitsData; None: digits)."""
        try:
            self.model.set_network_factory(factory, data, name)
        except StudioError as exc:
            self._show_error(str(exc))

    def run_search(self) -> None:
        """Grid (round(sqrt(trials)) per axis) then random (trials) search, in a job."""
        settings = self.search_form.try_value()
        if settings is None:
            return
        try:
            plan = self.model.plan(settings)
        except StudioError as exc:
            self._show_error(str(exc))
            return
        self.error_label.hide()
        self._running_settings = settings
        self._shown = {"grid": [], "random": []}
        total = len(plan["grid"]) + len(plan["random"])
        self._redraw_search(settings)
        self.progress.setRange(0, total)
        self.progress.setValue(0)
        self.progress.show()
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.apply_button.setEnabled(False)
        n = settings.per_axis
        self.status_label.setText(f"Training {len(plan['grid'])} grid trials ({n} × {n}), then {len(plan['random'])} "
                                  f"random ones, {settings.epochs} epoch{'s' if settings.epochs > 1 else ''} each, "
                                  f"with {settings.optimizer}…")
        self.runner.start("search", lambda: self.model.search(settings), on_yield=self._on_search_progress,
                          on_done=lambda res: self._on_search_ended(res, True),
                          on_cancel=lambda: self._on_search_ended(self._shown, False),
                          on_error=self._on_search_error)

    def cancel_search(self) -> None:
        self.runner.cancel("search")

    def best(self) -> tuple[str, S.TrialResult] | None:
        """(search kind, trial) of the best finished trial over both searches."""
        return self.model.best()

    def apply_best(self) -> None:
        """Hand the best configuration on: best_config_applied({optimizer, lr, weight_decay, ...})."""
        cfg = self.model.best_config()
        if cfg is not None:
            self.best_config_applied.emit(cfg)

    def run_check(self, which: str) -> None:
        """One sanity check in a job: "initial_loss", "overfit" or "lr_sweep"."""
        settings, sanity = self.search_form.try_value(), self.sanity_form.try_value()
        if settings is None or sanity is None:
            return
        for b in (self.initial_loss_button, self.overfit_button, self.sweep_button):
            b.setEnabled(False)
        self.check_label.setText("Running…")
        self.runner.start("check", lambda: self.model.check(which, sanity, settings),
                          on_yield=lambda p: self.check_label.setText(f"Running: {p.message}…"),
                          on_done=lambda value: self._on_check_ended(which, value),
                          on_error=lambda exc, text: self._on_check_ended(which, None, text),
                          on_cancel=lambda: self._on_check_ended(which, None, "Cancelled."))

    def run_ensemble(self) -> None:
        settings, ens = self.search_form.try_value(), self.ens_form.try_value()
        if settings is None or ens is None:
            return
        self.ens_button.setEnabled(False)
        self.ens_label.setText(f"Training {ens.seeds} models with {settings.optimizer}…")
        self.runner.start("ensemble", lambda: self.model.ensemble(ens, settings),
                          on_yield=lambda p: self.ens_label.setText(p.message[:1].upper() + p.message[1:] + "…"),
                          on_done=self._on_ensemble_ended,
                          on_error=lambda exc, text: self._on_ensemble_ended(None, text),
                          on_cancel=lambda: self._on_ensemble_ended(None, "Cancelled."))

    def is_busy(self, kind: str | None = None) -> bool:
        return self.runner.running(kind)

    def close_lab(self) -> None:
        self.model.changed.disconnect(self._on_model_changed)
        self.runner.close()

    def closeEvent(self, event) -> None:  # noqa: N802
        if not self.runner.closed:
            self.close_lab()
        super().closeEvent(event)

    # ========================================================================================== job endings
    def _on_search_progress(self, p: M.SearchProgress) -> None:
        self._shown = p.results
        self._redraw_search(self._running_settings)

    def _on_search_ended(self, results: dict, complete: bool) -> None:
        self.model.set_search_results(self._running_settings, results, complete)
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.search_finished.emit()

    def _on_search_error(self, exc: BaseException, text: str) -> None:
        self._show_error(text)
        self._on_search_ended(self._shown, False)

    def _on_check_ended(self, which: str, value: Any, text: str = "") -> None:
        for b in (self.initial_loss_button, self.overfit_button, self.sweep_button):
            b.setEnabled(True)
        if value is None:
            self.check_label.setText(text)
            return
        self.model.set_check(which, value)
        self.check_finished.emit(which)

    def _on_ensemble_ended(self, result: S.EnsembleResult | None, text: str = "") -> None:
        self.ens_button.setEnabled(True)
        if result is None:
            self.ens_label.setText(text)
        else:
            self.model.set_ensemble(result)
        self.ensemble_finished.emit()

    def _on_model_changed(self, what: str = "") -> None:
        m = self.model
        if what == "factory":
            self._show_model_name()
        elif what == "search":
            self._shown = {k: list(v) for k, v in m.results.items()}
            self._redraw_search(m.ran_with)
            self.apply_button.setEnabled(m.best() is not None)
            done = sum(len(v) for v in m.results.values())
            total = sum(len(v) for v in m.planned.values())
            self.progress.setRange(0, max(total, 1))
            self.progress.setValue(done)
            self.status_label.setText(f"{done} of {total} trials trained"
                                      + ("." if m.complete else " (cancelled)."))
        elif what == "check" and m.last_check is not None:
            self._show_check(*m.last_check)
        elif what == "ensemble" and m.last_ensemble is not None:
            self._show_ensemble(m.last_ensemble)

    def _show_model_name(self) -> None:
        self.model_label.setText(f"Model: {self.model.factory_name}"
                                 + (", on scikit-learn's digits." if self.model.default_data else "."))

    def _label_checks(self) -> None:
        s = self.sanity_form.try_value()
        if s is not None:
            self.overfit_button.setText(f"2. Overfit {s.overfit_n} examples")
            self.sweep_button.setText(f"3. Learning-rate sweep ({s.sweep_iters} updates)")

    # =============================================================================================== drawing
    def _on_search_form_edited(self) -> None:
        if not self.runner.running("search"):
            self._redraw_search(self.search_form.try_value())

    def _redraw_search(self, settings: M.SearchSettings | None) -> None:
        results = self._shown
        for kind in ("grid", "random"):
            res = results[kind]
            lr = np.array([r.config["lr"] for r in res])
            wd = np.array([r.config["weight_decay"] for r in res])
            acc = np.array([r.val_accuracy for r in res])
            self.scatter_items[kind].setData(lr, wd, symbolBrush=_brushes(acc))
            self.marginal_items[kind].setData(lr, acc, symbolBrush=_brushes(acc))
            if len(res):
                i = int(np.argmax(acc))
                self.best_items[kind].setData([lr[i]], [wd[i]])
            else:
                self.best_items[kind].setData([], [])
            if settings is not None:
                pad = 0.3     # decades: the markers at the bounds stay whole
                x0, x1 = math.log10(settings.lr_min) - pad, math.log10(settings.lr_max) + pad
                y0, y1 = math.log10(settings.wd_min) - pad, math.log10(settings.wd_max) + pad
                self.scatter_plots[kind].setRange(xRange=(x0, x1), yRange=(y0, y1), padding=0)
                # one label per decade: pyqtgraph's minor log labels pile up on a wide plot
                for plot, axis, (a, b) in ((self.scatter_plots[kind], "bottom", (x0, x1)),
                                           (self.marginal_plots[kind], "bottom", (x0, x1)),
                                           (self.scatter_plots[kind], "left", (y0, y1))):
                    plot.getAxis(axis).setTicks([[(k, f"{10.0 ** k:g}") for k in range(math.ceil(a),
                                                                                       math.floor(b) + 1)], []])
        self.progress.setValue(sum(len(v) for v in results.values()))
        cands = [(k, r) for k in ("grid", "random") for r in results[k]]
        if cands:
            kind, r = max(cands, key=lambda kr: kr[1].val_accuracy)
            self.best_label.setText(f"Best: <b>{100 * r.val_accuracy:.1f}%</b> at lr {r.config['lr']:.3g}, weight "
                                    f"decay {r.config['weight_decay']:.3g} ({kind} search)")
        else:
            self.best_label.setText("")
        g, rnd = results["grid"], results["random"]
        if g or rnd:
            def summary(res: list) -> str:
                if not res:
                    return "—"
                best = max(r.val_accuracy for r in res)
                return f"best {100 * best:.1f}%, {self.model.distinct_lrs(res)} distinct lr"
            self.search_hint.setText(f"Grid: {summary(g)}.   Random: {summary(rnd)}.   Both searches spend the same "
                                     f"number of trials, but the grid repeats each learning rate for every weight "
                                     f"decay, and weight decay barely matters here.")
        else:
            self.search_hint.setText("")

    def _show_check(self, which: str, value: Any) -> None:
        cp = self.check_plot.getPlotItem()
        self.check_marker.hide()
        self.check_ref.hide()
        if which == "initial_loss":
            loss, ln_c = value
            ok = abs(loss - ln_c) < 0.5
            verdict = "as expected" if ok else "far from ln C: check the initialisation (weights too large?)"
            self.check_label.setText(f"Initial loss <b>{loss:.4f}</b> vs ln C = <b>{ln_c:.4f}</b>: {verdict}.")
            cp.setLogMode(False, False)
            self.check_curve.setData([0, 1], [loss, loss])
            self.check_ref.setValue(ln_c)
            self.check_ref.label.setFormat(f"ln C = {ln_c:.3f}")
            self.check_ref.show()
            cp.setTitle("Initial loss vs ln C", size="10pt", color=theme.INK_HEX)
            cp.setLabel("bottom", "")
            cp.setLabel("left", "loss")
            cp.setYRange(0, max(loss, ln_c) * 1.3)
        elif which == "overfit":
            r: S.OverfitResult = value
            ok = r.final_loss < 0.1
            self.check_label.setText(
                f"Overfitting {r.n_samples} examples with {r.optimizer}: final loss <b>{r.final_loss:.4f}</b>, "
                f"accuracy <b>{100 * r.final_accuracy:.0f}%</b> — "
                + ("the model and the training loop can learn." if ok else
                   "the loss does not reach zero: a bug, a too-small learning rate or a bad initialisation."))
            cp.setLogMode(False, True)
            self.check_curve.setData(np.arange(1, len(r.losses) + 1), np.maximum(r.losses, 1e-12))
            cp.setTitle(f"Training loss on {r.n_samples} examples", size="10pt", color=theme.INK_HEX)
            cp.setLabel("bottom", "update")
            cp.setLabel("left", "loss (log)")
            cp.enableAutoRange()
        else:
            r: S.SweepResult = value
            lrs, best = r.lrs, r.suggested
            if not len(lrs):
                self.check_label.setText(f"The loss was not finite from the first update with {r.optimizer}: "
                                         f"start the sweep lower.")
                self.check_curve.setData([], [])
                return
            planned = self.sanity_form.try_value()
            stopped = planned is not None and len(lrs) < planned.sweep_iters
            self.check_label.setText(
                f"{r.optimizer}: loss over {len(lrs)} updates with the rate growing from {lrs[0]:.0e} to "
                f"{lrs[-1]:.2g}" + (" (stopped when the loss blew up)" if stopped else "")
                + f". It falls fastest near lr ≈ <b>{best:.2g}</b>: a good starting point.")
            cp.setLogMode(True, False)
            self.check_curve.setData(lrs, r.losses)
            if math.isfinite(best):
                self.check_marker.setValue(math.log10(best))
                self.check_marker.label.setFormat(f"{best:.2g}")
                self.check_marker.show()
            cp.setTitle(f"Learning-rate sweep ({r.optimizer})", size="10pt", color=theme.INK_HEX)
            cp.setLabel("bottom", "learning rate")
            cp.setLabel("left", "mini-batch loss")
            cp.enableAutoRange()

    def _show_ensemble(self, r: S.EnsembleResult) -> None:
        n = len(r.single_accuracies)
        self.ens_bars.setOpts(x=np.arange(n), height=r.single_accuracies)
        self.ens_bar.setOpts(x=[n + 0.6], height=[r.ensemble_accuracy])
        self.ens_mean_line.setValue(r.mean_single)
        self.ens_mean_line.show()
        ticks = [(i, f"seed {s}") for i, s in enumerate(r.seeds)] + [(n + 0.6, "ensemble")]
        self.ens_plot.getPlotItem().getAxis("bottom").setTicks([ticks])
        lo = min(float(r.single_accuracies.min()), r.ensemble_accuracy)
        self.ens_plot.getPlotItem().setYRange(max(0.0, lo - 0.05), min(1.0, max(r.single_accuracies.max(),
                                                                                 r.ensemble_accuracy) + 0.02))
        self.ens_plot.getPlotItem().setXRange(-0.6, n + 1.2)
        gain = r.ensemble_accuracy - r.mean_single
        self.ens_label.setText(f"Single models: mean <b>{100 * r.mean_single:.1f}%</b> (best "
                               f"{100 * r.single_accuracies.max():.1f}%). Averaged probabilities: "
                               f"<b>{100 * r.ensemble_accuracy:.1f}%</b> ({100 * gain:+.1f} points).")

    def _show_error(self, text: str) -> None:
        self.error_label.setText(text)
        self.error_label.show()
