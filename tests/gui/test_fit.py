"""Every tab fits the window at 1280x800 and 1920x1080: the lab's minimum size fits its page, and no plot's content
(titles, axes, colour bars) is wider or taller than the view that shows it (pyqtgraph lays out past the edge when a
long title asks for more width than there is, which clips the right-hand labels)."""
import pyqtgraph as pg
import pytest
from PySide6.QtCore import QSettings, QStandardPaths
from PySide6.QtWidgets import QTabWidget

from gui.main_window import MainWindow


@pytest.fixture(params=[(1280, 800), (1920, 1080)], ids=["1280x800", "1920x1080"])
def window(qtbot, tmp_path, request):
    QStandardPaths.setTestModeEnabled(True)
    w = MainWindow(settings=QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat), warm_up=False, recovery=False)
    w.resize(*request.param)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.undo_stack.setClean()
    w.close()
    w.deleteLater()


def _overflowing_plots(widget) -> list[str]:
    bad = []
    for view in widget.findChildren(pg.GraphicsView):
        if not view.isVisible():
            continue
        content = view.centralWidget.sceneBoundingRect()
        port = view.viewport()
        if content.width() > port.width() + 1 or content.height() > port.height() + 1:
            bad.append(f"{type(view).__name__} {content.width():.0f}x{content.height():.0f} in "
                       f"{port.width()}x{port.height()}")
    return bad


def test_every_tab_fits_without_clipping(qtbot, window):
    w = window
    problems = []
    for i in range(1, w.tabs.count()):
        title = w.tabs.tabText(i)
        w.tabs.setCurrentIndex(i)
        qtbot.wait(60)
        lab = w.labs[title]
        page = w.tabs.widget(i)
        hint = lab.minimumSizeHint()
        if hint.width() > page.width() or hint.height() > page.height():
            problems.append(f"{title}: needs {hint.width()}x{hint.height()}, has {page.width()}x{page.height()}")
        inner = [(t, k) for t in lab.findChildren(QTabWidget) for k in range(t.count())] or [(None, 0)]
        for tabs, k in inner:
            if tabs is not None:
                tabs.setCurrentIndex(k)
                qtbot.wait(30)
            where = f"{title}" + (f" / {tabs.tabText(k)}" if tabs is not None else "")
            problems += [f"{where}: {p}" for p in _overflowing_plots(lab)]
    assert problems == []
