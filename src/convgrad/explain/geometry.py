"""Per-dimension geometry of one convolution: sizes with their formulas, padding used, unread inputs.

Everything here is computed from a :class:`~convgrad.spec.ConvSpec` and kept apart from the
words and pictures that present it. Along one spatial dim (0-based)::

    K_eff = D*(K - 1) + 1
    H_out = floor((H + P_lo + P_hi - K_eff) / S) + 1
    output position i, tap k  reads  input position  i*S + k*D - P_lo

An input position is *read* if some (i, k) lands on it (directly, or through a copy in the
border for reflect/replicate/circular padding). The set of read elements of an N-d input is the
product of the per-dim sets, so an element whose position is unread in any one dim is never read
and its gradient is exactly zero.

For a transposed convolution the same numbers describe the convolution whose input-gradient it
is (see :func:`convgrad.spec.conv_transpose_spec`): its output is that convolution's input, so
"never read" becomes "never written" (such output positions hold only the bias).
"""

from __future__ import annotations

import dataclasses

from ..spec import ConvSpec, source_index

__all__ = ["DimGeometry", "dim_geometry", "read_positions", "copies"]


@dataclasses.dataclass(frozen=True)
class DimGeometry:
    """The geometry of one spatial dim of a convolution, in the terms of the user's operation.

    Attributes
    ----------
    dim : int
        Spatial dim number (0 = first spatial axis).
    input_size, kernel_size, stride, dilation, output_size : int
        ``H``, ``K``, ``S``, ``D`` and the output size of the user's operation (for a transposed
        convolution ``input_size`` is its input ``H_in`` and ``output_size`` its output).
    effective_kernel : int
        ``K_eff = D*(K-1) + 1``.
    effective_kernel_formula, output_size_formula : str
        The formulas with the numbers filled in.
    padding : (int, int)
        ``(P_lo, P_hi)`` as requested (``"same"`` resolved).
    padding_used : (int, int)
        The padding some output actually reads: ``P_lo`` and ``max(0, (H_out-1)*S + K_eff - P_lo - H)``
        (convolution only; for a transposed convolution the padding crops the output and is all "used").
    same : bool
        Whether the padding came from ``padding="same"``.
    unread_tail : int
        Convolution: trailing padded positions never read, ``a = (H + P_lo + P_hi - K_eff) mod S``.
        Transposed: its ``output_padding`` (the same number for the convolution it is the gradient of).
    tail_positions : tuple of int
        Convolution: the real input positions in the unread tail (``max(0, a - P_hi)`` of them, at the end).
        Transposed: the ``output_padding`` positions at the end of the output.
    zero_positions : tuple of int
        Convolution: every input position no output reads (tail and holes; copies in a reflect/
        replicate/circular border count as reads). Their gradient is exactly zero.
        Transposed: every output position no input writes (they hold only the bias).
    holes : tuple of int
        ``zero_positions`` that are not in the tail: interior positions skipped because the stride
        exceeds the effective kernel, or because stride and dilation step over them.
    """

    dim: int
    input_size: int
    kernel_size: int
    stride: int
    dilation: int
    effective_kernel: int
    effective_kernel_formula: str
    padding: tuple[int, int]
    padding_used: tuple[int, int]
    same: bool
    output_size: int
    output_size_formula: str
    unread_tail: int
    tail_positions: tuple[int, ...]
    zero_positions: tuple[int, ...]
    holes: tuple[int, ...]
    transposed: bool = False

    @property
    def holes_from_stride(self) -> bool:
        """Whether the stride exceeds the effective kernel (so windows leave gaps between them)."""
        return self.stride > self.effective_kernel

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for key, value in d.items():
            if isinstance(value, tuple):
                d[key] = list(value)
        d["holes_from_stride"] = self.holes_from_stride
        return d


