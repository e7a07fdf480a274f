"""Convolutions of ``dask.array`` inputs chunked along the batch: lazy, one task per chunk.

:func:`convgrad.conv`, :func:`convgrad.conv_transpose` and :func:`convgrad.conv_backward` hand a
dask array input to the functions here (``pip install 'convgrad[dask]'``). Each chunk of the batch
is computed by the in-memory function itself -- the same validation, the same algorithms -- so a
chunk's rows equal the in-memory result's rows. The reductions over the batch of the backward pass
(``grad_weight``, ``grad_bias``) are per-chunk partial sums added in a tree (``dask.array.sum``):
with float64 they equal the in-memory sums to ~1e-15 relative, with float32 to the summation-order
error of float32 (~1e-6 relative); nothing else differs.

The input must be batched, ``(N, C, *spatial)``, and chunked along ``N`` only: a chunk is whole
samples (``x.rechunk({1: -1, 2: -1, ...})`` makes it so). Weight and bias are in-memory arrays,
sent once to the tasks. Importing this module does not import dask: only calling it does.

Examples
--------
>>> import numpy as np, dask.array as da, convgrad
>>> x = da.from_array(np.arange(2 * 1 * 4 * 4, dtype=float).reshape(2, 1, 4, 4), chunks=(1, 1, 4, 4))
>>> y = convgrad.conv(x, np.ones((1, 1, 3, 3)))       # lazy: nothing computed yet
>>> y.chunks
((1, 1), (1,), (2,), (2,))
>>> y.compute()[1, 0]
array([[189., 198.],
       [225., 234.]])
"""

from __future__ import annotations

import numpy as np

__all__ = ["is_dask_array", "conv", "conv_transpose", "conv_backward"]


def is_dask_array(value) -> bool:
    """Whether ``value`` is a ``dask.array.Array`` (checked without importing dask)."""
    return type(value).__module__.startswith("dask.array") and type(value).__name__ == "Array"


def _check_chunks(x, weight, func: str) -> None:
    """A batched input, chunked along the batch only; weight and bias in memory."""
    w_ndim = np.ndim(weight)
    if is_dask_array(weight):
        raise TypeError(f"{func}: weight must be an in-memory array when the input is a dask array, got a dask array "
                        "(call weight.compute() first)")
    if x.ndim != w_ndim:
        raise ValueError(f"{func}: a dask array input must be batched, (batch, channels, {w_ndim - 2} spatial), "
                         f"i.e. {w_ndim}-D like the weight; got shape {x.shape}")
    split = [d for d in range(1, x.ndim) if len(x.chunks[d]) != 1]
    if split:
        fix = ", ".join(f"{d}: -1" for d in range(1, x.ndim))
        raise ValueError(f"{func}: a dask array input must be chunked along the batch (dim 0) only, but dims {split} are "
                         f"split into chunks {[x.chunks[d] for d in split]}; rechunk with x.rechunk({{{fix}}})")


def _empty_like_batch(x) -> np.ndarray:
    """A zero-sample in-memory stand-in for ``x``: the in-memory function checks it and gives the result's shape."""
    return np.zeros((0, *x.shape[1:]), dtype=x.dtype)


def _forward(fn, func: str, x, weight, bias, args, kwargs):
    """``fn(chunk, weight, bias, *args, **kwargs)`` on every batch chunk of ``x``, lazily."""
    _check_chunks(x, weight, func)
    if is_dask_array(bias):
        raise TypeError(f"{func}: bias must be an in-memory array when the input is a dask array, got a dask array")
    meta = fn(_empty_like_batch(x), weight, bias, *args, **kwargs)  # validates every argument, as in memory
    w = np.asarray(weight)
    b = None if bias is None else np.asarray(bias)
    return x.map_blocks(lambda block: fn(block, w, b, *args, **kwargs), dtype=meta.dtype, meta=meta,
                        chunks=(x.chunks[0], *((n,) for n in meta.shape[1:])))  # (N chunks, C_out, *H_out)


def conv(input, weight, bias=None, *args, **kwargs):
    """:func:`convgrad.conv` of a dask array chunked along the batch: a lazy array with the same batch chunks."""
    from .api import conv as conv_in_memory

    return _forward(conv_in_memory, "conv", input, weight, bias, args, kwargs)


def conv_transpose(input, weight, bias=None, *args, **kwargs):
    """:func:`convgrad.conv_transpose` of a dask array chunked along the batch: lazy, with the same batch chunks."""
    from .api import conv_transpose as conv_transpose_in_memory

    return _forward(conv_transpose_in_memory, "conv_transpose", input, weight, bias, args, kwargs)


def _sum_partials(partials, shape, dtype):
    """The tree sum of per-chunk partial sums (delayed arrays of ``shape``): a lazy array of ``shape``."""
    import dask.array as da

    stacked = da.stack([da.from_delayed(p, shape=shape, dtype=dtype) for p in partials])  # (chunks, *shape)
    return stacked.sum(axis=0, dtype=dtype)


def conv_backward(grad_output, input, weight, *args, **kwargs):
    """:func:`convgrad.conv_backward` with a dask array ``input`` chunked along the batch.

    ``grad_output`` may be a dask or an in-memory array; it is split like ``input`` along the
    batch. Returns ``Gradients(input, weight, bias)`` of lazy dask arrays: ``input`` chunked like
    the input, ``weight`` and ``bias`` tree sums of one partial sum per chunk (``None`` where not
    in ``needs``).
    """
    import dask
    import dask.array as da

    from .api import Gradients
    from .api import conv_backward as backward_in_memory

    func = "conv_backward"
    x = input
    _check_chunks(x, weight, func)
    dy = grad_output if is_dask_array(grad_output) else da.from_array(np.asarray(grad_output), chunks=-1)
    if dy.ndim != x.ndim or dy.shape[0] != x.shape[0]:
        raise ValueError(f"{func}: grad_output must have the output's shape, with the input's batch of {x.shape[0]}, "
                         f"got shape {dy.shape}")
    meta = backward_in_memory(np.zeros((0, *dy.shape[1:]), dy.dtype), _empty_like_batch(x), weight, *args, **kwargs)
    dy = dy.rechunk((x.chunks[0], *(-1,) * (dy.ndim - 1)))  # the same samples in each chunk as the input
    w = np.asarray(weight)
    step = dask.delayed(lambda dyb, xb: tuple(backward_in_memory(dyb, xb, w, *args, **kwargs)), nout=3)
    parts = [step(dyb, xb) for dyb, xb in zip(dy.to_delayed().ravel(), x.to_delayed().ravel())]
    grad_input = grad_weight = grad_bias = None
    if meta.input is not None:
        grad_input = da.concatenate([da.from_delayed(p[0], shape=(n, *x.shape[1:]), dtype=meta.input.dtype)
                                     for p, n in zip(parts, x.chunks[0])])
    if meta.weight is not None:
        grad_weight = _sum_partials([p[1] for p in parts], meta.weight.shape, meta.weight.dtype)
    if meta.bias is not None:
        grad_bias = _sum_partials([p[2] for p in parts], meta.bias.shape, meta.bias.dtype)
    return Gradients(grad_input, grad_weight, grad_bias)
