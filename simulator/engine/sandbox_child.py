"""The sandbox's child process: runs a learner's op code (forward / backward in numpy) and answers the parent's
requests over stdin/stdout (length-prefixed pickles). No Qt, nothing of the app imported: only numpy.

Requests: ("load", name, source) -> ("ok", None); ("forward", name, x) -> ("ok", (out, cache_id));
("backward", name, dout, cache_id) -> ("ok", dx). Anything the learner's code raises comes back as
("error", "the traceback, in the learner's line numbers").
"""
from __future__ import annotations

import pickle
import struct
import sys
import traceback
from collections import OrderedDict

MAX_CACHES = 4096
FILENAME = "<your op>"


def _read(stream):
    head = stream.read(8)
    if len(head) < 8:
        return None
    (n,) = struct.unpack("<Q", head)
    return pickle.loads(stream.read(n))


def _write(stream, obj) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(struct.pack("<Q", len(data)))
    stream.write(data)
    stream.flush()


def _learner_traceback(exc: BaseException) -> str:
    """The traceback lines inside the learner's code only, and the error."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == FILENAME]
    lines = [f"  line {f.lineno}, in {f.name}: {f.line or ''}".rstrip() for f in frames]
    return "\n".join(lines + [f"{type(exc).__name__}: {exc}"])


def main() -> None:
    import numpy as np

    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr             # a learner's print() must not corrupt the channel
    ops: dict[str, dict] = {}
    caches: OrderedDict[int, object] = OrderedDict()
    next_id = 0
    while True:
        req = _read(stdin)
        if req is None:
            return
        kind, name = req[0], req[1]
        try:
            if kind == "load":
                namespace: dict = {"np": np, "numpy": np, "__name__": "your_op"}
                exec(compile(req[2], FILENAME, "exec"), namespace)
                for fn in ("forward", "backward"):
                    if not callable(namespace.get(fn)):
                        raise NameError(f"define a function named {fn}")
                ops[name] = namespace
                reply = ("ok", None)
            elif kind == "forward":
                result = ops[name]["forward"](req[2])
                if not (isinstance(result, tuple) and len(result) == 2):
                    raise TypeError("forward must return (out, cache)")
                out, cache = result
                next_id += 1
                caches[next_id] = cache
                while len(caches) > MAX_CACHES:
                    caches.popitem(last=False)
                reply = ("ok", (np.asarray(out, dtype=np.float64), next_id))
            elif kind == "backward":
                cache = caches[req[3]]          # kept: a step may ask backward twice (its local gradient)
                dx = ops[name]["backward"](req[2], cache)
                reply = ("ok", np.asarray(dx, dtype=np.float64))
            else:
                reply = ("error", f"unknown request {kind!r}")
        except BaseException as exc:  # noqa: BLE001  (the learner's code may raise anything: report it)
            if isinstance(exc, KeyboardInterrupt):
                raise
            reply = ("error", _learner_traceback(exc))
        try:
            _write(stdout, reply)
        except Exception as exc:  # noqa: BLE001  (an unpicklable result)
            _write(stdout, ("error", f"the result could not be sent back: {type(exc).__name__}: {exc}"))


if __name__ == "__main__":
    main()
