"""The activation explorer: f and f' from the networks' own layer functions agree with closed forms, sigmoid's slope
is at most 1/4, saturation is where the slope vanishes, and all-positive inputs make SGD steps share a sign."""
import numpy as np
import pytest

from simulator.core.errors import ValueInputError
from simulator.labs.activation_explorer import SATURATION, curves, zigzag
from simulator.nn.layers import ACTIVATIONS


def test_closed_forms():
    s = curves("sigmoid")
    sig = 1 / (1 + np.exp(-s.x))
    np.testing.assert_allclose(s.f, sig, rtol=1e-12)
    np.testing.assert_allclose(s.df, sig * (1 - sig), rtol=1e-10, atol=1e-15)
    assert s.max_slope == pytest.approx(0.25) and s.argmax_slope == pytest.approx(0.0, abs=1e-9)
    t = curves("tanh")
    np.testing.assert_allclose(t.df, 1 - np.tanh(t.x) ** 2, rtol=1e-10, atol=1e-15)
    assert t.max_slope == pytest.approx(1.0) and t.zero_centred and not s.zero_centred
    r = curves("relu")
    assert np.all(r.df[r.x < 0] == 0) and np.all(r.df[r.x > 0] == 1)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_every_activation_matches_its_numerical_derivative(name):
    c = curves(name, -4, 4, 801)
    num = np.gradient(c.f, c.x)
    smooth = np.abs(c.x) > 0.05                      # away from ReLU-like kinks at 0
    np.testing.assert_allclose(c.df[smooth][1:-1], num[smooth][1:-1], atol=2e-3)
    np.testing.assert_array_equal(c.saturated, np.abs(c.df) < SATURATION)


