"""The graph editor: scene, view, node/port/edge items and the op palette."""
