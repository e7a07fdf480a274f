"""Public functions: convolution and transposed convolution, forward and backward.

Names and argument order follow ``torch.nn.functional`` and ``torch.nn.grad``. Arrays are NumPy,
channels first: input ``(N, C_in, *spatial)`` (or unbatched ``(C_in, *spatial)``), weight
``(C_out, C_in/groups, *kernel)`` for a convolution and ``(C_in, C_out/groups, *kernel)`` for a
transposed one. The number of spatial dims is ``weight.ndim - 2``: any number from 1 up.
``data_format="channels_last"`` and ``weight_format="IO"`` take TensorFlow/JAX-style arrays
instead (:mod:`convgrad.layout`).

Every function validates its arguments into a :class:`~convgrad.spec.ConvSpec` and hands the
arithmetic to an algorithm (:func:`available_algorithms`); ``algorithm="auto"`` picks one.
"""

from __future__ import annotations

import operator
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from . import algorithms, arrays, dask_array, general, layout
from . import complex as cplx
from .bias import as_bias_vector, shaped_bias_gradient
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

#: A per-spatial-dim parameter: one int for every dim, or one per dim.
Size = int | tuple[int, ...]
#: Padding: an int, one per dim, one ``(low, high)`` pair per dim, ``"valid"`` or ``"same"``.
Padding = int | str | tuple


class Gradients(NamedTuple):
    """The gradients of a loss with respect to a convolution's operands; ``None`` where not asked for."""

    input: np.ndarray | None
    weight: np.ndarray | None
    bias: np.ndarray | None


def available_algorithms() -> tuple[str, ...]:
    """Names accepted by ``algorithm=`` (besides ``"auto"`` and ``"measure"``).

    Examples
    --------
    >>> "direct" in available_algorithms() and "gemm" in available_algorithms()
    True
    """
    return algorithms.available_algorithms()


# ------------------------------------------------------------------------------------------------
# argument handling shared by the public functions
# ------------------------------------------------------------------------------------------------


def _weight(weight, func: str, rank: int | None) -> np.ndarray:
    w = as_real_array(weight, func, "weight", complex_ok=True)
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


def _bias(bias, channels: int, func: str, rank: int) -> np.ndarray | None:
    if bias is None:
        return None
    return as_bias_vector(as_real_array(bias, func, "bias", complex_ok=True), channels, rank, func)


def _algorithm(algorithm, func: str) -> str:
    """Check ``algorithm`` up front, so a typo is caught even when nothing ends up computed."""
    if algorithm not in algorithms.CHOOSERS:
        algorithms.get_algorithm(algorithm, func)
    return algorithm


def _needs(needs, func: str, allowed: tuple[str, ...] = NEEDS) -> frozenset[str]:
    if isinstance(needs, str):
        needs = (needs,)
    try:
        items = tuple(needs)
    except TypeError:
        raise TypeError(f"{func}: needs must be a tuple of names from {allowed}, got {needs!r}") from None
    for item in items:
        if item not in allowed:
            raise ValueError(f"{func}: needs entries must be from {allowed}, got {item!r}")
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
# the shared plumbing: validate into a ConvSpec, hand the arithmetic to an algorithm
# ------------------------------------------------------------------------------------------------


def _batched_input(input, w: np.ndarray, func: str) -> tuple[np.ndarray, bool]:
    """``input`` as a real or complex array with a batch dim, and whether the caller gave it unbatched."""
    x = as_real_array(input, func, "input", complex_ok=True)
    unbatched = _batched_ndim(x.ndim, w.ndim, func, "input", x.shape)
    return (x[None] if unbatched else x), unbatched


def _apply(op: str, spec: ConvSpec, x, w, bias, bias_channels: int, algorithm: str, func: str, unbatched: bool):
    """One operation of ``spec`` on ``(x, w)`` plus the bias, in the result dtype (forward passes)."""
    b = _bias(bias, bias_channels, func, spec.ndim)
    compute, out = result_dtype(x, w, b)
    bias = None if b is None else b.astype(compute, copy=False)
    y = cplx.run(op, spec, cplx.astype(x, compute), cplx.astype(w, compute), algorithm, bias=bias, func=func)
    return _finish(y, out, unbatched)


def _gradients(spec: ConvSpec, grad_output, x, w, out_shape, ops, needs, algorithm: str, func: str,
               unbatched: bool, what: str = "the output") -> Gradients:
    """The gradients named in ``needs`` of the pass whose output has shape ``out_shape``.

    ``ops`` names the spec's operations that give them: ``(input_op, weight_operands_swapped)``;
    for a convolution the input gradient is ``grad_input`` and the weight's is
    ``grad_weight(x, dy)``; for a transposed one they are ``forward`` and ``grad_weight(dy, x)``.
    An operand only the unasked gradient reads is never converted (it may be a placeholder).
    """
    input_op, swapped = ops
    dy = as_real_array(grad_output, func, "grad_output", complex_ok=True)
    _check_grad_output(dy, out_shape[1:] if unbatched else out_shape, func, what)
    if unbatched:
        dy = dy[None]
    compute, out = result_dtype(dy, x, w)
    dy = cplx.astype(dy, compute)
    grad_input = grad_weight = None
    if "input" in needs:  # complex: PyTorch's convention, the conjugate operand (see convgrad.complex)
        grad_input = _finish(cplx.run(input_op, spec, dy, cplx.astype(cplx.conj(w), compute), algorithm, func=func),
                             out, unbatched)
    if "weight" in needs:
        x = cplx.astype(cplx.conj(x), compute)
        first, second = (dy, x) if swapped else (x, dy)
        grad_weight = _finish(cplx.run("grad_weight", spec, first, second, algorithm, func=func), out, False)
    return Gradients(grad_input, grad_weight, _finish(_bias_grad(dy), out, False) if "bias" in needs else None)


