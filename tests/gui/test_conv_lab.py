"""The convolution lab driven through its widgets: geometry boxes (including refusals), the animation, backward and
max-pool grids, and the filters on real images."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from gui.labs.conv_lab import ConvLab
from simulator.functional import layers
from simulator.labs.conv_mechanics import FILTERS


@pytest.fixture
def lab(qtbot):
    w = ConvLab()
    qtbot.addWidget(w)
    w.resize(1400, 860)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.close_lab()


def wait_ready(qtbot, lab):
    """The photos, digits and conv kernels come from the lab's prepare job, off the UI thread."""
    qtbot.waitUntil(lab.is_ready, timeout=60_000)


def click(qtbot, button):
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def test_play_to_the_end_fills_the_output_with_conv_forward(qtbot, lab):
    lab.speed_slider.setValue(20)
    assert lab.frame_index == -1 and not lab.output_view.shown.any()
    click(qtbot, lab.play_button)
    assert lab.is_playing()
    qtbot.waitUntil(lambda: not lab.is_playing(), timeout=20_000)
    assert lab.frame_index == len(lab.frames) - 1 == 24
    out, _ = layers.conv_forward(lab.x[None, None], lab.w[None, None], np.array([lab.b]), 1, 1)
    np.testing.assert_allclose(lab.output_view.values, out[0, 0])
    assert lab.output_view.shown.all()
    assert lab.dot_label.text() == lab.frames[-1].text and lab.progress_label.text() == "cell 25 of 25"
    click(qtbot, lab.reset_button)
    assert lab.frame_index == -1 and not lab.output_view.shown.any() and lab.input_view.windows == []


def test_step_moves_the_window_and_writes_the_dot_product(qtbot, lab):
    lab.s_box.setValue(2)             # 5x5, F 3, P 1, S 2 -> 3x3
    assert "= 3" in lab.size_label.text() and len(lab.frames) == 9
    for _ in range(5):
        click(qtbot, lab.step_button)
    f = lab.frames[4]
    assert f.out_pos == (1, 1) and f.origin == (2, 2)
    assert lab.input_view.windows[0][:4] == (2, 2, 3, 3)
    assert lab.output_view.shown.sum() == 5
    assert lab.dot_label.text() == f.text
    assert float(f.text.rsplit("= ", 1)[1]) == pytest.approx(lab.output_view.values[1, 1])


def test_non_integer_geometry_is_refused_without_crashing(qtbot, lab):
    lab.s_box.setValue(2)
    lab.n_box.setValue(6)             # (6 - 3 + 2)/2 + 1 = 3.5
    text = lab.size_label.text()
    assert "(6 - 3 + 2·1)/2 + 1 = 5/2 + 1 = 3.5" in text and "not an integer" in text
    assert lab.frames == [] and not lab.play_button.isEnabled() and not lab.step_button.isEnabled()
    assert lab.output_view.values.size == 0 and lab.backward is None
    lab.play()                        # the API refuses quietly too
    assert not lab.is_playing()
    lab.f_box.setValue(7)
    lab.p_box.setValue(0)             # filter larger than the input
    assert "does not fit" in lab.size_label.text()
    lab.p_box.setValue(1)             # (6 - 7 + 2)/2 -> 1/2: still refused
    lab.f_box.setValue(2)             # (6 - 2 + 2)/2 + 1 = 4
    assert lab.play_button.isEnabled() and len(lab.frames) == 16 and "output 4×4" in lab.size_label.text()


def test_editing_cells_and_bias_changes_the_output(qtbot, lab):
    for _ in range(25):
        lab.step()
    before = lab.output_view.values.copy()
    rect = lab.input_view.cell_rect(2, 2)          # padded (2, 2) = input (1, 1)
    x_before = lab.x[1, 1]
    qtbot.mouseClick(lab.input_view, Qt.MouseButton.LeftButton, pos=rect.center().toPoint())
    assert lab.x[1, 1] == x_before + 1
    assert not np.array_equal(before, lab.output_view.values)
    w_before = lab.w[0, 0]
    qtbot.mouseClick(lab.filter_view, Qt.MouseButton.RightButton, pos=lab.filter_view.cell_rect(0, 0).center().toPoint())
    assert lab.w[0, 0] == w_before - 1
    before = lab.output_view.values.copy()
    lab.bias_box.setValue(2.0)
    np.testing.assert_allclose(lab.output_view.values, before + 2.0)
    click(qtbot, lab.random_input_button)
    lab.n_box.setValue(7)
    assert lab.x.shape == (7, 7) and lab.input_view.values.shape == (9, 9)


