"""One Qt-free module per lab topic: surfaces and races, classifiers, convolution mechanics, init statistics, interpretability, hyperparameter search."""
