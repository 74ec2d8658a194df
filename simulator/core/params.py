"""Parameters declared once: name, type, default, range, log scale, choices, label and help text.

The model validates with a declaration and the GUI builds its form from the same one, so no range, default or label
of a model parameter is written twice. Settings are frozen dataclasses whose fields are declared with ``param``:

    @dataclass(frozen=True)
    class TrainSettings(Settings):
        optimizer: str = param("Adam", choices=("SGD", "Adam"), doc="update rule")
        lr: float = param(1e-2, low=0, low_open=True, log=True, label="learning rate")
        batch: int = param(32, low=1, high=4096)

    TrainSettings(lr=-1)        # ValueInputError: learning rate must be > 0, got -1

The plain checks (``check_int``, ``check_real``, ``check_choice``, ``check_bool``) are what every public simulator
function uses for its own arguments, so a bad value always gets the same kind of message and our own error.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import numpy as np

from simulator.core.errors import ValueInputError

__all__ = ["Param", "Settings", "check_bool", "check_choice", "check_int", "check_real", "param", "params_of"]


def _fmt(v: float) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def check_real(name: str, value: Any, low: float = -math.inf, high: float = math.inf, *, low_open: bool = False,
               high_open: bool = False) -> float:
    """``value`` as a finite float within [low, high] (ends open as asked); else ValueInputError naming ``name``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iuf":
            value = value.item()
        else:
            raise ValueInputError(f"{name} must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueInputError(f"{name} must be a finite number, got {v}")
    if v < low or (low_open and v == low):
        raise ValueInputError(f"{name} must be {'>' if low_open else '≥'} {_fmt(low)}, got {_fmt(v)}")
    if v > high or (high_open and v == high):
        raise ValueInputError(f"{name} must be {'<' if high_open else '≤'} {_fmt(high)}, got {_fmt(v)}")
    return v


def check_int(name: str, value: Any, low: float = -math.inf, high: float = math.inf, *,
              error: type[Exception] = ValueInputError) -> int:
    """``value`` as an int within [low, high]; a float is accepted only when it is a whole number (3.0, not 3.5).
    ``error`` is the exception raised: ValueInputError, or ShapeError where the integer is a size, a stride or a
    padding (the subject is a shape)."""
    if isinstance(value, (bool, np.bool_)):
        raise error(f"{name} must be a whole number, got {value!r}")
    if isinstance(value, numbers.Integral):
        v = int(value)
    elif isinstance(value, numbers.Real) and math.isfinite(float(value)) and float(value).is_integer():
        v = int(value)
    else:
        raise error(f"{name} must be a whole number, got {value!r}")
    if v < low:
        raise error(f"{name} must be ≥ {_fmt(low)}, got {v}")
    if v > high:
        raise error(f"{name} must be ≤ {_fmt(high)}, got {v:,}")
    return v


def check_bool(name: str, value: Any) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise ValueInputError(f"{name} must be true or false, got {value!r}")


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    choices = tuple(choices)
    if value in choices:
        return value
    raise ValueInputError(f"unknown {name} {value!r}; choose one of: {', '.join(map(str, choices))}")


@dataclass(frozen=True)
class Param:
    """One declared parameter. ``kind`` is int, float, bool or str; ``low``/``high`` bound numbers (``*_open``
    excludes the end), ``log`` asks for a logarithmic control, ``choices`` lists the allowed values of a str (or
    any) parameter and ``choice_labels`` what a form shows for each of them, ``zero_off`` says that 0 means "off"
    below the lowest decade of a log-scale strength (a regularisation λ), ``label`` is what a form shows for the
    parameter and ``doc`` its help text."""

    name: str
    kind: type
    default: Any
    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False
    log: bool = False
    choices: tuple[Any, ...] | None = None
    choice_labels: tuple[str, ...] | None = None
    zero_off: bool = False
    label: str = ""
    doc: str = ""
    decimals: int | None = None

    def __post_init__(self) -> None:
        if self.choice_labels is not None and (self.choices is None or len(self.choice_labels) != len(self.choices)):
            raise ValueError(f"{self.name}: choice_labels needs one label per choice")

    @property
    def title(self) -> str:
        return self.label or self.name.replace("_", " ")

    def choice_label(self, value: Any) -> str:
        """What a form shows for one of the choices."""
        if self.choice_labels is not None and value in self.choices:
            return self.choice_labels[self.choices.index(value)]
        return str(value)

    def check(self, value: Any) -> Any:
        """The value converted to ``kind`` and validated, or ValueInputError naming the parameter by its label."""
        what = self.title
        if self.choices is not None:
            return check_choice(what, value, self.choices)
        if self.kind is bool:
            return check_bool(what, value)
        if self.kind is int:
            return check_int(what, value, self.low, self.high)
        if self.kind is float:
            return check_real(what, value, self.low, self.high, low_open=self.low_open, high_open=self.high_open)
        if not isinstance(value, self.kind):
            raise ValueInputError(f"{what} must be a {self.kind.__name__}, got {value!r}")
        return value


def param(default: Any, *, kind: type | None = None, **declaration: Any) -> Any:
    """A dataclass field carrying its Param (name and kind are taken from the field when the class is built)."""
    return field(default=default, metadata={"param": dict(declaration, kind=kind)})


def params_of(cls_or_obj: Any) -> tuple[Param, ...]:
    """The declared parameters of a Settings class, in field order."""
    cls = cls_or_obj if isinstance(cls_or_obj, type) else type(cls_or_obj)
    cached = cls.__dict__.get("_params_cache")
    if cached is not None:
        return cached
    out = []
    for f in dataclasses.fields(cls):
        meta = f.metadata.get("param")
        if meta is None:
            continue
        decl = dict(meta)
        kind = decl.pop("kind") or _kind_of(f.type, f.default)
        out.append(Param(name=f.name, kind=kind, default=f.default, **decl))
    result = tuple(out)
    cls._params_cache = result
    return result


def _kind_of(annotation: Any, default: Any) -> type:
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    for kind in (bool, int, float, str):
        if text == kind.__name__:
            return kind
    return type(default)


class Settings:
    """Base for frozen dataclasses of declared parameters: every field is validated (and coerced, e.g. 3.0 -> 3) when
    an instance is made, so a Settings object is always valid. ``replace(**changes)`` validates the changes too."""

    def __post_init__(self) -> None:
        for p in params_of(self):
            object.__setattr__(self, p.name, p.check(getattr(self, p.name)))

    def replace(self, **changes: Any):
        unknown = sorted(set(changes) - {p.name for p in params_of(self)})
        if unknown:
            raise ValueInputError(f"{type(self).__name__} has no setting {', '.join(map(repr, unknown))}")
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        return {p.name: getattr(self, p.name) for p in params_of(self)}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]):
        """Build from a mapping, ignoring keys that are not declared settings (so a saved dict from an older
        version still loads); missing keys take their defaults."""
        names = {p.name for p in params_of(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})
