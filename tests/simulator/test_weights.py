"""Weights files: atomic saves survive kill -9, hostile files are refused before anything big is read or allocated,
and whatever goes wrong is a FileFormatError naming the file while the network keeps its weights."""
from __future__ import annotations

import io
import json
import os
import signal
import struct
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.core.errors import FileFormatError, ShapeError, ValueInputError
from simulator.nn import weights as W
from simulator.nn.network import BatchNorm, Linear, Network
from simulator.nn.trainer import Trainer

ROOT = Path(__file__).resolve().parents[2]


def small_net(**kw) -> Network:
    return Network((4,), [Linear(5), BatchNorm(), Linear(3)], seed=1, **kw)


def trained(path: Path) -> Network:
    net = small_net()
    rng = np.random.default_rng(0)
    Trainer(net, (rng.normal(size=(40, 4)), rng.integers(0, 3, 40), None, None), epochs=2, batch_size=10).run()
    net.save(path)
    return net


def snapshot(net: Network) -> dict[str, np.ndarray]:
    return net.state_dict()


def assert_unchanged(net: Network, before: dict[str, np.ndarray]) -> None:
    after = net.state_dict()
    assert after.keys() == before.keys()
    for k in before:
        assert np.array_equal(after[k], before[k]), k


def npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def rewrite(src: Path, dst: Path, change) -> None:
    """Copy the zip src to dst, entry by entry, with change(name, data) -> data or None (drop) applied."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = change(info.filename, zin.read(info))
            if data is not None:
                zout.writestr(info.filename, data)


# ------------------------------------------------------------------------------------------------ round trip

def test_round_trip_and_format_readable_by_numpy(tmp_path):
    path = tmp_path / "w.npz"
    net = trained(path)
    back = Network.load(path)
    assert back.spec_dict() == net.spec_dict()
    for k, v in net.state_dict().items():
        assert np.array_equal(back.state_dict()[k], v), k
    with np.load(path, allow_pickle=False) as z:   # still a plain savez file
        assert set(z.files) == {"header", "param/fc1.w", "param/fc1.b", "param/bn1.gamma", "param/bn1.beta",
                                "param/fc2.w", "param/fc2.b", "buffer/bn1.running_mean", "buffer/bn1.running_var"}
        header = json.loads(z["header"].tobytes())
    assert header["format"] == W.FORMAT and header["version"] == W.VERSION


def test_save_refuses_non_finite_weights_and_leaves_the_old_file(tmp_path):
    path = tmp_path / "w.npz"
    net = trained(path)
    before = path.read_bytes()
    net.params["fc1.w"][0, 0] = np.nan
    with pytest.raises(ValueInputError, match="NaN"):
        net.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["w.npz"]    # no temp file left behind


# ------------------------------------------------------------------------------------------------ crashes

KILL_SCRIPT = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {root!r})
    import numpy as np
    from simulator.nn.network import Linear, Network
    if {stall!r}:                      # stall inside the save, after the bytes are written and before the rename
        real = np.savez
        def stalled(fh, **arrays):
            real(fh, **arrays)
            fh.flush()
            print("written", flush=True)
            time.sleep(60)
        np.savez = stalled
    net = Network((400,), [Linear(2000), Linear(3)], seed=2)
    print("ready", flush=True)
    while True:
        net.save({path!r})
""")


def _kill_during_save(tmp_path: Path, stall: bool, delay: float) -> None:
    path = tmp_path / "w.npz"
    script = tmp_path / "saver.py"
    script.write_text(KILL_SCRIPT.format(root=str(ROOT), path=str(path), stall=stall))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        if stall:
            assert proc.stdout.readline().strip() == "written"
        time.sleep(delay)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()


def test_kill_9_during_save_leaves_a_loadable_file(tmp_path):
    path = tmp_path / "w.npz"
    old = Network((400,), [Linear(2000), Linear(3)], seed=7)
    new = Network((400,), [Linear(2000), Linear(3)], seed=2)
    old.save(path)
    # killed after the whole new file was written but before it replaced the old one: the old one is intact
    _kill_during_save(tmp_path, stall=True, delay=0.0)
    assert any(p.name.startswith(".w.npz.") for p in tmp_path.iterdir())     # the kill did land inside a save
    assert np.array_equal(Network.load(path).params["fc1.w"], old.params["fc1.w"])
    # killed at arbitrary moments of back-to-back ~3 MB saves: always the old file or a whole new one
    for delay in (0.05, 0.2, 0.35, 0.6, 0.9):
        _kill_during_save(tmp_path, stall=False, delay=delay)
        w = Network.load(path).params["fc1.w"]
        assert np.array_equal(w, old.params["fc1.w"]) or np.array_equal(w, new.params["fc1.w"])


# ------------------------------------------------------------------------------------------------ hostile files

