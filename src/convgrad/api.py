"""Public functions: convolution and transposed convolution, forward and backward.

Names and argument order follow ``torch.nn.functional`` and ``torch.nn.grad``. Arrays are NumPy,
channels first: input ``(N, C_in, *spatial)`` (or unbatched ``(C_in, *spatial)``), weight
``(C_out, C_in/groups, *kernel)`` for a convolution and ``(C_in, C_out/groups, *kernel)`` for a
transposed one. The number of spatial dims is ``weight.ndim - 2``: any number from 1 up.

Every function validates its arguments into a :class:`~convgrad.spec.ConvSpec` and hands the
arithmetic to an algorithm (:func:`available_algorithms`); ``algorithm="auto"`` picks one.
"""

from __future__ import annotations

import inspect
import operator
from typing import NamedTuple

import numpy as np

from . import algorithms, dask_array
from .dtypes import as_real_array, result_dtype
from .spec import ConvSpec, conv_spec, conv_transpose_spec

__all__ = [
    "Gradients",
    "available_algorithms",
    "conv",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "conv_backward",
    "conv_transpose_backward",
    "conv_input",
    "conv_weight",
    "conv1d_input",
    "conv2d_input",
    "conv3d_input",
    "conv1d_weight",
    "conv2d_weight",
    "conv3d_weight",
]

NEEDS = ("input", "weight", "bias")


class Gradients(NamedTuple):
    """The gradients of a loss with respect to a convolution's operands; ``None`` where not asked for."""

    input: np.ndarray | None
    weight: np.ndarray | None
    bias: np.ndarray | None


def available_algorithms() -> tuple[str, ...]:
    """Names accepted by ``algorithm=`` (besides ``"auto"`` and ``"measure"``), e.g. ``('direct', 'gemm', ...)``."""
    return algorithms.available_algorithms()


# ------------------------------------------------------------------------------------------------
# argument handling shared by the public functions
# ------------------------------------------------------------------------------------------------


def _weight(weight, func: str, rank: int | None) -> np.ndarray:
    w = as_real_array(weight, func, "weight")
    if rank is not None and w.ndim != rank + 2:
        raise ValueError(
            f"{func}: weight must be {rank + 2}-D (out_channels, in_channels/groups, {rank} kernel dims), "
            f"got shape {w.shape}"
        )
    if w.ndim < 3:
        raise ValueError(
            f"{func}: weight must have at least 3 dims (out_channels, in_channels/groups, *kernel), got shape {w.shape}"
        )
    return w


def _batched_ndim(ndim: int, w_ndim: int, func: str, name: str, shape) -> bool:
    """Whether an operand of ``ndim`` dims is unbatched, for a weight of ``w_ndim`` dims."""
    if ndim == w_ndim:
        return False
    if ndim == w_ndim - 1:
        return True
    raise ValueError(
        f"{func}: {name} must have {w_ndim} dims (batch, channels, {w_ndim - 2} spatial) or {w_ndim - 1} "
        f"(unbatched: channels, {w_ndim - 2} spatial) to match the weight's {w_ndim} dims, got shape {tuple(shape)}"
    )


def _shape(value, func: str, name: str) -> tuple[int, ...]:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(f"{func}: {name} must be a tuple of integers, got {value!r}")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{func}: {name} must be a tuple of integers, got {value!r}")
        if v < 0:
            raise ValueError(f"{func}: {name} must hold non-negative sizes, got {tuple(value)}")
        out.append(operator.index(v))
    return tuple(out)


def _bias(bias, channels: int, func: str) -> np.ndarray | None:
    if bias is None:
        return None
    b = as_real_array(bias, func, "bias")
    if b.shape != (channels,):
        raise ValueError(f"{func}: bias must have shape ({channels},) (one per output channel), got shape {b.shape}")
    return b


def _algorithm(algorithm, func: str) -> str:
    """Check ``algorithm`` up front, so a typo is caught even when nothing ends up computed."""
    if algorithm not in algorithms.CHOOSERS:
        algorithms.get_algorithm(algorithm, func)
    return algorithm


def _needs(needs, func: str) -> frozenset[str]:
    if isinstance(needs, str):
        needs = (needs,)
    try:
        items = tuple(needs)
    except TypeError:
        raise TypeError(f"{func}: needs must be a tuple of names from {NEEDS}, got {needs!r}") from None
    for item in items:
        if item not in NEEDS:
            raise ValueError(f"{func}: needs entries must be from {NEEDS}, got {item!r}")
    return frozenset(items)


