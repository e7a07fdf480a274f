"""Second-order (double backward) and forward-mode (JVP) derivatives of a convolution.

A convolution ``y = conv(x, w) + b`` is bilinear in ``(x, w)``, and so is each of its
gradients (``dX = conv_input(dy, w)``, ``dW = conv_weight(x, dy)``, ``db = sum dy``). The
derivative of a bilinear map is the map with one factor replaced by its tangent, and the
derivative of an inner product with a linear map is the adjoint map. So every quantity here is
again one of the three operations of the *same* configuration (same stride, padding, padding
mode, dilation and groups), with other operands:

- double backward, the gradients of ``L2 = <ggx, dX> + <ggw, dW> + <ggb, db>``::

      dL2/d(dy) = conv(ggx, w) + conv(x, ggw) + ggb      (the forward, twice, plus the bias)
      dL2/dx    = conv_input(dy, ggw)                    (the input-gradient with ggw as the weight)
      dL2/dw    = conv_weight(ggx, dy)                   (the weight-gradient with ggx as the input)

- forward mode, the tangent of ``y`` along ``(tx, tw, tb)``::

      ty = conv(tx, w) + conv(x, tw) + tb

For a transposed convolution ``conv`` above is :func:`~convgrad.conv_transpose`, ``conv_input``
its input-gradient (an ordinary convolution) and ``conv_weight`` its weight-gradient, and the
same three lines hold.

Complex operands follow PyTorch's convention (:mod:`convgrad.complex`): the gradients of the
backward map ``(dy, x, w) -> (dX, dW, db)`` = ``(conv_input(dy, conj w), conv_weight(conj x, dy),
sum dy)`` along ``(ggx, ggw, ggb)``, as ``torch.autograd.grad`` returns them, are::

      dL2/d(dy) = conv(ggx, w) + conv(x, ggw) + ggb      (holomorphic in dy: no conjugate)
      dL2/dx    = conv_input(dy, conj ggw)
      dL2/dw    = conv_weight(conj ggx, dy)

and the tangent of the (holomorphic) convolution has no conjugate either. Array arguments may be
PyTorch tensors, JAX arrays or other DLPack arrays (:func:`convgrad.arrays.boundary`); biases and
their tangents or ``grad_grad_bias`` may have any of the shapes of :mod:`convgrad.bias`.

Nothing here loops over elements: each term is one call of
:func:`convgrad.algorithms.run` on the configuration's :class:`~convgrad.spec.ConvSpec`, so every
algorithm, padding mode and rank the first-order passes support is supported here.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from . import arrays
from . import complex as cplx
from .api import Padding, Size, _algorithm, _batched_input, _finish, _needs, _weight
from .bias import check_bias_shape
from .dtypes import as_real_array, result_dtype
from .spec import ConvSpec, conv_spec, conv_transpose_spec

__all__ = [
    "DoubleGradients",
    "Jvp",
    "conv_double_backward",
    "conv_jvp",
    "conv_transpose_double_backward",
    "conv_transpose_jvp",
]

#: What ``needs=`` of the double backward may name.
DOUBLE_NEEDS = ("grad_output", "input", "weight")


class DoubleGradients(NamedTuple):
    """Gradients of ``<ggx, dX> + <ggw, dW> + <ggb, db>``; ``None`` where not asked for (``needs``)."""

    grad_output: np.ndarray | None
    input: np.ndarray | None
    weight: np.ndarray | None


class Jvp(NamedTuple):
    """A convolution's output and its tangent (forward-mode derivative), as ``torch.func.jvp`` returns them."""

    output: np.ndarray
    tangent_output: np.ndarray


# ------------------------------------------------------------------------------------------------
# the three bilinear operations of one configuration
# ------------------------------------------------------------------------------------------------


