"""Max pooling whose windows tile the input (stride = kernel size, no dilation, no padding): LeNet's 2x2 pools.

The windows then cut the input into disjoint boxes, and one strided view (no copy) shows them
as ``(*lead, H_out, K_1, W_out, K_2)``; tap ``t = k_1*K_2 + k_2`` of every window is the slice
``[..., :, k_1, :, k_2]``. The forward pass is one loop over the ``K_1 K_2`` taps on those slices
(a running maximum, the tap number replaced where a tap is strictly greater: the first maximum
in row-major order stays, as in :mod:`convgrad.pooling`), the backward pass writes each tap's
slice of ``dx`` once -- or, for 2x2 windows of float32 with an even width (the training nets'
pools), each pair of input rows whole in one pass of 64-bit words (:func:`_backward_pairs`)::

    y[i]   = max_t  x[i*K + k(t)]                      tap[i] = the first t that holds it
    dx[i*K + k(t)] = dy[i] * [tap[i] == t]            (rows/columns no window reads: 0)

:mod:`convgrad.pooling`'s general passes reduce one dim at a time and scatter the gradient
through flat indices: on LeNet's pools (2x2 of 28x28 and 10x10) the forward takes 0.6-0.8 of its time, the
backward of the larger one 0.7 (of the smaller, whose per-tap calls cost more than its scatter, 1.2: not used there).
The float32 row-pair backward (2026-12-02, one process, interleaved with the per-tap one, median of 21,
load 1-2) takes 0.46-0.7 of the per-tap one's time on VGG's three 2x2 pools ((64, 32, 32, 32) 3.0 ms
against 6.6 on one thread, 2.7 against 4.4 on two; (64, 128, 8, 8) 0.78 against 1.54) and 0.83-0.87 on
LeNet's first; with the fused ReLU's gate 0.42-0.70 of ``np.where`` + the per-tap pass.
Both give exactly the general passes' results (the same comparisons; the gradient's bits copied).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import as_strided

from . import batch_split

__all__ = ["applies", "forward", "backward", "BACKWARD_MIN"]

#: Outputs from which :func:`backward` beats the flat scatter of :mod:`convgrad.pooling` (its per-tap
#: NumPy calls are then paid for). Measured (2026-12-02, one thread, CPU time, load 4): LeNet's first pool
#: (75k outputs) 0.36-0.47 ms against 0.57-0.65; its second (26k) 0.29-0.33 against 0.25-0.29. The
#: float32 row-pair path does not move it: on the second, 0.37-0.39 ms against the scatter's 0.32-0.33.
BACKWARD_MIN = 2**16


def applies(geom) -> bool:
    """Whether :func:`forward`/:func:`backward` compute ``geom``'s pooling (windows that tile the input)."""
    args = geom.args
    return (not geom.cropping and tuple(args.stride) == tuple(args.kernel)
            and all(d == 1 for d in args.dilation) and math.prod(args.kernel) > 1)


def _tiles(a: np.ndarray, geom) -> np.ndarray:
    """``a`` (``(*lead, *size)``) seen as ``(*lead, o_1, k_1, o_2, k_2, ...)`` (a read-only strided view)."""
    r = len(geom.size)
    lead = a.ndim - r
    shape, strides = list(a.shape[:lead]), list(a.strides[:lead])
    for o, k, st in zip(geom.output, geom.args.kernel, a.strides[lead:]):
        shape += [o, k]
        strides += [st * k, st]
    return as_strided(a, shape=shape, strides=strides, writeable=a.flags.writeable)


def _tap_index(geom, lead: int, t: int) -> tuple:
    """The index of tap ``t`` (row-major) in a :func:`_tiles` view with ``lead`` leading dims."""
    ks = np.unravel_index(t, geom.args.kernel)
    return (slice(None),) * lead + tuple(i for k in ks for i in (slice(None), int(k)))


