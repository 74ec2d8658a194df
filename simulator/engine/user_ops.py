"""Write your own op (no Qt): the cs231n assignment loop inside the app.

The learner writes ``forward(x) -> (out, cache)`` and ``backward(dout, cache) -> dx`` in numpy for an elementwise op
(out has x's shape: ReLU, sigmoid, a leaky ReLU of one's own...). ``check_user_op`` gradient-checks it against
centred differences in float64 and says, per element, where the backward is wrong; once it passes,
``register_user_op`` puts it in the op registry (family "yours"), so it is placed, wired and stepped like a built-in op.

The learner's code never runs in the app's process: a ``Sandbox`` child process (``sandbox_child``) runs it, with a
memory limit and a time limit per call. An infinite loop is stopped after the time limit, a crash (a segfault,
``os._exit``) or running out of memory ends only the child; either way the caller gets a ``UserCodeError`` and the
next call starts a fresh child.
"""
from __future__ import annotations

import keyword
import os
import pickle
import re
import select
import struct
import subprocess
import sys
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from simulator.core.errors import StudioError, ValueInputError
from simulator.core.formatting import format_scalar

__all__ = ["CheckResult", "Sandbox", "TEMPLATE", "UserCodeError", "check_job", "check_user_op", "register_user_op",
           "sandbox", "unregister_user_op", "USER_FAMILY"]

USER_FAMILY = "yours"
CALL_SECONDS = 3.0                    # one forward or backward call
MEMORY_BYTES = 2 * 1024 ** 3          # the child's address space
CHECK_SHAPE = (4, 5)
CHECK_TOL = 1e-6                      # relative error per element (float64, centred differences with h = 1e-5)

TEMPLATE = '''\
# Your op: an elementwise function of x (out has x's shape). numpy is imported as np.
# forward returns (out, cache); backward gets the upstream gradient dout and your cache and returns dx.

def forward(x):
    out = np.maximum(0.0, x)         # ReLU: change this to your own function
    cache = x                        # keep what backward needs
    return out, cache


def backward(dout, cache):
    x = cache
    dx = dout * (x > 0)              # upstream × local gradient
    return dx
'''


class UserCodeError(StudioError):
    """The learner's op failed: its error and line, a time-out, a crash or a wrong result, in plain words."""


