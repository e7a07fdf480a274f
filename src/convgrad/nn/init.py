"""PyTorch's default parameter initialisation, with an explicit random generator.

``torch.nn.Conv*d``, ``ConvTranspose*d`` and ``Linear`` initialise their weight with
``kaiming_uniform_(w, a=sqrt(5))`` and their bias uniformly on the same interval, which comes
down to::

    bound = 1 / sqrt(fan_in)          fan_in = weight.shape[1] * prod(kernel)
    weight, bias ~ U(-bound, bound)

(``gain = sqrt(2 / (1 + a^2)) = sqrt(1/3)`` and ``bound = sqrt(3) * gain / sqrt(fan_in)``.) For a
transposed convolution ``weight.shape[1]`` is ``out_channels / groups``, as in PyTorch.

Randomness is never global: every layer that draws numbers takes ``rng``, a
``numpy.random.Generator``, an int seed, or ``None`` for fresh OS entropy.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = ["resolve_rng", "resolve_dtype", "fan_in", "uniform"]

_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


def resolve_rng(rng, func: str) -> np.random.Generator:
    """``rng`` as a ``numpy.random.Generator``: a Generator is used as is, an int seeds a new one."""
    if rng is None:
        return np.random.default_rng()
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise TypeError(f"{func}: rng must be a numpy.random.Generator, an int seed or None, got {rng!r}")


def resolve_dtype(dtype, func: str) -> np.dtype:
    """``None`` -> float32 (PyTorch's default); otherwise one of float16, float32, float64."""
    if dtype is None:
        return np.dtype(np.float32)
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt not in _DTYPES:
        raise TypeError(f"{func}: dtype must be float16, float32 or float64, got {dtype!r}")
    return dt


def fan_in(weight_shape: tuple[int, ...]) -> int:
    """``weight.shape[1] * prod(weight.shape[2:])``, PyTorch's fan-in of a weight."""
    return int(weight_shape[1] * math.prod(weight_shape[2:]))


def uniform(shape: tuple[int, ...], bound: float, rng: np.random.Generator, dtype) -> np.ndarray:
    """``U(-bound, bound)`` samples of ``shape``, drawn in float64 then cast to ``dtype``."""
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


def default_bound(weight_shape: tuple[int, ...]) -> float:
    """``1/sqrt(fan_in)``, or 0 for an empty weight (PyTorch's rule for weight and bias alike)."""
    f = fan_in(weight_shape)
    return 1.0 / math.sqrt(f) if f > 0 else 0.0
