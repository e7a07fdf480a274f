"""``tapgemm``: kernel taps as shifted slices of the padded input, a few taps per matrix product.

With the flat-offset layout (:mod:`._flat`), tap ``k`` of every output position of a chunk of
the batch reads one contiguous slice ``xs_k`` (``(C_g, cols)``) of the padded input. The taps
are taken ``T_s`` at a time ("a stack"); per group ``g`` and stack ``s`` (``xs_s`` = the slices of
its taps stacked along the channels, ``(T_s*C_g, cols)``; ``w_s`` = their weights side by side,
``(O_g, T_s*C_g)``)::

    forward      y_ext         = sum_s  w_s[g] @ xs_s            (O_g, T_s*C_g) @ (T_s*C_g, cols)
    grad_input   dxs_s         = w_s[g].T @ dy_ext, added back tap by tap onto the padded input
    grad_weight  dw[:, :, s]  += dy_ext @ xs_s.T                 (O_g, cols) @ (cols, T_s*C_g)

With ``T_s = 1`` a tap's slice goes to BLAS as it is, accumulating into its destination (BLAS
``beta = 1``, :func:`convgrad.blas.gemm`): no copy at all per tap -- "one GEMM per kernel tap".
With ``T_s > 1`` the stack is copied, one column block at a time into a small buffer that stays
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

from .. import blas, parallel, runtime, workspace
from ..spec import ConvSpec, conv_spec
from ._flat import FlatLayout, flat_layout
from .base import Algorithm
from .work import Work, efficiency
from .registry import register

#: Inner dimension (taps x channels) a stack aims at, when the channels alone are fewer than
#: ``MIN_INNER``: BLAS runs near its peak from about here. From ``MIN_INNER`` channels on, the
#: copy a stack costs is more than it gains. Measured (ms fwd/dx/dw, one tap per product against
#: stacks): 6 -> 16 channels on 14x14 (g2) 0.90/0.85/1.02 against 1.08/1.07/1.62; 8 -> 8 on 8x8
#: 0.30/0.39/0.37 against 0.36/0.38/0.56; but 3 -> 16 on 64x64 1.2/1.8/2.6 against 0.76/0.94/1.4,
#: 4 -> 32 on 32x32 1.3/1.8/2.6 against 1.1/1.3/1.6 and the 3-channel stem (d) 52/84/118 against
#: 38/37/39. (Earlier, with a product costing ~7 us of Python, the threshold was 16.)
TARGET_INNER = 160
MIN_INNER = 6
#: Bytes of the operands of one product (column block of the stack and of the output).
BLOCK_BYTES = 4 * 2**20
#: A chunk is interleaved (batch innermost) when that saves at least this factor of columns.
INTERLEAVE_GAIN = 1.1
MIN_CHUNKS = 2


def stack_size(spec: ConvSpec, op: str = "forward") -> int:
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


#: Which side of each operation is laid out channels last (positions as rows): ``(input, output)``.
#: Measured with two threads (ms, layers a / f / h / i): the weight gradient with the input
#: channels last, ``dy (O_g, Q) @ x_k (Q, C_g)``, 62/41/143/45 -> 53/39/121/33 (BLAS reads the
#: long dimension of both operands in order); the forward channels first on both sides,
#: ``w_k (O_g, C_g) @ x_k (C_g, Q)``, 53/36/136/30 -> 48/32/114/27 against the transposed product
#: (whose channels-last output also costs a transposing copy); the input gradient channels first.
CHANNELS_LAST = {"forward": (False, False), "grad_input": (False, False), "grad_weight": (True, False)}


#: The names of a worker's buffers (:meth:`_Plan.scratch`), in the order the operations unpack them.
_SIDES = ("in", "in_buf", "out", "out_buf", "stack", "stack_buf", "state")


class _Plan:
    """Everything an operation needs: layout, stacks, chunking, buffers and the products' operands.

    Buffers are 2-D. The input side holds one ``(C, chunk*Q)`` matrix per phase (rows ``q*C + c``),
    or ``(chunk*Q, C)`` channels last (rows ``q*chunk*Q + column``); the output side is
    ``(O, chunk*Q)`` or ``(chunk*Q, O)``; the stack ``(T_s*C_g, width)``. A chunk of ``nb`` elements
    uses the first ``nb*Q`` columns (rows), laid out as :meth:`FlatLayout.chunk_grid` says
    (interleaved or not). Tap and output blocks are handed out as logical ``(C_g, cols)`` and
    ``(O_g, cols)`` matrices whatever the layout (:class:`convgrad.blas.Block` transposes are free).
    """

    def __init__(self, spec: ConvSpec, op: str, itemsize: int, fixed_extra: int = 0, sides: dict | None = None):
        self.spec = spec
        self.lay: FlatLayout = flat_layout(spec)
        self.grid_size = self.lay.size
        self.nph = len(self.lay.phases)
        ntaps = len(self.lay.taps)
        self.stack_size = stack_size(spec, op)
        self.stacks = [list(range(t, min(t + self.stack_size, ntaps))) for t in range(0, ntaps, self.stack_size)]
        cg, og = spec.in_per_group, spec.out_per_group
        x_cl, y_cl = (CHANNELS_LAST if sides is None else sides)[op]
        self.x_cl = x_cl and self.stack_size == 1  # a stack is copied row by row from a channels-first input
        self.y_cl = y_cl
        threads = runtime.get_num_threads()
        block_bytes = min(BLOCK_BYTES, max(runtime.get_workspace_limit() // (4 * threads), 1))
        self.width = max(64, block_bytes // ((self.stack_size * cg + og) * itemsize))
        stack_buf = self.stack_size * cg * self.width * itemsize if self.stack_size > 1 else 0
        per_item = (self.nph * spec.in_channels + spec.out_channels) * self.grid_size * itemsize
        self.chunking = parallel.plan(spec.batch, per_item, stack_buf + fixed_extra, min_chunks_per_worker=MIN_CHUNKS)
        chunk = self.chunking.chunk
        self.interleaved = chunk > 1 and self.lay.columns(chunk) >= INTERLEAVE_GAIN * self.lay.columns(chunk, True)

    # -- buffers ------------------------------------------------------------------------------------

    def input_side(self, dtype, zero: bool = True) -> tuple[np.ndarray, blas.Buffer]:
        c, cols = self.spec.in_channels, self.chunking.chunk * self.grid_size
        shape = (self.nph * cols, c) if self.x_cl else (self.nph * c, cols)
        a = (workspace.zeros if zero else workspace.empty)(shape, dtype)
        return a, blas.Buffer(a)

    def output_side(self, dtype, zero: bool = True) -> tuple[np.ndarray, blas.Buffer]:
        o, cols = self.spec.out_channels, self.chunking.chunk * self.grid_size
        a = (workspace.zeros if zero else workspace.empty)((cols, o) if self.y_cl else (o, cols), dtype)
        return a, blas.Buffer(a)

    def scratch(self, dtype, zero_input: bool = True, zero_output: bool = True) -> dict:
        """One worker's named buffers (:data:`_SIDES`): input side, output side, stack block, layout state."""
        xa, xbuf = self.input_side(dtype, zero=zero_input)
        ya, ybuf = self.output_side(dtype, zero=zero_output)
        sa, sbuf = self.stack_side(dtype)
        return {"in": xa, "in_buf": xbuf, "out": ya, "out_buf": ybuf, "stack": sa, "stack_buf": sbuf, "state": {}}

    def stack_side(self, dtype) -> tuple[np.ndarray | None, blas.Buffer | None]:
        if self.stack_size == 1:
            return None, None
        a = workspace.empty((self.stack_size * self.spec.in_per_group, self.width), dtype)
        return a, blas.Buffer(a)

    def weights(self, w: np.ndarray) -> tuple[np.ndarray, blas.Buffer]:
        """``(stacks*G*O_g, T_s*C_g)``: each stack's tap matrices side by side (zeros past a short last stack)."""
        spec = self.spec
        wt = taps_first(w, spec)  # (T, G, O_g, C_g)
        cg = spec.in_per_group
        ws = workspace.zeros((len(self.stacks), spec.groups, spec.out_per_group, self.stack_size * cg), w.dtype)
        for j, stack in enumerate(self.stacks):
            for i, t in enumerate(stack):
                ws[j, :, :, i * cg : (i + 1) * cg] = wt[t]
        ws = ws.reshape(-1, self.stack_size * cg)  # (stacks*G*O_g, T_s*C_g)
        return ws, blas.Buffer(ws)

    def weight_block(self, wbuf: blas.Buffer, j: int, g: int) -> blas.Block:
        """``(O_g, len(stack)*C_g)``: the weights of stack ``j``, group ``g``."""
        og = self.spec.out_per_group
        r0 = (j * self.spec.groups + g) * og
        return wbuf.block(r0, r0 + og, 0, len(self.stacks[j]) * self.spec.in_per_group)

    # -- a chunk ------------------------------------------------------------------------------------

    def phase_mats(self, a: np.ndarray, nb: int) -> list[np.ndarray]:
        """The input side of a chunk of ``nb`` elements: one ``(C, nb*Q)`` (or ``(nb*Q, C)``) view per phase."""
        c, n, cols = self.spec.in_channels, nb * self.grid_size, self.chunking.chunk * self.grid_size
        if self.x_cl:
            return [a[q * cols : q * cols + n] for q in range(self.nph)]
        return [a[q * c : (q + 1) * c, :n] for q in range(self.nph)]

    def scatter(self, x: np.ndarray, a: np.ndarray) -> None:
        """The chunk ``x`` into the real positions of the input side ``a`` (whose other entries are zero)."""
        nb = x.shape[0]
        self.lay.scatter(x, self.phase_mats(a, nb), self.interleaved, self.x_cl)

    def gather(self, a: np.ndarray, dx: np.ndarray) -> None:
        self.lay.gather(self.phase_mats(a, dx.shape[0]), dx, self.interleaved, self.x_cl)

    def output_grid(self, a: np.ndarray, nb: int) -> np.ndarray:
        """The output positions of the output side, ``(nb, O, *H_out)`` (a view)."""
        mat = a[: nb * self.grid_size] if self.y_cl else a[:, : nb * self.grid_size]
        return self.lay.outputs(self.lay.chunk_grid(mat, nb, self.interleaved, self.y_cl))

    def fresh(self, state: dict, key: str, a: np.ndarray, nb: int) -> None:
        """Zero ``a`` when an interleaved chunk changes size (its real positions move in memory)."""
        if self.interleaved and state.get(key, nb) != nb:
            a.fill(0)
        state[key] = nb

    def blocks(self, nb: int):
        """Column ranges ``(c0, c1)`` covering the positions of a chunk of ``nb`` elements."""
        ncol = self.lay.columns(nb, self.interleaved)
        return [(c0, min(ncol, c0 + self.width)) for c0 in range(0, ncol, self.width)]

    def _tap_range(self, t: int, g: int, nb: int, c0: int, c1: int):
        cg = self.spec.in_per_group
        q = self.lay.tap_phase[t]
        off = self.lay.tap_offset[t] * (nb if self.interleaved else 1)
        if self.x_cl:
            base = q * self.chunking.chunk * self.grid_size + off
            return base + c0, base + c1, g * cg, (g + 1) * cg
        r0 = q * self.spec.in_channels + g * cg
        return r0, r0 + cg, off + c0, off + c1

    def tap_block(self, xbuf: blas.Buffer, t: int, g: int, nb: int, c0: int, c1: int) -> blas.Block:
        """Columns ``[c0, c1)`` of what tap ``t`` reads for group ``g``: a ``(C_g, c1-c0)`` matrix."""
        b = xbuf.block(*self._tap_range(t, g, nb, c0, c1))
        return b.T if self.x_cl else b

    def tap_view(self, a: np.ndarray, t: int, g: int, nb: int, c0: int, c1: int) -> np.ndarray:
        """:meth:`tap_block` as a NumPy view of the input side ``a``."""
        r0, r1, k0, k1 = self._tap_range(t, g, nb, c0, c1)
        v = a[r0:r1, k0:k1]
        return v.T if self.x_cl else v

    def out_block(self, ybuf: blas.Buffer, g: int, c0: int, c1: int) -> blas.Block:
        """Columns ``[c0, c1)`` of group ``g`` of the output side: an ``(O_g, c1-c0)`` matrix."""
        og = self.spec.out_per_group
        if self.y_cl:
            return ybuf.block(c0, c1, g * og, (g + 1) * og).T
        return ybuf.block(g * og, (g + 1) * og, c0, c1)

    def stacked(self, a, xbuf, stack, g, nb, c0, c1, sa, sbuf) -> blas.Block:
        """The stack's slices one above the other, ``(len(stack)*C_g, c1-c0)``: the slice itself
        for a single tap, else a copy into the stack buffer ``sa``."""
        if len(stack) == 1:
            return self.tap_block(xbuf, stack[0], g, nb, c0, c1)
        cg = self.spec.in_per_group
        for i, t in enumerate(stack):
            sa[i * cg : (i + 1) * cg, : c1 - c0] = self.tap_view(a, t, g, nb, c0, c1)
        return sbuf.block(0, len(stack) * cg, 0, c1 - c0)


