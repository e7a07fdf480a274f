"""``gemm``: im2col with the batch innermost, one batched matrix product per operation.

The input is zero-padded to the span the windows read and laid out channels first with the
batch *last*, ``xp[c, *h, n]`` (``(C, *read_span, N)``). Its windows, read through a strided
view (no copy), give the im2col matrix, one per group ``g`` (``K`` below is the product of the
kernel sizes, ``P`` of the output sizes)::

    cols[g][(c, k), (i, n)] = xp[g*C_g + c, i*S + k*D, n]        (G, C_g*K, P*N)

which turns each operation into a matrix product over the group's channels and taps::

    forward      y  [g]    = w[g]    @ cols[g]              (O_g, C_g*K) @ (C_g*K, P*N)
    grad_weight  dw [g].T  = cols[g] @ dy_rows[g]           (C_g*K, P*N) @ (P*N, O_g)
    grad_input   dcol[g]   = w[g].T  @ dy[g]                (C_g*K, O_g) @ (O_g, P*N)

with ``dy[g][o, (i, n)] = dy[n, g*O_g + o, i]`` and ``dy_rows[g]`` its transpose (a copy each).
``dx`` is ``dcol`` added back tap by tap into strided slices of the padded ``(C, *read_span, N)``
gradient (col2im as a loop over the few kernel taps, never over pixels, and no ``np.add.at``
scatter). Positions that no window reads -- the unread tail, and the holes when the stride
exceeds the effective kernel -- are never written, so their gradient is exactly zero.

Why the batch innermost: at stride 1 a window row of ``W_out`` positions is contiguous for all
``N`` elements at once, so building ``cols`` (and the col2im additions) copies runs of
``W_out*N`` values instead of ``W_out`` -- on the 10x10 outputs of a LeNet layer, 640 instead of
10, and NumPy's time goes into moving data rather than into its loop over runs (2-3x faster
im2col there). The products are each one BLAS call, which NumPy's BLAS runs on all its threads.

Cost: the ``cols`` copy holds ``K`` times the input (9x for 3x3); ``auto`` uses ``gemm`` only
while it fits the workspace limit.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .. import parallel, workspace
from ..spec import ConvSpec, conv_spec
from .base import Algorithm
from .work import Work, efficiency
from .registry import register


def im2col_scratch_bytes(spec: ConvSpec, itemsize: int = 4) -> int:
    """The im2col matrix and the padded input, for the whole batch at once (``gemm`` and ``im2row`` do not chunk)."""
    cols = spec.in_channels * math.prod(spec.kernel_size) * spec.batch * math.prod(spec.output_size)
    return (cols + spec.batch * spec.in_channels * math.prod(spec.read_span)) * itemsize


def im2col_work(spec: ConvSpec, op: str) -> Work:
    """The work of im2col with the batch innermost and one product per group (``gemm``; ``im2row`` adds its runs)."""
    n, G, og, cg = spec.batch, spec.groups, spec.out_per_group, spec.in_per_group
    T = math.prod(spec.kernel_size)
    p = math.prod(spec.output_size)
    flops = 2.0 * n * G * og * cg * T * p
    k, m = {"forward": (cg * T, og), "grad_input": (og, cg * T), "grad_weight": (n * p, min(og, cg * T))}[op]
    cols = spec.in_channels * T * n * p
    outputs = n * spec.out_channels * p
    # the padded input and the output side are transposed to and from batch-last order (each
    # value moved alone: counted twice), the columns copied and, for dx, added back tap by tap
    elem = cols + 2 * outputs + 2 * n * spec.in_channels * math.prod(spec.read_span)
    if op == "grad_input":
        elem += cols  # col2im, tap by tap
    # with the batch innermost, a window row of all N elements is one run at stride 1
    run = max(1, n * (spec.output_size[-1] if spec.stride[-1] == 1 else 1))
    runs = cols / run * (2 if op == "grad_input" else 1)
    return Work(flops / efficiency(k, m), elem, 12 + (T if op == "grad_input" else 0), runs=runs)


def _kept(spec: ConvSpec) -> tuple:
    """Index of the input positions inside the read span (spatial dims only)."""
    return tuple(slice(0, min(h, s - lo)) for h, s, lo in zip(spec.input_size, spec.read_span, spec.pad_lo))


def _inner(spec: ConvSpec) -> tuple:
    """Index of the same positions in the padded array (spatial dims only)."""
    return tuple(slice(lo, lo + min(h, s - lo)) for h, s, lo in zip(spec.input_size, spec.read_span, spec.pad_lo))


def _covers(spec: ConvSpec) -> bool:
    """Whether the read span is exactly the input: no padding, every input read (no zero fill needed)."""
    return all(lo == 0 for lo in spec.pad_lo) and spec.read_span == spec.input_size


def padded_input(x: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """``x`` zero-padded to the span the windows read, batch last: ``(C, *read_span, N)`` (scratch).

    Padded position ``j`` holds input position ``j - P_lo``.
    """
    shape = (spec.in_channels, *spec.read_span, spec.batch)
    xp = workspace.empty(shape, x.dtype) if _covers(spec) else workspace.zeros(shape, x.dtype)
    src = np.moveaxis(x, 0, -1)  # (C, *H, N), a view
    xp[(slice(None), *_inner(spec), slice(None))] = src[(slice(None), *_kept(spec), slice(None))]
    return xp


def columns(x: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """The im2col matrix per group: ``(G, C_g*K, P*N)``, contiguous (scratch)."""
    xp = padded_input(x, spec)  # (C, *span, N)
    G, cg = spec.groups, spec.in_per_group
    sc, *ss, sn = xp.strides
    shape = (G, cg, *spec.kernel_size, *spec.output_size, spec.batch)  # (G, C_g, *K, *Hout, N)
    strides = (cg * sc, sc, *(d * s for d, s in zip(spec.dilation, ss)), *(st * s for st, s in zip(spec.stride, ss)), sn)
    win = as_strided(xp, shape, strides, writeable=False)
    cols = workspace.empty(shape, x.dtype)
    np.copyto(cols, win)
    return cols.reshape(G, cg * math.prod(spec.kernel_size), math.prod(spec.output_size) * spec.batch)


def _batch_last(a: np.ndarray, groups: int) -> np.ndarray:
    """``a`` ``(N, G*R, *S)`` as ``(G, R, prod(S)*N)`` (scratch): ``[g, r, (s, n)] = a[n, g*R + r, s]``."""
    n, ch = a.shape[:2]
    out = workspace.empty((ch, *a.shape[2:], n), a.dtype)
    np.copyto(out, np.moveaxis(a, 0, -1))
    return out.reshape(groups, ch // groups, -1)


def _batch_first(a: np.ndarray, shape, bias: np.ndarray | None = None) -> np.ndarray:
    """Inverse of :func:`_batch_last`: ``(G, R, prod(S)*N)`` -> ``shape = (N, G*R, *S)`` (a fresh array), plus ``bias``."""
    n, ch = shape[:2]
    out = np.empty(shape, dtype=a.dtype)
    src = np.moveaxis(a.reshape(ch, *shape[2:], n), -1, 0)
    if bias is None:
        np.copyto(out, src)
    else:
        np.add(src, bias.reshape((1, -1) + (1,) * (len(shape) - 2)), out=out)
    return out


def _matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` for stacks of one or more groups (one plain 2-D BLAS call for a single group), into scratch."""
    # on convgrad's workers: BLAS's own threads would spin on into the next operation (parallel.matmul)
    return parallel.matmul(a, b, out=workspace.empty((a.shape[0], a.shape[1], b.shape[2]), a.dtype))