class _Pass:
    """A convolution (or transposed convolution) as three bilinear maps of its spec.

    ``apply(a, w)`` is the layer itself; ``adjoint_input(dy, w)`` its input-gradient;
    ``weight_grad(a, dy)`` its weight-gradient. For a transposed convolution the spec describes
    the convolution whose input-gradient the layer is, so the roles of the spec's operations move.
    """

    def __init__(self, spec: ConvSpec, transposed: bool, algorithm: str, func: str):
        self.spec, self.transposed, self.algorithm, self.func = spec, transposed, algorithm, func
        self.in_shape = spec.output_shape if transposed else spec.input_shape
        self.out_shape = spec.input_shape if transposed else spec.output_shape
        self.out_channels = self.out_shape[1]

    def _run(self, op: str, a: np.ndarray, b: np.ndarray, bias=None) -> np.ndarray:
        return cplx.run(op, self.spec, a, b, self.algorithm, bias=bias, func=self.func)  # real or complex

    def apply(self, a: np.ndarray, w: np.ndarray, bias=None) -> np.ndarray:
        return self._run("grad_input" if self.transposed else "forward", a, w, bias)

    def adjoint_input(self, dy: np.ndarray, w: np.ndarray) -> np.ndarray:
        return self._run("forward" if self.transposed else "grad_input", dy, w)

    def weight_grad(self, a: np.ndarray, dy: np.ndarray) -> np.ndarray:
        return self._run("grad_weight", *((dy, a) if self.transposed else (a, dy)))

    def bilinear(self, a, w, ta, tw, tb, dtype) -> np.ndarray:
        """``apply(ta, w) + apply(a, tw) + tb``, skipping the ``None`` terms (zeros when all are)."""
        terms = []
        if ta is not None:
            terms.append(self.apply(ta, w, bias=tb))
            tb = None
        if tw is not None:
            terms.append(self.apply(a, tw, bias=tb))
            tb = None
        result = sum(terms[1:], terms[0]) if terms else np.zeros(self.out_shape, dtype)
        if tb is not None:
            result = result + tb.reshape(-1, *(1,) * self.spec.ndim)  # (C_out, 1, ..., 1) over (N, C_out, *H_out)
        return result


def _setup(input, weight, spec_args: tuple, transposed: bool, algorithm, func: str):
    """The validated weight, batched input, whether it came unbatched, and the :class:`_Pass`."""
    algorithm = _algorithm(algorithm, func)
    w = _weight(weight, func, None)
    x, unbatched = _batched_input(input, w, func)
    make = conv_transpose_spec if transposed else conv_spec
    spec = make(x.shape, w.shape, *spec_args, func=func)
    return w, x, unbatched, _Pass(spec, transposed, algorithm, func)


def _operand(value, shape: tuple[int, ...], func: str, name: str, what: str) -> np.ndarray | None:
    """``value`` as a real or complex array of exactly ``shape``, or ``None`` (a zero operand)."""
    if value is None:
        return None
    a = as_real_array(value, func, name, complex_ok=True)
    if a.shape != tuple(shape):
        raise ValueError(f"{func}: {name} must have shape {tuple(shape)} ({what}), got shape {a.shape}")
    return a


def _bias_operand(value, channels: int, rank: int, func: str, name: str) -> np.ndarray | None:
    """A bias-shaped operand (``(C,)``, ``(C, 1, ..., 1)`` or ``(1, C, 1, ..., 1)``) as a ``(C,)`` view, or ``None``."""
    if value is None:
        return None
    a = as_real_array(value, func, name, complex_ok=True)
    check_bias_shape(a.shape, channels, rank, func, name)
    return a.reshape(channels)


def _batched(a: np.ndarray | None, unbatched: bool) -> np.ndarray | None:
    return a[None] if (a is not None and unbatched) else a


def _cast(compute, *operands):
    """The operands in the compute dtype (a real operand of a complex computation stays real: :func:`cplx.astype`)."""
    return tuple(None if a is None else cplx.astype(a, compute) for a in operands)


# ------------------------------------------------------------------------------------------------
# the shared plumbing of the public functions
# ------------------------------------------------------------------------------------------------


