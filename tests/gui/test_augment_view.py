"""The augmentation preview driven through its controls: each transform changes the grid, all off means originals,
seeds replay, Shuffle redraws, mixup/CutMix captions match the soft labels datasets.mixup/cutmix return."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt

from gui.labs.augment_view import AugmentDialog, AugmentView, soft_label_text
from gui.labs.playground import DIGITS, PlaygroundLab
from simulator.core.params import params_of
from simulator.data import datasets

SHOTS = Path("/tmp/backprop_augment")
TERM = re.compile(r"^(\d\.\d\d)·(\d+)$")


@pytest.fixture
def view(qtbot):
    v = AugmentView()
    qtbot.addWidget(v)
    v.resize(1400, 860)
    v.show()
    qtbot.waitExposed(v)
    return v


def all_off(v: AugmentView) -> None:
    for c in (v.flip_check, v.shift_check, v.rotate_check, v.bc_check, v.cutout_check):
        c.setChecked(False)
    v.set_mix("none")


def augmented(v: AugmentView) -> np.ndarray:
    return np.array(v.cells[:, 1:], copy=True)


def parse_caption(text: str) -> list[tuple[float, int]]:
    terms = []
    for part in text.split(" + "):
        m = TERM.match(part)
        assert m, f"caption {text!r} is not 'w·k + w·k'"
        terms.append((float(m.group(1)), int(m.group(2))))
    return terms


def test_loads_digits_and_shows_a_full_grid(view):
    rows, cols = view.cells.shape[:2]
    assert (rows, cols) == (6, 6) and view.cells.shape[2:] == (1, 8, 8)
    assert view.cell_labels.shape == (6, 6, 10)
    # the first column is the source images, each caption names its label, and the rows are distinct classes
    np.testing.assert_array_equal(view.cells[:, 0], view.batch_images[:6])
    classes = [int(c.split()[-1]) for c in (row[0] for row in view.captions)]
    assert classes == list(view.batch_labels[:6]) and len(set(classes)) == 6
    # the cells on screen hold what the view computed
    for r in range(rows):
        for j in range(cols):
            np.testing.assert_array_equal(view.cell_views[r][j].image, view.cells[r, j])


def test_controls_are_built_from_the_declared_settings(view):
    """Every range, default, label and help text comes from datasets.AugmentSettings; the view writes none."""
    assert view.settings() == datasets.AugmentSettings()
    boxes = {"flip": view.flip_box, "shift": view.shift_box, "degrees": view.rotate_box,
             "brightness": view.brightness_box, "contrast": view.contrast_box, "cutout": view.cutout_box,
             "mixup_alpha": view.mixup_alpha_box, "cutmix_alpha": view.cutmix_alpha_box, "seed": view.seed_box}
    checks = {"flip_on": view.flip_check, "shift_on": view.shift_check, "rotate_on": view.rotate_check,
              "bc_on": view.bc_check, "cutout_on": view.cutout_check}
    for p in params_of(datasets.AugmentSettings):
        if p.name in boxes:
            b = boxes[p.name]
            assert (b.minimum(), b.maximum(), b.value()) == (p.low, p.high, p.default), p.name
            assert p.doc in b.toolTip()
        elif p.name in checks:
            c = checks[p.name]
            assert c.text() == p.title and c.isChecked() == p.default and c.toolTip() == p.doc
        else:
            assert p.name == "mix" and list(view.mix_radios) == list(p.choices)
            assert [r.text() for r in view.mix_radios.values()] == list(p.choice_labels)
    # what the learner sets is what settings() says
    view.rotate_box.setValue(30.0)
    view.cutout_check.setChecked(True)
    view.set_mix("cutmix")
    assert view.settings() == datasets.AugmentSettings(degrees=30.0, cutout_on=True, mix="cutmix")


def test_everything_off_gives_the_originals(view):
    all_off(view)
    s = view.settings()
    assert s.augmenter() == datasets.Augmenter() and s.mix == "none"
    for j in range(1, view.cells.shape[1]):
        np.testing.assert_array_equal(view.cells[:, j], view.cells[:, 0])
    assert all(cap == row[0] for row in view.captions for cap in row)
    assert "nothing" in view.pipeline_label.text()


@pytest.mark.parametrize("name", ["flip", "shift", "rotate", "bc", "cutout"])
def test_each_transform_changes_the_grid_and_keeps_labels(view, name):
    all_off(view)
    base = augmented(view)
    check = getattr(view, f"{name}_check")
    if name == "flip":
        view.flip_box.setValue(1.0)            # every image mirrored: certainly a change
    check.setChecked(True)
    on = augmented(view)
    assert not np.array_equal(on, base)
    if name == "flip":
        np.testing.assert_array_equal(on, base[..., ::-1])
    # label-preserving: every caption is still the source's label
    assert all(cap == row[0] for row in view.captions for cap in row)
    np.testing.assert_array_equal(view.cell_labels[:, 1:], np.repeat(view.cell_labels[:, :1], 5, axis=1))
    # the parameter is live too
    box = {"flip": view.flip_box, "shift": view.shift_box, "rotate": view.rotate_box, "bc": view.contrast_box,
           "cutout": view.cutout_box}[name]
    if name == "flip":
        box.setValue(0.0)
        np.testing.assert_array_equal(augmented(view), base)
    else:
        box.setValue(box.maximum())
        assert not np.array_equal(augmented(view), on)
    check.setChecked(False)
    np.testing.assert_array_equal(augmented(view), base)


def test_same_seed_same_grid_and_shuffle_redraws(qtbot, view):
    view.cutout_check.setChecked(True)
    first = augmented(view)
    view.seed_box.setValue(view.seed_box.value())       # no change, no new grid
    np.testing.assert_array_equal(augmented(view), first)
    other = AugmentView()                                # a second view with the same settings and seed
    qtbot.addWidget(other)
    other.cutout_check.setChecked(True)
    np.testing.assert_array_equal(augmented(other), first)
    seed = view.seed_box.value()
    qtbot.mouseClick(view.shuffle_button, Qt.MouseButton.LeftButton)
    assert view.seed_box.value() == seed + 1
    shuffled = augmented(view)
    assert not np.array_equal(shuffled, first)
    view.seed_box.setValue(seed)                         # back to the old seed: the old grid
    np.testing.assert_array_equal(augmented(view), first)
    # "Other images" changes the sources, not the randomness
    src = view.cells[:, 0].copy()
    qtbot.mouseClick(view.images_button, Qt.MouseButton.LeftButton)
    assert not np.array_equal(view.cells[:, 0], src)


@pytest.mark.parametrize("mode", ["mixup", "cutmix"])
def test_mixing_captions_are_the_soft_labels_from_datasets(view, mode):
    all_off(view)
    view.set_mix(mode)
    alpha_box = view.mixup_alpha_box if mode == "mixup" else view.cutmix_alpha_box
    alpha_box.setValue(1.0)
    assert view.settings().mix == mode and view.settings().alpha == 1.0
    fn = datasets.mixup if mode == "mixup" else datasets.cutmix
    seed, x, y, rows = view.seed_box.value(), view.batch_images, view.batch_labels, view.cells.shape[0]
    mixed_any = False
    for j in range(1, view.cells.shape[1]):
        # replay column j straight from the data-set functions
        xm, ym = fn(x, y, 10, 1.0, np.random.default_rng([seed, j]))
        np.testing.assert_allclose(view.cells[:, j], xm[:rows])
        np.testing.assert_allclose(view.cell_labels[:, j], ym[:rows])
        for r in range(rows):
            text = view.captions[r][j]
            assert text == soft_label_text(ym[r])
            terms = parse_caption(text)
            assert 1 <= len(terms) <= 2
            assert abs(sum(w for w, _ in terms) - 1.0) <= 0.015
            top = np.argsort(-ym[r], kind="stable")[:len(terms)]
            assert [k for _, k in terms] == list(top)
            for w, k in terms:
                assert abs(w - ym[r, k]) <= 0.005 + 1e-9     # two decimals, rounded
            mixed_any |= len(terms) == 2
    assert mixed_any
    # the mixed images differ from the sources, and "none" brings hard labels back
    assert not np.array_equal(augmented(view), np.repeat(view.cells[:, :1], 5, axis=1))
    view.set_mix("none")
    assert all(cap.startswith("label ") for row in view.captions for cap in row)


def test_soft_label_text():
    assert soft_label_text(np.array([0.0, 0.38, 0.0, 0.62])) == "0.62·3 + 0.38·1"
    assert soft_label_text(np.eye(10)[4]) == "1.00·4"


def test_set_data_with_other_images_and_few_rows(qtbot):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (4, 1, 12, 12))
    v = AugmentView(x, np.array([0, 1, 1, 2]))
    qtbot.addWidget(v)
    v.resize(900, 600)
    v.show()
    assert v.cells.shape == (4, 6, 1, 12, 12) and v.cell_labels.shape == (4, 6, 3)
    assert len(v.captions) == 4 and not v.cell_views[5][0].isVisible()
    v.set_mix("cutmix")
    v.rotate_check.setChecked(True)
    v.grab()                                             # paints without error
    with pytest.raises(ValueError):
        v.set_data(np.zeros((3, 8, 8)), [0, 1, 2])


def test_renders_polished(qtbot, view):
    SHOTS.mkdir(exist_ok=True)
    view.cutout_check.setChecked(True)
    assert view.grab().save(str(SHOTS / "augment_view.png"))
    view.set_mix("mixup")
    path = SHOTS / "augment_view_mixup.png"
    assert view.grab().save(str(path)) and path.stat().st_size > 10_000


def test_playground_button_opens_a_non_modal_preview(qtbot, monkeypatch):
    from simulator.data import datasets
    monkeypatch.setattr(datasets, "_DIGITS", None)      # not loaded yet: the click starts a job, never blocks
    lab = PlaygroundLab()
    qtbot.addWidget(lab)
    lab.resize(1500, 900)
    lab.show()
    qtbot.waitExposed(lab)
    try:
        qtbot.mouseClick(lab.augment_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: lab.augment_dialog is not None and lab.augment_dialog.isVisible(), timeout=30_000)
        assert lab.augment_button.isEnabled()
        lab.dataset_combo.setCurrentText(DIGITS)
        dlg = lab.augment_dialog
        assert isinstance(dlg, AugmentDialog) and dlg.isVisible() and not dlg.isModal()
        assert dlg.view.images.shape[1:] == (1, 8, 8) and len(dlg.view.images) == 1797
        qtbot.mouseClick(lab.augment_button, Qt.MouseButton.LeftButton)   # raises the same window
        assert lab.augment_dialog is dlg
        SHOTS.mkdir(exist_ok=True)
        assert lab.grab().save(str(SHOTS / "playground.png"))
        assert dlg.grab().save(str(SHOTS / "playground_dialog.png"))
        dlg.close()
    finally:
        lab.close_lab()
