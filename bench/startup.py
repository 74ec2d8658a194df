"""Start-up benchmark: `import simulator` and the app window's first paint, in fresh processes.

Each round starts, one after the other (interleaved, so machine noise hits all alike):
  import simulator     a fresh Python process timing `import simulator` and the loading of every name it offers
                       (Graph, Trace, evaluate, the examples, the errors: the facade loads them on first use)
  interpreter          a fresh Python process, from its launch to its first statement (the reference)
  window               the app's start as `python main.py` does it (arguments, the xcb check, QApplication, the main
                       window with the lecture circuit, its warm-up job, show() at its first-start size, the recovery
                       and tour offers main() schedules), until the window's first paint, counted from the moment the
                       process was launched
  bare Qt window       the same for an empty 1280x800 QMainWindow (the reference: Qt's own start)

Floors (issue 12): `import simulator` under 1 s; the window visible within 1.5 s with a warm Numba cache. The
kernels are compiled into Numba's cache first (`python -m kernels.warmup`, once, untimed) and the app's modules to
bytecode, as a learner's machine has them after a first run. The app's window runs with its own empty settings and
data folders (HOME, XDG_*), so it neither reads nor touches the learner's work. Offscreen unless QT_QPA_PLATFORM is set
(`QT_QPA_PLATFORM=xcb python bench/startup.py` on an X display).

    python bench/startup.py
    python bench/startup.py --rounds 9
"""
from __future__ import annotations

import argparse
import compileall
import os
import statistics
import subprocess
import sys
import tempfile
import time

from _common import ROOT, Floors

IMPORT_FLOOR = 1.0
WINDOW_FLOOR = 1.5

IMPORT_CHILD = """
import sys, time
t0 = time.perf_counter()
import simulator
for name in simulator.__all__:     # the facade loads lazily: every name it offers is loaded, as a script uses them
    getattr(simulator, name)
print(time.perf_counter() - t0)
print(",".join(m for m in ("numba", "scipy", "networkx", "PySide6") if m in sys.modules))
"""

INTERPRETER_CHILD = "import time\nprint(time.time())"

# The window's first paint, reported as a wall-clock time (the parent subtracts its launch time). The steps are
# main.main()'s, in its order, up to the show(); `painted` watches the window's own paint event.
WINDOW_CHILD = """
import sys, time
sys.argv = ["main.py"]
import main as M
M.threads_for_the_app()
args = M._parser().parse_args([])
from gui.platform_check import xcb_problem
assert xcb_problem() is None, xcb_problem()
from PySide6.QtCore import QEvent, QObject
from gui.app import create_app
app = create_app(sys.argv[:1])
window = M.open_window(args)
{watch}
"""

BARE_CHILD = """
import sys, time
from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QApplication, QMainWindow
app = QApplication(sys.argv[:1])
window = QMainWindow()
window.setWindowTitle("Backprop Studio")
window.resize(1280, 800)
{watch}
"""

WATCH = """
class Painted(QObject):
    at = None
    def eventFilter(self, obj, event):
        if obj is window and event.type() == QEvent.Paint and Painted.at is None:
            Painted.at = time.time()
        return False
painted = Painted()
window.installEventFilter(painted)
window.show()                      # at the size the window gives itself at a first start
if hasattr(window, "offer_recovery"):   # the app's: what main() schedules right after show()
    from PySide6.QtCore import QTimer
    QTimer.singleShot(0, window.offer_recovery)
    QTimer.singleShot(300, window.offer_tour)
deadline = time.time() + 60
while Painted.at is None and time.time() < deadline:
    app.processEvents()
print(Painted.at)
if hasattr(window, "undo_stack"):
    window.undo_stack.setClean()
window.close()
app.processEvents()
"""

CHILDREN = {
    "import simulator": IMPORT_CHILD,
    "interpreter": INTERPRETER_CHILD,
    "window": WINDOW_CHILD.format(watch=WATCH),
    "bare Qt window": BARE_CHILD.format(watch=WATCH),
}


def run_child(code: str, env: dict[str, str], wall: bool) -> tuple[float, str]:
    """(seconds, the child's second line). wall: the child prints the wall-clock time of its event, counted from
    the launch; otherwise it prints its own measured seconds."""
    launched = time.time()
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines or lines[0] == "None":
        what = "its window never painted (60 s)" if lines and lines[0] == "None" else f"status {proc.returncode}"
        raise SystemExit(f"a child process failed: {what}\n{proc.stderr[-3000:]}")
    value = float(lines[0])
    return (value - launched if wall else value), (lines[1] if len(lines) > 1 else "")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--rounds", type=int, default=7, help="fresh processes of each kind (default 7); medians shown")
    args = ap.parse_args(argv)

    warm = subprocess.run([sys.executable, "-m", "kernels.warmup"], cwd=ROOT, capture_output=True, text=True)
    if warm.returncode != 0:
        raise SystemExit(f"the kernel warm-up failed:\n{warm.stderr[-3000:]}")
    for package in ("simulator", "kernels", "gui"):
        compileall.compile_dir(ROOT / package, quiet=1)
    compileall.compile_file(ROOT / "main.py", quiet=1)

    times: dict[str, list[float]] = {name: [] for name in CHILDREN}
    heavy = set()
    with tempfile.TemporaryDirectory(prefix="bps-start-") as home:
        env = dict(os.environ, PYTHONPATH=str(ROOT), HOME=home, XDG_CONFIG_HOME=f"{home}/config",
                   XDG_DATA_HOME=f"{home}/data", XDG_CACHE_HOME=f"{home}/cache")
        env.setdefault("QT_QPA_PLATFORM", "offscreen")
        for r in range(args.rounds):
            for name, code in CHILDREN.items():
                seconds, extra = run_child(code, env, wall=name != "import simulator")
                times[name].append(seconds)
                if name == "import simulator" and extra:
                    heavy.update(extra.split(","))
            print(f"round {r + 1}: " + ", ".join(f"{n} {v[-1]:.3f} s" for n, v in times.items()), flush=True)

    med = {name: statistics.median(v) for name, v in times.items()}
    print(f"\nmedians of {args.rounds} fresh processes ({env['QT_QPA_PLATFORM']}), seconds")
    print(f"  import simulator   {med['import simulator']:6.3f}   (the interpreter itself starts in "
          f"{med['interpreter']:.3f} s, not counted)")
    print(f"  window shown       {med['window']:6.3f}   from launch to first paint; a bare Qt window "
          f"{med['bare Qt window']:.3f} s ({med['window'] / med['bare Qt window']:.2f}x)")
    if heavy:
        print(f"  import simulator loaded {', '.join(sorted(heavy))}")
    floors = Floors()
    floors.check(f"import simulator < {IMPORT_FLOOR:.1f} s", med["import simulator"] < IMPORT_FLOOR,
                 f"{med['import simulator']:.3f} s")
    floors.check(f"window shown < {WINDOW_FLOOR:.1f} s", med["window"] < WINDOW_FLOOR, f"{med['window']:.3f} s")
    return floors.report()


if __name__ == "__main__":
    sys.exit(main())
