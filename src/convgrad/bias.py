"""The shapes a bias may have, and the bias gradient in the shape the caller gave.

A convolution's bias holds one value per output channel ``C``. Besides PyTorch's ``(C,)``, code
written for broadcasting against the output ``(N, C, *spatial)`` keeps it as ``(C, 1, ..., 1)``
(one 1 per spatial dim) or ``(1, C, 1, ..., 1)``. The three forms have different numbers of dims
(``1``, ``rank + 1``, ``rank + 2``), so a shape names its form without ambiguity; any other shape
is refused.
"""

from __future__ import annotations

import operator

import numpy as np

__all__ = ["bias_forms", "as_bias_vector", "check_bias_shape", "shaped_bias_gradient"]


def bias_forms(channels: int, rank: int, channels_last: bool = False) -> tuple[tuple[int, ...], ...]:
    """The accepted bias shapes for ``channels`` output channels and ``rank`` spatial dims.

    With ``channels_last`` (``data_format="channels_last"``: the output is ``(N, *spatial, C)``) the
    broadcasting forms end in the channel instead.

    Examples
    --------
    >>> bias_forms(4, 2)
    ((4,), (4, 1, 1), (1, 4, 1, 1))
    >>> bias_forms(4, 2, channels_last=True)
    ((4,), (1, 1, 4), (1, 1, 1, 4))
    """
    ones = (1,) * rank
    if channels_last:
        return (channels,), (*ones, channels), (1, *ones, channels)
    return (channels,), (channels, *ones), (1, channels, *ones)


def check_bias_shape(shape, channels: int, rank: int, func: str, name: str = "bias",
                     channels_last: bool = False) -> tuple[int, ...]:
    """``shape`` as a tuple if it is one of :func:`bias_forms`, else a ``ValueError`` listing them."""
    shape = tuple(shape)
    forms = bias_forms(channels, rank, channels_last)
    if shape not in forms:
        listed = ", ".join(str(f) for f in forms)
        raise ValueError(f"{func}: {name} must have shape {listed} (one value per output channel), got {shape}")
    return shape


def as_bias_vector(b: np.ndarray, channels: int, rank: int, func: str) -> np.ndarray:
    """A bias of an accepted shape as the ``(C,)`` vector the algorithms add (a view, no copy)."""
    check_bias_shape(b.shape, channels, rank, func)
    return b.reshape(channels)


def shaped_bias_gradient(grads, bias_shape, channels: int, rank: int, func: str, channels_last: bool = False):
    """``grads`` (a :class:`~convgrad.api.Gradients`) with its bias gradient reshaped to ``bias_shape``.

    ``bias_shape=None`` keeps ``(C,)``; otherwise it must be one of :func:`bias_forms` for
    ``channels`` output channels and ``rank`` spatial dims (checked even when the bias gradient was
    not asked for).

    Examples
    --------
    >>> import numpy as np
    >>> from convgrad import conv_backward
    >>> g = conv_backward(np.ones((1, 2, 3, 3)), np.ones((1, 1, 4, 4)), np.ones((2, 1, 2, 2)), bias_shape=(1, 2, 1, 1))
    >>> g.bias.shape
    (1, 2, 1, 1)
    """
    if bias_shape is None:
        return grads
    if isinstance(bias_shape, (str, bytes)) or not hasattr(bias_shape, "__iter__"):
        raise TypeError(f"{func}: bias_shape must be a tuple of integers or None, got {bias_shape!r}")
    try:
        shape = tuple(operator.index(v) for v in bias_shape)
    except TypeError:
        raise TypeError(f"{func}: bias_shape must be a tuple of integers or None, got {bias_shape!r}") from None
    check_bias_shape(shape, channels, rank, func, "bias_shape", channels_last)
    if grads.bias is None:
        return grads
    return grads._replace(bias=grads.bias.reshape(shape))
