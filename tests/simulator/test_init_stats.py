"""The lecture-6 facts about initialisation and batch norm, checked on simulator.labs.init_stats (no Qt)."""
import numpy as np
import pytest

from simulator.core.errors import ValueInputError
from simulator.core.jobs import run_job
from simulator.labs.init_stats import (MAX_WORK, check_size, experiment_steps, experiment_work, histogram, init_std,
                                       layer_statistics, layer_statistics_job)

# Smaller than the lab's default (10 x 500, 1000 inputs) but wide enough for the statistics to be stable.
KW = dict(depth=8, width=200, n=400, seed=0)


def test_small_gaussian_with_tanh_collapses_towards_zero():
    s = layer_statistics(activation="tanh", init="gaussian 0.01", **KW)
    std = s.column("std")
    assert np.all(np.diff(std) < 0)                  # shrinks at every layer
    assert std[-1] < 1e-5 * std[0]                   # by a factor 0.01 * sqrt(200) ~ 0.14 per layer
    # and the gradients reaching the weights of the first layers vanish too
    assert s.column("grad_std")[0] < 1e-4


def test_unit_gaussian_with_tanh_saturates():
    s = layer_statistics(activation="tanh", init="gaussian 1.0", **KW)
    assert np.all(s.column("saturated") > 0.8)       # most |a| > 0.99: local gradients 1 - a^2 ~ 0
    assert np.all(s.column("pre_std") > 5)


def test_xavier_with_tanh_keeps_a_healthy_scale():
    # The band: every layer's activation std within [0.2, 0.75] (the input has std 1), no saturation, and no
    # collapse: the last layer keeps over a third of the first layer's std (gaussian 0.01 keeps 1e-6 of it).
    s = layer_statistics(activation="tanh", init="xavier", **KW)
    std = s.column("std")
    assert np.all((std > 0.2) & (std < 0.75)), std
    assert std[-1] > 0.33 * std[0]
    assert np.all(s.column("saturated") < 0.05)


def test_kaiming_with_relu_keeps_the_scale_and_xavier_does_not():
    # The band: every layer's ReLU output std within [0.7, 1.0], with about half of the outputs inactive.
    s = layer_statistics(activation="relu", init="kaiming", **KW)
    std = s.column("std")
    assert np.all((std > 0.7) & (std < 1.0)), std
    assert np.all(np.abs(s.column("zero_fraction") - 0.5) < 0.1)
    x = layer_statistics(activation="relu", init="xavier", **KW).column("std")
    assert x[-1] < 0.1 < x[0]                         # xavier halves the variance at every ReLU layer


@pytest.mark.parametrize("init", ["gaussian 0.01", "gaussian 1.0"])
def test_batchnorm_normalises_pre_activations_in_train_mode(init):
    s = layer_statistics(activation="tanh", init=init, batchnorm=True, **KW)
    assert np.allclose(s.column("pre_mean"), 0, atol=1e-3)
    assert np.allclose(s.column("pre_std"), 1, atol=1e-2)
    assert np.all(np.isnan(layer_statistics(activation="tanh", init=init, **KW).column("train_eval_gap")))


def test_eval_mode_uses_running_statistics_which_converge_with_warmup():
    short = layer_statistics(activation="tanh", init="xavier", batchnorm=True, mode="eval", warmup_passes=2, **KW)
    long = layer_statistics(activation="tanh", init="xavier", batchnorm=True, mode="eval", warmup_passes=60, **KW)
    assert short.mode == "eval"
    assert not np.allclose(short.column("pre_std"), 1, atol=0.05)     # running var lags behind the batch's
    assert np.all(long.column("train_eval_gap") < short.column("train_eval_gap"))
    assert np.all(long.column("train_eval_gap") < 0.2)


