"""Crash recovery across processes: a killed instance's autosave is offered at the next start (with a file, an
example or nothing), keeps its original path and shows as modified; a live instance's autosave is neither offered
nor deleted; Later keeps an autosave, Restore and Discard remove it; --screenshot never asks."""
import os
import select
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings, QStandardPaths

import main
from gui import recovery
from gui.commands import SetValueCommand
from gui.main_window import MainWindow
from gui.recovery import ENV_FOLDER, RecoveryStore
from simulator import load_example
from simulator.graphs import fileformat

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="kill -9 is POSIX")

CHILD = textwrap.dedent("""
    import os, sys
    from PySide6.QtCore import QSettings
    from gui.app import create_app
    from gui.commands import SetValueCommand
    from gui.main_window import MainWindow
    app = create_app(sys.argv[:1])
    w = MainWindow(settings=QSettings(sys.argv[2], QSettings.IniFormat), warm_up=False)
    assert w.open_path(sys.argv[1])
    w.undo_stack.push(SetValueCommand(w.graph, "y", float(sys.argv[3])))
    assert w.autosave()
    print("AUTOSAVED", w.autosave_path, flush=True)
    app.exec()
""")


class Instance:
    """A real Backprop Studio process that opened `path`, set y to `y` and autosaved."""

    def __init__(self, folder: Path, path: Path, y: float, tmp: Path):
        env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", ENV_FOLDER: str(folder)}
        self.err = tmp / f"child{y}.err"
        with open(self.err, "wb") as err:  # a file, not a pipe: a chatty child must never block on a full pipe
            self.proc = subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(tmp / f"child{y}.ini"), str(y)],
                                         cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=err, text=True)
        ready, _, _ = select.select([self.proc.stdout], [], [], 120)  # until the autosave is on disk
        line = self.proc.stdout.readline() if ready else ""
        if not line.startswith("AUTOSAVED"):
            self.stop()
            pytest.fail(f"the instance did not autosave: {self.err.read_text(errors='replace')}")
        self.autosave = Path(line.split(maxsplit=1)[1].strip())
        self.lock = self.autosave.with_name(self.autosave.name.replace(".bps.json", ".lock"))
        assert self.autosave.is_file() and self.lock.is_file()

    def kill9(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        assert self.proc.wait(timeout=60) == -signal.SIGKILL

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=60)
        self.proc.stdout.close()


@pytest.fixture
def folder(tmp_path, monkeypatch):
    QStandardPaths.setTestModeEnabled(True)
    f = tmp_path / "recovery"
    monkeypatch.setenv(ENV_FOLDER, str(f))
    monkeypatch.setattr(MainWindow, "_start_warmup", lambda self: None)  # no kernel compiles beside the test
    return f


@pytest.fixture
def files(tmp_path):
    fan, circuit = tmp_path / "fan.bps.json", tmp_path / "circuit.bps.json"
    fileformat.save(load_example("fan_out"), fan)
    fileformat.save(load_example("circuit"), circuit)
    return fan, circuit


@pytest.fixture
def asked(monkeypatch):
    """The recovery question, answered from a list (default Later), recording what was offered."""
    state = {"answers": [], "offered": []}

    def choose(parent, orphan):
        state["offered"].append(orphan)
        return state["answers"].pop(0) if state["answers"] else "later"
    monkeypatch.setattr(recovery, "choose", choose)
    return state


_OPEN: list = []


@pytest.fixture(autouse=True)
def _close_windows_left_open():
    yield
    while _OPEN:   # a failed test must not hang on the "unsaved changes" question at teardown
        _close(_OPEN.pop())


def _start(qtbot, tmp_path, *argv):
    """A start as main.py does it (file, --example or nothing); the test then calls the offer main.py schedules."""
    args = main._parser().parse_args(list(argv))
    w = main.open_window(args, QSettings(str(tmp_path / f"start{time.monotonic_ns()}.ini"), QSettings.IniFormat))
    _OPEN.append(w)
    return w


def _close(w):
    w.undo_stack.setClean()
    w.close()
    if w in _OPEN:
        _OPEN.remove(w)


