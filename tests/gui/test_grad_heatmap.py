"""Gradient heatmaps carry their numbers as value heatmaps do: one formatter, one rule for when the numbers fit,
ink that reads on the diverging colours, and numbers that agree with the node's gradient and with the chain-rule
panel."""
import json
import re

import numpy as np
import pytest
from PySide6.QtCore import Qt

from gui.panels.tensor_view import (DARK_INK, LIGHT_INK, MIN_POINT_SIZE, TensorView, cell_text, contrast_ratio,
                                    ink_for)
from gui.theme import diverging_rgb


def _half_unit(text: str) -> float:
    """Half a unit in the last written place of a cell's text: what its rounding may be off by."""
    if "e" in text:
        return 0.5 * 10.0 ** int(text.split("e")[1])
    decimals = len(text.split(".")[1]) if "." in text else 0
    return 0.5 * 10.0 ** -decimals


def _assert_cells_hold(numbers, m: np.ndarray) -> None:
    """Every cell's text is the formatter's text for that entry, and within its rounding of the entry."""
    assert numbers is not None
    rows, cols = m.shape
    assert len(numbers.texts) == rows and all(len(r) == cols for r in numbers.texts)
    for i in range(rows):
        for j in range(cols):
            t = numbers.texts[i][j]
            assert t == cell_text(m[i, j], numbers.digits)
            assert abs(float(t) - m[i, j]) <= _half_unit(t) * (1 + 1e-9) + 1e-12, (t, m[i, j])


def test_cell_text_closed_cases():
    assert cell_text(0.0) == "0" and cell_text(-0.0) == "0"
    assert cell_text(0.25) == "0.25" and cell_text(-1.234) == "-1.2" and cell_text(12.3) == "12"
    assert cell_text(-0.0926) == "-0.093" and cell_text(0.0575, 1) == "0.06"
    assert cell_text(123.0) == "1e2" and cell_text(99.7) == "1e2"          # rounding carries 99.7 up: exponent form
    assert cell_text(0.004) == "4e-3" and cell_text(0.0099) == "1e-2" and cell_text(-3e-5) == "-3e-5"
    assert cell_text(1.5, 1) == "2" and cell_text(12.3, 1) == "1e1"


def test_ink_reads_on_every_colour_of_the_diverging_map():
    t = np.linspace(-1.0, 1.0, 2001)
    colours = diverging_rgb(t)
    worst = min(contrast_ratio(ink_for(c), c) for c in colours)
    assert worst >= 3.9                                     # the best of dark and white, at the crossover
    assert ink_for(colours[-1]) == LIGHT_INK and ink_for(colours[0]) == LIGHT_INK      # deep red, deep blue
    assert ink_for(colours[1000]) == DARK_INK                                           # white (zero)
    assert contrast_ratio((0, 0, 0), (255, 255, 255)) == pytest.approx(21.0)


