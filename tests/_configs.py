"""Test configurations and the PyTorch oracle, shared by the test modules.

A :class:`Case` is one convolution (or transposed convolution) configuration in user terms.
``random_case`` draws valid ones; ``GRID`` is a fixed list covering 1-D, 2-D and 3-D with
groups, dilation, strides that leave an unread tail or holes, asymmetric and "same" padding,
and every padding mode. ``torch_reference`` computes output and gradients with PyTorch,
written without any of convgrad's code (explicit padding is done with ``F.pad``).
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import numpy as np

MODES = ("zeros", "reflect", "replicate", "circular")


@dataclasses.dataclass(frozen=True)
class Case:
    batch: int
    in_channels: int  # of the operation's input
    out_channels: int  # of the operation's output
    groups: int
    size: tuple[int, ...]  # spatial size of the operation's input
    kernel: tuple[int, ...]
    stride: Any = 1
    padding: Any = 0
    dilation: Any = 1
    padding_mode: str = "zeros"
    transposed: bool = False
    output_padding: Any = 0
    bias: bool = True

    @property
    def ndim(self) -> int:
        return len(self.kernel)

    @property
    def input_shape(self):
        return (self.batch, self.in_channels, *self.size)

    @property
    def weight_shape(self):
        if self.transposed:
            return (self.in_channels, self.out_channels // self.groups, *self.kernel)
        return (self.out_channels, self.in_channels // self.groups, *self.kernel)

    def kwargs(self) -> dict:
        if self.transposed:
            return dict(stride=self.stride, padding=self.padding, output_padding=self.output_padding,
                        groups=self.groups, dilation=self.dilation)
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation, groups=self.groups,
                    padding_mode=self.padding_mode)

    def arrays(self, seed: int = 0, dtype=np.float64):
        rng = np.random.default_rng(seed)
        x = rng.standard_normal(self.input_shape).astype(dtype)
        w = rng.standard_normal(self.weight_shape).astype(dtype)
        b = rng.standard_normal(self.out_channels).astype(dtype) if self.bias else None
        return x, w, b

    def run(self, x, w, b, dy=None, algorithm="auto", needs=("input", "weight", "bias")):
        """convgrad's output and (if ``dy`` is given) gradients for this case."""
        import convgrad

        if self.transposed:
            y = convgrad.conv_transpose(x, w, b, **self.kwargs(), algorithm=algorithm)
            g = None if dy is None else convgrad.conv_transpose_backward(dy, x, w, **self.kwargs(), needs=needs,
                                                                          algorithm=algorithm)
        else:
            y = convgrad.conv(x, w, b, **self.kwargs(), algorithm=algorithm)
            g = None if dy is None else convgrad.conv_backward(dy, x, w, **self.kwargs(), needs=needs,
                                                               algorithm=algorithm)
        return y, g

    def __str__(self) -> str:  # short ids for parametrized tests
        parts = [f"{'T' if self.transposed else ''}{self.ndim}d", f"N{self.batch}", f"C{self.in_channels}>{self.out_channels}",
                 f"H{'x'.join(map(str, self.size))}", f"K{'x'.join(map(str, self.kernel))}"]
        for name in ("stride", "padding", "dilation", "output_padding"):
            v = getattr(self, name)
            if v not in (0, 1) or (name == "output_padding" and v != 0):
                parts.append(f"{name[0]}{v}".replace(" ", ""))
        if self.groups > 1:
            parts.append(f"g{self.groups}")
        if self.padding_mode != "zeros":
            parts.append(self.padding_mode)
        return "-".join(parts)


def _per_dim(v, nd):
    return tuple(v) if isinstance(v, (tuple, list)) else (v,) * nd


