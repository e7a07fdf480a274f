"""``depthwise``: one elementwise pass per kernel tap, for convolutions with one input channel per group.

When every group has a single input channel (``groups == in_channels``: depthwise convolution,
possibly with a channel multiplier ``m = C_out / C_in``), the sum over input channels that a
matrix product would do is empty; BLAS would multiply 1x1 matrices. Instead each tap is one
multiply-add over whole rows, with the flat-offset layout (:mod:`._flat`) making the tap's
input a contiguous slice (``g`` the group = input channel, ``j < m`` its output channels)::

    forward      y[g, j]        += w[g*m + j, k] * xs_k[g]                 (every output position)
    grad_input   dxs_k[g]       += sum_j w[g*m + j, k] * dy[g, j]
    grad_weight  dw[g*m + j, k]  = sum over positions of dy[g, j] * xs_k[g]

Work is cut into chunks of the batch (worker threads, workspace limit) and, inside a chunk,
blocks of channels small enough that a tap's slices stay in cache between the passes.
"""

from __future__ import annotations

import math

import numpy as np

from .. import parallel, workspace
from ..spec import ConvSpec, conv_spec
from ._flat import flat_layout, reshaped
from .base import Algorithm
from .work import Work
from .registry import register

#: Bytes of the rows one elementwise pass covers (a chunk's channel block): about L2-sized.
BLOCK_BYTES = 2 * 2**20


