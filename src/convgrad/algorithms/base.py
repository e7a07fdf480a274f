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
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ..spec import ConvSpec

OPERATIONS = ("forward", "grad_input", "grad_weight")


class Algorithm:
    """Base class: subclasses set ``name`` and implement the three operations."""

    name: ClassVar[str] = ""
    #: One line for ``available_algorithms`` listings and docs.
    summary: ClassVar[str] = ""
    #: Whether the algorithm implements reflect/replicate/circular padding itself.
    handles_padding_modes: ClassVar[bool] = False
    #: Operations that add a per-channel bias themselves while writing their result (``bias=``
    #: keyword): one pass over the output less than adding it afterwards, 4-17 % of a forward.
    bias_ops: ClassVar[frozenset] = frozenset()

    def unsupported(self, spec: ConvSpec, op: str) -> str | None:
        """Why this algorithm cannot compute ``op`` for ``spec``, or ``None`` if it can."""
        return None

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
