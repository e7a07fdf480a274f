"""``samplegemm``: im2col per sample, in the caller's ``(N, C, ...)`` layout, one stacked product per chunk.

``gemm`` and ``rowgemm`` lay the batch out *last* (``(C, *span, N)``) so that one BLAS call covers
the whole batch; the price is a transpose of the input on the way in and of the result on the
way out, and on layers with few channels (LeNet's first: 1 -> 6) those transposes and the Python
around them are most of the time. Here every sample keeps its own im2col matrix, channels first
as the caller's array is (``K`` the product of the kernel sizes, ``L`` the positions of the output
grid below, ``xp`` the input zero-padded to the span the windows read)::

    cols[n, g, (c, k), i] = xp[n, g*C_g + c, i*S + k*D]          (nb, G, C_g*K, L)

and each operation is one NumPy ``matmul`` over the chunk's samples and groups (a C loop of
BLAS calls), whose result is already in the caller's layout::

    forward      y[n, g]     = w[g] @ cols[n, g]                  (O_g, C_g*K) @ (C_g*K, L)
    grad_weight  dw[g]      += sum_n dy[n, g] @ cols[n, g].T       (O_g, L) @ (L, C_g*K)
    grad_input   dcol[n, g]  = w[g].T @ dy[n, g]                  (C_g*K, O_g) @ (O_g, L)

**Flat windows** (stride 1 along every dim): a sample's padded channel is flattened into one row
(plus a tail of zeros) and the window of tap ``k`` is the contiguous slice starting at
``off(k) = sum_d k_d * D_d * prod(span[d+1:])``, of length ``L = H_out[0] * prod(span[1:])``: the
output grid has the dims after the first widened to the read span (as in ``tapgemm``'s flat
layout), so building ``cols`` copies runs of ``L`` values instead of ``W_out`` (on LeNet's second
layer, 140 instead of 10: 4x faster), and the widened positions -- junk in the forward, which is
cropped, zeros in ``dy`` -- cost ``span[-1] / W_out`` more columns in the products. ``dx`` is
``dcol`` added back one contiguous slice per tap. Otherwise (a stride) the windows are strided
views over the output positions themselves (``L = prod(H_out)``), ``y[n0:n1]`` viewed as
``(nb, G, O_g, L)`` *is* the output (the forward writes it in place) and the col2im adds strided
slices. Positions no window reads are never written: their gradient is exactly zero.

**'Same' along the dims after the first** (stride 1, and the output as long as the input along
every dim but the first: VGG's and ResNet's 3x3 pad-1 layers, LeNet's first): the grid is the
output itself, over the *unpadded* input flattened into one row with a margin of zeros before and
after. Tap ``k`` of output position ``p`` reads ``p + off(k)``, ``off(k) = sum_d (k_d*D_d - P_lo_d) *
prod(H[d+1:])``: the right element wherever the tap is inside the input, the margin where it leaves
it along the first dim, and a neighbouring row where it leaves along a later one -- those entries
of ``cols`` (and of ``dcol`` before the col2im) are zeroed, one strided slice per kernel position
that wraps (:func:`unwrap`). No widened columns in the products, no padded copy of the input (one
contiguous copy per channel), no crop of the output and no copy of ``dy`` onto a grid. Measured
(2026-12-02, float32, old layout against this one call by call in one process, 2 threads, under
load): 0.73-0.97x the time on ResNet-8's and VGG's 3x3 layers and LeNet's first, all three
operations.

The batch is cut into chunks whose im2col matrices stay within :data:`CHUNK_BYTES` (in the core's
L2 cache), run on convgrad's workers with BLAS on one thread (:mod:`convgrad.parallel`); each
worker's buffers are batch first, so the zeros of its padding stay in place from chunk to chunk.
Measured (2026-12-02, one thread, float32, load 1-3): layer g1 (1 -> 6 channels, 28x28, 5x5,
pad 2, N=64) forward 0.96 ms against rowgemm's 1.48, weight gradient 1.28 against 2.11; the
VGG-style net's 3 -> 32 first layer 3.1 / 3.9 ms against tapgemm's 4.1 / 5.5. Its input gradient
(``K`` strided or flat passes of col2im) is rarely the fastest. Supports every configuration
(strides, dilation, padding, groups, any number of dims).
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .. import blas, parallel, runtime, workspace
from ..spec import ConvSpec, conv_spec
from .base import Algorithm
from .gemm import Gemm, _covers, _inner, _kept
from .registry import register
from .rowgemm import _empty
from .work import Work, efficiency

#: Bytes of one chunk's im2col matrices: the chunk's products then read them from the core's L2
#: cache (1 MiB here), and the chunk is big enough that its ~10 NumPy calls are cheap. Measured
#: (one thread, ms, chunks of 128 KiB / 512 KiB / 1 MiB / 2 MiB / 8 MiB): g1 forward 1.38 / 0.98 /
#: 0.91 / 0.90 / 1.12, g1 grad_input 3.97 / 2.47 / 2.05 / 1.80 / 2.13, g2 forward 1.63 / 1.10 /
#: 1.07 / 1.10 / 1.36.
CHUNK_BYTES = 2**20


#: A sample's im2col matrix is built and multiplied in blocks of output rows (:func:`block_rows`)
#: from this many times :data:`CHUNK_BYTES`. Measured (2026-12-02 14:34 UTC, float32, two threads,
#: quiet, whole sample against blocks, interleaved in one process): layers a (7.2 MB a sample), f
#: (9.4 MB) and i (1.8 MB) forward 0.78-0.82x the time, weight gradient 0.84-0.93x; but the
#: VGG-style net's 32 -> 32 on 32x32 (1.2 MB) 1.16x forward, 1.04x weight gradient.
BLOCK_ABOVE = 1.5

#: What one sample's BLAS call inside NumPy's stacked ``matmul`` costs, in Python-level calls
#: (:data:`.costmodel.COEFFICIENTS` ``["call"]``): it is made from C, so a fraction of one (fitted).
SAMPLE_CALLS = 0.083

#: Extra elementwise passes counted per value of a sample's im2col matrix beyond ``SPILL_BYTES``
#: (out of the caches: written to memory and read back by BLAS).
SPILL = 4
SPILL_BYTES = 2**22


class Geometry:
    """Sizes of one spec's per-sample matrices (no arrays); cached per spec by :func:`geometry`.

    ``flat`` (stride 1 along every dim): the padded input of one channel is one row of
    ``prod(read_span) + tail`` values and tap ``k`` reads the contiguous range starting at
    ``offsets[k]``; the output grid has ``L = H_out[0] * prod(read_span[1:])`` positions (the dims
    after the first widened to the span, cropped afterwards). Otherwise the windows are strided
    views and the grid is the output itself (``L = prod(H_out)``).
    """

    def __init__(self, spec: ConvSpec):
        self.spec = spec
        span, out = spec.read_span, spec.output_size
        self.taps = math.prod(spec.kernel_size)
        self.flat = all(st == 1 for st in spec.stride) and spec.ndim > 0
        self.halo = self.flat and _same_after_first(spec)
        self.zeros: tuple = ()
        self.front = 0
        if self.halo:
            self._halo(spec)
        elif self.flat:
            strides = tuple(math.prod(span[d + 1:]) for d in range(spec.ndim))  # flat strides of the span
            self.grid_shape = (out[0], *span[1:])
            self.length = math.prod(self.grid_shape)
            self.offsets = tuple(sum(k * d * g for k, d, g in zip(tap, spec.dilation, strides))
                                 for tap in np.ndindex(*spec.kernel_size))
            self.row = math.prod(span) + max(0, max(self.offsets) + self.length - math.prod(span))
            # the flat offset of one tap step along each dim (the stride of the windows' tap axes)
            self.tap_steps = tuple(d * g for d, g in zip(spec.dilation, strides))
            self.widened = self.grid_shape != tuple(out)
        else:
            self.grid_shape, self.length, self.offsets, self.widened = tuple(out), math.prod(out), (), False
            self.row = 0 if _covers(spec) else math.prod(span)
        self.kept = _kept(spec)
        self.cols = spec.in_channels * self.taps * self.length  # one sample's im2col matrix
        self.padded = spec.in_channels * self.row  # one sample's padded input (0: x is read directly)
        self.grid = spec.out_channels * self.length if self.widened else 0  # one sample's output grid

    def _halo(self, spec: ConvSpec) -> None:
        """The unpadded flat layout: the input row with a margin of zeros, the grid the output itself.

        Tap ``k`` of output position ``p`` (flat over the output, whose dims after the first are the
        input's) reads flat input position ``p + off(k)``, ``off(k) = sum_d (k_d*D_d - P_lo_d) * prod(H[d+1:])``.
        That is the right element wherever the tap's coordinate is inside the input along every
        dim; outside along the first dim it lands in the margin (zeros), outside along a later dim
        it wraps into a neighbouring row, and those entries of the im2col matrix are zeroed
        (:attr:`zeros`: one index per tap position and dim).
        """
        size, out = spec.input_size, spec.output_size
        strides = tuple(math.prod(size[d + 1:]) for d in range(spec.ndim))  # flat strides of the input
        self.row_length = strides[0]  # grid positions per index of the first dim
        self.grid_shape, self.length, self.widened = tuple(out), math.prod(out), False
        shifts = [[k * d - lo for k in range(K)] for K, d, lo in zip(spec.kernel_size, spec.dilation, spec.pad_lo)]
        self.offsets = tuple(sum(shifts[d][k] * strides[d] for d, k in enumerate(tap))
                             for tap in np.ndindex(*spec.kernel_size))
        self.front = max(0, -min(self.offsets))
        self.row = self.front + math.prod(size) + max(0, max(self.offsets) + self.length - math.prod(size))
        self.tap_steps = tuple(d * g for d, g in zip(spec.dilation, strides))
        zeros = []
        for d in range(1, spec.ndim):
            for k, sh in enumerate(shifts[d]):
                # grid coordinates c with c + sh outside [0, H_d)
                bad = slice(0, min(size[d], -sh)) if sh < 0 else slice(max(0, size[d] - sh), size[d])
                if bad.start < bad.stop:
                    index = [slice(None)] * (2 + 2 * spec.ndim)  # (nb, C, *K, *grid)
                    index[2 + d], index[2 + spec.ndim + d] = k, bad
                    zeros.append(tuple(index))
        self.zeros = tuple(zeros)

    def crop(self) -> tuple:
        """Index of the real outputs in a grid ``(nb, O, *grid_shape)``."""
        return (slice(None), slice(None), *(slice(0, o) for o in self.spec.output_size))


#: A sample's weight-gradient product of at least this many flops is added straight into the sum
#: (:func:`_accumulates`). Measured (2026-12-02, float32, two threads, old against new interleaved
#: in one process, load ~7): 0.85-0.95x the time with 4.7-19 Mflop per sample (ResNet-8's and VGG's
#: 3x3 layers of 16-128 channels), 1.0x at 2.4 (a stride-2 16 -> 32), but 1.18x at 1.8 (3 -> 32)
#: and 2.9x at 0.67 (LeNet's 6 -> 16): many small BLAS calls from Python, each releasing and
#: retaking the GIL, against one stacked ``matmul`` per chunk.
ACCUMULATE_FLOPS = 2e6


def _accumulates(spec: ConvSpec, dy: np.ndarray | None = None) -> bool:
    """Whether the weight gradient adds each sample's product straight into the sum (BLAS ``beta = 1``).

    For one group, products of at least :data:`ACCUMULATE_FLOPS` and BLAS found; otherwise one
    stacked ``matmul`` per chunk into per-sample products, then summed over the chunk.
    """
    if spec.groups != 1 or not blas.available() or dy is not None and not (dy.flags.c_contiguous and dy.flags.aligned):
        return False  # (BLAS reads dy in place: a C-contiguous, aligned array)
    geo = geometry(spec)
    return 2.0 * spec.out_channels * spec.in_channels * geo.taps * geo.length >= ACCUMULATE_FLOPS


def _same_after_first(spec: ConvSpec) -> bool:
    """Whether the output has the input's sizes along every dim after the first (a 'same' convolution there).

    Then the flat grid needs no widening: :meth:`Geometry._halo`'s unpadded layout applies.
    """
    return spec.ndim > 1 and tuple(spec.output_size[1:]) == tuple(spec.input_size[1:])


@functools.lru_cache(maxsize=256)
def flipped(spec: ConvSpec) -> ConvSpec | None:
    """The input gradient of a 'same' ``spec`` as a forward convolution of ``dy``, or ``None``.

    At stride 1, ``dx[n, c, i] = sum_{o, k} dy[n, o, i + P_lo - k*D] * w[o, c, k]``: a correlation of
    ``dy`` with the kernel flipped and its channel axes swapped (per group), padded by
    ``K_eff - 1 - P_lo`` below and ``K_eff - 1 - P_hi`` above -- whose output has the input's sizes,
    so it is 'same' along the dims after the first too (:meth:`Geometry._halo`). ``None`` unless
    ``spec`` itself has the unpadded layout and no padding beyond the kernel's extent.
    """
    k_eff = spec.effective_kernel
    pads = tuple((ke - 1 - lo, ke - 1 - hi) for ke, (lo, hi) in zip(k_eff, spec.padding))
    if not geometry(spec).halo or any(p < 0 for pair in pads for p in pair):
        return None
    return conv_spec((spec.batch, spec.out_channels, *spec.output_size),
                     (spec.in_channels, spec.out_per_group, *spec.kernel_size),
                     padding=pads, dilation=spec.dilation, groups=spec.groups)


def flip(w: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """``w`` ``(O, C_g, *K)`` as the weight of :func:`flipped`: ``(C, O_g, *K)``, channel axes swapped per group, taps reversed."""
    G, og, cg = spec.groups, spec.out_per_group, spec.in_per_group
    wg = w.reshape((G, og, cg, *spec.kernel_size)).swapaxes(1, 2)  # (G, C_g, O_g, *K)
    wg = wg[(slice(None),) * 3 + (slice(None, None, -1),) * spec.ndim]
    return np.ascontiguousarray(wg).reshape((spec.in_channels, og, *spec.kernel_size))


@functools.lru_cache(maxsize=256)
def geometry(spec: ConvSpec) -> Geometry:
    """The :class:`Geometry` of ``spec`` (cached)."""
    return Geometry(spec)


class _Chunks:
    """How the batch is cut for one operation, and each worker's buffers with their views prepared once.

    The buffers are batch first, so a chunk of ``nb`` elements is the first ``nb`` of every view:
    the zeros of the padding (and of the widened grid) written when a worker's buffers are made
    stay in place for all its chunks, and the strided window view over the padded input is built
    once per worker (``as_strided`` costs ~10 us of Python, which holds the GIL).
    """

    def __init__(self, spec: ConvSpec, itemsize: int, extra_per_item: int = 0, fixed: int = 0, blocked: bool = True):
        self.spec = spec
        self.geo = geo = geometry(spec)
        self.sizes = {"cols": geo.cols, "padded": geo.padded, "grid": geo.grid, "extra": extra_per_item}
        rows = block_rows(geo, itemsize) if blocked else 0
        #: ``(p0, p1)``: the ranges of grid positions built and multiplied one at a time, when one
        #: sample's matrix would not fit the cache (whole rows of the first dim; else ``()``)
        self.blocks = ()
        if rows:
            h, n = geo.grid_shape[0], geo.row_length
            self.blocks = tuple((r * n, min(r + rows, h) * n) for r in range(0, h, rows))
            self.sizes["cols"] = spec.in_channels * geo.taps * rows * n
        per_item = sum(self.sizes.values()) * itemsize
        cap = 1 if rows else max(1, CHUNK_BYTES // max(1, geo.cols * itemsize))
        self.plan = parallel.plan(spec.batch, per_item, fixed, min_chunks_per_worker=1, max_chunk=cap)

    def scratch(self, dtype) -> dict[str, np.ndarray]:
        """One worker's buffers: ``padded`` (zeroed) with its ``windows`` view, ``cols``, ``grid`` (zeroed), ``extra``."""
        spec, geo, nb = self.spec, self.geo, self.plan.chunk
        s = {}
        if geo.halo:
            s["padded"] = workspace.zeros((nb, spec.in_channels, geo.row), dtype)  # (nb, C, row): margins stay 0
            s["body"] = s["padded"][:, :, geo.front: geo.front + math.prod(spec.input_size)]  # (nb, C, H*W)
            s["windows"] = windows(s["padded"], geo)
        elif geo.padded:
            s["padded"] = workspace.zeros((nb, spec.in_channels, geo.row), dtype)  # (nb, C, row)
            s["body"] = s["padded"][:, :, : math.prod(spec.read_span)].reshape(
                (nb, spec.in_channels, *spec.read_span))[(slice(None), slice(None), *_inner(spec))]
            s["windows"] = windows(s["padded"] if geo.flat else s["padded"].reshape(
                (nb, spec.in_channels, *spec.read_span)), geo)
        if self.blocks:  # one sample (nb = 1), one block's (C*K, P) at a time: block_columns
            s.update(cols=workspace.empty(self.sizes["cols"], dtype), blocks={})
            return s
        s["cols"] = workspace.empty((nb, spec.in_channels, geo.taps * geo.length), dtype)  # (nb, C, K*L)
        if geo.grid:
            s["grid"] = workspace.zeros((nb, spec.out_channels, geo.length), dtype)  # (nb, O, L)
            s["grid_real"] = s["grid"].reshape((nb, spec.out_channels, *geo.grid_shape))[geo.crop()]
        if self.sizes["extra"]:
            s["extra"] = workspace.empty(nb * self.sizes["extra"], dtype)
        if "windows" in s:
            # the views a full chunk uses, made once: a chunk then costs a handful of NumPy calls
            # (their Python runs under the GIL, one worker at a time)
            cols = s["cols"].reshape(s["windows"].shape)
            grid = s["cols"].reshape((nb, spec.in_channels, *spec.kernel_size, *geo.grid_shape))  # (nb, C, *K, *grid)
            s["full"] = (nb, cols, tuple(grid[index] for index in geo.zeros),
                         s["cols"].reshape(nb, spec.groups, spec.in_per_group * geo.taps, geo.length))
        return s


@functools.lru_cache(maxsize=256)
def _cached_chunks(spec: ConvSpec, itemsize: int, extra_per_item: int, fixed: int, blocked: bool, threads: int,
                   limit: int) -> _Chunks:
    return _Chunks(spec, itemsize, extra_per_item, fixed, blocked)


def chunks_for(spec: ConvSpec, itemsize: int, extra_per_item: int = 0, fixed: int = 0, blocked: bool = True) -> _Chunks:
    """:class:`_Chunks` for the current thread count and workspace limit (cached: ~15 us of Python each).

    ``blocked=False`` for the operations that cannot take a sample in blocks of positions.
    """
    return _cached_chunks(spec, itemsize, extra_per_item, fixed, blocked, runtime.get_num_threads(),
                          runtime.get_workspace_limit())


def block_rows(geo: Geometry, itemsize: int) -> int:
    """Rows of the first dim per block when a sample's im2col matrix exceeds :data:`CHUNK_BYTES`, else 0.

    Only the unpadded layout of one group: there a block of output rows is a contiguous range of
    grid positions, and each window's slice of it a contiguous range of the padded row.
    Balanced: ``ceil(H_out / ceil(H_out / fit))`` rows, ``fit`` the rows whose matrix fits.
    """
    if not geo.halo or geo.spec.groups != 1 or geo.cols * itemsize <= BLOCK_ABOVE * CHUNK_BYTES:
        return 0
    fit = max(1, CHUNK_BYTES // (geo.spec.in_channels * geo.taps * geo.row_length * itemsize))
    h = geo.grid_shape[0]
    return -(-h // -(-h // fit))


def block_columns(s: dict, geo: Geometry, p0: int, p1: int):
    """im2col of grid positions ``[p0, p1)`` of the sample in the worker's ``padded``: ``(matrix, buffer)``.

    ``matrix`` is ``(C*K, p1 - p0)``, contiguous at the start of the worker's ``cols``; ``buffer``
    the same as a :class:`convgrad.blas.Buffer`. The views of each block length are made once.
    """
    spec, n = geo.spec, p1 - p0
    views = s["blocks"].get(n)
    if views is None:
        rows = spec.in_channels * geo.taps
        matrix = s["cols"][: rows * n].reshape(rows, n)  # (C*K, P)
        grid = matrix.reshape((1, spec.in_channels, *spec.kernel_size, n // geo.row_length, *geo.grid_shape[1:]))
        views = s["blocks"][n] = (matrix, matrix.reshape(s["windows"].shape[:-1] + (n,)),
                                  tuple(grid[index] for index in geo.zeros), blas.Buffer(matrix))
    matrix, target, zeros, buffer = views
    np.copyto(target, s["windows"][..., p0:p1])
    for z in zeros:
        z.fill(0)
    return matrix, buffer


def _view(base: np.ndarray, shape, strides) -> np.ndarray:
    """A read-only strided view of ``base`` (``as_strided``, which costs ~10 us of Python, for a non-contiguous one)."""
    if not base.flags.c_contiguous:
        return as_strided(base, shape, strides, writeable=False)
    v = np.ndarray(shape, dtype=base.dtype, buffer=base, strides=strides)
    v.flags.writeable = False
    return v


def windows(xp: np.ndarray, geo: Geometry) -> np.ndarray:
    """The read-only view ``(nb, C, *K, L)`` (flat) or ``(nb, C, *K, *H_out)`` of every tap's window of ``xp``."""
    spec, nb = geo.spec, xp.shape[0]
    if geo.flat:
        # tap k of channel c is the contiguous range [off(k), off(k) + L) of the channel's row
        # (past the margin, in the unpadded layout: tap 0's offset is negative there)
        xp = xp[:, :, geo.front + geo.offsets[0]:]
        sn, sc, s1 = xp.strides
        shape = (nb, spec.in_channels, *spec.kernel_size, geo.length)  # (nb, C, *K, L)
        strides = (sn, sc, *(u * s1 for u in geo.tap_steps), s1)
    else:
        sn, sc, *ss = xp.strides
        shape = (nb, spec.in_channels, *spec.kernel_size, *spec.output_size)  # (nb, C, *K, *Hout)
        strides = (sn, sc, *(d * s for d, s in zip(spec.dilation, ss)), *(st * s for st, s in zip(spec.stride, ss)))
    return _view(xp, shape, strides)


def load(x: np.ndarray, n0: int, n1: int, geo: Geometry, s: dict) -> None:
    """Copy the chunk ``x[n0:n1]`` into the worker's ``padded`` buffer; its margins and padding stay zero."""
    nb = n1 - n0
    if geo.halo:
        np.copyto(s["body"][:nb], x[n0:n1].reshape(nb, geo.spec.in_channels, -1))  # (nb, C, H*W)
    else:
        np.copyto(s["body"][:nb], x[(slice(n0, n1), slice(None), *geo.kept)])


def columns(x: np.ndarray, whole: np.ndarray | None, n0: int, n1: int, geo: Geometry, s: dict) -> np.ndarray:
    """The im2col matrices of the chunk ``x[n0:n1]``: ``(nb, G, C_g*K, L)``, in the worker's ``cols``.

    ``whole`` is the window view of all of ``x`` when it is read unpadded (else ``None``).
    """
    spec, nb = geo.spec, n1 - n0
    full = s.get("full")
    if full is not None and full[0] == nb:
        _, cols, zeros, result = full
        load(x, n0, n1, geo, s)
        np.copyto(cols, s["windows"])
        for z in zeros:
            z.fill(0)
        return result
    if whole is None:
        load(x, n0, n1, geo, s)
        src = s["windows"][:nb]
    else:
        src = whole[n0:n1]
    cols = s["cols"][:nb]
    np.copyto(cols.reshape(src.shape), src)
    unwrap(cols, geo)
    return cols.reshape(nb, spec.groups, spec.in_per_group * geo.taps, geo.length)


def unwrap(cols: np.ndarray, geo: Geometry) -> None:
    """Zero the entries of im2col-shaped ``cols`` whose tap falls outside the input along a dim after the first.

    Only the unpadded flat layout (``geo.halo``) has such entries: there they read, or in the
    input gradient would add into, a neighbouring row.
    """
    if geo.zeros:
        spec = geo.spec
        view = cols.reshape((cols.shape[0], spec.in_channels, *spec.kernel_size, *geo.grid_shape))  # (nb, C, *K, *grid)
        for index in geo.zeros:
            view[index] = 0


def output_grid(dy: np.ndarray, geo: Geometry, s: dict) -> np.ndarray:
    """The chunk ``dy`` ``(nb, O, *H_out)`` on the output grid, zeros at the widened positions: ``(nb, O, L)``."""
    nb = dy.shape[0]
    if not geo.grid:
        return dy.reshape(nb, dy.shape[1], -1)
    np.copyto(s["grid_real"][:nb], dy)  # the widened positions stay zero
    return s["grid"][:nb]


def _taps(spec: ConvSpec):
    """``(k, index)`` for every kernel tap: the padded positions tap ``k`` reads, ``(slice(None), slice(None), *per dim)``."""
    for k in np.ndindex(*spec.kernel_size):
        # tap k reads k*D, k*D + S, ..., k*D + (H_out-1)*S along each dim
        yield k, (slice(None), slice(None),
                  *(slice(kk * d, kk * d + (o - 1) * st + 1, st)
                    for kk, d, o, st in zip(k, spec.dilation, spec.output_size, spec.stride)))


class SampleGemm(Algorithm):
    """Per-sample im2col and stacked products (see the module docstring for the formulas).

    Examples
    --------
    LeNet's first layer on two digits, against the reference loops:

    >>> import numpy as np
    >>> from convgrad import algorithms
    >>> from convgrad.spec import conv_spec
    >>> spec = conv_spec((2, 1, 28, 28), (6, 1, 5, 5), padding=2)
    >>> rng = np.random.default_rng(0)
    >>> x, w = rng.standard_normal(spec.input_shape), rng.standard_normal(spec.weight_shape)
    >>> y = algorithms.run("forward", spec, x, w, "samplegemm")
    >>> y.shape, bool(np.allclose(y, algorithms.run("forward", spec, x, w, "direct"), atol=1e-12))
    ((2, 6, 28, 28), True)
    >>> dy = rng.standard_normal(spec.output_shape)
    >>> dw = algorithms.run("grad_weight", spec, x, dy, "samplegemm")
    >>> bool(np.allclose(dw, algorithms.run("grad_weight", spec, x, dy, "direct"), atol=1e-10))
    True
    """

    name = "samplegemm"
    bias_ops = frozenset({"forward"})

    def work(self, spec: ConvSpec, op: str) -> Work:
        if op == "grad_input" and flipped(spec) is not None:
            return self.work(flipped(spec), "forward")
        geo = geometry(spec)
        n, G, og, cg = spec.batch, spec.groups, spec.out_per_group, spec.in_per_group
        T, p = geo.taps, geo.length
        flops = 2.0 * n * G * og * cg * T * p
        # one BLAS call per sample and group: its columns are one sample's grid positions
        k, m = {"forward": (cg * T, min(og, p)), "grad_input": (og, min(cg * T, p)), "grad_weight": (p, min(og, cg * T))}[op]
        cols = n * geo.cols
        outputs = n * spec.out_channels * math.prod(spec.output_size)
        elem = cols + 2 * n * geo.padded + 2 * n * geo.grid
        # blocks of rows: the forward, the accumulated weight gradient (an input gradient that gets
        # here is col2im, never blocked; the flipped one was redirected to the forward above)
        blocked = block_rows(geo, 4) and (op == "forward" or op == "grad_weight" and _accumulates(spec))
        if not blocked and geo.cols * 4 > SPILL_BYTES:
            # one sample's matrix is beyond the cache: written to memory and read back by BLAS (layer h,
            # 64 channels x 9 taps x 16000: 37 MB a sample, forward 1.15x tapgemm's time, which copies nothing)
            elem += SPILL * cols
        if spec.stride[-1] > 1:
            # gathers/scatters of single values, not runs. With one tap (a strided 1x1) the matrix is
            # only the subsampled input, which tapgemm's phase split copies as well and then multiplies
            # without a stacked product: measured 1.05-1.3x faster there (ResNet-8's projections), so
            # the gathers count as much as in the other algorithms' copies (~12x this one's coefficient)
            elem += (24 if T == 1 else 2) * cols * (2 if op == "grad_input" else 1)
        if op == "grad_input":
            # col2im: dcol written by BLAS, then read and added into dx, one strided pass per tap;
            # fitted (costmodel.py): about eight passes over dcol's size in all
            elem += 8 * cols
        if op == "grad_weight" and not _accumulates(spec):
            elem += n * G * og * cg * T  # the per-sample products, summed
        # the copies move runs of L values (flat), else of W_out (NumPy's inner loop, strided at stride > 1)
        run = geo.length if geo.flat else spec.output_size[-1]
        runs = cols / max(1, run) * (2 if op == "grad_input" else 1) + outputs / spec.output_size[-1]
        chunks = len(chunks_for(spec, 4).plan.chunks())
        calls = n * G * SAMPLE_CALLS + chunks * (6 + len(geo.zeros) + (T if op == "grad_input" else 0))
        if blocked:
            calls += n * len(chunks_for(spec, 4).blocks) * (3 + len(geo.zeros))
        return Work(flops / efficiency(k, m), elem, calls, runs=runs)

    def examples(self):
        return (conv_spec((4, 1, 12, 12), (6, 1, 5, 5), padding=2),  # LeNet's first layer, smaller
                conv_spec((4, 6, 14, 14), (16, 6, 5, 5)),  # LeNet's second layer
                conv_spec((5, 4, 9, 8), (6, 2, 3, 3), dilation=(2, 1), padding=[(1, 2), (0, 1)], groups=2),
                conv_spec((5, 4, 7, 6), (6, 2, 3, 3), dilation=(1, 2), padding=[(2, 0), (2, 2)], groups=2),  # 'same'
                conv_spec((5, 4, 9, 8), (6, 2, 3, 3), stride=(1, 2), dilation=(2, 1), padding=1, groups=2),
                conv_spec((3, 2, 11), (4, 2, 2), stride=3, padding=[(0, 2)]),  # 1-D, unread tail and holes
                conv_spec((3, 2, 11), (4, 2, 3), dilation=2, padding=1),  # 1-D flat
                conv_spec((2, 3, 4, 5, 6), (4, 3, 2, 3, 3), padding=(0, 0, 1)),  # 3-D flat: widened grid
                conv_spec((2, 3, 4, 5, 6), (4, 3, 2, 3, 3), padding=(0, 0, 1), stride=(1, 1, 2)))

    def spreads_nonfinite(self, op):
        # flat grids: the widened positions hold zeros (dy) that multiply operand values
        return op != "forward"

    def forward(self, x, w, spec, bias=None):
        if _empty(spec):
            return Gemm().forward(x, w, spec, bias)
        G, og = spec.groups, spec.out_per_group
        wg = np.ascontiguousarray(w.reshape(G, og, -1))  # (G, O_g, C_g*K)
        y = np.empty(spec.output_shape, dtype=x.dtype)
        chunks = chunks_for(spec, x.itemsize)
        geo = chunks.geo
        whole = None if geo.padded else windows(x, geo)
        bias_b = None if bias is None else bias.reshape((1, -1) + (1,) * spec.ndim)

        def blocked(s, n0, n1):
            load(x, n0, n1, geo, s)  # one sample, one group (block_rows is 0 otherwise)
            yn = y[n0].reshape(og, geo.length)  # (O, L)
            for p0, p1 in chunks.blocks:
                matrix, _ = block_columns(s, geo, p0, p1)
                np.matmul(wg[0], matrix, out=yn[:, p0:p1])  # (O, C*K) @ (C*K, P)
            if bias_b is not None:
                y[n0:n1] += bias_b

        def process(s, n0, n1):
            nb = n1 - n0
            cols = columns(x, whole, n0, n1, geo, s)  # (nb, G, C_g*K, L)
            if geo.grid:
                np.matmul(wg, cols, out=s["grid"][:nb].reshape(nb, G, og, -1))  # (nb, G, O_g, L)
                src = s["grid_real"][:nb]  # (nb, O, *Hout), a view
                if bias_b is None:
                    np.copyto(y[n0:n1], src)
                else:
                    np.add(src, bias_b, out=y[n0:n1])
                return
            np.matmul(wg, cols, out=y[n0:n1].reshape(nb, G, og, -1))  # (nb, G, O_g, P): y itself
            if bias_b is not None:
                y[n0:n1] += bias_b

        parallel.run_chunks(chunks.plan, lambda: chunks.scratch(x.dtype), blocked if chunks.blocks else process)
        return y

    def grad_weight(self, x, dy, spec):
        if _empty(spec):
            return Gemm().grad_weight(x, dy, spec)
        G, og = spec.groups, spec.out_per_group
        rows = spec.in_per_group * math.prod(spec.kernel_size)
        if _accumulates(spec, dy):
            return self._grad_weight_accumulated(x, dy, spec)
        chunks = chunks_for(spec, x.itemsize, G * og * rows, G * og * rows * x.itemsize, blocked=False)
        geo = chunks.geo
        whole = None if geo.padded else windows(x, geo)

        def scratch():
            s = chunks.scratch(x.dtype)
            s["dw"] = np.zeros((G, og, rows), dtype=x.dtype)  # this worker's partial sum
            s["extra"] = s["extra"].reshape(-1, G, og, rows)  # (chunk, G, O_g, C_g*K): the per-sample products
            return s

        def process(s, n0, n1):
            nb = n1 - n0
            cols = columns(x, whole, n0, n1, geo, s)  # (nb, G, C_g*K, L)
            d = output_grid(dy[n0:n1], geo, s).reshape(nb, G, og, -1)  # (nb, G, O_g, L)
            per_sample = s["extra"][:nb]
            np.matmul(d, cols.transpose(0, 1, 3, 2), out=per_sample)
            s["dw"] += per_sample.sum(axis=0)

        dw = parallel.run_chunks(chunks.plan, scratch, process, reduce=("dw",))["dw"]
        return dw.reshape(spec.weight_shape)

    def _grad_weight_accumulated(self, x, dy, spec):
        """One group: each sample's product added straight into the worker's sum (BLAS ``beta = 1``)."""
        og, rows = spec.out_channels, spec.in_channels * math.prod(spec.kernel_size)
        chunks = chunks_for(spec, x.itemsize, 0, og * rows * x.itemsize)
        geo = chunks.geo
        L = geo.length
        whole = None if geo.padded else windows(x, geo)
        dyb = None if geo.grid else blas.Buffer(dy.reshape(-1, L))  # (N*O, L): dy as it is

        def scratch():
            s = chunks.scratch(x.dtype)
            s["dw"] = np.zeros((og, rows), dtype=x.dtype)  # this worker's partial sum
            s["sum"] = blas.Buffer(s["dw"]).block(0, og, 0, rows)
            if chunks.blocks:
                return s
            s["colsb"] = blas.Buffer(s["cols"].reshape(-1, L))  # (chunk*C*K, L)
            if geo.grid:
                s["gridb"] = blas.Buffer(s["grid"].reshape(-1, L))  # (chunk*O, L)
            return s

        def blocked(s, n0, n1):
            load(x, n0, n1, geo, s)  # one sample
            for p0, p1 in chunks.blocks:
                _, buffer = block_columns(s, geo, p0, p1)
                # dw += dy[n][:, p0:p1] @ cols_block.T                    (O, P) @ (P, C*K)
                blas.gemm_blocks(dyb.block(n0 * og, (n0 + 1) * og, p0, p1), buffer.block(0, rows, 0, p1 - p0).T,
                                 s["sum"], beta=1.0)

        def process(s, n0, n1):
            columns(x, whole, n0, n1, geo, s)  # into s["cols"]
            if geo.grid:
                output_grid(dy[n0:n1], geo, s)  # into s["grid"]
                d, first = s["gridb"], 0
            else:
                d, first = dyb, n0
            cols, total = s["colsb"], s["sum"]
            for i in range(n1 - n0):
                # dw += dy[n] @ cols[n].T                                (O, L) @ (L, C*K)
                blas.gemm_blocks(d.block((first + i) * og, (first + i + 1) * og, 0, L),
                                 cols.block(i * rows, (i + 1) * rows, 0, L).T, total, beta=1.0)

        dw = parallel.run_chunks(chunks.plan, scratch, blocked if chunks.blocks else process, reduce=("dw",))["dw"]
        return dw.reshape(spec.weight_shape)

    def grad_input(self, dy, w, spec):
        if _empty(spec):
            return Gemm().grad_input(dy, w, spec)
        spec_t = flipped(spec)
        if spec_t is not None:
            # a forward over dy (im2col of dy, one product into dx) instead of K passes of col2im
            return self.forward(dy, flip(w, spec), spec_t)
        G, og, c = spec.groups, spec.out_per_group, spec.in_channels
        wt = np.ascontiguousarray(w.reshape(G, og, -1).transpose(0, 2, 1))  # (G, C_g*K, O_g)
        chunks = chunks_for(spec, dy.itemsize, blocked=False)
        geo = chunks.geo
        dx = (np.empty if _covers(spec) or geo.halo else np.zeros)(spec.input_shape, dtype=dy.dtype)
        taps = list(_taps(spec))
        span = math.prod(spec.read_span)

        def process(s, n0, n1):
            nb = n1 - n0
            dcol = s["cols"][:nb].reshape(nb, G, wt.shape[1], geo.length)
            np.matmul(wt, output_grid(dy[n0:n1], geo, s).reshape(nb, G, og, -1), out=dcol)  # (nb, G, C_g*K, L)
            if geo.flat:
                unwrap(dcol, geo)  # (unpadded layout) what would add into a neighbouring row
                dcol = dcol.reshape(nb, c, geo.taps, geo.length)  # (nb, C, K, L)
                dxp = s["padded"][:nb]  # (nb, C, row)
                dxp[...] = 0
                for t, off in enumerate(geo.offsets):
                    start = geo.front + off
                    dxp[:, :, start : start + geo.length] += dcol[:, :, t]  # (nb, C, L): contiguous runs
                if geo.halo:
                    np.copyto(dx[n0:n1].reshape(nb, c, -1), dxp[:, :, geo.front : geo.front + math.prod(spec.input_size)])
                    return
                dxp = dxp[:, :, :span].reshape((nb, c, *spec.read_span))
            else:
                dcol = dcol.reshape((nb, c, *spec.kernel_size, *spec.output_size))  # (nb, C, *K, *Hout)
                dxp = s["padded"][:nb].reshape((nb, c, *spec.read_span)) if geo.padded else dx[n0:n1]
                dxp[...] = 0
                for k, target in taps:
                    dxp[target] += dcol[(slice(None), slice(None), *k)]  # (nb, C, *Hout)
                if not geo.padded:
                    return
            dx[n0:n1][(slice(None), slice(None), *_kept(spec))] = dxp[(slice(None), slice(None), *_inner(spec))]

        parallel.run_chunks(chunks.plan, lambda: chunks.scratch(dy.dtype), process)
        return dx


register(SampleGemm())
