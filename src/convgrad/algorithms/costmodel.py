"""The cost model behind ``algorithm="auto"``: an estimate of each algorithm's time, from its shapes.

Every fast algorithm spends its time in three ways, which :func:`work` counts for a spec and an
operation without running anything:

- ``gemm``: BLAS flops, divided by an efficiency that falls for thin products
  (:func:`efficiency`, for inner dimension ``k`` and smaller outer dimension ``m``);
- ``elem``: values read or written by NumPy's elementwise passes and copies (transforms,
  padding, stacking, cropping);
- ``calls``: NumPy and BLAS calls made from Python (each costs microseconds however small);
- ``runs``: contiguous runs a strided copy moves (im2col copies rows of ``W_out`` values, im2row
  runs of ``C_g`` channels: on small maps the loop over runs is what costs).

The estimate is ``SETUP[name] + COEFFICIENTS["gemm"] * gemm + COEFFICIENTS[name] * elem +
COEFFICIENTS["call"] * calls`` (and the ``runs`` and ``small`` terms) seconds with
``CALIBRATED_THREADS`` threads, ``SETUP`` being each algorithm's fixed Python cost per operation; with other counts the BLAS and call terms divide by the thread count and the
elementwise term by less (``ELEM_SCALING``: the cores share the memory bandwidth). The
coefficients were fitted by non-negative least squares to
measured times (``benchmarks/calibrate.py``, which also reports how often the model picks the
fastest algorithm); see the README's "Algorithms" section for the fit and its accuracy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..spec import ConvSpec

__all__ = ["Work", "work", "estimate", "COEFFICIENTS", "MODELED"]


@dataclass(frozen=True)
class Work:
    gemm: float  # BLAS flops / efficiency
    elem: float  # values through NumPy elementwise passes
    calls: float  # Python-level calls
    small: float = 0.0  # flops of NumPy's stacked products of tiny complex matrices (fft)
    runs: float = 0.0  # contiguous runs a strided NumPy copy moves (each costs a loop iteration)

    def __add__(self, other: "Work") -> "Work":
        return Work(self.gemm + other.gemm, self.elem + other.elem, self.calls + other.calls, self.small + other.small,
                    self.runs + other.runs)


#: Seconds per unit of work. Fitted on one core of an AMD EPYC (Zen 4, 2 cores, shared), NumPy 2.4
#: with its OpenBLAS 0.3.31, float32; see ``benchmarks/calibrate.py``.
COEFFICIENTS = {
    "gemm": 1.433e-11,
    "call": 2e-06,
    "small": 1.37e-10,
    "run": 1.225e-09,
    "tapgemm": 1.374e-10,
    "winograd": 1.487e-10,
    "depthwise": 1.231e-10,
    "pointwise": 0,
    "fft": 0,
    "gemm_im2col": 3.623e-10,
    "im2row": 3.241e-10,
    "rowgemm": 2.475e-10,
}

#: Seconds of fixed Python work per operation beyond what ``calls`` counts (planning, layouts,
#: buffers, the dispatcher's checks): fitted to the calibration measurements with the
#: coefficients above held fixed (``benchmarks/calibrate.py``, one indicator column per algorithm).
#: It decides between algorithms on layers of a few hundred microseconds, such as
#: ``convgrad train``'s: with it, on held-out shapes, auto's pick is 1.03x slower than the fastest
#: on geometric mean and 1.41x at worst, against 1.07x and 2.17x without.
SETUP = {
    "tapgemm": 9.45e-05,
    "winograd": 0,
    "depthwise": 5.62e-05,
    "pointwise": 0,
    "fft": 0,
    "gemm": 1.95e-05,
    "im2row": 6.13e-06,
    "rowgemm": 1.63e-05,
}

#: The thread count the coefficients were fitted with: estimates for other counts are scaled.
#: (A fit on two threads was tried: on this shared machine its measurements were too noisy --
#: held out, it picked the fastest 42 % of the time but 1.20x slower on geometric mean.)
CALIBRATED_THREADS = 1

#: What each extra thread adds to the speed of elementwise passes, relative to one core (they
#: share the memory bandwidth); BLAS products scale fully. Measured with two threads on layers
#: a and f: Winograd (mostly passes) 1.75x faster than on one core, tapgemm (mostly BLAS) 2.0x;
#: in the benchmark runs Winograd lost more (layer f: 147 ms fwd+bwd against tapgemm's 110-127).
ELEM_SCALING = 0.3

#: The algorithms the model can estimate (``direct`` is the slow reference, never chosen).
MODELED = ("tapgemm", "winograd", "depthwise", "pointwise", "fft", "gemm", "im2row", "rowgemm")


def efficiency(k: float, m: float) -> float:
    """Fraction of the BLAS peak for a product with inner dimension ``k`` and smaller outer dimension ``m``.

    Fitted to OpenBLAS's sgemm on cache-sized blocks, ``(m, k) @ (k, ~2 MB)``, one core: e.g.
    0.17 for k=1, m=6; 0.56 for 6 x 16; 0.77 for 16 x 16; 0.94 for 64 x 64.
    """
    return 1.0 / (0.81 + 4.3 / max(k, 1) + 6.7 / max(m, 1))


def _tapgemm(spec: ConvSpec, op: str) -> Work:
    from ._flat import flat_layout
    from .tapgemm import BLOCK_BYTES, stack_size

    lay = flat_layout(spec)
    n, G, og, cg = spec.batch, spec.groups, spec.out_per_group, spec.in_per_group
    T = len(lay.taps)
    S = stack_size(spec, op)
    stacks = -(-T // S)
    cols = min(lay.columns(n), lay.columns(n, interleaved=True))  # small maps: chunks interleaved
    flops = 2.0 * G * og * cg * T * cols
    k, m = {"forward": (S * cg, og), "grad_input": (og, S * cg), "grad_weight": (cols, min(og, S * cg))}[op]
    inputs = n * spec.in_channels * math.prod(spec.input_size)
    outputs = n * spec.out_channels * math.prod(spec.output_size)
    # a stack is copied into a block of BLOCK_BYTES, beyond the core's cache: written out, and
    # read back by BLAS (for dx: written by BLAS, read back to be added onto the taps)
    elem = inputs + outputs + (2 * T * spec.in_channels * cols if S > 1 else 0)
    if op == "grad_input":
        elem += len(lay.phases) * spec.in_channels * cols  # zeroing the phase buffer
    if op == "grad_weight":
        elem += outputs
    width = max(64, BLOCK_BYTES // ((S * cg + og) * 4))
    calls = G * stacks * (1 + (S if S > 1 else 0)) * max(1, cols // width) + 10
    return Work(flops / efficiency(k, m), elem, calls)


def _winograd(spec: ConvSpec, op: str) -> Work:
    from .winograd import BLOCK_BYTES, _pieces, _Problem

    n, G, og, cg = spec.batch, spec.groups, spec.out_per_group, spec.in_per_group
    c_in, c_out = spec.in_channels, spec.out_channels
    kernel, dilation, lo = spec.kernel_size, spec.dilation, spec.pad_lo
    sizes = (spec.input_size, spec.output_size)
    if op == "grad_input":  # the forward of the transposed problem
        lo = tuple((k - 1) * d - p for k, d, p in zip(kernel, dilation, lo))
        sizes = sizes[::-1]
        c_in, c_out, og, cg = c_out, c_in, cg, og
    total = Work(0.0, 0.0, 0.0)
    for _, _, lo_w, in_len, out_len in _pieces(sizes[0], sizes[1], lo, dilation):
        if in_len == 0:
            continue
        prob = _Problem(lo[:-1] + (lo_w,), sizes[0][:-1] + (in_len,), sizes[1][:-1] + (out_len,), kernel[:-1],
                        dilation[:-1])
        cols = n * prob.P
        taps = len(prob.taps)
        flops = 2.0 * G * og * cg * 4 * taps * cols
        k, m = {"forward": (cg, og), "grad_input": (cg, og), "grad_weight": (cols, min(og, cg))}[op]
        inputs = n * c_in * math.prod(prob.size)
        outputs = n * c_out * math.prod(prob.out)
        # scatter into parity planes, four transform passes over the input side, four over the
        # output side (and its two strided halves)
        elem = inputs + 4 * c_in * cols + 4 * c_out * cols + 2 * outputs
        width = max(64, BLOCK_BYTES // ((cg + 4 * og) * 4))
        calls = 4 * G * taps * max(1, cols // width) + 20 * max(1, n // 2)
        total = total + Work(flops / efficiency(k, m), elem, calls)
    return total


def _depthwise(spec: ConvSpec, op: str) -> Work:
    from ._flat import flat_layout
    from .depthwise import BLOCK_BYTES

    lay = flat_layout(spec)
    n, T = spec.batch, len(lay.taps)
    cols = n * lay.size
    inputs = n * spec.in_channels * math.prod(spec.input_size)
    outputs = n * spec.out_channels * math.prod(spec.output_size)
    passes = {"forward": 2, "grad_input": 2, "grad_weight": 1}[op]
    elem = passes * T * spec.out_channels * cols + inputs + outputs
    if op == "grad_weight":
        elem += outputs
    # a chunk holds as many elements as fit BLOCK_BYTES of output rows (one or two on large maps)
    chunk = max(1, min(n, BLOCK_BYTES // max(1, spec.out_per_group * lay.size * 4 * spec.groups)))
    blocks = max(1, spec.out_channels * lay.size * 4 * chunk // BLOCK_BYTES)  # channel blocks per chunk
    calls = -(-n // chunk) * blocks * T * passes + 10
    return Work(0.0, elem, calls)


def _pointwise(spec: ConvSpec, op: str) -> Work:
    n, G, og, cg = spec.batch, spec.groups, spec.out_per_group, spec.in_per_group
    p = math.prod(spec.output_size)
    flops = 2.0 * n * G * og * cg * p
    k, m = {"forward": (cg, og), "grad_input": (og, cg), "grad_weight": (p, min(og, cg))}[op]
    return Work(flops / efficiency(k, m), 0.0, n * G + 10)


def _gemm(spec: ConvSpec, op: str) -> Work:
    n, G, og, cg = spec.batch, spec.groups, spec.out_per_group, spec.in_per_group
    T = math.prod(spec.kernel_size)
    p = math.prod(spec.output_size)
    flops = 2.0 * n * G * og * cg * T * p
    k, m = {"forward": (cg * T, og), "grad_input": (og, cg * T), "grad_weight": (n * p, min(og, cg * T))}[op]
    cols = spec.in_channels * T * n * p
    outputs = n * spec.out_channels * p
    # the padded input and the output side are transposed to and from batch-last order (each
    # value moved alone: counted twice), the columns copied and, for dx, added back tap by tap
    elem = cols + 2 * outputs + 2 * n * spec.in_channels * math.prod(spec.read_span)
    if op == "grad_input":
        elem += cols  # col2im, tap by tap
    # with the batch innermost, a window row of all N elements is one run at stride 1
    run = max(1, n * (spec.output_size[-1] if spec.stride[-1] == 1 else 1))
    runs = cols / run * (2 if op == "grad_input" else 1)
    return Work(flops / efficiency(k, m), elem, 12 + (T if op == "grad_input" else 0), runs=runs)


def _rowgemm(spec: ConvSpec, op: str) -> Work:
    from .rowgemm import RowLayout

    lay = RowLayout(spec)
    n, G, og, cg = spec.batch, spec.groups, spec.out_per_group, spec.in_per_group
    kw = lay.kw
    # the products run over the output grid (widened outer dims in 3-D and up), inner dimension C_g*K_w
    flops = 2.0 * G * og * cg * math.prod(spec.kernel_size) * lay.ext
    k, m = {"forward": (cg * kw, og), "grad_input": (og, cg * kw), "grad_weight": (lay.ext, min(og, cg * kw))}[op]
    cols = spec.in_channels * kw * lay.columns
    outputs = spec.out_channels * lay.ext
    # as gemm: padded input and output side transposed to and from batch-last order, the row
    # windows copied; for dx the window matrix is zeroed and added back tap by tap
    elem = cols + 2 * outputs + 2 * n * spec.in_channels * math.prod(spec.read_span)
    if op == "grad_input":
        elem += 2 * cols
    run = max(1, n * (spec.output_size[-1] if spec.stride[-1] == 1 else 1))
    runs = cols / run * (2 if op == "grad_input" else 1)
    # ~40 us of Python more than gemm per operation (chunk plan, layout, BLAS operands by address)
    return Work(flops / efficiency(k, m), elem, 32 + 2 * G * len(lay.offsets), runs=runs)


def _fft(spec: ConvSpec, op: str) -> Work:
    from .fft import fast_length

    n, G, og, cg = spec.batch, spec.groups, spec.out_per_group, spec.in_per_group
    L = [fast_length(s) for s in spec.read_span]
    size = math.prod(L)
    freqs = math.prod(L[:-1]) * (L[-1] // 2 + 1)
    # the transforms (n log n per value) and the copies around them count as elementwise work
    elem = n * (spec.in_channels + spec.out_channels) * size * (math.log2(max(size, 2)) + 4)
    # one small complex product per frequency (8 flops per multiply-add)
    flops = 8.0 * freqs * n * G * og * cg
    # NumPy's stacked matmul calls BLAS once per frequency (and group): thousands of tiny calls in 2-D/3-D
    chunks = max(1, n // 4)
    calls = chunks * G * freqs * (1 if op != "grad_weight" else 2) + chunks * 8 + 10
    return Work(0.0, elem, calls, flops)


def _im2row(spec: ConvSpec, op: str) -> Work:
    # gemm's arithmetic in channels-last order: the same products, copies in runs of channels
    # plus a transposing copy of the input and of the output side
    base = _gemm(spec, op)
    runs = spec.in_channels * math.prod(spec.kernel_size) * spec.batch * math.prod(spec.output_size) / spec.in_per_group
    runs *= 2 if op == "grad_input" else 1  # the copies move runs of C_g channels
    return Work(base.gemm, base.elem, base.calls, runs=runs)


_WORK = {"tapgemm": _tapgemm, "fft": _fft, "im2row": _im2row, "rowgemm": _rowgemm, "winograd": _winograd, "depthwise": _depthwise, "pointwise": _pointwise,
         "gemm": _gemm}
_ELEM_KEY = {"gemm": "gemm_im2col"}


def work(name: str, spec: ConvSpec, op: str) -> Work:
    """The work algorithm ``name`` does for ``op`` on ``spec``."""
    return _WORK[name](spec, op)


def estimate(name: str, spec: ConvSpec, op: str, threads: int = 1) -> float:
    """Estimated seconds for algorithm ``name`` to compute ``op`` on ``spec`` with ``threads`` threads."""
    wk = work(name, spec, op)
    c = COEFFICIENTS
    compute = c["gemm"] * wk.gemm + c["call"] * wk.calls + c["small"] * wk.small + c["run"] * wk.runs
    passes = c[_ELEM_KEY.get(name, name)] * wk.elem
    ref = CALIBRATED_THREADS
    scaled = compute * ref / threads + passes * (1 + ELEM_SCALING * (ref - 1)) / (1 + ELEM_SCALING * (threads - 1))
    return SETUP.get(name, 0.0) + scaled


def gemm_scratch_bytes(spec: ConvSpec, itemsize: int = 4) -> int:
    """The core ``gemm``'s scratch: the im2col matrix and the padded input (it does not chunk)."""
    cols = spec.in_channels * math.prod(spec.kernel_size) * spec.batch * math.prod(spec.output_size)
    return (cols + spec.batch * spec.in_channels * math.prod(spec.read_span)) * itemsize
