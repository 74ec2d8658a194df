"""Lessons as files: every shipped lesson loads and runs to its end with scripted answers, a lesson for every lecture
2-8 (two for the last), every tab of the window can be opened, computed answers come from the graph, and a broken
file is refused with the line that is wrong."""
import pytest

from simulator.labs.lessons import (LESSON_DIR, TABS, LessonError, LessonRun, available_lessons, load_lesson,
                                    parse_lesson, step_graph)

GOOD = """format = 1
title = "Tiny"
lecture = 4
summary = "one step"

[[step]]
text = "f = (x + y) z"
example = "circuit"
values = { x = 1 }
position = "end"

[[step.question]]
ask = "df/dx?"
answer = "gradient x"
"""


def test_one_shipped_lesson_per_lecture_2_to_8():
    lessons = available_lessons()
    assert sorted({l.lecture for l in lessons}) == [2, 3, 4, 5, 6, 7, 8]
    assert len(lessons) == len(list(LESSON_DIR.glob("*.toml")))      # none of them is broken
    # the last lecture has two: schedules and interpretability, and self-supervised learning
    assert sorted(l.name for l in lessons if l.lecture == 8) == ["l8-schedules-and-regularisation",
                                                                 "l8-self-supervised"]


def test_a_lesson_may_open_every_tab_of_the_window():
    from simulator.labs import TAB_TITLES
    assert TABS == TAB_TITLES and "Self-supervised" in TABS
    for tab in TABS:
        assert parse_lesson(GOOD.replace('[[step]]\n', f'[[step]]\ntab = "{tab}"\n')).steps[0].tab == tab


def test_the_self_supervised_lesson_asks_what_the_lab_computes():
    """Its numbers are the lab's own: the rotation task's chance, the InfoNCE loss of the contrastive task's default
    batch with every similarity equal, and the sizes of the encoder and projection head it names."""
    import math

    import numpy as np

    from simulator.functional import layers as L
    from simulator.labs.pretext import ENCODER_FEATURES, ROTATIONS, make_contrastive
    lesson = load_lesson("l8-self-supervised")
    assert {s.tab for s in lesson.steps} == {"Self-supervised"}
    run = LessonRun(lesson)
    assert run.expected(0) == 1 / ROTATIONS
    task = make_contrastive()
    n = task.batch_size
    assert f"N = {n}" in lesson.steps[1].questions[0].ask
    ids = np.concatenate([np.arange(n), np.arange(n)])
    equal = float(L.infonce_forward(np.ones((2 * n, 8)), L.partners_from_ids(ids), 0.1)[0])
    assert equal == pytest.approx(math.log(2 * n - 1), rel=1e-12)
    run.go(1)
    assert run.check(0, f"{equal:.4f}")[0]
    assert run.expected(0) == pytest.approx(equal, rel=1e-4)
    assert task.network.num_classes == 32 and "32 numbers" in lesson.steps[2].questions[0].ask
    assert f"{ENCODER_FEATURES} features" in lesson.steps[2].text


@pytest.mark.parametrize("lesson", available_lessons(), ids=lambda l: l.name)
def test_every_lesson_runs_to_its_end_with_right_answers_and_refuses_wrong_ones(lesson):
    run = LessonRun(lesson)
    for i, step in enumerate(lesson.steps):
        run.go(i)
        for j, q in enumerate(step.questions):
            want = run.expected(j)
            wrong = (want % len(q.choices)) + 1 if q.choices else want + 1 + abs(want)
            ok, text = run.check(j, wrong)
            assert not ok and "Not quite" in text
            ok, text = run.check(j, want if q.choices else f"{want:.6g}")
            assert ok and text.startswith("Right")
        assert run.step_answered
    assert run.finished


def test_computed_answers_come_from_the_steps_own_graph():
    lesson = load_lesson("l4-backprop-circuit")
    run = LessonRun(lesson)
    assert run.expected(0) == 3.0 and run.expected(1) == -4.0           # df/dz = q, df/dx = z
    run.go(2)
    assert run.expected(0) == pytest.approx(-0.1966, abs=1e-4)          # the sigmoid neuron's dw0
    g = step_graph(parse_lesson(GOOD).steps[0])
    assert float(g.node("x").value) == 1.0                              # values are applied
    assert LessonRun(parse_lesson(GOOD)).expected(0) == -4.0


def test_answers_are_read_like_the_quiz_reads_them():
    run = LessonRun(load_lesson("l6-activations-and-init"))         # dσ/dx at 0 = 0.25
    assert run.check(0, "1/4")[0] and run.check(0, "0,25")[0]
    ok, text = run.check(0, "a quarter")
    assert not ok and "not a number" in text


def test_a_choice_answer_and_tolerance():
    run = LessonRun(load_lesson("l2-image-classification"))
    assert run.check(1, 2)[0] and not run.check(1, 1)[0]
    run.go(1)
    assert not run.check(0, "30731")[0]                                  # tolerance 0: exact
    assert run.check(0, "30730")[0]


@pytest.mark.parametrize("text, line, words", [
    (GOOD.replace("example = ", "exmaple = "), 8, "unknown key 'exmaple'"),
    (GOOD.replace('lecture = 4', 'lecture = "four"'), 3, "lecture must be a whole number"),
    (GOOD.replace('"circuit"', '"circut"'), 8, "unknown example 'circut'"),
    (GOOD.replace('position = "end"', 'position = "middle"'), 10, "position must be"),
    (GOOD.replace('"gradient x"', '"gradient w"'), 14, "no node 'w'"),
    (GOOD.replace('values = { x = 1 }', 'values = { x = 1 '), 9, "column"),
    (GOOD.replace('format = 1', 'format = 2'), 1, "format must be 1"),
    (GOOD.replace('answer = "gradient x"', 'answer = "grad x"'), 14, "'value NODE'"),
    (GOOD + '\n[[step.question]]\nask = "pick"\nchoices = ["a", "b"]\nanswer = 3\n', 19, "1 to 2"),
    (GOOD.replace('example = "circuit"', 'expression = "(x + "'), 8, "does not parse"),
    (GOOD.replace('values = { x = 1 }', 'values = { q = 3 }'), 9, "'q' is computed by the graph"),
    (GOOD.replace('values = { x = 1 }', 'values = { nope = 3 }'), 9, "no node 'nope'"),
    (GOOD.replace('example = "circuit"', 'example = "two_layer_net"').replace('x = 1', 'W1 = 3')
     .replace('"gradient x"', '3'), 9, "'W1' is a tensor"),
])
def test_a_broken_lesson_is_refused_with_its_line(text, line, words):
    with pytest.raises(LessonError) as err:
        parse_lesson(text, "broken")
    msg = str(err.value)
    assert msg.startswith(f"broken.toml, line {line}:") and words in msg


def test_files_are_read_bounded_and_named(tmp_path):
    p = tmp_path / "mine.toml"
    p.write_text(GOOD)
    assert load_lesson(p).name == "mine"
    assert LessonRun(load_lesson(p)).expected(0) == -4.0
    p.write_bytes(b"\xff\xfe" + GOOD.encode())
    with pytest.raises(LessonError, match="UTF-8"):
        load_lesson(p)
    with pytest.raises(LessonError, match="no lesson named"):
        load_lesson("not-a-lesson")
    with pytest.raises(LessonError):
        load_lesson(tmp_path / "missing.toml")
