"""``samplegemm_last``: ``samplegemm`` for channels-last callers -- im2row per sample, rows of ``(*k, c)``.

``samplegemm`` builds each sample's im2col matrix channels first (:mod:`.samplegemm`); reached
through the ``(N, C, *spatial)`` view of a channels-last array, that copy reads across the grain.
For a channels-last array the natural matrix is the transposed one, one *row* per output
position, its columns the window's taps and channels in memory order (``xp`` the sample
zero-padded to the span the windows read, ``(*read_span, C)``; ``T`` taps, ``P`` positions)::

    rows[n, g, p, (k, c)] = xp[n, p*S + k*D, g*C_g + c]               (nb, G, P, T*C_g)

Along the last dim a window's taps and channels are adjacent in memory (dilation 1): building a
row copies runs of ``K_last * C`` values. Each operation is then one product whose operands and
result are the caller's channels-last arrays themselves, the weight read as ``(*k, C_g, O_g)``
(``HWIO``: for such a caller a view)::

    forward      y[n, p, g, :]   = rows[n, g, p] @ w[g]                  (P, T*C_g) @ (T*C_g, O_g)
    grad_weight  w[g]           += rows[n, g].T @ dy[n, :, g, :]         (T*C_g, P) @ (P, O_g)
    grad_input   drows[n, g, p]  = dy[n, p, g, :] @ w[g].T               (P, O_g) @ (O_g, T*C_g)

then ``dx`` adds back ``drows`` tap by tap (``T`` strided passes, runs of ``C``). At stride 1
(without a crop) the input gradient is instead the forward of ``dy`` by the flipped kernel
(:func:`convgrad.reparam.grad_input_as_forward`): rows of ``(*k, o)``, one product again. With one group
the forward and the weight gradient are one BLAS call per block (``blas.gemm``; the rows of a
block of samples or output rows are consecutive). Where one sample's matrix exceeds
:data:`.samplegemm.CHUNK_BYTES`, it is built and multiplied in blocks of output rows along the
first dim, so that it stays in the core's cache (layer d's sample: 7.4 MB, in blocks of 15
output rows); ``samplegemm``'s channels-first matrix has no such cut, its rows being channels.

Chunks of samples run on convgrad's workers (:mod:`convgrad.parallel`, BLAS on one thread).
Results are channels last: the ``(N, C, *spatial)`` views of C-contiguous ``(N, *spatial, C)``
arrays, and the weight gradient the ``(O, I, *k)`` view of a C-contiguous ``(*k, I, O)`` array
(one group). ``auto`` never picks it for channels-first calls (``auto_candidate = False``);
:mod:`convgrad.native_last` picks it where ``auto`` runs ``samplegemm`` (:meth:`SampleGemmLast.prefers_channels_last`).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from .. import blas, parallel, workspace
from ..reparam import grad_input_as_forward, grad_input_kernel
from ..spec import ConvSpec, conv_spec
from .base import Algorithm
from .depthwise_last import channels_last_result
from .gemm import Gemm, _covers, _inner, _kept
from .registry import register
from .rowgemm import _empty
from .samplegemm import CHUNK_BYTES, _view


#: Channels per group below which a product is too narrow for BLAS to beat the other paths (see
#: :meth:`SampleGemmLast.prefers_channels_last`).
MIN_WIDTH = 16


class Geometry:
    """Sizes of one spec's row blocks (no arrays); cached per spec and itemsize by :func:`geometry`.

    ``block`` output rows along the first spatial dim per product (all of them when a sample's
    matrix fits :data:`CHUNK_BYTES`), ``per_row`` positions in one such output row, ``width`` the
    columns ``T * C_g`` of a group's matrix, ``chunk_cap`` samples per chunk.
    """

    def __init__(self, spec: ConvSpec, itemsize: int):
        self.spec = spec
        self.taps = math.prod(spec.kernel_size)
        self.width = self.taps * spec.in_per_group
        out = spec.output_size
        self.per_row = math.prod(out[1:])
        row_bytes = self.per_row * self.taps * spec.in_channels * itemsize  # one output row's part of the matrix
        sample = out[0] * row_bytes
        if sample <= CHUNK_BYTES:
            self.block, self.chunk_cap = out[0], max(1, CHUNK_BYTES // max(1, sample))
        else:
            self.block, self.chunk_cap = max(1, min(out[0], CHUNK_BYTES // max(1, row_bytes))), 1
        self.padded = 0 if _covers(spec) else math.prod(spec.read_span) * spec.in_channels  # one sample's
        self.cols = self.block * row_bytes // itemsize  # one sample's block of the matrix

    def blocks(self):
        """``(r0, r1)``: the blocks of output rows along the first spatial dim."""
        h = self.spec.output_size[0]
        return [(r0, min(h, r0 + self.block)) for r0 in range(0, h, self.block)]


@functools.lru_cache(maxsize=256)
def geometry(spec: ConvSpec, itemsize: int) -> Geometry:
    """The :class:`Geometry` of ``spec`` (cached)."""
    return Geometry(spec, itemsize)


def _plan(spec: ConvSpec, geo: Geometry, itemsize: int, extra: int = 0, fixed: int = 0) -> parallel.Plan:
    per_item = (geo.cols + geo.padded + extra) * itemsize
    return parallel.plan(spec.batch, per_item, fixed, min_chunks_per_worker=1, max_chunk=geo.chunk_cap)


def windows(xp: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """The read-only view ``(n, *H_out, *K, C)`` of every window of ``xp`` ``(n, *read_span, C)`` (or of ``x``)."""
    sn, *ss, sc = xp.strides
    shape = (xp.shape[0], *spec.output_size, *spec.kernel_size, spec.in_channels)  # (n, *Hout, *K, C)
    strides = (sn, *(st * s for st, s in zip(spec.stride, ss)), *(d * s for d, s in zip(spec.dilation, ss)), sc)
    return _view(xp, shape, strides)


def _last(a: np.ndarray) -> np.ndarray:
    """The ``(N, *spatial, C)`` view of an ``(N, C, *spatial)`` array (the caller's channels-last array)."""
    return np.moveaxis(a, 1, -1)


def _weight_rows(w: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """``w`` ``(O, C_g, *K)`` as ``(G, T*C_g, O_g)``, rows in ``(*k, c)`` order (a view for one group's ``HWIO``)."""
    G, og, cg, nd = spec.groups, spec.out_per_group, spec.in_per_group, spec.ndim
    wg = w.reshape(G, og, cg, *spec.kernel_size)  # (G, O_g, C_g, *K)
    wt = wg.transpose(0, *range(3, 3 + nd), 2, 1)  # (G, *K, C_g, O_g)
    return wt.reshape(G, -1, og)  # (G, T*C_g, O_g): a view when contiguous in that order, else a copy


class _Worker:
    """One worker's buffers: the padded samples ``(nb, *read_span, C)`` (zeroed once) and the block's rows."""

    def __init__(self, spec: ConvSpec, geo: Geometry, nb: int, dtype):
        self.spec, self.geo = spec, geo
        self.cols = workspace.empty(nb * geo.cols, dtype)
        self.padded = None
        if geo.padded:
            self.padded = workspace.zeros((nb, *spec.read_span, spec.in_channels), dtype)  # (nb, *span, C)
            self.body = self.padded[(slice(None), *_inner(spec), slice(None))]
            self.windows = windows(self.padded, spec)

    def load(self, xl: np.ndarray, whole: np.ndarray | None, n0: int, n1: int) -> np.ndarray:
        """The window view ``(nb, *H_out, *K, C)`` of the samples ``[n0, n1)`` (copied into the padding)."""
        if whole is not None:
            return whole[n0:n1]
        nb = n1 - n0
        np.copyto(self.body[:nb], xl[(slice(n0, n1), *_kept(self.spec), slice(None))])  # the padding stays zero
        return self.windows[:nb]

    def rows(self, win: np.ndarray, r0: int, r1: int) -> np.ndarray:
        """The block's im2row matrices ``(nb, G, m, T*C_g)`` with ``m = (r1 - r0) * per_row`` positions."""
        spec, geo, nb = self.spec, self.geo, win.shape[0]
        m = (r1 - r0) * geo.per_row
        src = win[:, r0:r1]  # (nb, rb, *Hout[1:], *K, C)
        cols = self.cols[: nb * m * geo.taps * spec.in_channels]
        if spec.groups == 1:
            np.copyto(cols.reshape(src.shape), src)  # runs of K_last*C values (dilation 1)
            return cols.reshape(nb, 1, m, geo.width)
        split = src.reshape(*src.shape[:-1], spec.groups, spec.in_per_group)  # (nb, rb, ..., *K, G, C_g)
        src = np.moveaxis(split, -2, 1)  # (nb, G, rb, ..., *K, C_g)
        np.copyto(cols.reshape(src.shape), src)
        return cols.reshape(nb, spec.groups, m, geo.width)

    def blocks(self, xl: np.ndarray, whole: np.ndarray | None, n0: int, n1: int):
        """``(r0, r1, rows)`` for every block of output rows of the samples ``[n0, n1)`` (:meth:`load`, :meth:`rows`)."""
        win = self.load(xl, whole, n0, n1)
        for r0, r1 in self.geo.blocks():
            yield r0, r1, self.rows(win, r0, r1)  # (nb, G, m, T*C_g)


@functools.lru_cache(maxsize=256)
def _grad_input_spec(spec: ConvSpec) -> ConvSpec | None:
    """The forward convolution of ``dy`` that is ``spec``'s input gradient (:func:`convgrad.reparam.grad_input_as_forward`),
    when it is one a :class:`ConvSpec` expresses: stride 1 along every dim and no crop; else ``None``."""
    form = grad_input_as_forward(spec)
    if any(st != 1 for st in spec.stride) or min(form.pad_lo + form.pad_hi) < 0:
        return None
    return conv_spec((spec.batch, spec.out_channels, *spec.output_size),
                     (spec.in_channels, spec.out_per_group, *spec.kernel_size),
                     padding=list(zip(form.pad_lo, form.pad_hi)), dilation=spec.dilation, groups=spec.groups)


class SampleGemmLast(Algorithm):
    """Per-sample im2row on channels-last arrays (see the module docstring for the formulas).

    Examples
    --------
    A 3-channel stem on channels-last arrays, against the reference loops:

    >>> import numpy as np
    >>> from convgrad import algorithms
    >>> from convgrad.spec import conv_spec
    >>> spec = conv_spec((2, 3, 16, 16), (8, 3, 7, 7), stride=2, padding=3)
    >>> rng = np.random.default_rng(0)
    >>> x_last = rng.standard_normal((2, 16, 16, 3))  # (N, H, W, C)
    >>> x = np.moveaxis(x_last, -1, 1)  # its (N, C, H, W) view: what the algorithms take
    >>> w = rng.standard_normal(spec.weight_shape)
    >>> y = algorithms.run("forward", spec, x, w, "samplegemm_last")
    >>> y.shape, np.moveaxis(y, 1, -1).flags.c_contiguous  # (N, C, H, W), channels last in memory
    ((2, 8, 8, 8), True)
    >>> bool(np.allclose(y, algorithms.run("forward", spec, x, w, "direct"), atol=1e-12))
    True
    """

    name = "samplegemm_last"
    auto_candidate = False  # channels-first calls keep samplegemm; native_last picks this one
    channels_last = True
    bias_ops = frozenset({"forward"})

    def prefers_channels_last(self, spec: ConvSpec, op: str, itemsize: int = 4) -> bool:
        """Where the products are wide and the copies move runs of at least 8 values.

        Forward and weight gradient: at least :data:`MIN_WIDTH` output channels per group (the
        products' narrow side) and rows copied in runs of ``K_last * C_g >= 8`` values (dilation 1,
        else ``C_g``); input gradient: at least :data:`MIN_WIDTH` input channels per group (its
        product's narrow side at stride 1, the runs it adds back otherwise). Not where ``auto``
        runs ``pointwise`` or ``depthwise``, which have their own channels-last paths. Measured
        (CPU time, one thread) in the README's "Channels last" section: faster than the transposed
        views and than ``tapgemm_last``/``winograd_last`` on layers a, b, d (forward, weight
        gradient), f, h, i; slower on g1 (one input channel, 6 outputs) and on the input gradient
        of d (3 channels) and g2 (6: a product 6 columns wide).
        """
        from . import choose  # (the package imports this module while it is being set up)

        if choose(spec, op, itemsize).name in ("pointwise", "depthwise"):
            return False
        if op == "grad_input":
            return spec.in_per_group >= MIN_WIDTH
        run = spec.in_per_group * (spec.kernel_size[-1] if spec.dilation[-1] == 1 else 1)
        return spec.out_per_group >= MIN_WIDTH and run >= 8

    def examples(self):
        return (conv_spec((3, 3, 20, 18), (8, 3, 7, 7), stride=2, padding=3),  # a stem
                conv_spec((4, 1, 12, 12), (6, 1, 5, 5), padding=2),  # LeNet's first layer, smaller
                conv_spec((5, 4, 9, 8), (6, 2, 3, 3), stride=(1, 2), dilation=(2, 1), padding=1, groups=2),
                conv_spec((3, 2, 11), (4, 2, 2), stride=3, padding=[(0, 2)]),  # 1-D, unread tail
                conv_spec((2, 3, 4, 5, 6), (4, 3, 2, 3, 3), padding=(0, 0, 1), stride=(1, 1, 2)))

    def spreads_nonfinite(self, op):
        # at stride 1 the input gradient multiplies the zeros around dy by the weight (0 * inf = nan)
        return op == "grad_input"

    # ------------------------------------------------------------------------------------------------

    def forward(self, x, w, spec, bias=None):
        if _empty(spec):
            return Gemm().forward(x, w, spec, bias)
        G, og = spec.groups, spec.out_per_group
        wr = np.ascontiguousarray(_weight_rows(w, spec))  # (G, T*C_g, O_g)
        xl = _last(x)  # (N, *S, C)
        yl, y = channels_last_result((spec.batch, *spec.output_size, spec.out_channels), x.dtype)
        geo = geometry(spec, x.itemsize)
        extra = 0 if G == 1 else geo.block * geo.per_row * spec.out_channels
        plan = _plan(spec, geo, x.itemsize, extra)
        whole = windows(xl, spec) if not geo.padded else None

        def scratch():
            return {"worker": _Worker(spec, geo, plan.chunk, x.dtype),
                    "out": workspace.empty(plan.chunk * extra, x.dtype) if extra else None}

        def process(scratch, n0, n1):
            nb = n1 - n0
            for r0, r1, rows in scratch["worker"].blocks(xl, whole, n0, n1):  # rows: (nb, G, m, T*C_g)
                m = rows.shape[2]
                target = yl[n0:n1, r0:r1].reshape(nb * m, spec.out_channels)  # (nb*m, O): a view of y
                if G == 1:
                    if bias is None:
                        blas.gemm(rows.reshape(nb * m, -1), wr[0], target)
                    else:
                        target[...] = bias
                        blas.gemm(rows.reshape(nb * m, -1), wr[0], target, beta=1.0)
                    continue
                prod = scratch["out"][: nb * G * m * og].reshape(nb, G, m, og)
                np.matmul(rows, wr, out=prod)  # (nb, G, m, O_g)
                dst = target.reshape(nb, m, G, og)
                np.copyto(dst, prod.transpose(0, 2, 1, 3))
                if bias is not None:
                    target += bias

        parallel.run_chunks(plan, scratch, process)
        return y

    def grad_weight(self, x, dy, spec):
        if _empty(spec):
            return Gemm().grad_weight(x, dy, spec)
        G, og, cg, nd = spec.groups, spec.out_per_group, spec.in_per_group, spec.ndim
        xl, dyl = _last(x), _last(dy)  # (N, *S, C), (N, *Hout, O)
        geo = geometry(spec, x.itemsize)
        fixed = G * geo.width * og * x.itemsize
        plan = _plan(spec, geo, x.itemsize, fixed=fixed)
        whole = windows(xl, spec) if not geo.padded else None

        def scratch():  # the worker's buffers and partial sum
            return {"worker": _Worker(spec, geo, plan.chunk, x.dtype), "dw": np.zeros((G, geo.width, og), x.dtype)}

        def process(scratch, n0, n1):
            nb = n1 - n0
            for r0, r1, rows in scratch["worker"].blocks(xl, whole, n0, n1):  # rows: (nb, G, m, T*C_g)
                m = rows.shape[2]
                d = dyl[n0:n1, r0:r1].reshape(nb * m, spec.out_channels)  # (nb*m, O): a view when contiguous
                if G == 1:
                    blas.gemm(rows.reshape(nb * m, -1).T, d, scratch["dw"][0], beta=1.0)
                    continue
                dg = d.reshape(nb, m, G, og).transpose(0, 2, 1, 3)  # (nb, G, m, O_g)
                scratch["dw"] += np.matmul(rows.transpose(0, 1, 3, 2), dg).sum(axis=0)  # (G, T*C_g, O_g)

        dw = parallel.run_chunks(plan, scratch, process, reduce=("dw",))["dw"]  # (G, T*C_g, O_g)
        dw = dw.reshape(G, *spec.kernel_size, cg, og)
        if G == 1:  # (O, C, *K), the view of the contiguous (*K, C, O)
            return dw[0].transpose(nd + 1, nd, *range(nd))
        # (G, *K, C_g, O_g) -> (G, O_g, C_g, *K) -> (O, C_g, *K)
        return np.ascontiguousarray(dw.transpose(0, nd + 2, nd + 1, *range(1, nd + 1))).reshape(spec.weight_shape)

    def grad_input(self, dy, w, spec):
        if _empty(spec):
            return Gemm().grad_input(dy, w, spec)
        fspec = _grad_input_spec(spec)
        if fspec is not None:  # stride 1: the forward of dy by the flipped kernel (convgrad.reparam)
            return self.forward(dy, grad_input_kernel(w, spec), fspec)
        G, og, cg, c = spec.groups, spec.out_per_group, spec.in_per_group, spec.in_channels
        wt = np.ascontiguousarray(_weight_rows(w, spec).transpose(0, 2, 1))  # (G, O_g, T*C_g)
        dyl = _last(dy)  # (N, *Hout, O)
        dxl, dx = channels_last_result((spec.batch, *spec.input_size, c), dy.dtype, zero=not _covers(spec))
        geo = geometry(spec, dy.itemsize)
        plan = _plan(spec, geo, dy.itemsize)

        def process(scratch, n0, n1):
            nb, s = n1 - n0, scratch["worker"]
            dxp = s.padded[:nb] if geo.padded else dxl[n0:n1]  # (nb, *span, C)
            dxp[...] = 0
            for r0, r1 in geo.blocks():
                m = (r1 - r0) * geo.per_row
                d = dyl[n0:n1, r0:r1].reshape(nb, m, G, og).transpose(0, 2, 1, 3)  # (nb, G, m, O_g)
                drows = s.cols[: nb * G * m * geo.width].reshape(nb, G, m, geo.width)
                np.matmul(d, wt, out=drows)  # (nb, G, m, T*C_g)
                # (nb, G, rb, *Hout[1:], *K, C_g) -> (nb, rb, *Hout[1:], *K, G, C_g)
                dr = np.moveaxis(drows.reshape(nb, G, r1 - r0, *spec.output_size[1:], *spec.kernel_size, cg), 1, -2)
                for k in np.ndindex(*spec.kernel_size):
                    # tap k of output position o reads padded position o*S + k*D
                    target = (slice(None), *(slice(r * st + kk * dd, (q - 1) * st + kk * dd + 1, st) for r, q, kk, dd, st
                                             in zip((r0, *(0,) * (spec.ndim - 1)), (r1, *spec.output_size[1:]), k,
                                                    spec.dilation, spec.stride)), slice(None))
                    view = dxp[target]  # (nb, rb, *Hout[1:], C)
                    view.reshape(*view.shape[:-1], G, cg)[...] += dr[(slice(None), *(slice(None),) * spec.ndim, *k)]
            if geo.padded:
                dxl[n0:n1][(slice(None), *_kept(spec), slice(None))] = dxp[(slice(None), *_inner(spec), slice(None))]

        parallel.run_chunks(plan, lambda: {"worker": _Worker(spec, geo, plan.chunk, dy.dtype)}, process)
        return dx


register(SampleGemmLast())
