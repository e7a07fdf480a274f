"""Negative padding (a crop) and input dilation, reduced at the boundary to an ordinary :class:`ConvSpec`.

JAX's ``conv_general_dilated`` allows two things a :class:`~convgrad.spec.ConvSpec` does not:
*input (lhs) dilation* ``L`` -- ``L - 1`` zeros between neighbouring input elements, which is what
a transposed convolution does -- and *negative padding*, which crops the (dilated) input. Both
are linear re-arrangements of the input, so the convolution of such an input is the ordinary
convolution of the re-arranged one. Per spatial dim::

    H_dil  = (H - 1)*L + 1                              the input with L-1 zeros between samples
    crop   = (max(0, -P_lo), max(0, -P_hi))             positions cut from each end of it
    H_red  = H_dil - crop_lo - crop_hi                  what the reduced convolution reads
    pads   = (max(0, P_lo), max(0, P_hi))               its (non-negative) padding
    H_out  = floor((H_dil + P_lo + P_hi - K_eff)/S) + 1   (the same in both views)

Input element ``h`` sits at dilated position ``h*L``, i.e. at position ``h*L - crop_lo`` of the
reduced input when that lies in ``[0, H_red)``; the other elements are cropped away. So:

- forward: scatter the kept elements into a zero array of the reduced shape (:func:`reduce_input`)
  and run the reduced spec through the same algorithms;
- input gradient: the reduced spec's gradient read back at those positions (:func:`expand_grad_input`):
  an inserted zero has no gradient to give back, and a cropped element's gradient is exactly 0;
- weight gradient: the reduced spec's, of the reduced input (the crop and the zeros are just data).

Padding modes other than ``"zeros"`` are refused together with either feature (JAX has zero
padding only, and a reflected border of a zero-dilated input has no agreed meaning); so is
``padding="same"`` with input dilation (JAX refuses string padding there too: which size should
the output keep?).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .spec import ConvSpec, _check_shapes, conv_spec, positive_ints, resolve_padding

__all__ = ["GeneralConv", "general_conv_spec", "reduce_input", "expand_grad_input", "element_position"]


@dataclass(frozen=True)
class GeneralConv:
    """A convolution with input dilation and possibly negative padding, and its reduced :class:`ConvSpec`.

    Attributes
    ----------
    spec : ConvSpec
        The ordinary convolution of the reduced input (non-negative padding, no input dilation).
    input_size : tuple of int
        ``H`` per dim: the caller's input, before dilation and crop.
    input_dilation : tuple of int
        ``L`` per dim.
    padding : tuple of (int, int)
        ``(P_lo, P_hi)`` per dim as requested; negative entries crop.
    """

    spec: ConvSpec
    input_size: tuple[int, ...]
    input_dilation: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]

    @property
    def dilated_size(self) -> tuple[int, ...]:
        """``H_dil = (H - 1)*L + 1`` per dim."""
        return tuple((h - 1) * L + 1 for h, L in zip(self.input_size, self.input_dilation))

    @property
    def crop(self) -> tuple[tuple[int, int], ...]:
        """Positions cut from the start and the end of the dilated input, per dim."""
        return tuple((max(0, -lo), max(0, -hi)) for lo, hi in self.padding)

    @cached_property
    def plain(self) -> bool:
        """Whether this is an ordinary convolution (no input dilation, no crop): ``spec`` is the call itself."""
        return all(L == 1 for L in self.input_dilation) and all(c == (0, 0) for c in self.crop)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.spec.batch, self.spec.in_channels, *self.input_size)

    def kept(self, dim: int) -> range:
        """The input elements along ``dim`` that survive the crop (the others get gradient 0)."""
        (clo, _), L, h_red = self.crop[dim], self.input_dilation[dim], self.spec.input_size[dim]
        first = -(-clo // L)
        last = min((clo + h_red - 1) // L, self.input_size[dim] - 1)
        return range(first, last + 1)

    def samples(self) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
        """Per spatial dim, the slice of kept input elements and the slice of the reduced input they fill."""
        src, dst = [], []
        for d, L in enumerate(self.input_dilation):
            kept = self.kept(d)
            start = kept.start * L - self.crop[d][0] if len(kept) else 0
            src.append(slice(kept.start, kept.stop))
            dst.append(slice(start, start + L * (len(kept) - 1) + 1 if len(kept) else 0, L))
        return tuple(src), tuple(dst)


def element_position(general: GeneralConv, dim: int, p: int) -> int | None:
    """The caller's input element at position ``p`` of the reduced input along ``dim``, or ``None`` for an inserted zero.

    Examples
    --------
    >>> g = general_conv_spec((1, 1, 4), (1, 1, 2), padding=((-1, 0),), input_dilation=2)
    >>> g.spec.input_size, [element_position(g, 0, p) for p in range(6)]   # dilated x0 0 x1 0 x2 0 x3, x0 cropped
    ((6,), [None, 1, None, 2, None, 3])
    """
    q = p + general.crop[dim][0]
    L = general.input_dilation[dim]
    return q // L if q % L == 0 else None


def _has_negative(padding) -> bool:
    """Whether a padding argument (int, per-dim entries, pairs) holds a negative integer, without validating it."""
    if isinstance(padding, (str, bytes)):
        return False
    if isinstance(padding, (int, np.integer)):
        return padding < 0
    try:
        return any(_has_negative(p) for p in padding)
    except TypeError:
        return False


def general_conv_spec(input_shape, weight_shape, stride=1, padding=0, dilation=1, groups=1,
                      padding_mode="zeros", input_dilation=1, *, func: str = "conv") -> GeneralConv:
    """Validate a convolution that may have input dilation and negative padding; reduce it to a :class:`ConvSpec`.

    Parameters as :func:`convgrad.spec.conv_spec`, plus ``input_dilation`` (an int or one per
    spatial dim, ``>= 1``); padding entries may be negative.

    Raises
    ------
    ValueError
        A crop that leaves no input element, an output size below 1, ``padding="same"`` with input
        dilation, a ``padding_mode`` other than ``"zeros"`` with a crop or input dilation.

    Examples
    --------
    >>> g = general_conv_spec((1, 1, 5), (1, 1, 3), padding=((-1, 2),), input_dilation=2)
    >>> g.dilated_size, g.crop, g.spec.input_size, g.spec.padding, g.spec.output_size   # 9 - 1 + 2 - 3 + 1
    ((9,), ((1, 0),), (8,), ((0, 2),), (8,))
    """
    if type(input_dilation) is int and input_dilation == 1 and not _has_negative(padding):
        # the ordinary convolution (the common case, kept as fast as before), checked as ever
        spec = conv_spec(input_shape, weight_shape, stride, padding, dilation, groups, padding_mode, func=func)
        return GeneralConv(spec, spec.input_size, (1,) * spec.ndim, spec.padding)
    input_shape, weight_shape, ndim = _check_shapes(input_shape, weight_shape, func)
    L = positive_ints(input_dilation, ndim, func, "input_dilation")
    size = input_shape[2:]
    if all(v == 1 for v in L) and not _has_negative(padding):
        spec = conv_spec(input_shape, weight_shape, stride, padding, dilation, groups, padding_mode, func=func)
        return GeneralConv(spec, size, L, spec.padding)
    if isinstance(padding, str) and padding != "valid":
        raise ValueError(
            f"{func}: padding={padding!r} is not defined with input_dilation={L} (JAX refuses string padding with "
            "lhs_dilation too); give the padding as integers or (low, high) pairs"
        )
    if padding_mode != "zeros":
        what = "input_dilation > 1" if any(v > 1 for v in L) else "negative padding (a crop)"
        raise ValueError(
            f"{func}: padding_mode={padding_mode!r} cannot be combined with {what}; only padding_mode='zeros' "
            "(JAX's only mode) is defined there"
        )
    stride_t = positive_ints(stride, ndim, func, "stride")
    dilation_t = positive_ints(dilation, ndim, func, "dilation")
    pads = resolve_padding(padding, size, weight_shape[2:], stride_t, dilation_t, func, allow_negative=True)
    reduced = []
    for dim, (h, l, k, s, d, (lo, hi)) in enumerate(zip(size, L, weight_shape[2:], stride_t, dilation_t, pads)):
        h_dil = (h - 1) * l + 1
        h_red = h_dil - max(0, -lo) - max(0, -hi)
        if h_red < 1:
            raise ValueError(
                f"{func}: padding {(lo, hi)} crops away the whole input in spatial dim {dim}: the input has "
                f"(H-1)*L+1 = ({h}-1)*{l}+1 = {h_dil} positions and the crop removes {max(0, -lo)}+{max(0, -hi)} "
                f"of them"
            )
        k_eff = d * (k - 1) + 1
        if h_dil + lo + hi < k_eff:
            raise ValueError(
                f"{func}: the output would be empty in spatial dim {dim} (padding {(lo, hi)}): "
                f"H_out = floor(((H-1)*L+1 + P_lo + P_hi - K_eff)/S) + 1 = floor(({h_dil} + {lo} + {hi} - {k_eff})/{s})"
                f" + 1 = {(h_dil + lo + hi - k_eff) // s + 1} < 1"
            )
        reduced.append(h_red)
    kept_pads = tuple((max(0, lo), max(0, hi)) for lo, hi in pads)
    spec = conv_spec((*input_shape[:2], *reduced), weight_shape, stride_t, kept_pads, dilation_t, groups, "zeros",
                     func=func)
    return GeneralConv(spec, size, L, pads)


def reduce_input(x: np.ndarray, general: GeneralConv) -> np.ndarray:
    """The input the reduced spec reads: ``x`` dilated (zeros between samples) and cropped, shape ``(..., *H_red)``.

    Returns ``x`` itself when there is nothing to do; otherwise a new array (``x`` is not modified).

    Examples
    --------
    >>> g = general_conv_spec((1, 1, 3), (1, 1, 1), padding=((-1, 0),), input_dilation=2)
    >>> reduce_input(np.array([[[1.0, 2.0, 3.0]]]), g)     # 1 0 2 0 3, the first position cropped
    array([[[0., 2., 0., 3.]]])
    """
    if general.plain:
        return x
    nd = len(general.input_size)
    out = np.zeros(x.shape[: x.ndim - nd] + general.spec.input_size, dtype=x.dtype)  # (..., *H_red)
    src, dst = general.samples()
    out[(..., *dst)] = x[(..., *src)]
    return out


def expand_grad_input(dx_reduced: np.ndarray, general: GeneralConv) -> np.ndarray:
    """The caller's input gradient from the reduced spec's: the kept elements' positions, zero elsewhere.

    Examples
    --------
    >>> g = general_conv_spec((1, 1, 3), (1, 1, 1), padding=((-1, 0),), input_dilation=2)
    >>> expand_grad_input(np.array([[[10.0, 20.0, 30.0, 40.0]]]), g)   # x0 was cropped: exactly 0
    array([[[ 0., 20., 40.]]])
    """
    if general.plain:
        return dx_reduced
    nd = len(general.input_size)
    out = np.zeros(dx_reduced.shape[: dx_reduced.ndim - nd] + general.input_size, dtype=dx_reduced.dtype)  # (..., *H)
    src, dst = general.samples()
    out[(..., *src)] = dx_reduced[(..., *dst)]
    return out
