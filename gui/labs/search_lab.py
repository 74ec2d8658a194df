"""The hyperparameter-search lab (lecture 8): grid vs random search over learning rate and weight decay on a log
scale, the sanity checks that come first (initial loss, overfitting a tiny subset, a learning-rate sweep), and seed
ensembles. The numbers come from simulator.labs.search; each run is a ``Job`` (worker thread) that stores its latest
progress, and ONE QTimer (the JobRunner's) reads it and redraws.

Why random search wins (Bergstra & Bengio): with n trials a grid tries only sqrt(n) distinct values of each axis, so
when one axis (here the learning rate) matters and the other hardly does, most grid trials repeat the same useful
information. Random search tries n distinct learning rates. The marginal plots above the scatters show exactly that.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QComboBox, QFormLayout, QHBoxLayout, QLabel, QProgressBar, QPushButton,
                               QSpinBox, QSplitter, QVBoxLayout, QWidget)

from gui import theme
from gui.labs.common import ERROR_STYLE, MUTED_STYLE, Job, JobRunner, control_column, group, muted
from gui.forms import LogSpinBox
from simulator.labs import search as S
from simulator.labs.interpret import DigitsData, digits_data, digits_mlp
from simulator.nn.network import Network

__all__ = ["SearchLab"]

ACC_CMAP = pg.colormap.get("viridis")
GRID_SYMBOL, RANDOM_SYMBOL = "s", "o"
OPTIMIZERS = ("AdamW", "Adam", "Momentum", "SGD")


def _form() -> QFormLayout:
    f = QFormLayout()
    f.setContentsMargins(0, 0, 0, 0)
    return f


def _brushes(acc: np.ndarray) -> list:
    return [pg.mkBrush(ACC_CMAP.map(float(np.clip(a, 0, 1)), mode="qcolor")) for a in acc]


class SearchLab(QWidget):
    """Grid vs random search, sanity checks and ensembles on digits (or the network factory and data given).

    Signals: best_config_applied(dict) ("Apply best": lr, weight_decay, optimizer, val_accuracy, search),
    search_finished() (both searches done or cancelled), check_finished(str) ("initial_loss", "overfit",
    "lr_sweep"), ensemble_finished().
    """

    best_config_applied = Signal(dict)
    search_finished = Signal()
    check_finished = Signal(str)
    ensemble_finished = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._factory: Callable[[int], Network] = lambda seed: digits_mlp(seed)
        self._factory_name = "digits MLP (64 hidden ReLU units)"
        self._data: DigitsData | tuple | None = None
        self.results: dict[str, list[S.TrialResult]] = {"grid": [], "random": []}
        self.last_check: Any = None
        self.last_ensemble: S.EnsembleResult | None = None
        self.runner = JobRunner(self, self._on_job_progress, self._on_job_done)
        self._build()

    # ============================================================================================ construction
    def _build(self) -> None:
        # ---- search space
        self.lr_min_box = LogSpinBox(1e-4, 1e-8, 10.0)
        self.lr_max_box = LogSpinBox(1e-1, 1e-8, 10.0)
        self.wd_min_box = LogSpinBox(1e-5, 1e-10, 1.0)
        self.wd_max_box = LogSpinBox(1e-1, 1e-10, 1.0)
        self.trials_box = QSpinBox()
        self.trials_box.setRange(1, 100)
        self.trials_box.setValue(16)
        self.trials_box.setToolTip("Trials per search; the grid uses round(sqrt(trials)) values per axis")
        self.epochs_box = QSpinBox()
        self.epochs_box.setRange(1, 50)
        self.epochs_box.setValue(2)
        self.optimizer_combo = QComboBox()
        self.optimizer_combo.addItems(list(OPTIMIZERS))
        self.seed_box = QSpinBox()
        self.seed_box.setRange(0, 10_000)
        self.run_button = QPushButton("▶ Run grid and random search")
        self.run_button.clicked.connect(self.run_search)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel_search)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("%v / %m trials")
        self.status_label = muted("")
        self.best_label = QLabel("")
        self.best_label.setWordWrap(True)
        self.apply_button = QPushButton("Apply best")
        self.apply_button.setEnabled(False)
        self.apply_button.setToolTip("Send the best configuration to the training playground")
        self.apply_button.clicked.connect(self.apply_best)
        f = _form()
        r = QHBoxLayout()
        r.addWidget(self.lr_min_box)
        r.addWidget(QLabel("to"))
        r.addWidget(self.lr_max_box)
        f.addRow("Learning rate", r)
        r = QHBoxLayout()
        r.addWidget(self.wd_min_box)
        r.addWidget(QLabel("to"))
        r.addWidget(self.wd_max_box)
        f.addRow("Weight decay", r)
        f.addRow("Trials per search", self.trials_box)
        f.addRow("Epochs per trial", self.epochs_box)
        f.addRow("Optimizer", self.optimizer_combo)
        f.addRow("Seed", self.seed_box)
        search = QVBoxLayout()
        self.model_label = muted(f"Model: {self._factory_name}, on scikit-learn's digits.")
        search.addWidget(self.model_label)
        search.addLayout(f)
        r = QHBoxLayout()
        r.addWidget(self.run_button, 1)
        r.addWidget(self.cancel_button)
        search.addLayout(r)
        search.addWidget(self.progress)
        search.addWidget(self.status_label)
        search.addWidget(self.best_label)
        search.addWidget(self.apply_button)

        # ---- sanity checks
        self.initial_loss_button = QPushButton("1. Initial loss vs ln C")
        self.overfit_button = QPushButton("2. Overfit 20 examples")
        self.sweep_button = QPushButton("3. Learning-rate sweep")
        self.initial_loss_button.clicked.connect(lambda: self.run_check("initial_loss"))
        self.overfit_button.clicked.connect(lambda: self.run_check("overfit"))
        self.sweep_button.clicked.connect(lambda: self.run_check("lr_sweep"))
        self.check_label = QLabel("Run the checks before any search (lecture 8, steps 1-3).")
        self.check_label.setWordWrap(True)
        checks = QVBoxLayout()
        for b in (self.initial_loss_button, self.overfit_button, self.sweep_button):
            checks.addWidget(b)
        checks.addWidget(self.check_label)

        # ---- ensemble
        self.ens_seeds_box = QSpinBox()
        self.ens_seeds_box.setRange(2, 12)
        self.ens_seeds_box.setValue(5)
        self.ens_epochs_box = QSpinBox()
        self.ens_epochs_box.setRange(1, 50)
        self.ens_epochs_box.setValue(10)
        self.ens_button = QPushButton("▶ Train the ensemble")
        self.ens_button.clicked.connect(self.run_ensemble)
        self.ens_label = QLabel("")
        self.ens_label.setWordWrap(True)
        ens = QVBoxLayout()
        f = _form()
        f.addRow("Seeds", self.ens_seeds_box)
        f.addRow("Epochs each", self.ens_epochs_box)
        ens.addLayout(f)
        ens.addWidget(muted("Each seed gives its own initialisation and batch order (Adam, lr 3e-3)."))
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
            m.setTitle(f"{title}: accuracy vs learning rate (its marginal)", size="10pt", color=theme.INK_HEX)
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
            p.setTitle(title, size="11pt", color=theme.INK_HEX)
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
        ep.setTitle("Ensemble: single models vs averaged probabilities", size="10pt", color=theme.INK_HEX)
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
    def set_network_factory(self, factory: Callable[[int], Network], data: Any = None, name: str | None = None) -> None:
        """Search, check and ensemble ``factory(seed)`` networks (fresh weights per seed) on ``data``
        ((X_train, y_train, X_val, y_val) or a DigitsData; None: digits)."""
        self._factory = factory
        self._data = data
        self._factory_name = name or repr(factory(0))
        self.model_label.setText(f"Model: {self._factory_name}.")

    @property
    def data(self) -> DigitsData | tuple:
        if self._data is None:
            self._data = digits_data(0)
        return self._data

    def _tuple(self) -> tuple:
        d = self.data
        return d.as_tuple() if isinstance(d, DigitsData) else tuple(d)

    def space(self) -> S.SearchSpace:
        return S.SearchSpace(self.lr_min_box.value(), self.lr_max_box.value(), self.wd_min_box.value(),
                             self.wd_max_box.value())

    def run_search(self) -> None:
        """Grid (round(sqrt(trials)) per axis) then random (trials) search, in a worker."""
        try:
            space = self.space()
        except Exception as exc:
            self._show_error(str(exc))
            return
        self.error_label.hide()
        n = self.trials_box.value()
        per_axis = max(1, int(round(math.sqrt(n))))
        grid = S.grid_search(space, per_axis)
        rand = S.random_search(space, n, seed=self.seed_box.value())
        self.results = {"grid": [], "random": []}
        self._planned = {"grid": grid, "random": rand}
        self._space = space
        self._redraw_search()
        make = S.digits_trainer_factory(self._tuple(), self._factory, self.optimizer_combo.currentText(),
                                        seed=self.seed_box.value())
        epochs = self.epochs_box.value()
        total = len(grid) + len(rand)

        def work(report, stop):
            out: dict[str, list] = {"grid": [], "random": []}
            for kind, trials in (("grid", grid), ("random", rand)):
                def cb(i, n_, r, kind=kind):
                    out[kind].append(r)
                    report({k: list(v) for k, v in out.items()})
                S.run_trials(trials, make, epochs, cb, stop)
                if stop():
                    break
            return out
        self.progress.setRange(0, total)
        self.progress.setValue(0)
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.apply_button.setEnabled(False)
        self.status_label.setText(f"Training {len(grid)} grid trials ({per_axis} × {per_axis}), then {len(rand)} "
                                  f"random ones, {epochs} epoch{'s' if epochs > 1 else ''} each…")
        self.runner.start(Job("search", work))

    def cancel_search(self) -> None:
        self.runner.cancel("search")

    def best(self) -> tuple[str, S.TrialResult] | None:
        """(search kind, trial) of the best finished trial over both searches."""
        cands = [(k, r) for k in ("grid", "random") for r in self.results[k]]
        if not cands:
            return None
        return max(cands, key=lambda kr: kr[1].val_accuracy)

    def apply_best(self) -> None:
        b = self.best()
        if b is None:
            return
        kind, r = b
        cfg = {"lr": r.config["lr"], "weight_decay": r.config["weight_decay"],
               "optimizer": self.optimizer_combo.currentText(), "val_accuracy": r.val_accuracy, "search": kind}
        self.best_config_applied.emit(cfg)

    def run_check(self, which: str) -> None:
        """One sanity check in a worker: "initial_loss", "overfit" or "lr_sweep"."""
        Xtr, ytr, _, _ = self._tuple()
        factory, seed = self._factory, self.seed_box.value()

        def work(report, stop):
            net = factory(seed)
            if which == "initial_loss":
                return which, S.initial_loss_check(net, Xtr, ytr)
            if which == "overfit":
                return which, S.overfit_small_subset(net, Xtr, ytr, n=20, steps=200, lr=1e-2, seed=seed,
                                                     should_stop=stop)
            lrs, losses = S.lr_sweep(net, Xtr, ytr, iters=100, seed=seed)
            return which, (lrs, losses, S.suggest_lr(lrs, losses) if len(lrs) else math.nan)
        for b in (self.initial_loss_button, self.overfit_button, self.sweep_button):
            b.setEnabled(False)
        self.check_label.setText("Running…")
        self.runner.start(Job("check", work))

    def run_ensemble(self) -> None:
        seeds = list(range(self.ens_seeds_box.value()))
        data, factory, epochs = self._tuple(), self._factory, self.ens_epochs_box.value()

        def work(report, stop):
            return S.ensemble(seeds, factory, data, optimizer="Adam", lr=3e-3, epochs=epochs,
                              callback=lambda i, n: report((i, n)), should_stop=stop)
        self.ens_button.setEnabled(False)
        self.ens_label.setText(f"Training {len(seeds)} models…")
        self.runner.start(Job("ensemble", work))

    def is_busy(self, kind: str | None = None) -> bool:
        return self.runner.busy(kind)

    def close_lab(self) -> None:
        self.runner.close()

    def closeEvent(self, event) -> None:  # noqa: N802
        self.close_lab()
        super().closeEvent(event)

    # =============================================================================================== drawing
    def _redraw_search(self) -> None:
        for kind in ("grid", "random"):
            res = self.results[kind]
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
            sp = getattr(self, "_space", None)
            if sp is not None:
                pad = 0.15
                self.scatter_plots[kind].setRange(
                    xRange=(math.log10(sp.lr_min) - pad, math.log10(sp.lr_max) + pad),
                    yRange=(math.log10(sp.wd_min) - pad, math.log10(sp.wd_max) + pad), padding=0)
        done = sum(len(v) for v in self.results.values())
        self.progress.setValue(done)
        b = self.best()
        if b is not None:
            kind, r = b
            self.best_label.setText(f"Best: <b>{100 * r.val_accuracy:.1f}%</b> at lr {r.config['lr']:.3g}, weight "
                                    f"decay {r.config['weight_decay']:.3g} ({kind} search)")
        else:
            self.best_label.setText("")
        g, rnd = self.results["grid"], self.results["random"]
        if g or rnd:
            def summary(res: list) -> str:
                if not res:
                    return "—"
                best = max(r.val_accuracy for r in res)
                return f"best {100 * best:.1f}%, {len({round(math.log10(r.config['lr']), 9) for r in res})} distinct lr"
            self.search_hint.setText(f"Grid: {summary(g)}.   Random: {summary(rnd)}.   Both searches spend the same "
                                     f"number of trials, but the grid repeats each learning rate for every weight "
                                     f"decay, and weight decay barely matters here.")

    def _show_check(self, which: str, value: Any) -> None:
        cp = self.check_plot.getPlotItem()
        self.last_check = (which, value)
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
                f"Overfitting {r.n_samples} examples: final loss <b>{r.final_loss:.4f}</b>, accuracy "
                f"<b>{100 * r.final_accuracy:.0f}%</b> — "
                + ("the model and the training loop can learn." if ok else
                   "the loss does not reach zero: a bug, a too-small learning rate or a bad initialisation."))
            cp.setLogMode(False, True)
            self.check_curve.setData(np.arange(1, len(r.losses) + 1), np.maximum(r.losses, 1e-12))
            cp.setTitle(f"Training loss on {r.n_samples} examples", size="10pt", color=theme.INK_HEX)
            cp.setLabel("bottom", "update")
            cp.setLabel("left", "loss (log)")
            cp.enableAutoRange()
        else:
            lrs, losses, best = value
            self.check_label.setText(
                f"Loss over {len(lrs)} updates with the rate growing from {lrs[0]:.0e} to {lrs[-1]:.2g}"
                + (" (stopped when the loss blew up)" if len(lrs) < 100 else "")
                + f". It falls fastest near lr ≈ <b>{best:.2g}</b>: a good starting point.")
            cp.setLogMode(True, False)
            self.check_curve.setData(lrs, losses)
            self.check_marker.setValue(math.log10(best))
            self.check_marker.label.setFormat(f"{best:.2g}")
            self.check_marker.show()
            cp.setTitle("Learning-rate sweep", size="10pt", color=theme.INK_HEX)
            cp.setLabel("bottom", "learning rate")
            cp.setLabel("left", "mini-batch loss")
            cp.enableAutoRange()

    def _show_ensemble(self, r: S.EnsembleResult) -> None:
        self.last_ensemble = r
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

    # ================================================================================================= jobs
    def _on_job_progress(self, job: Job, p: Any) -> None:
        if job.kind == "search":
            self.results = p
            self._redraw_search()
        elif job.kind == "ensemble":
            i, n = p
            self.ens_label.setText(f"Trained {i} of {n} models…")

    def _on_job_done(self, job: Job) -> None:
        if job.error:
            self._show_error(job.error)
        if job.kind == "search":
            if job.result is not None:
                self.results = job.result
            self._redraw_search()
            self.run_button.setEnabled(True)
            self.cancel_button.setEnabled(False)
            self.apply_button.setEnabled(self.best() is not None)
            done = sum(len(v) for v in self.results.values())
            total = sum(len(v) for v in self._planned.values())
            self.status_label.setText(f"{done} of {total} trials trained" + (" (cancelled)." if done < total else "."))
            self.search_finished.emit()
        elif job.kind == "check":
            for b in (self.initial_loss_button, self.overfit_button, self.sweep_button):
                b.setEnabled(True)
            if job.result is not None:
                which, value = job.result
                self._show_check(which, value)
                self.check_finished.emit(which)
        elif job.kind == "ensemble":
            self.ens_button.setEnabled(True)
            if job.result is not None and len(job.result.seeds):
                self._show_ensemble(job.result)
            self.ensemble_finished.emit()

    def _show_error(self, text: str) -> None:
        self.error_label.setText(text)
        self.error_label.show()
