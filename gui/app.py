"""The QApplication: names for QSettings, the style and the application-wide stylesheet."""
from __future__ import annotations

from PySide6.QtWidgets import QApplication

from gui import theme


def create_app(argv: list[str]) -> QApplication:
    app = QApplication(argv)
    app.setOrganizationName("Backprop Studio")
    app.setApplicationName("Backprop Studio")
    app.setApplicationDisplayName("Backprop Studio")
    app.setStyle("Fusion")
    theme.apply(app)
    return app
