"""``chunkgemm``: ``gemm``'s im2col with the batch innermost, one whole pipeline per batch chunk and worker.

``gemm`` builds one im2col matrix for the whole batch and hands a single product to the
workers (:func:`convgrad.parallel.matmul`): the copies before and after it (the batch-last
transposition, the im2col copy, the batch-first result) run on one core while the other
waits. Here the batch is cut into chunks (one per worker when the workspace allows it), and
each worker runs the whole operation on its chunk of ``nb`` elements in its own scratch: with
``xp[c, *h, b]`` the chunk zero-padded to the read span, batch last, ``K`` the product of the
kernel sizes and ``P`` of the output sizes,

    cols[g][(c, k), (i, b)] = xp[g*C_g + c, i*S + k*D, b]        (G, C_g*K, P*nb)

    forward      y  [g]    = w[g]    @ cols[g]              (O_g, C_g*K) @ (C_g*K, P*nb)
    grad_weight  dw [g].T += cols[g] @ dy_rows[g]           (C_g*K, P*nb) @ (P*nb, O_g)
    grad_input   dcol[g]   = w[g].T  @ dy[g]                (C_g*K, O_g) @ (O_g, P*nb)

and the forward's result is written straight into the chunk's rows of ``y`` (batch first, bias
added in the same pass); ``dx`` is ``dcol`` added back tap by tap (col2im over the kernel taps,
as in ``gemm``) and written into the chunk's rows of ``dx``; each worker sums its chunks' weight
gradient, and the workers' sums are added at the end. Positions no window reads are never
written: their gradient is exactly zero.

Where it pays: small layers, whose operations take about a millisecond. Layer g2 (LeNet's
second convolution: 6 -> 16 channels, 14x14, 5x5, batch 64), float32, one core: ``gemm`` forward
1.3 ms, this pipeline 1.0 ms (the products alone 0.65 ms); on two cores 0.63-0.72 ms, where
``gemm`` and ``rowgemm`` took 1.4-2.6 ms (the copies on one core, and per-tap products).

Cost: each chunk's ``cols`` holds ``K`` times its input; the chunks are sized to the workspace
limit (:func:`convgrad.parallel.plan`), so any batch fits.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .. import blas, parallel, workspace
from ..spec import ConvSpec, conv_spec
from .base import Algorithm
from .gemm import _covers, _inner, _kept, im2col_work
from .registry import register
from .rowgemm import _empty, _take, padded_input
from .work import Work


@functools.lru_cache(maxsize=256)
def _sizes(spec: ConvSpec) -> dict[str, int]:
    """Scratch elements per batch element: the padded input, the im2col matrix and the output side."""
    p, T = math.prod(spec.output_size), math.prod(spec.kernel_size)
    return {"padded": spec.in_channels * math.prod(spec.read_span),
            "cols": spec.in_channels * T * p,
            "out": spec.out_channels * p}


class _Chunks:
    """The batch chunks of one operation, and each worker's scratch (sized for the largest chunk)."""

    def __init__(self, spec: ConvSpec, itemsize: int, fixed: int = 0):
        self.spec = spec
        self.per_item = _sizes(spec)
        # one chunk per worker when it fits: each chunk costs Python calls, and smaller products
        # run slower (g2 forward, one core: 1.10 ms in one chunk, 1.22 ms in four)
        self.plan = parallel.plan(spec.batch, sum(self.per_item.values()) * itemsize, fixed, min_chunks_per_worker=1)

    def scratch(self, dtype) -> dict[str, np.ndarray]:
        # each worker's own buffers for all its chunks: workspace blocks, kept from call to call
        # (fresh megabytes would cost page faults on every call)
        return {name: workspace.empty(size * self.plan.chunk, dtype) for name, size in self.per_item.items()}

    def matmul(self):
        """The product each chunk uses: plain NumPy on the workers (BLAS is single-threaded there);
        with one worker, :func:`convgrad.parallel.matmul` (its single product is split over the threads)."""
        if self.plan.workers > 1:
            return lambda a, b, out: np.matmul(a, b, out=out)
        return parallel.matmul


