"""The Self-supervised lab's model: rotation and contrastive pretext tasks trained through the Trainer, the linear
probe against a random and a supervised encoder, embeddings, the hand-off to the Playground, cancelling, and our
errors. Fixed seeds; the trained labs are shared by the tests of a module (each trains in a few seconds)."""
from __future__ import annotations

import importlib
import threading

import numpy as np
import pytest

from simulator.core.errors import ShapeError, ValueInputError
from simulator.core.jobs import Progress, run_job
from simulator.core.params import params_of
from simulator.data import datasets
from simulator.labs import selfsup
from simulator.labs.pretext import (ENCODER_FEATURES, RandomRotation, TwoViews, ViewSettings, digit_views,
                                    encoder_specs, make_rotation, rotate_quarter)
from simulator.labs.pretext_task import DIGITS_SCALE, PretextTask, Preview, Quality, digits_split
from simulator.labs.selfsup import (METHODS, TASKS, EncoderHandoff, PretextPreview, ProbePoint, SelfSupLab,
                                    SelfSupSettings, TaskEntry, balanced_order, encoder_of, label_counts)
from simulator.nn.network import Activation, Conv2d, Flatten, Linear, Network
from simulator.nn.trainer import EpochMetrics, StepMetrics, Trainer

ROTATION_BAR = 0.6           # held-out rotation accuracy (chance 0.25); measured 0.74 with these settings
CONTRASTIVE_BAR = 0.03       # held-out top-1 among 899 other views (chance 1/899 = 0.0011); measured 0.05
PROBE_MARGIN = 0.03          # contrastive probe over the random encoder's at 10% labels; measured +0.08


@pytest.fixture(scope="module")
def rotation():
    lab = SelfSupLab(SelfSupSettings(task="rotation", epochs=6, batch_size=64, lr=3e-3, seed=0, supervised_epochs=8))
    items = []
    result = run_job(lab.pretext_job(preview_every=1e9), items.append)
    return lab, items, result


@pytest.fixture(scope="module")
def contrastive():
    lab = SelfSupLab(SelfSupSettings(task="contrastive", epochs=5, batch_size=128, lr=1e-2, temperature=0.1, seed=0,
                                     supervised_epochs=8))
    items = []
    result = run_job(lab.pretext_job(preview_every=1e9), items.append)
    points = []
    probe = run_job(lab.probe_job(), points.append)
    return lab, items, result, probe, [p for p in points if isinstance(p, ProbePoint)]


# ------------------------------------------------------------------------------------------------ the pieces

def test_rotate_quarter_is_rot90_per_image_and_a_random_rotation_target_undoes_it():
    x = np.arange(2 * 16, dtype=np.float64).reshape(2, 1, 4, 4)
    out = rotate_quarter(x, np.array([1, 7]))
    np.testing.assert_array_equal(out[0, 0], np.rot90(x[0, 0], 1))
    np.testing.assert_array_equal(out[1, 0], np.rot90(x[1, 0], 3))       # 7 quarter turns = 3
    # stored images turned by k, drawn again by r: the target (k + r) mod 4 turns them back upright
    upright = np.random.default_rng(0).random((12, 1, 8, 8))
    k = np.arange(12) % 4
    xa, target = RandomRotation()(rotate_quarter(upright, k), k, np.random.default_rng(1))
    np.testing.assert_array_equal(rotate_quarter(xa, -target), upright)
    assert not np.array_equal(target, k)
    with pytest.raises(ShapeError, match="one k or one per image"):
        rotate_quarter(x, np.array([1, 2, 3]))
    with pytest.raises(ValueInputError, match="whole quarter turns"):
        rotate_quarter(x, 0.5)


