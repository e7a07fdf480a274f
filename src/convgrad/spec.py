"""The normalized description of one convolution: parsing, validation, sizes, index relation.

Every public function turns its user-facing arguments into a :class:`ConvSpec` once, at the
API boundary; algorithms, the explainer and the layers only ever read a ``ConvSpec``.

A transposed convolution is described by the ordinary convolution whose input-gradient it is
(see :func:`conv_transpose_spec`), so one spec and three operations -- forward, grad_input,
grad_weight -- cover both.

Notation (per spatial dimension, 0-based)::

    H      input length               K      kernel length
    S      stride                     D      dilation
    P_lo   padding before the input   P_hi   padding after the input
    K_eff = D*(K - 1) + 1             effective (dilated) kernel length
    H_out = floor((H + P_lo + P_hi - K_eff) / S) + 1

    output position i, kernel tap k  read  input position  i*S + k*D - P_lo     (the index relation)
"""

from __future__ import annotations

import numbers
import operator
from dataclasses import dataclass
from functools import cached_property
from typing import Iterable, Sequence

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
PADDING_STRINGS = ("valid", "same", "causal")

__all__ = [
    "PADDING_MODES",
    "ConvSpec",
    "conv_spec",
    "conv_transpose_spec",
    "source_index",
]


@dataclass(frozen=True)
class ConvSpec:
    """A fully normalized N-d convolution (cross-correlation, as in deep learning).

    All per-dimension fields are tuples of length ``ndim`` (the number of spatial dims).

    Attributes
    ----------
    batch, in_channels, out_channels, groups : int
    input_size, kernel_size, stride, dilation : tuple of int
    padding : tuple of (int, int)
        ``(P_lo, P_hi)`` per spatial dim, as requested (``"same"`` already resolved).
    output_size : tuple of int
        ``H_out`` per dim. For an ordinary convolution it is
        ``floor((H + P_lo + P_hi - K_eff) / S) + 1``; the spec of a transposed convolution
        may carry a larger one (``output_padding >= stride``), see :func:`conv_transpose_spec`.
    padding_mode : str
        ``"zeros"``, ``"reflect"``, ``"replicate"`` or ``"circular"``: what the padded
        positions hold.

    Notes
    -----
    The forward pass, with ``g(o) = o // (out_channels/groups)``, ``C_g = in_channels/groups``
    and ``x`` extended by ``padding_mode`` outside ``[0, H)``::

        y[n, o, i] = b[o] + sum_{c < C_g} sum_k w[o, c, k] * x[n, g(o)*C_g + c, i*S + k*D - P_lo]
    """

    batch: int
    in_channels: int
    out_channels: int
    groups: int
    input_size: tuple[int, ...]
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]
    output_size: tuple[int, ...]
    padding_mode: str = "zeros"

    # -- sizes (computed on first use and kept: the algorithms read them on every call) -----------
    @cached_property
    def ndim(self) -> int:
        """Number of spatial dimensions."""
        return len(self.kernel_size)

    @cached_property
    def in_per_group(self) -> int:
        return self.in_channels // self.groups

    @cached_property
    def out_per_group(self) -> int:
        return self.out_channels // self.groups

    @cached_property
    def effective_kernel(self) -> tuple[int, ...]:
        """``K_eff = D*(K-1) + 1`` per dim."""
        return tuple(d * (k - 1) + 1 for k, d in zip(self.kernel_size, self.dilation))

    @cached_property
    def input_shape(self) -> tuple[int, ...]:
        return (self.batch, self.in_channels, *self.input_size)

    @cached_property
    def weight_shape(self) -> tuple[int, ...]:
        return (self.out_channels, self.in_per_group, *self.kernel_size)

    @cached_property
    def output_shape(self) -> tuple[int, ...]:
        return (self.batch, self.out_channels, *self.output_size)

    @cached_property
    def pad_lo(self) -> tuple[int, ...]:
        return tuple(lo for lo, _ in self.padding)

    @cached_property
    def read_span(self) -> tuple[int, ...]:
        """Padded positions ``[0, (H_out-1)*S + K_eff)`` that some output reads, per dim."""
        return tuple((o - 1) * s + ke for o, s, ke in zip(self.output_size, self.stride, self.effective_kernel))

    @cached_property
    def used_pad_hi(self) -> tuple[int, ...]:
        """The high padding actually read: ``(H_out-1)*S + K_eff - P_lo - H``.

        Smaller than ``P_hi`` when the stride leaves a tail unread; negative when that tail
        reaches into the real input (those ``-used_pad_hi`` last inputs are never read and get an
        exactly zero gradient).
        """
        return tuple(span - lo - h for span, lo, h in zip(self.read_span, self.pad_lo, self.input_size))

    @cached_property
    def unread_tail(self) -> tuple[int, ...]:
        """Trailing padded positions never read: ``a = (H + P_lo + P_hi - K_eff) mod S``.

        For the spec of a transposed convolution this is its ``output_padding``.
        """
        return tuple(lo + h + hi - span for (lo, hi), h, span in zip(self.padding, self.input_size, self.read_span))

    @cached_property
    def unread_inputs(self) -> tuple[int, ...]:
        """How many real input positions at the end of each dim are never read: ``max(0, a - P_hi)``."""
        return tuple(max(0, -u) for u in self.used_pad_hi)

    # -- the index relation ----------------------------------------------------------------------
    def input_position(self, out_index: Sequence[int], tap: Sequence[int]) -> tuple[int, ...]:
        """Padded-free input coordinate read by output ``out_index`` at kernel tap ``tap``.

        ``h = i*S + k*D - P_lo`` per dim; it may lie outside ``[0, H)`` (a padded position).
        """
        return tuple(
            i * s + k * d - lo for i, k, s, d, lo in zip(out_index, tap, self.stride, self.dilation, self.pad_lo)
        )

    def group_of_output(self, o: int) -> int:
        return o // self.out_per_group

    def group_of_input(self, c: int) -> int:
        return c // self.in_per_group