class Sandbox:
    """One child process running learners' ops, restarted after a crash or a time-out. Thread-safe (one call at a
    time). ``call`` sends a request and waits at most ``timeout`` seconds for the answer."""

    def __init__(self, memory_bytes: int = MEMORY_BYTES):
        self.memory_bytes = memory_bytes
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._sources: dict[str, str] = {}       # loaded into the current child (reloaded into a fresh one)
        self._loaded: set[str] = set()

    def _start(self) -> subprocess.Popen:
        limit = self.memory_bytes

        def limits() -> None:                   # in the child, before numpy: a memory ceiling
            import resource
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        child = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sandbox_child.py")
        # -I: isolated (no user site, no script folder on the path): the child imports numpy and nothing of ours
        proc = subprocess.Popen([sys.executable, "-I", child], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, env=env, preexec_fn=limits)
        self._loaded = set()
        return proc

    def close(self) -> None:
        with self._lock:
            self._kill()

    def _kill(self) -> None:
        if self._proc is not None:
            try:
                self._proc.kill()
                self._proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                pass
            for stream in (self._proc.stdin, self._proc.stdout):
                try:
                    stream.close()
                except OSError:
                    pass
        self._proc = None
        self._loaded = set()

    def load(self, name: str, source: str, timeout: float = CALL_SECONDS) -> None:
        """Compile the learner's code for op ``name`` (its top level runs now: a loop there times out too)."""
        with self._lock:
            self._sources[name] = source
            self._loaded.discard(name)
            self._ensure(name, timeout)

    def add(self, name: str, source: str) -> None:
        """Know the code of op ``name`` without running it yet (it is loaded at its first call)."""
        with self._lock:
            self._sources[name] = source
            self._loaded.discard(name)

    def forget(self, name: str) -> None:
        with self._lock:
            self._sources.pop(name, None)
            self._loaded.discard(name)

    def call(self, kind: str, name: str, *args: Any, timeout: float = CALL_SECONDS) -> Any:
        with self._lock:
            self._ensure(name, timeout)
            return self._request((kind, name, *args), timeout, name)

    def _ensure(self, name: str, timeout: float) -> None:
        if name not in self._sources:
            raise UserCodeError(f"there is no op of yours named {name!r}")
        if self._proc is None or self._proc.poll() is not None:
            self._kill()
            self._proc = self._start()
        if name not in self._loaded:
            self._request(("load", name, self._sources[name]), max(timeout, 10.0), name)   # numpy's import, once
            self._loaded.add(name)

    def _request(self, req: tuple, timeout: float, name: str) -> Any:
        proc = self._proc
        data = pickle.dumps(req, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            proc.stdin.write(struct.pack("<Q", len(data)) + data)
            proc.stdin.flush()
            head = self._read_exact(proc, 8, timeout, name, req[0])
            (n,) = struct.unpack("<Q", head)
            status, payload = pickle.loads(self._read_exact(proc, n, timeout, name, req[0]))
        except (BrokenPipeError, EOFError, OSError, pickle.UnpicklingError):
            self._kill()
            raise UserCodeError(f"{name}: the sandbox running your code stopped (a crash, or more than "
                                f"{self.memory_bytes // 1024 ** 3} GiB of memory); the app is fine — fix the code "
                                f"and try again") from None
        if status == "error":
            what = "code could not be loaded" if req[0] == "load" else f"{req[0]} failed"
            raise UserCodeError(f"{name}: your {what}:\n{payload}")
        return payload

    def _read_exact(self, proc: subprocess.Popen, n: int, timeout: float, name: str, what: str) -> bytes:
        fd = proc.stdout.fileno()
        chunks, got = [], 0
        while got < n:
            ready, _, _ = select.select([fd], [], [], timeout)
            if not ready:
                self._kill()
                raise UserCodeError(f"{name}: your {what} ran for more than {timeout:g} s (an endless loop?) and "
                                    f"was stopped; the app is fine — fix the code and try again")
            chunk = os.read(fd, n - got)
            if not chunk:
                raise EOFError
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)


_SANDBOX: Sandbox | None = None


def sandbox() -> Sandbox:
    """The app's one sandbox (started at the first call)."""
    global _SANDBOX
    if _SANDBOX is None:
        _SANDBOX = Sandbox()
    return _SANDBOX


# ================================================================================================== checking

@dataclass(frozen=True)
class CheckResult:
    """A gradient check of a learner's op on a random x: the analytic and numerical dx for a random upstream dout,
    each element's relative error, and whether every one is below CHECK_TOL."""

    x: np.ndarray
    dout: np.ndarray
    out: np.ndarray
    analytic: np.ndarray
    numeric: np.ndarray
    rel_error: np.ndarray

    @property
    def wrong(self) -> np.ndarray:
        return ~(self.rel_error <= CHECK_TOL)

    @property
    def ok(self) -> bool:
        return not self.wrong.any()

    @property
    def summary(self) -> str:
        n, bad = self.rel_error.size, int(self.wrong.sum())
        worst = float(np.nanmax(self.rel_error)) if n else 0.0
        if not bad:
            return (f"All {n} elements of dx agree with the numerical gradient (largest relative error "
                    f"{worst:.1e} < {CHECK_TOL:g}): your backward is right.")
        i = tuple(int(v) for v in np.argwhere(self.wrong)[0])
        return (f"{bad} of {n} elements of dx are wrong (largest relative error {worst:.1e}). First at {list(i)}: "
                f"x = {format_scalar(self.x[i])}, your dx = {format_scalar(self.analytic[i])}, numerical dx = "
                f"{format_scalar(self.numeric[i])}.")


def _valid_name(name: str) -> str:
    if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]{0,30}", name) or keyword.iskeyword(name):
        raise ValueInputError(f"an op name is lower-case letters, digits and _, starting with a letter (e.g. "
                              f"my_relu), got {name!r}")
    return name