def _check_grad_output(dy: np.ndarray, expected: tuple[int, ...], func: str, what: str) -> None:
    if dy.shape != tuple(expected):
        raise ValueError(f"{func}: grad_output must have shape {tuple(expected)} (the shape of {what}), got {dy.shape}")


def _finish(arr: np.ndarray, dtype: np.dtype, unbatched: bool) -> np.ndarray:
    if unbatched:
        arr = arr[0]
    return arr.astype(dtype, copy=False)


def _bias_grad(dy: np.ndarray) -> np.ndarray:
    return dy.sum(axis=(0, *range(2, dy.ndim)))


# ------------------------------------------------------------------------------------------------
# convolution
# ------------------------------------------------------------------------------------------------


def _batched_input(input, w: np.ndarray, func: str) -> tuple[np.ndarray, bool]:
    """``input`` as a real array with a batch dim, and whether the caller gave it unbatched."""
    x = as_real_array(input, func, "input")
    unbatched = _batched_ndim(x.ndim, w.ndim, func, "input", x.shape)
    return (x[None] if unbatched else x), unbatched


def _apply(op: str, spec: ConvSpec, x, w, bias, bias_channels: int, algorithm: str, func: str, unbatched: bool):
    """One operation of ``spec`` on ``(x, w)`` plus the bias, in the result dtype (forward passes)."""
    b = _bias(bias, bias_channels, func)
    compute, out = result_dtype(x, w, b)
    bias = None if b is None else b.astype(compute, copy=False)
    y = algorithms.run(op, spec, x.astype(compute, copy=False), w.astype(compute, copy=False), algorithm,
                       bias=bias, func=func)
    return _finish(y, out, unbatched)


def _gradients(spec: ConvSpec, grad_output, x, w, out_shape, ops, needs, algorithm: str, func: str,
               unbatched: bool) -> Gradients:
    """The gradients named in ``needs`` of the pass whose output has shape ``out_shape``.

    ``ops`` names the spec's operations that give them: ``(input_op, weight_operands_swapped)``;
    for a convolution the input gradient is ``grad_input`` and the weight's is
    ``grad_weight(x, dy)``; for a transposed one they are ``forward`` and ``grad_weight(dy, x)``.
    """
    input_op, swapped = ops
    dy = as_real_array(grad_output, func, "grad_output")
    _check_grad_output(dy, out_shape[1:] if unbatched else out_shape, func, "the output")
    if unbatched:
        dy = dy[None]
    compute, out = result_dtype(dy, x, w)
    dy, x, w = (a.astype(compute, copy=False) for a in (dy, x, w))
    first, second = (dy, x) if swapped else (x, dy)
    return Gradients(
        _finish(algorithms.run(input_op, spec, dy, w, algorithm, func=func), out, unbatched) if "input" in needs else None,
        _finish(algorithms.run("grad_weight", spec, first, second, algorithm, func=func), out, False) if "weight" in needs else None,
        _finish(_bias_grad(dy), out, False) if "bias" in needs else None,
    )


