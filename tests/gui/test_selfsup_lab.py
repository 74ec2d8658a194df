"""The Self-supervised tab driven as a learner would: pick each pretext task in the picker, train it briefly, watch the
curves and the preview (drawn from the model's own Preview), pause, resume and cancel, judge the encoder with the
linear probe and its embeddings, and send it to the Playground. Small epochs and options keep each test to seconds."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt, QTimer
from PySide6.QtWidgets import QApplication

from gui.labs.selfsup_lab import (
    SelfSupervisedLab,
    matrix_rgb,
    probe_summary,
    row_mosaic,
)
from simulator.labs.pretext_recon import colourise_photo, latent_codes
from simulator.labs.selfsup import METHODS, PREVIEW_IMAGES, TASKS

# what each task trains with here: its epochs and the options that make its data small
QUICK = {
    "rotation": (1, {}),
    "contrastive": (1, {}),
    "autoencoder": (2, {"bottleneck": 2}),
    "inpainting": (2, {"hole": 4}),
    "colourisation": (1, {"patches": 200}),
    "jigsaw": (1, {"puzzles": 500, "grid": 2, "permutations": 4}),
}


def click(qtbot, widget) -> None:
    assert widget.isEnabled(), widget.toolTip()
    qtbot.mouseClick(widget, Qt.MouseButton.LeftButton)


def choose(qtbot, combo, data) -> None:
    """Open the combo box's list and click the entry whose data is ``data``."""
    qtbot.mouseClick(combo, Qt.MouseButton.LeftButton)
    view = combo.view()
    qtbot.waitUntil(view.isVisible, timeout=3000)
    index = view.model().index(combo.findData(data), 0)
    view.scrollTo(index)
    rect = view.visualRect(index)
    qtbot.wait(QApplication.doubleClickInterval() + 50)   # a release this soon after opening is ignored by Qt
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.waitUntil(lambda: not view.isVisible(), timeout=3000)
    assert combo.currentData() == data


def wait_ready(qtbot, lab, key) -> None:
    """The picked task is built: its lecture shown, the settings it trains well with filled in."""
    qtbot.waitUntil(lambda: lab.built_task is not None and lab.built_task.key == key
                    and not any(n.startswith("task") for n in lab.jobs.handles), timeout=30_000)


def wait_idle(qtbot, lab, timeout=30_000) -> None:
    qtbot.waitUntil(lambda: lab.state == "idle", timeout=timeout)


def pick_and_train(qtbot, lab, key, epochs=None):
    if lab.model.settings.task != key:
        choose(qtbot, lab.task_combo, key)
    wait_ready(qtbot, lab, key)
    task = lab.built_task
    # the training settings are the task's own defaults, and its lecture is on show
    assert lab.epochs_box.value() == task.epochs and lab.batch_box.value() == task.batch_size
    assert lab.lr_box.value() == pytest.approx(task.lr)
    assert lab.lecture_label.text() == task.lecture
    n, options = QUICK[key]
    for name, value in options.items():
        w = lab.options_form.widgets[name]
        if hasattr(w, "findData"):
            w.setCurrentIndex(w.findData(value))
        else:
            w.setValue(value)
    if options:
        assert lab.model.options(key).replace(**options) == lab.model.options(key)
        wait_ready(qtbot, lab, key)                  # built again with its new options
        assert lab.built_task.epochs == task.epochs
    lab.epochs_box.setValue(epochs or n)
    click(qtbot, lab.train_button)
    assert lab.state == "running"
    wait_idle(qtbot, lab)
    assert not lab.error_label.isVisible(), lab.error_label.text()
    assert lab.result is not None and lab.result.key == key and lab.result.finished
    return lab.result


@pytest.fixture
def lab(qtbot):
    w = SelfSupervisedLab()
    qtbot.addWidget(w)
    w.resize(1280, 760)
    w.show()
    qtbot.waitExposed(w)
    wait_ready(qtbot, w, "rotation")
    yield w
    w.close_lab()


# ------------------------------------------------------------------------------------------------ training

