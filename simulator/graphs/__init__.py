"""Computational graphs: the Graph model, the expression parser, layout, the versioned file format and the lecture examples."""