def test_digit_views_are_seeded_stay_in_range_and_differ():
    x = digits_split(0).X_train[:20]
    a = digit_views(x, np.random.default_rng(3))
    b = digit_views(x, np.random.default_rng(3))
    c = digit_views(x, np.random.default_rng(4))
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32 and a.shape == x.shape and a.min() >= 0.0 and a.max() <= 1.0
    assert np.abs(a - c).mean() > 0.02 and np.abs(a - x).mean() > 0.02
    off = ViewSettings(shift=0, degrees=0.0, brightness=0.0, contrast=0.0, cutout=0, noise=0.0)
    np.testing.assert_array_equal(digit_views(x, np.random.default_rng(3), off), x)
    with pytest.raises(ValueInputError):
        ViewSettings(noise=-0.1)


def test_two_views_draws_two_fresh_views_of_each_image_of_the_batch_once():
    images = digits_split(0).X_train[:10]
    draw = TwoViews(images)
    ids = np.array([4, 7, 4, 2])                           # image 4's two fixed rows both came
    xa, ta = draw(images[ids], ids, np.random.default_rng(0))
    np.testing.assert_array_equal(ta, [4, 7, 2, 4, 7, 2])
    assert xa.shape == (6, 1, 8, 8)
    assert not np.array_equal(xa[0], xa[3])                # two different views of image 4
    # views of image 4 resemble image 4: their average over many draws is nearer to it than to image 7
    mean4 = np.mean([draw(images[ids], ids, np.random.default_rng(s))[0][0] for s in range(40)], axis=0)
    assert np.abs(mean4 - images[4]).mean() < 0.8 * np.abs(mean4 - images[7]).mean()


def test_encoder_of_cuts_the_stack_and_keeps_the_weights():
    net = Network((1, 8, 8), [*encoder_specs(), Linear(5)], seed=3)
    enc = encoder_of(net, 7)
    assert [l.spec for l in enc.layers] == list(net.specs[:7]) and enc.num_classes == ENCODER_FEATURES
    x = digits_split(0).X_test[:4]
    np.testing.assert_array_equal(enc.forward(x), net.layer_outputs(x)[6])
    # a cut after an image-shaped layer gets a Flatten
    cut = encoder_of(net, 3)
    assert isinstance(cut.specs[-1], Flatten) and cut.num_classes == 8 * 4 * 4
    np.testing.assert_array_equal(cut.forward(x), net.layer_outputs(x)[2].reshape(4, -1))
    with pytest.raises(ValueInputError):
        encoder_of(net, 0)
    with pytest.raises(ValueInputError):
        encoder_of(net, 9)


def test_probe_subsets_are_nested_and_class_balanced():
    y = digits_split(0).y_train
    order = balanced_order(y, [0, 7])
    assert sorted(order.tolist()) == list(range(len(y)))
    counts = label_counts((0.01, 0.05, 0.1, 1.0), len(y))
    assert counts == (13, 67, 135, len(y))
    for n in counts[:3]:
        per_class = np.bincount(y[order[:n]], minlength=10)
        assert per_class.min() >= 1 and per_class.max() - per_class.min() <= 1
    assert label_counts((0.001,), 1000) == (10,)           # at least one label per class
    # the same seed gives the same order; nesting: the first n of one order are inside the first m > n
    np.testing.assert_array_equal(order, balanced_order(y, [0, 7]))
    assert set(order[:13]) <= set(order[:67]) <= set(order[:135])


# ------------------------------------------------------------------------------------------------ rotation

def test_rotation_prediction_beats_chance_on_held_out_digits(rotation):
    lab, items, result = rotation
    q = result.quality
    assert q.name == "rotation accuracy" and q.baseline == 0.25 and q.higher_is_better
    assert q.value >= ROTATION_BAR
    epochs = [m for m in items if isinstance(m, EpochMetrics)]
    steps = [m for m in items if isinstance(m, StepMetrics)]
    assert len(epochs) == 6 and len(steps) == result.iterations == len(result.history) and result.finished
    # the Trainer's validation set is the quality's: every held-out digit in four rotations
    assert epochs[-1].val_accuracy == pytest.approx(q.value)
    assert lab.trained == ("rotation", result.iterations)
    previews = [p for p in items if isinstance(p, PretextPreview)]
    assert [p.iteration for p in previews] == [0, result.iterations]
    pv = previews[-1].preview
    assert pv.matrix.shape == (4, 4) and pv.matrix.sum() == 4 * len(digits_split(0).X_test)
    assert np.trace(pv.matrix) / pv.matrix.sum() == pytest.approx(q.value)
    (_, turned), (_, back) = pv.rows
    assert turned.shape == (8, 8, 8) and 0.0 <= turned.min() and turned.max() <= 1.0
    # an image turned back by a correct prediction is the upright digit
    upright = digits_split(0).X_test[:8, 0]
    right = [i for i in range(8) if np.array_equal(back[i], upright[i])]
    assert len(right) >= 4


