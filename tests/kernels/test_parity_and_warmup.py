"""JIT vs pure-Python parity (NUMBA_DISABLE_JIT=1 in a subprocess), the warm-up collector, and the import rules."""
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

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
        for kk, stride in ((3, 1), (5, 1), (3, 2)):  # the direct kernels (backward at stride 1)
            wk = rng.standard_normal((5, 3, kk, kk)).astype(dt)
            out = conv.conv_forward(x, wk, b[:1].repeat(5), stride, kk // 2)
            r[f"conv_direct{kk}_{stride}_{k}"] = out
            for i, g in enumerate(conv.conv_backward(np.cos(out), x, wk, stride, kk // 2)):
                r[f"conv_direct{kk}_{stride}_grad{i}_{k}"] = g
        w5 = np.random.default_rng(43).standard_normal((5, 3, 5, 5)).astype(dt)  # 5x5 at stride 2 (own stream: the
        out = conv.conv_forward(x, w5, b[:1].repeat(5), 2, 2)                    # draws above stay as they were)
        r["conv_direct5_2_" + k] = out
        for i, g in enumerate(conv.conv_backward(np.cos(out), x, w5, 2, 2)):
            r[f"conv_direct5_2_grad{i}_{k}"] = g
        if dt == np.float32:  # Winograd: >= 32 channels and filters (own stream; small values keep the sums of 288
            rw = np.random.default_rng(44)  # products within the float32 tolerance below)
            xw = (0.1 * rw.standard_normal((2, 32, 5, 7))).astype(dt)
            ww = (0.1 * rw.standard_normal((32, 32, 3, 3))).astype(dt)
            out = conv.conv_forward(xw, ww, rw.standard_normal(32).astype(dt), 1, 1)
            r["conv_winograd_" + k] = out
            for i, g in enumerate(conv.conv_backward(np.cos(out), xw, ww, 1, 1)):
                r[f"conv_winograd_grad{i}_{k}"] = g
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

class _FakeProcess:
    """Stands for the second process behind the real _Helper: records the groups written to it and answers "done"
    when the test says so (`finish()`)."""

    made: list = []

    def __init__(self):
        import queue
        self.given = []
        self.lines = queue.Queue()
        self.code = None
        self.killed = False
        self.stdin = self
        self.stdout = iter(self.lines.get, None)
        _FakeProcess.made.append(self)

    def write(self, text):
        self.given.append(text.split())

    def flush(self):
        pass

    def close(self):
        self.code = 0
        self.lines.put(None)

    def finish(self):
        """The group in hand is compiled; wait until the reader thread has taken the line (and fed the next)."""
        import time
        before = len(self.given)
        self.lines.put("done " + " ".join(self.given[-1]) + "\n")
        t_end = time.monotonic() + 5
        while time.monotonic() < t_end and not self._taken(before):
            time.sleep(0.005)

    def _taken(self, before):
        return self.lines.empty() and (len(self.given) > before or not self.helper.busy)

    def die(self):
        self.lines.put("Traceback …\n")

    def poll(self):
        return self.code

    def kill(self):
        self.killed = True
        self.code = -9
        self.lines.put(None)

    def wait(self, timeout=None):
        return self.code


@pytest.fixture
def fake_helper(monkeypatch):
    from simulator.functional import warmup as WU
    _FakeProcess.made = []
    monkeypatch.setattr(WU, "start_helper", _FakeProcess)
    made = []
    real = WU._Helper

    class Helper(real):
        def __init__(self, plan, running):
            super().__init__(plan, running)
            self.proc.helper = self
            made.append(self)
    monkeypatch.setattr(WU, "_Helper", Helper)
    WU.made_helpers = made
    return WU


def _plan(log, names, slow=(), during=None):
    """Tasks that log their names; a `slow` task runs until the second process exists (a compile the watchdog sees),
    calling `during()` first (the learner acting while it compiles)."""
    import time

    from simulator.functional.warmup import WarmupPlan

    def run(n):
        if n in slow:
            if during is not None:
                during()
            t_end = time.monotonic() + 10
            while not _FakeProcess.made and time.monotonic() < t_end:
                time.sleep(0.005)
        log.append(n)
    return WarmupPlan([(n, lambda n=n: run(n)) for n in names])


def test_a_cold_cache_gives_whole_groups_from_the_back_to_a_second_process(fake_helper, monkeypatch):
    monkeypatch.setattr(fake_helper, "COLD_TASK_SECONDS", 0.01)
    log = []
    names = ["a[f64]", "a[f32]", "b[f64]", "c[f64]", "c[f32]"]
    job = fake_helper.warmup_job(_plan(log, names, slow={"a[f64]"}))
    assert next(job).message == "a[f64]"                              # still compiling it: the second one starts
    proc, = _FakeProcess.made
    assert proc.given == [["c[f64]", "c[f32]"]]                       # at once, with the last group, whole
    assert [next(job).message for _ in range(2)] == ["a[f32]", "b[f64]"]
    waiting = next(job)                                               # only its group is left: this job waits
    assert waiting.message == "c (second process)" and waiting.done == 3 and log == names[:3]
    proc.finish()
    assert [p.message for p in job] == ["c[f64]", "c[f32]"]           # then loads them here, from the cache
    assert log == names and proc.code == 0 and not proc.killed and len(_FakeProcess.made) == 1


def _drain(job, proc, limit=200):
    """The rest of the job's messages, finishing the second process's group whenever the job waits for it."""
    out = []
    for p in job:
        if p.message.endswith("(second process)"):
            proc.finish()
        else:
            out.append(p.message)
        assert len(out) < limit
    return out


def test_the_second_process_goes_on_with_the_next_group_from_the_back_as_soon_as_it_is_done(fake_helper, monkeypatch):
    monkeypatch.setattr(fake_helper, "COLD_TASK_SECONDS", 0.01)
    log = []
    names = ["a[f64]", "a[f32]", "b[f64]", "c[f64]", "d[f64]"]
    job = fake_helper.warmup_job(_plan(log, names, slow={"a[f64]"}))
    next(job)
    proc, = _FakeProcess.made
    assert proc.given == [["d[f64]"]]
    proc.finish()                                     # reported while this process is between two tasks
    assert proc.given == [["d[f64]"], ["c[f64]"]]     # the next group at once; not d again (compiled, to load here)
    proc.finish()
    assert sorted(_drain(job, proc)) == sorted(names[1:]) and sorted(log) == sorted(names)
    assert proc.given[2:] == [["b[f64]"]]             # then b, while a's last task compiles here; never a


def test_the_tab_in_front_and_the_group_compiling_here_stay_with_this_process(fake_helper, monkeypatch):
    monkeypatch.setattr(fake_helper, "COLD_TASK_SECONDS", 0.01)
    log = []
    plan = None

    def open_c_tab():
        plan.prefer(["c"])                                            # the learner opens c's tab meanwhile

    plan = _plan(log, ["a[f64]", "b[f64]", "b[f32]", "c[f64]", "c[f32]", "a[f32]"], slow={"a[f64]"},
                 during=open_c_tab)
    job = fake_helper.warmup_job(plan)
    next(job)
    proc, = _FakeProcess.made
    # the plan is now c, c, b, b, a: a is compiling here, c is in front, so the second process gets b
    assert proc.given == [["b[f64]", "b[f32]"]]
    assert [next(job).message for _ in range(3)] == ["c[f64]", "c[f32]", "a[f32]"]
    job.close()
    assert proc.killed                                                # closed while it held b: stopped


def test_the_last_group_goes_to_the_idle_second_process_while_this_one_compiles(fake_helper, monkeypatch):
    """Measured on the app's Backprop order: the second process sat idle while this one compiled conv (18 s) with
    pool (10 s) left behind it; now it takes pool as soon as it is free."""
    monkeypatch.setattr(fake_helper, "COLD_TASK_SECONDS", 0.01)
    log = []

    def finish_c():                                      # the second process finishes c while a[f32] compiles here
        if _FakeProcess.made and len(_FakeProcess.made[0].given) == 1:
            _FakeProcess.made[0].finish()

    job = fake_helper.warmup_job(_plan(log, ["a[f64]", "a[f32]", "b[f64]", "c[f64]"], slow={"a[f64]", "a[f32]"},
                                       during=finish_c))
    proc = None
    messages = []
    for p in job:
        proc = proc or _FakeProcess.made[0]
        if p.message.endswith("(second process)"):
            proc.finish()
        else:
            messages.append(p.message)
    assert proc.given == [["c[f64]"], ["b[f64]"]]        # b, the only group left, while a[f32] compiled here
    assert sorted(messages) == sorted(log) == ["a[f32]", "a[f64]", "b[f64]", "c[f64]"]


def test_the_second_process_takes_the_costliest_group_first(fake_helper, monkeypatch):
    """conv (28 s to compile) in the middle of a tab's order goes to the second process at once, beside this
    process's first groups, not after them; groups of unknown cost go from the back."""
    monkeypatch.setattr(fake_helper, "COLD_TASK_SECONDS", 0.01)
    assert fake_helper.GROUP_COMPILE_SECONDS["conv"] == max(fake_helper.GROUP_COMPILE_SECONDS.values())
    log = []
    names = ["activations[f64]", "conv[f64]", "conv[f32]", "a[f64]", "b[f64]"]
    job = fake_helper.warmup_job(_plan(log, names, slow={"activations[f64]"}))
    next(job)
    proc, = _FakeProcess.made
    assert proc.given == [["conv[f64]", "conv[f32]"]]
    proc.finish()
    assert proc.given[1] == ["b[f64]"]                  # then the back one (unknown costs tie)
    proc.finish()
    assert sorted(_drain(job, proc)) == sorted(names[1:]) and sorted(log) == sorted(names)


def test_a_warm_cache_starts_no_second_process_and_one_that_dies_leaves_its_group_here(fake_helper, monkeypatch):
    log = []
    assert [p.message for p in fake_helper.warmup_job(_plan(log, ["a[f64]", "b[f64]", "c[f64]"]))] == log
    assert _FakeProcess.made == []                                    # quick tasks: cache hits, nothing to share
    monkeypatch.setattr(fake_helper, "COLD_TASK_SECONDS", 0.01)
    log = []
    job = fake_helper.warmup_job(_plan(log, ["a[f64]", "b[f64]", "c[f64]"], slow={"a[f64]"}))
    next(job)
    proc, = _FakeProcess.made
    assert proc.given == [["c[f64]"]]
    proc.die()                                                        # it crashed: c compiles here
    assert [p.message for p in job if not p.message.endswith("(second process)")] == ["b[f64]", "c[f64]"]
    assert log == ["a[f64]", "b[f64]", "c[f64]"] and len(_FakeProcess.made) == 1


def test_the_second_process_compiles_what_it_is_sent_into_the_cache(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=str(ROOT))
    run = subprocess.run([sys.executable, "-m", "kernels.warmup", "--serve"], input="dropout[float64]\n", text=True,
                         cwd=ROOT, env=env, capture_output=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["done", "dropout[float64]"]
    assert any(p.suffix == ".nbc" for p in (tmp_path / "cache").rglob("*"))   # compiled code in the on-disk cache
    bad = subprocess.run([sys.executable, "-m", "kernels.warmup", "--serve"], input="no-such-task\n", text=True,
                         cwd=ROOT, env=env, capture_output=True, timeout=300)
    assert bad.returncode == 2


def test_a_cold_warm_up_with_the_real_second_process_runs_every_task(tmp_path):
    code = ("import json\nfrom simulator.functional import warmup as WU\n"
            "plan = WU.default_plan()\n"
            "keep = {n for n in plan.names() if plan.group_of(n) in ('dropout', 'losses')}\n"
            "plan = WU.WarmupPlan([t for t in plan._tasks if t[0] in keep], plan._module_of)\n"
            "WU.COLD_TASK_SECONDS = 0.0\n"
            "print(json.dumps([p.message for p in WU.warmup_job(plan)]))\n")
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=str(ROOT))
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    messages = json.loads(run.stdout)
    done = [m for m in messages if "second process" not in m]
    assert sorted(done) == sorted(["dropout[float64]", "dropout[float32]", "losses[float64]", "losses[float32]"])
    # the back group (losses) was compiled by the second process into the cache: its index files are there
    assert any("losses" in p.name and p.suffix == ".nbi" for p in (tmp_path / "cache").rglob("*"))
