"""GUI test helpers: a main window with its own settings file, shown at 1280x800 and closed without questions."""
import pytest
from PySide6.QtCore import QSettings, QStandardPaths

from gui.main_window import MainWindow


@pytest.fixture
def make_window(qtbot):
    """make_window(ini_path) -> a shown MainWindow (no warm-up, no recovery) on that settings file; every window it
    made is closed at the end of the test (unsaved changes dropped)."""
    made = []

    def make(ini):
        QStandardPaths.setTestModeEnabled(True)
        w = MainWindow(settings=QSettings(str(ini), QSettings.IniFormat), warm_up=False, recovery=False)
        w.resize(1280, 800)
        w.show()
        qtbot.waitExposed(w)
        made.append(w)
        return w

    yield make
    for w in made:
        try:
            w.undo_stack.setClean()
            w.close()
        except RuntimeError:            # already deleted by the test
            pass
