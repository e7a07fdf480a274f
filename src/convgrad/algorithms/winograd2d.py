"""``winograd2d``: Winograd's F(2x2, 3x3) on 2-D 3x3 stride-1 convolutions, gathered 4x4 tiles, 16 products.

A 3x3 correlation computes a 2x2 block of outputs from a 4x4 tile ``d`` of the (padded) input
with 16 multiplications instead of 36 (Lavin & Gray, "Fast Algorithms for Convolutional Neural
Networks", 2016), with the matrices of ``winograd``'s 1-D F(2, 3) applied along both dims::

    Y = AT [ (G g GT) * (BT d B) ] A         BT = [[1, 0,-1, 0],   G = [[ 1,   0,   0 ],   AT = [[1, 1, 1, 0],
                                                   [0, 1, 1, 0],        [1/2, 1/2, 1/2],         [0, 1,-1,-1]]
                                                   [0,-1, 1, 0],        [1/2,-1/2, 1/2],
                                                   [0, 1, 0,-1]]        [ 0,   0,   1 ]]

Summed over the input channels, each of the 16 transformed positions ``k = (a, b)`` of a tile is
one matrix product over all tiles ``P = (n, i, j)`` of a chunk of the batch::

    U[k] = (G w GT)[k]            (O_g, C_g)          per group
    V[k] = (BT d B)[k]            (C_g, P)            tile (i, j) of sample n reads padded rows 2i..2i+3, cols 2j..2j+3
    M[k] = U[k] @ V[k]            (O_g, P)
    y[n, :, 2i+r, 2j+s] = (AT M A)[r, s]

so a 3x3 layer does 16 products' worth of ``O_g x C_g`` per 2x2 outputs instead of 36: 2.25x
fewer multiplications than a direct (im2col) product, for elementwise transforms of the input
(``4 + 16`` whole-array passes: rows, then columns) and of the output (``16 + 8``).

``grad_input`` is the forward of the transposed problem (``dy`` correlated with the flipped
kernel, :func:`convgrad.reparam.grad_input_as_forward`: at stride 1 there is no input dilation).
``grad_weight`` is the exact adjoint of the forward formula::

    dM[k] = (A dY AT)[k]          (O_g, P)            dY the 2x2 output tile of dy (zero beyond the output);
                                                      rows 0 and 3 of A dY are dy's own (negated by the products' alpha)
    dU[k] = sum_P dM[k] @ V[k].T  (O_g, C_g)          per-worker partial sums
    dw    = GT dU G

so all three operations are exact in exact arithmetic. In float32 the error stays within a small
factor of PyTorch's (the transforms' entries are 0, +-1/2, +-1; measured in
``tests/test_winograd2d.py``).

**Layout.** A chunk of ``nb`` samples is copied channel first into four zero-padded parity planes
``xp[rp, cp] = padded[:, :, rp::2, cp::2]``, ``(C, nb, th + 1, tw + 1)`` each (``th, tw =
ceil(H_out/2), ceil(W_out/2)`` tiles; the padding and anything beyond the input stay zero from
chunk to chunk). Row ``a`` of tile ``i`` is then row ``i + a//2`` of plane ``rp = a % 2``: the row
transform is four passes over whole planes. Column ``b`` of tile ``j`` is flat position
``j + b//2`` of the column-parity-``b % 2`` plane, so the column transform is 16 passes over flat
rows ``(C, P)`` with ``P = nb * th * (tw + 1)``: one margin tile column per tile row, computed and
dropped (6 % of the columns at 32x32, 25 % at 8x8 -- the alternative, runs of ``tw`` values,
measured 3-5x slower for that pass). ``V`` and the products are made one block of columns at a
time; each product is one BLAS call over the block. The output transform writes the four output
phases ``y[..., r::2, s::2]`` (cropped at odd sizes: the last tile row or column is partly outside
the output). Chunks run on convgrad's workers with BLAS on one thread
(:func:`convgrad.parallel.run_chunks`).

**Speed.** The products have ``K = C_g`` where an im2col has ``9 C_g``: OpenBLAS runs them at
35-45 GFLOP/s per core with 32 channels (against ~80 for im2col's), and the transforms are
memory-bound NumPy passes, so the 2.25x fewer multiplications pay off only on wide layers
(measured faster from 128-256 channels; see the README's algorithm table).

**Non-finite values.** A tile mixes its 16 inputs, so a NaN or inf would reach outputs that do
not read it: :meth:`Winograd2D.spreads_nonfinite` tells the dispatcher, which recomputes a
non-finite result with an algorithm that keeps them in place (see :func:`convgrad.algorithms.run`).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from .. import blas, parallel, workspace
from ..reparam import grad_input_as_forward, grad_input_kernel, zero_unread
from ..spec import ConvSpec, conv_spec
from .base import Algorithm
from .registry import register
from .work import Work, efficiency


#: Bytes of one block of ``V`` and ``M`` (16 planes each), and at least :data:`MIN_WIDTH` columns:
#: thin products lose more than the cache gains (measured, one core, OpenBLAS sgemm (32, 32) @ (32, N):
#: 15 GFLOP/s at N = 128, 25 at 512, 64 at 4352; blocks of 128-512 columns made the layer slower).
BLOCK_BYTES = 2**22
MIN_WIDTH = 2048
#: Bytes of one chunk's parity planes and row-transformed planes (input and output side).
CHUNK_BYTES = 2**23


class _Geometry:
    """The tiles of a stride-1 3x3 correlation with low padding ``lo`` (per dim, may be negative).

    Output ``(u, v)`` reads padded positions ``u..u+2, v..v+2``; input element ``s`` sits at padded
    position ``s + lo``. ``tiles = (th, tw)`` 2x2 output blocks per sample. The padded grid
    ``(2*th + 2, 2*tw + 2)`` is kept split by the parity of the row and of the column:
    ``xp[rp, cp, c, n, I, Q] = padded[c, n, 2*I + rp, 2*Q + cp]``, ``(th + 1, tw + 1)`` per plane.
    ``width = tw + 1`` tile columns per tile row: the last one is a margin whose results are dropped.
    ``scatter[d][par]`` is ``(input slice, plane slice)`` of the real elements of parity ``par`` along dim ``d``.
    """

    def __init__(self, lo, size, out):
        self.out = tuple(out)
        self.tiles = th, tw = tuple(-(-o // 2) for o in out)
        self.width = tw + 1
        self.T = th * self.width  # columns per sample, margins included
        self.scatter = []
        for l, n, t in zip(lo, size, self.tiles):
            per = []
            for par in (0, 1):
                s0 = max(0, -l)
                s0 += (par - (s0 + l)) % 2  # first input whose padded position has parity par
                s1 = min(n, 2 * t + 2 - l)
                cnt = max(0, (s1 - s0 + 1) // 2)
                m0 = (s0 + l) // 2
                per.append((slice(s0, s0 + 2 * cnt - 1, 2), slice(m0, m0 + cnt)) if cnt else None)
            self.scatter.append(per)
        # output (r, s) of every tile: how many of the th x tw are real
        self.kept = [[(-(-(out[0] - r) // 2), -(-(out[1] - c) // 2)) for c in (0, 1)] for r in (0, 1)]


@functools.lru_cache(maxsize=256)
def _geometry(lo, size, out) -> _Geometry:
    return _Geometry(lo, size, out)


class _Plan:
    """Chunks of the batch and column blocks of one operation.

    Per chunk of ``nb`` samples a worker holds the parity planes of the input and the row-transformed
    planes (``P = nb * T`` columns each); ``V`` and the products ``M`` are made one block of
    ``width`` columns at a time, so that the products read ``V`` from the cache the column pass
    left it in, and the output transform reads ``M`` the same way.
    """

    def __init__(self, geo: _Geometry, c: int, o: int, batch: int, itemsize: int, fixed: int):
        width = max(MIN_WIDTH, BLOCK_BYTES // (16 * (c + o) * itemsize))
        th, _ = geo.tiles
        per_item = (4 * c * (th + 1) * geo.width + 8 * c * geo.T + 8 * o * geo.T) * itemsize
        cap = max(1, CHUNK_BYTES // per_item)
        block = 16 * (c + o) * min(width, cap * geo.T) * itemsize
        self.chunking = parallel.plan(batch, per_item, fixed + block, min_chunks_per_worker=1, max_chunk=cap)
        self.chunk = self.chunking.chunk
        self.width = min(width, self.chunk * geo.T)

    def blocks(self, p: int):
        """``(start, stop)`` of ``p`` columns in blocks of at most ``width``, as even as can be (no thin last block)."""
        count = -(-p // self.width)
        bounds = [p * i // count for i in range(count + 1)]
        return list(zip(bounds[:-1], bounds[1:]))


def _input_scratch(geo: _Geometry, c: int, pl: _Plan, dtype) -> dict:
    th, _ = geo.tiles
    v = workspace.empty((16 * c, pl.width), dtype)  # plane k of a block at rows [k*C, (k+1)*C)
    return {"padded": workspace.zeros((2, 2, c, pl.chunk, th + 1, geo.width), dtype),  # zeros outside the input stay
            # after the row transform, per column parity; one more column: a margin reads one beyond
            "rows": workspace.empty((4, 2, c, pl.chunk * geo.T + 1), dtype),
            "v": v, "v_buf": blas.Buffer(v)}


def _row_transform(x: np.ndarray, geo: _Geometry, s: dict) -> None:
    """``BT d`` of every tile of the chunk ``x`` ``(nb, C, H, W)`` into ``s["rows"]`` ``(4, 2, C, >= nb*T + 1)``.

    Row ``a`` of tile ``i`` is row ``i + a//2`` of the row-parity ``a % 2`` plane of the padded
    input: four passes over whole planes, both column parities at once.
    """
    nb, c = x.shape[:2]
    th, _ = geo.tiles
    p = nb * geo.T
    xp = s["padded"][:, :, :, :nb]  # (2, 2, C, nb, th+1, tw+1)
    xt = x.transpose(1, 0, 2, 3)  # (C, nb, H, W)
    for rp, rows in enumerate(geo.scatter[0]):
        for cp, cols in enumerate(geo.scatter[1]):
            if rows is not None and cols is not None:
                xp[rp, cp, :, :, rows[1], cols[1]] = xt[:, :, rows[0], cols[0]]
    d = [xp[a % 2, :, :, :, a // 2 : a // 2 + th] for a in range(4)]  # row a of every tile: (2, C, nb, th, tw+1)
    t = s["rows"]
    tv = [t[a, :, :, :p].reshape(d[0].shape) for a in range(4)]
    np.subtract(d[0], d[2], out=tv[0])  # BT = [[1, 0,-1, 0],
    np.add(d[1], d[2], out=tv[1])  #            [0, 1, 1, 0],
    np.subtract(d[2], d[1], out=tv[2])  #       [0,-1, 1, 0],
    np.subtract(d[1], d[3], out=tv[3])  #       [0, 1, 0,-1]]
    t[:, :, :, p] = 0  # what the last margin tile reads beyond the chunk: finite (its dM is 0, and 0 * nan = nan)


def _column_transform(s: dict, c: int, b0: int, b1: int) -> None:
    """``V = (BT d) B`` of the tiles ``[b0, b1)`` of the chunk into ``s["v"]`` ``(16*C, >= b1 - b0)``.

    Column ``b`` of tile ``j`` is flat position ``j + b//2`` of the column-parity ``b % 2`` plane
    (the margin column makes ``j + 1`` valid for every tile).
    """
    t, n = s["rows"], b1 - b0
    v = s["v"][:, :n].reshape(16, c, n)  # (16, C, n)
    for a in range(4):
        e0, e1 = t[a, 0, :, b0:b1], t[a, 0, :, b0 + 1 : b1 + 1]  # columns 2j and 2j + 2 of every tile
        o0, o1 = t[a, 1, :, b0:b1], t[a, 1, :, b0 + 1 : b1 + 1]  # columns 2j + 1 and 2j + 3
        np.subtract(e0, e1, out=v[4 * a])  # ... B on the right
        np.add(o0, e1, out=v[4 * a + 1])
        np.subtract(e1, o0, out=v[4 * a + 2])
        np.subtract(o0, o1, out=v[4 * a + 3])


def _g_rows(t: np.ndarray, out: np.ndarray) -> None:
    """``out[a] = sum_i G[a, i] t[i]`` along the first axis (3 -> 4), a few whole-array passes."""
    h = t[0] + t[2]
    h *= 0.5
    k = t[1] * 0.5
    np.copyto(out[0], t[0])  # G = [[ 1,   0,   0 ],
    np.add(h, k, out=out[1])  #     [1/2, 1/2, 1/2],
    np.subtract(h, k, out=out[2])  # [1/2,-1/2, 1/2],
    np.copyto(out[3], t[2])  #      [ 0,   0,   1 ]]


def _gt_rows(d: np.ndarray, out: np.ndarray) -> None:
    """``out[i] = sum_a G[a, i] d[a]`` along the first axis (4 -> 3): the adjoint of :func:`_g_rows`."""
    h = d[1] + d[2]
    h *= 0.5
    np.add(d[0], h, out=out[0])
    np.subtract(d[1], d[2], out=out[1])
    out[1] *= 0.5
    np.add(h, d[3], out=out[2])


def _weight_transform(w: np.ndarray, groups: int) -> np.ndarray:
    """``U = G w GT``: ``(O, C_g, 3, 3)`` -> ``(16*G*O_g, C_g)``, rows ``(k*G + g)*O_g + o`` (``k = 4a + b``)."""
    o, cg = w.shape[:2]
    # scratch from the workspace: fresh memory would cost a page fault per page (1 MiB at 128 x 128)
    wt = workspace.empty((3, 3, o, cg), w.dtype)  # (i, j, O, C_g): the passes run contiguous
    np.copyto(wt.reshape(9, o * cg), w.reshape(o * cg, 9).T)
    t = workspace.empty((4, 3, o, cg), w.dtype)
    _g_rows(wt, t)  # G along the kernel's rows: (a, j, O, C_g)
    u = workspace.empty((4, 4, o, cg), w.dtype)
    for a in range(4):
        _g_rows(t[a], u[a])  # ... and along its columns: (a, b, O, C_g)
    return u.reshape(16 * o, cg)  # O = G*O_g in order: rows (k*G + g)*O_g + o


def _weight_gradient_transform(du: np.ndarray, o: int, cg: int) -> np.ndarray:
    """``dw = GT dU G``: ``dU`` ``(16*O, C_g)`` (rows ``k*O + o``) -> ``(O, C_g, 3, 3)``, the adjoint of :func:`_weight_transform`."""
    du = du.reshape(4, 4, o, cg)  # (a, b, O, C_g)
    t = workspace.empty((3, 4, o, cg), du.dtype)
    _gt_rows(du, t)  # (i, b, O, C_g)
    dw = workspace.empty((3, 3, o, cg), du.dtype)
    for i in range(3):
        _gt_rows(t[i], dw[i])  # (i, j, O, C_g)
    return np.ascontiguousarray(dw.reshape(9, o * cg).T).reshape(o, cg, 3, 3)


def _correlate(x: np.ndarray, w: np.ndarray, y: np.ndarray, lo, groups: int, bias=None) -> None:
    """``y = correlate(x, w) + bias`` at stride 1 with low padding ``lo`` (may be negative), ``y`` any contents."""
    nbatch, c = x.shape[:2]
    o = y.shape[1]
    cg, og = c // groups, o // groups
    geo = _geometry(tuple(lo), x.shape[2:], y.shape[2:])
    th = geo.tiles[0]
    u = _weight_transform(w, groups)
    ubuf = blas.Buffer(u)
    pl = _Plan(geo, c, o, nbatch, x.itemsize, u.nbytes)
    bias_col = None if bias is None else bias.reshape(o, 1)

    def scratch():
        s = _input_scratch(geo, c, pl, x.dtype)
        m = workspace.empty((16 * o, pl.width), x.dtype)  # plane k of a block at rows [k*O, (k+1)*O)
        s.update(m=m, m_buf=blas.Buffer(m), r=workspace.empty((8, o, pl.width), x.dtype),
                 y=workspace.empty((2, 2, o, pl.chunk * geo.T), x.dtype))  # output (i, j) of every tile
        return s

    def process(s, n0, n1):
        nb = n1 - n0
        _row_transform(x[n0:n1], geo, s)
        vbuf, mbuf, ya = s["v_buf"], s["m_buf"], s["y"]
        for b0, b1 in pl.blocks(nb * geo.T):
            n = b1 - b0
            _column_transform(s, c, b0, b1)
            for k in range(16):
                for g in range(groups):
                    r0 = (k * groups + g) * og
                    blas.gemm_blocks(ubuf.block(r0, r0 + og, 0, cg), vbuf.block(k * c + g * cg, k * c + (g + 1) * cg, 0, n),
                                     mbuf.block(k * o + g * og, k * o + (g + 1) * og, 0, n))
            m = s["m"][:, :n].reshape(4, 4, o, n)  # (a, b, O, n)
            r = s["r"][:, :, :n].reshape(2, 4, o, n)  # AT on the rows: (i, b, O, n)
            np.add(m[0], m[1], out=r[0])  # AT = [[1, 1, 1, 0],
            r[0] += m[2]
            np.subtract(m[1], m[2], out=r[1])  #  [0, 1,-1,-1]]
            r[1] -= m[3]
            for i in range(2):  # ... A on the right
                q0, q1 = ya[i, 0, :, b0:b1], ya[i, 1, :, b0:b1]
                np.add(r[i, 0], r[i, 1], out=q0)
                q0 += r[i, 2]
                np.subtract(r[i, 1], r[i, 2], out=q1)
                q1 -= r[i, 3]
                if bias_col is not None:  # here, on rows in cache, rather than on the strided phases of y
                    q0 += bias_col
                    q1 += bias_col
        yc = y[n0:n1]
        for i in range(2):
            for j in range(2):
                kr, kc = geo.kept[i][j]  # the last tile row/col may be partly outside the output
                q = ya[i, j, :, : nb * geo.T].reshape(o, nb, th, geo.width)  # (O, nb, th, tw + 1)
                yc[:, :, i::2, j::2] = q[:, :, :kr, :kc].transpose(1, 0, 2, 3)

    parallel.run_chunks(pl.chunking, scratch, process)


class Winograd2D(Algorithm):
    """Winograd's F(2x2, 3x3) with gathered tiles (see the module docstring for the formulas).

    Examples
    --------
    A 3x3 layer with padding 1 and an odd size, against the reference loops:

    >>> import numpy as np
    >>> from convgrad import algorithms
    >>> from convgrad.spec import conv_spec
    >>> spec = conv_spec((2, 4, 7, 6), (5, 4, 3, 3), padding=1)
    >>> rng = np.random.default_rng(0)
    >>> x, w = rng.standard_normal(spec.input_shape), rng.standard_normal(spec.weight_shape)
    >>> dy = rng.standard_normal(spec.output_shape)
    >>> all(np.allclose(algorithms.run(op, spec, a, b, "winograd2d"), algorithms.run(op, spec, a, b, "direct"),
    ...                 atol=1e-10) for op, a, b in [("forward", x, w), ("grad_input", dy, w), ("grad_weight", x, dy)])
    True
    """

    name = "winograd2d"
    bias_ops = frozenset({"forward"})

    def unsupported(self, spec: ConvSpec, op: str) -> str | None:
        if spec.ndim != 2:
            return f"it needs a 2-D convolution, got {spec.ndim} spatial dims"
        if spec.kernel_size != (3, 3):
            return f"it needs a 3x3 kernel, got kernel_size {spec.kernel_size}"
        if spec.stride != (1, 1):
            return f"it needs stride 1, got stride {spec.stride}"
        if spec.dilation != (1, 1):
            return f"it needs dilation 1, got dilation {spec.dilation}"
        return None

    def spreads_nonfinite(self, op: str) -> bool:
        return True  # a tile's transform mixes all its inputs

    def examples(self):
        return (conv_spec((2, 3, 9, 8), (4, 3, 3, 3), padding=1),
                conv_spec((3, 4, 5, 6), (6, 2, 3, 3), padding=2, groups=2),
                conv_spec((2, 2, 5, 4), (3, 2, 3, 3), padding=((2, 0), (0, 1))),
                conv_spec((1, 2, 3, 1), (3, 2, 3, 3), padding=((0, 0), (1, 1))))

    def work(self, spec: ConvSpec, op: str) -> Work:
        # grad_input is the forward of its re-parameterization (convgrad.reparam): count that one
        form = grad_input_as_forward(spec) if op == "grad_input" else spec
        n, G, og, cg = spec.batch, spec.groups, form.out_per_group, form.in_per_group
        c_in, c_out = form.in_channels, form.out_channels
        geo = _geometry(form.pad_lo, form.input_size, form.output_size)
        cols = n * geo.T  # tile columns, margins included
        flops = 2.0 * 16 * G * og * cg * cols
        pl = _Plan(geo, c_in, c_out, n, 4, 16 * c_out * cg * 4)
        chunks = len(pl.chunking.chunks()) if n else 0
        blocks = max(1, chunks * -(-(pl.chunk * geo.T) // pl.width))
        width = min(pl.width, cols)  # the columns of one product
        k, m = (width, min(og, cg)) if op == "grad_weight" else (cg, min(og, width))
        inputs = n * c_in * math.prod(form.input_size)
        outputs = n * c_out * math.prod(form.output_size)
        # values written: the parity planes, the row pass (8 planes) and the column pass (16) of the input;
        # forward: 16 + 8 planes of the output transform and y; grad_weight: dy's planes, 4 + 8 planes
        elem = inputs + 24 * c_in * cols + outputs + (12 if op == "grad_weight" else 24) * c_out * cols
        calls = blocks * (16 * G + 14) + chunks * 12
        return Work(flops / efficiency(k, m), elem, calls)

    def forward(self, x, w, spec, bias=None):
        y = np.empty(spec.output_shape, dtype=x.dtype)
        if spec.batch == 0:
            return y
        _correlate(x, w, y, spec.pad_lo, spec.groups, bias)
        return y

    def grad_input(self, dy, w, spec):
        # dx is the forward of dy by the flipped kernel (convgrad.reparam); at stride 1 it needs no
        # input dilation, so it is this algorithm's own forward with the form's low padding
        dx = np.empty(spec.input_shape, dtype=dy.dtype)
        if spec.batch == 0:
            return dx
        form = grad_input_as_forward(spec)
        _correlate(dy, grad_input_kernel(w, spec), dx, form.pad_lo, spec.groups)
        zero_unread(dx, spec)  # exactly zero, not a tile's rounding residue
        return dx

    def grad_weight(self, x, dy, spec):
        G, og, cg = spec.groups, spec.out_per_group, spec.in_per_group
        c, o = spec.in_channels, spec.out_channels
        geo = _geometry(spec.pad_lo, spec.input_size, spec.output_size)
        th = geo.tiles[0]
        shape = (16 * o, cg)  # rows (k*G + g)*O_g + o
        pl = _Plan(geo, c, o, spec.batch, x.itemsize, math.prod(shape) * x.itemsize)

        def scratch():
            s = _input_scratch(geo, c, pl, x.dtype)
            dm = workspace.empty((8 * o, pl.width), x.dtype)  # dM[a, 1] and dM[a, 2] of a block: rows (2a + b - 1)*O
            du = workspace.zeros(shape, x.dtype)
            # dy[n, :, 2i + r, 2j + t] at rows (2r + t)*O of (n, i, j); zero beyond the output and in the margins
            dyp = workspace.zeros((4 * o, pl.chunk * geo.T), x.dtype)
            e = workspace.empty((4 * o, pl.chunk * geo.T), x.dtype)  # rows (2(a-1) + t)*O: A's rows 1 and 2 of dy
            s.update(dy=dyp, dy_buf=blas.Buffer(dyp), e=e, e_buf=blas.Buffer(e), dm=dm, dm_buf=blas.Buffer(dm), du=du,
                     du_buf=blas.Buffer(du))
            return s

        def process(s, n0, n1):
            nb = n1 - n0
            p = nb * geo.T
            _row_transform(x[n0:n1], geo, s)
            dyp = s["dy"][:, :p].reshape(2, 2, o, p)  # (r, t, O, P)
            dyc = dy[n0:n1].transpose(1, 0, 2, 3)  # (O, nb, H_out, W_out)
            for r in (0, 1):
                for t in (0, 1):
                    kr, kc = geo.kept[r][t]
                    dyp[r, t].reshape(o, nb, th, geo.width)[:, :, :kr, :kc] = dyc[:, :, r::2, t::2]
            # A on the rows, E[a, t] = sum_r A[a, r] dY[r, t] with A = AT^T = [[1, 0], [1, 1], [1, -1], [0, -1]]:
            # rows 0 and 3 are dY's own rows (row 3 negated, by the products' alpha), rows 1 and 2 are made here
            e = s["e"][:, :p].reshape(2, 2, o, p)
            np.add(dyp[0], dyp[1], out=e[0])
            np.subtract(dyp[0], dyp[1], out=e[1])
            dybuf, ebuf = s["dy_buf"], s["e_buf"]
            rows = [(dybuf, 0, 1.0), (ebuf, 0, 1.0), (ebuf, 2 * o, 1.0), (dybuf, 2 * o, -1.0)]  # E[a, 0] at (buffer, row, sign)
            vbuf, dmbuf, dubuf = s["v_buf"], s["dm_buf"], s["du_buf"]
            for b0, b1 in pl.blocks(p):
                n = b1 - b0
                _column_transform(s, c, b0, b1)
                dm = s["dm"][:, :n].reshape(4, 2, o, n)
                for a, (buf, row, _) in enumerate(rows):  # ... AT on the right: dM[a] = E[a] @ A^T, signs aside
                    e0, e1 = buf.array[row : row + o, b0:b1], buf.array[row + o : row + 2 * o, b0:b1]
                    np.add(e0, e1, out=dm[a, 0])  # dM[a, 1] = E[a, 0] + E[a, 1]
                    np.subtract(e0, e1, out=dm[a, 1])  # dM[a, 2] = E[a, 0] - E[a, 1]
                for k in range(16):
                    a, b = divmod(k, 4)
                    buf, row, sign = rows[a]
                    if b == 0:  # dM[a, 0] = E[a, 0]
                        src, r0, c0, alpha = buf, row, b0, sign
                    elif b == 3:  # dM[a, 3] = -E[a, 1]
                        src, r0, c0, alpha = buf, row + o, b0, -sign
                    else:
                        src, r0, c0, alpha = dmbuf, (2 * a + b - 1) * o, 0, sign
                    for g in range(G):
                        d0 = (k * G + g) * og
                        blas.gemm_blocks(src.block(r0 + g * og, r0 + (g + 1) * og, c0, c0 + n),
                                         vbuf.block(k * c + g * cg, k * c + (g + 1) * cg, 0, n).T,
                                         dubuf.block(d0, d0 + og, 0, cg), alpha=alpha, beta=1.0)

        if spec.batch == 0:
            return np.zeros(spec.weight_shape, dtype=x.dtype)
        du = parallel.run_chunks(pl.chunking, scratch, process, reduce=("du",))["du"]
        return _weight_gradient_transform(du, o, cg)


register(Winograd2D())
