"""Freezing layers (transfer learning): no gradient, no update, bit-identical parameters, and our own errors."""
from __future__ import annotations

import numpy as np
import pytest

from simulator.core.errors import ValueInputError
from simulator.core.jobs import run_job
from simulator.engine.api import evaluate
from simulator.labs.search import lr_sweep_job
from simulator.nn.layers import ResidualBlock
from simulator.nn.network import Activation, BatchNorm, Conv2d, Flatten, Linear, Network
from simulator.nn.trainer import Trainer


def mlp(**kw) -> Network:
    return Network((2,), [Linear(8), Activation("relu"), Linear(8), Activation("relu"), Linear(3)], seed=1, **kw)


def data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 2))
    return X, (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0.5)


def test_frozen_layers_are_bit_identical_after_training_and_the_rest_changes():
    net = mlp(reg=1e-2)
    net.freeze(["fc1", "fc2"])
    before = net.state_dict()
    X, y = data()
    trainer = Trainer(net, (X, y, None, None), optimizer="AdamW", lr=1e-2, batch_size=16, epochs=4,
                      weight_decay=0.1)     # decoupled decay would shrink a frozen weight too: it must not
    trainer.run()
    for k in ("fc1.w", "fc1.b", "fc2.w", "fc2.b"):
        assert net.params[k].tobytes() == before[k].tobytes()
    for k in ("fc3.w", "fc3.b"):
        assert not np.array_equal(net.params[k], before[k])
    # the optimizer holds only the trainable arrays, and the norm plot shows only trainable layers
    assert trainer.param_names == ["fc3.w", "fc3.b"]
    assert trainer.history.norm_layers == ("fc3",)


def test_frozen_layers_get_no_gradient_and_the_others_the_same_gradient():
    X, y = data(10)
    full, frozen = mlp(reg=0.1), mlp(reg=0.1)
    frozen.freeze("fc1")
    lf, gf = full.loss(X, y, "eval")
    lz, gz = frozen.loss(X, y, "eval")
    assert lf == lz
    assert list(gz) == ["fc2.w", "fc2.b", "fc3.w", "fc3.b"]
    for k in gz:
        np.testing.assert_array_equal(gz[k], gf[k])
    # the input gradient still flows through a frozen layer (saliency maps need it)
    scores, caches = frozen.forward_with_caches(X)
    d = np.ones_like(scores)
    np.testing.assert_allclose(frozen.backward(d, caches)[1], full.backward(d, full.forward_with_caches(X)[1])[1],
                               rtol=1e-6)


def test_training_backward_skips_the_weight_gradient_work_of_frozen_layers(monkeypatch):
    net = mlp()
    net.freeze(["fc2"])
    calls = []
    for cls in {type(layer.spec) for layer in net.layers}:
        orig_b, orig_i = cls.backward, cls.backward_input
        monkeypatch.setattr(cls, "backward",
                            lambda self, d, c, o=orig_b: (calls.append(("full", self)), o(self, d, c))[1])
        monkeypatch.setattr(cls, "backward_input",
                            lambda self, d, c, o=orig_i: (calls.append(("input", self)), o(self, d, c))[1])
    X, y = data(8)
    net.loss(X, y, "eval")
    # backward runs fc3 (full), relu, fc2 (input only: frozen), relu, fc1 (full)
    assert [(k, s.label()) for k, s in calls] == [("full", "Linear 3"), ("full", "ReLU"), ("input", "Linear 8"),
                                                  ("full", "ReLU"), ("full", "Linear 8")]
    calls.clear()
    net.set_frozen(["fc1", "fc2"])
    net.loss(X, y, "eval")
    # a linear probe: fc3 alone; nothing below the lowest trainable layer needs a gradient
    assert [(k, s.label()) for k, s in calls] == [("full", "Linear 3")]


def test_linear_backward_input_equals_the_full_backwards_dx():
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((5, 4)), rng.standard_normal((4, 3))
    d = rng.standard_normal((5, 3))
    spec = Linear(3)
    np.testing.assert_array_equal(spec.backward_input(d, (x, w)), spec.backward(d, (x, w))[0])


def test_freezing_every_layer_or_a_layer_without_parameters_is_refused():
    net = mlp()
    with pytest.raises(ValueInputError, match="freezing every layer leaves nothing to train"):
        net.freeze(["fc1", "fc2", "fc3"])
    assert net.frozen == frozenset()
    net.freeze("fc1")
    with pytest.raises(ValueInputError, match="nothing to train"):
        net.freeze(["fc2", "fc3"])
    assert net.frozen == {"fc1"}
    with pytest.raises(ValueInputError, match="no parameters to freeze"):
        net.freeze("relu1")
    with pytest.raises(ValueInputError, match="no layer 'fc9'"):
        net.freeze("fc9")
    net.unfreeze()
    assert net.frozen == frozenset() and net.trainable_names == list(net.params)


