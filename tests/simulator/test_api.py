"""evaluate(), run() and the gradient check on hostile numbers and valid-but-unusual expressions (issue 11), the
sin/cos ops and learner-facing messages (issue 10), and the engine's work staying proportional to the graph (issue 12:
counted, never timed)."""
import numpy as np
import pytest

from simulator import Graph, NumericError, Trace, evaluate, load_example, run
from simulator.core.errors import ExpressionError, ShapeError, ValueInputError
from simulator.engine.gradcheck import check_graph, check_node, numerical_gradient
from simulator.engine.trace import MEMORY_BUDGET, MemoryBudgetError, Program
from simulator.ops import REGISTRY, OpSpec


def _numeric_grads(text, **values):
    """Centred differences of evaluate(text) (of its sum) for each input, float64."""
    out = {}
    for name, v in values.items():
        def f(x, name=name):
            return float(np.sum(evaluate(text, **{**values, name: x}).value))
        out[name] = numerical_gradient(f, np.array(v, dtype=np.float64))
    return out


# ---- non-finite numbers are our NumericError, naming the node and the step -----------------------------------

def test_sqrt_of_a_constant_zero_names_node_and_step_everywhere():
    # was KeyError: 'c' (the check looked up a gradient a constant never gets)
    with pytest.raises(NumericError) as info:
        evaluate("sqrt(0*x)", x=1.0)
    msg = str(info.value)
    assert "backward step 2, node f = sqrt(q)" in msg and "+infinity" in msg and "where q = 0" in msg
    g = Graph.from_expression("sqrt(0*x)")
    for attempt in (lambda: run(g), lambda: Trace(g), lambda: check_graph(g), lambda: check_node(g, "f")):
        with pytest.raises(NumericError, match=r"node f = sqrt\(q\)"):
            attempt()


def test_infinite_and_nan_gradients_are_refused_not_returned():
    with pytest.raises(NumericError, match=r"backward step 2, node f = sqrt\(x\): the gradient df/dx is \+infinity "
                                           r"where x = 0 \(sqrt needs x ≥ 0, and x > 0"):
        evaluate("sqrt(x)", x=0)
    with pytest.raises(NumericError, match=r"backward step 3, node q = sqrt\(x\): the gradient df/dx is NaN"):
        evaluate("sqrt(x)**2", x=0)


def test_non_finite_value_names_the_forward_step_and_the_entry_in_learner_words():
    with pytest.raises(NumericError) as info:
        evaluate("log(x) + y**2", x=np.array([2.0, -1.0]), y=np.array([1.0, 2.0]))
    msg = str(info.value)
    assert msg.startswith("forward step 1, node q1 = log(x): the value is NaN (not a number) at entry (1,), where "
                          "x = -1 (log needs x > 0)")
    assert "tensor(" not in msg and "(log)" not in msg
    with pytest.raises(NumericError, match=r"forward step 1, node f = x / y: the value is \+infinity where x = 1, "
                                           r"y = 0 \(division needs y ≠ 0\)"):
        evaluate("x / y", x=1.0, y=0.0)


def test_overflowing_update_is_a_numeric_error():
    g = Graph.from_expression("w * x")
    g.set_kind("w", "param")
    g.set_value("x", 1e300)
    with pytest.raises(NumericError, match="update step 1, parameter 'w'.*smaller learning rate"):
        Trace(g, learning_rate=1e10)


# ---- what evaluate accepts and refuses -----------------------------------------------------------------------

def test_evaluate_refuses_names_that_are_not_inputs():
    with pytest.raises(ValueInputError) as info:
        evaluate("x + 2", x=1, c=100)
    assert "c is not an input of the expression (c is a constant or computed); its inputs are x" in str(info.value)
    with pytest.raises(ValueInputError, match="f, q are not inputs"):
        evaluate("(x + 1) * 2", x=1, f=2, q=3)


def test_negative_axes_are_valid_and_their_gradients_match_numerical_ones():
    x = np.random.default_rng(0).normal(size=(2, 3))
    r = evaluate("sum(x, axis=-1)", x=x)
    np.testing.assert_allclose(r.value, x.sum(axis=1))
    np.testing.assert_array_equal(r.grads["x"], np.ones((2, 3)))
    r = evaluate("softmax(x, axis=-1) * w", x=x, w=np.arange(6.0).reshape(2, 3))
    e = np.exp(x - x.max(axis=1, keepdims=True))
    np.testing.assert_allclose(r.value, e / e.sum(axis=1, keepdims=True) * np.arange(6.0).reshape(2, 3))
    numeric = _numeric_grads("softmax(x, axis=-1) * w", x=x, w=np.arange(6.0).reshape(2, 3))
    np.testing.assert_allclose(r.grads["x"], numeric["x"], rtol=1e-6, atol=1e-9)
    assert Graph.from_expression("mean(x, axis=-2)").node("f").attrs == {"axis": -2}


