"""The shared frame-player: one timer walking frames, and the transport bar driving it by real clicks."""
from __future__ import annotations

from PySide6.QtCore import Qt

from gui.frame_player import FramePlayer, FrameTransportBar


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
    bar = FrameTransportBar(p, unit="step", speed_suffix=" steps/frame")
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


# ---- the three play/pause/step widgets share this one player --------------------------------------------------

def test_conv_lab_animation_is_a_frame_player_driven_by_real_clicks(qtbot):
    from gui.labs.conv_lab import ConvLab
    lab = ConvLab()
    qtbot.addWidget(lab)
    lab.show()
    try:
        p = lab.player
        assert isinstance(p, FramePlayer)
        assert p.count == len(lab.frames) + 1 == 26 and p.frame == 0 and lab.frame_index == -1
        qtbot.mouseClick(lab.step_button, Qt.MouseButton.LeftButton)
        qtbot.mouseClick(lab.step_button, Qt.MouseButton.LeftButton)
        assert p.frame == 2 and lab.frame_index == 1 and lab.output_view.shown.sum() == 2
        assert lab.progress_label.text() == "cell 2 of 25"
        lab.speed_slider.setValue(20)
        assert p.interval_ms == 90
        qtbot.mouseClick(lab.play_button, Qt.MouseButton.LeftButton)
        assert p.is_playing() and p.timer.isActive() and lab.is_playing()
        qtbot.waitUntil(lambda: p.frame >= 4, timeout=5000)
        qtbot.mouseClick(lab.pause_button, Qt.MouseButton.LeftButton)
        assert not p.is_playing() and not p.timer.isActive()
        assert lab.frame_index == p.frame - 1 and lab.output_view.shown.sum() == p.frame
        p.seek(20)                                        # any frame, in one move, drawn once
        assert lab.frame_index == 19 and lab.dot_label.text() == lab.frames[19].text
        qtbot.mouseClick(lab.play_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: not p.is_playing(), timeout=5000)
        assert p.frame == 25 and lab.frame_index == 24 and lab.output_view.shown.all()
        qtbot.mouseClick(lab.reset_button, Qt.MouseButton.LeftButton)
        assert p.frame == 0 and lab.frame_index == -1 and not lab.output_view.shown.any()
        # the geometry decides the frames: a new layer means a new count, nothing computed
        lab.s_box.setValue(2)
        assert p.count == 10 and p.frame == 0
        lab.n_box.setValue(6)                             # not an integer output size: no frames, cannot play
        assert p.count == 0
        lab.play()
        assert not p.is_playing()
    finally:
        lab.close_lab()


def test_stepper_position_and_timer_are_a_frame_players(qtbot):
    from gui.stepping.player import StepPlayer
    from gui.stepping.transport import TransportBar
    from simulator.graphs.expression import parse_expression
    graph = parse_expression("(x + y) * z")
    player = StepPlayer(graph)
    bar = TransportBar(player)
    qtbot.addWidget(bar)
    bar.show()
    try:
        fp = player.frame_player
        assert isinstance(fp, FramePlayer) and fp.parent() is player
        n = player.length
        assert n == 5 and fp.count == n + 1 and player.position == fp.frame == 0
        positions = []
        player.position_changed.connect(positions.append)
        qtbot.mouseClick(bar.forward_button, Qt.MouseButton.LeftButton)
        qtbot.mouseClick(bar.forward_button, Qt.MouseButton.LeftButton)
        qtbot.mouseClick(bar.back_button, Qt.MouseButton.LeftButton)
        assert positions == [1, 2, 1] and fp.frame == 1 and bar.scrubber.value() == 1
        player.set_speed(20)
        assert fp.interval_ms == 50
        qtbot.mouseClick(bar.play_button, Qt.MouseButton.LeftButton)
        assert player.playing and fp.timer.isActive()
        qtbot.waitUntil(lambda: not player.playing, timeout=5000)
        assert player.position == n and positions[-n + 1:] == list(range(2, n + 1))
        qtbot.mouseClick(bar.play_button, Qt.MouseButton.LeftButton)      # from the end: again from 0
        assert player.playing and player.position == 0
        qtbot.mouseClick(bar.play_button, Qt.MouseButton.LeftButton)      # pause
        assert not player.playing and not fp.timer.isActive()
        player.to_end()
        # a rebuild keeps (or clamps) the position; listeners hear trace_rebuilt, then ONE position_changed
        heard = []
        player.trace_rebuilt.connect(lambda: heard.append("rebuilt"))
        player.position_changed.connect(lambda k: heard.append(k))
        graph.set_value("x", 3.0)
        player.flush()
        assert heard == ["rebuilt", n] and player.position == n
        heard.clear()
        player.set_learning_rate(0.1)                     # no parameters to update: same length, same position
        player.rebuild()
        assert heard.count("rebuilt") >= 1 and heard[-1] == player.position == fp.frame
        qtbot.mouseClick(bar.reset_button, Qt.MouseButton.LeftButton)
        assert player.position == 0 and fp.frame == 0
    finally:
        player.close()


def test_follow_moves_the_player_to_a_model_s_frame_and_marks_its_own_echo(qtbot):
    """follow(items, index): frames 0 .. items (frame 0: none shown), on index + 1; the frame_changed it emits
    arrives with ``following`` set, a seek by the user without it."""
    p, seen = make(qtbot, count=0)
    echoes = []
    p.frame_changed.connect(lambda f: echoes.append((f, p.following)))
    p.play()
    p.follow(6, 2)                   # 6 output cells, the first three shown
    assert (p.count, p.frame, p.following) == (7, 3, False)
    p.follow(6, -1)                  # none shown
    p.seek(5)                        # the user
    p.follow(0, -1)                  # no cells (an invalid geometry): no frames, and playing stops
    assert (p.count, p.frame, p.is_playing()) == (0, 0, False)
    assert echoes == [(3, True), (0, True), (5, False), (0, True)] and not p.following
