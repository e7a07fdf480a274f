"""``winograd``: Winograd's F(2, 3) along the last spatial dim, the other kernel taps as shifted slices.

A 3-tap correlation computes two outputs from a tile of four inputs with four multiplications
instead of six. Along the last dim, with ``d`` a tile of the (padded) input, ``g`` the kernel's
three taps and ``y`` the two outputs (Lavin & Gray, "Fast Algorithms for Convolutional Neural
Networks", 2016)::

    y = AT [ (G g) * (BT d) ]          BT = [[1, 0,-1, 0],      G = [[ 1,   0,   0 ],     AT = [[1, 1, 1, 0],
                                             [0, 1, 1, 0],           [1/2, 1/2, 1/2],           [0, 1,-1,-1]]
                                             [0,-1, 1, 0],           [1/2,-1/2, 1/2],
                                             [0, 1, 0,-1]]           [ 0,   0,   1 ]]

The transform turns the input into four planes ``V_p`` of tiles (half the length along the last
dim each); the sum over input channels then makes every plane ``p`` and every remaining kernel tap
``k`` (of the leading dims) one matrix product, as in ``tapgemm``'s flat layout (:mod:`._flat`)::

    forward      M_p  += U[k, p] @ V_p[shifted by k]     (O_g, C_g) @ (C_g, cols)    U = G w  (last dim)
    grad_weight  dU[k, p] += dM_p @ V_p[shifted by k].T  (O_g, cols) @ (cols, C_g)   dM = AT^T dy, dw = G^T dU
    grad_input   the forward of the transposed problem: dy correlated with the flipped kernel

so a 3x3 layer does 3 x 4 products per pair of outputs instead of 9 x 2: 1.5x fewer
multiplications, for two elementwise passes per plane (input and output transforms) that run over
whole rows. (F(2, 3) on every dim saves 2.25x in 2-D but needs 16 planes and transposing copies;
measured 1.3x slower than ``tapgemm`` on layer a, where this is 1.2x faster.) ``grad_weight`` is
the exact adjoint of the forward formula, so all three operations are exact in exact arithmetic;
in float32 the error stays within a small factor of direct summation (one transformed dim).

**Dilation** ``D`` along the last dim is removed first: outputs ``j = D*u + r`` only read inputs
``D*v + r'``, so the convolution splits into ``D`` pieces on strided views, undilated along the
last dim. Along the leading dims dilation only moves the shifted slices.

**Layout.** A chunk of ``nb`` batch elements is split by the parity of the padded last-dim
position (``E`` even, ``Od`` odd, ``(C, nb*Q)`` each) so that the four slices of a tile are
``E[t], Od[t], E[t+1], Od[t+1]``: with the grid flattened, the input transform is four passes
over contiguous rows (``V_0 = E - E>>1`` and so on). The grid is ``(*span, T + 1)`` per element:
``T`` tiles per row and one margin tile whose results are thrown away (like the margins of
``tapgemm``'s layout, they read zeros or finite neighbours and add nothing to the gradients).

**Non-finite values.** A tile mixes its inputs, so a NaN or inf would reach outputs that do not
read it: :meth:`Winograd.spreads_nonfinite` tells the dispatcher, which recomputes a non-finite
result with an algorithm that keeps them in place (see :func:`convgrad.algorithms.run`).
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from .. import blas, parallel, runtime, workspace
from ..reparam import grad_input_as_forward, grad_input_kernel, zero_unread
from ..spec import ConvSpec, conv_spec
from .base import Algorithm
from .work import Work, efficiency
from .registry import register

_G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])
#: Bytes of the operands of one product (column block of the planes); as ``tapgemm``'s blocks.
BLOCK_BYTES = 4 * 2**20


class _Problem:
    """A stride-1 correlation, undilated along the last dim, with 3 taps there, on views of the operands.

    ``lo`` (per dim, may be negative: the first ``-lo`` inputs are never read) places input
    element ``s`` at grid position ``s + lo``; ``size`` and ``out`` are the input and output
    lengths; ``kernel`` and ``dilation`` are those of the leading dims. Per element the grid is
    ``(*lead, Tq)``: ``lead_j = out_j + (K_j - 1) * D_j`` rows and ``Tq = T + 1`` tile columns,
    ``T = ceil(out_w / 2)``; padded last-dim position ``m`` is parity ``m % 2``, column ``m // 2``.
    """

    def __init__(self, lo, size, out, kernel, dilation):
        self.lo, self.size, self.out = tuple(lo), tuple(size), tuple(out)
        self.kernel, self.dilation = tuple(kernel), tuple(dilation)  # leading dims only
        self.T = -(-self.out[-1] // 2)
        self.grid = tuple(o + (k - 1) * d for o, k, d in zip(self.out[:-1], self.kernel, self.dilation)) + (self.T + 1,)
        self.grid_size = math.prod(self.grid)
        self.strides = tuple(math.prod(self.grid[j + 1 :]) for j in range(len(self.grid)))
        taps = itertools.product(*map(range, self.kernel))
        self.taps = [sum(k * d * s for k, d, s in zip(tap, self.dilation, self.strides)) for tap in taps]
        # flat length covering every output tile of one element (its last row's margin tile included)
        self.L = sum((o - 1) * s for o, s in zip(self.out[:-1], self.strides)) + self.grid[-1]

    def columns(self, nb: int) -> int:
        return (nb - 1) * self.grid_size + self.L

    def _lead_pairs(self):
        """Per leading dim: (grid slice, input slice) of the real positions."""
        out = []
        for lo, s, g in zip(self.lo[:-1], self.size[:-1], self.grid[:-1]):
            s0, s1 = max(0, -lo), min(s, g - lo)
            out.append((slice(s0 + lo, s1 + lo), slice(s0, s1)))
        return out

    def scatter(self, x: np.ndarray, eo: np.ndarray, channels_last: bool = False) -> None:
        """The chunk ``x`` ``(nb, C, *size)`` into the parity planes ``eo`` ``(2, C, nb*Q)`` -- or
        ``(2, nb*Q, C)`` channels last -- leaving the rest (zero) alone."""
        nb, c = x.shape[:2]
        lead = self._lead_pairs()
        lo, size = self.lo[-1], self.size[-1]
        for par in (0, 1):
            s0 = max(0, -lo)
            s0 += (par - (s0 + lo)) % 2  # first input whose padded position has parity par
            s1 = min(size, 2 * self.grid[-1] - lo)
            if s1 <= s0:
                continue
            cnt = (s1 - s0 + 1) // 2
            m0 = (s0 + lo) // 2
            src = x[(slice(None), slice(None), *(s for _, s in lead), slice(s0, s0 + 2 * cnt - 1, 2))]
            grid_ix = (*(g for g, _ in lead), slice(m0, m0 + cnt))
            if channels_last:
                grid = eo[par, : nb * self.grid_size].reshape((nb,) + self.grid + (c,))  # (nb, *grid, C)
                grid[(slice(None), *grid_ix)] = np.moveaxis(src, 1, -1)
            else:
                grid = eo[par, :, : nb * self.grid_size].reshape((c, nb) + self.grid)  # (C, nb, *grid)
                grid[(slice(None), slice(None), *grid_ix)] = np.moveaxis(src, 0, 1)

    def output_views(self, ya: np.ndarray, nb: int, o: int, channels_last: bool = False):
        """The two outputs of each tile in ``ya`` ``(2, O, nb*Q)`` (or ``(2, nb*Q, O)``) as ``(nb, O, *out_lead, T)`` views."""
        crop = (slice(None), slice(None), *(slice(0, n) for n in self.out[:-1]), slice(0, self.T))
        if channels_last:
            return [np.moveaxis(ya[i, : nb * self.grid_size].reshape((nb,) + self.grid + (o,)), -1, 1)[crop]
                    for i in (0, 1)]
        return [np.moveaxis(ya[i, :, : nb * self.grid_size].reshape((o, nb) + self.grid), 0, 1)[crop] for i in (0, 1)]


def _pieces(input_size, output_size, pad_lo, dilation):
    """The pieces of a stride-1 correlation undilated along the last dim: ``(input index, output index, lo)``.

    Output ``j = D*u + r`` reads input ``D*(u + k) + r - P_lo``; with ``r - P_lo = D*q + r'`` that
    is element ``u + k + q`` of the input phase ``x[..., r'::D]``: a correlation with ``lo = -q``
    along the last dim (negative: the phase's first ``q`` elements are never read). Pieces whose
    input phase is empty (their outputs read only padding) are ``None``.
    """
    h, o, lo, d = input_size[-1], output_size[-1], pad_lo[-1], dilation[-1]
    for r in range(min(d, o)):
        q, rp = divmod(r - lo, d)
        out_len = -(-(o - r) // d)
        in_len = -(-(h - rp) // d) if rp < h else 0
        in_ix = (Ellipsis, slice(rp, h, d))
        out_ix = (Ellipsis, slice(r, o, d))
        yield in_ix, out_ix, -q, in_len, out_len


def _weight_transform(w: np.ndarray, ntaps: int, groups: int) -> np.ndarray:
    """``U = G w`` along the last dim: ``(O, C_g, *K_lead, 3)`` -> ``(taps*4*G*O_g, C_g)`` (rows ``((k*4 + p)*G + g)*O_g + o``)."""
    o, cg = w.shape[:2]
    with blas.single_threaded():  # a tiny product BLAS might thread: its threads would spin into the chunks
        u = np.tensordot(w, _G.astype(w.dtype), axes=([-1], [1]))  # (O, C_g, *K_lead, 4)
    u = u.reshape(groups, o // groups, cg, ntaps, 4)  # (G, O_g, C_g, taps, 4)
    return np.ascontiguousarray(u.transpose(3, 4, 0, 1, 2)).reshape(-1, cg)


class _Plan:
    """Chunks, column blocks and the input transform of one piece.

    Per chunk of ``nb`` elements the scratch holds the parity planes ``E, Od`` of the input and
    the two outputs of each tile (or, for the weight gradient, ``dy`` in tile layout). The
    transformed planes ``V_p`` and the products ``M_p`` are made one column block at a time,
    so they stay in cache between the transform and the products that read them: a block of
    ``width`` output columns reads ``V`` over ``width + span`` columns (``span`` = the largest
    leading-dim tap offset).
    """

    def __init__(self, prob: _Problem, c: int, o: int, groups: int, batch: int, itemsize: int, fixed: int = 0):
        self.prob, self.c, self.o, self.groups = prob, c, o, groups
        self.cg, self.og = c // groups, o // groups
        self.span = max(prob.taps)
        threads = runtime.get_num_threads()
        block_bytes = min(BLOCK_BYTES, max(runtime.get_workspace_limit() // (4 * threads), 1))
        self.width = max(64, block_bytes // ((self.cg + 4 * self.og) * itemsize))
        # per element: parity planes and the two outputs of each tile; per worker: a block of V and M
        per_item = 2 * (c + o) * prob.grid_size * itemsize
        block = (4 * c * (self.width + self.span) + 4 * o * self.width) * itemsize
        self.chunking = parallel.plan(batch, per_item, fixed + block)

    def blocks(self, nb: int):
        ncol = self.prob.columns(nb)
        return [(c0, min(ncol, c0 + self.width)) for c0 in range(0, ncol, self.width)]

    def v_shape(self, channels_last: bool) -> tuple[int, int]:
        n = self.width + self.span
        return (4 * n, self.c) if channels_last else (4 * self.c, n)

    def transform_block(self, eo: np.ndarray, v: np.ndarray, nb: int, c0: int, c1: int, channels_last: bool) -> int:
        """``V_p`` of columns ``[c0, c1 + span)`` of the chunk into ``v``: ``BT`` on each tile, four passes.

        ``eo`` is ``(2, C, chunk*Q)`` (or ``(2, chunk*Q, C)``); ``v`` the block buffer from
        :meth:`v_shape`, plane ``p`` at rows ``[p*C, (p+1)*C)`` (or ``[p*n, (p+1)*n)`` channels last).
        Returns the number of columns made.
        """
        end = min(c1 + self.span, nb * self.prob.grid_size)
        n = end - c0
        m = min(n, nb * self.prob.grid_size - 1 - c0)  # the chunk's last column has no right neighbour
        if channels_last:  # the positions are rows: shift by rows
            rows = self.width + self.span
            e0, e1 = eo[0, c0 : c0 + m], eo[0, c0 + 1 : c0 + m + 1]
            o0, o1 = eo[1, c0 : c0 + m], eo[1, c0 + 1 : c0 + m + 1]
            planes = [v[p * rows : p * rows + m] for p in range(4)]
        else:  # shift by columns
            e0, e1 = eo[0, :, c0 : c0 + m], eo[0, :, c0 + 1 : c0 + m + 1]
            o0, o1 = eo[1, :, c0 : c0 + m], eo[1, :, c0 + 1 : c0 + m + 1]
            planes = [v[p * self.c : (p + 1) * self.c, :m] for p in range(4)]
        np.subtract(e0, e1, out=planes[0])  # BT = [[1, 0,-1, 0],
        np.add(o0, e1, out=planes[1])  #       [0, 1, 1, 0],
        np.subtract(e1, o0, out=planes[2])  #  [0,-1, 1, 0],
        np.subtract(o0, o1, out=planes[3])  #  [0, 1, 0,-1]]
        if m < n:
            for p in range(4):
                if channels_last:
                    v[p * rows + m : p * rows + n] = 0
                else:
                    v[p * self.c : (p + 1) * self.c, m:n] = 0
        return n


class Winograd(Algorithm):
    name = "winograd"
    #: Whether the forward pieces (the forward and the input gradient) keep their parity planes and
    #: ``V`` channels last (a channels-last variant sets it; the weight gradient's always are).
    planes_last = False

    def work(self, spec: ConvSpec, op: str) -> Work:
        # grad_input is the forward of its re-parameterization (convgrad.reparam): count that one
        form = grad_input_as_forward(spec) if op == "grad_input" else spec
        n, G, og, cg = spec.batch, spec.groups, form.out_per_group, form.in_per_group
        c_in, c_out = form.in_channels, form.out_channels
        kernel, dilation, lo = spec.kernel_size, spec.dilation, form.pad_lo
        sizes = (form.input_size, form.output_size)
        total = Work(0.0, 0.0, 0.0)
        for _, _, lo_w, in_len, out_len in _pieces(sizes[0], sizes[1], lo, dilation):
            if in_len == 0:
                continue
            prob = _Problem(lo[:-1] + (lo_w,), sizes[0][:-1] + (in_len,), sizes[1][:-1] + (out_len,), kernel[:-1],
                            dilation[:-1])
            cols = n * prob.grid_size
            taps = len(prob.taps)
            flops = 2.0 * G * og * cg * 4 * taps * cols
            k, m = {"forward": (cg, og), "grad_input": (cg, og), "grad_weight": (cols, min(og, cg))}[op]
            inputs = n * c_in * math.prod(prob.size)
            outputs = n * c_out * math.prod(prob.out)
            # scatter into parity planes, four transform passes over the input side, four over the
            # output side (and its two strided halves)
            elem = inputs + 4 * c_in * cols + 4 * c_out * cols + 2 * outputs
            width = max(64, BLOCK_BYTES // ((cg + 4 * og) * 4))
            calls = 4 * G * taps * max(1, cols // width) + 20 * max(1, n // 2)
            total = total + Work(flops / efficiency(k, m), elem, calls)
        return total

    def examples(self):
        return (conv_spec((2, 3, 9, 8), (4, 3, 3, 3), padding=1, dilation=(2, 1)),
                conv_spec((5, 4, 9, 8), (6, 2, 3, 3), dilation=(2, 1), padding=1, groups=2),
                conv_spec((2, 2, 13), (3, 2, 3), padding=((3, 0),)))  # 1-D, pad beyond the kernel: pieces

    def spreads_nonfinite(self, op: str) -> bool:
        return True  # a tile's transform mixes all its inputs

    def unsupported(self, spec: ConvSpec, op: str) -> str | None:
        if spec.kernel_size[-1] != 3:
            return f"it needs a kernel of size 3 along the last spatial dim, got kernel_size {spec.kernel_size}"
        if any(s != 1 for s in spec.stride):
            return f"it needs stride 1, got stride {spec.stride}"
        return None

    # -- forward, for the convolution and (with the flipped kernel) for the input gradient -------------

    bias_ops = frozenset({"forward"})

    def forward(self, x, w, spec, bias=None):
        y = np.zeros(spec.output_shape, dtype=x.dtype)
        if spec.batch == 0:
            return y
        _correlate(x, w, y, spec.pad_lo, spec.dilation, spec.groups, bias, self.planes_last)
        return y

    def grad_input(self, dy, w, spec):
        # dx is the forward of dy by the flipped kernel (convgrad.reparam); at stride 1 it needs no
        # input dilation, so it is this algorithm's own forward with the form's low padding
        dx = np.zeros(spec.input_shape, dtype=dy.dtype)
        if spec.batch == 0:
            return dx
        form = grad_input_as_forward(spec)
        _correlate(dy, grad_input_kernel(w, spec), dx, form.pad_lo, form.dilation, form.groups,
                   planes_last=self.planes_last)
        zero_unread(dx, spec)  # exactly zero, not a tile's rounding residue
        return dx

    def grad_weight(self, x, dy, spec):
        G, og, cg = spec.groups, spec.out_per_group, spec.in_per_group
        ntaps = math.prod(spec.kernel_size[:-1])
        du = np.zeros((ntaps * 4 * G * og, cg), dtype=x.dtype)  # rows ((k*4 + p)*G + g)*O_g + o
        if spec.batch > 0:
            for in_ix, out_ix, lo_w, in_len, out_len in _pieces(spec.input_size, spec.output_size, spec.pad_lo,
                                                                spec.dilation):
                if in_len == 0:
                    continue
                prob = _Problem(spec.pad_lo[:-1] + (lo_w,), spec.input_size[:-1] + (in_len,),
                                spec.output_size[:-1] + (out_len,), spec.kernel_size[:-1], spec.dilation[:-1])
                du += _grad_weight_piece(x[in_ix], dy[out_ix], prob, G, self.planes_last)
        # dw = G^T dU along the last dim
        u = du.reshape((ntaps, 4, G, og, cg)).transpose(2, 3, 4, 0, 1)  # (G, O_g, C_g, taps, 4)
        with blas.single_threaded():
            dw = np.tensordot(u, _G.astype(du.dtype), axes=([-1], [0]))  # (G, O_g, C_g, taps, 3)
        return np.ascontiguousarray(dw).reshape(spec.weight_shape)


def _correlate(x: np.ndarray, w: np.ndarray, y: np.ndarray, pad_lo, dilation, groups: int, bias=None,
               planes_last: bool = False) -> None:
    """``y = correlate(x, w) + bias`` at stride 1 with the given ``lo`` per dim (may be negative), piece by piece.

    ``y`` must be zero where no piece writes (outputs that read only padding). ``planes_last``: the
    parity planes and ``V`` channels last (for an ``x`` that is the view of a channels-last array).
    """
    bias_b = None if bias is None else bias.reshape((1, -1) + (1,) * (y.ndim - 2))
    kernel = w.shape[2:]
    ntaps = math.prod(kernel[:-1])
    input_size, output_size = x.shape[2:], y.shape[2:]
    u = _weight_transform(w, ntaps, groups)
    for in_ix, out_ix, lo_w, in_len, out_len in _pieces(input_size, output_size, pad_lo, dilation):
        if in_len == 0:  # outputs that read only padding
            if bias_b is not None:
                y[out_ix] += bias_b
            continue
        prob = _Problem(tuple(pad_lo[:-1]) + (lo_w,), tuple(input_size[:-1]) + (in_len,),
                        tuple(output_size[:-1]) + (out_len,), kernel[:-1], dilation[:-1])
        _forward_piece(x[in_ix], u, y[out_ix], prob, groups, bias_b, planes_last)


def _forward_piece(x, u, y, prob: _Problem, groups: int, bias_b=None, planes_last: bool = False) -> None:
    c, o = x.shape[1], y.shape[1]
    bias_col = None if bias_b is None else bias_b.reshape(o, 1)
    pl = _Plan(prob, c, o, groups, x.shape[0], x.itemsize, u.nbytes)
    cg, og, Q, width = pl.cg, pl.og, prob.grid_size, pl.width
    ubuf = blas.Buffer(u)

    def scratch():
        chunk = pl.chunking.chunk
        # an element's real positions are the same in every chunk
        eo = workspace.zeros((2, chunk * Q, c) if planes_last else (2, c, chunk * Q), x.dtype)
        v = workspace.empty(pl.v_shape(planes_last), x.dtype)
        m = workspace.empty((4 * o, width), x.dtype)  # the four planes' products of one column block
        ya = workspace.empty((2, o, chunk * Q), x.dtype)
        return {"planes": eo, "v": v, "v_buf": blas.Buffer(v), "m": m, "m_buf": blas.Buffer(m), "y": ya}

    def process(s, n0, n1):
        eo, v, vbuf, m, mbuf, ya = s["planes"], s["v"], s["v_buf"], s["m"], s["m_buf"], s["y"]
        nb = n1 - n0
        prob.scatter(x[n0:n1], eo, channels_last=planes_last)
        vrows = width + pl.span  # rows of one plane of a channels-last V block
        for c0, c1 in pl.blocks(nb):
            n = c1 - c0
            pl.transform_block(eo, v, nb, c0, c1, channels_last=planes_last)
            for p in range(4):
                for g in range(groups):
                    dest = mbuf.block((p * groups + g) * og, (p * groups + g + 1) * og, 0, n)
                    for t, off in enumerate(prob.taps):
                        r0 = ((t * 4 + p) * groups + g) * og
                        if planes_last:  # (C_g, cols) as the transpose of V's (cols, C_g) rows
                            src = vbuf.block(p * vrows + off, p * vrows + off + n, g * cg, (g + 1) * cg).T
                        else:
                            src = vbuf.block(p * c + g * cg, p * c + (g + 1) * cg, off, off + n)
                        blas.gemm_blocks(ubuf.block(r0, r0 + og, 0, cg), src, dest, beta=0.0 if t == 0 else 1.0)
            m0, m1, m2, m3 = (m[p * o : (p + 1) * o, :n] for p in range(4))
            y0, y1 = ya[0, :, c0:c1], ya[1, :, c0:c1]
            np.add(m0, m1, out=y0)  # AT = [[1, 1, 1, 0],
            y0 += m2
            np.subtract(m1, m2, out=y1)  #   [0, 1,-1,-1]]
            y1 -= m3
            if bias_col is not None:  # here, on rows in cache, rather than on the strided halves of y
                y0 += bias_col
                y1 += bias_col
        even, odd = prob.output_views(ya, nb, o)  # (nb, O, *out_lead, T)
        yc = y[n0:n1]
        yc[..., 0::2] = even[..., : (prob.out[-1] + 1) // 2]
        yc[..., 1::2] = odd[..., : prob.out[-1] // 2]

    parallel.run_chunks(pl.chunking, scratch, process)


def _grad_weight_piece(x, dy, prob: _Problem, groups: int, dy_last: bool = False) -> np.ndarray:
    """``dU`` ``(taps*4*G*O_g, C_g)`` of one piece: ``dU[k, p] = sum dM_p @ V_p[shifted by k].T``.

    ``dy_last``: ``dy`` in tile layout and ``dM`` channels last (for the view of a channels-last ``dy``).
    """
    c, o = x.shape[1], dy.shape[1]
    shape = (len(prob.taps) * 4 * o, c // groups)
    pl = _Plan(prob, c, o, groups, x.shape[0], x.itemsize, math.prod(shape) * x.itemsize)
    cg, og, Q, width = pl.cg, pl.og, prob.grid_size, pl.width
    vrows = width + pl.span  # rows of one plane of the (channels-last) V block

    def scratch():
        chunk = pl.chunking.chunk
        eo = workspace.zeros((2, chunk * Q, c), x.dtype)  # channels last: the products read V row-major
        v = workspace.empty(pl.v_shape(True), x.dtype)
        dm = workspace.empty((width, 4 * o) if dy_last else (4 * o, width), x.dtype)
        dya = workspace.zeros((2, chunk * Q, o) if dy_last else (2, o, chunk * Q), x.dtype)  # margins stay 0
        du = workspace.zeros(shape, x.dtype)
        return {"planes": eo, "v": v, "v_buf": blas.Buffer(v), "dm": dm, "dm_buf": blas.Buffer(dm), "dy": dya,
                "du": du, "du_buf": blas.Buffer(du)}

    def process(s, n0, n1):
        eo, v, vbuf, dm, dmbuf, dya = s["planes"], s["v"], s["v_buf"], s["dm"], s["dm_buf"], s["dy"]
        dubuf = s["du_buf"]
        nb = n1 - n0
        prob.scatter(x[n0:n1], eo, channels_last=True)
        even, odd = prob.output_views(dya, nb, o, dy_last)  # (nb, O, *out_lead, T)
        d = dy[n0:n1]
        even[..., : (prob.out[-1] + 1) // 2] = d[..., 0::2]
        odd[..., : prob.out[-1] // 2] = d[..., 1::2]
        for c0, c1 in pl.blocks(nb):
            n = c1 - c0
            pl.transform_block(eo, v, nb, c0, c1, channels_last=True)
            if dy_last:  # plane p of dM: columns [p*O, (p+1)*O) of rows [0, n)
                d0, d1 = dya[0, c0:c1], dya[1, c0:c1]
                planes = [dm[:n, p * o : (p + 1) * o] for p in range(4)]
            else:
                d0, d1 = dya[0, :, c0:c1], dya[1, :, c0:c1]
                planes = [dm[p * o : (p + 1) * o, :n] for p in range(4)]
            np.copyto(planes[0], d0)  # AT^T = [[1, 0],
            np.add(d0, d1, out=planes[1])  #       [1, 1],
            np.subtract(d0, d1, out=planes[2])  #  [1,-1],
            np.negative(d1, out=planes[3])  #      [0,-1]]
            for p in range(4):
                for g in range(groups):
                    if dy_last:
                        src = dmbuf.block(0, n, p * o + g * og, p * o + (g + 1) * og).T  # (O_g, cols)
                    else:
                        src = dmbuf.block(p * o + g * og, p * o + (g + 1) * og, 0, n)  # (O_g, cols)
                    for t, off in enumerate(prob.taps):
                        r0 = ((t * 4 + p) * groups + g) * og
                        r = p * vrows + off
                        vb = vbuf.block(r, r + n, g * cg, (g + 1) * cg)  # (cols, C_g)
                        blas.gemm_blocks(src, vb, dubuf.block(r0, r0 + og, 0, cg), beta=1.0)

    # the workers' partial sums (scratch: the caller adds it up before the operation ends)
    return parallel.run_chunks(pl.chunking, scratch, process, reduce=("du",))["du"]


register(Winograd())