def test_dropout_accepts_the_whole_uint32_seed_range():
    g = Graph.from_expression("dropout(x, seed=3000000000)")
    assert g.node("f").attrs["seed"] == 3000000000 and isinstance(g.node("f").attrs["seed"], int)
    x = np.arange(1.0, 9.0)
    r = evaluate("dropout(x, seed=4294967295)", x=x)
    kept = r.value != 0
    np.testing.assert_allclose(r.value[kept], 2.0 * x[kept])
    np.testing.assert_array_equal(r.grads["x"], np.where(kept, 2.0, 0.0))
    with pytest.raises(ExpressionError, match="at most"):
        Graph.from_expression("dropout(x, seed=4294967296)")


def test_learner_names_never_collide_with_generated_names():
    r = evaluate("_op1 * x + _op2", _op1=2.0, x=3.0, _op2=0.5)
    assert r.value == 6.5 and r.grads == {"_op1": 3.0, "x": 2.0, "_op2": 1.0}
    g = Graph.from_expression("q1 * f + c")   # names our renaming would like to use
    assert {"q1", "f", "c"} <= {n.id for n in g if n.kind == "input"}
    assert g.node(g.output).kind == "op" and len(g) == 5


@pytest.mark.parametrize("value", [np.array([1 + 2j, 3.0]), 1 + 0j, [1, 2j], np.complex128(1.0)])
def test_complex_input_is_refused(value, recwarn):
    with pytest.raises(ValueInputError, match="complex|real numbers"):
        evaluate("x * 2", x=value)
    assert not [w for w in recwarn if "Complex" in type(w.message).__name__]


def test_masked_input_is_refused():
    with pytest.raises(ValueInputError, match="masked array"):
        evaluate("x * 2", x=np.ma.array([1.0, 2.0], mask=[0, 1]))


# ---- the memory budget ---------------------------------------------------------------------------------------

def _exp_chain(n_ops, size):
    g = Graph()
    prev = g.add_input("x", np.zeros(size))
    for i in range(n_ops):
        op = g.add_op("exp", name=f"e{i}")
        g.connect(prev, op, "x", check_shapes=False)
        prev = op
    return g


def test_memory_budget_is_estimated_before_allocating():
    g = _exp_chain(3, 1000)
    # 4 values + 3 wire gradients + the seed, 1000 float64 each
    assert Program(g).estimated_bytes == 8 * 1000 * (4 + 3 + 1)
    big = _exp_chain(200, 1_000_000)   # about 3.2 GB of values, gradients and steps
    assert Program(big).estimated_bytes > MEMORY_BUDGET
    for attempt in (lambda: run(big), lambda: Trace(big), lambda: evaluate(big)):
        with pytest.raises(MemoryBudgetError, match=r"about 3\.\d GiB .* the limit is 1\.0 GiB"):
            attempt()
    with pytest.raises(ValueInputError):   # the budget error is one of our own errors
        Program(g).check_budget(budget=1000)


# ---- sin and cos, and the custom surface that wanted them -----------------------------------------------------

def test_sin_cos_values_and_gradients():
    x = np.linspace(-3.0, 3.0, 7)
    r = evaluate("sin(x) * cos(y)", x=x, y=0.3)
    np.testing.assert_allclose(r.value, np.sin(x) * np.cos(0.3))
    np.testing.assert_allclose(r.grads["x"], np.cos(x) * np.cos(0.3))
    np.testing.assert_allclose(r.grads["y"], -np.sin(0.3) * np.sin(x).sum())
    assert REGISTRY["sin"].local_grad == {"x": "cos x"} and REGISTRY["cos"].local_grad == {"x": "−sin x"}


