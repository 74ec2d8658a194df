"""simulator.core.files: atomic writes leave the old file or the new one, never a mix; bounded reads refuse what
is not a regular file or is too large, with our own error."""
import os
import subprocess
import sys
import textwrap

import pytest

from simulator.core.errors import FileFormatError
from simulator.core.files import atomic_write, atomic_writer, check_path, read_bounded


def test_atomic_write_replaces_whole_and_leaves_no_temp(tmp_path):
    p = tmp_path / "a.json"
    atomic_write(p, "first")
    atomic_write(p, b"second")
    atomic_write(p, lambda fh: fh.write(b"third"))
    assert p.read_bytes() == b"third"
    assert sorted(os.listdir(tmp_path)) == ["a.json"]


def test_a_failed_write_keeps_the_old_file_and_removes_the_temp(tmp_path):
    p = tmp_path / "w.npz"
    p.write_bytes(b"old weights")
    with pytest.raises(RuntimeError):
        with atomic_writer(p) as fh:
            fh.write(b"half")
            raise RuntimeError("disk full")
    assert p.read_bytes() == b"old weights"
    assert os.listdir(tmp_path) == ["w.npz"]


def test_kill_9_during_a_write_leaves_the_old_file(tmp_path):
    p = tmp_path / "w.bin"
    p.write_bytes(b"old")
    code = textwrap.dedent(f"""
        import os, signal
        from simulator.core.files import atomic_writer
        with atomic_writer({str(p)!r}) as fh:
            fh.write(b"x" * 1_000_000)
            fh.flush()
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=os.getcwd(), timeout=120)
    assert proc.returncode == -9
    assert p.read_bytes() == b"old"


def test_read_bounded_reads_regular_files_within_the_limit(tmp_path):
    p = tmp_path / "g.json"
    p.write_bytes(b"12345")
    assert read_bounded(p, 5) == b"12345"
    with pytest.raises(FileFormatError, match="limit"):
        read_bounded(p, 4)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX-only")
def test_a_fifo_is_refused_at_once(tmp_path):
    fifo = tmp_path / "pipe.bps.json"
    os.mkfifo(fifo)
    with pytest.raises(FileFormatError, match="not a regular file"):
        read_bounded(fifo, 1000)


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_devices_are_refused(device):
    if not os.path.exists(device):
        pytest.skip(f"{device} does not exist on this platform")
    with pytest.raises(FileFormatError, match="not a regular file"):
        read_bounded(device, 1000)


def test_folders_missing_files_and_nul_bytes_are_our_errors(tmp_path):
    with pytest.raises(FileFormatError, match="folder"):
        read_bounded(tmp_path, 1000)
    with pytest.raises(FileFormatError, match="no such file"):
        read_bounded(tmp_path / "missing.json", 1000)
    with pytest.raises(FileFormatError, match="not a valid file name"):
        check_path("a\x00b.json")
    with pytest.raises(FileFormatError):
        atomic_write(str(tmp_path / "a\x00b.json"), b"x")


def test_atomic_append_keeps_the_tail_of_a_log_and_starts_afresh_on_a_bad_target(tmp_path):
    from simulator.core.files import atomic_append
    log = tmp_path / "errors.log"
    for i in range(50):
        atomic_append(log, f"line {i}\n", keep_bytes=40)
    text = log.read_text()
    assert text.endswith("line 49\n") and text.startswith("line ") and len(text) <= 40 + len("line 49\n")
    assert os.listdir(tmp_path) == ["errors.log"]
    folder = tmp_path / "a_folder"
    folder.mkdir()
    with pytest.raises(OSError):  # a folder cannot be replaced by a file: the OS says so, nothing is lost
        atomic_append(folder, "x")
    assert folder.is_dir()
