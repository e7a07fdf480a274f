"""numpy-ml-style NHWC conv1d backward: col2im by fancy-index `+=` without np.add.at.

`dxp[:, idx, :] += cols` with repeated indices in idx adds only one of the repeated terms:
NumPy buffers the fancy-indexed update, so overlapping windows do not accumulate.
"""
import numpy as np

ENTRY = "conv1d_backward"
OP = "backward"
DIMS = 1
CHANNELS_LAST = True
PER_DIM = False
PADDING_FORMS = ("int",)
EXPECT = "overlap_accumulate"
WHY = "dxp[:, idx, :] += dcols with duplicated idx (overlapping windows); np.add.at was needed"
WITNESS = dict(input_shape=(2, 7, 2), weight_shape=(3, 2, 3), stride=1, padding=1, dilation=1)
CLEAN = dict(input_shape=(2, 9, 2), weight_shape=(2, 2, 3), stride=3, padding=1, dilation=1)


def conv1d_backward(dy, x, w, stride=1, padding=0, dilation=1):
    N, L, C = x.shape
    K, _, F = w.shape
    Lo = dy.shape[1]
    xp = np.pad(x, ((0, 0), (padding, padding), (0, 0)))
    idx = (np.arange(Lo)[:, None] * stride + np.arange(K)[None, :] * dilation).ravel()   # (Lo*K,)
    x_cols = xp[:, idx, :].reshape(N, Lo, K, C)                  # im2col
    dw = np.einsum("nokc,nof->kcf", x_cols, dy)
    db = dy.sum(axis=(0, 1))
    dcols = np.einsum("kcf,nof->nokc", w, dy).reshape(N, Lo * K, C)
    dxp = np.zeros_like(xp)
    dxp[:, idx, :] += dcols                                      # col2im
    return dxp[:, padding:padding + L, :], dw, db
