"""Engine benchmark: evaluate, compile, trace, seek, parse and checked wiring against their size, with floors.

The graph is a sum of products, L = a0*b0 + a1*b1 + ... (scalars), built through the Graph API at about 10 to 5,000
nodes. Each round times, one after the other (interleaved, so machine noise hits all alike):
  ours       simulator.evaluate(graph, **values): forward + backward on an already compiled graph
  ours cold  the same on a fresh copy of the graph: compiling (shape check, topological order) included
  micrograd  a micrograd-style pure-Python Value (written below): build the expression, then backward()
  torch      (when importable) 0-d tensors with requires_grad, the same expression, then backward()
The table shows medians and ratios (reference time / our time: above 1 means ours is faster). Then size scaling
(time at 4,000 nodes / time at 1,000: linear is 4; these use each size's fastest round, the least disturbed by
other work on the machine), Trace construction and seeking, parsing a 125- and a 500-op
expression, and a chain of ops wired through the checked API (every connect checks shapes).

Floors: evaluate at 5,000 nodes within 8x micrograd (ratio >= 0.125) and faster than torch autograd (ratio >= 1);
1,000 -> 4,000 nodes costs at most 4.5x for evaluate (warm and cold), Trace construction and checked wiring; seeking
a Trace costs the same at its start and its end (within 3x); parsing 500 ops costs at most 4.5x parsing 125 ops.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT)] + [p for p in sys.path if p != str(ROOT)]

SIZES = (10, 100, 1000, 2000, 4000, 5000)


# ---- the reference: micrograd's Value (Karpathy), the parts a sum of products uses -----------------------------

class Value:
    """A scalar with a gradient and the closure that propagates it (micrograd, trimmed to + and *)."""

    __slots__ = ("data", "grad", "_backward", "_prev")

    def __init__(self, data, children=()):
        self.data = data
        self.grad = 0.0
        self._backward = lambda: None
        self._prev = children

    def __add__(self, other):
        out = Value(self.data + other.data, (self, other))

        def _backward():
            self.grad += out.grad
            other.grad += out.grad
        out._backward = _backward
        return out

    def __mul__(self, other):
        out = Value(self.data * other.data, (self, other))

        def _backward():
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad
        out._backward = _backward
        return out

    def backward(self):
        topo, visited = [], set()
        stack = [(self, False)]
        while stack:   # micrograd's recursive build_topo, iteratively (5,000 nodes would pass the recursion limit)
            v, done = stack.pop()
            if done:
                topo.append(v)
            elif v not in visited:
                visited.add(v)
                stack.append((v, True))
                stack.extend((c, False) for c in v._prev)
        self.grad = 1.0
        for v in reversed(topo):
            v._backward()


def micrograd_sum_of_products(a, b):
    terms = [Value(x) * Value(y) for x, y in zip(a, b)]
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    total.backward()
    return total


def torch_sum_of_products(torch, a, b):
    ta = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in a]
    tb = [torch.tensor(y, dtype=torch.float64, requires_grad=True) for y in b]
    total = ta[0] * tb[0]
    for x, y in zip(ta[1:], tb[1:]):
        total = total + x * y
    total.backward()
    return total


# ---- our graphs --------------------------------------------------------------------------------------------

def products_for(nodes: int) -> int:
    """k products give 2k inputs, k muls and k - 1 adds: 4k - 1 nodes."""
    return max(1, round((nodes + 1) / 4))


def sum_of_products_graph(k: int, check_shapes: bool = False):
    from simulator import Graph

    g = Graph()
    total = None
    for i in range(k):
        a, b = g.add_input(f"a{i}", 0.5 + i % 7), g.add_input(f"b{i}", 1.5 - i % 5)
        m = g.add_op("mul", name=f"m{i}")
        g.connect(a, m, "x", check_shapes=check_shapes)
        g.connect(b, m, "y", check_shapes=check_shapes)
        if total is None:
            total = m
        else:
            s = g.add_op("add", name=f"s{i}")
            g.connect(total, s, "x", check_shapes=check_shapes)
            g.connect(m, s, "y", check_shapes=check_shapes)
            total = s
    return g


def checked_chain(n_ops: int):
    """x -> tanh -> tanh -> ... wired through the checked API (each connect checks shapes)."""
    from simulator import Graph

    g = Graph()
    prev = g.add_input("x", 0.3)
    for i in range(n_ops):
        op = g.add_op("tanh", name=f"t{i}")
        g.connect(prev, op, "x")
        prev = op
    return g


def expression_with(n_ops: int) -> str:
    """a0*b0 + a1*b1 + ...: n_ops operations (k products and k - 1 sums)."""
    k = (n_ops + 1) // 2
    return " + ".join(f"a{i}*b{i}" for i in range(k))


def timed(fn, repeat: int = 1) -> float:
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t0) / repeat


def median(xs):
    return statistics.median(xs)


def fmt_ms(s: float) -> str:
    return f"{s * 1e3:9.3f}"


# ---- the run -----------------------------------------------------------------------------------------------

def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                epilog="Ratios are reference time / our time: above 1 means ours is faster.")
    p.add_argument("--rounds", type=int, default=7, help="timed rounds per size (default 7); the median is shown")
    p.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="graph sizes in nodes")
    p.add_argument("--no-torch", action="store_true", help="leave PyTorch out even when it is installed")
    args = p.parse_args(argv)

    from simulator import Trace, evaluate
    from simulator.graphs.expression import parse_expression

    torch = None
    if not args.no_torch:
        try:
            import torch  # noqa: F811
            torch.set_num_threads(1)
        except ImportError:
            torch = None

    results: dict[int, dict[str, float]] = {}
    best: dict[int, dict[str, float]] = {}   # the fastest round: size ratios use it (least disturbed by neighbours)
    print(f"evaluate on a sum of products (scalars), median of {args.rounds} rounds, ms")
    head = f"{'nodes':>6} {'ours':>9} {'ours cold':>9} {'micrograd':>9} {'ratio':>7}"
    head += f" {'torch':>9} {'ratio':>7}" if torch else ""
    print(head)
    for n in args.sizes:
        k = products_for(n)
        g = sum_of_products_graph(k)
        a = [0.5 + i % 7 for i in range(k)]
        b = [1.5 - i % 5 for i in range(k)]
        values = {f"a{i}": v for i, v in enumerate(a)} | {f"b{i}": v for i, v in enumerate(b)}
        expected = sum(x * y for x, y in zip(a, b))
        r = evaluate(g, **values)   # warm-up (and the compile, which warm rounds reuse)
        assert math.isclose(r.value, expected) and r.grads["a0"] == b[0], "ours computed a wrong answer"
        assert micrograd_sum_of_products(a, b).data == r.value
        if torch:
            torch_sum_of_products(torch, a, b)
        reps = max(1, 2000 // len(g))
        rows: dict[str, list[float]] = {"ours": [], "cold": [], "micrograd": [], "torch": []}
        for _ in range(args.rounds):
            rows["ours"].append(timed(lambda: evaluate(g, **values), reps))
            fresh = [g.copy() for _ in range(reps)]
            it = iter(fresh)
            rows["cold"].append(timed(lambda: evaluate(next(it), **values), reps))
            rows["micrograd"].append(timed(lambda: micrograd_sum_of_products(a, b), reps))
            if torch:
                rows["torch"].append(timed(lambda: torch_sum_of_products(torch, a, b), reps))
        med = {key: median(v) for key, v in rows.items() if v}
        results[len(g)] = med
        best[len(g)] = {key: min(v) for key, v in rows.items() if v}
        line = (f"{len(g):>6} {fmt_ms(med['ours'])} {fmt_ms(med['cold'])} {fmt_ms(med['micrograd'])} "
                f"{med['micrograd'] / med['ours']:>7.2f}")
        if torch:
            line += f" {fmt_ms(med['torch'])} {med['torch'] / med['ours']:>7.2f}"
        print(line)

    # ---- scaling: compile + trace + seek, checked wiring, parsing ------------------------------------------
    print("\nsize scaling, best of the rounds, ms (the ratios below use the best round: least disturbed)")
    scale: dict[str, dict[int, float]] = {"trace": {}, "seek": {}, "checked": {}}
    for n in (1000, 4000):
        g = sum_of_products_graph(products_for(n))
        trace_times, seek_start, seek_end, checked = [], [], [], []
        for _ in range(max(3, args.rounds // 2)):
            trace_times.append(timed(lambda: Trace(g.copy())))
            t = Trace(g)
            seek_start.append(timed(lambda: [t.state_at(i).values.get("m0") for i in range(1, 200)]) / 199)
            end = len(t)
            seek_end.append(timed(lambda: [t.state_at(i).values.get("m0") for i in range(end - 199, end)]) / 199)
            checked.append(timed(lambda: checked_chain(n // 2)))
        scale["trace"][n] = min(trace_times)
        scale["seek"][n] = min(seek_end)
        scale["seek_start"] = scale.get("seek_start", {}) | {n: min(seek_start)}
        scale["checked"][n] = min(checked)
        print(f"{n:>6} nodes: Trace {fmt_ms(median(trace_times))}   seek at start {median(seek_start) * 1e6:7.2f} µs"
              f"   at end {median(seek_end) * 1e6:7.2f} µs   checked chain of {n // 2} ops {fmt_ms(median(checked))}")
    parse = {}
    for ops in (125, 500):
        text = expression_with(ops)
        parse[ops] = min([timed(lambda: parse_expression(text)) for _ in range(args.rounds)])
        print(f"parse {ops:>4} ops: {fmt_ms(parse[ops])}")

    # ---- floors -------------------------------------------------------------------------------------------
    print("\nfloors")
    checks = []
    big = max(results)
    if big >= 4000:
        med = results[big]
        checks.append((f"evaluate at {big} nodes within 8x micrograd (ratio {med['micrograd'] / med['ours']:.2f} "
                       f">= 0.125)", med["micrograd"] / med["ours"] >= 0.125))
        if "torch" in med:
            checks.append((f"evaluate at {big} nodes faster than torch autograd (ratio "
                           f"{med['torch'] / med['ours']:.2f} >= 1)", med["torch"] >= med["ours"]))
    sizes = sorted(results)
    lo = min(sizes, key=lambda s: abs(s - 1000))
    hi = min(sizes, key=lambda s: abs(s - 4000))
    if hi > lo:
        for key, name in (("ours", "evaluate"), ("cold", "evaluate cold")):
            ratio = best[hi][key] / best[lo][key]
            checks.append((f"{name} {lo} -> {hi} nodes costs {ratio:.2f}x (<= 4.5x)", ratio <= 4.5))
    for key, name in (("trace", "Trace construction"), ("checked", "checked wiring")):
        ratio = scale[key][4000] / scale[key][1000]
        checks.append((f"{name} 1000 -> 4000 nodes costs {ratio:.2f}x (<= 4.5x)", ratio <= 4.5))
    ratio = scale["seek"][4000] / scale["seek_start"][4000]
    checks.append((f"seeking at the end of a 4000-node trace costs {ratio:.2f}x seeking at its start (<= 3x)",
                   ratio <= 3.0))
    ratio = parse[500] / parse[125]
    checks.append((f"parsing 500 ops costs {ratio:.2f}x parsing 125 ops (<= 4.5x)", ratio <= 4.5))
    ok = True
    for text, passed in checks:
        ok &= passed
        print(f"{'PASS' if passed else 'FAIL'}  {text}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
