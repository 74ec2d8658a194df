"""Lessons as files (no Qt): a teacher writes a lesson in TOML, no Python; the app loads it, sets each step's state
and checks the learner's answers.

A lesson is a versioned TOML file: a header (``format``, ``title``, ``lecture``, ``summary``) and ``[[step]]`` tables,
each with its ``text`` and the state it sets, and ``[[step.question]]`` tables with their checks:

    format = 1
    title = "Backprop on a circuit"
    lecture = 4
    summary = "Gradients flow backwards through add and multiply."

    [[step]]
    text = "f = (x + y) z with x = -2, y = 5, z = -4. Step through the forward pass."
    tab = "Backprop"                 # which tab to show
    example = "circuit"              # or: expression = "(x + y) * z"
    values = { x = -2, y = 5 }       # the inputs' values
    position = "forward"             # "start", "forward" (the forward pass done), "end" or a step number
    quiz = false                     # the stepper's quiz on or off

    [[step.question]]
    ask = "What is df/dx?"
    answer = "gradient x"            # a number, or computed from the step's graph: "value f", "gradient x"
    tolerance = 0.01                 # relative (default 1%)
    explain = "df/dx = df/dq · dq/dx = z · 1 = -4."

    [[step.question]]
    ask = "Which gate distributes the gradient unchanged?"
    choices = ["add", "multiply", "max"]
    answer = 1                       # the right choice, counted from 1

A file that is not valid TOML, or asks for something the app does not know, is refused with its line:
``LessonError("intro.toml, line 12: unknown key 'exmaple' in a step (known: ...)")``.
"""
from __future__ import annotations

import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from simulator.core.errors import StudioError
from simulator.core.files import read_bounded
from simulator.labs import TAB_TITLES

__all__ = ["LESSON_DIR", "LESSON_FORMAT", "Lesson", "LessonError", "LessonRun", "LessonStep", "Question", "TABS",
           "available_lessons", "load_lesson", "parse_lesson"]

LESSON_FORMAT = 1
LESSON_DIR = Path(__file__).with_name("lesson_files")
MAX_LESSON_BYTES = 256 * 1024
TABS = TAB_TITLES                      # the window's tabs (simulator/labs/__init__.py)
POSITIONS = ("start", "forward", "end")
_HEADER_KEYS = {"format", "title", "lecture", "summary", "step"}
_STEP_KEYS = {"text", "tab", "example", "expression", "values", "position", "quiz", "question"}
_QUESTION_KEYS = {"ask", "answer", "tolerance", "explain", "choices"}


class LessonError(StudioError):
    """A lesson file that cannot be used: the message names the file and the line."""


@dataclass(frozen=True)
class Question:
    ask: str
    answer: float | int | str          # a number, a computed answer ("value f", "gradient x") or a choice (1-based)
    choices: tuple[str, ...] = ()
    tolerance: float = 0.01
    explain: str = ""
    line: int = 0

    @property
    def computed(self) -> bool:
        return isinstance(self.answer, str)


@dataclass(frozen=True)
class LessonStep:
    text: str
    tab: str | None = None
    example: str | None = None
    expression: str | None = None
    values: dict[str, float] = field(default_factory=dict)
    position: str | int | None = None
    quiz: bool | None = None
    questions: tuple[Question, ...] = ()
    line: int = 0

    @property
    def has_graph(self) -> bool:
        return self.example is not None or self.expression is not None


@dataclass(frozen=True)
class Lesson:
    name: str                           # the file's stem: what --lesson takes
    title: str
    lecture: int
    summary: str
    steps: tuple[LessonStep, ...]
    path: str = ""


# ================================================================================================== parsing

def _table_lines(text: str) -> tuple[list[int], list[list[int]]]:
    """1-based line numbers of each [[step]] header, and of each [[step.question]] header within its step."""
    steps: list[int] = []
    questions: list[list[int]] = []
    for i, line in enumerate(text.splitlines(), start=1):
        s = line.strip()
        if re.fullmatch(r"\[\[\s*step\s*\]\]\s*(#.*)?", s):
            steps.append(i)
            questions.append([])
        elif re.fullmatch(r"\[\[\s*step\s*\.\s*question\s*\]\]\s*(#.*)?", s) and questions:
            questions[-1].append(i)
    return steps, questions


