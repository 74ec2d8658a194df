"""Expressions to graphs: "(x + y) * z" -> Graph, through Python's ast (never eval or exec).

Names become inputs (a name used twice is one input feeding two nodes), numbers become constants, operators and
calls become op nodes. Anything else is refused with the offending text and its column.
"""
from __future__ import annotations

import ast
import difflib
import math
from typing import Any

from simulator.core.errors import ExpressionError, GraphError, ValueInputError
from simulator.graphs.graph import Graph, paused_gc
from simulator.ops import REGISTRY

MAX_LENGTH = 5_000
MAX_OPS = 500

_BINOPS = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "div", ast.MatMult: "matmul"}
# Operators Python has and the graph has not, in the learner's own symbols, with what to write instead.
_REFUSED_BINOPS = {ast.BitXor: ("^", "use ** for powers, as in x**2"), ast.Mod: ("%", "there is no remainder op"),
                   ast.FloorDiv: ("//", "use / for division"), ast.BitAnd: ("&", "there is no bitwise and"),
                   ast.BitOr: ("|", "there is no bitwise or"), ast.LShift: ("<<", "there are no bit shifts"),
                   ast.RShift: (">>", "there are no bit shifts")}
# Friendly spellings accepted in calls, beside every registered op name.
_ALIASES = {"swish": "silu", "maximum": "max", "minimum": "min", "ln": "log", "lrelu": "leaky_relu"}


def _column(node: ast.AST) -> int:
    return getattr(node, "col_offset", 0) + 1