@pytest.mark.parametrize("key", list(TASKS))
def test_each_task_trains_from_the_tab_and_draws_the_models_preview(qtbot, lab, key):
    result = pick_and_train(qtbot, lab, key)
    # the loss curve holds every update (a short run is not decimated), the accuracy only for discriminative tasks
    x, y = lab.curves["loss"].getData()
    assert len(x) == result.iterations and x[0] == 1 and x[-1] == result.iterations
    np.testing.assert_allclose(10 ** y, result.history.loss[:result.iterations], rtol=1e-6)   # log10 on a log plot
    discriminative = lab.built_task.network.loss_kind != "mse"
    assert lab.acc_plot.isVisible() == discriminative
    assert key in ("autoencoder", "inpainting", "colourisation") or discriminative
    # previews came while training (the first of the fresh weights), the last of the final weights; a quick run
    # can deliver the first and the last between two frames, and a frame draws only the newest
    assert lab.previews_received >= 2 and lab.previews_drawn >= 1
    assert lab.last_preview.iteration == result.iterations
    trained_key, net = lab.model.trained_network()
    assert trained_key == key
    expected = lab.model.build_task().preview(net, PREVIEW_IMAGES)
    ink = TASKS[key].input_kind == "digits"
    assert [c.text() for c in lab.preview.captions if c.isVisible()] == [c for c, _ in expected.rows]
    for shown, item, (_, images) in zip(lab.preview.shown, lab.preview.items, expected.rows):
        want = row_mosaic(images, ink)
        assert shown.shape == want.shape and np.abs(shown.astype(int) - want).max() <= 1
        assert np.array_equal(item.image, shown)
    if expected.matrix is not None:
        np.testing.assert_allclose(lab.matrix_shown, expected.matrix, rtol=1e-5, atol=1e-6)
        assert np.abs(lab.matrix_item.image.astype(int) - matrix_rgb(expected.matrix, key == "contrastive")).max() <= 1
        assert lab.side.isVisible() and lab.matrix_title.text().lower() == expected.matrix_title.lower()
    else:
        assert lab.matrix_shown is None
    q = result.quality
    assert q.name.lower() in lab.quality_label.text().lower() and q.text in lab.quality_label.text()
    if key == "autoencoder":                       # the latent space, from the model's own codes
        qtbot.waitUntil(lambda: lab.latent_shown is not None and not lab.jobs.running("latent"), timeout=10_000)
        codes = latent_codes(net, lab.built_task.encoder_layers, seed=lab.model.settings.seed)
        np.testing.assert_allclose(lab.latent_shown.codes, codes.codes, rtol=1e-5, atol=1e-6)
        xs, ys = lab.latent_scatter.getData()
        np.testing.assert_allclose(np.c_[xs, ys], codes.codes, rtol=1e-5, atol=1e-6)
        assert codes.axes == ("code 1", "code 2")            # a 2-number bottleneck is drawn as it is
    if key == "colourisation":                     # a whole photograph coloured after training
        qtbot.waitUntil(lambda: lab.photo_shown is not None, timeout=10_000)
        for got, want in zip(lab.photo_shown, colourise_photo(net)):
            np.testing.assert_allclose(got, want, atol=1e-6)
    if TASKS[key].input_kind == "photo":
        # no labels to judge with: the probe, the embeddings and the hand-off are off, the model says why
        for button in (lab.probe_button, lab.embed_button, lab.send_button):
            assert not button.isEnabled() and "photographs" in button.toolTip()
        qtbot.mouseClick(lab.probe_button, Qt.MouseButton.LeftButton)   # a click on a disabled button: nothing
        assert not lab.jobs.running("probe")
        lab.run_probe()                           # forced anyway: the model's refusal shows in the tab
        qtbot.waitUntil(lambda: lab.error_label.isVisible(), timeout=5000)
        assert "photographs" in lab.error_label.text() and "Traceback" not in lab.error_label.text()
    else:
        for button in (lab.probe_button, lab.embed_button, lab.send_button):
            assert button.isEnabled()


