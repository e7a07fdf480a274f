"""``pointwise``: a 1x1 convolution without padding is a matrix product per batch element.

Output position ``j`` reads only input position ``s*j`` (stride ``s``), so with ``xs[n]`` the
strided input ``x[n, :, ::s, ...]`` cut to the output's size, the spatial dims flattened (``P``
output positions) and channels first, per batch element ``n`` and group ``g``::

    forward      y[n, g]   = w[g] @ xs[n, g]           (O_g, C_g) @ (C_g, P)
    grad_input   dxs[n, g] = w[g].T @ dy[n, g]         (C_g, O_g) @ (O_g, P)    dx = 0 elsewhere
    grad_weight  dw[g]    += dy[n, g] @ xs[n, g].T     (O_g, P) @ (P, C_g)

At stride 1 (and every input position read) ``xs`` is the caller's array itself: no copy, no
scratch beyond the weight gradient's per-thread partial sums. With a stride -- ResNet's 1x1
projection shortcuts -- a chunk of elements' ``xs`` is gathered into a worker's buffer (one
strided copy, ``P * C`` values per element) and multiplied as one stack (``np.matmul``), and the
chunk's ``dxs`` is scattered back into its zeroed part of ``dx`` (a transposed convolution's
``output_padding`` leaves unread input too: the same zeroing). Measured on ResNet-8's first
projection (64 x 16 x 32 x 32, stride 2, float32, 2 threads, 2026-12-02): 1.4 / 2.0 / 2.0 ms
forward / input / weight gradient, against ``tapgemm``'s 2.3 / 3.2 / 2.9 (a product per element
instead of per chunk: 2.2 ms forward). The batch is shared out to the worker threads.
"""

from __future__ import annotations

import math

import numpy as np

from .. import blas, parallel, runtime
from ..spec import ConvSpec, conv_spec
from .base import Algorithm
from .work import Work, efficiency
from .registry import register


def _chunks(spec: ConvSpec, itemsize: int = 0, partial_sums: bool = False) -> parallel.Plan:
    """Batch elements shared out to the workers, a few chunks each. ``itemsize`` > 0: the strided path's scratch
    per element, a gathered (or scattered) ``(C, P)`` and the weight gradient's per-element products ``(O, C_g)``;
    ``partial_sums``: a worker's ``(O, C_g)`` weight gradient besides."""
    dw = spec.out_channels * spec.in_per_group
    per_item = 0 if _direct(spec) else itemsize * (max(spec.in_channels, spec.out_channels) * math.prod(spec.output_size)
                                                   + dw)
    return parallel.plan(spec.batch, per_item, itemsize * dw if partial_sums else 0,
                         max_chunk=max(1, math.ceil(spec.batch / (4 * runtime.get_num_threads()))))


def _direct(spec: ConvSpec) -> bool:
    """Whether every input position is read, by the output position of the same index (no gather needed)."""
    return all(s == 1 for s in spec.stride) and spec.input_size == spec.output_size


def _read(spec: ConvSpec) -> tuple:
    """The index of the positions the outputs read: ``x[n0:n1][_read(spec)]`` is ``(nb, C, *output_size)``."""
    return (slice(None), slice(None)) + tuple(slice(0, s * (o - 1) + 1, s) for s, o in zip(spec.stride, spec.output_size))


def _buffer(s: dict, name: str, shape: tuple, dtype) -> np.ndarray:
    """The worker's buffer ``name``, at least ``shape``'s size: its first ``prod(shape)`` values as ``shape``."""
    size = math.prod(shape)
    buf = s.get(name)
    if buf is None or buf.size < size or buf.dtype != dtype:
        buf = s[name] = np.empty(size, dtype)
    return buf[:size].reshape(shape)


def _gathered(x: np.ndarray, n0: int, n1: int, spec: ConvSpec, s: dict) -> np.ndarray:
    """``x[n0:n1]``'s read positions as ``(nb, G, C_g, P)``, copied into the worker's buffer (one strided copy)."""
    nb, c = n1 - n0, spec.in_channels
    buf = _buffer(s, "gather", (nb, c, *spec.output_size), x.dtype)
    np.copyto(buf, x[n0:n1][_read(spec)])  # (nb, C, *out) <- strided view
    return buf.reshape(nb, spec.groups, spec.in_per_group, -1)  # (nb, G, C_g, P)


