"""Complex convolutions through the real algorithms: three real convolutions (Gauss's trick), or two.

Every operation of a :class:`~convgrad.spec.ConvSpec` -- ``forward(x, w)``, ``grad_input(dy, w)``,
``grad_weight(x, dy)`` -- is bilinear in its two operands, and the padding modes only copy
entries, so with ``a = a_r + i a_i`` and ``b = b_r + i b_i`` (``op`` written as a product)::

    op(a, b) = op(a_r, b_r) - op(a_i, b_i)  +  i (op(a_r, b_i) + op(a_i, b_r))

Gauss's trick (as PyTorch's ``complex_convolution``) gets it from three real operations instead of
four::

    k1 = op(a_r + a_i, b_r)      k2 = op(a_r, b_i - b_r)      k3 = op(a_i, b_r + b_i)
    real = k1 - k3               imag = k1 + k2

When one operand is real, two real operations suffice: ``op(a, b_r) + i op(a, b_i)``.

Gradients follow PyTorch's convention (what ``torch.autograd`` returns for a real loss of complex
outputs, the conjugate Wirtinger derivative ``dL/dz_r + i dL/dz_i``): for ``y = conv(x, w) + b``
and ``g = dL/dy``, ``dx = grad_input(g, conj(w))``, ``dw = grad_weight(conj(x), g)``,
``db = sum(g)``. :func:`conj` is the conjugation the API applies before calling :func:`run`.
"""

from __future__ import annotations

import numpy as np

from . import algorithms

__all__ = ["run", "conj", "astype"]


def conj(arr: np.ndarray) -> np.ndarray:
    """``conj(arr)`` for a complex array; a real array is returned as it is (no copy)."""
    return np.conj(arr) if arr.dtype.kind == "c" else arr


def _parts(arr: np.ndarray, real_dtype: np.dtype) -> tuple[np.ndarray, np.ndarray | None]:
    """``(real part, imaginary part)`` as ``real_dtype`` arrays; ``None`` for the part of a real array."""
    if arr.dtype.kind != "c":
        return arr.astype(real_dtype, copy=False), None
    return arr.real.astype(real_dtype), arr.imag.astype(real_dtype)  # contiguous copies for the algorithms


def run(op: str, spec, a: np.ndarray, b: np.ndarray, algorithm: str, *, bias: np.ndarray | None = None,
        func: str) -> np.ndarray:
    """``algorithms.run(op, spec, a, b, ...)`` for real or complex ``a``, ``b`` (and ``bias``).

    Real operands go straight to :func:`convgrad.algorithms.run`. Otherwise each real operation is
    one call of it on the real and imaginary parts, in the real dtype of the same precision
    (complex64 -> float32, complex128 -> float64), and the bias is added at the end.

    Examples
    --------
    >>> import numpy as np
    >>> from convgrad.spec import conv_spec
    >>> spec = conv_spec((1, 1, 3), (1, 1, 2))
    >>> x = np.array([[[1 + 1j, 2, 3j]]])
    >>> w = np.array([[[1j, 1]]])
    >>> run("forward", spec, x, w, "direct", func="doc")     # y[i] = 1j*x[i] + x[i+1]
    array([[[1.+1.j, 0.+5.j]]])
    """
    if a.dtype.kind != "c" and b.dtype.kind != "c" and (bias is None or bias.dtype.kind != "c"):
        return algorithms.run(op, spec, a, b, algorithm, bias=bias, func=func)
    dtype = np.result_type(a, b, *(() if bias is None else (bias,)))
    real = np.dtype(np.float32) if dtype == np.complex64 else np.dtype(np.float64)
    a_r, a_i = _parts(a, real)
    b_r, b_i = _parts(b, real)

    def real_op(first, second):
        return algorithms.run(op, spec, first, second, algorithm, func=func)

    if a_i is None and b_i is None:  # only the bias is complex
        y_r, y_i = real_op(a_r, b_r), None
    elif a_i is None:
        y_r, y_i = real_op(a_r, b_r), real_op(a_r, b_i)
    elif b_i is None:
        y_r, y_i = real_op(a_r, b_r), real_op(a_i, b_r)
    else:  # Gauss: three real operations
        k1 = real_op(a_r + a_i, b_r)
        k2 = real_op(a_r, b_i - b_r)
        k3 = real_op(a_i, b_r + b_i)
        y_r, y_i = k1 - k3, k1 + k2
    y = np.empty(y_r.shape, dtype)
    y.real = y_r
    y.imag = 0 if y_i is None else y_i
    if bias is not None:
        y += bias.reshape(-1, *(1,) * spec.ndim)  # (C, 1, ..., 1) against (N, C, *spatial)
    return y


def astype(arr: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``arr`` in the compute ``dtype``; a real operand of a complex computation stays real (of the same
    precision), so that :func:`run` needs two real operations for it, not three."""
    if dtype.kind == "c" and arr.dtype.kind != "c":
        dtype = np.dtype(np.float32) if dtype == np.complex64 else np.dtype(np.float64)
    return arr.astype(dtype, copy=False)
