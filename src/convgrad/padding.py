"""Non-zero padding modes as an explicit pad, and the fold that is its adjoint.

``reflect``, ``replicate`` and ``circular`` padding copy real input elements into the border, so
the border's gradient belongs to the elements it copied. A convolution with such a mode equals a
zero-padding-free convolution of the explicitly padded input, and its input gradient is the
gradient of the padded input *folded back*: every border position adds its gradient onto the
element it is a copy of.

The direct reference algorithm does not use this module (it maps each padded position to its
source with :func:`convgrad.spec.source_index`), so the two stay independent.
"""

from __future__ import annotations

import numpy as np

from .spec import ConvSpec, _replace

_NUMPY_MODES = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def pad(x: np.ndarray, spec: ConvSpec) -> tuple[np.ndarray, ConvSpec]:
    """Pad ``x`` by ``spec.padding`` with ``spec.padding_mode``.

    Returns the padded array, of shape ``(N, C, *(H + P_lo + P_hi))``, and the spec of the same
    convolution applied to it with no padding. Circular padding equal to the input size wraps
    exactly once (NumPy's ``wrap`` mode handles it).
    """
    widths = [(0, 0), (0, 0), *spec.padding]
    return np.pad(x, widths, mode=_NUMPY_MODES[spec.padding_mode]), padded_spec(spec)


def padded_spec(spec: ConvSpec) -> ConvSpec:
    """The spec of the same convolution applied to the explicitly padded input (no padding)."""
    return _replace(
        spec,
        input_size=tuple(h + lo + hi for h, (lo, hi) in zip(spec.input_size, spec.padding)),
        padding=((0, 0),) * spec.ndim,
        padding_mode="zeros",
    )


def fold(grad_padded: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """The adjoint of :func:`pad`: fold the border's gradient back onto the elements it copied.

    ``grad_padded`` has the padded shape; the result has ``spec.input_shape``. Works one spatial
    axis at a time, last to first (the reverse of the order in which padding is applied).
    """
    g = grad_padded
    for dim in reversed(range(spec.ndim)):
        g = _fold_axis(g, 2 + dim, spec.input_size[dim], *spec.padding[dim], spec.padding_mode)
    return g


def _fold_axis(g: np.ndarray, axis: int, size: int, lo: int, hi: int, mode: str) -> np.ndarray:
    def take(start, stop):
        index = [slice(None)] * g.ndim
        index[axis] = slice(start, stop)
        return tuple(index)

    out = g[take(lo, lo + size)].copy()
    low = g[take(0, lo)]  # positions -lo .. -1
    high = g[take(lo + size, lo + size + hi)]  # positions size .. size+hi-1
    if mode == "reflect":
        # position -j holds x[j]; position size-1+j holds x[size-1-j]   (j = 1 .. pad)
        out[take(1, lo + 1)] += np.flip(low, axis)
        out[take(size - 1 - hi, size - 1)] += np.flip(high, axis)
    elif mode == "replicate":
        out[take(0, 1)] += low.sum(axis=axis, keepdims=True)
        out[take(size - 1, size)] += high.sum(axis=axis, keepdims=True)
    elif mode == "circular":
        # position -j holds x[size-j]; position size+j holds x[j]
        out[take(size - lo, size)] += low
        out[take(0, hi)] += high
    else:  # pragma: no cover - guarded by spec validation
        raise ValueError(f"unknown padding_mode {mode!r}")
    return out