def test_backward_grids_equal_conv_backward(qtbot, lab):
    wait_ready(qtbot, lab)
    lab.tabs.setCurrentIndex(1)
    lab.s_box.setValue(2)
    out, cache = layers.conv_forward(lab.x[None, None], lab.w[None, None], np.array([lab.b]), 2, 1)
    dx, dw, db = layers.conv_backward(lab.dout[None, None], cache)
    np.testing.assert_allclose(lab.bw_dw_view.values, dw[0, 0], atol=1e-12)
    np.testing.assert_allclose(lab.bw_dx_view.values[1:-1, 1:-1], dx[0, 0], atol=1e-12)
    np.testing.assert_allclose(lab.bw_flip_view.values, lab.w[::-1, ::-1])
    assert lab.bw_full_view.values.shape == (5 + 2 * 2, 5 + 2 * 2)      # dilated 5x5, padded by F - 1 = 2
    assert f"= {db[0]:g}" in lab.db_label.text() and "agrees" in lab.check_label.text()
    # editing the upstream gradient by clicking changes dW and dX
    dw_before = lab.bw_dw_view.values.copy()
    qtbot.mouseClick(lab.bw_dout_view, Qt.MouseButton.LeftButton,
                     pos=lab.bw_dout_view.cell_rect(0, 0).center().toPoint())
    assert not np.array_equal(dw_before, lab.bw_dw_view.values)
    d0 = lab.dout.copy()
    for _ in range(3):
        click(qtbot, lab.random_dout_button)
        if not np.array_equal(d0, lab.dout):
            break
    assert not np.array_equal(d0, lab.dout)


def test_max_pool_routes_gradients_to_the_argmax(qtbot, lab):
    lab.tabs.setCurrentIndex(2)
    assert lab.controls.isHidden()
    for n, size, stride in ((4, 2, 2), (6, 3, 3), (5, 3, 1)):
        lab.pool_n_box.setValue(n)
        lab.pool_size_box.setValue(size)
        lab.pool_stride_box.setValue(stride)
        x = lab.pool_x
        out, cache = layers.max_pool_forward(x[None, None], size, stride)
        np.testing.assert_array_equal(lab.pool_output_view.values, out[0, 0])
        ref = layers.max_pool_backward(lab.pool_dout[None, None], cache)[0, 0]
        np.testing.assert_allclose(lab.pool_dx_view.values, ref)
        # dout is positive, so the marked arg-max cells are exactly the cells with a gradient
        assert lab.pool_dx_view.marks == {(int(r), int(c)) for r, c in zip(*np.nonzero(ref))}
    before = lab.pool_x.copy()
    click(qtbot, lab.pool_random_button)
    assert not np.array_equal(before, lab.pool_x)
    lab.pool_n_box.setValue(4)
    lab.pool_size_box.setValue(3)
    lab.pool_stride_box.setValue(2)   # (4 - 3)/2: refused, not crashed
    assert "not an integer" in lab.pool_label.text() and lab.pool_output_view.values.size == 0


