"""GroupNorm, InstanceNorm and DropConnect through the network builder and the Playground: real clicks and typing,
training on digits, and the DropConnect mask as a node of the graph the Playground hands to the editor."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt

from gui.labs.network_builder import NetworkBuilder
from gui.labs.playground import DIGITS, GRAPH_BATCH, PlaygroundLab
from simulator import Graph, Trace
from simulator.nn.layers import DropConnect, GroupNorm, InstanceNorm

LEFT = Qt.MouseButton.LeftButton


def click(qtbot, widget) -> None:
    qtbot.mouseClick(widget, LEFT)


def click_row(qtbot, builder: NetworkBuilder, row: int) -> None:
    t = builder.table
    rect = t.visualItemRect(t.item(row, 1))
    qtbot.mouseClick(t.viewport(), LEFT, pos=rect.center())


def type_into(qtbot, spin, text: str) -> None:
    spin.setFocus()
    spin.lineEdit().selectAll()
    qtbot.keyClicks(spin.lineEdit(), text)
    qtbot.keyClick(spin.lineEdit(), Qt.Key.Key_Return)


def column(builder: NetworkBuilder, col: int) -> list[str]:
    return [builder.table.item(r, col).text() for r in range(builder.table.rowCount())]


def test_the_builder_adds_each_new_layer_with_clicks_and_its_form(qtbot):
    b = NetworkBuilder(input_shape=(1, 8, 8), num_classes=10)
    qtbot.addWidget(b)
    b.resize(420, 700)
    b.show()
    qtbot.waitExposed(b)
    b.preset_combo.setCurrentText("Small CNN")
    click(qtbot, b.preset_button)
    assert column(b, 1)[1:] == ["Conv2d 16@3x3 p1", "ReLU", "MaxPool 2x2/2", "Flatten", "Linear 10 (output)"]

    # GroupNorm after the conv: 16 channels in 2 groups by default; 3 groups cannot split 16 channels
    click_row(qtbot, b, 1)
    b.add_combo.setCurrentText("GroupNorm")
    click(qtbot, b.add_button)
    assert column(b, 1)[2] == "GroupNorm G=2" and column(b, 2)[2] == "16×8×8" and column(b, 3)[2] == "32"
    type_into(qtbot, b.field_widget("groups"), "3")
    assert not b.is_valid() and b.error_label.isVisible()
    assert "layer 2 (GroupNorm G=3): its input (16, 8, 8) has 16 channels, which do not split into 3" in \
        b.error_label.text()
    type_into(qtbot, b.field_widget("groups"), "4")
    assert b.is_valid() and b.error_label.isHidden() and column(b, 1)[2] == "GroupNorm G=4"

    # InstanceNorm below it
    b.add_combo.setCurrentText("InstanceNorm")
    click(qtbot, b.add_button)
    assert column(b, 1)[3] == "InstanceNorm" and column(b, 3)[3] == "32"
    assert b.field_widget("eps") is not None

    # DropConnect after Flatten: a Linear's parameters, p from its form
    click_row(qtbot, b, 6)
    assert column(b, 1)[6] == "Flatten"
    b.add_combo.setCurrentText("DropConnect")
    click(qtbot, b.add_button)
    assert column(b, 1)[7] == "DropConnect 32 p=0.5" and column(b, 2)[7] == "32"
    assert column(b, 3)[7] == f"{256 * 32 + 32:,}"
    type_into(qtbot, b.field_widget("p"), "0.25")
    type_into(qtbot, b.field_widget("n"), "48")
    assert column(b, 1)[7] == "DropConnect 48 p=0.25" and column(b, 3)[8] == f"{48 * 10 + 10:,}"
    net = b.build_network(seed=0)
    assert [s for s in net.specs if isinstance(s, (GroupNorm, InstanceNorm, DropConnect))] == [
        GroupNorm(4), InstanceNorm(), DropConnect(48, 0.25)]
    assert [l.name for l in net.layers][1:3] == ["gn1", "in1"] and net.layers[6].name == "fc1"
    # and a DropConnect on an image is refused, naming it
    click_row(qtbot, b, 1)
    b.add_combo.setCurrentText("DropConnect")
    click(qtbot, b.add_button)
    assert not b.is_valid() and "layer 2 (DropConnect 32 p=0.5)" in b.error_label.text()


def test_the_playground_trains_the_new_preset_on_digits_and_shows_the_mask_in_the_graph(qtbot):
    lab = PlaygroundLab()
    qtbot.addWidget(lab)
    lab.resize(1500, 900)
    lab.show()
    qtbot.waitExposed(lab)
    try:
        lab.dataset_combo.setCurrentText(DIGITS)
        lab.points_box.setValue(600)
        lab.epochs_box.setValue(3)
        qtbot.waitUntil(lambda: not lab._rebuild_timer.isActive() and lab.state == "idle"
                        and lab.builder.input_shape == (1, 8, 8), timeout=10_000)
        lab.builder.preset_combo.setCurrentText("CNN + GroupNorm + DropConnect")
        click(qtbot, lab.builder.preset_button)
        qtbot.waitUntil(lambda: not lab._rebuild_timer.isActive() and lab.state == "idle", timeout=5000)
        kinds = [type(s).__name__ for s in lab.builder.hidden_layers()]
        assert kinds == ["Conv2d", "GroupNorm", "Activation", "MaxPool", "Flatten", "DropConnect", "Activation"]
        click(qtbot, lab.train_button)
        qtbot.waitUntil(lambda: lab.state in ("finished", "failed"), timeout=60_000)
        assert lab.state == "finished", lab.error_message
        loss = np.asarray(lab.curves["loss"].getData()[1])
        assert loss.size > 10 and np.all(np.isfinite(loss))
        assert loss[-10:].mean() < 0.5 * loss[:5].mean()
        qtbot.waitUntil(lambda: lab.visuals is not None and lab.visuals.iteration == lab.iteration, timeout=5000)
        n_val = len(lab.training_data()[2])
        assert np.trace(lab.visuals.confusion) > 0.7 * n_val

        got = []
        lab.graph_requested.connect(got.append)
        click(qtbot, lab.graph_button)
        assert len(got) == 1 and isinstance(got[0], Graph)
        g = got[0]
        nodes = {n.id: n for n in g.nodes}
        assert nodes["gn1"].op == "groupnorm" and nodes["gn1"].attrs["groups"] == 4
        mask = nodes["fc1_mask"]                       # the DropConnect mask: a visible constant node
        assert mask.kind == "const" and mask.value.shape == (256, 64)
        assert set(np.unique(mask.value)) == {0.0, 1.0 / 0.7}
        assert {e.src for e in g.edges if e.dst == "fc1_w_dropped"} == {"fc1_w", "fc1_mask"}
        trace = Trace(g)
        assert np.asarray(g.node("x").value).shape == (GRAPH_BATCH, 1, 8, 8)
        assert trace.forward_count > 0 and np.isfinite(float(trace.state_at(trace.forward_count).values[trace.output]))
    finally:
        lab.close_lab()
