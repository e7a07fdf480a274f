"""Ready-made networks ``convgrad train`` trains: a LeNet-style CNN for images, a 1-D CNN for signals."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .activation import ReLU
from .batchnorm import BatchNorm2d
from .container import Sequential
from .conv import Conv1d, Conv2d
from .dropout import Dropout
from .flatten import Flatten
from .init import resolve_rng
from .linear import Linear
from .pooling import MaxPool2d

__all__ = ["LeNetConfig", "lenet", "CNN1dConfig", "cnn1d", "config_from_dict", "build_model", "count_parameters"]


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


@dataclass(frozen=True)
class CNN1dConfig:
    """The shape of a :func:`cnn1d` network (saved with its weights as ``{"kind": "cnn1d", ...}``)."""

    length: int = 40
    num_classes: int = 10
    channels: int = 25

    def to_dict(self) -> dict:
        return {"kind": "cnn1d", **asdict(self)}

    @classmethod
    def from_dict(cls, d: dict) -> "CNN1dConfig":
        return cls(length=int(d["length"]), num_classes=int(d["num_classes"]), channels=int(d["channels"]))


def _conv1d_length(n: int, k: int, stride: int, pad: int) -> int:
    return (n + 2 * pad - k) // stride + 1


def cnn1d(config: CNN1dConfig = CNN1dConfig(), rng=None) -> Sequential:
    """The small 1-D CNN of the MNIST-1D paper (Greydanus, 2020: ``ConvBase``) for ``(N, 1, L)`` signals::

        Conv1d(1, C, 5, stride 2, pad 1) -> ReLU -> [Conv1d(C, C, 3, stride 2, pad 1) -> ReLU] x 2
        -> Flatten -> Linear(C * L3, classes)

    Each convolution gives ``L_out = floor((L + 2 - k) / 2) + 1``: for MNIST-1D's 40 samples
    40 -> 19 -> 10 -> 5, so with the default 25 channels the classifier reads 125 features and
    the network has 5,210 parameters (as the paper's). ``rng`` (Generator, int seed or None) draws the weights.

    >>> import numpy as np
    >>> net = cnn1d(CNN1dConfig(length=40, num_classes=10), rng=0)
    >>> net(np.zeros((3, 1, 40), dtype=np.float32)).shape
    (3, 10)
    >>> count_parameters(net)
    5210
    """
    gen = resolve_rng(rng, "cnn1d")
    c, n = config.channels, config.length
    for k in (5, 3, 3):
        n = _conv1d_length(n, k, 2, 1)
    if n < 1:
        raise ValueError(f"cnn1d: signals must be at least 3 samples long (three stride-2 convolutions), got {config.length}")
    return Sequential(
        Conv1d(1, c, 5, stride=2, padding=1, rng=gen),
        ReLU(),
        Conv1d(c, c, 3, stride=2, padding=1, rng=gen),
        ReLU(),
        Conv1d(c, c, 3, stride=2, padding=1, rng=gen),
        ReLU(),
        Flatten(),
        Linear(c * n, config.num_classes, rng=gen),
    )


def config_from_dict(d: dict):
    """The :class:`LeNetConfig` or :class:`CNN1dConfig` saved as ``d`` (no ``kind``: a LeNet, as saved before)."""
    kind = d.get("kind", "lenet")
    if kind == "cnn1d":
        return CNN1dConfig.from_dict(d)
    if kind == "lenet":
        return LeNetConfig.from_dict(d)
    raise ValueError(f"unknown network kind {kind!r} (expected 'lenet' or 'cnn1d')")


def build_model(config, rng=None) -> Sequential:
    """The network of ``config`` (:class:`LeNetConfig` or :class:`CNN1dConfig`), weights drawn from ``rng``."""
    return cnn1d(config, rng) if isinstance(config, CNN1dConfig) else lenet(config, rng)


def count_parameters(model) -> int:
    return int(sum(np.prod(p.shape) for p in model.parameters()))