def test_filters_change_the_filtered_image(qtbot, lab):
    wait_ready(qtbot, lab)
    lab.tabs.setCurrentIndex(3)
    img0 = np.array(lab.filtered_item.image, copy=True)
    orig = np.array(lab.original_item.image, copy=True)
    assert max(orig.shape) == 120
    lab.filter_combo.setCurrentText("Gaussian blur")
    np.testing.assert_allclose(lab.kernel_view.values, FILTERS["Gaussian blur"])
    img1 = np.array(lab.filtered_item.image, copy=True)
    assert img1.shape != img0.shape or not np.array_equal(img0, img1)
    lab.filter_combo.setCurrentText("Identity")
    np.testing.assert_allclose(lab.filtered_item.image, orig, atol=1e-12)
    lab.image_combo.setCurrentText("digit (8x8)")
    assert lab.digit_box.isEnabled() and lab.original_item.image.shape == (8, 8)
    d0 = np.array(lab.original_item.image, copy=True)
    lab.digit_box.setValue(5)
    assert not np.array_equal(d0, lab.original_item.image)
    lab.filter_combo.setCurrentText("Vertical edges (Sobel x)")
    assert lab.filtered_item.image.shape == (8, 8, 3)       # signed output, drawn blue-white-red
    assert "Hubel" in " ".join(w.text() for w in lab.findChildren(type(lab.filter_caption)))


def test_lab_renders(qtbot, lab, tmp_path):
    wait_ready(qtbot, lab)
    for i in range(lab.tabs.count()):
        lab.tabs.setCurrentIndex(i)
        path = tmp_path / f"conv{i}.png"
        assert lab.grab().save(str(path)) and path.stat().st_size > 10_000


def type_value(qtbot, box, value) -> None:
    box.lineEdit().selectAll()
    qtbot.keyClicks(box.lineEdit(), str(value))
    qtbot.keyClick(box.lineEdit(), Qt.Key.Key_Return)


def test_main_path_typed_geometry_hint_then_stepping(qtbot, lab):
    assert lab.filters_stack.currentIndex() == 0 or lab.is_ready()      # "preparing…" until the job is done
    type_value(qtbot, lab.s_box, 2)
    type_value(qtbot, lab.n_box, 6)
    assert lab.model.layer.stride == 2 and lab.model.layer.n == 6 and lab.model.frames == []
    text = lab.size_label.text()
    assert "Try stride S = 1 (keeping P = 1)" in text and "e.g." not in text    # only a reachable fix
    type_value(qtbot, lab.s_box, 1)                                            # take the suggestion
    assert len(lab.model.frames) == 36 and lab.play_button.isEnabled()
    for _ in range(3):
        click(qtbot, lab.step_button)
    assert lab.model.frame_index == 2 and lab.dot_label.text() == lab.model.frames[2].text
    assert lab.progress_label.text() == "cell 3 of 36"
    wait_ready(qtbot, lab)
    assert lab.filters_stack.currentIndex() == 1 and "agrees" in lab.check_label.text()


# ================================================================================================ multi-channel tab

def click_tab(qtbot, tabs, title):
    bar = tabs.tabBar()
    index = next(i for i in range(tabs.count()) if tabs.tabText(i) == title)
    qtbot.mouseClick(bar, Qt.MouseButton.LeftButton, pos=bar.tabRect(index).center())
    assert tabs.currentIndex() == index


def _outlines(view):
    """(r, c, h, w) of the windows a grid outlines."""
    return [tuple(w[:4]) for w in view.windows]


def multi_forward(m):
    out, _ = layers.conv_forward(m.x[None], m.w, m.b, m.settings.stride, m.settings.pad)
    return out[0]