def window_columns(xp: np.ndarray, spec: ConvSpec, flat: np.ndarray) -> np.ndarray:
    """The im2col matrix of the padded batch-last chunk ``xp`` ``(C, *span, nb)``: ``(G, C_g*K, P*nb)``, in ``flat``."""
    G, cg, nb = spec.groups, spec.in_per_group, xp.shape[-1]
    sc, *ss, sn = xp.strides
    shape = (G, cg, *spec.kernel_size, *spec.output_size, nb)  # (G, C_g, *K, *Hout, nb)
    strides = (cg * sc, sc, *(d * s for d, s in zip(spec.dilation, ss)), *(st * s for st, s in zip(spec.stride, ss)), sn)
    cols = _take(flat, shape)
    np.copyto(cols, as_strided(xp, shape, strides, writeable=False))
    return cols.reshape(G, cg * math.prod(spec.kernel_size), math.prod(spec.output_size) * nb)


def _taps(spec: ConvSpec) -> list[tuple]:
    """Per kernel tap ``k``: the index of the padded positions it reads, ``k*D, k*D + S, ...`` (leading axis: any)."""
    return [(slice(None), *(slice(kk * d, kk * d + (o - 1) * s + 1, s)
                            for kk, d, o, s in zip(k, spec.dilation, spec.output_size, spec.stride)))
            for k in np.ndindex(*spec.kernel_size)]


