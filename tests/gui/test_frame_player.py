"""The shared frame-player: one timer walking frames, and the transport bar driving it by real clicks."""
from __future__ import annotations

from PySide6.QtCore import Qt

from gui.frame_player import FramePlayer, TransportBar


def make(qtbot, count=11, **kw):
    player = FramePlayer(count=count, interval_ms=5, **kw)
    seen = []
    player.frame_changed.connect(seen.append)
    return player, seen


def test_seek_step_back_clamp_and_emit_only_on_change(qtbot):
    p, seen = make(qtbot)
    assert (p.count, p.frame, p.last) == (11, 0, 10)
    p.step()
    p.step(3)
    p.back()
    p.seek(99)
    p.seek(10)                       # no change: no signal
    p.back(50)
    p.seek(-5)
    assert seen == [1, 4, 3, 10, 0]
    p.set_count(3)                   # frame 0 still exists
    p.seek(2)
    p.set_count(2)                   # frame 2 does not: clamped to the new last
    assert p.frame == 1 and seen[-2:] == [2, 1]
    p.set_count(0)
    assert p.frame == 0 and p.last == 0


def test_play_walks_to_the_last_frame_and_stops(qtbot):
    p, seen = make(qtbot, speed=3)
    playing = []
    p.playing_changed.connect(playing.append)
    p.play()
    assert p.is_playing()
    qtbot.waitUntil(lambda: not p.is_playing(), timeout=3000)
    assert seen == [3, 6, 9, 10] and p.frame == 10 and playing == [True, False]
    p.play()                         # from the end: starts again at 0
    assert seen[-1] == 0 and p.is_playing()
    p.step()                         # stepping pauses
    assert not p.is_playing() and p.frame == 1


def test_loop_wraps_after_showing_the_last_frame(qtbot):
    p, seen = make(qtbot, count=4, speed=2, loop=True)
    p.play()
    qtbot.waitUntil(lambda: len(seen) >= 5, timeout=3000)
    p.pause()
    assert seen[:5] == [2, 3, 0, 2, 3]


def test_one_frame_or_none_cannot_play(qtbot):
    p, _ = make(qtbot, count=1)
    p.play()
    assert not p.is_playing()


def test_transport_bar_by_real_clicks(qtbot):
    p, seen = make(qtbot, count=101)
    bar = TransportBar(p, unit="step", speed_suffix=" steps/frame")
    qtbot.addWidget(bar)
    bar.show()
    assert bar.label.text() == "step 0 / 100" and bar.slider.maximum() == 100
    qtbot.mouseClick(bar.step_button, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(bar.step_button, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(bar.back_button, Qt.MouseButton.LeftButton)
    assert p.frame == 1 and bar.slider.value() == 1 and bar.label.text() == "step 1 / 100"
    bar.slider.setValue(40)                              # dragging the slider seeks
    assert p.frame == 40 and seen[-1] == 40
    bar.speed_box.setValue(30)
    assert p.speed == 30
    qtbot.mouseClick(bar.play_button, Qt.MouseButton.LeftButton)
    assert p.is_playing() and bar.play_button.text() == "❚❚ Pause"
    qtbot.waitUntil(lambda: p.frame == 100 and not p.is_playing(), timeout=3000)
    assert bar.play_button.text() == "▶ Play" and bar.slider.value() == 100 and bar.label.text() == "step 100 / 100"
    qtbot.mouseClick(bar.rewind_button, Qt.MouseButton.LeftButton)
    assert p.frame == 0 and bar.slider.value() == 0
    p.set_count(1)
    assert not bar.play_button.isEnabled() and bar.label.text() == "step 0 / 0"
