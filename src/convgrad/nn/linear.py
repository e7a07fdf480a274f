"""``Linear``: ``y = x W^T + b``, as ``torch.nn.Linear``."""

from __future__ import annotations

import numpy as np

from .. import parallel
from ..dtypes import as_real_array
from .conv import _channels
from .init import default_bound, resolve_dtype, resolve_rng, uniform
from .module import Module, format_args
from .parameter import Parameter

__all__ = ["Linear"]


class Linear(Module):
    """Fully connected layer: input ``(*, in_features)`` -> output ``(*, out_features)``.

    Weight ``(out_features, in_features)`` and bias ``(out_features,)``, initialised as in
    PyTorch (``U(-1/sqrt(in_features), 1/sqrt(in_features))``).

    Notes
    -----
    With the leading dims flattened into rows (``X``: ``(M, in)``, ``dY``: ``(M, out)``)::

        Y  = X W^T + b
        dX = dY W          dW += dY^T X          db += sum over rows of dY
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, dtype=None, rng=None):
        super().__init__()
        self.in_features = _channels(in_features, "Linear", "in_features")
        self.out_features = _channels(out_features, "Linear", "out_features")
        if not isinstance(bias, bool):
            raise TypeError(f"Linear: bias must be True or False, got {bias!r}")
        dt = resolve_dtype(dtype, "Linear")
        self.weight = Parameter(np.zeros((self.out_features, self.in_features), dtype=dt))
        self.bias = Parameter(np.zeros(self.out_features, dtype=dt)) if bias else None
        self.reset_parameters(rng)

    def reset_parameters(self, rng=None) -> None:
        """PyTorch's default initialisation: ``U(-1/sqrt(in_features), 1/sqrt(in_features))``."""
        gen = resolve_rng(rng, "Linear.reset_parameters")
        bound = default_bound(self.weight.shape)
        self.weight.value[...] = uniform(self.weight.shape, bound, gen, self.weight.dtype)
        if self.bias is not None:
            self.bias.value[...] = uniform(self.bias.shape, bound, gen, self.bias.dtype)

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = as_real_array(x, "Linear", "input")
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ValueError(f"Linear: input must have shape (*, {self.in_features}), got shape {x.shape}")
        # convgrad's workers, not NumPy's BLAS threads (they would spin on into the next layer: parallel.matmul)
        y = parallel.matmul(x.reshape(-1, self.in_features), self.weight.value.T).reshape(*x.shape[:-1], self.out_features)
        if self.bias is not None:
            if y.dtype == np.result_type(y, self.bias.value):
                y += self.bias.value  # y is a fresh array
            else:
                y = y + self.bias.value
        self._remember(x)
        return y

    def backward(self, grad_output: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        (x,) = self._recall()
        dy = as_real_array(grad_output, "Linear.backward", "grad_output")
        expected = (*x.shape[:-1], self.out_features)
        if dy.shape != expected:
            raise ValueError(f"Linear.backward: grad_output must have shape {expected} (the output's), got {dy.shape}")
        dy2 = dy.reshape(-1, self.out_features)  # (M, out)
        if self.weight.requires_grad:
            self.weight.accumulate(parallel.matmul(dy2.T, x.reshape(-1, self.in_features)))  # (out, M) @ (M, in)
        if self.bias is not None and self.bias.requires_grad:
            self.bias.accumulate(dy2.sum(axis=0))
        if not input_grad:
            return None
        return parallel.matmul(dy2, self.weight.value).reshape(*dy.shape[:-1], self.in_features)  # (M, in)

    def extra_repr(self) -> str:
        return format_args(
            (self.in_features, self.out_features),
            [("bias", self.bias is not None, True), ("dtype", self.weight.dtype, np.dtype(np.float32))],
        )
