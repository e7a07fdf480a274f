"""Max and average pooling, forward and backward, any rank (1-3), as ``torch.nn.functional``.

The stateless functions :func:`max_pool`, :func:`max_pool_backward`, :func:`avg_pool` and
:func:`avg_pool_backward` are the same code the ``convgrad.nn`` pooling layers call.

Geometry per spatial dim (input length ``H``, kernel ``K``, stride ``S``, padding ``P``,
dilation ``D``; average pooling has ``D = 1``), PyTorch's rule::

    H_out = floor((H + 2P - D*(K-1) - 1) / S) + 1     (ceil with ceil_mode, minus one if the last
                                                      window would start in the right padding)
    window i reads  i*S + k*D - P   for k = 0 .. K-1

Max pooling is separable: the maximum over a box is the maximum, along the first dim, of the
maxima along the others. The forward pass reduces one dim at a time (last first), each as a
loop over that dim's ``K`` taps on strided slices, and tracks which tap held the maximum as
one small integer per output (the row-major tap number ``t = k_1*K_2 + k_2``); strict ``>``
keeps the first maximum in row-major order, as PyTorch does (a NaN wins, the last NaN on
several, as PyTorch). The backward pass sends each output gradient to that one tap::

    max:  dx[i*S + k*D - P] += dy[i]              for the tap k that held the maximum
    avg:  dx[i*S + k   - P] += dy[i] / divisor[i]   for every tap k

The public functions take PyTorch tensors (with or without ``requires_grad``), JAX arrays and other
DLPack arrays on the CPU too, and return the first array argument's type (:mod:`convgrad.arrays`);
``max_pool``'s indices come back the same way (from a tensor: an ``int64`` tensor, as PyTorch's).
"""

from __future__ import annotations

import math

import numpy as np

from . import arrays, batch_split, pool_tiles
from .dtypes import as_real_array
from .spec import positive_ints

__all__ = ["max_pool", "max_pool_backward", "avg_pool", "avg_pool_backward"]


# ------------------------------------------------------------------------------------------------
# arguments and geometry
# ------------------------------------------------------------------------------------------------


def nonneg_ints(value, rank: int, func: str, name: str) -> tuple[int, ...]:
    """``value`` (an int or ``rank`` ints) as a tuple of non-negative ints, or a clear error."""
    items = (value,) * rank if isinstance(value, (int, np.integer)) and not isinstance(value, bool) else value
    try:
        items = tuple(items)
    except TypeError:
        raise TypeError(f"{func}: {name} must be an int or a tuple of {rank} ints, got {value!r}") from None
    if len(items) != rank or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in items):
        raise TypeError(f"{func}: {name} must be an int or a tuple of {rank} ints, got {value!r}")
    if any(v < 0 for v in items):
        raise ValueError(f"{func}: {name} must be non-negative, got {value!r}")
    return tuple(int(v) for v in items)


