"""``tapgemm``: kernel taps as shifted slices of the padded input, a few taps per matrix product.

With the flat-offset layout (:mod:`._flat`), tap ``k`` of every output position of a chunk of
the batch reads one contiguous slice ``xs_k`` (``(C_g, cols)``) of the padded input. The taps
are taken ``S`` at a time ("a stack"); per group ``g`` and stack ``s`` (``xs_s`` = the slices of
its taps stacked along the channels, ``(S*C_g, cols)``; ``w_s`` = their weights side by side,
``(O_g, S*C_g)``)::

    forward      y_ext         = sum_s  w_s[g] @ xs_s            (O_g, S*C_g) @ (S*C_g, cols)
    grad_input   dxs_s         = w_s[g].T @ dy_ext, added back tap by tap onto the padded input
    grad_weight  dw[:, :, s]  += dy_ext @ xs_s.T                 (O_g, cols) @ (cols, S*C_g)

With ``S = 1`` a tap's slice goes to BLAS as it is, accumulating into its destination (BLAS
``beta = 1``, :func:`convgrad.blas.gemm`): no copy at all per tap -- "one GEMM per kernel tap".
With ``S > 1`` the stack is copied, one column block at a time into a small buffer that stays
in cache: im2col restricted to a few taps and a few thousand columns. Few input channels make
a single tap's product too thin for BLAS (inner dimension ``C_g``), so :func:`stack_size` takes
enough taps to reach an inner dimension of about ``TARGET_INNER`` when there are fewer than
``MIN_INNER`` channels per group; with all taps in one stack
this *is* im2col (for the 3-channel stem of an image network), without the ``K``-fold matrix.

The only full passes over memory are the padded copy of the input (for strides above 1, its
split into phases) and the cropped output. The batch is cut into chunks that fit the workspace
limit and run on the worker threads (:mod:`convgrad.parallel`); each worker keeps its buffers
and, for the weight gradient, its own partial sum. A few percent of the columns are wasted:
the padded margin of each row is computed and thrown away.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .. import blas, parallel, runtime
from ..spec import ConvSpec
from ._flat import FlatLayout, flat_layout
from .base import Algorithm

#: Inner dimension (taps x channels) a stack aims at, when the channels alone are fewer than
#: ``MIN_INNER``: BLAS runs near its peak from about here. From ``MIN_INNER`` channels on, the
#: copy a stack costs is more than it gains (measured: 16 channels x 27 taps, 64 x 9).
TARGET_INNER = 160
MIN_INNER = 16
#: Bytes of the operands of one product (column block of the stack and of the output).
BLOCK_BYTES = 4 * 2**20


def stack_size(spec: ConvSpec) -> int:
    """Taps per product: 1 from ``MIN_INNER`` channels on, else ``ceil(TARGET_INNER / C_g)``, at most all."""
    if spec.in_per_group >= MIN_INNER:
        return 1
    return max(1, min(math.prod(spec.kernel_size), -(-TARGET_INNER // spec.in_per_group)))


def taps_first(w: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """The weight as ``(T, G, O_g, C_g)``: one ``(O_g, C_g)`` matrix per tap and group (a copy)."""
    wt = w.reshape((spec.groups, spec.out_per_group, spec.in_per_group, -1))  # (G, O_g, C_g, T)
    return np.ascontiguousarray(wt.transpose(3, 0, 1, 2))  # (T, G, O_g, C_g)


def weight_from_taps(wt: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """Inverse of :func:`taps_first`: ``(T, G, O_g, C_g)`` -> ``(O, C_g, *K)`` (a fresh array)."""
    w = wt.transpose(1, 2, 3, 0)  # (G, O_g, C_g, T)
    return np.ascontiguousarray(w).reshape(spec.weight_shape)


def columns_view(a: np.ndarray) -> np.ndarray:
    """A ``(rows, nb, P)`` view with contiguous ``(nb, P)`` axes, as ``(rows, nb*P)`` (never a copy)."""
    rows, nb, p = a.shape
    if nb > 1 and a.strides[1] != p * a.itemsize or p > 1 and a.strides[2] != a.itemsize:
        raise ValueError("columns_view: the (nb, P) axes must be contiguous")
    return as_strided(a, (rows, nb * p), (a.strides[0], a.itemsize), writeable=a.flags.writeable)


class _Plan:
    """Everything the three operations share: layout, stacks, buffer sizes, chunking.

    Buffers are channels first -- ``(phases, C, nb, P)`` for the input side, ``(O, nb, P)`` for
    the output side -- so a tap's slice is a column range of a ``(C, nb*P)`` matrix and a stack
    is built by copying whole rows. (Channels last gives BLAS a slightly faster orientation for
    thin products but makes the stack copies, rows of ``C_g`` values, and the transposing copies
    in and out cost more than that gains: measured on layers a, d and i.)
    """

    def __init__(self, spec: ConvSpec, itemsize: int, fixed_extra: int = 0):
        self.spec = spec
        self.lay: FlatLayout = flat_layout(spec)
        self.P = self.lay.size
        self.nph = len(self.lay.phases)
        ntaps = len(self.lay.taps)
        self.S = stack_size(spec)
        self.stacks = [list(range(t, min(t + self.S, ntaps))) for t in range(0, ntaps, self.S)]
        cg, og = spec.in_per_group, spec.out_per_group
        threads = runtime.get_num_threads()
        block_bytes = min(BLOCK_BYTES, max(runtime.get_workspace_limit() // (4 * threads), 1))
        self.width = max(64, block_bytes // ((self.S * cg + og) * itemsize))
        stack_buf = self.S * cg * self.width * itemsize if self.S > 1 else 0
        per_item = (self.nph * spec.in_channels + spec.out_channels) * self.P * itemsize
        self.chunking = parallel.plan(spec.batch, per_item, stack_buf + fixed_extra)

    def blocks(self, nb: int):
        """Column ranges ``(c0, c1)`` covering the positions of a chunk of ``nb`` elements."""
        ncol = self.lay.columns(nb)
        return [(c0, min(ncol, c0 + self.width)) for c0 in range(0, ncol, self.width)]

    def tap_slice(self, buf: np.ndarray, t: int, g: int, nb: int, c0: int, c1: int) -> np.ndarray:
        """Columns ``[c0, c1)`` of what tap ``t`` reads for group ``g``: ``(C_g, c1-c0)`` of phase buffer ``buf``."""
        cg = self.spec.in_per_group
        q, off = self.lay.tap_phase[t], self.lay.tap_offset[t]
        return columns_view(buf[q, g * cg : (g + 1) * cg, :nb])[:, off + c0 : off + c1]

    def stacked(self, buf, stack, g, nb, c0, c1, out) -> np.ndarray:
        """The stack's slices one above the other, ``(len(stack)*C_g, c1-c0)``: the slice itself
        for a single tap, else a copy into ``out``."""
        if len(stack) == 1:
            return self.tap_slice(buf, stack[0], g, nb, c0, c1)
        cg = self.spec.in_per_group
        for i, t in enumerate(stack):
            out[i * cg : (i + 1) * cg, : c1 - c0] = self.tap_slice(buf, t, g, nb, c0, c1)
        return out[: len(stack) * cg, : c1 - c0]

    def stacked_weight(self, w: np.ndarray) -> np.ndarray:
        """``(stacks, G, O_g, S*C_g)``: each stack's tap matrices side by side (zeros past a short last stack)."""
        spec = self.spec
        wt = taps_first(w, spec)  # (T, G, O_g, C_g)
        cg = spec.in_per_group
        ws = np.zeros((len(self.stacks), spec.groups, spec.out_per_group, self.S * cg), dtype=w.dtype)
        for j, stack in enumerate(self.stacks):
            for i, t in enumerate(stack):
                ws[j, :, :, i * cg : (i + 1) * cg] = wt[t]
        return ws

    def stack_buffer(self, dtype) -> np.ndarray | None:
        return np.empty((self.S * self.spec.in_per_group, self.width), dtype=dtype) if self.S > 1 else None


