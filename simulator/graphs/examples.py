"""The lecture examples: named graphs a learner can open from the Examples menu or load in a script."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from simulator.core.errors import GraphError
from simulator.graphs.graph import Graph
from simulator.graphs.layout import apply_layout


@dataclass(frozen=True)
class Example:
    name: str
    title: str
    description: str
    build: Callable[[], Graph]


def _from_expression(text: str, **values) -> Callable[[], Graph]:
    def build() -> Graph:
        g = Graph.from_expression(text)
        for k, v in values.items():
            g.set_value(k, v)
        return g
    return build


def _loss_example(op: str) -> Callable[[], Graph]:
    """The cs231n cat image: scores (3.2, 5.1, -1.7) for classes cat, car, frog; the correct class is cat."""
    def build() -> Graph:
        g = Graph()
        g.add_input("scores", np.array([[3.2, 5.1, -1.7]]))
        g.add_input("y", np.array([0.0]))
        g.add_op(op, name="L")
        g.connect("scores", "L", "scores")
        g.connect("y", "L", "y")
        apply_layout(g)
        return g
    return build


def _two_layer_net() -> Graph:
    """scores = max(0, x W1) W2 on a batch of 4 examples (the rows of x: x is N x D, W1 is D x H), with an SVM loss on
    top: the notes' W2 max(0, W1 x) for one column vector x, written for a batch of row vectors."""
    rng = np.random.default_rng(231)
    g = Graph()
    g.add_input("x", rng.normal(size=(4, 3)).round(2))
    g.add_input("W1", (0.5 * rng.normal(size=(3, 5))).round(2), trainable=True)
    g.add_input("W2", (0.5 * rng.normal(size=(5, 3))).round(2), trainable=True)
    g.add_input("y", np.array([0.0, 2.0, 1.0, 2.0]))
    g.add_op("matmul", name="h1")
    g.connect("x", "h1", "a")
    g.connect("W1", "h1", "b")
    g.add_op("relu", name="h")
    g.connect("h1", "h", "x")
    g.add_op("matmul", name="scores")
    g.connect("h", "scores", "a")
    g.connect("W2", "scores", "b")
    g.add_op("svm_loss", name="L")
    g.connect("scores", "L", "scores")
    g.connect("y", "L", "y")
    apply_layout(g)
    return g


EXAMPLES: dict[str, Example] = {e.name: e for e in (
    Example("circuit", "(x + y) · z",
            "The first circuit of the backprop lecture: f = (x + y) z with x = -2, y = 5, z = -4. "
            "Add distributes the gradient, multiply switches it.",
            _from_expression("(x + y) * z", x=-2.0, y=5.0, z=-4.0)),
    Example("sigmoid_neuron", "A 2-D sigmoid neuron",
            "f = 1 / (1 + exp(-(w0 x0 + w1 x1 + w2))) with w = (2, -3, -3) and x = (-1, -2): output 0.73; "
            "the gradient on w0 is -0.20.",
            _from_expression("1 / (1 + exp(-(w0*x0 + w1*x1 + w2)))", w0=2.0, x0=-1.0, w1=-3.0, x1=-2.0, w2=-3.0)),
    Example("svm_loss", "Multiclass SVM loss on 3 classes",
            "The cat image with scores (3.2, 5.1, -1.7): hinge loss max(0, 5.1 - 3.2 + 1) + max(0, -1.7 - 3.2 + 1) "
            "= 2.9.", _loss_example("svm_loss")),
    Example("softmax_loss", "Softmax cross-entropy on 3 classes",
            "The same cat scores through a softmax: the correct class gets probability 0.13, loss -ln 0.13 = 2.04.",
            _loss_example("softmax_ce")),
    Example("two_layer_net", "A two-layer net max(0, x W1) W2",
            "A batch of 4 examples (the rows of x, 4 x 3) through a ReLU hidden layer of 5 units (W1 is 3 x 5) and an "
            "SVM loss over 3 classes. The notes write W2 max(0, W1 x) for one column vector x with W1 in R^(H x D); "
            "with examples as rows the same net reads max(0, x W1) W2.",
            _two_layer_net),
    Example("fan_out", "One value feeding two nodes",
            "f = x·y + x² with x = 3, y = -4: x reaches f along two paths, so its gradient is the sum "
            "y + 2x = 2 (the accumulation step shows the +=).",
            _from_expression("x * y + x ** 2", x=3.0, y=-4.0)),
)}


def load_example(name: str) -> Graph:
    try:
        return EXAMPLES[name].build()
    except KeyError:
        raise GraphError(f"there is no example '{name}'; the examples are {', '.join(EXAMPLES)}") from None