def _key_line(text: str, key: str, start: int) -> int:
    """The first line at or after ``start`` that sets ``key`` (for messages); ``start`` if none is found."""
    lines = text.splitlines()
    for i in range(max(start, 1), len(lines) + 1):
        if re.match(rf"\s*{re.escape(key)}\s*=", lines[i - 1]):
            return i
    return start


def parse_lesson(text: str, name: str = "lesson", path: str = "") -> Lesson:
    """A Lesson from TOML text; LessonError naming ``name`` and the line for anything wrong."""
    where = f"{name}.toml" if not path else os.path.basename(path)

    def fail(line: int, msg: str) -> LessonError:
        return LessonError(f"{where}, line {line}: {msg}" if line else f"{where}: {msg}")

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        reason = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        raise (fail(int(m.group(1)), f"{reason} (column {m.group(2)})") if m else fail(0, str(exc))) from None
    step_lines, question_lines = _table_lines(text)

    def check_keys(table: dict, known: set[str], what: str, line: int) -> None:
        for key in table:
            if key not in known:
                raise fail(_key_line(text, key, line), f"unknown key {key!r} in {what} (known: "
                                                       f"{', '.join(sorted(known - {'step', 'question'}))})")

    check_keys(data, _HEADER_KEYS, "the header", 1)
    fmt = data.get("format")
    if fmt != LESSON_FORMAT:
        raise fail(_key_line(text, "format", 1), f"format must be {LESSON_FORMAT} (this app's lesson format), got "
                                                  f"{fmt!r}")
    title = data.get("title")
    if not isinstance(title, str) or not title.strip():
        raise fail(_key_line(text, "title", 1), "the lesson needs a title (title = \"...\")")
    lecture = data.get("lecture", 0)
    if not isinstance(lecture, int) or isinstance(lecture, bool) or not 1 <= lecture <= 20:
        raise fail(_key_line(text, "lecture", 1), f"lecture must be a whole number from 1 to 20, got {lecture!r}")
    summary = data.get("summary", "")
    if not isinstance(summary, str):
        raise fail(_key_line(text, "summary", 1), "summary must be text")
    raw_steps = data.get("step")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise fail(0, "a lesson needs at least one [[step]]")
    steps = []
    for k, raw in enumerate(raw_steps):
        line = step_lines[k] if k < len(step_lines) else 0
        steps.append(_parse_step(raw, k, line, question_lines[k] if k < len(question_lines) else [], text, fail,
                                 check_keys))
    return Lesson(name, title.strip(), lecture, summary.strip(), tuple(steps), path)


