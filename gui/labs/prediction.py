"""Predict first: a small box that asks the learner a question about what a lab is about to show, and answers it with
the lab's own computation (``checker(answer) -> (right?, explanation)``), so the learner thinks before seeing."""
from __future__ import annotations

import html
from typing import Any, Callable, Sequence

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QFrame, QHBoxLayout, QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget

from gui import theme
from simulator.core.errors import StudioError
from simulator.engine.quiz import parse_answer

__all__ = ["PredictionBox"]


class PredictionBox(QFrame):
    """A question, a number box or a list of choices, Check, and the answer explained. ``answered(bool)``."""

    answered = Signal(bool)

    def __init__(self, question: str, checker: Callable[[Any], tuple[bool, str]], choices: Sequence[str] = (),
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("PredictionBox")
        self.setStyleSheet("QFrame#PredictionBox { background: #f4f8fd; border: 1px solid #c9d8ec; "
                           "border-radius: 4px; }")
        self.checker = checker
        self.question = QLabel(f"<b>Predict first:</b> {html.escape(question)}", self)
        self.question.setWordWrap(True)
        self.edit: QLineEdit | None = None
        self.combo: QComboBox | None = None
        row = QHBoxLayout()
        if choices:
            self.combo = QComboBox(self)
            self.set_choices(choices)
            row.addWidget(self.combo, 1)
        else:
            self.edit = QLineEdit(self)
            self.edit.setPlaceholderText("your prediction")
            self.edit.returnPressed.connect(self.check)
            row.addWidget(self.edit, 1)
        self.check_button = QPushButton("Check", self)
        self.check_button.clicked.connect(self.check)
        row.addWidget(self.check_button)
        self.feedback = QLabel(self)
        self.feedback.setWordWrap(True)
        self.feedback.hide()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(8, 6, 8, 6)
        lay.setSpacing(4)
        lay.addWidget(self.question)
        lay.addLayout(row)
        lay.addWidget(self.feedback)

    def set_choices(self, choices: Sequence[str]) -> None:
        if self.combo is not None:
            self.combo.clear()
            self.combo.addItem("(pick one)")
            self.combo.addItems(list(choices))

    def answer(self) -> Any:
        if self.combo is not None:
            return None if self.combo.currentIndex() <= 0 else self.combo.currentText()
        return self.edit.text()

    def check(self) -> None:
        a = self.answer()
        if a is None or a == "":
            self.say(False, "Make a prediction first.")
            return
        if self.edit is not None:
            try:
                a = float(parse_answer(a, ()))
            except StudioError as exc:
                self.say(False, str(exc))
                return
        try:
            ok, text = self.checker(a)
        except StudioError as exc:
            self.say(False, str(exc))
            return
        self.say(ok, ("Right. " if ok else "Not quite. ") + text)
        self.answered.emit(ok)

    def say(self, ok: bool, text: str) -> None:
        colour = theme.VALUE_HEX if ok else theme.ERROR.name()
        self.feedback.setText(f"<span style='color:{colour}'>{html.escape(text)}</span>")
        self.feedback.show()

    def reset(self) -> None:
        self.feedback.hide()
        if self.edit is not None:
            self.edit.clear()
        elif self.combo is not None:
            self.combo.setCurrentIndex(0)
