"""Transfer learning in the Playground: a check box per layer to freeze it (FreezePanel), and the ready experiment
(pretrain on digits 0-4, transfer to 5-9 with few labels) in its own window, its curve drawn live (TransferDialog).

FreezePanel writes through ``PlaygroundLabModel.set_frozen`` (validated there against the stack's shapes, nothing
allocated: freezing every layer is refused with our error, shown under the boxes) and redraws on the model's
``changed`` (its layer list comes from shapes too, so a redraw is cheap even for a huge network); the next session
trains with those layers frozen. When an edit of the layer stack moved or dropped a frozen layer, the model's
``frozen_notice`` says so under the boxes. TransferView runs ``simulator.labs.transfer.transfer_job`` through its
JobRunner (keep="all": every TransferPoint arrives), with a progress bar and Cancel; TransferSettings declares its
controls.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from gui.forms import ParamForm
from gui.jobs import JobRunner
from gui.labs.common import (
    ERROR_STYLE,
    MUTED_STYLE,
    PALETTE,
    control_column,
    group,
    muted,
)
from simulator.core.errors import StudioError
from simulator.core.jobs import Progress
from simulator.labs.transfer import (
    METHOD_LABELS,
    METHODS,
    TransferPoint,
    TransferResult,
    TransferSettings,
    transfer_job,
)

__all__ = ["FreezePanel", "TransferDialog", "TransferView", "show_transfer_dialog"]

METHOD_COLOURS = {"probe": PALETTE[1], "finetune": PALETTE[0], "scratch": PALETTE[2]}


class FreezePanel(QWidget):
    """One check box per layer with parameters ("freeze fc1 · Linear 64"), Linear probe / Train all buttons, and the
    button that opens the transfer experiment. Children for tests: boxes (layer name -> QCheckBox), probe_button,
    all_button, experiment_button, error_label, notice_label (the model's frozen_notice), note."""

    def __init__(self, model: Any, parent: QWidget | None = None):
        super().__init__(parent)
        self.model = model
        self.boxes: dict[str, QCheckBox] = {}
        self.box_layout = QVBoxLayout()
        self.box_layout.setContentsMargins(0, 0, 0, 0)
        self.box_layout.setSpacing(1)
        self.probe_button = QPushButton("Linear probe")
        self.probe_button.setToolTip("Freeze every layer but the output layer: only a linear classifier on the "
                                     "features trains")
        self.all_button = QPushButton("Fine-tune all")
        self.all_button.setToolTip("Unfreeze every layer")
        self.experiment_button = QPushButton("Transfer experiment: digits 0–4 → 5–9…")
        self.experiment_button.setToolTip("Pretrain on digits 0–4, then compare a linear probe, fine-tuning and "
                                          "training from scratch on 5–9 with few labels")
        self.probe_button.clicked.connect(self._on_probe)
        self.all_button.clicked.connect(lambda: self._set([]))
        self.experiment_button.clicked.connect(lambda: show_transfer_dialog(self))
        self.error_label = QLabel()
        self.error_label.setStyleSheet(ERROR_STYLE)
        self.error_label.setWordWrap(True)
        self.error_label.hide()
        self.notice_label = QLabel()
        self.notice_label.setWordWrap(True)
        self.notice_label.hide()
        self.note = muted("A frozen layer gets no gradient and no update. A change starts a new session from the "
                          "seed, or from weights loaded under Model files: load pretrained weights, tick, train.")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(self.box_layout)
        row = QHBoxLayout()
        row.addWidget(self.probe_button)
        row.addWidget(self.all_button)
        lay.addLayout(row)
        lay.addWidget(self.error_label)
        lay.addWidget(self.notice_label)
        lay.addWidget(self.note)
        lay.addWidget(self.experiment_button)
        self.transfer_dialog: TransferDialog | None = None
        model.changed.connect(self._on_model_changed)
        self.refresh()

    def _on_model_changed(self, what: str) -> None:
        if what in ("network", "data"):
            self.refresh()

    def refresh(self) -> None:
        """Rebuild the boxes from the model's layers (when they changed) and tick the frozen ones."""
        layers = self.model.freezable_layers()
        names = [n for n, _ in layers]
        if names != list(self.boxes):
            for box in self.boxes.values():
                box.setParent(None)
                box.deleteLater()
            self.boxes = {}
            for k, (name, label) in enumerate(layers):
                out = " (output)" if k == len(layers) - 1 else ""
                box = QCheckBox(f"freeze {name} · {label}{out}")
                box.setObjectName(f"freeze_{name}")
                box.toggled.connect(self._on_toggled)
                self.box_layout.addWidget(box)
                self.boxes[name] = box
        frozen = set(self.model.frozen)
        for name, box in self.boxes.items():
            box.blockSignals(True)
            box.setChecked(name in frozen)
            box.blockSignals(False)
        self.probe_button.setEnabled(len(names) > 1)
        self.all_button.setEnabled(bool(frozen))
        notice = self.model.frozen_notice
        self.notice_label.setText("ⓘ " + notice if notice else "")
        self.notice_label.setVisible(bool(notice))

    def _on_toggled(self, _checked: bool) -> None:
        self._set([n for n, b in self.boxes.items() if b.isChecked()])

    def _on_probe(self) -> None:
        self._set(list(self.boxes)[:-1])

    def _set(self, names: list[str]) -> None:
        try:
            self.model.set_frozen(names)
        except StudioError as exc:
            self.error_label.setText("⚠ " + str(exc))
            self.error_label.show()
            self.refresh()                   # the boxes show what the model holds
            return
        self.error_label.hide()


class TransferView(QWidget):
    """The experiment's settings, Run / Cancel, progress, and the accuracy curves (one per method, log x axis).

    Children for tests: form, run_button, cancel_button, progress, status_label, plot, curves (method ->
    PlotDataItem), points (method -> list of (count, accuracy) received), result (TransferResult when done)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.jobs = JobRunner(self)
        self.form = ParamForm(TransferSettings)
        self.run_button = QPushButton("▶ Run experiment")
        self.cancel_button = QPushButton("■ Cancel")
        self.cancel_button.setEnabled(False)
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.status_label = QLabel("Press ▶ Run: pretraining on digits 0–4 takes a few seconds.")
        self.status_label.setStyleSheet(MUTED_STYLE)
        self.status_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.summary_label = QLabel("")             # the finished run, under the plot (full width)
        self.summary_label.setWordWrap(True)
        explain = muted("1. Pretrain Flatten → Linear → ReLU → Linear → ReLU → Linear(5) on digits 0–4.\n"
                        "2. On digits 5–9, label n examples (2 per class at n = 10, nested as n grows) and train "
                        "three networks with a fresh output layer:\n"
                        "• linear probe: the pretrained body frozen, only the output layer learns;\n"
                        "• fine-tuning: start from the pretrained body, every layer learns;\n"
                        "• from scratch: fresh weights everywhere.\n"
                        "3. Score each on the same held-out digits 5–9. The inputs use the digits 0–4 statistics.")
        box = QVBoxLayout()
        box.addWidget(self.form)
        row = QHBoxLayout()
        row.addWidget(self.run_button)
        row.addWidget(self.cancel_button)
        box.addLayout(row)
        box.addWidget(self.progress)
        box.addWidget(self.status_label)
        box.addWidget(explain)
        left = control_column([group("Experiment", box)], min_width=300)
        left.setMaximumWidth(360)

        self.plot = pg.PlotWidget(background="w")
        pi = self.plot.getPlotItem()
        pi.setMenuEnabled(False)
        pi.hideButtons()
        pi.showGrid(x=True, y=True, alpha=0.15)
        pi.setTitle("Accuracy on held-out digits 5–9", size="10pt")
        pi.setLabel("left", "test accuracy")
        pi.setLabel("bottom", "labelled examples (log scale)")
        pi.setLogMode(x=True)
        pi.setYRange(0, 1.0, padding=0.02)
        pi.getViewBox().setMouseEnabled(False, False)
        legend = pi.addLegend(offset=(-10, -10), labelTextSize="9pt")
        legend.setBrush(pg.mkBrush(255, 255, 255, 220))
        self.curves = {m: pi.plot(pen=pg.mkPen(METHOD_COLOURS[m], width=2.5), symbol="o", symbolSize=7,
                                  symbolBrush=METHOD_COLOURS[m], symbolPen=None, name=METHOD_LABELS[m])
                       for m in METHODS}
        self.plot.setMinimumSize(360, 300)
        right = QVBoxLayout()
        right.setContentsMargins(0, 0, 6, 6)
        right.addWidget(self.plot, 1)
        right.addWidget(self.summary_label)
        root = QHBoxLayout(self)
        root.setContentsMargins(0, 0, 0, 0)
        root.addWidget(left)
        root.addLayout(right, 1)
        self.points: dict[str, list[tuple[int, float]]] = {m: [] for m in METHODS}
        self.result: TransferResult | None = None

    # ------------------------------------------------------------------------------------------------ jobs
    def run(self) -> None:
        s = self.form.try_value()
        if s is None:
            return
        self.points = {m: [] for m in METHODS}
        self.result = None
        for c in self.curves.values():
            c.setData([], [])
        self._set_axis(s.label_counts)
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status_label.setStyleSheet(MUTED_STYLE)
        self.status_label.setText("loading the digits…")
        self.summary_label.setText("")
        self.jobs.start("transfer", lambda: transfer_job(s), keep="all", on_yield=self._on_items,
                        on_done=self._on_done, on_error=self._on_error, on_cancel=self._on_cancelled)

    def cancel(self) -> None:
        self.jobs.cancel("transfer")

    def close_view(self) -> None:
        self.jobs.close()

    def _set_axis(self, counts: tuple[int, ...]) -> None:
        ax = self.plot.getPlotItem().getAxis("bottom")
        ax.setTicks([[(math.log10(c), str(c)) for c in counts], []])
        lo, hi = math.log10(min(counts)), math.log10(max(counts))
        self.plot.getPlotItem().setXRange(lo, hi, padding=0.06)

    def _on_items(self, items: list) -> None:
        new = False
        for it in items:
            if isinstance(it, TransferPoint):
                self.points[it.method].append((it.count, it.accuracy))
                new = True
            elif isinstance(it, Progress):
                self.progress.setRange(0, max(it.total, 1))
                self.progress.setValue(it.done)
                self.status_label.setText(it.message)
        if new:
            for m, pts in self.points.items():
                if pts:
                    a = np.asarray(pts, np.float64)
                    self.curves[m].setData(a[:, 0], a[:, 1])

    def _on_done(self, result: TransferResult) -> None:
        self.result = result
        self._idle()
        self.status_label.setText("done")
        rows = "".join(f"<tr><td>{METHOD_LABELS[m]}</td>" + "".join(f"<td align='right'>&nbsp;{a:.1%}</td>"
                                                                   for a in result.accuracy[m]) + "</tr>"
                       for m in METHODS)
        head = "<tr><td><i>labelled examples</i></td>" + "".join(f"<td align='right'>{c}</td>"
                                                                for c in result.counts) + "</tr>"
        self.summary_label.setText(
            f"Pretraining reached {result.source_accuracy:.1%} on held-out digits 0–4. Accuracy on "
            f"{result.test_size} held-out digits 5–9:<table cellspacing='4'>{head}{rows}</table>")

    def _on_error(self, _exc: BaseException, text: str) -> None:
        self._idle()
        self.status_label.setStyleSheet(ERROR_STYLE)
        self.status_label.setText("⚠ " + text)

    def _on_cancelled(self) -> None:
        self._idle()
        self.status_label.setText("cancelled: the points measured so far stay on the plot")

    def _idle(self) -> None:
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)


class TransferDialog(QDialog):
    """A TransferView in its own non-modal window; closing it cancels the experiment."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Transfer learning: digits 0–4 → 5–9")
        self.setModal(False)
        self.view = TransferView(self)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.view)
        self.resize(1100, 640)

    def closeEvent(self, event) -> None:
        self.view.cancel()
        super().closeEvent(event)


def show_transfer_dialog(parent: QWidget) -> TransferDialog:
    """Open (or raise) the parent's one transfer-experiment window, non-modal."""
    dlg = getattr(parent, "transfer_dialog", None)
    if dlg is None:
        dlg = TransferDialog(parent)
        parent.transfer_dialog = dlg
    dlg.show()
    dlg.raise_()
    dlg.activateWindow()
    return dlg
