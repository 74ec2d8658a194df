"""The chain-rule view: what the current step computed, as a lecture slide writes it, with the actual numbers.

Backward steps read upstream × local = downstream, coloured like the wires (gradients red, values green).
"""
from __future__ import annotations

import html

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QLabel, QScrollArea, QVBoxLayout, QWidget

from gui import theme
from simulator import Graph, StepEvent, Trace
from simulator.core.formatting import format_scalar, in_learner_words, learner_names


NUMBERS_UP_TO = 20          # a tensor with at most this many cells is written out in the chain-rule panel


def matrix_text(v) -> str:
    """A small tensor as numbers, rows separated: [[-0.25, 0, 0.25], [0.25, ...]] with 4 significant digits."""
    a = np.asarray(v, dtype=np.float64)
    if a.ndim == 0:
        return format_scalar(float(a))
    return "[" + ", ".join(matrix_text(x) for x in a) + "]"


def fmt(v) -> str:
    a = np.asarray(v)
    return format_scalar(float(a)) if a.ndim == 0 else "tensor " + "×".join(str(n) for n in a.shape)


def _c(text: str, colour: str, bold: bool = False) -> str:
    weight = "font-weight:600;" if bold else ""
    return f'<span style="color:{colour};{weight}">{html.escape(text)}</span>'


def event_html(event: StepEvent | None, trace: Trace | None, graph: Graph, position: int) -> tuple[str, str]:
    """(title, body) rich text for the step that led to `position`."""
    if trace is None:
        return "Cannot run this graph", ""
    if event is None:
        return (trace.label(0),
                "Press <b>→</b> (or Space to play) to run the forward pass node by node, then the backward pass. "
                "Values appear in " + _c("green", theme.VALUE_HEX, True) + " above the wires, gradients in "
                + _c("red", theme.GRAD_HEX, True) + " below them.")
    title = trace.label(position)
    out = trace.output
    if event.phase == "forward":
        node = graph.node(event.node) if event.node in graph else None
        op = node.op if node else ""
        head = f"{title} — {_c(event.node, theme.INK_HEX, True)} ({html.escape(str(op))})"
        names = learner_names(graph, event.node, event.inputs) if node is not None else {}
        spec_formula = in_learner_words(node.spec.formula, names) if node is not None and node.kind == "op" else ""
        args = {}                                   # the learner's input name -> its value (x * x shows x once)
        for port, v in event.inputs.items():
            args.setdefault(names.get(port, port), f"{html.escape(names.get(port, port))} = "
                                                    f"{_c(fmt(v), theme.VALUE_HEX, True)}")
        body = (f"<p style='font-size:15pt'>{html.escape(event.node)} = {html.escape(spec_formula)}</p>"
                f"<p style='font-size:13pt'>with {', '.join(args.values())}  →  {html.escape(event.node)} = "
                f"{_c(fmt(event.outputs['out']), theme.VALUE_HEX, True)}</p>")
        return head, body
    if event.phase == "update":
        old, g, new = event.inputs["value"], event.inputs["grad"], event.outputs["value"]
        lr = trace.learning_rate
        name = html.escape(event.node)
        if np.ndim(new) == 0:
            numbers = (f"= {_c(fmt(old), theme.VALUE_HEX)} − {lr:g} × {_c(fmt(g), theme.GRAD_HEX)} = "
                       f"{_c(fmt(new), theme.VALUE_HEX, True)}")
        else:
            change = float(np.max(np.abs(new - old)))
            numbers = f"(shape {fmt(new).replace('tensor ', '')}; the largest change is {change:.3g})"
        body = (f"<p style='font-size:15pt'>{name} ← {name} − lr · d{out}/d{name}  {numbers}</p>"
                f"<p>Gradient descent: each trainable parameter takes a step of size lr = {lr:g} against its "
                f"gradient, downhill on the loss.</p>")
        return f"{title} — update {_c(event.node, theme.INK_HEX, True)}", body
    if event.kind == "seed":
        g = event.outputs["grad"]
        body = (f"<p style='font-size:15pt'>d{out}/d{out} = {_c(fmt(1.0), theme.GRAD_HEX, True)}</p>"
                "<p>The backward pass starts at the output: its gradient with respect to itself is 1"
                + ("" if np.ndim(g) == 0 else f" for every entry of the {fmt(g)} (we differentiate its sum)") + ".</p>")
        return f"{title} — start at {_c(out, theme.INK_HEX, True)}", body
    if event.kind == "accumulate":
        prev, inc, tot = event.inputs["previous"], event.inputs["incoming"], event.outputs["grad"]
        body = (f"<p style='font-size:15pt'>d{out}/d{html.escape(event.node)} += {_c(fmt(inc), theme.GRAD_HEX, True)}"
                f"  :  {_c(fmt(prev), theme.GRAD_HEX)} + {_c(fmt(inc), theme.GRAD_HEX)} = "
                f"{_c(fmt(tot), theme.GRAD_HEX, True)}</p>"
                f"<p>{html.escape(event.node)} feeds several nodes, so the gradients arriving along each wire add up "
                f"(multivariate chain rule).</p>")
        return f"{title} — accumulate into {_c(event.node, theme.INK_HEX, True)}", body
    # a backward op step: upstream × local = downstream, one line per input
    node = graph.node(event.node) if event.node in graph else None
    spec = node.spec if node is not None and node.kind == "op" else None
    up = event.inputs["upstream"]
    rows = []
    for port, down in event.outputs.items():
        src = event.sources.get(port, port)
        local_formula = (in_learner_words(spec.local_grad.get(port, ""), learner_names(graph, event.node, event.sources))
                         if spec else "")
        lhs = f"d{out}/d{src}"
        chain = f"{_c(f'd{out}/d{event.node}', theme.GRAD_HEX)} · {_c(f'∂{event.node}/∂{src}', theme.LOCAL_HEX)}"
        if port in event.local:
            numbers = (f"{_c(fmt(up), theme.GRAD_HEX, True)} × {_c(fmt(event.local[port]), theme.LOCAL_HEX, True)}"
                       f" = {_c(fmt(down), theme.GRAD_HEX, True)}")
            rows.append(f"<tr><td style='padding-right:10px'><b>{html.escape(lhs)}</b></td><td>= {chain}</td>"
                        f"<td style='padding-left:10px'>= {numbers}</td>"
                        f"<td style='padding-left:14px;color:{theme.MUTED_HEX}'>local: ∂{html.escape(event.node)}/"
                        f"∂{html.escape(src)} = {html.escape(local_formula)}</td></tr>")
        else:
            # Tensors: the matrix form of the chain rule, with the wire's shape (the numbers are in the inspector).
            rows.append(f"<tr><td style='padding-right:10px'><b>{html.escape(lhs)}</b> "
                        f"{_c(fmt(down).replace('tensor ', ''), theme.GRAD_HEX, True)}</td>"
                        f"<td>= {chain}</td><td style='padding-left:10px;color:{theme.LOCAL_HEX}'>"
                        f"{html.escape(local_formula)}</td>"
                        f"<td style='padding-left:14px;color:{theme.MUTED_HEX}'>{html.escape(port)} ← "
                        f"{html.escape(src)}</td></tr>")
    size = "14pt" if event.local else "12pt"
    # small tensors: the numbers themselves, upstream and downstream (the SVM's dscores, a bias gradient)
    numbers = []
    if not event.local:
        if 0 < np.size(up) <= NUMBERS_UP_TO:
            numbers.append(f"{_c(f'd{out}/d{event.node}', theme.GRAD_HEX)} = {_c(matrix_text(up), theme.GRAD_HEX)}")
        for port, down in event.outputs.items():
            if 0 < np.size(down) <= NUMBERS_UP_TO:
                src = event.sources.get(port, port)
                numbers.append(f"{_c(f'd{out}/d{src}', theme.GRAD_HEX, True)} = "
                               f"{_c(matrix_text(down), theme.GRAD_HEX, True)}")
    extra = "".join(f"<p style='font-family:monospace;font-size:10pt'>{n}</p>" for n in numbers)
    body = (f"<p>upstream {_c('×', theme.INK_HEX)} local = downstream</p>"
            f"<table style='font-size:{size}'>{''.join(rows)}</table>{extra}")
    return f"{title} — backprop through {_c(event.node, theme.INK_HEX, True)} ({html.escape(node.op if node else '')})", body


