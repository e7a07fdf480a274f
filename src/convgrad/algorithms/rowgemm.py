"""``rowgemm``: im2col of the kernel's last dimension only; its other taps are column offsets.

``gemm`` copies every kernel tap of every window into its im2col matrix: 25 copies of the input
for a 5x5 kernel. But with stride 1 along the outer dimensions, the windows of neighbouring
output rows overlap in whole rows of the input, so only the taps of the *last* dimension need a
copy. The input is zero-padded to the span the windows read, batch last (as in ``gemm``:
``xp[c, *h, n]``, ``(C, *read_span, N)``), and one row-window matrix is built::

    cols[(c, j), (h, i, n)] = xp[c, h, i*S + j*D, n]       (C*K_w, prod(span_outer)*W_out*N)

with ``h`` over the whole read span of the outer dimensions (the first ``spatial-1``). Output
position ``(o, i, n)`` with outer part ``o`` reads, for outer tap ``k``, the column of
``(o + k*D_outer, i, n)`` -- a fixed offset ``off(k)`` from the column of ``(o, i, n)`` when the
outer dims use the strides of the span. So every operation is a handful of products on shifted
column ranges of one matrix, one per outer tap ``k`` and group ``g`` (``w_k[g]`` the weights of
tap ``k``, ``(O_g, C_g*K_w)``; ``E`` the columns of the output grid below)::

    forward      y_ext[g]                 += w_k[g]    @ cols[g][:, off(k) : off(k)+E]
    grad_weight  dw_k[g].T                 = cols[g][:, off(k) : off(k)+E] @ dy_rows[g]
    grad_input   dcols[g][:, off(k):+E]   += w_k[g].T  @ dy_ext[g]

(``dy_rows[g] = dy_ext[g].T``, a row-major copy: BLAS runs that product twice as fast as
``dy_ext[g] @ cols[g][...].T``), each product taken a block of columns at a time
(``BLOCK_BYTES``) so that the sum over the outer taps stays in cache,
and ``dx`` is ``dcols`` added back along the last dimension, ``K_w`` strided slices (col2im over
the few taps of one kernel row). The output grid ``y_ext`` is the output with its outer
dimensions after the first widened to the read span (so that the offsets are the same for every
output position); the extra positions hold junk that is cropped (forward) or zeros that add
nothing (``dy_ext``). In 1-D and 2-D there are none. In 2-D with a 5x5 kernel the matrix holds 5
copies of the input instead of ``gemm``'s 25, and the products have inner dimension ``5*C_g``.

Needs stride 1 along every dimension but the last. A NaN or inf can reach a result through a
junk position of 3-D and higher (``0 * inf``): the dispatcher checks and recomputes then.
The batch is cut into chunks whose scratch (``K_w`` times the input plus the output) fits the workspace limit, run on the worker threads (:mod:`convgrad.parallel`); each
chunk is laid out batch last on its own.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .. import blas, parallel, workspace
from ..spec import ConvSpec, conv_spec
from .base import Algorithm
from .work import Work, efficiency
from .registry import register
from .gemm import Gemm, _covers, _inner, _kept


class RowLayout:
    """The column arithmetic of :mod:`.rowgemm` for one spec (no arrays); ``spec.batch`` is the chunk's."""

    def __init__(self, spec: ConvSpec):
        self.spec = spec
        n, span, out = spec.batch, spec.read_span, spec.output_size
        self.kw = spec.kernel_size[-1]
        self.run = out[-1] * n  # columns per row of the last dimension
        outer_span = span[:-1]
        # column stride of each outer dimension in the cols grid (*span_outer, W_out, N)
        self.outer_strides = tuple(math.prod(outer_span[j + 1:]) * self.run for j in range(len(outer_span)))
        self.columns = math.prod(outer_span) * self.run
        # output grid: first outer dim as the output, the others widened to the span
        self.ext_shape = (*out[:1], *outer_span[1:]) if spec.ndim > 1 else ()
        self.ext = math.prod(self.ext_shape) * self.run
        self.offsets = tuple(
            sum(k * d * s for k, d, s in zip(tap, spec.dilation, self.outer_strides))
            for tap in np.ndindex(*spec.kernel_size[:-1])
        )
        self.tail = max(0, max(self.offsets) + self.ext - self.columns)  # junk positions may read past the end
        self.widened = self.ext_shape[1:] != tuple(out[1:-1])

    def crop(self) -> tuple:
        """Index of the real outputs in the output grid ``(C, *ext_shape, W_out, N)`` (leading axis: any)."""
        return (slice(None), *(slice(0, o) for o in self.spec.output_size[:-1]))


