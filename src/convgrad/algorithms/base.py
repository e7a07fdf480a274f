"""The small interface every convolution algorithm implements.

An algorithm computes three operations of one :class:`~convgrad.spec.ConvSpec`, on batched
arrays that the API has already validated and cast to the computation dtype (float32 or
float64)::

    forward(x, w, spec)       x: spec.input_shape,  w: spec.weight_shape -> y:  spec.output_shape
    grad_input(dy, w, spec)   dy: spec.output_shape                      -> dx: spec.input_shape
    grad_weight(x, dy, spec)                                             -> dw: spec.weight_shape

No bias: the API adds it and sums its gradient. The transposed convolution needs nothing more:
its forward is ``grad_input``, its input-gradient is ``forward`` and its weight-gradient is
``grad_weight`` with the roles of x and dy exchanged (see :func:`convgrad.spec.conv_transpose_spec`).

Contract: inputs are never written to; results are fresh arrays (never views of the inputs) of
the inputs' dtype. NaN and inf propagate as IEEE arithmetic says, into the results that read
them -- or the algorithm says it cannot promise that (:meth:`Algorithm.spreads_nonfinite`).
An algorithm with ``handles_padding_modes = False`` only ever sees
``spec.padding_mode == "zeros"``; the dispatcher pads explicitly and folds the gradient back
for the other modes.

An algorithm is the whole unit of extension: its module declares, next to the three
operations, everything the rest of convgrad needs to know about it -- what it supports
(:meth:`Algorithm.unsupported`, with a reason), whether ``auto`` may pick it (``auto_candidate``),
the work it does for the cost model (:meth:`Algorithm.work`, weighed by the coefficients named
``elem_coefficient`` and ``name`` in :mod:`.costmodel`), the scratch it needs beyond the
chunked workspace (:meth:`Algorithm.scratch_bytes`), and a few configurations in its regime
(:meth:`Algorithm.examples`) on which the tests check it against ``direct`` -- and ends with
``register(TheAlgorithm())`` (:mod:`.registry`). See ``docs/architecture.md``.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ..spec import ConvSpec
from .work import Work

OPERATIONS = ("forward", "grad_input", "grad_weight")


class Algorithm:
    """Base class: subclasses set ``name`` and implement the three operations."""

    name: ClassVar[str] = ""
    #: Whether ``auto`` and ``measure`` may pick it (then :meth:`work` must be implemented and
    #: :mod:`.costmodel` must hold its coefficients). ``direct``, the slow reference, may not.
    auto_candidate: ClassVar[bool] = True
    #: The :data:`.costmodel.COEFFICIENTS` entry weighing :attr:`Work.elem` (default: ``name``).
    elem_coefficient: ClassVar[str] = ""
    #: Whether its products multiply matrices of a group's channels through BLAS. With one input
    #: and one output channel per group (depthwise) they are 1x1 matrices -- scaled copies through
    #: BLAS, which the cost model's efficiency curve does not reach (layer e, forward: winograd
    #: 330 ms, depthwise 27 ms) -- so ``auto`` leaves such layers to the others.
    channel_products: ClassVar[bool] = True
    #: ``auto``'s pick when no candidate is left (one algorithm sets it; it must support everything).
    fallback: ClassVar[bool] = False
    #: Whether the algorithm implements reflect/replicate/circular padding itself.
    handles_padding_modes: ClassVar[bool] = False
    #: Operations that add a per-channel bias themselves while writing their result (``bias=``
    #: keyword): one pass over the output less than adding it afterwards, 4-17 % of a forward.
    bias_ops: ClassVar[frozenset] = frozenset()
    #: Whether it is written for channels-last operands (``(N, C, *spatial)`` views of ``(N, *spatial, C)``
    #: arrays, results the same kind of view): :mod:`convgrad.native_last` gives it the channels-last calls
    #: where :meth:`prefers_channels_last` says so. Such an algorithm sets ``auto_candidate = False``.
    channels_last: ClassVar[bool] = False

    def prefers_channels_last(self, spec: ConvSpec, op: str, itemsize: int = 4) -> bool:
        """Whether a channels-last call of ``op`` on ``spec`` is faster here than transposed into the others.

        ``itemsize``: the compute dtype's (4 or 8), for rules that compare with ``auto``'s channels-first
        pick (:func:`convgrad.algorithms.choose`), which depends on it."""
        return False

    def unsupported(self, spec: ConvSpec, op: str) -> str | None:
        """Why this algorithm cannot compute ``op`` for ``spec``, or ``None`` if it can."""
        return None

    def work(self, spec: ConvSpec, op: str) -> Work:
        """The work ``op`` on ``spec`` costs (BLAS flops, elementwise values, calls, ...), for the cost model."""
        raise NotImplementedError(f"algorithm {self.name!r} declares no work for the cost model")

    def scratch_bytes(self, spec: ConvSpec, itemsize: int = 4) -> int:
        """Scratch bytes it needs at once that do not shrink with the workspace limit (0: it chunks the batch)."""
        return 0

    def examples(self) -> tuple[ConvSpec, ...]:
        """A few configurations in the algorithm's regime (supported for every operation), for the tests."""
        return ()

    def spreads_nonfinite(self, op: str) -> bool:
        """Whether a NaN or inf in an operand can reach results of ``op`` that do not read it.

        True for algorithms that mix values across positions (Winograd tiles, FFT) or multiply
        the zeros of a padded margin by operand values (``0 * inf = nan``). The dispatcher then
        checks the result and, if it holds a NaN or inf, recomputes it with an algorithm that
        puts non-finite values exactly where a direct sum would (see :func:`convgrad.algorithms.run`).
        """
        return False

    def forward(self, x: np.ndarray, w: np.ndarray, spec: ConvSpec, bias: np.ndarray | None = None) -> np.ndarray:
        raise NotImplementedError

    def grad_input(self, dy: np.ndarray, w: np.ndarray, spec: ConvSpec) -> np.ndarray:
        raise NotImplementedError

    def grad_weight(self, x: np.ndarray, dy: np.ndarray, spec: ConvSpec) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<convgrad algorithm {self.name!r}>"