# ------------------------------------------------------------------------------------------------ contrastive

def test_contrastive_learning_finds_the_other_view_well_above_chance(contrastive):
    lab, items, result, _, _ = contrastive
    q = result.quality
    assert q.name == "top-1 contrastive accuracy" and q.baseline == pytest.approx(1 / 899)
    assert q.value >= CONTRASTIVE_BAR
    epochs = [m for m in items if isinstance(m, EpochMetrics)]
    # the epoch's held-out accuracy: chunks of at most 2 x 128 views, as in a training batch (900 views: four
    # near-equal chunks, 223-225 negatives each); the quality: every held-out view against the other 899 (harder)
    _, net = lab.trained_network()
    _, _, Xv, ids_v = lab.build_task().data
    assert epochs[-1].val_accuracy == pytest.approx(net.evaluate(Xv, ids_v, batch_size=256)[1])
    assert q.value == pytest.approx(net.evaluate(Xv, ids_v, batch_size=len(Xv))[1])
    assert epochs[-1].val_accuracy > q.value
    assert result.history.train_loss[-1] < result.history.train_loss[0]
    # StepMetrics' accuracy is the top-1 contrastive accuracy of about 2 × 128 views: far above chance (1/255);
    # measured 0.11 over the last epoch, 0.06 over the first
    steps = [m for m in items if isinstance(m, StepMetrics)]
    last = np.mean([m.accuracy for m in steps if m.epoch == 4])
    assert last > 10 / 255 and last > np.mean([m.accuracy for m in steps if m.epoch == 0]) + 0.02
    pv = [p for p in items if isinstance(p, PretextPreview)][-1].preview
    assert [name for name, _ in pv.rows] == ["view 1", "view 2"]
    n = pv.rows[0][1].shape[0]
    assert pv.matrix.shape == (2 * n, 2 * n)
    np.testing.assert_allclose(pv.matrix, pv.matrix.T, atol=1e-12)
    np.testing.assert_allclose(np.diag(pv.matrix), 1.0, atol=1e-6)
    # the two views of a digit are more alike than two views of different digits, on average
    pairs = np.mean([pv.matrix[i, i + n] for i in range(n)])
    others = pv.matrix[:n, n:][~np.eye(n, dtype=bool)].mean()
    assert pairs > others + 0.2


def test_the_linear_probe_on_the_contrastive_encoder_beats_the_random_encoder(contrastive):
    lab, _, _, probe, points = contrastive
    assert probe.fractions == (0.01, 0.05, 0.1, 1.0) and probe.counts == (13, 67, 135, 1347)
    assert probe.test_size == 450 and lab.probe_result is probe
    assert [(p.method, p.fraction) for p in points] == [(m, f) for m in METHODS for f in probe.fractions]
    assert probe.points() == points
    acc = probe.accuracy
    ten = probe.fractions.index(0.1)
    assert acc["self-supervised"][ten] >= acc["random"][ten] + PROBE_MARGIN
    assert acc["supervised"][-1] >= 0.9 and probe.supervised_accuracy >= 0.9
    for m in METHODS:
        assert acc[m][-1] > acc[m][0]                      # more labels help every encoder


