"""Benchmark: how long each tab takes to open the first time and to come back to, and how often the Playground
redraws while it trains (offscreen Qt, the real main window).

    python bench/tabs.py            # warm Numba cache assumed: run `python -m kernels.warmup` once before
    python bench/tabs.py --rounds 5 --train-seconds 5

Floors (issue 10): first open < 0.5 s, switching back < 0.1 s, >= 30 redraws per second while training, and the UI
thread never blocked for long while training (the longest gap between two 10 ms timer ticks is printed).

First open is measured twice: with the lab built on its click (View → Prepare labs in idle moments off, or a click
before the window has had its idle moments), and in a window that has prepared its labs, as the app does by default
once the warm-up has finished (gui.idle: one lab built, or laid out and painted hidden, per quiet moment).

Each window is the app's own, made as `python main.py` makes it: its kernel warm-up job runs first and is let finish
before anything is measured (with a warm Numba cache it loads every kernel in ~2 s, and on its worker thread it also
imports numba and pyqtgraph, which the first lab opened would otherwise pay for). The app's modules are compiled to
bytecode first: Python writes __pycache__ at a module's first import on a learner's machine, but where
PYTHONDONTWRITEBYTECODE is set, as in CI, every first open would compile its modules from source again (~7 ms a
module).
"""
from __future__ import annotations

import argparse
import compileall
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FIRST_OPEN_FLOOR = 0.5
SWITCH_FLOOR = 0.1
FPS_FLOOR = 30.0


def _settle(app, seconds: float = 0.05) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()


def _show_tab(app, window, index: int) -> float:
    """Seconds from the click until the tab is shown and painted (events processed, widget grabbed)."""
    t0 = time.perf_counter()
    window.tabs.setCurrentIndex(index)
    app.processEvents()
    window.tabs.currentWidget().grab()
    return time.perf_counter() - t0


def _window(app, folder: str, prepare: bool = False):
    """The app's main window at 1280x800, shown, once its kernel warm-up job has finished (see the docstring).

    prepare: the window prepares its labs in idle moments, as the app does by default, and is let finish that too;
    otherwise the setting is off and each lab is built on its first click."""
    from PySide6.QtCore import QSettings

    from gui.main_window import PREPARE_LABS_KEY, MainWindow

    settings = QSettings(str(Path(folder) / "s.ini"), QSettings.IniFormat)
    settings.setValue(PREPARE_LABS_KEY, prepare)
    w = MainWindow(settings=settings)
    w.resize(1280, 800)
    w.show()
    end = time.perf_counter() + 600
    while (w.jobs.running("warmup") or len(w.idle_tasks)) and time.perf_counter() < end:
        _settle(app)
    if w.jobs.running("warmup") or len(w.idle_tasks):
        raise SystemExit("the kernel warm-up and the labs' preparation did not finish within 10 minutes")
    _settle(app)
    return w


def _close(app, w) -> None:
    w.undo_stack.setClean()
    w.close()
    _settle(app)


def measure_tabs(app, rounds: int) -> dict[str, tuple[float, float, float]]:
    """Per tab (medians): first open when the lab is built on the click, first open once the window has prepared
    its labs in idle moments, and switching back to it."""
    firsts: dict[str, list[float]] = {}
    prepared: dict[str, list[float]] = {}
    switches: dict[str, list[float]] = {}
    for _ in range(rounds):
        w = _window(app, tempfile.mkdtemp())
        for i in range(1, w.tabs.count()):
            title = w.tabs.tabText(i)
            firsts.setdefault(title, []).append(_show_tab(app, w, i))
            _settle(app, 0.3)          # let the lab's background jobs start and report
            _show_tab(app, w, 0)
            _settle(app)
            switches.setdefault(title, []).append(_show_tab(app, w, i))
            _show_tab(app, w, 0)
        _close(app, w)
        w = _window(app, tempfile.mkdtemp(), prepare=True)
        for i in range(1, w.tabs.count()):
            prepared.setdefault(w.tabs.tabText(i), []).append(_show_tab(app, w, i))
            _settle(app, 0.3)
        _close(app, w)
    return {t: (statistics.median(firsts[t]), statistics.median(prepared[t]), statistics.median(switches[t]))
            for t in firsts}


def measure_training(app, seconds: float) -> tuple[float, float] | None:
    """(redraws per second, longest UI-thread gap in ms) while the Playground trains; None if it cannot train."""
    from PySide6.QtCore import QTimer

    folder = tempfile.mkdtemp()
    w = _window(app, folder)
    lab = w.open_lab("Playground")
    _settle(app, 0.5)
    redraws = getattr(lab, "redraw_count", None)
    if redraws is None or not hasattr(lab, "train_button"):
        w.close()
        return None
    if hasattr(lab, "epochs_box"):           # a run long enough to be measured while it trains
        lab.epochs_box.setValue(lab.epochs_box.maximum())
        _settle(app, 0.3)
    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    lab.train_button.click()
    _settle(app, 0.5)                   # training started and the first frames are in
    start_count, t0 = lab.redraw_count, time.perf_counter()
    ticks.clear()
    _settle(app, seconds)
    fps = (lab.redraw_count - start_count) / (time.perf_counter() - t0)
    if getattr(lab, "state", "running") != "running":
        print(f"note: training ended within the measurement (state {lab.state}); the rate is a lower bound")
    gaps = [b - a for a, b in zip(ticks, ticks[1:])] or [seconds]
    timer.stop()
    _close(app, w)
    return fps, max(gaps) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="windows opened per measurement (median is shown)")
    parser.add_argument("--train-seconds", type=float, default=4.0, help="how long to watch the Playground train")
    args = parser.parse_args()

    from PySide6.QtWidgets import QApplication
    app = QApplication.instance() or QApplication(sys.argv)

    root = Path(__file__).resolve().parents[1]
    for package in ("gui", "simulator", "kernels"):
        compileall.compile_dir(root / package, quiet=1)
    t0 = time.perf_counter()
    import gui.main_window  # noqa: F401
    print(f"import gui.main_window: {time.perf_counter() - t0:.2f} s")

    rows = measure_tabs(app, args.rounds)
    print(f"\n{'tab':<18}{'first open s':>14}{'prepared s':>12}{'switch back s':>15}  floors {FIRST_OPEN_FLOOR} / "
          f"{FIRST_OPEN_FLOOR} / {SWITCH_FLOOR}")
    ok = True
    for title, (first, prepared, switch) in rows.items():
        good = first < FIRST_OPEN_FLOOR and prepared < FIRST_OPEN_FLOOR and switch < SWITCH_FLOOR
        ok &= good
        print(f"{title:<18}{first:>14.3f}{prepared:>12.3f}{switch:>15.3f}  {'PASS' if good else 'FAIL'}")

    training = measure_training(app, args.train_seconds)
    if training is None:
        print("\ntraining redraw rate: the Playground has no redraw counter (not measured)")
    else:
        fps, gap = training
        good = fps >= FPS_FLOOR
        ok &= good
        print(f"\nwhile training: {fps:.1f} redraws/s (floor {FPS_FLOOR:.0f}), longest UI gap {gap:.0f} ms  "
              f"{'PASS' if good else 'FAIL'}")
    print("\nall floors pass" if ok else "\nsome floors fail")


if __name__ == "__main__":
    main()
