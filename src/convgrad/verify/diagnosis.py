"""Naming the mistake: mutants whose results equal the user's, structural signatures, explanations.

Two kinds of evidence, on the minimal failing case and the other failing cases met on the way:

- a **mutant** (:mod:`convgrad.verify.mutants`) whose failing quantity equals the user's, value
  for value (or shape for shape, or exception for exception);
- a **structural signature**: a property of the wrong numbers that holds whatever the details of
  the user's code (which overlapping write lands last, which sample survives, how a crop is
  written) -- e.g. the wrong elements are exactly the cells covered by two or more windows.

An id found by a mutant ranks above one found by a signature only; ties keep the table's order.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from . import geometry as geo
from .cases import Case
from .compare import Finding, reference, wrong_mask
from .mutants import MUTANTS, PlannedCrash, run

#: The public vocabulary: id -> the mistake in one line.
BUGS = {
    "stride": "stride ignored or misapplied in the backward pass (windows at i not i*S; dY not dilated by the stride)",
    "unread_tail": "the unread tail mishandled (dX short, or its last rows wrong)",
    "overlap_accumulate": "overlapping windows overwritten instead of accumulated (= for +=, fancy-index += without np.add.at)",
    "kernel_flip": "kernel flip missing, extra, or wrong (one axis, 90 degrees); a forward that computes a true convolution",
    "padding_crop": "padding removed from dX at the wrong offset, or [p:-p] at p = 0",
    "padding_split": "'same' padding split wrongly (even kernels, stride > 1)",
    "groups": "groups mishandled (channel offsets)",
    "bias_reduction": "dB as a mean, or summed over the wrong axes",
    "batch_sum": "dW or dB from one sample instead of summed over the batch",
    "channel_axes": "dW's output and input channel axes swapped, or reshaped where a transpose was needed",
    "dilation_off_by_one": "dilation counted as the number of inserted zeros (spacing d + 1)",
    "per_axis": "one dim's stride/padding/dilation used for another dim",
    "stride_dilation_swap": "stride and dilation exchanged the wrong way in dW written as a correlation",
    "output_padding": "a transposed convolution's extra rows filled with zeros instead of computed",
    "transposed_weight_layout": "a transposed convolution's weight read as (C_out, C_in, ...)",
    "summation_bounds": "floor where ceil is needed, or unclipped bounds, in dX's summation limits (the seed 002 formula)",
}


@dataclass
class Evidence:
    """One failing case: its operands, convgrad's results, the user's results and findings."""

    case: Case
    data: dict
    expected: dict
    got: dict                     # quantity -> the user's array in convgrad's layout (or None)
    findings: list[Finding]
    tol: float
    probe: object = None          # runs the user's function on another case: Case -> Evidence | None

    def passes(self, case) -> bool:
        """Whether the user's function is right on ``case`` (a probe: False when it cannot be run)."""
        if self.probe is None or not case.valid():
            return False
        other = self.probe(case)
        return other is not None and not other.findings


def _same(a: np.ndarray, b: np.ndarray, tol: float) -> bool:
    if a.shape != b.shape:
        return False
    if a.size == 0:
        return True
    return not wrong_mask(b, a, tol).any() if np.all(np.isfinite(a)) else False


