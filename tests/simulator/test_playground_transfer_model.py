"""The playground model's freezing, preprocessing option and test-time evaluation (no Qt)."""
from __future__ import annotations

import numpy as np
import pytest

from simulator.core.errors import ValueInputError
from simulator.core.jobs import run_job
from simulator.data.preprocess import covariance, fit_preprocess
from simulator.labs.playground import (
    DIGITS,
    DataSettings,
    PlaygroundLabModel,
    TrainSettings,
    compute_visuals,
)
from simulator.nn.evaluation import EvalSettings, plain_proba
from simulator.nn.layers import Activation, Conv2d, Dropout, Flatten, Linear
from simulator.nn.network import Network


def toy_model(**data) -> PlaygroundLabModel:
    m = PlaygroundLabModel(data=DataSettings(**data) if data else None, train=TrainSettings(epochs=3))
    m.set_raw_data(*run_job(m.data_job()))
    m.set_network([Linear(16), Activation("relu"), Linear(8), Activation("relu")])
    return m


def test_frozen_layers_reach_the_session_and_are_validated():
    m = toy_model()
    seen = []
    m.changed.connect(seen.append)
    assert m.freezable_layers() == [("fc1", "Linear 16"), ("fc2", "Linear 8"), ("fc3", "Linear 3")]
    m.set_frozen(["fc1"])
    assert m.frozen == ("fc1",) and seen[-1] == "network"
    s = m.new_session()
    assert s.network.frozen == {"fc1"} and s.trainer.param_names == ["fc2.w", "fc2.b", "fc3.w", "fc3.b"]
    before = s.network.state_dict()
    s.trainer.run()
    assert s.network.params["fc1.w"].tobytes() == before["fc1.w"].tobytes()
    with pytest.raises(ValueInputError, match="nothing to train"):
        m.set_frozen(["fc1", "fc2", "fc3"])
    with pytest.raises(ValueInputError, match="no parameters"):
        m.set_frozen(["relu1"])
    assert m.frozen == ("fc1",)
    # a changed stack keeps the frozen layers it still has, and never all of them
    m.set_network([Linear(16), Activation("relu")])
    assert m.frozen == ("fc1",)
    m.set_frozen(["fc1"])
    m.set_network([])                   # only the output layer fc1 is left: it must train
    assert m.frozen == ()


def test_pca_whitening_option_fits_on_training_points_only():
    m = toy_model(preprocess="PCA whiten")
    d = m.data
    Xtr, _, Xv, _ = d.split
    assert np.abs(covariance(Xtr) - np.eye(2)).max() < 1e-10
    w = fit_preprocess(d.split_raw[0], "PCA whiten")
    np.testing.assert_allclose(Xv, w.apply(d.split_raw[2]), rtol=1e-12)
    assert np.abs(covariance(Xv) - np.eye(2)).max() > 1e-6        # not fitted on the validation points
    s = m.new_session(grid=(-1.0, 1.0, -1.0, 1.0))
    v = compute_visuals(s)                                         # the grid goes through the same transform
    assert v.region.shape[:2] == (150, 150)
    np.testing.assert_allclose(s.transform(np.array([[0.3, 0.1]])), w.apply([[0.3, 0.1]]))
    with pytest.raises(ValueInputError, match="PCA whitening is offered for the 2-D points"):
        DataSettings(dataset=DIGITS, points=100, preprocess="PCA whiten")
    assert m.dataset_defaults(DIGITS)["preprocess"] == "normalise"


def test_evaluation_job_scores_a_copy_of_the_weights_on_validation():
    m = toy_model()
    m.set_network([Linear(16), Activation("relu"), Dropout(0.3)])
    s = m.new_session()
    s.trainer.run()
    r = run_job(m.evaluation_job(s, EvalSettings(passes=3)))
    Xv, yv = s.trainer.Xv, s.trainer.yv
    assert r.n == len(Xv) and np.isnan(r.tta) and r.random_layers == 1
    assert r.plain == pytest.approx(np.mean(np.argmax(plain_proba(s.network, Xv), 1) == yv))


# ---------------------------------------------------------------------------------------------------- review fixes