def test_sigmoid_saturates_in_both_tails_and_says_so():
    s = curves("sigmoid")
    assert s.saturated[0] and s.saturated[-1] and not s.saturated[len(s.x) // 2]
    assert "at most 0.25" in s.note and "not zero-centred" in s.note


def test_positive_inputs_make_every_step_share_a_sign():
    pos, cen = zigzag(centred=False), zigzag(centred=True)
    assert pos.same_sign == 1.0 and cen.same_sign < 0.8
    target = np.array([1.0, -1.0])
    assert np.linalg.norm(cen.path[-1] - target) < np.linalg.norm(pos.path[-1] - target)
    with pytest.raises(ValueInputError):
        curves("swish")


def test_a_constant_init_never_breaks_symmetry():
    from simulator.labs.activation_explorer import symmetry
    s = symmetry(hidden=6, steps=60)
    assert s.constant_spread.max() == 0.0                    # exactly: every unit gets the same gradient
    assert np.all(s.constant_w == s.constant_w[0])           # the rows (units) are identical after training
    assert s.random_spread[-1] > 0.1 and not np.allclose(s.random_w, s.random_w[0])
    assert s.random_loss < s.constant_loss


# ------------------------------------------------------------------------------------------------ dying ReLU

def _dead_settings(**kw):
    from simulator.labs.activation_explorer import DyingReluSettings
    return DyingReluSettings(**kw)


def test_a_unit_negative_on_every_input_is_dead_and_gets_no_gradient():
    from simulator.data.datasets import toy_data
    from simulator.labs.activation_explorer import activation_rates, dead_units, relu_mlp
    x, y = toy_data("spiral", seed=0)
    net = relu_mlp(_dead_settings(layers=1, hidden=4), 0.0)
    w, b = net.params["fc1.w"], net.params["fc1.b"]
    w[:] = np.array([[0.0, 1.0, 0.0, -1.0], [0.0, 0.0, 0.0, 0.0]])
    b[:] = [-0.5, 0.0, 0.0, 10.0]
    # unit 1: pre-activation -0.5 everywhere (dead); unit 2: x0 (active where x0 > 0); unit 3: exactly 0 everywhere
    # (ReLU's gradient 1[x > 0] is 0 there too: dead); unit 4: 10 - x0 > 0 on every input of the unit disc
    rates, layer = activation_rates(net, x)
    np.testing.assert_array_equal(rates, [0.0, np.mean(x[:, 0] > 0), 0.0, 1.0])
    np.testing.assert_array_equal(layer, [1, 1, 1, 1])
    np.testing.assert_array_equal(dead_units(net, x), [True, False, True, False])
    _, grads = net.loss(x, y)
    assert np.all(grads["fc1.w"][:, [0, 2]] == 0) and np.all(grads["fc1.b"][[0, 2]] == 0)     # never moves again
    assert np.any(grads["fc1.w"][:, 1] != 0) and grads["fc1.b"][3] != 0


def test_too_high_a_learning_rate_kills_more_units():
    from simulator.core.jobs import run_job
    from simulator.labs.activation_explorer import relu_training
    for seed in (0, 1):
        s = _dead_settings(steps=150, seed=seed)
        calm = run_job(relu_training(s, 0.0, lr=0.03))
        wild = run_job(relu_training(s, 0.0, lr=5.0))
        assert calm.initial_dead == wild.initial_dead                  # the same network before the first step
        assert calm.final_dead / calm.units < 0.15 and wild.final_dead / wild.units > 0.5
        # a dead first-layer unit never comes back: its inputs are the data, and its gradient is 0 on all of them
        first = wild.dead[wild.layer == 1]
        assert first[:, -1].any() and wild.revived(1) == 0
        assert np.all(np.diff(first.astype(int), axis=1) >= 0)
        assert list(wild.steps[:3]) == [0, 2, 3] and wild.steps[-1] == 150 and wild.rates.shape == (64, len(wild.steps))


def test_the_small_bias_is_really_0_01_and_the_weights_are_shared():
    from simulator.core.jobs import run_job
    from simulator.labs.activation_explorer import BIAS_VALUE, dying_relu
    r = run_job(dying_relu(_dead_settings(steps=40, small_bias=True)))
    assert BIAS_VALUE == 0.01 and r.shown is r.runs[0.01] and r.other is r.runs[0.0]
    for name, b in r.runs[0.01].initial_biases.items():
        assert np.all(b == 0.01), name
    assert set(r.runs[0.01].initial_biases) == {"fc1.b", "fc2.b", "fc3.b"}
    assert all(np.all(b == 0.0) for b in r.runs[0.0].initial_biases.values())
    # same weights: in layer 1 (pre-activation w·x + b) a bias of +0.01 can only switch units on, never off
    first = r.runs[0.0].layer == 1
    assert np.all(r.runs[0.01].rates[first, 0] >= r.runs[0.0].rates[first, 0])
    assert np.any(r.runs[0.01].rates[first, 0] > r.runs[0.0].rates[first, 0])


def _verdict(zero: int, small: int, n: int) -> str:
    diff = zero - small
    if diff == 0:
        return "made no difference"
    if abs(diff) <= max(1, round(0.05 * n)):
        return "barely mattered"
    return "kept" if diff > 0 else "left"


@pytest.mark.parametrize("kw", [{}, {"lr": 3.0}, {"init": "gaussian", "small_bias": True}])
def test_the_text_quotes_the_runs_numbers(kw):
    import re
    from simulator.core.jobs import run_job
    from simulator.labs.activation_explorer import dying_relu
    r = run_job(dying_relu(_dead_settings(steps=120, **kw)))
    run, other, n = r.shown, r.other, r.shown.units
    m = re.search(r"biases ([\d.]+): (\d+) of (\d+) units are dead at initialisation, (\d+) \((\d+)%\) after (\d+) "
                  r"SGD steps", r.text)
    assert m, r.text
    assert float(m.group(1)) == run.bias_init and int(m.group(2)) == run.initial_dead and int(m.group(3)) == n
    assert int(m.group(4)) == run.final_dead and int(m.group(5)) == round(100 * run.final_dead / n)
    assert int(m.group(6)) == 120
    assert f"with biases {other.bias_init:g}: {other.final_dead} dead ({other.final_dead / n:.0%})" in r.text
    verdict = _verdict(r.runs[0.0].final_dead, r.runs[0.01].final_dead, n)
    assert f"the 0.01 bias {verdict}" in r.text
    if kw.get("lr") == 3.0:
        assert "None of the" in r.text and "came back" in r.text and run.revived(1) == 0
    if kw.get("init") == "gaussian":                 # tiny weights: a 0.01 bias dominates the pre-activations
        assert verdict == "kept" and r.runs[0.01].final_dead < r.runs[0.0].final_dead


def test_the_sweep_text_follows_its_numbers():
    from simulator.labs.activation_explorer import DeadSweep, explain_sweep
    s = _dead_settings(steps=100)
    lrs = np.array([0.1, 1.0, 10.0])

    def sweep(zero, small):
        dead = np.stack([np.array(zero)[:, None].repeat(2, 1), np.array(small)[:, None].repeat(2, 1)])
        return DeadSweep(s, lrs, np.arange(2), dead, np.zeros_like(dead, dtype=bool))
    same = explain_sweep(sweep([0.05, 0.1, 0.9], [0.06, 0.1, 0.89]))
    assert "5% at 0.1, 10% at 1, 90% at 10" in same and "From learning rate 10 on" in same
    assert "at most 1.0 points" in same and "no real difference" in same
    helps = explain_sweep(sweep([0.2, 0.3, 0.4], [0.0, 0.1, 0.3]))
    assert "lowered the dead share at every rate, by 10.0 to 20.0 points" in helps
    assert "At none of these rates did more than half" in helps
    mixed = explain_sweep(sweep([0.2, 0.3, 0.4], [0.1, 0.3, 0.6]))
    assert ("lowered the dead share by more than 2 points at 0.1; raised the dead share by more than 2 points at 10; "
            "changed it by 2 points or less at 1: not a consistent improvement") in mixed


def test_the_sweep_claims_a_trend_only_where_there_is_one():
    from simulator.labs.activation_explorer import SWEEP_LRS, DeadSweep, explain_sweep
    s = _dead_settings(steps=100)
    lrs = np.array(SWEEP_LRS)                        # 0.03, 0.1, 0.3, 1, 3, 10

    def sweep(zero):
        dead = np.stack([np.array(zero)[:, None].repeat(2, 1)] * 2)
        return DeadSweep(s, lrs, np.arange(2), dead, np.zeros_like(dead, dtype=bool))
    # one rate above a half, the larger ones below: no "from ... on"
    blip = explain_sweep(sweep([0.0, 0.6, 0.0, 0.0, 0.1, 0.2]))
    assert "From learning rate" not in blip and " on," not in blip
    assert ("More than half of the units end up dead with one of the two bias inits at learning rate 0.1, but not "
            "at the larger rates 0.3, 1, 3, 10: here the dead share does not simply grow with the step.") in blip
    gap = explain_sweep(sweep([0.0, 0.6, 0.4, 0.7, 0.9, 1.0]))
    assert "From learning rate" not in gap and "at learning rates 0.1, 1, 3, 10, but not at the larger rate 0.3:" in gap
    # every rate from the first one over a half on: a trend, said as one
    trend = explain_sweep(sweep([0.0, 0.1, 0.2, 0.51, 0.9, 1.0]))
    assert "From learning rate 1 on, more than half of the units end up dead" in trend
    last = explain_sweep(sweep([0.0, 0.1, 0.2, 0.3, 0.4, 0.8]))
    assert "From learning rate 10 on" in last


def test_the_sweep_reports_progress_against_one_total():
    from simulator.core.jobs import Progress
    from simulator.labs.activation_explorer import dead_sweep
    s = _dead_settings(steps=50)
    job = dead_sweep(s, lrs=(0.1, 1.0), seeds=2)
    seen = []
    try:
        while True:
            seen.append(next(job))
    except StopIteration as stop:
        w = stop.value
    assert w.dead.shape == (2, 2, 2) and all(isinstance(p, Progress) for p in seen)
    runs = 2 * 2 * 2
    assert {p.total for p in seen} == {runs * 50}                  # never 0 (unknown) between runs
    done = [p.done for p in seen]
    assert done == sorted(done) and done[-1] == runs * 50
    assert [p.done for p in seen if p.message.endswith("runs")] == [k * 50 for k in range(1, runs + 1)]
    assert seen[0].message == "run 1 of 8: learning rate 0.1, biases 0, seed 0: SGD step 25" and seen[0].done == 25


def test_a_sweep_that_finished_after_an_edit_is_not_shown():
    from simulator.core.jobs import run_job
    from simulator.labs.activation_explorer import DyingReluModel, dead_sweep
    s = _dead_settings(steps=30)
    model = DyingReluModel()
    model.show(run_job(model.experiment(s)))
    w = run_job(dead_sweep(s, lrs=(0.1,), seeds=1))
    model.show(run_job(model.experiment(s.replace(hidden=8))))  # the learner edited while the sweep ran
    seen = []
    model.sweep_changed.connect(lambda: seen.append("sweep"))
    assert model.show_sweep(w) is False
    assert model.sweep is None and seen == []
    assert model.sweep_applies(s, s.replace(lr=3.0, small_bias=True)) and not model.sweep_applies(s, model.settings)
    model.show(run_job(model.experiment(s.replace(lr=2.0))))    # back to its network: the sweep applies again
    assert model.show_sweep(w) is True and model.sweep is w and seen == ["sweep"]


def test_the_real_sweep_and_the_model():
    from simulator.core.errors import ValueInputError
    from simulator.core.jobs import run_job
    from simulator.labs.activation_explorer import DyingReluModel, dead_sweep, dying_relu
    s = _dead_settings(steps=60)
    w = run_job(dead_sweep(s, lrs=(0.03, 8.0), seeds=2))
    assert w.dead.shape == (2, 2, 2) and np.all(w.mean[:, 1] > w.mean[:, 0])
    assert f"{w.mean[0, 0]:.0%} at 0.03, {w.mean[0, 1]:.0%} at 8" in w.text
    model = DyingReluModel()
    seen = []
    model.changed.connect(lambda: seen.append("changed"))
    model.sweep_changed.connect(lambda: seen.append("sweep"))
    model.show(run_job(model.experiment(s)))
    first = model.result
    model.show(run_job(model.experiment(s.replace(small_bias=True))))   # only the toggle: the same two runs
    assert model.result.runs is first.runs and model.result.shown is first.runs[0.01]
    assert model.result.text.startswith("2 × 32 ReLU units, Kaiming weights, biases 0.01:")
    model.show_sweep(w)
    model.show(run_job(model.experiment(s.replace(lr=1.0))))            # the sweep varies the rate: still valid
    assert model.sweep is w
    model.show(run_job(model.experiment(s.replace(hidden=8))))          # another network: the sweep is dropped
    assert model.sweep is None and model.result.shown.units == 16
    assert seen == ["changed", "changed", "sweep", "changed", "sweep", "changed"]
    with pytest.raises(ValueInputError, match="Learning rate must be > 0"):
        _dead_settings(lr=0.0)
    with pytest.raises(ValueInputError):
        dying_relu("spiral")


def test_an_overflowing_loss_stops_the_run_and_the_text_says_where():
    from simulator.core.jobs import run_job
    from simulator.labs.activation_explorer import dying_relu
    s = _dead_settings(data="blobs", layers=1, hidden=128, lr=100.0, batch=300, steps=200)
    r = run_job(dying_relu(s))
    run = r.shown
    assert run.diverged_at is not None and run.diverged_at < 200
    assert run.steps[-1] == run.diverged_at - 1 and np.all(np.diff(run.steps) > 0)
    assert np.all(np.isfinite(run.rates)) and np.isnan(run.accuracy)
    assert (f"at learning rate 100 the loss overflowed at step {run.diverged_at}, so training stopped there with "
            f"{run.final_dead} dead") in r.text
