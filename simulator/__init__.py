"""Backprop Studio's model: graphs, ops, the step engine, gradient checks and files. Pure Python, numpy and
networkx; it never imports Qt."""
from simulator.errors import (ExpressionError, FileFormatError, GraphError, NumericError, ShapeError,  # noqa: F401
                              StudioError, ValueInputError)
from simulator.graph import Edge, Graph, GraphChange, Node  # noqa: F401
from simulator.engine import Program, StepEvent, Trace, run  # noqa: F401
from simulator.api import Evaluation, evaluate  # noqa: F401
from simulator.examples import EXAMPLES, load_example  # noqa: F401

__all__ = ["Graph", "Node", "Edge", "GraphChange", "Program", "StepEvent", "Trace", "run", "evaluate", "Evaluation",
           "EXAMPLES", "load_example", "StudioError", "GraphError", "ShapeError", "ExpressionError",
           "FileFormatError", "ValueInputError", "NumericError"]
