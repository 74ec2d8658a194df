"""JIT vs pure-Python parity (NUMBA_DISABLE_JIT=1 in a subprocess), the warm-up collector, and the import rules."""
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]

# Runs the same kernels on the same seeded inputs; saved to the .npz path given as argv[1].
SCRIPT = r'''
import sys
import numpy as np
from kernels import activations as A, conv, dropout, losses, norm, pool

def run():
    rng = np.random.default_rng(42)
    r = {}
    for dt in (np.float64, np.float32):
        k = np.dtype(dt).name
        x = rng.standard_normal((2, 3, 7, 6)).astype(dt)
        w = rng.standard_normal((4, 3, 3, 2)).astype(dt)
        b = rng.standard_normal(4).astype(dt)
        out = conv.conv_forward(x, w, b, 2, 1)
        r["conv_out_" + k] = out
        for i, g in enumerate(conv.conv_backward(np.ones_like(out), x, w, 2, 1)):
            r[f"conv_grad{i}_{k}"] = g
        out, arg = pool.max_pool_forward(x, 2, 2, 2, 2)
        r["maxpool_" + k] = out
        r["maxpool_dx_" + k] = pool.max_pool_backward(out, arg, 7, 6)
        r["avgpool_" + k] = pool.avg_pool_backward(pool.avg_pool_forward(x, 3, 2, 1, 2), 7, 6, 3, 2, 1, 2)
        x3 = x.reshape(2, 3, 42)
        o, xh, m, v, s = norm.batchnorm_train_forward(x3, b[:3], b[1:], 1e-5)
        r["bn_" + k] = o
        for i, g in enumerate(norm.batchnorm_backward(x3, xh, b[:3], s, True)):
            r[f"bn_grad{i}_{k}"] = g
        o, xh, s = norm.layernorm_forward(x3.reshape(2, -1), np.ones(126, dt), np.zeros(126, dt), 1e-5)
        r["ln_dx_" + k] = norm.layernorm_backward(o, xh, np.ones(126, dt), s)[0]
        r["gelu_" + k] = A.gelu_backward(x, x) + A.gelu_forward(x)
        r["sigmoid_" + k] = A.sigmoid_backward(x, A.sigmoid_forward(x))
        r["prelu_" + k] = A.prelu_backward(x, x, np.full(3, 0.2, dt))[1]
        r["dropout_" + k] = dropout.dropout_forward(x, 0.3, 5)[0]
        loss, ds = losses.softmax_loss(x.reshape(6, -1), np.arange(6) % 5)
        r["softmax_" + k] = ds
        r["softmax_loss_" + k] = np.array(loss)
        loss, ds = losses.svm_loss(x.reshape(6, -1), np.arange(6) % 5)
        r["svm_" + k] = ds
        r["svm_loss_" + k] = np.array(loss)
    return r

if __name__ == "__main__":
    np.savez(sys.argv[1], **run())
'''


def test_pure_python_kernels_match_the_jit(tmp_path):
    script = tmp_path / "parity.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, NUMBA_DISABLE_JIT="1", PYTHONPATH=str(ROOT))
    subprocess.run([sys.executable, str(script), str(tmp_path / "nojit.npz")], env=env, check=True, cwd=ROOT,
                   timeout=300)
    namespace = {"__name__": "parity"}
    exec(compile(SCRIPT, "parity", "exec"), namespace)
    jit = namespace["run"]()
    nojit = np.load(tmp_path / "nojit.npz")
    assert sorted(jit) == sorted(nojit.files)
    for key, value in jit.items():
        tol = 1e-12 if "float64" in key else 1e-5
        assert value.dtype == nojit[key].dtype, key
        np.testing.assert_allclose(value, nojit[key], rtol=tol, atol=tol, err_msg=key)


def test_warmup_reports_progress_for_every_module_and_dtype():
    import kernels
    from kernels import warmup as W

    calls = []
    total = kernels.warmup(lambda done, n, name: calls.append((done, n, name)), dtypes=(np.float64,))
    assert total == len(calls) > 0
    assert [c[0] for c in calls] == list(range(1, total + 1))
    assert all(c[1] == total for c in calls)
    names = [c[2] for c in calls]
    for module in ("conv", "pool", "activations", "norm", "dropout", "losses"):
        assert f"{module}[float64]" in names
    assert not any("float32" in n for n in names if "[" in n and not n.startswith("optim"))
    try:
        import kernels.optim as optim
    except ModuleNotFoundError:
        optim = None
    if optim is not None and hasattr(optim, "warmup_tasks"):
        assert len(names) > 6  # the optimizer kernels are included
    assert len(W.collect_tasks((np.float64, np.float32))) > len(W.collect_tasks((np.float64,)))


def test_warmup_calls_modules_without_a_dtypes_parameter_with_no_arguments(monkeypatch):
    from kernels import warmup as W

    ran = []
    fake = types.ModuleType("kernels.fake_for_test")
    fake.warmup_tasks = lambda: [("fake", lambda: ran.append(1))]
    monkeypatch.setitem(sys.modules, "kernels.fake_for_test", fake)
    monkeypatch.setattr(W, "MODULES", ("fake_for_test", "losses"))
    progress = []
    assert W.warmup(lambda d, n, name: progress.append(name), dtypes=(np.float32,)) == 2
    assert ran == [1] and progress == ["fake", "losses[float32]"]


def test_kernels_import_neither_simulator_nor_qt():
    code = ("import sys, kernels, kernels.warmup, kernels.conv, kernels.pool, kernels.activations, kernels.norm, "
            "kernels.dropout, kernels.losses\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('simulator', 'PySide6', 'PyQt5', 'PyQt6', 'gui')]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120,
                   env=dict(os.environ, PYTHONPATH=str(ROOT)))


