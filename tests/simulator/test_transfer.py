"""The transfer-learning experiment: one point per label count per method, the probe's body untouched."""
from __future__ import annotations

import numpy as np
import pytest

from simulator.core.errors import ValueInputError
from simulator.core.jobs import Progress, run_job
from simulator.data import datasets
from simulator.labs import transfer as T
from simulator.labs.transfer import (
    METHODS,
    TransferPoint,
    TransferSettings,
    transfer_job,
)

TINY = TransferSettings(hidden=8, pretrain_epochs=1, steps=3, seed=2)


def test_the_job_yields_one_point_per_label_count_per_method_on_a_tiny_configuration():
    items = []
    result = run_job(transfer_job(TINY, counts=(5, 12)), items.append)
    points = [i for i in items if isinstance(i, TransferPoint)]
    assert [(p.method, p.count) for p in points] == [(m, n) for n in (5, 12) for m in METHODS]
    assert result.counts == (5, 12)
    for p in points:
        assert 0.0 <= p.accuracy <= 1.0
        assert result.accuracy[p.method][result.counts.index(p.count)] == p.accuracy
    assert sorted(result.points(), key=repr) == sorted(points, key=repr)
    assert 0.0 <= result.source_accuracy <= 1.0 and result.test_size > 100
    prog = [i for i in items if isinstance(i, Progress)]
    assert prog[-1].done == prog[-1].total == 1 + 2 * 3


def test_tasks_are_disjoint_balanced_and_standardised_with_source_statistics():
    X, y = datasets.load_digits()
    d = T.split_tasks(X, y, TINY)
    Xs, ys = d["source"][0], d["source"][1]
    assert set(np.unique(ys)) == {0, 1, 2, 3, 4}
    Xp, yp = d["pool"]
    Xt, yt = d["test"]
    assert set(np.unique(yp)) == set(np.unique(yt)) == {0, 1, 2, 3, 4}     # 5..9 relabelled
    # the first 10 labelled examples hold two of each class
    assert np.bincount(yp[:10], minlength=5).tolist() == [2] * 5
    # source training data standardised by their own statistics; the target by the same ones, not theirs
    np.testing.assert_allclose(Xs.mean(axis=0), 0.0, atol=1e-12)
    assert np.abs(Xt.mean(axis=0)).max() > 0.1
    assert len(Xp) + len(Xt) == int(np.isin(y, T.TARGET).sum())


def test_the_linear_probe_leaves_the_pretrained_body_bit_identical(monkeypatch):
    trained = []
    real = T._train

    def spy(net, X, y, steps, lr, seed):
        before = net.state_dict()
        real(net, X, y, steps, lr, seed)
        trained.append((net.frozen, before, net.state_dict()))

    monkeypatch.setattr(T, "_train", spy)
    run_job(transfer_job(TINY, counts=(10,)))
    (probe_frozen, b0, a0), (ft_frozen, b1, a1), (sc_frozen, _, _) = trained
    assert probe_frozen == {"fc1", "fc2"} and ft_frozen == sc_frozen == frozenset()
    for k in ("fc1.w", "fc1.b", "fc2.w", "fc2.b"):
        assert a0[k].tobytes() == b0[k].tobytes()
        np.testing.assert_array_equal(b0[k], b1[k])      # probe and fine-tuning start from the same body
        assert not np.array_equal(a1[k], b1[k])          # fine-tuning changes it
    np.testing.assert_array_equal(b0["fc3.w"], b1["fc3.w"])   # and the same fresh head


def test_too_many_labels_are_refused():
    with pytest.raises(ValueInputError, match="cannot be labelled"):
        run_job(transfer_job(TINY, counts=(5000,)))
    assert TransferSettings().label_counts == (10, 25, 50, 100, 250)