def _undilated(input_dilation) -> bool:
    """Whether ``input_dilation`` is plainly 1 in every dim (the layouts' native 1x1 path applies only then)."""
    return isinstance(input_dilation, int) and input_dilation == 1 or \
        isinstance(input_dilation, tuple) and all(isinstance(d, int) and d == 1 for d in input_dilation)


@arrays.boundary  # torch/JAX/DLPack arrays in, the same type out
def _forward(input, weight, bias, stride, padding, dilation, groups, padding_mode, algorithm, func: str,
             rank: int | None, input_dilation=1, fmt: layout.Formats = layout.DEFAULT) -> np.ndarray:
    if not fmt.default:  # the caller's layout: views in, a view of the result out (layout.py)
        x, w, r = fmt.operands(input, weight, groups, False, func, rank)
        bias = fmt.bias_in(bias, np.shape(w)[0], r, func)
        native = None if not _undilated(input_dilation) else fmt.native_forward(
            x, w, bias, stride, padding, dilation, groups, padding_mode, algorithm, func)
        if native is not None:
            return native
        y = _forward(x, w, bias, stride, padding, dilation, groups, padding_mode, algorithm, func, rank, input_dilation)
        return fmt.data_out(y, r)
    if dask_array.is_dask_array(input):  # lazy, one task per batch chunk (convgrad[dask])
        _weight(weight, func, rank)
        return dask_array.conv(input, weight, bias, stride, padding, dilation, groups, padding_mode,
                               input_dilation=input_dilation, algorithm=algorithm)
    algorithm = _algorithm(algorithm, func)
    w = _weight(weight, func, rank)
    x, unbatched = _batched_input(input, w, func)
    g = general.general_conv_spec(x.shape, w.shape, stride, padding, dilation, groups, padding_mode, input_dilation,
                                  func=func)  # negative padding and input dilation reduced to an ordinary spec
    return _apply("forward", g.spec, general.reduce_input(x, g), w, bias, g.spec.out_channels, algorithm, func,
                  unbatched)


@arrays.boundary  # torch/JAX/DLPack arrays in, the same type out
def _backward(grad_output, input, weight, stride, padding, dilation, groups, padding_mode, needs, algorithm,
              func: str, rank: int | None, what: str = "the output", input_dilation=1,
              fmt: layout.Formats = layout.DEFAULT) -> Gradients:
    """The one backward of a convolution: every gradient the mask ``needs`` names."""
    if not fmt.default:  # the caller's layout (layout.py)
        x, w, r = fmt.operands(input, weight, groups, False, func, rank)
        native = None if not _undilated(input_dilation) else fmt.native_backward(
            grad_output, x, w, needs, stride, padding, dilation, groups, padding_mode, algorithm, func)
        if native is not None:
            return Gradients(*native)
        with fmt.grad_output_errors(r):
            dy, x = fmt.backward_operands(fmt.data_in(grad_output, r, func, "grad_output"), x, w, needs)
            g = _backward(dy, x, w, stride, padding, dilation, groups, padding_mode, needs, algorithm, func, rank, what,
                          input_dilation)
        return Gradients(fmt.data_out(g.input, r), fmt.weight_out(g.weight), g.bias)
    if dask_array.is_dask_array(input):  # lazy, one task per batch chunk (convgrad[dask])
        _weight(weight, func, rank)
        return dask_array.conv_backward(grad_output, input, weight, stride, padding, dilation, groups, padding_mode,
                                        needs=needs, input_dilation=input_dilation, algorithm=algorithm)
    algorithm = _algorithm(algorithm, func)
    wanted = _needs(needs, func)
    w = _weight(weight, func, rank)
    x, unbatched = _batched_input(input, w, func)
    g = general.general_conv_spec(x.shape, w.shape, stride, padding, dilation, groups, padding_mode, input_dilation,
                                  func=func)  # negative padding and input dilation reduced to an ordinary spec
    if "weight" in wanted:  # (only the weight gradient reads the input)
        x = general.reduce_input(x, g)
    grads = _gradients(g.spec, grad_output, x, w, g.spec.output_shape, ("grad_input", False), wanted, algorithm, func,
                       unbatched, what)
    if grads.input is None:
        return grads
    return grads._replace(input=general.expand_grad_input(grads.input, g))


def _placeholder(shape: tuple[int, ...], dtype) -> np.ndarray:
    """A read-only array of ``shape`` that takes no memory: the operand a masked-out gradient would read
    (``torch.nn.grad`` passes an empty tensor of the input's shape the same way)."""
    return np.broadcast_to(np.zeros((), dtype), shape)


def _native_masked(fmt, grad_output, known, missing_shape, input_wanted: bool, stride, padding, dilation, groups,
                   padding_mode, algorithm, func, input_dilation) -> Gradients | None:
    """``conv_input``/``conv_weight`` in the caller's layout through :meth:`layout.Formats.native_backward`, or ``None``.

    ``input_wanted``: ``known`` is the weight and ``missing_shape`` the input's (channels first);
    else ``known`` is the input and ``missing_shape`` the weight's. The operand not read is a placeholder.
    """
    if not _undilated(input_dilation) or not isinstance(known, np.ndarray):
        return None
    try:
        missing = _placeholder(tuple(missing_shape), known.dtype)
    except (TypeError, ValueError):  # a bad shape: the shared path reports it
        return None
    x, w = (missing, known) if input_wanted else (known, missing)
    native = fmt.native_backward(grad_output, x, w, ("input",) if input_wanted else ("weight",), stride, padding,
                                 dilation, groups, padding_mode, algorithm, func)
    return None if native is None else Gradients(*native)