def _replace(spec: ConvSpec, **changes) -> ConvSpec:
    import dataclasses

    return dataclasses.replace(spec, **changes)


def source_index(p: int, size: int, mode: str) -> int | None:
    """The real input position that padded position ``p`` holds a copy of, or ``None`` for zero.

    ``p`` is an input coordinate in ``[-P_lo, H + P_hi)``; positions inside ``[0, H)`` are
    themselves. ``reflect`` mirrors without repeating the edge (``-1 -> 1``), ``replicate``
    repeats the edge, ``circular`` wraps around.
    """
    if 0 <= p < size:
        return p
    if mode == "zeros":
        return None
    if mode == "replicate":
        return 0 if p < 0 else size - 1
    if mode == "circular":
        return p % size
    if mode == "reflect":
        return -p if p < 0 else 2 * (size - 1) - p
    raise ValueError(f"unknown padding_mode {mode!r}")


# ------------------------------------------------------------------------------------------------
# argument parsing
# ------------------------------------------------------------------------------------------------


def _is_int(v) -> bool:
    if type(v) is int:  # the common case, without the slow ABC check
        return True
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _as_int(v, func: str, name: str) -> int:
    if not _is_int(v):
        raise TypeError(f"{func}: {name} must be an integer, got {v!r} of type {type(v).__name__}")
    return operator.index(v)


def expand(value, ndim: int, func: str, name: str) -> tuple:
    """An int, or a sequence of length ``ndim``, as a tuple of length ``ndim`` (no value checks)."""
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{func}: {name} must be an integer or a tuple of {ndim} integers, got {value!r}")
    if _is_int(value):
        return (operator.index(value),) * ndim
    if isinstance(value, Iterable):
        items = tuple(value)
        if len(items) != ndim:
            raise ValueError(
                f"{func}: {name} must be an integer or a tuple of {ndim} values (one per spatial dim), "
                f"got {len(items)} values: {value!r}"
            )
        return items
    raise TypeError(
        f"{func}: {name} must be an integer or a tuple of {ndim} integers, got {value!r} of type {type(value).__name__}"
    )


