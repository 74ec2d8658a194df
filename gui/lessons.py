"""Lessons in the window: the browser (shipped lessons and a teacher's own files) and the lesson panel (a dock beside
the tabs: the step's text, its questions with their checks, Back / Next), with progress kept in the settings.

The lesson model is ``simulator.labs.lessons`` (no Qt); the window applies each step's state through
``MainWindow.apply_lesson_step`` (the tab, the graph, the position, the quiz).
"""
from __future__ import annotations

import html
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QButtonGroup, QDialog, QDialogButtonBox, QFileDialog, QFrame, QHBoxLayout, QLabel,
                               QLineEdit, QListWidget, QListWidgetItem, QPushButton, QRadioButton, QScrollArea,
                               QVBoxLayout, QWidget)

from gui import theme
from simulator.labs.lessons import Lesson, LessonError, LessonRun, available_lessons, load_lesson

__all__ = ["LessonBrowser", "LessonPanel", "completed_steps", "progress_key"]


def progress_key(lesson: Lesson) -> str:
    return f"lessons/{lesson.name}/done"


class _QuestionBox(QFrame):
    """One question: the ask, a number box or the choices, Check, and what the check said."""

    checked = Signal(int, bool)

    def __init__(self, run: LessonRun, j: int, parent: QWidget | None = None):
        super().__init__(parent)
        self.run, self.j = run, j
        q = run.step.questions[j]
        self.setObjectName("LessonQuestion")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 6, 0, 6)
        ask = QLabel(f"<b>{html.escape(q.ask)}</b>", self)
        ask.setTextFormat(Qt.TextFormat.RichText)
        ask.setWordWrap(True)
        lay.addWidget(ask)
        self.edit: QLineEdit | None = None
        self.group: QButtonGroup | None = None
        row = QHBoxLayout()
        if q.choices:
            self.group = QButtonGroup(self)
            col = QVBoxLayout()
            for k, text in enumerate(q.choices, start=1):
                b = QRadioButton(self)               # the choice's words wrap in a label beside it
                b.setAccessibleName(text)
                self.group.addButton(b, k)
                label = _ChoiceLabel(text, b, self)
                line = QHBoxLayout()
                line.setSpacing(4)
                line.addWidget(b, 0, Qt.AlignmentFlag.AlignTop)
                line.addWidget(label, 1)
                col.addLayout(line)
            row.addLayout(col, 1)
        else:
            self.edit = QLineEdit(self)
            self.edit.setPlaceholderText("a number")
            self.edit.returnPressed.connect(self.check)
            row.addWidget(self.edit, 1)
        self.check_button = QPushButton("Check", self)
        self.check_button.clicked.connect(self.check)
        row.addWidget(self.check_button, 0, Qt.AlignmentFlag.AlignTop)
        lay.addLayout(row)
        self.feedback = QLabel(self)
        self.feedback.setTextFormat(Qt.TextFormat.RichText)
        self.feedback.setWordWrap(True)
        self.feedback.hide()
        lay.addWidget(self.feedback)

    def answer(self) -> Any:
        if self.group is not None:
            return self.group.checkedId() if self.group.checkedId() > 0 else None
        return self.edit.text()

    def check(self) -> None:
        ok, text = self.run.check(self.j, self.answer())
        colour = theme.VALUE_HEX if ok else theme.ERROR.name()
        self.feedback.setText(f"<span style='color:{colour}'>{html.escape(text)}</span>")
        self.feedback.show()
        self.checked.emit(self.j, ok)


class _ChoiceLabel(QLabel):
    """A multiple-choice answer's words, wrapped; clicking them picks the choice."""

    def __init__(self, text: str, button: QRadioButton, parent: QWidget):
        super().__init__(text, parent)
        self.button = button
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setWordWrap(True)
        self.setMinimumWidth(80)

    def mousePressEvent(self, event) -> None:  # noqa: N802  (Qt's name)
        self.button.setChecked(True)
        super().mousePressEvent(event)


