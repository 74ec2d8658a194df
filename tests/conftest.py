"""Test-wide setup: Qt runs offscreen, and numpy's BLAS stays on one thread beside Numba."""
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