class _Plan:
    def __init__(self, spec: ConvSpec, itemsize: int, fixed: int = 0):
        self.spec = spec
        self.lay = flat_layout(spec)
        self.grid_size = self.lay.size
        self.nph = len(self.lay.phases)
        self.m = spec.out_per_group
        # phase buffer, output-side buffer and the temporary of one pass (at most the output side)
        per_item = (self.nph * spec.in_channels + 2 * spec.out_channels) * self.grid_size * itemsize
        row = self.m * self.grid_size * itemsize  # one channel of one batch element
        self.chunking = parallel.plan(spec.batch, per_item, fixed, uses_blas=False,
                                      max_chunk=max(1, BLOCK_BYTES // (row * spec.groups)))
        self.cb = max(1, min(spec.groups, BLOCK_BYTES // (row * self.chunking.chunk)))

    def channel_blocks(self):
        return [(c0, min(self.spec.groups, c0 + self.cb)) for c0 in range(0, self.spec.groups, self.cb)]

    def tap_rows(self, buf: np.ndarray, nb: int):
        """Per tap, what it reads: a ``(C, columns)`` view of the ``(phases, C, nb, Q)`` buffer."""
        ncol = self.lay.columns(nb)
        rows = [reshaped(buf[q, :, :nb], (buf.shape[1], nb * self.grid_size)) for q in range(self.nph)]  # (C, nb*Q)
        return [rows[q][:, off : off + ncol] for q, off in zip(self.lay.tap_phase, self.lay.tap_offset)]


def _taps(w: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """``(T, G, m, 1)``: the weight of tap ``t`` for output channel ``g*m + j``."""
    return np.ascontiguousarray(w.reshape(spec.groups, spec.out_per_group, -1).transpose(2, 0, 1))[..., None]


class Depthwise(Algorithm):
    name = "depthwise"
    channel_products = False

    def work(self, spec: ConvSpec, op: str) -> Work:
        lay = flat_layout(spec)
        n, T = spec.batch, len(lay.taps)
        cols = n * lay.size
        inputs = n * spec.in_channels * math.prod(spec.input_size)
        outputs = n * spec.out_channels * math.prod(spec.output_size)
        passes = {"forward": 2, "grad_input": 2, "grad_weight": 1}[op]
        elem = passes * T * spec.out_channels * cols + inputs + outputs
        if op == "grad_weight":
            elem += outputs
        # a chunk holds as many elements as fit BLOCK_BYTES of output rows (one or two on large maps)
        chunk = max(1, min(n, BLOCK_BYTES // max(1, spec.out_per_group * lay.size * 4 * spec.groups)))
        blocks = max(1, spec.out_channels * lay.size * 4 * chunk // BLOCK_BYTES)  # channel blocks per chunk
        calls = -(-n // chunk) * blocks * T * passes + 10
        return Work(0.0, elem, calls)

    def examples(self):
        return (conv_spec((2, 3, 7, 6), (6, 1, 3, 3), padding=1, groups=3),
                conv_spec((5, 4, 9, 8), (8, 1, 3, 3), stride=2, padding=1, groups=4))

    def unsupported(self, spec: ConvSpec, op: str) -> str | None:
        if spec.in_per_group != 1:
            return (f"it needs one input channel per group (groups == in_channels), got {spec.in_channels} input "
                    f"channels in {spec.groups} groups")
        return None

    def spreads_nonfinite(self, op: str) -> bool:
        # the padded margin of each row ("garbage columns") multiplies zeros by weights / inputs
        return op != "forward"

    bias_ops = frozenset({"forward"})

    def forward(self, x, w, spec, bias=None):
        y = np.empty(spec.output_shape, dtype=x.dtype)
        if spec.batch == 0:
            return y
        bias_b = None if bias is None else bias.reshape((1, -1) + (1,) * spec.ndim)
        pl = _Plan(spec, x.itemsize)
        lay, Q, m = pl.lay, pl.grid_size, pl.m
        wt = _taps(w, spec)  # (T, G, m, 1)
        chunk = pl.chunking.chunk

        def scratch():
            width = pl.cb * m * lay.columns(chunk)
            return {"x": workspace.zeros((pl.nph, spec.in_channels, chunk, Q), x.dtype),  # (phases, C, nb, Q)
                    "y": workspace.empty((spec.out_channels, chunk, Q), x.dtype),  # (O, nb, Q)
                    "product": workspace.empty(width, x.dtype)}

        def process(s, n0, n1):
            xph, yext, tmp = s["x"], s["y"], s["product"]
            nb = n1 - n0
            lay.scatter_input(x[n0:n1], xph)
            ncol = lay.columns(nb)
            taps = pl.tap_rows(xph, nb)
            out = reshaped(yext[:, :nb], (spec.groups, m, nb * Q))[:, :, :ncol]  # (G, m, cols)
            for c0, c1 in pl.channel_blocks():
                acc = out[c0:c1]
                t_ = reshaped(tmp[: (c1 - c0) * m * ncol], (c1 - c0, m, ncol))
                for t in range(len(lay.taps)):
                    xs = taps[t][c0:c1, None, :]  # (C_b, 1, cols)
                    if t == 0:
                        np.multiply(xs, wt[t, c0:c1], out=acc)
                    else:
                        np.multiply(xs, wt[t, c0:c1], out=t_)
                        acc += t_
            if bias_b is None:
                y[n0:n1] = lay.output_view(yext, nb)
            else:
                np.add(lay.output_view(yext, nb), bias_b, out=y[n0:n1])

        parallel.run_chunks(pl.chunking, scratch, process)
        return y

    def grad_input(self, dy, w, spec):
        dx = np.zeros(spec.input_shape, dtype=dy.dtype)
        if spec.batch == 0:
            return dx
        pl = _Plan(spec, dy.itemsize)
        lay, Q, m = pl.lay, pl.grid_size, pl.m
        wt = _taps(w, spec)  # (T, G, m, 1)
        chunk = pl.chunking.chunk

        def scratch():
            width = pl.cb * m * lay.columns(chunk)
            return {"dx": workspace.empty((pl.nph, spec.in_channels, chunk, Q), dy.dtype),  # (phases, C, nb, Q)
                    "dy": workspace.zeros((spec.out_channels, chunk, Q), dy.dtype),  # (O, nb, Q); margins stay 0
                    "product": workspace.empty(width, dy.dtype)}

        def process(s, n0, n1):
            dxph, dyext, tmp = s["dx"], s["dy"], s["product"]
            nb = n1 - n0
            lay.output_view(dyext, nb)[...] = dy[n0:n1]
            dxph[:, :, :nb] = 0
            ncol = lay.columns(nb)
            taps = pl.tap_rows(dxph, nb)
            grad = reshaped(dyext[:, :nb], (spec.groups, m, nb * Q))[:, :, :ncol]  # (G, m, cols)
            for c0, c1 in pl.channel_blocks():
                d = grad[c0:c1]
                t_ = reshaped(tmp[: (c1 - c0) * m * ncol], (c1 - c0, m, ncol))
                for t in range(len(lay.taps)):
                    dest = taps[t][c0:c1]  # (C_b, cols)
                    np.multiply(d, wt[t, c0:c1], out=t_)
                    if m == 1:
                        dest += t_[:, 0]
                    else:
                        dest += t_.sum(axis=1)
            lay.gather_input(dxph, dx[n0:n1])

        parallel.run_chunks(pl.chunking, scratch, process)
        return dx

    def grad_weight(self, x, dy, spec):
        G, m = spec.groups, spec.out_per_group
        ntaps = math.prod(spec.kernel_size)
        if spec.batch == 0:
            return np.zeros(spec.weight_shape, dtype=x.dtype)
        pl = _Plan(spec, x.itemsize, fixed=ntaps * G * m * x.itemsize)
        lay, Q = pl.lay, pl.grid_size
        chunk = pl.chunking.chunk

        def scratch():
            return {"x": workspace.zeros((pl.nph, spec.in_channels, chunk, Q), x.dtype),  # (phases, C, nb, Q)
                    "dy": workspace.zeros((spec.out_channels, chunk, Q), x.dtype),  # (O, nb, Q); margins stay 0
                    "dw": np.zeros((ntaps, G, m, 1), dtype=x.dtype)}  # partial sum

        def process(s, n0, n1):
            xph, dyext, dwt = s["x"], s["dy"], s["dw"]
            nb = n1 - n0
            lay.scatter_input(x[n0:n1], xph)
            lay.output_view(dyext, nb)[...] = dy[n0:n1]
            ncol = lay.columns(nb)
            taps = pl.tap_rows(xph, nb)
            grad = reshaped(dyext[:, :nb], (G, m, nb * Q))[:, :, :ncol]  # (G, m, cols)
            for c0, c1 in pl.channel_blocks():
                d = grad[c0:c1]
                for t in range(len(lay.taps)):
                    xs = taps[t][c0:c1, :, None]  # (C_b, cols, 1)
                    dwt[t, c0:c1] += np.matmul(d, xs)  # (C_b, m, 1): one dot product per output channel

        total = parallel.run_chunks(pl.chunking, scratch, process, reduce=("dw",))["dw"]
        return np.ascontiguousarray(total[..., 0].transpose(1, 2, 0)).reshape(spec.weight_shape)  # (G, m, T)


register(Depthwise())
