"""``fft``: convolution theorem, for long kernels at stride 1.

A correlation is a product per frequency: with the input padded to the read span and
transformed at a length ``L >= span`` per spatial dim (``X = rfftn(x_pad)``, ``W = rfftn(w_eff)``,
``w_eff`` the kernel with ``D - 1`` zeros between taps), the sums over input channels become one
small complex matrix product per frequency ``f``::

    forward      Y[n, :, f]  = conj(W[:, :, f]) @ X[n, :, f]         y  = irfftn(Y)[:H_out]
    grad_input   dX[n, :, f] = W[:, :, f].T @ dY[n, :, f]            dx = irfftn(dX)[P_lo:P_lo+H]
    grad_weight  dW[:, :, f] = sum_n conj(dY[n, :, f])^T X[n, :, f]  dw = irfftn(dW)[k*D]

(per group). No wrap-around reaches the results because ``L`` covers the whole span. The cost
is ``O(log L)`` per value instead of ``O(K)``: it wins for long kernels (measured on one core
against ``tapgemm``: from about 30 taps in 1-D), not for the 3-9 taps of most image layers.

SciPy's ``scipy.fft`` is used when installed (the ``fft`` extra): 3-4x faster than NumPy's in
single precision on this machine; otherwise ``numpy.fft``. Every output mixes every input, so
non-finite values are handled by the dispatcher (:meth:`Fft.spreads_nonfinite`); inputs that
no output reads get an exact zero gradient (the transform's rounding there is cleared).
"""

from __future__ import annotations

import importlib
import importlib.util
import math

import numpy as np

from .. import parallel
from ..spec import ConvSpec, conv_spec
from .base import Algorithm
from .work import Work
from .registry import register

# optional: scipy.fft's faster single-precision transforms. Imported on first use: importing SciPy
# takes ~0.8 s, most of `import convgrad`, and most programs never run this algorithm.
BACKEND = "scipy" if importlib.util.find_spec("scipy") is not None else "numpy"


class _FirstUse:
    """Stands for the FFT module until an attribute is asked for, then puts the module in its place."""

    def __getattr__(self, name):
        global _fft
        _fft = importlib.import_module("scipy.fft") if BACKEND == "scipy" else np.fft
        return getattr(_fft, name)


_fft = _FirstUse()


def fast_length(n: int) -> int:
    """The smallest ``m >= n`` whose prime factors are 2, 3 and 5 (fast FFT sizes)."""
    best = 1 << max(0, (n - 1).bit_length())
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


