"""Turning user arrays into computation arrays: dtype rules and checks.

- float16, float32, float64 in -> the same dtype out; float16 is computed in float32.
- Mixed float inputs follow NumPy promotion (float32 with float64 gives float64).
- Integer and bool inputs are promoted to float64 first.
- complex64 and complex128 are accepted where the caller asks for them (``complex_ok=True``: the
  functional API, see :mod:`convgrad.complex`); mixed real and complex operands follow NumPy
  promotion (float32 with complex64 gives complex64, float64 with complex64 gives complex128).
- Object, string, datetime and other non-numeric dtypes are refused with ``TypeError``, and so is
  complex where it is not accepted.
"""

from __future__ import annotations

import numpy as np

_SUPPORTED = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
_COMPLEX = (np.dtype(np.complex64), np.dtype(np.complex128))


def as_real_array(value, func: str, name: str, *, complex_ok: bool = False) -> np.ndarray:
    """``np.asarray(value)`` with a real floating dtype, or a ``TypeError`` naming ``name``.

    With ``complex_ok``, complex64 and complex128 are accepted too (other complex dtypes are not).

    Never copies unless the dtype changes; callers must not write into the result.
    """
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as exc:  # ragged nested lists and the like
        raise TypeError(f"{func}: {name} must be a numeric array, got {type(value).__name__} ({exc})") from None
    kind = arr.dtype.kind
    if kind in "biu":
        return arr.astype(np.float64)
    if kind == "c":
        if complex_ok and arr.dtype in _COMPLEX:
            return arr
        if complex_ok:
            raise TypeError(f"{func}: {name} must be complex64 or complex128 when complex, got dtype {arr.dtype}")
        raise TypeError(f"{func}: {name} must be real; complex arrays are not supported, got dtype {arr.dtype}")
    if kind == "O":
        raise TypeError(f"{func}: {name} must be a numeric array, got dtype object ({type(value).__name__}): pass a "
                        f"NumPy array, a CPU tensor or array (e.g. a PyTorch tensor: x.cpu()), or anything np.asarray "
                        f"turns into a numeric array")
    if kind != "f":
        raise TypeError(f"{func}: {name} must be a numeric array, got dtype {arr.dtype} ({type(value).__name__})")
    if arr.dtype not in _SUPPORTED:
        raise TypeError(f"{func}: {name} must be float16, float32 or float64 (or integer/bool), got dtype {arr.dtype}")
    return arr


def result_dtype(*arrays: np.ndarray | None) -> tuple[np.dtype, np.dtype]:
    """``(compute_dtype, output_dtype)`` for the given (already real) arrays; ``None`` entries are skipped."""
    out = np.result_type(*(a for a in arrays if a is not None))
    compute = np.dtype(np.float32) if out == np.float16 else out
    return compute, out
