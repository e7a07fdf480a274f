"""Layer pairs run as one inside a container that owns both: a ``BatchNorm2d`` and the ``ReLU`` after it,
a ``ReLU`` and the max pooling after it, a ``ReLU`` on the fresh output of a convolution or ``Linear``.

:class:`~convgrad.nn.Sequential` and :class:`~convgrad.nn.BasicBlock` call these instead of the two
layers' passes: the batch norm writes ``max(y, 0)`` in the pass that normalizes (no separate ReLU
pass, output copy or mask array), and its backward applies the ReLU's gate ``[y > 0]`` inside its
own sums pass. The gate is a byte per value the batch norm keeps, or, when the next layer keeps
``y`` until its backward anyway (:func:`keeps_input`), ``y`` itself. The ReLU keeps a
:class:`~convgrad.nn.activation.GateOf` pointing at the batch norm, so either layer's own
``backward`` still gives the unfused result.

**ReLU then max pooling** (LeNet's ``conv, ReLU, MaxPool2d``): ``max_pool(relu(x)) = relu(max_pool(x))``
(``max(., 0)`` is monotone; pools without padding or ``ceil_mode``, whose windows all hold input
values), so the pool runs on ``x`` and the ReLU on the pooled output, in place --
a quarter of the values of a 2x2 pool, and no full-size ReLU output or mask. Backward: the ReLU's
gate ``[y > 0]`` on the pooled gradient, then the pool's scatter. Where a window's maximum is positive
it is the same value at the same (first) tap in ``x`` as in ``relu(x)``; where it is not, both forms
send no gradient to the window: the values agree exactly. The two layers' own ``backward`` refuse
after such a forward (their intermediate, ``relu(x)`` at full size, was never made).

**A gradient written over** (``BasicBlock`` after a layer whose backward returns a new array, in a
``Sequential``): the gradient between two layers is the container's own scratch, so the block writes its
gated gradient ``dz = dy * [y > 0]`` over ``dy`` instead of into a new array (:func:`fresh_gradient`,
:func:`overwrites_gradient`). A gradient the caller passed in, or a view of it, is never written.

**ReLU in place** (``conv/Linear, ReLU, conv/Linear``): the layer before returned a fresh array that
nothing else holds, so the ReLU overwrites it with ``max(y, 0)`` (no new array, one pass instead of
two) and, since the next layer keeps its input ``y`` until its backward anyway, reads its gate
``[y > 0]`` from ``y`` instead of keeping a byte per value. Its own ``backward`` works unchanged.
"""

from __future__ import annotations

import numpy as np

from .. import batch_split
from .activation import GateOf, ReLU
from .batchnorm import BatchNorm2d
from .flatten import Flatten
from .linear import Linear
from .pooling import MaxPool1d, MaxPool2d, MaxPool3d

__all__ = ["fusable", "forward_bn_relu", "keeps_input", "fused_with", "relu_pool_fusable", "forward_relu_pool",
           "relu_pool_fused", "backward_relu_pool", "relu_in_place", "fresh_gradient", "overwrites_gradient"]


def fusable(first, second) -> bool:
    """Whether ``first`` then ``second`` is a ``BatchNorm2d`` then a ``ReLU`` (exactly those classes:
    a subclass may have changed either pass)."""
    return type(first) is BatchNorm2d and type(second) is ReLU


def forward_bn_relu(bn: BatchNorm2d, relu: ReLU, x, *, output_kept: bool = False):
    """``relu(bn(x))`` in one pass; both layers remember what their backward passes need.

    ``output_kept``: the next layer keeps its input (``y``) until its backward anyway, so the
    batch norm reads the ReLU's gate from ``y`` instead of keeping a byte per value.
    """
    y = bn._forward(x, relu=True, gate_from_output=output_kept)
    relu._remember(GateOf(bn))
    return y


def keeps_input(layer) -> bool:
    """Whether ``layer`` keeps its input array until its backward (convolutions and residual blocks do)."""
    from .conv import _ConvBase
    from .residual import BasicBlock

    if isinstance(layer, _ConvBase):  # convgrad's own forward, not a subclass's
        return getattr(type(layer).forward, "__module__", None) == _ConvBase.__module__
    return type(layer) is BasicBlock


def fused_with(relu, bn) -> bool:
    """Whether ``relu``'s last forward ran inside ``bn``'s (so ``bn._backward(dy, relu=True)`` does both)."""
    cache = relu._cache if type(relu) is ReLU else None
    return cache is not None and isinstance(cache[0], GateOf) and cache[0].layer is bn


