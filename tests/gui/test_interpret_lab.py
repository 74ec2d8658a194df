"""The interpretability lab driven through its widgets: train the quick model, move every view's controls, check that
the images and plots change and show what simulator.labs.interpret computes."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt

from gui.labs.interpret_lab import InterpretLab
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
    lab.tabs.setCurrentIndex(1)
    assert lab.settings_pages[1].isVisible() and not lab.settings_pages[0].isVisible()
    heat0 = image_of(lab.occlusion_grid, 1)
    lab.patch_box.setValue(3)
    lab.stride_box.setValue(2)
    assert lab.occlusion.drops.shape == (3, 3)
    assert not np.array_equal(heat0, image_of(lab.occlusion_grid, 1))
    lab.measure_combo.setCurrentIndex(1)
    assert lab.occlusion.measure == "score"

    # ---- adversarial: the slider recomputes at once; a large eps fools the model on a correct image
    lab.tabs.setCurrentIndex(3)
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
    lab.tabs.setCurrentIndex(2)
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
        lab.tabs.setCurrentIndex(4)                   # PCA, in a job (a few milliseconds)
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