def test_zip_bomb_is_refused_by_its_declared_size_without_decompressing(tmp_path, monkeypatch):
    src = tmp_path / "w.npz"
    trained(src)
    bomb = tmp_path / "bomb.npz"
    # param/fc1.w.npy: a valid .npy header for fc1.w's (4, 5) float32 followed by 64 MB of zeros, deflated to ~64 KB
    head = npy_bytes(np.zeros((4, 5), np.float32))[:128]
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zout:
        for info in zin.infolist():
            if info.filename != "param/fc1.w.npy":
                zout.writestr(info.filename, zin.read(info))
        with zout.open("param/fc1.w.npy", "w") as fh:
            fh.write(head)
            for _ in range(64):
                fh.write(bytes(1 << 20))
    assert bomb.stat().st_size < 1 << 20
    with zipfile.ZipFile(bomb) as z:              # well formed: zipfile itself would inflate all of it
        assert z.getinfo("param/fc1.w.npy").file_size == 128 + (64 << 20)
    reads = []
    real_read = zipfile.ZipExtFile.read
    monkeypatch.setattr(zipfile.ZipExtFile, "read",
                        lambda self, n=-1: reads.append((self.name, n)) or real_read(self, n))
    net = small_net()
    before = snapshot(net)
    t0 = time.perf_counter()
    with pytest.raises(FileFormatError, match=r"bomb\.npz: param/fc1\.w declares 67,108,992 bytes"):
        net.load_weights(bomb)
    assert time.perf_counter() - t0 < 1.0
    # only the .npy preamble and header were read from the bomb entry, never its body
    assert 0 < sum(n for name, n in reads if name == "param/fc1.w.npy") < 200
    assert_unchanged(net, before)


def test_unexpected_entry_names_are_refused_before_reading(tmp_path):
    src = tmp_path / "w.npz"
    trained(src)
    bad = tmp_path / "extra.npz"
    rewrite(src, bad, lambda n, d: d)
    with zipfile.ZipFile(bad, "a") as z:
        z.writestr("../../etc/passwd.npy", b"x" * 100)
    with pytest.raises(FileFormatError, match="extra.npz: unexpected entry"):
        Network.load(bad)


@pytest.mark.parametrize("what, make, message", [
    ("huge shape", lambda: npy_bytes(np.zeros(1, np.float32)).replace(b"(1,), }", b"(1000000, 1000000), }"),
     "has shape"),
    ("int dtype", lambda: npy_bytes(np.zeros((4, 5), np.int64)), "holds '<i8' values"),
    ("object dtype", lambda: npy_bytes(np.zeros((4, 5), np.float32)).replace(b"'<f4'", b"'|O8'"), r"holds '\|O8'"),
    ("nested header", lambda: b"\x93NUMPY\x01\x00" + struct.pack("<H", 118) + b"{" * 117 + b"\n",
     "array header is damaged"),
    ("long header", lambda: b"\x93NUMPY\x02\x00" + struct.pack("<I", 10**9), "header is 1,000,000,000 bytes"),
    ("not npy", lambda: b"PK\x03\x04" + bytes(100), "not a .npy array"),
    ("truncated", lambda: npy_bytes(np.zeros((4, 5), np.float32))[:-8], "declares"),
    ("nan", lambda: npy_bytes(np.full((4, 5), np.nan, np.float32)), "contains NaN or infinity"),
])
def test_hostile_arrays_are_refused_and_the_network_keeps_its_weights(tmp_path, what, make, message):
    src = tmp_path / "w.npz"
    trained(src)
    bad = tmp_path / "bad.npz"
    rewrite(src, bad, lambda n, d: make() if n == "param/fc1.w.npy" else d)
    net = small_net()
    before = snapshot(net)
    with pytest.raises((FileFormatError, ShapeError), match=message):
        net.load_weights(bad)
    assert_unchanged(net, before)
    with pytest.raises(FileFormatError, match="bad.npz"):
        Network.load(bad)                          # its own architecture does not fit either: damaged


def test_negative_running_variance_is_refused(tmp_path):
    src = tmp_path / "w.npz"
    trained(src)
    bad = tmp_path / "negvar.npz"
    rewrite(src, bad, lambda n, d: npy_bytes(np.full(5, -1.0, np.float32)) if n == "buffer/bn1.running_var.npy"
            else d)
    net = small_net()
    before = snapshot(net)
    with pytest.raises(FileFormatError, match=r"negvar.npz: .*bn1.running_var.*negative"):
        net.load_weights(bad)
    assert_unchanged(net, before)


@pytest.mark.parametrize("header, message", [
    (b"[" * 100_000 + b"]" * 100_000, "nests too deeply"),
    (json.dumps({"format": W.FORMAT, "version": 1, "network": [[[[[[[[[[[[[[1]]]]]]]]]]]]]]}).encode(),
     "nests too deeply"),
    (json.dumps({"format": W.FORMAT, "version": 99}).encode(), "newer version"),
    (json.dumps({"format": W.FORMAT, "version": True}).encode(), "version"),
    (json.dumps({"format": "other"}).encode(), "not a Backprop Studio weights file"),
    (b"\xff\xfe", "not valid JSON"),
    (json.dumps({"format": W.FORMAT, "version": 1, "network": {"layers": [{"type": "Linear", "n": 10**12}],
                 "input_shape": [4], "loss": "softmax", "reg": 0, "reg_kind": "l2", "init": "kaiming",
                 "bias_init": 0, "seed": 0, "dtype": "float32"}}).encode(), "units must be"),
    (json.dumps({"format": W.FORMAT, "version": 1, "network": {"layers": [{"type": "Linear", "n": 4000}] * 3,
                 "input_shape": [4000], "loss": "softmax", "reg": 0, "reg_kind": "l2", "init": "kaiming",
                 "bias_init": 0, "seed": 0, "dtype": "float32"}}).encode(), "more than the 20,000,000"),
])
def test_hostile_headers_are_refused(tmp_path, header, message):
    src = tmp_path / "w.npz"
    trained(src)
    bad = tmp_path / "head.npz"
    rewrite(src, bad, lambda n, d: npy_bytes(np.frombuffer(header, np.uint8)) if n == "header.npy" else d)
    with pytest.raises(FileFormatError, match=message):
        Network.load(bad)


