"""The cost model behind ``algorithm="auto"``: an estimate of each algorithm's time, from its shapes.

Every fast algorithm spends its time in these ways, which the algorithm itself counts for a spec
and an operation without running anything (:meth:`~convgrad.algorithms.base.Algorithm.work`;
:mod:`.work` defines the terms):

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

from ..spec import ConvSpec
from .registry import REGISTRY
from .work import Work, efficiency

__all__ = ["Work", "efficiency", "work", "estimate", "modeled", "COEFFICIENTS", "SETUP"]


#: Seconds per unit of work. Fitted on one core of an AMD EPYC (Zen 4, 2 cores, shared), NumPy 2.4
#: with its OpenBLAS 0.3.31, float32; see ``benchmarks/calibrate.py``.
COEFFICIENTS = {
    "gemm": 1.433e-11,
    "call": 2e-06,
    "small": 1.37e-10,
    "run": 1.225e-09,
    "tapgemm": 1.374e-10,
    # winograd: raised from the fitted 1.487e-10 (2026-12-02), first to 2.2e-10, then in the evening, after
    # samplegemm's unpadded 'same' layout and blocks of rows, to 7.5e-10: timed interleaved on the quiet
    # machine, samplegemm beat winograd on every 2-D 3x3 layer tried (layers a and f, calibrate.py's
    # corpus, the VGG and ResNet nets' layers: 1.04-2x on two threads, 1.02-1.43x on one), while with
    # 2.2e-10 the model kept winograd on a, f and the VGG net's weight gradients. The last of those flips
    # at 4.7e-10 with two threads (a's weight gradient) and at 6.9e-10 with one (a's weight gradient
    # again; a's other two operations and f's and calibrate.py's 64 -> 64 28x28 weight gradients at
    # 5.9-6e-10). A refit of samplegemm instead (benchmarks/fit_samplegemm.py, 1.91e-11) flipped those
    # too but also moved ResNet-8's 16 -> 32 stride-2 input gradient off tapgemm, 1.27x slower. The
    # known cost: layer i's input gradient (3-D, 16 -> 32 channels; flips at 4.4e-10), where winograd
    # measured 0.79x samplegemm's time with two threads and 0.84x with one
    "winograd": 7.5e-10,
    "depthwise": 1.231e-10,
    "pointwise": 1.374e-10,  # its strided gather/scatter (ResNet projections): tapgemm's fitted value, not fitted itself
    "fft": 0,
    "gemm_im2col": 3.623e-10,
    "im2row": 3.241e-10,
    "rowgemm": 2.475e-10,
    # samplegemm: fitted (2026-12-02, one thread, 39 configurations x 3 operations: calibrate.py's corpus
    # and the training nets' layers) with the coefficients above held fixed, to its measured time scaled
    # by the model's own error on the other candidates of the same configuration -- so that auto's
    # comparison is calibrated without refitting the others (benchmarks/fit_samplegemm.py; it also
    # fits samplegemm.SAMPLE_CALLS, and benchmarks/auto_vs_fastest.py checks the picks on the networks)
    "samplegemm": 3.74e-11,
    # winograd2d: fitted as samplegemm (2026-12-02, one core, CPU time, 23 configurations x 3 operations:
    # calibrate.py's 3x3 stride-1 ones and the training nets' layers; benchmarks/fit_winograd2d.py) to
    # 6.6e-10, raised to 9e-10: with 6.6e-10 auto picked it for the VGG net's 128->128 8x8 input and
    # weight gradients, measured 1.21x and 1.06x slower there than rowgemm (changed_picks.py, 2 threads)
    "winograd2d": 9e-10,
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
    "samplegemm": 3.51e-05,
    "winograd2d": 0,
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

def work(name: str, spec: ConvSpec, op: str) -> Work:
    """The work algorithm ``name`` does for ``op`` on ``spec`` (its own :meth:`~.base.Algorithm.work`)."""
    return REGISTRY[name].work(spec, op)


def estimate(name: str, spec: ConvSpec, op: str, threads: int = 1) -> float:
    """Estimated seconds for algorithm ``name`` to compute ``op`` on ``spec`` with ``threads`` threads."""
    alg = REGISTRY[name]
    wk = alg.work(spec, op)
    c = COEFFICIENTS
    compute = c["gemm"] * wk.gemm + c["call"] * wk.calls + c["small"] * wk.small + c["run"] * wk.runs
    passes = c[alg.elem_coefficient or name] * wk.elem
    ref = CALIBRATED_THREADS
    scaled = compute * ref / threads + passes * (1 + ELEM_SCALING * (ref - 1)) / (1 + ELEM_SCALING * (threads - 1))
    return SETUP.get(name, 0.0) + scaled


def modeled() -> tuple[str, ...]:
    """The registered algorithms ``auto`` may pick (each declares its work; this module holds their coefficients)."""
    return tuple(name for name, alg in REGISTRY.items() if alg.auto_candidate)
