"""Input dilation and negative padding in ``explain``: the reduced input, its sizes and its traps.

A convolution with input dilation ``L`` and a negative padding (a crop) is explained as the
ordinary convolution of the *reduced input* ``x~`` -- ``x`` with ``L - 1`` zeros between
neighbours, cropped (:mod:`convgrad.general`). Every formula, contributor set and picture of the
:class:`~convgrad.explain.Explanation` is in ``x~``'s coordinates; this module states how ``x~``
is made from ``x``, with the numbers filled in, which elements of ``x`` are read at all, and
converts indices between the two (:func:`user_index`, :func:`reduced_index`).
"""

from __future__ import annotations

from ..general import GeneralConv, element_position

__all__ = ["describe", "traps", "calls", "text_lines", "user_index", "reduced_index"]


def user_index(general: GeneralConv, index) -> tuple[int, ...] | None:
    """The element of the caller's ``x`` at ``x~[index]`` (``(n, c, *p)``), or ``None`` for an inserted zero.

    Examples
    --------
    >>> from convgrad.general import general_conv_spec
    >>> g = general_conv_spec((1, 1, 4), (1, 1, 2), padding=((-1, 0),), input_dilation=2)
    >>> user_index(g, (0, 0, 1)), user_index(g, (0, 0, 2))
    ((0, 0, 1), None)
    """
    nd = len(general.input_size)
    spatial = [element_position(general, d, p) for d, p in enumerate(index[len(index) - nd:])]
    if any(h is None for h in spatial):
        return None
    return (*index[: len(index) - nd], *spatial)


def reduced_index(general: GeneralConv, index) -> tuple[int, ...] | None:
    """Where the caller's ``x[index]`` sits in ``x~``, or ``None`` if the crop removed it (its gradient is 0).

    Examples
    --------
    >>> from convgrad.general import general_conv_spec
    >>> g = general_conv_spec((1, 1, 4), (1, 1, 2), padding=((-1, 0),), input_dilation=2)
    >>> reduced_index(g, (0, 0, 0)), reduced_index(g, (0, 0, 3))
    (None, (0, 0, 5))
    """
    nd = len(general.input_size)
    out = []
    for d, h in enumerate(index[len(index) - nd:]):
        p = h * general.input_dilation[d] - general.crop[d][0]
        if not 0 <= p < general.spec.input_size[d]:
            return None
        out.append(p)
    return (*index[: len(index) - nd], *out)


def _ranges(values) -> str:
    """``[0, 1, 2, 7]`` -> ``"0..2, 7"``."""
    values = sorted(values)
    parts, start = [], None
    for i, v in enumerate(values):
        if start is None:
            start = v
        if i + 1 == len(values) or values[i + 1] != v + 1:
            parts.append(str(start) if start == v else f"{start}..{v}")
            start = None
    return ", ".join(parts) if parts else "none"


def describe(general: GeneralConv) -> list[dict]:
    """Per spatial dim: the sizes with their formulas filled in, the crop, the elements read and cropped."""
    s = general.spec
    dims = []
    for d, (h, L, (lo, hi)) in enumerate(zip(general.input_size, general.input_dilation, general.padding)):
        h_dil = (h - 1) * L + 1
        clo, chi = general.crop[d]
        k_eff = s.effective_kernel[d]
        kept = general.kept(d)
        dims.append({
            "dim": d,
            "input_size": h,
            "input_dilation": L,
            "padding": [lo, hi],
            "dilated_size": h_dil,
            "dilated_size_formula": f"(H-1)*L+1 = ({h}-1)*{L}+1 = {h_dil}",
            "crop": [clo, chi],
            "reduced_size": s.input_size[d],
            "reduced_size_formula": f"H_dil - crop_lo - crop_hi = {h_dil} - {clo} - {chi} = {s.input_size[d]}",
            "reduced_padding": list(s.padding[d]),
            "output_size_formula": (
                f"floor((H_dil + P_lo + P_hi - K_eff)/S) + 1 = floor(({h_dil} + {lo} + {hi} - {k_eff})/{s.stride[d]}) "
                f"+ 1 = {s.output_size[d]}"),
            "position_rule": f"x[h] sits at x~[h*{L} - {clo}]" if clo else f"x[h] sits at x~[h*{L}]",
            "kept": [kept.start, kept.stop - 1] if len(kept) else [],
            "cropped": [v for v in range(h) if v not in kept],
        })
    return dims


