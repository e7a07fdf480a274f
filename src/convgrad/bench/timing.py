"""Timing convgrad against PyTorch on one layer, in the same process, alternating.

Protocol, per layer: build the operands once (float32, or ``dtype``) (``x``, ``w``, ``b`` and an output
gradient ``dy``, from a fixed seed; PyTorch gets the same arrays without a copy); run every
timed function ``warmup`` times; then ``repeats`` rounds, each timing convgrad and PyTorch
back to back for the forward pass, the backward pass and both -- convgrad first in even rounds,
PyTorch first in odd ones, so that a slow spell on the (shared) machine hits both. A round times
one library's forward, backward and both in a row, after one untimed forward of that library:
after a call, a library's idle worker threads keep spinning for a while (OpenMP's and OpenBLAS's
wait policies), so the first call after a switch would share its cores with the other library's
spinners (PyTorch's forward of layer g2 took 3.9 ms right after convgrad's backward, 0.2 ms
after its own calls); and pausing instead lets this virtual machine's idle cores fall asleep
(0.6 ms after a 20 ms pause, 12 ms after 100 ms). The reported time is the median over rounds.

What is timed:

- forward: ``convgrad.conv(x, w, b, ...)`` / ``torch.nn.functional.convNd`` under ``no_grad``;
- backward: ``convgrad.conv_backward(dy, x, w, ...)`` (input, weight and bias gradients) /
  ``torch.ops.aten.convolution_backward`` with all three outputs (the kernel autograd calls,
  without the autograd bookkeeping);
- both: the forward followed by the backward, the output kept alive as in training.

With ``data_format="channels_last"`` convgrad gets the same numbers as C-contiguous
``(N, *spatial, C)`` arrays and ``(*kernel, C_in, C_out)`` weights (``weight_format="IO"``), as a
Keras or JAX user holds them, and returns its results in that layout; PyTorch keeps its
channels-first arrays, so its column is the same reference in both runs.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from typing import Callable

import numpy as np

from .. import api, runtime
from .layers import Layer

__all__ = ["OPERATIONS", "operands", "convgrad_functions", "torch_functions", "time_layer", "gemm_peak"]

OPERATIONS = ("forward", "backward", "both")


def operands(layer: Layer, seed: int = 0, dtype: str = "float32") -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x, w, b, dy)`` in ``dtype`` (float32 or float64), standard normal, for ``layer``."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(layer.input_shape, dtype=dtype)
    w = rng.standard_normal(layer.weight_shape, dtype=dtype)
    b = rng.standard_normal(layer.out_channels, dtype=dtype)
    dy = rng.standard_normal(layer.output_shape, dtype=dtype)
    return x, w, b, dy


def convgrad_functions(layer: Layer, x, w, b, dy, algorithm: str = "auto",
                       data_format: str = "channels_first") -> dict[str, Callable]:
    kw = layer.kwargs()
    if data_format == "channels_last":  # contiguous channels-last copies, made once, outside the timing
        from ..layout import data_to_last, weight_to_last

        x, dy = (np.ascontiguousarray(data_to_last(a, layer.ndim)) for a in (x, dy))
        w = np.ascontiguousarray(weight_to_last(w))
        kw.update(data_format="channels_last", weight_format="IO")

    def forward():
        return api.conv(x, w, b, **kw, algorithm=algorithm)

    def backward():
        return api.conv_backward(dy, x, w, **kw, algorithm=algorithm)

    def both():
        y = forward()
        return y, backward()

    return {"forward": forward, "backward": backward, "both": both}


def torch_functions(layer: Layer, x, w, b, dy) -> dict[str, Callable]:
    import torch
    import torch.nn.functional as F

    nd = layer.ndim
    conv = (F.conv1d, F.conv2d, F.conv3d)[nd - 1]
    tx, tw, tb, tdy = (torch.from_numpy(a) for a in (x, w, b, dy))
    kw = layer.kwargs()

    def per_dim(v):
        return list(v) if isinstance(v, (tuple, list)) else [v] * nd

    stride, padding, dilation = per_dim(kw["stride"]), per_dim(kw["padding"]), per_dim(kw["dilation"])

    def forward():
        with torch.no_grad():
            return conv(tx, tw, tb, kw["stride"], kw["padding"], kw["dilation"], kw["groups"])

    def backward():
        return torch.ops.aten.convolution_backward(
            tdy, tx, tw, [layer.out_channels], stride, padding, dilation, False, [0] * nd, kw["groups"], [True, True, True]
        )

    def both():
        y = forward()
        return y, backward()

    return {"forward": forward, "backward": backward, "both": both}


def _time(fn: Callable) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def time_layer(
    layer: Layer,
    *,
    repeats: int = 5,
    warmup: int = 1,
    threads: int = 2,
    algorithm: str = "auto",
    with_torch: bool = True,
    seed: int = 0,
    data_format: str = "channels_first",
    dtype: str = "float32",
) -> dict[str, dict[str, list[float]]]:
    """Seconds per call: ``{library: {operation: [one per round]}}``, libraries alternating."""
    x, w, b, dy = operands(layer, seed, dtype)
    libs = {"convgrad": convgrad_functions(layer, x, w, b, dy, algorithm, data_format)}
    if with_torch:
        import torch

        torch.set_num_threads(threads)
        libs["torch"] = torch_functions(layer, x, w, b, dy)
    times: dict[str, dict[str, list[float]]] = {lib: {op: [] for op in OPERATIONS} for lib in libs}
    names = list(libs)
    with runtime.settings(num_threads=threads), blas_threads(threads):
        for _ in range(warmup):
            for lib in names:
                for op in OPERATIONS:
                    libs[lib][op]()
        for r in range(repeats):
            order = names if r % 2 == 0 else names[::-1]
            for lib in order:
                libs[lib]["forward"]()  # untimed: this library's threads are awake, the other's idle
                for op in OPERATIONS:
                    times[lib][op].append(_time(libs[lib][op]))
    return times


@contextlib.contextmanager
def blas_threads(n: int):
    """NumPy's BLAS on ``n`` threads inside the block (when its thread count can be set)."""
    from .. import blas

    previous = blas.set_num_threads(n)
    try:
        yield
    finally:
        if previous is not None:
            blas.set_num_threads(previous)


def gemm_peak(threads: int, size: int = 2048, repeats: int = 3) -> float:
    """float32 GFLOP/s of NumPy's BLAS on a ``size``-square matrix product: the best of ``repeats``."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    c = np.empty_like(a)
    with blas_threads(threads):
        np.matmul(a, b, out=c)
        best = min(_time(lambda: np.matmul(a, b, out=c)) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def median(values: list[float]) -> float:
    return statistics.median(values)