@arrays.boundary  # torch/JAX/DLPack arrays in, the same type out
def _input_gradient(input_shape, weight, grad_output, stride, padding, dilation, groups, padding_mode, algorithm,
                    func: str, rank: int | None, input_dilation=1, fmt: layout.Formats = layout.DEFAULT) -> np.ndarray:
    """:func:`_backward` with only the input gradient asked for: the input itself is never read."""
    if not fmt.default:  # the caller's layout (layout.py)
        shape, w, r = fmt.shape_operands(_shape(input_shape, func, "input_shape"), weight, groups, func, rank)
        native = _native_masked(fmt, grad_output, w, shape, True, stride, padding, dilation, groups, padding_mode,
                                algorithm, func, input_dilation)
        if native is not None:
            return native.input
        with fmt.grad_output_errors(r):
            return fmt.data_out(_input_gradient(shape, w, fmt.data_in(grad_output, r, func, "grad_output"), stride,
                                                padding, dilation, groups, padding_mode, algorithm, func, rank,
                                                input_dilation), r)
    _algorithm(algorithm, func)
    shape = _shape(input_shape, func, "input_shape")
    w = _weight(weight, func, rank)
    _batched_ndim(len(shape), w.ndim, func, "input_shape", shape)
    return _backward(grad_output, _placeholder(shape, w.dtype), w, stride, padding, dilation, groups, padding_mode,
                     ("input",), algorithm, func, rank, "the convolution's output", input_dilation).input


@arrays.boundary  # torch/JAX/DLPack arrays in, the same type out
def _weight_gradient(input, weight_shape, grad_output, stride, padding, dilation, groups, padding_mode, algorithm,
                     func: str, rank: int | None, input_dilation=1, fmt: layout.Formats = layout.DEFAULT) -> np.ndarray:
    """:func:`_backward` with only the weight gradient asked for: the weight itself is never read."""
    if not fmt.default and len(shape := _shape(weight_shape, func, "weight_shape")) >= 3 and \
            rank in (None, len(shape) - 2):  # the caller's layout
        r = len(shape) - 2
        fmt.check_rank(r, func)
        x, dy = (fmt.data_in(a, r, func, name) for a, name in ((input, "input"), (grad_output, "grad_output")))
        native = _native_masked(fmt, grad_output, x, fmt.weight_shape_in(shape), False, stride, padding, dilation,
                                groups, padding_mode, algorithm, func, input_dilation)
        if native is not None:
            return native.weight
        with fmt.grad_output_errors(r):
            return fmt.weight_out(_weight_gradient(x, fmt.weight_shape_in(shape), dy, stride, padding, dilation,
                                                   groups, padding_mode, algorithm, func, rank, input_dilation))
    _algorithm(algorithm, func)
    shape = _shape(weight_shape, func, "weight_shape")
    if rank is not None and len(shape) != rank + 2:
        raise ValueError(f"{func}: weight_shape must have {rank + 2} entries, got {shape}")
    if len(shape) < 3:
        raise ValueError(f"{func}: weight_shape must have at least 3 entries (out, in/groups, *kernel), got {shape}")
    x = as_real_array(input, func, "input", complex_ok=True)
    return _backward(grad_output, x, _placeholder(shape, x.dtype), stride, padding, dilation, groups, padding_mode,
                     ("weight",), algorithm, func, rank, "the convolution's output", input_dilation).weight


@arrays.boundary  # torch/JAX/DLPack arrays in, the same type out
def _transpose_forward(input, weight, bias, stride, padding, output_padding, groups, dilation, algorithm, func: str,
                       rank: int | None, fmt: layout.Formats = layout.DEFAULT) -> np.ndarray:
    if not fmt.default:  # the caller's layout (layout.py)
        x, w, r = fmt.operands(input, weight, groups, True, func, rank)
        bias = fmt.bias_in(bias, np.shape(w)[1] * groups if isinstance(groups, int) else None, r, func)
        native = fmt.native_transpose_forward(x, w, bias, stride, padding, output_padding, groups, dilation,
                                              algorithm, func)
        if native is not None:
            return native
        return fmt.data_out(_transpose_forward(x, w, bias, stride, padding, output_padding, groups, dilation,
                                               algorithm, func, rank), r)
    if dask_array.is_dask_array(input):  # lazy, one task per batch chunk (convgrad[dask])
        _weight(weight, func, rank)
        return dask_array.conv_transpose(input, weight, bias, stride, padding, output_padding, groups, dilation,
                                         algorithm=algorithm)
    algorithm = _algorithm(algorithm, func)
    w = _weight(weight, func, rank)
    x, unbatched = _batched_input(input, w, func)
    spec = conv_transpose_spec(x.shape, w.shape, stride, padding, output_padding, groups, dilation, func=func)
    return _apply("grad_input", spec, x, w, bias, spec.in_channels, algorithm, func, unbatched)


@arrays.boundary  # torch/JAX/DLPack arrays in, the same type out
def _transpose_backward(grad_output, input, weight, stride, padding, output_padding, groups, dilation, needs,
                        algorithm, func: str, rank: int | None, fmt: layout.Formats = layout.DEFAULT) -> Gradients:
    if not fmt.default:  # the caller's layout (layout.py)
        x, w, r = fmt.operands(input, weight, groups, True, func, rank)
        native = fmt.native_transpose_backward(grad_output, x, w, needs, stride, padding, output_padding, groups,
                                               dilation, algorithm, func)
        if native is not None:
            return Gradients(*native)
        with fmt.grad_output_errors(r):
            g = _transpose_backward(fmt.data_in(grad_output, r, func, "grad_output"), x, w, stride, padding,
                                    output_padding, groups, dilation, needs, algorithm, func, rank)
        return Gradients(fmt.data_out(g.input, r), fmt.weight_out(g.weight), g.bias)
    algorithm = _algorithm(algorithm, func)
    wanted = _needs(needs, func)
    w = _weight(weight, func, rank)
    x, unbatched = _batched_input(input, w, func)
    spec = conv_transpose_spec(x.shape, w.shape, stride, padding, output_padding, groups, dilation, func=func)
    return _gradients(spec, grad_output, x, w, spec.input_shape, ("forward", True), wanted, algorithm, func, unbatched)