def _mutant_score(bug: str, ev: Evidence, finding: Finding) -> float:
    """2 when a variant of the mistake gives the user's results (the failing quantity equal, and no
    quantity the user got right changed); 0.6 when it gives the failing quantity but changes one the
    user got right (two mistakes at once, or a coincidence); 0 otherwise."""
    q = finding.quantity
    right = [k for k in ev.expected if k not in {f.quantity for f in ev.findings}]
    best = 0.0
    for mutant in MUTANTS[bug]:
        for variant in run(mutant, ev.case, ev.data):
            if isinstance(variant, PlannedCrash):
                if finding.kind == "exception" and isinstance(finding.error, variant.kind):
                    best = max(best, 2.0)
                continue
            if q not in variant:
                continue
            m = variant[q]
            if m.shape == ev.expected[q].shape and not wrong_mask(ev.expected[q], m, ev.tol).any():
                continue  # the mistake does not show here
            if finding.kind == "shape":
                # the same wrong shape, and the same numbers in it when they can be compared
                hit = m.shape == finding.got_shape and (
                    finding.got_raw is None or m.size == 0 or _same(finding.got_raw.astype(np.float64), m, ev.tol))
            elif finding.kind in ("values", "nonfinite") and finding.got is not None:
                hit = _same(finding.got, m, ev.tol)
            else:
                hit = False
            if not hit:
                continue
            changed = any(k in variant and not _same(variant[k], ev.expected[k], ev.tol) for k in right)
            best = max(best, 0.6 if changed else 2.0)
    return best


# ------------------------------------------------------------------------------------------------
# structural signatures: properties of the numbers, independent of the code's details
# ------------------------------------------------------------------------------------------------


def _spatial_any(mask: np.ndarray) -> np.ndarray:
    return mask.reshape(-1, *mask.shape[2:]).any(axis=0)


def _only_last(f: Finding, counts) -> bool:
    """Some element is wrong, and every wrong one lies in the last ``counts[d]`` positions of some dim d."""
    spatial = _spatial_any(f.wrong)
    allowed = np.zeros_like(spatial)
    for d, t in enumerate(counts):
        if t:
            idx = [slice(None)] * spatial.ndim
            idx[d] = slice(spatial.shape[d] - t, None)
            allowed[tuple(idx)] = True
    return bool(spatial.any()) and not (spatial & ~allowed).any()


def sig_overlap(ev: Evidence, f: Finding) -> bool:
    """The wrong elements are exactly the cells covered by two or more windows."""
    # (a transposed output is mostly cells read by several windows: the property says little there)
    if f.kind != "values" or (ev.case.op, f.quantity) != ("backward", "grad_input"):
        return False
    cover = geo.coverage(geo.geometry(ev.case)) >= 2
    return bool(cover.any()) and np.array_equal(_spatial_any(f.wrong), cover)


def sig_bias(ev: Evidence, f: Finding) -> bool:
    """dB of the wrong shape, or a constant ratio 1/(N*Ho*Wo), 1/N or 1/(Ho*Wo) to the right one."""
    if f.quantity != "grad_bias":
        return False
    if f.kind == "shape":
        return True
    if f.kind != "values" or np.any(ev.expected["grad_bias"] == 0):
        return False
    if np.isclose(f.got.sum(), ev.expected["grad_bias"].sum(), rtol=1e-9, atol=1e-9):
        return True   # every dY element counted once, but into the wrong channel: wrong axes or layout
    ratio = f.got / ev.expected["grad_bias"]
    dy = ev.data["dy"]
    n, positions = dy.shape[0], dy[0, 0].size
    return any(np.allclose(ratio, 1 / d, rtol=1e-6) for d in {n * positions, n, positions} if d > 1)


def sig_one_sample(ev: Evidence, f: Finding) -> bool:
    """dW (or dB) equals the reference computed on one sample."""
    if f.quantity not in ("grad_weight", "grad_bias") or f.kind != "values":
        return False
    x, dy = ev.data["x"], ev.data["dy"]
    if x.shape[0] < 2:
        return False
    for n in range(x.shape[0]):
        one = dict(ev.data, x=x[n:n + 1], dy=dy[n:n + 1])
        if _same(f.got, reference(dataclasses.replace(ev.case, batch=1), one)[f.quantity], ev.tol):
            return True
    return False


def sig_crop(ev: Evidence, f: Finding) -> bool:
    """dX empty at padding 0, or equal to the reference shifted by the padding."""
    if f.quantity != "grad_input" or ev.case.op != "backward":
        return False
    if f.kind == "shape":
        return 0 in f.got_shape[2:]
    if f.kind != "values":
        return False
    g = geo.geometry(ev.case)
    exp, got = ev.expected["grad_input"], f.got
    for d in range(g.ndim):
        for shift in {g.lo[d], -g.lo[d], g.hi[d], -g.hi[d]} - {0}:
            a = np.roll(exp, shift, axis=2 + d)
            idx = [slice(None)] * exp.ndim
            idx[2 + d] = slice(max(shift, 0), exp.shape[2 + d] + min(shift, 0))
            if _same(got[tuple(idx)], a[tuple(idx)], ev.tol):
                return True
    return False


