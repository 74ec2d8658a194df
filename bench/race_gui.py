"""Frame time of the optimizer lab's playback: 7 optimizers x 10,000 steps, one timer tick plus a synchronous repaint.

Prints the median and 95th-percentile frame time against the 16.7 ms budget of 60 fps (a budget to compare against,
not one of issue 12's floors). Run offscreen:
    QT_QPA_PLATFORM=offscreen python bench/race_gui.py [--steps N] [--frames N] [--speed N]
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# run as a script, bench/ is sys.path[0], where bench/kernels.py would shadow the kernels package: use the repo root
sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(n_steps: int = 10_000, frames: int = 300, speed: int = 33) -> None:
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv)
    from gui.labs.optimizer_lab import OptimizerLab

    lab = OptimizerLab()
    lab.resize(1500, 900)
    lab.show()
    lab.n_steps_box.setValue(n_steps)
    t0 = time.perf_counter()
    while lab.is_busy():
        app.processEvents()
        time.sleep(0.002)
    print(f"race of {len(lab.runs)} optimizers x {lab.n_steps} steps computed in {time.perf_counter() - t0:.2f} s "
          f"(off the GUI thread)")
    for arrows, full in ((False, False), (True, False), (False, True)):
        lab.arrows_check.setChecked(arrows)
        lab.speed_box.setValue(speed)
        lab.set_step(0)
        times = []
        for _ in range(frames):
            t = time.perf_counter()
            lab.player._on_tick()       # what the frame-player's QTimer calls each frame
            if full:
                lab.repaint()           # worst case: every child repainted, synchronously
            app.processEvents()         # Qt paints what the tick made dirty, as in the running app
            times.append(time.perf_counter() - t)
            if lab.step >= lab.n_steps:
                lab.set_step(0)
        ms = np.array(times) * 1e3
        print(f"arrows {'on ' if arrows else 'off'}{', full repaint' if full else ''}: frame median {np.median(ms):.2f} ms, p95 "
              f"{np.percentile(ms, 95):.2f} ms, max {ms.max():.2f} ms  -> {1e3 / np.median(ms):.0f} fps "
              f"(budget 16.7 ms)")
    lab.close_lab()


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10_000, help="steps of the race (default 10,000)")
    parser.add_argument("--frames", type=int, default=300, help="frames timed per configuration (default 300)")
    parser.add_argument("--speed", type=int, default=33, help="race steps per frame (default 33)")
    args = parser.parse_args()
    main(args.steps, args.frames, args.speed)
