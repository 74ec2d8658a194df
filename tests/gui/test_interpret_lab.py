"""The interpretability lab driven through its widgets: train the quick model, move every view's controls, check that
the images and plots change and show what simulator.labs.interpret computes."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt

from gui.labs.interpret_lab import ADVERSARIAL, CLASSVIS, EMBEDDING, OCCLUSION, PATCHES, SHAPLEY, InterpretLab
from simulator.labs import interpret as I


def image_of(grid, i) -> np.ndarray:
    img = grid.images[i].image
    return None if img is None else np.array(img, copy=True)


@pytest.fixture(scope="module")
def trained():
    return I.quick_digits_model(seed=0)


@pytest.fixture
def lab(qtbot):
    w = InterpretLab()
    qtbot.addWidget(w)
    w.resize(1500, 900)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.close_lab()


def test_train_button_trains_and_every_view_reacts(qtbot, lab):
    assert lab.network is None and not lab.index_box.isEnabled()
    with qtbot.waitSignal(lab.model_changed, timeout=60_000):
        qtbot.mouseClick(lab.train_button, Qt.MouseButton.LeftButton)
        assert lab.is_busy("train")
    assert lab.accuracy > 0.9 and f"{100 * lab.accuracy:.1f}%" in lab.model_label.text()
    assert lab.train_button.isEnabled() and lab.train_progress.isHidden()

    # ---- saliency: a new image gives a new map, equal to simulator's
    sal0 = image_of(lab.saliency_grid, 1)
    lab.index_box.setValue(11)
    assert lab.index == 11
    assert not np.array_equal(sal0, image_of(lab.saliency_grid, 1))
    x = lab.X_val[11]
    np.testing.assert_allclose(lab.saliency, I.saliency_map(lab.network, x[None])[0])
    lab.saliency_class_combo.setCurrentIndex(2 + (int(lab.y_val[11]) + 1) % 10)    # another class's score
    np.testing.assert_allclose(lab.saliency, I.saliency_map(lab.network, x[None], (int(lab.y_val[11]) + 1) % 10)[0])
    qtbot.mouseClick(lab.random_button, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(lab.misclassified_button, Qt.MouseButton.LeftButton)
    assert lab.predictions[lab.index] != lab.y_val[lab.index]
    assert "✗" in lab.image_label.text()

    # ---- occlusion: bigger patch, coarser grid
    lab.tabs.setCurrentIndex(OCCLUSION)
    assert lab.settings_pages[OCCLUSION].isVisible() and not lab.settings_pages[0].isVisible()
    heat0 = image_of(lab.occlusion_grid, 1)
    lab.patch_box.setValue(3)
    lab.stride_box.setValue(2)
    assert lab.occlusion.drops.shape == (3, 3)
    assert not np.array_equal(heat0, image_of(lab.occlusion_grid, 1))
    lab.measure_combo.setCurrentIndex(1)
    assert lab.occlusion.measure == "score"

    # ---- adversarial: the slider recomputes at once; a large eps fools the model on a correct image
    lab.tabs.setCurrentIndex(ADVERSARIAL)
    correct = np.flatnonzero(lab.predictions == lab.y_val)
    lab.set_index(int(correct[0]))
    lab.eps_slider.setValue(0)
    assert lab.adv_predictions[0] == lab.adv_predictions[1]
    np.testing.assert_array_equal(lab.adversarial, lab.current_image)
    lab.eps_slider.setValue(40)
    assert lab.epsilon == pytest.approx(0.4)
    assert np.max(np.abs(lab.adversarial - lab.current_image)) == pytest.approx(0.4, rel=1e-5)
    assert lab.adv_predictions[1] != lab.adv_predictions[0]
    assert "fooled" in lab.adv_grid.captions[2].text()
    lab.attack_combo.setCurrentIndex(1)
    assert np.max(np.abs(lab.adversarial - lab.current_image)) <= 0.4 + 1e-6
    qtbot.waitUntil(lambda: not lab.is_busy("robustness"), timeout=30_000)
    xs, accs = lab.robust_curve.getData()
    assert len(xs) == 11 and accs[0] > 0.9 and accs[-1] < 0.2


def test_class_visualisation_runs_in_a_worker_and_raises_the_score(qtbot, lab, trained):
    lab.set_network(trained.network, trained.data)
    lab.tabs.setCurrentIndex(CLASSVIS)
    lab.classvis_class_combo.setCurrentIndex(3)
    lab.classvis_steps_box.setValue(60)
    with qtbot.waitSignal(lab.job_finished, timeout=30_000, check_params_cb=lambda k: k == "classvis"):
        qtbot.mouseClick(lab.classvis_run_button, Qt.MouseButton.LeftButton)
    r = lab.classvis_results[3]
    assert r.scores[-1] > r.scores[0] + 5
    xs, ys = lab.classvis_curve.getData()
    assert len(xs) == 61 and ys[-1] > ys[0]               # the start and 60 steps
    assert image_of(lab.classvis_gallery, 3) is not None and image_of(lab.classvis_gallery, 4) is None
    assert lab.network.predict(r.image[None])[0] == 3


def test_embedding_pca_and_tsne_and_clicking_a_point(qtbot, lab, trained):
    lab.set_network(trained.network, trained.data)
    with qtbot.waitSignal(lab.job_finished, timeout=30_000, check_params_cb=lambda k: k == "embedding"):
        lab.tabs.setCurrentIndex(EMBEDDING)           # PCA, in a job (a few milliseconds)
    assert lab.embedding is not None and lab.embedding.shape == (len(lab.y_val), 2)
    assert lab.model.embedding_method == "PCA"
    pca = lab.embedding.copy()
    with qtbot.waitSignal(lab.job_finished, timeout=60_000, check_params_cb=lambda k: k == "embedding"):
        lab.embed_combo.setCurrentIndex(1)
        assert lab.embed_busy.isVisible()
    assert lab.embed_busy.isHidden()
    assert not np.allclose(lab.embedding, pca)
    # click a real point on screen
    q = 25
    vb = lab.embed_plot.getPlotItem().getViewBox()
    pos = lab.embed_plot.mapFromScene(vb.mapViewToScene(QPointF(*lab.embedding[q])))
    qtbot.mouseClick(lab.embed_plot.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    q = lab.selected_point
    # the point under the cursor (or one drawn on top of it at the same spot)
    assert q is not None and np.linalg.norm(lab.embedding[q] - lab.embedding[25]) < 0.02 * np.ptp(lab.embedding)
    nn_feat, nn_pix = lab.neighbours
    np.testing.assert_array_equal(nn_feat, I.nearest_neighbours(I.hidden_features(lab.network, lab.X_val), q, 6))
    np.testing.assert_array_equal(nn_pix, I.nearest_neighbours(lab.X_val, q, 6))
    lab.k_box.setValue(8)
    assert len(lab.neighbours[0]) == 8 and image_of(lab.feature_grid, 7) is not None
    np.testing.assert_allclose(lab.embed_query.getData()[0], [lab.embedding[q, 0]])


def test_saliency_says_when_max_pool_ties_make_it_one_sub_gradient(qtbot, lab, trained):
    lab.set_network(trained.network, trained.data)
    lab.set_index(0)
    ties = I.maxpool_ties(lab.network, lab.X_val[0])
    assert ties[0].tied > 0
    note = lab.saliency_ties.text()
    assert lab.saliency_ties.isVisible() and f"{ties[0].tied} of {ties[0].windows} windows" in note
    assert "sub-gradient" in note


def test_targeted_attack_and_the_random_noise_baseline(qtbot, lab, trained):
    lab.set_network(trained.network, trained.data)
    lab.tabs.setCurrentIndex(ADVERSARIAL)
    correct = np.flatnonzero(lab.predictions == lab.y_val)
    lab.set_index(int(correct[0]))
    target = (int(lab.y_val[lab.index]) + 4) % 10
    lab.attack_form.widgets["target"].setCurrentIndex(target)
    lab.attack_combo.setCurrentIndex(2)                       # targeted
    lab.eps_slider.setValue(30)
    assert lab.adv_predictions[1] == target
    assert np.max(np.abs(lab.adversarial - lab.current_image)) <= 0.3 + 1e-6
    assert lab.adv_grid.titles[2].text() == f"Targeted at {target}: reached"
    assert image_of(lab.adv_grid, 3) is not None
    v = lab.attack_view                                       # the same budget at random: far less of the target
    assert v.noise.probs[target] < 0.5 * v.perturbed_probs[target]
    noisy = int(np.argmax(v.noise.probs))
    assert ("unchanged" if noisy == v.predictions[0] else "fooled too") in lab.adv_grid.captions[3].text()


def test_shapley_runs_as_a_job_next_to_occlusion_and_saliency(qtbot, lab, trained):
    lab.set_network(trained.network, trained.data)
    lab.set_index(5)
    lab.tabs.setCurrentIndex(SHAPLEY)
    lab.shapley_form.widgets["samples"].setValue(40)
    lab.shapley_form.widgets["patch"].setValue(2)
    with qtbot.waitSignal(lab.job_finished, timeout=60_000, check_params_cb=lambda k: k == "shapley"):
        qtbot.mouseClick(lab.shapley_run_button, Qt.MouseButton.LeftButton)
    v = lab.shapley_view
    assert v.result.samples == 40 and v.result.values.shape == (4, 4)
    assert v.result.values.sum() == pytest.approx(v.result.total, abs=1e-9)
    assert "40 orderings" in lab.shapley_grid.captions[1].text()
    for i in range(4):
        assert image_of(lab.shapley_grid, i) is not None
    np.testing.assert_allclose(v.saliency, I.saliency_map(lab.network, lab.X_val[5][None], int(lab.y_val[5]))[0])
    assert not lab.shapley_stop_button.isEnabled()


def test_top_patches_show_the_strongest_units_of_a_channel(qtbot, lab, trained):
    lab.set_network(trained.network, trained.data)
    lab.tabs.setCurrentIndex(PATCHES)
    assert lab.top_patches is not None and len(lab.top_patches.images) == 16
    lab.patches_form.widgets["channel"].setValue(3)
    t = lab.top_patches
    assert t.channel == 3 and np.all(np.diff(t.activations) <= 0)
    expect = I.top_patches(lab.network, lab.X_val, 1, 3, 16)        # conv 1 after its ReLU (layer index 1)
    np.testing.assert_array_equal(t.images, expect.images)
    assert image_of(lab.patches_grid, 15) is not None and image_of(lab.patches_grid, 16) is None
    lab.patches_form.widgets["channel"].setValue(999)              # more than the layer has: a message, no crash
    assert lab.error_label.isVisible() and "channels" in lab.error_label.text()


def test_refuses_a_vector_model(qtbot, lab):
    from simulator.labs.interpret import digits_mlp
    from simulator.nn.network import Linear, Network
    # a 2-D-points model is refused with a message; an image MLP is fine
    net = Network((2,), [Linear(3)])
    lab.set_network(net, (np.zeros((4, 2)), np.zeros(4, int), None, None))
    assert lab.network is None and lab.error_label.isVisible()
    lab.set_network(digits_mlp(0), I.digits_data(0))
    assert lab.network is not None


def test_a_standardised_model_is_shown_as_the_raw_digits(qtbot, lab):
    """A playground model trained on standardised digits: the learner sees the digit, the network its inputs."""
    from simulator.data.datasets import standardize
    from gui.labs.interpret_lab import image_rgb
    d = I.digits_data(0)
    stats, (Xtr, Xv) = standardize(d.X_train, d.X_val)
    net = I.digits_cnn(0)
    with qtbot.waitSignal(lab.model_changed):
        lab.set_network(net, (Xtr.astype(np.float32), d.y_train, Xv.astype(np.float32), d.y_val), standardizer=stats)
    qtbot.mouseClick(lab.random_button, Qt.MouseButton.LeftButton)
    i = lab.index
    shown = image_of(lab.saliency_grid, 0)
    # the raw digit, ink on paper (to one grey level of 255: float32 rounding of the round trip)
    assert np.abs(shown.astype(int) - image_rgb(d.X_val[i], (0.0, 1.0)).astype(int)).max() <= 1
    assert not np.array_equal(shown, image_rgb(Xv[i], (Xv.min(), Xv.max())))      # not the grey standardised one
    np.testing.assert_allclose(lab.saliency, I.saliency_map(net, Xv[i:i + 1].astype(np.float32))[0], rtol=1e-5)
    # a refused model leaves the one on show
    lab.set_network(I.Network((2,), [I.Linear(3)]), (np.zeros((4, 2)), np.zeros(4, int), None, None))
    assert lab.network is net and lab.error_label.isVisible() and "image model" in lab.error_label.text()


def test_the_empty_views_say_how_to_get_a_model_until_one_arrives(qtbot, lab, trained):
    assert lab.empty_note.isVisible() and "Train a quick digits model" in lab.empty_note.text()
    note = lab.empty_note.geometry()
    assert lab.tabs.rect().contains(note)                  # over the views, whole
    lab.set_network(trained.network, trained.data)
    qtbot.waitUntil(lambda: not lab.empty_note.isVisible(), timeout=10_000)
    lab.resize(1200, 800)                                  # a resize does not bring it back
    qtbot.wait(20)
    assert not lab.empty_note.isVisible()
