"""Backprop Studio's Qt user interface: everything Qt and pyqtgraph lives under this package."""
