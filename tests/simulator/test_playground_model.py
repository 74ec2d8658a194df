"""The playground's Qt-free model: data settings, training settings from the declarations, the training job and its
hand-offs, and refusals with the learner's words."""
from __future__ import annotations

import numpy as np
import pytest

from simulator.core.errors import ShapeError, StudioError, ValueInputError
from simulator.core.jobs import run_job
from simulator.functional.optim import OPTIMIZERS
from simulator.functional.schedules import CosineDecay, Warmup
from simulator.labs.interpret_lab import ImageSet
from simulator.labs.playground import (DIGITS, DataSettings, PlaygroundLabModel, TrainSettings, TrainUpdate,
                                       compute_visuals, region_rgba, training_job, visuals_job)
from simulator.nn.layers import Activation, Conv2d, Flatten, Linear, MaxPool


def toy_model(**train) -> PlaygroundLabModel:
    m = PlaygroundLabModel(train=TrainSettings(**train) if train else None)
    m.set_raw_data(*run_job(m.data_job()))
    m.set_network([Linear(16), Activation("relu")])
    return m


def test_data_are_split_stratified_and_standardised_with_training_statistics():
    m = toy_model()
    d = m.data
    assert d.X_raw.shape == (300, 2) and d.num_classes == 3
    Xtr, ytr, Xv, yv = d.split
    assert len(Xv) == 60 and np.bincount(yv).tolist() == [20, 20, 20]       # 20 % of each class of 100
    np.testing.assert_allclose(Xtr.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(Xtr.std(axis=0), 1)
    np.testing.assert_allclose(d.standardizer.apply(d.split_raw[2]), Xv)
    # only the split changed: no new data, same points
    assert m.set_data_settings(m.data_settings.replace(val_fraction=0.5, preprocess="none")) is False
    assert len(m.data.split[2]) == 150 and m.data.standardizer is None
    np.testing.assert_array_equal(m.data.split[0], m.data.split_raw[0])
    assert m.set_data_settings(m.data_settings.replace(noise=0.3)) is True   # new points: a data job


def test_points_edited_by_clicks_and_refusals():
    m = toy_model()
    m.add_point(0.5, -0.5, 2)
    assert len(m.data.X_raw) == 301 and m.data.y_raw[-1] == 2
    m.remove_nearest(0.5, -0.5)
    assert len(m.data.X_raw) == 300
    with pytest.raises(ValueInputError, match="class must be ≤ 2"):
        m.add_point(0.0, 0.0, 3)
    with pytest.raises(ValueInputError, match="x must be a finite number"):
        m.add_point(float("nan"), 0.0, 0)
    assert len(m.data.X_raw) == 300


def test_data_settings_refuse_bad_values():
    with pytest.raises(ValueInputError, match="at most that many points"):
        DataSettings(dataset=DIGITS, points=2000)
    with pytest.raises(ValueInputError, match="validation must be ≤ 0.8"):
        DataSettings(val_fraction=0.9)
    with pytest.raises(ValueInputError, match="unknown data set"):
        DataSettings(dataset="mnist")


def test_optimizer_hyperparameters_come_from_the_declarations():
    m = toy_model()
    m.set_optimizer("SGD")
    assert m.train.lr == OPTIMIZERS["SGD"].params[0].default == 0.1
    m.set_optimizer("Momentum")
    assert m.hyper.as_dict() == {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.0}
    m.set_training(m.train.replace(lr=0.02), {"momentum": 0.5})
    assert m.optimizer_kwargs() == {"lr": 0.02, "momentum": 0.5, "weight_decay": 0.0}
    m.set_optimizer("Adam")
    assert m.optimizer_kwargs()["betas"] == (0.9, 0.999)
    s = m.new_session()
    assert type(s.trainer.optimizer).__name__ == "Adam" and s.trainer.optimizer.lr == 0.01
    with pytest.raises(ValueInputError, match="Adam has no hyperparameter 'momentum'"):
        m.set_training(m.train, {"momentum": 0.9})
    with pytest.raises(ValueInputError, match="learning rate must be"):
        m.train.replace(lr=-1)


def test_schedule_with_warmup_reaches_the_trainer_and_total_steps_follows_the_run():
    m = toy_model(epochs=10, batch_size=60)
    # 240 training points in batches of 60: 4 updates an epoch, 40 in the run
    assert m.total_steps() == 40
    m.set_schedule("Cosine", warmup={"warmup_steps": 4})
    s = m.schedule()
    assert isinstance(s, Warmup) and isinstance(s.inner, CosineDecay) and s.inner.total_steps == 40
    assert s.lr_at(0) == 0.0 and s.lr_at(4) == pytest.approx(m.train.lr)
    # cosine: half-way through the decay the rate is half of a0
    assert s.lr_at(4 + 20) == pytest.approx(m.train.lr / 2)
    m.set_schedule("none")
    assert m.schedule() is None
    with pytest.raises(ValueInputError, match="unknown schedule"):
        m.set_schedule("exponential")
    with pytest.raises(ValueInputError, match="has no parameter 'gamma'"):
        m.set_schedule("Cosine", {"gamma": 0.5})
    assert m.train.schedule == "none"


def test_training_job_yields_one_update_per_step_with_epoch_metrics_and_pictures():
    m = toy_model(epochs=3, batch_size=60)
    s = m.new_session()
    updates = []
    result = run_job(training_job(s, viz_interval=1e9), updates.append)
    assert result == 12 and len(updates) == 12
    assert all(isinstance(u, TrainUpdate) for u in updates)
    assert [u.step.iteration for u in updates] == list(range(1, 13))
    assert [u.epoch.epoch for u in updates if u.epoch is not None] == [0, 1, 2]
    pictures = [u.step.iteration for u in updates if u.visuals is not None]
    assert pictures == [1, 12]           # requested at the start (a fresh session) and after the last update
    assert updates[-1].visuals.region.shape == (150, 150, 4)


def test_a_diverging_run_names_the_iteration():
    m = toy_model(optimizer="SGD", lr=1e9)
    s = m.new_session()
    with pytest.raises(StudioError, match="Training stopped at iteration"):
        run_job(training_job(s))


def test_visuals_job_and_region_colours():
    m = toy_model()
    s = m.new_session()
    v = run_job(visuals_job(s))
    assert v.iteration == 0 and v.region.shape == (150, 150, 4)
    # a certain prediction of class 0 is its colour mixed 52 % over white; an unsure one is almost white
    rgb = np.array([[0.0, 0.0, 255.0], [255.0, 0.0, 0.0]])
    out = region_rgba(np.array([[1.0, 0.0], [0.5, 0.5], [0.5, 0.5], [0.5, 0.5]]), rgb, 2).reshape(4, 4)
    assert out[0, :3].tolist() == [round(255 - 0.52 * 255), round(255 - 0.52 * 255), 255]
    assert out[1, :3].tolist() == [round(255 - 0.1 * 127.5), round(255 - 0.1 * 255), round(255 - 0.1 * 127.5)]


def test_digits_snapshot_is_what_the_interpretability_lab_takes():
    m = PlaygroundLabModel()
    m.set_data_settings(m.data_settings.replace(**m.dataset_defaults(DIGITS)))
    assert m.data_settings.points == 1797
    m.set_data_settings(m.data_settings.replace(points=300))
    m.set_raw_data(*run_job(m.data_job()))
    assert m.train.epochs == 20 and m.train.batch_size == 64 and m.train.lr == 0.003     # the digits' defaults
    m.set_network([Conv2d(4, 3, pad=1), Activation("relu"), MaxPool(2, 2), Flatten()])
    s = m.new_session()
    run_job(training_job(s), lambda u: u.step.iteration >= 3)
    net, data, stats = m.snapshot(s)
    assert net is not s.network and s.iteration == 3
    for k, v in s.network.params.items():
        np.testing.assert_array_equal(net.params[k], v)
    images = ImageSet.from_data(data, stats)
    np.testing.assert_allclose(images.raw, m.data.split_raw[2], atol=1e-12)
    v = compute_visuals(s)
    assert v.confusion.shape == (10, 10) and v.confusion.sum() == len(m.data.split[2])
    assert v.weights.shape == (4, 3, 3) and v.maps.shape == (4, 8, 8)


def test_apply_config_from_the_search_lab():
    m = toy_model()
    assert m.apply_config({"optimizer": "AdamW", "lr": 0.002, "weight_decay": 0.05, "val_accuracy": 0.9}) == ""
    assert (m.train.optimizer, m.train.lr, m.hyper.weight_decay) == ("AdamW", 0.002, 0.05)
    before = (m.train, m.hyper)
    with pytest.raises(ValueInputError, match="unknown optimizer"):
        m.apply_config({"optimizer": "Lion"})
    with pytest.raises(ValueInputError, match="weight decay must be ≤ 1"):
        m.apply_config({"optimizer": "Adam", "weight_decay": 5.0})
    assert (m.train, m.hyper) == before


def test_loaded_weights_survive_a_new_session_while_they_fit(tmp_path):
    m = toy_model()
    s = m.new_session()
    run_job(training_job(s), lambda u: u.step.iteration >= 5)
    path = tmp_path / "w.npz"
    m.save_weights(s, path)
    s2 = m.new_session()
    m.load_weights(s2, path)
    s3 = m.new_session()
    for k, v in s.network.params.items():
        np.testing.assert_array_equal(s3.network.params[k], v)
    assert "started from the weights loaded from w.npz" in m.notice
    m.set_network([Linear(8), Activation("relu")])
    m.new_session()
    assert m.loaded is None and "do not fit" in m.notice
    with pytest.raises(ShapeError):
        m.load_weights(m.new_session(), path)


def test_new_data_settings_drop_the_old_points_until_their_data_arrive():
    m = toy_model()
    assert m.data.kind == "toy"
    assert m.set_data_settings(DataSettings(dataset=DIGITS, points=300)) is True
    assert m.data is None                                   # never digits settings over 2-D points
    with pytest.raises(ValueInputError, match="2-D data sets only"):
        m.add_point(0.1, 0.2, 0)
    with pytest.raises(ValueInputError):
        m.build_network()


def test_the_network_objective_is_validated_by_its_declaration():
    m = toy_model()
    with pytest.raises(ValueInputError, match="unknown initialisation 'bogus'"):
        m.set_network([Linear(8)], init="bogus")
    with pytest.raises(ValueInputError, match="regularisation λ must be ≤ 10"):
        m.set_network([Linear(8)], reg=50.0)
    m.set_network([Linear(8)], loss="svm", reg=1e-3, reg_kind="l1")
    net = m.build_network()
    assert (net.loss_kind, net.reg, net.reg_kind, net.init) == ("svm", 1e-3, "l1", "kaiming")


def test_an_encoder_from_the_self_supervised_lab_is_adopted_for_probing_or_fine_tuning():
    import dataclasses

    from simulator.labs.pretext_task import DIGITS_SCALE
    from simulator.labs.selfsup import SelfSupLab, SelfSupSettings
    lab = SelfSupLab(SelfSupSettings(task="rotation", epochs=1))
    run_job(lab.pretext_job(preview_every=1e9))
    hand = lab.encoder_handoff()
    m = toy_model(optimizer="SGD")
    m.set_network([Linear(8)], reg=1e-3)
    events = []
    m.changed.connect(events.append)
    assert m.adopt_encoder(hand) is True                     # toy points -> all the digits: a data job
    assert events == ["training", "network", "data", "loaded"]
    s = m.data_settings
    assert (s.dataset, s.points, s.preprocess) == (DIGITS, 1797, "none") and m.data is None
    assert m.network_settings.layers == hand.layers and m.network_settings.objective.reg == 0.0
    assert m.frozen == ("conv1", "conv2") and m.train.epochs == 20            # the digits' training defaults
    m.set_raw_data(*run_job(m.data_job()))
    session = m.new_session()
    net = session.network
    assert net.frozen == {"conv1", "conv2"} and "Self-supervised" in m.notice
    state = net.state_dict()
    for k, v in hand.state.items():
        np.testing.assert_array_equal(state[k], v)
    # the raw digits through the adopted encoder give the lab's encoder's features of the digits in [0, 1]
    X = m.data.split[0][:10]
    assert X.max() > 1.0                                         # raw 0..16: preprocessing "none"
    np.testing.assert_allclose(net.layer_outputs(X)[len(hand.layers) - 1],
                               lab.encoders()["self-supervised"].forward((X * DIGITS_SCALE).astype(np.float32)),
                               rtol=1e-4, atol=1e-5)
    # fine-tune all: same weights, nothing frozen; the data stay (no data job this time)
    assert m.adopt_encoder(hand, freeze=False) is False
    assert m.frozen == () and m.new_session().network.frozen == frozenset()
    np.testing.assert_array_equal(m.new_session().network.state_dict()["conv1.w"], hand.state["conv1.w"])
    # refused hand-offs change nothing
    before = (m.data_settings, m.network_settings, m.loaded[0])
    with pytest.raises(ValueInputError, match="EncoderHandoff"):
        m.adopt_encoder({"layers": hand.layers})
    with pytest.raises(ValueInputError, match="raw digits"):
        m.adopt_encoder(dataclasses.replace(hand, input_scale=DIGITS_SCALE))
    with pytest.raises(ShapeError):
        m.adopt_encoder(dataclasses.replace(hand, state={**hand.state, "conv1.w": hand.state["conv1.w"][:2]}))
    with pytest.raises(ValueInputError):
        m.adopt_encoder(hand, freeze="yes")
    assert (m.data_settings, m.network_settings, m.loaded[0]) == before
