"""The Playground's Evaluate panel: the current weights scored plainly, with test-time augmentation and with Monte-Carlo
dropout, the accuracy gained shown next to the plain evaluation.

The controls come from simulator.nn.evaluation.EvalSettings; the work is ``PlaygroundLabModel.evaluation_job`` (a
copy of the weights taken between two updates, then simulator.nn.evaluation.evaluation_job), run as the job
"evaluate" of the lab's one JobRunner, so the window never waits for it, even while training runs.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from PySide6.QtWidgets import (
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from gui.forms import ParamForm
from gui.labs.common import ERROR_STYLE, MUTED_STYLE, muted
from simulator.core.jobs import Progress
from simulator.nn.evaluation import EvalResult, EvalSettings

__all__ = ["EvaluatePanel", "gain_text"]


def gain_text(acc: float, plain: float) -> str:
    """'93.1 %  (+1.4)': an accuracy and its gain over the plain one in percentage points ('—' when NaN)."""
    if math.isnan(acc):
        return "—"
    d = 100.0 * (acc - plain)
    return f"{acc:.1%}  ({'+' if d >= 0 else '−'}{abs(d):.1f})"


class EvaluatePanel(QWidget):
    """Children for tests: form (tta_combo, passes_box, seed_box), evaluate_button, progress, plain_label,
    tta_label, mc_label, note_label; ``result`` (the last EvalResult)."""

    def __init__(self, runner: Any, make_job: Callable[[EvalSettings], Any], parent: QWidget | None = None):
        super().__init__(parent)
        self.runner = runner
        self.make_job = make_job            # settings -> a job generator, or None when there is nothing to evaluate
        self.result: EvalResult | None = None
        self.form = ParamForm(EvalSettings)
        w = self.form.widgets
        self.tta_combo, self.passes_box, self.seed_box = w["tta"], w["passes"], w["seed"]
        self.evaluate_button = QPushButton("Evaluate current weights")
        self.evaluate_button.setToolTip("Score the current weights on the validation set: plain, with test-time "
                                        "augmentation and with MC dropout (runs beside training)")
        self.evaluate_button.clicked.connect(self.evaluate)
        self.progress = QProgressBar()
        self.progress.setMaximumHeight(10)
        self.progress.setTextVisible(False)
        self.progress.hide()
        grid = QGridLayout()
        grid.setContentsMargins(0, 0, 0, 0)
        self.plain_label, self.tta_label, self.mc_label = QLabel("—"), QLabel("—"), QLabel("—")
        for r, (name, lab, tip) in enumerate((
                ("plain", self.plain_label, "one pass in eval mode"),
                ("TTA", self.tta_label, "probabilities averaged over the views (images only)"),
                ("MC dropout", self.mc_label, "probabilities averaged over T passes with the Dropout and DropConnect "
                                              "layers on, every other layer in eval mode"))):
            head = QLabel(name)
            head.setToolTip(tip)
            lab.setStyleSheet("font-family: monospace;")
            grid.addWidget(head, r, 0)
            grid.addWidget(lab, r, 1)
        grid.setColumnStretch(1, 1)
        self.note_label = muted("Accuracy on the validation set; (+x) is the gain over plain, in points.")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.form)
        row = QHBoxLayout()
        row.addWidget(self.evaluate_button, 1)
        lay.addLayout(row)
        lay.addWidget(self.progress)
        lay.addLayout(grid)
        lay.addWidget(self.note_label)

    def evaluate(self) -> None:
        s = self.form.try_value()
        if s is None:
            return
        job = self.make_job(s)
        if job is None:
            self._note("Build a network first.", error=True)
            return
        self.evaluate_button.setEnabled(False)
        self.progress.setRange(0, 0)
        self.progress.show()
        self.runner.start("evaluate", lambda: job, on_yield=self._on_progress, on_done=self._on_done,
                          on_error=self._on_error, on_cancel=self._idle)

    def _on_progress(self, item: Any) -> None:
        if isinstance(item, Progress) and item.total:
            self.progress.setRange(0, item.total)
            self.progress.setValue(item.done)

    def _on_done(self, r: EvalResult) -> None:
        self.result = r
        self._idle()
        self.plain_label.setText(f"{r.plain:.1%}")
        self.tta_label.setText(gain_text(r.tta, r.plain))
        self.mc_label.setText(gain_text(r.mc, r.plain))
        notes = [f"{r.n} examples"]
        if math.isnan(r.tta):
            notes.append("TTA flips and shifts images: not for 2-D points")
        else:
            notes.append(f"TTA over {len(r.views)} views: {', '.join(r.views)}")
        notes.append(f"MC dropout over T = {r.passes} passes" if r.random_layers else
                     "no Dropout or DropConnect layer: MC dropout does not apply (add Dropout to the network)")
        self._note(" · ".join(notes))

    def _on_error(self, _exc: BaseException, text: str) -> None:
        self._idle()
        self._note("⚠ " + text, error=True)

    def _note(self, text: str, error: bool = False) -> None:
        self.note_label.setStyleSheet(ERROR_STYLE if error else MUTED_STYLE)
        self.note_label.setText(text)

    def _idle(self) -> None:
        self.evaluate_button.setEnabled(True)
        self.progress.hide()
