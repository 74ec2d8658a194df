"""Run → Write your own op: an editor for forward / backward in numpy, a gradient check that shows per element where
the backward is wrong, and, once it passes, the op in the palette ("Yours"), placed and stepped like a built-in one.

The check runs on the window's job runner (off the UI thread); the code itself runs in the sandbox process
(``simulator.engine.user_ops``), so an endless loop or a crash in it never takes the window down.
"""
from __future__ import annotations

import html

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QFontDatabase
from PySide6.QtWidgets import (QDialog, QHBoxLayout, QHeaderView, QLabel, QLineEdit, QPlainTextEdit, QPushButton,
                               QSplitter, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from gui import theme
from gui.jobs import JobRunner
from simulator.engine.user_ops import CHECK_SHAPE, CHECK_TOL, TEMPLATE, CheckResult, check_job, register_user_op

__all__ = ["UserOpDialog", "USER_OPS_KEY"]

USER_OPS_KEY = "user_ops"          # settings group: op name -> source, registered again at the next start


class UserOpDialog(QDialog):
    """Write, check, add. ``op_added(name)`` when an op joins the palette."""

    op_added = Signal(str)

    def __init__(self, runner: JobRunner, settings, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Write your own op")
        self.runner, self.settings = runner, settings
        self.result: CheckResult | None = None
        self._checked_source: tuple[str, str] | None = None
        self.name_edit = QLineEdit("my_relu", self)
        self.name_edit.setToolTip("lower-case letters, digits and _; the name you type in expressions: my_relu(x)")
        self.editor = QPlainTextEdit(self)
        mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        mono.setPointSizeF(max(mono.pointSizeF(), 10.0))
        self.editor.setFont(mono)
        self.editor.setPlainText(TEMPLATE)
        self.editor.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.editor.setTabStopDistance(4 * self.editor.fontMetrics().horizontalAdvance(" "))
        self.editor.textChanged.connect(self._on_edited)
        self.name_edit.textChanged.connect(self._on_edited)
        self.check_button = QPushButton("Check gradients", self)
        self.check_button.setToolTip("Run your forward and backward on a random x and compare dx with centred "
                                     "differences, element by element (your code runs in a separate process)")
        self.check_button.clicked.connect(self.check)
        self.add_button = QPushButton("Add to the palette", self)
        self.add_button.setEnabled(False)
        self.add_button.setToolTip("Once the check passes: your op appears under 'Yours' in the Ops palette and in "
                                   "expressions")
        self.add_button.clicked.connect(self.add)
        self.summary = QLabel("Write forward and backward, then check them.", self)
        self.summary.setWordWrap(True)
        self.grid = QTableWidget(*CHECK_SHAPE, self)
        self.grid.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.grid.setHorizontalHeaderLabels([str(j) for j in range(CHECK_SHAPE[1])])   # numpy's indices, as the
        self.grid.setVerticalHeaderLabels([str(i) for i in range(CHECK_SHAPE[0])])     # summary names them
        for h in (self.grid.horizontalHeader(), self.grid.verticalHeader()):
            h.setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.grid.setToolTip("Relative error of each element of dx: |yours − numerical| / (|yours| + |numerical|)")
        right = QWidget(self)
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        title = QLabel("<b>Gradient check</b> — relative error per element of dx", right)
        rl.addWidget(title)
        rl.addWidget(self.grid, 1)
        rl.addWidget(self.summary)
        left = QWidget(self)
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        row.addWidget(QLabel("Op name", left))
        row.addWidget(self.name_edit, 1)
        ll.addLayout(row)
        ll.addWidget(self.editor, 1)
        split = QSplitter(Qt.Orientation.Horizontal, self)
        split.addWidget(left)
        split.addWidget(right)
        split.setSizes([560, 420])
        buttons = QHBoxLayout()
        buttons.addWidget(self.check_button)
        buttons.addWidget(self.add_button)
        buttons.addStretch(1)
        close = QPushButton("Close", self)
        close.clicked.connect(self.accept)
        buttons.addWidget(close)
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel("An elementwise op of x: forward(x) returns (out, cache); backward(dout, cache) returns "
                             "dx = dout × your local gradient. Your code runs in a separate process with a time and "
                             "memory limit.", self))
        lay.addWidget(split, 1)
        lay.addLayout(buttons)
        self.resize(1000, 560)

    # ---- checking -----------------------------------------------------------------------------------------------
    def _current(self) -> tuple[str, str]:
        return self.name_edit.text().strip(), self.editor.toPlainText()

    def _on_edited(self) -> None:
        self.add_button.setEnabled(self._checked_source == self._current())

    def check(self) -> None:
        name, source = self._current()
        self.check_button.setEnabled(False)
        self.summary.setText("Checking…")
        self.runner.start("user_op_check", lambda: check_job(name, source), on_done=lambda r: self._show(r, name,
                          source), on_error=self._failed)

    def _failed(self, _exc: BaseException, text: str) -> None:
        self.check_button.setEnabled(True)
        self.result = None
        self._checked_source = None
        self.add_button.setEnabled(False)
        self.grid.clearContents()
        self.summary.setText(f"<span style='color:{theme.ERROR.name()}'>{html.escape(text)}</span>".replace("\n",
                                                                                                          "<br>"))

    def _show(self, r: CheckResult, name: str, source: str) -> None:
        self.check_button.setEnabled(True)
        self.result = r
        rows, cols = CHECK_SHAPE
        for i in range(rows):
            for j in range(cols):
                e = float(r.rel_error[i, j])
                item = QTableWidgetItem(f"{e:.1e}")
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                bad = not e <= CHECK_TOL
                item.setBackground(QColor("#fbeaea" if bad else "#e8f5e9"))
                item.setForeground(theme.ERROR if bad else QColor(theme.VALUE_HEX))
                item.setToolTip(f"x = {r.x[i, j]:.4g}\nyour dx = {r.analytic[i, j]:.6g}\n"
                                f"numerical dx = {r.numeric[i, j]:.6g}")
                self.grid.setItem(i, j, item)
        colour = theme.VALUE_HEX if r.ok else theme.ERROR.name()
        self.summary.setText(f"<span style='color:{colour}'>{html.escape(r.summary)}</span>")
        self._checked_source = (name, source) if r.ok else None
        self._on_edited()

    # ---- adding -------------------------------------------------------------------------------------------------
    def add(self) -> None:
        if self._checked_source != self._current():
            return
        name, source = self._current()
        try:
            register_user_op(name, source)
        except Exception as exc:  # noqa: BLE001  (our errors, worded for the learner)
            self._failed(exc, str(exc))
            return
        self.settings.setValue(f"{USER_OPS_KEY}/{name}", source)
        self.summary.setText(self.summary.text() + f"<br><b>{html.escape(name)}</b> is in the Ops palette under "
                             f"<i>Yours</i>; type <code>{html.escape(name)}(x)</code> in an expression.")
        self.op_added.emit(name)