def test_gradients_have_the_activations_shape_and_top_gradient_is_the_upstream():
    s = layer_statistics(activation="relu", init="kaiming", depth=3, width=50, n=40)
    assert len(s.activations) == len(s.gradients) == len(s.pre) == len(s.layers) == 3
    assert all(a.shape == (40, 50) for a in s.activations + s.gradients)
    assert abs(s.layers[-1].grad_std - 1) < 0.2


@pytest.mark.parametrize("act,bn", [("tanh", True), ("relu", False)])
def test_backward_matches_numerical_gradient(act, bn):
    # L = sum(dtop * a_last) as a function of a_1 (train-mode batch norm couples the samples): centred differences
    # in float64 on the recorded weights against the recorded dL/da_1.
    s = layer_statistics(activation=act, init="xavier", depth=3, width=5, n=4, seed=3, batchnorm=bn)

    def loss(a):
        for W in s.weights[1:]:
            z = a @ W.astype(np.float64)
            if bn:
                z = (z - z.mean(0)) / np.sqrt(z.var(0) + 1e-5)
            a = np.tanh(z) if act == "tanh" else np.maximum(z, 0)
        return float(np.sum(s.dtop * a))

    a1 = s.activations[0].astype(np.float64)
    num = np.zeros_like(a1)
    h = 1e-6
    for idx in np.ndindex(a1.shape):
        p, m = a1.copy(), a1.copy()
        p[idx] += h
        m[idx] -= h
        num[idx] = (loss(p) - loss(m)) / (2 * h)
    assert np.allclose(s.gradients[0], num, rtol=1e-3, atol=1e-4)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueInputError):
        layer_statistics(init="he")
    with pytest.raises(ValueInputError):
        layer_statistics(activation="gelu")
    with pytest.raises(ValueInputError):
        layer_statistics(depth=0)
    with pytest.raises(ValueInputError):
        layer_statistics(n=10**6, width=1000, depth=100)
    assert init_std("kaiming", 8) == pytest.approx(0.5)


def test_histogram_is_a_distribution():
    counts, edges = histogram(np.array([0.0, 0.5, -0.5, 1.0, np.nan]), bins=4)
    assert counts.sum() == pytest.approx(1.0) and len(edges) == 5 and edges[0] == -1.0


@pytest.mark.parametrize("batchnorm", [False, True])
def test_the_job_reports_every_layer_and_closing_it_stops_the_experiment(batchnorm):
    # one Progress per layer of every pass: 3 warm-up passes, the measured pass, the other mode (batch norm only),
    # the backward pass, then the summaries
    steps = experiment_steps(KW["depth"], batchnorm, 3)
    assert steps == (2 + (4 if batchnorm else 0)) * KW["depth"] + 1
    seen = []
    full = run_job(layer_statistics_job(batchnorm=batchnorm, warmup_passes=3, **KW), seen.append)
    assert [p.done for p in seen] == list(range(1, steps + 1)) and all(p.total == steps for p in seen)
    assert seen[-1].message == "summaries"
    plain = layer_statistics(batchnorm=batchnorm, warmup_passes=3, **KW)
    np.testing.assert_array_equal(full.column("std"), plain.column("std"))
    job = layer_statistics_job(batchnorm=batchnorm, warmup_passes=3, **KW)
    next(job), next(job)
    job.close()                                      # cancelled after two layers: nothing more runs
    with pytest.raises(StopIteration):
        next(job)


def test_histogram_refuses_bad_bins_and_limits():
    with pytest.raises(ValueInputError, match="number of histogram bins must be ≥ 1, got 0"):
        histogram(np.zeros(5), bins=0)
    with pytest.raises(ValueInputError, match="bins must be a whole number"):
        histogram(np.zeros(5), bins=2.5)
    with pytest.raises(ValueInputError, match="must be ≤ 10000"):
        histogram(np.zeros(5), bins=10**9)
    with pytest.raises(ValueInputError, match="histogram limit must be a finite number"):
        histogram(np.zeros(5), limit=float("nan"))
    with pytest.raises(ValueInputError, match="real numbers"):
        histogram(np.array(["a", "b"]))
    counts, edges = histogram(np.array([0.5]), bins=1, limit=1.0)
    assert counts.tolist() == [1.0] and edges.tolist() == [-1.0, 1.0]