def test_multichannel_view_opened_by_clicks_steps_with_the_player(qtbot, make_window, tmp_path):
    w = make_window(tmp_path / "settings.ini")
    click_tab(qtbot, w.tabs, "Convolution")
    lab = w.labs["Convolution"]
    click_tab(qtbot, lab.tabs, "Multi-channel")
    mv = lab.multi_view
    assert mv.isVisible() and lab.controls.isHidden()
    m, bar = mv.model, mv.transport
    assert len(m.frames) == 2 * 5 * 5 and mv.player.count == 51 and len(mv.input_views) == 3
    assert mv.params_label.text() == "K·C·F·F + K = 2·3·3·3 + 2 = 56 parameters"
    for _ in range(28):
        click(qtbot, bar.step_button)
    f = m.frames[27]
    assert m.frame_index == 27 and (f.k, f.out_pos, f.origin) == (1, (0, 2), (0, 2))
    for c, v in enumerate(mv.input_views):          # the same window in every channel slice
        assert _outlines(v) == [(0, 2, 3, 3)]
        np.testing.assert_array_equal(v.values, np.pad(m.x[c], 1))
    for c, v in enumerate(mv.filter_views):         # the current filter, slice by slice, with its partial sum
        np.testing.assert_array_equal(v.values, m.w[1, c])
        assert v.footer.endswith(f"= {f.channel_texts[c].rsplit('= ', 1)[1]}")
    lines = mv.sum_label.text().split("\n")
    assert [ln.split(": ", 1)[1] for ln in lines] == list(f.channel_texts) + [f.text]
    assert float(f.text.rsplit("= ", 1)[1]) == pytest.approx(multi_forward(m)[1, 0, 2])
    assert mv.output_views[1].current and not mv.output_views[0].current
    assert _outlines(mv.output_views[1]) == [(0, 2, 1, 1)]
    assert mv.output_views[0].shown.all() and mv.output_views[1].shown.sum() == 3
    click(qtbot, bar.back_button)
    assert m.frame_index == 26 and _outlines(mv.input_views[2]) == [(0, 1, 3, 3)]
    qtbot.keyClick(bar.slider, Qt.Key.Key_End)         # scrub to the end: every map filled, equal to conv forward
    assert m.frame_index == 49
    for k, v in enumerate(mv.output_views):
        np.testing.assert_allclose(v.values, multi_forward(m)[k], atol=1e-12)
        assert v.shown.all()
    click(qtbot, bar.rewind_button)
    assert m.frame_index == -1 and not any(v.windows for v in mv.input_views)
    bar.speed_box.setValue(25)
    click(qtbot, bar.play_button)
    assert mv.player.is_playing()
    qtbot.waitUntil(lambda: not mv.player.is_playing(), timeout=10_000)
    assert m.frame_index == 49 and mv.sum_label.text().endswith(m.frames[-1].text)
    click_tab(qtbot, lab.tabs, "Forward")              # the other tabs are still there and work
    click(qtbot, lab.step_button)
    assert lab.model.frame_index == 0


def test_multichannel_changing_k_and_c_updates_the_maps(qtbot, lab):
    click_tab(qtbot, lab.tabs, "Multi-channel")
    mv = lab.multi_view
    m = mv.model
    w0 = m.w.copy()
    type_value(qtbot, mv.k_box, 4)
    assert m.settings.k == 4 and len(mv.output_views) == 4 and m.w.shape == (4, 3, 3, 3)
    np.testing.assert_array_equal(m.w[:2], w0)               # the first two filters and their maps stay
    assert mv.params_label.text() == "K·C·F·F + K = 4·3·3·3 + 4 = 112 parameters"
    assert "output   K×H'×W' = 4×5×5" in mv.shape_label.text()
    ref = multi_forward(m)
    for k, v in enumerate(mv.output_views):
        np.testing.assert_allclose(v.values, ref[k], atol=1e-12)
    type_value(qtbot, mv.c_box, 1)
    assert len(mv.input_views) == len(mv.filter_views) == 1 and m.w.shape == (4, 1, 3, 3)
    assert mv.params_label.text() == "K·C·F·F + K = 4·1·3·3 + 4 = 40 parameters"
    ref = multi_forward(m)
    for k, v in enumerate(mv.output_views):
        np.testing.assert_allclose(v.values, ref[k], atol=1e-12)
    for _ in range(3):
        click(qtbot, mv.transport.step_button)
    assert mv.sum_label.text().split("\n")[-1].split(": ", 1)[1] == m.frames[2].text
    # a geometry that does not tile: refused on screen with a reachable fix, the player off
    type_value(qtbot, mv.s_box, 2)
    type_value(qtbot, mv.n_box, 6)
    assert m.frames == [] and "Try stride S = 1 (keeping P = 1)" in mv.shape_label.text()
    assert not mv.transport.step_button.isEnabled() and all(v.values.size == 0 for v in mv.output_views)
    type_value(qtbot, mv.s_box, 1)
    assert len(m.frames) == 4 * 36 and mv.transport.step_button.isEnabled()
    before = m.w.copy()
    for _ in range(3):
        click(qtbot, mv.random_filters_button)
        if not np.array_equal(before, m.w):
            break
    assert not np.array_equal(before, m.w)
    np.testing.assert_allclose(mv.output_views[0].values, multi_forward(m)[0], atol=1e-12)


