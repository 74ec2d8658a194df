"""Run → Write your own op, driven with clicks and typing: a wrong backward is shown cell by cell and cannot be
added, a fixed one joins the palette and works in an expression, an endless loop leaves the window responsive, and
the op comes back in the next session."""
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction

from gui.user_op_dialog import UserOpDialog
from simulator.engine.user_ops import TEMPLATE, unregister_user_op


def _check(qtbot, dialog):
    qtbot.mouseClick(dialog.check_button, Qt.LeftButton)         # disables itself until the check is back
    assert not dialog.check_button.isEnabled()
    qtbot.waitUntil(lambda: dialog.check_button.isEnabled(), timeout=30_000)


def test_write_check_fix_add_and_use(qtbot, tmp_path, make_window):
    w = make_window(tmp_path / "s.ini")
    try:
        action = next(a for a in w.findChildren(QAction) if a.text() == "&Write your own op…")
        action.trigger()
        dialog = w.findChildren(UserOpDialog)[-1]
        dialog.name_edit.setText("my_leaky")
        leaky = TEMPLATE.replace("np.maximum(0.0, x)", "np.where(x > 0, x, 0.1 * x)")
        dialog.editor.setPlainText(leaky)
        _check(qtbot, dialog)
        r = dialog.result
        assert r is not None and not r.ok and not dialog.add_button.isEnabled()
        rows, cols = (r.x < 0).nonzero()
        i, j = int(rows[0]), int(cols[0])
        assert dialog.grid.item(i, j).background().color().name() == "#fbeaea"
        assert "elements of dx are wrong" in dialog.summary.text()
        # fix the backward by typing in the editor
        dialog.editor.setPlainText(leaky.replace("dx = dout * (x > 0)", "dx = dout * np.where(x > 0, 1.0, 0.1)"))
        _check(qtbot, dialog)
        assert dialog.result.ok and dialog.add_button.isEnabled()
        dialog.editor.appendPlainText("# an edit after the check")          # changed code must be checked again
        assert not dialog.add_button.isEnabled()
        _check(qtbot, dialog)
        qtbot.mouseClick(dialog.add_button, Qt.LeftButton)
        assert w.palette.item_for("my_leaky") is not None
        w.expression_edit.setText("my_leaky(x) * 2")
        w.build_from_expression()
        w.player.flush()
        w.graph.set_value("x", -3.0)
        w.player.flush()
        w.player.to_end()
        assert float(w.player.state().grads["x"]) == pytest.approx(0.2)
        # an endless loop: an error after the time limit, the window keeps working
        dialog.name_edit.setText("spin")
        dialog.editor.setPlainText("def forward(x):\n    while True:\n        pass\n\ndef backward(d, c):\n    return d\n")
        _check(qtbot, dialog)
        assert "more than 3 s" in dialog.summary.text() and not dialog.add_button.isEnabled()
        dialog.close()
        w.undo_stack.setClean()
        w.close()
        # the next session has it again
        w2 = make_window(tmp_path / "s.ini")
        assert w2.palette.item_for("my_leaky") is not None
        w2.undo_stack.setClean()
        w2.close()
    finally:
        unregister_user_op("my_leaky")
