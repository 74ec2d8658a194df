"""The preprocessing pictures: the lecture's zero-centre / normalise and decorrelate / whiten figures on 2-D points,
one scatter per stage with its 2-sigma covariance ellipse (solid: after the step; dashed: before it).

Opened from the Playground's Data group ("Preview preprocessing…"), beside the preprocess option that applies the same
transforms to the training data: the picture sits next to the control it explains, as the augmentation preview does
for the digits. The model is simulator.data.preprocess (PreprocessViewSettings declares the controls,
preprocess_stages computes every stage, ellipse the contours; no Qt). A few thousand points cost well under a
millisecond, so the stages are recomputed synchronously at every change.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from gui import theme
from gui.forms import ParamForm
from gui.labs.common import control_column, group, muted
from simulator.core.errors import StudioError
from simulator.data.preprocess import (
    STAGES,
    PreprocessViewSettings,
    ellipse,
    preprocess_stages,
    stage_data,
)

__all__ = ["LAYOUT", "PreprocessDialog", "PreprocessView", "show_preprocess_preview"]

# the lecture's two figures, one per row: (stage, the operation that made it from the panel on its left)
LAYOUT = (((STAGES[0], ""), (STAGES[1], "x − μ"), (STAGES[2], "(x − μ) / σ")),
          ((STAGES[0], ""), (STAGES[3], "(x − μ) · U"), (STAGES[4], "(x − μ) · U / √S")))
POINT_BRUSH = pg.mkBrush(47, 116, 208, 110)
AFTER_PEN = pg.mkPen(theme.ERROR, width=2)
BEFORE_PEN = pg.mkPen(theme.TEXT_MUTED, width=1.5, style=Qt.PenStyle.DashLine)


def cov_text(cov: np.ndarray) -> str:
    """A 2x2 covariance as two rows of numbers ("-0.000" shown as "0.000")."""
    c = np.where(np.abs(cov) < 5e-4, 0.0, cov)
    return f"cov = [{c[0, 0]:7.3f} {c[0, 1]:7.3f}]\n      [{c[1, 0]:7.3f} {c[1, 1]:7.3f}]"


class _StagePlot(QWidget):
    """One stage: its scatter, axes through 0, the ellipses, and its covariance under it."""

    def __init__(self, stage: str, op: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.stage = stage
        self.plot = pg.PlotWidget(background="w")
        pi = self.plot.getPlotItem()
        pi.setMenuEnabled(False)
        pi.hideButtons()
        pi.setAspectLocked(True)
        pi.showGrid(x=True, y=True, alpha=0.12)
        pi.setTitle(stage + (f":  {op}" if op else ""), size="9.5pt")
        for ax in ("left", "bottom"):
            pi.getAxis(ax).enableAutoSIPrefix(False)
        for angle in (0, 90):
            pi.addItem(pg.InfiniteLine(0.0, angle=angle, pen=pg.mkPen("#9aa3ae", width=1)))
        self.scatter = pg.ScatterPlotItem(size=4, pen=None, brush=POINT_BRUSH)
        self.before = pg.PlotCurveItem(pen=BEFORE_PEN)
        self.after = pg.PlotCurveItem(pen=AFTER_PEN)
        for it in (self.scatter, self.before, self.after):
            pi.addItem(it)
        self.plot.setMinimumSize(150, 140)
        self.caption = QLabel()
        self.caption.setStyleSheet("font-family: monospace; font-size: 8.5pt;")
        self.caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        lay.addWidget(self.plot, 1)
        lay.addWidget(self.caption)

    def show_stage(self, st, draw_before: bool) -> None:
        self.scatter.setData(x=st.X[:, 0], y=st.X[:, 1])
        after = ellipse(st.mean, st.cov)
        self.after.setData(after[:, 0], after[:, 1])
        pts = [st.X, after]
        if draw_before:
            before = ellipse(st.before_mean, st.before_cov)
            self.before.setData(before[:, 0], before[:, 1])
            pts.append(before)
        else:
            self.before.setData([], [])
        allp = np.vstack(pts + [np.zeros((1, 2))])          # the origin always in view
        lo, hi = allp.min(axis=0), allp.max(axis=0)
        pad = 0.06 * (hi - lo).max()
        self.plot.getPlotItem().setRange(xRange=(lo[0] - pad, hi[0] + pad), yRange=(lo[1] - pad, hi[1] + pad),
                                         padding=0)
        self.caption.setText(cov_text(st.cov))


class PreprocessView(QWidget):
    """The data controls (declared in PreprocessViewSettings) and the two rows of stages.

    Children for tests: form (dataset_combo, points_box, seed_box), plots[(row, col)] (each with .scatter, .after,
    .before, .caption), stages (the last computed preprocess_stages), error_label."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.form = ParamForm(PreprocessViewSettings)
        w = self.form.widgets
        self.dataset_combo, self.points_box, self.seed_box = w["dataset"], w["points"], w["seed"]
        self.points_box.setSingleStep(50)
        self.form.edited.connect(self.refresh)
        self.error_label = QLabel()
        self.error_label.setStyleSheet(f"color: {theme.ERROR.name()};")
        self.error_label.setWordWrap(True)
        self.error_label.hide()
        legend = QLabel(f"<span style='color:{theme.ERROR.name()}'>━━</span> 2σ ellipse after the step<br>"
                        f"<span style='color:{theme.MUTED_HEX}'>╍╍</span> 2σ ellipse before it")
        explain = muted("Top row: subtract the mean, then divide each axis by its standard deviation. Bottom row: "
                        "rotate onto the eigenvectors U of the covariance (PCA: the covariance becomes diagonal), "
                        "then divide each axis by √eigenvalue (whitening: the covariance becomes the identity). "
                        "cov is the 1/N covariance of the points shown. In the Playground the same steps are fitted "
                        "on the training points only and applied unchanged to the validation points and the "
                        "decision-region grid.")
        box = QVBoxLayout()
        box.addWidget(self.form)
        box.addWidget(self.error_label)
        box.addWidget(legend)
        box.addWidget(explain)
        left = control_column([group("Data", box)], min_width=250)
        left.setMaximumWidth(300)

        grid = QGridLayout()
        grid.setContentsMargins(4, 4, 4, 4)
        grid.setSpacing(6)
        self.plots: dict[tuple[int, int], _StagePlot] = {}
        for r, row in enumerate(LAYOUT):
            for c, (stage, op) in enumerate(row):
                p = _StagePlot(stage, op)
                self.plots[(r, c)] = p
                grid.addWidget(p, r, c)
        right = QWidget()
        right.setLayout(grid)
        root = QHBoxLayout(self)
        root.setContentsMargins(0, 0, 0, 0)
        root.addWidget(left)
        root.addWidget(right, 1)
        self.stages = None
        self.refresh()

    def settings(self) -> PreprocessViewSettings:
        return self.form.value()

    def refresh(self) -> None:
        s = self.form.try_value()
        if s is None:
            return
        try:
            stages = preprocess_stages(stage_data(s))
        except StudioError as exc:
            self.error_label.setText(str(exc))
            self.error_label.show()
            return
        self.error_label.hide()
        self.stages = stages
        for (r, c), p in self.plots.items():
            p.show_stage(stages[p.stage], draw_before=c > 0)


class PreprocessDialog(QDialog):
    """A PreprocessView in its own non-modal window."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Preprocessing: zero-centre, normalise, decorrelate, whiten")
        self.setModal(False)
        self.view = PreprocessView(self)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.view)
        self.resize(1180, 720)


def show_preprocess_preview(parent: QWidget) -> PreprocessDialog:
    """Open (or raise) the parent's one preprocessing window, non-modal."""
    dlg = getattr(parent, "preprocess_dialog", None)
    if dlg is None:
        dlg = PreprocessDialog(parent)
        parent.preprocess_dialog = dlg
    dlg.show()
    dlg.raise_()
    dlg.activateWindow()
    return dlg
