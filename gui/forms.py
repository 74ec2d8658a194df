"""Forms built from declared parameters (``simulator.core.params``): the model says name, type, default, range, log
scale, choices, label and help once, and this module turns each into the matching control. No lab writes a range,
default or label of a model parameter itself."""
from __future__ import annotations

import math
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtGui import QValidator
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QLabel, QSpinBox, QWidget)

from simulator.core.errors import StudioError
from simulator.core.params import Param, params_of

__all__ = ["LogSpinBox", "ParamForm", "ZeroLogSpinBox", "changed_signal", "param_widget", "read_widget",
           "write_widget"]

_INT_LIMIT = 2**31 - 1


class LogSpinBox(QDoubleSpinBox):
    """A spin box for positive rates: arrows multiply or divide by 10^(1/4) (four clicks a decade), text in %g.

    Any float the user types is accepted within [minimum, maximum]; the value keeps full double precision."""

    FACTOR = 10.0 ** 0.25

    def __init__(self, value: float = 1e-2, low: float = 1e-8, high: float = 1e10, parent: QWidget | None = None):
        super().__init__(parent)
        self.setDecimals(323)  # no rounding: the value is stored as typed
        self.setRange(low, high)
        self.setValue(value)
        self.setKeyboardTracking(False)
        self.setAccelerated(True)

    def stepBy(self, steps: int) -> None:
        v = self.value() * self.FACTOR ** steps
        # snap to 1, 2, 5-ish neighbours within rounding, so 1e-3 stepped four times is 1e-2 exactly
        snapped = float(f"{v:.6g}")
        self.setValue(min(max(snapped, self.minimum()), self.maximum()))

    def textFromValue(self, value: float) -> str:
        return f"{value:.4g}"

    def valueFromText(self, text: str) -> float:
        try:
            return float(text.strip())
        except ValueError:
            return self.value()

    def validate(self, text: str, pos: int):
        t = text.strip()
        try:
            v = float(t)
        except ValueError:
            # "1e", "-", "" are on the way to a number
            ok = all(c in "0123456789.eE+-" for c in t)
            return (QValidator.State.Intermediate if ok else QValidator.State.Invalid), text, pos
        if self.minimum() <= v <= self.maximum():
            return QValidator.State.Acceptable, text, pos
        return QValidator.State.Intermediate, text, pos


class ZeroLogSpinBox(LogSpinBox):
    """A strength on a log scale with 0 (off) just below its lowest decade (regularisation λ, noise, ...)."""

    LOWEST = 1e-6

    def __init__(self, value: float = 0.0, high: float = 10.0, parent: QWidget | None = None):
        super().__init__(self.LOWEST, self.LOWEST, high, parent)
        self.setMinimum(0.0)
        self.setSpecialValueText("0 (off)")
        self.setValue(value)

    def stepBy(self, steps: int) -> None:
        v = self.value()
        if v == 0.0:
            if steps > 0:
                self.setValue(self.LOWEST)
            return
        if steps < 0 and v <= self.LOWEST * 1.0001:
            self.setValue(0.0)
            return
        super().stepBy(steps)


def _bounds(p: Param, lo_default: float, hi_default: float) -> tuple[float, float]:
    lo = p.low if math.isfinite(p.low) else lo_default
    hi = p.high if math.isfinite(p.high) else hi_default
    return lo, hi


