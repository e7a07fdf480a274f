"""Contributor sets: the exact multiply-add terms that make one element of a convolution's result.

All three functions read the index relation of :class:`~convgrad.spec.ConvSpec` (``h = i*S + k*D -
P_lo``, :meth:`~convgrad.spec.ConvSpec.input_position`) and the padding modes' copy rule
(:func:`~convgrad.spec.source_index`); they know nothing of algorithms. Indices are full tuples:
``(n, c, *h)`` for activations, ``(o, c, *k)`` for weights. With ``g`` the group of output
channel ``o``, ``C_g = C_in/G`` and ``O_g = C_out/G``::

    y[n, o, i]  = sum_{c < C_g} sum_k   w[o, c, k] * x[n, g*C_g + c, i*S + k*D - P_lo]
    dx[n, c, h] = sum_{o in group} sum_{k, i: i*S + k*D - P_lo = h} dy[n, o, i] * w[o, c - g*C_g, k]
    dw[o, c, k] = sum_n sum_i            dy[n, o, i] * x[n, g*C_g + c, i*S + k*D - P_lo]

A term whose input position lies in zero padding reads 0: it is listed with ``None`` in place of
the input index. With reflect/replicate/circular padding the input index is the real element the
border position copies, and ``dx`` collects the terms of every position holding a copy of ``h``.
"""

from __future__ import annotations

import itertools

from ..spec import ConvSpec, source_index

__all__ = ["forward_terms", "grad_input_terms", "grad_weight_terms", "bias_terms"]

Index = tuple[int, ...]


def _source(spec: ConvSpec, position: Index) -> Index | None:
    """The real input position a (possibly padded) position reads, or None for zero padding."""
    src = tuple(source_index(p, h, spec.padding_mode) for p, h in zip(position, spec.input_size))
    return None if None in src else src


def forward_terms(spec: ConvSpec, index: Index) -> list[tuple[Index | None, Index]]:
    """Terms of ``y[n, o, *i]``: ``(x index or None, w index)``, ordered by channel then tap."""
    n, o, *i = index
    g = spec.group_of_output(o)
    terms = []
    for c in range(spec.in_per_group):
        for k in itertools.product(*map(range, spec.kernel_size)):
            src = _source(spec, spec.input_position(i, k))
            terms.append((None if src is None else (n, g * spec.in_per_group + c, *src), (o, c, *k)))
    return terms


def _taps_reaching(spec: ConvSpec, dim: int, h: int) -> list[tuple[int, int]]:
    """``(k, i)`` pairs along ``dim`` whose read position is ``h`` or a border copy of ``h``.

    Solves ``i*S + k*D - P_lo = p`` for ``0 <= k < K``, ``0 <= i < H_out``, over every padded
    position ``p`` in ``[-P_lo, H + P_hi)`` that holds ``h`` (just ``p = h`` for zero padding).
    """
    size, (lo, hi) = spec.input_size[dim], spec.padding[dim]
    s, d = spec.stride[dim], spec.dilation[dim]
    if spec.padding_mode == "zeros":
        positions = [h]
    else:
        positions = [p for p in range(-lo, size + hi) if source_index(p, size, spec.padding_mode) == h]
    pairs = []
    for p in positions:
        for k in range(spec.kernel_size[dim]):
            t = p + lo - k * d
            if t % s == 0 and 0 <= t // s < spec.output_size[dim]:
                pairs.append((k, t // s))
    return sorted(pairs)


def grad_input_terms(spec: ConvSpec, index: Index) -> list[tuple[Index, Index]]:
    """Terms of ``dx[n, c, *h]``: ``(dy index, w index)``, ordered by output channel then tap."""
    n, c, *h = index
    g = spec.group_of_input(c)
    c_in_group = c - g * spec.in_per_group
    per_dim = [_taps_reaching(spec, dim, h[dim]) for dim in range(spec.ndim)]
    terms = []
    for o in range(g * spec.out_per_group, (g + 1) * spec.out_per_group):
        for combo in itertools.product(*per_dim):
            k = tuple(kd for kd, _ in combo)
            i = tuple(id_ for _, id_ in combo)
            terms.append(((n, o, *i), (o, c_in_group, *k)))
    return terms


def grad_weight_terms(spec: ConvSpec, index: Index) -> list[tuple[Index | None, Index]]:
    """Terms of ``dw[o, c, *k]``: ``(x index or None, dy index)``, ordered by batch then position."""
    o, c, *k = index
    channel = spec.group_of_output(o) * spec.in_per_group + c
    terms = []
    for n in range(spec.batch):
        for i in itertools.product(*map(range, spec.output_size)):
            src = _source(spec, spec.input_position(i, k))
            terms.append((None if src is None else (n, channel, *src), (n, o, *i)))
    return terms


def bias_terms(spec: ConvSpec, channel: int, batch: int, size: Index) -> list[Index]:
    """Terms of ``db[channel]``: every ``dy[n, channel, *i]`` (``dy`` of spatial ``size``)."""
    return [(n, channel, *i) for n in range(batch) for i in itertools.product(*map(range, size))]