def test_bad_experiment_arguments_name_the_argument():
    with pytest.raises(ValueInputError, match="depth must be ≥ 1"):
        layer_statistics_job(depth=0)
    with pytest.raises(ValueInputError, match="width must be a whole number"):
        layer_statistics_job(width=2.5)
    with pytest.raises(ValueInputError, match="unknown mode 'test'"):
        layer_statistics_job(mode="test")
    with pytest.raises(ValueInputError, match="batchnorm must be true or false"):
        layer_statistics_job(batchnorm="yes")
    with pytest.raises(ValueInputError, match="fan_in"):
        init_std("xavier", 0)


def test_warm_up_times_size_is_capped():
    assert experiment_work(10, 500, 1000, True, 20) > experiment_work(10, 500, 1000, True, 5)
    assert experiment_work(10, 500, 1000, False, 500) == experiment_work(10, 500, 1000, False, 0)
    check_size(10, 500, 1000, True, 5)               # the lab's defaults with batch norm: fine
    assert experiment_work(10, 500, 1000, True, 5) < MAX_WORK
    with pytest.raises(ValueInputError, match="warm-up passes.*too slow"):
        layer_statistics(depth=10, width=500, n=1000, batchnorm=True, warmup_passes=500)
    with pytest.raises(ValueInputError, match="too slow"):
        check_size(10, 2000, 1000)


# ------------------------------------------------------------------------------------------- the four norms

from simulator.core.errors import ShapeError  # noqa: E402
from simulator.labs.init_stats import (NORM_AXES, NORM_KINDS, norm_activations, norm_comparison,  # noqa: E402
                                       norm_comparison_job, norm_sets)


def test_norm_sets_follow_the_groupnorm_paper_figure():
    shape = (3, 6, 4, 4)
    assert np.array_equal(norm_sets("BatchNorm", shape), np.tile(np.arange(6), (3, 1)))
    assert np.array_equal(norm_sets("LayerNorm", shape), np.repeat(np.arange(3)[:, None], 6, axis=1))
    assert np.array_equal(norm_sets("InstanceNorm", shape), np.arange(18).reshape(3, 6))
    assert np.array_equal(norm_sets("GroupNorm", shape, 2), [[0, 0, 0, 1, 1, 1], [2, 2, 2, 3, 3, 3],
                                                             [4, 4, 4, 5, 5, 5]])
    assert np.array_equal(norm_sets("GroupNorm", shape, 1), norm_sets("LayerNorm", shape))
    assert np.array_equal(norm_sets("GroupNorm", shape, 6), norm_sets("InstanceNorm", shape))
    with pytest.raises(ShapeError, match="6 channels do not split into 4 equal groups"):
        norm_sets("GroupNorm", shape, 4)


# axes of x (N, C, H, W) that each norm's statistics are taken over, written out independently of norm_sets
_REDUCE = {"BatchNorm": lambda a: a.transpose(1, 0, 2, 3).reshape(a.shape[1], -1),
           "LayerNorm": lambda a: a.reshape(a.shape[0], -1),
           "InstanceNorm": lambda a: a.reshape(a.shape[0] * a.shape[1], -1)}


def _sets_of(kind, a, groups):
    if kind == "GroupNorm":
        return a.reshape(a.shape[0] * groups, -1)
    return _REDUCE[kind](a)


