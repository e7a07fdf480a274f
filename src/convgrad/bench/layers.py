"""The ten benchmark layers of issue 3: real layer shapes from image, sequence and volume models.

float32, channels first, with bias. Each layer is one convolution; the benchmark times its
forward pass, its full backward pass (gradients of input, weight and bias) and both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..spec import ConvSpec, conv_spec

__all__ = ["Layer", "LAYERS", "layer"]


@dataclass(frozen=True)
class Layer:
    """One benchmark convolution; stride, padding and dilation as PyTorch's ``convNd`` takes them."""

    name: str
    description: str
    batch: int
    in_channels: int
    out_channels: int
    size: tuple[int, ...]
    kernel: tuple[int, ...]
    stride: Any = 1
    padding: Any = 0
    dilation: Any = 1
    groups: int = 1

    @property
    def ndim(self) -> int:
        return len(self.kernel)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.batch, self.in_channels, *self.size)

    @property
    def weight_shape(self) -> tuple[int, ...]:
        return (self.out_channels, self.in_channels // self.groups, *self.kernel)

    def spec(self) -> ConvSpec:
        return conv_spec(self.input_shape, self.weight_shape, **self.kwargs(), func="bench")

    @property
    def output_size(self) -> tuple[int, ...]:
        return self.spec().output_size

    @property
    def output_shape(self) -> tuple[int, ...]:
        return (self.batch, self.out_channels, *self.output_size)

    def kwargs(self) -> dict:
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation, groups=self.groups)

    @property
    def forward_flops(self) -> int:
        """Multiply-adds of the forward pass, counted as 2 flops: ``2 N C_out P C_in/G K``."""
        return 2 * self.batch * self.out_channels * math.prod(self.output_size) * (
            self.in_channels // self.groups
        ) * math.prod(self.kernel)

    def flops(self, what: str) -> int:
        """Flops of ``forward``, ``backward`` (input and weight gradients: twice the forward) or ``both``."""
        return {"forward": 1, "backward": 2, "both": 3}[what] * self.forward_flops


def _layers() -> dict[str, Layer]:
    items = [
        Layer("a", "3x3, stride 1, pad 1, N=32, 64->64, 56x56", 32, 64, 64, (56, 56), (3, 3), padding=1),
        Layer("b", "3x3, stride 2, pad 1, N=32, 128->256, 28x28", 32, 128, 256, (28, 28), (3, 3), stride=2, padding=1),
        Layer("c", "1x1, N=32, 256->64, 56x56", 32, 256, 64, (56, 56), (1, 1)),
        Layer("d", "7x7, stride 2, pad 3, N=16, 3->64, 224x224", 16, 3, 64, (224, 224), (7, 7), stride=2, padding=3),
        Layer("e", "depthwise 3x3, pad 1, N=32, C=128, 56x56", 32, 128, 128, (56, 56), (3, 3), padding=1, groups=128),
        Layer("f", "3x3, dilation 2, pad 2, N=16, 64->64, 64x64", 16, 64, 64, (64, 64), (3, 3), padding=2, dilation=2),
        Layer("g1", "5x5, pad 2, N=64, 1->6, 28x28", 64, 1, 6, (28, 28), (5, 5), padding=2),
        Layer("g2", "5x5, N=64, 6->16, 14x14", 64, 6, 16, (14, 14), (5, 5)),
        Layer("h", "conv1d, k=9, pad 4, N=16, 64->64, L=16000", 16, 64, 64, (16000,), (9,), padding=4),
        Layer("i", "conv3d 3x3x3, pad 1, N=4, 16->32, 32^3", 4, 16, 32, (32, 32, 32), (3, 3, 3), padding=1),
    ]
    return {item.name: item for item in items}


LAYERS = _layers()


def layer(name: str) -> Layer:
    """The benchmark layer called ``name`` (``ValueError`` listing the names otherwise)."""
    try:
        return LAYERS[name]
    except KeyError:
        raise ValueError(f"unknown benchmark layer {name!r}; the layers are {', '.join(LAYERS)}") from None