def test_embeddings_give_2d_points_and_neighbours_per_encoder(contrastive):
    lab = contrastive[0]
    emb = lab.embeddings("pca", 120, query=5, k=6)
    assert list(emb.coords) == ["pixels", "self-supervised", "random", "supervised"]
    assert emb.images.shape == (120, 8, 8) and emb.labels.shape == (120,)
    for name in emb.coords:
        assert emb.coords[name].shape == (120, 2) and np.all(np.isfinite(emb.coords[name]))
        nb = emb.neighbours[name]
        assert len(nb) == 6 and 5 not in nb and len(set(nb.tolist())) == 6
        assert 0.0 <= emb.knn_agreement[name] <= 1.0
    # features trained with labels group the digits by class better than random ones
    assert emb.knn_agreement["supervised"] > emb.knn_agreement["random"]
    with pytest.raises(ValueInputError):
        lab.embeddings_job("umap")


def test_the_encoder_handed_to_the_playground_reads_raw_digits(contrastive):
    lab = contrastive[0]
    hand = lab.encoder_handoff()
    assert isinstance(hand, EncoderHandoff) and hand.input_scale == 1.0 and hand.preprocess == "none"
    assert hand.frozen == ("conv1", "conv2") and hand.layers == tuple(encoder_specs())
    net = Network(hand.input_shape, [*hand.layers, Linear(10)])
    net.load_state_dict(hand.state)                         # strict: the head is in the state too
    X, _ = datasets.load_digits()
    enc = lab.encoders()["self-supervised"]
    np.testing.assert_allclose(net.layer_outputs(X[:16])[len(hand.layers) - 1],
                               enc.forward((X[:16] * DIGITS_SCALE).astype(np.float32)), rtol=1e-5, atol=1e-5)
    probe_net = hand.network(freeze=True)
    assert probe_net.frozen == {"conv1", "conv2"} and probe_net.trainable_names == ["fc1.w", "fc1.b"]
    before = probe_net.state_dict()
    Trainer(probe_net, (X[:200], datasets.load_digits()[1][:200], None, None), lr=1e-2, epochs=1).run()
    after = probe_net.state_dict()
    assert np.array_equal(before["conv1.w"], after["conv1.w"]) and not np.array_equal(before["fc1.w"], after["fc1.w"])


# ------------------------------------------------------------------------------------------------ jobs

def test_cancelling_the_pretext_job_keeps_the_network_of_the_last_update():
    lab = SelfSupLab(SelfSupSettings(task="rotation", epochs=50, batch_size=64))
    job = lab.pretext_job(preview_every=1e9)
    steps = 0
    for item in job:
        if isinstance(item, StepMetrics):
            steps += 1
            if steps == 5:
                break
    job.close()
    assert lab.trained == ("rotation", 5) and lab.pretext_result is None
    with pytest.raises(StopIteration):
        next(job)
    # the kept network is usable (the probe would judge it): its encoder gives features
    assert lab.encoders()["self-supervised"].forward(digits_split(0).X_test[:3]).shape == (3, ENCODER_FEATURES)


def test_cancelling_the_probe_job_leaves_no_result(rotation):
    lab = rotation[0]
    job = lab.probe_job((0.1, 1.0))
    for item in job:
        if isinstance(item, ProbePoint):
            break
    job.close()
    assert lab.probe_result is None
    with pytest.raises(StopIteration):
        next(job)


def test_previews_arrive_during_training_when_asked_for():
    lab = SelfSupLab(SelfSupSettings(task="rotation", epochs=1, batch_size=256))
    items = []
    result = run_job(lab.pretext_job(preview_every=0.0, preview_images=4), items.append)
    previews = [p for p in items if isinstance(p, PretextPreview)]
    assert [p.iteration for p in previews] == list(range(result.iterations + 1))
    assert previews[0].preview.rows[0][1].shape == (4, 8, 8)
    assert isinstance(items[0], Progress)


# ------------------------------------------------------------------------------------------------ settings, errors

@pytest.mark.parametrize("changes", [{"temperature": 0.0}, {"temperature": -1.0}, {"task": "colour"},
                                     {"epochs": 0}, {"lr": 0.0}, {"batch_size": 1}, {"probe_steps": 0}])