class ChunkGemm(Algorithm):
    name = "chunkgemm"
    elem_coefficient = "gemm_im2col"
    bias_ops = frozenset({"forward"})
    #: Its workers run whole chunks, so it goes on every core from half a millisecond on
    #: (the dispatcher's ``SMALL_WORK`` is 1 ms): LeNet's layers take about one.
    small_work = 5e-4

    def work(self, spec: ConvSpec, op: str) -> Work:
        # gemm's passes and products, on chunks: a few calls per chunk instead of one product split over the workers
        return im2col_work(spec, op)

    def examples(self):
        return (conv_spec((4, 6, 14, 14), (16, 6, 5, 5)),  # LeNet's second layer, the regime it is for
                conv_spec((5, 4, 9, 8), (6, 2, 3, 3), stride=(1, 2), dilation=(2, 1), padding=1, groups=2),
                conv_spec((3, 2, 7), (4, 2, 3), stride=2, padding=((2, 1),)))

    def forward(self, x, w, spec, bias=None):
        G, og = spec.groups, spec.out_per_group
        wg = w.reshape(G, og, -1)  # (G, O_g, C_g*K)
        y = np.empty(spec.output_shape, dtype=x.dtype)
        if _empty(spec):
            y[...] = 0 if bias is None else bias.reshape((1, -1) + (1,) * spec.ndim)
            return y
        chunks = _Chunks(spec, x.itemsize)
        matmul = chunks.matmul()
        p = math.prod(spec.output_size)

        def process(s, n0, n1):
            nb = n1 - n0
            cs = _chunk_spec(spec, nb)
            cols = window_columns(padded_input(x[n0:n1], cs, s["padded"]), cs, s["cols"])
            yc = _take(s["out"], (G, og, p * nb))
            for g in range(G):
                matmul(wg[g], cols[g], yc[g])
            src = np.moveaxis(yc.reshape(spec.out_channels, *spec.output_size, nb), -1, 0)  # (nb, O, *Hout), a view
            if bias is None:
                np.copyto(y[n0:n1], src)
            else:
                np.add(src, bias.reshape((1, -1) + (1,) * spec.ndim), out=y[n0:n1])

        with blas.single_threaded():
            parallel.run_chunks(chunks.plan, lambda: chunks.scratch(x.dtype), process)
        return y

    def grad_weight(self, x, dy, spec):
        G, og, cg = spec.groups, spec.out_per_group, spec.in_per_group
        rows = cg * math.prod(spec.kernel_size)
        if _empty(spec):
            return np.zeros(spec.weight_shape, dtype=x.dtype)
        chunks = _Chunks(spec, x.itemsize, fixed=G * rows * og * x.itemsize)
        matmul = chunks.matmul()
        p, nd = math.prod(spec.output_size), spec.ndim

        def scratch():
            s = chunks.scratch(x.dtype)
            s["dw"] = np.zeros((G, rows, og), dtype=x.dtype)  # this worker's partial sum, (G, C_g*K, O_g)
            s["part"] = workspace.empty((rows, og), x.dtype)
            return s

        def process(s, n0, n1):
            nb = n1 - n0
            cs = _chunk_spec(spec, nb)
            cols = window_columns(padded_input(x[n0:n1], cs, s["padded"]), cs, s["cols"])
            # dy as rows: [g, (i, b), o] = dy[b, g*O_g + o, i]; BLAS runs cols @ rows faster than rows.T @ cols.T
            dyr = _take(s["out"], (G, *spec.output_size, nb, og))
            src = dy[n0:n1].reshape(nb, G, og, *spec.output_size)  # (nb, G, O_g, *Hout)
            np.copyto(dyr, src.transpose(1, *range(3, 3 + nd), 0, 2))
            dyr = dyr.reshape(G, p * nb, og)
            for g in range(G):
                matmul(cols[g], dyr[g], s["part"])
                s["dw"][g] += s["part"]

        with blas.single_threaded():
            dwt = parallel.run_chunks(chunks.plan, scratch, process, reduce=("dw",))["dw"]
        dw = np.empty((G, og, rows), dtype=x.dtype)
        np.copyto(dw, dwt.transpose(0, 2, 1))
        return dw.reshape(spec.weight_shape)

    def grad_input(self, dy, w, spec):
        G, og, cg, c = spec.groups, spec.out_per_group, spec.in_per_group, spec.in_channels
        dx = (np.empty if _covers(spec) else np.zeros)(spec.input_shape, dtype=dy.dtype)
        if _empty(spec):
            dx[...] = 0
            return dx
        wt = w.reshape(G, og, -1).transpose(0, 2, 1)  # (G, C_g*K, O_g), a view
        chunks = _Chunks(spec, dy.itemsize)
        matmul = chunks.matmul()
        p, taps = math.prod(spec.output_size), _taps(spec)

        def process(s, n0, n1):
            nb = n1 - n0
            dyc = _take(s["out"], (spec.out_channels, *spec.output_size, nb))
            np.copyto(dyc, np.moveaxis(dy[n0:n1], 0, -1))
            dyc = dyc.reshape(G, og, p * nb)
            dcols = _take(s["cols"], (G, wt.shape[1], p * nb))
            for g in range(G):
                matmul(wt[g], dyc[g], dcols[g])
            dcol = dcols.reshape(c, math.prod(spec.kernel_size), *spec.output_size, nb)  # (C, K, *Hout, nb)
            dxp = _take(s["padded"], (c, *spec.read_span, nb))  # (C, *span, nb)
            dxp[...] = 0
            for t, target in enumerate(taps):
                dxp[target] += dcol[:, t]
            np.moveaxis(dx[n0:n1], 0, -1)[(slice(None), *_kept(spec), slice(None))] = \
                dxp[(slice(None), *_inner(spec), slice(None))]

        with blas.single_threaded():
            parallel.run_chunks(chunks.plan, lambda: chunks.scratch(dy.dtype), process)
        return dx


@functools.lru_cache(maxsize=256)
def _chunk_spec(spec: ConvSpec, batch: int) -> ConvSpec:
    """``spec`` for a chunk of ``batch`` elements (cached: ``dataclasses.replace`` costs microseconds)."""
    import dataclasses

    return spec if batch == spec.batch else dataclasses.replace(spec, batch=batch)


register(ChunkGemm())