def test_pause_resume_and_cancel_keep_the_encoder_of_the_last_update(qtbot, lab):
    choose(qtbot, lab.task_combo, "autoencoder")
    wait_ready(qtbot, lab, "autoencoder")
    lab.epochs_box.setValue(400)
    click(qtbot, lab.train_button)
    qtbot.waitUntil(lambda: lab._n_steps > 20, timeout=20_000)
    click(qtbot, lab.pause_button)
    assert lab.state == "paused" and lab.resume_button.isEnabled() and not lab.pause_button.isEnabled()
    qtbot.wait(150)
    made = lab.model.trained[1]
    qtbot.wait(300)
    assert lab.model.trained[1] == made            # paused: no update made
    assert lab.task_combo.isEnabled() is False     # the run's settings stay as they were while it exists
    click(qtbot, lab.resume_button)
    assert lab.state == "running"
    qtbot.waitUntil(lambda: lab.model.trained[1] > made + 20, timeout=20_000)
    click(qtbot, lab.cancel_button)
    wait_idle(qtbot, lab)
    assert lab.result is None and "cancelled" in lab.status_label.text()
    n = lab.model.trained[1]
    assert 0 < n < 400 * 43 and f"{n} updates" in lab.status_label.text()
    # the encoder of the last update can be judged and sent on
    assert lab.probe_button.isEnabled() and lab.send_button.isEnabled() and lab.train_button.isEnabled()
    assert lab.task_combo.isEnabled()


def test_the_window_keeps_working_while_a_task_trains(qtbot, lab):
    choose(qtbot, lab.task_combo, "contrastive")
    wait_ready(qtbot, lab, "contrastive")
    lab.epochs_box.setValue(50)
    click(qtbot, lab.train_button)
    qtbot.waitUntil(lambda: lab._n_steps > 3, timeout=20_000)
    ticks = []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(lab._n_steps))
    timer.start()
    try:
        qtbot.waitUntil(lambda: len(ticks) >= 30, timeout=10_000)
    finally:
        timer.stop()
    assert lab.state == "running"
    # curves and live similarity matrices keep arriving
    drawn, steps = lab.previews_drawn, lab._n_steps
    qtbot.waitUntil(lambda: lab.previews_drawn > drawn and lab._n_steps > steps, timeout=20_000)
    assert lab.matrix_shown.shape == (2 * PREVIEW_IMAGES, 2 * PREVIEW_IMAGES)
    click(qtbot, lab.cancel_button)
    wait_idle(qtbot, lab)


def test_a_failing_preview_shows_the_models_message_in_the_tab(qtbot, lab, monkeypatch):
    import simulator.labs.pretext as pretext
    real = pretext.make_rotation

    def broken(settings=None):
        task = real(settings)

        def preview(network, n=8):
            raise RuntimeError("no pictures today")
        task.preview_fn = preview
        return task

    monkeypatch.setattr(pretext, "make_rotation", broken)
    lab.epochs_box.setValue(1)
    click(qtbot, lab.train_button)
    wait_idle(qtbot, lab)
    assert lab.error_label.isVisible()
    text = lab.error_label.text()
    assert "Rotation prediction task failed drawing its preview: RuntimeError: no pictures today" in text
    assert "Traceback" not in text and lab.train_button.isEnabled()


# ------------------------------------------------------------------------------------------------ judging

def test_the_judge_page_is_built_when_first_shown_with_the_state_of_the_lab(qtbot, lab):
    assert not lab.judge_page.is_built                     # the lab opened without it
    pick_and_train(qtbot, lab, "rotation")
    assert not lab.judge_page.is_built
    lab.tabs.setCurrentWidget(lab.judge_page)
    qtbot.waitUntil(lambda: lab.judge_page.is_built)
    assert lab.probe_plot.isVisible() and not lab.neighbours_box.isVisible()
    # its text follows the lab's state, as if it had been there all along: trained, no probe yet
    assert "Run the linear probe" in lab.probe_label.text() and lab.probe_button.isEnabled()
    assert all(len(c.getData()[0] or ()) == 0 for c in lab.probe_curves.values())


def test_asking_for_a_judge_widget_builds_the_page(qtbot, lab):
    assert not lab.judge_page.is_built
    curves = lab.probe_curves                                   # as run_probe and the job's callbacks do
    assert lab.judge_page.is_built and curves is lab.probe_curves and set(curves) == set(METHODS)
    with pytest.raises(AttributeError):
        lab.no_such_widget


