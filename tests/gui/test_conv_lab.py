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
    for i in range(4):
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
