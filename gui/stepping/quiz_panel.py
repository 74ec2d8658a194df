"""The quiz panel: with the stepper's Quiz on, a backward step is a question before it is shown.

The panel asks for the downstream gradient(s) of the step guarding the current position (a box per scalar, a grid
of cells per small tensor), checks them with ``simulator.engine.quiz.Quiz``, explains a wrong answer with the
step's numbers, and emits ``proceed`` once the step may be shown (answered right, or revealed). The score counts
the questions answered right at the first try.
"""
from __future__ import annotations

import html

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QAbstractItemView, QFrame, QGridLayout, QHBoxLayout, QHeaderView, QLabel, QLineEdit,
                               QPushButton, QSizePolicy, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from gui import theme
from simulator.core.errors import StudioError
from simulator.engine.quiz import Question, Quiz

__all__ = ["QuizPanel"]

_WRONG_BG = "#fbeaea"


class QuizPanel(QFrame):
    """Question, answer boxes, Check / Reveal, feedback and the score, for the position the stepper is at."""

    proceed = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("QuizPanel")
        self.quiz: Quiz | None = None
        self.question: Question | None = None
        self.inputs: dict[str, QLineEdit | QTableWidget] = {}
        self.prompt = QLabel(self)
        self.prompt.setWordWrap(True)
        self.prompt.setTextFormat(Qt.TextFormat.RichText)
        self.boxes = QWidget(self)
        self.grid = QGridLayout(self.boxes)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.check_button = QPushButton("Check", self)
        self.check_button.setToolTip("Check your answer (Enter)")
        self.check_button.clicked.connect(self.check)
        self.reveal_button = QPushButton("Reveal", self)
        self.reveal_button.setToolTip("Show the step without answering (counts as missed)")
        self.reveal_button.clicked.connect(self.reveal)
        self.feedback = QLabel(self)
        self.feedback.setWordWrap(True)
        self.feedback.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.score_label = QLabel(self)
        self.score_label.setObjectName("Muted")
        buttons = QHBoxLayout()
        buttons.addWidget(self.check_button)
        buttons.addWidget(self.reveal_button)
        buttons.addStretch(1)
        buttons.addWidget(self.score_label)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(14, 6, 14, 8)
        lay.setSpacing(4)
        lay.addWidget(self.prompt)
        lay.addWidget(self.boxes)
        lay.addLayout(buttons)
        lay.addWidget(self.feedback)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)

    # ---- following the stepper -----------------------------------------------------------------------------------
    def set_quiz(self, quiz: Quiz | None) -> None:
        self.quiz = quiz
        self.feedback.clear()
        self._show_score()

    def show_position(self, position: int) -> None:
        """Ask the question guarding ``position`` -> ``position + 1`` if it is still open; else say what comes."""
        q = self.quiz.pending(position) if self.quiz is not None else None
        if q is self.question and q is not None:
            return
        self.question = q
        self._clear_boxes()
        asking = q is not None
        for w in (self.check_button, self.reveal_button, self.boxes):
            w.setVisible(asking)
        self.setMinimumHeight(0)
        if q is None:
            n = len(self.quiz.questions) if self.quiz is not None else 0
            self.prompt.setText(f"<b>Quiz</b> · {n} question{'s' if n != 1 else ''} in this graph: each backward "
                                f"step asks first." if n else
                                "<b>Quiz</b> · this graph has no backward step small enough to ask about.")
            return
        self.prompt.setText(f"<b>Quiz</b> · {html.escape(q.prompt)}")
        for col, b in enumerate(q.blanks):            # side by side: the graph above keeps its height
            label = QLabel(f"d{q.output}/d{b.source} =", self.boxes)
            self.grid.addWidget(label, 0, 2 * col, Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignRight)
            if b.expected.ndim == 0:
                box = QLineEdit(self.boxes)
                box.setPlaceholderText("a number, e.g. -4 or 0.25")
                box.setMaximumWidth(220)
                box.returnPressed.connect(self.check)
            else:
                box = self._cells(b.shape)
            self.inputs[b.port] = box
            self.grid.addWidget(box, 0, 2 * col + 1, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.grid.setColumnStretch(2 * len(q.blanks), 1)
        first = self.inputs[q.blanks[0].port]
        first.setFocus()
        self.setMinimumHeight(min(self.layout().sizeHint().height(), 330))   # the splitter gives the boxes room

    def _cells(self, shape: tuple[int, ...]) -> QTableWidget:
        rows, cols = (1, shape[0]) if len(shape) == 1 else (shape[0], int(np.prod(shape[1:])))
        t = QTableWidget(rows, cols, self.boxes)
        t.setEditTriggers(QAbstractItemView.EditTrigger.AllEditTriggers)
        for h in (t.horizontalHeader(), t.verticalHeader()):
            h.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
            h.setDefaultSectionSize(56 if h is t.horizontalHeader() else 22)
        t.setHorizontalHeaderLabels([str(j) for j in range(cols)])
        t.setVerticalHeaderLabels([str(i) for i in range(rows)])
        for i in range(rows):
            for j in range(cols):
                t.setItem(i, j, QTableWidgetItem(""))
        w = t.verticalHeader().width() + 56 * cols + 4
        h = t.horizontalHeader().height() + 22 * rows + 4
        t.setFixedSize(min(w, 420), min(h, 200))
        return t

    def _clear_boxes(self) -> None:
        while self.grid.count():
            item = self.grid.takeAt(0)
            if item.widget() is not None:
                item.widget().hide()                 # gone now, freed by the event loop
                item.widget().deleteLater()
        for c in range(self.grid.columnCount()):
            self.grid.setColumnStretch(c, 0)
        self.inputs = {}

    def _show_score(self) -> None:
        if self.quiz is None:
            self.score_label.clear()
            return
        right, asked = self.quiz.score
        self.score_label.setText(f"score {right} / {asked} at the first try" if asked else "")

    # ---- answering ---------------------------------------------------------------------------------------------
    def answers(self) -> dict:
        out = {}
        for port, box in self.inputs.items():
            if isinstance(box, QLineEdit):
                out[port] = box.text()
            else:
                out[port] = [[box.item(i, j).text() for j in range(box.columnCount())] for i in range(box.rowCount())]
        return out

    def check(self) -> None:
        q = self.question
        if q is None or self.quiz is None:
            return
        try:
            fb = self.quiz.answer(q, self.answers())
        except StudioError as exc:
            self._say(str(exc), theme.ERROR.name())
            return
        self._mark(fb.wrong)
        self._show_score()
        if fb.correct:
            self._say(fb.text, theme.VALUE_HEX)
            self.question = None
            self.proceed.emit()
        else:
            self._say(fb.text, theme.ERROR.name())

    def reveal(self) -> None:
        q = self.question
        if q is None or self.quiz is None:
            return
        text = self.quiz.reveal(q)
        self._show_score()
        self._say("Revealed. " + text, theme.INK_HEX)
        self.question = None
        self.proceed.emit()

    def _say(self, text: str, colour: str) -> None:
        self.feedback.setText(f"<span style='color:{colour}'>{html.escape(text)}</span>")

    def _mark(self, wrong: dict) -> None:
        for port, mask in wrong.items():
            box = self.inputs.get(port)
            if isinstance(box, QTableWidget):
                m = np.asarray(mask).reshape(box.rowCount(), box.columnCount())
                for i in range(box.rowCount()):
                    for j in range(box.columnCount()):
                        box.item(i, j).setBackground(QColor(_WRONG_BG) if m[i, j] else QColor("white"))
            elif isinstance(box, QLineEdit):
                box.setStyleSheet(f"background: {_WRONG_BG};" if np.any(mask) else "")
