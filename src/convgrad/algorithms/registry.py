"""The registry: every algorithm module ends with ``register(TheAlgorithm())``.

:mod:`convgrad.algorithms` imports every module of the package (so a new algorithm file is
found without a list to edit); the rest of convgrad iterates :data:`REGISTRY` and never names
an algorithm.
"""

from __future__ import annotations

from .base import Algorithm

__all__ = ["REGISTRY", "register"]

#: Registered algorithms by name, in registration order.
REGISTRY: dict[str, Algorithm] = {}


def register(algorithm: Algorithm) -> Algorithm:
    """Add an algorithm instance to the registry under its ``name``."""
    if not algorithm.name or algorithm.name in ("auto", "measure"):
        raise ValueError(f"an algorithm needs a name other than 'auto' and 'measure', got {algorithm.name!r}")
    REGISTRY[algorithm.name] = algorithm
    return algorithm
