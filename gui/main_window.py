"""The main window: the graph canvas with its expression bar, the step player and chain-rule view, the palette and
inspector docks, menus, files (open, save, recent, autosave and recovery) and exports."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PySide6.QtCore import QBuffer, QCoreApplication, QEvent, QIODevice, QPointF, QRectF, QSettings, QSize, Qt, QTimer
from PySide6.QtGui import QAction, QColor, QImage, QKeySequence, QPainter, QUndoStack
from PySide6.QtWidgets import (QApplication, QDialog, QDialogButtonBox, QDockWidget, QFileDialog, QHBoxLayout,
                               QHeaderView, QLabel, QLineEdit, QMainWindow, QMessageBox, QProgressBar, QPushButton,
                               QSplitter, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from gui import commands, theme
from gui.recovery import WindowRecovery
from gui.editor.palette import PalettePanel, PlaceOpPopup
from gui.editor.scene import GraphScene
from gui.editor.view import GraphView
from gui.panels.inspector import InspectorPanel
from gui.stepping.chain_rule import ChainRulePanel
from gui.stepping.player import StepPlayer
from gui.stepping.quiz_panel import QuizPanel
from gui.help import TOUR_DONE_KEY, ShortcutsDialog, Tour, TourStep, tab_note_html
from gui.lessons import LessonBrowser, LessonPanel
from gui.user_op_dialog import USER_OPS_KEY, UserOpDialog
from gui.stepping.transport import TransportBar
from gui.idle import IdleQueue
from gui.jobs import JobRunner
from gui.tab_widget import TabWidget
from simulator import EXAMPLES, ExpressionError, FileFormatError, Graph, StudioError, load_example
from simulator.core.files import atomic_write
from simulator.graphs import fileformat
from simulator.engine.gradcheck import check_graph, check_node
from simulator.engine.quiz import Quiz
from simulator.engine.user_ops import register_user_op
from simulator.labs.lessons import Lesson, LessonStep, load_lesson, step_graph

APP_NAME = "Backprop Studio"
# The Backprop tab's dock layout; a new key (and version) so layouts saved with collapsed docks are not restored.
EDITOR_STATE_KEY = "editor_state"
LAYOUT_VERSION = 2
PREPARE_LABS_KEY = "prepare_labs"
PALETTE_MIN_WIDTH = 170
INSPECTOR_MIN_WIDTH = 260
DEFAULT_SIZE = QSize(1440, 880)


def default_window_size() -> QSize:
    """1440x880, or less on a smaller screen (the window must fit the screen it opens on)."""
    screen = QApplication.primaryScreen()
    if screen is None:
        return DEFAULT_SIZE
    avail = screen.availableGeometry().size()
    return QSize(min(DEFAULT_SIZE.width(), avail.width()), min(DEFAULT_SIZE.height(), avail.height()))
FILE_FILTER = "Backprop Studio graphs (*.bps.json *.json);;All files (*)"
MAX_RECENT = 8


def image_bytes(image: QImage, fmt: str = "PNG") -> bytes:
    """An image (or pixmap) encoded in memory, for atomic_write."""
    buf = QBuffer()
    buf.open(QIODevice.WriteOnly)
    if not image.save(buf, fmt):
        raise OSError(f"the image cannot be encoded as {fmt}")
    return bytes(buf.data())


class GradCheckDialog(QDialog):
    """Analytic vs numerical gradients with their relative error, coloured by the cs231n thresholds."""

    def __init__(self, checks, title: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle(title)
        self.resize(720, 320)
        lay = QVBoxLayout(self)
        intro = QLabel("Centred differences (f(x+h) − f(x−h)) / 2h with h = 1e-5, in float64. Relative error "
                       "|a − n| / max(|a|, |n|): <span style='color:#1a7f37'>green</span> below 1e-7, "
                       "<span style='color:#b7791f'>amber</span> up to 1e-2 (fine at kinks such as ReLU's), "
                       "<span style='color:#c0392b'>red</span> above: the gradient is probably wrong.")
        intro.setWordWrap(True)
        lay.addWidget(intro)
        self.table = QTableWidget(len(checks), 4, self)
        self.table.setHorizontalHeaderLabels(["gradient", "analytic", "numerical", "max relative error"])
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.Stretch)
        colours = {"good": QColor("#d8f3dc"), "warn": QColor("#fdebc8"), "bad": QColor("#f8d7da")}
        for i, c in enumerate(checks):
            cells = [c.what, _short(c.analytic), _short(c.numeric), f"{c.max_error:.2e}"]
            for j, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setBackground(colours[c.status])
                item.setFlags(item.flags() & ~Qt.ItemIsEditable)
                self.table.setItem(i, j, item)
        lay.addWidget(self.table)
        buttons = QDialogButtonBox(QDialogButtonBox.Close, self)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)
        self.checks = checks


def _short(a: np.ndarray) -> str:
    a = np.asarray(a)
    if a.ndim == 0:
        return f"{float(a):.8g}"
    return np.array2string(a.reshape(-1)[:6], precision=5, separator=", ") + (" …" if a.size > 6 else "")


def _optimizer_lab(parent: QWidget) -> QWidget:
    from gui.labs.optimizer_lab import OptimizerLab
    return OptimizerLab(parent)


def _classic_lab(parent: QWidget) -> QWidget:
    from gui.labs.classic_lab import ClassicLab
    return ClassicLab(parent)


def _conv_lab(parent: QWidget) -> QWidget:
    from gui.labs.conv_lab import ConvLab
    return ConvLab(parent)


def _playground_lab(parent: "MainWindow") -> QWidget:
    from gui.labs.playground import PlaygroundLab
    lab = PlaygroundLab(parent)
    lab.graph_requested.connect(parent.open_network_graph)
    lab.model_trained.connect(parent._on_model_trained)
    return lab


def _init_lab(parent: QWidget) -> QWidget:
    from gui.labs.init_lab import InitLab
    return InitLab(parent)


def _interpret_lab(parent: QWidget) -> QWidget:
    from gui.labs.interpret_lab import InterpretLab
    return InterpretLab(parent)


def _selfsup_lab(parent: "MainWindow") -> QWidget:
    from gui.labs.selfsup_lab import SelfSupervisedLab
    lab = SelfSupervisedLab(parent)
    lab.encoder_sent.connect(parent._on_encoder_sent)
    return lab


def _search_lab(parent: "MainWindow") -> QWidget:
    from gui.labs.search_lab import SearchLab
    lab = SearchLab(parent)
    lab.best_config_applied.connect(parent._on_best_config_applied)
    return lab


# The inspector follows the stepping this long after the last step (a step at play speed 8/s is 125 ms apart).
INSPECTOR_FOLLOW_MS = 60


class MainWindow(QMainWindow):
    def __init__(self, settings: QSettings | None = None, warm_up: bool = True,
                 recovery: bool | str | os.PathLike = True):
        """recovery: True autosaves into the app's recovery folder, a path into that folder, False not at all."""
        super().__init__()
        self.settings = settings or QSettings("Backprop Studio", "Backprop Studio")
        self.graph = Graph()
        self.undo_stack = QUndoStack(self)
        self.current_path: Path | None = None
        self.example_name: str | None = None
        self.graph_name: str | None = None      # the title of a graph made by the app (no file, no example)
        self.scene = GraphScene(self.graph, self.undo_stack, self)
        self.view = GraphView(self.scene, self)
        self.jobs = JobRunner(self)
        self.player = StepPlayer(self.graph, self, jobs=self.jobs)   # large graphs are re-traced on a worker
        self._shown_position = 0
        self.setWindowTitle(APP_NAME)
        self.setMinimumSize(QSize(900, 600))
        self._build_central()
        self._build_docks()
        self._build_actions()
        self._build_status()
        self._connect()
        self._restore_user_ops()
        self._restore_layout()
        self.recovery = None if recovery is False else WindowRecovery(self, None if recovery is True else recovery)
        self.warmup_plan = None
        self.current_tab = "Backprop"
        if warm_up:
            self._start_warmup()
        self._update_title()

    # ---- construction ---------------------------------------------------------------------------------------

    def _build_central(self) -> None:
        page = QWidget(self)
        lay = QVBoxLayout(page)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        bar = QWidget(page)
        bar.setObjectName("ExpressionBar")
        bl = QHBoxLayout(bar)
        bl.setContentsMargins(10, 6, 10, 6)
        f_label = QLabel("f =", bar)
        f_label.setObjectName("ExpressionLabel")
        self.expression_edit = QLineEdit(bar)
        self.expression_edit.setPlaceholderText("Type an expression, e.g. 1 / (1 + exp(-(w0*x0 + w1*x1 + w2))), "
                                                "and press Enter")
        self.expression_edit.setClearButtonEnabled(True)
        build = QPushButton("Build graph", bar)
        build.clicked.connect(self.build_from_expression)
        self.expression_edit.returnPressed.connect(self.build_from_expression)
        bl.addWidget(f_label)
        bl.addWidget(self.expression_edit, 1)
        bl.addWidget(build)
        self.expression_error = QLabel("", page)
        self.expression_error.setObjectName("ErrorBanner")
        self.expression_error.setWordWrap(True)
        self.expression_error.setTextFormat(Qt.TextFormat.PlainText)   # the learner's text, quotes and all
        self.expression_error.hide()

        self.chain_panel = ChainRulePanel(page)
        self.quiz_panel = QuizPanel(page)
        self.quiz_panel.hide()
        self.transport = TransportBar(self.player, page)
        split = QSplitter(Qt.Vertical, page)
        split.addWidget(self.view)
        split.addWidget(self.chain_panel)
        split.addWidget(self.quiz_panel)
        split.setStretchFactor(0, 5)
        split.setStretchFactor(1, 1)
        split.setStretchFactor(2, 1)
        split.setChildrenCollapsible(False)
        lay.addWidget(bar)
        lay.addWidget(self.expression_error)
        lay.addWidget(split, 1)
        lay.addWidget(self.transport)
        self.graph_page = page
        # The Backprop tab is a main window of its own: the palette and inspector docks belong to it, so they keep
        # their width when another tab is shown and the tab bar never moves.
        self.editor_window = QMainWindow(self)
        self.editor_window.setWindowFlags(Qt.WindowType.Widget)
        self.editor_window.setDockNestingEnabled(False)
        self.editor_window.setCentralWidget(page)
        self.tabs = TabWidget(self)
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self.editor_window, "Backprop")
        # Labs are built the first time their tab is opened, or in idle moments once the kernels are ready
        # (prepare_labs), so start-up stays quick.
        self.labs: dict[str, QWidget] = {}
        self._laid_out: set[str] = set()          # labs shown or painted once (prepare_labs)
        self.idle_tasks = IdleQueue(self, busy=self._labs_working)
        self.pending_model = None  # the last image model trained in the playground, for the interpretability lab
        self._lab_factories = {"Playground": _playground_lab, "Init / norm": _init_lab,
                               "Optimizers": _optimizer_lab, "Classifiers": _classic_lab, "Convolution": _conv_lab,
                               "Interpretability": _interpret_lab, "Self-supervised": _selfsup_lab,
                               "Search": _search_lab}
        for title in self._lab_factories:
            holder = QWidget(self)
            QVBoxLayout(holder).setContentsMargins(0, 0, 0, 0)
            self.tabs.addTab(holder, title)
        self.tabs.currentChanged.connect(self._on_tab_changed)
        self.setCentralWidget(self.tabs)

    def _build_docks(self) -> None:
        # the lesson beside every tab: a dock of the outer window, hidden until a lesson is opened
        self.lesson_panel = LessonPanel(self.settings, self)
        self.lesson_panel.step_shown.connect(self.apply_lesson_step)
        self.lesson_panel.closed.connect(lambda: self.lesson_dock.hide())
        self.lesson_dock = QDockWidget("Lesson", self)
        self.lesson_dock.setObjectName("LessonDock")
        self.lesson_dock.setWidget(self.lesson_panel)
        self.lesson_dock.setMinimumWidth(300)
        self.addDockWidget(Qt.RightDockWidgetArea, self.lesson_dock)
        self.lesson_dock.hide()
        self.palette = PalettePanel(self)
        self.palette_dock = QDockWidget("Ops", self.editor_window)
        self.palette_dock.setObjectName("PaletteDock")
        self.palette_dock.setWidget(self.palette)
        self.palette_dock.setMinimumWidth(PALETTE_MIN_WIDTH)
        self.editor_window.addDockWidget(Qt.LeftDockWidgetArea, self.palette_dock)
        self.inspector = InspectorPanel(self.graph, self.undo_stack, self.player, self)
        # With nothing selected the inspector follows the step shown, once stepping rests for INSPECTOR_FOLLOW_MS:
        # a re-formed inspector cost a third of a step at 500 nodes, spent on nodes a held key or a scrub passes by
        self._follow_timer = QTimer(self)
        self._follow_timer.setSingleShot(True)
        self._follow_timer.setInterval(INSPECTOR_FOLLOW_MS)
        self._follow_timer.timeout.connect(self._follow_step)
        self.inspector_dock = QDockWidget("Inspector", self.editor_window)
        self.inspector_dock.setObjectName("InspectorDock")
        self.inspector_dock.setWidget(self.inspector)
        self.inspector_dock.setMinimumWidth(INSPECTOR_MIN_WIDTH)
        self.editor_window.addDockWidget(Qt.RightDockWidgetArea, self.inspector_dock)
        self.editor_window.resizeDocks([self.palette_dock, self.inspector_dock], [210, 320], Qt.Horizontal)

    def _action(self, menu, text, slot, shortcut=None, tip=None) -> QAction:
        a = QAction(text, self)
        if shortcut is not None:
            a.setShortcut(QKeySequence(shortcut))
        if tip:
            a.setStatusTip(tip)
        a.triggered.connect(slot)
        menu.addAction(a)
        return a

    def _build_actions(self) -> None:
        mb = self.menuBar()
        m = mb.addMenu("&File")
        self._action(m, "&New", self.new_graph, QKeySequence.New)
        self._action(m, "&Open…", self.open_dialog, QKeySequence.Open)
        self.recent_menu = m.addMenu("Open &Recent")
        self._action(m, "&Save", self.save, QKeySequence.Save)
        self._action(m, "Save &As…", self.save_as, QKeySequence.SaveAs)
        m.addSeparator()
        self._action(m, "Export as &PNG…", lambda: self.export_dialog("png"))
        self._action(m, "Export as S&VG…", lambda: self.export_dialog("svg"))
        self._action(m, "Export stepping as animated &GIF…", lambda: self.export_dialog("gif"))
        m.addSeparator()
        self._action(m, "&Quit", self.close, QKeySequence.Quit)

        m = mb.addMenu("&Edit")
        undo = self.undo_stack.createUndoAction(self, "&Undo")
        undo.setShortcut(QKeySequence.Undo)
        redo = self.undo_stack.createRedoAction(self, "&Redo")
        redo.setShortcut(QKeySequence.Redo)
        m.addAction(undo)
        m.addAction(redo)
        m.addSeparator()
        self._action(m, "Cu&t", self.cut, QKeySequence.Cut)
        self._action(m, "&Copy", self.copy, QKeySequence.Copy)
        self._action(m, "&Paste", self.paste, QKeySequence.Paste)
        self._action(m, "&Duplicate", self.scene.duplicate_selected, "Ctrl+D")
        self._action(m, "De&lete", self.scene.delete_selected)
        m.addSeparator()
        self._action(m, "Tidy &layout", self.tidy_layout, "Ctrl+L")

        m = mb.addMenu("&View")
        self._action(m, "&Fit graph to window", self.view.fit_to_view, "Ctrl+0")
        m.addAction(self.palette_dock.toggleViewAction())
        m.addAction(self.inspector_dock.toggleViewAction())
        m.addSeparator()
        self.prepare_labs_action = self._action(
            m, "Prepare labs in idle moments", self._set_prepare_labs,
            tip="Build every lab and lay it out while the window is idle, so that a lab opens at once the first time "
                "(the labs take their memory from the start: about 250 MB for all eight)")
        self.prepare_labs_action.setCheckable(True)
        self.prepare_labs_action.setChecked(self.settings.value(PREPARE_LABS_KEY, True, type=bool))

        m = self.examples_menu = mb.addMenu("E&xamples")
        for name, ex in EXAMPLES.items():
            a = self._action(m, ex.title, lambda checked=False, n=name: self.open_example(n), tip=ex.description)
            a.setToolTip(ex.description)

        m = mb.addMenu("&Run")
        self.step_forward_action = self._action(m, "Step &forward", self.player.step_forward, Qt.Key_Right)
        self.step_back_action = self._action(m, "Step &back", self.player.step_back, Qt.Key_Left)
        self.play_action = self._action(m, "&Play / pause", self.player.toggle, Qt.Key_Space)
        self._action(m, "&Reset", self.player.reset, Qt.Key_Home)
        self._action(m, "Run to the &end", self.player.to_end, Qt.Key_End)
        m.addSeparator()
        self._action(m, "&Gradient check: whole graph", self.gradient_check_graph, "Ctrl+G")
        self._action(m, "Gradient check: &selected node", self.gradient_check_node, "Ctrl+Shift+G")
        m.addSeparator()
        self._action(m, "&Write your own op…", self.write_own_op)

        m = mb.addMenu("&Help")
        self._action(m, "&Lessons…", self.show_lessons, "F1")
        self._action(m, "&What am I seeing?", self.what_am_i_seeing, "F2")
        self._action(m, "&Keyboard shortcuts", self.show_shortcuts, "Ctrl+/")
        self._action(m, "&Tour of the window", self.start_tour)
        m.addSeparator()
        self._action(m, "&About Backprop Studio", self.about)
        self.update_recent_menu()

    def _build_status(self) -> None:
        sb = self.statusBar()
        self.phase_label = QLabel("", self)
        self.phase_label.setObjectName("PhaseLabel")
        sb.addPermanentWidget(self.phase_label)
        self.progress = QProgressBar(self)
        self.progress.setMaximumWidth(180)
        self.progress.setTextVisible(True)
        self.progress.hide()
        sb.addPermanentWidget(self.progress)

    def _connect(self) -> None:
        self.player.position_changed.connect(self._on_position_changed)
        self.player.trace_rebuilt.connect(self._restart_quiz)
        self.player.trace_rebuilt.connect(lambda: self._on_position_changed(self.player.position))
        self.transport.quiz_check.toggled.connect(self.set_quiz)
        self.quiz_panel.proceed.connect(self.player.step_forward)
        self.player.trace_failed.connect(lambda _msg: self._on_position_changed(0))
        self.player.busy_changed.connect(self._on_trace_busy)
        self.scene.selection_changed_to.connect(self.inspector.set_node)
        self.scene.edit_refused.connect(self.show_refusal)
        self.scene.place_requested.connect(self._on_place_requested)
        self.palette.op_activated.connect(self._on_palette_activated)
        self.undo_stack.cleanChanged.connect(self._update_title)
        self.undo_stack.indexChanged.connect(self._update_title)

    def _on_tab_changed(self, index: int) -> None:
        # The step counter and the graph's name describe the Backprop tab; a lab tab shows its own name.
        self.phase_label.setVisible(index == 0)
        self.statusBar().clearMessage()          # a message about the graph does not belong under a lab
        self._update_title()
        title = self.current_tab = self.tabs.tabText(index)
        if self.warmup_plan is not None:          # the lab in front of the learner gets its kernels first
            from simulator.functional.warmup import TAB_KERNELS
            self.warmup_plan.prefer(TAB_KERNELS.get(title, ()))
        if title not in self._lab_factories:
            return
        self._laid_out.add(title)
        if title in self.labs:
            return
        self._build_lab(title)
        # The tab's repaint was asked for when it was clicked, before the lab existed; the lab's layouts, asked for
        # while it was built, would be settled after that first paint and paint it all again (the Playground's five
        # plots were painted three times while it was shown). Settle them now, so the first paint is the last.
        QCoreApplication.sendPostedEvents(None, QEvent.Type.LayoutRequest)

    def _build_lab(self, title: str) -> QWidget:
        lab = self._lab_factories[title](self)
        self.labs[title] = lab
        self._lab_holder(title).layout().addWidget(lab)
        lab.show()                                # with its tab: shown now if the tab is, else when it is
        if title == "Interpretability" and self.pending_model is not None:
            lab.set_network(*self.pending_model)
        return lab

    def _tab_index(self, title: str) -> int:
        return next(i for i in range(self.tabs.count()) if self.tabs.tabText(i) == title)

    def _lab_holder(self, title: str) -> QWidget:
        return self.tabs.widget(self._tab_index(title))

    # ---- labs prepared in idle moments ------------------------------------------------------------------------

    def prepare_labs(self) -> None:
        """Build the labs not opened yet, then lay each out and paint it once while hidden, one slice per quiet moment
        (gui.idle): a lab's first click then costs about what coming back to it does (bench/tabs.py). Started when the
        kernel warm-up has finished, unless View → Prepare labs in idle moments is unchecked."""
        for title in self._lab_factories:
            if title not in self.labs:
                self.idle_tasks.add(f"build {title}", lambda t=title: self._prepare_build(t))
            if title not in self._laid_out:
                self.idle_tasks.add(f"lay out {title}", lambda t=title: self._prepare_layout(t))

    def _prepare_build(self, title: str) -> None:
        if title not in self.labs:
            self._build_lab(title)

    def _prepare_layout(self, title: str) -> None:
        """Polish, lay out and paint the hidden lab once, at the size its tab will have: styles, layouts, text and
        the plots' cached pictures are ready before its first click. It runs once the jobs the lab's build started
        (its data, a first experiment) have delivered (see _labs_working), or their plots' new ranges would lay its
        axes out again at the click."""
        holder = self._lab_holder(title)
        if title in self._laid_out or title not in self.labs or holder.isVisible():
            return
        holder.resize(self.tabs.currentWidget().size())
        holder.grab()
        self._laid_out.add(title)

    def _labs_working(self) -> bool:
        """A job of a built lab is running (not paused): the preparation waits, so that no job is slowed, nor the
        time a lab shows for one inflated, by a lab built meanwhile."""
        return any(runner.state(name) == "running" for lab in self.labs.values()
                   for runner in lab.findChildren(JobRunner) for name in list(runner.handles))

    def _set_prepare_labs(self, on: bool) -> None:
        self.settings.setValue(PREPARE_LABS_KEY, on)
        if not on:
            self.idle_tasks.clear()
        elif not self.jobs.running("warmup"):
            self.prepare_labs()

    def open_network_graph(self, graph: Graph) -> None:
        """The playground's network on a few examples, as a graph to step through (an undoable replacement)."""
        self.replace_graph(graph, "Open the network as a graph")
        self.current_path, self.example_name, self.graph_name = None, None, "Network from the Playground"
        self._update_title()
        self.transport.update_check.setChecked(True)  # one whole iteration: forward, loss, backward, update
        self.tabs.setCurrentIndex(0)
        self.statusBar().showMessage("The network on a few training examples: step forward, loss and backward "
                                     "through it one layer at a time.", 10_000)

    # ---- hand-offs between tabs (each a past-tense signal of one lab, wired here) ---------------------------------

    def _on_model_trained(self, trained) -> None:
        """The Playground paused or finished an image model: the Interpretability lab gets the copy (network, data as
        the network sees it, standardiser), now or when it is first opened."""
        self.pending_model = trained
        lab = self.labs.get("Interpretability")
        if lab is not None:
            lab.set_network(*trained)

    def _on_best_config_applied(self, config: dict) -> None:
        """Search's Apply best: the Playground takes the optimizer, learning rate and weight decay, and is shown."""
        playground = self.open_lab("Playground")
        playground.apply_config(config)
        self.statusBar().showMessage(f"The Playground now trains with {config.get('optimizer')}, lr "
                                     f"{config.get('lr'):.3g}, weight decay {config.get('weight_decay', 0):.3g} "
                                     f"(the best configuration of the search)", 10_000)

    def _on_encoder_sent(self, handoff, freeze: bool) -> None:
        """Self-supervised's Fine-tune in the Playground: the Playground takes the encoder (digits, preprocessing
        none, the encoder's layers with a fresh Linear(10) head, frozen or not) and is shown."""
        playground = self.open_lab("Playground")
        if not playground.adopt_encoder(handoff, freeze):
            return
        how = ("its layers frozen: a linear probe, only the Linear(10) head trains" if freeze else
               "every layer trains: fine-tuning from its weights")
        self.statusBar().showMessage(f"The Playground now starts from the {handoff.title} on the digits "
                                     f"(preprocessing none), {how}. Press ▶ Train.", 12_000)

    # ---- ops of the learner's -------------------------------------------------------------------------------------

    def write_own_op(self) -> UserOpDialog:
        """Run → Write your own op: the editor, its gradient check and, once it passes, the op in the palette."""
        dialog = UserOpDialog(self.jobs, self.settings, self)
        dialog.op_added.connect(lambda _name: self.palette.refresh())
        dialog.show()
        return dialog

    def _restore_user_ops(self) -> None:
        """Ops the learner wrote in earlier sessions: registered again (their sandbox starts at their first use)."""
        self.settings.beginGroup(USER_OPS_KEY)
        try:
            saved = {name: self.settings.value(name) for name in self.settings.childKeys()}
        finally:
            self.settings.endGroup()
        for name, source in saved.items():
            try:
                register_user_op(name, str(source), load=False)
            except StudioError:
                continue                         # a built-in op took the name since: skip it
        if saved:
            self.palette.refresh()

    # ---- lessons ----------------------------------------------------------------------------------------------

    def show_lessons(self) -> None:
        """Help → Lessons: pick a shipped lesson (or a file of one's own) and open it beside the tabs."""
        browser = LessonBrowser(self.settings, self)
        if browser.exec() and browser.chosen is not None:
            self.open_lesson(browser.chosen)

    def open_lesson(self, lesson: Lesson | str | os.PathLike) -> None:
        """Open a lesson (a Lesson, a shipped lesson's name or a file) where the learner left it. LessonError (our
        error, naming the line) for a file that cannot be used."""
        if not isinstance(lesson, Lesson):
            lesson = load_lesson(lesson)
        self.lesson_dock.show()
        self.lesson_panel.start(lesson)

    def apply_lesson_step(self, step: LessonStep) -> None:
        """Set what a lesson step asks for: its tab, its graph (asking first if the current one is unsaved), the
        stepping position and the quiz."""
        if step.has_graph:
            graph = step_graph(step)
            if not self.maybe_save():
                return
            name = step.example
            if name is None:
                self.expression_edit.setText(step.expression)
            self._load_new(graph, None, name)
            if name is None:
                self.graph_name = f"lesson: {step.expression}"
                self._update_title()
        if step.quiz is not None:
            self.set_quiz(step.quiz)
        if step.position is not None:
            self.player.flush()
            trace = self.player.trace
            if trace is not None:
                target = {"start": 0, "forward": trace.forward_count, "end": len(trace)}.get(step.position,
                                                                                             step.position)
                self.player.seek(min(int(target), len(trace)))
        if step.tab is not None:
            if step.tab == "Backprop":
                self.tabs.setCurrentIndex(0)
            else:
                self.open_lab(step.tab)

    def open_lab(self, title: str) -> QWidget:
        """Show a lab's tab (building the lab if needed) and return the lab."""
        index = self._tab_index(title)
        self.tabs.setCurrentIndex(index)
        self._on_tab_changed(index)
        return self.labs[title]

    # ---- stepping ---------------------------------------------------------------------------------------------

    def _on_position_changed(self, k: int) -> None:
        state = self.player.state()
        event = state.event if state else None
        if event is not None and k == self._shown_position + 1:
            # one step forward: the value (or gradient) travels along its wires
            self.scene.animate_step(event, duration_ms=int(min(450, 800 / self.player.speed)))
        else:
            self.scene.stop_pulses()
        self._shown_position = k
        self.scene.show_state(state, event.node if event else None, event.phase if event else None)
        if event is not None and self.inspector.node_id != event.node:
            self._follow_timer.start()          # the inspector follows when stepping rests (see __init__)
        self.chain_panel.show_event(event, self.player.trace, self.graph, k, self.player.error)
        self.phase_label.setText(self.player.label())
        if self.quiz_panel.quiz is not None:
            self.quiz_panel.show_position(k)

    def _follow_step(self) -> None:
        """With nothing selected, the inspector shows the node of the step on screen."""
        state = self.player.state()
        node = state.event.node if state is not None and state.event is not None else None
        if node is not None and not self.scene.selected_ids() and node in self.graph and self.inspector.node_id != node:
            self.inspector.set_node(node)

    def _on_trace_busy(self, _busy: bool) -> None:
        """A large graph's passes are re-run on a worker (the transport bar holds its controls meanwhile)."""
        self.phase_label.setText(self.player.label())

    # ---- the quiz: predict, then reveal ---------------------------------------------------------------------------

    def set_quiz(self, on: bool) -> None:
        """Quiz on: each backward step is a question before it is shown (the player stops at it); off: plain
        stepping. The score restarts with each graph (and each edit, which re-runs the passes)."""
        if self.transport.quiz_check.isChecked() != on:
            self.transport.quiz_check.setChecked(on)     # toggled calls back here
            return
        self.quiz_panel.setVisible(on)
        self._restart_quiz()
        self._on_position_changed(self.player.position)

    def _restart_quiz(self) -> None:
        on = self.transport.quiz_check.isChecked()
        trace = self.player.trace
        quiz = Quiz(trace, self.graph) if on and trace is not None else None
        self.quiz_panel.set_quiz(quiz)
        self.player.frame_player.barrier = quiz.barrier if quiz is not None else None

    # ---- editing ----------------------------------------------------------------------------------------------

    def show_refusal(self, message: str) -> None:
        self.statusBar().showMessage(message, 8000)

    def build_from_expression(self) -> None:
        text = self.expression_edit.text()
        try:
            graph = Graph.from_expression(text)
        except ExpressionError as exc:
            self.expression_error.setText(str(exc))
            self.expression_error.show()
            if exc.column:
                self.expression_edit.setCursorPosition(max(exc.column - 1, 0))
                self.expression_edit.setSelection(max(exc.column - 1, 0), max(len(exc.text), 1))
            return
        self.expression_error.hide()
        self.replace_graph(graph, f"Build {text}")

    def replace_graph(self, graph: Graph, text: str) -> None:
        commands.push(self.undo_stack, commands.ReplaceGraphCommand(self.graph, graph, text))
        self.player.flush()
        self.player.reset()
        QTimer.singleShot(0, self.view.fit_to_view)

    def tidy_layout(self) -> None:
        from simulator.graphs.layout import layered_positions
        moves = {nid: (self.graph.node(nid).pos, pos) for nid, pos in layered_positions(self.graph).items()}
        commands.push(self.undo_stack, commands.MoveNodesCommand(self.graph, moves))
        self.view.fit_to_view()

    def cut(self) -> None:
        self.copy()
        self.scene.delete_selected()

    def copy(self) -> None:
        text = self.scene.copy_selected()
        if text:
            QApplication.clipboard().setText(text)

    def paste(self) -> None:
        self.scene.paste(QApplication.clipboard().text())

    def _on_place_requested(self, pos: QPointF) -> None:
        view_pos = self.view.mapFromScene(pos)
        op = PlaceOpPopup.choose(self, self.view.viewport().mapToGlobal(view_pos))
        if op:
            self._place(op, pos)

    def _on_palette_activated(self, name: str) -> None:
        centre = self.view.mapToScene(self.view.viewport().rect().center())
        self._place(name, centre)

    def _place(self, name: str, pos: QPointF) -> None:
        if name.startswith("leaf:"):
            error = self.scene.add_leaf_at(name.split(":", 1)[1], pos)
        else:
            error = self.scene.add_op_at(name, pos)
        if error:
            self.show_refusal(error)

    # ---- gradient checks --------------------------------------------------------------------------------------

    def gradient_check_graph(self) -> GradCheckDialog | None:
        return self._run_check(lambda: check_graph(self.graph), "Gradient check: every input and parameter")

    def _run_check(self, compute, title: str) -> GradCheckDialog | None:
        try:
            checks = compute()
        except StudioError as exc:
            self.error_box("Gradient check", str(exc))
            return None
        except Exception as exc:  # a numeric library failing on odd values: say so, keep the window alive
            self.error_box("Gradient check", f"The check failed ({type(exc).__name__}: {str(exc)[:200]}).")
            return None
        return self._show_checks(checks, title)

    def gradient_check_node(self) -> GradCheckDialog | None:
        ids = self.scene.selected_ids()
        if len(ids) != 1:
            self.show_refusal("Select one node to check its gradient")
            return None
        node = self.graph.node(ids[0])
        return self._run_check(
            lambda: check_graph(self.graph, [node.id]) if node.is_leaf else check_node(self.graph, node.id),
            f"Gradient check: {node.id}")

    def _show_checks(self, checks, title: str) -> GradCheckDialog:
        dialog = GradCheckDialog(checks, title, self)
        dialog.setAttribute(Qt.WA_DeleteOnClose)
        dialog.show()
        self.last_check_dialog = dialog
        worst = max((c.max_error for c in checks), default=0.0)
        self.statusBar().showMessage(f"{title}: worst relative error {worst:.1e}", 8000)
        return dialog

    # ---- files ------------------------------------------------------------------------------------------------

    def error_box(self, title: str, text: str) -> None:
        QMessageBox.critical(self, title, text)

    def maybe_save(self) -> bool:
        """True when it is fine to discard the current graph (saved, or the learner said so)."""
        if self.undo_stack.isClean():
            return True
        answer = QMessageBox.question(self, APP_NAME, "The graph has unsaved changes. Save them first?",
                                      QMessageBox.Save | QMessageBox.Discard | QMessageBox.Cancel)
        if answer == QMessageBox.Save:
            return self.save()
        return answer == QMessageBox.Discard

    def _load_new(self, graph: Graph, path: Path | None, example: str | None = None) -> None:
        self.graph.replace_with(graph)
        self.undo_stack.clear()
        self.current_path = path
        self.example_name = example
        self.graph_name = None
        self.player.flush()
        self.player.reset()
        self.scene.clearSelection()
        QTimer.singleShot(0, self.view.fit_to_view)
        self._update_title()

    def new_graph(self) -> None:
        if self.maybe_save():
            self._load_new(Graph(), None)

    def open_example(self, name: str) -> None:
        if not self.maybe_save():
            return
        self._load_new(load_example(name), None, name)
        self.expression_edit.clear()
        self.statusBar().showMessage(EXAMPLES[name].description, 10_000)

    def open_dialog(self) -> None:
        if not self.maybe_save():
            return
        path, _ = QFileDialog.getOpenFileName(self, "Open graph", str(self._last_dir()), FILE_FILTER)
        if path:
            self.open_path(path)

    def open_path(self, path: str | os.PathLike) -> bool:
        """Load a file; on any problem show why and keep the current graph untouched."""
        try:
            graph = fileformat.load(path)
        except FileFormatError as exc:
            self.error_box("Cannot open file", f"The file could not be opened:\n\n{exc}")
            return False
        self.show_graph(graph, Path(path))
        return True

    def show_graph(self, graph: Graph, path: Path | None, example: str | None = None, modified: bool = False) -> None:
        """Show a graph already loaded (by main.py, or restored from an autosave), as unsaved changes if modified."""
        self._load_new(graph, path, example)
        if path is not None:
            self._add_recent(path)
        if modified:
            self.undo_stack.resetClean()
            self._update_title()

    def save(self) -> bool:
        if self.current_path is None:
            return self.save_as()
        return self._write(self.current_path)

    def save_as(self) -> bool:
        path, _ = QFileDialog.getSaveFileName(self, "Save graph", str(self._last_dir() / "graph.bps.json"),
                                              FILE_FILTER)
        if not path:
            return False
        return self._write(Path(path))

    def _write(self, path: Path) -> bool:
        """Atomic save (simulator.core.files.atomic_write): the old file survives any failure, and a graph the
        loader would refuse is refused here, before anything is written."""
        try:
            fileformat.save(self.graph, path)
        except FileFormatError as exc:
            self.error_box("Cannot save", str(exc))
            return False
        except OSError as exc:
            self.error_box("Cannot save", f"{path} could not be saved: {exc.strerror or exc}")
            return False
        self.current_path = path
        self.undo_stack.setClean()
        self._add_recent(path)
        self._update_title()
        self.statusBar().showMessage(f"Saved {path}", 4000)
        return True

    def _last_dir(self) -> Path:
        recent = self.recent_files()
        return Path(recent[0]).parent if recent else Path.home()

    def recent_files(self) -> list[str]:
        value = self.settings.value("recent_files", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])]

    def _add_recent(self, path: Path) -> None:
        files = [str(path)] + [p for p in self.recent_files() if p != str(path)]
        self.settings.setValue("recent_files", files[:MAX_RECENT])
        self.update_recent_menu()

    def update_recent_menu(self) -> None:
        self.recent_menu.clear()
        files = self.recent_files()
        for p in files:
            a = self.recent_menu.addAction(Path(p).name)
            a.setToolTip(p)
            a.triggered.connect(lambda checked=False, p=p: self.maybe_save() and self.open_path(p))
        self.recent_menu.setEnabled(bool(files))

    def document_name(self) -> str:
        """What the window calls the graph in the Backprop tab: its file, its example or what made it."""
        if self.current_path:
            return self.current_path.name
        if self.example_name:
            return EXAMPLES[self.example_name].title
        return self.graph_name or "Untitled"

    def _update_title(self, *_args) -> None:
        self.setWindowModified(not self.undo_stack.isClean())
        tab = self.tabs.tabText(self.tabs.currentIndex())
        lab = "" if tab == "Backprop" else f"{tab} · "
        self.setWindowTitle(f"{lab}{self.document_name()}[*] — {APP_NAME}")

    # ---- autosave and recovery --------------------------------------------------------------------------------

    @property
    def autosave_path(self) -> Path | None:
        """This window's own autosave (gui/recovery.py keeps one per running instance)."""
        return None if self.recovery is None else self.recovery.autosave_path

    @autosave_path.setter
    def autosave_path(self, path: str | os.PathLike) -> None:
        if self.recovery is not None:  # keep this window's slot in path's folder (tests use a temporary one)
            self.recovery.relocate(Path(path).parent)

    def autosave(self) -> bool:
        return self.recovery is not None and self.recovery.autosave()

    def offer_recovery(self) -> bool:
        """Offer what instances that did not close normally autosaved. True if one was restored."""
        return self.recovery is not None and self.recovery.offer()

    # ---- exports ----------------------------------------------------------------------------------------------

    def export_dialog(self, kind: str) -> None:
        filters = {"png": "PNG image (*.png)", "svg": "SVG drawing (*.svg)", "gif": "Animated GIF (*.gif)"}
        path, _ = QFileDialog.getSaveFileName(self, f"Export {kind.upper()}", str(self._last_dir() / f"graph.{kind}"),
                                              filters[kind])
        if not path:
            return
        try:
            {"png": self.export_png, "svg": self.export_svg, "gif": self.export_gif}[kind](path)
        except (OSError, StudioError, ValueError) as exc:
            self.error_box("Export failed", str(exc))
        else:
            self.statusBar().showMessage(f"Exported {path}", 5000)

    def _render_scene(self, scale: float = 2.0) -> QImage:
        rect = self.scene.itemsBoundingRect().adjusted(-30, -30, 30, 30)
        img = QImage(int(rect.width() * scale), int(rect.height() * scale), QImage.Format_ARGB32)
        img.fill(QColor(theme.CANVAS_HEX))
        p = QPainter(img)
        p.setRenderHint(QPainter.Antialiasing)
        p.setRenderHint(QPainter.TextAntialiasing)
        self.scene.render(p, QRectF(0, 0, img.width(), img.height()), rect)
        p.end()
        return img

    def export_png(self, path: str) -> None:
        atomic_write(path, image_bytes(self._render_scene(), "PNG"))

    def export_svg(self, path: str) -> None:
        from PySide6.QtSvg import QSvgGenerator
        rect = self.scene.itemsBoundingRect().adjusted(-30, -30, 30, 30)
        buf = QBuffer()
        buf.open(QIODevice.WriteOnly)
        gen = QSvgGenerator()
        gen.setOutputDevice(buf)
        gen.setSize(rect.size().toSize())
        gen.setViewBox(QRectF(0, 0, rect.width(), rect.height()))
        gen.setTitle("Backprop Studio graph")
        p = QPainter(gen)
        self.scene.render(p, QRectF(0, 0, rect.width(), rect.height()), rect)
        p.end()
        atomic_write(path, bytes(buf.data()))

    def export_gif(self, path: str, frame_ms: int = 700) -> int:
        """Every step of the trace as one frame of an animated GIF (Pillow). Returns the frame count."""
        from PIL import Image
        self.player.flush()
        if self.player.trace is None:
            raise ValueError(self.player.error or "the graph cannot run")
        keep = self.player.position
        frames = []
        for k in range(self.player.length + 1):
            self.player.seek(k)
            img = self._render_scene(scale=1.0).convertToFormat(QImage.Format_RGBA8888)
            buf = bytes(img.constBits())
            frames.append(Image.frombuffer("RGBA", (img.width(), img.height()), buf, "raw", "RGBA",
                                           img.bytesPerLine(), 1).convert("RGB"))
        self.player.seek(keep)
        atomic_write(path, lambda fh: frames[0].save(fh, format="GIF", save_all=True, append_images=frames[1:],
                                                     duration=frame_ms, loop=0))
        return len(frames)

    # ---- warm-up ----------------------------------------------------------------------------------------------

    def _start_warmup(self) -> None:
        """Compile (or load from Numba's cache) every kernel on a worker thread, the current tab's first."""
        from simulator.functional.warmup import TAB_KERNELS, default_plan, warmup_job

        def job():                                  # on the worker: imports the kernel modules, then compiles
            import pyqtgraph  # noqa: F401  (every lab's plots: loaded here, the first lab opens without the wait)
            plan = default_plan()
            plan.prefer(TAB_KERNELS.get(self.current_tab, ()))   # a plain str the UI thread keeps up to date
            self.warmup_plan = plan
            done = yield from warmup_job(plan)
            # then the labs' models (~0.4 s, Qt-free: safe on this thread), likewise out of the labs' first opens
            from simulator.labs import import_all
            try:
                import_all()
            except Exception:  # noqa: BLE001  (a lab that cannot import reports it when it is opened)
                pass
            return done

        self.progress.setFormat("Preparing kernels %p%")
        self.progress.show()
        self.jobs.start("warmup", job, on_yield=self._on_warmup_progress, on_done=self._on_warmup_done,
                        on_error=self._on_warmup_failed)

    def _on_warmup_done(self, _n) -> None:
        self.progress.hide()
        if self.prepare_labs_action.isChecked():
            self.prepare_labs()

    def _on_warmup_progress(self, p) -> None:
        self.progress.setRange(0, p.total)
        self.progress.setValue(p.done)
        self.progress.setToolTip(f"Preparing the kernels: {p.message}")

    def _on_warmup_failed(self, _exc: BaseException, text: str) -> None:
        self.progress.hide()
        self.statusBar().showMessage(f"Kernel warm-up failed: {text}")

    # ---- window state -----------------------------------------------------------------------------------------

    def _restore_layout(self) -> None:
        geometry = self.settings.value("geometry")
        state = self.settings.value(EDITOR_STATE_KEY)
        if geometry is None or not self.restoreGeometry(geometry):
            self.resize(default_window_size())
        if state is not None:
            self.editor_window.restoreState(state, LAYOUT_VERSION)
        for dock, width in ((self.palette_dock, 210), (self.inspector_dock, 320)):
            if dock.width() < dock.minimumWidth():      # a state saved by an older version: give the width back
                self.editor_window.resizeDocks([dock], [width], Qt.Horizontal)

    # ---- help ---------------------------------------------------------------------------------------------------

    def what_am_i_seeing(self) -> QMessageBox:
        """Help → What am I seeing?: the current tab's note, tied to the lecture it serves."""
        box = QMessageBox(QMessageBox.Icon.Information, f"What am I seeing? — {self.current_tab}",
                          tab_note_html(self.current_tab), QMessageBox.StandardButton.Close, self)
        box.setTextFormat(Qt.TextFormat.RichText)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.show()
        return box

    def show_shortcuts(self) -> ShortcutsDialog:
        dialog = ShortcutsDialog(self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        return dialog

    def start_tour(self) -> Tour:
        """A note beside each part of the window in turn (skippable); remembered as done once finished."""
        self.tabs.setCurrentIndex(0)
        steps = [
            TourStep(lambda: self.expression_edit, "Build a graph",
                     "Type an expression such as (x + y) * z and press Enter, or drag ops from the palette on the "
                     "left onto the canvas and wire them."),
            TourStep(lambda: self.transport, "Step through it",
                     "→ runs one node at a time: the forward pass, then the backward pass from the output. Tick Quiz "
                     "to predict each gradient before it is shown."),
            TourStep(lambda: self.chain_panel, "Read the chain rule",
                     "Each backward step shows upstream × local = downstream with the actual numbers."),
            TourStep(lambda: self.inspector, "Inspect a node",
                     "Select a node: its formula, local gradients, values and gradient; edit its value and the passes "
                     "run again."),
            TourStep(lambda: self.tabs.tabBar(), "The labs",
                     "Train networks, race optimizers, look inside a trained model: one tab per part of the course. "
                     "F2 says what a tab shows."),
            TourStep(lambda: None, "Lessons",
                     "Help → Lessons (F1): a guided lesson per lecture, with questions. Have fun learning!"),
        ]
        tour = Tour(self, steps)
        tour.finished.connect(lambda: self.settings.setValue(TOUR_DONE_KEY, True))
        tour.start()
        self.tour = tour
        return tour

    def offer_tour(self) -> bool:
        """At a first start (main.py calls this; tests and screenshots do not), show the tour once."""
        if self.settings.value(TOUR_DONE_KEY, False) in (True, "true"):
            return False
        self.start_tour()
        return True

    def about(self) -> None:
        QMessageBox.about(self, APP_NAME, "<h3>Backprop Studio</h3><p>Step through the forward and backward passes "
                          "of a computational graph, one node at a time, with the chain rule on screen.</p>")

    def closeEvent(self, event) -> None:
        if not self.maybe_save():
            event.ignore()
            return
        self.settings.setValue("geometry", self.saveGeometry())
        self.settings.setValue(EDITOR_STATE_KEY, self.editor_window.saveState(LAYOUT_VERSION))
        if self.recovery is not None:
            self.recovery.close()  # a clean exit leaves no autosave (and no lock) behind
        self.player.close()
        self.scene.close()
        self.inspector.close_panel()
        self.idle_tasks.clear()
        for lab in self.labs.values():
            lab.close_lab()
        self.jobs.close()          # the warm-up stops between two kernels
        event.accept()