@functools.lru_cache(maxsize=256)
def chunk_layout(spec: ConvSpec, batch: int) -> tuple[ConvSpec, RowLayout]:
    """``spec`` for a chunk of ``batch`` elements, and its layout (cached: ~20 us of Python each)."""
    cs = spec if batch == spec.batch else dataclasses.replace(spec, batch=batch)
    return cs, RowLayout(cs)


def _empty(spec: ConvSpec) -> bool:
    """Nothing to multiply (no batch, channels or output positions): ``gemm`` handles those."""
    return 0 in (spec.batch, spec.in_channels, spec.out_channels, math.prod(spec.output_size))


def _sizes(spec: ConvSpec, batch: int) -> dict[str, int]:
    """Elements of each scratch array of a chunk of ``batch`` elements."""
    spec, lay = chunk_layout(spec, batch)
    return {"padded": spec.batch * spec.in_channels * math.prod(spec.read_span),
            "cols": spec.in_channels * lay.kw * (lay.columns + lay.tail),
            "out": spec.out_channels * lay.ext}


class _Chunks:
    """The batch chunks of one operation and each worker's scratch (sized for the largest chunk)."""

    def __init__(self, spec: ConvSpec, itemsize: int, fixed: int = 0):
        self.spec = spec
        per_item = sum(_sizes(spec, 1).values()) * itemsize  # the sizes are proportional to the batch
        # one chunk per worker when it fits: every chunk costs ~40 us of Python and thinner products
        # (layer g2 on two workers: 1.05 ms forward in four chunks, 0.66 in two)
        self.plan = parallel.plan(spec.batch, per_item, fixed, min_chunks_per_worker=1)
        self.largest = _sizes(spec, self.plan.chunk)

    def scratch(self, dtype) -> dict[str, np.ndarray]:
        return {name: workspace.empty(size, dtype) for name, size in self.largest.items()}

    def layout(self, n0: int, n1: int) -> tuple[ConvSpec, RowLayout]:
        return chunk_layout(self.spec, n1 - n0)


def _take(flat: np.ndarray, shape) -> np.ndarray:
    """The first ``prod(shape)`` elements of a flat scratch array, as ``shape``."""
    return flat[: math.prod(shape)].reshape(shape)


def padded_input(x: np.ndarray, spec: ConvSpec, flat: np.ndarray) -> np.ndarray:
    """``x`` zero-padded to the read span, batch last: ``(C, *read_span, N)``, in ``flat``."""
    xp = _take(flat, (spec.in_channels, *spec.read_span, spec.batch))
    if not _covers(spec):
        xp[...] = 0
    xp[(slice(None), *_inner(spec), slice(None))] = np.moveaxis(x, 0, -1)[(slice(None), *_kept(spec), slice(None))]
    return xp


