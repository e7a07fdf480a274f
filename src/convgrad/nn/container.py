"""``Sequential``: layers applied in order; backward runs them in reverse."""

from __future__ import annotations

from typing import Iterator

import numpy as np

from . import fusion
from .module import Module

__all__ = ["Sequential"]


class Sequential(Module):
    """``Sequential(l0, l1, ...)``: ``forward`` is ``l_n(...l1(l0(x)))``, ``backward`` the chain rule in reverse.

    The layers are named ``"0"``, ``"1"``, ... in ``state_dict`` (PyTorch's keys for
    ``torch.nn.Sequential``). Indexing, ``len`` and iteration work as on a list.
    """

    def __init__(self, *layers: Module):
        super().__init__()
        self._layers: list[Module] = []
        for layer in layers:
            self.append(layer)

    def append(self, layer: Module) -> "Sequential":
        if not isinstance(layer, Module):
            raise TypeError(f"Sequential: every layer must be a convgrad.nn.Module, got {type(layer).__name__}")
        self._layers.append(layer)
        return self

    def named_children(self) -> Iterator[tuple[str, Module]]:
        for i, layer in enumerate(self._layers):
            yield str(i), layer

    def __len__(self) -> int:
        return len(self._layers)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._layers)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return Sequential(*self._layers[index])
        return self._layers[index]

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Every layer in order; a ``BatchNorm2d`` or max pooling with a ``ReLU``, and a ``ReLU`` on a convolution's or
        ``Linear``'s output, run fused (:mod:`.fusion`)."""
        layers, i = self._layers, 0
        while i < len(layers):
            if i + 1 < len(layers) and fusion.fusable(layers[i], layers[i + 1]):
                kept = i + 2 < len(layers) and fusion.keeps_input(layers[i + 2])
                x = fusion.forward_bn_relu(layers[i], layers[i + 1], x, output_kept=kept)
                i += 2
            elif i + 1 < len(layers) and fusion.relu_pool_fusable(layers[i], layers[i + 1]):
                x = fusion.forward_relu_pool(layers[i], layers[i + 1], x)
                i += 2
            elif fusion.relu_in_place(layers, i):
                x = fusion.forward_relu_in_place(layers[i], x)
                i += 1
            else:
                x = layers[i].forward(x)
                i += 1
        return x

    def backward(self, grad_output: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        """Back through every layer, last to first; the first one is told whether ``dL/dx`` is wanted.

        Each layer's saved arrays are released once its backward is done (peak memory: one
        forward's activations, shrinking as the backward pass proceeds).
        """
        grad, layers, i = grad_output, self._layers, len(self._layers) - 1
        owned = False  # whether grad is an array of this pass's own, which a layer may write over (not the caller's)
        while i >= 0:
            if i > 0 and fusion.fused_with(layers[i], layers[i - 1]):  # a fused BatchNorm2d + ReLU: one backward
                grad = layers[i - 1]._backward(grad, relu=True, input_grad=input_grad or i > 1)
                layers[i]._release()
                i -= 1
            elif i > 0 and fusion.relu_pool_fused(layers[i], layers[i - 1]):  # a ReLU then a max pool, run as one
                grad = fusion.backward_relu_pool(layers[i], grad, input_grad=input_grad or i > 1)
                layers[i]._release()
                i -= 1
            elif owned and fusion.overwrites_gradient(layers[i]):
                grad = layers[i]._backward(grad, input_grad=input_grad or i > 0, overwrite=True)
            else:
                grad = layers[i].backward(grad, input_grad=input_grad or i > 0)
            owned = fusion.fresh_gradient(layers[i], owned)
            layers[i]._release()
            i -= 1
        return grad