def read_positions(spec: ConvSpec, dim: int) -> set[int]:
    """Real input positions along ``dim`` that some output reads (through the padding mode's copies)."""
    h, s, d, lo = spec.input_size[dim], spec.stride[dim], spec.dilation[dim], spec.pad_lo[dim]
    read = set()
    for i in range(spec.output_size[dim]):
        for k in range(spec.kernel_size[dim]):
            src = source_index(i * s + k * d - lo, h, spec.padding_mode)
            if src is not None:
                read.add(src)
    return read


def copies(spec: ConvSpec, dim: int) -> dict[int, tuple[int, ...]]:
    """Border positions that hold a copy of a real element: ``{real position: (padded positions...)}``.

    Empty for zero padding. Only the border positions some output reads are listed.
    """
    if spec.padding_mode == "zeros":
        return {}
    h, s, d, lo = spec.input_size[dim], spec.stride[dim], spec.dilation[dim], spec.pad_lo[dim]
    found: dict[int, set[int]] = {}
    for i in range(spec.output_size[dim]):
        for k in range(spec.kernel_size[dim]):
            p = i * s + k * d - lo
            if not 0 <= p < h:
                found.setdefault(source_index(p, h, spec.padding_mode), set()).add(p)
    return {src: tuple(sorted(ps)) for src, ps in sorted(found.items())}


def _keff_formula(k: int, d: int) -> str:
    return f"D*(K-1) + 1 = {d}*({k}-1) + 1 = {d * (k - 1) + 1}"


def dim_geometry(spec: ConvSpec, dim: int, *, transposed: bool = False, same: bool = False) -> DimGeometry:
    """The :class:`DimGeometry` of spatial dim ``dim`` of ``spec`` (the spec of the user's operation)."""
    h, k, s, d = spec.input_size[dim], spec.kernel_size[dim], spec.stride[dim], spec.dilation[dim]
    lo, hi = spec.padding[dim]
    keff = spec.effective_kernel[dim]
    h_out = spec.output_size[dim]
    a = spec.unread_tail[dim]
    read = read_positions(spec, dim)
    zero = tuple(p for p in range(h) if p not in read)
    common = dict(dim=dim, kernel_size=k, stride=s, dilation=d, effective_kernel=keff,
                  effective_kernel_formula=_keff_formula(k, d), padding=(lo, hi), unread_tail=a,
                  zero_positions=zero, transposed=transposed)
    if not transposed:
        tail = tuple(range(h - spec.unread_inputs[dim], h))
        formula = f"floor((H + P_lo + P_hi - K_eff)/S) + 1 = floor(({h} + {lo} + {hi} - {keff})/{s}) + 1 = {h_out}"
        return DimGeometry(**common, input_size=h, output_size=h_out, output_size_formula=formula,
                           padding_used=(lo, max(0, spec.used_pad_hi[dim])), same=same, tail_positions=tail,
                           holes=tuple(p for p in zero if p not in tail))
    # Transposed: the user's input is spec's output, the user's output is spec's input; its padding
    # crops the output (all of it is "used"), and its tail is the output_padding rows.
    tail = tuple(range(h - a, h))
    formula = (
        f"(H_in - 1)*S - P_lo - P_hi + D*(K-1) + output_padding + 1 = "
        f"({h_out} - 1)*{s} - {lo} - {hi} + {d}*({k}-1) + {a} + 1 = {h}"
    )
    return DimGeometry(**common, input_size=h_out, output_size=h, output_size_formula=formula, padding_used=(lo, hi),
                       same=False, tail_positions=tail, holes=tuple(p for p in zero if p not in tail))


def ambiguous_sizes(g: DimGeometry) -> tuple[int, ...]:
    """Input sizes that give the same output size as ``g.input_size`` (convolution with the same padding).

    A convolution with stride ``S`` maps ``S`` consecutive input sizes to one output size; this is
    the ambiguity that ``output_padding`` resolves when the transposed convolution goes back.
    """
    lo, hi = g.padding
    sizes = []
    for h in range(max(1, g.input_size - g.stride + 1), g.input_size + g.stride):
        if h + lo + hi >= g.effective_kernel and (h + lo + hi - g.effective_kernel) // g.stride + 1 == g.output_size:
            sizes.append(h)
    return tuple(sizes)