def test_multichannel_one_by_one_mixes_a_photos_channels(qtbot, lab):
    click_tab(qtbot, lab.tabs, "Multi-channel")
    mv = lab.multi_view
    m = mv.model
    type_value(qtbot, mv.c_box, 2)
    qtbot.keyClick(mv.source_combo, Qt.Key.Key_Down)        # a photo: C follows to 3 (R, G, B)
    assert m.photo is not None and m.settings.c == 3 and mv.c_box.value() == 3
    wait_ready(qtbot, lab)
    assert m.error == "" and m.channel_names() == ("R", "G", "B")
    type_value(qtbot, mv.n_box, 6)                          # a small input: the 1×1 demonstration enlarges it
    assert m.settings.n == 6 and m.x.shape == (3, 6, 6)
    assert [v.colours for v in mv.input_views] == ["R", "G", "B"]
    type_value(qtbot, mv.c_box, 2)                          # a photo with 2 channels: refused, with the fix
    assert "a photo has 3 channels" in mv.form.error.text() and mv.form.error.isVisible()
    assert m.settings.c == 3
    click(qtbot, mv.mix_button)
    assert m.settings.f == 1 and m.settings.k == 4 and mv.lower_stack.currentIndex() == 1
    assert m.settings.n == mv.n_box.value() == 32 and m.x.shape == (3, 32, 32)
    assert mv.params_label.text() == "K·C·F·F + K = 4·3·1·1 + 4 = 16 parameters"
    n = m.settings.n
    qtbot.keyClick(mv.transport.slider, Qt.Key.Key_End)
    grey = 0.299 * m.x[0] + 0.587 * m.x[1] + 0.114 * m.x[2]
    np.testing.assert_allclose(mv.output_views[0].values, grey, atol=1e-12)
    assert mv.output_views[0].colours == "grey" and "grey" in mv.output_views[0].title
    mv.player.seek(2 * n * n + n + 2)                       # filter 2, pixel (1, 1)
    f = m.frame
    assert (f.k, f.out_pos) == (2, (1, 1))
    np.testing.assert_array_equal(mv.mix_w_view.values, m.w[:, :, 0, 0])
    assert _outlines(mv.mix_w_view) == [(2, 0, 1, 3)]          # row k of W ...
    np.testing.assert_array_equal(mv.mix_x_view.values[:, 0], m.x[:, 1, 1])   # ... times the pixel's channels
    np.testing.assert_allclose(mv.mix_out_view.values[:, 0], m.w[:, :, 0, 0] @ m.x[:, 1, 1] + m.b, atol=1e-12)
    assert mv.mix_out_view.shown[:, 0].tolist() == [True, True, True, False]
    assert mv.sum_label.text().split("\n")[0] == f"R: {f.channel_texts[0]}"
    assert mv.mix_x_view.title == "x[:, 1, 1]"
    # with padding, a 1×1 window on the ring multiplies zeros: said so, not an index outside the input
    type_value(qtbot, mv.p_box, 1)
    n = m.settings.n + 2                                    # the output is as large as the padded input
    mv.player.seek(1)                                       # filter 0 on padded pixel (0, 0)
    assert m.frame.origin == (0, 0) and mv.mix_x_view.title == "padding (zeros)"
    assert not mv.mix_x_view.values.any() and mv.mix_out_view.values[0, 0] == m.b[0]
    assert mv.mix_x_view.width() >= mv.mix_x_view.title_width("padding (zeros)")    # the whole title fits
    mv.player.seek(n + 2)                                   # padded (1, 1): the input's pixel (0, 0)
    assert m.frame.origin == (1, 1) and mv.mix_x_view.title == "x[:, 0, 0]"
    np.testing.assert_array_equal(mv.mix_x_view.values[:, 0], m.x[:, 0, 0])