def _conv(
    input,
    weight,
    bias=None,
    stride=1,
    padding=0,
    dilation=1,
    groups=1,
    padding_mode="zeros",
    *,
    algorithm="auto",
    _func="conv",
    _rank=None,
):
    """N-d convolution (cross-correlation), as ``torch.nn.functional.conv2d`` but for any rank.

    Parameters
    ----------
    input : array_like, shape ``(N, C_in, *H)`` or unbatched ``(C_in, *H)``
    weight : array_like, shape ``(C_out, C_in/groups, *K)``; its rank sets the number of spatial dims.
    bias : array_like, shape ``(C_out,)``, optional
    stride, dilation : int or tuple of int, one per spatial dim
    padding : int, tuple, ``"valid"`` or ``"same"``
        An int, one int per dim, or one ``(low, high)`` pair per dim (asymmetric padding).
        ``"same"`` gives ``H_out = ceil(H/S)`` with the odd padding pixel at the end (TensorFlow and
        JAX's rule, which equals PyTorch's at stride 1).
    groups : int
        Input and output channels are split into ``groups`` independent blocks.
    padding_mode : {"zeros", "reflect", "replicate", "circular"}
    algorithm : str
        ``"auto"`` (the cost model's pick), ``"measure"`` (time the candidates on the first call
        for a configuration and reuse the fastest; see :mod:`convgrad.selection`) or a name from
        :func:`available_algorithms`.

    Returns
    -------
    ndarray, shape ``(N, C_out, *H_out)`` with ``H_out = floor((H + P_lo + P_hi - D*(K-1) - 1)/S) + 1``.

    Notes
    -----
    With ``g = o // (C_out/groups)`` and ``C_g = C_in/groups``::

        y[n, o, i] = b[o] + sum_{c < C_g} sum_k w[o, c, k] * x[n, g*C_g + c, i*S + k*D - P_lo]
    """
    if dask_array.is_dask_array(input):  # lazy, one task per batch chunk (convgrad[dask])
        return dask_array.conv(input, weight, bias, stride, padding, dilation, groups, padding_mode, algorithm=algorithm)
    algorithm = _algorithm(algorithm, _func)
    w = _weight(weight, _func, _rank)
    x, unbatched = _batched_input(input, w, _func)
    spec = conv_spec(x.shape, w.shape, stride, padding, dilation, groups, padding_mode, func=_func)
    return _apply("forward", spec, x, w, bias, spec.out_channels, algorithm, _func, unbatched)


def _conv_backward(
    grad_output,
    input,
    weight,
    stride=1,
    padding=0,
    dilation=1,
    groups=1,
    padding_mode="zeros",
    *,
    needs=NEEDS,
    algorithm="auto",
    _func="conv_backward",
    _rank=None,
) -> Gradients:
    """Gradients of a loss through :func:`conv`, given ``grad_output = dL/dy``.

    Returns ``Gradients(input, weight, bias)``; an entry not named in ``needs`` is ``None`` and is
    not computed.

    Notes
    -----
    With ``C_g``, ``g`` as in :func:`conv`, and the sums running over the terms that exist::

        db[o]       = sum_n sum_i dy[n, o, i]
        dw[o, c, k] = sum_n sum_i dy[n, o, i] * x[n, g*C_g + c, i*S + k*D - P_lo]
        dx[n, c, h] = sum_{o in group(c)} sum_k dy[n, o, (h + P_lo - k*D)/S] * w[o, c - g*C_g, k]
                      over the k with (h + P_lo - k*D) divisible by S and 0 <= (h + P_lo - k*D)/S < H_out

    ``dx`` is the transposed convolution of ``dy`` (the full correlation of the stride-dilated
    ``dy`` with the flipped kernel); ``dw`` is a correlation of ``x`` with ``dy`` in which stride and
    dilation swap roles. Input positions no output reads (the unread tail when ``S`` does not
    divide ``H + P_lo + P_hi - K_eff``, holes when ``S > K_eff``) get exactly zero. With a non-zero
    ``padding_mode`` the border's gradient is added onto the elements it copied.
    """
    if dask_array.is_dask_array(input):  # lazy, one task per batch chunk (convgrad[dask])
        return dask_array.conv_backward(grad_output, input, weight, stride, padding, dilation, groups, padding_mode,
                                        needs=needs, algorithm=algorithm)
    algorithm = _algorithm(algorithm, _func)
    wanted = _needs(needs, _func)
    w = _weight(weight, _func, _rank)
    x, unbatched = _batched_input(input, w, _func)
    spec = conv_spec(x.shape, w.shape, stride, padding, dilation, groups, padding_mode, func=_func)
    return _gradients(spec, grad_output, x, w, spec.output_shape, ("grad_input", False), wanted, algorithm, _func, unbatched)


