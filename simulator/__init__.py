"""Backprop Studio's model, no Qt. Its packages, lowest first (each imports only from those before it):

core        errors, the observer signal, formatting, declared parameters, the job contract, atomic files
functional  cs231n layer functions, torch.optim's optimizers, learning-rate schedules (on the Numba kernels)
ops         one OpSpec per op, by family
graphs      Graph, the expression parser, layout, the file format, the lecture examples
engine      Program, StepEvent and Trace, gradient checks, evaluate()
data        toy 2-D sets, the digits, augmentation
nn          layer records, Network, Trainer, weights files, the PyTorch export
labs        one Qt-free module per lab topic

This facade names the everyday API; it loads the engine only when one of these names is first used, so
``import simulator`` stays cheap.
"""
from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "simulator.core.errors": ("StudioError", "GraphError", "ShapeError", "ExpressionError", "FileFormatError",
                              "ValueInputError", "NumericError"),
    "simulator.graphs.graph": ("Graph", "Node", "Edge", "GraphChange"),
    "simulator.engine.trace": ("Program", "StepEvent", "Trace", "run"),
    "simulator.engine.api": ("Evaluation", "evaluate"),
    "simulator.graphs.examples": ("EXAMPLES", "load_example"),
}
_WHERE = {name: module for module, names in _HOMES.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'simulator' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
