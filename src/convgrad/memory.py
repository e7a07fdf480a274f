"""Reusing freed memory between training steps: glibc's malloc kept from handing pages back.

A training step allocates the same arrays at every step (activations, gradients) and frees them
at its end. With glibc's default settings each array of more than a few hundred KiB is a fresh
``mmap`` -- or the top of the heap is given back to the system when freed -- so the next step
touches new pages again: one page fault per 4 KiB page the first time it is written. Measured on
the ResNet-8 step (batch 64, float32, 2026-12-02): about 4,500 page faults per step, and the
step 1.3x slower for them on the test machine (a virtual machine, where a fault is expensive).
PyTorch's CPU tensors come from the same ``malloc`` and fault the same way (8,400 per step).

:func:`set_memory_reuse` raises two ``mallopt`` thresholds for the process: arrays up to
:data:`MMAP_THRESHOLD` come from the heap, and up to :data:`TRIM_THRESHOLD` of free memory at its
top stays mapped, so the next step reuses the last step's pages (ResNet-8: 3 faults per step).
The process's peak memory does not change; what changes is that it keeps that peak mapped
instead of returning freed memory to the system between steps. Meanwhile convgrad's own cache of
scratch blocks (:mod:`convgrad.workspace`) keeps nothing: ``malloc`` does that job now.

It is a process-wide setting of the C library, so convgrad only makes it when asked, or when a
:mod:`convgrad.nn` layer first runs (training is where it pays) unless the program said
``set_memory_reuse(False)`` (or ``None``) before, or its environment tunes ``malloc`` itself
(``MALLOC_*_`` variables, ``GLIBC_TUNABLES=glibc.malloc.*``). Only on Linux with glibc; elsewhere it does nothing and
:func:`get_memory_reuse` says ``False``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import sys
import threading

__all__ = ["get_memory_reuse", "set_memory_reuse", "MMAP_THRESHOLD", "TRIM_THRESHOLD"]

#: Arrays up to this size come from the heap, not a fresh ``mmap`` (glibc's largest allowed value on 64 bits).
MMAP_THRESHOLD = 32 * 2**20
#: Free memory at the top of the heap kept mapped for the next allocations.
TRIM_THRESHOLD = 256 * 2**20
#: glibc's defaults, set back by ``set_memory_reuse(False)`` (glibc then no longer adapts them itself).
_DEFAULT_THRESHOLD = 128 * 2**10
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # <malloc.h>

_lock = threading.Lock()
_state: dict = {"enabled": False, "chosen": False, "applied": False}
_libc = None


def _glibc():
    """The C library's handle when it is glibc with ``mallopt``, else ``None``."""
    global _libc
    if _libc is None:
        _libc = False
        if sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc":
            try:
                lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                lib.mallopt.argtypes, lib.mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
                lib.malloc_trim.argtypes, lib.malloc_trim.restype = (ctypes.c_size_t,), ctypes.c_int
                _libc = lib
            except (OSError, AttributeError):
                _libc = False
    return _libc or None


def get_memory_reuse() -> bool:
    """Whether freed memory is kept for reuse (:func:`set_memory_reuse`).

    Examples
    --------
    >>> import convgrad
    >>> isinstance(convgrad.get_memory_reuse(), bool)
    True
    """
    return _state["enabled"]


def set_memory_reuse(enabled: bool | None = True) -> bool:
    """Keep freed memory mapped for the next allocations (``True``) or give it back to the system (``False``).

    Parameters
    ----------
    enabled : bool or None
        ``True`` raises glibc's ``M_MMAP_THRESHOLD`` to :data:`MMAP_THRESHOLD` and
        ``M_TRIM_THRESHOLD`` to :data:`TRIM_THRESHOLD`. ``False`` before reuse was ever on
        changes nothing (glibc keeps its own, adaptive thresholds) and stops :mod:`convgrad.nn`
        from turning it on; after, it sets both to glibc's initial 128 KiB -- fixed from then
        on, glibc no longer adapts them -- and returns the free memory to the system
        (``malloc_trim``). ``None`` leaves the C library as it is (e.g. as
        ``MALLOC_MMAP_THRESHOLD_`` in the environment set it) and only stops :mod:`convgrad.nn`
        from turning reuse on.

    Returns
    -------
    bool
        Whether reuse is now on: ``False`` after ``set_memory_reuse(True)`` where the C library
        is not glibc (macOS, Windows, musl), which has nothing to set.

    Examples
    --------
    >>> import convgrad
    >>> convgrad.set_memory_reuse(True)        # doctest: +SKIP
    True
    """
    if enabled is not None and not isinstance(enabled, bool):
        raise TypeError(f"set_memory_reuse: enabled must be True, False or None, got {enabled!r}")
    with _lock:
        _state["chosen"] = True
        if enabled is None or (enabled is False and not _state["applied"]):
            return _state["enabled"]  # nothing set yet: glibc keeps its own (adaptive) behaviour
        return _apply(enabled)


def _apply(enabled: bool) -> bool:
    libc = _glibc()
    if libc is None:
        _state["enabled"] = False
        return False
    _state["applied"] = True
    if enabled:
        ok = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    else:
        ok = libc.mallopt(_M_MMAP_THRESHOLD, _DEFAULT_THRESHOLD) and libc.mallopt(_M_TRIM_THRESHOLD, _DEFAULT_THRESHOLD)
        libc.malloc_trim(0)
    _state["enabled"] = bool(enabled and ok)
    if _state["enabled"]:
        from . import workspace

        workspace.clear()  # malloc keeps what it frees: scratch blocks need not be cached (see convgrad.workspace)
    return _state["enabled"]


def set_thresholds(mmap_threshold: int, trim_threshold: int) -> bool:
    """Set glibc's ``M_MMAP_THRESHOLD`` and ``M_TRIM_THRESHOLD`` themselves (what ``MALLOC_MMAP_THRESHOLD_``
    and ``MALLOC_TRIM_THRESHOLD_`` in the environment set at start), whatever :func:`get_memory_reuse` says.
    For measurements: ``convgrad bench --train`` measures peak memory with ``(65536, 0)``. ``False`` without glibc."""
    libc = _glibc()
    return bool(libc and libc.mallopt(_M_MMAP_THRESHOLD, mmap_threshold) and libc.mallopt(_M_TRIM_THRESHOLD, trim_threshold))


def _environment_chose() -> bool:
    """Whether the environment tunes glibc's malloc (``MALLOC_*_`` variables, ``GLIBC_TUNABLES``'s ``glibc.malloc.*``)."""
    return any(k.startswith("MALLOC_") and k.endswith("_") for k in os.environ) \
        or "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", "")


def reuse_by_default() -> None:
    """Turn reuse on unless the program chose already, or its environment tunes malloc itself (called by
    :mod:`convgrad.nn` when a layer first runs)."""
    if _state["chosen"]:
        return
    with _lock:
        if not _state["chosen"]:
            _state["chosen"] = True
            if not _environment_chose():
                _apply(True)
