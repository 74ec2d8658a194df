"""The chain-rule panel speaks the learner's names: an op's formula and local gradients name the nodes wired into
it (and its attributes' values), not the op's own port names."""
import re

from gui.stepping.chain_rule import event_html
from simulator.core.formatting import format_scalar, in_learner_words
from simulator import Trace, load_example
from simulator.graphs.expression import parse_expression


def _text(html: str) -> str:
    return re.sub(r"<[^>]+>", "", html)


def test_the_circuit_reads_in_the_learners_nodes():
    g = load_example("circuit")                      # f = (x + y) * z with x = -2, y = 5, z = -4
    t = Trace(g)
    fwd_f = next(i for i, e in enumerate(t.events) if e.phase == "forward" and e.node == "f")
    _title, body = event_html(t.events[fwd_f], t, g, fwd_f + 1)
    text = _text(body)
    assert "f = q · z" in text and "q = 3" in text and "z = -4" in text
    assert "x = 3" not in text and "y = -4" not in text        # the op's ports, which the learner never named
    back_f = next(i for i, e in enumerate(t.events) if e.phase == "backward" and e.kind == "op" and e.node == "f")
    text = _text(event_html(t.events[back_f], t, g, back_f + 1)[1])
    assert "local: ∂f/∂q = z" in text and "local: ∂f/∂z = q" in text
    assert "-4" in text and "3" in text


def test_names_swap_cleanly_and_whole_words_only():
    assert in_learner_words("x · y", {"x": "y", "y": "x"}) == "y · x"
    assert in_learner_words("max(x, y)", {"x": "a", "y": "b"}) == "max(a, b)"
    assert in_learner_words("1[x ≥ y]", {"x": "w1", "y": "w2"}) == "1[w1 ≥ w2]"
    assert in_learner_words("x · y", {}) == "x · y"
    assert in_learner_words("x̂ = (x − μ) / σ", {"x": "h1"}) == "x̂ = (h1 − μ) / σ"      # x̂ is not x


def test_an_attribute_shows_its_value():
    g = parse_expression("a ** 3")
    g.set_value("a", 2.0)
    t = Trace(g)
    pow_node = next(n.id for n in g.nodes if n.kind == "op" and n.op == "pow")
    i = next(i for i, e in enumerate(t.events) if e.phase == "forward" and e.node == pow_node)
    assert f"{pow_node} = a^3" in _text(event_html(t.events[i], t, g, i + 1)[1])
    j = next(i for i, e in enumerate(t.events) if e.phase == "backward" and e.kind == "op" and e.node == pow_node)
    assert "= 3 · a^(3−1)" in _text(event_html(t.events[j], t, g, j + 1)[1])


def test_small_tensor_steps_show_their_numbers():
    g = load_example("svm_loss")                     # the cat: scores (3.2, 5.1, -1.7), label cat
    t = Trace(g)
    i = next(i for i, e in enumerate(t.events) if e.phase == "backward" and e.kind == "op")
    text = _text(event_html(t.events[i], t, g, i + 1)[1])
    assert "dL/dscores = [[-1, 1, 0]]" in text       # one positive margin (car), none for frog
    g = load_example("two_layer_net")
    t = Trace(g)
    i = next(i for i, e in enumerate(t.events) if e.phase == "backward" and e.kind == "op" and e.node == "L")
    down = t.events[i].outputs["scores"]
    text = _text(event_html(t.events[i], t, g, i + 1)[1])
    first_row = ", ".join(format_scalar(v) for v in down[0])
    assert f"dL/dscores = [[{first_row}]" in text
