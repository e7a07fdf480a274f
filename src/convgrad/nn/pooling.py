"""Pooling layers: ``MaxPool1d/2d/3d`` and ``AvgPool1d/2d/3d``, as in ``torch.nn``.

Geometry per spatial dim (input length ``H``, kernel ``K``, stride ``S``, padding ``P``,
dilation ``D``; average pooling has ``D = 1``)::

    H_out = floor((H + 2P - D*(K-1) - 1) / S) + 1          (ceil instead of floor with ceil_mode,
                                                           minus one if the last window would start
                                                           in the right padding)
    window i reads  i*S + k*D - P   for k = 0 .. K-1

Both passes loop over the kernel taps (``K1*K2`` of them, never over pixels): tap ``k`` of every
window at once is one strided slice of the padded input, and the backward pass adds the output
gradient back into that slice::

    max:  dx[i*S + k*D - P] += dy[i]  for the tap k that held the maximum (the first one on ties)
    avg:  dx[i*S + k   - P] += dy[i] / divisor[i]   for every tap k
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from .. import layout
from ..dtypes import as_real_array
from ..spec import positive_ints
from .module import Module, format_args

__all__ = ["MaxPool1d", "MaxPool2d", "MaxPool3d", "AvgPool1d", "AvgPool2d", "AvgPool3d"]


def _nonneg_ints(value, rank: int, func: str, name: str) -> tuple[int, ...]:
    items = (value,) * rank if isinstance(value, (int, np.integer)) and not isinstance(value, bool) else value
    try:
        items = tuple(items)
    except TypeError:
        raise TypeError(f"{func}: {name} must be an int or a tuple of {rank} ints, got {value!r}") from None
    if len(items) != rank or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in items):
        raise TypeError(f"{func}: {name} must be an int or a tuple of {rank} ints, got {value!r}")
    if any(v < 0 for v in items):
        raise ValueError(f"{func}: {name} must be non-negative, got {value!r}")
    return tuple(int(v) for v in items)


class _Geometry:
    """Output sizes and the padding that makes every window lie inside the array, for one input shape."""

    def __init__(self, size, kernel, stride, padding, dilation, ceil_mode, func):
        self.size = size
        out, hi = [], []
        for dim, (h, k, s, p, d) in enumerate(zip(size, kernel, stride, padding, dilation)):
            span = h + 2 * p - d * (k - 1) - 1
            if span < 0:
                raise ValueError(
                    f"{func}: the window (dilation*(kernel-1)+1 = {d * (k - 1) + 1}) is larger than the padded "
                    f"input ({h} + 2*{p}) in spatial dim {dim}"
                )
            o = (-(-span // s) if ceil_mode else span // s) + 1
            if ceil_mode and (o - 1) * s >= h + p:
                o -= 1
            out.append(o)
            hi.append(max(0, (o - 1) * s + d * (k - 1) + 1 - h - p))
        self.output = tuple(out)
        self.pad = tuple(zip(padding, hi))  # (lo, hi) per dim; hi covers ceil_mode's last window
        self.cropping = any(lo or hi for lo, hi in self.pad)

    def padded(self, x: np.ndarray, fill) -> np.ndarray:
        if not self.cropping:
            return x
        return np.pad(x, [(0, 0)] * (x.ndim - len(self.pad)) + list(self.pad), constant_values=fill)

    def crop(self, xp: np.ndarray) -> np.ndarray:
        """The real input's part of a padded array (a contiguous copy)."""
        index = (Ellipsis, *(slice(lo, lo + h) for (lo, _), h in zip(self.pad, self.size)))
        return np.ascontiguousarray(xp[index])


