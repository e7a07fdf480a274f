"""Losses that return the value and its gradient: ``CrossEntropyLoss`` and ``MSELoss``.

``value, grad = loss(prediction, target)``: ``value`` is the scalar loss (a Python float) and
``grad = dL/dprediction`` has the prediction's shape and dtype -- the ``grad_output`` that
starts a network's backward pass.
"""

from __future__ import annotations

import numbers

import numpy as np

from ..dtypes import as_real_array
from .module import format_args

__all__ = ["CrossEntropyLoss", "MSELoss"]

_REDUCTIONS = ("mean", "sum")


def _reduction(value, func: str) -> str:
    if value not in _REDUCTIONS:
        raise ValueError(
            f"{func}: reduction must be one of {_REDUCTIONS} (a loss that returns its gradient needs a scalar), got {value!r}"
        )
    return value


def log_softmax(z: np.ndarray, axis: int = 1) -> np.ndarray:
    """``z - logsumexp(z)`` along ``axis``, computed with the maximum subtracted first (no overflow)."""
    shifted = z - z.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


class CrossEntropyLoss:
    """Softmax cross-entropy from logits, as ``torch.nn.CrossEntropyLoss``.

    Parameters
    ----------
    weight : array_like of shape (C,), optional
        A weight per class.
    ignore_index : int
        Targets equal to it contribute nothing (class-index targets only).
    reduction : {"mean", "sum"}
    label_smoothing : float in [0, 1]

    Call with ``logits`` of shape ``(N, C)``, ``(N, C, d1, ...)`` or ``(C,)`` and ``target``
    either integer class indices of shape ``(N,)``/``(N, d1, ...)``/``()`` or class
    probabilities of the logits' shape.

    Notes
    -----
    With ``p = softmax(z)`` over classes, ``eps`` the smoothing and ``w`` the class weights, each
    sample's target distribution is ``q = (1 - eps) * onehot(t) + eps / C`` (or the given
    probabilities, smoothed the same way), and::

        L_i  = -sum_c w_c q_ic log p_ic
        dL_i/dz_i = (sum_c w_c q_ic) * p_i - w * q_i

    ``mean`` divides the sum by ``sum_i w_{t_i}`` over the non-ignored samples for class
    indices (by the number of samples for probabilities), exactly as PyTorch does.
    """

    def __init__(self, weight=None, ignore_index: int = -100, reduction: str = "mean", label_smoothing: float = 0.0):
        self.weight = None if weight is None else as_real_array(weight, "CrossEntropyLoss", "weight").copy()
        if self.weight is not None and self.weight.ndim != 1:
            raise ValueError(f"CrossEntropyLoss: weight must be 1-d (one per class), got shape {self.weight.shape}")
        if isinstance(ignore_index, bool) or not isinstance(ignore_index, (int, np.integer)):
            raise TypeError(f"CrossEntropyLoss: ignore_index must be an int, got {ignore_index!r}")
        self.ignore_index = int(ignore_index)
        self.reduction = _reduction(reduction, "CrossEntropyLoss")
        if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, numbers.Real) or not 0 <= label_smoothing <= 1:
            raise ValueError(f"CrossEntropyLoss: label_smoothing must be a number in [0, 1], got {label_smoothing!r}")
        self.label_smoothing = float(label_smoothing)

    def __call__(self, logits, target) -> tuple[float, np.ndarray]:
        z = as_real_array(logits, "CrossEntropyLoss", "input")
        t = np.asarray(target)
        unbatched = z.ndim == 1
        if unbatched:
            z, t = z[None], t[None]
        if z.ndim < 2 or z.shape[1] == 0:
            raise ValueError(f"CrossEntropyLoss: input must have shape (N, C, ...) or (C,) with C >= 1, got {np.shape(logits)}")
        classes = z.shape[1]
        if self.weight is not None and self.weight.shape != (classes,):
            raise ValueError(f"CrossEntropyLoss: weight must have shape ({classes},) for {classes} classes, got {self.weight.shape}")
        w = np.ones(classes, dtype=z.dtype) if self.weight is None else self.weight.astype(z.dtype)
        wb = w.reshape((1, classes) + (1,) * (z.ndim - 2))  # broadcast over (N, C, *d)
        logp = log_softmax(z)
        eps = self.label_smoothing
        if t.dtype.kind == "f" and t.shape == z.shape:  # class probabilities
            q = t.astype(z.dtype) * (1 - eps) + eps / classes
            weighted = wb * q  # (N, C, *d)
            norm = float(z.shape[0] * np.prod(z.shape[2:])) if self.reduction == "mean" else 1.0
        elif t.dtype.kind in "iu":
            expected = (z.shape[0],) + z.shape[2:]
            if t.shape != expected:
                raise ValueError(
                    f"CrossEntropyLoss: target must hold class indices of shape {expected[1:] if unbatched else expected}"
                    f" or probabilities of the input's shape, got shape {np.shape(target)}"
                )
            valid = t != self.ignore_index
            bad = valid & ((t < 0) | (t >= classes))
            if bad.any():
                raise ValueError(f"CrossEntropyLoss: target holds class {int(t[bad].flat[0])}, outside [0, {classes})")
            safe = np.where(valid, t, 0)
            onehot = (np.arange(classes).reshape((1, classes) + (1,) * (z.ndim - 2)) == safe[:, None]).astype(z.dtype)
            q = (onehot * (1 - eps) + eps / classes) * valid[:, None]
            weighted = wb * q
            picked = w[safe] * valid  # w_{t_i}, 0 where ignored
            norm = float(picked.sum()) if self.reduction == "mean" else 1.0
        else:
            raise TypeError(
                f"CrossEntropyLoss: target must be integer class indices or float probabilities of the input's shape "
                f"{np.shape(logits)}, got dtype {t.dtype} and shape {t.shape}"
            )
        total = -(weighted * logp).sum()
        p = np.exp(logp)
        grad = (weighted.sum(axis=1, keepdims=True) * p - weighted) / norm
        value = float(total / norm)
        grad = grad.astype(z.dtype, copy=False)
        return value, grad[0] if unbatched else grad

    def __repr__(self) -> str:
        args = format_args((), [("ignore_index", self.ignore_index, -100), ("reduction", self.reduction, "mean"),
                                ("label_smoothing", self.label_smoothing, 0.0)])
        if self.weight is not None:
            args = ", ".join(filter(None, [f"weight={np.array2string(self.weight, separator=', ')}", args]))
        return f"CrossEntropyLoss({args})"


class MSELoss:
    """Mean squared error, as ``torch.nn.MSELoss``: ``L = mean((x - y)^2)`` (or the sum), ``dL/dx = 2 (x - y) / n``."""

    def __init__(self, reduction: str = "mean"):
        self.reduction = _reduction(reduction, "MSELoss")

    def __call__(self, prediction, target) -> tuple[float, np.ndarray]:
        x = as_real_array(prediction, "MSELoss", "input")
        y = as_real_array(target, "MSELoss", "target")
        if x.shape != y.shape:
            raise ValueError(f"MSELoss: target must have the input's shape {x.shape}, got {y.shape}")
        diff = x - y
        n = diff.size if self.reduction == "mean" else 1
        value = float((diff * diff).sum() / n) if diff.size or self.reduction == "sum" else float("nan")
        grad = (2 * diff / max(n, 1)).astype(np.result_type(x, y), copy=False)
        return value, grad

    def __repr__(self) -> str:
        return f"MSELoss({format_args((), [('reduction', self.reduction, 'mean')])})"