@arrays.boundary  # torch/JAX/DLPack arrays in, the same type out
def _double_backward(grad_grad_input, grad_grad_weight, grad_grad_bias, grad_output, input, weight,
                     spec_args: tuple, transposed: bool, needs, algorithm, func: str) -> DoubleGradients:
    wanted = _needs(needs, func, DOUBLE_NEEDS)
    w, x, unbatched, p = _setup(input, weight, spec_args, transposed, algorithm, func)
    user = (lambda shape: shape[1:]) if unbatched else (lambda shape: shape)
    if grad_output is None:
        raise TypeError(f"{func}: grad_output must be an array of shape {user(p.out_shape)} (the output's), got None")
    dy = _operand(grad_output, user(p.out_shape), func, "grad_output", "the shape of the output")
    ggx = _operand(grad_grad_input, user(p.in_shape), func, "grad_grad_input", "the shape of input")
    ggw = _operand(grad_grad_weight, w.shape, func, "grad_grad_weight", "the shape of weight")
    ggb = _bias_operand(grad_grad_bias, p.out_channels, p.spec.ndim, func, "grad_grad_bias")
    compute, out = result_dtype(dy, x, w, ggx, ggw, ggb)
    dy, x, w, ggx, ggw, ggb = _cast(compute, _batched(dy, unbatched), x, w, _batched(ggx, unbatched), ggw, ggb)
    grad_dy = grad_x = grad_w = None
    if "grad_output" in wanted:  # conv(ggx, w) + conv(x, ggw) + ggb
        grad_dy = _finish(p.bilinear(x, w, ggx, ggw, ggb, compute), out, unbatched)
    if "input" in wanted:  # conv_input(dy, conj ggw)
        grad_x = np.zeros(p.in_shape, compute) if ggw is None else p.adjoint_input(dy, cplx.conj(ggw))
        grad_x = _finish(grad_x, out, unbatched)
    if "weight" in wanted:  # conv_weight(conj ggx, dy)
        grad_w = np.zeros(w.shape, compute) if ggx is None else p.weight_grad(cplx.conj(ggx), dy)
        grad_w = _finish(grad_w, out, False)
    return DoubleGradients(grad_dy, grad_x, grad_w)


@arrays.boundary  # torch/JAX/DLPack arrays in, the same type out
def _jvp(input, weight, bias, tangent_input, tangent_weight, tangent_bias, spec_args: tuple, transposed: bool,
         algorithm, func: str) -> Jvp:
    w, x, unbatched, p = _setup(input, weight, spec_args, transposed, algorithm, func)
    user_in = p.in_shape[1:] if unbatched else p.in_shape
    b = _bias_operand(bias, p.out_channels, p.spec.ndim, func, "bias")
    tx = _operand(tangent_input, user_in, func, "tangent_input", "the shape of input")
    tw = _operand(tangent_weight, w.shape, func, "tangent_weight", "the shape of weight")
    tb = _bias_operand(tangent_bias, p.out_channels, p.spec.ndim, func, "tangent_bias")
    compute, out = result_dtype(x, w, b, tx, tw, tb)
    x, w, b, tx, tw, tb = _cast(compute, x, w, b, _batched(tx, unbatched), tw, tb)
    y = p.apply(x, w, bias=b)
    ty = p.bilinear(x, w, tx, tw, tb, compute)
    return Jvp(_finish(y, out, unbatched), _finish(ty, out, unbatched))


# ------------------------------------------------------------------------------------------------
# the public functions
# ------------------------------------------------------------------------------------------------