def random_case(rng: random.Random, *, ndim=None, transposed=None, max_size=7, allow_modes=True) -> Case:
    """A random valid configuration (PyTorch-expressible up to explicit padding)."""
    nd = ndim or rng.choice((1, 1, 2, 2, 3))
    transposed = rng.random() < 0.25 if transposed is None else transposed
    groups = rng.choice((1, 1, 2, 3))
    cin = groups * rng.randint(1, 2)
    cout = groups * rng.randint(1, 2)
    kernel = tuple(rng.randint(1, 3) for _ in range(nd))
    stride = tuple(rng.randint(1, 3) for _ in range(nd))
    dilation = tuple(rng.randint(1, 2) for _ in range(nd))
    batch = rng.choice((0, 1, 2, 2, 3))
    if transposed:
        pads = tuple(rng.randint(0, 2) for _ in range(nd))
        ops = tuple(rng.randint(0, max(s, d) - 1) for s, d in zip(stride, dilation))
        size = []
        for k, s, d, p, op in zip(kernel, stride, dilation, pads, ops):
            h = rng.randint(1, 4)
            while (h - 1) * s - 2 * p + d * (k - 1) + op + 1 < 1:
                h += 1
            size.append(h)
        return Case(batch, cin, cout, groups, tuple(size), kernel, stride, pads, dilation,
                    transposed=True, output_padding=ops, bias=rng.random() < 0.7)
    mode = rng.choice(MODES) if allow_modes and rng.random() < 0.4 else "zeros"
    kind = rng.random()
    size = [rng.randint(1, max_size) for _ in range(nd)]
    if kind < 0.15:
        padding: Any = "same"
    elif kind < 0.3:
        padding = tuple((rng.randint(0, 2), rng.randint(0, 2)) for _ in range(nd))
    else:
        padding = tuple(rng.randint(0, 2) for _ in range(nd))
    # make it valid: kernel must fit, reflect pad < size, circular pad <= size
    for i in range(nd):
        keff = dilation[i] * (kernel[i] - 1) + 1
        lo, hi = _pair(padding, i, size[i], kernel[i], stride[i], dilation[i])
        while size[i] + lo + hi < keff or (mode == "reflect" and max(lo, hi) >= size[i]) or (
            mode == "circular" and max(lo, hi) > size[i]
        ):
            size[i] += 1
            lo, hi = _pair(padding, i, size[i], kernel[i], stride[i], dilation[i])
    if mode == "zeros" and padding != "same" and all(isinstance(p, int) for p in padding) and rng.random() < 0.5:
        padding = padding[0] if len(set(padding)) == 1 else padding
    return Case(batch, cin, cout, groups, tuple(size), kernel, stride, padding, dilation, mode, bias=rng.random() < 0.7)


