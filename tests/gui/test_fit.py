"""Every tab fits the window at 1280x800 and 1920x1080: the lab's minimum size fits its page, and no plot's content
(titles, axes, colour bars) is wider or taller than the view that shows it (pyqtgraph lays out past the edge when a
long title asks for more width than there is, which clips the right-hand labels)."""
import pyqtgraph as pg
import pytest
from PySide6.QtCore import QSettings, QStandardPaths, Qt
from PySide6.QtWidgets import QTabWidget

from gui.main_window import MainWindow


@pytest.fixture(params=[(1280, 800, False), (1920, 1080, False), (1280, 800, True)],
                ids=["1280x800", "1920x1080", "1280x800+lesson"])
def window(qtbot, tmp_path, request):
    QStandardPaths.setTestModeEnabled(True)
    w = MainWindow(settings=QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat), warm_up=False, recovery=False)
    width, height, lesson = request.param
    w.resize(width, height)
    w.show()
    qtbot.waitExposed(w)
    if lesson:           # a teacher's laptop: the lesson dock beside the labs takes 300+ px of the 1280
        w.open_lesson("l7-optimizers-and-batchnorm")
        qtbot.waitUntil(lambda: w.lesson_dock.isVisible())
        qtbot.wait(60)
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
    assert problems == [], "\n".join(problems)


# ---- the pieces that make a narrow page fit


def test_flow_splitter_stacks_below_its_panes_width_and_returns(qtbot):
    from PySide6.QtWidgets import QVBoxLayout, QWidget

    from gui.labs.common import FlowSplitter
    a, b = QWidget(), QWidget()
    a.setMinimumWidth(300)
    b.setMinimumWidth(200)
    s = FlowSplitter(side=(3, 1), stacked=(1, 1))
    s.addWidget(a)
    s.addWidget(b)
    seen = []
    s.arrangement_changed.connect(seen.append)
    page = QWidget()                    # a page in a window: its width is the window's, whatever the splitter asks
    lay = QVBoxLayout(page)
    lay.setContentsMargins(0, 0, 0, 0)
    lay.addWidget(s)
    qtbot.addWidget(page)
    page.resize(800, 400)
    page.show()
    qtbot.waitExposed(page)
    assert s.side_by_side_width() == 500 + s.handleWidth()
    assert not s.stacked and seen == [False]
    assert a.width() > 2.5 * b.width()                 # the side shares, 3 : 1
    assert s.minimumSizeHint().width() == 300          # it can stack, so it never asks for 504
    page.resize(450, 400)                               # narrower than 300 + 200: one above the other
    qtbot.waitUntil(lambda: s.stacked)
    assert seen == [False, True]
    assert a.width() == b.width() == 450 and abs(a.height() - b.height()) <= s.handleWidth()
    assert s.minimumSizeHint().width() == 300
    page.resize(520, 400)                               # room for both again
    qtbot.waitUntil(lambda: not s.stacked)
    assert seen == [False, True, False] and a.width() >= 300 and b.width() >= 200
    # a pane's minimum width grows with no resize (a stacked page switched, a table grew): it stacks at once
    inner = QWidget()
    inner.setMinimumWidth(380)
    QVBoxLayout(b).addWidget(inner)
    b.setMinimumWidth(0)
    qtbot.waitUntil(lambda: s.stacked)
    assert seen == [False, True, False, True]
    inner.setMinimumWidth(100)                          # and unstacks when it shrinks again
    qtbot.waitUntil(lambda: not s.stacked)
    assert seen == [False, True, False, True, False] and a.width() >= 300


def test_a_stacked_widget_asks_only_for_its_current_page(qtbot):
    from PySide6.QtWidgets import QHBoxLayout, QStackedWidget, QWidget

    from gui.labs.common import size_to_current_page

    def page(content_width):            # a page as wide as its content asks (a row of templates, a 1x1 matrix)
        p, inner = QWidget(), QWidget()
        inner.setFixedWidth(content_width)
        QHBoxLayout(p).addWidget(inner)
        return p
    small, wide = page(100), page(700)
    stack = QStackedWidget()
    qtbot.addWidget(stack)
    stack.addWidget(small)
    stack.addWidget(wide)
    assert stack.minimumSizeHint().width() >= 700       # Qt's own: the widest page, shown or not
    size_to_current_page(stack)
    assert stack.minimumSizeHint().width() < 700
    stack.setCurrentIndex(1)
    assert stack.minimumSizeHint().width() >= 700


def test_optimizers_move_loss_and_schedule_under_the_surface_when_narrow(qtbot):
    from gui.labs.optimizer_lab import OptimizerLab
    lab = OptimizerLab()
    qtbot.addWidget(lab)
    lab.resize(975, 728)                                # a 1280x800 window with the lesson dock open
    lab.show()
    qtbot.waitExposed(lab)
    qtbot.waitUntil(lambda: lab.plots_splitter.stacked)
    assert lab.side_tabs.isVisible() and lab.side_tabs.count() == 2
    assert lab.side_tabs.indexOf(lab.loss_plot) == 0 and lab.side_tabs.indexOf(lab.schedule_designer) == 1
    hint = lab.minimumSizeHint()
    assert hint.width() <= 975 and hint.height() <= 728
    assert lab.surface_plot.width() >= 450               # not a 200-px strip
    assert lab.schedule_designer.apply_button.width() >= lab.schedule_designer.apply_button.sizeHint().width()
    bar = lab.side_tabs.tabBar()
    qtbot.mouseClick(bar, Qt.MouseButton.LeftButton, pos=bar.tabRect(1).center())
    assert lab.side_tabs.currentWidget() is lab.schedule_designer
    lab.resize(1600, 900)                               # wide again: three columns, nothing in tabs
    qtbot.waitUntil(lambda: not lab.plots_splitter.stacked)
    assert not lab.side_tabs.isVisible() and lab.side_tabs.count() == 0
    assert lab.loss_plot.isVisible() and lab.schedule_designer.isVisible()
    assert lab.loss_plot.x() == lab.schedule_designer.x()          # one column, the loss above the designer
    assert lab.loss_plot.mapTo(lab, lab.loss_plot.rect().topLeft()).x() > lab.surface_plot.mapTo(
        lab, lab.surface_plot.rect().topRight()).x()
    lab.resize(975, 728)                                # narrow again: the tab chosen last time is the one shown
    qtbot.waitUntil(lambda: lab.plots_splitter.stacked)
    assert lab.side_tabs.currentWidget() is lab.schedule_designer and lab.schedule_designer.isVisible()
    lab.close()
