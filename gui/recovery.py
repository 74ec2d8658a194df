"""Crash recovery: each running window autosaves into a slot of its own, and a later start offers what a dead one left.

A slot is two files in the recovery folder: ``<id>.lock``, held locked (flock / msvcrt) by the running instance for
as long as it lives, and ``<id>.bps.json``, an ordinary graph file whose "meta" object says where the graph came
from. The operating system drops the lock when a process dies, however it dies (kill -9, power cut of the session),
so an autosave whose lock can be taken belongs to a dead instance: that one is offered, and while it is being offered
the lock is held, so a third instance starting at the same moment does not offer it too. A live instance's autosave
is never offered and never deleted by anyone else. An autosave is deleted only when its owner closes cleanly, when
its graph is saved, or when the learner answers Restore or Discard; Later (or closing the question) keeps it.

`RecoveryStore` is the file and lock logic (no Qt); `WindowRecovery` hooks it into a main window (timer, question).
"""
from __future__ import annotations

import contextlib
import datetime
import os
import re
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulator.core.errors import FileFormatError, StudioError
from simulator.graphs import fileformat
from simulator.graphs.graph import Graph

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]
try:  # Windows
    import msvcrt
except ImportError:
    msvcrt = None  # type: ignore[assignment]

AUTOSAVE_INTERVAL_MS = 60_000
SUFFIX = ".bps.json"
LOCK_SUFFIX = ".lock"
ENV_FOLDER = "BACKPROP_STUDIO_RECOVERY_DIR"  # where the slots live, when set (tests, lab machines)
_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,80}$")


# ---- locks -----------------------------------------------------------------------------------------------------

def _try_lock(fd: int) -> bool:
    """Take the lock on an open lock file without waiting: True if taken, False if another open file holds it."""
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        return True
    if msvcrt is not None:  # pragma: no cover - Windows
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    return True  # pragma: no cover - no locking at all: the PID check below decides


def _unlock(fd: int) -> None:
    with contextlib.suppress(OSError):
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
        elif msvcrt is not None:  # pragma: no cover - Windows
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
    with contextlib.suppress(OSError):
        os.close(fd)


def _pid_alive(pid: int) -> bool:  # pragma: no cover - only used where no file locking exists
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


# ---- what a dead instance left -------------------------------------------------------------------------------

@dataclass
class Orphan:
    """An autosave whose instance is gone, claimed (its lock held) by the store that found it until released."""

    instance: str
    path: Path
    saved_at: float
    original: Path | None = None        # the file the graph was opened from or saved to, if any
    example: str | None = None           # the lecture example it started from, if any
    graph: Graph | None = None           # None when the autosave cannot be read
    problem: str = ""                    # why it cannot be read
    _fd: int | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        """How the learner knew the graph: its file name, its example, or "an untitled graph"."""
        if self.original is not None:
            return self.original.name
        if self.example:
            return f"the example '{self.example}'"
        return "an untitled graph"

    def describe(self) -> str:
        when = datetime.datetime.fromtimestamp(self.saved_at).strftime("%H:%M on %d %b %Y")
        size = f" ({len(self.graph)} nodes)" if self.graph is not None else ""
        return f"{self.name}{size}, autosaved at {when}"


