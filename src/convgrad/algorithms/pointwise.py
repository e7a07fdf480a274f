"""``pointwise``: a 1x1 convolution at stride 1 without padding is a matrix product per batch element.

Every output position reads only the same position of the input, so with the spatial dims
flattened (``P`` positions) and channels first, per batch element ``n`` and group ``g``::

    forward      y[n, g]  = w[g] @ x[n, g]             (O_g, C_g) @ (C_g, P)
    grad_input   dx[n, g] = w[g].T @ dy[n, g]          (C_g, O_g) @ (O_g, P)
    grad_weight  dw[g]   += dy[n, g] @ x[n, g].T       (O_g, P) @ (P, C_g)

straight on the caller's arrays: no padding, no copy, no scratch beyond the weight gradient's
per-thread partial sums. The batch is shared out to the worker threads.
"""

from __future__ import annotations

import math

import numpy as np

from .. import blas, parallel, runtime
from ..spec import ConvSpec, conv_spec
from .base import Algorithm
from .work import Work, efficiency
from .registry import register


def _chunks(spec: ConvSpec) -> parallel.Plan:
    """Batch elements shared out to the workers, a few chunks each (no scratch per element)."""
    return parallel.plan(spec.batch, 0, max_chunk=max(1, math.ceil(spec.batch / (4 * runtime.get_num_threads()))))


class Pointwise(Algorithm):
    name = "pointwise"

    def work(self, spec: ConvSpec, op: str) -> Work:
        n, G, og, cg = spec.batch, spec.groups, spec.out_per_group, spec.in_per_group
        p = math.prod(spec.output_size)
        flops = 2.0 * n * G * og * cg * p
        k, m = {"forward": (cg, og), "grad_input": (og, cg), "grad_weight": (p, min(og, cg))}[op]
        return Work(flops / efficiency(k, m), 0.0, n * G + 10)

    def examples(self):
        return (conv_spec((2, 3, 5, 4), (4, 3, 1, 1)),
                conv_spec((5, 4, 9, 8), (6, 2, 1, 1), groups=2),
                conv_spec((3, 6, 7), (4, 6, 1)))

    def unsupported(self, spec: ConvSpec, op: str) -> str | None:
        if any(k != 1 for k in spec.kernel_size):
            return f"it needs a 1x1 kernel, got kernel_size {spec.kernel_size}"
        if any(s != 1 for s in spec.stride):
            return f"it needs stride 1, got stride {spec.stride}"
        if any(p != (0, 0) for p in spec.padding):
            return f"it needs no padding, got padding {spec.padding}"
        if spec.input_size != spec.output_size:  # a transposed convolution's output_padding
            return (f"it needs every input position read, but input size {spec.input_size} exceeds output size "
                    f"{spec.output_size} (output_padding of a transposed convolution)")
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
                an = a[n].reshape(a.shape[1], -1)  # (channels, P): a view for contiguous input
                on = out[n].reshape(out.shape[1], -1)
                for g in range(G):
                    m = wg[g].T if transpose else wg[g]
                    blas.gemm(m, an[g * rows_in : (g + 1) * rows_in], on[g * rows_out : (g + 1) * rows_out], beta=beta)

        parallel.run_chunks(_chunks(spec), dict, process)
        return out

    bias_ops = frozenset({"forward"})

    def forward(self, x, w, spec, bias=None):
        if bias is None:
            return self._each_element(spec, x, w, np.empty(spec.output_shape, dtype=x.dtype), transpose=False)
        # the products accumulate onto the bias (a write-only pass instead of a read-modify-write one)
        y = np.empty(spec.output_shape, dtype=x.dtype)
        y[...] = bias.reshape((1, -1) + (1,) * spec.ndim)
        return self._each_element(spec, x, w, y, transpose=False, beta=1.0)

    def grad_input(self, dy, w, spec):
        return self._each_element(spec, dy, w, np.empty(spec.input_shape, dtype=dy.dtype), transpose=True)

    def grad_weight(self, x, dy, spec):
        G, og, cg = spec.groups, spec.out_per_group, spec.in_per_group

        def process(s, n0, n1):
            part = s["dw"]
            for n in range(n0, n1):
                xn = x[n].reshape(spec.in_channels, -1)  # (C, P)
                dyn = dy[n].reshape(spec.out_channels, -1)  # (O, P)
                for g in range(G):
                    blas.gemm(dyn[g * og : (g + 1) * og], xn[g * cg : (g + 1) * cg].T, part[g], beta=1.0)

        total = parallel.run_chunks(_chunks(spec), lambda: {"dw": np.zeros((G, og, cg), dtype=x.dtype)}, process,
                                    reduce=("dw",)).get("dw")
        if total is None:  # an empty batch
            total = np.zeros((G, og, cg), dtype=x.dtype)
        return total.reshape(spec.weight_shape)


register(Pointwise())
