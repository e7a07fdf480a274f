"""A case as the three primitives of one ordinary convolution, and a tap-loop engine with knobs.

Every op verify checks is built from the three primitives of one ordinary convolution
``(x: (N, C, *H), w: (F, C/G, *K))`` -- the forward ``F(x, w)``, the input gradient ``GI(dy, w)``
and the weight gradient ``GW(x, dy)`` -- plus the bias:

====================  ===========================================================================
forward               ``y = F(x, w) + b``
backward              ``dx = GI(dy, w)``, ``dw = GW(x, dy)``, ``db = sum(dy)``
transposed_forward    ``y = GI(x, w) + b`` (the transposed conv is the input gradient of a conv)
transposed_backward   ``dx = F(dy, w)``, ``dw = GW(dy, x)``, ``db = sum(dy)``
====================  ===========================================================================

The mutants of :mod:`convgrad.verify.mutants` change one primitive (or one quantity) the way a
known mistake does. The primitives here are loops over kernel taps with every other axis
vectorized; the index relation has its knobs exposed (window step, tap spacing, low padding),
because that is where most mistakes live: output position ``i`` and tap ``k`` read input position
``i*step + k*spacing - pad_lo``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

import numpy as np

from ..spec import resolve_padding
from .cases import Case


@dataclass(frozen=True)
class Geometry:
    """One ordinary convolution, per spatial dim: sizes and the index relation's knobs."""

    H: tuple[int, ...]        # input size
    K: tuple[int, ...]        # kernel size
    Ho: tuple[int, ...]       # output size
    step: tuple[int, ...]     # window step (the stride)
    spacing: tuple[int, ...]  # tap spacing (the dilation)
    lo: tuple[int, ...]       # low padding
    hi: tuple[int, ...]       # high padding
    groups: int

    @property
    def ndim(self) -> int:
        return len(self.H)

    def changed(self, **kw) -> "Geometry":
        return replace(self, **kw)


def geometry(case: Case) -> Geometry:
    """The ordinary convolution behind ``case`` (for a transposed op: the conv it transposes)."""
    spec = case.spec()
    return Geometry(spec.input_size, spec.kernel_size, spec.output_size, spec.stride, spec.dilation,
                    tuple(p[0] for p in spec.padding), tuple(p[1] for p in spec.padding), spec.groups)


def same_pads(case: Case) -> tuple[tuple[int, int], ...]:
    return resolve_padding("same", case.size, case.kernel, case.stride, case.dilation, "verify")


def _index(g: Geometry, tap: tuple[int, ...]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per dim: the output positions whose window tap ``tap`` reads a real input, and those inputs."""
    outs, ins = [], []
    for d in range(g.ndim):
        i = np.arange(g.Ho[d])
        h = i * g.step[d] + tap[d] * g.spacing[d] - g.lo[d]
        ok = (h >= 0) & (h < g.H[d])
        outs.append(i[ok])
        ins.append(h[ok])
    return outs, ins


def _taps(g: Geometry):
    """``(tap, index of the outputs, index of the inputs)`` for every tap that reads some real input.

    The indices select ``(..., *spatial)`` blocks of arrays laid out ``(N, G, C/G, *spatial)``.
    """
    lead = (slice(None),) * 3
    for tap in itertools.product(*(range(k) for k in g.K)):
        outs, ins = _index(g, tap)
        if all(len(o) for o in outs):
            yield tap, lead + np.ix_(*outs), lead + np.ix_(*ins)


def _grouped(a: np.ndarray, groups: int) -> np.ndarray:
    return a.reshape(a.shape[0], groups, a.shape[1] // groups, *a.shape[2:])  # (N, G, C/G, *S)


def forward(x: np.ndarray, w: np.ndarray, g: Geometry) -> np.ndarray:
    """``y[n, o, i] = sum_c sum_k w[o, c, k] x[n, g(o) C_g + c, i*step + k*spacing - lo]``."""
    n, G = x.shape[0], g.groups
    F, Cg = w.shape[0], w.shape[1]
    y = np.zeros((n, G, F // G, *g.Ho))
    xg = _grouped(x, G)                                   # (N, G, C/G, *H)
    wg = w.reshape(G, F // G, Cg, *w.shape[2:])           # (G, F/G, C/G, *K)
    for tap, outs, ins in _taps(g):
        y[outs] += np.einsum("ngc...,gfc->ngf...", xg[ins], wg[(..., *tap)])   # xg[ins]: (N, G, C/G, *outs)
    return y.reshape(n, F, *g.Ho)


def grad_input(dy: np.ndarray, w: np.ndarray, g: Geometry, *, assign: bool = False) -> np.ndarray:
    """``dx[n, c, h] = sum over (i, k) with h = i*step + k*spacing - lo of dy[n, o, i] w[o, c, k]``.

    ``assign=True`` writes each tap's contribution with ``=`` instead of ``+=`` (taps in row-major
    order): where windows overlap, the last one wins.
    """
    n, G = dy.shape[0], g.groups
    F, Cg = w.shape[0], w.shape[1]
    dx = np.zeros((n, G, Cg, *g.H))
    dyg = _grouped(dy, G)                                 # (N, G, F/G, *Ho)
    wg = w.reshape(G, F // G, Cg, *w.shape[2:])           # (G, F/G, C/G, *K)
    for tap, outs, ins in _taps(g):
        part = np.einsum("ngf...,gfc->ngc...", dyg[outs], wg[(..., *tap)])
        if assign:
            dx[ins] = part
        else:
            dx[ins] += part
    return dx.reshape(n, G * Cg, *g.H)


def grad_weight(x: np.ndarray, dy: np.ndarray, g: Geometry) -> np.ndarray:
    """``dw[o, c, k] = sum_n sum_i dy[n, o, i] x[n, g(o) C_g + c, i*step + k*spacing - lo]``."""
    G = g.groups
    F, C = dy.shape[1], x.shape[1]
    dw = np.zeros((G, F // G, C // G, *g.K))
    xg, dyg = _grouped(x, G), _grouped(dy, G)
    for tap, outs, ins in _taps(g):
        flat = tuple(a.reshape(*a.shape[:3], -1) for a in (dyg[outs], xg[ins]))  # (N, G, F/G | C/G, positions)
        dw[(..., *tap)] = np.einsum("ngfp,ngcp->gfc", *flat)
    return dw.reshape(F, C // G, *g.K)


def coverage(g: Geometry) -> np.ndarray:
    """How many (output position, tap) pairs read each input position: overlapping windows read >= 2."""
    count = np.zeros((1, 1, 1, *g.H), dtype=np.int64)
    for _, _, ins in _taps(g):
        count[ins] += 1          # one tap reads each input position at most once
    return count[0, 0, 0]