class RecoveryStore:
    """This instance's autosave slot in `folder`, and the slots dead instances left there."""

    def __init__(self, folder: str | os.PathLike, legacy: tuple[Path, ...] = ()):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.instance = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self.legacy = tuple(Path(p) for p in legacy)  # single autosave files of older versions, offered once
        self._fd: int | None = None
        self._claims: dict[str, Orphan] = {}
        self._take_own_lock()

    # -- own slot --

    @property
    def autosave_path(self) -> Path:
        return self.folder / f"{self.instance}{SUFFIX}"

    @property
    def lock_path(self) -> Path:
        return self.folder / f"{self.instance}{LOCK_SUFFIX}"

    def _take_own_lock(self) -> None:
        for _ in range(5):
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            if _try_lock(fd) and _same_file(fd, self.lock_path):  # a scan may remove a lock file not yet locked
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, 0)
                    os.write(fd, f"{os.getpid()}\n".encode())
                self._fd = fd
                return
            _unlock(fd)
        raise OSError(f"cannot hold the recovery lock {self.lock_path}")

    def _ensure_own_lock(self) -> None:
        """Take the lock again if the lock file was removed behind our back (a user emptying the folder)."""
        if self._fd is None or not _same_file(self._fd, self.lock_path):
            if self._fd is not None:
                _unlock(self._fd)
            self.folder.mkdir(parents=True, exist_ok=True)
            self._take_own_lock()

    def save(self, graph: Graph, original: str | os.PathLike | None = None, example: str | None = None) -> None:
        """Autosave `graph` atomically with where it came from. FileFormatError (too large) or OSError."""
        self._ensure_own_lock()
        meta = {"autosave": {"original": None if original is None else str(Path(original).absolute()),
                             "example": example, "saved_at": time.time(), "pid": os.getpid()}}
        fileformat.save(graph, self.autosave_path, meta=meta)

    def clear(self) -> None:
        """Delete this instance's autosave (its graph was saved, or the learner closed the window)."""
        with contextlib.suppress(OSError):
            self.autosave_path.unlink()

    def close(self) -> None:
        """A clean exit: the autosave goes, then the lock; claimed orphans are released untouched."""
        self.clear()
        for orphan in list(self._claims.values()):
            self.release(orphan)
        if self._fd is not None:
            if _same_file(self._fd, self.lock_path):
                with contextlib.suppress(OSError):
                    self.lock_path.unlink()
            _unlock(self._fd)
            self._fd = None

    # -- other slots --

    def _claim(self, instance: str) -> int | None:
        """Hold a dead instance's lock (returns its fd), or None if the instance is alive or claimed elsewhere.
        A slot whose lock file is gone counts as dead: the owner removes its lock only after its autosave."""
        lock = self.folder / f"{instance}{LOCK_SUFFIX}"
        try:
            fd = os.open(lock, os.O_RDWR)
        except FileNotFoundError:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)  # a marker for the claim
        except OSError:
            return None
        if not _try_lock(fd):
            _unlock(fd)
            return None
        if fcntl is None and msvcrt is None:  # pragma: no cover
            with contextlib.suppress(OSError, ValueError):
                pid = int(os.pread(fd, 32, 0).split()[0]) if hasattr(os, "pread") else 0
                if pid and _pid_alive(pid):
                    _unlock(fd)
                    return None
        return fd

    def orphans(self) -> list[Orphan]:
        """The autosaves of dead instances, newest first, each claimed until `release`, `discard` or `close`.
        Leftovers of dead instances with nothing to offer (a lock alone, a temp file of an interrupted write) are
        removed on the way."""
        found: list[Orphan] = []
        try:
            names = sorted(os.listdir(self.folder))
        except OSError:
            return found
        for name in names:
            instance = _instance_of(name)
            if instance is None or instance == self.instance or instance in self._claims:
                continue
            autosave = self.folder / f"{instance}{SUFFIX}"
            if name.startswith(".") or (name.endswith(LOCK_SUFFIX) and not autosave.exists()):
                self._sweep(instance, self.folder / name)  # an interrupted write's temp, or a lock alone
                continue
            if not name.endswith(SUFFIX):
                continue
            fd = self._claim(instance)
            if fd is None:
                continue
            orphan = _read_orphan(instance, autosave)
            orphan._fd = fd
            self._claims[instance] = orphan
            found.append(orphan)
        for path in self.legacy:
            key = f"legacy:{path}"
            if path.is_file() and key not in self._claims:
                orphan = _read_orphan(key, path)
                self._claims[key] = orphan
                found.append(orphan)
        found.sort(key=lambda o: -o.saved_at)
        return found

    def _sweep(self, instance: str, path: Path) -> None:
        """Remove a dead instance's file that holds no work, and its lock when no autosave of it remains."""
        fd = self._claim(instance)
        if fd is None:
            return
        try:
            with contextlib.suppress(OSError):
                path.unlink()
            if not (self.folder / f"{instance}{SUFFIX}").exists():
                with contextlib.suppress(OSError):
                    (self.folder / f"{instance}{LOCK_SUFFIX}").unlink()
        finally:
            _unlock(fd)

    def release(self, orphan: Orphan) -> None:
        """Later: keep the autosave for another start, and let other instances see it again."""
        self._claims.pop(orphan.instance, None)
        if orphan._fd is not None:
            _unlock(orphan._fd)
            orphan._fd = None

    def discard(self, orphan: Orphan) -> None:
        """Restored or discarded: delete the dead instance's autosave, then its lock."""
        with contextlib.suppress(OSError):
            orphan.path.unlink()
        if not orphan.instance.startswith("legacy:"):
            with contextlib.suppress(OSError):
                (self.folder / f"{orphan.instance}{LOCK_SUFFIX}").unlink()
        self.release(orphan)


