"""Declared parameters validate and coerce once for model and form; jobs are generators with progress, result and
cancel by close()."""
import math
from dataclasses import dataclass

import numpy as np
import pytest

from simulator.core.errors import ValueInputError
from simulator.core.jobs import Progress, run_job
from simulator.core.params import Settings, check_int, check_real, param, params_of


@dataclass(frozen=True)
class Demo(Settings):
    optimizer: str = param("Adam", choices=("SGD", "Adam"), doc="update rule")
    lr: float = param(1e-2, low=0, low_open=True, log=True, label="learning rate")
    batch: int = param(32, low=1, high=4096)
    shuffle: bool = param(True)


def test_declarations_carry_kind_default_range_and_label():
    ps = {p.name: p for p in params_of(Demo)}
    assert [p.name for p in params_of(Demo)] == ["optimizer", "lr", "batch", "shuffle"]
    assert ps["lr"].kind is float and ps["lr"].log and ps["lr"].low == 0 and ps["lr"].low_open
    assert ps["lr"].title == "learning rate" and ps["batch"].title == "batch"
    assert ps["batch"].kind is int and (ps["batch"].low, ps["batch"].high) == (1, 4096)
    assert ps["shuffle"].kind is bool and ps["optimizer"].choices == ("SGD", "Adam")
    assert Demo() == Demo(optimizer="Adam", lr=0.01, batch=32, shuffle=True)


@pytest.mark.parametrize("changes, message", [
    ({"lr": 0.0}, "learning rate must be > 0, got 0"),
    ({"lr": math.nan}, "learning rate must be a finite number"),
    ({"lr": "fast"}, "learning rate must be a number"),
    ({"batch": 0}, "batch must be ≥ 1, got 0"),
    ({"batch": 10**9}, "batch must be ≤ 4096"),
    ({"batch": 2.5}, "batch must be a whole number"),
    ({"optimizer": "Adagrad"}, "unknown optimizer 'Adagrad'; choose one of: SGD, Adam"),
    ({"shuffle": 1}, "shuffle must be true or false"),
])
def test_bad_settings_are_refused_with_the_parameter_named(changes, message):
    with pytest.raises(ValueInputError, match=message.replace("(", r"\(")):
        Demo(**changes)
    with pytest.raises(ValueInputError):
        Demo().replace(**changes)


def test_whole_floats_become_ints_and_unknown_keys_are_refused_or_ignored():
    assert Demo(batch=64.0).batch == 64 and isinstance(Demo(batch=np.int64(8)).batch, int)
    with pytest.raises(ValueInputError, match="no setting 'momentum'"):
        Demo().replace(momentum=0.9)
    assert Demo.from_dict({"lr": 0.5, "from_an_old_version": 1}) == Demo(lr=0.5)
    assert Demo(lr=0.5).as_dict() == {"optimizer": "Adam", "lr": 0.5, "batch": 32, "shuffle": True}


def test_plain_checks():
    assert check_real("eps", np.float32(0.5), 0, 1) == 0.5
    assert check_int("k", np.int64(3), 1) == 3 and check_int("k", 3.0, 1) == 3
    with pytest.raises(ValueInputError, match="k must be ≥ 1"):
        check_int("k", 0, 1)
    with pytest.raises(ValueInputError, match="alpha must be ≤ 1"):
        check_real("alpha", 1.5, 0, 1)


def _counting(n):
    total = 0
    for i in range(n):
        total += i
        yield Progress(i + 1, n, "adding")
    return total


def test_a_job_runs_to_its_result_and_reports_progress():
    seen = []
    assert run_job(_counting(5), seen.append) == 10
    assert [p.done for p in seen] == [1, 2, 3, 4, 5] and seen[-1].fraction == 1.0


def test_a_job_is_cancelled_by_close():
    closed = []

    def job():
        try:
            for i in range(100):
                yield i
        finally:
            closed.append(True)
        return "finished"

    assert run_job(job(), lambda i: i == 3) is None
    assert closed == [True]


def test_choice_labels_name_each_choice_and_must_match_them():
    from simulator.core.params import Param
    from simulator.nn.network import Objective
    init = next(p for p in params_of(Objective) if p.name == "init")
    assert init.choice_label("gaussian") == "gaussian 0.01" and init.choice_label("kaiming") == "kaiming"
    with pytest.raises(ValueError, match="one label per choice"):
        Param("x", str, "a", choices=("a", "b"), choice_labels=("A",))


def test_the_network_objective_is_declared_once_and_checked_by_the_network():
    from simulator.nn.network import Linear, Network, Objective
    assert Objective() == Objective(init="kaiming", loss="softmax", reg=0.0, reg_kind="l2")
    with pytest.raises(ValueInputError, match="regularisation λ must be ≤ 10"):
        Network((2,), [Linear(3)], reg=1e3)
    with pytest.raises(ValueInputError, match="unknown penalty 'l3'"):
        Network((2,), [Linear(3)], reg_kind="l3")
