"""``depthwise_last``: depthwise convolution on channels-last arrays, every kernel tap in one fused sum.

With channels innermost (``(N, *spatial, C)``), what kernel tap ``k`` reads for every output
position is a strided window ``xs_k`` of the zero-padded input -- rows of ``C`` contiguous values
(``W_out * C`` with stride 1) -- to be multiplied by one weight per channel. A view with the taps as
leading axes (:func:`tap_view`, no copy) turns each operation into one ``np.einsum``, which
multiplies and accumulates in one pass per tap (a multiply and an add would be two). With
``m = C_out / C_in`` output channels per input channel ``g`` (``o = g*m + j``, so ``(..., C_out)``
reads as ``(..., G, m)``)::

    forward      y[..., g, j]   = sum_k xs_k[..., g] * w[g*m + j, k]
    grad_input   stride 1, m = 1: the forward of dy, padded as reparam.grad_input_as_forward says,
                 by the flipped kernel; otherwise tap by tap: dxs_k[..., g] += sum_j dy[..., g, j] * w[g*m + j, k]
    grad_weight  dw[g*m + j, k] = sum over (n, positions) of xs_k[..., g] * dy[..., g, j]

No channel sums and no products through BLAS (``depthwise`` does the same on channels-first data).
The batch is cut into chunks of about ``BLOCK_BYTES`` of output on the worker threads, each with
its padded copy of the chunk. Single-threaded, layer e (ms fwd/dx/dw, load average 1-2): 49/54/31
here on channels-last arrays against 45/53/24 for ``depthwise`` on channels-first ones (the einsum
alone: 40 ms for the forward, against 52 ms for a multiply and an add per tap in cache-sized
blocks); ``depthwise`` through the transposed views of channels-last arrays took 1.4x its
channels-first time.

It takes any strides (a channels-first array is read through its transposed view) and returns its
results as the ``(N, C, *spatial)`` view of a C-contiguous ``(N, *spatial, C)`` array, so a
channels-last caller gets a contiguous result without a copy. ``auto`` never picks it for
channels-first calls (``auto_candidate = False``); :mod:`convgrad.native_last` picks it for
channels-last ones.
"""

from __future__ import annotations

import math
import string

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .. import parallel, workspace
from ..reparam import grad_input_as_forward
from ..spec import ConvSpec, conv_spec
from .base import Algorithm
from .registry import register

#: Bytes of output a chunk of the batch covers (at least one element): its padded input copy and the
#: einsum's operands stay in the last-level cache.
BLOCK_BYTES = 2 * 2**20
#: Channels from which :mod:`convgrad.native_last` sends channels-last calls here.
MIN_CHANNELS = 8


def tap_view(xp: np.ndarray, kernel: tuple[int, ...], dilation: tuple[int, ...], stride: tuple[int, ...],
             out: tuple[int, ...], writeable: bool = False) -> np.ndarray:
    """``(*K, nb, *out, C)``: element ``[k, n, o, c]`` is ``xp[n, o*stride + k*dilation, c]`` (a view).

    Read-only unless ``writeable`` (taps overlap one another: write through one tap at a time).

    Examples
    --------
    >>> xp = np.arange(2 * 7 * 1.0).reshape(2, 7, 1)
    >>> tap_view(xp, (2,), (3,), (2,), (3,))[1, 0, :, 0]   # tap 1 of element 0: positions 3, 5, 7 - 1
    array([3., 5.])
    """
    s = xp.strides
    shape = (*kernel, xp.shape[0], *out, xp.shape[-1])
    strides = (*(d * st for d, st in zip(dilation, s[1:-1])), s[0], *(v * st for v, st in zip(stride, s[1:-1])), s[-1])
    return as_strided(xp, shape, strides, writeable=writeable)


