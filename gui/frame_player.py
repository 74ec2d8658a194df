"""One frame-player for every play/pause/step widget: a QObject with ONE QTimer walking frames 0 .. count-1, and the
small transport bar that drives it (back, play/pause, step, rewind, a slider, a speed box and "step t / n").

    player = FramePlayer(self, interval_ms=16)      # ~60 ticks a second
    player.frame_changed.connect(self._show_frame)  # the only thing a view draws from
    player.set_count(n_steps + 1)                   # frames 0..n_steps; the frame is kept (clamped)
    bar = FrameTransportBar(player, unit="step", speed_suffix=" steps/frame")

The player knows nothing of what a frame is (a race's step, a convolution's window position, an engine event):
``frame_changed(i)`` is emitted whenever the frame changes, whatever moved it (the timer, a button, the slider or
``seek``). Playing advances ``speed`` frames per tick and stops on the last frame (or wraps, with ``loop=True``);
pressing play on the last frame starts again from 0. Stepping pauses first.

Users: the Optimizers race (with ``FrameTransportBar``), the convolution lab's animation (frames = output cells
computed, 0 = none yet) and the Backprop tab's ``gui.stepping.player.StepPlayer`` (frames = trace positions; its
own bar is ``gui.stepping.transport.TransportBar``).
"""
from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import (QHBoxLayout, QLabel, QPushButton, QSizePolicy, QSlider, QSpinBox, QVBoxLayout,
                               QWidget)

__all__ = ["FramePlayer", "FrameTransportBar"]


class FramePlayer(QObject):
    """Frames 0 .. count-1 on one timer: ``play``, ``pause``, ``toggle``, ``step(k)``, ``back(k)``, ``seek(i)``,
    ``rewind``, ``set_speed`` (frames per tick), ``set_interval`` (ms per tick), ``set_count``, ``follow`` (a model
    that moved by itself)."""

    frame_changed = Signal(int)
    playing_changed = Signal(bool)
    count_changed = Signal(int)

    def __init__(self, parent: QObject | None = None, count: int = 0, interval_ms: int = 16, speed: int = 1,
                 loop: bool = False):
        super().__init__(parent)
        self._count = max(0, int(count))
        self._frame = 0
        self._speed = max(1, int(speed))
        self.loop = bool(loop)
        self.timer = QTimer(self)
        self.timer.setInterval(max(1, int(interval_ms)))
        self.timer.timeout.connect(self._on_tick)
        # barrier(current, target) -> the farthest frame forward the player may go (the stepper's quiz stops at an
        # unanswered question); None: no limit. Going back is never limited.
        self.barrier: Callable[[int, int], int] | None = None
        # True while follow() moves the player: the frame_changed it emits echoes the model, not the user
        self.following = False

    # ------------------------------------------------------------------------------------------------- state
    @property
    def count(self) -> int:
        return self._count

    @property
    def frame(self) -> int:
        return self._frame

    @property
    def last(self) -> int:
        """The last frame (0 when there are none)."""
        return max(0, self._count - 1)

    @property
    def speed(self) -> int:
        return self._speed

    @property
    def interval_ms(self) -> int:
        return self.timer.interval()

    def is_playing(self) -> bool:
        return self.timer.isActive()

    # ------------------------------------------------------------------------------------------------ control
    def set_count(self, count: int) -> None:
        """Frames are now 0 .. count-1; the current frame is kept when it still exists, else clamped."""
        count = max(0, int(count))
        if count != self._count:
            self._count = count
            self.count_changed.emit(count)
        if count == 0:
            self.pause()
        self.seek(self._frame)

    def follow(self, items: int, index: int) -> None:
        """Follow a model that moved by itself, whose frame 0 shows none of its ``items`` yet and frame k the first
        k (a convolution's output cells): frames 0 .. items (none at all without items), on frame ``index`` + 1
        (the model's index of the last item shown; -1: none). ``following`` is True while the frame_changed this
        emits is delivered, so a view that moves its model to the player's frame can ignore its own echo."""
        self.following = True
        try:
            self.set_count(items + 1 if items else 0)
            self.seek(index + 1)
        finally:
            self.following = False

    def play(self) -> None:
        if self._count <= 1:
            return
        if self._frame >= self.last:
            self.seek(0)
        if not self.timer.isActive():
            self.timer.start()
            self.playing_changed.emit(True)

    def pause(self) -> None:
        if self.timer.isActive():
            self.timer.stop()
            self.playing_changed.emit(False)

    def toggle(self) -> None:
        self.pause() if self.is_playing() else self.play()

    def step(self, k: int = 1) -> None:
        """Pause, then k frames forward (clamped to the last)."""
        self.pause()
        self.seek(self._frame + int(k))

    def back(self, k: int = 1) -> None:
        """Pause, then k frames back (clamped to 0)."""
        self.pause()
        self.seek(self._frame - int(k))

    def rewind(self) -> None:
        """Pause and go to frame 0."""
        self.pause()
        self.seek(0)

    def seek(self, frame: int) -> None:
        """Show ``frame`` (clamped to 0 .. last); ``frame_changed`` fires if it changed."""
        frame = min(max(int(frame), 0), self.last)
        if self.barrier is not None and frame > self._frame:
            frame = max(self._frame, min(frame, int(self.barrier(self._frame, frame))))
        if frame != self._frame:
            self._frame = frame
            self.frame_changed.emit(frame)

    def set_speed(self, frames_per_tick: int) -> None:
        self._speed = max(1, int(frames_per_tick))

    def set_interval(self, ms: int) -> None:
        self.timer.setInterval(max(1, int(ms)))

    def _on_tick(self) -> None:
        nxt = self._frame + self._speed
        if self.barrier is not None and self.barrier(self._frame, min(nxt, self.last)) < min(nxt, self.last):
            self.seek(nxt)                   # as far as the barrier allows, then wait there
            self.pause()
            return
        if nxt >= self.last:
            if not self.loop:
                self.seek(self.last)        # the last frame is shown while still playing, then playback stops
                self.pause()
                return
            nxt = 0 if self._frame >= self.last else self.last   # the last frame is shown once, then frame 0
        self.seek(nxt)