class ChainRulePanel(QFrame):
    """Shows the current step: a title line and the formula with its numbers."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("ChainRulePanel")
        self.title = QLabel(self)
        self.title.setObjectName("ChainRuleTitle")
        self.title.setTextFormat(Qt.RichText)
        self.body = QLabel(self)
        self.body.setTextFormat(Qt.RichText)
        self.body.setWordWrap(True)
        self.body.setTextInteractionFlags(Qt.TextSelectableByMouse)
        # a matrix step can be taller than the panel: its body scrolls rather than being cut off
        self.scroll = QScrollArea(self)
        self.scroll.setWidget(self.body)
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.scroll.viewport().setAutoFillBackground(False)
        self.body.setAutoFillBackground(False)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(14, 8, 14, 10)
        lay.setSpacing(2)
        lay.addWidget(self.title)
        lay.addWidget(self.scroll, 1)
        self.setMinimumHeight(130)

    def show_event(self, event: StepEvent | None, trace: Trace | None, graph: Graph, position: int,
                   error: str | None = None) -> None:
        if trace is None:
            self.title.setText(_c("This graph cannot run yet", theme.GRAD_HEX, True))
            self.body.setText(html.escape(error or ""))
            return
        title, body = event_html(event, trace, graph, position)
        self.title.setText(title)
        self.body.setText(body)
