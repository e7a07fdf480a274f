"""NumPy's own BLAS, called directly: an accumulating matrix product on strided views, and threads.

``np.matmul`` always overwrites its output, so summing many products (one per kernel tap, one
per batch chunk) costs a temporary and an extra pass over memory for each term. BLAS itself
computes ``C = alpha*A@B + beta*C`` on any matrices whose rows are evenly spaced in memory, so
the fast algorithms call the ``sgemm``/``dgemm`` of the BLAS library NumPy already loaded (the
OpenBLAS of the PyPI wheels), through :mod:`ctypes`. Nothing is compiled and nothing is added
to the dependencies. Where that library cannot be found (NumPy built against another BLAS),
:func:`gemm` computes the same thing with ``np.matmul`` and an add, and everything still works,
only slower; :func:`available` tells which path is in use.

The thread count of that BLAS is process-wide. :func:`single_threaded` lowers it to one while
convgrad's own worker threads each run BLAS on their own chunk of the batch, and restores it
afterwards.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
from typing import NamedTuple

import numpy as np

__all__ = ["available", "gemm", "gemm_blocks", "Buffer", "Block", "get_num_threads", "set_num_threads", "single_threaded", "library"]

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112


class _Blas:
    """The cblas ``?gemm`` and thread functions found in one loaded library."""

    def __init__(self, path: str, lib: ctypes.CDLL, prefix: str, suffix: str, int_type):
        self.path = path
        self.int_type = int_type
        self.gemm = {}
        for char, scalar in (("s", ctypes.c_float), ("d", ctypes.c_double)):
            f = getattr(lib, f"{prefix}cblas_{char}gemm{suffix}")
            f.restype = None
            i = int_type
            f.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, i, i, i, scalar, ctypes.c_void_p, i,
                          ctypes.c_void_p, i, scalar, ctypes.c_void_p, i]
            self.gemm[np.dtype(np.float32 if char == "s" else np.float64)] = f
        self.set_threads = getattr(lib, f"{prefix}openblas_set_num_threads{suffix}", None)
        self.get_threads = getattr(lib, f"{prefix}openblas_get_num_threads{suffix}", None)
        if self.set_threads is not None:
            self.set_threads.argtypes = [ctypes.c_int]
            self.set_threads.restype = None
        if self.get_threads is not None:
            self.get_threads.restype = ctypes.c_int


# (symbol prefix, symbol suffix, integer type): the ILP64 scipy-openblas of NumPy >= 2 wheels,
# a generic ILP64 OpenBLAS, and a plain LP64 one.
_SYMBOLS = (("scipy_", "64_", ctypes.c_int64), ("", "64_", ctypes.c_int64), ("", "", ctypes.c_int))


def _loaded_libraries() -> list[str]:
    """Paths of the shared libraries loaded in this process whose name suggests a BLAS."""
    paths: list[str] = []
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                parts = line.split()
                if len(parts) >= 6 and parts[-1].startswith("/"):
                    name = os.path.basename(parts[-1]).lower()
                    if "openblas" in name and parts[-1] not in paths:
                        paths.append(parts[-1])
    except OSError:  # not Linux: no /proc
        pass
    # NumPy's own copy first (SciPy and others may load another one).
    home = os.path.dirname(os.path.dirname(np.__file__))
    return sorted(paths, key=lambda p: not (p.startswith(home) and "numpy" in p))


def _find() -> _Blas | None:
    if os.environ.get("CONVGRAD_NO_CTYPES_BLAS"):  # a switch for testing the fallback path only
        return None
    np.dot(np.ones((2, 2)), np.ones((2, 2)))  # make sure NumPy's BLAS is loaded
    for path in _loaded_libraries():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix, suffix, int_type in _SYMBOLS:
            if hasattr(lib, f"{prefix}cblas_sgemm{suffix}") and hasattr(lib, f"{prefix}cblas_dgemm{suffix}"):
                return _Blas(path, lib, prefix, suffix, int_type)
    return None


_BLAS = _find()


def available() -> bool:
    """Whether :func:`gemm` calls BLAS directly (``True``) or falls back to ``np.matmul``."""
    return _BLAS is not None


def library() -> str | None:
    """Path of the BLAS library used, or ``None`` when the ``np.matmul`` fallback is in use."""
    return None if _BLAS is None else _BLAS.path


def _operand(m: np.ndarray, itemsize: int):
    """``(transposed, leading_dim)`` if the 2-D view ``m`` is a BLAS matrix, else ``None``.

    A row-major matrix has unit column stride and a row stride of at least its width; a view
    with unit row stride is the transpose of such a matrix.
    """
    rows, cols = m.shape
    s0, s1 = m.strides
    if s0 % itemsize or s1 % itemsize or not m.flags.aligned:
        return None
    if s1 == itemsize or cols == 1:
        ld = s0 // itemsize if rows > 1 else max(1, cols)
        if ld >= max(1, cols):
            return False, ld
    if s0 == itemsize or rows == 1:
        ld = s1 // itemsize if cols > 1 else max(1, rows)
        if ld >= max(1, rows):
            return True, ld
    return None


def gemm(a: np.ndarray, b: np.ndarray, c: np.ndarray, *, alpha: float = 1.0, beta: float = 0.0) -> np.ndarray:
    """``c[...] = alpha * a @ b + beta * c`` in place, for 2-D views of one float dtype.

    ``a`` is ``(M, K)``, ``b`` is ``(K, N)`` and ``c`` is ``(M, N)``. Each may be any view whose
    rows or columns are evenly spaced with unit stride along the other axis (a slice of a larger
    array, a transpose); ``c`` must be such a view with unit column stride and must not overlap
    ``a`` or ``b``. With ``beta=0`` the old contents of ``c`` are ignored (even NaN). Returns ``c``.

    Notes
    -----
    When BLAS cannot take the views directly (other strides, no BLAS found) the same result is
    computed as ``t = a @ b; c *= beta; c += alpha * t``.
    """
    m, k = a.shape
    k2, n = b.shape
    if k != k2 or c.shape != (m, n):
        raise ValueError(f"gemm: shapes {a.shape} @ {b.shape} -> {c.shape} do not match")
    if not (a.dtype == b.dtype == c.dtype) or c.dtype not in (np.float32, np.float64):
        raise TypeError(f"gemm: operands must share a float32/float64 dtype, got {a.dtype}, {b.dtype}, {c.dtype}")
    if m == 0 or n == 0:
        return c
    if k == 0:
        if beta == 0:
            c[...] = 0
        else:
            c *= beta
        return c
    item = c.itemsize
    fa = _operand(a, item)
    fb = _operand(b, item)
    fc = _operand(c, item)
    usable = (
        _BLAS is not None
        and fa is not None
        and fb is not None
        and fc is not None
        and not fc[0]
        and c.flags.writeable
        and not np.may_share_memory(c, a)
        and not np.may_share_memory(c, b)
    )
    if not usable:
        t = np.matmul(a, b)
        if beta == 0:
            np.multiply(t, alpha, out=c) if alpha != 1 else np.copyto(c, t)
        else:
            if beta != 1:
                c *= beta
            if alpha != 1:
                t *= alpha
            c += t
        return c
    _BLAS.gemm[c.dtype](
        _ROW_MAJOR,
        _TRANS if fa[0] else _NO_TRANS,
        _TRANS if fb[0] else _NO_TRANS,
        m, n, k, alpha,
        a.ctypes.data, fa[1],
        b.ctypes.data, fb[1],
        beta,
        c.ctypes.data, fc[1],
    )  # fmt: skip
    return c


# ------------------------------------------------------------------------------------------------
# many small products: operands by address
# ------------------------------------------------------------------------------------------------
#
# :func:`gemm` spends ~7 us in Python per call (three ``ndarray.ctypes`` lookups, the stride
# analysis, two overlap checks) -- as long as a whole (16, 6) @ (6, 5000) product. An algorithm
# that multiplies the same few buffers dozens of times per chunk (one product per kernel tap)
# instead wraps each buffer once in a :class:`Buffer` and names its operands as :class:`Block`\ s
# of it by index arithmetic: :func:`gemm_blocks` then costs ~2 us per call.


class Block(NamedTuple):
    """The matrix ``buffer.array[r0:r0+rows, c0:c0+cols]`` (its transpose if ``trans``), by address.

    ``offset = r0 * buffer.ld + c0`` in elements; ``rows, cols`` are the shape of the matrix
    *as multiplied* (after the transpose). Made by :meth:`Buffer.block`, which checks the bounds.
    """

    buffer: "Buffer"
    offset: int
    rows: int
    cols: int
    trans: bool = False

    @property
    def T(self) -> "Block":
        return Block(self.buffer, self.offset, self.cols, self.rows, not self.trans)

    def view(self) -> np.ndarray:
        """The NumPy view this block stands for (for the fallback path and for tests)."""
        r0, c0 = divmod(self.offset, self.buffer.ld) if self.buffer.ld else (0, self.offset)
        rows, cols = (self.cols, self.rows) if self.trans else (self.rows, self.cols)
        v = self.buffer.array[r0 : r0 + rows, c0 : c0 + cols]
        return v.T if self.trans else v


class Buffer:
    """A 2-D array whose rows are contiguous (unit column stride), for :func:`gemm_blocks`.

    Keeps a reference to the array, so its memory lives as long as the buffer.
    """

    __slots__ = ("array", "ptr", "ld", "rows", "cols", "itemsize", "dtype")

    def __init__(self, array: np.ndarray):
        if array.ndim != 2 or array.dtype not in (np.float32, np.float64):
            raise TypeError(f"Buffer: needs a 2-D float32/float64 array, got {array.ndim}-D {array.dtype}")
        item = array.itemsize
        rows, cols = array.shape
        if cols > 1 and array.strides[1] != item or rows > 1 and array.strides[0] < cols * item \
                or array.strides[0] % item or not array.flags.aligned:
            raise ValueError(f"Buffer: rows must be contiguous and not overlap, got strides {array.strides}")
        self.array = array
        self.ptr = array.ctypes.data
        self.ld = array.strides[0] // item if rows > 1 else max(1, cols)
        self.rows, self.cols = rows, cols
        self.itemsize = item
        self.dtype = array.dtype

    def block(self, r0: int, r1: int, c0: int, c1: int) -> Block:
        """Rows ``[r0, r1)`` and columns ``[c0, c1)``."""
        if not (0 <= r0 <= r1 <= self.rows and 0 <= c0 <= c1 <= self.cols):
            raise IndexError(f"Buffer.block: [{r0}:{r1}, {c0}:{c1}] outside a {self.rows}x{self.cols} buffer")
        return Block(self, r0 * self.ld + c0, r1 - r0, c1 - c0)


def gemm_blocks(a: Block, b: Block, c: Block, *, alpha: float = 1.0, beta: float = 0.0) -> None:
    """``c = alpha * a @ b + beta * c`` in place, on :class:`Block` operands: :func:`gemm` without its per-call analysis.

    ``c`` must not be transposed and must not overlap ``a`` or ``b`` (not checked: the caller
    builds the blocks and knows). Same results as :func:`gemm` on the blocks' views.
    """
    m, k, n = a.rows, a.cols, b.cols
    if b.rows != k or c.rows != m or c.cols != n or c.trans:
        raise ValueError(f"gemm_blocks: shapes ({m}, {k}) @ ({b.rows}, {n}) -> ({c.rows}, {c.cols}) do not match")
    cb = c.buffer
    if not (a.buffer.dtype == b.buffer.dtype == cb.dtype):
        raise TypeError(f"gemm_blocks: operands must share a dtype, got {a.buffer.dtype}, {b.buffer.dtype}, {cb.dtype}")
    if _BLAS is None or m == 0 or n == 0 or k == 0:
        gemm(a.view(), b.view(), c.view(), alpha=alpha, beta=beta)
        return
    item = cb.itemsize
    ab, bb = a.buffer, b.buffer
    _BLAS.gemm[cb.dtype](
        _ROW_MAJOR,
        _TRANS if a.trans else _NO_TRANS,
        _TRANS if b.trans else _NO_TRANS,
        m, n, k, alpha,
        ab.ptr + a.offset * item, ab.ld,
        bb.ptr + b.offset * item, bb.ld,
        beta,
        cb.ptr + c.offset * item, cb.ld,
    )  # fmt: skip


# ------------------------------------------------------------------------------------------------
# threads
# ------------------------------------------------------------------------------------------------

_lock = threading.Lock()
_single_users = 0
_saved_threads: int | None = None


def get_num_threads() -> int | None:
    """The BLAS thread count, or ``None`` if it cannot be read."""
    if _BLAS is None or _BLAS.get_threads is None:
        return None
    return int(_BLAS.get_threads())


def set_num_threads(n: int) -> int | None:
    """Set the BLAS thread count (process-wide); returns the previous one (``None`` if unknown)."""
    previous = get_num_threads()
    if _BLAS is not None and _BLAS.set_threads is not None:
        _BLAS.set_threads(int(n))
    return previous


def can_set_threads() -> bool:
    """Whether the BLAS thread count can be changed (so worker threads may each run BLAS)."""
    return _BLAS is not None and _BLAS.set_threads is not None and _BLAS.get_threads is not None


@contextlib.contextmanager
def single_threaded():
    """Run BLAS on one thread inside the block (nested and concurrent uses are counted).

    BLAS has one thread count for the whole process: while any block is open, every BLAS call
    of the process, from any thread, runs on one thread; the count is restored when the last
    block closes.
    """
    global _single_users, _saved_threads
    if not can_set_threads():
        yield
        return
    with _lock:
        if _single_users == 0:
            _saved_threads = get_num_threads()
            if _saved_threads != 1:
                set_num_threads(1)
        _single_users += 1
    try:
        yield
    finally:
        with _lock:
            _single_users -= 1
            if _single_users == 0 and _saved_threads not in (None, 1):
                set_num_threads(_saved_threads)