def _pair(padding, i, h, k, s, d):
    if padding == "same":
        keff = d * (k - 1) + 1
        out = -(-h // s)
        total = max((out - 1) * s + keff - h, 0)
        return total // 2, total - total // 2
    p = padding[i]
    return (p, p) if isinstance(p, int) else p


def _grid() -> list[Case]:
    cases = [
        # 1-D
        Case(2, 3, 4, 1, (9,), (3,)),
        Case(2, 2, 2, 1, (8,), (3,), stride=2),  # unread tail: (8-3) % 2 = 1
        Case(1, 1, 1, 1, (9,), (2,), stride=4),  # holes
        Case(2, 4, 6, 2, (11,), (3,), stride=3, padding=2, dilation=2),
        Case(1, 3, 3, 3, (7,), (4,), padding="same"),  # depthwise, even kernel
        Case(2, 2, 3, 1, (10,), (3,), stride=2, padding="same"),  # TF rule: pads (0, 1)
        Case(2, 2, 2, 1, (6,), (3,), padding=((2, 0),)),
        Case(2, 2, 3, 1, (6,), (3,), padding=1, padding_mode="reflect"),
        Case(2, 2, 3, 1, (6,), (3,), stride=2, padding=2, padding_mode="replicate"),
        Case(2, 2, 3, 1, (5,), (3,), padding=5, padding_mode="circular", dilation=2),
        Case(0, 2, 3, 1, (5,), (3,)),  # empty batch
        # 2-D
        Case(2, 3, 4, 1, (6, 5), (3, 2)),
        Case(1, 1, 1, 1, (4, 4), (2, 2)),
        Case(1, 1, 1, 1, (4, 4), (2, 2), stride=2),
        Case(2, 4, 4, 4, (7, 7), (3, 3), padding=1),  # depthwise
        Case(2, 4, 6, 2, (9, 8), (3, 2), stride=(2, 3), padding=(1, 2), dilation=(2, 1)),
        Case(1, 2, 2, 1, (7, 6), (3, 3), stride=2, padding="same"),
        Case(2, 2, 2, 1, (5, 6), (2, 3), padding=((0, 1), (2, 0))),
        Case(2, 2, 4, 2, (6, 6), (3, 3), padding=(2, 1), padding_mode="reflect"),
        Case(1, 3, 2, 1, (5, 5), (3, 3), stride=2, padding=1, padding_mode="circular"),
        Case(1, 2, 2, 1, (5, 5), (5, 5), padding=4, padding_mode="replicate"),
        Case(2, 2, 3, 1, (3, 3), (1, 1), stride=2, dilation=3),  # K=1 with dilation
        # 3-D
        Case(1, 2, 3, 1, (4, 5, 3), (2, 3, 2), stride=(1, 2, 1), padding=1),
        Case(2, 2, 2, 2, (5, 4, 4), (3, 3, 3), stride=2, padding=1, dilation=(1, 2, 1)),
        Case(1, 2, 2, 1, (4, 4, 4), (3, 3, 3), padding=1, padding_mode="replicate"),
        # transposed
        Case(2, 3, 4, 1, (4,), (3,), stride=2, padding=1, output_padding=1, transposed=True),
        Case(1, 4, 2, 2, (3,), (3,), stride=1, padding=1, dilation=3, output_padding=2, transposed=True),
        Case(2, 2, 4, 2, (3, 4), (3, 2), stride=(2, 3), padding=(1, 0), output_padding=(1, 2), transposed=True),
        Case(1, 1, 1, 1, (5, 5), (3, 3), padding=3, transposed=True),  # padding > D(K-1): crops to 1x1
        Case(1, 2, 2, 1, (3,), (3,), stride=2, padding=((2, 0),), transposed=True),
        Case(1, 2, 3, 1, (2, 3, 2), (2, 2, 3), stride=2, padding=1, output_padding=1, transposed=True),
    ]
    # the regimes of the specialised fast algorithms (issue 3): 1x1 at stride 1 (pointwise), 3-tap
    # kernels at stride 1 (winograd: partial tiles, dilation phases, padding beyond K-1, inputs no
    # output reads), one input channel per group (depthwise, with a channel multiplier)
    cases += [
        Case(2, 4, 6, 1, (5, 7), (1, 1)),
        Case(2, 6, 4, 2, (9,), (1,)),
        Case(1, 3, 2, 1, (3, 4, 2), (1, 1, 1)),
        Case(2, 4, 6, 2, (4, 5), (1, 1), transposed=True),
        Case(2, 3, 4, 1, (8, 7), (3, 3), padding=1),
        Case(2, 4, 4, 2, (9, 6), (3, 3), dilation=2),
        Case(1, 2, 3, 1, (5, 9), (3, 3), padding=((3, 0), (1, 2)), dilation=(1, 3)),
        Case(1, 2, 2, 1, (5,), (3,), dilation=2),  # output 1: inputs 1 and 3 are never read
        Case(2, 3, 2, 1, (6, 5, 4), (3, 3, 3), padding=1),
        Case(1, 3, 5, 1, (4, 5), (3, 3), padding=2, dilation=2, transposed=True),
        Case(2, 3, 6, 3, (7, 6), (3, 3), stride=2, padding=1),  # depthwise, multiplier 2
        Case(2, 4, 4, 4, (9, 8), (3, 3), padding=2, dilation=2),
        Case(2, 3, 4, 1, (40,), (17,), padding=8),  # a long kernel (fft)
        Case(1, 4, 2, 2, (30,), (9,), padding=(3,), dilation=3),
        # 3 taps along the last dim only (winograd's tiles there, shifted slices along the others)
        Case(2, 4, 6, 2, (7, 9), (5, 3), padding=(2, 1), dilation=(2, 1)),
        Case(1, 3, 2, 1, (4, 5, 6), (2, 1, 3), padding=((1, 0), 0, (2, 1)), dilation=(1, 1, 2)),
        Case(2, 2, 3, 1, (3, 1), (3, 3), padding=((1, 1), (0, 5)), dilation=(1, 2)),  # output column 1 reads only padding
    ]
    return cases


GRID = _grid()


# ------------------------------------------------------------------------------------------------
# the PyTorch oracle
# ------------------------------------------------------------------------------------------------


def torch_reference(case: Case, x, w, b, dy):
    """``(y, dx, dw, db)`` computed by PyTorch's autograd, in ``x``'s dtype, or None if not expressible."""
    import torch

    if case.ndim > 3:
        return None
    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(w, requires_grad=True)
    tb = None if b is None else torch.tensor(b, requires_grad=True)
    y = torch_conv(case, tx, tw, tb)
    if dy is None:
        return y.detach().numpy(), None, None, None
    y.backward(torch.tensor(dy))
    return (y.detach().numpy(), tx.grad.numpy(), tw.grad.numpy(), None if tb is None else tb.grad.numpy())


def torch_conv(case: Case, tx, tw, tb):
    """The case's convolution of torch tensors, differentiable by torch (any order); ranks 1 to 3."""
    import torch.nn.functional as F

    nd = case.ndim
    if case.transposed:
        fn = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[nd - 1]
        pads = _per_dim(case.padding, nd)
        if all(isinstance(p, int) for p in pads):
            y = fn(tx, tw, tb, case.stride, pads, case.output_padding, case.groups, case.dilation)
        else:
            # asymmetric (lo, hi): the transposed conv with zero padding, then crop lo / hi.
            ops = _per_dim(case.output_padding, nd)
            full = fn(tx, tw, tb, case.stride, 0, ops, case.groups, case.dilation)
            index = [slice(None), slice(None)]
            for d, p in enumerate(pads):
                lo, hi = (p, p) if isinstance(p, int) else p
                index.append(slice(lo, full.shape[2 + d] - hi))
            y = full[tuple(index)]
    else:
        fn = (F.conv1d, F.conv2d, F.conv3d)[nd - 1]
        simple = case.padding_mode == "zeros" and (
            isinstance(case.padding, int)
            or (case.padding == "same" and all(s == 1 for s in _per_dim(case.stride, nd)))
            or (not isinstance(case.padding, str) and all(isinstance(p, int) for p in case.padding))
        )
        if simple:
            y = fn(tx, tw, tb, case.stride, case.padding, case.dilation, case.groups)
        else:
            pads = []
            for i in reversed(range(nd)):
                lo, hi = _pair(case.padding if case.padding == "same" else _per_dim(case.padding, nd), i,
                               case.size[i], case.kernel[i], _per_dim(case.stride, nd)[i], _per_dim(case.dilation, nd)[i])
                pads += [lo, hi]
            mode = "constant" if case.padding_mode == "zeros" else case.padding_mode
            y = fn(F.pad(tx, pads, mode=mode), tw, tb, case.stride, 0, case.dilation, case.groups)
    return y


def max_rel(a, b) -> float:
    """``max|a - b| / max(1, max|b|)``, in float64."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b)) / max(1.0, float(np.max(np.abs(b)))))


def spec_of(case: Case):
    """The :class:`~convgrad.spec.ConvSpec` an algorithm sees for ``case``, and the operations in the order of its call.

    For a transposed convolution its forward is the ``grad_input`` of the spec, and so on.
    """
    from convgrad.spec import conv_spec, conv_transpose_spec

    if case.transposed:
        spec = conv_transpose_spec(case.input_shape, case.weight_shape, case.stride, case.padding,
                                   case.output_padding, case.groups, case.dilation)
        return spec, ("grad_input", "forward", "grad_weight")
    spec = conv_spec(case.input_shape, case.weight_shape, case.stride, case.padding, case.dilation, case.groups,
                     case.padding_mode)
    return spec, ("forward", "grad_input", "grad_weight")


def case_of(spec) -> Case:
    """A :class:`Case` (a plain convolution with bias) computing ``spec``."""
    return Case(spec.batch, spec.in_channels, spec.out_channels, spec.groups, spec.input_size, spec.kernel_size,
                stride=spec.stride, padding=spec.padding, dilation=spec.dilation, padding_mode=spec.padding_mode)


def supports(algorithm: str, case_or_shapes, **kwargs) -> bool:
    """Whether ``algorithm`` computes every operation of a configuration.

    The specialised fast algorithms support narrow regimes and refuse the rest with a
    ``ValueError`` saying why. Takes a :class:`Case`, or ``(input_shape, weight_shape)`` and
    the keyword arguments of ``conv``.
    """
    from convgrad import algorithms
    from convgrad.spec import conv_spec

    if algorithm in ("auto", "measure"):
        return True
    if isinstance(case_or_shapes, Case):
        spec, ops = spec_of(case_or_shapes)
    else:
        input_shape, weight_shape = case_or_shapes
        spec, ops = conv_spec(input_shape, weight_shape, **kwargs), ("forward", "grad_input", "grad_weight")
    alg = algorithms.get_algorithm(algorithm)
    return all(alg.unsupported(spec, op) is None for op in ops)


def supported_pairs(cases, algorithms) -> list:
    """``pytest.param(case, algorithm)`` for the pairs where the algorithm computes the case -- only those.

    A test parametrized with this neither skips nor passes vacuously outside an algorithm's regime;
    that the algorithms refuse the other pairs, saying why, is tested once (tests/test_algorithms.py).
    """
    import pytest

    return [pytest.param(case, name, id=f"{case}-{name}") for case in cases for name in algorithms
            if supports(name, case)]


def supporting(algorithms, case_or_shapes, **kwargs) -> list[str]:
    """The algorithms among ``algorithms`` that compute the configuration (as :func:`supports` takes it)."""
    return [name for name in algorithms if supports(name, case_or_shapes, **kwargs)]


def in_regime(algorithm: str, case: Case, pick: int = 0) -> Case:
    """``case`` if ``algorithm`` computes it, else one of the algorithm's own example configurations.

    For property tests: every drawn example exercises the algorithm (the examples are the
    configurations each algorithm declares in its regime, ``Algorithm.examples``).
    """
    if supports(algorithm, case):
        return case
    from convgrad import algorithms

    examples = algorithms.get_algorithm(algorithm).examples()
    assert examples, f"{algorithm} declares no example configurations"
    return case_of(examples[pick % len(examples)])
