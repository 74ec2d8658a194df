"""Backprop Studio: start the desktop app, or render a screenshot of it (`--screenshot`) with no display."""
from __future__ import annotations

import argparse
import os
import sys


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
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from simulator.graphs.examples import EXAMPLES
    if args.example and args.example not in EXAMPLES:
        print(f"backprop-studio: there is no example '{args.example}'; choose one of: {', '.join(EXAMPLES)}",
              file=sys.stderr)
        return 2
    if args.screenshot and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    from PySide6.QtCore import QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    from gui.app import create_app
    from gui.main_window import MainWindow

    app = QApplication.instance() or create_app(sys.argv[:1])
    settings = None
    if args.screenshot:  # a screenshot must not depend on (or change) the user's saved layout
        settings = QSettings(os.path.join(os.path.dirname(os.path.abspath(args.screenshot)) or ".",
                                          ".backprop-studio-screenshot.ini"), QSettings.IniFormat)
        settings.clear()
    window = MainWindow(settings=settings, warm_up=not args.screenshot)
    if args.file:
        if not window.open_path(args.file):
            return 1
    else:
        window.open_example(args.example or "circuit")
    if args.step:
        window.player.flush()
        window.player.seek(args.step)
    if args.screenshot:
        try:
            w, h = (int(v) for v in args.size.lower().split("x"))
        except ValueError:
            print(f"backprop-studio: --size must look like 1500x900, got {args.size}", file=sys.stderr)
            return 2
        window.resize(w, h)
        window.show()
        for _ in range(5):
            app.processEvents()
        window.view.fit_to_view()
        app.processEvents()
        ok = window.grab().save(args.screenshot, "PNG")
        window.undo_stack.setClean()
        window.close()
        if settings is not None:
            settings.clear()
            settings.sync()
            try:
                os.unlink(settings.fileName())
            except OSError:
                pass
        if not ok:
            print(f"backprop-studio: cannot write {args.screenshot}", file=sys.stderr)
            return 1
        return 0
    window.show()
    if not args.file and not args.example:
        QTimer.singleShot(0, window.offer_recovery)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