# ------------------------------------------------------------------------------------------------
# convolution
# ------------------------------------------------------------------------------------------------


def conv(input: ArrayLike, weight: ArrayLike, bias: ArrayLike | None = None, stride: Size = 1, padding: Padding = 0,
         dilation: Size = 1, groups: int = 1, padding_mode: str = "zeros", *, input_dilation: Size = 1, algorithm: str = "auto",
         data_format: str = "channels_first", weight_format: str = "OI") -> np.ndarray:
    """N-d convolution (cross-correlation), as ``torch.nn.functional.conv2d`` but for any rank.

    Parameters
    ----------
    input : array_like, shape ``(N, C_in, *H)`` or unbatched ``(C_in, *H)``
    weight : array_like, shape ``(C_out, C_in/groups, *K)``; its rank sets the number of spatial dims.
    bias : array_like, shape ``(C_out,)``, ``(C_out, 1, ..., 1)`` or ``(1, C_out, 1, ..., 1)``, optional
    stride, dilation : int or tuple of int, one per spatial dim
    padding : int, tuple, ``"valid"``, ``"same"`` or ``"causal"``
        An int, one int per dim, or one ``(low, high)`` pair per dim (asymmetric padding).
        ``"same"`` gives ``H_out = ceil(H/S)`` with the odd padding pixel at the end (TensorFlow and
        JAX's rule, which equals PyTorch's at stride 1). ``"causal"`` pads ``K_eff - 1 = D*(K-1)`` at
        the start of every dim and nothing at the end (Keras' rule, at any stride).
        Entries may be negative: a crop of the (input-dilated) input, as in JAX; a crop's
        elements get an exactly zero gradient (:mod:`convgrad.general`).
    groups : int
        Input and output channels are split into ``groups`` independent blocks.
    padding_mode : {"zeros", "reflect", "replicate", "circular"}
        Only ``"zeros"`` together with a negative padding or ``input_dilation > 1``.
    input_dilation : int or tuple of int
        ``L``: ``L - 1`` zeros between neighbouring input elements, before padding (JAX's
        ``lhs_dilation``; what a transposed convolution does). Not with ``padding="same"``.
    algorithm : str
        ``"auto"`` (the cost model's pick), ``"measure"`` (time the candidates on the first call
        for a configuration and reuse the fastest; see :mod:`convgrad.selection`) or a name from
        :func:`available_algorithms`.
    data_format : {"channels_first", "channels_last"} or "NCHW"/"NHWC"-style names
        ``"channels_last"``: input, output (and, in the backward functions, ``grad_output`` and the
        input gradient) are ``(N, *H, C)``, unbatched ``(*H, C)`` (:mod:`convgrad.layout`).
    weight_format : {"OI", "IO"} or "OIHW"/"HWIO"-style names
        ``"IO"``: the weight (and its gradient) is ``(*K, C_in/groups, C_out)``, TensorFlow's HWIO.

    Returns
    -------
    ndarray, shape ``(N, C_out, *H_out)`` with ``H_out = floor((H + P_lo + P_hi - D*(K-1) - 1)/S) + 1``
    (``(N, *H_out, C_out)`` with ``data_format="channels_last"``; with input dilation, ``(H-1)*L + 1`` in place of ``H``).

    Notes
    -----
    With ``g = o // (C_out/groups)`` and ``C_g = C_in/groups``::

        y[n, o, i] = b[o] + sum_{c < C_g} sum_k w[o, c, k] * x[n, g*C_g + c, i*S + k*D - P_lo]

    Examples
    --------
    >>> import numpy as np
    >>> conv(np.ones((1, 1, 4, 4, 4, 4)), np.ones((1, 1, 3, 3, 3, 3))).shape   # 4-D: no rank limit
    (1, 1, 2, 2, 2, 2)
    >>> conv(np.array([[[1.0, 2.0, 3.0]]]), np.array([[[1.0, 10.0]]]), input_dilation=2)  # x = 1 0 2 0 3
    array([[[ 1., 20.,  2., 30.]]])
    >>> conv(np.array([[[1.0, 2.0, 3.0]]]), np.array([[[1.0]]]), padding=((-1, 1),))     # crop x[0], pad one zero
    array([[[2., 3., 0.]]])
    """
    return _forward(input, weight, bias, stride, padding, dilation, groups, padding_mode, algorithm, "conv", None,
                    input_dilation=input_dilation, fmt=layout.formats(data_format, weight_format, "conv"))


def conv1d(input: ArrayLike, weight: ArrayLike, bias: ArrayLike | None = None, stride: Size = 1, padding: Padding = 0,
           dilation: Size = 1, groups: int = 1, padding_mode: str = "zeros", *,
           input_dilation: Size = 1, algorithm: str = "auto",
           data_format: str = "channels_first", weight_format: str = "OI") -> np.ndarray:
    """1-D convolution, as ``torch.nn.functional.conv1d``: :func:`conv` with a 3-D weight ``(C_out, C_in/groups, K)``.

    Parameters and result as in :func:`conv`; ``input`` is ``(N, C_in, L)`` or ``(C_in, L)``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(5.0).reshape(1, 1, 5)          # 0 1 2 3 4
    >>> conv1d(x, np.array([[[1.0, 0.0, -1.0]]]))    # x[i] - x[i+2]: no flip (cross-correlation)
    array([[[-2., -2., -2.]]])
    >>> conv1d(x, np.array([[[1.0, 0.0, -1.0]]]), padding=1, stride=2)
    array([[[-1., -2.,  3.]]])
    """
    return _forward(input, weight, bias, stride, padding, dilation, groups, padding_mode, algorithm, "conv1d", 1,
                    input_dilation=input_dilation, fmt=layout.formats(data_format, weight_format, "conv1d"))