@pytest.mark.parametrize("groups", [1, 2, 3, 6])
def test_each_norm_gives_mean_0_and_variance_1_over_exactly_its_axes(groups):
    x = norm_activations(n=5, channels=6, size=4, seed=1, channel_shift=2.0, sample_scale=0.6)
    c = norm_comparison(x, groups)
    assert [r.name for r in c.rows] == list(NORM_KINDS) and c.groups == groups
    for r in c.rows:
        sets = _sets_of(r.name, r.out, groups)
        assert r.sets == sets.shape[0] and r.per_set == sets.shape[1]
        assert np.allclose(sets.mean(axis=1), 0, atol=1e-12)
        var = sets.var(axis=1)
        insets = _sets_of(r.name, x, groups)
        assert np.allclose(var, insets.var(axis=1) / (insets.var(axis=1) + 1e-5), rtol=1e-12)   # 1 up to eps
        assert r.out_mean < 1e-12 and r.out_var == pytest.approx(np.abs(var - 1).max(), rel=1e-9)
        assert r.in_mean == pytest.approx((insets.mean(1).min(), insets.mean(1).max()), rel=1e-12)
        assert r.in_std == pytest.approx((insets.std(1).min(), insets.std(1).max()), rel=1e-12)
    # ... and only over those: what each leaves different
    bn, ln, inn, gn = (c.row(k) for k in NORM_KINDS)
    assert bn.channel_spread < 1e-12 and bn.sample_spread > 0.05        # samples keep their own means
    assert ln.sample_spread < 1e-12 and ln.channel_spread > 0.3         # channels keep theirs
    assert inn.sample_spread < 1e-12 and inn.channel_spread < 1e-12
    assert gn.sample_spread < 1e-12
    assert (gn.channel_spread > 0.1) == (groups < 6)
    assert gn.sets == 5 * groups and gn.per_set == 6 // groups * 16
    assert NORM_AXES["GroupNorm"] == ("C/G", "H", "W") and NORM_AXES["BatchNorm"] == ("N", "H", "W")
    if groups == 1:
        assert np.allclose(gn.out, ln.out, rtol=1e-12, atol=1e-12)
    if groups == 6:
        assert np.allclose(gn.out, inn.out, rtol=1e-12, atol=1e-12)


def test_norm_comparison_refuses_bad_input_before_any_work():
    x = norm_activations(n=4, channels=6, size=3)
    with pytest.raises(ShapeError, match="6 channels do not split into 4 equal groups"):
        norm_comparison_job(x, 4)
    with pytest.raises(ShapeError, match=r"\(N, C, H, W\)"):
        norm_comparison_job(x[0], 2)
    with pytest.raises(ValueInputError, match="at least 2 samples"):
        norm_comparison_job(x[:1], 2)
    bad = x.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueInputError, match="NaN"):
        norm_comparison_job(bad, 2)
    job = norm_comparison_job(x, 3)
    progress = []
    result = run_job(job, lambda p: progress.append(p.message))
    assert progress == list(NORM_KINDS) and result.row("GroupNorm").sets == 12


def test_a_non_square_tensor_is_counted_as_h_times_w():
    from simulator.labs.init_stats import MAX_NORM_VALUES, check_norm_size
    # 2 x 1 x 40 x 50 = 4,000 values: compared, with 2,000 pixels per instance-norm set
    x = np.random.default_rng(3).standard_normal((2, 1, 40, 50))
    c = norm_comparison(x, 1)
    assert c.row("InstanceNorm").per_set == 2000 and c.row("BatchNorm").per_set == 4000
    assert c.row("LayerNorm").out.shape == (2, 1, 40, 50)
    check_norm_size(2, 1, 1000, 1000)                               # exactly at the limit
    assert 2 * 1000 * 1000 == MAX_NORM_VALUES
    with pytest.raises(ValueInputError, match="2 x 1 x 1000 x 1001 is too large"):
        check_norm_size(2, 1, 1000, 1001)
    check_norm_size(2, 3, 1, 2)                                     # two pixels per channel are enough
    with pytest.raises(ValueInputError, match="2 pixels per channel"):
        check_norm_size(2, 3, 1, 1)
    with pytest.raises(ValueInputError, match="too large"):
        norm_activations(n=64, channels=64, size=32)