class Pointwise(Algorithm):
    name = "pointwise"

    def work(self, spec: ConvSpec, op: str) -> Work:
        n, G, og, cg = spec.batch, spec.groups, spec.out_per_group, spec.in_per_group
        p = math.prod(spec.output_size)
        flops = 2.0 * n * G * og * cg * p
        k, m = {"forward": (cg, og), "grad_input": (og, cg), "grad_weight": (p, min(og, cg))}[op]
        if _direct(spec):  # a BLAS call per element and group, on the caller's arrays
            return Work(flops / efficiency(k, m), 0.0, n * G + 10)
        # a strided copy of each chunk's read positions (the input gradient: zeroing dx, then the scatter);
        # one stacked product per chunk (a few chunks per worker)
        c = spec.in_channels
        moved = n * c * p + (n * c * math.prod(spec.input_size) if op == "grad_input" else 0)
        if op == "grad_weight":  # the per-element products, written and summed
            moved += 2 * n * spec.out_channels * cg
        return Work(flops / efficiency(k, m), float(moved), 30)

    def examples(self):
        return (conv_spec((2, 3, 5, 4), (4, 3, 1, 1)),
                conv_spec((5, 4, 9, 8), (6, 2, 1, 1), groups=2),
                conv_spec((3, 6, 7), (4, 6, 1)),
                conv_spec((3, 4, 9, 8), (6, 4, 1, 1), stride=2),  # a projection shortcut: odd size, unread tail
                conv_spec((2, 6, 5, 7, 4), (4, 3, 1, 1, 1), stride=(2, 3, 1), groups=2))

    def unsupported(self, spec: ConvSpec, op: str) -> str | None:
        if any(k != 1 for k in spec.kernel_size):
            return f"it needs a 1x1 kernel, got kernel_size {spec.kernel_size}"
        if any(p != (0, 0) for p in spec.padding):
            return f"it needs no padding, got padding {spec.padding}"
        return None

    @staticmethod
    def _each_element(spec: ConvSpec, a: np.ndarray, w: np.ndarray, out: np.ndarray, transpose: bool,
                      beta: float = 0.0) -> np.ndarray:
        """``out[n, g] = w[g] @ a[n, g] + beta * out[n, g]`` (or ``w[g].T @ ...``) for every element and group."""
        G, og, cg = spec.groups, spec.out_per_group, spec.in_per_group
        wg = w.reshape(G, og, cg)
        rows_in, rows_out = (og, cg) if transpose else (cg, og)

        def process(_, n0, n1):
            for n in range(n0, n1):
                an = a[n].reshape(a.shape[1], -1)  # (channels, P): a view for a contiguous input
                on = out[n].reshape(out.shape[1], -1)
                for g in range(G):
                    m = wg[g].T if transpose else wg[g]
                    blas.gemm(m, an[g * rows_in : (g + 1) * rows_in], on[g * rows_out : (g + 1) * rows_out], beta=beta)

        parallel.run_chunks(_chunks(spec), dict, process)
        return out

    bias_ops = frozenset({"forward"})

    def forward(self, x, w, spec, bias=None):
        if not _direct(spec):
            return self._strided_forward(x, w, spec, bias)
        if bias is None:
            return self._each_element(spec, x, w, np.empty(spec.output_shape, dtype=x.dtype), transpose=False)
        # the products accumulate onto the bias (a write-only pass instead of a read-modify-write one)
        y = np.empty(spec.output_shape, dtype=x.dtype)
        y[...] = bias.reshape((1, -1) + (1,) * spec.ndim)
        return self._each_element(spec, x, w, y, transpose=False, beta=1.0)

    def grad_input(self, dy, w, spec):
        if _direct(spec):
            return self._each_element(spec, dy, w, np.empty(spec.input_shape, dtype=dy.dtype), transpose=True)
        G, og, cg = spec.groups, spec.out_per_group, spec.in_per_group
        wt = np.ascontiguousarray(w.reshape(G, og, cg).transpose(0, 2, 1))  # (G, C_g, O_g)
        dx = np.empty(spec.input_shape, dtype=dy.dtype)
        read = _read(spec)

        def process(s, n0, n1):
            nb = n1 - n0
            dxs = _buffer(s, "scatter", (nb, G, cg, math.prod(spec.output_size)), dy.dtype)
            np.matmul(wt, dy[n0:n1].reshape(nb, G, og, -1), out=dxs)  # (nb, G, C_g, P)
            dx[n0:n1] = 0  # this chunk's zeros, then its read positions
            dx[n0:n1][read] = dxs.reshape((nb, spec.in_channels, *spec.output_size))

        parallel.run_chunks(_chunks(spec, dy.itemsize), dict, process)
        return dx

    def _strided_forward(self, x, w, spec, bias):
        G, og, cg = spec.groups, spec.out_per_group, spec.in_per_group
        wg = w.reshape(G, og, cg)
        y = np.empty(spec.output_shape, dtype=x.dtype)
        b = None if bias is None else bias.reshape(G, og, 1)

        def process(s, n0, n1):
            yc = y[n0:n1].reshape(n1 - n0, G, og, -1)  # (nb, G, O_g, P)
            np.matmul(wg, _gathered(x, n0, n1, spec, s), out=yc)
            if b is not None:
                yc += b

        parallel.run_chunks(_chunks(spec, x.itemsize), dict, process)
        return y

    def grad_weight(self, x, dy, spec):
        G, og, cg = spec.groups, spec.out_per_group, spec.in_per_group

        def process(s, n0, n1):
            part = s["dw"]
            if not _direct(spec):
                xs = _gathered(x, n0, n1, spec, s)  # (nb, G, C_g, P)
                prod = np.matmul(dy[n0:n1].reshape(n1 - n0, G, og, -1), xs.transpose(0, 1, 3, 2))  # (nb, G, O_g, C_g)
                for one in prod:  # added one by one: no (G, O_g, C_g) temporary besides
                    part += one
                return
            for n in range(n0, n1):
                xn = x[n].reshape(spec.in_channels, -1)  # (C, P)
                dyn = dy[n].reshape(spec.out_channels, -1)  # (O, P)
                for g in range(G):
                    blas.gemm(dyn[g * og : (g + 1) * og], xn[g * cg : (g + 1) * cg].T, part[g], beta=1.0)

        total = parallel.run_chunks(_chunks(spec, x.itemsize, partial_sums=True),
                                    lambda: {"dw": np.zeros((G, og, cg), dtype=x.dtype)}, process,
                                    reduce=("dw",)).get("dw")
        if total is None:  # an empty batch
            total = np.zeros((G, og, cg), dtype=x.dtype)
        return total.reshape(spec.weight_shape)


register(Pointwise())
