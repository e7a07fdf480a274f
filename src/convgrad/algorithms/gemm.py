"""``gemm``: im2col through strided windows, one batched matrix product per operation.

The padded input is viewed (no copy) as its sliding windows, ``x_win[n, c, i, k] =
x_pad[n, c, i*S + k*D]``, which turns each operation into a matrix product over the group's
channels and taps (``K`` below is the product of the kernel sizes, ``P`` of the output sizes)::

    forward      y [g]   = w[g]    @ cols[g]          (O_g, C_g*K) @ (C_g*K, N*P)
    grad_weight  dw[g]   = dy[g]   @ cols[g].T        (O_g, N*P)   @ (N*P, C_g*K)
    grad_input   dcol[g] = w[g].T  @ dy[g]            (C_g*K, O_g) @ (O_g, N*P)

and ``dx`` is ``dcol`` added back tap by tap into strided slices of the padded input (col2im
as a loop over the few kernel taps, never over pixels, and no ``np.add.at`` scatter). Positions
that no window reads -- the unread tail, and the holes when the stride exceeds the effective
kernel -- are never written, so their gradient is exactly zero.

Cost: the ``cols`` copy holds ``K`` times the input (9x for 3x3).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..spec import ConvSpec
from .base import Algorithm


def padded_input(x: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """``x`` zero-padded to exactly the span the windows read: shape ``(N, C, *read_span)``.

    Padded position ``j`` holds input position ``j - P_lo``. A view when no padding is needed.
    """
    span = spec.read_span
    if all(lo == 0 for lo in spec.pad_lo) and all(s <= h for s, h in zip(span, spec.input_size)):
        return x[(Ellipsis, *(slice(0, s) for s in span))]
    xp = np.zeros(x.shape[:2] + span, dtype=x.dtype)
    xp[_inner(spec)] = x[_kept(spec)]
    return xp


def _kept(spec: ConvSpec) -> tuple:
    """Index of the input positions inside the read span."""
    return (Ellipsis, *(slice(0, min(h, s - lo)) for h, s, lo in zip(spec.input_size, spec.read_span, spec.pad_lo)))


def _inner(spec: ConvSpec) -> tuple:
    """Index of the same positions in the padded array."""
    return (
        Ellipsis,
        *(slice(lo, lo + min(h, s - lo)) for h, s, lo in zip(spec.input_size, spec.read_span, spec.pad_lo)),
    )


def windows(xp: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """Read-only view ``(N, C, *H_out, *K)`` with ``[n, c, i, k] = xp[n, c, i*S + k*D]``."""
    nd = spec.ndim
    spatial = tuple(range(2, 2 + nd))
    view = sliding_window_view(xp, spec.effective_kernel, axis=spatial)
    step = (Ellipsis, *(slice(None, None, s) for s in spec.stride), *(slice(None, None, d) for d in spec.dilation))
    return view[step]


def columns(x: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """The im2col matrix per group: ``(G, C_g*K, N*P)``, a fresh contiguous array."""
    nd = spec.ndim
    win = windows(padded_input(x, spec), spec)  # (N, C, *Hout, *K)
    n = spec.batch
    win = win.reshape((n, spec.groups, spec.in_per_group) + win.shape[2:])  # (N, G, C_g, *Hout, *K)
    # -> (G, C_g, *K, N, *Hout)
    order = (1, 2, *range(3 + nd, 3 + 2 * nd), 0, *range(3, 3 + nd))
    cols = np.ascontiguousarray(win.transpose(order))
    return cols.reshape(spec.groups, spec.in_per_group * _prod(spec.kernel_size), n * _prod(spec.output_size))


def _prod(values) -> int:
    out = 1
    for v in values:
        out *= v
    return out


def _grouped_output(dy: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """``dy`` as ``(G, O_g, N*P)`` (a copy)."""
    nd = spec.ndim
    g = dy.reshape((spec.batch, spec.groups, spec.out_per_group) + spec.output_size)  # (N, G, O_g, *Hout)
    g = g.transpose(1, 2, 0, *range(3, 3 + nd))  # (G, O_g, N, *Hout)
    return np.ascontiguousarray(g).reshape(spec.groups, spec.out_per_group, -1)


class Gemm(Algorithm):
    name = "gemm"
    summary = "im2col through strided windows + one batched BLAS matrix product; col2im tap by tap"

    def forward(self, x, w, spec):
        nd = spec.ndim
        cols = columns(x, spec)  # (G, C_g*K, N*P)
        wg = w.reshape(spec.groups, spec.out_per_group, -1)  # (G, O_g, C_g*K)
        y = wg @ cols  # (G, O_g, N*P)
        y = y.reshape((spec.groups, spec.out_per_group, spec.batch) + spec.output_size)
        y = y.transpose(2, 0, 1, *range(3, 3 + nd))  # (N, G, O_g, *Hout)
        return np.ascontiguousarray(y).reshape(spec.output_shape)

    def grad_weight(self, x, dy, spec):
        cols = columns(x, spec)  # (G, C_g*K, N*P)
        dyg = _grouped_output(dy, spec)  # (G, O_g, N*P)
        dw = dyg @ cols.transpose(0, 2, 1)  # (G, O_g, C_g*K)
        return dw.reshape(spec.weight_shape)

    def grad_input(self, dy, w, spec):
        nd = spec.ndim
        dyg = _grouped_output(dy, spec)  # (G, O_g, N*P)
        wg = w.reshape(spec.groups, spec.out_per_group, -1)  # (G, O_g, C_g*K)
        dcol = wg.transpose(0, 2, 1) @ dyg  # (G, C_g*K, N*P)
        dcol = dcol.reshape(
            (spec.groups, spec.in_per_group) + spec.kernel_size + (spec.batch,) + spec.output_size
        )  # (G, C_g, *K, N, *Hout)
        dxp = np.zeros((spec.batch, spec.in_channels) + spec.read_span, dtype=dy.dtype)
        for k in np.ndindex(*spec.kernel_size):
            # The positions tap k reads: k*D, k*D + S, ..., k*D + (H_out-1)*S  (per dim)
            target = (
                slice(None),
                slice(None),
                *(slice(kk * d, kk * d + (o - 1) * s + 1, s) for kk, d, o, s in zip(k, spec.dilation, spec.output_size, spec.stride)),
            )
            contrib = dcol[(slice(None), slice(None), *k)]  # (G, C_g, N, *Hout)
            contrib = contrib.transpose(2, 0, 1, *range(3, 3 + nd))  # (N, G, C_g, *Hout)
            dxp[target] += contrib.reshape((spec.batch, spec.in_channels) + spec.output_size)
        dx = np.zeros(spec.input_shape, dtype=dy.dtype)
        dx[_kept(spec)] = dxp[_inner(spec)]
        return dx