class _Pool(Module):
    _rank: ClassVar[int]

    def _setup(self, kernel_size, stride, padding, dilation, ceil_mode, data_format="channels_first") -> None:
        name = type(self).__name__
        self.data_format = data_format  # channels last: (N, *spatial, C), pooled as a channels-first view
        self.channels_last = layout.layer_channels_last(data_format, name, self._rank)
        self.kernel_size = positive_ints(kernel_size, self._rank, name, "kernel_size")
        self.stride = self.kernel_size if stride is None else positive_ints(stride, self._rank, name, "stride")
        self.padding = _nonneg_ints(padding, self._rank, name, "padding")
        self.dilation = positive_ints(dilation, self._rank, name, "dilation")
        if any(p > k // 2 for p, k in zip(self.padding, self.kernel_size)):
            raise ValueError(
                f"{name}: padding must be at most half the kernel size, got padding={self.padding} for "
                f"kernel_size={self.kernel_size}"
            )
        if not isinstance(ceil_mode, bool):
            raise TypeError(f"{name}: ceil_mode must be True or False, got {ceil_mode!r}")
        self.ceil_mode = ceil_mode
        self._geometry_cache: tuple | None = None

    def _input(self, x) -> tuple[np.ndarray, _Geometry]:
        name = type(self).__name__
        x = as_real_array(x, name, "input")
        if x.ndim not in (self._rank + 1, self._rank + 2):
            raise ValueError(
                f"{name}: input must be {self._rank + 2}-d (batch, channels, {self._rank} spatial) or "
                f"{self._rank + 1}-d (unbatched), got shape {x.shape}"
            )
        x = self._first(x)
        size = x.shape[-self._rank:]
        if self._geometry_cache is None or self._geometry_cache[0] != size:
            geom = _Geometry(size, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode, name)
            self._geometry_cache = (size, geom)
        return x, self._geometry_cache[1]

    def _first(self, x) -> np.ndarray:
        """The caller's array as channels first (a view); ``_out`` is the inverse."""
        return layout.data_to_first(x, self._rank) if self.channels_last else x

    def _out(self, y: np.ndarray) -> np.ndarray:
        return layout.data_to_last(y, self._rank) if self.channels_last else y

    def _taps(self, geom: _Geometry):
        """``(tap index, slice of the padded input that tap reads for every output)`` per kernel tap."""
        for tap in np.ndindex(*self.kernel_size):
            index = (Ellipsis, *(slice(k * d, k * d + (o - 1) * s + 1, s)
                                 for k, d, o, s in zip(tap, self.dilation, geom.output, self.stride)))
            yield tap, index

    def _grad(self, grad_output, shape) -> np.ndarray:
        dy = as_real_array(grad_output, f"{type(self).__name__}.backward", "grad_output")
        if self.channels_last and dy.ndim == len(shape):
            dy = self._first(dy)
        if dy.shape != shape:
            raise ValueError(f"{type(self).__name__}.backward: grad_output must have shape {shape} (the output's), got {dy.shape}")
        return dy


class _MaxPoolNd(_Pool):
    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False, *,
                 data_format: str = "channels_first"):
        super().__init__()
        self._setup(kernel_size, stride, padding, dilation, ceil_mode, data_format)

    def forward(self, x):
        """``y[i] = max_k x[i*S + k*D - P]`` (padding never wins: it holds ``-inf``)."""
        x, geom = self._input(x)
        # taps[t]: tap t of every window, (*lead, *H_out)
        if self._tiles(geom):
            taps = self._gather(x, geom)
        else:
            xp = geom.padded(x, -np.inf)
            taps = [xp[index] for _, index in self._taps(geom)]
        y = taps[0].copy()  # (*lead, *H_out)
        arg = np.zeros(y.shape, dtype=np.int16 if math.prod(self.kernel_size) < 2**15 else np.int64)
        for t in range(1, len(taps)):
            np.copyto(arg, t, where=taps[t] > y)  # strictly greater: the first maximum keeps its place, as PyTorch
            np.maximum(y, taps[t], out=y)
        self._remember(arg, x.shape, geom)
        return self._out(y)

    def _tiles(self, geom: _Geometry) -> bool:
        """Whether the windows tile the input: stride = kernel, no dilation, no padding."""
        return not geom.cropping and self.stride == self.kernel_size and all(d == 1 for d in self.dilation)

    def _gather(self, x: np.ndarray, geom: _Geometry) -> np.ndarray:
        """``(prod(K), *lead, *H_out)``, contiguous: entry ``t`` is tap ``t`` of every window.

        One transposing copy; the comparisons that follow then run on contiguous arrays (on the
        LeNet's 2x2 pooling this forward took 80 % of the time of working on strided slices).
        """
        r, lead = self._rank, x.shape[: x.ndim - self._rank]
        split = tuple(v for o, k in zip(geom.output, self.kernel_size) for v in (o, k))
        order = (*(len(lead) + 2 * i + 1 for i in range(r)), *range(len(lead)), *(len(lead) + 2 * i for i in range(r)))
        used = x[(Ellipsis, *(slice(0, o * k) for o, k in zip(geom.output, self.kernel_size)))]
        tiled = used.reshape(lead + split)  # (*lead, H_out1, K1, H_out2, K2, ...)
        return np.ascontiguousarray(tiled.transpose(order)).reshape((-1,) + lead + geom.output)

    def backward(self, grad_output, *, input_grad: bool = True):
        arg, shape, geom = self._recall()
        dy = self._grad(grad_output, arg.shape)
        if not input_grad:
            return None
        lead = shape[: len(shape) - self._rank]
        dxp = np.zeros(lead + tuple(h + lo + hi for h, (lo, hi) in zip(geom.size, geom.pad)), dtype=dy.dtype)
        overlapping = any(s < d * (k - 1) + 1 for s, k, d in zip(self.stride, self.kernel_size, self.dilation))
        for t, (_, index) in enumerate(self._taps(geom)):
            if overlapping:
                dxp[index] += dy * (arg == t)
            else:  # each input position is read by one window at most: plain assignment
                dxp[index] = dy * (arg == t)
        return self._out(geom.crop(dxp) if geom.cropping else dxp)

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
        if not isinstance(count_include_pad, bool):
            raise TypeError(f"{type(self).__name__}: count_include_pad must be True or False, got {count_include_pad!r}")
        self.count_include_pad = count_include_pad
        if divisor_override is not None:
            if isinstance(divisor_override, bool) or not isinstance(divisor_override, (int, np.integer)):
                raise TypeError(f"{type(self).__name__}: divisor_override must be a positive int or None, got {divisor_override!r}")
            if divisor_override < 1:
                raise ValueError(f"{type(self).__name__}: divisor_override must be positive, got {divisor_override}")
        self.divisor_override = divisor_override

    def _divisor(self, geom: _Geometry) -> np.ndarray:
        """How many positions each window averages over, shape ``H_out`` (PyTorch's rule)."""
        if self.divisor_override is not None:
            return np.full(geom.output, float(self.divisor_override))
        counts = []
        for h, k, s, p, o in zip(geom.size, self.kernel_size, self.stride, self.padding, geom.output):
            start = np.arange(o) * s - p
            end = np.minimum(start + k, h + p)  # windows are clipped to the padded input ...
            if not self.count_include_pad:  # ... and, without count_include_pad, to the input itself
                start, end = np.maximum(start, 0), np.minimum(end, h)
            counts.append((end - start).astype(float))
        return math.prod(np.ix_(*counts)) if counts else np.ones(())

    def forward(self, x):
        """``y[i] = sum_k x[i*S + k - P] / divisor[i]`` (padding holds zeros)."""
        x, geom = self._input(x)
        xp = geom.padded(x, 0)
        total = None
        for _, index in self._taps(geom):
            total = xp[index].copy() if total is None else np.add(total, xp[index], out=total)  # (*lead, *H_out)
        divisor = self._divisor(geom).astype(x.dtype)
        y = total / divisor
        self._remember(x.shape, divisor, geom)
        return self._out(y)

    def backward(self, grad_output, *, input_grad: bool = True):
        shape, divisor, geom = self._recall()
        lead = shape[: len(shape) - self._rank]
        dy = self._grad(grad_output, lead + geom.output)
        if not input_grad:
            return None
        share = dy / divisor.astype(dy.dtype)
        dxp = np.zeros(lead + tuple(h + lo + hi for h, (lo, hi) in zip(geom.size, geom.pad)), dtype=share.dtype)
        for _, index in self._taps(geom):
            dxp[index] += share
        return self._out(geom.crop(dxp) if geom.cropping else dxp)

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
