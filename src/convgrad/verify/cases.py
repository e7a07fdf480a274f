"""The configurations ``verify`` tries: directed regions first, then random ones, and the shrinking moves.

A :class:`Case` is one configuration in convgrad's own layout (channels first, PyTorch's weight
layouts). Its fields are per spatial dim; when the user's function takes ints (``per_dim=False``)
every per-dim parameter holds one value on all dims, while input and kernel sizes may still
differ between dims (non-square inputs and kernels are always tried).

The regions (``REGIONS``) are the places where hand-written code commonly goes wrong; each is
visited before any random configuration, so that the first failure is already a simple one:

=================  ==============================================================================
plain              one sample, one channel in and out, stride 1, no padding
batch_channels     batch > 1, C_in != C_out, non-square input and kernel
same_channels      C_in == C_out (where swapped channel axes stay silent)
padding            padding 1 and 2
stride_overlap     stride 2 with overlapping windows (K > S), no unread tail
tail_in_padding    an unread tail that lies inside the high padding
tail_beyond        an unread tail that reaches real input rows
holes              stride > effective kernel: input rows no window reads
no_overlap         K == S: windows that touch but do not overlap
dilation           dilation 2 and 3, with and without stride
groups             groups 2 with several channels per group
output_padding     transposed: output_padding > 0 with padding > 0 (computed rows, not zeros)
per_dim            per-dim stride, padding and dilation that differ between dims
same               ``padding='same'`` with even kernels and stride 2
=================  ==============================================================================
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ..spec import conv_spec, conv_transpose_spec

OPS = ("forward", "backward", "transposed_forward", "transposed_backward")
PARAMS = ("stride", "padding", "dilation", "groups", "output_padding")

# the largest configuration verify ever builds: slow Python loops must finish in time
MAX_BATCH, MAX_CHANNELS, MAX_SIZE, MAX_KERNEL = 3, 6, 12, 4


@dataclass(frozen=True)
class Case:
    """One configuration, channels first. ``padding`` is per-dim ints, or ``'same'``/``'valid'``."""

    op: str
    batch: int
    in_channels: int   # channels of the op's input x
    out_channels: int  # channels of the op's output y
    groups: int
    size: tuple[int, ...]
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...] | str
    dilation: tuple[int, ...]
    output_padding: tuple[int, ...]

    @property
    def ndim(self) -> int:
        return len(self.size)

    @property
    def transposed(self) -> bool:
        return self.op.startswith("transposed")

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.batch, self.in_channels, *self.size)

    @property
    def weight_shape(self) -> tuple[int, ...]:
        """PyTorch's layout: ``(C_out, C_in/G, *K)``, or ``(C_in, C_out/G, *K)`` when transposed."""
        if self.transposed:
            return (self.in_channels, self.out_channels // self.groups, *self.kernel)
        return (self.out_channels, self.in_channels // self.groups, *self.kernel)

    def kwargs(self) -> dict:
        """The keyword arguments of convgrad's own call for this case."""
        kw = dict(stride=self.stride, padding=self.padding, dilation=self.dilation, groups=self.groups)
        if self.transposed:
            kw["output_padding"] = self.output_padding
        return kw

    def spec(self):
        """The convgrad spec (raises ``ValueError`` when the case is not a valid configuration)."""
        if self.transposed:
            return conv_transpose_spec(self.input_shape, self.weight_shape, self.stride, self.padding,
                                       self.output_padding, self.groups, self.dilation, func="verify")
        return conv_spec(self.input_shape, self.weight_shape, self.stride, self.padding, self.dilation,
                         self.groups, func="verify")

    @property
    def output_shape(self) -> tuple[int, ...]:
        spec = self.spec()
        return spec.input_shape if self.transposed else spec.output_shape

    def valid(self) -> bool:
        if self.in_channels % self.groups or self.out_channels % self.groups:
            return False
        try:
            spec = self.spec()
        except ValueError:
            return False
        return all(n >= 1 for n in (spec.input_size if self.transposed else spec.output_size))

    def size_key(self) -> tuple:
        """Smaller is simpler: what shrinking minimizes (volume first, then the parameters)."""
        pads = self.padding if isinstance(self.padding, tuple) else (0,) * self.ndim
        return (
            self.batch * self.in_channels * self.out_channels * int(np.prod(self.size)) * int(np.prod(self.kernel)),
            sum(self.stride) + sum(pads) + sum(self.dilation) + sum(self.output_padding) + self.groups,
        )


def identity(op: str, ndim: int) -> Case:
    one, zero = (1,) * ndim, (0,) * ndim
    return Case(op, 1, 1, 1, 1, (4,) * ndim, (2,) * ndim, one, zero, one, zero)


def _per_dim(values: tuple[int, ...], ndim: int) -> tuple[int, ...]:
    """Spread a few values over ``ndim`` dims (non-square shapes): (5, 6) -> (5,), (5, 6), (5, 6, 5)."""
    return tuple(values[i % len(values)] for i in range(ndim))


def _region_cases(op: str, ndim: int, declared: frozenset[str], per_dim: bool, padding_forms) -> list[tuple[str, Case]]:
    """The directed configurations, in order, restricted to what the user's function declares."""
    transposed = op.startswith("transposed")
    has = declared.__contains__
    base = identity(op, ndim)

    # a function that only takes 'same' (or 'valid') gets that everywhere
    default_pad = 0 if "int" in padding_forms or not has("padding") else padding_forms[0]

    def case(name, batch=2, cin=2, cout=3, groups=1, size=(5, 6), kernel=(3, 2), stride=1, padding=default_pad,
             dilation=1, output_padding=0):
        def dims(v):
            return _per_dim(v if isinstance(v, tuple) else (v,), ndim)

        pad = padding if isinstance(padding, str) else dims(padding)
        if transposed:   # x is the small side of a transposed conv: its output is about S times larger
            size = tuple(max(2, (h + 1) // 2) for h in (size if isinstance(size, tuple) else (size,)))
        return name, dataclasses.replace(
            base, batch=batch, in_channels=cin, out_channels=cout, groups=groups, size=dims(size),
            kernel=dims(kernel), stride=dims(stride), padding=pad, dilation=dims(dilation),
            output_padding=dims(output_padding))

    out = [
        case("plain", batch=1, cin=1, cout=1, size=4, kernel=2),
        case("batch_channels"),
        case("same_channels", cin=3, cout=3),
    ]
    if has("padding") and "int" in padding_forms:
        out += [case("padding", padding=1), case("padding", size=(6, 5), kernel=(3, 3), padding=2)]
    if has("stride"):
        # K=3, S=2: windows overlap; H=7 gives (7 - 3) % 2 == 0, no tail
        out.append(case("stride_overlap", size=(7, 9), kernel=(3, 3), stride=2))
        if has("padding") and "int" in padding_forms:
            out.append(case("stride_overlap", size=(7, 5), kernel=(3, 3), stride=2, padding=1))
            # H=6, P=1: 6+2-3 = 5, 5 % 2 = 1 <= P_hi: the tail is padding only
            out.append(case("tail_in_padding", size=(6, 8), kernel=(3, 3), stride=2, padding=1))
        # H=8, P=0: 8-3 = 5, tail 1 real row; H=9, S=3, K=2: (9-2) % 3 = 1
        out.append(case("tail_beyond", size=(8, 6), kernel=(3, 2), stride=2))
        out.append(case("tail_beyond", size=(9, 8), kernel=(2, 3), stride=3))
        out.append(case("holes", size=(8, 9), kernel=(2, 2), stride=3))
        out.append(case("no_overlap", size=(6, 8), kernel=(2, 2), stride=2))
        if has("padding") and "int" in padding_forms:
            out.append(case("tail_beyond", size=(9, 7), kernel=(3, 2), stride=3, padding=1))
    if has("dilation"):
        out.append(case("dilation", size=(7, 8), kernel=(3, 2), dilation=2))
        if has("stride"):
            out.append(case("dilation", size=(9, 8), kernel=(2, 3), stride=2, dilation=3))
        if has("padding") and "int" in padding_forms:
            out.append(case("dilation", size=(6, 7), kernel=(3, 3), dilation=2, padding=1))
    if has("groups"):
        out.append(case("groups", cin=4, cout=6, groups=2))
        out.append(case("groups", cin=6, cout=3, groups=3, kernel=(2, 3)))
        if has("stride"):
            out.append(case("groups", cin=4, cout=4, groups=2, size=(7, 6), kernel=(3, 2), stride=2))
    if transposed and has("output_padding") and has("stride"):
        pads = 1 if has("padding") and "int" in padding_forms else 0
        out.append(case("output_padding", size=(3, 4), kernel=(3, 3), stride=2, padding=pads, output_padding=1))
        out.append(case("output_padding", size=(3, 3), kernel=(2, 3), stride=3, padding=pads * 2, output_padding=2))
    if per_dim and ndim > 1:
        kw = {}
        if has("stride"):
            kw["stride"] = (1, 2)
        if has("padding") and "int" in padding_forms:
            kw["padding"] = (0, 1)
        if has("dilation"):
            kw["dilation"] = (2, 1)
        if kw:
            out.append(case("per_dim", size=(7, 9), kernel=(3, 3), **kw))
            swapped = {k: v[::-1] for k, v in kw.items()}
            out.append(case("per_dim", size=(9, 7), kernel=(3, 3), **swapped))
    if has("padding") and "same" in padding_forms:
        out.append(case("same", kernel=(3, 3), padding="same"))
        out.append(case("same", size=(6, 7), kernel=(2, 4), padding="same"))
        if has("stride"):
            out.append(case("same", size=(8, 7), kernel=(4, 3), stride=2, padding="same"))
            out.append(case("same", size=(7, 9), kernel=(3, 2), stride=2, padding="same"))
    if has("padding") and "valid" in padding_forms:
        out.append(case("valid", padding="valid"))
    return [(n, c) for n, c in out if c.valid()]


def directed_cases(op, ndim, declared, per_dim, padding_forms) -> list[tuple[str, Case]]:
    return _region_cases(op, ndim, frozenset(declared), per_dim, tuple(padding_forms))


def random_case(rng: np.random.Generator, op: str, ndim: int, declared, per_dim: bool, padding_forms) -> Case:
    """A random valid configuration among the declared parameters (tries until one is valid)."""
    declared = frozenset(declared)
    base = identity(op, ndim)
    for _ in range(200):
        def per(lo, hi):
            if per_dim:
                return tuple(int(v) for v in rng.integers(lo, hi + 1, ndim))
            return (int(rng.integers(lo, hi + 1)),) * ndim

        groups = int(rng.choice([1, 1, 2, 3])) if "groups" in declared else 1
        cin = groups * int(rng.integers(1, MAX_CHANNELS // groups + 1))
        cout = groups * int(rng.integers(1, MAX_CHANNELS // groups + 1))
        stride = per(1, 3) if "stride" in declared else (1,) * ndim
        dilation = per(1, 3) if "dilation" in declared else (1,) * ndim
        kernel = tuple(int(v) for v in rng.integers(1, MAX_KERNEL + 1, ndim))
        padding: tuple[int, ...] | str = (0,) * ndim
        if "padding" in declared:
            form = padding_forms[int(rng.integers(len(padding_forms)))]
            padding = per(0, 2) if form == "int" else form
        top = max(4, (6 if op.startswith("transposed") else MAX_SIZE) - 2 * (ndim - 1))   # 3-D stays small
        size = tuple(int(v) for v in rng.integers(3, top + 1, ndim))
        opad = (0,) * ndim
        if op.startswith("transposed") and "output_padding" in declared:
            opad = tuple(int(rng.integers(0, max(s, d))) for s, d in zip(stride, dilation))
            if not per_dim:
                opad = (min(opad),) * ndim
        case = dataclasses.replace(base, batch=int(rng.integers(1, MAX_BATCH + 1)), in_channels=cin,
                                   out_channels=cout, groups=groups, size=size, kernel=kernel, stride=stride,
                                   padding=padding, dilation=dilation, output_padding=opad)
        if case.valid() and max(case.output_shape[2:]) <= 2 * MAX_SIZE:
            return case
    return base


def shrink_moves(case: Case, per_dim: bool) -> list[Case]:
    """Simpler neighbours of ``case``, most aggressive first (as Hypothesis shrinks)."""
    moves: list[Case] = []
    rep = dataclasses.replace
    nd = case.ndim

    def all_dims(field: str, value: int) -> Case:
        return rep(case, **{field: (value,) * nd})

    if case.batch > 1:
        moves += [rep(case, batch=1), rep(case, batch=case.batch - 1)]
    if case.groups > 1:
        moves.append(rep(case, groups=1, in_channels=case.in_channels // case.groups,
                         out_channels=case.out_channels // case.groups))
        moves.append(rep(case, groups=1))
    g = case.groups
    for field in ("in_channels", "out_channels"):
        value = getattr(case, field)
        if value > g:
            moves += [rep(case, **{field: g}), rep(case, **{field: value - g})]
    for field, identity_value in (("stride", 1), ("dilation", 1), ("output_padding", 0)):
        values = getattr(case, field)
        if any(v != identity_value for v in values):
            moves.append(all_dims(field, identity_value))
            moves.append(rep(case, **{field: tuple(max(identity_value, v - 1) for v in values)}))
            if per_dim:
                for d in range(nd):
                    if values[d] != identity_value:
                        moves.append(rep(case, **{field: values[:d] + (identity_value,) + values[d + 1:]}))
    if isinstance(case.padding, tuple) and any(case.padding):
        moves.append(all_dims("padding", 0))
        moves.append(rep(case, padding=tuple(max(0, p - 1) for p in case.padding)))
        if per_dim:
            for d in range(nd):
                if case.padding[d]:
                    moves.append(rep(case, padding=case.padding[:d] + (0,) + case.padding[d + 1:]))
    for field, low in (("size", 1), ("kernel", 1)):
        values = getattr(case, field)
        for d in range(nd):
            # one smaller, and one stride smaller (keeps an unread tail while the input shrinks)
            for step in sorted({1, case.stride[d]}):
                if values[d] - step >= low:
                    moves.append(rep(case, **{field: values[:d] + (values[d] - step,) + values[d + 1:]}))
        if nd > 1 and len(set(values)) > 1:
            m = min(values)
            moves.append(rep(case, **{field: (m,) * nd}))
    return [m for m in moves if m != case and m.valid()]


def random_key(case: Case, seed: int) -> list[int]:
    """The seed of ``case``'s operands: the same case and seed always draw the same numbers."""
    pads = case.padding if isinstance(case.padding, tuple) else (100 + ("same", "valid").index(case.padding),)
    return [seed, OPS.index(case.op), case.batch, case.in_channels, case.out_channels, case.groups, *case.size,
            *case.kernel, *case.stride, *pads, *case.dilation, *case.output_padding]


def arrays(case: Case, seed: int, dtype) -> dict[str, np.ndarray]:
    """Random operands for ``case`` in convgrad's layout: never all ones, never symmetric kernels.

    The same case and seed always give the same arrays (shrinking compares like with like).
    """
    rng = np.random.default_rng(random_key(case, seed))
    out_shape = case.output_shape
    data = {
        "x": rng.standard_normal(case.input_shape),
        "w": rng.standard_normal(case.weight_shape),
        "b": rng.standard_normal(out_shape[1]),
        "dy": rng.standard_normal(out_shape),
    }
    return {k: v.astype(dtype) for k, v in data.items()}


__all__ = ["Case", "OPS", "PARAMS", "directed_cases", "random_case", "shrink_moves", "arrays", "identity"]
