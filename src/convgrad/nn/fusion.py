"""Layer pairs run as one: a ``BatchNorm2d`` and the ``ReLU`` after it, inside a container that owns both.

:class:`~convgrad.nn.Sequential` and :class:`~convgrad.nn.BasicBlock` call these instead of the two
layers' passes: the batch norm writes ``max(y, 0)`` in the pass that normalizes (no separate ReLU
pass, output copy or mask array), and its backward applies the ReLU's gate ``[y > 0]`` inside its
own sums pass. The gate is a byte per value the batch norm keeps, or, when the next layer keeps
``y`` until its backward anyway (:func:`keeps_input`), ``y`` itself. The ReLU keeps a
:class:`~convgrad.nn.activation.GateOf` pointing at the batch norm, so either layer's own
``backward`` still gives the unfused result.
"""

from __future__ import annotations

from .activation import GateOf, ReLU
from .batchnorm import BatchNorm2d

__all__ = ["fusable", "forward_bn_relu", "keeps_input", "fused_with"]


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
