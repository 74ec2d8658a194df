"""Network builder: shapes without data, initialisation, gradients against numerical ones, the Graph expansion,
training to real accuracies, NaN detection, early stopping, save/load."""
from __future__ import annotations

import numpy as np
import pytest

from simulator.data import datasets as D
from simulator.functional import schedules as S
from simulator.engine.trace import run
from simulator.core.errors import FileFormatError, NumericError, ShapeError, ValueInputError
from simulator.engine.gradcheck import numerical_gradient
from simulator.nn.network import (ACTIVATIONS, Activation, AvgPool, BatchNorm, Conv2d, Dropout, Flatten, LayerNorm,
                                  Linear, MaxPool, Network)
from simulator.nn.trainer import EpochMetrics, StepMetrics, Trainer


def rel_error(a, b):
    """Max over entries of |a - b| / (|a| + |b|), the denominator floored at 1e-4: centred differences carry
    ~1e-11 of round-off, which would swamp exactly-zero gradients (a bias before batch norm has none)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(1e-4, np.abs(a) + np.abs(b))))


def every_layer_net(**kw):
    return Network((2, 6, 6), [Conv2d(3, 3, pad=1), BatchNorm(), Activation("tanh"), MaxPool(2),
                               LayerNorm(), AvgPool(2, stride=1), Conv2d(2, 1), Activation("gelu"), Flatten(),
                               Linear(5), BatchNorm(), Activation("softplus"), Dropout(0.3), Linear(4),
                               LayerNorm(), Activation("elu"), Linear(3)],
                   dtype=np.float64, seed=3, **kw)


# ------------------------------------------------------------------------------------------------ shapes, no data

def test_describe_mlp_by_hand():
    net = Network((2,), [Linear(64), Activation("relu"), Linear(3)])
    rows = net.describe()
    assert [(r.name, r.output_shape, r.params) for r in rows] == [
        ("fc1", (64,), 2 * 64 + 64), ("relu1", (64,), 0), ("fc2", (3,), 64 * 3 + 3)]
    assert net.num_params == 387
    assert list(net.params) == ["fc1.w", "fc1.b", "fc2.w", "fc2.b"]
    assert net.params["fc1.w"].shape == (2, 64) and net.params["fc2.b"].shape == (3,)


def test_describe_cnn_by_hand():
    net = Network((1, 8, 8), [Conv2d(8, 3, pad=1), BatchNorm(), Activation("relu"), MaxPool(),
                              Conv2d(4, 3, stride=2), AvgPool(1, 1), Flatten(), Dropout(0.5), Linear(10)])
    rows = net.describe()
    assert [r.output_shape for r in rows] == [(8, 8, 8), (8, 8, 8), (8, 8, 8), (8, 4, 4), (4, 1, 1), (4, 1, 1),
                                              (4,), (4,), (10,)]
    assert [r.params for r in rows] == [8 * 9 + 8, 16, 0, 0, 4 * 8 * 9 + 4, 0, 0, 0, 4 * 10 + 10]
    assert rows[0].label == "Conv2d 8@3x3 p1" and rows[4].label == "Conv2d 4@3x3 s2"
    assert list(net.params)[:4] == ["conv1.w", "conv1.b", "bn1.gamma", "bn1.beta"]
    assert net.params["conv2.w"].shape == (4, 8, 3, 3)


@pytest.mark.parametrize("shape, layers, words", [
    ((1, 8, 8), [Flatten(), Conv2d(4, 3), Flatten(), Linear(2)], "Conv2d needs an image"),
    ((1, 8, 8), [MaxPool(9), Flatten(), Linear(2)], "larger than its input"),
    ((1, 4, 4), [Conv2d(2, 3), MaxPool(3), Flatten(), Linear(2)], "larger than its input"),
    ((1, 8, 8), [Linear(10)], "add Flatten()"),
    ((1, 8, 8), [Conv2d(2, 3)], "end with Flatten()"),
    ((1, 3, 3), [Conv2d(2, 5), Flatten(), Linear(2)], "smaller than the 5x5 kernel"),
    ((4,), [MaxPool(), Linear(2)], "pooling needs an image"),
    ((4,), [Linear(1)], "at least 2 class scores"),
])
def test_impossible_stacks_raise_shape_error(shape, layers, words):
    with pytest.raises(ShapeError, match=words.replace("(", r"\(").replace(")", r"\)")):
        Network(shape, layers)


def test_bad_specs_raise_value_errors():
    with pytest.raises(ValueInputError):
        Activation("swish")
    with pytest.raises(ValueInputError):
        Dropout(1.0)
    with pytest.raises(ValueInputError):
        Linear(0)
    with pytest.raises(ValueInputError):
        Network((2,), [Linear(2)], loss="hinge")
    with pytest.raises(ShapeError):
        Network((2,), [Linear(3)]).loss(np.zeros((4, 3)), np.zeros(4, np.int64))


# ------------------------------------------------------------------------------------------------ initialisation

@pytest.mark.parametrize("init, std", [("gaussian", 0.01), ("xavier", 1 / np.sqrt(500)),
                                       ("kaiming", np.sqrt(2 / 500))])
def test_init_stds_match_their_formulas(init, std):
    net = Network((500,), [Linear(400), Activation("relu"), Linear(300)], init=init, seed=1, dtype=np.float64)
    w = net.params["fc1.w"]
    # 200,000 draws: the sample std is within 1% of sigma with overwhelming probability (its sd is sigma/632)
    assert abs(w.std() / std - 1) < 0.01 and abs(w.mean()) < 0.01 * std
    w2 = net.params["fc2.w"]
    fan2 = 400
    expect2 = {"gaussian": 0.01, "xavier": 1 / np.sqrt(fan2), "kaiming": np.sqrt(2 / fan2)}[init]
    assert abs(w2.std() / expect2 - 1) < 0.01


def test_conv_fan_in_zero_constant_and_bias_init():
    net = Network((3, 10, 10), [Conv2d(64, 5, init="kaiming"), Flatten(), Linear(4, init="constant", init_value=0.25),
                                Activation("relu"), Linear(2, init="zeros")], init="xavier", bias_init=0.01,
                  dtype=np.float64)
    assert abs(net.params["conv1.w"].std() / np.sqrt(2 / 75) - 1) < 0.02  # fan_in = C k k = 75
    assert np.all(net.params["fc1.w"] == 0.25) and np.all(net.params["fc2.w"] == 0)
    assert all(np.all(net.params[k] == 0.01) for k in ("conv1.b", "fc1.b", "fc2.b"))


def test_seed_reproducible_across_dtypes():
    a = Network((3,), [Linear(5), Activation("tanh"), Linear(2)], seed=7, dtype=np.float64)
    b = Network((3,), [Linear(5), Activation("tanh"), Linear(2)], seed=7, dtype=np.float32)
    c = Network((3,), [Linear(5), Activation("tanh"), Linear(2)], seed=8, dtype=np.float64)
    assert np.allclose(a.params["fc1.w"], b.params["fc1.w"], atol=1e-7)
    assert b.params["fc1.w"].dtype == np.float32
    assert not np.allclose(a.params["fc1.w"], c.params["fc1.w"])


# ------------------------------------------------------------------------------------------------ gradients

def _numeric_vs_analytic(net, x, y, seed=11):
    loss, grads = net.loss(x, y, "train", seed=seed)
    for name, p in net.params.items():
        def f(_):
            return net.loss(x, y, "train", seed=seed)[0]
        num = numerical_gradient(f, p)
        assert rel_error(grads[name], num) < 1e-6, name
    return loss


@pytest.mark.parametrize("reg_kind", ["l2", "l1"])
def test_gradients_every_layer_type(reg_kind):
    net = every_layer_net(reg=0.01, reg_kind=reg_kind)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 2, 6, 6))
    y = np.array([0, 2, 1, 2])
    loss = _numeric_vs_analytic(net, x, y)
    assert np.isfinite(loss)


@pytest.mark.parametrize("loss", ["svm", "mse"])
def test_gradients_other_losses(loss):
    net = Network((3,), [Linear(6), Activation("tanh"), Linear(4)], loss=loss, dtype=np.float64, seed=2)
    rng = np.random.default_rng(1)
    _numeric_vs_analytic(net, rng.normal(size=(5, 3)), rng.integers(0, 4, 5))


@pytest.mark.parametrize("act", ACTIVATIONS)
def test_gradients_every_activation(act):
    net = Network((3,), [Linear(5), Activation(act), Linear(3)], dtype=np.float64, seed=4, bias_init=0.05)
    rng = np.random.default_rng(2)
    _numeric_vs_analytic(net, rng.normal(size=(6, 3)), rng.integers(0, 3, 6))


def test_graph_expansion_agrees_with_network_loss():
    net = every_layer_net(reg=0.005)
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(4, 2, 6, 6)), np.array([1, 0, 2, 2])
    loss, grads = net.loss(x, y, "train", seed=123)
    graph = net.to_graph(x, y, seed=123)
    assert {n.id for n in graph.leaves(("param",))} == {Network.graph_name(k) for k in net.params}
    assert all(n.kind != "op" or n.pos != (0.0, 0.0) for n in graph) or len(graph) == 1  # laid out
    result = run(graph)
    assert abs(float(result.value) - loss) < 1e-10 * max(1.0, abs(loss))
    for k in net.params:
        assert rel_error(result.grads[Network.graph_name(k)], grads[k]) < 1e-9, k


def test_graph_expansion_eval_mode_uses_running_statistics():
    net = Network((2, 4, 4), [Conv2d(2, 3, pad=1), BatchNorm(), Activation("relu"), Flatten(), Linear(3),
                              BatchNorm(), Dropout(0.5), Linear(3)], dtype=np.float64)
    rng = np.random.default_rng(6)
    for _ in range(3):
        net.loss(rng.normal(size=(8, 2, 4, 4)), rng.integers(0, 3, 8))  # move the running statistics
    x, y = rng.normal(size=(5, 2, 4, 4)), rng.integers(0, 3, 5)
    loss_eval, grads = net.loss(x, y, "eval")
    result = run(net.to_graph(x, y, mode="eval"))
    assert abs(float(result.value) - loss_eval) < 1e-10
    assert rel_error(result.grads["fc2_w"], grads["fc2.w"]) < 1e-9


# ------------------------------------------------------------------------------------------------ modes

def test_train_and_eval_modes():
    net = Network((4,), [Linear(8), BatchNorm(), Dropout(0.5), Linear(2)], dtype=np.float64)
    x = np.random.default_rng(0).normal(size=(16, 4)) + 3.0
    rm = net.state_dict()["bn1.running_mean"]
    a = net.forward(x, "eval")
    assert np.allclose(a, net.forward(x, "eval"))  # eval: deterministic, statistics untouched
    assert np.array_equal(rm, dict(net.named_buffers())["bn1.running_mean"])
    t1, t2 = net.forward(x, "train", seed=1), net.forward(x, "train", seed=2)
    assert not np.allclose(t1, t2)  # different dropout masks
    assert not np.array_equal(rm, dict(net.named_buffers())["bn1.running_mean"])  # train updated the running mean
    assert np.allclose(net.forward(x, "train", seed=9), net.forward(x, "train", seed=9))
    assert net.predict(x).shape == (16,) and net.predict(x).dtype == np.int64


# ------------------------------------------------------------------------------------------------ training

def test_mlp_reaches_97_percent_on_spiral():
    X, y = D.spiral(300, 3, seed=0)
    net = Network((2,), [Linear(64), Activation("relu"), Linear(3)], seed=0)
    tr = Trainer(net, (X, y, None, None), "Adam", lr=2e-2, batch_size=64, epochs=150, seed=0)
    hist = tr.run()
    assert net.accuracy(X, y) >= 0.97
    assert len(hist.loss) == tr.total_steps == 150 * 5 and len(hist.train_loss) == 150
    assert hist.loss[-20:].mean() < hist.loss[:5].mean() / 5


def test_cnn_reaches_95_percent_on_digits():
    X, y = D.load_digits()
    Xtr, ytr, Xv, yv = D.train_val_split(X, y, 0.2, seed=0)
    _, (Xtr, Xv) = D.standardize(Xtr, Xv)
    net = Network((1, 8, 8), [Conv2d(8, 3, pad=1), Activation("relu"), MaxPool(), Flatten(), Linear(10)], seed=0)
    tr = Trainer(net, (Xtr, ytr, Xv, yv), "Adam", lr=1e-2, batch_size=32, epochs=8, seed=0)
    tr.run()
    assert tr.history.val_accuracy[-1] >= 0.95
    assert net.accuracy(Xv, yv) == pytest.approx(tr.history.val_accuracy[-1])


def test_step_metrics_schedule_and_stop():
    X, y = D.blobs(100, 3, seed=1)
    net = Network((2,), [Linear(8), BatchNorm(), Activation("relu"), Linear(3)])
    sched = S.make_schedule("Linear", 0.1, total_steps=10, end_lr=0.0)
    tr = Trainer(net, (X, y, X[:30], y[:30]), "Momentum", schedule=sched, batch_size=25, epochs=5, seed=0)
    m = tr.step()
    assert isinstance(m, StepMetrics) and m.iteration == 1 and m.epoch == 0 and m.lr == pytest.approx(0.1)
    assert set(m.grad_norms) == {"fc1", "bn1", "fc2"} and all(v > 0 for v in m.grad_norms.values())
    assert 0 <= m.accuracy <= 1
    seen = []
    tr.run(lambda m: seen.append(m) or len(seen) >= 6)     # True stops the training job
    assert len(seen) == 6 and isinstance(seen[3], EpochMetrics)  # steps 2, 3, 4 end epoch 0, then its evaluation
    assert seen[3].epoch == 0 and seen[3].iteration == 4 and 0 <= seen[3].val_accuracy <= 1
    assert np.allclose(tr.history.lr, [sched.lr_at(t) for t in range(len(tr.history))])
    tr.run()
    assert tr.done and tr.iteration == 20 and len(tr.history.val_loss) == 5
    assert tr.history.grad_norms.shape == (20, 3)
    with pytest.raises(ValueInputError):
        tr.step()


def test_steps_without_evaluate_still_record_epochs_and_stop():
    X, y = D.xor(40, seed=0)
    tr = Trainer(Network((2,), [Linear(4), Activation("relu"), Linear(2)]), (X, y, None, None), batch_size=20,
                 epochs=2)
    for _ in range(4):
        tr.step()
    with pytest.raises(ValueInputError, match="finished"):
        tr.step()  # evaluates the last epoch, then refuses
    assert tr.done and len(tr.history.train_loss) == 2 and len(tr.history) == 4


def test_training_is_reproducible():
    X, y = D.moons(120, seed=2)

    def losses():
        net = Network((2,), [Linear(16), Activation("relu"), Dropout(0.2), Linear(2)], seed=5)
        return Trainer(net, (X, y, None, None), "AdamW", lr=1e-2, batch_size=32, epochs=3, seed=4).run().loss.copy()
    assert np.array_equal(losses(), losses())


def test_huge_learning_rate_raises_numeric_error_naming_a_layer():
    X, y = D.spiral(200, 3, seed=0)
    net = Network((2,), [Linear(64), Activation("relu"), Linear(64), Activation("relu"), Linear(3)], seed=0)
    tr = Trainer(net, (X, y, None, None), "SGD", lr=1e9, batch_size=64, epochs=50)
    with pytest.raises(NumericError, match=r"layer \d+ \((Linear \d+|ReLU)\): non-finite"):
        tr.run()


def test_network_loss_names_the_layer_with_nan():
    net = Network((3,), [Linear(4), Activation("relu"), Linear(2)], dtype=np.float64)
    net.params["fc2.w"][0, 0] = np.inf
    with pytest.raises(NumericError, match=r"layer 3 \(Linear 2\): non-finite parameter fc2.w"):
        net.loss(np.ones((2, 3)), np.array([0, 1]))
    net.reset_parameters()
    net.params["fc1.w"][...] = 1.0
    x = np.full((2, 3), 1e308)  # three of them overflow the first layer's sum
    with pytest.raises(NumericError, match=r"layer 1 \(Linear 4\): non-finite output"):
        net.loss(x, np.array([0, 1]))


def test_early_stopping_stops_and_restores_best_weights():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 10))
    y = rng.integers(0, 2, 60)  # labels are noise: training memorises, validation loss rises
    Xv, yv = rng.normal(size=(60, 10)), rng.integers(0, 2, 60)
    net = Network((10,), [Linear(128), Activation("relu"), Linear(2)], seed=0, dtype=np.float64)
    tr = Trainer(net, (X, y, Xv, yv), "Adam", lr=1e-2, batch_size=20, epochs=200, patience=3)
    tr.run()
    assert tr.stopped_early and tr.epoch < 200
    vl = tr.history.val_loss
    assert len(vl) == tr.best_epoch + 4 and np.argmin(vl) == tr.best_epoch
    assert net.evaluate(Xv, yv)[0] == pytest.approx(vl[tr.best_epoch])  # the best weights are back


# ------------------------------------------------------------------------------------------------ save / load

def test_save_load_round_trip(tmp_path):
    net = Network((1, 6, 6), [Conv2d(2, 3), BatchNorm(), Activation("relu"), Flatten(), Linear(3)],
                  reg=0.01, seed=3)
    X = np.random.default_rng(0).normal(size=(10, 1, 6, 6))
    y = np.arange(10) % 3
    Trainer(net, (X, y, None, None), epochs=2, batch_size=5).run()
    path = tmp_path / "w.npz"
    net.save(path)
    back = Network.load(path)
    assert back.spec_dict() == net.spec_dict()
    for k in net.params:
        assert np.array_equal(back.params[k], net.params[k])
    assert np.array_equal(back.state_dict()["bn1.running_var"], net.state_dict()["bn1.running_var"])
    assert np.array_equal(back.forward(X), net.forward(X))
    other = Network((1, 6, 6), [Conv2d(2, 3), BatchNorm(), Activation("relu"), Flatten(), Linear(3)], seed=9)
    arrays = {k: v.copy() for k, v in other.params.items()}
    other.load_weights(path)
    assert np.array_equal(other.params["fc1.w"], net.params["fc1.w"]) and other.params["fc1.w"] is not arrays


def test_load_refuses_mismatch_and_malformed_files(tmp_path):
    net = Network((4,), [Linear(3), Activation("relu"), Linear(2)])
    path = tmp_path / "w.npz"
    net.save(path)
    wider = Network((4,), [Linear(5), Activation("relu"), Linear(2)])
    before = wider.params["fc1.w"].copy()
    with pytest.raises(ShapeError, match="fc1.w"):
        wider.load_weights(path)
    assert np.array_equal(before, wider.params["fc1.w"])
    with pytest.raises(ShapeError, match="missing"):
        Network((4,), [Linear(3), BatchNorm(), Linear(2)]).load_weights(path)
    (tmp_path / "junk.npz").write_bytes(b"not a zip at all")
    with pytest.raises(FileFormatError):
        Network.load(tmp_path / "junk.npz")
    np.savez(tmp_path / "plain.npz", a=np.zeros(3))
    with pytest.raises(FileFormatError, match="no header"):
        net.load_weights(tmp_path / "plain.npz")
    np.savez(tmp_path / "badjson.npz", header=np.frombuffer(b"{nope", np.uint8))
    with pytest.raises(FileFormatError, match="JSON"):
        Network.load(tmp_path / "badjson.npz")
    with pytest.raises(FileFormatError):
        Network.load(tmp_path / "missing.npz")


def test_history_grows_as_it_fills_and_absurd_runs_are_refused():
    from simulator.data.datasets import spiral
    from simulator.core.errors import ValueInputError
    from simulator.nn.trainer import MAX_TRAINING_STEPS, History
    X, y = spiral(n=60, classes=3, seed=0)
    net = Network((2,), [Linear(8), Activation("relu"), Linear(3)], seed=0)
    with pytest.raises(ValueInputError, match="training steps"):
        Trainer(net, (X, y, None, None), batch_size=1, epochs=MAX_TRAINING_STEPS // 60 + 1)
    h = History(10**9, 10**6, ["fc1"])  # costs nothing until steps are taken
    assert h._norms.shape[0] <= 4096


def test_a_single_example_tail_batch_joins_the_one_before_so_batch_norm_trains():
    from simulator.data.datasets import spiral
    X, y = spiral(n=65, classes=3, seed=0)
    net = Network((2,), [Linear(16), BatchNorm(), Activation("relu"), Linear(3)], seed=0)
    tr = Trainer(net, (X, y, None, None), optimizer="SGD", lr=0.1, batch_size=64, epochs=2, seed=0)
    assert tr.iters_per_epoch == 1
    tr.run()
    assert tr.iteration == 2 and np.all(np.isfinite(net.params["fc1.w"]))


def test_evaluate_counts_soft_targets_by_their_largest_class():
    net = Network((2,), [Linear(3)], loss="mse", seed=0)
    x = np.random.default_rng(0).normal(size=(20, 2))
    soft = np.eye(3)[np.argmax(net.forward(x), axis=1)]
    assert net.evaluate(x, soft)[1] == 1.0


# ------------------------------------------------------------------------------------------------ state, PyTorch's words

def test_parameters_buffers_and_state_dict():
    net = Network((4,), [Linear(3), BatchNorm(), Activation("relu"), Linear(2)], seed=1)
    assert [id(a) for a in net.parameters()] == [id(a) for a in net.params.values()]     # live arrays, in order
    assert [k for k, _ in net.named_parameters()] == ["fc1.w", "fc1.b", "bn1.gamma", "bn1.beta", "fc2.w", "fc2.b"]
    assert [k for k, _ in net.named_buffers()] == ["bn1.running_mean", "bn1.running_var"]
    sd = net.state_dict()
    assert list(sd) == ["fc1.w", "fc1.b", "bn1.gamma", "bn1.beta", "bn1.running_mean", "bn1.running_var", "fc2.w",
                        "fc2.b"]
    net.loss(np.random.default_rng(0).normal(size=(8, 4)), np.arange(8) % 2)   # train mode moves the statistics
    assert not np.array_equal(sd["bn1.running_var"], dict(net.named_buffers())["bn1.running_var"])  # a copy
    arrays = net.parameters()
    net.load_state_dict(sd)
    assert all(a is b for a, b in zip(arrays, net.parameters()))                 # loaded in place
    for k, v in net.state_dict().items():
        assert np.array_equal(v, sd[k]), k


def test_load_state_dict_strict_and_not():
    net = Network((4,), [Linear(3), BatchNorm(), Linear(2)], seed=1)
    before = net.state_dict()
    other = Network((4,), [Linear(3), BatchNorm(), Linear(2)], seed=2).state_dict()
    bad = {**other, "fc2.w": np.zeros((5, 2))}
    with pytest.raises(ShapeError, match=r"fc2\.w has shape \(5, 2\)"):
        net.load_state_dict(bad)
    with pytest.raises(ValueInputError, match="missing bn1.running_var"):
        net.load_state_dict({k: v for k, v in other.items() if k != "bn1.running_var"})
    with pytest.raises(ValueInputError, match="unexpected fc3.w"):
        net.load_state_dict({**other, "fc3.w": np.zeros(1)})
    with pytest.raises(ValueInputError, match="bn1.running_var: a running variance is negative"):
        net.load_state_dict({**other, "bn1.running_var": -np.ones(3)})
    with pytest.raises(ValueInputError, match="fc1.b contains NaN"):
        net.load_state_dict({**other, "fc1.b": np.full(3, np.nan)})
    for k, v in net.state_dict().items():                                        # nothing changed
        assert np.array_equal(v, before[k]), k
    partial = {k: v for k, v in bad.items() if k != "bn1.gamma"} | {"x": np.ones(1)}
    result = net.load_state_dict(partial, strict=False)
    assert result.missing_keys == ["bn1.gamma"] and result.unexpected_keys == ["x"]
    assert result.mismatched_keys == ["fc2.w"]
    after = net.state_dict()
    assert np.array_equal(after["fc1.w"], other["fc1.w"].astype(np.float32))     # what matched is loaded
    assert np.array_equal(after["fc2.w"], before["fc2.w"]) and np.array_equal(after["bn1.gamma"], before["bn1.gamma"])


def test_copy_and_astype():
    net = Network((3,), [Linear(4), BatchNorm(), Activation("tanh"), Linear(2)], seed=3)
    x = np.random.default_rng(0).normal(size=(6, 3))
    net.loss(x, np.arange(6) % 2)
    c = net.copy()
    assert c.dtype == np.float32 and c.spec_dict() == net.spec_dict()
    assert np.array_equal(c.forward(x), net.forward(x))
    c.params["fc1.w"] += 1
    assert not np.array_equal(c.params["fc1.w"], net.params["fc1.w"])            # independent arrays
    d = net.astype(np.float64)
    assert d.dtype == np.float64 and d.params["fc1.w"].dtype == np.float64 and net.dtype == np.float32
    assert np.allclose(d.forward(x), net.forward(x), atol=1e-5)


def test_absurd_sizes_are_refused_before_allocating():
    with pytest.raises(ValueInputError, match="units must be ≤"):
        Network((4,), [Linear(10**12)])
    with pytest.raises(ValueInputError, match=r"layer 1 \(Linear 100\): its 100,000,100 parameters .* more than "
                                              r"the 20,000,000"):
        Network((10**6,), [Linear(100)])
    with pytest.raises(ValueInputError, match=r"layer 3 \(Linear 10000\)"):
        Network((1000,), [Linear(10000), Activation("relu"), Linear(10000)])


def test_non_finite_inputs_are_refused():
    net = Network((2,), [Linear(8), Activation("relu"), Linear(3)])
    x = np.array([[0.5, np.nan], [1.0, 2.0]])
    for call in (lambda: net.forward(x), lambda: net.predict(x), lambda: net.loss(x, np.array([0, 1])),
                 lambda: net.check_input(np.array([[np.inf, 0.0]]))):
        with pytest.raises(ValueInputError, match="NaN or infinity"):
            call()
    with pytest.raises(ValueInputError, match="NaN or infinity"):
        Trainer(net, (x, np.array([0, 1]), None, None))


@pytest.mark.parametrize("loss", ["mse", "svm", "softmax"])
def test_graph_expansion_with_regulariser_for_every_loss(loss):
    hidden = [] if loss == "mse" else [Linear(4), Activation("relu")]    # the case: Linear(2), mse, reg
    net = Network((3,), [*hidden, Linear(2)], loss=loss, reg=0.1, dtype=np.float64)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(4, 3)), np.array([0, 1, 1, 0])
    value, grads = net.loss(x, y)
    graph = net.to_graph(x, y)
    result = run(graph)
    assert graph.output == "loss" and abs(float(result.value) - value) < 1e-12
    assert rel_error(result.grads["fc1_w"], grads["fc1.w"]) < 1e-9


# ------------------------------------------------------------------------------------------------ metrics rate, job form

def test_gradient_norms_are_measured_every_k_steps_and_on_demand():
    X, y = D.spiral(60, 3, seed=0)
    net = Network((2,), [Linear(8), Activation("relu"), Linear(3)], seed=0, dtype=np.float64)
    tr = Trainer(net, (X, y, None, None), "SGD", lr=0.1, batch_size=20, epochs=6, norms_every=4)
    measured, held = [], None
    while not tr.done:
        w_before = {k: v.copy() for k, v in net.params.items()}
        m = tr.step()
        if m.norms_measured:
            measured.append(m.iteration)
            held = dict(m.grad_norms)
            # the norm of fc2's gradient is the norm of the update SGD took, divided by the rate
            step = np.sqrt(sum(np.sum((net.params[k] - w_before[k]) ** 2) for k in ("fc2.w", "fc2.b"))) / 0.1
            assert m.grad_norms["fc2"] == pytest.approx(step, rel=1e-9)
            assert tr.grad_norms() == pytest.approx(m.grad_norms, rel=1e-12)     # on demand, the same
        else:
            assert dict(m.grad_norms) == held                                    # the latest measured ones
            assert tr.grad_norms()["fc1"] > 0
        if m.end_of_epoch:
            tr.evaluate()
    # iterations 1, 5, 9, ... and every epoch's last step (3 per epoch)
    assert measured == sorted(set(range(1, 19, 4)) | set(range(3, 19, 3)))
    h = tr.history
    assert h.grad_norms.shape == (18, 2) and list(np.flatnonzero(h.norms_measured) + 1) == measured
    assert np.isnan(h.grad_norms[1]).all() and np.isfinite(h.grad_norms[0]).all()


def test_the_norms_rate_changes_no_number():
    X, y = D.moons(100, seed=1)

    def train(k):
        net = Network((2,), [Linear(16), BatchNorm(), Activation("relu"), Dropout(0.1), Linear(2)], seed=3)
        tr = Trainer(net, (X, y, X[:20], y[:20]), "Adam", lr=1e-2, batch_size=16, epochs=3, seed=2, norms_every=k)
        return tr.run(), net
    (h1, n1), (h7, n7) = train(1), train(7)
    assert np.array_equal(h1.loss, h7.loss) and np.array_equal(h1.val_loss, h7.val_loss)
    assert np.array_equal(n1.params["fc2.w"], n7.params["fc2.w"])
    ok = h7.norms_measured
    assert np.array_equal(h1.grad_norms[ok], h7.grad_norms[ok]) and 0 < ok.sum() < len(h7)


def test_training_is_a_job_yielding_metrics_returning_the_history_and_cancelled_by_close():
    from simulator.core.jobs import run_job
    X, y = D.xor(80, seed=0)

    def trainer():
        return Trainer(Network((2,), [Linear(8), Activation("tanh"), Linear(2)], seed=1), (X, y, None, None),
                       batch_size=16, epochs=4)
    seen = []
    tr = trainer()
    hist = run_job(tr.training(metrics_every=2), seen.append)
    assert hist is tr.history and tr.done and len(hist) == 20
    steps = [m.iteration for m in seen if isinstance(m, StepMetrics)]
    assert steps == [2, 4, 5, 6, 8, 10, 12, 14, 15, 16, 18, 20]     # every 2nd and each epoch's last
    assert [m.epoch for m in seen if isinstance(m, EpochMetrics)] == [0, 1, 2, 3]
    assert np.array_equal(hist.loss, trainer().run().loss)          # the same training as run()

    tr = trainer()
    job = tr.training()
    for _ in range(7):
        next(job)
    job.close()                                                     # cancel between two updates
    assert tr.iteration == 6 and not tr.done and len(tr.history) == 6
