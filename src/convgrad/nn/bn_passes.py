"""Batch normalisation's passes over the data, with the ReLU (and a residual add) after it fused in.

:class:`~convgrad.nn.BatchNorm2d` works on its input as ``x`` of shape ``(N, C, K)`` (``K = H*W``)
with per-channel vectors of shape ``(C,)``. Every pass runs on slices of the batch on convgrad's
threads (:mod:`convgrad.batch_split`); per-slice partial sums are added in slice order. With
``t = x - mu`` (kept for backward), ``scale = weight / sqrt(var + eps)`` and ``g`` the gate of a
ReLU after the layer (``g = [z > 0]``, kept as one byte per value)::

    statistics   mu = sum(x)/m          var = sum(t^2)/m        (two passes: no cancellation)
    normalize    z = t * scale + bias (+ residual)        y = z, or max(z, 0) with the ReLU
    sums         dz = dy (* g);  sum(dz),  sum(dz * t)
    input grad   dx = scale * dz + k_x * t - k_1          k_x = -scale * inv_std^2 * sum(dz t)/m,
                                                          k_1 = scale * sum(dz)/m   (training)
                 dx = scale * dz                          (running statistics)

Fusing the ReLU saves its own passes and arrays: its output is written in the pass that
normalizes, its gradient applied in the pass that sums. The gate ``g`` lives in an array the
layer keeps from step to step (:func:`kept`; a byte per value, never handed to a caller): memory
the process gets fresh costs a page fault per 4 KiB page (~3 us on the test machine, as much as
a pass or two over the data). ``t`` is fresh at every forward and goes with the layer's cache
after backward: kept too, it saved more page faults but raised the training step's peak memory.
"""

from __future__ import annotations

import numpy as np

from .. import batch_split, workspace

__all__ = ["kept", "statistics", "normalize", "sums", "input_grad"]


def kept(owner, name: str, shape: tuple, dtype) -> np.ndarray:
    """``owner``'s internal array ``name`` of ``shape`` and ``dtype``, the one of the last call when they match.

    For arrays a layer fills anew at every forward and uses only inside its own passes (never
    returned): keeping them saves the fresh pages a new array costs at every step.
    """
    store = owner.__dict__.setdefault("_kept", {})
    arr = store.get(name)
    if arr is None or arr.shape != tuple(shape) or arr.dtype != np.dtype(dtype):
        store[name] = arr = None  # the old one goes first
        store[name] = arr = np.empty(shape, dtype)
    return arr


def _total(parts):
    """The sum of per-slice partial sums, in slice order."""
    parts = list(parts)
    total = parts[0].copy() if len(parts) > 1 else parts[0]
    for p in parts[1:]:
        total += p
    return total


def statistics(x: np.ndarray, centered: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(mu, var)`` per channel of ``x`` ``(N, C, K)`` (the biased variance), ``x - mu`` written into ``centered``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[[1., 3.], [0., 0.]], [[5., 7.], [2., 2.]]])     # N=2, C=2, K=2
    >>> t = np.empty_like(x)
    >>> statistics(x, t)
    (array([4., 1.]), array([5., 1.]))
    >>> t[:, 0]
    array([[-3., -1.],
           [ 1.,  3.]])
    """
    m = x.dtype.type(x.shape[0] * x.shape[2])
    # einsum: far faster than sum over (0, 2)
    mean = _total(batch_split.run(x.shape[0], x.nbytes, lambda a, b: np.einsum("nck->c", x[a:b]))) / m

    def center(a, b):
        part = np.subtract(x[a:b], mean[:, None], out=centered[a:b])
        return np.einsum("nck,nck->c", part, part)

    return mean, _total(batch_split.run(x.shape[0], x.nbytes, center)) / m


def normalize(centered: np.ndarray, scale: np.ndarray, bias: np.ndarray | None, *, residual: np.ndarray | None = None,
              relu: bool = False, gate: np.ndarray | None = None) -> np.ndarray:
    """``z = centered * scale + bias (+ residual)``, then ``max(z, 0)`` with ``relu``: a fresh ``(N, C, K)`` array.

    With ``gate`` (a bool array of the same shape), ``[z > 0]`` is written into it.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.array([[[-3., -1.], [-1., -1.]], [[1., 3.], [1., 1.]]])
    >>> g = np.empty(t.shape, bool)
    >>> normalize(t, np.array([0.5, 1.0]), np.array([0.0, 0.5]), relu=True, gate=g)[:, 0]
    array([[0. , 0. ],
           [0.5, 1.5]])
    >>> g[:, 1]
    array([[False, False],
           [ True,  True]])
    """
    y = np.empty(centered.shape, centered.dtype)
    scale_, bias_ = scale[:, None], None if bias is None else bias[:, None]
    zero = centered.dtype.type(0)

    def work(a, b):
        yb = np.multiply(centered[a:b], scale_, out=y[a:b])
        if bias_ is not None:
            yb += bias_
        if residual is not None:
            yb += residual[a:b]
        if gate is not None:
            np.greater(yb, zero, out=gate[a:b])
        if relu:
            np.maximum(yb, zero, out=yb)

    batch_split.run(y.shape[0], y.nbytes, work)
    return y


def sums(centered: np.ndarray, dy: np.ndarray, *, gate: np.ndarray | None = None,
         dz_out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(dz, sum(dz), sum(dz * centered))`` per channel, ``dz = dy`` or, with ``gate``, ``dy * gate`` (written
    into ``dz_out``, a fresh array when not given). ``gate`` is bool, or any array whose ``> 0`` entries pass."""
    if gate is not None and dz_out is None:
        dz_out = np.empty(dy.shape, dy.dtype)
    dz = dy if gate is None else dz_out

    def work(a, b):
        if gate is not None:
            g = gate[a:b] if gate.dtype == bool else np.greater(gate[a:b], 0)
            np.multiply(dy[a:b], g, out=dz[a:b])
        return np.einsum("nck->c", dz[a:b]), np.einsum("nck,nck->c", dz[a:b], centered[a:b])

    parts = batch_split.run(dy.shape[0], dy.nbytes, work)
    return dz, _total(p[0] for p in parts), _total(p[1] for p in parts)


def input_grad(centered: np.ndarray, dz: np.ndarray, scale: np.ndarray, k_x: np.ndarray | None, k_1: np.ndarray | None,
               *, in_place: bool = False) -> np.ndarray:
    """``dx = scale * dz + k_x * centered - k_1``, or ``scale * dz`` when ``k_x`` is None; into ``dz`` with ``in_place``."""
    dx = dz if in_place else np.empty(dz.shape, dz.dtype)
    scale_ = scale[:, None]
    k_x_, k_1_ = (None, None) if k_x is None else (k_x[:, None], k_1[:, None])

    def work(a, b):
        dxb = np.multiply(dz[a:b], scale_, out=dx[a:b])
        if k_x_ is None:
            return
        with workspace.scope():
            tmp = np.multiply(centered[a:b], k_x_, out=workspace.empty(dxb.shape, dxb.dtype))
            dxb += tmp
        dxb -= k_1_

    batch_split.run(dz.shape[0], dz.nbytes, work)
    return dx