def traps(general: GeneralConv) -> list[dict]:
    """The mistakes this configuration invites, as ``explain``'s warnings (title, text)."""
    out = []
    if any(c != (0, 0) for c in general.crop):
        cropped = [f"dim {g['dim']}: {_ranges(g['cropped'])}" for g in describe(general) if g["cropped"]]
        out.append({
            "title": "cropped elements",
            "text": ("A negative padding crops the (dilated) input before the convolution reads it, so the cropped "
                     "elements of x are never read and their gradient is exactly 0 -- not the gradient of a "
                     "padded position. " + ("Cropped: " + "; ".join(cropped) + "." if cropped else
                                            "Here the crop removes only inserted zeros.")),
        })
    if any(L > 1 for L in general.input_dilation):
        out.append({
            "title": "input dilation is a transposed convolution",
            "text": ("Input dilation L puts L-1 zeros between neighbouring inputs: the convolution reads x~, not x, "
                     "and the inserted zeros have no gradient. That is exactly what a transposed convolution with "
                     "stride L does (and what the input gradient of a stride-L convolution does to dY): "
                     "conv(x, w, input_dilation=L, padding=K_eff-1-P) equals conv_transpose(x, w', stride=L, "
                     "padding=P) with w' the spatially flipped w, in/out channels exchanged. Do not confuse it with "
                     "the kernel's dilation, which spreads the taps."),
        })
    return out


def _slice(sl: slice) -> str:
    step = "" if sl.step in (None, 1) else f":{sl.step}"
    return f"{sl.start}:{sl.stop}{step}"


def calls(general: GeneralConv) -> dict:
    """x~ built with NumPy, and the whole convolution as the JAX call (both executable as printed).

    Examples
    --------
    >>> from convgrad.general import general_conv_spec
    >>> c = calls(general_conv_spec((1, 1, 4), (1, 1, 2), padding=((-1, 0),), input_dilation=2))
    >>> c["numpy"]
    'xt = np.zeros((1, 1, 6), x.dtype); xt[:, :, 1:6:2] = x[:, :, 1:4]'
    >>> c["jax"]
    'y = jax.lax.conv_general_dilated(x, w, (1,), ((-1, 0),), lhs_dilation=(2,), rhs_dilation=(1,), feature_group_count=1)'
    """
    s = general.spec
    src, dst = general.samples()
    numpy = (f"xt = np.zeros({s.input_shape}, x.dtype); xt[:, :, {', '.join(map(_slice, dst))}] = "
             f"x[:, :, {', '.join(map(_slice, src))}]")
    jax = (f"y = jax.lax.conv_general_dilated(x, w, {s.stride}, {tuple(general.padding)}, "
           f"lhs_dilation={general.input_dilation}, rhs_dilation={s.dilation}, feature_group_count={s.groups})")
    return {"numpy": numpy, "jax": jax}


def text_lines(general: GeneralConv, batched: bool = True) -> list[str]:
    """The ``INPUT DILATION AND CROP`` section of ``explain``'s text (shapes without the batch axis if not ``batched``)."""
    s = general.spec
    cut = 0 if batched else 1
    lines = ["INPUT DILATION AND CROP (JAX's lhs_dilation and negative padding)",
             f"  x~ is what the convolution reads: x {general.input_shape[cut:]} with L-1 zeros between neighbours, then "
             "cropped where a padding entry is negative;",
             f"  x~ has shape {s.input_shape[cut:]} and is padded by {tuple(s.padding)} (the non-negative parts). Every "
             "formula below is written for x~."]
    for g in describe(general):
        lines.append(f"  dim {g['dim']}: H = {g['input_size']}, L = {g['input_dilation']}, padding {tuple(g['padding'])}")
        lines.append(f"    H_dil   {g['dilated_size_formula']}")
        lines.append(f"    crop    {tuple(g['crop'])} -> H~ = {g['reduced_size_formula']}")
        lines.append(f"    H_out   {g['output_size_formula']}")
        lines.append(f"    {g['position_rule']}" + ("; x~'s other positions are inserted zeros" if g["input_dilation"] > 1 else ""))
        read = f"{g['kept'][0]}..{g['kept'][1]}" if g["kept"] else "none"
        lines.append(f"    elements of x kept: {read}; cropped (gradient exactly 0): {_ranges(g['cropped'])}")
    lines.append("  dX is read back from dX~ at the positions of x's elements; dW and db are those of x~'s convolution.")
    c = calls(general)
    lines.append("  x~ in NumPy (batched x):")
    lines.append("    " + c["numpy"])
    lines.append("  the same convolution in JAX (x batched, jax_enable_x64 for float64):")
    lines.append("    " + c["jax"])
    lines.append("  (x~'s zero-gradient positions in SIZES below are those of x~: an inserted zero, or an element of x.)")
    return lines
