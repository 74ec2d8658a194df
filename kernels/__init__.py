"""Numba kernels: plain ndarrays and scalars in, ndarrays out; no knowledge of graphs, no Qt, no simulator imports.

Modules: conv, pool, activations, norm, dropout, losses (and optim). `kernels.warmup(progress=None, dtypes=...)`
compiles or loads from cache every kernel; it is imported lazily so that `import kernels` stays cheap.
"""
from __future__ import annotations


def warmup(progress=None, dtypes=None):
    """Compile or load from cache every kernel; see kernels/warmup.py."""
    from kernels.warmup import warmup as _warmup
    if dtypes is None:
        return _warmup(progress)
    return _warmup(progress, dtypes)