def test_the_probe_draws_three_lines_from_its_result_and_the_embeddings_their_neighbours(qtbot, lab):
    pick_and_train(qtbot, lab, "autoencoder", epochs=3)
    lab.probe_form.widgets["probe_steps"].setValue(10)
    lab.probe_form.widgets["supervised_epochs"].setValue(1)
    click(qtbot, lab.probe_button)
    assert lab.tabs.currentWidget() is lab.judge_page
    qtbot.waitUntil(lambda: lab.probe_result is not None, timeout=30_000)
    r = lab.probe_result
    assert lab.model.settings.probe_steps == 10 and r.task == "autoencoder"
    # every point arrived as the job measured it, and the lines are the result's numbers
    assert [(p.method, p.fraction, p.accuracy) for p in lab.probe_points] == \
        [(p.method, p.fraction, p.accuracy) for p in r.points()]
    for m in METHODS:
        x, y = lab.probe_curves[m].getData()
        np.testing.assert_allclose(10 ** x, 100 * np.asarray(r.fractions))
        np.testing.assert_allclose(y, r.accuracy[m])
    text = lab.probe_label.text()
    assert text == probe_summary(r, TASKS["autoencoder"].title)
    i = list(r.fractions).index(0.1)
    ss, rnd = r.accuracy["self-supervised"][i], r.accuracy["random"][i]
    assert f"{ss:.1%}" in text and f"{rnd:.1%}" in text and f"{abs(100 * (ss - rnd)):.1f} points" in text
    assert ("beats the random encoder" in text) == (100 * (ss - rnd) >= 0.05)

    lab.embed_form.widgets["images"].setValue(120)
    click(qtbot, lab.embed_button)
    qtbot.waitUntil(lambda: lab.embeddings is not None, timeout=30_000)
    e = lab.embeddings
    assert set(e.coords) == {"pixels", *METHODS}               # the probe trained the supervised encoder
    for space, xy in e.coords.items():
        xs, ys = lab.embed_scatters[space].getData()
        np.testing.assert_allclose(np.c_[xs, ys], xy)
        assert f"{e.knn_agreement[space]:.0%}" in lab.embed_plots[space].getPlotItem().titleLabel.text
    # click a point of the self-supervised scatter (the one furthest from the others on screen): its neighbours in
    # every space are shown
    plot = lab.embed_plots["self-supervised"]
    vb = plot.getPlotItem().getViewBox()
    qtbot.wait(QApplication.doubleClickInterval() + 50)   # the plots take their size; no double click with the last
    screen = np.array([[p.x(), p.y()] for p in (plot.mapFromScene(vb.mapViewToScene(QPointF(*xy)))
                                                for xy in e.coords["self-supervised"])], float)
    gaps = np.hypot(*(screen[:, None] - screen[None]).transpose(2, 0, 1))
    np.fill_diagonal(gaps, np.inf)
    q = int(np.argmax(gaps.min(axis=1)))
    assert q != e.query and gaps[q].min() > 6

    def click_point(i: int) -> None:
        qtbot.mouseClick(plot.viewport(), Qt.MouseButton.LeftButton,
                         pos=QPoint(int(round(screen[i, 0])), int(round(screen[i, 1]))))

    click_point(q)
    qtbot.waitUntil(lambda: lab.query == q, timeout=2000)
    near = e.nearest(q)
    for space in e.coords:
        name, thumbs = lab.neighbour_rows[space]
        same = int(np.sum(e.labels[near[space]] == e.labels[q]))
        assert name.text() == f"{space}: {same}/{e.k}"
        assert [c.text() for c in thumbs.caps[:e.k]] == [str(int(e.labels[i])) for i in near[space]]
    # a ringed neighbour is a point too: clicking it makes it the chosen image
    ringed = near["self-supervised"]
    j = int(ringed[np.argmax(gaps[ringed].min(axis=1))])
    assert gaps[j].min() > 6
    click_point(j)
    qtbot.waitUntil(lambda: lab.query == j, timeout=2000)
    assert lab.neighbour_rows["pixels"][0].text().endswith(f"/{e.k}")
    near_j = e.nearest(j)["self-supervised"]
    np.testing.assert_allclose(lab.embed_marks["self-supervised"][0].getData()[0],
                               e.coords["self-supervised"][near_j, 0])


