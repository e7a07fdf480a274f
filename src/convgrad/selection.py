"""Which algorithm computes a configuration: the cost model's guess, or a measurement.

``algorithm="auto"`` (the default everywhere) asks the cost model (:mod:`convgrad.algorithms.costmodel`)
-- no time spent, right most of the time. ``algorithm="measure"`` is the explicit alternative,
like cuDNN's benchmark mode: the first call for a configuration times the plausible candidates
on its own operands, keeps the fastest result, and remembers the winner for every later call
with the same configuration, dtype, thread count and workspace limit (for the life of the
process, or until :func:`clear_algorithm_cache`). :func:`choose_algorithm` shows either choice
without computing a convolution of yours.
"""

from __future__ import annotations

import numpy as np

from . import algorithms
from .spec import conv_spec

__all__ = ["choose_algorithm", "clear_algorithm_cache", "OPERATIONS"]

#: The three operations of a convolution, as the algorithms name them.
OPERATIONS = ("forward", "grad_input", "grad_weight")


def choose_algorithm(
    input_shape,
    weight_shape,
    stride=1,
    padding=0,
    dilation=1,
    groups=1,
    padding_mode="zeros",
    *,
    dtype=np.float32,
    measure: bool = False,
) -> dict[str, str]:
    """The algorithm used for each operation of a convolution: ``{"forward": ..., "grad_input": ..., "grad_weight": ...}``.

    Parameters
    ----------
    input_shape, weight_shape : tuple of int
        ``(N, C_in, *spatial)`` and ``(C_out, C_in/groups, *kernel)``, as for :func:`convgrad.conv`.
    stride, padding, dilation, groups, padding_mode
        As for :func:`convgrad.conv`.
    dtype : float32 or float64
        The computation dtype (float16 is computed in float32).
    measure : bool
        ``False``: what ``algorithm="auto"`` picks (the cost model). ``True``: what
        ``algorithm="measure"`` picks -- timing the candidates now on random operands of these
        shapes if this configuration has not been measured yet (and remembering the result).

    Notes
    -----
    For a transposed convolution, its forward pass is the ``grad_input`` of the convolution
    :func:`convgrad.conv_transpose_spec` describes, and its input gradient that convolution's
    ``forward``.
    """
    spec = conv_spec(input_shape, weight_shape, stride, padding, dilation, groups, padding_mode, func="choose_algorithm")
    dtype = np.dtype(dtype)
    if dtype == np.float16:
        dtype = np.dtype(np.float32)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"choose_algorithm: dtype must be float32 or float64 (or float16), got {dtype}")
    if not isinstance(measure, bool):
        raise TypeError(f"choose_algorithm: measure must be True or False, got {measure!r}")
    if not measure:
        return {op: algorithms.choose(spec, op, dtype.itemsize).name for op in OPERATIONS}
    rng = np.random.default_rng(0)
    x = rng.standard_normal(spec.input_shape).astype(dtype)
    w = rng.standard_normal(spec.weight_shape).astype(dtype)
    dy = rng.standard_normal(spec.output_shape).astype(dtype)
    operands = {"forward": (x, w), "grad_input": (dy, w), "grad_weight": (x, dy)}
    choice = {}
    for op in OPERATIONS:
        algorithms.run(op, spec, *operands[op], "measure")
        choice[op] = algorithms.resolve("measure", spec, op, dtype.itemsize).name
    return choice


def clear_algorithm_cache() -> None:
    """Forget every algorithm choice convgrad keeps for the life of the process.

    What ``algorithm="measure"`` has measured (the next call of each configuration measures
    again) and the picks of ``algorithm="auto"`` (cached per configuration, thread count and
    workspace limit, since an estimate costs as much as a small convolution's bookkeeping).
    Scratch memory is a separate cache: :func:`convgrad.workspace.clear`.
    """
    algorithms.clear_caches()