def _conv_input(
    input_shape,
    weight,
    grad_output,
    stride=1,
    padding=0,
    dilation=1,
    groups=1,
    padding_mode="zeros",
    *,
    algorithm="auto",
    _func="conv_input",
    _rank=None,
) -> np.ndarray:
    """Gradient of a convolution with respect to its input (``torch.nn.grad.conv2d_input``, any rank).

    ``input_shape`` is the shape of the convolution's input (batched or not); ``grad_output``
    has the convolution's output shape. See :func:`conv_backward` for the formula.
    """
    algorithm = _algorithm(algorithm, _func)
    shape = _shape(input_shape, _func, "input_shape")
    w = _weight(weight, _func, _rank)
    dy = as_real_array(grad_output, _func, "grad_output")
    unbatched = _batched_ndim(len(shape), w.ndim, _func, "input_shape", shape)
    spec = conv_spec((1, *shape) if unbatched else shape, w.shape, stride, padding, dilation, groups, padding_mode, func=_func)
    _check_grad_output(dy, spec.output_shape[1:] if unbatched else spec.output_shape, _func, "the convolution's output")
    if unbatched:
        dy = dy[None]
    compute, out = result_dtype(dy, w)
    dx = algorithms.run("grad_input", spec, dy.astype(compute, copy=False), w.astype(compute, copy=False), algorithm, func=_func)
    return _finish(dx, out, unbatched)


def _conv_weight(
    input,
    weight_shape,
    grad_output,
    stride=1,
    padding=0,
    dilation=1,
    groups=1,
    padding_mode="zeros",
    *,
    algorithm="auto",
    _func="conv_weight",
    _rank=None,
) -> np.ndarray:
    """Gradient of a convolution with respect to its weight (``torch.nn.grad.conv2d_weight``, any rank).

    See :func:`conv_backward` for the formula.
    """
    algorithm = _algorithm(algorithm, _func)
    shape = _shape(weight_shape, _func, "weight_shape")
    if _rank is not None and len(shape) != _rank + 2:
        raise ValueError(f"{_func}: weight_shape must have {_rank + 2} entries, got {shape}")
    if len(shape) < 3:
        raise ValueError(f"{_func}: weight_shape must have at least 3 entries (out, in/groups, *kernel), got {shape}")
    x = as_real_array(input, _func, "input")
    dy = as_real_array(grad_output, _func, "grad_output")
    unbatched = _batched_ndim(x.ndim, len(shape), _func, "input", x.shape)
    if unbatched:
        x = x[None]
    spec = conv_spec(x.shape, shape, stride, padding, dilation, groups, padding_mode, func=_func)
    _check_grad_output(dy, spec.output_shape[1:] if unbatched else spec.output_shape, _func, "the convolution's output")
    if unbatched:
        dy = dy[None]
    compute, out = result_dtype(x, dy)
    dw = algorithms.run("grad_weight", spec, x.astype(compute, copy=False), dy.astype(compute, copy=False), algorithm, func=_func)
    return _finish(dw, out, False)


# ------------------------------------------------------------------------------------------------
# transposed convolution
# ------------------------------------------------------------------------------------------------


def _conv_transpose(
    input,
    weight,
    bias=None,
    stride=1,
    padding=0,
    output_padding=0,
    groups=1,
    dilation=1,
    *,
    algorithm="auto",
    _func="conv_transpose",
    _rank=None,
):
    """N-d transposed convolution, as ``torch.nn.functional.conv_transpose2d`` but for any rank.

    Parameters
    ----------
    input : array_like, shape ``(N, C_in, *H_in)`` or unbatched ``(C_in, *H_in)``
    weight : array_like, shape ``(C_in, C_out/groups, *K)`` (PyTorch's layout)
    bias : array_like, shape ``(C_out,)``, optional
    stride, dilation, output_padding : int or tuple of int
        ``0 <= output_padding < max(stride, dilation)``; it adds computed positions at the high end.
    padding : int, or tuple of ints or of ``(low, high)`` pairs, one per spatial dim

    Returns
    -------
    ndarray, shape ``(N, C_out, *H_out)`` with
    ``H_out = (H_in - 1)*S - P_lo - P_hi + D*(K-1) + output_padding + 1``.

    Notes
    -----
    The transposed convolution is the input-gradient of the convolution with the same weight,
    stride, padding, dilation and groups that maps ``(N, C_out, *H_out)`` to ``(N, C_in, *H_in)``::

        y[n, c, h] = b[c] + sum_{o in group(c)} sum_k x[n, o, (h + P_lo - k*D)/S] * w[o, c - g*C_g, k]
    """
    if dask_array.is_dask_array(input):  # lazy, one task per batch chunk (convgrad[dask])
        return dask_array.conv_transpose(input, weight, bias, stride, padding, output_padding, groups, dilation, algorithm=algorithm)
    algorithm = _algorithm(algorithm, _func)
    w = _weight(weight, _func, _rank)
    x, unbatched = _batched_input(input, w, _func)
    spec = conv_transpose_spec(x.shape, w.shape, stride, padding, output_padding, groups, dilation, func=_func)
    return _apply("grad_input", spec, x, w, bias, spec.in_channels, algorithm, _func, unbatched)


