"""The search lab's model without Qt: declared settings, the plan of both searches, the search job, the best
configuration, and the checks and ensemble using the panel's optimizer."""
import math
import threading
import time

import numpy as np
import pytest

from simulator.core.errors import ValueInputError
from simulator.core.jobs import run_job
from simulator.labs import search as S
from simulator.labs import search_lab
from simulator.labs.interpret import digits_data, digits_mlp
from simulator.labs.search_lab import EnsembleSettings, SanitySettings, SearchLabModel, SearchSettings


@pytest.fixture(scope="module")
def data():
    return digits_data(0)


@pytest.fixture
def model(data):
    return SearchLabModel(data=data)


def test_settings_are_declared_and_checked():
    s = SearchSettings()
    assert (s.lr_min, s.lr_max, s.trials, s.optimizer) == (1e-4, 1e-1, 16, "AdamW")
    assert s.per_axis == 4 and SearchSettings(trials=10).per_axis == 3
    with pytest.raises(ValueInputError, match="smallest learning rate .* exceeds"):
        SearchSettings(lr_min=1e-1, lr_max=1e-3)
    with pytest.raises(ValueInputError, match="optimizer"):
        SearchSettings(optimizer="Lion")
    with pytest.raises(ValueInputError, match="trials per search must be a whole number"):
        SearchSettings(trials=math.nan)
    with pytest.raises(ValueInputError, match="first rate"):
        SanitySettings(sweep_lr_min=10.0, sweep_lr_max=1.0)
    with pytest.raises(ValueInputError, match="weight decay must be ≥ 0"):
        EnsembleSettings(weight_decay=-1.0)


def test_default_digits_are_split_once_even_when_jobs_ask_together(data, monkeypatch):
    """Up to three jobs (search, check, ensemble) may ask for the data at once: all get the one split."""
    calls = []

    def slow_digits_data(seed):
        calls.append(seed)
        time.sleep(0.05)                        # the other jobs arrive while the first is still splitting
        return digits_data(seed)

    monkeypatch.setattr(search_lab, "digits_data", slow_digits_data)
    model = SearchLabModel()
    assert model.default_data
    got = []
    threads = [threading.Thread(target=lambda: got.append(model.data())) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [0] and len(got) == 3 and all(all(a is b for a, b in zip(g, got[0])) for g in got)
    assert all(np.array_equal(a, b) for a, b in zip(got[0], data.as_tuple()))
    assert all(a is b for a, b in zip(model.data(), got[0]))


def test_plan_is_a_log_grid_and_seeded_random_draws(model):
    plan = model.plan(SearchSettings(lr_min=1e-3, lr_max=1e-1, wd_min=1e-4, wd_max=1e-2, trials=9, seed=3))
    np.testing.assert_allclose(sorted({c["lr"] for c in plan["grid"]}), [1e-3, 1e-2, 1e-1])
    assert len(plan["grid"]) == 9 and len(plan["random"]) == 9
    assert plan["random"] == S.random_search(S.SearchSpace(1e-3, 1e-1, 1e-4, 1e-2), 9, seed=3)


def test_search_job_trains_both_plans_and_the_best_config_keeps_its_optimizer(model):
    s = SearchSettings(trials=4, epochs=1, optimizer="Adam", lr_min=1e-3, lr_max=3e-2)
    progress = []
    res = run_job(model.search(s), on_yield=progress.append)
    assert len(res["grid"]) == 4 and len(res["random"]) == 4
    finished = [p.done for p in progress]
    assert finished == sorted(finished) and finished[-1] == 8 == progress[-1].total
    model.set_search_results(s, res)
    kind, best = model.best()
    assert best.val_accuracy == max(r.val_accuracy for v in res.values() for r in v) > 0.5
    cfg = model.best_config()
    assert cfg["optimizer"] == "Adam" and cfg["lr"] == best.config["lr"]
    assert cfg["weight_decay"] == best.config["weight_decay"] and cfg["search"] == kind
    # the trials are what a direct run of the same recipe gives
    make = S.digits_trainer_factory(model.data(), lambda seed: digits_mlp(seed), "Adam", 64, 0)
    direct = S.run_trials([res["grid"][0].config], make, 1)
    assert direct[0].val_accuracy == pytest.approx(res["grid"][0].val_accuracy)


def test_the_sweep_and_overfit_checks_use_the_panels_optimizer(model, data):
    sanity = SanitySettings(sweep_iters=40, overfit_steps=50)
    for opt in ("Adam", "SGD"):
        s = SearchSettings(optimizer=opt, seed=2, batch_size=32)
        r = run_job(model.check("lr_sweep", sanity, s))
        assert r.optimizer == opt
        lrs, losses = S.lr_sweep(digits_mlp(2), data.X_train, data.y_train, 1e-5, 10.0, 40, 32, opt, 2)
        np.testing.assert_allclose(r.lrs, lrs)
        np.testing.assert_allclose(r.losses, losses)
        o = run_job(model.check("overfit", sanity, s))
        assert o.optimizer == opt and len(o.losses) == 50
    loss, ln_c = run_job(model.check("initial_loss", sanity, SearchSettings()))
    assert ln_c == pytest.approx(math.log(10)) and abs(loss - ln_c) < 0.5
    with pytest.raises(ValueInputError, match="sanity check"):
        model.check("gradcheck", sanity, SearchSettings())


def test_ensemble_uses_the_panels_optimizer_and_its_own_rate(model, data):
    ens = EnsembleSettings(seeds=2, epochs=2, lr=1e-2)
    r = run_job(model.ensemble(ens, SearchSettings(optimizer="Momentum")))
    direct = S.ensemble([0, 1], lambda s: digits_mlp(s), data, "Momentum", 1e-2, 2, 64, 0.0)
    np.testing.assert_allclose(r.single_accuracies, direct.single_accuracies)
    assert r.ensemble_accuracy == pytest.approx(direct.ensemble_accuracy)
    model.set_ensemble(r)
    assert model.last_ensemble is r


def test_commits_announce_changes_and_bad_factories_are_refused(model):
    seen = []
    model.changed.connect(seen.append)
    model.set_check("initial_loss", (2.3, math.log(10)))
    model.set_network_factory(lambda seed: digits_mlp(seed, hidden=16), name="MLP 16")
    assert seen == ["check", "factory"] and model.factory_name == "MLP 16"
    with pytest.raises(ValueInputError, match="callable"):
        model.set_network_factory(42)
    with pytest.raises(ValueInputError, match="X_train"):
        model.set_network_factory(digits_mlp, data=(1, 2))
    assert model.factory_name == "MLP 16"
