"""The op registry, filled explicitly family by family (import order is palette order)."""
from simulator.ops.registry import REGISTRY, AttrSpec, OpSpec, families, get_op, register  # noqa: F401
from simulator.ops import arithmetic, activations, linear, conv, norm, regularization, losses  # noqa: F401,E402
from simulator.ops import stochastic  # noqa: F401,E402  (fractional max pooling, stochastic depth)
