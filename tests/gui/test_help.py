"""Help: a note per tab tied to its lecture, the shortcuts read from the window's actions, and the first-start tour
(Next through every step, or Skip; done once)."""
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction

from gui.help import TAB_NOTES, TOUR_DONE_KEY, shortcuts_of


def test_every_tab_has_a_note_and_F2_shows_the_current_one(qtbot, tmp_path, make_window):
    w = make_window(tmp_path / "s.ini")
    assert set(TAB_NOTES) == {w.tabs.tabText(i) for i in range(w.tabs.count())}
    w.tabs.setCurrentIndex(3)
    box = w.what_am_i_seeing()
    assert w.current_tab in box.windowTitle() and TAB_NOTES[w.current_tab][0] in box.text()
    box.close()
    w.undo_stack.setClean()
    w.close()


def test_the_shortcuts_come_from_the_actions(qtbot, tmp_path, make_window):
    w = make_window(tmp_path / "s.ini")
    rows = dict(shortcuts_of(w))
    assert rows["Lessons"] == "F1" and rows["Step forward"] == "Right" and rows["What am I seeing?"] == "F2"
    n_actions = sum(1 for a in w.findChildren(QAction) if not a.shortcut().isEmpty() and a.text())
    dialog = w.show_shortcuts()
    assert dialog.table.rowCount() == len(rows) <= n_actions
    dialog.close()
    w.undo_stack.setClean()
    w.close()


def test_the_tour_steps_through_the_window_once(qtbot, tmp_path, make_window):
    w = make_window(tmp_path / "s.ini")
    assert w.offer_tour()
    tour = w.tour
    seen = []
    while True:
        assert tour.isVisible()
        r = tour.geometry()
        assert w.rect().contains(r)                        # always inside the window
        seen.append(tour.title.text())
        if tour.next_button.text() == "Done":
            qtbot.mouseClick(tour.next_button, Qt.LeftButton)
            break
        qtbot.mouseClick(tour.next_button, Qt.LeftButton)
    assert len(seen) == len(tour.steps) == 6 and not tour.isVisible()
    assert w.settings.value(TOUR_DONE_KEY) in (True, "true")
    assert not w.offer_tour()                               # once
    w.undo_stack.setClean()
    w.close()
    w2 = make_window(tmp_path / "s2.ini")
    w2.offer_tour()
    qtbot.mouseClick(w2.tour.skip_button, Qt.LeftButton)    # skipping counts as done
    assert not w2.offer_tour()
    w2.undo_stack.setClean()
    w2.close()
