"""``Parameter``: a trainable array and the gradient accumulated into it."""

from __future__ import annotations

import numpy as np

__all__ = ["Parameter"]


class Parameter:
    """A trainable array (``value``) with its gradient (``grad``, same shape and dtype).

    Layers *add* into ``grad`` in their ``backward`` (several backward passes accumulate, as in
    PyTorch); :meth:`~convgrad.nn.Module.zero_grad` or an optimizer's ``zero_grad`` resets it.
    Optimizers update ``value`` in place, so a layer and its optimizer always see the same array.

    Parameters
    ----------
    value : array_like
        Copied (a parameter never aliases the caller's array). Must be a real floating array.
    requires_grad : bool
        ``False`` freezes the parameter: layers skip computing its gradient and optimizers skip it.
    """

    __slots__ = ("value", "grad", "requires_grad")

    def __init__(self, value, requires_grad: bool = True):
        arr = np.array(value, copy=True)
        if arr.dtype.kind != "f":
            raise TypeError(f"Parameter: value must be a floating-point array, got dtype {arr.dtype}")
        if not isinstance(requires_grad, bool):
            raise TypeError(f"Parameter: requires_grad must be True or False, got {requires_grad!r}")
        self.value: np.ndarray = arr
        self.grad: np.ndarray = np.zeros_like(arr)
        self.requires_grad = requires_grad

    @property
    def shape(self) -> tuple[int, ...]:
        return self.value.shape

    @property
    def dtype(self) -> np.dtype:
        return self.value.dtype

    def zero_grad(self) -> None:
        """Set the gradient to zero, in place."""
        self.grad.fill(0)

    def accumulate(self, grad: np.ndarray) -> None:
        """``grad += g``: add one backward pass's contribution (cast to the parameter's dtype)."""
        if grad.shape != self.value.shape:  # an internal error, not a user one
            raise RuntimeError(f"gradient of shape {grad.shape} for a parameter of shape {self.value.shape}")
        self.grad += grad

    def astype(self, dtype) -> None:
        """Convert value and gradient to ``dtype``, in place of the arrays (the object stays the same)."""
        self.value = self.value.astype(dtype)
        self.grad = self.grad.astype(dtype)

    def __repr__(self) -> str:
        frozen = "" if self.requires_grad else ", requires_grad=False"
        return f"Parameter(shape={self.value.shape}, dtype={self.value.dtype}{frozen})"
