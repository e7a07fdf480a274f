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
    st_j   = prod(Hq_{j+1:})                          flat stride; P = prod(Hq)
    off(k) = sum_j ((k_j * D_j) // S_j) * st_j        where tap k reads
    L      = sum_j (H_out_j - 1) * st_j + 1           flat length of the outputs

A chunk of ``nb`` batch elements is laid out as ``(channels, nb, P)`` -- element ``b`` at
columns ``[b*P, (b+1)*P)`` -- so one product covers the whole chunk: columns ``[0, (nb-1)*P + L)``.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import as_strided

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

    @property
    def size(self) -> int:
        """``P``: flat length of one batch element's phase grid."""
        return math.prod(self.grid)

    @property
    def length(self) -> int:
        """``L``: flat length covering every output position of one element."""
        return sum((o - 1) * st for o, st in zip(self.spec.output_size, self.flat_strides)) + 1

    def columns(self, nb: int) -> int:
        """Columns one product covers for a chunk of ``nb`` elements: ``(nb-1)*P + L``."""
        return (nb - 1) * self.size + self.length

    # -- moving data in and out of the layout ----------------------------------------------------
    # Buffers come in two layouts: channels first, ``(phases, C, nb, P)`` and ``(O, nb, P)``, or
    # channels last, ``(phases, nb, P, C)`` and ``(nb, P, O)``.

    def grid_view(self, a: np.ndarray, axis: int = -1) -> np.ndarray:
        """``a`` with ``axis`` (length ``P``, contiguous) split into the grid ``Hq``: a view, never a copy."""
        axis %= a.ndim
        if a.shape[axis] != self.size:
            raise ValueError(f"grid_view: axis {axis} must have length {self.size}, got shape {a.shape}")
        step = a.strides[axis]
        strides = a.strides[:axis] + tuple(st * step for st in self.flat_strides) + a.strides[axis + 1 :]
        shape = a.shape[:axis] + self.grid + a.shape[axis + 1 :]
        return as_strided(a, shape, strides, writeable=a.flags.writeable)

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
        return grid_ix, input_ix

    def _phase_grids(self, buf: np.ndarray, nb: int, channels_last: bool):
        """Per built phase with real positions: ``(grid view (nb, C, *Hq), grid index, input index)``."""
        for q, phase in enumerate(self.phases):
            pairs = self._pairs(phase)
            if pairs is None:
                continue
            if channels_last:
                g = np.moveaxis(self.grid_view(buf[q, :nb], axis=1), -1, 1)  # (nb, C, *Hq)
            else:
                g = self.grid_view(buf[q, :, :nb]).swapaxes(0, 1)  # (nb, C, *Hq)
            yield g, pairs[0], pairs[1]

    def scatter_input(self, x: np.ndarray, buf: np.ndarray, channels_last: bool = False) -> None:
        """Copy ``x`` ``(nb, C, *H)`` into the real positions of the phase buffer ``buf``.

        The rest of ``buf`` (padding, margins) is not written and must already be zero.
        """
        for grid, grid_ix, input_ix in self._phase_grids(buf, x.shape[0], channels_last):
            grid[(slice(None), slice(None), *grid_ix)] = x[(slice(None), slice(None), *input_ix)]

    def gather_input(self, buf: np.ndarray, dx: np.ndarray, channels_last: bool = False) -> None:
        """Write the real positions of the phase buffer ``buf`` into ``dx`` ``(nb, C, *H)``.

        Positions of ``dx`` in no built phase are left as they are (zero in a fresh array).
        """
        for grid, grid_ix, input_ix in self._phase_grids(buf, dx.shape[0], channels_last):
            dx[(slice(None), slice(None), *input_ix)] = grid[(slice(None), slice(None), *grid_ix)]

    def output_view(self, buf: np.ndarray, nb: int, channels_last: bool = False) -> np.ndarray:
        """The output positions of an ``(O, nb, P)`` (or ``(nb, P, O)``) buffer as an ``(nb, O, *H_out)`` view."""
        if channels_last:
            v = np.moveaxis(self.grid_view(buf[:nb], axis=1), -1, 1)  # (nb, O, *Hq)
        else:
            v = self.grid_view(buf[:, :nb]).swapaxes(0, 1)  # (nb, O, *Hq)
        return v[(slice(None), slice(None), *(slice(0, h) for h in self.spec.output_size))]


def flat_layout(spec: ConvSpec) -> FlatLayout:
    """The :class:`FlatLayout` of ``spec`` (zero padding)."""
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