def test_copies_keep_the_frozen_set_and_a_conv_net_with_batch_norm_trains_frozen():
    net = Network((1, 6, 6), [Conv2d(4, 3, pad=1), BatchNorm(), Activation("relu"), Flatten(), Linear(3)], seed=0)
    net.freeze(["conv1", "bn1"])
    assert net.copy().frozen == {"conv1", "bn1"} and net.astype(np.float64).frozen == {"conv1", "bn1"}
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((20, 1, 6, 6)), rng.integers(0, 3, 20)
    before = net.state_dict()
    Trainer(net, (X, y, None, None), optimizer="Momentum", lr=0.1, batch_size=10, epochs=2).run()
    for k in ("conv1.w", "conv1.b", "bn1.gamma", "bn1.beta"):
        assert net.params[k].tobytes() == before[k].tobytes()
    assert not np.array_equal(net.params["fc1.w"], before["fc1.w"])


# ---------------------------------------------------------------------------------------------------- review fixes

@pytest.mark.parametrize("change", ["freeze", "unfreeze"])
def test_changing_the_frozen_layers_after_the_trainer_is_made_is_refused_at_the_next_step(change):
    net = mlp()
    if change == "unfreeze":
        net.freeze("fc1")
    X, y = data()
    tr = Trainer(net, (X, y, None, None), optimizer="Adam", lr=1e-2, batch_size=16, epochs=2)
    tr.step()
    before = net.state_dict()
    net.freeze("fc1") if change == "freeze" else net.unfreeze()
    with pytest.raises(ValueInputError, match="the frozen layers changed after the Trainer was made: start a new "
                                              "training"):
        tr.run()
    # refused before anything moved: no update, no history row
    assert all(net.params[k].tobytes() == v.tobytes() for k, v in before.items() if k in net.params)
    assert tr.iteration == 1 and len(tr.history) == 1
    # the same frozen set again: training goes on
    net.set_frozen(tr.frozen)
    tr.run()
    assert tr.done


def test_the_lr_sweep_trains_only_the_trainable_layers_of_a_frozen_network():
    net = mlp()
    net.freeze(["fc1", "fc2"])
    before = net.state_dict()
    X, y = data(128)
    r = run_job(lr_sweep_job(net, X, y, lr_min=1e-4, lr_max=1e-1, iters=12, batch_size=16, optimizer="Momentum"))
    assert len(r.losses) == len(r.lrs) == 12 and np.all(np.isfinite(r.losses))
    for k in ("fc1.w", "fc1.b", "fc2.w", "fc2.b"):
        assert net.params[k].tobytes() == before[k].tobytes()
    assert not np.array_equal(net.params["fc3.w"], before["fc3.w"])


def _moved_statistics(net: Network) -> None:
    """Running statistics far from their initial 0 and 1, so train- and eval-mode batch norm differ clearly."""
    for k, v in net.named_buffers():
        v[...] = np.linspace(-0.5, 0.5, v.size) if k.endswith("mean") else np.linspace(0.5, 2.0, v.size)


def test_a_frozen_batch_norm_runs_in_eval_mode_in_training_and_its_statistics_stay_bit_identical():
    X, y = data(64)
    layers = [Linear(6), BatchNorm(), Activation("relu"), Linear(3)]
    net = Network((2,), layers, dtype=np.float64, seed=3)
    _moved_statistics(net)
    ref = net.copy()                       # unfrozen: its eval-mode pass is what the frozen layer must run
    net.freeze("bn1")
    # the training pass of the frozen network is the eval-mode pass: same loss, same gradients (through bn1's
    # eval-mode backward: gamma / sqrt(running_var + eps))
    loss, grads = net.loss(X[:16], y[:16], "train")
    ref_loss, ref_grads = ref.loss(X[:16], y[:16], "eval")
    assert loss == ref_loss
    assert list(grads) == ["fc1.w", "fc1.b", "fc2.w", "fc2.b"]
    for k in grads:
        np.testing.assert_array_equal(grads[k], ref_grads[k])
    # and so is the graph expansion of a training step
    assert float(evaluate(net.to_graph(X[:16], y[:16], "train")).value) == pytest.approx(loss, rel=1e-12)
    before = net.state_dict()
    Trainer(net, (X, y, None, None), optimizer="Momentum", lr=0.1, batch_size=16, epochs=3).run()
    for k in ("bn1.gamma", "bn1.beta", "bn1.running_mean", "bn1.running_var"):
        assert net.state_dict()[k].tobytes() == before[k].tobytes(), k
    assert not np.array_equal(net.params["fc1.w"], before["fc1.w"])


def test_the_inner_batch_norms_of_a_frozen_residual_block_stay_bit_identical():
    X, y = data(64)
    net = Network((2,), [Linear(4), ResidualBlock(), ResidualBlock(), Linear(3)], seed=2)
    _moved_statistics(net)
    net.freeze(["fc1", "res1"])
    before = net.state_dict()
    Trainer(net, (X, y, None, None), optimizer="Adam", lr=1e-2, batch_size=16, epochs=2).run()
    after = net.state_dict()
    inner = [k for k in before if k.startswith("res1.")]
    assert {"res1.bn1.running_mean", "res1.bn2.running_var"} <= set(inner)
    for k in inner:
        assert after[k].tobytes() == before[k].tobytes(), k
    # the trainable block's statistics do move
    assert not np.array_equal(after["res2.bn1.running_mean"], before["res2.bn1.running_mean"])