def conv_double_backward(grad_grad_input: ArrayLike | None, grad_grad_weight: ArrayLike | None,
                         grad_grad_bias: ArrayLike | None, grad_output: ArrayLike, input: ArrayLike,
                         weight: ArrayLike, stride: Size = 1, padding: Padding = 0, dilation: Size = 1,
                         groups: int = 1, padding_mode: str = "zeros", *,
                         needs: tuple[str, ...] = DOUBLE_NEEDS, algorithm: str = "auto") -> DoubleGradients:
    """The double backward of :func:`~convgrad.conv`: gradients of a function of its gradients.

    :func:`~convgrad.conv_backward` maps ``(grad_output, input, weight)`` to ``(dX, dW, db)``.
    Given ``grad_grad_input``, ``grad_grad_weight``, ``grad_grad_bias`` (the gradients of a loss
    with respect to ``dX``, ``dW``, ``db``: a gradient penalty, a Hessian-vector product), this
    returns that loss's gradients with respect to ``grad_output``, ``input`` and ``weight`` --
    what PyTorch's ``_convolution_double_backward`` computes for ``torch.autograd.grad(...,
    create_graph=True)``.

    Parameters
    ----------
    grad_grad_input : array_like or None, the shape of ``input``
    grad_grad_weight : array_like or None, the shape of ``weight``
    grad_grad_bias : array_like or None, shape ``(C_out,)``, ``(C_out, 1, ..., 1)`` or ``(1, C_out, 1, ..., 1)``
        ``None`` stands for zeros. Every operand may be complex (PyTorch's convention, see the
        module's notes) and a PyTorch tensor, JAX array or other DLPack array on the CPU: the
        results come back as the first array argument's type (:mod:`convgrad.arrays`).
    grad_output : array_like, the shape of the convolution's output
    input, weight, stride, padding, dilation, groups, padding_mode, algorithm
        As for :func:`~convgrad.conv` (every padding mode, ``"same"``, ``(lo, hi)`` pairs, any rank).
    needs : tuple of {"grad_output", "input", "weight"}
        The gradients to compute; the others are ``None`` and cost nothing.

    Returns
    -------
    DoubleGradients
        ``(grad_output, input, weight)``: the gradients of ``L2`` below. One that is zero because
        its ``grad_grad_*`` operands are ``None`` is an array of zeros.

    Notes
    -----
    With ``dX = conv_input(dy, w)``, ``dW = conv_weight(x, dy)``, ``db = sum dy`` and
    ``L2 = <ggx, dX> + <ggw, dW> + <ggb, db>``, each term bilinear::

        dL2/d(dy) = conv(ggx, w) + conv(x, ggw) + ggb    (ggb broadcast over batch and positions)
        dL2/dx    = conv_input(dy, ggw)
        dL2/dw    = conv_weight(ggx, dy)

    all with this configuration's stride, padding (and padding mode: the pad is a linear map
    inside ``conv``), dilation and groups. ``dL2/d(dy)`` is the forward-mode tangent of the output
    along ``(ggx, ggw, ggb)`` (:func:`conv_jvp`). The cost: four single operations with both
    ``ggx`` and ``ggw`` (two forwards, an input- and a weight-gradient; :func:`~convgrad.conv_backward`
    is two), two with only one of them.

    Examples
    --------
    >>> import numpy as np
    >>> x, w, dy = np.arange(5.0).reshape(1, 1, 5), np.array([[[1.0, 2.0, 3.0]]]), np.ones((1, 1, 3))
    >>> g = conv_double_backward(np.ones((1, 1, 5)), np.array([[[1.0, 0.0, 0.0]]]), None, dy, x, w)
    >>> g.grad_output      # conv(ones, w) = 1+2+3, plus conv(x, [1, 0, 0]) = x[0:3]
    array([[[6., 7., 8.]]])
    >>> g.input            # conv_input(dy, [1, 0, 0]): dy placed at offset 0
    array([[[1., 1., 1., 0., 0.]]])
    >>> g.weight           # conv_weight(ones, dy): window sums of ones
    array([[[3., 3., 3.]]])
    """
    return _double_backward(grad_grad_input, grad_grad_weight, grad_grad_bias, grad_output, input, weight,
                            (stride, padding, dilation, groups, padding_mode), False, needs, algorithm,
                            "conv_double_backward")


def conv_transpose_double_backward(grad_grad_input: ArrayLike | None, grad_grad_weight: ArrayLike | None,
                                   grad_grad_bias: ArrayLike | None, grad_output: ArrayLike, input: ArrayLike,
                                   weight: ArrayLike, stride: Size = 1, padding: Padding = 0,
                                   output_padding: Size = 0, groups: int = 1, dilation: Size = 1, *,
                                   needs: tuple[str, ...] = DOUBLE_NEEDS,
                                   algorithm: str = "auto") -> DoubleGradients:
    """The double backward of :func:`~convgrad.conv_transpose` (of :func:`~convgrad.conv_transpose_backward`).

    ``grad_output``, ``input``, ``weight``, ``stride``, ``padding``, ``output_padding``, ``groups``,
    ``dilation`` and ``algorithm`` as for :func:`~convgrad.conv_transpose_backward`; ``grad_grad_*`` and ``needs`` as for
    :func:`conv_double_backward`; ``grad_grad_bias`` has one value per output channel of the
    transposed convolution, ``weight.shape[1] * groups``.

    Notes
    -----
    With ``convT`` the transposed convolution, its gradients ``dX = conv(dy, w)``,
    ``dW = conv_weight(dy, w.shape, x)`` (input and grad_output exchanged), ``db = sum dy``::

        dL2/d(dy) = convT(ggx, w) + convT(x, ggw) + ggb
        dL2/dx    = conv(dy, ggw)
        dL2/dw    = conv_weight(dy, w.shape, ggx)

    with this configuration's stride, padding, output_padding, dilation and groups.

    Examples
    --------
    >>> import numpy as np
    >>> x, w = np.array([[[1.0, 2.0]]]), np.array([[[1.0, 10.0, 100.0]]])
    >>> g = conv_transpose_double_backward(None, np.array([[[1.0, 0.0, 0.0]]]), None, np.arange(5.0).reshape(1, 1, 5),
    ...                                    x, w, stride=2)
    >>> g.grad_output      # convT(x, [1, 0, 0]): x placed at every second position
    array([[[1., 0., 2., 0., 0.]]])
    >>> g.input            # conv(dy, [1, 0, 0]) at stride 2: dy[0], dy[2]
    array([[[0., 2.]]])
    >>> g.weight           # no grad_grad_input: zero
    array([[[0., 0., 0.]]])
    """
    return _double_backward(grad_grad_input, grad_grad_weight, grad_grad_bias, grad_output, input, weight,
                            (stride, padding, output_padding, groups, dilation), True, needs, algorithm,
                            "conv_transpose_double_backward")


