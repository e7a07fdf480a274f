"""``convgrad.nn``: layers with explicit forward and backward passes, losses, optimizers, training.

Every layer is a :class:`Module` with ``forward(x)`` and ``backward(grad_output) -> grad_input``
that adds the parameter gradients into each :class:`Parameter`'s ``grad``. The convolution
layers call convgrad's own :func:`~convgrad.conv` and :func:`~convgrad.conv_backward`.
Constructor arguments, default initialisation, ``state_dict`` names and update rules are
PyTorch's, so a ``torch.nn`` model's weights load into the matching convgrad model and give
the same outputs and gradients.

>>> import numpy as np
>>> from convgrad import nn
>>> layer = nn.Conv2d(1, 4, kernel_size=3, padding=1, rng=0)
>>> y = layer(np.zeros((2, 1, 8, 8), dtype=np.float32))     # (2, 4, 8, 8)
>>> dx = layer.backward(np.ones_like(y))                     # dL/dx; layer.weight.grad now holds dL/dW
"""

from .activation import LeakyReLU, ReLU, Sigmoid, Tanh
from .batchnorm import BatchNorm2d
from .container import Sequential
from .conv import Conv1d, Conv2d, Conv3d, ConvTranspose1d, ConvTranspose2d, ConvTranspose3d
from .dropout import Dropout
from .flatten import Flatten
from .linear import Linear
from .loss import CrossEntropyLoss, MSELoss
from .module import Module
from .optim import SGD, Adam, Optimizer
from .parameter import Parameter
from .pooling import AvgPool1d, AvgPool2d, AvgPool3d, MaxPool1d, MaxPool2d, MaxPool3d
from .residual import AdaptiveAvgPool2d, BasicBlock

__all__ = [
    "Adam",
    "AdaptiveAvgPool2d",
    "AvgPool1d",
    "AvgPool2d",
    "AvgPool3d",
    "BasicBlock",
    "BatchNorm2d",
    "Conv1d",
    "Conv2d",
    "Conv3d",
    "ConvTranspose1d",
    "ConvTranspose2d",
    "ConvTranspose3d",
    "CrossEntropyLoss",
    "Dropout",
    "Flatten",
    "LeakyReLU",
    "Linear",
    "MSELoss",
    "MaxPool1d",
    "MaxPool2d",
    "MaxPool3d",
    "Module",
    "Optimizer",
    "Parameter",
    "ReLU",
    "SGD",
    "Sequential",
    "Sigmoid",
    "Tanh",
]
