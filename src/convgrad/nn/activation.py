"""Element-wise activations: ``ReLU``, ``LeakyReLU``, ``Tanh``, ``Sigmoid``.

Each keeps the one array its derivative needs (a mask or its own output) and nothing else::

    ReLU       y = max(x, 0)                    dx = dy * [x > 0]
    LeakyReLU  y = x if x > 0 else a*x          dx = dy * (1 if x > 0 else a)
    Tanh       y = tanh(x)                      dx = dy * (1 - y^2)
    Sigmoid    y = 1 / (1 + exp(-x))            dx = dy * y * (1 - y)

At ``x = 0`` ReLU's derivative is taken as 0 and LeakyReLU's as ``a``, as in PyTorch.
"""

from __future__ import annotations

import numbers

import numpy as np

from .. import batch_split
from ..dtypes import as_real_array
from .bn_passes import kept
from .module import Module, format_args

__all__ = ["ReLU", "LeakyReLU", "Tanh", "Sigmoid"]


class _Elementwise(Module):
    """Shared input checks and the ``grad_output`` shape check."""

    def _input(self, x) -> np.ndarray:
        return as_real_array(x, type(self).__name__, "input")

    def _grad(self, grad_output, shape) -> np.ndarray:
        dy = as_real_array(grad_output, f"{type(self).__name__}.backward", "grad_output")
        if dy.shape != shape:
            raise ValueError(
                f"{type(self).__name__}.backward: grad_output must have shape {shape} (the output's), got {dy.shape}"
            )
        return dy


class GateOf:
    """What a ``ReLU`` keeps when its forward ran inside the layer before it (``BatchNorm2d._forward(relu=True)``):
    that layer, which holds the gate ``[y > 0]`` (as bytes, or ``y`` itself) if this ReLU's backward runs alone."""

    __slots__ = ("layer",)

    def __init__(self, layer):
        self.layer = layer


class ReLU(_Elementwise):
    """``max(x, 0)``."""

    def forward(self, x):
        x = self._input(x)
        if x.ndim == 0:
            self._remember(x > 0)
            return np.maximum(x, x.dtype.type(0))
        # the mask: a byte per value, an array the layer keeps from step to step (fresh pages cost a fault each)
        mask, y = kept(self, "mask", x.shape, bool), np.empty(x.shape, x.dtype)

        def work(a, b):
            np.greater(x[a:b], 0, out=mask[a:b])
            np.maximum(x[a:b], x.dtype.type(0), out=y[a:b])

        batch_split.run(x.shape[0], x.nbytes, work)
        self._remember(mask)
        return y

    def backward(self, grad_output, *, input_grad: bool = True):
        (mask,) = self._recall()
        if isinstance(mask, GateOf):  # fused into the BatchNorm2d before it: that layer holds the gate
            mask = mask.layer._relu_gate()
        elif not isinstance(mask, np.ndarray):  # a fusion.PooledFirst: the pool after it ran first
            raise RuntimeError(
                f"ReLU.backward: the last forward ran fused with the {type(mask.layer).__name__} after it inside a "
                "Sequential (pool first, then the ReLU on the pooled values), so the ReLU's own input gradient was "
                "never set up; call the Sequential's backward (or run the ReLU's forward on its own first)")
        dy = self._grad(grad_output, mask.shape)
        if not input_grad:
            return None
        if dy.ndim == 0:
            return dy * (mask if mask.dtype == bool else mask > 0)
        dx = np.empty(dy.shape, dy.dtype)
        if mask.dtype != bool:  # run in place by a Sequential (nn.fusion): the kept output y, gate [y > 0]
            y = mask

            def work(a, b):
                gate = np.greater(y[a:b], 0)
                np.multiply(dy[a:b], gate, out=dx[a:b])
        else:
            def work(a, b):
                np.multiply(dy[a:b], mask[a:b], out=dx[a:b])

        batch_split.run(dy.shape[0], dy.nbytes, work)
        return dx


class LeakyReLU(_Elementwise):
    """``x`` where positive, ``negative_slope * x`` elsewhere (default slope 0.01, as PyTorch)."""

    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        if isinstance(negative_slope, bool) or not isinstance(negative_slope, numbers.Real):
            raise TypeError(f"LeakyReLU: negative_slope must be a real number, got {negative_slope!r}")
        self.negative_slope = float(negative_slope)

    def forward(self, x):
        x = self._input(x)
        slope = (x > 0) * x.dtype.type(1 - self.negative_slope) + x.dtype.type(self.negative_slope)  # dy/dx
        self._remember(slope)
        return x * slope

    def backward(self, grad_output, *, input_grad: bool = True):
        (slope,) = self._recall()
        dy = self._grad(grad_output, slope.shape)
        return dy * slope if input_grad else None

    def extra_repr(self) -> str:
        return format_args((), [("negative_slope", self.negative_slope, 0.01)])


class Tanh(_Elementwise):
    """``tanh(x)``."""

    def forward(self, x):
        y = np.tanh(self._input(x))
        self._remember(y)
        return y

    def backward(self, grad_output, *, input_grad: bool = True):
        (y,) = self._recall()
        dy = self._grad(grad_output, y.shape)
        return dy * (1 - y * y) if input_grad else None


class Sigmoid(_Elementwise):
    """``1 / (1 + exp(-x))``, computed without overflow for large ``|x|``."""

    def forward(self, x):
        x = self._input(x)
        e = np.exp(-np.abs(x))  # in (0, 1]: never overflows
        y = np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)
        self._remember(y)
        return y

    def backward(self, grad_output, *, input_grad: bool = True):
        (y,) = self._recall()
        dy = self._grad(grad_output, y.shape)
        return dy * y * (1 - y) if input_grad else None