def copy_shifted(dst: np.ndarray, src: np.ndarray, lo: tuple[int, ...]) -> None:
    """``dst[n, i + lo, c] = src[n, i, c]`` where both exist (per spatial dim; ``lo`` may be negative: a crop).

    ``dst`` and ``src`` are ``(nb, *size, C)``; entries of ``dst`` outside the copy are left as they are.

    Examples
    --------
    >>> dst = np.zeros((1, 4, 1)); copy_shifted(dst, np.arange(1.0, 5.0).reshape(1, 4, 1), (-1,)); dst[0, :, 0]
    array([2., 3., 4., 0.])
    """
    d_idx, s_idx = [slice(None)], [slice(None)]
    for d, s, l in zip(dst.shape[1:-1], src.shape[1:-1], lo):
        s0, d0 = max(0, -l), max(0, l)
        n = max(0, min(s - s0, d - d0))
        d_idx.append(slice(d0, d0 + n))
        s_idx.append(slice(s0, s0 + n))
    dst[tuple(d_idx)] = src[tuple(s_idx)]


def tap_weights(w: np.ndarray, spec: ConvSpec, flip: bool = False) -> np.ndarray:
    """``(*K, G, m)``: the weight of tap ``k`` for output channel ``g*m + j`` (a copy; ``flip``: taps reversed)."""
    nd = spec.ndim
    wk = w.reshape(spec.groups, spec.out_per_group, *spec.kernel_size)  # (G, m, *K)
    if flip:
        wk = np.flip(wk, axis=tuple(range(2, 2 + nd)))
    return np.ascontiguousarray(wk.transpose(*range(2, 2 + nd), 0, 1))


def _subscripts(nd: int) -> tuple[str, str, str]:
    """einsum letters: ``(taps, n + spatial, channels)`` for ``nd`` spatial dims."""
    letters = string.ascii_letters
    return letters[:nd], letters[nd:2 * nd + 1], letters[2 * nd + 1:2 * nd + 3]


def _spec_sum(nd: int, m: int, what: str) -> str:
    """The einsum of an operation: ``forward`` (taps x weights -> out), ``weight`` (taps x dy -> dw)."""
    t, pos, (g, j) = _subscripts(nd)
    if what == "forward":
        return f"{t}{pos}{g},{t}{g}{j}->{pos}{g}{j}" if m > 1 else f"{t}{pos}{g},{t}{g}->{pos}{g}"
    return f"{t}{pos}{g},{pos}{g}{j}->{t}{g}{j}" if m > 1 else f"{t}{pos}{g},{pos}{g}->{t}{g}"