def conv2d(input: ArrayLike, weight: ArrayLike, bias: ArrayLike | None = None, stride: Size = 1, padding: Padding = 0,
           dilation: Size = 1, groups: int = 1, padding_mode: str = "zeros", *,
           input_dilation: Size = 1, algorithm: str = "auto",
           data_format: str = "channels_first", weight_format: str = "OI") -> np.ndarray:
    """2-D convolution, as ``torch.nn.functional.conv2d``: :func:`conv` with a 4-D weight ``(C_out, C_in/groups, K_h, K_w)``.

    Parameters and result as in :func:`conv`; ``input`` is ``(N, C_in, H, W)`` or ``(C_in, H, W)``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> y = conv2d(x, np.ones((2, 1, 2, 2)), stride=2)   # sums of the four 2x2 blocks, two channels
    >>> y.shape
    (1, 2, 2, 2)
    >>> y[0, 0]
    array([[10., 18.],
           [42., 50.]])
    >>> y_nhwc = conv2d(x.transpose(0, 2, 3, 1), np.ones((2, 2, 1, 2)), stride=2, data_format="NHWC",
    ...                 weight_format="HWIO")   # the same numbers, channels last
    >>> y_nhwc.shape, bool((y_nhwc[..., 0] == y[:, 0]).all())
    ((1, 2, 2, 2), True)
    """
    return _forward(input, weight, bias, stride, padding, dilation, groups, padding_mode, algorithm, "conv2d", 2,
                    input_dilation=input_dilation, fmt=layout.formats(data_format, weight_format, "conv2d"))


def conv3d(input: ArrayLike, weight: ArrayLike, bias: ArrayLike | None = None, stride: Size = 1, padding: Padding = 0,
           dilation: Size = 1, groups: int = 1, padding_mode: str = "zeros", *,
           input_dilation: Size = 1, algorithm: str = "auto",
           data_format: str = "channels_first", weight_format: str = "OI") -> np.ndarray:
    """3-D convolution, as ``torch.nn.functional.conv3d``: :func:`conv` with a 5-D weight ``(C_out, C_in/groups, *K)``.

    Parameters and result as in :func:`conv`; ``input`` is ``(N, C_in, D, H, W)`` or ``(C_in, D, H, W)``.

    Examples
    --------
    >>> import numpy as np
    >>> y = conv3d(np.ones((1, 2, 3, 3, 3)), np.ones((4, 2, 2, 2, 2)))   # each output sums 2*2*2*2 ones
    >>> y.shape, float(y.max())
    ((1, 4, 2, 2, 2), 16.0)
    """
    return _forward(input, weight, bias, stride, padding, dilation, groups, padding_mode, algorithm, "conv3d", 3,
           input_dilation=input_dilation, fmt=layout.formats(data_format, weight_format, "conv3d"))


def conv_backward(grad_output: ArrayLike, input: ArrayLike, weight: ArrayLike, stride: Size = 1, padding: Padding = 0,
                  dilation: Size = 1, groups: int = 1, padding_mode: str = "zeros", *,
                  needs: tuple[str, ...] = NEEDS, input_dilation: Size = 1, algorithm: str = "auto", bias_shape=None,
                  data_format: str = "channels_first", weight_format: str = "OI") -> Gradients:
    """Gradients of a loss through :func:`conv`, given ``grad_output = dL/dy``.

    Parameters
    ----------
    grad_output : array_like, the shape of the convolution's output
    input, weight, stride, padding, dilation, groups, padding_mode, algorithm
        As for :func:`conv`.
    needs : tuple of {"input", "weight", "bias"}
        The gradients to compute; the others are ``None`` and cost nothing.
    input_dilation : int or tuple of int
        As for :func:`conv`.
    bias_shape : tuple of int, optional
        The bias's shape, ``(C_out,)`` (the default), ``(C_out, 1, ..., 1)`` or ``(1, C_out, 1, ..., 1)``:
        the bias gradient is returned in it (as ``torch.ops.aten.convolution_backward``'s ``bias_sizes``).

    Returns
    -------
    Gradients
        ``(input, weight, bias)``: ``dL/dx``, ``dL/dw``, ``dL/db``.

    Notes
    -----
    With ``C_g``, ``g`` as in :func:`conv`, and the sums running over the terms that exist::

        db[o]       = sum_n sum_i dy[n, o, i]
        dw[o, c, k] = sum_n sum_i dy[n, o, i] * x[n, g*C_g + c, i*S + k*D - P_lo]
        dx[n, c, h] = sum_{o in group(c)} sum_k dy[n, o, (h + P_lo - k*D)/S] * w[o, c - g*C_g, k]
                      over the k with (h + P_lo - k*D) divisible by S and 0 <= (h + P_lo - k*D)/S < H_out

    ``dx`` is the transposed convolution of ``dy`` (the full correlation of the stride-dilated
    ``dy`` with the flipped kernel); ``dw`` is a correlation of ``x`` with ``dy`` in which stride and
    dilation swap roles (:mod:`convgrad.reparam`). Input positions no output reads (the unread
    tail when ``S`` does not divide ``H + P_lo + P_hi - K_eff``, holes when ``S > K_eff``) get
    exactly zero. With a non-zero ``padding_mode`` the border's gradient is added onto the
    elements it copied. With a negative padding or input dilation (:mod:`convgrad.general`) these
    formulas hold for the dilated, cropped input; ``dx`` is read back at the positions of the real
    elements, and a cropped element's gradient is exactly zero.

    Examples
    --------
    >>> import numpy as np
    >>> x, w = np.arange(5.0).reshape(1, 1, 5), np.array([[[1.0, 0.0, -1.0]]])
    >>> g = conv_backward(np.ones((1, 1, 3)), x, w)
    >>> g.input, g.weight, g.bias
    (array([[[ 1.,  1.,  0., -1., -1.]]]), array([[[3., 6., 9.]]]), array([3.]))
    >>> conv_backward(np.ones((1, 1, 3)), x, w, needs=("bias",)).input is None
    True
    """
    fmt = layout.formats(data_format, weight_format, "conv_backward")
    grads = _backward(grad_output, input, weight, stride, padding, dilation, groups, padding_mode, needs, algorithm,
                      "conv_backward", None, input_dilation=input_dilation, fmt=fmt)
    w_shape = fmt.weight_shape_in(tuple(getattr(weight, "shape", None) or np.shape(weight)))
    return shaped_bias_gradient(grads, bias_shape, w_shape[0], len(w_shape) - 2, "conv_backward", fmt.channels_last)