def param_widget(p: Param, parent: QWidget | None = None) -> QWidget:
    """The control for one declared parameter, set to its default, with its help text as tooltip: a combo box for
    choices, a check box for bool, a spin box for int, a log spin box (x10^(1/4) per click) or a plain one for float."""
    if p.choices is not None:
        w: QWidget = QComboBox(parent)
        for c in p.choices:
            w.addItem(p.choice_label(c), c)
    elif p.kind is bool:
        w = QCheckBox(parent)
    elif p.kind is int:
        w = QSpinBox(parent)
        lo, hi = _bounds(p, -_INT_LIMIT, _INT_LIMIT)
        w.setRange(int(max(lo, -_INT_LIMIT)), int(min(hi, _INT_LIMIT)))
        w.setKeyboardTracking(False)
    elif p.log and p.zero_off:                         # a strength that may be off: 0, then decades
        w = ZeroLogSpinBox(p.default, _bounds(p, 0, 1e12)[1], parent)
    elif p.log:
        lo, hi = _bounds(p, 1e-12, 1e12)
        if lo <= 0:                     # an open zero end: the smallest positive rate a learner would type
            lo = 1e-12
        w = LogSpinBox(p.default, lo, hi, parent)
    else:
        w = QDoubleSpinBox(parent)
        lo, hi = _bounds(p, -1e12, 1e12)
        w.setDecimals(p.decimals if p.decimals is not None else 4)
        w.setRange(lo, hi)
        span = hi - lo
        w.setSingleStep(0.01 if span <= 1 else 0.1 if span <= 10 else 1.0)
        w.setKeyboardTracking(False)
    if p.doc:
        w.setToolTip(p.doc)
    w.setObjectName(p.name)
    write_widget(w, p.default)
    return w


def read_widget(w: QWidget) -> Any:
    if isinstance(w, QComboBox):
        return w.currentData()
    if isinstance(w, QCheckBox):
        return w.isChecked()
    if isinstance(w, QSpinBox):
        return int(w.value())
    return float(w.value())


def write_widget(w: QWidget, value: Any) -> None:
    if isinstance(w, QComboBox):
        i = w.findData(value)
        w.setCurrentIndex(max(i, 0))
    elif isinstance(w, QCheckBox):
        w.setChecked(bool(value))
    else:
        w.setValue(value)


def changed_signal(w: QWidget):
    """The signal a control emits when the learner changes it."""
    if isinstance(w, QComboBox):
        return w.currentIndexChanged
    if isinstance(w, QCheckBox):
        return w.toggled
    return w.valueChanged


class ParamForm(QWidget):
    """A form for a Settings class: one labelled control per declared parameter (or the ``only`` ones, in that
    order). ``value()`` builds a validated Settings object (our ValueInputError if the combination is refused),
    ``set_value(settings)`` shows one, and ``edited`` fires whenever the learner changes a control."""

    edited = Signal()

    def __init__(self, settings_cls: type, only: tuple[str, ...] | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.settings_cls = settings_cls
        declared = {p.name: p for p in params_of(settings_cls)}
        names = only if only is not None else tuple(declared)
        self.params = tuple(declared[n] for n in names)
        self.widgets: dict[str, QWidget] = {}
        self.fixed: dict[str, Any] = {}
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        for p in self.params:
            w = param_widget(p, self)
            self.widgets[p.name] = w
            if isinstance(w, QCheckBox):        # the whole "[x] centered" text is the click target
                w.setText(p.title)
                form.addRow(w)
            else:
                label = QLabel(p.title)
                label.setToolTip(p.doc)
                label.setBuddy(w)
                form.addRow(label, w)
            changed_signal(w).connect(self.edited)
        self.error = QLabel("")
        self.error.setWordWrap(True)
        self.error.hide()
        form.addRow(self.error)

    def values(self) -> dict[str, Any]:
        return {name: read_widget(w) for name, w in self.widgets.items()}

    def value(self, **overrides: Any):
        """The settings the form shows (fields it does not show keep their defaults or ``overrides``)."""
        return self.settings_cls(**{**self.fixed, **self.values(), **overrides})

    def try_value(self, **overrides: Any):
        """Like value(), but a refused combination is shown under the form and None returned."""
        try:
            v = self.value(**overrides)
        except StudioError as exc:
            self.error.setText(str(exc))
            self.error.show()
            return None
        self.error.hide()
        return v

    def set_value(self, settings: Any) -> None:
        """Show ``settings`` (a Settings object or a mapping) without emitting ``edited`` per control."""
        values = settings.as_dict() if hasattr(settings, "as_dict") else dict(settings)
        self.blockSignals(True)
        try:
            for name, w in self.widgets.items():
                if name in values:
                    w.blockSignals(True)
                    write_widget(w, values[name])
                    w.blockSignals(False)
            self.fixed = {k: v for k, v in values.items() if k not in self.widgets}
        finally:
            self.blockSignals(False)
