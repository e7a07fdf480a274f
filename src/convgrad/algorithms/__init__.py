"""The registry of convolution algorithms, the ``auto`` choice, and the one dispatch function.

Each algorithm lives in its own module and implements :class:`~convgrad.algorithms.base.Algorithm`.
:func:`run` is the only way the API calls an algorithm: it resolves ``"auto"``, refuses an
algorithm that cannot do the configuration (``ValueError`` saying why), and applies non-zero
padding modes for algorithms that only implement zero padding.
"""

from __future__ import annotations

import math

import numpy as np

from .. import padding as _padding
from ..spec import ConvSpec
from .base import OPERATIONS, Algorithm
from .direct import Direct
from .gemm import Gemm
from .im2row import Im2Row

__all__ = ["Algorithm", "available_algorithms", "get_algorithm", "choose", "run", "register"]

_REGISTRY: dict[str, Algorithm] = {}


def register(algorithm: Algorithm) -> Algorithm:
    """Add an algorithm instance to the registry under its ``name``."""
    if not algorithm.name or algorithm.name == "auto":
        raise ValueError(f"an algorithm needs a name other than 'auto', got {algorithm.name!r}")
    _REGISTRY[algorithm.name] = algorithm
    return algorithm


for _alg in (Direct(), Gemm(), Im2Row()):
    register(_alg)


def available_algorithms() -> tuple[str, ...]:
    """The names accepted by every function's ``algorithm=`` argument (besides ``"auto"``)."""
    return tuple(_REGISTRY)


def get_algorithm(name: str, func: str = "convgrad") -> Algorithm:
    """The registered algorithm called ``name``; ``ValueError`` listing the names otherwise."""
    if not isinstance(name, str):
        raise TypeError(f"{func}: algorithm must be a string, one of {('auto', *_REGISTRY)}, got {name!r}")
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"{func}: algorithm must be 'auto' or one of {tuple(_REGISTRY)}, got {name!r}") from None


def prefers_im2row(spec: ConvSpec) -> bool:
    """Many input channels per group on a small output map: ``im2row``'s channel runs beat ``gemm``'s rows.

    Measured (float32, one BLAS thread, forward + backward): 32->64 channels on a 4x4 map with
    N=32 (a LeNet's second layer) took 0.55x gemm's time; with 1 input channel (8x8, 28x28) or
    1x1 kernels on 56x56 maps im2row was 1.3-1.8x slower, and on 28x28 to 56x56 maps with 64-128
    channels the two were within 6 %.
    """
    return spec.in_per_group >= 16 and math.prod(spec.output_size) <= 64


def choose(spec: ConvSpec, op: str) -> Algorithm:
    """The algorithm ``"auto"`` picks for ``op`` on ``spec``."""
    if prefers_im2row(spec) and _REGISTRY["im2row"].unsupported(spec, op) is None:
        return _REGISTRY["im2row"]
    for name in ("gemm", "direct"):
        alg = _REGISTRY[name]
        if alg.unsupported(spec, op) is None:
            return alg
    raise AssertionError("the direct algorithm supports every configuration")  # pragma: no cover


def resolve(algorithm: str, spec: ConvSpec, op: str, func: str = "convgrad") -> Algorithm:
    """The algorithm object for a user's ``algorithm=`` argument, checked against ``spec``."""
    if algorithm == "auto":
        return choose(spec, op)
    alg = get_algorithm(algorithm, func)
    reason = alg.unsupported(spec, op)
    if reason is not None:
        raise ValueError(f"{func}: algorithm {alg.name!r} cannot compute {op} for this configuration: {reason}")
    return alg


def run(
    op: str, spec: ConvSpec, a: np.ndarray, b: np.ndarray, algorithm: str = "auto", *, func: str = "convgrad"
) -> np.ndarray:
    """Compute ``op`` (one of ``forward``, ``grad_input``, ``grad_weight``) with the chosen algorithm.

    Operands, by ``op``: ``forward(x, w)``, ``grad_input(dy, w)``, ``grad_weight(x, dy)``.
    """
    if op not in OPERATIONS:
        raise ValueError(f"op must be one of {OPERATIONS}, got {op!r}")
    alg = resolve(algorithm, spec, op, func)
    if spec.padding_mode == "zeros" or alg.handles_padding_modes:
        return getattr(alg, op)(a, b, spec)
    # Non-zero padding mode on an algorithm that only does zero padding: pad explicitly.
    if op == "forward":
        xp, inner = _padding.pad(a, spec)
        return alg.forward(xp, b, inner)
    if op == "grad_weight":
        xp, inner = _padding.pad(a, spec)
        return alg.grad_weight(xp, b, inner)
    return _padding.fold(alg.grad_input(a, b, _padding.padded_spec(spec)), spec)