def positive_int(value, func: str, name: str) -> int:
    """One positive integer (a bool is refused), e.g. a channel or group count."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{func}: {name} must be a positive integer, got {value!r}")
    if value < 1:
        raise ValueError(f"{func}: {name} must be a positive integer, got {value}")
    return int(value)


def positive_ints(value, ndim: int, func: str, name: str) -> tuple[int, ...]:
    items = expand(value, ndim, func, name)
    out = []
    for v in items:
        v = _as_int(v, func, name)
        if v < 1:
            raise ValueError(f"{func}: {name} must be positive, got {value!r}")
        out.append(v)
    return tuple(out)


def _nonneg_pair(v, func: str, name: str, allow_negative: bool = False) -> tuple[int, int]:
    if _is_int(v):
        v = operator.index(v)
        lo = hi = v
    elif isinstance(v, Iterable) and not isinstance(v, (str, bytes)):
        pair = tuple(v)
        if len(pair) != 2:
            raise ValueError(f"{func}: each entry of {name} must be an integer or a (low, high) pair, got {v!r}")
        lo, hi = (_as_int(p, func, name) for p in pair)
    else:
        raise TypeError(
            f"{func}: each entry of {name} must be an integer or a (low, high) pair of integers, "
            f"got {v!r} of type {type(v).__name__}"
        )
    if (lo < 0 or hi < 0) and not allow_negative:
        raise ValueError(f"{func}: {name} must be non-negative, got {v!r}")
    return lo, hi


def resolve_padding(padding, input_size, kernel_size, stride, dilation, func: str,
                    allow_negative: bool = False) -> tuple[tuple[int, int], ...]:
    """Padding as ``(P_lo, P_hi)`` per dim.

    ``allow_negative``: entries may be negative (a crop, :mod:`convgrad.general`); a
    :class:`ConvSpec` itself always has non-negative padding.

    Accepts an int, a tuple with one int or ``(low, high)`` pair per dim, ``"valid"`` (no padding),
    ``"same"`` or ``"causal"``. ``"same"`` follows TensorFlow/JAX: ``H_out = ceil(H/S)``,
    ``total = max((H_out-1)*S + K_eff - H, 0)``, ``P_lo = total // 2`` and the odd pixel at the end.
    At stride 1 this is exactly PyTorch's ``"same"`` (``total = D*(K-1)``). ``"causal"`` is Keras'
    rule applied to every dim: ``(P_lo, P_hi) = (K_eff - 1, 0)`` whatever the stride, so output ``i``
    reads no input after ``i*S`` and ``H_out = ceil(H/S)``.
    """
    ndim = len(kernel_size)
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * ndim
        if padding == "same":
            pads = []
            for h, k, s, d in zip(input_size, kernel_size, stride, dilation):
                keff = d * (k - 1) + 1
                out = -(-h // s)
                total = max((out - 1) * s + keff - h, 0)
                pads.append((total // 2, total - total // 2))
            return tuple(pads)
        if padding == "causal":
            return tuple((d * (k - 1), 0) for k, d in zip(kernel_size, dilation))
        raise ValueError(
            f"{func}: padding must be an integer, a tuple, 'valid', 'same' or 'causal', got the string {padding!r}"
        )
    if _is_int(padding):
        p = _nonneg_pair(padding, func, "padding", allow_negative)
        return (p,) * ndim
    if isinstance(padding, Iterable) and not isinstance(padding, bytes):
        items = tuple(padding)
        if len(items) != ndim:
            raise ValueError(
                f"{func}: padding must have one entry (an integer or a (low, high) pair) per spatial dim, "
                f"{ndim} in all, got {len(items)}: {padding!r}"
            )
        return tuple(_nonneg_pair(v, func, "padding", allow_negative) for v in items)
    raise TypeError(
        f"{func}: padding must be an integer, a tuple, 'valid', 'same' or 'causal', got {padding!r} of type {type(padding).__name__}"
    )


def _check_shapes(input_shape, weight_shape, func: str, weight_name: str = "weight"):
    input_shape = tuple(input_shape)
    weight_shape = tuple(weight_shape)
    if len(weight_shape) < 3:
        raise ValueError(
            f"{func}: {weight_name} must have at least 3 dims (out_channels, in_channels/groups, *kernel), "
            f"got shape {weight_shape}"
        )
    ndim = len(weight_shape) - 2
    if len(input_shape) != ndim + 2:
        raise ValueError(
            f"{func}: input must have {ndim + 2} dims (batch, channels, {ndim} spatial) to match a "
            f"{len(weight_shape)}-d {weight_name}, got shape {input_shape}"
        )
    for name, shape in (("input", input_shape), (weight_name, weight_shape)):
        for v in shape:
            if not _is_int(v) or v < 0:
                raise ValueError(f"{func}: {name} shape must hold non-negative integers, got {shape}")
    if any(k == 0 for k in weight_shape[2:]):
        raise ValueError(f"{func}: {weight_name} has a zero-size kernel dim: shape {weight_shape}")
    if any(h == 0 for h in input_shape[2:]):
        raise ValueError(f"{func}: input has a zero-size spatial dim: shape {input_shape}")
    if input_shape[1] == 0:
        raise ValueError(f"{func}: input has 0 channels: shape {input_shape}")
    if weight_shape[0] == 0 or weight_shape[1] == 0:
        raise ValueError(f"{func}: {weight_name} has a zero-size channel dim: shape {weight_shape}")
    return input_shape, weight_shape, ndim


def _check_groups(groups, func: str) -> int:
    groups = _as_int(groups, func, "groups")
    if groups < 1:
        raise ValueError(f"{func}: groups must be a positive integer, got {groups}")
    return groups


def conv_spec(
    input_shape,
    weight_shape,
    stride=1,
    padding=0,
    dilation=1,
    groups=1,
    padding_mode="zeros",
    *,
    func: str = "conv",
) -> ConvSpec:
    """Validate the arguments of a convolution and return its :class:`ConvSpec`.

    ``input_shape`` is batched: ``(N, C_in, *spatial)``; ``weight_shape`` is
    ``(C_out, C_in/groups, *kernel)``. Raises ``ValueError``/``TypeError`` naming the argument.
    """
    input_shape, weight_shape, ndim = _check_shapes(input_shape, weight_shape, func)
    groups = _check_groups(groups, func)
    n, c_in = input_shape[:2]
    c_out, c_in_g = weight_shape[:2]
    if c_in % groups:
        raise ValueError(f"{func}: groups={groups} must divide the input channels, but input has {c_in} channels")
    if c_out % groups:
        raise ValueError(f"{func}: groups={groups} must divide the output channels (weight.shape[0]={c_out})")
    if c_in_g * groups != c_in:
        raise ValueError(
            f"{func}: weight.shape[1] must be input channels / groups = {c_in}/{groups} = {c_in // groups}, "
            f"got weight of shape {weight_shape} for input of shape {input_shape}"
        )
    stride = positive_ints(stride, ndim, func, "stride")
    dilation = positive_ints(dilation, ndim, func, "dilation")
    if not isinstance(padding_mode, str):
        raise TypeError(f"{func}: padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"{func}: padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
    size = input_shape[2:]
    kernel = weight_shape[2:]
    pads = resolve_padding(padding, size, kernel, stride, dilation, func)
    out = []
    for dim, (h, k, s, d, (lo, hi)) in enumerate(zip(size, kernel, stride, dilation, pads)):
        keff = d * (k - 1) + 1
        if h + lo + hi < keff:
            raise ValueError(
                f"{func}: the kernel is larger than the padded input in spatial dim {dim}: effective "
                f"kernel size D*(K-1)+1 = {d}*({k}-1)+1 = {keff} > padded input size H+P_lo+P_hi = "
                f"{h}+{lo}+{hi} = {h + lo + hi}"
            )
        if padding_mode == "reflect" and (lo >= h or hi >= h):
            raise ValueError(
                f"{func}: padding_mode='reflect' needs padding smaller than the input size, but spatial dim "
                f"{dim} has size {h} and padding ({lo}, {hi})"
            )
        if padding_mode == "circular" and (lo > h or hi > h):
            raise ValueError(
                f"{func}: padding_mode='circular' cannot wrap around more than once: padding ({lo}, {hi}) "
                f"exceeds the input size {h} in spatial dim {dim}"
            )
        out.append((h + lo + hi - keff) // s + 1)
    return ConvSpec(
        batch=n,
        in_channels=c_in,
        out_channels=c_out,
        groups=groups,
        input_size=size,
        kernel_size=kernel,
        stride=stride,
        dilation=dilation,
        padding=pads,
        output_size=tuple(out),
        padding_mode=padding_mode,
    )


def conv_transpose_output_size(in_size, kernel, stride, padding, output_padding, dilation) -> tuple[int, ...]:
    """``H_out = (H_in - 1)*S - P_lo - P_hi + D*(K-1) + output_padding + 1`` per dim."""
    return tuple(
        (h - 1) * s - lo - hi + d * (k - 1) + op + 1
        for h, k, s, (lo, hi), op, d in zip(in_size, kernel, stride, padding, output_padding, dilation)
    )


def conv_transpose_spec(
    input_shape,
    weight_shape,
    stride=1,
    padding=0,
    output_padding=0,
    groups=1,
    dilation=1,
    *,
    func: str = "conv_transpose",
) -> ConvSpec:
    """The spec of the convolution whose input-gradient is this transposed convolution.

    A transposed convolution with input ``(N, C_in, *H_in)`` and weight ``(C_in, C_out/G, *K)``
    (PyTorch's layout) is ``grad_input`` of the convolution ``c`` with input
    ``(N, C_out, *H_out)``, weight ``(C_in, C_out/G, *K)`` and output ``(N, C_in, *H_in)``. The returned
    spec describes ``c``: ``spec.output_shape == input_shape`` and ``spec.input_shape`` is the
    transposed convolution's output shape. Its ``unread_tail`` equals ``output_padding``.

    Padding is an int, one int per dim, or (beyond PyTorch) one ``(low, high)`` pair per dim.
    """
    input_shape, weight_shape, ndim = _check_shapes(input_shape, weight_shape, func)
    groups = _check_groups(groups, func)
    n, c_in = input_shape[:2]
    w_in, c_out_g = weight_shape[:2]
    if c_in % groups:
        raise ValueError(f"{func}: groups={groups} must divide the input channels, but input has {c_in} channels")
    if w_in != c_in:
        raise ValueError(
            f"{func}: weight.shape[0] must equal the input channels ({c_in}) -- the transposed convolution's "
            f"weight layout is (in_channels, out_channels/groups, *kernel) -- got weight of shape {weight_shape}"
        )
    stride = positive_ints(stride, ndim, func, "stride")
    dilation = positive_ints(dilation, ndim, func, "dilation")
    if isinstance(padding, str):
        if padding == "valid":
            padding = 0
        elif padding == "causal":
            raise ValueError(
                f"{func}: padding='causal' is for a convolution only (as in Keras); the transpose of a causal "
                f"convolution is this one with padding=((K_eff-1, 0), ...) as (low, high) pairs, K_eff = D*(K-1)+1"
            )
        else:
            raise ValueError(
                f"{func}: padding must be an integer or a tuple (or 'valid'); 'same' has no single meaning for a "
                f"transposed convolution, got {padding!r}"
            )
    kernel = weight_shape[2:]
    pads = resolve_padding(padding, input_shape[2:], kernel, stride, dilation, func)
    op = expand(output_padding, ndim, func, "output_padding")
    op = tuple(_as_int(v, func, "output_padding") for v in op)
    for dim, (a, s, d) in enumerate(zip(op, stride, dilation)):
        if a < 0 or a >= max(s, d):
            raise ValueError(
                f"{func}: output_padding must be non-negative and smaller than either stride or dilation, "
                f"but spatial dim {dim} has output_padding={a}, stride={s}, dilation={d}"
            )
    out_size = conv_transpose_output_size(input_shape[2:], kernel, stride, pads, op, dilation)
    for dim, h in enumerate(out_size):
        if h < 1:
            raise ValueError(
                f"{func}: the output would be empty in spatial dim {dim}: (H_in-1)*S - P_lo - P_hi + D*(K-1) + "
                f"output_padding + 1 = {h}; reduce the padding"
            )
    return ConvSpec(
        batch=n,
        in_channels=c_out_g * groups,
        out_channels=c_in,
        groups=groups,
        input_size=out_size,
        kernel_size=kernel,
        stride=stride,
        dilation=dilation,
        padding=pads,
        output_size=input_shape[2:],
        padding_mode="zeros",
    )