# -- ReLU then max pooling ---------------------------------------------------------------------------


class PooledFirst:
    """What a ``ReLU`` keeps when the pool after it ran first (:func:`forward_relu_pool`): that pool."""

    __slots__ = ("layer",)

    def __init__(self, layer):
        self.layer = layer


def relu_pool_fusable(first, second) -> bool:
    """Whether ``first`` then ``second`` is a ``ReLU`` then a channels-first ``MaxPool1d/2d/3d`` (exactly those
    classes) without padding or ``ceil_mode``: every window then holds input values (a window entirely in the
    ``-inf`` padding, possible with dilation, pools to ``-inf`` after the ReLU but to 0 before it)."""
    return (type(first) is ReLU and type(second) in (MaxPool1d, MaxPool2d, MaxPool3d) and not second.channels_last
            and not any(second.padding) and not second.ceil_mode)


def forward_relu_pool(relu: ReLU, pool, x):
    """``pool(relu(x))`` as ``relu(pool(x))``, the ReLU in place on the pool's fresh output."""
    y = pool._forward_then_relu(x)
    relu._remember(PooledFirst(pool))
    return y


def relu_pool_fused(pool, relu) -> bool:
    """Whether ``pool``'s last forward ran with ``relu`` (the layer before it) folded in."""
    cache = relu._cache if type(relu) is ReLU else None
    return cache is not None and isinstance(cache[0], PooledFirst) and cache[0].layer is pool


def backward_relu_pool(pool, grad_output, input_grad: bool = True):
    """``dL/dx`` of ``pool(relu(x))`` after :func:`forward_relu_pool` (``None`` when not ``input_grad``)."""
    return pool._backward_then_relu(grad_output, input_grad=input_grad)


# -- ReLU in place on a fresh output ----------------------------------------------------------------


def _fresh_output(layer) -> bool:
    """Whether ``layer.forward`` returns a new array nothing else refers to (convgrad's own convolutions, ``Linear``)."""
    from .conv import _ConvBase

    return keeps_input(layer) if isinstance(layer, _ConvBase) else type(layer) is Linear


def relu_in_place(layers, i: int) -> bool:
    """Whether ``layers[i]``, a ``ReLU``, may overwrite its input and keep its output as its gate: the layer
    before returns a fresh array, and the next layer (after any ``Flatten``, whose output is a view) keeps
    its input until its backward."""
    if type(layers[i]) is not ReLU or i == 0 or not _fresh_output(layers[i - 1]):
        return False
    j = i + 1
    while j < len(layers) and type(layers[j]) is Flatten:
        j += 1
    return j < len(layers) and (keeps_input(layers[j]) or type(layers[j]) is Linear)


def forward_relu_in_place(relu: ReLU, x: np.ndarray) -> np.ndarray:
    """``max(x, 0)`` written into ``x`` (see :func:`relu_in_place`); the ReLU keeps ``x`` as its gate."""
    zero = x.dtype.type(0)
    batch_split.run(x.shape[0], x.nbytes, lambda a, b: np.maximum(x[a:b], zero, out=x[a:b]))
    relu._remember(x)
    return x


# -- a gradient between two layers, written over --------------------------------------------------


def fresh_gradient(layer, owned: bool) -> bool:
    """Whether ``layer.backward`` just returned an array nothing else refers to (``owned``: whether its
    ``grad_output`` was one): ``Linear``, ``AdaptiveAvgPool2d`` and ``BasicBlock`` return new arrays, a
    ``Flatten`` a view of its ``grad_output``. Other layers count as not fresh (a subclass or a user's
    layer may return an array it keeps)."""
    from .residual import AdaptiveAvgPool2d, BasicBlock

    if type(layer) is Flatten:
        return owned
    return type(layer) in (Linear, AdaptiveAvgPool2d, BasicBlock)


def overwrites_gradient(layer) -> bool:
    """Whether ``layer._backward(grad, overwrite=True)`` may write over a ``grad`` that is scratch
    (:func:`fresh_gradient`): a ``BasicBlock``, whose gated gradient ``dz = dy * [y > 0]`` then takes
    ``dy``'s place -- one array of the block's output size fewer during its whole backward."""
    from .residual import BasicBlock

    return type(layer) is BasicBlock