def forward(x: np.ndarray, geom) -> tuple[np.ndarray, np.ndarray]:
    """``(y, tap)`` as :func:`convgrad.pooling.max_forward` computes them without NaNs (the caller redoes those).

    Examples
    --------
    >>> import numpy as np
    >>> from convgrad import pooling
    >>> x = np.array([[[[1., 2., 0., 5.], [3., 4., 1., 1.]]]])       # (1, 1, 2, 4)
    >>> y, tap = forward(x, pooling.PoolArgs(2, 2, None, 0, 1, False, "max_pool").geometry((2, 4)))
    >>> y, tap
    (array([[[[4., 5.]]]]), array([[[[3, 1]]]], dtype=int8))
    """
    lead = x.ndim - len(geom.size)
    shape = x.shape[:lead] + geom.output
    y, tap = np.empty(shape, x.dtype), np.empty(shape, geom.index_dtype)
    views = [_tap_index(geom, lead, t) for t in range(math.prod(geom.args.kernel))]

    def work(a, b):
        tiles, ya, ta = _tiles(x[a:b], geom), y[a:b], tap[a:b]
        better, flip = np.empty(ya.shape, bool), np.empty(ya.shape, tap.dtype)
        np.copyto(ya, tiles[views[0]])
        ta.fill(0)
        for t in range(1, len(views)):
            v = tiles[views[t]]
            np.greater(v, ya, out=better)
            np.maximum(ya, v, out=ya)
            # tap = t where better: tap ^= (tap ^ t) & -better  (np.copyto(where=) is 8x slower here)
            np.negative(better.view(np.int8), out=flip, casting="unsafe")
            flip &= ta ^ tap.dtype.type(t)
            ta ^= flip

    batch_split.run(x.shape[0], x.nbytes, work)
    return y, tap


def backward(dy: np.ndarray, tap: np.ndarray, geom, gate: np.ndarray | None = None) -> np.ndarray:
    """``dx``: ``dy[i]`` at the input position of window ``i``'s tap, zero elsewhere.

    With ``gate`` (an array of ``dy``'s shape: the fused ``relu(pool(x))``'s output), ``dy[i]`` is first
    replaced by ``+0.0`` where ``gate[i] > 0`` is false -- ``np.where(gate > 0, dy, 0)``, not computed apart.

    Examples
    --------
    >>> import numpy as np
    >>> from convgrad import pooling
    >>> geom = pooling.PoolArgs(1, 2, None, 0, 1, False, "max_pool").geometry((5,))
    >>> backward(np.array([[[10., 20.]]]), np.array([[[1, 0]]], dtype=np.int8), geom)
    array([[[ 0., 10., 20.,  0.,  0.]]])
    >>> geom = pooling.PoolArgs(2, 2, None, 0, 1, False, "max_pool").geometry((2, 4))
    >>> dy, tap = np.array([[[[10., 20.]]]], np.float32), np.array([[[[3, 0]]]], np.int8)
    >>> backward(dy, tap, geom, gate=np.array([[[[1., -1.]]]], np.float32))    # the float32 pair path
    array([[[[ 0.,  0.,  0.,  0.],
             [ 0., 10.,  0.,  0.]]]], dtype=float32)
    """
    lead = dy.ndim - len(geom.size)
    shape = dy.shape[:lead] + geom.size
    covered = all(o * k == h for o, k, h in zip(geom.output, geom.args.kernel, geom.size))
    dx = np.empty(shape, dy.dtype) if covered else np.zeros(shape, dy.dtype)
    if _pairs_apply(dy, geom):
        return _backward_pairs(dy, tap, geom, gate, dx)
    if gate is not None:
        dy = np.where(gate > 0, dy, dy.dtype.type(0))
    views = [_tap_index(geom, lead, t) for t in range(math.prod(geom.args.kernel))]

    bits = np.dtype(f"i{dy.itemsize}")  # dy's values as integers: dy & mask copies them exactly (NaN and -0.0 too)

    def work(a, b):
        tiles, dya, ta = _tiles(dx[a:b], geom), dy[a:b].view(bits), tap[a:b]
        hit, mask = np.empty(dya.shape, bool), np.empty(dya.shape, bits)
        for t, view in enumerate(views):
            np.equal(ta, t, out=hit)
            np.negative(hit.view(np.int8), out=mask, casting="unsafe")  # all bits set where the tap is t
            np.bitwise_and(dya, mask, out=tiles[view].view(bits))

    batch_split.run(dy.shape[0], dx.nbytes, work)
    return dx