def conv_input(input_shape: tuple[int, ...], weight: ArrayLike, grad_output: ArrayLike, stride: Size = 1,
               padding: Padding = 0, dilation: Size = 1, groups: int = 1, padding_mode: str = "zeros", *,
               input_dilation: Size = 1, algorithm: str = "auto",
               data_format: str = "channels_first", weight_format: str = "OI") -> np.ndarray:
    """Gradient of a convolution with respect to its input, any rank (``torch.nn.grad.conv2d_input``).

    :func:`conv_backward` asked for the input gradient only; the input itself is not needed, its
    shape (batched or not) is. ``grad_output`` has the convolution's output shape; the other
    parameters are those of :func:`conv`.

    Examples
    --------
    >>> import numpy as np
    >>> conv_input((1, 1, 5), np.array([[[1.0, 0.0, -1.0]]]), np.ones((1, 1, 3)))
    array([[[ 1.,  1.,  0., -1., -1.]]])
    """
    return _input_gradient(input_shape, weight, grad_output, stride, padding, dilation, groups, padding_mode, algorithm,
                           "conv_input", None,
                           input_dilation=input_dilation, fmt=layout.formats(data_format, weight_format, "conv_input"))


def conv1d_input(input_shape: tuple[int, ...], weight: ArrayLike, grad_output: ArrayLike, stride: Size = 1,
                 padding: Padding = 0, dilation: Size = 1, groups: int = 1, padding_mode: str = "zeros", *,
                 input_dilation: Size = 1, algorithm: str = "auto",
                 data_format: str = "channels_first", weight_format: str = "OI") -> np.ndarray:
    """:func:`conv_input` with a 3-D weight, as ``torch.nn.grad.conv1d_input``.

    Examples
    --------
    >>> import numpy as np
    >>> conv1d_input((1, 1, 5), np.array([[[1.0, 0.0, -1.0]]]), np.array([[[1.0, 0.0, 0.0]]]))  # w placed at 0
    array([[[ 1.,  0., -1.,  0.,  0.]]])
    """
    return _input_gradient(input_shape, weight, grad_output, stride, padding, dilation, groups, padding_mode, algorithm,
                           "conv1d_input", 1,
                           input_dilation=input_dilation, fmt=layout.formats(data_format, weight_format, "conv1d_input"))


def conv2d_input(input_shape: tuple[int, ...], weight: ArrayLike, grad_output: ArrayLike, stride: Size = 1,
                 padding: Padding = 0, dilation: Size = 1, groups: int = 1, padding_mode: str = "zeros", *,
                 input_dilation: Size = 1, algorithm: str = "auto",
                 data_format: str = "channels_first", weight_format: str = "OI") -> np.ndarray:
    """:func:`conv_input` with a 4-D weight, as ``torch.nn.grad.conv2d_input``.

    Examples
    --------
    >>> import numpy as np
    >>> dx = conv2d_input((1, 1, 4, 4), np.ones((2, 1, 2, 2)), np.ones((1, 2, 2, 2)), stride=2)
    >>> dx[0, 0]   # every input read once, by two output channels
    array([[2., 2., 2., 2.],
           [2., 2., 2., 2.],
           [2., 2., 2., 2.],
           [2., 2., 2., 2.]])
    """
    return _input_gradient(input_shape, weight, grad_output, stride, padding, dilation, groups, padding_mode, algorithm,
                           "conv2d_input", 2,
                           input_dilation=input_dilation, fmt=layout.formats(data_format, weight_format, "conv2d_input"))


def conv3d_input(input_shape: tuple[int, ...], weight: ArrayLike, grad_output: ArrayLike, stride: Size = 1,
                 padding: Padding = 0, dilation: Size = 1, groups: int = 1, padding_mode: str = "zeros", *,
                 input_dilation: Size = 1, algorithm: str = "auto",
                 data_format: str = "channels_first", weight_format: str = "OI") -> np.ndarray:
    """:func:`conv_input` with a 5-D weight, as ``torch.nn.grad.conv3d_input``.

    Examples
    --------
    >>> import numpy as np
    >>> float(conv3d_input((1, 2, 3, 3, 3), np.ones((4, 2, 2, 2, 2)), np.ones((1, 4, 2, 2, 2))).sum())
    512.0
    """
    return _input_gradient(input_shape, weight, grad_output, stride, padding, dilation, groups, padding_mode, algorithm,
                           "conv3d_input", 3,
                           input_dilation=input_dilation, fmt=layout.formats(data_format, weight_format, "conv3d_input"))