def test_optimizer_lab_example_surface_evaluates_with_numerical_gradients():
    text = "x**2 + 10*y**2 + sin(3*x)"
    r = evaluate(text, x=0.4, y=-0.7)
    assert r.value == pytest.approx(0.4**2 + 10 * 0.49 + np.sin(1.2), rel=1e-14)
    numeric = _numeric_grads(text, x=0.4, y=-0.7)
    assert r.grads["x"] == pytest.approx(float(numeric["x"]), rel=1e-8)
    assert r.grads["y"] == pytest.approx(float(numeric["y"]), rel=1e-8)
    assert r.grads["x"] == pytest.approx(0.8 + 3 * np.cos(1.2), rel=1e-14)


# ---- messages in the learner's words -------------------------------------------------------------------------

def test_caret_says_use_double_star_and_unknown_functions_suggest_a_name():
    with pytest.raises(ExpressionError) as info:
        Graph.from_expression("x^2")
    assert "use ** for powers" in str(info.value) and info.value.column == 1
    with pytest.raises(ExpressionError, match=r"unknown function 'sine' \(did you mean sin\?\)"):
        Graph.from_expression("sine(x)")


@pytest.mark.parametrize("text", ["x^2", "'a' + x", "x[0]", "f(x)", "x +", "x % 2", "relu(x, alpha=y)"])
def test_expression_messages_are_plain_text(text):
    with pytest.raises(ExpressionError) as info:
        Graph.from_expression(text)
    assert "&#" not in str(info.value) and "&amp;" not in str(info.value) and "&quot;" not in str(info.value)


def test_broadcast_failure_names_both_shapes():
    with pytest.raises(ShapeError, match=r"x has shape \(2,\) and y has shape \(3,\)"):
        evaluate("log(x) + y**2", x=np.ones(2), y=np.ones(3))


# ---- the scalar fast path gives the array path's numbers, bit for bit ------------------------------------------

@pytest.mark.parametrize("text", ["(x + y) * z", "max(x, y) - min(y, z) / x", "-(x * y) + exp(z) * tanh(x)",
                                  "x * x * x - y / (z * z)", "sigmoid(x * y + z)"])
def test_scalar_rules_match_the_array_path_exactly(text):
    rng = np.random.default_rng(len(text))
    for _ in range(5):
        values = {n: float(rng.uniform(0.3, 2.0) * rng.choice([-1, 1])) for n in "xyz" if n in text}
        g = Graph.from_expression(text)
        g.set_values(values)
        fast, slow = run(g), run(g, scalar_rules=False)
        for name in fast.values:
            assert float(fast.values[name]) == float(slow.values[name])
        assert set(fast.grads) == set(slow.grads)
        for name in fast.grads:
            assert float(fast.grads[name]) == float(slow.grads[name])


def test_every_scalar_rule_matches_its_ops_forward_and_backward():
    rng = np.random.default_rng(3)
    ruled = [spec for spec in REGISTRY.values() if spec.scalar is not None]
    assert {s.name for s in ruled} >= {"add", "sub", "mul", "div", "neg", "max", "min"}
    for spec in ruled:
        for _ in range(50):
            xs = [float(rng.uniform(0.2, 3.0) * rng.choice([-1, 1])) for _ in spec.inputs]
            out, cache = spec.forward(*[np.array(x) for x in xs])
            assert spec.scalar[0](*xs) == float(out)
            d = float(rng.normal())
            assert [float(g) for g in spec.scalar[1](d, *xs, float(out))] == \
                [float(g) for g in spec.backward(np.array(d), cache)]


# ---- work proportional to the graph (counted, not timed) -----------------------------------------------------

def _counting_tanh():
    calls = []
    base = REGISTRY["tanh"]

    def infer(sx, **attrs):
        calls.append(1)
        return base.infer_shape(sx, **attrs)
    spec = OpSpec(**{**base.__dict__, "name": "_counting_tanh", "infer_shape": infer})
    REGISTRY[spec.name] = spec
    return calls


def test_checked_wiring_infers_only_what_the_new_wire_affects():
    calls = _counting_tanh()
    try:
        g = Graph()
        prev = g.add_input("x", np.ones(3))
        n = 300
        for i in range(n):
            op = g.add_op("_counting_tanh", name=f"t{i}")
            g.connect(prev, op, "x")   # checked: shapes are verified on every wire
            prev = op
        assert len(calls) <= 2 * n   # was n * (n + 1) / 2 with a full re-inference per wire
        calls.clear()
        g.set_value("x", np.ones(4))   # a new shape: everything downstream is re-inferred, once
        assert len(calls) == n and g.infer_shapes()[prev] == (4,)
        calls.clear()
        g.disconnect("t150", "x")
        g.connect("t10", "t150", "x")   # re-plugging in the middle re-infers t150 and below only
        assert len(calls) == n - 150
    finally:
        del REGISTRY["_counting_tanh"]