def _pairs_apply(dy: np.ndarray, geom) -> bool:
    """Whether :func:`_backward_pairs` computes ``geom``'s backward: 2x2 windows, 4-byte values, an even width."""
    return (tuple(geom.args.kernel) == (2, 2) and dy.dtype.itemsize == 4 and geom.size[-1] % 2 == 0
            and dy.size > 0 and np.little_endian)


def _backward_pairs(dy, tap, geom, gate, dx):
    """:func:`backward` for 2x2 windows of float32 with an even width, two input rows at a time.

    A window's two columns are one 64-bit word of ``dx`` (``W`` even, so rows start on a word), and
    its two rows are consecutive: input rows ``2i, 2i+1`` are the ``2 W_out`` words
    ``[row 2i's W_out | row 2i+1's W_out]``. So the whole of ``dx`` over those rows is one contiguous
    pass over arrays laid out the same way -- ``dy``'s bits and a shift per word, each repeated for
    the two rows (``np.repeat``'s block copies) -- instead of one strided write per tap, whose inner
    loops are ``W_out`` long (NumPy's per-loop cost then exceeds the work)::

        word[i, r, j] = dy_bits[i, j] << (32 * (tap[i, j] ^ 2r) + 128 * gated[i, j])   (0 when the shift >= 64)

    ``tap ^ 2r`` is the window's column (0 or 1) when the tap lies in row ``r``, 2 or 3 when not,
    and NumPy's ``left_shift`` gives 0 for shifts of 64 or more: the bits land in the tap's half
    (little-endian: column 0 is the low half) and every other word is 0. The shifts (at most 224)
    are bytes, built on the outputs (``32 tap``, the gate) before the repeat, and the row's term
    after it by one pass against the tiled pattern (a broadcast ``(2 W_out,)`` pattern would bring
    back the short inner loops).
    """
    lead = dy.ndim - 2
    h_out, w_out = geom.output  # W = 2 W_out
    # dx's row pairs as words: (*lead, H_out, 2 W_out), a view (the last H % 2 row stays 0)
    words = dx.view(np.uint64)
    words = as_strided(words, shape=dx.shape[:lead] + (h_out, 2 * w_out),
                       strides=words.strides[:lead] + (2 * words.strides[-2], 8))
    row_of = np.repeat(np.array([0, 64], np.uint8), w_out)  # (2 W_out,): 32 * 2r for row r's words

    def work(a, b):
        t = np.multiply(tap[a:b].view(np.uint8), np.uint8(32))  # 32 * tap (< 128)
        if gate is not None:  # a gated output's shift gets 128 more: its words are 0
            closed = np.greater(gate[a:b], 0).view(np.uint8)
            closed ^= 1
            closed *= np.uint8(128)
            t |= closed
        t = np.repeat(t[..., None, :], 2, axis=-2)  # (*lead, H_out, 2, W_out): block copies
        t = t.reshape(t.shape[:-2] + (2 * w_out,))  # (*lead, H_out, 2 W_out)
        # 32 (tap ^ 2r): 0 or 32 in the tap's row, 64..224 elsewhere; one contiguous pass (the pattern tiled)
        t ^= np.tile(row_of, t.size // row_of.size).reshape(t.shape)
        v = np.repeat(dy[a:b].view(np.uint32)[..., None, :], 2, axis=-2)  # (*lead, H_out, 2, W_out)
        v = v.reshape(v.shape[:-2] + (2 * w_out,))
        np.left_shift(v, t, out=words[a:b], dtype=np.uint64)

    batch_split.run(dy.shape[0], dx.nbytes, work)
    return dx
