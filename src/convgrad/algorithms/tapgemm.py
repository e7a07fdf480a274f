"""``tapgemm``: one matrix product per kernel tap, on shifted slices of the padded input.

With the flat-offset layout (:mod:`._flat`), tap ``k`` of every output position of a chunk of
the batch reads one contiguous slice of the padded input, so (per group ``g``; ``T`` taps;
``xs_k`` the slice tap ``k`` reads, ``(C_g, cols)``; ``w_k = w[:, :, k]``)::

    forward      y_ext        = sum_k  w_k[g] @ xs_k            (O_g, C_g) @ (C_g, cols)
    grad_input   dxs_k       += w_k[g].T @ dy_ext               (C_g, O_g) @ (O_g, cols)
    grad_weight  dw[:, :, k] += dy_ext @ xs_k.T                 (O_g, cols) @ (cols, C_g)

Each product accumulates into its destination directly (BLAS ``beta = 1``, :func:`convgrad.blas.gemm`),
so nothing is copied per tap: the only copies are the padded input (and, for strides above 1,
its split into phases) and the cropped output, one pass each. Compared with im2col this saves
the ``K``-fold column matrix and its copy; the price is ``T`` smaller products (inner dimension
``C_g`` instead of ``C_g * T``) and a few percent of wasted columns (the padded margin of each row).

The batch is cut into chunks that fit the workspace limit and run on the worker threads
(:mod:`convgrad.parallel`); each worker keeps its padded buffers and, for the weight gradient,
its own partial sum.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .. import blas, parallel
from ..spec import ConvSpec
from ._flat import FlatLayout, flat_layout
from .base import Algorithm


def taps_first(w: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """The weight as ``(T, G, O_g, C_g)``: one ``(O_g, C_g)`` matrix per tap and group (a copy)."""
    nd = spec.ndim
    wt = w.reshape((spec.groups, spec.out_per_group, spec.in_per_group, -1))  # (G, O_g, C_g, T)
    return np.ascontiguousarray(wt.transpose(3, 0, 1, 2))  # (T, G, O_g, C_g)


def weight_from_taps(wt: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """Inverse of :func:`taps_first`: ``(T, G, O_g, C_g)`` -> ``(O, C_g, *K)`` (a fresh array)."""
    w = wt.transpose(1, 2, 3, 0)  # (G, O_g, C_g, T)
    return np.ascontiguousarray(w).reshape(spec.weight_shape)


def columns_view(a: np.ndarray) -> np.ndarray:
    """A ``(rows, nb, P)`` view with unit last stride and contiguous ``(nb, P)`` as ``(rows, nb*P)``."""
    rows, nb, p = a.shape
    if nb > 1 and a.strides[1] != p * a.itemsize or p > 1 and a.strides[2] != a.itemsize:
        raise ValueError("columns_view: the (nb, P) axes must be contiguous")
    return as_strided(a, (rows, nb * p), (a.strides[0], a.itemsize), writeable=a.flags.writeable)


#: Bytes of the operands of one product (both channel blocks times the column block).
_BLOCK_BYTES = 4 * 2**20


class _Geometry:
    """Sizes shared by the three operations."""

    def __init__(self, spec: ConvSpec):
        self.spec = spec
        self.lay: FlatLayout = flat_layout(spec)
        self.P = self.lay.size
        self.nph = len(self.lay.phases)

    def group_rows(self, g: int, per_group: int) -> slice:
        return slice(g * per_group, (g + 1) * per_group)

    def blocks(self, nb: int, rows: int, itemsize: int):
        """Column ranges ``(c0, c1)`` covering a chunk of ``nb`` elements, each small enough that
        the ``rows`` rows of every operand of one product stay in cache across the taps."""
        ncol = self.lay.columns(nb)
        width = max(1024, _BLOCK_BYTES // max(1, rows * itemsize))
        return [(c0, min(ncol, c0 + width)) for c0 in range(0, ncol, width)]

    def slices(self, buf: np.ndarray, g: int, nb: int, c0: int, c1: int):
        """Per tap ``(t, columns [c0, c1) of group g's slice that tap t reads / writes)``."""
        spec, lay = self.spec, self.lay
        rows = self.group_rows(g, spec.in_per_group)
        for t, (q, off) in enumerate(zip(lay.tap_phase, lay.tap_offset)):
            yield t, columns_view(buf[q, rows, :nb])[:, off + c0 : off + c1]


class TapGemm(Algorithm):
    name = "tapgemm"
    summary = "one BLAS product per kernel tap on shifted slices of the padded input, accumulated in place (no im2col)"

    def forward(self, x, w, spec):
        geo = _Geometry(spec)
        lay, P = geo.lay, geo.P
        y = np.empty(spec.output_shape, dtype=x.dtype)
        if spec.batch == 0:
            return y
        wt = taps_first(w, spec)
        per_item = (geo.nph * spec.in_channels + spec.out_channels) * P * x.itemsize
        plan = parallel.plan(spec.batch, per_item)
        rows = spec.in_per_group + spec.out_per_group

        def blocks(nb):
            return geo.blocks(nb, rows, x.itemsize)

        def scratch():
            return (
                np.zeros((geo.nph, spec.in_channels, plan.chunk, P), dtype=x.dtype),  # (phases, C, nb, P)
                np.empty((spec.out_channels, plan.chunk, P), dtype=x.dtype),  # (O, nb, P)
            )

        def process(s, n0, n1):
            xph, yext = s
            nb = n1 - n0
            lay.scatter_input(x[n0:n1], xph)
            for g in range(spec.groups):
                out = columns_view(yext[geo.group_rows(g, spec.out_per_group), :nb])
                for c0, c1 in blocks(nb):
                    for t, src in geo.slices(xph, g, nb, c0, c1):
                        blas.gemm(wt[t, g], src, out[:, c0:c1], beta=0.0 if t == 0 else 1.0)
            y[n0:n1] = lay.output_view(yext, nb)

        parallel.run(plan, scratch, process)
        return y

    def grad_input(self, dy, w, spec):
        geo = _Geometry(spec)
        lay, P = geo.lay, geo.P
        dx = np.zeros(spec.input_shape, dtype=dy.dtype)
        if spec.batch == 0:
            return dx
        wt = taps_first(w, spec)
        per_item = (geo.nph * spec.in_channels + spec.out_channels) * P * dy.itemsize
        plan = parallel.plan(spec.batch, per_item)
        rows = spec.in_per_group + spec.out_per_group

        def blocks(nb):
            return geo.blocks(nb, rows, dy.itemsize)

        def scratch():
            return (
                np.empty((geo.nph, spec.in_channels, plan.chunk, P), dtype=dy.dtype),  # (phases, C, nb, P)
                np.zeros((spec.out_channels, plan.chunk, P), dtype=dy.dtype),  # (O, nb, P); margins stay 0
            )

        def process(s, n0, n1):
            dxph, dyext = s
            nb = n1 - n0
            lay.output_view(dyext, nb)[...] = dy[n0:n1]
            dxph[:, :, :nb] = 0
            for g in range(spec.groups):
                src = columns_view(dyext[geo.group_rows(g, spec.out_per_group), :nb])
                for c0, c1 in blocks(nb):
                    for t, dest in geo.slices(dxph, g, nb, c0, c1):
                        blas.gemm(wt[t, g].T, src[:, c0:c1], dest, beta=1.0)
            lay.gather_input(dxph, dx[n0:n1])

        parallel.run(plan, scratch, process)
        return dx

    def grad_weight(self, x, dy, spec):
        geo = _Geometry(spec)
        lay, P = geo.lay, geo.P
        ntaps = len(lay.taps)
        shape = (ntaps, spec.groups, spec.out_per_group, spec.in_per_group)
        if spec.batch == 0:
            return np.zeros(spec.weight_shape, dtype=x.dtype)
        per_item = (geo.nph * spec.in_channels + spec.out_channels) * P * x.itemsize
        fixed = int(np.prod(shape)) * x.itemsize
        plan = parallel.plan(spec.batch, per_item, fixed)
        rows = spec.in_per_group + spec.out_per_group

        def blocks(nb):
            return geo.blocks(nb, rows, x.itemsize)

        def scratch():
            return (
                np.zeros((geo.nph, spec.in_channels, plan.chunk, P), dtype=x.dtype),  # (phases, C, nb, P)
                np.zeros((spec.out_channels, plan.chunk, P), dtype=x.dtype),  # (O, nb, P); margins stay 0
                np.zeros(shape, dtype=x.dtype),  # (T, G, O_g, C_g) partial sum
            )

        def process(s, n0, n1):
            xph, dyext, dwt = s
            nb = n1 - n0
            lay.scatter_input(x[n0:n1], xph)
            lay.output_view(dyext, nb)[...] = dy[n0:n1]
            for g in range(spec.groups):
                d = columns_view(dyext[geo.group_rows(g, spec.out_per_group), :nb])
                for c0, c1 in blocks(nb):
                    for t, src in geo.slices(xph, g, nb, c0, c1):
                        blas.gemm(d[:, c0:c1], src.T, dwt[t, g], beta=1.0)

        partials = parallel.run(plan, scratch, process)
        total = partials[0][2]
        for p in partials[1:]:
            total += p[2]
        return weight_from_taps(total, spec)
