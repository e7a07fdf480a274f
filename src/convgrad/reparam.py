"""The backward re-parameterization, written once: each gradient of a convolution *is* a convolution.

For a convolution :class:`~convgrad.spec.ConvSpec` (zero padding; stride ``S``, dilation ``D``,
padding ``(P_lo, P_hi)``, kernel ``K``, ``K_eff = D*(K-1) + 1``, per spatial dim):

- the **input gradient** ``dX`` is the forward convolution of ``dY`` -- with its samples spread
  ``S`` apart (input dilation ``S``) -- by the spatially flipped kernel with input and output
  channels exchanged within each group, at dilation ``D``, stride 1, padded by
  ``K_eff - 1 - P_lo`` before and up to the input size after (:func:`grad_input_as_forward`);
- the **weight gradient** ``dW`` is the forward convolution of ``X`` with batch and channel
  axes exchanged by ``dY`` (likewise exchanged) used as the kernel: stride and dilation swap
  roles (window stride ``D``, kernel dilation ``S``), padding ``(P_lo, P_hi - a)`` where ``a`` is
  the unread tail, and the groups become *batch* groups (:func:`grad_weight_as_forward`).

These are JAX's ``_conv_general_dilated_transpose_lhs`` and ``_conv_general_dilated_transpose_rhs``
(see ``/work/shared/REFERENCE.md``, d2). A :class:`ForwardForm` describes such a forward
convolution in the terms of ``lax.conv_general_dilated``; its padding may be negative (a crop)
and its input dilation above 1, which a :class:`~convgrad.spec.ConvSpec` cannot express, so it
is its own record. :mod:`convgrad.algorithms.winograd` computes ``dX`` as this forward, the
cost model counts its work from it, and :mod:`convgrad.explain.equivalents` prints it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .spec import ConvSpec

__all__ = ["ForwardForm", "grad_input_as_forward", "grad_weight_as_forward", "grad_input_kernel", "zero_unread"]


@dataclass(frozen=True)
class ForwardForm:
    """A forward convolution in ``lax.conv_general_dilated`` terms (per-dim fields are tuples).

    ``input_size`` is the operand before input dilation; the output has ``output_size``:
    ``((input_size - 1) * input_dilation + 1 + pad_lo + pad_hi - K_eff) // stride + 1`` per dim,
    with ``K_eff = dilation * (kernel_size - 1) + 1``. ``groups`` are feature groups
    (``grouping="feature"``: each output channel reads its group's input channels) or batch
    groups (``grouping="batch"``: each group of output channels reads its own share of the
    operand's *batch*, as the weight gradient does). ``flip_kernel``: the kernel is used
    spatially reversed.
    """

    batch: int  # elements of the operand
    in_channels: int  # channels of the operand
    out_channels: int  # kernels
    groups: int  # feature or batch groups, as ``grouping`` says
    grouping: str  # "feature" or "batch"
    input_size: tuple[int, ...]  # the operand's spatial size, before input dilation
    kernel_size: tuple[int, ...]  # the kernel's spatial size
    output_size: tuple[int, ...]  # the result's spatial size
    stride: tuple[int, ...]  # window strides
    dilation: tuple[int, ...]  # kernel dilation (rhs_dilation)
    input_dilation: tuple[int, ...]  # lhs_dilation: samples spread this far apart
    pad_lo: tuple[int, ...]  # before the (dilated) operand; negative: a crop
    pad_hi: tuple[int, ...]  # after it; negative: a crop
    flip_kernel: bool  # the kernel used spatially reversed

    @property
    def in_per_group(self) -> int:
        """Channels of the operand each output channel reads (all of them with batch groups)."""
        return self.in_channels // self.groups if self.grouping == "feature" else self.in_channels

    @property
    def out_per_group(self) -> int:
        return self.out_channels // self.groups


def _dilated(size: int, step: int) -> int:
    """Length of ``size`` samples spread ``step`` apart: ``(size - 1) * step + 1``."""
    return (size - 1) * step + 1


def grad_input_as_forward(spec: ConvSpec) -> ForwardForm:
    """The input gradient of ``spec`` as a forward convolution of ``dY`` (JAX's transpose_lhs).

    ``dX = conv(dY input-dilated by S, grad_input_kernel(w), padding (K_eff-1-P_lo, hi), dilation D)``
    with ``hi = H + K_eff - 1 - ((H_out-1)*S + 1) - lo``, i.e. ``D*(K-1) - P_hi + a``.

    Examples
    --------
    >>> from convgrad.spec import conv_spec
    >>> form = grad_input_as_forward(conv_spec((1, 2, 10), (4, 1, 3), stride=3, padding=1, dilation=2, groups=2))
    >>> form.input_dilation, form.dilation, form.pad_lo, form.pad_hi, form.output_size
    ((3,), (2,), (3,), (4,), (10,))
    """
    k_eff = spec.effective_kernel
    lo = tuple(ke - 1 - p for ke, p in zip(k_eff, spec.pad_lo))
    hi = tuple(h + ke - 1 - _dilated(o, s) - l
               for h, ke, o, s, l in zip(spec.input_size, k_eff, spec.output_size, spec.stride, lo))
    return ForwardForm(
        batch=spec.batch, in_channels=spec.out_channels, out_channels=spec.in_channels, groups=spec.groups,
        grouping="feature", input_size=spec.output_size, kernel_size=spec.kernel_size, output_size=spec.input_size,
        stride=(1,) * spec.ndim, dilation=spec.dilation, input_dilation=spec.stride, pad_lo=lo, pad_hi=hi,
        flip_kernel=True,
    )


def grad_weight_as_forward(spec: ConvSpec) -> ForwardForm:
    """The weight gradient of ``spec`` as a forward convolution of ``X`` by ``dY`` (JAX's transpose_rhs).

    The operand is ``X`` with batch and channels exchanged (``C_in`` "batch" elements of ``N``
    channels), the kernel ``dY`` likewise (``C_out`` kernels of ``N`` channels); window stride
    ``D``, kernel dilation ``S``, padding ``(P_lo, P_hi - a)``; batch groups ``G``. The result,
    ``(C_in, C_out, *K)`` with each output channel's own group's rows, is ``dW`` exchanged.

    Examples
    --------
    >>> from convgrad.spec import conv_spec
    >>> form = grad_weight_as_forward(conv_spec((1, 2, 10), (4, 1, 3), stride=3, padding=1, dilation=2, groups=2))
    >>> form.stride, form.dilation, form.pad_lo, form.pad_hi, form.output_size, form.grouping
    ((2,), (3,), (1,), (0,), (3,), 'batch')
    """
    hi = tuple(_dilated(k, d) - 1 + _dilated(o, s) - h - lo
               for k, d, o, s, h, lo in zip(spec.kernel_size, spec.dilation, spec.output_size, spec.stride,
                                            spec.input_size, spec.pad_lo))
    return ForwardForm(
        batch=spec.in_channels, in_channels=spec.batch, out_channels=spec.out_channels, groups=spec.groups,
        grouping="batch", input_size=spec.input_size, kernel_size=spec.output_size, output_size=spec.kernel_size,
        stride=spec.dilation, dilation=spec.stride, input_dilation=(1,) * spec.ndim, pad_lo=spec.pad_lo, pad_hi=hi,
        flip_kernel=False,
    )


def grad_input_kernel(w: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """The kernel of :func:`grad_input_as_forward`: ``w`` flipped, input/output channels exchanged per group.

    ``(C_out, C_in/G, *K)`` -> ``(C_in, C_out/G, *K)``, a fresh contiguous array.
    """
    nd, G = spec.ndim, spec.groups
    wf = np.flip(w, axis=tuple(range(2, 2 + nd)))
    wf = wf.reshape((G, spec.out_per_group, spec.in_per_group) + spec.kernel_size).swapaxes(1, 2)  # (G, C_g, O_g, *K)
    return np.ascontiguousarray(wf).reshape((spec.in_channels, spec.out_per_group) + spec.kernel_size)


def zero_unread(dx: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """``dx`` with the input positions no output reads (``spec.unread_inputs``, the tail of each dim) set to 0.

    For an input gradient computed as :func:`grad_input_as_forward` by an algorithm that mixes
    positions (Winograd tiles): there the unread tail holds a rounding residue, not the exact 0.
    """
    for j, unread in enumerate(spec.unread_inputs):
        if unread:
            dx[(slice(None), slice(None)) + (slice(None),) * j + (slice(-unread, None),)] = 0
    return dx