def sig_tail(ev: Evidence, f: Finding) -> bool:
    """dX short by the unread tail, wrong only in its last real rows, or a crash only when there is a tail."""
    if ev.case.op != "backward" or (f.quantity != "grad_input" and f.kind != "exception"):
        return False
    spec = ev.case.spec()
    tail = spec.unread_tail
    if not any(tail):
        return False
    if f.kind == "shape":
        diffs = [e - g for e, g in zip(ev.expected["grad_input"].shape[2:], f.got_shape[2:])] if len(f.got_shape) == ev.expected["grad_input"].ndim else []
        return bool(diffs) and all(0 <= d <= t for d, t in zip(diffs, tail)) and any(diffs)
    if f.kind == "exception":
        # the same configuration without the tail works: the code cannot handle the tail
        without = dataclasses.replace(ev.case, size=tuple(h - t for h, t in zip(ev.case.size, tail)))
        return ev.passes(without)
    return f.kind == "values" and _only_last(f, tail)


def sig_stride(ev: Evidence, f: Finding) -> bool:
    """At stride > 1: dX zero outside the top-left (Ho - 1 + K_eff) block, or dW wrong everywhere."""
    g = geo.geometry(ev.case)
    if ev.case.op != "backward" or not any(s > 1 for s in g.step) or f.kind != "values":
        return False
    if f.quantity == "grad_input":
        block = tuple(slice(0, ho - 1 + d * (k - 1) + 1 - lo) for ho, d, k, lo in zip(g.Ho, g.spacing, g.K, g.lo))
        outside = np.ones(g.H, dtype=bool)
        outside[block] = False
        return bool(outside.any()) and np.all(f.got.reshape(-1, *g.H)[:, outside] == 0)
    return False


def sig_groups(ev: Evidence, f: Finding) -> bool:
    """Only the first group's channels are right; or a crash that goes away when every group has as many
    output channels as input channels (channel offsets computed with the wrong per-group count)."""
    if ev.case.groups < 2 or f.quantity == "grad_bias":
        return False
    if f.kind in ("exception", "shape") and ev.case.in_channels != ev.case.out_channels:
        return ev.passes(dataclasses.replace(ev.case, out_channels=ev.case.in_channels))
    if f.kind != "values":
        return False
    axis = 1 if f.quantity in ("output", "grad_input") else 0
    ch = f.wrong.shape[axis]
    per = ch // ev.case.groups
    wrong_ch = [c for c in range(ch) if np.take(f.wrong, c, axis=axis).any()]
    return bool(wrong_ch) and min(wrong_ch) >= per


def sig_transposed_layout(ev: Evidence, f: Finding) -> bool:
    """A transposed output (or dX) with w.shape[0] channels, or a crash only when C_in != C_out: the
    weight read as (C_out, C_in, ...)."""
    if not ev.case.transposed:
        return False
    if f.kind == "exception" and ev.case.in_channels != ev.case.out_channels and ev.case.groups == 1:
        other = ev.probe(dataclasses.replace(ev.case, out_channels=ev.case.in_channels)) if ev.probe else None
        return other is not None and not any(g.kind == "exception" for g in other.findings)
    if f.kind != "shape" or f.quantity not in ("output", "grad_input"):
        return False
    got = f.got_shape
    return len(got) > 1 and got[1] == ev.data["w"].shape[0] and got[1] != ev.expected[f.quantity].shape[1]


def sig_output_padding(ev: Evidence, f: Finding) -> bool:
    """Only the last ``output_padding`` rows of the transposed output are wrong."""
    if ev.case.op != "transposed_forward" or not any(ev.case.output_padding) or f.kind != "values":
        return False
    return _only_last(f, ev.case.output_padding)