class FrameTransportBar(QWidget):
    """Back, play/pause, step, rewind, a slider over the frames, "unit t / n" and a speed box, all driving one
    FramePlayer and following it. Children: back_button, play_button, step_button, rewind_button, slider, label,
    speed_box. ``offset`` is added to frame numbers in the label (frames 0..n shown as 0..n by default)."""

    def __init__(self, player: FramePlayer, unit: str = "frame", speed_suffix: str = " frames/tick",
                 max_speed: int = 1000, parent: QWidget | None = None):
        super().__init__(parent)
        self.player = player
        self.unit = unit
        self.back_button = QPushButton("◀")
        self.back_button.setToolTip(f"One {unit} back")
        self.play_button = QPushButton("▶ Play")
        self.play_button.setToolTip("Play / pause")
        self.step_button = QPushButton("Step")
        self.step_button.setToolTip(f"One {unit} forward")
        self.rewind_button = QPushButton("⟲")
        self.rewind_button.setToolTip(f"Back to {unit} 0")
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, player.last)
        self.label = QLabel()
        self.label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.label.setMinimumWidth(self.label.fontMetrics().horizontalAdvance(f"{unit} 00000 / 00000") + 4)
        self.speed_box = QSpinBox()
        self.speed_box.setRange(1, max_speed)
        self.speed_box.setValue(player.speed)
        self.speed_box.setSuffix(speed_suffix)
        self.speed_box.setToolTip("How many frames each tick of playback advances")
        self.speed_box.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)

        # two short rows, so the bar fits a narrow control column: buttons and speed; then slider and position
        for b in (self.back_button, self.rewind_button):
            b.setFixedWidth(max(32, b.fontMetrics().horizontalAdvance(b.text()) + 20))
        buttons = QHBoxLayout()
        buttons.setContentsMargins(0, 0, 0, 0)
        for b in (self.rewind_button, self.back_button, self.play_button, self.step_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        buttons.addWidget(self.speed_box)
        scrub = QHBoxLayout()
        scrub.setContentsMargins(0, 0, 0, 0)
        scrub.addWidget(self.slider, 1)
        scrub.addWidget(self.label)
        root = QVBoxLayout(self)
        root.setContentsMargins(0, 0, 0, 0)
        root.addLayout(buttons)
        root.addLayout(scrub)

        self.back_button.clicked.connect(lambda: player.back())
        self.play_button.clicked.connect(player.toggle)
        self.step_button.clicked.connect(lambda: player.step())
        self.rewind_button.clicked.connect(player.rewind)
        self.slider.valueChanged.connect(self._on_slider_moved)
        self.speed_box.valueChanged.connect(player.set_speed)
        player.frame_changed.connect(self._on_frame_changed)
        player.count_changed.connect(self._on_count_changed)
        player.playing_changed.connect(self._on_playing_changed)
        self._on_count_changed(player.count)

    def _on_slider_moved(self, value: int) -> None:
        if value != self.player.frame:
            self.player.pause()
            self.player.seek(value)

    def _on_frame_changed(self, frame: int) -> None:
        if self.slider.value() != frame:
            self.slider.blockSignals(True)
            self.slider.setValue(frame)
            self.slider.blockSignals(False)
        self.label.setText(f"{self.unit} {frame} / {self.player.last}")

    def _on_count_changed(self, count: int) -> None:
        self.slider.blockSignals(True)
        self.slider.setRange(0, self.player.last)
        self.slider.setValue(self.player.frame)
        self.slider.blockSignals(False)
        self.label.setText(f"{self.unit} {self.player.frame} / {self.player.last}")
        enabled = count > 1
        for w in (self.back_button, self.play_button, self.step_button, self.rewind_button, self.slider):
            w.setEnabled(enabled)

    def _on_playing_changed(self, playing: bool) -> None:
        self.play_button.setText("❚❚ Pause" if playing else "▶ Play")