class TapGemm(Algorithm):
    name = "tapgemm"
    summary = ("kernel taps as shifted slices of the padded input, a few taps per BLAS product accumulated in "
               "place: one GEMM per tap for many channels, im2col in cache-sized blocks for few")

    def spreads_nonfinite(self, op: str) -> bool:
        # the padded margin of each row ("garbage columns") multiplies zeros by weights / inputs
        return op != "forward"

    def forward(self, x, w, spec):
        # Computed transposed, y_ext.T = sum_s xs_s.T @ w_s[g].T: the positions are the product's
        # rows, which OpenBLAS runs 20-40 % faster for these thin matrices (64x64 taps: 77 -> 93
        # GFLOP/s on one core; 16 -> 32: 53 -> 74); the output buffer is then channels last.
        y = np.empty(spec.output_shape, dtype=x.dtype)
        if spec.batch == 0:
            return y
        pl = _Plan(spec, x.itemsize)
        lay, P, og, cg = pl.lay, pl.P, spec.out_per_group, spec.in_per_group
        ws = pl.stacked_weight(w)  # (stacks, G, O_g, S*C_g)
        chunk = pl.chunking.chunk

        def scratch():
            return (
                np.zeros((pl.nph, spec.in_channels, chunk, P), dtype=x.dtype),  # (phases, C, nb, P)
                np.empty((chunk, P, spec.out_channels), dtype=x.dtype),  # (nb, P, O)
                pl.stack_buffer(x.dtype),  # (S*C_g, width)
            )

        def process(s, n0, n1):
            xph, yext, buf = s
            nb = n1 - n0
            lay.scatter_input(x[n0:n1], xph)
            out = yext[:nb].reshape(nb * P, spec.out_channels)  # (nb*P, O): a view
            for g in range(spec.groups):
                for c0, c1 in pl.blocks(nb):
                    dest = out[c0:c1, g * og : (g + 1) * og]
                    for j, stack in enumerate(pl.stacks):
                        src = pl.stacked(xph, stack, g, nb, c0, c1, buf)  # (S*C_g, cols)
                        blas.gemm(src.T, ws[j, g, :, : len(stack) * cg].T, dest, beta=0.0 if j == 0 else 1.0)
            y[n0:n1] = lay.output_view(yext, nb, channels_last=True)

        parallel.run(pl.chunking, scratch, process)
        return y

    def grad_input(self, dy, w, spec):
        dx = np.zeros(spec.input_shape, dtype=dy.dtype)
        if spec.batch == 0:
            return dx
        pl = _Plan(spec, dy.itemsize)
        lay, P, og, cg = pl.lay, pl.P, spec.out_per_group, spec.in_per_group
        ws = pl.stacked_weight(w)
        chunk = pl.chunking.chunk

        def scratch():
            return (
                np.empty((pl.nph, spec.in_channels, chunk, P), dtype=dy.dtype),  # (phases, C, nb, P)
                np.zeros((spec.out_channels, chunk, P), dtype=dy.dtype),  # (O, nb, P); margins stay 0
                pl.stack_buffer(dy.dtype),  # (S*C_g, width)
            )

        def process(s, n0, n1):
            dxph, dyext, buf = s
            nb = n1 - n0
            lay.output_view(dyext, nb)[...] = dy[n0:n1]
            dxph[:, :, :nb] = 0
            for g in range(spec.groups):
                src = columns_view(dyext[g * og : (g + 1) * og, :nb])
                for c0, c1 in pl.blocks(nb):
                    for j, stack in enumerate(pl.stacks):
                        wst = ws[j, g, :, : len(stack) * cg].T  # (S*C_g, O_g)
                        if len(stack) == 1:
                            blas.gemm(wst, src[:, c0:c1], pl.tap_slice(dxph, stack[0], g, nb, c0, c1), beta=1.0)
                            continue
                        part = buf[: len(stack) * cg, : c1 - c0]
                        blas.gemm(wst, src[:, c0:c1], part)
                        for i, t in enumerate(stack):
                            pl.tap_slice(dxph, t, g, nb, c0, c1)[...] += part[i * cg : (i + 1) * cg]
            lay.gather_input(dxph, dx[n0:n1])

        parallel.run(pl.chunking, scratch, process)
        return dx

    def grad_weight(self, x, dy, spec):
        if spec.batch == 0:
            return np.zeros(spec.weight_shape, dtype=x.dtype)
        cg, og = spec.in_per_group, spec.out_per_group
        probe = stack_size(spec)
        nstacks = -(-math.prod(spec.kernel_size) // probe)
        shape = (nstacks, spec.groups, og, probe * cg)
        pl = _Plan(spec, x.itemsize, fixed_extra=math.prod(shape) * x.itemsize)
        lay, P = pl.lay, pl.P
        chunk = pl.chunking.chunk

        def scratch():
            return (
                np.zeros((pl.nph, spec.in_channels, chunk, P), dtype=x.dtype),  # (phases, C, nb, P)
                np.zeros((spec.out_channels, chunk, P), dtype=x.dtype),  # (O, nb, P); margins stay 0
                pl.stack_buffer(x.dtype),  # (S*C_g, width)
                np.zeros(shape, dtype=x.dtype),  # (stacks, G, O_g, S*C_g) partial sum
            )

        def process(s, n0, n1):
            xph, dyext, buf, dws = s
            nb = n1 - n0
            lay.scatter_input(x[n0:n1], xph)
            lay.output_view(dyext, nb)[...] = dy[n0:n1]
            for g in range(spec.groups):
                d = columns_view(dyext[g * og : (g + 1) * og, :nb])
                for c0, c1 in pl.blocks(nb):
                    for j, stack in enumerate(pl.stacks):
                        src = pl.stacked(xph, stack, g, nb, c0, c1, buf)
                        blas.gemm(d[:, c0:c1], src.T, dws[j, g, :, : len(stack) * cg], beta=1.0)

        partials = parallel.run(pl.chunking, scratch, process)
        total = partials[0][3]
        for p in partials[1:]:
            total += p[3]
        wt = np.empty((len(pl.lay.taps), spec.groups, og, cg), dtype=x.dtype)  # (T, G, O_g, C_g)
        for j, stack in enumerate(pl.stacks):
            for i, t in enumerate(stack):
                wt[t] = total[j, :, :, i * cg : (i + 1) * cg]
        return weight_from_taps(wt, spec)
