"""Step 4: the backward pass vectorized with im2col: index arrays gather every window at once.

dW and db are matrix products and sums over the columns; dX scatters the columns back onto x_pad
("col2im"). Where windows overlap (KH > S) several columns write the same element, so the scatter
must accumulate: ``conv_backward_fancy`` uses ``x[idx] += v``, which with repeated indices keeps
only one of the writes; ``conv_backward`` uses ``np.add.at``, which adds them all.
"""
import numpy as np


def im2col_indices(C, H_pad, W_pad, KH, KW, stride):
    """Index arrays (c, h, w), each (C*KH*KW, H_out*W_out): column p holds the window of output p."""
    H_out = (H_pad - KH) // stride + 1
    W_out = (W_pad - KW) // stride + 1
    c = np.repeat(np.arange(C), KH * KW)[:, None]                              # (C*KH*KW, 1)
    k = np.tile(np.repeat(np.arange(KH), KW), C)[:, None]                      # (C*KH*KW, 1)
    l = np.tile(np.arange(KW), C * KH)[:, None]                                # (C*KH*KW, 1)
    i = stride * np.repeat(np.arange(H_out), W_out)[None, :]                   # (1, H_out*W_out)
    j = stride * np.tile(np.arange(W_out), H_out)[None, :]                     # (1, H_out*W_out)
    return c, k + i, l + j


def gradient_columns(dy, x, w, stride, padding):
    """x_pad, the im2col indices, dY's columns (dX before col2im), dW and db."""
    N, C, H, W = x.shape
    F = w.shape[0]
    x_pad = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    c, h, v = im2col_indices(C, *x_pad.shape[2:], *w.shape[2:], stride)
    cols = x_pad[:, c, h, v]                                                   # (N, C*KH*KW, H_out*W_out)
    dy_flat = dy.reshape(N, F, -1)                                             # (N, F, H_out*W_out)
    dw = np.einsum("nfp,nkp->fk", dy_flat, cols).reshape(w.shape)
    db = dy.sum(axis=(0, 2, 3))
    dcols = np.einsum("fk,nfp->nkp", w.reshape(F, -1), dy_flat)                # (N, C*KH*KW, H_out*W_out)
    return x_pad, (c, h, v), dcols, dw, db


def conv_backward_fancy(dy, x, w, stride=1, padding=0):
    """First attempt: col2im with a fancy-index ``+=`` (repeated indices keep one write)."""
    x_pad, (c, h, v), dcols, dw, db = gradient_columns(dy, x, w, stride, padding)
    H, W = x.shape[2:]
    dx_pad = np.zeros_like(x_pad)
    dx_pad[:, c, h, v] += dcols                                                # BUG: overlapping windows
    return dx_pad[:, :, padding:padding + H, padding:padding + W], dw, db


def conv_backward(dy, x, w, stride=1, padding=0):
    """Fixed: ``np.add.at`` accumulates every column, repeated indices included."""
    x_pad, (c, h, v), dcols, dw, db = gradient_columns(dy, x, w, stride, padding)
    H, W = x.shape[2:]
    dx_pad = np.zeros_like(x_pad)
    np.add.at(dx_pad, (slice(None), c, h, v), dcols)
    return dx_pad[:, :, padding:padding + H, padding:padding + W], dw, db
