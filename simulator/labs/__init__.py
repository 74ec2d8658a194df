"""One Qt-free module per lab topic: surfaces and races, classifiers, convolution mechanics, init statistics, interpretability, self-supervised learning, hyperparameter search."""

# The window's tabs, in order: what a lesson's ``tab`` may name. The window (gui/main_window.py) builds its tabs
# with these titles; tests/gui/test_lessons_gui.py checks that the two agree.
TAB_TITLES = ("Backprop", "Playground", "Init / norm", "Optimizers", "Classifiers", "Convolution", "Interpretability",
              "Self-supervised", "Search")