def conv_weight(input: ArrayLike, weight_shape: tuple[int, ...], grad_output: ArrayLike, stride: Size = 1,
                padding: Padding = 0, dilation: Size = 1, groups: int = 1, padding_mode: str = "zeros", *,
                input_dilation: Size = 1, algorithm: str = "auto",
                data_format: str = "channels_first", weight_format: str = "OI") -> np.ndarray:
    """Gradient of a convolution with respect to its weight, any rank (``torch.nn.grad.conv2d_weight``).

    :func:`conv_backward` asked for the weight gradient only; the weight itself is not needed, its
    shape is. ``grad_output`` has the convolution's output shape; the other parameters are those of
    :func:`conv`.

    Examples
    --------
    >>> import numpy as np
    >>> conv_weight(np.arange(5.0).reshape(1, 1, 5), (1, 1, 3), np.ones((1, 1, 3)))   # window sums of x
    array([[[3., 6., 9.]]])
    """
    return _weight_gradient(input, weight_shape, grad_output, stride, padding, dilation, groups, padding_mode,
                            algorithm, "conv_weight", None,
                           input_dilation=input_dilation, fmt=layout.formats(data_format, weight_format, "conv_weight"))


def conv1d_weight(input: ArrayLike, weight_shape: tuple[int, ...], grad_output: ArrayLike, stride: Size = 1,
                  padding: Padding = 0, dilation: Size = 1, groups: int = 1, padding_mode: str = "zeros", *,
                  input_dilation: Size = 1, algorithm: str = "auto",
                  data_format: str = "channels_first", weight_format: str = "OI") -> np.ndarray:
    """:func:`conv_weight` for a 3-D weight, as ``torch.nn.grad.conv1d_weight``.

    Examples
    --------
    >>> import numpy as np
    >>> conv1d_weight(np.arange(5.0).reshape(1, 1, 5), (1, 1, 3), np.array([[[0.0, 0.0, 1.0]]]))  # x[2 + k]
    array([[[2., 3., 4.]]])
    """
    return _weight_gradient(input, weight_shape, grad_output, stride, padding, dilation, groups, padding_mode,
                            algorithm, "conv1d_weight", 1,
                           input_dilation=input_dilation, fmt=layout.formats(data_format, weight_format, "conv1d_weight"))


def conv2d_weight(input: ArrayLike, weight_shape: tuple[int, ...], grad_output: ArrayLike, stride: Size = 1,
                  padding: Padding = 0, dilation: Size = 1, groups: int = 1, padding_mode: str = "zeros", *,
                  input_dilation: Size = 1, algorithm: str = "auto",
                  data_format: str = "channels_first", weight_format: str = "OI") -> np.ndarray:
    """:func:`conv_weight` for a 4-D weight, as ``torch.nn.grad.conv2d_weight``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> conv2d_weight(x, (2, 1, 2, 2), np.ones((1, 2, 2, 2)), stride=2)[0, 0]   # sums of x over the block positions
    array([[20., 24.],
           [36., 40.]])
    """
    return _weight_gradient(input, weight_shape, grad_output, stride, padding, dilation, groups, padding_mode,
                            algorithm, "conv2d_weight", 2,
                           input_dilation=input_dilation, fmt=layout.formats(data_format, weight_format, "conv2d_weight"))


def conv3d_weight(input: ArrayLike, weight_shape: tuple[int, ...], grad_output: ArrayLike, stride: Size = 1,
                  padding: Padding = 0, dilation: Size = 1, groups: int = 1, padding_mode: str = "zeros", *,
                  input_dilation: Size = 1, algorithm: str = "auto",
                  data_format: str = "channels_first", weight_format: str = "OI") -> np.ndarray:
    """:func:`conv_weight` for a 5-D weight, as ``torch.nn.grad.conv3d_weight``.

    Examples
    --------
    >>> import numpy as np
    >>> conv3d_weight(np.ones((1, 2, 3, 3, 3)), (4, 2, 2, 2, 2), np.ones((1, 4, 2, 2, 2))).shape
    (4, 2, 2, 2, 2)
    """
    return _weight_gradient(input, weight_shape, grad_output, stride, padding, dilation, groups, padding_mode,
                            algorithm, "conv3d_weight", 3,
                           input_dilation=input_dilation, fmt=layout.formats(data_format, weight_format, "conv3d_weight"))


# ------------------------------------------------------------------------------------------------
# transposed convolution
# ------------------------------------------------------------------------------------------------


def conv_transpose(input: ArrayLike, weight: ArrayLike, bias: ArrayLike | None = None, stride: Size = 1,
                   padding: Padding = 0, output_padding: Size = 0, groups: int = 1, dilation: Size = 1, *,
                   algorithm: str = "auto",
                   data_format: str = "channels_first", weight_format: str = "OI") -> np.ndarray:
    """N-d transposed convolution, as ``torch.nn.functional.conv_transpose2d`` but for any rank.

    Parameters
    ----------
    input : array_like, shape ``(N, C_in, *H_in)`` or unbatched ``(C_in, *H_in)``
    weight : array_like, shape ``(C_in, C_out/groups, *K)`` (PyTorch's layout)
    bias : array_like, shape ``(C_out,)``, optional
    stride, dilation, output_padding : int or tuple of int
        ``0 <= output_padding < max(stride, dilation)``; it adds computed positions at the high end.
    padding : int, or tuple of ints or of ``(low, high)`` pairs, one per spatial dim
    groups : int
    algorithm : str
        As for :func:`conv`.
    data_format : str
        As for :func:`conv`.
    weight_format : {"OI", "IO"} or "OIHW"/"HWIO"-style names
        ``"IO"``: PyTorch's weight with the same permutation as for :func:`conv`,
        ``(*K, C_out/groups, C_in)`` -- TensorFlow's ``conv2d_transpose`` filter.

    Returns
    -------
    ndarray, shape ``(N, C_out, *H_out)`` with
    ``H_out = (H_in - 1)*S - P_lo - P_hi + D*(K-1) + output_padding + 1``.

    Notes
    -----
    The transposed convolution is the input-gradient of the convolution with the same weight,
    stride, padding, dilation and groups that maps ``(N, C_out, *H_out)`` to ``(N, C_in, *H_in)``::

        y[n, c, h] = b[c] + sum_{o in group(c)} sum_k x[n, o, (h + P_lo - k*D)/S] * w[o, c - g*C_g, k]

    Examples
    --------
    >>> import numpy as np
    >>> conv_transpose(np.array([[[1.0, 2.0]]]), np.array([[[1.0, 10.0, 100.0]]]), stride=2, output_padding=1)
    array([[[  1.,  10., 102.,  20., 200.,   0.]]])
    """
    return _transpose_forward(input, weight, bias, stride, padding, output_padding, groups, dilation, algorithm,
                              "conv_transpose", None,
           fmt=layout.formats(data_format, weight_format, "conv_transpose"))