class Gemm(Algorithm):
    name = "gemm"
    elem_coefficient = "gemm_im2col"

    def work(self, spec: ConvSpec, op: str) -> Work:
        return im2col_work(spec, op)

    def scratch_bytes(self, spec: ConvSpec, itemsize: int = 4) -> int:
        return im2col_scratch_bytes(spec, itemsize)

    def examples(self):
        return (conv_spec((2, 3, 7, 6), (4, 3, 3, 3), padding=1),
                conv_spec((5, 4, 9, 8), (6, 2, 3, 3), stride=2, padding=1, groups=2))

    bias_ops = frozenset({"forward"})

    def forward(self, x, w, spec, bias=None):
        wg = w.reshape(spec.groups, spec.out_per_group, -1)  # (G, O_g, C_g*K)
        y = _matmul(wg, columns(x, spec))  # (G, O_g, P*N)
        return _batch_first(y, spec.output_shape, bias)

    def grad_weight(self, x, dy, spec):
        rows = _batch_last(dy, spec.groups).transpose(0, 2, 1)  # (G, P*N, O_g), a view
        rows_c = workspace.empty(rows.shape, dy.dtype)  # BLAS runs the product faster from a row-major copy
        np.copyto(rows_c, rows)
        dwt = _matmul(columns(x, spec), rows_c)  # (G, C_g*K, O_g)
        dw = np.empty((spec.groups, spec.out_per_group, dwt.shape[1]), dtype=dy.dtype)
        np.copyto(dw, dwt.transpose(0, 2, 1))
        return dw.reshape(spec.weight_shape)

    def grad_input(self, dy, w, spec):
        wg = w.reshape(spec.groups, spec.out_per_group, -1)  # (G, O_g, C_g*K)
        dcol = _matmul(wg.transpose(0, 2, 1), _batch_last(dy, spec.groups))  # (G, C_g*K, P*N)
        dcol = dcol.reshape((spec.in_channels, *spec.kernel_size, *spec.output_size, spec.batch))  # (C, *K, *Hout, N)
        dxp = workspace.zeros((spec.in_channels, *spec.read_span, spec.batch), dy.dtype)  # (C, *span, N)
        for k in np.ndindex(*spec.kernel_size):
            # The positions tap k reads: k*D, k*D + S, ..., k*D + (H_out-1)*S  (per dim)
            target = (
                slice(None),
                *(slice(kk * d, kk * d + (o - 1) * s + 1, s) for kk, d, o, s in zip(k, spec.dilation, spec.output_size, spec.stride)),
            )
            dxp[target] += dcol[(slice(None), *k)]  # (C, *Hout, N)
        dx = (np.empty if _covers(spec) else np.zeros)(spec.input_shape, dtype=dy.dtype)
        np.moveaxis(dx, 0, -1)[(slice(None), *_kept(spec), slice(None))] = dxp[(slice(None), *_inner(spec), slice(None))]
        return dx


register(Gemm())