def test_bad_settings_are_our_errors(changes):
    with pytest.raises(ValueInputError):
        SelfSupSettings(**changes)


def test_jobs_refuse_what_cannot_work():
    lab = SelfSupLab()
    with pytest.raises(ValueInputError, match="train a pretext task first"):
        lab.probe_job()
    with pytest.raises(ValueInputError, match="train a pretext task first"):
        lab.encoder_handoff()
    with pytest.raises(ValueInputError):
        SelfSupLab(settings={"task": "rotation"})
    with pytest.raises(ValueInputError, match="ViewSettings"):
        lab.set_options("contrastive", "strong")
    with pytest.raises(ValueInputError, match="no options"):
        lab.set_options("rotation", ViewSettings())
    with pytest.raises(ValueInputError):
        lab.pretext_job(preview_every=-1)


@pytest.mark.parametrize("fractions", [(0.0,), (1.5,), (), ("half",), 0.1])
def test_bad_fractions_are_refused(rotation, fractions):
    with pytest.raises(ValueInputError):
        rotation[0].probe_job(fractions)


def _photo_task(settings=None):
    """A tiny stand-in for a photograph task (3-channel patches, no class labels), built like a factory."""
    rng = np.random.default_rng(0)
    X = rng.random((40, 3, 8, 8))
    y = rng.integers(0, 4, 40)
    net = Network((3, 8, 8), [Conv2d(4, 3), Activation("relu"), Flatten(), Linear(4)], seed=0)
    return PretextTask(key="jigsaw", title="Jigsaw (test)", lecture="", network=net, encoder_layers=3,
                       data=(X, y, None, None), input_kind="photo",
                       preview_fn=lambda n, k: Preview((("patch", X[:k, 0]),)),
                       quality_fn=lambda n: Quality("accuracy", n.accuracy(X, y), 0.25, True, ""),
                       epochs=1, batch_size=20)


def test_a_photo_task_trains_but_cannot_be_probed(monkeypatch):
    monkeypatch.setattr(selfsup, "load_factory", lambda key: _photo_task)
    lab = SelfSupLab(SelfSupSettings(task="jigsaw", epochs=1, batch_size=20))
    result = run_job(lab.pretext_job())
    assert result.key == "jigsaw" and lab.trained == ("jigsaw", 2)
    for call in (lab.probe_job, lab.embeddings_job, lab.encoder_handoff):
        with pytest.raises(ValueInputError, match="photographs"):
            call()


def test_a_task_whose_module_is_missing_is_refused_when_built(monkeypatch):
    monkeypatch.setitem(TASKS, "inpainting", TaskEntry("inpainting", "Inpainting", "simulator.labs.no_such_module",
                                                       ("make_inpainting",), "digits"))
    with pytest.raises(ValueInputError, match="not available"):
        SelfSupLab(SelfSupSettings(task="inpainting")).build_task()
    monkeypatch.setitem(TASKS, "inpainting", TaskEntry("inpainting", "Inpainting", "simulator.labs.pretext",
                                                       ("make_no_such_task",), "digits"))
    with pytest.raises(ValueInputError, match="has no make_no_such_task"):
        selfsup.load_factory("inpainting")


def test_every_task_is_a_choice_and_a_buggy_preview_is_named(monkeypatch):
    choices = next(p for p in params_of(SelfSupSettings) if p.name == "task").choices
    assert choices == ("rotation", "contrastive", "inpainting", "autoencoder", "colourisation", "jigsaw")

    def broken(settings=None):
        task = _photo_task(settings)
        task.preview_fn = lambda n, k: 1 / 0
        return task
    monkeypatch.setattr(selfsup, "load_factory", lambda key: broken)
    with pytest.raises(selfsup.PreviewFailed, match="ZeroDivisionError"):
        run_job(SelfSupLab(SelfSupSettings(task="jigsaw")).pretext_job())


