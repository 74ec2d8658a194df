"""TabWidget: a label's new text on a page repaints the label, not the whole tab widget; tabs, corners, sizes
and a page's minimum size are still laid out as QTabWidget lays them out."""
from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QLabel, QPushButton, QStackedWidget, QTabWidget, QVBoxLayout, QWidget

from gui.tab_widget import TabWidget


class PaintCounter(QObject):
    """For each widget: how many paint events it got, and the largest area (pixels) one of them painted."""

    def __init__(self, *widgets):
        super().__init__()
        self.count = {w: 0 for w in widgets}
        self.largest = {w: 0 for w in widgets}
        for w in widgets:
            w.installEventFilter(self)

    def eventFilter(self, obj, ev):
        if ev.type() == QEvent.Type.Paint:
            self.count[obj] += 1
            self.largest[obj] = max(self.largest[obj], ev.rect().width() * ev.rect().height())
        return False


def page_with_labels(tabs_class, qtbot):
    tabs = tabs_class()
    page = QWidget()
    lay = QVBoxLayout(page)
    step = QLabel("Forward 1 / 9")
    other = QPushButton("a widget that does not change")
    lay.addWidget(step)
    lay.addWidget(other)
    lay.addStretch(1)
    tabs.addTab(page, "Backprop")
    tabs.addTab(QWidget(), "Playground")
    qtbot.addWidget(tabs)
    tabs.resize(640, 400)
    tabs.show()
    qtbot.waitExposed(tabs)
    qtbot.wait(20)
    return tabs, page, step, other


def repaints_after_new_text(qtbot, tabs, step, other):
    counter = PaintCounter(tabs, other, step)
    for k in range(2, 8):
        step.setText(f"<b>Backward {k} / 9</b> — node q{k} (mul), a title that is longer every step" + "!" * k)
        qtbot.wait(5)
    return counter


def test_new_text_on_a_page_repaints_the_label_only(qtbot):
    tabs, page, step, other = page_with_labels(TabWidget, qtbot)
    before = tabs.full_layouts
    painted = repaints_after_new_text(qtbot, tabs, step, other)
    assert painted.count[step] >= 6                       # the label shows each text
    assert painted.count[other] == 0                      # nothing else is painted again: the tab widget only
    assert painted.largest[tabs] <= step.width() * step.height()   # under the label, which has no background
    assert tabs.full_layouts == before
    assert "Backward 7 / 9" in step.text() and step.isVisible()


def test_qt_tab_widget_repaints_everything_for_the_same_change(qtbot):
    """What TabWidget avoids (if Qt stops doing this, TabWidget can go)."""
    tabs, page, step, other = page_with_labels(QTabWidget, qtbot)
    painted = repaints_after_new_text(qtbot, tabs, step, other)
    assert painted.count[other] >= 3 and painted.largest[tabs] >= tabs.width() * tabs.height() // 2


def test_tabs_renamed_added_and_resized_are_laid_out_again(qtbot):
    tabs, page, step, other = page_with_labels(TabWidget, qtbot)
    bar = tabs.tabBar()
    width = bar.width()
    tabs.setTabText(1, "A much longer title for the second tab")
    qtbot.waitUntil(lambda: bar.width() > width + 100)
    assert bar.width() >= bar.sizeHint().width() - 1
    tabs.addTab(QWidget(), "Third")
    qtbot.waitUntil(lambda: bar.tabRect(2).right() <= bar.width() and bar.width() >= bar.sizeHint().width() - 1)
    tabs.resize(900, 500)
    qtbot.waitUntil(lambda: page.width() > 850 and page.height() > 400)
    layouts = tabs.full_layouts
    corner = QPushButton("corner")
    tabs.setCornerWidget(corner)
    corner.show()
    qtbot.waitUntil(lambda: corner.isVisible() and corner.geometry().right() >= tabs.width() - 4)   # top right
    assert not corner.geometry().intersects(bar.geometry())
    assert tabs.full_layouts > layouts


def test_a_page_that_needs_more_room_still_gets_it(qtbot):
    outer = QWidget()
    lay = QVBoxLayout(outer)
    tabs = TabWidget()
    lay.addWidget(tabs)
    page = QWidget()
    content = QLabel("x")
    QVBoxLayout(page).addWidget(content)
    tabs.addTab(page, "Page")
    qtbot.addWidget(outer)
    outer.show()
    qtbot.waitExposed(outer)
    qtbot.wait(20)
    small, layouts = outer.height(), tabs.full_layouts
    content.setMinimumHeight(small + 300)      # the page's content, not the tab widget's tabs, changed
    qtbot.waitUntil(lambda: outer.height() >= small + 300 and content.height() >= small + 300)   # the window grew
    assert tabs.full_layouts == layouts


def drive(tabs_class, qtbot, steps):
    """A tab widget with a changing label on its first page, driven through `steps` (each a function of the tab
    widget, its tab bar, its corner widget and the label), then where its tab bar, stack and corner ended up."""
    tabs = tabs_class()
    page = QWidget()
    label = QLabel("step 1")
    QVBoxLayout(page).addWidget(label)
    tabs.addTab(page, "Backprop")
    tabs.addTab(QWidget(), "Playground")
    corner = QPushButton("corner")
    tabs.setCornerWidget(corner)
    qtbot.addWidget(tabs)
    tabs.resize(700, 400)
    tabs.show()
    corner.show()
    qtbot.waitExposed(tabs)
    qtbot.wait(10)
    for k, step in enumerate(steps):
        step(tabs, tabs.tabBar(), corner)
        qtbot.wait(5)
        label.setText(f"step {k + 2}")              # a LayoutRequest from the page after each change
        qtbot.wait(5)
    stack = tabs.findChild(QStackedWidget)
    return tabs.tabBar().geometry(), stack.geometry(), corner.geometry()


def test_children_placed_outside_a_layout_request_are_placed_again_as_qt_places_them(qtbot):
    """QTabWidget also places its children on a resize or a new title, without a LayoutRequest; a skipped request
    must not leave them where such a placement put them for another state (found by review)."""
    longer = "Backprop — a much longer title"
    scenarios = [
        [lambda t, b, c: c.setText("a wider corner"),                      # the tab bar placed for a long title
         lambda t, b, c: b.setTabText(0, longer),                          # by a resize, then the title back
         lambda t, b, c: (t.resize(701, 400), t.resize(700, 400)),
         lambda t, b, c: b.setTabText(0, "Backprop")],
        [lambda t, b, c: c.setText("a wider corner"),                      # a corner widget wider, then back
         lambda t, b, c: t.setTabText(1, "Playground!"),
         lambda t, b, c: c.setText("corner")],
        [lambda t, b, c: c.resize(150, 40)],                                # a corner resized from outside
    ]
    for steps in scenarios:
        assert drive(TabWidget, qtbot, steps) == drive(QTabWidget, qtbot, steps)