class _Geometry:
    def __init__(self, spec: ConvSpec):
        self.spec = spec
        self.nd = spec.ndim
        self.span = spec.read_span
        self.keff = spec.effective_kernel
        self.L = tuple(fast_length(s) for s in self.span)
        self.axes = tuple(range(2, 2 + self.nd))
        self.fshape = self.L[:-1] + (self.L[-1] // 2 + 1,)
        self.freqs = math.prod(self.fshape)

    def padded(self, x: np.ndarray) -> np.ndarray:
        """``x`` zero-padded into ``(nb, C, *L)``: padded position ``p`` holds input ``p - P_lo``."""
        spec = self.spec
        out = np.zeros(x.shape[:2] + self.L, dtype=x.dtype)
        src, dst = [slice(None)] * 2, [slice(None)] * 2
        for h, lo, s in zip(spec.input_size, spec.pad_lo, self.span):
            n = min(h, s - lo)
            src.append(slice(0, n))
            dst.append(slice(lo, lo + n))
        out[tuple(dst)] = x[tuple(src)]
        return out

    def kernel(self, w: np.ndarray) -> np.ndarray:
        """The dilated kernel ``w_eff`` zero-padded to ``(O, C_g, *L)``."""
        out = np.zeros(w.shape[:2] + self.L, dtype=w.dtype)
        out[(slice(None), slice(None), *(slice(0, ke, d) for ke, d in zip(self.keff, self.spec.dilation)))] = w
        return out

    def read_mask(self) -> tuple[np.ndarray, ...]:
        """Per dim, which input positions some output reads (stride 1: ``h + P_lo - k*D`` in ``[0, H_out)``)."""
        spec = self.spec
        masks = []
        for h, lo, o, k, d in zip(spec.input_size, spec.pad_lo, spec.output_size, spec.kernel_size, spec.dilation):
            m = np.zeros(h, dtype=bool)
            for kk in range(k):
                a = kk * d - lo
                m[max(0, a) : max(0, min(h, a + o))] = True
            masks.append(m)
        return tuple(masks)


def _per_frequency(a: np.ndarray) -> np.ndarray:
    """``(nb, C, *F)`` -> ``(F, nb, C)`` (a copy): one small matrix per frequency."""
    nb, c = a.shape[:2]
    return np.ascontiguousarray(a.reshape(nb, c, -1).transpose(2, 0, 1))


def _from_frequency(a: np.ndarray, shape) -> np.ndarray:
    """Inverse of :func:`_per_frequency`: ``(F, nb, C)`` -> ``(nb, C, *F)``."""
    return np.ascontiguousarray(a.transpose(1, 2, 0)).reshape(shape)


class Fft(Algorithm):
    name = "fft"
    channel_products = False

    def work(self, spec: ConvSpec, op: str) -> Work:
        n, G, og, cg = spec.batch, spec.groups, spec.out_per_group, spec.in_per_group
        L = [fast_length(s) for s in spec.read_span]
        size = math.prod(L)
        freqs = math.prod(L[:-1]) * (L[-1] // 2 + 1)
        # the transforms (n log n per value) and the copies around them count as elementwise work
        elem = n * (spec.in_channels + spec.out_channels) * size * (math.log2(max(size, 2)) + 4)
        # one small complex product per frequency (8 flops per multiply-add)
        flops = 8.0 * freqs * n * G * og * cg
        # NumPy's stacked matmul calls BLAS once per frequency (and group): thousands of tiny calls in 2-D/3-D
        chunks = max(1, n // 4)
        calls = chunks * G * freqs * (1 if op != "grad_weight" else 2) + chunks * 8 + 10
        return Work(0.0, elem, calls, flops)

    def examples(self):
        return (conv_spec((2, 3, 9, 8), (4, 3, 5, 3), padding=(0, 1), dilation=(1, 2)),
                conv_spec((5, 4, 9, 8), (6, 2, 5, 3), padding=(3, 0), dilation=(1, 2), groups=2))

    def unsupported(self, spec: ConvSpec, op: str) -> str | None:
        if any(s != 1 for s in spec.stride):
            return f"it needs stride 1, got stride {spec.stride}"
        return None

    def spreads_nonfinite(self, op: str) -> bool:
        return True  # every output frequency mixes every input value

    def _spectra(self, geo: _Geometry, w: np.ndarray) -> np.ndarray:
        """``W`` as ``(G, F, O_g, C_g)``."""
        spec = geo.spec
        W = _fft.rfftn(geo.kernel(w), s=geo.L, axes=geo.axes)  # (O, C_g, *F)
        W = W.reshape(spec.groups, spec.out_per_group, spec.in_per_group, -1)
        return np.ascontiguousarray(W.transpose(0, 3, 1, 2))

    @staticmethod
    def _batched(geo: _Geometry, body) -> None:
        """Run ``body(n0, n1)`` over batch chunks under the workspace limit."""
        spec = geo.spec
        # padded real copies and complex spectra of both sides, with their per-frequency copies
        per_item = (spec.in_channels + spec.out_channels) * (math.prod(geo.L) * 8 + geo.freqs * 32)
        plan = parallel.plan(spec.batch, per_item)
        parallel.run_chunks(plan, dict, lambda _, n0, n1: body(n0, n1))

    def forward(self, x, w, spec):
        y = np.empty(spec.output_shape, dtype=x.dtype)
        if spec.batch == 0:
            return y
        geo = _Geometry(spec)
        W = np.conj(self._spectra(geo, w))  # (G, F, O_g, C_g)
        G, og, cg = spec.groups, spec.out_per_group, spec.in_per_group

        def body(n0, n1):
            X = _fft.rfftn(geo.padded(x[n0:n1]), s=geo.L, axes=geo.axes)  # (nb, C, *F)
            Xf = _per_frequency(X)  # (F, nb, C)
            Y = np.empty((geo.freqs, n1 - n0, spec.out_channels), dtype=Xf.dtype)
            for g in range(G):
                np.matmul(Xf[:, :, g * cg : (g + 1) * cg], W[g].transpose(0, 2, 1), out=Y[:, :, g * og : (g + 1) * og])
            full = _fft.irfftn(_from_frequency(Y, (n1 - n0, spec.out_channels) + X.shape[2:]), s=geo.L, axes=geo.axes)
            y[n0:n1] = full[(slice(None), slice(None), *(slice(0, o) for o in spec.output_size))]

        self._batched(geo, body)
        return y

    def grad_input(self, dy, w, spec):
        dx = np.zeros(spec.input_shape, dtype=dy.dtype)
        if spec.batch == 0:
            return dx
        geo = _Geometry(spec)
        W = self._spectra(geo, w)  # (G, F, O_g, C_g)
        G, og, cg = spec.groups, spec.out_per_group, spec.in_per_group
        masks = geo.read_mask()
        unread = not all(m.all() for m in masks)

        def body(n0, n1):
            dyp = np.zeros((n1 - n0, spec.out_channels) + geo.L, dtype=dy.dtype)
            dyp[(slice(None), slice(None), *(slice(0, o) for o in spec.output_size))] = dy[n0:n1]
            D = _per_frequency(_fft.rfftn(dyp, s=geo.L, axes=geo.axes))  # (F, nb, O)
            Xg = np.empty((geo.freqs, n1 - n0, spec.in_channels), dtype=D.dtype)
            for g in range(G):
                np.matmul(D[:, :, g * og : (g + 1) * og], W[g], out=Xg[:, :, g * cg : (g + 1) * cg])
            full = _fft.irfftn(_from_frequency(Xg, (n1 - n0, spec.in_channels) + geo.fshape), s=geo.L, axes=geo.axes)
            src, dst = [slice(None)] * 2, [slice(None)] * 2
            for h, lo, s in zip(spec.input_size, spec.pad_lo, geo.span):
                n = min(h, s - lo)
                src.append(slice(lo, lo + n))
                dst.append(slice(0, n))
            part = dx[n0:n1]
            part[tuple(dst)] = full[tuple(src)]
            if unread:  # inputs no output reads: exactly zero, not rounding noise
                for d, m in enumerate(masks):
                    index = [slice(None)] * part.ndim
                    index[2 + d] = ~m
                    part[tuple(index)] = 0

        self._batched(geo, body)
        return dx

    def grad_weight(self, x, dy, spec):
        G, og, cg = spec.groups, spec.out_per_group, spec.in_per_group
        if spec.batch == 0:
            return np.zeros(spec.weight_shape, dtype=x.dtype)
        geo = _Geometry(spec)
        ctype = np.result_type(x.dtype, np.complex64)
        shape = (G, geo.freqs, og, cg)
        per_item = (spec.in_channels + spec.out_channels) * (math.prod(geo.L) * 8 + geo.freqs * 32)
        plan = parallel.plan(spec.batch, per_item, math.prod(shape) * 8)

        def process(s, n0, n1):
            acc = s["dw_spectrum"]
            X = _per_frequency(_fft.rfftn(geo.padded(x[n0:n1]), s=geo.L, axes=geo.axes))  # (F, nb, C)
            dyp = np.zeros((n1 - n0, spec.out_channels) + geo.L, dtype=dy.dtype)
            dyp[(slice(None), slice(None), *(slice(0, o) for o in spec.output_size))] = dy[n0:n1]
            D = np.conj(_per_frequency(_fft.rfftn(dyp, s=geo.L, axes=geo.axes)))  # (F, nb, O)
            for g in range(G):
                acc[g] += np.matmul(D[:, :, g * og : (g + 1) * og].transpose(0, 2, 1), X[:, :, g * cg : (g + 1) * cg])

        total = parallel.run_chunks(plan, lambda: {"dw_spectrum": np.zeros(shape, dtype=ctype)}, process,
                                    reduce=("dw_spectrum",))["dw_spectrum"]
        spectrum = total.transpose(0, 2, 3, 1).reshape((spec.out_channels, cg) + geo.fshape)  # (O, C_g, *F)
        full = _fft.irfftn(spectrum, s=geo.L, axes=geo.axes)  # (O, C_g, *L)
        taps = (slice(None), slice(None), *(slice(0, ke, d) for ke, d in zip(geo.keff, spec.dilation)))
        return np.ascontiguousarray(full[taps], dtype=x.dtype)


register(Fft())
