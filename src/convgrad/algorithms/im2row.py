"""``im2row``: im2col in channels-last order, so every copy moves whole runs of channels.

``gemm`` lays its im2col matrix out as ``(C_g*K, N*P)``; building it copies the input in runs
of one output row (``W_out`` values), which for the small feature maps of a LeNet (4x4, 8x8)
means NumPy spends its time on loop overhead rather than on moving data. Here the input is
first made channels-last (one transposing copy), and the windows are read as rows::

    xp[n, *h, c]            padded input, channels last          (N, *read_span, C)
    rows[g][n*P + i, (k, c)] = xp[n, i*S + k*D, g*C_g + c]         (G, N*P, K*C_g)

so the copy's inner run is ``C_g`` channels (``K_w*C_g`` values with no dilation). Then::

    forward      y_rows[g]  = rows[g]   @ w_rows[g].T     (N*P, K*C_g) @ (K*C_g, O_g)
    grad_weight  dw_rows[g] = dy_rows[g].T @ rows[g]      (O_g, N*P)   @ (N*P, K*C_g)
    grad_input   drows[g]   = dy_rows[g] @ w_rows[g]      (N*P, O_g)   @ (O_g, K*C_g)

with ``w_rows[g][o, (k, c)] = w[g*O_g + o, c, k]``, and ``dx`` is ``drows`` added back tap by
tap into strided slices of the channels-last padded gradient (positions no window reads stay
exactly zero). The arithmetic is ``gemm``'s; only the memory order differs.

Cost: like ``gemm``, the ``rows`` copy holds ``K`` times the input, plus one channels-last copy
of the input.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .. import parallel
from ..spec import ConvSpec, conv_spec
from .base import Algorithm
from .gemm import im2col_scratch_bytes, im2col_work
from .work import Work
from .registry import register


def _inner(spec: ConvSpec) -> tuple:
    """Index of the input positions that lie inside the read span, in a channels-last padded array."""
    return (slice(None), *(slice(lo, lo + min(h, s - lo)) for h, s, lo in zip(spec.input_size, spec.read_span, spec.pad_lo)))


def _kept(spec: ConvSpec) -> tuple:
    """Index of the same positions in the input (spatial dims only, leading batch)."""
    return (slice(None), *(slice(0, min(h, s - lo)) for h, s, lo in zip(spec.input_size, spec.read_span, spec.pad_lo)))


def channels_last_padded(x: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """``x`` zero-padded to the read span, channels last: ``(N, *read_span, C)``, a fresh array."""
    xp = np.zeros((spec.batch, *spec.read_span, spec.in_channels), dtype=x.dtype)
    src = np.moveaxis(x, 1, -1)  # (N, *H, C), a view
    xp[(*_inner(spec), slice(None))] = src[(*_kept(spec), slice(None))]
    return xp


def rows(x: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """The im2row matrix per group: ``(G, N*P, K*C_g)``, columns ordered (kernel tap, channel)."""
    nd = spec.ndim
    xp = channels_last_padded(x, spec)  # (N, *span, C)
    win = sliding_window_view(xp, spec.effective_kernel, axis=tuple(range(1, 1 + nd)))  # (N, *Hwin, C, *Keff)
    step = (slice(None), *(slice(0, (o - 1) * s + 1, s) for o, s in zip(spec.output_size, spec.stride)),
            slice(None), *(slice(None, None, d) for d in spec.dilation))
    win = win[step]  # (N, *Hout, C, *K)
    n, p, k = spec.batch, math.prod(spec.output_size), math.prod(spec.kernel_size)
    if spec.groups == 1:
        order = (0, *range(1, 1 + nd), *range(2 + nd, 2 + 2 * nd), 1 + nd)  # (N, *Hout, *K, C)
        return np.ascontiguousarray(win.transpose(order)).reshape(1, n * p, k * spec.in_channels)
    win = win.reshape((n, *spec.output_size, spec.groups, spec.in_per_group, *spec.kernel_size))  # (N, *Hout, G, C_g, *K)
    order = (1 + nd, 0, *range(1, 1 + nd), *range(3 + nd, 3 + 2 * nd), 2 + nd)  # (G, N, *Hout, *K, C_g)
    return np.ascontiguousarray(win.transpose(order)).reshape(spec.groups, n * p, k * spec.in_per_group)


def weight_rows(w: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """``(G, O_g, K*C_g)`` with columns ordered (kernel tap, channel), matching :func:`rows`."""
    nd = spec.ndim
    wg = w.reshape((spec.groups, spec.out_per_group, spec.in_per_group, *spec.kernel_size))  # (G, O_g, C_g, *K)
    wg = wg.transpose(0, 1, *range(3, 3 + nd), 2)  # (G, O_g, *K, C_g)
    return np.ascontiguousarray(wg).reshape(spec.groups, spec.out_per_group, -1)


def output_rows(dy: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """``dy`` as ``(G, N*P, O_g)`` (a copy)."""
    nd = spec.ndim
    g = dy.reshape((spec.batch, spec.groups, spec.out_per_group, *spec.output_size))  # (N, G, O_g, *Hout)
    g = g.transpose(1, 0, *range(3, 3 + nd), 2)  # (G, N, *Hout, O_g)
    return np.ascontiguousarray(g).reshape(spec.groups, -1, spec.out_per_group)


class Im2Row(Algorithm):
    name = "im2row"

    def work(self, spec: ConvSpec, op: str) -> Work:
        # gemm's arithmetic in channels-last order: the same products, copies in runs of channels
        # plus a transposing copy of the input and of the output side
        base = im2col_work(spec, op)
        runs = (spec.in_channels * math.prod(spec.kernel_size) * spec.batch * math.prod(spec.output_size)
                / spec.in_per_group)
        runs *= 2 if op == "grad_input" else 1  # the copies move runs of C_g channels
        return Work(base.gemm, base.elem, base.calls, runs=runs)

    def scratch_bytes(self, spec: ConvSpec, itemsize: int = 4) -> int:
        return im2col_scratch_bytes(spec, itemsize)

    def examples(self):
        return (conv_spec((2, 3, 7, 6), (4, 3, 3, 3), padding=1),
                conv_spec((5, 4, 9, 8), (6, 2, 3, 3), stride=2, padding=1, groups=2))

    def forward(self, x, w, spec):
        nd = spec.ndim
        y = parallel.matmul(rows(x, spec), weight_rows(w, spec).transpose(0, 2, 1))  # (G, N*P, O_g)
        y = y.reshape((spec.groups, spec.batch, *spec.output_size, spec.out_per_group))  # (G, N, *Hout, O_g)
        y = y.transpose(1, 0, 2 + nd, *range(2, 2 + nd))  # (N, G, O_g, *Hout)
        return np.ascontiguousarray(y).reshape(spec.output_shape)

    def grad_weight(self, x, dy, spec):
        nd = spec.ndim
        dw = parallel.matmul(output_rows(dy, spec).transpose(0, 2, 1), rows(x, spec))  # (G, O_g, K*C_g)
        dw = dw.reshape((spec.out_channels, *spec.kernel_size, spec.in_per_group))  # (O, *K, C_g)
        return np.ascontiguousarray(dw.transpose(0, 1 + nd, *range(1, 1 + nd)))  # (O, C_g, *K)

    def grad_input(self, dy, w, spec):
        nd = spec.ndim
        drows = parallel.matmul(output_rows(dy, spec), weight_rows(w, spec))  # (G, N*P, K*C_g)
        drows = drows.reshape((spec.groups, spec.batch, *spec.output_size, *spec.kernel_size, spec.in_per_group))
        # -> (N, *Hout, *K, G, C_g): channels last, like the padded gradient it is added into
        drows = drows.transpose(1, *range(2, 2 + 2 * nd), 0, 2 + 2 * nd)
        dxp = np.zeros((spec.batch, *spec.read_span, spec.groups, spec.in_per_group), dtype=dy.dtype)
        for k in np.ndindex(*spec.kernel_size):
            # padded positions that tap k reads: k*D, k*D + S, ..., k*D + (H_out-1)*S  (per dim)
            target = (slice(None), *(slice(kk * d, kk * d + (o - 1) * s + 1, s)
                                     for kk, d, o, s in zip(k, spec.dilation, spec.output_size, spec.stride)))
            dxp[target] += drows[(slice(None),) * (1 + nd) + k]  # (N, *Hout, G, C_g)
        dxp = dxp.reshape((spec.batch, *spec.read_span, spec.in_channels))  # (N, *span, C)
        dx = np.zeros(spec.input_shape, dtype=dy.dtype)
        np.moveaxis(dx, 1, -1)[(*_kept(spec), slice(None))] = dxp[(*_inner(spec), slice(None))]
        return dx


register(Im2Row())
