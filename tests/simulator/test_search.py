"""Hyperparameter search and the lecture-8 sanity checks on real digits training (simulator.labs.search)."""
import math

import numpy as np
import pytest

from simulator.core.errors import ValueInputError
from simulator.core.jobs import run_job
from simulator.labs.interpret import digits_data, digits_mlp
from simulator.nn.network import Activation, Flatten, Linear, Network
from simulator.labs.search import (SearchSpace, best_trial, digits_trainer_factory, ensemble, grid_search,
                              initial_loss_check, lr_sweep, overfit_small_subset, random_search, suggest_lr,
                              trials_job)

SPACE = SearchSpace(lr_min=1e-4, lr_max=1e-1, wd_min=1e-5, wd_max=1e-2)


@pytest.fixture(scope="module")
def data():
    return digits_data(0)


def test_grid_search_is_the_full_log_spaced_grid():
    g = grid_search(SPACE, 4)
    assert len(g) == 16
    lrs = sorted({c["lr"] for c in g})
    wds = sorted({c["weight_decay"] for c in g})
    np.testing.assert_allclose(lrs, [1e-4, 1e-3, 1e-2, 1e-1])
    np.testing.assert_allclose(wds, [1e-5, 1e-4, 1e-3, 1e-2])
    assert {(c["lr"], c["weight_decay"]) for c in g} == {(a, b) for a in lrs for b in wds}
    assert grid_search({"lr": (1e-3, 1e-3), "weight_decay": (1e-4, 1e-2)}, 1) == [
        {"lr": pytest.approx(1e-3), "weight_decay": pytest.approx(1e-3)}]


def test_random_search_is_log_uniform_within_bounds():
    r = random_search(SPACE, 400, seed=0)
    assert len(r) == 400
    lr = np.array([c["lr"] for c in r])
    wd = np.array([c["weight_decay"] for c in r])
    assert np.all((lr >= 1e-4) & (lr <= 1e-1)) and np.all((wd >= 1e-5) & (wd <= 1e-2))
    # log10(lr) ~ U(-4, -1): a Kolmogorov-Smirnov distance well under the 1% critical value 1.63 / sqrt(400)
    for v, lo, hi in ((np.log10(lr), -4, -1), (np.log10(wd), -5, -2)):
        u = np.sort((v - lo) / (hi - lo))
        ecdf = np.arange(1, len(u) + 1) / len(u)
        ks = max(np.max(ecdf - u), np.max(u - (ecdf - 1 / len(u))))
        assert ks < 1.63 / math.sqrt(len(u))
    # a linear-uniform sampler would put ~90% of the lr draws in the top decade; log-uniform puts about a third
    assert 0.25 < np.mean(lr > 1e-2) < 0.42
    # seeded
    assert random_search(SPACE, 5, seed=3) == random_search(SPACE, 5, seed=3)
    assert random_search(SPACE, 5, seed=3) != random_search(SPACE, 5, seed=4)
    with pytest.raises(ValueInputError):
        SearchSpace(lr_min=0.0)
    with pytest.raises(ValueInputError):
        random_search(SPACE, 0)


def test_run_trials_trains_each_trial_and_random_finds_more_learning_rates(data):
    make = digits_trainer_factory(data)
    grid = grid_search(SPACE, 3)
    rand = random_search(SPACE, 9, seed=1)
    seen = []
    res = run_job(trials_job(grid + rand, make, epochs=2),
                  on_yield=lambda p: p.result is not None and seen.append((p.done, p.total)) and False)
    assert len(res) == 18 and seen == [(i, 18) for i in range(1, 19)]
    acc = np.array([r.val_accuracy for r in res])
    assert np.all((acc >= 0) & (acc <= 1))
    # lr is the axis that matters: the smallest rate barely learns in two epochs, a good one does
    assert acc[:3].max() < 0.5 and acc.max() > 0.85
    assert best_trial(res).val_accuracy == acc.max()
    # the grid tried 3 distinct learning rates, random search 9
    assert len({r.config["lr"] for r in res[:9]}) == 3 and len({r.config["lr"] for r in res[9:]}) == 9
    # cancelled (the job closed) after two trials: nothing more is trained
    job = trials_job(grid, make, epochs=2)
    finished = []
    for p in job:
        if p.result is not None:
            finished.append(p.result)
            if len(finished) == 2:
                break
    job.close()
    assert len(finished) == 2 and [r.config for r in finished] == grid[:2]
    with pytest.raises(StopIteration):
        next(job)


