"""Each known mistake as a mutant of the reference: the results a program with that mistake gives.

A mutant returns the op's quantities (``output`` or ``grad_input``/``grad_weight``/``grad_bias``)
as a program with the mistake would compute them, in convgrad's layout. A mutant that does not
apply to a case (no stride, no padding, ...) returns ``None``; one whose mistake changes a shape
returns an array of that shape (its values are not compared); one whose mistake crashes raises.
The ids are the public vocabulary of :data:`convgrad.verify.BUGS`.
"""

from __future__ import annotations

import itertools
from typing import Callable

import numpy as np

from . import geometry as geo
from .cases import Case

Quantities = dict[str, np.ndarray]


def _flip(w: np.ndarray, axes=None) -> np.ndarray:
    axes = tuple(range(2, w.ndim)) if axes is None else axes
    return np.flip(w, axis=axes)


def assemble(case: Case, data: dict, *, F=geo.forward, GI=geo.grad_input, GW=geo.grad_weight,
             g: geo.Geometry | None = None, db=None) -> Quantities:
    """The op's quantities from the three primitives (any of them replaced)."""
    g = g or geo.geometry(case)
    x, w, b, dy = data["x"], data["w"], data["b"], data["dy"]
    bias_shape = (1, -1) + (1,) * case.ndim
    sum_db = db or (lambda d: d.sum(axis=(0, *range(2, d.ndim))))
    if case.op == "forward":
        return {"output": F(x, w, g) + b.reshape(bias_shape)}
    if case.op == "transposed_forward":
        return {"output": GI(x, w, g) + b.reshape(bias_shape)}
    if case.op == "backward":
        return {"grad_input": GI(dy, w, g), "grad_weight": GW(x, dy, g), "grad_bias": sum_db(dy)}
    return {"grad_input": F(dy, w, g), "grad_weight": GW(dy, x, g), "grad_bias": sum_db(dy)}


def _result(case: Case, data: dict, **kw) -> Quantities:
    return assemble(case, data, **kw)


def _needs(case: Case, *, stride=False, padding=False, dilation=False, groups=False) -> bool:
    g = geo.geometry(case)
    return ((not stride or any(s > 1 for s in g.step)) and (not padding or any(g.lo) or any(g.hi))
            and (not dilation or any(d > 1 for d in g.spacing)) and (not groups or g.groups > 1))


# ------------------------------------------------------------------------------------------------
# the mutants, one small function each
# ------------------------------------------------------------------------------------------------


def stride_windows(case, data):
    """Windows at ``i`` instead of ``i*S`` in the backward pass (dY not dilated by the stride)."""
    if not _needs(case, stride=True) or case.op == "forward":
        return None
    g = geo.geometry(case)
    one = g.changed(step=(1,) * g.ndim)
    if case.op == "transposed_forward":
        return _result(case, data, g=one)
    return {**_result(case, data), **{k: v for k, v in _result(case, data, g=one).items() if k != "grad_bias"}}


def tail_zero(case, data):
    """dX rebuilt only over the read span: the unread tail's real rows left at 0 (or never computed)."""
    if case.op != "backward":
        return None
    g = geo.geometry(case)
    out = _result(case, data)
    dx = out["grad_input"].copy()
    changed = False
    for d in range(g.ndim):
        span = (g.Ho[d] - 1) * g.step[d] + g.spacing[d] * (g.K[d] - 1) + 1
        kept = span - g.lo[d] - g.hi[d]
        if 0 <= kept < g.H[d]:
            idx = [slice(None)] * dx.ndim
            idx[2 + d] = slice(kept, None)
            dx[tuple(idx)] = 0
            changed = True
    return {**out, "grad_input": dx} if changed else None


