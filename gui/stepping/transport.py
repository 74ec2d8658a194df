"""The transport bar: reset, step back, play/pause, step forward, speed, a scrubber over the trace, the step label."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QGridLayout, QHBoxLayout, QLabel, QSlider, QStyle, QToolButton, QWidget

from gui.forms import param_widget
from gui.stepping.player import StepPlayer
from simulator.engine.trace import UPDATE_LR


class TransportBar(QWidget):
    def __init__(self, player: StepPlayer, parent: QWidget | None = None):
        super().__init__(parent)
        self.player = player
        self.setObjectName("TransportBar")
        style = self.style()

        def button(icon, tip, slot):
            b = QToolButton(self)
            b.setIcon(style.standardIcon(icon))
            b.setToolTip(tip)
            b.setAutoRaise(True)
            b.clicked.connect(slot)
            return b
        self.reset_button = button(QStyle.SP_MediaSkipBackward, "Reset to the start (Home)", player.reset)
        self.back_button = button(QStyle.SP_MediaSeekBackward, "Step back (Left)", player.step_back)
        self.play_button = button(QStyle.SP_MediaPlay, "Play / pause (Space)", player.toggle)
        self.forward_button = button(QStyle.SP_MediaSeekForward, "Step forward (Right)", player.step_forward)
        self.end_button = button(QStyle.SP_MediaSkipForward, "Jump to the end (End)", player.to_end)

        self.scrubber = QSlider(Qt.Horizontal, self)
        self.scrubber.setToolTip("Scrub through the forward and backward passes")
        self.scrubber.setMinimumWidth(100)
        self.scrubber.valueChanged.connect(self._on_scrub)
        self.step_label = QLabel(self)
        self.step_label.setMinimumWidth(150)
        self.step_label.setObjectName("StepLabel")
        self.speed = QSlider(Qt.Horizontal, self)
        self.speed.setRange(1, 16)
        self.speed.setValue(4)
        self.speed.setFixedWidth(90)
        self.speed.setToolTip("Playback speed")
        self.speed.valueChanged.connect(lambda v: player.set_speed(v / 2.0))
        speed_label = QLabel("Speed", self)
        speed_label.setObjectName("Muted")
        self.update_check = QCheckBox("Update, lr", self)
        self.update_check.setToolTip("After the backward pass, step through p ← p − lr · dL/dp for every trainable "
                                     "parameter (make a leaf a Parameter in the inspector)")
        self.lr_box = param_widget(UPDATE_LR, self)       # range, default and help declared in the engine
        self.lr_box.setEnabled(False)
        self.update_check.toggled.connect(self._on_update_changed)
        self.lr_box.valueChanged.connect(self._on_update_changed)
        self.quiz_check = QCheckBox("Quiz", self)
        self.quiz_check.setToolTip("Predict, then reveal: each backward step asks for its gradients before showing "
                                   "them")

        # One row when there is room; the options (update, quiz, speed) move to a second row when the bar is narrow
        # (a lesson or wide docks beside a 1280-pixel window), so nothing is ever squeezed or clipped.
        self.main_row = QHBoxLayout()
        self.main_row.setSpacing(4)
        for b in (self.reset_button, self.back_button, self.play_button, self.forward_button, self.end_button):
            self.main_row.addWidget(b)
        self.main_row.addSpacing(8)
        self.main_row.addWidget(self.step_label)
        self.main_row.addWidget(self.scrubber, 1)
        self.options = QWidget(self)
        opt = QHBoxLayout(self.options)
        opt.setContentsMargins(0, 0, 0, 0)
        opt.setSpacing(4)
        opt.addSpacing(12)
        opt.addWidget(self.update_check)
        opt.addWidget(self.lr_box)
        opt.addSpacing(12)
        opt.addWidget(self.quiz_check)
        opt.addSpacing(12)
        opt.addWidget(speed_label)
        opt.addWidget(self.speed)
        self.grid = QGridLayout(self)
        self.grid.setContentsMargins(8, 4, 8, 4)
        self.grid.setVerticalSpacing(2)
        self.grid.addLayout(self.main_row, 0, 0)
        self.two_rows = False
        self.grid.addWidget(self.options, 0, 1)

        player.position_changed.connect(self._on_position_changed)
        player.trace_rebuilt.connect(self._on_trace_changed)
        player.trace_failed.connect(self._on_trace_changed)
        player.busy_changed.connect(self._on_trace_changed)   # recomputing: the controls wait with the player
        player.playing_changed.connect(self._on_playing_changed)
        self._on_trace_changed()

    def minimumSizeHint(self):  # noqa: N802
        """The two-row bar's minimum width: a narrow window (or wide docks) never has to make room for one row."""
        hint = super().minimumSizeHint()
        m = self.grid.contentsMargins()
        width = max(self.main_row.minimumSize().width(), self.options.minimumSizeHint().width()) + m.left() + m.right()
        hint.setWidth(width)
        return hint

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        # the room the one-row bar needs: the buttons, the label, a usable scrubber and the options
        need = self.main_row.sizeHint().width() + 160 + self.options.sizeHint().width() + 16
        two = self.width() < need
        if two != self.two_rows:
            self.two_rows = two
            self.grid.removeWidget(self.options)
            self.grid.addWidget(self.options, 1, 0, Qt.AlignmentFlag.AlignRight) if two else \
                self.grid.addWidget(self.options, 0, 1)

    def _on_scrub(self, k: int) -> None:
        self.player.seek(k)
        if self.player.position != k:          # held back (the quiz's question): the handle shows where it stopped
            self._on_position_changed(self.player.position)

    def _on_update_changed(self, *_) -> None:
        on = self.update_check.isChecked()
        self.lr_box.setEnabled(on)
        self.player.set_learning_rate(self.lr_box.value() if on else None)

    def _on_trace_changed(self, *_) -> None:
        self.scrubber.blockSignals(True)
        self.scrubber.setRange(0, self.player.length)
        self.scrubber.setValue(self.player.position)
        self.scrubber.blockSignals(False)
        enabled = self.player.trace is not None and not self.player.busy
        for w in (self.reset_button, self.back_button, self.play_button, self.forward_button, self.end_button,
                  self.scrubber):
            w.setEnabled(enabled)
        self._on_position_changed(self.player.position)

    def _on_position_changed(self, k: int) -> None:
        self.scrubber.blockSignals(True)
        self.scrubber.setValue(k)
        self.scrubber.blockSignals(False)
        full = self.player.label()
        # the bar keeps room for the scrubber: at step 0 it says "Ready · 17 steps", the breakdown is the tooltip
        short = f"Ready · {self.player.length} steps" if k == 0 and self.player.trace is not None else full
        self.step_label.setText(short)
        self.step_label.setToolTip(full)

    def _on_playing_changed(self, playing: bool) -> None:
        self.play_button.setIcon(self.style().standardIcon(QStyle.SP_MediaPause if playing else QStyle.SP_MediaPlay))
