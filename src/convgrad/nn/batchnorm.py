"""``BatchNorm2d``: per-channel normalisation with running statistics, as ``torch.nn.BatchNorm2d``."""

from __future__ import annotations

import numbers

import numpy as np

from .. import layout
from ..dtypes import as_real_array
from .conv import _channels
from .init import resolve_dtype
from .module import Module, format_args
from .parameter import Parameter

__all__ = ["BatchNorm2d"]


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
    data_format : {"channels_first", "channels_last"} (or "NCHW", "NHWC")
        With channels last the input and output are ``(N, H, W, C)`` (computed on a channels-first view).

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
        use_batch = self.training or not self.track_running_stats
        m = x.shape[0] * x.shape[2] * x.shape[3]
        if use_batch:
            if self.training and m <= 1:
                raise ValueError(
                    f"BatchNorm2d: training needs more than one value per channel, got input of shape {x.shape}"
                )
            mean = np.einsum("nchw->c", x) / x.dtype.type(m)  # einsum: far faster than sum over (0, 2, 3)
            centered = x - mean[:, None, None]
            var = np.einsum("nchw,nchw->c", centered, centered) / x.dtype.type(m)  # biased, two-pass
            if self.training and self.track_running_stats:
                self._update_running(mean, var, m)
        else:
            mean, var = self.running_mean.astype(x.dtype), self.running_var.astype(x.dtype)
            centered = x - mean[:, None, None]
        inv_std = (1.0 / np.sqrt(var + self.eps)).astype(x.dtype, copy=False)
        x_hat = centered * inv_std[:, None, None]
        y = x_hat
        if self.affine:
            y = x_hat * self.weight.value[:, None, None] + self.bias.value[:, None, None]
        self._remember(x_hat, inv_std, use_batch)
        return layout.data_to_last(y, 2) if self.channels_last else y

    def _update_running(self, mean, var, m) -> None:
        self.num_batches_tracked += 1
        factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        unbiased = var * (m / (m - 1))
        self.running_mean[...] = (1 - factor) * self.running_mean + factor * mean
        self.running_var[...] = (1 - factor) * self.running_var + factor * unbiased

    def backward(self, grad_output, *, input_grad: bool = True):
        x_hat, inv_std, use_batch = self._recall()
        dy = as_real_array(grad_output, "BatchNorm2d.backward", "grad_output")
        if self.channels_last and dy.ndim == 4:
            dy = layout.data_to_first(dy, 2)
        if dy.shape != x_hat.shape:
            raise ValueError(f"BatchNorm2d.backward: grad_output must have shape {x_hat.shape} (the output's), got {dy.shape}")
        sum_dy = np.einsum("nchw->c", dy)
        sum_dy_xhat = np.einsum("nchw,nchw->c", dy, x_hat)
        if self.affine:
            if self.weight.requires_grad:
                self.weight.accumulate(sum_dy_xhat)
            if self.bias.requires_grad:
                self.bias.accumulate(sum_dy)
        if not input_grad:
            return None
        scale = inv_std if not self.affine else inv_std * self.weight.value
        if not use_batch:
            dx = dy * scale[:, None, None]
        else:
            m = x_hat.shape[0] * x_hat.shape[2] * x_hat.shape[3]
            dx = (dy - (sum_dy / m)[:, None, None] - x_hat * (sum_dy_xhat / m)[:, None, None]) * scale[:, None, None]
        return layout.data_to_last(dx, 2) if self.channels_last else dx

    def extra_repr(self) -> str:
        return format_args(
            (self.num_features,),
            [("eps", self.eps, 1e-5), ("momentum", self.momentum, 0.1), ("affine", self.affine, True),
             ("track_running_stats", self.track_running_stats, True), ("data_format", self.data_format, "channels_first")],
        )
