"""Predict, then reveal: the stepper's quiz (no Qt).

With the quiz on, each backward step that sends gradients along wires (an op's step, and the accumulation where a
value feeds several nodes) is a question before it is shown: the learner types the downstream gradient(s), the quiz
checks them within a tolerance and explains a wrong answer with the chain rule's actual numbers (upstream × local =
downstream; for tensors, which cells are wrong), and keeps a score for the graph. Stepping past an unanswered
question is the view's business (``Quiz.barrier``): the quiz only says where the questions are.

    quiz = Quiz(trace, graph)
    q = quiz.question_at(position)          # the question guarding position -> position + 1, or None
    fb = quiz.answer(q, {"x": "-4"})         # Feedback: correct?, the wrong cells per port, an explanation
    quiz.reveal(q)                           # give up: the step may be shown, the question counts as missed
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from simulator.core.errors import ShapeError, ValueInputError
from simulator.core.formatting import format_scalar, in_learner_words, learner_names

__all__ = ["Feedback", "Question", "Quiz", "MAX_QUIZ_CELLS", "QUIZ_RTOL"]

MAX_QUIZ_CELLS = 36          # a port with more cells than this is not asked (typing 37 numbers teaches nothing)
QUIZ_RTOL = 0.01             # an answer within 1% (or 1% of the port's largest magnitude, for cells near 0) is right


@dataclass(frozen=True)
class Blank:
    """One gradient the learner is asked for: d(out)/d(source) along one wire (port) of the step's node."""

    port: str
    source: str                  # the learner's node name at the other end of the wire
    expected: np.ndarray
    local: np.ndarray | None     # d node / d source on scalars; None for tensors
    local_formula: str           # in the learner's names

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.expected.shape)


@dataclass(frozen=True)
class Question:
    """The step events[index] (shown by moving from position index to index + 1), asked before it is shown."""

    index: int
    kind: str                    # "op" or "accumulate"
    node: str
    op: str
    output: str
    upstream: np.ndarray | None  # d out / d node (op steps)
    blanks: tuple[Blank, ...]
    previous: np.ndarray | None = None   # accumulate: the gradient so far and the one arriving
    incoming: np.ndarray | None = None

    @property
    def position(self) -> int:
        return self.index

    @property
    def prompt(self) -> str:
        out = self.output
        if self.kind == "accumulate":
            return (f"{self.node} feeds several nodes and a second gradient has arrived. What is d{out}/d{self.node} "
                    f"now?")
        wires = ", ".join(f"d{out}/d{b.source}" for b in self.blanks)
        return f"Backprop through {self.node} ({self.op}): what {'is' if len(self.blanks) == 1 else 'are'} {wires}?"


@dataclass(frozen=True)
class Feedback:
    correct: bool
    wrong: dict[str, np.ndarray]          # port -> boolean mask of the wrong cells (all False when right)
    text: str


def _fmt(a: Any) -> str:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 0:
        return format_scalar(float(a))
    return "[" + ", ".join(_fmt(v) for v in a) + "]"


def _close(answer: np.ndarray, expected: np.ndarray) -> np.ndarray:
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    return np.abs(answer - expected) <= QUIZ_RTOL * np.maximum(np.abs(expected), scale) + 1e-9