def _product(a: blas.Block, b: blas.Block, c: blas.Block, beta: float) -> None:
    """``c = a @ b + beta * c`` for logical blocks, ``c`` possibly a transposed view (then ``c.T = b.T @ a.T``)."""
    if c.trans:
        blas.gemm_blocks(b.T, a.T, c.T, beta=beta)
    else:
        blas.gemm_blocks(a, b, c, beta=beta)


class TapGemm(Algorithm):
    name = "tapgemm"
    fallback = True  # it supports every configuration
    #: The buffers' layouts per operation (:data:`CHANNELS_LAST`; a channels-last variant sets its own).
    sides = CHANNELS_LAST

    def result(self, shape: tuple[int, ...], dtype, zero: bool = False) -> np.ndarray:
        """A fresh result array of ``shape`` (channels first here; a channels-last variant overrides it)."""
        return (np.zeros if zero else np.empty)(shape, dtype=dtype)

    def work(self, spec: ConvSpec, op: str) -> Work:
        lay = flat_layout(spec)
        n, G, og, cg = spec.batch, spec.groups, spec.out_per_group, spec.in_per_group
        T = len(lay.taps)
        stack = stack_size(spec, op)
        stacks = -(-T // stack)
        cols = min(lay.columns(n), lay.columns(n, interleaved=True))  # small maps: chunks interleaved
        flops = 2.0 * G * og * cg * T * cols
        k, m = {"forward": (stack * cg, og), "grad_input": (og, stack * cg), "grad_weight": (cols, min(og, stack * cg))}[op]
        inputs = n * spec.in_channels * math.prod(spec.input_size)
        outputs = n * spec.out_channels * math.prod(spec.output_size)
        # a stack is copied into a block of BLOCK_BYTES, beyond the core's cache: written out, and
        # read back by BLAS (for dx: written by BLAS, read back to be added onto the taps)
        elem = inputs + outputs + (2 * T * spec.in_channels * cols if stack > 1 else 0)
        if op == "grad_input":
            elem += len(lay.phases) * spec.in_channels * cols  # zeroing the phase buffer
        if op == "grad_weight":
            elem += outputs
        width = max(64, BLOCK_BYTES // ((stack * cg + og) * 4))
        calls = G * stacks * (1 + (stack if stack > 1 else 0)) * max(1, cols // width) + 10
        return Work(flops / efficiency(k, m), elem, calls)

    def examples(self):
        # position len//3 of x is x[1, 0, 0, 0]: column 0, which the padded margin of the row above
        # reaches through the last tap of a row (flat layout) although no output reads it there
        return (conv_spec((2, 3, 7, 6), (4, 3, 3, 3), padding=1),
                conv_spec((5, 4, 9, 8), (6, 2, 3, 3), stride=2, padding=1, groups=2),
                conv_spec((3, 3, 12, 11), (8, 3, 5, 5), stride=(2, 1), padding=2))  # a stack of taps (3 channels)

    def spreads_nonfinite(self, op: str) -> bool:
        # the padded margin of each row ("garbage columns") multiplies zeros by weights / inputs
        return op != "forward"

    bias_ops = frozenset({"forward"})

    def forward(self, x, w, spec, bias=None):
        y = self.result(spec.output_shape, x.dtype)
        if spec.batch == 0:
            return y
        pl = _Plan(spec, "forward", x.itemsize, sides=self.sides)
        bias_b = None if bias is None else bias.reshape((1, -1) + (1,) * spec.ndim)
        _, wbuf = pl.weights(w)

        def scratch():
            return pl.scratch(x.dtype, zero_output=False)

        def process(s, n0, n1):
            xa, xbuf, ya, ybuf, sa, sbuf, state = (s[k] for k in _SIDES)
            nb = n1 - n0
            pl.fresh(state, "x", xa, nb)
            pl.scatter(x[n0:n1], xa)
            for g in range(spec.groups):
                for c0, c1 in pl.blocks(nb):
                    out = pl.out_block(ybuf, g, c0, c1)  # (O_g, cols)
                    for j, stack in enumerate(pl.stacks):
                        src = pl.stacked(xa, xbuf, stack, g, nb, c0, c1, sa, sbuf)  # (T_s*C_g, cols)
                        _product(pl.weight_block(wbuf, j, g), src, out, 0.0 if j == 0 else 1.0)
            if bias_b is None:
                y[n0:n1] = pl.output_grid(ya, nb)
            else:
                np.add(pl.output_grid(ya, nb), bias_b, out=y[n0:n1])

        parallel.run_chunks(pl.chunking, scratch, process)
        return y

    def grad_input(self, dy, w, spec):
        dx = self.result(spec.input_shape, dy.dtype, zero=True)
        if spec.batch == 0:
            return dx
        pl = _Plan(spec, "grad_input", dy.itemsize, sides=self.sides)
        cg = spec.in_per_group
        _, wbuf = pl.weights(w)

        def scratch():
            return pl.scratch(dy.dtype, zero_input=False)

        def process(s, n0, n1):
            dxa, dxbuf, dya, dybuf, sa, sbuf, state = (s[k] for k in _SIDES)
            nb = n1 - n0
            pl.fresh(state, "dy", dya, nb)
            pl.output_grid(dya, nb)[...] = dy[n0:n1]  # margins stay 0
            for mat in pl.phase_mats(dxa, nb):
                mat[...] = 0
            for g in range(spec.groups):
                for c0, c1 in pl.blocks(nb):
                    src = pl.out_block(dybuf, g, c0, c1)  # (O_g, cols)
                    for j, stack in enumerate(pl.stacks):
                        wt = pl.weight_block(wbuf, j, g).T  # (T_s*C_g, O_g)
                        if len(stack) == 1:
                            _product(wt, src, pl.tap_block(dxbuf, stack[0], g, nb, c0, c1), 1.0)
                            continue
                        _product(wt, src, sbuf.block(0, len(stack) * cg, 0, c1 - c0), 0.0)
                        for i, t in enumerate(stack):
                            pl.tap_view(dxa, t, g, nb, c0, c1)[...] += sa[i * cg : (i + 1) * cg, : c1 - c0]
            pl.gather(dxa, dx[n0:n1])

        parallel.run_chunks(pl.chunking, scratch, process)
        return dx

    def grad_weight(self, x, dy, spec):
        if spec.batch == 0:
            return np.zeros(spec.weight_shape, dtype=x.dtype)
        cg, og = spec.in_per_group, spec.out_per_group
        probe = stack_size(spec, "grad_weight")
        nstacks = -(-math.prod(spec.kernel_size) // probe)
        shape = (nstacks * spec.groups * og, probe * cg)
        pl = _Plan(spec, "grad_weight", x.itemsize, fixed_extra=math.prod(shape) * x.itemsize, sides=self.sides)

        def scratch():
            s = pl.scratch(x.dtype)
            s["dw"] = workspace.zeros(shape, x.dtype)  # (stacks*G*O_g, T_s*C_g) partial sum
            s["dw_buf"] = blas.Buffer(s["dw"])
            return s

        def process(s, n0, n1):
            xa, xbuf, dya, dybuf, sa, sbuf, state = (s[k] for k in _SIDES)
            dwbuf = s["dw_buf"]
            nb = n1 - n0
            pl.fresh(state, "x", xa, nb)
            pl.fresh(state, "dy", dya, nb)
            pl.scatter(x[n0:n1], xa)
            pl.output_grid(dya, nb)[...] = dy[n0:n1]  # margins stay 0
            for g in range(spec.groups):
                for c0, c1 in pl.blocks(nb):
                    d = pl.out_block(dybuf, g, c0, c1)  # (O_g, cols)
                    for j, stack in enumerate(pl.stacks):
                        src = pl.stacked(xa, xbuf, stack, g, nb, c0, c1, sa, sbuf)  # (T_s*C_g, cols)
                        _product(d, src.T, pl.weight_block(dwbuf, j, g), 1.0)

        total = parallel.run_chunks(pl.chunking, scratch, process, reduce=("dw",))["dw"]
        total = total.reshape(nstacks, spec.groups, og, probe * cg)
        wt = np.empty((len(pl.lay.taps), spec.groups, og, cg), dtype=x.dtype)  # (T, G, O_g, C_g)
        for j, stack in enumerate(pl.stacks):
            for i, t in enumerate(stack):
                wt[t] = total[j, :, :, i * cg : (i + 1) * cg]
        return weight_from_taps(wt, spec)


register(TapGemm())