def tail_short(case, data):
    """dX of the read span's size: short by the unread tail."""
    if case.op != "backward":
        return None
    g = geo.geometry(case)
    out = _result(case, data)
    sl = []
    for d in range(g.ndim):
        span = (g.Ho[d] - 1) * g.step[d] + g.spacing[d] * (g.K[d] - 1) + 1
        sl.append(slice(0, max(0, span - g.lo[d] - g.hi[d])))
    dx = out["grad_input"][(slice(None), slice(None), *sl)]
    return {**out, "grad_input": dx} if dx.shape != out["grad_input"].shape else None


def overlap_assign(case, data):
    """Overlapping windows written with ``=`` instead of ``+=``: the last tap wins."""
    if case.op not in ("backward", "transposed_forward"):
        return None
    g = geo.geometry(case)
    if not (geo.coverage(g) >= 2).any():
        return None
    return _result(case, data, GI=lambda dy, w, gg: geo.grad_input(dy, w, gg, assign=True))


def _kernel_turns(w: np.ndarray) -> list[np.ndarray]:
    """The wrong kernels of a flip mistake: flipped on every axis, and turned 90 degrees either way."""
    out = [_flip(w)]
    if w.ndim >= 4 and w.shape[-1] == w.shape[-2]:
        out += [np.rot90(w, 1, axes=(-2, -1)), np.rot90(w, -1, axes=(-2, -1))]
    return out


def flip_missing(case, data):
    """The input gradient computed with the kernel not flipped (or flipped twice, or turned 90 degrees)."""
    if case.op not in ("backward", "transposed_forward", "transposed_backward"):
        return None
    variants = []
    for i in range(len(_kernel_turns(data["w"]))):
        if case.op == "transposed_backward":
            variants.append(_result(case, data, F=lambda x, w, g, i=i: geo.forward(x, _kernel_turns(w)[i], g)))
        else:
            variants.append(_result(case, data, GI=lambda dy, w, g, i=i: geo.grad_input(dy, _kernel_turns(w)[i], g)))
    return variants


def flip_one_axis(case, data):
    """The kernel flipped along one spatial axis only (variants: each axis)."""
    if case.ndim < 2:
        return None
    return [_result(case, data, F=lambda x, w, g, a=axis: geo.forward(x, _flip(w, (a,)), g))
            if case.op in ("transposed_backward", "forward") else
            _result(case, data, GI=lambda dy, w, g, a=axis: geo.grad_input(dy, _flip(w, (a,)), g))
            for axis in range(2, 2 + case.ndim)]


def true_convolution(case, data):
    """A forward that computes a true convolution (kernel flipped) instead of a cross-correlation."""
    if case.op == "forward":
        return _result(case, data, F=lambda x, w, g: geo.forward(x, _flip(w), g))
    if case.op == "transposed_forward":
        return _result(case, data, GI=lambda x, w, g: geo.grad_input(x, _flip(w), g))
    return None


def grad_weight_flipped(case, data):
    """dW returned flipped (computed as a convolution, not a correlation)."""
    if case.op not in ("backward", "transposed_backward"):
        return None
    out = _result(case, data)
    return {**out, "grad_weight": _flip(out["grad_weight"])}


def crop_offset(case, data):
    """The padding cut from dX (or the transposed output) at offset 0 instead of P_lo."""
    if case.op not in ("backward", "transposed_forward") or not _needs(case, padding=True):
        return None
    g = geo.geometry(case)
    wide = g.changed(H=tuple(h + lo + hi for h, lo, hi in zip(g.H, g.lo, g.hi)), lo=(0,) * g.ndim, hi=(0,) * g.ndim)
    key = "grad_input" if case.op == "backward" else "output"
    src = data["dy"] if case.op == "backward" else data["x"]
    full = geo.grad_input(src, data["w"], wide)          # the gradient of the padded input
    out = _result(case, data)
    cut = full[(slice(None), slice(None), *(slice(0, h) for h in g.H))]
    if case.op == "transposed_forward":
        cut = cut + data["b"].reshape((1, -1) + (1,) * case.ndim)
    return {**out, key: cut}