def test_setters_announce_changes_and_task_defaults_apply():
    lab = SelfSupLab()
    seen = []
    lab.changed.connect(seen.append)
    lab.set_settings(lab.settings)                          # unchanged: nothing to announce
    lab.set_settings(lab.settings.replace(seed=3))
    assert lab.options("contrastive") == ViewSettings() and lab.options("rotation") is None
    lab.set_options("contrastive", ViewSettings())          # the defaults: unchanged
    lab.set_options("contrastive", ViewSettings(noise=0.0, cutout=0))
    assert lab.options("contrastive").noise == 0.0
    task = run_job(lab.task_job("contrastive"))
    assert task.key == "contrastive" and task.network.temperature == lab.settings.temperature
    assert task.augment.views == ViewSettings(noise=0.0, cutout=0)   # the options reach the task
    lab.use_task_defaults(task)
    assert seen == ["settings", "options", "task"]
    s = lab.settings
    assert (s.task, s.epochs, s.lr, s.batch_size, s.seed) == ("contrastive", task.epochs, task.lr, task.batch_size, 3)
    rot = make_rotation(s)
    assert rot.encoder().num_classes == ENCODER_FEATURES    # PretextTask.encoder goes through encoder_of


# ------------------------------------------------------------------------------------------------ what the tab asks

def test_the_tab_reads_the_refusal_the_kept_network_and_other_images_neighbours(contrastive):
    lab = contrastive[0]
    assert SelfSupLab().refusal("the linear probe").startswith("train a pretext task first")
    assert lab.refusal("the linear probe") is None
    key, net = lab.trained_network()
    assert key == "contrastive" and net.specs == lab.build_task().network.specs      # the whole pretext network
    x = digits_split(0).X_test[:4]
    np.testing.assert_array_equal(net.forward(x), lab.trained_network()[1].forward(x))
    net.load_state_dict({k: np.zeros_like(v) for k, v in net.state_dict().items()})     # a copy: the lab's stays
    assert not np.array_equal(net.forward(x), lab.trained_network()[1].forward(x))
    enc = lab.encoders()["self-supervised"]
    np.testing.assert_allclose(lab.trained_network()[1].layer_outputs(x)[6], enc.forward(x), rtol=1e-6)
    emb = lab.embeddings("pca", 60, query=3, k=5)
    # another query's neighbours without projecting again: the same as asking the job for that query
    again = lab.embeddings("pca", 60, query=17, k=5)
    for name, nn in emb.nearest(17).items():
        np.testing.assert_array_equal(nn, again.neighbours[name])
    for name, nn in emb.nearest(3).items():
        np.testing.assert_array_equal(nn, emb.neighbours[name])
    with pytest.raises(ValueInputError):
        emb.nearest(60)
    s = selfsup.EmbedSettings()
    assert (s.projection, s.images, s.neighbours) == ("pca", 300, 8)
    with pytest.raises(ValueInputError):
        selfsup.EmbedSettings(projection="umap")
    # the latent space and the whole photo belong to their own tasks
    with pytest.raises(ValueInputError, match="autoencoder"):
        lab.latent_job()
    with pytest.raises(ValueInputError, match="colourisation"):
        lab.colourise_job()


def test_the_latent_codes_and_the_coloured_photo_come_from_the_kept_network():
    from simulator.labs.pretext_recon import AutoencoderSettings, ColourSettings, colourise_photo, latent_codes
    lab = SelfSupLab(SelfSupSettings(task="autoencoder", epochs=1, seed=2))
    lab.set_options("autoencoder", AutoencoderSettings(bottleneck=2))
    run_job(lab.pretext_job(preview_every=1e9))
    codes = run_job(lab.latent_job())
    _, net = lab.trained_network()
    want = latent_codes(net, 4, seed=2)
    np.testing.assert_array_equal(codes.codes, want.codes)
    np.testing.assert_array_equal(codes.labels, digits_split(2).y_test)
    # a 2-number bottleneck is the code itself: the encoder's output on the held-out digits
    np.testing.assert_allclose(codes.codes, lab.encoders()["self-supervised"].forward(digits_split(2).X_test),
                               rtol=1e-6)
    lab = SelfSupLab(SelfSupSettings(task="colourisation", epochs=1, batch_size=32))
    lab.set_options("colourisation", ColourSettings(patches=200))
    run_job(lab.pretext_job(preview_every=1e9))
    grey, pred, true = run_job(lab.colourise_job("flower.jpg", 96))
    expected = colourise_photo(lab.trained_network()[1], "flower.jpg", 96)
    for got, want in zip((grey, pred, true), expected):
        np.testing.assert_array_equal(got, want)
    assert grey.shape == (96, 96, 3) and np.allclose(grey[..., 0], grey[..., 1], atol=0.02)
    assert lab.refusal("the linear probe") is not None and "photographs" in lab.refusal("the linear probe")


