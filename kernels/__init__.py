"""Numba kernels: plain ndarrays and scalars in, ndarrays out; no knowledge of graphs, no Qt, no simulator imports.

Modules: conv, pool, activations, norm, dropout, losses (and optim). `kernels.warmup(progress=None, dtypes=...)`
compiles or loads from cache every kernel. `kernels.warmup` is the kernels/warmup.py module made callable, so it
stays both the function and the module (collect_tasks, MODULES) however it was imported; importing it is cheap
(the kernel modules themselves load only when warm-up runs).
"""
from __future__ import annotations

from kernels import warmup as warmup  # noqa: PLC0414  (the callable module)
