"""Run-time settings of the fast algorithms: workspace limit and number of threads.

Both are explicit: nothing is read from the environment or at import. Set them process-wide
with :func:`set_workspace_limit` / :func:`set_num_threads`, or for a block of code (and only in
the current thread or task) with the :func:`settings` context manager::

    import convgrad
    convgrad.set_workspace_limit(256 * 2**20)          # 256 MiB of scratch memory, process-wide
    with convgrad.settings(workspace_limit=16 * 2**20, num_threads=1):
        g = convgrad.conv_backward(dy, x, w)           # at most 16 MiB of scratch, one thread

**Workspace.** The algorithms allocate their scratch arrays (padded copies, im2col columns,
Winograd tiles, per-thread partial sums) for a chunk of the batch at a time and choose the chunk
so that the scratch of all threads together stays under the limit, whatever the batch size.
The results themselves (output and gradients) are not scratch and are not counted. A single
batch element whose scratch alone exceeds the limit is still computed, one element at a time.

**Threads.** NumPy runs elementwise passes and copies on one core. convgrad splits the batch
into chunks and runs them on ``num_threads`` worker threads (NumPy releases the GIL inside array
operations), with NumPy's BLAS set to one thread meanwhile; with ``num_threads=1`` everything runs
in the calling thread, BLAS on one thread too (left to its own threads, OpenBLAS's spinning made
ResNet-8's training step 13x slower on the 2-core test machine). With ``num_threads`` above 1 but a
single batch element (or a workspace too small for two chunks) there is one worker, and BLAS keeps
its own thread count: its threads are then the only parallelism.

**Process-wide state.** Besides the two settings, convgrad keeps three things for the life of
the process:

- *scratch blocks* (:mod:`convgrad.workspace`): memory given back by finished operations is kept
  for the next ones, up to ``workspace.CACHE_FACTOR`` (1) times the workspace limit with the blocks in use;
  :func:`convgrad.workspace.clear` frees it;
- *BLAS threads* (:func:`convgrad.blas.single_threaded`): while convgrad's workers run, NumPy's
  BLAS (OpenBLAS) is set to one thread for the **whole process** -- BLAS has one process-wide
  thread count -- and restored when the last such operation ends; another thread of the program
  calling BLAS meanwhile runs it on one thread too;
- *algorithm choices*: ``auto``'s picks (per configuration, thread count and workspace limit)
  and ``measure``'s measurements; :func:`convgrad.clear_algorithm_cache` forgets both;
- *freed memory kept mapped* (:mod:`convgrad.memory`): from the first time a :mod:`convgrad.nn`
  layer runs, or :func:`convgrad.set_memory_reuse` says so, glibc's ``malloc`` keeps freed memory
  for the next arrays instead of returning it to the system, so each training step reuses the
  last one's pages (no page faults); ``convgrad.set_memory_reuse(False)`` before the first layer
  keeps glibc's behaviour, after it gives the memory back.
"""

from __future__ import annotations

import contextlib
import contextvars
import operator
import os

__all__ = [
    "DEFAULT_WORKSPACE_LIMIT",
    "get_num_threads",
    "get_workspace_limit",
    "set_num_threads",
    "set_workspace_limit",
    "settings",
]

#: Default scratch-memory limit in bytes (all threads together).
DEFAULT_WORKSPACE_LIMIT = 32 * 2**20


def _cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


_global = {"workspace_limit": DEFAULT_WORKSPACE_LIMIT, "num_threads": _cpu_count()}
_local: contextvars.ContextVar[dict | None] = contextvars.ContextVar("convgrad_settings", default=None)


def _checked_bytes(value, func: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) and not hasattr(value, "__index__"):
        raise TypeError(f"{func}: workspace_limit must be an integer number of bytes, got {value!r}")
    value = operator.index(value)
    if value < 0:
        raise ValueError(f"{func}: workspace_limit must be a non-negative number of bytes, got {value}")
    return value


def _checked_threads(value, func: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) and not hasattr(value, "__index__"):
        raise TypeError(f"{func}: num_threads must be a positive integer, got {value!r}")
    value = operator.index(value)
    if value < 1:
        raise ValueError(f"{func}: num_threads must be a positive integer, got {value}")
    return value


def _current(name: str):
    local = _local.get()
    if local is not None and name in local:
        return local[name]
    return _global[name]


def get_workspace_limit() -> int:
    """The scratch-memory limit in bytes now in effect (see :mod:`convgrad.runtime`)."""
    return _current("workspace_limit")


def set_workspace_limit(nbytes: int) -> int:
    """Set the process-wide scratch-memory limit in bytes; returns the previous value.

    The default is ``DEFAULT_WORKSPACE_LIMIT`` (32 MiB). A :func:`settings` block overrides it.
    """
    value = _checked_bytes(nbytes, "set_workspace_limit")
    previous = _global["workspace_limit"]
    _global["workspace_limit"] = value
    return previous


def get_num_threads() -> int:
    """The number of worker threads now in effect (see :mod:`convgrad.runtime`)."""
    return _current("num_threads")


def set_num_threads(n: int) -> int:
    """Set the process-wide number of worker threads; returns the previous value.

    The default is the number of CPUs this process may run on. A :func:`settings` block
    overrides it.
    """
    value = _checked_threads(n, "set_num_threads")
    previous = _global["num_threads"]
    _global["num_threads"] = value
    return previous


@contextlib.contextmanager
def settings(*, workspace_limit: int | None = None, num_threads: int | None = None):
    """Use the given settings inside the ``with`` block, in the current thread/task only.

    Parameters
    ----------
    workspace_limit : int, optional
        Scratch-memory limit in bytes for all threads together.
    num_threads : int, optional
        Number of worker threads (1 = run in the calling thread).
    """
    changes = {}
    if workspace_limit is not None:
        changes["workspace_limit"] = _checked_bytes(workspace_limit, "settings")
    if num_threads is not None:
        changes["num_threads"] = _checked_threads(num_threads, "settings")
    merged = dict(_local.get() or {})
    merged.update(changes)
    token = _local.set(merged)
    try:
        yield
    finally:
        _local.reset(token)
