"""``conv_general_dilated`` with ``jax.lax``'s name, arguments and semantics, and its backward.

A JAX user's call, unchanged, computed by convgrad: ``dimension_numbers`` name which axis is
which (the operands are transposed to ``(N, C, *spatial)`` / ``(O, I, *K)`` at the boundary and
the result back), ``lhs_dilation`` and negative padding are :mod:`convgrad.general`'s reduction,
``feature_group_count`` is ``groups``, and ``batch_group_count`` is turned into feature groups by
a reshape. What remains is one :class:`~convgrad.spec.ConvSpec` run by the same algorithms as
:func:`convgrad.conv`.

``batch_group_count = B`` (JAX/XLA): the batch is cut into ``B`` contiguous blocks of ``N/B``;
output channel block ``g`` (``O/B`` channels) is the convolution of batch block ``g`` with its
kernels, which read *all* ``C`` input channels; the output has batch ``N/B``. Moving the batch
blocks into the channel axis, ``(N, C, *H) -> (N/B, B*C, *H)``, makes this exactly a
convolution with ``groups = B``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from . import arrays, general
from .api import NEEDS, Gradients, _algorithm, _apply, _gradients, _needs
from .dtypes import as_real_array, result_dtype
from .spec import positive_int

__all__ = ["conv_general_dilated", "conv_general_dilated_backward", "dimension_permutations"]

_PRECISIONS = ("DEFAULT", "HIGH", "HIGHEST", "FASTEST", "BFLOAT16", "TENSORFLOAT32", "FLOAT32")


def dimension_permutations(dimension_numbers, ndim: int, func: str = "conv_general_dilated"):
    """``(lhs_perm, rhs_perm, out_perm)``: the axes of each operand in ``(N, C, *S)``, ``(O, I, *S)``, ``(N, C, *S)`` order.

    ``dimension_numbers`` is ``None`` (channels first), three strings such as
    ``("NHWC", "HWIO", "NHWC")`` (spatial letters in any order; their order in the rhs string is
    the order of ``window_strides`` and the other per-dim arguments, as in JAX), or three tuples of
    axis numbers (JAX's ``ConvDimensionNumbers``: batch/out-feature axis, feature/in-feature
    axis, spatial axes).

    Examples
    --------
    >>> dimension_permutations(("NHWC", "HWIO", "NHWC"), 4)
    ((0, 3, 1, 2), (3, 2, 0, 1), (0, 3, 1, 2))
    >>> dimension_permutations(("NCHW", "IOWH", "NHWC"), 4)   # the rhs string fixes the spatial order: W, H
    ((0, 1, 3, 2), (1, 0, 2, 3), (0, 3, 2, 1))
    """
    if dimension_numbers is None:
        return (tuple(range(ndim)),) * 3
    if isinstance(dimension_numbers, (str, bytes)) or not hasattr(dimension_numbers, "__len__") \
            or len(dimension_numbers) != 3:
        raise TypeError(f"{func}: dimension_numbers must be None or three entries (lhs, rhs, out), "
                        f"got {dimension_numbers!r}")
    specs = tuple(dimension_numbers)
    if all(isinstance(s, str) for s in specs):
        return _string_permutations(specs, ndim, func)
    perms = []
    for name, spec in zip(("lhs", "rhs", "out"), specs):
        try:
            perm = tuple(int(v) for v in spec)
        except (TypeError, ValueError):
            raise TypeError(f"{func}: dimension_numbers must be three strings or three tuples of axis numbers, "
                            f"got {dimension_numbers!r}") from None
        if sorted(perm) != list(range(ndim)):
            raise ValueError(f"{func}: the {name} entry of dimension_numbers must be a permutation of "
                             f"0..{ndim - 1} (the operands have {ndim} dims), got {spec!r}")
        perms.append(perm)
    return tuple(perms)


def _string_permutations(specs, ndim: int, func: str):
    lhs, rhs, out = specs
    for i, (spec, pair) in enumerate(zip(specs, (("N", "C"), ("O", "I"), ("N", "C")))):
        if len(spec) != ndim:
            raise ValueError(f"{func}: dimension_numbers[{i}] = {spec!r} must have one letter per operand dim, "
                             f"{ndim} in all")
        if spec.count(pair[0]) != 1 or spec.count(pair[1]) != 1 or len(set(spec)) != len(spec):
            raise ValueError(f"{func}: dimension_numbers[{i}] = {spec!r} must contain {pair[0]!r} and {pair[1]!r} "
                             "exactly once and no letter twice")
    spatial = [c for c in rhs if c not in "OI"]
    if set(lhs) - {"N", "C"} != set(spatial) or set(out) - {"N", "C"} != set(spatial):
        raise ValueError(f"{func}: dimension_numbers {tuple(specs)!r} must use the same spatial letters in lhs, "
                         "rhs and out")
    return tuple((s.index(a), s.index(b), *(s.index(c) for c in spatial))
                 for s, (a, b) in zip(specs, (("N", "C"), ("O", "I"), ("N", "C"))))


def _per_dim(value, nd: int, func: str, name: str) -> tuple[int, ...]:
    """``None`` (all 1) or a sequence of ``nd`` positive integers (an int is accepted for every dim)."""
    if value is None:
        return (1,) * nd
    from .spec import positive_ints

    return positive_ints(value, nd, func, name)


def _padding(padding, nd: int, func: str):
    """JAX's padding: 'SAME', 'SAME_LOWER', 'VALID' (any case) or ``nd`` (low, high) pairs; as pairs or the string."""
    if isinstance(padding, str):
        key = padding.upper()
        if key not in ("SAME", "SAME_LOWER", "VALID"):
            raise ValueError(f"{func}: padding must be 'SAME', 'SAME_LOWER', 'VALID' or a sequence of (low, high) "
                             f"pairs, got {padding!r}")
        return key
    try:
        pairs = tuple(tuple(p) for p in padding)
    except TypeError:
        raise TypeError(f"{func}: padding must be 'SAME', 'SAME_LOWER', 'VALID' or a sequence of {nd} (low, high) "
                        f"pairs, got {padding!r}") from None
    if len(pairs) != nd or any(len(p) != 2 for p in pairs):
        raise ValueError(f"{func}: padding must hold {nd} (low, high) pairs, one per spatial dim, got {padding!r}")
    return pairs


