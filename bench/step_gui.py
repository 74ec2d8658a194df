"""GUI stepping benchmark: milliseconds per step of the main window, repaint included, at 50, 500 and 2,000 nodes.

Offscreen (QT_QPA_PLATFORM=offscreen unless set). The graph is a sum of products, L = a0*b0 + a1*b1 + ..., laid out
left to right and fitted to an 1400x860 window. One step is what the learner's → key does: the player moves one
step, the canvas, the inspector (following the step) and the chain-rule panel update, and the event loop paints what
changed (`processEvents`). Scrubbing jumps to random positions the same way. Each row shows the median, the 90th
percentile and the worst step.

Play: the player's own timer at the transport's fastest speed (8 steps per second) for --play-seconds; the steps
per second it reached are printed against the speed chosen.

Floors: a step under 16 ms at 500 nodes and under 33 ms at 2,000 (medians); play holds >= 95% of its speed.
"""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT)] + [p for p in sys.path if p != str(ROOT)]

FLOORS_MS = {500: 16.0, 2000: 33.0}


def sum_of_products(nodes: int):
    """The engine benchmark's sum of products with about ``nodes`` nodes, laid out for the canvas."""
    from engine import sum_of_products_graph          # bench/engine.py, beside this script
    from simulator.graphs.layout import apply_layout

    g = sum_of_products_graph(max(1, round((nodes + 1) / 4)))
    apply_layout(g)
    return g


def percentile(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[50, 500, 2000], help="graph sizes in nodes")
    p.add_argument("--steps", type=int, default=60, help="steps timed per size (default 60)")
    p.add_argument("--play-seconds", type=float, default=3.0, help="seconds of play per size (default 3)")
    args = p.parse_args(argv)

    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    from gui.main_window import MainWindow

    tmp = tempfile.mkdtemp(prefix="bps-bench-")
    window = MainWindow(settings=QSettings(str(Path(tmp) / "settings.ini"), QSettings.IniFormat), warm_up=False)
    window.autosave_path = Path(tmp) / "autosave.bps.json"
    window.resize(1400, 860)
    window.show()
    app.processEvents()
    print(f"{'nodes':>6} {'trace':>7} {'step median':>12} {'p90':>7} {'worst':>7} {'scrub median':>13}   ms"
          f"   {'play steps/s':>12}")
    ok = True
    rng = random.Random(0)
    for n in args.sizes:
        g = sum_of_products(n)
        t0 = time.perf_counter()
        window.replace_graph(g, "bench")
        window.player.flush()
        rebuilt = time.perf_counter() - t0
        app.processEvents()
        window.view.fit_to_view()
        app.processEvents()
        player = window.player
        steps, scrubs = [], []
        for _ in range(5):   # warm-up
            player.step_forward()
            app.processEvents()
        for i in range(args.steps):
            if player.position >= player.length:
                player.seek(0)
                app.processEvents()
            t = time.perf_counter()
            player.step_forward()
            app.processEvents()
            steps.append(time.perf_counter() - t)
        for i in range(args.steps):
            target = rng.randrange(player.length + 1)
            t = time.perf_counter()
            player.seek(target)
            app.processEvents()
            scrubs.append(time.perf_counter() - t)
        speed = 8.0
        player.set_speed(speed)
        player.seek(0)
        app.processEvents()
        start, t = player.position, time.perf_counter()
        player.play()
        while time.perf_counter() - t < args.play_seconds and player.position < player.length:
            app.processEvents()
            time.sleep(0.001)
        played = (player.position - start) / (time.perf_counter() - t)
        player.pause()
        med = statistics.median(steps) * 1e3
        print(f"{len(g):>6} {rebuilt * 1e3:>7.1f} {med:>12.2f} {percentile(steps, 0.9) * 1e3:>7.2f} "
              f"{max(steps) * 1e3:>7.2f} {statistics.median(scrubs) * 1e3:>13.2f}   {played:>12.2f}")
        floor = next((f for size, f in FLOORS_MS.items() if abs(size - n) <= size * 0.05), None)
        if floor is not None:
            passed = med < floor
            ok &= passed
            print(f"{'PASS' if passed else 'FAIL'}  a step at {len(g)} nodes takes {med:.2f} ms (< {floor:g} ms)")
        held = played >= 0.95 * speed
        ok &= held
        print(f"{'PASS' if held else 'FAIL'}  play at {len(g)} nodes: {played:.2f} steps/s of the {speed:g} chosen")
    window.undo_stack.setClean()
    window.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
