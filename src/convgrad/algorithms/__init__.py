"""The registry of convolution algorithms, the ``auto`` and ``measure`` choices, and the one dispatch function.

Each algorithm lives in its own module and implements :class:`~convgrad.algorithms.base.Algorithm`.
:func:`run` is the only way the API calls an algorithm: it resolves ``"auto"`` (the cost model,
:mod:`.costmodel`) and ``"measure"`` (time the candidates once per configuration, then reuse
the fastest), refuses an algorithm that cannot do the configuration (``ValueError`` saying why),
applies non-zero padding modes for algorithms that only implement zero padding, and recomputes
a non-finite result of an algorithm that could have moved a NaN/inf (``spreads_nonfinite``).
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
import time

import numpy as np

from .. import blas, runtime, workspace
from .. import padding as _padding
from . import costmodel
from ..spec import ConvSpec
from .base import OPERATIONS, Algorithm
from .registry import REGISTRY as _REGISTRY
from .registry import register


def _import_algorithm_modules() -> None:
    """Import every module of this package: each algorithm module registers itself (sorted by name)."""
    modules = [info.name for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name)
               if not info.name.startswith("_")]
    for name in modules:
        importlib.import_module(f"{__name__}.{name}")
    # in module order whatever the modules import from one another (colgemm_last imports samplegemm_last)
    rank = {name: i for i, name in enumerate(modules)}
    ordered = sorted(_REGISTRY.items(), key=lambda item: rank.get(type(item[1]).__module__.rsplit(".", 1)[-1], len(rank)))
    _REGISTRY.clear()
    _REGISTRY.update(ordered)


_import_algorithm_modules()

__all__ = ["Algorithm", "available_algorithms", "get_algorithm", "candidates", "choose", "run", "register",
           "measured_choices", "clear_measured_choices", "clear_caches"]

#: The choices besides a registered algorithm's name.
CHOOSERS = ("auto", "measure")


def available_algorithms() -> tuple[str, ...]:
    """The names accepted by every function's ``algorithm=`` argument (besides ``"auto"`` and ``"measure"``)."""
    return tuple(_REGISTRY)


def get_algorithm(name: str, func: str = "convgrad") -> Algorithm:
    """The registered algorithm called ``name``; ``ValueError`` listing the names otherwise."""
    if not isinstance(name, str):
        raise TypeError(f"{func}: algorithm must be a string, one of {(*CHOOSERS, *_REGISTRY)}, got {name!r}")
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"{func}: algorithm must be 'auto', 'measure' or one of {tuple(_REGISTRY)}, got {name!r}"
        ) from None


def candidates(spec: ConvSpec, op: str, itemsize: int = 4) -> list[str]:
    """The algorithms ``auto``/``measure`` choose from for ``op`` on ``spec``.

    The registered ones that declare ``auto_candidate`` (``direct``, the slow reference, does not)
    and support the configuration, and whose unchunked scratch (``scratch_bytes``: the im2col
    matrix of ``gemm`` and ``im2row``) fits in the workspace limit. With several groups of one
    input and one output channel (depthwise), not those whose products are channel matrices
    (``channel_products``): 1x1 matrices through BLAS. If none is left, the ``fallback`` one.
    """
    depthwise_shaped = spec.groups > 1 and spec.in_per_group == 1 and spec.out_per_group == 1
    limit = runtime.get_workspace_limit()
    names = [name for name, alg in _REGISTRY.items()
             if alg.auto_candidate and alg.unsupported(spec, op) is None
             and alg.scratch_bytes(spec, itemsize) <= limit
             and not (depthwise_shaped and alg.channel_products)]
    return names or [name for name, alg in _REGISTRY.items() if alg.fallback][:1]


def choose(spec: ConvSpec, op: str, itemsize: int = 4) -> Algorithm:
    """The algorithm ``"auto"`` picks for ``op`` on ``spec``: the smallest cost-model estimate."""
    return _REGISTRY[_choice(spec, op, itemsize, runtime.get_num_threads(), runtime.get_workspace_limit())]


@functools.lru_cache(maxsize=1024)
def _choice(spec: ConvSpec, op: str, itemsize: int, threads: int, limit: int) -> str:
    # cached: the estimate costs ~0.1 ms, as much as a whole small convolution's bookkeeping
    names = candidates(spec, op, itemsize)
    one = {name: costmodel.estimate(name, spec, op, 1) for name in names}
    if _one_thread(min(one.values()), itemsize):  # it will run on one thread (see is_small): compare on one
        return min(names, key=one.get)
    return min(names, key=lambda name: costmodel.estimate(name, spec, op, threads))


#: ``measure`` times the candidates whose estimate is within this factor of the best, at most
#: ``MEASURE_AT_MOST`` of them, cheapest estimate first.
MEASURE_WITHIN = 4.0
MEASURE_AT_MOST = 4

_measured: dict[tuple, str] = {}


def _measure_key(spec: ConvSpec, op: str, dtype) -> tuple:
    return (spec, op, np.dtype(dtype).str, runtime.get_num_threads(), runtime.get_workspace_limit())