def _same_pads(kind: str, size, kernel, strides, rhs_dilation):
    """JAX's ``padtype_to_pads``: ``H_out = ceil(H/S)``, ``total = max((H_out-1)*S + K_eff - H, 0)``."""
    pads = []
    for h, k, s, d in zip(size, kernel, strides, rhs_dilation):
        if kind == "VALID":
            pads.append((0, 0))
            continue
        total = max((-(-h // s) - 1) * s + d * (k - 1) + 1 - h, 0)
        small, big = total // 2, total - total // 2
        pads.append((small, big) if kind == "SAME" else (big, small))
    return tuple(pads)


def _check_precision(precision, func: str) -> None:
    """``precision`` is accepted and has no effect: NumPy computes at the operands' full precision."""
    items = precision if isinstance(precision, (tuple, list)) else (precision,)
    for p in items:
        name = getattr(p, "name", p)
        if p is not None and not (isinstance(name, str) and name.upper() in _PRECISIONS):
            raise ValueError(f"{func}: precision must be None, a jax.lax.Precision, one of {_PRECISIONS} or a pair of "
                             f"them, got {precision!r}")


def _prepare(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation, dimension_numbers,
             feature_group_count, batch_group_count, func: str):
    """Validate a JAX call; return ``(x, w, general, perms, B)`` with ``x`` batch-grouped and reduced."""
    x = as_real_array(lhs, func, "lhs", complex_ok=True)
    w = as_real_array(rhs, func, "rhs", complex_ok=True)
    if x.ndim != w.ndim or x.ndim < 3:
        raise ValueError(f"{func}: lhs and rhs must have the same number of dims, at least 3 (batch, feature, "
                         f"spatial...), got shapes {x.shape} and {w.shape}")
    nd = x.ndim - 2
    perms = dimension_permutations(dimension_numbers, x.ndim, func)
    x = np.transpose(x, perms[0])  # (N, C, *H)
    w = np.transpose(w, perms[1])  # (O, I, *K)
    strides = _per_dim(window_strides, nd, func, "window_strides")
    lhs_dil = _per_dim(lhs_dilation, nd, func, "lhs_dilation")
    rhs_dil = _per_dim(rhs_dilation, nd, func, "rhs_dilation")
    G = positive_int(feature_group_count, func, "feature_group_count")
    B = positive_int(batch_group_count, func, "batch_group_count")
    pads = _padding(padding, nd, func)
    if isinstance(pads, str):
        if any(v != 1 for v in lhs_dil):
            raise ValueError(f"{func}: string padding {padding!r} is not defined with lhs_dilation={lhs_dil} (JAX "
                             "refuses it too); give the (low, high) pairs")
        pads = _same_pads(pads, x.shape[2:], w.shape[2:], strides, rhs_dil)
    n, c = x.shape[:2]
    o = w.shape[0]
    if G > 1 and B > 1:
        raise ValueError(f"{func}: at most one of feature_group_count and batch_group_count may be > 1, got "
                         f"feature_group_count={G} and batch_group_count={B}")
    if c % G:
        raise ValueError(f"{func}: feature_group_count must divide the lhs feature dimension, but {G} does not "
                         f"divide {c}")
    if B > 1:
        if n % B:
            raise ValueError(f"{func}: batch_group_count must divide the lhs batch dimension, but {B} does not "
                             f"divide {n}")
        if o % B:
            raise ValueError(f"{func}: the rhs output feature dimension ({o}) must be a multiple of "
                             f"batch_group_count={B}")
        if w.shape[1] != c:
            raise ValueError(f"{func}: with batch_group_count the rhs input feature dimension must equal the lhs "
                             f"feature dimension, but {w.shape[1]} != {c}")
        x = x.reshape(B, n // B, c, *x.shape[2:]).swapaxes(0, 1)  # (N/B, B, C, *H): batch block g beside block g'
        x = x.reshape(n // B, B * c, *x.shape[3:])                # (N/B, B*C, *H): a channel block per batch block
        G = B
    elif o % G:
        raise ValueError(f"{func}: the rhs output feature dimension ({o}) must be a multiple of "
                         f"feature_group_count={G}")
    elif w.shape[1] * G != c:
        raise ValueError(f"{func}: the lhs feature dimension divided by feature_group_count must equal the rhs input "
                         f"feature dimension, but {c} // {G} != {w.shape[1]}")
    empty = _empty_output(x.shape, w.shape, strides, pads, lhs_dil, rhs_dil)
    if empty is not None:
        return x, w, empty, perms, B
    g = general.general_conv_spec(x.shape, w.shape, strides, pads, rhs_dil, G, "zeros", lhs_dil, func=func)
    return x, w, g, perms, B


def _empty_output(x_shape, w_shape, strides, pads, lhs_dil, rhs_dil) -> tuple[int, ...] | None:
    """JAX's output shape when the result reads no input element, else ``None``.

    That is: an operand with a zero-size dim, a crop that leaves no input element, or a kernel
    longer than the padded input (JAX's output size is then ``max(0, ...)``). The result is then
    all zeros (or empty), and so are both gradients -- as JAX computes them; :func:`convgrad.conv`
    refuses these cases instead.
    """
    out, reads = [], all(v > 0 for v in (*x_shape, *w_shape))
    for h, k, s, (lo, hi), L, d in zip(x_shape[2:], w_shape[2:], strides, pads, lhs_dil, rhs_dil):
        h_dil = (h - 1) * L + 1 if h else 0
        k_eff = (k - 1) * d + 1 if k else 0
        size = h_dil + lo + hi - k_eff
        out.append(max(0, size // s + 1) if size >= 0 else 0)
        reads = reads and h_dil - max(0, -lo) - max(0, -hi) >= 1 and out[-1] > 0
    return None if reads else (x_shape[0], w_shape[0], *out)


def _out_dtype(x, w, preferred_element_type, func: str):
    if preferred_element_type is None:
        return None
    try:
        dt = np.dtype(preferred_element_type)
    except TypeError:
        raise TypeError(f"{func}: preferred_element_type must be None or a floating dtype, got "
                        f"{preferred_element_type!r}") from None
    complex_operands = np.iscomplexobj(x) or np.iscomplexobj(w)
    if complex_operands and dt.kind != "c":  # as JAX: a real result type cannot hold a complex convolution
        raise TypeError(f"{func}: preferred_element_type must be a complex dtype (complex64/128) for complex "
                        f"operands, got {dt}")
    if not complex_operands and dt.kind != "f":
        raise ValueError(f"{func}: preferred_element_type must be a floating dtype (float16/32/64), got {dt}")
    return dt


def _cast(arrays, dt):
    """Compute in ``dt`` when it is wider than the operands (JAX accumulates in ``preferred_element_type``)."""
    if dt is None:
        return arrays
    return tuple(a.astype(np.result_type(a.dtype, dt), copy=False) for a in arrays)


@arrays.boundary  # torch/JAX/DLPack arrays in, the same type out
def conv_general_dilated(lhs: ArrayLike, rhs: ArrayLike, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                         dimension_numbers=None, feature_group_count: int = 1, batch_group_count: int = 1,
                         precision=None, preferred_element_type=None, *, algorithm: str = "auto") -> np.ndarray:
    """General N-d convolution, as ``jax.lax.conv_general_dilated``, computed with NumPy.

    Parameters
    ----------
    lhs : array_like
        The input, ``(N, C, *H)`` unless ``dimension_numbers`` says otherwise.
    rhs : array_like
        The kernel, ``(O, C/feature_group_count, *K)`` unless ``dimension_numbers`` says otherwise.
    window_strides : sequence of int
        ``S`` per spatial dim (an int is accepted for all).
    padding : {"SAME", "SAME_LOWER", "VALID"} or sequence of (int, int)
        ``(P_lo, P_hi)`` per spatial dim; negative entries crop the (lhs-dilated) input. ``"SAME"``:
        ``H_out = ceil(H/S)``, ``total = max((H_out-1)*S + K_eff - H, 0)``, ``P_lo = total // 2``
        (``"SAME_LOWER"``: the odd pixel first). A string is refused with ``lhs_dilation``, as in JAX.
    lhs_dilation, rhs_dilation : sequence of int, optional
        ``L``: ``L - 1`` zeros between input elements (a transposed convolution); ``D``: the kernel's.
    dimension_numbers : None, three strings or three tuples of ints
        E.g. ``("NHWC", "HWIO", "NHWC")``, any permutation; the order of the spatial letters in the
        rhs string is the order of the per-dim arguments. See :func:`dimension_permutations`.
    feature_group_count : int
        ``G``: channels in ``G`` blocks, output block ``g`` reads input block ``g`` (``groups``).
    batch_group_count : int
        ``B``: the batch in ``B`` blocks, output-channel block ``g`` reads batch block ``g`` only;
        the output batch is ``N/B``. At most one of the two counts may exceed 1.
    precision : None, str, ``jax.lax.Precision`` or a pair
        Accepted and without effect: the result is computed at the operands' full precision
        (as JAX's ``"highest"``).
    preferred_element_type : floating dtype, optional
        The result's dtype; the computation runs in it when it is wider than the operands.
    algorithm : str
        As for :func:`convgrad.conv`.

    Returns
    -------
    ndarray in the ``out`` layout of ``dimension_numbers``, ``(N/B, O, *H_out)`` channels first, with
    ``H_out = floor(((H-1)*L + 1 + P_lo + P_hi - K_eff)/S) + 1`` and ``K_eff = D*(K-1) + 1``.

    Notes
    -----
    With ``x`` the lhs dilated by ``L`` and cropped/padded by ``(P_lo, P_hi)``, and ``g = o // (O/G)``::

        y[n, o, i] = sum_{c < C/G} sum_k w[o, c, k] * x[n, g*C/G + c, i*S + k*D]

    (with batch groups, ``n`` runs over batch block ``o // (O/B)`` and ``c`` over all channels).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(6.0).reshape(1, 3, 2)                          # N=1, W=3, C=2 (channels last)
    >>> w = np.ones((2, 2, 1))                                       # W=2, I=2, O=1
    >>> conv_general_dilated(x, w, (1,), "VALID", dimension_numbers=("NWC", "WIO", "NWC"))
    array([[[ 6.],
            [14.]]])
    >>> conv_general_dilated(np.array([[[1.0, 2.0, 3.0]]]), np.array([[[1.0, 10.0]]]), (1,), [(-1, 0)],
    ...                      lhs_dilation=(2,))                      # 1 0 2 0 3, the first cropped
    array([[[20.,  2., 30.]]])
    """
    func = "conv_general_dilated"
    algorithm = _algorithm(algorithm, func)
    _check_precision(precision, func)
    x, w, g, perms, _ = _prepare(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation, dimension_numbers,
                                 feature_group_count, batch_group_count, func)
    dt = _out_dtype(x, w, preferred_element_type, func)
    x, w = _cast((x, w), dt)
    if isinstance(g, tuple):  # reads no input element: zeros of JAX's shape
        y = np.zeros(g, dtype=result_dtype(x, w, None)[1])
    else:
        y = _apply("forward", g.spec, general.reduce_input(x, g), w, None, g.spec.out_channels, algorithm, func, False)
    y = np.transpose(y, np.argsort(perms[2]))  # (N/B, O, *H_out) -> the out layout
    return y if dt is None else y.astype(dt, copy=False)


@arrays.boundary  # torch/JAX/DLPack arrays in, the same type out
def conv_general_dilated_backward(grad_output: ArrayLike, lhs: ArrayLike, rhs: ArrayLike, window_strides, padding,
                                  lhs_dilation=None, rhs_dilation=None, dimension_numbers=None,
                                  feature_group_count: int = 1, batch_group_count: int = 1, precision=None,
                                  preferred_element_type=None, *, needs=("input", "weight"),
                                  algorithm: str = "auto") -> Gradients:
    """Gradients through :func:`conv_general_dilated` (what ``jax.vjp`` returns), given ``grad_output``.

    Parameters
    ----------
    grad_output : array_like
        ``dL/dy``, in the output's layout and shape.
    lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation, dimension_numbers, feature_group_count,
    batch_group_count, precision, preferred_element_type, algorithm
        As for :func:`conv_general_dilated`.
    needs : tuple of {"input", "weight"}
        The gradients to compute (the lhs's is ``input``, the rhs's ``weight``); there is no bias.

    Returns
    -------
    Gradients
        ``(input, weight, None)``: ``dL/dlhs`` and ``dL/drhs`` in the lhs's and the rhs's layouts, as
        :func:`convgrad.conv_backward` returns them. A cropped lhs element's gradient is exactly 0.

    Examples
    --------
    >>> import numpy as np
    >>> g = conv_general_dilated_backward(np.ones((1, 1, 3)), np.array([[[1.0, 2.0, 3.0]]]),
    ...                                   np.array([[[1.0, 10.0]]]), (1,), [(-1, 0)], lhs_dilation=(2,))
    >>> g.input, g.weight    # reads 0 2 0 3: x0 was cropped (gradient 0); w0 saw 0 2 0, w1 saw 2 0 3
    (array([[[ 0., 11., 10.]]]), array([[[2., 5.]]]))
    """
    func = "conv_general_dilated_backward"
    algorithm = _algorithm(algorithm, func)
    wanted = _needs(needs, func)
    if "bias" in wanted:
        raise ValueError(f"{func}: needs entries must be 'input' or 'weight' (conv_general_dilated has no bias), "
                         f"got {tuple(needs)!r}")
    _check_precision(precision, func)
    x, w, g, perms, B = _prepare(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation, dimension_numbers,
                                 feature_group_count, batch_group_count, func)
    dt = _out_dtype(x, w, preferred_element_type, func)
    dy = as_real_array(grad_output, func, "grad_output", complex_ok=True)
    out_shape = g if isinstance(g, tuple) else g.spec.output_shape
    expected = tuple(int(v) for v in np.take(out_shape, np.argsort(perms[2])))  # in the out layout
    if dy.shape != expected:
        raise ValueError(f"{func}: grad_output must have the output's shape {expected}, got {dy.shape}")
    dy = np.transpose(dy, perms[2])  # the out layout -> (N/B, O, *H_out)
    x, w, dy = _cast((x, w, dy), dt)
    if isinstance(g, tuple):  # the output reads no input element: both gradients are zeros
        out = result_dtype(dy, x, w)[1]
        grads = Gradients(np.zeros(x.shape, out) if "input" in wanted else None,
                          np.zeros(w.shape, out) if "weight" in wanted else None, None)
        g = None
    else:
        if "weight" in wanted:
            x = general.reduce_input(x, g)
        grads = _gradients(g.spec, dy, x, w, g.spec.output_shape, ("grad_input", False), wanted, algorithm, func,
                           False, "the output (in the out layout of dimension_numbers)")
    dx = dw = None
    if grads.input is not None:
        dx = grads.input if g is None else general.expand_grad_input(grads.input, g)  # (N/B, B*C, *H)
        if B > 1:
            n_b, c = dx.shape[0], dx.shape[1] // B
            dx = dx.reshape(n_b, B, c, *dx.shape[2:]).swapaxes(0, 1)  # (B, N/B, C, *H)
            dx = dx.reshape(B * n_b, c, *dx.shape[3:])                 # (N, C, *H)
        dx = np.ascontiguousarray(np.transpose(dx, np.argsort(perms[0])))  # the lhs layout
    if grads.weight is not None:
        dw = np.ascontiguousarray(np.transpose(grads.weight, np.argsort(perms[1])))  # the rhs layout
    if dt is not None:
        dx = None if dx is None else dx.astype(dt, copy=False)
        dw = None if dw is None else dw.astype(dt, copy=False)
    return Gradients(dx, dw, None)