def _instance_of(name: str) -> str | None:
    """The instance id a file of the recovery folder belongs to, or None for anything else."""
    if name.startswith("."):     # ".<id>.bps.json.XXXX.tmp", atomic_write's temp file
        stem = name[1:].split(".", 1)[0]
        return stem if name.endswith(".tmp") and _ID_RE.match(stem) else None
    for suffix in (SUFFIX, LOCK_SUFFIX):
        if name.endswith(suffix):
            stem = name[: -len(suffix)]
            return stem if _ID_RE.match(stem) else None
    return None


def _read_orphan(instance: str, path: Path) -> Orphan:
    try:
        saved_at = path.stat().st_mtime
    except OSError:
        saved_at = 0.0
    orphan = Orphan(instance, path, saved_at)
    try:
        graph, meta = fileformat.load_with_meta(path)
    except FileFormatError as exc:
        orphan.problem = str(exc)
        return orphan
    orphan.graph = graph
    info: Any = meta.get("autosave")
    if isinstance(info, dict):
        original, example, when = info.get("original"), info.get("example"), info.get("saved_at")
        if isinstance(original, str) and original and "\x00" not in original:
            orphan.original = Path(original)
        if isinstance(example, str):
            orphan.example = example
        if isinstance(when, (int, float)) and not isinstance(when, bool) and 0 < when < 1e11:
            orphan.saved_at = float(when)
    return orphan


# ---- the window's side (Qt) --------------------------------------------------------------------------------------

def default_folder() -> Path:
    """<app data>/recovery, or $BACKPROP_STUDIO_RECOVERY_DIR when set."""
    env = os.environ.get(ENV_FOLDER)
    if env:
        return Path(env)
    from PySide6.QtCore import QStandardPaths
    base = QStandardPaths.writableLocation(QStandardPaths.AppDataLocation)
    return (Path(base) if base else Path.home() / ".backprop-studio") / "recovery"


def _legacy_autosaves() -> tuple[Path, ...]:
    """The single autosave file versions before per-instance slots wrote, offered like a dead instance's."""
    if os.environ.get(ENV_FOLDER):
        return ()
    return (default_folder().parent / "autosave.bps.json",)