def test_a_diverging_trial_scores_zero(data):
    # (at lr 1e4 ReLU units merely die and the loss stays finite; 1e20 overflows float32)
    res = run_job(trials_job([{"lr": 1e20, "weight_decay": 0.0}], digits_trainer_factory(data, optimizer="SGD"),
                             epochs=1))
    assert len(res) == 1 and res[0].diverged and res[0].val_accuracy == 0.0


def test_initial_loss_is_close_to_ln_c_for_small_weights(data):
    net = Network((1, 8, 8), [Flatten(), Linear(64, init="gaussian"), Activation("relu"), Linear(10, init="gaussian")],
                  reg=1.0)                        # the regulariser is left out of the check
    loss, ln_c = initial_loss_check(net, data.X_train, data.y_train)
    assert ln_c == pytest.approx(math.log(10))
    assert loss == pytest.approx(ln_c, abs=0.01)
    # larger initial weights give a visibly different (worse) start
    big = Network((1, 8, 8), [Flatten(), Linear(64, init="constant", init_value=0.5), Linear(10)], seed=1)
    assert initial_loss_check(big, data.X_train, data.y_train)[0] > ln_c + 1.0


def test_overfitting_twenty_examples_reaches_near_zero_loss(data):
    r = overfit_small_subset(digits_mlp(0), data.X_train, data.y_train, n=20, steps=200, lr=1e-2)
    assert r.n_samples == 20 and len(r.losses) == 200
    assert r.final_loss < 0.1 and r.final_accuracy == 1.0
    assert r.losses[-1] < 0.05 * r.losses[0]
    # with a learning rate far too small the loss stays near ln(10): the check catches it
    slow = overfit_small_subset(digits_mlp(0), data.X_train, data.y_train, n=20, steps=50, lr=1e-6)
    assert slow.final_loss > 2.0


def test_lr_sweep_rates_grow_exponentially_and_the_loss_blows_up(data):
    lrs, losses = lr_sweep(digits_mlp(0), data.X_train, data.y_train, lr_min=1e-5, lr_max=10.0, iters=100)
    assert len(lrs) == len(losses) and 20 < len(lrs) < 100        # stopped once the loss exploded
    np.testing.assert_allclose(lrs[1:] / lrs[:-1], (1e6) ** (1 / 99))
    assert lrs[0] == pytest.approx(1e-5)
    assert losses.min() < 0.8 * losses[0]
    assert 1e-3 < suggest_lr(lrs, losses) < lrs[-1]


def test_ensemble_beats_the_mean_single_model(data):
    r = ensemble([0, 1, 2], data=data, epochs=10)
    assert r.seeds == (0, 1, 2) and r.single_accuracies.shape == (3,)
    assert len(set(r.single_accuracies)) > 1                         # different seeds, different models
    assert r.ensemble_accuracy >= r.mean_single
    assert r.probabilities.shape == (len(data.y_val), 10)
    np.testing.assert_allclose(r.probabilities.sum(axis=1), 1.0)


def test_a_search_space_offers_only_weight_decays_the_optimizers_take():
    from simulator.core.errors import ValueInputError
    from simulator.functional.optim import WEIGHT_DECAY
    from simulator.labs.search import SearchSpace
    with pytest.raises(ValueInputError, match="weight decay must be ≤ 1"):
        SearchSpace(wd_min=2.0, wd_max=5.0)
    top = SearchSpace(wd_min=0.5, wd_max=WEIGHT_DECAY.high)   # the top of the range trains
    assert top.wd_max == 1.0
