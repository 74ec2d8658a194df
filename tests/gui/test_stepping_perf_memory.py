"""Stepping for a long time costs no memory (issue 11: 6,000 seeks grew the process by 1.5 GB while the inspector
followed the step) and costs each step the same whatever the position (issue 12). Memory from /proc/self/statm."""
import os

import pytest
from PySide6.QtCore import QSettings, QStandardPaths
from PySide6.QtWidgets import QApplication

from gui.main_window import MainWindow
from simulator import load_example

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE / 2**20


@pytest.fixture
def window(qtbot, tmp_path):
    QStandardPaths.setTestModeEnabled(True)
    w = MainWindow(settings=QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat), warm_up=False)
    w.autosave_path = tmp_path / "autosave.bps.json"
    w.resize(1200, 800)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.undo_stack.setClean()
    w.close()
    w.deleteLater()


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc")
def test_thousands_of_seeks_with_the_inspector_following_do_not_grow_memory(window):
    w = window
    w.replace_graph(load_example("two_layer_net"), "two-layer net")
    w.player.flush()
    app = QApplication.instance()
    n = w.player.length
    assert n > 5 and not w.scene.selected_ids()

    def seek_many(count):
        for i in range(count):
            w.player.seek((i * 7) % (n + 1))
            if i % 10 == 0:
                app.processEvents()
    seek_many(600)   # warm-up: caches, fonts, the allocator's pools
    followed = set()
    before = rss_mb()
    for i in range(3000):
        w.player.seek((i * 7) % (n + 1))
        followed.add(w.inspector.node_id)
        if i % 10 == 0:
            app.processEvents()
    growth = rss_mb() - before
    assert len(followed) >= 4   # the inspector really followed the step from node to node
    assert w.inspector.retired_count <= 1
    assert growth < 6.0, f"RSS grew {growth:.1f} MB over 3000 seeks"


def test_the_state_of_the_last_step_is_as_cheap_to_reach_as_the_first(window):
    w = window
    w.replace_graph(load_example("two_layer_net"), "two-layer net")
    w.player.flush()
    trace = w.player.trace
    # O(1) seeking: a state copies nothing, whatever the position (it reads the trace's per-key histories)
    first, last = trace.state_at(1), trace.state_at(len(trace))
    assert type(first.values) is type(last.values) and not isinstance(last.values, dict)
    assert last.values["L"] is trace.value