def test_a_killed_instance_is_offered_at_a_start_with_a_file_and_comes_back_with_its_path(qtbot, tmp_path, folder,
                                                                                         files, asked):
    fan, circuit = files
    dead = Instance(folder, fan, 7.0, tmp_path)
    live = Instance(folder, fan, 5.0, tmp_path)
    try:
        dead.kill9()
        w = _start(qtbot, tmp_path, str(circuit))
        assert w.current_path == circuit
        asked["answers"] = ["restore"]
        assert w.offer_recovery()
        assert [o.path for o in asked["offered"]] == [dead.autosave]   # not the live instance's
        assert float(w.graph.node("y").value) == 7.0
        assert w.current_path == fan.absolute() and w.windowTitle().startswith("fan.bps.json")
        assert w.isWindowModified() and not w.undo_stack.isClean()
        assert not dead.autosave.exists() and not dead.lock.exists()  # restored: the dead slot is gone
        assert float(fileformat.load(w.autosave_path).node("y").value) == 7.0  # and safe in this one's slot
        assert live.autosave.exists() and live.lock.exists()
        assert float(fileformat.load(live.autosave).node("y").value) == 5.0
        _close(w)
        assert not w.autosave_path.exists()
        assert live.autosave.exists() and live.lock.exists()      # closing one instance leaves the other's work
        assert live.proc.poll() is None
    finally:
        dead.stop()
        live.stop()


def test_later_keeps_the_autosave_and_discard_removes_it_at_example_and_plain_starts(qtbot, tmp_path, folder, files,
                                                                                      asked):
    fan, _ = files
    dead = Instance(folder, fan, 7.0, tmp_path)
    try:
        dead.kill9()
        w = _start(qtbot, tmp_path, "--example", "sigmoid_neuron")
        assert not w.offer_recovery()             # answered Later
        assert len(asked["offered"]) == 1 and asked["offered"][0].original == fan.absolute()
        assert w.example_name == "sigmoid_neuron"
        assert dead.autosave.exists()
        _close(w)
        assert dead.autosave.exists()             # closing after Later keeps it too

        w = _start(qtbot, tmp_path)               # no argument: the default example, and the question again
        asked["answers"] = ["discard"]
        assert not w.offer_recovery()
        assert len(asked["offered"]) == 2
        assert not dead.autosave.exists() and not dead.lock.exists()
        assert not w.offer_recovery() and len(asked["offered"]) == 2
        _close(w)
    finally:
        dead.stop()


def test_a_live_instance_is_neither_offered_nor_deleted(qtbot, tmp_path, folder, files, asked):
    fan, circuit = files
    live = Instance(folder, fan, 5.0, tmp_path)
    try:
        w = _start(qtbot, tmp_path, str(circuit))
        asked["answers"] = ["discard"]
        assert not w.offer_recovery()
        assert asked["offered"] == []
        _close(w)
        assert live.autosave.exists() and live.lock.exists()
        live.kill9()                               # now it is a crash: offered
        w = _start(qtbot, tmp_path, str(circuit))
        assert not w.offer_recovery() and len(asked["offered"]) == 1
        _close(w)
    finally:
        live.stop()


