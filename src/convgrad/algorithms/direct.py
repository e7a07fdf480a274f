"""``direct``: the reference algorithm -- plain loops written from the index formulas.

It is the oracle the fast algorithms are tested against and the code to read when learning how
the gradients are computed. It shares no code with the fast paths: padding modes are handled by
mapping each padded position to the element it copies (:func:`convgrad.spec.source_index`), and
each gradient is its own loop, written from its own formula. The loops run over groups, spatial
positions and kernel taps; only the sums over the batch and the channels of a group are done by
a small matrix product, so that the reference stays usable on real layer sizes.

The formulas (0-based; ``g`` is the group, ``C_g``/``O_g`` the input/output channels per group,
``o`` ranges over the group's output channels, ``c`` over its input channels, ``k`` over kernel
taps and ``i`` over output positions -- each a tuple over the spatial dims)::

    y [n, o, i] = sum_c sum_k  w[o, c, k] * x[n, c, i*S + k*D - P_lo]
    dw[o, c, k] = sum_n sum_i  dy[n, o, i] * x[n, c, i*S + k*D - P_lo]
    dx[n, c, h] = sum_o sum_k  [ (h + P_lo - k*D) % S == 0  and  0 <= (h + P_lo - k*D) / S < H_out ]
                                * dy[n, o, (h + P_lo - k*D) / S] * w[o, c, k]

where ``x`` at a position outside ``[0, H)`` is zero (``padding_mode="zeros"``) or a copy of a
real element; in the latter case ``dx`` is first computed for every padded position ``h`` and
each padded position's value is then added onto the element it copies.

The same two gradients are also forward convolutions -- ``dx`` of ``dy`` input-dilated by ``S``
with the flipped kernel, ``dw`` of ``x`` by ``dy`` with stride and dilation exchanged -- which
:mod:`convgrad.reparam` states once (:func:`~convgrad.reparam.grad_input_as_forward`,
:func:`~convgrad.reparam.grad_weight_as_forward`) and ``tests/test_reparam.py`` checks against
the loops here. ``direct`` itself does not use them: it stays the independent oracle.
"""

from __future__ import annotations

import itertools

import numpy as np

from ..spec import ConvSpec, source_index
from .base import Algorithm
from .registry import register


def _sources(spec: ConvSpec) -> list[list[list[int | None]]]:
    """Per dim, ``table[i][k]`` = the real input position output ``i`` reads at tap ``k`` (or None)."""
    tables = []
    for dim in range(spec.ndim):
        h, mode = spec.input_size[dim], spec.padding_mode
        s, d, lo = spec.stride[dim], spec.dilation[dim], spec.pad_lo[dim]
        tables.append(
            [
                [source_index(i * s + k * d - lo, h, mode) for k in range(spec.kernel_size[dim])]
                for i in range(spec.output_size[dim])
            ]
        )
    return tables


def _group_slices(spec: ConvSpec, g: int) -> tuple[slice, slice]:
    out_ch = slice(g * spec.out_per_group, (g + 1) * spec.out_per_group)
    in_ch = slice(g * spec.in_per_group, (g + 1) * spec.in_per_group)
    return out_ch, in_ch


class Direct(Algorithm):
    name = "direct"
    auto_candidate = False  # the slow reference: only when asked for by name
    handles_padding_modes = True

    def forward(self, x, w, spec):
        y = np.zeros(spec.output_shape, dtype=x.dtype)
        table = _sources(spec)
        taps = list(itertools.product(*map(range, spec.kernel_size)))
        for g in range(spec.groups):
            out_ch, in_ch = _group_slices(spec, g)
            for i in itertools.product(*map(range, spec.output_size)):
                acc = np.zeros((spec.batch, spec.out_per_group), dtype=x.dtype)
                for k in taps:
                    src = tuple(table[dim][i[dim]][k[dim]] for dim in range(spec.ndim))
                    if None in src:
                        # the term reads zero padding: x = 0 there, and 0 * w is still IEEE
                        # arithmetic (nan when w is nan or inf), as in every other algorithm
                        acc += np.sum(0.0 * w[(out_ch, slice(None), *k)], axis=1)
                        continue
                    # (N, C_g) @ (C_g, O_g): the sum over the group's input channels c
                    acc += x[(slice(None), in_ch, *src)] @ w[(out_ch, slice(None), *k)].T
                y[(slice(None), out_ch, *i)] = acc
        return y

    def grad_weight(self, x, dy, spec):
        dw = np.zeros(spec.weight_shape, dtype=x.dtype)
        table = _sources(spec)
        positions = list(itertools.product(*map(range, spec.output_size)))
        for g in range(spec.groups):
            out_ch, in_ch = _group_slices(spec, g)
            for k in itertools.product(*map(range, spec.kernel_size)):
                acc = np.zeros((spec.out_per_group, spec.in_per_group), dtype=x.dtype)
                for i in positions:
                    src = tuple(table[dim][i[dim]][k[dim]] for dim in range(spec.ndim))
                    if None in src:
                        # zero padding: dy * 0 (nan when dy is nan or inf), summed over the batch
                        acc += np.sum(dy[(slice(None), out_ch, *i)] * 0.0, axis=0)[:, None]
                        continue
                    # (O_g, N) @ (N, C_g): the sum over the batch n
                    acc += dy[(slice(None), out_ch, *i)].T @ x[(slice(None), in_ch, *src)]
                dw[(out_ch, slice(None), *k)] = acc
        return dw

    def grad_input(self, dy, w, spec):
        dx = np.zeros(spec.input_shape, dtype=dy.dtype)
        taps = list(itertools.product(*map(range, spec.kernel_size)))
        # Every padded position h in [-P_lo, H + P_hi), and the real element it holds (or None).
        padded_ranges = [range(-lo, h + hi) for h, (lo, hi) in zip(spec.input_size, spec.padding)]
        for g in range(spec.groups):
            out_ch, in_ch = _group_slices(spec, g)
            for h in itertools.product(*padded_ranges):
                src = tuple(source_index(h[d], spec.input_size[d], spec.padding_mode) for d in range(spec.ndim))
                if None in src:
                    continue  # a zero-padding position: nothing to pass back
                acc = np.zeros((spec.batch, spec.in_per_group), dtype=dy.dtype)
                for k in taps:
                    i = []
                    for d in range(spec.ndim):
                        t = h[d] + spec.pad_lo[d] - k[d] * spec.dilation[d]
                        if t % spec.stride[d] or not 0 <= t // spec.stride[d] < spec.output_size[d]:
                            break  # no output reads position h through tap k
                        i.append(t // spec.stride[d])
                    else:
                        # (N, O_g) @ (O_g, C_g): the sum over the group's output channels o
                        acc += dy[(slice(None), out_ch, *i)] @ w[(out_ch, slice(None), *k)]
                dx[(slice(None), in_ch, *src)] += acc
        return dx


register(Direct())
