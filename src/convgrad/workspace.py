"""Scratch memory kept between calls, because fresh memory costs a page fault per page.

The fast algorithms take their scratch arrays (padded copies, im2col matrices, Winograd tiles,
partial sums) from :func:`empty` / :func:`zeros` instead of NumPy. Inside a :func:`scope` --
:func:`convgrad.algorithms.run` opens one per operation -- a request is served from a cache of
blocks that earlier operations gave back, when one large enough is there (the smallest, at most
``FIT_FACTOR`` times the request); when the scope ends, its blocks go back to the cache. Blocks
in use and cached together stay under ``CACHE_FACTOR`` times the workspace limit
(:mod:`convgrad.runtime`) as far as the cache can make room: a fresh block first drops cached
ones, and over the cap a returned block drops smaller ones or is not kept; :func:`clear` empties it. Outside a scope, and for
arrays under ``MIN_BYTES``, the functions are plain ``np.empty`` / ``np.zeros``.

Why: memory a process gets fresh from the kernel costs a page fault on the first touch of each
4 KiB page -- about 3 us on this virtual machine, so 3 ms for the 4 MB im2col matrix of a
LeNet-sized layer whose whole backward pass takes 1.5 ms -- and whether ``malloc`` hands back
recycled or fresh pages for a large block depends on the process's history (glibc returns large
freed blocks to the kernel and adjusts its thresholds as it goes). Measured on layer g2's
backward with ``gemm``: 1.7 ms without page faults, 4-6 ms with the ~940 of a fresh allocation.

While :func:`convgrad.set_memory_reuse` keeps freed memory mapped (as :mod:`convgrad.nn` turns on
when a layer first runs), the cache keeps nothing: ``malloc`` recycles the same pages without faults
(ResNet-8's training step: the same time with and without the cache, 2026-12-02), and the scratch
of finished operations no longer adds to the step's live memory (11-15 MiB in ResNet-8).

Blocks are shared by all threads (a lock guards the cache); a worker thread of
:mod:`convgrad.parallel` sees the scope of the operation it works for. Results returned to the
caller are never taken from here.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import threading

import numpy as np

from . import memory, runtime

__all__ = ["empty", "zeros", "scope", "clear", "cached_bytes", "MIN_BYTES", "CACHE_FACTOR"]

#: Requests below this many bytes go to NumPy (malloc serves them from its heap without page faults).
MIN_BYTES = 64 * 2**10
#: Blocks in use and cached together: at most this many times the workspace limit, as far as
#: dropping cached blocks can make room (a request no cached block serves first drops cached blocks
#: until the fresh one fits). Peak memory and page faults per step of ``convgrad bench --train``'s
#: VGG-style net (MALLOC_MMAP_THRESHOLD_=65536, 2026-12-02): float32 142 MiB / 69k faults with
#: exact-size blocks and a cap of 2 without the blocks in use; 125 / 46k with the cap of 2 counting
#: them; 117 / 49k with 1. float64: 223 / 106k, 236 / 53k, 206 / 65k.
CACHE_FACTOR = 1
#: A request is served by a cached block up to this many times its size (the smallest that fits):
#: with exact sizes only, the VGG-style training step of ``convgrad bench --train`` (six convolutions,
#: three operations each, all with their own scratch sizes) filled the cache with blocks no later
#: request matched and allocated 53 MiB of fresh scratch per step (13 600 page faults).
FIT_FACTOR = 4
_GRAIN = 4096  # block sizes are rounded up to whole pages

_lock = threading.Lock()
_free: dict[int, list[np.ndarray]] = {}
_cached = 0
_in_use = 0  # bytes of blocks handed out to open scopes
_scope: contextvars.ContextVar[list | None] = contextvars.ContextVar("convgrad_workspace_scope", default=None)


def empty(shape, dtype) -> np.ndarray:
    """An uninitialised scratch array (from the cache inside a :func:`scope`)."""
    global _cached, _in_use
    dtype = np.dtype(dtype)
    shape = tuple(shape) if isinstance(shape, (tuple, list)) else (shape,)
    nbytes = math.prod(shape) * dtype.itemsize
    held = _scope.get()
    if held is None or nbytes < MIN_BYTES:
        return np.empty(shape, dtype)
    size = -(-nbytes // _GRAIN) * _GRAIN
    block = None
    with _lock:
        fits = [s for s in _free if size <= s <= FIT_FACTOR * size]
        if fits:  # the smallest cached block that holds the request
            best = min(fits)
            blocks = _free[best]
            block = blocks.pop()
            if not blocks:
                del _free[best]
            _cached -= best
        else:  # a fresh block: first drop cached ones (smallest first) until what is held fits the cap
            cap = _cap()
            for s in sorted(_free):
                while _free[s] and _cached and _in_use + _cached + size > cap:
                    _free[s].pop()
                    _cached -= s
                if not _free[s]:
                    del _free[s]
        _in_use += size if block is None else block.size
    if block is None:
        block = np.empty(size, np.uint8)
    held.append(block)
    return block[:nbytes].view(dtype).reshape(shape)


def _cap() -> int:
    """Bytes of blocks in use and cached together; none cached while malloc keeps freed memory mapped
    (:mod:`convgrad.memory`): its heap then serves the next request without page faults."""
    return 0 if memory.get_memory_reuse() else CACHE_FACTOR * runtime.get_workspace_limit()


def zeros(shape, dtype) -> np.ndarray:
    """A zeroed scratch array (from the cache inside a :func:`scope`)."""
    a = empty(shape, dtype)
    a.fill(0)
    return a


@contextlib.contextmanager
def scope():
    """Scratch arrays taken inside the block go back to the cache when it ends (they must not be used after)."""
    held: list[np.ndarray] = []
    token = _scope.set(held)
    try:
        yield
    finally:
        _scope.reset(token)
        _give_back(held)


def _give_back(blocks: list[np.ndarray]) -> None:
    """Cache ``blocks``, the largest first; over the cap, smaller cached blocks make room for a larger one
    (a larger block serves more requests: :data:`FIT_FACTOR`)."""
    global _cached, _in_use
    cap = _cap()
    with _lock:
        _in_use -= sum(block.size for block in blocks)
        for block in sorted(blocks, key=lambda b: b.size, reverse=True):
            if block.size > cap:
                continue
            for size in sorted(_free):
                if _cached + block.size <= cap or size >= block.size:
                    break
                while _free[size] and _cached + block.size > cap:  # evict smaller blocks
                    _free[size].pop()
                    _cached -= size
                if not _free[size]:
                    del _free[size]
            if _cached + block.size <= cap:
                _free.setdefault(block.size, []).append(block)
                _cached += block.size


def clear() -> None:
    """Forget every cached block (memory in use by a running operation is not affected)."""
    global _cached
    with _lock:
        _free.clear()
        _cached = 0


def cached_bytes() -> int:
    """Bytes held by the cache now."""
    return _cached