def test_kernels_warmup_is_callable_however_it_was_imported():
    code = ("import numpy as np\nimport kernels.warmup as W\nimport kernels\nfrom kernels import warmup\n"
            "assert W is warmup is kernels.warmup\nassert callable(W) and hasattr(W, 'collect_tasks')\n"
            "from kernels.warmup import warmup as f\nassert callable(f)\n")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120,
                   env=dict(os.environ, PYTHONPATH=str(ROOT)))


def test_warmup_runs_the_groups_asked_for_first():
    from kernels import warmup as W

    names = [n for n, _ in W.collect_tasks((np.float32,), first=("pool", "conv"))]
    assert names[:2] == ["pool[float32]", "conv[float32]"]
    assert sorted(names) == sorted(n for n, _ in W.collect_tasks((np.float32,)))
    calls = []
    assert W.warmup(lambda d, n, name: calls.append(name), dtypes=(np.float64,), first="losses") == len(calls)
    assert calls[0] == "losses[float64]"
    import pytest
    with pytest.raises(ValueError, match="unknown warm-up group"):
        W.collect_tasks(first=("nope",))


def test_every_numba_kernel_releases_the_gil():
    import importlib

    from numba.core.registry import CPUDispatcher

    from kernels import warmup as W

    found = 0
    for name in W.MODULES:
        module = importlib.import_module(f"kernels.{name}")
        for attr, obj in vars(module).items():
            if isinstance(obj, CPUDispatcher):
                found += 1
                assert obj.targetoptions.get("nogil") is True, f"kernels.{name}.{attr} is not nogil"
                assert not obj.targetoptions.get("parallel"), f"kernels.{name}.{attr} uses parallel=True"
    assert found > 20


# ---- the second warm-up process (simulator.functional.warmup) -----------------------------------------------

class _FakeHelper:
    """Stands for the helper process: running until `finish()`, recording kill()."""

    def __init__(self, names):
        self.names = list(names)
        self.code = None
        self.killed = False

    def poll(self):
        return self.code

    def finish(self, code=0):
        self.code = code

    def kill(self):
        self.killed = True
        self.code = -9

    def wait(self):
        return self.code


def _plan(log, names):
    from simulator.functional.warmup import WarmupPlan
    return WarmupPlan([(n, lambda n=n: log.append(n)) for n in names])


def test_back_half_takes_about_half_of_the_compile_cost_from_the_end():
    from simulator.functional.warmup import back_half
    assert back_half(["a[f64]", "b[f64]", "c[f64]", "d[f64]"]) == ["c[f64]", "d[f64]"]
    # one-kernel tasks ('optim.x[...]') weigh a fifth of a module's: five of them balance one module task
    names = ["conv[f64]"] + [f"optim.k{i}[f64]" for i in range(5)]
    assert back_half(names) == names[1:]
    assert back_half(["a[f64]"]) == [] and back_half(["a[f64]", "b[f64]"]) == ["b[f64]"]


def test_a_cold_cache_hands_the_back_half_to_a_second_process_and_loads_it_after(monkeypatch):
    from simulator.functional import warmup as WU
    helpers = []
    monkeypatch.setattr(WU, "start_helper", lambda names: helpers.append(_FakeHelper(names)) or helpers[-1])
    monkeypatch.setattr(WU, "COLD_TASK_SECONDS", -1.0)      # every task counts as a compile
    log = []
    names = ["a[f64]", "b[f64]", "c[f64]", "d[f64]", "e[f64]"]
    job = WU.warmup_job(_plan(log, names))
    assert next(job).message == "a[f64]"
    assert len(helpers) == 1 and helpers[0].names == ["d[f64]", "e[f64]"]
    assert [next(job).message for _ in range(2)] == ["b[f64]", "c[f64]"]
    waiting = next(job)                                       # only the helper's tasks are left: the job waits
    assert waiting.message == "compiling in a second process" and waiting.done == 3 and log == names[:3]
    helpers[0].finish()
    assert [p.message for p in job] == ["d[f64]", "e[f64]"]  # then loads them here (from the cache it filled)
    assert log == names and len(helpers) == 1 and not helpers[0].killed


def test_a_warm_cache_starts_no_helper_and_closing_the_job_kills_a_running_one(monkeypatch):
    from simulator.functional import warmup as WU
    helpers = []
    monkeypatch.setattr(WU, "start_helper", lambda names: helpers.append(_FakeHelper(names)) or helpers[-1])
    log = []
    assert [p.message for p in WU.warmup_job(_plan(log, ["a[f64]", "b[f64]", "c[f64]"]))] == log
    assert helpers == []                                      # instant tasks: cache hits, nothing to share
    monkeypatch.setattr(WU, "COLD_TASK_SECONDS", -1.0)
    job = WU.warmup_job(_plan(log, ["a[f64]", "b[f64]", "c[f64]"]))
    next(job)
    job.close()                                               # the learner quit: the helper is stopped too
    assert helpers[0].killed


def test_the_helper_process_compiles_the_named_tasks_into_the_cache(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=str(ROOT))
    run = subprocess.run([sys.executable, "-m", "kernels.warmup", "--tasks", "dropout[float64]"], cwd=ROOT, env=env,
                         capture_output=True, timeout=300)
    assert run.returncode == 0, run.stderr.decode()
    assert any(p.suffix == ".nbc" for p in (tmp_path / "cache").rglob("*"))   # compiled code in the on-disk cache
    bad = subprocess.run([sys.executable, "-m", "kernels.warmup", "--tasks", "no-such-task"], cwd=ROOT, env=env,
                         capture_output=True, timeout=300)
    assert bad.returncode == 2