def _conv_transpose_backward(
    grad_output,
    input,
    weight,
    stride=1,
    padding=0,
    output_padding=0,
    groups=1,
    dilation=1,
    *,
    needs=NEEDS,
    algorithm="auto",
    _func="conv_transpose_backward",
    _rank=None,
) -> Gradients:
    """Gradients of a loss through :func:`conv_transpose`, given ``grad_output = dL/dy``.

    The input-gradient of a transposed convolution is the ordinary convolution of ``grad_output``
    with the same weight; its weight-gradient is the convolution's weight-gradient with ``input``
    and ``grad_output`` exchanged; the bias gradient is the sum of ``grad_output``.
    """
    algorithm = _algorithm(algorithm, _func)
    wanted = _needs(needs, _func)
    w = _weight(weight, _func, _rank)
    x, unbatched = _batched_input(input, w, _func)
    spec = conv_transpose_spec(x.shape, w.shape, stride, padding, output_padding, groups, dilation, func=_func)
    return _gradients(spec, grad_output, x, w, spec.input_shape, ("forward", True), wanted, algorithm, _func, unbatched)


# ------------------------------------------------------------------------------------------------
# rank-checked aliases, as in torch.nn.functional and torch.nn.grad
# ------------------------------------------------------------------------------------------------


def _public(impl, name: str, rank: int | None = None, torch_name: str | None = None):
    """The public function ``name``: ``impl`` with its error prefix and rank check bound.

    The implementations take two private keyword arguments (the function name used in error
    messages and the required number of spatial dims); the public functions hide them.
    """

    def public(*args, **kwargs):
        return impl(*args, **kwargs, _func=name, _rank=rank)

    sig = inspect.signature(impl)
    public.__signature__ = sig.replace(parameters=[p for p in sig.parameters.values() if not p.name.startswith("_")])
    public.__name__ = public.__qualname__ = name
    public.__module__ = __name__
    doc = impl.__doc__ or ""
    if rank is not None:
        doc = (
            f"{rank}-D version of :func:`convgrad.{impl.__name__[1:]}` (weight must be {rank + 2}-D); "
            f"mirrors ``{torch_name}``.\n\n" + doc
        )
    public.__doc__ = doc
    return public


conv = _public(_conv, "conv")
conv_backward = _public(_conv_backward, "conv_backward")
conv_input = _public(_conv_input, "conv_input")
conv_weight = _public(_conv_weight, "conv_weight")
conv_transpose = _public(_conv_transpose, "conv_transpose")
conv_transpose_backward = _public(_conv_transpose_backward, "conv_transpose_backward")
conv1d = _public(_conv, "conv1d", 1, "torch.nn.functional.conv1d")
conv2d = _public(_conv, "conv2d", 2, "torch.nn.functional.conv2d")
conv3d = _public(_conv, "conv3d", 3, "torch.nn.functional.conv3d")
conv_transpose1d = _public(_conv_transpose, "conv_transpose1d", 1, "torch.nn.functional.conv_transpose1d")
conv_transpose2d = _public(_conv_transpose, "conv_transpose2d", 2, "torch.nn.functional.conv_transpose2d")
conv_transpose3d = _public(_conv_transpose, "conv_transpose3d", 3, "torch.nn.functional.conv_transpose3d")
conv1d_input = _public(_conv_input, "conv1d_input", 1, "torch.nn.grad.conv1d_input")
conv2d_input = _public(_conv_input, "conv2d_input", 2, "torch.nn.grad.conv2d_input")
conv3d_input = _public(_conv_input, "conv3d_input", 3, "torch.nn.grad.conv3d_input")
conv1d_weight = _public(_conv_weight, "conv1d_weight", 1, "torch.nn.grad.conv1d_weight")
conv2d_weight = _public(_conv_weight, "conv2d_weight", 2, "torch.nn.grad.conv2d_weight")
conv3d_weight = _public(_conv_weight, "conv3d_weight", 3, "torch.nn.grad.conv3d_weight")
