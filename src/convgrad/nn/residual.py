"""Residual blocks and global pooling for ResNet-style networks: ``BasicBlock``, ``AdaptiveAvgPool2d``.

A residual block adds its input (or a 1x1 projection of it) to the output of two 3x3
convolutions; its backward pass therefore sends the output gradient down both paths and adds
what comes back::

    main = bn2(conv2(relu(bn1(conv1(x)))))      short = x  or  bn_d(conv_d(x))      y = relu(main + short)
    dz = dy * (y > 0)                           dx = main.backward(dz) + short.backward(dz)
"""

from __future__ import annotations

import numpy as np

from .. import layout
from ..dtypes import as_real_array
from .activation import ReLU
from .batchnorm import BatchNorm2d
from .container import Sequential
from .conv import Conv2d, _channels
from .init import resolve_rng
from . import fusion
from .module import Module, format_args

__all__ = ["BasicBlock", "AdaptiveAvgPool2d"]


def _add_into(own: np.ndarray, other: np.ndarray) -> np.ndarray:
    """``own + other``, written into ``own`` (a fresh array of the caller's) when the dtypes allow."""
    if own.dtype == np.result_type(own, other) and own.flags.writeable and own.shape == other.shape:
        return np.add(own, other, out=own)
    return own + other


class BasicBlock(Module):
    """ResNet's basic block (He et al. 2016), with torchvision's ``BasicBlock`` parameter names.

    Parameters
    ----------
    in_channels, out_channels : int
    stride : int
        Of the first 3x3 convolution (2 halves the map).
    rng : numpy Generator or int, optional
        Initial weights (PyTorch's default initialisation).
    data_format : {"channels_first", "channels_last"} (or "NCHW", "NHWC")
        Passed to every convolution and batch norm of the block.

    The shortcut is the identity when the shape does not change, else a 1x1 convolution with the
    block's stride followed by batch norm (``downsample.0``, ``downsample.1``), as in torchvision.

    Examples
    --------
    >>> import numpy as np
    >>> block = BasicBlock(4, 8, stride=2, rng=0)
    >>> y = block(np.random.default_rng(0).standard_normal((2, 4, 8, 8)))
    >>> y.shape, block.backward(np.ones_like(y)).shape
    ((2, 8, 4, 4), (2, 4, 8, 8))
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, *, dtype=None, rng=None,
                 data_format: str = "channels_first"):
        super().__init__()
        self.data_format = data_format
        layout.layer_channels_last(data_format, "BasicBlock", 2)
        cl = dict(data_format=data_format)
        self.in_channels = _channels(in_channels, "BasicBlock", "in_channels")
        self.out_channels = _channels(out_channels, "BasicBlock", "out_channels")
        if isinstance(stride, bool) or not isinstance(stride, (int, np.integer)) or stride < 1:
            raise ValueError(f"BasicBlock: stride must be a positive integer, got {stride!r}")
        self.stride = int(stride)
        gen = resolve_rng(rng, "BasicBlock")
        self.conv1 = Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False, dtype=dtype, rng=gen,
                            **cl)
        self.bn1 = BatchNorm2d(out_channels, dtype=dtype, **cl)
        self.relu1 = ReLU()
        self.conv2 = Conv2d(out_channels, out_channels, 3, padding=1, bias=False, dtype=dtype, rng=gen, **cl)
        self.bn2 = BatchNorm2d(out_channels, dtype=dtype, **cl)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = Sequential(
                Conv2d(in_channels, out_channels, 1, stride=stride, bias=False, dtype=dtype, rng=gen, **cl),
                BatchNorm2d(out_channels, dtype=dtype, **cl),
            )

    def forward(self, x):
        x = as_real_array(x, "BasicBlock", "input")
        h = self.conv1(x)
        if fusion.fusable(self.bn1, self.relu1):  # conv2 keeps its input: the ReLU's gate is read from it
            h = fusion.forward_bn_relu(self.bn1, self.relu1, h, output_kept=fusion.keeps_input(self.conv2))
        else:
            h = self.relu1(self.bn1(h))
        h = self.conv2(h)
        short = x if self.downsample is None else self.downsample(x)
        fused = type(self.bn2) is BatchNorm2d and not self.bn2.channels_last and short.shape == h.shape \
            and np.result_type(h, short) == h.dtype
        if fused:  # relu(bn2(h) + short) in bn2's normalizing pass
            y = self.bn2._forward(h, relu=True, residual=short)
        else:
            y = _add_into(self.bn2(h), short)  # z = main + short, in main's array (this block's own)
            np.maximum(y, y.dtype.type(0), out=y)
        self._remember(y, fused)  # y > 0 is where the gradient passes; y is the next layer's input anyway
        return y

    def backward(self, grad_output, *, input_grad: bool = True):
        return self._backward(grad_output, input_grad=input_grad)

    def _backward(self, grad_output, *, input_grad: bool = True, overwrite: bool = False):
        """``backward``; with ``overwrite`` ``grad_output`` is the caller's own scratch (a ``Sequential``'s
        gradient between two layers, :func:`.fusion.fresh_gradient`) and ``dz`` is written over it."""
        y, fused = self._recall()
        dy = as_real_array(grad_output, "BasicBlock.backward", "grad_output")
        if dy.shape != y.shape:
            raise ValueError(f"BasicBlock.backward: grad_output must have shape {y.shape}, got {dy.shape}")
        # dz in dy's own array when it is scratch (the caller holds dy until this returns: one array, not two)
        over = overwrite and type(dy) is np.ndarray and dy.flags.c_contiguous and dy.flags.writeable \
            and dy.dtype == np.result_type(dy, y)
        if fused:
            # dz = dy * [y > 0] inside bn2's sums pass (the residual add and ReLU ran in its forward)
            dz = dy if over else np.empty(y.shape, np.result_type(dy, y))  # a float64 gradient stays float64
            d = self.bn2._backward(dy, gate=y, dz_out=dz)
        else:
            dz = np.multiply(dy, y > 0, out=dy if over else None)
            d = self.bn2.backward(dz)
        # y was kept for the gate only: it goes now rather than after the whole block (the block's last output,
        # 1-4 MiB in ResNet-8, held through its four convolutions' backward); a second backward still raises
        self._cache = None
        del y
        self.bn2._release()
        d = self.conv2.backward(d)
        self.conv2._release()
        if fusion.fused_with(self.relu1, self.bn1):
            d = self.bn1._backward(d, relu=True)
        else:
            d = self.bn1.backward(self.relu1.backward(d))
        self.relu1._release()
        self.bn1._release()
        dx_main = self.conv1.backward(d, input_grad=input_grad)
        self.conv1._release()
        if self.downsample is None:
            return _add_into(dx_main, dz) if input_grad else None
        dx_short = self.downsample.backward(dz, input_grad=input_grad)
        self.downsample._release()
        return _add_into(dx_main, dx_short) if input_grad else None

    def extra_repr(self) -> str:
        return format_args((self.in_channels, self.out_channels), [("stride", self.stride, 1),
                                                                   ("data_format", self.data_format, "channels_first")])


class AdaptiveAvgPool2d(Module):
    """Average over each output cell's share of the map; ``output_size=1`` is global average pooling.

    Supports output sizes that divide the input's spatial size (every cell averages an equal
    block), which covers ResNet's ``AdaptiveAvgPool2d(1)``::

        y[n, c, i, j] = mean of x[n, c, i*bh:(i+1)*bh, j*bw:(j+1)*bw]       dx = dy / (bh*bw) spread over the block
    """

    def __init__(self, output_size=1, *, data_format: str = "channels_first"):
        super().__init__()
        self.data_format = data_format  # channels last: (N, H, W, C), averaged on a channels-first view
        self.channels_last = layout.layer_channels_last(data_format, "AdaptiveAvgPool2d", 2)
        size = (output_size, output_size) if isinstance(output_size, (int, np.integer)) else tuple(output_size)
        if len(size) != 2 or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1 for s in size):
            raise ValueError(f"AdaptiveAvgPool2d: output_size must be a positive int or a pair, got {output_size!r}")
        self.output_size = tuple(int(s) for s in size)

    def forward(self, x):
        x = as_real_array(x, "AdaptiveAvgPool2d", "input")
        if x.ndim != 4:
            raise ValueError(f"AdaptiveAvgPool2d: input must be (N, C, H, W), got shape {x.shape}")
        if self.channels_last:
            x = layout.data_to_first(x, 2)
        (oh, ow), (h, w) = self.output_size, x.shape[2:]
        if h % oh or w % ow:
            raise ValueError(f"AdaptiveAvgPool2d: output_size {self.output_size} must divide the input's spatial "
                             f"size {(h, w)} (blocks of unequal size are not supported)")
        bh, bw = h // oh, w // ow
        self._remember(x.shape)
        blocks = x.reshape(x.shape[0], x.shape[1], oh, bh, ow, bw)   # (N, C, oh, bh, ow, bw)
        y = blocks.mean(axis=(3, 5))
        return layout.data_to_last(y, 2) if self.channels_last else y

    def backward(self, grad_output, *, input_grad: bool = True):
        (shape,) = self._recall()
        if not input_grad:
            return None
        dy = as_real_array(grad_output, "AdaptiveAvgPool2d.backward", "grad_output")
        if self.channels_last and dy.ndim == 4:
            dy = layout.data_to_first(dy, 2)
        (oh, ow), (h, w) = self.output_size, shape[2:]
        bh, bw = h // oh, w // ow
        if dy.shape != (*shape[:2], oh, ow):
            raise ValueError(f"AdaptiveAvgPool2d.backward: grad_output must have shape {(*shape[:2], oh, ow)}, got {dy.shape}")
        scaled = dy / dy.dtype.type(bh * bw)
        spread = np.broadcast_to(scaled[:, :, :, None, :, None], (*shape[:2], oh, bh, ow, bw))
        dx = spread.reshape(shape).copy()
        return layout.data_to_last(dx, 2) if self.channels_last else dx

    def extra_repr(self) -> str:
        return format_args((self.output_size if self.output_size[0] != self.output_size[1] else self.output_size[0],),
                           [("data_format", self.data_format, "channels_first")])
