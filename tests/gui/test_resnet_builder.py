"""Residual blocks and fractional max pooling in the network builder and the Playground, driven through real widgets:
the add button, the block's own form, the skip connection drawn beside the block, training on the digits with the
1-draw vs averaged accuracy shown."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor

from gui import theme
from gui.labs.network_builder import SKIP_ROLE, NetworkBuilder
from gui.labs.playground import DIGITS, PlaygroundLab
from simulator.nn.layers import FractionalMaxPool, ResidualBlock

LEFT = Qt.MouseButton.LeftButton


def column(b: NetworkBuilder, col: int) -> list[str]:
    return [b.table.item(r, col).text() for r in range(b.table.rowCount())]


def add(qtbot, b: NetworkBuilder, kind: str) -> None:
    b.add_combo.setCurrentText(kind)
    qtbot.mouseClick(b.add_button, LEFT)


@pytest.fixture
def builder(qtbot):
    b = NetworkBuilder(input_shape=(1, 8, 8), num_classes=10)
    qtbot.addWidget(b)
    b.resize(420, 700)
    b.show()
    qtbot.waitExposed(b)
    b.load_preset("Small CNN")              # conv 16, ReLU, max pool, flatten
    return b


def test_adding_a_residual_block_shows_its_skip_and_its_settings(qtbot, builder):
    b = builder
    b.select_layer(1)                        # below the ReLU
    add(qtbot, b, "ResidualBlock")
    assert b.selected_layer() == 2
    assert column(b, 1)[3] == "ResBlock  ↳ skip" and column(b, 2)[3] == "16×8×8"
    item = b.table.item(3, 1)
    assert item.data(SKIP_ROLE) == "identity" and "relu(F(x) + skip(x))" in item.toolTip()
    # the block's form: one editor per declared field, and its two paths in words
    for name in ("width", "kernel", "stride", "batch_norm", "p", "mode"):
        assert b.field_widget(name) is not None, name
    note = b.findChild(type(b.form_title), "skip_note")
    assert "conv 3×3 → BN → ReLU → conv 3×3 → BN" in note.text() and "skip: identity" in note.text()
    # a wider, strided block: the skip becomes a projection, the shapes follow
    b.field_widget("width").setValue(24)
    b.field_widget("stride").setValue(2)
    b.field_widget("p").setValue(0.2)
    mode = b.field_widget("mode")
    mode.setCurrentIndex(mode.findData("batch"))
    assert column(b, 1)[3] == "ResBlock 24 s2 p0.2  ↳ skip"
    assert b.table.item(3, 1).data(SKIP_ROLE) == "1×1 conv s2" and "skip: 1×1 conv s2" in b.table.item(3, 1).toolTip()
    assert column(b, 2)[3:] == ["24×4×4", "24×2×2", "96", "10"]
    net = b.build_network(seed=0)
    assert net.specs[2] == ResidualBlock(width=24, stride=2, p=0.2, mode="batch")
    assert "res1.proj.w" in net.params and net.params["res1.conv1.w"].shape == (24, 16, 3, 3)
    # a bad probability never reaches the stack: our error, shown in red
    b.field_widget("p").setValue(1.0)
    assert "stochastic depth p must be < 1" in b.error_label.text() and b.error_label.isVisible()
    assert b.hidden_layers()[2].p == 0.2


def test_the_skip_bracket_is_drawn_beside_the_block(qtbot, builder):
    b = builder
    b.select_layer(1)
    add(qtbot, b, "ResidualBlock")
    b.table.clearSelection()                 # the selection colour would hide the row's own colours
    qtbot.wait(50)
    image = b.table.viewport().grab().toImage()
    rect = b.table.visualItemRect(b.table.item(3, 1))
    other = b.table.visualItemRect(b.table.item(2, 1))

    def accent_pixels(r):
        n = 0
        for x in range(r.center().x(), r.right()):       # the bracket sits at the cell's right end
            for y in range(r.top(), r.bottom()):
                c = QColor(image.pixel(x, y))
                n += abs(c.red() - theme.ACCENT.red()) + abs(c.green() - theme.ACCENT.green()) \
                    + abs(c.blue() - theme.ACCENT.blue()) < 90
        return n
    assert accent_pixels(rect) > 15 and accent_pixels(other) == 0


def test_adding_a_fractional_pool_in_place_of_max_pooling(qtbot, builder):
    b = builder
    b.select_layer(2)                        # the MaxPool
    qtbot.mouseClick(b.remove_button, LEFT)
    b.select_layer(1)
    add(qtbot, b, "FractionalMaxPool")
    assert column(b, 1)[3] == "FracMaxPool ×0.707 · 4 draws" and column(b, 2)[3] == "16×5×5"
    b.field_widget("ratio").setValue(0.8)
    b.field_widget("draws").setValue(6)
    assert column(b, 2)[3:] == ["16×6×6", "576", "10"]
    assert b.build_network().specs[2] == FractionalMaxPool(0.8, draws=6)
    b.field_widget("ratio").setValue(0.5)     # outside (1/2, 1): refused with our message
    assert "ratio must be > 0.5" in b.error_label.text()
    assert b.hidden_layers()[2].ratio == 0.8


def test_playground_trains_a_small_resnet_and_shows_one_draw_against_the_average(qtbot):
    lab = PlaygroundLab()
    qtbot.addWidget(lab)
    lab.resize(1500, 900)
    lab.show()
    qtbot.waitExposed(lab)
    try:
        lab.dataset_combo.setCurrentText(DIGITS)
        lab.points_box.setValue(600)
        lab.epochs_box.setValue(2)
        qtbot.waitUntil(lambda: not lab._rebuild_timer.isActive() and lab.state == "idle", timeout=20_000)
        lab.builder.preset_combo.setCurrentText("Small ResNet")
        qtbot.mouseClick(lab.builder.preset_button, LEFT)
        assert [type(s).__name__ for s in lab.builder.hidden_layers()] == [
            "Conv2d", "BatchNorm", "Activation", "ResidualBlock", "FractionalMaxPool", "Flatten"]
        qtbot.waitUntil(lambda: not lab._rebuild_timer.isActive() and lab.state == "idle", timeout=20_000)
        qtbot.mouseClick(lab.train_button, LEFT)
        qtbot.waitUntil(lambda: lab.state in ("finished", "failed"), timeout=60_000)
        assert lab.state == "finished", lab.error_message
        qtbot.waitUntil(lambda: lab.visuals is not None and lab.visuals.iteration == lab.iteration, timeout=20_000)
        draws, one, averaged = lab.visuals.draws_accuracy
        net = lab.session.network
        Xv, yv = lab.training_data()[2:]
        assert draws == 4 and averaged == pytest.approx(np.mean(net.predict(Xv) == yv))
        assert one == pytest.approx(np.mean(np.argmax(net.forward(Xv, "eval", seed=0), 1) == yv))
        assert lab.draws_label.isVisible()
        assert f"1 region draw {one:.1%}" in lab.draws_label.text()
        assert f"averaged over 4 draws {averaged:.1%}" in lab.draws_label.text()
    finally:
        lab.close_lab()
