"""``winograd``: Winograd's minimal filtering F(2, 3) on every spatial dim, for 3-tap kernels at stride 1.

A 3-tap correlation computes two outputs from a tile of four inputs with four multiplications
instead of six. Per spatial dim, with ``d`` a tile of the (padded) input, ``g`` the kernel and
``y`` the two outputs (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016)::

    y = AT [ (G g) * (BT d) ]          BT = [[1, 0,-1, 0],      G = [[ 1,   0,   0 ],     AT = [[1, 1, 1, 0],
                                             [0, 1, 1, 0],           [1/2, 1/2, 1/2],           [0, 1,-1,-1]]
                                             [0,-1, 1, 0],           [1/2,-1/2, 1/2],
                                             [0, 1, 0,-1]]           [ 0,   0,   1 ]]

In ``n`` dims the transforms act on each dim in turn: ``4**n`` elementwise products per tile of
``2**n`` outputs instead of ``3**n * 2**n`` (2.25x fewer in 2-D), and the sum over input channels
turns each of the ``4**n`` transformed positions ``p`` into one matrix product::

    forward       M[p] = U[p] @ V[p]          (O_g, C_g) @ (C_g, tiles)    U = G w G^T,  V = BT x B
    grad_weight  dU[p] = dM[p] @ V[p].T       (O_g, tiles) @ (tiles, C_g)  dM = AT^T dy A,  dw = G^T dU G
    grad_input   the forward of the transposed problem: dy correlated with the flipped kernel

``grad_weight`` is the exact adjoint of the forward formula, so all three operations are exact in
exact arithmetic; in floating point F(2, 3) stays within a small factor of direct summation (the
larger F(4, 3) tiles lose about 20x in float32 and are not used). The transforms are NumPy
elementwise passes over a chunk of the batch; the products go to BLAS.

**Dilation** ``D`` is removed first: outputs ``i = D*u + r`` only read inputs ``D*v + r'``, so the
convolution splits into ``D**n`` independent undilated ones on strided views.

**Non-finite values.** A tile mixes its inputs, so a NaN or inf would reach outputs that do not
read it. :meth:`Winograd.spreads_nonfinite` tells the dispatcher, which recomputes a non-finite result with an
algorithm that keeps them in place (see :func:`convgrad.algorithms.run`); that holds for an
explicit ``algorithm="winograd"`` too, so the result is always the one a direct sum gives.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from .. import blas, parallel, workspace
from ..spec import ConvSpec
from .base import Algorithm

_G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])


# ------------------------------------------------------------------------------------------------
# undilated, stride-1 pieces
# ------------------------------------------------------------------------------------------------


class _Problem:
    """A stride-1, undilated 3-tap correlation on (views of) the operands, per spatial dim.

    ``lo`` is the zero padding before the input (``>= 0``), ``size`` the input length used and
    ``out`` the output length; every input position read lies in ``[0, size)`` or is padding.
    ``T = ceil(out / 2)`` tiles of two outputs read ``2*T + 2`` padded positions.
    """

    def __init__(self, lo: tuple[int, ...], size: tuple[int, ...], out: tuple[int, ...]):
        self.lo, self.size, self.out = lo, size, out
        self.tiles = tuple(-(-o // 2) for o in out)
        self.padded = tuple(2 * t + 2 for t in self.tiles)
        self.ndim = len(out)
        self.planes = 4**self.ndim
        self.keys = list(itertools.product(range(4), repeat=self.ndim))  # plane p <-> (xi_1, ..., xi_n)

    @property
    def ntiles(self) -> int:
        return math.prod(self.tiles)


def _pieces(input_size, output_size, pad_lo, dilation):
    """The undilated pieces of a stride-1 correlation: ``(input index, output index, _Problem or None)``.

    Output ``i = D*u + r`` reads input ``D*(u + k) + r - P_lo``; with ``r - P_lo = D*q + r'`` that
    is element ``u + k + q`` of the input phase ``x[r'::D]``: an undilated correlation with padding
    ``-q`` (negative: the phase's first ``q`` elements are never read). ``None`` marks a piece
    whose outputs read only padding (they are zero). Inputs in no piece are never read.
    """
    per_dim = []
    for h, o, lo, d in zip(input_size, output_size, pad_lo, dilation):
        pieces = []
        for r in range(min(d, o)):
            q, rp = divmod(r - lo, d)
            out_len = -(-(o - r) // d)
            in_len = -(-(h - rp) // d)  # length of the phase x[rp::d]
            start = max(0, q)  # first phase element read
            stop = min(in_len, out_len + 2 + q)
            used = max(0, stop - start)
            in_ix = slice(rp + d * start, rp + d * (start + used - 1) + 1, d) if used else slice(0, 0)
            pieces.append((in_ix, slice(r, r + d * (out_len - 1) + 1, d), max(0, -q), used, out_len))
        per_dim.append(pieces)
    for combo in itertools.product(*per_dim):
        in_ix = (Ellipsis, *(p[0] for p in combo))
        out_ix = (Ellipsis, *(p[1] for p in combo))
        if any(p[3] == 0 for p in combo):
            yield in_ix, out_ix, None
        else:
            yield in_ix, out_ix, _Problem(tuple(p[2] for p in combo), tuple(p[3] for p in combo), tuple(p[4] for p in combo))


# ------------------------------------------------------------------------------------------------
# the transforms, one spatial dim at a time (elementwise NumPy passes)
# ------------------------------------------------------------------------------------------------


def _weight_transform(w: np.ndarray, ndim: int, groups: int) -> np.ndarray:
    """``U^T = (G w G^T)^T`` on every spatial dim: ``(O, C_g, 3, ...) -> (4**ndim, G, C_g, O_g)``."""
    g = _G.astype(w.dtype)
    u = w
    for j in range(ndim):
        u = np.moveaxis(np.tensordot(u, g, axes=([2 + j], [1])), -1, 2 + j)  # (O, C_g, 4, ..)
    o, cg = w.shape[:2]
    u = u.reshape(groups, o // groups, cg, 4**ndim)  # (G, O_g, C_g, planes)
    return np.ascontiguousarray(u.transpose(3, 0, 2, 1))  # (planes, G, C_g, O_g)


def _weight_transform_adjoint(du: np.ndarray, ndim: int) -> np.ndarray:
    """``dw = G^T dU G`` on every spatial dim: ``(4**ndim, G, O_g, C_g) -> (O, C_g, 3, ...)``."""
    planes, groups, og, cg = du.shape
    w = du.transpose(1, 2, 3, 0).reshape((groups * og, cg) + (4,) * ndim)  # (O, C_g, 4, ...)
    g = _G.astype(du.dtype)
    for j in range(ndim):
        w = np.moveaxis(np.tensordot(w, g, axes=([2 + j], [0])), -1, 2 + j)  # (O, C_g, 3, ..)
    return np.ascontiguousarray(w)


# ------------------------------------------------------------------------------------------------
# one chunk of one piece
# ------------------------------------------------------------------------------------------------
#
# Layout: channels last, batch next to last, every transformed dim split by parity. The padded
# input is ``XP[(p_1 % 2, p_1 // 2), ..., n, c]`` so that the four slices a tile transform reads
# (positions 2t + 0..3) are contiguous ranges; every elementwise pass then runs over long
# contiguous rows of ``nb * C`` values, and the products see the transformed input as
# ``(tiles * nb, C)`` matrices -- the orientation OpenBLAS runs fastest on thin matrices.


class _Buffers:
    """Flat scratch arrays, viewed with the shapes of the current chunk (never reallocated)."""

    def __init__(self):
        self.arrays = {}
        self.nb = {}

    def add(self, name: str, count: int, size: int, dtype, zero: bool = False) -> None:
        self.arrays[name] = (workspace.zeros if zero else workspace.empty)((count, size), dtype)

    def view(self, name: str, i: int, shape) -> np.ndarray:
        return self.arrays[name][i, : math.prod(shape)].reshape(shape)

    def rezero(self, name: str, nb: int) -> None:
        """Zero buffer ``name`` when the chunk size changes (its padding moves in memory)."""
        if self.nb.get(name, nb) != nb:
            self.arrays[name].fill(0)
        self.nb[name] = nb


def _split(dims) -> tuple[int, ...]:
    """Per dim ``(2, n // 2)``: a dim of even length ``n`` split by parity."""
    return tuple(v for n in dims for v in (2, n // 2))


def _interleaved(tiles) -> tuple[int, ...]:
    """Per dim ``(T, 2)``: positions ``2t + i`` in natural order."""
    return tuple(v for t in tiles for v in (t, 2))


def _workspace(prob: _Problem, nb: int, c: int, o: int, dtype, kind: str) -> _Buffers:
    b = _Buffers()
    nd, T = prob.ndim, prob.tiles
    b.add("xp", 1, math.prod(prob.padded) * nb * c, dtype, zero=True)
    for k in range(nd - 1):
        b.add(f"in{k}", 4 ** (k + 1), math.prod(T[: k + 1]) * math.prod(prob.padded[k + 1 :]) * nb * c, dtype)
    b.add("V", prob.planes, prob.ntiles * nb * c, dtype)
    b.add("M", prob.planes, prob.ntiles * nb * o, dtype)
    if kind == "forward":
        for k in range(nd):
            b.add(f"out{k}", 4 ** (nd - k - 1), 2 ** (k + 1) * prob.ntiles * nb * o, dtype)
    else:
        b.add("dyp", 1, 2**nd * prob.ntiles * nb * o, dtype, zero=True)
        for k in range(nd - 1):
            b.add(f"g{k}", 4 ** (k + 1), 2 ** (nd - k - 1) * prob.ntiles * nb * o, dtype)
    return b


def _per_item(prob: _Problem, c: int, o: int, itemsize: int, kind: str) -> int:
    """Scratch bytes per batch element (the sizes :func:`_workspace` allocates, divided by ``nb``)."""
    nd, T, t = prob.ndim, prob.tiles, prob.ntiles
    n = math.prod(prob.padded) * c + prob.planes * t * (c + o)
    n += sum(4 ** (k + 1) * math.prod(T[: k + 1]) * math.prod(prob.padded[k + 1 :]) * c for k in range(nd - 1))
    if kind == "forward":
        n += sum(4 ** (nd - k - 1) * 2 ** (k + 1) * t * o for k in range(nd))
    else:
        n += 2**nd * t * o + sum(4 ** (k + 1) * 2 ** (nd - k - 1) * t * o for k in range(nd - 1))
    return n * itemsize


def _load_input(b: _Buffers, prob: _Problem, x: np.ndarray) -> np.ndarray:
    """Copy the chunk ``x`` ``(nb, C, *size)`` into the zero-padded, parity-split ``XP``; return its view."""
    nb, c = x.shape[:2]
    b.rezero("xp", nb)
    xp = b.view("xp", 0, _split(prob.padded) + (nb, c))
    for parity in itertools.product((0, 1), repeat=prob.ndim):
        dest, src = [], [slice(None), slice(None)]
        for pi, lo, h in zip(parity, prob.lo, prob.size):
            h0 = (pi - lo) % 2  # first input position with padded parity pi
            cnt = -(-(h - h0) // 2) if h0 < h else 0
            dest += [pi, slice((lo + h0) // 2, (lo + h0) // 2 + cnt)]
            src.append(slice(h0, h0 + 2 * cnt - 1 if cnt else h0, 2))
        if all(isinstance(d, int) or d.stop > d.start for d in dest):
            xp[tuple(dest)] = np.moveaxis(x[tuple(src)], (0, 1), (-2, -1))
    return xp


def _transform_input(b: _Buffers, prob: _Problem, x: np.ndarray) -> None:
    """``V[p]`` = the input transform ``BT d B`` of every tile of the chunk ``x``, as ``(*T, nb, C)``."""
    nb, c = x.shape[:2]
    nd, T = prob.ndim, prob.tiles
    state = {(): _load_input(b, prob, x)}  # key: (xi_1, ..., xi_k) of the dims done so far
    for k in range(nd):
        shape = T[: k + 1] + _split(prob.padded[k + 1 :]) + (nb, c)
        new = {}
        for n, (key, a) in enumerate(state.items()):
            lead = (slice(None),) * k
            s0, s1, s2, s3 = (a[lead + (j % 2, slice(j // 2, j // 2 + T[k]))] for j in range(4))
            if k == nd - 1:
                outs = [b.view("V", prob.keys.index(key + (xi,)), shape) for xi in range(4)]
            else:
                outs = [b.view(f"in{k}", 4 * n + xi, shape) for xi in range(4)]
            np.subtract(s0, s2, out=outs[0])  # BT = [[1, 0,-1, 0],
            np.add(s1, s2, out=outs[1])  #       [0, 1, 1, 0],
            np.subtract(s2, s1, out=outs[2])  #       [0,-1, 1, 0],
            np.subtract(s1, s3, out=outs[3])  #       [0, 1, 0,-1]]
            new.update({key + (xi,): out for xi, out in enumerate(outs)})
        state = new


def _transform_output(b: _Buffers, prob: _Problem, nb: int, o: int, y: np.ndarray) -> None:
    """``y`` ``(nb, O, *out)`` = the output transform ``AT M A`` of the products ``M[p]`` ``(*T, nb, O)``."""
    nd, T = prob.ndim, prob.tiles
    state = {key: b.view("M", p, T + (nb, o)) for p, key in enumerate(prob.keys)}  # key: (xi_{k+1}, ..., xi_n)
    for k in range(nd):
        shape = _interleaved(T[: k + 1]) + T[k + 1 :] + (nb, o)
        new = {}
        for n, rest in enumerate(dict.fromkeys(key[1:] for key in state)):
            m0, m1, m2, m3 = (state[(xi,) + rest] for xi in range(4))
            out = b.view(f"out{k}", n, shape)
            lead = (slice(None),) * (2 * k + 1)
            d0, d1 = out[lead + (0,)], out[lead + (1,)]
            np.add(m0, m1, out=d0)  # AT = [[1, 1, 1, 0],
            np.add(d0, m2, out=d0)
            np.subtract(m1, m2, out=d1)  #       [0, 1,-1,-1]]
            np.subtract(d1, m3, out=d1)
            new[rest] = out
        state = new
    yb = state[()].reshape(tuple(2 * t for t in T) + (nb, o))
    y[...] = np.moveaxis(yb[tuple(slice(0, n) for n in prob.out)], (-2, -1), (0, 1))


def _transform_grad_output(b: _Buffers, prob: _Problem, dy: np.ndarray) -> None:
    """``M[p]`` = the adjoint output transform ``A^T dY AT^T`` of the chunk ``dy`` ``(nb, O, *out)``."""
    nb, o = dy.shape[:2]
    nd, T = prob.ndim, prob.tiles
    b.rezero("dyp", nb)
    dyp = b.view("dyp", 0, _interleaved(T) + (nb, o))
    dyp.reshape(tuple(2 * t for t in T) + (nb, o))[tuple(slice(0, n) for n in prob.out)] = np.moveaxis(dy, (0, 1), (-2, -1))
    state = {(): dyp}
    for k in range(nd):
        shape = T[: k + 1] + _interleaved(T[k + 1 :]) + (nb, o)
        new = {}
        for n, (key, a) in enumerate(state.items()):
            lead = (slice(None),) * (k + 1)
            d0, d1 = a[lead + (0,)], a[lead + (1,)]
            if k == nd - 1:
                outs = [b.view("M", prob.keys.index(key + (xi,)), shape) for xi in range(4)]
            else:
                outs = [b.view(f"g{k}", 4 * n + xi, shape) for xi in range(4)]
            np.copyto(outs[0], d0)  # AT^T = [[1, 0], [1, 1], [1,-1], [0,-1]]
            np.add(d0, d1, out=outs[1])
            np.subtract(d0, d1, out=outs[2])
            np.negative(d1, out=outs[3])
            new.update({key + (xi,): out for xi, out in enumerate(outs)})
        state = new


def _forward_pieces(x: np.ndarray, UT: np.ndarray, y: np.ndarray, pieces, groups: int) -> None:
    """``y = correlate(x, w)`` piece by piece (``UT`` from :func:`_weight_transform`); ``y`` must be
    zero where a piece is ``None``."""
    c, o = x.shape[1], y.shape[1]
    cg, og = UT.shape[2], UT.shape[3]
    for in_ix, out_ix, prob in pieces:
        if prob is None:
            continue
        xs, ys = x[in_ix], y[out_ix]
        plan = parallel.plan(x.shape[0], _per_item(prob, c, o, x.itemsize, "forward"), UT.nbytes)

        def scratch(prob=prob, plan=plan):
            return _workspace(prob, plan.chunk, c, o, x.dtype, "forward")

        def process(b, n0, n1, prob=prob, xs=xs, ys=ys):
            nb = n1 - n0
            _transform_input(b, prob, xs[n0:n1])
            rows = prob.ntiles * nb
            for p in range(prob.planes):
                v = b.view("V", p, (rows, c))
                m = b.view("M", p, (rows, o))
                for g in range(groups):
                    blas.gemm(v[:, g * cg : (g + 1) * cg], UT[p, g], m[:, g * og : (g + 1) * og])
            _transform_output(b, prob, nb, o, ys[n0:n1])

        parallel.run(plan, scratch, process)


class Winograd(Algorithm):
    name = "winograd"
    summary = ("Winograd F(2,3) on every spatial dim for 3-tap kernels at stride 1 (dilation by splitting into "
               "phases): 2.25x fewer multiplications in 2-D")

    def spreads_nonfinite(self, op: str) -> bool:
        return True  # a tile's transform mixes all its inputs

    def unsupported(self, spec: ConvSpec, op: str) -> str | None:
        if any(k != 3 for k in spec.kernel_size):
            return f"it needs a kernel of size 3 along every spatial dim, got kernel_size {spec.kernel_size}"
        if any(s != 1 for s in spec.stride):
            return f"it needs stride 1, got stride {spec.stride}"
        return None

    def forward(self, x, w, spec):
        y = np.zeros(spec.output_shape, dtype=x.dtype)
        if spec.batch == 0:
            return y
        U = _weight_transform(w, spec.ndim, spec.groups)
        pieces = _pieces(spec.input_size, spec.output_size, spec.pad_lo, spec.dilation)
        _forward_pieces(x, U, y, pieces, spec.groups)
        return y

    def grad_input(self, dy, w, spec):
        # dx[h] = sum_k dy[h + P_lo - k*D] w[k]: the correlation of dy with the flipped kernel,
        # input and output channels exchanged within each group, padding 2*D - P_lo.
        dx = np.zeros(spec.input_shape, dtype=dy.dtype)
        if spec.batch == 0:
            return dx
        nd, G = spec.ndim, spec.groups
        wf = np.flip(w, axis=tuple(range(2, 2 + nd)))
        wf = wf.reshape((G, spec.out_per_group, spec.in_per_group) + spec.kernel_size).swapaxes(1, 2)
        wf = np.ascontiguousarray(wf).reshape((spec.in_channels, spec.out_per_group) + spec.kernel_size)
        U = _weight_transform(wf, nd, G)
        lo = tuple(2 * d - p for d, p in zip(spec.dilation, spec.pad_lo))
        pieces = _pieces(spec.output_size, spec.input_size, lo, spec.dilation)
        _forward_pieces(dy, U, dx, pieces, G)
        return dx

    def grad_weight(self, x, dy, spec):
        nd, G = spec.ndim, spec.groups
        og, cg = spec.out_per_group, spec.in_per_group
        dU = np.zeros((4**nd, G, og, cg), dtype=x.dtype)
        if spec.batch == 0:
            return _weight_transform_adjoint(dU, nd)
        c, o = spec.in_channels, spec.out_channels
        for in_ix, out_ix, prob in _pieces(spec.input_size, spec.output_size, spec.pad_lo, spec.dilation):
            if prob is None:
                continue
            xs, dys = x[in_ix], dy[out_ix]
            plan = parallel.plan(spec.batch, _per_item(prob, c, o, x.itemsize, "grad_weight"), dU.nbytes)

            def scratch(prob=prob, plan=plan):
                return _workspace(prob, plan.chunk, c, o, x.dtype, "grad_weight"), np.zeros_like(dU)

            def process(s, n0, n1, prob=prob, xs=xs, dys=dys):
                b, part = s
                nb = n1 - n0
                _transform_input(b, prob, xs[n0:n1])
                _transform_grad_output(b, prob, dys[n0:n1])
                rows = prob.ntiles * nb
                for p in range(prob.planes):
                    v = b.view("V", p, (rows, c))
                    m = b.view("M", p, (rows, o))
                    for g in range(G):
                        # dU[p] (O_g, C_g) += dM[p].T (O_g, rows) @ V[p] (rows, C_g)
                        blas.gemm(m[:, g * og : (g + 1) * og].T, v[:, g * cg : (g + 1) * cg], part[p, g], beta=1.0)

            for _, part in parallel.run(plan, scratch, process):
                dU += part
        return _weight_transform_adjoint(dU, nd)
