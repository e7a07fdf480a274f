"""``rowgemm_last``: ``rowgemm`` for channels-last callers -- rows of the last dim's taps, positions as rows.

``rowgemm`` copies only the taps of the kernel's *last* dimension; its outer taps are offsets
into one matrix (:mod:`.rowgemm`). Its matrix is channels first (one row per ``(c, k_w)``,
positions along the columns), so a channels-last caller pays a transposing copy of every operand
and of the result. Here the same matrix is laid out the other way round -- one row per position,
its columns the last dim's taps and channels ``(k_w, c)``, which lie side by side in the caller's
memory (dilation 1: a run of ``K_w * C`` values) -- and the positions are ordered
``(*span_outer, n, w)``: the batch between the outer dims and the last one, so that every outer
tap is a fixed row offset for the whole chunk of samples (``xp`` the chunk zero-padded to the span
the windows read, ``(nb, *read_span, C)``; ``off(k)`` the row offset of outer tap ``k``, ``E`` the
rows of the output grid)::

    rows[(h, n, i), g, (j, c)] = xp[n, h, i*S + j*D, g*C_g + c]        (columns, G, K_w*C_g)

    forward      y_grid[:, g]  += rows[off(k) : off(k)+E, g] @ w_k[g]        (E, K_w*C_g) @ (K_w*C_g, O_g)
    grad_weight  w_k[g]        += rows[off(k) : off(k)+E, g].T @ dy_grid[:, g]

with ``w_k[g][(j, c), o] = w[g*O_g + o, c, k, j]`` (for one group the ``HWIO`` weight itself).
The output grid is ``(*H_out[:1], *span_outer[1:], n, W_out)``: in 1-D and 2-D exactly the
outputs (the products write no junk: LeNet's 1 -> 6 and 6 -> 16 layers multiply nothing twice), in
3-D and up widened along the middle dims as ``rowgemm``'s (junk cropped, zeros in ``dy``). The
forward copies the grid into the caller's ``(N, *H_out, C_out)`` layout in runs of ``W_out * C_out``
values with the bias added in the same pass; the weight gradient copies ``dy`` onto the grid the
other way. The input gradient is ``rowgemm``'s, on the transposed view of ``dy``
(:meth:`RowGemmLast.grad_input`: measured faster than the same products laid out this way, whose
col2im adds runs of only ``K_w * C`` values).

With few channels this is what a channels-last caller wants: the copies move runs of
``K_w * C`` and ``W_out * C`` values where ``samplegemm_last``'s move ``K_w * C`` (``K`` times as
many), and the backward needs no product with ``C_in`` columns (the input gradient of 6 channels).
Needs stride 1 along every dim but the last (as ``rowgemm``). Chunks of samples whose matrices
take about :data:`CHUNK_BYTES` (the core's L2 cache) run on convgrad's workers
(:mod:`convgrad.parallel`, BLAS on one thread). The forward's result is channels last (the
``(N, C, *spatial)`` view of a C-contiguous ``(N, *spatial, C)`` array), the input gradient's
channels first, and (one group) the weight gradient the ``(O, I, *k)`` view of a C-contiguous
``(*k, I, O)`` array. ``auto`` never picks it for
channels-first calls (``auto_candidate = False``); :mod:`convgrad.native_last` picks it where
:meth:`RowGemmLast.prefers_channels_last` says so.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from .. import blas, parallel, workspace
from ..spec import ConvSpec, conv_spec
from .base import Algorithm
from .depthwise_last import channels_last_result
from .gemm import Gemm, _covers, _inner, _kept
from .registry import register
from .rowgemm import RowGemm, _empty, chunk_layout
from .samplegemm import _view
from .samplegemm_last import _last

#: Bytes of one chunk's row matrix and output grid: the products read them from the core's L2 cache.
CHUNK_BYTES = 2**20

#: Channels per group (input and output) up to which :mod:`convgrad.native_last` sends channels-last
#: calls here (see :meth:`RowGemmLast.prefers_channels_last`).
MAX_CHANNELS = 16


class Geometry:
    """Sizes of one spec's buffers per sample (no arrays); cached per spec by :func:`geometry`.

    ``width`` the columns ``G * K_w * C_g`` of the row matrix; ``rows``, ``grid`` and ``padded``
    the values of one sample's row matrix, output grid and padded input (0: ``x`` is read as it is).
    """

    def __init__(self, spec: ConvSpec):
        self.spec = spec
        _, lay = chunk_layout(spec, 1)
        self.kw = spec.kernel_size[-1]
        self.width = spec.groups * self.kw * spec.in_per_group
        self.rows = (lay.columns + lay.tail) * self.width
        self.grid = lay.ext * spec.out_channels
        self.padded = 0 if _covers(spec) else math.prod(spec.read_span) * spec.in_channels

    def plan(self, itemsize: int, fixed: int = 0) -> parallel.Plan:
        """Chunks of samples: a chunk's row matrix and grid in :data:`CHUNK_BYTES`, one chunk per worker at least."""
        per_item = (self.rows + self.grid + self.padded) * itemsize
        cap = max(1, CHUNK_BYTES // max(1, (self.rows + self.grid) * itemsize))
        return parallel.plan(self.spec.batch, per_item, fixed, min_chunks_per_worker=1, max_chunk=cap)


@functools.lru_cache(maxsize=256)
def geometry(spec: ConvSpec) -> Geometry:
    """The :class:`Geometry` of ``spec`` (cached)."""
    return Geometry(spec)


def tap_weights(w: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """``w`` ``(O, C_g, *K)`` as ``(T_outer * G * K_w * C_g, O_g)``: one ``(K_w*C_g, O_g)`` matrix per outer tap and group."""
    G, og, cg, nd = spec.groups, spec.out_per_group, spec.in_per_group, spec.ndim
    wg = w.reshape(G, og, cg, *spec.kernel_size)  # (G, O_g, C_g, *K)
    wt = wg.transpose(*range(3, 2 + nd), 0, 2 + nd, 2, 1)  # (*K_outer, G, K_w, C_g, O_g)
    return np.ascontiguousarray(wt).reshape(-1, og)


def windows(xl: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """The read-only view ``(*span_outer, n, W_out, K_w, C)`` of the windows of ``xl`` ``(n, *read_span, C)``.

    Element ``[h, n, i, j, c]`` is ``xl[n, h, i*S + j*D, c]`` (``h`` over the outer dims' span).
    """
    sn, *ss, sc = xl.strides
    shape = (*spec.read_span[:-1], xl.shape[0], spec.output_size[-1], spec.kernel_size[-1], spec.in_channels)
    strides = (*ss[:-1], sn, spec.stride[-1] * ss[-1], spec.dilation[-1] * ss[-1], sc)
    return _view(xl, shape, strides)


class _Worker:
    """One worker's buffers (sized for the largest chunk): padded input (zeroed once), row matrix, grid."""

    def __init__(self, spec: ConvSpec, geo: Geometry, nb: int, dtype):
        self.spec, self.geo, self.nb = spec, geo, nb
        self.rows = workspace.empty(nb * geo.rows, dtype)
        self.rows_buf = blas.Buffer(self.rows.reshape(-1, geo.width))
        self.grid = workspace.empty(nb * geo.grid, dtype)
        self.grid_buf = blas.Buffer(self.grid.reshape(-1, spec.out_channels))
        self.padded = None
        if geo.padded:
            self.padded = workspace.zeros((nb, *spec.read_span, spec.in_channels), dtype)  # (nb, *span, C)
            self.body = self.padded[(slice(None), *_inner(spec), slice(None))]
            self.windows = windows(self.padded, spec)

    def source(self, xl: np.ndarray, whole: np.ndarray | None, n0: int, n1: int) -> np.ndarray:
        """The window view of the samples ``[n0, n1)`` (copied into the padding when there is one)."""
        nd = self.spec.ndim
        if whole is not None:
            return whole[(slice(None),) * (nd - 1) + (slice(n0, n1),)]
        nb = n1 - n0
        np.copyto(self.body[:nb], xl[(slice(n0, n1), *_kept(self.spec), slice(None))])  # the padding stays zero
        return self.windows[(slice(None),) * (nd - 1) + (slice(0, nb),)]

    def row_matrix(self, src: np.ndarray, lay) -> None:
        """Copy the windows ``src`` into the row matrix ``(columns, G, K_w, C_g)`` (and zero its tail)."""
        spec, geo = self.spec, self.geo
        if spec.groups == 1:
            np.copyto(self.rows[: lay.columns * geo.width].reshape(src.shape), src)  # runs of K_w*C values
        else:
            split = src.reshape(*src.shape[:-1], spec.groups, spec.in_per_group)  # (..., K_w, G, C_g)
            src = np.swapaxes(split, -3, -2)  # (..., G, K_w, C_g)
            np.copyto(self.rows[: lay.columns * geo.width].reshape(src.shape), src)
        if lay.tail:
            self.rows[lay.columns * geo.width: (lay.columns + lay.tail) * geo.width] = 0

    def grid_of(self, lay, nb: int) -> np.ndarray:
        """The output grid ``(*ext_shape, nb, W_out, O)`` of a chunk of ``nb`` samples."""
        spec = self.spec
        return self.grid[: lay.ext * spec.out_channels].reshape(*lay.ext_shape, nb, spec.output_size[-1],
                                                                spec.out_channels)

    def load_dy(self, dyl: np.ndarray, lay, n0: int, n1: int) -> None:
        """``dy`` of the samples ``[n0, n1)`` onto the grid, zeros at its widened positions (runs of ``W_out*O``)."""
        nd = self.spec.ndim
        grid = self.grid_of(lay, n1 - n0)
        if lay.widened:
            grid[...] = 0
        np.copyto(grid[_crop(self.spec)], np.moveaxis(dyl[n0:n1], 0, nd - 1))  # (*Hout[:-1], nb, W_out, O)


def _crop(spec: ConvSpec) -> tuple:
    """Index of the real outputs in a grid ``(*ext_shape, nb, W_out, O)``."""
    return tuple(slice(0, o) for o in spec.output_size[:-1])


class RowGemmLast(Algorithm):
    """Row windows of the last kernel dim on channels-last arrays (see the module docstring for the formulas).

    Examples
    --------
    LeNet's second layer on channels-last arrays, against the reference loops:

    >>> import numpy as np
    >>> from convgrad import algorithms
    >>> from convgrad.spec import conv_spec
    >>> spec = conv_spec((2, 6, 14, 14), (16, 6, 5, 5))
    >>> rng = np.random.default_rng(0)
    >>> x_last = rng.standard_normal((2, 14, 14, 6))  # (N, H, W, C)
    >>> x = np.moveaxis(x_last, -1, 1)  # its (N, C, H, W) view: what the algorithms take
    >>> w = rng.standard_normal(spec.weight_shape)
    >>> y = algorithms.run("forward", spec, x, w, "rowgemm_last")
    >>> y.shape, np.moveaxis(y, 1, -1).flags.c_contiguous  # (N, C, H, W), channels last in memory
    ((2, 16, 10, 10), True)
    >>> bool(np.allclose(y, algorithms.run("forward", spec, x, w, "direct"), atol=1e-12))
    True
    """

    name = "rowgemm_last"
    auto_candidate = False  # channels-first calls keep rowgemm; native_last picks this one
    channels_last = True
    bias_ops = frozenset({"forward"})

    def unsupported(self, spec, op):
        return RowGemm.unsupported(self, spec, op)  # the same row windows: stride 1 along the outer dims

    def prefers_channels_last(self, spec: ConvSpec, op: str, itemsize: int = 4) -> bool:
        """Where the channels are few on both sides: from 2 to :data:`MAX_CHANNELS` per group, one group.

        Those are the layers whose channel-first pick is ``rowgemm`` or ``samplegemm`` through the
        transposed views (and copies of ``dy`` and ``x`` for the backward), with products too
        narrow for ``samplegemm_last`` on one side (LeNet's 6 -> 16, layer g2: its input gradient, so
        that its backward leaves the views -- 1.27-1.31x channels first through them, 1.05-1.08x
        with this). One input channel stays on the views, where the input is the channels-first one;
        wide layers go to ``samplegemm_last``, ``tapgemm_last`` or ``winograd_last``. Measured in the
        README's "Channels last" section.
        """
        from . import choose  # (the package imports this module while it is being set up)
        from .registry import REGISTRY

        if spec.groups != 1 or not 2 <= spec.in_channels <= MAX_CHANNELS or spec.out_channels > MAX_CHANNELS:
            return False
        wide = REGISTRY.get("samplegemm_last")
        if wide is not None and wide.unsupported(spec, op) is None and wide.prefers_channels_last(spec, op, itemsize):
            return False  # its products are wide enough on this side (g2's forward and weight gradient)
        return choose(spec, op, itemsize).name in ("rowgemm", "samplegemm")

    def examples(self):
        return (conv_spec((4, 1, 12, 12), (6, 1, 5, 5), padding=2),  # LeNet's first layer, smaller
                conv_spec((4, 6, 14, 14), (16, 6, 5, 5)),  # LeNet's second layer
                conv_spec((5, 4, 9, 8), (6, 2, 3, 3), stride=(1, 2), dilation=(2, 1), padding=1, groups=2),
                conv_spec((3, 2, 11), (4, 2, 2), stride=3, padding=[(0, 2)]),  # 1-D, unread tail and holes
                conv_spec((2, 3, 4, 5, 6), (4, 3, 2, 3, 3), padding=(0, 0, 1), stride=(1, 1, 2)))  # 3-D: widened grid

    def spreads_nonfinite(self, op):
        return op != "forward"  # junk positions (3-D and up) multiply zeros by operand values

    # ------------------------------------------------------------------------------------------------

    def forward(self, x, w, spec, bias=None):
        if _empty(spec):
            return Gemm().forward(x, w, spec, bias)
        G, og, nd = spec.groups, spec.out_per_group, spec.ndim
        kc = spec.kernel_size[-1] * spec.in_per_group
        wb = blas.Buffer(tap_weights(w, spec))  # (T_outer*G*K_w*C_g, O_g)
        xl = _last(x)  # (N, *S, C)
        yl, y = channels_last_result((spec.batch, *spec.output_size, spec.out_channels), x.dtype)
        geo = geometry(spec)
        plan = geo.plan(x.itemsize)
        whole = windows(xl, spec) if not geo.padded else None

        def process(scratch, n0, n1):
            nb, s = n1 - n0, scratch["worker"]
            _, lay = chunk_layout(spec, nb)
            s.row_matrix(s.source(xl, whole, n0, n1), lay)
            rb, gb = s.rows_buf, s.grid_buf
            for t, off in enumerate(lay.offsets):
                for g in range(G):
                    blas.gemm_blocks(rb.block(off, off + lay.ext, g * kc, (g + 1) * kc),
                                     wb.block((t * G + g) * kc, (t * G + g + 1) * kc, 0, og),
                                     gb.block(0, lay.ext, g * og, (g + 1) * og), beta=0.0 if t == 0 else 1.0)
            src = np.moveaxis(s.grid_of(lay, nb)[_crop(spec)], nd - 1, 0)  # (nb, *Hout, O), a view
            if bias is None:
                np.copyto(yl[n0:n1], src)
            else:
                np.add(src, bias, out=yl[n0:n1])

        parallel.run_chunks(plan, lambda: {"worker": _Worker(spec, geo, plan.chunk, x.dtype)}, process)
        return y

    def grad_weight(self, x, dy, spec):
        if _empty(spec):
            return Gemm().grad_weight(x, dy, spec)
        G, og, cg, nd = spec.groups, spec.out_per_group, spec.in_per_group, spec.ndim
        kc = spec.kernel_size[-1] * cg
        xl, dyl = _last(x), _last(dy)  # (N, *S, C), (N, *Hout, O)
        geo = geometry(spec)
        taps = math.prod(spec.kernel_size[:-1])
        shape = (taps * G * kc, og)  # (T_outer, G, K_w, C_g, O_g)
        plan = geo.plan(x.itemsize, fixed=math.prod(shape) * x.itemsize)
        whole = windows(xl, spec) if not geo.padded else None

        def scratch():  # the worker's buffers and partial sum
            dw = np.zeros(shape, x.dtype)
            return {"worker": _Worker(spec, geo, plan.chunk, x.dtype), "dw": dw, "dw_buf": blas.Buffer(dw)}

        def process(scratch, n0, n1):
            nb, s = n1 - n0, scratch["worker"]
            _, lay = chunk_layout(spec, nb)
            s.row_matrix(s.source(xl, whole, n0, n1), lay)
            s.load_dy(dyl, lay, n0, n1)
            rb, gb, db = s.rows_buf, s.grid_buf, scratch["dw_buf"]
            for t, off in enumerate(lay.offsets):
                for g in range(G):
                    r = (t * G + g) * kc
                    blas.gemm_blocks(rb.block(off, off + lay.ext, g * kc, (g + 1) * kc).T,
                                     gb.block(0, lay.ext, g * og, (g + 1) * og), db.block(r, r + kc, 0, og), beta=1.0)

        dw = parallel.run_chunks(plan, scratch, process, reduce=("dw",))["dw"]
        dw = dw.reshape(*spec.kernel_size[:-1], G, spec.kernel_size[-1], cg, og)  # (*K_outer, G, K_w, C_g, O_g)
        if G == 1:  # (O, C, *K): the view of the contiguous (*K, C, O)
            return dw.reshape(*spec.kernel_size, cg, og).transpose(nd + 1, nd, *range(nd))
        # -> (G, O_g, C_g, *K_outer, K_w) -> (O, C_g, *K)
        perm = (nd - 1, nd + 2, nd + 1, *range(nd - 1), nd)
        return np.ascontiguousarray(dw.transpose(perm)).reshape(spec.weight_shape)

    def grad_input(self, dy, w, spec):
        """``rowgemm``'s, on the transposed view of ``dy``: its batch-last layout gathers ``dy`` from
        either layout at the same cost, and its col2im adds runs of ``W_out * N`` values.

        The channels-last form of the module docstring (``drows += dy_grid @ w_k.T``, then a col2im
        of runs of ``K_w * C``) was written and measured slower on layer g2 (6 channels): 1.42 ms
        against 1.25 for ``rowgemm`` on the view and 1.21 on a channels-first ``dy`` (CPU time, one
        thread, minimum of 150 alternating calls, 2026-12-02 14:13 UTC, load 1.1) -- its col2im
        alone took 0.45-0.6 ms. The result is a channels-first array (seen channels last by the caller).
        """
        return RowGemm().grad_input(dy, w, spec)


register(RowGemmLast())
