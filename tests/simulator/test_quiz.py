"""Predict-then-reveal: the quiz's questions, checks within tolerance, explanations with the chain rule's numbers,
tensors cell by cell, the barrier and the score."""
import pytest

from simulator import Trace, load_example
from simulator.core.errors import ShapeError, ValueInputError
from simulator.engine.quiz import Quiz, parse_answer
from simulator.graphs.expression import parse_expression


@pytest.fixture
def circuit():
    g = load_example("circuit")            # f = (x + y) z, x = -2, y = 5, z = -4
    return Quiz(Trace(g), g)


def test_questions_sit_on_the_backward_op_steps(circuit):
    t = circuit.trace
    asked = sorted(circuit.questions)
    assert [t.events[i].node for i in asked] == ["f", "q"]
    assert all(t.events[i].phase == "backward" and t.events[i].kind == "op" for i in asked)
    q = circuit.questions[asked[0]]
    assert {b.source: float(b.expected) for b in q.blanks} == {"q": -4.0, "z": 3.0}
    assert "df/dq, df/dz" in q.prompt


def test_a_right_answer_within_tolerance_and_a_wrong_one_explained(circuit):
    q = circuit.questions[sorted(circuit.questions)[1]]      # through q = x + y: upstream -4, local 1
    fb = circuit.answer(q, {"x": "4", "y": "-4"})
    assert not fb.correct and fb.wrong["x"].all() and not fb.wrong["y"].any()
    assert "sign is flipped" in fb.text and "-4 × 1 = -4" in fb.text
    fb = circuit.answer(q, {"x": "-4.01", "y": "−4"})          # within 1%, and a typographic minus
    assert fb.correct and "Right" in fb.text
    assert circuit.score == (0, 1)                             # right only at the second try


def test_upstream_alone_or_local_alone_get_their_own_hint():
    g2 = parse_expression("(a * b) * c")
    for name, v in (("a", 3.0), ("b", 2.0), ("c", 5.0)):
        g2.set_value(name, v)
    quiz = Quiz(Trace(g2), g2)
    inner = next(q for q in quiz.questions.values() if {b.source for b in q.blanks} == {"a", "b"})
    up = float(inner.upstream)                                 # dL/d(a*b) = c = 5
    assert up == 5.0
    fb = quiz.answer(inner, {"x": str(up), "y": "15"})         # dL/da = 5 * b = 10: typing the upstream 5
    assert "upstream gradient alone" in fb.text and "5 × 2 = 10" in fb.text
    fb = quiz.answer(inner, {"x": "2", "y": "15"})             # the local gradient b = 2 alone
    assert "local gradient alone" in fb.text
    assert quiz.answer(inner, {"x": "10", "y": "15"}).correct


def test_the_barrier_stops_at_unanswered_questions_and_reveal_lets_it_pass(circuit):
    first, second = sorted(circuit.questions)
    end = len(circuit.trace)
    assert circuit.barrier(0, end) == first
    assert circuit.barrier(0, first) == first                  # reaching the question itself is fine
    circuit.reveal(circuit.questions[first])
    assert circuit.barrier(0, end) == second
    circuit.answer(circuit.questions[second], {"x": -4, "y": -4})
    assert circuit.barrier(0, end) == end
    assert circuit.score == (1, 2)


def test_tensors_are_checked_cell_by_cell():
    g = load_example("two_layer_net")
    quiz = Quiz(Trace(g), g)
    q = next(q for q in quiz.questions.values() if q.node == "scores")      # matmul h @ W2: dW2 (5, 3), dh (4, 5)
    dW2 = next(b for b in q.blanks if b.source == "W2")
    dh = next(b for b in q.blanks if b.source == "h")
    assert dW2.local is None and dW2.shape == (5, 3)
    answer = dW2.expected.copy()
    answer[1, 2] += 1.0
    fb = quiz.answer(q, {dW2.port: answer.tolist(), dh.port: dh.expected})
    assert not fb.correct and fb.wrong[dW2.port].sum() == 1 and fb.wrong[dW2.port][1, 2]
    assert "1 of 15 cells" in fb.text and "cell [1, 2]" in fb.text
    fb = quiz.answer(q, {dW2.port: [[str(v) for v in row] for row in dW2.expected], dh.port: dh.expected})
    assert fb.correct


def test_fan_out_asks_for_the_sum():
    g = load_example("fan_out")            # f = x*y + x**2, x = 3, y = -4
    quiz = Quiz(Trace(g), g)
    acc = next(q for q in quiz.questions.values() if q.kind == "accumulate")
    fb = quiz.answer(acc, {"grad": float(acc.incoming)})
    assert not fb.correct and "only one of the two gradients" in fb.text
    assert quiz.answer(acc, {"grad": "2"}).correct


def test_answers_are_read_strictly():
    assert parse_answer("3/4", ()) == 0.75 and parse_answer("0,25", ()) == 0.25
    with pytest.raises(ValueInputError):
        parse_answer("four", ())
    with pytest.raises(ValueInputError):
        parse_answer("", ())
    with pytest.raises(ShapeError):
        parse_answer([1, 2, 3], (2, 2))
    with pytest.raises(ValueInputError):
        parse_answer("nan", ())
