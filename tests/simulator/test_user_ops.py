"""Write your own op: the gradient check finds exactly the wrong elements of a learner's backward, a checked op
works in graphs like a built-in one, and the learner's code runs in a sandbox that survives an endless loop, a
crash, a memory bomb and a syntax error."""
import time

import numpy as np
import pytest

from simulator import Graph, Trace, evaluate
from simulator.core.errors import ValueInputError
from simulator.engine.user_ops import (CHECK_SHAPE, TEMPLATE, Sandbox, UserCodeError, check_user_op,
                                       register_user_op, unregister_user_op)

LEAKY = TEMPLATE.replace("np.maximum(0.0, x)", "np.where(x > 0, x, 0.1 * x)")          # forward of a leaky ReLU


@pytest.fixture(scope="module")
def box():
    b = Sandbox()
    yield b
    b.close()


def test_a_right_backward_passes(box):
    r = check_user_op("my_relu", TEMPLATE, box=box)
    assert r.ok and r.rel_error.shape == CHECK_SHAPE and r.rel_error.max() < 1e-8
    np.testing.assert_allclose(r.analytic, r.dout * (r.x > 0))


def test_the_check_marks_exactly_the_wrong_elements(box):
    # the template's backward under a leaky forward: right where x > 0, wrong (0 instead of 0.1 dout) where x < 0
    r = check_user_op("leaky", LEAKY, box=box)
    assert not r.ok
    np.testing.assert_array_equal(r.wrong, r.x < 0)
    np.testing.assert_allclose(r.numeric[r.x < 0], 0.1 * r.dout[r.x < 0], rtol=1e-6)
    assert f"{int((r.x < 0).sum())} of 20 elements of dx are wrong" in r.summary
    fixed = LEAKY.replace("dx = dout * (x > 0)", "dx = dout * np.where(x > 0, 1.0, 0.1)")
    assert check_user_op("leaky", fixed, box=box).ok


def test_the_sandbox_survives_the_learners_mistakes(box):
    cases = {
        "endless": ("def forward(x):\n    while True:\n        pass\n\ndef backward(d, c):\n    return d\n",
                    "more than 3 s"),
        "crash": ("import os\ndef forward(x):\n    os._exit(3)\n\ndef backward(d, c):\n    return d\n",
                  "sandbox running your code stopped"),
        "bomb": ("def forward(x):\n    a = np.ones(10**10)\n    return a, None\n\ndef backward(d, c):\n    return d\n",
                 "MemoryError"),
        "typo": ("def forward(x)\n    return x, x\n", "SyntaxError"),
        "raises": ("def forward(x):\n    return x / 0.0 + undefined_name, x\n\ndef backward(d, c):\n    return d\n",
                   "line 2, in forward"),
        "shape": ("def forward(x):\n    return x.sum(), x\n\ndef backward(d, c):\n    return d\n",
                  "elementwise"),
    }
    for name, (source, words) in cases.items():
        t = time.perf_counter()
        with pytest.raises(UserCodeError) as err:
            check_user_op(name, source, box=box)
        assert words in str(err.value), (name, str(err.value))
        assert time.perf_counter() - t < 15
    assert check_user_op("my_relu", TEMPLATE, box=box).ok          # and it goes on working


def test_a_checked_op_is_used_and_stepped_like_a_built_in_one(box):
    sig = TEMPLATE.replace("np.maximum(0.0, x)", "1.0 / (1.0 + np.exp(-x))").replace(
        "dx = dout * (x > 0)", "s = 1.0 / (1.0 + np.exp(-x))\n    dx = dout * s * (1.0 - s)")
    assert check_user_op("my_sigmoid", sig, box=box).ok
    try:
        register_user_op("my_sigmoid", sig, box=box)
        r = evaluate("my_sigmoid(w * x) * 2", w=0.5, x=3.0)
        s = 1 / (1 + np.exp(-1.5))
        assert r.value == pytest.approx(2 * s) and r.grads["x"] == pytest.approx(2 * s * (1 - s) * 0.5)
        t = Trace(Graph.from_expression("my_sigmoid(x)"))
        assert [e.kind for e in t.events] == ["op", "seed", "op"]
        v = evaluate("my_sigmoid(x)", x=np.array([[0.0, 1.0], [-1.0, 2.0]]))
        np.testing.assert_allclose(v.value, 1 / (1 + np.exp(-np.array([[0.0, 1.0], [-1.0, 2.0]]))))
    finally:
        unregister_user_op("my_sigmoid")


def test_names_are_checked():
    for bad in ("MyOp", "1op", "my op", "class", ""):
        with pytest.raises(ValueInputError):
            check_user_op(bad, TEMPLATE)
    with pytest.raises(ValueInputError, match="built-in"):
        register_user_op("relu", TEMPLATE)