# ------------------------------------------------------------------------------------------------ the hand-off

def test_fine_tune_in_the_playground_hands_the_encoder_over(qtbot, make_window, tmp_path):
    from simulator.labs.playground import DIGITS
    w = make_window(tmp_path / "settings.ini")
    lab = w.open_lab("Self-supervised")
    wait_ready(qtbot, lab, "rotation")
    sent = []
    lab.encoder_sent.connect(lambda h, freeze: sent.append((h, freeze)))
    pick_and_train(qtbot, lab, "contrastive")
    assert lab.probe_radio.isChecked()
    click(qtbot, lab.send_button)
    (handoff, freeze), = sent
    assert freeze and handoff.frozen == ("conv1", "conv2")
    assert w.tabs.tabText(w.tabs.currentIndex()) == "Playground"
    pg = w.labs["Playground"]
    qtbot.waitUntil(lambda: pg.state == "idle" and not pg._rebuild_timer.isActive() and pg.session is not None,
                    timeout=30_000)
    message = w.statusBar().currentMessage()
    assert "Contrastive (SimCLR) encoder" in message and "frozen" in message
    # the Playground changed: the digits as they are, the encoder's layers, frozen, its weights loaded
    s = pg.model.data_settings
    assert (s.dataset, s.points, s.preprocess) == (DIGITS, 1797, "none")
    assert pg.dataset_combo.currentData() == DIGITS and pg.preprocess_combo.currentData() == "none"
    assert pg.builder.hidden_layers() == list(handoff.layers)
    assert pg.model.frozen == ("conv1", "conv2")
    assert [n for n, b in pg.freeze_panel.boxes.items() if b.isChecked()] == ["conv1", "conv2"]
    net = pg.session.network
    assert net.frozen == {"conv1", "conv2"}
    state = net.state_dict()
    assert set(state) == set(handoff.state)
    for k, v in handoff.state.items():
        np.testing.assert_array_equal(state[k], v)
    # it reads the raw digits: its encoder's features are the lab's encoder's on digits scaled to [0, 1]
    X = pg.X_raw[:20]
    enc = lab.model.encoders()["self-supervised"]
    feats = net.layer_outputs(X)[len(handoff.layers) - 1].reshape(20, -1)
    np.testing.assert_allclose(feats, enc.forward(X / 16.0).reshape(20, -1), rtol=1e-4, atol=1e-4)
    assert "Self-supervised" in pg.status_label.text()
    # a short run trains the head only: the frozen convolutions keep the encoder's weights
    pg.epochs_box.setValue(1)
    qtbot.waitUntil(lambda: pg.state == "idle" and not pg._rebuild_timer.isActive(), timeout=10_000)
    click(qtbot, pg.train_button)
    qtbot.waitUntil(lambda: pg.state in ("finished", "failed"), timeout=60_000)
    after = pg.session.network.state_dict()
    np.testing.assert_array_equal(after["conv1.w"], handoff.state["conv1.w"])
    assert not np.array_equal(after["fc1.w"], handoff.state["fc1.w"])
    # fine-tune all: the same start, nothing frozen
    w.open_lab("Self-supervised")
    radio = lab.finetune_radio                     # a radio button takes clicks on its circle and its text
    qtbot.mouseClick(radio, Qt.MouseButton.LeftButton, pos=QPoint(8, radio.height() // 2))
    assert radio.isChecked() and not lab.probe_radio.isChecked()
    click(qtbot, lab.send_button)
    assert sent[-1][1] is False
    qtbot.waitUntil(lambda: pg.state == "idle" and not pg._rebuild_timer.isActive() and pg.session is not None,
                    timeout=30_000)
    assert pg.model.frozen == () and pg.session.network.frozen == frozenset()
    np.testing.assert_array_equal(pg.session.network.state_dict()["conv2.w"], handoff.state["conv2.w"])
    assert "fine-tuning" in w.statusBar().currentMessage()
