"""One Qt-free module per lab topic: surfaces and races, classifiers, convolution mechanics, init statistics, interpretability, self-supervised learning, hyperparameter search."""
import importlib
import pkgutil

# The window's tabs, in order: what a lesson's ``tab`` may name. The window (gui/main_window.py) builds its tabs
# with these titles; tests/gui/test_lessons_gui.py checks that the two agree.
TAB_TITLES = ("Backprop", "Playground", "Init / norm", "Optimizers", "Classifiers", "Convolution", "Interpretability",
              "Self-supervised", "Search")


def import_all() -> list[str]:
    """Import every lab model module; returns their names. Their dataclasses and declared settings take about
    0.3 s to build, which would otherwise land in each lab's first open: the app's warm-up job calls this on its
    worker thread once the kernels are ready (the modules are Qt-free, so importing them off the UI thread is safe)."""
    names = [f"{__name__}.{m.name}" for m in pkgutil.iter_modules(__path__)]
    for name in names:
        importlib.import_module(name)
    return names