def parse_answer(text: Any, shape: tuple[int, ...]) -> np.ndarray:
    """A typed answer as an array of ``shape``: a number ('-4', '1e-3', '3/4'), or an array-like of numbers for a
    tensor (cells typed one by one arrive as nested lists). ValueInputError names what could not be read."""
    def number(v: Any) -> float:
        if isinstance(v, str):
            t = v.strip().replace("−", "-")
            if t.count(",") == 1 and "." not in t:          # a decimal comma: '0,25'
                t = t.replace(",", ".")
            if not t:
                raise ValueInputError("type a number in every box")
            try:
                if "/" in t:
                    a, b = t.split("/", 1)
                    return float(a) / float(b)
                return float(t)
            except (ValueError, ZeroDivisionError):
                raise ValueInputError(f"{v!r} is not a number") from None
        try:
            return float(v)
        except (TypeError, ValueError):
            raise ValueInputError(f"{v!r} is not a number") from None

    if isinstance(text, np.ndarray) and text.dtype.kind in "fiu":
        arr = text.astype(np.float64)
    else:
        arr = np.vectorize(number, otypes=[np.float64])(np.asarray(text, dtype=object)) if np.ndim(text) else \
            np.asarray(number(text))
    if arr.shape != tuple(shape):
        if arr.size == int(np.prod(shape)):
            arr = arr.reshape(shape)
        else:
            raise ShapeError(f"expected {int(np.prod(shape))} number{'s' if np.prod(shape) != 1 else ''} for a "
                             f"gradient of shape {tuple(shape)}, got {arr.size}")
    if not np.all(np.isfinite(arr)):
        raise ValueInputError("the answer must be finite numbers")
    return arr