def crop_empty(case, data):
    """``dx_pad[:, :, p:-p]`` with ``p = 0``: an empty dX."""
    if case.op != "backward" or _needs(case, padding=True):
        return None
    out = _result(case, data)
    return {**out, "grad_input": out["grad_input"][(slice(None), slice(None), *(slice(0, 0),) * case.ndim)]}


def same_odd_first(case, data):
    """'same' padding with the odd pixel at the start instead of the end."""
    if case.padding != "same":
        return None
    g = geo.geometry(case)
    if g.lo == g.hi:
        return None
    return _result(case, data, g=g.changed(lo=g.hi, hi=g.lo))


def same_half_both(case, data):
    """'same' padding as ``K_eff // 2`` on both sides."""
    if case.padding != "same" or case.transposed:
        return None
    g = geo.geometry(case)
    half = tuple((d * (k - 1) + 1) // 2 for k, d in zip(g.K, g.spacing))
    if half == g.lo and half == g.hi:
        return None
    ho = tuple((h + 2 * p - (d * (k - 1) + 1)) // s + 1 for h, p, k, d, s in zip(g.H, half, g.K, g.spacing, g.step))
    if case.op == "forward":
        return _result(case, data, g=g.changed(lo=half, hi=half, Ho=ho))
    if ho != g.Ho:
        return None
    return _result(case, data, g=g.changed(lo=half, hi=half))


def _interleave(channels: int, groups: int) -> np.ndarray:
    """Channel ``j`` of group ``g`` taken as ``g + G*j`` (interleaved) instead of ``g*C_g + j``."""
    per = channels // groups
    return np.array([gg + groups * j for gg in range(groups) for j in range(per)])


def groups_interleaved(case, data):
    """Input channels mapped to groups as ``c % G`` (interleaved) instead of contiguous blocks."""
    if not _needs(case, groups=True):
        return None
    perm = _interleave(data["x"].shape[1] if case.op in ("forward", "backward") else data["dy"].shape[1],
                       case.groups)
    inv = np.argsort(perm)
    d = dict(data)
    if case.op in ("forward", "backward"):
        d["x"] = data["x"][:, perm]
        out = _result(case, d)
        if "grad_input" in out:
            out["grad_input"] = out["grad_input"][:, inv]
        return out
    if case.op == "transposed_backward":
        d["dy"] = data["dy"][:, perm]
        out = _result(case, d)
        out["grad_bias"] = _result(case, data)["grad_bias"]
        return out
    out = _result(case, d)
    out["output"] = out["output"][:, perm] if out["output"].shape[1] == len(perm) else out["output"]
    return out


def groups_first_only(case, data):
    """Every group reads the first group's channels (the channel offset ``g*C_g`` left out)."""
    if not _needs(case, groups=True) or case.op not in ("forward", "backward"):
        return None
    G = case.groups
    x = data["x"]
    cg = x.shape[1] // G
    d = dict(data, x=np.concatenate([x[:, :cg]] * G, axis=1))
    out = _result(case, d)
    if "grad_input" in out:
        dx = out["grad_input"].reshape(x.shape[0], G, cg, *x.shape[2:]).sum(axis=1)
        full = np.zeros_like(x, dtype=np.float64)
        full[:, :cg] = dx
        out["grad_input"] = full
    return out


def _bias_scaled(factor_of: Callable[[np.ndarray], float]):
    def mutant(case, data):
        if case.op not in ("backward", "transposed_backward"):
            return None
        out = _result(case, data)
        f = factor_of(data["dy"])
        return None if f == 1 else {**out, "grad_bias": out["grad_bias"] / f}
    return mutant


bias_mean_all = _bias_scaled(lambda dy: dy.size // dy.shape[1])
bias_mean_all.__doc__ = "dB as a mean over batch and positions: 1/(N*Ho*Wo) of the sum."
bias_mean_batch = _bias_scaled(lambda dy: dy.shape[0])
bias_mean_batch.__doc__ = "dB averaged over the batch: 1/N of the sum."
bias_mean_positions = _bias_scaled(lambda dy: dy[0, 0].size)
bias_mean_positions.__doc__ = "dB averaged over the positions: 1/(Ho*Wo) of the sum."


def bias_wrong_axes(case, data):
    """dB summed over the wrong axes (keeps a spatial axis or the batch)."""
    if case.op not in ("backward", "transposed_backward"):
        return None
    out = _result(case, data)
    return {**out, "grad_bias": data["dy"].sum(axis=tuple(range(2, data["dy"].ndim)))}


def one_sample(which: int):
    def mutant(case, data):
        if case.op not in ("backward", "transposed_backward") or data["x"].shape[0] < 2:
            return None
        out = _result(case, data)
        one = {k: (v[which:which + 1] if k in ("x", "dy") else v) for k, v in data.items()}
        single = _result(case, one)
        return {**out, "grad_weight": single["grad_weight"]}
    mutant.__doc__ = f"dW from one sample ({'the first' if which == 0 else 'the last'}) instead of the batch sum."
    return mutant


def bias_one_sample(case, data):
    """dB from one sample instead of the batch sum."""
    if case.op not in ("backward", "transposed_backward") or data["x"].shape[0] < 2:
        return None
    out = _result(case, data)
    dy = data["dy"][-1:]
    return {**out, "grad_bias": dy.sum(axis=(0, *range(2, dy.ndim)))}


def dw_transposed(case, data):
    """dW with its two channel axes swapped (``dw.transpose(1, 0, ...)``) or reshaped where a transpose was needed."""
    if case.op not in ("backward", "transposed_backward"):
        return None
    out = _result(case, data)
    dw = out["grad_weight"]
    swapped = np.swapaxes(dw, 0, 1)
    if swapped.shape != dw.shape:
        swapped = swapped.reshape(dw.shape)
    return None if np.array_equal(swapped, dw) else {**out, "grad_weight": swapped}


def dilation_plus_one(case, data):
    """Dilation ``d`` taken as ``d`` inserted zeros: taps ``d + 1`` apart (numpy-ml: 0 means none)."""
    g = geo.geometry(case)
    if all(k == 1 for k in g.K):
        return None
    wider = g.changed(spacing=tuple(d + 1 for d in g.spacing))
    keff = tuple((d + 1) * (k - 1) + 1 for k, d in zip(g.K, g.spacing))
    ho = tuple((h + lo + hi - ke) // s + 1 for h, lo, hi, ke, s in zip(g.H, g.lo, g.hi, keff, g.step))
    if case.op == "forward":
        if min(ho) < 1:
            return None
        wider = wider.changed(Ho=ho)
    variants = [_result(case, data, g=wider)]
    if case.op == "backward" and min(ho) < 1:
        # the wider kernel fits nowhere: code that sizes its loops from it computes nothing at all
        nothing = {k: np.zeros_like(v) for k, v in variants[0].items()}
        nothing["grad_bias"] = variants[0]["grad_bias"]
        variants.append(nothing)
    return variants


def dilation_minus_one(case, data):
    """Dilation off by one the other way: taps ``d - 1`` apart."""
    if not _needs(case, dilation=True):
        return None
    g = geo.geometry(case)
    closer = g.changed(spacing=tuple(max(1, d - 1) for d in g.spacing))
    if case.op == "forward":
        return None
    return _result(case, data, g=closer)


def axis_reused(source: int):
    def mutant(case, data):
        g = geo.geometry(case)
        if g.ndim < 2:
            return None
        s = source if source >= 0 else g.ndim - 1
        every = {"step": g.step, "spacing": g.spacing, "lo": g.lo, "hi": g.hi}
        choices = [("step",), ("spacing",), ("lo", "hi"), tuple(every)]
        variants = []
        for fields in choices:
            same = g.changed(**{f: (every[f][s],) * g.ndim for f in fields})
            if same == g:
                continue
            if case.op == "forward":
                ho = tuple((h + lo + hi - (d * (k - 1) + 1)) // st + 1
                           for h, lo, hi, k, d, st in zip(g.H, same.lo, same.hi, g.K, same.spacing, same.step))
                if min(ho) < 1:
                    continue
                same = same.changed(Ho=ho)
            variants.append(_result(case, data, g=same))
        return variants or None
    mutant.__doc__ = f"The stride, dilation or padding of dim {source} (or all three) used for every dim."
    return mutant


def stride_dilation_swapped(case, data):
    """dW (or dX) written as a correlation with stride and dilation exchanged the wrong way."""
    if case.op not in ("backward", "transposed_backward"):
        return None
    g = geo.geometry(case)
    if g.step == g.spacing:
        return None
    swapped = g.changed(step=g.spacing, spacing=g.step)
    out = _result(case, data)
    other = _result(case, data, g=swapped)
    return {**out, "grad_weight": other["grad_weight"]}


def output_padding_zeros(case, data):
    """The transposed output's ``output_padding`` rows filled with zeros (plus the bias) instead of computed."""
    if case.op != "transposed_forward" or not any(case.output_padding):
        return None
    out = _result(case, data)
    y = out["output"].copy()
    b = data["b"].reshape((1, -1) + (1,) * case.ndim)
    for d, a in enumerate(case.output_padding):
        if a:
            idx = [slice(None)] * y.ndim
            idx[2 + d] = slice(y.shape[2 + d] - a, None)
            y[tuple(idx)] = np.broadcast_to(b, y.shape)[tuple(idx)]
    return {"output": y}


def output_padding_dy_cropped(case, data):
    """The transposed backward that drops dY's ``output_padding`` rows (as if they were not computed)."""
    if case.op != "transposed_backward" or not any(case.output_padding):
        return None
    dy = data["dy"].copy()
    for d, a in enumerate(case.output_padding):
        if a:
            idx = [slice(None)] * dy.ndim
            idx[2 + d] = slice(dy.shape[2 + d] - a, None)
            dy[tuple(idx)] = 0
    out = _result(case, dict(data, dy=dy))
    out["grad_bias"] = _result(case, data)["grad_bias"]
    return [out, _result(case, dict(data, dy=dy))]


def output_padding_bare_zeros(case, data):
    """The ``output_padding`` rows left at exactly 0 (no bias either)."""
    if case.op != "transposed_forward" or not any(case.output_padding):
        return None
    y = _result(case, data)["output"].copy()
    for d, a in enumerate(case.output_padding):
        if a:
            idx = [slice(None)] * y.ndim
            idx[2 + d] = slice(y.shape[2 + d] - a, None)
            y[tuple(idx)] = 0
    return {"output": y}


def transposed_layout(case, data):
    """A transposed convolution's weight read as ``(C_out, C_in/G, ...)`` instead of ``(C_in, C_out/G, ...)``."""
    if not case.transposed:
        return None
    w = data["w"]
    if w.shape[0] != w.shape[1] * case.groups or case.groups != 1:
        # the shapes disagree: the user's output has w.shape[0] channels
        if case.op == "transposed_forward":
            return {"output": np.zeros((data["x"].shape[0], w.shape[0], *_result(case, data)["output"].shape[2:]))}
        return None
    d = dict(data, w=np.swapaxes(w, 0, 1))
    out = _result(case, d)
    if "grad_weight" in out:
        out["grad_weight"] = np.swapaxes(out["grad_weight"], 0, 1)
    return out


def seed002_bounds(case, data):
    """dX from seed 002's summation limits as written: floor where ceil is needed, no clipping.

    ``i`` runs from ``floor((p - K)/S + 1)`` to ``floor((p - 1)/S + 1)`` (1-based), read with NumPy's
    negative-index wrap-around; a window past the end raises ``IndexError``.
    """
    if case.op != "backward" or case.groups != 1 or any(d > 1 for d in geo.geometry(case).spacing):
        return None
    g = geo.geometry(case)
    dy, w = data["dy"], data["w"]
    Hp = tuple(h + lo + hi for h, lo, hi in zip(g.H, g.lo, g.hi))
    dxp = np.zeros((dy.shape[0], w.shape[1], *Hp))
    ranges = []
    for d in range(g.ndim):
        per = []
        for p in range(1, Hp[d] + 1):
            lo_i = int(np.floor((p - g.K[d]) / g.step[d] + 1))
            hi_i = int(np.floor((p - 1) / g.step[d] + 1))
            per.append([(i - 1, p - (i - 1) * g.step[d] - 1) for i in range(lo_i, hi_i + 1)])
        ranges.append(per)
    for pos in itertools.product(*(range(h) for h in Hp)):
        for pairs in itertools.product(*(ranges[d][pos[d]] for d in range(g.ndim))):
            i = tuple(p[0] for p in pairs)
            k = tuple(p[1] for p in pairs)
            if any(kk >= kn for kk, kn in zip(k, g.K)) or any(ii >= ho for ii, ho in zip(i, g.Ho)):
                raise PlannedCrash(IndexError, f"index {i} out of bounds for the output of size {g.Ho} (kernel {k})")
            dxp[(slice(None), slice(None), *pos)] += np.einsum("no,oc->nc", dy[(slice(None), slice(None), *i)],
                                                                w[(slice(None), slice(None), *k)])
    out = _result(case, data)
    return {**out, "grad_input": dxp[(slice(None), slice(None), *(slice(lo, lo + h) for lo, h in zip(g.lo, g.H)))]}


#: bug id -> its mutants (variants of the mistake as it appears in real code)
MUTANTS: dict[str, tuple[Callable, ...]] = {
    "stride": (stride_windows,),
    "unread_tail": (tail_zero, tail_short),
    "overlap_accumulate": (overlap_assign,),
    "kernel_flip": (flip_missing, flip_one_axis, true_convolution, grad_weight_flipped),
    "padding_crop": (crop_offset, crop_empty),
    "padding_split": (same_odd_first, same_half_both),
    "groups": (groups_interleaved, groups_first_only),
    "bias_reduction": (bias_mean_all, bias_mean_batch, bias_mean_positions, bias_wrong_axes),
    "batch_sum": (one_sample(0), one_sample(-1), bias_one_sample),
    "channel_axes": (dw_transposed,),
    "dilation_off_by_one": (dilation_plus_one, dilation_minus_one),
    "per_axis": (axis_reused(0), axis_reused(-1)),
    "stride_dilation_swap": (stride_dilation_swapped,),
    "output_padding": (output_padding_zeros, output_padding_bare_zeros, output_padding_dy_cropped),
    "transposed_weight_layout": (transposed_layout,),
    "summation_bounds": (seed002_bounds,),
}


class PlannedCrash(Exception):
    """Raised by a mutant whose mistake crashes real code: ``kind`` is the exception that code raises."""

    def __init__(self, kind: type, message: str):
        super().__init__(message)
        self.kind = kind


def run(mutant: Callable, case: Case, data: dict) -> list[Quantities | PlannedCrash]:
    """A mutant's variants: results, or the crash the mistake causes; empty where it does not apply.

    Any other exception inside a mutant means it does not fit this case (never a diagnosis).
    """
    try:
        out = mutant(case, {k: v.astype(np.float64) for k, v in data.items()})
    except PlannedCrash as crash:
        return [crash]
    except Exception:
        return []
    if out is None:
        return []
    return out if isinstance(out, list) else [out]