def test_save_and_load_share_their_limits(tmp_path, monkeypatch):
    path = tmp_path / "w.npz"
    trained(path)
    monkeypatch.setattr(W, "MAX_HEADER_BYTES", 100)
    with pytest.raises(ValueInputError, match="more than a weights file may hold"):
        small_net().save(tmp_path / "other.npz")          # refused: the loader would refuse it
    assert not (tmp_path / "other.npz").exists()
    with pytest.raises(FileFormatError, match=r"w.npz: header claims \d+ values, more than 100"):
        Network.load(path)


def test_a_header_entry_claiming_a_huge_array_is_refused_before_reading_it(tmp_path):
    src = tmp_path / "w.npz"
    trained(src)
    bad = tmp_path / "big.npz"

    def claim(name, data):
        if name != "header.npy":
            return data
        n = len(data) - 128
        return data.replace(f"({n},)".encode(), b"(10" + b"0" * (len(str(n)) - 1) + b"00000,)", 1)
    rewrite(src, bad, claim)
    with pytest.raises(FileFormatError, match="big.npz: header claims"):
        Network.load(bad)


@pytest.mark.parametrize("flag_offset, value, message", [
    (6, 0x0001, "encrypted"),                     # general purpose flag: encrypted
    (8, 99, "unsupported compression"),           # compression method 99 (AES)
])
def test_flipped_zip_flags_are_refused(tmp_path, flag_offset, value, message):
    src = tmp_path / "w.npz"
    trained(src)
    raw = bytearray(src.read_bytes())
    cd = raw.rfind(b"PK\x01\x02")                 # the last central directory record
    struct.pack_into("<H", raw, cd + flag_offset + 2, value)
    bad = tmp_path / "flags.npz"
    bad.write_bytes(bytes(raw))
    with pytest.raises(FileFormatError, match=message):
        Network.load(bad)


def test_not_regular_files_and_oversized_files_are_refused(tmp_path, monkeypatch):
    with pytest.raises(FileFormatError, match="folder"):
        Network.load(tmp_path)
    if hasattr(os, "mkfifo"):
        fifo = tmp_path / "pipe.npz"
        os.mkfifo(fifo)
        with pytest.raises(FileFormatError, match="not a regular file"):
            Network.load(fifo)                    # refused without blocking on the pipe
    src = tmp_path / "w.npz"
    trained(src)
    monkeypatch.setattr(W, "MAX_FILE_BYTES", 100)
    with pytest.raises(FileFormatError, match="limit"):
        Network.load(src)


# ------------------------------------------------------------------------------------------------ fuzz

_FUZZ_SRC: dict[str, bytes] = {}


def _real_file() -> bytes:
    if "raw" not in _FUZZ_SRC:
        buf = Path(os.environ.get("TMPDIR", "/tmp")) / f"bps_fuzz_{os.getpid()}.npz"
        try:
            trained(buf)
            _FUZZ_SRC["raw"] = buf.read_bytes()
        finally:
            buf.unlink(missing_ok=True)
    return _FUZZ_SRC["raw"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_byte_mutations_only_ever_raise_file_format_errors(tmp_path, data):
    raw = bytearray(_real_file())
    n = data.draw(st.integers(1, 8), label="mutations")
    for _ in range(n):
        kind = data.draw(st.sampled_from(["flip", "set", "cut", "insert"]))
        i = data.draw(st.integers(0, len(raw) - 1))
        if kind == "flip":
            raw[i] ^= 1 << data.draw(st.integers(0, 7))
        elif kind == "set":
            raw[i] = data.draw(st.integers(0, 255))
        elif kind == "cut":
            del raw[i:i + data.draw(st.integers(1, 64))]
        else:
            raw[i:i] = data.draw(st.binary(min_size=1, max_size=16))
        if not raw:
            raw = bytearray(b"\0")
    path = tmp_path / "fuzz.npz"
    path.write_bytes(bytes(raw))
    net = small_net()
    before = snapshot(net)
    try:
        net.load_weights(path)
    except (FileFormatError, ShapeError) as exc:
        assert "fuzz.npz" in str(exc)
        assert_unchanged(net, before)
    try:
        Network.load(path)
    except FileFormatError as exc:
        assert "fuzz.npz" in str(exc)
