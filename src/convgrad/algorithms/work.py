"""What an algorithm's operation costs, counted from its shapes: the terms of the cost model.

Each algorithm counts its own :class:`Work` (:meth:`convgrad.algorithms.base.Algorithm.work`);
:mod:`.costmodel` weighs the terms with fitted coefficients. :func:`efficiency` is the one
shared ingredient: how close a BLAS product of given dimensions comes to the peak.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Work", "efficiency"]


@dataclass(frozen=True)
class Work:
    """The work of one operation, by kind (each term has its own coefficient in :mod:`.costmodel`)."""

    gemm: float  # BLAS flops / efficiency
    elem: float  # values through NumPy elementwise passes
    calls: float  # Python-level calls
    small: float = 0.0  # flops of NumPy's stacked products of tiny complex matrices (fft)
    runs: float = 0.0  # contiguous runs a strided NumPy copy moves (each costs a loop iteration)

    def __add__(self, other: "Work") -> "Work":
        return Work(self.gemm + other.gemm, self.elem + other.elem, self.calls + other.calls, self.small + other.small,
                    self.runs + other.runs)


def efficiency(k: float, m: float) -> float:
    """Fraction of the BLAS peak for a product with inner dimension ``k`` and smaller outer dimension ``m``.

    Fitted to OpenBLAS's sgemm on cache-sized blocks, ``(m, k) @ (k, ~2 MB)``, one core, which
    measured e.g. 0.17 for k=1, m=6; 0.56 for 6 x 16; 0.77 for 16 x 16; 0.94 for 64 x 64. The
    curve is a fit, not a bound: it gives 0.67 for 16 x 16 and slightly above 1 for 64 x 64.

    Examples
    --------
    >>> round(efficiency(1, 6), 2), round(efficiency(16, 16), 2), round(efficiency(64, 64), 2)
    (0.16, 0.67, 1.02)
    """
    return 1.0 / (0.81 + 4.3 / max(k, 1) + 6.7 / max(m, 1))
