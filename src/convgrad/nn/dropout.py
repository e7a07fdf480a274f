"""``Dropout``: zero each element with probability ``p`` in training, as ``torch.nn.Dropout``."""

from __future__ import annotations

import numbers

import numpy as np

from ..dtypes import as_real_array
from .init import resolve_rng
from .module import Module, format_args

__all__ = ["Dropout"]


class Dropout(Module):
    """Inverted dropout.

    In training mode ``y = x * m / (1 - p)`` with ``m ~ Bernoulli(1 - p)`` drawn per element
    (``p = 1`` gives zeros), and ``dx = dy * m / (1 - p)``; in eval mode ``y = x``.

    Parameters
    ----------
    p : float in [0, 1]
    rng : numpy.random.Generator, int or None
        The source of the masks (an int seeds a new generator; ``None`` uses OS entropy).
    """

    def __init__(self, p: float = 0.5, *, rng=None):
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, numbers.Real):
            raise TypeError(f"Dropout: p must be a number between 0 and 1, got {p!r}")
        if not 0 <= p <= 1:
            raise ValueError(f"Dropout: p must be between 0 and 1, got {p}")
        self.p = float(p)
        self._rng = resolve_rng(rng, "Dropout")

    def forward(self, x):
        x = as_real_array(x, "Dropout", "input")
        if not self.training or self.p == 0:
            self._remember(None, x.shape)
            return x.copy()
        keep = np.zeros(x.shape, dtype=bool) if self.p == 1 else self._rng.random(x.shape) >= self.p
        return self._apply(x, keep)

    def _apply(self, x: np.ndarray, keep: np.ndarray) -> np.ndarray:
        """``y = x * keep / (1 - p)``; keeps the boolean mask (a byte per value) for backward."""
        self._remember(keep, x.shape)
        return self._scaled(x, keep)

    def _scaled(self, a: np.ndarray, keep: np.ndarray) -> np.ndarray:
        # (a * s) * keep: the same numbers as a * (keep * s), without a scale array of a's size
        y = a * a.dtype.type(1 / (1 - self.p)) if self.p < 1 else np.zeros_like(a)
        y *= keep
        return y

    def backward(self, grad_output, *, input_grad: bool = True):
        keep, shape = self._recall()
        dy = as_real_array(grad_output, "Dropout.backward", "grad_output")
        if dy.shape != shape:
            raise ValueError(f"Dropout.backward: grad_output must have shape {shape} (the output's), got {dy.shape}")
        if not input_grad:
            return None
        return dy.copy() if keep is None else self._scaled(dy, keep)

    def extra_repr(self) -> str:
        return format_args((), [("p", self.p, 0.5)])