class Quiz:
    """The questions of one trace, the answers so far and the score (right at the first try / asked)."""

    def __init__(self, trace: Any, graph: Any):
        self.trace = trace
        self.questions: dict[int, Question] = {}
        self.answered: dict[int, bool] = {}      # index -> right (at any try) / revealed
        self.first_try: dict[int, bool] = {}     # index -> the first answer was right
        out = trace.output
        for i, ev in enumerate(trace.events):
            q = self._question(i, ev, graph, out)
            if q is not None:
                self.questions[i] = q

    @staticmethod
    def _question(i: int, ev: Any, graph: Any, out: str) -> Question | None:
        if ev.phase != "backward" or ev.kind not in ("op", "accumulate"):
            return None
        if ev.kind == "accumulate":
            total = np.asarray(ev.outputs["grad"], dtype=np.float64)
            if total.size > MAX_QUIZ_CELLS:
                return None
            blank = Blank("grad", ev.node, total, None, "previous + incoming")
            return Question(i, "accumulate", ev.node, "", out, None, (blank,),
                            np.asarray(ev.inputs["previous"], np.float64), np.asarray(ev.inputs["incoming"], np.float64))
        if not ev.outputs or ev.node not in graph:
            return None
        node = graph.node(ev.node)
        spec = node.spec if node.kind == "op" else None
        names = learner_names(graph, ev.node, ev.sources)
        blanks = []
        for port, down in ev.outputs.items():
            down = np.asarray(down, dtype=np.float64)
            if down.size > MAX_QUIZ_CELLS:
                return None
            local = ev.local.get(port)
            formula = in_learner_words(spec.local_grad.get(port, ""), names) if spec is not None else ""
            blanks.append(Blank(port, ev.sources.get(port, port), down,
                                None if local is None else np.asarray(local, np.float64), formula))
        return Question(i, "op", ev.node, node.op if spec is not None else "", out,
                        np.asarray(ev.inputs["upstream"], np.float64), tuple(blanks))

    # ---- where the questions are ------------------------------------------------------------------------------
    def question_at(self, position: int) -> Question | None:
        """The question guarding the step from ``position`` to ``position + 1`` (None: that step is not asked)."""
        return self.questions.get(int(position))

    def pending(self, position: int) -> Question | None:
        """The question at ``position`` if it has not been answered right or revealed yet."""
        q = self.question_at(position)
        return q if q is not None and q.index not in self.answered else None

    def barrier(self, current: int, target: int) -> int:
        """How far forward from ``current`` towards ``target`` the learner may go: up to the first unanswered
        question (its step is not shown until it is answered or revealed)."""
        for k in range(int(current), int(target)):
            if self.pending(k) is not None:
                return k
        return int(target)

    # ---- answering --------------------------------------------------------------------------------------------
    def answer(self, question: Question, answers: Mapping[str, Any]) -> Feedback:
        """Check typed answers ({port: text or cells}); a wrong answer is explained with the step's numbers."""
        wrong: dict[str, np.ndarray] = {}
        parsed: dict[str, np.ndarray] = {}
        for b in question.blanks:
            if b.port not in answers:
                raise ValueInputError(f"no answer for d{question.output}/d{b.source}")
            a = parse_answer(answers[b.port], b.shape)
            parsed[b.port] = a
            wrong[b.port] = ~_close(a, b.expected)
        correct = not any(m.any() for m in wrong.values())
        self.first_try.setdefault(question.index, correct)
        if correct:
            self.answered[question.index] = True
            text = "Right. " + self._rule(question)
        else:
            text = " ".join(self._explain(question, b, parsed[b.port], wrong[b.port]) for b in question.blanks
                            if wrong[b.port].any())
        return Feedback(correct, wrong, text)

    def reveal(self, question: Question) -> str:
        """Give up on a question: it counts as missed (unless answered right before) and its step may be shown."""
        self.first_try.setdefault(question.index, False)
        self.answered.setdefault(question.index, False)
        return self._rule(question)

    @property
    def score(self) -> tuple[int, int]:
        """(right at the first try, asked so far)."""
        return sum(self.first_try.values()), len(self.first_try)

    # ---- explanations -----------------------------------------------------------------------------------------
    def _rule(self, q: Question) -> str:
        out = q.output
        if q.kind == "accumulate":
            return (f"d{out}/d{q.node} = {_fmt(q.previous)} + {_fmt(q.incoming)} = {_fmt(q.blanks[0].expected)}: the "
                    f"gradients arriving along each wire add up.")
        parts = []
        for b in q.blanks:
            if b.local is not None:
                parts.append(f"d{out}/d{b.source} = upstream × local = {_fmt(q.upstream)} × {_fmt(b.local)} = "
                             f"{_fmt(b.expected)} (local ∂{q.node}/∂{b.source} = {b.local_formula}).")
            else:
                parts.append(f"d{out}/d{b.source} = {b.local_formula or 'the op backward'} with the upstream "
                             f"d{out}/d{q.node} = {_fmt(q.upstream)}: {_fmt(b.expected)}.")
        return " ".join(parts)

    def _explain(self, q: Question, b: Blank, a: np.ndarray, wrong: np.ndarray) -> str:
        out = q.output
        e = b.expected
        if q.kind == "accumulate":
            if np.all(_close(a, q.incoming)) or np.all(_close(a, q.previous)):
                return (f"That is only one of the two gradients reaching {q.node}. {self._rule(q)}")
            return f"Not quite. {self._rule(q)}"
        if e.ndim == 0:
            if np.all(_close(-a, e)) and abs(float(e)) > 1e-12:
                hint = "The sign is flipped."
            elif b.local is not None and np.all(_close(a, q.upstream)) and not np.all(_close(b.local, np.ones(()))):
                hint = (f"That is the upstream gradient alone: multiply it by the local gradient ∂{q.node}/∂{b.source} = "
                        f"{b.local_formula} = {_fmt(b.local)}.")
            elif b.local is not None and np.all(_close(a, b.local)) and not np.all(_close(q.upstream, np.ones(()))):
                hint = (f"That is the local gradient alone: multiply it by the upstream gradient d{out}/d{q.node} = "
                        f"{_fmt(q.upstream)}.")
            else:
                hint = f"You typed {_fmt(a)} for d{out}/d{b.source}."
            if b.local is not None:
                return (f"{hint} Upstream × local: {_fmt(q.upstream)} × {_fmt(b.local)} = {_fmt(e)}, where "
                        f"∂{q.node}/∂{b.source} = {b.local_formula}.")
            return f"{hint} {self._rule(q)}"
        cells = np.argwhere(wrong)
        first = tuple(int(i) for i in cells[0])
        where = ", ".join(map(str, first))
        sign = " (every wrong cell has its sign flipped)" if np.all(_close(-a[wrong], e[wrong])) else ""
        return (f"{len(cells)} of {e.size} cells of d{out}/d{b.source} are off{sign}; cell [{where}]: you typed "
                f"{_fmt(a[first])}, the chain rule gives {_fmt(e[first])}. The rule: d{out}/d{b.source} = "
                f"{b.local_formula or 'the op backward'} with upstream d{out}/d{q.node}.")
