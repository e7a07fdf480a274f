"""``Flatten``: merge a range of dims into one, as ``torch.nn.Flatten``."""

from __future__ import annotations

import operator

import numpy as np

from ..dtypes import as_real_array
from .module import Module, format_args

__all__ = ["Flatten"]


class Flatten(Module):
    """Merge dims ``start_dim..end_dim`` (inclusive; default 1..-1: everything but the batch)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        for name, v in (("start_dim", start_dim), ("end_dim", end_dim)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise TypeError(f"Flatten: {name} must be an integer, got {v!r}")
        self.start_dim = operator.index(start_dim)
        self.end_dim = operator.index(end_dim)

    def forward(self, x):
        x = as_real_array(x, "Flatten", "input")
        nd = max(x.ndim, 1)
        start = self.start_dim + nd if self.start_dim < 0 else self.start_dim
        end = self.end_dim + nd if self.end_dim < 0 else self.end_dim
        if not (0 <= start < nd and 0 <= end < nd):
            raise ValueError(
                f"Flatten: start_dim={self.start_dim} and end_dim={self.end_dim} must be dims of the "
                f"{x.ndim}-d input of shape {x.shape}"
            )
        if start > end:
            raise ValueError(f"Flatten: start_dim ({self.start_dim}) comes after end_dim ({self.end_dim}) for input of shape {x.shape}")
        self._remember(x.shape)
        if x.ndim == 0:
            return x.reshape(1)
        return x.reshape(x.shape[:start] + (-1,) + x.shape[end + 1:])

    def backward(self, grad_output, *, input_grad: bool = True):
        (shape,) = self._recall()
        dy = as_real_array(grad_output, "Flatten.backward", "grad_output")
        if dy.size != int(np.prod(shape)):
            raise ValueError(f"Flatten.backward: grad_output of shape {dy.shape} does not match the input shape {shape}")
        return dy.reshape(shape) if input_grad else None

    def extra_repr(self) -> str:
        return format_args((), [("start_dim", self.start_dim, 1), ("end_dim", self.end_dim, -1)])
