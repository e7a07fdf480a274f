"""Pooling layers: ``MaxPool1d/2d/3d`` and ``AvgPool1d/2d/3d``, as in ``torch.nn``.

Thin layers over :mod:`convgrad.pooling` (the functional :func:`convgrad.max_pool`,
:func:`convgrad.avg_pool` and their backward passes): a layer checks its arguments once,
builds the geometry once per input size and keeps, for backward, only what it needs -- max
pooling one small integer per output (which tap of its window held the maximum), average
pooling nothing but the input's shape.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from .. import layout, pooling
from ..dtypes import as_real_array
from .module import Module, format_args

__all__ = ["MaxPool1d", "MaxPool2d", "MaxPool3d", "AvgPool1d", "AvgPool2d", "AvgPool3d"]


class _Pool(Module):
    _rank: ClassVar[int]

    def _setup(self, kernel_size, stride, padding, dilation, ceil_mode, data_format="channels_first") -> None:
        self.data_format = data_format  # channels last: (N, *spatial, C), pooled as a channels-first view
        self.channels_last = layout.layer_channels_last(data_format, type(self).__name__, self._rank)
        args = pooling.PoolArgs(self._rank, kernel_size, stride, padding, dilation, ceil_mode, type(self).__name__)
        self._args = args
        self.kernel_size, self.stride, self.padding = args.kernel, args.stride, args.padding
        self.dilation, self.ceil_mode = args.dilation, args.ceil_mode
        self._geometry: pooling.Geometry | None = None

    def _input(self, x):
        name = type(self).__name__
        x = as_real_array(x, name, "input")
        if x.ndim not in (self._rank + 1, self._rank + 2):
            raise ValueError(
                f"{name}: input must be {self._rank + 2}-d (batch, channels, {self._rank} spatial) or "
                f"{self._rank + 1}-d (unbatched), got shape {x.shape}"
            )
        x = self._first(x)
        size = x.shape[-self._rank:]
        if self._geometry is None or self._geometry.size != size:  # built once per input size
            self._geometry = self._args.geometry(size)
        return x, self._geometry

    def _first(self, x):
        """The caller's array as channels first (a view); ``_out`` is the inverse."""
        return layout.data_to_first(x, self._rank) if self.channels_last else x

    def _out(self, y):
        return layout.data_to_last(y, self._rank) if self.channels_last else y

    def _grad(self, grad_output, shape):
        if self.channels_last and getattr(grad_output, "ndim", None) == len(shape):
            grad_output = self._first(grad_output)
        return pooling._grad(grad_output, shape, f"{type(self).__name__}.backward")


class _MaxPoolNd(_Pool):
    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False, *,
                 data_format: str = "channels_first"):
        super().__init__()
        self._setup(kernel_size, stride, padding, dilation, ceil_mode, data_format)

    def forward(self, x):
        """``y[i] = max_k x[i*S + k*D - P]`` (:func:`convgrad.max_pool`); keeps one small integer per output."""
        x, geom = self._input(x)
        y, tap = pooling.max_forward(x, geom)
        self._remember(tap, geom)
        return self._out(y)

    def backward(self, grad_output, *, input_grad: bool = True):
        cache = self._recall()
        if len(cache) != 2:
            raise RuntimeError(
                f"{type(self).__name__}.backward: the last forward ran fused with the ReLU before it inside a "
                "Sequential (relu(pool(x)) for pool(relu(x))); call the Sequential's backward (or run this "
                "layer's forward on its own first)")
        tap, geom = cache
        dy = self._grad(grad_output, tap.shape)
        if not input_grad:
            return None
        return self._out(pooling.max_backward(dy, tap, geom))

    def _forward_then_relu(self, x):
        """``max(pool(x), 0)``, which is ``pool(max(x, 0))`` (:mod:`convgrad.nn.fusion`); keeps the taps and the output."""
        x, geom = self._input(x)
        y, tap = pooling.max_forward(x, geom)
        np.maximum(y, y.dtype.type(0), out=y)  # a fresh array
        self._remember(tap, geom, y)
        return y

    def _backward_then_relu(self, grad_output, *, input_grad: bool = True):
        """``dL/dx`` of :meth:`_forward_then_relu`: the gradient gated by ``[y > 0]``, then scattered to the taps."""
        tap, geom, y = self._recall()
        dy = self._grad(grad_output, tap.shape)
        if not input_grad:
            return None
        return pooling.max_backward(dy, tap, geom, gate=y)  # dy where y > 0, else 0

    def extra_repr(self) -> str:
        return format_args(
            (), [("kernel_size", self.kernel_size, None), ("stride", self.stride, self.kernel_size),
                 ("padding", self.padding, 0), ("dilation", self.dilation, 1), ("ceil_mode", self.ceil_mode, False),
                 ("data_format", self.data_format, "channels_first")],
        )


class _AvgPoolNd(_Pool):
    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False, count_include_pad: bool = True,
                 divisor_override: int | None = None, *, data_format: str = "channels_first"):
        super().__init__()
        self._setup(kernel_size, stride, padding, 1, ceil_mode, data_format)
        self.count_include_pad, self.divisor_override = pooling.avg_options(
            count_include_pad, divisor_override, type(self).__name__)

    def forward(self, x):
        """``y[i] = sum_k x[i*S + k - P] / divisor[i]`` (:func:`convgrad.avg_pool`)."""
        x, geom = self._input(x)
        divisor = pooling.avg_divisor(geom, self.count_include_pad, self.divisor_override, x.dtype)
        self._remember(x.shape, divisor, geom)
        return self._out(pooling.avg_forward(x, geom, divisor))

    def backward(self, grad_output, *, input_grad: bool = True):
        shape, divisor, geom = self._recall()
        dy = self._grad(grad_output, shape[: len(shape) - self._rank] + geom.output)
        if not input_grad:
            return None
        return self._out(pooling.avg_backward(dy, geom, divisor.astype(dy.dtype, copy=False)))

    def extra_repr(self) -> str:
        return format_args(
            (), [("kernel_size", self.kernel_size, None), ("stride", self.stride, self.kernel_size),
                 ("padding", self.padding, 0), ("ceil_mode", self.ceil_mode, False),
                 ("count_include_pad", self.count_include_pad, True), ("divisor_override", self.divisor_override, None),
                 ("data_format", self.data_format, "channels_first")],
        )


class MaxPool1d(_MaxPoolNd):
    """``torch.nn.MaxPool1d``: the maximum of each window of ``(N, C, L)``."""

    _rank = 1


class MaxPool2d(_MaxPoolNd):
    """``torch.nn.MaxPool2d``: the maximum of each window of ``(N, C, H, W)``; stride defaults to the kernel size."""

    _rank = 2


class MaxPool3d(_MaxPoolNd):
    """``torch.nn.MaxPool3d``: the maximum of each window of ``(N, C, D, H, W)``."""

    _rank = 3


class AvgPool1d(_AvgPoolNd):
    """``torch.nn.AvgPool1d``: the mean of each window of ``(N, C, L)``."""

    _rank = 1


class AvgPool2d(_AvgPoolNd):
    """``torch.nn.AvgPool2d``: the mean of each window of ``(N, C, H, W)``; stride defaults to the kernel size."""

    _rank = 2


class AvgPool3d(_AvgPoolNd):
    """``torch.nn.AvgPool3d``: the mean of each window of ``(N, C, D, H, W)``."""

    _rank = 3
