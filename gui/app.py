"""The QApplication: names for QSettings, the style, and a last-resort handler for unexpected errors."""
from __future__ import annotations

import sys
import traceback
from pathlib import Path

from PySide6.QtCore import QStandardPaths
from PySide6.QtWidgets import QApplication, QMessageBox

from gui import theme
from simulator.core.errors import StudioError
from simulator.core.files import atomic_append

LOG_KEEP_BYTES = 1 << 20  # the error log keeps its last megabyte


def _log_path() -> Path:
    folder = Path(QStandardPaths.writableLocation(QStandardPaths.AppDataLocation) or Path.home() / ".backprop-studio")
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "errors.log"


def _on_unexpected_error(kind, value, tb) -> None:
    """An exception nobody caught (a bug): keep the app and the learner's graph alive, log the details, and say so.
    Bad input never lands here; the model raises our own errors and the views show them."""
    text = "".join(traceback.format_exception(kind, value, tb))
    try:
        atomic_append(_log_path(), text + "\n", keep_bytes=LOG_KEEP_BYTES)
        where = f"\n\nDetails were written to {_log_path()}."
    except (OSError, StudioError):
        where = ""
    if QApplication.instance() is not None:
        QMessageBox.warning(None, "Backprop Studio", f"Something went wrong: {value}{where}\n\n"
                            "Your graph is untouched; saving it now is a good idea.")
    else:  # pragma: no cover - no GUI to show it in
        sys.__excepthook__(kind, value, tb)


def create_app(argv: list[str]) -> QApplication:
    app = QApplication(argv)
    app.setOrganizationName("Backprop Studio")
    app.setApplicationName("Backprop Studio")
    app.setApplicationDisplayName("Backprop Studio")
    theme.apply(app)
    sys.excepthook = _on_unexpected_error
    return app
