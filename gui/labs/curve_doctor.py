"""What does my curve say? The recipe's step 6 as a window: the learner's run read by
``simulator.labs.curves.diagnose`` beside the annotated reference curves (rate too high, bad initialisation, a flat
start, overfitting, a plateau, a healthy run), each drawn from ``reference_curves``."""
from __future__ import annotations

import html

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QGridLayout, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from gui import plotting, theme  # noqa: F401  (plotting: cached axes)
from gui.labs.prediction import PredictionBox
from simulator.labs.curves import DIAGNOSES, SHORT_NAMES, Diagnosis, diagnose, reference_curves

__all__ = ["CurveDoctor"]

_ORDER = ("healthy", "diverged", "flat", "slow_start", "overfitting", "plateau")
_TRAIN, _VAL, _STEP = "#1f77b4", "#d62728", "#9fb3cc"


def _curve_plot(title: str, steps: np.ndarray, train: np.ndarray | None, val: np.ndarray | None) -> pg.PlotWidget:
    w = pg.PlotWidget(background="w")
    p = w.getPlotItem()
    p.setMenuEnabled(False)
    p.hideButtons()
    p.setMouseEnabled(False, False)
    p.setTitle(html.escape(title), size="9pt", color=theme.INK_HEX)
    p.setLabel("bottom", "update")
    p.setLabel("left", "loss")
    p.getAxis("bottom").enableAutoSIPrefix(False)
    p.showGrid(x=True, y=True, alpha=0.15)
    s = np.asarray(steps, dtype=np.float64)
    finite = np.isfinite(s)
    x = np.arange(1, len(s) + 1, dtype=np.float64)
    p.plot(x[finite], s[finite], pen=pg.mkPen(_STEP, width=1))
    for series, colour in ((train, _TRAIN), (val, _VAL)):
        if series is None or not len(series):
            continue
        e = np.asarray(series, dtype=np.float64)
        ex = np.linspace(len(s) / len(e), len(s), len(e))
        ok = np.isfinite(e)
        if ok.any():
            p.plot(ex[ok], e[ok], pen=pg.mkPen(colour, width=2))
    top = float(np.nanmax(s[finite])) if finite.any() else 1.0
    p.setYRange(0, max(top, 1e-6) * 1.05, padding=0)
    w.setMinimumSize(180, 140)
    return w


class CurveDoctor(QDialog):
    """The learner's curve and its diagnosis above, the reference gallery below (the matching one outlined)."""

    def __init__(self, steps: np.ndarray, train: np.ndarray | None, val: np.ndarray | None,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("What does my curve say?")
        self.diagnosis: Diagnosis = diagnose(steps, train, val)
        d = self.diagnosis
        self.verdict = QLabel(f"<b style='font-size:13pt'>{html.escape(d.title)}</b><br>"
                              f"<span style='color:{theme.MUTED_HEX}'>{html.escape(d.evidence)}</span><br>"
                              f"{html.escape(d.advice)}", self)
        self.verdict.setWordWrap(True)
        self.verdict.setTextFormat(Qt.TextFormat.RichText)
        # predict first: the reading stays hidden until the learner has said what they see (or asks to see it)
        names = [SHORT_NAMES[k] for k in _ORDER]
        self.prediction = PredictionBox("what does this curve say?", self._check, choices=names, parent=self)
        self.prediction.answered.connect(lambda _ok: self.reveal())
        self.show_button = QPushButton("Just show me", self)
        self.show_button.clicked.connect(self.reveal)
        self.verdict.hide()
        yours = _curve_plot("Your run: loss per update (light), training (blue) and validation (red) per epoch",
                            steps, train, val)
        yours.setMinimumHeight(200)
        gallery = QWidget(self)
        grid = QGridLayout(gallery)
        grid.setContentsMargins(0, 0, 0, 0)
        self.references: dict[str, pg.PlotWidget] = {}
        curves = reference_curves()
        for i, key in enumerate(_ORDER):
            s, tr, va = curves[key]
            plot = _curve_plot(SHORT_NAMES[key], s, tr, va)
            plot.setToolTip(f"{DIAGNOSES[key][0]}. {DIAGNOSES[key][1]}")
            self.references[key] = plot
            grid.addWidget(plot, i // 3, i % 3)
        close = QPushButton("Close", self)
        close.clicked.connect(self.accept)
        lay = QVBoxLayout(self)
        top = QHBoxLayout()
        top.addWidget(self.prediction, 1)
        top.addWidget(self.show_button, 0, Qt.AlignmentFlag.AlignBottom)
        lay.addLayout(top)
        lay.addWidget(self.verdict)
        lay.addWidget(yours, 2)
        lay.addWidget(QLabel("<b>Reference curves</b> — the lecture's reading of each shape (hover for what to do); "
                             "once revealed, the one your run matches is outlined.", self))
        lay.addWidget(gallery, 3)
        lay.addWidget(close, 0, Qt.AlignmentFlag.AlignRight)
        self.resize(980, 720)

    def _check(self, name: str) -> tuple[bool, str]:
        d = self.diagnosis
        return name == SHORT_NAMES.get(d.verdict), f"It reads: {d.title} ({d.evidence})."

    def reveal(self) -> None:
        """Show the reading and outline the matching reference curve."""
        self.verdict.show()
        self.show_button.setEnabled(False)
        plot = self.references.get(self.diagnosis.verdict)
        if plot is not None:
            plot.setStyleSheet(f"border: 2px solid {theme.GRAD_HEX};")
            plot.getPlotItem().setTitle(html.escape(SHORT_NAMES[self.diagnosis.verdict]), size="9pt",
                                        color=theme.GRAD_HEX)