def test_screenshot_never_asks_and_leaves_autosaves_alone(tmp_path, folder, files):
    fan, _ = files
    dead = Instance(folder, fan, 7.0, tmp_path)
    try:
        dead.kill9()
        env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", ENV_FOLDER: str(folder)}
        out = tmp_path / "shot.png"
        proc = subprocess.run([sys.executable, "main.py", str(fan), "--screenshot", str(out), "--size", "800x600"],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert out.stat().st_size > 1000
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temp, no ini left
        assert sorted(os.listdir(folder)) == sorted([dead.autosave.name, dead.lock.name])
    finally:
        dead.stop()


@pytest.mark.parametrize("content", [b"{not json", None])
def test_screenshot_of_a_bad_file_fails_on_stderr_without_a_dialog(tmp_path, content):
    bad = tmp_path / "bad.bps.json"
    if content is None:
        os.mkfifo(bad)                        # a FIFO nobody writes to: refused at once, not waited on
    else:
        bad.write_bytes(content)
    out = tmp_path / "shot.png"
    proc = subprocess.run([sys.executable, "main.py", str(bad), "--screenshot", str(out)], cwd=ROOT,
                          env={**os.environ, "QT_QPA_PLATFORM": "offscreen"}, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1
    assert "bad.bps.json" in proc.stderr and ("not valid JSON" in proc.stderr or "not a regular file" in proc.stderr)
    assert "Traceback" not in proc.stderr
    assert not out.exists()


# ---- the store without Qt: slots, claims and leftovers -------------------------------------------------------------

def _dead_slot(folder: Path, instance: str, y: float, original: Path | None = None) -> Path:
    """What a killed instance leaves: its autosave and an unheld lock file."""
    folder.mkdir(parents=True, exist_ok=True)
    g = load_example("fan_out")
    g.set_value("y", y)
    path = folder / f"{instance}.bps.json"
    meta = {"autosave": {"original": None if original is None else str(original), "example": None,
                         "saved_at": time.time(), "pid": 1}}
    fileformat.save(g, path, meta=meta)
    (folder / f"{instance}.lock").write_text("1\n")
    return path


def test_an_orphan_being_offered_is_not_offered_by_a_third_instance(tmp_path):
    folder = tmp_path / "r"
    _dead_slot(folder, "1-dead", 7.0, tmp_path / "a.bps.json")
    second, third = RecoveryStore(folder), RecoveryStore(folder)
    try:
        found = second.orphans()
        assert [o.instance for o in found] == ["1-dead"] and found[0].original == tmp_path / "a.bps.json"
        assert third.orphans() == []                  # claimed while the second one asks
        second.release(found[0])                      # Later
        assert [o.instance for o in third.orphans()] == ["1-dead"]
        assert (folder / "1-dead.bps.json").exists()
    finally:
        second.close()
        third.close()


def test_leftovers_of_dead_instances_are_swept_and_those_of_live_ones_kept(tmp_path):
    folder = tmp_path / "r"
    live = RecoveryStore(folder)
    folder.joinpath("2-gone.lock").write_text("2\n")                  # closed uncleanly with nothing unsaved
    folder.joinpath(".2-gone.bps.json.abc123.tmp").write_bytes(b"half")  # killed in the middle of an autosave
    live_tmp = folder / f".{live.instance}.bps.json.xyz.tmp"           # a live instance writing right now
    live_tmp.write_bytes(b"writing")
    folder.joinpath("notes.txt").write_text("not ours")
    other = RecoveryStore(folder)
    try:
        assert other.orphans() == []
        names = sorted(os.listdir(folder))
        assert "2-gone.lock" not in names and ".2-gone.bps.json.abc123.tmp" not in names
        assert live_tmp.name in names and live.lock_path.name in names and "notes.txt" in names
    finally:
        other.close()
        live.close()
    assert sorted(os.listdir(folder)) == sorted([live_tmp.name, "notes.txt"])


def test_an_autosave_that_cannot_be_read_is_offered_for_discard_only(tmp_path):
    folder = tmp_path / "r"
    folder.mkdir()
    (folder / "3-bad.bps.json").write_bytes(b"\x00garbage")
    store = RecoveryStore(folder)
    try:
        (orphan,) = store.orphans()
        assert orphan.graph is None and "3-bad.bps.json" in orphan.problem
        store.discard(orphan)
        assert not (folder / "3-bad.bps.json").exists()
    finally:
        store.close()


def test_two_windows_in_one_process_keep_separate_slots(qtbot, tmp_path, folder, asked):
    a = _start(qtbot, tmp_path, "--example", "fan_out")
    b = _start(qtbot, tmp_path, "--example", "fan_out")
    for w, y in ((a, 1.0), (b, 2.0)):
        w.undo_stack.push(SetValueCommand(w.graph, "y", y))
        assert w.autosave()
    assert a.autosave_path != b.autosave_path
    assert not a.offer_recovery() and asked["offered"] == []
    _close(a)
    assert not a.autosave_path.exists() and float(fileformat.load(b.autosave_path).node("y").value) == 2.0
    _close(b)
    assert os.listdir(folder) == []


def test_autosave_interval_is_a_minute_and_writes_leave_no_temp(qtbot, tmp_path, folder):
    w = _start(qtbot, tmp_path, "--example", "circuit")
    assert w.recovery.timer.interval() == 60_000 and w.recovery.timer.isActive()
    w.undo_stack.push(SetValueCommand(w.graph, "x", 4.0))
    for _ in range(3):
        assert w.autosave()
    assert sorted(os.listdir(folder)) == sorted([w.autosave_path.name, w.recovery.store.lock_path.name])
    w.undo_stack.undo()                      # back to the clean state: nothing unsaved, nothing kept
    assert not w.autosave_path.exists()
    _close(w)
