"""Help that teaches the app: a "What am I seeing?" note per tab tied to the lecture it serves, the keyboard shortcuts
(read from the window's own actions, so the list is never out of date) and a first-start tour that points at the
parts of the window, skippable, shown once."""
from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Callable

from PySide6.QtCore import QPoint, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (QDialog, QFrame, QHBoxLayout, QLabel, QPushButton, QTableWidget, QTableWidgetItem,
                               QVBoxLayout, QWidget)

__all__ = ["TAB_NOTES", "ShortcutsDialog", "Tour", "TourStep", "TOUR_DONE_KEY", "shortcuts_of", "tab_note_html"]

TOUR_DONE_KEY = "help/tour_done"

# tab -> (the lectures it serves, what the learner is looking at and what to try)
TAB_NOTES: dict[str, tuple[str, str]] = {
    "Backprop": ("Lectures 4–5: backpropagation", "A computational graph. Each forward step computes one node from its "
                 "inputs (values in green above the wires); each backward step multiplies the upstream gradient by "
                 "the node's local gradient and sends the result down each input wire (gradients in red below). "
                 "Where a value feeds several nodes, its gradients add up. Try: step with → and read the chain-rule "
                 "panel; tick Quiz to predict each gradient first; Run → Gradient check compares with numbers."),
    "Playground": ("Lectures 6–8: training neural networks", "A network trained on toy 2-D points or on the digits, "
                   "with the loss, accuracy, learning rate and per-layer gradient norms drawn live, the decision "
                   "regions (points) or the confusion matrix, filters and activation maps (digits). Try: change the "
                   "optimizer or the rate and train again; What does my curve say? reads the run."),
    "Init / norm": ("Lecture 6–7: initialisation and normalisation", "Activations and gradients pushed through ten "
                    "layers: their spread per layer shows whether an initialisation keeps the signal alive "
                    "(Xavier for tanh, Kaiming for ReLU) or lets it vanish or explode; batch, layer, instance and "
                    "group norm compared on the same tensor; every activation and its derivative; why a constant "
                    "init never breaks symmetry; dying ReLUs and the 0.01 bias."),
    "Optimizers": ("Lecture 7–8: optimization and schedules", "Optimizers racing on a loss surface from the same "
                   "start, with their paths, loss curves and learning rates; the schedule designer draws step, "
                   "cosine, linear and inverse-sqrt schedules with warm-up. Try: the ravine, where SGD zig-zags and "
                   "momentum glides."),
    "Classifiers": ("Lectures 2–3: kNN and linear classifiers", "k-nearest neighbours and linear SVM / softmax "
                    "classifiers on 2-D points: decision regions, the loss surface of the weights, cross-validation "
                    "for k."),
    "Convolution": ("Lecture 5: convolutional networks", "A filter sliding over an image, one output cell per "
                    "position, with stride and padding; the output size (N − F + 2P) / S + 1; the backward pass as a "
                    "convolution too. Multi-channel: K filters each as deep as the input's C channels give K "
                    "output maps (K·C·F·F + K parameters); a 1×1 convolution mixes channels pixel by pixel."),
    "Interpretability": ("Lecture 8: visualising and understanding", "What a trained network looks at: saliency, "
                         "occlusion, Shapley values, maximally activating patches, class visualisation, adversarial "
                         "examples (targeted too) and the embedding of its last hidden layer."),
    "Self-supervised": ("Lecture 8 (the last): self-supervised learning", "Learning without labels: a pretext task "
                        "whose target comes from the data itself (the rotation a digit was turned by, its own pixels "
                        "through a bottleneck or behind a hole, the colour of a grey photo, the order of shuffled "
                        "tiles, the other view of the same digit) trains an encoder, drawn live with its loss and "
                        "what it predicts. Then the lecture's test: a linear classifier on the frozen features with "
                        "1, 5, 10 and 100% of the labels, against a random and a supervised encoder, and each "
                        "encoder's embedding with nearest neighbours. Try: contrastive, then Judge the features; "
                        "Fine-tune in the Playground sends the encoder on."),
    "Search": ("Lecture 6: hyperparameter search", "Grid and random search over the learning rate and weight decay, "
               "the sanity checks (initial loss ≈ ln C, overfitting a tiny set, a learning-rate sweep) and ensembles."),
}


def tab_note_html(tab: str) -> str:
    lecture, text = TAB_NOTES.get(tab, ("", "A part of Backprop Studio."))
    return (f"<h3>{html.escape(tab)}</h3><p style='color:#5b6270'>{html.escape(lecture)}</p>"
            f"<p>{html.escape(text)}</p><p>Help → Lessons (F1) has a guided lesson per lecture.</p>")


