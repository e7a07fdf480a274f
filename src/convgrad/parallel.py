"""Chunks of the batch, sized to the workspace limit and run on worker threads.

The fast algorithms process the batch a chunk of ``nb`` elements at a time. :func:`plan` picks
``nb`` so that every worker's scratch for one chunk fits in its share of the workspace limit
(:mod:`convgrad.runtime`), and :func:`run` hands the chunks out to ``num_threads`` workers --
the calling thread and threads of a shared pool -- each taking the next chunk when it is done
with the last, so a core slowed by another process simply takes fewer chunks. NumPy releases
the GIL inside array operations and BLAS calls, so the workers really run at the same time.

Every worker owns its scratch (created once by ``make_scratch`` and reused for all its chunks).
:func:`run_chunks` is the one executor the chunked algorithms use: the scratch is a dict of named
buffers, and the buffers named in ``reduce`` (per-worker partial sums, such as the weight
gradient) come back summed over the workers.
While more than one worker runs, NumPy's BLAS is set to one thread (:func:`convgrad.blas.single_threaded`).

:func:`matmul` is a plain matrix product on the same workers, for the products convgrad makes
outside the convolution algorithms (the ``nn`` layers' ``Linear``): one that NumPy hands to its
multithreaded BLAS leaves the BLAS threads spinning for a while after it returns, on the cores the
next operation's workers need. Measured (2026-12-02, 2 cores): the VGG-style step of
``convgrad bench --train`` took 250-280 ms with its final ``Linear`` on NumPy's ``@`` and 200-215 ms
with BLAS kept on one thread -- the convolutions' backward right after it ran at half speed
(layer 128 -> 128's input gradient 19 ms instead of 10).
"""

from __future__ import annotations

import contextvars
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import blas, runtime

__all__ = ["Plan", "plan", "run", "run_chunks", "matmul"]


