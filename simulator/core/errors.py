"""Backprop Studio's own exception types: every failure the API reports to a caller is one of these."""
from __future__ import annotations


class StudioError(Exception):
    """Base class of every error Backprop Studio raises on bad input."""


class GraphError(StudioError):
    """A graph edit or a graph run is impossible: a cycle, a missing port, an input fed twice, an unknown node."""


class ShapeError(StudioError):
    """Tensor shapes do not fit together. The message names the node (or argument) and both shapes."""


class ExpressionError(StudioError):
    """An expression cannot be turned into a graph. Carries the offending text and its 1-based column."""

    def __init__(self, message: str, text: str = "", column: int = 0):
        super().__init__(message)
        self.text = text
        self.column = column


class FileFormatError(StudioError):
    """A file cannot be loaded: not ours, damaged, hostile, or written by a newer version."""


class ValueInputError(StudioError):
    """A value given to the simulator is unusable: NaN or infinite, labels out of range, a bad hyperparameter."""


class NumericError(StudioError):
    """A computation produced NaN or Inf (divergence, overflow). Names the node or layer where it first appeared."""
