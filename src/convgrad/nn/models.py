"""Ready-made networks: the LeNet-style CNN that ``convgrad train`` trains."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .activation import ReLU
from .batchnorm import BatchNorm2d
from .container import Sequential
from .conv import Conv2d
from .dropout import Dropout
from .flatten import Flatten
from .init import resolve_rng
from .linear import Linear
from .pooling import MaxPool2d

__all__ = ["LeNetConfig", "lenet", "count_parameters"]


@dataclass(frozen=True)
class LeNetConfig:
    """The shape of a :func:`lenet` network (saved with its weights, so ``predict`` can rebuild it)."""

    image_size: tuple[int, int] = (8, 8)
    num_classes: int = 10
    channels: tuple[int, int] = (16, 32)
    hidden: int = 128
    dropout: float = 0.3

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "LeNetConfig":
        return cls(image_size=tuple(d["image_size"]), num_classes=int(d["num_classes"]), channels=tuple(d["channels"]),
                   hidden=int(d["hidden"]), dropout=float(d["dropout"]))


def lenet(config: LeNetConfig = LeNetConfig(), rng=None) -> Sequential:
    """A LeNet-style CNN for ``(N, 1, H, W)`` images::

        [Conv2d 3x3 pad 1 -> BatchNorm2d -> ReLU -> MaxPool2d 2] x 2 -> Flatten
        -> Linear(C2 * (H//4) * (W//4), hidden) -> ReLU -> Dropout -> Linear(hidden, classes)

    For the 8x8 digits with the default widths that is 16 and 32 channels, a 128 -> 128 -> 10
    classifier, and 22.7k parameters. ``rng`` (Generator, int seed or None) draws the initial
    weights and the dropout masks.
    """
    gen = resolve_rng(rng, "lenet")
    h, w = config.image_size
    if h < 4 or w < 4:
        raise ValueError(f"lenet: images must be at least 4x4 (two 2x2 poolings), got {h}x{w}")
    c1, c2 = config.channels
    return Sequential(
        Conv2d(1, c1, 3, padding=1, rng=gen),
        BatchNorm2d(c1),
        ReLU(),
        MaxPool2d(2),
        Conv2d(c1, c2, 3, padding=1, rng=gen),
        BatchNorm2d(c2),
        ReLU(),
        MaxPool2d(2),
        Flatten(),
        Linear(c2 * (h // 4) * (w // 4), config.hidden, rng=gen),
        ReLU(),
        Dropout(config.dropout, rng=gen),
        Linear(config.hidden, config.num_classes, rng=gen),
    )


def count_parameters(model) -> int:
    return int(sum(np.prod(p.shape) for p in model.parameters()))
