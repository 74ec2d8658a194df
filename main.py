"""Backprop Studio: start the desktop app, or render a screenshot of it (`--screenshot`) with no display."""
from __future__ import annotations

import argparse
import os
import sys
import tempfile


def _parser() -> argparse.ArgumentParser:
    from simulator.graphs.examples import EXAMPLES
    listing = "\n".join(f"  {name:<16} {ex.title}" for name, ex in EXAMPLES.items())
    p = argparse.ArgumentParser(
        prog="backprop-studio",
        description="Step through backpropagation node by node, race optimizers, and train small networks.",
        epilog=f"examples (for --example):\n{listing}", formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", nargs="?", help="a graph file (.bps.json) to open")
    p.add_argument("--example", metavar="NAME", help="open a lecture example (see the list below)")
    p.add_argument("--step", metavar="N", type=int, default=0, help="advance N steps through the passes")
    p.add_argument("--screenshot", metavar="OUT.png",
                   help="render the main window to a PNG and exit (works without a display)")
    p.add_argument("--size", metavar="WxH", default="1500x900", help="window size for --screenshot")
    p.add_argument("--lesson", metavar="NAME",
                   help="open a lesson: a shipped one by name (see Help → Lessons) or a lesson file (.toml)")
    return p


def open_window(args: argparse.Namespace, settings=None):
    """The main window with the file or example of the command line: what a start shows before any question is
    asked. Raises FileFormatError (naming the file) for a file that cannot be opened. Under --screenshot the window
    neither autosaves nor offers recovery: it must never block on a dialog or touch another instance's work."""
    from pathlib import Path

    from gui.main_window import MainWindow
    from simulator.graphs import fileformat
    graph = fileformat.load(args.file) if args.file else None
    window = MainWindow(settings=settings, warm_up=not args.screenshot, recovery=not args.screenshot)
    if graph is not None:
        window.show_graph(graph, Path(args.file).absolute())
    else:
        window.open_example(args.example or "circuit")
    if args.step:
        window.player.flush()
        window.player.seek(args.step)
    if args.lesson:
        window.open_lesson(args.lesson)
    return window


def _screenshot(app, args: argparse.Namespace) -> int:
    from PySide6.QtCore import QSettings

    from gui.main_window import image_bytes
    from simulator.core.errors import StudioError
    from simulator.core.files import atomic_write
    try:
        w, h = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        print(f"backprop-studio: --size must look like 1500x900, got {args.size}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="backprop-studio-") as tmp:
        # a screenshot must not depend on (or change) the user's saved layout
        settings = QSettings(os.path.join(tmp, "screenshot.ini"), QSettings.IniFormat)
        try:
            window = open_window(args, settings)
        except StudioError as exc:
            print(f"backprop-studio: cannot open {args.file}: {exc}", file=sys.stderr)
            return 1
        window.resize(w, h)
        window.show()
        for _ in range(5):
            app.processEvents()
        window.view.fit_to_view()
        app.processEvents()
        try:
            atomic_write(args.screenshot, image_bytes(window.grab(), "PNG"))
        except (OSError, StudioError) as exc:
            print(f"backprop-studio: cannot write {args.screenshot}: {getattr(exc, 'strerror', None) or exc}",
                  file=sys.stderr)
            return 1
        finally:
            window.undo_stack.setClean()
            window.close()
            settings.sync()
    return 0


def threads_for_the_app() -> None:
    """BLAS on one thread and the convolutions on the cores, set before numpy loads (a variable the user has set is
    kept). The app's matrix products are small (a mini-batch through a small layer): a multi-threaded BLAS wakes its
    threads for each and, on a machine whose cores are busy (the window, a training job, anything else), waits for
    them inside every product (a 64×256 product measured 0.4 ms on one thread, 2.8 ms on two busy cores). The
    convolutions share their chunks of samples between threads of their own (kernels.conv)."""
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    os.environ.setdefault("BACKPROP_CONV_THREADS", str(max(1, min(cores, 4))))


def main(argv: list[str] | None = None) -> int:
    threads_for_the_app()
    args = _parser().parse_args(argv)
    from simulator.graphs.examples import EXAMPLES
    if args.example and args.example not in EXAMPLES:
        print(f"backprop-studio: there is no example '{args.example}'; choose one of: {', '.join(EXAMPLES)}",
              file=sys.stderr)
        return 2
    if args.lesson:
        from simulator.labs.lessons import LessonError, load_lesson
        try:
            load_lesson(args.lesson)
        except LessonError as exc:
            print(f"backprop-studio: {exc}", file=sys.stderr)
            return 2
    if args.screenshot and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    from gui.platform_check import xcb_problem
    problem = xcb_problem()
    if problem is not None:                     # Qt would abort with "could not load the Qt platform plugin"
        print(f"backprop-studio: {problem}", file=sys.stderr)
        return 1

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QMessageBox

    from gui.app import create_app
    from simulator.core.errors import StudioError

    app = QApplication.instance() or create_app(sys.argv[:1])
    if args.screenshot:
        return _screenshot(app, args)
    try:
        window = open_window(args)
    except StudioError as exc:
        print(f"backprop-studio: cannot open {args.file}: {exc}", file=sys.stderr)
        QMessageBox.critical(None, "Cannot open file", f"The file could not be opened:\n\n{exc}")
        return 1
    window.show()
    # Work a crashed (or killed) instance autosaved is offered at every start, whatever was asked for.
    QTimer.singleShot(0, window.offer_recovery)
    QTimer.singleShot(300, window.offer_tour)       # a first start: the tour of the window, once
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
