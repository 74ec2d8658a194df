"""Expressions become graphs through ast; anything else is refused with the offending text and its column."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import ExpressionError, Graph, evaluate


def test_sigmoid_expression_structure():
    g = Graph.from_expression("1 / (1 + exp(-(w0*x0 + w1*x1 + w2)))")
    ops = sorted(n.op for n in g if n.kind == "op")
    assert ops == sorted(["mul", "mul", "add", "add", "neg", "exp", "add", "div"])
    assert sorted(n.id for n in g if n.kind == "input") == ["w0", "w1", "w2", "x0", "x1"]
    assert sorted(float(n.value) for n in g if n.kind == "const") == [1.0, 1.0]
    assert g.output == "f"
    # left to right: every wire goes rightwards
    for e in g.edges:
        assert g.node(e.src).pos[0] < g.node(e.dst).pos[0]


def test_repeated_name_is_one_input_with_fan_out():
    g = Graph.from_expression("x * y + x")
    assert len(g.edges_from("x")) == 2


def test_negative_literal_is_a_constant_and_pow_takes_a_number():
    g = Graph.from_expression("x ** -1 + -2")
    assert sorted(n.op for n in g if n.kind == "op") == ["add", "pow"]
    assert [float(n.value) for n in g if n.kind == "const"] == [-2.0]
    assert evaluate("x ** -1 + -2", x=4.0).value == pytest.approx(-1.75)


def test_keyword_attributes_and_aliases():
    assert evaluate("leaky_relu(x, alpha=0.5)", x=-2.0).value == -1.0
    assert evaluate("swish(x)", x=0.0).value == 0.0
    r = evaluate("sum(x, axis=0)", x=np.ones((2, 3)))
    assert np.allclose(r.value, [2, 2, 2])
    assert evaluate("reshape(x, shape=(3, 2))", x=np.ones((2, 3))).value.shape == (3, 2)


@pytest.mark.parametrize("text, fragment, column", [
    ("x.real + 1", "x.real", 1),
    ("x[0] * 2", "x[0]", 1),
    ("(lambda: 1)()", "lambda: 1", 2),
    ("x + 'a'", "'a'", 5),
    ("__import__('os')", "__import__", 1),
    ("x ** y", "y", 6),
    ("foo(x)", "foo", 1),
    ("x if y else z", "x if y else z", 1),
    ("exp(x, y)", "exp(x, y)", 1),
    ("os.system('ls')", "os.system", 1),
    ("x < y", "x < y", 1),
    ("1e999 * x", "1e999", 1),
    ("exp(*x)", "exp(*x)", 1),
    ("[x][0]", "[x][0]", 1),
])
def test_refusals_name_text_and_column(text, fragment, column):
    with pytest.raises(ExpressionError) as info:
        Graph.from_expression(text)
    err = info.value
    assert err.text == fragment and err.column == column
    assert f"column {column}" in str(err) and fragment in str(err)


def test_syntax_errors_point_at_a_column():
    with pytest.raises(ExpressionError) as info:
        Graph.from_expression("(x + ) * z")
    assert info.value.column >= 1 and "column" in str(info.value)
    for text in ("", "   ", "x +", "(" * 300 + "x" + ")" * 300, "x" * 6000, "x\x00"):
        with pytest.raises(ExpressionError):
            Graph.from_expression(text)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(list("xyz01.+-*/()@ ,=_eapqlrsumx[]'\"") + ["exp", "**", "__", "lambda", ":",
                                                                               "axis=", "shape=", "relu", "1e400"]),
                max_size=30).map("".join))
def test_hostile_expressions_raise_only_our_error(text):
    try:
        Graph.from_expression(text)
    except ExpressionError:
        pass


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=60))
def test_arbitrary_text_raises_only_our_error(text):
    try:
        Graph.from_expression(text)
    except ExpressionError:
        pass


_LEAVES = st.one_of(st.sampled_from(["x", "y", "0", "1", "2.5", "-3", "1e308", "1e-300"]))
_UNARY = ["exp", "log", "sqrt", "sin", "cos", "tanh", "relu", "sigmoid", "abs", "-"]
_BINARY = ["+", "-", "*", "/", "**"]


def _combine(children):
    unary = st.tuples(st.sampled_from(_UNARY), children).map(
        lambda t: f"-({t[1]})" if t[0] == "-" else f"{t[0]}({t[1]})")
    binary = st.tuples(children, st.sampled_from(_BINARY), children).map(lambda t: f"({t[0]}) {t[1]} ({t[2]})")
    return st.one_of(unary, binary)


_EXPRESSIONS = st.recursive(_LEAVES, _combine, max_leaves=12)
_VALUES = st.one_of(st.floats(allow_nan=False, allow_infinity=False, width=64),
                    st.sampled_from([0.0, -0.0, 1.0, -1.0, 1e-320]))


@settings(max_examples=300, deadline=2000)
@given(_EXPRESSIONS, _VALUES, _VALUES)
def test_evaluating_random_expressions_gives_numbers_or_our_errors(text, x, y):
    """Whatever a learner types and whatever values it gets, evaluate either returns finite numbers (value and every
    gradient) or raises one of our errors (a NaN or infinity on the way is a NumericError naming its node)."""
    from simulator import StudioError
    try:
        graph = Graph.from_expression(text)       # e.g. "x ** y" is refused: an exponent must be a number
        names = {n.id for n in graph.leaves() if n.kind != "constant"}
        r = evaluate(text, **{k: v for k, v in {"x": x, "y": y}.items() if k in names})
    except StudioError:
        return
    assert np.isfinite(r.value).all()
    assert all(np.isfinite(g).all() for g in r.grads.values())
