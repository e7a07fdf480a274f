"""``BatchNorm2d``: per-channel normalisation with running statistics, as ``torch.nn.BatchNorm2d``."""

from __future__ import annotations

import numbers

import numpy as np

from .. import batch_split, layout
from ..dtypes import as_real_array
from .conv import _channels
from .init import resolve_dtype
from .module import Module, format_args
from .parameter import Parameter

__all__ = ["BatchNorm2d"]


def _total(parts):
    """The sum of per-slice partial sums, in slice order."""
    parts = list(parts)
    total = parts[0].copy() if len(parts) > 1 else parts[0]
    for p in parts[1:]:
        total += p
    return total


class BatchNorm2d(Module):
    """Batch normalisation over ``(N, H, W)`` for each channel of an ``(N, C, H, W)`` input.

    Parameters
    ----------
    num_features : int
        ``C``.
    eps : float
        Added to the variance before the square root.
    momentum : float or None
        Running-statistics update factor; ``None`` gives the cumulative average (factor
        ``1/num_batches_tracked``).
    affine : bool
        Learn a scale ``weight`` (init 1) and shift ``bias`` (init 0).
    track_running_stats : bool
        Keep ``running_mean`` (init 0), ``running_var`` (init 1) and ``num_batches_tracked``.

    Notes
    -----
    In training mode (or without running statistics), with ``m = N*H*W`` values per channel::

        mu = mean(x)    var = mean((x - mu)^2)    x_hat = (x - mu) / sqrt(var + eps)
        y  = weight * x_hat + bias
        running_mean <- (1 - momentum) * running_mean + momentum * mu
        running_var  <- (1 - momentum) * running_var  + momentum * var * m/(m - 1)   (unbiased)

        dx = weight / sqrt(var + eps) * (dy - mean(dy) - x_hat * mean(dy * x_hat))
        dweight += sum(dy * x_hat)        dbias += sum(dy)

    In eval mode ``mu`` and ``var`` are the running statistics, constants, so
    ``dx = weight * dy / sqrt(running_var + eps)``.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, *, dtype=None, data_format: str = "channels_first"):
        super().__init__()
        self.data_format = data_format
        self.channels_last = layout.layer_channels_last(data_format, "BatchNorm2d", 2)
        self.num_features = _channels(num_features, "BatchNorm2d", "num_features")
        for name, value in (("eps", eps), ("momentum", momentum)):
            if value is None and name == "momentum":
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or value < 0:
                raise ValueError(f"BatchNorm2d: {name} must be a non-negative number, got {value!r}")
        for name, value in (("affine", affine), ("track_running_stats", track_running_stats)):
            if not isinstance(value, bool):
                raise TypeError(f"BatchNorm2d: {name} must be True or False, got {value!r}")
        self.eps = float(eps)
        self.momentum = None if momentum is None else float(momentum)
        self.affine = affine
        self.track_running_stats = track_running_stats
        dt = resolve_dtype(dtype, "BatchNorm2d")
        self.weight = Parameter(np.ones(self.num_features, dtype=dt)) if affine else None
        self.bias = Parameter(np.zeros(self.num_features, dtype=dt)) if affine else None
        if track_running_stats:
            self.register_buffer("running_mean", np.zeros(self.num_features, dtype=dt))
            self.register_buffer("running_var", np.ones(self.num_features, dtype=dt))
            self.register_buffer("num_batches_tracked", np.zeros((), dtype=np.int64))

    def forward(self, x):
        x = as_real_array(x, "BatchNorm2d", "input")
        if self.channels_last:
            if x.ndim != 4 or x.shape[3] != self.num_features:
                raise ValueError(f"BatchNorm2d: input must have shape (N, H, W, {self.num_features}) with "
                                 f"data_format={self.data_format!r}, got {x.shape}")
            x = layout.data_to_first(x, 2)  # (N, C, H, W), a view
        if x.ndim != 4 or x.shape[1] != self.num_features:
            raise ValueError(f"BatchNorm2d: input must have shape (N, {self.num_features}, H, W), got {x.shape}")
        n, c, h, w = x.shape
        m = n * h * w
        x3 = x.reshape(n, c, h * w)  # (N, C, HW): the per-channel broadcasts below run over contiguous rows
        if not (self.training or not self.track_running_stats):  # eval: the running statistics, constants
            mean, var = self.running_mean.astype(x.dtype), self.running_var.astype(x.dtype)
            inv_std, scale = self._scales(var, x.dtype)
            shift = -mean * scale + (self.bias.value.astype(x.dtype, copy=False) if self.affine else 0)
            y = np.multiply(x3, scale[:, None])  # y = x * scale + (bias - mu * scale)
            y += shift.astype(x.dtype, copy=False)[:, None]
            self._remember(x3, inv_std, scale, x.shape, mean)  # x itself: backward subtracts mu from its sums
            return self._out(y.reshape(x.shape))
        if self.training and m <= 1:
            raise ValueError(f"BatchNorm2d: training needs more than one value per channel, got input of shape {x.shape}")
        # einsum: far faster than sum over (0, 2); slices of the batch on convgrad's threads
        mean = _total(batch_split.run(n, x.nbytes, lambda a, b: np.einsum("nck->c", x3[a:b]))) / x.dtype.type(m)
        centered = np.empty(x3.shape, x.dtype)

        def center(a, b):
            part = np.subtract(x3[a:b], mean[:, None], out=centered[a:b])
            return np.einsum("nck,nck->c", part, part)

        var = _total(batch_split.run(n, x.nbytes, center)) / x.dtype.type(m)  # biased, two-pass
        if self.training and self.track_running_stats:
            self._update_running(mean, var, m)
        return self._out(self._normalize(centered, var, x.shape))

    def _out(self, y):
        """A channels-first result in the caller's layout (a view)."""
        return layout.data_to_last(y, 2) if self.channels_last else y

    def _scales(self, var, dtype):
        """``(inv_std, scale)``: ``1/sqrt(var + eps)`` and ``weight * inv_std`` (``inv_std`` without affine)."""
        inv_std = (1.0 / np.sqrt(var + self.eps)).astype(dtype, copy=False)
        return inv_std, (inv_std * self.weight.value.astype(dtype, copy=False) if self.affine else inv_std)

    def _normalize(self, centered, var, shape):
        """``y = (x - mu) * (weight * inv_std) + bias`` from ``centered = x - mu`` of shape ``(N, C, HW)``.

        Keeps ``centered`` for backward (``x_hat = centered * inv_std`` is never stored: one pass
        fewer each way). Also the data-parallel step's forward, with the whole batch's ``var``.
        """
        inv_std, scale = self._scales(var, centered.dtype)
        y = np.empty(centered.shape, centered.dtype)
        bias = self.bias.value.astype(centered.dtype, copy=False)[:, None] if self.affine else None

        def work(a, b):
            np.multiply(centered[a:b], scale[:, None], out=y[a:b])
            if bias is not None:
                y[a:b] += bias

        batch_split.run(y.shape[0], y.nbytes, work)
        self._remember(centered, inv_std, scale, shape, None)
        return y.reshape(shape)

    def _update_running(self, mean, var, m) -> None:
        self.num_batches_tracked += 1
        factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        unbiased = var * (m / (m - 1))
        self.running_mean[...] = (1 - factor) * self.running_mean + factor * mean
        self.running_var[...] = (1 - factor) * self.running_var + factor * unbiased

    def _sums(self, grad_output, func: str = "BatchNorm2d.backward"):
        """``(dy as (N, C, HW), sum dy, sum dy * x_hat)`` per channel, for the last forward."""
        centered, inv_std, _, shape, eval_mean = self._recall()
        dy = as_real_array(grad_output, func, "grad_output")
        if dy.shape != shape:
            raise ValueError(f"{func}: grad_output must have shape {shape} (the output's), got {dy.shape}")
        dy3 = dy.reshape(centered.shape)  # (N, C, HW)
        sums = batch_split.run(dy3.shape[0], dy3.nbytes, lambda a, b: (np.einsum("nck->c", dy3[a:b]),
                                                                       np.einsum("nck,nck->c", dy3[a:b], centered[a:b])))
        sum_dy, sum_dy_xhat = _total(s[0] for s in sums), _total(s[1] for s in sums)
        if eval_mean is not None:  # eval mode: ``centered`` is x itself
            sum_dy_xhat -= eval_mean * sum_dy
        sum_dy_xhat *= inv_std
        return dy3, sum_dy, sum_dy_xhat

    def _input_grad(self, dy3, sum_dy, sum_dy_xhat, m):
        """``dx = scale * (dy - sum(dy)/m - x_hat * sum(dy * x_hat)/m)`` (the sums over ``m`` values per channel)."""
        centered, inv_std, scale, shape, eval_mean = self._recall()
        if eval_mean is not None:  # mu and var are constants
            return (dy3 * scale[:, None]).reshape(shape)
        m = dy3.dtype.type(m)
        k_x, k_dy, k_1 = (-scale * inv_std * (sum_dy_xhat / m))[:, None], scale[:, None], (scale * (sum_dy / m))[:, None]
        dx = np.empty(dy3.shape, dy3.dtype)

        def work(a, b):
            part = np.multiply(centered[a:b], k_x, out=dx[a:b])
            part += dy3[a:b] * k_dy
            part -= k_1

        batch_split.run(dx.shape[0], dx.nbytes, work)
        return dx.reshape(shape)

    def backward(self, grad_output, *, input_grad: bool = True):
        if self.channels_last and np.ndim(grad_output) == 4:
            grad_output = layout.data_to_first(as_real_array(grad_output, "BatchNorm2d.backward", "grad_output"), 2)
        dy3, sum_dy, sum_dy_xhat = self._sums(grad_output)
        if self.affine:
            if self.weight.requires_grad:
                self.weight.accumulate(sum_dy_xhat)
            if self.bias.requires_grad:
                self.bias.accumulate(sum_dy)
        if not input_grad:
            return None
        return self._out(self._input_grad(dy3, sum_dy, sum_dy_xhat, dy3.shape[0] * dy3.shape[2]))

    def extra_repr(self) -> str:
        return format_args(
            (self.num_features,),
            [("eps", self.eps, 1e-5), ("momentum", self.momentum, 0.1), ("affine", self.affine, True),
             ("track_running_stats", self.track_running_stats, True), ("data_format", self.data_format, "channels_first")],
        )
