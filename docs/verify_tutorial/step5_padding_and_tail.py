"""Step 5: the two ends of dX -- removing the padding, and the unread tail.

With the im2col of step 4 (its ``gradient_columns``), two more ways to get the edges of dX wrong:

- ``conv_backward_crop`` removes the padding with ``[p:-p]``, which is right for p > 0 and an empty
  array for p = 0 (``a[0:-0]`` is ``a[0:0]``);
- ``conv_backward_tail`` sizes dx_pad from the output, ``(H_out - 1)*S + KH``: when
  ``(H + 2P - KH) % S != 0`` the last rows of x are never read by any window (the unread tail), and
  this dX comes out short by them. Their gradient is exactly zero, but they are still part of dX.

``conv_backward`` keeps the padded input's size and crops ``[p:p + H]``.
"""
import numpy as np

from step4_vectorized_im2col import gradient_columns


def conv_backward_crop(dy, x, w, stride=1, padding=0):
    _, (c, h, v), dcols, dw, db = gradient_columns(dy, x, w, stride, padding)
    N, C, H, W = x.shape
    dx_pad = np.zeros((N, C, H + 2 * padding, W + 2 * padding))
    np.add.at(dx_pad, (slice(None), c, h, v), dcols)
    p = padding
    return dx_pad[:, :, p:-p, p:-p], dw, db                                    # BUG: empty when p = 0


def conv_backward_tail(dy, x, w, stride=1, padding=0):
    _, (c, h, v), dcols, dw, db = gradient_columns(dy, x, w, stride, padding)
    N, C, H, W = x.shape
    KH, KW = w.shape[2:]
    H_out, W_out = dy.shape[2:]
    dx_pad = np.zeros((N, C, (H_out - 1) * stride + KH, (W_out - 1) * stride + KW))   # BUG: no tail
    np.add.at(dx_pad, (slice(None), c, h, v), dcols)
    p = padding
    return dx_pad[:, :, p:p + H, p:p + W], dw, db


def conv_backward(dy, x, w, stride=1, padding=0):
    _, (c, h, v), dcols, dw, db = gradient_columns(dy, x, w, stride, padding)
    N, C, H, W = x.shape
    dx_pad = np.zeros((N, C, H + 2 * padding, W + 2 * padding))                # the whole padded input
    np.add.at(dx_pad, (slice(None), c, h, v), dcols)
    p = padding
    return dx_pad[:, :, p:p + H, p:p + W], dw, db