def row_columns(xp: np.ndarray, spec: ConvSpec, lay: RowLayout, flat: np.ndarray) -> np.ndarray:
    """The row-window matrix ``(C*K_w, columns + tail)`` of the padded batch-last input, in ``flat``."""
    c = spec.in_channels
    cols = _take(flat, (c * lay.kw, lay.columns + lay.tail))
    sc, *ss, sn = xp.strides
    shape = (c, lay.kw, *spec.read_span[:-1], spec.output_size[-1], spec.batch)  # (C, K_w, *span_outer, W_out, N)
    strides = (sc, spec.dilation[-1] * ss[-1], *ss[:-1], spec.stride[-1] * ss[-1], sn)
    np.copyto(cols[:, : lay.columns].reshape(shape), as_strided(xp, shape, strides, writeable=False))
    if lay.tail:
        cols[:, lay.columns :] = 0
    return cols


def tap_weights(w: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """The weight as ``(T_outer, G, O_g, C_g*K_w)``: one matrix per outer tap and group (a copy)."""
    G, og, cg = spec.groups, spec.out_per_group, spec.in_per_group
    wk = w.reshape((G, og, cg, -1, spec.kernel_size[-1]))  # (G, O_g, C_g, T_outer, K_w)
    return np.ascontiguousarray(wk.transpose(3, 0, 1, 2, 4)).reshape(-1, G, og, cg * spec.kernel_size[-1])


def output_grid(dy: np.ndarray, spec: ConvSpec, lay: RowLayout, flat: np.ndarray) -> np.ndarray:
    """``dy`` on the output grid, batch last: ``(O, ext)`` with zeros at the widened positions, in ``flat``."""
    out = _take(flat, (spec.out_channels, *lay.ext_shape, spec.output_size[-1], spec.batch))
    if lay.widened:
        out[...] = 0
    np.copyto(out[lay.crop()], np.moveaxis(dy, 0, -1))
    return out.reshape(spec.out_channels, lay.ext)


def output_rows(dy: np.ndarray, spec: ConvSpec, lay: RowLayout, flat: np.ndarray) -> np.ndarray:
    """``dy`` on the output grid as rows: ``(ext, O)``, zeros at the widened positions, in ``flat``."""
    nd = spec.ndim
    out = _take(flat, (*lay.ext_shape, spec.output_size[-1], spec.batch, spec.out_channels))
    if lay.widened:
        out[...] = 0
    crop = tuple(slice(0, o) for o in spec.output_size[:-1])
    np.copyto(out[crop], dy.transpose(*range(2, 2 + nd), 0, 1))  # (*Hout, N, O)
    return out.reshape(lay.ext, spec.out_channels)


#: Bytes of the operands of one product (a column block of the row windows and of the output):
#: the products of all outer taps then accumulate into a block that stays in the core's cache.
#: Measured (ms fwd/dx/dw, one thread) on layer g1 (1 -> 6 channels, 28x28, N=64: a 1.2 MB
#: output grid): 0.89/0.90/1.70 unblocked, 1.05/1.13/1.06 with 128 KiB blocks, 0.77/0.85/0.80
#: with 1 MiB (the L2 cache), 0.76/0.83/0.79 with 2 MiB; layer g2 is level from 256 KiB on.
BLOCK_BYTES = 2**20


def column_blocks(ext: int, rows: int, itemsize: int) -> list[tuple[int, int]]:
    """``(c0, c1)`` column blocks of the output grid, each with operands of about ``BLOCK_BYTES``."""
    width = max(256, BLOCK_BYTES // (rows * itemsize))
    n = -(-ext // width)
    bounds = [ext * i // n for i in range(n + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


class RowGemm(Algorithm):
    name = "rowgemm"

    def work(self, spec: ConvSpec, op: str) -> Work:
        lay = RowLayout(spec)
        n, G, og, cg = spec.batch, spec.groups, spec.out_per_group, spec.in_per_group
        kw = lay.kw
        # the products run over the output grid (widened outer dims in 3-D and up), inner dimension C_g*K_w
        flops = 2.0 * G * og * cg * math.prod(spec.kernel_size) * lay.ext
        k, m = {"forward": (cg * kw, og), "grad_input": (og, cg * kw), "grad_weight": (lay.ext, min(og, cg * kw))}[op]
        cols = spec.in_channels * kw * lay.columns
        outputs = spec.out_channels * lay.ext
        # as gemm: padded input and output side transposed to and from batch-last order, the row
        # windows copied; for dx the window matrix is zeroed and added back tap by tap
        elem = cols + 2 * outputs + 2 * n * spec.in_channels * math.prod(spec.read_span)
        if op == "grad_input":
            elem += 2 * cols
        run = max(1, n * (spec.output_size[-1] if spec.stride[-1] == 1 else 1))
        runs = cols / run * (2 if op == "grad_input" else 1)
        # ~40 us of Python more than gemm per operation (chunk plan, layout, BLAS operands by address)
        return Work(flops / efficiency(k, m), elem, 32 + 2 * G * len(lay.offsets), runs=runs)

    def examples(self):
        # 3-D: the output grid's widened rows (junk) reach inputs their tap does not read
        return (conv_spec((2, 3, 4, 5, 6), (4, 3, 2, 3, 3), padding=(0, 0, 1), stride=(1, 1, 2)),
                conv_spec((5, 4, 9, 8), (6, 2, 3, 3), stride=(1, 2), dilation=(2, 1), padding=1, groups=2),
                conv_spec((4, 6, 14, 14), (16, 6, 5, 5)))  # LeNet's second layer, the regime auto picks it for

    bias_ops = frozenset({"forward"})

    def unsupported(self, spec, op):
        if any(s != 1 for s in spec.stride[:-1]):
            return f"it needs stride 1 along every spatial dim but the last, got stride {spec.stride}"
        return None

    def spreads_nonfinite(self, op):
        return op != "forward"  # junk positions (3-D and up) multiply zeros by operand values

    def forward(self, x, w, spec, bias=None):
        if _empty(spec):
            return Gemm().forward(x, w, spec, bias)
        G, og, cg = spec.groups, spec.out_per_group, spec.in_per_group
        rows = cg * spec.kernel_size[-1]
        wb = blas.Buffer(tap_weights(w, spec).reshape(-1, rows))
        y = np.empty(spec.output_shape, dtype=x.dtype)
        chunks = _Chunks(spec, x.itemsize)

        def process(s, n0, n1):
            cs, lay = chunks.layout(n0, n1)
            cols = blas.Buffer(row_columns(padded_input(x[n0:n1], cs, s["padded"]), cs, lay, s["cols"]))
            y_ext = _take(s["out"], (spec.out_channels, lay.ext))
            yb = blas.Buffer(y_ext)
            for c0, c1 in column_blocks(lay.ext, rows + og, x.itemsize):
                for t, off in enumerate(lay.offsets):
                    for g in range(G):
                        r = (t * G + g) * og
                        blas.gemm_blocks(wb.block(r, r + og, 0, rows), cols.block(g * rows, (g + 1) * rows, off + c0, off + c1),
                                         yb.block(g * og, (g + 1) * og, c0, c1), beta=0.0 if t == 0 else 1.0)
            grid = y_ext.reshape((spec.out_channels, *lay.ext_shape, spec.output_size[-1], n1 - n0))
            src = np.moveaxis(grid[lay.crop()], -1, 0)  # (nb, O, *Hout), a view
            if bias is None:
                np.copyto(y[n0:n1], src)
            else:
                np.add(src, bias.reshape((1, -1) + (1,) * spec.ndim), out=y[n0:n1])

        parallel.run_chunks(chunks.plan, lambda: chunks.scratch(x.dtype), process)
        return y

    def grad_weight(self, x, dy, spec):
        if _empty(spec):
            return Gemm().grad_weight(x, dy, spec)
        G, og, cg = spec.groups, spec.out_per_group, spec.in_per_group
        rows = cg * spec.kernel_size[-1]
        shape = (math.prod(spec.kernel_size[:-1]) * G * rows, og)  # (T_outer, G, C_g*K_w, O_g)
        chunks = _Chunks(spec, x.itemsize, fixed=math.prod(shape) * x.itemsize)

        def scratch():
            s = chunks.scratch(x.dtype)
            s["dw"] = np.zeros(shape, dtype=x.dtype)  # this worker's partial sum
            s["dwb"] = blas.Buffer(s["dw"])
            return s

        def process(s, n0, n1):
            cs, lay = chunks.layout(n0, n1)
            cols = blas.Buffer(row_columns(padded_input(x[n0:n1], cs, s["padded"]), cs, lay, s["cols"]))
            # dy as rows (ext, O): BLAS runs (C_g*K_w, ext) @ (ext, O_g) twice as fast as dy (O_g, ext) @ cols.T
            dyb = blas.Buffer(output_rows(dy[n0:n1], cs, lay, s["out"]))
            for c0, c1 in column_blocks(lay.ext, rows + og, x.itemsize):
                for t, off in enumerate(lay.offsets):
                    for g in range(G):
                        r = (t * G + g) * rows
                        blas.gemm_blocks(cols.block(g * rows, (g + 1) * rows, off + c0, off + c1),
                                         dyb.block(c0, c1, g * og, (g + 1) * og), s["dwb"].block(r, r + rows, 0, og),
                                         beta=1.0)

        dwt = parallel.run_chunks(chunks.plan, scratch, process, reduce=("dw",))["dw"]
        dwt = dwt.reshape(-1, G, cg, spec.kernel_size[-1], og)  # (T_outer, G, C_g, K_w, O_g)
        return np.ascontiguousarray(dwt.transpose(1, 4, 2, 0, 3)).reshape(spec.weight_shape)

    def grad_input(self, dy, w, spec):
        if _empty(spec):
            return Gemm().grad_input(dy, w, spec)
        G, og, cg, c = spec.groups, spec.out_per_group, spec.in_per_group, spec.in_channels
        kw, rows = spec.kernel_size[-1], cg * spec.kernel_size[-1]
        wb = blas.Buffer(tap_weights(w, spec).reshape(-1, rows))
        dx = (np.empty if _covers(spec) else np.zeros)(spec.input_shape, dtype=dy.dtype)
        d, st, wo = spec.dilation[-1], spec.stride[-1], spec.output_size[-1]
        chunks = _Chunks(spec, dy.itemsize)

        def process(s, n0, n1):
            cs, lay = chunks.layout(n0, n1)
            nb = n1 - n0
            dyb = blas.Buffer(output_grid(dy[n0:n1], cs, lay, s["out"]))
            dcols = _take(s["cols"], (c * kw, lay.columns + lay.tail))
            dcols[...] = 0
            db = blas.Buffer(dcols)
            for c0, c1 in column_blocks(lay.ext, rows + og, dy.itemsize):
                for t, off in enumerate(lay.offsets):
                    for g in range(G):
                        r = (t * G + g) * og
                        blas.gemm_blocks(wb.block(r, r + og, 0, rows).T, dyb.block(g * og, (g + 1) * og, c0, c1),
                                         db.block(g * rows, (g + 1) * rows, off + c0, off + c1), beta=1.0)
            dcol = dcols[:, : lay.columns].reshape((c, kw, *spec.read_span[:-1], wo, nb))  # (C, K_w, *span_outer, W_out, nb)
            dxp = _take(s["padded"], (c, *spec.read_span, nb))  # (C, *span, nb)
            dxp[...] = 0
            for j in range(kw):
                # padded positions tap j of the last dim reads: j*D, j*D + S, ..., j*D + (W_out-1)*S
                dxp[..., j * d : j * d + (wo - 1) * st + 1 : st, :] += dcol[:, j]
            np.moveaxis(dx[n0:n1], 0, -1)[(slice(None), *_kept(spec), slice(None))] = \
                dxp[(slice(None), *_inner(spec), slice(None))]

        parallel.run_chunks(chunks.plan, lambda: chunks.scratch(dy.dtype), process)
        return dx


register(RowGemm())
