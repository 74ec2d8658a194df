"""The application's last-resort error handler: an uncaught exception is logged and shown, never fatal."""
from PySide6.QtCore import QStandardPaths
from PySide6.QtWidgets import QMessageBox

from gui import app as app_module


def test_unexpected_errors_are_logged_and_shown(qtbot, monkeypatch, tmp_path):
    QStandardPaths.setTestModeEnabled(True)
    monkeypatch.setattr(app_module, "_log_path", lambda: tmp_path / "errors.log")
    shown = []
    monkeypatch.setattr(QMessageBox, "warning", lambda parent, title, text: shown.append(text))
    try:
        raise RuntimeError("a bug in a slot")
    except RuntimeError as exc:
        app_module._on_unexpected_error(type(exc), exc, exc.__traceback__)
    assert "a bug in a slot" in shown[0] and "untouched" in shown[0]
    log = (tmp_path / "errors.log").read_text()
    assert "Traceback" in log and "RuntimeError: a bug in a slot" in log