def shortcuts_of(window: QWidget) -> list[tuple[str, str]]:
    """(what it does, its keys) for every action of the window that has a shortcut, menu order, '&' removed."""
    seen, out = set(), []
    for action in window.findChildren(QAction):
        keys = action.shortcut()
        if keys.isEmpty() or not action.text():
            continue
        name = action.text().replace("&", "").rstrip("…").strip()
        key = keys.toString(QKeySequence.SequenceFormat.NativeText)
        if (name, key) not in seen:
            seen.add((name, key))
            out.append((name, key))
    return out


class ShortcutsDialog(QDialog):
    def __init__(self, window: QWidget):
        super().__init__(window)
        self.setWindowTitle("Keyboard shortcuts")
        rows = shortcuts_of(window)
        self.table = QTableWidget(len(rows), 2, self)
        self.table.setHorizontalHeaderLabels(["Action", "Keys"])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        for i, (name, key) in enumerate(rows):
            self.table.setItem(i, 0, QTableWidgetItem(name))
            self.table.setItem(i, 1, QTableWidgetItem(key))
        self.table.resizeColumnsToContents()
        self.table.horizontalHeader().setStretchLastSection(True)
        close = QPushButton("Close", self)
        close.clicked.connect(self.accept)
        lay = QVBoxLayout(self)
        lay.addWidget(self.table)
        lay.addWidget(close, 0, Qt.AlignmentFlag.AlignRight)
        self.resize(460, 520)


@dataclass(frozen=True)
class TourStep:
    target: Callable[[], QWidget]     # the widget the note points at (looked up when the step is shown)
    title: str
    text: str


class Tour(QFrame):
    """A note beside one part of the window at a time: Next, Back, Skip. ``finished`` when done or skipped."""

    finished = Signal()

    def __init__(self, window: QWidget, steps: list[TourStep]):
        super().__init__(window)
        self.window_, self.steps, self.index = window, steps, 0
        self.setObjectName("Tour")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setStyleSheet("QFrame#Tour { background: #fffbe6; border: 2px solid #e0b400; border-radius: 6px; }")
        self.title = QLabel(self)
        self.text = QLabel(self)
        self.text.setWordWrap(True)
        self.counter = QLabel(self)
        self.counter.setStyleSheet("color: #5b6270;")
        self.back_button = QPushButton("Back", self)
        self.next_button = QPushButton("Next", self)
        self.skip_button = QPushButton("Skip the tour", self)
        self.back_button.clicked.connect(lambda: self.show_step(self.index - 1))
        self.next_button.clicked.connect(self._next)
        self.skip_button.clicked.connect(self.finish)
        row = QHBoxLayout()
        row.addWidget(self.counter)
        row.addStretch(1)
        row.addWidget(self.skip_button)
        row.addWidget(self.back_button)
        row.addWidget(self.next_button)
        lay = QVBoxLayout(self)
        lay.addWidget(self.title)
        lay.addWidget(self.text)
        lay.addLayout(row)
        self.setFixedWidth(380)

    def start(self) -> None:
        self.show_step(0)
        self.show()
        self.raise_()

    def show_step(self, i: int) -> None:
        self.index = max(0, min(i, len(self.steps) - 1))
        step = self.steps[self.index]
        self.title.setText(f"<b>{html.escape(step.title)}</b>")
        self.text.setText(html.escape(step.text))
        self.counter.setText(f"{self.index + 1} / {len(self.steps)}")
        self.back_button.setEnabled(self.index > 0)
        self.next_button.setText("Done" if self.index == len(self.steps) - 1 else "Next")
        self.adjustSize()
        self._place(step.target())

    def _place(self, target: QWidget | None) -> None:
        """Below the target if there is room, else above it; always inside the window."""
        w = self.window_
        if target is None or not target.isVisible():
            pos = QPoint((w.width() - self.width()) // 2, (w.height() - self.height()) // 2)
        else:
            top_left = target.mapTo(w, QPoint(0, 0))
            below = top_left.y() + min(target.height(), 60) + 8
            y = below if below + self.height() < w.height() else max(0, top_left.y() - self.height() - 8)
            pos = QPoint(top_left.x() + 20, y)
        pos.setX(max(8, min(pos.x(), w.width() - self.width() - 8)))
        pos.setY(max(8, min(pos.y(), w.height() - self.height() - 8)))
        self.move(pos)

    def _next(self) -> None:
        if self.index == len(self.steps) - 1:
            self.finish()
        else:
            self.show_step(self.index + 1)

    def finish(self) -> None:
        self.hide()
        self.finished.emit()
        self.deleteLater()
