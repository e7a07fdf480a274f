"""Convolution layers: ``Conv1d/2d/3d`` and ``ConvTranspose1d/2d/3d``, as in ``torch.nn``.

A layer owns its weight and bias and calls convgrad's own functions -- :func:`convgrad.conv`
and :func:`convgrad.conv_backward` (or their transposed versions) -- for both passes; nothing
here computes a convolution itself. ``forward`` keeps its input, which ``backward`` needs for
the weight gradient::

    y  = conv(x, W) + b
    dx = conv_backward(dy, x, W).input       transposed convolution of dy with W
    dW += conv_backward(dy, x, W).weight     correlation of x with dy
    db += sum of dy over batch and positions
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from .. import api, layout, planning
from ..spec import PADDING_MODES, PADDING_STRINGS, expand, positive_int, positive_ints, resolve_padding
from .init import default_bound, resolve_dtype, resolve_rng, uniform
from .module import Module, format_args
from .parameter import Parameter


def _as_layer(name: str, function, *args, **kwargs):
    """Call the public ``function``; a ValueError/TypeError it raises names the layer (``name``) instead of it."""
    try:
        return function(*args, **kwargs)
    except (ValueError, TypeError) as exc:
        prefix = f"{function.__name__}: "
        if str(exc).startswith(prefix):
            raise type(exc)(f"{name}: {str(exc)[len(prefix):]}") from None
        raise

__all__ = ["Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d"]


_channels = positive_int  # channel and group counts of the layers (batchnorm, linear, residual use it too)


def _padding(padding, rank: int, func: str):
    """Padding as PyTorch stores it: ``'valid'``/``'same'`` (or Keras' ``'causal'``), or a tuple of ints (or ``(lo, hi)`` pairs)."""
    if isinstance(padding, str):
        if padding not in PADDING_STRINGS:
            raise ValueError(f"{func}: padding must be an int, a tuple, 'valid', 'same' or 'causal', got {padding!r}")
        return padding
    pairs = resolve_padding(padding, (1,) * rank, (1,) * rank, (1,) * rank, (1,) * rank, func)  # validates
    if all(lo == hi for lo, hi in pairs) and not _has_pairs(padding):
        return tuple(lo for lo, _ in pairs)
    return pairs


def _algorithm(algorithm, func: str) -> str:
    """A layer's ``algorithm``: ``"auto"``, ``"measure"`` or a registered name (checked against the layer's
    configuration when it first runs, by the plan)."""
    from .. import algorithms

    choices = (*algorithms.CHOOSERS, *algorithms.available_algorithms())
    if not isinstance(algorithm, str):
        raise TypeError(f"{func}: algorithm must be a string, one of {choices}, got {algorithm!r}")
    if algorithm not in choices:
        raise ValueError(f"{func}: algorithm must be one of {choices}, got {algorithm!r}")
    return algorithm


def _has_pairs(padding) -> bool:
    return not isinstance(padding, int) and any(not isinstance(p, (int, np.integer)) for p in padding)


class _ConvBase(Module):
    """Validation, parameters, initialisation and repr shared by all convolution layers."""

    _rank: ClassVar[int]
    _transposed: ClassVar[bool]
    #: ``algorithm=`` of the convolution calls (``Module.set_algorithm``); a class default for layers pickled before it existed
    algorithm = "auto"

    def _setup(self, in_channels, out_channels, kernel_size, stride, dilation, groups, bias, dtype, rng,
               data_format="channels_first") -> None:
        name = type(self).__name__
        # the data's layout; the weight stays PyTorch's (C_out, C_in/groups, *K), so state_dicts match torch.nn's
        self.data_format = data_format
        self.channels_last = layout.layer_channels_last(data_format, name, self._rank)
        self.in_channels = _channels(in_channels, name, "in_channels")
        self.out_channels = _channels(out_channels, name, "out_channels")
        self.groups = _channels(groups, name, "groups")
        if self.in_channels % self.groups:
            raise ValueError(f"{name}: groups={self.groups} must divide in_channels={self.in_channels}")
        if self.out_channels % self.groups:
            raise ValueError(f"{name}: groups={self.groups} must divide out_channels={self.out_channels}")
        self.kernel_size = positive_ints(kernel_size, self._rank, name, "kernel_size")
        self.stride = positive_ints(stride, self._rank, name, "stride")
        self.dilation = positive_ints(dilation, self._rank, name, "dilation")
        if not isinstance(bias, bool):
            raise TypeError(f"{name}: bias must be True or False, got {bias!r}")
        dt = resolve_dtype(dtype, name)
        if self._transposed:  # (C_in, C_out/groups, *K)
            shape = (self.in_channels, self.out_channels // self.groups, *self.kernel_size)
        else:  # (C_out, C_in/groups, *K)
            shape = (self.out_channels, self.in_channels // self.groups, *self.kernel_size)
        self.weight = Parameter(np.zeros(shape, dtype=dt))
        self.bias = Parameter(np.zeros(self.out_channels, dtype=dt)) if bias else None
        self.reset_parameters(rng)

    def reset_parameters(self, rng=None) -> None:
        """PyTorch's default initialisation: weight and bias ``~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))``."""
        gen = resolve_rng(rng, f"{type(self).__name__}.reset_parameters")
        bound = default_bound(self.weight.shape)
        self.weight.value[...] = uniform(self.weight.shape, bound, gen, self.weight.dtype)
        if self.bias is not None:
            self.bias.value[...] = uniform(self.bias.shape, bound, gen, self.bias.dtype)

    def _needs(self, input_grad: bool) -> tuple[str, ...]:
        needs = []
        if input_grad:
            needs.append("input")
        if self.weight.requires_grad:
            needs.append("weight")
        if self.bias is not None and self.bias.requires_grad:
            needs.append("bias")
        return tuple(needs)

    #: Plans kept per layer (input shapes); the oldest is dropped beyond this.
    _MAX_PLANS: ClassVar[int] = 8

    def _plan(self, x, kwargs: dict):
        """The layer's plan for input ``x`` (one per input shape and arguments, made on first use), or
        ``None`` when the plain functions must run: ``x`` not a NumPy array of the parameters' dtype
        (promotion, dask arrays, lists) -- they also give the error messages for bad input.

        A plan keeps nothing derived from the weight's values, which change at every step.
        """
        if self.channels_last:  # plans are channels first: the caller's layout goes through the plain functions
            return None
        kwargs = {k: v for k, v in kwargs.items() if k != "data_format"}
        dtype = self.weight.value.dtype
        if type(x) is not np.ndarray or x.dtype != dtype or (self.bias is not None and self.bias.value.dtype != dtype):
            return None
        try:
            key = (x.shape, dtype, self.weight.value.shape, *kwargs.values())
            plans = self.__dict__.setdefault("_plans", {})
            found = plans.get(key)
        except TypeError:  # an unhashable argument set by hand after construction
            return None
        if found is None:
            try:
                found = planning.plan(x.shape, self.weight.value.shape, dtype=dtype, transposed=self._transposed,
                                      **kwargs)
            except (ValueError, TypeError):  # let the plain function report it, under the layer's name
                return None
            if len(plans) >= self._MAX_PLANS:
                del plans[next(iter(plans))]
            plans[key] = found
        return found

    def _plan_backward(self, plan, grad_output, x, input_grad: bool):
        """The gradients through the forward's plan, or ``None`` when the plain function must run
        (no plan, or ``grad_output`` not exactly of the plan's output shape and dtype)."""
        if plan is None or type(grad_output) is not np.ndarray or grad_output.shape != plan.output_shape \
                or grad_output.dtype != plan.dtype or self.weight.value.shape != plan.weight_shape \
                or self.weight.value.dtype != plan.dtype:
            return None
        needs = self._needs(input_grad)
        params = tuple(n for n in needs if n != "input")
        if "input" not in needs or not params:
            return plan.backward(grad_output, x, self.weight.value, needs=needs)
        # the weight gradient first: its scratch (the input's columns) then does not sit beside the input
        # gradient, which does not exist yet (ResNet-8's float32 step: peak live 46.7 -> 45.6 MiB, in the last
        # block's conv2, whose weight gradient takes 6.5 MiB of scratch and its input gradient 1.7)
        grads = plan.backward(grad_output, x, self.weight.value, needs=params)
        dx = plan.backward(grad_output, x, self.weight.value, needs=("input",)).input
        return api.Gradients(dx, grads.weight, grads.bias)

    def _accumulate(self, grads: api.Gradients) -> None:
        if grads.weight is not None:
            self.weight.accumulate(grads.weight)
        if grads.bias is not None:
            self.bias.accumulate(grads.bias)


class _ConvNd(_ConvBase):
    _transposed = False

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        *,
        dtype=None,
        rng=None,
        data_format: str = "channels_first",
        algorithm: str = "auto",
    ):
        super().__init__()
        name = type(self).__name__
        self.algorithm = _algorithm(algorithm, name)
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"{name}: padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
        self.padding = _padding(padding, self._rank, name)
        self.padding_mode = padding_mode
        self._setup(in_channels, out_channels, kernel_size, stride, dilation, groups, bias, dtype, rng, data_format)

    def _args(self):
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation, groups=self.groups,
                    padding_mode=self.padding_mode, data_format=self.data_format, algorithm=self.algorithm)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """``y[n, o, i] = b[o] + sum_{c, k} W[o, c, k] * x[n, g*C_g + c, i*S + k*D - P_lo]`` (see :func:`convgrad.conv`)."""
        bias = None if self.bias is None else self.bias.value
        plan = self._plan(x, self._args())
        if plan is not None:
            y = plan.forward(x, self.weight.value, bias)
        else:
            conv = (api.conv1d, api.conv2d, api.conv3d)[self._rank - 1]
            y = _as_layer(type(self).__name__, conv, x, self.weight.value, bias, **self._args())
        self._remember(x, plan)
        return y

    def backward(self, grad_output: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        """``dL/dx``, adding ``dL/dW`` and ``dL/db`` into the parameters' ``grad`` (see :func:`convgrad.conv_backward`)."""
        x, plan = self._recall()
        grads = self._plan_backward(plan, grad_output, x, input_grad)
        if grads is None:
            grads = _as_layer(f"{type(self).__name__}.backward", api.conv_backward, grad_output, x,
                              self.weight.value, **self._args(), needs=self._needs(input_grad))
        self._accumulate(grads)
        return grads.input

    def extra_repr(self) -> str:
        zeros = (0,) * self._rank
        return format_args(
            (self.in_channels, self.out_channels),
            [("kernel_size", self.kernel_size, None), ("stride", self.stride, 1), ("padding", self.padding, zeros),
             ("dilation", self.dilation, 1), ("groups", self.groups, 1), ("bias", self.bias is not None, True),
             ("padding_mode", self.padding_mode, "zeros"), ("dtype", self.weight.dtype, np.dtype(np.float32)),
             ("data_format", self.data_format, "channels_first"), ("algorithm", self.algorithm, "auto")],
        )


class Conv1d(_ConvNd):
    """1-D convolution layer, ``torch.nn.Conv1d``: input ``(N, C_in, L)``, weight ``(C_out, C_in/groups, K)``.

    Output length ``L_out = floor((L + 2P - D*(K-1) - 1)/S) + 1``. ``padding`` may also be
    ``"same"`` (at any stride), ``"valid"`` or ``(low, high)`` pairs, as in :func:`convgrad.conv`.
    """

    _rank = 1


class Conv2d(_ConvNd):
    """2-D convolution layer, ``torch.nn.Conv2d``: input ``(N, C_in, H, W)``, weight ``(C_out, C_in/groups, kH, kW)``.

    Per spatial dim ``H_out = floor((H + 2P - D*(K-1) - 1)/S) + 1``. ``padding`` may also be
    ``"same"`` (at any stride), ``"valid"`` or ``(low, high)`` pairs, as in :func:`convgrad.conv`.
    """

    _rank = 2


class Conv3d(_ConvNd):
    """3-D convolution layer, ``torch.nn.Conv3d``: input ``(N, C_in, D, H, W)``, weight ``(C_out, C_in/groups, kD, kH, kW)``."""

    _rank = 3


class _ConvTransposeNd(_ConvBase):
    _transposed = True

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        output_padding=0,
        groups: int = 1,
        bias: bool = True,
        dilation=1,
        padding_mode: str = "zeros",
        *,
        dtype=None,
        rng=None,
        data_format: str = "channels_first",
        algorithm: str = "auto",
    ):
        super().__init__()
        name = type(self).__name__
        self.algorithm = _algorithm(algorithm, name)
        if padding_mode != "zeros":
            raise ValueError(f"{name}: only padding_mode='zeros' is supported for a transposed convolution, got {padding_mode!r}")
        if isinstance(padding, str):
            raise ValueError(f"{name}: padding must be an int or a tuple for a transposed convolution, got {padding!r}")
        self.padding = _padding(padding, self._rank, name)
        self.padding_mode = padding_mode
        self._setup(in_channels, out_channels, kernel_size, stride, dilation, groups, bias, dtype, rng, data_format)
        op = tuple(expand(output_padding, self._rank, name, "output_padding"))
        for a, s, d in zip(op, self.stride, self.dilation):
            if isinstance(a, bool) or not isinstance(a, (int, np.integer)):
                raise TypeError(f"{name}: output_padding must be an int or a tuple of ints, got {output_padding!r}")
            if a < 0 or a >= max(s, d):
                raise ValueError(
                    f"{name}: output_padding must be non-negative and smaller than stride or dilation, "
                    f"got output_padding={output_padding!r} with stride={self.stride}, dilation={self.dilation}"
                )
        self.output_padding = tuple(int(a) for a in op)

    def _output_padding(self, x: np.ndarray, output_size) -> tuple[int, ...]:
        """The ``output_padding`` that gives ``output_size`` (PyTorch's rule), or the layer's own."""
        if output_size is None:
            return self.output_padding
        name = type(self).__name__
        size = tuple(output_size)
        if len(size) == self._rank + 2 or (len(size) == self._rank + 1 and x.ndim == self._rank + 1):
            size = size[-self._rank - 1:-1] if self.channels_last else size[-self._rank:]
        if len(size) != self._rank:
            raise ValueError(f"{name}: output_size must have {self._rank} spatial entries, got {output_size!r}")
        pads = self.padding if not isinstance(self.padding[0], int) else tuple((p, p) for p in self.padding)
        out = []
        for dim, (want, h, k, s, d, (lo, hi)) in enumerate(
            zip(size, x.shape[-self._rank - 1:-1] if self.channels_last else x.shape[-self._rank:], self.kernel_size,
                self.stride, self.dilation, pads)
        ):
            smallest = (h - 1) * s - lo - hi + d * (k - 1) + 1
            if not smallest <= want <= smallest + s - 1:
                raise ValueError(
                    f"{name}: output_size {tuple(size)} is not reachable: spatial dim {dim} can be from "
                    f"{smallest} to {smallest + s - 1}, got {want}"
                )
            out.append(want - smallest)
        return tuple(out)

    def _args(self, output_padding):
        return dict(stride=self.stride, padding=self.padding, output_padding=output_padding, groups=self.groups,
                    dilation=self.dilation, data_format=self.data_format, algorithm=self.algorithm)

    def forward(self, x: np.ndarray, output_size=None) -> np.ndarray:
        """Transposed convolution of ``x`` (see :func:`convgrad.conv_transpose`).

        ``output_size`` (spatial sizes, optionally with batch and channels) picks the
        ``output_padding`` that reaches it, as in PyTorch.
        """
        bias = None if self.bias is None else self.bias.value
        name = type(self).__name__
        x_arr = np.asarray(x)
        op = self._output_padding(x_arr, output_size)
        plan = self._plan(x, self._args(op))
        if plan is not None:
            y = plan.forward(x, self.weight.value, bias)
        else:
            conv_transpose = (api.conv_transpose1d, api.conv_transpose2d, api.conv_transpose3d)[self._rank - 1]
            y = _as_layer(name, conv_transpose, x, self.weight.value, bias, **self._args(op))
        self._remember(x, op, plan)
        return y

    def __call__(self, x: np.ndarray, output_size=None) -> np.ndarray:
        return self.forward(x, output_size)

    def backward(self, grad_output: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        """``dL/dx`` (an ordinary convolution of ``dy`` with ``W``), adding ``dL/dW`` and ``dL/db`` into ``grad``."""
        x, op, plan = self._recall()
        grads = self._plan_backward(plan, grad_output, x, input_grad)
        if grads is None:
            grads = _as_layer(f"{type(self).__name__}.backward", api.conv_transpose_backward, grad_output, x,
                              self.weight.value, **self._args(op), needs=self._needs(input_grad))
        self._accumulate(grads)
        return grads.input

    def extra_repr(self) -> str:
        zeros = (0,) * self._rank
        return format_args(
            (self.in_channels, self.out_channels),
            [("kernel_size", self.kernel_size, None), ("stride", self.stride, 1), ("padding", self.padding, zeros),
             ("output_padding", self.output_padding, 0), ("groups", self.groups, 1),
             ("bias", self.bias is not None, True), ("dilation", self.dilation, 1),
             ("dtype", self.weight.dtype, np.dtype(np.float32)), ("data_format", self.data_format, "channels_first"),
             ("algorithm", self.algorithm, "auto")],
        )


class ConvTranspose1d(_ConvTransposeNd):
    """1-D transposed convolution layer, ``torch.nn.ConvTranspose1d``: weight ``(C_in, C_out/groups, K)``.

    ``L_out = (L - 1)*S - 2P + D*(K-1) + output_padding + 1``.
    """

    _rank = 1


class ConvTranspose2d(_ConvTransposeNd):
    """2-D transposed convolution layer, ``torch.nn.ConvTranspose2d``: weight ``(C_in, C_out/groups, kH, kW)``.

    Per spatial dim ``H_out = (H - 1)*S - 2P + D*(K-1) + output_padding + 1``.
    """

    _rank = 2


class ConvTranspose3d(_ConvTransposeNd):
    """3-D transposed convolution layer, ``torch.nn.ConvTranspose3d``: weight ``(C_in, C_out/groups, kD, kH, kW)``."""

    _rank = 3

