"""``BatchNorm2d``: per-channel normalisation with running statistics, as ``torch.nn.BatchNorm2d``."""

from __future__ import annotations

import numbers

import numpy as np

from .. import batch_split, layout
from ..dtypes import as_real_array
from .conv import _channels
from .init import resolve_dtype
from . import bn_passes
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
        return self._forward(x)

    def _forward(self, x, *, relu: bool = False, residual=None, gate_from_output: bool = False):
        """``forward``, optionally with the ReLU after it (``relu``) and a residual added before that ReLU.

        The fused forms are what :class:`~convgrad.nn.Sequential` runs for a ``BatchNorm2d``
        followed by a ``ReLU``, and :class:`~convgrad.nn.BasicBlock` for ``relu(bn2(.) + shortcut)``:
        one pass writes the output instead of three. ``residual`` is channels first ``(N, C, H, W)``.
        With ``gate_from_output`` the ReLU's gate is read from the output itself at backward
        (``[y > 0]``) instead of being kept: for a caller whose next layer keeps ``y`` anyway.
        """
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
        x3 = x.reshape(n, c, h * w)  # (N, C, HW): the per-channel broadcasts run over contiguous rows
        # x - mu, kept for backward and freed with the layer's cache: kept from step to step instead it saved
        # page faults (ResNet-8 7.9k -> 3.0k per step) but raised the step's peak memory (58 -> 67 MiB)
        centered = np.empty(x3.shape, x3.dtype)
        batch_stats = self.training or not self.track_running_stats
        if batch_stats:
            if self.training and m <= 1:
                raise ValueError(f"BatchNorm2d: training needs more than one value per channel, got input of shape {x.shape}")
            mean, var = bn_passes.statistics(x3, centered)
            if self.training and self.track_running_stats:
                self._update_running(mean, var, m)
        else:  # eval: the running statistics, constants
            mean, var = self.running_mean.astype(x.dtype), self.running_var.astype(x.dtype)
            batch_split.run(n, x3.nbytes, lambda a, b: np.subtract(x3[a:b], mean[:, None], out=centered[a:b]))
        res3 = None if residual is None else residual.reshape(x3.shape)  # (N, C, HW)
        y = self._normalize(centered, var, x.shape, batch_stats, relu=relu, residual=res3,
                            gate_from_output=gate_from_output)
        return self._out(y)

    def _out(self, y):
        """A channels-first result in the caller's layout (a view)."""
        return layout.data_to_last(y, 2) if self.channels_last else y

    def _scales(self, var, dtype):
        """``(inv_std, scale)``: ``1/sqrt(var + eps)`` and ``weight * inv_std`` (``inv_std`` without affine)."""
        inv_std = (1.0 / np.sqrt(var + self.eps)).astype(dtype, copy=False)
        return inv_std, (inv_std * self.weight.value.astype(dtype, copy=False) if self.affine else inv_std)

    def _normalize(self, centered, var, shape, batch_stats: bool = True, *, relu: bool = False, residual=None,
                   gate_from_output: bool = False):
        """``y = (x - mu) * (weight * inv_std) + bias`` from ``centered = x - mu`` of shape ``(N, C, HW)``.

        Keeps ``centered`` for backward (``x_hat = centered * inv_std`` is never stored: one pass
        fewer each way). With ``relu`` (and no ``residual``) also the ReLU's gate ``[y > 0]``, a
        byte per value. Also the data-parallel step's forward, with the whole batch's ``var``.
        """
        inv_std, scale = self._scales(var, centered.dtype)
        bias = self.bias.value.astype(centered.dtype, copy=False) if self.affine else None
        fused_relu = relu and residual is None
        gate = bn_passes.kept(self, "gate", centered.shape, bool) if fused_relu and not gate_from_output else None
        y = bn_passes.normalize(centered, scale, bias, residual=residual, relu=relu, gate=gate)
        # the gate for backward: the kept bytes, or y itself (y > 0 where the ReLU passed)
        self._remember(centered, (inv_std, scale), shape, batch_stats, y if fused_relu and gate_from_output else gate)
        return y.reshape(shape)

    def _update_running(self, mean, var, m) -> None:
        self.num_batches_tracked += 1
        factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        unbiased = var * (m / (m - 1))
        self.running_mean[...] = (1 - factor) * self.running_mean + factor * mean
        self.running_var[...] = (1 - factor) * self.running_var + factor * unbiased

    def _sums(self, grad_output, func: str = "BatchNorm2d.backward", *, gate=None, dz_out=None):
        """``(dz as (N, C, HW), sum dz, sum dz * x_hat)`` per channel, for the last forward.

        ``dz = dy``, or ``dy * [gate > 0]`` with ``gate`` (written into ``dz_out`` when given).
        """
        centered, (inv_std, _), shape, _, _ = self._recall()
        if self.channels_last and np.ndim(grad_output) == 4:
            grad_output = layout.data_to_first(as_real_array(grad_output, func, "grad_output"), 2)
        dy = as_real_array(grad_output, func, "grad_output")
        if dy.shape != shape:
            raise ValueError(f"{func}: grad_output must have shape {shape} (the output's), got {dy.shape}")
        dy3 = dy.reshape(centered.shape)  # (N, C, HW)
        dz, sum_dy, sum_dy_t = bn_passes.sums(centered, dy3, gate=None if gate is None else gate.reshape(centered.shape),
                                              dz_out=None if dz_out is None else dz_out.reshape(centered.shape))
        return dz, sum_dy, sum_dy_t * inv_std

    def _input_grad(self, dy3, sum_dy, sum_dy_xhat, m, *, in_place: bool = False):
        """``dx = scale * (dy - sum(dy)/m - x_hat * sum(dy * x_hat)/m)`` (the sums over ``m`` values per channel)."""
        centered, (inv_std, scale), shape, batch_stats, _ = self._recall()
        if not batch_stats:  # mu and var are constants
            return bn_passes.input_grad(centered, dy3, scale, None, None, in_place=in_place).reshape(shape)
        m = dy3.dtype.type(m)
        k_x, k_1 = -scale * inv_std * (sum_dy_xhat / m), scale * (sum_dy / m)
        return bn_passes.input_grad(centered, dy3, scale, k_x, k_1, in_place=in_place).reshape(shape)

    def backward(self, grad_output, *, input_grad: bool = True):
        return self._backward(grad_output, input_grad=input_grad)

    def _backward(self, grad_output, *, input_grad: bool = True, relu: bool = False, gate=None, dz_out=None):
        """``backward``; with ``relu`` through the ReLU fused into the last forward first (``dy * [y > 0]``),
        with ``gate`` through ``[gate > 0]`` (a residual block's output), ``dz`` written into ``dz_out``."""
        kept_gate = self._recall()[4]
        if relu:
            if kept_gate is None:
                raise RuntimeError("BatchNorm2d: the last forward had no ReLU fused into it")
            gate = kept_gate
        dz, sum_dy, sum_dy_xhat = self._sums(grad_output, gate=gate, dz_out=dz_out)
        if self.affine:
            if self.weight.requires_grad:
                self.weight.accumulate(sum_dy_xhat)
            if self.bias.requires_grad:
                self.bias.accumulate(sum_dy)
        if not input_grad:
            return None
        in_place = gate is not None and dz_out is None  # dz is this call's own array: dx takes its place
        return self._out(self._input_grad(dz, sum_dy, sum_dy_xhat, dz.shape[0] * dz.shape[2], in_place=in_place))

    def _relu_gate(self) -> np.ndarray:
        """``[y > 0]`` of the last fused BatchNorm+ReLU forward (for a ``ReLU.backward`` called on its own)."""
        gate, shape = self._recall()[4], self._recall()[2]
        if gate is None:
            raise RuntimeError("BatchNorm2d: the last forward had no ReLU fused into it")
        return self._out((gate if gate.dtype == bool else gate > 0).reshape(shape))

    def extra_repr(self) -> str:
        return format_args(
            (self.num_features,),
            [("eps", self.eps, 1e-5), ("momentum", self.momentum, 0.1), ("affine", self.affine, True),
             ("track_running_stats", self.track_running_stats, True), ("data_format", self.data_format, "channels_first")],
        )