class _Plan:
    """Chunks of the batch: about ``BLOCK_BYTES`` of output each, with a padded channels-last input side."""

    def __init__(self, spec: ConvSpec, itemsize: int, span: tuple[int, ...], channels: int, out_bytes: int,
                 fixed: int = 0):
        self.spec, self.span, self.channels = spec, span, channels
        per_item = math.prod(span) * channels * itemsize
        self.chunking = parallel.plan(spec.batch, per_item, fixed, uses_blas=False,
                                      max_chunk=max(1, BLOCK_BYTES // max(1, out_bytes)))

    def padded(self, dtype) -> np.ndarray:
        """A worker's zeroed ``(chunk, *span, C)`` side: its margins stay zero for every chunk."""
        return workspace.zeros((self.chunking.chunk, *self.span, self.channels), dtype)


def channels_last_result(shape_last: tuple[int, ...], dtype, zero: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(a, view)``: a fresh C-contiguous ``(N, *spatial, C)`` array and its ``(N, C, *spatial)`` view."""
    a = (np.zeros if zero else np.empty)(shape_last, dtype)
    return a, np.moveaxis(a, -1, 1)


def _grouped(a: np.ndarray, spec: ConvSpec, size: tuple[int, ...]) -> np.ndarray:
    """A ``(N, O, *size)`` array (any strides) as ``(N, *size, G, m)``: a view."""
    return np.moveaxis(a.reshape(spec.batch, spec.groups, spec.out_per_group, *size), (1, 2), (-2, -1))


class DepthwiseLast(Algorithm):
    name = "depthwise_last"
    auto_candidate = False  # channels-first calls keep ``depthwise``; native_last picks this one
    channels_last = True
    channel_products = False
    bias_ops = frozenset({"forward"})

    def unsupported(self, spec: ConvSpec, op: str) -> str | None:
        if spec.in_per_group != 1:
            return (f"it needs one input channel per group (groups == in_channels), got {spec.in_channels} input "
                    f"channels in {spec.groups} groups")
        return None

    def prefers_channels_last(self, spec: ConvSpec, op: str, itemsize: int = 4) -> bool:
        # Rows of channels long enough for the einsum's inner loop: layer e (128 channels) 0.95x the
        # channels-first time against 1.4x through the transposed views; one input channel
        # (layer g1, 1 -> 6) 14x slower than the others.
        return spec.in_channels >= MIN_CHANNELS

    def examples(self):
        return (conv_spec((2, 3, 7, 6), (6, 1, 3, 3), padding=1, groups=3),
                conv_spec((5, 4, 9, 8), (8, 1, 3, 3), stride=2, padding=1, groups=4),
                conv_spec((3, 5, 11), (5, 1, 4), stride=3, padding=((2, 0),), dilation=2, groups=5))

    def spreads_nonfinite(self, op: str) -> bool:
        # the input gradient of stride 1 sums over the padded dy: zeros times every weight
        return op == "grad_input"

    def forward(self, x, w, spec, bias=None):
        nd, G, m = spec.ndim, spec.groups, spec.out_per_group
        yl, y = channels_last_result((spec.batch, *spec.output_size, spec.out_channels), x.dtype)
        if spec.batch == 0:
            return y
        xl = np.moveaxis(x, 1, -1)  # (N, *H, C): the caller's array when it is channels last
        y5 = yl.reshape(*yl.shape[:-1], G, m)  # (N, *Hout, G, m), a view
        wt = tap_weights(w, spec)  # (*K, G, m)
        wt = wt if m > 1 else wt[..., 0]
        total = _spec_sum(nd, m, "forward")
        b = None if bias is None else bias.reshape(G, m)
        pl = _Plan(spec, x.itemsize, spec.read_span, spec.in_channels, y5[0].nbytes)

        def process(s, n0, n1):
            xp = s["x"][: n1 - n0]
            copy_shifted(xp, xl[n0:n1], spec.pad_lo)
            taps = tap_view(xp, spec.kernel_size, spec.dilation, spec.stride, spec.output_size)  # (*K, nb, *Hout, C)
            out = y5[n0:n1]
            np.einsum(total, taps, wt, out=out if m > 1 else out[..., 0])
            if b is not None:
                out += b

        parallel.run_chunks(pl.chunking, lambda: {"x": pl.padded(x.dtype)}, process)
        return y

    def grad_input(self, dy, w, spec):
        if spec.out_per_group == 1 and all(s == 1 for s in spec.stride):
            return self._grad_input_as_forward(dy, w, spec)
        return self._grad_input_by_taps(dy, w, spec)

    def _grad_input_as_forward(self, dy, w, spec):
        """Stride 1, one output channel per group: ``dx`` is the depthwise forward of the padded ``dy``
        by the flipped kernel (:func:`convgrad.reparam.grad_input_as_forward`)."""
        nd = spec.ndim
        form = grad_input_as_forward(spec)
        span = tuple(h + ke - 1 for h, ke in zip(spec.input_size, spec.effective_kernel))
        dxl, dx = channels_last_result((spec.batch, *spec.input_size, spec.in_channels), dy.dtype)
        if spec.batch == 0:
            return dx
        dyl = np.moveaxis(dy, 1, -1)  # (N, *Hout, C)
        wt = tap_weights(w, spec, flip=True)[..., 0]  # (*K, C)
        total = _spec_sum(nd, 1, "forward")
        pl = _Plan(spec, dy.itemsize, span, spec.out_channels, dxl[0].nbytes)

        def process(s, n0, n1):
            dyp = s["dy"][: n1 - n0]
            copy_shifted(dyp, dyl[n0:n1], form.pad_lo)
            taps = tap_view(dyp, spec.kernel_size, spec.dilation, (1,) * nd, spec.input_size)  # (*K, nb, *H, C)
            np.einsum(total, taps, wt, out=dxl[n0:n1])

        parallel.run_chunks(pl.chunking, lambda: {"dy": pl.padded(dy.dtype)}, process)
        return dx

    def _grad_input_by_taps(self, dy, w, spec):
        """Any stride and channel multiplier: each tap's product added into the padded gradient."""
        G, m = spec.groups, spec.out_per_group
        dxl, dx = channels_last_result((spec.batch, *spec.input_size, spec.in_channels), dy.dtype)
        if spec.batch == 0:
            return dx
        dy5 = _grouped(dy, spec, spec.output_size)  # (N, *Hout, G, m)
        wt = tap_weights(w, spec)  # (*K, G, m)
        pl = _Plan(spec, dy.itemsize, spec.read_span, spec.in_channels, dy5[0].nbytes)
        crop = tuple(-lo for lo in spec.pad_lo)

        def scratch():
            return {"dx": pl.padded(dy.dtype), "t": workspace.empty((pl.chunking.chunk, *dy5.shape[1:]), dy.dtype)}

        def process(s, n0, n1):
            nb = n1 - n0
            dxp, tmp = s["dx"][:nb], s["t"][:nb]
            dxp.fill(0)
            d = dy5[n0:n1]  # (nb, *Hout, G, m)
            taps = tap_view(dxp, spec.kernel_size, spec.dilation, spec.stride, spec.output_size, writeable=True)
            for k in np.ndindex(*spec.kernel_size):
                dest = taps[k]  # (nb, *Hout, C): what tap k reads, in the padded gradient
                np.multiply(d, wt[k], out=tmp)
                dest += tmp[..., 0] if m == 1 else tmp.sum(axis=-1)
            dxl[n0:n1] = 0
            copy_shifted(dxl[n0:n1], dxp, crop)

        parallel.run_chunks(pl.chunking, scratch, process)
        return dx

    def grad_weight(self, x, dy, spec):
        nd, G, m = spec.ndim, spec.groups, spec.out_per_group
        if spec.batch == 0:
            return np.zeros(spec.weight_shape, dtype=x.dtype)
        xl = np.moveaxis(x, 1, -1)  # (N, *H, C)
        dy5 = _grouped(dy, spec, spec.output_size)  # (N, *Hout, G, m)
        total = _spec_sum(nd, m, "weight")
        pl = _Plan(spec, x.itemsize, spec.read_span, spec.in_channels, dy5[0].nbytes,
                   fixed=math.prod(spec.kernel_size) * G * m * x.itemsize)

        def scratch():
            return {"x": pl.padded(x.dtype), "dw": np.zeros((*spec.kernel_size, G, m), dtype=x.dtype)}

        def process(s, n0, n1):
            xp = s["x"][: n1 - n0]
            copy_shifted(xp, xl[n0:n1], spec.pad_lo)
            taps = tap_view(xp, spec.kernel_size, spec.dilation, spec.stride, spec.output_size)  # (*K, nb, *Hout, C)
            d = dy5[n0:n1]
            s["dw"] += np.einsum(total, taps, d if m > 1 else d[..., 0]).reshape(s["dw"].shape)

        total_dw = parallel.run_chunks(pl.chunking, scratch, process, reduce=("dw",))["dw"]  # (*K, G, m)
        return np.ascontiguousarray(np.moveaxis(total_dw, (-2, -1), (0, 1))).reshape(spec.weight_shape)


register(DepthwiseLast())
