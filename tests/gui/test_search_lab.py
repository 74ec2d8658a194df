"""The search lab driven through its widgets: a real grid + random search with the requested number of trials,
cancel, Apply best, the three sanity checks and the ensemble."""
from __future__ import annotations

import math

import numpy as np
import pytest
from PySide6.QtCore import Qt

from gui.labs.search_lab import SearchLab
from simulator.labs.interpret import digits_data, digits_mlp


@pytest.fixture
def lab(qtbot):
    w = SearchLab()
    qtbot.addWidget(w)
    w.resize(1500, 900)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.close_lab()


def test_search_runs_the_requested_trials_and_applies_the_best(qtbot, lab):
    lab.trials_box.setValue(9)
    lab.epochs_box.setValue(1)
    with qtbot.waitSignal(lab.search_finished, timeout=60_000):
        qtbot.mouseClick(lab.run_button, Qt.MouseButton.LeftButton)
        assert lab.is_busy("search") and lab.cancel_button.isEnabled()
    assert len(lab.results["grid"]) == 9 and len(lab.results["random"]) == 9
    assert lab.progress.value() == 18 == lab.progress.maximum()
    # what is drawn is what was trained
    for kind in ("grid", "random"):
        xs, ys = lab.scatter_items[kind].getData()
        assert len(xs) == 9
        np.testing.assert_allclose(sorted(10 ** np.asarray(xs)), sorted(r.config["lr"] for r in lab.results[kind]))
        mx, my = lab.marginal_items[kind].getData()
        np.testing.assert_allclose(sorted(my), sorted(r.val_accuracy for r in lab.results[kind]))
    assert len({r.config["lr"] for r in lab.results["grid"]}) == 3
    assert len({r.config["lr"] for r in lab.results["random"]}) == 9
    assert "3 distinct lr" in lab.search_hint.text() and "9 distinct lr" in lab.search_hint.text()
    assert lab.apply_button.isEnabled()
    kind, best = lab.best()
    with qtbot.waitSignal(lab.best_config_applied) as sig:
        qtbot.mouseClick(lab.apply_button, Qt.MouseButton.LeftButton)
    cfg = sig.args[0]
    assert cfg["lr"] == best.config["lr"] and cfg["weight_decay"] == best.config["weight_decay"]
    assert cfg["optimizer"] == "AdamW" and cfg["search"] == kind
    assert cfg["val_accuracy"] == max(r.val_accuracy for v in lab.results.values() for r in v) > 0.8


def test_cancel_stops_the_search(qtbot, lab):
    lab.trials_box.setValue(49)
    lab.epochs_box.setValue(3)
    with qtbot.waitSignal(lab.search_finished, timeout=60_000):
        lab.run_search()
        qtbot.waitUntil(lambda: lab.progress.value() >= 2, timeout=30_000)
        qtbot.mouseClick(lab.cancel_button, Qt.MouseButton.LeftButton)
    done = sum(len(v) for v in lab.results.values())
    assert 2 <= done < 98 and "cancelled" in lab.status_label.text()
    assert lab.run_button.isEnabled() and not lab.cancel_button.isEnabled()


def test_sanity_checks_show_their_results(qtbot, lab):
    with qtbot.waitSignal(lab.check_finished, timeout=30_000):
        qtbot.mouseClick(lab.initial_loss_button, Qt.MouseButton.LeftButton)
    which, (loss, ln_c) = lab.last_check
    assert which == "initial_loss" and ln_c == pytest.approx(math.log(10))
    assert abs(loss - ln_c) < 0.5 and "as expected" in lab.check_label.text()
    assert lab.check_ref.isVisible() and lab.check_ref.value() == pytest.approx(ln_c)

    with qtbot.waitSignal(lab.check_finished, timeout=30_000):
        qtbot.mouseClick(lab.overfit_button, Qt.MouseButton.LeftButton)
    which, r = lab.last_check
    assert which == "overfit" and r.final_loss < 0.1 and r.final_accuracy == 1.0
    assert len(lab.check_curve.getData()[0]) == 200

    with qtbot.waitSignal(lab.check_finished, timeout=30_000):
        qtbot.mouseClick(lab.sweep_button, Qt.MouseButton.LeftButton)
    which, r = lab.last_check
    lrs, losses, best = r.lrs, r.losses, r.suggested
    assert which == "lr_sweep" and len(lrs) == len(losses) > 20
    xs, ys = lab.check_curve.getData()
    np.testing.assert_allclose(10 ** np.asarray(xs), lrs)
    assert lab.check_marker.isVisible() and lrs[0] < best < lrs[-1]


def test_ensemble_panel_and_a_custom_factory(qtbot, lab):
    data = digits_data(0)
    lab.set_network_factory(lambda seed: digits_mlp(seed, hidden=32), data, name="MLP 32")
    assert "MLP 32" in lab.model_label.text()
    lab.ens_seeds_box.setValue(3)
    with qtbot.waitSignal(lab.ensemble_finished, timeout=60_000):
        qtbot.mouseClick(lab.ens_button, Qt.MouseButton.LeftButton)
    r = lab.last_ensemble
    assert r.seeds == (0, 1, 2) and r.ensemble_accuracy >= r.mean_single
    heights = lab.ens_bars.opts["height"]
    np.testing.assert_allclose(heights, r.single_accuracies)
    assert lab.ens_bar.opts["height"][0] == pytest.approx(r.ensemble_accuracy)
    assert "Averaged probabilities" in lab.ens_label.text()


def test_checks_and_apply_best_use_the_panels_optimizer(qtbot, lab):
    """The sweep used to run SGD whatever the panel showed; Apply best hands on the optimizer the search ran with."""
    from simulator.core.jobs import run_job
    lab.optimizer_combo.setCurrentIndex(lab.optimizer_combo.findData("Adam"))
    with qtbot.waitSignal(lab.check_finished, timeout=30_000):
        qtbot.mouseClick(lab.sweep_button, Qt.MouseButton.LeftButton)
    which, r = lab.last_check
    assert which == "lr_sweep" and r.optimizer == "Adam" and "Adam" in lab.check_label.text()
    direct = run_job(lab.model.check("lr_sweep", lab.sanity_form.value(), lab.search_form.value()))
    np.testing.assert_allclose(lab.check_curve.getData()[1], direct.losses)

    lab.trials_box.setValue(1)
    lab.epochs_box.setValue(1)
    with qtbot.waitSignal(lab.search_finished, timeout=60_000):
        qtbot.mouseClick(lab.run_button, Qt.MouseButton.LeftButton)
    lab.optimizer_combo.setCurrentIndex(lab.optimizer_combo.findData("SGD"))     # changed after the search
    with qtbot.waitSignal(lab.best_config_applied) as sig:
        qtbot.mouseClick(lab.apply_button, Qt.MouseButton.LeftButton)
    cfg = sig.args[0]
    assert {"optimizer", "lr", "weight_decay"} <= set(cfg) and cfg["optimizer"] == "Adam"
    assert cfg["lr"] == lab.best()[1].config["lr"]
