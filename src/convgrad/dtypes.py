"""Turning user arrays into computation arrays: dtype rules and checks.

- float16, float32, float64 in -> the same dtype out; float16 is computed in float32.
- Mixed float inputs follow NumPy promotion (float32 with float64 gives float64).
- Integer and bool inputs are promoted to float64 first.
- Complex, object, string, datetime and other non-real dtypes are refused with ``TypeError``.
"""

from __future__ import annotations

import numpy as np

_SUPPORTED = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


def as_real_array(value, func: str, name: str) -> np.ndarray:
    """``np.asarray(value)`` with a real floating dtype, or a ``TypeError`` naming ``name``.

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
        raise TypeError(f"{func}: {name} must be real; complex arrays are not supported, got dtype {arr.dtype}")
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