@dataclass(frozen=True)
class Plan:
    """How the batch is cut: ``chunk`` elements per chunk, ``workers`` threads."""

    batch: int
    chunk: int
    workers: int

    def chunks(self) -> list[tuple[int, int]]:
        """``(start, stop)`` of every chunk, in order: at most ``chunk`` elements each, as even as can be.

        The count is rounded up to a multiple of the workers, so that each can take as many
        elements as the others (32 elements in chunks of at most 3 on 2 workers: 8 chunks of 3 and
        4 of 2, 16 elements each, rather than 10 of 3 and 1 of 2: 17 against 15).
        """
        if self.batch == 0:
            return []
        n = -(-self.batch // self.chunk)
        n = min(self.batch, -(-n // self.workers) * self.workers)
        base, extra = divmod(self.batch, n)
        bounds = [0]
        for i in range(n):
            bounds.append(bounds[-1] + base + (i < extra))
        return list(zip(bounds[:-1], bounds[1:]))


def plan(batch: int, per_item: int, fixed: int = 0, *, uses_blas: bool = True, min_chunks_per_worker: int = 2,
         max_chunk: int | None = None) -> Plan:
    """Chunk size and worker count for ``batch`` elements.

    Parameters
    ----------
    per_item : int
        Scratch bytes one worker needs per batch element of its chunk.
    fixed : int
        Scratch bytes one worker needs whatever its chunk size (partial sums, transformed weights).
    uses_blas : bool
        Whether the work is mostly BLAS. Then, when BLAS's own thread count cannot be set, a single
        worker runs and BLAS does the threading.
    min_chunks_per_worker : int
        Cut the batch finer than the memory requires, so that the workers finish together.
    max_chunk : int, optional
        At most this many elements per chunk (to keep a chunk's arrays in cache).

    Notes
    -----
    ``workers * (fixed + chunk * per_item) <= workspace_limit`` whenever ``chunk >= 1`` allows it;
    otherwise one element per chunk and as many workers as fit (at least one).
    """
    threads = runtime.get_num_threads()
    if uses_blas and not blas.can_set_threads():
        threads = 1
    limit = runtime.get_workspace_limit()
    workers = max(1, min(threads, batch))
    # fewer workers if even one element each does not fit
    while workers > 1 and workers * (fixed + per_item) > limit:
        workers -= 1
    share = limit // workers - fixed
    chunk = max(1, share // per_item) if per_item > 0 else batch
    chunk = min(chunk, max(1, math.ceil(batch / (workers * min_chunks_per_worker))) if workers > 1 else chunk)
    if max_chunk is not None:
        chunk = min(chunk, max_chunk)
    chunk = max(1, min(chunk, batch))
    workers = max(1, min(workers, math.ceil(batch / chunk))) if batch else 1
    return Plan(batch=batch, chunk=chunk, workers=workers)


_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_lock = threading.Lock()


def _executor(size: int) -> ThreadPoolExecutor:
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size < size:
            old = _pool
            _pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="convgrad")
            _pool_size = size
            if old is not None:
                old.shutdown(wait=False)
        return _pool


def run(the_plan: Plan, make_scratch: Callable[[], object], process: Callable[[object, int, int], None]) -> list:
    """Call ``process(scratch, start, stop)`` for every chunk; return each worker's scratch.

    ``make_scratch()`` is called once per worker, in that worker. Exceptions in any worker are
    re-raised in the caller (after all workers stopped).
    """
    chunks = the_plan.chunks()
    if not chunks:
        return []
    if the_plan.workers <= 1:
        scratch = make_scratch()
        for start, stop in chunks:
            process(scratch, start, stop)
        return [scratch]

    lock = threading.Lock()
    pending = iter(chunks)
    failed = threading.Event()

    def worker():
        scratch = None
        while not failed.is_set():
            with lock:
                item = next(pending, None)
            if item is None:
                break
            if scratch is None:
                scratch = make_scratch()
            try:
                process(scratch, *item)
            except BaseException:
                failed.set()
                raise
        return scratch

    with blas.single_threaded():
        # each worker runs in a copy of the caller's context: it sees its settings and workspace scope
        futures = [_executor(the_plan.workers - 1).submit(contextvars.copy_context().run, worker)
                   for _ in range(the_plan.workers - 1)]
        error = None
        try:
            mine = worker()
        except BaseException as exc:  # finish the others before raising
            error = exc
            mine = None
        results = [mine]
        for f in futures:
            try:
                results.append(f.result())
            except BaseException as exc:
                error = error or exc
        if error is not None:
            raise error
    return [r for r in results if r is not None]


def run_chunks(the_plan: Plan, make_scratch: Callable[[], dict], process: Callable[[dict, int, int], None],
               reduce: tuple[str, ...] = ()) -> dict:
    """Call ``process(scratch, start, stop)`` for every chunk of ``the_plan``; return the reduced partials.

    Parameters
    ----------
    make_scratch : callable
        Called once per worker, in that worker: the worker's named buffers, ``{name: array or object}``
        (layouts the chunks share, partial sums, caches), reused for all its chunks.
    process : callable
        Computes one chunk ``[start, stop)`` of the batch into the caller's result, using ``scratch``.
    reduce : tuple of str
        The scratch entries that are per-worker partial sums: returned as ``{name: sum over workers}``
        (summed in worker order, the calling thread's first; ``{}`` for an empty batch).

    Examples
    --------
    >>> import numpy as np
    >>> data = np.arange(10.0)
    >>> def add(s, a, b):
    ...     s["total"] += data[a:b].sum()
    >>> run_chunks(Plan(batch=10, chunk=3, workers=1), lambda: {"total": np.zeros(())}, add, reduce=("total",))
    {'total': array(45.)}
    """
    partials = run(the_plan, make_scratch, process)
    out = {}
    for name in reduce:
        if partials:
            total = partials[0][name]
            for part in partials[1:]:
                total += part[name]
            out[name] = total
    return out


#: Multiply-adds (of float32; a float64 one counts twice) below which :func:`matmul` runs on the
#: calling thread alone (~0.1 ms of BLAS). LeNet's ``Linear(400, 120)`` at batch 64 (3M, 80 us in float32)
#: took 2.5x longer handed to two workers than alone (2026-12-02, load 3).
MATMUL_SPLIT = 2**22


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``a @ b`` for 2-D float arrays, or stacks ``(G, M, K) @ (G, K, N)``, on convgrad's workers with BLAS on one thread each.

    The result is cut into column blocks (or row blocks, whichever dimension is longer), one per
    worker, each a single-threaded BLAS product into its part of the result; a product under
    :data:`MATMUL_SPLIT` multiply-adds runs on the calling thread. The same sums as ``np.matmul``
    (each entry is one BLAS dot product of a row and a column, up to the last bits where BLAS blocks
    the sum differently for the smaller products), without waking BLAS's own threads.
    A stack of such small products is one NumPy call; of larger ones, multiplied matrix by matrix,
    each split so. ``out``, if given, is a C-contiguous array
    of the result's shape and dtype that receives it (scratch of the caller's).

    Examples
    --------
    >>> import numpy as np
    >>> a, b = np.arange(6.0).reshape(2, 3), np.arange(12.0).reshape(3, 4)
    >>> bool(np.array_equal(matmul(a, b), a @ b))
    True
    >>> matmul(np.ones((5, 2, 3)), np.ones((5, 3, 4))).shape
    (5, 2, 4)
    """
    stacked = a.ndim == 3 and b.ndim == 3 and a.shape[0] == b.shape[0]
    if not (stacked or a.ndim == b.ndim == 2) or a.shape[-1] != b.shape[-2]:
        raise ValueError(f"matmul: needs (M, K) @ (K, N) matrices or (G, M, K) @ (G, K, N) stacks, "
                         f"got shapes {a.shape} and {b.shape}")
    shape = (*a.shape[:-1], b.shape[-1])
    if out is None:
        out = np.empty(shape, np.result_type(a, b))
    elif out.shape != shape or not out.flags.c_contiguous:
        raise ValueError(f"matmul: out must be a C-contiguous array of shape {shape}, got {out.shape}")
    if not stacked:
        return _matmul2(a, b, out)
    if not _splits(out.dtype, a.shape[1], b.shape[2], a.shape[2]):
        with blas.single_threaded():  # small groups: one NumPy call for the stack (a Python loop costs more)
            return np.matmul(a, b, out=out)
    for g in range(a.shape[0]):
        _matmul2(a[g], b[g], out[g])
    return out


def _splits(dtype, m: int, n: int, k: int) -> bool:
    """Whether an ``(m, k) @ (k, n)`` product of ``dtype`` is worth cutting over the workers."""
    return dtype in (np.float32, np.float64) and blas.can_set_threads() and runtime.get_num_threads() > 1 \
        and m * n * k * (np.dtype(dtype).itemsize // 4) >= MATMUL_SPLIT


def _matmul2(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out[...] = a @ b`` for 2-D operands (:func:`matmul`)."""
    dtype = out.dtype
    m, n = out.shape
    if not _splits(dtype, m, n, a.shape[1]):
        with blas.single_threaded():
            return np.matmul(a, b, out=out)
    a, b = a.astype(dtype, copy=False), b.astype(dtype, copy=False)
    by_rows = m >= n
    length = m if by_rows else n
    parts = min(runtime.get_num_threads(), length)
    bounds = [length * i // parts for i in range(parts + 1)]

    def process(_, i0, i1):
        for p in range(i0, i1):
            lo, hi = bounds[p], bounds[p + 1]
            if by_rows:
                blas.gemm(a[lo:hi], b, out[lo:hi])
            else:
                blas.gemm(a, b[:, lo:hi], out[:, lo:hi])

    run(Plan(batch=parts, chunk=1, workers=parts), dict, process)
    return out