def test_listing_and_validating_frozen_layers_allocates_no_network(monkeypatch):
    """A 17M-parameter MLP: the Freeze panel's list and its validation read shapes only (no weights drawn)."""
    m = PlaygroundLabModel(data=DataSettings(dataset=DIGITS, points=60), train=TrainSettings(epochs=1))
    m.set_raw_data(*run_job(m.data_job()))
    big = [Flatten(), Linear(4096), Activation("relu"), Linear(4096), Activation("relu")]

    def no_weights(*_a, **_k):
        raise AssertionError("a network was built (its weights drawn) just to list or check the layers")

    monkeypatch.setattr(Network, "reset_parameters", no_weights)
    m.set_network(big)
    assert m.freezable_layers() == [("fc1", "Linear 4096"), ("fc2", "Linear 4096"), ("fc3", "Linear 10")]
    m.set_frozen(["fc1", "fc2"])
    assert m.frozen == ("fc1", "fc2")
    with pytest.raises(ValueInputError, match="nothing to train"):
        m.set_frozen(["fc1", "fc2", "fc3"])
    with pytest.raises(ValueInputError, match="no layer 'fc9'"):
        m.set_frozen(["fc9"])
    with pytest.raises(ValueInputError, match=r"layer 3 \(ReLU\) has no parameters"):
        m.set_frozen(["relu1"])
    m.set_network(big[:3])                          # a changed stack is checked from shapes too
    assert m.frozen == ("fc1",) and m.frozen_notice == "fc2 (Linear 4096) was removed or replaced: no longer frozen"


def test_a_frozen_layer_follows_its_record_when_a_layer_is_inserted_above_it():
    m = toy_model()                                 # fc1 Linear 16, relu, fc2 Linear 8, relu, fc3 output
    m.set_frozen(["fc1"])
    m.set_network([Linear(32), Linear(16), Activation("relu"), Linear(8), Activation("relu")])
    assert m.frozen == ("fc2",)
    assert m.frozen_notice == "frozen fc1 is now fc2 (the layers before it changed)"
    s = m.new_session()
    layer = {l.name: l for l in s.network.layers}["fc2"]
    assert s.network.frozen == {"fc2"} and layer.spec == Linear(16)
    assert s.trainer.param_names == ["fc1.w", "fc1.b", "fc3.w", "fc3.b", "fc4.w", "fc4.b"]
    assert "frozen fc1 is now fc2" in m.notice       # the status line says it once, for the first session
    assert m.new_session() and m.notice == ""
    # removing the layer above moves it back; editing its width keeps it frozen (same kind, same place)
    m.set_network([Linear(16), Activation("relu"), Linear(8), Activation("relu")])
    assert m.frozen == ("fc1",) and m.frozen_notice == "frozen fc2 is now fc1 (the layers before it changed)"
    m.set_network([Linear(24), Activation("relu"), Linear(8), Activation("relu")])
    assert m.frozen == ("fc1",) and m.frozen_notice == ""
    # replaced by another kind: no longer frozen
    m.set_network([Conv2d(4, 3), Activation("relu"), Linear(8), Activation("relu")])
    assert m.frozen == () and m.frozen_notice == "fc1 (Linear 24) was removed or replaced: no longer frozen"


def test_removing_a_frozen_layer_unfreezes_it_instead_of_freezing_whatever_takes_its_name():
    m = toy_model()
    m.set_frozen(["fc2"])                           # Linear 8
    m.set_network([Linear(16), Activation("relu")])   # fc2 is now the output layer: it must not be frozen
    assert m.frozen == () and m.frozen_notice == "fc2 (Linear 8) was removed or replaced: no longer frozen"
    assert m.new_session().network.frozen == frozenset()
    # the body and the output frozen, then the only other trainable layer removed: the output layer trains again
    m.set_network([Linear(16), Activation("relu"), Linear(8), Activation("relu")])
    m.set_frozen(["fc1", "fc3"])
    m.set_network([Linear(16), Activation("relu")])
    assert m.frozen == ("fc1",)
    assert m.frozen_notice == "the output layer fc2 trains again (freezing every layer leaves nothing to train)"


def test_a_stack_changed_while_the_data_are_being_made_keeps_no_stale_frozen_name():
    m = toy_model()
    m.set_frozen(["fc2"])                           # Linear 8
    assert m.set_data_settings(DataSettings(dataset=DIGITS, points=80))   # the digits are being made: no data
    assert m.data is None
    m.set_network([Conv2d(4, 3, pad=1), Activation("relu"), Flatten()])
    assert m.frozen == () and "fc2 (Linear 8) was removed" in m.frozen_notice
    m.set_raw_data(*run_job(m.data_job()))
    s = m.new_session()                            # used to fail: "there is no layer 'fc2' to freeze"
    assert s.network.frozen == frozenset()
    # and the Freeze panel can check a choice while the data are being made (shapes from the data kind)
    m.set_frozen(["conv1"])
    assert m.set_data_settings(DataSettings(dataset=DIGITS, points=90)) and m.data is None
    with pytest.raises(ValueInputError, match="no layer 'fc7'"):
        m.set_frozen(["fc7"])
    assert m.frozen == ("conv1",)