def _parse_step(raw: Any, k: int, line: int, qlines: list[int], text: str, fail: Any, check_keys: Any) -> LessonStep:
    from simulator.graphs.examples import EXAMPLES

    if not isinstance(raw, dict):
        raise fail(line, f"step {k + 1} must be a table")
    check_keys(raw, _STEP_KEYS, f"step {k + 1}", line)
    body = raw.get("text")
    if not isinstance(body, str) or not body.strip():
        raise fail(line, f"step {k + 1} needs its text (text = \"...\")")

    def key_line(key: str) -> int:
        return _key_line(text, key, line)

    tab = raw.get("tab")
    if tab is not None and tab not in TABS:
        raise fail(key_line("tab"), f"unknown tab {tab!r} (tabs: {', '.join(TABS)})")
    example, expression = raw.get("example"), raw.get("expression")
    if example is not None and example not in EXAMPLES:
        raise fail(key_line("example"), f"unknown example {example!r} (examples: {', '.join(EXAMPLES)})")
    if example is not None and expression is not None:
        raise fail(key_line("expression"), "a step sets an example or an expression, not both")
    if expression is not None:
        if not isinstance(expression, str):
            raise fail(key_line("expression"), "expression must be text")
        from simulator.graphs.expression import parse_expression
        try:
            parse_expression(expression)
        except StudioError as exc:
            raise fail(key_line("expression"), f"the expression does not parse: {exc}") from None
    values = raw.get("values", {})
    if not isinstance(values, dict) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                               and math.isfinite(v) for v in values.values()):
        raise fail(key_line("values"), "values must be a table of finite numbers, e.g. values = { x = -2, y = 5 }")
    if values and example is None and expression is None:
        raise fail(key_line("values"), "values need a graph: set example or expression in the same step")
    position = raw.get("position")
    if position is not None and not ((isinstance(position, int) and not isinstance(position, bool) and position >= 0)
                                     or position in POSITIONS):
        raise fail(key_line("position"), f"position must be one of {', '.join(POSITIONS)} or a step number >= 0, "
                                         f"got {position!r}")
    quiz = raw.get("quiz")
    if quiz is not None and not isinstance(quiz, bool):
        raise fail(key_line("quiz"), "quiz must be true or false")
    raw_questions = raw.get("question", [])
    if not isinstance(raw_questions, list):
        raise fail(line, "questions are [[step.question]] tables")
    questions = []
    for j, q in enumerate(raw_questions):
        qline = qlines[j] if j < len(qlines) else line
        questions.append(_parse_question(q, k, j, qline, text, fail, check_keys,
                                         example is not None or expression is not None))
    step = LessonStep(body.strip(), tab, example, expression, {str(n): float(v) for n, v in values.items()}, position,
                      quiz, tuple(questions), line)
    if step.has_graph:
        # the names in values must be scalar inputs of the graph, and computed answers must name its nodes
        bare = step_graph(LessonStep(step.text, example=step.example, expression=step.expression))
        for n in step.values:
            if n not in bare:
                raise fail(key_line("values"), f"values: the graph has no node {n!r}")
            node = bare.node(n)
            if node.kind == "op":
                raise fail(key_line("values"), f"values: {n!r} is computed by the graph (an op node); only its "
                                               f"inputs take values")
            if np.ndim(node.value) != 0:
                raise fail(key_line("values"), f"values: {n!r} is a tensor of shape {np.shape(node.value)}; a lesson "
                                               f"sets scalar inputs only")
        try:
            graph = step_graph(step)
        except StudioError as exc:
            raise fail(key_line("values"), str(exc)) from None
        for q in step.questions:
            if q.computed:
                try:
                    answer_of(q, graph)
                except StudioError as exc:
                    raise fail(_key_line(text, "answer", q.line), str(exc)) from None
    return step


def _parse_question(q: Any, k: int, j: int, line: int, text: str, fail: Any, check_keys: Any,
                    has_graph: bool) -> Question:
    what = f"question {j + 1} of step {k + 1}"
    if not isinstance(q, dict):
        raise fail(line, f"{what} must be a table")
    check_keys(q, _QUESTION_KEYS, what, line)
    ask = q.get("ask")
    if not isinstance(ask, str) or not ask.strip():
        raise fail(line, f"{what} needs its question (ask = \"...\")")
    if "answer" not in q:
        raise fail(line, f"{what} needs an answer")
    answer = q["answer"]
    choices = q.get("choices", [])
    if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
        raise fail(_key_line(text, "choices", line), f"{what}: choices must be a list of texts")
    if choices:
        if not isinstance(answer, int) or isinstance(answer, bool) or not 1 <= answer <= len(choices):
            raise fail(_key_line(text, "answer", line), f"{what}: the answer is the right choice's number, 1 to "
                                                         f"{len(choices)}, got {answer!r}")
    elif isinstance(answer, str):
        if not re.fullmatch(r"(value|gradient)\s+\S+", answer.strip()):
            raise fail(_key_line(text, "answer", line), f"{what}: an answer is a number, or 'value NODE' / "
                                                         f"'gradient NODE' computed from the step's graph, got "
                                                         f"{answer!r}")
        if not has_graph:
            raise fail(_key_line(text, "answer", line), f"{what}: {answer!r} needs a graph (example or expression) "
                                                         f"in its step")
    elif not isinstance(answer, (int, float)) or isinstance(answer, bool) or not math.isfinite(answer):
        raise fail(_key_line(text, "answer", line), f"{what}: the answer must be a finite number, got {answer!r}")
    tol = q.get("tolerance", 0.01)
    if not isinstance(tol, (int, float)) or isinstance(tol, bool) or not 0 <= tol < 1:
        raise fail(_key_line(text, "tolerance", line), f"{what}: tolerance is relative, from 0 to below 1, got "
                                                        f"{tol!r}")
    explain = q.get("explain", "")
    if not isinstance(explain, str):
        raise fail(_key_line(text, "explain", line), f"{what}: explain must be text")
    return Question(ask.strip(), answer.strip() if isinstance(answer, str) else answer, tuple(choices), float(tol),
                    explain.strip(), line)