def sig_seed002(ev: Evidence, f: Finding) -> bool:
    """An IndexError in dX at stride > 1: summation limits that run past the end of w or dY."""
    g = geo.geometry(ev.case)
    return (f.kind == "exception" and isinstance(f.error, IndexError) and any(s > 1 for s in g.step)
            and ev.case.op == "backward")


SIGNATURES = {
    "overlap_accumulate": sig_overlap,
    "bias_reduction": sig_bias,
    "batch_sum": sig_one_sample,
    "padding_crop": sig_crop,
    "unread_tail": sig_tail,
    "stride": sig_stride,
    "groups": sig_groups,
    "transposed_weight_layout": sig_transposed_layout,
    "output_padding": sig_output_padding,
    "summation_bounds": sig_seed002,
}


#: a mistake that needs a parameter the user's function does not take cannot be there
REQUIRES = {"dilation_off_by_one": "dilation", "groups": "groups", "padding_split": "padding",
            "output_padding": "output_padding", "padding_crop": "padding"}
#: the region where the sweep first failed hints at the mistake (breaks ties between equal matches:
#: every region before it passed, e.g. uniform strides when the first failure is in "per_dim")
REGION_HINTS = {"per_dim": "per_axis", "same": "padding_split", "groups": "groups", "output_padding": "output_padding",
                "dilation": "dilation_off_by_one", "tail_beyond": "unread_tail", "tail_in_padding": "unread_tail"}


@dataclass
class Diagnosis:
    """The ids that explain the failures, most likely first, and which quantity each explains."""

    ids: list[str]
    explains: dict[str, list[str]]


def _score(bug: str, ev: Evidence, f: Finding) -> float:
    try:
        score = _mutant_score(bug, ev, f)
    except Exception:   # a mutant that does not fit this case's shapes says nothing
        score = 0.0
    if score < 2.0 and bug in SIGNATURES:
        try:
            if SIGNATURES[bug](ev, f):
                score = max(score, 1.0)
        except Exception:   # nor does a signature
            pass
    return score


def diagnose(evidence: list[Evidence], declared=(), region: str = "") -> Diagnosis:
    """The ids that explain the failures (``evidence[0]`` is the minimal case).

    An id must explain a failure of the minimal case itself, or be reproduced value for value by its
    mutant on a larger failing case met while shrinking (where the minimal case is too small to tell,
    e.g. a broadcast that hides the mistake); a structural signature on larger cases alone is too often
    a coincidence of a bigger case.
    """
    scores: dict[str, float] = {}
    explains: dict[str, list[str]] = {}
    on_minimal: set[str] = set()
    for rank, ev in enumerate(evidence):
        weight = 1.0 if rank == 0 else 0.25
        for f in ev.findings:
            if f.kind in ("timeout", "type"):
                continue
            primary = 1.0 if f is ev.findings[0] else 0.5
            for bug in BUGS:
                needs = REQUIRES.get(bug)
                if needs and needs not in declared:
                    continue
                score = _score(bug, ev, f)
                if score:
                    scores[bug] = scores.get(bug, 0.0) + weight * primary * score
                    if rank == 0 or score == 2.0:
                        on_minimal.add(bug)
                        explains.setdefault(bug, [])
                        if f.quantity not in explains[bug] and rank == 0:
                            explains[bug].append(f.quantity)
    scores = {b: v for b, v in scores.items() if b in on_minimal}
    hint = REGION_HINTS.get(region)
    if hint in scores:
        scores[hint] += 0.3
    # keep what explains the failure about as well as the best does
    top = max(scores.values(), default=0.0)
    scores = {b: v for b, v in scores.items() if v >= 0.5 * top}
    order = list(BUGS)
    ids = sorted(scores, key=lambda b: (-scores[b], order.index(b)))
    return Diagnosis(ids, {b: explains[b] for b in ids})