def _flag(value, func: str, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{func}: {name} must be True or False, got {value!r}")
    return bool(value)


class PoolArgs:
    """Checked pooling arguments for one rank: per-dim tuples, as every pass reads them."""

    __slots__ = ("rank", "kernel", "stride", "padding", "dilation", "ceil_mode", "func")

    def __init__(self, rank, kernel_size, stride, padding, dilation, ceil_mode, func):
        self.rank, self.func = rank, func
        self.kernel = positive_ints(kernel_size, rank, func, "kernel_size")
        self.stride = self.kernel if stride is None else positive_ints(stride, rank, func, "stride")
        self.padding = nonneg_ints(padding, rank, func, "padding")
        self.dilation = positive_ints(dilation, rank, func, "dilation")
        if any(p > k // 2 for p, k in zip(self.padding, self.kernel)):
            raise ValueError(f"{func}: padding must be at most half the kernel size, got padding={self.padding} "
                             f"for kernel_size={self.kernel}")
        self.ceil_mode = _flag(ceil_mode, func, "ceil_mode")

    def geometry(self, size: tuple[int, ...]) -> "Geometry":
        return Geometry(size, self)


class Geometry:
    """Output sizes and the padding that puts every window inside the array, for one input size."""

    def __init__(self, size: tuple[int, ...], args: PoolArgs):
        self.size, self.args = tuple(size), args
        out, hi = [], []
        for dim, (h, k, s, p, d) in enumerate(zip(size, args.kernel, args.stride, args.padding, args.dilation)):
            span = h + 2 * p - d * (k - 1) - 1
            if span < 0:
                raise ValueError(f"{args.func}: the window (dilation*(kernel_size-1)+1 = {d * (k - 1) + 1}) is larger "
                                 f"than the padded input ({h} + 2*{p}) in spatial dim {dim}")
            o = (-(-span // s) if args.ceil_mode else span // s) + 1
            if args.ceil_mode and (o - 1) * s >= h + p:
                o -= 1
            out.append(o)
            hi.append(max(0, (o - 1) * s + d * (k - 1) + 1 - h - p))
        self.output = tuple(out)
        self.pad = tuple(zip(args.padding, hi))  # (lo, hi) per dim; hi covers ceil_mode's last window
        self.padded_size = tuple(h + lo + hi for h, (lo, hi) in zip(self.size, self.pad))
        self.cropping = any(lo or hi for lo, hi in self.pad)
        # each input position read by one window at most (the backward pass may then assign)
        self.disjoint = all(s >= d * (k - 1) + 1 for s, k, d in zip(args.stride, args.kernel, args.dilation))
        taps = math.prod(args.kernel)
        self.index_dtype = np.dtype(np.int8 if taps <= 127 else np.int16 if taps <= 32767 else np.int32)

    def padded(self, x: np.ndarray, fill) -> np.ndarray:
        if not self.cropping:
            return x
        return np.pad(x, [(0, 0)] * (x.ndim - len(self.pad)) + list(self.pad), constant_values=fill)

    def crop(self, xp: np.ndarray) -> np.ndarray:
        """The real input's part of a padded array (a contiguous copy)."""
        if not self.cropping:
            return xp
        index = (Ellipsis, *(slice(lo, lo + h) for (lo, _), h in zip(self.pad, self.size)))
        return np.ascontiguousarray(xp[index])

    def tap_slice(self, dim: int, k: int) -> slice:
        """Along spatial ``dim`` of the padded input: the positions tap ``k`` reads for every window."""
        s, d, o = self.args.stride[dim], self.args.dilation[dim], self.output[dim]
        return slice(k * d, k * d + (o - 1) * s + 1, s)

    def taps(self):
        """``(row-major tap number, index of the padded input that tap reads for every window)``."""
        r = len(self.size)
        for t, tap in enumerate(np.ndindex(*self.args.kernel)):
            yield t, (Ellipsis, *(self.tap_slice(dim, k) for dim, k in zip(range(r), tap)))


def _input(x, rank: int | None, kernel_size, func: str) -> tuple[np.ndarray, int]:
    """The input as a real array and the pooling rank (from ``kernel_size``'s length, else ``x.ndim - 2``)."""
    x = as_real_array(x, func, "input")
    if rank is None:
        if isinstance(kernel_size, (int, np.integer)) and not isinstance(kernel_size, bool):
            rank = x.ndim - 2
            if not 1 <= rank <= 3:
                raise ValueError(f"{func}: input must be (N, C, *spatial) with 1-3 spatial dims when kernel_size is "
                                 f"an int, got shape {x.shape}; give kernel_size as a tuple for an unbatched input")
        else:
            try:
                if isinstance(kernel_size, (str, bytes)):
                    raise TypeError
                rank = len(kernel_size)
            except TypeError:
                raise TypeError(f"{func}: kernel_size must be an int or a tuple of ints, got {kernel_size!r}") from None
            if not 1 <= rank <= 3:
                raise ValueError(f"{func}: kernel_size must have 1-3 entries (one per spatial dim), got {kernel_size!r}")
    if x.ndim not in (rank + 1, rank + 2):
        raise ValueError(f"{func}: input must be {rank + 2}-d (batch, channels, {rank} spatial) or {rank + 1}-d "
                         f"(unbatched), got shape {x.shape}")
    return x, rank


def _grad(grad_output, shape, func: str) -> np.ndarray:
    dy = as_real_array(grad_output, func, "grad_output")
    if dy.shape != tuple(shape):
        raise ValueError(f"{func}: grad_output must have shape {tuple(shape)} (the output's), got {dy.shape}")
    return dy


# ------------------------------------------------------------------------------------------------
# max pooling: the kernels the nn layers call
# ------------------------------------------------------------------------------------------------


def max_forward(x: np.ndarray, geom: Geometry) -> tuple[np.ndarray, np.ndarray]:
    """``(y, tap)``: the window maxima and, per output, the row-major number of the tap that held it."""
    if pool_tiles.applies(geom):  # windows that tile the input (2x2 at stride 2): one pass per tap
        y, tap = pool_tiles.forward(x, geom)
    else:
        y, tap = _split_max(geom.padded(x, -np.inf), geom, nan_aware=False)
    if y.dtype.kind == "f" and np.isnan(y).any():  # rare: redo with PyTorch's NaN rule for the index
        y, tap = _split_max(geom.padded(x, -np.inf), geom, nan_aware=True)
    return y, tap


def _split_max(xp: np.ndarray, geom: Geometry, nan_aware: bool) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_separable_max` on slices of the leading dim, on convgrad's threads (one call when small)."""
    parts = batch_split.slices(xp.shape[0], xp.nbytes)
    if len(parts) == 1:
        return _separable_max(xp, geom, nan_aware)
    shape = xp.shape[: xp.ndim - len(geom.size)] + geom.output
    y, tap = np.empty(shape, xp.dtype), np.empty(shape, geom.index_dtype)

    def work(a, b):
        y[a:b], tap[a:b] = _separable_max(xp[a:b], geom, nan_aware)

    batch_split.run(xp.shape[0], xp.nbytes, work)
    return y, tap


def _separable_max(xp: np.ndarray, geom: Geometry, nan_aware: bool) -> tuple[np.ndarray, np.ndarray]:
    r, lead = len(geom.size), xp.ndim - len(geom.size)
    val, tap, mult, fresh = xp, None, 1, False
    for dim in range(r - 1, -1, -1):  # last dim first: the tap number's fastest digit
        k_dim = geom.args.kernel[dim]
        at = (slice(None),) * (lead + dim)
        sl = [at + (geom.tap_slice(dim, k),) for k in range(k_dim)]
        # cur: (*lead, dims not yet reduced, this dim's output, dims already reduced)
        if k_dim == 1:
            cur, idx = val[sl[0]], (np.zeros(val[sl[0]].shape, geom.index_dtype) if tap is None else tap[sl[0]])
        else:
            v0, v1 = val[sl[0]], val[sl[1]]
            better = _greater(v1, v0, nan_aware)
            cur = np.maximum(v0, v1)
            fresh = True
            if tap is None:
                idx = better.astype(geom.index_dtype)
            else:
                idx = np.where(better, tap[sl[1]] + geom.index_dtype.type(mult), tap[sl[0]])
            for k in range(2, k_dim):
                v = val[sl[k]]
                better = _greater(v, cur, nan_aware)
                np.maximum(cur, v, out=cur)
                np.copyto(idx, k if tap is None else tap[sl[k]] + geom.index_dtype.type(k * mult), where=better)
        val, tap, mult = cur, idx, mult * k_dim
    return (val if fresh else val.copy()), np.ascontiguousarray(tap)


def _greater(v: np.ndarray, cur: np.ndarray, nan_aware: bool) -> np.ndarray:
    """Where ``v`` takes the window's place: strictly greater (the first maximum stays), or NaN (PyTorch)."""
    better = v > cur
    if nan_aware:
        better |= np.isnan(v)
    return better


def max_backward(dy: np.ndarray, tap: np.ndarray, geom: Geometry, gate: np.ndarray | None = None) -> np.ndarray:
    """``dx``: each output gradient sent to the input position its tap read (summed where windows overlap).

    ``gate`` (the fused ``relu(pool(x))``'s output) first zeroes ``dy`` where ``gate > 0`` is false.
    """
    lead = dy.shape[: dy.ndim - len(geom.size)]
    if pool_tiles.applies(geom) and dy.size >= pool_tiles.BACKWARD_MIN:  # whole rows or one write per tap
        return pool_tiles.backward(dy, tap, geom, gate)
    if gate is not None:
        dy = np.where(gate > 0, dy, dy.dtype.type(0))
    if geom.disjoint:  # every position gets at most one gradient: one scatter per slice of the batch
        dxp = np.empty(lead + geom.padded_size, dtype=dy.dtype)
        plane = math.prod(geom.padded_size)

        def work(a, b):
            flat = _padded_flat_index(tap[a:b], geom)  # (L, prod(out)) into its plane of prod(padded)
            flat += (np.arange(flat.shape[0], dtype=np.intp) * plane)[:, None]
            out = dxp[a:b].reshape(-1)  # a view: dxp is contiguous and sliced on its first dim
            out.fill(0)
            out[flat.ravel()] = dy[a:b].ravel()

        batch_split.run(dy.shape[0], dxp.nbytes, work)
        return geom.crop(dxp)
    dxp = np.zeros(lead + geom.padded_size, dtype=dy.dtype)
    for t, index in geom.taps():
        dxp[index] += dy * (tap == t)
    return geom.crop(dxp)


def _padded_flat_index(tap: np.ndarray, geom: Geometry) -> np.ndarray:
    """Per output, the flat position in its (padded) plane that its tap read: ``(L, prod(out))``."""
    strides = _row_major_strides(geom.padded_size)
    args = geom.args
    offset = np.array([sum(k * d * st for k, d, st in zip(t, args.dilation, strides)) for t in np.ndindex(*args.kernel)],
                      dtype=np.intp)
    base = sum(np.arange(o).reshape((-1,) + (1,) * (len(geom.output) - 1 - dim)) * (s * st)
               for dim, (o, s, st) in enumerate(zip(geom.output, args.stride, strides)))
    flat = offset[tap]  # (*lead, *out)
    flat += base
    return flat.reshape(-1, math.prod(geom.output))


def _row_major_strides(size) -> list[int]:
    return [math.prod(size[i + 1:]) for i in range(len(size))]


def _torch_indices(tap: np.ndarray, geom: Geometry) -> np.ndarray:
    """PyTorch's ``return_indices``: per output, the flat index of the maximum in its input plane (int64)."""
    strides = _row_major_strides(geom.size)
    args = geom.args
    offset = np.array([sum(k * d * st for k, d, st in zip(t, args.dilation, strides)) for t in np.ndindex(*args.kernel)],
                      dtype=np.int64)
    base = sum(np.arange(o).reshape((-1,) + (1,) * (len(geom.output) - 1 - dim)) * s * st - p * st
               for dim, (o, s, p, st) in enumerate(zip(geom.output, args.stride, args.padding, strides)))
    return offset[tap] + base


def _taps_from_indices(indices, geom: Geometry, shape, func: str) -> np.ndarray:
    """The inverse of :func:`_torch_indices`, checking that every index is a tap of its window."""
    idx = np.asarray(indices)
    if idx.dtype.kind not in "iu" or idx.shape != tuple(shape):
        raise ValueError(f"{func}: indices must be integers of the output's shape {tuple(shape)} (as returned by "
                         f"max_pool(..., return_indices=True)), got dtype {idx.dtype} and shape {idx.shape}")
    idx = idx.astype(np.int64)
    args, r = geom.args, len(geom.size)
    tap = np.zeros(idx.shape, dtype=np.int64)
    ok = (idx >= 0) & (idx < math.prod(geom.size))
    for dim, st in enumerate(_row_major_strides(geom.size)):
        pos = (idx // st) % geom.size[dim]
        start = (np.arange(geom.output[dim]) * args.stride[dim] - args.padding[dim]).reshape((-1,) + (1,) * (r - 1 - dim))
        k, rem = np.divmod(pos - start, args.dilation[dim])
        ok &= (rem == 0) & (k >= 0) & (k < args.kernel[dim])
        tap = tap * args.kernel[dim] + k
    if not ok.all():
        raise ValueError(f"{func}: indices hold positions outside their pooling windows (e.g. {int(idx[~ok].flat[0])}); "
                         "pass the indices max_pool returned for this input and these arguments")
    return tap.astype(geom.index_dtype)


# ------------------------------------------------------------------------------------------------
# average pooling
# ------------------------------------------------------------------------------------------------


def avg_divisor(geom: Geometry, count_include_pad: bool, divisor_override, dtype) -> np.ndarray:
    """How many positions each window averages over, shape ``H_out`` (PyTorch's rule)."""
    if divisor_override is not None:
        return np.full(geom.output, divisor_override, dtype=dtype)
    counts = []
    for h, k, s, p, o in zip(geom.size, geom.args.kernel, geom.args.stride, geom.args.padding, geom.output):
        start = np.arange(o) * s - p
        end = np.minimum(start + k, h + p)  # windows are clipped to the padded input ...
        if not count_include_pad:  # ... and, without count_include_pad, to the input itself
            start, end = np.maximum(start, 0), np.minimum(end, h)
        counts.append(end - start)
    return math.prod(np.ix_(*counts)).astype(dtype)


def avg_forward(x: np.ndarray, geom: Geometry, divisor: np.ndarray) -> np.ndarray:
    """``y[i] = sum_k x[i*S + k - P] / divisor[i]`` (padding holds zeros)."""
    xp = geom.padded(x, 0)
    total = None
    for _, index in geom.taps():
        total = xp[index].copy() if total is None else np.add(total, xp[index], out=total)  # (*lead, *H_out)
    total /= divisor
    return total


def avg_backward(dy: np.ndarray, geom: Geometry, divisor: np.ndarray) -> np.ndarray:
    """``dx[i*S + k - P] += dy[i] / divisor[i]`` for every tap ``k``."""
    lead = dy.shape[: dy.ndim - len(geom.size)]
    share = dy / divisor
    dxp = np.zeros(lead + geom.padded_size, dtype=share.dtype)
    for _, index in geom.taps():
        if geom.disjoint:
            dxp[index] = share
        else:
            dxp[index] += share
    return geom.crop(dxp)


def avg_options(count_include_pad, divisor_override, func: str):
    count_include_pad = _flag(count_include_pad, func, "count_include_pad")
    if divisor_override is not None:
        if isinstance(divisor_override, bool) or not isinstance(divisor_override, (int, np.integer)):
            raise TypeError(f"{func}: divisor_override must be a positive int or None, got {divisor_override!r}")
        if divisor_override < 1:
            raise ValueError(f"{func}: divisor_override must be positive, got {divisor_override}")
        divisor_override = int(divisor_override)
    return count_include_pad, divisor_override


# ------------------------------------------------------------------------------------------------
# the public functions
# ------------------------------------------------------------------------------------------------


@arrays.boundary  # torch/JAX/DLPack arrays in, the same type out
def max_pool(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
             return_indices: bool = False):
    """Max pooling over 1-3 spatial dims, as ``torch.nn.functional.max_pool1d/2d/3d``.

    Parameters
    ----------
    input : array_like, shape (N, C, *spatial) or (C, *spatial)
        Real; the rank is ``len(kernel_size)``, or ``input.ndim - 2`` when ``kernel_size`` is an int.
    kernel_size, stride, dilation : int or tuple of int
        ``stride`` defaults to ``kernel_size``.
    padding : int or tuple of int
        Implicit ``-inf`` on both sides, at most half the kernel size.
    ceil_mode : bool
        Round the output size up (a last, partial window), as PyTorch.
    return_indices : bool
        Also return, per output, the flat index of the maximum within its input plane
        (``int64``, PyTorch's convention; :func:`max_pool_backward` accepts them). From a PyTorch
        tensor both come back as tensors (the indices ``torch.int64``), from a JAX array as JAX arrays.

    Returns
    -------
    ndarray, or (ndarray, ndarray) with ``return_indices``

    Notes
    -----
    ``y[i] = max_k x[i*S + k*D - P]`` with ``H_out = floor((H + 2P - D(K-1) - 1)/S) + 1``. Ties go to
    the first maximum in row-major window order, a NaN to the last NaN, as in PyTorch. Cost: one
    strided pass per kernel tap of each dim (``K_1 + K_2`` for 2-d, not ``K_1 K_2``).

    Examples
    --------
    >>> import numpy as np, convgrad
    >>> x = np.array([[[[1., 2., 0., 5.], [3., 4., 1., 1.]]]])       # (1, 1, 2, 4)
    >>> convgrad.max_pool(x, 2)
    array([[[[4., 5.]]]])
    >>> convgrad.max_pool(x, 2, return_indices=True)[1]
    array([[[[5, 3]]]])
    """
    x, rank = _input(input, None, kernel_size, "max_pool")
    args = PoolArgs(rank, kernel_size, stride, padding, dilation, ceil_mode, "max_pool")
    return_indices = _flag(return_indices, "max_pool", "return_indices")
    geom = args.geometry(x.shape[x.ndim - rank:])
    y, tap = max_forward(x, geom)
    return (y, _torch_indices(tap, geom)) if return_indices else y


@arrays.boundary  # torch/JAX/DLPack arrays in, the same type out
def max_pool_backward(grad_output, input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
                      *, indices=None) -> np.ndarray:
    """``dL/dinput`` of :func:`max_pool`, given ``grad_output = dL/dy`` (PyTorch's gradient).

    Parameters
    ----------
    grad_output : array_like
        Of the output's shape.
    input : array_like
        The forward pass's input (the maxima are found again unless ``indices`` is given).
    kernel_size, stride, padding, dilation, ceil_mode
        As for :func:`max_pool`.
    indices : array_like of int, optional
        What ``max_pool(..., return_indices=True)`` returned: then ``input`` supplies only its shape.

    Notes
    -----
    ``dx[i*S + k*D - P] += dy[i]`` for the tap ``k`` that held the maximum of window ``i`` (one per
    window, summed where windows overlap); every other position gets 0.

    Examples
    --------
    >>> import numpy as np, convgrad
    >>> x = np.array([[[[1., 2., 0., 5.], [3., 4., 1., 1.]]]])
    >>> convgrad.max_pool_backward(np.array([[[[10., 20.]]]]), x, 2)
    array([[[[ 0.,  0.,  0., 20.],
             [ 0., 10.,  0.,  0.]]]])
    """
    func = "max_pool_backward"
    x, rank = _input(input, None, kernel_size, func)
    args = PoolArgs(rank, kernel_size, stride, padding, dilation, ceil_mode, func)
    geom = args.geometry(x.shape[x.ndim - rank:])
    out_shape = x.shape[: x.ndim - rank] + geom.output
    dy = _grad(grad_output, out_shape, func)
    if indices is None:
        _, tap = max_forward(x, geom)
    else:
        tap = _taps_from_indices(indices, geom, out_shape, func)
    return max_backward(dy, tap, geom)


@arrays.boundary  # torch/JAX/DLPack arrays in, the same type out
def avg_pool(input, kernel_size, stride=None, padding=0, ceil_mode: bool = False, count_include_pad: bool = True,
             divisor_override: int | None = None) -> np.ndarray:
    """Average pooling over 1-3 spatial dims, as ``torch.nn.functional.avg_pool1d/2d/3d``.

    Parameters
    ----------
    input : array_like, shape (N, C, *spatial) or (C, *spatial)
        The rank is ``len(kernel_size)``, or ``input.ndim - 2`` when ``kernel_size`` is an int.
    kernel_size, stride, padding : int or tuple of int
        ``stride`` defaults to ``kernel_size``; zero padding, at most half the kernel size.
    ceil_mode : bool
    count_include_pad : bool
        Whether the padding counts in the divisor.
    divisor_override : int, optional
        Divide every window's sum by this instead.

    Notes
    -----
    ``y[i] = sum_k x[i*S + k - P] / divisor[i]``, where, per dim, the window ``[i*S - P, i*S - P + K)``
    is clipped to ``[-P, H + P)`` (and to ``[0, H)`` without ``count_include_pad``) and the divisor
    is the product of the clipped lengths.

    Examples
    --------
    >>> import numpy as np, convgrad
    >>> convgrad.avg_pool(np.array([[[1., 2., 3., 4., 5.]]]), 2, ceil_mode=True)
    array([[[1.5, 3.5, 5. ]]])
    """
    func = "avg_pool"
    x, rank = _input(input, None, kernel_size, func)
    args = PoolArgs(rank, kernel_size, stride, padding, 1, ceil_mode, func)
    count_include_pad, divisor_override = avg_options(count_include_pad, divisor_override, func)
    geom = args.geometry(x.shape[x.ndim - rank:])
    return avg_forward(x, geom, avg_divisor(geom, count_include_pad, divisor_override, x.dtype))


@arrays.boundary  # torch/JAX/DLPack arrays in, the same type out
def avg_pool_backward(grad_output, input, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                      count_include_pad: bool = True, divisor_override: int | None = None) -> np.ndarray:
    """``dL/dinput`` of :func:`avg_pool`, given ``grad_output = dL/dy``.

    ``input`` is the forward pass's input; only its shape is read (a shape tuple is not accepted:
    pass the array). The other arguments are :func:`avg_pool`'s.

    Notes
    -----
    ``dx[i*S + k - P] += dy[i] / divisor[i]`` for every tap ``k`` of window ``i``.

    Examples
    --------
    >>> import numpy as np, convgrad
    >>> x = np.zeros((1, 1, 5))
    >>> convgrad.avg_pool_backward(np.array([[[1., 2., 3.]]]), x, 2, ceil_mode=True)
    array([[[0.5, 0.5, 1. , 1. , 3. ]]])
    """
    func = "avg_pool_backward"
    x, rank = _input(input, None, kernel_size, func)
    args = PoolArgs(rank, kernel_size, stride, padding, 1, ceil_mode, func)
    count_include_pad, divisor_override = avg_options(count_include_pad, divisor_override, func)
    geom = args.geometry(x.shape[x.ndim - rank:])
    dy = _grad(grad_output, x.shape[: x.ndim - rank] + geom.output, func)
    return avg_backward(dy, geom, avg_divisor(geom, count_include_pad, divisor_override, dy.dtype))
