"""Every file the app writes goes through atomic_write; every file it reads goes through open_bounded / read_bounded.

Writes: a temp file in the target's folder, fsync, rename over the target, fsync of the folder where the platform
allows it; on any failure the temp file is removed and the old target is untouched. Reads: regular files only (no
FIFO, device or folder), a size limit checked before and while reading, and every failure is a FileFormatError
naming the file.
"""
from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path
from typing import IO, Callable, Iterator

from simulator.core.errors import FileFormatError

__all__ = ["atomic_append", "atomic_write", "atomic_writer", "check_path", "open_bounded", "read_bounded"]


def check_path(path: str | os.PathLike) -> Path:
    """The path as a Path, refused with FileFormatError when it cannot name a file (empty, NUL byte, not text)."""
    try:
        text = os.fspath(path)
    except TypeError as exc:
        raise FileFormatError(f"{path!r} is not a file name") from exc
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    if not text or "\x00" in text:
        raise FileFormatError(f"{text!r} is not a valid file name" if text else "no file name given")
    return Path(text)


def _fsync_folder(folder: Path) -> None:
    if os.name != "posix":              # Windows cannot open a folder for fsync; rename is already durable there
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike, mode: str = "wb", encoding: str | None = None) -> Iterator[IO]:
    """``with atomic_writer(p) as fh: fh.write(...)``: the target appears whole when the block ends, or not at all.
    The temp file sits beside the target (same file system, so the rename is atomic) and starts with a dot."""
    target = check_path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if "b" not in mode and encoding is None:
        encoding = "utf-8"
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, mode, encoding=encoding) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        if target.exists():                 # keep the old file's permission bits
            with contextlib.suppress(OSError):
                os.chmod(tmp, stat.S_IMODE(os.stat(target).st_mode))
        else:
            with contextlib.suppress(OSError):
                umask = os.umask(0)
                os.umask(umask)
                os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_folder(folder)


def atomic_write(path: str | os.PathLike, data: bytes | str | Callable[[IO], None]) -> None:
    """Write bytes, text (UTF-8) or whatever ``data(fh)`` writes to a binary handle, atomically."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    with atomic_writer(path, "wb") as fh:
        if callable(data):
            data(fh)
        else:
            fh.write(data)


@contextlib.contextmanager
def open_bounded(path: str | os.PathLike, max_bytes: int, what: str = "file") -> Iterator[tuple[IO[bytes], int]]:
    """Open a regular file for binary reading after checking it: ``with open_bounded(p, limit) as (fh, size)``.
    Refuses folders, FIFOs, devices and sockets without blocking on them (O_NONBLOCK, then fstat on the open
    descriptor, so a swapped file cannot slip through), and files over max_bytes."""
    p = check_path(path)
    try:
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
        fd = os.open(p, flags)
    except IsADirectoryError:
        raise FileFormatError(f"{p.name}: is a folder, not a {what}") from None
    except FileNotFoundError:
        raise FileFormatError(f"{p}: no such file") from None
    except PermissionError:
        raise FileFormatError(f"{p.name}: permission denied") from None
    except OSError as exc:
        raise FileFormatError(f"{p.name}: cannot be opened ({exc.strerror or exc})") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise FileFormatError(f"{p.name}: is a folder, not a {what}")
        if not stat.S_ISREG(st.st_mode):
            raise FileFormatError(f"{p.name}: is not a regular file (a pipe, device or socket); choose a saved {what}")
        if st.st_size > max_bytes:
            raise FileFormatError(f"{p.name}: the {what} is {st.st_size / 2**20:.1f} MB; the limit is "
                                  f"{max_bytes / 2**20:.0f} MB")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        fh = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with fh:
        yield fh, st.st_size


def read_bounded(path: str | os.PathLike, max_bytes: int, what: str = "file") -> bytes:
    """The whole of a regular file of at most max_bytes (checked on what is read too: a file growing under us is
    refused, not read without end)."""
    with open_bounded(path, max_bytes, what) as (fh, _size):
        try:
            data = fh.read(max_bytes + 1)
        except OSError as exc:
            raise FileFormatError(f"{check_path(path).name}: cannot be read ({exc.strerror or exc})") from None
    if len(data) > max_bytes:
        raise FileFormatError(f"{check_path(path).name}: the {what} is larger than {max_bytes / 2**20:.0f} MB")
    return data


def atomic_append(path: str | os.PathLike, data: bytes | str, keep_bytes: int = 1 << 20) -> None:
    """Add `data` at the end of a small file (a log) through atomic_write: the file is rewritten whole with at most
    its last `keep_bytes` (cut at a line start) before the new data, so it never ends half-written and never grows
    without bound. A target that is missing, not a regular file or unreadable starts afresh."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    old = b""
    with contextlib.suppress(FileFormatError, OSError):
        with open_bounded(path, 1 << 62, "file") as (fh, size):
            if size > keep_bytes:
                fh.seek(size - keep_bytes)
                old = fh.read(keep_bytes)
                old = old[old.find(b"\n") + 1:] if b"\n" in old else b""
            else:
                old = fh.read(keep_bytes)
    atomic_write(path, old + data)