def choose(parent, orphan: Orphan) -> str:
    """Ask what to do with a dead instance's autosave: "restore", "discard" or "later" (also Esc and closing)."""
    from PySide6.QtWidgets import QMessageBox
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Question)
    box.setWindowTitle("Backprop Studio")
    if orphan.graph is None:
        box.setText(f"Backprop Studio did not close normally. It left an autosave that cannot be read:\n\n"
                    f"{orphan.problem}")
        box.setInformativeText("Discard deletes it; Later keeps it for the next start.")
    else:
        box.setText(f"Backprop Studio did not close normally. It kept your work: {orphan.describe()}.")
        box.setInformativeText("Restore opens it here as unsaved changes. Discard deletes the autosave. "
                               "Later keeps it and asks again at the next start.")
    restore = box.addButton("Restore", QMessageBox.AcceptRole) if orphan.graph is not None else None
    discard = box.addButton("Discard", QMessageBox.DestructiveRole)
    later = box.addButton("Later", QMessageBox.RejectRole)
    box.setDefaultButton(restore or later)
    box.setEscapeButton(later)
    box.exec()
    clicked = box.clickedButton()
    if restore is not None and clicked is restore:
        return "restore"
    if clicked is discard:
        return "discard"
    return "later"


class WindowRecovery:
    """A main window's autosave (every AUTOSAVE_INTERVAL_MS while there are unsaved changes) and its offer of
    what dead instances left. The window provides graph, undo_stack, current_path, example_name, statusBar(),
    maybe_save(), error_box() and show_graph(graph, path, example, modified)."""

    def __init__(self, window, folder: str | os.PathLike | None = None):
        from PySide6.QtCore import QTimer
        self.window = window
        if folder is None:
            folder, legacy = default_folder(), _legacy_autosaves()
        else:
            legacy = ()
        try:
            self.store = RecoveryStore(folder, legacy=legacy)
        except OSError:  # an unwritable data folder must not stop the app: autosave beside the temp files instead
            uid = os.getuid() if hasattr(os, "getuid") else os.getlogin()
            self.store = RecoveryStore(Path(tempfile.gettempdir()) / f"backprop-studio-recovery-{uid}")
        self.timer = QTimer(window)
        self.timer.setInterval(AUTOSAVE_INTERVAL_MS)
        self.timer.timeout.connect(self.autosave)
        self.timer.start()
        window.undo_stack.cleanChanged.connect(self._on_clean_changed)

    @property
    def autosave_path(self) -> Path:
        return self.store.autosave_path

    def relocate(self, folder: str | os.PathLike) -> None:
        """Move this window's slot to another folder (tests keep theirs in a temporary one)."""
        self.store.close()
        self.store = RecoveryStore(folder)

    def _on_clean_changed(self, clean: bool) -> None:
        if clean:  # saved (or undone back to the saved state): the autosave is older than the file
            self.store.clear()

    def autosave(self) -> bool:
        """Write the unsaved graph to this instance's slot; True if written. Failures go to the status bar."""
        w = self.window
        if w.undo_stack.isClean() or len(w.graph) == 0:
            self.store.clear()
            return False
        try:
            self.store.save(w.graph, w.current_path, w.example_name)
        except (OSError, StudioError) as exc:
            w.statusBar().showMessage(f"Autosave failed: {exc}", 10_000)
            return False
        return True

    def offer(self) -> bool:
        """Offer each dead instance's autosave, newest first, until one is restored. True if one was restored."""
        found = self.store.orphans()
        try:
            for orphan in found:
                answer = choose(self.window, orphan)
                if answer == "discard":
                    self.store.discard(orphan)
                elif answer == "restore" and orphan.graph is not None and self.window.maybe_save():
                    self.window.show_graph(orphan.graph, orphan.original, orphan.example, modified=True)
                    self.autosave()                  # ours now: safe in this instance's slot before the old goes
                    self.store.discard(orphan)
                    self.window.statusBar().showMessage(f"Restored {orphan.describe()}", 10_000)
                    return True                      # one window holds one graph: the rest wait for next time
                else:
                    self.store.release(orphan)
            return False
        finally:
            for orphan in found:
                self.store.release(orphan)

    def close(self) -> None:
        """The window closes cleanly (its graph saved or discarded by the learner)."""
        self.timer.stop()
        self.store.close()