class _Builder:
    def __init__(self, text: str, tree: ast.Expression):
        self.text = text
        self.graph = Graph()
        self.names = sorted({n.id for n in ast.walk(tree) if isinstance(n, ast.Name)})
        self.reserved = set(self.names)
        self.op_count = 0
        self.const_count = 0
        self.op_nodes: list[str] = []
        # Op nodes get their lecture-style names (q1, q2, ..., f) as they are made, which needs the number of ops
        # up front: counted on the tree (renaming afterwards rebuilt every map of the graph once more).
        self.expected_ops = _count_ops(tree.body)
        self.taken = set(self.reserved)   # learner names; constants (c, c1, ...) can never look like q1 or f

    def fail(self, node: ast.AST, why: str) -> ExpressionError:
        segment = ast.get_source_segment(self.text, node) or ""
        if len(segment) > 40:
            segment = segment[:37] + "..."
        col = _column(node)
        return ExpressionError(f"{why}: '{segment}' at column {col}", segment, col)

    def op(self, node: ast.AST, op: str, args: list[str], attrs: dict[str, Any] | None = None) -> str:
        self.op_count += 1
        if self.op_count > MAX_OPS:
            raise self.fail(node, f"the expression has more than {MAX_OPS} operations")
        spec = REGISTRY[op]
        if len(args) != len(spec.inputs):
            raise self.fail(node, f"{op} takes {len(spec.inputs)} input{'s' * (len(spec.inputs) != 1)} "
                                  f"({', '.join(spec.inputs)}), got {len(args)}")
        try:
            nid = self.graph.add_op(op, attrs, name=self.op_name())
            for port, src in zip(spec.inputs, args):
                self.graph.connect(src, nid, port, check_shapes=False)
        except (GraphError, ValueInputError) as exc:
            raise self.fail(node, str(exc)) from None
        self.op_nodes.append(nid)
        return nid

    def op_name(self) -> str:
        """The name the op being made gets: as _rename_ops would name it, given the expected number of ops."""
        i, total = self.op_count, self.expected_ops
        want = "f" if i == total else ("q" if total == 2 else f"q{i}")
        if i > total:   # more ops than counted (never expected): a placeholder, renamed at the end
            want = f"_op{i}"
        new, k = want, 1
        while new in self.taken:
            new = f"{want}_{k}"
            k += 1
        self.taken.add(new)
        return new

    def const(self, value: float) -> str:
        # c, c1, c2, ...: counted here rather than searched for, so many constants stay linear
        while True:
            name = "c" if self.const_count == 0 else f"c{self.const_count}"
            self.const_count += 1
            if name not in self.reserved and name not in self.graph:
                return self.graph.add_const(value, name=name)

    def visit(self, node: ast.AST) -> str:
        if isinstance(node, ast.Name):
            if node.id.startswith("__"):
                raise self.fail(node, "names starting with __ are not allowed")
            if node.id not in self.graph:
                try:
                    # 1 keeps log, sqrt and division defined until the learner sets values
                    self.graph.add_input(node.id, 1.0)
                except GraphError:
                    raise self.fail(node, "a name must use ASCII letters, digits and _ (at most 64)") from None
            return node.id
        if isinstance(node, ast.Constant):
            return self.const(self.number(node))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            if isinstance(node.operand, ast.Constant):
                v = self.number(node.operand)
                return self.const(-v if isinstance(node.op, ast.USub) else v)
            inner = self.visit(node.operand)
            return self.op(node, "neg", [inner]) if isinstance(node.op, ast.USub) else inner
        if isinstance(node, ast.BinOp):
            if isinstance(node.op, ast.Pow):
                exponent = self.constant_value(node.right)
                if exponent is None:
                    raise self.fail(node.right, "the exponent of ** must be a number")
                return self.op(node, "pow", [self.visit(node.left)], {"p": exponent})
            op = _BINOPS.get(type(node.op))
            if op is None:
                symbol, hint = _REFUSED_BINOPS.get(type(node.op), (type(node.op).__name__, "it is not an op"))
                raise self.fail(node, f"the operator {symbol} is not supported ({hint})")
            left = self.visit(node.left)
            return self.op(node, op, [left, self.visit(node.right)])
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name):
                raise self.fail(node.func, "only calls of op names such as exp(x) are allowed")
            name = _ALIASES.get(node.func.id, node.func.id)
            if name not in REGISTRY:
                near = difflib.get_close_matches(node.func.id, list(REGISTRY) + list(_ALIASES), n=1)
                hint = f" (did you mean {near[0]}?)" if near else ""
                raise self.fail(node.func, f"unknown function '{node.func.id}'{hint}")
            attrs = {}
            for kw in node.keywords:
                if kw.arg is None:
                    raise self.fail(kw.value, "** arguments are not allowed")
                value = self.attr_value(kw.value)
                attrs[kw.arg] = value
            if any(isinstance(a, ast.Starred) for a in node.args):
                raise self.fail(node, "* arguments are not allowed")
            args = [self.visit(a) for a in node.args]
            return self.op(node, name, args, attrs)
        raise self.fail(node, f"{_describe(node)} is not allowed in an expression")

    def number(self, node: ast.Constant) -> float:
        v = node.value
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise self.fail(node, f"{_describe(node)} is not allowed in an expression")
        try:
            f = float(v)
        except OverflowError:
            raise self.fail(node, "this number is too large") from None
        if not math.isfinite(f):
            raise self.fail(node, "this number is too large")
        return f

    def constant_value(self, node: ast.AST) -> float | None:
        if isinstance(node, ast.Constant):
            return self.number(node)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)) \
                and isinstance(node.operand, ast.Constant):
            v = self.number(node.operand)
            return -v if isinstance(node.op, ast.USub) else v
        return None

    def attr_value(self, node: ast.AST) -> Any:
        """Keyword arguments hold attributes: numbers, None, or tuples of integers."""
        if isinstance(node, ast.Constant) and node.value is None:
            return None
        if isinstance(node, (ast.Tuple, ast.List)):
            items = [self.constant_value(e) for e in node.elts]
            if any(i is None or i != int(i) for i in items):
                raise self.fail(node, "a shape must be a tuple of whole numbers")
            return tuple(int(i) for i in items)
        whole = _int_literal(node)
        if whole is not None:   # 3, -1, 3000000000: whole numbers stay exact integers (axes, seeds)
            return whole
        v = self.constant_value(node)
        if v is None:
            raise self.fail(node, "an attribute must be a number")
        return v