class LessonPanel(QWidget):
    """The current lesson: header, step text, questions, Back / Next. ``step_shown(step)`` asks the window to set
    the step's state; ``closed`` when the learner leaves the lesson."""

    step_shown = Signal(object)
    closed = Signal()

    def __init__(self, settings: Any, parent: QWidget | None = None):
        super().__init__(parent)
        self.settings = settings
        self.run: LessonRun | None = None
        self.question_boxes: list[_QuestionBox] = []
        self.header = QLabel(self)
        self.header.setTextFormat(Qt.TextFormat.PlainText)     # a teacher's words, apostrophes and all
        self.header.setWordWrap(True)
        self.header.setObjectName("SectionHeader")
        self.where = QLabel(self)
        self.where.setObjectName("Muted")
        self.text = QLabel(self)
        self.text.setTextFormat(Qt.TextFormat.PlainText)
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.questions = QWidget(self)
        self.qlay = QVBoxLayout(self.questions)
        self.qlay.setContentsMargins(0, 0, 0, 0)
        body = QWidget(self)
        bl = QVBoxLayout(body)
        bl.setContentsMargins(10, 8, 10, 8)
        bl.addWidget(self.header)
        bl.addWidget(self.where)
        bl.addWidget(self.text)
        bl.addWidget(self.questions)
        bl.addStretch(1)
        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(body)
        self.back_button = QPushButton("◀ Back", self)
        self.back_button.clicked.connect(lambda: self.go(self.run.index - 1))
        self.next_button = QPushButton("Next ▶", self)
        self.next_button.clicked.connect(lambda: self.go(self.run.index + 1))
        self.close_button = QPushButton("Close lesson", self)
        self.close_button.clicked.connect(self.close_lesson)
        nav = QHBoxLayout()
        nav.setContentsMargins(10, 0, 10, 8)
        nav.addWidget(self.back_button)
        nav.addWidget(self.next_button)
        nav.addStretch(1)
        nav.addWidget(self.close_button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(scroll, 1)
        lay.addLayout(nav)

    # ---- progress ----------------------------------------------------------------------------------------------
    def _remember(self) -> None:
        """The current step counts as completed once its questions are answered right (a step without questions,
        once it has been read and left)."""
        r = self.run
        if r.step_answered:
            done = completed_steps(self.settings, r.lesson) | {r.index}
            self.settings.setValue(progress_key(r.lesson), ",".join(map(str, sorted(done))))

    def _where(self) -> str:
        r = self.run
        n = len(r.lesson.steps)
        done = len(completed_steps(self.settings, r.lesson))
        text = f"Lecture {r.lesson.lecture} · step {r.index + 1} of {n} · {done} of {n} completed"
        return text + (" · lesson finished" if done == n else "")

    # ---- showing ----------------------------------------------------------------------------------------------
    def start(self, lesson: Lesson) -> None:
        """Open a lesson where the learner left it: its first step not completed (the first step once all are)."""
        done = completed_steps(self.settings, lesson)
        first = next((i for i in range(len(lesson.steps)) if i not in done), 0)
        self.run = LessonRun(lesson, first)
        self._show()

    def go(self, index: int) -> None:
        if self.run is None:
            return
        self._remember()
        self.run.go(index)
        self._show()

    def _show(self) -> None:
        r = self.run
        st = r.step
        self.header.setText(r.lesson.title)
        n = len(r.lesson.steps)
        self.where.setText(self._where())
        self.text.setText(st.text)
        for b in self.question_boxes:
            b.hide()
            b.deleteLater()
        self.question_boxes = []
        for j in range(len(st.questions)):
            box = _QuestionBox(r, j, self.questions)
            box.checked.connect(self._on_checked)
            self.qlay.addWidget(box)
            self.question_boxes.append(box)
        self.back_button.setEnabled(r.index > 0)
        self.next_button.setEnabled(r.index < n - 1)
        self.next_button.setText("Next ▶")
        self.step_shown.emit(st)

    def _on_checked(self, _j: int, _ok: bool) -> None:
        self._remember()
        self.where.setText(self._where())

    def close_lesson(self) -> None:
        if self.run is not None:
            self._remember()
        self.run = None
        self.closed.emit()


class LessonBrowser(QDialog):
    """The shipped lessons, one per lecture, with the learner's progress; or a lesson file of one's own."""

    def __init__(self, settings: Any, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Lessons")
        self.settings = settings
        self.chosen: Lesson | None = None
        self.lessons = available_lessons()
        self.list = QListWidget(self)
        for lesson in self.lessons:
            done = len(completed_steps(settings, lesson))
            n = len(lesson.steps)
            mark = "✓ " if done >= n else ""
            item = QListWidgetItem(f"{mark}Lecture {lesson.lecture} · {lesson.title}  ({done} / {n} steps)\n"
                                   f"{lesson.summary}")
            item.setData(Qt.ItemDataRole.UserRole, lesson.name)
            self.list.addItem(item)
        self.list.setCurrentRow(0)
        self.list.itemDoubleClicked.connect(lambda *_: self.accept_current())
        self.error = QLabel(self)
        self.error.setObjectName("ErrorText")
        self.error.setWordWrap(True)
        self.error.hide()
        self.file_button = QPushButton("Open a lesson file…", self)
        self.file_button.setToolTip("A lesson written by your teacher (a .toml file; the README describes the format)")
        self.file_button.clicked.connect(self._open_file)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Open | QDialogButtonBox.StandardButton.Cancel, self)
        buttons.accepted.connect(self.accept_current)
        buttons.rejected.connect(self.reject)
        row = QHBoxLayout()
        row.addWidget(self.file_button)
        row.addStretch(1)
        row.addWidget(buttons)
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel("One lesson per lecture: read, set the lab up, answer, go on. Your progress is kept.",
                             self))
        lay.addWidget(self.list, 1)
        lay.addWidget(self.error)
        lay.addLayout(row)
        self.resize(640, 420)

    def accept_current(self) -> None:
        item = self.list.currentItem()
        if item is None:
            return
        name = item.data(Qt.ItemDataRole.UserRole)
        self.chosen = next(l for l in self.lessons if l.name == name)
        self.accept()

    def open_path(self, path: str) -> bool:
        try:
            self.chosen = load_lesson(path)
        except LessonError as exc:
            self.error.setText(str(exc))
            self.error.show()
            return False
        self.accept()
        return True

    def _open_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a lesson", "", "Lessons (*.toml)")
        if path:
            self.open_path(path)


def completed_steps(settings: Any, lesson: Lesson) -> set[int]:
    """The indices of the lesson's steps the learner completed (kept in the settings as '0,1,3')."""
    raw = settings.value(progress_key(lesson), "")
    out = set()
    for part in str(raw or "").split(","):
        if part.strip().isdigit() and int(part) < len(lesson.steps):
            out.add(int(part))
    return out
