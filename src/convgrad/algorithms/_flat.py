"""The flat-offset layout: every kernel tap as one shifted slice of a padded, flattened input.

Pad the input and flatten its spatial dims. Then output position ``i`` (flat index
``f = sum_j i_j * st_j``) reads, through tap ``k``, the element at ``f + off(k)``: one
contiguous slice per tap, so each tap is a single matrix product (or elementwise pass) over
all output positions at once, with no im2col copy. Two details make that exact:

- **Stride** ``S > 1``: the padded input is split into its ``S`` phases (position ``p = m*S + r``
  goes to phase ``r`` at ``m``); tap ``k`` reads phase ``r(k) = k*D mod S`` at ``m = i + k*D // S``,
  which is again a stride-1 shift. Only the phases some tap reads are built.
- **Garbage columns**: the flat range ``[0, L)`` also holds positions with some ``i_j >= H_out_j``
  (the padded margin of each row). Their values are computed and thrown away; when ``dy`` is laid
  out the same way they hold zeros, so they add nothing to the gradients.

Per spatial dim ``j``, with ``S, D, K, P_lo, H, H_out`` as in :mod:`convgrad.spec`::

    Hq_j   = H_out_j + ((K_j - 1) * D_j) // S_j        phase-grid length
    st_j   = prod(Hq_{j+1:})                          flat stride; Q = prod(Hq)
    off(k) = sum_j ((k_j * D_j) // S_j) * st_j        where tap k reads
    L      = sum_j (H_out_j - 1) * st_j + 1           flat length of the outputs

A chunk of ``nb`` batch elements is laid out as ``(channels, nb, Q)`` -- element ``b`` at
columns ``[b*Q, (b+1)*Q)`` -- so one product covers the whole chunk: columns ``[0, (nb-1)*Q + L)``.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass

import numpy as np

from ..spec import ConvSpec


def reshaped(a: np.ndarray, shape) -> np.ndarray:
    """``a.reshape(shape)`` that is guaranteed to be a view (results are written through it)."""
    r = a.reshape(shape)
    if r.size and not np.may_share_memory(r, a):
        raise ValueError(f"reshaping {a.shape} to {shape} would copy")
    return r


@dataclass(frozen=True)
class FlatLayout:
    spec: ConvSpec
    grid: tuple[int, ...]  # Hq per dim
    flat_strides: tuple[int, ...]  # st per dim
    phases: tuple[tuple[int, ...], ...]  # the phases some tap reads
    taps: tuple[tuple[int, ...], ...]  # every kernel tap, in C order
    tap_phase: tuple[int, ...]  # index into phases, per tap
    tap_offset: tuple[int, ...]  # off(k), per tap

    def __post_init__(self):
        object.__setattr__(self, "pairs", tuple(self._pairs(phase) for phase in self.phases))

    @property
    def size(self) -> int:
        """``Q``: flat length of one batch element's phase grid."""
        return math.prod(self.grid)

    @property
    def length(self) -> int:
        """``L``: flat length covering every output position of one element."""
        return sum((o - 1) * st for o, st in zip(self.spec.output_size, self.flat_strides)) + 1

    def columns(self, nb: int, interleaved: bool = False) -> int:
        """Columns one product covers for a chunk of ``nb`` elements: ``(nb-1)*Q + L``, or ``nb*L`` interleaved.

        Interleaved (element ``b``, position ``p`` at column ``p*nb + b``), tap ``k`` reads at
        offset ``off(k)*nb`` and the margins are paid once for the chunk instead of once per
        element: a 14x14 map read by a 5x5 kernel has ``Q = 196`` for 100 outputs but ``L = 136``.
        """
        return nb * self.length if interleaved else (nb - 1) * self.size + self.length

    # -- moving data in and out of the layout ----------------------------------------------------
    # A chunk of ``nb`` batch elements lives in 2-D matrices: channels first, ``(rows, nb*Q)``, or
    # channels last, ``(nb*Q, rows)`` -- one per phase on the input side. Element ``b``, flat grid
    # position ``p`` is column (row) ``b*Q + p``, or ``p*nb + b`` when the chunk is *interleaved*
    # (batch innermost; see :meth:`columns`).

    def chunk_grid(self, mat: np.ndarray, nb: int, interleaved: bool = False, channels_last: bool = False) -> np.ndarray:
        """A chunk's matrix as an ``(nb, rows, *Hq)`` view (never a copy)."""
        if channels_last:
            rows = mat.shape[1]
            if interleaved:
                return np.moveaxis(reshaped(mat, self.grid + (nb, rows)), (-2, -1), (0, 1))  # (*Hq, nb, rows)
            return np.moveaxis(reshaped(mat, (nb,) + self.grid + (rows,)), -1, 1)  # (nb, *Hq, rows)
        rows = mat.shape[0]
        if interleaved:
            return np.moveaxis(reshaped(mat, (rows,) + self.grid + (nb,)), (-1, 0), (0, 1))  # (rows, *Hq, nb)
        return reshaped(mat, (rows, nb) + self.grid).swapaxes(0, 1)  # (rows, nb, *Hq)

    def outputs(self, grid: np.ndarray) -> np.ndarray:
        """The output positions of an ``(nb, rows, *Hq)`` grid: ``(nb, rows, *H_out)``."""
        return grid[(slice(None), slice(None), *(slice(0, h) for h in self.spec.output_size))]

    def _real(self, phase: tuple[int, ...]):
        """Per dim: ``(m0, m1, start)``: grid rows ``[m0, m1)`` of ``phase`` hold input ``start, start+S, ...``."""
        spec = self.spec
        out = []
        for r, s, lo, h, hq in zip(phase, spec.stride, spec.pad_lo, spec.input_size, self.grid):
            m0 = max(0, -((r - lo) // s))  # ceil((lo - r) / s)
            m1 = min(hq, -((r - lo - h) // s))  # ceil((h + lo - r) / s)
            out.append((m0, max(m0, m1), m0 * s + r - lo))
        return out

    def _pairs(self, phase):
        """Index pairs ``(grid index, input index)`` of the real positions of one phase (or None)."""
        real = self._real(phase)
        if any(m1 <= m0 for m0, m1, _ in real):
            return None
        grid_ix = tuple(slice(m0, m1) for m0, m1, _ in real)
        input_ix = tuple(slice(start, start + (m1 - m0 - 1) * s + 1, s) for (m0, m1, start), s in zip(real, self.spec.stride))
        return (slice(None), slice(None), *grid_ix), (slice(None), slice(None), *input_ix)

    def scatter(self, x: np.ndarray, mats, interleaved: bool = False, channels_last: bool = False) -> None:
        """Copy the chunk ``x`` ``(nb, C, *H)`` into the real positions of the phase matrices ``mats``.

        The rest of each matrix (padding, margins) is not written and must already be zero.
        """
        nb = x.shape[0]
        for mat, pairs in zip(mats, self.pairs):
            if pairs is not None:
                self.chunk_grid(mat, nb, interleaved, channels_last)[pairs[0]] = x[pairs[1]]

    def gather(self, mats, dx: np.ndarray, interleaved: bool = False, channels_last: bool = False) -> None:
        """Write the real positions of the phase matrices ``mats`` into ``dx`` ``(nb, C, *H)``.

        Positions of ``dx`` in no built phase are left as they are (zero in a fresh array).
        """
        nb = dx.shape[0]
        for mat, pairs in zip(mats, self.pairs):
            if pairs is not None:
                dx[pairs[1]] = self.chunk_grid(mat, nb, interleaved, channels_last)[pairs[0]]

    # the (phases, C, nb, Q) and (O, nb, Q) buffers of :mod:`.depthwise`

    def scatter_input(self, x: np.ndarray, buf: np.ndarray) -> None:
        """:meth:`scatter` into a ``(phases, C, nb, Q)`` buffer."""
        nb = x.shape[0]
        self.scatter(x, [reshaped(buf[q, :, :nb], (buf.shape[1], nb * self.size)) for q in range(buf.shape[0])])

    def gather_input(self, buf: np.ndarray, dx: np.ndarray) -> None:
        """:meth:`gather` from a ``(phases, C, nb, Q)`` buffer."""
        nb = dx.shape[0]
        self.gather([reshaped(buf[q, :, :nb], (buf.shape[1], nb * self.size)) for q in range(buf.shape[0])], dx)

    def output_view(self, buf: np.ndarray, nb: int) -> np.ndarray:
        """The output positions of an ``(O, nb, Q)`` buffer as an ``(nb, O, *H_out)`` view."""
        return self.outputs(self.chunk_grid(reshaped(buf[:, :nb], (buf.shape[0], nb * self.size)), nb))


@functools.lru_cache(maxsize=256)
def flat_layout(spec: ConvSpec) -> FlatLayout:
    """The :class:`FlatLayout` of ``spec`` (zero padding); cached: it is immutable, and building it
    costs tens of microseconds of Python, a fifth of a small layer's whole operation."""
    grid = tuple(o + ((k - 1) * d) // s for o, k, d, s in zip(spec.output_size, spec.kernel_size, spec.dilation, spec.stride))
    strides = tuple(math.prod(grid[j + 1 :]) for j in range(len(grid)))
    taps = tuple(itertools.product(*map(range, spec.kernel_size)))
    phases: list[tuple[int, ...]] = []
    tap_phase, tap_offset = [], []
    for k in taps:
        phase = tuple((kk * d) % s for kk, d, s in zip(k, spec.dilation, spec.stride))
        if phase not in phases:
            phases.append(phase)
        tap_phase.append(phases.index(phase))
        tap_offset.append(sum(((kk * d) // s) * st for kk, d, s, st in zip(k, spec.dilation, spec.stride, strides)))
    return FlatLayout(spec, grid, strides, tuple(phases), taps, tuple(tap_phase), tuple(tap_offset))