def conv_transpose1d(input: ArrayLike, weight: ArrayLike, bias: ArrayLike | None = None, stride: Size = 1,
                     padding: Padding = 0, output_padding: Size = 0, groups: int = 1, dilation: Size = 1, *,
                     algorithm: str = "auto",
                     data_format: str = "channels_first", weight_format: str = "OI") -> np.ndarray:
    """1-D transposed convolution, as ``torch.nn.functional.conv_transpose1d``: :func:`conv_transpose`, 3-D weight.

    Examples
    --------
    >>> import numpy as np
    >>> conv_transpose1d(np.array([[[1.0, 2.0]]]), np.array([[[1.0, 10.0, 100.0]]]), stride=2)  # 1*w, then 2*w two on
    array([[[  1.,  10., 102.,  20., 200.]]])
    """
    return _transpose_forward(input, weight, bias, stride, padding, output_padding, groups, dilation, algorithm,
                              "conv_transpose1d", 1,
           fmt=layout.formats(data_format, weight_format, "conv_transpose1d"))


def conv_transpose2d(input: ArrayLike, weight: ArrayLike, bias: ArrayLike | None = None, stride: Size = 1,
                     padding: Padding = 0, output_padding: Size = 0, groups: int = 1, dilation: Size = 1, *,
                     algorithm: str = "auto",
                     data_format: str = "channels_first", weight_format: str = "OI") -> np.ndarray:
    """2-D transposed convolution, as ``torch.nn.functional.conv_transpose2d``: :func:`conv_transpose`, 4-D weight.

    Examples
    --------
    >>> import numpy as np
    >>> conv_transpose2d(np.ones((1, 2, 3, 3)), np.ones((2, 1, 3, 3)), stride=2, padding=1).shape  # (3-1)*2 - 2 + 3
    (1, 1, 5, 5)
    """
    return _transpose_forward(input, weight, bias, stride, padding, output_padding, groups, dilation, algorithm,
                              "conv_transpose2d", 2,
           fmt=layout.formats(data_format, weight_format, "conv_transpose2d"))


def conv_transpose3d(input: ArrayLike, weight: ArrayLike, bias: ArrayLike | None = None, stride: Size = 1,
                     padding: Padding = 0, output_padding: Size = 0, groups: int = 1, dilation: Size = 1, *,
                     algorithm: str = "auto",
                     data_format: str = "channels_first", weight_format: str = "OI") -> np.ndarray:
    """3-D transposed convolution, as ``torch.nn.functional.conv_transpose3d``: :func:`conv_transpose`, 5-D weight.

    Examples
    --------
    >>> import numpy as np
    >>> conv_transpose3d(np.ones((1, 1, 2, 2, 2)), np.ones((1, 3, 2, 2, 2)), stride=2).shape
    (1, 3, 4, 4, 4)
    """
    return _transpose_forward(input, weight, bias, stride, padding, output_padding, groups, dilation, algorithm,
                              "conv_transpose3d", 3,
           fmt=layout.formats(data_format, weight_format, "conv_transpose3d"))


def conv_transpose_backward(grad_output: ArrayLike, input: ArrayLike, weight: ArrayLike, stride: Size = 1,
                            padding: Padding = 0, output_padding: Size = 0, groups: int = 1, dilation: Size = 1, *,
                            needs: tuple[str, ...] = NEEDS, algorithm: str = "auto", bias_shape=None,
                            data_format: str = "channels_first", weight_format: str = "OI") -> Gradients:
    """Gradients of a loss through :func:`conv_transpose`, given ``grad_output = dL/dy``.

    The input-gradient of a transposed convolution is the ordinary convolution of ``grad_output``
    with the same weight; its weight-gradient is the convolution's weight-gradient with ``input``
    and ``grad_output`` exchanged; the bias gradient is the sum of ``grad_output``. Parameters as
    for :func:`conv_transpose`, ``needs`` and ``bias_shape`` as for :func:`conv_backward`.

    Examples
    --------
    >>> import numpy as np
    >>> x, w = np.array([[[1.0, 2.0]]]), np.array([[[1.0, 10.0, 100.0]]])
    >>> g = conv_transpose_backward(np.ones((1, 1, 6)), x, w, stride=2, output_padding=1)
    >>> g.input, g.weight, g.bias
    (array([[[111., 111.]]]), array([[[3., 3., 3.]]]), array([6.]))
    """
    fmt = layout.formats(data_format, weight_format, "conv_transpose_backward")
    grads = _transpose_backward(grad_output, input, weight, stride, padding, output_padding, groups, dilation, needs,
                                algorithm, "conv_transpose_backward", None, fmt=fmt)
    w_shape = fmt.weight_shape_in(tuple(getattr(weight, "shape", None) or np.shape(weight)))
    return shaped_bias_gradient(grads, bias_shape, w_shape[1] * groups, len(w_shape) - 2, "conv_transpose_backward",
                                fmt.channels_last)