def load_lesson(name_or_path: str | os.PathLike) -> Lesson:
    """A shipped lesson by name ('backprop-circuit') or a lesson file by path; LessonError if it cannot be used."""
    p = Path(name_or_path)
    if p.suffix != ".toml" and os.sep not in str(name_or_path):
        p = LESSON_DIR / f"{name_or_path}.toml"
        if not p.is_file():
            raise LessonError(f"no lesson named {str(name_or_path)!r} (lessons: "
                              f"{', '.join(l.name for l in available_lessons())})")
    try:
        data = read_bounded(p, MAX_LESSON_BYTES)
    except StudioError as exc:
        raise LessonError(f"{p.name}: {exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LessonError(f"{p.name}: not UTF-8 text (byte {exc.start})") from None
    return parse_lesson(text, p.stem, str(p))


def available_lessons(folder: str | os.PathLike | None = None) -> list[Lesson]:
    """The shipped lessons (or a folder's), by lecture then title; a broken file is skipped (load it to see why)."""
    out = []
    for p in sorted(Path(folder or LESSON_DIR).glob("*.toml")):
        try:
            out.append(load_lesson(p))
        except LessonError:
            continue
    return sorted(out, key=lambda l: (l.lecture, l.title))


# ================================================================================================== running

def step_graph(step: LessonStep) -> Any:
    """The step's graph (its example or expression with its values), or None."""
    from simulator.graphs.examples import load_example
    from simulator.graphs.graph import Graph

    if step.example is not None:
        g = load_example(step.example)
    elif step.expression is not None:
        g = Graph.from_expression(step.expression)
    else:
        return None
    for name, v in step.values.items():
        g.set_value(name, v)
    return g


def answer_of(q: Question, graph: Any) -> float:
    """A question's right answer: its number, or the value/gradient it names, computed from the step's graph."""
    if not q.computed:
        return float(q.answer)
    kind, node = q.answer.split(None, 1)
    if graph is None:
        raise LessonError(f"{q.answer!r} needs a graph")
    if node not in graph:
        raise LessonError(f"{q.answer!r}: the graph has no node {node!r}")
    from simulator.engine.trace import Trace
    trace = Trace(graph)
    state = trace.state_at(len(trace))
    arr = np.asarray(state.values[node] if kind == "value" else state.grads.get(node, 0.0), dtype=np.float64)
    if arr.ndim:
        raise LessonError(f"{q.answer!r} is a tensor of shape {arr.shape}: a question asks for one number")
    return float(arr)


class LessonRun:
    """A learner going through one lesson: the current step, the answers so far (right or not), progress."""

    def __init__(self, lesson: Lesson, done: int = 0):
        self.lesson = lesson
        self.index = min(max(int(done), 0), len(lesson.steps) - 1)
        self.right: dict[tuple[int, int], bool] = {}

    @property
    def step(self) -> LessonStep:
        return self.lesson.steps[self.index]

    @property
    def finished(self) -> bool:
        return self.index == len(self.lesson.steps) - 1 and self.step_answered

    @property
    def step_answered(self) -> bool:
        return all(self.right.get((self.index, j)) for j in range(len(self.step.questions)))

    def go(self, index: int) -> None:
        self.index = min(max(int(index), 0), len(self.lesson.steps) - 1)

    def expected(self, j: int) -> float | int:
        q = self.step.questions[j]
        return q.answer if q.choices else answer_of(q, step_graph(self.step))

    def check(self, j: int, answer: Any) -> tuple[bool, str]:
        """Check the learner's answer to question j of the current step: (right?, what to show)."""
        q = self.step.questions[j]
        if q.choices:
            try:
                pick = int(answer)
            except (TypeError, ValueError):
                return False, "pick one of the choices"
            ok = pick == q.answer
            said = f"the answer is “{q.choices[q.answer - 1]}”"
        else:
            from simulator.engine.quiz import parse_answer          # one way of reading a typed number
            try:
                x = float(parse_answer(answer, ()))
            except StudioError as exc:
                return False, str(exc)
            want = self.expected(j)
            ok = math.isfinite(x) and abs(x - want) <= q.tolerance * max(abs(want), 1e-12) + 1e-12
            said = f"the answer is {want:.4g}"
        self.right[(self.index, j)] = self.right.get((self.index, j), False) or ok
        return ok, ("Right. " if ok else f"Not quite: {said}. ") + q.explain