def measured_choices() -> dict[tuple, str]:
    """What ``algorithm="measure"`` has chosen so far: ``{(spec, op, dtype, threads, workspace): name}``."""
    return dict(_measured)


def clear_measured_choices() -> None:
    """Forget the choices of ``algorithm="measure"`` (they are kept for the life of the process)."""
    _measured.clear()


def clear_caches() -> None:
    """Forget every choice kept for the life of the process: ``measure``'s measurements and ``auto``'s cached picks."""
    clear_measured_choices()
    _choice.cache_clear()
    _small_work.cache_clear()


def _measure(op: str, spec: ConvSpec, a: np.ndarray, b: np.ndarray, bias=None) -> tuple[Algorithm, np.ndarray | None]:
    """The algorithm ``measure`` uses, and the result if it had to compute it to find out."""
    key = _measure_key(spec, op, a.dtype)
    if key in _measured:
        return _REGISTRY[_measured[key]], None
    names = candidates(spec, op, a.itemsize)
    estimates = {name: costmodel.estimate(name, spec, op, runtime.get_num_threads()) for name in names}
    best = min(estimates.values())
    tried = sorted((n for n in names if estimates[n] <= MEASURE_WITHIN * best), key=estimates.get)[:MEASURE_AT_MOST]
    fastest, fastest_time, result = None, float("inf"), None
    for name in tried:
        start = time.perf_counter()
        out = _compute(_REGISTRY[name], op, spec, a, b, bias)
        elapsed = time.perf_counter() - start
        if elapsed < fastest_time:
            fastest, fastest_time, result = name, elapsed, out
        del out
    _measured[key] = fastest
    return _REGISTRY[fastest], result


def resolve(algorithm: str, spec: ConvSpec, op: str, itemsize: int = 4, func: str = "convgrad") -> Algorithm:
    """The algorithm object for a user's ``algorithm=`` argument, checked against ``spec``."""
    if algorithm == "auto":
        return choose(spec, op, itemsize)
    if algorithm == "measure":  # resolved by run(), which has the operands; without them, the model's pick
        key = _measure_key(spec, op, np.float32 if itemsize == 4 else np.float64)
        return _REGISTRY[_measured[key]] if key in _measured else choose(spec, op, itemsize)
    alg = get_algorithm(algorithm, func)
    reason = alg.unsupported(spec, op)
    if reason is not None:
        raise ValueError(f"{func}: algorithm {alg.name!r} cannot compute {op} for this configuration: {reason}")
    return alg


def run(
    op: str, spec: ConvSpec, a: np.ndarray, b: np.ndarray, algorithm: str = "auto", *,
    bias: np.ndarray | None = None, func: str = "convgrad"
) -> np.ndarray:
    """Compute ``op`` (one of ``forward``, ``grad_input``, ``grad_weight``) with the chosen algorithm.

    Operands, by ``op``: ``forward(x, w)``, ``grad_input(dy, w)``, ``grad_weight(x, dy)``.
    ``algorithm`` is ``"auto"`` (the cost model's pick), ``"measure"`` (on the first call for a
    configuration, time the plausible candidates on these operands and remember the fastest for
    later calls with the same spec, dtype, thread count and workspace limit) or a name from
    :func:`available_algorithms`. ``bias`` (one value per channel of the result, its dtype) is
    added to the result -- by the algorithm while it writes the result when it can
    (``Algorithm.bias_ops``).
    """
    if op not in OPERATIONS:
        raise ValueError(f"op must be one of {OPERATIONS}, got {op!r}")
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"), workspace.scope():  # IEEE semantics, silently
        result = None
        if algorithm == "measure":
            alg, result = _measure(op, spec, a, b, bias)
        else:
            alg = resolve(algorithm, spec, op, a.itemsize, func)
        if result is None:
            result = _execute(alg, op, spec, a, b, bias, is_small(alg, spec, op, a.itemsize))
        elif alg.spreads_nonfinite(op) and not all_finite(result):
            result = _compute(_REGISTRY[SAFE], op, spec, a, b, bias)
    return result


def execute(alg: Algorithm, op: str, spec: ConvSpec, a: np.ndarray, b: np.ndarray, bias=None, small=False) -> np.ndarray:
    """Compute ``op`` with the already resolved ``alg``: what :func:`run` does once it knows the algorithm.

    For callers that resolved the algorithm once (:mod:`convgrad.plan`): ``small`` says the operation
    runs on one thread (:func:`is_small`). The operands are checked and cast by the caller.
    """
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"), workspace.scope():
        return _execute(alg, op, spec, a, b, bias, small)


def _execute(alg: Algorithm, op: str, spec: ConvSpec, a, b, bias, small: bool) -> np.ndarray:
    threads = runtime.get_num_threads()
    if small and threads > 1:
        with runtime.settings(num_threads=1), blas.single_threaded():
            result = _compute(alg, op, spec, a, b, bias)
    elif threads == 1:  # one thread means BLAS's too (ResNet-8's step: 2.3 s with BLAS's own two threads, 0.18 s)
        with blas.single_threaded():
            result = _compute(alg, op, spec, a, b, bias)
    else:
        result = _compute(alg, op, spec, a, b, bias)
    if alg.spreads_nonfinite(op) and not all_finite(result):
        # A NaN or inf (in an operand, or from an overflow) went through an algorithm that can move
        # it to results that do not read it: recompute with one that keeps it where it belongs.
        result = _compute(_REGISTRY[SAFE], op, spec, a, b, bias)
    return result