def test_a_refused_wire_leaves_shapes_and_graph_as_they_were():
    g = Graph()
    g.add_input("a", np.ones((2, 3)))
    g.add_input("b", np.ones((4, 5)))
    g.add_op("matmul", name="m")
    g.connect("a", "m", "a")
    with pytest.raises(ShapeError, match=r"\(2, 3\).*\(4, 5\)"):
        g.connect("b", "m", "b")
    assert g.edge_into("m", "b") is None and g.infer_shapes()["m"] is None
    g.add_input("c", np.ones((3, 5)))
    g.connect("c", "m", "b")
    assert g.infer_shapes()["m"] == (2, 5)


def test_parsing_names_the_ops_as_it_makes_them(monkeypatch):
    renames = []
    original = Graph.rename_many

    def counting(self, mapping):
        renames.append(len(mapping))
        return original(self, mapping)
    monkeypatch.setattr(Graph, "rename_many", counting)
    g = Graph.from_expression(" + ".join(f"a{i}*b{i}" for i in range(200)))
    # the ops are counted on the tree first, so they get q1, ..., f when made: no rename pass at all
    assert renames == [] and g.output == "f" and "q398" in g and "q399" not in g
    g = Graph.from_expression("q1 * q + f - q2")   # learner names that look like ours keep theirs
    assert [n.id for n in g] == ["q1", "q", "q1_1", "f", "q2_1", "q2", "f_1"] and g.output == "f_1"


def test_seeking_a_trace_matches_replaying_it_at_every_step():
    for name in ("two_layer_net", "fan_out", "sigmoid_neuron"):
        g = load_example(name)
        t = Trace(g, learning_rate=0.1 if name == "two_layer_net" else None)
        values, grads, edge = dict(t.initial), {}, {}
        touched = []   # per event: the nodes and wires whose value or gradient it sets
        for k in range(len(t) + 1):
            if k:
                ev = t.events[k - 1]
                nodes, wires = {ev.node}, set()
                if ev.phase == "forward":
                    values[ev.node] = ev.outputs["out"]
                elif ev.phase == "update":
                    values[ev.node] = ev.outputs["value"]
                elif ev.kind in ("seed", "accumulate"):
                    grads[ev.node] = ev.outputs["grad"]
                else:
                    for port, gr in ev.outputs.items():
                        edge[(ev.node, port)] = gr
                        grads.setdefault(ev.sources[port], gr)
                        nodes.add(ev.sources[port])
                        wires.add((ev.node, port))
                touched.append((nodes, wires))
            state = t.state_at(k)
            assert set(state.values) == set(values) and set(state.grads) == set(grads)
            assert set(state.edge_grads) == set(edge) and len(state.grads) == len(grads)
            for mine, ref in ((state.values, values), (state.grads, grads), (state.edge_grads, edge)):
                for key, v in ref.items():
                    assert mine[key] is v
            if k:
                assert t.changed_between(k - 1, k) == touched[k - 1]
                assert state.changed_since(t.state_at(k - 1)) == touched[k - 1]
        for a, b in ((0, len(t)), (len(t), 1), (2, len(t) - 1)):   # a jump: everything set in between
            lo, hi = min(a, b), max(a, b)
            want = (set().union(*(n for n, _ in touched[lo:hi])), set().union(*(w for _, w in touched[lo:hi])))
            assert t.changed_between(a, b) == want and t.state_at(b).changed_since(t.state_at(a)) == want


def test_evaluate_on_a_graph_does_not_change_it():
    g = load_example("circuit")
    before = {n.id: n.value.copy() for n in g if n.is_leaf}
    r = evaluate(g, x=1.0, y=2.0, z=3.0)
    assert r.value == 9.0 and r.grads == {"x": 3.0, "y": 3.0, "z": 3.0}
    assert all(np.array_equal(g.node(k).value, v) for k, v in before.items())
    assert float(r.graph.node("x").value) == 1.0
    r = evaluate(g, x=np.ones(2), y=np.ones(2), z=np.ones(2))   # new shapes: on a copy
    np.testing.assert_array_equal(r.value, [2.0, 2.0])
    assert g.node("x").value.shape == ()