# ------------------------------------------------------------------------------------------------ threads, titles

def test_the_window_s_calls_never_wait_for_the_epoch_end_evaluation(monkeypatch):
    """The job holds the lock for an update only: while it is inside the epoch-end evaluation (held there by an
    Event), every accessor the tab calls returns at once from another thread, with the weights of the last update."""
    inside, release = threading.Event(), threading.Event()
    evaluate = Trainer.evaluate

    def held_evaluate(trainer):
        inside.set()
        release.wait(30)                     # a bound: a failing test ends instead of hanging
        return evaluate(trainer)
    monkeypatch.setattr(Trainer, "evaluate", held_evaluate)
    lab = SelfSupLab(SelfSupSettings(task="rotation", epochs=1, batch_size=2048, seed=0))
    results, errors = [], []
    worker = threading.Thread(target=lambda: results.append(run_job(lab.pretext_job(preview_every=1e9))))
    worker.start()
    try:
        assert inside.wait(60), "the job never reached the epoch-end evaluation"
        answers = {}

        def ask():
            try:
                answers["trained"] = lab.trained
                answers["refusal"] = lab.refusal("the linear probe")
                answers["network"] = lab.trained_network()
                answers["encoders"] = lab.encoders()
                answers["handoff"] = lab.encoder_handoff()
            except Exception as exc:          # noqa: BLE001 (reported below)
                errors.append(exc)
        caller = threading.Thread(target=ask)
        caller.start()
        caller.join(5.0)                     # each call copies a small network: milliseconds
        blocked = caller.is_alive()
    finally:
        release.set()
        worker.join(60)
    assert not blocked, "an accessor waited for the job's epoch-end evaluation"
    assert not errors, errors
    assert answers["trained"] == ("rotation", 1) and answers["refusal"] is None
    assert set(answers["encoders"]) == {"self-supervised", "random"}
    assert answers["handoff"].title == "Rotation prediction encoder"
    # the copies are the weights after the one update, which the evaluation did not change
    assert results and results[0].iterations == 1
    key, net = answers["network"]
    final = lab.trained_network()[1].state_dict()
    assert key == "rotation" and all(np.array_equal(v, final[k]) for k, v in net.state_dict().items())


def test_each_registry_entry_is_titled_as_its_task_titles_itself():
    """TASKS is the one source of a task's title: the built task of every entry carries its entry's title, and
    every entry names factories its module has (no dead fallback names)."""
    from simulator.labs.pretext_recon import ColourSettings, JigsawSettings
    lab = SelfSupLab()
    lab.set_options("colourisation", ColourSettings(patches=200))     # small photo tasks: built in a moment
    lab.set_options("jigsaw", JigsawSettings(puzzles=500))
    for key, entry in TASKS.items():
        module = importlib.import_module(entry.module)
        assert all(callable(getattr(module, name, None)) for name in entry.factories), entry
        task = lab.build_task(lab.settings.replace(task=key))
        assert (task.key, task.title) == (key, entry.title)
    labels = next(p for p in params_of(SelfSupSettings) if p.name == "task").choice_labels
    assert labels == tuple(e.title + (" (photos)" if e.input_kind == "photo" else "") for e in TASKS.values())