def _select(qtbot, w, node: str) -> None:
    """A real click on the node in the editor, which the inspector follows."""
    item = w.scene.node_item(node)
    pos = w.view.mapFromScene(item.sceneBoundingRect().center())
    qtbot.mouseClick(w.view.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    assert w.inspector.node_id == node


def test_gradient_heatmaps_show_the_nodes_gradient_numbers(qtbot, make_window, tmp_path):
    w = make_window(tmp_path / "s.ini")
    w.open_example("two_layer_net")
    qtbot.mouseClick(w.transport.end_button, Qt.MouseButton.LeftButton)        # through the whole backward pass
    grads = w.player.state().grads
    for node in ("h1", "W1", "W2", "scores", "h"):
        _select(qtbot, w, node)
        view, value_view = w.inspector.views["grad"], w.inspector.views["value"]
        g = np.asarray(grads[node], dtype=np.float64)
        assert np.array_equal(view.value(), g)
        m = g.reshape(-1, g.shape[-1])
        numbers = view.numbers()
        _assert_cells_hold(numbers, m)
        assert numbers.point_size >= MIN_POINT_SIZE
        _assert_cells_hold(value_view.numbers(), value_view.value().reshape(-1, m.shape[-1]))
        # drawn, not only computed: every cell holds pixels of its ink colour
        img = view.grab().toImage()
        scale = img.width() / view.width()
        for i in range(m.shape[0]):
            for j in range(m.shape[1]):
                ink = numbers.inks[i][j]
                x0, y0 = j * numbers.cell_w, 2 + i * numbers.cell_h
                hits = 0
                for x in range(int((x0 + 3) * scale), int((x0 + numbers.cell_w - 3) * scale)):
                    for y in range(int((y0 + 6) * scale), int((y0 + numbers.cell_h - 6) * scale)):
                        c = img.pixelColor(x, y)
                        hits += max(abs(c.red() - ink[0]), abs(c.green() - ink[1]), abs(c.blue() - ink[2])) < 40
                assert hits >= 4, (node, i, j, numbers.texts[i][j])
    # the hidden layer's gradient has entries in (0.01, 0.1): written with two significant digits, as values are
    _select(qtbot, w, "h1")
    texts = [t for row in w.inspector.views["grad"].numbers().texts for t in row]
    assert w.inspector.views["grad"].numbers().digits == 2 and "0.058" in texts and "-0.093" in texts


def test_numbers_hide_only_when_cells_cannot_hold_them(qtbot):
    m = np.array([[0.0575, -0.0925, 0.0, 0.0, 0.0875, -0.3025, 0.485, 0.4125]])    # 8 gradient-like entries
    v = TensorView()
    qtbot.addWidget(v)
    v.set_value(m)
    v.resize(420, v.height())
    wide = v.numbers()
    _assert_cells_hold(wide, m)
    assert wide.digits == 2
    v.resize(60 + 8 * 30, v.height())                      # 30 px a cell: "-0.093" no longer fits, "-0.09" does
    narrow = v.numbers()
    _assert_cells_hold(narrow, m)
    assert narrow.digits == 1 and narrow.cell_w <= 30
    v.resize(60 + 8 * 12, v.height())                      # 12 px a cell: nothing readable fits
    assert v.numbers() is None
    # the same matrix shown as a value or as a gradient: one widget, one rule (the inspector uses it for both)
    values = TensorView()
    qtbot.addWidget(values)
    values.set_value(m.copy())
    for width in (420, 300, 156):
        v.resize(width, v.height())
        values.resize(width, values.height())
        a, b = v.numbers(), values.numbers()
        assert (a is None and b is None) or (a.texts == b.texts and a.point_size == b.point_size)
    big = TensorView()
    qtbot.addWidget(big)
    big.set_value(np.ones((9, 9)))                          # more than 8 a side: colour only, however wide
    big.resize(900, big.height())
    assert big.numbers() is None


def _numbers_after(text: str, name: str) -> np.ndarray:
    """The nested list written after 'name = ' in the chain-rule panel's text."""
    start = text.index(f"{name} = [") + len(name) + 3
    depth, end = 0, start
    for k, ch in enumerate(text[start:], start):
        depth += {"[": 1, "]": -1}.get(ch, 0)
        if depth == 0:
            end = k + 1
            break
    return np.array(json.loads(text[start:end]), dtype=np.float64)


def test_the_chain_rule_panel_and_the_heatmap_agree(qtbot, make_window, tmp_path):
    w = make_window(tmp_path / "s.ini")
    w.open_example("two_layer_net")
    t = w.player.trace
    k = next(i for i, e in enumerate(t.events) if e.phase == "backward" and e.kind == "op" and e.node == "L")
    while w.player.position < k + 1:
        qtbot.mouseClick(w.transport.forward_button, Qt.MouseButton.LeftButton)
    text = re.sub(r"<[^>]+>", "", w.chain_panel.body.text())
    panel = _numbers_after(text, "dL/dscores")
    _select(qtbot, w, "scores")
    heat = w.inspector.views["grad"].numbers()
    g = w.player.state().grads["scores"]
    np.testing.assert_allclose(panel, g, rtol=5e-4, atol=1e-12)               # the panel: 4 significant digits
    _assert_cells_hold(heat, g)                                                 # the heatmap: its own rounding
    for i in range(g.shape[0]):
        for j in range(g.shape[1]):
            h = heat.texts[i][j]
            assert abs(float(h) - panel[i, j]) <= _half_unit(h) + 5e-4 * abs(panel[i, j]) + 1e-12
    assert heat.digits == 2