def _int_literal(node: ast.AST) -> int | None:
    """The value of an integer literal such as 3 or -1 (an exact int), or None for anything else."""
    sign = 1
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        sign = -1 if isinstance(node.op, ast.USub) else 1
        node = node.operand
    if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool) \
            and abs(node.value) < 2**63:
        return sign * node.value
    return None


def _count_ops(tree: ast.AST) -> int:
    """How many op nodes _Builder.visit makes for `tree` (when it accepts it), walking it as visit does."""
    count = 0
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            if not isinstance(node.operand, ast.Constant):   # -3 is a constant, -x a neg node, +x just x
                count += isinstance(node.op, ast.USub)
                stack.append(node.operand)
        elif isinstance(node, ast.BinOp):
            count += 1
            stack.append(node.left)
            if not isinstance(node.op, ast.Pow):   # the exponent is an attribute, not a node
                stack.append(node.right)
        elif isinstance(node, ast.Call):
            count += 1
            stack.extend(node.args)
    return count


def _describe(node: ast.AST) -> str:
    kinds = {ast.Attribute: "an attribute access", ast.Subscript: "indexing", ast.Lambda: "a lambda",
             ast.Compare: "a comparison", ast.BoolOp: "and/or", ast.IfExp: "if/else", ast.List: "a list",
             ast.Tuple: "a tuple", ast.Dict: "a dict", ast.Set: "a set", ast.JoinedStr: "an f-string",
             ast.NamedExpr: "an assignment", ast.Await: "await", ast.Starred: "*"}
    if isinstance(node, ast.Constant):
        return {str: "a string", bytes: "bytes", bool: "True/False", complex: "a complex number"}.get(
            type(node.value), "this constant")
    for cls, text in kinds.items():
        if isinstance(node, cls):
            return text
    return type(node).__name__


def _rename_ops(graph: Graph, op_nodes: list[str], reserved: list[str]) -> None:
    """Give op nodes lecture-style names: the last one 'f', the others q1, q2, ... (or just q if alone)."""
    *inner, last = op_nodes
    taken = set(reserved)
    if len(inner) == 1:
        targets = ["q"]
    else:
        targets = [f"q{i + 1}" for i in range(len(inner))]
    targets.append("f")
    mapping = {}
    for old, want in zip(op_nodes, targets):
        new = want
        i = 1
        while new in taken:
            new = f"{want}_{i}"
            i += 1
        taken.add(new)
        mapping[old] = new
    graph.rename_many(mapping)   # one pass over the graph, not one per op


def parse_expression(text: str) -> Graph:
    """Build a Graph from an expression; raises ExpressionError (with .text and .column) when it cannot."""
    if not isinstance(text, str):
        raise ExpressionError(f"an expression must be text, got {type(text).__name__}")
    if not text.strip():
        raise ExpressionError("the expression is empty", "", 1)
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"the expression is longer than {MAX_LENGTH} characters", text[:20], 1)
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        col = exc.offset or 1
        bad = (exc.text or text)[max(col - 1, 0):col + 9].strip()
        raise ExpressionError(f"syntax error ({exc.msg}) at column {col}" + (f": '{bad}'" if bad else ""),
                              bad, col) from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise ExpressionError(f"the expression cannot be read: {type(exc).__name__}", text[:20], 1) from None
    from simulator.graphs.layout import apply_layout

    with paused_gc():   # the whole graph is built and stays alive: collections would only rescan it
        builder = _Builder(text.strip(), tree)
        try:
            builder.visit(tree.body)
        except RecursionError:
            raise ExpressionError("the expression is nested too deeply", text[:20], 1) from None
        graph = builder.graph
        if builder.op_nodes and builder.op_count != builder.expected_ops:   # named as counted: nothing to rename
            _rename_ops(graph, builder.op_nodes, [n.id for n in graph if n.kind != "op"])
        apply_layout(graph)
    return graph