#: Estimated single-core seconds below which an operation runs on one thread, BLAS included (the
#: float32-fitted estimate times :func:`_dtype_scale`: a float64 operation's counts twice):
#: waking and synchronising threads (and handing the GIL between them around calls of tens of
#: microseconds) costs more than they save, and a second core busy elsewhere turns it into a
#: wait. Layer g1 (1 -> 6 channels, 28x28, N=64) forward took 1.6-8 ms on two threads, 1.3 ms on
#: one; g2's forward with gemm, right after PyTorch's calls (whose OpenMP threads spin on for
#: milliseconds): 0.6 ms on two BLAS threads but 2.4-4.7 ms in some of the calls, 0.7-0.8 ms on one.
#: Lowered from 4 ms to 1 ms (2026-12-02): the estimates are of hot-cache calls alone, and inside a
#: training step the operations take longer -- at 4 ms, 14 of ResNet-8's 24 convolution operations
#: (9-20 ms each in the step) ran on one core. Steps of ``convgrad bench --train`` (float32, quiet,
#: two alternating rounds, 4 ms -> 1 ms -> 0.5 ms): ResNet-8 190/175 -> 151/152 -> 147/162 ms, VGG
#: 268/314 -> 258/228 -> 348/308, 1-D CNN 5.4/6.6 -> 4.5/4.7 -> 6.5/6.0, LeNet-5 15.8/12.5 ->
#: 14.7/12.9 -> 14.3/13.3; the layer benchmark's g1/g2 moved more between runs than between settings.
SMALL_WORK = 1e-3


def _dtype_scale(itemsize: int) -> float:
    """How much longer an operation takes in a dtype of ``itemsize`` bytes than the float32 the cost
    model was fitted in: twice in float64 (half as many values per SIMD product, twice the bytes copied)."""
    return max(1.0, itemsize / 4)


def _one_thread(estimate: float, itemsize: int) -> bool:
    """The one-thread rule, for :func:`_choice` and :func:`is_small` alike: a float32 one-core estimate,
    scaled to the dtype, below :data:`SMALL_WORK`."""
    return estimate * _dtype_scale(itemsize) < SMALL_WORK


@functools.lru_cache(maxsize=1024)
def _small_work(name: str, spec: ConvSpec, op: str, itemsize: int) -> bool:
    return _REGISTRY[name].auto_candidate and _one_thread(costmodel.estimate(name, spec, op, 1), itemsize)


def is_small(alg: Algorithm, spec: ConvSpec, op: str, itemsize: int = 4) -> bool:
    """Whether ``op`` on ``spec`` with ``alg`` in a dtype of ``itemsize`` bytes runs on one thread: its
    estimate, scaled from float32 (:func:`_dtype_scale`), is below :data:`SMALL_WORK`.

    LeNet-5's convolutions take 0.6-1.1 ms estimated in float32 and about twice that in float64: with
    this rule its float64 step (on two threads now) took 24.3 ms against 27.7 before (medians of six
    processes each, the two source trees alternating, 2026-12-02 16:00 UTC, quiet); the 1-D CNN's
    (0.1-0.3 ms, doubled still under 1 ms) stay on one thread, where it ran 9.8 ms against 11.3 when
    :data:`SMALL_WORK` was lowered to put them on two."""
    return _small_work(alg.name, spec, op, itemsize)


#: What a result with NaN or inf is recomputed with: exact IEEE propagation (every term
#: of the sum, the zeros of the padding included, as PyTorch computes it).
SAFE = "gemm"


def all_finite(a: np.ndarray) -> bool:
    """Whether ``a`` holds no NaN or inf: one summation pass (an overflowing sum says no, safely)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(a.sum(dtype=a.dtype)))


def _compute(alg: Algorithm, op: str, spec: ConvSpec, a: np.ndarray, b: np.ndarray, bias=None) -> np.ndarray:
    fused = bias is not None and op in alg.bias_ops
    extra = {"bias": bias} if fused else {}
    if spec.padding_mode == "zeros" or alg.handles_padding_modes:
        result = getattr(alg, op)(a, b, spec, **extra)
    elif op == "forward":  # non-zero padding mode on an algorithm that only does zero padding: pad explicitly
        xp, inner = _padding.pad(a, spec)
        result = alg.forward(xp, b, inner, **extra)
    elif op == "grad_weight":
        xp, inner = _padding.pad(a, spec)
        result = alg.grad_weight(xp, b, inner)
    else:
        result = _padding.fold(alg.grad_input(a, b, _padding.padded_spec(spec)), spec)
        fused = False
    if bias is not None and not fused:
        result += bias.reshape((1, -1) + (1,) * spec.ndim)
    return result
