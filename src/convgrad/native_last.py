"""Native channels-last computation: which algorithm takes a channels-last call without transposing it.

A channels-last call (``data_format="channels_last"``) reaches the algorithms as transposed views
(:mod:`convgrad.layout`). Most channels-first algorithms then copy across the grain of memory --
the transposes cost more than the convolution on a depthwise layer or a 3-channel stem. An
algorithm written for channels-last operands declares ``channels_last = True`` (and
``auto_candidate = False``, so that ``auto`` never gives it channels-first calls) and
``prefers_channels_last(spec, op, itemsize)``: the configurations where it beats the channels-first pick
plus the transposes (measured). :func:`choose` returns the first registered one that supports
``op`` on ``spec`` and prefers it, or ``None`` (then the call takes the transposed views); the
answer is cached per spec, operation, dtype size, thread count and workspace limit (and the rules
themselves: replacing a ``prefers_channels_last`` asks again).
Only zero padding: the other modes pad channels-first (:mod:`convgrad.padding`).
"""

from __future__ import annotations

import functools

import numpy as np

from . import algorithms, blas, runtime
from .algorithms.base import Algorithm
from .algorithms.registry import REGISTRY
from .spec import ConvSpec

__all__ = ["choose", "choose_all", "run"]


def choose(spec: ConvSpec, op: str, itemsize: int = 4) -> Algorithm | None:
    """The native channels-last algorithm for ``op`` on ``spec`` in a dtype of ``itemsize`` bytes, or ``None``.

    ``itemsize`` matters where a rule compares with ``auto``'s channels-first pick, which depends on it
    (:func:`convgrad.algorithms.choose`: the one-thread rule counts a float64 estimate twice).

    Examples
    --------
    >>> from convgrad.spec import conv_spec
    >>> choose(conv_spec((2, 8, 9, 9), (8, 1, 3, 3), padding=1, groups=8), "forward").name
    'depthwise_last'
    >>> choose(conv_spec((2, 8, 9, 9), (8, 1, 3, 3), padding=1, groups=8, padding_mode="reflect"), "forward") is None
    True
    """
    if spec.padding_mode != "zeros":
        return None
    algs = tuple(alg for alg in REGISTRY.values() if getattr(alg, "channels_last", False))
    rules = tuple(alg.prefers_channels_last for alg in algs)  # (in the key: a rule replaced is a new decision)
    return _choose(spec, op, itemsize, algs, rules, runtime.get_num_threads(), runtime.get_workspace_limit())


@functools.lru_cache(maxsize=1024)
def _choose(spec: ConvSpec, op: str, itemsize: int, algs: tuple, rules: tuple, threads: int,
            limit: int) -> Algorithm | None:
    # cached as auto's picks are (the rules ask auto's choice for the op, ~20 us a call): LeNet's layers
    # g1/g2 take 1.3-3 ms an operation, and a channels-last call asked this for every operation twice
    for alg, prefers in zip(algs, rules):
        if alg.unsupported(spec, op) is None and prefers(spec, op, itemsize):
            return alg
    return None


def choose_all(spec: ConvSpec, ops: tuple[str, ...], itemsize: int = 4) -> dict[str, Algorithm] | None:
    """``{op: algorithm}`` when every op in ``ops`` has a native channels-last algorithm, else ``None``.

    A backward goes native only as a whole: an operation left to the transposed views would read
    the caller's arrays across the grain once more (``layout.Formats.backward_operands`` copies them
    for the channels-first algorithms instead).
    """
    chosen = {op: choose(spec, op, itemsize) for op in ops}
    return None if not chosen or None in chosen.values() else chosen


def run(alg: Algorithm, op: str, spec: ConvSpec, a: np.ndarray, b: np.ndarray, bias=None) -> np.ndarray:
    """``algorithms.run`` with ``alg``, on one thread when ``auto``'s channels-first pick would run on one.

    ``a`` and ``b`` are the ``(N, C, *spatial)`` views of the caller's channels-last arrays (and the
    ``(O, I, *kernel)`` weight); the result is the same kind of view of a C-contiguous channels-last array.
    """
    if runtime.get_num_threads() > 1 and algorithms.is_small(algorithms.choose(spec, op, a.itemsize), spec, op, a.itemsize):
        with runtime.settings(num_threads=1), blas.single_threaded():
            return algorithms.run(op, spec, a, b, alg.name, bias=bias)
    return algorithms.run(op, spec, a, b, alg.name, bias=bias)
