"""The Init / norm lab's model: its settings, the experiment job, and an explanation that agrees with its numbers."""
from __future__ import annotations

import re

import numpy as np
import pytest

from simulator.core.errors import ValueInputError
from simulator.core.jobs import run_job
from simulator.labs.init_lab import BINS, InitLabModel, InitSettings, explain
from simulator.labs.init_stats import layer_statistics

SMALL = dict(depth=10, width=200, n=400, seed=0)


def numbers_in(text: str) -> list[float]:
    return [float(t) for t in re.findall(r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?", text)]


def test_tanh_with_unit_gaussian_says_gradients_grow_as_its_table_shows():
    # the seam: the lab used to say "local gradient ≈ 0, learning stalls" next to dL/da growing 1 -> 7e4
    s = layer_statistics(activation="tanh", init="gaussian 1.0", **SMALL)
    g = s.column("grad_std")
    assert g[0] / g[-1] > 1e3                         # the numbers: dL/da grows from layer 10 back to layer 1
    text = explain(s)
    assert "grows" in text and "explode" in text
    assert "stall" not in text and "vanish and" not in text
    assert f"{g[-1]:.2g} at layer 10" in text         # quotes the table's own values
    assert f"{g[0]:.2g}" in text or f"{g[0]:.1e}" in text
    assert f"×{g[0] / g[-1]:.3g}" in text or f"×{g[0] / g[-1]:.1e}" in text
    assert f"{np.mean(s.column('saturated')):.0%} of the tanh units are saturated" in text
    # the gain per layer of Wᵀ: std 1 times sqrt(200)
    assert f"×{np.sqrt(200):.3g}" in text


@pytest.mark.parametrize("activation, init", [("tanh", "gaussian 0.01"), ("tanh", "xavier"), ("relu", "kaiming"),
                                              ("relu", "gaussian 1.0"), ("relu", "xavier")])
def test_the_direction_words_follow_the_measured_ratios(activation, init):
    s = layer_statistics(activation=activation, init=init, **SMALL)
    text = explain(s)
    a = s.column("std")[-1] / s.column("std")[0]
    g = s.column("grad_std")[0] / s.column("grad_std")[-1]
    assert ("collapse" in text) == (a < 1e-2) and ("Activations explode" in text) == (a > 1e2)
    assert ("grows" in text) == (g > 1e2) and ("shrinks" in text) == (g < 1e-2)
    if activation == "relu":
        assert f"{np.mean(s.column('zero_fraction')):.0%} of the ReLU outputs are 0" in text


def test_gaussian_001_with_tanh_collapses_and_gradients_vanish():
    text = explain(layer_statistics(activation="tanh", init="gaussian 0.01", **SMALL))
    # 0.01 * sqrt(200) = 0.141: the per-layer factor of both the activations and the gradients
    assert "collapse" in text and "×0.14" in text and "vanish" in text


def test_batch_norm_sentence_quotes_the_pre_activation_std():
    s = layer_statistics(activation="tanh", init="gaussian 0.01", batchnorm=True, **SMALL)
    text = explain(s)
    pre = s.column("pre_std")
    assert f"{pre.min():.3f}–{pre.max():.3f}" in text and abs(pre.mean() - 1) < 0.02


def test_the_experiment_job_returns_histograms_and_the_model_announces_them():
    model = InitLabModel()
    seen = []
    model.changed.connect(lambda: seen.append(model.result))
    settings = InitSettings(**SMALL, activation="relu", init="kaiming")
    progress = []
    result = run_job(model.experiment(settings), progress.append)
    assert progress[-1].done == progress[-1].total == 2 * 10 + 1
    assert len(result.acts) == len(result.grads) == 10 and result.other == []
    counts, edges = result.acts[0]
    assert len(counts) == BINS and edges[0] == 0.0        # ReLU: a > 0 only; the zeros are a number of their own
    # each row holds the share of 0 < a ≤ the 99.5th percentile: about half of the outputs, less the top 0.5%
    assert 0 < (1 - result.stats.layers[0].zero_fraction) - counts.sum() <= 0.005 + 1e-9
    assert seen == [] and model.result is None
    model.show(result)
    assert seen == [result] and model.stats is result.stats and model.settings == settings


def test_settings_and_oversized_experiments_are_refused_before_anything_runs():
    with pytest.raises(ValueInputError, match="Depth \\(layers\\) must be ≤ 30"):
        InitSettings(depth=31)
    with pytest.raises(ValueInputError, match="unknown Initialisation 'he'"):
        InitSettings(init="he")
    model = InitLabModel()
    with pytest.raises(ValueInputError, match="too slow"):
        model.experiment(InitSettings(width=2000, n=1000, depth=20))
    assert model.result is None and model.settings == InitSettings()


# ------------------------------------------------------------------------------------------- the norm comparison

def test_the_model_compares_the_four_norms_and_explains_with_their_numbers():
    from simulator.core.errors import ShapeError
    from simulator.labs.init_lab import NormSettings, explain_norms
    model = InitLabModel()
    seen = []
    model.norms_changed.connect(lambda: seen.append(model.norms))
    s = NormSettings(n=4, channels=8, size=3, groups=4, seed=2)
    model.show_norms(run_job(model.norm_comparison(s)))
    assert seen == [model.norms] and model.norm_settings == s
    c = model.norms
    assert c.x.shape == (4, 8, 3, 3)
    assert [(r.name, r.sets, r.per_set) for r in c.rows] == [("BatchNorm", 8, 36), ("LayerNorm", 4, 72),
                                                             ("InstanceNorm", 32, 9), ("GroupNorm", 16, 18)]
    text = explain_norms(c)
    for r in c.rows:
        assert f"{r.name}: {r.sets} mean/variance statistics" in text and f"= {r.per_set} values" in text
        assert f"{r.in_mean[0]:+.2f}…{r.in_mean[1]:+.2f}" in text
    assert f"the samples' means still differ (spread {c.row('BatchNorm').sample_spread:.2f})" in text
    assert "G = 4" in text
    with pytest.raises(ShapeError, match="8 channels do not split into 3"):
        model.norm_comparison(NormSettings(channels=8, groups=3))
    assert model.norms is c and model.norm_settings == s and len(seen) == 1    # a refusal changes nothing
    with pytest.raises(ValueInputError, match="Batch N must be ≥ 2"):
        NormSettings(n=1)


def test_the_norms_come_in_the_group_norm_papers_order():
    # the view draws its four cubes and its table rows in this order (Wu & He 2018, figure 2)
    from simulator.labs.init_lab import NormSettings
    from simulator.labs.init_stats import NORM_KINDS
    assert NORM_KINDS == ("BatchNorm", "LayerNorm", "InstanceNorm", "GroupNorm")
    c = run_job(InitLabModel().norm_comparison(NormSettings(n=2, channels=2, size=2, groups=1)))
    assert tuple(r.name for r in c.rows) == NORM_KINDS


def test_a_comparison_over_the_size_limit_is_refused_before_the_tensor_is_built():
    import tracemalloc

    from simulator.labs.init_lab import NormSettings
    from simulator.labs.init_stats import MAX_NORM_VALUES
    s = NormSettings(n=64, channels=64, size=32, groups=1)          # the form allows it: 4,194,304 values
    assert s.n * s.channels * s.size ** 2 > MAX_NORM_VALUES
    model = InitLabModel()
    tracemalloc.start()
    try:
        with pytest.raises(ValueInputError, match=r"64 x 64 x 32 x 32 is too large"):
            model.norm_comparison(s)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000          # the tensor alone would be 33.5 MB of float64
    assert model.norm_settings == NormSettings()
