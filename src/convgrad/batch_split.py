"""The element-wise work of the non-convolution layers, cut along the batch and run on convgrad's threads.

Batch normalisation, activations and pooling are a few passes over arrays of ``(N, C, ...)``;
a pass over 8 MB is bound by one core's memory bandwidth, and NumPy releases the GIL inside it,
so slices of the batch on ``convgrad.get_num_threads()`` threads (the pool of
:mod:`convgrad.parallel`) finish together in a fraction of the time -- as PyTorch's own
element-wise kernels use every core. Small arrays run in the calling thread: handing work to a
thread costs tens of microseconds.

Each slice's results are written into arrays the caller allocated (or returned, one per slice,
for per-channel partial sums, which the caller adds in slice order: the result depends on the
thread count only through the order of those few additions).
"""

from __future__ import annotations

import math
from typing import Callable

from . import parallel, runtime

__all__ = ["MIN_BYTES", "slices", "run"]

MIN_BYTES = 1 << 20  # below this a pass takes ~0.1 ms: not worth a hand-off


def slices(n: int, nbytes: int) -> list[tuple[int, int]]:
    """``(start, stop)`` batch slices, one per thread (a single one when the data is small)."""
    workers = min(runtime.get_num_threads(), n) if nbytes >= MIN_BYTES else 1
    if workers <= 1:
        return [(0, n)]
    return parallel.Plan(batch=n, chunk=math.ceil(n / workers), workers=workers).chunks()


def run(n: int, nbytes: int, work: Callable[[int, int], object]) -> list:
    """``[work(start, stop) for each slice]``, the slices on convgrad's threads; results in slice order.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(8.0).reshape(4, 2)
    >>> sum(run(4, x.nbytes, lambda a, b: x[a:b].sum(axis=0)))
    array([12., 16.])
    """
    parts = slices(n, nbytes)
    if len(parts) == 1:
        return [work(0, n)]
    results: dict[int, object] = {}

    def process(_scratch, start, stop):
        results[start] = work(start, stop)

    parallel.run(parallel.Plan(batch=n, chunk=parts[0][1] - parts[0][0], workers=len(parts)), lambda: None, process)
    return [results[a] for a, _ in parts]