def conv_jvp(input: ArrayLike, weight: ArrayLike, bias: ArrayLike | None = None,
             tangent_input: ArrayLike | None = None, tangent_weight: ArrayLike | None = None,
             tangent_bias: ArrayLike | None = None, stride: Size = 1, padding: Padding = 0, dilation: Size = 1,
             groups: int = 1, padding_mode: str = "zeros", *, algorithm: str = "auto") -> Jvp:
    """Forward mode: :func:`~convgrad.conv`'s output and its tangent along ``(tangent_input, tangent_weight, tangent_bias)``.

    As ``torch.func.jvp(conv, (input, weight, bias), (tangent_input, tangent_weight, tangent_bias))``.

    Parameters
    ----------
    input, weight, bias, stride, padding, dilation, groups, padding_mode, algorithm
        As for :func:`~convgrad.conv`.
    tangent_input, tangent_weight, tangent_bias : array_like or None
        The directions, the shapes of ``input``, ``weight`` and ``bias`` (``(C_out,)``, ``(C_out, 1, ..., 1)``
        or ``(1, C_out, 1, ..., 1)``); ``None`` stands for zeros. Real or complex (as ``torch.func.jvp``);
        PyTorch tensors and JAX arrays are accepted and returned in kind (:mod:`convgrad.arrays`).

    Returns
    -------
    Jvp
        ``(output, tangent_output)``, both the shape of the convolution's output.

    Notes
    -----
    The convolution is bilinear in ``(x, w)``, so its derivative along ``(tx, tw, tb)`` is::

        ty = conv(tx, w) + conv(x, tw) + tb

    two convolutions with this configuration's parameters (one when a tangent is ``None``).

    Examples
    --------
    >>> import numpy as np
    >>> x, w = np.arange(5.0).reshape(1, 1, 5), np.array([[[1.0, 0.0, -1.0]]])
    >>> y, ty = conv_jvp(x, w, tangent_weight=np.array([[[1.0, 0.0, 0.0]]]))
    >>> y, ty              # y = x[i] - x[i+2]; along w -> w + t*[1, 0, 0] it grows by x[i]
    (array([[[-2., -2., -2.]]]), array([[[0., 1., 2.]]]))
    """
    return _jvp(input, weight, bias, tangent_input, tangent_weight, tangent_bias,
                (stride, padding, dilation, groups, padding_mode), False, algorithm, "conv_jvp")


def conv_transpose_jvp(input: ArrayLike, weight: ArrayLike, bias: ArrayLike | None = None,
                       tangent_input: ArrayLike | None = None, tangent_weight: ArrayLike | None = None,
                       tangent_bias: ArrayLike | None = None, stride: Size = 1, padding: Padding = 0,
                       output_padding: Size = 0, groups: int = 1, dilation: Size = 1, *,
                       algorithm: str = "auto") -> Jvp:
    """Forward mode of :func:`~convgrad.conv_transpose`: its output and tangent, ``ty = convT(tx, w) + convT(x, tw) + tb``.

    Parameters as for :func:`~convgrad.conv_transpose`, tangents as for :func:`conv_jvp`.

    Examples
    --------
    >>> import numpy as np
    >>> x, w = np.array([[[1.0, 2.0]]]), np.array([[[1.0, 10.0, 100.0]]])
    >>> y, ty = conv_transpose_jvp(x, w, tangent_input=np.array([[[1.0, 0.0]]]), tangent_bias=np.array([0.5]), stride=2)
    >>> ty                 # convT([1, 0], w) + 0.5
    array([[[  1.5,  10.5, 100.5,   0.5,   0.5]]])
    """
    return _jvp(input, weight, bias, tangent_input, tangent_weight, tangent_bias,
                (stride, padding, output_padding, groups, dilation), True, algorithm, "conv_transpose_jvp")