def check_user_op(name: str, source: str, seed: int = 0, box: Sandbox | None = None) -> CheckResult:
    """Load the learner's code and gradient-check it on a random x of shape CHECK_SHAPE (values away from 0, where
    kinks such as ReLU's would make the numerical gradient meaningless) with a random upstream gradient."""
    name = _valid_name(name)
    box = box or sandbox()
    box.load(name, source)
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.2, 2.0, CHECK_SHAPE) * rng.choice((-1.0, 1.0), CHECK_SHAPE)
    dout = rng.normal(size=CHECK_SHAPE)
    out, cache = box.call("forward", name, x.copy())
    if out.shape != x.shape:
        raise UserCodeError(f"{name}: forward returned shape {out.shape} for x of shape {x.shape}; an op of yours "
                            f"is elementwise (out has x's shape)")
    if not np.all(np.isfinite(out)):
        raise UserCodeError(f"{name}: forward returned NaN or infinity for x in ±[0.2, 2]")
    dx = box.call("backward", name, dout.copy(), cache)
    if dx.shape != x.shape:
        raise UserCodeError(f"{name}: backward returned shape {dx.shape}; dx must have x's shape {x.shape}")
    h = 1e-5
    num = np.empty_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += h
        xm[i] -= h
        fp = float(np.sum(box.call("forward", name, xp)[0] * dout))
        fm = float(np.sum(box.call("forward", name, xm)[0] * dout))
        num[i] = (fp - fm) / (2 * h)
    with np.errstate(all="ignore"):
        rel = np.abs(dx - num) / np.maximum(np.abs(dx) + np.abs(num), 1e-12)
    rel = np.where(np.abs(dx - num) < 1e-10, 0.0, rel)
    return CheckResult(x, dout, out, dx, num, rel)


# ================================================================================================== registering

def check_job(name: str, source: str, seed: int = 0) -> Any:
    """``check_user_op`` as a job (simulator.core.jobs): the view runs it off the UI thread."""
    from simulator.core.jobs import Progress
    yield Progress(0, 1, f"checking {name}…")
    return check_user_op(name, source, seed)


def register_user_op(name: str, source: str, box: Sandbox | None = None, load: bool = True) -> Any:
    """Put a (checked) op of the learner's into the registry, replacing an earlier version of it; its forward and
    backward run in the sandbox. ``load=False`` (ops remembered from an earlier session) defers starting the sandbox
    to the op's first use. Returns the OpSpec."""
    from simulator.ops.registry import REGISTRY, OpSpec, register

    name = _valid_name(name)
    existing = REGISTRY.get(name)
    if existing is not None and existing.family != USER_FAMILY:
        raise ValueInputError(f"{name!r} is a built-in op: choose another name for yours")
    box = box or sandbox()
    if load:
        box.load(name, source)
    else:
        box.add(name, source)

    def forward(x: np.ndarray) -> tuple[np.ndarray, Any]:
        x = np.asarray(x, dtype=np.float64)
        out, cache_id = box.call("forward", name, x)
        if out.shape != x.shape:
            raise UserCodeError(f"{name}: forward returned shape {out.shape} for x of shape {x.shape}")
        return out, cache_id

    def backward(dout: np.ndarray, cache: Any) -> tuple[np.ndarray]:
        dx = box.call("backward", name, np.asarray(dout, dtype=np.float64), cache)
        if dx.shape != np.shape(dout):
            raise UserCodeError(f"{name}: backward returned shape {dx.shape}, expected {np.shape(dout)}")
        return (dx,)

    spec = OpSpec(name=name, family=USER_FAMILY, inputs=("x",), forward=forward, backward=backward,
                  infer_shape=lambda s: tuple(s), symbol=name[:6], formula=f"{name}(x), your forward",
                  local_grad={"x": "your backward"}, doc="An op you wrote and gradient-checked (Run → Write your own "
                  "op); it runs in a sandbox process.",
                  sample=lambda rng: [((rng.uniform(0.2, 2.0, (3, 4)) * rng.choice((-1.0, 1.0), (3, 4)),), {})])
    REGISTRY.pop(name, None)
    return register(spec)


def unregister_user_op(name: str) -> None:
    from simulator.ops.registry import REGISTRY
    spec = REGISTRY.get(name)
    if spec is not None and spec.family == USER_FAMILY:
        del REGISTRY[name]
        sandbox().forget(name)
