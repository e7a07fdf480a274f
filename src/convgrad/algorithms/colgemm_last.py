"""``colgemm_last``: im2col for channels-last callers with one input channel per group -- positions as rows.

With one input channel (LeNet's first layer, 1 -> 6; a grey-scale stem) a channels-last input
``(N, *spatial, 1)`` holds the same bytes as the channels-first one, but its output and output
gradient ``(N, *H_out, C_out)`` hold the channels innermost. ``samplegemm`` builds the im2col
matrix in runs of whole rows of the image and multiplies ``w @ cols``, a result channels first;
``samplegemm_last``'s rows ``(k, c)`` would copy runs of ``K_w`` values. Here the matrix is
``samplegemm``'s -- tap-major, runs of ``W_out`` values -- with the chunk's samples side by side
along its columns, and every product is taken the other way round, so that its result and its
``dy`` operand are the caller's channels-last arrays themselves (``xp`` the chunk zero-padded to
the span the windows read, ``(nb, *read_span, C)``; ``P`` output positions, ``T`` taps)::

    cols[g, (k, c), (n, p)] = xp[n, p*S + k*D, g*C_g + c]                  (G, T*C_g, nb*P)

    forward      y[(n, p), g]   = cols[g].T @ w[g]         (nb*P, T*C_g) @ (T*C_g, O_g)   (+ bias, beta = 1)
    grad_weight  w[g]          += cols[g] @ dy[(n, p), g]   (T*C_g, nb*P) @ (nb*P, O_g)
    grad_input   dcols[g]       = w[g] @ dy[(n, p), g].T    (T*C_g, O_g) @ (O_g, nb*P)

with ``w[g][(k, c), o] = w[g*O_g + o, c, k]`` (for one group the ``HWIO`` weight itself), one BLAS
call per chunk and group, no copy of ``y`` or ``dy``; ``dx`` adds ``dcols`` back tap by tap (``T``
strided passes). With stride 1 along the outer dims the input gradient is instead ``rowgemm``'s
on the transposed view of ``dy`` (:meth:`ColGemmLast.grad_input`, measured faster). Any stride,
dilation, padding and number of dims; with more input channels the copies read across the grain
(runs of one value), so :mod:`convgrad.native_last` sends it only one input channel, and only the
backward (:meth:`ColGemmLast.prefers_channels_last`).

Chunks of samples whose matrix takes about :data:`CHUNK_BYTES` (the core's L2 cache) run on
convgrad's workers (:mod:`convgrad.parallel`, BLAS on one thread). Results are channels last (the
``(N, C, *spatial)`` views of C-contiguous ``(N, *spatial, C)`` arrays; ``rowgemm``'s input gradient
a channels-first array), and (one group) the weight gradient the ``(O, I, *k)`` view of a
C-contiguous ``(*k, I, O)`` array. ``auto`` never picks it for
channels-first calls (``auto_candidate = False``).
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
from .rowgemm import RowGemm, _empty
from .samplegemm import _view
from .samplegemm_last import _last

#: Bytes of one chunk's im2col matrix: the chunk's product reads it from the core's L2 cache.
CHUNK_BYTES = 2**20

#: Output channels up to which :mod:`convgrad.native_last` sends a one-input-channel backward here.
MAX_CHANNELS = 16


class Geometry:
    """Sizes of one spec's per-sample buffers (no arrays); cached per spec by :func:`geometry`."""

    def __init__(self, spec: ConvSpec):
        self.spec = spec
        self.taps = math.prod(spec.kernel_size)
        self.positions = math.prod(spec.output_size)
        self.height = self.taps * spec.in_per_group  # rows of a group's matrix
        self.cols = spec.in_channels * self.taps * self.positions  # one sample's matrix
        self.padded = 0 if _covers(spec) else math.prod(spec.read_span) * spec.in_channels

    def plan(self, itemsize: int, fixed: int = 0) -> parallel.Plan:
        """Chunks of samples whose matrix fits :data:`CHUNK_BYTES`; one chunk per worker at least."""
        per_item = (self.cols + self.padded) * itemsize
        cap = max(1, CHUNK_BYTES // max(1, self.cols * itemsize))
        return parallel.plan(self.spec.batch, per_item, fixed, min_chunks_per_worker=1, max_chunk=cap)


@functools.lru_cache(maxsize=256)
def geometry(spec: ConvSpec) -> Geometry:
    """The :class:`Geometry` of ``spec`` (cached)."""
    return Geometry(spec)


def weight_matrix(w: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """``w`` ``(O, C_g, *K)`` as ``(G, T*C_g, O_g)``, rows in ``(k, c)`` order (a copy)."""
    G, og, cg, nd = spec.groups, spec.out_per_group, spec.in_per_group, spec.ndim
    wg = w.reshape(G, og, cg, *spec.kernel_size)  # (G, O_g, C_g, *K)
    return np.ascontiguousarray(wg.transpose(0, *range(3, 3 + nd), 2, 1)).reshape(G, -1, og)  # (G, *K, C_g, O_g)


def windows(xl: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """The read-only view ``(G, *K, C_g, n, *H_out)`` of the windows of ``xl`` ``(n, *read_span, C)``.

    Element ``[g, k, c, n, p]`` is ``xl[n, p*S + k*D, g*C_g + c]``.
    """
    sn, *ss, sc = xl.strides
    cg = spec.in_per_group
    shape = (spec.groups, *spec.kernel_size, cg, xl.shape[0], *spec.output_size)  # (G, *K, C_g, n, *Hout)
    strides = (cg * sc, *(d * s for d, s in zip(spec.dilation, ss)), sc, sn, *(st * s for st, s in zip(spec.stride, ss)))
    return _view(xl, shape, strides)


def _taps(spec: ConvSpec):
    """``(k, index)`` per kernel tap: the padded positions tap ``k`` reads in an ``(nb, *read_span, C)`` array."""
    for k in np.ndindex(*spec.kernel_size):
        # tap k reads k*D, k*D + S, ..., k*D + (H_out-1)*S along each dim
        yield k, (slice(None), *(slice(kk * d, kk * d + (o - 1) * st + 1, st)
                                 for kk, d, o, st in zip(k, spec.dilation, spec.output_size, spec.stride)), slice(None))


class _Worker:
    """One worker's buffers: the padded samples ``(nb, *read_span, C)`` (zeroed once) and the matrix."""

    def __init__(self, spec: ConvSpec, geo: Geometry, nb: int, dtype):
        self.spec, self.geo = spec, geo
        self.cols = workspace.empty(nb * geo.cols, dtype)
        self.padded = None
        if geo.padded:
            self.padded = workspace.zeros((nb, *spec.read_span, spec.in_channels), dtype)  # (nb, *span, C)
            self.body = self.padded[(slice(None), *_inner(spec), slice(None))]
            self.windows = windows(self.padded, spec)

    def matrix(self, xl: np.ndarray, whole: np.ndarray | None, n0: int, n1: int) -> np.ndarray:
        """The chunk's matrix ``(G, T*C_g, nb*P)`` (copied from the padding when there is one)."""
        spec, geo, nb = self.spec, self.geo, n1 - n0
        nd = spec.ndim
        if whole is not None:
            src = whole[(slice(None),) * (nd + 2) + (slice(n0, n1),)]
        else:
            np.copyto(self.body[:nb], xl[(slice(n0, n1), *_kept(spec), slice(None))])  # the padding stays zero
            src = self.windows[(slice(None),) * (nd + 2) + (slice(0, nb),)]
        cols = self.cols[: nb * geo.cols]
        np.copyto(cols.reshape(src.shape), src)  # runs of W_out values (stride 1, one channel)
        return cols.reshape(spec.groups, geo.height, nb * geo.positions)


class ColGemmLast(Algorithm):
    """Tap-major im2col, positions as the products' rows (see the module docstring for the formulas).

    Examples
    --------
    LeNet's first layer on channels-last arrays, against the reference loops:

    >>> import numpy as np
    >>> from convgrad import algorithms
    >>> from convgrad.spec import conv_spec
    >>> spec = conv_spec((2, 1, 28, 28), (6, 1, 5, 5), padding=2)
    >>> rng = np.random.default_rng(0)
    >>> x_last = rng.standard_normal((2, 28, 28, 1))  # (N, H, W, C)
    >>> x = np.moveaxis(x_last, -1, 1)  # its (N, C, H, W) view: what the algorithms take
    >>> w = rng.standard_normal(spec.weight_shape)
    >>> y = algorithms.run("forward", spec, x, w, "colgemm_last")
    >>> y.shape, np.moveaxis(y, 1, -1).flags.c_contiguous  # (N, C, H, W), channels last in memory
    ((2, 6, 28, 28), True)
    >>> bool(np.allclose(y, algorithms.run("forward", spec, x, w, "direct"), atol=1e-12))
    True
    """

    name = "colgemm_last"
    auto_candidate = False  # channels-first calls keep samplegemm; native_last picks this one
    channels_last = True
    bias_ops = frozenset({"forward"})

    def prefers_channels_last(self, spec: ConvSpec, op: str, itemsize: int = 4) -> bool:
        """The backward of a layer with one input channel and 2-16 output channels (one group), stride 1
        along the outer dims: its weight gradient reads ``dy`` as the caller holds it, its input
        gradient is ``rowgemm``'s on the view, so the backward needs no channels-first copy of ``dy``
        (the transposed views' path makes one for ``samplegemm``'s weight gradient).

        Not the forward: with one input channel the transposed view of the input *is* the
        channels-first input, which ``samplegemm`` multiplies as ``w @ cols`` -- a product OpenBLAS
        runs faster than this one's ``cols.T @ w`` with its result only ``C_out`` values wide
        (6: 0.65 against 0.52 ms on layer g1's, one thread). Measured in the README's "Channels
        last" section.
        """
        from . import choose  # (the package imports this module while it is being set up)

        if op == "forward" or spec.groups != 1 or spec.in_channels != 1 or \
                not 2 <= spec.out_channels <= MAX_CHANNELS or RowGemm().unsupported(spec, "grad_input") is not None:
            return False
        return choose(spec, op, itemsize).name in ("rowgemm", "samplegemm", "tapgemm", "gemm")

    def examples(self):
        return (conv_spec((4, 1, 12, 12), (6, 1, 5, 5), padding=2),  # LeNet's first layer, smaller
                conv_spec((3, 2, 9, 8), (6, 1, 3, 3), stride=(1, 2), dilation=(2, 1), padding=1, groups=2),
                conv_spec((5, 4, 9, 8), (6, 2, 3, 3), stride=2, padding=[(1, 2), (0, 1)], groups=2),
                conv_spec((3, 1, 11), (4, 1, 2), stride=3, padding=[(0, 2)]),  # 1-D, unread tail and holes
                conv_spec((2, 1, 4, 5, 6), (4, 1, 2, 3, 3), padding=(0, 0, 1), stride=(1, 1, 2)))

    # ------------------------------------------------------------------------------------------------

    def forward(self, x, w, spec, bias=None):
        if _empty(spec):
            return Gemm().forward(x, w, spec, bias)
        G, og = spec.groups, spec.out_per_group
        wm = weight_matrix(w, spec)  # (G, T*C_g, O_g)
        xl = _last(x)  # (N, *S, C)
        yl, y = channels_last_result((spec.batch, *spec.output_size, spec.out_channels), x.dtype)
        geo = geometry(spec)
        plan = geo.plan(x.itemsize)
        whole = windows(xl, spec) if not geo.padded else None

        def process(scratch, n0, n1):
            cols = scratch["worker"].matrix(xl, whole, n0, n1)  # (G, T*C_g, nb*P)
            target = yl[n0:n1].reshape(-1, spec.out_channels)  # (nb*P, O): a view of y
            if bias is not None:
                target[...] = bias
            for g in range(G):
                blas.gemm(cols[g].T, wm[g], target[:, g * og:(g + 1) * og], beta=0.0 if bias is None else 1.0)

        parallel.run_chunks(plan, lambda: {"worker": _Worker(spec, geo, plan.chunk, x.dtype)}, process)
        return y

    def grad_weight(self, x, dy, spec):
        if _empty(spec):
            return Gemm().grad_weight(x, dy, spec)
        G, og, cg, nd = spec.groups, spec.out_per_group, spec.in_per_group, spec.ndim
        xl, dyl = _last(x), _last(dy)  # (N, *S, C), (N, *Hout, O)
        geo = geometry(spec)
        plan = geo.plan(x.itemsize, fixed=G * geo.height * og * x.itemsize)
        whole = windows(xl, spec) if not geo.padded else None

        def scratch():  # the worker's buffers and partial sum
            return {"worker": _Worker(spec, geo, plan.chunk, x.dtype), "dw": np.zeros((G, geo.height, og), x.dtype)}

        def process(scratch, n0, n1):
            cols = scratch["worker"].matrix(xl, whole, n0, n1)  # (G, T*C_g, nb*P)
            d = dyl[n0:n1].reshape(-1, spec.out_channels)  # (nb*P, O): a view when contiguous
            for g in range(G):
                blas.gemm(cols[g], d[:, g * og:(g + 1) * og], scratch["dw"][g], beta=1.0)

        dw = parallel.run_chunks(plan, scratch, process, reduce=("dw",))["dw"]  # (G, T*C_g, O_g)
        dw = dw.reshape(G, *spec.kernel_size, cg, og)
        if G == 1:  # (O, C, *K), the view of the contiguous (*K, C, O)
            return dw[0].transpose(nd + 1, nd, *range(nd))
        # (G, *K, C_g, O_g) -> (G, O_g, C_g, *K) -> (O, C_g, *K)
        return np.ascontiguousarray(dw.transpose(0, nd + 2, nd + 1, *range(1, nd + 1))).reshape(spec.weight_shape)

    def grad_input(self, dy, w, spec):
        """Stride 1 along the outer dims: ``rowgemm``'s, on the transposed view of ``dy`` (its batch-last
        layout gathers ``dy`` at the same cost from either layout; a channels-first result). Otherwise
        ``dcols = w @ dy.T`` and ``T`` strided passes of col2im (a channels-last result).

        Measured on layer g1 (CPU time, one thread, 2026-12-02, load 1.6-2.7): this matrix's own
        col2im, 25 passes over the positions (runs of 28 values, or of 896 on a widened flat grid),
        took 1.4-2.1 ms of a 2.5-3.8 ms input gradient, against ``rowgemm``'s 1.2-1.3 ms in all.
        """
        if _empty(spec):
            return Gemm().grad_input(dy, w, spec)
        if RowGemm().unsupported(spec, "grad_input") is None:
            return RowGemm().grad_input(dy, w, spec)
        G, og, cg, c, nd = spec.groups, spec.out_per_group, spec.in_per_group, spec.in_channels, spec.ndim
        wm = weight_matrix(w, spec)  # (G, T*C_g, O_g)
        dyl = _last(dy)  # (N, *Hout, O)
        dxl, dx = channels_last_result((spec.batch, *spec.input_size, c), dy.dtype, zero=not _covers(spec))
        geo = geometry(spec)
        plan = geo.plan(dy.itemsize)
        taps = list(_taps(spec))

        def process(scratch, n0, n1):
            nb, s = n1 - n0, scratch["worker"]
            d = dyl[n0:n1].reshape(-1, spec.out_channels)  # (nb*P, O)
            dcols = s.cols[: nb * geo.cols].reshape(G, geo.height, nb * geo.positions)
            for g in range(G):
                blas.gemm(wm[g], d[:, g * og:(g + 1) * og].T, dcols[g])
            # (G, *K, C_g, nb, *Hout) -> per tap (nb, *Hout, G, C_g)
            dc = np.moveaxis(dcols.reshape(G, *spec.kernel_size, cg, nb, *spec.output_size), (0, nd + 1), (-2, -1))
            dxp = s.padded[:nb] if geo.padded else dxl[n0:n1]  # (nb, *span, C)
            dxp[...] = 0
            grouped = dxp.reshape(*dxp.shape[:-1], G, cg)  # (nb, *span, G, C_g)
            for k, target in taps:
                grouped[(*target[:-1], slice(None), slice(None))] += dc[(*k,)]
            if geo.padded:
                dxl[n0:n1][(slice(None), *_kept(spec), slice(None))] = dxp[(slice(None), *_inner(spec), slice(None))]

        parallel.run_chunks(plan, lambda: {"worker": _Worker(spec, geo, plan.chunk, dy.dtype)}, process)
        return dx


register(ColGemmLast())
